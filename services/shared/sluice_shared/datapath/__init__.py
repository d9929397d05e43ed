"""The streaming Arrow data path: pure functions over local files, no AWS.

Adapters move bytes between S3 and the function's ephemeral storage; everything here reads and
writes local paths in bounded batches, so memory does not grow with file size.
"""

from sluice_shared.jemalloc_options import set_jemalloc_options

# Before pyarrow is imported (its jemalloc reads its options then): one jemalloc arena.
set_jemalloc_options()

from sluice_shared.datapath.memory import prepare_process  # noqa: E402 - after the options

# In a function process (AWS_LAMBDA_FUNCTION_NAME set, by Lambda and by the local runner) the
# first import of the data path applies the function-process memory settings (jemalloc with one
# arena, purging after 100 ms, one glibc arena, no pandas): every function that runs the data
# path (validate, transform, output, the batch steps) then runs what bench.datapath measures. It
# is the first module to use pyarrow in those processes, before any conversion that would import
# pandas.
prepare_process()
