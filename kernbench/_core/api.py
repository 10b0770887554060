"""The engine's one entry point: ``simulate(hw, neighbours, program) -> EngineResult``.

Everything the compiled loop indexes is checked here first, with numpy, and rejected with a
``ValueError`` that names the PE (pe, cube), the command and its kernel line. Only then does the
Cython loop (release build: no bounds checks) see the arrays.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..common.errors import (CounterOverflowError, DeadlockError, EngineInvariantError, MaxCyclesError, SramCapacityError,
                             is_whole, pe_label, short_repr)
from ..common.pe_commands import (
    COMMAND_DTYPE,
    check_sizes,
    N_PORTS,
    N_UNITS,
    OPPOSITE,
    UNIT_NAMES,
    VEC_OP_NAMES,
    Opcode,
    Port,
    Program,
    Unit,
)
from ..common.unraisable import UnraisableCatcher
from ..hw.config import ENGINE_HORIZON, ENGINE_MAX_SIZE, ENGINE_MAX_VOLUME, HardwareConfig, check_bounds
from . import _check, _engine, _replay, pages

__all__ = ["simulate", "EngineResult", "hw_params", "MESSAGE_DTYPE", "EVENT_DTYPE", "DETAILS", "MAX_SIZE",
           "MAX_VOLUME"]

DETAILS = ("train", "packet")
#: A program's messages (EngineResult.messages): the C Message struct's dtype (_types.pxd).
MESSAGE_DTYPE = _check.MESSAGE_DTYPE
EVENT_DTYPE = np.dtype(
    [("pe", np.int32), ("unit", np.int32), ("cmd", np.int64), ("start", np.int64), ("end", np.int64)]
)
_OP_NAMES = {int(o): o.name.lower() for o in Opcode}
# The engine's bounds, defined beside the hardware key bounds derived from them (kernbench.hw.config,
# "Key bounds"): one definition, which the command checks here read.
_HORIZON = ENGINE_HORIZON  #: the largest cycle a run may reach (max_cycles defaults to it)
MAX_SIZE = ENGINE_MAX_SIZE  #: largest m, n, k, byte count or tensor size a command may carry
MAX_VOLUME = float(ENGINE_MAX_VOLUME)  #: largest m * n * k of a dot or reduction



def _check_build() -> None:
    """The C enums and struct must mirror pe_commands; a mismatch is a build bug (a stale
    extension), refused at import rather than read as garbage commands."""
    c = _engine.COMMAND_STRUCT_DTYPE
    mismatches = []
    if c != COMMAND_DTYPE:  # (names, formats, offsets and itemsize)
        mismatches.append(f"the C Command struct {c} differs from pe_commands.COMMAND_DTYPE {COMMAND_DTYPE}")
    e = _engine.ENUMS
    for name, want in (("N_UNITS", N_UNITS), ("N_PORTS", N_PORTS), ("UNIT_TX0", int(Unit.TX_E)),
                       ("UNIT_RX0", int(Unit.RX_E)), ("N_VEC_OPS", len(VEC_OP_NAMES)),
                       *((f"OP_{o.name}", int(o)) for o in Opcode)):
        if e.get(name) != want:
            mismatches.append(f"enum {name} is {e.get(name)} in the engine, {want} in pe_commands")
    # the engine finds the port a link arrives at as port ^ 1 (E<->W, N<->S)
    if any(int(OPPOSITE[p]) != p ^ 1 for p in range(N_PORTS)):
        mismatches.append(f"the engine takes a port's opposite as port ^ 1, but OPPOSITE is {OPPOSITE}")
    if mismatches:
        raise ImportError("kernbench engine build does not match its Python side (rebuild with "
                          "`pip install -e .`): " + "; ".join(mismatches))


_check_build()


def hw_params(hw: HardwareConfig, detail: str = "train", max_cycles: int = _HORIZON) -> dict:
    """The HwParams struct (as a dict) the compiled engine and _timing take."""
    lanes = hw.vector.lanes
    return {
        "gemm_rows": hw.gemm.rows,
        "gemm_cols": hw.gemm.cols,
        "gemm_acc_buffers": hw.gemm.accumulator_buffers,
        "sram_bw": hw.sram.bytes_per_cycle,
        "lanes": lanes,
        "log2_lanes": max(0, (lanes - 1).bit_length()),
        "vec_latency": hw.vector.pipeline_latency,
        "vec_cost": [getattr(hw.vector.op_cycles, n) for n in VEC_OP_NAMES],
        "burst_bytes": hw.dma.burst_bytes,
        "channel_bw": hw.dma.channel_bytes_per_cycle,
        "dma_latency": hw.dma.latency_cycles,
        "packet_bytes": hw.link.packet_bytes,
        "link_bw": hw.link.bytes_per_cycle,
        "hop_latency": hw.link.hop_latency_cycles,
        "queue": hw.link.rx_queue_packets,
        "sram_capacity": hw.sram.capacity_bytes,
        "max_cycles": int(max_cycles),
        "n_pes": hw.n_pes,
        "pes_per_cube": hw.pes_per_cube,
        "n_cubes": hw.n_cubes,
        "packet_detail": 1 if detail == "packet" else 0,
    }


@dataclass(repr=False)
class EngineResult:
    """What one simulation returns. Arrays are indexed by global PE (cube * pes_per_cube + pe),
    global command index (into ``program.commands``) or link (sender PE * N_PORTS + port)."""

    hw: HardwareConfig
    cycles: int  #: cycle the last command ended
    unit_counters: np.ndarray  #: (n_pes, N_UNITS) structured, see UNIT_COUNTERS_DTYPE
    link_counters: np.ndarray  #: (n_pes * N_PORTS,) structured, see LINK_COUNTERS_DTYPE
    peak_sram: np.ndarray  #: (n_pes,) peak live bytes
    sram_over: np.ndarray  #: (n_pes,) bool, peak above capacity
    cmd_start: np.ndarray  #: (n_commands,) start cycle (written in full on first read)
    cmd_end: np.ndarray  #: (n_commands,) end cycle (written in full on first read)
    messages: np.ndarray  #: MESSAGE_DTYPE: every send matched with its recv
    heap_events: int  #: pops from the event heap
    work: dict  #: {"packets", "bursts", "folds"}: simulated work items
    detail: str
    events: Optional[np.ndarray] = None  #: EVENT_DTYPE, when record_events=True
    debug: dict = field(default_factory=dict)  #: invariant counters (debug build)
    #: commands whose start and end the engine wrote by recognising a repeating steady state
    #: (simulate's ``steady``) instead of running them; the results are those of running them
    steady_commands: int = 0
    #: the engine's snapshots of its state in search of one (its cost: O(log iterations) for a
    #: loop that never repeats)
    steady_snapshots: int = 0
    #: a compact program's rows as the engine read them, in blocks of 256: "in_place" (traced
    #: rows, read where the trace keeps them), "filled" (into the row pool: a tiling's rows, or
    #: a block dropped and reached again) and "kept" (in the pool from the program's last
    #: timing); all 0 for a program held as one array
    row_blocks: dict = field(default_factory=dict, compare=False)
    #: (start, end, unit_q, unit_q_off, cmd_offsets, copies): the start and end cycles the
    #: jumps skipped, written into the engine's start and end arrays when cmd_start or cmd_end
    #: is first read (_engine.apply_copies); None once written
    start_end_copies: Optional[tuple] = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        # a line, not every array (the start and end cycles would be written in full to print)
        n = len(self.__dict__.get("_cmd_start", ()))
        return (f"<EngineResult {self.cycles:,} cycles, {self.detail} detail, {n:,} "
                f"command{'' if n == 1 else 's'}, {self.heap_events:,} heap events>")

    def __getstate__(self):  # a pickle carries the arrays written in full, not the queues
        self._settle()
        return self.__dict__

    def _settle(self) -> None:
        # Into the engine's own arrays, which the copies name (an array given to the result
        # instead, by assignment or dataclasses.replace, is never written); written, then marked
        # written: a thread reading meanwhile writes the same values again (apply_copies holds
        # the GIL).
        pending = self.__dict__.get("start_end_copies")
        if pending is not None:
            _engine.apply_copies(*pending)
            self.start_end_copies = None

    @property
    def seconds(self) -> float:
        return self.hw.seconds(self.cycles)

    @cached_property
    def completion_order(self) -> np.ndarray:
        """(n_commands,) int64: global command indices by (end cycle, index), sorted on first
        use (a timing-mode launch that nobody replays never pays for it)."""
        if not len(self.cmd_end):
            return np.zeros(0, np.int64)
        return np.argsort(self.cmd_end, kind="stable")  # by (end, index): one pass, not lexsort's two


def _times(name: str) -> property:
    # cmd_start and cmd_end: plain arrays to every reader, completed on first read (a timing
    # run nobody reads them from never touches the pages of the commands a jump skipped)
    def get(self):
        self._settle()
        return self.__dict__["_" + name]

    def put(self, value):
        self.__dict__["_" + name] = value

    return property(get, put, doc=f"(n_commands,) int64: each command's {name[4:]} cycle")


EngineResult.cmd_start = _times("cmd_start")
EngineResult.cmd_end = _times("cmd_end")


def _pe_name(hw: HardwareConfig, g: int) -> str:
    return pe_label(hw.pe_coords(g))


def _default_describe(program: Program) -> Callable[[int], str]:
    def describe(i: int) -> str:
        c = program.take([i])[0]
        op = _OP_NAMES.get(int(c["opcode"]), f"opcode {int(c['opcode'])}")
        if op in ("send", "recv") and 0 <= int(c["port"]) < N_PORTS:
            op += (" to " if op == "send" else " from ") + Port(int(c["port"])).name
        return f"{op} (line {int(c['line'])})"

    return describe


def _cmd_pe(cmd_offsets: np.ndarray, idx) -> np.ndarray:
    """The global PE of each command of ``idx`` (int64, the shape of ``idx``)."""
    return np.searchsorted(cmd_offsets, idx, side="right").astype(np.int64) - 1


class _Checker:
    """Raises ValueError for the first bad command of a mask, naming PE, command and line."""

    def __init__(self, hw, cmd_offsets, describe):
        self.hw, self.cmd_offsets, self.describe = hw, cmd_offsets, describe

    def pe(self, i: int) -> int:
        return int(_cmd_pe(self.cmd_offsets, i))

    def local(self, i: int) -> int:
        """Command ``i``'s index within its PE's stream."""
        return i - int(self.cmd_offsets[self.pe(i)])

    def fail(self, mask: np.ndarray, what: str) -> None:
        self.fail_at(np.flatnonzero(mask), what)

    def fail_at(self, bad: np.ndarray, what: str) -> None:
        """As :meth:`fail`, given the ascending indices of the bad commands."""
        if len(bad):
            i = int(bad[0])
            extra = f" ({len(bad) - 1} more like it)" if len(bad) > 1 else ""
            raise ValueError(
                f"{_pe_name(self.hw, self.pe(i))} command #{self.local(i)} "
                f"[{self.describe(i)}]: {what}{extra}"
            )


def _check_program(hw: HardwareConfig, program: Program) -> tuple:
    """Check ``program``'s arrays; returns its tensor sizes as checked, ``(tensor_bytes, None)``
    or ``(None, (idx, table))`` (Program.sizes), read once: what the engine is given."""
    cp = program.tiled
    if cp is None:
        c = program.commands
        if not isinstance(c, np.ndarray) or c.dtype != COMMAND_DTYPE or c.ndim != 1:
            raise ValueError(
                f"commands must be a 1-D array of dtype COMMAND_DTYPE, got "
                f"{getattr(c, 'dtype', type(c).__name__)}"
            )
    elif not hasattr(cp, "source") or getattr(cp.literal, "dtype", None) != COMMAND_DTYPE:
        raise ValueError("a Program's compact form must be a TiledCommands of COMMAND_DTYPE rows")
    tb, sizes = _tensor_sizes(program)
    n_t = len(sizes[0]) if sizes is not None else len(tb)
    for name, off, total in (
        ("cmd_offsets", program.cmd_offsets, program.n_rows),
        ("tensor_offsets", program.tensor_offsets, n_t),
    ):
        # the array itself goes to the compiled loop, so a list (checked via np.asarray) is not enough
        if not isinstance(off, np.ndarray):
            raise ValueError(f"{name} must be an int64 numpy array, got {type(off).__name__}")
        if off.dtype != np.int64 or off.shape != (hw.n_pes + 1,):
            raise ValueError(
                f"{name} must be int64 of length n_pes + 1 = {hw.n_pes + 1}, got "
                f"{off.dtype} of shape {off.shape}"
            )
        if off[0] != 0 or off[-1] != total or np.any(np.diff(off) < 0):
            raise ValueError(f"{name} must rise from 0 to {total}")
        if len(off) > 1 and int(np.diff(off).max()) >= 1 << 31:  # the engine's queues are int32
            raise ValueError(f"{name}: a PE's program may have at most 2**31 - 1 entries")
    tp = program.tensor_pinned
    if not isinstance(tp, np.ndarray) or tp.dtype != np.uint8 or tp.shape != (n_t,):
        raise ValueError("tensor_pinned must be uint8 with one entry per tensor")
    return tb, sizes


def _tensor_sizes(program: Program) -> tuple:
    """The Program's tensor sizes, checked: ``(tensor_bytes, None)`` (int64, one per tensor) or
    ``(None, (idx, table))`` when it holds them as uint16 indices into a table of sizes
    (Program.sizes; sizes no tensor uses are not checked). Read once, so that another thread
    building ``tensor_bytes`` meanwhile (which drops ``sizes``) changes nothing here."""
    tb, sizes = program._tensor_bytes, program.sizes
    if tb is None and sizes is not None:
        sizes = check_sizes(sizes)
        idx, table = sizes
        for bad, what in ((table < 0, "must be >= 0"), (table > MAX_SIZE, "must be at most 2**40")):
            if bad.any():  # (the first tensor of such a size; a size no tensor has is harmless)
                used = np.flatnonzero(np.isin(idx, np.flatnonzero(bad)))
                if len(used):
                    raise ValueError(f"tensor_bytes {what} (tensor {int(used[0])})")
        return None, sizes
    if not isinstance(tb, np.ndarray) or tb.dtype != np.int64:
        raise ValueError(f"tensor_bytes must be int64, got {getattr(tb, 'dtype', type(tb).__name__)}")
    if tb.ndim != 1:
        raise ValueError(f"tensor_bytes must be 1-D, one size per tensor, got shape {tb.shape}")
    # (min and max: no per-tensor temporaries)
    if len(tb) and tb.min() < 0:
        raise ValueError(f"tensor_bytes must be >= 0 (tensor {int(np.flatnonzero(tb < 0)[0])})")
    if len(tb) and tb.max() > MAX_SIZE:
        raise ValueError(f"tensor_bytes must be at most 2**40 (tensor {int(np.flatnonzero(tb > MAX_SIZE)[0])})")
    return tb, None


def link_order(links: np.ndarray, n_links: int) -> np.ndarray:
    """The stable order of ``links`` (ints, each in 0..n_links-1): messages in link order,
    program order within a link when they come in program order. A counting sort in C
    (_check.stable_order), the same order as numpy's stable argsort. Raises ValueError for a
    link outside 0..n_links-1."""
    links = np.ascontiguousarray(links, np.int64)
    if len(links) and (int(links.min()) < 0 or int(links.max()) >= n_links):
        raise ValueError(f"links must be in 0..{n_links - 1}, got {int(links.min())}..{int(links.max())}")
    return _check.stable_order(links, n_links)


class LinkPairs(NamedTuple):
    """A program's sends paired with its recvs over an SFR install (:func:`pair_links`).

    A link is named by its sending end: global PE g's port p is link ``g * N_PORTS + p``; a recv
    on port ``back`` of PE q drains link ``nbr[q, back] * N_PORTS + OPPOSITE[back]``."""

    send_link: np.ndarray  #: (n_sends,) int64: each send's link, in command order
    recv_link: np.ndarray  #: (n_recvs,) int64: the link each recv drains, in command order
    n_send: np.ndarray  #: (n_links,) int64: sends per link
    n_recv: np.ndarray  #: (n_links,) int64: recvs per link
    send_order: np.ndarray  #: (n_sends,) int64: the sends in link order, command order within a link
    recv_order: np.ndarray  #: (n_recvs,) int64: the recvs likewise

    def count_mismatch(self) -> int:
        """The first link whose send and recv counts differ, or -1."""
        bad = np.flatnonzero(self.n_send != self.n_recv)
        return int(bad[0]) if len(bad) else -1


def pair_links(nbr: np.ndarray, send_pe, send_port, recv_pe, recv_port) -> LinkPairs:
    """The k-th send on each link paired with the k-th recv that drains it: the one message
    pairing of kernbench (the launch's check names kernel lines from it, the engine's message
    table is built from it).

    ``nbr``: (n_pes, N_PORTS) int neighbour table (-1: not wired); ``send_pe``/``send_port``:
    the global PE and port of each send, in command order (int arrays), ``recv_pe``/
    ``recv_port`` likewise for the recvs. Every port used must be wired (the callers refuse
    the others first, naming the command). Message k of a link in link order pairs
    ``send_order[k]`` with ``recv_order[k]`` when the link's counts agree."""
    nbr_flat = np.asarray(nbr, np.int64).ravel()
    n_links = len(nbr_flat)
    send_port = np.asarray(send_port, np.int64)
    recv_port = np.asarray(recv_port, np.int64)
    send_link = np.asarray(send_pe, np.int64) * N_PORTS + send_port
    recv_link = nbr_flat[np.asarray(recv_pe, np.int64) * N_PORTS + recv_port] * N_PORTS + _OPPOSITE[recv_port]
    return LinkPairs(send_link, recv_link, np.bincount(send_link, minlength=n_links),
                     np.bincount(recv_link, minlength=n_links),
                     link_order(send_link, n_links), link_order(recv_link, n_links))


_OPPOSITE = np.array([int(q) for q in OPPOSITE], np.int64)


def _check_neighbours(hw: HardwareConfig, neighbours) -> np.ndarray:
    nbr = np.asarray(neighbours)
    if nbr.shape != (hw.n_pes, N_PORTS) or not np.issubdtype(nbr.dtype, np.integer):
        raise ValueError(f"neighbour table must be integer of shape ({hw.n_pes}, {N_PORTS})")
    # range check before the int32 cast, which would wrap a wide entry into a valid-looking index
    if np.any((nbr < -1) | (nbr >= hw.n_pes)):
        raise ValueError("neighbour table entries must be -1 or a PE index")
    nbr = np.ascontiguousarray(nbr, dtype=np.int32)
    for p in range(N_PORTS):
        src = np.flatnonzero(nbr[:, p] >= 0)
        back = nbr[nbr[src, p], int(OPPOSITE[p])]
        bad = src[back != src]
        if len(bad):
            a = int(bad[0])
            raise ValueError(
                f"SFR install is not symmetric: {_pe_name(hw, a)} port {Port(p).name} reaches "
                f"{_pe_name(hw, int(nbr[a, p]))}, whose {OPPOSITE[p].name} port does not reach back"
            )
    return nbr


# What each opcode needs and is, as bits of _OP_PROPS[opcode] (one gather instead of a pass
# over the commands per opcode test).
_P_LINK, _P_SRC0, _P_SRC1, _P_DST, _P_NO_RESULT, _P_MOVE, _P_MNK, _P_N = (
    _check.PROP_BITS[k] for k in ("link", "src0", "src1", "dst", "no_result", "move", "mnk", "n"))
_OP_PROPS = np.zeros(len(Opcode), np.uint8)
_OP_PROPS[Opcode.LOAD] = _P_DST | _P_MOVE
_OP_PROPS[Opcode.STORE] = _P_SRC0 | _P_NO_RESULT | _P_MOVE
_OP_PROPS[Opcode.DOT] = _P_SRC0 | _P_SRC1 | _P_DST | _P_MNK | _P_N
_OP_PROPS[Opcode.VEC] = _P_DST | _P_N
_OP_PROPS[Opcode.REDUCE] = _P_SRC0 | _P_DST | _P_MNK | _P_N
_OP_PROPS[Opcode.SEND] = _P_LINK | _P_SRC0 | _P_NO_RESULT | _P_MOVE
_OP_PROPS[Opcode.RECV] = _P_LINK | _P_DST | _P_MOVE
#: the unit of each opcode; a link opcode's port is added to it
_UNIT_BASE = np.array([Unit.DMA, Unit.DMA, Unit.GEMM, Unit.VECTOR, Unit.VECTOR, Unit.TX_E, Unit.RX_E],
                      np.int32)


#: Commands checked at a time: the per-command checks run over slices of this many, so their
#: temporaries stay small (and warm in the allocator) whatever the launch's size.
_CHUNK = 1 << 17


class _ChunkFailure(Exception):
    """A slice of commands failed check number ``check`` at (global, ascending) ``bad``."""

    def __init__(self, check: int, bad: np.ndarray, what: str):
        self.check, self.bad, self.what = check, bad, what


class _ChunkChecks:
    """The per-command checks, in order, on commands a..z; raises _ChunkFailure at the first
    check that fails. Numbered so that slices can be combined: the launch reports the lowest
    numbered failure, with the bad commands of every slice that failed it."""

    def __init__(self, a: int):
        self.a, self.n = a, 0

    def fail(self, mask: np.ndarray, what: str) -> None:
        self.fail_at(np.flatnonzero(mask), what)

    def fail_at(self, bad: np.ndarray, what: str) -> None:
        self.n += 1
        if len(bad):
            raise _ChunkFailure(self.n, bad + self.a, what)


def _check_commands(c, a, pe, t_off, producer, made):
    """Checks of commands a..a+len(c) that need no other slice: opcodes, units, tensor ids and
    sizes. Records each result's producer and counts results per tensor (``made``)."""
    chk = _ChunkChecks(a)
    op = np.ascontiguousarray(c["opcode"])
    chk.fail(op.view(np.uint32) >= len(Opcode), "unknown opcode")  # op < 0 or op >= len(Opcode)
    props = _OP_PROPS[op]
    port = np.ascontiguousarray(c["port"])
    is_link = (props & _P_LINK) != 0
    chk.fail(is_link & (port.view(np.uint32) >= N_PORTS), "link direction must be 0..3 (E, W, N, S)")
    expected = _UNIT_BASE[op]
    np.add(expected, port, out=expected, where=is_link)  # link ports are 0..3 here
    chk.fail(c["unit"] != expected, "unit does not match the opcode (and port)")
    del expected, port, is_link

    n_tensors = np.diff(t_off)[pe]
    cols = {f: np.ascontiguousarray(c[f]) for f in ("src0", "src1", "src2", "dst")}
    for f, x in cols.items():
        chk.fail((x < -1) | (x >= n_tensors), f"{f} tensor id out of range")
    del n_tensors
    for f, bit in (("src0", _P_SRC0), ("src1", _P_SRC1), ("dst", _P_DST)):
        chk.fail(((props & bit) != 0) & (cols[f] < 0), f"{f} is required by this opcode")
    chk.fail(((props & _P_NO_RESULT) != 0) & (cols["dst"] >= 0), "this opcode has no result")

    # Sizes matter only to some opcodes: checked on those commands.
    is_dot, is_red, is_vop = op == Opcode.DOT, op == Opcode.REDUCE, op == Opcode.VEC
    dots, reds, vops = np.flatnonzero(is_dot), np.flatnonzero(is_red), np.flatnonzero(is_vop)
    moves = np.flatnonzero((props & _P_MOVE) != 0)
    mnk = np.flatnonzero((props & _P_MNK) != 0)  # dot or reduce
    uses_n = np.flatnonzero((props & _P_N) != 0)  # dot, vec or reduce
    del props
    m_, n_, k_, esize = c["m"], c["n"], c["k"], c["esize"]

    def small(idx, *fields):
        bad = np.zeros(len(idx), bool)
        for x in fields:
            bad |= x[idx] < 1
        return idx[bad]

    chk.fail_at(small(dots, m_, n_, k_), "dot sizes must be >= 1")
    chk.fail_at(small(dots, esize), "dot element size must be >= 1 byte")
    chk.fail_at(small(vops, n_), "vector element count must be >= 1")
    chk.fail_at(small(reds, m_, n_, k_), "reduction sizes must be >= 1")
    vecs = np.flatnonzero(is_vop | is_red)
    chk.fail_at(vecs[c["sub"][vecs].view(np.uint32) >= len(VEC_OP_NAMES)], "unknown vector op")
    chk.fail_at(small(moves, c["nbytes"]), "byte count must be >= 1")
    # Upper bounds keep every cycle count, flop and byte counter the loop derives inside int64
    # (beyond them the C arithmetic would wrap, e.g. a huge dot costing 0 cycles).
    for f, used in (("m", mnk), ("n", uses_n), ("k", mnk), ("nbytes", moves)):
        chk.fail_at(used[c[f][used] > MAX_SIZE], f"{f} must be at most 2**40")
    chk.fail_at(dots[esize[dots] > 8], "dot element size must be at most 8 bytes")
    volume = m_[mnk].astype(np.float64) * n_[mnk].astype(np.float64) * k_[mnk].astype(np.float64)
    chk.fail_at(mnk[volume > MAX_VOLUME], "m * n * k must be at most 2**50")

    # Results: who makes each tensor (its global id is the PE's first id + the local one).
    dst = cols["dst"]
    makers = np.flatnonzero(dst >= 0)
    gdst = t_off[pe[makers]] + dst[makers]
    producer[gdst] = makers + a
    if len(gdst):
        lo = int(gdst.min())
        made[lo:int(gdst.max()) + 1] += np.bincount(gdst - lo).astype(made.dtype)


def _check_reads(c, a, pe, t_off, producer, made, readers):
    """Checks of commands a..a+len(c) against every command's results (``producer``,
    ``made``): produced once, before every read. Counts readers per tensor."""
    chk = _ChunkChecks(a)
    chk.n = 23  # numbered after _check_commands' checks
    dst = np.ascontiguousarray(c["dst"])
    makers = np.flatnonzero(dst >= 0)
    gdst = t_off[pe[makers]] + dst[makers]
    chk.fail_at(makers[made[gdst] > 1], "its result tensor is produced twice")
    del dst, makers, gdst
    for f in ("src0", "src1", "src2"):
        x = c[f]
        readers_i = np.flatnonzero(x >= 0)
        g = t_off[pe[readers_i]]
        g += x[readers_i]
        prod = producer[g]
        readers_i += a
        chk.fail_at(readers_i[prod < 0], f"{f} reads a tensor no command produces")
        chk.fail_at(readers_i[prod >= readers_i], f"{f} reads a tensor produced later in the stream")
        if len(g):
            lo = int(g.min())
            readers[lo:int(g.max()) + 1] += np.bincount(g - lo)
        del x, g, prod, readers_i


def _check_numpy(c, pe, t_off, producer, readers, chk) -> None:
    """The program checks, vectorized over slices of commands (see _CHUNK); raises the error of
    the first failing check (chk.fail_at). Fills ``producer`` and ``readers`` as it goes."""
    n = len(c)
    made = np.zeros(len(producer), np.int32)  # results per tensor (a count above 1 is an error anyway)

    def run(check, *args) -> None:
        failures = []
        for a in range(0, n, _CHUNK):
            z = min(n, a + _CHUNK)
            try:
                check(c[a:z], a, pe[a:z], t_off, *args)
            except _ChunkFailure as e:
                failures.append(e)
        if failures:
            first = min(e.check for e in failures)
            hit = [e for e in failures if e.check == first]
            chk.fail_at(np.concatenate([e.bad for e in hit]), hit[0].what)

    run(_check_commands, producer, made)
    run(_check_reads, producer, made, readers)


_PROGRAM_TABLES = ("readers", "units", "unit_q", "unit_q_off", "send_idx", "recv_idx", "send_bytes",
                   "recv_bytes")


def _program_tables(hw: HardwareConfig, program: Program, describe) -> dict:
    """The checks (one C pass, the numpy checks when it finds anything wrong), then the tables
    the engine indexes that do not depend on the wiring: each tensor's reader count (int32),
    each command's unit, per-unit queues, the sends and the recvs. A program kept compact
    (Program.tiled) is read a few thousand rows at a time, never expanded."""
    cmd_off = program.cmd_offsets
    t_off = program.tensor_offsets
    n_t = program.n_tensors  # (without building tensor_bytes from its sizes)
    made = pages.zeros(n_t, np.uint8)
    readers = pages.zeros(n_t, np.int32)
    # The C pass answers "all valid?" and builds the tables; only a program with something wrong
    # goes through the numpy checks below, whose errors name the first failing check.
    cp = program.tiled
    if cp is not None:
        units = pages.empty(cp.n, np.uint8)
        link_bytes = _check.check_source(cp.source(), cmd_off, t_off, _OP_PROPS, _UNIT_BASE,
                                         made, readers, MAX_SIZE, MAX_VOLUME, units)
        ok = link_bytes is not None  # (the sends' byte counts, the recvs'), in command order
    else:
        c = program.commands
        ok = _check.check_fast(c, cmd_off, t_off, _OP_PROPS, _UNIT_BASE, made, readers,
                               MAX_SIZE, MAX_VOLUME)
        units = np.ascontiguousarray(c["unit"], np.uint8) if ok else None
    del made
    if not ok:
        c = program.commands
        pe = np.repeat(np.arange(hw.n_pes, dtype=np.int32), np.diff(cmd_off))
        _check_numpy(c, pe, t_off, np.full(n_t, -1, np.int64), np.zeros(n_t, np.int32),
                     _Checker(hw, cmd_off, describe))
        raise AssertionError("kernbench: the fast program check rejected a program the numpy "
                             "checks accept: please report it")  # the two disagree: an engine bug

    # Each unit's queue (its commands in program order), and the sends and the recvs.
    # (a compact program's tilings queued through their bodies)
    unit_q, unit_q_off, send_idx, recv_idx = _check.unit_queues_of(
        units, cmd_off, cp.source() if cp is not None else None)
    if cp is None:
        send_bytes, recv_bytes = c["nbytes"][send_idx], c["nbytes"][recv_idx]
    else:
        send_bytes, recv_bytes = link_bytes
    return {"readers": readers, "units": units, "unit_q": unit_q, "unit_q_off": unit_q_off,
            "send_idx": send_idx, "recv_idx": recv_idx, "send_bytes": send_bytes,
            "recv_bytes": recv_bytes}


def moved_tables(tables: dict, source: Program, program: Program) -> dict | None:
    """:func:`_program_tables` of ``program`` from those of ``source``, without checking it
    again, when ``program`` is ``source``'s streams moved to other PEs: the same command array
    and every PE's stream and tensor table either empty or where some PE of ``source`` has them
    (the global command and tensor numbering unchanged). None when it is not."""
    if (program.n_commands != source.n_commands or not program.shares_commands(source)
            or not all(k in tables for k in _PAIRING_INPUTS)):
        return None
    co, to = program.cmd_offsets, program.tensor_offsets
    cs, ts = source.cmd_offsets, source.tensor_offsets
    if to[-1] != ts[-1] or program.n_tensors != source.n_tensors:
        return None
    used = np.flatnonzero((np.diff(co) > 0) | (np.diff(to) > 0))
    s_used = np.flatnonzero((np.diff(cs) > 0) | (np.diff(ts) > 0))
    if len(used) != len(s_used) or not (np.array_equal(co[used], cs[s_used])
                                        and np.array_equal(co[used + 1], cs[s_used + 1])
                                        and np.array_equal(to[used], ts[s_used])
                                        and np.array_equal(to[used + 1], ts[s_used + 1])):
        return None
    n_pes = len(co) - 1
    counts = np.zeros((n_pes, N_UNITS), np.int64)
    counts[used] = np.diff(tables["unit_q_off"]).reshape(-1, N_UNITS)[s_used]
    unit_q_off = np.zeros(n_pes * N_UNITS + 1, np.int64)
    np.cumsum(counts.ravel(), out=unit_q_off[1:])
    # (not the row pool: each program's timings fill their own, never one shared by two runs)
    return {**{k: v for k, v in tables.items() if k != "row_pool"}, "unit_q_off": unit_q_off}


def _prepare(hw: HardwareConfig, nbr: np.ndarray, program: Program, describe, tables=None,
             types=None) -> dict | None:
    # The program's tables (checked; ``tables`` if the caller has them), then the wiring's:
    # message pairs, in C (_check.message_table); when it refuses, the numpy pairing names why,
    # unless the caller checks the pairs' ``types`` (prepare: it names what is wrong its way).
    t = _program_tables(hw, program, describe) if tables is None else tables
    messages = _check.message_table(t["units"], t["send_idx"], t["recv_idx"], program.cmd_offsets,
                                    np.ascontiguousarray(nbr, np.int32), _OPPOSITE,
                                    t["send_bytes"], t["recv_bytes"], *(types or (None, None)))
    if messages is None:
        if types is not None:
            return None
        _messages_numpy(hw, nbr, program, t, describe)
        raise AssertionError("kernbench: the fast message pairing refused a program the numpy "
                             "pairing accepts: please report it")  # an engine bug
    return {**t, "messages": messages}


def _keep_prepared(prepared: dict, hw: HardwareConfig, nbr: np.ndarray, prep: dict, program: Program) -> None:
    # one wiring at a time: the tables are as big as the program
    prepared.clear()
    prepared["program"] = {k: prep[k] for k in _PROGRAM_TABLES}
    prepared[_prepared_key(hw, nbr)] = prep
    prepared["stamp"] = _stamp(program)


def _engine_reads(program: Program) -> tuple:
    # what the kept tables were checked from and the engine reads: the rows (the held array, or
    # the compact form's arrays when it reads through that: Program.tiled) and the offsets the
    # unit queues and reader counts index by (the tensor sizes and pinned flags are checked on
    # every call: _check_program)
    cp = program.tiled
    rows = (program.commands,) if cp is None else (cp.bounds, cp.literal, cp.tiles)
    return (cp is None, *rows, program.cmd_offsets, program.tensor_offsets)


def _fingerprint(x):
    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, _check.digest64(x))
    if isinstance(x, (tuple, list)):
        return tuple(_fingerprint(v) for v in x)
    return x if x is None or isinstance(x, (bool, int, np.integer)) else ("object", id(x))


def _stamp(program: Program) -> tuple:
    """A fingerprint of what the engine reads of ``program`` (its rows and offsets: a 64-bit
    checksum of each array's bytes, _check.digest64, about 32 ms for 2.4M held rows, nothing
    for a replayed program's compact form): the kept tables are reused only while it is the
    same (:func:`_stamp_holds`). A review edited ``TracedLaunch.program.commands`` after
    tracing (a vector op of 100,000): the next timing read it unchecked and crashed the
    interpreter; read-only flags did not hold either (a view taken while the array was
    writeable, the flag set back, ``release_commands`` after an edit: a second review)."""
    return _fingerprint(_engine_reads(program))


def _stamp_holds(program: Program, stamp) -> bool:
    """Whether the engine would read of ``program`` what its kept tables were checked from."""
    return stamp is not None and _fingerprint(_engine_reads(program)) == stamp


#: the tables only the link pairing reads (the message table is made from them): each send's
#: and recv's global index and byte count, 32 bytes a message
_PAIRING_INPUTS = ("send_idx", "recv_idx", "send_bytes", "recv_bytes")


def drop_pairing_inputs(prepared: dict) -> None:
    """Drop from ``prepared`` (:func:`simulate`'s) the tables only the link pairing reads:
    the engine reads the message table made from them. For a program timed once more on the
    wiring it was prepared for (a launch: 32 bytes a message fewer while the engine runs);
    timing it on another wiring prepares every table again."""
    for t in prepared.values():
        if isinstance(t, dict):
            for k in _PAIRING_INPUTS:
                t.pop(k, None)


def _prepared_key(hw: HardwareConfig, nbr: np.ndarray) -> tuple:
    return (hw.n_cubes, hw.pes_per_cube, nbr.tobytes())


def prepare(hw: HardwareConfig, neighbours, program: Program, describe, prepared: dict, *,
            sites: np.ndarray, site_type: np.ndarray, tables: dict | None = None) -> bool:
    """Check ``program`` and build the engine's tables for the wiring ``neighbours`` into
    ``prepared``, as :func:`simulate`'s first call with it would; the launch's one check of
    its commands and of its links. The links' check: every send paired with the recv that
    drains its link (the k-th with the k-th), of the same shape and dtype: ``sites`` (every
    command's site, int32) and ``site_type`` (per site, int64: equal numbers for link commands
    of equal shape and dtype). ``tables``: the program's checked tables if the caller has them
    (:func:`moved_tables`). Returns False, storing nothing, when the links do not pair (the
    caller names the first mismatch); raises as :func:`simulate` does for a program that fails
    its checks."""
    _check_program(hw, program)
    nbr = _check_neighbours(hw, neighbours)
    prep = _prepare(hw, nbr, program, describe, tables,
                    (np.ascontiguousarray(sites, np.int32), np.ascontiguousarray(site_type, np.int64)))
    if prep is None:
        return False
    _keep_prepared(prepared, hw, nbr, prep, program)
    return True


def _messages_numpy(hw: HardwareConfig, nbr: np.ndarray, program: Program, t: dict, describe) -> np.ndarray:
    """_check.message_table's messages, built with numpy from :func:`pair_links`; raises
    ValueError naming the first send or recv on an unwired port, the first link whose counts
    differ, or the first message whose recv expects other bytes."""
    send_idx, recv_idx = t["send_idx"], t["recv_idx"]
    chk = _Checker(hw, program.cmd_offsets, describe)

    # Links: wired, and the k-th send on a port matched with the k-th recv on the other end.
    nbr_flat = nbr.ravel()
    units = t["units"]
    s_port = units[send_idx].astype(np.int64) - Unit.TX_E
    r_port = units[recv_idx].astype(np.int64) - Unit.RX_E
    s_pe, r_pe = _cmd_pe(program.cmd_offsets, send_idx), _cmd_pe(program.cmd_offsets, recv_idx)
    s_nb = nbr_flat[s_pe * N_PORTS + s_port]
    r_nb = nbr_flat[r_pe * N_PORTS + r_port]
    for idx, nb, p_, verb in ((send_idx, s_nb, s_port, "sends"), (recv_idx, r_nb, r_port, "receives")):
        bad = np.flatnonzero(nb < 0)
        if len(bad):
            i = int(idx[bad[0]])
            raise ValueError(
                f"{_pe_name(hw, chk.pe(i))} command #{chk.local(i)} [{describe(i)}] {verb} on port "
                f"{Port(int(p_[bad[0]])).name}, which has no neighbour under the installed SFR"
            )
    lp = pair_links(nbr, s_pe, s_port, r_pe, r_port)
    lk = lp.count_mismatch()
    if lk >= 0:
        a, p = lk // N_PORTS, lk % N_PORTS
        b = int(nbr_flat[lk])
        raise ValueError(
            f"{_pe_name(hw, a)} sends {int(lp.n_send[lk])} message(s) on port {Port(p).name} but "
            f"{_pe_name(hw, b)} posts {int(lp.n_recv[lk])} recv(s) on port {OPPOSITE[p].name}: "
            f"every send needs exactly one matching recv"
        )
    so, ro = lp.send_order, lp.recv_order  # (send_idx and recv_idx are ascending)
    messages = np.zeros(len(so), MESSAGE_DTYPE)
    messages["link"] = lp.send_link[so]
    messages["send"] = send_idx[so]
    messages["recv"] = recv_idx[ro]
    messages["nbytes"] = t["send_bytes"][so]
    r_bytes = t["recv_bytes"][ro]
    bad = np.flatnonzero(r_bytes != messages["nbytes"])
    if len(bad):
        m = messages[int(bad[0])]
        s, r = int(m["send"]), int(m["recv"])
        raise ValueError(
            f"{_pe_name(hw, chk.pe(s))} [{describe(s)}] sends {int(m['nbytes'])} bytes but "
            f"the matching recv on {_pe_name(hw, chk.pe(r))} [{describe(r)}] expects "
            f"{int(r_bytes[int(bad[0])])} bytes"
        )
    return messages


_RG_COLS = 11  # the engine's region table: pe, c0, n, iters, t0, made, dlo, f0, f1, mid, u0 (_engine RG_*)


#: iterations before a tiling's body B a steady-state run may start (:func:`_tiled_runs`): the
#: proof's A and the one before it (iteration 0 when B is 2, language.loops.PROBES - 1), whose
#: pair the run's check compares; A and B the proof compared
PROBE_BACK = 2


def _tiled_runs(tiles, loops=None, starts=None) -> list:
    """Candidate repeating runs (c0, n, iters, origin, probe) from tl.range tilings ``(a, z, lo,
    R, D, shift, made)`` (kernbench.language.store.TiledCommands): each tiling whose body is the
    iteration just before its copies (origin ``("tile", k)``, k the tiling), and every copy
    tiling k makes of a run inside its body (origin ``("copy", c0 of that run, k)``), in order.
    A run starts up to ``probe`` (<= PROBE_BACK) iterations before the tiling's body: the loop's
    proof compared the body B with the iteration before it (A, kernbench.language.loops), and
    the loop's first iteration often repeats them too; the engine, which compares its state at
    two iterations of a run, then finds the repetition that much sooner. :func:`_steady_bodies`
    checks them like the rest and starts the run later, at the body at the latest, where they
    do not repeat. Never before its PE's stream (``starts``: each stream's first row, ascending,
    Program.cmd_offsets; default: one stream): a run reaching into the stream before (a loop
    whose first iteration is shorter than the rest, at the head of its stream) would overlap
    that stream's last run, and one of the two would be dropped below.

    The engine jumps within one run at a time, and only when the whole machine repeats, every
    PE at once; so of nested loops one is chosen, the same on every PE: ``loops`` names the loop
    each tiling replays (TiledCommands.loops; default: each its own), and a loop's score is the
    fewest iterations of any of its runs. The runs kept are those of each loop with no loop
    inside it of a higher score and no such loop around it. The engine runs about the same few
    iterations of each run before its state repeats, so the loop with the most iterations
    leaves the fewest commands to run; and a loop whose trip count differs from PE to PE (a
    ring's steps, split by rank into both sides and one) scores its shortest: while one PE
    moves from one such run to the next, the machine as a whole does not repeat."""
    loops = range(len(tiles)) if loops is None else loops
    starts = np.zeros(1, np.int64) if starts is None else np.asarray(starts, np.int64)
    # a tiling is a run of its own when its body is the iteration just before its copies
    own = [z == lo and D == made and made > 0 and R >= 1 for a, z, lo, R, D, _, made in tiles]
    chosen = _chosen_loops([(t[0], t[1] - t[0], t[3] + 1, loops[k])
                            for k, t in enumerate(tiles) if own[k]])
    regs: list = []  # (c0, n, iters, origin, probe) of the chosen loops' runs
    order: list = []  # (c0, index into regs), sorted
    for k, (a, z, lo, R, *_) in enumerate(tiles):
        n = z - a
        i0, i1 = bisect.bisect_left(order, (a, -1)), bisect.bisect_left(order, (z, -1))
        inner = [regs[i] for _, i in order[i0:i1] if regs[i][0] + regs[i][1] * regs[i][2] <= z]
        new = []
        if inner:  # (a loop of 2**20 iterations with none inside: no pass over them)
            for m in range(1, R + 1):
                off = lo + (m - 1) * n - a
                new += [(c0 + off, nn, it, ("copy", c0, k), pr) for c0, nn, it, _, pr in inner]
        if own[k] and loops[k] in chosen:
            s = int(starts[np.searchsorted(starts, a, side="right") - 1])  # its stream's first row
            back = min(PROBE_BACK, (a - s) // n)
            new.append((a - back * n, n, R + 1 + back, ("tile", k), back))
        for g in new:
            bisect.insort(order, (g[0], len(regs)))
            regs.append(g)
    regs.sort(key=lambda g: (g[0], -g[1] * g[2]))
    out, end = [], 0
    for g in regs:
        if g[0] >= end:  # (runs overlapping, or one inside another: the first)
            out.append(g)
            end = g[0] + g[1] * g[2]
    return out


def _chosen_loops(runs: list) -> set:
    """The loops whose runs the engine may jump (:func:`_tiled_runs`), from the tilings' own
    runs ``(c0, n, iters, loop)`` (their copies repeat their iterations and their nesting)."""
    score: dict = {}
    for g in runs:
        score[g[3]] = min(score.get(g[3], g[2]), g[2])
    runs = sorted(runs, key=lambda g: (g[0], -g[1] * g[2]))  # a run before the runs inside it
    parent, stack = [], []
    for i, (c0, n, it, _) in enumerate(runs):
        while stack and c0 + n * it > runs[stack[-1]][0] + runs[stack[-1]][1] * runs[stack[-1]][2]:
            stack.pop()
        parent.append(stack[-1] if stack else -1)
        stack.append(i)
    # loop t is inside loop u when a run of t is inside a run of u (on any PE)
    inside: dict = {key: set() for key in score}
    around: dict = {key: set() for key in score}
    for i, p in enumerate(parent):
        while p >= 0:
            if runs[p][3] != runs[i][3]:
                inside[runs[p][3]].add(runs[i][3])
                around[runs[i][3]].add(runs[p][3])
            p = parent[p]
    chosen = {key for key in score if all(score[key] >= score[t] for t in inside[key])}
    return {key for key in chosen if not around[key] & chosen}


def _run_body(c, c0: int, n: int, iters: int, known=None) -> tuple | None:
    """(made, dlo, first, fixed, shift) of the run of ``iters`` iterations of ``n`` commands of
    ``c`` (a command array, or a _replay.CommandSource reading a compact one) from ``c0`` (see
    :func:`_steady_bodies`), read off its first two iterations and checked on all
    (_replay.tiles_repeat, source_repeats) unless its operand shifts equal ``known``, those of
    a run the rows repeat by construction; None if it does not repeat so."""
    src = c if isinstance(c, _replay.CommandSource) else None
    if c0 + n * iters > (src.n if src is not None else len(c)):
        return None
    if src is not None:
        b0, b1 = src.rows(c0, c0 + n), src.rows(c0 + n, c0 + 2 * n)
    else:
        b0, b1 = np.ascontiguousarray(c[c0:c0 + n]), np.ascontiguousarray(c[c0 + n:c0 + 2 * n])
    shift = np.empty((n, 3), np.uint8)
    fixed = np.empty(3 * n, np.int64)
    step = _replay.run_step(b0, b1, shift, fixed)  # (one pass in C)
    if step is None:
        return None
    made, dlo, first, n_fixed = step
    fixed = np.unique(fixed[:n_fixed])
    if np.any((fixed >= first) & (fixed < first + made * iters)):
        return None
    if known is not None and np.array_equal(shift, known):
        return made, dlo, first, fixed, shift
    if not (_replay.source_repeats(src, c0, n, iters, made, shift) if src is not None
            else _replay.tiles_repeat(c[c0:c0 + n * iters], n, iters, made, shift)):
        return None
    return made, dlo, first, fixed, shift


def _steady_bodies(commands: np.ndarray | None, compact, starts=None) -> list:
    """The repeating runs of ``commands`` that the engine's steady-state jumps may use: each
    ``(c0, n, iters, made, dlo, first, fixed)``, a run of ``iters`` iterations of ``n`` commands
    from ``c0`` where iteration i + 1 is iteration i with its results ``made`` tensors further on
    (the first result of iteration 0 is local tensor ``first``) and each operand either the same
    tensor (``fixed``: local ids, defined before the run) or ``made`` further on, reading at
    most ``-dlo`` iterations back.

    The tl.range tilings of ``compact`` propose them (:func:`_tiled_runs`). ``commands`` an
    array: each run is checked on all its rows (:func:`_run_body`), so an array changed since
    it was traced only loses the runs it broke. ``commands`` None: the rows are read through
    ``compact`` (Program.tiled), never expanded, and are what its tilings say; so a tiling's own
    run repeats by construction when the operands it moves are the ones its first two
    iterations move, and so does a tiling's copy of a run that repeats when the tiling moves
    the same operands of every iteration of it (its flags repeat with the run's period); every
    other run is read and checked in full. ``starts``: the PEs' streams' first rows
    (Program.cmd_offsets; :func:`_tiled_runs`). Depends on the command array and where its
    streams start only: a Program moved to other PEs (Program.moved) has the same."""
    tiles = getattr(compact, "tiles", None)
    if not tiles:
        return []
    trusted = commands is None
    rows = commands if commands is not None else compact.source()
    out, shifts = [], {}
    skipped = {}  # where a run was proposed -> the iterations before its body it starts after

    def check(c0, n, iters, origin, skip):
        # the run proposed at c0 - skip * n, its first `skip` iterations left out. Trusted, the
        # first two iterations are compared (_run_body) and the rest repeat by construction:
        # from the proof's A on, a tiling's copies of its body B, which its proof compared with A
        known = None
        if trusted and origin[0] == "tile":
            known = tiles[origin[1]][5]
        elif trusted and origin[1] in shifts:
            a, flags = tiles[origin[2]][0], tiles[origin[2]][5]
            f0 = origin[1] + skip * n - a
            f = flags[f0:f0 + n * iters]
            if len(f) == n * iters and (f.reshape(iters, n, 3) == f[:n]).all():
                known = shifts[origin[1]]
        return _run_body(rows, c0, n, iters, known)

    for c0, n, iters, origin, probe in _tiled_runs(tiles, getattr(compact, "loops", None), starts):
        # a copy starts where the run it copies does; the others as early as proposed. (Copies
        # name a run by where it was proposed, c0.)
        for skip in range(skipped.get(origin[1], 0) if origin[0] == "copy" else 0, probe + 1):
            body = check(c0 + skip * n, n, iters - skip, origin, skip)
            if body is not None:
                skipped[c0] = skip
                out.append((c0 + skip * n, n, iters - skip, *body[:4]))
                shifts[c0] = body[4]
                break
    return out


#: the most iterations of a run the engine snapshots the middles of (_mid_trigger): they save at
#: most one iteration, for two snapshots, so only where an iteration is a large share of the run
MID_ITERS_MAX = 16


def _mid_trigger(units: np.ndarray, c0: int, n: int, iters: int) -> int:
    """The offset in an iteration of ``n`` commands from ``c0`` of the engine's middle trigger
    (_engine RG_MID): the command on the unit of the iteration's first (``units``: each
    command's, _program_tables), other than it, nearest to ``n // 2``; 0 if there is none or
    the run has more than MID_ITERS_MAX ``iters``. On the first command's unit, the triggers
    issue in the order they come: a unit runs its queue in program order, while another unit's
    command may start before an earlier one."""
    if n < 2 or iters > MID_ITERS_MAX:
        return 0
    same = np.flatnonzero(units[c0 + 1:c0 + n] == units[c0]) + 1
    return int(same[np.argmin(np.abs(same - n // 2))]) if len(same) else 0


def _steady_regions(bodies: list, program: Program, units: np.ndarray | None = None) -> tuple | None:
    """The engine's region table for ``program`` from :func:`_steady_bodies` of its commands:
    (table (k, _RG_COLS) int64 in (pe, c0) order, the per-PE offsets into it (n_pes + 1,), the
    fixed operands' global tensor ids), or None when there is none. A run that crosses from one
    PE's stream into the next is left out. ``units`` (each command's unit, uint8): the middle
    triggers (:func:`_mid_trigger`) and the units the triggers are on; None: no middles, and
    the engine takes a region's triggers as they come (its starts only)."""
    cmd_off = np.asarray(program.cmd_offsets, np.int64)
    t_off = np.asarray(program.tensor_offsets, np.int64)
    rows, fixed, nf = [], [], 0
    for c0, n, iters, made, dlo, first, fx in bodies:
        pe = int(np.searchsorted(cmd_off, c0, "right")) - 1
        if c0 + n * iters > cmd_off[pe + 1]:
            continue
        mid, u0 = (_mid_trigger(units, c0, n, iters), int(units[c0])) if units is not None else (0, -1)
        rows.append((pe, c0, n, iters, int(t_off[pe]) + first, made, dlo, nf, nf + len(fx), mid, u0))
        fixed.append(fx + t_off[pe])
        nf += len(fx)
    if not rows:
        return None
    table = np.array(rows, np.int64).reshape(-1, _RG_COLS)
    pe_off = np.searchsorted(table[:, 0], np.arange(len(cmd_off)), "left").astype(np.int64)
    return table, pe_off, np.concatenate(fixed).astype(np.int64)


#: debug build: a failed bounds check inside the engine's noexcept loop, which Python prints as
#: unraisable (its object the function's qualified name, under kernbench._core), kept for
#: :func:`simulate` to raise (a review: the run went on and ended as a deadlock)
_ENGINE_UNRAISABLE = UnraisableCatcher(
    lambda hook_args: isinstance(hook_args.object, str) and hook_args.object.startswith("kernbench._core."))


def simulate(
    hw: HardwareConfig,
    neighbours,
    program: Program,
    *,
    detail: str = "train",
    max_cycles: int | None = None,
    record_events: bool = False,
    strict_sram: bool = False,
    describe: Callable[[int], str] | None = None,
    source: Callable[[int], str] | None = None,
    prepared: dict | None = None,
    steady: bool = True,
    row_slots: int | None = None,
) -> EngineResult:
    """Time ``program`` on ``hw`` with the SFR wiring ``neighbours`` ((n_pes, 4) int, -1 = none).

    ``detail``: "train" (closed-form packet trains, default) or "packet" (one heap event per
    packet, burst and fold); both give the same cycles. ``max_cycles`` stops a runaway launch with
    MaxCyclesError. ``describe(global_cmd) -> str`` lets the caller name commands (kernel lines)
    in errors, ``source(global_cmd) -> "file:line"`` gives errors their ``where``. ``prepared``: a
    dict the caller keeps beside ``program``: the first call stores the checked program's tables
    there (unit queues, message pairs; nothing that depends on timing parameters) with a
    checksum of what they were checked from (the rows the engine reads and the offsets), later
    calls with the same neighbours reuse them instead of checking the program again
    (TracedLaunch.time: one trace, many hardware variants) while the checksum is the same (an
    edited program is checked again).
    ``steady`` (train detail): where the program repeats a loop body (tl.range; see
    :func:`_steady_regions`) and the whole machine's state comes back to the same point a whole
    number of iterations later, moved on in time, the engine jumps over the stretches that repeat
    it, writing their commands' start and end from the stretch before: every result equals the
    run without the jumps (``steady=False``), bit for bit. ``row_slots``: a compact program's
    rows that are not traced rows (a tiling's) are read 256 at a time into a pool of this many
    blocks (None: 2 per unit of every PE with commands, at least 64), a block dropped and read
    again when its slot is needed; the pool is kept in ``prepared`` for the next call. Results do
    not depend on it (tests pass 1 or 2). Raises
    ValueError for malformed input, DeadlockError, MaxCyclesError,
    SramCapacityError when ``strict_sram`` and a PE's peak exceeds capacity, CounterOverflowError
    when a unit's work counter would pass 2**63 - 1 (naming the command), MemoryError when the
    event heap cannot grow, and (debug build only) EngineInvariantError for a broken engine
    invariant. Ctrl-C (on the main thread) stops the run, or the program's checks before it,
    within milliseconds with KeyboardInterrupt, the engine's memory freed.
    """
    if not isinstance(detail, str) or detail not in DETAILS:
        raise ValueError(f"detail must be one of {DETAILS}, got {short_repr(detail)}")
    for name, flag in (("steady", steady), ("strict_sram", strict_sram), ("record_events", record_events)):
        if not isinstance(flag, (bool, np.bool_)):  # ("no" would be true)
            raise ValueError(f"{name} must be True or False, got {short_repr(flag)}")
    if not isinstance(hw, HardwareConfig):
        raise ValueError(f"hw must be a HardwareConfig, got {type(hw).__name__}")
    check_bounds(hw)  # a frozen config can still be changed with object.__setattr__
    if not isinstance(program, Program):
        raise ValueError(f"program must be a kernbench Program, got {type(program).__name__}")
    if max_cycles is not None and (not is_whole(max_cycles)
                                   or not 1 <= max_cycles <= _HORIZON):
        raise ValueError(f"max_cycles must be an int in 1..2**62, got {short_repr(max_cycles)}")
    # Without a guard the loop still stops at the horizon, where int64 cycle arithmetic ends.
    limit = _HORIZON if max_cycles is None else int(max_cycles)
    tb, sizes = _check_program(hw, program)  # (read once: what the engine is given)
    nbr = _check_neighbours(hw, neighbours)
    describe = describe or _default_describe(program)
    if prepared and not _stamp_holds(program, prepared.get("stamp")):
        # the program changed since its tables were kept: checked again, through a reader made
        # again from what it holds now
        prepared.clear()
        if program.compact is not None:
            program.compact._src = None
    prep = prepared.get(_prepared_key(hw, nbr)) if prepared is not None else None
    if prep is None:
        tables = prepared.get("program") if prepared else None
        if tables is not None and not all(k in tables for k in _PAIRING_INPUTS):
            tables = None  # (drop_pairing_inputs: checked and prepared again)
        prep = _prepare(hw, nbr, program, describe, tables)
        if prepared is not None:
            _keep_prepared(prepared, hw, nbr, prep, program)

    regions = None
    if steady and detail == "train":
        if "regions" not in prep:
            t = prepared.get("program") if prepared is not None else None
            if "steady_bodies" not in prep:  # (a moved Program's tables may bring them along)
                cp = program.tiled
                prep["steady_bodies"] = _steady_bodies(None if cp is not None else program.commands,
                                                       program.compact, program.cmd_offsets)
                if t is not None:
                    t["steady_bodies"] = prep["steady_bodies"]
            prep["regions"] = _steady_regions(prep["steady_bodies"], program, prep["units"])
        regions = prep["regions"]
    # A compact program (Program.tiled) is never expanded: the engine reads a block of rows
    # when it reaches it (in place when traced, else into a pool of 2 blocks per unit). The
    # pool is kept with the program's tables for its next timing (taken out while a run uses
    # it: two threads timing one program at once never share one).
    cp = program.tiled
    pool = keep = None
    if cp is not None:
        keep = prepared.get("program", prep) if prepared is not None else prep
        slots = _engine.pool_slots(row_slots, prep["unit_q_off"], cp.n)
        pool = keep.pop("row_pool", None)
        if pool is None or len(pool[1]) != slots + 1:
            pool = _engine.new_row_pool(slots)
    sim = _engine.Sim(
        hw_params(hw, detail, limit),
        program.commands if cp is None else None,
        prep["unit_q"],
        prep["unit_q_off"],
        program.cmd_offsets,
        program.tensor_offsets,
        tb,
        program.tensor_pinned,
        prep["readers"],
        nbr.ravel(),
        limit,
        *(regions or (None, None, None)),
        source=cp.source() if cp is not None else None,
        row_pool=pool,
        t_sizes=sizes,
    )
    try:
        if _engine.DEBUG_BUILD:
            with _ENGINE_UNRAISABLE as broken:
                status = sim.run()
            if broken:
                u = broken[0]
                raise EngineInvariantError(
                    f"kernbench engine (debug build): {u.exc_type.__name__}: {u.exc_value} in "
                    f"{u.object} at cycle {sim.now_cycle:,}, in a "
                    f"loop that cannot raise it. This is an engine bug, not a kernel's: please "
                    f"report it with the launch", cycle=sim.now_cycle)
        else:
            status = sim.run()
        if pool is not None:
            keep["row_pool"] = pool
    except BaseException:
        # A signal handler raised during the loop (Ctrl-C: KeyboardInterrupt). run() has freed
        # the engine's C state; drop its arrays too, as the traceback keeps this frame alive.
        # Nothing else was touched: the next simulate() starts from scratch.
        del sim, prep
        raise
    if status == _engine.STATUS["nomem"]:
        raise MemoryError("kernbench engine: out of memory growing the event heap")
    if status == _engine.STATUS["deadlock"]:
        _raise_deadlock(hw, program, nbr, sim, prep, describe, source)
    if status == _engine.STATUS["max_cycles"]:
        raise _max_cycles_error(hw, sim, describe, limit, source)
    if status == _engine.STATUS["overflow"]:
        raise _overflow_error(hw, program, sim, describe, source)
    if status == _engine.STATUS["invariant"]:
        what, cycle, cube = sim.broken_invariant()
        raise EngineInvariantError(
            f"kernbench engine (debug build): invariant broken at cycle {cycle:,}"
            + (f" on cube {cube}'s memory channel" if cube >= 0 else "") + f": {what}. This is an "
            "engine bug, not a kernel's: please report it with the launch", cycle=cycle)

    cmd_start, cmd_end = sim.cmd_start_arr, sim.cmd_end_arr
    n = len(cmd_end)
    copies = sim.start_end_copies()
    pending = ((cmd_start, cmd_end, prep["unit_q"], prep["unit_q_off"], program.cmd_offsets, copies)
               if len(copies) else None)
    peak = sim.sram_peak_arr
    over = peak > hw.sram.capacity_bytes
    if strict_sram and over.any():
        bad = [(_pe_name(hw, int(g)), int(peak[g])) for g in np.flatnonzero(over)]
        # the PE that went above capacity first, where (the engine notes the cycle, the command
        # that allocated last in it, the live bytes): its kernel line is the error's
        first = sim.sram_over_arr
        g0 = min(np.flatnonzero(over).tolist(), key=lambda g: (int(first[g, 0]) < 0, int(first[g, 0]), g))
        at, c, live = (int(x) for x in first[g0])
        what = where = ""
        if c >= 0:
            what = (f"; first on {_pe_name(hw, g0)} at cycle {at:,}, {live:,} bytes live, as "
                    f"{describe(c) if describe is not None else f'command {c}'} allocated its result")
            where = source(c) if source is not None else None
        raise SramCapacityError(
            f"peak SRAM above capacity ({hw.sram.capacity_bytes:,} bytes) on "
            + ", ".join(f"{name}: {b:,} bytes" for name, b in bad[:8])
            + (f" and {len(bad) - 8} more" if len(bad) > 8 else "") + what
            # (what to change: a review found the error said where, not what to do)
            + f". Raise sram.capacity_bytes to at least {max(b for _, b in bad):,}, or keep fewer "
              f"bytes live: smaller tiles, loads gated with after= (docs/language.md)",
            bad,
            pe=hw.pe_coords(g0),
            where=where or None,
            cycle=at if c >= 0 else None,
        )
    events = None
    if record_events:
        if pending is not None:
            _engine.apply_copies(*pending)
            pending = None
        events = np.zeros(n, EVENT_DTYPE)
        events["pe"] = np.repeat(np.arange(hw.n_pes, dtype=np.int32), np.diff(program.cmd_offsets))
        events["unit"] = prep["units"]
        events["cmd"] = np.arange(n)
        events["start"] = cmd_start
        events["end"] = cmd_end
        events = events[np.argsort(events["start"], kind="stable")]  # by (start, cmd)
    return EngineResult(
        hw=hw,
        cycles=int(sim.last_end) if n else 0,
        unit_counters=sim.unit_counters,
        link_counters=sim.link_counters,
        peak_sram=peak,
        sram_over=over,
        cmd_start=cmd_start,
        cmd_end=cmd_end,
        messages=prep["messages"],
        heap_events=int(sim.heap_events),
        work={
            "packets": int(sim.link_counters["packets"].sum()),
            "bursts": int(sim.n_bursts),
            "folds": int(sim.n_folds),
        },
        detail=detail,
        events=events,
        debug=sim.debug_counters() if _engine.DEBUG_BUILD else {},
        steady_commands=int(sim.steady_commands),
        steady_snapshots=int(sim.steady_snapshots),
        row_blocks={"in_place": int(sim.blocks_in_place), "filled": int(sim.blocks_filled),
                    "kept": int(sim.blocks_kept)},
        start_end_copies=pending,
    )


# -- diagnostics ---------------------------------------------------------------------------------
_WAIT_OPERAND, _BUSY = 1, 2  # U_WAIT_OPERAND, U_BUSY in _types.pxd


def _unit_position(hw, g, u, states, describe) -> str:
    state, cur, nxt, _ = states
    s = int(state[g, u])
    name = UNIT_NAMES[u]
    if s == _WAIT_OPERAND:
        return f"its {name} is at {describe(int(nxt[g, u]))}, waiting for an operand"
    if s == _BUSY:
        return f"its {name} is busy with {describe(int(cur[g, u]))}"
    if int(nxt[g, u]) >= 0:
        return f"its {name} has not reached {describe(int(nxt[g, u]))}"
    return f"its {name} has no more commands"


def _producer(program: Program, t: int) -> int:
    """The global command making global tensor ``t`` (of a checked program), read PE by PE
    without expanding a compact program (error paths only)."""
    g = int(np.searchsorted(program.tensor_offsets, t, side="right")) - 1
    local = t - int(program.tensor_offsets[g])
    a, z = int(program.cmd_offsets[g]), int(program.cmd_offsets[g + 1])
    cp = program.tiled
    for x in range(a, z, 1 << 16):
        y = min(z, x + (1 << 16))
        hit = np.flatnonzero((cp.rows(x, y) if cp is not None else program.commands[x:y])["dst"] == local)
        if len(hit):
            return x + int(hit[0])
    raise AssertionError(f"kernbench: tensor {t} has no producer in a checked program")


def _blocked_units(hw, program, nbr, sim, prep, describe) -> list[dict]:
    """Every unit that still has work, with what it waits for and who holds that up."""
    states = sim.unit_states()
    state, cur, nxt, wait = states
    tx = sim.link_states()[0]
    units = prep["units"]
    out = []
    for g in range(hw.n_pes):
        for u in range(N_UNITS):
            s = int(state[g, u])
            head = f"{_pe_name(hw, g)} {UNIT_NAMES[u]}"
            if s == _WAIT_OPERAND:
                c, p = int(nxt[g, u]), _producer(program, int(wait[g, u]))
                text = (f"{head}: {describe(c)} waits for the result of {describe(p)} on "
                        f"{UNIT_NAMES[int(units[p])]}, which has not finished")
                out.append(dict(pe=g, unit=u, cmd=c, reason="operand", other_pe=g, other_cmd=p, text=text))
            elif s == _BUSY:
                c = int(cur[g, u])
                prt = int(program.take([c])["port"][0])
                other = int(nbr[g, prt])
                back = int(OPPOSITE[prt])
                if u >= Unit.RX_E:  # a recv short of data
                    if int(tx[other * N_PORTS + back]) >= 0:
                        why = f"its sender {_pe_name(hw, other)} is sending but short of credits"
                    else:
                        why = (f"its sender {_pe_name(hw, other)} has not started the matching send: "
                               + _unit_position(hw, other, Unit.TX_E + back, states, describe))
                    reason = "data"
                else:  # a send short of credits
                    why = (f"its receiver {_pe_name(hw, other)} has not posted the matching recv: "
                           + _unit_position(hw, other, Unit.RX_E + back, states, describe))
                    reason = "credit"
                out.append(dict(pe=g, unit=u, cmd=c, reason=reason, other_pe=other, other_cmd=-1,
                                text=f"{head}: {describe(c)} waits for {'data' if reason == 'data' else 'credits'}; {why}"))
    return out


def _wait_target(program, b: dict) -> tuple:
    """(PE, unit) that blocked unit ``b`` waits for."""
    if b["reason"] == "operand":
        return (b["pe"], int(program.take([b["other_cmd"]])["unit"][0]))
    port = int(program.take([b["cmd"]])["port"][0])
    back = int(OPPOSITE[port])
    if b["reason"] == "data":  # a recv waits for the sender's TX unit
        return (b["other_pe"], Unit.TX_E + back)
    return (b["other_pe"], Unit.RX_E + back)  # a send waits for the receiver's RX unit


def _wait_cycle(program, blocked: list) -> list:
    """The blocked units that wait on each other in a cycle (empty when the waits end at a unit
    that is not blocked), in wait order from the first blocked unit that is on one."""
    node = {(b["pe"], b["unit"]): b for b in blocked}
    for b in blocked:
        path, seen = [], {}
        cur = (b["pe"], b["unit"])
        while cur in node and cur not in seen:
            seen[cur] = len(path)
            path.append(node[cur])
            cur = _wait_target(program, node[cur])
        if cur in seen:
            return path[seen[cur]:]
    return []


#: the most commands a deadlock's fix walks over on one PE (an error path on a long program)
_SCAN = 4096


def _array_of(describe, c: int):
    """The device array DMA command ``c`` loads or stores, None when unknown: asked of the
    traced launch that ``describe`` belongs to (runtime.traced.TracedLaunch.array_of)."""
    ask = getattr(getattr(describe, "__self__", None), "array_of", None)
    return ask(c) if callable(ask) else None


def _movable_ahead(program, p: int, head: int, end, describe, depth: int = 0) -> bool:
    """Whether command ``p``, queued on a unit behind ``head`` (the command that unit is blocked
    at), could be issued just before ``head`` and run: each of its operands' producers ended,
    or is queued between them on the same unit and movable in turn (64 levels at most); and,
    for a DMA command, no store it would pass touches its array, nor does it store to one a
    command it passes touches (a spill read back keeps its order; an unknown array counts)."""
    if depth >= 64:
        return False
    rows = program.take([p, head])
    unit = int(rows[0]["unit"])
    g = int(np.searchsorted(program.cmd_offsets, p, side="right")) - 1
    for f in ("src0", "src1", "src2"):
        t = int(rows[0][f])
        if t < 0:
            continue
        q = _producer(program, int(program.tensor_offsets[g]) + t)
        if end[q] >= 0:
            continue
        if not (head < q < p and int(program.take([q])[0]["unit"]) == unit
                and _movable_ahead(program, q, head, end, describe, depth + 1)):
            return False
    if int(rows[0]["opcode"]) in (Opcode.LOAD, Opcode.STORE):
        if p - head > _SCAN:  # (an error path on a long program: too far to check, no fix named)
            return False
        passed = np.arange(head, p, dtype=np.int64)
        rows_p = program.take(passed)
        dma = passed[(rows_p["unit"] == unit) & np.isin(rows_p["opcode"], (Opcode.LOAD, Opcode.STORE))]
        mine, p_stores = _array_of(describe, p), int(rows[0]["opcode"]) == Opcode.STORE
        for m in dma.tolist():
            if (p_stores or int(program.take([m])[0]["opcode"]) == Opcode.STORE) and (
                    mine is None or _array_of(describe, m) in (None, mine)):
                return False
    return True


def _reads_recv(program, c: int, end, describe, depth: int = 0) -> bool:
    """Whether command ``c``'s operands come, through commands that have not ended, from a recv
    that has not ended; a load's too through a store of its array on its PE that has not ended
    (a buffer written and read back). 64 levels at most: beyond, assumed so."""
    if depth >= 64:
        return True
    g = int(np.searchsorted(program.cmd_offsets, c, side="right")) - 1
    row = program.take([c])[0]
    if int(row["opcode"]) == Opcode.LOAD:  # (the stores not ended: the last _SCAN commands')
        before = np.arange(max(int(program.cmd_offsets[g]), c - _SCAN), c, dtype=np.int64)
        rows = program.take(before)
        stores = before[(rows["opcode"] == Opcode.STORE) & (end[before] < 0)]
        mine = _array_of(describe, c)
        for m in stores.tolist():
            if (mine is None or _array_of(describe, m) in (None, mine)) \
                    and _reads_recv(program, m, end, describe, depth + 1):
                return True
    # (a load's src0 is its after= gate: it orders the load, its value is memory's)
    for f in ("src1", "src2") if int(row["opcode"]) == Opcode.LOAD else ("src0", "src1", "src2"):
        t = int(row[f])
        if t < 0:
            continue
        q = _producer(program, int(program.tensor_offsets[g]) + t)
        if end[q] < 0 and (int(program.take([q])[0]["opcode"]) == Opcode.RECV
                           or _reads_recv(program, q, end, describe, depth + 1)):
            return True
    return False


def _suggestions(hw, program, cycle: list, describe, end) -> list:
    """What would remove a cycle of waits, where the model can tell. A recv gated by ``after=``
    on the cycle, or a load gated so: posting or issuing it earlier removes that wait. An operand
    queued on its unit behind the command the cycle holds there (it needs nothing of the cycle,
    but the unit runs in program order, and what it reads ended or is queued with it, no store
    of its array passed): issuing it first removes that wait. A deeper receive queue never does
    here: a send short of credits holds up only later sends on its own TX unit, and those go to
    the same RX unit, which takes them after the recv the cycle waits on; the text says so. Only
    when none of these applies and every send on the cycle forwards what a recv on it brings in:
    one PE must send first."""
    out = []
    for b in cycle:
        gated = b["reason"] == "operand" and b["unit"] >= Unit.RX_E
        if b["reason"] == "operand" and b["unit"] == Unit.DMA and b["other_cmd"] >= 0:
            # a load waiting for its after= gate (src0), not for a mask or other operand
            row = program.take([b["cmd"]])[0]
            g = int(np.searchsorted(program.cmd_offsets, b["cmd"], side="right")) - 1
            gated = (int(row["opcode"]) == Opcode.LOAD and int(row["src0"]) >= 0 and _producer(
                program, int(program.tensor_offsets[g]) + int(row["src0"])) == b["other_cmd"])
        if gated:
            verb = "posting" if b["unit"] >= Unit.RX_E else "issuing"
            out.append(f"{verb} {b['label']} earlier (without after=, or after a tensor that does "
                       f"not wait on this exchange) would remove this cycle (another may remain: "
                       f"the launch's next error would name it)")
    for k, b in enumerate(cycle):
        nxt = cycle[(k + 1) % len(cycle)]  # (the unit b waits for)
        if (b["reason"] == "operand" and nxt["pe"] == b["pe"] and b["other_cmd"] >= 0
                and nxt["cmd"] != b["other_cmd"]
                and _movable_ahead(program, b["other_cmd"], nxt["cmd"], end, describe)):
            out.append(f"{describe(b['other_cmd'])}, which {b['label']} waits for, is queued on "
                       f"{UNIT_NAMES[nxt['unit']]} behind {nxt['label']}, which waits on this cycle: "
                       f"issuing it (and what it reads on that unit) before that one would remove "
                       f"this cycle (another may remain: the launch's next error would name it)")
    if not out and any(b["reason"] == "credit" for b in cycle):
        out.append("not a deeper receive queue (link.rx_queue_packets): the sends short of credits "
                   "here wait for recvs that the cycle itself holds up; reorder the kernel's sends "
                   "and recvs")
    if not out:
        # every link wait is for data: each send on the cycle computes from a recv on it, so no
        # message can start (a ring that forwards what it receives, with nothing injected)
        sends = [b for b in cycle if b["reason"] == "operand" and Unit.TX_E <= b["unit"] < Unit.RX_E]
        if (sends and all(b["reason"] in ("operand", "data") for b in cycle)
                and all(_reads_recv(program, b["cmd"], end, describe) for b in sends)):
            out.append(f"{sends[0]['label']} sends what a recv on this cycle brings in, as every send on "
                       f"it does, so no message can start: have one PE send before it receives (a "
                       f"block it already holds; a ring's step sends what it has, then receives the "
                       f"next), so that a message is in flight")
    return list(dict.fromkeys(out))


#: blocked units (and links of a cycle of waits) a deadlock's message lists before "and N more"
_SHOWN = 64


def _raise_deadlock(hw, program, nbr, sim, prep, describe, source=None):
    blocked = _blocked_units(hw, program, nbr, sim, prep, describe)
    for b in blocked:
        b["pe_coords"] = hw.pe_coords(b["pe"])
        b["where"] = source(b["cmd"]) if source is not None else None
        b["label"] = describe(b["cmd"])
    # (a machine of thousands of PEs blocks thousands of units: a review found a 26 MB message;
    # the exception's `blocked` keeps every one)
    lines = "\n  ".join(b["text"] for b in blocked[:_SHOWN])
    if len(blocked) > _SHOWN:
        lines += f"\n  ... and {len(blocked) - _SHOWN:,} more blocked units (every one in the error's .blocked)"
    cycle = _wait_cycle(program, blocked)
    # The cycle of the last start or end of a command, or of the last packet a blocked send
    # started on its credits (a breaker: "deadlock at cycle 9" while a send went on starting
    # packets until 257, so max_cycles=9..256 stopped it as a run past the limit): packet
    # detail's clock runs on after it (credits still flying back), train detail's does not;
    # this is the same in both.
    start, end = _ran_times(sim, prep, program)
    sent = sim.link_states()[3]
    text = ""
    if cycle:
        links = [f"{_pe_name(hw, b['pe'])} {UNIT_NAMES[b['unit']]}" for b in cycle]
        if len(links) > _SHOWN:
            links = links[:_SHOWN // 2] + [f"... {len(links) - _SHOWN // 2 - 2:,} more ..."] + links[-2:]
        chain = " -> ".join(links)
        text = f"\nCycle of waits: {chain} -> {_pe_name(hw, cycle[0]['pe'])} {UNIT_NAMES[cycle[0]['unit']]}"
        for s in _suggestions(hw, program, cycle, describe, end):
            text += f"\nWhat would remove it: {s}"
    at = int(max(start.max(initial=0), end.max(initial=0), sent.max(initial=0)))
    raise DeadlockError(
        f"deadlock at cycle {at}: no unit can make progress. Blocked:\n  {lines}{text}",
        blocked,
        at,
    )


def _ran_times(sim, prep, program) -> tuple:
    """(start, end) of a run that stopped early: the jumps' copies written, -1 for each command
    that did not start or end."""
    start, end = sim.cmd_start_arr, sim.cmd_end_arr
    q, q_off, cmd_off = prep["unit_q"], prep["unit_q_off"], program.cmd_offsets
    _engine.apply_copies(start, end, q, q_off, cmd_off, sim.start_end_copies())
    q_pos = sim.queue_positions()
    state = sim.unit_states()[0].ravel()
    for i in range(len(q_pos)):
        base = int(cmd_off[i // N_UNITS])
        rest = base + q[q_pos[i]:q_off[i + 1]].astype(np.int64)
        start[rest] = -1
        end[rest] = -1
        if state[i] == _BUSY:
            end[base + int(q[q_pos[i] - 1])] = -1
    return start, end


def _overflow_error(hw, program, sim, describe, source) -> CounterOverflowError:
    """The error of a run stopped where a unit's work counter would have passed 2**63 - 1."""
    c = int(sim.overflow_cmd)
    limit = ("its unit's work counter (GEMM flops, vector elements, or bytes moved, summed over "
             "the launch on one PE) would pass 2**63 - 1, the most an int64 counter holds: split "
             "the work over more PEs or launches, or make the loop shorter")
    if c < 0:  # (a steady-state jump: many commands at once)
        return CounterOverflowError(
            f"kernbench engine: a steady-state jump at cycle {sim.now_cycle:,}: {limit}", int(sim.now_cycle))
    g = int(_cmd_pe(program.cmd_offsets, c))
    return CounterOverflowError(
        f"{_pe_name(hw, g)} command #{c - int(program.cmd_offsets[g])} [{describe(c)}] at cycle "
        f"{sim.now_cycle:,}: {limit}", int(sim.now_cycle), hw.pe_coords(g),
        source(c) if source is not None else None)


def _max_cycles_error(hw, sim, describe, limit, source=None) -> MaxCyclesError:
    state, cur, nxt, _ = sim.unit_states()
    positions = []
    for g in range(hw.n_pes):
        for u in range(N_UNITS):
            s = int(state[g, u])
            if s in (_WAIT_OPERAND, _BUSY) or int(nxt[g, u]) >= 0:
                c = int(cur[g, u]) if s == _BUSY else int(nxt[g, u])
                what = {_WAIT_OPERAND: "waits for an operand at", _BUSY: "is running"}.get(s, "has yet to start")
                positions.append(dict(pe=g, unit=u, cmd=c, state=s,
                                      pe_coords=hw.pe_coords(g),
                                      where=source(c) if source is not None else None,
                                      text=f"{_pe_name(hw, g)} {UNIT_NAMES[u]} {what} {describe(c)}"))
    lines = "\n  ".join(p["text"] for p in positions[:64])
    more = f"\n  ... and {len(positions) - 64} more" if len(positions) > 64 else ""
    # (at the horizon, max_cycles given or not: the engine's own bound, said as such)
    passed = ("the engine's horizon of 2**62 cycles (docs/reliability.md: a run's cycles stay "
              "inside int64)" if limit >= _HORIZON else f"max_cycles={limit}")
    # (the run stops at its first event past the limit; nothing moves between events, so the
    # units stand at the limit where they stood before that event: a reader took the event's
    # cycle for the state's)
    return MaxCyclesError(
        f"simulation passed {passed}: its next event was at cycle {sim.now_cycle}. Where each PE "
        f"stood at cycle {min(limit, _HORIZON)}:\n  {lines}{more}",
        positions,
        int(sim.now_cycle),
    )
