"""Golden vector-unit timing: elementwise ops, row reductions (lane tree), leading-axis reductions.

Expected cycles derived by hand from docs/hardware-model.md, "Vector unit":
elementwise = ceil(n/L)*op + latency; row reduction = outer*(ceil(r/L)*op + ceil(log2 L)) + latency;
leading axis = outer*(r-1)*ceil(inner/L)*op + latency. Defaults: L = 64, latency = 8, exp/div 4.
"""
from engine_helpers import Machine

from kernbench.common.pe_commands import Unit, VecOp
from kernbench.hw import load_hw


def build_exp_and_reductions(hw=None) -> Machine:
    """fill 1000 -> exp 1000 -> row max (10 x 100) of a fill -> leading-axis sum (3 x 5 x 100)."""
    m = Machine(hw or load_hw())
    s = m[0, 0]
    x = s.vec(VecOp.FILL, 1000)
    s.vec(VecOp.EXP, 1000, x)
    s.reduce(VecOp.MAX, x, 10, 100)
    y = s.vec(VecOp.FILL, 1500)
    s.reduce(VecOp.ADD, y, 3, 5, 100)
    return m


def build_softmax(hw=None) -> Machine:
    """Softmax of 4 rows of 100: max-reduce, sub, exp, sum-reduce, div (five commands)."""
    m = Machine(hw or load_hw())
    s = m[0, 0]
    x = s.vec(VecOp.FILL, 400)
    mx = s.reduce(VecOp.MAX, x, 4, 100)
    d = s.vec(VecOp.SUB, 400, x, mx)
    e = s.vec(VecOp.EXP, 400, d)
    sm = s.reduce(VecOp.ADD, e, 4, 100)
    s.vec(VecOp.DIV, 400, e, sm)
    return m


WORKLOADS = {"vector_exp_reductions": build_exp_and_reductions, "vector_softmax": build_softmax}


def test_exp_row_and_leading_axis_reductions():
    r = build_exp_and_reductions().run()
    # fill 1000: ceil(1000/64)*1 + 8 = 16 + 8 = 24
    assert (r.start(0, 0), r.end(0, 0)) == (0, 24)
    # exp 1000: ceil(1000/64)*4 + 8 = 64 + 8 = 72
    assert (r.start(0, 1), r.end(0, 1)) == (24, 96)
    # row max over (10, 100, 1): 10*(ceil(100/64)*1 + log2 64) + 8 = 10*(2 + 6) + 8 = 88
    assert (r.start(0, 2), r.end(0, 2)) == (96, 184)
    # fill 1500: ceil(1500/64) + 8 = 24 + 8 = 32
    assert (r.start(0, 3), r.end(0, 3)) == (184, 216)
    # leading-axis sum over (3, 5, 100): 3*(5-1)*ceil(100/64)*1 + 8 = 3*4*2 + 8 = 32 (no tree)
    assert (r.start(0, 4), r.end(0, 4)) == (216, 248)
    v = r.unit(0, Unit.VECTOR)
    assert v["busy"] == 24 + 72 + 88 + 32 + 32
    assert v["commands"] == 5
    # elements: n for elementwise, outer*r*inner for reductions
    assert v["work"] == 1000 + 1000 + 10 * 100 + 1500 + 3 * 5 * 100
    assert v["stall_operand"] == 0  # each operand is ready when the unit reaches its reader
    assert r.res.cycles == 248
    # SRAM: x (4000 B) lives 0..184 (its last reader, the row max, ends at 184); exp's result
    # (4000) 24..96; max's (4*10 = 40) 96..184; y (6000) 184..248; the sum's (4*3*100 = 1200)
    # 216..248. Peak = max(4000+4000, 4000+40, 6000+1200) = 8000
    assert r.peak(0) == 8000


def test_softmax_is_five_commands_in_sequence():
    r = build_softmax().run()
    # fill 400: ceil(400/64) + 8 = 7 + 8 = 15                     -> 0..15
    # max (4, 100): 4*(ceil(100/64) + 6) + 8 = 4*8 + 8 = 40         -> 15..55
    # sub 400: 7*1 + 8 = 15                                         -> 55..70
    # exp 400: 7*4 + 8 = 36                                         -> 70..106
    # sum (4, 100): 40                                              -> 106..146
    # div 400: 7*4 + 8 = 36                                         -> 146..182
    ends = [r.end(0, i) for i in range(6)]
    assert ends == [15, 55, 70, 106, 146, 182]
    assert r.unit(0, Unit.VECTOR)["work"] == 6 * 400
    # SRAM (bytes): x 1600 until sub ends (70); mx 16 15..70; d 1600 55..106; e 1600 70..182;
    # sm 16 106..182; out 1600 146..182. Live on [55, 70): 1600+16+1600 = 3216;
    # on [146, 182): 1600+16+1600 = 3216; nowhere more.
    assert r.peak(0) == 3216


def test_lane_tree_depth_follows_the_lane_count():
    for lanes, expected in (
        # L = 16: 2*(ceil(100/16) + log2 16) + 8 = 2*(7 + 4) + 8 = 30
        (16, 30),
        # L = 48 (not a power of two): tree depth ceil(log2 48) = 6: 2*(ceil(100/48) + 6) + 8 = 2*9 + 8 = 26
        (48, 26),
        # L = 1: no tree (log2 1 = 0): 2*(100*1 + 0) + 8 = 208
        (1, 208),
    ):
        m = Machine(load_hw().with_overrides({"vector.lanes": lanes}))
        s = m[0, 0]
        x = s.vec(VecOp.FILL, 200)
        s.reduce(VecOp.MAX, x, 2, 100)
        r = m.run()
        assert r.end(0, 1) - r.start(0, 1) == expected, lanes


def test_op_cost_table_and_latency_from_overrides():
    hw = load_hw().with_overrides({"vector.op_cycles.exp": 10, "vector.pipeline_latency": 3})
    m = Machine(hw)
    s = m[0, 0]
    x = s.vec(VecOp.FILL, 1000)  # ceil(1000/64)*1 + 3 = 19
    s.vec(VecOp.EXP, 1000, x)  # ceil(1000/64)*10 + 3 = 163
    s.vec(VecOp.RSQRT, 64, x)  # 1*2 + 3 = 5 (rsqrt default 2)
    r = m.run()
    assert [r.end(0, i) for i in range(3)] == [19, 19 + 163, 19 + 163 + 5]


def test_vector_and_gemm_units_run_concurrently():
    # The fill and a dot's operands are independent: a vector op does not wait for the GEMM unit.
    m = Machine(load_hw())
    s = m[0, 0]
    a = s.vec(VecOp.FILL, 64)  # 0..9
    s.dot(a, a, 32, 32, 1000)  # one fold of 1000+62 = 1062: 9..1071
    s.vec(VecOp.EXP, 6400)  # ceil(6400/64)*4 + 8 = 408: 9..417, alongside the dot
    r = m.run()
    assert (r.start(0, 1), r.end(0, 1)) == (9, 1071)
    assert (r.start(0, 2), r.end(0, 2)) == (9, 417)
    assert r.res.cycles == 1071
