"""The tuner on the diag panels (``run_panels(tune=True)``, ``kernbench diag --tune``): the fastest
config that fits SRAM is chosen, an over-SRAM config never is, the choice is cached by shapes and
hardware (a second run launches nothing), and the command line names the choice and its gain.
Small shapes only: the whole file runs in a few seconds."""
import json
import re
import sys
from dataclasses import replace

import pytest

import kernbench
from kernbench.cli import main
from kernbench.diag import panel_spec, run_panel, run_panels
from kernbench.diag.panels import tune_configs, tune_panel

#: small enough that the block_q = 32 configs of the small prefill panel (128-161 KB peak) do not
#: fit, while the others (34-86 KB) do
SRAM_CAP = 100_000


@pytest.fixture
def launches(monkeypatch):
    """Counts the sweeps the tuner starts and the points they compute."""
    mod = sys.modules["kernbench.sweeps.tune"]  # (the package's ``tune`` is the function)
    real = mod.sweep
    seen = {"sweeps": 0, "computed": 0}

    def counting(*a, **kw):
        res = real(*a, **kw)
        seen["sweeps"] += 1
        seen["computed"] += res.stats["computed"]
        return res

    monkeypatch.setattr(mod, "sweep", counting)
    return seen


def test_picks_the_fewest_cycles_among_configs_that_fit(tmp_path):
    hw = kernbench.load_hw("default", {"sram.capacity_bytes": SRAM_CAP})
    spec = panel_spec("single_user_prefill", hw, shape="small")
    configs, default = tune_configs(spec)
    assert default == {"block_q": 16, "block_kv": 16} and default in configs and len(configs) == 9
    direct = {}  # each config launched directly, as the diag runs a panel
    for c in configs:
        p = run_panel(replace(spec, blocks=(c["block_q"], c["block_kv"])), hw)
        direct[(c["block_q"], c["block_kv"])] = (p.result.cycles, p.summary["sram"]["over_capacity"])
    fits = {b: cyc for b, (cyc, over) in direct.items() if not over}
    over = {b: cyc for b, (cyc, over) in direct.items() if over}
    assert over and fits  # the check below means something
    # the fastest config overall is over SRAM: the tuner must not take it
    fastest = min(direct, key=lambda b: direct[b][0])
    assert fastest in over

    t = tune_panel(spec, hw, cache=tmp_path)
    best = (t.best["block_q"], t.best["block_kv"])
    assert best == min(fits, key=fits.get) and t.cycles == fits[best]
    assert best not in over
    assert t.default_cycles == direct[(16, 16)][0] and t.gain == pytest.approx(direct[(16, 16)][0] / t.cycles)
    bad = {(r["config"]["block_q"], r["config"]["block_kv"]) for r in t.table if r["error"] is not None}
    assert bad == set(over)
    assert all(r["error_type"] == "SramCapacityError" for r in t.table if r["error"] is not None)


def test_no_config_fits(tmp_path):
    hw = kernbench.load_hw("default", {"sram.capacity_bytes": 4096})
    spec = panel_spec("single_user_decode", hw, shape="small")
    t = tune_panel(spec, hw, cache=tmp_path)
    assert t.best is None and t.gain is None
    (p,) = run_panels(["single_user_decode"], hw=hw, tune=True, tune_cache=tmp_path)
    assert p.spec.blocks == spec.blocks  # the default blocks kept
    assert p.result.extra["diag"]["tuning"]["blocks"] is None  # (what --json writes)
    assert "tuned: no config fits SRAM (3 configs, 3 over SRAM)" in p.summary_lines()[-2]
    assert p.summary_lines()[-2].endswith(": raise sram.capacity_bytes")


def test_cache_hit_and_key(tmp_path, launches):
    hw = kernbench.load_hw("default")
    spec = panel_spec("single_user_decode", hw, shape="small")
    first = tune_panel(spec, hw, cache=tmp_path)
    assert not first.from_cache and first.computed == 3 and launches == {"sweeps": 1, "computed": 3}
    again = tune_panel(spec, hw, cache=tmp_path)
    assert again.from_cache and again.best == first.best and again.cycles == first.cycles
    assert launches["sweeps"] == 1  # nothing simulated the second time
    # another hardware: a new key (the sweep points too: all computed again)
    hw2 = kernbench.load_hw("default", {"link.bytes_per_cycle": 16})
    other = tune_panel(panel_spec("single_user_decode", hw2, shape="small"), hw2, cache=tmp_path)
    assert not other.from_cache and launches == {"sweeps": 2, "computed": 6}
    # other shapes: more decode rows, fewer cubes
    rows = tune_panel(panel_spec("single_user_decode", hw, shape="small", decode_rows=2), hw, cache=tmp_path)
    cubes = tune_panel(panel_spec("multi_user_decode", hw, shape="small", cubes=2), hw, cache=tmp_path)
    assert not rows.from_cache and not cubes.from_cache and launches["sweeps"] == 4
    # and a llama70b context
    big = panel_spec("single_user_decode", hw, shape="llama70b", context=2048)
    # 256 rows per rank: the larger candidates are all 256 rows, one config
    assert tune_configs(big) == ([{"block_kv": 128}, {"block_kv": 256}], {"block_kv": 256})
    assert not tune_panel(big, hw, cache=tmp_path).from_cache and launches["sweeps"] == 5


def test_cli_tune_prints_the_choice_and_hits_the_cache(capsys, tmp_path, launches):
    argv = ["diag", "--panel", "single_user_decode", "--panel", "multi_user_prefill", "--tune",
            "--cache-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tuned: blocks (64,) chosen of 3 configs; gain 1.1791x over the default blocks (32,) " \
           "(3,266 -> 2,770 cycles) (3 launches in" in out
    assert "tuned: blocks (32, 32) chosen of 9 configs; gain" in out
    assert "blocks (64,)\n" in out and "2 of 2 panels passed" in out
    assert launches == {"sweeps": 2, "computed": 12}
    assert main(argv) == 0
    out2 = capsys.readouterr().out
    assert out2.count("(from the cache)") == 2 and launches["sweeps"] == 2  # no candidate launched again
    # the panel itself runs the chosen blocks: its cycles are the tuned ones
    assert "cycles 2,770 = " in out2


def test_cli_llama70b_tune(capsys, tmp_path):
    assert main(["diag", "--shape", "llama70b", "--context", "4K", "--panel", "single_user_decode", "--tune",
                 "--no-cache"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "tuned:" in x)
    m = re.search(r"tuned: blocks \((128|256|512),\) chosen of 3 configs; gain 1\.\d{4}x over the default "
                  r"blocks \(512,\) \([\d,]+ -> [\d,]+ cycles\) \(3 launches in", line)
    assert m, line
    assert f"blocks ({m.group(1)},)\n" in out  # the panel ran the chosen blocks


def test_plain_diag_is_untouched(capsys, tmp_path):
    assert main(["diag", "--panel", "single_user_decode"]) == 0
    out = capsys.readouterr().out
    assert "tuned" not in out and "blocks (32,)" in out
    assert main(["diag", "--no-cache"]) == 2
    assert "--no-cache and --cache-dir are for --tune" in capsys.readouterr().err


def test_the_json_of_a_tuned_diag_is_the_same_bytes_every_run(capsys, tmp_path, launches):
    """(Left out before: `diag --tune --json` held the tuner's CPU and wall seconds, and whether
    the cache answered, so two runs' JSON differed.) The choice and its figures only."""
    outs = []
    for run in range(2):  # (the first computes, the second reads the cache)
        out = tmp_path / f"{run}.json"
        assert main(["diag", "--panel", "single_user_decode", "--tune", "--cache-dir", str(tmp_path / "c"),
                     "--json", str(out)]) == 0
        outs.append(out.read_bytes())
    assert launches["computed"] == 3  # (the second from the cache)
    assert outs[0] == outs[1]
    tuning = json.loads(outs[0])["extra"]["diag"]["tuning"]
    assert tuning["blocks"] == [64] and "cpu_seconds" not in tuning and "from_cache" not in tuning
