"""A launch keeps its command array compact (issue 12, item 4: bytes kept per command).

tl.range replay tiles most of a long kernel's commands from a traced body; the launch's Program
keeps the traced rows and the tilings (kernbench.language.store.TiledCommands) and drops the
array after the timing. ``Program.commands`` rebuilds it when read: byte for byte the array full
tracing builds, so reports, traces and labels read exactly what they read before. (Every launch
of the suite in verify mode also checks the rebuild against the traced array: executor.)
"""
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernbench._core import _replay
from kernbench.common.pe_commands import COMMAND_DTYPE, Program
from kernbench.diag import panel_spec, run_panel, run_panels
from kernbench.hw import load_hw
from kernbench.language.store import TiledCommands

MESH8 = load_hw("mesh8")


def _panel(name, replay, context=4096, **kw):
    spec = panel_spec(name, MESH8, shape="llama70b", context=context)
    return run_panel(spec, MESH8, replay=replay, **kw)


@pytest.mark.parametrize("name", ["single_user_prefill", "multi_user_prefill"])
def test_released_array_rebuilds_exactly(name):
    on, off = _panel(name, "on"), _panel(name, "off")
    po, pf = on.result.program, off.result.program
    assert pf.compact is None and pf._commands is not None  # nothing tiled: nothing to drop
    assert po.compact is not None and po._commands is None  # released after the timing
    # the compact form is small: the traced rows only (at 4K, 2 of each rank's 16 (group, query
    # block) iterations: 1/8 of the rows) and the tilings' shift tables
    assert po.compact.nbytes < 0.15 * po.n_commands * COMMAND_DTYPE.itemsize
    assert po.commands.tobytes() == pf.commands.tobytes()
    assert po._commands is not None  # rebuilt once, then kept
    # what reads the array after the launch reads the same rows
    assert on.result.cycles == off.result.cycles
    assert [on.result.label(i) for i in range(0, po.n_commands, 97)] == \
        [off.result.label(i) for i in range(0, pf.n_commands, 97)]
    assert str(on.result.profile()) == str(off.result.profile())


def test_pickle_carries_the_compact_form_only():
    p = _panel("single_user_prefill", "on").result.program
    full = p.commands.copy()
    blob = pickle.dumps(p)
    q = pickle.loads(blob)
    assert q._commands is None and q.commands.tobytes() == full.tobytes()
    # a Program without a compact form pickles its array
    r = Program(full, p.cmd_offsets, p.tensor_bytes, p.tensor_pinned, p.tensor_offsets)
    r.release_commands()  # nothing to rebuild it from: kept
    blob_full = pickle.dumps(r)
    assert pickle.loads(blob_full).commands.tobytes() == full.tobytes()
    # the command array is most of a program's pickle: the compact one is well under half
    assert len(blob_full) > full.nbytes and len(blob) < 0.4 * len(blob_full)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol(protocol):
    r = _panel("single_user_prefill", "on", context=1024).result
    assert r.program.compact is not None
    q = pickle.loads(pickle.dumps(r, protocol=protocol))
    assert q.program.commands.tobytes() == r.program.commands.tobytes()
    assert q.cycles == r.cycles


def test_pickle_of_an_older_program_loads():
    """State as pickle wrote it for the slots of a Program before ``compact`` existed."""
    c = np.zeros(3, COMMAND_DTYPE)
    c["n"] = [1, 2, 3]
    p = Program.__new__(Program)
    p.__setstate__((None, {"commands": c, "cmd_offsets": np.array([0, 3]),
                           "tensor_bytes": np.zeros(0, np.int64), "tensor_pinned": np.zeros(0, np.uint8),
                           "tensor_offsets": np.array([0, 0])}))
    assert p.compact is None and p.commands["n"].tolist() == [1, 2, 3]


def test_run_panels_releases_the_shared_source_last():
    ps = run_panels(["single_user_prefill", "multi_user_prefill"], hw="mesh8", shape="llama70b",
                    context=2048, replay="on")
    a, b = (p.result.program for p in ps)
    assert a.compact is b.compact is not None
    assert a._commands is None and b._commands is None
    assert a.commands.tobytes() == b.commands.tobytes()


def test_tilings_out_of_order_are_refused():
    c = np.zeros(10, COMMAND_DTYPE)
    shift = np.zeros((2, 3), np.uint8)
    TiledCommands.from_array(c, [(0, 2, 2, 2, 1, shift, 0)])  # rows 2..6 tiled from 0..2: fine
    with pytest.raises(ValueError, match="out of order"):
        TiledCommands.from_array(c, [(0, 2, 6, 2, 1, shift, 0), (0, 2, 2, 2, 1, shift, 0)])


@st.composite
def _tiled_arrays(draw):
    """A compact array as a TraceStore builds one: traced rows and tilings, each tiling's body
    any range of the rows before it (traced, tiled or both: nested tilings), in random order."""
    n, lit, bounds, tiles = 0, [], [], []
    for _ in range(draw(st.integers(1, 7))):
        if n and draw(st.booleans()):
            a = draw(st.integers(0, n - 1))
            z = draw(st.integers(a + 1, min(n, a + 12)))
            R = draw(st.integers(1, 5))
            shift = np.array(draw(st.lists(st.lists(st.integers(0, 1), min_size=3, max_size=3),
                                           min_size=z - a, max_size=z - a)), np.uint8)
            tiles.append((a, z, n, R, draw(st.integers(0, 40)), shift, draw(st.integers(0, 9))))
            n += R * (z - a)
        else:
            k = draw(st.integers(1, 9))
            rows = np.zeros(k, COMMAND_DTYPE)
            for f in ("src0", "src1", "src2", "dst", "opcode", "n"):
                rows[f] = draw(st.lists(st.integers(-1, 50), min_size=k, max_size=k))
            rows["unit"] = draw(st.lists(st.integers(0, 10), min_size=k, max_size=k))
            lit.append(rows)
            bounds.append((n, n + k))
            n += k
    literal = np.concatenate(lit) if lit else np.zeros(0, COMMAND_DTYPE)
    return TiledCommands(n, bounds, literal, tiles)


@settings(max_examples=300, deadline=None)
@given(_tiled_arrays(), st.data())
def test_rows_read_back_equal_the_expansion(tc, data):
    """The engine's reader (CommandSource: any rows, in C; take: vectorized) against expand()
    (every tiling applied in order over the whole array): the same bytes, nested tilings too."""
    full = tc.expand()
    src = tc.source()
    assert src.rows(0, tc.n).tobytes() == full.tobytes()
    for _ in range(5):
        a = data.draw(st.integers(0, tc.n))
        z = data.draw(st.integers(a, tc.n))
        assert src.rows(a, z).tobytes() == full[a:z].tobytes()
    for u in (0, 3, 7, 11):  # (the link commands: units TX_E = 3 and up)
        assert np.array_equal(tc.rows_with_unit(u), np.flatnonzero(full["unit"] >= u))
    idx = np.array(data.draw(st.lists(st.integers(0, tc.n - 1), max_size=30)), np.int64)
    assert src.take(idx).tobytes() == full[idx].tobytes()
    # a run of iterations repeats exactly where a tiling made it (its body the iteration before)
    for a, z, lo, R, D, shift, made in tc.tiles:
        if z == lo and D == made:
            assert _replay.source_repeats(src, a, z - a, R + 1, made, shift)
            assert _replay.tiles_repeat(full[a:lo + R * (z - a)], z - a, R + 1, made, shift)
    with pytest.raises(ValueError):
        src.take([tc.n])
    with pytest.raises(ValueError):
        src.rows(0, tc.n + 1)


@settings(max_examples=300, deadline=None)
@given(_tiled_arrays(), st.data())
def test_moved_on_is_the_rule_on_the_expansion(tc, data):
    """tl.range's proof in C (source_moved_on, read through the reader) against its rule
    applied to the expanded rows: B (rows b..b+n) is A (rows a..a+n) with each operand at or
    above t0 moved on by D and the others unchanged; the flags mark B's operands >= t_a.
    Compared on random ranges and, so that the answer is often yes, on B built from A."""
    full = tc.expand()
    n = data.draw(st.integers(0, tc.n // 2))
    a = data.draw(st.integers(0, tc.n - 2 * n))
    b = data.draw(st.integers(a + n, tc.n - n))
    t0, D, t_a = data.draw(st.integers(-1, 30)), data.draw(st.integers(-5, 40)), data.draw(st.integers(-1, 50))
    src = tc.source()
    ops = ("src0", "src1", "src2")
    if data.draw(st.booleans()) and n:  # B := A moved on, so the rule holds (bar one change)
        rows = full.copy()
        for f in ops:
            x = rows[f][a:a + n].astype(np.int64)
            rows[f][b:b + n] = np.where(x >= t0, x + D, x)
        if data.draw(st.booleans()):
            rows[data.draw(st.sampled_from(ops))][b + data.draw(st.integers(0, n - 1))] += 1
        tc2 = TiledCommands.from_array(rows, [])
        full, src = rows, tc2.source()
    A = np.stack([full[f][a:a + n].astype(np.int64) for f in ops], 1)
    B = np.stack([full[f][b:b + n].astype(np.int64) for f in ops], 1)
    want = np.array_equal(np.where(A >= t0, A + D, A), B)
    shift = np.full((n, 3), 7, np.uint8)
    rows_at_a_time = data.draw(st.integers(1, 9))
    assert _replay.source_moved_on(src, a, b, n, t0, D, t_a, shift, rows_at_a_time) == want
    if want:
        assert np.array_equal(shift, (B >= t_a).astype(np.uint8))
    with pytest.raises(ValueError):
        _replay.source_moved_on(src, 0, tc.n, 1, 0, 0, 0, np.zeros((1, 3), np.uint8))



@settings(max_examples=300, deadline=None)
@given(st.data())
def test_moved_on_of_rows_not_yet_flushed_is_the_rule(data):
    """The same proof on rows still waiting in the store (rows_moved_on: (site, src0, src1,
    src2) int64 rows, a loop of traced commands): B has A's sites and A's operands, those at or
    above t0 moved on by D; the flags mark B's operands >= t_a. Random rows and, so that the
    answer is often yes, B built from A with at most one change (a site or an operand)."""
    n = data.draw(st.integers(0, 12))
    col = st.lists(st.integers(-1, 40), min_size=4 * n, max_size=4 * n)
    A = np.array(data.draw(col), np.int64).reshape(n, 4)
    t0, D, t_a = data.draw(st.integers(-1, 30)), data.draw(st.integers(-5, 40)), data.draw(st.integers(-1, 50))
    if data.draw(st.booleans()):
        B = A.copy()
        B[:, 1:] = np.where(A[:, 1:] >= t0, A[:, 1:] + D, A[:, 1:])
        if n and data.draw(st.booleans()):
            B[data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, 3))] += 1
    else:
        B = np.array(data.draw(col), np.int64).reshape(n, 4)
    want = (np.array_equal(A[:, 0], B[:, 0])
            and np.array_equal(np.where(A[:, 1:] >= t0, A[:, 1:] + D, A[:, 1:]), B[:, 1:]))
    shift = np.full((n, 3), 7, np.uint8)
    assert _replay.rows_moved_on(A, B, t0, D, t_a, shift) == want
    if want:
        assert np.array_equal(shift, (B[:, 1:] >= t_a).astype(np.uint8))
    with pytest.raises(ValueError):
        _replay.rows_moved_on(A, B[:n - 1] if n else np.zeros((1, 4), np.int64), t0, D, t_a, shift)

@settings(max_examples=200, deadline=None)
@given(_tiled_arrays(), st.data())
def test_reads_any_is_the_rule_on_the_expansion(tc, data):
    """source_reads_any (C, through the reader) against the expanded rows: does an operand of
    rows x..y equal one of the watched tensor numbers?"""
    full = tc.expand()
    x = data.draw(st.integers(0, tc.n))
    y = data.draw(st.integers(x, tc.n))
    watch = np.unique(np.array(data.draw(st.lists(st.integers(-2, 60), max_size=6)), np.int64))
    ops = np.concatenate([full[f][x:y] for f in ("src0", "src1", "src2")]).astype(np.int64)
    want = bool(np.isin(ops, watch).any())
    assert _replay.source_reads_any(tc.source(), x, y, watch, data.draw(st.integers(1, 9))) == want
    with pytest.raises(ValueError):
        _replay.source_reads_any(tc.source(), 0, tc.n + 1, watch)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_reader_of_rows_alone_reads_as_the_general_one(data):
    """CommandSource.of_rows (a run of traced rows: what tl.range's proofs read) against the
    general reader of the same rows: rows, take, segments, the proof and the watch, the same
    answers; empty runs too; anything but a contiguous run of COMMAND_DTYPE rows refused."""
    n = data.draw(st.integers(0, 20))
    rows = np.zeros(n, COMMAND_DTYPE)
    for f in ("src0", "src1", "src2", "dst", "opcode", "unit", "n"):
        rows[f] = data.draw(st.lists(st.integers(-1, 40), min_size=n, max_size=n))
    fast, slow = _replay.CommandSource.of_rows(rows), _replay.CommandSource(n, ((0, n),), rows, ())
    assert fast.n == slow.n == n
    assert np.array_equal(fast.segments, slow.segments)
    a = data.draw(st.integers(0, n))
    z = data.draw(st.integers(a, n))
    assert fast.rows(a, z).tobytes() == slow.rows(a, z).tobytes() == rows[a:z].tobytes()
    idx = np.array(data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=10 if n else 0)), np.int64)
    assert fast.take(idx).tobytes() == slow.take(idx).tobytes()
    watch = np.unique(np.array(data.draw(st.lists(st.integers(-2, 45), max_size=5)), np.int64))
    assert _replay.source_reads_any(fast, a, z, watch) == _replay.source_reads_any(slow, a, z, watch)
    k = data.draw(st.integers(0, n // 2))
    t0, D = data.draw(st.integers(-1, 30)), data.draw(st.integers(-3, 9))
    s1, s2 = np.zeros((k, 3), np.uint8), np.ones((k, 3), np.uint8)
    assert (_replay.source_moved_on(fast, 0, k, k, t0, D, t0, s1)
            == _replay.source_moved_on(slow, 0, k, k, t0, D, t0, s2))
    assert np.array_equal(s1, s2) or not _replay.source_moved_on(slow, 0, k, k, t0, D, t0, s2)
    with pytest.raises(ValueError):
        fast.rows(0, n + 1)
    with pytest.raises(ValueError):
        _replay.CommandSource.of_rows(np.zeros(4, COMMAND_DTYPE)[::2])
    with pytest.raises(ValueError):
        _replay.CommandSource.of_rows(np.zeros(4, np.int64))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_reads_any_of_rows_not_yet_flushed_is_the_rule(data):
    """rows_read_any (C: rows still waiting in the store, (site, src0, src1, src2) int64)
    against numpy's isin on the operand columns; the site column is not an operand."""
    n = data.draw(st.integers(0, 15))
    rows = np.array(data.draw(st.lists(st.integers(-2, 50), min_size=4 * n, max_size=4 * n)),
                    np.int64).reshape(n, 4)
    watch = np.unique(np.array(data.draw(st.lists(st.integers(-2, 55), max_size=6)), np.int64))
    assert _replay.rows_read_any(rows, watch) == bool(np.isin(rows[:, 1:], watch).any())
    with pytest.raises(ValueError):
        _replay.rows_read_any(np.zeros((2, 3), np.int64), watch)


def test_a_loop_reads_its_program_back_through_a_reader_of_that_program_only():
    """While PE (3, 1) is traced, the store reads its rows through a reader of its own rows
    (numbered from its first command): the same records as the launch-wide reader, for every
    range of them, tilings of nested loops included."""
    import kernbench

    ctx = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 4})
    x = ctx.empty((64, 64), "f32")
    seen = []

    def kernel(x_ptr, *, tl):
        acc = tl.zeros((64, 64), "f32")
        for i in tl.range(7):
            t = tl.load(x_ptr + i * 0, shape=(64, 64))
            for _ in tl.range(6):
                acc = acc + tl.exp(t)
            acc = acc * 0.5
        tl.store(x_ptr, acc)
        if (tl.program_id(0), tl.program_id(1)) == (3, 1):
            store = tl._b.trace_store
            store.flush()
            start, b0, t0 = store._program
            assert start > 0 and 0 < t0 < len(store._tiles)  # earlier programs' tilings and its own
            local = store._program_source(start, b0, t0)
            whole = store._source()
            n = store.n - start
            for a, z in [(0, n), (1, n - 1), (n // 3, 2 * n // 3), (n - 5, n)]:
                seen.append(np.array_equal(local.rows(a, z).view(np.uint8),
                                           whole.rows(start + a, start + z).view(np.uint8)))

    ctx.launch(kernel, (4, 2), x, mode="timing", replay="on")
    assert seen == [True] * 4


def test_the_engine_reads_traced_rows_in_place_and_fills_the_others_into_a_pool_of_slots():
    """The engine reads a compact program's rows a block (2**8 rows) at a time, when it first
    reaches one: a block of traced rows, all of one run, where the trace keeps them (a causal
    prefill traces most of its rows: neither copied nor its pages faulted in); any other block
    (a tiling's rows, or rows of two runs) into a slot of the run's pool, the slots taken in
    turn, a slot's block dropped and filled again when reached again. The start and end cycles
    are those of the same launch traced in full whatever the pool's size (1 slot: every change
    of block fills one, even between a command's start and its end), with every row run and
    with steady-state jumps; a pool as large as the program fills exactly the blocks that are
    not one run of traced rows, once each. The pool is kept for the program's next timing: the
    blocks still in it are read from there."""
    from test_steady_state import _trace_panel, assert_same

    from kernbench._core import _engine, api

    hw = load_hw("default")
    traced = _trace_panel("single_user_prefill", hw, causal=True)
    full = _trace_panel("single_user_prefill", hw, causal=True, replay="off")
    assert full.program.tiled is None and traced.program.tiled is not None
    n = traced.program.tiled.n
    seg = traced.program.tiled.source().segments
    in_place = 0
    assert [_engine.row_blocks(x) for x in (0, 1, 255, 256, 257, 512)] == [0, 1, 1, 1, 2, 2]
    for k in range(_engine.row_blocks(n)):
        lo, hi = k << 8, min((k + 1) << 8, n)
        s = seg[np.searchsorted(seg[:, 0], lo, side="right") - 1]
        in_place += bool(s[2] < 0 and hi <= s[1])
    others = _engine.row_blocks(n) - in_place
    assert 0 < in_place and 0 < others  # blocks of both kinds

    def timed(program, steady, slots=None):
        return api.simulate(hw, traced.neighbours, program, steady=steady, row_slots=slots)

    ref_all = timed(full.program, False)
    for steady in (False, True):
        ref = timed(full.program, steady)
        assert ref.row_blocks == {"in_place": 0, "filled": 0, "kept": 0}
        for slots in (None, 1, 2, 64, 1 << 20):
            got = timed(traced.program, steady, slots)
            assert_same(ref, got)
            if not steady:
                assert got.row_blocks["in_place"] == in_place
                filled = got.row_blocks["filled"]
                assert filled == others if slots == 1 << 20 else filled >= others
                if slots == 1:
                    assert filled > others  # blocks dropped and filled again
    with pytest.raises(ValueError, match="row_slots must be a positive int"):
        timed(traced.program, False, 0)
    # the pool is kept with the program's tables: a next timing reads the blocks still in it
    # (all of them from a pool as large as the program) and fills the others
    prepared = {}
    for slots, kept in ((1 << 20, 0), (1 << 20, others), (3, 0), (3, 3), (None, 0)):
        got = api.simulate(hw, traced.neighbours, traced.program, steady=False, row_slots=slots,
                           prepared=prepared)
        assert_same(ref_all, got)
        assert got.row_blocks["kept"] == kept and got.row_blocks["in_place"] == in_place
        assert got.row_blocks["filled"] >= others - kept
        if slots == 1 << 20:  # the pool holds every block: each filled once, then read from it
            assert got.row_blocks["filled"] == others - kept
