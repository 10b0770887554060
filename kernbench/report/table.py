"""The utilization table: what ``result.report()`` and the CLI print.

One row per unit kind with its busy % over the working PEs (min / mean / max, and which PE is the
least busy), mean stall % by cause, commands, work and rate; then totals (time at the clock,
achieved against peak TFLOP/s, memory and link bandwidth, peak SRAM against capacity).
All figures come from :func:`kernbench.report.summary.summarize`.
"""
from __future__ import annotations

import io
from typing import Optional

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .summary import summarize

__all__ = ["print_report", "render_report", "fmt_count", "fmt_bytes"]

# The stall counted inside busy that each unit can have (the others are always zero there):
# credits for a send, data for a recv, channel arbitration for DMA; GEMM and VECTOR have none.
_INSIDE = {"TX": "credit", "RX": "data", "DMA": "arbitration"}
_SHORT = {"credit": "credit", "data": "data", "arbitration": "arb"}


def fmt_count(x: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' (SI prefixes, 3 significant figures)."""
    x = float(x)
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g} {prefix}{unit}"
    return f"{x:.0f} {unit}".rstrip() if x == int(x) else f"{x:.3g} {unit}".rstrip()


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary prefixes)."""
    n = float(n)
    for factor, prefix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {prefix}"
    return f"{n:.0f} B"


def _work(row: dict) -> str:
    if row["work_unit"] == "byte":
        return fmt_bytes(row["work"])
    if row["work_unit"] == "flop":
        return fmt_count(row["work"], "FLOP")
    return fmt_count(row["work"]) + " el"


def _rate(row: dict) -> str:
    r = row["rate_per_s"]
    if row["work_unit"] == "flop":
        return f"{r / 1e12:.3g} TFLOP/s"
    if row["work_unit"] == "element":
        return f"{r / 1e9:.3g} G el/s"
    return f"{r / 1e9:.3g} GB/s"


def _unit_table(s: dict) -> Table:
    t = Table(
        title=f"{s['kernel']} on {s['hw']}: grid {s['grid'][0]} PEs x {s['grid'][1]} cubes, "
        f"{s['working_pes']} working PEs, {s['mode']} mode",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    t.add_column("unit", no_wrap=True)
    t.add_column("busy %\nmin/mean/max", justify="right", no_wrap=True)
    t.add_column("least\nbusy", no_wrap=True)
    t.add_column("stall %\noperand", justify="right", no_wrap=True)
    t.add_column("stall %\nin busy", justify="right", no_wrap=True)
    t.add_column("commands", justify="right", no_wrap=True)
    t.add_column("work", justify="right", no_wrap=True)
    t.add_column("rate", justify="right", no_wrap=True)
    for row in s["units"]:
        b = row["busy_pct"]
        cause = _INSIDE.get(row["unit"][:2] if row["unit"][:2] in ("TX", "RX") else row["unit"])
        inside = f"{_SHORT[cause]} {row['stall_pct'][cause]:.1f}" if cause else "-"
        t.add_row(
            row["unit"],
            f"{b['min']:.1f}/{b['mean']:.1f}/{b['max']:.1f}",
            (b["min_pe_name"] or "-") if row["commands"] else "-",  # no PE stands out on an idle unit
            f"{row['stall_pct']['operand']:.1f}",
            inside,
            f"{row['commands']:,}",
            _work(row),
            _rate(row),
            style="dim" if row["commands"] == 0 else None,
        )
    return t


def _totals(s: dict) -> Text:
    tot, ln, sr = s["totals"], s["links"], s["sram"]
    lines = Text()
    lines.append(
        f"time      {s['cycles']:,} cycles = {s['microseconds']:.3f} us at {s['clock_ghz']:g} GHz "
        f"({s['commands']:,} commands)\n"
    )
    lines.append(
        f"GEMM      {fmt_count(tot['flops'], 'FLOP')}: {tot['achieved_tflops']:.3g} of "
        f"{tot['peak_tflops']:.3g} TFLOP/s peak ({100 * tot['tflops_fraction']:.1f}%)\n"
    )
    lines.append(
        f"memory    {fmt_bytes(tot['dma_bytes'])} by DMA: {tot['memory_gbps']:.3g} of "
        f"{tot['memory_peak_gbps']:.3g} GB/s ({s['cubes_used']} cube channel(s))\n"
    )
    if ln["links_used"]:
        lines.append(
            f"links     {fmt_bytes(ln['bytes'])} in {ln['messages']:,} messages / "
            f"{ln['packets']:,} packets on {ln['links_used']} link(s): {ln['achieved_gbps']:.3g} of "
            f"{ln['peak_gbps']:.3g} GB/s\n"
            f"          busiest link {ln['busiest_link_name']}: "
            f"{ln['busiest_link_gbps']:.3g} of {ln['per_link_peak_gbps']:.3g} GB/s "
            f"({ln['busiest_link_busy_pct']:.1f}% busy)\n"
        )
    else:
        lines.append("links     no link traffic\n")
    sram_line = (
        f"SRAM      peak {fmt_bytes(sr['peak_bytes'])} of {fmt_bytes(sr['capacity_bytes'])} "
        f"({100 * sr['peak_fraction']:.1f}%)"
        + (f" on {sr['peak_pe_name']}" if sr["peak_pe_name"] else "")
    )
    if sr["over_capacity"]:
        names = sr["over_pe_names"]
        more = f" and {len(names) - 4} more" if len(names) > 4 else ""
        lines.append(sram_line + "  ")
        lines.append(
            f"OVER CAPACITY on {len(names)} PE(s): {', '.join(names[:4])}{more}", style="bold red"
        )
    else:
        lines.append(sram_line)
    return lines


def render_report(result, summary: Optional[dict] = None) -> Group:
    """The report as a rich renderable (table + totals)."""
    s = summary if summary is not None else summarize(result)
    return Group(_unit_table(s), _totals(s))


def print_report(result, console: Optional[Console] = None, file=None, width: int = 120) -> str:
    """Print the utilization table of ``result`` and return it as plain text.

    Prints to ``console`` if given, else to ``file`` if given (plain text, no colour), else to
    standard output. ``width`` is the text width of the returned string, of ``file``, and of
    standard output when it is not a terminal (a pipe or a log).
    """
    renderable = render_report(result)
    buf = io.StringIO()
    recorder = Console(file=buf, width=width, record=True, color_system=None, soft_wrap=False)
    recorder.print(renderable)
    text = recorder.export_text()
    if console is not None:
        console.print(renderable)
    elif file is not None:
        file.write(text)
    else:
        out = Console()
        if not out.is_terminal:
            out = Console(width=width)
        out.print(renderable)
    return text
