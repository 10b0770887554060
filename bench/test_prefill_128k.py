"""Issue 12's 128K targets: Llama-70B prefill at 128K tokens of context, end to end
(``run_panel``: trace with tl.range replay, check, time), on one cube (preset ``default``, the
single-user panel: 8 ranks, the PEs of the cube) and on 64 cubes (``mesh64``, the multi-user
panel: 64 ranks, PE 0 of each cube), as the milestone table runs them. Target: < 6 s each.
``--quick``: 16K context.

extra_info: context, commands, rows traced, simulated cycles, CPU seconds (``time.process_time``, beside the
timer's wall time) and peak RSS after the run (the process's, so the largest run sets it).
"""
from __future__ import annotations

import resource
import time

import pytest

from kernbench.diag import panel_spec, run_panel
from kernbench.hw import load_hw


@pytest.mark.parametrize("preset, panel", [("default", "single_user_prefill"), ("mesh64", "multi_user_prefill")],
                         ids=["1cube", "64cubes"])
def test_prefill_128k(benchmark, quick, preset, panel):
    context = 16384 if quick else 131072
    hw = load_hw(preset)
    spec = panel_spec(panel, hw, shape="llama70b", context=context)
    cpu = []

    def run():
        t0 = time.process_time()
        r = run_panel(spec, hw)
        cpu.append(time.process_time() - t0)
        return r

    benchmark.group = "prefill 128K"
    r = benchmark.pedantic(run, rounds=1 if quick else 2, iterations=1)
    assert r.passed and r.result.cycles > 0
    cp = r.result.program.compact  # the rows tracing wrote (the rest replayed tl.range tilings)
    traced = int((cp.bounds[:, 1] - cp.bounds[:, 0]).sum()) if cp is not None else int(r.result.program.n_commands)
    benchmark.extra_info.update({
        "context": context, "ranks": spec.n_ranks, "commands": int(r.result.program.n_commands), "traced_rows": traced,
        "cycles": int(r.result.cycles),
        "cpu_s": min(cpu), "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    })
