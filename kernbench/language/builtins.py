"""The ``tl`` object handed to kernels: thin, documented calls.

Each call checks its arguments in :mod:`kernbench.language.semantic` (errors name the PE (pe,
cube) and the kernel line) and then emits PE commands through
:class:`kernbench.language.builder.PEBuilder`. Nothing is computed while tracing: a call returns a
:class:`~kernbench.common.pe_commands.TensorHandle` naming the tensor its command will produce.
Numbers come later, from functional replay. docs/language.md is the reference.
"""
from __future__ import annotations

import builtins
import enum
import math
from typing import Any, SupportsIndex

import numpy as np

from ..common.errors import (KernbenchError, KernelError, NotInLanguageError, as_flag, file_line, is_whole,
                             pe_label)
from ..common.pe_commands import CastFlag, DType, Flag, MaybeStr, Number, Operand, TensorHandle, operator_targets
from ._caller import this_thread
from ._handles import handle_id, handle_shape, view_of
from .loops import TlRange
from . import semantic
from .builder import PEBuilder
from .numerics import cast_value, f32_of_int, view_value
from .porting import NOT_IN_TL, TL_INSTEAD, not_in_tl
from .semantic import (
    FLOAT_DTYPES,
    PY_FLOAT,
    PY_INT,
    SHIFT,
    TransposedView,
    binary_types,
    broadcast,
    check_dtype,
    check_shape,
    dot_shapes,
    fail,
    float_operand,
    numel,
    port_of,
    reduce_dtype,
    scalar_kind,
    site_frame,
    unary_types,
)

__all__ = ["TL"]


def _cache_hints(tr, verb: str, cache_modifier, eviction_policy, volatile) -> None:
    """Triton's cache hints of a load or store: strings (and a bool), accepted and ignored."""
    for name, v in (("cache_modifier", cache_modifier), ("eviction_policy", eviction_policy)):
        if v is not None and not isinstance(v, str):
            fail(tr, f"{verb}: {name} is a Triton cache hint, a str such as '.cg' or 'evict_last' "
                     f"(ignored: the model has no cache), got {type(v).__name__} {v!r}")
    if volatile is not None and as_flag(volatile) is None:
        fail(tr, f"{verb}: volatile is True or False (ignored: the model has no cache), got {volatile!r}")


def _block_pointer_args(tr, verb: str, boundary_check, padding_option) -> None:
    """Triton's block-pointer keywords of a load or store: their defaults (``()``, ``""``, or
    any empty sequence) accepted, anything else refused saying what to write."""
    for name, v in (("boundary_check", boundary_check), ("padding_option", padding_option)):
        try:  # (Triton's defaults: an empty tuple, list or array; "")
            default = v is None or len(v) == 0
        except TypeError:  # (no len: a number)
            default = False
        if not default:
            how = ("loaded with shape= from a base address, its edges masked with mask= and "
                   "padded with other=" if verb == "load" else
                   "stored to a base address, its edges masked with mask=")
            fail(tr, f"{verb}: {name}= is for Triton's block pointers (tl.make_block_ptr), which "
                     f"kernbench has not: a tile is {how} (docs/language.md, 'Porting from Triton')")


def _builder(tl) -> PEBuilder:
    """The builder ``tl`` traces into (compiled: a C call returning its C type, builtins.pxd),
    or the error of a tl that is not tracing a program of this thread (_not_tracing)."""
    o = tl._b
    if type(o) is not PEBuilder and not isinstance(o, PEBuilder):
        _not_tracing(o)
    b = o
    if b.thread != this_thread():
        _not_tracing(b)
    if b.finished:  # (a call from a callback run as the program ends: its tables are gone)
        semantic.program_ended(b)
    return b


def _not_tracing(b):
    """Raise the error of a tl call whose ``tl`` is not tracing a program of this thread: ``b``
    stands in for its builder (a _NoProgram) or is another thread's. The error names the PE and
    line of the program this thread traces, if any (the call is then that kernel's), else the
    line that called (``pe`` None)."""
    other = b if isinstance(b, PEBuilder) else b.waiting  # (the builder of a tl waiting)
    if other is not None and other.thread != this_thread():
        why = (f"this tl is tracing {pe_label((other.pe, other.cube))} on another thread. A "
               f"kernel must use the tl it is passed, on the thread the launch calls it on (a tl "
               f"kept in a global or a closure is another launch's; a decorator that runs the "
               f"kernel on a thread pool runs it away from its launch)")
    else:
        why = b.why
    here = operator_targets()
    tr = here[-1]._b if here else None
    if isinstance(tr, PEBuilder) and tr.thread == this_thread():
        fail(tr, why)
    # (a thread tracing nothing: one the kernel started, the host after the launch. It has no
    # program whose PE to name, but the line that called is named, as a kernel's would be)
    file, line = semantic.user_line(other.kernel_file if other is not None else None)[1]
    if line:
        raise KernelError(f"at {file_line(file, line)}: {why}", where=file_line(file, line, full=True))
    raise KernelError(why)


class _NoProgram:
    """Stands in for the builder while ``tl`` traces no program (after its launch, or while a
    launch started inside its kernel runs): any use of ``tl`` then is a clear error, not an
    AttributeError from deep inside a call."""

    __slots__ = ("why", "waiting")

    def __init__(self, why: str, waiting=None) -> None:
        self.why = why
        self.waiting = waiting  #: the builder of a tl waiting for a nested launch

    def __getattr__(self, name):
        _not_tracing(self)


class _Unset:
    """An argument not given (where's two spellings, kernbench's cond/a/b and Triton's
    condition/x/y; softmax's axis beside Triton's dim)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not given>"


_UNSET = _Unset()


def _one_of(tr, call: str, name: str, mine, theirs):
    # one argument given by kernbench's name or Triton's, not both, not neither
    if (mine is _UNSET) == (theirs is _UNSET):
        fail(tr, f"{call}: {name} given {'twice' if mine is not _UNSET else 'not at all'} "
                 f"(where(cond, a, b), or Triton's where(condition, x, y))")
    return theirs if mine is _UNSET else mine


_NO_PROGRAM = _NoProgram("this tl object is not tracing a program: its launch has ended. A kernel "
                         "must use the tl it is passed, during its own launch")
_WAITING = ("this tl's launch is waiting for the launch its kernel started (a nested ctx.launch) "
            "to end: the nested kernel must use the tl it is passed")

semantic.register_internal(__file__)

_fmt = semantic.fmt_shape


def _from_right(shape: tuple) -> tuple:
    """The non-1 axes of ``shape`` as (place from the right, size): what broadcasting aligns."""
    return tuple((len(shape) - i, d) for i, d in enumerate(shape) if d != 1)


def _added(s: tuple, key: tuple) -> tuple:
    """Shape ``s`` indexed with ``key`` (':', None and at most one '...'), the axes the key
    leaves out implied at its end, as numpy and Triton index."""
    real = sum(1 for k in key if k is not None and k is not Ellipsis)
    new, ax = [], 0
    for k in key:
        if k is None:
            new.append(1)
        elif k is Ellipsis:
            new.extend(s[ax:ax + len(s) - real])
            ax += len(s) - real
        else:
            new.append(s[ax])
            ax += 1
    return tuple(new) + tuple(s[ax:])


def _triton_kept(s: tuple, key: tuple):
    """For ``s`` indexed with ``key`` (a None in it, fewer axes than ``s`` has: a 1-D tensor's
    key in Triton, `v[:, None]`, `v[None, :]`), a size-1 axis j of ``s`` that, were it
    a reduction's kept axis (Triton drops it), gives Triton's result: (j, its shape), the j
    whose result is ``s`` itself first (the key re-adds the kept axis: drop it), else the
    first. None when ``s`` has no size-1 axis or the key has '...'. Whichever it is, ``s``
    indexed has an axis more than Triton's result: even where it broadcasts alike (`(1,N)[None, :]`,
    (1,1,N) against Triton's (1,N)), a later reduction's axis number names another axis (a
    review: a column normalisation's second tl.sum(x, 0) reduced the new size-1 axis)."""
    if Ellipsis in key:
        return None
    found = None
    for j, d in enumerate(s):
        if d == 1:
            theirs = _added(s[:j] + s[j + 1:], key)
            if theirs == s:
                return j, theirs
            if found is None:
                found = (j, theirs)
    return found


def _key_text(key: tuple) -> str:
    """An indexing key as the kernel wrote it: (slice(None), None) -> "[:, None]"."""
    return "[" + ", ".join("None" if k is None else "..." if k is Ellipsis else ":" for k in key) + "]"


_I32_MIN, _I32_MAX = -(2 ** 31), 2 ** 31 - 1
#: ints below this in magnitude are exact in f64, so float() then f32 rounds them once
_F64_EXACT = 2.0 ** 53


def _imm(tr, x, kind: str, ct: str):
    """Python number ``x`` (of scalar kind ``kind``) as an immediate of a ``ct`` op: a float for
    float ops, a numpy int64 for int32 ops (replay tells immediates from tensor numbers by type)."""
    if ct == "int32" or ct == "bool":
        v = int(x)
        if not _I32_MIN <= v <= _I32_MAX:
            shown = f"float {float(x)!r}" if isinstance(x, (float, np.floating)) else f"int {v}"
            fail(tr, f"the Python {shown} does not fit an int32 operand (-2**31 .. 2**31 - 1)")
        return np.int64(v)
    try:
        f = float(x)  # (not v: Cython would type v a C double for the int path too)
    except OverflowError:  # (an int past f64's range; one within it is an f32 constant, inf if past f32's)
        _past_f64(tr, "a float operand", x)
    if kind == PY_INT and not -_F64_EXACT < f < _F64_EXACT:
        f = f32_of_int(int(x))
    if ct == "fp8e4m3":
        _e4m3_number(tr, f, "an fp8e4m3 operand", x)
    return f


def _past_f64(tr, what: str, x) -> None:
    """Refuse a Python int too large for any float (its digits abbreviated: semantic.kernel_error)."""
    fail(tr, f"the Python int {int(x)} is too large for {what}: past f64's range, it has no f32 "
             f"constant")


#: the largest magnitude that rounds to a finite fp8e4m3 (448 is its largest value; past 464
#: rounding gives NaN: it has no infinity)
_E4M3_FINITE = 464.0


def _e4m3_number(tr, v: float, what: str, given=None,
                 fix: str = "or cast the tensor to f16/f32 first") -> None:
    """Refuse a Python number that fp8e4m3 cannot hold: a number is an f32 constant cast to its
    operand's dtype, and this one would be NaN (fp8e4m3, the 'fn' variant, has no infinity), so
    a mask's -inf or a bound like 1000 would turn every result it reaches into NaN, silently."""
    with np.errstate(over="ignore"):
        f = np.float32(v)  # (the constant: 464.0000001 is 464 there, which rounds to 448)
    if abs(float(f)) > _E4M3_FINITE:  # (NaN compares False: a NaN asked for stays NaN)
        # (its value as a float; past a float's range, as given: str, numpy's repr names its type)
        shown = repr(v) if given is None or math.isfinite(v) else str(given)
        fail(tr, f"the Python number {shown} has no fp8e4m3 value for {what}: fp8e4m3 has no "
                 f"infinity and rounds magnitudes above 464 to NaN (448 is its largest). Use a "
                 f"finite value (-448 as a mask's -inf), {fix}")


def _bool_arg(tr, v, what: str) -> bool:
    """A bool argument of kernbench's own (load's pinned, tl.range's flags, cast's saturate
    besides the numbers it takes): True or False, or a numpy bool (a sweep's axis of
    np.array([True, False])) as its value; anything else is refused (a string "False" is true by
    truth, an int may be a count). Triton's keywords are read as Triton reads them instead
    (_flag)."""
    flag = as_flag(v)
    if flag is not None:
        return flag
    fail(tr, f"{what} must be True or False (or a numpy bool), got {type(v).__name__} {v!r}")


def _range_of(tr, call: str, start, stop, step) -> range:
    """``range(start, stop, step)`` for tl.range and tl.static_range, ``range(0, start, step)``
    without ``stop`` and ``step`` None as 1 (Triton's), or a KernelError saying what a bound
    must be (Python's own TypeError or ValueError named neither the call nor the rule, a
    review found)."""
    if step is None:  # (Triton's: None is 1)
        step = 1
    try:  # (Triton's: without stop, start is the stop and step is kept: tl.range(10, step=3))
        return range(0, start, step) if stop is None else range(start, stop, step)
    except KernbenchError:
        raise  # (a tensor as a bound: its own error, at this line)
    except (TypeError, ValueError) as e:
        given = (("start", start), ("stop", stop), ("step", step)) if stop is not None else \
            (("start", start), ("step", step))
        # (an array has __index__, and its == is elementwise: numpy's ambiguous truth, a review)
        bad = [(n, v) for n, v in given if not hasattr(v, "__index__") or isinstance(v, np.ndarray)]
        what = (f"{bad[0][0]} is {type(bad[0][1]).__name__} {bad[0][1]!r}" if bad
                else "step is 0" if is_whole(step) and step == 0 else str(e))
        fail(tr, f"{call}(start, stop, step): {what}; the bounds are ints (as range's), step not 0")


def _grid_axis(axis) -> bool:
    """A grid axis: an int (errors.is_whole: Python or numpy, not a bool) 0 or 1."""
    return (type(axis) is int or is_whole(axis)) and (axis == 0 or axis == 1)


def _binary(self, a, b, name: str) -> TensorHandle:
    """What the TL method for elementwise ``name`` of two operands (tensors or Python numbers)
    does (compiled: a C function, builtins.pxd, each method one call into it).

    The hottest path of tracing, so PEBuilder.operand's fast path is inlined here;
    anything unusual (views, bad values, foreign handles) goes through PEBuilder.operand."""
    tr: PEBuilder = _builder(self)
    f = site_frame()
    tens = tr.tensors.tail  # (the tensors since the last replayed loop; earlier ones: operand)
    t0 = tr.tensors.tail0
    base = tr.base
    ta = tb = None
    if type(a) is TensorHandle:
        sa = handle_id(a)
        if type(sa) is int:  # (any other id: operand's checks and errors)
            sa -= base
            if sa >= t0:
                try:
                    ta = tens[sa - t0]
                except IndexError:
                    ta = None
                if ta is not None and handle_shape(a) is not ta[0]:
                    ta = None
        if ta is None:
            sa, ash, da, s0, n = tr.operand(a, f"{name} operand")
        else:
            s0 = sa
            ash, da, n = ta
        ka = da
    elif isinstance(a, TensorHandle):
        sa, ash, da, s0, n = tr.operand(a, f"{name} operand")
        ka = da
    else:
        sa = None
        ka = PY_FLOAT if type(a) is float else scalar_kind(a)
        if ka is None:
            fail(tr, f"{name}: expected a tensor or a Python number, got {type(a).__name__}")
    if type(b) is TensorHandle:
        sb = handle_id(b)
        if type(sb) is int:
            sb -= base
            if sb >= t0:
                try:
                    tb = tens[sb - t0]
                except IndexError:
                    tb = None
                if tb is not None and handle_shape(b) is not tb[0]:
                    tb = None
        if tb is None:
            sb, bsh, db, s1, nb = tr.operand(b, f"{name} operand")
        else:
            s1 = sb
            bsh, db, nb = tb
        kb = db
    elif isinstance(b, TensorHandle):
        sb, bsh, db, s1, nb = tr.operand(b, f"{name} operand")
        kb = db
    else:
        sb = None
        kb = PY_FLOAT if type(b) is float else scalar_kind(b)
        if kb is None:
            fail(tr, f"{name}: expected a tensor or a Python number, got {type(b).__name__}")
    # (by name, then kind, then kind: three lookups of interned strings cost less than making,
    # hashing and comparing a key tuple each call)
    by_a = _BINARY_TYPES.get(name)
    by_b = by_a.get(ka) if by_a is not None else None
    types = by_b.get(kb) if by_b is not None else None
    if types is None:
        types = binary_types(name, ka, kb)
        _BINARY_TYPES.setdefault(name, {}).setdefault(ka, {})[kb] = types
    if type(types) is str:
        fail(tr, types)
    ct, out = types
    if sa is not None:
        like = ta
        if sb is not None:
            if ash is not bsh and ash != bsh:
                ash = broadcast(tr, ash, bsh, name)
                n = numel(ash)
                like = None
            ops = (sa, sb)
        else:
            if name in _CHECK_SCALAR:
                _check_scalar(tr, name, b, ct)
            ops, s1 = (sa, float(b) if kb is PY_FLOAT and ct in _WIDE_FLOATS else _imm(tr, b, kb, ct)), -1
    elif sb is not None:
        ops, s0, s1, ash, n, like = (float(a) if ka is PY_FLOAT and ct in _WIDE_FLOATS
                                     else _imm(tr, a, ka, ct), sb), s1, -1, bsh, nb, tb
    else:
        num = {"minimum": " (Python's min(a, b) for numbers)", "maximum": " (Python's max(a, b) for "
               "numbers)"}.get(name, " (Python's own operator for numbers)")
        fail(tr, f"{name} needs at least one tensor operand, got {type(a).__name__} and "
                 f"{type(b).__name__}{num}")
    if like is not None and like[1] != out:
        like = None
    return tr.vec(f, name, ops, s0, s1, -1, ash, n, out, like, ct)



_FLOATS = frozenset(FLOAT_DTYPES)
#: float dtypes that every float Python number rounds to without NaN (_imm checks the others)
_WIDE_FLOATS = _FLOATS - {"fp8e4m3"}
_CHECK_SCALAR = ("floordiv", "mod", "shl", "shr")
#: What _binary and _unary learn, shared by every launch (they hold only the language's rules):
#: name -> operand kind -> operand kind -> binary_types(...), name -> dtype -> unary_types(...)
#: (dicts: a lookup and an insert are thread-safe, and a race only computes a value twice).
_BINARY_TYPES: dict = {}
_UNARY_TYPES: dict = {}
#: unary op -> how its operand is named in messages
_UNARY_OPERAND = {name: f"{name} operand" for name in (
    "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sigmoid", "neg", "abs", "invert")}


def _check_scalar(tr, name: str, x, ct: str) -> None:
    """A Python-number right operand that is always wrong: a divisor of 0 in integer ``//`` or
    ``%`` (a float ``%`` by 0 is fmod's NaN), a shift count outside 0..31."""
    if name in SHIFT:
        if not 0 <= int(x) <= 31:
            fail(tr, f"{semantic.OP_SYMBOL[name]}: shift count {x!r} is outside 0..31")
    elif ct == "int32" and scalar_kind(x) != PY_FLOAT and int(x) == 0:
        fail(tr, f"{semantic.OP_SYMBOL[name]}: integer division or remainder by zero")


def _unary(self, x, name: str) -> TensorHandle:
    """What the TL method for elementwise ``name`` of one tensor does (compiled: a C function,
    builtins.pxd)."""
    tr: PEBuilder = _builder(self)
    f = site_frame()
    spec, s, d, i, n = tr.operand(x, _UNARY_OPERAND[name])
    by_d = _UNARY_TYPES.get(name)
    types = by_d.get(d) if by_d is not None else None
    if types is None:
        types = unary_types(name, d)
        _UNARY_TYPES.setdefault(name, {})[d] = types
    if type(types) is str:
        fail(tr, types)
    ct, out = types
    like = tr.tensors.entry(i) if spec is i else None  # its own buffer: the result is alike
    if like is not None and (like[0] is not s or like[1] != out):
        like = None
    return tr.vec(f, name, (spec,), i, -1, -1, s, n, out, like, ct)


#: numpy function name -> the tl call to use instead (messages).
_NUMPY_TL = {
    "sum": "tl.sum", "amax": "tl.max", "max": "tl.max", "amin": "tl.min", "min": "tl.min",
    "maximum": "tl.maximum", "minimum": "tl.minimum", "fmax": "tl.maximum", "fmin": "tl.minimum",
    "exp": "tl.exp", "log": "tl.log", "sqrt": "tl.sqrt", "where": "tl.where",
    "matmul": "tl.dot", "dot": "tl.dot", "transpose": "tl.trans", "reshape": "tl.reshape",
    "add": "+ (tl.add)", "subtract": "- (tl.sub)", "multiply": "* (tl.mul)",
    "true_divide": "/ (tl.div)", "divide": "/ (tl.div)", "negative": "-x", "absolute": "abs(x)",
    "less": "<", "greater": ">", "less_equal": "<=", "greater_equal": ">=", "equal": "==",
    "not_equal": "!=", "broadcast_to": "tl.broadcast_to", "arange": "tl.arange",
    "zeros_like": "tl.zeros", "full_like": "tl.full", "power": "** (a Python int exponent)",
    "floor_divide": "//", "remainder": "%", "expand_dims": "x[:, None]",
    "asarray": "nothing: replay fills h.data after the launch",
    "array": "nothing: replay fills h.data after the launch",
}


def _flag(tr, call: str, name: str, v) -> bool:
    """A Triton keyword of ``call`` read as Triton reads it, true or false; one with no truth
    value (an array) named."""
    try:
        return bool(v)
    except (TypeError, ValueError):
        fail(tr, f"{call}: {name} must be a bool or a number, got {type(v).__name__}")


def _dot_options(tr, input_precision, allow_tf32, max_num_imprecise_acc, out_dtype) -> None:
    """Refuse Triton's tl.dot keywords that ask for another computation than kernbench's."""
    if input_precision is not None and not isinstance(input_precision, str):
        fail(tr, f"dot: input_precision must be a string ('ieee'), got {type(input_precision).__name__}")
    if input_precision is not None and input_precision.lower() != "ieee":
        fail(tr, f"dot: input_precision={input_precision!r}: kernbench computes f32 inputs at full "
                 f"f32 precision ('ieee'); TF32 and its 3-pass variants are not modelled (Triton "
                 f"defaults to tf32 on NVIDIA GPUs, so a ported kernel's f32 dots are exact here)")
    if _flag(tr, "dot", "allow_tf32", allow_tf32):  # (as Triton reads it: tf32 when true)
        fail(tr, f"dot: allow_tf32={allow_tf32!r}: kernbench computes f32 inputs at full f32 "
                 f"precision; write allow_tf32=False or leave it out")
    if _flag(tr, "dot", "max_num_imprecise_acc", max_num_imprecise_acc):  # (None or 0: all in full)
        fail(tr, f"dot: max_num_imprecise_acc={max_num_imprecise_acc!r}: kernbench accumulates "
                 f"every product in f32 (no imprecise fp8 accumulation); leave it out")
    if semantic.dtype_name(out_dtype) != "f32":
        fail(tr, f"dot: out_dtype={out_dtype!r}: the GEMM unit accumulates in f32 and gives f32 "
                 f"(out_dtype f32 or tl.float32 only); cast the result (tl.cast(tl.dot(a, b), ...))")


def _cast_options(tr, call: str, fp_downcast_rounding, bitcast) -> None:
    """Refuse Triton's cast keywords that ask for another conversion than kernbench's."""
    try:
        bit = bool(bitcast)
    except (TypeError, ValueError):
        fail(tr, f"{call}, bitcast=...): bitcast must be True or False, got {type(bitcast).__name__}")
    if bit:
        fail(tr, f"{call}, bitcast={bitcast!r}): kernbench has no bit casts (reinterpreting a "
                 f"tensor's bits); tl.cast converts values")
    if fp_downcast_rounding is not None and (not isinstance(fp_downcast_rounding, str)
                                             or fp_downcast_rounding.lower() != "rtne"):
        fail(tr, f"{call}, fp_downcast_rounding={fp_downcast_rounding!r}): kernbench rounds to "
                 f"nearest even ('rtne') only")


class PropagateNan(enum.Enum):
    """Triton's NaN modes of tl.maximum and tl.minimum (``tl.PropagateNan``). kernbench's
    maximum and minimum always propagate NaN: ``ALL``; ``NONE`` (a NaN operand dropped, as IEEE
    maxNum does) is refused."""

    NONE = 0x0000
    ALL = 0xFFFF


def _propagate_nan(tr, name: str, v) -> None:
    """Accept Triton's ``propagate_nan`` keyword when it asks for what kernbench computes."""
    flag = as_flag(v)
    if v is None or v is PropagateNan.ALL or flag is True:
        return
    if v is PropagateNan.NONE or flag is False:
        fail(tr, f"{name}: propagate_nan={v!r}: kernbench's {name} always propagates NaN "
                 f"(PropagateNan.ALL); a NaN operand dropped (PropagateNan.NONE) is not modelled: "
                 f"leave propagate_nan out, or tl.where(x != x, other, x) first")
    fail(tr, f"{name}: propagate_nan must be tl.PropagateNan.ALL (or left out), got {v!r}")


def _dims(tr, dims: tuple, shape, what: str):
    """Triton's ``*shape`` form: ``f(x, 2, 3)``, ``f(x, (2, 3))`` or ``f(x, shape=(2, 3))``."""
    if shape is not None:
        if dims:
            fail(tr, f"{what}: the shape given twice (positionally and as shape=)")
        return shape
    if not dims:
        fail(tr, f"{what}: missing the shape")
    return dims[0] if len(dims) == 1 else dims


def _tracked(tr: PEBuilder, h):
    """A view ``h``, remembered while a tl.range loop proves its repetition (it is moved on with
    the tensors it views, kernbench.language.loops), and in functional mode for replay to fill
    its ``data`` with what it reads of its buffer."""
    views = tr._views
    if views is not None:  # (what can raise first: then the view is remembered, in both)
        spec, _, _, i, _ = tr.operand(h, "view")
    track = tr._track
    if track is not None:
        track.append(h)
    if views is not None:
        views.append((h, i, spec))
    return h


class _NotInTl:
    """``tl.<name>`` for a Triton name the language has not (porting.NOT_IN_TL): reaching it in a
    kernel raises NotInLanguageError at the kernel's line (a KernelError, and an AttributeError:
    ``hasattr`` says False); on the class it is this descriptor. Attributes, not a
    ``TL.__getattr__``, which would slow every tl attribute access."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, tl, owner=None):
        if tl is None:
            return self
        b = tl._b
        if isinstance(b, PEBuilder) and b.thread == this_thread() and not b.finished:
            raise semantic.kernel_error(b, not_in_tl(self.name), cls=NotInLanguageError)
        # (a tl tracing no program of this thread: a kept one, another thread's, one waiting
        # for a nested launch. No PE of its own to name (a launch this thread traces names
        # its, as the error leaves its kernel), and still an AttributeError: hasattr, getattr's
        # default and inspect.getmembers go on, as before these names were attributes, a review)
        raise NotInLanguageError(not_in_tl(self.name))

    def __repr__(self) -> str:
        return f"<tl.{self.name}: Triton's, not in kernbench's tl language>"


def _not_in_tl() -> tuple:
    return tuple(_NotInTl(name) for name in NOT_IN_TL)


_HIDDEN = frozenset(NOT_IN_TL)


class TL:
    """The kernel language. One object per launch; :meth:`_begin` points it at each program in turn.

    Dtype names are available as attributes (``tl.f16``, ``tl.bf16``, ``tl.f32``,
    ``tl.fp8e4m3``, ``tl.fp8e5m2``, ``tl.int32``) and as strings. docs/language.md has every
    call's shapes, dtypes, costs and errors."""

    f16 = float16 = "f16"
    bf16 = bfloat16 = "bf16"
    f32 = float32 = "f32"
    fp8e4m3 = float8e4m3 = float8e4nv = "fp8e4m3"  # (float8e4nv, float8e5: Triton's names)
    fp8e5m2 = float8e5m2 = float8e5 = "fp8e5m2"
    int32 = "int32"
    PropagateNan = PropagateNan  #: Triton's NaN modes of maximum and minimum
    # Triton's tl names this language has not, in porting.NOT_IN_TL's order (a test checks):
    # tl.cumsum in a kernel is a NotInLanguageError at its line (_NotInTl)
    (tensor, tensor_descriptor, cat, zeros_like, full_like, broadcast, expand_dims, interleave,
     join, permute, ravel, split, dot_scaled, make_tensor_descriptor, load_tensor_descriptor,
     store_tensor_descriptor, make_block_ptr, advance, flip, swizzle2d, ceil, clamp, cos, div_rn,
     erf, fdiv, floor, fma, sin, tanh, sqrt_rn, umulhi, argmax, argmin, reduce, xor_sum,
     associative_scan, cumprod, cumsum, histogram, sort, topk, gather, atomic_add, atomic_sub,
     atomic_and, atomic_cas, atomic_max, atomic_min, atomic_or, atomic_xchg, atomic_xor,
     randint4x, randint, rand, randn, rand4x, randn4x, philox, inline_asm_elementwise,
     debug_barrier, max_constancy, max_contiguous, multiple_of, assume, static_print,
     static_assert, device_print, device_assert, int1, int8, int16, int64, uint8, uint16, uint32,
     uint64, float64, float8e4b15, float8e4b8, float8e5b16, pointer_type, block_type, constexpr,
     dtype, void, extra) = _not_in_tl()

    # (compiled, builtins.pxd declares these as the extension type's C fields)
    __slots__ = ("_b", "_grid", "_serial", "_replay", "_ranged", "_no_replay")

    def __init__(self, grid: tuple, replay: str = "on", no_replay=None):
        self._grid = grid
        #: tl.range: "on" (replay), "off" (trace every iteration), "check" (trace every
        #: iteration and check it repeats: verify mode's first pass)
        self._replay = replay
        #: replay "on" and verify's first pass: the tl.range loops traced in full, a
        #: loops.InFull, to which a loop whose iteration traced after replayed ones is not the
        #: body moved on adds itself (executor.trace traces the launch again then); None: none
        #: (replay off, functional mode)
        self._no_replay = no_replay
        self._ranged = 0  #: tl.range loops that could replay, traced so far
        self._b = _NO_PROGRAM
        self._serial = semantic.next_launch_serial()  #: tensor ids of this launch carry it

    def __dir__(self):
        # (Triton's names the language has not are attributes only to refuse them: not offered
        # to tab completion)
        return [n for n in object.__dir__(self) if n not in _HIDDEN]

    def _begin(self, builder) -> None:
        """Trace the next program into ``builder`` (None: no program; any call is an error)."""
        self._b = _NO_PROGRAM if builder is None else builder

    def _wait(self):
        """A launch starts inside this tl's kernel: until it ends (``_begin`` of what this
        returns), any call of this tl is an error (the nested kernel must use its own)."""
        b = self._b
        self._b = _NoProgram(_WAITING, b if isinstance(b, PEBuilder) else None)
        return b

    def __copy__(self) -> TL:
        """``copy.copy`` of tl is tl itself: the launch's one language object."""
        return self

    def __deepcopy__(self, memo) -> TL:
        """``copy.deepcopy`` of tl (a ``**kwargs`` kernel copying its keywords, ``tl`` among
        them) is tl itself, as ``copy.copy``. (Cython's copy of its C fields raised "no default
        __reduce__" from a file of no one's, View.MemoryView: a review.)"""
        return self

    def __reduce__(self):
        """Refused with a TypeError: tl belongs to its launch (another process has none)."""
        raise TypeError("tl, the launch's language object, cannot be pickled: a kernel gets it "
                        "from its launch (ctx.launch passes tl=); pass it as it is")

    @property
    def math(self) -> TL:
        """Triton's ``tl.math`` namespace: the same calls as ``tl`` here (``tl.math.exp2(x)`` is
        ``tl.exp2(x)``); a Triton math function kernbench lacks is refused as ``tl.<name>`` is."""
        return self

    # -- program ids -------------------------------------------------------------------------
    # (tl's arguments carry no builtin-type annotation, int, bool or str | None: compiled, Cython
    # would convert or check them before tl's checks see them (program_id(1.7) was axis 1,
    # pinned="False" pinned the tile); type checkers read aliases Cython cannot, pe_commands'
    # Flag, DType, Operand...)
    def program_id(self, axis: SupportsIndex = 0) -> int:
        """This program's index along grid ``axis`` (an int): 0 = PE within its cube, 1 = cube."""
        tr = _builder(self)
        if _grid_axis(axis):
            return tr.pe if axis == 0 else tr.cube
        fail(tr, f"program_id: axis must be 0 (PE) or 1 (cube), got {axis!r}")

    def num_programs(self, axis: SupportsIndex = 0) -> int:
        """Grid size along ``axis`` (an int): 0 = PEs per cube used, 1 = cubes used."""
        if _grid_axis(axis):
            return self._grid[int(axis)]
        fail(_builder(self), f"num_programs: axis must be 0 (PE) or 1 (cube), got {axis!r}")

    # -- loops -------------------------------------------------------------------------------
    def range(self, start: SupportsIndex, stop: SupportsIndex | None = None, step: SupportsIndex = 1,
              num_stages: Any = None, loop_unroll_factor: Any = None,
              disallow_acc_multi_buffer: Any = None, flatten: Any = None, warp_specialize: Any = None,
              disable_licm: Any = None, *, replay_last: Flag = False, replay_first: Flag = False,
              shapes_move: Flag = False) -> TlRange:
        """``range(start, stop, step)`` for a loop whose iterations do the same work on other
        tensors and addresses: in timing mode the body is traced for a few iterations and the
        last, and the iterations between are replayed from the traced ones without running
        its Python (kernbench.language.loops; docs/language.md, 'tl.range', has the contract).
        ``replay_last=True`` (kernbench's): the last iteration does the same work too (no
        ragged last block), so it is replayed with the others instead of traced; verify mode
        checks it. ``replay_first=True`` (kernbench's): the first iteration does the same work
        too (no ``if i == 0``, its loads' and stores' addresses on the others' line), so
        iterations 0 and 1 prove the repetition and replay starts at 2: one traced iteration
        fewer when the body carries no tensor from one iteration to the next (else iteration 2
        is traced as without it). Functional mode traces every iteration. Triton's
        tuning arguments (num_stages, loop_unroll_factor, disallow_acc_multi_buffer, flatten,
        warp_specialize, disable_licm: in Triton's order) are accepted and ignored. ``shapes_move=True``
        (kernbench's): the tiles' shapes may move by a constant per iteration too, as the
        addresses do (a causal diagonal block's keys growing by a query block per iteration);
        the proof then accepts iterations A and B whose commands differ only so, and replay
        moves the shapes on with the addresses (docs/language.md, 'tl.range'). Raises
        KernelError when replay_last, replay_first or shapes_move is not True or False (or a numpy bool)."""
        tr = _builder(self)  # (the loop reads tl's builder when it starts)
        replay_last = _bool_arg(tr, replay_last, "tl.range: replay_last")
        replay_first = _bool_arg(tr, replay_first, "tl.range: replay_first")
        shapes_move = _bool_arg(tr, shapes_move, "tl.range: shapes_move")
        # (each for over it a loop of its own, as over a range)
        return TlRange(self, _range_of(tr, "tl.range", start, stop, step), replay_last, replay_first,
                       shapes_move)

    def static_range(self, start: SupportsIndex, stop: SupportsIndex | None = None,
                     step: SupportsIndex = 1) -> builtins.range:
        """``range(start, stop, step)``: Triton's unrolled loop is a Python loop here too."""
        return _range_of(_builder(self), "tl.static_range", start, stop, step)

    # -- memory ------------------------------------------------------------------------------
    def load(self, ptr, shape=None, dtype: DType | None = None, stride=None, pinned: Flag = False,
             after: TensorHandle | None = None, mask: TensorHandle | None = None,
             other=None, cache_modifier=None, eviction_policy=None, volatile=None, *,
             boundary_check=None, padding_option=None) -> TensorHandle:
        """DMA ``shape`` elements from this PE's device memory at byte address ``ptr`` into SRAM.

        ``ptr`` is a device array's address plus a byte offset; every PE reads its own copy of
        the allocation. ``dtype`` defaults to (and must equal) the allocation's dtype. With
        ``stride`` (elements between row starts) a 2-D ``shape`` reads ``rows`` rows of ``cols``
        elements, e.g. a column block of a row-major matrix. One LOAD on the DMA unit moving
        ``numel * itemsize`` bytes. ``pinned`` (a bool) keeps the tile in SRAM to the end of the launch.
        ``after=h`` starts the load only once tensor ``h`` is ready: the way a kernel bounds how
        far its DMA prefetch runs ahead (double buffering) and so its live SRAM.

        ``mask`` (a bool mask broadcasting to ``shape``) reads only where it is true and gives
        ``other`` (a Python number or a tensor broadcasting to ``shape``; default 0) elsewhere;
        only unmasked elements must lie inside the allocation (checked at trace when the mask is
        known then, e.g. built from tl.arange, else in functional replay). A masked load costs
        the whole tile's bytes, like an unmasked one (docs/hardware-model.md). Triton's cache
        hints (``cache_modifier``, ``eviction_policy``, ``volatile``) are accepted and ignored:
        the model has no cache. Triton's block-pointer keywords (``boundary_check``,
        ``padding_option``) are refused past their defaults, saying what to write."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        if cache_modifier is not None or eviction_policy is not None or volatile is not None:
            _cache_hints(tr, "load", cache_modifier, eviction_policy, volatile)
        if boundary_check is not None or padding_option is not None:
            _block_pointer_args(tr, "load", boundary_check, padding_option)
        if shape is None:
            fail(tr, "load needs shape=: the tile's shape, shape=(1,) for one value (kernbench "
                     "loads a tile from a base address, not a tensor of pointers)")
        if isinstance(shape, TensorHandle):  # (Triton's tl.load(ptr, mask, other))
            # (given by keyword or by position alike: a peer's shape=h for h.shape was told to
            # write mask=, a review)
            fail(tr, "load: shape got a tensor; a shape is a tuple of ints (a tensor's is h.shape). "
                     "If it is Triton's mask, tl.load's second positional argument is shape here: "
                     "write tl.load(ptr, shape=..., mask=m, other=v) (docs/language.md, 'Porting "
                     "from Triton')")
        if pinned is not False and pinned is not True:
            pinned = _bool_arg(tr, pinned, "load: pinned")
        shape = check_shape(tr, shape, "load shape")
        if dtype is not None:
            dtype = check_dtype(tr, dtype)
        mk = self._mask(tr, mask, shape, "load") if mask is not None else None
        mv = self._known_mask(tr, mk) if mk is not None else None
        alloc, e0, dtype, stride = semantic.region(tr, ptr, shape, dtype, stride, "load",
                                                   masked=mk is not None, mask_value=mv)
        if mv is not None:
            semantic.check_masked(tr, alloc, e0, shape, stride, mv, "load")
        oth = None
        if other is not None:
            if mask is None:
                fail(tr, "load: other= gives the value of masked-off elements; it needs mask=")
            if isinstance(other, TensorHandle):
                ospec, osh, od, oi, _ = tr.operand(other, "load other")
                if broadcast(tr, osh, shape, "load other") != shape:
                    fail(tr, f"load: other of shape {_fmt(osh)} does not broadcast to the load "
                             f"shape {_fmt(shape)}")
                oth = (ospec, oi)
            else:
                k = scalar_kind(other)
                if k is None:
                    fail(tr, f"load: other must be a Python number or a tensor, got "
                             f"{type(other).__name__}")
                if dtype == "int32" and k == PY_FLOAT:
                    # its f32 constant, as every Python number, converted as a cast would: NaN ->
                    # 0, saturating (a review: converted from the f64, 16777217.0 gave 16777217,
                    # not the f32 constant's 16777216)
                    other = int(cast_value(np.array([float(other)], np.float32), "int32")[0])
                    k = PY_INT
                oth = _imm(tr, other, k, dtype if dtype == "int32" else "f32")
                if dtype == "fp8e4m3":
                    _e4m3_number(tr, oth, "an fp8e4m3 load's other", other,
                                 "or load with other=0 and mask with tl.where in f16/f32")
        a = -1 if after is None else tr.operand(after, "load after")[3]
        return tr.load(f, alloc, e0, shape, numel(shape), dtype, stride, pinned, a, mk, oth)

    def store(self, ptr, x: TensorHandle, shape=None, stride=None,
              mask: TensorHandle | None = None, cache_modifier=None, eviction_policy=None, *,
              dtype: DType | None = None, boundary_check=None) -> None:
        """DMA tensor ``x`` from SRAM to this PE's device memory at byte address ``ptr``.

        Values are converted to the allocation's dtype (f16 rounding when it holds f16); the
        STORE moves ``numel * allocation itemsize`` bytes. ``shape``, when given, is the shape
        the kernel means to write: a tensor of another shape is an error. ``dtype``, when given,
        is the dtype the kernel means to write to (the one its byte offsets assume): an
        allocation of another dtype is an error, as for :meth:`load`. ``stride`` as in
        :meth:`load`. ``mask`` (a bool mask broadcasting to x's shape) writes only where it is
        true; bounds and cost as for a masked :meth:`load`. Triton's cache hints are accepted
        and ignored, as in :meth:`load`; Triton's ``boundary_check`` refused past its default."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        if dtype is not None:
            dtype = check_dtype(tr, dtype, "store dtype")
        if cache_modifier is not None or eviction_policy is not None:
            _cache_hints(tr, "store", cache_modifier, eviction_policy, None)
        if boundary_check is not None:
            _block_pointer_args(tr, "store", boundary_check, None)
        spec, s, d, i, n = tr.operand(x, "store value")
        if isinstance(shape, TensorHandle):  # (Triton's tl.store(ptr, value, mask))
            fail(tr, "store: shape got a tensor; a shape is a tuple of ints (a tensor's is h.shape). "
                     "If it is Triton's mask, tl.store's third positional argument is shape here: "
                     "write tl.store(ptr, x, mask=m) (docs/language.md, 'Porting from Triton')")
        if shape is not None:
            want = check_shape(tr, shape, "store shape")
            if want != s:
                if numel(want) == numel(s):  # (a review: "wrong size" of two equal sizes)
                    fail(tr, f"store of the wrong shape: expected a tensor of shape {_fmt(want)}, "
                             f"got {_fmt(s)} (as many elements: tl.reshape(x, {_fmt(want)}) stores "
                             f"them in that shape, row-major)")
                fail(tr, f"store of the wrong size: expected a tensor of shape {_fmt(want)} "
                         f"({numel(want)} elements), got {_fmt(s)} ({numel(s)} elements)")
        mk = self._mask(tr, mask, s, "store") if mask is not None else None
        mv = self._known_mask(tr, mk) if mk is not None else None
        alloc, e0, _, stride = semantic.region(tr, ptr, s, dtype, stride, "store",
                                               masked=mk is not None, mask_value=mv)
        if mv is not None:
            semantic.check_masked(tr, alloc, e0, s, stride, mv, "store")
        tr.store(f, spec, i, alloc, e0, s, n, stride, mk)

    def _mask(self, tr, mask, shape: tuple, verb: str) -> tuple:
        """(spec, tensor number) of a load/store mask, checked."""
        mspec, msh, md, mi, _ = tr.operand(mask, f"{verb} mask")
        if md != "bool":
            article = "an" if md[0] in "aeiou" else "a"
            fail(tr, f"{verb}: mask must be a bool mask (a comparison such as offs < n), got "
                     f"{article} {md} tensor")
        if broadcast(tr, msh, shape, f"{verb} mask") != shape:
            # (a Triton mask for a reduction's result: Triton's drops the reduced axis, so its
            # mask is the shape without a size-1 axis this one keeps: a tutorial port's)
            kept = ("; the tile keeps a reduced axis of size 1 that a Triton mask leaves out: "
                    "index the mask as the reduction's result is, e.g. rows[:, None] < M "
                    "(docs/language.md, 'Porting from Triton')"
                    if 1 in shape and tuple(d for d in shape if d != 1) == tuple(d for d in msh if d != 1)
                    else "")
            fail(tr, f"{verb}: mask of shape {_fmt(msh)} does not broadcast to the {verb} shape "
                     f"{_fmt(shape)}{kept}")
        return (mspec, mi)

    def _known_mask(self, tr, mk):
        """The value of mask ``mk`` ((spec, tensor number)) when known at trace, else None
        (then functional replay checks the access)."""
        v = tr.computed(mk[1])
        if v is None or type(mk[0]) is not tuple:
            return v
        try:
            return view_value(v, mk[0])
        except ValueError:
            return None

    # -- GEMM --------------------------------------------------------------------------------
    def dot(self, a: TensorHandle, b: TensorHandle, acc: TensorHandle | None = None,
            input_precision: MaybeStr = None, allow_tf32: Flag | None = None,
            max_num_imprecise_acc: Any = None, out_dtype: DType = "f32") -> TensorHandle:
        """Matrix product of 2-D ``a`` (M, K) and ``b`` (K, N) on the GEMM unit -> f32 (M, N);
        with ``acc`` (an f32 (M, N) tensor) -> ``acc + a @ b``. Also ``a @ b``.

        Inputs f16/bf16 (2-byte operands), fp8 (1 byte) or f32 (4 bytes, costs operand
        bandwidth); int32 and masks are refused (cast first). Accumulation is f32. One DOT
        command (docs/hardware-model.md); ``acc`` adds one f32 VEC add of M*N elements: the
        output-stationary array starts each fold from zeroed accumulators.

        Triton's other keywords, as far as they describe what kernbench computes (f32 inputs at
        full f32 precision, every product accumulated exactly in f32, an f32 result):
        ``input_precision`` None or "ieee", ``allow_tf32`` None or False,
        ``max_num_imprecise_acc`` None or 0, ``out_dtype`` f32; anything else is a KernelError
        saying what kernbench computes instead."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        if not (input_precision is None and allow_tf32 is None and max_num_imprecise_acc is None
                and type(out_dtype) is str and out_dtype == "f32"):
            _dot_options(tr, input_precision, allow_tf32, max_num_imprecise_acc, out_dtype)
        sa, ash, da, ia, _ = tr.operand(a, "dot a")
        sb, bsh, db, ib, _ = tr.operand(b, "dot b")
        float_operand(tr, da, "dot", "a")
        float_operand(tr, db, "dot", "b")
        m, n, k = dot_shapes(tr, ash, bsh)
        if acc is not None:
            _, csh, dc, _, _ = tr.operand(acc, "dot acc")
            if dc != "f32" or csh != (m, n):
                fail(tr, f"dot: acc must be an f32 tensor of the result's shape ({m},{n}), got "
                         f"{_fmt(csh)} {dc}")
        d = tr.dot(f, sa, sb, ia, ib, ash, bsh, da, db, m, n, k)
        return d if acc is None else self.add(acc, d)

    # -- views (no command) --------------------------------------------------------------------
    def trans(self, x: TensorHandle, *dims) -> TensorHandle:
        """``x`` with its last two axes swapped: metadata only, same tensor id, no command.
        ``dims`` (Triton's permutation, ``tl.trans(x, 1, 0)`` or ``tl.trans(x, (1, 0))``): that
        swap, or the identity (``x`` itself); any other permutation is refused."""
        tr: PEBuilder = _builder(self)
        spec, s, d, i, _ = tr.operand(x, "trans operand")
        if dims:
            p = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
            if any(isinstance(a, (bool, np.timedelta64)) or not isinstance(a, (int, np.integer)) for a in p):
                fail(tr, f"trans: dims must be ints (a permutation of the axes), got {tuple(p)!r}")
            p = tuple(int(a) for a in p)
            k = len(s)
            ident = tuple(range(k))
            swap = ident[:-2] + (k - 1, k - 2) if k >= 2 else ident
            if p == ident:
                return x
            if p != swap:
                fail(tr, f"trans: dims {p!r} for a {k}-D tensor {_fmt(s)}: kernbench's trans swaps "
                         f"the last two axes ({swap!r}) only")
        if len(s) < 2:
            return x
        t = (s[1], s[0]) if len(s) == 2 else s[:-2] + (s[-1], s[-2])
        if type(x) is not TensorHandle and isinstance(x, TransposedView):  # transposed back
            return _tracked(tr, view_of(x, t, d, False))
        tr.transposed.add((i, t))
        return _tracked(tr, view_of(x, t, d, True))

    def reshape(self, x: TensorHandle, *dims, shape=None, can_reorder: Flag = False) -> TensorHandle:
        """A view of ``x``'s buffer with another shape: same tensor id, no command. Same rule
        as a ``TensorHandle(id=x.id, shape=...)`` made by hand: the element count must match in
        functional mode; a transposed view cannot be reshaped. The shape as a tuple, as ints
        (Triton's ``tl.reshape(x, 2, 3)``) or ``shape=``; ``can_reorder`` (Triton's) changes
        nothing: the elements keep their order either way."""
        tr: PEBuilder = _builder(self)
        if can_reorder is not False and can_reorder is not True:
            _flag(tr, "reshape", "can_reorder", can_reorder)  # (Triton's: read as Triton reads it)
        shape = check_shape(tr, _dims(tr, dims, shape, "reshape"), "reshape shape")
        spec, s, d, i, _ = tr.operand(x, "reshape operand")
        if isinstance(x, TransposedView):
            fail(tr, "reshape of a transposed view: reshape before tl.trans, or store and reload")
        h = view_of(x, shape, d, False)
        tr.operand(h, "reshape result")  # the view rule, checked here with this line
        return _tracked(tr, h)

    def view(self, x: TensorHandle, *dims, shape=None, can_reorder: Flag = False) -> TensorHandle:
        """Triton's ``tl.view``: :meth:`reshape` (its own method, so that an argument error
        names ``view()``, the call the kernel wrote: a review)."""
        return self.reshape(x, *dims, shape=shape, can_reorder=can_reorder)

    def _getitem(self, x: TensorHandle, key) -> TensorHandle:
        """``x[:, None]``, ``x[None, :]``, ``x[..., None]``: a view with new axes of size 1."""
        tr: PEBuilder = _builder(self)
        spec, s, d, i, _ = tr.operand(x, "indexed tensor")
        key = key if type(key) is tuple else (key,)
        ok = all(k is None or k is Ellipsis or (type(k) is slice and k == slice(None))
                 for k in key)
        if not ok or sum(k is Ellipsis for k in key) > 1:
            fail(tr, f"indexing a tensor with {key!r}: only ':' , None and one '...' are "
                     f"supported (x[:, None], x[None, :]); tensors have no elements to pick "
                     f"while tracing (load a sub-tile with tl.load, select with tl.where)")
        real = sum(1 for k in key if k is not None and k is not Ellipsis)
        if real > len(s):
            fail(tr, f"indexing a {len(s)}-D tensor {_fmt(s)} with {real} axes")
        new = _added(s, key)
        if len(new) > semantic.MAX_NDIM:
            fail(tr, semantic.too_many_axes(f"indexing {_fmt(s)} with {len(key)} keys gives a view that", len(new)))
        # (not of a 1-D tensor: a (1,) one is a block of 1 far more often than a 1-D tensor's
        # whole reduction, and (1,)[None] is Triton's (1,1) as well, a fuzzer's case)
        kept = _triton_kept(s, key) if None in key and real < len(s) and len(s) > 1 else None
        if kept is not None:
            # (Triton ports, reviews: `x - tl.max(x, axis=1)[:, None]`, (4,1)[:, None] is
            # (4,1,1) here and x minus it (4,4,8), which a store without shape= wrote over the
            # next rows; `x + tl.sum(x, 1)[None, :]`, (1,BM,1), row sums added along rows;
            # `tl.sum(x, 0)[:, None]`, (1,1,N), a column multiplied along rows; `mean[None, :]`
            # of an axis-0 mean, (1,1,N), broadcasting as Triton's (1,N) but an axis more, so
            # the next tl.sum(., 0) summed the new one. The shape alone says so, whatever was
            # made of the reduction since (its scale, cast, running maximum): a key leaving axes
            # to its implied trailing ':' is a 1-D tensor's key in Triton. A key with every
            # axis, or '...', means what it says to Triton and numpy alike: (BM,1,1) from
            # [:, :, None] is meant, a fuzzer's case)
            j, row = kept
            full = _key_text(key + (slice(None),) * (len(s) - real))
            why = ("broadcast along another axis than Triton's" if _from_right(new) != _from_right(row)
                   else f"have an axis more than Triton's {_fmt(row)}, so a later reduction's axis "
                        f"number would name another axis than Triton's")
            if row == s:
                fix = f"drop the indexing (this tensor is {_fmt(row)} already: the reduced axis kept in its place)"
            else:
                fix = (f"write tl.reshape(x, {_fmt(row)})" if not isinstance(x, TransposedView) else
                       f"write tl.reshape of the tensor, before tl.trans, to {_fmt(row)}")
            fail(tr, f"indexing a {_fmt(s)} tensor with {_key_text(key)} makes {_fmt(new)}: the key "
                     f"leaves out axes at its end, as for a 1-D tensor. In a Triton port this is a "
                     f"reduction's {_key_text(key)} (Triton's tl.sum(x, axis={j}) drops the axis, and "
                     f"its {_key_text(key)} is {_fmt(row)}); kernbench keeps the reduced axis, so "
                     f"the result would {why}. For Triton's {_fmt(row)} {fix}; for new axes "
                     f"on this tensor (the rule is the shape's: a tile whose block is 1 gets it "
                     f"too) spell out every axis, x{full} (docs/language.md, 'Porting from "
                     f"Triton')")
        if isinstance(x, TransposedView):
            lead = len(new) - len(s)
            if new[lead:] != s or any(v != 1 for v in new[:lead]):
                fail(tr, f"a new axis inside a transposed view {_fmt(s)}: only leading axes can be "
                         f"added to it (x[None]); index before tl.trans")
            tr.transposed.add((i, new))
            return _tracked(tr, view_of(x, new, d, True))
        return _tracked(tr, view_of(x, new, d, False))

    # -- elementwise -------------------------------------------------------------------------
    def add(self, a: Operand, b: Operand) -> TensorHandle:
        """``a + b`` elementwise with broadcasting; either may be a Python number (immediate)."""
        return _binary(self, a, b, "add")

    def sub(self, a: Operand, b: Operand) -> TensorHandle:
        """``a - b`` elementwise with broadcasting."""
        return _binary(self, a, b, "sub")

    def mul(self, a: Operand, b: Operand) -> TensorHandle:
        """``a * b`` elementwise with broadcasting."""
        return _binary(self, a, b, "mul")

    def div(self, a: Operand, b: Operand) -> TensorHandle:
        """``a / b``: true division (int32 and masks give f32); the vector unit's div cost."""
        return _binary(self, a, b, "div")

    def floordiv(self, a: Operand, b: Operand) -> TensorHandle:
        """``a // b`` of int32 (and masks, Python ints), truncating toward zero like C; div cost."""
        return _binary(self, a, b, "floordiv")

    def mod(self, a: Operand, b: Operand) -> TensorHandle:
        """``a % b``: int32 remainder with the dividend's sign (C), or float fmod; div cost."""
        return _binary(self, a, b, "mod")

    def maximum(self, a: Operand, b: Operand, propagate_nan: Any = None) -> TensorHandle:
        """Elementwise maximum with broadcasting (NaN propagates: Triton's
        ``propagate_nan=tl.PropagateNan.ALL``; ``NONE`` is refused)."""
        if propagate_nan is not None:
            _propagate_nan(_builder(self), "maximum", propagate_nan)
        return _binary(self, a, b, "maximum")

    def minimum(self, a: Operand, b: Operand, propagate_nan: Any = None) -> TensorHandle:
        """Elementwise minimum with broadcasting (NaN propagates; ``propagate_nan``: as
        :meth:`maximum`)."""
        if propagate_nan is not None:
            _propagate_nan(_builder(self), "minimum", propagate_nan)
        return _binary(self, a, b, "minimum")

    def lt(self, a: Operand, b: Operand) -> TensorHandle:
        """``a < b`` -> bool mask (compare cost). Also the ``<`` operator."""
        return _binary(self, a, b, "lt")

    def le(self, a: Operand, b: Operand) -> TensorHandle:
        """``a <= b`` -> bool mask. Also the ``<=`` operator."""
        return _binary(self, a, b, "le")

    def gt(self, a: Operand, b: Operand) -> TensorHandle:
        """``a > b`` -> bool mask. Also the ``>`` operator."""
        return _binary(self, a, b, "gt")

    def ge(self, a: Operand, b: Operand) -> TensorHandle:
        """``a >= b`` -> bool mask. Also the ``>=`` operator."""
        return _binary(self, a, b, "ge")

    def eq(self, a: Operand, b: Operand) -> TensorHandle:
        """``a == b`` -> bool mask. Also the ``==`` operator."""
        return _binary(self, a, b, "eq")

    def ne(self, a: Operand, b: Operand) -> TensorHandle:
        """``a != b`` -> bool mask. Also the ``!=`` operator."""
        return _binary(self, a, b, "ne")

    def and_(self, a: Operand, b: Operand) -> TensorHandle:
        """``a & b``: logical and of masks, bitwise and of int32 (bitwise cost)."""
        return _binary(self, a, b, "and_")

    def or_(self, a: Operand, b: Operand) -> TensorHandle:
        """``a | b``: logical or of masks, bitwise or of int32."""
        return _binary(self, a, b, "or_")

    def xor(self, a: Operand, b: Operand) -> TensorHandle:
        """``a ^ b``: logical xor of masks, bitwise xor of int32."""
        return _binary(self, a, b, "xor")

    def shl(self, a: Operand, b: Operand) -> TensorHandle:
        """``a << s`` of int32, s in 0..31 (bitwise cost)."""
        return _binary(self, a, b, "shl")

    def shr(self, a: Operand, b: Operand) -> TensorHandle:
        """``a >> s`` of int32, arithmetic, s in 0..31."""
        return _binary(self, a, b, "shr")

    def exp(self, x: TensorHandle) -> TensorHandle:
        """Elementwise e**x (exp cost); int32 and masks give f32."""
        return _unary(self, x, "exp")

    def exp2(self, x: TensorHandle) -> TensorHandle:
        """Elementwise 2**x (exp cost)."""
        return _unary(self, x, "exp2")

    def log(self, x: TensorHandle) -> TensorHandle:
        """Elementwise natural log (log cost)."""
        return _unary(self, x, "log")

    def log2(self, x: TensorHandle) -> TensorHandle:
        """Elementwise log base 2 (log cost)."""
        return _unary(self, x, "log2")

    def sqrt(self, x: TensorHandle) -> TensorHandle:
        """Elementwise square root (sqrt cost)."""
        return _unary(self, x, "sqrt")

    def rsqrt(self, x: TensorHandle) -> TensorHandle:
        """Elementwise 1/sqrt(x) (rsqrt cost)."""
        return _unary(self, x, "rsqrt")

    def sigmoid(self, x: TensorHandle) -> TensorHandle:
        """Elementwise 1 / (1 + exp(-x)) (sigmoid cost)."""
        return _unary(self, x, "sigmoid")

    def neg(self, x: TensorHandle) -> TensorHandle:
        """Elementwise ``-x`` (copy cost); masks give int32. Also unary minus."""
        return _unary(self, x, "neg")

    def abs(self, x: TensorHandle) -> TensorHandle:
        """Elementwise ``|x|`` (copy cost); masks give int32."""
        return _unary(self, x, "abs")

    def invert(self, x: TensorHandle) -> TensorHandle:
        """``~x``: logical not of a mask, bitwise not of int32 (bitwise cost)."""
        return _unary(self, x, "invert")

    def pow(self, x: TensorHandle, n: SupportsIndex) -> TensorHandle:
        """``x ** n`` for a Python int ``n`` with ``|n| <= 64``: square-and-multiply muls, each
        rounded like a mul written by hand (``x ** 3`` is ``x * (x * x)``, ``x ** 4`` is
        ``(x * x) * (x * x)``); ``n == 0`` a fill of ones; ``n == 1`` x itself; ``n < 0`` then
        ``1 / that`` (floats only)."""
        tr: PEBuilder = _builder(self)
        spec, s, d, i, _ = tr.operand(x, "** base")
        if scalar_kind(n) != PY_INT or not -64 <= int(n) <= 64:
            got = (f"a {n.dtype} tensor of shape {n.shape}" if isinstance(n, TensorHandle)
                   else f"{n!r}, a bool (x ** True is x, x ** False ones: write that)" if isinstance(n, bool)
                   else repr(n))  # (a handle's repr is its every field: a review)
            fail(tr, f"x ** n (tl.pow) takes a Python int exponent in -64..64, got {got}: for other powers "
                     f"write tl.exp(p * tl.log(x)), or tl.sqrt / tl.rsqrt")
        n = int(n)
        if n < 0 and d not in FLOAT_DTYPES:
            fail(tr, f"** {n}: a negative power of {'an' if d[0] in 'aeiou' else 'a'} {d} tensor (cast to a "
                     f"float first)")
        if n == 0:
            return self.full(s, 1, "int32" if d == "bool" else d)
        r, b, m = None, x, abs(n)
        while m:
            if m & 1:
                r = b if r is None else self.mul(r, b)
            m >>= 1
            if m:
                b = self.mul(b, b)
        if r is x and d == "bool":
            r = self.cast(x, "int32")
        return self.div(1.0, r) if n < 0 else r

    def cdiv(self, a: Any, b: Any) -> Any:
        """Triton's tl.cdiv, ``(a + b - 1) // b``: of Python ints an int (no command); with an
        int32 tensor an add and a ``//`` (two tensors: an add, a sub and a ``//``). The ceiling of ``a / b`` for ``a >= 0, b > 0``; for negative
        operands the results are Triton's, which differ between the two paths (Python's ``//``
        floors, a tensor's truncates: docs/language.md, the Calls table)."""
        ka, kb = scalar_kind(a), scalar_kind(b)
        for x, k in ((a, ka), (b, kb)):  # (refused as cdiv's, not as the add it becomes)
            if isinstance(x, TensorHandle):
                if getattr(x, "dtype", None) not in ("int32", "bool"):
                    fail(_builder(self), f"cdiv takes ints and int32 tensors, got a {x.dtype} tensor")
            elif k is None:
                fail(_builder(self), f"cdiv takes ints and int32 tensors, got {type(x).__name__} {x!r}")
        if ka in (PY_INT, semantic.PY_BOOL) and kb in (PY_INT, semantic.PY_BOOL):
            a, b = int(a), int(b)
            if b == 0:
                fail(_builder(self), "cdiv: division by zero")
            return (a + b - 1) // b
        if PY_FLOAT in (ka, kb):
            what = [f"a {x.dtype} {semantic.fmt_shape(x.shape)} tensor" if isinstance(x, TensorHandle) else repr(x)
                    for x in (a, b)]
            fail(_builder(self), f"cdiv takes ints and int32 tensors, got {what[0]} and {what[1]}")
        if kb is None:
            # a tensor divisor known while tracing, checked before the first of the commands
            # (a review: the add stayed in the program of a kernel catching the // refused)
            tr: PEBuilder = _builder(self)
            tr.check_right("floordiv", tr.operand(b, "floordiv operand")[0], "int32")
        else:
            b = int(b)
            if b == 0:
                fail(_builder(self), "cdiv: division by zero")
            if not -(1 << 31) < b < 1 << 31:  # (b and b - 1 are int32 operands)
                fail(_builder(self), f"cdiv: b = {b}: cdiv computes (a + b - 1) // b in int32, "
                                     f"so b and b - 1 must fit int32 (an int b in "
                                     f"[{-(1 << 31) + 1}, {(1 << 31) - 1}])")
            return self.floordiv(self.add(a, b - 1), b)
        if ka is not None and _I32_MIN <= int(a) <= _I32_MAX:
            # b + (a - 1), a - 1 wrapped to int32 (-2**31 - 1 is 2**31 - 1): the same int32
            # bits as (a + b) - 1, one add
            return self.floordiv(self.add(b, (int(a) - 1 - _I32_MIN) % (1 << 32) + _I32_MIN), b)
        return self.floordiv(self.sub(self.add(a, b), 1), b)

    def cast(self, x: TensorHandle, dtype: DType, saturate: CastFlag = False, bitcast: Flag = False, *,
             fp_downcast_rounding: MaybeStr = None) -> TensorHandle:
        """``x`` converted to ``dtype`` (one CAST command); ``x`` itself when already ``dtype``,
        unless ``saturate=True`` on a float (then the cast clamps its +-inf).

        To int32: truncates toward zero, saturates, NaN gives 0. To a float: rounds to nearest
        even; fp8e4m3 overflows to NaN and fp8e5m2 to inf unless ``saturate=True``, which
        clamps to the largest finite value (NaN stays NaN). Triton's keywords:
        ``fp_downcast_rounding`` None or "rtne" (what kernbench does; "rtz" is refused), and
        ``bitcast`` False (True is refused: there are no bit casts). Triton's third positional
        argument is the rounding: a string or None there is read as it, so Triton's
        ``tl.cast(x, dtype, None, False)`` runs as written."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        if saturate is None or isinstance(saturate, str):  # (Triton's cast(x, dtype, "rtne"))
            if saturate is not None and fp_downcast_rounding is not None:
                fail(tr, f"tl.cast(x, dtype, {saturate!r}, fp_downcast_rounding="
                         f"{fp_downcast_rounding!r}): the rounding given twice")
            if isinstance(saturate, str) and saturate.lower() != "rtne":
                fail(tr, f"tl.cast(x, dtype, {saturate!r}): a str third argument is Triton's "
                         f"rounding, and kernbench rounds to nearest even ('rtne') only; "
                         f"kernbench's saturate (the third argument otherwise) is True or False")
            saturate, fp_downcast_rounding = False, (fp_downcast_rounding if saturate is None else saturate)
        if fp_downcast_rounding is not None or bitcast is not False:  # (a call only when given)
            _cast_options(tr, "tl.cast(x, dtype", fp_downcast_rounding, bitcast)
        dtype = check_dtype(tr, dtype)
        spec, s, d, i, n = tr.operand(x, "cast operand")
        if type(saturate) is not bool:
            # (also an int 0 or 1, as the compiled signature read it from the start: kernels
            # pass tl.cast(x, dtype, 1); any other number, 0.5 or NaN, was true by its truth
            # value, a review)
            flag = as_flag(saturate)
            if flag is None and is_whole(saturate) and (saturate == 0 or saturate == 1):
                flag = saturate == 1
            if flag is None:
                fail(tr, f"cast: saturate must be True or False (or a numpy bool, 0 or 1), got "
                         f"{type(saturate).__name__} {saturate!r}")
            saturate = bool(flag)
        if d == dtype and not (saturate and d in _FLOATS):
            return x
        return tr.vec(f, "cast", (spec,), i, -1, -1, s, n, dtype, None, d, saturate or None)

    def _to(self, x, dtype, fp_downcast_rounding=None, bitcast=False) -> TensorHandle:
        """``x.to(dtype)`` (Triton's cast method, TensorHandle.to): :meth:`cast`. Rounding is to
        nearest even (``fp_downcast_rounding`` None or "rtne"); there is no bit cast."""
        _cast_options(_builder(self), "x.to(dtype", fp_downcast_rounding, bitcast)
        return self.cast(x, dtype)

    def broadcast_to(self, x, *dims, shape=None) -> TensorHandle:
        """``x`` broadcast to ``shape`` (numpy's rule) as a new tensor: one VEC copy of
        ``numel(shape)`` elements; ``x`` itself when it has that shape. The shape as a tuple,
        as ints (Triton's ``tl.broadcast_to(x, 2, 3)``) or ``shape=``."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        shape = check_shape(tr, _dims(tr, dims, shape, "broadcast_to"), "broadcast_to shape")
        spec, s, d, i, _ = tr.operand(x, "broadcast_to operand")
        if s == shape:
            return x
        if broadcast(tr, s, shape, "broadcast_to") != shape:
            fail(tr, f"broadcast_to: {_fmt(s)} does not broadcast to {_fmt(shape)} (it would "
                     f"give {_fmt(broadcast(tr, s, shape, 'broadcast_to'))})")
        return tr.vec(f, "copy", (spec,), i, -1, -1, shape, numel(shape), d, None, d)

    def where(self, cond=_UNSET, a=_UNSET, b=_UNSET, *, condition=_UNSET, x=_UNSET,
              y=_UNSET) -> TensorHandle:
        """``a`` where ``cond`` is true (non-zero) else ``b``, with broadcasting; ``a`` and ``b``
        may be Python numbers. One SELECT command reading up to three tensors. Dtype: ``a`` and
        ``b`` promoted (two masks: a mask; two Python numbers: int32 or f32). Triton's keyword
        names ``condition``, ``x``, ``y`` work too."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        if condition is not _UNSET or x is not _UNSET or y is not _UNSET:
            cond, a, b = (_one_of(tr, "where", n, u, t)
                          for n, u, t in (("cond", cond, condition), ("a", a, x), ("b", b, y)))
        elif cond is _UNSET or a is _UNSET or b is _UNSET:
            fail(tr, "where takes three arguments: where(cond, a, b)")
        if not isinstance(cond, TensorHandle) and scalar_kind(cond) is not None:
            # (Triton takes a constexpr condition and folds it; here it would need a mask
            # tensor made for it: said, with the Python that picks while tracing)
            fail(tr, f"where: the condition is a Python {type(cond).__name__} ({cond!r}), known "
                     f"while tracing: write `a if cond else b` (Python picks; for Triton's result "
                     f"dtype and shape, cast and tl.broadcast_to the one picked), or give a mask "
                     f"tensor (a comparison's result)")
        sc, shape, dc, ic, _ = tr.operand(cond, "where condition")
        vals, kinds, ids = [], [], [ic]
        for x, what in ((a, "where a"), (b, "where b")):
            if isinstance(x, TensorHandle):
                spec, s, d, i, _ = tr.operand(x, what)
                shape = broadcast(tr, shape, s, "where")
                vals.append(spec)
                kinds.append(d)
                ids.append(i)
            else:
                k = scalar_kind(x)
                if k is None:
                    fail(tr, f"{what}: expected a tensor or a Python number, got {type(x).__name__}")
                vals.append(x)
                kinds.append(k)
        ct, out = binary_types("where", kinds[0], kinds[1])
        ops = [sc]
        for v, k in zip(vals, kinds):
            ops.append(_imm(tr, v, k, ct) if k.startswith("#") else v)
        ids += [-1] * (3 - len(ids))
        return tr.vec(f, "where", tuple(ops), ids[0], ids[1], ids[2], shape, numel(shape), out,
                      None, ct)

    def full(self, shape, value: Number, dtype: DType = "f32") -> TensorHandle:
        """A new tensor of ``shape`` filled with ``value`` (one FILL command); int32 takes an
        integral value."""
        return self._full(shape, value, dtype, "full")

    def _full(self, shape, value, dtype, name: str) -> TensorHandle:
        # (full and zeros: their errors name the call the kernel made)
        tr: PEBuilder = _builder(self)
        f = site_frame()
        shape = check_shape(tr, shape, f"{name} shape")
        dtype = check_dtype(tr, dtype)
        k = scalar_kind(value)
        if k is None:
            fail(tr, f"full: value must be a Python or numpy number, got {type(value).__name__}")
        if dtype == "int32":
            if k == PY_FLOAT and not float(value).is_integer():
                fail(tr, f"full: value {value!r} is not an integer, and dtype is int32")
            imm = _imm(tr, value, PY_INT, "int32")
        else:
            try:
                imm = float(value)
            except OverflowError:
                _past_f64(tr, f"tl.full's {dtype} value", value)
            if k == PY_INT and not -_F64_EXACT < imm < _F64_EXACT:
                imm = f32_of_int(int(value))
            if dtype == "fp8e4m3":
                _e4m3_number(tr, imm, "tl.full's value")
        h = tr.vec(f, "fill", (), -1, -1, -1, shape, numel(shape), dtype, None, dtype, imm)
        tr.seed(h.id - tr.base, "fill", shape, dtype, imm)
        return h

    def zeros(self, shape, dtype: DType = "f32") -> TensorHandle:
        """``full(shape, 0, dtype)``."""
        return self._full(shape, 0, dtype, "zeros")

    def arange(self, start, end=None) -> TensorHandle:
        """int32 ``[start, start + 1, ..., end - 1]`` (``arange(n)``: from 0), Python ints with
        ``end > start``: one FILL-cost command of ``end - start`` elements. Its value is known
        while tracing, so masks built from it are checked at trace."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        if end is None:
            start, end = 0, start
        if scalar_kind(start) != PY_INT or scalar_kind(end) != PY_INT:
            fail(tr, f"arange takes Python ints (start, end), got {start!r}, {end!r}")
        start, end = int(start), int(end)
        if not (end > start and _I32_MIN <= start and end - 1 <= _I32_MAX):
            fail(tr, f"arange({start}, {end}): expected start < end within int32")
        n = end - start
        h = tr.vec(f, "arange", (), -1, -1, -1, (n,), n, "int32", None, "int32", (start, end))
        tr.seed(h.id - tr.base, "arange", (n,), "int32", (start, end))
        return h

    # -- reductions --------------------------------------------------------------------------
    def _reduce(self, name: str, x, axis, where=None) -> TensorHandle:
        tr: PEBuilder = _builder(self)
        if where is None:
            where = site_frame()
        spec, s, d, i, _ = tr.operand(x, f"{name} operand")
        if axis is not None:
            if type(axis) is int and -len(s) <= axis < len(s):
                axis %= len(s)
            else:
                axis = semantic.axis_of(tr, axis, len(s), name)
        return tr.reduce(where, name, spec, i, s, axis, reduce_dtype(name, d))

    def _refuse_keep_dims(self, name: str, keep_dims) -> None:
        # Triton's keyword other than True (a numpy True is one, and a nonzero int, which
        # Triton's constexpr reads as true): kernbench always keeps the reduced axis
        if as_flag(keep_dims) is True or (is_whole(keep_dims) and keep_dims != 0):
            return
        fail(_builder(self), f"{name}: keep_dims={keep_dims!r}: kernbench keeps the reduced axis "
                             f"(size 1) always, so the result broadcasts against its operand; "
                             f"leave keep_dims out (or True), drop a [:, None] that follows, or "
                             f"tl.reshape the result (docs/language.md, 'Porting from Triton')")

    def _refuse_indices(self, name: str, return_indices) -> None:
        if _flag(_builder(self), name, "return_indices", return_indices):
            fail(_builder(self), f"{name}: return_indices={return_indices!r}: kernbench has no "
                                 f"arg{name} (the index of the {name}imum); leave it out")

    def max(self, x: TensorHandle, axis: SupportsIndex | None = None, keep_dims: Flag = True, *,
            return_indices: Flag = False, return_indices_tie_break_left: Flag = True,
            propagate_nan: Any = None) -> TensorHandle:
        """Maximum along ``axis`` (None: all elements), keeping the reduced axis with size 1 so
        the result broadcasts against ``x``. One REDUCE command. NaN propagates. ``keep_dims``
        (Triton's keyword): True only (KernelError otherwise: the axis is always kept).
        ``return_indices`` (Triton's): False only (there is no argmax). ``propagate_nan``
        (Triton's): ``tl.PropagateNan.ALL`` or left out, as for :meth:`maximum`."""
        if propagate_nan is not None:
            _propagate_nan(_builder(self), "max", propagate_nan)
        if keep_dims is not True:
            self._refuse_keep_dims("max", keep_dims)
        if return_indices is not False:
            self._refuse_indices("max", return_indices)
        return self._reduce("max", x, axis)

    def min(self, x: TensorHandle, axis: SupportsIndex | None = None, keep_dims: Flag = True, *,
            return_indices: Flag = False, return_indices_tie_break_left: Flag = True,
            propagate_nan: Any = None) -> TensorHandle:
        """Minimum along ``axis``, reduced axis kept with size 1 (``keep_dims``,
        ``return_indices``, ``propagate_nan``: as :meth:`max`)."""
        if propagate_nan is not None:
            _propagate_nan(_builder(self), "min", propagate_nan)
        if keep_dims is not True:
            self._refuse_keep_dims("min", keep_dims)
        if return_indices is not False:
            self._refuse_indices("min", return_indices)
        return self._reduce("min", x, axis)

    def sum(self, x: TensorHandle, axis: SupportsIndex | None = None, keep_dims: Flag = True,
            dtype: DType | None = None) -> TensorHandle:
        """Sum along ``axis`` (f32 accumulation, rounded to ``x``'s dtype; masks and int32 give
        int32), axis kept with size 1 (``keep_dims``: as :meth:`max`). ``dtype`` (Triton's):
        ``x`` cast to it first (a CAST command unless ``x`` has it), then summed as that dtype."""
        if keep_dims is not True:
            self._refuse_keep_dims("sum", keep_dims)
        if dtype is not None:
            # the sum's checks before its cast is recorded (a review: a bad axis left the cast
            # in the program of a kernel catching the error); the cast's own (dtype, operand)
            # are the only others
            tr: PEBuilder = _builder(self)
            check_dtype(tr, dtype)
            s = tr.operand(x, "sum operand")[1]
            if axis is not None:
                axis = semantic.axis_of(tr, axis, len(s), "sum")
            x = self.cast(x, dtype)
        return self._reduce("sum", x, axis)

    def softmax(self, x: TensorHandle, axis: Any = _UNSET, keep_dims: Flag = False, ieee_rounding: Flag = False,
                *, dim: Any = _UNSET) -> TensorHandle:
        """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (default the last):
        five commands (max-reduce, sub, exp, sum-reduce, div), each rounded to ``x``'s dtype like the
        same ops written by hand. Float tensors only. Triton's keywords: ``dim`` an axis (Triton's
        ``dim=None`` means axis 0, not kernbench's last axis: refused, write the axis);
        ``keep_dims`` and ``ieee_rounding`` change nothing (the result has ``x``'s shape; the
        division is IEEE-rounded either way) and sit in Triton's positional order, after the axis."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        if dim is not _UNSET:
            if dim is None:
                fail(tr, "softmax: dim=None is Triton's axis 0 (its default), and kernbench's "
                         "default is the last axis: write the axis (dim=0 as Triton computes it)")
            if axis is not _UNSET:
                fail(tr, f"softmax: the axis given twice (axis={axis!r}, dim={dim!r})")
            axis = dim
        elif axis is _UNSET:
            axis = -1
        spec, s, d, i, n = tr.operand(x, "softmax operand")
        float_operand(tr, d, "softmax", "its operand")
        if axis is not None:  # (checked as softmax's, not as the max it starts with)
            axis = semantic.axis_of(tr, axis, len(s), "softmax")
        m = self._reduce("max", x, axis, f)
        mi, zi = m.id - tr.base, None
        z = tr.vec(f, "sub", (spec, mi), i, mi, -1, s, n, d)
        zi = z.id - tr.base
        e = tr.vec(f, "exp", (zi,), zi, -1, -1, s, n, d)
        ei = e.id - tr.base
        t = self._reduce("sum", e, axis, f)
        ti = t.id - tr.base
        return tr.vec(f, "div", (ei, ti), ei, ti, -1, s, n, d)

    # -- links -------------------------------------------------------------------------------
    def send(self, dir, src: TensorHandle) -> None:
        """Send tensor ``src`` to the neighbour on port ``dir`` ('E', 'W', 'N', 'S').

        Returns at once: the port's send side (TX unit) carries the message while the PE goes
        on, so a kernel may send to both neighbours and then receive from both. The k-th send on
        a port is received by the neighbour's k-th recv on the opposite port."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        port = port_of(tr, dir, "send")
        spec, s, d, i, n = tr.operand(src, "send src")
        tr.send(f, spec, i, port, s, d, n)

    def recv(self, dir, shape, dtype: DType, after: TensorHandle | None = None) -> TensorHandle:
        """Receive a ``shape``/``dtype`` tensor from the neighbour on port ``dir``.

        Must match the sender's shape and dtype. ``after=h`` posts the recv only once tensor
        ``h`` is ready (the recv's receive-queue slot is not claimed before then); without it
        the recv is posted as soon as its RX unit reaches it."""
        tr: PEBuilder = _builder(self)
        f = site_frame()
        port = port_of(tr, dir, "recv")
        shape = check_shape(tr, shape, "recv shape")
        dtype = check_dtype(tr, dtype, "dtype", True)  # (allow_bool: a sent mask is received as "bool")
        a = -1
        if after is not None:
            a = tr.operand(after, "recv after")[3]
        return tr.recv(f, port, shape, dtype, numel(shape), a)

    # -- what TensorHandle refuses -------------------------------------------------------------
    def _no_value(self, h, what: str):
        # (unpacking `m, i = tl.max(x, 0, True)`, Triton's values and indices: a review found
        # only the control-flow words)
        unpack = (" Unpacking a tensor (`a, b = t`) iterates it too: Triton's tl.max/tl.min(x, axis, "
                  "True) return values and indices, kernbench's third argument is keep_dims and it "
                  "has no argmax (docs/language.md, 'Porting from Triton')") if what.startswith("iterating") else ""
        fail(_builder(self), f"{what}: a tensor has no value while a kernel is traced: control flow may "
                      f"depend on program ids and arguments, not on tensor values (choose per "
                      f"element with tl.where; test handles with `is None`).{unpack}")

    def _refuse(self, h, message: str):
        fail(_builder(self), message)

    def _rounding(self, h, what: str):
        per_element = {
            "math.floor": TL_INSTEAD["floor"], "math.ceil": TL_INSTEAD["ceil"],
            "math.trunc": "tl.cast(tl.cast(x, tl.int32), x.dtype) (a cast to int32 truncates "
                          "toward zero; |x| < 2**31)",
            "round": "no round-to-nearest op: tl.cast(x, tl.int32) truncates toward zero, and the "
                     "floor of x + 0.5 (math.floor's recipe) rounds halves up"}[what]
        fail(_builder(self), f"{what}(tensor): Python's {what} rounds one number, and a tensor has "
                             f"no value while a kernel is traced; per element: {per_element}")

    def _numpy(self, h, fname: str, method: str):
        use = _NUMPY_TL.get(fname)
        if use is None:
            use = f"tl.{fname}" if hasattr(TL, fname) else "the tl calls (docs/language.md)"
        how = "" if method == "__call__" else f".{method}"
        fail(_builder(self), f"numpy's {fname}{how} on a tensor handle: a handle has no value while the "
                      f"kernel is traced, so numpy cannot compute on it; use {use}")
