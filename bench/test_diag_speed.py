"""Wall time of the four diag panels at Llama-70B shapes (timing mode), as `kernbench diag
--shape llama70b` runs them: the simulator's speed on the job it exists for.

Full run: 32K context, multi_user on 8 cubes (preset mesh8). ``--quick``: 4K context.
extra_info records each panel's simulated cycles and commands, and the total.
"""
from __future__ import annotations

import resource
import subprocess
import sys

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


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def test_kernbench_diag_command_line(benchmark, quick, tmp_path):
    """``kernbench diag --shape llama70b --hw mesh8`` in a fresh interpreter, imports included:
    what a user waits for at the shell. extra_info: the child processes' CPU time (user plus
    system) beside the benchmark's own timer, and that of ``import kernbench.cli`` alone."""
    context = "4096" if quick else "32768"
    benchmark.group = "diag"
    cmd = [sys.executable, "-m", "kernbench", "diag", "--shape", "llama70b", "--hw", "mesh8",
           "--context", context]
    cpu = []

    def run():
        t = _child_cpu()
        # (from tmp_path, not the checkout: Python would import its source tree, unbuilt)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        cpu.append(_child_cpu() - t)
        assert out.returncode == 0, out.stderr
        assert "4 of 4 panels passed" in out.stdout

    benchmark.pedantic(run, rounds=2 if quick else 3, iterations=1)
    t = _child_cpu()
    out = subprocess.run([sys.executable, "-c", "import sys, kernbench.cli; print('ml_dtypes' in sys.modules)"],
                         capture_output=True, text=True, check=True, timeout=300, cwd=tmp_path)
    benchmark.extra_info.update({"context": int(context), "cpu_s": min(cpu),
                                 "import_cpu_s": _child_cpu() - t,
                                 "imports_ml_dtypes": out.stdout.strip() == "True"})
