"""kernbench.common.unraisable.UnraisableCatcher: exceptions Python only prints (a ``__del__``'s,
a Cython ``noexcept`` function's) kept for the thread inside ``with``, the hook there was put
back when the last thread leaves (tests/test_errors_kernel.py: a kernel's; test_debug_build.py:
the engine's)."""
import sys
import threading

from kernbench.common.unraisable import UnraisableCatcher


class _Boom:
    def __del__(self):
        raise ValueError("from __del__")


def test_kept_for_the_thread_inside_and_the_hook_put_back():
    before = sys.unraisablehook
    seen = []
    hook = sys.unraisablehook = seen.append  # (the hook there was: gets what is not kept)
    try:
        catcher = UnraisableCatcher(lambda a: isinstance(a.exc_value, ValueError))
        with catcher as caught:
            _Boom()
        assert [str(a.exc_value) for a in caught] == ["from __del__"] and seen == []
        assert sys.unraisablehook is hook
        _Boom()  # outside: the hook there was
        assert [str(a.exc_value) for a in seen] == ["from __del__"]
    finally:
        sys.unraisablehook = before


def test_threads_that_overlap_leave_the_hook_there_was():
    """A review: with a hook installed per thread, thread A leaving while B was inside left
    B's hook, then B put back A's: a stale hook installed for good."""
    before = sys.unraisablehook
    catcher = UnraisableCatcher(lambda a: True)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    got = {}

    def a():
        with catcher as caught:
            a_in.set()
            b_in.wait()
            _Boom()
            got["a"] = list(caught)
        a_out.set()

    def b():
        a_in.wait()
        with catcher as caught:
            b_in.set()
            a_out.wait()
            assert sys.unraisablehook is catcher  # (B still inside)
            _Boom()
            got["b"] = list(caught)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.unraisablehook is before
    assert len(got["a"]) == 1 and len(got["b"]) == 1  # each thread's own


def test_left_installed_it_still_hands_on_to_the_hook_there_was():
    """A review: a user putting back a hook saved during a launch (the catcher) left it
    installed; the next entry saved the catcher as its own previous, and every other
    unraisable recursed until RecursionError, the user's hook lost for good."""
    before = sys.unraisablehook
    seen = []
    hook = sys.unraisablehook = seen.append
    try:
        catcher = UnraisableCatcher(lambda a: False)  # keeps nothing: all to the hook there was
        with catcher:
            saved = sys.unraisablehook
        assert saved is catcher and sys.unraisablehook is hook
        sys.unraisablehook = saved  # (the user's code puts back what it saw)
        with catcher:
            _Boom()
        _Boom()
        assert [str(a.exc_value) for a in seen] == ["from __del__"] * 2
        other = UnraisableCatcher(lambda a: False)  # a second catcher chained to the first
        with other:
            _Boom()
        assert len(seen) == 3
    finally:
        sys.unraisablehook = before
