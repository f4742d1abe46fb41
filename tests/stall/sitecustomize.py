"""Fault injection for tests/test_reliability.py, loaded by every Python process of a test
run through PYTHONPATH (Python imports `sitecustomize` at start-up).

`HAPEXP_TEST_STALL="<glob>:<seconds>"` pauses `os.replace` onto a destination matching the
glob: `hapexp.io.atomic_output` renames a finished temporary file to its output with
`os.replace`, so the workflow can be killed while the output is complete in its temporary
file but not yet at its final name — the worst moment for a non-atomic writer. Production
code knows nothing of it.
"""

import fnmatch
import os
import time

_spec = os.environ.get("HAPEXP_TEST_STALL")
if _spec:
    _pattern, _, _seconds = _spec.rpartition(":")
    _replace = os.replace

    def _stalling_replace(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(str(dst), _pattern):
            time.sleep(float(_seconds))
        return _replace(src, dst, *args, **kwargs)

    os.replace = _stalling_replace
