"""A launch as HTML, for Jupyter: ``LaunchResult._repr_html_``.

The same figures as the utilization table (kernbench.report.table), as an HTML table: one row per
unit, then the totals; and, when the launch was made with ``drift=``, the drift's one-line verdict.
"""
from __future__ import annotations

import html

from rich.console import Console

from .summary import summarize
from .table import _TIME_COLUMNS, _WORK_COLUMNS, _title, _totals
from ..runtime.result import check_result

__all__ = ["launch_html"]


def _cell(x: str, right: bool, tag: str = "td") -> str:
    style = "text-align:right" if right else "text-align:left"
    return f'<{tag} style="{style};white-space:pre">{html.escape(x)}</{tag}>'


def launch_html(result) -> str:
    """The utilization table of ``result`` as an HTML fragment."""
    check_result(result, "launch_html")
    s = summarize(result)
    cols = _TIME_COLUMNS + _WORK_COLUMNS
    head = _cell("unit", False, "th") + "".join(_cell(h.replace("\n", " "), right, "th") for h, right, _ in cols)
    rows = []
    for row in s["units"]:
        dim = ' style="opacity:0.45"' if row["commands"] == 0 else ""
        rows.append(f"<tr{dim}>" + _cell(row["unit"], False)
                    + "".join(_cell(fn(row), right) for _, right, fn in cols) + "</tr>")
    # the totals as the table prints them, one line each
    con = Console(width=200, record=True, color_system=None, file=_Null())
    con.print(_totals(s))
    totals = con.export_text().rstrip()
    extra = ""
    drift = getattr(result, "drift", None)
    if drift is not None:
        from .drift import drift_summary

        extra = f"<pre>{html.escape(drift_summary(result)['text'])}</pre>"
    return (f'<div class="kernbench-launch"><p><b>{html.escape(_title(s))}</b></p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<pre>{html.escape(totals)}</pre>{extra}</div>")


class _Null:
    def write(self, _):
        return 0

    def flush(self):
        pass
