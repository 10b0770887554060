"""The engine's program checks have a fast path (kernbench/_core/_check.pyx, one C pass) and the
numpy checks that name errors (api._check_numpy). The fast path must answer exactly "do the numpy
checks pass?" and, when they do, build the same tables (tensors made, readers per tensor): compared here on
valid programs and on valid programs with one field of one command overwritten by a value at or
around every bound the checks draw (docs/reliability.md).

Ctrl-C during the check pass (and the queues and the message pairing after it): KeyboardInterrupt
from the pass's signal poll, and the same results when the pass runs again.
"""
from types import SimpleNamespace

import numpy as np
import pytest
from engine_helpers import call_interrupted, pass_result, random_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernbench
from kernbench._core import api, pages
from kernbench.common.pe_commands import COMMAND_DTYPE, Unit
from kernbench.language.store import TiledCommands

FIELDS = [f for f in COMMAND_DTYPE.names if f != "line"]  # line is never checked
EDGES = [-(1 << 31), -2, -1, 0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 1 << 20,
         (1 << 31) - 1]
EDGES64 = EDGES + [1 << 25, (1 << 40) - 1, 1 << 40, (1 << 40) + 1, 1 << 62]


def _both(hw, program):
    """(fast says valid, numpy's error or None, fast tables, numpy tables)."""
    c, t_off, cmd_off = program.commands, program.tensor_offsets, program.cmd_offsets
    n_t = len(program.tensor_bytes)
    fp, fr = np.zeros(n_t, np.uint8), np.zeros(n_t, np.int32)
    ok = api._check.check_fast(c, cmd_off, t_off, api._OP_PROPS, api._UNIT_BASE, fp, fr,
                               api.MAX_SIZE, api.MAX_VOLUME)
    # the same pass over the rows read back from a compact form (as a tiled program's are), 7
    # rows at a time (so the reads cross PEs' streams)
    sp, sr, units = np.zeros(n_t, np.uint8), np.zeros(n_t, np.int32), np.zeros(len(c), np.uint8)
    link_bytes = api._check.check_source(TiledCommands.from_array(c, []).source(), cmd_off, t_off,
                                         api._OP_PROPS, api._UNIT_BASE, sp, sr, api.MAX_SIZE,
                                         api.MAX_VOLUME, units, 7)
    assert (link_bytes is not None) == ok
    if ok:
        assert np.array_equal(sp, fp) and np.array_equal(sr, fr) and np.array_equal(units, c["unit"])
        _, _, sends, recvs = api._check.unit_queues(c, cmd_off)
        assert np.array_equal(link_bytes[0], c["nbytes"][sends])
        assert np.array_equal(link_bytes[1], c["nbytes"][recvs])
    pe = np.repeat(np.arange(hw.n_pes, dtype=np.int32), np.diff(cmd_off))
    chk = api._Checker(hw, cmd_off, api._default_describe(program))
    npr, nrd = np.full(n_t, -1, np.int64), np.zeros(n_t, np.int32)
    try:
        api._check_numpy(c, pe, t_off, npr, nrd, chk)
        err = None
    except ValueError as e:
        err = e
    return ok, err, (fp, fr), (npr >= 0, nrd)


def _assert_agree(hw, program):
    ok, err, fast, slow = _both(hw, program)
    assert ok == (err is None), err
    if ok:
        np.testing.assert_array_equal(fast[0], slow[0])
        np.testing.assert_array_equal(fast[1], slow[1])
    return ok


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_machine(), st.data())
def test_fast_and_numpy_checks_agree_on_corrupted_programs(machine, data):
    program = machine.program()
    assert _assert_agree(machine.hw, program)  # the generator makes valid programs
    n = len(program.commands)
    if n == 0:
        return
    for _ in range(3):
        bad = program.commands.copy()
        i = data.draw(st.integers(0, n - 1))
        f = data.draw(st.sampled_from(FIELDS))
        wide = bad.dtype[f] == np.int64
        v = data.draw(st.sampled_from(EDGES64 if wide else EDGES) | st.integers(-3, 40))
        bad[f][i] = v
        corrupted = type(program)(bad, program.cmd_offsets, program.tensor_bytes,
                                  program.tensor_pinned, program.tensor_offsets)
        _assert_agree(machine.hw, corrupted)


@pytest.mark.parametrize("field,value", [("src0", "dst_of_next"), ("dst", "dst_of_prev"),
                                         ("src1", "own_dst")])
def test_reads_before_or_of_their_own_production_are_refused_by_both(field, value):
    from engine_helpers import Machine, fill

    from kernbench.hw import load_hw
    m = Machine(load_hw().with_overrides({"n_cubes": 1, "pes_per_cube": 1}))
    s = m[0]
    a, b = fill(s, 256), fill(s, 256)
    s.dot(a, b, 4, 4, 4)
    s.store(b, 64)
    p = m.program()
    c = p.commands
    if value == "dst_of_next":  # the first fill reads the second fill's result
        c[field][0] = c["dst"][1]
    elif value == "dst_of_prev":  # the second fill produces the first's tensor again
        c[field][1] = c["dst"][0]
    else:  # the dot reads its own result
        c[field][2] = c["dst"][2]
    ok, err, _, _ = _both(m.hw, p)
    assert not ok and err is not None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_machine())
def test_unit_queues_are_the_stable_sort_by_pe_and_unit(machine):
    # The C counting sort against its definition: a stable argsort of pe * N_UNITS + unit.
    from kernbench.common.pe_commands import N_UNITS, Opcode
    p = machine.program()
    c = p.commands
    q, off, sends, recvs = api._check.unit_queues(c, p.cmd_offsets)
    pe = np.repeat(np.arange(p.n_pes), np.diff(p.cmd_offsets))
    key = pe * N_UNITS + c["unit"]
    order = np.argsort(key, kind="stable")  # global indices; the queues hold them per PE
    np.testing.assert_array_equal(q, order - p.cmd_offsets[pe[order]])
    np.testing.assert_array_equal(off, np.concatenate([[0], np.cumsum(np.bincount(key, minlength=p.n_pes * N_UNITS))]))
    np.testing.assert_array_equal(sends, np.flatnonzero(c["opcode"] == Opcode.SEND))
    np.testing.assert_array_equal(recvs, np.flatnonzero(c["opcode"] == Opcode.RECV))
    assert off.dtype == sends.dtype == recvs.dtype == np.int64 and q.dtype == np.int32


# -- a tiled program's copies checked on their tensor numbers only ------------------------------
def _agree_tiled(program, tc):
    """check_source over ``tc`` (a tiling's body read once, its copies checked on their tensor
    numbers) against check_fast over ``tc.expand()`` (every row in full): the same answer and,
    when valid, the same tables (made, readers, units, link byte counts)."""
    full = tc.expand()
    cmd_off, t_off = program.cmd_offsets, program.tensor_offsets
    n_t = len(program.tensor_bytes)
    fm, fr = np.zeros(n_t, np.uint8), np.zeros(n_t, np.int32)
    ok = api._check.check_fast(full, cmd_off, t_off, api._OP_PROPS, api._UNIT_BASE, fm, fr,
                               api.MAX_SIZE, api.MAX_VOLUME)
    tables = []
    for closed in (True, False):  # copies answered from their body at once, or copy by copy
        sm, sr, units = np.zeros(n_t, np.uint8), np.zeros(n_t, np.int32), np.zeros(len(full), np.uint8)
        lb = api._check.check_source(tc.source(), cmd_off, t_off, api._OP_PROPS, api._UNIT_BASE,
                                     sm, sr, api.MAX_SIZE, api.MAX_VOLUME, units, 5, closed=closed)
        assert (lb is not None) == ok
        tables.append((sm, sr, units, lb))
    if ok:  # the same tables either way
        for x, y in zip(tables[0][:3] + tables[0][3], tables[1][:3] + tables[1][3]):
            assert x.dtype == y.dtype and np.array_equal(x, y)
    if ok:
        assert np.array_equal(sm, fm) and np.array_equal(sr, fr)
        assert np.array_equal(units, full["unit"])
        # the queues through the tilings' bodies: those of the expanded array
        q, off, sends, recvs = api._check.unit_queues_of(units, cmd_off)
        tq = api._check.unit_queues_of(units, cmd_off, tc.source())
        for x, y in zip((q, off, sends, recvs), tq):
            assert x.dtype == y.dtype and np.array_equal(x, y)
        assert np.array_equal(lb[0], full["nbytes"][sends])
        assert np.array_equal(lb[1], full["nbytes"][recvs])
    return ok


def _replayed_program(case):
    from test_tl_range import _launch, make_loop_kernel

    k, args = make_loop_kernel(*case)
    return _launch(k, args, "on").program


def _loop_case():
    from test_tl_range import loop_kernels

    return loop_kernels()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.deferred(_loop_case), st.data())
def test_tiled_copies_checked_as_the_expanded_rows(case, data):
    """Generated tl.range kernels (sends and recvs between 2 PEs, masked, pinned, views), their
    programs as replay keeps them; then the same with one tiling's moves or one traced row's
    tensor number changed (D, made or both: the copies name other tensors; src/dst: the body
    itself changes): the tiled check answers as the row-by-row check of the expanded array,
    with its copies answered at once from their body (_check_copies_closed) or copy by copy."""
    program = _replayed_program(case)
    tc = program.compact
    if tc is None or not tc.tiles:
        return
    assert _agree_tiled(program, tc)  # replay keeps a valid program valid
    for _ in range(3):
        tiles = list(tc.tiles)
        literal = tc.literal
        if data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(tiles) - 1))
            a, z, lo, R, D, shift, made = tiles[i]
            d = data.draw(st.sampled_from([-3, -2, -1, 1, 2, 5, 1 << 31]))
            which = data.draw(st.sampled_from(["D", "made", "both"]))
            if which == "D":
                D += d
            elif which == "made":
                made = max(made + d, 0)
            else:  # (the copies' windows moved: still of the form the closed check answers for)
                D, made = D + d, max(made + d, 0)
            tiles[i] = (a, z, lo, R, D, shift, made)
        elif len(literal):
            literal = literal.copy()
            j = data.draw(st.integers(0, len(literal) - 1))
            f = data.draw(st.sampled_from(["src0", "src1", "src2", "dst"]))
            literal[f][j] = data.draw(st.sampled_from(EDGES) | st.integers(-3, 40))
        _agree_tiled(program, TiledCommands(tc.n, tc.bounds, literal, tiles))


def test_a_kernel_with_nested_loops_and_links_checks_its_copies():
    """The hand-written ring kernel of tests/test_tl_range.py (nested tl.range, sends/recvs,
    a pinned tile): tilings inside tilings, checked without expanding them."""
    from test_tl_range import T, _launch, ring_body

    n = 9
    r = _launch(ring_body, lambda ctx: (ctx.empty(((2 * n + 2) * T, T), "f32"),
                                        ctx.empty((T, T), "f32"), n), "on")
    tc = r.program.compact
    assert tc is not None and len(tc.tiles) >= 2
    assert _agree_tiled(r.program, tc)


@pytest.mark.parametrize("name, causal", [(n, False) for n in ("single_user_prefill", "single_user_decode",
                                                                 "multi_user_prefill", "multi_user_decode")]
                         + [("single_user_prefill", True), ("multi_user_prefill", True)])
def test_shipped_kernels_tiled_checks_match_the_row_by_row_ones(name, causal):
    """Every shipped kernel (the diag panels, causal prefill too, at 4K on mesh8, as replay keeps
    them): the check through the tilings' bodies and the queues through them against the
    row-by-row check and queues of the expanded array, bit for bit."""
    from kernbench.diag import panel_spec, run_panel
    from kernbench.hw import load_hw

    hw = load_hw("mesh8")
    spec = panel_spec(name, hw, shape="llama70b", context=4096, causal=causal)
    r = run_panel(spec, hw, replay="on")
    program = r.result.program
    tc = program.compact
    if spec.kind == "decode":  # no tl.range: nothing tiled, the checks are the row-by-row ones
        assert tc is None
        return
    assert tc is not None and tc.tiles and _agree_tiled(program, tc)


# -- Ctrl-C during the check pass ---------------------------------------------------------------
#: iterations of the big launch's loop: every pass below goes well past its first signal check
#: (SIGNAL_PERIOD = 2**16 work items, kernbench/_core/_types.pxd)
BIG = 3 << 16


def counter(n, *, tl):
    acc = tl.zeros((8,), "f32")
    for _ in tl.range(0, n):
        acc = acc + 1.0


# The counter launches replay their tl.range (replay="on"): the tests' default, verify
# (conftest.py), traces all BIG iterations, 4 s a launch; these tests are about the passes after.
def _counter_context():
    ctx = kernbench.Context("default")
    ctx.install_sfr(scope="pe")
    return ctx


@pytest.fixture(scope="module")
def big():
    """A launch of BIG + 1 commands (a tl.range loop kept as one tiling) and the inputs of every
    pass of its check: the tiled rows, the expanded ones, the units; and messages on one link
    between two PEs (BIG sends on PE 0's east port, BIG recvs on PE 1's west port)."""
    p = _counter_context().launch(counter, (1, 1), BIG, mode="timing", replay="on").program
    tc = p.compact
    assert tc is not None and tc.tiles
    full = tc.expand()
    nbr = np.full((2, 4), -1, np.int32)
    nbr[0, 0], nbr[1, 1] = 1, 0  # PE 0's east port faces PE 1's west port
    link_units = np.repeat(np.array([Unit.TX_E, Unit.RX_W], np.uint8), BIG)
    return SimpleNamespace(p=p, tc=tc, full=full, units=np.ascontiguousarray(full["unit"], np.uint8),
                           nbr=nbr, link_units=link_units, link_off=np.array([0, BIG, 2 * BIG], np.int64))


def _tables(b):
    n_t = len(b.p.tensor_bytes)
    return np.zeros(n_t, np.uint8), np.zeros(n_t, np.int32)


# Each pass: (the C function, its arguments with fresh output arrays). The function is called
# as it is (call_interrupted: no Python frame of ours between the signal and the pass).
def _check_fast(b):
    return api._check.check_fast, (b.full, b.p.cmd_offsets, b.p.tensor_offsets, api._OP_PROPS,
                                   api._UNIT_BASE, *_tables(b), api.MAX_SIZE, api.MAX_VOLUME)


def _check_source(b):
    return api._check.check_source, (b.tc.source(), b.p.cmd_offsets, b.p.tensor_offsets,
                                     api._OP_PROPS, api._UNIT_BASE, *_tables(b), api.MAX_SIZE,
                                     api.MAX_VOLUME, np.zeros(len(b.full), np.uint8))


def _message_table(b):
    idx = np.arange(2 * BIG, dtype=np.int64)
    nbytes = np.full(BIG, 64, np.int64)
    return api._check.message_table, (b.link_units, idx[:BIG], idx[BIG:], b.link_off, b.nbr,
                                      api._OPPOSITE, nbytes, nbytes)


PASSES = {
    "check_fast": _check_fast,
    "check_source": _check_source,
    "unit_queues_of": lambda b: (api._check.unit_queues_of, (b.units, b.p.cmd_offsets)),
    "unit_queues_of_tiled": lambda b: (api._check.unit_queues_of,
                                       (b.units, b.p.cmd_offsets, b.tc.source())),
    "message_table": _message_table,
    "stable_order": lambda b: (api._check.stable_order,
                               (np.arange(2 * BIG, dtype=np.int64) % 7, 7)),
}


@pytest.mark.parametrize("name", PASSES)
def test_ctrl_c_stops_the_check_pass_and_it_runs_again_alike(big, name, monkeypatch):
    """SIGINT pending as the pass starts: KeyboardInterrupt from its signal poll (not after the
    whole pass); then the same pass, uninterrupted, gives what it gave before, bit for bit."""
    want = pass_result(*PASSES[name](big))
    assert want[0] is not None and want[0] is not False  # a valid program: the whole pass runs
    fn, args = PASSES[name](big)
    with monkeypatch.context() as m:
        m.setattr(pages, "empty", np.empty)  # (no Python code between the signal and the poll)
        call_interrupted(fn, *args)
    assert pass_result(*PASSES[name](big)) == want


def test_ctrl_c_in_a_launchs_check_pass_leaves_the_context_usable(monkeypatch):
    """A launch whose check pass (check_source, through the tiling) is interrupted raises
    KeyboardInterrupt from that pass; the same Context then launches the small and the big
    kernel with the cycles of an uninterrupted Context."""
    small = _counter_context().launch(counter, (1, 1), 10, mode="timing", replay="on")
    want = _counter_context().launch(counter, (1, 1), BIG, mode="timing", replay="on")
    ctx = _counter_context()
    real = api._check.check_source
    stopped = []

    def interrupted(*args):
        stopped.append(call_interrupted(real, *args))
        raise stopped[-1]

    monkeypatch.setattr(api._check, "check_source", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ctx.launch(counter, (1, 1), BIG, mode="timing", replay="on")
    assert len(stopped) == 1
    monkeypatch.setattr(api._check, "check_source", real)
    again = ctx.launch(counter, (1, 1), 10, mode="timing", replay="on")
    assert again.cycles == small.cycles
    assert np.array_equal(again.unit_counters, small.unit_counters)
    big_again = ctx.launch(counter, (1, 1), BIG, mode="timing", replay="on")
    assert big_again.cycles == want.cycles and big_again.program.n_commands == BIG + 1


def test_copies_reading_every_window_are_checked_as_the_expanded_rows():
    """The copies' reads moved to every kind of tensor the closed check tells apart (a tiling's
    body reading its own earlier or later row's result, the last iteration's, two back, a later
    copy's, one before the tiling; a read kept fixed inside the copies' windows), one operand of
    the hand-written ring kernel's tiling bodies at a time: the tiled check, with its copies
    answered at once and copy by copy, answers as the row-by-row check of the expanded array,
    and both answers come up (a valid program stays valid for some moves)."""
    from test_tl_range import T, _launch, ring_body

    n = 9
    r = _launch(ring_body, lambda ctx: (ctx.empty(((2 * n + 2) * T, T), "f32"),
                                        ctx.empty((T, T), "f32"), n), "on")
    tc = r.program.compact
    starts = np.cumsum(np.concatenate([[0], tc.bounds[:, 1] - tc.bounds[:, 0]]))
    seen = set()
    for a, z, lo, _, D, shift, _ in tc.tiles:
        k = np.searchsorted(tc.bounds[:, 0], a, side="right") - 1
        if not (tc.bounds[k, 0] <= a and z <= tc.bounds[k, 1]):
            continue  # (a body holding copies: its rows are not all literal)
        at = starts[k] + a - tc.bounds[k, 0]  # the body's first row in literal
        dst = tc.literal["dst"][at:at + z - a]
        F = int(dst[dst >= 0].min())
        for j in range(z - a):
            for f, field in enumerate(("src0", "src1", "src2")):
                if tc.literal[field][at + j] < 0:
                    continue
                for x in (F + j % D, F - D, F - D + j % D, F - 2 * D, F + D, F + 2 * D, F - 1,
                          F + D - 1, 0):
                    if x < 0:
                        continue
                    literal = tc.literal.copy()
                    literal[field][at + j] = x
                    sh = shift.copy()
                    for flag in (1, 0):  # moved on per copy, or kept (fixed)
                        sh[j, f] = flag
                        tiles = [(a2, z2, lo2, R2, D2, sh if (a2, lo2) == (a, lo) else s2, m2)
                                 for a2, z2, lo2, R2, D2, s2, m2 in tc.tiles]
                        seen.add(_agree_tiled(r.program, TiledCommands(tc.n, tc.bounds, literal,
                                                                       tiles)))
    assert seen == {True, False}


@pytest.mark.parametrize("big", [1 << 31, 1 << 33, (1 << 62) + 1, 3_500_000_000_000_000_000])
def test_a_tiling_moving_by_more_than_the_tensor_numbers_is_checked_as_the_expanded_rows(big):
    """A hand-built tiling whose copies move by D = made far past any PE's tensors (int32 tensor
    numbers wrap; (R + 1) * D past int64 for the largest): the closed check leaves it to the
    copy-by-copy one, and both answer as the expanded rows (no MemoryError, no read past the
    body's tables)."""
    from test_tl_range import T, _launch, ring_body

    n = 6
    r = _launch(ring_body, lambda ctx: (ctx.empty(((2 * n + 2) * T, T), "f32"),
                                        ctx.empty((T, T), "f32"), n), "on")
    tc = r.program.compact
    for i, (a, z, lo, R, _, shift, _) in enumerate(tc.tiles):
        tiles = list(tc.tiles)
        tiles[i] = (a, z, lo, R, big, shift, big)
        _agree_tiled(r.program, TiledCommands(tc.n, tc.bounds, tc.literal, tiles))
