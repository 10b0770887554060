"""Golden GEMM timing: folds of the output-stationary array, edge folds, the SRAM operand bound.

Every expected number is derived by hand from docs/hardware-model.md (GEMM unit, DMA engine,
vector unit, SRAM); the arithmetic is written beside each assertion.
"""
from engine_helpers import Machine, fill

from kernbench.common.pe_commands import Unit
from kernbench.hw import load_hw


def build_edge_folds(hw=None) -> Machine:
    """PE (0, 0): load A (100x64 f16), load B (64x70 f16), dot A @ B."""
    m = Machine(hw or load_hw())
    s = m[0, 0]
    a = s.load(100 * 64 * 2)  # 12800 bytes
    b = s.load(64 * 70 * 2)  # 8960 bytes
    s.dot(a, b, 100, 70, 64)
    return m


def build_sram_bound(hw=None) -> Machine:
    """SRAM at 16 B/cycle: dot (64x256) @ (256x32), operands made by two vector fills."""
    m = Machine(hw or load_hw().with_overrides({"sram.bytes_per_cycle": 16}))
    s = m[0, 0]
    a = fill(s, 64 * 256 * 2)
    b = fill(s, 256 * 32 * 2)
    s.dot(a, b, 64, 32, 256)
    return m


def build_back_to_back(hw=None) -> Machine:
    """Two dots on one GEMM unit: the second waits for the first (units run in program order)."""
    m = Machine(hw or load_hw())
    s = m[0, 0]
    a = fill(s, 64 * 32 * 2)
    b = fill(s, 32 * 64 * 2)
    s.dot(a, b, 64, 64, 32)
    s.dot(a, b, 33, 1, 32)
    return m


WORKLOADS = {
    "gemm_edge_folds": build_edge_folds,
    "gemm_sram_bound": build_sram_bound,
    "gemm_back_to_back": build_back_to_back,
}


def test_dot_with_edge_folds():
    r = build_edge_folds().run()
    # load A: 12800 B = 25 bursts of 512 B, 2 cycles each (ceil(512/256)): 25*2 + 150 = 200
    assert (r.start(0, 0), r.end(0, 0)) == (0, 200)
    # load B: 8960 B = 17 full bursts + one of 256 B: 17*2 + ceil(256/256) + 150 = 34 + 1 + 150 = 185,
    # starting when the DMA unit frees at 200 -> 385
    assert (r.start(0, 1), r.end(0, 1)) == (200, 385)
    # dot: folds = ceil(100/32)*ceil(70/32) = 4*3 = 12 (the last row and column of folds are
    # partial but cost a full fold); fold = max(64+32+32-2, ceil((32+32)*64*2/256)) = max(126, 32) = 126;
    # 12*126 = 1512 cycles, starting when B is ready at 385 -> 1897
    assert (r.start(0, 2), r.end(0, 2)) == (385, 385 + 1512)
    assert r.res.cycles == 1897
    g = r.unit(0, Unit.GEMM)
    assert g["busy"] == 1512
    assert g["commands"] == 1
    assert g["work"] == 2 * 100 * 70 * 64  # flops = 2*M*N*K = 896000
    assert g["stall_operand"] == 385  # free from cycle 0, operand B ready at 385
    assert r.res.work["folds"] == 12
    # DMA: busy = 200 + 185 = 385; alone on the channel, so no arbitration stall
    d = r.unit(0, Unit.DMA)
    assert (d["busy"], d["stall_arbitration"], d["work"]) == (385, 0, 12800 + 8960)
    assert r.res.work["bursts"] == 25 + 18
    # SRAM: A (12800) live from 0, B (8960) from 200, C = 4*100*70 = 28000 from 385; all three
    # are freed at 1897 (A, B when their reader ends, C has no reader): peak = 12800+8960+28000
    assert r.peak(0) == 49760
    assert r.peak(1) == 0


def test_sram_bandwidth_bounds_the_fold():
    r = build_sram_bound().run()
    # fills: ceil(64/64)*1 + 8 = 9 cycles each, serial on the vector unit: A at 9, B at 18
    assert r.end(0, 1) == 18
    # folds = ceil(64/32)*ceil(32/32) = 2; fold = max(256+32+32-2, ceil((32+32)*256*2/16))
    #       = max(318, ceil(32768/16)) = max(318, 2048) = 2048; 2*2048 = 4096
    assert (r.start(0, 2), r.end(0, 2)) == (18, 18 + 4096)
    assert r.unit(0, Unit.GEMM)["busy"] == 4096


def test_sram_bound_takes_over_exactly_where_it_exceeds_the_array():
    # SRAM at 64 B/cycle: compute = K + 62, sram = ceil(64*K*2/64) = 2K.
    hw = load_hw().with_overrides({"sram.bytes_per_cycle": 64})
    for k, fold in (
        (61, 123),  # max(61+62, 2*61) = max(123, 122) = 123: the array binds
        (62, 124),  # max(124, 124) = 124: tie
        (63, 126),  # max(125, 126) = 126: SRAM binds
    ):
        m = Machine(hw)
        s = m[0, 0]
        a, b = fill(s, 64), fill(s, 64)
        s.dot(a, b, 32, 32, k)
        r = m.run()
        # one fold (32x32 output); the dot starts when B is ready at 9 + 9 = 18
        assert r.end(0, 2) - r.start(0, 2) == fold, k


def test_fp8_halves_the_sram_bound():
    # esize = 1 at 16 B/cycle: fold = max(256+62, ceil(64*256*1/16)) = max(318, 1024) = 1024
    hw = load_hw().with_overrides({"sram.bytes_per_cycle": 16})
    m = Machine(hw)
    s = m[0, 0]
    a, b = fill(s, 64), fill(s, 64)
    s.dot(a, b, 32, 32, 256, esize=1)
    r = m.run()
    assert r.end(0, 2) - r.start(0, 2) == 1024


def test_dots_on_one_unit_run_in_order_and_folds_do_not_overlap():
    r = build_back_to_back().run()
    # B ready at 18 (two 9-cycle fills). dot 1: folds = 2*2 = 4, fold = 32+62 = 94: 4*94 = 376
    assert (r.start(0, 2), r.end(0, 2)) == (18, 18 + 376)
    # dot 2 has its operands since 18 but the GEMM unit is busy until 394; 33x1 output:
    # folds = ceil(33/32)*ceil(1/32) = 2*1 = 2 (one row of outputs still costs a whole fold): 2*94 = 188
    assert (r.start(0, 3), r.end(0, 3)) == (394, 394 + 188)
    g = r.unit(0, Unit.GEMM)
    assert g["busy"] == 376 + 188
    assert g["commands"] == 2
    assert g["work"] == 2 * 64 * 64 * 32 + 2 * 33 * 1 * 32
    # only the first dot waited for an operand (18 cycles); the second waited for the unit
    assert g["stall_operand"] == 18
    assert r.res.work["folds"] == 6


def test_array_shape_from_overrides():
    # a 16 x 8 array: folds = ceil(100/16)*ceil(70/8) = 7*9 = 63; fold = 64+16+8-2 = 86
    # (sram: ceil(24*64*2/256) = 12); 63*86 = 5418
    hw = load_hw().with_overrides({"gemm.rows": 16, "gemm.cols": 8})
    r = build_edge_folds(hw).run()
    assert r.end(0, 2) - r.start(0, 2) == 5418
    assert r.res.work["folds"] == 63


def test_a_partial_fold_is_charged_whole_operand_slices():
    """docs/hardware-model.md: a partial fold streams the whole R x K and K x C slices (padded
    lanes included), where SCALE-Sim v2 issues no reads for them (an independent checker's
    case). On a 128 x 8 array, (1,300) x (300,1) in f32 (4-byte elements, as the fills' bytes
    here): one fold, max(300 + 128 + 8 - 2, ceil((128 + 8) * 300 * 4 / 256)) = max(434, 638) =
    638, where SCALE-Sim prints 433 (one less than its 434 demand rows)."""
    m = Machine(load_hw().with_overrides({"gemm.rows": 128, "gemm.cols": 8}))
    s = m[0, 0]
    a, b = fill(s, 300 * 4), fill(s, 300 * 4)
    s.dot(a, b, 1, 1, 300, esize=4)
    r = m.run()
    assert r.end(0, 2) - r.start(0, 2) == 638


def _two_buffers(detail):
    hw = load_hw().with_overrides({"gemm.accumulator_buffers": 2})
    return build_edge_folds(hw).run(detail=detail), build_sram_bound(
        hw.with_overrides({"sram.bytes_per_cycle": 16})).run(detail=detail)


def test_two_accumulator_buffers_overlap_a_folds_drain_with_the_next_fold():
    for detail in ("train", "packet"):
        edge, sram = _two_buffers(detail)
        # edge folds, K = 64: 12 folds. One buffer: 12 x 126 = 1512. Two buffers: a fold
        # followed by another costs max(K, ceil((R + C - 2) / 2), SRAM bound) =
        # max(64, ceil(62 / 2) = 31, ceil(64 * 64 * 2 / 256) = 32) = 64; the last fold's skew and
        # drain show: 64 + 62 = 126. 11 x 64 + 126 = 830, from 385 (the loads are unchanged)
        assert (edge.start(0, 2), edge.end(0, 2)) == (385, 385 + 830), detail
        # SRAM bound at 16 B/cycle, K = 256: folds = 2 x 1 = 2; full fold = max(256 + 62,
        # ceil(64 * 256 * 2 / 16) = 2048) = 2048; steady = max(256, 31, 2048) = 2048: the operand
        # stream binds either way, 2 x 2048 = 4096 as with one buffer
        d = sram.end(0, 2) - sram.start(0, 2)
        assert d == 4096, detail


def test_two_buffers_hide_the_drain_only_behind_enough_mac_steps():
    # K = 16 < (R + C - 2) / 2: a buffer must be empty again two folds on, so a fold is
    # ceil(62 / 2) = 31 cycles, not 16. dot (64 x 16) @ (16 x 64): 4 folds, full fold
    # 16 + 62 = 78: one buffer 4 x 78 = 312, two buffers 3 x 31 + 78 = 171
    for buffers, want in ((1, 312), (2, 171)):
        for detail in ("train", "packet"):
            m = Machine(load_hw().with_overrides({"gemm.accumulator_buffers": buffers}))
            s = m[0, 0]
            a = fill(s, 64 * 16 * 2)
            b = fill(s, 16 * 64 * 2)
            s.dot(a, b, 64, 64, 16)
            r = m.run(detail=detail)
            assert r.end(0, 2) - r.start(0, 2) == want, (buffers, detail)
