"""The streaming Arrow data path: pure functions over local files, no AWS.

Adapters move bytes between S3 and the function's ephemeral storage; everything here reads and
writes local paths in bounded batches, so memory does not grow with file size.
"""
