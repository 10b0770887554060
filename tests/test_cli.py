"""The kernbench command line: exit status and key output of each command; errors are one line."""
import io
import json
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import kernbench.cli as cli
from kernbench.cli import DelayedProgress, main, parse_grid, parse_value
from kernbench.common.pe_commands import Unit

from report_helpers import line_pipeline


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kernbench: error: ")
    assert "Traceback" not in err
    return lines[0]


# -- hw ------------------------------------------------------------------------------------------
def test_hw_list(capsys):
    code, out, _ = run(capsys, "hw", "list")
    assert code == 0
    rows = {l.split()[0]: l.split() for l in out.splitlines() if l.strip() and l.split()[0] in
            ("default", "mesh8", "mesh64")}
    assert set(rows) == {"default", "mesh8", "mesh64"}
    # default: 4 cubes x 8 PEs; GEMM peak 2 * 32 * 32 flop/cycle * 32 PEs * 1.5 GHz = 98.3 TFLOP/s;
    # memory 4 channels * 256 B/cycle * 1.5 GHz = 1536 GB/s; link 32 B/cycle * 1.5 GHz = 48 GB/s.
    assert rows["default"][1:8] == ["4", "8", "1.5", "98.3", "1,536", "48", "16"]
    # mesh64: 64 cubes -> 16x the default's GEMM peak (1572.9) and memory bandwidth, in the
    # format `hw show` uses (3 significant digits, every integer digit, grouped)
    assert rows["mesh64"][1:6] == ["64", "8", "1.5", "1,573", "24,576"]
    # smallest machine first (not by name, which puts mesh64 before mesh8)
    assert [n for n in rows] == ["default", "mesh8", "mesh64"]


def test_hw_show(capsys):
    code, out, _ = run(capsys, "hw", "show", "mesh8")
    assert code == 0
    assert "hardware 'mesh8'" in out
    line = next(l for l in out.splitlines() if "n_cubes" in l)
    assert line.split("│")[2].strip() == "8"
    assert any("link.bytes_per_cycle" in l and "32" in l for l in out.splitlines())
    assert "PEs             64 (8 cubes x 8)" in out


def test_hw_show_and_list_print_figures_alike(capsys):
    # mesh64's memory bandwidth once printed as 2.458e+04 GB/s here and 24576 in `hw list`
    _, out, _ = run(capsys, "hw", "show", "mesh64")
    assert "GEMM peak       1,573 TFLOP/s (2,048 flop/cycle per PE)" in out
    assert "memory          24,576 GB/s (384 GB/s per cube channel)" in out
    assert "e+" not in out


def test_hw_show_of_one_cube(capsys, tmp_path):
    import kernbench.hw

    toml = (Path(kernbench.hw.__file__).parent / "presets" / "mesh8.toml").read_text()
    one = tmp_path / "one.toml"
    one.write_text(toml.replace('name = "mesh8"', 'name = "one"').replace("n_cubes = 8", "n_cubes = 1"))
    code, out, err = run(capsys, "hw", "show", str(one))
    assert code == 0, err
    assert "PEs             8 (1 cube x 8)" in out


def test_hw_show_of_a_slow_clock_has_no_exponent(capsys, tmp_path):
    # a review found "clock_ghz │ 1e-09" in the key table (the footer's figures were plain)
    import kernbench.hw

    toml = (Path(kernbench.hw.__file__).parent / "presets" / "default.toml").read_text()
    slow = tmp_path / "slow.toml"
    slow.write_text(toml.replace("clock_ghz = 1.5", "clock_ghz = 0.000000001"))
    code, out, err = run(capsys, "hw", "show", str(slow))
    assert code == 0, err
    assert "0.000000001" in out and not re.search(r"\d[eE][+-]?\d", out), out


@pytest.mark.parametrize("argv", [["hw", "show", "nope"], ["diag", "--hw", "nope"],
                                  ["run", "x.py:k", "--grid", "8,1", "--hw", "nope"]])
def test_bad_preset_is_one_line_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    line = one_error_line(err)
    assert "unknown hardware preset 'nope'" in line and "default, mesh64, mesh8" in line


def test_debug_shows_the_traceback(capsys):
    """--debug prints the traceback and still exits 2, an error's status (a review found 1,
    Python's for an uncaught exception, which a script reads as a failed check)."""
    for argv in (["hw", "show", "nope", "--debug"], ["--debug", "hw", "show", "nope"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):")
        assert "HardwareConfigError: unknown hardware preset 'nope'" in err


# -- run: argument and kernel errors --------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "no_such_module_xyz:k", "--grid", "8,1"], "cannot import kernel module 'no_such_module_xyz'"),
        (["run", "missing/file.py:k", "--grid", "8,1"], "kernel file 'missing/file.py' does not exist"),
        (["run", "kernbench.cli:no_kernel", "--grid", "8,1"], "module 'kernbench.cli' has no kernel named 'no_kernel'"),
        (["run", "justaname", "--grid", "8,1"], "kernel must be MODULE:FUNCTION"),
        (["run", "m:k"], "the following arguments are required: --grid"),
        (["run", "m:k", "--grid", "8,0"], "grid must be PES,CUBES with positive integers"),
        (["run", "m:k", "--grid", "8,1", "--arg", "novalue"], "expected NAME=VALUE"),
        (["run", "m:k", "--grid", "8,1", "--mode", "fast"], "invalid choice: 'fast'"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_bad_run_input_is_one_line_exit_2(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert expected in one_error_line(err)


def test_kernel_file_with_an_import_error(capsys, tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import no_such_dependency_abc\n")
    code, _, err = run(capsys, "run", f"{bad}:k", "--grid", "8,1")
    assert code == 2
    assert "ModuleNotFoundError" in one_error_line(err)


def test_missing_kernel_argument_names_it(tmp_path):
    mod = types.ModuleType("m")

    def k(x_ptr, n, scale=1.0, *, tl):
        pass

    mod.k = k
    with pytest.raises(cli.CliError, match=r"kernel k needs argument 'x_ptr': pass --arg x_ptr=VALUE"):
        cli.launch_args(mod, k, None, {"n": 4})
    with pytest.raises(cli.CliError, match=r"kernel k has no parameter 'm'"):
        cli.launch_args(mod, k, None, {"x_ptr": 0, "n": 4, "m": 1})
    # Defaults fill what --arg leaves out; order follows the signature.
    assert cli.launch_args(mod, k, None, {"n": 4, "x_ptr": 64}) == (64, 4, 1.0)


def test_setup_provides_pointer_arguments():
    mod = types.ModuleType("m")
    seen = {}

    def k(x_ptr, o_ptr, n, *, tl):
        pass

    def setup(ctx, n):
        seen["ctx"], seen["n"] = ctx, n
        return {"x_ptr": 128, "o_ptr": 256}

    mod.k, mod.setup = k, setup
    assert cli.launch_args(mod, k, "CTX", {"n": 8}) == (128, 256, 8)
    assert seen == {"ctx": "CTX", "n": 8}
    mod.setup = lambda ctx, **a: [1, 2, 3]  # a sequence is passed as is
    assert cli.launch_args(mod, k, None, {}) == (1, 2, 3)
    mod.setup = lambda ctx, **a: 42
    with pytest.raises(cli.CliError, match="setup.*must return"):
        cli.launch_args(mod, k, None, {})


# -- help ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "usage: kernbench"),
        (["diag"], "--panel NAME"),
        (["run"], "def setup(ctx, **args)"),
        (["hw"], "ACTION"),
        (["hw", "list"], "usage: kernbench hw list"),
        (["hw", "show"], "preset name (kernbench hw list) or TOML file (a name with a '/' or ending in .toml"),
    ],
)
def test_help_for_each_command(capsys, argv, expected):
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0
    assert expected in " ".join(out.split())  # (as argparse wraps it)


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "usage: kernbench" in out


def test_python_dash_m_kernbench(tmp_path):
    # cwd away from the checkout: `-m` puts the cwd first on sys.path, and the source tree of a
    # non-editable install has no compiled engine
    p = subprocess.run([sys.executable, "-m", "kernbench", "hw", "show", "nope"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip() == ("kernbench: error: unknown hardware preset 'nope' "
                                "(presets: default, mesh64, mesh8)")


# -- value parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [("42", 42), ("0x40", 64), ("4K", 4096), ("1M", 1 << 20), ("1_024", 1024), ("0.5", 0.5),
     ("1e-3", 1e-3), ("True", True), ("false", False), ("None", None), ("f16", "f16"),
     ("bf16", "bf16"), ("1,2,3", (1, 2, 3)), ("64,f16", (64, "f16")),
     # (a review: no way to pass the string none or false) quoted: the string between the quotes
     ('"none"', "none"), ("'false'", "false"), ('"4K"', "4K"), ("'nan'", "nan"), ('""', ""),
     ('"a",\'True\',None', ("a", "True", None)), ("'x\"", "'x\""), ('"', '"'), ('"x,y"', "x,y"),
     ("'x,y',z", ("x,y", "z")), ('1,"2,3",\'\'', (1, "2,3", ""))],
)
def test_parse_value(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["it's", "'", '"', '"a,b",c', "8,", "it's,x", "4K,8K", "'none',TRUE", "x"])
def test_a_sweep_reads_values_as_run_does(text):
    """A review: sweep split on commas first and refused "it's" (one value to run) as "an empty
    value". The one rule: run's value; its tuple is the values a sweep sweeps."""
    from kernbench.cli import _parse_choices

    v = parse_value(text)
    assert _parse_choices(f"n={text}") == ("n", list(v) if isinstance(v, tuple) else [v])


@pytest.mark.parametrize("text, quote", [('"a,b', '"'), ("1,'2", "'"), ("x, 'y", "'")])
def test_parse_value_refuses_an_unclosed_quote_in_a_list(text, quote):
    with pytest.raises(ValueError, match=f"an unclosed {quote} in "):
        parse_value(text)


def test_parse_grid():
    assert parse_grid("8,4") == (8, 4)
    assert parse_grid("8x4") == (8, 4)
    assert parse_grid("8") == (8, 1)
    for bad in ("0,1", "a,b", "1,2,3", ""):
        with pytest.raises(Exception, match="grid must be PES,CUBES"):
            parse_grid(bad)


# -- progress --------------------------------------------------------------------------------------
def test_progress_bar_shows_only_after_the_delay():
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=100)
    with DelayedProgress("quick job", console=con, delay=30.0) as p:
        p("panel a", 1, 4)
    assert not p.shown and "quick job" not in buf.getvalue()

    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=100)
    with DelayedProgress("slow job", console=con, delay=0.0) as p:
        for _ in range(200):  # the timer thread starts the bar
            if p.shown:
                break
            time.sleep(0.01)
        p("panel b", 3, 4)
        p._progress.refresh()
    assert p.shown
    assert "panel b" in buf.getvalue() and "3/4" in buf.getvalue()


def test_progress_is_off_when_not_a_terminal():
    con = Console(file=io.StringIO(), force_terminal=False)
    with DelayedProgress("job", console=con, delay=0.0) as p:
        p(description="x", done=1, total=2)
    assert not p.shown


# -- diag wiring (a stand-in harness; the real one is kernbench.diag.run_panels) --------------------
class _Panel:
    def __init__(self, name, passed, result):
        self.name, self.passed, self.result = name, passed, result

    def summary_lines(self):
        return [f"{self.name}: {self.result.cycles} cycles"]


@pytest.fixture
def fake_diag(monkeypatch):
    import kernbench.diag as diag

    calls = {}
    res = line_pipeline(n_pes=2)

    def run_panels(progress=None, **kw):
        calls.update(kw)
        progress("panel", 1, 2)
        names = kw.get("panels") or ["alpha", "beta"]
        return [_Panel(n, n != "beta", res) for n in names]

    monkeypatch.setattr(diag, "run_panels", run_panels, raising=False)
    return calls, res


def test_diag_failing_panel_exits_1(capsys, fake_diag, tmp_path):
    calls, res = fake_diag
    code, out, _ = run(capsys, "diag", "--shape", "small", "--context", "4K", "--trace", str(tmp_path / "t.json"))
    assert code == 1
    assert calls == {"shape": "small", "context": 4096}
    assert "PASS alpha" in out and "FAIL beta" in out
    assert f"alpha: {res.cycles} cycles" in out
    assert "1 of 2 panels passed" in out
    # Several panels: one trace per panel, named after it.
    assert (tmp_path / "t.alpha.json").stat().st_size > 0 and (tmp_path / "t.beta.json").exists()


def test_diag_one_panel_passes(capsys, fake_diag, tmp_path):
    calls, _ = fake_diag
    code, out, _ = run(capsys, "diag", "--panel", "alpha", "--hw", "mesh8", "--table",
                       "--json", str(tmp_path / "d.json"), "--plot", str(tmp_path / "d.png"))
    assert code == 0
    assert calls["panels"] == ["alpha"] and calls["hw"].name == "mesh8"
    assert "1 of 1 panels passed" in out and "stall %" in out  # --table printed the report
    assert (tmp_path / "d.json").exists() and (tmp_path / "d.png").stat().st_size > 0


# -- run: a user's kernel, end to end ------------------------------------------------------------
KERNELS = '''
import numpy as np


def vadd(x_ptr, y_ptr, o_ptr, n, *, tl):
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    y = tl.load(y_ptr, shape=(n,), dtype="f32")
    tl.store(o_ptr, x + y)


def setup(ctx, n=1024):
    x = ctx.shard(np.arange(8 * n, dtype=np.float32), axis=0)
    y = ctx.shard(np.ones(8 * n, dtype=np.float32), axis=0)
    return {"x_ptr": x, "y_ptr": y, "o_ptr": ctx.empty_like(x)}


def exp_only(n, *, tl):
    tl.exp(tl.full((n,), 1.0, dtype="f32"))


def setup_exp_only(ctx, n):
    return (n,)


def ring_deadlock(n, *, tl):
    x = tl.recv("W", shape=(n,), dtype="f32")  # every PE waits before anyone sends
    tl.send("E", x)


def setup_ring_deadlock(ctx, n):
    return (n,)


def bad_dot(n, *, tl):
    a = tl.full((n, 8), 1.0, dtype="f16")
    b = tl.full((4, n), 1.0, dtype="f16")
    tl.dot(a, b)


def setup_bad_dot(ctx, n):
    return (n,)
'''


@pytest.fixture
def kernels(tmp_path):
    p = tmp_path / "user_kernels.py"
    p.write_text(KERNELS)
    return p


def test_run_file_kernel_with_setup(capsys, kernels, tmp_path):
    j, t, png = tmp_path / "r.json", tmp_path / "r.trace.json", tmp_path / "r.png"
    code, out, err = run(capsys, "run", f"{kernels}:vadd", "--grid", "8,1", "--arg", "n=2048",
                         "--mode", "functional", "--json", str(j), "--trace", str(t), "--plot", str(png))
    assert code == 0, err
    assert "vadd on default: grid 8 PEs x 1 cube, 8 working PEs, functional mode" in out
    assert f"trace  -> {t}" in out and f"json   -> {j}" in out and f"plot   -> {png}" in out
    doc = json.loads(j.read_text())
    assert doc["kernel"]["name"] == "vadd" and doc["grid"] == [8, 1] and doc["mode"] == "functional"
    assert doc["kernel"]["args"]["n"] == 2048
    # The add of 2048 f32 elements: ceil(2048 / 64) * 1 + 8 = 40 cycles on every PE's VECTOR.
    busy = doc["counters"]["units"]["busy"]
    assert [busy[g][Unit.VECTOR] for g in range(8)] == [40] * 8
    vec_line = next(l for l in out.splitlines() if l.strip().startswith("VECTOR "))
    assert f"{100 * 40 / doc['cycles']:.1f}/{100 * 40 / doc['cycles']:.1f}/" in vec_line
    assert f"{doc['cycles']:,} cycles" in out
    trace = json.loads(t.read_text())
    assert sum(1 for e in trace["traceEvents"] if e["ph"] == "X") == 8 * 4  # load, load, add, store
    assert png.stat().st_size > 10_000


def test_run_timing_mode_gives_the_cycles_of_functional(capsys, kernels, tmp_path):
    docs = {}
    for mode in ("functional", "timing"):
        j = tmp_path / f"{mode}.json"
        code, _, err = run(capsys, "run", f"{kernels}:vadd", "--grid", "8,1", "--arg", "n=512",
                           "--mode", mode, "--json", str(j))
        assert code == 0, err
        docs[mode] = json.loads(j.read_text())
    assert docs["functional"]["cycles"] == docs["timing"]["cycles"] > 0
    assert docs["functional"]["counters"] == docs["timing"]["counters"]


def test_run_dotted_module_with_per_kernel_setup(capsys, kernels, monkeypatch):
    monkeypatch.chdir(kernels.parent)
    monkeypatch.delitem(sys.modules, "user_kernels", raising=False)
    code, out, err = run(capsys, "run", "user_kernels:exp_only", "--grid", "2,2", "--arg", "n=4K")
    assert code == 0, err
    assert "exp_only on default: grid 2 PEs x 2 cubes, 4 working PEs, timing mode" in out
    # exp over 4096 elements: ceil(4096 / 64) * 4 + 8 = 264 cycles, and fill is 64 * 1 + 8 = 72
    # before it on the same unit: the launch is 336 cycles.
    assert "336 cycles" in out


def test_run_deadlock_is_one_line_and_its_cycle(capsys, kernels):
    """The first blocked unit on one line, and under it the cycle of waits and what would
    remove it (a review found them left to --debug)."""
    code, _, err = run(capsys, "run", f"{kernels}:ring_deadlock", "--grid", "8,1", "--ring",
                       "--arg", "n=64")
    assert code == 2
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[0].startswith("kernbench: error: ")
    line = lines[0]
    assert "deadlock at cycle" in line and "rerun with --debug for all" in line
    # The first blocked unit is on the line: PE (0, 0) sends only after its recv, which waits.
    assert "Blocked: PE (0, 0) TX_E" in line and "user_kernels.py:" in line
    assert lines[1].startswith("Cycle of waits: PE (0, 0) TX_E -> PE (0, 0) RX_W -> PE (7, 0) TX_E")
    assert all(x.startswith(("Cycle of waits:", "What would remove it:")) for x in lines[1:])


def test_run_kernel_error_is_one_line(capsys, kernels):
    code, _, err = run(capsys, "run", f"{kernels}:bad_dot", "--grid", "1,1", "--arg", "n=16")
    assert code == 2
    line = one_error_line(err)
    assert "user_kernels.py:" in line  # the kernel line of the bad dot


def test_run_setup_arguments_are_checked(capsys, kernels):
    code, _, err = run(capsys, "run", f"{kernels}:vadd", "--grid", "8,1", "--arg", "m=3")
    assert code == 2
    line = one_error_line(err)
    assert "setup(ctx, n=1024)" in line and "unexpected keyword argument 'm'" in line
    code, _, err = run(capsys, "run", f"{kernels}:exp_only", "--grid", "8,1")
    assert code == 2
    assert "setup_exp_only(ctx, n)" in one_error_line(err) and "'n'" in err


def test_setup_only_arguments_do_not_reach_the_kernel():
    mod = types.ModuleType("m")

    def k(x_ptr, n, *, tl):
        pass

    # `rows` is setup's (it sizes the input); `n` goes to both.
    mod.setup = lambda ctx, rows, n: {"x_ptr": rows * 100}
    assert cli.launch_args(mod, k, None, {"rows": 3, "n": 7}) == (300, 7)
    mod.setup = lambda ctx, n: {"x_ptr": 1, "bogus": 2}
    # (named as setup's: the user never passed it; a new user read it as their --arg)
    with pytest.raises(cli.CliError, match=r"setup\(ctx, \.\.\.\) in .* returned 'bogus', which kernel k "
                                           r"has no parameter for \(parameters: x_ptr, n\)"):
        cli.launch_args(mod, k, None, {"n": 7})


def test_keyword_only_kernel_parameters_are_filled_by_name():
    """def k(x, *, tl, scale=1.0): --arg scale=2 was dropped (scale 1 ran) where setup returned a
    dict, and a setup returning scale was refused (a breaker). Every named parameter but tl is
    filled by name; keyword-only ones go to the launch as keywords."""
    mod = types.ModuleType("m")

    def k(x, *, tl, scale=1.0, bias):
        pass

    mod.setup = lambda ctx, **args: {"x": 5}
    got = cli.launch_args(mod, k, None, {"scale": 2.0, "bias": 1})
    assert got == (5,) and got.kwargs == {"scale": 2.0, "bias": 1}
    mod.setup = lambda ctx: {"x": 5, "scale": 3.0, "bias": 0}
    got = cli.launch_args(mod, k, None, {})
    assert got == (5,) and got.kwargs == {"scale": 3.0, "bias": 0}
    mod.setup = lambda ctx: {"x": 5}
    with pytest.raises(cli.CliError, match="kernel k needs argument 'bias'"):
        cli.launch_args(mod, k, None, {})
    # a setup returning the positional arguments as a tuple: --arg fills the keyword-only ones
    mod.setup = lambda ctx, **args: (5,)
    got = cli.launch_args(mod, k, None, {"scale": 2.0, "bias": 1})
    assert got == (5,) and got.kwargs == {"scale": 2.0, "bias": 1}
    with pytest.raises(cli.CliError, match="kernel k needs argument 'bias'"):
        cli.launch_args(mod, k, None, {"scale": 2.0})


def test_an_error_in_setup_says_it_came_from_setup(capsys, tmp_path):
    mod = tmp_path / "bad_setup.py"
    mod.write_text("def setup(ctx, **args):\n    return {}['missing']\n\n"
                   "def k(*, tl):\n    pass\n")
    code, _, err = run(capsys, "run", f"{mod}:k", "--grid", "1,1")
    assert code == 2
    line = one_error_line(err)
    assert "setup(ctx, ...) in" in line and "raised KeyError at bad_setup.py:2: 'missing'" in line


def test_an_error_in_a_function_setup_called_names_the_calls(capsys, tmp_path):
    # (a review's case: a kernel's errors named the calls to a helper, a setup's did not)
    mod = tmp_path / "helper_setup.py"
    mod.write_text("def load(d):\n    return d['missing']\n\n"
                   "def setup(ctx, **args):\n    return load({})\n\n"
                   "def k(*, tl):\n    pass\n")
    code, _, err = run(capsys, "run", f"{mod}:k", "--grid", "1,1")
    assert code == 2
    line = one_error_line(err)
    assert ("raised KeyError at helper_setup.py:2 (in load, called from setup at helper_setup.py:5): "
            "'missing'") in line, line


@pytest.mark.parametrize("n", ["0", "-3"])
def test_a_bad_arg_refused_inside_kernbench_points_at_the_setup_line(capsys, tmp_path, n):
    """`--arg n=0` reaches ctx.empty((n,), ...) through setup: the error names setup's line,
    the one the user can change, not kernbench's shape check that refused it."""
    mod = tmp_path / "sized_setup.py"
    mod.write_text("def setup(ctx, n):\n    x = ctx.empty((n,), 'f32')\n    return {'x_ptr': x}\n\n"
                   "def k(x_ptr, n, *, tl):\n    pass\n")
    code, _, err = run(capsys, "run", f"{mod}:k", "--grid", "1,1", "--arg", f"n={n}")
    assert code == 2
    line = one_error_line(err)
    assert (f"raised PlacementError at sized_setup.py:2: shape must be a non-empty tuple of "
            f"positive ints, got ({n},)") in line, line


# -- run: modules beside the kernel file, --save, the check hook, output paths -------------------
def test_a_kernel_file_imports_a_module_beside_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the run puts the file's folder on it
    d = tmp_path / "proj"
    d.mkdir()
    (d / "beside_helpers_q7.py").write_text("N = 64\n\ndef twice(x):\n    return x + x\n")
    (d / "k.py").write_text(
        "from beside_helpers_q7 import N\n\n"
        "def k(*, tl):\n"
        "    import beside_helpers_q7  # at launch time too, as under `python k.py`\n"
        "    beside_helpers_q7.twice(tl.full((N,), 1.0, dtype='f32'))\n"
    )
    for name in ("beside_helpers_q7",):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.chdir(tmp_path)  # not the kernel's folder: only sys.path can find the helper
    code, out, err = run(capsys, "run", "proj/k.py:k", "--grid", "1,1")
    assert code == 0, err
    assert "k on default: grid 1 PE x 1 cube, 1 working PE, timing mode" in out
    assert sys.path[0] == str(d.resolve())


CHECKED = KERNELS + '''

def check(ctx, args, result):
    got = ctx.gather(args["o_ptr"])
    assert got.shape == (8 * args["n"],), got.shape
    return bool(np.array_equal(got, np.arange(8 * args["n"]) + 1))


def exp_only_vadd(x_ptr, y_ptr, o_ptr, n, *, tl):
    vadd(x_ptr, y_ptr, o_ptr, n, tl=tl)


def setup_exp_only_vadd(ctx, n=1024):
    return dict(setup(ctx, n), n=n)


def check_exp_only_vadd(ctx, args, result):
    assert ctx.gather(args["o_ptr"])[0] == 99, "o[0] should be 99"


def wrong_vadd(x_ptr, y_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32"))  # forgets y


def setup_wrong_vadd(ctx, n=1024):
    return dict(setup(ctx, n), n=n)
'''


@pytest.fixture
def checked(tmp_path):
    p = tmp_path / "checked_kernels.py"
    p.write_text(CHECKED)
    return p


def test_save_writes_what_the_kernel_stored(capsys, checked, tmp_path):
    out_npz = tmp_path / "out.npz"
    code, out, err = run(capsys, "run", f"{checked}:vadd", "--grid", "8,1", "--arg", "n=256",
                         "--mode", "functional", "--save", str(out_npz))
    assert code == 0, err
    assert f"save   -> {out_npz}  (o_ptr)" in out
    with np.load(out_npz) as z:
        assert sorted(z.files) == ["o_ptr", "o_ptr.per_pe"]  # x and y were only read
        np.testing.assert_array_equal(z["o_ptr"], np.arange(8 * 256, dtype=np.float32) + 1)
        per_pe = z["o_ptr.per_pe"]
    # (cubes, PEs per cube, per-PE shape) of the default preset; PE p of cube 0 holds slice p.
    assert per_pe.shape == (4, 8, 256)
    np.testing.assert_array_equal(per_pe[0, 3], np.arange(3 * 256, 4 * 256) + 1)
    assert np.isnan(per_pe[1]).all()  # cube 1 is outside the grid: never written


def test_save_needs_functional_mode_and_says_so_before_the_run(capsys, checked, tmp_path):
    code, _, err = run(capsys, "run", f"{checked}:vadd", "--grid", "8,1", "--save", str(tmp_path / "o.npz"))
    assert code == 2
    assert "--save needs --mode functional" in one_error_line(err)
    assert not (tmp_path / "o.npz").exists()


def test_check_passes(capsys, checked):
    code, out, err = run(capsys, "run", f"{checked}:vadd", "--grid", "8,1", "--arg", "n=128",
                         "--mode", "functional")
    assert code == 0, err
    assert f"check  passed: check(ctx, args, result) in {checked}" in out


def test_check_returning_false_exits_1(capsys, checked):
    code, out, _ = run(capsys, "run", f"{checked}:wrong_vadd", "--grid", "8,1", "--arg", "n=128",
                       "--mode", "functional")
    assert code == 1
    assert f"check  FAILED: check(ctx, args, result) in {checked} returned False" in out


@pytest.mark.parametrize("returns, code, says", [
    ("(got == want).all()", 1, f"returned {np.False_!r}"),  # (np.False_; False on numpy 1.x)
    ("np.array((got == want).all())", 1, "returned array(False)"),
    ("got == want", 1, "returned a bool array of shape (8192,): return one bool"),
    ("(got != want).any()", 0, None),  # np.True_ (this kernel is wrong everywhere)
    ("got - want", 0, None),  # (not a verdict: as any other value)
])
def test_check_returning_a_numpy_bool_is_read_as_one(capsys, tmp_path, returns, code, says):
    """(o == ref).all() returns a numpy bool: its False fails the run as False does (a review
    found it passed); a bool array of many values is ambiguous and fails too."""
    p = tmp_path / "np_checked.py"
    p.write_text(CHECKED + f"""

def check_wrong_vadd(ctx, args, result):
    got = ctx.gather(args["o_ptr"])
    want = np.arange(got.size, dtype=np.float32) + 1
    return {returns}
""")
    got, out, err = run(capsys, "run", f"{p}:wrong_vadd", "--grid", "1,1", "--mode", "functional")
    assert got == code, (out, err)
    line = next(l for l in out.splitlines() if l.startswith("check"))
    if says is None:
        assert line.startswith("check  passed"), line
    else:
        assert line.startswith(f"check  FAILED: check_wrong_vadd(ctx, args, result) in {p} {says}"), line


def test_check_raising_exits_1_and_says_where(capsys, checked):
    code, out, _ = run(capsys, "run", f"{checked}:exp_only_vadd", "--grid", "8,1", "--mode", "functional")
    assert code == 1  # check_<kernel> wins over check
    line = next(l for l in out.splitlines() if l.startswith("check"))
    assert line.startswith(f"check  FAILED: check_exp_only_vadd(ctx, args, result) in {checked} raised "
                           f"AssertionError at checked_kernels.py:")
    assert line.endswith(": o[0] should be 99")


def test_check_is_skipped_in_timing_mode(capsys, checked):
    code, out, err = run(capsys, "run", f"{checked}:wrong_vadd", "--grid", "8,1")
    assert code == 0, err
    assert "check  skipped: check(ctx, args, result)" in out and "needs --mode functional" in out


@pytest.mark.parametrize("opt", ["--json", "--trace", "--plot", "--save"])
def test_a_bad_output_path_fails_before_the_run_and_names_its_option(capsys, tmp_path, opt):
    marker = tmp_path / "imported"
    k = tmp_path / "marks.py"
    k.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef k(*, tl):\n    pass\n")
    bad = tmp_path / "no_such_dir" / "out.x"
    code, _, err = run(capsys, "run", f"{k}:k", "--grid", "1,1", "--mode", "functional", opt, str(bad))
    assert code == 2
    assert one_error_line(err) == (f"kernbench: error: {opt} {bad}: folder "
                                   f"{str(bad.parent)!r} does not exist")
    assert not marker.exists()  # failed before the kernel's module was even imported
    code, _, err = run(capsys, "run", f"{k}:k", "--grid", "1,1", opt, str(tmp_path))
    assert code == 2 and f"{opt} {tmp_path}: is a folder, expected a file name" in one_error_line(err)



@pytest.mark.parametrize("opt", ["--json", "--trace"])
def test_an_output_that_fails_while_written_names_its_option(tmp_path, opt):
    """What only writing finds (here a file-size limit, EFBIG; a full disk, a closed pipe) is one
    line naming the option and the file, not a bare "[Errno 27] File too large" (a review), and
    no partial file stays."""
    k = tmp_path / "k.py"
    k.write_text("def k(x_ptr, *, tl):\n    tl.store(x_ptr, tl.load(x_ptr, shape=(64,)) * 2.0)\n"
                 "\ndef setup(ctx):\n    return (ctx.empty((64,), 'f32'),)\n")
    out = tmp_path / "out.json"
    code = f"""
import resource, signal, sys
from kernbench.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
sys.exit(main(["run", {str(k) + ":k"!r}, "--grid", "8,1", {opt!r}, {str(out)!r}]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == f"kernbench: error: {opt} {out}: File too large (while writing it)"
    assert not out.exists()

def test_two_outputs_naming_one_file_fail_before_the_run(capsys, tmp_path):
    """--trace out.json --json out.json: the JSON overwrote the trace, and both were reported
    written (a new user). Refused before the kernel's module is imported, naming both options."""
    marker = tmp_path / "imported"
    k = tmp_path / "marks.py"
    k.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef k(*, tl):\n    pass\n")
    out = tmp_path / "out.json"
    code, _, err = run(capsys, "run", f"{k}:k", "--grid", "1,1", "--trace", str(out), "--json", str(out))
    assert code == 2
    assert one_error_line(err) == (f"kernbench: error: --trace and --json both name {out}: the second "
                                   f"would overwrite the first; give each its own file")
    assert not marker.exists() and not out.exists()
    # (a breaker's spellings of one file: a symlink to it; a plot named without a suffix, which
    # matplotlib writes as .png)
    (tmp_path / "real.json").write_text("")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    code, _, err = run(capsys, "run", f"{k}:k", "--grid", "1,1", "--trace", str(tmp_path / "link.json"),
                       "--json", str(tmp_path / "real.json"))
    assert code == 2 and "--trace and --json both name" in one_error_line(err)
    code, _, err = run(capsys, "run", f"{k}:k", "--grid", "1,1", "--json", str(tmp_path / "p.png"),
                       "--plot", str(tmp_path / "p"))
    assert code == 2 and "--json and --plot both name" in one_error_line(err)
    assert not marker.exists()
    # devices are written to as often as asked (a breaker: two outputs to /dev/null refused)
    if os.path.exists("/dev/null"):
        code, _, err = run(capsys, "run", f"{k}:k", "--grid", "1,1", "--trace", "/dev/null",
                           "--json", "/dev/null")
        assert code == 0, err


def test_diag_bad_output_path_fails_before_any_panel(capsys, fake_diag, tmp_path):
    calls, _ = fake_diag
    code, _, err = run(capsys, "diag", "--plot", str(tmp_path / "nope" / "p.png"))
    assert code == 2
    assert "--plot" in one_error_line(err) and "does not exist" in err
    assert calls == {}  # run_panels never ran


def test_an_argument_given_twice_is_an_error(capsys, kernels):
    """--arg n=1K --arg n=2K: which did the user mean? Refused, naming both (a review found the
    last kept silently). The same for sweep's --set, --arg and --option."""
    code, _, err = run(capsys, "run", f"{kernels}:vadd", "--grid", "8,1", "--arg", "n=1K", "--arg", "n=2K")
    assert code == 2
    assert "--arg n is given twice (1024 and 2048): give it once" in one_error_line(err)
    code, _, err = run(capsys, "sweep", "--panel", "single_user_decode", "--set", "gemm.rows=16",
                       "--set", "gemm.rows=32")
    assert code == 2 and "--set gemm.rows is given twice" in one_error_line(err)


@pytest.mark.parametrize("width", [0, -5, "80", 19, True])
def test_a_report_width_that_is_not_columns_is_refused(width):
    from kernbench.report.table import emit

    with pytest.raises(ValueError, match="width must be an int of at least 20 columns"):
        emit("text", file=io.StringIO(), width=width)


def test_a_kernel_file_without_the_py_suffix_is_read_as_python(capsys, tmp_path, monkeypatch):
    # (an AttributeError on a spec of None once: "'NoneType' object has no attribute 'loader'")
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "kern.txt").write_text("def k(*, tl):\n    tl.full((8,), 1.0, dtype='f32')\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "run", "./kern.txt:k", "--grid", "1,1")
    assert code == 0, err
    assert "k on default: grid 1 PE x 1 cube" in out


def test_a_sweep_value_list_with_an_empty_value_is_refused():
    # (--arg n=8,,16 dropped the empty value silently: a review)
    import argparse

    assert cli._parse_choices("n=8,16") == ("n", [8, 16])
    assert cli._parse_choices("n=8,") == ("n", [8])
    with pytest.raises(argparse.ArgumentTypeError, match=r"an empty value in '8,,16'.* \(in 'n=8,,16'"):
        cli._parse_choices("n=8,,16")


def test_a_plot_file_matplotlib_cannot_write_is_refused_before_the_run(capsys, tmp_path):
    # (it failed only after the launch had run: a review)
    code, _, err = run(capsys, "diag", "--plot", str(tmp_path / "p.xyz"))
    assert code == 2
    assert "--plot" in one_error_line(err) and "not '.xyz'" in err


# -- a review of the command line: inputs refused before the run, each naming its option ----------
VADD = '''
import numpy as np
open(__file__ + ".imported", "w").close()  # (a mark: the module was imported, the run began)

def vadd(x_ptr, y_ptr, out_ptr, n, *, tl):
    x = tl.load(x_ptr, shape=(n,), dtype="f16")
    y = tl.load(y_ptr, shape=(n,), dtype="f16")
    tl.store(out_ptr, x + y)

def setup(ctx, n=256, **kw):
    x = np.random.default_rng(0).random((ctx.hw.pes_per_cube, n)).astype(np.float16)
    y = np.random.default_rng(1).random((ctx.hw.pes_per_cube, n)).astype(np.float16)
    xp, yp = ctx.shard(x, over="pe"), ctx.shard(y, over="pe")
    return dict(x_ptr=xp, y_ptr=yp, out_ptr=ctx.empty_like(xp), n=n)
'''


@pytest.fixture
def vadd_file(tmp_path):
    k = tmp_path / "k.py"
    k.write_text(VADD)
    return k


def _imported(k) -> bool:
    return Path(str(k) + ".imported").exists()


@pytest.mark.parametrize("opt, extra", [("--json", []), ("--trace", []), ("--plot", []),
                                        ("--save", ["--mode", "functional"])])
def test_an_output_path_ending_in_a_separator_is_refused_before_the_run(capsys, vadd_file, tmp_path, opt,
                                                                         extra):
    # (Path("x.json/") is x.json: the check passed, the run ran, then "[Errno 21] Is a directory")
    bad = str(tmp_path / "x.out") + "/"
    code, _, err = run(capsys, "run", f"{vadd_file}:vadd", "--grid", "8,1", *extra, opt, bad)
    assert code == 2
    assert one_error_line(err) == (f"kernbench: error: {opt} {bad}: ends in a path separator, which names a "
                                   f"folder; expected a file name")
    assert not _imported(vadd_file) and not (tmp_path / "x.out").exists()


@pytest.mark.parametrize("opt, extra", [("--json", []), ("--trace", []), ("--plot", []),
                                        ("--save", ["--mode", "functional"]), ("--trace", ["--pes", "0"])])
def test_an_empty_output_path_is_refused_before_the_run(capsys, vadd_file, opt, extra):
    # (`--json "$OUT"` with OUT unset: exit 0, nothing written, nothing said; `--pes 0 --trace ''`
    # asked for --trace; a review)
    code, _, err = run(capsys, "run", f"{vadd_file}:vadd", "--grid", "8,1", *extra, opt, "")
    assert code == 2
    assert one_error_line(err) == f"kernbench: error: {opt} '': the path is empty: give a file path"
    assert not _imported(vadd_file)


def test_sweep_and_diag_empty_output_paths_are_refused(capsys, vadd_file, fake_diag):
    code, _, err = run(capsys, "sweep", f"{vadd_file}:vadd", "--grid", "8,1", "--workers", "1", "--no-cache",
                       "--out", "")
    assert code == 2 and one_error_line(err).endswith("--out '': the path is empty: give a file path")
    code, _, err = run(capsys, "diag", "--json", "")
    assert code == 2 and one_error_line(err).endswith("--json '': the path is empty: give a file path")
    assert fake_diag[0] == {}


def test_sweep_and_diag_outputs_ending_in_a_separator_are_refused_before_the_run(capsys, vadd_file,
                                                                                  fake_diag, tmp_path):
    calls, _ = fake_diag
    code, _, err = run(capsys, "sweep", f"{vadd_file}:vadd", "--grid", "8,1", "--workers", "1", "--no-cache",
                       "--out", str(tmp_path / "rows.csv") + "/")
    assert code == 2 and "--out " in one_error_line(err) and "names a folder" in err
    assert not _imported(vadd_file)
    # (diag with several panels exited 0, writing t.<panel>.json beside the folder named)
    code, _, err = run(capsys, "diag", "--trace", str(tmp_path / "t.json") + "/")
    assert code == 2 and "--trace " in one_error_line(err) and "names a folder" in err
    assert calls == {} and not list(tmp_path.glob("t.*"))


def test_a_name_too_long_is_refused_naming_its_option(capsys, vadd_file, fake_diag, tmp_path):
    # (Path.is_dir raised "[Errno 36] File name too long", naming no option)
    long = str(tmp_path / ("a" * 300))
    for argv in (["run", f"{vadd_file}:vadd", "--grid", "8,1", "--json", long + ".json"],
                 ["run", f"{vadd_file}:vadd", "--grid", "8,1", "--trace", long + ".json"],
                 ["sweep", f"{vadd_file}:vadd", "--grid", "8,1", "--no-cache", "--out", long + ".csv"]):
        code, _, err = run(capsys, *argv)
        line = one_error_line(err)
        opt = argv[-2]
        assert code == 2 and line.startswith(f"kernbench: error: {opt} {long[:200]}...: ") and \
            line.endswith("File name too long"), line
    assert not _imported(vadd_file)
    code, _, err = run(capsys, "run", f"{long}.py:vadd", "--grid", "8,1")
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"kernbench: error: kernel file '{long[:200]}...") and "File name too long" in line


def test_a_warning_is_one_line(capsys, vadd_file, tmp_path):
    # (a cache folder that cannot be written: Python's "/.../cli.py:839: CacheNotWrittenWarning" and
    # the source line under it)
    code, out, err = run(capsys, "sweep", f"{vadd_file}:vadd", "--grid", "8,1", "--workers", "1",
                         "--cache-dir", str(tmp_path / ("c" * 300)))
    assert code == 0, err
    assert "1 points" in out or "1 point" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kernbench: warning: kernbench.sweep: the results were "
                                                   "not cached"), err
    assert "cli.py" not in err and "Warning" not in err


def test_a_grid_too_large_names_the_hardware_as_reports_do(capsys, vadd_file, tmp_path):
    hw = tmp_path / "d.toml"
    hw.write_text("pes_per_cube = 2\n")
    code, _, err = run(capsys, "run", f"{vadd_file}:vadd", "--grid", "8,1", "--hw", str(hw))
    assert code == 2
    assert "grid (8, 1) does not fit the hardware 'default (pes_per_cube=2)': expected 1..2 PEs" \
        in one_error_line(err)


@pytest.mark.parametrize("flag", [["--context", "4K"], ["--cubes", "2"], ["--causal"], ["--shape", "small"]])
def test_sweep_refuses_panel_options_with_a_kernel(capsys, vadd_file, flag):
    # (they were ignored silently, where --grid with a panel is refused)
    code, _, err = run(capsys, "sweep", f"{vadd_file}:vadd", "--grid", "8,1", "--workers", "1", "--no-cache",
                       *flag)
    assert code == 2
    assert one_error_line(err) == f"kernbench: error: {flag[0]} is for --panel: a kernel's shapes are its " \
                                  f"--arg values"
    assert not _imported(vadd_file)


def test_sweep_refuses_a_context_with_the_small_shape_before_running(capsys):
    # (a review: an error row per point)
    code, _, err = run(capsys, "sweep", "--panel", "single_user_decode", "--shape", "small", "--context", "256",
                       "--set", "link.bytes_per_cycle=8", "--workers", "1", "--no-cache")
    assert code == 2
    assert one_error_line(err) == ("kernbench: error: --context applies to --shape llama70b only (the small "
                                   "shape has its own rows)")


def test_sweep_names_a_launch_builder_and_a_missing_kernel(capsys, tmp_path):
    # (a review: "needs --grid", and with --grid "grid= is for sweeping a kernel"; a missing
    # name also "needs --grid")
    k = tmp_path / "kb.py"
    k.write_text("def build(ctx, n=64):\n    pass\n")
    for grid in ([], ["--grid", "8,1"]):
        code, _, err = run(capsys, "sweep", f"{k}:build", "--workers", "1", "--no-cache", *grid)
        assert code == 2
        assert one_error_line(err) == (f"kernbench: error: {k}:build takes no keyword-only tl: the command "
                                       f"line sweeps a kernel; sweep a launch builder from Python, "
                                       f"kernbench.sweep(builder, ...) (docs/sweeps.md)")
    code, _, err = run(capsys, "sweep", f"{k}:nothere", "--workers", "1", "--no-cache")
    assert code == 2 and "has no kernel named 'nothere'" in one_error_line(err)


@pytest.mark.parametrize("flag", [["--grid", "8,1"], ["--sfr", "cube"], ["--ring"]])
def test_sweep_refuses_kernel_options_with_a_panel(capsys, flag):
    code, _, err = run(capsys, "sweep", "--panel", "single_user_decode", "--no-cache", *flag)
    assert code == 2
    assert one_error_line(err) == (f"kernbench: error: {flag[0]} is for MODULE:KERNEL: a panel has its own "
                                   f"grid and SFR")


@pytest.mark.parametrize("flag, arg", [(["--causal"], "causal=False"), (["--context", "4096"], "context=8192")])
def test_sweep_refuses_a_panel_option_an_arg_sets_too(capsys, flag, arg):
    """--causal with --arg causal=False ran non-causal without a word (a review)."""
    name = arg.split("=")[0]
    code, _, err = run(capsys, "sweep", "--panel", "single_user_prefill", "--no-cache", "--workers", "1",
                       *flag, "--arg", arg)
    assert code == 2
    assert one_error_line(err) == (f"kernbench: error: {flag[0]} and --arg {name}=... both set the "
                                   f"panel's {name}: give one (--arg {name}=A,B sweeps it)")

@pytest.mark.parametrize("opt", ["--x", "--y", "--hue", "--pareto"])
def test_sweep_column_names_are_checked_before_any_point(capsys, vadd_file, tmp_path, opt):
    # (--x nocol failed only after every point was computed)
    cache = tmp_path / "cache"
    code, _, err = run(capsys, "sweep", f"{vadd_file}:vadd", "--grid", "8,1", "--workers", "1",
                       "--cache-dir", str(cache), "--arg", "n=128,256", "--plot", str(tmp_path / "s.png"),
                       opt, "nocol")
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"kernbench: error: {opt} nocol: no such column (columns: n, cycles, ")
    assert not _imported(vadd_file) and not cache.exists()


def test_sweep_a_plot_of_a_text_figure_is_refused_before_any_point(capsys, vadd_file, tmp_path):
    # (a review: --plot with --y bound failed with plot's error after every point was computed)
    cache = tmp_path / "cache"
    code, _, err = run(capsys, "sweep", f"{vadd_file}:vadd", "--grid", "8,1", "--workers", "1",
                       "--cache-dir", str(cache), "--arg", "n=128,256", "--plot", str(tmp_path / "s.png"),
                       "--y", "bound")
    assert code == 2
    assert one_error_line(err) == ("kernbench: error: --y bound: --plot draws numbers, and bound is text; plot "
                                   "a figure such as cycles or tflops")
    assert not _imported(vadd_file) and not cache.exists() and not (tmp_path / "s.png").exists()


def test_sweep_a_swept_name_is_a_column(capsys, vadd_file, tmp_path):
    code, out, err = run(capsys, "sweep", f"{vadd_file}:vadd", "--grid", "8,1", "--workers", "1", "--no-cache",
                         "--arg", "n=128,256", "--set", "dma.latency_cycles=50,150",
                         "--plot", str(tmp_path / "s.png"), "--x", "dma.latency_cycles", "--hue", "n")
    assert code == 0, err
    assert (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.parametrize("bad", ["x8", "8x", ",8", "8,", "8,4,", "x", "-1,1", "8,-1"])
def test_parse_grid_takes_the_whole_text(bad):
    # ('x8', '8x' and ',8' were read as (8, 1))
    with pytest.raises(Exception, match="grid must be PES,CUBES"):
        parse_grid(bad)


@pytest.mark.parametrize("argv, expected", [
    (["--grid", "-1,1"], "argument --grid: grid must be PES,CUBES with positive integers (e.g. 8,4), got '-1,1'"),
    (["--grid", "8,1", "--trace", "t.json", "--window", "-5:10"],
     "argument --window: bad window '-5:10': START must be a non-negative integer, got '-5'"),
    (["--grid", "8,1", "--arg", "v=1,,2"], "an empty value in '1,,2'"),
])
def test_a_value_with_a_leading_minus_or_an_empty_item_gets_its_own_message(capsys, argv, expected):
    # (argparse read -1,1 as an option: "expected one argument"; --arg v=1,,2 became (1, 2))
    code, _, err = run(capsys, "run", "m:k", *argv)
    assert code == 2 and expected in one_error_line(err)


@pytest.mark.parametrize("text, value", [("010", 10), ("0256", 256), ("-010", -10), ("00", 0), ("04K", 4096),
                                         ("0x10", 16), ("0.5", 0.5), ("1,", (1,)), ("010,2", (10, 2))])
def test_parse_value_leading_zeros_are_decimal(text, value):
    # ("010" was the float 10.0: --arg n=0256 failed later with a TypeError)
    got = parse_value(text)
    assert got == value and type(got) is type(value)


def test_parse_value_refuses_an_empty_item_as_sweep_does():
    for text in ("1,,2", ",1", ","):
        with pytest.raises(ValueError, match="an empty value"):
            parse_value(text)


def test_a_hardware_file_named_without_a_slash(capsys, tmp_path, monkeypatch):
    import kernbench.hw

    monkeypatch.chdir(tmp_path)
    toml = (Path(kernbench.hw.__file__).parent / "presets" / "mesh8.toml").read_text()
    (tmp_path / "myhw").write_text(toml)
    (tmp_path / "My.TOML").write_text(toml)
    code, _, err = run(capsys, "hw", "show", "myhw")
    assert code == 2
    assert one_error_line(err).endswith("(presets: default, mesh64, mesh8); for the file 'myhw' write "
                                        "'./myhw' (a hardware file is named with a '/' or a .toml suffix)")
    for name in ("./myhw", "My.TOML"):  # (the suffix in any case)
        code, out, err = run(capsys, "hw", "show", name)
        assert code == 0 and "hardware 'mesh8'" in out, err
    code, _, err = run(capsys, "hw", "show", "nope")
    assert one_error_line(err).endswith("(presets: default, mesh64, mesh8)")  # (no file: no hint)


# -- a review of the command line as a new user (2026-12-06) -------------------------------------
def test_sys_exit_in_the_users_code_is_an_error_not_a_silent_success(capsys, tmp_path):
    """sys.exit(0) in a kernel ended the run with status 0, printing nothing and writing no
    --trace; in a module's top level the same; sys.exit("msg") gave 1, a failed check's status."""
    k = tmp_path / "exits.py"
    k.write_text("import sys\n\n\ndef k(*, tl):\n    tl.zeros((4,), 'f32')\n    sys.exit(0)\n\n\n"
                 "def m(*, tl):\n    sys.exit('gave up')\n")
    top = tmp_path / "exits_at_import.py"
    top.write_text("raise SystemExit(3)\n\n\ndef k(*, tl):\n    pass\n")
    for target, line, code in ((f"{k}:k", "exits.py:6", 0), (f"{k}:m", "exits.py:10", "gave up"),
                               (f"{top}:k", "exits_at_import.py:1", 3)):
        got, out, err = run(capsys, "run", target, "--grid", "8", "--trace", str(tmp_path / "t.json"))
        assert got == 2, (out, err)
        assert one_error_line(err) == (f"kernbench: error: {line}: the code kernbench ran called "
                                       f"sys.exit({code!r}) (raised SystemExit): the run stops here, as an error")
    assert not (tmp_path / "t.json").exists()
    # (a breaker: an exit from a library the user's code ran, argparse's --help in a setup, was
    # passed on as kernbench's own, status 0; quit() was blamed on <frozen _sitebuiltins>)
    lib = tmp_path / "lib_exits.py"
    lib.write_text("import argparse\n\n\ndef setup(ctx, n=8):\n    if n == 8:\n"
                   "        argparse.ArgumentParser(prog='helper').parse_args(['--help'])\n"
                   "    quit()\n\n\ndef k(n, *, tl):\n    pass\n")
    for arg, line, code in (("n=8", "lib_exits.py:6", 0), ("n=9", "lib_exits.py:7", None)):
        got, out, err = run(capsys, "run", f"{lib}:k", "--grid", "1", "--arg", arg)
        assert got == 2, (out, err)
        assert one_error_line(err) == (f"kernbench: error: {line}: the code kernbench ran called "
                                       f"sys.exit({code!r}) (raised SystemExit): the run stops here, as an error")


def test_a_base_exception_of_the_users_own_is_an_error(capsys, tmp_path):
    """A review: a kernel raising a BaseException subclass of its module's own gave Python's
    traceback and status 1, a failed check's; it is an error, status 2, in one line naming the
    kernel, PE and line (the note the launch adds) and --trace is not written."""
    k = tmp_path / "stops.py"
    k.write_text("class Stop(BaseException):\n    pass\n\n\ndef k(*, tl):\n    tl.zeros((4,), 'f32')\n"
                 "    raise Stop('enough')\n")
    got, out, err = run(capsys, "run", f"{k}:k", "--grid", "8", "--trace", str(tmp_path / "t.json"))
    assert got == 2, (out, err)
    line = one_error_line(err)
    assert line.startswith("kernbench: error: stops.py:7: Stop: enough (raised while tracing kernel k on PE (0, 0)")
    assert "Traceback" not in err and not (tmp_path / "t.json").exists()
    # outside the launch (a setup's), where no note says where: the line does; no message: the type once
    s2 = tmp_path / "stops_in_setup.py"
    s2.write_text("class Stop(BaseException):\n    pass\n\n\ndef setup(ctx):\n    raise Stop()\n\n\n"
                  "def k(*, tl):\n    pass\n")
    got, out, err = run(capsys, "run", f"{s2}:k", "--grid", "8")
    assert got == 2 and one_error_line(err) == "kernbench: error: stops_in_setup.py:6: Stop", err


def test_a_check_that_cannot_take_its_arguments_is_a_usage_error(capsys, tmp_path):
    """A check(ctx, args) without result was blamed on kernbench's own line and counted as a
    failed check (status 1)."""
    p = tmp_path / "short_check.py"
    p.write_text("def k(*, tl):\n    tl.zeros((4,), 'f32')\n\n\ndef check(ctx, args):\n    return True\n")
    got, out, err = run(capsys, "run", f"{p}:k", "--grid", "8", "--mode", "functional")
    assert got == 2
    assert one_error_line(err) == (f"kernbench: error: check(ctx, args, result) in {p}: too many "
                                   f"positional arguments: a check takes (ctx, args, result)")
    # a decorated check is called as its wrapper takes the three (a breaker: it was refused)
    d = tmp_path / "decorated_check.py"
    d.write_text("import functools\n\n\ndef k(*, tl):\n    tl.zeros((4,), 'f32')\n\n\n"
                 "def tol(f):\n    @functools.wraps(f)\n    def g(ctx, args, result):\n"
                 "        return f(ctx, args, result, 1e-6)\n    return g\n\n\n"
                 "@tol\ndef check(ctx, args, result, rtol):\n    return rtol < 1\n")
    got, out, err = run(capsys, "run", f"{d}:k", "--grid", "8", "--mode", "functional")
    assert got == 0 and out.splitlines()[-1].startswith("check  passed"), (out, err)


def test_a_check_that_is_not_a_function_is_a_usage_error(capsys, tmp_path):
    """A check_<kernel> set to something else than a function was skipped (a review): the run
    passed with no check, or fell back to check(...)."""
    p = tmp_path / "not_a_check.py"
    p.write_text("def k(*, tl):\n    tl.zeros((4,), 'f32')\n\n\ncheck_k = 5\n\n\n"
                 "def check(ctx, args, result):\n    return True\n")
    got, out, err = run(capsys, "run", f"{p}:k", "--grid", "8", "--mode", "functional")
    assert got == 2
    assert one_error_line(err) == f"kernbench: error: check_k in {p} is not a function"


def test_an_error_told_to_a_closed_stderr_exits_141(tmp_path):
    """rich's Console exits with 1 on EPIPE, also while main tells an error: 1 says a check or a
    panel failed."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "kernbench", "run", "nope.py:k", "--grid", "1"],
                           stderr=w, stdout=subprocess.PIPE, cwd=tmp_path)
    finally:
        os.close(w)
    assert p.returncode == 141


def test_a_closed_stdout_exits_141_not_a_failures_status(monkeypatch, capsys):
    """`kernbench diag | head -1` exited 1 (rich's Console exits so on EPIPE), which says a panel
    failed; a BrokenPipeError from a plain write likewise. 141 is a shell's status for SIGPIPE."""
    def rich_exit(args, console):
        def on_broken_pipe():  # (rich's Console method's name: how its exit is told)
            raise SystemExit(1)
        on_broken_pipe()

    def broken(args, console):
        raise BrokenPipeError(32, "Broken pipe")

    for fn in (rich_exit, broken):
        monkeypatch.setattr(cli, "cmd_diag", fn)
        parser = cli.build_parser  # (the parser binds cmd_diag when built)
        monkeypatch.setattr(cli, "build_parser", lambda parser=parser, fn=fn: _with_func(parser(), "diag", fn))
        assert main(["diag"]) == cli.EXIT_PIPE == 141


def _with_func(parser, name, fn):
    for action in parser._subparsers._group_actions:
        action.choices[name].set_defaults(func=fn)
    return parser


@pytest.mark.parametrize("argv, says", [
    (["diag", "--tune", "--no-cache", "--cache-dir", "c"], "--no-cache and --cache-dir: give one"),
    (["diag", "--panel", "single_user_decode", "--panel", "single_user_decode"],
     "--panel single_user_decode given twice"),
    (["sweep", "--panel", "single_user_decode", "--no-cache", "--cache-dir", "c"], "--no-cache and --cache-dir"),
    (["sweep", "--panel", "single_user_decode", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"],
     "--workers and --scheduler"),
    (["sweep", "--panel", "single_user_decode", "--x", "context"], "--x is for --plot"),
    (["sweep", "--panel", "single_user_decode", "--hue", "context"], "--hue is for --plot"),
    (["sweep", "--panel", "single_user_decode", "--pareto", "link_bytes", "--pareto-plot", "q.xyz"],
     "--pareto-plot q.xyz: matplotlib writes"),  # (before any point: a breaker found it after)
])
def test_options_that_would_be_ignored_are_refused(capsys, tmp_path, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    got, out, err = run(capsys, *argv)
    assert got == 2 and says in one_error_line(err)
    assert not (tmp_path / "c").exists()


def test_a_gz_suffix_in_any_case_compresses_and_sram_failures_give_the_capacity(capsys, tmp_path):
    """A review: --trace T.JSON.GZ wrote plain JSON (.gz was matched in lower case only, where
    other suffixes are matched in any case); diag's SRAM failure gave the peak as if it were the
    excess, without the capacity."""
    import gzip

    got, out, err = run(capsys, "diag", "--panel", "single_user_decode", "--trace", str(tmp_path / "T.JSON.GZ"))
    assert got == 0, err
    raw = (tmp_path / "T.JSON.GZ").read_bytes()
    assert raw[:2] == b"\x1f\x8b" and json.loads(gzip.decompress(raw))["traceEvents"]
    (tmp_path / "tiny.toml").write_text("[sram]\ncapacity_bytes = 4096\n")
    got, out, err = run(capsys, "diag", "--hw", str(tmp_path / "tiny.toml"), "--panel", "single_user_decode")
    assert got == 1
    m = re.search(r"FAIL: peak SRAM ([\d,]+) bytes, over the capacity of 4,096 bytes, on PE \(0, 0\).*: raise "
                  r"sram.capacity_bytes to at least ([\d,]+), or take smaller blocks \(--tune picks the fastest "
                  r"that fit\)", out)
    assert m and m[1] == m[2], out
    peak = int(m[1].replace(",", ""))  # (what it says is enough: the same panel passes with it)
    (tmp_path / "fits.toml").write_text(f"[sram]\ncapacity_bytes = {peak}\n")
    assert run(capsys, "diag", "--hw", str(tmp_path / "fits.toml"), "--panel", "single_user_decode")[0] == 0


@pytest.mark.parametrize("argv, helps", [(["run", "k.py:k", "--grid", "1", "--bogus"], "kernbench run --help"),
                                         (["hw", "show", "mesh64", "extra"], "kernbench hw show --help"),
                                         (["diag", "--bogus"], "kernbench diag --help"),
                                         (["--bogus"], "kernbench --help")])
def test_a_stray_argument_points_to_its_commands_help(capsys, argv, helps):
    got, out, err = run(capsys, *argv)
    assert got == 2 and one_error_line(err).endswith(f"(see {helps})")


def test_a_kernel_spec_with_two_colons_says_what_a_spec_is(capsys, tmp_path):
    (tmp_path / "two.py").write_text("def k(*, tl):\n    pass\n")
    got, out, err = run(capsys, "run", f"{tmp_path / 'two.py'}:k:x", "--grid", "1")
    assert got == 2 and one_error_line(err) == (f"kernbench: error: kernel must be MODULE:FUNCTION or "
                                                f"FILE.py:FUNCTION, got '{tmp_path / 'two.py'}:k:x'")


def test_a_relative_kernel_path_is_reported_absolute(capsys, tmp_path, monkeypatch):
    """(A determinism review.) `run sub/k.py:k` recorded the file as typed: the JSON named
    `sub/k.py` from the parent folder and `k.py` from `sub/`, a file no other folder finds, and
    the two reports of one kernel differed. Named absolute, as `python sub/k.py` names it."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "kk.py").write_text("def kern(x_ptr, *, tl):\n    tl.store(x_ptr, tl.load(x_ptr, shape=(64,)) * 2.0)\n"
                               "\ndef setup(ctx):\n    return (ctx.empty((64,), 'f32'),)\n")
    outs = []
    for cwd, spec in ((tmp_path, "sub/kk.py:kern"), (sub, "kk.py:kern")):
        monkeypatch.chdir(cwd)
        out = tmp_path / f"{len(outs)}.json"
        code, _, err = run(capsys, "run", spec, "--grid", "1,1", "--json", str(out))
        assert code == 0, err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert json.loads(outs[0])["kernel"]["file"] == str(sub / "kk.py")


def test_a_kernel_path_through_a_link_and_dot_dot_is_the_file_the_system_finds(capsys, tmp_path, monkeypatch):
    """(A breaker.) Made absolute by text, `link/../k.py` lost the link: the file checked was
    one, the file run another. As python does: the path as the system resolves it."""
    (tmp_path / "real" / "d").mkdir(parents=True)
    (tmp_path / "run").mkdir()
    body = "def kern(x_ptr, *, tl):\n    tl.store(x_ptr, tl.load(x_ptr, shape=(64,)){})\n" \
           "\ndef setup(ctx):\n    return (ctx.empty((64,), 'f32'),)\n"
    (tmp_path / "real" / "k.py").write_text(body.format(" * 2.0"))
    (tmp_path / "run" / "k.py").write_text(body.format(""))  # (a decoy where text would collapse)
    (tmp_path / "run" / "link").symlink_to(tmp_path / "real" / "d")
    monkeypatch.chdir(tmp_path / "run")
    out = tmp_path / "o.json"
    code, _, err = run(capsys, "run", "link/../k.py:kern", "--grid", "1,1", "--json", str(out))
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert os.path.realpath(doc["kernel"]["file"]) == str((tmp_path / "real" / "k.py").resolve())
