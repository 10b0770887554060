"""Per-command timing facts derived from a launch: what the profile and the critical path stand on.

The engine returns each command's start and end cycle (``cmd_start``, ``cmd_end``; the same
numbers as the event record of ``record_events=True``) and its counters summed per PE and unit.
Everything a counter sums can be told per command from those two cycles and the program, because
the engine's rules are simple (docs/hardware-model.md):

- a command starts at the end of the command before it on its unit (0 for the first) or at the
  end of the producer of an operand, whichever is later: its **operand stall** is
  ``start - end of the command before it on its unit``;
- a DMA command's **arbitration stall** is ``duration - (its bursts' channel cycles + latency)``;
- a send's **credit stall** is ``duration - serialisation``; a recv's **data wait** is
  ``max(0, duration - serialisation)``.

Summed per PE and unit these equal the engine's counters exactly (tests/test_profile.py checks
it). :func:`command_facts` computes them once per result, vectorized, and keeps them on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.errors import file_line, short_repr
from ..common.pe_commands import N_UNITS, Opcode, Unit

__all__ = ["CommandFacts", "channel_pending", "dma_array", "check_report_memory", "command_facts", "index_dtype", "kept_report",
           "keep_report", "line_groups", "LineGroups", "site_keys", "first_of_keys"]


@dataclass
class CommandFacts:
    """Arrays by global command index (``n`` commands). Cycles (``start``, ``end``, ``ideal``)
    are int64; ``pe`` int32; ``unit`` and ``opcode`` int8; the command numbers (``prev``,
    ``producers``, ``peer``; -1 for none) int32, or int64 from 2**31 - 1 commands up
    (:func:`index_dtype`). The stalls (``operand``, ``credit``, ``data``, ``arbitration``) and
    ``prev_end`` are computed from the fields each time they are read (int64), not kept: a long
    launch's facts hold 34 bytes a command besides the engine's start and end."""

    pe: np.ndarray  #: global PE
    unit: np.ndarray  #: Unit index
    opcode: np.ndarray
    start: np.ndarray
    end: np.ndarray
    prev: np.ndarray  #: the command before it on its unit (-1: the first)
    producers: np.ndarray  #: (n, 3) the command producing each operand src0..src2 (-1: none)
    ideal: np.ndarray  #: cycles the command takes alone: formula (GEMM, VECTOR), DMA alone, serialisation (links)
    peer: np.ndarray  #: the matching recv of a send and send of a recv (-1 otherwise)

    @property
    def busy(self) -> np.ndarray:
        return self.end - self.start

    @property
    def prev_end(self) -> np.ndarray:
        """End of ``prev`` (0 for the first)."""
        return np.where(self.prev >= 0, self.end[np.maximum(self.prev, 0)], 0)

    @property
    def operand(self) -> np.ndarray:
        """Operand stall: idle on its unit before it."""
        return self.start - self.prev_end

    def _inside(self, op: int) -> np.ndarray:
        # busy beyond the command's alone time, for commands of opcode ``op`` (0 elsewhere)
        return np.where(self.opcode == op, self.end - self.start - self.ideal, 0)

    @property
    def credit(self) -> np.ndarray:
        """Inside busy, sends: waiting for credits."""
        return self._inside(Opcode.SEND)

    @property
    def data(self) -> np.ndarray:
        """Inside busy, recvs: waiting for data (never negative)."""
        return np.maximum(self._inside(Opcode.RECV), 0)

    @property
    def arbitration(self) -> np.ndarray:
        """Inside busy, DMA: waiting for the cube's channel."""
        return np.where((self.opcode == Opcode.LOAD) | (self.opcode == Opcode.STORE),
                        self.end - self.start - self.ideal, 0)


#: what a report kept on a result is made from, compared by identity when it is read again
_REPORT_INPUTS = ("engine", "program", "hw", "labels", "sources", "name_keys", "arrays")


def kept_report(result, name: str):
    """The report kept on ``result`` under attribute ``name`` by :func:`keep_report`, or None
    when there is none or any of its inputs (the result's engine, program, hw, labels, sources,
    name_keys, arrays) was replaced since (``result.sources = f``, ``result.hw = other``: the report is
    made again)."""
    got = getattr(result, name, None)
    if got is None:
        return None
    key, value = got
    if len(key) != len(_REPORT_INPUTS) or any(
            a is not getattr(result, k, None) for a, k in zip(key, _REPORT_INPUTS)):
        return None
    return value


def keep_report(result, name: str, value):
    """Keep ``value`` on ``result`` under ``name`` with the inputs it was made from; returns
    ``value`` (a result type that takes no new attributes: nothing kept, made each time)."""
    try:
        setattr(result, name, (tuple(getattr(result, k, None) for k in _REPORT_INPUTS), value))
    except AttributeError:
        pass
    return value


def index_dtype(n: int) -> np.dtype:
    """The dtype the facts keep command numbers of an ``n``-command launch in (with -1 for
    none): int32 while every number fits, else int64."""
    return np.dtype(np.int32 if n < np.iinfo(np.int32).max else np.int64)


def _per_size(sizes: np.ndarray, fn) -> np.ndarray:
    """``fn(size)`` for every entry, computed once per distinct size (the engine's own formula)."""
    if not len(sizes):
        return np.zeros(0, np.int64)
    uniq, inv = np.unique(sizes, return_inverse=True)
    return np.array([fn(int(s)) for s in uniq], np.int64)[inv]


#: the command fields :func:`command_facts` reads
_FACT_FIELDS = ("unit", "opcode", "dst", "src0", "src1", "src2", "nbytes")


#: What a report keeps a command beyond the launch's own tables, bytes, at least: the facts
#: (CommandFacts: 34) the profile, the critical path and the drift report stand on; to_json's
#: dict of Python ints and lists (1.0 KB measured at 32K on mesh64, docs/reports.md)
FACTS_BYTES_PER_COMMAND = 34
JSON_BYTES_PER_COMMAND = 800


def check_report_memory(result, per_command: int, call: str, instead: str) -> None:
    """Refuse ``call`` on ``result`` up front when its ``per_command`` bytes a command (a lower
    bound) pass the memory this process may take (``builder.host_memory``): a MemoryError that
    says so and what to use ``instead``, not numpy's, raised from deep inside, or the OOM
    killer."""
    from ..language.builder import bytes_text, host_memory

    n = int(result.program.n_commands)
    need, have = n * per_command, host_memory()
    if need > have:
        raise MemoryError(f"{call}: this launch's {n:,} commands need at least {bytes_text(need)} "
                          f"({per_command} bytes a command), more than the {bytes_text(have)} of "
                          f"memory this process may take (docs/reports.md); {instead}")


def command_facts(result) -> CommandFacts:
    """The :class:`CommandFacts` of ``result`` (computed once, then kept on the result). Raises
    MemoryError up front when they cannot fit (:func:`check_report_memory`)."""
    cached = kept_report(result, "_kb_command_facts")
    if cached is not None:
        return cached
    check_report_memory(result, FACTS_BYTES_PER_COMMAND, "the per-command facts of the profile, "
                        "the critical path and the drift report",
                        "result.report() reads the engine's counters alone")
    from .._core import _timing
    from .._core.api import hw_params

    prog = result.program
    e = result.engine
    # the fields read, not the 72-byte rows: a compact program is never expanded here
    c = dict(zip(_FACT_FIELDS, prog.columns(*_FACT_FIELDS)))
    n = prog.n_commands
    n_pes = prog.n_pes
    ix = index_dtype(n)
    pe = np.repeat(np.arange(n_pes, dtype=np.int32), np.diff(prog.cmd_offsets))
    unit = c["unit"].astype(np.int8)
    opcode = c["opcode"].astype(np.int8)
    start = np.asarray(e.cmd_start, dtype=np.int64)
    end = np.asarray(e.cmd_end, dtype=np.int64)

    # Each unit's queue in program order: a stable sort by (PE, unit). The keys are few (PEs x
    # units): as int16 numpy sorts them by radix, the same order a stable sort of any kind gives.
    # (Temporaries are few and narrow: a long launch's time here is the kernel zeroing the pages
    # of each new array.)
    counts = np.diff(prog.cmd_offsets)
    kt = np.int16 if n_pes * N_UNITS <= (1 << 15) else np.int64
    key = np.repeat((np.arange(n_pes, dtype=np.int64) * N_UNITS).astype(kt), counts)
    key += c["unit"].astype(kt)
    order = np.argsort(key, kind="stable")
    prev = np.full(n, -1, ix)
    if n > 1:
        ks = key[order]
        prev[order[1:]] = np.where(ks[1:] == ks[:-1], order[:-1], -1)
        del ks
    del key, order

    # Producers of the operands: tensor (PE-local id + the PE's first global id) -> its command;
    # the table's last entry, -1, is what an operand that is none (-1) reads.
    t_off = prog.tensor_offsets
    n_t = int(t_off[-1])
    producer_of_tensor = np.full(n_t + 1, -1, ix)
    t_base = np.repeat(np.asarray(t_off[:-1], np.int64), counts)
    dst = c["dst"]
    made = np.flatnonzero(dst >= 0)
    producer_of_tensor[t_base[made] + dst[made]] = made
    del made
    # (3, n) filled a row at a time; the facts hold its (n, 3) view
    producers = np.empty((3, n), ix)
    at = np.empty(n, np.int64)
    for j, f in enumerate(("src0", "src1", "src2")):
        s = c[f]
        np.add(t_base, s, out=at)
        at[s < 0] = n_t
        np.take(producer_of_tensor, at, out=producers[j])
    producers = producers.T
    del t_base, producer_of_tensor, at

    params = hw_params(result.hw)
    hop = int(params["hop_latency"])
    ideal = end - start  # GEMM and VECTOR take their formula's cycles whatever else runs
    is_dma = (opcode == Opcode.LOAD) | (opcode == Opcode.STORE)
    is_send = opcode == Opcode.SEND
    is_recv = opcode == Opcode.RECV
    nbytes = np.asarray(c["nbytes"], np.int64)  # (int64 already: no copy)
    ideal[is_dma] = _per_size(nbytes[is_dma], lambda b: _timing.dma_alone_cycles(params, b))
    link = is_send | is_recv
    ideal[link] = _per_size(nbytes[link], lambda b: _timing.link_message_cycles(params, b) - hop)
    peer = np.full(n, -1, ix)
    msgs = e.messages
    if len(msgs):
        s_idx = np.asarray(msgs["send"], np.int64)
        r_idx = np.asarray(msgs["recv"], np.int64)
        peer[s_idx] = r_idx
        peer[r_idx] = s_idx

    facts = CommandFacts(pe=pe, unit=unit, opcode=opcode, start=start, end=end, prev=prev,
                         producers=producers, ideal=ideal, peer=peer)
    return keep_report(result, "_kb_command_facts", facts)


def channel_pending(result, cube: int) -> tuple:
    """How many of cube ``cube``'s DMA commands have bursts left for its memory channel, over
    the launch: ``(cycles, counts)`` (int64), ``counts[k]`` from ``cycles[k]`` until
    ``cycles[k + 1]`` (the last until the launch ends), each change once, from cycle 0.

    A DMA command asks the channel for its bursts from its start until its last burst leaves,
    ``dma.latency_cycles`` before its end (docs/hardware-model.md, "DMA engine and the cube
    memory channel"); the channel is work-conserving, so it is busy exactly while the count is
    at least 1, and round robin serves that many commands by turns. The critical path's channel
    busy periods are the same intervals. Raises ValueError for a cube the machine does not have."""
    hw = result.hw
    if not (isinstance(cube, (int, np.integer)) and not isinstance(cube, bool) and 0 <= cube < hw.n_cubes):
        raise ValueError(f"channel_pending: cube must be an int in 0..{hw.n_cubes - 1}, got {short_repr(cube)}")
    fx = command_facts(result)
    ppc = hw.pes_per_cube
    m = (((fx.opcode == Opcode.LOAD) | (fx.opcode == Opcode.STORE))
         & (fx.pe >= cube * ppc) & (fx.pe < (cube + 1) * ppc))
    s = fx.start[m]
    e = fx.end[m] - int(hw.dma.latency_cycles)
    bursts = e > s  # (every load or store moves its bursts, masked or not: a guard only)
    s, e = s[bursts], e[bursts]
    t = np.concatenate([s, e, [0]])
    d = np.concatenate([np.ones(len(s), np.int64), -np.ones(len(e), np.int64), [0]])
    order = np.argsort(t, kind="stable")
    t, level = t[order], np.cumsum(d[order])
    last = np.r_[t[1:] != t[:-1], True]  # (the count after every change at a cycle)
    t, level = t[last], level[last]
    change = np.r_[True, level[1:] != level[:-1]]
    return t[change].astype(np.int64), level[change].astype(np.int64)


def dma_array(result, i: int):
    """The name of the device array DMA command ``i`` loads from or stores to (``result.arrays``:
    its kernel site's, or the file's for a launch read back by from_json), or None when it is not
    a load or store or the result does not tell."""
    arrays = getattr(result, "arrays", None)
    return arrays(int(i)) if arrays is not None else None


def site_keys(result):
    """``result.name_keys`` as int64 when a report may name each kernel site once from it, else
    None: one key per command, and the result's labels and sources still the ones the launch
    gave with those keys (a result whose ``labels`` or ``sources`` were replaced afterwards, e.g.
    with dataclasses.replace, may name commands of one site apart: its commands are then
    named one by one)."""
    keys = getattr(result, "name_keys", None)
    if keys is None or len(keys) != result.program.n_commands:
        return None
    for fn in (getattr(result, "labels", None), getattr(result, "sources", None)):
        if fn is not None and getattr(getattr(fn, "__self__", None), "sites", None) is not keys:
            return None
    return np.asarray(keys, dtype=np.int64)


def first_of_keys(keys: np.ndarray, idx: np.ndarray | None = None) -> tuple:
    """For int keys (one per command of ``idx``, default 0..n): ``(used, first, group)``,
    the keys present in ascending order, the first command of each (indexed by key; -1 where
    absent) and each key's group number (its rank among ``used``; -1 where absent)."""
    idx = np.arange(len(keys), dtype=np.int64) if idx is None else idx
    size = int(keys.max()) + 1 if len(keys) else 0
    first = np.full(size, -1, np.int64)
    first[keys[::-1]] = idx[::-1]  # (the last write wins: the first command)
    used = np.flatnonzero(first >= 0)
    group = np.full(size, -1, np.int64)
    group[used] = np.arange(len(used))
    return used, first, group


@dataclass
class LineGroups:
    """Every command's kernel source line, as an index into ``sources``."""

    line_of: np.ndarray  #: (n,) index into sources
    sources: list  #: "path/file.py:line" per line index
    labels: list  #: per line index: the labels of its kernel sites (most commands first)
    key_of: np.ndarray = None  #: (n,) each command's site (commands of one site share a label)
    key_line: np.ndarray = None  #: line index of each site (-1: no command)
    key_label: dict = None  #: site -> its label

    def labels_by(self, weight: np.ndarray) -> list:
        """Per line index, its labels ordered by ``weight`` (per command): first by their op's
        (a label's first word: ``dot``, ``add``, ``load``, ``sum-reduce``, ...) weight summed
        over the line's commands of that op, then by the label's own, largest first. A line of
        dots whose shapes move (one label each) and one add a step is named by its busiest dot."""
        w = np.bincount(self.key_of, weights=weight, minlength=len(self.key_line))
        out = [dict() for _ in self.sources]
        for k, lab in self.key_label.items():
            d = out[int(self.key_line[k])]
            d[lab] = d.get(lab, 0.0) + float(w[k])
        ranked = []
        for d in out:
            op: dict = {}
            for lab, x in d.items():
                o = lab.split(" ", 1)[0]
                op[o] = op.get(o, 0.0) + x
            ranked.append(sorted(d, key=lambda lab: (-op[lab.split(" ", 1)[0]], -d[lab])))
        return ranked

    def short(self, i: int) -> str:
        """``file.py:line`` of line index ``i``."""
        path, _, line = self.sources[i].rpartition(":")
        return file_line(path, line) if path else self.sources[i]


def line_groups(result) -> LineGroups:
    """Group the commands of ``result`` by kernel source line (file:line of the tl call).

    Uses the launch's kernel sites (``name_keys``) when it has them (each site named once), else
    each command's source, else the program's ``line`` field in the kernel's file."""
    cached = kept_report(result, "_kb_line_groups")
    if cached is not None:
        return cached
    prog = result.program
    n = prog.n_commands
    keys = site_keys(result)
    if keys is not None:
        pass
    elif result.sources is not None or result.labels is not None:
        # one key per distinct (source, label): a LaunchResult rebuilt from JSON
        seen: dict = {}
        keys = np.fromiter((seen.setdefault((result.source(i), result.label(i)), len(seen)) for i in range(n)),
                           np.int64, n)
    else:
        seen = {}
        fields = np.stack([x.astype(np.int64) for x in prog.columns("line", "opcode", "unit", "sub", "m", "n",
                                                                      "k", "nbytes")],
                          axis=1) if n else np.zeros((0, 8), np.int64)
        _, keys = np.unique(fields, axis=0, return_inverse=True) if n else (None, np.zeros(0, np.int64))
        keys = np.asarray(keys, np.int64).reshape(-1)
    used, first, _ = first_of_keys(keys)
    size = len(first)
    count = np.bincount(keys, minlength=size)
    line_index: dict = {}
    line_of_key = np.full(size, -1, np.int64)
    site_labels: list = []
    for k in used.tolist():
        i = int(first[k])
        src = result.source(i)
        li = line_index.setdefault(src, len(line_index))
        line_of_key[k] = li
        if li == len(site_labels):
            site_labels.append([])
        site_labels[li].append((int(count[k]), result.label(i)))
    labels = []
    for entries in site_labels:
        merged: dict = {}
        for cnt, lab in entries:
            merged[lab] = merged.get(lab, 0) + cnt
        labels.append([lab for lab, _ in sorted(merged.items(), key=lambda x: -x[1])])
    groups = LineGroups(line_of=line_of_key[keys] if n else np.zeros(0, np.int64),
                        sources=list(line_index), labels=labels, key_of=keys, key_line=line_of_key,
                        key_label={int(k): result.label(int(first[k])) for k in used.tolist()})
    return keep_report(result, "_kb_line_groups", groups)


#: the order reports list units in: the engine's (GEMM, VECTOR, DMA, TX_E..S, RX_E..S)
UNIT_ORDER = tuple(Unit)
