"""Helpers shared by the engine tests: write per-PE programs with StreamBuilder, run them, and
look results up by (PE, command number in that PE's stream) instead of global indices.

Nothing here computes an expected cycle count: golden numbers live in the tests, derived by hand
from docs/hardware-model.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernbench._core import simulate
from kernbench.common.pe_commands import Program, StreamBuilder, Unit, VecOp
from kernbench.hw import SfrInstall

__all__ = ["Machine", "Run", "run_machine", "fill", "MAJOR_RESULT_FIELDS", "assert_same_result"]


def fill(sb: StreamBuilder, nbytes: int, n: int = 64) -> int:
    """A tensor of ``nbytes`` produced by one vector fill over ``n`` elements.

    With the default vector unit and n = 64: ceil(64/64) * 1 + 8 = 9 cycles. The output size is
    set apart from n so a test can make a large message cheaply."""
    return sb.vec(VecOp.FILL, n, out_bytes=nbytes)


class Machine:
    """One StreamBuilder per PE, addressed as ``m[pe, cube]`` or ``m[g]`` (global index)."""

    def __init__(self, hw, install: SfrInstall | None = None):
        self.hw = hw
        self.install = install or SfrInstall("pe")
        self.builders: dict[int, StreamBuilder] = {}

    def g(self, key) -> int:
        if isinstance(key, tuple):
            pe, cube = key
            return cube * self.hw.pes_per_cube + pe
        return int(key)

    def __getitem__(self, key) -> StreamBuilder:
        g = self.g(key)
        if g not in self.builders:
            self.builders[g] = StreamBuilder()
        return self.builders[g]

    def mark(self, key) -> int:
        """The local number the next command of this PE will get."""
        return len(self[key].cmds)

    def program(self) -> Program:
        return Program.from_streams(
            [self.builders[g].build() if g in self.builders else None for g in range(self.hw.n_pes)]
        )

    def neighbours(self) -> np.ndarray:
        return self.install.neighbours(self.hw)

    def run(self, **kw) -> "Run":
        prog = self.program()
        res = simulate(self.hw, self.neighbours(), prog, **kw)
        return Run(self, prog, res)


@dataclass
class Run:
    machine: Machine
    program: Program
    res: object  # EngineResult

    def gidx(self, key, local: int) -> int:
        g = self.machine.g(key)
        n = int(self.program.cmd_offsets[g + 1] - self.program.cmd_offsets[g])
        assert 0 <= local < n, f"PE {key} has {n} commands, asked for #{local}"
        return int(self.program.cmd_offsets[g]) + local

    def start(self, key, local: int) -> int:
        return int(self.res.cmd_start[self.gidx(key, local)])

    def end(self, key, local: int) -> int:
        return int(self.res.cmd_end[self.gidx(key, local)])

    def unit(self, key, unit: Unit) -> dict:
        row = self.res.unit_counters[self.machine.g(key), int(unit)]
        return {name: int(row[name]) for name in row.dtype.names}

    def link(self, key, port: int) -> dict:
        row = self.res.link_counters[self.machine.g(key) * 4 + int(port)]
        return {name: int(row[name]) for name in row.dtype.names}

    def peak(self, key) -> int:
        return int(self.res.peak_sram[self.machine.g(key)])


def run_machine(m: Machine, **kw) -> Run:
    return m.run(**kw)


#: Everything the engine reports that must not depend on the detail level or on the run.
MAJOR_RESULT_FIELDS = (
    "cycles", "cmd_start", "cmd_end", "unit_counters", "link_counters", "peak_sram", "sram_over",
    "completion_order", "work",
)


def assert_same_result(a, b, fields=MAJOR_RESULT_FIELDS) -> None:
    """Field by field equality of two EngineResults, naming the first field that differs."""
    for f in fields:
        x, y = getattr(a, f), getattr(b, f)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f"{f}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
            if x.dtype.names:
                for name in x.dtype.names:
                    np.testing.assert_array_equal(x[name], y[name], err_msg=f"{f}.{name} differs")
            else:
                np.testing.assert_array_equal(x, y, err_msg=f"{f} differs")
        else:
            assert x == y, f"{f} differs: {x!r} vs {y!r}"
