"""milestone_gqa_llama70b: Llama-70B GQA attention (h_q=64, h_kv=8, d_head=128) on the modelled machine.

prefill (attention_mesh_kv_kernel; also causal, in the zigzag layout) and decode
(attention_mesh_mlo_kernel; one query row, and 4 rows per sequence: speculative or chunked decode,
which fills the 32-row array with G = 8) at 4K, 16K, 32K and 128K tokens of context, on one cube
(8 PEs, scope pe) and on 8 and 64 cubes (scope cube, PE 0 of each cube). Timing mode: the figures
are the simulated machine's.

Each case records in ``extra_info`` the simulated cycles, latency at the clock, achieved TFLOP/s,
the fraction of the roofline (compute peak of the working PEs for prefill; for decode the memory
bandwidth of the cubes used, since decode reads all of K and V once), GEMM and link utilization,
peak SRAM per PE against capacity, tokens per second (prefill: the context; decode: the query
rows), and the attainable bound (PanelResult.attainable: the busiest resource's busy cycles). The benchmark's own time is the simulator's wall time.
``python bench/make_tables.py RESULTS.json`` turns a saved run into docs/benchmarks.md's tables.

``--quick``: 4K context only (a smoke run for CI).

**Tuned rows** (``test_milestone_gqa_llama70b_tuned``): the same cases with the block sizes the
tuner chooses (``kernbench.diag.tune_panel``: the fastest of ``tune_configs(spec)`` that fits SRAM,
cached on disk), recording the chosen blocks, the default blocks' cycles and the gain (default
cycles / tuned cycles) and the tuner's own CPU and wall time. Tuning launches every candidate (up
to 12 per prefill case), so these run only with ``KERNBENCH_BENCH_TUNE=1`` and up to 32K context
(``TUNED_CONTEXTS``); without it, ``--quick`` runs one cube's 4K decode and prefill as a smoke
check. ``python bench/make_tables.py`` puts them in their own table (``milestone-tuned``).
"""
from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from kernbench.diag import panel_spec, run_panel
from kernbench.diag.panels import tune_panel
from kernbench.hw import load_hw

CONTEXTS = (4096, 16384, 32768, 131072)
#: contexts of the tuned rows: tuning 128K would launch each candidate at 40-160 s CPU
TUNED_CONTEXTS = (4096, 16384, 32768)
#: without KERNBENCH_BENCH_TUNE, --quick runs these tuned cases (variant, mesh) as a smoke check
TUNED_SMOKE = {("decode", "1cube"), ("prefill", "1cube")}
#: mesh name -> (preset, panel users): one cube rings its 8 PEs; 8 / 64 cubes ring PE 0 of each
MESHES = {"1cube": ("default", "single"), "8cubes": ("mesh8", "multi"), "64cubes": ("mesh64", "multi")}
#: variant -> (panel kind, panel_spec keywords)
VARIANTS = {
    "prefill": ("prefill", {}),
    "prefill-causal": ("prefill", {"causal": True}),
    "decode": ("decode", {}),
    "decode-4rows": ("decode", {"decode_rows": 4}),
}


def figures(p) -> dict:
    """The milestone's figures for one PanelResult (plain numbers for extra_info)."""
    spec, res, s = p.spec, p.result, p.summary
    hw = res.hw
    cycles = res.cycles
    working = len(res.working_pes)
    cubes_used = s["cubes_used"]
    if spec.kind == "prefill":
        # compute roofline: the attention's FLOPs at the GEMM peak of the working PEs
        ideal = spec.model_flops() / (hw.peak_flops_per_cycle_pe * working)
        bound = "compute"
    else:
        # memory roofline: K and V of the whole context read once, at every used cube's channel
        kv_bytes = 2 * spec.context * spec.h_kv * spec.d_head * 2
        ideal = kv_bytes / (hw.dma.channel_bytes_per_cycle * cubes_used)
        bound = "memory"
    busy = p.unit_mean_busy()
    attainable, binding = p.attainable()
    tokens = spec.context if spec.kind == "prefill" else spec.S_q
    return {
        "kind": spec.kind,
        "causal": spec.causal,
        "S_q": spec.S_q,
        "blocks": list(spec.blocks),
        "context": spec.context,
        "n_ranks": spec.n_ranks,
        "cubes": cubes_used,
        "working_pes": working,
        "commands": int(res.program.n_commands),
        "cycles": cycles,
        "latency_us": res.seconds * 1e6,
        "achieved_tflops": s["totals"]["achieved_tflops"],
        "model_tflops": spec.model_flops() / res.seconds / 1e12,
        "peak_tflops": s["totals"]["peak_tflops"],
        "roofline": bound,
        "roofline_fraction": ideal / cycles,
        "attainable_cycles": attainable,
        "attainable_fraction": ideal / attainable,
        "binding": binding,
        "tokens_per_s": tokens / res.seconds,
        "gemm_balance": p.gemm_balance(),
        "gemm_util": busy["GEMM"] / 100.0,
        "vector_util": busy["VECTOR"] / 100.0,
        "dma_util": busy["DMA"] / 100.0,
        "link_util": p.link_wire_pct() / 100.0,
        "link_bytes": s["links"]["bytes"],
        "peak_sram_bytes": s["sram"]["peak_bytes"],
        "sram_capacity_bytes": s["sram"]["capacity_bytes"],
        "sram_fits": not s["sram"]["over_capacity"],
    }


@pytest.mark.parametrize("context", CONTEXTS, ids=[f"{c // 1024}K" for c in CONTEXTS])
@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_milestone_gqa_llama70b(benchmark, quick, variant, mesh, context):
    if quick and context != CONTEXTS[0]:
        pytest.skip("--quick runs the 4K context only")
    preset, users = MESHES[mesh]
    kind, options = VARIANTS[variant]
    hw = load_hw(preset)
    spec = panel_spec(f"{users}_user_{kind}", hw, shape="llama70b", context=context, **options)
    benchmark.group = f"milestone {variant}"
    p = benchmark.pedantic(run_panel, args=(spec, hw), rounds=1, iterations=1)
    f = figures(p)
    benchmark.extra_info.update(f)
    # what the figures must satisfy for the run to count at all
    assert f["cycles"] > 0 and 0 < f["roofline_fraction"] <= f["attainable_fraction"] <= 1.0
    assert f["working_pes"] == spec.n_ranks
    assert 0 <= f["gemm_util"] <= 1 and 0 <= f["link_util"] <= 1


def _tuned_case(quick: bool, variant: str, mesh: str, context: int) -> None:
    """Skip a tuned case unless asked for (see the module docstring)."""
    if os.environ.get("KERNBENCH_BENCH_TUNE"):
        if quick and context != CONTEXTS[0]:
            pytest.skip("--quick runs the 4K context only")
        return
    if not (quick and context == CONTEXTS[0] and (variant, mesh) in TUNED_SMOKE):
        pytest.skip("tuned rows run with KERNBENCH_BENCH_TUNE=1 (--quick without it: a smoke check)")


@pytest.mark.parametrize("context", TUNED_CONTEXTS, ids=[f"{c // 1024}K" for c in TUNED_CONTEXTS])
@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_milestone_gqa_llama70b_tuned(benchmark, quick, variant, mesh, context):
    _tuned_case(quick, variant, mesh, context)
    preset, users = MESHES[mesh]
    kind, options = VARIANTS[variant]
    hw = load_hw(preset)
    spec = panel_spec(f"{users}_user_{kind}", hw, shape="llama70b", context=context, **options)
    t0, c0 = time.perf_counter(), time.process_time()
    t = tune_panel(spec, hw)
    tune_cpu, tune_wall = time.process_time() - c0, time.perf_counter() - t0
    assert t.best is not None, f"no block config fits SRAM: {t}"
    names = ("block_q", "block_kv") if kind == "prefill" else ("block_kv",)
    tuned = replace(spec, blocks=tuple(t.best[n] for n in names))
    benchmark.group = f"milestone tuned {variant}"
    p = benchmark.pedantic(run_panel, args=(tuned, hw), rounds=1, iterations=1)
    f = figures(p)
    f.update({"tuned": True, "default_blocks": [t.default[n] for n in names], "default_cycles": t.default_cycles,
              "gain": t.gain, "tune_configs": len(t.table),
              "tune_over_sram": sum(1 for r in t.table if r["error_type"] == "SramCapacityError"),
              "tune_from_cache": t.from_cache, "tune_launches": t.computed,
              "tune_cpu_s": tune_cpu, "tune_wall_s": tune_wall})
    benchmark.extra_info.update(f)
    assert f["cycles"] == t.cycles  # the panel run with the chosen blocks is the tuner's launch
    assert f["sram_fits"] and (t.default_cycles is None or t.gain >= 1.0)
