"""End to end: vector add on one PE and on every PE of a cube. Numbers, cycles derived from
docs/hardware-model.md, and the same cycles in functional and timing mode."""
import ml_dtypes
import numpy as np

import kernbench


def vector_add(x_ptr, y_ptr, o_ptr, n, *, tl):
    x = tl.load(x_ptr, shape=(n,), dtype="f16")
    y = tl.load(y_ptr, shape=(n,), dtype="f16")
    tl.store(o_ptr, x + y)


def setup(parts, n, dtype=np.float16, seed=0):
    ctx = kernbench.Context("default")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((parts, n)).astype(dtype)
    b = rng.standard_normal((parts, n)).astype(dtype)
    x = ctx.shard(a, axis=0, over="pe", parts=parts)
    y = ctx.shard(b, axis=0, over="pe", parts=parts)
    o = ctx.empty_like(x)
    return ctx, a, b, x, y, o


def test_one_pe():
    ctx, a, b, x, y, o = setup(1, 1024)
    r = ctx.launch(vector_add, (1, 1), x, y, o, 1024)
    np.testing.assert_array_equal(ctx.gather(o)[0], (a[0].astype(np.float32) + b[0]).astype(np.float16))
    # 1024 f16 = 2048 B = 4 bursts of 512 B, each ceil(512/256) = 2 channel cycles.
    # load x: 4 * 2 + 150 = 158; load y (DMA in order): 158 + 158 = 316;
    # add: ceil(1024/64) * 1 + 8 = 24 -> 340; store 2048 B: 8 + 150 -> 498.
    assert r.cycles == 498
    assert list(r.engine.cmd_end[:4]) == [158, 316, 340, 498]
    t = ctx.launch(vector_add, (1, 1), x, y, o, 1024, mode="timing")
    assert t.cycles == r.cycles


def test_every_pe_of_a_cube_shares_the_channel():
    ctx, a, b, x, y, o = setup(8, 1024, seed=1)
    r = ctx.launch(vector_add, (8, 1), x, y, o, 1024)
    np.testing.assert_array_equal(ctx.gather(o), (a.astype(np.float32) + b).astype(np.float16))
    # 8 PEs x 4 bursts of load x at cycle 0, round robin PE 0..7: PE p's burst k leaves at
    # 16k + 2(p+1); its last (k=3) at 50 + 2p, so load x ends at 200 + 2p.
    # PE p starts load y at 200 + 2p, exactly when the channel frees from PE p-1's burst, so the
    # same interleave repeats shifted by 200: load y ends at 400 + 2p; add: 24 -> 424 + 2p;
    # store: 424 + 2p + 48 + 2 + 150 = 624 + 2p. The last PE (p = 7) ends at 638.
    assert r.cycles == 638
    ends = [int(r.engine.cmd_end[r.program.cmd_offsets[p] + 3]) for p in range(8)]
    assert ends == [624 + 2 * p for p in range(8)]
    t = ctx.launch(vector_add, (8, 1), x, y, o, 1024, mode="timing")
    assert t.cycles == r.cycles
    assert np.array_equal(t.unit_counters, r.unit_counters)
    # silent PEs of the other cubes did nothing
    assert not r.unit_counters[8:].view(np.int64).any()


def test_bf16_kernel_with_a_scalar():
    ctx = kernbench.Context("default", overrides={"n_cubes": 1})
    a = np.linspace(-3, 3, 256).astype(ml_dtypes.bfloat16)
    x = ctx.put(a, pe=(0, 0))
    o = ctx.empty_like(x)

    def axpy(x_ptr, o_ptr, n, alpha, *, tl):
        v = tl.load(x_ptr, shape=(n,), dtype="bf16")
        tl.store(o_ptr, alpha * v + v)

    ctx.launch(axpy, (1, 1), x, o, 256, 0.5)
    f = a.astype(np.float32)
    want = ((f * np.float32(0.5)).astype(ml_dtypes.bfloat16).astype(np.float32) + f).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(ctx.read(o, (0, 0)), want)


def test_same_launch_same_cycles_and_bytes():
    runs = []
    for _ in range(2):
        ctx, a, b, x, y, o = setup(8, 512, seed=3)
        r = ctx.launch(vector_add, (8, 1), x, y, o, 512)
        runs.append((r.cycles, r.unit_counters.copy(), ctx.gather(o).tobytes()))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]
