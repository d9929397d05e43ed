"""The batch path: plan partitions, validate them and transform/write hash buckets in parallel
(Step Functions Distributed Map), reconcile the run."""
