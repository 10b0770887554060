"""Wall time of the four diag panels at Llama-70B shapes (timing mode), as `kernbench diag
--shape llama70b` runs them: the simulator's speed on the job it exists for.

Full run: 32K context, multi_user on 8 cubes (preset mesh8). ``--quick``: 4K context.
extra_info records each panel's simulated cycles and commands, and the total.
"""
from __future__ import annotations

from kernbench.diag import run_panels


def test_diag_panels_llama70b_wall_time(benchmark, quick):
    context = 4096 if quick else 32768
    benchmark.group = "diag"
    panels = benchmark.pedantic(run_panels, kwargs=dict(hw="mesh8", shape="llama70b", context=context),
                                rounds=1, iterations=1)
    assert [p.passed for p in panels] == [True] * 4
    benchmark.extra_info["context"] = context
    for p in panels:
        benchmark.extra_info[f"{p.name}_cycles"] = p.result.cycles
        benchmark.extra_info[f"{p.name}_commands"] = int(p.result.program.n_commands)
        benchmark.extra_info[f"{p.name}_wall_s"] = p.wall_seconds
    benchmark.extra_info["commands"] = sum(int(p.result.program.n_commands) for p in panels)
