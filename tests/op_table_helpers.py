"""The numpy oracle of tests/test_tl_op_table.py, written from docs/language.md (the Promotion
table and the bullets after it, Numerics, the Calls table), not from the implementation.

Operand kinds: the float dtypes, ``int32`` (a tensor), ``mask`` (a bool tensor), and the Python
scalars ``int`` and ``float``. An operand's value is what the oracle computes on: a numpy array
in the kind's dtype (as stored / as produced), or the Python number itself.

``oracle(op, kinds, values, params)`` returns ``Ok(dtype, value)`` or ``Refused(when, why)``
(``when`` is ``"trace"``: both modes raise, or ``"replay"``: only functional mode can see it).
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

F32 = np.float32
FLOATS = ("f16", "bf16", "f32", "fp8e4m3", "fp8e5m2")
TENSORS = FLOATS + ("int32", "mask")
SCALARS = ("int", "float")
KINDS = TENSORS + SCALARS
NP = {
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "f32": np.dtype(np.float32),
    "fp8e4m3": np.dtype(ml_dtypes.float8_e4m3fn),
    "fp8e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "int32": np.dtype(np.int32),
    "bool": np.dtype(np.bool_),
}
FP8_MAX = {"fp8e4m3": 448.0, "fp8e5m2": 57344.0}
INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1

ARITH = ("add", "sub", "mul", "maximum", "minimum")
CMP = ("lt", "le", "gt", "ge", "eq", "ne")
LOGIC = ("and", "or", "xor")
SHIFT = ("shl", "shr")
BINARY = ARITH + ("div", "floordiv", "mod") + LOGIC + SHIFT + CMP
FLOAT_FNS = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sigmoid")
UNARY = ("neg", "abs", "pos", "invert") + FLOAT_FNS
REDUCE = ("sum", "max", "min")


@dataclass
class Ok:
    dtype: str
    value: np.ndarray


@dataclass
class Refused:
    when: str  # "trace" | "replay"
    why: str


class _Refuse(Exception):
    def __init__(self, when, why):
        super().__init__(why)
        self.when, self.why = when, why


def refuse(why, when="trace"):
    raise _Refuse(when, why)


# ----------------------------------------------------------------------------------------------
# rounding and conversions


def rnd(x, dt):
    """Round f32 values once to the float dtype ``dt`` (ml_dtypes for bf16 and fp8: fp8e4m3 gives
    NaN above 464 in magnitude, 448..464 round to 448; fp8e5m2 gives inf from 61440 up)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(x, F32).astype(NP[dt])


def wrap(x):
    """Exact integers wrapped to int32 (two's complement)."""
    x = np.asarray(x, np.int64)
    return ((x + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)


def _f32_odd(v):
    """int32 values as f32 rounded to odd (toward zero, the last bit set when inexact): rounded
    to a dtype of at least two fewer significand bits after it, they round once, as from the
    exact value (Boldo and Melquiond, "When double rounding is odd", 2005)."""
    x = np.asarray(v, np.float64)  # (exact: |v| < 2**53)
    t = x.astype(F32)
    over = np.abs(t.astype(np.float64)) > np.abs(x)
    t = np.where(over, np.nextafter(t, F32(0)), t).astype(F32)
    bits = t.view(np.int32) | (t.astype(np.float64) != x).astype(np.int32)
    return bits.view(F32)


def to_f32_in(v, kind, dt):
    """An operand as f32 values after promotion to the float dtype ``dt``.

    A float tensor widens exactly; an int32 tensor "is converted to the float dtype first",
    rounded once to it (int -> f32 -> bf16 would round twice: 2**24 + 2**16 + 1 is 16908288 in
    bf16, 2**24 through f32, a review); a mask is 0/1; a Python number is an immediate of the
    command: it never promotes, and is an f32 constant cast to ``dt`` (Triton's scalar rule).
    """
    if kind in FLOATS:
        return np.asarray(v).astype(F32).astype(NP[dt]).astype(F32)
    if kind == "int32":
        x = np.asarray(v, np.int64)
        return (x.astype(F32) if dt == "f32" else rnd(_f32_odd(x), dt).astype(F32))
    if kind == "mask":
        return np.asarray(v, bool).astype(F32)
    with np.errstate(over="ignore"):
        return F32(v).astype(NP[dt]).astype(F32)


def dtname(kind):
    return "bool" if kind == "mask" else kind


def to_i64(v, kind):
    if kind in ("int32", "mask"):
        return np.asarray(v).astype(np.int64)
    assert kind == "int", kind
    return np.int64(v)


def float_pair(a, b):
    if a == b:
        return a
    s = {a, b}
    if "f32" in s or s == {"f16", "bf16"}:
        return "f32"
    if s == {"fp8e4m3", "fp8e5m2"}:
        return "f16"
    return a if a in ("f16", "bf16") else b  # a 16-bit float with an fp8


def promote(a, b):
    """The Promotion table for two operand kinds (not both Python numbers)."""
    if a in FLOATS and b in FLOATS:
        return float_pair(a, b)
    if a in FLOATS:
        return a
    if b in FLOATS:
        return b
    if "float" in (a, b):
        return "f32"  # int32 tensor or mask with a Python float
    return "int32"  # int32/mask with int32/mask/Python int; mask with mask in arithmetic


def is_floaty(kind):
    return kind in FLOATS or kind == "float"


# ----------------------------------------------------------------------------------------------
# per-op oracles


def _binary(op, ka, a, kb, b):
    if op in LOGIC:
        if is_floaty(ka) or is_floaty(kb):
            refuse(f"{op} of a float")
        if ka == kb == "mask":
            f = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}[op]
            return Ok("bool", f(a, b))
        f = {"and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}[op]
        return Ok("int32", wrap(f(to_i64(a, ka), to_i64(b, kb))))
    if op in SHIFT:
        if is_floaty(ka) or is_floaty(kb):
            refuse(f"{op} of a float")
        if kb == "int" and not 0 <= b <= 31:
            refuse(f"shift count {b}")
        x, s = to_i64(a, ka), to_i64(b, kb)
        assert np.all((s >= 0) & (s <= 31))
        return Ok("int32", wrap(np.left_shift(x, s) if op == "shl" else np.right_shift(x, s)))
    p = promote(ka, kb)
    if op in CMP:
        f = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
             "eq": np.equal, "ne": np.not_equal}[op]
        if p in FLOATS:
            x, y = to_f32_in(a, ka, p), to_f32_in(b, kb, p)
        else:
            x, y = to_i64(a, ka), to_i64(b, kb)
        with np.errstate(invalid="ignore"):
            return Ok("bool", np.asarray(f(x, y), bool))
    if op == "div" and p == "int32":
        p = "f32"  # true division
    if op == "floordiv" and p in FLOATS:
        refuse("// of a float")
    if p in FLOATS:
        x, y = to_f32_in(a, ka, p), to_f32_in(b, kb, p)
        f = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
             "mod": np.fmod, "maximum": np.maximum, "minimum": np.minimum}[op]
        with np.errstate(all="ignore"):
            r = np.asarray(f(x, y), F32)
        return Ok(p, rnd(r, p))
    x, y = to_i64(a, ka), to_i64(b, kb)
    if op in ("floordiv", "mod"):
        if np.any(np.asarray(y) == 0):
            refuse("integer division by zero", "trace" if kb == "int" else "replay")
        q = (np.abs(x) // np.abs(y)) * np.sign(x) * np.sign(y)  # truncating, like C
        return Ok("int32", wrap(q if op == "floordiv" else x - y * q))
    f = {"add": np.add, "sub": np.subtract, "mul": np.multiply,
         "maximum": np.maximum, "minimum": np.minimum}[op]
    return Ok("int32", wrap(f(x, y)))


def _unary(op, k, x):
    if op in FLOAT_FNS:
        dt = k if k in FLOATS else "f32"
        v = to_f32_in(x, k, dt)
        with np.errstate(all="ignore"):
            r = {
                "exp": np.exp,
                "exp2": lambda t: np.exp2(np.asarray(t, np.float64)),  # (f64's, rounded once: docs)
                "log": np.log,
                "log2": np.log2,
                "sqrt": np.sqrt,
                "rsqrt": lambda t: F32(1) / np.sqrt(t),
                "sigmoid": lambda t: F32(1) / (F32(1) + np.exp(-t)),
            }[op](v)
        return Ok(dt, rnd(np.asarray(r, F32), dt))
    if op == "invert":
        if k in FLOATS:
            refuse("~ of a float")
        if k == "mask":
            return Ok("bool", ~np.asarray(x, bool))
        return Ok("int32", wrap(~to_i64(x, k)))
    if op == "pos":
        return Ok(dtname(k), x)  # x itself: nothing is emitted, a mask stays a mask
    if k in FLOATS:
        v = np.asarray(x).astype(F32)
        r = {"neg": np.negative, "abs": np.abs}[op](v)
        return Ok(k, rnd(r, k))
    v = to_i64(x, k)
    r = {"neg": np.negative, "abs": np.abs}[op](v)
    return Ok("int32", wrap(r))  # masks: int32 (0/-1, 0/1)


def _pow(k, x, n):
    if k not in TENSORS:
        refuse("** of a Python number")
    if not isinstance(n, int):
        refuse("float exponent")
    if abs(n) > 64:
        refuse("|n| > 64")
    dt = k if k in FLOATS else "int32"
    if n < 0 and dt not in FLOATS:
        refuse("negative power of an int32 tensor or a mask")

    def mul(p, q):
        if dt in FLOATS:
            return rnd(np.asarray(p).astype(F32) * np.asarray(q).astype(F32), dt)
        return wrap(np.asarray(p).astype(np.int64) * np.asarray(q).astype(np.int64))

    base = x if k in FLOATS else to_i64(x, k)
    if n == 0:
        return Ok(dt, np.ones(np.shape(x), NP[dt]))
    m = abs(n)
    if m == 1:
        r = base if dt in FLOATS else wrap(base)
    else:
        x2 = mul(base, base)
        # x ** 3 is x * (x * x), x ** 4 is (x * x) * (x * x): each product rounded
        r = {2: lambda: x2, 3: lambda: mul(base, x2), 4: lambda: mul(x2, x2),
             5: lambda: mul(base, mul(x2, x2))}[m]()
    if n > 0:
        return Ok(dt, r)
    with np.errstate(all="ignore"):
        q = F32(1) / np.asarray(r).astype(F32)  # 1.0 / x ** -n
    return Ok(dt, rnd(q, dt))


def f32_to_int32(v):
    """float -> int32: truncate toward zero, saturate, NaN -> 0 (cvt.rzi.sat)."""
    v = np.asarray(v, np.float64)
    t = np.trunc(np.nan_to_num(v, nan=0.0, posinf=2.0 ** 40, neginf=-(2.0 ** 40)))
    return np.clip(t, INT_MIN, INT_MAX).astype(np.int32)


def _cast(k, x, dst, saturate):
    if k == dst and not (saturate and dst in FLOATS):  # (saturating: +-inf clamped, even to k)
        return Ok(dst, x)
    if dst == "int32":
        if k == "mask":
            return Ok("int32", np.asarray(x, bool).astype(np.int32))
        return Ok("int32", f32_to_int32(np.asarray(x).astype(F32)))
    v = to_f32_in(x, k, "f32")
    if saturate and dst in FLOATS:  # "any float target: f16 clamps to 65504"
        m = F32(FP8_MAX.get(dst, ml_dtypes.finfo(NP[dst]).max))
        v = np.where(np.isnan(v), v, np.clip(v, -m, m)).astype(F32)
    return Ok(dst, rnd(v, dst))


def _reduce(op, k, x, axis):
    kw = dict(axis=axis, keepdims=True)
    if k in FLOATS:
        v = np.asarray(x).astype(F32)
        f = {"sum": np.sum, "max": np.max, "min": np.min}[op]
        return Ok(k, rnd(f(v.astype(np.float64) if op == "sum" else v, **kw), k))
    if k == "mask":
        if op == "sum":
            return Ok("int32", wrap(np.sum(np.asarray(x, np.int64), **kw)))
        return Ok("bool", (np.any if op == "max" else np.all)(np.asarray(x, bool), **kw))
    v = to_i64(x, k)
    f = {"sum": np.sum, "max": np.max, "min": np.min}[op]
    return Ok("int32", wrap(f(v, **kw)))


def truthy(k, c):
    if k == "mask":
        return np.asarray(c, bool)
    with np.errstate(invalid="ignore"):
        return np.asarray(c).astype(np.float64) != 0  # NaN is non-zero


def _where(kc, c, ka, a, kb, b):
    cond = truthy(kc, c)
    if ka == kb == "mask":
        return Ok("bool", np.where(cond, a, b))
    if ka in SCALARS and kb in SCALARS:
        dt = "int32" if ka == kb == "int" else "f32"
    else:
        dt = promote(ka, kb)
    if dt in FLOATS:
        x, y = to_f32_in(a, ka, dt), to_f32_in(b, kb, dt)
        return Ok(dt, rnd(np.where(cond, x, y), dt))
    return Ok("int32", wrap(np.where(cond, to_i64(a, ka), to_i64(b, kb))))


def _dot(ka, a, kb, b):
    if ka not in FLOATS or kb not in FLOATS:
        refuse("dot of int32 or masks")
    x = np.asarray(a).astype(np.float64)
    y = np.asarray(b).astype(np.float64)
    return Ok("f32", (x @ y).astype(F32))  # inputs chosen so that every partial sum is exact


def oracle(op, kinds, values, params):
    try:
        if op in BINARY:
            return _binary(op, kinds[0], values[0], kinds[1], values[1])
        if op in UNARY:
            return _unary(op, kinds[0], values[0])
        if op == "pow":
            return _pow(kinds[0], values[0], params["n"])
        if op == "cast":
            return _cast(kinds[0], values[0], params["dtype"], params.get("saturate", False))
        if op in REDUCE:
            return _reduce(op, kinds[0], values[0], params["axis"])
        if op == "where":
            return _where(kinds[0], values[0], kinds[1], values[1], kinds[2], values[2])
        if op == "dot":
            return _dot(kinds[0], values[0], kinds[1], values[1])
        if op == "unlisted":
            refuse("a tl name the Calls table does not list")
        if op == "literal":
            return Ok(params["dtype"], np.asarray(params["value"], NP[params["dtype"]]))
    except _Refuse as r:
        return Refused(r.when, r.why)
    raise AssertionError(op)


# ----------------------------------------------------------------------------------------------
# inputs

SCALAR_VALUES = {
    # role: (Python int, Python float); floats exactly representable in every float dtype
    "any": (3, 1.5),
    "cmp": (1, 1.5),
    "divisor": (-3, -2.5),
    "shift": (5, 1.5),
    "positive": (3, 1.5),
}

WIDE = [np.nan, np.inf, -np.inf, 464.0, -464.0, 460.0, 450.0, -449.0, 500.0, 70000.0, -70000.0,
        61440.0, 60000.0, 3e9, -3e9, -2147483648.0, 2147483647.0, 2.7, -2.7, 0.7, -0.7, 17.0,
        -17.0, 33.0, 123.456, -0.001, 1e-5, 0.0, 7.5, -7.5, 1000.0, 65504.0]


def source(kind, role, seed, shape):
    """float64 values to put on the device: for a float kind in that dtype, for int32 and mask
    in f32 (the kernel derives the operand with ``tl.cast(x, "int32")`` / ``x > 0.0``)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if kind in FLOATS:
        if role == "wide":
            v = np.resize(np.asarray(WIDE), n)
        elif role == "cond":
            v = rng.choice([0.0, 0.0, 1.5, -2.0, np.nan], size=n)
        elif role == "cmp":
            v = rng.choice([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0, 16.0, 20.0], size=n)
            v[:4] = [16.0, 16.0, 20.0, 20.0]  # against int32 17, 19 (not fp8 values) below
        elif role == "coarse":
            v = rng.uniform(-4, 4, size=n).astype(F32).astype(NP["fp8e5m2"]).astype(np.float64)
        elif role == "positive":
            v = rng.uniform(0.1, 4.0, size=n)
        elif role == "divisor":
            v = rng.uniform(0.5, 4.0, size=n) * rng.choice([-1.0, 1.0], size=n)
        else:
            v = rng.uniform(-4.0, 4.0, size=n)
        if role not in ("wide", "coarse", "cond") and n > 13:
            v[13] = np.nan  # element [1, 5] of a (4, 8) tile
        return v.reshape(shape)
    if kind == "int32":
        if role == "wide":
            v = np.resize(np.asarray(WIDE), n)
        elif role == "cond":
            v = rng.choice([0, 0, 3, -7], size=n).astype(np.float64)
        elif role == "cmp":
            v = rng.integers(-3, 4, size=n).astype(np.float64)
            v[:4] = [17, 16, 19, 20]  # fp8 rounds 17 -> 16 and 19 -> 20: "compared after promotion"
        elif role == "shift":
            v = rng.integers(0, 32, size=n).astype(np.float64)
            v[:2] = [0, 31]
        elif role == "positive":
            v = rng.integers(1, 51, size=n).astype(np.float64)
        elif role == "divisor":
            v = (rng.integers(1, 51, size=n) * rng.choice([-1, 1], size=n)).astype(np.float64)
        else:
            v = rng.integers(-50, 51, size=n).astype(np.float64)
            v[:3] = [-7, 0, 7]
        return v.reshape(shape)
    assert kind == "mask"
    if role == "divisor":
        return rng.uniform(0.5, 1.0, size=shape)  # all true: no integer division by zero
    v = rng.uniform(-1.0, 1.0, size=n)
    v[:2] = [-0.5, 0.5]
    return v.reshape(shape)


def operand_value(kind, stored):
    """The oracle's value of a tensor operand from the array as stored on the device."""
    if kind in FLOATS:
        return np.asarray(stored)
    s = np.asarray(stored).astype(F32)
    if kind == "int32":
        return f32_to_int32(s)  # tl.cast(x, "int32")
    with np.errstate(invalid="ignore"):
        return s > F32(0)  # x > 0.0


def same_values(got, want):
    """Exact equality, NaN equal to NaN, compared through an exact widening."""
    got, want = np.asarray(got), np.asarray(want)
    if want.dtype == np.bool_ or want.dtype == np.int32:
        return got.shape == want.shape and np.array_equal(got.astype(want.dtype), want)
    g, w = got.astype(np.float64), want.astype(np.float64)
    return g.shape == w.shape and np.array_equal(g, w, equal_nan=True)


def describe_mismatch(got, want, inputs, limit=4):
    """How many elements differ, and the first few with the inputs at that index."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    g = got.astype(np.float64) if got.dtype != np.bool_ else got
    w = want.astype(np.float64) if want.dtype != np.bool_ else want
    with np.errstate(invalid="ignore"):
        same = (g == w) | (np.isnan(np.asarray(g, float)) & np.isnan(np.asarray(w, float)))
    bad = np.argwhere(~same)
    parts = []
    for i in bad[:limit]:
        i = tuple(int(t) for t in i)
        ins = [repr(np.asarray(v)[i].item()) if np.shape(v) == got.shape else repr(v) for v in inputs]
        parts.append(f"{i}: got {g[i].item()!r} want {w[i].item()!r} (inputs {', '.join(ins)})")
    return f"{len(bad)} of {w.size} elements differ: " + "; ".join(parts)
