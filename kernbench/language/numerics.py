"""What every elementwise op and reduction computes: the one place the language's numerics live.

Functional replay (kernbench.runtime.replay) computes each traced command with these functions,
and the builder folds commands whose operands are known while tracing (``tl.arange`` and the
index arithmetic and masks built on it) with the same functions, so a mask checked at trace and
the mask applied in replay are the same values.

Rules (docs/language.md, "Promotion" and "Numerics"): every op has a *compute dtype* ``ct``,
the promoted dtype of its operands. Operands are first converted to ``ct`` (an int or a 0/1 mask
rounded to a float ``ct``), then the op runs in a wide type: f32 for a float ``ct``, int64 for
int32, bool for logical ops on masks. The result is rounded once to the output dtype; int32
results wrap modulo 2**32 as C's conversions do.
"""
from __future__ import annotations

import numpy as np

from .semantic import NP_DTYPES

__all__ = ["vec_value", "vec_compute", "reduce_value", "dot_value", "cast_value", "convert", "view_value",
           "value_of",
           "f32_of_int", "check_right", "RIGHT_CHECKED", "IntegerDivisionByZero", "ShiftOutOfRange"]

_F32 = np.dtype(np.float32)
_I64 = np.dtype(np.int64)
_I32 = np.dtype(np.int32)
_BOOL = np.dtype(np.bool_)
_I32_MIN, _I32_MAX = -(2 ** 31), 2 ** 31 - 1


class IntegerDivisionByZero(ArithmeticError):
    """An int32 ``//`` or ``%`` met a zero divisor (replay turns it into a KernelError)."""


class ShiftOutOfRange(ArithmeticError):
    """A shift count outside 0..31 (replay turns it into a KernelError)."""


def f32_of_int(v: int) -> float:
    """Python int ``v`` rounded once, to nearest even, to f32 (24 significant bits), as a Python
    float (exact: the f32 value itself; +-inf past f32's range). ``float(v)`` then f32 rounds
    twice for |v| > 2**53 (to f64's 53 bits first): 2**60 + 2**36 + 1 would be 2**60, not the
    nearest f32, 2**60 + 2**37 (numpy/numpy#20687)."""
    a = -v if v < 0 else v
    drop = a.bit_length() - 24
    if drop > 0:
        q, r = divmod(a, 1 << drop)
        half = 1 << (drop - 1)
        if r > half or (r == half and q & 1):
            q += 1
        a = q << drop
    if a.bit_length() > 128:  # (f32's largest is (2 - 2**-23) * 2**127: past it, inf)
        f = float("inf")
    else:
        f = float(a)
    return -f if v < 0 else f


def view_value(v: np.ndarray, spec: tuple) -> np.ndarray:
    """What view ``spec`` = (number, shape, transposed) reads of its buffer's value ``v``: the
    buffer in row-major order at ``shape``, or, transposed, at ``shape`` with the last two axes
    swapped and then swapped back (docs/language.md, "Views")."""
    _, shape, trans = spec
    if trans:
        return v.reshape(shape[:-2] + (shape[-1], shape[-2])).swapaxes(-1, -2)
    return v.reshape(shape)


def value_of(vals: list, spec) -> np.ndarray:
    """The value an operand spec reads: a tensor number, or (number, shape, transposed)."""
    if type(spec) is int:
        return vals[spec]
    return view_value(vals[spec[0]], spec)


#: the storage dtypes ml_dtypes provides: older releases (those of numpy 1.x) convert float64
#: and ints to them through float32, rounding twice
_ML_NARROW = frozenset(("bf16", "fp8e4m3", "fp8e5m2"))
_ODD_CHUNK = 1 << 20  #: elements round_once converts at a time


def round_once(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` (a numeric array) as storage dtype ``name``, each value rounded once (to nearest,
    ties to even; past the range as a kernel's cast: inf, NaN in fp8e4m3).

    For bf16 and the fp8s, values float32 does not hold exactly (float64, int32 past 2**24,
    int64) are first rounded to float32 *to odd* (truncated, the last bit set when inexact):
    rounding that to a format at least two bits narrower gives the correctly rounded result
    (S. Boldo and G. Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms
    using rounding to odd", IEEE Trans. Computers 57(4), 2008). The ml_dtypes of numpy 1.x
    round through float32 to nearest, twice (a review: 1 + 2**-8 + 2**-40 became bf16 1.0,
    not 1.0078125; int64 16973823 became 17039360, not 16908288)."""
    target = NP_DTYPES[name]
    if name not in _ML_NARROW or a.dtype.kind not in "iuf" or (a.dtype.kind == "f" and a.dtype.itemsize <= 4) \
            or (a.dtype.kind in "iu" and a.dtype.itemsize <= 2):
        return a.astype(target)
    if a.size > _ODD_CHUNK:  # (in pieces: the temporaries stay small beside the data)
        flat = np.ascontiguousarray(a).reshape(-1)
        out = np.empty(flat.shape, target)
        for i in range(0, flat.size, _ODD_CHUNK):
            out[i:i + _ODD_CHUNK] = round_once(flat[i:i + _ODD_CHUNK], name)
        return out.reshape(a.shape)
    x = _f64_to_odd(a) if a.dtype.kind in "iu" and a.dtype.itemsize == 8 else a.astype(np.float64, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(np.float32)
        back = y.astype(np.float64)
        inexact = (back != x) & np.isfinite(x)
        if not inexact.any():
            return y.astype(target)
        # (a result rounded away from zero, or past float32 to inf)
        return _to_odd(y, inexact, np.abs(back) > np.abs(x), np.uint32).astype(target)


def _f64_to_odd(a: np.ndarray) -> np.ndarray:
    """A 64-bit int array as float64, rounded to odd (exact up to 2**53 in magnitude)."""
    y = a.astype(np.float64)
    top = 2.0 ** (64 if a.dtype.kind == "u" else 63)
    big = y >= top  # (rounded up past the type: no int to compare it with)
    back = np.where(big, 0.0, y).astype(a.dtype)
    inexact = big | (back != a)
    if not inexact.any():
        return y
    away = big | ((back > a) if a.dtype.kind == "u" else np.where(a > 0, back > a, back < a))
    return _to_odd(y, inexact, away, np.uint64)


def _to_odd(y: np.ndarray, inexact: np.ndarray, away: np.ndarray, bits) -> np.ndarray:
    """``y``, a round-to-nearest result, rounded to odd instead where ``inexact``: truncated
    toward zero (one step back where ``away``: it was rounded away from zero), then the odd of
    it and its neighbour away from zero (``bits``: the unsigned int of y's width)."""
    t = np.where(inexact & away, np.nextafter(y, y.dtype.type(0)), y)
    even = (t.view(bits) & 1) == 0
    return np.where(inexact & even, np.nextafter(t, np.copysign(y.dtype.type(np.inf), t)), t)


def _int_to_float(v: np.ndarray, out: str) -> np.ndarray:
    """Integers (int32, masks) rounded once to float dtype ``out``, to nearest even
    (:func:`round_once`)."""
    return round_once(v, out)


def _wide(ct: str) -> np.dtype:
    """The type an op with compute dtype ``ct`` runs in."""
    if ct == "bool":
        return _BOOL
    if ct == "int32":
        return _I64
    return _F32


def convert(v, ct: str) -> np.ndarray:
    """Operand ``v`` (an array of any language dtype, or a Python number) converted to ``ct``
    and widened for computing: a float ``ct`` rounds to ``ct`` first (an int32 operand of an f16
    op is an f16 value, and so is a Python number: an f32 constant cast to ``ct``, as Triton
    casts a scalar to its tensor operand's dtype), then f32."""
    if not isinstance(v, np.ndarray):  # an immediate: Python int or float
        if ct == "int32":
            return np.int64(v)
        if ct == "bool":
            return np.bool_(v)
        with np.errstate(over="ignore"):  # (a number past ct's range: inf, NaN for fp8e4m3)
            f = np.float32(v)
            return f if ct == "f32" else f.astype(NP_DTYPES[ct]).astype(_F32)
    wide = _wide(ct)
    if ct in ("int32", "bool", "f32"):
        if ct == "int32" and v.dtype.kind == "f":  # never happens by promotion; a cast does this
            return cast_value(v, "int32").astype(_I64)
        return v.astype(wide, copy=False)
    # float ct narrower than f32: round to ct once, then compute in f32
    nd = NP_DTYPES[ct]
    if v.dtype.kind in "biu":
        v = _int_to_float(v, ct)
    elif v.dtype != nd:
        v = (v.astype(_F32) if v.dtype != _F32 else v).astype(nd)
    return v.astype(_F32)


def _round(r, out: str) -> np.ndarray:
    """Round a wide result once to ``out`` (int32 wraps like C)."""
    r = np.asarray(r)
    nd = NP_DTYPES[out]
    if r.dtype == nd:
        return r
    if out == "int32":
        return r.astype(_I64, copy=False).astype(_I32)  # int64 -> int32 keeps the low 32 bits
    if out == "bool":
        return r.astype(_BOOL)
    if r.dtype != _F32 and nd != _F32:
        r = r.astype(_F32)
    return r.astype(nd)


def _trunc_div(a, b):
    """C's integer division (toward zero) on int64 values; b has no zeros."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def _first_at(bad) -> str:
    """Where the first true element of bool array ``bad`` is, and how many there are."""
    if bad.ndim == 0:
        return ""
    n = int(np.count_nonzero(bad))
    at = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
    return f" at element {at}" + (f" ({n:,} of {bad.size:,} elements)" if n > 1 else "")


def _check_divisor(b) -> None:
    # (a scalar, the usual divisor, compared directly: np.any on one is ~20x slower)
    if (b == 0 if type(b) is not np.ndarray else np.any(b == 0)):
        # (what was expected and where: a review found the bare words hard to act on)
        where = _first_at(b == 0) if type(b) is np.ndarray else ""
        raise IntegerDivisionByZero(f"integer division or remainder by zero: the divisor is 0{where}; "
                                    f"int32 // and % need a nonzero divisor (tl.where(d == 0, 1, d) "
                                    f"guards one)")


def _check_shift(s) -> None:
    s = np.asarray(s)
    out = (s < 0) | (s > 31)
    if np.any(out):
        bad = s[out].ravel()[0]
        raise ShiftOutOfRange(f"shift count {int(bad)} is outside 0..31{_first_at(out)}")


#: ops whose right operand alone can make them fail: a zero divisor, a shift count out of range
RIGHT_CHECKED = frozenset(("floordiv", "mod", "shl", "shr"))


def check_right(name: str, ct: str, b) -> None:
    """The check :func:`vec_compute` makes of op ``name``'s right operand ``b`` (compute dtype
    ``ct``), on its own: the tracer makes it when only that operand's value is known (a
    ``tl.arange`` divisor of a loaded tensor). Raises IntegerDivisionByZero, ShiftOutOfRange."""
    if name == "floordiv" or (name == "mod" and ct == "int32"):
        _check_divisor(b)
    elif name in ("shl", "shr"):
        _check_shift(b)


def _sigmoid(x):
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def _signed_zeros(r, a, b, pick_a):
    """``r`` (numpy's maximum or minimum of ``a`` and ``b``) with IEEE 754-2019's order of
    signed zeros, -0 < +0, where ``a`` and ``b`` are both zeros: numpy returns ``a`` there.
    ``pick_a``: where ``a`` is the answer (max: a is +0; min: a is -0)."""
    if r.dtype.kind != "f":
        return r
    z = (a == 0) & (b == 0)
    if not np.any(z):
        return r
    return np.where(z, np.where(pick_a(a), a, b), r)


def _maximum(a, b):
    return _signed_zeros(np.maximum(a, b), a, b, lambda a: ~np.signbit(a))


def _minimum(a, b):
    return _signed_zeros(np.minimum(a, b), a, b, np.signbit)


_ARITH = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": _maximum,
    "minimum": _minimum,
}
_COMPARE = {
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "eq": np.equal, "ne": np.not_equal,
}
_LOGIC = {"and_": np.logical_and, "or_": np.logical_or, "xor": np.logical_xor}
_BITWISE = {"and_": np.bitwise_and, "or_": np.bitwise_or, "xor": np.bitwise_xor}


def _exp2(x):
    """f32 ``x``: exp2 correctly rounded to f32 (f64's, rounded once; where f64's lies on an f32
    tie, long double's: two inputs of 2**32, 0.0029695758 and -0.029743774, a review); others
    (the drift shadow's f64): numpy's. numpy's f32 exp2 is an ulp off at 127 (2**127 + 2**104,
    an MX scale built as exp2(e - 127)); this is 2**n at every integer n (subnormal ones kept:
    a GPU's ex2.approx.ftz flushes them, docs/language.md)."""
    x = np.asarray(x)
    if x.dtype != _F32:
        return np.exp2(x)
    shape, x = x.shape, x.reshape(-1)  # (flat: the indices below are flat ones)
    d = np.exp2(x.astype(np.float64))
    r = d.astype(_F32)
    # an f32 tie: halfway between two f32 of d's binade, the 29 bits f64 has past f32's 24 are
    # 1 then 0s (below f32's normal range, 2**-126, ties sit elsewhere: that subset is compared
    # with its f32 neighbours, a test 20x slower than this one)
    tie = (d.view(np.uint64) & 0x1FFFFFFF) == 0x10000000
    low = np.flatnonzero(d < 2.0 ** -126)
    if len(low):
        dl, rl = d[low], r[low]
        other = np.nextafter(rl, np.where(dl > rl, np.inf, -np.inf).astype(_F32))
        tie[low] = (dl != rl) & (dl - rl == other - dl)
    if tie.any():
        r[tie] = np.exp2(x[tie].astype(np.longdouble)).astype(_F32)
    return r.reshape(shape)


_FLOAT_FN = {
    "exp": np.exp, "exp2": _exp2, "log": np.log, "log2": np.log2, "sqrt": np.sqrt,
    "rsqrt": lambda x: np.float32(1.0) / np.sqrt(x), "sigmoid": _sigmoid,
}


def vec_compute(name: str, args: list, ct: str, widen) -> np.ndarray:
    """The unrounded result of elementwise op ``name`` (any but fill, arange, cast and copy,
    which have no compute dtype to dispatch on) with compute dtype ``ct``: each operand of
    ``args`` (arrays or Python numbers) widened by ``widen`` (vec_value: :func:`convert` to
    ``ct``; the f64 drift shadow: to float64), ``where``'s condition taken as a mask (nonzero is
    true), the op computed in the widened type with numpy's broadcasting (the caller broadcasts
    to the command's shape and rounds). Floating-point overflow and invalid results are silent
    (inf, NaN). Raises IntegerDivisionByZero for ``//`` by a zero divisor or an int32 ``%`` by
    one, ShiftOutOfRange for a shift count outside 0..31, ValueError for an unknown ``name``."""
    if name == "where":
        c = np.asarray(args[0])
        c = c if c.dtype == _BOOL else c != 0
        return np.where(c, widen(args[1]), widen(args[2]))
    xs = [widen(a) for a in args]
    with np.errstate(all="ignore"):
        if name in _ARITH:
            return _ARITH[name](xs[0], xs[1])
        if name in _COMPARE:
            return _COMPARE[name](xs[0], xs[1])
        if name == "div":
            return np.divide(xs[0], xs[1])
        if name == "floordiv":
            _check_divisor(xs[1])
            return _trunc_div(xs[0], xs[1])
        if name == "mod":
            if ct == "int32":
                _check_divisor(xs[1])
            return np.fmod(xs[0], xs[1])
        if name in _LOGIC:
            return (_LOGIC if ct == "bool" else _BITWISE)[name](xs[0], xs[1])
        if name == "invert":
            return np.logical_not(xs[0]) if ct == "bool" else np.invert(xs[0])
        if name in ("shl", "shr"):
            _check_shift(xs[1])
            return np.left_shift(xs[0], xs[1]) if name == "shl" else np.right_shift(xs[0], xs[1])
        if name == "neg":
            return np.negative(xs[0])
        if name == "abs":
            return np.abs(xs[0])
        if name in _FLOAT_FN:
            return _FLOAT_FN[name](xs[0])
    raise ValueError(f"unknown elementwise op {name!r}")  # pragma: no cover - the builtins emit only the names above


def vec_value(name: str, args: list, ct: str, shape: tuple, out: str, imm=None) -> np.ndarray:
    """The value of elementwise ``name`` on ``args`` (arrays or Python numbers), compute dtype
    ``ct``, broadcast to ``shape`` and rounded to ``out``. ``imm`` carries what is not an
    operand: the fill value, the arange (start, end), cast's ``saturate``. The ops with a
    compute dtype are :func:`vec_compute`'s, on the operands converted to ``ct``; what it raises,
    this raises."""
    if name == "fill":
        return np.full(shape, imm, NP_DTYPES[out]) if out in ("int32", "bool") else \
            _round(np.full(shape, imm, _F32), out)
    if name == "arange":
        return np.arange(imm[0], imm[1], dtype=_I32)
    if name == "cast":
        return cast_value(np.asarray(args[0]), out, saturate=bool(imm))
    if name == "copy":  # broadcast_to: the operand, materialized at the new shape
        return np.ascontiguousarray(np.broadcast_to(np.asarray(args[0]), shape))
    r = np.asarray(vec_compute(name, args, ct, lambda a: convert(a, ct)))
    if r.shape != shape:
        r = np.broadcast_to(r, shape)
    return np.ascontiguousarray(_round(r, out))


def reduce_value(name: str, x: np.ndarray, axis, out: str) -> np.ndarray:
    """``name`` (max, min, sum) of ``x`` over ``axis`` (None: all), the axis kept; floats
    accumulate in f32, ints and masks in int64 (then wrap to int32)."""
    if out in ("int32", "bool") or x.dtype.kind in "bi":
        w = x.astype(_I64) if name == "sum" else x
    else:
        w = x.astype(_F32, copy=False)
    fn = {"max": np.max, "min": np.min, "sum": np.sum}[name]
    with np.errstate(all="ignore"):
        if name == "sum" and w.dtype.kind == "f":
            r = _pairwise_sum(w, axis)
        else:
            r = fn(w, axis=axis, keepdims=True)
    if name != "sum" and r.dtype.kind == "f" and np.any(r == 0):
        # IEEE 754-2019's order of signed zeros (-0 < +0), as tl.maximum and tl.minimum: a max
        # that is a zero is +0 if any element is +0, a min -0 if any is -0
        sign = np.signbit(w)
        has = np.any((w == 0) & (~sign if name == "max" else sign), axis=axis, keepdims=True)
        zero = np.asarray(0.0 if name == "max" else -0.0, r.dtype)
        r = np.where(r == 0, np.where(has, zero, -zero), r)
    elif name == "sum" and r.dtype.kind == "f" and np.any(r == 0):
        # IEEE addition: a sum is -0 only when every addend is -0 (numpy's starts from +0)
        neg = np.all((w == 0) & np.signbit(w), axis=axis, keepdims=True)
        r = np.where(neg & (r == 0), np.asarray(-0.0, r.dtype), r)
    return np.ascontiguousarray(_round(r, out))


#: significand bits of each float dtype: a product of two is exact in f32 (24 bits) when theirs
#: sum to at most 24 and it is not subnormal
_SIG_BITS = {"float32": 24, "float16": 11, "bfloat16": 8, "float8_e4m3fn": 4, "float8_e5m2": 3}
#: f32 elements of rounded products a chunk of the no-FMA dot holds (its memory: two of these),
#: for tiles of fewer than RANK1_MIN elements; larger ones are added one k at a time
DOT_CHUNK = 1 << 22
RANK1_MIN = 1 << 12


def _exact_products(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether every product of an element of ``a`` and one of ``b`` is exact in f32: their
    significands fit in 24 bits (f16, bf16 and the fp8s with each other) and, with bf16 in
    the pair (f32's exponent range), every product of finite nonzero elements lies in f32's
    normal range: none below 2**-126, none above f32's largest (rounded to inf, where an FMA
    keeps it: a review's 2**64 * 2**64 - 2**127)."""
    bits = _SIG_BITS.get(a.dtype.name, 99) + _SIG_BITS.get(b.dtype.name, 99)
    if bits > 24:
        return False
    if "bfloat16" not in (a.dtype.name, b.dtype.name):
        return True  # (f16's and the fp8s' products are 2**-48 .. 65504**2: normal)

    def extent(x):
        m = np.abs(x.astype(np.float64))
        m = m[(m > 0) & np.isfinite(m)]
        return (float(m.min()), float(m.max())) if m.size else None

    ea, eb = extent(a), extent(b)
    return (ea is None or eb is None
            or (ea[0] * eb[0] >= 2.0 ** -126 and ea[1] * eb[1] <= float(np.finfo(np.float32).max)))


def dot_value(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``tl.dot``'s value: (M, K) @ (K, N) -> (M, N) f32, each product rounded to f32 before
    it is added, in f32 (no fused multiply-add; docs/language.md, "Order and accuracy").

    Where every product is exact in f32 (f16, bf16, fp8 inputs: :func:`_exact_products`), an
    FMA rounds nothing more, and numpy's matmul (the host's BLAS, its order of additions) is
    used. Otherwise (an f32 operand, or bf16 tensors whose products may leave f32's normal
    range) BLAS's FMAs would round a product's sum once instead of twice, depending on the host CPU and the element's place in the tile (a review: the
    doc's own example gave 2**-24 at some places and 0 at others): the products are rounded
    to f32 and added left to right over K (a rank-1 update a k, or ``DOT_CHUNK`` products at a
    time on small tiles: the same order, the same bits).

    Cost (one core of this 2-core VM, best of 3): (256, 128) x (128, 2048) 50 ms, 3x BLAS's
    17; (2048, 64) x (64, 2048) 0.2 s, 10x; (8, 8192) x (8192, 8) 2 ms. f16, bf16 and fp8
    dots (every shipped kernel's) keep BLAS's speed."""
    # (row-major whatever the views: BLAS adds in an order of the operands' layout, so a dot of
    # a tl.trans view and one of the same values loaded row-major differed in 361 of 3,795
    # elements' last bits; a review)
    a32 = np.ascontiguousarray(a, dtype=_F32)
    b32 = np.ascontiguousarray(b, dtype=_F32)
    if _exact_products(a, b):
        return np.matmul(a32, b32)
    m, k = a32.shape
    n = b32.shape[1]
    out = np.zeros((m, n), _F32)
    with np.errstate(all="ignore"):
        if m * n >= RANK1_MIN:  # one rank-1 update a k: about BLAS's speed on tiles this big
            at, bt, p = np.ascontiguousarray(a32.T), np.ascontiguousarray(b32), np.empty((m, n), _F32)
            for t in range(k):
                np.multiply(at[t][:, None], bt[t][None, :], out=p)  # rounded products
                np.add(out, p, out=out)
            return out
        kc = max(1, DOT_CHUNK // max(1, m * n))  # small tiles: many k at once
        for k0 in range(0, k, kc):
            p = a32[:, k0:k0 + kc, None] * b32[None, k0:k0 + kc, :]  # (M, kc, N): rounded products
            p[:, 0, :] += out
            out = np.add.accumulate(p, axis=1)[:, -1, :]  # (sequential: left to right)
    return np.ascontiguousarray(out)


def _pairwise_sum(w: np.ndarray, axis) -> np.ndarray:
    """The f32 sum of ``w`` over ``axis`` (None: all), kept, in numpy's pairwise order along
    the reduced elements in row-major order whatever ``w``'s memory layout: numpy sums
    pairwise only along a contiguous inner loop (a transposed view, or an axis that is not the
    last, it adds left to right), so the reduced axis is made the contiguous last one first.
    (A review found tl.sum of a tensor and of its transposed view differ.)"""
    if axis is None:
        return np.sum(np.ascontiguousarray(w).reshape(-1)).reshape((1,) * w.ndim)
    ax = axis % w.ndim
    last = np.ascontiguousarray(np.moveaxis(w, ax, -1))
    return np.expand_dims(np.sum(last, axis=-1), ax)


def _finfo_max(nd: np.dtype) -> float:
    """The largest finite value of float dtype ``nd`` (numpy's finfo for its own floats,
    ml_dtypes' for bf16 and fp8: imported here, as NP_DTYPES imports it, only when needed)."""
    if nd.type in (np.float16, np.float32, np.float64):
        return float(np.finfo(nd).max)
    import ml_dtypes
    return float(ml_dtypes.finfo(nd).max)


def cast_value(v: np.ndarray, out: str, saturate: bool = False) -> np.ndarray:
    """``v`` converted to ``out``: float -> int32 truncates toward zero and saturates (NaN ->
    0); to fp8 with ``saturate`` clamps to the largest finite value first (NaN stays NaN)."""
    nd = NP_DTYPES[out]
    if out == "int32":
        if v.dtype.kind in "biu":
            return v.astype(_I64).astype(_I32)
        f = v.astype(np.float64)
        f = np.where(np.isnan(f), 0.0, np.trunc(f))
        return np.clip(f, _I32_MIN, _I32_MAX).astype(_I32)
    if v.dtype.kind in "biu":
        if saturate:  # clamped as integers (exact), then rounded once, as the plain cast rounds
            big = min(int(_finfo_max(nd)), 1 << 62)
            v = np.clip(v.astype(_I64), -big, big)
        return _int_to_float(v, out)
    if saturate:
        big = _finfo_max(nd)
        with np.errstate(invalid="ignore"):
            v = np.clip(v.astype(np.float64), -big, big).astype(_F32)  # exact: v was f32-exact
    if v.dtype == nd:
        return v
    if v.dtype != _F32 and v.dtype != np.float64 and nd != _F32:
        v = v.astype(_F32)
    return v.astype(nd)
