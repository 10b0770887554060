"""The launch Context: a machine (hardware config + SFR install), its device memory, and launch.

    ctx = kernbench.Context(hw="default")
    ctx.install_sfr(scope="pe", ring=True)
    x = ctx.shard(a, axis=0)                # each PE of a cube gets a slice of rows
    o = ctx.empty_like(x)
    r = ctx.launch(kernel, (8, 1), x, o, n)  # kernel(x_ptr, o_ptr, n, *, tl)
    out = ctx.gather(o)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..common.pe_commands import N_PORTS
from ..hw.config import HardwareConfig, load_hw
from ..hw.sfr import SfrInstall
from . import executor
from .memory import DeviceArray, DeviceMemory
from .result import LaunchResult
from .traced import TracedLaunch
from ..common.errors import short_repr

__all__ = ["Context"]


def _kernel_kwargs(kernel_kwargs, more: dict) -> dict:
    """The kernel's keyword arguments: ``kernel_kwargs`` (a mapping of str names) and the launch's
    other keywords; a name in both, or one not a str, is a TypeError."""
    if kernel_kwargs is not None and not isinstance(kernel_kwargs, Mapping):
        raise TypeError(f"kernel_kwargs must be a dict of the kernel's keyword arguments, got "
                        f"{type(kernel_kwargs).__name__} {short_repr(kernel_kwargs)}")
    kw = dict(kernel_kwargs or {})
    for k in kw:
        if not isinstance(k, str):
            raise TypeError(f"kernel_kwargs: a kernel parameter is named by a str, got {short_repr(k)}")
    for k in more.keys() & kw.keys():
        raise TypeError(f"kernel argument {short_repr(k)} given both in kernel_kwargs and as a keyword")
    kw.update(more)
    return kw


class Context:
    """One simulated machine: hardware, SFR wiring, device memory; launches kernels on it.

    ``hw`` is a preset name ("default", "mesh8", "mesh64"), a TOML path, a dict or a
    HardwareConfig; ``overrides`` replaces keys by dotted path (``{"link.bytes_per_cycle": 64}``).

    Every placement call (shard, replicate, put, empty, empty_like) takes ``name=``: the
    allocation's name in error messages, command labels ("load (64,) f16 from x") and
    LaunchResult.args (default "a0", "a1", ... in allocation order)."""

    def __init__(self, hw: "str | Path | HardwareConfig | Mapping" = "default",
                 overrides: Mapping[str, Any] | None = None, unwritten: str = "nan"):
        self._hw: HardwareConfig = load_hw(hw, overrides)
        self.sfr: SfrInstall | None = None
        #: ``unwritten="nan"``: device memory nothing has written holds NaN (int32: -2**31), so a
        #: kernel reading it by mistake shows; "zero": zeros
        self.memory = DeviceMemory(self.hw, unwritten)
        self._nbr = np.full((self.hw.n_pes, N_PORTS), -1, np.int32)

    @property
    def hw(self) -> HardwareConfig:
        """The machine's hardware. Another config of the same shape (cubes x PEs) may be set
        (timing keys: bandwidths, latencies, ...); a config of another shape raises ValueError
        (the memory and the SFR wiring are laid out for this one: make a new Context)."""
        return self._hw

    @hw.setter
    def hw(self, hw: HardwareConfig) -> None:
        if not isinstance(hw, HardwareConfig):
            raise ValueError(f"Context.hw must be a HardwareConfig, got {type(hw).__name__} (a "
                             f"preset's name or a dict: kernbench.hw.load_hw)")
        if (hw.n_cubes, hw.pes_per_cube) != (self._hw.n_cubes, self._hw.pes_per_cube):
            raise ValueError(f"this Context's memory and SFR wiring are laid out for "
                             f"{self._hw.n_cubes} cubes x {self._hw.pes_per_cube} PEs, not "
                             f"{hw.n_cubes} x {hw.pes_per_cube} ('{hw.label}'): make a new Context")
        self._hw = hw

    def __repr__(self) -> str:
        sfr = self.sfr.describe() if self.sfr else "no SFR installed"
        return f"Context(hw={short_repr(self.hw.name)}, {self.hw.n_cubes} cubes x {self.hw.pes_per_cube} PEs, {sfr})"

    # -- wiring ---------------------------------------------------------------------------
    def install_sfr(self, scope: str = "pe", ring: bool = False) -> SfrInstall:
        """Wire the link ports: scope "pe" links the PEs of each cube in a line, scope "cube"
        links PE 0 of each cube; ``ring`` closes the line. Scope "two_level" does both, the PEs
        of each cube on E/W (open lines) and PE 0 of every cube on N/S (``ring`` closes that
        line). Replaces any earlier install."""
        self.sfr = SfrInstall(scope, ring)
        self._nbr = self.sfr.neighbours(self.hw)
        return self.sfr

    def neighbours(self) -> np.ndarray:
        """(n_pes, 4) neighbour table of the installed SFR (-1 = no link); all -1 before one."""
        return self._nbr

    # -- device memory ------------------------------------------------------------------------
    def shard(self, x, axis: int = 0, over: str = "pe", parts: int | None = None, dtype=None,
              name: str | None = None) -> DeviceArray:
        """Split ``x`` into ``parts`` equal slices along ``axis``: over "pe" slice i goes to PE i
        of every cube (parts defaults to PEs per cube), over "cube" slice c to every PE of cube
        c (parts = cubes), over "all" slice g to global PE g. ``x``: anything numpy converts
        (a CPU torch tensor too); ``dtype`` defaults to x's (float64/ints become f32); ``name``
        names the allocation (see the class docstring)."""
        return self.memory.shard(x, axis, over, parts, dtype, name)

    def replicate(self, x, dtype=None, name: str | None = None) -> DeviceArray:
        """Every PE gets all of ``x``."""
        return self.memory.replicate(x, dtype, name)

    def put(self, x, pe, dtype=None, name: str | None = None) -> DeviceArray:
        """PE ``pe`` = (pe, cube) gets ``x``; the others hold zeros at the same address."""
        return self.memory.put(x, pe, dtype, name)

    def empty(self, shape, dtype, name: str | None = None) -> DeviceArray:
        """Reserve ``shape``/``dtype`` per PE with no data (read before a store it holds NaN,
        int32 -2**31, or zeros with ``Context(unwritten="zero")``: docs/language.md): outputs,
        and every input of a timing-mode launch, which needs shapes only."""
        return self.memory.allocate(shape, dtype, name)

    def empty_like(self, like: DeviceArray, dtype=None, name: str | None = None) -> DeviceArray:
        """An empty allocation with ``like``'s per-PE shape and placement (so gather works)."""
        return self.memory.empty_like(like, dtype, name)

    def free(self, arr: DeviceArray) -> None:
        """Release ``arr``."""
        self.memory.free(arr)

    def read(self, arr: DeviceArray, pe) -> np.ndarray:
        """A copy of PE ``pe``'s contents of ``arr`` ((pe, cube) or a global index)."""
        return self.memory.read(arr, pe)

    def read_all(self, arr: DeviceArray) -> np.ndarray:
        """Every PE's contents: shape (n_cubes, pes_per_cube, *arr.shape)."""
        return self.memory.read_all(arr)

    def gather(self, arr: DeviceArray, **kw) -> np.ndarray:
        """The slices of ``arr`` put back together (inverse of shard; see DeviceMemory.gather)."""
        return self.memory.gather(arr, **kw)

    # -- launch -------------------------------------------------------------------------------
    def launch(self, kernel: Callable, grid, *args, mode: str = "functional", detail: str = "train",
               max_cycles: int | None = None, record_events: bool = False,
               strict_sram: bool = False, kernel_kwargs: Mapping[str, Any] | None = None,
               drift: "bool | float" = False, replay: str | None = None, steady: bool = True,
               **more_kernel_kwargs) -> LaunchResult:
        """Run ``kernel`` on every program of ``grid`` = (PEs per cube used, cubes used).

        ``args`` go to the kernel positionally (device arrays as their int address), then
        ``tl=`` and the keyword arguments: ``kernel_kwargs`` (a dict, for a kernel parameter
        named like a launch option, e.g. ``mode``) and any other keyword. ``mode="functional"`` computes the numbers and writes
        stores to device memory; ``"timing"`` carries shapes only and gives the same cycles.
        ``detail``, ``max_cycles``, ``record_events``, ``strict_sram`` go to the engine, and
        ``steady``: let the engine jump over tl.range iterations that repeat the machine's state
        exactly (train detail; the same results as ``steady=False``: docs/hardware-model.md,
        "Steady state").
        ``drift`` (functional mode): also replay every command in float64 and record how far each
        result drifts from it, and the first command out of tolerance (True: 1e-3, or a
        tolerance); the result's ``drift`` holds it (kernbench.runtime.drift, docs/reports.md).
        ``replay``: tl.range loops in timing mode, ``"on"`` (replay the iterations between the
        traced ones), ``"off"`` (trace every iteration) or ``"verify"`` (trace each PE in full and
        with replay, check they agree); None: the environment variable KERNBENCH_REPLAY, else
        "on" (docs/language.md, 'tl.range').
        Returns a LaunchResult (cycles, seconds, counters, peak SRAM, events on request).

        Raises (kernbench.common.errors; docs/reliability.md): KernelError for a kernel's error
        or a bad tl call, naming the PE and kernel line (``e.pe``, ``e.where``); DeadlockError
        when commands wait on each other (the blocked PEs and lines); MaxCyclesError past
        ``max_cycles``; SramCapacityError when ``strict_sram`` and a PE's live SRAM passes its
        capacity; CounterOverflowError when a PE's work (GEMM flops, elements, bytes) passes
        what an int64 counts; PlacementError for an argument device memory cannot place; ValueError or
        TypeError for a bad grid or option; KeyboardInterrupt when interrupted (the Context
        stays usable); EngineInvariantError only from the debug build's engine checks."""
        kw = _kernel_kwargs(kernel_kwargs, more_kernel_kwargs)
        return executor.launch(self, kernel, grid, args, kw, mode=mode, detail=detail,
                               max_cycles=max_cycles, record_events=record_events, drift=drift,
                               strict_sram=strict_sram, replay=replay, steady=steady)

    def trace(self, kernel: Callable, grid, *args, mode: str = "timing",
              kernel_kwargs: Mapping[str, Any] | None = None, replay: str | None = None,
              **more_kernel_kwargs) -> "TracedLaunch":
        """Trace ``kernel`` as :meth:`launch` would, without timing it: a
        :class:`~kernbench.runtime.traced.TracedLaunch` whose ``time(hw)`` simulates it on any
        hardware of this Context's shape (cubes, PEs per cube) and equals a fresh launch there
        (docs/sweeps.md, "Trace once, time many"). No replay: ``mode="functional"`` only traces
        with values (the same commands, so the same cycles). The launch's checks run here, once
        (every command; every send paired with the recv that drains its link, of its shape and
        dtype): a kernel error or links that do not pair raise here as :meth:`launch` raises them,
        and the engine's tables built on the way are kept for the first ``time()``. It computes no
        values: reading back a copy of an argument nothing has written warns, as after a
        timing-mode launch."""
        kw = _kernel_kwargs(kernel_kwargs, more_kernel_kwargs)
        # (no values computed, whatever its mode: a read of a copy nothing wrote says so, as after
        # a timing-mode launch, which is this trace timed)
        return executor.trace_launch(self, kernel, grid, args, kw, mode=mode, replay=replay,
                                     values=False)[0]
