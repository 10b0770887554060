"""Every tl op against numpy, in functional mode: values, shapes, output dtypes, broadcasting,
keepdims reductions, f16 and bf16 rounding.

Each case runs a one-PE kernel that loads its inputs, applies the op and stores the result; the
value is read back from device memory (through the store) and, for the op's own output dtype,
from the handle's ``.data`` that replay fills. The reference is numpy in f32 on the rounded
inputs, rounded once to the output dtype: the numerics docs/language.md promises.
"""
import ml_dtypes
import numpy as np
import pytest

import kernbench

F32 = np.float32
NP = {"f16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16), "f32": np.dtype(np.float32)}
HW = {"n_cubes": 1, "pes_per_cube": 2}


def run(fn, *arrays, dtype="f16"):
    """Run ``fn(tl, *tiles)`` on PE (0, 0); return (the result's value from replay, its handle)."""
    ctx = kernbench.Context("default", overrides=HW)
    ptrs = [ctx.put(a, pe=(0, 0), dtype=dtype) for a in arrays]
    seen = {}

    def kernel(*ptrs, tl):
        if tl.program_id(0) != 0:
            return
        tiles = [tl.load(p, shape=a.shape, dtype=dtype) for p, a in zip(ptrs, arrays)]
        seen["h"] = fn(tl, *tiles)

    ctx.launch(kernel, (1, 1), *ptrs)
    h = seen["h"]
    return h.data, h


def ref(fn, *arrays, dtype="f16", out=None):
    """numpy in f32 on inputs rounded to ``dtype``, rounded to ``out`` (default ``dtype``)."""
    xs = [np.asarray(a).astype(NP[dtype]).astype(F32) for a in arrays]
    return np.asarray(fn(*xs)).astype(NP[out or dtype])


def rnd(shape, seed=0, lo=-2.0, hi=2.0):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape)


BINARY = [
    ("add", lambda tl, a, b: a + b, np.add),
    ("sub", lambda tl, a, b: a - b, np.subtract),
    ("mul", lambda tl, a, b: a * b, np.multiply),
    ("div", lambda tl, a, b: a / b, np.divide),
    ("tl.add", lambda tl, a, b: tl.add(a, b), np.add),
    ("maximum", lambda tl, a, b: tl.maximum(a, b), np.maximum),
    ("minimum", lambda tl, a, b: tl.minimum(a, b), np.minimum),
]


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("name,op,npop", BINARY, ids=[b[0] for b in BINARY])
def test_binary_same_shape(name, op, npop, dtype):
    a, b = rnd((8, 16), 1), rnd((8, 16), 2, 0.5, 3.0)
    got, h = run(op, a, b, dtype=dtype)
    want = ref(npop, a, b, dtype=dtype)
    assert h.dtype == dtype and got.dtype == NP[dtype] and got.shape == (8, 16)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("sa,sb,out", [
    ((8, 16), (8, 1), (8, 16)),  # row statistic against a tile
    ((8, 16), (1, 16), (8, 16)),  # a bias row
    ((8, 1), (1, 16), (8, 16)),  # outer
    ((16,), (8, 16), (8, 16)),  # lower rank on the left
    ((2, 8, 16), (8, 1), (2, 8, 16)),
])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_binary_broadcasting(sa, sb, out, dtype):
    a, b = rnd(sa, 3), rnd(sb, 4)
    got, h = run(lambda tl, x, y: x - y, a, b, dtype=dtype)
    assert got.shape == out == h.shape
    np.testing.assert_array_equal(got, ref(np.subtract, a, b, dtype=dtype))


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_python_scalars_both_sides(dtype):
    a = rnd((4, 8), 5, 0.5, 2.0)
    cases = [
        (lambda tl, x: x * 0.125, lambda x: x * F32(0.125)),
        (lambda tl, x: 3 - x, lambda x: F32(3) - x),
        (lambda tl, x: 1.0 / x, lambda x: F32(1) / x),
        (lambda tl, x: 2 + x, lambda x: F32(2) + x),
        (lambda tl, x: -x, lambda x: -x),
        (lambda tl, x: tl.maximum(x, 1.0), lambda x: np.maximum(x, F32(1))),
    ]
    for op, npop in cases:
        got, h = run(op, a, dtype=dtype)
        assert h.dtype == dtype  # a Python number never promotes
        np.testing.assert_array_equal(got, ref(npop, a, dtype=dtype))


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("name,npop", [
    ("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt),
    ("rsqrt", lambda x: F32(1) / np.sqrt(x)), ("abs", np.abs), ("neg", np.negative),
])
def test_unary(name, npop, dtype):
    a = rnd((8, 16), 6, 0.1, 3.0)
    got, h = run(lambda tl, x: getattr(tl, name)(x), a, dtype=dtype)
    assert h.dtype == dtype
    np.testing.assert_array_equal(got, ref(npop, a, dtype=dtype))


def test_unary_rounds_to_f16_not_f32():
    # exp(1.0) in f32 is 2.7182817; rounded to f16 it is 2.71875 (the nearest f16).
    got, _ = run(lambda tl, x: tl.exp(x), np.ones((1, 4)), dtype="f16")
    assert got.dtype == np.float16
    assert float(got[0, 0]) == 2.71875


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("name", ["max", "min", "sum"])
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_reductions_keep_the_axis(name, axis, dtype):
    a = rnd((6, 10), 7)
    got, h = run(lambda tl, x: getattr(tl, name)(x, axis=axis), a, dtype=dtype)
    npop = {"max": np.max, "min": np.min, "sum": np.sum}[name]
    want = ref(lambda x: npop(x, axis=axis, keepdims=True), a, dtype=dtype)
    assert got.shape == want.shape == h.shape
    assert h.shape == ((6, 1) if axis in (1, -1) else (1, 10) if axis == 0 else (1, 1))
    np.testing.assert_array_equal(got, want)


def test_reduction_of_a_3d_middle_axis():
    a = rnd((3, 5, 4), 8)
    got, h = run(lambda tl, x: tl.sum(x, axis=1), a, dtype="f32")
    assert h.shape == (3, 1, 4)
    np.testing.assert_array_equal(got, a.astype(F32).sum(axis=1, keepdims=True))


def test_sum_accumulates_in_f32():
    # 2048 ones summed in f16 would stop at 2048 only by luck of exact ints; use 0.1: an f16
    # running sum drifts, the f32 accumulation rounded once lands on the f16 nearest 204.8.
    a = np.full((1, 2048), 0.1)
    got, _ = run(lambda tl, x: tl.sum(x, axis=-1), a, dtype="f16")
    want = np.float16(np.float16(0.1).astype(F32) * F32(2048))
    assert got[0, 0] == want
    running = np.float16(0)
    for _ in range(2048):
        running = np.float16(running + np.float16(0.1))
    assert running != want  # the f16-accumulated answer differs, so this test can fail


def test_row_statistics_broadcast_against_tiles():
    s = rnd((8, 32), 9, -4, 4)

    def f(tl, x):
        m = tl.max(x, axis=-1)
        return x - m

    got, _ = run(f, s, dtype="f32")
    x = s.astype(F32)
    np.testing.assert_array_equal(got, x - x.max(axis=-1, keepdims=True))


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_is_the_five_ops_by_hand(dtype, axis):
    s = rnd((8, 32), 10, -4, 4)
    got, h = run(lambda tl, x: tl.softmax(x, axis=axis), s, dtype=dtype)
    nd = NP[dtype]
    x = s.astype(nd).astype(F32)
    m = x.max(axis=axis, keepdims=True).astype(nd).astype(F32)
    z = (x - m).astype(nd).astype(F32)
    e = np.exp(z).astype(nd).astype(F32)
    # summed pairwise along the axis (docs/language.md, "Order and accuracy"), numpy's order
    # for a contiguous last axis: axis 0 moved last first (numpy adds a leading axis in order)
    t = np.expand_dims(np.ascontiguousarray(np.moveaxis(e, axis, -1)).sum(-1), axis)
    t = t.astype(nd).astype(F32)
    want = (e / t).astype(nd)
    assert h.dtype == dtype
    np.testing.assert_array_equal(got, want)
    # and it is a softmax: rows sum to 1 within the dtype's rounding
    tol = {"f16": 1e-2, "bf16": 5e-2, "f32": 1e-5}[dtype]
    np.testing.assert_allclose(got.astype(F32).sum(axis=axis), 1.0, atol=tol)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_dot_accumulates_in_f32(dtype):
    a, b = rnd((16, 48), 11), rnd((48, 24), 12)
    got, h = run(lambda tl, x, y: tl.dot(x, y), a, b, dtype=dtype)
    assert h.dtype == "f32" and h.shape == (16, 24) and got.dtype == np.float32
    xa = a.astype(NP[dtype]).astype(np.float64)
    xb = b.astype(NP[dtype]).astype(np.float64)
    np.testing.assert_allclose(got, xa @ xb, rtol=1e-5, atol=1e-5)


def test_dot_with_transposed_operand():
    a, b = rnd((16, 32), 13), rnd((24, 32), 14)
    got, _ = run(lambda tl, x, y: tl.dot(x, tl.trans(y)), a, b, dtype="f16")
    got2, _ = run(lambda tl, x, y: tl.dot(x, y.T), a, b, dtype="f16")
    want = a.astype(np.float16).astype(np.float64) @ b.astype(np.float16).astype(np.float64).T
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, got2)


def test_dot_fp8_inputs():
    a, b = rnd((8, 16), 15), rnd((16, 8), 16)
    got, _ = run(lambda tl, x, y: tl.dot(x, y), a, b, dtype="fp8e4m3")
    q = np.dtype(ml_dtypes.float8_e4m3fn)
    want = a.astype(q).astype(np.float64) @ b.astype(q).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("src,dst", [("f32", "f16"), ("f32", "bf16"), ("f16", "f32"),
                                     ("bf16", "f16"), ("f32", "fp8e5m2")])
def test_cast(src, dst):
    a = rnd((4, 8), 17)
    got, h = run(lambda tl, x: tl.cast(x, dst), a, dtype=src)
    q = {**NP, "fp8e5m2": np.dtype(ml_dtypes.float8_e5m2)}
    assert h.dtype == dst and got.dtype == q[dst]
    np.testing.assert_array_equal(got, a.astype(q[src]).astype(F32).astype(q[dst]))


def test_full_and_zeros():
    got, h = run(lambda tl, x: tl.full((3, 5), 1.1, "f16"), np.zeros(1))
    assert h.dtype == "f16" and got.shape == (3, 5)
    np.testing.assert_array_equal(got, np.full((3, 5), np.float16(1.1)))
    got, h = run(lambda tl, x: tl.zeros((2, 7), "bf16"), np.zeros(1))
    assert h.dtype == "bf16" and not got.astype(F32).any() and got.shape == (2, 7)


def test_comparisons_and_where():
    a, b = rnd((8, 16), 18), rnd((8, 16), 19)

    def f(tl, x, y):
        return tl.where(x > y, x, y * 2.0)

    got, _ = run(f, a, b, dtype="f16")
    xa, xb = a.astype(np.float16).astype(F32), b.astype(np.float16).astype(F32)
    np.testing.assert_array_equal(got, np.where(xa > xb, xa, xb * 2).astype(np.float16))

    for op, npop in [(lambda tl, x, y: x < y, np.less), (lambda tl, x, y: x <= y, np.less_equal),
                     (lambda tl, x, y: x >= y, np.greater_equal),
                     (lambda tl, x, y: tl.eq(x, x), np.equal), (lambda tl, x, y: tl.ne(x, y), np.not_equal)]:
        got, h = run(op, a, b, dtype="f16")
        assert h.dtype == "bool"
        want = npop(xa, xa) if npop is np.equal else npop(xa, xb)
        np.testing.assert_array_equal(got, want)


def test_where_broadcasts_a_row_mask_and_scalars():
    a = rnd((4, 8), 20)

    def f(tl, x):
        keep = tl.max(x, axis=-1) > 0.0  # (4, 1) mask
        return tl.where(keep, x, -1.0)

    got, h = run(f, a, dtype="f32")
    x = a.astype(F32)
    assert h.shape == (4, 8)
    np.testing.assert_array_equal(got, np.where(x.max(-1, keepdims=True) > 0, x, F32(-1)))


def test_mixed_dtypes_promote():
    a, b = rnd((4, 8), 21), rnd((4, 8), 22)

    def f(tl, x, y):
        return x + tl.cast(y, "f32")

    got, h = run(f, a, b, dtype="f16")
    assert h.dtype == "f32"
    np.testing.assert_array_equal(got, a.astype(np.float16).astype(F32) + b.astype(np.float16).astype(F32))

    def g(tl, x, y):
        return x + tl.cast(y, "bf16")  # f16 + bf16 -> f32: neither holds the other

    _, h = run(g, a, b, dtype="f16")
    assert h.dtype == "f32"


def test_views_and_reshape_read_the_same_buffer():
    a = rnd((4, 8), 23)

    def f(tl, x):
        v = kernbench.common.pe_commands.TensorHandle(id=x.id, shape=(8, 4), dtype=x.dtype)
        r = tl.reshape(x, (32,))
        return tl.sum(v, axis=0) + tl.sum(tl.reshape(r, (8, 4)), axis=0)

    got, _ = run(f, a, dtype="f32")
    x = a.astype(F32).reshape(8, 4)
    # the 8 elements of each column summed pairwise (docs/language.md, "Order and accuracy")
    np.testing.assert_array_equal(got, np.ascontiguousarray(x.T).sum(-1)[None, :] * 2)


def test_store_rounds_to_the_allocation_dtype():
    ctx = kernbench.Context("default", overrides=HW)
    a = rnd((4, 8), 24)
    x = ctx.put(a, pe=(0, 0), dtype="f32")
    o16 = ctx.empty((4, 8), "f16")
    obf = ctx.empty((4, 8), "bf16")

    def kernel(x_ptr, o16, obf, *, tl):
        t = tl.load(x_ptr, shape=(4, 8), dtype="f32")
        tl.store(o16, t * 3.0)
        tl.store(obf, t * 3.0)

    ctx.launch(kernel, (1, 1), x, o16, obf)
    want = a.astype(F32) * F32(3)
    np.testing.assert_array_equal(ctx.read(o16, (0, 0)), want.astype(np.float16))
    np.testing.assert_array_equal(ctx.read(obf, (0, 0)), want.astype(NP["bf16"]))
    assert ctx.read(o16, (0, 0)).dtype == np.float16


def test_strided_load_and_store_of_a_column_block():
    ctx = kernbench.Context("default", overrides=HW)
    m = np.arange(8 * 12, dtype=np.float32).reshape(8, 12)
    x = ctx.put(m, pe=(0, 0))
    o = ctx.empty((8, 12), "f32")

    def kernel(x_ptr, o_ptr, *, tl):
        # columns 4..7 of every row: start 4 elements in, rows 12 elements apart
        blk = tl.load(x_ptr + 4 * 4, shape=(8, 4), dtype="f32", stride=12)
        tl.store(o_ptr + 8 * 4, blk + 1000.0, stride=12)

    ctx.launch(kernel, (1, 1), x, o)
    out = ctx.read(o, (0, 0))
    np.testing.assert_array_equal(out[:, 8:12], m[:, 4:8] + 1000)
    assert np.isnan(out[:, :8]).all()  # never written: NaN


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
def test_a_sum_of_negative_zeros_is_negative_zero(dtype):
    # IEEE addition keeps -0 only when every addend is -0 (numpy's sum starts from +0: a review)
    x = np.array([[-0.0, -0.0], [-0.0, 0.0], [1.0, -1.0]], np.float32)
    for axis, want in ((-1, [[-0.0], [0.0], [0.0]]), (None, [[0.0]])):
        got, _ = run(lambda tl, t, axis=axis: tl.sum(t, axis=axis), x, dtype=dtype)
        np.testing.assert_array_equal(np.signbit(got.astype(F32)), np.signbit(np.array(want, F32)))
    one, _ = run(lambda tl, t: tl.sum(t, axis=0), np.array([-0.0, 2.0], np.float32)[None, :], dtype=dtype)
    assert np.signbit(one.astype(F32)).tolist() == [[True, False]]  # (a size-1 axis: a no-op)
