"""End to end over SFR links: a ring pass and a ring all-reduce, in scope ``pe`` (the PEs of each
cube) and in scope ``cube`` (PE 0 of each cube, rank_axis 1, the other PEs silent).

Numbers are exact (small integers in f32), cycles of the ring pass are derived by hand from
docs/hardware-model.md, every launch gives the same cycles in timing mode, and silent PEs show
zero work on every unit."""
import numpy as np
import pytest

import kernbench
from kernbench.common.pe_commands import Unit


def ring_pass(x_ptr, o_ptr, n, rank_axis=0, *, tl):
    if rank_axis != 0 and tl.program_id(axis=0) != 0:
        return
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    tl.send(dir="E", src=x)
    tl.store(o_ptr, tl.recv(dir="W", shape=(n,), dtype="f32"))


def ring_allreduce(x_ptr, o_ptr, n_ranks, chunk, rank_axis=0, *, tl):
    """Reduce-scatter then all-gather around the ring: 2 (n - 1) steps of one chunk each."""
    if rank_axis != 0 and tl.program_id(axis=0) != 0:
        return
    r = tl.program_id(axis=rank_axis)
    parts = [tl.load(x_ptr + 4 * i * chunk, shape=(chunk,), dtype="f32") for i in range(n_ranks)]
    for s in range(n_ranks - 1):
        tl.send(dir="E", src=parts[(r - s) % n_ranks])
        j = (r - s - 1) % n_ranks
        parts[j] = parts[j] + tl.recv(dir="W", shape=(chunk,), dtype="f32")
    for s in range(n_ranks - 1):
        tl.send(dir="E", src=parts[(r - s + 1) % n_ranks])
        parts[(r - s) % n_ranks] = tl.recv(dir="W", shape=(chunk,), dtype="f32")
    for i in range(n_ranks):
        tl.store(o_ptr + 4 * i * chunk, parts[i])


def both_modes(ctx, kernel, grid, *args):
    r = ctx.launch(kernel, grid, *args)
    t = ctx.launch(kernel, grid, *args, mode="timing")
    assert t.cycles == r.cycles
    assert np.array_equal(t.unit_counters, r.unit_counters)
    assert np.array_equal(t.link_counters, r.link_counters)
    return r


def silent(r, working):
    """Global PEs outside ``working`` ran nothing: every counter of every unit is zero."""
    others = np.setdiff1d(np.arange(r.hw.n_pes), working)
    assert list(r.working_pes) == sorted(working)
    assert not r.unit_counters[others].view(np.int64).any()
    assert not r.link_counters.reshape(r.hw.n_pes, -1)[others].view(np.int64).any()
    if len(others):
        assert (r.utilization(Unit.DMA) > 0).all()  # only working PEs are listed


def test_ring_pass_scope_pe():
    ctx = kernbench.Context("default")
    ctx.install_sfr("pe", ring=True)
    a = np.arange(8 * 128, dtype=np.float32).reshape(8, 128)
    x = ctx.shard(a, axis=0, over="pe")
    o = ctx.empty_like(x)
    r = both_modes(ctx, ring_pass, (8, 1), x, o, 128)
    np.testing.assert_array_equal(ctx.gather(o), np.roll(a, 1, axis=0))
    # 512 B loads, one burst each, round robin on the cube channel: PE p's load ends at
    # 2(p+1) + 150 = 152 + 2p and its send starts then. 512 B = 2 packets of 8 cycles: the last
    # lands 16 + 50 after the send starts; every recv was posted at cycle 0, so PE p's recv ends
    # at 152 + 2(p-1) + 66 = 216 + 2p (p >= 1), PE 0's (from PE 7) at 166 + 66 = 232.
    # Stores (1 burst + 150): bursts of PEs 1..7 at 218..230 and PE 0 at 232 never collide:
    # PE p ends at 368 + 2p, PE 0 at 384.
    assert r.cycles == 384
    assert r.link_bytes == 8 * 512
    silent(r, range(8))


def test_ring_pass_scope_cube_rank_axis_1():
    ctx = kernbench.Context("default")
    ctx.install_sfr("cube", ring=True)
    a = np.arange(4 * 128, dtype=np.float32).reshape(4, 128)
    x = ctx.shard(a, axis=0, over="cube")
    o = ctx.empty_like(x)
    r = both_modes(ctx, ring_pass, (8, 4), x, o, 128, 1)
    np.testing.assert_array_equal(ctx.gather(o), np.roll(a, 1, axis=0))
    # Each cube has its own channel: load 2 + 150 = 152; send 2 packets -> recv ends
    # 152 + 16 + 50 = 218; store 2 + 150 -> 370 on every rank.
    assert r.cycles == 370
    silent(r, [c * 8 for c in range(4)])


@pytest.mark.parametrize("n_ranks,chunk", [(4, 16), (8, 64)])
def test_ring_allreduce_scope_pe(n_ranks, chunk):
    ctx = kernbench.Context("default", overrides={"pes_per_cube": n_ranks, "n_cubes": 2})
    ctx.install_sfr("pe", ring=True)
    rng = np.random.default_rng(n_ranks)
    data = rng.integers(-50, 50, size=(2 * n_ranks, n_ranks * chunk)).astype(np.float32)
    x = ctx.shard(data, axis=0, over="all")
    o = ctx.empty_like(x)
    r = both_modes(ctx, ring_allreduce, (n_ranks, 2), x, o, n_ranks, chunk)
    out = ctx.read_all(o)  # (cubes, pes, 1, L)
    for c in range(2):
        want = data[c * n_ranks:(c + 1) * n_ranks].sum(axis=0)
        for p in range(n_ranks):
            np.testing.assert_array_equal(out[c, p, 0], want)
    # 2 (n - 1) messages of one chunk leave every PE
    assert r.link_bytes == 2 * n_ranks * 2 * (n_ranks - 1) * chunk * 4
    silent(r, range(2 * n_ranks))


def test_ring_allreduce_scope_cube_rank_axis_1_silent_pes():
    ctx = kernbench.Context("default")  # 4 cubes x 8 PEs; PE 0 of each cube is a rank
    ctx.install_sfr("cube", ring=True)
    rng = np.random.default_rng(7)
    data = rng.integers(-50, 50, size=(4, 4 * 32)).astype(np.float32)
    x = ctx.shard(data, axis=0, over="cube")
    o = ctx.empty((4 * 32,), "f32")
    r = both_modes(ctx, ring_allreduce, (8, 4), x, o, 4, 32, 1)
    want = data.sum(axis=0)
    for c in range(4):
        np.testing.assert_array_equal(ctx.read(o, (0, c)), want)
        # silent PEs wrote nothing: still unwritten (and the last launch, in timing mode, says so)
        with pytest.warns(UserWarning, match="timing-mode launch"):
            assert np.isnan(ctx.read(o, (3, c))).all()
    silent(r, [0, 8, 16, 24])
    assert r.link_bytes == 4 * 2 * 3 * 32 * 4


def test_allreduce_in_bf16_rounds_each_partial_sum():
    # The same ring in bf16: every partial sum is an op output, rounded to bf16.
    import ml_dtypes

    def ar_bf16(x_ptr, o_ptr, n, chunk, *, tl):
        r = tl.program_id(0)
        parts = [tl.load(x_ptr + 2 * i * chunk, shape=(chunk,), dtype="bf16") for i in range(n)]
        for s in range(n - 1):
            tl.send("E", parts[(r - s) % n])
            j = (r - s - 1) % n
            parts[j] = parts[j] + tl.recv("W", (chunk,), "bf16")
        for s in range(n - 1):
            tl.send("E", parts[(r - s + 1) % n])
            parts[(r - s) % n] = tl.recv("W", (chunk,), "bf16")
        for i in range(n):
            tl.store(o_ptr + 2 * i * chunk, parts[i])

    ctx = kernbench.Context("default", overrides={"pes_per_cube": 4, "n_cubes": 1})
    ctx.install_sfr("pe", ring=True)
    data = np.random.default_rng(3).standard_normal((4, 4 * 8)).astype(ml_dtypes.bfloat16)
    x = ctx.shard(data, axis=0, over="pe")
    o = ctx.empty_like(x)
    both_modes(ctx, ar_bf16, (4, 1), x, o, 4, 8)
    f = data.astype(np.float32)
    # chunk i starts at rank i and picks up ranks i+1, i+2, i+3 in turn, rounded at each hop
    want = np.zeros((4 * 8,), np.float32)
    for i in range(4):
        acc = f[i, i * 8:(i + 1) * 8]
        for k in range(1, 4):
            acc = (acc + f[(i + k) % 4, i * 8:(i + 1) * 8]).astype(ml_dtypes.bfloat16).astype(np.float32)
        want[i * 8:(i + 1) * 8] = acc
    out = ctx.gather(o).astype(np.float32)
    for p in range(4):
        np.testing.assert_array_equal(out[p], want)


def test_send_both_ways_then_receive_both_ways():
    # tl.send returns at once: each PE sends 64 KiB (256 packets, far more than the 32 receive
    # queue slots) east and west before posting either recv, and nothing deadlocks.
    def exchange(x_ptr, w_ptr, e_ptr, n, *, tl):
        x = tl.load(x_ptr, shape=(n,), dtype="f32")
        tl.send(dir="E", src=x)
        tl.send(dir="W", src=x)
        tl.store(w_ptr, tl.recv(dir="W", shape=(n,), dtype="f32"))
        tl.store(e_ptr, tl.recv(dir="E", shape=(n,), dtype="f32"))

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 4})
    ctx.install_sfr("pe", ring=True)
    n = 16384
    a = np.arange(4 * n, dtype=np.float32).reshape(4, n)
    x = ctx.shard(a, axis=0)
    w, e = ctx.empty_like(x), ctx.empty_like(x)
    r = both_modes(ctx, exchange, (4, 1), x, w, e, n)
    np.testing.assert_array_equal(ctx.gather(w), np.roll(a, 1, axis=0))
    np.testing.assert_array_equal(ctx.gather(e), np.roll(a, -1, axis=0))
    assert r.link_bytes == 4 * 2 * n * 4
