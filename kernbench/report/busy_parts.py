"""Why a GEMM, vector or DMA unit runs below its peak: each command's busy cycles split, exactly,
into the work at the unit's peak and what the model charges beside it (docs/hardware-model.md,
"GEMM unit", "Vector unit" and "DMA engine"). GEMM and vector commands take their formula's
cycles whatever else runs; a DMA command's are its formula's plus its arbitration stall, read
off the engine's start and end cycles, so the split is of the engine's own busy cycles.

**GEMM**, a dot (M,K) x (K,N) on an R x C array in ``folds = ceil(M/R) * ceil(N/C)`` passes of K:

- ``mac``: ``M * N * K / (R * C)``, its cycles with every cell busy every cycle (its flops at
  the array's peak of ``2 * R * C`` flop/cycle);
- ``edge``: ``folds * K - mac``, the idle cells of partial folds (M not a multiple of R, or N
  of C: a partial fold costs a full one);
- ``fill_drain``: the skew in and drain out, ``R + C - 2`` a fold with one accumulator buffer;
  with two, ``R + C - 2`` once (the last fold) plus, on every other fold, what
  ``ceil((R + C - 2) / 2)`` adds over K when K is the smaller;
- ``sram``: on a fold the SRAM operand bound (``ceil((R + C) * K * esize /
  sram.bytes_per_cycle)``) sets, all of the fold's cycles past K: there the skew and drain
  hide behind it and are not counted as fill and drain (the fold's cycles past K go to the
  term that sets them; a tie to fill and drain).

**VECTOR**, with L lanes and an op of ``op_cycles`` per issue slot:

- ``lanes``: the op's cycles with every lane used: ``n * op / L`` (elementwise over n
  elements), ``outer * r * op / L`` (r reduced along the lanes, outer rows), ``outer * (r - 1)
  * inner * op / L`` (reduced across rows of ``inner``);
- ``partial``: the issue slots' idle lanes (n, r or inner not a multiple of L);
- ``tree``: a reduction along the lanes' ``ceil(log2 L)`` cycles a row;
- ``latency``: the pipeline latency, once a command.

**DMA**, a load or store of S bytes in bursts of B on a channel of W bytes a cycle, latency λ:

- ``bytes``: ``S / W``, its cycles at the channel's rate;
- ``partial``: its bursts' channel cycles (``ceil(bytes / W)`` each) past that (a burst not a
  multiple of W bytes);
- ``latency``: λ, once a command;
- ``arbitration``: the cycles its bursts waited for the cube's other PEs on the shared channel
  (its busy less the rest: kernbench.report.commands).

Each command's parts sum to its busy cycles. ``mac`` / ``edge``, ``lanes`` / ``partial`` and
``bytes`` / ``partial`` may be fractions of a cycle (multiples of 1 / (R * C), 1 / L and 1 / W);
their sums are whole, exact in float64 when R * C, L and W are powers of two (the presets'), to
float rounding otherwise. Checked against ``kernbench._core._timing`` on random shapes and
against the engine on launches (tests/test_busy_parts.py). The split is an attribution, not a
claim that removing one part leaves the others unchanged: :func:`gemm_what_if` and
:func:`vector_what_if` give what a change would take, which the profile checks before it
offers one.
"""
from __future__ import annotations

import numpy as np

from ..common.pe_commands import Opcode
from ..common.errors import short_repr

__all__ = ["GEMM_PARTS", "VECTOR_PARTS", "DMA_PARTS", "PARTS", "dot_parts", "elementwise_parts",
           "reduction_parts", "dma_parts", "command_columns", "unit_parts", "gemm_what_if",
           "vector_what_if"]

#: the parts of a unit's busy cycles, in the order they are attributed; the first is the work
GEMM_PARTS = ("mac", "edge", "fill_drain", "sram")
VECTOR_PARTS = ("lanes", "partial", "tree", "latency")
DMA_PARTS = ("bytes", "partial", "latency", "arbitration")
#: unit name -> its parts
PARTS = {"GEMM": GEMM_PARTS, "VECTOR": VECTOR_PARTS, "DMA": DMA_PARTS}


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
    mac = m.astype(np.float64) * n * k / (r * c)  # (in floats: M * N * K may pass int64)
    edge = (folds * k).astype(np.float64) - mac
    # A fold's cycles past K go to the term that sets them: the SRAM operand bound where it
    # binds (then skew and drain hide behind it: removing them would save nothing, a review),
    # else the array's skew and drain.
    sram_binds = sram_fold > k + skew
    fill_drain = np.where(sram_binds, 0, skew)
    sram = np.where(sram_binds, fold - k, 0)
    if int(params["gemm_acc_buffers"]) == 2:
        # every fold but the last at the steady cost: max(K, ceil(skew / 2), the SRAM term)
        drain_bound = np.maximum(k, _ceil_div(skew, 2))
        steady_sram = sram_fold > drain_bound
        fill_drain = fill_drain + (folds - 1) * np.where(steady_sram, 0, drain_bound - k)
        sram = sram + (folds - 1) * np.where(steady_sram, sram_fold - k, 0)
    else:
        fill_drain, sram = folds * fill_drain, folds * sram
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


def dma_parts(params: dict, nbytes) -> dict:
    """The parts (:data:`DMA_PARTS`) of a DMA command of ``nbytes`` bytes alone on its cube's
    channel (``arbitration`` 0); their sum is ``_timing.dma_alone_cycles``."""
    nbytes = np.asarray(nbytes, np.int64)
    burst, width = int(params["burst_bytes"]), int(params["channel_bw"])
    full, rest = nbytes // burst, nbytes % burst
    channel = full * _ceil_div(burst, width) + _ceil_div(rest, width)
    at_rate = nbytes.astype(np.float64) / width
    return _out({"bytes": at_rate, "partial": channel.astype(np.float64) - at_rate,
                 "latency": np.full(np.shape(at_rate), int(params["dma_latency"])),
                 "arbitration": np.zeros(np.shape(at_rate))})


def command_columns(result) -> dict:
    """The program's columns the parts read ({name: array}), for several calls of
    :func:`unit_parts` and :func:`gemm_what_if` on one launch (each read costs a pass over the
    program)."""
    return dict(zip(_COLUMNS, result.program.columns(*_COLUMNS)))


def unit_parts(result, unit: str, params: dict | None = None, columns: dict | None = None) -> tuple:
    """Each command's parts on ``unit`` ("GEMM", "VECTOR" or "DMA") of launch ``result``:
    ``(index, parts)``, ``index`` the commands' numbers (int64, program order) and ``parts``
    {part: float64 array aligned with it}. ``params``: the hardware to time them on (default:
    the launch's, ``hw_params(result.hw)``; another gives what the same commands would take
    there alone: a DMA command's ``arbitration`` is always the launch's own wait). Reads the program's columns (a compact program is not expanded), or takes them from
    ``columns`` (:func:`command_columns`). Raises ValueError for another unit."""
    from .._core.api import hw_params

    if unit not in PARTS:
        raise ValueError(f"unit must be one of {', '.join(PARTS)}, got {short_repr(unit)}")
    params = hw_params(result.hw) if params is None else params
    cols = command_columns(result) if columns is None else columns
    idx = np.flatnonzero(np.isin(np.asarray(cols["opcode"]), _OPCODES[unit]))
    parts = {p: np.zeros(len(idx)) for p in PARTS[unit]}
    if unit == "DMA":
        from .commands import command_facts

        per = dma_parts(params, np.asarray(cols["nbytes"])[idx])
        for p in DMA_PARTS[:3]:
            parts[p][:] = per[p]
        parts["arbitration"][:] = command_facts(result).arbitration[idx]
        return idx, parts
    opcode = np.asarray(cols["opcode"])[idx]
    for code, fn, fields in ((Opcode.DOT, dot_parts, ("m", "n", "k", "esize")),
                             (Opcode.VEC, elementwise_parts, ("n", "sub")),
                             (Opcode.REDUCE, reduction_parts, ("m", "n", "k", "sub"))):
        pos = np.flatnonzero(opcode == code)
        if not len(pos):
            continue
        at = idx[pos]
        # (vectorised over the commands: a few array passes, cheaper than finding the distinct
        # shapes first, which a review measured at 0.4 s on the 16K panel; each column gathered,
        # then widened)
        per = fn(params, *(np.asarray(cols[f])[at] for f in fields))
        for p in PARTS[unit]:
            parts[p][pos] = per[p]
    return idx, parts


_COLUMNS = ("opcode", "m", "n", "k", "esize", "sub", "nbytes")
#: each unit's opcodes (docs/hardware-model.md: a dot on GEMM, elementwise ops and reductions on
#: VECTOR, loads and stores on DMA)
_OPCODES = {"GEMM": (int(Opcode.DOT),), "VECTOR": (int(Opcode.VEC), int(Opcode.REDUCE)),
            "DMA": (int(Opcode.LOAD), int(Opcode.STORE))}


def gemm_what_if(result, columns: dict | None = None) -> tuple:
    """What the launch's dots would take with the changes a GEMM loss suggests, each alone:
    ``(index, {change: float64 array})`` aligned with :func:`unit_parts`' GEMM index, per dot:

    - ``two_buffers``: its busy cycles with ``gemm.accumulator_buffers = 2`` (its own busy when
      the hardware has two already);
    - ``sram_x2``: with twice ``sram.bytes_per_cycle``;
    - ``narrower``: with each operand at most half as wide as its wider operand (both halved
      when they are equally wide; its own busy for fp8, which has no narrower dtype);
    - ``k_x2_busy`` and ``k_x2_mac``: the busy cycles and the ``mac`` part of the same dot with
      twice its K (a kernel's larger K block: twice the MACs, so compare ``mac / busy``).

    The profile offers a change as "what cuts it" only where these say it does (a review: two
    buffers were offered for one-fold dots, which they do not change). ``columns``: as for
    :func:`unit_parts`."""
    from .._core.api import hw_params

    params = hw_params(result.hw)
    cols = command_columns(result) if columns is None else columns
    idx = np.flatnonzero(np.asarray(cols["opcode"]) == Opcode.DOT)
    m, n, k, esize = (np.asarray(cols[c])[idx].astype(np.int64) for c in ("m", "n", "k", "esize"))
    out = {}
    for name, change in (("two_buffers", {"gemm_acc_buffers": 2}),
                         ("sram_x2", {"sram_bw": 2 * int(params["sram_bw"])})):
        out[name] = sum(dot_parts({**params, **change}, m, n, k, esize).values())
    # the wider operand's elements half as wide (the dot streams the larger esize); fp8 has none
    out["narrower"] = sum(dot_parts(params, m, n, k, np.maximum(esize // 2, 1)).values())
    # (a K past 2**40 is left as it is: its doubled SRAM term could pass int64; no advice then)
    doubled = dot_parts(params, m, n, np.where(k <= 1 << 40, 2 * k, k), esize)
    out["k_x2_busy"] = sum(doubled.values())
    out["k_x2_mac"] = doubled["mac"]
    return idx, {name: np.asarray(v, np.float64).reshape(-1) for name, v in out.items()}


def vector_what_if(result, columns: dict | None = None) -> tuple:
    """What the launch's vector commands would take with the change a reduction tree suggests:
    ``(index, {"leading_axis": float64 array})`` aligned with :func:`unit_parts`' VECTOR index,
    per command: a row reduction (inner 1: ``outer`` rows of ``r``) as the same tile held
    transposed and reduced along its leading axis (``tl.trans(x)`` reduced over axis 0: outer 1,
    ``r`` rows of ``outer``), ``(r - 1) * ceil(outer / L) * op + latency``, where that is
    cheaper than its own cycles; any other command its own cycles. Neither side always wins:
    a few long rows take longer transposed (a review: 8 rows of 512 took 120 cycles along the
    lanes, 519 transposed), short rows take less even when fewer than L (4 rows of 8: 36, 15
    transposed), so the profile offers it only where this says it cuts the line's cycles."""
    from .._core.api import hw_params

    from .commands import command_facts

    params = hw_params(result.hw)
    cols = command_columns(result) if columns is None else columns
    idx = np.flatnonzero(np.isin(np.asarray(cols["opcode"]), _OPCODES["VECTOR"]))
    fx = command_facts(result)  # (its busy: the engine's cycles, which the parts sum to)
    busy = (fx.end[idx] - fx.start[idx]).astype(np.float64)
    op = np.asarray(cols["opcode"])[idx]
    outer, r, inner, sub = (np.asarray(cols[c])[idx].astype(np.int64) for c in ("m", "n", "k", "sub"))
    rows = np.flatnonzero((op == Opcode.REDUCE) & (inner == 1))
    alt = busy.copy()
    if len(rows):
        # each reduction moved only where that is cheaper (a line mixing tile shapes was offered
        # nothing, though one of its reductions would gain: a review)
        alt[rows] = np.minimum(alt[rows], sum(reduction_parts(
            params, np.ones(len(rows), np.int64), r[rows], outer[rows], sub[rows]).values()))
    return idx, {"leading_axis": alt}
