"""Contended DMA in closed form (train detail) against burst-by-burst round robin (packet detail).

docs/hardware-model.md, "DMA engine and the cube memory channel": whenever the channel is free it
grants one burst to the next requesting PE after the one served last; a request arriving in the
cycle the channel frees competes for that grant. ``detail="packet"`` applies that rule burst by
burst (an arbitration event per burst). ``detail="train"`` computes the channel an epoch at a
time, from one change of the set of requesting PEs to the next (kernbench/_core/_dma.pyx). The
two must agree exactly: the same start and end cycle for every command (the event record), the
same counters and cycles, on random contention programs: 1-8 PEs per cube, several cubes, random
sizes (partial last bursts, single bursts, bursts of one cycle), random request times (requests in
the same cycle, on a grant, as another command ends, on an idle channel), loads and stores in
chains, mixed with GEMM, vector and link commands.
"""
import os

import numpy as np
import pytest
from engine_helpers import MAJOR_RESULT_FIELDS, Machine, assert_same_result
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import kernbench
from kernbench._core import DEBUG_BUILD
from kernbench.common.pe_commands import Opcode, VecOp
from kernbench.hw import SfrInstall, load_hw


@st.composite
def contention_hw(draw, max_cubes=3, max_pes_per_cube=8):
    """Random cubes, PEs per cube and DMA parameters: bursts of 1 byte to 1 KiB, one cycle or
    many, last bursts shorter than the others. The vector unit runs one lane with one cycle of
    latency, so a fill of n elements takes exactly n + 1 cycles (the tests time requests with it)."""
    return load_hw().with_overrides({
        "n_cubes": draw(st.integers(1, max_cubes)),
        "pes_per_cube": draw(st.integers(1, max_pes_per_cube)),
        "dma.burst_bytes": draw(st.one_of(st.sampled_from([1, 2, 64, 100, 512]), st.integers(1, 1024))),
        "dma.channel_bytes_per_cycle": draw(st.one_of(st.sampled_from([1, 32, 256, 4096]),
                                                      st.integers(1, 700))),
        "dma.latency_cycles": draw(st.one_of(st.just(1), st.integers(1, 60))),
        "vector.lanes": 1,
        "vector.pipeline_latency": 1,
        "gemm.rows": 4,
        "gemm.cols": 4,
        "link.packet_bytes": 64,
    })


@st.composite
def contention_machine(draw, max_cubes=3, max_pes_per_cube=8, max_items=7):
    """A Machine whose PEs issue loads and stores at chosen cycles, with GEMM and link work.

    A DMA command may wait (after=) on a fill of d elements (d + 1 cycles), so it requests the
    channel at a cycle the draw picks. Small delays and burst counts make requests collide: in
    one cycle, on a grant, on a finisher's last grant, as the channel frees, as a command ends."""
    hw = draw(contention_hw(max_cubes, max_pes_per_cube))
    B = hw.dma.burst_bytes
    m = Machine(hw, SfrInstall("pe"))
    nbr = m.neighbours()
    sizes = st.builds(lambda nb, rest: (nb - 1) * B + rest,
                      st.integers(1, 12), st.one_of(st.just(B), st.integers(1, B)))
    delays = st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(0, 80))
    for g in range(hw.n_pes):
        s = m[g]
        data = []  # tensors this PE has loaded (or filled)
        for _ in range(draw(st.integers(0, max_items))):
            kind = draw(st.sampled_from(["load", "load", "load", "store", "dot", "send"]))
            wait = -1
            if draw(st.booleans()):
                d = draw(delays)
                if d > 0:
                    wait = s.vec(VecOp.FILL, d, out_bytes=8)  # d + 1 cycles on the vector unit
            if kind == "load" or not data:
                data.append(s.load(draw(sizes), after=wait))
            elif kind == "store":
                src = data[draw(st.integers(0, len(data) - 1))]
                s.store(src, draw(sizes))
            elif kind == "dot":
                a = data[draw(st.integers(0, len(data) - 1))]
                data.append(s.dot(a, a, draw(st.integers(1, 9)), draw(st.integers(1, 9)),
                                  draw(st.integers(1, 40))))
            elif nbr[g, 0] >= 0:  # send E what was loaded; the neighbour posts the recv at once
                nbytes = draw(st.integers(1, 300))
                s.send("E", data[-1], nbytes)
                m[int(nbr[g, 0])].recv("W", nbytes)
    return m


def _describe(machine) -> str:
    """The launch in words, for hypothesis to print with a falsifying example."""
    hw = machine.hw
    out = [f"{hw.n_cubes} cube(s) x {hw.pes_per_cube} PEs, burst {hw.dma.burst_bytes} B, channel "
           f"{hw.dma.channel_bytes_per_cycle} B/cycle, latency {hw.dma.latency_cycles}"]
    c = machine.program().commands
    prog = machine.program()
    for g in range(hw.n_pes):
        lo, hi = int(prog.cmd_offsets[g]), int(prog.cmd_offsets[g + 1])
        if hi > lo:
            ops = [f"#{i - lo} {Opcode(int(c['opcode'][i])).name.lower()} "
                   f"{int(c['nbytes'][i]) or int(c['n'][i])} src {int(c['src0'][i])} dst {int(c['dst'][i])}"
                   for i in range(lo, hi)]
            out.append(f"PE {g}: " + "; ".join(ops))
    return "\n".join(out)


def _both(machine):
    return [machine.run(detail=d, record_events=True).res for d in ("train", "packet")]


def _assert_exact(train, packet):
    assert_same_result(train, packet, MAJOR_RESULT_FIELDS)
    np.testing.assert_array_equal(train.events, packet.events, err_msg="event record differs")
    if DEBUG_BUILD:  # the epochs' own invariants, checked on every step
        assert train.debug["dma_invariant_errors"] == 0
        assert train.debug["time_regressions"] == packet.debug["time_regressions"] == 0


def _train_events_bound(machine):
    """Train detail pops one completion event per command, plus at most one cancelled channel
    event per DMA request: the heap never sees a burst."""
    c = machine.program().commands
    n_dma = int(((c["opcode"] == Opcode.LOAD) | (c["opcode"] == Opcode.STORE)).sum())
    return len(c) + n_dma


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contention_machine())
def test_random_contention_train_equals_burst_by_burst(machine):
    note(_describe(machine))
    train, packet = _both(machine)
    _assert_exact(train, packet)
    assert train.heap_events <= _train_events_bound(machine)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contention_hw(max_cubes=2), st.integers(1, 40), st.integers(0, 3))
def test_lockstep_requests(hw, period, jitter):
    """Every PE of every cube requests on a common beat (period cycles apart, a few cycles of
    jitter by PE): the requests land on grants and on each other's completions."""
    m = Machine(hw, SfrInstall("pe"))
    for g in range(hw.n_pes):
        s = m[g]
        t = s.vec(VecOp.FILL, period + (g % hw.pes_per_cube) * jitter, out_bytes=8)
        for j in range(3):
            x = s.load((j + 1) * hw.dma.burst_bytes + g % 3, after=t)
            t = s.vec(VecOp.FILL, period, x, out_bytes=8)
            s.store(t, hw.dma.burst_bytes * (1 + g % 2))
    note(_describe(m))
    train, packet = _both(m)
    _assert_exact(train, packet)


def test_eight_pes_in_one_cube_pop_a_handful_of_events():
    # docs/hardware-model.md's example: 8 PEs each load 64 KiB at cycle 0 (1024 bursts). Burst by
    # burst that is over a thousand heap events; in closed form one completion per command, and
    # one cancelled completion for each request of cycle 0 after the first (each moves the
    # channel's next completion later).
    m = Machine(load_hw())
    for p in range(8):
        m[p, 0].load(64 * 1024)
    train, packet = _both(m)
    _assert_exact(train, packet)
    assert [int(train.cmd_end[i]) for i in range(8)] == [127 * 16 + 2 * (p + 1) + 150 for p in range(8)]
    assert packet.heap_events > 1024
    assert train.heap_events == 8 + 7


def test_round_robin_starts_at_pe_0_and_keeps_its_pointer_while_idle():
    """docs/hardware-model.md: before serving anyone the channel starts after PE 7 (PE 0 first),
    and the pointer stays put while the channel is idle (a review found neither written).
    PEs 3 and 5 load 512 B (one burst each) at cycle 0: PE 3's burst 0..2, PE 5's 2..4; the loads
    end at 152 and 154. Then PEs 3 and 6 each fill 18,688 elements (ceil(18688 / 64) + 8 = 300
    cycles) and load 512 B after it: both request at 300 on an idle channel whose last grant
    went to PE 5, so PE 6 goes first, 300..302 (ends 452), PE 3 302..304 (ends 454)."""
    m = Machine(load_hw())
    for p in (3, 5):
        m[p, 0].load(512)
    for p in (3, 6):
        f = m[p, 0].vec(VecOp.FILL, 18688)
        m[p, 0].load(512, after=f)
    _assert_exact(*_both(m))
    r = m.run()
    assert (r.end((3, 0), 0), r.end((5, 0), 0)) == (152, 154)
    assert (r.start((6, 0), 1), r.end((6, 0), 1), r.end((3, 0), 2)) == (300, 452, 454)


@pytest.mark.parametrize("arrive", range(95, 110))
def test_request_at_every_cycle_around_a_grant(arrive):
    # PE 0 streams 64 KiB alone (grants every 2 cycles); PE 1 asks for 3 bursts at cycles around
    # cycle 100: on a grant, between two, while an epoch of two is running (PE 2 joins at 103).
    m = Machine(load_hw())
    m[0, 0].load(64 * 1024)
    t = m[1, 0].vec(VecOp.FILL, (arrive - 8) * 64)  # (arrive - 8) + 8 cycles
    m[1, 0].load(1300, after=t)
    t = m[2, 0].vec(VecOp.FILL, 95 * 64)  # 103 cycles
    m[2, 0].load(700, after=t)
    train, packet = _both(m)
    _assert_exact(train, packet)


def _max_then_store_beside_a_long_load(x_ptr, *, tl):
    if tl.program_id(0) == 0:
        a = tl.load(x_ptr, shape=(64, 64), dtype="f32")
        tl.store(x_ptr, a - tl.max(a, axis=-1))
    else:
        tl.exp(tl.load(x_ptr, shape=(1024, 64), dtype="f32"))


@pytest.mark.parametrize("detail", ["train", "packet"])
def test_faster_hardware_can_make_a_longer_launch(detail):
    """docs/hardware-model.md, "Faster hardware is not always a shorter launch", its example:
    lowering vector.op_cycles.max from 13 to 3 ends PE 0's row max sooner, so its store moves
    onto the channel while PE 1's 256 KiB load is still running (round robin: the load gets a
    share of the bursts, not all), PE 1's load ends later, its exp starts later by as much, and
    the launch (PE 1's exp's end) grows by that much."""
    runs = {}
    for mx in (13, 3):
        ctx = kernbench.Context("default", overrides={"n_cubes": 1, "vector.op_cycles.max": mx})
        x = ctx.empty((1024, 64), "f32")
        r = ctx.launch(_max_then_store_beside_a_long_load, (2, 1), x, mode="timing", detail=detail)
        s, e = r.engine.cmd_start.tolist(), r.engine.cmd_end.tolist()
        runs[mx] = r.cycles, s, e
    (slow, s13, e13), (fast, s3, e3) = runs[13], runs[3]
    # PE 0: load, max, sub, store; PE 1: load, exp
    assert e3[1] < e13[1]  # the max is faster ...
    assert s13[3] >= e13[4] and s3[3] < e3[4]  # ... so the store overlaps PE 1's load, not after it
    assert fast - slow == e3[4] - e13[4] > 0  # PE 1's load ends later by what the launch grows
    assert s3[5] == e3[4] and s13[5] == e13[4] and fast == e3[5] and slow == e13[5]


def test_faster_links_lengthen_a_prefill_on_a_narrow_shared_channel_as_documented():
    """docs/hardware-model.md ("faster hardware can be slower"): the shipped prefill kernel on
    7 PEs sharing a 16 B/cycle channel (777-cycle DMA latency) takes longer with faster links, its
    arbitration stalls growing, and shorter with them on a 1,024 B/cycle channel. The figures the
    doc quotes are these runs' (a review found them stale after a kernel change)."""
    from kernbench.common.pe_commands import Unit
    from kernbench.kernels import attention_mesh_kv_kernel

    got = {}
    for width in (16, 1024):
        for link in (8, 16, 64):
            ctx = kernbench.Context("default", overrides={
                "n_cubes": 1, "pes_per_cube": 7, "dma.channel_bytes_per_cycle": width,
                "dma.latency_cycles": 777, "link.bytes_per_cycle": link})
            ctx.install_sfr("pe")
            s, hq, hkv, d = 32, 4, 2, 128
            q, k, v, o = (ctx.empty((s, h, d), "f16") for h in (hq, hkv, hkv, hq))
            r = ctx.launch(attention_mesh_kv_kernel, (7, 1), q, k, v, o, s, s, hq, hkv, d, 7, 0, 8, 16,
                           mode="timing")
            got[width, link] = (r.cycles, int(r.unit_counters["stall_arbitration"][:, int(Unit.DMA)].sum()))
    narrow = [got[16, link] for link in (8, 16, 64)]
    assert narrow[0][0] < narrow[1][0] < narrow[2][0] and narrow[0][1] < narrow[2][1]
    assert got[1024, 8][0] > got[1024, 64][0]
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "hardware-model.md"), encoding="utf-8").read()
    quoted = (f"takes {narrow[0][0]:,} cycles with\nlinks of 8 B/cycle, {narrow[1][0]:,} with 16",
              f"{narrow[2][0]:,} with 64", f"grow from {narrow[0][1]:,} to {narrow[2][1]:,} cycles",
              f"{got[1024, 8][0]:,} to\n{got[1024, 64][0]:,} cycles")
    for text in quoted:
        assert text in doc, text
