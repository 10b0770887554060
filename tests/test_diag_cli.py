"""`kernbench diag`: the four panels run and pass; --panel, --shape llama70b and --hw work."""
import json

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
    assert "decode: 3 ranks" in out and "S_q 3," in out
    assert "GEMM balance 1.000" in out  # zigzag: every rank the same GEMM work
    assert "2 of 2 panels passed" in out


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
