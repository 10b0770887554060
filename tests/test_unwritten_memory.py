"""Device memory nothing has written holds NaN (int32: -2**31) by default, so a kernel that reads
it by mistake shows it, as NKI's and Pallas's simulators do; functional replay reports every such
load (PE, line, array, element) and warns about the first. ``Context(unwritten="zero")`` reads
zeros instead (docs/language.md, "Launch context and device memory")."""
import os
import sys
import warnings

import ml_dtypes
import numpy as np
import pytest

import kernbench
from kernbench.common.errors import UnwrittenReadWarning

HW = {"n_cubes": 1, "pes_per_cube": 2}
FILE = os.path.basename(__file__)


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32", "fp8e4m3", "fp8e5m2", "int32"])
def test_empty_memory_reads_as_nan_or_int32_min(dtype):
    ctx = kernbench.Context("default", overrides=HW)
    a = ctx.empty((4,), dtype)
    v = ctx.read(a, (0, 0))
    if dtype == "int32":
        assert (v == -2 ** 31).all()
    else:
        assert np.isnan(v.astype(np.float32)).all()
    assert ctx.read_all(a).shape == (1, 2, 4)
    z = kernbench.Context("default", overrides=HW, unwritten="zero")
    assert not z.read(z.empty((4,), dtype), (0, 0)).astype(np.float32).any()


def test_a_load_of_unwritten_memory_is_reported_with_pe_and_line():
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.empty((8,), "f32", name="scratch")
    o = ctx.empty((8,), "f32", name="out")
    lines = []

    def kernel(x_ptr, o_ptr, *, tl):
        if tl.program_id(0) == 1:
            tl.store(x_ptr, tl.full((4,), 1.0))  # PE 1 writes elements 0..3 of its own copy
            lines.append(sys._getframe().f_lineno + 1)
            t = tl.load(x_ptr, shape=(8,))  # 4..7 were never written
            tl.store(o_ptr, t)

    with pytest.warns(UnwrittenReadWarning) as w:
        r = ctx.launch(kernel, (2, 1), x, o)
    msg = str(w[0].message)
    assert f"PE (1, 0) at {FILE}:{lines[0]}: load reads element 4 of 'scratch', which nothing has written" in msg
    assert w[0].filename == __file__  # the warning points at the launch call, not kernbench's code
    assert r.unwritten_reads == [{"pe": (1, 0), "where": f"{__file__}:{lines[0]}", "array": "scratch",
                                  "element": 4}]
    out = ctx.read(o, (1, 0))
    np.testing.assert_array_equal(out[:4], 1.0)
    assert np.isnan(out[4:]).all()  # the NaN carried through, as on a machine with poisoned memory


def test_written_placed_and_masked_reads_are_not_reported():
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.replicate(np.arange(8, dtype=np.float32))
    s = ctx.empty((8,), "f32")
    p = ctx.put(np.ones(8, np.float32), pe=(0, 0))  # the other PE holds zeros (a placement)

    def kernel(x_ptr, s_ptr, p_ptr, *, tl):
        tl.store(s_ptr, tl.load(x_ptr, shape=(8,)), mask=tl.arange(0, 8) < 5)
        a = tl.load(s_ptr, shape=(8,), mask=tl.arange(0, 8) < 5)  # only written elements unmasked
        b = tl.load(p_ptr, shape=(8,))
        tl.store(s_ptr, a + b)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnwrittenReadWarning)
        r = ctx.launch(kernel, (2, 1), x, s, p)
    assert r.unwritten_reads == []
    np.testing.assert_array_equal(ctx.read(s, (1, 0)), [0, 1, 2, 3, 4, 0, 0, 0])


def test_timing_mode_reads_nothing_and_reports_nothing():
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.empty((8,), "fp8e5m2")
    r = ctx.launch(lambda p, *, tl: tl.load(p, shape=(8,)), (1, 1), x, mode="timing")
    assert r.unwritten_reads == [] and r.cycles > 0
    # a read of an array a timing launch was given, which nothing wrote, says so (a new user read
    # the NaN of a timing launch's output as its result)
    with pytest.warns(UserWarning, match=r"'a0' was passed to a timing-mode launch \(or ctx.trace\), which "
                                         r"computes no values, and nothing has written the copy read: it reads as "
                                         r"never-written memory \(NaN; int32 -2\*\*31\)"):
        assert ctx.read(x, (0, 0)).dtype == ml_dtypes.float8_e5m2
    with pytest.warns(UserWarning, match="timing-mode launch"):
        ctx.read_all(x)
    # with unwritten="zero" the text says zeros (a review's case)
    zctx = kernbench.Context("default", overrides=HW, unwritten="zero")
    z = zctx.empty((8,), "f32")
    zctx.launch(lambda p, *, tl: tl.store(p, tl.zeros((8,), "f32")), (1, 1), z, mode="timing")
    n = zctx.empty((8,), "f32")  # (an int equal to an array's address marks nothing: a size may be one)
    zctx.launch(lambda p, k, *, tl: tl.store(p, tl.zeros((8,), "f32")), (1, 1), z, n.addr, mode="timing")
    with pytest.warns(UserWarning, match=r"never-written memory \(zeros\)"):
        zctx.read(z, (0, 0))
    # a functional launch through a pointer (z + 0) clears it as the array itself does
    # (PE (1, 0)'s copy stays unwritten by design: a review found the timing warning still on it)
    zctx.launch(lambda p, *, tl: tl.store(p, tl.zeros((8,), "f32")), (1, 1), z + 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zctx.read(z, (1, 0))
    # a functional launch after it: a copy nothing wrote is unwritten by design, no warning
    ctx.launch(lambda p, *, tl: tl.load(p, shape=(8,), mask=tl.arange(0, 8) < 0), (1, 1), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx.read(x, (0, 0))


def test_unwritten_must_be_nan_or_zero():
    with pytest.raises(ValueError, match="unwritten must be one of"):
        kernbench.Context("default", overrides=HW, unwritten="garbage")



@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_a_read_after_ctx_trace_gets_the_timing_warning(mode):
    """ctx.trace(...).time() is ctx.launch in timing mode (docs/sweeps.md), and a trace in either
    mode computes no values: a read of an output nothing wrote warns as after a timing launch
    (a review: after a trace it read the placement, or an earlier launch's values, silently)."""
    import warnings

    ctx = kernbench.Context("default", overrides=HW)
    x, o = ctx.replicate(np.ones(4, np.float32)), ctx.empty((4,), "f32", name="o")
    k = lambda x_ptr, o_ptr, *, tl: tl.store(o_ptr, tl.load(x_ptr, shape=(4,)) * 2.0)  # noqa: E731
    ctx.launch(k, (1, 1), x, o)  # functional: o written
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx.read(o, (0, 0))
    o2 = ctx.empty((4,), "f32", name="o2")
    ctx.trace(k, (1, 1), x, o2, mode=mode).time(ctx.hw)
    with pytest.warns(UserWarning, match=r"'o2' was passed to a timing-mode launch \(or ctx.trace\)"):
        ctx.read(o2, (0, 0))
    # an output the kernel reaches as an object (a closure, a global), not as an argument
    o3 = ctx.empty((4,), "f32", name="o3")
    ctx.trace(lambda x_ptr, *, tl: tl.store(o3, tl.load(x_ptr, shape=(4,))), (1, 1), x, mode=mode)
    with pytest.warns(UserWarning, match=r"'o3' was passed to a timing-mode launch \(or ctx.trace\)"):
        ctx.read(o3, (0, 0))

def test_an_array_inside_a_container_gets_the_timing_warning_too():
    # (the kernel receives it as itself: only the arrays passed were marked)
    ctx = kernbench.Context("default", overrides=HW)
    o = ctx.empty((8,), "f32", name="o")
    ctx.launch(lambda ptrs, *, tl: tl.store(ptrs["o"], tl.zeros((8,), "f32")), (1, 1), {"o": o},
               mode="timing")
    with pytest.warns(UserWarning, match="'o' was passed to a timing-mode launch"):
        ctx.read(o, (0, 0))


def test_an_array_reached_as_an_object_or_by_its_pointer_gets_the_timing_warning():
    # (a review: only arrays passed as themselves, or in shallow containers, were marked)
    import types

    ctx = kernbench.Context("default", overrides=HW)
    deep = ctx.empty((8,), "f32", name="deep")
    ptr = ctx.empty((8,), "f32", name="ptr")
    ctx.launch(lambda box, *, tl: tl.store(box.o, tl.zeros((8,), "f32")), (1, 1),
               types.SimpleNamespace(o=deep), mode="timing")
    ctx.launch(lambda p, *, tl: tl.store(p, tl.zeros((8,), "f32")), (1, 1), ptr + 0, mode="timing")
    for a in (deep, ptr):
        with pytest.warns(UserWarning, match=f"'{a.name}' was passed to a timing-mode launch"):
            ctx.read(a, (0, 0))
