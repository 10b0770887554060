"""Views: one rule, the id names the buffer (docs/language.md, "Views"). A plain view reads the
buffer row-major whatever view it was made from; a transposed view is only what tl.trans made;
x[:, None] adds axes; any other index is refused."""
import copy
import dataclasses
import os
import sys

import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.common.pe_commands import TensorHandle

HW = {"n_cubes": 1, "pes_per_cube": 2}
FILE = os.path.basename(__file__)
A = np.arange(24, dtype=np.float32).reshape(4, 6)


def run(body, mode="functional"):
    ctx = kernbench.Context("default", overrides=HW)
    p = ctx.put(A, pe=(0, 0), dtype="f32")
    seen = {}

    def kernel(ptr, *, tl):
        if tl.program_id(0) == 0:
            seen["out"] = body(tl, tl.load(ptr, shape=(4, 6)))

    r = ctx.launch(kernel, (1, 1), p, mode=mode)
    return seen["out"], r


def test_a_hand_made_view_of_a_transposed_view_reads_the_buffer_row_major():
    # The case: a (2, 12) view of a transposed (4, 6) tile. The id names the buffer, so
    # the hand-made view is the buffer (4, 6) read row-major at (2, 12).
    def body(tl, t):
        tt = tl.trans(t)
        v = TensorHandle(id=tt.id, addr=tt.addr, shape=(2, 12), dtype=tt.dtype, nbytes=tt.nbytes)
        return tl.exp(v * 0.0) * v, tt * 1.0  # read through a command

    (v, tt), _ = run(body)
    np.testing.assert_array_equal(v.data, A.reshape(2, 12))
    np.testing.assert_array_equal(tt.data, A.T)


@pytest.mark.parametrize("mode", ["functional", "timing"])
@pytest.mark.parametrize("make", [
    lambda tt: dataclasses.replace(tt, shape=(2, 12)),
    lambda tt: dataclasses.replace(tt, shape=(24,)),  # once a bare IndexError in replay
    lambda tt: (lambda c: (setattr(c, "shape", (12, 2)), c)[1])(copy.copy(tt)),
], ids=["replace-2x12", "replace-24", "copy-12x2"])
def test_a_reshaped_transposed_view_is_refused_at_trace(mode, make):
    lines = []

    def body(tl, t):
        v = make(tl.trans(t))
        lines.append(sys._getframe().f_lineno + 1)
        return tl.exp(v)

    with pytest.raises(KernelError) as ei:
        run(body, mode=mode)
    assert f"PE (0, 0) at {FILE}:{lines[0]}" in str(ei.value)
    assert "a transposed view cannot be reshaped" in str(ei.value)


def test_trans_of_a_reshaped_view_and_back():
    def body(tl, t):
        r = tl.reshape(t, (6, 4))
        rt = tl.trans(r)
        return rt + 0.0, tl.trans(rt) + 0.0, t.T.T + 0.0

    (rt, rtt, tt2), _ = run(body)
    np.testing.assert_array_equal(rt.data, A.reshape(6, 4).T)
    np.testing.assert_array_equal(rtt.data, A.reshape(6, 4))
    np.testing.assert_array_equal(tt2.data, A)


def test_new_axes_are_views():
    def body(tl, t):
        row = tl.sum(t, axis=0)  # (1, 6)
        flat = tl.reshape(row, (6,))
        return (flat[:, None], flat[None, :], t[..., None], t[None], tl.trans(t)[None],
                flat[:, None] - flat[None, :])

    (col, rowv, last, lead, tlead, outer), r = run(body)
    assert (col.shape, rowv.shape, last.shape, lead.shape, tlead.shape) == (
        (6, 1), (1, 6), (4, 6, 1), (1, 4, 6), (1, 6, 4))
    s = A.sum(axis=0)
    np.testing.assert_array_equal(outer.data, s[:, None] - s[None, :])
    # views emit nothing: load, sum-reduce, the sub
    assert len(r.program.commands) == 3


@pytest.mark.parametrize("key", [0, (0, None), slice(0, 2), (slice(None), 1), (..., ...),
                                 (None, None, None, slice(None), slice(None), slice(None))])
def test_other_indexing_is_refused(key):
    def body(tl, t):
        return t[key]

    with pytest.raises(KernelError, match=r"PE \(0, 0\) at .*(only ':' , None and one '...'|"
                                          r"indexing a 2-D tensor)"):
        run(body)


def test_a_new_axis_inside_a_transposed_view_is_refused():
    with pytest.raises(KernelError, match="only leading axes can be added"):
        run(lambda tl, t: tl.trans(t)[:, None, :])


def test_a_hand_made_views_shape_is_checked_before_anything_compares_it():
    """A reliability audit: a view whose shape elements were an int subclass answering True to
    every ``==`` was compared with its buffer's shape first, taken as it, and a (1, 1) view of
    6 elements computed on (2, 3) in functional mode. Only tuples of ints and numpy integers are
    compared (as plain ints); anything else is checked as a shape."""
    import kernbench
    from kernbench.common.errors import KernelError
    from kernbench.common.pe_commands import TensorHandle

    calls = []

    class LieInt(int):
        def __eq__(self, other):
            calls.append(other)
            return True

        __hash__ = int.__hash__

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    p = ctx.put(np.arange(6, dtype=np.float32).reshape(2, 3), pe=(0, 0))

    def k(ptr, *, tl):
        a = tl.load(ptr, shape=(2, 3))
        tl.exp(TensorHandle(a.id, a.addr, (LieInt(1), LieInt(1)), a.dtype, a.nbytes))

    with pytest.raises(KernelError, match=r"a view of tensor 0 with shape \(1,1\) \(1 elements\), but its "
                                          r"buffer is \(2,3\)"):
        ctx.launch(k, (1, 1), p)
    assert not calls

    def same(ptr, *, tl):  # numpy integers and a tuple subclass: the buffer's shape, as before
        a = tl.load(ptr, shape=(2, 3))
        tl.store(ptr, tl.exp(TensorHandle(a.id, a.addr, (np.int64(2), np.int32(3)), a.dtype, a.nbytes)))

    ctx.launch(same, (1, 1), p)
    np.testing.assert_allclose(ctx.read(p, (0, 0)), np.exp(np.arange(6, dtype=np.float32).reshape(2, 3)), rtol=1e-6)
