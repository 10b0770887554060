"""The figures every report shows, computed once from a LaunchResult's counters.

:func:`summarize` returns plain data (dicts, lists, ints, floats, strings): the rich table prints
it, the JSON export stores it, and tests check it against the raw engine counters it comes from.

Conventions (docs/reports.md):
- percentages are of the launch's total cycles, per PE, then taken over the **working PEs** (PEs
  that ran at least one command; a silent PE would only drag every minimum to zero);
- stall percentages are means over the working PEs. ``credit``, ``data`` and ``arbitration``
  stalls are cycles *inside* busy; ``operand`` stall is idle time outside busy while the unit's
  next command waited for an operand (docs/hardware-model.md);
- rates are work over the launch's wall time at the preset's clock.
"""
from __future__ import annotations

import numpy as np

from ..common.pe_commands import N_PORTS, PORT_NAMES, UNIT_NAMES, Unit
from ..common.totals import exact_sums, exact_total
from .commands import UNIT_ORDER
from ..runtime.result import check_result

__all__ = ["bound", "summarize", "unit_kinds", "STALL_CAUSES", "WORK_UNITS"]

#: Stall causes as the engine counts them: report name -> counter field.
STALL_CAUSES = {
    "operand": "stall_operand",
    "credit": "stall_credit",
    "data": "stall_data",
    "arbitration": "stall_arbitration",
}

#: What a unit's ``work`` counter counts.
WORK_UNITS = {Unit.GEMM: "flop", Unit.VECTOR: "element"}  # DMA, TX_*, RX_*: byte

#: Units always shown; the N/S link units only when some command used them.
_ALWAYS = (Unit.GEMM, Unit.VECTOR, Unit.DMA, Unit.TX_E, Unit.TX_W, Unit.RX_E, Unit.RX_W)


def unit_kinds(result) -> list:
    """The units a report shows, in display order: GEMM, VECTOR, DMA, TX_E/W, RX_E/W, plus
    TX/RX N and S when any command ran on them."""
    used = result.unit_counters["commands"].sum(axis=0) > 0
    return [u for u in UNIT_ORDER if u in _ALWAYS or used[u]]


def _pct(x, cycles):
    return 100.0 * float(x) / cycles if cycles else 0.0


def _unit_row(result, u: int, working: np.ndarray, cycles: int) -> dict:
    uc = result.unit_counters
    busy = uc["busy"][working, u].astype(np.int64)
    row = {
        "unit": UNIT_NAMES[u],
        "work_unit": WORK_UNITS.get(Unit(u), "byte"),
        "commands": exact_total(uc["commands"][:, u]),
        "work": exact_total(uc["work"][:, u]),
        "busy_cycles": exact_total(uc["busy"][:, u]),
    }
    if len(working):
        i_min = int(np.argmin(busy))  # first PE (lowest global index) at the minimum
        g_min = int(working[i_min])
        row["busy_pct"] = {
            "min": _pct(busy.min(), cycles),
            "mean": _pct(busy.mean(), cycles),
            "max": _pct(busy.max(), cycles),
            "min_pe": g_min,
            "min_pe_name": result.pe_name(g_min),
        }
        row["stall_pct"] = {
            cause: _pct(uc[field][working, u].mean(), cycles) for cause, field in STALL_CAUSES.items()
        }
    else:
        row["busy_pct"] = {"min": 0.0, "mean": 0.0, "max": 0.0, "min_pe": None, "min_pe_name": None}
        row["stall_pct"] = {cause: 0.0 for cause in STALL_CAUSES}
    seconds = result.seconds
    row["rate_per_s"] = row["work"] / seconds if seconds else 0.0
    return row


def summarize(result) -> dict:
    """Every figure the report table shows, as plain data. See the module docstring."""
    check_result(result, "summarize")
    hw = result.hw
    cycles = result.cycles
    seconds = result.seconds
    working = np.asarray(result.working_pes, dtype=np.int64)
    n_work = len(working)
    uc = result.unit_counters
    lc = result.link_counters
    cubes_used = sorted({int(g) // hw.pes_per_cube for g in working})

    flops = exact_total(uc["work"][:, Unit.GEMM])
    peak_tflops = hw.peak_tflops(n_work)  # (of the working PEs: none, none; a review found one's)
    achieved_tflops = flops / seconds / 1e12 if seconds else 0.0
    dma_bytes = exact_total(uc["work"][:, Unit.DMA])
    memory_peak = hw.memory_gbps(len(cubes_used))
    memory_gbps = dma_bytes / seconds / 1e9 if seconds else 0.0

    link_bytes = lc["bytes"].astype(np.int64)
    used_links = np.flatnonzero(link_bytes > 0)
    total_link = exact_total(link_bytes)
    link_gbps = total_link / seconds / 1e9 if seconds else 0.0
    # busiest: the most busy cycles (small packets keep a link busy for few bytes), then bytes
    busiest = (int(used_links[np.lexsort((-link_bytes[used_links],
                                          -lc["busy"][used_links].astype(np.int64)))[0]])
               if len(used_links) else None)
    links = {
        "bytes": total_link,
        "packets": exact_total(lc["packets"]),
        "messages": exact_total(lc["messages"]),
        "links_used": int(len(used_links)),
        "achieved_gbps": link_gbps,
        "peak_gbps": hw.link_gbps() * len(used_links),
        "per_link_peak_gbps": hw.link_gbps(),
        "busiest_link": busiest,
        "busiest_link_name": _link_name(result, busiest) if busiest is not None else None,
        "busiest_link_gbps": (int(link_bytes[busiest]) / seconds / 1e9) if busiest is not None and seconds else 0.0,
        "busiest_link_busy_pct": _pct(lc["busy"][busiest], cycles) if busiest is not None else 0.0,
    }

    peak = np.asarray(result.peak_sram, dtype=np.int64)
    over = np.flatnonzero(np.asarray(result.engine.sram_over, dtype=bool))
    if len(peak) and peak.max() > 0:  # (no PE held anything: no PE to name)
        g_peak = int(np.argmax(peak))
    else:
        g_peak = None
    capacity = hw.sram.capacity_bytes
    sram = {
        "capacity_bytes": capacity,
        "peak_bytes": int(peak[g_peak]) if g_peak is not None else 0,
        "peak_pe": g_peak,
        "peak_pe_name": result.pe_name(g_peak) if g_peak is not None else None,
        "peak_fraction": (int(peak[g_peak]) / capacity) if g_peak is not None else 0.0,
        "over_capacity": bool(len(over)),
        "over_pes": [int(g) for g in over],
        "over_pe_names": [result.pe_name(int(g)) for g in over],
    }

    return {
        "kernel": result.kernel_name,
        "kernel_file": result.kernel_file,
        "mode": result.mode,
        "grid": [int(x) for x in result.grid],
        "hw": hw.label,
        "clock_ghz": hw.clock_ghz,
        "cycles": cycles,
        "seconds": seconds,
        "microseconds": seconds * 1e6,
        "working_pes": n_work,
        "cubes_used": len(cubes_used),
        "commands": int(result.program.n_commands),
        "units": [_unit_row(result, u, working, cycles) for u in unit_kinds(result)],
        "totals": {
            "flops": flops,
            "achieved_tflops": achieved_tflops,
            "peak_tflops": peak_tflops,
            "tflops_fraction": achieved_tflops / peak_tflops if peak_tflops else 0.0,
            "dma_bytes": dma_bytes,
            "memory_gbps": memory_gbps,
            "memory_peak_gbps": memory_peak,
            "vector_elements": exact_total(uc["work"][:, Unit.VECTOR]),
        },
        "links": links,
        "sram": sram,
        "bound": bound(result),
    }


def bound(result) -> dict:
    """The model's bound on a launch, read off the counters: the busy cycles of its busiest
    resource (docs/hardware-model.md), which no schedule of the same commands can beat. The
    resources: the GEMM and vector units of each working PE (the cycles their commands ran);
    each PE's DMA unit (its commands one after another, each its bursts and
    ``dma.latency_cycles``: busy less arbitration stall); each cube's memory channel (the
    cycles its PEs' bursts held it: DMA busy less arbitration and latency); each link (its
    serialisation cycles, or, where its receive queue is short, the credit round trips its
    packets wait: :func:`_credit_rounds`). ``cycles``, ``resource`` (GEMM, VECTOR, DMA, memory
    channel, link, link credits;
    "none" when no resource was busy, a launch whose PEs ran no command, as a sweep's ``bound``
    column says), ``where`` (its PE, cube or link; None with "none"), ``ratio`` (the launch's
    cycles over it; None at 0). On a tie the first in that order, then the lowest PE, cube or
    link."""
    hw = result.hw
    uc, lc = result.unit_counters, result.link_counters
    wp = np.asarray(result.working_pes, dtype=np.int64)
    cands = []  # (cycles, resource, where)
    for name, u in (("GEMM", Unit.GEMM), ("VECTOR", Unit.VECTOR)):
        busy = uc["busy"][wp, int(u)].astype(np.int64)
        if len(busy):
            i = int(np.argmax(busy))
            cands.append((int(busy[i]), name, result.pe_name(int(wp[i]))))
    d = int(Unit.DMA)
    alone = uc["busy"][:, d].astype(np.int64) - uc["stall_arbitration"][:, d].astype(np.int64)
    if len(alone):
        i = int(np.argmax(alone))
        cands.append((int(alone[i]), "DMA", result.pe_name(i)))
        bursts = alone - int(hw.dma.latency_cycles) * uc["commands"][:, d].astype(np.int64)
        per_cube = exact_sums(np.arange(len(bursts)) // hw.pes_per_cube, hw.n_cubes, bursts)
        c = int(np.argmax(per_cube))  # (exact: float weights lost the units past 2**53, a review)
        cands.append((int(per_cube[c]), "memory channel", f"cube {c}"))
    busy_links = lc["busy"].astype(np.int64)
    if len(busy_links) and busy_links.max() > 0:
        k = int(np.argmax(busy_links))
        cands.append((int(busy_links[k]), "link", _link_name(result, k)))
        credits = _credit_rounds(hw, lc, getattr(result.engine, "messages", None))
        k = int(np.argmax(credits))
        if credits[k] > busy_links[k]:  # (a short receive queue: its round trips bind the link)
            cands.append((int(credits[k]), "link credits", _link_name(result, k)))
    top = max(cands, key=lambda x: x[0], default=(0, None, None))  # (the first at the max)
    if top[0] == 0:  # (nothing was busy: the first at 0, PE (0, 0)'s DMA, bounds nothing; a review)
        top = (0, "none", None)
    cyc = int(result.cycles)
    return {"cycles": top[0], "resource": top[1], "where": top[2],
            "ratio": cyc / top[0] if top[0] else None}


def _credit_rounds(hw, lc, messages=None) -> np.ndarray:
    """Per link, the fewest cycles its packets can take with ``link.rx_queue_packets`` (Q)
    credits: packet i leaves no sooner than a credit round trip after packet i - Q left (its
    credit is back a hop after it landed, a hop after it left: e_i >= e_{i-Q} + 2h + ser_i,
    docs/hardware-model.md, "SFR links"), so the chain of L = floor((m - 1) / Q) + 1 packets
    m - 1, m - 1 - Q, ... takes at least (L - 1) 2h plus their serialisation, whatever the
    schedule: a full packet's cycles each, but 1 for as many as the link's messages where it
    carried a shorter last packet (a message has one at most, and it may fall in the chain),
    counted from ``messages`` (MESSAGE_DTYPE: a review found every message of such a link
    counted, a looser bound than docs/reports.md's); without them, every message of a link
    whose bytes are not whole packets."""
    link = hw.link
    pb = int(link.packet_bytes)
    m = lc["packets"].astype(np.int64)
    full = -(-pb // int(link.bytes_per_cycle))
    chain = np.maximum(m - 1, 0) // int(link.rx_queue_packets) + 1
    if messages is not None and len(messages) == int(lc["messages"].sum()):
        ends_short = (np.asarray(messages["nbytes"], np.int64) % pb) != 0
        per_link = np.bincount(np.asarray(messages["link"], np.int64), weights=ends_short,
                               minlength=len(m)).astype(np.int64)[:len(m)]
        short = np.minimum(chain, per_link)
    else:
        short = np.where(lc["bytes"].astype(np.int64) == m * pb, 0,
                         np.minimum(chain, lc["messages"].astype(np.int64)))
    rounds = (chain - 1) * 2 * int(link.hop_latency_cycles) + (chain - short) * full + short
    return np.where(m > 0, rounds, 0)


def _link_name(result, link: int) -> str:
    """'PE (p, c) -> E' for a link id (sender global PE * 4 + port)."""
    g, port = divmod(int(link), N_PORTS)
    return f"{result.pe_name(g)} -> {PORT_NAMES[port]}"
