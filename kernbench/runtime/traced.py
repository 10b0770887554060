"""A traced launch: the program a kernel emitted, ready to be timed on any hardware of its shape.

``ctx.launch`` is :meth:`Context.trace` followed by :meth:`TracedLaunch.time` (and, in functional
mode, replay). The command stream depends on the kernel, its arguments, the grid, the SFR
install and the hardware's shape (cubes, PEs per cube), never on timing parameters (bandwidths,
latencies, op costs, GEMM array size, SRAM size): one trace can be timed under many hardware
variants of the same shape, and each timing equals a fresh launch on that hardware
(docs/sweeps.md, "Trace once, time many"; design.md).

A TracedLaunch pickles (a sweep ships it to its workers once): the program's arrays, the
neighbour table and the site keys that name commands in errors and reports.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .._core import simulate
from ..common.errors import file_line
from ..common.pe_commands import Program
from ..hw.config import HardwareConfig, load_hw
from ..hw.sfr import SfrInstall
from ..language.sites import SiteTable, array_of
from .result import LaunchResult, check_command

__all__ = ["TracedLaunch"]


@dataclass(repr=False)
class TracedLaunch:
    """What tracing a launch produced (see the module docstring)."""

    program: Program
    sites: np.ndarray  #: per global command, its site's index in ``table``
    table: SiteTable
    neighbours: np.ndarray  #: (n_pes, 4) SFR neighbour table the launch was traced with
    sfr: SfrInstall | None
    grid: tuple
    mode: str
    shape: tuple  #: (n_cubes, pes_per_cube) of the hardware it was traced on
    kernel_name: str
    kernel_file: str
    args: dict  #: launch arguments by parameter name (memory.arg_repr), as LaunchResult.args
    #: the engine's tables of the checked program, made by the first time() and reused by the
    #: next ones (simulate's ``prepared``; not pickled: a worker makes its own once)
    _prepared: dict = field(default_factory=dict, repr=False, compare=False)
    #: of the program's traced rows (``program.compact.bounds``, or all its commands without
    #: tilings), those tl.range replay wrote without running the kernel's Python (a body
    #: whose shapes move: kernbench.language.loops), on the PEs traced in this launch
    replayed_rows: int = 0
    #: each tl.range loop of the kernel: its runs, iterations and how many replay emitted, or
    #: why it replayed none (kernbench.language.loops.LoopReplay; timing mode with replay on)
    loops: tuple = ()

    def __repr__(self) -> str:
        # a line, not the dataclass's arrays (LaunchResult's likewise)
        n = self.program.n_commands
        return (f"<TracedLaunch {self.kernel_name} ({os.path.basename(self.kernel_file)}), grid "
                f"{tuple(self.grid)}, {self.mode}: {n:,} command{'' if n == 1 else 's'}>")

    # -- naming commands ----------------------------------------------------------------------
    def label(self, i: int) -> str:
        """Command ``i``'s label; IndexError as LaunchResult.label's."""
        check_command(i, self.program.n_commands, "label")
        return self.table.label(int(self.sites[i]))

    def source(self, i: int) -> str:
        """file:line of command ``i``; IndexError as LaunchResult.source's."""
        check_command(i, self.program.n_commands, "source")
        return self.table.source(int(self.sites[i]))

    def array_of(self, i: int):
        """The device array command ``i`` loads from or stores to (its name), None for another
        command: reports and the deadlock's fixes tell a spill read back from other traffic."""
        check_command(i, self.program.n_commands, "array_of")
        return array_of(self.table.keys[int(self.sites[i])])

    def describe(self, i: int) -> str:
        check_command(i, self.program.n_commands, "describe")
        k = self.table.keys[int(self.sites[i])]
        return f"{self.table.label(int(self.sites[i]))} ({file_line(k[1], k[2])})"

    # -- timing -------------------------------------------------------------------------------
    def time(self, hw: HardwareConfig, *, detail: str = "train", max_cycles: int | None = None,
             record_events: bool = False, strict_sram: bool = False, steady: bool = True) -> LaunchResult:
        """Simulate the program on ``hw`` (any config with the traced shape) and return the
        LaunchResult a fresh ``ctx.launch`` on ``hw`` would (without functional replay: no
        numbers are written). ``hw``: a HardwareConfig or a preset's name (kernbench.hw.load_hw).
        ``steady``: see Context.launch. Raises as the launch would: SramCapacityError, DeadlockError,
        MaxCyclesError; ValueError for a hardware of another shape."""
        if isinstance(hw, str):
            hw = load_hw(hw)
        if not isinstance(hw, HardwareConfig):
            raise ValueError(f"hw must be a HardwareConfig or a preset's name, got {type(hw).__name__}")
        if (hw.n_cubes, hw.pes_per_cube) != tuple(self.shape):
            raise ValueError(
                f"this launch was traced on {self.shape[0]} cubes x {self.shape[1]} PEs; hardware "
                f"'{hw.label}' has {hw.n_cubes} x {hw.pes_per_cube}: the trace depends on the "
                f"machine's shape, trace again on it")
        engine = simulate(hw, self.neighbours, self.program, detail=detail, max_cycles=max_cycles,
                          record_events=record_events, strict_sram=strict_sram,
                          describe=self.describe, source=self.source, prepared=self._prepared,
                          steady=steady)
        return LaunchResult(hw=hw, sfr=self.sfr, grid=self.grid, mode=self.mode,
                            kernel_name=self.kernel_name, kernel_file=self.kernel_file,
                            args=dict(self.args), program=self.program, engine=engine,
                            labels=self.label, sources=self.source, name_keys=self.sites,
                            loops=self.loops, arrays=self.array_of)

    def release(self) -> None:
        """Drop what a next :meth:`time` would reuse: the engine's tables (~30 bytes per
        command) and, when tl.range replay can rebuild it, the command array
        (Program.release_commands). A launch does this after its one timing."""
        self._prepared.clear()
        self.program.release_commands()

    # -- pickling: the site table's keys only (its plans hold code objects) -------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["table"] = list(self.table.keys)
        del state["_prepared"]
        return state

    #: TracedLaunches unpickled in this process (a sweep checks each reaches a worker once)
    unpickled = 0

    def __setstate__(self, state: dict) -> None:
        TracedLaunch.unpickled += 1
        keys = state.pop("table")
        table = SiteTable()
        for k in keys:
            table.index[k] = len(table.keys)
            table.keys.append(k)
        state["table"] = table
        state["_prepared"] = {}  # (a pickle of an older kernbench has no such field)
        self.__dict__.update(state)
