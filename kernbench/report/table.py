"""The utilization table: what ``result.report()`` and the CLI print.

One row per unit kind with its busy % over the working PEs (min / mean / max, and which PE is the
least busy), mean stall % by cause, commands, work and rate; then totals (time at the clock,
achieved against peak TFLOP/s, memory and link bandwidth, peak SRAM against capacity).
All figures come from :func:`kernbench.report.summary.summarize`.
"""
from __future__ import annotations

import io
import math
import os
from typing import Optional

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ..common.errors import check_output_file, is_whole, short_repr
from ..common.files import output_file
from ..common.shown import rich_text
from .summary import summarize
from ..runtime.result import check_result

__all__ = ["print_report", "render_report", "fmt_num", "fmt_value", "fmt_count", "fmt_bytes", "fmt_seconds",
           "plural"]

# The stall counted inside busy that each unit can have (the others are always zero there):
# credits for a send, data for a recv, channel arbitration for DMA; GEMM and VECTOR have none.
_INSIDE = {"TX": "credit", "RX": "data", "DMA": "arbitration"}
_SHORT = {"credit": "credit", "data": "data", "arbitration": "arb"}


def fmt_num(x: float, digits: int = 3) -> str:
    """A figure to ``digits`` (3 or more) significant digits, never in exponent form: 0.841,
    98.3, 1,573, 24,576, 0.0000000911; integer digits grouped, every one of them once there are
    more than ``digits``."""
    if not is_whole(digits) or digits < 3:
        raise ValueError(f"fmt_num: digits must be an int of 3 or more, got {short_repr(digits)}")
    digits = int(digits)
    if is_whole(x) and abs(x) >= 10 ** digits:
        return f"{int(x):,}"  # (exact, past float's range too)
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 10 ** digits - 0.5:  # rounds to more integer digits than ``digits``: all of them
        return f"{x:,.0f}"
    s = np.format_float_positional(x, precision=digits, unique=False, fractional=False, trim="-")
    whole, dot, frac = s.partition(".")
    if len(whole.lstrip("-")) > 3:  # (digits > 3: 5208.4 to 4 digits is 5,208)
        whole = ("-" if whole.startswith("-") else "") + f"{int(whole.lstrip('-')):,}"
    return whole + dot + frac


def fmt_pct(p: float) -> str:
    """A percentage to one decimal from 0.95 up (shown as 1.0 and more), below it to 3
    significant digits (a 65,536 x 1 array at 1,000 GHz ran at 0.0000318% of its peak, which one
    decimal showed as 0.0%)."""
    return f"{p:.1f}" if p >= 0.95 or p == 0 else fmt_num(p)


def _rounds_to_one(v: float, digits: int = 3) -> bool:
    """Whether ``v`` shown to ``digits`` significant digits is 1 or more in magnitude."""
    return math.isfinite(v) and abs(float(f"{v:.{digits}g}")) >= 1


def fmt_value(x: float) -> str:
    """A value as given (a clock, a tolerance), never in exponent form: 1.5, 0.000000001, 1500."""
    x = float(x)
    return np.format_float_positional(x, trim="-") if math.isfinite(x) else str(x)


def fmt_count(x: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' (SI prefixes, 3 significant figures)."""
    x = float(x)
    if not math.isfinite(x):
        return f"{x} {unit}".rstrip()
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if _rounds_to_one(x / factor):  # (999,999 is 1 M, not 1,000 k)
            return f"{fmt_num(x / factor)} {prefix}{unit}"
    return f"{x:.0f} {unit}".rstrip() if x == int(x) else f"{fmt_num(x)} {unit}".rstrip()


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary prefixes)."""
    n = float(n)
    for factor, prefix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if _rounds_to_one(n / factor):  # (1,048,575 B is 1 MiB, not 1,024 KiB)
            return f"{fmt_num(n / factor)} {prefix}"
    return f"{n:,.0f} B"


def fmt_bytes_pair(a: float, b: float) -> tuple:
    """``a`` and ``b`` as :func:`fmt_bytes` writes them, or both in whole bytes when they
    differ but would read the same (a peak of 8,192 B against a capacity of 8,191 B: "8 KiB of
    8 KiB ... OVER CAPACITY" said nothing)."""
    fa, fb = fmt_bytes(a), fmt_bytes(b)
    if fa == fb and a != b:
        return f"{float(a):,.0f} B", f"{float(b):,.0f} B"
    return fa, fb


def fmt_seconds(t: float) -> str:
    """A duration in the largest unit that keeps it >= 1 once rounded, to 4 significant digits,
    never in exponent form: 2.745 s, 1.741 us, 841.3 ns, 1 ms (not 1,000 us), 68,720 s."""
    t = float(t)
    if not math.isfinite(t):
        return f"{t} s"
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if _rounds_to_one(t / factor, 4):
            return f"{fmt_num(t / factor, 4)} {unit}"
    return f"{fmt_num(t / 1e-9, 4)} ns"


def plural(n: int, word: str) -> str:
    """'1 cube', '4 cubes'."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _work(row: dict) -> str:
    if row["work_unit"] == "byte":
        return fmt_bytes(row["work"])
    if row["work_unit"] == "flop":
        return fmt_count(row["work"], "FLOP")
    return fmt_count(row["work"]) + " el"


def _rate(row: dict) -> str:
    r = row["rate_per_s"]
    if row["work_unit"] == "flop":
        return f"{fmt_num(r / 1e12)} TFLOP/s"
    if row["work_unit"] == "element":
        return f"{fmt_num(r / 1e9)} G el/s"
    return f"{fmt_num(r / 1e9)} GB/s"


def _inside(row: dict) -> str:
    cause = _INSIDE.get(row["unit"][:2] if row["unit"][:2] in ("TX", "RX") else row["unit"])
    return f"{_SHORT[cause]} {row['stall_pct'][cause]:.1f}" if cause else "-"


def _busy(row: dict) -> str:
    b = row["busy_pct"]
    return f"{b['min']:.1f}/{b['mean']:.1f}/{b['max']:.1f}"


def _least(row: dict) -> str:
    # no PE stands out on an idle unit
    return (row["busy_pct"]["min_pe_name"] or "-") if row["commands"] else "-"


# (header, right-justified, cell) per column after "unit". The first group says where the time
# went, the second what was done; a narrow console gets them as two tables.
_TIME_COLUMNS = (
    ("busy %\nmin/mean/max", True, _busy),
    ("least\nbusy", False, _least),
    ("stall %\noperand", True, lambda r: f"{r['stall_pct']['operand']:.1f}"),
    ("stall %\nin busy", True, _inside),
)
_WORK_COLUMNS = (
    ("commands", True, lambda r: f"{r['commands']:,}"),
    ("work", True, _work),
    ("rate", True, _rate),
)


def _title(s: dict) -> str:
    return (f"{s['kernel']} on {s['hw']}: grid {plural(s['grid'][0], 'PE')} x "
            f"{plural(s['grid'][1], 'cube')}, {plural(s['working_pes'], 'working PE')}, {s['mode']} mode")


def _unit_table(s: dict, columns, title: Optional[str] = None) -> Table:
    t = Table(
        title=None if title is None else rich_text(title, "table.title"),  # the user's names, as they are
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    t.add_column("unit", no_wrap=True)
    for header, right, _ in columns:
        t.add_column(header, justify="right" if right else "left", no_wrap=True)
    for row in s["units"]:
        t.add_row(row["unit"], *(cell(row) for _, _, cell in columns),
                  style="dim" if row["commands"] == 0 else None)
    return t


class _UnitTables:
    """One table of every column when it fits the console, else the time columns and the work
    columns as two tables, so that no figure is ever cut (rich ellipsizes what does not fit)."""

    def __init__(self, s: dict):
        self.s = s

    def __rich_console__(self, console, options):
        one = _unit_table(self.s, _TIME_COLUMNS + _WORK_COLUMNS, _title(self.s))
        # measured unconstrained: a measurement against the console's width is clamped to it
        natural = Measurement.get(console, options.update(width=1 << 16), one).maximum
        if natural <= options.max_width:
            yield one
        else:
            yield _unit_table(self.s, _TIME_COLUMNS, _title(self.s))
            yield _unit_table(self.s, _WORK_COLUMNS)


def _totals(s: dict) -> Table:
    """The totals as label / text rows: a line too long for the console wraps under its text,
    at a space, so a figure is never split."""
    tot, ln, sr = s["totals"], s["links"], s["sram"]
    t = Table.grid(padding=(0, 0))
    t.add_column(no_wrap=True, min_width=10)
    t.add_column(overflow="fold")
    t.add_row("time", f"{s['cycles']:,} cycles = {fmt_seconds(s['seconds'])} at {fmt_value(s['clock_ghz'])} GHz "
              f"({plural(s['commands'], 'command')})")
    t.add_row("GEMM", f"{fmt_count(tot['flops'], 'FLOP')}: {fmt_num(tot['achieved_tflops'])} of "
              f"{fmt_num(tot['peak_tflops'])} TFLOP/s peak ({fmt_pct(100 * tot['tflops_fraction'])}%)")
    t.add_row("memory", f"{fmt_bytes(tot['dma_bytes'])} by DMA: {fmt_num(tot['memory_gbps'])} of "
              f"{fmt_num(tot['memory_peak_gbps'])} GB/s ({plural(s['cubes_used'], 'cube channel')})")
    if ln["links_used"]:
        t.add_row("links", f"{fmt_bytes(ln['bytes'])} in {plural(ln['messages'], 'message')} / "
                  f"{plural(ln['packets'], 'packet')} on {plural(ln['links_used'], 'link')}: "
                  f"{fmt_num(ln['achieved_gbps'])} of {fmt_num(ln['peak_gbps'])} GB/s")
        t.add_row("", f"busiest link {ln['busiest_link_name']}: {fmt_num(ln['busiest_link_gbps'])} of "
                  f"{fmt_num(ln['per_link_peak_gbps'])} GB/s ({fmt_pct(ln['busiest_link_busy_pct'])}% busy)")
    else:
        t.add_row("links", "no link traffic")
    peak, cap = fmt_bytes_pair(sr["peak_bytes"], sr["capacity_bytes"])
    sram = Text(
        f"peak {peak} of {cap} "
        f"({fmt_num(100 * sr['peak_fraction'])}%)"
        + (f" on {sr['peak_pe_name']}" if sr["peak_pe_name"] else "")
    )
    if sr["over_capacity"]:
        names = sr["over_pe_names"]
        more = f" and {len(names) - 4} more" if len(names) > 4 else ""
        sram.append(f"  OVER CAPACITY on {plural(len(names), 'PE')}: {', '.join(names[:4])}{more}",
                    style="bold red")
    t.add_row("SRAM", sram)
    b = s.get("bound")
    if b and b["cycles"]:  # (how far from the best these commands allow: reports' "why")
        if b["resource"] == "link credits":  # (the link with the most round trips, not the busiest)
            what = (f"the credit round trips of link {b['where']}'s packets, "
                    f"link.rx_queue_packets at a time (link credits)")
        else:
            what = f"the busiest resource's busy time ({b['resource']}, {b['where']})"
        # a unit busier above than the bound counts its waits, which the bound leaves out (a
        # review read "busiest resource" against a DMA row busier than the GEMM it named); not
        # said where the bound is itself credit round trips, which are waits (another review)
        waits = [] if b["resource"] == "link credits" else [
            r["unit"] for r in s["units"]
            if r["unit"] in _WAITS and r["busy_pct"]["max"] * s["cycles"] / 100 > b["cycles"] * (1 + 1e-9)]
        note = ("; " + " and ".join(f"{u}'s busy above counts its waits for {_WAITS[u]} too" for u in waits)
                + ", the bound a unit's own work") if waits else ""
        t.add_row("bound", f"{b['cycles']:,} cycles, {what}: no schedule of these commands ends "
                  f"sooner; the launch takes {b['ratio']:.3f}x that (what it waits on: "
                  f"critical_path(), --profile){note}")
    return t


#: the units whose busy counts a wait inside it, and what it waits for (docs/hardware-model.md)
_WAITS = {"DMA": "the memory channel", **{f"TX_{p}": "credits" for p in "EWNS"},
          **{f"RX_{p}": "data" for p in "EWNS"}}


def render_report(result, summary: Optional[dict] = None) -> Group:
    """The report as a rich renderable (table + totals)."""
    s = summary if summary is not None else summarize(result)
    return Group(_UnitTables(s), _totals(s))


def print_report(result, console: Optional[Console] = None, file=None, width: int = 120) -> str:
    """Print the utilization table of ``result`` and return it as plain text.

    Prints to ``console`` if given, else to ``file`` if given (a path, or an open text file;
    plain text, no colour), else to standard output. ``width`` is the text width of the returned
    string, of ``file``, and of standard output when it is not a terminal (a pipe or a log).
    Below about 100 columns the unit table splits in two so that every figure stays whole.
    """
    check_result(result, "print_report")
    return emit(render_report(result), console, file, width)


def emit(renderable, console: Optional[Console] = None, file=None, width: int = 120,
         who: str = "print_report") -> str:
    """Print a rich ``renderable`` to ``console``, else to ``file`` (a path or an open text
    file; plain text), else to standard output (``width`` columns when it is not a terminal);
    return it as plain text ``width`` columns wide. Every printed report goes through here.
    Raises ValueError when ``width`` is not an int of at least 20 columns, ``file`` is neither a
    path nor a file, or is a path in a folder that does not exist (naming ``who``, the printing
    function)."""
    if not is_whole(width) or width < 20:
        raise ValueError(f"width must be an int of at least 20 columns, got {short_repr(width)}")
    width = int(width)  # (a numpy int as its value)
    if console is not None and not isinstance(console, Console):  # (a review: AttributeError on 5)
        raise ValueError(f"{who}: console must be a rich Console, got {type(console).__name__} {short_repr(console)}")
    if console is None and file is not None and not isinstance(file, (str, os.PathLike)) \
            and not callable(getattr(file, "write", None)):  # (a review: AttributeError on file=5)
        raise ValueError(f"{who}: file must be a path or an open text file (with .write), got "
                         f"{type(file).__name__} {short_repr(file)}")
    if console is None and isinstance(file, (str, os.PathLike)):
        check_output_file(file, who)  # (before the report is drawn)
    buf = io.StringIO()
    recorder = Console(file=buf, width=width, record=True, color_system=None, soft_wrap=False)
    recorder.print(renderable)
    text = recorder.export_text()
    if console is not None:
        console.print(renderable)
    elif isinstance(file, (str, os.PathLike)):
        with output_file(file) as out, open(out, "w", encoding="utf-8") as f:  # (whole or not at all)
            f.write(text)
    elif file is not None:
        file.write(text)
    else:
        out = Console()
        if not out.is_terminal:
            out = Console(width=width)
        out.print(renderable)
    return text
