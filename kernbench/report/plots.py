"""Plots of a launch (matplotlib, Agg backend, PNG).

Top: a utilization heatmap, one row per working PE and one column per unit shown in the report,
colour = busy / total cycles. Bottom: a Gantt timeline of a few PEs, one lane per unit that ran a
command, one bar per command coloured by opcode.
"""
from __future__ import annotations

import codecs
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from ..common.files import check_figure_path, save_figure
from ..common.pe_commands import UNIT_NAMES, Opcode
from ..common.shown import plain_texts
from .perfetto import select_pes
from .summary import unit_kinds
from .table import fmt_num, fmt_value
from ..common.errors import short_repr
from ..common.totals import exact_total
from ..runtime.result import check_result

__all__ = ["plot", "PlotData", "default_gantt_pes"]

_OP_COLORS = {
    Opcode.LOAD: "#4c72b0",
    Opcode.STORE: "#8172b3",
    Opcode.DOT: "#c44e52",
    Opcode.VEC: "#55a868",
    Opcode.REDUCE: "#64b5cd",
    Opcode.SEND: "#dd8452",
    Opcode.RECV: "#937860",
}
#: Rows drawn with a white separator line up to this many PEs (beyond, the lines would hide rows).
SEPARATED_ROWS = 64
#: the dots per inch plot() draws at: below 10 matplotlib's fonts fail (FreeType's invalid ppem
#: at 1 to 3), above 1,200 an 11-inch figure is over 13,000 pixels wide (a review's 10**6: an
#: image too large)
MIN_DPI, MAX_DPI = 10, 1200


def _number(x) -> float:
    """``x`` as a float, NaN when it has none (an int past float's range, 10**5000)."""
    try:
        return float(x)
    except (OverflowError, TypeError, ValueError):
        return float("nan")
_MAX_GANTT_PES = 4


@dataclass
class PlotData:
    """What :func:`plot` drew, for callers and tests."""

    path: Optional[str]  #: the file written (a name without a suffix: .png added); None: nothing written
    heatmap: np.ndarray  #: (rows, units) busy fraction
    row_pes: list  #: global PE index of each heatmap row, top to bottom
    row_names: list  #: "PE (p, c)" of each row
    units: list  #: unit names of the heatmap columns
    gantt_pes: list  #: global PE indices in the timeline
    gantt_lanes: list  #: (PE name, unit name) of each timeline lane, top to bottom
    heatmap_box: tuple  #: heatmap axes in image pixels (left, top, right, bottom), origin top-left
    size_px: tuple  #: (width, height) of the PNG
    separated: bool = field(default=True)  #: rows separated by white lines


def default_gantt_pes(result, n: int = _MAX_GANTT_PES) -> list:
    """Up to ``n`` PEs worth a timeline: the first working PE, the one whose last command ends
    latest (it sets the launch's time), and the least and the most busy (summed over units)."""
    working = np.asarray(result.working_pes, dtype=np.int64)
    if not len(working):
        return []
    # (summed over units in Python ints: three units' busy cycles, each inside int64, can sum
    # past it, and the least busy PE came out the most, a review)
    busy = np.array([exact_total(row) for row in result.unit_counters["busy"][working]], dtype=object)
    prog = result.program
    end = np.asarray(result.engine.cmd_end, dtype=np.int64)
    last_end = np.array([end[prog.cmd_offsets[g]:prog.cmd_offsets[g + 1]].max() for g in working])
    picks = [working[0], working[int(np.argmax(last_end))], working[int(np.argmin(busy))],
             working[int(np.argmax(busy))]]
    out = []
    for g in picks:
        if int(g) not in out:
            out.append(int(g))
    return sorted(out[:n])


_FIGURE = []


def _figure_class(Figure):
    """A matplotlib Figure that IPython shows as a PNG (``_repr_png_``) whatever the backend: the
    figure is drawn on the Agg canvas, without pyplot, so the inline backend's own hook for
    pyplot figures may not be installed."""
    if not _FIGURE:
        class InlineFigure(Figure):
            def _repr_png_(self):
                import io

                buf = io.BytesIO()
                self.savefig(buf, format="png")
                return buf.getvalue()

        _FIGURE.append(InlineFigure)
    return _FIGURE[0]


def _binary_file(path) -> bool:
    """A file object open in binary mode: an io binary stream (open(..., "wb"), a BytesIO), or one
    whose ``mode`` says so (a tempfile's wrapper: "rb+"; gzip's: an int). Text writers, codecs'
    too, and objects without a mode are not: they go to the path check (ValueError)."""
    if isinstance(path, (str, bytes, os.PathLike, io.TextIOBase, codecs.StreamWriter,
                         codecs.StreamReaderWriter)) or not hasattr(path, "write"):
        return False
    if isinstance(path, (io.BufferedIOBase, io.RawIOBase)):
        return True
    mode = getattr(path, "mode", None)
    return (isinstance(mode, str) and "b" in mode) or (isinstance(mode, int) and not isinstance(mode, bool))


def plot(
    result,
    path: Union[str, Path, None] = None,
    pes: Optional[Iterable] = None,
    *,
    dpi: int = 100,
):
    """Write a PNG with the utilization heatmap (every working PE x unit) and a Gantt timeline
    of ``pes`` (global indices or (pe, cube) pairs; default :func:`default_gantt_pes`) and
    return a :class:`PlotData`.

    Without ``path`` nothing is written: it returns the matplotlib ``Figure``, which Jupyter
    shows inline as a cell's value (its PlotData is ``figure.kernbench_plot``). Raises
    ValueError for a ``path`` in a folder that does not exist (before drawing anything), and
    for a ``dpi`` outside MIN_DPI..MAX_DPI (10..1,200); TypeError for another object than a
    LaunchResult."""
    check_result(result, "plot")
    if (isinstance(dpi, (bool, np.bool_)) or not isinstance(dpi, (int, float, np.integer, np.floating))
            or not MIN_DPI <= _number(dpi) <= MAX_DPI):  # (matplotlib's own errors, before: reviews)
        raise ValueError(f"plot: dpi must be a number of dots per inch from {MIN_DPI} to {MAX_DPI}, got "
                         f"{short_repr(dpi)}")
    if _binary_file(path):  # (savefig writes to it)
        if getattr(path, "closed", False):
            raise ValueError(f"plot: the file object {short_repr(path)} is closed")
        if not getattr(path, "writable", lambda: True)():
            raise ValueError(f"plot: the file object {short_repr(path)} is not open for writing")
    elif path is not None:
        check_figure_path(path, "plot")
    # The Agg canvas directly: no pyplot, no global backend switch in the caller's process.
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.patches import Patch

    working = [int(g) for g in result.working_pes]
    units = unit_kinds(result)
    cycles = result.cycles
    busy = result.unit_counters["busy"]
    heat = (busy[np.ix_(working, units)] / cycles) if cycles and working else np.zeros((len(working), len(units)))
    gantt_pes = default_gantt_pes(result) if pes is None else [int(g) for g in select_pes(result, pes)]

    prog = result.program
    start = np.asarray(result.engine.cmd_start, dtype=np.int64)
    end = np.asarray(result.engine.cmd_end, dtype=np.int64)
    cmd_units, opcodes = prog.columns("unit", "opcode")
    lanes = []  # (g, u, command indices)
    for g in gantt_pes:
        lo, hi = int(prog.cmd_offsets[g]), int(prog.cmd_offsets[g + 1])
        for u in sorted(set(cmd_units[lo:hi].tolist())):
            lanes.append((g, u, lo + np.flatnonzero(cmd_units[lo:hi] == u)))

    n_rows = max(1, len(working))
    row_in = 0.22 if n_rows <= SEPARATED_ROWS else max(0.02, 14.0 / n_rows)
    heat_h = min(14.0, max(1.5, n_rows * row_in))
    gantt_h = max(1.2, 0.28 * len(lanes) + 0.8)
    fig = _figure_class(Figure)(figsize=(11, heat_h + gantt_h + 1.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 1, height_ratios=[heat_h, gantt_h])
    ax_h = fig.add_subplot(gs[0])
    ax_g = fig.add_subplot(gs[1])

    # Heatmap ------------------------------------------------------------------------------
    im = ax_h.imshow(heat if len(working) else np.zeros((1, len(units))), aspect="auto",
                     cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    names = [result.pe_name(g) for g in working]
    separated = len(working) <= SEPARATED_ROWS
    if separated:
        for y in range(1, len(working)):
            ax_h.axhline(y - 0.5, color="white", linewidth=2)
    ax_h.set_xticks(range(len(units)), [UNIT_NAMES[u] for u in units])
    if len(working) <= 40:
        ax_h.set_yticks(range(len(working)), names, fontsize=7)
    else:
        step = int(np.ceil(len(working) / 32))
        ax_h.set_yticks(range(0, len(working), step), names[::step], fontsize=6)
    plain_texts(ax_h.set_title(f"{result.kernel_name} on {result.hw.label}: busy / {cycles:,} cycles per "
                               f"unit ({len(working)} working PEs)", fontsize=10))
    fig.colorbar(im, ax=ax_h, fraction=0.03, pad=0.01, label="busy fraction")

    # Gantt --------------------------------------------------------------------------------
    lane_names = []
    # A thin white edge separates back-to-back commands, only where a bar is wide enough to keep
    # its colour (about 4 pixels at the axes' width).
    px_per_cycle = 9.0 * dpi / max(1, cycles)
    for row, (g, u, idx) in enumerate(lanes):
        y = len(lanes) - 1 - row  # first lane on top
        colors = [_OP_COLORS[Opcode(int(o))] for o in opcodes[idx]]
        dur = end[idx] - start[idx]
        ax_g.broken_barh(list(zip(start[idx].tolist(), dur.tolist())), (y - 0.4, 0.8), facecolors=colors,
                         edgecolor="white", linewidths=np.where(dur * px_per_cycle > 4, 0.5, 0.0))
        lane_names.append((result.pe_name(g), UNIT_NAMES[u]))
    ax_g.set_yticks(range(len(lanes)), [f"{p}  {u}" for p, u in reversed(lane_names)], fontsize=7)
    ax_g.set_ylim(-0.6, max(0.6, len(lanes) - 0.4))
    ax_g.set_xlim(0, max(1, cycles))
    ax_g.set_xlabel(f"cycle ({fmt_value(result.hw.clock_ghz)} GHz: 1 us = {fmt_num(result.hw.clock_ghz * 1e3)} cycles)")
    ax_g.set_title("timeline of " + (", ".join(result.pe_name(g) for g in gantt_pes) or "no PE"), fontsize=10)
    used_ops = sorted({int(o) for _, _, idx in lanes for o in opcodes[idx]})
    if used_ops:
        ax_g.legend(handles=[Patch(color=_OP_COLORS[Opcode(o)], label=Opcode(o).name.lower()) for o in used_ops],
                    loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)

    written = None
    if path is not None:
        written = save_figure(fig, path, dpi=dpi)  # (a name without a suffix: .png added)
    else:
        fig.canvas.draw()  # lays the figure out, as saving would
    # The heatmap's pixel box, as laid out in the saved file (origin top-left, like image arrays).
    w, h = fig.canvas.get_width_height()
    bb = ax_h.get_window_extent()
    data = PlotData(
        path=None if path is None else (written or str(path)),
        heatmap=heat,
        row_pes=working,
        row_names=names,
        units=[UNIT_NAMES[u] for u in units],
        gantt_pes=gantt_pes,
        gantt_lanes=lane_names,
        heatmap_box=(float(bb.x0), float(h - bb.y1), float(bb.x1), float(h - bb.y0)),
        size_px=(w, h),
        separated=separated,
    )
    if path is None:
        fig.kernbench_plot = data
        return fig
    return data
