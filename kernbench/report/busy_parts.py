"""Why a GEMM or vector unit runs below its peak: each command's busy cycles split, exactly, into
the work at the unit's peak and what the model's formula charges beside it
(docs/hardware-model.md, "GEMM unit" and "Vector unit"). Both units take their formula's cycles
whatever else runs, so the split is of the engine's own busy cycles.

**GEMM**, a dot (M,K) x (K,N) on an R x C array in ``folds = ceil(M/R) * ceil(N/C)`` passes of K:

- ``mac``: ``M * N * K / (R * C)``, its cycles with every cell busy every cycle (its flops at
  the array's peak of ``2 * R * C`` flop/cycle);
- ``edge``: ``folds * K - mac``, the idle cells of partial folds (M not a multiple of R, or N
  of C: a partial fold costs a full one);
- ``fill_drain``: the skew in and drain out, ``R + C - 2`` a fold with one accumulator buffer;
  with two, ``R + C - 2`` once (the last fold) plus, on every other fold, what
  ``ceil((R + C - 2) / 2)`` adds over K when K is the smaller;
- ``sram``: what the SRAM operand bound (``ceil((R + C) * K * esize / sram.bytes_per_cycle)``
  a fold) adds over the other terms where it binds.

**VECTOR**, with L lanes and an op of ``op_cycles`` per issue slot:

- ``lanes``: the op's cycles with every lane used: ``n * op / L`` (elementwise over n
  elements), ``outer * r * op / L`` (r reduced along the lanes, outer rows), ``outer * (r - 1)
  * inner * op / L`` (reduced across rows of ``inner``);
- ``partial``: the issue slots' idle lanes (n, r or inner not a multiple of L);
- ``tree``: a reduction along the lanes' ``ceil(log2 L)`` cycles a row;
- ``latency``: the pipeline latency, once a command.

Each command's parts sum to its busy cycles. ``mac`` / ``edge`` and ``lanes`` / ``partial`` may be
fractions of a cycle (multiples of 1 / (R * C) and 1 / L); their sums are whole, exact in
float64 when R * C and L are powers of two (the presets'), to float rounding otherwise. Checked
against ``kernbench._core._timing`` on random shapes and against the engine on launches
(tests/test_busy_parts.py). The split is an
attribution in the order above, not a claim that removing one part leaves the others unchanged.
"""
from __future__ import annotations

import numpy as np

from ..common.pe_commands import Opcode, Unit

__all__ = ["GEMM_PARTS", "VECTOR_PARTS", "PARTS", "dot_parts", "elementwise_parts",
           "reduction_parts", "unit_parts"]

#: the parts of a unit's busy cycles, in the order they are attributed; the first is the work
GEMM_PARTS = ("mac", "edge", "fill_drain", "sram")
VECTOR_PARTS = ("lanes", "partial", "tree", "latency")
#: unit name -> its parts
PARTS = {"GEMM": GEMM_PARTS, "VECTOR": VECTOR_PARTS}


def _ceil_div(a, b):
    return -(-a // b)


def _out(d: dict) -> dict:
    d = {p: np.asarray(v).astype(np.float64) for p, v in d.items()}
    if all(v.ndim == 0 for v in d.values()):
        return {p: float(v) for p, v in d.items()}
    return d


def dot_parts(params: dict, m, n, k, esize) -> dict:
    """The parts (:data:`GEMM_PARTS`) of the busy cycles of dots (M,K) x (K,N) with input
    elements of ``esize`` bytes, on the hardware of ``params`` (``kernbench._core.api.hw_params``).

    ``m``, ``n``, ``k``, ``esize``: ints or int arrays of one shape. Returns {part: float, or
    float64 array}; their sum is ``_timing.dot_cycles`` of each dot (module docstring)."""
    m, n, k, esize = (np.asarray(x, np.int64) for x in (m, n, k, esize))
    r, c = int(params["gemm_rows"]), int(params["gemm_cols"])
    folds = _ceil_div(m, r) * _ceil_div(n, c)
    skew = r + c - 2
    sram_fold = _ceil_div((r + c) * k * esize, int(params["sram_bw"]))
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
    return _out({"mac": mac, "edge": edge, "fill_drain": fill_drain, "sram": sram})


def elementwise_parts(params: dict, n, sub) -> dict:
    """The parts (:data:`VECTOR_PARTS`) of the busy cycles of elementwise ops over ``n``
    elements, ``sub`` a VecOp index (ints or int arrays of one shape); their sum is
    ``_timing.elementwise_cycles``."""
    n, sub = np.asarray(n, np.int64), np.asarray(sub, np.int64)
    lanes = int(params["lanes"])
    op = np.asarray(params["vec_cost"], np.int64)[sub]
    work = (n * op).astype(np.float64) / lanes
    return _out({"lanes": work, "partial": (_ceil_div(n, lanes) * op).astype(np.float64) - work,
                 "tree": np.zeros(np.shape(work)),
                 "latency": np.full(np.shape(work), int(params["vec_latency"]))})


def reduction_parts(params: dict, outer, r, inner, sub) -> dict:
    """The parts (:data:`VECTOR_PARTS`) of the busy cycles of reductions over ``r`` elements,
    ``outer`` x ``inner`` times; their sum is ``_timing.reduction_cycles``."""
    outer, r, inner, sub = (np.asarray(x, np.int64) for x in (outer, r, inner, sub))
    lanes = int(params["lanes"])
    op = np.asarray(params["vec_cost"], np.int64)[sub]
    rows = inner == 1  # along the lanes: a row's r in slots, then its tree
    slots = np.where(rows, outer * _ceil_div(r, lanes) * op,
                     outer * (r - 1) * _ceil_div(inner, lanes) * op)
    work = np.where(rows, outer * r * op, outer * (r - 1) * inner * op).astype(np.float64) / lanes
    return _out({"lanes": work, "partial": slots.astype(np.float64) - work,
                 "tree": np.where(rows, outer * int(params["log2_lanes"]), 0),
                 "latency": np.full(np.shape(work), int(params["vec_latency"]))})


def unit_parts(result, unit: str) -> tuple:
    """Each command's parts on ``unit`` ("GEMM" or "VECTOR") of launch ``result``:
    ``(index, parts)``, ``index`` the commands' numbers (int64, program order) and ``parts``
    {part: float64 array aligned with it}. Reads the program's columns (a compact program is
    not expanded); one formula call per distinct shape. Raises ValueError for another unit."""
    from .._core.api import hw_params

    if unit not in PARTS:
        raise ValueError(f"unit must be one of {', '.join(PARTS)}, got {unit!r}")
    prog = result.program
    params = hw_params(result.hw)
    cols = dict(zip(("opcode", "m", "n", "k", "esize", "sub", "unit"),
                    prog.columns("opcode", "m", "n", "k", "esize", "sub", "unit")))
    idx = np.flatnonzero(np.asarray(cols["unit"]) == int(getattr(Unit, unit)))
    opcode = np.asarray(cols["opcode"])[idx]
    parts = {p: np.zeros(len(idx)) for p in PARTS[unit]}
    for code, fn, fields in ((Opcode.DOT, dot_parts, ("m", "n", "k", "esize")),
                             (Opcode.VEC, elementwise_parts, ("n", "sub")),
                             (Opcode.REDUCE, reduction_parts, ("m", "n", "k", "sub"))):
        at = np.flatnonzero(opcode == code)
        if not len(at):
            continue
        shapes = np.stack([np.asarray(cols[f], np.int64)[idx[at]] for f in fields], axis=1)
        uniq, inv = np.unique(shapes, axis=0, return_inverse=True)
        per = fn(params, *uniq.T)
        for p in PARTS[unit]:
            parts[p][at] = np.asarray(per[p], np.float64)[inv.reshape(-1)]
    return idx, parts
