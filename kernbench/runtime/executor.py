"""The grid executor: trace every program of a launch, time it, replay it.

Each program (PE p of cube c, for p < grid[0], c < grid[1]) runs the kernel once with a ``tl``
pointed at its own :class:`~kernbench.language.builder.PEBuilder`. An exception in the kernel is
re-raised as a KernelError naming the program id (pe, cube) and the kernel's file:line. Before
the engine sees the program, every send is paired with its recv here, so a size, shape or dtype
mismatch is reported with both kernel lines rather than as a malformed program.
"""
from __future__ import annotations

import dataclasses
import dis
import functools
import inspect
import linecache
import os
import re
import sys
import types
import warnings

import numpy as np

from .._core import pages
from .._core.api import drop_pairing_inputs, moved_tables, pair_links, prepare
from ..common.errors import (NOT_EXTENTS, KernbenchError, KernelError, ReplayContractError, ReplayWarning, UnwrittenReadWarning,
                             exc_text, file_line, is_whole, pe_at, pe_label, short_repr, user_stacklevel)
from ..common.pe_commands import (N_PORTS, OPPOSITE, Opcode, Port, Program, TensorHandle, Unit, operator_targets,
                                  pop_operator_target, push_operator_target)
from ..common.gc_pause import pause_gc, resume_gc
from ..common.unraisable import UnraisableCatcher
from ..language.builder import PEBuilder, SiteTable, TraceStore
from ..language.builtins import TL
from ..language.loops import (CARRIED_KNOWN, InFull, ReplayOffLine, check_cut_short, close_kept,
                               loop_replays)
from ..language.porting import method_hint, not_in_tl
from ..language.semantic import called_from, forget_lines, is_user_code
from ..language.semantic import fmt_shape as fmt
from ..language.sites import SITE_COLUMNS
from .memory import DeviceArray, DevicePointer, PlacementError, arg_repr
from .drift import Shadow, drift_tolerance
from .replay import MAX_UNWRITTEN_READS, _Undo, replay
from .result import LaunchResult
from .traced import TracedLaunch

__all__ = ["launch", "trace_launch", "time_traced", "MODES", "argument_arrays", "kernel_where"]

MODES = ("functional", "timing")


def _check_grid(hw, grid) -> tuple:
    try:
        if isinstance(grid, NOT_EXTENTS):  # (b"\x02\x01" ran as the grid (2, 1))
            raise TypeError
        grid = tuple(grid)  # (once: an iterator would be used up by the first pass)
        g = tuple(int(x) for x in grid)
        ok = len(g) == 2 and all(x == y and is_whole(y) for x, y in zip(g, grid))
    except (TypeError, ValueError, OverflowError):  # (OverflowError: int(inf))
        ok = False
    if not ok:
        raise ValueError(f"grid must be (PEs per cube used, cubes used), two ints, got {short_repr(grid)}")
    if not (1 <= g[0] <= hw.pes_per_cube and 1 <= g[1] <= hw.n_cubes):
        raise ValueError(
            f"grid {short_repr(g)} does not fit the hardware '{hw.label}': expected 1..{hw.pes_per_cube} PEs per "
            f"cube and 1..{hw.n_cubes} cubes"
        )
    return g


#: what TracedLaunch.time (and ctx.launch) take for the engine: given to ctx.trace, they would be
#: the kernel's keyword arguments (named in the error when the kernel does not take them)
TIMING_OPTIONS = ("detail", "max_cycles", "record_events", "strict_sram", "steady")


def kernel_function(kernel):
    """``(function, name)``: the Python function a kernel runs, found through
    ``functools.partial``, bound methods, a callable instance's ``__call__`` (a staticmethod's
    or a partial's function too), a class's call (:func:`_class_call`) and decorators'
    ``__wrapped__``, and the kernel's name (a callable instance's class name, a class's own);
    function None when none is found (a builtin or C callable). What names the kernel in errors and reports
    and whose file is the kernel's. A ``__wrapped__`` cycle stops at the first function met;
    an object whose attributes raise is named by its type."""
    return _kernel_chain(kernel)[:2]


def _kernel_chain(kernel) -> tuple:
    """:func:`kernel_function`'s ``(function, name)`` and every object the walk met (the
    kernel, its partials' functions, what its decorators wrap, ...): :func:`_check_kernel`
    looks among them for a memoiser."""
    k, name, first, seen = kernel, None, None, []
    try:
        while len(seen) < 64 and not any(k is x for x in seen):
            seen.append(k)
            if isinstance(k, functools.partial):
                k = k.func
                continue
            if inspect.ismethod(k):
                k = k.__func__
                continue
            has_code = isinstance(getattr(k, "__code__", None), types.CodeType)
            if has_code and first is None:
                first = k
            w = getattr(k, "__wrapped__", None)
            if w is not None and w is not k:
                k = w
                continue
            if has_code:
                return k, name or getattr(k, "__name__", None) or k.__code__.co_name, seen
            call = _class_call(k) if isinstance(k, type) else _static(next(
                (c.__dict__["__call__"] for c in type(k).__mro__ if "__call__" in c.__dict__), None))
            if call is None or not (isinstance(getattr(call, "__code__", None), types.CodeType)
                                    or isinstance(call, functools.partial)):
                break
            name = name or (k.__name__ if isinstance(k, type) else type(k).__name__)
            k = call
    except Exception:  # (an object whose attributes raise: what was found so far)
        pass
    if first is not None:
        return first, name or getattr(first, "__name__", None) or first.__code__.co_name, seen
    try:
        fallback = getattr(kernel, "__name__", None)
    except Exception:
        fallback = None
    return None, name or (fallback if isinstance(fallback, str) else None) or type(kernel).__name__, seen


def _static(attr):
    """The function a class attribute holds: a staticmethod's or classmethod's own."""
    return attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr


def _class_call(cls):
    """What Python runs when it calls class ``cls`` (a class as a kernel), as inspect.signature
    finds it: its metaclass's own ``__call__``, else the ``__new__`` or ``__init__`` of the
    class nearest in its MRO that defines one (``__new__`` first); None when all are object's
    and type's."""
    call = next((c.__dict__["__call__"] for c in type(cls).__mro__ if "__call__" in c.__dict__), None)
    if call is not None and call is not type.__dict__["__call__"]:
        return _static(call)
    for c in cls.__mro__[:-1]:  # (object's own: a class that takes no arguments)
        for attr in ("__new__", "__init__"):
            if attr in c.__dict__:
                return _static(c.__dict__[attr])
    return None


def kernel_where(kernel) -> tuple:
    """``(name, file, first line)`` of a kernel (:func:`kernel_function`; file "<kernel>" and
    line 0 when it has no Python function)."""
    return _where(*kernel_function(kernel))


def _where(f, name) -> tuple:
    if f is None:
        return name, "<kernel>", 0
    return name, f.__code__.co_filename, f.__code__.co_firstlineno


def _signatures(kernel) -> list:
    """The kernel's signatures to check a launch's arguments against: the wrapped function's
    (``inspect.signature`` follows ``__wrapped__``), then the outermost callable's own when it
    differs (a decorator's wrapper that takes other parameters than what it wraps)."""
    out = []
    try:
        kernel = _callee(kernel)
    except Exception:  # (an object whose attributes raise: nothing to check ahead)
        return out
    for follow in (True, False):
        try:
            sig = inspect.signature(kernel, follow_wrapped=follow)
        except Exception:  # (a builtin; an object whose attributes raise: nothing to check ahead)
            continue
        if all(_signature_key(sig) != _signature_key(x) for x in out):
            out.append(sig)
    return out


def _signature_key(sig: inspect.Signature) -> tuple:
    """What tells two signatures apart, defaults by identity: ``Signature.__eq__`` compares
    defaults with ``==``, which a numpy array's or a DataFrame's raises on (a kernel with
    ``opts=np.ones(4)`` failed its launch with numpy's "truth value is ambiguous")."""
    return tuple((p.name, p.kind, id(p.default)) for p in sig.parameters.values())


def _callee(kernel, depth: int = 0):
    """What Python runs when it calls ``kernel``: for a callable instance, its type's
    ``__call__`` got as Python gets it (through ``__get__`` when it is a descriptor: a
    function bound to the instance, a staticmethod's function unbound; a partial or another
    callable as it is); a partial of one, a partial of that. inspect.signature (3.11) takes any
    ``__call__`` for a function to bind, and dropped a parameter of a staticmethod's or a
    partial's as if it were self: the launch refused arguments Python takes."""
    if depth > 16:
        raise RecursionError("a chain of __call__ too long to follow")
    if isinstance(kernel, functools.partial):
        inner = _callee(kernel.func, depth + 1)
        return kernel if inner is kernel.func else functools.partial(inner, *kernel.args, **kernel.keywords)
    if isinstance(kernel, (type, types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return kernel  # (inspect.signature reads these right)
    raw = inspect.getattr_static(type(kernel), "__call__", None)
    if raw is None or isinstance(raw, types.FunctionType):
        return kernel  # (a method bound to the instance: inspect's own case)
    if isinstance(raw, functools.partial):
        # (what its __get__ gives, without calling it: on 3.13 that warns, "functools.partial
        # will be a method descriptor", once more than the kernel's own call does; 3.14 binds it)
        call = types.MethodType(raw, kernel) if sys.version_info >= (3, 14) else raw
    else:
        get = getattr(type(raw), "__get__", None)
        call = get(raw, kernel, type(kernel)) if get is not None else raw
    return kernel if call is kernel else _callee(call, depth + 1)


def _generic(sig) -> bool:
    """A wrapper's ``(*args, **kwargs)``: it takes anything, so it says nothing about what the
    launch may pass; the wrapped function's signature is checked instead."""
    ps = sig.parameters.values()
    return any(p.kind == p.VAR_KEYWORD for p in ps) and all(
        p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in ps)


def _sig_error(sig, args: tuple, kwargs: dict):
    """What is wrong with launching a kernel of signature ``sig`` on these arguments: None,
    ("tl", None) when it takes no keyword-only tl, or ("bind", the TypeError)."""
    ps = sig.parameters
    if not (("tl" in ps and ps["tl"].kind == inspect.Parameter.KEYWORD_ONLY) or any(
            p.kind == inspect.Parameter.VAR_KEYWORD for p in ps.values())):
        return "tl", None
    try:
        sig.bind(*args, tl=None, **kwargs)
    except TypeError as e:
        return "bind", e
    return None


def _check_kernel(kernel, args: tuple, kwargs: dict) -> None:
    """A kernel is a plain function with a keyword-only ``tl`` that the launch's arguments fit:
    checked before tracing, so the error names the kernel's definition, not line 0."""
    if not callable(kernel):
        raise TypeError(f"kernel must be a function taking a keyword-only tl, got {short_repr(kernel)}")
    f, name, chain = _kernel_chain(kernel)
    _, file, first = _where(f, name)
    where = f"{name} ({file_line(file, first)})" if first else name
    if f is not None and (inspect.isgeneratorfunction(f) or inspect.iscoroutinefunction(f)
                          or inspect.isasyncgenfunction(f)):
        raise TypeError(f"kernel {where} is a generator or async function: a kernel is a plain "
                        f"function that calls tl (its body would never run)")
    for w in chain:
        try:
            memo = callable(getattr(w, "cache_info", None)) and callable(getattr(w, "cache_clear", None))
        except Exception:  # (an object whose attributes raise: no memo to see)
            memo = False
        if memo:
            # (functools.cache / lru_cache): every program of a launch is called with the same
            # arguments, so the cache would answer all but the first without running them
            raise TypeError(f"kernel {where} is memoised (functools.cache or lru_cache): the "
                            f"launch calls it once per PE with the same arguments, and the cache "
                            f"would answer every PE but the first without running it. Launch the "
                            f"function itself (its __wrapped__)")
    for key in kwargs:
        if key == "tl":
            raise TypeError("tl is passed by the launch; it cannot be a kernel argument")
    e = _arguments_error(kernel, args, kwargs, where, name)
    if e is not None and not e.deferred:
        raise e from None
    return e  # (None, or the error of a generic wrapper's call that does not bind: _bind_failed)


def _arguments_error(kernel, args: tuple, kwargs: dict, where: str, name: str):
    """The TypeError of launching ``kernel`` on these arguments, or None when they fit. Its
    ``deferred`` is True when the kernel is a decorator's ``(*args, **kwargs)`` wrapper: the
    wrapped function does not take them, but the wrapper may supply or drop some (a default
    filled in, as triton.heuristics does), so only the call can tell (:func:`_bind_failed`).
    Its ``names``: what the binding error is about (:func:`_bind_names`), which the call's error
    must share."""
    sigs = _signatures(kernel)
    if not sigs:
        return None  # a builtin or C callable: nothing to check ahead
    errors = [_sig_error(sig, args, kwargs) for sig in sigs]
    if errors[0] is None or (len(sigs) > 1 and errors[1] is None and not _generic(sigs[1])):
        return None  # (the wrapped function's, or a decorator's own specific one, takes them)
    what, e = errors[0]
    if what == "tl":
        out = TypeError(f"kernel {where} must take tl as a keyword-only parameter: "
                        f"def {name}(..., *, tl)")
    else:
        ps = sigs[0].parameters
        timing = [k for k in kwargs if k in TIMING_OPTIONS and k not in ps]
        out = TypeError(f"kernel {where} does not take the launch's arguments: {e} "
                        f"(given {len(args)} positional: {', '.join(type(a).__name__ for a in args) or 'none'}"
                        f"{'; keywords ' + ', '.join(kwargs) if kwargs else ''})"
                        + (f"; {', '.join(timing)}: options of the timing, not of the trace "
                           f"(ctx.trace(...).time(hw, {timing[0]}=...), or ctx.launch)" if timing else ""))
    # (tl stays checked ahead: the docs' rule, whatever a wrapper does)
    out.deferred = what != "tl" and len(sigs) > 1 and _generic(sigs[1])
    out.names = _bind_names(str(e)) if e is not None else set()
    return out


def _bind_names(message: str) -> set:
    """What a binding error is about: the parameters it names, or (too many positional
    arguments, which names none: the signature's bind and Python's call word it differently)
    the positional arguments."""
    names = set(re.findall(r"'([^']*)'", message))
    if "too many positional arguments" in message or re.search(
            r"takes (?:from \d+ to )?\d+ positional arguments? but .* (?:was|were) given", message):
        names.add("*positional")
    return names


def _bind_failed(kernel, e: BaseException, unbound: TypeError) -> bool:
    """Whether ``e`` is the TypeError Python raised calling the function a wrapper wraps with
    the launch's arguments it does not take (the function not started, and the parameter it
    names one ``unbound`` names), not an error of the kernel's own or another of the wrapper's
    (a keyword it renamed wrong: its own error, at its line)."""
    if not isinstance(e, TypeError) or not unbound.names & _bind_names(str(e)):
        return False
    f, name, _ = _kernel_chain(kernel)
    code = getattr(f, "__code__", None)
    if code is None or not str(e).startswith((f"{getattr(f, '__qualname__', name)}()", f"{name}()")):
        return False
    tb = e.__traceback__
    while tb is not None:  # (a frame of the wrapped function: it started, the error is its own)
        if tb.tb_frame.f_code is code:
            return False
        tb = tb.tb_next
    return True


#: a KernelError, or the signal to trace again with a loop in full (loops.ReplayOffLine: a
#: value replay left unknown read there), raised where Python cannot raise it (a ``__del__``, a
#: generator's ``finally`` run as it is freed) on a thread tracing a program, kept for it
_UNRAISABLE = UnraisableCatcher(lambda hook_args: isinstance(hook_args.exc_value,
                                                               (KernelError, ReplayOffLine)))


def _check_returned(value, name: str, pe: tuple, file: str, line: int) -> None:
    """A kernel returns nothing the launch reads. A coroutine it returns unstarted, a live async
    generator, or an unstarted generator other than a generator expression is a body that never
    ran (a generator or async function behind a wrapper that calls it and returns what it made,
    which :func:`_check_kernel` cannot see): a KernelError naming the PE and the kernel's ``def``.
    Anything else returned, a started generator included, is ignored."""
    if inspect.iscoroutine(value):
        unrun = inspect.getcoroutinestate(value) == inspect.CORO_CREATED
    elif inspect.isasyncgen(value):  # (only an event loop runs one: live, it was not run)
        unrun = value.ag_frame is not None and not value.ag_running
    elif inspect.isgenerator(value):
        unrun = (inspect.getgeneratorstate(value) == inspect.GEN_CREATED
                 and value.gi_code.co_name != "<genexpr>")
    else:
        return
    if not unrun:
        return
    if not inspect.isasyncgen(value):  # (an async generator closes only awaited: aclose())
        value.close()  # (no "never awaited" warning on top of the error)
    raise KernelError(f"{pe_at(pe, file, line)}: kernel {name} returned a {type(value).__name__} "
                      f"that never started: a generator or async function called by the kernel "
                      f"and returned, its body not run. A kernel is a plain function that calls "
                      f"tl", pe=pe, where=file_line(file, line, full=True))


def user_frames(exc: BaseException, own_file: str | None = None) -> list:
    """(file, line, function name, code) of the traceback frames of the user's code
    (semantic.user_calls: numpy raising inside a helper names the helper's line), innermost
    first; [] without one. An exception raised again, ``raise e``, where it was not made
    names the calls that raised it first when they were this raise's callers (``raise errs[0]``
    in a helper: the traceback's entries between two of one frame's were not its callers), else
    the ``raise`` (an exception made before the launch, or returned by a helper): what the
    traceback holds past it is an earlier raise, elsewhere."""
    entries: list = []  # (frame, line, instruction offset), outermost first
    at: dict = {}  # id(frame) -> its place in entries (a review: a scan per frame was quadratic)
    tb = exc.__traceback__
    while tb is not None:
        fr = tb.tb_frame
        k = at.get(id(fr))
        if k is not None and entries[k][0] is fr:  # (raised again: its inner entry is the call)
            for e in entries[k:]:
                del at[id(e[0])]
            del entries[k:]
        at[id(fr)] = len(entries)
        entries.append((fr, tb.tb_lineno, tb.tb_lasti))
        tb = tb.tb_next
    for k, (fr, _, lasti) in enumerate(entries[:-1]):
        inner = entries[k + 1][0]
        if (is_user_code(fr.f_code, own_file) and _raises_here(fr.f_code, lasti)
                and not (inner.f_back is fr and inner.f_code.co_name in ("__init__", "__new__"))):
            # (a library's raise hands on a worker's exception, Future.result: not cut; nor is
            # `raise Oops` whose __init__, called by the raise itself, failed)
            del entries[k + 1:]
            break
    return [(fr.f_code.co_filename, line, fr.f_code.co_name, fr.f_code)
            for fr, line, _ in reversed(entries) if is_user_code(fr.f_code, own_file)]


_RAISE_VARARGS = dis.opmap["RAISE_VARARGS"]


def _raises_here(code, lasti: int) -> bool:
    """Whether the instruction at byte offset ``lasti`` of ``code`` is a ``raise X`` (not a call:
    what a traceback holds past it was raised before, elsewhere)."""
    raw = code.co_code
    return 0 <= lasti < len(raw) - 1 and raw[lasti] == _RAISE_VARARGS and raw[lasti + 1] >= 1


def user_frame(exc: BaseException, own_file: str | None = None) -> tuple | None:
    """(file, line) of the innermost traceback frame of the user's code (:func:`user_frames`),
    None without one. The one rule for a kernel's error, a `kernbench run` setup or check, and a
    sweep point."""
    frames = user_frames(exc, own_file)
    return frames[0][:2] if frames else None


#: Python's own arity message for a TL method (the pure-Python build's): "TL.exp() takes 2
#: positional arguments but 3 were given" counts self
_TL_ARITY = re.compile(r"^TL\.(\w+)\(\) takes (\d+) positional arguments? but (\d+) (?:was|were) given")


def _call_text(e: BaseException) -> str:
    """``exc_text(e)``; a TypeError of binding a tl call's arguments as the compiled build words
    it whatever the build: Python's method message names ``TL.load()`` where Cython's names
    ``load()``, and counts ``self`` in its arity (a review: "exp() takes 2 positional arguments
    but 3 were given" for one argument too many)."""
    text = exc_text(e)
    if not isinstance(e, TypeError) or not text.startswith("TL."):
        return text
    m = _TL_ARITY.match(text)
    if m:
        takes, given = int(m.group(2)) - 1, int(m.group(3)) - 1
        return (f"{m.group(1)}() takes {takes} positional argument{'s' if takes != 1 else ''} but "
                f"{given} {'was' if given == 1 else 'were'} given{text[m.end():]}")
    return text[3:]


def _none_data_hint(e: BaseException, file: str, line: int) -> str:
    """The hint for a kernel that used a handle's ``data`` while tracing (None then: a
    TypeError on None at a line reading ``.data``), else ""."""
    if not isinstance(e, TypeError) or "NoneType" not in exc_text(e):
        return ""
    if ".data" not in linecache.getline(file, line):
        return ""
    return (" (a TensorHandle's data is None while the kernel is traced: it holds the tensor's "
            "value only after a functional launch; compute with tl calls on the handle itself)")


class SfrText(str):
    """An SFR install's description (what errors print) carrying the install, which names what
    would wire a port it leaves without a neighbour (semantic.port_of)."""

    def __new__(cls, install):
        self = super().__new__(cls, install.describe())
        self.install = install
        return self

    def __reduce__(self):
        return (SfrText, (self.install,))


def _digits_hint(e: BaseException) -> str:
    """The hint for Python's refusal to print an int of more than 4,300 digits (a check that
    refused such an int could not print it in its message: a review's ``x * 10**5000``), else ""."""
    if type(e) is not ValueError or "integer string conversion" not in str(e):
        return ""
    return (" (a Python int of thousands of digits reached a tl call, which could not print it "
            "(Python prints no int past 4,300 digits): pass a smaller int, or a float such as "
            "float('inf'))")


def _int_hint(e: BaseException) -> str:
    """The hint for a Triton idiom on what is a Python int here (AttributeError on an int):
    ``pid.to(tl.int64)`` (tl.program_id is a Python int), ``Out.type.element_ty`` or
    ``X.dtype.element_ty`` (a pointer argument is a byte address), else ""."""
    obj = getattr(e, "obj", None) if isinstance(e, AttributeError) else None
    if not isinstance(obj, (int, np.integer)) or isinstance(obj, (bool, np.bool_)):
        return ""
    if e.name == "to":
        return (" (tl.program_id, tl.num_programs and Python numbers are Python ints here, not "
                "int32 tensors: drop .to(...), a Python int does not overflow; docs/language.md, "
                "'Porting from Triton')")
    if e.name in ("type", "dtype", "element_ty"):
        return (" (if it is a pointer argument: a pointer is a byte address here, with no element "
                "type; pass the dtype as an argument of its own; docs/language.md, 'Porting from "
                "Triton')")
    return ""


def _stop_hint(e: BaseException) -> str:
    """What a bare StopIteration (a next() past an iterator's end) means in a kernel, else ""."""
    if type(e) is not StopIteration or exc_text(e):
        return ""
    return ("StopIteration: a next() past the end of an iterator (for a tl.range advanced by "
            "next(): with replay on, the iterations it replays go by at once; drive a tl.range "
            "with a for loop, or use range())")


def _kernel_site(exc: BaseException, kernel_file: str, kernel_line: int = 0) -> tuple:
    """(file, line, calls) of a kernel's Python error: its innermost user frame (without one,
    the kernel's file at its ``def``: a call that failed before the kernel's body ran, such as
    a decorator's wrapper given arguments it does not take) and the text naming the calls that
    led there (semantic.called_from)."""
    frames = user_frames(exc, kernel_file)
    if not frames:
        return kernel_file, kernel_line, ""
    return frames[0][0], frames[0][1], called_from(frames)


def _message_types(table: SiteTable) -> np.ndarray:
    """Per site, a number for its message type ((shape, dtype) of a send or recv; equal for
    equal ones), -1 for the other sites: int64."""
    msg_type: dict = {}
    return np.array([msg_type.setdefault((k[4], k[5]), len(msg_type)) if k[0] in ("send", "recv")
                     else -1 for k in table.keys], np.int64)


def _check_and_prepare(hw, traced: TracedLaunch, tables) -> None:
    """The launch's checks, made once: every command (api.prepare: in C) and every link, each
    send paired with the recv that drains it, of its shape and dtype; the engine's tables for
    the launch's wiring are built on the way and kept for its first timing (``traced._prepared``).
    ``tables``: the program's checked tables when it is another's streams moved (api.moved_tables).
    A link that does not pair is named by :func:`_check_messages`, before anything else
    wrong, as the launch's link check always did."""
    program, nbr = traced.program, traced.neighbours
    try:
        ok = prepare(hw, nbr, program, traced.describe, traced._prepared, sites=traced.sites,
                     site_type=_message_types(traced.table), tables=tables)
    except MemoryError:
        raise
    except Exception:
        _check_messages(hw, program, traced.sites, traced.table, nbr, traced.grid)
        raise
    if not ok:
        _check_messages(hw, program, traced.sites, traced.table, nbr, traced.grid)
        raise AssertionError("kernbench: the engine's message pairing refused links the launch's "
                             "numpy pairing accepts: please report it with the kernel")


def _outside_grid(hw, idle: tuple, grid: tuple) -> str:
    """Why a linked PE the launch did not run is outside ``grid``, and how to run it or make the
    machine match the grid: along axis 0 (a PE of the cube) or axis 1 (a cube: scope ``cube``,
    or the N/S line of ``two_level``). "" when it is inside the grid (it returned early)."""
    pe, cube = idle
    if cube >= grid[1]:
        return (f": the SFR install links {pe_label(idle)}, in cube {cube} of the machine's "
                f"{hw.n_cubes}, so launch every cube (grid[1] = {hw.n_cubes}), or a Context with "
                f"overrides={{'n_cubes': {grid[1]}}}")
    if pe >= grid[0]:
        return (f": the SFR install links {pe_label(idle)}, PE {pe} of the cube's "
                f"{hw.pes_per_cube}, so launch every PE of the cube (grid[0] = {hw.pes_per_cube}), "
                f"or a Context with overrides={{'pes_per_cube': {grid[0]}}}")
    return ""


def _check_messages(hw, program: Program, sites: np.ndarray, table: SiteTable, nbr: np.ndarray,
                    grid: tuple) -> None:
    """Pair the k-th send on each port with the k-th recv on the neighbour's opposite port.

    Links are checked in (PE, port) order; the first link with a count or shape/dtype mismatch
    is reported, naming both kernel lines. The pairing in numpy, made when the engine's (in C,
    api.prepare) refuses a launch, to name what is wrong."""
    n_pes = hw.n_pes
    counts = np.diff(program.cmd_offsets)
    # from the sites (4 bytes a command), not the command records (72)
    f = table.fields()
    site_op, site_port = f[:, SITE_COLUMNS.index("opcode")], f[:, SITE_COLUMNS.index("port")]
    if program.tiled is not None:  # from the traced rows and the tilings' bodies
        links = program.tiled.rows_with_unit(int(Unit.TX_E))
    else:
        links = np.flatnonzero(((site_op == Opcode.SEND) | (site_op == Opcode.RECV))[sites])
    if len(links) == 0:
        return
    keys = table.keys
    type_of_site = _message_types(table)
    link_op = site_op[sites[links]]
    send_i, recv_i = links[link_op == Opcode.SEND], links[link_op == Opcode.RECV]
    del links, link_op

    def pe_of(idx: np.ndarray) -> np.ndarray:
        return np.searchsorted(program.cmd_offsets, idx, side="right") - 1

    # (tl.send/recv already refused ports with no neighbour)
    nbr_flat = np.asarray(nbr, np.int64).ravel()
    lp = pair_links(nbr, pe_of(send_i), site_port[sites[send_i]], pe_of(recv_i), site_port[sites[recv_i]])
    ns, nr = lp.n_send, lp.n_recv
    n_links = n_pes * N_PORTS
    count_bad = ns != nr
    # Messages in link order, program order within a link.
    s_sorted, r_sorted = send_i[lp.send_order], recv_i[lp.recv_order]
    s_linkk, r_linkk = lp.send_link[lp.send_order], lp.recv_link[lp.recv_order]
    # Shapes and dtypes of the links whose counts agree, compared pair by pair.
    s_ok = ~count_bad[s_linkk]
    r_ok = ~count_bad[r_linkk]
    ps, pr = s_sorted[s_ok], r_sorted[r_ok]
    mismatch = np.flatnonzero(type_of_site[sites[ps]] != type_of_site[sites[pr]])
    first_count = np.flatnonzero(count_bad)
    lk_count = int(first_count[0]) if len(first_count) else n_links
    lk_shape = int(s_linkk[s_ok][mismatch[0]]) if len(mismatch) else n_links
    if lk_count == n_links and lk_shape == n_links:
        return

    def site(i: int) -> tuple:
        return keys[int(sites[i])]

    if lk_count <= lk_shape:
        g, p = divmod(lk_count, N_PORTS)
        q, back = int(nbr_flat[lk_count]), int(OPPOSITE[p])
        n_s, n_r = int(ns[lk_count]), int(nr[lk_count])
        # Name the first unmatched message on whichever side has more.
        # (the error's pe and where: the PE and line of that message, the one the text names)
        if n_s > n_r:
            k, at = site(s_sorted[np.searchsorted(s_linkk, lk_count) + n_r]), g
            who = (f"{pe_at(hw.pe_coords(g), k[1], k[2])} sends message "
                   f"#{n_r + 1} on port {Port(p).name}")
        else:
            k, at = site(r_sorted[np.searchsorted(r_linkk, lk_count) + n_s]), q
            who = (f"{pe_at(hw.pe_coords(q), k[1], k[2])} posts recv "
                   f"#{n_s + 1} on port {Port(back).name}")
        idle = q if counts[q] == 0 else g if counts[g] == 0 else None
        why = "" if idle is None else (
            f" ({pe_label(hw.pe_coords(idle))} ran no program or returned before any tl call; the "
            f"launch grid is {grid}{_outside_grid(hw, hw.pe_coords(idle), grid)})")
        fix = (f"post a tl.recv(dir={Port(back).name!r}, ...) on {pe_label(hw.pe_coords(q))} for it, or "
               f"drop the send" if n_s > n_r else
               f"send it from {pe_label(hw.pe_coords(g))} with tl.send(dir={Port(p).name!r}, ...), or "
               f"drop the recv")
        raise KernelError(
            f"{who}, but {pe_label(hw.pe_coords(g))} sends {n_s} message(s) on port "
            f"{Port(p).name} and {pe_label(hw.pe_coords(q))} posts {n_r} recv(s) on port "
            f"{Port(back).name}{why}: every send needs exactly one matching recv ({fix})",
            pe=hw.pe_coords(at), where=file_line(k[1], k[2], full=True),
        )
    g, p = divmod(lk_shape, N_PORTS)
    q, back = int(nbr_flat[lk_shape]), int(OPPOSITE[p])
    s, r = site(ps[mismatch[0]]), site(pr[mismatch[0]])
    raise KernelError(
        f"{pe_at(hw.pe_coords(q), r[1], r[2])}: recv on port "
        f"{Port(back).name} expects {fmt(r[4])} {r[5]}, but the matching send of "
        f"{pe_at(hw.pe_coords(g), s[1], s[2])} sends {fmt(s[4])} "
        f"{s[5]}",
        pe=hw.pe_coords(q), where=file_line(r[1], r[2], full=True),
    )


def _assemble(hw, builders: list) -> tuple[Program, np.ndarray, SiteTable]:
    """The launch's Program, the site of every global command and the site table.

    The builders' commands are already one array, in global PE order (their TraceStore's); only
    the small per-PE tensor tables are put together here."""
    store = next((b.trace_store for b in builders if b is not None), None)
    if store is None:
        store = TraceStore()
    commands, sites = store.close()
    n_cmd = [0 if b is None else b.n_commands for b in builders]
    n_ten = [0 if b is None else b.n_tensors for b in builders]
    cmd_off = np.zeros(hw.n_pes + 1, np.int64)
    np.cumsum(n_cmd, out=cmd_off[1:])
    ten_off = np.zeros(hw.n_pes + 1, np.int64)
    np.cumsum(n_ten, out=ten_off[1:])
    # the tensors' sizes as indices into their few distinct sizes (2 bytes a tensor, not 8:
    # Program.sizes), or as int64 when there are too many
    sizes = store.tensor_sizes()
    tensor_bytes = store.tensor_bytes() if sizes is None else None
    n_t = len(sizes[0]) if sizes is not None else len(tensor_bytes)
    if cmd_off[-1] != store.n or ten_off[-1] != n_t or any(
            b is not None and b.cmd_start != cmd_off[g] for g, b in enumerate(builders)):
        raise AssertionError("traced programs are not in global PE order in their store")
    tensor_pinned = pages.zeros(n_t, np.uint8, sparse=True)  # (few pinned)
    for g, b in enumerate(builders):
        if b is not None and b.pinned:
            tensor_pinned[ten_off[g] + np.asarray(b.pinned, np.int64)] = 1
    return (Program(commands, cmd_off, tensor_bytes, tensor_pinned, ten_off, compact=store.compact(),
                    sizes=sizes),
            sites, store.table)


def replay_mode(replay) -> str:
    """The tl.range replay mode of a launch: ``replay`` ("on", "off" or "verify"), or when None
    the environment variable KERNBENCH_REPLAY (default "on")."""
    from ..language.loops import REPLAY_MODES

    what = "replay"
    if replay is None:
        what = "the environment variable KERNBENCH_REPLAY"
        replay = os.environ.get("KERNBENCH_REPLAY", "").strip().lower() or "on"
    if not isinstance(replay, str) or replay not in REPLAY_MODES:
        raise ValueError(f"{what} must be one of {REPLAY_MODES} (tl.range loop replay; "
                         f"docs/language.md), got {short_repr(replay)}")
    return REPLAY_MODES[REPLAY_MODES.index(replay)]  # (the str itself: a numpy str_ reached Cython)


def trace(ctx, kernel, grid: tuple, args: tuple, kwargs: dict, functional: bool,
          skip=frozenset(), replay: str = "on", unbound: TypeError | None = None) -> list:
    """Run ``kernel`` once per program of ``grid``; PE g's finished builder (or None if it emitted
    nothing) by global index. The builders share one TraceStore (``trace_store``): their commands, in
    global PE order, and the sites naming them. PEs in ``skip`` (global indices) are not run.

    ``replay``: tl.range loops are replayed ("on"), traced in full ("off"), or (``"verify"``)
    the launch is traced with replay, then, when a PE ran a tl.range loop, every PE again in
    full, checking every iteration replay skipped; each PE's two programs must be the same
    (kernbench.language.loops). Every PE, not only those with a loop: Python state a replayed
    body leaves for a PE traced after it (outside the contract) shows in that PE's program.

    With replay on (and in verify's first pass), a loop whose iteration traced after the
    replayed ones shows that its body keeps Python state across iterations (a counter, a
    pointer advanced with ``+=``), or one whose value replay left unknown is read
    (loops.ReplayOffLine), is traced in full, the launch traced again from its first PE (the
    body's Python state is the kernel's: only a trace from the start has it as full tracing
    does); a ReplayWarning names a counting one. Each loop does so once a launch (the unknown
    values' all at once), so the trace runs at most once more than there are counting loops,
    and once more for unknown values."""
    # (verify's first pass is the launch with replay on, so it finds and retries as "on" does)
    no_replay = InFull() if replay != "off" and not functional else None
    while True:
        seen = len(no_replay) if no_replay is not None else 0
        if no_replay is not None:
            no_replay.unknown.clear()
        try:
            builders = _trace(ctx, kernel, grid, args, kwargs, functional, skip, replay, no_replay,
                              unbound)
        except ReplayOffLine:
            continue
        except BaseException as e:
            if no_replay is not None and len(no_replay) > seen and isinstance(e, Exception):
                continue  # (the kernel caught the ReplayOffLine, and failed for it: again)
            if seen:  # (its Python ran again from the first PE: what it did the first time, twice)
                loops = ", ".join(file_line(f, ln) for f, ln in no_replay)
                e.add_note(f"(raised while the launch was traced again, from its first PE, with "
                           f"the tl.range loop{'s' if seen > 1 else ''} at {loops} traced in full "
                           f"(docs/language.md, 'tl.range'): state the kernel changed the first "
                           f"time (a ctx.free, a counter) it changed twice)")
            raise
        if no_replay is None or len(no_replay) == seen:
            break
        # (the kernel caught the ReplayOffLine and went on: its program is not full tracing's)
    for loop, (pe, where, why, quiet) in (no_replay or {}).items():
        if quiet:
            continue
        warnings.warn(ReplayWarning(
            f"{pe_at(pe, *loop)}: tl.range: {where}, traced after "
            f"the iterations replay skipped, is not the loop body moved on: {why}. The body "
            f"seems to keep Python state across iterations (enumerate's count, a count a helper "
            f"keeps, an int stepped otherwise than by a constant; or its last iteration clamps its "
            f"accesses just there), which replay cannot move on: the launch was traced again "
            f"with this loop traced in full (exact, without replay's speed; the kernel's Python "
            f"ran again from its first PE: what it changed outside itself, it changed twice). Compute the body's "
            f"addresses from the index (`ptr + i * BLOCK`) to replay it (docs/language.md, "
            f"'tl.range')"), stacklevel=user_stacklevel())
    for loop, (head, outer, names, pes, hint) in (no_replay.carried.items() if no_replay is not None else ()):
        if loop in no_replay:
            continue  # (warned above, or traced again quietly)
        said = ", ".join(f"`{x}`" for x in names)
        one = len(names) == 1
        also = f" (and on {len(pes) - 1} other PE{'s' if len(pes) > 2 else ''})" if len(pes) > 1 else ""
        warnings.warn(ReplayWarning(
            f"{head}{also}: tl.range{outer}: the body reads {said} before assigning "
            f"{'it' if one else 'them'}, and {'its value differs' if one else 'their values differ'} "
            f"from iteration to iteration: Python state carried across iterations (a list "
            f"appended to, a float, a counter in a global or a list, a tensor put in a slot the "
            f"index picks: `bufs[i % 2] = x`), which replay, skipping the body's Python, cannot "
            f"move on (it steps an int local only, `p += BLOCK`){': ' + hint if hint else ''}. The loop was "
            f"traced in full (exact, without replay's speed). Compute such values from the index (`ptr + i * BLOCK`, "
            f"`min(BLOCK, n - i * BLOCK)`), keep them in tensors, or keep each handle in one "
            f"place (`prev, cur = cur, x`), to replay it (docs/language.md, 'tl.range')"),
            stacklevel=user_stacklevel())
    for loop, (head, outer, pes) in (no_replay.slow.items() if no_replay is not None else ()):
        if loop in no_replay or loop in no_replay.carried:
            continue
        also = f" (and on {len(pes) - 1} other PE{'s' if len(pes) > 2 else ''})" if len(pes) > 1 else ""
        warnings.warn(ReplayWarning(
            f"{head}{also}: tl.range{outer}: {CARRIED_KNOWN}. The loop was traced in full (exact, "
            f"without replay's speed: docs/language.md, 'tl.range')"), stacklevel=user_stacklevel())
    return builders


def _trace(ctx, kernel, grid: tuple, args: tuple, kwargs: dict, functional: bool, skip,
           replay: str, no_replay: InFull | None, unbound: TypeError | None = None) -> list:
    """One try of :func:`trace`: ``no_replay``, the loops traced in full (replay on or verify).
    ``unbound``: :func:`_check_kernel`'s error, raised if the kernel's call does not bind."""
    hw = ctx.hw
    nbr = ctx.neighbours()
    sfr_text = SfrText(ctx.sfr) if ctx.sfr is not None else "no SFR installed: call ctx.install_sfr()"
    builders: list = [None] * hw.n_pes
    verify = replay == "verify" and not functional
    tl = TL(grid, replay="on" if replay == "verify" else replay, no_replay=no_replay)
    store = TraceStore()
    n_programs, traced = grid[0] * grid[1], 0
    replayed: dict = {}  # verify mode: global PE -> its program traced with replay
    name, kfile, kline = kernel_where(kernel)

    def replayed_note(e, mark):
        if replay == "on" and tl._replay == "on" and store.replay_mark != mark:
            # raised after iterations whose Python replay skipped: Python state the body
            # carries (a counter, a running width) is a traced iteration's here (a review:
            # a load past its array with no word of replay; another: an assert on a count). A
            # note, shown with the traceback: the message stays full tracing's, as replay promises
            e.add_note("(tl.range iterations were replayed on this PE before this error, "
                       "without running their Python: if the loop body carries Python state "
                       "across iterations (a counter, a running width), replay='verify' tells "
                       "whether full tracing raises it too; docs/language.md, 'tl.range')")
        return e

    def run(b, p, c):
        tl._begin(b)
        mark = store.replay_mark  # (replay="on": iterations replayed so far)
        try:
            with _UNRAISABLE as swallowed:
                returned = kernel(*args, tl=tl, **kwargs)
                if returned is not None:
                    _check_returned(returned, name, (p, c), kfile, kline)
                del returned  # (what the kernel returned is freed in its program: its __del__'s)
                close_kept(b)  # (tl.range generators kept past the kernel's end: loops.close_kept)
            if swallowed:  # (a tl call in a local object's __del__ or a generator's finally as
                # the kernel returned: Python only prints what they raise; it is the program's)
                raise swallowed[0].exc_value
        except KernelError as e:
            # (tl's errors and a KernelError the kernel raises itself; kernbench's other errors
            # raised in a kernel, a ctx.free's PlacementError, are wrapped below as any other
            # exception: a review found them with no PE or line)
            if e.pe is None:  # (the kernel's own raise: where it was)
                file, line, _ = _kernel_site(e, kfile, kline)
                e.pe, e.where = (p, c), file_line(file, line, full=True)
            if tl._no_replay is not None:
                check_cut_short(b, e.__traceback__)  # (an error only a Python count made: traced again, in full)
            replayed_note(e, mark)
            raise
        except (Exception, GeneratorExit) as e:  # (GeneratorExit: a kernel's bug, not a stop)
            if tl._no_replay is not None:
                check_cut_short(b, e.__traceback__)  # (as above: an IndexError a count made, say)
            if unbound is not None and _bind_failed(kernel, e, unbound):
                raise unbound from None  # (a generic wrapper's call did not bind: the check's error)
            file, line, calls = _kernel_site(e, kfile, kline)
            if isinstance(e, AttributeError) and e.obj is tl:
                # (not a TL.__getattr__: it would slow every tl attribute access)
                raise KernelError(
                    f"{pe_at((p, c), file, line)}{calls}: {not_in_tl(e.name)}", pe=(p, c),
                    where=file_line(file, line, full=True)) from None
            if isinstance(e, AttributeError) and isinstance(e.obj, TensorHandle) and method_hint(e.name):
                raise KernelError(
                    f"{pe_at((p, c), file, line)}{calls}: a TensorHandle has no "
                    f"{'attribute' if e.name in ('numel', 'type') else 'method'} {e.name} (a Triton "
                    f"tensor's): write {method_hint(e.name)} (docs/language.md, 'Porting from "
                    f"Triton')", pe=(p, c), where=file_line(file, line, full=True)) from None
            why = _none_data_hint(e, file, line) or _stop_hint(e) or _int_hint(e) or _digits_hint(e)
            raise replayed_note(KernelError(
                f"kernel {name} raised {type(e).__name__} on {pe_label((p, c))} "
                f"(program_id(0)={p}, program_id(1)={c}) at {file_line(file, line)}{calls}: "
                f"{_call_text(e)}{why}",
                pe=(p, c), where=file_line(file, line, full=True),
            ), mark) from e
        except ReplayOffLine:
            raise
        except BaseException as e:
            # (SystemExit, KeyboardInterrupt, a library's BaseException: not the kernel's error to
            # wrap, but where it came from is said, as for any other: a review found it raw)
            file, line, calls = _kernel_site(e, kfile, kline)
            e.add_note(f"(raised while tracing kernel {name} on {pe_label((p, c))} "
                       f"(program_id(0)={p}, program_id(1)={c}) at "
                       f"{file_line(file, line)}{calls})")
            raise
        if b.left_range is not None:
            file, line, k, value = b.left_range
            raise ReplayContractError(
                f"{pe_at((p, c), file, line)}: tl.range replay (verify mode): "
                f"the kernel left this tl.range loop at iteration {k} (index {value}: a break or "
                f"return in its body, or its iterator left unfinished: a zip with a shorter "
                f"iterable, islice, next()), but replay emits the iterations it does not trace as if the "
                f"loop ran to its end. A tl.range loop runs all its iterations (docs/language.md, "
                f"'tl.range'): use range() for a loop that may stop early", pe=(p, c),
                where=file_line(file, line, full=True))
        # Compact now: the program's handles and Python lists go before the next one.
        b.finish()

    # A launch started inside a kernel: the outer launch's tl refuses calls until this one ends.
    outer = operator_targets()
    outer, held = (outer[-1], outer[-1]._wait()) if outer else (None, None)
    push_operator_target(tl)
    # Tracing allocates a few small tuples per command and no reference cycles; left on, the
    # cyclic GC rescans the growing command lists and halves tracing speed.
    pause_gc()
    try:
        for c in range(grid[1]):
            for p in range(grid[0]):
                g = c * hw.pes_per_cube + p
                if g in skip:
                    continue
                b = PEBuilder(p, c, g, functional=functional, memory=ctx.memory, nbr=nbr[g],
                              sfr_text=sfr_text, store=store, serial=tl._serial)
                b.kernel_file = kfile  # (its errors name the kernel's package's lines as its own)
                try:
                    run(b, p, c)
                except KernbenchError as e:
                    if not verify or not tl._ranged or getattr(e, "past_memory", False):
                        raise
                    # the error full tracing gives (or the contract violation that explains it),
                    # with the Python state full tracing leaves: the PEs before this one traced
                    # again in full first, in order (a loop replayed on one of them may have left
                    # state this PE read: a review's counter). If they do not trace again alike
                    # (their Python keeps state across PEs: a slot counter), that state is not
                    # full tracing's either: the error stands as the launch raised it. One that
                    # raises traced in full may raise full tracing's first error (replay skipped
                    # the iterations that raise it: a review's division by zero at iteration 37)
                    # or raise only now (a slot counter): the trace cannot tell which, so the
                    # error stands with a note naming that one.
                    again = True
                    for g2, b2 in replayed.items():
                        try:
                            full = _trace_full(run, ctx, functional, nbr[g2], sfr_text, tl, b2.pe,
                                               b2.cube, g2, kfile)
                        except KernbenchError as e2:
                            e.add_note(
                                f"(verify mode: traced again in full, {pe_label((b2.pe, b2.cube))} "
                                f"raises before it: {exc_text(e2)}. Either tl.range replay skipped "
                                f"the iterations that raise it there, or the kernel's Python keeps "
                                f"state across PEs; replay='off' gives full tracing's first error)")
                            again = False
                            break
                        try:
                            _compare_replayed(full, b2, (b2.pe, b2.cube))
                        except KernbenchError:
                            again = False
                            break
                    if not again:
                        raise
                    _verify(run, ctx, functional, nbr[g], sfr_text, tl, p, c, g, None, kfile)
                    what = exc_text(e) if isinstance(e, KernelError) else f"{type(e).__name__}: {exc_text(e)}"
                    raise ReplayContractError(
                        f"{pe_label((p, c))}: tl.range replay (verify mode) raised an error full tracing "
                        f"does not: {what} (docs/language.md, 'tl.range')", pe=(p, c),
                        where=getattr(e, "where", None)) from e
                if verify:
                    replayed[g] = b
                if b.n_commands:
                    builders[g] = b
                # Programs of one kernel emit about as many commands each: size the store for
                # the launch (with room to spare: it costs address space, a regrowth copies).
                traced += 1
                store.expect(store.n_traced * n_programs // traced * 5 // 4)
        if verify and tl._ranged:
            # after the whole launch, as replay="off" would trace it: any state the replayed
            # pass left behind is the launch's own, as with replay="on"
            for g, b in replayed.items():
                p, c = b.pe, b.cube
                try:
                    _verify(run, ctx, functional, nbr[g], sfr_text, tl, p, c, g, b, kfile)
                except KernbenchError as e:
                    # (the kernel's Python runs a second time here: a review's global counter,
                    # reset before the launch, went on from where the first pass left it; not on
                    # verify's own findings, which only this pass makes: a loop left early)
                    if not isinstance(e, ReplayContractError):
                        e.add_note(f"(raised in verify mode's second pass, {pe_label((p, c))} traced "
                                   f"again in full after the whole launch was traced with replay: the "
                                   f"kernel's Python ran twice, so state it keeps outside the launch (a "
                                   f"global counter) went on from the first pass. replay='off' traces once)")
                    raise
    except BaseException:
        store.abandon()  # (its builders go now, not at the next cyclic GC: a launch traced again)
        raise
    finally:
        tl._begin(None)  # a tl kept by the kernel refuses every call from now on
        pop_operator_target(tl)
        if outer is not None:
            outer._begin(held)
        forget_lines()
        resume_gc()
    return builders


def _verify(run, ctx, functional, nbr, sfr_text, tl, p, c, g, b, kfile) -> None:
    """Verify mode: trace PE (p, c) again in full, checking every iteration tl.range replay
    skipped, and compare with ``b`` (its program traced with replay)."""
    full = _trace_full(run, ctx, functional, nbr, sfr_text, tl, p, c, g, kfile)
    if b is not None:
        _compare_replayed(full, b, (p, c))


def _trace_full(run, ctx, functional, nbr, sfr_text, tl, p, c, g, kfile) -> PEBuilder:
    """Verify mode: PE (p, c) traced again in full, every iteration tl.range replay skipped
    traced: its builder, or the error full tracing raises there."""
    full = PEBuilder(p, c, g, functional=functional, memory=ctx.memory, nbr=nbr,
                     sfr_text=sfr_text, store=TraceStore(), serial=tl._serial)
    full.kernel_file = kfile
    tl._replay = "check"
    try:
        run(full, p, c)
    finally:
        tl._replay = "on"
    return full


#: verify's finding when a PE's program differs before any of its own iterations was replayed
_TRACED_OTHERWISE = ("the kernel's Python traced this PE otherwise the second time, before any of its "
                     "iterations was replayed (verify mode traces the launch with replay, then each "
                     "PE again in full)")
_WHY_OTHERWISE = ("Either the kernel keeps state outside the launch (a global, a mutable default "
                  "argument, an object's attribute) that went on from the first pass, or it reads "
                  "state that the iterations replay skipped on another PE would have changed (a PE "
                  "traced later reading what an earlier PE's loop body did: outside the tl.range "
                  "contract, docs/language.md). A launch's program must depend only on its "
                  "arguments; replay='off' traces once")


def _compare_replayed(full, b, pe: tuple) -> None:
    """Verify mode: PE ``pe``'s program traced with tl.range replay (``b``) must be the one
    traced in full (``full``): the same commands, tensors and pinned tensors."""
    ca, sa = full.trace_store.close()
    ta = full.trace_store.table
    cb, sb = b.trace_store.slice(b.cmd_start, b.cmd_end)
    tb = b.trace_store.table
    # Commands before this PE's first replayed row ran its Python in both passes: one that
    # differs there is not replay's doing on this PE (a review: verify blamed replay for a
    # helper's mutable default argument growing a shape); another PE's may still be (state its
    # skipped iterations would have changed), so the message names both
    first = b.trace_store.first_replayed(b.cmd_start, b.cmd_end) - b.cmd_start

    def python_first(j: int) -> bool:  # (nothing replayed on this PE: any j, its end too)
        return j < first or first == b.cmd_end - b.cmd_start

    ka = np.array([hash(k) for k in ta.keys], np.int64)[sa] if len(sa) else np.zeros(0, np.int64)
    kb = np.array([hash(k) for k in tb.keys], np.int64)[sb] if len(sb) else np.zeros(0, np.int64)
    n = min(len(ca), len(cb))
    diff = np.flatnonzero((ca[:n] != cb[:n]) | (ka[:n] != kb[:n]))
    if len(diff) or len(ca) != len(cb):
        j = int(diff[0]) if len(diff) else n

        def name(table, sites, cmds, j):
            if j >= len(sites):
                return "nothing (the program ends)"
            k = table.keys[int(sites[j])]
            c = cmds[j]
            return (f"{table.label(int(sites[j]))} at {file_line(k[1], k[2])} "
                    f"(operands {int(c['src0'])}, {int(c['src1'])}, {int(c['src2'])}; result {int(c['dst'])})")

        k = ta.keys[int(sa[j])] if j < len(sa) else tb.keys[int(sb[j])]
        if python_first(j):
            raise ReplayContractError(
                f"{pe_at(pe, k[1], k[2])}: {_TRACED_OTHERWISE}: command #{j} is {name(tb, sb, cb, j)} "
                f"in the first pass, {name(ta, sa, ca, j)} in the second. {_WHY_OTHERWISE}",
                pe=pe, where=file_line(k[1], k[2], full=True))
        raise ReplayContractError(
            f"{pe_at(pe, k[1], k[2])}: tl.range replay (verify mode) changes the program: command #{j} is "
            f"{name(tb, sb, cb, j)} with replay, {name(ta, sa, ca, j)} traced in full (operands and "
            f"results: this PE's tensor numbers). A tl.range body may depend on its index only "
            f"through addresses (not through a branch, `if i == 5`, nor a handle one keeps, "
            f"`if i == 1: keep = x`, or puts in a global list's slot the index picks, "
            f"`BUFS[i % 2] = x`), and the kernel may not keep "
            f"Python state across its iterations, for its own PE or for a PE traced after it: nor "
            f"handles more than two iterations old (a, b, c, d = b, c, d, new), nor, after a loop with "
            f"replay_last=True, a Python value its body assigned (the index included: it keeps a "
            f"traced iteration's value); write such a loop with range() (docs/language.md, 'tl.range')",
            pe=pe, where=file_line(k[1], k[2], full=True))
    ya, yb, pa, pb = full.tensor_bytes, b.tensor_bytes, full.tensor_pinned, b.tensor_pinned
    if not (np.array_equal(ya, yb) and np.array_equal(pa, pb)):
        # the first tensor that differs, named by the command that makes it
        n = min(len(ya), len(yb))
        bad = np.flatnonzero((ya[:n] != yb[:n]) | (pa[:n] != pb[:n]))
        t = int(bad[0]) if len(bad) else n
        made = np.flatnonzero(ca["dst"] == t)

        def tensor(y, pin) -> str:
            if t >= len(y):
                return "none (the program ends)"
            return f"{int(y[t])} bytes" + (" and pinned" if pin[t] else "")

        head, where, by = pe_label(pe), None, ""
        if len(made):
            k = ta.keys[int(sa[made[0]])]
            head, where = pe_at(pe, k[1], k[2]), file_line(k[1], k[2], full=True)
            by = f" (made by {ta.label(int(sa[made[0]]))} at {file_line(k[1], k[2])})"
            if python_first(int(made[0])):
                raise ReplayContractError(
                    f"{head}: {_TRACED_OTHERWISE}: tensor #{t}{by} is {tensor(yb, pb)} in the first "
                    f"pass, {tensor(ya, pa)} in the second. {_WHY_OTHERWISE}", pe=pe, where=where)
        raise ReplayContractError(f"{head}: tl.range replay (verify mode) changes the program's tensors: tensor "
                          f"#{t}{by} is {tensor(yb, pb)} with replay, {tensor(ya, pa)} traced in full "
                          f"(docs/language.md, 'tl.range')", pe=pe, where=where)


def _bytes_of(p: Program, a: int, z: int) -> np.ndarray:
    """Sizes of tensors a..z of ``p`` (int64), without building all of ``p.tensor_bytes`` from
    its sizes (Program.sizes: ``p`` keeps them)."""
    if p._tensor_bytes is None and p.sizes is not None:
        idx, table = p.sizes
        return table[idx[a:z].astype(np.intp)]
    return p.tensor_bytes[a:z]


def _merge_reused(program: Program, sites: np.ndarray, table: SiteTable, src, mapping: dict) -> tuple:
    """``program`` (the traced PEs) with PE g's stream taken from PE mapping[g] of the
    TracedLaunch ``src``: commands, tensor table and sites (renamed into ``table``)."""
    sp = src.program
    if sp.n_pes != program.n_pes:
        raise ValueError("reuse: the source launch was traced on a machine of another shape")
    # the source's site indices renamed into this launch's table (new keys appended)
    rename = np.array([table.add(k) for k in src.table.keys], np.int32)
    # where each PE's stream and tensors come from: (program, first, end) per PE
    cmd_src, ten_src = [], []
    for g in range(program.n_pes):
        if g in mapping:
            s = int(mapping[g])
            if program.cmd_offsets[g + 1] != program.cmd_offsets[g]:
                raise AssertionError(f"reuse: PE {g} was traced and reused")
            cmd_src.append((sp, sp.cmd_offsets[s], sp.cmd_offsets[s + 1]))
            ten_src.append((sp, sp.tensor_offsets[s], sp.tensor_offsets[s + 1]))
        else:
            cmd_src.append((program, program.cmd_offsets[g], program.cmd_offsets[g + 1]))
            ten_src.append((program, program.tensor_offsets[g], program.tensor_offsets[g + 1]))
    cmd_off = np.zeros(program.n_pes + 1, np.int64)
    np.cumsum([z - a for _, a, z in cmd_src], out=cmd_off[1:])
    ten_off = np.zeros(program.n_pes + 1, np.int64)
    np.cumsum([z - a for _, a, z in ten_src], out=ten_off[1:])
    tb = sizes = None
    if sp.sizes is not None and sp._tensor_bytes is None and all(p is sp or a == z for p, a, z in ten_src):
        # (the source's sizes as indices into its table, kept so: Program.sizes)
        sizes = (np.concatenate([sp.sizes[0][a:z] for p, a, z in ten_src]), sp.sizes[1])
    else:
        tb = np.concatenate([_bytes_of(p, a, z) for p, a, z in ten_src]).astype(np.int64, copy=False)
    tp = np.concatenate([p.tensor_pinned[a:z] for p, a, z in ten_src]).astype(np.uint8, copy=False)
    if cmd_off[-1] == sp.n_commands and all(a == z or (p is sp and a == cmd_off[g])
                                            for g, (p, a, z) in enumerate(cmd_src)):
        # Every stream sits where it sits in the source (diag's multi_user panels: the single_user
        # ranks moved to PE 0 of each cube, the PEs between them silent): share the source's
        # commands (or their compact form) instead of copying them.
        same = np.array_equal(rename, np.arange(len(rename)))
        return (sp.moved(cmd_off, tb, tp, ten_off, sizes),
                src.sites if same else rename[src.sites], table)
    cmds = np.concatenate([p.commands[a:z] for p, a, z in cmd_src])
    sts = np.concatenate([rename[src.sites[a:z]] if p is sp else sites[a:z] for p, a, z in cmd_src])
    return Program(cmds, cmd_off, tb, tp, ten_off, sizes=sizes), sts.astype(np.int32, copy=False), table


def trace_launch(ctx, kernel, grid, args: tuple, kwargs: dict, *, mode: str = "functional",
                 reuse=None, replay=None, values: bool = True) -> tuple:
    """Check and trace one launch: ``(TracedLaunch, metas, handles)``, the last two the replay
    metadata of functional mode (None in timing mode). See Context.trace.

    ``reuse = (traced, {g: g_src})`` (timing mode only): PE g's stream is not traced but copied
    from PE g_src of the TracedLaunch ``traced``; every other PE is traced. The caller asserts
    that tracing PE g here would emit exactly PE g_src's stream there (kernbench.diag uses it for
    panels whose per-rank streams are the same, tests/test_trace_reuse.py checks it).
    ``replay``: tl.range loop replay, "on", "off" or "verify" (None: KERNBENCH_REPLAY, else on).
    ``values=False`` (ctx.trace): no replay follows, so the arrays the kernel was given or
    reached are marked as a timing launch's (a read of a copy nothing wrote warns)."""
    replay = replay_mode(replay)
    hw = ctx.hw
    if not isinstance(mode, str) or mode not in MODES:  # (an array's `in` is numpy's error)
        raise ValueError(f"mode must be one of {MODES}, got {short_repr(mode)}")
    unbound = _check_kernel(kernel, args, kwargs)
    kname, kfile, _ = kernel_where(kernel)
    grid = _check_grid(hw, grid)
    for key, path, a, what in _device_arrays(args, kwargs):
        if a._memory is not ctx.memory:
            # Its address means nothing here: the kernel would read whatever this Context holds
            # at it (another allocation, or nothing).
            raise ValueError(
                f"launch argument {_arg_name(kernel, key)}{path} ({what}) belongs to another "
                f"Context: expected a device array of this Context (from its put, shard, "
                f"replicate, empty or empty_like), or an address into one")
        if a.freed:
            raise PlacementError(f"launch argument {_arg_name(kernel, key)}{path} ({what}) was freed")
    # Kernels see pointers as plain ints: pointer arithmetic stays int arithmetic.
    k_args = tuple(_plain(a) for a in args)
    k_kwargs = {k: _plain(a) for k, a in kwargs.items()}
    functional = mode == "functional"

    # Tracing, program assembly and replay make a few small acyclic objects per command; the
    # cyclic GC would rescan them over and over (it once took half of a launch's time), and
    # reference counting frees them anyway. Paused for the trace, restored after.
    pause_gc()
    try:
        if reuse is not None and functional:
            raise ValueError("reuse: functional mode replays values per PE; reuse is timing mode only")
        skip = frozenset(reuse[1]) if reuse is not None else frozenset()
        nbr, sfr = ctx.neighbours(), ctx.sfr  # the wiring the trace checks the links against
        builders = trace(ctx, kernel, grid, k_args, k_kwargs, functional, skip, replay, unbound)
        # by value: the same wiring installed again (another thread's setup) changes no link
        if ctx.sfr != sfr or not np.array_equal(ctx.neighbours(), nbr):
            raise ValueError(f"the SFR install changed while the kernel was traced, from "
                             f"{'none' if sfr is None else sfr.describe()} to "
                             f"{'none' if ctx.sfr is None else ctx.sfr.describe()} (install_sfr called "
                             f"from the kernel, or from another thread during the launch?): install the "
                             f"wiring before the launch")
        metas = handles = None
        if functional:
            metas = [None if b is None else b.meta for b in builders]
            handles = [None if b is None else (b.handles, b.views) for b in builders]
        program, sites, table = _assemble(hw, builders)
        store = next((b.trace_store for b in builders if b is not None), None)
        if not values:
            _mark_last_launch(args, kwargs, computed=False)
            for a in store.reached.values() if store is not None else ():
                a.timed = True
        replayed = store.replayed if store is not None else 0
        loops = loop_replays(store) if store is not None else ()
        if replay == "verify" and program.compact is not None:
            # its two readers, the C reader the engine uses and the expansion, agree byte for
            # byte (each PE's rows were compared with full tracing above)
            cp = program.compact
            if not np.array_equal(cp.expand().view(np.uint8), cp.rows(0, cp.n).view(np.uint8)):
                raise AssertionError("kernbench: TiledCommands.expand() differs from its rows(): "
                                     "please report it with the kernel")
        if reuse is not None:
            program, sites, table = _merge_reused(program, sites, table, *reuse)
        # From here on only the arrays, the sites and (functional) the replay metadata are kept:
        # the builders go, so tensors the kernel did not hold on to are freed as replay goes.
        del builders
        traced = TracedLaunch(
            program=program, sites=sites, table=table, neighbours=nbr, sfr=sfr,
            grid=grid, mode=mode, shape=(hw.n_cubes, hw.pes_per_cube),
            kernel_name=kname, kernel_file=kfile,
            args=_named_args(kernel, args, kwargs), replayed_rows=replayed, loops=loops)
        moved = None
        if reuse is not None and "program" in reuse[0]._prepared:
            # streams moved, not changed: the source's checked tables, renumbered for these PEs
            moved = moved_tables(reuse[0]._prepared["program"], reuse[0].program, program)
        _check_and_prepare(hw, traced, moved)
    finally:
        resume_gc()
    return traced, metas, handles


def launch(ctx, kernel, grid, args: tuple, kwargs: dict, *, mode: str = "functional",
           detail: str = "train", max_cycles=None, record_events: bool = False,
           strict_sram: bool = False, drift=False, reuse=None, replay=None, steady: bool = True) -> LaunchResult:
    """Trace, time and (in functional mode) replay one launch; see Context.launch (``reuse``:
    see trace_launch)."""
    tolerance = drift_tolerance(drift)
    if tolerance is not None and mode != "functional":
        raise ValueError("drift replays the numbers in float64: it needs mode='functional' (timing "
                         "mode carries shapes only)")
    traced, metas, handles = trace_launch(ctx, kernel, grid, args, kwargs, mode=mode, reuse=reuse,
                                          replay=replay)
    result = time_traced(ctx, kernel, args, kwargs, traced, metas, handles, mode=mode, detail=detail,
                         max_cycles=max_cycles, record_events=record_events, strict_sram=strict_sram,
                         tolerance=tolerance, steady=steady)
    _mark_last_launch(args, kwargs, computed=mode == "functional")
    return result


def _mark_last_launch(args, kwargs, computed: bool) -> None:
    """The arguments' last launch: a read of a copy nothing has written warns after one that
    computed no values (a timing-mode launch; ctx.trace in either mode), not after a functional
    one (unwritten by design; its stores clear the flag through pointers too). Arrays passed as
    arrays only: an int may be a size that equals an address."""
    for _, _, a, _ in _device_arrays(args, kwargs):
        a.timed = not computed


def _plain(a):
    """A launch argument as the kernel gets it: a device array or a pointer into one as its
    plain int address, anything else as it is."""
    if isinstance(a, DeviceArray):
        return a.addr
    return int(a) if isinstance(a, DevicePointer) else a


#: how deep :func:`_device_arrays` looks into containers (a launch's arguments are flat or
#: nearly: a tuple of pointers, a dict of arrays), and the most items of a container whose
#: containers it looks into
_NESTING, _WIDE = 4, 4096


def _device_arrays(args: tuple, kwargs: dict):
    """(argument key, path inside it, array, what it is for an error) of every DeviceArray
    among a launch's arguments, and of every DevicePointer's (an address into one: arr +
    nbytes): themselves, or inside tuples, lists, dicts (their values) and dataclass instances
    (their fields) up to _NESTING deep (past _WIDE items, a container's own only). The kernel receives an argument's address, a
    contained array as itself (semantic.region checks it at its load or store too)."""
    def found(v):  # (array, what) of an array or a pointer into one, else None
        if isinstance(v, DeviceArray):
            return v, f"device array {short_repr(v.name)} at {v.addr:#x}"
        if isinstance(v, DevicePointer):
            return v.array, f"{int(v):#x}, an address into device array {short_repr(v.array.name)}"
        return None

    def walk(x, path, depth):
        if _is_record(x):  # (a dataclass's fields: a.o, as the kernel reads it)
            items = [(f".{f.name}", _field_or_none(x, f.name)) for f in dataclasses.fields(x)]
            values = [v for _, v in items]
        else:
            values = x.values() if isinstance(x, dict) else x
            items = None
        # (the element types, gathered in C: a long list of numbers is passed over at once,
        # and a long one of containers is not looked into: a table, not arrays)
        types = set(map(type, values))
        deeper = depth < _NESTING and len(values) <= _WIDE and any(
            issubclass(t, (tuple, list, dict)) or dataclasses.is_dataclass(t) for t in types)
        if not deeper and not any(issubclass(t, (DeviceArray, DevicePointer)) for t in types):
            return
        if items is None:
            items = ((f"[{short_repr(k)}]", v) for k, v in (x.items() if isinstance(x, dict) else enumerate(x)))
        for k, v in items:
            f = found(v)
            if f is not None:
                yield (path + k, *f)
            elif deeper and (isinstance(v, (tuple, list, dict)) or _is_record(v)):
                yield from walk(v, path + k, depth + 1)

    for key, a in [*enumerate(args), *kwargs.items()]:
        f = found(a)
        if f is not None:
            yield (key, "", *f)
        elif isinstance(a, (tuple, list, dict)) or _is_record(a):
            for path, arr, what in walk(a, "", 1):
                yield key, path, arr, what


def _field_or_none(x, name: str):
    """Field ``name`` of dataclass instance ``x``, or None when reading it raises (a property
    or descriptor of its own: the kernel may never read it, and the launch ran before
    arguments were looked into)."""
    try:
        return getattr(x, name)
    except Exception:
        return None


def _is_record(x) -> bool:
    """A dataclass instance (not the class): its fields are looked into as a container's items."""
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def time_traced(ctx, kernel, args, kwargs, traced, metas, handles, *, mode, detail="train",
                max_cycles=None, record_events=False, strict_sram=False, tolerance=None,
                release=True, steady=True) -> LaunchResult:
    """The rest of :func:`launch` after :func:`trace_launch`: time, replay (functional mode),
    warn of unwritten reads. ``release``: drop the tables only the link pairing reads before
    timing (api.drop_pairing_inputs), and the engine's tables and the command array (when
    tl.range replay can rebuild it) afterwards (TracedLaunch.release; False: the caller times
    the trace again or copies it)."""
    pause_gc()
    try:
        if release:  # (timed once, on the wiring it was prepared for: the pairing is done)
            drop_pairing_inputs(traced._prepared)
        result = traced.time(ctx.hw, detail=detail, max_cycles=max_cycles,
                             record_events=record_events, strict_sram=strict_sram, steady=steady)
        unwritten = []
        written = ()
        # the stores replay makes, put back if the launch fails before it returns (a Ctrl-C
        # reading the results back, after replay itself: a review), as if replay raised
        undo = _Undo() if mode == "functional" else None
        try:
            if mode == "functional":
                shadow = None if tolerance is None else Shadow(traced.program, result.engine, metas, tolerance)
                unwritten = replay(traced.program, result.engine, metas, handles, ctx.memory, shadow, undo)
                written = _written_args(kernel, args, kwargs, traced.program, metas)
                if shadow is not None:
                    result.drift = shadow.result()
                    del shadow
            # A launch times its trace once: drop the engine's tables and (when tl.range replay
            # can rebuild it) the command array; the result's labels keep the TracedLaunch alive,
            # and what reads the commands later (reports, traces) gets them back exactly
            if release:
                traced.release()
        except BaseException:
            if undo is not None:
                undo.restore(ctx.memory)
            raise
    finally:
        resume_gc()

    if unwritten and ctx.memory.unwritten == "nan":
        u = unwritten[0]
        k = len(unwritten) - 1
        more = ("" if not k else f" (and {k} more loads: LaunchResult.unwritten_reads)"
                if k + 1 < MAX_UNWRITTEN_READS else
                f" (and at least {k} more loads: LaunchResult.unwritten_reads holds the first "
                f"{MAX_UNWRITTEN_READS})")
        warnings.warn(UnwrittenReadWarning(
            f"{pe_at(u['pe'], *u['where'].rsplit(':', 1))}: load reads element {u['element']} of {short_repr(u['array'])}, "
            f"which nothing has written: it holds NaN (int32: -2**31). Store to it, place data with "
            f"ctx.put/shard/replicate, or use Context(unwritten='zero'){more}"), stacklevel=user_stacklevel())
    result.unwritten_reads = unwritten
    result.written_args = written
    return result


def _arg_name(kernel, key) -> str:
    """A launch argument named for an error: the kernel's parameter name (keyword arguments by
    their keyword, positional ones by the parameter they bind to), else its position."""
    if isinstance(key, str):
        return repr(key)
    sigs = _signatures(kernel)
    params = [p.name for p in sigs[0].parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)] if sigs else []
    return f"{short_repr(params[key])} (positional #{key})" if key < len(params) else f"#{key} (positional)"


def argument_arrays(kernel, args: tuple, kwargs: dict) -> dict:
    """Name -> DeviceArray of every device array among a launch's arguments, named as
    LaunchResult.args names them (the parameter it binds to) and, inside ``*args``,
    ``**kwargs`` or a tuple, list, dict or dataclass, by its path in it: ``args[1]``,
    ``kws['o']``, ``a.o``."""
    out = {}
    for k, v in _bound(kernel, args, kwargs):
        if isinstance(v, DeviceArray):
            out.setdefault(str(k), v)
        elif isinstance(v, (tuple, list, dict)) or _is_record(v):
            for _key, path, a, what in _device_arrays((v,), {}):
                if what.startswith("device array"):  # (itself, not an address into it)
                    out.setdefault(f"{k}{path}", a)
    return out


def _written_args(kernel, args: tuple, kwargs: dict, program: Program, metas: list) -> tuple:
    """Names (:func:`argument_arrays`) of the device-array arguments some store wrote to."""
    stores = np.flatnonzero(program.commands["opcode"] == Opcode.STORE)
    pes = np.searchsorted(program.cmd_offsets, stores, side="right") - 1
    local = stores - program.cmd_offsets[pes]
    stored = {id(metas[g][i][4]) for g, i in zip(pes.tolist(), local.tolist())}  # the allocation
    return tuple(k for k, v in argument_arrays(kernel, args, kwargs).items() if id(v) in stored)


def _bound(kernel, args: tuple, kwargs: dict) -> list:
    """(parameter name or position, value) of every launch argument, by the first of the
    kernel's signatures (:func:`_signatures`) they bind to."""
    for sig in _signatures(kernel):
        try:
            return list(sig.bind_partial(*args, **kwargs).arguments.items())
        except TypeError:
            continue
    return list(enumerate(args)) + list(kwargs.items())


def _named_args(kernel, args: tuple, kwargs: dict) -> dict:
    return {str(k): arg_repr(v) for k, v in _bound(kernel, args, kwargs)}
