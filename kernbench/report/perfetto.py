"""A launch as a Chrome trace-event JSON file, for https://ui.perfetto.dev and chrome://tracing.

Layout: one process per PE ("PE (p, c)", sorted by global index), one thread per unit that
ran a command (GEMM, VECTOR, DMA, TX_E, ..., RX_S), one complete slice (``"ph": "X"``) per
command, named by its label, with its opcode, shape, bytes, kernel source line and exact cycles in
``args``. Each link message is a flow (``"ph": "s"`` on the send slice, ``"ph": "f"`` on the
matching recv slice) so the viewer draws an arrow from send to recv.

Timestamps are microseconds (the format's unit) on a whole-nanosecond grid: a slice starts at
``round(start_cycle / clock_ghz)`` ns and ends at ``round(end_cycle / clock_ghz)`` ns, written with
three decimals. Perfetto keeps time in whole nanoseconds, so this is what it would store anyway,
and back-to-back slices share their boundary exactly (rounding ``ts`` and ``dur`` apart could
make them overlap by a nanosecond). The exact cycles are in each slice's ``args``.

A flow starts 1 ns after its send slice starts and ends 1 ns before its recv slice ends (when
the data has landed), so it always points forward in time, even for a recv posted long before
the send, and each end lies strictly inside its slice (never on a boundary between back-to-back
slices, where the binding would be ambiguous). Slices shorter than 2 ns use half their length;
a 0 ns slice has no inside, and its end sits on its one time, which a neighbouring slice may
share (docs/reports.md).

:func:`to_perfetto` streams the file: it formats the events a chunk of commands at a time
(the slices in C, kernbench/report/_format.pyx, byte for byte what the ``_SLICE`` template
gives; the names, shapes and sources of each kernel site formatted once) and writes each chunk
as it goes, so memory stays a few numbers per command whatever the run's size.
A path ending in ``.gz`` is gzip-compressed (Perfetto and chrome://tracing open ``.json.gz``).
:func:`trace_events` builds the same events as a list of dicts (memory grows with the run: for
small launches and tests).
"""
from __future__ import annotations

import gzip
import json
import queue
import threading
from itertools import chain
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from ..common.errors import check_output_file, is_whole as _whole, short_repr
from ..common.files import output_file
from ..common.pe_commands import N_UNITS, PORT_NAMES, UNIT_NAMES, VEC_OP_NAMES, Opcode
from . import _format
from .commands import first_of_keys, site_keys
from ..runtime.result import check_result

__all__ = ["to_perfetto", "select_pes", "trace_events"]

_OP_NAMES = {int(o): o.name.lower() for o in Opcode}
_LINK_OPS = (int(Opcode.SEND), int(Opcode.RECV))
_FLOW_CAT = "link"
_FLOW_NAME = "message"
_CHUNK = 1 << 15  #: commands formatted (and held as text) at a time
_GZIP_LEVEL = 3  #: zlib level of a .gz trace: 6 (gzip's default) writes 26% less but takes 2-3x as long


# -- choosing what to keep ---------------------------------------------------------------------

def select_pes(result, pes) -> np.ndarray:
    """Global PE indices from ``pes``: None (every working PE), or an iterable of global indices
    and/or ``(pe, cube)`` pairs. Raises ValueError naming a PE outside the machine."""
    hw = result.hw
    if pes is None:
        return np.asarray(result.working_pes, dtype=np.int64)
    if (isinstance(pes, (str, bytes)) or not isinstance(pes, Iterable)
            or (isinstance(pes, np.ndarray) and pes.ndim == 0)):  # (a 0-d array cannot be iterated)
        raise ValueError(f"pes must be None or an iterable of global PE indices and (pe, cube) "
                         f"pairs, e.g. [0, (1, 0)], got {short_repr(pes)}")
    return np.unique(np.asarray([hw.global_pe(x) for x in pes], dtype=np.int64))



def check_ns(cycles: float, clock_ghz: float) -> None:
    """Raise ValueError when ``cycles`` at ``clock_ghz`` pass 2**62 ns, which a trace's times
    cannot hold (a clock below 1 GHz makes more nanoseconds than cycles)."""
    if cycles / clock_ghz >= 2.0 ** 62:
        raise ValueError(f"to_perfetto: times up to {cycles:,.0f} cycles at {clock_ghz:g} GHz are "
                         f"{cycles / clock_ghz:.3g} ns, past the 2**62 ns a trace's times hold: no "
                         f"Perfetto trace of this launch (its report and JSON hold the cycles)")

class _Selection:
    """The kept commands and messages, and every per-command number both writers need."""

    def __init__(self, result, pes, window):
        hw = result.hw
        e = result.engine
        prog = result.program
        n = prog.n_commands
        keep_pe = np.zeros(hw.n_pes, dtype=bool)
        keep_pe[select_pes(result, pes)] = True
        self.keep_pe = keep_pe
        self.pe_of = np.repeat(np.arange(hw.n_pes, dtype=np.int64), np.diff(prog.cmd_offsets))
        self.start = np.asarray(e.cmd_start, dtype=np.int64)
        self.end = np.asarray(e.cmd_end, dtype=np.int64)
        keep = keep_pe[self.pe_of] if n else np.zeros(0, dtype=bool)
        self.window = None
        if window is not None:
            if (not isinstance(window, (tuple, list)) or len(window) != 2
                    or not all(v is None or _whole(v) for v in window)):
                raise ValueError(f"cycle window must be (first, last): two int cycles, either "
                                 f"None for an open end, got {short_repr(window)}")
            lo, hi = window
            lo = 0 if lo is None else int(lo)
            hi = None if hi is None else int(hi)
            if lo < 0 or (hi is not None and hi < 0):  # (cycles count from 0: --window refuses it too)
                raise ValueError(f"cycle window must be (first, last) of cycles from 0, got {short_repr(window)}")
            if hi is not None and hi < lo:
                raise ValueError(f"cycle window must be (first, last) with first <= last, got {short_repr(window)}")
            keep &= self.end >= lo
            if hi is not None:
                keep &= self.start <= hi
            self.window = [lo, hi]
        self.keep = keep
        self.idx = np.flatnonzero(keep)
        (self.units,) = prog.columns("unit")  # (int32: a compact program is not expanded)
        self.clock_ghz = float(hw.clock_ghz)
        if len(self.idx):  # (refused before anything is written, naming the latest time: each
            # chunk's check named its own, a review)
            check_ns(float(self.end[self.idx].max()), self.clock_ghz)
        # The PE on the other end of every link command, from the engine's send/recv matching.
        send = np.asarray(e.messages["send"], dtype=np.int64)
        recv = np.asarray(e.messages["recv"], dtype=np.int64)
        self.peer = np.full(n, -1, dtype=np.int64)
        self.peer[send] = self.pe_of[recv]
        self.peer[recv] = self.pe_of[send]
        both = keep[send] & keep[recv]  # a flow only when both its ends are kept
        self.flow_id = np.flatnonzero(both)
        self.flow_send, self.flow_recv = send[both], recv[both]

    def ns(self, cycles: np.ndarray) -> np.ndarray:
        """Cycles -> whole nanoseconds (module docstring); cycles / GHz is exact where it can be.
        Raises ValueError past 2**62 ns (a clock below 1 GHz makes more nanoseconds than
        cycles: 2**33 cycles at 1e-9 GHz), which a trace's times cannot hold."""
        t = np.rint(np.asarray(cycles) / self.clock_ghz)
        if t.size:
            check_ns(float(np.abs(np.asarray(cycles, np.float64)).max()), self.clock_ghz)
        return t.astype(np.int64)

    def used_threads(self) -> list:
        """[(pe, [units])] of the kept commands, by PE then unit."""
        if not len(self.idx):
            return []
        code = self.pe_of[self.idx] * N_UNITS + self.units[self.idx]
        used = np.flatnonzero(np.bincount(code, minlength=N_UNITS))
        out: dict = {}
        for c in used.tolist():
            out.setdefault(c // N_UNITS, []).append(c % N_UNITS)
        return list(out.items())

    def flow_times(self, lo: int = 0, hi: Optional[int] = None) -> tuple:
        """(start ts, end ts) in microseconds of kept flows ``lo:hi`` (module docstring)."""
        s, r = self.flow_send[lo:hi], self.flow_recv[lo:hi]
        s0, s1 = self.ns(self.start[s]), self.ns(self.end[s])
        r0, r1 = self.ns(self.start[r]), self.ns(self.end[r])
        # each end its own inset: a 0 ns recv must not pull the send's end onto its boundary
        both = np.minimum(np.ones(len(s)), (r1 - s0) / 2)  # (the start stays before the end)
        t_start = s0 + np.maximum(np.minimum(both, (s1 - s0) / 2), 0.0)
        t_end = r1 - np.maximum(np.minimum(both, (r1 - r0) / 2), 0.0)
        t_end = np.maximum(t_end, t_start)  # never before the start, whatever the input
        return t_start / 1000.0, t_end / 1000.0


def _tid(g, u):
    # Globally unique thread ids: viewers that key threads by tid alone stay correct.
    return g * N_UNITS + u + 1


def _shape(c) -> dict:
    """A command's sizes in the kernel's terms (``c``: one COMMAND_DTYPE record)."""
    op = int(c["opcode"])
    if op == Opcode.DOT:
        m, n, k, e = (int(c[f]) for f in ("m", "n", "k", "esize"))
        return {"shape": f"({m},{k})x({k},{n})", "flops": 2 * m * n * k, "bytes": (m * k + k * n) * e}
    if op == Opcode.VEC:
        return {"shape": f"({int(c['n'])},)", "vec_op": VEC_OP_NAMES[int(c["sub"])], "elements": int(c["n"])}
    if op == Opcode.REDUCE:
        m, n, k = (int(c[f]) for f in ("m", "n", "k"))
        return {"shape": f"({m},{n},{k}) reduce axis 1", "vec_op": VEC_OP_NAMES[int(c["sub"])],
                "elements": m * n * k}
    out = {"bytes": int(c["nbytes"])}
    if op in _LINK_OPS:
        out["port"] = PORT_NAMES[int(c["port"])]
    return out


def _static(result, i: int) -> tuple:
    """(label, cat, args but the per-command numbers) of command ``i``: the same for every
    command of one kernel site."""
    c = result.program.take([i])[0]
    op = int(c["opcode"])
    label = result.label(i)
    args = {"op": _OP_NAMES[op], **_shape(c), "source": result.source(i)}
    return label, (_FLOW_CAT if op in _LINK_OPS else _OP_NAMES[op]), args


class _Sites:
    """Each kept command's group of equal static content, and that content formatted once.

    With ``result.name_keys`` (ctx.launch gives it: the kernel site of every command; see
    commands.site_keys) a group is a site. Without (a LaunchResult rebuilt from JSON, made by
    hand, or whose labels were replaced), commands are grouped by their label, source and
    command fields, naming each command once."""

    def __init__(self, result, idx: np.ndarray):
        keys = site_keys(result)
        self.statics: list = []  # group -> (label, cat, args)
        if keys is not None:
            ks = keys[idx]
            used, first, group_of = first_of_keys(ks, idx)
            self.statics = [_static(result, int(first[k])) for k in used.tolist()]
            self.codes = group_of[ks]
        else:
            cmds = result.program.take(idx)
            fields = np.stack([cmds[f].astype(np.int64) for f in
                               ("opcode", "unit", "sub", "port", "m", "n", "k", "nbytes", "esize")], axis=1)
            seen: dict = {}
            codes = np.empty(len(idx), dtype=np.int64)
            for j, (i, f) in enumerate(zip(idx.tolist(), fields.tolist())):
                key = (result.label(i), result.source(i), *f)
                g = seen.get(key)
                if g is None:
                    g = seen[key] = len(self.statics)
                    self.statics.append(_static(result, i))
                codes[j] = g
            self.codes = codes

    def formatted(self) -> tuple:
        """(heads, args) as object arrays by group: '"name":..,"cat":..' and '"op":..,..,'."""
        heads = np.empty(len(self.statics), dtype=object)
        args = np.empty(len(self.statics), dtype=object)
        for g, (label, cat, a) in enumerate(self.statics):
            heads[g] = f'"name":{json.dumps(label)},"cat":{json.dumps(cat)}'
            args[g] = json.dumps(a, separators=(",", ":"))[1:-1] + ","
        return heads, args


def _other_data(result, sel: _Selection) -> dict:
    return {
        "kernel": result.kernel_name,
        "kernel_file": result.kernel_file,
        "hw": result.hw.label,
        "clock_ghz": result.hw.clock_ghz,
        "cycles": result.cycles,
        "grid": [int(x) for x in result.grid],
        "mode": result.mode,
        "window_cycles": sel.window,
    }


def _metadata(result, sel: _Selection) -> list:
    events = []
    for g, units in sel.used_threads():
        events.append({"name": "process_name", "ph": "M", "pid": g + 1, "tid": 0,
                       "args": {"name": result.pe_name(g)}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": g + 1, "tid": 0,
                       "args": {"sort_index": g}})
        for u in units:
            events.append({"name": "thread_name", "ph": "M", "pid": g + 1, "tid": _tid(g, u),
                           "args": {"name": UNIT_NAMES[u]}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": g + 1, "tid": _tid(g, u),
                           "args": {"sort_index": u}})
    return events


# -- the events as a list ----------------------------------------------------------------------
def trace_events(result, pes=None, window: Optional[tuple] = None, critical_path: bool = False,
                 memory_channel: bool = False) -> list:
    """The trace's events as a list of dicts: what :func:`to_perfetto` writes, built one command
    at a time (memory grows with the run: for small launches and tests). ``pes`` as in
    :func:`select_pes`; ``window=(first_cycle, last_cycle)`` keeps the commands that overlap it
    (unclipped; ``last_cycle`` None: to the end). ``critical_path``, ``memory_channel``: as for
    :func:`to_perfetto`."""
    _check_flag(critical_path, "critical_path")
    _check_flag(memory_channel, "memory_channel")
    sel = _Selection(result, pes, window)
    events = _metadata(result, sel)
    idx = sel.idx
    t0, t1 = sel.ns(sel.start[idx]).tolist(), sel.ns(sel.end[idx]).tolist()
    for j, i in enumerate(idx.tolist()):
        label, cat, static_args = _static(result, i)
        g, u = int(sel.pe_of[i]), int(sel.units[i])
        s0, s1 = int(sel.start[i]), int(sel.end[i])
        args = {**static_args, "cmd": i, "start_cycle": s0, "end_cycle": s1, "cycles": s1 - s0}
        if sel.peer[i] >= 0:
            args["peer"] = result.pe_name(int(sel.peer[i]))
        events.append({"name": label, "cat": cat, "ph": "X", "ts": t0[j] / 1000,
                       "dur": (t1[j] - t0[j]) / 1000, "pid": g + 1, "tid": _tid(g, u), "args": args})
    ts_s, ts_f = sel.flow_times()
    for k, s, r, a, b in zip(sel.flow_id.tolist(), sel.flow_send.tolist(), sel.flow_recv.tolist(),
                             ts_s.tolist(), ts_f.tolist()):
        gs, gr = int(sel.pe_of[s]), int(sel.pe_of[r])
        events.append({"name": _FLOW_NAME, "cat": _FLOW_CAT, "ph": "s", "id": k, "ts": a,
                       "pid": gs + 1, "tid": _tid(gs, int(sel.units[s]))})
        events.append({"name": _FLOW_NAME, "cat": _FLOW_CAT, "ph": "f", "id": k, "ts": b,
                       "pid": gr + 1, "tid": _tid(gr, int(sel.units[r])), "bp": "e"})
    channel = _channel_events(result, sel) if memory_channel else []
    for ev in channel:
        ev.pop("_ns", None)
    return events + (_path_events(result, sel) if critical_path else []) + channel


def _check_flag(value, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"to_perfetto: {name} must be True or False, got {short_repr(value)}")


def _path_events(result, sel) -> list:
    """The critical path as a track of its own (kernbench.report.critical_path), after every PE."""
    from .critical_path import critical_path, perfetto_events

    return perfetto_events(result, critical_path(result), pid=result.hw.n_pes + 1, window=sel.window)


def _exact_text(ev: dict, sel) -> str:
    """One critical-path slice or counter event as JSON text, its ``ts`` (and a slice's ``dur``)
    written from whole nanoseconds with three decimals, as the command slices are: the dict's
    ``ts / 1000`` is a double, whose digits stray by a nanosecond from 2**43 us (about 2**52.97
    ns) on, where back-to-back critical-path slices overlapped (a review). Metadata as it is."""
    if ev["ph"] == "X":  # (a path step: its own cycles, whole nanoseconds as sel.ns gives them)
        a = ev["args"]
        t0, t1 = sel.ns(np.array([a["start_cycle"], a["end_cycle"]])).tolist()
        fixed = {"ts": t0, "dur": t1 - t0}
    elif ev["ph"] == "C":
        fixed = {"ts": ev["_ns"]}
    else:
        return json.dumps(ev, separators=(",", ":"))
    # (zeros stand in, each key's first occurrence replaced: "ts" and "dur" precede the args,
    # and a key inside a JSON string has its quotes escaped)
    text = json.dumps({k: (0 if k in fixed else v) for k, v in ev.items() if k != "_ns"},
                      separators=(",", ":"))
    for k, ns in fixed.items():
        text = text.replace(f'"{k}":0', f'"{k}":%d.%03d' % divmod(ns, 1000), 1)
    return text


#: the counter of a cube's memory channel track (commands.channel_pending)
_CHANNEL_COUNTER = "DMA commands with bursts pending"


def _channel_events(result, sel) -> list:
    """A counter track per cube of a kept PE, after the critical path's: how many of the cube's
    DMA commands have bursts pending (commands.channel_pending: 0 idle, k the commands round
    robin shares the channel among), at each change inside ``window`` and at its first cycle."""
    from .commands import channel_pending

    hw = result.hw
    kept = np.unique(np.flatnonzero(sel.keep_pe) // hw.pes_per_cube).tolist()
    lo, hi = sel.window if sel.window is not None else (0, None)
    events = []
    for c in kept:
        pid = hw.n_pes + 2 + c
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                       "args": {"name": f"cube {c} memory channel"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
                       "args": {"sort_index": hw.n_pes + 1 + c}})
        t, level = channel_pending(result, c)
        first = max(int(np.searchsorted(t, lo, side="right")) - 1, 0)  # (the count at the window's start)
        stop = len(t) if hi is None else int(np.searchsorted(t, hi, side="right"))
        t, level = np.maximum(t[first:stop], lo), level[first:stop]
        for ns, v in zip(sel.ns(t).tolist(), level.tolist()):
            # ("_ns": the whole nanoseconds the file writes, _exact_text; dropped from the list)
            events.append({"name": _CHANNEL_COUNTER, "ph": "C", "ts": ns / 1000, "pid": pid,
                           "args": {"commands": v}, "_ns": ns})
    return events


# -- the streamed file ---------------------------------------------------------------------------
# Every event is written as ",\n{...}"; the array's first event drops its comma.
_SLICE = (',\n{%s,"ph":"X","ts":%d.%03d,"dur":%d.%03d,"pid":%d,"tid":%d,'
          '"args":{%s"cmd":%d,"start_cycle":%d,"end_cycle":%d,"cycles":%d%s}}')
_FLOW_S = f',\n{{"name":"{_FLOW_NAME}","cat":"{_FLOW_CAT}","ph":"s","id":%d,"ts":%r,"pid":%d,"tid":%d}}'
_FLOW_F = (f',\n{{"name":"{_FLOW_NAME}","cat":"{_FLOW_CAT}","ph":"f","id":%d,"ts":%r,"pid":%d,"tid":%d,'
           f'"bp":"e"}}')


#: the flow templates' text up to the id: what _format.flows writes from
_FLOW_HEADS = tuple(t[:t.index("%d")].encode() for t in (_FLOW_S, _FLOW_F))


def _flow_columns(sel, lo: int, hi: int) -> tuple:
    """The numbers of kept flows ``lo..hi``: id (int64), start ts (float64, microseconds), pid,
    tid (int64) of the send end, then ts, pid, tid of the recv end."""
    s, r = sel.flow_send[lo:hi], sel.flow_recv[lo:hi]
    ts_s, ts_f = sel.flow_times(lo, hi)
    gs, gr = sel.pe_of[s], sel.pe_of[r]
    return (np.ascontiguousarray(sel.flow_id[lo:hi], np.int64),
            np.ascontiguousarray(ts_s, np.float64), (gs + 1).astype(np.int64),
            _tid(gs, sel.units[s]).astype(np.int64), np.ascontiguousarray(ts_f, np.float64),
            (gr + 1).astype(np.int64), _tid(gr, sel.units[r]).astype(np.int64))


def _flows_text(columns) -> str:
    """:func:`_format.flows`'s text made with the Python templates (``_FLOW_S``, ``_FLOW_F``):
    the reference tests/test_report_format.py compares the C formatter with."""
    ids, ts_s, pid_s, tid_s, ts_f, pid_f, tid_f = (c.tolist() for c in columns)
    return ((_FLOW_S + _FLOW_F) * len(ids)) % tuple(chain.from_iterable(zip(
        ids, ts_s, pid_s, tid_s, ids, ts_f, pid_f, tid_f)))


def _blobs(heads, static_args, peer_names) -> tuple:
    """The static parts by group, each as (UTF-8 blob, int64 offsets): what _format.slices
    reads."""
    out = []
    for parts in (heads, static_args, peer_names):
        enc = [x.encode() for x in parts]
        at = np.zeros(len(enc) + 1, np.int64)
        np.cumsum([len(x) for x in enc], out=at[1:])
        out += [b"".join(enc), at]
    return tuple(out)


def _slice_columns(sel, sites, lo: int) -> tuple:
    """The per-slice numbers of kept commands ``lo..lo + _CHUNK`` (int64 columns): group, start
    and end in ns, pid, tid, command, start and end cycle, peer name index."""
    i = sel.idx[lo:lo + _CHUNK]
    g = sel.pe_of[i]
    return (np.ascontiguousarray(sites.codes[lo:lo + _CHUNK], np.int64), sel.ns(sel.start[i]),
            sel.ns(sel.end[i]), g + 1, _tid(g, sel.units[i]).astype(np.int64), i,
            sel.start[i], sel.end[i], sel.peer[i] + 1)


def _slices_text(heads, static_args, peer_names, columns) -> str:
    """:func:`_format.slices`'s text made with the Python template (``_SLICE``): the
    reference tests/test_report_format.py compares the C formatter with."""
    codes, t0, t1, pid, tid, i, s0, s1, peer = columns
    d = t1 - t0
    cols = (heads[codes].tolist(), (t0 // 1000).tolist(), (t0 % 1000).tolist(),
            (d // 1000).tolist(), (d % 1000).tolist(), pid.tolist(), tid.tolist(),
            static_args[codes].tolist(), i.tolist(), s0.tolist(), s1.tolist(),
            (s1 - s0).tolist(), peer_names[peer].tolist())
    return (_SLICE * len(i)) % tuple(chain.from_iterable(zip(*cols)))


class _Counted:
    """A binary file that counts the bytes written to it (a pipe or a device has no size to read
    back: a review found a trace to /dev/null reported as 0 bytes)."""

    def __init__(self, f):
        self.f, self.bytes = f, 0

    def write(self, data) -> int:
        n = self.f.write(data)
        self.bytes += len(data) if n is None else n
        return n

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class _Writer:
    """Writes byte chunks to the file ``out`` on a background thread (gzip when ``name``, the
    file's name for the user, ends in .gz; the gzip header names it): compressing and writing
    release the GIL, so they overlap the formatting of the next chunk. At most a few chunks
    wait in the queue, so memory stays bounded."""

    def __init__(self, out: str, name: str):
        self.raw = _Counted(open(out, "wb"))
        if name.lower().endswith(".gz"):  # (in any case, as the command line's other suffixes)
            # mtime=0: the same run gives the same bytes
            self.file = gzip.GzipFile(name, "wb", compresslevel=_GZIP_LEVEL, fileobj=self.raw, mtime=0)
        else:
            self.file = self.raw
        self.queue: queue.Queue = queue.Queue(maxsize=3)
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, name="kernbench-trace-writer", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            data = self.queue.get()
            if data is None:
                return
            if self.error is None:
                try:
                    self.file.write(data)
                except BaseException as e:  # reported by write() / close() on the caller's thread
                    self.error = e

    def write(self, text) -> None:
        """Queue ``text`` (str, or bytes already UTF-8)."""
        if self.error is not None:
            raise self.error
        self.queue.put(text if isinstance(text, bytes) else text.encode())

    def close(self, ok: bool = True) -> None:
        """Finish writing, and raise the error writing met when ``ok`` (the caller did not fail
        itself). The file is the caller's to keep or drop (common.files.output_file)."""
        self.queue.put(None)
        self.thread.join()
        for f in (self.file, self.raw):  # (a gzip file writes its last block and trailer first)
            try:
                f.close()
            except OSError as e:  # (a full disk: found only now)
                if self.error is None:
                    self.error = e
        if ok and self.error is not None:
            raise self.error


def to_perfetto(
    result,
    path: Union[str, Path],
    pes: Optional[Iterable] = None,
    window: Optional[tuple] = None,
    critical_path: bool = False,
    memory_channel: bool = False,
) -> dict:
    """Write ``result`` as a Chrome trace-event JSON file at ``path`` (gzip-compressed when the
    name ends in ``.gz``), streaming it a chunk of commands at a time.

    ``pes``: global PE indices and/or ``(pe, cube)`` pairs to keep (default: every working PE).
    ``window``: ``(first_cycle, last_cycle)``; keeps the commands overlapping it (``last_cycle``
    None: to the end). A flow is kept only when both its send and its recv are kept, so every
    flow in the file has both ends. Open the file at https://ui.perfetto.dev (or chrome://tracing).

    ``critical_path=True`` adds a "critical path" track: one slice per step of the chain of
    commands that sets the launch's last cycle (kernbench.report.critical_path), whichever PEs
    ``pes`` keeps; ``window`` applies to it too.

    ``memory_channel=True`` adds a counter track per cube of a kept PE, "cube C memory channel":
    how many of the cube's DMA commands have bursts pending (all its PEs', kept or not: they
    share the channel), 0 while it idles (report.commands.channel_pending).

    Returns what was written: ``{"path", "bytes", "events", "slices", "flows", "pes",
    "otherData", "critical_path_slices", "channel_counters"}`` (the last two 0 without
    ``critical_path``, ``memory_channel``;
    :func:`trace_events` gives the events themselves). Raises ValueError for a PE the machine
    does not have, a bad window, a folder that does not exist or times past 2**62 ns; OSError
    from writing the file."""
    check_result(result, "to_perfetto")
    check_output_file(path, "to_perfetto")
    _check_flag(critical_path, "critical_path")
    _check_flag(memory_channel, "memory_channel")
    sel = _Selection(result, pes, window)
    other = _other_data(result, sel)
    meta = _metadata(result, sel)
    sites = _Sites(result, sel.idx)
    heads, static_args = sites.formatted()
    n_pes = result.hw.n_pes
    peer_names = np.empty(n_pes + 1, dtype=object)
    peer_names[0] = ""
    for g in range(n_pes):
        peer_names[g + 1] = f',"peer":{json.dumps(result.pe_name(g))}'

    with output_file(path) as out:  # (whole or not at all: a failed write leaves path as it was)
        writer = _Writer(out, str(path))
        ok = False
        first = True

        def emit(text) -> None:
            nonlocal first
            if not text:
                return
            if first:
                text, first = text[1:], False
            writer.write(text)

        try:
            head = json.dumps({"displayTimeUnit": "ns", "otherData": other}, separators=(",", ":"))
            writer.write(head[:-1] + ',"traceEvents":[')
            emit("".join(",\n" + json.dumps(ev, separators=(",", ":")) for ev in meta))
            idx = sel.idx
            blobs = _blobs(heads, static_args, peer_names)
            for lo in range(0, len(idx), _CHUNK):
                emit(_format.slices(*blobs, *_slice_columns(sel, sites, lo)))
            n_flows = len(sel.flow_id)
            for lo in range(0, n_flows, _CHUNK):
                emit(_format.flows(*_FLOW_HEADS, *_flow_columns(sel, lo, lo + _CHUNK)))
            path_events = _path_events(result, sel) if critical_path else []
            emit("".join(",\n" + _exact_text(ev, sel) for ev in path_events))
            channel_events = _channel_events(result, sel) if memory_channel else []
            emit("".join(",\n" + _exact_text(ev, sel) for ev in channel_events))
            writer.write("\n]}\n")
            ok = True
        finally:
            writer.close(ok)
    n_slices = len(sel.idx)
    return {
        "path": str(path),
        "bytes": writer.raw.bytes,
        "events": len(meta) + n_slices + 2 * len(sel.flow_id) + len(path_events) + len(channel_events),
        "slices": n_slices,
        "flows": len(sel.flow_id),
        "pes": len({ev["pid"] for ev in meta}),
        "otherData": other,
        "critical_path_slices": sum(e["ph"] == "X" for e in path_events),
        "channel_counters": sum(e["ph"] == "C" for e in channel_events),
    }
