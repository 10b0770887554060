"""tl.dot's value (docs/language.md, "Order and accuracy"): every product rounded to f32 before
it is added, in f32, with no fused multiply-add, whatever the host's BLAS and wherever an element
sits in the tile; with an f32 operand the products are added left to right over K.

The oracle is scalar f32 arithmetic (numpy float32 scalars: a product rounds, then a sum rounds),
independent of kernbench.language.numerics.dot_value and of any BLAS."""
import ml_dtypes
import numpy as np
import pytest

import kernbench
from kernbench.common.pe_commands import Opcode
from kernbench.language import numerics

X = np.float32(1 + 2 ** -12)  # X * X = 1 + 2**-11 + 2**-24: an f32 tie, rounded to 1 + 2**-11


def _dot_kernel(a_ptr, b_ptr, o_ptr, m, k, n, da, db, *, tl):
    a = tl.load(a_ptr, shape=(m, k), dtype=da)
    b = tl.load(b_ptr, shape=(k, n), dtype=db)
    tl.store(o_ptr, tl.dot(a, b))


def _launch(a, b, da="f32", db="f32"):
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    o = ctx.empty((a.shape[0], b.shape[1]), "f32")
    ctx.launch(_dot_kernel, (1, 1), ctx.replicate(a, dtype=da), ctx.replicate(b, dtype=db), o,
               a.shape[0], a.shape[1], b.shape[1], da, db)
    return ctx.read(o, (0, 0))


def _oracle(a, b):
    """Left to right over K in f32 scalars, each product rounded first."""
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), np.float32)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    with np.errstate(all="ignore"):
        for i in range(m):
            for j in range(n):
                acc = np.float32(0)
                for t in range(k):
                    acc = np.float32(acc + np.float32(a32[i, t] * b32[t, j]))
                out[i, j] = acc
    return out


def test_the_docs_example_is_zero_wherever_the_pair_sits():
    """A review: with the -(1 + 2**-11) term first, OpenBLAS's FMA kernels gave 2**-24 (the
    unrounded square's last bit) at some places of a tile and 0 at others."""
    a = np.array([[1.0, X]] * 4, np.float32)
    b = np.array([[-(1 + 2 ** -11)] * 4, [X] * 4], np.float32)
    np.testing.assert_array_equal(_launch(a, b), np.zeros((4, 4), np.float32))
    # the pair at every place of a larger tile, among zeros (which add nothing)
    m, k, n = 33, 65, 29
    a = np.zeros((m, k), np.float32)
    b = np.zeros((k, n), np.float32)
    a[:, 7], a[:, 40] = 1.0, X
    b[7, :], b[40, :] = -(1 + 2 ** -11), X
    np.testing.assert_array_equal(_launch(a, b), np.zeros((m, n), np.float32))


@pytest.mark.parametrize("db", ["f32", "f16", "bf16"])
def test_f32_dots_equal_the_scalar_oracle(db):
    """Random values over many binades (cancellation, ties) at odd shapes: bit for bit."""
    rng = np.random.default_rng(7)
    m, k, n = 9, 37, 11
    a = (rng.standard_normal((m, k)) * 2.0 ** rng.integers(-8, 9, (m, k))).astype(np.float32)
    nd = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16}[db]
    b = (rng.standard_normal((k, n)) * 2.0 ** rng.integers(-4, 5, (k, n))).astype(nd)
    np.testing.assert_array_equal(_launch(a, b, "f32", db), _oracle(a, b))


def test_exact_products_take_any_order_and_match_the_oracle_where_sums_are_exact():
    """f16 inputs: every product is exact in f32, so BLAS's order is used; with small
    integers every partial sum is exact too, so any order is the oracle's."""
    rng = np.random.default_rng(3)
    a = rng.integers(-8, 9, (17, 40)).astype(np.float16)
    b = rng.integers(-8, 9, (40, 13)).astype(np.float16)
    np.testing.assert_array_equal(_launch(a, b, "f16", "f16"), _oracle(a, b))


def test_bf16_products_below_f32s_normal_range_are_rounded_as_products():
    """bf16 has f32's exponent range: 1.5 * 2**-70 * (1 + 2**-7) * 2**-70 is an f32 subnormal
    rounded to 2**-149's multiple, which an FMA would not round before adding."""
    a = np.array([[1.5 * 2.0 ** -70, 1.0]], ml_dtypes.bfloat16)
    b = np.array([[(1 + 2 ** -7) * 2.0 ** -70], [-(2.0 ** -140)]], ml_dtypes.bfloat16)
    assert not numerics._exact_products(a, b)
    np.testing.assert_array_equal(_launch(a, b, "bf16", "bf16"), _oracle(a, b))


def test_chunks_of_k_and_rank1_updates_add_in_the_same_order(monkeypatch):
    """dot_value adds DOT_CHUNK products at a time on small tiles, one k at a time on large
    ones: chunked, whole or rank-1, the same bits, the oracle's."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((5, 50)).astype(np.float32)
    b = rng.standard_normal((50, 6)).astype(np.float32)
    whole = numerics.dot_value(a, b)
    np.testing.assert_array_equal(whole, _oracle(a, b))
    monkeypatch.setattr(numerics, "DOT_CHUNK", 5 * 6 * 3)  # 3 of K at a time
    np.testing.assert_array_equal(numerics.dot_value(a, b), whole)
    monkeypatch.setattr(numerics, "RANK1_MIN", 1)  # one k at a time
    np.testing.assert_array_equal(numerics.dot_value(a, b), whole)
    big_a = rng.standard_normal((70, 9)).astype(np.float32)  # 70 x 70 >= RANK1_MIN's default
    big_b = rng.standard_normal((9, 70)).astype(np.float32)
    monkeypatch.undo()
    np.testing.assert_array_equal(numerics.dot_value(big_a, big_b), _oracle(big_a, big_b))


def test_bf16_products_past_f32s_largest_are_inf_as_products():
    """bf16 has f32's exponent range: 2**64 * 2**64 rounds to inf before -2**127 is added, which
    an FMA keeps at 2**127; BLAS's kernels did so on tiles of 4 x 4 and up, not on 1 x 1 (a
    review). Every place of the tile is inf."""
    for m, n in [(1, 1), (4, 4), (64, 64)]:
        a = np.tile(np.array([[1.0, 2.0 ** 64]], np.float32), (m, 1)).astype(ml_dtypes.bfloat16)
        b = np.tile(np.array([[-(2.0 ** 127)], [2.0 ** 64]], np.float32), (1, n)).astype(ml_dtypes.bfloat16)
        assert not numerics._exact_products(a, b)
        got = _launch(a, b, "bf16", "bf16")
        np.testing.assert_array_equal(got, _oracle(a, b))
        assert np.all(np.isposinf(got))


@pytest.mark.parametrize("dt", ["f16", "bf16", "f32"])
def test_a_dot_of_a_trans_view_has_the_bits_of_its_row_major_copy(dt):
    """A numerical oracle's review: an f16 dot of ``tl.trans(b)`` and one of the same values
    loaded row-major differed in 361 of 3,795 elements' last bits (BLAS adds in an order of the
    operands' layout). The operands are row-major first, so a view is invisible to the value,
    as it is to tl.sum; the drift shadow's f64 dots too (its figures equal)."""
    M, K, N = 69, 43, 55
    rng = np.random.default_rng(5)
    np_dt = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32}[dt]
    A = (rng.standard_normal((M, K)) * 100).astype(np_dt)
    B = (rng.standard_normal((N, K)) * 100).astype(np_dt)

    def k(a_ptr, b_ptr, bt_ptr, o1, o2, *, tl):
        a = tl.load(a_ptr, shape=(M, K), dtype=dt)
        b = tl.load(b_ptr, shape=(N, K), dtype=dt)
        bt = tl.load(bt_ptr, shape=(K, N), dtype=dt)
        tl.store(o1, tl.dot(a, tl.trans(b)))
        tl.store(o2, tl.dot(a, bt))

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    args = [ctx.replicate(x, dtype=dt) for x in (A, B, np.ascontiguousarray(B.T))]
    o1, o2 = ctx.empty((M, N), "f32"), ctx.empty((M, N), "f32")
    r = ctx.launch(k, (1, 1), *args, o1, o2, drift=True)
    got1, got2 = ctx.read(o1, (0, 0)), ctx.read(o2, (0, 0))
    assert got1.tobytes() == got2.tobytes()
    if dt == "f32":  # (left to right over K: the scalar oracle's bits)
        assert got1.tobytes() == _oracle(A, np.ascontiguousarray(B.T)).tobytes()
    dots = np.flatnonzero(r.program.columns("opcode")[0] == Opcode.DOT)
    assert len(dots) == 2 and r.drift.drift[dots[0]] == r.drift.drift[dots[1]]
    assert r.drift.local[dots[0]] == r.drift.local[dots[1]]
