"""The cyclic garbage collector paused while launches run.

Tracing, program assembly and timing make a few small acyclic objects per command; left on, the
cyclic GC rescans the growing command lists over and over (it once took half of a launch's
time), and reference counting frees those objects anyway. The GC is one switch for the whole
process, so launches on several threads share one pause: it is turned off when the first
enters and put back, if it was on, when the last leaves (a review: each launch read and
restored the switch itself, and two overlapping launches could leave it off for good).
"""
from __future__ import annotations

import gc
import threading

__all__ = ["pause_gc", "resume_gc"]

_lock = threading.Lock()
#: [launches inside the pause, whether the GC was on when the first entered]: process state,
#: as the switch it guards is
_pause = [0, False]


def pause_gc() -> None:
    """Enter the pause (each call is paired with :func:`resume_gc`, in a ``finally``)."""
    with _lock:
        if _pause[0] == 0:
            _pause[1] = gc.isenabled()
            gc.disable()
        _pause[0] += 1


def resume_gc() -> None:
    """Leave the pause: the last one out turns the GC back on if it was on."""
    with _lock:
        _pause[0] -= 1
        if _pause[0] == 0 and _pause[1]:
            gc.enable()
