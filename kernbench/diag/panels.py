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
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from ..common.errors import is_whole, pe_label, short_repr
from ..hw.config import HardwareConfig, load_hw
from ..kernels.attention import (DEFAULT_BLOCK_KV, DEFAULT_BLOCK_Q, DEFAULT_DECODE_BLOCK_KV,
                                 attention_mesh_kv_kernel, attention_mesh_mlo_kernel, zigzag_positions)
from ..report.summary import summarize
from ..report.table import fmt_bytes_pair, fmt_num, fmt_seconds, fmt_value, plural

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
    "tolerance_used",
    "tune_configs",
    "tune_panel",
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
#: the tuner's candidates (``run_panels(tune=True)``, ``kernbench diag --tune``), per shape and
#: panel kind: prefill (block_q, block_kv) is their product, decode block_kv each; clamped to the
#: panel's rows as the kernels clamp them and deduplicated (tune_configs). The panel's own blocks
#: are always a candidate.
TUNE_CANDIDATES = {
    "llama70b": {"block_q": (8, 16, 32, 64), "block_kv": (1024, 2048, 4096),
                 "decode_block_kv": (128, 256, 512, 1024, 2048, 4096)},
    "small": {"block_q": (8, 16, 32), "block_kv": (8, 16, 32), "decode_block_kv": (16, 32, 64)},
}


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
    #: causal mask: prefill in the zigzag layout; decode with its query rows the newest tokens
    #: (several rows only: one row sees the whole context either way; kernbench.kernels.attention)
    causal: bool = False

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
        computes the shared rows' output); causal prefill counts half, causal decode the keys
        each row sees (row i of S_q: the context less S_q - 1 - i)."""
        per_rank_rows = self.S_q * self.h_q
        if self.kind == "prefill":
            full = 4 * per_rank_rows * self.context * self.d_head * self.n_ranks
            # causal: the unmasked half (the FlashAttention convention, Dao 2023, benchmarks)
            return full // 2 if self.causal else full
        if self.causal:  # row i sees context - (S_q - 1 - i) keys
            seen = self.S_q * self.context - self.S_q * (self.S_q - 1) // 2
            return 4 * self.h_q * seen * self.d_head
        return 4 * per_rank_rows * self.context * self.d_head  # K/V read once, split over ranks


@dataclass
class PanelResult:
    spec: PanelSpec
    result: object  #: LaunchResult
    passed: bool
    max_abs_err: Optional[float]  #: None in timing mode
    max_rel_err: Optional[float]
    wall_seconds: float
    #: worst element's error as a fraction of its tolerance ATOL + RTOL*|ref| (None in timing mode)
    tolerance_used: Optional[float] = None
    summary: dict = field(default_factory=dict)  #: kernbench.report.summary.summarize(result)
    failures: list = field(default_factory=list)
    #: ``run_panels(tune=True)``: the tuner's choice for this panel (see :func:`tune_panel`)
    tuning: Optional[dict] = None

    def _model_tflops(self, s: dict) -> str:
        """Causal: the rate counting the attention's unmasked part (PanelSpec.model_flops, the
        FlashAttention convention: half, for prefill); the line's first rate counts the FLOPs the
        GEMM units ran, the masked part of the diagonal blocks included."""
        secs = s["microseconds"] * 1e-6
        tf = self.spec.model_flops() / secs / 1e12 if secs else 0.0
        peak = s["totals"]["peak_tflops"]
        return (f"; {fmt_num(tf)} TFLOP/s ({fmt_num(100 * tf / peak if peak else 0.0)}%) counting the "
                f"unmasked {'half' if self.spec.kind == 'prefill' else 'part'}")

    @property
    def name(self) -> str:
        return self.spec.name

    def unit_mean_busy(self) -> dict:
        """Mean busy % over working PEs, by unit name."""
        return {u["unit"]: u["busy_pct"]["mean"] for u in self.summary["units"]}

    def gemm_balance(self) -> float:
        """Least over most GEMM-busy cycles among the working PEs (1.0: every rank the same
        work; causal prefill is sharded zigzag so that it is)."""
        from ..common.pe_commands import Unit

        busy = self.result.unit_counters["busy"][self.result.working_pes, int(Unit.GEMM)]
        return float(busy.min() / busy.max()) if len(busy) and busy.max() else 1.0

    def attainable(self) -> tuple[int, str]:
        """The model's bound on this launch, read off the counters: the busy cycles of its
        busiest resource, ``(cycles, resource)``. Resources (docs/hardware-model.md): the GEMM
        and vector units of each working PE (busy = the cycles their commands ran), each PE's
        DMA unit (its commands one after another, each its bursts and ``dma.latency_cycles``:
        busy less arbitration stall), each cube's memory channel (the cycles its PEs' bursts
        held it, each burst ``ceil(bytes / dma.channel_bytes_per_cycle)``: DMA busy less
        arbitration and latency) and each link (serialisation cycles, or its packets' credit
        round trips where the receive queue is short). No schedule of the same
        commands can finish sooner. kernbench.report.summary.bound, which the report's "bound"
        row shows for any launch."""
        from ..report.summary import bound

        b = bound(self.result)  # (the one place: the report's "bound" row reads it too)
        return b["cycles"], b["resource"] or "GEMM"

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
            check = ("check: timing mode, no numerics (" + ("FAIL: its peak SRAM is over capacity)"
                     if s["sram"]["over_capacity"] else "PASS: it ran and its peak SRAM fits)"))
        else:
            check = (f"check: max abs err {fmt_num(self.max_abs_err)}; worst element at "
                     f"{100 * self.tolerance_used:.0f}% of its tolerance {ATOL:g} + {RTOL:g}*|ref| "
                     f"(vs f64 reference)")
        busy = self.unit_mean_busy()
        lk = s["links"]
        sram = s["sram"]
        lines = [
            f"{sp.kind}{_causal_text(sp)}: {plural(sp.n_ranks, 'rank')} (open line over "
            f"{'PEs' if sp.scope == 'pe' else 'cubes'}, SFR scope {sp.scope}, rank_axis {sp.rank_axis}), "
            f"S_q {sp.S_q}, context {sp.context}, h_q {sp.h_q}, h_kv {sp.h_kv}, d_head {sp.d_head}, "
            f"blocks {sp.blocks}",
            check,
            f"cycles {s['cycles']:,} = {fmt_seconds(s['microseconds'] * 1e-6)} at {fmt_value(s['clock_ghz'])} GHz "
            f"({self.wall_seconds:.2f} s to simulate)",
            f"{fmt_num(t['achieved_tflops'])} TFLOP/s of {fmt_num(t['peak_tflops'])} peak on "
            f"{plural(s['working_pes'], 'working PE')} ({fmt_num(100 * t['tflops_fraction'])}%)" + (self._model_tflops(s) if sp.causal else ""),
            f"utilization (mean over working PEs): GEMM {busy['GEMM']:.0f}%, VECTOR {busy['VECTOR']:.0f}%, "
            f"DMA {busy['DMA']:.0f}%, "
            + (f"links {self.link_wire_pct():.0f}% (wire busy, mean over {plural(lk['links_used'], 'used link')})"
               if lk["links_used"] else "no link traffic") + f"; GEMM balance {self.gemm_balance():.3f} (least/most busy rank)",
            "attainable {:,} cycles (busiest resource: {}, docs/kernels.md); the launch takes {:.3f}x that".format(
                *self.attainable(), s["cycles"] / max(1, self.attainable()[0])),
            f"link bytes {lk['bytes']:,} ({fmt_num(lk['achieved_gbps'])} GB/s); peak SRAM "
            "{} of {}".format(*fmt_bytes_pair(sram["peak_bytes"], sram["capacity_bytes"]))
            + (" (OVER CAPACITY)" if sram["over_capacity"] else ""),
        ]
        if self.tuning is not None:
            lines.append(tuning_line(self.tuning))
        lines += [f"FAIL: {f}" for f in self.failures]
        return lines


def tuning_line(t: dict) -> str:
    """One line naming the tuner's choice and its gain over the default blocks."""
    how = ("from the cache" if t["from_cache"] else
           f"{t['computed']} launches in {t['cpu_seconds']:.1f} s CPU, {t['wall_seconds']:.1f} s wall")
    n = f"{t['configs']} config{'s' if t['configs'] != 1 else ''}"
    n += f", {t['over_sram']} over SRAM" if t["over_sram"] else ""
    if t["blocks"] is None:
        return (f"tuned: no config fits SRAM ({n}); the default blocks {tuple(t['default_blocks'])} kept "
                f"({how}): raise sram.capacity_bytes")
    gain = (f"gain {t['gain']:.4f}x over the default blocks {tuple(t['default_blocks'])} "
            f"({t['default_cycles']:,} -> {t['cycles']:,} cycles)" if t["gain"] is not None
            else f"the default blocks {tuple(t['default_blocks'])} do not fit SRAM")
    return f"tuned: blocks {tuple(t['blocks'])} chosen of {n}; {gain} ({how})"


def _check_context(names, hw: HardwareConfig, shape, context, cubes, causal) -> None:
    """At llama70b's shape, a context every panel of ``names`` splits evenly, or a ValueError
    naming what each needs and their least common multiple (a panel at a time, following one
    panel's error led to the next one's: a review on 3 PEs by 5 cubes)."""
    if shape != "llama70b" or (context is not None and (not is_whole(context) or context < 1)):
        return  # (panel_spec says what is wrong)
    needs = {}
    for name in names:
        if not isinstance(name, str) or name not in PANELS:
            return
        users, kind = name.split("_user_")
        if users == "multi" and cubes is not None and not (is_whole(cubes) and 1 <= cubes <= hw.n_cubes):
            return
        n = (cubes or hw.n_cubes) if users == "multi" else hw.pes_per_cube  # (as panel_spec's)
        needs[name] = n * (2 if causal and kind == "prefill" else 1)
    ctx_len = LLAMA70B_CONTEXT if context is None else int(context)
    lcm = math.lcm(*needs.values()) if needs else 1
    if ctx_len % lcm and len(set(needs.values())) > 1:
        given = "the default context" if context is None else "context"
        each = ", ".join(f"{name} a multiple of {n}" for name, n in needs.items())
        raise ValueError(f"{given} {ctx_len} does not split evenly over every panel's ranks ({each}"
                         f"{', causal prefill in two zigzag chunks a rank' if causal else ''}): give a "
                         f"context that is a multiple of {lcm} (--context)")


def panel_spec(name: str, hw: HardwareConfig, shape: str = "small", context: int | None = None,
               cubes: int | None = None, seed: int = 0, causal: bool = False,
               decode_rows: int = 1) -> PanelSpec:
    """The launch a panel makes on ``hw`` at ``shape`` (``context`` tokens for llama70b).

    ``causal`` applies to the prefill panels (zigzag layout, causal mask) and to decode panels of
    several rows (the newest tokens, each row seeing the keys up to its own); a decode panel's
    one query row is the newest token, which sees the whole context either way. ``decode_rows``: query
    rows per sequence of the decode panels (1; more for speculative or chunked decode).
    ``cubes``: the multi-user panels' ranks, 1 .. ``hw.n_cubes`` (None: every cube, at most
    SMALL_MULTI_USER_CUBES at the small shape); the single-user panels ignore it. Raises
    ValueError for an unknown panel or shape, or a context, cubes or causal they cannot run."""
    if not isinstance(name, str) or name not in PANELS:
        raise ValueError(f"unknown diag panel {short_repr(name)}: expected one of {', '.join(PANELS)}")
    if not isinstance(shape, str) or shape not in SHAPES:
        raise ValueError(f"unknown diag shape {short_repr(shape)}: expected one of {', '.join(SHAPES)}")
    if not isinstance(causal, (bool, np.bool_)) and not (is_whole(causal) and causal in (0, 1)):
        raise ValueError(f"causal must be True or False (or 1 or 0), got {short_repr(causal)}")
    causal = bool(causal)
    if not is_whole(decode_rows) or decode_rows < 1:
        raise ValueError(f"decode_rows must be a positive int, got {short_repr(decode_rows)}")
    decode_rows = int(decode_rows)
    if context is not None and (not is_whole(context) or context < 1):
        raise ValueError(f"context must be None (the shape's) or a positive int of tokens, got "
                         f"{short_repr(context)}")
    users, kind = name.split("_user_")
    if users == "single":
        scope, rank_axis, n_ranks = "pe", 0, hw.pes_per_cube
        grid = (hw.pes_per_cube, 1)
    else:
        default = SMALL_MULTI_USER_CUBES if shape == "small" else hw.n_cubes
        if cubes is not None:
            if not is_whole(cubes) \
                    or not 1 <= cubes <= hw.n_cubes:
                raise ValueError(f"cubes must be an int from 1 to the hardware's {hw.n_cubes} "
                                 f"cubes, got {short_repr(cubes)}")
            cubes = int(cubes)
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
            S_q, S_kv = decode_rows, SMALL_DECODE_ROWS
            blocks = (32,)  # decode block_kv: two DMA blocks per rank
        mode = "functional"
    else:
        dims = LLAMA70B
        ctx_len = LLAMA70B_CONTEXT if context is None else int(context)
        need = n_ranks * (2 if causal and kind == "prefill" else 1)  # (causal: two zigzag chunks)
        if ctx_len % need:
            given = "the default context" if context is None else "context"
            raise ValueError(f"{given} {ctx_len} does not split evenly over {n_ranks} ranks"
                             + (" in two zigzag chunks each (causal)" if need > n_ranks else "")
                             + f": give a context that is a multiple of {need} (--context; panel_spec's "
                             f"context=)")
        S_kv = ctx_len // n_ranks
        if kind == "prefill":
            S_q = S_kv
            blocks = (DEFAULT_BLOCK_Q, DEFAULT_BLOCK_KV)  # the kernel's defaults, docs/kernels.md
        else:
            S_q = decode_rows
            blocks = (DEFAULT_DECODE_BLOCK_KV,)
        mode = "timing"
    if kind == "decode" and S_q > n_ranks * S_kv:
        raise ValueError(f"decode_rows must be at most the context's {n_ranks * S_kv:,} tokens (the "
                         f"query rows are its newest), got {S_q:,}")
    # (one decode row is the newest token: it sees the whole context, causal or not)
    causal = bool(causal) and (kind == "prefill" or S_q > 1)
    if causal and kind == "prefill" and S_q % 2:
        raise ValueError(f"causal prefill needs an even number of rows per rank (two zigzag "
                         f"chunks), got {S_q}")
    return PanelSpec(name=name, kind=kind, scope=scope, rank_axis=rank_axis, n_ranks=n_ranks,
                     grid=grid, S_q=S_q, S_kv_per_rank=S_kv, blocks=blocks, mode=mode, shape=shape,
                     seed=seed, causal=causal, **dims)


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, q_pos=None, k_pos=None) -> np.ndarray:
    """softmax(Q K^T / sqrt(d)) V in f64 with GQA: q (S_q, h_q, d), k/v (S_kv, h_kv, d) -> (S_q, h_q, d).

    Causal when ``q_pos`` and ``k_pos`` (int arrays of S_q and S_kv global positions) are given:
    query i attends to key j iff ``k_pos[j] <= q_pos[i]`` (every query must see one key)."""
    S_q, h_q, d = q.shape
    h_kv = k.shape[1]
    G = h_q // h_kv
    q64, k64, v64 = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    if (q_pos is None) != (k_pos is None):
        raise ValueError("attention_reference: give both q_pos and k_pos (causal) or neither")
    allowed = None
    if q_pos is not None:
        allowed = np.asarray(k_pos)[None, :] <= np.asarray(q_pos)[:, None]
        if not allowed.any(axis=1).all():
            raise ValueError("attention_reference: a query row sees no key (causal)")
    out = np.empty((S_q, h_q, d))
    for h in range(h_q):
        s = q64[:, h, :] @ k64[:, h // G, :].T / math.sqrt(d)
        if allowed is not None:
            s = np.where(allowed, s, -np.inf)
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


def tolerance_used(out: np.ndarray, ref: np.ndarray) -> float:
    """The worst element's error as a fraction of its own tolerance ATOL + RTOL * |ref|: at most 1
    where check_output passes (inf for a non-finite output)."""
    out = np.asarray(out, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        return float("inf")
    return float((np.abs(out - ref) / (ATOL + RTOL * np.abs(ref))).max())


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


#: launch options a panel launch reusing another panel's streams may take (they go to the engine)
_REUSE_OPTIONS = frozenset({"detail", "max_cycles", "record_events", "strict_sram", "replay", "steady"})


def _rank_pe(spec: PanelSpec, hw: HardwareConfig, r: int) -> int:
    """Global index of rank r's PE: PE r of cube 0 (rank_axis 0) or PE 0 of cube r (rank_axis 1)."""
    return r if spec.rank_axis == 0 else r * hw.pes_per_cube


def _stream_key(spec: PanelSpec, hw: HardwareConfig, args: tuple, kernel_kwargs: dict) -> tuple:
    """What rank r's command stream depends on, rank_axis and grid aside.

    The shipped kernels read the launch's ``rank_axis`` only through ``rank =
    program_id(axis=rank_axis)`` (kernels/_common.py ``_rank``; a PE with ``program_id(0) != 0``
    under rank_axis 1 returns at once), and the SFR install only through which ports of a rank are
    wired: rank r of an open line of n ranks has a west neighbour iff r > 0 and an east one iff
    r < n - 1 whether the line runs over the PEs of a cube or over cubes. So two panels with equal
    keys emit the same stream on rank r, the one on rank r's PE; the silent PEs are traced anyway.
    Timing mode only (functional replay needs each PE's own values). The device addresses the
    kernel sees are part of the key."""
    return (spec.kind, spec.mode, spec.S_q, spec.S_kv_per_rank, spec.h_q, spec.h_kv, spec.d_head,
            spec.n_ranks, tuple(spec.blocks), spec.causal, (hw.n_cubes, hw.pes_per_cube),
            tuple(a.addr if hasattr(a, "addr") else a for a in args[:10] + args[11:]),  # [10]: rank_axis
            tuple(sorted(kernel_kwargs.items())))



def panel_arrays(ctx, spec: PanelSpec, data: tuple | None) -> tuple:
    """The panel's (q, k, v, o) device arrays on ``ctx``, named as the kernels' parameters
    (reports and errors name them so, not a0..a3): with ``data`` (the host q, k, v:
    :func:`_make_data`), k and v sharded over the PEs of cube 0 or over cubes (replicated
    within each: ``spec.scope``), q too for prefill, replicated for decode; else empty f16
    arrays of their shapes (timing mode needs no data). o is empty either way."""
    n, S_q, h_q, d = spec.n_ranks, spec.S_q, spec.h_q, spec.d_head
    if data is not None:
        q, k, v = data
        kp = ctx.shard(k, axis=0, over=spec.scope, parts=n, name="k")
        vp = ctx.shard(v, axis=0, over=spec.scope, parts=n, name="v")
        qp = (ctx.shard(q, axis=0, over=spec.scope, parts=n, name="q") if spec.kind == "prefill"
              else ctx.replicate(q, name="q"))
    else:
        kp = ctx.empty((spec.S_kv_per_rank, spec.h_kv, d), "f16", name="k")
        vp = ctx.empty((spec.S_kv_per_rank, spec.h_kv, d), "f16", name="v")
        qp = ctx.empty((S_q, h_q, d), "f16", name="q")
    return qp, kp, vp, ctx.empty((S_q, h_q, d), "f16", name="o")

def run_panel(spec: PanelSpec, hw: HardwareConfig, *, kernel: Callable | None = None,
              trace_cache: dict | None = None, **launch_kw) -> PanelResult:
    """Place the panel's data, launch, and check the output (functional mode).

    ``kernel`` replaces the panel's kernel (same signature): the tests run a deliberately wrong
    kernel through the very same check. ``trace_cache`` (a dict, shared by the panels of one
    :func:`run_panels`): a timing-mode panel whose per-rank streams another panel already traced
    (the single_user and multi_user pair of prefill, and of decode) copies them instead of tracing
    them again (:func:`_stream_key`); the result is the same launch's, exactly. A panel whose
    streams enter the cache keeps its command array and engine tables (TracedLaunch.release)
    for the panels that copy it: :func:`run_panels` releases it once they have run."""
    from ..runtime import executor  # runtime sits above kernels; import at use
    from ..runtime.context import Context

    ctx = Context(hw)
    ctx.install_sfr(scope=spec.scope, ring=False)
    functional = spec.mode == "functional"
    n, S_q, h_q, d = spec.n_ranks, spec.S_q, spec.h_q, spec.d_head
    if functional:
        q, k, v = data = _make_data(spec)
    qp, kp, vp, op = panel_arrays(ctx, spec, data if functional else None)
    args = (qp, kp, vp, op, S_q, spec.S_kv_per_rank, h_q, spec.h_kv, d, n,
            spec.rank_axis, *spec.blocks)
    t0 = time.perf_counter()
    kernel_kwargs = dict(launch_kw.pop("kernel_kwargs", None) or {})
    if spec.causal:
        kernel_kwargs["causal"] = True
    if (trace_cache is not None and kernel is None and not functional
            and launch_kw.keys() <= _REUSE_OPTIONS):
        key = _stream_key(spec, hw, args, kernel_kwargs)
        ranks = [_rank_pe(spec, hw, r) for r in range(n)]
        reuse = None
        if key in trace_cache:
            src, src_pes = trace_cache[key]
            reuse = (src, dict(zip(ranks, src_pes)))
        traced, _, _ = executor.trace_launch(ctx, spec.kernel, spec.grid, args, kernel_kwargs,
                                             mode=spec.mode, reuse=reuse,
                                             replay=launch_kw.pop("replay", None))
        source = key not in trace_cache  # its commands stay for the panels that copy them
        trace_cache.setdefault(key, (traced, ranks))
        result = executor.time_traced(ctx, spec.kernel, args, kernel_kwargs, traced, None, None,
                                      mode=spec.mode, release=not source, **launch_kw)
    else:
        result = ctx.launch(kernel or spec.kernel, spec.grid, *args, mode=spec.mode,
                            kernel_kwargs=kernel_kwargs, **launch_kw)
    wall = time.perf_counter() - t0

    failures = []
    max_abs = max_rel = None
    if functional:
        k_all = k.reshape(n * spec.S_kv_per_rank, spec.h_kv, d)
        v_all = v.reshape(n * spec.S_kv_per_rank, spec.h_kv, d)
        max_abs = max_rel = used = 0.0
        # causal: rank r's rows are the zigzag positions zpos[r], the K/V of every rank in rank
        # order are zpos.ravel() (the data is random either way; the layout gives it positions)
        # causal decode: the query rows are the newest tokens, the K/V in rank order
        ctx_len = n * spec.S_kv_per_rank
        zpos = zigzag_positions(ctx_len, n) if spec.causal and spec.kind == "prefill" else None
        for r in range(n):
            pe = (r, 0) if spec.rank_axis == 0 else (0, r)
            pos = {}
            if zpos is not None:
                pos = dict(q_pos=zpos[r], k_pos=zpos.ravel())
            elif spec.causal:
                pos = dict(q_pos=ctx_len - S_q + np.arange(S_q), k_pos=np.arange(ctx_len))
            ref = attention_reference(q[r] if spec.kind == "prefill" else q, k_all, v_all, **pos)
            out = ctx.read(op, pe).reshape(S_q, h_q, d)
            ok, a, rl = check_output(out, ref)
            max_abs, max_rel = max(max_abs, a), max(max_rel, rl)
            used = max(used, tolerance_used(out, ref))
            if not ok:
                failures.append(f"rank {r} ({pe_label(pe)}) output differs from the reference: max abs err {a:.3g}")
    summary = summarize(result)
    if summary["sram"]["over_capacity"]:
        over = summary["sram"]["over_pe_names"]
        failures.append(f"peak SRAM {summary['sram']['peak_bytes']:,} bytes, over the capacity of "
                        f"{hw.sram.capacity_bytes:,} bytes, on "
                        + ", ".join(over[:4]) + (f" and {len(over) - 4} more PEs" if len(over) > 4 else "")
                        + f": raise sram.capacity_bytes to at least {summary['sram']['peak_bytes']:,}, or "
                        f"take smaller blocks (--tune picks the fastest that fit)")
    result.extra["diag"] = {"panel": spec.name, "passed": not failures, "failures": list(failures),
                            "causal": spec.causal, "model_flops": spec.model_flops(),
                            "max_abs_err": max_abs, "max_rel_err": max_rel,
                            "tolerance_used": used if functional else None}
    return PanelResult(spec=spec, result=result, passed=not failures, max_abs_err=max_abs,
                       max_rel_err=max_rel, wall_seconds=wall, summary=summary, failures=failures,
                       tolerance_used=used if functional else None)


def _causal_text(sp: PanelSpec) -> str:
    """The panel header's word on its mask."""
    if not sp.causal:
        return ""
    return " causal (zigzag)" if sp.kind == "prefill" else " causal (query rows the newest tokens)"


def _effective_blocks(spec: PanelSpec, blocks) -> tuple:
    """The blocks the kernel really uses on ``spec``'s shape (it clamps them to the rows it has)."""
    if spec.kind == "prefill":
        c = spec.S_q // 2 if spec.causal else spec.S_kv_per_rank
        return (min(int(blocks[0]), c if spec.causal else spec.S_q), min(int(blocks[1]), c))
    return (min(int(blocks[0]), spec.S_kv_per_rank),)


def _blocks_config(spec: PanelSpec, blocks) -> dict:
    names = ("block_q", "block_kv") if spec.kind == "prefill" else ("block_kv",)
    return dict(zip(names, blocks))


def tune_configs(spec: PanelSpec) -> tuple[list[dict], dict]:
    """``(configs, default)``: the tuner's candidate blocks for ``spec`` (TUNE_CANDIDATES of its
    shape and kind, clamped to its rows as the kernel clamps them, without duplicates) as keyword
    dicts, and the panel's own blocks, clamped (always one of the candidates)."""
    cand = TUNE_CANDIDATES[spec.shape]
    if spec.kind == "prefill":
        raw = [(bq, bkv) for bq in cand["block_q"] for bkv in cand["block_kv"]]
    else:
        raw = [(b,) for b in cand["decode_block_kv"]]
    default = _effective_blocks(spec, spec.blocks)
    seen = []
    for b in [*raw, default]:
        e = _effective_blocks(spec, b)
        if e not in seen:
            seen.append(e)
    return [_blocks_config(spec, b) for b in seen], _blocks_config(spec, default)


def tune_panel(spec: PanelSpec, hw, configs: list | None = None, cache=True):
    """Tune ``spec``'s block sizes on ``hw`` with :func:`kernbench.sweeps.tune`: every candidate
    (``configs``, default :func:`tune_configs`) launched in timing mode with strict SRAM checking,
    the fastest that fits chosen, the panel's own blocks timed for the gain. Cached on disk
    (kernbench.common.cache, namespace "tune") by the panel's shapes, the hardware, the configs and
    kernbench's code (the kernels): a second call launches nothing. Returns the
    :class:`~kernbench.sweeps.TuneResult`."""
    from ..sweeps import panel_launch, tune  # the sweeps sit above the diag panels

    cands, default = tune_configs(spec)
    target = panel_launch(spec.name, shape=spec.shape,
                          context=spec.context if spec.shape == "llama70b" else None,
                          cubes=spec.n_ranks if spec.scope == "cube" else None, causal=spec.causal,
                          decode_rows=spec.S_q if spec.kind == "decode" else 1)
    return tune(target, cands if configs is None else configs, hw=hw, default=default, cache=cache)


#: the tuning figures of one run, not of the choice: left out of a launch's JSON
_RUN_ONLY = frozenset({"table", "from_cache", "computed", "cpu_seconds", "wall_seconds"})


def _tuning_info(spec: PanelSpec, t, cpu: float, wall: float) -> dict:
    """The tuner's choice for a panel, as plain data (PanelResult.tuning, --json)."""
    names = ("block_q", "block_kv") if spec.kind == "prefill" else ("block_kv",)
    return {"blocks": None if t.best is None else [t.best[n] for n in names],
            "default_blocks": [t.default[n] for n in names], "cycles": t.cycles,
            "default_cycles": t.default_cycles, "gain": t.gain, "configs": len(t.table),
            "over_sram": sum(1 for r in t.table if r.get("error_type") == "SramCapacityError"),
            "table": t.table, "from_cache": t.from_cache, "computed": t.computed,
            "cpu_seconds": cpu, "wall_seconds": wall}


def run_panels(panels=None, hw="default", shape: str = "small", context: int | None = None,
               cubes: int | None = None, progress: Callable | None = None, causal: bool = False,
               decode_rows: int = 1, reuse_traces: bool = True, tune: bool = False, tune_cache=True,
               **launch_kw) -> list[PanelResult]:
    """Run the named panels (all four by default) on ``hw`` (a preset name, TOML path or config).

    ``reuse_traces``: a panel whose per-rank command streams an earlier panel already traced
    copies them (see :func:`run_panel`'s ``trace_cache``); False traces every panel in full.

    ``tune``: each panel's block sizes come from the tuner (:func:`tune_panel`: the fastest of
    :func:`tune_configs` that fits SRAM, cached on disk in ``tune_cache``: True for the kernbench
    cache folder, a folder, or False); ``PanelResult.tuning`` holds the choice and its gain over
    the panel's own blocks.

    ``progress(description, done, total)`` is called before each panel and once at the end."""
    cfg = load_hw(hw)
    if isinstance(panels, str):  # (one name: a list of its letters otherwise)
        raise ValueError(f"panels must be a list of panel names, got the string {short_repr(panels)}: "
                         f"pass [{short_repr(panels)}]")
    names = list(PANELS) if panels is None else list(panels)
    if not names:
        raise ValueError(f"panels: no panel given (None runs all: {', '.join(PANELS)})")
    _check_context(names, cfg, shape, context, cubes, causal)
    specs = [panel_spec(n, cfg, shape=shape, context=context, cubes=cubes, causal=causal,
                        decode_rows=decode_rows) for n in names]
    out = []
    cache = {} if reuse_traces else None
    for i, spec in enumerate(specs):
        tuning = None
        if tune:
            if progress is not None:
                progress(f"tune {spec.name}", i, len(specs))
            t0, c0 = time.perf_counter(), time.process_time()
            t = tune_panel(spec, cfg, cache=tune_cache)
            tuning = _tuning_info(spec, t, time.process_time() - c0, time.perf_counter() - t0)
            if tuning["blocks"] is not None:
                spec = replace(spec, blocks=tuple(tuning["blocks"]))
        if progress is not None:
            progress(f"diag {spec.name}", i, len(specs))
        p = run_panel(spec, cfg, trace_cache=cache, **launch_kw)
        if tuning is not None:
            p.tuning = tuning
            # (not the tuner's seconds nor whether the cache answered: the JSON the same bytes
            # every run, as a launch's is; the printed line and PanelResult.tuning have them)
            p.result.extra["diag"]["tuning"] = {k: v for k, v in tuning.items() if k not in _RUN_ONLY}
        out.append(p)
    for traced, _ in (cache or {}).values():
        traced.release()  # the panels copying its streams have run
    if progress is not None:
        progress("diag", len(specs), len(specs))
    return out
