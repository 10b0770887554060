"""Why GEMM and the vector unit run below their peak: a command's busy cycles split into the work
at peak and what the formula charges beside it (kernbench.report.busy_parts), and the profile's
GEMM and VECTOR lines.

Expected numbers are derived by hand from docs/hardware-model.md, "GEMM unit"; the arithmetic is
beside each assertion. The split's sum is checked against the engine's formula on random shapes.
"""
import numpy as np
import pytest
from attention_helpers import small_spec
from hypothesis import given, settings, strategies as st

import kernbench as kb
from kernbench._core import _timing
from kernbench._core.api import hw_params
from kernbench.diag import run_panel
from kernbench.hw import load_hw
from kernbench.report.busy_parts import (GEMM_PARTS as PARTS, VECTOR_PARTS, dma_parts, dot_parts,
                                         elementwise_parts, reduction_parts, unit_parts)
from kernbench.report.profile import busy_text, profile


def _dot_kernel(a, b, c, *, tl, m, n, k):
    x = tl.load(a, shape=(m, k))
    y = tl.load(b, shape=(k, n))
    tl.store(c, tl.dot(x, y))


def _launch(hw, m, n, k, dtype=np.float16):
    ctx = kb.Context(hw, unwritten="zero")
    a = ctx.put(np.ones((m, k), dtype), 0)
    b = ctx.put(np.ones((k, n), dtype), 0)
    c = ctx.empty((m, n), np.float32)
    return ctx.launch(_dot_kernel, (1, 1), a, b, c, m=m, n=n, k=k)


def test_edge_folds_and_fill_drain_by_hand():
    # default: R = C = 32, one accumulator buffer, sram.bytes_per_cycle = 256.
    # (64,128) x (128,48) f16: folds = ceil(64/32) * ceil(48/32) = 2 * 2 = 4;
    # fold = max(128 + 62, ceil(64 * 128 * 2 / 256) = 64) = 190; busy = 4 * 190 = 760.
    # mac = 64 * 48 * 128 / 1024 = 384; edge = 4 * 128 - 384 = 128 (the N = 48 folds run
    # 16 of 32 columns); fill_drain = 4 * 62 = 248; sram = 0. 384 + 128 + 248 = 760.
    res = _launch("default", 64, 48, 128)
    prof = profile(res)
    (line,) = [d for d in prof["lines"] if "gemm" in d]
    assert line["busy"]["GEMM"] == 760
    assert {p: line["gemm"][p] for p in PARTS} == {"mac": 384.0, "edge": 128.0,
                                                   "fill_drain": 248.0, "sram": 0.0}
    assert line["gemm"]["flops"] == 2 * 64 * 48 * 128
    assert prof["gemm"]["lost_most"] == line["source"]
    text = busy_text(prof, "GEMM")
    # 384 / 760 = 50.5%; 128 / 760 = 16.8%; 248 / 760 = 32.6%
    # the dot's 760 of the launch's 1,370 cycles (loads 214 + 198, the dot, the store 198)
    assert text.startswith("GEMM (55.5% of the critical path): 50.5% of its 760 busy cycles were MACs at the 32 x 32 array's peak; "
                           "edge folds 16.8%, fill and drain 32.6%, the SRAM operand bound 0%")
    # what cuts it, each figure from the formula: twice the K, (64,256) x (256,48): 4 folds of
    # max(256 + 62, 128) = 318, 1,272 cycles for mac 768: 768 / 1272 = 60.4%; two buffers:
    # steady max(128, 31, 64) = 128, 3 * 128 + 190 = 574
    assert text.endswith("fill and drain, 32.6% of that line's GEMM cycles (what cuts it: twice the K "
                         "a dot, 50.5% -> 60.4% of peak; or two accumulator buffers, 760 -> 574 cycles)")


def test_sram_operand_bound_and_two_buffers_by_hand():
    # sram.bytes_per_cycle = 16, two accumulator buffers; (64,256) x (256,32) f16:
    # folds = 2 * 1 = 2; SRAM term ceil((32 + 32) * 256 * 2 / 16) = 2048; fold = max(256 + 62,
    # 2048) = 2048; steady = max(256, 31, 2048) = 2048; busy = 1 * 2048 + 2048 = 4096
    # (test_gemm_timing's case). mac = 64 * 32 * 256 / 1024 = 512 = 2 * 256: no edge. The SRAM
    # term sets both folds (2048 > 256 + 62, and > max(256, 31) for the steady one), so every
    # cycle past K is the SRAM bound's: sram = 2 * (2048 - 256) = 3584; fill_drain = 0 (skew
    # and drain hide behind the operand stream). 512 + 0 + 0 + 3584 = 4096.
    hw = load_hw().with_overrides({"sram.bytes_per_cycle": 16, "gemm.accumulator_buffers": 2})
    res = _launch(hw, 64, 32, 256)
    prof = profile(res)
    (line,) = [d for d in prof["lines"] if "gemm" in d]
    assert line["busy"]["GEMM"] == 4096
    assert {p: line["gemm"][p] for p in PARTS} == {"mac": 512.0, "edge": 0.0,
                                                   "fill_drain": 0.0, "sram": 3584.0}
    text = busy_text(prof, "GEMM")
    # 3584 / 4096 = 87.5%; at 32 B/cycle the SRAM term is ceil(64 * 256 * 2 / 32) = 1024: 2 * 1024
    assert text.endswith("the SRAM operand bound, 87.5% of that line's GEMM cycles (what cuts it: "
                         "twice sram.bytes_per_cycle, 4,096 -> 2,048 cycles; or operands at most half as "
                         "wide as the wider one now, 4,096 -> 2,048 cycles)")
    assert "two accumulator buffers" not in text  # (it has them)


def test_skew_and_drain_hidden_behind_the_sram_bound_are_the_sram_bounds():
    # (a review: fill and drain was named, and both its remedies cut nothing.) sram 64 B/cycle,
    # one buffer, (128,64) x (64,128) f16: 16 folds; K + R + C - 2 = 126 < SRAM term
    # ceil(64 * 64 * 2 / 64) = 128, which sets every fold: 16 * 128 = 2048 cycles. mac =
    # 128 * 128 * 64 / 1024 = 1024, no edge, no fill and drain, sram 16 * (128 - 64) = 1024.
    # Twice the bandwidth: the SRAM term 64, the fold 126: 16 * 126 = 2016.
    hw = load_hw().with_overrides({"sram.bytes_per_cycle": 64})
    prof = profile(_launch(hw, 128, 128, 64))
    (line,) = [d for d in prof["lines"] if "gemm" in d]
    assert {p: line["gemm"][p] for p in PARTS} == {"mac": 1024.0, "edge": 0.0,
                                                   "fill_drain": 0.0, "sram": 1024.0}
    assert busy_text(prof, "GEMM").endswith(
        "the SRAM operand bound, 50.0% of that line's GEMM cycles (what cuts it: twice "
        "sram.bytes_per_cycle, 2,048 -> 2,016 cycles; or operands at most half as wide as the "
        "wider one now, 2,048 -> 2,016 cycles)")


def _k_loop(a, b, c, *, tl):
    acc = tl.zeros((32, 32))
    for i in tl.range(0, 512, 64):
        acc = tl.dot(tl.load(a + i * 32 * 2, shape=(32, 64)), tl.load(b + i * 32 * 2, shape=(64, 32)),
                     acc=acc)
    tl.store(c, acc)


def test_two_buffers_are_not_offered_for_dots_of_one_fold():
    # (a review: a K loop of (32,64) x (64,32) dots, one fold each, which two buffers leave as
    # they are.) Each dot: max(64 + 62, 32) = 126 cycles, mac 32 * 32 * 64 / 1024 = 64, fill and
    # drain 62: 64 / 126 = 50.8%; twice the K: (32,128) x (128,32), 190 cycles for mac 128: 67.4%
    for buffers in (1, 2):
        ctx = kb.Context(load_hw().with_overrides({"gemm.accumulator_buffers": buffers}), unwritten="zero")
        res = ctx.launch(_k_loop, (1, 1), ctx.empty((32 * 512,), "f16"), ctx.empty((512 * 32,), "f16"),
                         ctx.empty((32, 32), "f32"))
        prof = profile(res)
        (line,) = [d for d in prof["lines"] if "gemm" in d]
        assert line["busy"]["GEMM"] == 8 * 126
        assert line["gemm"]["what_if"]["two_buffers"] == 8 * 126
        assert busy_text(prof, "GEMM").endswith(
            "fill and drain, 49.2% of that line's GEMM cycles (what cuts it: twice the K a dot, "
            "50.8% -> 67.4% of peak)")


def test_a_small_fraction_of_peak_shows_its_gain():
    # (a review: a matrix-vector dot printed "0.0% -> 0.0% of peak".) (1,16) x (16,1) f16: one
    # fold of max(16 + 62, ceil(2 * 16 * 2 / 256) = 1) = 78 cycles, mac 1 * 1 * 16 / 1024 =
    # 0.015625: 0.020% of peak; twice the K, 32 + 62 = 94 cycles for mac 0.03125: 0.033%
    prof = profile(_launch("default", 1, 1, 16))
    (line,) = [d for d in prof["lines"] if "gemm" in d]
    assert line["busy"]["GEMM"] == 78 and line["gemm"]["mac"] == 0.015625
    assert busy_text(prof, "GEMM").endswith("(what cuts it: twice the K a dot, 0.02% -> 0.033% of peak)")


def test_a_tiny_fraction_of_peak_has_no_exponent():
    # (a review: "3e-06% -> 6e-06% of peak".) A 256 x 256 array, (1,1) x (1,1) f16: one fold of
    # 1 + 256 + 256 - 2 = 511 cycles, mac 1 / 65,536: 2.99e-8 of peak, 0.000003%; twice the K,
    # 2 / 65,536 in 512 cycles: 0.000006%
    hw = load_hw().with_overrides({"gemm.rows": 256, "gemm.cols": 256})
    prof = profile(_launch(hw, 1, 1, 1))
    (line,) = [d for d in prof["lines"] if "gemm" in d]
    assert line["busy"]["GEMM"] == 511
    assert busy_text(prof, "GEMM").endswith("(what cuts it: twice the K a dot, 0.000003% -> 0.000006% of peak)")


def test_two_buffers_drain_bound_by_hand():
    # two buffers, K = 16 < ceil(62 / 2) = 31: (64,16) x (16,64) f16, 4 folds;
    # busy = 3 * 31 + (16 + 62) = 171 (test_gemm_timing). mac = 64 * 64 * 16 / 1024 = 64;
    # edge = 4 * 16 - 64 = 0; fill_drain = 3 * (31 - 16) + 62 = 107; sram = 3 * (31 - 31) +
    # (78 - 78) = 0. 64 + 107 = 171.
    p = dot_parts(hw_params(load_hw().with_overrides({"gemm.accumulator_buffers": 2})), 64, 64, 16, 2)
    assert p == {"mac": 64.0, "edge": 0.0, "fill_drain": 107.0, "sram": 0.0}


@settings(max_examples=300, deadline=None)
@given(m=st.integers(1, 700), n=st.integers(1, 700), k=st.integers(1, 900),
       esize=st.sampled_from([1, 2, 4]), r=st.integers(1, 80), c=st.integers(1, 80),
       bw=st.sampled_from([1, 4, 16, 64, 256, 4096]), buffers=st.sampled_from([1, 2]))
def test_parts_sum_to_the_engines_cycles(m, n, k, esize, r, c, bw, buffers):
    if max(r, c) > 256 * bw:
        return  # (a key bound the hardware refuses)
    params = hw_params(load_hw().with_overrides({"gemm.rows": r, "gemm.cols": c,
                                                 "sram.bytes_per_cycle": bw,
                                                 "gemm.accumulator_buffers": buffers}))
    p = dot_parts(params, m, n, k, esize)
    assert all(p[x] >= 0 for x in PARTS)
    assert p["mac"] == m * n * k / (r * c)
    # mac and edge may be fractions of a cycle: their sum, folds * K, is whole, exact when R * C is
    # a power of two (a fraction of it is a float exactly), to float rounding otherwise
    assert p["fill_drain"] == int(p["fill_drain"]) and p["sram"] == int(p["sram"])
    assert sum(p.values()) == pytest.approx(_timing.dot_cycles(params, m, n, k, esize), rel=1e-12)
    if (r * c) & (r * c - 1) == 0:
        assert sum(p.values()) == _timing.dot_cycles(params, m, n, k, esize)
    # vectorised over arrays, the same figures
    pv = dot_parts(params, np.array([m, 1]), np.array([n, 1]), np.array([k, 1]), np.array([esize, 1]))
    assert {x: pv[x][0] for x in PARTS} == p


@pytest.mark.parametrize("buffers", [1, 2])
def test_every_dot_of_the_flagship_sums_to_its_engine_cycles(buffers):
    # the prefill panel's kernel on 4 ranks, its dots of several shapes: each command's parts
    # add up to its end - start, and the profile's lines to their GEMM busy
    hw = load_hw("mesh8").with_overrides({"gemm.accumulator_buffers": buffers})
    res = run_panel(small_spec("prefill", 4, 2, 0), hw).result
    idx, parts = unit_parts(res, "GEMM")
    assert len(idx) > 4
    busy = np.asarray(res.engine.cmd_end)[idx] - np.asarray(res.engine.cmd_start)[idx]
    assert np.array_equal(sum(parts[p] for p in PARTS), busy.astype(np.float64))
    prof = profile(res, path=False)
    for d in prof["lines"]:
        if "gemm" in d:
            assert sum(d["gemm"][p] for p in PARTS) == d["busy"]["GEMM"]
    assert sum(prof["gemm"][p] for p in PARTS) == busy.sum()
    vidx, vparts = unit_parts(res, "VECTOR")
    vbusy = np.asarray(res.engine.cmd_end)[vidx] - np.asarray(res.engine.cmd_start)[vidx]
    assert len(vidx) > 4 and vparts["tree"].sum() > 0
    # (fractions of a cycle in lanes and partial: a sum of floats, exact as each is a multiple
    # of 1/L with L a power of two)
    assert np.array_equal(sum(vparts[p] for p in VECTOR_PARTS), vbusy.astype(np.float64))
    didx, dparts = unit_parts(res, "DMA")
    dbusy = np.asarray(res.engine.cmd_end)[didx] - np.asarray(res.engine.cmd_start)[didx]
    assert len(didx) > 4 and dparts["latency"].sum() > 0
    assert np.array_equal(sum(dparts[p] for p in dparts), dbusy.astype(np.float64))


def test_no_dot_no_gemm_line():
    def k(a, *, tl):
        tl.store(a, tl.load(a, shape=(8,)) + 1.0)

    ctx = kb.Context("default", unwritten="zero")
    a = ctx.put(np.ones(8, np.float32), 0)
    prof = profile(ctx.launch(k, (1, 1), a))
    assert prof["gemm"] is None
    assert all("gemm" not in d for d in prof["lines"])
    with pytest.raises(ValueError, match="no command of this launch ran on GEMM"):
        busy_text(prof, "GEMM")
    with pytest.raises(ValueError, match="unit must be one of GEMM, VECTOR, DMA, got 'TX_E'"):
        busy_text(prof, "TX_E")


def _vector_kernel(a, s, t, *, tl):
    x = tl.load(a, shape=(4, 100))
    e = tl.exp(x)
    tl.store(s, tl.sum(e, axis=1))
    tl.store(t, tl.sum(e, axis=0))


def test_vector_parts_by_hand():
    # default: L = 64 lanes, pipeline latency 8, exp 4 cycles a slot, add 1, ceil(log2 64) = 6.
    # exp over n = 400: ceil(400/64) = 7 slots x 4 = 28, + 8 = 36: lanes 400 x 4 / 64 = 25,
    #   partial 28 - 25 = 3, tree 0, latency 8.
    # sum axis 1 of (4,100): outer 4, r 100, inner 1: 4 x (ceil(100/64) = 2 x 1 + 6) + 8 = 40:
    #   lanes 4 x 100 / 64 = 6.25, partial 4 x 2 - 6.25 = 1.75, tree 4 x 6 = 24, latency 8.
    # sum axis 0: outer 1, r 4, inner 100: 3 x ceil(100/64) = 2 = 6, + 8 = 14: lanes
    #   3 x 100 / 64 = 4.6875, partial 6 - 4.6875 = 1.3125, tree 0, latency 8.
    ctx = kb.Context("default", unwritten="zero")
    a = ctx.put(np.ones((4, 100), np.float32), 0)
    s, t = ctx.empty((4,), np.float32), ctx.empty((100,), np.float32)
    res = ctx.launch(_vector_kernel, (1, 1), a, s, t)
    prof = profile(res, sort="line")
    vec = [d["vector"] for d in prof["lines"] if "vector" in d]
    assert [d["busy"]["VECTOR"] for d in prof["lines"] if "vector" in d] == [36, 40, 14]
    # what_if: the row sum held transposed, (100, 4) over axis 0: 99 x ceil(4/64) + 8 = 107, more
    # than its 40, so it stays (and nothing is offered); the others their own cycles
    assert vec == [{"lanes": 25.0, "partial": 3.0, "tree": 0.0, "latency": 8.0, "commands": 1,
                    "commands_one_kind": 1, "what_if": {"leading_axis": 36.0}},
                   {"lanes": 6.25, "partial": 1.75, "tree": 24.0, "latency": 8.0, "commands": 1,
                    "commands_one_kind": 1, "what_if": {"leading_axis": 40.0}},
                   {"lanes": 4.6875, "partial": 1.3125, "tree": 0.0, "latency": 8.0, "commands": 1,
                    "commands_one_kind": 1, "what_if": {"leading_axis": 14.0}}]
    assert prof["gemm"] is None
    text = busy_text(prof, "VECTOR")
    # 90 cycles: lanes 35.9375 (39.9%), partial 6.0625 (6.7%), tree 24 (26.7%), latency 24
    # (26.7%); the most lost (busy but lanes): the row sum's 33.75, its largest loss the tree,
    # 24 of 40 = 60.0%
    line = [d for d in prof["lines"] if "vector" in d][1]["short"]
    # on the path: load 157 (3 bursts of 512 B and one of 64: 3 x 2 + 1 + 150), exp 36, the row sum
    # 40, the stores of s (151) and t (152): 536 cycles, the vector unit's 76 of them 14.2%
    assert res.cycles == 536
    assert text == ("VECTOR (14.2% of the critical path): 39.9% of its 90 busy cycles used all 64 lanes; partly used issue slots "
                    "6.7%, reduction trees 26.7%, pipeline latency 26.7%. Most lost at "
                    f"{line}: reduction trees, 60.0% of that line's VECTOR cycles")


def _row_max(x_ptr, o_ptr, *, tl, rows, cols):
    tl.store(o_ptr, tl.max(tl.load(x_ptr, shape=(rows, cols), dtype="f32"), axis=1))


@pytest.mark.parametrize("rows, cols, now, then", [(8, 512, 120, None), (128, 100, 1032, 206),
                                                  (4, 8, 36, 15)])
def test_a_leading_axis_is_offered_only_where_it_cuts_the_trees(rows, cols, now, then):
    # (a review: 8 rows of 512 reduced along the lanes take 8 x (8 + 6) + 8 = 120 cycles; held
    # transposed and reduced over axis 0, 511 x ceil(8/64) + 8 = 519, so the launch grew.) 128
    # rows of 100: 128 x (ceil(100/64) = 2 + 6) + 8 = 1,032 along the lanes; transposed,
    # 99 x ceil(128/64) = 2 + 8 = 206. Fewer rows than lanes gain too when they are short (a
    # review of the docs' "fewer rows than lanes take longer"): 4 rows of 8, 4 x (1 + 6) + 8 = 36;
    # transposed, 7 x ceil(4/64) + 8 = 15
    ctx = kb.Context("default", unwritten="zero")
    res = ctx.launch(_row_max, (1, 1), ctx.empty((rows, cols), "f32"), ctx.empty((rows,), "f32"),
                     rows=rows, cols=cols)
    prof = profile(res)
    (line,) = [d for d in prof["lines"] if "vector" in d]
    assert line["busy"]["VECTOR"] == now
    text = busy_text(prof, "VECTOR")
    assert "reduction trees" in text.split("Most lost at")[1]
    if then is None:
        assert text.endswith("of that line's VECTOR cycles")
    else:
        assert text.endswith(f"(what cuts it: each row reduced along the lanes pays ceil(log2 64) = 6 "
                             f"cycles; the rows reduced over a leading axis instead where that is cheaper, "
                             f"as tl.trans(x) over axis 0 of a 2-D (rows, r) tile, {now:,} -> {then:,} "
                             f"cycles (a tile of more "
                             f"axes reshaped to 2-D first; a transposed one cannot be without a copy, not "
                             f"counted here))")

        def transposed(x_ptr, o_ptr, *, tl):
            tl.store(o_ptr, tl.max(tl.trans(tl.load(x_ptr, shape=(rows, cols), dtype="f32")), axis=0))

        alt = ctx.launch(transposed, (1, 1), ctx.empty((rows, cols), "f32"), ctx.empty((rows,), "f32"))
        assert alt.engine.unit_counters["busy"][:, 1].sum() == then  # (as the line says: VECTOR)


@settings(max_examples=300, deadline=None)
@given(outer=st.integers(1, 300), r=st.integers(1, 300), inner=st.integers(1, 300),
       sub=st.integers(0, 16), lanes=st.sampled_from([1, 2, 3, 8, 64, 100, 128]),
       latency=st.integers(1, 40), cost=st.integers(1, 9))
def test_vector_parts_sum_to_the_engines_cycles(outer, r, inner, sub, lanes, latency, cost):
    from kernbench.common.pe_commands import VEC_OP_NAMES

    sub %= len(VEC_OP_NAMES)
    hw = load_hw().with_overrides({"vector.lanes": lanes, "vector.pipeline_latency": latency,
                                   f"vector.op_cycles.{VEC_OP_NAMES[sub]}": cost})
    params = hw_params(hw)
    exact = lanes & (lanes - 1) == 0  # (lanes and partial: multiples of 1 / L, floats exactly)
    reduced = outer * (r if inner == 1 else (r - 1) * inner)  # elements the reduction's op reads
    for got, want, work in ((elementwise_parts(params, outer * inner, sub),
                             _timing.elementwise_cycles(params, outer * inner, sub), outer * inner),
                            (reduction_parts(params, outer, r, inner, sub),
                             _timing.reduction_cycles(params, outer, r, inner, sub), reduced)):
        assert all(got[x] >= 0 for x in VECTOR_PARTS)
        assert got["lanes"] * lanes == pytest.approx(work * cost, rel=1e-12)
        assert got["latency"] == latency
        assert sum(got.values()) == pytest.approx(want, rel=1e-12)
        if exact:
            assert sum(got.values()) == want


def test_unit_parts_refuses_another_unit():
    res = _launch("default", 8, 8, 8)
    with pytest.raises(ValueError, match="GEMM, VECTOR, DMA"):
        unit_parts(res, "TX_E")


def _load64k(a, *, tl):
    tl.load(a + tl.program_id(0) * 65536, shape=(32768,), dtype="f16")


def test_dma_parts_by_hand():
    # docs/hardware-model.md: eight PEs each loading 64 KiB at cycle 0 end at 2184 + 2p. Each:
    # bytes 65536 / 256 = 256, no partial burst (512 B bursts of 2 cycles), latency 150,
    # arbitration busy - 406. Summed: busy 8 * 2184 + 2 * 28 = 17,528, bytes 2,048, latency
    # 1,200, arbitration 17,528 - 8 * 406 = 14,280: 11.7%, 0%, 6.8%, 81.5%.
    ctx = kb.Context("default", unwritten="zero")
    a = ctx.empty((8 * 32768,), "f16")
    prof = profile(ctx.launch(_load64k, (8, 1), a))
    (line,) = [d for d in prof["lines"] if "dma" in d]
    assert line["busy"]["DMA"] == 17528
    assert line["dma"] == {"bytes": 2048.0, "partial": 0.0, "latency": 1200.0, "arbitration": 14280.0,
                           "commands": 8, "commands_one_kind": 1}  # (one a PE)
    assert busy_text(prof, "DMA") == (
        "DMA (100.0% of the critical path): 11.7% of its 17,528 busy cycles moved bytes at the channel's 256 B/cycle; partly used "
        "channel cycles 0%, latency 6.8%, waiting for the channel 81.5%. Most lost at "
        f"{line['short']}: waiting for the channel, 81.5% of that line's DMA cycles (what cuts it: "
        "the cube's other PEs' bursts share its channel: its transfers at other times, or fewer "
        "bytes (the table's memory and bound rows say whether the channel is the limit))")


def _one_load_then_exp(x, o, *, tl):
    tl.store(o, tl.exp(tl.load(x, shape=(64, 1024))))


def _four_loads(x, o, *, tl):
    for i in range(4):
        tl.store(o + i * 65536, tl.exp(tl.load(x + i * 65536, shape=(16, 1024))))


def _two_loads_on_pe_0(x, o, *, tl):
    z = tl.zeros((16,))
    for i in range(2):  # PE 0 loads twice on this line, the others exp
        h = tl.load(x + 64 * i, shape=(16,)) if tl.program_id(0) == 0 else tl.exp(z)
    if tl.program_id(0) == 0:
        tl.store(o, h)


@pytest.mark.parametrize("kernel, offered", [(_one_load_then_exp, False), (_four_loads, True),
                                             (_two_loads_on_pe_0, True)])
def test_fewer_larger_tiles_only_where_a_pe_runs_several(kernel, offered):
    # (a review was told "fewer, larger tiles" for a line with one load.) One (64,1024) f32 load
    # and its store on one line: each 512 bursts of 2 cycles + 150 = 1,174, latency 300 of
    # 2,348, the line's largest loss after the bytes; a load and a store cannot be one command.
    # Four (16,1024) loads and four stores on one line: each 128 x 2 + 150 = 406, latency 1,200
    # of 3,248: four loads can be one, the advice stands
    # (a review: PE 0's two loads on a line the other PEs ran as exps were counted one a PE, over
    # every PE: 2 loads, 4 PEs; each of two 64-byte loads is 1 + 150 cycles, latency 300 of 302)
    ctx = kb.Context("default", unwritten="zero")
    grid = (4, 1) if kernel is _two_loads_on_pe_0 else (1, 1)
    prof = profile(ctx.launch(kernel, grid, ctx.empty((64, 1024), "f32"), ctx.empty((64, 1024), "f32")))
    text = busy_text(prof, "DMA")
    assert ("fewer, larger tiles (each command pays 150 cycles)" in text) == offered, text


@settings(max_examples=300, deadline=None)
@given(nbytes=st.integers(1, 1 << 22), burst=st.integers(1, 5000), width=st.integers(1, 700),
       latency=st.integers(1, 1000))
def test_dma_parts_sum_to_the_engines_cycles(nbytes, burst, width, latency):
    # S = 1000 at B = 512, W = 256 (by hand): bursts of 512 and 488 B, 2 + 2 channel cycles;
    # bytes 1000 / 256 = 3.90625, partial 0.09375, latency: the rest of dma_alone_cycles
    params = hw_params(load_hw().with_overrides({"dma.burst_bytes": burst, "dma.channel_bytes_per_cycle": width,
                                                 "dma.latency_cycles": latency}))
    p = dma_parts(params, nbytes)
    assert p["bytes"] * width == pytest.approx(nbytes, rel=1e-12)
    assert p["partial"] >= -1e-9 and p["arbitration"] == 0 and p["latency"] == latency
    assert sum(p.values()) == pytest.approx(_timing.dma_alone_cycles(params, nbytes), rel=1e-12)
    if width & (width - 1) == 0:
        assert sum(p.values()) == _timing.dma_alone_cycles(params, nbytes)
    assert dma_parts(hw_params(load_hw()), 1000) == {"bytes": 3.90625, "partial": 0.09375,
                                                     "latency": 150.0, "arbitration": 0.0}


def _two_kinds(x_ptr, *, tl):
    if tl.program_id(0) == 0:
        tl.load(x_ptr, shape=(16384,), dtype="f32")
    else:
        tl.full((64,), 1.0)


def test_a_unit_off_the_critical_path_says_so():
    # PE 0 loads 64 KiB (406 cycles: the launch), PE 1 fills 64 elements (1 + 8 = 9 cycles: 1 of
    # them all lanes, 11.1%); the DMA moved 65,536 / 256 = 256 cycles of bytes, 63.1% of 406
    ctx = kb.Context("default", unwritten="zero")
    res = ctx.launch(_two_kinds, (2, 1), ctx.empty((16384,), "f32"))
    assert res.cycles == 406
    prof = profile(res)
    assert busy_text(prof, "VECTOR").startswith("VECTOR (not on the critical path): 11.1% of its 9 busy")
    assert busy_text(prof, "DMA").startswith("DMA (100.0% of the critical path): ")
    assert busy_text(profile(res, path=False), "DMA").startswith("DMA: 63.1% of its 406 busy cycles")


def _rows3(x_ptr, o_ptr, *, tl, advised):
    x = tl.load(x_ptr, shape=(8, 8, 64), dtype="f32")
    if advised:  # the rows as a 2-D tile, transposed, reduced over axis 0
        tl.store(o_ptr, tl.reshape(tl.sum(tl.trans(tl.reshape(x, (64, 64))), axis=0), (8, 8)))
    else:
        tl.store(o_ptr, tl.sum(x, axis=2))


def test_a_leading_axis_for_a_tile_of_three_axes_is_priced_as_applied():
    # (a review applied "tl.trans(x) over axis 0" to an (8, 8, 64) tile: tl.trans swaps the last
    # two axes, 512 cycles.) Along the lanes: 64 rows x (ceil(64/64) + 6) + 8 = 456; the rows as
    # a (64, 64) tile transposed, over axis 0: 63 x ceil(64/64) + 8 = 71, as the line says
    got = {}
    for advised in (False, True):
        ctx = kb.Context("default", unwritten="zero")
        res = ctx.launch(_rows3, (1, 1), ctx.empty((8, 8, 64), "f32"), ctx.empty((8, 8), "f32"),
                         advised=advised)
        got[advised] = (int(res.unit_counters["busy"][0, 1]), res)
    assert (got[False][0], got[True][0]) == (456, 71)
    assert "2-D (rows, r) tile, 456 -> 71 cycles (a tile of more axes reshaped to 2-D first" in (
        busy_text(profile(got[False][1]), "VECTOR"))


def _stream(x_ptr, *, tl):
    tl.load(x_ptr, shape=(4096,), dtype="f32")


def test_dma_partial_bursts_name_the_burst_size():
    # (a review: 384-byte bursts on a 256 B/cycle channel hold it 2 cycles each for 1.5 of bytes,
    # whatever the tile: the advice named tile sizes.) 16,384 B: 42 bursts of 384 (2 cycles each)
    # and one of 256 (1): 85 channel cycles for 64 of bytes, partial 21, latency 1: 21 / 86 = 24.4%
    ctx = kb.Context(load_hw().with_overrides({"dma.burst_bytes": 384, "dma.latency_cycles": 1}), unwritten="zero")
    text = busy_text(profile(ctx.launch(_stream, (1, 1), ctx.empty((4096,), "f32"))), "DMA")
    assert text.endswith("partly used channel cycles, 24.4% of that line's DMA cycles (what cuts it: "
                         "dma.burst_bytes a multiple of the channel's 256 B/cycle (each 384-byte burst "
                         "holds it 2 cycles))")
    assert busy_text(profile(ctx.launch(_stream, (1, 1), ctx.empty((4096,), "f32"))), "DMA").count(
        "1 cycles") == 0  # (a review: "each command pays 1 cycles")


def _fp8_dot(a_ptr, b_ptr, *, tl):
    tl.dot(tl.load(a_ptr, shape=(32, 256), dtype="fp8e4m3"), tl.load(b_ptr, shape=(256, 32), dtype="fp8e4m3"))


def test_no_narrower_dtype_is_offered_for_fp8():
    # (a review: "a dtype half as wide" for fp8, which has none.) sram 16 B/cycle, (32,256) x
    # (256,32) fp8: one fold, SRAM term ceil(64 * 256 * 1 / 16) = 1024 > 256 + 62: 1,024
    # cycles; at 32 B/cycle 512 > 318: 512
    ctx = kb.Context(load_hw().with_overrides({"sram.bytes_per_cycle": 16}), unwritten="zero")
    res = ctx.launch(_fp8_dot, (1, 1), ctx.empty((32, 256), "fp8e4m3"), ctx.empty((256, 32), "fp8e4m3"))
    text = busy_text(profile(res), "GEMM")
    assert text.endswith("(what cuts it: twice sram.bytes_per_cycle, 1,024 -> 512 cycles)")


def test_a_share_just_short_of_all_is_not_rounded_to_all():
    from kernbench.report.profile import _share

    assert (_share(99996, 100000), _share(1, 1), _share(999, 1000), _share(4, 100000)) == (
        ">99.9%", "100.0%", "99.9%", "<0.1%")


def _mixed_rows(a_ptr, b_ptr, o_ptr, p_ptr, *, tl):
    _row_sum(tl, a_ptr, o_ptr, (128, 100))
    _row_sum(tl, b_ptr, p_ptr, (8, 512))


def _row_sum(tl, x_ptr, o_ptr, shape):
    tl.store(o_ptr, tl.sum(tl.load(x_ptr, shape=shape, dtype="f32"), axis=1))


def test_a_line_mixing_tiles_is_offered_the_reductions_that_gain():
    # (a review: a line reducing tiles of several shapes was offered nothing, as moving them all
    # cost more.) One helper line: (128, 100) along the lanes 1,032, transposed 206; (8, 512)
    # along the lanes 8 x (8 + 6) + 8 = 120, transposed 519: the line 1,152 -> 206 + 120 = 326
    ctx = kb.Context("default", unwritten="zero")
    res = ctx.launch(_mixed_rows, (1, 1), ctx.empty((128, 100), "f32"), ctx.empty((8, 512), "f32"),
                     ctx.empty((128,), "f32"), ctx.empty((8,), "f32"))
    prof = profile(res)
    (line,) = [d for d in prof["lines"] if "vector" in d]
    assert line["busy"]["VECTOR"] == 1152 and line["vector"]["what_if"]["leading_axis"] == 326
    assert "where that is cheaper, as tl.trans(x) over axis 0 of a 2-D (rows, r) tile, 1,152 -> 326 cycles" in (
        busy_text(prof, "VECTOR"))
