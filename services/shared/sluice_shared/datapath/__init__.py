"""The streaming Arrow data path: pure functions over local files, no AWS.

Adapters move bytes between S3 and the function's ephemeral storage; everything here reads and
writes local paths in bounded batches, so memory does not grow with file size.
"""

from sluice_shared.datapath.memory import prepare_process

# In a function process (AWS_LAMBDA_FUNCTION_NAME set, by Lambda and by the local runner) the
# first import of the data path applies the function-process memory settings (jemalloc purging
# after 100 ms, one glibc arena, no pandas): every function that runs the data path (validate,
# transform, output, the batch steps) then runs what bench.datapath measures. It is the first
# module to use pyarrow in those processes, before any conversion that would import pandas.
prepare_process()
