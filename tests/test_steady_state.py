"""The engine's steady-state jumps (issue 12: "recognising a periodic steady state and advancing it
exactly"): where tl.range iterations bring the whole machine back to the same state a whole
number of iterations later, the engine jumps the stretches that repeat it. Every result must be
the one of running them (``steady=False``): cycles, every command's start and end, every counter,
peak SRAM, heap events, the event record, the errors. Checked on the diag panels, on hardware
variants, on generated loop kernels, at the cycle guard and through a deadlock; and the jumps
must really happen where a loop repeats (else these tests would compare a path with itself).
"""
import numpy as np
import pytest
from engine_helpers import HW_RANGES
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kernbench
from kernbench._core import api
from kernbench.common.errors import DeadlockError, MaxCyclesError
from kernbench.diag import panel_spec
from kernbench.hw import load_hw
from kernbench.runtime import executor
from kernbench.runtime.context import Context
from test_tl_range import loop_kernels, make_loop_kernel

MESH8 = load_hw("mesh8")
DEFAULT = load_hw("default")

#: the fields a repeating run's iterations share (all but the tensor numbers and the line)
SAME_FIELDS = ("opcode", "unit", "m", "n", "k", "nbytes", "sub", "port", "esize")
#: what a run reports, all of which a jump must leave exactly as running the stretches would
FIELDS = ("cycles", "cmd_start", "cmd_end", "unit_counters", "link_counters", "peak_sram",
          "sram_over", "heap_events", "work", "messages", "events", "debug")


def assert_same(a, b):
    # the cycles (the engine's last end) are the latest end cycle, jumped commands included;
    # the jumps' start and end cycles are written when first read: read in two orders here
    assert a.cycles == (int(a.cmd_end.max()) if len(a.cmd_end) else 0)
    assert b.cmd_start.tobytes() == a.cmd_start.tobytes() and b.start_end_copies is None
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), f
        else:
            assert x == y, f


def _trace_panel(name, hw, context=4096, causal=False, replay="on"):
    spec = panel_spec(name, hw, shape="llama70b", context=context, causal=causal)
    ctx = Context(hw)
    ctx.install_sfr(scope=spec.scope, ring=False)
    d = spec.d_head
    kp = ctx.empty((spec.S_kv_per_rank, spec.h_kv, d), "f16")
    vp = ctx.empty((spec.S_kv_per_rank, spec.h_kv, d), "f16")
    qp = ctx.empty((spec.S_q, spec.h_q, d), "f16")
    op = ctx.empty((spec.S_q, spec.h_q, d), "f16")
    args = (qp, kp, vp, op, spec.S_q, spec.S_kv_per_rank, spec.h_q, spec.h_kv, d, spec.n_ranks,
            spec.rank_axis, *spec.blocks)
    traced, _, _ = executor.trace_launch(ctx, spec.kernel, spec.grid, args,
                                         {"causal": True} if causal else {}, mode="timing", replay=replay)
    return traced


def _both(traced, hw, **kw):
    """(steady off, steady on) results of timing ``traced`` on ``hw``, or the errors raised."""
    out = []
    for steady in (False, True):
        try:
            out.append(traced.time(hw, steady=steady, **kw).engine)
        except (DeadlockError, MaxCyclesError) as e:
            out.append(e)
    return out


@pytest.mark.parametrize("hw", [MESH8, DEFAULT], ids=["mesh8", "default"])
@pytest.mark.parametrize("name,causal", [("single_user_prefill", False), ("single_user_prefill", True),
                                         ("multi_user_prefill", False), ("single_user_decode", False),
                                         ("multi_user_decode", False)])
def test_diag_panels_exact(hw, name, causal):
    traced = _trace_panel(name, hw, causal=causal)
    off, on = _both(traced, hw, record_events=True)
    assert_same(off, on)
    assert off.steady_commands == 0
    if traced.program.tiled is not None:  # a row pool of 2 blocks (Sim._place), every row run
        assert_same(off, api.simulate(hw, traced.neighbours, traced.program, steady=False,
                                      record_events=True, row_slots=2))
    if name.endswith("prefill") and not causal:
        # the jumps happen: at 4K each rank runs 16 (K/V group, query block) iterations per ring
        # step, most of them jumped over
        assert on.steady_commands > 0.5 * len(on.cmd_end)


def test_jumps_are_most_of_a_long_prefill():
    traced = _trace_panel("single_user_prefill", DEFAULT, context=16384)
    off, on = _both(traced, DEFAULT)
    assert_same(off, on)
    # (16K: 64 iterations per ring step; the first few and the last are run: 89% jumped)
    assert on.steady_commands > 0.85 * len(on.cmd_end)
    # a jump skips heap events but reports them: the count is the run's, not the work done
    assert on.heap_events == off.heap_events


def test_packet_detail_never_jumps():
    traced = _trace_panel("single_user_prefill", MESH8, context=2048)
    a = traced.time(MESH8, detail="packet")
    b = traced.time(MESH8)
    assert a.engine.steady_commands == 0 and b.engine.steady_commands > 0
    assert a.cycles == b.cycles
    assert a.engine.cmd_end.tobytes() == b.engine.cmd_end.tobytes()


@st.composite
def hw_variants(draw):
    """The default preset's shape with random link, DMA, GEMM and vector parameters."""
    over = {}
    for key, (lo, hi) in HW_RANGES.items():
        if draw(st.booleans()):
            over[key] = draw(st.integers(lo, hi))
    return DEFAULT.with_overrides(over)


_PANEL_TRACES = {}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hw_variants(), st.sampled_from(["single_user_prefill", "multi_user_prefill"]))
def test_panels_on_hardware_variants_exact(hw, name):
    """Short receive queues, slow links, narrow channels: DMA epochs cut mid-iteration, sends
    waiting for credits across iteration boundaries; the jumps stay exact."""
    if name not in _PANEL_TRACES:
        _PANEL_TRACES[name] = _trace_panel(name, DEFAULT, context=2048)
    off, on = _both(_PANEL_TRACES[name], hw)
    assert_same(off, on)


def _loop_trace(case, grid=(2, 1), replay_last=False, older_first=False):
    k, args_of = make_loop_kernel(*case, replay_last=replay_last, older_first=older_first)
    ctx = Context("default")
    ctx.install_sfr(scope="pe")
    traced, _, _ = executor.trace_launch(ctx, k, grid, args_of(ctx), {}, mode="timing", replay="on")
    return traced


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_kernels(), hw_variants(), st.one_of(st.none(), st.integers(25, 150)), st.booleans(),
       st.booleans())
# a review's case: the stores after a replay_last loop wait for its last two results, each read
# once as every result is (two iterations on): a jump skipped the iteration that makes one
@example(([("older", 0)], 0, 1, 14, 0, 1), DEFAULT, None, True, True)
def test_generated_loop_kernels_exact(case, hw, trips, replay_last, older_first):
    """test_tl_range's random loop bodies (loads, masked loads, GEMMs, vector ops, reductions,
    carried values, sends, pinned loads, views), half of them with long loops, half with their
    last iteration in the run (replay_last), the loop's last two results stored after it in
    either order; a replayed program's timing also with a row pool of one block (Sim._place)."""
    if trips is not None:
        case = (case[0], case[1], case[2], trips, *case[4:])
    traced = _loop_trace(case, replay_last=replay_last, older_first=older_first)
    _bodies(traced.program)
    off, on = _both(traced, hw, record_events=True)
    if isinstance(off, Exception):
        assert type(on) is type(off) and str(on) == str(off)
    else:
        assert_same(off, on)
        if traced.program.tiled is not None:
            # a pool of one block: every change of block drops the one read before
            for steady in (False, True):
                assert_same(off, api.simulate(hw, traced.neighbours, traced.program, steady=steady,
                                              record_events=True, row_slots=1))


def test_a_generated_loop_kernel_jumps():
    # a body of a load, a GEMM, vector work, a send from PE 0 to PE 1 and a carried accumulator:
    # 200 iterations, most of them jumped
    case = ([("load", 0), ("dot", 0x10), ("send", 0), ("carry", 0), ("exp", 2)], 0, 1, 200, 1, 5)
    traced = _loop_trace(case)
    off, on = _both(traced, DEFAULT, record_events=True)
    assert_same(off, on)
    assert on.steady_commands > 0.9 * len(on.cmd_end)


def test_a_unit_past_the_loop_stops_the_jumps():
    """A review's case (hypothesis, test_tl_range): a pinned load, an add of the last two
    iterations' results (`a + older`) and a store per iteration, 23 iterations. The add chain
    needs no load, so the vector unit runs through the loop and past it while the DMA unit is
    in its middle; the two handles after the loop (`last`, `older`) are stored there. The
    loop's second-to-last result is read by the next iteration's add, its own store and the
    store after the loop: as many readers as any other result, but the vector unit has already
    done the add, so it has two reads to go, not one. A jump copied the reads left from a
    result of an earlier iteration: one too few, so the result was freed as its loop store
    ended (cycle 6,795), not the store after the loop (7,248), and PE 0's peak SRAM came out
    6,656 bytes instead of 6,912 (start and end cycles all right). A unit whose
    last command is past the run, having run through it, now sets the window to the run's end
    (_ff_passed): no jump from there. The same kernel with 40 iterations jumped 112 commands,
    exactly, before; none now (the same rule)."""
    for trips in (23, 40):
        case = ([("pinned", 0), ("lag2", 0), ("store", 244)], 0, 1, trips, 2, 1)
        traced = _loop_trace(case)
        off, on = _both(traced, DEFAULT, record_events=True)
        assert_same(off, on)
        assert on.steady_commands == 0
    # the loops the jumps are for keep them: every unit within the loop until its end
    case = ([("load", 0), ("dot", 0x10), ("send", 0), ("carry", 0), ("exp", 2)], 0, 1, 200, 1, 5)
    assert _both(_loop_trace(case), DEFAULT)[1].steady_commands > 0


def _swap_lag2(x_ptr, o_ptr, n, *, tl):
    a = tl.load(x_ptr, shape=(8, 8))
    b = tl.zeros((8, 8), "f32")
    for _ in tl.range(0, n, replay_last=True):
        a, b = b, tl.exp(a)  # each iteration reads the result of two iterations back
    tl.store(o_ptr, a)  # the DMA unit parks here from the start, waiting for the loop's
    tl.store(o_ptr, b)  # second-to-last result


def test_a_unit_parked_past_the_loop_waiting_for_its_tensor_stops_the_jump_before_it():
    """A review's case: the stores after a replay_last loop wait (DMA parked past the run: it
    does not move on with a jump) for the loop's last two results. Each is read once, by the
    store, as every other result is read once by the exp two iterations on, so the reader
    counts did not stop a jump: it skipped the iteration that makes the awaited tensor, whose
    end is what wakes the unit, and the launch ended in a DeadlockError at cycle 247 for every
    even trip count from 8 (537 cycles with steady=False). A jump now stops before the
    iteration making a tensor a unit parked past the run waits for."""
    jumped = 0
    for n in (*range(3, 21), 64):
        ctx = Context("default")
        x, o = ctx.empty((8, 8), "f32"), ctx.empty((8, 8), "f32")
        traced = executor.trace_launch(ctx, _swap_lag2, (1, 1), (x, o, n), {}, mode="timing")[0]
        off, on = _both(traced, DEFAULT, record_events=True)
        assert not isinstance(on, Exception), (n, on)
        assert_same(off, on)
        jumped += on.steady_commands
    assert jumped > 0  # (the iterations before the awaited one still jump)


def _short_then_long(x_ptr, o_ptr, n0, n1, *, tl):
    acc = tl.zeros((16, 16), "f32")
    a = b = acc
    for i in tl.range(0, n0 if tl.program_id(0) == 0 else n1):
        x = tl.load(x_ptr + i * 1024, shape=(16, 16), after=a)
        y = tl.exp(x)
        acc = acc + y
        a, b = b, y
    tl.store(o_ptr, acc)


def test_a_short_loop_on_the_first_pe_leaves_the_others_jumping():
    """A review's case (speed only): the reference PE whose iterations set the snapshots was the
    first with a loop, and when its loop ended no other PE's was taken: PE 0's 8 iterations
    left PE 1's 4,000 unjumped (0 of 12,028 commands). Any PE's loop not run through yet is
    taken now; exact as ever."""
    for n0 in (0, 8):
        ctx = Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
        x, o = ctx.empty((4010 * 16, 16), "f32"), ctx.empty((16, 16), "f32")
        traced = executor.trace_launch(ctx, _short_then_long, (2, 1), (x, o, n0, 4000), {}, mode="timing")[0]
        off, on = _both(traced, ctx.hw, record_events=True)
        assert_same(off, on)
        assert on.steady_commands > 0.9 * len(on.cmd_end), n0


def test_growing_state_is_never_jumped():
    # a pinned load per iteration: SRAM in use grows every iteration, so no two iterations start
    # from the same state and nothing is jumped (and the result is still the run's); the search
    # backs off: snapshots every 2nd, 4th, 8th ... iteration, O(log iterations) of them
    for trips in (200, 20000):
        case = ([("load", 0), ("dot", 0x10), ("pinned", 1), ("exp", 2)], 0, 1, trips, 1, 5)
        traced = _loop_trace(case)
        off, on = _both(traced, DEFAULT)
        assert_same(off, on)
        assert on.steady_commands == 0
        assert 0 < on.steady_snapshots <= 4 * (trips.bit_length() + 1)


def test_cycle_guard_inside_a_jumped_stretch():
    traced = _trace_panel("single_user_prefill", MESH8)
    full = traced.time(MESH8, steady=False).cycles
    for limit in (full // 3, full // 2 + 7, full - 1):
        off, on = _both(traced, MESH8, max_cycles=limit)
        assert isinstance(off, MaxCyclesError) and isinstance(on, MaxCyclesError)
        assert str(on) == str(off) and on.cycle == off.cycle


def ring_loop(x_ptr, o_ptr, n, *, tl):
    """4 PEs in an SFR ring: each iteration sends two 4 KB messages east and receives two from
    the west, with loads, stores and vector work around them (the adversarial review's case of a
    guard inside a jumped stretch)."""
    acc = tl.zeros((32, 32), "f32")
    for i in tl.range(0, n, 2):
        tl.store(o_ptr, acc)
        tl.send(dir="E", src=acc)
        x = tl.load(x_ptr + i * 32 * 32 * 4, shape=(32, 32), after=acc)
        r = tl.recv(dir="W", shape=(32, 32), dtype="f32")
        tl.send(dir="E", src=x)
        r2 = tl.recv(dir="W", shape=(32, 32), dtype="f32")
        acc = tl.exp(acc + r) + r2
    tl.store(o_ptr, acc)


def test_cycle_guard_at_every_cycle_of_a_ring_loop():
    """Train detail computes a link's packets ahead, up to the guard: a jump must stop where a
    stretch would have computed past it. For every guard in a span of the run: the same error at
    the same cycle (which is the first event past the guard), or none in both."""
    ctx = Context("default", overrides={"n_cubes": 1, "pes_per_cube": 4})
    ctx.install_sfr(scope="pe", ring=True)
    args = (ctx.empty((120 * 32, 32), "f32"), ctx.empty((32, 32), "f32"), 120)
    traced, _, _ = executor.trace_launch(ctx, ring_loop, (4, 1), args, {}, mode="timing", replay="on")
    off, on = _both(traced, ctx.hw)
    assert_same(off, on)
    assert on.steady_commands > 0
    span = off.cycles // 3
    for limit in range(span, span + 1500):
        a, b = _both(traced, ctx.hw, max_cycles=limit)
        assert type(a) is type(b) and str(a) == str(b), limit


B16 = 16
BLK16 = B16 * B16 * 4


def gated_line(x_ptr, o_ptr, n, *, tl):
    """Two cubes of an open line: cube 0 sends a tensor from before the loop east every
    iteration, cube 1 receives it gated on the load of two iterations back, with loads gated
    alike (a review's case: with a one-packet receive queue the send's packets are computed
    ahead of the heap, so a stretch's packet can start past the guard with no event there)."""
    cube = tl.program_id(1)
    w2 = tl.load(x_ptr + BLK16, shape=(B16, B16))
    older = tl.load(x_ptr, shape=(B16, B16))
    last = w2
    for i in tl.range(0, n):
        if cube == 0:
            tl.send(dir="E", src=w2)
        else:
            tl.recv(dir="W", shape=(B16, B16), dtype="f32", after=older)
        a = tl.load(x_ptr + (i + 1) * BLK16, shape=(B16, B16))
        tl.load(x_ptr + (i + 2) * BLK16, shape=(B16, B16))
        x = tl.load(x_ptr + i * BLK16, shape=(B16, 2 * B16), after=older)
        a + tl.max(x, axis=1)
        y = tl.load(x_ptr + (i + 2) * BLK16, shape=(B16, B16), after=older)
        older, last = last, y
    tl.store(o_ptr, last)
    tl.store(o_ptr, older)


def test_cycle_guard_where_a_link_computed_packets_ahead():
    """A jump moves on the packets a link computed ahead (the wire busy to tx_e_prev) as well
    as the heap's events: it must not take the run past a guard one of those packets would
    have tripped. For guards over a third of the run, and every guard in the window where
    the heap alone allowed such a jump: the same error at the same cycle, or none in both."""
    ctx = Context("default", overrides={"n_cubes": 4, "pes_per_cube": 2})
    ctx.install_sfr(scope="cube")
    n = 20
    args = (ctx.empty(((n + 8) * B16, B16), "f32"), ctx.empty((B16, B16), "f32"), n)
    traced, _, _ = executor.trace_launch(ctx, gated_line, (1, 2), args, {}, mode="timing", replay="on")
    hw = ctx.hw.with_overrides({"link.rx_queue_packets": 1})
    off, on = _both(traced, hw)
    assert_same(off, on)
    assert on.steady_commands > 0
    full = off.cycles
    for limit in [*range(full * 3 // 5, full * 3 // 5 + 400), *range(1, full, 97)]:
        a, b = _both(traced, hw, max_cycles=limit)
        assert type(a) is type(b) and str(a) == str(b), limit
        assert getattr(a, "cycle", None) == getattr(b, "cycle", None), limit


def stuck_after_loop(x_ptr, o_ptr, n, *, tl):
    """A long repeating loop, then PEs 0 and 1 each wait for the other's message before sending
    their own: a deadlock."""
    acc = tl.zeros((16, 16), "f32")
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * 16 * 16 * 4, shape=(16, 16))
        acc = tl.dot(x, x, acc=acc)
    if tl.num_programs(0) == 2:
        port = "E" if tl.program_id(0) == 0 else "W"
        r = tl.recv(dir=port, shape=(16, 16), dtype="f32")
        tl.send(dir=port, src=r + acc)
    tl.store(o_ptr, acc)


def test_deadlock_after_jumps_reported_the_same():
    ctx = Context("default")
    ctx.install_sfr(scope="pe")
    n = 120
    args = (ctx.empty((n * 16, 16), "f32"), ctx.empty((16, 16), "f32"), n)
    traced, _, _ = executor.trace_launch(ctx, stuck_after_loop, (2, 1), args, {}, mode="timing",
                                         replay="on")
    off, on = _both(traced, ctx.hw)
    assert isinstance(off, DeadlockError) and isinstance(on, DeadlockError)
    assert str(on) == str(off)
    assert off.blocked == on.blocked


def _bodies(program):
    """The program's steady-state runs as simulate finds them (a compact program's tilings
    trusted where they repeat by construction), asserted equal to those checked on every row
    of the expanded array."""
    fast = api._steady_bodies(None, program.compact) if program.compact is not None else []
    full = api._steady_bodies(program.commands, program.compact)
    if program.compact is not None:
        assert len(fast) == len(full)
        for a, b in zip(fast, full):
            assert a[:6] == b[:6] and np.array_equal(a[6], b[6])
    return full


def _regions(program):
    units = np.ascontiguousarray(program.commands["unit"], np.uint8)
    return api._steady_regions(_bodies(program), program, units)


def test_regions_repeat_exactly():
    """Every region _steady_regions hands the engine really repeats, checked on all its
    iterations: the same commands, results `made` further on per iteration, each operand fixed
    or `made` further on (nested tl.range loops: the inner loop's copies inside the outer
    loop's copies are regions too)."""
    traced = _trace_panel("single_user_prefill", MESH8)
    program = traced.program
    table, pe_off, fixed = _regions(program)
    c = program.commands
    assert len(table) >= 8 and np.all(np.diff(table[:, 1]) > 0)  # one per (PE, ring step) at least
    assert np.array_equal(pe_off, np.searchsorted(table[:, 0], np.arange(MESH8.n_pes + 1)))
    t_off = program.tensor_offsets
    for pe, c0, n, iters, t0, made, dlo, f0, f1, mid, u0 in table.tolist():
        assert program.cmd_offsets[pe] <= c0 and c0 + n * iters <= program.cmd_offsets[pe + 1]
        body = c[c0:c0 + n]
        assert u0 == body["unit"][0]
        # the middle trigger: on the first command's unit, the nearest such to n // 2; else 0
        on_unit = np.flatnonzero(body["unit"][1:] == body["unit"][0]) + 1
        if len(on_unit) and iters <= api.MID_ITERS_MAX:
            assert 0 < mid < n and body["unit"][mid] == body["unit"][0]
            assert abs(mid - n // 2) == np.abs(on_unit - n // 2).min()
        else:
            assert mid == 0
        fx = set(fixed[f0:f1].tolist())
        for i in range(1, iters):
            it = c[c0 + i * n:c0 + (i + 1) * n]
            for f in SAME_FIELDS:
                assert np.array_equal(it[f], body[f])
            d = body["dst"] >= 0
            assert np.array_equal(it["dst"][d], body["dst"][d] + i * made)
            for f in ("src0", "src1", "src2"):
                v0, v = body[f].astype(np.int64), it[f].astype(np.int64)
                used = v0 >= 0
                moved = v - v0 == i * made
                same = (v == v0) & np.isin(v0 + t_off[pe], list(fx))
                assert np.all(~used | moved | same)
                assert np.all((v0[used & moved] - (t0 - t_off[pe])) // made >= dlo)


def nest(x_ptr, o_ptr, n_outer, n_inner, spread, *, tl):
    """tl.range in tl.range, the inner loop's trip count n_inner + spread * PE (a ring's steps
    differ by rank so)."""
    pe = tl.program_id(0)
    acc = tl.zeros((8, 8), "f32")
    for g in tl.range(0, n_outer):
        h = tl.load(x_ptr + g * 256, shape=(8, 8))
        for j in tl.range(0, n_inner + spread * pe):
            h = tl.maximum(h, tl.load(x_ptr + (g + j) * 256, shape=(8, 8))) + acc
        acc = tl.dot(h, tl.trans(h), acc=acc)
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("n_outer,n_inner,spread,level", [
    (6, 40, 0, "inner"),   # the inner loop repeats longer: its runs, in every outer iteration
    (40, 6, 0, "outer"),   # the outer loop repeats longer: its runs, the inner loops inside them
    (12, 5, 6, "outer"),   # the inner loop's trip count differs by PE (5 .. 47): scored by its
                           # shortest (a run of 2 iterations), the outer loop (9) is chosen
])
def test_one_loop_of_a_nest_is_chosen(n_outer, n_inner, spread, level):
    """The engine jumps within the runs of one loop of a nest, the same on every PE: the loop
    whose fewest iterations in a run are the most (api._tiled_runs). Its runs alone are
    regions, and the jumps give the run's result exactly."""
    ctx = Context("default")
    ctx.install_sfr(scope="pe")
    rows = n_outer + n_inner + spread * 8 + 1
    args = (ctx.empty((rows * 8, 32), "f32"), ctx.empty((8, 8), "f32"), n_outer, n_inner, spread)
    traced, _, _ = executor.trace_launch(ctx, nest, (8, 1), args, {}, mode="timing", replay="on")
    program = traced.program
    table, _, _ = _regions(program)
    n_pes = int(np.count_nonzero(np.diff(program.cmd_offsets)))
    trips = n_outer if level == "outer" else n_inner
    # a run: every iteration but the last (traced apart): iteration 0 repeats the body too, as
    # it reads the h made just before the loop where later ones read the previous iteration's
    assert set(table[:, 3].tolist()) == {trips - 1}
    body = np.diff(program.cmd_offsets)[0] // n_outer  # about an outer iteration's commands
    assert np.all(table[:, 2] >= body // 2) if level == "outer" else np.all(table[:, 2] < body // 4)
    assert len(table) == (n_pes if level == "outer" else n_pes * n_outer)
    off, on = _both(traced, DEFAULT)
    assert_same(off, on)
    if not spread:  # (PEs alike: the machine repeats; unlike, each drifts from the others)
        assert on.steady_commands > 0



def test_a_program_without_tilings_has_no_regions():
    ctx = Context("default")
    ctx.install_sfr(scope="pe")
    args = (ctx.empty((64 * 16, 16), "f32"), ctx.empty((16, 16), "f32"), 64)
    off, _, _ = executor.trace_launch(ctx, stuck_after_loop, (1, 1), args, {}, mode="timing",
                                      replay="off")
    assert off.program.compact is None and _regions(off.program) is None


def test_a_changed_command_loses_its_region_only():
    """The tilings propose regions; the rows decide. A command changed in the middle of a
    region's 9th iteration (an array edited after tracing) drops that region and keeps the rest,
    and the timing stays exact."""
    traced = _trace_panel("single_user_prefill", MESH8)
    p = traced.program
    bodies = api._steady_bodies(p.commands, p.compact)
    c0, n, iters = bodies[3][:3]
    changed = p.commands.copy()
    changed["line"][c0 + 8 * n + 2] += 1  # any field: the rows are compared whole
    after = api._steady_bodies(changed, p.compact)
    assert [b[:3] for b in after] == [b[:3] for i, b in enumerate(bodies) if i != 3]


def _from_the_body(runs):
    """api._tiled_runs as it was: every run from its tiling's body, the iterations before it
    left out."""
    return [(c0 + pr * n, n, it - pr, o, 0) for c0, n, it, o, pr in runs]


def test_a_run_starts_before_the_replayed_body(monkeypatch):
    """A run starts at the loop's first iteration where that repeats the body B, else at the
    proof's A (api.PROBE_BACK): both precede the iterations replay copied from B, and the engine,
    which compares its state at two iterations of a run, finds the repetition that much sooner:
    more commands jumped, the same result."""
    traced = _trace_panel("single_user_prefill", MESH8, context=8192)
    p = traced.program
    runs = api._tiled_runs(p.compact.tiles, p.compact.loops)
    kept = {b[0]: b[:3] for b in api._steady_bodies(p.commands, p.compact)}
    tile_runs = [r for r in runs if r[3][0] == "tile"]
    # (proposed from PROBE_BACK iterations before the body B at c0 + probe * n, if the
    # launch's commands reach back so far)
    assert tile_runs and all(pr == min(api.PROBE_BACK, (c0 + pr * n) // n)
                             for c0, n, _, _, pr in tile_runs)
    # the prefill's query-block loop: in most K/V groups iteration 0 repeats the body; in the
    # others the run starts at A
    from_0 = [r for r in tile_runs if kept.get(r[0]) == tuple(r[:3])]
    from_a = [r for r in tile_runs if kept.get(r[0] + r[1]) == (r[0] + r[1], r[1], r[2] - 1)]
    assert from_0 and from_a and len(from_0) + len(from_a) == len(tile_runs)
    off, on = _both(traced, MESH8)
    assert_same(off, on)
    tiled_runs = api._tiled_runs
    monkeypatch.setattr(api, "_tiled_runs", lambda *a: _from_the_body(tiled_runs(*a)))
    late = _trace_panel("single_user_prefill", MESH8, context=8192).time(MESH8).engine
    assert_same(off, late)
    assert on.steady_commands > late.steady_commands


def test_a_run_whose_first_iteration_does_not_repeat_starts_later():
    """The tilings propose a run from before the replayed body; the rows decide: a command
    changed in its first iteration only (an array edited after tracing) leaves the run from the
    next one, the rest as they were."""
    traced = _trace_panel("multi_user_prefill", MESH8)
    p = traced.program
    bodies = api._steady_bodies(p.commands, p.compact)
    starts = {t[0] for t in p.compact.tiles}
    k = next(i for i, b in enumerate(bodies) if b[0] + b[1] in starts)
    c0, n, iters = bodies[k][:3]
    changed = p.commands.copy()
    changed["line"][c0 + 2] += 1
    after = api._steady_bodies(changed, p.compact)
    assert [b[:3] for b in after] == [b[:3] if i != k else (c0 + n, n, iters - 1)
                                      for i, b in enumerate(bodies)]


def test_every_state_field_has_a_place_in_the_snapshot():
    """The snapshot's claim, "nothing else is left out", kept true as the engine grows: every field
    of the state structs in _types.pxd is listed in _engine.STEADY_FIELDS with how the snapshot
    writes it (a new field fails here until the snapshot and the jump handle it)."""
    import re
    from pathlib import Path

    from kernbench._core import _engine
    src = (Path(__file__).resolve().parents[1] / "kernbench" / "_core" / "_types.pxd").read_text()
    for struct, fields in _engine.STEADY_FIELDS.items():
        body = re.search(rf"ctypedef struct {struct}:\n((?:    .*\n|\s*\n)+)", src).group(1)
        declared = re.findall(r"^    [\w ]+?\*?\s*\*?(\w+)(?:\[\w+\])?\s*(?:#.*)?$", body, re.M)
        assert set(declared) == set(fields), (struct, set(declared) ^ set(fields))
        assert set(fields.values()) <= {"time", "past-bound", "cmd", "tensor", "queue", "packet",
                                        "ring", "gen", "counter", "value", "static"}


def test_two_level_decode_exact():
    """The shipped kernel the diag panels do not launch: two-level decode over 2 cubes."""
    from kernbench.kernels.attention import attention_decode_two_level_kernel as kernel
    ctx = Context("default", overrides={"n_cubes": 2, "pes_per_cube": 4})
    ctx.install_sfr(scope="two_level")
    S, h_q, h_kv, d = 2048, 64, 8, 128
    args = (ctx.empty((1, h_q, d), "f16"), ctx.empty((S, h_kv, d), "f16"), ctx.empty((S, h_kv, d), "f16"),
            ctx.empty((1, h_q, d), "f16"), 1, S, h_q, h_kv, d, 4, 2, 128)
    traced, _, _ = executor.trace_launch(ctx, kernel, (4, 2), args, {}, mode="timing")
    off, on = _both(traced, ctx.hw, record_events=True)
    assert_same(off, on)


def test_skipped_start_and_end_written_once_read_from_threads():
    """A jump's commands get their start and end cycles when the arrays are first read
    (EngineResult.start_end_copies): eight threads reading at once all see them whole, and a
    pickle carries them written."""
    import pickle
    import threading

    traced = _trace_panel("single_user_prefill", MESH8)
    off, on = _both(traced, MESH8)
    assert on.start_end_copies is not None and on.steady_commands > 0
    assert f"{on.cycles:,} cycles" in repr(on)
    assert on.start_end_copies is not None  # (printing a result writes nothing)
    seen, go = [], threading.Barrier(8)

    def read():
        go.wait()
        seen.append((on.cmd_end.tobytes(), on.cmd_start.tobytes()))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert on.start_end_copies is None
    assert set(seen) == {(off.cmd_end.tobytes(), off.cmd_start.tobytes())}
    _, again = _both(traced, MESH8)
    back = pickle.loads(pickle.dumps(again))
    assert back.cmd_start.tobytes() == off.cmd_start.tobytes() and back.start_end_copies is None


def test_an_array_assigned_before_the_first_read_is_left_as_assigned():
    traced = _trace_panel("single_user_prefill", MESH8)
    off, on = _both(traced, MESH8)
    assert on.start_end_copies is not None
    mine = np.zeros(len(on.cmd_start), np.int64)
    on.cmd_start = mine  # the jumps' copies go to the engine's arrays, never to this one
    assert on.cmd_end.tobytes() == off.cmd_end.tobytes()
    assert on.cmd_start is mine and not mine.any()


def test_replaced_arrays_are_never_written():
    """dataclasses.replace with both arrays given: the new result's pending copies go to the
    engine's arrays, which the original result reads, not to the arrays given."""
    import dataclasses

    traced = _trace_panel("single_user_prefill", MESH8)
    off, on = _both(traced, MESH8)
    n = traced.program.n_commands  # (reading on.cmd_start would write the copies)
    z1, z2 = np.zeros(n, np.int64), np.zeros(n, np.int64)
    assert on.start_end_copies is not None
    new = dataclasses.replace(on, cmd_start=z1, cmd_end=z2)
    assert new.cmd_start is z1 and new.cmd_end is z2 and not z1.any() and not z2.any()
    assert on.cmd_start.tobytes() == off.cmd_start.tobytes()


def test_threads_timing_one_traced_launch_at_once():
    """Nine threads time a freshly traced compact program at once: they share the rows the
    engine reads (kept with the program's tables), each row only ever written whole."""
    import threading

    ref = _both(_trace_panel("single_user_prefill", MESH8, context=2048), MESH8)[0]
    for _ in range(3):
        traced = _trace_panel("single_user_prefill", MESH8, context=2048)
        out, go = [None] * 9, threading.Barrier(9)

        def run(i, out=out, go=go, traced=traced):
            go.wait()
            try:
                out[i] = traced.time(MESH8, steady=bool(i % 2))
            except Exception as e:  # noqa: BLE001 (compared below)
                out[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in out:
            assert not isinstance(r, Exception), r
            assert r.cycles == ref.cycles and r.engine.cmd_end.tobytes() == ref.cmd_end.tobytes()


def _run_step_numpy(b0, b1):
    """The reading of a run's second iteration against its first that api._run_body made with
    numpy before _replay.run_step: (made, dlo, first, fixed (unique), shift) or None."""
    if any(not np.array_equal(b0[f], b1[f]) for f in SAME_FIELDS):
        return None
    d0, d1 = b0["dst"].astype(np.int64), b1["dst"].astype(np.int64)
    made = int((d0 >= 0).sum())
    if made == 0 or not np.array_equal(d0 >= 0, d1 >= 0):
        return None
    first = int(d0[d0 >= 0][0])
    if (not np.array_equal(d0[d0 >= 0], np.arange(first, first + made))
            or not np.array_equal(d1[d1 >= 0], d0[d0 >= 0] + made)):
        return None
    dlo, fixed, shift = 0, [], []
    for f in ("src0", "src1", "src2"):
        v0, v1 = b0[f].astype(np.int64), b1[f].astype(np.int64)
        used = v0 >= 0
        moved = used & (v1 - v0 == made)
        same_ = used & (v1 == v0)
        if not np.array_equal(used, v1 >= 0) or np.any(used & ~moved & ~same_):
            return None
        if moved.any():
            dlo = min(dlo, int(((v0[moved] - first) // made).min()))
        fixed.append(v0[same_])
        shift.append(moved)
    return made, dlo, first, np.unique(np.concatenate(fixed)), np.stack(shift, axis=1).astype(np.uint8)


@st.composite
def _run_pairs(draw):
    """Two iterations of a run: b0 random (results numbered from ``first``, operands fixed,
    of earlier iterations or of this one), b1 = b0 moved on by made, then perhaps one change
    (a field, a result, an operand) that a repeating run would not have."""
    from kernbench.common.pe_commands import COMMAND_DTYPE

    n = draw(st.integers(1, 12))
    first = draw(st.integers(0, 40))
    b0 = np.zeros(n, COMMAND_DTYPE)
    has_dst = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    made = sum(has_dst)
    nxt = first
    for j in range(n):
        b0[j]["opcode"] = draw(st.integers(0, 6))
        b0[j]["m"] = draw(st.integers(0, 3))
        b0[j]["dst"] = nxt if has_dst[j] else -1
        nxt += has_dst[j]
        for f in ("src0", "src1", "src2"):
            b0[j][f] = draw(st.sampled_from([-1, draw(st.integers(0, max(first - 1, 0))),
                                             first + draw(st.integers(-3 * max(made, 1), max(made, 1)))]))
    b1 = b0.copy()
    b1["dst"] = np.where(b0["dst"] >= 0, b0["dst"] + made, -1)
    for j in range(n):
        for f in ("src0", "src1", "src2"):
            v = int(b0[j][f])
            if v >= 0 and draw(st.booleans()):  # moved on (else the same: fixed)
                b1[j][f] = v + made
    change = draw(st.sampled_from([None, None, "field", "dst", "operand", "drop"]))
    j = draw(st.integers(0, n - 1))
    if change == "field":
        b1[j]["nbytes"] += 1
    elif change == "dst":
        b1[j]["dst"] = -1 if b1[j]["dst"] >= 0 else first
    elif change == "operand":
        b1[j]["src1"] = int(b1[j]["src1"]) + draw(st.integers(1, 5))
    elif change == "drop":
        b1[j]["src0"] = -1
    return b0, b1


@settings(max_examples=400, deadline=None)
@given(_run_pairs())
def test_run_step_in_c_reads_a_run_as_numpy_did(pair):
    """_replay.run_step (the steady-state regions' reading of a run, one C pass) against the
    numpy formulation it replaced: the same refusal, or the same made, dlo, first, fixed
    operands and operand shifts."""
    from kernbench._core import _replay

    b0, b1 = pair
    want = _run_step_numpy(b0, b1)
    shift = np.empty((len(b0), 3), np.uint8)
    fixed = np.empty(3 * len(b0), np.int64)
    got = _replay.run_step(b0, b1, shift, fixed)
    assert (got is None) == (want is None)
    if got is not None:
        made, dlo, first, nf = got
        assert (made, dlo, first) == want[:3]
        assert np.array_equal(np.unique(fixed[:nf]), want[3]) and np.array_equal(shift, want[4])
    with pytest.raises(ValueError, match="do not fit"):
        _replay.run_step(b0, b1, shift[:0], fixed)


def test_a_run_never_starts_in_the_stream_before_its_own():
    """A loop at the head of a PE's stream whose first iteration is shorter than the rest (no
    pipeline to drain into it): PROBE_BACK iterations of the body's length before the body
    reach into the previous PE's stream, where they overlap that stream's last run, and one
    of the two was dropped, so the machine never repeated as a whole. Tilings (a, z, lo, R, D,
    shift, made): PE 0's stream is rows 0..100, PE 1's 100..200."""
    shift = np.zeros((10, 3), np.uint8)
    tiles = [(40, 50, 50, 5, 7, shift, 7),  # PE 0: body 40..50, copies to 100
             (115, 125, 125, 7, 7, shift, 7)]  # PE 1: body 15 rows into its stream
    old = api._tiled_runs(tiles)  # (one stream assumed: the run from row 95 is dropped)
    assert [r[0] for r in old] == [20]
    runs = api._tiled_runs(tiles, None, np.array([0, 100, 200]))
    # PE 1's run starts one iteration before its body (two would be row 95)
    assert [(c0, n, it, pr) for c0, n, it, _, pr in runs] == [(20, 10, 8, 2), (105, 10, 9, 1)]


def test_the_causal_prefill_on_a_line_of_cubes_jumps():
    """The causal multi-user prefill (its K/V groups' loop replays its last iteration too, so
    each rank's run reaches the end of its stream, and the next rank's loop starts 20-odd rows
    short of two body lengths into its stream): every rank has its run, the engine jumps,
    and the result is the run without jumps."""
    traced = _trace_panel("multi_user_prefill", MESH8, context=16384, causal=True)
    p = traced.program
    bodies = api._steady_bodies(None, p.compact, p.cmd_offsets)
    working = np.flatnonzero(np.diff(p.cmd_offsets))
    assert sorted(int(np.searchsorted(p.cmd_offsets, b[0], side="right") - 1) for b in bodies) \
        == working.tolist()
    off, on = _both(traced, MESH8)
    assert_same(off, on)
    assert on.steady_commands > 0


MESH64 = load_hw("mesh64")


@pytest.mark.parametrize("name,hw,context,causal", [
    ("single_user_prefill", MESH8, 8192, True),
    ("multi_user_prefill", MESH8, 16384, True),
    ("multi_user_prefill", MESH64, 4096, True),
    ("single_user_prefill", MESH8, 8192, False),
    ("multi_user_prefill", MESH64, 4096, False),
], ids=["causal-1cube", "causal-8cubes", "causal-64cubes", "plain-1cube", "plain-64cubes"])
def test_the_middle_trigger_never_jumps_less(monkeypatch, name, hw, context, causal):
    """The engine also snapshots the middles of a loop's iterations 0 and 1 (RG_MID,
    _engine Sim._ff_middle) and jumps from 1.5 when they repeat and the jump is at least
    ITERS - 3 iterations. Timed with the middles (api._mid_trigger) and with the starts only
    (it answering 0): the same results, and never fewer commands jumped."""
    traced = _trace_panel(name, hw, context=context, causal=causal)
    both = traced.time(hw).engine
    monkeypatch.setattr(api, "_mid_trigger", lambda units, c0, n, iters: 0)
    traced._prepared.clear()  # (the region table is kept with the engine's tables)
    starts = traced.time(hw).engine
    assert_same(starts, both)
    assert both.steady_commands >= starts.steady_commands


def test_a_loop_repeating_from_its_first_middle_jumps_from_there():
    """Causal prefill on one cube at 8K: each PE's stream is one region, its 8 K/V groups (the
    loop replays groups 2 .. 7 and its runs start at group 0, _tiled_runs). Group 0 starts on
    an idle machine, so the states at the starts of groups 1 and 2 are the first starts that
    repeat: a jump from 2 whose windows end in group 2 takes 8 - 1 - 2 = 5 groups. The states
    at the middles of groups 0 and 1 already repeat, with every PE's window ending in group 1:
    a jump from 1.5 takes 8 - 1 - 1 = 6 groups (>= 8 - 3), 6/8 of the commands, and only the
    first 1.5 groups and the last half run."""
    traced = _trace_panel("single_user_prefill", MESH8, context=8192, causal=True)
    p = traced.program
    table, _, _ = api._steady_regions(api._steady_bodies(None, p.compact, p.cmd_offsets), p,
                                      np.zeros(p.n_commands, np.uint8))
    working = np.flatnonzero(np.diff(p.cmd_offsets))
    assert table[:, 0].tolist() == working.tolist() and (table[:, 3] == 8).all()  # one run each
    assert (table[:, 1] == p.cmd_offsets[working]).all() and (table[:, 2] * 8 == np.diff(p.cmd_offsets)[working]).all()
    off, on = _both(traced, MESH8)
    assert_same(off, on)
    assert on.steady_commands * 8 == p.n_commands * 6


def vector_then_dma(x_ptr, o_ptr, *, tl):
    """Two loops of 8 iterations: vector work, then loads and stores that wait on nothing of it
    (a review's case): the DMA unit reaches the second loop while the vector unit is still in
    the first one's last iteration."""
    w = tl.full((32, 32), 1.0, "f32")
    acc = w
    for _ in tl.range(0, 8):
        a = acc * 0.5  # noqa: F841
        acc = w * 0.5
    last = w
    for i in tl.range(0, 8):
        last = tl.load(x_ptr + (11 + i) * 4096, shape=(32, 32), after=w)
        tl.store(o_ptr, w)
    tl.store(o_ptr, last)


def test_a_region_whose_first_triggers_already_issued_still_jumps(monkeypatch):
    """When the reference PE moves on to its next region, that region's first triggers (the
    middle of iteration 0, the start of iteration 1) may have issued already on their unit
    (RG_U0), which ran ahead: the engine takes the first one not yet issued (Sim._ff_first).
    A trigger taken as it comes, already issued, would never fire, and no snapshot would be
    taken again: nothing jumped (the table's unit column set to -1 shows it)."""
    ctx = Context("default")
    ctx.install_sfr(scope="pe", ring=False)
    x, o = ctx.empty((30 * 32, 32), "f32"), ctx.empty((32, 32), "f32")
    traced, _, _ = executor.trace_launch(ctx, vector_then_dma, (2, 1), (x, o), {}, mode="timing")
    off, on = _both(traced, DEFAULT, record_events=True)
    assert_same(off, on)
    assert on.steady_commands > 0
    regions = api._steady_regions

    def as_they_come(*args):
        table, pe_off, fixed = regions(*args)
        table = table.copy()
        table[:, 10] = -1
        return table, pe_off, fixed

    monkeypatch.setattr(api, "_steady_regions", as_they_come)
    traced._prepared.clear()
    blind = traced.time(DEFAULT, record_events=True).engine
    assert_same(off, blind)
    assert blind.steady_commands == 0


def small_nests(x_ptr, o_ptr, n_outer, n_inner, *, tl):
    """n_outer loops of n_inner iterations one after another, each a few 8 x 8 vector ops."""
    acc = tl.zeros((8, 8), "f32")
    for g in range(n_outer):
        h = acc
        for j in tl.range(0, n_inner):
            h = h * 0.5
            x = tl.load(x_ptr + (g + j) * 256, shape=(8, 8))
            h = h + x
        acc = acc + h
    tl.store(o_ptr, acc)


def test_middles_are_not_snapshotted_where_a_snapshot_costs_more(monkeypatch):
    """One PE of 512 (mesh64) runs 40 loops of 12 small iterations: a snapshot (every unit and
    link of the machine) is far longer than half an iteration's heap events, so after the first
    loop the engine takes no middle snapshots (Sim._ff_middle): about as many snapshots as
    with the starts only (40 loops x 2), where taking them would double it."""
    ctx = Context("mesh64")
    x, o = ctx.empty((54 * 8, 8), "f32"), ctx.empty((8, 8), "f32")
    traced, _, _ = executor.trace_launch(ctx, small_nests, (1, 1), (x, o, 40, 12), {}, mode="timing")
    hw = ctx.hw
    both = traced.time(hw).engine
    monkeypatch.setattr(api, "_mid_trigger", lambda units, c0, n, iters: 0)
    traced._prepared.clear()
    starts = traced.time(hw).engine
    assert_same(starts, both)
    assert starts.steady_snapshots == 80 and starts.steady_commands > 0
    assert both.steady_snapshots <= starts.steady_snapshots + 2


def test_a_deep_receive_queue_is_snapshotted_by_the_slots_used_and_jumps_exactly():
    """A review: with ``link.rx_queue_packets = 2**20`` every snapshot wrote each link's credit
    and arrival rings whole (16 MB a link), a tiny launch 75x slower and 30x the memory with
    steady on, and every jump turned them whole. A snapshot now reads only the slots of packets
    sent and writes those holding more than "not after now", a jump moves only those while the
    ring has not wrapped; the jumps found are the same as with a ring of 32. (A breaker then found
    many short loops quadratic: every snapshot read every packet sent. It reads the live
    packets, the newest, alone: below, 200 short ring loops.)"""
    from kernbench.kernels import attention_mesh_kv_kernel

    got = {}
    depths = (32, 1024, 2**20)  # (1,024: the packets sent pass the ring's size during a jump)
    for q_depth in depths:
        for steady in (False, True):
            ctx = kernbench.Context("default", overrides={"n_cubes": 1, "link.rx_queue_packets": q_depth})
            ctx.install_sfr("pe")
            s, hq, hkv, d = 128, 4, 2, 32
            q, k, v, o = (ctx.empty((s, h, d), "f16") for h in (hq, hkv, hkv, hq))
            got[q_depth, steady] = ctx.launch(attention_mesh_kv_kernel, (8, 1), q, k, v, o, s, s, hq, hkv, d,
                                              8, 0, 8, 16, mode="timing", steady=steady)
    for q_depth in depths:
        on, off = got[q_depth, True], got[q_depth, False]
        assert on.cycles == off.cycles and np.array_equal(on.unit_counters, off.unit_counters)
        assert np.array_equal(on.engine.cmd_end, off.engine.cmd_end)
        assert on.engine.steady_commands > 0
    assert got[32, True].engine.steady_commands == got[2**20, True].engine.steady_commands


def test_many_short_ring_loops_on_a_deep_queue_snapshot_only_the_packets_in_flight():
    """The breaker's case: 200 short tl.range loops of a ring, after which a link has sent
    100,000 packets, at Q = 2**20: every snapshot read each link's ring over every packet
    sent (1.3 s against 0.13 s with steady off). Exact on and off, at Q = 2**20 as at 32."""

    def reps_kernel(x_ptr, o_ptr, reps, n, *, tl):
        acc = tl.zeros((64, 64), "f32")  # 16 KB a message: 512 packets of 32 B
        for _ in range(reps):
            for _i in tl.range(0, n):
                tl.send(dir="E", src=acc)
                acc = acc + tl.recv(dir="W", shape=(64, 64), dtype="f32")
        tl.store(o_ptr, acc)

    got = {}
    for q_depth in (32, 2**20):
        for steady in (False, True):
            ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 4,
                                                          "link.rx_queue_packets": q_depth, "link.packet_bytes": 32})
            ctx.install_sfr(scope="pe", ring=True)
            x, o = ctx.empty((64,), "f32"), ctx.empty((64 * 64,), "f32")
            got[q_depth, steady] = ctx.launch(reps_kernel, (4, 1), x, o, 200, 8, mode="timing", steady=steady)
    for q_depth in (32, 2**20):
        on, off = got[q_depth, True], got[q_depth, False]
        assert on.cycles == off.cycles and np.array_equal(on.engine.cmd_end, off.engine.cmd_end)
        assert np.array_equal(on.unit_counters, off.unit_counters) and on.engine.steady_snapshots > 0
