"""Exceptions Python cannot raise where they happen, kept for the code that can.

Python only prints an exception raised in a ``__del__``, a generator's ``finally`` run as it is
freed, or a Cython ``noexcept`` function (``sys.unraisablehook``). kernbench has two kinds it
must raise instead: a kernel's ``tl`` error in such a place (kernbench.runtime.executor) and, in
the debug build, a failed bounds check inside the engine's loop (kernbench._core.api).
"""
from __future__ import annotations

import sys
import threading
from typing import Callable

__all__ = ["UnraisableCatcher"]


class UnraisableCatcher:
    """``sys.unraisablehook`` while some thread is inside ``with catcher as caught``: an
    unraisable exception that ``keep(hook_args)`` accepts, on a thread inside, is appended to
    that thread's innermost ``caught`` list (its ``sys.UnraisableHookArgs``); anything else
    goes to the hook there was before. Installed while any thread is inside; that hook is put
    back when the last one leaves, unless something replaced this one meanwhile (threads that
    overlap share one installation: a review found a hook of each left installed for good)."""

    def __init__(self, keep: Callable) -> None:
        self.keep = keep
        self.previous = None
        self.active = 0
        self.local = threading.local()
        self.lock = threading.Lock()

    def __call__(self, hook_args) -> None:
        stack = getattr(self.local, "stack", None)
        if stack and self.keep(hook_args):
            stack[-1].append(hook_args)
            return
        previous = self.previous
        (sys.__unraisablehook__ if previous is None or previous is self else previous)(hook_args)

    def __enter__(self) -> list:
        with self.lock:
            # (left installed, when something put it back after the last thread left or another
            # catcher chained to it: the hook there was is still its previous, not itself)
            if self.active == 0 and sys.unraisablehook is not self:
                self.previous, sys.unraisablehook = sys.unraisablehook, self
            self.active += 1
        caught: list = []
        self.local.__dict__.setdefault("stack", []).append(caught)
        return caught

    def __exit__(self, *exc) -> None:
        self.local.stack.pop()
        with self.lock:
            self.active -= 1
            if self.active == 0 and sys.unraisablehook is self:
                # (previous kept: put back by someone later, this hands on to it still)
                sys.unraisablehook = self.previous or sys.__unraisablehook__
