"""The critical path: hand-built launches whose path is derived here from docs/hardware-model.md
(operands, send -> recv, credits, the DMA channel), its invariants on a ring, and the prefill
kernel's software pipeline against a fold-by-fold variant kept in tests/prefill_unpipelined.py."""
import json

import numpy as np
import pytest

import kernbench
from kernbench.common.pe_commands import Opcode, StreamBuilder, Unit, VecOp
from kernbench.hw import load_hw
from kernbench.report.commands import command_facts
from kernbench.report.critical_path import critical_path
from kernbench.report.profile import profile

from report_helpers import launch, line_pipeline, ring_exchange

# Default preset: DMA burst 512 B at 256 B/cycle = 2 cycles, latency 150; vector 64 lanes,
# latency 8, exp 4 cycles per issue, add and fill 1; link packets 256 B at 32 B/cycle = 8
# cycles, hop 50, receive queue 32 packets.


def path_rows(r):
    """(PE, line, kind, t0, t1, via, slack) of every step, in time order."""
    cp = critical_path(r)
    fx = command_facts(r)
    c = r.program.commands
    return [(int(fx.pe[s["cmd"]]), int(c["line"][s["cmd"]]), s["kind"], s["start_cycle"], s["end_cycle"],
             s["via"], s["slack"]) for s in cp.step_dicts()]


def test_two_pes_operand_and_message():
    """PE 0 loads 8 KiB, exps it and sends it east; PE 1 loads 32 KiB, receives, adds, stores.

    Derivation. Both loads request the cube's channel at cycle 0; round robin serves PE 0 first
    and alternates: PE 0's 16 bursts go at 0, 4, ..., 60, its last leaves at 62, so its load ends
    at 62 + 150 = 212 (alone it would take 16 * 2 + 150 = 182: 30 cycles of arbitration; both
    commands opened the busy period at cycle 0, so no other command held it: a busy step).
    exp of 2048 elements: 32 * 4 + 8 = 136, cycles 212..348. The send of 8 KiB, 32 packets of 8
    cycles (no credit wait: 32 packets fit the queue), 348..604. PE 1 posted its recv at cycle 0,
    so it ends when the last packet lands: 604 + 50 = 654 (a data step from the send's end). PE 1's
    load: 16 bursts interleaved to cycle 64, the other 48 alone, last leaves at 160, ends 310.
    add of 2048: 32 + 8 = 40 cycles, 654..694 (its later operand is the recv). store 8 KiB alone:
    16 * 2 + 150 = 182, 694..876. The launch ends at 876.

    Path: load (PE 0) 0..212, exp 212..348, send 348..604, data in flight 604..654, add 654..694,
    store 694..876. Slack: exp 212 (its only input, over cycle 0); send 348; data 654 - 0 (the
    recv was posted at 0); add 654 - 310 (its other operand, PE 1's load); store 694 - 310 (the
    DMA unit's previous command)."""
    p0, p1 = StreamBuilder(), StreamBuilder()
    x = p0.load(8192, line=10)
    y = p0.vec(VecOp.EXP, 2048, x, line=11)
    p0.send("E", y, 8192, line=12)
    w = p1.load(32768, line=20)
    rcv = p1.recv("W", 8192, line=21)
    z = p1.vec(VecOp.ADD, 2048, rcv, w, line=22)
    p1.store(z, 8192, line=23)
    r = launch([p0, p1])
    assert r.cycles == 876
    assert path_rows(r) == [
        (0, 10, "busy", 0, 212, "launch start", 0),
        (0, 11, "busy", 212, 348, "operand", 212),
        (0, 12, "busy", 348, 604, "operand", 348),
        (1, 21, "data", 604, 654, "send -> recv", 654),
        (1, 22, "busy", 654, 694, "operand", 654 - 310),
        (1, 23, "busy", 694, 876, "operand", 694 - 310),
    ]
    # the profile's path column: the same cycles per line
    prof = profile(r)
    on_path = {d["short"]: d["path_cycles"] for d in prof["lines"]}
    assert on_path == {"fake_kernel.py:10": 212, "fake_kernel.py:11": 136, "fake_kernel.py:12": 256,
                       "fake_kernel.py:20": 0, "fake_kernel.py:21": 50, "fake_kernel.py:22": 40,
                       "fake_kernel.py:23": 182}


def test_credit_link_goes_to_the_late_recv():
    """PE 0 loads 16 KiB and sends it east (64 packets); PE 1 posts the recv only after an exp
    of 65,536 elements (1024 * 4 + 8 = 4104 cycles), then adds what it got.

    Derivation. The load takes 32 * 2 + 150 = 214 cycles, so the send starts at 214. Packets 0..31
    leave by 214 + 256 = 470 and wait in PE 1's queue; packet 32 needs the credit of packet 0, back
    one hop after the recv drains it at 4104: 4154. Packets 32..63 stream 4154..4410 (the send ends
    there: 4410 - 214 - 512 = 3,684 cycles of credit stall beside its 512 of serialisation); the
    last lands at 4460, ending the recv. add of 4096 elements: 64 + 8 = 72, 4460..4532.
    Path: exp (PE 1) 0..4104; the send's credit wait from the recv's post to its end, 4104..4410
    (slack: its credit stall); data in flight 4410..4460 (slack 4460 - 4104); add 4460..4532."""
    p0, p1 = StreamBuilder(), StreamBuilder()
    t = p0.load(16384, line=30)
    p0.send("E", t, 16384, line=31)
    big = p1.vec(VecOp.EXP, 65536, line=40)
    got = p1.recv("W", 16384, after=big, line=41)
    p1.vec(VecOp.ADD, 4096, got, line=42)
    r = launch([p0, p1])
    assert r.cycles == 4532
    assert path_rows(r) == [
        (1, 40, "busy", 0, 4104, "launch start", 0),
        (0, 31, "credit", 4104, 4410, "operand", 4410 - 214 - 512),
        (1, 41, "data", 4410, 4460, "send -> recv", 4460 - 4104),
        (1, 42, "busy", 4460, 4532, "operand", 4460 - 4104),
    ]


def test_credit_link_never_goes_to_a_recv_posted_after_the_send_ended():
    """PE 0 sends three messages east from one 16 KiB load: 8 KiB (32 packets: PE 1's whole
    queue), 256 B (1 packet) and 7,936 B (31 packets). PE 1 posts the first recv after an exp
    of 65,536 elements, the second after another exp of 4,096, then the third.

    Derivation. The load ends at 32 * 2 + 150 = 214. Send 1: packets 0..31 leave by
    214 + 32 * 8 = 470 and wait. Send 2 starts at 470; its packet 32 needs packet 0's credit,
    back at 4104 + 50 = 4154 (recv 1 posted at 4104 = 1024 * 4 + 8), so it leaves 4154..4162:
    a credit stall of 4162 - 470 - 8 = 3,684. Send 3's packets 33..63 have their credits
    (4154) and stream 4162..4410. The second exp runs 4104..4368 (64 * 4 + 8), so recv 2 is
    posted at 4368, after send 2 ended: its post cannot have held send 2, whose credit came
    from recv 1 (a review found a credit step from 4368 back to 4162, -206 cycles). Recv 3 is
    posted when recv 2 ends (its packet landed at 4212, drained at 4368), and ends when the
    last packet lands, 4410 + 50 = 4460.
    Path: exp 1 (PE 1) 0..4104; send 2's credit wait 4104..4162 (slack its stall); send 3
    4162..4410 (unit order, slack 4162 - 214); data in flight 4410..4460 (slack 4460 - 4368)."""
    p0, p1 = StreamBuilder(), StreamBuilder()
    t = p0.load(16384, line=30)
    p0.send("E", t, 8192, line=31)
    p0.send("E", t, 256, line=32)
    p0.send("E", t, 7936, line=33)
    e1 = p1.vec(VecOp.EXP, 65536, line=40)
    p1.recv("W", 8192, after=e1, line=41)
    e2 = p1.vec(VecOp.EXP, 4096, line=42)
    p1.recv("W", 256, after=e2, line=43)
    p1.recv("W", 7936, line=44)
    r = launch([p0, p1])
    assert r.cycles == 4460
    assert r.unit_counters["stall_credit"][0, Unit.TX_E] == 3684
    assert path_rows(r) == [
        (1, 40, "busy", 0, 4104, "launch start", 0),
        (0, 32, "credit", 4104, 4162, "operand", 3684),
        (0, 33, "busy", 4162, 4410, "unit order", 4162 - 214),
        (1, 44, "data", 4410, 4460, "send -> recv", 4460 - 4368),
    ]


def _gated_send(gate, q=2, packet_bytes=256, nbytes=16384, fill=4096, hop=50, bw=32):
    """PE 0 fills ``fill`` f32 elements and sends ``nbytes`` east; PE 1 posts its recv after a
    fill of ``gate`` elements (none: at cycle 0) and adds what it got."""
    p0, p1 = StreamBuilder(), StreamBuilder()
    t = p0.vec(VecOp.FILL, fill, line=30)
    p0.send("E", t, nbytes, line=31)
    got = p1.recv("W", nbytes, after=p1.vec(VecOp.FILL, gate, line=40) if gate else -1, line=41)
    p1.vec(VecOp.ADD, 64, got, line=42)
    hw = load_hw("default").with_overrides({
        "link.rx_queue_packets": q, "link.packet_bytes": packet_bytes,
        "link.hop_latency_cycles": hop, "link.bytes_per_cycle": bw})
    return launch([p0, p1], hw=hw)


def test_credit_bound_link_blames_no_recv_whose_post_held_nothing():
    """A credit-bound link (link.rx_queue_packets = 2: a credit's round trip 2 * 50 + 8 = 108
    cycles against 2 * 8 of serialisation) and a recv posted before the first packet lands: the
    post holds nothing, so the path is the same as with the recv posted at cycle 0.

    Derivation. The fill of 4096 elements takes 4096 / 64 + 8 = 72 cycles: the send starts at 72.
    Packet 0 leaves 72..80 and lands at 130; the recv is posted at 6144 / 64 + 8 = 104 (gated) or
    0, both before 130, so packet 0 drains at 130 and its credit is back at 180 either way.
    Packets 2k and 2k + 1 start at 72 + 108k and 80 + 108k (each needs the credit of the packet
    two before, back 108 after it started); the last, 63, leaves 3428..3436: the send ends at
    3436 with 3436 - 72 - 64 * 8 = 2,852 cycles of credit stall, the recv at 3486 and the add
    (64 / 64 + 8 = 9 cycles) at 3495. No recv's post is on the path: the send is a busy step
    from its start (a review found a credit step from the gated post at 104, slack 2,852, where
    shortening the gate gains nothing)."""
    gated, free = _gated_send(6144), _gated_send(None)
    assert gated.cycles == free.cycles == 3495
    assert gated.unit_counters["stall_credit"][0, Unit.TX_E] == 2852
    rows = [
        (0, 30, "busy", 0, 72, "launch start", 0),
        (0, 31, "busy", 72, 3436, "operand", 72),
        (1, 41, "data", 3436, 3486, "send -> recv", None),
        (1, 42, "busy", 3486, 3495, "operand", None),
    ]
    for r, post in ((gated, 104), (free, 0)):
        got = path_rows(r)
        assert [x[:5] for x in got] == [x[:5] for x in rows]
        assert got[2][6] == 3486 - post  # data: the landing minus the recv's post
        assert got[1][6] == 72


def test_a_credit_steps_slack_is_what_its_post_costs_not_the_stall():
    """The same credit-bound link, the recv posted at 139, 9 cycles after packet 0 lands at
    130: that post holds packet 0's credit, so it is on the path; the slack is what posting it
    early gains, 9, not the send's credit stall (a review found 2,861, most of it the link's own
    round trip, which no recv can shorten).

    Derivation (see the test above for the free run: the send ends 3436). The gate fill of
    8384 elements takes 131 + 8 = 139 cycles. Packet 0 lands at 130, drains at the post, 139,
    and its credit is back at 189 (free: 180); packet 1 lands at 138, drains at 139, credit
    back 189 (free: 188). Packet 2 starts 189 (free 180), packet 3 at 197, after packet 2's
    8 cycles on the wire (free 188): from there every packet starts 9 later than in the free
    run. The send ends at 3445 (credit stall 2,852 + 9), the recv at 3495, the add at 3504.
    Path: gate fill 0..139; credit step 139..3445, slack 9; data 3445..3495; add 3495..3504."""
    r = _gated_send(8384)
    assert r.cycles == 3504
    assert r.unit_counters["stall_credit"][0, Unit.TX_E] == 2852 + 9
    assert path_rows(r) == [
        (1, 40, "busy", 0, 139, "launch start", 0),
        (0, 31, "credit", 139, 3445, "operand", 9),
        (1, 41, "data", 3445, 3495, "send -> recv", 3495 - 139),
        (1, 42, "busy", 3495, 3504, "operand", 3495 - 139),
    ]


def _gated_recvs(sizes, gates, drop=-1, hw=None):
    """PE 0 sends messages of ``sizes`` bytes east; PE 1 posts recv j after a fill of gates[j]
    elements (0: none), recv ``drop`` without its gate."""
    p0, p1 = StreamBuilder(), StreamBuilder()
    t = p0.vec(VecOp.FILL, 4096, line=30)
    for nb in sizes:
        p0.send("E", t, nb, line=31)
    for j, (nb, g) in enumerate(zip(sizes, gates)):
        gate = p1.vec(VecOp.FILL, g, line=40) if g and j != drop else -1
        p1.recv("W", nb, after=gate, line=41)
    return launch([p0, p1], hw=hw)


def test_a_credit_steps_slack_moves_the_later_recvs_with_the_held_one():
    """Message 0 (1 KiB: 4 packets, the whole queue of 4) and message 1 (64 KiB); recv 0 gated
    by a fill, recv 1 not: it is posted when recv 0 ends (RX unit order). Posting recv 0 early
    posts recv 1 early too: the slack is what the engine gains with recv 0's gate removed, the
    send starting where it did (a review: recv 1 kept at its old post capped the slack at one
    credit round trip, 108, where the launch gained 806)."""
    hw = load_hw("default").with_overrides({"link.rx_queue_packets": 4})
    late = _gated_recvs([1024, 65536], [65536, 0], hw=hw)
    early = _gated_recvs([1024, 65536], [65536, 0], drop=0, hw=hw)
    fl, fe = command_facts(late), command_facts(early)
    send1 = int(late.engine.messages["send"][1])
    assert int(fl.start[send1]) == int(fe.start[send1])
    gain = int(fl.end[send1]) - int(fe.end[send1])
    (step,) = [x for x in critical_path(late).step_dicts() if x["kind"] == "credit"]
    assert step["cmd"] == send1 and step["other_cmd"] == int(late.engine.messages["recv"][0])
    assert step["slack"] == gain > 108


def test_credit_slacks_equal_the_engines_gain_on_random_links():
    """Random links (packet size, queue, hop, bandwidth; 1-4 messages; recvs gated or not):
    every credit step's slack is what the engine gains with the held recv's gate removed,
    whenever the send starts at the same cycle in both runs (else another chain moves too),
    and lies within 0 .. the send's credit stall."""
    rng = np.random.default_rng(12)
    checked = 0
    for case in range(120):
        hw = load_hw("default").with_overrides({
            "link.packet_bytes": int(rng.choice([4, 16, 100, 256])),
            "link.rx_queue_packets": int(rng.integers(1, 9)),
            "link.hop_latency_cycles": int(rng.choice([1, 20, 50])),
            "link.bytes_per_cycle": int(rng.choice([1, 4, 32]))})
        nm = int(rng.integers(1, 5))
        sizes = [int(rng.integers(1, 12000)) for _ in range(nm)]
        # (a late gate, then recvs ungated or gated early: posted when the one before ends)
        gates = [int(rng.integers(64, 80000))] + [int(rng.choice([0, 0, rng.integers(64, 80000)]))
                                                  for _ in range(nm - 1)]
        r = _gated_recvs(sizes, gates, hw=hw)
        fx = command_facts(r)
        recvs = r.engine.messages["recv"].tolist()
        for step in critical_path(r).step_dicts():
            if step["kind"] != "credit":
                continue
            c = step["cmd"]
            assert 0 <= step["slack"] <= int(fx.credit[c]), case
            k = recvs.index(step["other_cmd"])
            r2 = _gated_recvs(sizes, gates, drop=k, hw=hw)
            fx2 = command_facts(r2)
            if int(fx2.start[c]) == int(fx.start[c]):
                assert step["slack"] == int(fx.end[c]) - int(fx2.end[c]), (case, sizes, gates, k)
                checked += 1
    assert checked >= 20, checked


def test_credit_walk_follows_the_engine_and_names_only_posts_that_hold():
    """Random credit-bound and posted-late links (2..4 messages of 1 B .. 20 KiB on random
    packet sizes, queues, hops and bandwidths; the recv gated 0 .. 3,000 cycles): the link's
    recurrence the critical path walks (_link.packet_starts) ends every send where the engine
    did; and when no post held the first send's end (the walk reaches its start), it ends at the
    same cycle with every recv posted at cycle 0 (a chain without a post, and no input later).
    (A later send's start may itself wait for an earlier send that a post held: the path goes
    there by unit order.)"""
    from kernbench._core import _link
    rng = np.random.default_rng(56)
    checked = 0
    for _case in range(60):
        q = int(rng.integers(1, 9))
        P = int(rng.choice([4, 32, 100, 256]))
        hop, bw = int(rng.integers(1, 80)), int(rng.choice([1, 7, 32]))
        sizes = [int(rng.integers(1, 20481)) for _ in range(int(rng.integers(2, 5)))]
        gates = [int(rng.choice([0, 64, 640, 6400, 64000])) for _ in sizes]
        hw = load_hw("default").with_overrides({
            "link.rx_queue_packets": q, "link.packet_bytes": P, "link.hop_latency_cycles": hop,
            "link.bytes_per_cycle": bw})

        def run(gates, sizes=sizes, hw=hw):
            p0, p1 = StreamBuilder(), StreamBuilder()
            t = p0.vec(VecOp.FILL, 20480 // 4, line=30)
            for nb in sizes:
                p0.send("E", t, nb, line=31)
            for nb, g in zip(sizes, gates):
                p1.recv("W", nb, after=p1.vec(VecOp.FILL, g, line=40) if g else -1, line=41)
            return launch([p0, p1], hw=hw)

        r = run(gates)
        fx = command_facts(r)
        msgs = r.engine.messages
        T = np.ascontiguousarray(fx.start[msgs["send"]], np.int64)
        post = np.ascontiguousarray(fx.start[msgs["recv"]], np.int64)
        nb = np.ascontiguousarray(msgs["nbytes"], np.int64)
        s = np.empty(int(((nb + P - 1) // P).sum()), np.int64)
        _link.packet_starts(T, post, nb, P, bw, hop, q, s)
        first = np.r_[0, np.cumsum((nb + P - 1) // P)].astype(np.int64)
        memo = np.full(len(s), -3, np.int64)
        ends = [_link.post_holder(s, T, post, nb, first, m, P, bw, hop, q, memo) for m in range(len(nb))]
        # (the memo each walk leaves changes no later answer: each walked alone, afresh)
        assert ends == [_link.post_holder(s, T, post, nb, first, m, P, bw, hop, q,
                                          np.full(len(s), -3, np.int64)) for m in range(len(nb))]
        assert [e for e, _ in ends] == fx.end[msgs["send"]].tolist()
        assert all(k >= -1 for _, k in ends)
        free = run([0] * len(sizes))
        free_end = command_facts(free).end[free.engine.messages["send"]].tolist()
        for m, (_e, k) in enumerate(ends):
            assert k == -1 or (0 <= k <= m and post[k] > 0)
        if ends[0][1] == -1:  # (the first send starts at the same cycle in both runs)
            assert free_end[0] == ends[0][0], _case
        elif ends[0][1] == 0:
            # the first recv's post held the first send: its credit step's slack is what the
            # engine gains with that recv posted at cycle 0 (the send starts where it did)
            first_send = int(msgs["send"][0])
            step = [x for x in critical_path(r).step_dicts() if x["cmd"] == first_send and x["kind"] == "credit"]
            if step:
                early = run([0] + gates[1:])
                gain = int(fx.end[first_send]) - int(command_facts(early).end[early.engine.messages["send"][0]])
                assert step[0]["slack"] == gain, _case
                checked += 1
    assert checked >= 2  # (two of these cases hold a credit step on the first send)


def test_the_credit_walk_runs_from_where_the_link_starts_afresh_and_not_past_its_bound():
    """The walk is run from the latest message whose send started with every earlier credit
    back (_link.restart_points), and not at all past WALK_PACKETS packets, where the latest post
    that could have held a packet is named (a breaker: a 2**36-byte message on 1-byte packets,
    timed by the engine in a millisecond, made the walk allocate 512 GiB; 20,000 sends of 1 MiB
    cost 20x the old path, every walk from the link's first packet).

    restart_points, by hand (P = 256, h = 50, Q = 32): three 8 KiB messages (32 packets each);
    message 1's send starts at 1000, after message 0's credits (its send ends at 500, its recv
    posted at 0: back by max(500 + 50, 0) + 50 = 600); message 2's at 1100, before message 1's
    (its send ends 1300, recv posted 900: back by 1400): it starts at message 1."""
    import importlib

    from kernbench._core import _link
    cp_mod = importlib.import_module("kernbench.report.critical_path")  # (the module, not the function)

    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    T, r, se, nb = i64(0, 1000, 1100), i64(0, 900, 0), i64(500, 1300, 2000), i64(8192, 8192, 8192)
    first = np.r_[0, np.cumsum((nb + 255) // 256)].astype(np.int64)
    ok = np.empty(3, np.uint8)
    _link.restart_points(T, r, se, first, 50, 32, ok)
    assert ok.tolist() == [1, 1, 0]
    # the queue sets how far back credits reach: message 0's recv posted at 3000 (its credits
    # back by 3050), message 2's send at 2000 (message 1's back by 1400). With Q = 32 message
    # 2's window is message 1 alone: a restart; with Q = 64 it holds message 0 too: none
    T2, r2 = i64(0, 1000, 2000), i64(3000, 900, 0)
    _link.restart_points(T2, r2, se, first, 50, 32, ok)
    assert ok.tolist() == [1, 0, 1]
    _link.restart_points(T2, r2, se, first, 50, 64, ok)
    assert ok.tolist() == [1, 0, 0]
    # 2**36 bytes on 1-byte packets, the recv posted at 64000 / 64 + 8 = 1008: past the bound,
    # the post is named (posted after the first packet could land: 2 + 1 + 50 + ...)
    assert 1 << 36 > cp_mod.WALK_PACKETS
    p0, p1 = StreamBuilder(), StreamBuilder()
    t = p0.vec(VecOp.FILL, 64, line=30)
    p0.send("E", t, 1 << 36, line=31)
    p1.recv("W", 1 << 36, after=p1.vec(VecOp.FILL, 64000, line=39), line=40)
    r = launch([p0, p1], hw=load_hw("default").with_overrides({"link.packet_bytes": 1}))
    rows = path_rows(r)
    assert [x[:3] for x in rows] == [(1, 39, "busy"), (0, 31, "credit"), (1, 40, "data")]
    assert rows[1][3] == 1008 and rows[-1][4] == r.cycles


def test_slack_counts_one_command_once_however_many_inputs_it_is():
    """A command reading one tensor twice, made by the command before it on its unit: that
    one command is its only input, so the slack is its start minus cycle 0, not a tie with
    itself (a review found 0). Load of 16 KiB 0..214; exp of 4,096 on it 214..478 (64 * 4 +
    8); add of the exp to itself 478..550 (64 + 8)."""
    p = StreamBuilder()
    t = p.load(16384, line=30)
    d = p.vec(VecOp.EXP, 4096, t, line=31)
    p.vec(VecOp.ADD, 4096, d, d, line=32)
    r = launch([p])
    assert path_rows(r) == [
        (0, 30, "busy", 0, 214, "launch start", 0),
        (0, 31, "busy", 214, 478, "operand", 214),
        (0, 32, "busy", 478, 550, "unit order", 478),
    ]


def _two_ops_one_line(x_ptr, o_ptr, *, tl):
    a = tl.load(x_ptr, shape=(64, 64), dtype="f16")
    d = tl.dot(a, a)
    e = tl.exp(a) + tl.cast(d, "f16")  # one line: an exp, a cast and an add on VECTOR
    tl.store(o_ptr, e)


def test_a_share_of_several_ops_on_one_line_says_how_many_more():
    """A review's case: the summary named a line's VECTOR share by its longest command alone
    (the cast) for the cycles of the cast and the add after it; the profile marks such a line
    +N. The share counts the other labels of its commands on the path (more_labels) and the
    summary writes them as +N."""
    ctx = kernbench.Context("default")
    x, o = ctx.empty((64 * 64,), "f16"), ctx.empty((64 * 64,), "f16")
    r = ctx.launch(_two_ops_one_line, (1, 1), x, o, mode="timing")
    cp = critical_path(r)
    on_path = sorted({s["label"] for s in cp.step_dicts() if s["unit"] == "VECTOR"})
    assert len(on_path) >= 2  # (the cast and the add, at least)
    (share,) = [s for s in cp.shares() if s["unit"] == "VECTOR"]
    assert share["label"] in on_path and share["more_labels"] == len(on_path) - 1
    assert f"VECTOR {share['label']} +{len(on_path) - 1} at" in cp.summary()
    one = [s for s in cp.shares() if s["unit"] == "GEMM"][0]
    assert one["more_labels"] == 0 and f"GEMM {one['label']} at" in cp.summary()


def test_channel_link_goes_to_the_command_that_opened_the_busy_period():
    """PE 1 loads 64 KiB at cycle 0 (one train of 128 bursts to cycle 256); PE 0 fills 64 elements
    (1 + 8 = 9 cycles), then loads 64 KiB after it, then exps 65,536 elements.

    Derivation. PE 0's request at 9 cuts PE 1's train after its 5th burst (granted by cycle 10);
    from 10 round robin alternates PE 0, PE 1, ...: PE 1's 123 remaining bursts end with the one
    granted at 12 + 4 * 122 = 500, while PE 0 has had 123 (the last granted at 498); PE 0's last 5
    go alone 502..512, so its load ends at 512 + 150 = 662 (alone: 128 * 2 + 150 = 406 after its
    start at 9, so 247 cycles of arbitration). exp: 4104 cycles, 662..4766.
    Path: PE 0's load waited for the channel that PE 1's load opened at cycle 0: a channel step
    0..662 on PE 0's load (slack: its arbitration stall); then the exp. PE 0's fill (0..9), which
    set the load's start, is not on it."""
    p0, p1 = StreamBuilder(), StreamBuilder()
    f = p0.vec(VecOp.FILL, 64, line=50)
    a = p0.load(65536, after=f, line=51)
    p0.vec(VecOp.EXP, 65536, a, line=52)
    p1.load(65536, line=60)
    r = launch([p0, p1])
    fx = command_facts(r)
    assert (int(fx.start[1]), int(fx.end[1]), int(fx.arbitration[1])) == (9, 662, 247)
    assert r.cycles == 4766
    cp = critical_path(r)
    assert path_rows(r) == [
        (0, 51, "channel", 0, 662, "launch start", 247),
        (0, 52, "busy", 662, 4766, "operand", 662 - 9),
    ]
    assert cp.step_dicts()[0]["other_cmd"] == 3  # PE 1's load opened the busy period


def test_requests_in_one_cycle_the_last_served_takes_a_channel_step():
    """All 8 PEs of a cube load 64 KiB at cycle 0 (128 bursts each).

    Derivation. Round robin from PE 0 grants one burst a PE in turn, 2 cycles each: 1,024 bursts
    leave by 2,048, PE p's last at 2,034 + 2p, so its load ends at 2,184 + 2p (+ latency 150);
    PE 7's at 2,198, the launch's end. Alone a load takes 128 * 2 + 150 = 406: PE 7 waited
    2,198 - 406 = 1,792 cycles for the channel. It left after everything requested with it, so
    its end is the channel's: a channel step 0..2,198 with that stall as its slack, the opener
    PE 0's load (a review found it called a busy step with slack 0, "a tie", because the period
    opened in its own request cycle); the path goes on from its own start, cycle 0. PE 6's load
    (ends 2,196, before PE 7's) would be a busy step: it left first."""
    streams = [StreamBuilder() for _ in range(8)]
    for p, sb in enumerate(streams):
        sb.load(65536, line=90 + p)
    r = launch(streams)
    fx = command_facts(r)
    assert [int(fx.end[i]) for i in range(8)] == [2184 + 2 * p for p in range(8)]
    assert int(fx.arbitration[7]) == 1792 and r.cycles == 2198
    assert path_rows(r) == [(7, 97, "channel", 0, 2198, "launch start", 1792)]
    cp = critical_path(r)
    assert cp.step_dicts()[0]["other_cmd"] == 0
    # the summary gives the wait, not the whole step, as waiting: 406 of its 2,198 cycles are
    # its own 128 bursts and the latency (a review: "100% ... waiting for the memory channel"
    # for a load that had waited 4 cycles)
    assert cp.shares()[0]["slack"] == 1792
    assert cp.shares()[0]["latency"] == 150  # (its last 150 cycles: dma.latency_cycles)
    assert ("100% DMA load (line 97) sharing the memory channel (1,792 cycles waiting) and its "
            "latency (150 cycles)") in cp.summary()


def test_summary_with_top_none_lists_every_share_however_small():
    """A 64-element fill (64 / 64 + 8 = 9 cycles) then an add of 65,536 elements reading it
    (1,024 + 8 = 1,032): the path is both, 1,041 cycles, the fill 0.86% of it. The default
    summary folds that share into "in 1 more"; top=None names it (a review: shares under 1%
    were still folded then)."""
    p = StreamBuilder()
    f = p.vec(VecOp.FILL, 64, line=30)
    p.vec(VecOp.ADD, 65536, f, line=31)
    r = launch([p])
    assert r.cycles == 1041
    cp = critical_path(r)
    assert [s["cycles"] for s in cp.shares()] == [1032, 9]
    assert cp.summary().endswith("0.9% in 1 more"), cp.summary()
    every = cp.summary(top=None)
    assert "in 1 more" not in every and every.endswith("0.9% VECTOR vec (line 30) at fake_kernel.py:30 on PE (0, 0)"), every


def test_a_small_load_served_beside_a_backlog_owes_its_end_to_its_start():
    """PE 1 loads 256 KiB at cycle 0 (512 bursts, 1,024 cycles of channel alone); PE 0 fills 64
    elements (0..9), exps 4,096 (ceil(4096/64) * 4 + 8 = 264 cycles: 9..273), then loads 1 KiB (2
    bursts) after the exp. Round robin serves PE 0's 2 bursts beside PE 1's backlog, not after
    it: PE 0's load waits a few cycles for the channel and leaves it long before PE 1's does.
    Its end is set by its start (the exp), so the path has a busy step on it and goes on to the
    exp, not a channel step back to PE 1's load (a review found the exp chain given 0 path
    cycles). Moving the load's start earlier by the exp's 264 cycles would move its end."""
    p0, p1 = StreamBuilder(), StreamBuilder()
    f = p0.vec(VecOp.FILL, 64, line=70)
    x = p0.vec(VecOp.EXP, 4096, f, line=71)
    a = p0.load(1024, after=x, line=72)
    p0.vec(VecOp.EXP, 65536, a, line=73)
    p1.load(262144, line=80)
    r = launch([p0, p1])
    fx = command_facts(r)
    assert (int(fx.start[1]), int(fx.end[1])) == (9, 273)
    assert int(fx.start[2]) == 273 and int(fx.arbitration[2]) > 0  # it did wait for the channel
    assert int(fx.end[2]) < int(fx.end[4])  # and left it long before PE 1's load
    rows = path_rows(r)
    assert [(pe, line, kind) for pe, line, kind, *_ in rows] == [
        (0, 70, "busy"), (0, 71, "busy"), (0, 72, "busy"), (0, 73, "busy")]
    assert rows[2][3:5] == (273, int(fx.end[2]))


@pytest.mark.parametrize("make", [line_pipeline, ring_exchange])
def test_path_tiles_the_launch(make):
    r = make()
    st = critical_path(r).steps
    assert st["t0"][0] == 0 and st["t1"][-1] == r.cycles
    assert (st["t0"][1:] == st["t1"][:-1]).all()
    assert (st["t1"] >= st["t0"]).all() and (st["slack"] >= 0).all()
    fx = command_facts(r)
    # a busy step is exactly its command's run; every step lies within [start of the step's
    # input, end of its command]
    busy = st["kind"] == 0
    assert (st["t0"][busy] == fx.start[st["cmd"][busy]]).all()
    assert (st["t1"] == fx.end[st["cmd"]]).all()


def test_in_the_json_and_the_trace(tmp_path):
    r = line_pipeline(n_pes=3)
    doc = json.loads(json.dumps(r.to_json()))
    cp = doc["critical_path"]
    assert sum(cp["steps"]["end"]) - sum(cp["steps"]["start"]) == r.cycles
    assert cp["summary"].startswith("critical path")
    info = r.to_perfetto(tmp_path / "t.json", critical_path=True)
    trace = json.load(open(tmp_path / "t.json"))
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    pid = next(p for p, n in names.items() if n == "critical path")
    track = [e for e in trace["traceEvents"] if e["pid"] == pid and e["ph"] == "X"]
    assert len(track) == len(critical_path(r)) and info["critical_path_slices"] == len(track)
    assert sum(e["args"]["cycles"] for e in track) == r.cycles
    # without the option, no track
    r.to_perfetto(tmp_path / "u.json")
    assert "critical path" not in open(tmp_path / "u.json").read()


# -- the prefill kernel: software pipeline against fold by fold ---------------------------------
def _prefill(kernel):
    ctx = kernbench.Context("default")
    ctx.install_sfr(scope="pe")
    S, h_q, h_kv, d = 512, 8, 1, 128
    kv = [ctx.empty((S, h_kv, d), "f16") for _ in range(2)]
    q, o = ctx.empty((S, h_q, d), "f16"), ctx.empty((S, h_q, d), "f16")
    return ctx.launch(kernel, (2, 1), q, *kv, o, S, S, h_q, h_kv, d, 2, 0, 32, 512, mode="timing",
                      record_events=True)


def _unit_shares(r):
    cp = critical_path(r)
    fx = command_facts(r)
    units = fx.unit[cp.steps["cmd"]]
    dur = cp.steps["t1"] - cp.steps["t0"]
    return units, {u: float(dur[units == u].sum()) / r.cycles for u in (Unit.GEMM, Unit.VECTOR)}


def test_pipelined_prefill_path_is_gemm_unpipelined_alternates():
    from kernbench.kernels.attention import attention_mesh_kv_kernel
    from prefill_unpipelined import prefill_unpipelined_kernel

    pipe = _prefill(attention_mesh_kv_kernel)
    fold = _prefill(prefill_unpipelined_kernel)
    assert fold.cycles > 1.3 * pipe.cycles  # the pipeline hides the softmax
    units, share = _unit_shares(pipe)
    assert share[Unit.GEMM] > 0.98
    # GEMM throughout: the path leaves the GEMM unit only at the very start and end
    gemm = units == Unit.GEMM
    assert np.flatnonzero(np.diff(gemm.astype(int)) != 0).size <= 4
    units, share = _unit_shares(fold)
    assert share[Unit.VECTOR] > 0.25 and share[Unit.GEMM] > 0.5
    # every fold puts its softmax between its two dots: the path goes GEMM -> VECTOR -> GEMM
    # once per fold (32 folds per PE here)
    to_vec = np.flatnonzero((units[:-1] == Unit.GEMM) & (units[1:] == Unit.VECTOR))
    assert to_vec.size >= 32
    summary = critical_path(fold).summary()
    assert "GEMM dot" in summary and "VECTOR" in summary


def _two_sends_late_recv(x, *, tl, late=True):
    if tl.program_id(0) == 0:
        t = tl.zeros((16384,), "f32")
        tl.send("E", t)  # A
        tl.send("E", t)  # B: starts when A ends (TX unit order)
    else:
        u = tl.load(x, shape=(16384,), dtype="f32")
        for _ in range(4):
            u = tl.exp(u)
        tl.recv("W", (16384,), "f32", after=u if late else None)  # A's, posted late
        tl.recv("W", (16384,), "f32")


def test_a_credit_step_never_starts_before_its_send():
    """(A reports review.) Recv A's late post held send A's packets; send B started when A ended,
    after the post. The walk from B's last packet reached A's packets and named recv A: a
    `credit` step on B from the post (4,534) over the 6,778 cycles send A ran, "75% ... line 6
    waiting for the receiver's credits", slack 76. The path now goes through A: B is a busy
    step from A's end, A's credit step names recv A, with the gain posting it early gives."""
    runs = {}
    for late in (True, False):
        ctx = kernbench.Context("default", overrides={"link.rx_queue_packets": 4})
        ctx.install_sfr("pe")
        runs[late] = ctx.launch(_two_sends_late_recv, (2, 1), ctx.empty((16384,), "f32"), mode="timing",
                                late=late)
    r = runs[True]
    f = command_facts(r)
    steps = critical_path(r).steps
    for s in steps[steps["kind"] == 2]:  # credit steps (STEP_KINDS)
        assert s["t0"] >= f.start[s["cmd"]]
    send_a, send_b = (int(c) for c in np.flatnonzero(f.opcode == int(Opcode.SEND)))
    kinds = {int(s["cmd"]): ("busy", "data", "credit", "channel")[s["kind"]] for s in steps}
    assert kinds[send_b] == "busy" and kinds[send_a] == "credit"
    (credit,) = steps[steps["kind"] == 2]
    assert credit["slack"] == r.cycles - runs[False].cycles  # (the engine's own gain: 4,212)
    assert credit["t1"] == f.start[send_b] == f.end[send_a]


def test_a_credit_share_says_what_posting_early_gains():
    """(A reports review.) With 2-packet queues the link's own credit round trip paces the send;
    a recv posted 17 cycles late made it a `credit` step of 97% of the launch, the summary
    blaming the receiver for all of it. The summary now gives the gain."""
    def k(*, tl):
        if tl.program_id(0) == 0:
            tl.send("E", tl.zeros((16384,), "f32"))
        else:
            d = tl.zeros((64 * 331,), "f32")
            tl.recv("W", (16384,), "f32", after=d)

    runs = []
    for post_late in (True, False):
        ctx = kernbench.Context("default", overrides={"link.rx_queue_packets": 2})
        ctx.install_sfr("pe")
        kk = k if post_late else (lambda *, tl: tl.send("E", tl.zeros((16384,), "f32")) if tl.program_id(0) == 0
                                  else tl.recv("W", (16384,), "f32"))
        runs.append(ctx.launch(kk, (2, 1), mode="timing"))
    gain = runs[0].cycles - runs[1].cycles
    assert 0 < gain < runs[0].cycles // 100
    summary = critical_path(runs[0]).summary()
    assert f"waiting for the receiver's credits (posting the recv earlier gains up to {gain:,} cycles)" in summary


def test_pes_streaming_in_step_pay_the_dma_latency_together():
    """A review's case (docs/hardware-model.md, "DMA engine and the cube memory channel"): 8 PEs
    each load an 8 KiB f16 tile, then 16 times load the next and store the last one doubled.

    Derivation (default preset: B = 512, W = 256 B/cycle, lambda = 150): a command is 16 bursts
    of 2 cycles; the 8 PEs' commands interleave burst by burst, a channel period of 8 * 16 * 2 =
    256 cycles in which PE p's last burst leaves at 240 + 2 (p + 1); PE 0's command ends 150
    later, at 392, and its next starts then, the others 2 cycles apart behind it: every command
    lasts 392 and the 33 of PE 7 end at 33 * 392 + 14 = 12,950. The channel is busy 33 * 256 =
    8,448 of them (the bound summarize names). Each command's wait is 392 - (16 * 2 + 150) = 210:
    the load and store lines' channel shares wait 16 * 210 = 3,360 and end with 16 * 150 = 2,400
    of latency each."""
    from kernbench.report import summarize

    tile, nt = 4096, 16

    def stream(x_ptr, y_ptr, *, tl):
        x = tl.load(x_ptr, shape=(tile,), dtype="f16")
        for i in tl.range(0, nt):
            nxt = tl.load(x_ptr + 2 * tile * min(i + 1, nt - 1), shape=(tile,), dtype="f16")
            tl.store(y_ptr + 2 * tile * i, x * 2.0)
            x = nxt

    ctx = kernbench.Context("default")
    x, y = ctx.empty((tile * nt,), "f16"), ctx.empty((tile * nt,), "f16")
    r = ctx.launch(stream, (8, 1), x, y, mode="timing")
    assert r.cycles == 33 * 392 + 14
    bound = summarize(r)["bound"]
    assert (bound["resource"], bound["cycles"]) == ("memory channel", 33 * 256)
    shares = [s for s in r.critical_path().shares() if s["kind"] == "channel"]
    assert len(shares) == 2 and all(s["slack"] == 16 * 210 and s["latency"] == 16 * 150 for s in shares)
    assert "sharing the memory channel (3,360 cycles waiting) and its latency (2,400 cycles)" in \
        r.critical_path().summary()


def test_a_credit_bound_send_says_its_credit_stall():
    """A review's case: a link whose credit round trip binds (docs/hardware-model.md, "SFR links")
    ran 51x its bound, and the path said only "100% TX_E send". A busy send's share now gives its
    credit stall, every recv posted in time.

    Derivation (P = 8, b = 4, Q = 1, h = 50): the 16 KiB message is 2,048 packets of ser = 2.
    The send starts at T = 72 (its tl.zeros: 4,096 / 64 lanes + 8), the recv is posted at 0.
    With one credit each packet waits for the one before's: s_i = c_{i-1} = s_{i-1} + 2 + 50 +
    50, so e_last = 72 + 2,047 * 102 + 2 = 208,868, busy 208,796, of which credit stall
    208,796 - 2,048 * 2 = 204,700."""
    ctx = kernbench.Context("default", overrides={
        "n_cubes": 1, "pes_per_cube": 2, "link.rx_queue_packets": 1, "link.packet_bytes": 8,
        "link.bytes_per_cycle": 4})
    ctx.install_sfr("pe")

    def k(*, tl):
        if tl.program_id(0) == 0:
            tl.send(dir="E", src=tl.zeros((64, 64), "f32"))
        else:
            tl.sum(tl.recv(dir="W", shape=(64, 64), dtype="f32"))

    r = ctx.launch(k, (2, 1), mode="timing")
    fx = command_facts(r)
    send = int(np.flatnonzero(fx.opcode == Opcode.SEND)[0])
    assert (int(fx.start[send]), int(fx.end[send]), int(fx.credit[send])) == (72, 208868, 204700)
    cp = r.critical_path()
    top = cp.shares()[0]
    assert (top["unit"], top["kind"], top["credit"]) == ("TX_E", "busy", 204700)
    assert ("TX_E send to E (64,64) f32 (204,700 cycles of it waiting for credits, every recv posted "
            "in time: the link's credit round trip, link.rx_queue_packets and packet_bytes)") in cp.summary()


def test_a_command_queued_ahead_of_one_needed_sooner_is_named():
    """A review's case: weight loads issued before the tiles the first dot reads sit ahead of
    them in the PE's in-order DMA queue; the path read "sharing the memory channel" and moving
    the loads after the loop made the kernel slower. The share now says which load it sat ahead
    of and which command reads that one sooner; issuing in first-read order gains exactly the
    queued loads' time.

    Derivation (default preset, one PE: no channel sharing): a (64,64) f16 load is 16 bursts
    of 2 cycles plus 150 of latency = 182, one at a time on the DMA unit. Issued early, the 4
    w2 loads end at 728, x and w1 at 910 and 1,092, and the first dot starts at 1,092; in
    first-read order x and w1 end at 364 and the dot starts there, 4 * 182 = 728 sooner. The
    dot takes 4 folds of 64 + 32 + 32 - 2 = 126 cycles = 504 and its cast 64 + 8 = 72, so the
    second dot, at 364 + 576 = 940, finds w2[0] loaded (546) and every later dot its w2 tile
    (the last, 1,092): the launch ends 728 cycles sooner, and no share is queued ahead."""
    T = 64

    def kernel(early):
        def k(x_ptr, w1_ptr, w2_ptr, o_ptr, *, tl):
            if early:
                w2 = [tl.load(w2_ptr + i * T * T * 2, shape=(T, T), dtype="f16") for i in range(4)]
            x = tl.load(x_ptr, shape=(T, T), dtype="f16")
            w1 = tl.load(w1_ptr, shape=(T, T), dtype="f16")
            if not early:
                w2 = [tl.load(w2_ptr + i * T * T * 2, shape=(T, T), dtype="f16") for i in range(4)]
            h = tl.cast(tl.dot(x, w1), "f16")
            acc = tl.dot(h, w2[0])
            for i in range(1, 4):
                acc = acc + tl.dot(h, w2[i])
            tl.store(o_ptr, acc)
        return k

    ctx = kernbench.Context("default")
    args = (ctx.empty((T, T), "f16"), ctx.empty((T, T), "f16"), ctx.empty((4 * T, T), "f16"),
            ctx.empty((T, T), "f32"))
    early, late = (ctx.launch(kernel(e), (1, 1), *args, mode="timing") for e in (True, False))
    fx = command_facts(early)
    dot = int(np.flatnonzero(fx.opcode == Opcode.DOT)[0])
    assert int(fx.start[dot]) == 6 * 182 and int(command_facts(late).start[dot]) == 2 * 182
    assert early.cycles - late.cycles == 4 * 182
    cp = early.critical_path()
    queued = [s for s in cp.shares() if s["ahead"]]
    line = lambda s: s.rsplit(":", 1)[1]  # noqa: E731
    assert len(queued) == 1 and queued[0]["unit"] == "DMA" and queued[0]["label"] == "load (64,64) f16 from a2"
    a = queued[0]["ahead"]
    # (cycles: the x and w1 loads could have started at 0, and started at 728, behind the four;
    # the dot reads nothing else and is the GEMM's first: it starts 728 sooner)
    assert (a["label"], a["consumer"], a["commands"], a["cycles"], a["later_run"]) == (
        "load (64,64) f16 from a1", "dot (64,64)x(64,64) f16", 2, 4 * 182, False)
    assert int(line(a["consumer_short"])) == int(line(a["short"])) + 3  # (the dot, 3 lines below w1's load)
    assert (f"(ahead, in its DMA order, of 2 commands up to load (64,64) f16 from a1 at {a['short']}, which "
            f"dot (64,64)x(64,64) f16 at {a['consumer_short']} reads sooner: it could start up to 728 "
            f"cycles sooner here; issue those first)") in cp.summary()
    assert not any(s["ahead"] for s in late.critical_path().shares())


def test_a_store_ahead_of_a_load_of_its_own_array_is_not_called_reorderable():
    """A review: a spill stored and read back got "(ahead ... of load from a1 ...: issue it
    first)", which would read the array before the store writes it. A store and a later load or
    store of the same device array keep their order; of another array, the note stands."""
    T = 64

    def spill(x_ptr, tmp_ptr, o_ptr, *, tl):
        x = tl.load(x_ptr, shape=(T, T), dtype="f32")
        tl.store(tmp_ptr, tl.exp(x))
        b = tl.load(tmp_ptr if tl.program_id(0) >= 0 else o_ptr, shape=(T, T), dtype="f32")
        tl.store(o_ptr, b * 2.0)

    def other(x_ptr, tmp_ptr, o_ptr, *, tl):
        x = tl.load(x_ptr, shape=(T, T), dtype="f32")
        tl.store(tmp_ptr, tl.exp(x))
        b = tl.load(o_ptr, shape=(T, T), dtype="f32")
        tl.store(x_ptr, b * 2.0)

    ctx = kernbench.Context("default")
    for kernel, noted in ((spill, False), (other, True)):
        r = ctx.launch(kernel, (1, 1), *(ctx.empty((T, T), "f32") for _ in range(3)), mode="timing")
        queued = [s for s in r.critical_path().shares() if s["ahead"]]
        assert bool(queued) == noted and ("issue it first" in r.critical_path().summary()) == noted
        if noted:
            assert queued[0]["label"].startswith("store (64,64) f32 to ") and queued[0]["ahead"]["commands"] == 1


def test_a_launch_read_back_from_json_keeps_the_ahead_note_of_a_store(tmp_path):
    """A review: the note on a store ahead of a load of another array was lost on a launch read
    back by from_json: the file kept no device arrays, and with none known every store counts as
    one array with every load. The file keeps each command's array (``arrays``), written per
    command by to_json and per site by write_json; a file without them (written before) still
    loads, its stores' notes withheld, the conservative side."""
    import json

    from kernbench.report import from_json

    T = 64

    def spill(x_ptr, tmp_ptr, o_ptr, *, tl):
        x = tl.load(x_ptr, shape=(T, T), dtype="f32")
        tl.store(tmp_ptr, tl.exp(x))
        tl.store(o_ptr, tl.load(tmp_ptr, shape=(T, T), dtype="f32") * 2.0)

    def other(x_ptr, tmp_ptr, o_ptr, *, tl):
        x = tl.load(x_ptr, shape=(T, T), dtype="f32")
        tl.store(tmp_ptr, tl.exp(x))
        tl.store(x_ptr, tl.load(o_ptr, shape=(T, T), dtype="f32") * 2.0)

    ctx = kernbench.Context("default")
    x, tmp, o = (ctx.empty((T, T), "f32", name=n) for n in ("x", "tmp", "o"))
    for kernel, noted in ((spill, False), (other, True)):
        r = ctx.launch(kernel, (1, 1), x, tmp, o, mode="timing")
        doc = r.to_json()
        names = {"spill": ["x", None, "tmp", "tmp", None, "o"], "other": ["x", None, "tmp", "o", None, "x"]}
        assert doc["arrays"] == names[kernel.__name__]  # (load, exp, store, load, mul, store)
        path = tmp_path / "r.json"
        r.write_json(path)
        assert path.read_text() == json.dumps(doc)
        want = r.critical_path().to_dict()
        assert any(s["ahead"] for s in r.critical_path().shares()) == noted
        for back in (from_json(doc), from_json(path)):
            assert [back.arrays(i) for i in range(6)] == doc["arrays"]
            assert json.loads(json.dumps(back.critical_path().to_dict())) == json.loads(json.dumps(want))
        # (a breaker: a launch loaded from a dict changed with it, past from_json's checks)
        back = from_json(doc)
        doc["arrays"][2], doc["labels"][2] = "x", "edited"
        assert back.arrays(2) == "tmp" and back.label(2) != "edited"
        args = json.dumps(back.args)
        doc["kernel"]["args"]["x_ptr"]["name"], doc["extra"]["k"] = "edited", "edited"
        assert json.dumps(back.args) == args and "k" not in back.extra
        doc["kernel"]["args"]["x_ptr"]["name"] = "x"
        del doc["extra"]["k"]
        doc["arrays"][2], doc["labels"][2] = "tmp", r.label(2)
        del doc["arrays"]
        old = from_json(doc)
        assert old.arrays is None and not any(s["ahead"] for s in old.critical_path().shares())


def test_the_ahead_note_needs_the_queued_inputs_ready_and_names_a_later_run():
    """A review's two cases. A load gated by after= on a tensor made after the command it would
    pass: moved first it holds the in-order DMA unit idle (2,954 -> 3,131 cycles), so no note.
    In a loop, the accumulator's add sits ahead, on VECTOR, of the next iteration's cast chain
    that the next dot reads: the note says the commands are a later run of their line (the next
    iteration's), and issuing them first, a software pipeline, is faster."""
    T, N = 64, 8

    def gated(x_ptr, w_ptr, o_ptr, *, tl):
        w = tl.load(w_ptr, shape=(T, 4 * T), dtype="f16")
        g = tl.full((8, 8), 0.5, "f32")
        for _ in range(20):
            g = tl.exp(g)
        x = tl.load(x_ptr, shape=(T, T), dtype="f16", after=g)
        tl.store(o_ptr, tl.dot(tl.cast(x + 1.0, "f16"), w))

    def loop(a_ptr, w_ptr, o_ptr, *, tl):
        acc = tl.zeros((T, T), "f32")
        for i in range(N):
            w = tl.load(w_ptr + i * T * T * 2, shape=(T, T), dtype="f16")
            a = tl.load(a_ptr + i * T * T * 2, shape=(T, T), dtype="f16")
            y = tl.cast(tl.exp(tl.cast(a, "f32") * 0.01), "f16")
            acc = tl.dot(y, w, acc=acc)
        tl.store(o_ptr, acc)

    def piped(a_ptr, w_ptr, o_ptr, *, tl):  # the next iteration's y before this one's add
        acc = tl.zeros((T, T), "f32")
        y = tl.cast(tl.exp(tl.cast(tl.load(a_ptr, shape=(T, T), dtype="f16"), "f32") * 0.01), "f16")
        for i in range(N):
            d = tl.dot(y, tl.load(w_ptr + i * T * T * 2, shape=(T, T), dtype="f16"))
            a = tl.load(a_ptr + min(i + 1, N - 1) * T * T * 2, shape=(T, T), dtype="f16")
            y = tl.cast(tl.exp(tl.cast(a, "f32") * 0.01), "f16")
            acc = acc + d
        tl.store(o_ptr, acc)

    ctx = kernbench.Context("default")
    r = ctx.launch(gated, (1, 1), ctx.empty((T, T), "f16"), ctx.empty((T, 4 * T), "f16"),
                   ctx.empty((T, 4 * T), "f32"), mode="timing")
    assert not any(s["ahead"] for s in r.critical_path().shares())
    args = (ctx.empty((N * T, T), "f16"), ctx.empty((N * T, T), "f16"), ctx.empty((T, T), "f32"))
    r = ctx.launch(loop, (1, 1), *args, mode="timing")
    # (also w's load, ahead of a's that the first cast reads: the DMA share's own note)
    queued = [s for s in r.critical_path().shares() if s["ahead"] and s["unit"] == "VECTOR"]
    assert len(queued) == 1 and queued[0]["label"].startswith("add ")
    a = queued[0]["ahead"]
    assert a["later_run"] and a["label"].startswith("cast (64,64) f16") and a["commands"] == 4
    assert f"up to {a['label']} at {a['short']} (a later run of its line), which dot" in r.critical_path().summary()
    assert ctx.launch(piped, (1, 1), *args, mode="timing").cycles < r.cycles


def helper_doubles(tl, x):  # (defined above the kernel that calls it: no loop for all that)
    return x + x


def test_a_note_too_small_to_show_is_still_said_and_the_launch_end_is_a_reader():
    """A review's cases. A dot's accumulating add ahead, on VECTOR, of a helper's add the next
    store reads: its share is too small for the summary's top four, yet its order costs most;
    every note follows the shares ("; also ..."). The helper's line is above the kernel's but
    ran nowhere before: not "a later run of its line". The store of y ahead of the store ending the
    launch: reordered, the launch ends sooner by the idle time the note gives (136 cycles: the
    unit waited for y while acc's store was ready), and issuing y's add first gains more."""
    def kernel(order):
        def k(a_ptr, b_ptr, x_ptr, o_ptr, c_ptr, *, tl):
            a = tl.load(a_ptr, shape=(64, 512), dtype="f16")
            b = tl.load(b_ptr, shape=(512, 128), dtype="f16")
            x = tl.load(x_ptr, shape=(8192,), dtype="f32")
            if order == "y first":
                y = helper_doubles(tl, x)
            acc = tl.dot(a, b)
            acc = tl.dot(a, b, acc=acc)
            if order != "y first":
                y = helper_doubles(tl, x)
            if order == "stores swapped":
                tl.store(c_ptr, acc)
                tl.store(o_ptr, y)
            else:
                tl.store(o_ptr, y)
                tl.store(c_ptr, acc)
        return k

    ctx = kernbench.Context("default")
    args = (ctx.empty((64, 512), "f16"), ctx.empty((512, 128), "f16"), ctx.empty((8192,), "f32"),
            ctx.empty((8192,), "f32"), ctx.empty((64, 128), "f32"))
    cyc = {o: ctx.launch(kernel(o), (1, 1), *args, mode="timing") for o in ("as is", "stores swapped", "y first")}
    cp = cyc["as is"].critical_path()
    notes = {s["unit"]: s for s in cp.shares() if s["ahead"]}
    assert set(notes) == {"VECTOR", "DMA"}
    v, d = notes["VECTOR"]["ahead"], notes["DMA"]["ahead"]
    assert v["label"] == "add (8192,) f32" and not v["later_run"] and v["consumer"].startswith("store (8192,)")
    assert d["consumer"] is None and d["label"] == "store (64,128) f32 to a4"
    assert cyc["as is"].cycles - cyc["stores swapped"].cycles == d["cycles"] > 0
    assert cyc["y first"].cycles < cyc["stores swapped"].cycles
    text = cp.summary()
    assert all(notes[u]["fraction"] < 0.05 for u in notes)  # (neither share in the top four)
    assert text.count("; also ") == 2 and ", which ends the launch: it could end up to 136 cycles sooner; issue it first)" in text
    assert text.index("; also VECTOR") < text.index("; also DMA")  # (the costliest first)


def test_a_reorder_note_gives_what_the_reader_gains_not_the_whole_wait():
    """The causal prefill panel's store of o ahead of the next K/V group's loads holds them
    619,266 cycles, but the group's first dot waits for the GEMM unit anyway (no note). Here: a
    store waiting for a long VECTOR chain sits ahead of w's load; the dot reading w also needs
    d0 (GEMM, done long before). The note's cycles are the dot's start past d0's end and its
    GEMM predecessor's, less than the load's whole wait."""
    T = 64

    def k(x_ptr, w_ptr, o_ptr, *, tl):
        x = tl.load(x_ptr, shape=(T, T), dtype="f32")
        big = tl.load(w_ptr, shape=(T, T), dtype="f16")
        d0 = tl.dot(big, big)
        s = x
        for _ in range(10):
            s = tl.exp(s * 0.5)
        tl.store(o_ptr, s)
        w = tl.load(w_ptr, shape=(T, T), dtype="f16")
        tl.store(o_ptr, tl.dot(w, w, acc=d0))

    ctx = kernbench.Context("default")
    r = ctx.launch(k, (1, 1), ctx.empty((T, T), "f32"), ctx.empty((T, T), "f16"), ctx.empty((T, T), "f32"),
                   mode="timing")
    fx = command_facts(r)
    dots = np.flatnonzero(fx.opcode == Opcode.DOT)
    loads = np.flatnonzero(fx.opcode == Opcode.LOAD)
    d2, w_load = int(dots[-1]), int(loads[-1])
    store = int(fx.prev[w_load])  # (the store of s, ahead of w's load on the DMA unit)
    assert fx.opcode[store] == Opcode.STORE
    inputs = [int(p) for p in fx.producers[d2] if p >= 0 and p != w_load] + [int(fx.prev[d2])]
    gain = int(fx.start[d2]) - max(int(fx.end[p]) for p in inputs)
    wait = int(fx.start[w_load]) - int(fx.end[fx.prev[store]])  # (from the unit's command before the store)
    note = [s["ahead"] for s in r.critical_path().shares() if s["ahead"] and s["unit"] == "DMA"]
    assert len(note) == 1 and note[0]["label"].startswith("load (64,64) f16 from ") and note[0]["consumer"].startswith("dot")
    assert 0 < note[0]["cycles"] == gain < wait


def test_reorder_notes_that_would_change_values_or_overstate_the_gain_are_not_given():
    """A breaker's three cases. Two recvs on one port, the second read first: swapping them
    swaps their messages (a port pairs in order), so no note on link units. One line storing to
    two arrays ahead of a load reading the first back: the whole run passed is checked, not its
    last store, so no note. A dot reading x and w0, x queued behind four weight loads: moving x
    first delays w0 by x's load, so the dot starts 3 x 182 = 546 sooner, not 728 (two 182-cycle
    loads on one serial DMA unit come first whatever the order)."""
    ctx2 = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    ctx2.install_sfr("pe")

    def two_recvs(x_ptr, *, tl):
        if tl.program_id(0) == 0:
            tl.send(dir="E", src=tl.full((16, 16), 1.0, "f32"))
            tl.send(dir="E", src=tl.full((16, 16), 2.0, "f32"))
        else:
            x = tl.load(x_ptr, shape=(256, 256), dtype="f16")
            a = tl.recv(dir="W", shape=(16, 16), dtype="f32", after=tl.dot(x, x))
            b = tl.recv(dir="W", shape=(16, 16), dtype="f32")
            tl.exp(tl.exp(b) + a)

    r = ctx2.launch(two_recvs, (2, 1), ctx2.empty((256, 256), "f16"), mode="timing")
    steps = r.critical_path().step_dicts()
    assert any(s["unit"] == "RX_W" and s["via"] == "unit order" for s in steps)  # (the case arises)
    assert not any(s["ahead"] for s in r.critical_path().shares())

    ctx = kernbench.Context("default")

    def two_stores(x_ptr, a_ptr, b_ptr, o_ptr, *, tl):
        t = tl.exp(tl.exp(tl.exp(tl.load(x_ptr, shape=(64, 64), dtype="f32"))))
        for p in (a_ptr, b_ptr):
            tl.store(p, t)
        y = tl.cast(tl.load(a_ptr, shape=(64, 64), dtype="f32"), "f16")
        tl.store(o_ptr, tl.dot(y, y))

    r = ctx.launch(two_stores, (1, 1), *(ctx.empty((64, 64), "f32") for _ in range(4)), mode="timing")
    assert not any(s["ahead"] for s in r.critical_path().shares())

    def weights_first(order):
        def k(w_ptr, x_ptr, o_ptr, *, tl):
            if order == "as is":
                ws = [tl.load(w_ptr + i * 64 * 64 * 2, shape=(64, 64), dtype="f16") for i in range(4)]
                x = tl.load(x_ptr, shape=(64, 64), dtype="f16")
            else:
                x = tl.load(x_ptr, shape=(64, 64), dtype="f16")
                ws = [tl.load(w_ptr + i * 64 * 64 * 2, shape=(64, 64), dtype="f16") for i in range(4)]
            acc = tl.dot(x, ws[0])
            for i in range(1, 4):
                acc = tl.dot(tl.cast(acc, "f16"), ws[i])
            tl.store(o_ptr, acc)
        return k

    args = (ctx.empty((256, 64), "f16"), ctx.empty((64, 64), "f16"), ctx.empty((64, 64), "f32"))
    before, after = (ctx.launch(weights_first(o), (1, 1), *args, mode="timing") for o in ("as is", "x first"))
    notes = [s["ahead"] for s in before.critical_path().shares() if s["ahead"]]
    assert len(notes) == 1 and notes[0]["cycles"] == 3 * 182 == before.cycles - after.cycles


def test_a_reader_input_made_from_a_passed_command_and_another_pe_ending_close_are_counted():
    """Two breaker cases. The dot reads x (queued behind four weight loads) and h, made from
    w0, one of the loads x would pass: moved first, x pushes w0 and so h back by its load.
    Derivation (one PE; loads 182 cycles, cast and mul 64 + 8 = 72): as is w0 ends 182, h 398,
    x 910, the dot starts 910; x first: x 182, w0 364, h 580, the dot 580: 330 sooner, the
    note's figure. Two PEs whose stores' values come in opposite orders: the store note ending
    the launch on PE 0 would delay PE 1, which ends within its cycles: no note."""
    T = 64

    def made_from(order):
        def k(w_ptr, x_ptr, o_ptr, *, tl):
            if order == "as is":
                ws = [tl.load(w_ptr + i * T * T * 2, shape=(T, T), dtype="f16") for i in range(4)]
                x = tl.load(x_ptr, shape=(T, T), dtype="f16")
            else:
                x = tl.load(x_ptr, shape=(T, T), dtype="f16")
                ws = [tl.load(w_ptr + i * T * T * 2, shape=(T, T), dtype="f16") for i in range(4)]
            h = tl.cast(tl.cast(ws[0], "f32") * 2.0, "f16")
            acc = tl.dot(x, h)
            for i in range(1, 4):
                acc = tl.dot(tl.cast(acc, "f16"), ws[i])
            tl.store(o_ptr, acc)
        return k

    ctx = kernbench.Context("default")
    args = (ctx.empty((4 * T, T), "f16"), ctx.empty((T, T), "f16"), ctx.empty((T, T), "f32"))
    before, after = (ctx.launch(made_from(o), (1, 1), *args, mode="timing") for o in ("as is", "x first"))
    dot = lambda r: int(command_facts(r).start[np.flatnonzero(command_facts(r).opcode == Opcode.DOT)[0]])  # noqa: E731
    assert (dot(before), dot(after)) == (910, 580)
    notes = [s["ahead"] for s in before.critical_path().shares() if s["ahead"]]
    assert len(notes) == 1 and notes[0]["cycles"] == 330

    NE, ND, NS, NM = [40, 1], [1, 5], [0, 2], [0, 3]  # per PE: y's muls, acc's dots, small dots, muls

    def imbalanced(a_ptr, b_ptr, x_ptr, o_ptr, c_ptr, *, tl):
        pid = tl.program_id(0)
        a = tl.load(a_ptr, shape=(64, 64), dtype="f16")
        b = tl.load(b_ptr, shape=(16, 64), dtype="f16")
        y = tl.load(x_ptr + pid * 4096 * 4, shape=(4096,), dtype="f32")
        for _ in range(NE[pid]):
            y = y * 0.5
        acc = tl.dot(a, a)
        for _ in range(ND[pid] - 1):
            acc = tl.dot(a, a, acc=acc)
        for _ in range(NS[pid]):
            acc = tl.dot(tl.trans(b), b, acc=acc)
        for _ in range(NM[pid]):
            acc = acc * 1.0
        tl.store(o_ptr + pid * 4096 * 4, y)
        tl.store(c_ptr + pid * 64 * 64 * 4, acc)

    r = ctx.launch(imbalanced, (2, 1), ctx.empty((64, 64), "f16"), ctx.empty((16, 64), "f16"),
                   ctx.empty((2 * 4096,), "f32"), ctx.empty((2 * 4096,), "f32"), ctx.empty((128, 64), "f32"),
                   mode="timing")
    fx = command_facts(r)
    ends = [int(fx.end[fx.pe == p].max()) for p in (0, 1)]
    assert min(ends) > r.cycles - 214  # (the case: the other PE ends close)
    assert not any(s["ahead"] and s["ahead"]["consumer"] is None for s in r.critical_path().shares())


def _store_then_load(x_ptr, y_ptr, *, tl, reorder=False):
    x0 = tl.load(x_ptr, shape=(1024,), dtype="f32")
    if reorder:
        x1 = tl.load(x_ptr + 4096, shape=(1024,), dtype="f32")
    tl.store(y_ptr, x0 * 2.0 + 1.0)
    if not reorder:
        x1 = tl.load(x_ptr + 4096, shape=(1024,), dtype="f32")
    tl.store(y_ptr + 4096, x1 * 2.0 + 1.0)


def test_a_notes_figure_is_the_readers_wait_here_not_the_launchs_gain():
    """(a review read "214 cycles late" as the launch's gain: moving the load gained 96.) One PE,
    default hardware: a 4 KiB DMA command is 16 + 150 = 166 cycles, a mul or add of 1,024 f32
    elements 16 + 8 = 24. As written: load x0 [0, 166), mul [166, 190), add [190, 214), store
    [214, 380), load x1 [380, 546), mul, add [546, 594), store [594, 760). The mul of x1 could
    start at 166 + 166 = 332 with x1 loaded first: 214 cycles sooner, the note's figure. Reordered:
    load x1 [166, 332), store [332, 498), store of x1's [498, 664): 664 cycles, 96 sooner (the
    store still runs on the DMA unit between them)."""
    got = {}
    for ro in (False, True):
        ctx = kernbench.Context("default")
        x, y = ctx.empty((2048,), "f32"), ctx.empty((2048,), "f32")
        got[ro] = ctx.launch(_store_then_load, (1, 1), x, y, reorder=ro)
    assert (got[False].cycles, got[True].cycles) == (760, 664)
    (a,) = [s["ahead"] for s in got[False].critical_path().shares() if s["ahead"]]
    assert a["cycles"] == 214 and a["label"].startswith("load (1024,) f32")
    assert "reads sooner: it could start up to 214 cycles sooner here; issue it first)" in (
        got[False].critical_path().summary())


def _long_dots(a_ptr, b_ptr, o_ptr, reps, *, tl):
    a = tl.load(a_ptr, shape=(2 ** 13, 2 ** 24), dtype="f32")
    b = tl.load(b_ptr, shape=(2 ** 24, 2 ** 13), dtype="f32")
    c = tl.zeros((2 ** 13, 2 ** 13), "f32")
    for _ in tl.range(0, reps):
        c = tl.dot(a, b, acc=c)
    tl.store(o_ptr, c)


def test_shares_sum_their_steps_exactly_past_two_to_the_53():
    """A 4.5e18-cycle launch (within the 2**62 bound): a 1 x 1 array at 1 B/cycle of SRAM, 500
    dots of (8192, 2**24) x (2**24, 8192). The shares' slack was summed in float64: the dots'
    read -2**63 (their sum passes 2**63) and the store's was 8 off (a review). Each is now its
    steps' exact sum, a Python int past int64."""
    import warnings

    hw = kernbench.load_hw("default").with_overrides({"gemm.rows": 1, "gemm.cols": 1, "sram.bytes_per_cycle": 1,
                                                      "sram.capacity_bytes": 2 ** 62})
    ctx = kernbench.Context(hw)
    m, k = 2 ** 13, 2 ** 24
    r = ctx.launch(_long_dots, (1, 1), ctx.empty((m, k), "f32"), ctx.empty((k, m), "f32"), ctx.empty((m, m), "f32"),
                   500, mode="timing")
    assert 2 ** 62 > r.cycles > 2 ** 61
    cp = r.critical_path()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the float path warned "invalid value encountered in cast")
        shares = cp.to_dict()["shares"]
    steps = cp.steps
    assert all(sh["slack"] >= 0 for sh in shares)
    dots = [i for i in range(len(steps)) if r.label(int(steps["cmd"][i])).startswith("dot")]
    (gemm,) = [sh for sh in shares if sh["unit"] == "GEMM"]
    assert gemm["slack"] == sum(int(steps["slack"][i]) for i in dots) > 2 ** 63
    assert sum(sh["cycles"] for sh in shares) == r.cycles
    # the profile's stalls by line, summed the same way (they were float64 sums too): each
    # cause's lines add up to the engine's counter
    lines = profile(r)["lines"]
    for cause in ("operand", "credit", "data", "arbitration"):
        assert sum(d["stall"][cause] for d in lines) == int(r.unit_counters[f"stall_{cause}"].sum()), cause


def _ahead_reader(x_ptr, w_ptr, o_ptr, *, tl, first=False):
    x = tl.load(x_ptr, shape=(64, 64), dtype="f16")
    y = tl.dot(x, x)
    if not first:
        tl.store(o_ptr, y)
    a = tl.load(w_ptr, shape=(64, 64), dtype="f16")
    b = tl.load(w_ptr + 2 * 64 * 64, shape=(64, 64), dtype="f16", after=y)
    if first:
        tl.store(o_ptr, y)
    tl.store(o_ptr + 4 * 64 * 64, a + b)


def _ahead_end(x_ptr, w_ptr, o_ptr, *, tl, first=False, elsewhere=False):
    x = tl.load(x_ptr, shape=(64, 64), dtype="f32")
    g1 = tl.exp(x)
    g2 = g1 + 1.0
    if elsewhere:
        tl.exp(tl.dot(x, x))  # (GEMM, then VECTOR: ends at 982 whatever the DMA order)
    if not first:
        tl.load(w_ptr, shape=(64, 64), dtype="f32", after=g2)
    tl.store(o_ptr, x)
    tl.load(w_ptr + 4 * 64 * 64, shape=(64, 64), dtype="f32", after=g1)
    if first:
        tl.load(w_ptr, shape=(64, 64), dtype="f32", after=g2)


def test_the_ahead_figure_issues_the_run_command_by_command():
    """A review's two cases, where the run behind waited as a whole for its latest input and
    the figure came out short of what issuing it first gains (214 for 396; 72 for 286). One PE,
    default hardware: a (64,64) f16 load is 16 bursts of 2 cycles + 150 = 182, f32 32 + 150 =
    214 (a store too); a (64,64) dot 4 folds of 126 = 504; a 4,096-element add 64 + 8 = 72, exp
    4 * 64 + 8 = 264.

    Reader: load x [0, 182), dot [182, 686), store y [686, 900), load a [900, 1082), load b
    (after y) [1082, 1264), add [1264, 1336). Issued first from 182, a runs [182, 364) and b,
    gated by y, [686, 868): the add starts at 868, 396 sooner, the note's figure (the launch:
    1,550 -> 1,296, as the store still runs after).
    Launch end: load x [0, 214), exp [214, 478), add [478, 550), load (after g2) [550, 764),
    store x [764, 978), load (after g1) [978, 1192). Issued first from 214: the store [214,
    428), the gated load [478, 692), then the passed load [692, 906): 286 sooner."""
    for kernel, dtype, consumer, want, cycles in ((_ahead_reader, "f16", "add (64,64) f16", 396, (1550, 1296)),
                                                  (_ahead_end, "f32", None, 286, (1192, 906))):
        ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
        args = (ctx.empty((64, 64), dtype, name="x"), ctx.empty((2 * 64 * 64,), dtype, name="w"),
                ctx.empty((2 * 64 * 64,), "f32", name="o"))
        before, after = (ctx.launch(kernel, (1, 1), *args, first=f, mode="timing") for f in (False, True))
        assert (before.cycles, after.cycles) == cycles
        (a,) = [s["ahead"] for s in before.critical_path().shares() if s["ahead"]]
        assert (a["consumer"], a["cycles"], a["commands"], a["places"]) == (consumer, want, 2, 1)
        if consumer is not None:
            fa, fb = command_facts(after), command_facts(before)
            add_a, add_b = (int(np.flatnonzero(f.opcode == Opcode.VEC)[-1]) for f in (fa, fb))
            assert int(fb.start[add_b]) - int(fa.start[add_a]) == want
        else:
            assert before.cycles - after.cycles == want


def _ahead_loop(x_ptr, w_ptr, o_ptr, N, *, tl, piped=False):
    T = 64
    if piped:
        a = tl.load(x_ptr, shape=(T, T), dtype="f16")
        b = tl.load(w_ptr, shape=(T, T), dtype="f16")
    for i in tl.range(0, N):
        if not piped:
            a = tl.load(x_ptr + 2 * T * T * i, shape=(T, T), dtype="f16")
            b = tl.load(w_ptr + 2 * T * T * i, shape=(T, T), dtype="f16")
        y = tl.exp(tl.dot(a, b))
        if piped and i + 1 < N:
            a = tl.load(x_ptr + 2 * T * T * (i + 1), shape=(T, T), dtype="f16")
            b = tl.load(w_ptr + 2 * T * T * (i + 1), shape=(T, T), dtype="f16")
        tl.store(o_ptr + 4 * T * T * i, y)


def test_an_order_a_loop_repeats_is_noted_with_its_places():
    """A review: a store ahead of the next iteration's loads gets one note whatever the trip
    count, and its figure is the first place's; a software pipeline gains about that at every
    iteration, far more than the figure. The note says at how many places the path meets the
    order: N - 1 (the last iteration's store has no next loads).

    One PE: f16 loads 182, the dot 504, exp of 4,096 f32 4 * 64 + 8 = 264, the f32 store 214.
    Iteration 0: loads [0, 364), dot [364, 868), exp [868, 1132), store [1132, 1346); iteration
    1's loads [1346, 1710), its dot from 1,710. Issued first, from 364, those loads end at 728,
    and the dot waits only for the GEMM's dot before it (868): 842 sooner, the first place's
    figure. With two iterations that is the one place and the pipeline's whole gain; with
    eight, the pipeline gains at each of the 7 places (5,896 if each gained the figure; some
    less, as the stores still run between the loads)."""
    T = 64
    for n, places in ((2, 1), (8, 7)):
        ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
        args = (ctx.empty((n * T * T,), "f16", name="x"), ctx.empty((n * T * T,), "f16", name="w"),
                ctx.empty((n * T * T,), "f32", name="o"))
        before, after = (ctx.launch(_ahead_loop, (1, 1), *args, n, piped=p, mode="timing") for p in (False, True))
        notes = [s["ahead"] for s in before.critical_path().shares() if s["ahead"] and s["unit"] == "DMA"]
        (a,) = [x for x in notes if x["consumer"] is not None and x["consumer"].startswith("dot")]
        assert (a["cycles"], a["places"], a["later_run"]) == (842, places, True)
        text = before.critical_path().summary()
        assert ("it could start up to 842 cycles sooner here" + (
            f" (the first of {places} such places on the path, each a gain of its own)" if places > 1 else "")
            + "; issue those first)") in text
        gain = before.cycles - after.cycles
        assert gain == 842 if places == 1 else 5 * 842 < gain <= 7 * 842


def test_a_share_just_short_of_the_whole_path_is_not_called_all_of_it():
    """A review: 99.5% of the path printed "100%" beside "0.5% in 2 more". The line's add of
    1,048,576 f32 at 400 cycles an op, 16,384 * 400 + 8 = 6,553,608, and its exp, 16,384 * 4 + 8
    = 65,544: 6,619,152 cycles. Its load and its store of 4 MiB, each 8,192 bursts of 512 B at
    256 B/cycle plus 150 of latency, 16,534, one after the other on the path: the launch is
    6,652,220 cycles, the add and exp 99.50% of it."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1, "vector.op_cycles.add": 400})

    def k(x_ptr, o_ptr, *, tl):
        tl.store(o_ptr, tl.exp(tl.load(x_ptr, shape=(1 << 20,), dtype="f32") + 1.0), shape=(1 << 20,))

    r = ctx.launch(k, (1, 1), ctx.empty((1 << 20,), "f32"), ctx.empty((1 << 20,), "f32"), mode="timing")
    top = r.critical_path().shares()[0]
    vector, dma = 16384 * 400 + 8 + 16384 * 4 + 8, 8192 * 2 + 150
    assert r.cycles == vector + 2 * dma and top["cycles"] == vector
    assert 0.995 <= top["fraction"] < 1
    assert r.critical_path().summary().startswith("critical path (4 steps on 1 PE): >99% VECTOR add")


def _ld(ptr, i, after=None, *, tl):  # (one line for two calls: a share of two commands)
    return tl.load(ptr + 2 * 64 * 64 * i, shape=(64, 64), dtype="f16", after=after)


def _end_passed_read(x_ptr, w_ptr, o_ptr, *, tl, first=False):
    x0 = tl.load(x_ptr, shape=(64, 64), dtype="f16")
    g2 = tl.exp(x0)
    if first:
        tl.load(w_ptr, shape=(64, 64), dtype="f16")
        tl.load(w_ptr + 2 * 64 * 64, shape=(64, 64), dtype="f16")
    p1 = _ld(x_ptr, 1, after=g2, tl=tl)
    _ld(x_ptr, 2, tl=tl)
    tl.exp(tl.exp(p1))
    if not first:
        tl.load(w_ptr, shape=(64, 64), dtype="f16")
        tl.load(w_ptr + 2 * 64 * 64, shape=(64, 64), dtype="f16")


def test_a_launch_end_note_counts_the_pes_other_units_and_what_reads_the_passed_commands():
    """A breaker's two one-PE cases. (1) The DMA unit could end 286 cycles sooner, but an exp
    chain on GEMM and VECTOR ends the launch at 982: load x [0, 214), exp [214, 478), add [478,
    550), dot 4 folds of 126 [214, 718), its exp [718, 982); DMA as is: the gated load [550,
    764), store [764, 978), load [978, 1192); issued first: store [214, 428), load after g1
    [478, 692), load after g2 [692, 906). The launch ends at 982: 210 sooner, the figure now.
    (2) The share's line issued two loads, the first read at once by an exp chain: moved after
    the run it pushes that chain past the old end (1,174 -> 1,256 cycles): no note."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    f32 = (ctx.empty((64, 64), "f32"), ctx.empty((2 * 64 * 64,), "f32"), ctx.empty((2 * 64 * 64,), "f32"))
    before, after = (ctx.launch(_ahead_end, (1, 1), *f32, first=f, elsewhere=True, mode="timing") for f in (False, True))
    (a,) = [s["ahead"] for s in before.critical_path().shares() if s["ahead"]]
    assert (before.cycles, after.cycles, a["consumer"], a["cycles"]) == (1192, 982, None, 210)
    f16 = (ctx.empty((3 * 64 * 64,), "f16"), ctx.empty((2 * 64 * 64,), "f16"), ctx.empty((2 * 64 * 64,), "f32"))
    before, after = (ctx.launch(_end_passed_read, (1, 1), *f16, first=f, mode="timing") for f in (False, True))
    assert (before.cycles, after.cycles) == (1174, 1256)
    assert not any(s["ahead"] for s in before.critical_path().shares())


def _reader_of_passed(x_ptr, w_ptr, o_ptr, *, tl, first=False, gated=False):
    x0 = tl.load(x_ptr, shape=(64, 64), dtype="f16")
    g = tl.exp(x0) if gated else x0 + x0
    if first:
        a = tl.load(w_ptr, shape=(64, 64), dtype="f16", after=None if gated else g)
        b = tl.load(w_ptr + 2 * 64 * 64, shape=(64, 64), dtype="f16")
    p1 = _ld(x_ptr, 1, after=g if gated else None, tl=tl)
    p2 = _ld(x_ptr, 2, tl=tl)
    x = p1 + p1
    if not first:
        a = tl.load(w_ptr, shape=(64, 64), dtype="f16", after=None if gated else g)
        b = tl.load(w_ptr + 2 * 64 * 64, shape=(64, 64), dtype="f16")
    tl.store(o_ptr, b + x)
    tl.store(o_ptr + 4 * 64 * 64, p2 + a)


def test_a_readers_input_made_from_a_passed_command_is_pushed_as_far_as_that_command():
    """A breaker's cases: the reader b + x reads x made from p1, one of the share's two loads,
    which the run's loads a and b would pass. The figure took p1 as pushed by the run's own time
    (364): wrong both ways. Loads 182, adds 72, exp 264, one PE.
    Ungated p1, a gated by g = x0 + x0 (ends 254): as is p1 [182, 364), p2, x [364, 436), a
    [546, 728), b [728, 910), the reader at 910. Issued first: a [254, 436) (its gate), b [436,
    618), p1 [618, 800): p1 pushed 436, x [800, 872), the reader at 872: 38 sooner (110 said).
    p1 gated by g = exp(x0) (ends 446), a not: as is p1 [446, 628), p2 [628, 810), a [810, 992),
    b [992, 1174), the reader at 1,174. Issued first: a [182, 364), b [364, 546), p1 [546, 728),
    x [728, 800), the reader at 800: 374 sooner (110 said)."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    args = (ctx.empty((3 * 64 * 64,), "f16"), ctx.empty((2 * 64 * 64,), "f16"), ctx.empty((2 * 64 * 64,), "f32"))
    for gated, want, starts in ((False, 38, (910, 872)), (True, 374, (1174, 800))):
        runs = [ctx.launch(_reader_of_passed, (1, 1), *args, first=f, gated=gated, mode="timing") for f in (False, True)]
        reader = []
        for r in runs:
            fx = command_facts(r)
            reader.append(int(fx.start[[c for c in range(len(fx.start)) if fx.opcode[c] == Opcode.VEC
                                        and r.source(c) == runs[0].source(int(np.flatnonzero(fx.opcode == Opcode.STORE)[0]))][0]]))
        assert tuple(reader) == starts
        notes = [s["ahead"] for s in runs[0].critical_path().shares() if s["ahead"] and s["ahead"]["commands"] == 2]
        assert len(notes) == 1 and notes[0]["cycles"] == want == starts[0] - starts[1]


def _two_orders(A_ptr, B_ptr, O_ptr, *, tl):
    S = 32
    c0 = tl.load(B_ptr, shape=(S, S), dtype="f16")
    for i in tl.range(0, 3):
        v0 = tl.exp(c0)
        tl.store(O_ptr + 4 * S * S * i, v0)
        v2 = tl.load(A_ptr + 2 * S * S * (2 * i), shape=(S, S), dtype="f16")
        v2 + v0
        tl.load(A_ptr + 2 * S * S * (2 * i + 1), shape=(S, S), dtype="f16")


def _behind_reads_passed(B_ptr, *, tl):
    S = 32
    v0, _u0 = tl.load(B_ptr, shape=(S, S), dtype="f16"), tl.load(B_ptr + 2 * S * S, shape=(S, S), dtype="f16")
    v1 = tl.load(B_ptr + 4 * S * S, shape=(S, S), dtype="f16", after=v0)
    v0 + v1


def test_places_count_one_order_and_a_run_that_reads_a_passed_command_gets_no_note():
    """A breaker's cases. In a loop of 3 the store sits ahead of the next load, which the add
    reads, in the first two iterations; in the last it sits ahead of two loads ending the
    launch, another order: 2 places, not 3. And a load gated by after= on one of the share's
    two loads (`v0, u0 = ...` on one line) cannot be issued before them: no note."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1, "dma.latency_cycles": 20})
    r = ctx.launch(_two_orders, (1, 1), ctx.empty((6 * 32 * 32,), "f16"), ctx.empty((32, 32), "f16"),
                   ctx.empty((3 * 32 * 32,), "f32"), mode="timing", replay="off")
    notes = [s["ahead"] for s in r.critical_path().shares() if s["ahead"] and s["unit"] == "DMA"]
    assert len(notes) == 1 and notes[0]["consumer"].startswith("add") and notes[0]["places"] == 2
    r = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    r = r.launch(_behind_reads_passed, (1, 1), r.empty((6 * 32 * 32,), "f16"), mode="timing")
    assert not any(s["ahead"] for s in r.critical_path().shares())
