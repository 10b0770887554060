"""LaunchResults built straight from engine programs, for the report, trace, plot and CLI tests.

The workload is small and hand-written with StreamBuilder so every figure can be derived from
docs/hardware-model.md; ``line`` numbers stand in for kernel source lines.
"""
from __future__ import annotations

from kernbench._core import simulate
from kernbench.common.pe_commands import Program, StreamBuilder, VecOp
from kernbench.hw import SfrInstall, load_hw
from kernbench.runtime.result import LaunchResult

KERNEL_FILE = "tests/fake_kernel.py"


def launch(streams, hw=None, sfr=None, grid=None, name="fake_kernel", args=None, labels=None,
           neighbours=None, **sim_kw):
    """Simulate ``streams`` (one StreamBuilder or None per global PE, padded to n_pes) and wrap
    the EngineResult in a LaunchResult the way ``ctx.launch`` does. ``neighbours`` replaces the
    SFR install's table (to wire the N/S ports no install uses yet)."""
    hw = hw or load_hw("default")
    sfr = sfr or SfrInstall("pe")
    built = [s.build() if s is not None else None for s in streams]
    built += [None] * (hw.n_pes - len(built))
    program = Program.from_streams(built)
    nbr = sfr.neighbours(hw) if neighbours is None else neighbours
    engine = simulate(hw, nbr, program, **sim_kw)
    return LaunchResult(
        hw=hw,
        sfr=sfr,
        grid=grid or (min(len(streams), hw.pes_per_cube), 1),
        mode="timing",
        kernel_name=name,
        kernel_file=KERNEL_FILE,
        args=dict(args or {}),
        program=program,
        engine=engine,
        labels=labels,
    )


def line_pipeline(n_pes=3, hw=None, grid=None, **kw):
    """PE p of cube 0: load A and B, dot, exp, send E (all but the last), recv W (all but the
    first) and add, store. PEs n_pes.. are silent. Exercises every unit kind but N/S."""
    streams = []
    for p in range(n_pes):
        b = StreamBuilder()
        a = b.load(64 * 128 * 2, line=10)
        w = b.load(128 * 64 * 2, line=11)
        c = b.dot(a, w, 64, 64, 128, line=12)
        e = b.vec(VecOp.EXP, 64 * 64, c, line=13)
        if p < n_pes - 1:
            b.send("E", e, 64 * 64 * 4, line=14)
        if p > 0:
            r = b.recv("W", 64 * 64 * 4, line=15)
            e = b.vec(VecOp.ADD, 64 * 64, e, r, line=16)
        b.store(e, 64 * 64 * 4, line=17)
        streams.append(b)
    return launch(streams, hw=hw, grid=grid or (n_pes, 1), args={"n": 64, "dtype": "f16"}, **kw)


def ring_exchange(n_pes=4, rounds=2, nbytes=8192, **kw):
    """A closed ring of the n_pes PEs of cube 0 (on a machine of 2 cubes x n_pes PEs); every PE
    sends E and receives from W ``rounds``
    times, with a vector op between rounds. Many messages for flow-event checks."""
    streams = []
    for _p in range(n_pes):
        b = StreamBuilder()
        t = b.load(nbytes, line=20)
        for _r in range(rounds):
            b.send("E", t, nbytes, line=21)
            got = b.recv("W", nbytes, line=22)
            t = b.vec(VecOp.ADD, nbytes // 4, got, line=23)
        b.store(t, nbytes, line=24)
        streams.append(b)
    hw = load_hw("default").with_overrides(n_cubes=2, pes_per_cube=n_pes)
    return launch(streams, hw=hw, sfr=SfrInstall("pe", ring=True), grid=(n_pes, 1), **kw)


def scale(x_ptr, o_ptr, n, *, tl):
    """A kernel: load, times two, store (its load is on the line after the def)."""
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    tl.store(o_ptr, x * 2.0)


def scale_launch():
    """``scale`` launched through ctx.launch on 4 PEs of the default machine (timing mode): a
    result with the launch's labels, sources and kernel sites."""
    import numpy as np

    import kernbench

    ctx = kernbench.Context(hw="default")
    ctx.install_sfr(scope="pe")
    x = ctx.shard(np.arange(4 * 256, dtype=np.float32), axis=0, parts=4)
    return ctx.launch(scale, (4, 1), x, ctx.empty_like(x), 256, mode="timing")
