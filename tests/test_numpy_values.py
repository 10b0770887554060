"""A numpy value of the right kind is taken as the Python value it equals, with the same result:
sweep axes come from np.array and np.linspace, sizes from np.prod, flags from comparisons (a
review fed numpy values to every public parameter; these are the places that differed)."""
import json
import re

import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.kernels.attention import zigzag_split
from kernbench.runtime.memory import PlacementError
from kernbench.sweeps.run import cache_choice


def _copy(x_ptr, o_ptr, n, *, tl, flag=False):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32"))


@pytest.fixture
def ctx():
    return kernbench.Context("default")


def test_gather_with_a_narrow_numpy_int_reads_the_cube_it_names():
    """cube * pes_per_cube computed in a uint8 wrapped: cube=np.uint8(40) read cube 8's PEs; and
    pe=np.uint8(3) over cubes raised numpy's OverflowError."""
    ctx = kernbench.Context("mesh64")
    x = ctx.shard(np.arange(512, dtype=np.float32).reshape(512, 1), over="all")  # PE g holds g
    want = ctx.gather(x, over="pe", cube=40).ravel()
    assert want.tolist() == list(range(320, 328))
    for t in (np.uint8, np.int8, np.int64):
        np.testing.assert_array_equal(ctx.gather(x, over="pe", cube=t(40)).ravel(), want)
        np.testing.assert_array_equal(ctx.gather(x, over="cube", pe=t(3)).ravel(),
                                      ctx.gather(x, over="cube", pe=3).ravel())


def test_zigzag_split_takes_a_narrow_numpy_int():
    q = np.arange(512 * 2, dtype=np.float32).reshape(512, 2)
    for t in (np.uint8, np.int8, np.int64):
        np.testing.assert_array_equal(zigzag_split(q, t(4)), zigzag_split(q, 4))


def test_numpy_arguments_are_recorded_as_numbers(ctx):
    """LaunchResult.args and the JSON: "numbers as numbers" (docs/reports.md); np.prod(shape)
    and np.bool_ were kept as their repr's text."""
    x = ctx.replicate(np.arange(64, dtype=np.float32))
    o = ctx.empty_like(x)
    a = ctx.launch(_copy, (1, 1), x, o, 64, flag=True)
    b = ctx.launch(_copy, (1, 1), x, o, np.prod((8, 8)), flag=np.bool_(True))
    assert a.cycles == b.cycles
    for r in (a, b):
        got = json.loads(json.dumps(r.to_json()))["kernel"]["args"]
        assert got["n"] == 64 and type(got["n"]) is int and got["flag"] is True


def test_report_options_take_numpy_ints(ctx):
    x = ctx.replicate(np.arange(64, dtype=np.float32))
    r = ctx.launch(_copy, (1, 1), x, ctx.empty_like(x), 64, mode="timing")
    assert r.report(width=np.int64(100)) == r.report(width=100)
    cp = r.critical_path()
    assert cp.summary(top=np.int64(2)) == cp.summary(top=2)
    assert cp.step_dicts(limit=np.int64(1)) == cp.step_dicts(limit=1)
    assert cp.summary(top=None) == cp.summary(top=len(cp.shares()))  # (None: every share, as before)
    # (a raw TypeError from a slice before; True read as 1)
    for bad in (np.True_, True, 2.0, np.float64(2), 0):
        with pytest.raises(ValueError, match=r"summary: top must be None \(every share\) or a positive int"):
            cp.summary(top=bad)
    for bad in (np.float64(2), -1, True):
        with pytest.raises(ValueError, match="step_dicts: limit must be None"):
            cp.step_dicts(limit=bad)
    with pytest.raises(IndexError, match=r"is not one of this launch's 2 commands \(0..1\): a command "
                                         r"number is an int, not a float64"):
        r.label(np.float64(0))


def test_drift_takes_a_numpy_bool(ctx):
    x = ctx.replicate(np.arange(64, dtype=np.float32))
    o = ctx.empty_like(x)
    a = ctx.launch(_copy, (1, 1), x, o, 64, drift=True)
    b = ctx.launch(_copy, (1, 1), x, o, 64, drift=np.bool_(True))
    assert a.drift is not None and b.drift is not None and a.drift.tolerance == b.drift.tolerance
    assert ctx.launch(_copy, (1, 1), x, o, 64, drift=np.bool_(False)).drift is None


def _reductions(x_ptr, o_ptr, kd, pn, vol, *, tl):
    t = tl.load(x_ptr, shape=(8, 8), dtype="f32", volatile=vol)
    m = tl.maximum(tl.max(t, 1, keep_dims=kd, propagate_nan=pn), 0.0, propagate_nan=pn)
    tl.store(o_ptr, tl.reshape(m + tl.sum(t, 1, keep_dims=kd) + tl.min(t, 1, keep_dims=kd), (8,)))


def test_tritons_flags_take_numpy_bools(ctx):
    """keep_dims, propagate_nan and volatile: a numpy True (or False for volatile) as the Python
    one; propagate_nan=np.False_ is refused as False is (it asks to drop NaN)."""
    x = ctx.replicate(np.random.default_rng(0).standard_normal(64).astype(np.float32))
    o = ctx.empty((8,), "f32")
    a = ctx.launch(_reductions, (1, 1), x, o, True, True, False)
    want = ctx.read(o, (0, 0)).copy()
    b = ctx.launch(_reductions, (1, 1), x, o, np.True_, np.True_, np.False_)
    assert a.cycles == b.cycles
    np.testing.assert_array_equal(ctx.read(o, (0, 0)), want)
    with pytest.raises(KernelError, match=rf"propagate_nan={np.False_!r}: kernbench's max always propagates NaN"):
        ctx.launch(_reductions, (1, 1), x, o, True, np.False_, False)
    with pytest.raises(KernelError, match=rf"keep_dims={np.False_!r}: kernbench keeps the reduced axis"):
        ctx.launch(_reductions, (1, 1), x, o, np.False_, True, False)


def test_a_numpy_base_to_a_tensor_power_is_refused_as_a_python_one(ctx):
    x = ctx.replicate(np.ones(4, np.float32))
    says = {}
    for base in (2, np.int64(2), np.float32(2)):
        def k(p, *, tl, base=base):
            base ** tl.load(p, shape=(4,))

        with pytest.raises(KernelError) as e:
            ctx.launch(k, (1, 1), x, mode="timing")
        says[type(base).__name__] = str(e.value).split(": ", 1)[1]
    assert says["int64"] == says["int"] and "a tensor exponent is not supported" in says["int"]
    assert says["float32"].startswith("2.0 ** tensor: a tensor exponent is not supported")


def test_sweep_and_tune_caches_take_numpy_bools(tmp_path):
    assert cache_choice("tune", np.True_) is True and cache_choice("tune", np.False_) is False
    assert cache_choice("tune", str(tmp_path)) == str(tmp_path)
    with pytest.raises(TypeError, match="tune: cache must be True, False or a folder"):
        cache_choice("tune", 1)
    with pytest.raises(ValueError, match="tune: cache must be a folder"):
        cache_choice("tune", str(tmp_path / "f") if (tmp_path / "f").write_text("x") else "")
    from kernbench.sweeps import tune

    t = tune(_copy, [{"flag": False}], grid=(1, 1), args={"n": 64}, cache=np.False_,
             setup=lambda ctx, n, flag: {"x_ptr": ctx.replicate(np.ones(n, np.float32)),
                                         "o_ptr": ctx.empty((n,), "f32"), "n": n})
    assert t.best == {"flag": False} and not t.from_cache


def test_shard_names_an_axis_that_is_no_int(ctx):
    with pytest.raises(PlacementError, match=rf"shard: axis must be an int, got float64 {re.escape(repr(np.float64(0.0)))}"):
        ctx.shard(np.ones((8, 8), np.float32), axis=np.float64(0))
