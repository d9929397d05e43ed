"""The transform service: one deploy unit."""

from sluice_shared.datapath.memory import prepare_process

# First, before any module converts a Python value with pyarrow: in a function process
# (AWS_LAMBDA_FUNCTION_NAME set, by Lambda and by the local runner) use the same allocator
# settings as the batch functions and the benchmark (jemalloc purging after 100 ms, one glibc
# arena, no pandas). See sluice_shared/datapath/memory.py and bench/README.md.
prepare_process()
