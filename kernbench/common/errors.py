"""Errors kernbench raises, shared by the engine, the language and the runtime.

Each carries structured fields (for tools) and a message that names the PE as (pe, cube), the
kernel line, and what was expected (for people).
"""
from __future__ import annotations

import numbers
import os
import sys
import sysconfig

import numpy as np

__all__ = [
    "is_whole",
    "check_output_file",
    "KernbenchError",
    "DeadlockError",
    "MaxCyclesError",
    "SramCapacityError",
    "EngineInvariantError",
    "CounterOverflowError",
    "KernelError",
    "NotInLanguageError",
    "ReplayContractError",
    "UnwrittenReadWarning",
    "ReplayWarning",
    "pe_label",
    "pe_at",
    "file_line",
    "user_stacklevel",
]


def pe_label(pe) -> str:
    """``"PE (p, c)"``: the one way kernbench names a PE, in errors, reports and traces.

    ``pe``: the PE as a (pe in cube, cube) pair (grid axes 0 and 1); numpy integers print as
    plain numbers. HardwareConfig.pe_coords turns a global PE index into the pair."""
    p, c = pe
    try:
        return f"PE ({int(p)}, {int(c)})"
    except ValueError:  # (an int Python will not print: by its size)
        return f"PE ({short_repr(int(p))}, {short_repr(int(c))})"


def file_line(file: str, line, *, full: bool = False) -> str:
    """``"kernel.py:12"``: the one way kernbench names a source line in text. ``full``: the
    whole path (errors' ``where`` field), else the file's base name (messages, reports).
    Code compiled with no file name (``compile(src, "", "exec")``) is ``<unnamed>:12``."""
    name = file if full else os.path.basename(file or "")
    return f"{name or '<unnamed>'}:{line}"


def pe_at(pe, file: str, line: int) -> str:
    """``"PE (p, c) at kernel.py:12"``: a PE and the kernel line it was at (the file's base
    name; errors keep the full path in their ``where`` field)."""
    return f"{pe_label(pe)} at {file_line(file, line)}"


#: the kernbench package's folder (with a trailing separator): frames of files in it are
#: kernbench's own, not the user's
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
def _site_dirs() -> list:
    """The site-packages folders Python searches besides sysconfig's (a distribution's
    dist-packages, the user's ``pip install --user`` folder)."""
    import site
    try:
        dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
        user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    except Exception:  # (an embedded or odd interpreter)
        return []
    # (on Windows the list holds sys.prefix itself: every file under it would be a library's)
    prefixes = {os.path.normpath(p) for p in (sys.prefix, sys.base_prefix)}
    return [d for d in dirs + ([user] if isinstance(user, str) else [])
            if os.path.normpath(d) not in prefixes]


#: where the standard library and installed packages live (with trailing separators): their
#: frames are not the user's, nor is their code part of a user's sweep key
LIBRARY_DIRS = tuple({os.path.normpath(p) + os.sep for p in (
    *(sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")),
    *_site_dirs()) if p})


def _outside_the_package(f) -> tuple:
    """(frame, levels up) of the first frame from ``f`` outwards that is not kernbench's own
    (the outermost frame if every one is)."""
    level = 0
    while f.f_back is not None and os.path.abspath(f.f_code.co_filename).startswith(PACKAGE_DIR):
        f, level = f.f_back, level + 1
    return f, level


def user_stacklevel() -> int:
    """The ``stacklevel`` of a ``warnings.warn`` made by this function's caller that names the
    first frame outside the kernbench package: the user's call (``ctx.launch``, ``gather``),
    however many of kernbench's own frames lie between."""
    return 1 + _outside_the_package(sys._getframe(1))[1]


def user_where() -> tuple:
    """(file, line) of the first frame outside the kernbench package that runs now: the user's
    line that called (compiled code has no frames of its own)."""
    f = _outside_the_package(sys._getframe(1))[0]
    return f.f_code.co_filename, f.f_lineno


def exc_text(e: BaseException) -> str:
    """``str(e)``, or what ``e`` is when its ``__str__`` itself raises (a user's exception
    class): the one way a kernel's, setup's or check's exception is put into a message."""
    try:
        return str(e)
    except Exception as inner:
        return (f"<unprintable {type(e).__name__}: its __str__ raised {type(inner).__name__}; "
                f"args {short_repr(e.args)}>")


def short_repr(x, limit: int = 200) -> str:
    """``repr(x)`` cut to ``limit`` characters, or a placeholder when the repr raises: an int
    Python will not print (past 4,300 digits: a check refusing ``10**5000`` raised Python's own
    ValueError from its message, a review) by its size, a tuple or list holding one item by
    item."""
    try:
        r = repr(x)
    except Exception as e:
        r = _unprintable(x, e)
    return r if len(r) <= limit else r[:limit - 3] + "..."


def _unprintable(x, e: BaseException) -> str:
    if isinstance(x, int) and isinstance(e, ValueError):
        sign = "a negative" if x < 0 else "an"
        return f"<{sign} int of about {int(x.bit_length() * 0.30103) + 1:,} digits>"
    if type(x) in (tuple, list) and isinstance(e, ValueError):
        items = ", ".join(short_repr(v, 10**9) for v in x)
        return f"({items},)" if type(x) is tuple and len(x) == 1 else \
            (f"({items})" if type(x) is tuple else f"[{items}]")
    return f"<{type(x).__name__} whose repr raised {type(e).__name__}>"


class KernbenchError(Exception):
    """Base of kernbench's own errors. Every one carries ``pe`` (the PE as (pe, cube), or None
    when no PE is at fault) and ``where`` (the kernel's "file:line", or None), so that a program,
    not only a person, can tell where."""

    pe: tuple | None = None
    where: str | None = None


class DeadlockError(KernbenchError, RuntimeError):
    """No event is left but commands remain: ``blocked`` lists every blocked unit."""

    def __init__(self, message: str, blocked: list[dict], cycle: int):
        super().__init__(message)
        self.blocked = blocked
        self.cycle = cycle
        if blocked:  # the first blocked unit: each entry names its own PE and line too
            self.pe = blocked[0].get("pe_coords")
            self.where = blocked[0].get("where")


class MaxCyclesError(KernbenchError, RuntimeError):
    """The run passed ``max_cycles``; ``positions`` says where each PE stands."""

    def __init__(self, message: str, positions: list[dict], cycle: int):
        super().__init__(message)
        self.positions = positions
        self.cycle = cycle
        if positions:
            self.pe = positions[0].get("pe_coords")
            self.where = positions[0].get("where")


class SramCapacityError(KernbenchError, RuntimeError):
    """Peak live SRAM above capacity with ``strict_sram=True``. ``over``: [(PE name, peak
    bytes)] of every PE above capacity; ``pe``, ``where`` ("file:line") and ``cycle``: the PE
    that went above first, the kernel line of the command that allocated last in the cycle it
    did, and that cycle (None when not known)."""

    def __init__(self, message: str, over: list[tuple], pe: tuple | None = None,
                 where: str | None = None, cycle: int | None = None):
        super().__init__(message)
        self.over = over
        self.pe = pe
        self.where = where
        self.cycle = cycle


class EngineInvariantError(KernbenchError, RuntimeError):
    """Debug build only: an engine invariant broke (an engine bug, not the kernel's); ``cycle``
    is where the run stopped."""

    def __init__(self, message: str, cycle: int):
        super().__init__(message)
        self.cycle = cycle


class CounterOverflowError(KernbenchError, OverflowError):
    """A unit's work counter (GEMM flops, vector elements, bytes: int64, as every counter) would
    pass 2**63 - 1: a launch of more work on one PE than kernbench counts, refused rather than
    reported wrapped. ``pe`` and ``where``: the PE and kernel line of the command that would
    have passed it (None when a steady-state jump's stretches would have); ``cycle``: where the
    run stopped."""

    def __init__(self, message: str, cycle: int, pe: tuple | None = None, where: str | None = None):
        super().__init__(message)
        self.cycle, self.pe, self.where = cycle, pe, where


class KernelError(KernbenchError, ValueError):
    """Bad input found while tracing or replaying a kernel: names the PE and the kernel line."""

    def __init__(self, message: str, pe: tuple | None = None, where: str | None = None):
        super().__init__(message)
        self.pe = pe
        self.where = where


class NotInLanguageError(KernelError, AttributeError):
    """A Triton ``tl.<name>`` that kernbench's language has not (``tl.cumsum``), reached in a
    kernel: names the PE and the kernel line, and says what to write instead where there is
    something. An AttributeError too, so ``hasattr(tl, "cumsum")`` is False and
    ``getattr(tl, "cumsum", None)`` is None."""


class ReplayContractError(KernelError):
    """Verify mode (``replay="verify"``) found a ``tl.range`` loop outside replay's contract: an
    iteration that does not repeat the body, or a loop left before its end. Names the PE, the
    line and the iteration (docs/language.md, 'tl.range')."""


class UnwrittenReadWarning(UserWarning):
    """Functional replay loaded device memory that nothing had written (it reads as NaN, or as
    zeros with ``Context(unwritten="zero")``). The message names the PE, the kernel line and the
    allocation; ``LaunchResult.unwritten_reads`` lists such loads, the first 64."""


class ReplayWarning(UserWarning):
    """A ``tl.range`` loop replay had to trace in full after all: the iteration traced after
    the replayed ones showed that the body keeps Python state across iterations (a counter, a
    pointer advanced with ``+=``), so the launch was traced again with that loop traced in
    full. The result is exact; the launch was slower. The message names the PE, the loop's
    line, the iteration and what was off (docs/language.md, 'tl.range')."""


def as_flag(x):
    """``x`` as a bool when it is one: True or False, or a numpy bool (a sweep's axis of
    ``np.array([True, False])``) as its value; else None (an int, a string, an array: no flag,
    for the caller to refuse)."""
    if x is True or x is False:
        return x
    return bool(x) if isinstance(x, np.bool_) else None


#: what iterates but is no tuple of extents: bytes and bytearrays iterate as ints (b"ab" was a
#: (97, 98) shape), sets in hash order, a str as its characters, a dict as its keys
NOT_EXTENTS = (str, bytes, bytearray, memoryview, set, frozenset, dict)


def is_whole(x) -> bool:
    """An int (Python or numpy), not a bool: a PE index, a count, a cycle, a byte offset. By
    its type, not its ``__class__``: a proxy or a ``Mock(spec=int)`` says it is an int, and
    ``int()`` of it raised from inside the check's caller (a review)."""
    t = type(x)
    return issubclass(t, numbers.Integral) and not issubclass(t, (bool, np.timedelta64))


#: what a path ending in a separator is told (the command line's options and the writers')
NAMES_A_FOLDER = "ends in a path separator, which names a folder; expected a file name"


def ends_in_separator(path) -> bool:
    """Does ``path`` (str or os.PathLike) end in a path separator? (pathlib drops it.)"""
    return os.fspath(path).endswith(tuple(filter(None, (os.sep, os.altsep, "/"))))


def check_output_file(path, who: str) -> None:
    """Raise ValueError, naming ``who`` (the writer: "to_perfetto", ...), unless ``path`` is a
    file path (str or os.PathLike) in a folder that exists, not a directory itself."""
    from pathlib import Path

    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{who}: path must be a file path (str or pathlib.Path), got {short_repr(path)}")
    if not os.fspath(path):
        raise ValueError(f"{who}: the path is empty: give a file path")
    if "\0" in (os.fsdecode(path) if isinstance(path, (str, os.PathLike)) else ""):
        raise ValueError(f"{who}: the path {os.fsdecode(path)!r} holds a NUL character, which no file name can")
    if ends_in_separator(path):  # (Path("t/") is Path("t"): checked on the text; a review)
        raise ValueError(f"{who}: {os.fspath(path)!r} {NAMES_A_FOLDER}")
    where = Path(path)
    if where.is_dir():
        raise ValueError(f"{who}: {str(where)!r} is a directory: give a file path in it")
    if not where.parent.is_dir():
        raise ValueError(f"{who}: folder {str(where.parent)!r} does not exist")
