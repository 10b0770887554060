"""LaunchResult: what ``ctx.launch`` returns, and what reports, traces and plots consume.

It keeps the engine's raw arrays (``engine``), the traced program (``program``), and enough
metadata to name every command in the kernel's own words (``label``, ``source``).
Figures are derived here once, so the report table, the JSON and the diag harness agree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ..common.errors import is_whole, pe_label, short_repr
from ..common.pe_commands import N_UNITS, UNIT_NAMES, Program, Unit
from ..common.totals import exact_total
from ..hw.config import HardwareConfig
from ..hw.sfr import SfrInstall

__all__ = ["LaunchResult", "UNIT_KINDS", "register_views"]

#: Unit name -> its unit indices, in the order reports list units (every unit: the N/S link
#: units too, which reports show when a command used them)
UNIT_KINDS = {u.name: (u,) for u in Unit}


def check_result(x, who: str) -> None:
    """Raise TypeError, naming ``who`` (a report's function), unless ``x`` is a LaunchResult
    (ctx.launch's, or from_json's): a review found None an AttributeError deep inside."""
    if not isinstance(x, LaunchResult):
        raise TypeError(f"{who}: expected a LaunchResult (ctx.launch's result, or "
                        f"kernbench.report.from_json's), got {type(x).__name__} {short_repr(x)}")


def check_command(i, n: int, who: str) -> None:
    """Raise IndexError, naming ``who`` and the launch's ``n`` commands, unless ``i`` is a command
    number 0..n-1 (a launch's and a traced launch's commands alike: a review found a traced one's
    -1 read as the last, 5 numpy's IndexError)."""
    if not is_whole(i) or not 0 <= i < n:
        raise IndexError(f"{who}: command {short_repr(i)} is not one of this launch's {n} commands (0..{n - 1})"
                         + _not_a_number(i))


def _not_a_number(i) -> str:
    # (a float or a bool given as a command number: said, not just "out of range")
    return "" if is_whole(i) else f": a command number is an int, not a {type(i).__name__}"


@dataclass(repr=False)
class LaunchResult:
    hw: HardwareConfig
    sfr: Optional[SfrInstall]
    grid: tuple  #: (PEs per cube used, cubes used)
    mode: str  #: "functional" or "timing"
    kernel_name: str
    kernel_file: str
    args: dict  #: launch arguments by parameter name (memory.arg_repr: arrays as {shape, dtype, ...})
    program: Program  #: every PE's traced commands
    engine: Any  #: kernbench._core.EngineResult
    labels: Optional[Callable[[int], str]] = None  #: global cmd -> "dot (64,128)x(128,64) f16"
    sources: Optional[Callable[[int], str]] = None  #: global cmd -> "path/kernel.py:12" (its call site)
    #: per global command, its kernel site's index: commands with one key have the same label,
    #: source and command fields (opcode, unit, sizes), so a report can format each site once
    name_keys: Optional[np.ndarray] = None
    extra: dict = field(default_factory=dict)  #: anything a caller attaches (diag figures, ...)
    #: functional mode: loads that read device memory nothing had written (docs/language.md,
    #: "Launch context and device memory"): dicts with pe, where, array, element
    unwritten_reads: list = field(default_factory=list)
    #: functional mode: parameter names of the device-array arguments the launch stored to, in
    #: the kernel's parameter order (its outputs; what ``kernbench run --save`` writes)
    written_args: tuple = ()
    #: functional mode with ``drift=``: the f64 shadow's findings (kernbench.runtime.drift)
    drift: Any = None
    #: timing mode, replay on or verify: what tl.range replay did with each loop, and why a
    #: run replayed none (kernbench.language.loops.LoopReplay, as ``ctx.trace(...).loops``)
    loops: tuple = ()
    #: global cmd -> the name of the device array a load or store command reads or writes, None
    #: for another command (the critical path keeps a store's order with a load or store of its
    #: own array: a spill read back); None: not known, every load and store counts as one array
    arrays: Optional[Callable[[int], Optional[str]]] = None

    # -- naming ------------------------------------------------------------------------------
    def pe_coords(self, g: int) -> tuple:
        """Global PE index -> (pe, cube)."""
        return self.hw.pe_coords(g)

    def pe_name(self, g: int) -> str:
        """Global PE index -> "PE (p, c)" (kernbench.common.errors.pe_label)."""
        return pe_label(self.hw.pe_coords(g))

    def label(self, i: int) -> str:
        """Command ``i``'s label (the kernel's words: the tl call and shapes). Raises IndexError
        naming the launch's command count for an ``i`` outside it."""
        check_command(i, self.program.n_commands, "label")
        if self.labels is not None:
            return self.labels(i)
        from .._core.api import _default_describe

        return _default_describe(self.program)(i)

    def source(self, i: int) -> str:
        """file:line of the tl call that emitted command ``i`` (a helper's file when the kernel
        called one). Raises IndexError as :meth:`label` does."""
        check_command(i, self.program.n_commands, "source")
        if self.sources is not None:
            return self.sources(i)
        return f"{self.kernel_file}:{int(self.program.take([i])[0]['line'])}"

    # -- figures -----------------------------------------------------------------------------
    @property
    def cycles(self) -> int:
        return int(self.engine.cycles)

    @property
    def seconds(self) -> float:
        return self.hw.seconds(self.cycles)

    @property
    def unit_counters(self) -> np.ndarray:
        return self.engine.unit_counters

    @property
    def link_counters(self) -> np.ndarray:
        return self.engine.link_counters

    @property
    def peak_sram(self) -> np.ndarray:
        return self.engine.peak_sram

    @property
    def events(self) -> Optional[np.ndarray]:
        """The engine's event record (EVENT_DTYPE), when launched with ``record_events=True``."""
        return self.engine.events

    @property
    def working_pes(self) -> np.ndarray:
        """Global indices of PEs that ran at least one command (silent PEs excluded)."""
        return np.flatnonzero(np.diff(self.program.cmd_offsets) > 0)

    @property
    def flops(self) -> int:
        return exact_total(self.unit_counters["work"][:, Unit.GEMM])

    @property
    def achieved_tflops(self) -> float:
        return self.flops / self.seconds / 1e12 if self.cycles else 0.0

    @property
    def peak_tflops(self) -> float:
        """GEMM peak of the working PEs."""
        return self.hw.peak_tflops(len(self.working_pes))  # (no working PE: 0)

    def utilization(self, unit: "int | str") -> np.ndarray:
        """Busy fraction of ``unit`` on each working PE (in the order of ``working_pes``).
        ``unit`` is a name ("DMA", "tx_e") or a :class:`Unit` / its index."""
        u = _unit_index(unit)
        if not self.cycles:
            return np.zeros(len(self.working_pes))
        return self.unit_counters["busy"][self.working_pes, u] / self.cycles

    @property
    def link_bytes(self) -> int:
        return exact_total(self.link_counters["bytes"])

    def unit_names(self) -> tuple:
        return UNIT_NAMES[:N_UNITS]

    # -- views (kernbench.report) ----------------------------------------------------------------
    # The views live in kernbench.report, a layer above the runtime: it registers them here when
    # imported (``import kernbench`` imports it), so the runtime never imports its consumers.
    def report(self, **kw):
        """Print the utilization table; see kernbench.report.table.print_report."""
        return _view("report")(self, **kw)

    def to_json(self, path=None, **kw):
        """Every counter as JSON; see kernbench.report.export.to_json."""
        return _view("to_json")(self, path, **kw)

    def write_json(self, path):
        """Write to_json's document to ``path`` a chunk at a time (for long launches); returns
        the bytes written. See kernbench.report.export.write_json."""
        return _view("write_json")(self, path)

    def to_perfetto(self, path, **kw):
        """A Chrome trace-event JSON for ui.perfetto.dev; see kernbench.report.perfetto."""
        return _view("to_perfetto")(self, path, **kw)

    def plot(self, path=None, **kw):
        """A PNG heatmap and timeline at ``path``; without a path, the matplotlib figure (shown
        inline in Jupyter). See kernbench.report.plots.plot."""
        return _view("plot")(self, path, **kw)

    def profile(self, **kw):
        """Print the per-line profile (busy, stalls, commands and critical-path share per kernel
        line) and return its text; see kernbench.report.profile.print_profile."""
        return _view("profile")(self, **kw)

    def critical_path(self):
        """The chain of commands that sets the launch's last cycle; see
        kernbench.report.critical_path."""
        return _view("critical_path")(self)

    def drift_report(self, **kw):
        """Print how far each kernel line's results drift from the f64 shadow (a launch made with
        ``drift=``) and return its text; see kernbench.report.drift."""
        return _view("drift_report")(self, **kw)

    def __repr__(self) -> str:
        # a line, not the dataclass's every array: printing a result of millions of commands
        # should say what it is (the figures: report(), profile(), the fields)
        n = self.program.n_commands
        return (f"<LaunchResult {self.kernel_name} ({os.path.basename(self.kernel_file)}) on "
                f"{short_repr(self.hw.name)}, grid {tuple(self.grid)}, {self.mode}: {self.cycles:,} cycles, "
                f"{n:,} command{'' if n == 1 else 's'}>")

    def _repr_html_(self) -> str:
        """The utilization table as HTML, for Jupyter."""
        return _view("repr_html")(self)


def _unit_index(unit) -> int:
    """A unit given by name (any case) or index -> its index; anything else names the choices."""
    if isinstance(unit, str):
        try:
            return int(Unit[unit.strip().upper()])
        except KeyError:
            pass
    elif is_whole(unit):
        if 0 <= unit < N_UNITS:
            return int(unit)
    raise ValueError(f"unknown unit {short_repr(unit)}: expected one of {', '.join(UNIT_NAMES[:N_UNITS])} "
                     f"(or its index 0..{N_UNITS - 1})")


#: LaunchResult method name -> the function (result, ...) that makes that view.
_VIEWS: dict = {}
#: the views kernbench.report provides (``repr_html`` is ``_repr_html_``)
VIEW_NAMES = ("report", "to_json", "write_json", "to_perfetto", "plot", "profile", "critical_path", "drift_report",
              "repr_html")


def register_views(**views: Callable) -> None:
    """Called by kernbench.report: ``register_views(report=print_report, to_json=..., ...)``."""
    unknown = set(views) - set(VIEW_NAMES)
    if unknown:
        raise ValueError(f"unknown LaunchResult view(s) {sorted(unknown)}: expected "
                         f"{', '.join(VIEW_NAMES)}")
    _VIEWS.update(views)


def _view(name: str) -> Callable:
    try:
        return _VIEWS[name]
    except KeyError:
        raise RuntimeError(f"LaunchResult.{name} is provided by kernbench.report, which is not "
                           f"imported: import kernbench.report (import kernbench does)") from None
