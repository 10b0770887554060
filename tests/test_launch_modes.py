"""Functional and timing mode: the same command stream and so the same cycles; only functional
mode computes values and writes device memory."""
import numpy as np

import kernbench


def attention_like(q_ptr, k_ptr, v_ptr, o_ptr, S, d, *, tl):
    """Every kind of command in one kernel: loads, dot, trans, softmax, where, links, store."""
    me = tl.program_id(0)
    q = tl.load(q_ptr, shape=(S, d), dtype="f16")
    k = tl.load(k_ptr, shape=(S, d), dtype="f16")
    v = tl.load(v_ptr, shape=(S, d), dtype="f16")
    s = tl.dot(q, k.T) * (1.0 / d ** 0.5)
    p = tl.softmax(s, axis=-1)
    o = tl.dot(tl.cast(p, "f16"), v)
    # pass a row statistic around the ring and fold it in
    m = tl.max(o, axis=-1)
    tl.send(dir="E", src=m)
    m_w = tl.recv(dir="W", shape=(S, 1), dtype="f32", after=m)
    o = tl.where(m_w > m, o * 0.5, o) + float(me)
    tl.store(o_ptr, o)


def setup(seed=0, S=64, d=32, pes=4, data=True):
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": pes})
    ctx.install_sfr("pe", ring=True)
    rng = np.random.default_rng(seed)
    if data:
        arrs = [ctx.shard(rng.standard_normal((pes * S, d)), axis=0, dtype="f16") for _ in range(3)]
    else:
        arrs = [ctx.empty((S, d), "f16") for _ in range(3)]
    o = ctx.empty((S, d), "f32")
    return ctx, arrs, o


def test_same_cycles_counters_and_events_in_both_modes():
    ctx, (q, k, v), o = setup()
    f = ctx.launch(attention_like, (4, 1), q, k, v, o, 64, 32, record_events=True)
    t = ctx.launch(attention_like, (4, 1), q, k, v, o, 64, 32, mode="timing", record_events=True)
    assert f.mode == "functional" and t.mode == "timing"
    assert f.cycles == t.cycles > 0
    assert np.array_equal(f.program.commands, t.program.commands)
    assert np.array_equal(f.unit_counters, t.unit_counters)
    assert np.array_equal(f.link_counters, t.link_counters)
    assert np.array_equal(f.events, t.events)
    assert np.array_equal(f.peak_sram, t.peak_sram)


def test_timing_mode_runs_on_shapes_alone_with_the_same_cycles():
    ctx, arrs, o = setup(data=True)
    f = ctx.launch(attention_like, (4, 1), *arrs, o, 64, 32)
    ctx2, arrs2, o2 = setup(data=False)
    t = ctx2.launch(attention_like, (4, 1), *arrs2, o2, 64, 32, mode="timing")
    assert t.cycles == f.cycles
    assert not o2.has_data and not any(a.has_data for a in arrs2)


def test_only_functional_mode_writes_memory_and_fills_handles():
    ctx, (q, k, v), o = setup()
    seen = []

    def k2(q_ptr, o_ptr, *, tl):
        h = tl.exp(tl.load(q_ptr, shape=(64, 32), dtype="f16"))
        seen.append(h)
        tl.store(o_ptr, h)

    ctx.launch(k2, (1, 1), q, o, mode="timing")
    assert seen[-1].data is None and not o.has_data
    ctx.launch(k2, (1, 1), q, o)
    want = np.exp(ctx.read(q, 0).astype(np.float32)).astype(np.float16)
    np.testing.assert_array_equal(seen[-1].data, want)
    np.testing.assert_array_equal(ctx.read(o, 0), want.astype(np.float32))


def test_functional_numbers_of_the_mixed_kernel():
    ctx, (q, k, v), o = setup(seed=4)
    ctx.launch(attention_like, (4, 1), q, k, v, o, 64, 32)
    # recompute PE 2's output with numpy, including its west neighbour's row max
    f16 = np.float16

    def pe_out(p):
        Q, K, V = (ctx.read(a, p).astype(np.float32) for a in (q, k, v))
        s = (Q @ K.T) * np.float32(1.0 / 32 ** 0.5)
        s = s.astype(np.float32)
        m = s.max(-1, keepdims=True)
        e = np.exp(s - m)
        p_ = (e / e.sum(-1, keepdims=True)).astype(f16).astype(np.float32)
        out = p_ @ V
        return out, out.max(-1, keepdims=True)

    out2, m2 = pe_out(2)
    _, m1 = pe_out(1)
    want = np.where(m1 > m2, out2 * np.float32(0.5), out2) + np.float32(2)
    np.testing.assert_allclose(ctx.read(o, 2), want, rtol=1e-5, atol=1e-5)


def test_functional_mode_reads_zeros_from_empty_inputs_with_unwritten_zero():
    ctx = kernbench.Context("default", overrides={"n_cubes": 1}, unwritten="zero")
    x = ctx.empty((16,), "f32")
    o = ctx.empty((16,), "f32")

    def k(x_ptr, o_ptr, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(16,)) + 2.0)

    r = ctx.launch(k, (1, 1), x, o)
    np.testing.assert_array_equal(ctx.read(o, 0), np.full(16, 2.0))
    assert r.unwritten_reads[0]["array"] == x.name  # still recorded, not warned


def test_replay_drops_values_after_their_last_reader():
    # A chain of 40 ops on a 256 KiB tile: holding every value would take 40 x 256 KiB = 10 MiB.
    # Replay keeps about what is live (an operand and a result), like the PE's SRAM would.
    import tracemalloc
    import weakref

    ctx = kernbench.Context("default", overrides={"n_cubes": 1})
    x = ctx.replicate(np.ones((256, 256), np.float32))
    o = ctx.empty((256, 256), "f32")
    refs = []

    def chain(x_ptr, o_ptr, *, tl):
        t = tl.load(x_ptr, shape=(256, 256))
        for _ in range(40):
            t = t * 1.0 + 0.0
            refs.append(weakref.ref(t))
        tl.store(o_ptr, t)

    tracemalloc.start()
    try:
        r = ctx.launch(chain, (1, 1), x, o)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    tile = 256 * 256 * 4
    assert peak < 8 * tile, peak
    np.testing.assert_array_equal(ctx.read(o, 0), np.ones((256, 256)))
    # the result does not keep the kernel's tensors alive
    assert r.program.n_commands == 82 and all(ref() is None for ref in refs)
