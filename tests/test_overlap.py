"""Golden overlap: the units of a PE run concurrently, so independent work costs max, not sum.

docs/hardware-model.md: each PE has GEMM, VECTOR, DMA and per-port TX/RX units, each running its
own commands in order, concurrently with the others; a blocked send blocks only its own TX unit.
Fills of 64 elements take ceil(64/64) + 8 = 9 cycles; a 16 KiB message is 64 packets of 8 cycles.
"""
from engine_helpers import Machine, fill

from kernbench.common.pe_commands import Port, Unit, VecOp
from kernbench.hw import load_hw


def build_gemm_and_send(hw=None, msg=16384) -> Machine:
    """PE 0: a dot (18..1080) and, independent of it, a send east of ``msg`` bytes from 27."""
    m = Machine(hw or load_hw())
    s = m[0, 0]
    a, b, x = fill(s, 128), fill(s, 128), fill(s, msg)
    s.dot(a, b, 32, 32, 1000)
    s.send("E", x, msg)
    m[1, 0].recv("W", msg)
    return m


def build_blocked_send(hw=None) -> Machine:
    """PE 1 sends E to PE 2 (which receives late), sends W to PE 0, receives from E and runs a
    dot, all at once."""
    m = Machine(hw or load_hw())
    p1 = m[1, 0]
    x, y = fill(p1, 16384), fill(p1, 16384)
    p1.send("E", x, 16384)
    p1.send("W", y, 16384)
    p1.recv("E", 16384)
    p1.dot(x, x, 32, 32, 100)
    p2 = m[2, 0]
    a, b, z = fill(p2, 128), fill(p2, 128), fill(p2, 16384)
    d = p2.dot(a, b, 32, 32, 1000)
    p2.send("W", z, 16384)
    p2.recv("W", 16384, after=d)
    m[0, 0].recv("E", 16384)
    return m


def build_full_duplex(hw=None) -> Machine:
    m = Machine(hw or load_hw())
    for p, port in ((0, "E"), (1, "W")):
        x = fill(m[p, 0], 16384)
        m[p, 0].send(port, x, 16384)
        m[p, 0].recv(port, 16384)
    return m


WORKLOADS = {
    "overlap_gemm_send": build_gemm_and_send,
    "overlap_long_send": lambda hw=None: build_gemm_and_send(hw, 100 * 32 * 256),
    "overlap_blocked_send": build_blocked_send,
    "overlap_full_duplex": build_full_duplex,
}


def test_gemm_overlapping_a_transfer_costs_the_max():
    r = build_gemm_and_send().run()
    # dot: B ready at 18, one fold of 1000 + 62 = 1062 -> 18..1080
    assert (r.start(0, 3), r.end(0, 3)) == (18, 1080)
    # send: source ready at 27 (third fill); 64 packets: e_last = 27 + 512 = 539; recv end 589
    assert (r.start(0, 4), r.end(0, 4)) == (27, 539)
    assert r.end(1, 0) == 589
    # cycles = max(1080, 589) = 1080, not 1080 + 512 + 50 (serial)
    assert r.res.cycles == 1080
    assert r.unit(0, Unit.GEMM)["busy"] == 1062
    assert r.unit(0, Unit.TX_E)["busy"] == 512


def test_transfer_longer_than_the_gemm_costs_the_transfer():
    r = build_gemm_and_send(msg=100 * 32 * 256).run()
    # 3200 packets from 27: e_last = 27 + 25600 = 25627; recv end 25677; the dot still ends at 1080
    assert r.end(0, 3) == 1080
    assert r.res.cycles == 25677


def test_dma_runs_alongside_gemm_and_vector():
    m = Machine(load_hw())
    s = m[0, 0]
    s.load(65536)  # alone on the channel: 128*2 + 150 = 406, 0..406
    a = fill(s, 128)  # 0..9
    s.dot(a, a, 32, 32, 500)  # 500 + 62 = 562: 9..571
    s.vec(VecOp.ADD, 6400)  # add over 6400: ceil(6400/64) + 8 = 108: 9..117
    r = m.run()
    assert [(r.start(0, i), r.end(0, i)) for i in range(4)] == [(0, 406), (0, 9), (9, 571), (9, 117)]
    assert r.res.cycles == 571  # max(406, 571, 117)


def test_a_blocked_send_blocks_only_its_own_tx_unit():
    r = build_blocked_send().run()
    # PE 1 TX_E: T = 9, 32 packets to e_31 = 265, then waits for PE 2's recv (posted at 1080 after
    # its dot 18..1080): c_0 = 1130, e_63 = 1130 + 256 = 1386; credit stall 1130 - 265 = 865
    assert r.end(1, 2) == 1386
    assert r.unit(1, Unit.TX_E)["stall_credit"] == 865
    # PE 1 TX_W is not held up: T = 18 (second fill), e_last = 18 + 512 = 530; PE 0's recv 580
    assert (r.start(1, 3), r.end(1, 3)) == (18, 530)
    assert r.end(0, 0) == 580
    assert r.unit(1, Unit.TX_W)["stall_credit"] == 0
    # PE 1 RX_E receives while its TX_E is stalled: PE 2 sends from 27 (third fill): 27 + 512 + 50
    assert r.end(1, 4) == 589
    # PE 1's dot (x ready at 9): one fold of 100 + 62 = 162 -> 9..171
    assert (r.start(1, 5), r.end(1, 5)) == (9, 171)
    # PE 2's late recv: d_63 = 1386 + 50
    assert r.end(2, 5) == 1436
    assert r.res.cycles == 1436


def test_full_duplex_a_pe_sends_east_while_it_receives_from_east():
    r = build_full_duplex().run()
    # each direction alone: T = 9, e_last = 9 + 512 = 521, recv end 571. Both at once: the same.
    for p in (0, 1):
        assert r.end(p, 1) == 521
        assert r.end(p, 2) == 571
    assert r.link(0, Port.E)["busy"] == r.link(1, Port.W)["busy"] == 512
