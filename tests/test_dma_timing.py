"""Golden DMA timing: bursts on the cube's shared memory channel with round-robin arbitration.

docs/hardware-model.md, "DMA engine and the cube memory channel": a transfer of S bytes is
ceil(S/B) bursts (B = 512), each holding the channel ceil(bytes/W) cycles (W = 256 B/cycle, so 2
for a full burst); the command ends lambda = 150 cycles after its last burst leaves the channel.
"""
from engine_helpers import Machine

from kernbench.common.pe_commands import Unit, VecOp
from kernbench.hw import load_hw

KIB64 = 64 * 1024


def build_one_load(hw=None) -> Machine:
    m = Machine(hw or load_hw())
    m[0, 0].load(KIB64)
    return m


def build_eight_loads(hw=None) -> Machine:
    m = Machine(hw or load_hw())
    for p in range(8):
        m[p, 0].load(KIB64)
    return m


def build_partial_overlap(hw=None, delay_elems=93 * 64) -> Machine:
    """PE 0 loads 64 KiB at cycle 0; PE 1 loads 4 KiB once a vector fill ends, mid-way through
    PE 0's burst train (fill of 93*64 elements: 93 + 8 = 101 cycles)."""
    m = Machine(hw or load_hw())
    m[0, 0].load(KIB64)
    t = m[1, 0].vec(VecOp.FILL, delay_elems)
    m[1, 0].load(4096, after=t)
    return m


WORKLOADS = {
    "dma_one_load": build_one_load,
    "dma_eight_loads": build_eight_loads,
    "dma_partial_overlap_odd": build_partial_overlap,
    "dma_partial_overlap_on_grant": lambda hw=None: build_partial_overlap(hw, 92 * 64),
}


def test_one_load_alone():
    r = build_one_load().run()
    # 64 KiB = 128 bursts of 512 B, 2 cycles each: 128*2 + 150 = 406
    assert (r.start(0, 0), r.end(0, 0)) == (0, 406)
    d = r.unit(0, Unit.DMA)
    assert d == dict(busy=406, commands=1, work=KIB64, stall_operand=0, stall_credit=0,
                     stall_data=0, stall_arbitration=0)
    assert r.res.work["bursts"] == 128
    assert r.peak(0) == KIB64  # the loaded tensor is live from the load's start to its end


def test_partial_last_burst():
    for nbytes, expected in (
        (1000, 154),  # bursts 512 + 488: ceil(512/256) + ceil(488/256) + 150 = 2 + 2 + 150
        (300, 152),  # one burst of 300 B: ceil(300/256) + 150 = 2 + 150
        (256, 151),  # one burst of 256 B: 1 + 150
        (1, 151),  # one burst of 1 B: 1 + 150
    ):
        m = Machine(load_hw())
        m[0, 0].load(nbytes)
        assert m.run().end(0, 0) == expected, nbytes


def test_eight_pes_share_the_cube_channel():
    r = build_eight_loads().run()
    # 1024 bursts interleave PE 0, 1, ..., 7, 0, ... (round robin from PE 0): PE p's k-th burst
    # is granted at 16k + 2p, so its last (k = 127) leaves at 127*16 + 2*(p+1); +150
    for p in range(8):
        end = 127 * 16 + 2 * (p + 1) + 150
        assert r.end((p, 0), 0) == end, p
        d = r.unit((p, 0), Unit.DMA)
        assert d["busy"] == end
        # arbitration stall = duration - (128*2 + 150) = end - 406
        assert d["stall_arbitration"] == end - 406
    assert r.end((0, 0), 0) == 2184 and r.end((7, 0), 0) == 2198
    assert r.res.work["bursts"] == 1024


def test_channels_of_different_cubes_do_not_interfere():
    m = Machine(load_hw())
    for c in range(4):
        m[0, c].load(KIB64)
    r = m.run()
    # one PE per cube: each alone on its own channel, 406 as above
    assert [r.end((0, c), 0) for c in range(4)] == [406] * 4


def test_load_arriving_mid_way_through_another_pes_burst_train():
    r = build_partial_overlap().run()
    # PE 1's fill: ceil(5952/64) + 8 = 93 + 8 = 101, so its load requests at 101.
    assert r.start((1, 0), 1) == 101
    # PE 0's burst i is granted at 2i: bursts 0..50 are granted by cycle 100, burst 50 holds the
    # channel to 102. At 102 round robin passes PE 0 (served last) -> PE 1; then they alternate:
    # PE 1 at 102, 106, ..., 102 + 4*7 = 130 (8 bursts of 4 KiB), its last leaves at 132: +150 = 282
    assert r.end((1, 0), 1) == 282
    d1 = r.unit((1, 0), Unit.DMA)
    # duration 282 - 101 = 181; alone it would be 8*2 + 150 = 166: stall 181 - 166 = 15
    assert (d1["busy"], d1["stall_arbitration"], d1["stall_operand"]) == (181, 15, 101)
    # PE 0 loses the channel for PE 1's 8 bursts = 16 cycles: its last burst leaves at 256 + 16 = 272
    assert r.end((0, 0), 0) == 272 + 150
    assert r.unit((0, 0), Unit.DMA)["stall_arbitration"] == 16
    assert r.res.work["bursts"] == 128 + 8


def test_request_on_a_grant_cycle_competes_for_that_grant():
    # PE 1's fill: 92 + 8 = 100 cycles, so it requests at 100, the cycle PE 0's burst 50 would be
    # granted. Arbitration runs after every other event of the cycle, so PE 1 competes and wins
    # (round robin after PE 0): PE 1 at 100, 104, ..., 128, last leaves 130; +150 = 280
    r = build_partial_overlap(delay_elems=92 * 64).run()
    assert r.start((1, 0), 1) == 100
    assert r.end((1, 0), 1) == 280
    assert r.unit((1, 0), Unit.DMA)["stall_arbitration"] == 280 - 100 - 166  # = 14
    assert r.end((0, 0), 0) == 256 + 16 + 150


def test_store_uses_the_same_channel():
    m = Machine(load_hw())
    s = m[0, 0]
    t = s.load(2048)  # 4 bursts: 4*2 + 150 = 158 if it were alone
    s.store(t, 2048)  # runs after the load on the same DMA unit
    m[1, 0].load(1024)  # 2 bursts at cycle 0: they interleave with PE 0's load
    r = m.run()
    # grants: PE 0 at 0, PE 1 at 2, PE 0 at 4, PE 1 at 6 (its last), PE 0 at 8, 10 -> PE 0 last at 12
    assert r.end((1, 0), 0) == 8 + 150
    assert r.end((0, 0), 0) == 12 + 150
    # store: starts when the load ends (162), alone on the channel: 4*2 + 150 = 158 -> 320
    assert (r.start((0, 0), 1), r.end((0, 0), 1)) == (162, 320)
    d = r.unit((0, 0), Unit.DMA)
    assert d["busy"] == 162 + 158
    assert d["work"] == 2048 + 2048
    assert d["stall_arbitration"] == 4  # the first load waited two bursts of PE 1 (2*2 cycles)
