"""Speed of the engine's steady-state jumps (docs/hardware-model.md, "Steady state: loops that
repeat"): the 32K-context single-user prefill panel of ``kernbench diag --shape llama70b --hw
mesh8`` (2.4M commands), traced once, timed with ``steady=False`` (every command run) and
``steady=True`` (the repeating stretches jumped).

Figures go to ``benchmark.extra_info`` (CPU seconds, commands jumped); what is asserted is that
both give the same start and end cycle for every command. ``--quick``: 4K context.
"""
from __future__ import annotations

import time

import pytest

from kernbench.diag import panel_spec
from kernbench.hw import load_hw
from kernbench.runtime import executor
from kernbench.runtime.context import Context

_TRACES: dict = {}


def _traced(context):
    if context not in _TRACES:
        hw = load_hw("mesh8")
        spec = panel_spec("single_user_prefill", hw, shape="llama70b", context=context)
        ctx = Context(hw)
        ctx.install_sfr(scope=spec.scope, ring=False)
        d = spec.d_head
        args = (ctx.empty((spec.S_q, spec.h_q, d), "f16"), ctx.empty((spec.S_kv_per_rank, spec.h_kv, d), "f16"),
                ctx.empty((spec.S_kv_per_rank, spec.h_kv, d), "f16"), ctx.empty((spec.S_q, spec.h_q, d), "f16"),
                spec.S_q, spec.S_kv_per_rank, spec.h_q, spec.h_kv, d, spec.n_ranks, spec.rank_axis,
                *spec.blocks)
        traced, _, _ = executor.trace_launch(ctx, spec.kernel, spec.grid, args, {}, mode="timing")
        _TRACES[context] = (hw, traced, traced.time(hw, steady=False).engine.cmd_end)
    return _TRACES[context]


@pytest.mark.parametrize("steady", [False, True], ids=["run_all", "jump"])
def test_time_traced_prefill(benchmark, quick, steady):
    context = 4096 if quick else 32768
    hw, traced, ref_end = _traced(context)
    cpu = []

    def run():
        t0 = time.process_time()
        r = traced.time(hw, steady=steady)
        cpu.append(time.process_time() - t0)
        return r

    benchmark.group = "steady state"
    r = benchmark.pedantic(run, rounds=1 if quick else 3, iterations=1, warmup_rounds=1)
    assert r.engine.cmd_end.tobytes() == ref_end.tobytes()
    assert (r.engine.steady_commands > 0) == steady
    benchmark.extra_info.update({"context": context, "commands": int(traced.program.n_commands),
                                 "steady_commands": int(r.engine.steady_commands), "cpu_s": min(cpu)})
