"""The user's text (a hardware name, a kernel's name, labels and file names, paths, swept values,
plot titles) comes out of every view character for character: rich markup, emoji codes,
mathtext and HTML in it are shown, never read. (A hardware name once refused [ ] $ and \\
because report(), plot() and `kernbench hw show` broke on them.)"""
import html
import io
import json
import types

import matplotlib
import pytest
from matplotlib.text import Text as MplText
from rich.console import Console

import kernbench.hw
from kernbench.cli import DelayedProgress, main
from kernbench.hw import load_hw

from report_helpers import line_pipeline

#: rich markup (valid, and a closing tag with nothing open), an emoji code, mathtext (valid, and an
#: unknown symbol that makes matplotlib's parser raise), a lone backslash and bracket, HTML
NAME = "[bold]x[/bold] $a^2$ \\ [ $\\foo$ [/] :cd: <i>&"
KERNEL = "k[red]y[/red]$\\bar$"
LABEL = "[b]op[/b] $\\nope$ :cd:"


def _hw():
    return load_hw("default", {"name": NAME})


def _result(**kw):
    return line_pipeline(hw=_hw(), name=KERNEL, labels=lambda i: LABEL, **kw)


def _toml(tmp_path, name=NAME):
    text = (kernbench.hw.config._preset_dir() / "default.toml").read_text()
    path = tmp_path / "odd.toml"
    path.write_text(text.replace('name = "default"', f"name = {json.dumps(name)}"))
    return path


# -- the rule ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mesh8 [HBM3e]", "a100-like $2/h", "v2\\x", "[/]", "$\\foo$", NAME])
def test_a_hardware_name_may_hold_markup_characters(name):
    assert load_hw("default", {"name": name}).name == name


def test_a_hardware_name_from_toml_keeps_its_characters(tmp_path):
    assert load_hw(_toml(tmp_path)).name == NAME


# -- rich: report(), profile(), drift, the CLI -----------------------------------------------------
def test_report_shows_the_names_as_they_are():
    r = _result()
    text = r.report(file=io.StringIO(), width=200)
    assert f"{KERNEL} on {NAME}: grid 3 PEs x 1 cube" in text
    # the same through a console of the caller's, colours on: the text between the styles is whole
    buf = io.StringIO()
    r.report(console=Console(file=buf, width=200, force_terminal=True, color_system="truecolor"))
    assert NAME in buf.getvalue() and "💿" not in buf.getvalue()


def test_profile_and_its_labels_show_as_they_are():
    r = _result()
    for width in (200, 80):  # the label in a column of its own, and under its line
        text = r.profile(file=io.StringIO(), width=width)
        assert text.splitlines()[0].startswith(f"{KERNEL}: per-line profile")
        assert LABEL in text, text


def test_the_html_view_escapes_the_names():
    page = _result()._repr_html_()
    assert html.escape(f"{KERNEL} on {NAME}") in page and "<i>" not in page


def test_the_trace_and_the_json_keep_the_names(tmp_path):
    r = _result()
    r.to_perfetto(tmp_path / "t.json")
    trace = json.loads((tmp_path / "t.json").read_text())
    assert trace["otherData"]["hw"] == NAME and trace["otherData"]["kernel"] == KERNEL
    assert any(e.get("name") == LABEL for e in trace["traceEvents"])
    r.to_json(tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["kernel"]["name"] == KERNEL and doc["hw"]["name"] == NAME


def test_cli_hw_show_and_list(capsys, tmp_path, monkeypatch):
    assert main(["hw", "show", str(_toml(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert f"hardware '{NAME}' (docs/hardware-model.md)" in " ".join(out.split())  # the title wraps
    assert next(l for l in out.splitlines() if "│ name" in l).split("│")[2].strip() == NAME
    hw = _hw()
    monkeypatch.setattr(kernbench.hw, "list_presets", lambda: ["odd"])
    monkeypatch.setattr(kernbench.hw, "load_hw", lambda name: hw)
    assert main(["hw", "list"]) == 0
    assert any(l.strip().startswith(NAME + " ") for l in capsys.readouterr().out.splitlines())


KERNEL_FILE = '''
def fill(o_ptr, n, *, tl):
    tl.store(o_ptr, tl.full((n,), 1.0, dtype="f32") * 2.0)


def setup(ctx, n=256):
    return (ctx.empty((n,), "f32"), n)


def check(ctx, args, result):
    raise ValueError("[bold]no[/bold] $\\\\foo$ :cd:")
'''


def test_cli_run_shows_names_paths_and_messages_as_they_are(capsys, tmp_path):
    d = tmp_path / "out [b] $x$ :cd:"
    d.mkdir()
    kern = d / "k[red].py"
    kern.write_text(KERNEL_FILE)
    hw = _toml(tmp_path)
    j, t, png = d / "r[i].json", d / "t[red]$x$.json", d / "p$\\foo$.png"
    code = main(["run", f"{kern}:fill", "--grid", "2,1", "--hw", str(hw), "--mode", "functional", "--profile",
                 "--json", str(j), "--trace", str(t), "--plot", str(png)])
    out, err = capsys.readouterr()
    assert code == 1, err  # the check raised
    assert f"fill on {NAME}: grid 2 PEs x 1 cube" in " ".join(out.split())
    assert "k[red].py:" in out  # the profile's lines
    assert f"json   -> {j}" in out and f"trace  -> {t}" in out and f"plot   -> {png}" in out
    assert "raised ValueError at k[red].py:" in out and "[bold]no[/bold] $\\foo$ :cd:" in out
    assert j.is_file() and t.is_file() and png.stat().st_size > 10_000
    # an error's one line: the grid does not fit the hardware, named as it is
    assert main(["run", f"{kern}:fill", "--grid", "9,1", "--hw", str(hw)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kernbench: error: ") and f"'{NAME}'" in err and "💿" not in err


def test_a_progress_description_is_shown_as_it_is():
    p = DelayedProgress("running [/] :cd: $x$", enabled=False)
    buf = io.StringIO()
    Console(file=buf, width=100).print(p._progress)
    assert "running [/] :cd: $x$" in buf.getvalue()


# -- matplotlib: plot(), the sweep's plots ---------------------------------------------------------
def _literal(fig, want):
    """The figure's Text artists showing ``want``; each draws its string as it is."""
    texts = [t for t in fig.findobj(MplText) if want in t.get_text()]
    assert texts, [t.get_text() for t in fig.findobj(MplText)]
    for t in texts:
        assert t.get_parse_math() is False and t.get_usetex() is False
    return texts


def test_plot_titles_show_the_names_as_they_are(tmp_path):
    r = _result()
    fig = r.plot()
    (title,) = _literal(fig, NAME)
    assert title.get_text().startswith(f"{KERNEL} on {NAME}: busy / ")
    with matplotlib.rc_context({"text.usetex": True}):  # TeX for the rest, not for the names
        assert title.get_usetex() is False
    fig.savefig(tmp_path / "fig.png")  # mathtext would raise on \foo
    data = r.plot(tmp_path / "p.png")
    assert data.size_px[0] > 0 and (tmp_path / "p.png").stat().st_size > 10_000


def _fake_sweep(rows, swept):
    return types.SimpleNamespace(rows=rows, columns=[*swept, "cycles", "error"], swept=swept, hw=_hw())


def test_sweep_plots_show_names_values_and_titles_as_they_are(tmp_path):
    from kernbench.sweeps.plots import line_plot

    odd = ["$\\foo$", "[b]", "a\\b"]
    rows = [{"tag": v, "hue": h, "cycles": 10 * i + j, "error": None}
            for i, v in enumerate(odd) for j, h in enumerate(["$h$", "[/]"])]
    res = _fake_sweep(rows, ["tag", "hue"])
    ax = line_plot(res, x="tag", hue="hue", path=tmp_path / "l.png")
    assert ax.get_title() == f"cycles vs tag on {NAME}"
    _literal(ax.figure, NAME)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == sorted(odd)
    for v in odd + ["hue=$h$", "hue=[/]"]:
        _literal(ax.figure, v)
    line_plot(res, x="tag", path=tmp_path / "l.svg", title="my $\\foo$ sweep")
    assert (tmp_path / "l.png").stat().st_size > 1000 and (tmp_path / "l.svg").is_file()


def test_pareto_plot_shows_names_and_labels_as_they_are(tmp_path):
    pd = pytest.importorskip("pandas")
    from kernbench.sweeps.plots import pareto

    rows = [{"$\\cost$": c, "tag": f"[b]{c}$\\x$", "cycles": 100 - 10 * c, "error": None} for c in range(4)]
    res = _fake_sweep(rows, ["$\\cost$", "tag"])
    res.df = pd.DataFrame(rows)
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    front = pareto(res, "$\\cost$", ax=ax)
    assert len(front) == 4
    _literal(fig, f"Pareto front: cycles against $\\cost$ on {NAME}")
    _literal(fig, "tag=[b]2$\\x$")
    assert ax.get_xlabel() == "$\\cost$"
    fig.savefig(tmp_path / "f.png")



def test_sweeps_drawn_on_one_axes_share_its_categories(tmp_path):
    """Two sweeps of string values on one ``ax=``: each point sits at its value's tick, the
    values new to the second sweep after those of the first (a review found the second sweep's
    ticks replacing the first's: "$x$" labelled "b")."""
    from kernbench.sweeps.plots import line_plot

    def res(tags, base):
        return _fake_sweep([{"tag": t, "cycles": base + i, "error": None} for i, t in enumerate(tags)],
                           ["tag"])

    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    line_plot(res(["a", "b", "$x$"], 10), x="tag", ax=ax)
    line_plot(res(["b", "c"], 20), x="tag", ax=ax)
    ticks = dict(zip(ax.get_xticks(), (t.get_text() for t in ax.get_xticklabels())))
    for line, want in zip(ax.get_lines(), [{"$x$": 12, "a": 10, "b": 11}, {"b": 20, "c": 21}]):
        got = {ticks[x]: y for x, y in zip(line.get_xdata(), line.get_ydata())}
        assert got == want
    assert sorted(ticks.values()) == sorted(["a", "b", "$x$", "c"])
    fig.savefig(tmp_path / "two.png")
    _literal(fig, "$x$")
