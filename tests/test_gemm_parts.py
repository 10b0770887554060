"""Why GEMM runs below its peak: a dot's busy cycles split into MACs at peak, edge folds, fill
and drain, and the SRAM operand bound (kernbench.report.gemm), and the profile's GEMM line.

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
from kernbench.report.gemm import PARTS, dot_parts, gemm_parts
from kernbench.report.profile import gemm_text, profile


def _dot_kernel(a, b, c, *, tl, m, n, k):
    x = tl.load(a, shape=(m, k))
    y = tl.load(b, shape=(k, n))
    tl.store(c, tl.dot(x, y))


def _launch(hw, m, n, k, dtype=np.float16):
    ctx = kb.Context(hw)
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
    text = gemm_text(prof)
    # 384 / 760 = 50.5%; 128 / 760 = 16.8%; 248 / 760 = 32.6%
    assert text.startswith("GEMM: 50.5% of its 760 busy cycles were MACs at the 32 x 32 array's peak; "
                           "edge folds 16.8%, fill and drain 32.6%, the SRAM operand bound 0%")
    assert "fill and drain, 32.6% of its GEMM cycles" in text
    assert "two accumulator buffers" in text


def test_sram_operand_bound_and_two_buffers_by_hand():
    # sram.bytes_per_cycle = 16, two accumulator buffers; (64,256) x (256,32) f16:
    # folds = 2 * 1 = 2; SRAM term ceil((32 + 32) * 256 * 2 / 16) = 2048; fold = max(256 + 62,
    # 2048) = 2048; steady = max(256, 31, 2048) = 2048; busy = 1 * 2048 + 2048 = 4096
    # (test_gemm_timing's case). mac = 64 * 32 * 256 / 1024 = 512 = 2 * 256: no edge;
    # fill_drain = (2 - 1) * (max(256, 31) - 256) + 62 = 62; sram = 1 * (2048 - 256) +
    # (2048 - 318) = 1792 + 1730 = 3522. 512 + 0 + 62 + 3522 = 4096.
    hw = load_hw().with_overrides({"sram.bytes_per_cycle": 16, "gemm.accumulator_buffers": 2})
    res = _launch(hw, 64, 32, 256)
    prof = profile(res)
    (line,) = [d for d in prof["lines"] if "gemm" in d]
    assert line["busy"]["GEMM"] == 4096
    assert {p: line["gemm"][p] for p in PARTS} == {"mac": 512.0, "edge": 0.0,
                                                   "fill_drain": 62.0, "sram": 3522.0}
    text = gemm_text(prof)
    assert "the SRAM operand bound, 86.0% of its GEMM cycles" in text  # 3522 / 4096
    assert "two accumulator buffers" not in text  # (it has them)


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
    # mac and edge may be fractions: their sum, folds * K, is whole
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
    idx, parts = gemm_parts(res)
    assert len(idx) > 4
    busy = np.asarray(res.engine.cmd_end)[idx] - np.asarray(res.engine.cmd_start)[idx]
    assert np.array_equal(sum(parts[p] for p in PARTS), busy.astype(np.float64))
    prof = profile(res, path=False)
    for d in prof["lines"]:
        if "gemm" in d:
            assert sum(d["gemm"][p] for p in PARTS) == d["busy"]["GEMM"]
    assert sum(prof["gemm"][p] for p in PARTS) == busy.sum()


def test_no_dot_no_gemm_line():
    def k(a, *, tl):
        tl.store(a, tl.load(a, shape=(8,)) + 1.0)

    ctx = kb.Context("default")
    a = ctx.put(np.ones(8, np.float32), 0)
    prof = profile(ctx.launch(k, (1, 1), a))
    assert prof["gemm"] is None
    assert all("gemm" not in d for d in prof["lines"])
