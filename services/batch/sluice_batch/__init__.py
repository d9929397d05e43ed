"""The batch path: plan partitions, validate them and transform/write hash buckets in parallel
(Step Functions Distributed Map), reconcile the run."""

from sluice_shared.datapath.memory import prepare_process

# First, before any module converts a Python value with pyarrow (that is when pyarrow imports
# pandas): in a function process, keep pandas out and use the worker allocators. See
# sluice_shared/datapath/memory.py and this service's README (Memory).
prepare_process()
