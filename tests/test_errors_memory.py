"""Loads and stores are bounds-checked against the allocation their pointer falls in."""
import os
import sys

import numpy as np
import pytest

import kernbench
from kernbench import KernelError

HW = {"n_cubes": 2, "pes_per_cube": 4}
FILE = os.path.basename(__file__)


def fails_on(body, pe=(1, 1), mode="functional"):
    """``body(tl, x_ptr, o_ptr, mark)`` with x = f16 (64, 64) and o = f32 (64, 64)."""
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.replicate(np.ones((64, 64), np.float16), name="x")
    o = ctx.empty((64, 64), "f32", name="o")
    lines = []

    def mark():
        lines.append(sys._getframe(1).f_lineno)

    def kernel(x_ptr, o_ptr, *, tl):
        if (tl.program_id(0), tl.program_id(1)) == pe:
            body(tl, x_ptr, o_ptr, mark)

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (4, 2), x, o, mode=mode)
    e = ei.value
    assert e.pe == pe
    # the failing call is in body, which the kernel called: the error names both lines
    call = kernel.__code__.co_firstlineno + 2
    assert str(e).startswith(f"PE {pe} at {FILE}:{lines[-1]} (in "), str(e)
    assert f", called from kernel at {FILE}:{call}): " in str(e), str(e)
    return str(e)


@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_load_past_the_end(mode):
    def body(tl, x, o, mark):
        mark(); tl.load(x + 2 * 64 * 32, shape=(64, 64), dtype="f16")  # noqa: E702

    msg = fails_on(body, mode=mode)
    assert ("load of (64,64) f16 at byte offset 4096 runs outside allocation 'x' "
            "(8192 bytes = 4096 x f16): it would reach element 6143, the last is 4095 (a smaller "
            "shape= or offset; for a ragged last tile, mask= the elements past the end)") in msg


def test_store_past_the_end():
    def body(tl, x, o, mark):
        t = tl.load(x, shape=(64, 64))
        mark(); tl.store(o + 4, t)  # noqa: E702

    assert "store of (64,64) f32 at byte offset 4 runs outside allocation 'o'" in fails_on(body)


def test_pointer_outside_every_allocation():
    def body(tl, x, o, mark):
        mark(); tl.load(x + 8192, shape=(4,), dtype="f16")  # noqa: E702

    msg = fails_on(body)
    assert "is outside every device allocation (just past the end of 'x'" in msg

    def body0(tl, x, o, mark):
        mark(); tl.load(0, shape=(4,), dtype="f16")  # noqa: E702

    assert "load at address 0x0 is outside every device allocation (below the first" in fails_on(body0)


def test_store_of_the_wrong_size():
    def body(tl, x, o, mark):
        t = tl.load(x, shape=(64, 64))
        m = tl.max(t, axis=-1)
        mark(); tl.store(o, m, shape=(64, 64))  # noqa: E702

    msg = fails_on(body)
    assert ("store of the wrong size: expected a tensor of shape (64,64) (4096 elements), got "
            "(64,1) (64 elements)") in msg


def test_store_of_the_wrong_shape_of_as_many_elements():
    # (a review: "store of the wrong size" of (2,3) into shape=(3,2), two equal sizes)
    def body(tl, x, o, mark):
        t = tl.load(x, shape=(32, 128))
        mark(); tl.store(o, t, shape=(64, 64))  # noqa: E702

    msg = fails_on(body)
    assert ("store of the wrong shape: expected a tensor of shape (64,64), got (32,128) (as many "
            "elements: tl.reshape(x, (64,64)) stores them in that shape, row-major)") in msg


def test_misaligned_pointer():
    def body(tl, x, o, mark):
        mark(); tl.load(o + 2, shape=(4,))  # noqa: E702

    assert "byte offset 2 of allocation 'o' is not on a f32 element boundary" in fails_on(body)


def test_load_dtype_must_match_the_allocation():
    def body(tl, x, o, mark):
        mark(); tl.load(x, shape=(4,), dtype="f32")  # noqa: E702

    assert "load as f32 from allocation 'x', which holds f16: expected dtype='f16'" in fails_on(body)


def test_stride_shorter_than_a_row():
    def body(tl, x, o, mark):
        mark(); tl.load(x, shape=(4, 16), stride=8)  # noqa: E702

    assert "stride must be an int from the row length 16 to the allocation's" in fails_on(body)


def test_stride_beyond_the_allocation():
    # once a raw OverflowError from numpy in functional replay (and accepted in timing mode)
    def body(tl, x, o, mark):
        mark(); tl.load(x, shape=(1, 3), stride=10 ** 30)  # noqa: E702

    for mode in ("functional", "timing"):
        assert "got 1000000000000000000000000000000" in fails_on(body, mode=mode)


def test_strided_block_past_the_end():
    def body(tl, x, o, mark):
        mark(); tl.load(x + 2 * 60, shape=(64, 8), stride=64)  # noqa: E702

    # rows 64 apart from element 60: the last row ends at 60 + 63 * 64 + 8 - 1 = 4099
    assert "it would reach element 4099, the last is 4095" in fails_on(body)


def test_pointer_must_be_an_int():
    def body(tl, x, o, mark):
        mark(); tl.load(float(x), shape=(4,))  # noqa: E702

    assert "load: pointer must be an int byte address" in fails_on(body)


def test_nothing_runs_after_a_bad_store():
    # The launch raises before the engine runs: device memory is untouched.
    ctx = kernbench.Context("default", overrides=HW)
    o = ctx.empty((8,), "f32")

    def kernel(o_ptr, *, tl):
        tl.store(o_ptr, tl.full((8,), 3.0))
        tl.store(o_ptr + 4, tl.full((8,), 3.0))

    with pytest.raises(KernelError):
        ctx.launch(kernel, (1, 1), o)
    assert np.isnan(ctx.read(o, 0)).all() and not o.has_data


def test_a_global_offset_into_a_sharded_array_says_it_is_sharded():
    """A review's case: a Triton-style global offset (pid * rows) into an array sharded over the
    PEs ran past its allocation with "allocate ... and pass the array", though it was passed.
    The error says the array is sharded and each PE holds its own part at the array's address."""
    import kernbench as kb

    ctx = kb.Context("default")
    x = ctx.shard(np.ones((8 * 32, 512), np.float32), axis=0)

    def k(x_ptr, *, tl):
        pid = tl.program_id(0)
        tl.load(x_ptr + pid * 32 * 512 * 4, shape=(32, 512))

    with pytest.raises(kb.KernelError) as ei:
        ctx.launch(k, (8, 1), x)
    assert ei.value.pe == (1, 0)
    assert (f"'{x.name}' is sharded: each PE holds only its own part, (32, 512), at the array's "
            f"address, so index it with the PE's local offsets, not the whole array's") in str(ei.value)
    # past an array that is not sharded (or past the whole size): no such hint
    y = ctx.replicate(np.ones((32, 512), np.float32))

    def k2(y_ptr, *, tl):
        tl.load(y_ptr + 32 * 512 * 4, shape=(32, 512))

    with pytest.raises(kb.KernelError) as ei:
        ctx.launch(k2, (1, 1), y)
    assert "is sharded" not in str(ei.value)


def test_functional_replay_out_of_host_memory_names_the_pe_and_line(monkeypatch):
    """A review: a kernel keeping many large values alive ran functional replay out of memory
    with numpy's own MemoryError, naming neither PE nor line. The error now carries a note naming
    the command whose value replay was computing, and what to do; device memory is as before."""
    from kernbench.runtime import replay

    real = replay.vec_value

    def short_of_memory(name, *a, **kw):
        if name == "exp":  # (the command the host ran out of memory on)
            raise MemoryError("Unable to allocate 64.0 MiB")
        return real(name, *a, **kw)

    monkeypatch.setattr(replay, "vec_value", short_of_memory)
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.replicate(np.ones(8, np.float32))
    line = []

    def kernel(x_ptr, *, tl):
        t = tl.load(x_ptr, shape=(8,)) + 1.0
        line.append(sys._getframe().f_lineno + 1)
        tl.store(x_ptr, tl.exp(t))

    with pytest.raises(MemoryError) as ei:
        ctx.launch(kernel, (2, 2), x)
    (note,) = ei.value.__notes__
    assert note.startswith("(raised by functional replay computing the value of PE (") and \
        f"at {FILE}:{line[0]}: the launch's tensor values alive at once" in note
    assert (ctx.read(x, (0, 0)) == 1).all()  # (the launch left device memory as it was)
