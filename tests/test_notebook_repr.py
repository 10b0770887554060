"""Jupyter: a LaunchResult renders as an HTML table (``_repr_html_``); ``plot()`` without a path
returns a matplotlib figure (shown inline) and writes nothing."""
import os
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from kernbench.report import summarize  # noqa: E402
from kernbench.report.table import _TIME_COLUMNS  # noqa: E402

from report_helpers import line_pipeline  # noqa: E402


class _Cells(HTMLParser):
    """Rows of <td>/<th> text, and a check that every tag opened is closed in order."""

    VOID = {"br", "img", "hr", "meta"}

    def __init__(self):
        super().__init__()
        self.stack, self.rows, self.cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()
        if tag in ("td", "th"):
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_repr_html_is_the_utilization_table():
    r = line_pipeline(n_pes=3)
    page = r._repr_html_()
    p = _Cells()
    p.feed(page)
    p.close()
    assert not p.stack  # well formed
    s = summarize(r)
    head, *rows = p.rows
    assert head[0] == "unit" and len(head) == 1 + len(_TIME_COLUMNS) + 3
    assert [row[0] for row in rows] == [u["unit"] for u in s["units"]]
    gemm = next(row for row in rows if row[0] == "GEMM")
    b = s["units"][0]["busy_pct"]
    assert gemm[1] == f"{b['min']:.1f}/{b['mean']:.1f}/{b['max']:.1f}"
    assert f"{r.cycles:,} cycles" in page and "fake_kernel on default" in page


def test_plot_without_a_path_returns_a_figure_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = line_pipeline(n_pes=3)
    fig = r.plot()
    assert isinstance(fig, Figure)
    assert os.listdir(tmp_path) == []
    png = fig._repr_png_()  # what Jupyter shows inline
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert os.listdir(tmp_path) == []
    data = fig.kernbench_plot
    assert data.path is None and data.gantt_pes and data.units[0] == "GEMM"
    # with a path it writes the PNG and returns what it drew, as before
    out = r.plot(tmp_path / "p.png")
    assert out.path == str(tmp_path / "p.png") and (tmp_path / "p.png").stat().st_size > 0


def test_ipython_shows_html_and_png():
    import pytest

    formatters = pytest.importorskip("IPython.core.formatters")
    r = line_pipeline(n_pes=3)
    shown, _ = formatters.DisplayFormatter().format(r)
    assert "text/html" in shown and "<table>" in shown["text/html"]
    shown, _ = formatters.DisplayFormatter().format(r.plot())
    assert shown["image/png"].startswith(b"\x89PNG")


def test_a_result_prints_as_one_line_naming_what_it_is():
    """repr of a launch, its engine result and its trace: one line with the kernel, machine,
    grid, mode, cycles and commands, not the dataclasses' every array (a result of 8,960
    commands printed 27 KB before)."""
    import numpy as np

    import kernbench

    def twice(x_ptr, o_ptr, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(64,), dtype="f32") * 2)

    ctx = kernbench.Context("default")
    x = ctx.shard(np.ones((8, 64), np.float32), over="pe")
    o = ctx.empty_like(x)
    for mode in ("functional", "timing"):
        r = ctx.launch(twice, (8, 1), x, o, mode=mode)
        n = r.program.n_commands
        assert n == 24
        assert repr(r) == (f"<LaunchResult twice (test_notebook_repr.py) on 'default', grid (8, 1), "
                           f"{mode}: {r.cycles:,} cycles, 24 commands>")
        assert repr(r.engine) == (f"<EngineResult {r.cycles:,} cycles, train detail, 24 commands, "
                                  f"{r.engine.heap_events:,} heap events>")
    t = ctx.trace(twice, (8, 1), x, o)
    assert repr(t) == "<TracedLaunch twice (test_notebook_repr.py), grid (8, 1), timing: 24 commands>"
    # the program: every PE of the machine (24 silent), a load, a mul and a store on 8: 2 tensors each
    assert repr(t.program) == "<Program 32 PEs, 24 commands, 16 tensors>"

    def loop(x_ptr, *, tl):
        for _ in tl.range(0, 64):
            tl.load(x_ptr, shape=(64,), dtype="f32")

    p = ctx.launch(loop, (8, 1), x, mode="timing").program
    assert repr(p) == "<Program 32 PEs, 512 commands, 512 tensors, compact>"  # (rows not built)
    assert len(p.commands) == 512 and repr(p) == "<Program 32 PEs, 512 commands, 512 tensors>"
