"""The figures of one sweep row, from a LaunchResult (kernbench.report.summarize) or an error."""
from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from ..common.errors import KernbenchError, exc_text, pe_label, short_repr
from ..common.pe_commands import Unit
from ..hw.config import HardwareConfigError
from ..report.summary import summarize

__all__ = ["FIGURES", "FIGURE_TYPES", "BUSY_UNITS", "MORE_IS_BETTER", "comparable", "more_is_better", "row_figures", "error_figures",
           "empty_figures", "cacheable"]

BUSY_UNITS = ("GEMM", "VECTOR", "DMA", "TX_E", "TX_W", "RX_E", "RX_W")

#: Columns of a row after the swept values, in order (docs/sweeps.md, "Columns").
FIGURES = (
    "cycles", "seconds", "tflops", "peak_tflops", "tflops_fraction", "roofline_fraction", "bound",
    *(f"busy_{u}" for u in BUSY_UNITS),
    "dma_bytes", "memory_gbps", "link_bytes", "link_gbps", "link_messages",
    "sram_peak_bytes", "sram_capacity_bytes", "sram_fraction", "sram_over",
    "commands", "working_pes",
    "error", "error_type", "error_pe", "error_where",
)


#: the figure columns where more is better (rates, fractions of a peak, busy %): best() and
#: pareto() take their largest (a review: a Pareto front of TFLOP/s against cycles minimised
#: the TFLOP/s); every other column (cycles, seconds, bytes, a swept value) its least
MORE_IS_BETTER = frozenset({"tflops", "tflops_fraction", "roofline_fraction", "memory_gbps", "link_gbps",
                            *(f"busy_{u}" for u in BUSY_UNITS)})


def more_is_better(column: str, maximize: "bool | None" = None) -> bool:
    """Whether best() and pareto() take ``column``'s largest: ``maximize`` when given (True or
    False), else whether the column is one of :data:`MORE_IS_BETTER`. Raises ValueError for a
    ``maximize`` that is not None, True or False."""
    if maximize is None:
        return column in MORE_IS_BETTER
    if not isinstance(maximize, (bool, np.bool_)):
        raise ValueError(f"maximize: expected None (by the column), True or False, got {short_repr(maximize)}")
    return bool(maximize)


def comparable(value) -> bool:
    """Whether best() and pareto() order ``value``: not None, not a NaN (which compares false
    with everything, so a row holding one was kept or chosen by its place; a review; a
    Decimal's NaN raises on comparison instead, a breaker)."""
    if value is None:
        return False
    if isinstance(value, (float, np.floating)):
        return not math.isnan(value)
    return not (isinstance(value, Decimal) and value.is_nan())


def empty_figures() -> dict:
    return {k: None for k in FIGURES}


#: each figure column's type (None aside: a failed point's figures), as row_figures and
#: error_figures write them and JSON reads them back
FIGURE_TYPES = {
    **dict.fromkeys(("cycles", "dma_bytes", "link_bytes", "link_messages", "sram_peak_bytes",
                     "sram_capacity_bytes", "commands", "working_pes"), int),
    **dict.fromkeys(("seconds", "tflops", "peak_tflops", "tflops_fraction", "roofline_fraction",
                     *(f"busy_{u}" for u in BUSY_UNITS), "memory_gbps", "link_gbps",
                     "sram_fraction"), float),
    **dict.fromkeys(("bound", "error", "error_type", "error_pe", "error_where"), str),
    "sram_over": bool,
}
if FIGURE_TYPES.keys() != set(FIGURES):  # (a column added to one table only)
    raise ImportError("kernbench.sweeps.figures: FIGURE_TYPES must name the FIGURES columns")


def is_row(row, columns=FIGURES) -> bool:
    """Whether ``row`` (a cache entry read back) is a row's figures as row_figures and
    error_figures write them: a dict of exactly the ``columns`` (FIGURES'), each None or of
    its type, counts not negative, ``bound`` one of its three; a point's figures all given and
    no error, or an error (its message and type) and no figure. A sweep or tune serves nothing
    else from its cache (reviews: an entry edited to ``"cycles": "zz"``, or to no cycles and no
    error, was served as a row; tune's choice then raised a raw TypeError)."""
    if not (type(row) is dict and row.keys() == set(columns)
            and all(v is None or type(v) is FIGURE_TYPES[k] for k, v in row.items())):
        return False
    if any(type(v) is int and v < 0 for v in row.values()) or row.get("bound") not in _BOUNDS:
        return False
    figures = [k for k in columns if not k.startswith("error")]
    if row["error"] is not None:
        return type(row["error_type"]) is str and all(row[k] is None for k in figures)
    return all(row[k] is not None for k in figures) and all(
        row[k] is None for k in columns if k.startswith("error"))


_BOUNDS = (None, "GEMM", "memory", "none")


def row_figures(result) -> dict:
    """Every figure of a row from a launch's result.

    ``roofline_fraction``: the roofline bound over the cycles taken, the bound being the larger
    of the GEMM time (all FLOPs at the peak of the working PEs) and the memory time (the most
    DMA bytes of one cube over its channel); ``bound`` names which ("none" for a launch with
    neither FLOPs nor DMA bytes). ``busy_*``: mean busy % of
    the unit over the working PEs."""
    s = summarize(result)
    hw = result.hw
    cycles = s["cycles"]
    t = s["totals"]
    n_work = max(1, s["working_pes"])
    gemm_cycles = t["flops"] / (hw.peak_flops_per_cycle_pe * n_work)
    dma = result.unit_counters["work"][:, int(Unit.DMA)].astype(np.int64)
    per_cube = np.bincount(np.arange(len(dma)) // hw.pes_per_cube, weights=dma)
    mem_cycles = float(per_cube.max(initial=0)) / hw.dma.channel_bytes_per_cycle
    bound_cycles = max(gemm_cycles, mem_cycles)
    busy = {u["unit"]: u["busy_pct"]["mean"] for u in s["units"]}
    out = empty_figures()
    out.update({
        "cycles": int(cycles),
        "seconds": float(s["seconds"]),
        "tflops": float(t["achieved_tflops"]),
        "peak_tflops": float(t["peak_tflops"]),
        "tflops_fraction": float(t["tflops_fraction"]),
        "roofline_fraction": float(bound_cycles / cycles) if cycles else 0.0,
        "bound": ("none" if gemm_cycles == mem_cycles == 0  # (neither FLOPs nor DMA bytes)
                  else "GEMM" if gemm_cycles >= mem_cycles else "memory"),
        **{f"busy_{u}": float(busy.get(u, 0.0)) for u in BUSY_UNITS},
        "dma_bytes": int(t["dma_bytes"]),
        "memory_gbps": float(t["memory_gbps"]),
        "link_bytes": int(s["links"]["bytes"]),
        "link_gbps": float(s["links"]["achieved_gbps"]),
        "link_messages": int(s["links"]["messages"]),
        "sram_peak_bytes": int(s["sram"]["peak_bytes"]),
        "sram_capacity_bytes": int(s["sram"]["capacity_bytes"]),
        "sram_fraction": float(s["sram"]["peak_fraction"]),
        "sram_over": bool(s["sram"]["over_capacity"]),
        "commands": int(s["commands"]),
        "working_pes": int(s["working_pes"]),
    })
    return out


def _where(e: BaseException) -> str | None:
    """file:line of the user's innermost line in an error that carries no ``where`` (a setup or
    builder that raised): runtime.executor.user_frame."""
    from ..runtime.executor import user_frame

    site = user_frame(e)
    return f"{site[0]}:{site[1]}" if site else None


def error_figures(e: BaseException, stage: str = "") -> dict:
    """A failed point's figures: the error's message, type, PE (``"PE (p, c)"``, pe_label) and
    ``file:line``; every other figure None."""
    out = empty_figures()
    msg = exc_text(e).strip()
    # (no message: the stage names the type already, "trace raised KeyboardInterrupt")
    out["error"] = (f"{stage}: {msg}" if msg else stage) if stage else (msg or type(e).__name__)
    out["error_type"] = type(e).__name__
    pe = getattr(e, "pe", None)
    out["error_pe"] = pe_label(pe) if isinstance(pe, tuple) and len(pe) == 2 else None
    where = getattr(e, "where", None) if isinstance(e, KernbenchError) else None
    out["error_where"] = where or _where(e)
    if _from_environment(e):
        out[TRANSIENT] = True
    return out


#: a row's mark (not a column: the sweep takes it off) that its error came from the machine
TRANSIENT = "_transient"
#: failures of the machine, not of the code: a KernelError caused by one (a file the kernel reads
#: missing, memory running out) need not happen again
_ENVIRONMENT = (OSError, MemoryError, ImportError,
                KeyboardInterrupt)  # (on a Dask worker: maybe the terminal's Ctrl-C, not the point's)


def _from_environment(e: BaseException) -> bool:
    """Is ``e``, or an exception in its cause chain (``__cause__``, ``__context__``), one of
    :data:`_ENVIRONMENT`?"""
    seen: set = set()
    todo = [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:  # (a chain may loop)
            continue
        seen.add(id(x))
        if isinstance(x, _ENVIRONMENT):
            return True
        todo += [x.__cause__, x.__context__]
    return False


def cacheable(figures: dict) -> bool:
    """A row whose result is determined by its key: no error, or one of kernbench's own errors
    (kernel, deadlock, SRAM, max cycles, hardware config) not caused by the machine. Anything
    else (a setup raising an OSError, memory running out, a KernelError whose cause chain holds
    one: :func:`error_figures` marks it) is computed again next time."""
    t = figures.get("error_type")
    return t is None or (t in _DETERMINISTIC and not figures.get(TRANSIENT))


_DETERMINISTIC = {c.__name__ for c in (KernbenchError, HardwareConfigError)} | {
    "DeadlockError", "MaxCyclesError", "SramCapacityError", "KernelError", "ReplayContractError", "PlacementError",
    "ValueError", "TypeError"}  # a bad grid, an argument the kernel does not take: the code's own


def is_nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)
