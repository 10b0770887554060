"""Why a GEMM unit runs below its peak: each dot's busy cycles split into what the array's MACs
did and what the model's formula charges beside them (docs/hardware-model.md, "GEMM unit").

A dot (M,K) x (K,N) on an R x C array takes ``folds = ceil(M/R) * ceil(N/C)`` passes of K
through the array. Its cycles, exactly as the formula counts them, are the sum of four parts:

- ``mac``: ``M * N * K / (R * C)``, the cycles the dot would take with every cell busy every
  cycle (its flops at the array's peak of ``2 * R * C`` flop/cycle);
- ``edge``: ``folds * K - mac``, the idle cells of partial folds (M not a multiple of R, or N
  of C: a partial fold costs a full one);
- ``fill_drain``: the skew in and drain out of the array, ``R + C - 2`` a fold with one
  accumulator buffer; with two, ``R + C - 2`` once (the last fold) plus, on every other fold,
  what ``ceil((R + C - 2) / 2)`` adds over K when K is the smaller;
- ``sram``: what the SRAM operand bound (``ceil((R + C) * K * esize / sram.bytes_per_cycle)``
  a fold) adds over the other terms where it binds.

So ``mac + edge + fill_drain + sram`` is the dot's busy cycles (``mac`` and ``edge`` are
fractions of a cycle where ``M * N * K`` is not a multiple of ``R * C``), and ``mac / busy`` is
the fraction of the array's peak the dot reached while the unit ran it. The split is an
attribution in this order (edge before fill and drain before SRAM), not a claim that removing
one part would leave the others unchanged.
"""
from __future__ import annotations

import numpy as np

from ..common.pe_commands import Opcode

__all__ = ["PARTS", "dot_parts", "gemm_parts"]

#: the parts of a dot's busy cycles, in the order they are attributed
PARTS = ("mac", "edge", "fill_drain", "sram")


def _ceil_div(a, b):
    return -(-a // b)


def dot_parts(params: dict, m, n, k, esize) -> dict:
    """The four parts (:data:`PARTS`) of the busy cycles of dots (M,K) x (K,N) with input
    elements of ``esize`` bytes, on the hardware of ``params`` (``kernbench._core.api.hw_params``).

    ``m``, ``n``, ``k``, ``esize``: ints or int arrays of one shape. Returns {part: float64
    array (or float)}; their sum is ``_timing.dot_cycles`` for each dot to the cycle
    (``tests/test_gemm_parts.py`` checks it on random shapes and arrays)."""
    m, n, k, esize = (np.asarray(x, np.int64) for x in (m, n, k, esize))
    r, c = int(params["gemm_rows"]), int(params["gemm_cols"])
    bw = int(params["sram_bw"])
    folds = _ceil_div(m, r) * _ceil_div(n, c)
    skew = r + c - 2
    sram_fold = _ceil_div((r + c) * k * esize, bw)
    fold = np.maximum(k + skew, sram_fold)  # the last fold (every fold with one buffer)
    mac = (m * n * k).astype(np.float64) / (r * c)
    edge = (folds * k).astype(np.float64) - mac
    if int(params["gemm_acc_buffers"]) == 2:
        # every fold but the last at the steady cost: max(K, ceil(skew / 2), the SRAM term)
        drain_bound = np.maximum(k, _ceil_div(skew, 2))
        steady = np.maximum(drain_bound, sram_fold)
        fill_drain = (folds - 1) * (drain_bound - k) + skew
        sram = (folds - 1) * (steady - drain_bound) + (fold - (k + skew))
    else:
        fill_drain = folds * skew
        sram = folds * (fold - (k + skew))
    out = {"mac": mac, "edge": edge, "fill_drain": fill_drain.astype(np.float64),
           "sram": sram.astype(np.float64)}
    if mac.ndim == 0:
        return {p: float(v) for p, v in out.items()}
    return out


def gemm_parts(result) -> tuple:
    """Each GEMM command's parts of ``result``: ``(index, parts)``, ``index`` the commands'
    numbers (int64, program order) and ``parts`` {part: float64 array aligned with it}.

    Reads the program's m, n, k and esize columns (a compact program is not expanded); one
    formula call per distinct shape. A launch with no dot gives empty arrays."""
    from .._core.api import hw_params

    prog = result.program
    opcode, m, n, k, esize = prog.columns("opcode", "m", "n", "k", "esize")
    idx = np.flatnonzero(np.asarray(opcode) == Opcode.DOT)
    if not len(idx):
        return idx, {p: np.zeros(0) for p in PARTS}
    shapes = np.stack([np.asarray(a, np.int64)[idx] for a in (m, n, k, esize)], axis=1)
    uniq, inv = np.unique(shapes, axis=0, return_inverse=True)
    per = dot_parts(hw_params(result.hw), *uniq.T)
    return idx, {p: per[p][inv.reshape(-1)] for p in PARTS}
