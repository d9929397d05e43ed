"""jemalloc's options for a function process that runs the data path (no pyarrow import here).

pyarrow's jemalloc (the Arrow pool of a function process, `datapath/memory.py`) reads its options
from `JE_ARROW_MALLOC_CONF` once, when pyarrow is imported: so they are set before that import,
by the data path package (`sluice_shared/datapath/__init__.py`) before it imports pyarrow, and by
`bench.datapath` before its Sluice children import anything.
"""

from __future__ import annotations

import os
import sys

# One arena. By default jemalloc gives the threads that allocate their own arenas (four per
# CPU), so with two CPUs the pages one thread frees are purged from its arena while another
# thread faults fresh ones in for the same sizes. Validating 1M orders rows on two threads
# (2026-12-07, 3 runs each): 66-71k page faults and 0.23-0.31 s of system CPU (of ~1.6 s) with
# the default, 30-34k and 0.16-0.19 s with one arena (on one thread ~50k and ~0.18 s either way).
JEMALLOC_CONF = "narenas:1"
JEMALLOC_CONF_ENV = "JE_ARROW_MALLOC_CONF"
_IN_FUNCTION_ENV = "AWS_LAMBDA_FUNCTION_NAME"


def set_jemalloc_options(*, force: bool = False) -> bool:
    """Give pyarrow's jemalloc `JEMALLOC_CONF` in this process; return whether it will apply.

    Acts only inside a function process (`AWS_LAMBDA_FUNCTION_NAME` set) unless `force`, and
    only before pyarrow is imported (jemalloc has read its options by then). An operator's own
    `JE_ARROW_MALLOC_CONF` wins.
    """
    if not (force or os.environ.get(_IN_FUNCTION_ENV)) or "pyarrow" in sys.modules:
        return False
    os.environ.setdefault(JEMALLOC_CONF_ENV, JEMALLOC_CONF)
    return True
