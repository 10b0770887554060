"""A launch as a Chrome trace-event JSON file, for https://ui.perfetto.dev and chrome://tracing.

Layout: one process per PE ("cube c / PE p", sorted by global index), one thread per unit that
ran a command (GEMM, VECTOR, DMA, TX_E, ..., RX_S), one complete slice (``"ph": "X"``) per
command, named by its label, with its opcode, shape, bytes, kernel source line and exact cycles in
``args``. Each link message is a flow (``"ph": "s"`` on the send slice, ``"ph": "f"`` on the
matching recv slice, each at the middle of its slice and bound to the enclosing slice) so
Perfetto draws an arrow from send to recv.

Timestamps are microseconds (the format's unit): ``cycles / (clock_ghz * 1e3)``. The file holds
one slice per command and two flow events per message: it grows with commands, not packets.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from ..common.pe_commands import N_UNITS, UNIT_NAMES, VEC_OP_NAMES, Opcode, Port

__all__ = ["to_perfetto", "select_pes", "trace_events"]

_OP_NAMES = {int(o): o.name.lower() for o in Opcode}
_LINK_OPS = (int(Opcode.SEND), int(Opcode.RECV))
_FLOW_CAT = "link"
_FLOW_NAME = "message"
_PORTS = tuple(p.name for p in Port)


def select_pes(result, pes) -> np.ndarray:
    """Global PE indices from ``pes``: None (every working PE), or an iterable of global indices
    and/or ``(pe, cube)`` pairs. Raises ValueError naming a PE outside the machine."""
    hw = result.hw
    if pes is None:
        return np.asarray(result.working_pes, dtype=np.int64)
    out = []
    for x in pes:
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ValueError(f"a PE is a global index or a (pe, cube) pair, got {x!r}")
            p, c = int(x[0]), int(x[1])
            if not (0 <= p < hw.pes_per_cube and 0 <= c < hw.n_cubes):
                raise ValueError(
                    f"PE ({p}, {c}) is outside {hw.name} ({hw.pes_per_cube} PEs x {hw.n_cubes} cubes)"
                )
            g = c * hw.pes_per_cube + p
        else:
            g = int(x)
            if not 0 <= g < hw.n_pes:
                raise ValueError(f"PE index {g} is outside {hw.name} ({hw.n_pes} PEs)")
        out.append(g)
    return np.unique(np.asarray(out, dtype=np.int64))


def _shape(col: dict, i: int) -> dict:
    """Command ``i``'s sizes in the kernel's terms (``col``: COMMAND_DTYPE fields as lists)."""
    op = col["opcode"][i]
    if op == Opcode.DOT:
        m, n, k, e = col["m"][i], col["n"][i], col["k"][i], col["esize"][i]
        return {"shape": f"({m},{k})x({k},{n})", "flops": 2 * m * n * k, "bytes": (m * k + k * n) * e}
    if op == Opcode.VEC:
        return {"shape": f"({col['n'][i]},)", "vec_op": VEC_OP_NAMES[col["sub"][i]], "elements": col["n"][i]}
    if op == Opcode.REDUCE:
        m, n, k = col["m"][i], col["n"][i], col["k"][i]
        return {"shape": f"({m},{n},{k}) reduce axis 1", "vec_op": VEC_OP_NAMES[col["sub"][i]],
                "elements": m * n * k}
    out = {"bytes": col["nbytes"][i]}
    if op in _LINK_OPS:
        out["port"] = _PORTS[col["port"][i]]
    return out


def trace_events(result, pes=None, window: Optional[tuple] = None) -> list:
    """The trace's event list (see the module docstring); ``pes`` as in :func:`select_pes`,
    ``window=(first_cycle, last_cycle)`` keeps the commands that overlap it (unclipped)."""
    hw = result.hw
    e = result.engine
    prog = result.program
    cmds = prog.commands
    n = prog.n_commands
    us_per_cycle = 1.0 / (hw.clock_ghz * 1e3)
    keep_pe = np.zeros(hw.n_pes, dtype=bool)
    keep_pe[select_pes(result, pes)] = True
    pe_of = np.repeat(np.arange(hw.n_pes, dtype=np.int64), np.diff(prog.cmd_offsets))
    start = np.asarray(e.cmd_start, dtype=np.int64)
    end = np.asarray(e.cmd_end, dtype=np.int64)
    keep = keep_pe[pe_of] if n else np.zeros(0, dtype=bool)
    if window is not None:
        lo, hi = int(window[0]), int(window[1])
        if hi < lo:
            raise ValueError(f"cycle window must be (first, last) with first <= last, got {window!r}")
        keep &= (end >= lo) & (start <= hi)
    units = cmds["unit"].astype(np.int64)

    def tid(g: int, u: int) -> int:
        # Globally unique thread ids: viewers that key threads by tid alone stay correct.
        return int(g) * N_UNITS + int(u) + 1

    # The PE on the other end of every link command, from the engine's send/recv matching.
    msg_send, msg_recv = e.messages["send"].tolist(), e.messages["recv"].tolist()
    pe_list = pe_of.tolist()
    peer = {}
    for s, r in zip(msg_send, msg_recv):
        peer[s], peer[r] = pe_list[r], pe_list[s]

    events = []
    used_pes = np.unique(pe_of[keep])
    for g in used_pes:
        g = int(g)
        events.append({"name": "process_name", "ph": "M", "pid": g + 1, "tid": 0,
                       "args": {"name": result.pe_name(g)}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": g + 1, "tid": 0,
                       "args": {"sort_index": g}})
        for u in np.unique(units[keep & (pe_of == g)]):
            u = int(u)
            events.append({"name": "thread_name", "ph": "M", "pid": g + 1, "tid": tid(g, u),
                           "args": {"name": UNIT_NAMES[u]}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": g + 1, "tid": tid(g, u),
                           "args": {"sort_index": u}})

    ts_of = start * us_per_cycle
    flow_of = {}  # cmd -> (flow id, phase) for messages with both ends kept
    keep_list = keep.tolist()
    for k, (s, r) in enumerate(zip(msg_send, msg_recv)):
        if keep_list[s] and keep_list[r]:
            flow_of[s] = (k, "s")
            flow_of[r] = (k, "f")

    # Plain Python lists: indexing them is far cheaper than numpy scalars, per command.
    col = {f: cmds[f].tolist() for f in ("opcode", "m", "n", "k", "nbytes", "esize", "sub", "port", "line")}
    idx = np.flatnonzero(keep)
    rows = zip(idx.tolist(), pe_of[idx].tolist(), units[idx].tolist(), start[idx].tolist(),
               end[idx].tolist(), ts_of[idx].tolist(), (end[idx] * us_per_cycle).tolist())
    for i, g, u, s0, s1, ts, ts_end in rows:
        op = col["opcode"][i]
        label = result.label(i)
        args = {
            "label": label,
            "op": _OP_NAMES[op],
            **_shape(col, i),
            "source": result.source(i),
            "cmd": i,
            "start_cycle": s0,
            "end_cycle": s1,
            "cycles": s1 - s0,
        }
        if i in peer:
            args["peer"] = result.pe_name(peer[i])
        events.append({
            "name": label,
            "cat": _FLOW_CAT if op in _LINK_OPS else _OP_NAMES[op],
            "ph": "X",
            "ts": ts,
            "dur": ts_end - ts,
            "pid": g + 1,
            "tid": tid(g, u),
            "args": args,
        })
        if i in flow_of:
            # At the middle of its slice, on the slice's thread: viewers bind a flow event to the
            # slice enclosing its ts ("bp": "e" for the end), and a ts on a slice boundary would
            # be ambiguous between back-to-back slices. Link commands always last >= 1 cycle.
            k, ph = flow_of[i]
            ev = {"name": _FLOW_NAME, "cat": _FLOW_CAT, "ph": ph, "id": k, "ts": (ts + ts_end) / 2,
                  "pid": g + 1, "tid": tid(g, u)}
            if ph == "f":
                ev["bp"] = "e"
            events.append(ev)
    return events


def to_perfetto(
    result,
    path: Union[str, Path],
    pes: Optional[Iterable] = None,
    window: Optional[tuple] = None,
) -> dict:
    """Write ``result`` as a Chrome trace-event JSON file at ``path``; returns the trace dict.

    ``pes``: global PE indices and/or ``(pe, cube)`` pairs to keep (default: every working PE).
    ``window``: ``(first_cycle, last_cycle)``; keeps the commands overlapping it. A flow is kept
    only when both its send and its recv are kept, so every flow in the file has both ends.
    Open the file at https://ui.perfetto.dev (or chrome://tracing)."""
    events = trace_events(result, pes=pes, window=window)
    trace = {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "kernel": result.kernel_name,
            "kernel_file": result.kernel_file,
            "hw": result.hw.name,
            "clock_ghz": result.hw.clock_ghz,
            "cycles": result.cycles,
            "grid": [int(x) for x in result.grid],
            "mode": result.mode,
            "window_cycles": None if window is None else [int(window[0]), int(window[1])],
        },
    }
    text = json.dumps(trace, separators=(",", ":"))  # one-shot dumps uses the C encoder
    with open(path, "w") as f:
        f.write(text)
    return trace
