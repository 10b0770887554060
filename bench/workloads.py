"""Synthetic engine workloads for the speed benchmarks and the SimPy baseline.

Written directly against the engine's command vocabulary (``StreamBuilder`` and
``Program.from_streams``), not the ``tl`` language, so they measure the engine alone.

``ring_workload``: the issue's "64 PEs passing large messages around a ring while computing". One
cube of ``n_pes`` PEs, SFR install scope ``pe`` with ``ring=True``, so the PEs form one closed ring.
Every step each PE sends its current block east, receives the next block from the west and runs a
dot on the current block, so the link TX, link RX and GEMM units overlap. With ``double_buffer``
the recv of the next block is posted only once the previous step's dot is done (the buffer it
lands in is free again), so a GEMM slower than the link throttles the sender through credits.

``dma_workload``: every PE of every cube streams tiles from cube memory (DMA load), multiplies
them (GEMM), applies an exp (vector unit) and stores the result (DMA store). The PEs of a cube
share its memory channel, so every burst is arbitrated: the work is dominated by DMA bursts.

The number of heap events in ``detail="packet"`` grows with the bytes moved;
``ring_for_events`` sizes a ring workload for a target number of events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kernbench.common.pe_commands import Program, StreamBuilder, VecOp
from kernbench.hw import HardwareConfig, SfrInstall, load_hw

__all__ = [
    "Workload",
    "ring_hw",
    "ring_workload",
    "ring_for_events",
    "ring_packet_events_estimate",
    "dma_workload",
    "GEMM_K",
    "GEMM_N",
]

#: Default dot of the ring workload: the block (S bytes of f16) viewed as (S / (2*K), K),
#: times a (K, N) weight. With the default hardware this makes the GEMM ~75% of the link time
#: per step: both units busy, the link the bottleneck.
GEMM_K = 128
GEMM_N = 32


@dataclass
class Workload:
    """Everything ``kernbench._core.api.simulate`` takes, plus what built it."""

    name: str
    hw: HardwareConfig
    neighbours: np.ndarray
    program: Program
    params: dict = field(default_factory=dict)


def ring_hw(n_pes: int, base: HardwareConfig | None = None, **overrides) -> HardwareConfig:
    """One cube of ``n_pes`` PEs (the other parameters from ``base``, default preset ``default``)."""
    base = base or load_hw("default")
    return base.with_overrides({"n_cubes": 1, "pes_per_cube": n_pes, **overrides})


def _auto_gemm(message_bytes: int) -> tuple[int, int, int]:
    return (max(1, message_bytes // (2 * GEMM_K)), GEMM_N, GEMM_K)


def ring_workload(
    n_pes: int = 64,
    *,
    message_bytes: int = 256 * 1024,
    steps: int = 8,
    gemm: "tuple[int, int, int] | str | None" = "auto",
    double_buffer: bool = True,
    hw: HardwareConfig | None = None,
) -> Workload:
    """``n_pes`` PEs in one closed ring, ``steps`` rounds of send E / recv W / dot.

    ``gemm``: (m, n, k) of the dot each PE runs on its current block each step, ``"auto"`` for
    (message_bytes / 256, 32, 128), or None for no compute. ``hw`` supplies every parameter but
    the machine's shape, which is set to 1 cube x ``n_pes`` PEs.
    """
    if n_pes < 2:
        raise ValueError("a ring needs at least 2 PEs")
    if message_bytes < 1 or steps < 1:
        raise ValueError("message_bytes and steps must be >= 1")
    hw = ring_hw(n_pes, hw)
    if gemm == "auto":
        gemm = _auto_gemm(message_bytes)
    nbr = SfrInstall("pe", ring=True).neighbours(hw)
    streams = []
    for _g in range(n_pes):
        sb = StreamBuilder()
        # block 0: f16 data filled in place (one vector command; no DMA in this workload)
        blk = sb.vec(VecOp.FILL, max(1, message_bytes // 2), out_bytes=message_bytes, line=1)
        w = -1
        if gemm is not None:
            m, n, k = gemm
            w = sb.vec(VecOp.FILL, k * n, out_bytes=2 * k * n, line=2)
        prev_acc = -1
        for _j in range(steps):
            sb.send("E", blk, message_bytes, line=3)
            nxt = sb.recv("W", message_bytes, after=prev_acc if double_buffer else -1, line=4)
            if gemm is not None:
                prev_acc = sb.dot(blk, w, m, n, k, line=5)
            blk = nxt
        streams.append(sb.build())
    params = dict(n_pes=n_pes, message_bytes=message_bytes, steps=steps, gemm=gemm,
                  double_buffer=double_buffer)
    return Workload("ring", hw, nbr, Program.from_streams(streams), params)


def ring_packet_events_estimate(n_pes: int, message_bytes: int, steps: int,
                                gemm: "tuple[int, int, int] | str | None" = "auto",
                                hw: HardwareConfig | None = None) -> int:
    """Heap events ``detail="packet"`` pops for ``ring_workload``: per PE and step three per
    packet (sent, arrived, credit back), one per fold, one per send and recv completion; plus the
    fills. (The engine reports the exact count as ``EngineResult.heap_events``.)"""
    hw = hw or load_hw("default")
    if gemm == "auto":
        gemm = _auto_gemm(message_bytes)
    packets = math.ceil(message_bytes / hw.link.packet_bytes)
    folds = 0
    if gemm is not None:
        m, n, _k = gemm
        folds = math.ceil(m / hw.gemm.rows) * math.ceil(n / hw.gemm.cols)
    fills = 2 if gemm is not None else 1
    return n_pes * (steps * (3 * packets + folds + 2) + fills)


def ring_for_events(target_events: int, n_pes: int = 64, steps: int = 8, **kw) -> Workload:
    """A ring workload sized so that ``detail="packet"`` pops about ``target_events`` heap
    events: ``steps`` fixed, the message size (whole packets) chosen to fit."""
    hw = kw.get("hw") or load_hw("default")
    gemm = kw.get("gemm", "auto")
    pb = hw.link.packet_bytes

    def events(packets: int) -> int:
        return ring_packet_events_estimate(n_pes, packets * pb, steps, gemm, hw)

    lo, hi = 1, 2
    while events(hi) < target_events:  # the estimate grows with the message size
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if events(mid) <= target_events else (lo, mid)
    packets = min((lo, hi), key=lambda p: abs(events(p) - target_events))
    return ring_workload(n_pes, message_bytes=packets * pb, steps=steps, **kw)


def dma_workload(
    n_cubes: int = 8,
    pes_per_cube: int = 8,
    *,
    tiles: int = 8,
    tile_bytes: int = 64 * 1024,
    gemm_n: int = 32,
    gemm_k: int = 128,
    hw: HardwareConfig | None = None,
) -> Workload:
    """Every PE streams ``tiles`` tiles of ``tile_bytes`` through load -> dot -> exp -> store,
    prefetching one tile ahead. All PEs of a cube share its memory channel (round robin per burst).
    """
    base = hw or load_hw("default")
    hw = base.with_overrides({"n_cubes": n_cubes, "pes_per_cube": pes_per_cube})
    nbr = SfrInstall("pe").neighbours(hw)  # no links used
    m = max(1, tile_bytes // (2 * gemm_k))
    streams = []
    for _g in range(hw.n_pes):
        sb = StreamBuilder()
        w = sb.vec(VecOp.FILL, gemm_k * gemm_n, out_bytes=2 * gemm_k * gemm_n, line=1)
        nxt = sb.load(tile_bytes, line=2)
        for j in range(tiles):
            cur = nxt
            if j + 1 < tiles:
                nxt = sb.load(tile_bytes, line=2)  # prefetch: queued on DMA before the store
            acc = sb.dot(cur, w, m, gemm_n, gemm_k, line=3)
            y = sb.vec(VecOp.EXP, m * gemm_n, acc, line=4)
            sb.store(y, 2 * m * gemm_n, line=5)
        streams.append(sb.build())
    params = dict(n_cubes=n_cubes, pes_per_cube=pes_per_cube, tiles=tiles, tile_bytes=tile_bytes,
                  gemm=(m, gemm_n, gemm_k))
    return Workload("dma", hw, nbr, Program.from_streams(streams), params)
