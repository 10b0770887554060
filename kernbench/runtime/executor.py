"""The grid executor: trace every program of a launch, time it, replay it.

Each program (PE p of cube c, for p < grid[0], c < grid[1]) runs the kernel once with a ``tl``
pointed at its own :class:`~kernbench.language.builder.PEBuilder`. An exception in the kernel is
re-raised as a KernelError naming the program id (pe, cube) and the kernel's file:line. Before
the engine sees the program, every send is paired with its recv here, so a size, shape or dtype
mismatch is reported with both kernel lines rather than as a malformed program.
"""
from __future__ import annotations

import bisect
import gc
import inspect
import os
import traceback
import weakref
from typing import Callable

import numpy as np

from .._core import simulate
from ..common.errors import KernbenchError, KernelError
from ..common.pe_commands import _OPERATOR_TARGET, N_PORTS, OPPOSITE, Port, Program
from ..language.builder import PEBuilder
from ..language.builtins import TL
from ..language.semantic import _INTERNAL
from ..language.semantic import fmt_shape as fmt
from .memory import DeviceArray, arg_repr
from .replay import label_of, replay
from .result import LaunchResult

__all__ = ["launch", "MODES"]

MODES = ("functional", "timing")


def _check_grid(hw, grid) -> tuple:
    try:
        g = tuple(int(x) for x in grid)
        ok = len(g) == 2 and all(x == y for x, y in zip(g, grid))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"grid must be (PEs per cube used, cubes used), two ints, got {grid!r}")
    if not (1 <= g[0] <= hw.pes_per_cube and 1 <= g[1] <= hw.n_cubes):
        raise ValueError(
            f"grid {g} does not fit the hardware '{hw.name}': expected 1..{hw.pes_per_cube} PEs per "
            f"cube and 1..{hw.n_cubes} cubes"
        )
    return g


def _kernel_site(exc: BaseException, kernel_file: str) -> tuple:
    """(file, line) of the innermost traceback frame in the kernel's file, else the innermost
    frame outside kernbench (a helper the kernel called)."""
    in_kernel = outside = None
    for fr in traceback.extract_tb(exc.__traceback__):
        if fr.filename == kernel_file:
            in_kernel = (fr.filename, fr.lineno)
        if fr.filename not in _INTERNAL and fr.filename != __file__:
            outside = (fr.filename, fr.lineno)
    return in_kernel or outside or (kernel_file, 0)


def _pe(hw, g: int) -> tuple:
    return (g % hw.pes_per_cube, g // hw.pes_per_cube)


def _check_messages(hw, builders: list, nbr: np.ndarray, grid: tuple) -> None:
    """Pair the k-th send on each port with the k-th recv on the neighbour's opposite port."""
    for g, b in enumerate(builders):
        for p in range(N_PORTS):
            q = int(nbr[g, p])
            if q < 0:
                continue  # tl.send/recv already refused ports with no neighbour
            back = int(OPPOSITE[p])
            other = builders[q]
            sends = b.sends[p] if b is not None else []
            recvs = other.recvs[back] if other is not None else []
            if len(sends) != len(recvs):
                # Name the first unmatched message on whichever side has more.
                if len(sends) > len(recvs):
                    _, shape, dtype, file, line = sends[len(recvs)]
                    who = (f"PE {_pe(hw, g)} at {os.path.basename(file)}:{line} sends message "
                           f"#{len(recvs) + 1} on port {Port(p).name}")
                else:
                    _, shape, dtype, file, line = recvs[len(sends)]
                    who = (f"PE {_pe(hw, q)} at {os.path.basename(file)}:{line} posts recv "
                           f"#{len(sends) + 1} on port {Port(back).name}")
                idle = q if other is None else g if b is None else None
                why = ("" if idle is None else
                       f" (PE {_pe(hw, idle)} ran no program or returned before any tl call; the "
                       f"launch grid is {grid})")
                raise KernelError(
                    f"{who}, but PE {_pe(hw, g)} sends {len(sends)} message(s) on port "
                    f"{Port(p).name} and PE {_pe(hw, q)} posts {len(recvs)} recv(s) on port "
                    f"{Port(back).name}{why}: every send needs exactly one matching recv",
                    pe=_pe(hw, g), where=f"{file}:{line}",
                )
            for s, r in zip(sends, recvs):
                if s[1] != r[1] or s[2] != r[2]:
                    raise KernelError(
                        f"PE {_pe(hw, q)} at {os.path.basename(r[3])}:{r[4]}: recv on port "
                        f"{Port(back).name} expects {fmt(r[1])} {r[2]}, but the matching send of "
                        f"PE {_pe(hw, g)} at {os.path.basename(s[3])}:{s[4]} sends {fmt(s[1])} "
                        f"{s[2]}",
                        pe=_pe(hw, q), where=f"{r[3]}:{r[4]}",
                    )


def _describers(program: Program, metas: list) -> tuple[Callable, Callable, Callable]:
    """(label, source, describe) of a global command index, from each PE's command metadata."""
    offs = program.cmd_offsets.tolist()

    def meta(i: int) -> tuple:
        g = bisect.bisect_right(offs, i) - 1
        return metas[g][i - offs[g]]

    def label(i: int) -> str:
        return label_of(meta(i))

    def source(i: int) -> str:
        m = meta(i)
        return f"{m[1]}:{m[2]}"

    def describe(i: int) -> str:
        m = meta(i)
        return f"{label_of(m)} ({os.path.basename(m[1])}:{m[2]})"

    return label, source, describe


def trace(ctx, kernel, grid: tuple, args: tuple, kwargs: dict, functional: bool) -> list:
    """Run ``kernel`` once per program of ``grid``; PE g's builder (or None) by global index."""
    hw = ctx.hw
    nbr = ctx.neighbours()
    sfr_text = ctx.sfr.describe() if ctx.sfr is not None else "no SFR installed: call ctx.install_sfr()"
    builders: list = [None] * hw.n_pes
    tl = TL(grid)
    name = getattr(kernel, "__name__", repr(kernel))
    kfile = getattr(getattr(kernel, "__code__", None), "co_filename", "<kernel>")
    _OPERATOR_TARGET.append(tl)
    # Tracing allocates a few small tuples per command and no reference cycles; left on, the
    # cyclic GC rescans the growing command lists and halves tracing speed.
    gc_on = gc.isenabled()
    gc.disable()
    try:
        for c in range(grid[1]):
            for p in range(grid[0]):
                g = c * hw.pes_per_cube + p
                b = PEBuilder(p, c, g, functional=functional, memory=ctx.memory, nbr=nbr[g],
                              sfr_text=sfr_text)
                tl._begin(b)
                try:
                    kernel(*args, tl=tl, **kwargs)
                except KernbenchError:
                    raise
                except Exception as e:
                    file, line = _kernel_site(e, kfile)
                    raise KernelError(
                        f"kernel {name} raised {type(e).__name__} on PE ({p}, {c}) "
                        f"(program_id(0)={p}, program_id(1)={c}) at {os.path.basename(file)}:{line}: {e}",
                        pe=(p, c), where=f"{file}:{line}",
                    ) from e
                if b.meta:
                    builders[g] = b
    finally:
        _OPERATOR_TARGET.pop()
        if gc_on:
            gc.enable()
    return builders


def launch(ctx, kernel, grid, args: tuple, kwargs: dict, *, mode: str = "functional",
           detail: str = "train", max_cycles=None, record_events: bool = False,
           strict_sram: bool = False) -> LaunchResult:
    """Trace, time and (in functional mode) replay one launch; see Context.launch."""
    hw = ctx.hw
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not callable(kernel):
        raise TypeError(f"kernel must be a function taking a keyword-only tl, got {kernel!r}")
    grid = _check_grid(hw, grid)
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, DeviceArray) and a.freed:
            raise ValueError(f"launch argument {a.name!r} was freed")
    # Kernels see pointers as plain ints: pointer arithmetic stays int arithmetic.
    k_args = tuple(a.addr if isinstance(a, DeviceArray) else a for a in args)
    k_kwargs = {k: (a.addr if isinstance(a, DeviceArray) else a) for k, a in kwargs.items()}
    functional = mode == "functional"

    # Tracing, program assembly and replay make a few small acyclic objects per command; the
    # cyclic GC would rescan them over and over (it once took half of a launch's time), and
    # reference counting frees them anyway. Paused for the launch, restored after.
    gc_on = gc.isenabled()
    gc.disable()
    try:
        builders = trace(ctx, kernel, grid, k_args, k_kwargs, functional)
        program = Program.from_streams([None if b is None else b.build() for b in builders])
        nbr = ctx.neighbours()
        _check_messages(hw, builders, nbr, grid)
        # From here on only the metadata is kept (labels, replay): the builders and their
        # handles go, so tensors the kernel did not hold on to are freed as replay goes.
        metas = [None if b is None else b.meta for b in builders]
        handles = None
        if functional:
            handles = [None if b is None else [weakref.ref(t[2]) for t in b.tensors] for b in builders]
        del builders
        label, source, describe = _describers(program, metas)
        engine = simulate(hw, nbr, program, detail=detail, max_cycles=max_cycles,
                          record_events=record_events, strict_sram=strict_sram, describe=describe)
        if functional:
            replay(program, engine, metas, handles, ctx.memory)
    finally:
        if gc_on:
            gc.enable()

    return LaunchResult(
        hw=hw,
        sfr=ctx.sfr,
        grid=grid,
        mode=mode,
        kernel_name=getattr(kernel, "__name__", repr(kernel)),
        kernel_file=getattr(getattr(kernel, "__code__", None), "co_filename", "<kernel>"),
        args=_named_args(kernel, args, kwargs),
        program=program,
        engine=engine,
        labels=label,
        sources=source,
    )


def _named_args(kernel, args: tuple, kwargs: dict) -> dict:
    try:
        bound = inspect.signature(kernel).bind_partial(*args, **kwargs)
        items = bound.arguments.items()
    except (TypeError, ValueError):
        items = list(enumerate(args)) + list(kwargs.items())
    return {str(k): arg_repr(v) for k, v in items}
