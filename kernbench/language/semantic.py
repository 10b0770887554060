"""The semantic layer of ``tl``: every shape, dtype, port and pointer check, and its error message.

Builtins call these before the builder emits anything, so a bad call never leaves a half-built
command behind. Every failure is a :class:`~kernbench.common.errors.KernelError` that names the PE
as (pe, cube), the kernel's file:line and what was expected.

The functions take the tracing PE's :class:`~kernbench.language.builder.PEBuilder` as ``tr`` and
are on the tracing hot path: the common case (a handle the builder made itself, equal shapes) is
a couple of identity checks.
"""
from __future__ import annotations

import os
import sys

import ml_dtypes
import numpy as np

from ..common.errors import KernelError
from ..common.pe_commands import N_PORTS, Port, TensorHandle

__all__ = [
    "DTYPES",
    "NP_DTYPES",
    "ITEMSIZE",
    "TransposedView",
    "dtype_name",
    "fail",
    "site",
    "site_frame",
    "line_of",
    "kernel_error",
]

# -- dtypes -----------------------------------------------------------------------------------
#: Canonical dtype name -> numpy storage dtype. "bool" is what comparisons produce.
NP_DTYPES = {
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "f32": np.dtype(np.float32),
    "fp8e4m3": np.dtype(ml_dtypes.float8_e4m3fn),
    "fp8e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "bool": np.dtype(np.bool_),
}
ITEMSIZE = {k: v.itemsize for k, v in NP_DTYPES.items()}
#: Names a kernel may use for a storage dtype (loads, recv, full, cast, device memory).
STORAGE_DTYPES = ("f16", "bf16", "f32", "fp8e4m3", "fp8e5m2")

#: Every accepted spelling -> canonical name.
DTYPES = {
    **{k: "f16" for k in ("f16", "fp16", "float16", "half")},
    **{k: "bf16" for k in ("bf16", "bfloat16")},
    **{k: "f32" for k in ("f32", "fp32", "float32", "float")},
    **{k: "fp8e4m3" for k in ("fp8e4m3", "fp8_e4m3", "e4m3", "f8e4m3", "fp8e4m3fn", "float8_e4m3fn")},
    **{k: "fp8e5m2" for k in ("fp8e5m2", "fp8_e5m2", "e5m2", "f8e5m2", "float8_e5m2")},
}
_NP_NAME = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float8_e4m3fn": "fp8e4m3",
            "float8_e5m2": "fp8e5m2"}
_RANK = {"bool": 0, "fp8e4m3": 1, "fp8e5m2": 1, "f16": 2, "bf16": 2, "f32": 3}


def dtype_name(d) -> str | None:
    """Canonical dtype name of a string, numpy dtype or ml_dtypes type; None when unknown."""
    if type(d) is str:
        return DTYPES.get(d) or DTYPES.get(d.lower())
    try:
        return _NP_NAME.get(np.dtype(d).name)
    except TypeError:
        return None


def promote(a: str, b: str) -> str:
    """Result dtype of an elementwise op on two tensors (Python scalars never promote)."""
    if a == b:
        return "f32" if a == "bool" else a
    ra, rb = _RANK[a], _RANK[b]
    if ra != rb:
        return a if ra > rb else b
    # f16 with bf16, or e4m3 with e5m2: widen to the next precision that holds both.
    return "f32" if ra == 2 else "f16"


# -- where a call came from -------------------------------------------------------------------
_HERE = os.path.dirname(os.path.abspath(__file__))
_INTERNAL = set()


def register_internal(path: str) -> None:
    """Frames from ``path`` are skipped when naming the kernel line of a tl call."""
    _INTERNAL.add(path)


register_internal(__file__)
register_internal(sys.modules[TensorHandle.__module__].__file__)


def site_frame(depth: int = 1):
    """The innermost frame outside kernbench's language: the kernel's call site (a frame, for
    the builder's per-instruction caches; :func:`site` gives its file and line)."""
    f = sys._getframe(depth + 1)
    internal = _INTERNAL
    while f.f_code.co_filename in internal and f.f_back is not None:
        f = f.f_back
    return f


def site(depth: int = 1) -> tuple:
    """(file, line) of the innermost frame outside kernbench's language: the kernel's call site.

    Walks up only past tl's own frames (a handful), never the whole stack."""
    f = sys._getframe(depth)
    internal = _INTERNAL
    while f is not None and f.f_code.co_filename in internal:
        f = f.f_back
    if f is None:
        return ("<unknown>", 0)
    return (f.f_code.co_filename, line_of(f))


#: id(code) + instruction offset -> (code, offset, line). A live code object holds its bytecode
#: inline, so the keys of live code objects never collide; an entry of a dead one is caught by
#: the identity check.
_LINES: dict = {}


def line_of(f) -> int:
    """``f.f_lineno``, cached: Python finds a frame's line by scanning its code's line table
    from the start, which in a long kernel function costs more than the rest of a tl call."""
    co = f.f_code
    i = f.f_lasti
    e = _LINES.get(id(co) + i)
    if e is not None and e[0] is co and e[1] == i:
        return e[2]
    line = f.f_lineno
    if len(_LINES) >= 1 << 16:
        _LINES.clear()
    _LINES[id(co) + i] = (co, i, line)
    return line


def forget_lines() -> None:
    """Drop the line cache (and with it the code objects it holds): called after each trace."""
    _LINES.clear()


def kernel_error(tr, message: str, where: tuple | None = None) -> KernelError:
    """A KernelError naming ``tr``'s PE as (pe, cube) and the kernel line."""
    file, line = where if where is not None else site()
    loc = f"{os.path.basename(file)}:{line}"
    pe = (tr.pe, tr.cube)
    return KernelError(f"PE {pe} at {loc}: {message}", pe=pe, where=f"{file}:{line}")


def fail(tr, message: str):
    """Raise the KernelError for ``message`` at the kernel's current line."""
    raise kernel_error(tr, message, site())


# -- values -----------------------------------------------------------------------------------
class TransposedView(TensorHandle):
    """A handle that reads its buffer with the last two axes swapped (made by ``tl.trans``).

    Same ``id`` as the buffer, no command, no cost. A view made from it with the
    ``TensorHandle(...)`` constructor is a plain reshape of the buffer again."""

    __slots__ = ()


def fmt_shape(shape) -> str:
    """(64,128) / (64,): shapes as error messages and labels print them."""
    return "(" + ",".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


_fmt = fmt_shape


def check_dtype(tr, d, what: str = "dtype", allow_bool: bool = False) -> str:
    """Canonical storage dtype or a KernelError naming what is allowed."""
    name = DTYPES.get(d) if type(d) is str else None
    if name is not None:
        return name
    name = dtype_name(d)
    if name is None or (name == "bool" and not allow_bool):
        fail(tr, f"unknown {what} {d!r}: expected one of {', '.join(STORAGE_DTYPES)}")
    return name


def check_shape(tr, shape, what: str = "shape") -> tuple:
    """A shape as a tuple of positive ints (an int n means (n,))."""
    if type(shape) is tuple:
        for d in shape:
            if type(d) is not int or d < 1:
                break
        else:
            if shape:
                return shape
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        out = tuple(int(d) for d in shape)
        ok = len(out) > 0 and all(d >= 1 and d == s for d, s in zip(out, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        fail(tr, f"{what} must be a non-empty tuple of positive ints, got {shape!r}")
    return out


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def operand(tr, h, what: str = "operand"):
    """Resolve a tensor operand -> (spec, shape, dtype, id, numel).

    ``spec`` is what functional replay needs: the tensor id, or (id, shape, transposed) for a
    view. The buffer's dtype wins over the handle's (a view is a reshape, not a bitcast).
    Fast path: a plain handle whose shape is the very tuple of its buffer (the handle the
    builder returned, or a copy of it), which the slow path would resolve the same way."""
    try:
        i = h.id
        if type(i) is int and i >= 0 and type(h) is TensorHandle:
            t = tr.tensors[i]
            if h.shape is t[0]:
                return i, t[0], t[1], i, t[2]
    except (AttributeError, IndexError, TypeError):
        pass
    return operand_slow(tr, h, what)


def operand_slow(tr, h, what: str):
    """operand() for views, transposed views and bad values."""
    if not isinstance(h, TensorHandle):
        fail(tr, f"{what} must be a tensor (a TensorHandle from a tl call), got {type(h).__name__} {h!r}")
    i = h.id
    tensors = tr.tensors
    if not (isinstance(i, (int, np.integer)) and 0 <= i < len(tensors)):
        fail(tr, f"{what} is a TensorHandle with id {h.id!r}, which no tl call on this PE made "
                 f"(this PE has {len(tensors)} tensors); handles belong to the program that made them")
    i = int(i)
    s = h.shape
    if type(s) is not tuple:
        try:
            s = tuple(int(d) for d in s)
        except (TypeError, ValueError):
            fail(tr, f"{what} (a view of tensor {i}) has shape {h.shape!r}: expected a tuple of ints")
    trans = isinstance(h, TransposedView)
    buf, dtype, nbuf = tensors[i]
    n = numel(s)
    if n != nbuf and tr.functional:
        fail(tr, f"{what} is a view of tensor {i} with shape {_fmt(s)} ({n} elements), "
                 f"but its buffer is {_fmt(buf)} ({nbuf} elements): in functional mode a "
                 f"view must keep the element count (timing mode accepts it)")
    if s == buf and not trans:
        return i, s, dtype, i, n
    return (i, s, trans), s, dtype, i, n


def is_scalar(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, TensorHandle)


def broadcast(tr, a: tuple, b: tuple, op: str) -> tuple:
    """Numpy broadcasting of two shapes, or a KernelError showing both."""
    if a == b:
        return a
    out = _BROADCAST.get((a, b))
    if out is not None:
        return out
    out = _broadcast(tr, a, b, op)
    if len(_BROADCAST) < 4096:  # a kernel uses a handful of shape pairs, again and again
        _BROADCAST[(a, b)] = out
    return out


_BROADCAST: dict = {}


def _broadcast(tr, a: tuple, b: tuple, op: str) -> tuple:
    la, lb = len(a), len(b)
    n = la if la > lb else lb
    a2 = (1,) * (n - la) + a
    b2 = (1,) * (n - lb) + b
    out = []
    for x, y in zip(a2, b2):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            fail(tr, f"{op}: shapes {_fmt(a)} and {_fmt(b)} do not broadcast (axis sizes must be "
                     f"equal or 1, from the right)")
    return tuple(out)


def axis_of(tr, axis, ndim: int, op: str) -> int:
    """A reduction axis in 0..ndim-1 (negative counts from the end)."""
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and -ndim <= axis < ndim:
        return int(axis) % ndim
    fail(tr, f"{op}: axis {axis!r} is out of range for a {ndim}-D tensor: expected an int in "
             f"[{-ndim}, {ndim - 1}] or None")


def dot_shapes(tr, a: tuple, b: tuple) -> tuple:
    """(M, N, K) of a 2-D dot, or a KernelError with both shapes."""
    if len(a) != 2 or len(b) != 2:
        fail(tr, f"dot takes 2-D tensors, got {_fmt(a)} x {_fmt(b)}")
    if a[1] != b[0]:
        fail(tr, f"dot shape mismatch: {_fmt(a)} x {_fmt(b)}; expected b.shape[0] == a.shape[1] "
                 f"= {a[1]}, got {b[0]}")
    return a[0], b[1], a[1]


def float_operand(tr, dtype: str, op: str, what: str) -> None:
    if dtype == "bool":
        fail(tr, f"{op}: {what} is a bool mask; cast it first (tl.cast(x, 'f16'))")


# -- device memory ----------------------------------------------------------------------------
def region(tr, ptr, shape: tuple, dtype: str | None, stride, verb: str):
    """Check a load/store at ``ptr`` -> (allocation, element offset, dtype, row stride or None).

    The access must start inside an allocation, on an element boundary, and end inside it."""
    if not isinstance(ptr, (int, np.integer)) or isinstance(ptr, bool):
        addr = getattr(ptr, "addr", None)
        if addr is None:
            fail(tr, f"{verb}: pointer must be an int byte address (a device array or ptr + "
                     f"offset), got {type(ptr).__name__} {ptr!r}")
        ptr = addr
    ptr = int(ptr)
    alloc = tr.memory.find(ptr)
    if alloc is None:
        fail(tr, f"{verb} at address {ptr:#x} is outside every device allocation "
                 f"({tr.memory.describe_near(ptr)}); allocate with ctx.empty/shard/replicate and "
                 f"pass the array (or its address + a byte offset)")
    if dtype is None:
        dtype = alloc.dtype
    elif dtype != alloc.dtype:
        fail(tr, f"{verb} as {dtype} from allocation {alloc.name!r}, which holds {alloc.dtype}: "
                 f"expected dtype={alloc.dtype!r} (cast after loading instead)")
    isz = alloc.itemsize
    off = ptr - alloc.addr
    if off % isz:
        fail(tr, f"{verb} at byte offset {off} of allocation {alloc.name!r} is not on a {dtype} "
                 f"element boundary (a multiple of {isz} bytes)")
    e0 = off // isz
    n = numel(shape)
    if stride is None:
        end = e0 + n
    else:
        if len(shape) != 2:
            fail(tr, f"{verb}: stride= needs a 2-D (rows, cols) shape, got {_fmt(shape)}")
        if not isinstance(stride, (int, np.integer)) or stride < shape[1]:
            fail(tr, f"{verb}: stride must be an int >= the row length {shape[1]} elements, got "
                     f"{stride!r}")
        stride = int(stride)
        end = e0 + (shape[0] - 1) * stride + shape[1]
    if end > alloc.numel:
        fail(tr, f"{verb} of {_fmt(shape)} {dtype} at byte offset {off} runs outside allocation "
                 f"{alloc.name!r} ({alloc.nbytes} bytes = {alloc.numel} x {dtype}): it would reach "
                 f"element {end - 1}, the last is {alloc.numel - 1}")
    return alloc, e0, dtype, stride


# -- links ------------------------------------------------------------------------------------
def port_of(tr, d, verb: str) -> int:
    """A link port with a neighbour under the installed SFR, or a KernelError."""
    if type(d) is str and len(d) == 1:
        p = _PORTS.get(d)
    else:
        p = None
    if p is None:
        if isinstance(d, Port):
            p = int(d)
        elif isinstance(d, str) and d.upper() in _PORTS:
            p = _PORTS[d.upper()]
        elif isinstance(d, int) and not isinstance(d, bool) and 0 <= d < N_PORTS:
            p = d
        else:
            fail(tr, f"{verb}: unknown link direction {d!r}: expected one of 'E', 'W', 'N', 'S'")
    if tr.nbr[p] < 0:
        fail(tr, f"{verb} on port {Port(p).name}, which has no neighbour under the installed SFR "
                 f"({tr.sfr_text})")
    return p


_PORTS = {p.name: int(p) for p in Port}
_PORTS.update({p.name.lower(): int(p) for p in Port})
