"""Loads and stores of every storage dtype, in every addressing form, move the right elements.

docs/language.md, "Pointers" and "Strided tiles": a pointer is an allocation's address plus a
byte offset on an element boundary; a contiguous load/store of ``shape`` moves ``numel``
consecutive elements from there; with ``stride`` (elements between row starts) a 2-D
``(rows, cols)`` tile moves ``rows`` rows of ``cols`` elements each, ``stride`` elements apart.
So every form is a numpy slice of the row-major (R, C) array, and the expected value below is
that slice. Values are compared bit for bit (dtype, shape and bytes), so a wrong element, a
conversion or a byte-level misplacement fails. Loads are checked on the handle's replayed
``.data`` (no store in between); stores are checked in device memory, where the elements a
store does not touch keep the zeros of ``ctx.empty``.

Outputs come from a Context with ``unwritten="zero"``, so what a store does not touch reads as
zeros. The masked forms (mask: flat index not a multiple of 3, known at trace) read ``other`` = 0
where the mask is false and leave memory untouched there.

Every case also runs in timing mode, which docs/language.md says gives exactly the cycles of
functional mode (it is the same command stream).
"""
import numpy as np
import pytest

import kernbench
from kernbench.language.semantic import NP_DTYPES, STORAGE_DTYPES

#: One (R, C) row-major matrix per dtype: C = 40 elements per row, so a column block's rows
#: are 40 elements apart (stride=C).
R, C = 6, 40
#: The interior column block: rows 1..4, columns 3..7 (odd offsets: element, not byte, aligned).
R0, C0, BR, BC = 1, 3, 4, 5
#: The bottom-right column block: its last row ends at the allocation's last element, so the
#: strided region reaches the very end of the allocation (no slack for a (rows, stride) reshape).
R1, C1 = R - BR, C - BC
#: A contiguous run of N elements starting at element S (mid-row: crosses rows 0 -> 1 -> 2).
S, N = 37, 50
#: Where the contiguous store at an offset lands in the output: element D.
D = 83

DTYPES = ["f16", "bf16", "f32", "fp8e4m3", "fp8e5m2",
          pytest.param("int32", marks=pytest.mark.skipif(
              "int32" not in STORAGE_DTYPES, reason="int32 is not a storage dtype yet"))]
FORMS = ["load_whole", "load_offset", "load_strided", "store_whole", "store_offset", "store_strided",
         "load_masked", "load_strided_masked", "store_masked", "store_strided_masked"]


def _mask(n_rows: int, n_cols: int) -> np.ndarray:
    """The masks of the masked forms: every element whose flat index is not a multiple of 3."""
    return (np.arange(n_rows * n_cols) % 3 != 0).reshape(n_rows, n_cols)


def _values(name: str) -> np.ndarray:
    """An (R, C) array of ``name`` with (almost) all-distinct bit patterns, all finite: NaN
    payloads are not what this file tests, and a finite value cannot compare equal by accident
    to a misplaced one with other bits."""
    dt = NP_DTYPES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=(R, C), endpoint=True, dtype=dt)
    bits = rng.integers(0, 2 ** (8 * dt.itemsize), size=(R, C), dtype=np.dtype(f"u{dt.itemsize}"))
    x = bits.view(dt)
    return np.where(np.isfinite(x.astype(np.float32)), x, dt.type(1.5))


def _same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype, f"expected dtype {want.dtype}, got {got.dtype}"
    assert got.shape == want.shape, f"expected shape {want.shape}, got {got.shape}"
    w, g = want.tobytes(), got.tobytes()
    if g != w:
        bad = [i for i in range(want.size)
               if got.reshape(-1)[i:i + 1].tobytes() != want.reshape(-1)[i:i + 1].tobytes()]
        raise AssertionError(f"{len(bad)} of {want.size} elements differ, first at flat index "
                             f"{bad[0]}: expected {want.reshape(-1)[bad[0]]!r}, got {got.reshape(-1)[bad[0]]!r}")


def _kernel(form: str, isz: int, keep: list):
    """The kernel of one form; loads whose value is checked are appended to ``keep``."""

    def at(ptr, r, c):  # byte address of element (r, c) of an (R, C) array at ptr
        return ptr + isz * (r * C + c)

    def k(x_ptr, o_ptr, *, tl):
        if form == "load_whole":
            keep.append(tl.load(x_ptr, shape=(R, C)))
        elif form == "load_offset":
            keep.append(tl.load(x_ptr + isz * S, shape=(N,)))
        elif form == "load_strided":
            keep.append(tl.load(at(x_ptr, R0, C0), shape=(BR, BC), stride=C))
            keep.append(tl.load(at(x_ptr, R1, C1), shape=(BR, BC), stride=C))
        elif form == "load_masked":  # contiguous, other=0
            m = tl.reshape(tl.arange(0, N) % 3 != 0, (N,))
            keep.append(tl.load(x_ptr + isz * S, shape=(N,), mask=m))
        elif form == "load_strided_masked":
            m = tl.reshape(tl.arange(0, BR * BC) % 3 != 0, (BR, BC))
            keep.append(tl.load(at(x_ptr, R1, C1), shape=(BR, BC), stride=C, mask=m))
        elif form == "store_masked":
            m = tl.arange(0, N) % 3 != 0
            tl.store(o_ptr + isz * D, tl.load(x_ptr + isz * S, shape=(N,)), mask=m)
        elif form == "store_strided_masked":
            m = tl.reshape(tl.arange(0, BR * BC) % 3 != 0, (BR, BC))
            tl.store(at(o_ptr, R1, C1), tl.load(x_ptr, shape=(BR, BC)), stride=C, mask=m)
        elif form == "store_whole":
            tl.store(o_ptr, tl.load(x_ptr, shape=(R, C)))
        elif form == "store_offset":
            tl.store(o_ptr + isz * D, tl.load(x_ptr + isz * S, shape=(N,)))
        else:  # store_strided: the first BR*BC elements of x, as (BR, BC), into two column blocks
            t = tl.load(x_ptr, shape=(BR, BC))
            tl.store(at(o_ptr, R0, C0), t, shape=(BR, BC), stride=C)
            tl.store(at(o_ptr, R1, C1), t, shape=(BR, BC), stride=C)

    return k


def _expected(form: str, x: np.ndarray):
    """(expected load values, expected output array): numpy slices of x."""
    flat = x.reshape(-1)
    if form == "load_whole":
        return [x], None
    if form == "load_offset":
        return [flat[S:S + N]], None
    if form == "load_strided":
        return [x[R0:R0 + BR, C0:C0 + BC], x[R1:R1 + BR, C1:C1 + BC]], None
    zero = np.zeros((), x.dtype)  # other=0 of a masked load: all bits 0 in every dtype
    if form == "load_masked":
        return [np.where(_mask(1, N)[0], flat[S:S + N], zero)], None
    if form == "load_strided_masked":
        return [np.where(_mask(BR, BC), x[R1:R1 + BR, C1:C1 + BC], zero)], None
    o = np.zeros_like(x)  # ctx.empty with unwritten="zero": all bits 0 in every dtype
    if form == "store_masked":
        o.reshape(-1)[D:D + N] = np.where(_mask(1, N)[0], flat[S:S + N], zero)
        return [], o
    if form == "store_strided_masked":
        o[R1:R1 + BR, C1:C1 + BC] = np.where(_mask(BR, BC), flat[:BR * BC].reshape(BR, BC), zero)
        return [], o
    if form == "store_whole":
        o[...] = x
    elif form == "store_offset":
        o.reshape(-1)[D:D + N] = flat[S:S + N]
    else:
        t = flat[:BR * BC].reshape(BR, BC)
        o[R0:R0 + BR, C0:C0 + BC] = t
        o[R1:R1 + BR, C1:C1 + BC] = t
    return [], o


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", DTYPES)
def test_load_store_moves_the_numpy_slice(name, form):
    x = _values(name)
    isz = x.dtype.itemsize
    # unwritten="zero": what a store leaves untouched reads as zeros, all bits 0 in every dtype
    # (NaN has several bit patterns; tests/test_unwritten_memory.py covers the NaN fill)
    ctx = kernbench.Context("default", overrides={"n_cubes": 1}, unwritten="zero")
    xa = ctx.put(x, pe=(0, 0), dtype=name, name="x")
    oa = ctx.empty((R, C), name, name="o")
    keep: list = []
    r = ctx.launch(_kernel(form, isz, keep), (1, 1), xa, oa)
    want_loads, want_out = _expected(form, x)
    # the input itself is untouched, and reads back as it was put
    _same_bits(ctx.read(xa, (0, 0)), x)
    for h, want in zip(keep, want_loads, strict=True):
        assert h.dtype == name, f"expected a {name} tensor, got {h.dtype}"
        _same_bits(np.asarray(h.data), want)
    if want_out is not None:
        _same_bits(ctx.read(oa, (0, 0)), want_out)
    else:  # loads only: the output was never written
        _same_bits(ctx.read(oa, (0, 0)), np.zeros_like(x))

    # Timing mode: shapes only (empty inputs suffice), the same command stream, the same cycles.
    tctx = kernbench.Context("default", overrides={"n_cubes": 1})
    xt, ot = tctx.empty((R, C), name, name="x"), tctx.empty((R, C), name, name="o")
    rt = tctx.launch(_kernel(form, isz, []), (1, 1), xt, ot, mode="timing")
    assert r.cycles > 0
    assert rt.cycles == r.cycles, f"expected timing mode to give {r.cycles} cycles, got {rt.cycles}"


@pytest.mark.parametrize("name", DTYPES)
def test_strided_load_cycles(name):
    """One strided load costs what docs/hardware-model.md's DMA formula says for its bytes:
    S = BR * BC * itemsize bytes (the DMA gathers the rows at the same burst cost), at most
    512 B here (4 * 5 * 4 = 80 for int32/f32), so one burst of ceil(S / 256) cycles, plus
    latency 150. The form must not change the cost: the contiguous load of as many bytes costs
    the same."""
    isz = NP_DTYPES[name].itemsize
    ctx = kernbench.Context("default", overrides={"n_cubes": 1})
    xa = ctx.put(_values(name), pe=(0, 0), dtype=name, name="x")

    def strided(x_ptr, *, tl):
        tl.load(x_ptr + isz * (R0 * C + C0), shape=(BR, BC), stride=C)

    def contiguous(x_ptr, *, tl):
        tl.load(x_ptr + isz * (R0 * C + C0), shape=(BR, BC))

    nbytes = BR * BC * isz
    want = -(-nbytes // 256) + 150
    assert ctx.launch(strided, (1, 1), xa).cycles == want
    assert ctx.launch(contiguous, (1, 1), xa).cycles == want


def test_a_store_with_dtype_refuses_an_allocation_of_another_dtype():
    """``dtype=`` on a store states the dtype the kernel's byte offsets assume, as on a load;
    without it a store converts to what the allocation holds (both: docs/language.md)."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    out32, out16 = ctx.empty((4,), "f32"), ctx.empty((4,), "f16")

    def k(o_ptr, dt, *, tl):
        tl.store(o_ptr, tl.full((4,), 1.5, "f16"), dtype=dt)

    ctx.launch(k, (1, 1), out16, "f16")
    ctx.launch(k, (1, 1), out32, None)  # converts, as before
    assert ctx.read(out32, (0, 0)).tolist() == [1.5] * 4 and ctx.read(out16, (0, 0)).tolist() == [1.5] * 4
    with pytest.raises(kernbench.KernelError, match=r"PE \(0, 0\) at test_load_store_dtypes.py:\d+: store of "
                                                    r"dtype=f16 to allocation 'a0', which holds f32"):
        ctx.launch(k, (1, 1), out32, "f16")
    with pytest.raises(kernbench.KernelError, match="unknown store dtype 'f64'"):
        ctx.launch(k, (1, 1), out32, "f64")
