"""The streaming Arrow data path: pure functions over local files, no AWS.

Adapters move bytes between S3 and the function's ephemeral storage; everything here reads and
writes local paths in bounded batches, so memory does not grow with file size.
"""

from sluice_shared.datapath.memory import prepare_process

# Before any submodule converts a Python value with pyarrow (that is when pyarrow imports
# pandas): in a function process, keep pandas out and use the worker pool (see memory.py).
prepare_process()
