"""The four diag panels: ring attention, prefill and decode, in one cube and across cubes.

Each panel is one launch with its own data, SFR install and rank_axis:

=====================  ==========================  =============  =========  ==========
panel                  kernel                      ring over      SFR scope  rank_axis
=====================  ==========================  =============  =========  ==========
single_user_prefill    attention_mesh_kv_kernel    8 PEs, 1 cube  pe         0
single_user_decode     attention_mesh_mlo_kernel   8 PEs, 1 cube  pe         0
multi_user_prefill     attention_mesh_kv_kernel    cubes (PE 0)   cube       1
multi_user_decode      attention_mesh_mlo_kernel   cubes (PE 0)   cube       1
=====================  ==========================  =============  =========  ==========

In the multi_user panels every PE of a cube holds a replica of its cube's K/V and query rows, and
all but PE 0 return at once. Shape ``small`` runs in functional mode and checks the output
against softmax(Q K^T / sqrt(d)) V in f64; shape ``llama70b`` (h_q=64, h_kv=8, d_head=128) runs in
timing mode (no numerics) for the cycle figures.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..hw.config import HardwareConfig, load_hw
from ..kernels.attention import attention_mesh_kv_kernel, attention_mesh_mlo_kernel
from ..report.summary import summarize

__all__ = [
    "PANELS",
    "SHAPES",
    "PanelSpec",
    "PanelResult",
    "panel_spec",
    "run_panel",
    "run_panels",
    "attention_reference",
    "check_output",
    "ATOL",
    "RTOL",
]

PANELS = ("single_user_prefill", "single_user_decode", "multi_user_prefill", "multi_user_decode")
SHAPES = ("small", "llama70b")
#: f16 output tolerance against the f64 reference: |out - ref| <= ATOL + RTOL * |ref|
ATOL = 2e-3
RTOL = 2e-2
#: Llama-70B attention
LLAMA70B = dict(h_q=64, h_kv=8, d_head=128)
LLAMA70B_CONTEXT = 32768
#: small functional shapes: per-rank sequence share, heads, and blocks small enough that every
#: loop of the kernels (query blocks, K/V blocks, GQA groups) runs more than once
SMALL = dict(h_q=8, h_kv=2, d_head=32)
SMALL_PREFILL_ROWS = 32
SMALL_DECODE_ROWS = 64
SMALL_MULTI_USER_CUBES = 4


@dataclass(frozen=True)
class PanelSpec:
    """Everything one panel launch needs."""

    name: str
    kind: str  #: "prefill" or "decode"
    scope: str  #: SFR install scope: "pe" or "cube"
    rank_axis: int
    n_ranks: int
    grid: tuple  #: (PEs per cube, cubes)
    S_q: int  #: query rows per rank (prefill) / shared query rows (decode)
    S_kv_per_rank: int
    h_q: int
    h_kv: int
    d_head: int
    blocks: tuple  #: kernel block sizes after rank_axis
    mode: str  #: "functional" (small) or "timing" (llama70b)
    shape: str
    seed: int = 0

    @property
    def kernel(self) -> Callable:
        return attention_mesh_kv_kernel if self.kind == "prefill" else attention_mesh_mlo_kernel

    @property
    def context(self) -> int:
        """Tokens of K/V over all ranks."""
        return self.S_kv_per_rank * self.n_ranks

    def model_flops(self) -> int:
        """Attention FLOPs of the whole launch: QK^T and PV, every query row of every rank
        against the whole context (prefill: each rank its own rows; decode: every rank
        computes the shared rows' output)."""
        per_rank_rows = self.S_q * self.h_q
        if self.kind == "prefill":
            return 4 * per_rank_rows * self.context * self.d_head * self.n_ranks
        return 4 * per_rank_rows * self.context * self.d_head  # K/V read once, split over ranks


@dataclass
class PanelResult:
    spec: PanelSpec
    result: object  #: LaunchResult
    passed: bool
    max_abs_err: Optional[float]  #: None in timing mode
    max_rel_err: Optional[float]
    wall_seconds: float
    summary: dict = field(default_factory=dict)  #: kernbench.report.summary.summarize(result)
    failures: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def unit_mean_busy(self) -> dict:
        """Mean busy % over working PEs, by unit name."""
        return {u["unit"]: u["busy_pct"]["mean"] for u in self.summary["units"]}

    def link_wire_pct(self) -> float:
        """Mean over used links of the cycles a packet was on the wire (serialisation), in %."""
        lc = self.result.link_counters
        used = lc["bytes"] > 0
        cycles = self.summary["cycles"]
        return 100.0 * float(lc["busy"][used].mean()) / cycles if used.any() and cycles else 0.0

    def summary_lines(self) -> list[str]:
        s, sp = self.summary, self.spec
        t = s["totals"]
        if self.max_abs_err is None:
            check = "check: timing mode, no numerics"
        else:
            check = (f"check: max abs err {self.max_abs_err:.2e}, max rel err {self.max_rel_err:.2e} "
                     f"(tolerance {ATOL:g} + {RTOL:g}*|ref|, vs f64 reference)")
        busy = self.unit_mean_busy()
        lk = s["links"]
        sram = s["sram"]
        lines = [
            f"{sp.kind}: {sp.n_ranks} ranks ({sp.scope} ring, rank_axis {sp.rank_axis}), "
            f"S_q {sp.S_q}, context {sp.context}, h_q {sp.h_q}, h_kv {sp.h_kv}, d_head {sp.d_head}",
            check,
            f"cycles {s['cycles']:,} = {s['microseconds']:,.1f} us at {s['clock_ghz']:g} GHz "
            f"({self.wall_seconds:.2f} s to simulate)",
            f"{t['achieved_tflops']:.2f} TFLOP/s of {t['peak_tflops']:.2f} peak on {s['working_pes']} "
            f"working PEs ({100 * t['tflops_fraction']:.1f}%)",
            f"utilization (mean over working PEs): GEMM {busy['GEMM']:.0f}%, VECTOR {busy['VECTOR']:.0f}%, "
            f"DMA {busy['DMA']:.0f}%, links {self.link_wire_pct():.0f}% (wire busy, mean over "
            f"{lk['links_used']} used links)",
            f"link bytes {lk['bytes']:,} ({lk['achieved_gbps']:.1f} GB/s); peak SRAM {sram['peak_bytes'] / 2**20:.2f} MiB of "
            f"{sram['capacity_bytes'] / 2**20:.0f} MiB" + (" (OVER CAPACITY)" if sram["over_capacity"] else ""),
        ]
        lines += [f"FAIL: {f}" for f in self.failures]
        return lines


def panel_spec(name: str, hw: HardwareConfig, shape: str = "small", context: int | None = None,
               cubes: int | None = None, seed: int = 0) -> PanelSpec:
    """The launch a panel makes on ``hw`` at ``shape`` (``context`` tokens for llama70b)."""
    if name not in PANELS:
        raise ValueError(f"unknown diag panel {name!r}: expected one of {', '.join(PANELS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown diag shape {shape!r}: expected one of {', '.join(SHAPES)}")
    users, kind = name.split("_user_")
    if users == "single":
        scope, rank_axis, n_ranks = "pe", 0, hw.pes_per_cube
        grid = (hw.pes_per_cube, 1)
    else:
        default = SMALL_MULTI_USER_CUBES if shape == "small" else hw.n_cubes
        n_ranks = min(cubes or default, hw.n_cubes)
        scope, rank_axis = "cube", 1
        grid = (hw.pes_per_cube, n_ranks)
    if shape == "small":
        dims = SMALL
        if context is not None:
            raise ValueError("--context applies to --shape llama70b only")
        if kind == "prefill":
            S_q = S_kv = SMALL_PREFILL_ROWS
            blocks = (16, 16)  # block_q, block_kv: two query and two K/V blocks per rank
        else:
            S_q, S_kv = 1, SMALL_DECODE_ROWS
            blocks = (32,)  # decode block_kv: two DMA blocks per rank
        mode = "functional"
    else:
        dims = LLAMA70B
        ctx_len = context or LLAMA70B_CONTEXT
        if ctx_len % n_ranks:
            raise ValueError(f"context {ctx_len} does not split evenly over {n_ranks} ranks")
        S_kv = ctx_len // n_ranks
        if kind == "prefill":
            S_q = S_kv
            blocks = (256, 512)  # 2048 score rows (8 heads x 256) x 512 keys: 4 MiB of f32 scores
        else:
            S_q = 1
            blocks = (2048,)
        mode = "timing"
    return PanelSpec(name=name, kind=kind, scope=scope, rank_axis=rank_axis, n_ranks=n_ranks,
                     grid=grid, S_q=S_q, S_kv_per_rank=S_kv, blocks=blocks, mode=mode, shape=shape,
                     seed=seed, **dims)


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """softmax(Q K^T / sqrt(d)) V in f64 with GQA: q (S_q, h_q, d), k/v (S_kv, h_kv, d)."""
    S_q, h_q, d = q.shape
    h_kv = k.shape[1]
    G = h_q // h_kv
    q64, k64, v64 = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    out = np.empty((S_q, h_q, d))
    for h in range(h_q):
        s = q64[:, h, :] @ k64[:, h // G, :].T / math.sqrt(d)
        s -= s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        out[:, h, :] = (p / p.sum(axis=-1, keepdims=True)) @ v64[:, h // G, :]
    return out


def check_output(out: np.ndarray, ref: np.ndarray) -> tuple[bool, float, float]:
    """(within f16 tolerance, max abs error, max relative error)."""
    err = np.abs(np.asarray(out, dtype=np.float64) - ref)
    rel = err / (np.abs(ref) + ATOL)
    ok = bool(np.all(err <= ATOL + RTOL * np.abs(ref))) and bool(np.all(np.isfinite(out)))
    return ok, float(err.max()), float(rel.max())


def _make_data(spec: PanelSpec):
    rng = np.random.default_rng(spec.seed)
    n, d = spec.n_ranks, spec.d_head
    kv_shape = (n, spec.S_kv_per_rank, spec.h_kv, d)
    k = rng.standard_normal(kv_shape).astype(np.float16)
    v = rng.standard_normal(kv_shape).astype(np.float16)
    if spec.kind == "prefill":
        q = rng.standard_normal((n, spec.S_q, spec.h_q, d)).astype(np.float16)
    else:
        q = rng.standard_normal((spec.S_q, spec.h_q, d)).astype(np.float16)
    return q, k, v


def run_panel(spec: PanelSpec, hw: HardwareConfig, *, kernel: Callable | None = None,
              **launch_kw) -> PanelResult:
    """Place the panel's data, launch, and check the output (functional mode).

    ``kernel`` replaces the panel's kernel (same signature): the tests run a deliberately wrong
    kernel through the very same check."""
    from ..runtime.context import Context  # runtime sits above kernels; import at use

    ctx = Context(hw)
    ctx.install_sfr(scope=spec.scope, ring=False)
    over = spec.scope  # shard over the PEs of cube 0, or over cubes (replicated within each)
    functional = spec.mode == "functional"
    n, S_q, h_q, d = spec.n_ranks, spec.S_q, spec.h_q, spec.d_head
    if functional:
        q, k, v = _make_data(spec)
        kp = ctx.shard(k, axis=0, over=over, parts=n)
        vp = ctx.shard(v, axis=0, over=over, parts=n)
        qp = ctx.shard(q, axis=0, over=over, parts=n) if spec.kind == "prefill" else ctx.replicate(q)
    else:
        kp = ctx.empty((spec.S_kv_per_rank, spec.h_kv, d), "f16")
        vp = ctx.empty((spec.S_kv_per_rank, spec.h_kv, d), "f16")
        qp = ctx.empty((S_q, h_q, d), "f16")
    op = ctx.empty((S_q, h_q, d), "f16")
    args = (qp, kp, vp, op, S_q, spec.S_kv_per_rank, h_q, spec.h_kv, d, n, spec.rank_axis, *spec.blocks)
    t0 = time.perf_counter()
    result = ctx.launch(kernel or spec.kernel, spec.grid, *args, mode=spec.mode, **launch_kw)
    wall = time.perf_counter() - t0

    failures = []
    max_abs = max_rel = None
    if functional:
        k_all = k.reshape(n * spec.S_kv_per_rank, spec.h_kv, d)
        v_all = v.reshape(n * spec.S_kv_per_rank, spec.h_kv, d)
        max_abs = max_rel = 0.0
        for r in range(n):
            pe = (r, 0) if spec.rank_axis == 0 else (0, r)
            ref = attention_reference(q[r] if spec.kind == "prefill" else q, k_all, v_all)
            ok, a, rl = check_output(ctx.read(op, pe).reshape(S_q, h_q, d), ref)
            max_abs, max_rel = max(max_abs, a), max(max_rel, rl)
            if not ok:
                failures.append(f"rank {r} (PE {pe}) output differs from the reference: max abs err {a:.3g}")
    summary = summarize(result)
    if summary["sram"]["over_capacity"]:
        failures.append(f"peak SRAM {summary['sram']['peak_bytes']:,} bytes over capacity on "
                        + ", ".join(summary["sram"]["over_pe_names"][:4]))
    result.extra["diag"] = {"panel": spec.name, "model_flops": spec.model_flops(),
                            "max_abs_err": max_abs, "max_rel_err": max_rel}
    return PanelResult(spec=spec, result=result, passed=not failures, max_abs_err=max_abs,
                       max_rel_err=max_rel, wall_seconds=wall, summary=summary, failures=failures)


def run_panels(panels=None, hw="default", shape: str = "small", context: int | None = None,
               cubes: int | None = None, progress: Callable | None = None, **launch_kw) -> list[PanelResult]:
    """Run the named panels (all four by default) on ``hw`` (a preset name, TOML path or config).

    ``progress(description, done, total)`` is called before each panel and once at the end."""
    cfg = load_hw(hw)
    names = list(panels) if panels else list(PANELS)
    specs = [panel_spec(n, cfg, shape=shape, context=context, cubes=cubes) for n in names]
    out = []
    for i, spec in enumerate(specs):
        if progress is not None:
            progress(f"diag {spec.name}", i, len(specs))
        out.append(run_panel(spec, cfg, **launch_kw))
    if progress is not None:
        progress("diag", len(specs), len(specs))
    return out
