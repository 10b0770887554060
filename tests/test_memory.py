"""Device memory: per-PE spaces at shared addresses, placement helpers, read-back, conversion."""
import re

import ml_dtypes
import numpy as np
import pytest

import kernbench
from kernbench.runtime.memory import ALIGN, BASE_ADDR, PlacementError

HW = {"n_cubes": 3, "pes_per_cube": 4}


@pytest.fixture
def ctx():
    return kernbench.Context("default", overrides=HW)


def test_shard_over_pe_gives_each_pe_its_rows_in_every_cube(ctx):
    a = np.arange(8 * 5, dtype=np.float32).reshape(8, 5)
    x = ctx.shard(a, axis=0, over="pe")
    assert x.shape == (2, 5) and x.dtype == "f32"
    for c in range(3):
        for p in range(4):
            np.testing.assert_array_equal(ctx.read(x, (p, c)), a[2 * p:2 * p + 2])
    np.testing.assert_array_equal(ctx.gather(x), a)
    np.testing.assert_array_equal(ctx.gather(x, cube=2), a)


def test_shard_over_cube_and_over_all(ctx):
    a = np.arange(6 * 4, dtype=np.float16).reshape(6, 4)
    x = ctx.shard(a, axis=0, over="cube")
    assert x.shape == (2, 4)
    for p in range(4):
        np.testing.assert_array_equal(ctx.read(x, (p, 1)), a[2:4])
    np.testing.assert_array_equal(ctx.gather(x), a)

    b = np.arange(12 * 3, dtype=np.float32).reshape(3, 12)
    y = ctx.shard(b, axis=1, over="all")
    assert y.shape == (3, 1)
    np.testing.assert_array_equal(ctx.read(y, 7), b[:, 7:8])  # global PE 7 = (3, 1)
    np.testing.assert_array_equal(ctx.read(y, (3, 1)), b[:, 7:8])
    np.testing.assert_array_equal(ctx.gather(y), b)


def test_shard_with_fewer_parts_than_pes(ctx):
    a = np.arange(4.0).reshape(2, 2)
    x = ctx.shard(a, axis=0, over="pe", parts=2)
    np.testing.assert_array_equal(ctx.read(x, (1, 0)), a[1:2])
    assert not ctx.read(x, (3, 0)).any()  # PEs without a slice hold zeros at the same address
    np.testing.assert_array_equal(ctx.gather(x), a)


def test_read_all_shape_and_contents(ctx):
    a = np.arange(4.0)
    x = ctx.shard(a, over="pe")
    every = ctx.read_all(x)
    assert every.shape == (3, 4, 1)
    np.testing.assert_array_equal(every[:, :, 0], np.tile(a, (3, 1)))


def test_replicate_and_put(ctx):
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    r = ctx.replicate(a)
    for g in range(12):
        np.testing.assert_array_equal(ctx.read(r, g), a)
    np.testing.assert_array_equal(ctx.gather(r), a)
    p = ctx.put(a, pe=(2, 1))
    np.testing.assert_array_equal(ctx.read(p, (2, 1)), a)
    assert not ctx.read(p, (2, 0)).any()
    np.testing.assert_array_equal(ctx.gather(p), a)


def test_a_store_on_one_pe_leaves_the_other_copies_alone(ctx):
    r = ctx.replicate(np.ones(8, np.float32))

    def kernel(ptr, *, tl):
        if tl.program_id(0) == 1 and tl.program_id(1) == 0:
            tl.store(ptr, tl.load(ptr, shape=(8,)) * 5.0)

    ctx.launch(kernel, (4, 1), r)
    np.testing.assert_array_equal(ctx.read(r, (1, 0)), np.full(8, 5.0))
    np.testing.assert_array_equal(ctx.read(r, (0, 0)), np.ones(8))
    np.testing.assert_array_equal(ctx.read(r, (1, 1)), np.ones(8))


def test_dtypes_inferred_or_converted(ctx):
    assert ctx.replicate(np.zeros(4)).dtype == "f32"  # float64 has no device dtype
    assert ctx.replicate(np.zeros(4, np.int64)).dtype == "f32"
    assert ctx.replicate(np.zeros(4, np.float16)).dtype == "f16"
    assert ctx.replicate(np.zeros(4, ml_dtypes.bfloat16)).dtype == "bf16"
    x = ctx.replicate([0.1, 1.0 / 3.0], dtype="bf16")
    assert x.dtype == "bf16" and x.itemsize == 2
    np.testing.assert_array_equal(ctx.read(x, 0), np.array([0.1, 1 / 3], ml_dtypes.bfloat16))
    q = ctx.replicate(np.ones(4), dtype="fp8e4m3")
    assert q.nbytes == 4 and ctx.read(q, 0).dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    with pytest.raises(PlacementError, match="unknown dtype 'f64'"):
        ctx.replicate(np.zeros(4), dtype="f64")


class FakeTorchTensor:
    """Quacks like a CPU torch tensor: detach() -> cpu() -> numpy(), plus a dtype."""

    def __init__(self, a, dtype="torch.float32"):
        self.a, self.dtype, self.calls = a, dtype, []

    def detach(self):
        self.calls.append("detach")
        return self

    def cpu(self):
        self.calls.append("cpu")
        return self

    def numpy(self):
        self.calls.append("numpy")
        return self.a


class ArrayLike:
    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a


def test_torch_tensors_and_array_likes_are_accepted(ctx):
    a = np.arange(8, dtype=np.float32).reshape(4, 2)
    t = FakeTorchTensor(a)
    x = ctx.shard(t, axis=0)
    assert t.calls == ["detach", "cpu", "numpy"]
    np.testing.assert_array_equal(ctx.gather(x), a)
    y = ctx.replicate(ArrayLike(a.astype(np.float16)))
    assert y.dtype == "f16"
    np.testing.assert_array_equal(ctx.read(y, 3), a)
    z = ctx.replicate([[1.5, 2.5]], dtype="f16")
    assert z.shape == (1, 2) and ctx.read(z, 0).dtype == np.float16


def test_pointers_are_ints_valid_on_every_pe_and_allocations_do_not_touch(ctx):
    a = ctx.empty((100,), "f16")
    b = ctx.empty((7,), "f32")
    assert a.addr >= BASE_ADDR and a.addr % ALIGN == 0 and b.addr % ALIGN == 0
    assert b.addr >= a.addr + a.nbytes + ALIGN  # a guard gap: an overrun lands in no allocation
    assert a + 10 == a.addr + 10 and int(a) == a.addr
    assert ctx.memory.find(a.addr + 199) is a and ctx.memory.find(a.addr + 200) is None
    seen = set()

    def kernel(ptr, *, tl):
        seen.add(ptr)
        assert type(ptr) is int

    ctx.launch(kernel, (4, 3), a, mode="timing")
    assert seen == {a.addr}


def test_empty_reads_nan_and_empty_like_gathers_like_its_model(ctx):
    src = ctx.shard(np.arange(8.0, dtype=np.float32), over="pe")
    o = ctx.empty_like(src, dtype="f16")
    assert o.shape == src.shape and o.dtype == "f16" and not o.has_data
    assert np.isnan(ctx.read(o, 5)).all()  # unwritten memory holds NaN

    def kernel(x, o, *, tl):
        tl.store(o, tl.load(x, shape=(2,)) + 1.0)

    ctx.launch(kernel, (4, 1), src, o)
    np.testing.assert_array_equal(ctx.gather(o), np.arange(8.0) + 1)
    e = ctx.empty((2,), "f32")
    with pytest.raises(PlacementError, match="without a placement"):
        ctx.gather(e)
    # pe= or cube= name the copy to read, as for a put array (a review: refused, "say how to
    # gather it", though the call said which PE)
    w = ctx.empty((2,), "f32")
    ctx.launch(kernel, (4, 1), src, w)
    np.testing.assert_array_equal(ctx.gather(w, pe=2), ctx.read(w, (2, 0)))
    np.testing.assert_array_equal(ctx.gather(w, pe=2), [5.0, 6.0])
    with pytest.raises(PlacementError, match=r"PE \(99, 0\) does not exist: .* has PEs 0-3 per cube"):
        ctx.gather(w, pe=99)
    # axis= and parts= with pe= or cube= alone: refused as on a replicated array (a breaker: one
    # copy returned, the shards the user meant to put together ignored)
    for kw in ({"cube": 1, "axis": 0}, {"pe": 3, "parts": 4}):
        with pytest.raises(PlacementError, match="chooses how shards are put together, which over= names"):
            ctx.gather(w, **kw)
    assert np.isnan(ctx.gather(e, over="cube", axis=0)).all() and ctx.gather(e, over="cube", axis=0).shape == (6,)


def test_placement_errors_say_what_is_wrong(ctx):
    with pytest.raises(PlacementError, match="cannot shard axis 0 of length 10 evenly over 4"):
        ctx.shard(np.zeros(10), over="pe")
    with pytest.raises(PlacementError, match="over must be 'pe', 'cube' or 'all'"):
        ctx.shard(np.zeros(8), over="rows")
    with pytest.raises(PlacementError, match=r"parts must be an int in 1..3"):
        ctx.shard(np.zeros(8), over="cube", parts=4)
    with pytest.raises(PlacementError, match=r"PE \(4, 0\) does not exist"):
        ctx.put(np.zeros(2), pe=(4, 0))
    with pytest.raises(PlacementError, match="axis 2 is out of range"):
        ctx.shard(np.zeros((4, 4)), axis=2)
    with pytest.raises(PlacementError, match="positive ints"):
        ctx.empty((0, 4), "f16")


def test_free_makes_the_range_invalid(ctx):
    x = ctx.empty((16,), "f32")
    addr = x.addr
    ctx.free(x)
    assert ctx.memory.find(addr) is None
    with pytest.raises(PlacementError, match="was freed"):
        ctx.read(x, 0)
    with pytest.raises(ValueError, match="was freed"):
        ctx.launch(lambda p, *, tl: None, (1, 1), x)
    y = ctx.empty((16,), "f32")
    assert y.addr != addr  # addresses are never reused


def test_args_show_arrays_as_dtype_and_shape(ctx):
    x = ctx.shard(np.zeros((8, 4), np.float16), over="pe")

    def kernel(x_ptr, n, scale=1.0, *, tl):
        pass

    r = ctx.launch(kernel, (1, 1), x, 3, mode="timing", scale=0.5)
    assert r.args == {"x_ptr": {"name": "a0", "shape": [2, 4], "dtype": "f16",
                                "placement": "sharded over pe axis 0", "addr": x.addr},
                      "n": 3, "scale": 0.5}
    # a host array argument (not device memory) shows as shape and dtype too
    r = ctx.launch(kernel, (1, 1), np.zeros((3, 2), np.float32), 3, mode="timing")
    assert r.args["x_ptr"] == {"shape": [3, 2], "dtype": "f32"}


def test_every_placement_call_takes_a_documented_name(ctx):
    import inspect

    import kernbench

    for method in ("shard", "replicate", "put", "empty", "empty_like"):
        assert "name" in inspect.signature(getattr(kernbench.Context, method)).parameters, method
    assert "``name=``" in kernbench.Context.__doc__ and "a0" in kernbench.Context.__doc__
    x = ctx.replicate(np.ones(4, np.float32), name="weights")
    ctx.free(x)
    with pytest.raises(Exception, match="'weights' was freed"):
        ctx.read(x, (0, 0))


def _plus_cube(x_ptr, o_ptr, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(64,), dtype="f32") + 1000 * tl.program_id(1))


def test_gather_warns_when_the_copies_it_did_not_read_differ():
    """gather reads one copy of an array the machine holds several of (cube 0's shards, PE
    (0, 0)'s replica). A launch on one cube leaves the other copies unwritten or as placed: no
    warning. A launch over every cube writes them differently: a UserWarning naming the first
    that differs (a new user checked a 4-cube launch against cube 0 alone); cube= reads
    another."""
    import warnings

    ctx = kernbench.Context("default")  # 4 cubes of 8 PEs
    X = np.arange(8 * 64, dtype=np.float32).reshape(8, 64)
    x = ctx.shard(X)
    o = ctx.empty_like(x)
    ctx.launch(_plus_cube, (8, 1), x, o)
    placed = ctx.shard(np.zeros((8, 64), np.float32))  # the other cubes' copies stay as placed
    ctx.launch(_plus_cube, (8, 1), x, placed)
    ctx.launch(_plus_cube, (8, 1), x, x)  # in place, on cube 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(ctx.gather(o), X) and np.array_equal(ctx.gather(placed), X)
        assert np.array_equal(ctx.gather(x), X)
    x = ctx.shard(X)
    ctx.launch(_plus_cube, (8, ctx.hw.n_cubes), x, o)
    with pytest.warns(UserWarning, match=r"gather\('a1'\) read the copy of cube 0, but other copies differ "
                                         r"\(the first at PE \(0, 1\)\)") as w:
        ctx.gather(o)
    assert w[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(ctx.gather(o, cube=2), X + 2000)
    r = ctx.replicate(np.zeros(64, np.float32))
    ctx.launch(_plus_cube, (1, 2), x, r)  # PE 0 of cubes 0 and 1 store to their copy
    with pytest.warns(UserWarning, match=r"read the copy on PE \(0, 0\), but other copies differ"):
        ctx.gather(r)
    e = ctx.empty((64,), "f32")  # no placement: gather(over=) says how, and still warns
    ctx.launch(_plus_cube, (1, 2), x, e)
    with pytest.warns(UserWarning, match=r"read the copy of cube 0, but other copies differ"):
        ctx.gather(e, over="pe", axis=0, parts=1)
    c = ctx.shard(np.zeros((ctx.hw.n_cubes, 64), np.float32), over="cube")  # every PE of a cube: its row
    ctx.launch(_plus_cube, (2, 1), x, c)  # PEs 0 and 1 of cube 0 store different rows of x
    with pytest.warns(UserWarning, match=r"read the copies on PE 0 of each cube, but other copies "
                                         r"differ \(the first at PE \(1, 0\)\)"):
        ctx.gather(c)



def _idle_cube_0(o_ptr, *, tl):
    if tl.program_id(1) == 0:
        return  # cube 0 has no work in this launch
    tl.store(o_ptr, tl.full((1, 4), 1.0 + tl.program_id(1), "f32"))


@pytest.mark.parametrize("unwritten", ["nan", "zero"])
def test_gather_warns_when_the_copy_it_reads_is_unwritten_where_another_was_stored(unwritten):
    """(A review: cube 0 idle, cube 1 storing; gather read cube 0's unwritten copy, zeros with
    unwritten="zero", without a word.)"""
    import warnings

    ctx = kernbench.Context("default", unwritten=unwritten)
    o = ctx.empty_like(ctx.shard(np.zeros((8, 4), np.float32), over="pe"))
    ctx.launch(_idle_cube_0, (8, 2), o)
    with pytest.warns(UserWarning, match=r"gather\('a1'\) read the copy of cube 0, but other copies "
                                         r"hold values a launch stored where the copy read holds none "
                                         r"\(unwritten\) \(the first at PE \(0, 1\)\)"):
        ctx.gather(o)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (ctx.gather(o, cube=1) == 2.0).all()
    # an array put on one PE: a launch over the cube stores to every PE's copy (a breaker: only
    # replicated and sharded arrays were compared)
    p = ctx.empty_like(ctx.put(np.zeros(4, np.float32), pe=(3, 0)))
    ctx.launch(_idle_cube_0, (8, 2), p)
    with pytest.warns(UserWarning, match=r"gather\('a3'\) read the copy on PE \(3, 0\), where it was put, "
                                         r"but other copies hold values a launch stored"):
        ctx.gather(p)

# -- a review's cases ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, np.float16, np.float32])
def test_float_data_placed_as_int32_truncates_and_saturates_whatever_its_float_type(ctx, dtype):
    # (bf16 and fp8 arrays are numpy kind "V": they once fell to astype, giving 0 for NaN and
    # for values past int32, with a RuntimeWarning) -- as a kernel's cast (docs/language.md)
    # the largest magnitude each holds (e4m3 448, f16 65504) or one past int32 (saturates)
    big = {ml_dtypes.float8_e4m3fn: 448.0, np.float16: 65504.0}.get(dtype, 1e10)
    x = np.array([big, -big, np.nan, 3.7, -3.7], dtype=dtype)
    top = min(int(big), 2 ** 31 - 1)
    want = [top, -top - (big > 2 ** 31), 0, 3, -3]
    got = ctx.read(ctx.replicate(x, dtype="int32"), (0, 0))
    assert got.dtype == np.int32 and got.tolist() == want


def test_int64_data_past_2_24_by_default_is_refused_at_minus_2_63_too(ctx):
    # (abs(-2**63) wraps to -2**63 in int64: the bound was checked on a negative maximum)
    for a, far in (([-2 ** 63, 5], -2 ** 63), ([-2 ** 24 - 1], -2 ** 24 - 1), ([2 ** 24 + 1], 2 ** 24 + 1)):
        with pytest.raises(PlacementError, match=f"holds integers exactly only up to 2\\*\\*24 in "
                                                 f"magnitude \\(this data reaches {far}\\)"):
            ctx.replicate(np.array(a, np.int64))
    assert ctx.read(ctx.replicate(np.array([-2 ** 24, 2 ** 24], np.int64)), (0, 0)).tolist() == [-2 ** 24, 2 ** 24]



def test_a_list_s_ints_past_2_24_beside_a_float_are_refused_too(ctx):
    """(A review: one float in the list made numpy build float64, and 16777217 was placed as
    16777216 without a word.) The list's ints are ints, whatever numpy made of them."""
    for a, far in (([2 ** 24 + 1, 0.5], 2 ** 24 + 1), ([[0.5, -2 ** 24 - 1]], -2 ** 24 - 1),
                   ((1.5, 2 ** 40), 2 ** 40)):
        with pytest.raises(PlacementError, match=f"integer data becomes f32 by default, which holds "
                                                 f"integers exactly only up to 2\\*\\*24 in magnitude "
                                                 f"\\(this data reaches {far}\\)"):
            ctx.replicate(a)
    # numpy ints, integer arrays and pandas integer columns beside floats likewise (a breaker)
    pd = pytest.importorskip("pandas")
    far = 2 ** 24 + 1
    for a in ([np.int64(far), 0.5], (np.int64(far), np.float32(0.5)), [np.array([far, 1]), np.array([0.5, 1.0])],
              pd.DataFrame({"i": [far, 1], "f": [0.5, 1.5]})):
        with pytest.raises(PlacementError, match=f"this data reaches {far}"):
            ctx.replicate(a)
    # a pandas nullable column's <NA> has no value (numpy made it NaN)
    for a in (pd.Series([1, None], dtype="Int64"), pd.DataFrame({"b": pd.array([True, None], dtype="boolean")})):
        with pytest.raises(PlacementError, match=r"pandas data with missing values \(<NA>\)"):
            ctx.replicate(a)
    assert np.isnan(ctx.read(ctx.replicate(pd.Series([1.5, np.nan])), (0, 0))[1])  # (a float NaN is one)
    # floats that far, and the ints 2**24 and dtype='f32', are placed as asked
    assert ctx.read(ctx.replicate([2.0 ** 40, 0.5, 2 ** 24, -2 ** 24]), (0, 0)).tolist() == [
        2.0 ** 40, 0.5, 2 ** 24, -2 ** 24]
    assert ctx.read(ctx.replicate([2 ** 24 + 1, 0.5], dtype="f32"), (0, 0)).tolist() == [2 ** 24, 0.5]


def test_a_masked_array_with_masked_elements_is_refused(ctx):
    """(A review: np.asarray dropped the mask, and the values under it were placed.)"""
    for m in (np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False]), np.ma.masked,
              np.ma.masked_invalid(np.array([1.0, np.nan], np.float32))):
        for x in (m, [m], (np.array([5.0, 6.0]), [m])):  # (a list's masked array too: a review)
            with pytest.raises(PlacementError, match=r"a masked array with masked elements \(or a list "
                                                     r"holding one\): placement takes values, and the "
                                                     r"mask would be dropped"):
                ctx.replicate(x)
    m = np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False])
    assert ctx.read(ctx.replicate(m.filled(-1.0)), (0, 0)).tolist() == [1.0, -1.0, 3.0]
    assert ctx.read(ctx.replicate(np.ma.array([1.0, 2.0])), (0, 0)).tolist() == [1.0, 2.0]  # (none masked)
    assert ctx.read(ctx.replicate([np.ma.array([1.0, 2.0]), [3.0, 4.0]]), (0, 0)).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_a_device_array_has_at_most_thirty_axes(ctx):
    """A review: ctx.empty((1,) * 65) was accepted, then read back as numpy's own "maximum
    supported dimension" error (read_all adds two axes; numpy 1.x stops at 32, as the language)."""
    a = ctx.empty((1,) * 30, "f32")
    assert ctx.read_all(a).ndim == 32
    for n in (31, 65):
        with pytest.raises(PlacementError, match=rf"a device array has at most 30 axes .*got {n}: reshape it"):
            ctx.empty((1,) * n, "f32")
    with pytest.raises(PlacementError, match="at most 30 axes"):
        ctx.replicate(np.zeros((1,) * 31, np.float32))

def test_another_contexts_array_is_refused_by_every_reader(ctx):
    # (its global PE numbers are another machine's: PE (1, 1) of a 2-PE cube read as (3, 0))
    other = kernbench.Context("default", overrides={"pes_per_cube": 2})
    a = other.put(np.array([42.0], np.float32), pe=(1, 1))
    for call in (lambda: ctx.read(a, (1, 1)), lambda: ctx.gather(a), lambda: ctx.read_all(a),
                 lambda: ctx.empty_like(a), lambda: ctx.free(a)):
        with pytest.raises(PlacementError, match="another Context|not a live allocation"):
            call()
    assert other.read(a, (1, 1)).tolist() == [42.0]


@pytest.mark.parametrize("kw, what", [(dict(axis=5), "axis"), (dict(axis="a"), "axis"),
                                      (dict(axis=True), "axis"), (dict(parts=0), "parts")])
def test_gather_refuses_a_bad_axis_or_parts(ctx, kw, what):
    s = ctx.shard(np.arange(16, dtype=np.float32).reshape(8, 2))
    with pytest.raises(PlacementError, match=f"gather: {what} must be"):
        ctx.gather(s, **kw)


def test_shard_refuses_a_bool_axis(ctx):
    # (a review's case: axis=True was axis 1; bools are refused everywhere else an int is asked)
    with pytest.raises(PlacementError, match="shard: axis must be an int, got bool True"):
        ctx.shard(np.zeros((8, 2), np.float32), axis=True)


def test_gather_of_a_put_array_reads_the_pe_asked_for(ctx):
    # (pe= and cube= were ignored: the put PE's copy came back, and pe=99 was not checked)
    big = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 2})
    p = big.put(np.array([5.0, 6.0]), (1, 1))
    np.testing.assert_array_equal(big.gather(p), [5.0, 6.0])
    np.testing.assert_array_equal(big.gather(p, pe=0, cube=0), big.read(p, (0, 0)))
    np.testing.assert_array_equal(big.gather(p, pe=1), big.read(p, (1, 1)))  # (its cube: the put one's)
    with pytest.raises(PlacementError, match=r"PE \(99, 1\) does not exist"):
        big.gather(p, pe=99)


def test_placed_data_past_a_float_dtype_converts_as_a_cast_without_numpy_warnings(ctx):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (numpy's "overflow encountered in cast" from inside kernbench)
        a = ctx.replicate(np.array([1e300, -1e300, 1.0]))
        h = ctx.replicate(np.array([1e5, 2.0]), dtype="f16")
    np.testing.assert_array_equal(ctx.read(a, (0, 0)), [np.inf, -np.inf, 1.0])
    np.testing.assert_array_equal(ctx.read(h, (0, 0)), [np.inf, 2.0])


def test_structured_longdouble_and_huge_int_data_are_refused_saying_why(ctx):
    """A review's cases: a one-field structured array skipped every conversion rule (NaN to int32
    as -2**31, int64 values past 2**24 rounded, past int32 wrapped), np.longdouble rounded twice
    (1 + 2**-11 + 2**-40 to f16 gave 1.0), and ints past int64 were "not numbers"."""
    rec = np.array([(np.nan,), (1e10,)], dtype=[("a", "f4")])
    for dt in (None, "int32"):
        with pytest.raises(PlacementError, match=r"structured or raw-bytes array, not numbers: pass a "
                                                 r"field's array"):
            ctx.replicate(rec, dtype=dt)
    assert ctx.read(ctx.replicate(rec["a"], dtype="int32"), (0, 0)).tolist() == [0, 2**31 - 1]
    if np.dtype(np.longdouble).itemsize > 8:
        with pytest.raises(PlacementError, match=r"kernbench rounds from float64 at most; convert it first"):
            ctx.replicate(np.array([1 + 2**-11], np.longdouble), dtype="f16")
    with pytest.raises(PlacementError, match="Python ints beyond int64"):
        ctx.replicate([1, 2**70])


def test_gather_refuses_an_argument_its_over_does_not_use_and_parts_past_the_level(ctx):
    """A review: gather(over="pe", parts=5) on 4 PEs a cube read the next cube's PE 0 as its
    fifth piece; gather(shard over PEs, pe=3) and gather(shard over cubes, cube=1) ignored the
    argument (and the differing-copies warning with it)."""
    x = ctx.shard(np.arange(ctx.hw.pes_per_cube * 2, dtype=np.float32), over="pe")
    with pytest.raises(PlacementError, match=rf"gather over 'pe': parts must be an int in "
                                             rf"1..{ctx.hw.pes_per_cube} \(PEs per cube\)"):
        ctx.gather(x, over="pe", parts=ctx.hw.pes_per_cube + 1)
    with pytest.raises(PlacementError, match=r"gather over 'pe' reads every PE of a cube: pe= chooses "
                                             r"nothing there; cube= chooses the cube"):
        ctx.gather(x, pe=1)
    np.testing.assert_array_equal(ctx.gather(x, cube=ctx.hw.n_cubes - 1), np.arange(ctx.hw.pes_per_cube * 2))
    c = ctx.shard(np.arange(ctx.hw.n_cubes * 2, dtype=np.float32), over="cube")
    with pytest.raises(PlacementError, match=r"gather over 'cube' reads one PE of every cube: cube= "
                                             r"chooses nothing there; pe= chooses the PE"):
        ctx.gather(c, cube=1)
    with pytest.raises(PlacementError, match=r"gather over 'cube': parts must be an int in"):
        ctx.gather(c, over="cube", parts=ctx.hw.n_cubes + 1)


def test_gather_refuses_axis_and_parts_of_a_copy(ctx):
    # (a review: a replicated or put array's copy came back, axis= and parts= ignored)
    r = ctx.replicate(np.arange(6, dtype=np.float32))
    p = ctx.put(np.arange(6, dtype=np.float32), pe=1)
    for arr, what in ((r, "replicated"), (p, "put on one PE")):
        for kw, arg in (({"axis": 5}, "axis="), ({"parts": 0}, "parts="), ({"axis": 0, "parts": 2}, "axis=")):
            with pytest.raises(PlacementError, match=f"gather: .* is {what}.*: {arg} chooses how shards "
                                                     f"are put together"):
                ctx.gather(arr, **kw)
    np.testing.assert_array_equal(ctx.gather(p), np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(ctx.gather(r, pe=1), np.arange(6, dtype=np.float32))


def test_other_ml_dtypes_numbers_convert_and_mixed_huge_ints_are_refused(ctx):
    """A breaker's cases of the last fix: ml_dtypes' int4 and fnuz fp8 arrays (kind V, numbers)
    were refused as structured; [2**63, -1] (numpy: float64) skipped every integer rule;
    object arrays of small ints were called ints beyond int64."""
    import ml_dtypes
    a = np.array([1, 2, -3], ml_dtypes.int4)
    assert ctx.read(ctx.replicate(a), (0, 0)).tolist() == [1.0, 2.0, -3.0]
    b = np.array([1.5, -0.25], ml_dtypes.float8_e4m3fnuz)
    assert ctx.read(ctx.replicate(b, dtype="f16"), (0, 0)).tolist() == [1.5, -0.25]
    for dt in ("int32", None):
        with pytest.raises(PlacementError, match="Python ints beyond int64"):
            ctx.replicate([2**63, -1], dtype=dt)
    with pytest.raises(PlacementError, match="object data is not numbers"):
        ctx.replicate(np.array([1, 2], dtype=object))


@pytest.mark.parametrize("how", ["put", "shard", "replicate"])
def test_device_memory_given_as_the_data_is_refused_naming_the_mix_up(ctx, how):
    """ctx.put(device_array, data) reads as "write data into it"; numpy made an object array of
    the DeviceArray and the error said "object data is not numbers". A DevicePointer (an int)
    was placed as its address's value."""
    a = ctx.empty((4,), "f32")
    args = {"put": lambda x: ctx.put(x, (0, 0)), "shard": ctx.shard, "replicate": ctx.replicate}[how]
    for x, what in ((a, "is a DeviceArray ('a"), (a.ptr, "is a DevicePointer (a device address"),
                    # (a breaker: inside a list, "object data is not numbers" again; a list of
                    # pointers placed as their addresses without a word)
                    ([a, a], "holds a DeviceArray ('a"), (np.array([a], dtype=object), "holds a DeviceArray"),
                    ([[1, 2], [a.ptr, 3]], "holds a DevicePointer"), ([a, [1, 2]], "holds a DeviceArray")):
        with pytest.raises(PlacementError, match=r"the data " + re.escape(what)):
            args(x)
    with pytest.raises(PlacementError, match="int64 data becomes f32 by default"):
        args([int(a.ptr), 3])  # (an address as a number: the rules of any int data)


def test_a_kernels_tensor_handle_given_as_the_data_points_at_its_values():
    """A handle a kernel kept is no device memory: after a functional launch its values are
    h.data (a breaker: told to gather it, which gather refuses)."""
    ctx = kernbench.Context("default")
    kept = []

    def k(x_ptr, *, tl):
        kept.append(tl.load(x_ptr, shape=(4,), dtype="f32") * 2.0)

    ctx.launch(k, (1, 1), ctx.replicate(np.arange(4, dtype=np.float32)), mode="functional")
    with pytest.raises(PlacementError, match=r"the data is a TensorHandle \(a tensor a kernel traced.*h\.data"):
        ctx.replicate(kept[0])
    np.testing.assert_array_equal(ctx.gather(ctx.replicate(kept[0].data)), [0.0, 2.0, 4.0, 6.0])
