"""`kernbench diag`: the four panels run and pass; --panel, --shape llama70b and --hw work."""
import json
import re

import numpy as np
import pytest

from kernbench.cli import main
from kernbench.diag import PANELS


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_all_four_panels_pass(capsys):
    code, out, _ = run(capsys, "diag")
    assert code == 0
    for name in PANELS:
        assert f"PASS {name}" in out
    assert "4 of 4 panels passed" in out
    # each panel prints its check, cycles, TFLOP/s, utilization and link bytes
    assert out.count("check: max abs err") == 4
    assert out.count("TFLOP/s of") == 4
    assert out.count("utilization (mean over working PEs): GEMM") == 4
    assert out.count("link bytes") == 4


def test_one_panel(capsys):
    code, out, _ = run(capsys, "diag", "--panel", "multi_user_decode")
    assert code == 0
    assert "PASS multi_user_decode" in out and "1 of 1 panels passed" in out
    assert "single_user" not in out
    # multi_user on the default preset: 4 cubes, the ring over cubes
    assert "4 ranks (open line over cubes, SFR scope cube, rank_axis 1)" in out


def test_llama70b_shape(capsys, tmp_path):
    js = tmp_path / "p.json"
    code, out, _ = run(capsys, "diag", "--shape", "llama70b", "--context", "2048",
                       "--panel", "single_user_prefill", "--json", str(js))
    assert code == 0
    assert "S_q 256, context 2048, h_q 64, h_kv 8, d_head 128" in out  # 2048 tokens / 8 ranks
    assert "timing mode, no numerics" in out
    data = json.loads(js.read_text())
    assert data["mode"] == "timing"
    assert data["kernel"]["name"] == "attention_mesh_kv_kernel"
    assert data["kernel"]["args"]["h_q"] == 64 and data["kernel"]["args"]["S_q"] == 256
    assert data["extra"]["diag"]["passed"] is True and data["extra"]["diag"]["tolerance_used"] is None


def test_a_context_implies_the_llama70b_shapes(capsys):
    """A review's case: `kernbench diag --context N` without --shape failed ("--context applies
    to --shape llama70b only") where `kernbench sweep --panel ... --context N` took llama70b
    shapes. A context implies them in both; --shape small with a context is still refused."""
    code, out, _ = run(capsys, "diag", "--context", "2048", "--panel", "single_user_prefill")
    assert code == 0 and "S_q 256, context 2048, h_q 64, h_kv 8, d_head 128" in out
    code, _, err = run(capsys, "diag", "--shape", "small", "--context", "2048", "--panel", "single_user_prefill")
    assert code == 2 and "--context applies to --shape llama70b only" in err


def test_other_hardware(capsys):
    code, out, _ = run(capsys, "diag", "--hw", "mesh8", "--panel", "multi_user_prefill")
    assert code == 0
    # multi_user uses 4 cubes at the small shape whatever the preset's size
    assert "PASS multi_user_prefill" in out


def test_unknown_panel_is_one_line_exit_2(capsys):
    code, out, err = run(capsys, "diag", "--panel", "nope")
    assert code == 2
    assert "unknown diag panel 'nope'" in err and len(err.strip().splitlines()) == 1


def test_causal_cubes_and_decode_rows(capsys):
    code, out, _ = run(capsys, "diag", "--causal", "--cubes", "3", "--decode-rows", "3",
                       "--panel", "multi_user_prefill", "--panel", "multi_user_decode")
    assert code == 0, out
    assert "prefill causal (zigzag): 3 ranks (open line over cubes" in out
    assert "decode causal (query rows the newest tokens): 3 ranks" in out and "S_q 3," in out
    assert "GEMM balance 1.000" in out  # zigzag: every rank the same GEMM work
    assert "2 of 2 panels passed" in out


def test_causal_decode_panels_of_several_rows_mask_the_newer_tokens():
    """A review's case: --causal --decode-rows 4 ran the decode panels without the mask (the
    older rows saw the newer tokens) and checked them against a reference without it, PASS.
    Several decode rows are the newest tokens, each seeing the keys up to its own (docs/kernels.md,
    "Decode"); one row sees the whole context, causal or not."""
    from kernbench.diag import panel_spec, run_panel
    from kernbench.diag.panels import _make_data, attention_reference, check_output
    from kernbench.hw import load_hw
    hw = load_hw("default")
    assert not panel_spec("single_user_decode", hw, causal=True).causal  # one row: no mask
    for name in ("single_user_decode", "multi_user_decode"):
        spec = panel_spec(name, hw, causal=True, decode_rows=4)
        assert spec.causal and spec.S_q == 4
        r = run_panel(spec, hw)
        assert r.passed, r.failures
        assert r.result.extra["diag"]["causal"] is True
        assert "decode causal (query rows the newest tokens)" in r.summary_lines()[0]
        # the mask matters at this shape: the unmasked answer is outside the tolerance
        q, k, v = _make_data(spec)
        n, S = spec.n_ranks, spec.S_kv_per_rank
        k_all, v_all = k.reshape(n * S, spec.h_kv, -1), v.reshape(n * S, spec.h_kv, -1)
        causal = attention_reference(q, k_all, v_all, q_pos=n * S - 4 + np.arange(4), k_pos=np.arange(n * S))
        full = attention_reference(q, k_all, v_all)
        assert not check_output(causal.astype(np.float16), full)[0]  # (r.passed: against causal)
        # model FLOPs: row i sees n S - (3 - i) keys
        seen = sum(n * S - (3 - i) for i in range(4))
        assert spec.model_flops() == 4 * spec.h_q * seen * spec.d_head


def test_more_decode_rows_than_the_context_is_an_error(capsys):
    """A review's case: --decode-rows 1000000000 leaked numpy's "Unable to allocate 1.86 TiB"
    through the CLI. The query rows are the context's newest tokens: at most the context
    (small shape: 8 ranks x 64 K/V rows = 512), refused before any array is placed."""
    code, out, err = run(capsys, "diag", "--panel", "single_user_decode", "--decode-rows", "1000000000")
    assert code == 2 and "decode_rows must be at most the context's 512 tokens" in err
    code, out, _ = run(capsys, "diag", "--panel", "single_user_decode", "--decode-rows", "512")
    assert code == 0 and "S_q 512," in out


def test_more_cubes_than_the_hardware_has_is_an_error(capsys):
    """--cubes past the preset's cubes is refused, not run on fewer (a review found 9 cubes run
    as 4 on the 4-cube default preset, PASS, no word of it)."""
    code, out, err = run(capsys, "diag", "--cubes", "9", "--panel", "multi_user_decode")
    assert code == 2 and "cubes must be an int from 1 to the hardware's 4 cubes, got 9" in err
    from kernbench.diag import panel_spec
    from kernbench.hw import load_hw
    hw = load_hw("default")
    assert panel_spec("multi_user_decode", hw, cubes=4).n_ranks == 4
    for bad in (0, 5, True, 2.0):
        with pytest.raises(ValueError, match="cubes must be an int"):
            panel_spec("multi_user_decode", hw, cubes=bad)


def test_a_context_that_does_not_split_over_the_ranks_says_which_and_what_to_give(capsys, tmp_path):
    """A review: on 3 PEs a cube, the llama70b shape's default 32K context was refused as
    "context 32768 does not split evenly", a number the user never gave."""
    hw = tmp_path / "p3.toml"
    hw.write_text("n_cubes = 1\npes_per_cube = 3\n")
    code, out, err = run(capsys, "diag", "--hw", str(hw), "--shape", "llama70b", "--panel", "single_user_decode")
    assert code == 2 and ("the default context 32768 does not split evenly over 3 ranks: give a context "
                          "that is a multiple of 3 (--context") in err
    code, out, err = run(capsys, "diag", "--hw", str(hw), "--context", "3000", "--panel", "single_user_decode")
    assert code == 0, err


def test_a_context_is_checked_against_every_panel_at_once(capsys, tmp_path):
    """A review on 3 PEs by 5 cubes: the default context was refused for the PE panels' 3
    ranks, and the multiple of 3 it asked for then for the cube panels' 5; a causal prefill's
    two zigzag chunks a rank were refused as "an even number of rows per rank, got 3". The
    context is checked for all the panels run, naming each one's multiple and their lcm."""
    hw = tmp_path / "p3c5.toml"
    hw.write_text("n_cubes = 5\npes_per_cube = 3\n")
    code, out, err = run(capsys, "diag", "--hw", str(hw), "--shape", "llama70b", "--context", "4098")
    assert code == 2 and ("context 4098 does not split evenly over every panel's ranks (single_user_prefill "
                          "a multiple of 3, single_user_decode a multiple of 3, multi_user_prefill a "
                          "multiple of 5, multi_user_decode a multiple of 5): give a context that is a "
                          "multiple of 15 (--context)") in err
    code, out, err = run(capsys, "diag", "--hw", str(hw), "--shape", "llama70b", "--causal", "--context", "4105",
                         "--panel", "multi_user_prefill")  # (5 ranks x 821: odd rows a rank)
    assert code == 2 and ("context 4105 does not split evenly over 5 ranks in two zigzag chunks each "
                          "(causal): give a context that is a multiple of 10") in err
    code, out, err = run(capsys, "diag", "--hw", str(hw), "--shape", "llama70b", "--causal", "--context", "60",
                         "--panel", "multi_user_prefill", "--panel", "single_user_decode")
    assert code == 0, err


def test_the_python_entry_refuses_what_the_cli_refuses():
    """panel_spec / run_panels (a review): context=0 ran the default 32K context; causal="no"
    ran causal; decode_rows 0, 2.5, -3 or True and a context of 1024.0 or -8 met numpy's or a
    placement's errors, or a misleading one; panels="single_user_decode" was read letter by
    letter. Each is a ValueError naming the argument."""
    from kernbench.diag import panel_spec, run_panels
    from kernbench.hw import load_hw
    hw = load_hw("default")
    for bad in (0, -8, 1024.0, True):
        with pytest.raises(ValueError, match=r"context must be None \(the shape's\) or a positive int"):
            panel_spec("single_user_prefill", hw, shape="llama70b", context=bad)
    for bad in (0, 2.5, -3, True):
        with pytest.raises(ValueError, match="decode_rows must be a positive int"):
            panel_spec("single_user_decode", hw, decode_rows=bad)
    for bad in ("no", 2, 0.5, None):
        with pytest.raises(ValueError, match="causal must be True or False"):
            panel_spec("single_user_prefill", hw, causal=bad)
    assert panel_spec("single_user_prefill", hw, causal=1).causal is True  # (the CLI's --arg causal=1)
    with pytest.raises(ValueError, match=r"panels must be a list of panel names, got the string "
                                         r"'single_user_decode': pass \['single_user_decode'\]"):
        run_panels("single_user_decode")
    with pytest.raises(ValueError, match=r"panels: no panel given"):
        run_panels([])
    # a sweep's panel builder hands its values on unchanged: "no" is refused, not made True
    from kernbench.sweeps.panels import panel_launch
    import kernbench
    with pytest.raises(ValueError, match="causal must be True or False"):
        panel_launch("single_user_prefill", shape="llama70b", context=4096)(kernbench.Context(hw), causal="no")
    assert panel_spec("single_user_decode", hw, decode_rows=np.int64(2)).S_q == 2


def test_a_timing_panel_over_sram_says_fail_on_its_check_line(capsys):
    """--context 4K --decode-rows 1K: the decode panel's peak SRAM is over capacity, the panel
    FAILs, and its check line said "PASS: it ran and its peak SRAM fits" (a review)."""
    code, out, _ = run(capsys, "diag", "--context", "4K", "--decode-rows", "1K", "--panel", "single_user_decode")
    assert code == 1
    assert "check: timing mode, no numerics (FAIL: its peak SRAM is over capacity)" in out
    assert "PASS: it ran" not in out


def test_causal_tflops_line_gives_the_rate_of_the_unmasked_half():
    """Causal prefill: the line's first rate counts the FLOPs the GEMM units ran, the second the
    unmasked half of the attention (PanelSpec.model_flops), both over the launch's seconds."""
    import re

    from kernbench.diag import panel_spec, run_panel
    from kernbench.hw import load_hw
    hw = load_hw("default")
    spec = panel_spec("single_user_prefill", hw, causal=True)
    r = run_panel(spec, hw)
    line = next(ln for ln in r.summary_lines() if "TFLOP/s" in ln)
    m = re.search(r"; ([0-9.]+) TFLOP/s \(([0-9.]+)%\) counting the unmasked half", line)
    assert m, line
    want = spec.model_flops() / hw.seconds(r.result.cycles) / 1e12
    assert float(m.group(1)) == round(want, 2)
    assert "counting the unmasked half" not in next(
        ln for ln in run_panel(panel_spec("single_user_prefill", hw), hw).summary_lines() if "TFLOP/s" in ln)


def test_attainable_counts_dma_latency_and_whole_bursts():
    """PanelResult.attainable's DMA bounds, derived by hand (docs/hardware-model.md, defaults:
    256 B/cycle channel, latency 150). (a) One PE, 20 loads of 512 B: the in-order DMA unit runs
    each alone in ceil(512/256) = 2 burst cycles + 150 = 152, so 20 x 152 = 3,040 cycles, the
    launch itself; the bound named the channel's 40 before (a review found it 76x too low). (b)
    Bursts of 264 B: each holds the channel ceil(264/256) = 2 cycles; two PEs loading 100 bursts
    each keep it 400 cycles busy, the launch 400 + 150 = 550 (bytes / 256 would say 207)."""
    import kernbench
    from kernbench.diag.panels import PanelResult

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.empty((256 * 20,), "f16")

    def loads(p, *, tl):
        for i in range(20):
            tl.load(p + i * 512, shape=(256,), dtype="f16")

    r = ctx.launch(loads, (1, 1), x, mode="timing")
    assert r.cycles == 3040 and PanelResult(None, r, True, None, None, 0.0).attainable() == (3040, "DMA")
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2, "dma.burst_bytes": 264})
    x = ctx.empty((13200,), "f16")  # 26,400 B: 100 bursts of 264

    def one_load(p, *, tl):
        tl.load(p, shape=(13200,), dtype="f16")

    r = ctx.launch(one_load, (2, 1), x, mode="timing")
    assert r.cycles == 550
    assert PanelResult(None, r, True, None, None, 0.0).attainable() == (400, "memory channel")


def test_a_plot_name_without_a_suffix_is_a_png_per_panel(capsys, tmp_path, monkeypatch):
    """--plot p with two panels: p.<panel> made matplotlib read the panel's name as the format
    (exit 2 after the first panel ran, a breaker); each panel's plot is p.<panel>.png."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "diag", "--panel", "single_user_decode", "--panel", "multi_user_decode",
                       "--plot", "p")
    assert code == 0, err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.multi_user_decode.png", "p.single_user_decode.png"]


def test_a_panel_over_sram_capacity_names_how_many_pes_are_over():
    """The failure line names the first four PEs over capacity and how many more (a review:
    eight PEs over read as four)."""
    from dataclasses import replace

    from kernbench.diag import run_panels
    from kernbench.hw import load_hw

    hw = load_hw("default")
    hw = replace(hw, sram=replace(hw.sram, capacity_bytes=30_000))
    (p,) = run_panels(panels=["single_user_prefill"], hw=hw)
    over = p.result.extra["diag"]["failures"]
    assert not p.passed and len(over) == 1
    assert "on PE (0, 0), PE (1, 0), PE (2, 0), PE (3, 0) and 4 more PEs: raise sram.capacity_bytes to at least " in over[0], over


def test_one_pe_reads_as_one(capsys, tmp_path):
    """A review on a 1 x 1 machine: "1 ranks", "1 working PEs", "links 0% (wire busy, mean over
    0 used links)"; and on a 65,536 x 1 array at 1,000 GHz the table's "(0.0%)" of the peak,
    below reports.md's 3 significant digits."""
    (tmp_path / "p1.toml").write_text("n_cubes = 1\npes_per_cube = 1\n")
    code, out, err = run(capsys, "diag", "--hw", str(tmp_path / "p1.toml"), "--panel", "single_user_decode")
    assert code == 0, err
    assert "decode: 1 rank (open line" in out and "on 1 working PE (" in out
    assert "DMA " in out and "%, no link traffic; GEMM balance 1.000 (least/most busy rank)" in out
    (tmp_path / "fast.toml").write_text("clock_ghz = 1000\n[gemm]\nrows = 65536\ncols = 1\n")
    code, out, err = run(capsys, "diag", "--hw", str(tmp_path / "fast.toml"), "--panel", "single_user_decode",
                         "--table")
    assert code == 0, err
    m = re.search(r"TFLOP/s peak \((\S+)%\)", out)
    assert m and m[1] != "0.0" and 0 < float(m[1]) < 1e-4, out
