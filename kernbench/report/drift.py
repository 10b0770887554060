"""The numeric drift report: how far each kernel line's results drift from an f64 shadow.

A launch made with ``drift=True`` (functional mode; kernbench.runtime.drift) carries, per command,
its **drift** from the float64 shadow and the **rounding** it introduced itself. This module
groups them by kernel source line and names the first command out of tolerance and the command
that introduced the error it carries (its origin). docs/reports.md, "Numeric drift".
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..common.errors import file_line
from ..common.shown import rich_text
from .table import emit
from .commands import command_facts, line_groups
from ..runtime.result import check_result

__all__ = ["drift_summary", "print_drift", "render_drift"]


def _need(result):
    d = getattr(result, "drift", None)
    if d is None:
        raise ValueError("this launch has no drift record: launch it with mode='functional', drift=True "
                         "(or drift=TOLERANCE)")
    return d


def _command(result, c: Optional[int], d) -> Optional[dict]:
    if c is None:
        return None
    fx = command_facts(result)
    g = int(fx.pe[c])
    return {"cmd": int(c), "pe": list(result.pe_coords(g)), "pe_name": result.pe_name(g),
            "source": result.source(c), "label": result.label(c),
            "drift": float(d.drift[c]), "rounding": float(d.local[c])}


def _fmt(x: float) -> str:
    if np.isnan(x):
        return "-"
    if np.isinf(x):
        return "inf"
    return "0" if x == 0 else f"{x:.1e}"


def drift_summary(result) -> dict:
    """Plain data: ``tolerance``, ``passed``, ``first`` and ``origin`` (the commands, named: PE,
    source, label, drift, rounding; None when every result is within tolerance), ``text`` (one
    line) and ``lines``: per kernel line, in the order the launch first completed one of its
    commands, ``source``, ``short``, ``labels``, ``commands`` (with a result), ``max_drift``,
    ``median_drift``, ``max_rounding``, ``over`` (commands above tolerance)."""
    check_result(result, "drift_summary")
    d = _need(result)
    g = line_groups(result)
    n_lines = len(g.sources)
    li = g.line_of
    has = ~np.isnan(d.drift)
    rank = np.empty(len(d.order), np.int64)
    rank[d.order] = np.arange(len(d.order))
    first_rank = np.full(n_lines, np.iinfo(np.int64).max)
    np.minimum.at(first_rank, li[has], rank[has])
    # each line's ops, the one that drifts most first
    names = g.labels_by(np.nan_to_num(d.drift, nan=0.0, posinf=1e300) + 1e-300)
    lines = []
    for i in np.argsort(first_rank, kind="stable").tolist():
        sel = has & (li == i)
        if not sel.any():
            continue
        dr = d.drift[sel]
        lines.append({"source": g.sources[i], "short": g.short(i), "labels": names[i],
                      "commands": int(sel.sum()), "max_drift": float(np.max(dr)),
                      "median_drift": float(np.median(dr)), "max_rounding": float(np.nanmax(d.local[sel])),
                      "over": int((dr > d.tolerance).sum())})
    first, origin = _command(result, d.first, d), _command(result, d.origin, d)
    if first is None:
        worst = max((ln["max_drift"] for ln in lines), default=0.0)
        text = (f"drift: every result within {d.tolerance:g} of the f64 shadow (largest {_fmt(worst)})")
    else:
        text = (f"drift: first out of tolerance: {first['label']} at {_short(first['source'])} on "
                f"{first['pe_name']} (command {first['cmd']}), {_fmt(first['drift'])} > {d.tolerance:g}")
        if origin is not None:
            same = origin["cmd"] == first["cmd"]
            text += (f"; introduced {'there' if same else 'by'}"
                     + ("" if same else f" {origin['label']} at {_short(origin['source'])} on {origin['pe_name']} "
                                        f"(command {origin['cmd']})")
                     + f": rounding {_fmt(origin['rounding'])}, the largest of the commands it was computed from")
    return {"tolerance": d.tolerance, "passed": first is None, "first": first, "origin": origin,
            "text": text, "lines": lines}


def _short(src: str) -> str:
    path, _, line = src.rpartition(":")
    return file_line(path, line) if path else src


def render_drift(summary: dict, title: Optional[str] = None):
    title = None if title is None else rich_text(title, "table.title")  # the kernel's name as it is
    t = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, show_edge=False)
    t.add_column("line", no_wrap=True)
    t.add_column("op", overflow="ellipsis", no_wrap=True, max_width=36)
    t.add_column("results", justify="right", no_wrap=True)
    t.add_column("drift\nmax", justify="right", no_wrap=True)
    t.add_column("drift\nmedian", justify="right", no_wrap=True)
    t.add_column("own\nrounding", justify="right", no_wrap=True)
    t.add_column("over\ntol", justify="right", no_wrap=True)
    origin = summary["origin"]["source"] if summary["origin"] else None
    for ln in summary["lines"]:
        op = ln["labels"][0] + (f" +{len(ln['labels']) - 1}" if len(ln["labels"]) > 1 else "")
        style = "bold red" if ln["source"] == origin else ("yellow" if ln["over"] else None)
        t.add_row(rich_text(ln["short"]), rich_text(op), f"{ln['commands']:,}", _fmt(ln["max_drift"]),
                  _fmt(ln["median_drift"]), _fmt(ln["max_rounding"]), f"{ln['over']:,}" if ln["over"] else "-",
                  style=style)
    note = Text("drift: max |value - f64 shadow| / max |shadow| of each result (ints and masks: the "
                "share of elements that differ); own rounding: the same between the result and its "
                "op in f64 on the launch's own operands", style="dim")
    return Group(t, note, Text(summary["text"]))


def print_drift(result, console: Optional[Console] = None, file=None, width: int = 120) -> str:
    """Print the drift table of ``result`` (launched with ``drift=``) and return its plain text;
    ``console``, ``file`` and ``width`` as for :func:`kernbench.report.print_report`."""
    check_result(result, "print_drift")
    s = drift_summary(result)
    renderable = render_drift(s, title=f"{result.kernel_name}: numeric drift from an f64 shadow "
                                       f"(tolerance {s['tolerance']:g})")
    return emit(renderable, console, file, width, who="print_drift")
