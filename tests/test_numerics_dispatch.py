"""The elementwise dispatch shared by replay (numerics.vec_value) and the f64 drift shadow
(drift.shadow_vec): numerics.vec_compute, one op table for both."""
import numpy as np
import pytest

from kernbench.language.numerics import (IntegerDivisionByZero, ShiftOutOfRange, convert, vec_compute,
                                         vec_value)
from kernbench.runtime.drift import shadow_vec

_F64 = np.float64
_X = np.array([[0.1, -2.5, 3.0, 7.25]], np.float32)
_Y = np.array([[1.0 / 3.0, 0.5, -1.5, 2.0]], np.float32)
_FLOAT_BINARY = ["add", "sub", "mul", "maximum", "minimum", "div", "mod", "lt", "le", "gt", "ge", "eq", "ne"]
_FLOAT_UNARY = ["neg", "abs", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sigmoid"]


@pytest.mark.parametrize("name", _FLOAT_BINARY + _FLOAT_UNARY + ["where"])
def test_both_callers_are_vec_compute(name):
    args = {"where": [_X > 0, _X, _Y]}.get(name, [_X] if name in _FLOAT_UNARY else [_X, _Y])
    out = "bool" if name in ("lt", "le", "gt", "ge", "eq", "ne") else "f32"
    shape = (2, 4)  # the operands broadcast
    want = np.broadcast_to(np.asarray(vec_compute(name, args, "f32", lambda a: convert(a, "f32"))), shape)
    assert np.array_equal(vec_value(name, args, "f32", shape, out), want.astype(out if out == "bool" else np.float32),
                          equal_nan=True)
    # the shadow: the same op on the operands in f64, a float result kept in f64
    s = shadow_vec(name, args, "f16", shape, "bool" if out == "bool" else "f16")
    assert s.shape == shape and s.flags.c_contiguous
    w64 = np.broadcast_to(np.asarray(vec_compute(name, args, "f16", lambda a: np.asarray(a).astype(_F64))), shape)
    assert s.dtype == (np.bool_ if out == "bool" else _F64)
    assert np.array_equal(s, w64, equal_nan=True)


def test_int32_errors_and_unknown_op():
    z = np.array([3, 0], np.int32)
    for name in ("floordiv", "mod"):
        with pytest.raises(IntegerDivisionByZero):
            vec_value(name, [np.array([1, 2], np.int32), z], "int32", (2,), "int32")
    with pytest.raises(ShiftOutOfRange):
        vec_value("shl", [np.array([1, 2], np.int32), 32], "int32", (2,), "int32")
    assert np.isnan(shadow_vec("mod", [np.array([1.0], np.float32), 0.0], "f32", (1,), "f32")).all()
    with pytest.raises(ValueError):
        vec_compute("nope", [_X], "f32", np.asarray)


def test_a_float_sum_is_pairwise_along_any_axis_and_view():
    """docs/language.md, "Order and accuracy": [2**24, 1, ..., 1] (127 ones) sums to
    2**24 + 112 in numpy's pairwise order (eight partial sums over the block of 128: the ones
    beside 2**24 in its partial, 15 of them, are lost; the other seven partials of 16 ones are
    exact), 2**24 left to right. Along the last axis of a tile, along axis 0, of a tl.trans
    view and over all axes of one: the same order (a review found 2**24 for the last
    three: numpy sums pairwise only along a contiguous inner loop)."""
    import kernbench

    v = np.array([2 ** 24] + [1] * 127, np.float32)
    ctx = kernbench.Context("default")
    col = ctx.replicate(np.repeat(v[:, None], 2, axis=1))  # (128, 2)
    row = ctx.replicate(np.repeat(v[None, :], 2, axis=0))  # (2, 128)
    keep = {}

    def k(colp, rowp, *, tl):
        c = tl.load(colp, shape=(128, 2))
        r = tl.load(rowp, shape=(2, 128))
        keep["row"] = tl.sum(r, -1)
        keep["axis 0"] = tl.sum(c, 0)
        keep["trans"] = tl.sum(tl.trans(c), 1)
        keep["all"] = tl.sum(tl.trans(c), None)

    ctx.launch(k, (1, 1), col, row)
    for name in ("row", "axis 0", "trans"):
        assert (keep[name].data.ravel() == 2 ** 24 + 112).all(), name
    # all axes of the transposed view: one pairwise pass over its 256 elements in row-major
    # order, the view's (both copies of v, one after the other)
    assert keep["all"].data.item() == np.sum(np.concatenate([v, v]))
