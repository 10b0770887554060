"""Diag does not trace the same per-rank stream twice (issue 12, item 3): a panel copying its
per-rank streams from an earlier panel gives exactly the launch it would trace in full."""
import numpy as np
import pytest

from kernbench.diag import panel_spec, run_panel
from kernbench.hw.config import load_hw


def _same(a, b):
    """Everything a launch result carries, exactly."""
    ra, rb = a.result, b.result
    assert ra.cycles == rb.cycles
    for name in ("unit_counters", "link_counters"):
        x, y = getattr(ra, name), getattr(rb, name)
        for f in x.dtype.names or ():
            assert np.array_equal(x[f], y[f]), (name, f)
        if not x.dtype.names:
            assert np.array_equal(x, y), name
    assert np.array_equal(ra.peak_sram, rb.peak_sram)
    assert ra.events is not None and len(ra.events) > 0
    assert ra.events.tobytes() == rb.events.tobytes()
    pa, pb = ra.program, rb.program
    for f in ("commands", "cmd_offsets", "tensor_bytes", "tensor_pinned", "tensor_offsets"):
        assert getattr(pa, f).tobytes() == getattr(pb, f).tobytes(), f
    assert [ra.label(i) for i in range(0, pa.n_commands, 7)] == \
        [rb.label(i) for i in range(0, pb.n_commands, 7)]
    assert [ra.source(i) for i in range(0, pa.n_commands, 7)] == \
        [rb.source(i) for i in range(0, pb.n_commands, 7)]
    assert a.summary == b.summary


@pytest.mark.parametrize("kind,causal", [("prefill", False), ("prefill", True), ("decode", False)])
def test_multi_user_reuses_single_user_streams_exactly(kind, causal):
    hw = load_hw("mesh8")
    kw = dict(shape="llama70b", context=2048, causal=causal)
    single = panel_spec(f"single_user_{kind}", hw, **kw)
    multi = panel_spec(f"multi_user_{kind}", hw, **kw)
    cache = {}
    run_panel(single, hw, trace_cache=cache, record_events=True)
    assert len(cache) == 1
    (src, _), = cache.values()
    reused = run_panel(multi, hw, trace_cache=cache, record_events=True)
    assert len(cache) == 1  # a hit: the multi_user panel copied the single_user panel's streams
    # the ranks sit in the same order with only silent PEs between them: the commands are
    # shared (the compact form when tl.range replay tiled them: neither holds the array)
    pa, ps = reused.result.program, src.program
    if ps.compact is not None:
        assert pa.compact is ps.compact and pa._commands is None and ps._commands is None
    else:
        assert pa.commands is ps.commands
    # and the tensor sizes stay indices into the source's table (Program.sizes)
    assert pa.sizes is not None and ps.sizes is not None and pa.sizes[1] is ps.sizes[1]
    fresh = run_panel(multi, hw, record_events=True)
    _same(reused, fresh)
    # and the streams it copied are the single_user panel's, rank by rank
    prog = fresh.result.program
    for r in range(multi.n_ranks):
        g_multi, g_single = r * hw.pes_per_cube, r
        assert prog.pe_commands(g_multi).tobytes() == src.program.pe_commands(g_single).tobytes()


def test_different_streams_do_not_share():
    """Another context (so other per-rank streams) misses the cache and traces in full."""
    hw = load_hw("mesh8")
    cache = {}
    run_panel(panel_spec("single_user_prefill", hw, shape="llama70b", context=2048), hw, trace_cache=cache)
    other = panel_spec("multi_user_prefill", hw, shape="llama70b", context=4096)
    a = run_panel(other, hw, trace_cache=cache)
    assert len(cache) == 2
    b = run_panel(other, hw)
    assert a.result.cycles == b.result.cycles


def test_reuse_refused_in_functional_mode():
    from kernbench.runtime import executor
    from kernbench.runtime.context import Context

    hw = load_hw("mesh8")
    ctx = Context(hw)
    ctx.install_sfr(scope="pe")

    def k(*, tl):
        pass

    traced, _, _ = executor.trace_launch(ctx, k, (1, 1), (), {}, mode="timing")
    with pytest.raises(ValueError, match="timing mode only"):
        executor.trace_launch(ctx, k, (1, 1), (), {}, mode="functional", reuse=(traced, {0: 0}))


@pytest.mark.parametrize("kind", ["prefill", "decode"])
def test_copied_streams_reuse_the_checked_tables(monkeypatch, kind):
    """The copy is not checked again: the source's tables (checked once) are renumbered for the
    copy's PEs (api.moved_tables), and equal what checking the copy from scratch gives."""
    from kernbench._core import api

    hw = load_hw("mesh8")
    kw = dict(shape="llama70b", context=2048)
    calls = []
    real = api._program_tables
    monkeypatch.setattr(api, "_program_tables", lambda *a: calls.append(1) or real(*a))
    cache = {}
    run_panel(panel_spec(f"single_user_{kind}", hw, **kw), hw, trace_cache=cache)
    (src, _), = cache.values()
    assert "program" in src._prepared  # kept for the copies (run_panels releases it at the end)
    reused = run_panel(panel_spec(f"multi_user_{kind}", hw, **kw), hw, trace_cache=cache)
    assert len(calls) == 1
    moved = api.moved_tables(src._prepared["program"], src.program, reused.result.program)
    fresh = real(hw, reused.result.program, str)
    # the checked tables and the steady-state runs found in the same command array; not the
    # source's row pool (the engine's blocks of its last timing: each program fills its own)
    assert ("row_pool" in src._prepared["program"]) == (src.program.tiled is not None)
    assert "row_pool" not in moved
    assert moved.keys() - {"steady_bodies"} == fresh.keys()
    for k in fresh:
        assert np.array_equal(moved[k], fresh[k]), k
    p = reused.result.program
    bodies = api._steady_bodies(p.commands, p.compact)
    assert len(moved["steady_bodies"]) == len(bodies) and (kind == "decode" or bodies)
    for a, b in zip(moved["steady_bodies"], bodies):
        assert a[:6] == b[:6] and np.array_equal(a[6], b[6])
    # a program that is not the source's streams moved gets no tables from it
    other = run_panel(panel_spec(f"multi_user_{kind}", hw, shape="llama70b", context=4096), hw)
    assert api.moved_tables(src._prepared["program"], src.program, other.result.program) is None
