"""Helpers shared by the engine tests: write per-PE programs with StreamBuilder, run them, and
look results up by (PE, command number in that PE's stream) instead of global indices.

Nothing here computes an expected cycle count: golden numbers live in the tests, derived by hand
from docs/hardware-model.md.
"""
from __future__ import annotations

import _thread
import functools
import gc
import operator
import signal
import traceback
from dataclasses import dataclass

import numpy as np
import pytest

from kernbench._core import simulate
from kernbench.common.pe_commands import Program, StreamBuilder, Unit, VecOp
from kernbench.hw import SfrInstall

__all__ = ["Machine", "Run", "fill", "MAJOR_RESULT_FIELDS", "assert_same_result",
           "random_hw", "random_machine", "HW_RANGES", "call_interrupted", "pass_result"]


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


# -- random launches (hypothesis) -----------------------------------------------------------------
from hypothesis import strategies as st  # noqa: E402

from kernbench.common.pe_commands import OPPOSITE  # noqa: E402

#: Hardware fields the random launches vary, with the range each is drawn from.
HW_RANGES = {
    "link.rx_queue_packets": (1, 6),
    "link.packet_bytes": (32, 512),
    "link.bytes_per_cycle": (4, 64),
    "link.hop_latency_cycles": (1, 60),
    "dma.burst_bytes": (64, 1024),
    "dma.channel_bytes_per_cycle": (16, 512),
    "dma.latency_cycles": (1, 200),
    "gemm.rows": (2, 32),
    "gemm.cols": (2, 32),
    "sram.bytes_per_cycle": (4, 256),
    "vector.lanes": (1, 64),
    "vector.pipeline_latency": (1, 10),
}


@st.composite
def random_hw(draw, max_cubes=3, max_pes_per_cube=4):
    """The default preset with a random small mesh and random link/DMA/GEMM/vector parameters."""
    from kernbench.hw import load_hw

    over = {"n_cubes": draw(st.integers(1, max_cubes)),
            "pes_per_cube": draw(st.integers(1, max_pes_per_cube))}
    for key, (lo, hi) in HW_RANGES.items():
        if draw(st.booleans()):
            over[key] = draw(st.integers(lo, hi))
    return load_hw().with_overrides(over)


@st.composite
def random_machine(draw, max_cubes=3, max_pes_per_cube=4, max_local=6, max_messages=3,
                   max_message_bytes=3000, forward=True):
    """A Machine with random valid per-PE streams: local work (load, store, dot, vec, reduce) and,
    on every wired link, 0..max_messages matched send/recv pairs whose k-th send meets the k-th
    recv. Sends may forward received tensors and recvs may wait (after=) on any earlier tensor,
    so some launches deadlock (forward=False keeps sends on locally made tensors only)."""
    hw = draw(random_hw(max_cubes, max_pes_per_cube))
    install = SfrInstall(draw(st.sampled_from(["pe", "cube"])), draw(st.booleans()))
    m = Machine(hw, install)
    nbr = m.neighbours()
    items = {g: [] for g in range(hw.n_pes)}  # g -> [(key, kind, payload)]
    for g in range(hw.n_pes):
        for _ in range(draw(st.integers(0, max_local))):
            items[g].append((draw(st.integers(0, 100)), draw(st.sampled_from(
                ["load", "store", "dot", "vec", "reduce"])), None))
    for g in range(hw.n_pes):
        for port in range(4):
            other = int(nbr[g, port])
            if other < 0:
                continue
            k = draw(st.integers(0, max_messages))
            if k == 0:
                continue
            big = hw.link.packet_bytes * (hw.link.rx_queue_packets + 2)
            # long enough for train detail's steady-state jump (over 3Q packets), ragged tail
            long = hw.link.packet_bytes * (draw(st.integers(3, 9)) * hw.link.rx_queue_packets + 2) \
                - draw(st.integers(0, hw.link.packet_bytes - 1))
            sizes = [draw(st.one_of(st.integers(1, max_message_bytes), st.just(big), st.just(long)))
                     for _ in range(k)]
            skeys = sorted(draw(st.integers(0, 100)) for _ in range(k))
            rkeys = sorted(draw(st.integers(0, 100)) for _ in range(k))
            for j in range(k):
                items[g].append((skeys[j], "send", (port, sizes[j])))
                items[other].append((rkeys[j], "recv", (int(OPPOSITE[port]), sizes[j])))
    for g in range(hw.n_pes):
        if not items[g]:
            continue
        s = m[g]
        anyt: list[int] = []  # every tensor of this PE so far
        tainted: set[int] = set()  # tensors downstream of a recv

        def pick(local_only, s=s, anyt=anyt, tainted=tainted):
            pool = [t for t in anyt if t not in tainted] if local_only else anyt
            if not pool or draw(st.integers(0, 4)) == 0:
                t = s.vec(VecOp.FILL, draw(st.integers(1, 300)), out_bytes=draw(st.integers(0, 5000)))
                anyt.append(t)
                return t
            return pool[draw(st.integers(0, len(pool) - 1))]

        def made(t, srcs, s=s, anyt=anyt, tainted=tainted):
            anyt.append(t)
            if any(x in tainted for x in srcs):
                tainted.add(t)

        for _key, kind, payload in sorted(items[g], key=lambda it: it[0]):
            if kind == "load":
                after = pick(False) if draw(st.integers(0, 3)) == 0 else -1
                t = s.load(draw(st.integers(1, 6000)), after=after, pinned=draw(st.integers(0, 5)) == 0)
                made(t, [after])
            elif kind == "store":
                s.store(pick(False), draw(st.integers(1, 6000)))
            elif kind == "dot":
                a, b = pick(False), pick(False)
                t = s.dot(a, b, draw(st.integers(1, 80)), draw(st.integers(1, 80)),
                          draw(st.integers(1, 300)), esize=draw(st.sampled_from([1, 2, 4])))
                made(t, [a, b])
            elif kind == "vec":
                srcs = [pick(False) for _ in range(draw(st.integers(0, 3)))]
                t = s.vec(draw(st.sampled_from(list(VecOp))), draw(st.integers(1, 2000)), *srcs)
                made(t, srcs)
            elif kind == "reduce":
                src = pick(False)
                t = s.reduce(draw(st.sampled_from(list(VecOp))), src, draw(st.integers(1, 5)),
                             draw(st.integers(1, 130)), draw(st.integers(1, 3)) if draw(st.booleans()) else 1)
                made(t, [src])
            elif kind == "send":
                port, nbytes = payload
                s.send(port, pick(not forward), nbytes)
            else:  # recv
                port, nbytes = payload
                after = pick(not forward) if draw(st.integers(0, 2)) == 0 else -1
                t = s.recv(port, nbytes, after=after)
                anyt.append(t)
                tainted.add(t)
    return m


def call_interrupted(fn, *args) -> KeyboardInterrupt:
    """``fn(*args)`` with SIGINT already pending as it starts: it must raise KeyboardInterrupt
    from the signal poll of its C pass (_types.pxd). ``_thread.interrupt_main`` trips the
    signal and ``map`` calls ``fn`` right after, from C, with no Python bytecode between (where
    Python would run the handler first), so the pass's first check sees it; ``fn`` must run no
    Python code before it either (kernbench._core.pages.empty, which the passes call to
    allocate their outputs, is Python: replace it with numpy.empty). Returns the exception; a
    signal still pending after the call is dropped."""
    armed = True

    def handler(signum, frame):
        if armed:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    # no garbage collection meanwhile either: a collection runs gc.callbacks (hypothesis
    # registers one), Python code that would take the signal before the pass does (seen in CI)
    gc_on = gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            list(map(operator.call, (_thread.interrupt_main, functools.partial(fn, *args))))
    finally:
        armed = False
        if gc_on:
            gc.enable()
        signal.signal(signal.SIGINT, old)  # runs a pending handler (disarmed) first
    tb = "".join(traceback.format_tb(info.value.__traceback__))
    assert "_check_signals" in tb, tb  # raised by the pass's poll, not by Python code around it
    return info.value


def _flat(x):
    if isinstance(x, np.ndarray):
        return [x.dtype.str, x.shape, x.tobytes()]
    if isinstance(x, (tuple, list)):
        return [_flat(y) for y in x]
    return x


def pass_result(fn, args) -> list:
    """What ``fn(*args)`` returns and every array among ``args`` after it (those it writes), as
    bytes: equal for two runs that give the same results bit for bit."""
    return _flat([fn(*args), [a for a in args if isinstance(a, np.ndarray)]])
