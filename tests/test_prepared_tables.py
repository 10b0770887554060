"""The engine's tables of a checked program (simulate's ``prepared``): a launch, which times its
trace once on the wiring it was prepared for, drops the tables only the link pairing reads
(api.drop_pairing_inputs) before the engine runs; a trace without them times the same, and on
another wiring prepares them again."""
import numpy as np
import pytest

from kernbench._core import api
from kernbench.diag import panel_spec, run_panel
from kernbench.hw import load_hw
from kernbench.runtime.traced import TracedLaunch
from test_steady_state import _trace_panel, assert_same


def test_a_launch_drops_the_pairing_inputs_before_the_engine_runs(monkeypatch):
    """run_panel (ctx.launch): when the engine runs, no prepared table holds the sends' and
    recvs' indices or byte counts (32 bytes a message: 126 MB at 128K on 64 cubes), and the
    launch equals one that keeps them (a trace cache's source panel keeps its tables)."""
    hw = load_hw("mesh8")
    spec = panel_spec("single_user_prefill", hw, shape="llama70b", context=4096)
    seen = []
    time = TracedLaunch.time

    def spy(self, *a, **k):
        seen.append([sorted(t) for t in self._prepared.values() if isinstance(t, dict)])
        return time(self, *a, **k)

    monkeypatch.setattr(TracedLaunch, "time", spy)
    dropped = run_panel(spec, hw, record_events=True)
    assert seen and seen[-1] and all(k not in t for t in seen[-1] for k in api._PAIRING_INPUTS)
    assert any("messages" in t for t in seen[-1])
    cache = {}
    kept = run_panel(spec, hw, trace_cache=cache, record_events=True)  # (release=False: kept)
    assert all(k in seen[-1][0] or k in seen[-1][1] for k in api._PAIRING_INPUTS)
    (src, _), = cache.values()
    assert all(k in src._prepared["program"] for k in api._PAIRING_INPUTS)
    assert_same(kept.result.engine, dropped.result.engine)


def test_a_trace_without_them_times_alike_and_prepares_another_wiring_again():
    hw = load_hw("mesh8")
    traced = _trace_panel("multi_user_prefill", hw)
    want = traced.time(hw, record_events=True).engine
    api.drop_pairing_inputs(traced._prepared)
    assert "program" in traced._prepared
    assert not any(k in t for t in traced._prepared.values() for k in api._PAIRING_INPUTS)
    assert_same(want, traced.time(hw, record_events=True).engine)  # the same wiring
    # another wiring (the launch's links and a spare one): every table prepared again, the
    # pairing's inputs with them, and the result that of preparing from nothing
    nbr = np.array(traced.neighbours, np.int64)
    spare = np.flatnonzero((nbr < 0).all(axis=1))
    assert len(spare) >= 2
    a, b = int(spare[0]), int(spare[1])
    nbr[a, 0], nbr[b, 1] = b, a  # (E of a to W of b: a link no command uses)
    got = api.simulate(hw, nbr, traced.program, prepared=traced._prepared, record_events=True)
    assert all(k in traced._prepared["program"] for k in api._PAIRING_INPUTS)
    assert_same(api.simulate(hw, nbr, traced.program, record_events=True), got)
    assert_same(want, got)


def test_tables_without_them_are_not_moved():
    """api.moved_tables (diag's streams copied to other PEs) refuses a source whose pairing
    inputs were dropped: the copy is checked and prepared from nothing."""
    hw = load_hw("mesh8")
    traced = _trace_panel("single_user_prefill", hw)
    traced.time(hw)
    tables = dict(traced._prepared["program"])
    p = traced.program
    moved = p.moved(p.cmd_offsets, p._tensor_bytes, p.tensor_pinned, p.tensor_offsets, p.sizes)
    assert api.moved_tables(tables, p, moved) is not None
    api.drop_pairing_inputs({"program": tables})
    assert api.moved_tables(tables, p, moved) is None


@pytest.mark.parametrize("key", api._PAIRING_INPUTS)
def test_the_pairing_inputs_are_what_the_pairing_reads(key, monkeypatch):
    """Each of them is read by the pairing: without it, preparing a wiring fails (so dropping
    them is what makes it prepare again)."""
    hw = load_hw("mesh8")
    traced = _trace_panel("single_user_decode", hw)
    tables = api._program_tables(hw, traced.program, traced.describe)
    del tables[key]
    with pytest.raises(KeyError):
        api._prepare(hw, np.asarray(traced.neighbours), traced.program, traced.describe, tables)


def test_a_program_edited_after_tracing_is_checked_again(monkeypatch):
    """A review: ``TracedLaunch.time`` reused the tables checked at trace, so a command edited
    since (a vector op of 100,000) ran unchecked and crashed the interpreter (other edits: wrong
    cycles, raw IndexErrors). A second review got past a read-only flag (a field view taken
    while the array was writeable, the flag set back, ``release_commands`` after an edit, a
    large array's writeable base). The kept tables are reused only while what the engine reads
    has the checksum it was checked with (api._stamp); the arrays are read-only besides."""
    import kernbench

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.empty((4096,), "f32")

    def k(p, *, tl):
        a = tl.load(p, shape=(64,))
        tl.store(p, a + 1.0)
        for i in tl.range(0, 12):  # (a compact program: its rows built on first read)
            tl.store(p + 256 * i, tl.load(p + 256 * i, shape=(64,)) * 2.0)

    t = ctx.trace(k, (1, 1), x)
    assert t.program.tiled is not None  # rows not built yet
    want = t.time(ctx.hw).cycles
    checks = []
    real = api._prepare
    monkeypatch.setattr(api, "_prepare", lambda *a, **kw: checks.append(1) or real(*a, **kw))
    for _ in range(3):
        assert t.time(ctx.hw).cycles == want
    assert checks == []  # (the kept tables)
    c = t.program.commands  # built from the compact form: the same rows
    assert t.time(ctx.hw).cycles == want and checks == [1]  # (the engine reads the held rows now)
    add = int(c["sub"][1])
    bad = r"PE \(0, 0\) command #1 \[add \(64,\) f32 .*\]: unknown vector op"
    sub = c["sub"]  # (through a view, a read-only flag set back would not stop it)
    sub[1] = 100_000
    c.flags.writeable = False
    with pytest.raises(ValueError, match=bad):
        t.time(ctx.hw)
    sub[1] = add
    assert t.time(ctx.hw).cycles == want and len(checks) == 3
    sub[1] = 100_000  # (after a check kept the tables again)
    with pytest.raises(ValueError, match=bad):
        t.time(ctx.hw)
    t.program.release_commands()  # (the compact form's rows again: checked, timed as traced)
    assert t.time(ctx.hw).cycles == want and len(checks) == 5
    t.program.cmd_offsets = t.program.cmd_offsets.copy()  # (the same contents: no check)
    assert t.time(ctx.hw).cycles == want and len(checks) == 5
    with pytest.raises(AttributeError, match="TiledCommands.literal is set once"):
        t.program.compact.literal = t.program.compact.literal.copy()
    cp = t.program.compact
    with pytest.raises(AttributeError, match="TiledCommands._src is set once"):
        cp._src = type(cp.source())(cp.n, cp.bounds, cp.literal, cp.tiles)  # (a third review)
    shifts = [v for tile in cp.tiles for v in tile if isinstance(v, np.ndarray)]
    assert shifts and cp.bounds is not None
    for a in (*shifts, cp.bounds):  # (the reader copies them: no view may write them)
        with pytest.raises(ValueError):
            a.flags.writeable = True
    lit = cp.literal
    lit["sub"][1] = 100_000  # (the compact form's rows, edited in place)
    with pytest.raises(ValueError, match=bad):
        t.time(ctx.hw)
