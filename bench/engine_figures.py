"""The engine's figures for one build, as JSON lines: CPU and wall time of ``simulate`` and of its
event loop alone, heap events, and a checksum of the results (to see that two builds agree).

    python bench/engine_figures.py [--rounds N] [WORKLOAD ...]

Workloads: ``ring`` and ``dma`` (bench/workloads.py, as bench/test_engine_speed.py runs them, in
both detail levels), ``scale10m`` (the 10^7-event ring, packet detail), and the llama70b diag
panels on the ``default`` preset: ``prefill16k``, ``prefill32k`` (single_user_prefill, 8 PEs of
one cube) and ``decode32k`` (single_user_decode: 8 PEs share one memory channel). A panel is
launched once as ``kernbench diag`` launches it (functional mode, output checked): its CPU time
end to end and the ``simulate`` call inside it are reported, then the traced program is timed
again ``--rounds`` times.

To compare two builds, run this file against each, alternating, in one session (the figures in
docs/benchmarks.md were measured so): ``PYTHONPATH=/path/to/other/checkout python
bench/engine_figures.py`` imports the other build's kernbench (built in place there with
``python setup.py build_ext --inplace``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import dma_workload, ring_for_events  # noqa: E402

from kernbench._core import _engine, api  # noqa: E402
from kernbench._core.api import simulate  # noqa: E402

PANELS = {
    "prefill16k": ("single_user_prefill", 16384),
    "prefill32k": ("single_user_prefill", 32768),
    "decode32k": ("single_user_decode", 32768),
}


def _loop_cpu(hw, nbr, prog, detail) -> float:
    """CPU seconds of Sim.run() alone: the nogil event loop, without validation and _prepare."""
    api._check_program(hw, prog)
    nb = api._check_neighbours(hw, nbr)
    prep = api._prepare(hw, nb, prog, api._default_describe(prog))
    sim = _engine.Sim(api.hw_params(hw, detail, 1 << 62), prog.commands, prep["unit_q"],
                      prep["unit_q_off"], prog.cmd_offsets, prog.tensor_offsets, prog.tensor_bytes, prog.tensor_pinned,
                      prep["readers"], nb.ravel(), 1 << 62)
    c0 = time.process_time()
    assert sim.run() == _engine.STATUS["ok"]
    return time.process_time() - c0


def _checksum(r) -> str:
    h = hashlib.sha1()
    for a in (r.cmd_start, r.cmd_end, r.peak_sram, r.completion_order, r.unit_counters,
              r.link_counters):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def time_simulate(name, hw, nbr, prog, detail, rounds, **extra) -> dict:
    cpu, wall, loop = [], [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        r = simulate(hw, nbr, prog, detail=detail)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
        loop.append(_loop_cpu(hw, nbr, prog, detail))
    out = dict(name=name, detail=detail, commands=len(prog.commands), simulate_cpu_s=min(cpu),
               simulate_wall_s=min(wall), loop_cpu_s=min(loop), heap_events=r.heap_events,
               work=r.work, cycles=r.cycles, checksum=_checksum(r), **extra)
    print(json.dumps(out), flush=True)
    return out


def launch_panel(name, rounds) -> dict:
    """Launch a diag panel once, keeping the engine's inputs; then time simulate on them."""
    import kernbench.runtime.executor as ex
    from kernbench.diag.panels import panel_spec, run_panel
    from kernbench.hw import load_hw

    panel, context = PANELS[name]
    hw = load_hw("default")
    seen = {}
    orig = ex.simulate

    def keep(*args, **kw):
        c0 = time.process_time()
        res = orig(*args, **kw)
        seen.update(args=args[:3], cpu=time.process_time() - c0)
        return res

    ex.simulate = keep
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_panel(panel_spec(panel, hw, shape="llama70b", context=context), hw)
        launch = dict(launch_cpu_s=time.process_time() - c0, launch_wall_s=time.perf_counter() - t0,
                      launch_simulate_cpu_s=seen["cpu"], passed=res.passed)
    finally:
        ex.simulate = orig
    return time_simulate(name, *seen["args"], "train", rounds, **launch)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed runs per figure (min is reported)")
    ap.add_argument("workloads", nargs="*",
                    default=["ring", "dma", "scale10m", "prefill16k", "decode32k"])
    a = ap.parse_args(argv)
    for w in a.workloads:
        if w == "ring":
            x = ring_for_events(1_000_000)
            for detail in ("packet", "train"):
                time_simulate(w, x.hw, x.neighbours, x.program, detail, a.rounds)
        elif w == "dma":
            x = dma_workload(8, 8, tiles=16, tile_bytes=256 * 1024)
            for detail in ("packet", "train"):
                time_simulate(w, x.hw, x.neighbours, x.program, detail, a.rounds)
        elif w == "scale10m":
            x = ring_for_events(10_000_000)
            time_simulate(w, x.hw, x.neighbours, x.program, "packet", a.rounds)
        elif w in PANELS:
            launch_panel(w, a.rounds)
        else:
            ap.error(f"unknown workload {w!r}")


if __name__ == "__main__":
    main()
