"""Golden SFR link timing: packets, hop latency, credits and the receive queue.

docs/hardware-model.md, "SFR links", defaults P = 256 B packets, b = 32 B/cycle (ser = 8 cycles
per full packet), h = 50 cycles, Q = 32 packets. For packet i of a link:

    s_i = max(e_{i-1}, T_msg, c_{i-Q})   e_i = s_i + ser_i   a_i = e_i + h
    d_i = max(a_i, r_msg)                c_i = d_i + h       (c_{i-Q} = 0 for i < Q)

A send ends at e_last, a recv at d_last. Message sources are made with one vector fill of 64
elements: ceil(64/64)*1 + 8 = 9 cycles, so a send whose source is the first fill starts at T = 9.
"""
import time

import pytest
from engine_helpers import Machine, fill

from kernbench.common.pe_commands import Port, Unit
from kernbench.hw import SfrInstall, load_hw

Q = 32
HUNDRED_QUEUES = 100 * Q * 256  # 100 x the receive queue: 3200 packets, 819200 bytes


def _late_recv_tail(s, port, nbytes):
    """Operands a, b by two fills (0..9, 9..18), then the recv is posted after a dot that runs
    from 18 for one fold of 1000 + 32 + 32 - 2 = 1062 cycles, i.e. at r = 1080."""
    a, b = fill(s, 128), fill(s, 128)
    d = s.dot(a, b, 32, 32, 1000)
    return s.recv(port, nbytes, after=d)


def build_pair(hw=None) -> Machine:
    """PE (0,0) sends 16 KiB east to PE (1,0), whose recv is posted at cycle 0."""
    m = Machine(hw or load_hw())
    x = fill(m[0, 0], 16384)
    m[0, 0].send("E", x, 16384)
    m[1, 0].recv("W", 16384)
    return m


def build_late_recv(hw=None) -> Machine:
    """As build_pair, but PE (1,0) posts its recv at 1080, after a long GEMM."""
    m = Machine(hw or load_hw())
    x = fill(m[0, 0], 16384)
    m[0, 0].send("E", x, 16384)
    _late_recv_tail(m[1, 0], "W", 16384)
    return m


def build_two_messages_late(hw=None) -> Machine:
    """Two 8 KiB messages on one link; the first recv is posted late, the second right after it."""
    m = Machine(hw or load_hw())
    s = m[0, 0]
    x1, x2 = fill(s, 8192), fill(s, 8192)
    s.send("E", x1, 8192)
    s.send("E", x2, 8192)
    _late_recv_tail(m[1, 0], "W", 8192)
    m[1, 0].recv("W", 8192)
    return m


def build_exchange(hw=None, late=True) -> Machine:
    """PE 0 and PE 1 each send the other 100 x Q packets before either receives.

    late=True: both recvs are posted after a long GEMM (after=). late=False: the recv follows the
    send in program order (it runs on the RX unit, so it is posted at once)."""
    m = Machine(hw or load_hw())
    for p, port in ((0, "E"), (1, "W")):
        s = m[p, 0]
        if late:
            a, b = fill(s, 128), fill(s, 128)
            msg = fill(s, HUNDRED_QUEUES)
            d = s.dot(a, b, 32, 32, 1000)
            s.send(port, msg, HUNDRED_QUEUES)
            s.recv(port, HUNDRED_QUEUES, after=d)
        else:
            msg = fill(s, HUNDRED_QUEUES)
            s.send(port, msg, HUNDRED_QUEUES)
            s.recv(port, HUNDRED_QUEUES)
    return m


def build_chain(hw=None, install=None, members=None, nbytes=1024) -> Machine:
    """A message passed along ``members`` (recv from W, forward E); the first member starts it."""
    m = Machine(hw or load_hw(), install or SfrInstall("pe"))
    members = members or [(p, 0) for p in range(m.hw.pes_per_cube)]
    t = fill(m[members[0]], nbytes)
    m[members[0]].send("E", t, nbytes)
    for k in members[1:-1]:
        t = m[k].recv("W", nbytes)
        m[k].send("E", t, nbytes)
    m[members[-1]].recv("W", nbytes)
    return m


def build_pe_ring(hw=None) -> Machine:
    hw = hw or load_hw()
    return build_chain(hw, SfrInstall("pe", ring=True), [(p, 0) for p in range(8)] + [(0, 0)])


def build_cube_ring(hw=None) -> Machine:
    hw = hw or load_hw()
    return build_chain(hw, SfrInstall("cube", ring=True), [(0, c) for c in range(4)] + [(0, 0)])


WORKLOADS = {
    "link_pair": build_pair,
    "link_late_recv": build_late_recv,
    "link_two_messages_late": build_two_messages_late,
    "link_exchange_late": build_exchange,
    "link_exchange_in_order": lambda hw=None: build_exchange(hw, late=False),
    "link_pe_line": build_chain,
    "link_pe_ring": build_pe_ring,
    "link_cube_ring": build_cube_ring,
    "link_small_queue": lambda hw=None: build_pair(hw or load_hw().with_overrides({"link.rx_queue_packets": 2})),
}


def test_send_recv_pair():
    r = build_pair().run()
    # 16 KiB = 64 packets of 8 cycles, T = 9. Credits never bind: c_i = e_i + 100 and packet 32
    # needs c_0 = 17 + 100 = 117 <= e_31 = 265. e_63 = 9 + 64*8 = 521
    assert (r.start(0, 1), r.end(0, 1)) == (9, 521)
    # d_63 = a_63 = 521 + 50 = 571 (the recv was posted at 0)
    assert (r.start(1, 0), r.end(1, 0)) == (0, 571)
    assert r.res.cycles == 571
    tx = r.unit(0, Unit.TX_E)
    # TX busy = e_last - T = 512 = sum(ser): no credit stall
    assert (tx["busy"], tx["stall_credit"], tx["work"], tx["stall_operand"]) == (512, 0, 16384, 9)
    rx = r.unit(1, Unit.RX_W)
    # RX busy = 571 - 0; data wait = busy - sum(ser) = 571 - 512 = 59
    assert (rx["busy"], rx["stall_data"], rx["work"]) == (571, 59, 16384)
    assert r.link(0, Port.E) == dict(bytes=16384, packets=64, busy=512, messages=1)
    # nothing else used a link
    assert int(r.res.link_counters["bytes"].sum()) == 16384
    # SRAM: PE 0 holds the source 0..521; PE 1 holds the received tensor from its recv's start
    assert (r.peak(0), r.peak(1)) == (16384, 16384)


def test_partial_last_packet():
    m = Machine(load_hw())
    x = fill(m[0, 0], 1100)
    m[0, 0].send("E", x, 1100)
    m[1, 0].recv("W", 1100)
    r = m.run()
    # 1100 B = 4 packets of 256 + one of 76: 4*8 + ceil(76/32) = 32 + 3 = 35; e_last = 9 + 35 = 44
    assert r.end(0, 1) == 44
    assert r.end(1, 0) == 44 + 50
    assert r.link(0, Port.E) == dict(bytes=1100, packets=5, busy=35, messages=1)


def test_late_recv_backpressure():
    r = build_late_recv().run()
    # receiver: dot 18..1080, recv posted at r = 1080
    assert (r.start(1, 3), r.end(1, 2)) == (1080, 1080)
    # sender: 16384 = 64 packets from T = 9 (the fill of 16384 B is one 9-cycle fill)
    # packets 0..31 use the Q initial credits: e_i = 9 + 8(i+1), e_31 = 265, a_31 = 315.
    # packet 32 needs c_0 = d_0 + 50, d_0 = max(a_0, 1080) = 1080 -> c_0..c_31 = 1130.
    # packets 32..63: s_32 = max(265, 1130) = 1130, back to back: e_63 = 1130 + 32*8 = 1386
    assert (r.start(0, 1), r.end(0, 1)) == (9, 1386)
    # d_63 = max(1386 + 50, 1080) = 1436
    assert r.end(1, 3) == 1436
    assert r.res.cycles == 1436
    tx = r.unit(0, Unit.TX_E)
    # busy = 1386 - 9 = 1377; credit stall = 1377 - 64*8 = 865 (= 1130 - 265, the wait for c_0)
    assert (tx["busy"], tx["stall_credit"]) == (1377, 865)
    rx = r.unit(1, Unit.RX_W)
    # busy = 1436 - 1080 = 356 < sum(ser) = 512 (half the message was queued): data wait 0;
    # the 1080 cycles before the post are an operand stall (the after= tensor)
    assert (rx["busy"], rx["stall_data"], rx["stall_operand"]) == (356, 0, 1080)
    assert r.link(0, Port.E) == dict(bytes=16384, packets=64, busy=512, messages=1)


def test_two_messages_on_one_link_number_packets_over_the_link():
    r = build_two_messages_late().run()
    # send 1 (32 packets) from T = 9 fits the Q credits: e_31 = 9 + 32*8 = 265
    assert (r.start(0, 2), r.end(0, 2)) == (9, 265)
    # send 2 starts at 265 (TX in order). Its first packet is link packet 32 and needs c_0:
    # recv 1 is posted at 1080: d_0..31 = 1080 -> c = 1130. Recv 1 ends at d_31 = 1080
    assert (r.start(1, 3), r.end(1, 3)) == (1080, 1080)
    # packets 32..63: s_32 = 1130, e_63 = 1130 + 32*8 = 1386
    assert (r.start(0, 3), r.end(0, 3)) == (265, 1386)
    # recv 2 posted at 1080 (RX free): d_63 = max(1386 + 50, 1080) = 1436
    assert (r.start(1, 4), r.end(1, 4)) == (1080, 1436)
    tx = r.unit(0, Unit.TX_E)
    # busy = 256 + (1386 - 265) = 1377; credit stall = (1121 - 256) = 865
    assert (tx["busy"], tx["stall_credit"], tx["commands"]) == (1377, 865, 2)
    rx = r.unit(1, Unit.RX_W)
    # recv 1 busy 0 (all its data queued), recv 2 busy 356: data wait max(0, 0 - 256) +
    # max(0, 356 - 256) = 100
    assert (rx["busy"], rx["stall_data"], rx["commands"]) == (356, 100, 2)
    assert r.link(0, Port.E) == dict(bytes=16384, packets=64, busy=512, messages=2)


def test_small_queue_throttles_a_posted_receiver():
    hw = load_hw().with_overrides({"link.rx_queue_packets": 2, "link.packet_bytes": 256})
    m = Machine(hw)
    x = fill(m[0, 0], 1536)
    m[0, 0].send("E", x, 1536)  # 6 packets
    m[1, 0].recv("W", 1536)  # posted at 0
    r = m.run()
    # Q = 2: credit round trip 8 + 2*50 = 108 > Q*ser = 16, so the sender waits.
    # p0: 9..17, p1: 17..25; c_0 = 17 + 100 = 117, c_1 = 125
    # p2: 117..125, p3: max(125, c_1 = 125)..133; c_2 = 225, c_3 = 233
    # p4: 225..233, p5: 233..241
    assert r.end(0, 1) == 241
    assert r.end(1, 0) == 241 + 50
    tx = r.unit(0, Unit.TX_E)
    # busy = 241 - 9 = 232; credit stall = 232 - 6*8 = 184
    assert (tx["busy"], tx["stall_credit"]) == (232, 184)
    # RX busy 291 - 0 = 291: data wait 291 - 48 = 243
    assert r.unit(1, Unit.RX_W)["stall_data"] == 243


def test_small_packets_make_the_uncontended_formula_credit_bound():
    """docs/hardware-model.md says sum(ser_i) + h holds where credits do not bind, and that with
    4-byte packets a 1 KiB message takes 789 cycles, not 306 (a review found the formula stated
    without the condition). Derivation: 256 packets of 1 cycle (ceil(4/32)); the send starts at
    16 (a fill of 512 elements: ceil(512 / 64) * 1 + 8), packets
    0..31 end at 17..48; packet i + 32 waits for c_i = e_i + 2h (the recv was posted at 0), so
    e_(i+32) = e_i + 101: e_255 = e_31 + 7 * 101 = 755, the recv ends at 805 = 16 + 789."""
    hw = load_hw().with_overrides({"link.packet_bytes": 4})
    m = Machine(hw)
    x = fill(m[0, 0], 1024, 512)
    m[0, 0].send("E", x, 1024)
    m[1, 0].recv("W", 1024)
    r = m.run()
    assert r.start(0, 1) == 16 and r.end(0, 1) == 755 and r.end(1, 0) == 805
    assert r.end(1, 0) - r.start(0, 1) == 789 != 256 * 1 + 50


def _huge_message(hw, nbytes):
    m = Machine(hw, SfrInstall("pe"))
    m[0, 0].send("E", fill(m[0, 0], nbytes), nbytes)
    m[1, 0].recv("W", nbytes)
    t0 = time.process_time()
    r = m.run()
    return r, time.process_time() - t0


def test_a_huge_wire_bound_message_is_computed_in_closed_form():
    # 2**40 B = 2**32 full packets, recv posted at 0, T = 9. Credits never bind (2h = 100 <=
    # ser = 248, as in test_send_recv_pair): e_last = 9 + 2**32 * 8, d_last = e_last + 50.
    # Train detail reaches the steady state within 2Q packets and jumps whole periods of Q
    # packets (docs/hardware-model.md, "Engine detail levels"): one event, not 2**32 passes.
    r, cpu = _huge_message(load_hw().with_overrides({"n_cubes": 1, "pes_per_cube": 2}), 1 << 40)
    assert (r.start(0, 1), r.end(0, 1)) == (9, 9 + (1 << 32) * 8)
    assert r.end(1, 0) == 9 + (1 << 32) * 8 + 50
    assert r.link(0, Port.E) == dict(bytes=1 << 40, packets=1 << 32, busy=(1 << 32) * 8, messages=1)
    assert r.unit(0, Unit.TX_E)["stall_credit"] == 0
    assert cpu < 5  # a per-packet loop takes ~10 s CPU here; this is a hang guard, not a speed test


def test_a_huge_credit_bound_message_is_computed_in_closed_form():
    # Q = 2 as in test_small_queue_throttles_a_posted_receiver: packets go in pairs, p_{2k} from
    # 9 + 108k, p_{2k+1} right after it from 17 + 108k (108 = the credit round trip 2h + ser).
    # 2**40 - 156 B = 2**32 - 1 full packets and a last one of 100 B (ceil(100/32) = 4 cycles),
    # packet 2**32 - 1 = 2k + 1 with k = 2**31 - 1: e_last = 17 + 108k + 4.
    hw = load_hw().with_overrides({"n_cubes": 1, "pes_per_cube": 2, "link.rx_queue_packets": 2})
    r, cpu = _huge_message(hw, (1 << 40) - 156)
    e_last = 17 + 108 * ((1 << 31) - 1) + 4
    assert (r.start(0, 1), r.end(0, 1)) == (9, e_last)
    assert r.end(1, 0) == e_last + 50
    tx = r.unit(0, Unit.TX_E)
    # busy = e_last - 9; credit stall = busy - sum(ser) = busy - ((2**32 - 1) * 8 + 4)
    assert (tx["busy"], tx["stall_credit"]) == (e_last - 9, e_last - 9 - (((1 << 32) - 1) * 8 + 4))
    assert cpu < 5


@pytest.mark.parametrize("q,late", [(1, 0), (2, 1), (3, 0), (5, 1), (32, 1)])
def test_steady_state_jumps_agree_with_packet_detail(q, late):
    """Messages long enough to jump (well over 2Q packets), with short last packets, several
    messages per link and recvs posted early or late: train detail equals packet detail."""
    from engine_helpers import assert_same_result
    hw = load_hw().with_overrides({"n_cubes": 1, "pes_per_cube": 3, "link.rx_queue_packets": q})
    m = Machine(hw, SfrInstall("pe"))
    for nbytes in (50 * q * 256 + 77, 7 * q * 256, 40 * q * 256 + 1):
        m[0, 0].send("E", fill(m[0, 0], nbytes), nbytes)
        if late:
            _late_recv_tail(m[1, 0], "W", nbytes)
        else:
            m[1, 0].recv("W", nbytes)
        m[2, 0].send("W", fill(m[2, 0], nbytes), nbytes)
        m[1, 0].recv("E", nbytes)
    assert_same_result(m.run(detail="train").res, m.run(detail="packet").res)


def test_bandwidth_and_packet_size_overrides():
    hw = load_hw().with_overrides({"link.bytes_per_cycle": 64, "link.packet_bytes": 1024,
                                   "link.hop_latency_cycles": 10})
    r = build_pair(hw).run()
    # 16 KiB = 16 packets of 1024 B, ser = 1024/64 = 16: e_last = 9 + 16*16 = 265; +10 = 275
    assert (r.end(0, 1), r.end(1, 0)) == (265, 275)
    assert r.link(0, Port.E)["packets"] == 16


@pytest.mark.parametrize("late", [True, False], ids=["recv-after-gemm", "recv-in-program-order"])
def test_neighbours_exchanging_100_queues_before_receiving(late):
    r = build_exchange(late=late).run()
    # symmetric: the same on link PE0 E -> PE1 and link PE1 W -> PE0
    if late:
        # fills a 0..9, b 9..18, msg 18..27; dot 18..1080; T = 27; r = 1080.
        # packets 0..31: e_31 = 27 + 32*8 = 283, then wait for c_0 = 1080 + 50 = 1130.
        # packets 32.. stream back to back from 1130: credits never bind again (c_32 = e_32 + 100
        # = 1238 <= e_63 = 1386). e_3199 = 1130 + (3200 - 32)*8 = 1130 + 25344 = 26474
        send_end, recv_end = 26474, 26474 + 50
        tx_expect = dict(busy=26474 - 27, stall_credit=(26474 - 27) - 25600)  # 26447, 847
        rx_expect = dict(busy=recv_end - 1080, stall_data=0)  # 25444 < 25600: no data wait
        sends, recvs = 4, 5
    else:
        # T = 9, recv posted at 0: e_3199 = 9 + 3200*8 = 25609, d = 25659
        send_end, recv_end = 25609, 25659
        tx_expect = dict(busy=25600, stall_credit=0)
        rx_expect = dict(busy=25659, stall_data=25659 - 25600)  # 59
        sends, recvs = 1, 2
    for p, tx_u, rx_u, port in ((0, Unit.TX_E, Unit.RX_E, Port.E), (1, Unit.TX_W, Unit.RX_W, Port.W)):
        assert r.end(p, sends) == send_end
        assert r.end(p, recvs) == recv_end
        tx, rx = r.unit(p, tx_u), r.unit(p, rx_u)
        assert {k: tx[k] for k in tx_expect} == tx_expect
        assert {k: rx[k] for k in rx_expect} == rx_expect
        assert r.link(p, port) == dict(bytes=HUNDRED_QUEUES, packets=3200, busy=25600, messages=1)
    assert r.res.cycles == recv_end
    if late:
        # SRAM: a, b (128 each) until the dot ends at 1080; msg 819200 from 18; the dot's result
        # (4*32*32 = 4096) from 18 until the recv that reads it ends; the received 819200 from
        # 1080. At 1080 a, b go and the recv's buffer comes: 819200 + 4096 + 819200 = 1642496
        assert r.peak(0) == r.peak(1) == 1642496
    else:
        assert r.peak(0) == r.peak(1) == 2 * HUNDRED_QUEUES


@pytest.mark.parametrize("n", [2, 3, 8])
def test_message_along_an_open_line(n):
    hw = load_hw().with_overrides({"pes_per_cube": n, "n_cubes": 1})
    r = build_chain(hw).run()
    # 1024 B = 4 packets: each hop takes 4*8 + 50 = 82 from the send's start to the recv's end,
    # and the next PE forwards as soon as its recv ends (store and forward). PE k's recv ends at
    # 9 + 82k.
    for k in range(1, n):
        local = 0
        assert r.end((k, 0), local) == 9 + 82 * k, k
        if k < n - 1:
            assert r.start((k, 0), 1) == 9 + 82 * k  # the forward starts when the data is in
    assert r.res.cycles == 9 + 82 * (n - 1)
    for k in range(n - 1):
        assert r.link((k, 0), Port.E) == dict(bytes=1024, packets=4, busy=32, messages=1)


def test_message_around_a_closed_ring_of_pes():
    r = build_pe_ring().run()
    # 8 hops of 82 back to PE 0: its recv from W (command #2) ends at 9 + 8*82 = 665
    assert r.end((0, 0), 2) == 665
    assert r.res.cycles == 665
    # the ring closes: PE 7's E port carried the last hop
    assert r.link((7, 0), Port.E) == dict(bytes=1024, packets=4, busy=32, messages=1)
    # PE 0's W side received it: busy from posting at 0 to 665, data wait 665 - 32 = 633
    assert r.unit((0, 0), Unit.RX_W)["stall_data"] == 633


def test_message_around_a_ring_of_cubes():
    r = build_cube_ring().run()
    # scope cube: PE 0 of cubes 0 -> 1 -> 2 -> 3 -> 0: 4 hops of 82: 9 + 4*82 = 337
    assert r.end((0, 0), 2) == 337
    assert r.link((0, 3), Port.E)["bytes"] == 1024
    # the other PEs of each cube have no links and no traffic
    assert int(r.res.link_counters["bytes"].sum()) == 4 * 1024


def test_message_along_a_line_of_cubes():
    hw = load_hw()
    r = build_chain(hw, SfrInstall("cube"), [(0, c) for c in range(4)]).run()
    # 3 hops: 9 + 3*82 = 255
    assert r.res.cycles == 255
    assert r.end((0, 3), 0) == 255
