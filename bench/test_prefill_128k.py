"""Issue 12's 128K targets: Llama-70B prefill at 128K tokens of context, end to end
(``run_panel``: trace with tl.range replay, check, time), on one cube (preset ``default``, the
single-user panel: 8 ranks, the PEs of the cube) and on 64 cubes (``mesh64``, the multi-user
panel: 64 ranks, PE 0 of each cube), as the milestone table runs them, plain and causal (zigzag).
Target: < 6 s each.
``--quick``: 16K context.

extra_info: context, commands, rows traced, simulated cycles, CPU seconds (``time.process_time``, beside the
timer's wall time) split into user and system time (``getrusage``: system time is mostly the kernel
zeroing the pages a launch touches first, which on a VM whose host takes freed memory back costs
about as much as the engine; docs/benchmarks.md) and peak RSS after the run (the process's, so the
largest run sets it).
"""
from __future__ import annotations

import resource
import time

import pytest

from kernbench.diag import panel_spec, run_panel
from kernbench.hw import load_hw


@pytest.mark.parametrize("preset, panel, causal", [
    ("default", "single_user_prefill", False), ("mesh64", "multi_user_prefill", False),
    ("default", "single_user_prefill", True), ("mesh64", "multi_user_prefill", True),
], ids=["1cube", "64cubes", "1cube-causal", "64cubes-causal"])
def test_prefill_128k(benchmark, quick, preset, panel, causal):
    context = 16384 if quick else 131072
    hw = load_hw(preset)
    spec = panel_spec(panel, hw, shape="llama70b", context=context, causal=causal)
    cpu = []

    def run():
        t0, u0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        r = run_panel(spec, hw)
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append((time.process_time() - t0, u1.ru_utime - u0.ru_utime, u1.ru_stime - u0.ru_stime))
        return r

    benchmark.group = "prefill 128K"
    r = benchmark.pedantic(run, rounds=1 if quick else 2, iterations=1)
    assert r.passed and r.result.cycles > 0
    cp = r.result.program.compact  # the rows tracing wrote (the rest replayed tl.range tilings)
    traced = int((cp.bounds[:, 1] - cp.bounds[:, 0]).sum()) if cp is not None else int(r.result.program.n_commands)
    benchmark.extra_info.update({
        "context": context, "ranks": spec.n_ranks, "commands": int(r.result.program.n_commands), "traced_rows": traced,
        "cycles": int(r.result.cycles),
        "cpu_s": min(cpu)[0], "user_s": min(cpu)[1], "sys_s": min(cpu)[2], "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    })
