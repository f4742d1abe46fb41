"""Run a producer (haplotype rendering, host-side batching) ahead of the consumer (the GPU).

`prefetch(iterable, depth)` iterates `iterable` in a background thread and hands its
items over in order through a bounded queue, so that rendering the next batches and
pinning them for the host→device copy overlap the forward passes of the current
ones; `depth` bounds how many items (and so how much host memory) wait. An exception
in the producer is re-raised in the consumer; leaving the loop early stops the
producer. numpy and torch release the GIL in the heavy parts (copies, pinning), so a
thread is enough and keeps everything in one process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Yield the items of `items` in order, produced up to `depth` ahead in a thread.

    depth 0 iterates in the calling thread (no thread, same items, same order).
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for x in items:
                if not put(x):
                    return
            put(_DONE)
        except BaseException as e:  # handed to the consumer, raised there
            put(_Failure(e))

    t = threading.Thread(target=work, name="hapexp-prefetch", daemon=True)
    t.start()
    try:
        while True:
            x = q.get()
            if x is _DONE:
                return
            if isinstance(x, _Failure):
                raise x.exc
            yield x
    finally:
        stop.set()
        t.join()
