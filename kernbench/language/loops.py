"""``tl.range``: a loop whose iterations do the same work, traced once and replayed.

A kernel writes ``for i in tl.range(start, stop, step):`` (Triton's name and arguments) for a
loop whose body emits the same commands every iteration, only on other tensors and at other
addresses. In timing mode kernbench then runs the body's Python for a few iterations only:

1. Iterations 0 .. PROBES-1 are traced. Iteration 0 may differ from the rest (it reads the
   tensors made before the loop, an ``if i == 0`` runs there).
2. Iterations PROBES-2 (A) and PROBES-1 (B) prove the repetition: the same sites (kernel line,
   op, shapes, dtypes) in the same order, the same number D of tensors made and the same SRAM
   bytes S, and every operand of B either the operand of A (a tensor made before iteration 0:
   before the loop, unchanged) or A's operand plus D (made in A's predecessor or in A:
   loop-carried or the body's own). Every load and store of B reads the same allocation with
   the same stride as in A, its element offset moved by a constant per iteration. A body that
   reads two iterations back fails this (A reads a tensor from before the loop where B reads
   iteration 0's): then iteration MAX_PROBES-1 is traced too, and iterations 2 (A) and 3 (B)
   prove it, under the same rule.
3. The iterations after B but the last are emitted without running the body: B's commands
   tiled in C, the shiftable operands moved by D per iteration (TraceStore.append_tiled);
   the tensor table, pinned tensors and SRAM top follow. Only iterations whose loads and stores
   stay inside their allocations (the offsets moved on in closed form) are replayed: replay stops
   before the first iteration that would leave one, and that iteration is traced, so the error
   is raised there, at its PE and kernel line, as full tracing would.
4. Every handle made in A and B is moved on (its id by D, its SRAM address by S, per iteration
   replayed), so the Python variables holding them name the tensors of the last replayed
   iterations; then the remaining iterations (at least the last) are traced for real: a
   ragged last block is traced, not guessed, and handles that outlive the loop name the last
   iteration's tensors. ``tl.range(..., replay_last=True)`` says the last iteration repeats the
   body too: it is replayed with the others (still traced where replay has to stop).
   ``replay_first=True`` says so of iteration 0: iterations 0 and 1 are then A and B when B
   reads only tensors it made itself (a body that carries nothing across iterations) and the
   body's Python state moves from 0's end to 1's as replay moves it, and replay starts at
   iteration 2 (PROBES - 1 traced iterations instead of PROBES); else iterations 1 and 2 prove it.
   ``shapes_move=True`` says the tiles' shapes may move by a constant step per iteration too:
   A and B may then differ in shapes (_Moves: each moving dimension >= 2, MOVING_KINDS only),
   and the iterations replayed are written as rows with their own sites, tensor entries and
   SRAM sizes (_replay_moving), each checked against the bounds first (_safe_iterations).

Functional mode traces every iteration (replay computes values per command). Nested
``tl.range`` loops replay at every level: an outer loop's body holds its inner loops' traced and
replayed commands alike, and is proven and replayed as a whole.

``replay="verify"`` (a launch option, or the environment variable ``KERNBENCH_REPLAY=verify``)
traces every PE twice: once with every iteration traced, checking that each iteration which
would have been replayed equals B moved on (commands, tensors, addresses progressing as
predicted), and once with replay; the two programs must be identical. ``replay="off"`` traces
every iteration. docs/language.md, "tl.range", has the contract.
"""
from __future__ import annotations

import array
import bisect
import collections
import dataclasses
import dis
import functools
import sys
import types
import weakref
from collections.abc import Iterator

import numpy as np

from .._core._replay import handles_alike, handles_moving, live_handles
from ..common.errors import ReplayContractError, file_line, user_where
from . import semantic
from ..common.pe_commands import TensorHandle
from .builder import SRAM_ALIGN, SRAM_TOP_MAX, PEBuilder, UnknownValue, past_memory, table_bytes
from .semantic import ITEMSIZE, MAX_ELEMENTS

__all__ = ["PROBES", "MAX_PROBES", "REPLAY_MODES", "InFull", "LoopReplay", "ReplayOffLine", "TlRange",
           "check_cut_short", "close_kept", "loop_replays", "tl_range"]

semantic.register_internal(__file__)

#: iterations traced before the repetition is proven: 0 (may differ), A and B
PROBES = 3
#: ... or more, when the body reads two iterations back (A and B are then 2 and 3) or its
#: first iterations fill a software pipeline (a later pair proves it)
MAX_PROBES = 8
REPLAY_MODES = ("on", "off", "verify")



@dataclasses.dataclass(frozen=True)
class LoopReplay:
    """What tl.range replay did with one loop of a timing-mode launch (``TracedLaunch.loops``):
    the runs of the loop whose Python ran (an inner loop inside replayed iterations of an outer
    one is replayed with them, not run), on how many PEs, their iterations in all and how many
    of those replay emitted without running the body's Python. ``why``: why a run replayed
    nothing (the first such run's reason; None when every run replayed); ``not_replayed``: how
    many runs replayed nothing."""

    file: str
    line: int
    pes: int
    runs: int
    iterations: int
    replayed: int
    why: str | None = None
    not_replayed: int = 0

    def __str__(self) -> str:
        runs = f"{self.runs:,} run{'s' if self.runs != 1 else ''} on {self.pes:,} PE{'s' if self.pes != 1 else ''}"
        done = f"{self.replayed:,} of {self.iterations:,} iterations replayed"
        if not self.why:
            why = ""
        elif self.not_replayed >= self.runs:
            why = f"; not replayed: {self.why}"
        else:  # (some runs replayed: the reason is the others')
            why = (f"; {self.not_replayed:,} run{'s' if self.not_replayed != 1 else ''} not replayed "
                   f"(the first: {self.why})")
        return f"tl.range at {file_line(self.file, self.line)}: {runs}, {done}{why}"


def _log(b, where: tuple, n: int, replayed: int, why: str | None) -> None:
    """Count one run of the tl.range loop at ``where`` (file, line) on program ``b``'s PE in
    its launch's record (TraceStore.loop_runs, read by :func:`loop_replays`)."""
    e = b.trace_store.loop_runs.get(where)
    if e is None:
        e = b.trace_store.loop_runs[where] = [0, 0, 0, set(), None, 0]
    e[0] += 1
    e[1] += n
    e[2] += replayed
    e[3].add((b.pe, b.cube))
    if not replayed:
        e[5] += 1
        if e[4] is None:
            e[4] = why


def loop_replays(store) -> tuple:
    """The launch's record of its tl.range loops as LoopReplay entries, by file and line."""
    return tuple(LoopReplay(f, line, len(e[3]), e[0], e[1], e[2], e[4], e[5])
                 for (f, line), e in sorted(store.loop_runs.items()))

def _snap(b) -> tuple:
    """Where program ``b`` is: tensors made, global command count, SRAM top, pinned count,
    handles tracked, accesses tracked."""
    return (len(b.tensors), b.trace_store.n_traced, b.sram_top, len(b.pinned),
            len(b._track) if b._track is not None else 0,
            len(b._acc) if b._acc is not None else 0)


class _Plan:
    """What replaying B moved on needs (see the module docstring)."""

    __slots__ = ("rows", "shift", "D", "S", "tensors", "pinned", "acc", "delta", "t_a", "t_b",
                 "transposed", "handles", "known", "unknown", "cmds", "early", "moves", "top", "t0",
                 "same_masks")


def _span(shape: tuple, stride) -> int:
    if stride is None:
        return semantic.numel(shape)
    return (shape[0] - 1) * stride + shape[1]


#: the site kinds whose shapes may move (tl.range(..., shapes_move=True)). Every shape rule the
#: semantic layer applies to them holds at each point of a line once it holds at two points
#: where no moving dimension is 1: equal dimensions (the dot's inner one, an elementwise op's
#: operands), broadcasting against a constant 1, a reduction's axis. Their bounds (elements,
#: bytes, a load's span and stride, the SRAM top) hold up to a point, and are checked at every
#: iteration replayed (_Moves.fits, _safe_iterations). Unmasked loads and stores only (a
#: mask's footprint is its values'); no fill or arange (values known while tracing).
MOVING_KINDS = frozenset({"vec", "reduce", "dot", "load", "store"})
_VALUED = frozenset({"fill", "arange"})


def _delta(x, y):
    """The step per iteration from shape x (A's) to shape y (B's): a tuple, one int per
    dimension; None when they are not shapes of one rank, or a dimension that moves is 1 at
    either (broadcasting could hold at A and B and fail between: MOVING_KINDS)."""
    if type(x) is not tuple or type(y) is not tuple or len(x) != len(y):
        return None
    d = []
    for a, c in zip(x, y):
        if type(a) is not int or type(c) is not int or (a != c and (a < 2 or c < 2)):
            return None
        d.append(c - a)
    return tuple(d)


def _moved(shape: tuple, d: tuple, m: int) -> tuple:
    """``shape`` moved on ``m`` steps ``d``."""
    return tuple([x + m * k for x, k in zip(shape, d)])


def _stays(shape: tuple, d: tuple, m: int) -> bool:
    """Is every dimension of ``shape`` moved on ``m`` steps ``d`` that moves still >= 2 (as
    _delta asks of A and B)?"""
    return all(k == 0 or x + m * k >= 2 for x, k in zip(shape, d))


def _key_delta(ka: tuple, kb: tuple):
    """Site key kb (B's) against ka (A's): per component None where equal, else its shape's
    step (_delta); None (not a list) when they differ otherwise or name no MOVING_KINDS."""
    if len(ka) != len(kb) or ka[0] != kb[0] or ka[0] not in MOVING_KINDS:
        return None
    if ka[0] == "vec" and (ka[3] in _VALUED or kb[3] in _VALUED):
        return None
    if ka[0] in ("load", "store") and len(ka) != 6:  # (a masked access: its key is longer)
        return None
    out = []
    for x, y in zip(ka, kb):
        if x == y:
            out.append(None)
            continue
        d = _delta(x, y)
        if d is None:
            return None
        out.append(d)
    return out


def _aligned(nbytes: int) -> int:
    return (nbytes + SRAM_ALIGN - 1) & -SRAM_ALIGN  # (PEBuilder._place)


def _sizes(entries: list) -> np.ndarray:
    """The SRAM bytes (:func:`_aligned`) of the tensors whose table entries are ``entries``, as
    int64 (an outer loop's iterations hold tens of thousands: computed once per entry)."""
    out = []
    memo: dict = {}
    last = None
    v = 0
    for x in entries:  # (entries are shared, PEBuilder._entry: a few distinct ones, in runs)
        if x is not last:
            v = memo.get(x)
            if v is None:
                v = memo[x] = _aligned(x[2] * ITEMSIZE[x[1]])
            last = x
        out.append(v)
    return np.array(out, np.int64)


def _entry(b, shape: tuple, dtype: str) -> tuple:
    """The launch's one tensor-table entry for (shape, dtype, numel) (PEBuilder._entry)."""
    key = (shape, dtype, semantic.numel(shape))
    t = b._entries.get(key)
    if t is None:
        t = b._entries[key] = key
    return t


class _Moves:
    """What moves in a body whose shapes move (tl.range(..., shapes_move=True)), each by a
    constant step per iteration from B's (m = 0; A's is m = -1): the sites of B's rows
    (``groups``: row positions, B's key, the step of each component), its tensors' entries
    (``ent``: (tensor index, B's shape, dtype, step)) and so their SRAM sizes (``size``: B's,
    aligned), its loads' and stores' shapes (``acc``) and its transposed views' (``trans``),
    a step each or None, and the handles held whose shapes move (``held``: id -> step)."""

    __slots__ = ("groups", "body", "ent", "size", "acc", "trans", "views", "held", "track",
                 "views_before", "sized")

    def sites(self, table, m: int, out: np.ndarray) -> None:
        """Write the sites of iteration B + m into ``out`` (a copy of B's rows' sites)."""
        for pos, key, comps in self.groups:
            out[pos] = table.add(tuple([c if d is None else _moved(c, d, m)
                                        for c, d in zip(key, comps)]))

    def entries(self, b, m: int) -> list:
        """The tensor-table entries of iteration B + m."""
        out = list(self.body)
        for j, shape, dtype, d in self.ent:
            out[j] = _entry(b, _moved(shape, d, m), dtype)
        return out

    def sizes(self, m: int) -> np.ndarray:
        """The SRAM bytes (aligned) of each tensor of iteration B + m."""
        size = self.size.copy()
        for j, shape, dtype, d in self.ent:
            size[j] = _aligned(semantic.numel(_moved(shape, d, m)) * ITEMSIZE[dtype])
        return size

    def total(self, m: int) -> int:
        """The SRAM bytes iteration B + m takes (kept: the bounds, replay and verify ask for
        the same iterations)."""
        t = self.sized.get(m)
        if t is None:
            t = self.sized[m] = int(self.sizes(m).sum())
        return t

    def fits(self, b, m: int) -> bool:
        """Are the shapes of iteration B + m within the builder's bounds: every dimension that
        moves at least 2 (_delta), every tensor at most MAX_ELEMENTS elements and b.max_bytes
        bytes, every dot at most MAX_DOT_VOLUME multiply-adds (as PEBuilder checks a traced
        one)?"""
        shapes = [(c, d) for _, key, comps in self.groups for c, d in zip(key, comps)
                  if d is not None]
        shapes += [(v[2], d) for v, d in zip(self.views, self.trans) if d is not None]
        shapes += [(shape, d) for _, shape, _, d in self.ent]
        for c, d in shapes:
            if not _stays(c, d, m):
                return False
        for _, shape, dtype, d in self.ent:
            n = semantic.numel(_moved(shape, d, m))
            if n > MAX_ELEMENTS or n * ITEMSIZE[dtype] > b.max_bytes:
                return False
        for _, key, comps in self.groups:
            # a dot's multiply-adds (M * N * K: one GEMM command's bound, semantic.dot_shapes)
            # grow with a moving K that no tensor's size shows (a review: replay emitted a dot
            # past 2**50 and the engine refused it, without PE or line)
            if key[0] == "dot" and (comps[3] is not None or comps[4] is not None):
                sa = key[3] if comps[3] is None else _moved(key[3], comps[3], m)
                sb = key[4] if comps[4] is None else _moved(key[4], comps[4], m)
                if sa[0] * sb[1] * sa[1] > semantic.MAX_DOT_VOLUME:
                    return False
        return True


def _moves(b, sa: tuple, sb: tuple, se: tuple, D: int, S: int):
    """The _Moves taking iteration A (snapshots ``sa`` to ``sb``) to B (``sb`` to ``se``);
    None when nothing but addresses moves (the usual proof), False when they differ in another
    way: a site other than by a shape's step or of another kind (MOVING_KINDS), an entry in
    dtype, or SRAM sizes that do not add up to the SRAM each took (a tensor not placed in
    order: then addresses do not follow from sizes)."""
    store = b.trace_store
    ra = store.rows(sa[1], sb[1])[:, 0]
    rb = store.rows(sb[1], se[1])[:, 0]
    groups = []
    diff = np.flatnonzero(ra != rb)
    if len(diff):
        pairs: dict = {}
        for j in diff.tolist():
            pairs.setdefault((int(ra[j]), int(rb[j])), []).append(j)
        keys = store.table.keys
        for (x, y), pos in pairs.items():
            comps = _key_delta(keys[x], keys[y])
            if comps is None:
                return False
            groups.append((np.array(pos, np.int64), keys[y], comps))
    t_a, t_b = sa[0], sb[0]
    ea, eb = b.tensors.span(t_a, t_b), b.tensors.span(t_b, t_b + D)
    ent = []
    for j, (x, y) in enumerate(zip(ea, eb)):
        if x is y or x == y:
            continue
        if x[1] != y[1] or x[2] != semantic.numel(x[0]) or y[2] != semantic.numel(y[0]):
            return False
        d = _delta(x[0], y[0])
        if d is None:
            return False
        ent.append((j, y[0], y[1], d))
    if not groups and not ent:
        return None
    size_a, size_b = _sizes(ea), _sizes(eb)
    if int(size_a.sum()) != S or int(size_b.sum()) != se[2] - sb[2]:
        return False
    mv = _Moves()
    mv.groups, mv.body, mv.ent, mv.size = groups, eb, ent, size_b
    mv.acc = mv.trans = mv.views = None  # (_plan: with the loads, views and handles it compares)
    mv.held, mv.track, mv.views_before, mv.sized = {}, (0, 1), [], {}
    return mv


#: why a loop is not replayed whose traced pairs read, two back, an iteration not like the next
#: (a breaker: a pipeline filling for five iterations read as "an `if` on the index")
TWO_BACK = ("its body reads two iterations back, and in each pair of traced iterations tried the "
            "iteration before the pair is not the pair's first moved back (a pipeline filling up "
            "to it, a window whose first values come from before the loop, or its tensors made in "
            "another order): a later pair might prove it (kernbench tries pairs up to iterations "
            "6 and 7)")

#: why a loop is not replayed whose body reads a tensor three iterations back or more (seen from
#: iterations 2 and 3 on, B reading iteration 0's)
OLD_HANDLE = ("its body reads a tensor made three or more iterations before (a window of handles "
              "deeper than two iterations, `a, b, c = b, c, x`): replay moves on the last two "
              "iterations' handles only")

#: why a loop is not replayed whose body carries a value known while tracing (the Triton
#: tutorials' `offs = offs + B`): also a ReplayWarning (InFull.slow), the loop's cost being
#: that of full tracing and the fix one line
CARRIED_KNOWN = ("a value known while tracing is carried from one iteration to the next: a tl.full "
                 "or tl.arange itself (`prev = cur`, or one made in iteration 0 alone), or one a "
                 "check computed (a mask's index, `offs = offs + B`); make it before the loop or in "
                 "the iteration that reads it (`i * B + tl.arange(0, B)`) to replay the loop")


def _plan(b, s0: tuple, sa: tuple, sb: tuple, se: tuple, trans_a: int, trans_b: int,
          trans_e: int, moving: bool = False, unknown: bool = False, sp: tuple | None = None):
    """The plan for replaying B (between snapshots ``sb`` and ``se``) checked against A (``sa``
    to ``sb``), or None if B is not A moved on. ``s0``: the start of A's predecessor, or A's
    own (``s0 is sa``: A is iteration 0, replay_first); ``trans_a``, ``trans_b``, ``trans_e``:
    the transposed views' marks at A, B and B's end. ``moving`` (shapes_move=True): B may
    also differ from A in shapes that move by a constant step (_Moves). ``unknown``: a handle
    held past B naming a tensor whose known value differs from iteration to iteration may be
    moved on, its value unknown (``p.unknown``: reading it traces the launch again, replay on);
    else such a loop is not replayed. ``sp``: the snapshot at the start of the iteration before
    A, whose tensors B may read (two back)."""
    store = b.trace_store
    b.plan_why = None
    D = sb[0] - sa[0]
    S = sb[2] - sa[2]
    # (D == 0: a body of stores or sends of tensors made before it, its commands > 0: every
    # operand the same in each iteration, the addresses moving on; replayed as any other)
    if D != se[0] - sb[0] or sb[1] - sa[1] != se[1] - sb[1] or D < 0 or sb[1] == sa[1]:
        return None
    if S != se[2] - sb[2] and not moving:
        return None
    if sb[3] - sa[3] != se[3] - sb[3]:
        return None
    t0, t_a, t_b = s0[0], sa[0], sb[0]
    # every operand of B the proof moves is at or above t0 + D (a tensor of A's predecessors
    # or later); those it keeps are below t0: replay moves the operands at or above t0
    shift = store.moved_on(sa[1], sb[1], sb[1] - sa[1], t0, D, t0, sites=not moving)
    if shift is None:
        return None
    if D and sp is not None and sp[0] < t_a and store.reads_any(sb[1], se[1], range(sp[0], t_a)):
        # B reads a tensor of the iteration before A (two back): replay moves such an operand on
        # by D an iteration, which names the same tensor of every later iteration only if that
        # one is A moved back, its tensors in A's places (a breaker: a first iteration making a
        # tensor fewer, read two back, and every replayed iteration read the tensor beside the
        # right one; another: its commands in another order on one line, alike by site). A body
        # making no tensor (D = 0) moves none: iteration 0's, read in every one, stays
        if not _same_places(b, sp, sa, sb, t0, moving):
            b.plan_why = TWO_BACK
            return None
    if s0 is sa and t_a:
        # A is iteration 0: a tensor from before the loop that A and B both read may be a
        # constant or the first value of one read two iterations back (`a = b = init`), whose
        # iteration 2 reads iteration 0's; only iteration 2 tells, so B may read none
        ops = store.rows(sb[1], se[1])[:, 1:]
        if ((ops >= 0) & (ops < t_a)).any():
            return None
    mv = None
    if moving:
        mv = _moves(b, sa, sb, se, D, S)
        if mv is False:
            return None
    if mv is None and (S != se[2] - sb[2] or b.tensors.span(t_a, t_b) != b.tensors.span(t_b, t_b + D)):
        return None
    if [x + D for x in b.pinned[sa[3]:sb[3]]] != b.pinned[sb[3]:se[3]]:
        return None
    # tensors of A, of A's predecessor or earlier with a value known while tracing, read across
    # iterations: their moved-on values are not known. One computed already (a mask's index,
    # `offs = offs + B`, read by a masked access: the iterations after need it too) or a fill
    # that differs between iterations or starts such a chain: the loop is traced (a fill alike
    # in every iteration, read by commands whose value is unknown: replayed, _carried_fills).
    # One never read but by the next (a chain, `acc = acc + 1.0` on a
    # fill): replayed, the held ones unknown (below), computed if read after (_unknown_read)
    used = _keys_in(b.known, t0, t_b) + _keys_in(b.fills, t0, t_b)
    if (used and store.reads_any(sb[1], se[1], used)
            and not _carried_fills(b, store.rows(sb[1], se[1]), set(used), D, t_b)):
        b.plan_why = CARRIED_KNOWN
        return None
    maybe = _keys_in(b.lazy, t0, t_b)
    chained = bool(maybe) and store.reads_any(sb[1], se[1], maybe)
    if chained and not unknown:
        return None
    acc_a = b._acc[sa[5]:sb[5]]
    acc_b = b._acc[sb[5]:se[5]]
    if len(acc_a) != len(acc_b):
        return None
    delta = []
    acc_moves = []  # (shapes_move) each load's or store's shape step, None where it stays
    for x, y in zip(acc_a, acc_b):
        if x[0] is not y[0] or x[3] != y[3]:
            return None
        if x[2] != y[2]:
            d = _delta(x[2], y[2]) if mv is not None else None
            if d is None or (x[3] is None and sum(k != 0 for k in d) > 1):
                # (a tile without stride= whose dimensions move two at once: its footprint,
                # their product, is not linear in the index, and the loops around this one
                # bound its accesses by the first and last replayed: traced instead)
                return None
            acc_moves.append(d)
        else:
            acc_moves.append(None)
        delta.append(y[1] - x[1])
    # the handles A and B made, views included (a view is no command: the rows above do not
    # see it): alike one by one, each naming a tensor D further on if made from iteration 0 on
    # (replay moves those), else the same one; a view's kind or shape that changes from one
    # iteration to the next (tl.trans of the last iteration's view) is not a repetition. Pairs
    # of which nothing holds either handle any more (a body's temporaries) are skipped: no
    # kernel can see them (_core._replay.handles_alike); the transposed views themselves are
    # compared below whether held or not.
    lo = b.base + t0
    if b._track is not None:
        if sb[4] - sa[4] != se[4] - sb[4]:
            return None
        if s0 is sa and live_handles(b._track, sa[4], lo, sb[4]):
            # A is iteration 0 and a handle it made is still held: one two iterations old
            # (`older, last = last, x`), which replay moves on, or one kept from iteration 0
            # (`if i == 0: first = x`), which it must not; only iteration 2 tells
            return None
        if mv is not None:
            # (shapes_move: a handle held may name a tensor whose shape moves, by its step)
            hm = handles_moving(b._track, sa[4], sb[4], sb[4] - sa[4], D, lo)
            if hm is None:
                return None
            mv.held = {}
            for j, x, y in hm:
                d = _delta(x, y)
                if d is None:
                    return None
                mv.held[j] = d
            mv.track = (sa[4], sb[4] - sa[4])
            # a view of a tensor from before the loop whose shape moves (timing mode lets a
            # view's element count differ from its buffer's): replay keeps its id but moves
            # its shape (either of A's and B's; moving one nothing holds changes nothing)
            mv.views_before = [(b._track[q + j], d) for j, d in mv.held.items()
                               for q in (sa[4], sb[4]) if b._track[q + j].id < lo]
        elif not handles_alike(b._track, sa[4], sb[4], sb[4] - sa[4], D, lo):
            return None
    # the transposed views A and B made (tl.trans of a plain view: the registry a transposed
    # view is checked against, PEBuilder.operand), alike one by one: B's naming a tensor D
    # further on if A's is from iteration 0 on, else the same one (shapes_move: its shape
    # moving by a constant step, as its tensor's does)
    va, vb = b.transposed.since(trans_a, trans_b), b.transposed.since(trans_b, trans_e)
    if len(va) != len(vb):
        return None
    trans_moves = []
    for (fa, da, sha), (fb, db, shb) in zip(va, vb):
        if fb - fa != (D if fa >= t0 else 0) or len(da) != len(db):
            return None
        d = None
        if sha != shb:
            d = _delta(sha, shb) if mv is not None and fa >= t0 else None
            if d is None:
                return None
        trans_moves.append(d)
        for (pa, ca), (pb, cb) in zip(da, db):
            if ca != cb or pb != pa:
                return None
    p = _Plan()
    p.rows = None  # B's (site, operands), read when verify mode compares (_check_iteration)
    p.D, p.S, p.t_a, p.t_b, p.t0 = D, se[2] - sb[2], t_a, t_b, t0
    p.cmds = (sb[1], se[1])  # B's commands in the store
    p.top = sb[2]  # the SRAM top where B starts
    p.shift = shift
    p.tensors = b.tensors.span(t_b, t_b + D)
    p.pinned = b.pinned[sb[3]:se[3]]
    p.acc = acc_b
    p.delta = delta
    # B's masks that B made with the value A made there (Triton's idiom, `cols = tl.arange(0,
    # BLOCK)` and `mask=cols < N` inside the body: a review found it replayed nothing): the
    # value repeats, as a value known while tracing held past the loop does (p.known, below),
    # so an access that stays (_safe_iterations) is B's own again in every iteration
    p.same_masks = frozenset(
        y[4] for x, y, d in zip(acc_a, acc_b, delta)
        if not d and y[4] >= t_b and y[4] - x[4] == D and not chained and _same_known(b, x[4], y[4]))
    # the transposed views B made of tensors from iteration 0 on (runs: those of its inner
    # loops' replays); a view of an older tensor is the same one in every iteration
    p.transposed = [v for v in vb if v[0] >= t0]
    if mv is not None:
        mv.acc = acc_moves
        mv.trans = [d for v, d in zip(vb, trans_moves) if v[0] >= t0]
        mv.views = p.transposed
    p.moves = mv
    # every handle made in A and B naming a tensor made from iteration 0 on (a view of an older
    # one stays) and still held somewhere, as replay moves the operands
    p.handles = live_handles(b._track, sa[4], lo) if b._track is not None else []
    if mv is not None and mv.held:
        # each held handle whose shape moves, by its place among A's and B's handles (found
        # here: the loop that owns the tracking list drops it before replaying)
        a, n = mv.track
        place = {id(h): (q - a) % n for q, h in enumerate(b._track[a:a + 2 * n], a)}
        mv.held = {id(h): mv.held[place[id(h)]] for h in p.handles
                   if place.get(id(h)) in mv.held}
    # A handle still held from before A (iteration 0) naming a tensor of the loop's: a value
    # kept from iteration 0 (`first = x`), or one two iterations old (`older, last = last, x`),
    # neither of which replay moves on. The traced last iteration puts the second right (its
    # variables are assigned again); replay_last cannot tell them apart, so traces the last.
    p.early = b._track is not None and bool(live_handles(b._track, s0[4], lo, sa[4]))
    # Those naming a tensor whose value is known while tracing (a tl.arange mask, a small fill)
    # name, once moved on, a replayed tensor: known too, with the same value, when the iteration
    # next to it in the proof made the same value there (else the loop is traced: the value may
    # follow the index). Later commands check with it as full tracing does (a masked store).
    p.known, p.unknown = [], []
    if b.known or b.fills:
        for i in {h.id - b.base for h in p.handles}:
            if chained and (i in b.known or i in b.fills or i in b.lazy):
                # (B read a known value of A's: a chain, `acc = acc + 1.0` on a fill, whose
                # values replay does not compute; a review found such a mask unchecked when
                # fills were not folded. Replayed, each held one unknown: _unknown_read)
                p.unknown.append(i)
            elif type(b.known.get(i)) is UnknownValue or type(
                    b.known.get(i + D if i < t_b else i - D)) is UnknownValue:
                # (an inner loop's: unknown still, not read by this proof: a review found the
                # proof's read tracing the launch again for a value nothing else read)
                if not unknown:
                    return None
                p.unknown.append(i)
            elif i in b.known or i in b.fills or (i in b.lazy and b.has_known(i)):
                if _same_known(b, i, i + D if i < t_b else i - D):
                    p.known.append(i)
                elif unknown:  # (replayed all the same: traced in full if read, _unknown_read)
                    p.unknown.append(i)
                else:
                    return None
    return p


def _same_places(b, sp: tuple, sa: tuple, sb: tuple, t0: int, moving: bool) -> bool:
    """Is the iteration from snapshot ``sp`` to ``sa`` (the one before A) A moved back, each of
    its tensors in the place A's of the same role has: as many tensors and commands, the same
    sites (with ``moving``, their kinds, lines and ops: the shapes step) and every operand made
    from iteration 0 on moved back by D, the others the same. Breakers: sites alone, or an operand from before it merely from
    before A, passed tensors made in another order (two loads, two ops on tensors from before the
    loop), and replay moved a read two back onto the wrong one."""
    store = b.trace_store
    n = sa[1] - sp[1]
    if sa[0] - sp[0] != sb[0] - sa[0] or n != sb[1] - sa[1]:
        return False
    if moving:
        keys = b.site_table.keys

        def kinds(a: int, z: int) -> list:
            return [k[:4] if k[0] in ("vec", "reduce") else k[:3] for k in
                    (keys[s] for s in store.rows(a, z)[:, 0].tolist())]

        if kinds(sp[1], sa[1]) != kinds(sa[1], sb[1]):
            return False
    return store.moved_on(sp[1], sa[1], n, t0, sa[0] - sp[0], t0, sites=not moving) is not None


def _carried_fills(b, rows: np.ndarray, used: set, D: int, t_b: int) -> bool:
    """B (its command ``rows``) reads tensors of earlier iterations whose value is known while
    tracing (of ``used``): a software pipeline's deferred update reading the accumulator an
    earlier iteration filled (`o = tl.zeros(...)` in one phase, `o * alpha + pv` in the next).
    Replay keeps full tracing's knowledge when each is a small fill (tl.zeros, tl.full: not an
    arange, nor a value computed from one) made alike in every iteration from it to B, so that
    every replayed iteration reads the same value (the iterations traced after read it through
    a handle replay moves on, whose value it moves with it: _move_known), and when no command
    of B reading one has a value known from it: an elementwise one (the only kind whose result
    tracing computes) with another operand whose value is unknown (`o * alpha`, not `o + 1.0`,
    which would start a chain of known values replay does not compute); a store, a send, a dot
    or a reduction of it makes no known value."""
    fills, lazy, valued, keys = b.fills, b.lazy, b.valued, b.site_table.keys
    ops = rows[:, 1:]
    hit = np.isin(ops, np.fromiter(used, np.int64, len(used)))
    read = np.unique(ops[hit]).tolist()
    for i in read:
        back = (t_b - i + D - 1) // D  # (iterations back from B)
        if i not in fills or i in lazy or not all(_same_known(b, i, i + q * D) for q in range(1, back + 1)):
            return False
    nv = len(valued)
    hit = hit.any(axis=1)
    for site, row in zip(rows[hit, 0].tolist(), ops[hit].tolist()):
        if keys[site][0] == "vec" and all(0 <= o < nv and valued[o] for o in row if o >= 0):
            return False
    return True


def _why_differs(b, s0: tuple, sa: tuple, sb: tuple, se: tuple) -> str | None:
    """Why B (``sb`` to ``se``) is not A (``sa`` to ``sb``) moved on, in the kernel's words, read
    off their commands: how many each made, or the first command whose site differs, or that
    reads another tensor than A's moved on (an operand from iteration 0 on, at or above ``s0``'s
    first tensor, moved by the tensors an iteration makes; an older one the same). None when
    the commands are alike (the handles, views or accesses differ: the generic reason). Only
    for a loop that is not replayed: its reason in ``.loops``."""
    store, table = b.trace_store, b.site_table
    ra, rb = store.rows(sa[1], sb[1]), store.rows(sb[1], se[1])
    D, t0 = sb[0] - sa[0], s0[0]
    n = min(len(ra), len(rb))
    bad = ra[:n, 0] != rb[:n, 0]
    if len(ra) == len(rb):  # (else D is not the step: the sites alone tell where they part)
        ops = ra[:n, 1:]
        bad |= (rb[:n, 1:] != np.where(ops >= t0, ops + D, ops)).any(axis=1)
    first = int(np.argmax(bad)) if bad.any() else None

    def where(site) -> str:
        k = table.keys[int(site)]
        return f"{file_line(k[1], k[2])} ({table.label(int(site))})"

    if len(ra) != len(rb):
        at = first if first is not None else n
        alike = (f", alike up to the command at {where((ra if at < len(ra) else rb)[at, 0])}"
                 if at < max(len(ra), len(rb)) else "")
        return (f"its traced iterations make {len(ra):,} and {len(rb):,} commands{alike}: an `if` on "
                f"the index, or an inner loop whose trip count follows the outer index (`tl.range(0, "
                f"r + 1)`, causal attention: docs/kernels.md splits the diagonal blocks out)")
    if first is None:
        return None
    x, y = ra[first], rb[first]
    if x[0] != y[0]:
        kx, ky = table.keys[int(x[0])], table.keys[int(y[0])]
        if kx[:3] == ky[:3] and (kx[0] not in ("vec", "reduce") or kx[3] == ky[3]):  # (its op too)
            return (f"the command at {file_line(kx[1], kx[2])} is {table.label(int(x[0]))} in one "
                    f"traced iteration and {table.label(int(y[0]))} in the next (shapes_move=True "
                    f"replays shapes that move by a constant step)")
        return (f"command {first + 1} of its body is at {where(x[0])} in one traced iteration and at "
                f"{where(y[0])} in the next: an `if` on the index")
    return (f"the command at {where(x[0])} reads another tensor in the next traced iteration than "
            f"replay would move it on to: one kept from an earlier iteration (`if i == 0: first = "
            f"x`) or picked by the index (`parts[i % 4]`); make it in the iteration, or before the loop")


def _counts_differ(snaps: list) -> str | None:
    """The traced iterations' command counts when they are not all alike (commands in some
    iterations only, ``if i % 3 == 1``, the last two alike), else None."""
    counts = [y[1] - x[1] for x, y in zip(snaps, snaps[1:])]
    if len(set(counts)) < 2:
        return None
    return (f"its traced iterations make {', '.join(f'{c:,}' for c in counts)} commands: an `if` on the "
            f"index, or an inner loop whose trip count follows the outer index")


def _counts_periodic(snaps: list) -> str | None:
    """:func:`_counts_differ` when the command counts after iteration 0 go up and down (`if i % 3
    == 1`): the last pair's difference alone would read as a count that grows (causal
    attention's inner loop), which the last pair tells best."""
    counts = [y[1] - x[1] for x, y in zip(snaps[1:], snaps[2:])]
    if counts == sorted(counts) or counts == sorted(counts, reverse=True):
        return None
    return _counts_differ(snaps)


def _keys_in(d: dict, lo: int, hi: int) -> list:
    """The keys of ``d`` (tensor numbers) from ``lo`` to ``hi``, in whichever way reads fewer: a
    program's fills and known values grow with every loop run (an accumulator's tl.zeros), and
    scanning them all at each proof made a Python loop of short tl.range loops quadratic (a
    review: 40,000 runs, 28 s against 0.5 s with replay off)."""
    if hi - lo < len(d):
        return [x for x in range(lo, hi) if x in d]
    return [x for x in d if lo <= x < hi]


def _same_known(b, i: int, j: int) -> bool:
    """Do tensors i and j have the same value known while tracing (a fill's recipe, or the
    computed value, bit for bit)?"""
    fi, fj = b.fills.get(i), b.fills.get(j)
    if fi is not None or fj is not None:
        return fi is not None and fj is not None and fi[0] == fj[0] and fi[1] == fj[1] \
            and np.asarray(fi[2]).tobytes() == np.asarray(fj[2]).tobytes()
    ki, kj = b.computed(i), b.computed(j)
    return (ki is not None and kj is not None and ki.dtype == kj.dtype and ki.shape == kj.shape
            and ki.tobytes() == kj.tobytes())


def _move_known(b, p: _Plan, R: int, unknown) -> None:
    """The known values of the tensors p.known, given to the tensors R iterations on (what
    the handles naming them name once moved on); those of p.unknown's, ``unknown``: a
    builder.UnknownValue."""
    for i in p.known:
        j = i + R * p.D
        if i in b.fills:
            b.fills[j] = b.fills[i]
        if i in b.known:
            b.known[j] = b.known[i]
        b.mark_valued(j)
    for i in p.unknown:
        b.known[i + R * p.D] = unknown
        b.mark_valued(i + R * p.D)


def _safe_iterations(b, p: _Plan, want: int) -> int:
    """How many of the ``want`` iterations after B keep every load and store inside its
    allocation (unmasked footprint), the offsets moving on by their constant per iteration,
    the SRAM top within its bound (PEBuilder.skip_sram) and the tensor numbers within the ids'
    (PEBuilder.max_tensors): the first iteration that would fail is traced, so its error names
    its line as full tracing does."""
    safe = min(want, max(0, (b.max_tensors - len(b.tensors)) // p.D)) if p.D else want
    if p.moves is not None:
        # shapes move: each iteration checked in turn, its sizes, shapes and accesses
        top = b.sram_top
        for m in range(1, safe + 1):
            top += p.moves.total(m)
            if top > SRAM_TOP_MAX or not p.moves.fits(b, m) or not _accesses_fit(p, m):
                return m - 1
        return safe
    if p.S:
        safe = min(safe, max(0, (SRAM_TOP_MAX - b.sram_top) // p.S))
    for (alloc, e0, shape, stride, mask), d in zip(p.acc, p.delta):
        span = _span(shape, stride)
        numel = alloc.numel
        # iteration m after B (m = 1..): e0 + m*d >= 0 and e0 + m*d + span <= numel
        if d > 0:
            room = numel - span - e0
            m_max = room // d if room >= 0 else -1
        elif d < 0:
            m_max = e0 // (-d) if e0 >= 0 else -1
        else:
            # (one that stays, its mask a tensor from before the loop or one whose value
            # repeats (_plan: p.same_masks): B's own access again in every iteration, which
            # full tracing accepted; a wide tile whose mask keeps it in, `tl.load(w_ptr,
            # shape=(BLOCK,), mask=cols < N)` in a row loop: reviews)
            m_max = want if ((e0 >= 0 and e0 + span <= numel) or 0 <= mask < p.t0
                             or mask in p.same_masks) else -1
        safe = min(safe, max(0, m_max))
    return safe


def _accesses_fit(p: _Plan, m: int) -> bool:
    """Does every load and store of iteration B + m (offsets and, shapes_move, shapes moved
    on) stay inside its allocation, with a stride its rows fit (semantic.region)?"""
    for (alloc, e0, shape, stride, mask), d, ds in zip(p.acc, p.delta, p.moves.acc):
        if not d and ds is None and (0 <= mask < p.t0 or mask in p.same_masks):
            continue  # (B's own access in every iteration: _safe_iterations)
        if ds is not None:
            if not _stays(shape, ds, m):
                return False
            shape = _moved(shape, ds, m)
            if stride is not None and not shape[1] <= stride <= max(alloc.numel, shape[1]):
                return False
        e = e0 + m * d
        if e < 0 or e + _span(shape, stride) > alloc.numel:
            return False
    return True


def _check_memory(b, p: _Plan, R: int, where: tuple) -> None:
    """Refuse replaying R iterations at the loop's line when the launch's tables would then
    take more than the host's memory (builder.table_bytes): before replay takes it, where
    the host would otherwise run out of memory (or swap) first."""
    cmds = b.trace_store.n_traced + R * (p.cmds[1] - p.cmds[0])
    tensors = len(b.tensors) + R * p.D
    lit = b.trace_store.n_literal  # (the rows traced so far: replay's own are tiled, mostly)
    if p.moves is not None:  # (a body whose shapes move is replayed as rows, each its own: a breaker)
        lit += R * (p.cmds[1] - p.cmds[0])
    if table_bytes(cmds, tensors, literal=lit) > b.max_table_bytes:
        e = semantic.kernel_error(
            b, past_memory(b, cmds, tensors, f"tl.range: replaying {R:,} more iterations of this "
                                              f"loop, ", lit), where)
        # (verify mode does not trace such a loop in full to compare: full tracing refuses it
        # too, after taking the host's memory first; executor.trace)
        e.past_memory = True
        raise e


def _replay(b, p: _Plan, R: int, loop: tuple) -> None:
    """Emit R iterations of B moved on (m = 1..R), and move the builder's state with them.
    ``loop``: the tl.range's (file, line)."""
    if p.moves is not None:
        _replay_moving(b, p, R)
        return
    b.skip_sram(R * p.S)  # (within the bound: _safe_iterations)
    b.trace_store.append_tiled(p.cmds[0], p.cmds[1], R, p.D, p.shift, loop)
    if b._acc is not None:
        # For the tl.range loops around this one (their proofs and _safe_iterations): the loads
        # and stores of the first and the last iteration replayed. Each moves by a constant per
        # iteration, so those two bound the ones between.
        for (alloc, e0, shape, stride, mask), d in zip(p.acc, p.delta):
            b._acc.append((alloc, e0 + d, shape, stride, mask))
            b._acc.append((alloc, e0 + R * d, shape, stride, mask))
    b.tensors.repeat(p.tensors, R)  # (kept as the body and R: PEBuilder.tensors)
    if p.pinned:
        moved = np.arange(1, R + 1, dtype=np.int64)[:, None] * p.D  # (R, 1): iteration m's shift
        b.pinned.extend((moved + np.array(p.pinned, np.int64)).ravel().tolist())
    for first, dims, shape in p.transposed:  # each view or run of B's, in every iteration
        b.transposed.add_run(first + p.D, ((p.D, R), *dims), shape)


def _replay_moving(b, p: _Plan, R: int) -> None:
    """_replay of a body whose shapes move (shapes_move): the R iterations after B written as
    rows, each with its own sites (its shapes moved on), not a tiling of B's (whose copies
    have B's sites); the tensor table, SRAM top and views follow, iteration by iteration, and
    the handles held are moved to their tensors' SRAM addresses."""
    mv = p.moves
    store = b.trace_store
    b0, b1 = p.cmds
    n = b1 - b0
    store.flush()
    rec = store.rows(b0, b1)  # B's rows: (site, src0, src1, src2)
    shift = p.shift.astype(np.int64)
    # B as the store keeps it: traced rows, and the tilings of its inner loops' replays, which
    # each copy keeps as tilings of its own rows (whose sites are the copy's), not as rows
    parts = store.layout(b0, b1) or [(b0, b1, None)]
    sites = rec[:, 0].copy()
    starts = [p.top, p.top + p.S]  # SRAM top where iterations B, B + 1, ... start
    entries = []
    store.moving_replay()
    for m in range(1, R + 1):
        mv.sites(store.table, m, sites)
        for x, y, k in parts:
            if k is None:
                r = rec[x - b0:y - b0].copy()
                r[:, 0] = sites[x - b0:y - b0]
                r[:, 1:] += shift[x - b0:y - b0] * (m * p.D)
                store.pending.extend(r)
                store.replayed += y - x
            else:
                ta, tz, tR, tD, tshift, loop = store.tiling(k)
                store.append_tiled(ta + m * n, tz + m * n, tR, tD, tshift, loop)
        entries += mv.entries(b, m)
        starts.append(starts[-1] + mv.total(m))
    b.tensors.tail.extend(entries)
    b.skip_sram(starts[-1] - starts[1])  # (within the bound: _safe_iterations)
    if b._acc is not None:  # (for the loops around this one: as _replay)
        for (alloc, e0, shape, stride, mask), d, ds in zip(p.acc, p.delta, mv.acc):
            for m in (1, R):
                b._acc.append((alloc, e0 + m * d, shape if ds is None else _moved(shape, ds, m),
                               stride, mask))
    if p.pinned:
        moved = np.arange(1, R + 1, dtype=np.int64)[:, None] * p.D
        b.pinned.extend((moved + np.array(p.pinned, np.int64)).ravel().tolist())
    for (first, dims, shape), ds in zip(p.transposed, mv.trans):
        if ds is None:
            b.transposed.add_run(first + p.D, ((p.D, R), *dims), shape)
        else:
            for m in range(1, R + 1):
                b.transposed.add_run(first + m * p.D, dims, _moved(shape, ds, m))
    # The handles held: each names its tensor R iterations on (an id R * D further), at the
    # SRAM address that tensor has there (sizes move, so not R * S further)
    offsets: dict = {}  # iteration -> its tensors' offsets from its start (the last two, mostly)
    for h in p.handles:
        i, j = divmod(h.id - b.base - p.t_b, p.D)  # its tensor's iteration (B's: 0) and index
        m = i + R
        if m not in offsets:
            size = mv.sizes(m)
            offsets[m] = np.cumsum(size) - size
        start = starts[m] if m >= 0 else p.top - sum(mv.total(k) for k in range(m, 0))
        h.addr = start + int(offsets[m][j])
        h.id += R * p.D
        # its buffer's size moves too (a view's nbytes is its buffer's: PEBuilder._new)
        e = b.tensors.entry(h.id - b.base)
        h.nbytes = e[2] * ITEMSIZE[e[1]]
        d = mv.held.get(id(h))
        if d is not None:  # its shape moves: the entry's own tuple when it is its buffer's
            shape = _moved(h.shape, d, R)
            h.shape = e[0] if e[0] == shape else shape
    for h, d in mv.views_before:
        h.shape = _moved(h.shape, d, R)


def _move_handles(handles: list, D: int, S: int) -> None:
    for h in handles:
        h.id += D
        h.addr += S


def _off_line(b, p: _Plan, s: tuple, e: tuple, m: int, cut: bool = False) -> str | None:
    """Replay on: why the iteration traced between snapshots ``s`` and ``e``, the first after
    the replayed ones (B moved on by ``m``), shows that the body's Python did not see the
    iterations replay skipped; else None. It may differ from B moved on: the last iteration
    (a ragged block, an ``if i == n - 1`` with accesses of its own or without some of B's, a
    store of another block: the causal prefill's), or one replay stopped before because the
    line leaves an allocation there (a ring's chunk index wrapping round, ``(r - i) % n``). But
    B's moving loads and stores, in their order among its others, where B's are one iteration
    on instead of ``m``, and not on the loop's line, is what a Python count of the iterations
    run puts there (``ptr += BLOCK``, ``enumerate``). ``cut``: the iteration was cut short by
    an error (:func:`check_cut_short`): the moving accesses it made before, a first few of B's,
    are at the place one iteration on and none on the line. B's fixed accesses are taken out
    first (one at the place after B is not a count's). (A count moving some addresses only,
    beside others that follow the index, is not told from a last iteration's other block:
    verify mode finds it.)"""
    acc = _without_fixed(b._acc[s[5]:e[5]], p)
    moving = [(x0, b0, d) for (x0, b0, *_), d in zip(p.acc, p.delta) if d]
    if m < 2 or not moving:
        return None
    if cut:
        if _found(acc, moving, m) or not _found(acc, moving, 1):
            return None
    elif _found(acc, moving, m) == len(moving) or _found(acc, moving, 1) < len(moving):
        return None
    x0, b0, d = moving[0]
    return (f"a load or store of {x0.name!r} reads element {b0 + d}: the place of the iteration "
            f"after the last one traced before replay, not element {b0 + m * d}, this "
            f"iteration's on the loop's line")


def _without_fixed(acc: list, p: _Plan) -> list:
    """``acc`` without B's fixed loads and stores (each taken out once, where it is again)."""
    fixed = [(x0, b0) for (x0, b0, *_), d in zip(p.acc, p.delta) if not d]
    if not fixed:
        return acc
    out = []
    for a in acc:
        for j, (x0, b0) in enumerate(fixed):
            if a[0] is x0 and a[1] == b0:
                del fixed[j]
                break
        else:
            out.append(a)
    return out


def _found(acc: list, moving: list, m: int) -> int:
    """How many of B's moving loads and stores, (allocation, element, step) moved on ``m``
    iterations, are among ``acc`` from the first, in their order (others between them: a last
    iteration's own)."""
    it = iter(acc)
    for j, (x0, b0, d) in enumerate(moving):
        want = b0 + m * d
        if not any(x is x0 and e0 == want for x, e0, *_ in it):
            return j
    return len(moving)


def close_kept(b) -> None:
    """Close the tl.range generators of program ``b`` the kernel keeps past its end (a global
    holding an iterator or a generator over one), the last made first, as the kernel's frames
    would have as it returned: each records how far it ran (``TracedLaunch.loops``) and verify
    mode names the loop left early, while the program can still take it (a review: left to the
    collector, the record lacked the loop and its close raised a raw error on a finished
    program). Called by executor.trace's run as the kernel returns."""
    for w in reversed(b.opened):
        g = w()
        if g is not None:
            g.close()
    b.opened = []


def check_cut_short(b, tb=None) -> None:
    """Replay on: an error is raised in the iteration a loop traced after its replayed ones,
    before that iteration's check (:func:`_off_line`) ran: check what it did so far, so that an
    error only a Python count puts there (a later access of that iteration, the count's own
    going on the loop's line would not reach) has the launch traced again, that loop in full,
    and full tracing's error raised (a review: the later one was). Raises ReplayOffLine then;
    else returns, and the error stands. Called by executor.trace's run, with the error's
    traceback ``tb`` (where it was raised: in the loop's body or not, :func:`_raised_in_body`)."""
    cut = b.cut_short  # (the loop's generator was closed as the error left the kernel)
    for running in reversed(b.ranges):  # (or it is still open: its iterator kept in a variable)
        if cut is None and running[4] is not None:
            at, t = None, tb
            while t is not None:  # (the loop's own frame's entry, not a recursive call's of its
                # function: where the error left it)
                if id(t.tb_frame) == running[4][9]:
                    at = t.tb_lasti
                t = t.tb_next
            cut = _cut_short(b, running[4], running[4][9], at)
    if cut is not None:
        b.cut_short = None
        where, what, why, quiet, no_replay = cut
        raise _in_full(no_replay, (b.pe, b.cube), where, what, why, quiet)


def _cut_short(b, pending: tuple, frame, lasti):
    """What :func:`check_cut_short` raises for, of a loop's iteration after replay cut short
    (``pending``: what tl_range keeps while it runs), or None. One cut short by an error raised
    in the loop's body (the loop's frame, by its id ``frame``, at instruction ``lasti``:
    :func:`_raised_in_body`) whose Python ran with ints replay stepped (:func:`_int_steps`)
    always: only full tracing tells whether its error is the kernel's, or replay's step read
    where the body steps otherwise (a review)."""
    p, s, m, where, what, quiet, no_replay, steps, spec, own = pending
    why = _off_line(b, p, s, _snap(b), m, cut=True)
    if why is None and steps and frame == own and lasti is not None and _raised_in_body(spec, lasti):
        names = ", ".join(f"`{x[0]}`" for x in steps.values())
        # (a review read "its Python run with `p`" as blaming `p`: the error may be the kernel's)
        why = (f"it raised an error while its Python ran with {names} as replay stepped "
               f"{'it' if len(steps) == 1 else 'them'} (whether the error is the kernel's or comes of "
               f"that step only full tracing tells): traced again in full, so that the error is "
               f"full tracing's")
        quiet = False
    return None if why is None else (where, what, why, quiet, no_replay)


_POP_TOP = dis.opmap["POP_TOP"]
#: a running loop's interleaved flag (b.ranges) when an earlier loop was closed inside it
_CLOSED_INSIDE = "closed inside"


def _raised_in_body(spec: tuple, lasti: int) -> bool:
    """Whether the loop's frame (``spec``: :func:`_loop_spec`), at instruction ``lasti`` as an
    error left it or as it closed the loop's generator, was inside the loop's body and not at a
    break's or a return's POP_TOP (which pops the iterator: Python 3.11 to 3.13): an error
    raised in an iteration, not the loop left (a break, its iterator kept and dropped later,
    `del it`, an error after the loop; a breaker's retraces)."""
    code, at = spec[0], spec[1]
    end = next((x.argval for x in dis.get_instructions(code) if x.offset == at and x.opname == "FOR_ITER"), None)
    if end is None:
        return True  # (not found: as an error, which traces the launch again, exact)
    try:
        return at < lasti < end and code.co_code[lasti] != _POP_TOP
    except IndexError:
        return True


class ReplayOffLine(BaseException):
    """Replay on: a tl.range loop the launch must trace in full after all: the iteration it
    traced after its replayed ones shows that the body's Python did not see the iterations
    skipped (:func:`_off_line`), or a value replay did not move on is read (:func:`_unknown_read`).
    The loop has put itself among the launch's loops traced in full first (:func:`_in_full`),
    and executor.trace traces the launch again. A BaseException, so that a kernel's ``except
    Exception`` lets it by."""


def _in_full(no_replay: "InFull", pe: tuple, loop: tuple, where: str, why: str,
             quiet: bool = False) -> ReplayOffLine:
    """Put ``loop`` (the tl.range's (file, line)) among the loops traced in full, with what a
    ReplayWarning says of it unless ``quiet`` (``pe``: (pe, cube); ``where``: the iteration, its
    index and the loops around it; ``why``: what differs), and return the signal to raise. The
    record is plain data, not the exception: a raised one holds the frames of the try it ended,
    and the record lives on through the next (a review: the builders kept to the cyclic GC)."""
    no_replay[loop] = (pe, where, why, quiet)
    return ReplayOffLine(f"tl.range at {file_line(loop[0], loop[1])}: {where} {why}")


def _outer(b) -> str:
    """The iterations of the tl.range loops around the innermost running one, for messages."""
    return "".join(f" in iteration index {i} of the tl.range at {file_line(f, ln)}"
                   for f, ln, i, *_ in reversed(b.ranges[:-1]))


class InFull(dict):
    """A launch's tl.range loops traced in full after all, replay on (``TL._no_replay``):
    (file, line) -> (pe, where, why, quiet), what :func:`_in_full` was told. ``unknown``: the
    loops of the try under way that left a value unknown (builder.UnknownValue);
    executor.trace empties it before each try."""

    __slots__ = ("unknown", "carried", "slow")

    def __init__(self) -> None:
        super().__init__()
        self.unknown = set()
        #: loop (file, line) -> (its first PE and line, the loops around it, the PEs): loops
        #: traced in full as they ran because their body carries a value known while tracing
        #: (CARRIED_KNOWN), for a ReplayWarning
        self.slow = {}
        #: loop (file, line) -> (its first PE and line (semantic.site_named), the loops around
        #: it, the variables, the PEs, why a number among them was not stepped: _not_stepped):
        #: the loops traced in full as they ran because their body carries Python state
        #: (_carried), for a ReplayWarning
        self.carried = {}


def _unknown_read(no_replay: InFull, pe: tuple, loop: tuple) -> None:
    """A handle moved on past the replayed iterations of ``loop`` names a tensor whose value
    full tracing knows (a tl.arange mask) but replay did not move on, since it differs from
    iteration to iteration; it is read now (a mask after the loop): the launch is traced again
    with that loop in full, quietly (builder.UnknownValue), and with every other loop that
    left a value unknown in this try (else a launch of K such loops, each read, would be
    traced K + 1 times: a review; it is traced twice, those loops as they were before
    unknown values: in full)."""
    what = "a handle kept past its iterations"
    for other in no_replay.unknown - no_replay.keys():
        _in_full(no_replay, pe, other, what, "names a tensor whose value replay did not move on",
                 quiet=True)
    f, line = user_where()  # (the line whose check reads it: a divisor, a mask)
    raise _in_full(no_replay, pe, loop, what, f"names a tensor whose value replay did not move "
                   f"on, read after the replayed iterations (by the loop's last, traced iteration or "
                   f"after the loop) at {file_line(f, line)}, whose check needs its value: a value "
                   f"carried through the iterations from a tl.full or a tl.arange (a count, `cnt = "
                   f"cnt + 1`; an index, `offs = offs + N`); make it after the loop from Python "
                   f"numbers (the trip count: `acc // n`, `tl.arange(0, N) + n * N`) to keep the "
                   f"loop replayed", quiet=True)


def _check_iteration(b, p: _Plan, s: tuple, e: tuple, m: int, k: int, value, where: tuple,
                     kb: int) -> None:
    """Verify mode: iteration ``k`` (index value ``value``), traced between snapshots ``s`` and
    ``e``, is B (iteration ``kb``) moved on by ``m`` iterations; else the KernelError naming
    what differs."""
    store = b.trace_store
    why = None
    n_rows = p.cmds[1] - p.cmds[0]
    mv = p.moves
    S = p.S if mv is None else mv.total(m)
    if e[0] - s[0] != p.D or e[1] - s[1] != n_rows:
        why = (f"it makes {e[0] - s[0]} tensors in {e[1] - s[1]} commands "
               f"({e[2] - s[2]} SRAM bytes), the replayed body {p.D} in {n_rows} ({S})")
    else:  # (SRAM bytes that differ: after the commands, which name the shape that does)
        if p.rows is None:
            p.rows = store.rows(*p.cmds)
        got = store.rows(s[1], e[1])
        want = p.rows.copy()
        want[:, 1:] += p.shift.astype(np.int64) * (m * p.D)
        if mv is not None:  # (its shapes moved on m steps)
            sites = want[:, 0].copy()
            mv.sites(store.table, m, sites)
            want[:, 0] = sites
        bad = np.flatnonzero((got != want).any(axis=1))
        if len(bad):
            j = int(bad[0])
            keys = store.table.keys
            kg, kw = keys[int(got[j, 0])], keys[int(want[j, 0])]
            why = (f"its command #{j} is {store.table.label(int(got[j, 0]))} at "
                   f"{file_line(kg[1], kg[2])} on tensors {tuple(int(x) for x in got[j, 1:])}, the "
                   f"replayed body's {store.table.label(int(want[j, 0]))} at {file_line(kw[1], kw[2])} "
                   f"on {tuple(int(x) for x in want[j, 1:])}")
        elif b.tensors.span(s[0], e[0]) != (p.tensors if mv is None else mv.entries(b, m)):
            why = "its tensors differ in shape or dtype from the replayed body's"
        elif e[2] - s[2] != S:
            why = f"its tensors take {e[2] - s[2]} SRAM bytes, the replayed body's {S}"
        elif b.pinned[s[3]:e[3]] != [x + m * p.D for x in p.pinned]:
            # (a pin is no command: `pinned=(i == 5)` leaves the rows alike)
            def places(ts, t0):
                return ", ".join(f"#{t - t0}" for t in ts) or "none"
            why = (f"it pins its tensors {places(b.pinned[s[3]:e[3]], s[0])} (pinned=True, counted "
                   f"from its first), the replayed body {places(p.pinned, s[0] - m * p.D)}: a "
                   f"tl.range body pins the same tiles in every iteration")
        elif e[5] - s[5] != len(p.acc):
            why = f"it makes {e[5] - s[5]} loads and stores, the replayed body {len(p.acc)}"
        else:
            acc = b._acc[s[5]:e[5]]
            moved = mv.acc if mv is not None else [None] * len(p.acc)
            for j, ((x, e0, sh, st, _), (x0, b0, sh0, st0, _), d, ds) in enumerate(
                    zip(acc, p.acc, p.delta, moved)):
                if ds is not None:
                    sh0 = _moved(sh0, ds, m)
                if x is not x0 or e0 != b0 + m * d:
                    why = (f"its load/store #{j} reads element {e0} of {x.name!r}; the replayed "
                           f"body's offsets move by {d} per iteration, to element {b0 + m * d} of "
                           f"{x0.name!r}: tl.range may use the index only in addresses that move "
                           f"by a constant per iteration")
                    break
                if sh != sh0 or st != st0:
                    why = (f"its load/store #{j} of {x.name!r} has shape {sh} and stride {st}, the "
                           f"replayed body's shape {sh0} and stride {st0}: a tl.range body keeps its "
                           f"tiles' shapes and strides; only their offsets may move with the index"
                           + (" (and, with shapes_move=True, their shapes by a constant step)"
                              if mv is not None else ""))
                    break
    if why is not None:
        # an inner loop's iteration repeats in every iteration of the loops around it: name those
        outer = _outer(b)
        # (B = 1 only where iterations 0 and 1 proved it: replay_first's promise is in question)
        first = (" (replay_first=True: iterations 0 and 1 proved it, so iteration 0 must do the "
                 "others' work, its loads and stores on their line of addresses)") if kb == 1 else ""
        raise semantic.kernel_error(
            b, f"tl.range: iteration {k} (index {value}){outer} does not repeat the loop body: {why}. "
               f"Replay would emit iteration {kb} moved on instead{first} (docs/language.md, "
               f"'tl.range'); use range() for a loop whose iterations differ", where, ReplayContractError)


def _check_steps(b, spec: tuple, steps: dict, m: int, k: int, value, where: tuple) -> None:
    """Verify mode: the ints the body steps (:func:`_int_steps`) are B's stepped ``m`` times at
    the end of iteration ``k`` (index ``value``); else the KernelError naming the variable."""
    why = _steps_off(spec, steps, m)
    if why is not None:
        raise semantic.kernel_error(
            b, f"tl.range: iteration {k} (index {value}){_outer(b)} does not repeat the loop body: "
               f"{why}. Replay would set it so instead (docs/language.md, 'tl.range')", where,
            ReplayContractError)


def _interleaved(b, running: list) -> bool:
    """Has the loop ``running`` (its entry in ``b.ranges``) run interleaved with another? True
    once it resumed with another tl.range still running inside it that began inside one of its
    iterations and is not over (generators advanced together by zip, each over a loop): the
    loops do not nest, so neither's iterations are its body, and none of the loops running then
    is replayed or checked."""
    if b.ranges[-1] is not running:
        for e in b.ranges:
            e[3] = True
    return running[3]


#: a tensor handle's part in a body's Python state (_Budget.handle)
_HANDLE = ("handle",)
#: TensorHandle's id slot, read without running a subclass's own code
_HANDLE_ID = TensorHandle.__dict__["id"]
_UNBOUND = ("unbound",)
#: the most elements (of containers, objects' attributes, arrays; tensor handles aside) looked
#: at in one variable's value, and the most values visited, handles included: past either,
#: the variable is compared by its identity and length
_STATE_BUDGET = 16
_STATE_VISITS = 4096
#: the most values visited counting a larger variable's elements (_count)
_COUNT_VISITS = 64


class LoopIterator:
    """What ``iter(tl.range(...))`` returns: the loop's generator, and the program it was made
    in. Its program closes it as the kernel returns (:func:`close_kept`); taken further after
    that (kept in a global and iterated by the next PE's program, or a later launch's), it says
    so, where a closed generator's ``for`` would run no iteration, silently (a review)."""

    __slots__ = ("_g", "_where", "_ended")

    def __init__(self, g, b: PEBuilder, r: TlRange) -> None:
        self._g, self._where, self._ended = g, (b.pe, b.cube, r), False

    def __iter__(self) -> "LoopIterator":
        return self

    def __next__(self) -> int:
        g = self._g
        if g.gi_frame is None and not self._ended:  # (closed before its end was reached)
            pe, cube, r = self._where
            raise RuntimeError(f"this {r!r} loop's iterator was made on PE ({pe}, {cube}), whose "
                               f"program has ended (it closes its loops as it returns): each "
                               f"PE's program iterates a tl.range of its own (keep the tl.range, "
                               f"or its arguments, not an iterator over it)")
        try:
            return next(g)
        except StopIteration:
            self._ended = True
            raise

    def close(self) -> None:
        """Close the loop (a generator's ``close``: the loop as left by a ``break``)."""
        self._ended = True
        self._g.close()


#: types compared by value as they are, and types compared by identity alone
_PLAIN = frozenset({int, bool, str, bytes, type(None)})
_IDENTITY = frozenset({types.BuiltinFunctionType, types.ModuleType, types.GeneratorType,
                       types.CodeType, types.FrameType, staticmethod, classmethod, property,
                       LoopIterator})
_OPAQUE = tuple(_IDENTITY)
_HEAPTYPE = 1 << 9  # (Py_TPFLAGS_HEAPTYPE: a class a Python statement made, not a builtin)


class _Spent(Exception):
    """A variable's value is larger than _STATE_BUDGET elements or _STATE_VISITS values."""


class _Budget:
    __slots__ = ("left", "visits")

    def __init__(self) -> None:
        self.left = _STATE_BUDGET
        self.visits = _STATE_VISITS

    def charge(self, n: int) -> None:
        self.left -= n
        self.visits -= 1
        if self.left < 0 or self.visits < 0:
            raise _Spent


def _has_handle(s) -> bool:
    """Whether state ``s`` holds a tensor handle's."""
    if type(s) is tuple:
        return bool(s) and (s[0] is _HANDLE or any([_has_handle(x) for x in s]))
    if type(s) is frozenset:
        return any([_has_handle(x) for x in s])
    return False


def _is_handle_id(s) -> bool:
    """Whether state ``s`` is a handle's naming a tensor by its id."""
    return type(s) is tuple and len(s) == 3 and s[0] is _HANDLE


def _handle_id_of(s) -> int:
    """The id a handle's state (:func:`_is_handle_id`) names: a set of them sorted by it."""
    return s[2]


def _handle_state(v) -> tuple:
    """A tensor handle's state: its type and the id of the tensor it names (:func:`_alike`
    compares it as replay moves it), or the handle itself when its id is not a number."""
    try:
        i = _HANDLE_ID.__get__(v, TensorHandle)
    except AttributeError:  # (an id never set)
        i = None
    if type(i) is not int:
        return (_HANDLE, id(type(v)), None, id(v))
    return (_HANDLE, id(type(v)), i)


def _state_of(v, budget: _Budget):
    """What value ``v`` of a loop's variable is, as far as replay's check of the body's Python
    state goes (equal states, equal values): plain values by value (floats by their repr: a
    NaN is itself; an int or float subclass, a DevicePointer advanced with ``+=``, by its
    number), lists, tuples, dicts, sets, deques, numpy arrays and objects' attributes (a
    dataclass, a namespace holding an online softmax's handles, a class used as one, a C
    object's fields), buffers and functions (code, defaults, cells) element by element, each
    plain value one of ``budget``'s elements (_Spent past them; containers cost nothing of
    their own), tensor handles free, by their type and the tensor they name (_handle_state), modules,
    generators and builtin classes by identity. Never runs the value's own code (``==``, ``__len__``, ``__repr__``, ``__class__``, properties): its type is read with
    ``type`` and tested with ``issubclass``, the builtin types' own methods read it, and a type
    is named by its id."""
    t = type(v)
    if t in _PLAIN:  # (the common cases first: a kernel's variables are mostly these)
        budget.charge(1)
        return (id(t), v)
    kind = _type_info(t)[1]
    if kind == _K_HANDLE:
        budget.charge(0)  # (a visit, no element)
        return _handle_state(v)
    if kind == _K_IDENTITY:
        return (id(t), id(v))
    if kind == _K_INT:
        budget.charge(1)
        return (id(t), int.__add__(v, 0))
    if kind == _K_FLOAT:
        budget.charge(1)
        return (id(t), float.__repr__(v))
    if kind == _K_COMPLEX:
        budget.charge(1)
        return (id(t), complex.__repr__(v))
    if kind == _K_STR:
        budget.charge(1)
        return (id(t), str.__str__(v))
    if kind == _K_SCALAR:
        budget.charge(1)
        return (id(t), v.dtype.str, v.tobytes())
    if kind == _K_ARRAY:
        if v.dtype == object:  # (its elements as a list's: a review's handles picked by the index)
            return (id(t), v.shape, tuple([_state_of(x, budget) for x in v.flat]))
        budget.charge(v.size)
        return (id(t), v.dtype.str, v.shape, v.tobytes())
    if kind == _K_METHOD:
        return (id(t), _state_of(v.__func__, budget), _state_of(v.__self__, budget))
    if kind == _K_FUNCTION:
        # (a lambda or closure made again each iteration is the same: its code, defaults and
        # cells, whose contents are the frame's variables, compared as such)
        return (id(t), id(v.__code__), _state_of(v.__defaults__, budget),
                _state_of(v.__kwdefaults__, budget), tuple([id(c) for c in v.__closure__ or ()]))
    if kind == _K_CLASS:
        if not t.__flags__ & _HEAPTYPE and not v.__flags__ & _HEAPTYPE:
            return (id(t), id(v))  # (a builtin class)
        # (a class used as a namespace, `St.rem -= B`: its own attributes, dunders aside)
        own = type.__dict__["__dict__"].__get__(v, t)
        return (id(t), id(v), frozenset((k, _state_of(x, budget)) for k, x in own.items()
                                        if not (k.startswith("__") and k.endswith("__"))))
    if kind == _K_BUFFER:
        data = memoryview(v)
        budget.charge(len(data))
        return (id(t), data.format, data.tobytes())
    if kind == _K_LIST:
        out = tuple([_state_of(x, budget) for x in list.__iter__(v)])
    elif kind == _K_TUPLE:
        out = tuple([_state_of(x, budget) for x in tuple.__iter__(v)])
    elif kind == _K_DEQUE:
        out = tuple([_state_of(x, budget) for x in collections.deque.__iter__(v)])
    elif kind == _K_DICT:
        # (an entry is one element: its key is read too, free; in any order: a dict rebuilt
        # each iteration in another order is the same state, and a body that iterates it
        # makes its commands in another order, which the loop's proof sees; but keyed by
        # tensor handles, in its order: the keys are compared as replay moves them)
        entries = [(_state_of(k, _FREE), _state_of(x, budget)) for k, x in dict.items(v)]
        out = tuple(entries) if any([_has_handle(e[0]) for e in entries]) else frozenset(entries)
    elif kind == _K_SET or kind == _K_FROZENSET:
        items = [_state_of(x, budget) for x in (set.__iter__(v) if kind == _K_SET else frozenset.__iter__(v))]
        # (tensor handles, in no order of their own: by the ids they name, which replay
        # moves on keeping their order)
        out = (tuple(sorted(items, key=_handle_id_of)) if items and all([_is_handle_id(x) for x in items])
               else frozenset(items))
    else:
        out = None
    if out is not None:
        # (a subclass's own attributes too: a review's `class Ring(list)` kept its slots there)
        return (id(t), out) if t in _BUILTIN_CONTAINERS else (id(t), out, _attributes(v, budget))
    attributes = _attributes(v, budget)
    # (an object with attributes is what they are: a dataclass rebound each iteration to the
    # same kind of handles is the same state; one without, a C object, is itself)
    return (id(t), attributes) if attributes else (id(t), id(v))


(_K_HANDLE, _K_IDENTITY, _K_INT, _K_FLOAT, _K_COMPLEX, _K_STR, _K_SCALAR, _K_ARRAY, _K_METHOD,
 _K_FUNCTION, _K_CLASS, _K_BUFFER, _K_LIST, _K_TUPLE, _K_DEQUE, _K_DICT, _K_SET, _K_FROZENSET,
 _K_OBJECT) = range(19)
#: id(type) -> (a weak reference to it, how _state_of reads its values (_kind_of), its member
#: descriptors (_slots_of)), kept while the type lives (by id: a WeakKeyDictionary makes a
#: weak reference at every lookup)
_KINDS: dict = {}


def _type_info(t: type) -> tuple:
    """``t``'s entry in _KINDS, made on its first use."""
    key = id(t)
    e = _KINDS.get(key)
    if e is None or e[0]() is not t:
        e = _KINDS[key] = (weakref.ref(t, lambda _, key=key: _KINDS.pop(key, None)), _kind_of(t),
                           _slots_of(t))
    return e


def _kind_of(t: type) -> int:
    """How :func:`_state_of` reads a value of type ``t``: by ``issubclass``, in this order."""
    for base, kind in ((TensorHandle, _K_HANDLE), (int, _K_INT), (float, _K_FLOAT),
                       (complex, _K_COMPLEX), (str, _K_STR), (np.generic, _K_SCALAR),
                       (np.ndarray, _K_ARRAY), (types.MethodType, _K_METHOD),
                       (types.FunctionType, _K_FUNCTION), (type, _K_CLASS), (_OPAQUE, _K_IDENTITY),
                       ((bytearray, array.array), _K_BUFFER), (list, _K_LIST), (tuple, _K_TUPLE),
                       (collections.deque, _K_DEQUE), (dict, _K_DICT), (set, _K_SET),
                       (frozenset, _K_FROZENSET)):
        if issubclass(t, base):
            return kind
    return _K_OBJECT


class _Free(_Budget):
    """A budget never spent: a dict's keys (strings, numbers), read beside their values."""

    def charge(self, n: int) -> None:
        pass


_FREE = _Free()


def _attributes(v, budget: _Budget):
    """The states of an object's own attributes: its instance dict's and
    its slots' (read from the dict and the slots' member descriptors: no property or
    ``__getattr__`` runs)."""
    out = []
    t = type(v)
    if t.__dictoffset__:  # (an instance dict: not a slotted class's, a C type's)
        try:
            d = object.__getattribute__(v, "__dict__")
        except Exception:
            d = None
        if type(d) is dict:
            out.append(_state_of(d, budget))
    for m in _type_info(t)[2]:
        try:
            out.append(_state_of(m.__get__(v, t), budget))
        except AttributeError:  # (a slot not set)
            out.append(_UNBOUND)
    return tuple(out)


def _slots_of(t: type) -> tuple:
    """The member descriptors ``t`` and its bases have: their slots', and a C type's fields (a
    functools.partial's func, args and keywords; a slice's or range's start, stop, step)."""
    out = []
    for c in t.__mro__[:-1]:  # (not object's)
        for m in c.__dict__.values():
            if type(m) is types.MemberDescriptorType and m not in out:
                out.append(m)
    return tuple(out)


def _loop_spec(f) -> tuple:
    """What replay's check of the body's Python state reads at each iteration's start: (code,
    FOR_ITER offset, variables) of the loop frame ``f`` advancing the tl.range, () when it has
    no variable to compare other than ``tl`` (or is at no FOR_ITER: ``yield from tl.range(n)``,
    whose consumer's loop is not looked at: the shipped kernels' pipelines count folds there
    on purpose, docs/language.md)."""
    names = tuple(x for x in semantic.loop_carried(f) if x != "tl")
    return (f.f_code, semantic.loop_offset(f), names) if names else ()


def _py_state(spec: tuple):
    """The state (:func:`_state_of`) of :func:`_loop_spec`'s variables at the start of an
    iteration; None when the loop is advanced from elsewhere (``next()`` by hand)."""
    code, lasti, names = spec
    g = semantic.site_frame()
    if g.f_code is not code or semantic.loop_offset(g) != lasti:
        return None
    values, glob = g.f_locals, g.f_globals
    del g  # (the kernel's frame holds this loop's generator)
    out = []
    for x in names:
        if x.startswith(semantic.GLOBAL):
            v = glob.get(x[len(semantic.GLOBAL):], _UNBOUND)
        else:
            v = values[x] if x in values else _UNBOUND
        out.append(_UNBOUND if v is _UNBOUND else _safe_state(v))
    if (code.co_flags & 1 and type(values) is dict
            and sys.getrefcount(values) <= semantic.FRAME_LOCALS_OWN_REFS):
        # (a function's frame on 3.11 and 3.12: f_locals is a copy, the frame's own until it
        # returns, and would keep every variable's value alive that long: a dropped object's
        # __del__ ran later, in another place of the program, and tl.range's proof, which
        # asks which handles are held, saw stale ones (reviews). The next read of f_locals
        # refills it. Not a copy the kernel holds itself (`L = locals()`: a review found it
        # emptied), nor a module's f_locals, which is its namespace)
        values.clear()
    return tuple(out)


def _safe_state(v):
    """:func:`_state_of`, or ``v``'s identity and length when it is larger than the budget
    (a list appended to is still seen), or when looking into it raises."""
    try:
        return _state_of(v, _Budget())
    except _Spent:
        return (id(type(v)), id(v), _count(v, [_COUNT_VISITS]))
    except Exception:
        return (id(type(v)), id(v), -1)


def _count(v, left: list) -> int:
    """How many elements the builtin containers in ``v`` hold, nested ones included (a list
    appended to inside a dict is seen), up to ``left[0]`` values visited; by the types' own
    methods (no user ``__len__``)."""
    t = type(v)
    left[0] -= 1
    if left[0] < 0 or t in _PLAIN:
        return 0
    kind = _type_info(t)[1]
    if kind == _K_ARRAY:
        return v.size
    if kind == _K_BUFFER:
        return len(memoryview(v))
    base = _CONTAINERS.get(kind)
    if base is None:
        return 0
    items = dict.values(v) if base is dict else base.__iter__(v) if kind in _NESTED else ()
    return base.__len__(v) + sum([_count(x, left) for x in items if left[0] > 0])


#: the containers whose values are their elements alone (a subclass's attributes are read too)
_BUILTIN_CONTAINERS = frozenset({list, tuple, collections.deque, dict, set, frozenset})
#: the builtin type whose own methods count a container of each kind (_count), and the kinds
#: whose elements may be containers too
_CONTAINERS = {_K_LIST: list, _K_TUPLE: tuple, _K_DEQUE: collections.deque, _K_DICT: dict,
               _K_SET: set, _K_FROZENSET: frozenset}
_NESTED = frozenset({_K_LIST, _K_TUPLE, _K_DEQUE, _K_DICT})


def _carried(spec: tuple, states: list) -> tuple:
    """The variables of ``spec`` whose state changes otherwise than replay moves it on from one
    of ``states`` to the next. Each is ``(state, k, starts)`` at the end of iteration ``k`` (A's
    and B's, the iterations proving the loop); ``starts``: the ids of the tensors each
    iteration made start at, from iteration 0's to the next's (:class:`_Iterations`). What
    differs so is the Python state the body carries across iterations (a pointer advanced with
    `+=`, a counter, a running width, a list appended to, a handle put in another slot), which
    replay, skipping the body's Python, cannot move on. Compared as tuples of ints, strings and
    bytes only: no user code runs."""
    if any(x[0] is None for x in states):
        return ()
    names = spec[2]
    bad = set()
    for s, t in zip(states, states[1:]):
        w = _Iterations(s[1], t[2])
        for j in range(len(names)):
            w.var = j
            if j not in bad and not _alike(s[0][j], t[0][j], w):
                bad.add(j)
        bad |= w.inconsistent()
    return tuple(x[len(semantic.GLOBAL):] if x.startswith(semantic.GLOBAL) else x
                 for j, x in enumerate(names) if j in bad)


_INT_ID = id(int)


def _int_steps(spec: tuple, ab: list, carried: tuple, before: list) -> dict:
    """The ``carried`` variables (:func:`_carried`) replay moves on itself, when all of them are
    such: plain locals of the loop's frame holding ints that change by a step from A's end to
    B's (a pointer advanced with ``+=``, Triton's ``a_ptrs += BK * stride``; a counter), the
    same step as from the end of the iteration before A (``before``: its state) to A's: a
    doubling stride or `s += i` is found here, and its loop traced in full as it runs (found
    after replay, the launch was traced again: the kernel's Python twice, a review). ``ab``:
    A's and B's end states. {index in ``spec``'s variables: (name, value at B's end, step)};
    empty when one carried variable is something else (the loop is traced in full)."""
    if len(ab) != 2 or len(before) != 1 or any(x[0] is None for x in (*ab, *before)):
        return {}
    f = semantic.site_frame()
    if f.f_code is not spec[0]:
        return {}
    out = {}
    for j, name in enumerate(spec[2]):
        if name not in carried:
            continue
        z, a, b = before[0][0][j], ab[0][0][j], ab[1][0][j]
        if not (_int_state(z) and _int_state(a) and _int_state(b) and a[1] != b[1]
                and b[1] - a[1] == a[1] - z[1] and semantic.settable_local(f, name)):
            return {}
        out[j] = (name, b[1], b[1] - a[1])
    return out if len(out) == len(carried) else {}


#: the states (_state_of) of numbers: (id of the type, value)
_NUMBER_IDS = frozenset({id(int), id(bool), id(float)})


def _not_stepped(spec: tuple, states: list, kb: int, carried: tuple, tail: bool) -> str:
    """Why each ``carried`` variable that holds a number was not stepped by replay
    (:func:`_int_steps`), for the ReplayWarning: '' when none holds one."""
    ends = {x[1]: x[0] for x in states if x[0] is not None}
    f = semantic.site_frame()
    out = []
    for j, name in enumerate(spec[2]):
        shown = name[len(semantic.GLOBAL):] if name.startswith(semantic.GLOBAL) else name
        if shown not in carried or kb not in ends:
            continue
        b = ends[kb][j]
        numpy_int = type(b) is tuple and len(b) == 3 and type(b[1]) is str and b[1][1:2] in ("i", "u")
        if not (type(b) is tuple and len(b) == 2 and b[0] in _NUMBER_IDS or numpy_int):
            continue  # (not a number's state: _state_of)
        vals = [ends[i][j][1] for i in (kb - 2, kb - 1, kb) if i in ends and _int_state(ends[i][j])]
        if numpy_int:
            why = "a numpy integer (`p += stride` with a numpy stride makes one: `int(stride)`)"
        elif b[0] == id(bool):
            why = "a bool"
        elif not _int_state(b):
            why = "a float (compute it from the index)"
        elif name.startswith(semantic.GLOBAL):
            why = "a global"
        elif f.f_code is spec[0] and not f.f_code.co_flags & 1:  # (inspect.CO_OPTIMIZED)
            why = "the loop is not in a function (a class body, module or exec'd code)"
        elif f.f_code is spec[0] and not semantic.settable_local(f, name):
            why = "a variable a nested function shares (a cell)"
        elif len(vals) == 3 and vals[2] - vals[1] != vals[1] - vals[0]:
            why = f"its step changes ({vals[1] - vals[0]:,} then {vals[2] - vals[1]:,})"
        elif not tail:
            why = "with replay_last=True no iteration is traced after the replayed ones to check it"
        else:
            why = "replay would step it, but not the loop's other state"
        out.append(f"`{shown}`: {why}")
    return ("replay steps an int local by a constant only; " + ", ".join(out)) if out else ""


def _int_state(s) -> bool:
    """Whether state ``s`` (:func:`_state_of`) is a plain int's (not a bool's, nor a subclass's)."""
    return type(s) is tuple and len(s) == 2 and s[0] == _INT_ID and type(s[1]) is int


def _set_steps(spec: tuple, steps: dict, m: int) -> bool:
    """Replay on: set the stepped variables (:func:`_int_steps`) to their values at the end of B
    moved on by ``m`` iterations, in the loop's frame; False when the frame is not the loop's
    (advanced from elsewhere)."""
    f = semantic.site_frame()
    if f.f_code is not spec[0] or semantic.loop_offset(f) != spec[1]:
        return False
    semantic.set_locals(f, {name: v + m * d for name, v, d in steps.values()})
    return True


def _steps_off(spec: tuple, steps: dict, m: int) -> str | None:
    """Why the stepped variables (:func:`_int_steps`) at the end of the iteration traced now, B
    moved on by ``m``, are not B's stepped ``m`` times; else None."""
    st = _py_state(spec)
    if st is None:
        return "the loop is advanced from elsewhere: its variables cannot be read"
    for j, (name, v, d) in steps.items():
        want = v + m * d
        if not (_int_state(st[j]) and st[j][1] == want):
            got = st[j][1] if _int_state(st[j]) else "not an int"
            return (f"its variable `{name}` is {got} at its end, not {want}: B's {v} stepped by {d} "
                    f"per iteration (replay moves on an int the body steps by a constant, `p += "
                    f"BLOCK`, and nothing else)")
    return None


class _Iterations:
    """Which iteration of a loop made a tensor, by its id: ``starts`` are where iteration 0's,
    1's, ... ids start, and the last where the next one's would; ``k``: the iteration whose
    end the first of two states compared (:func:`_alike`) was read at. ``pairs``: each
    ``(variable, tensor then, tensor at the next end)`` :meth:`moved` let by, ``var`` the
    variable being compared."""

    __slots__ = ("k", "starts", "pairs", "var")

    def __init__(self, k: int, starts: tuple) -> None:
        self.k, self.starts, self.pairs, self.var = k, starts, [], None

    def of(self, i: int) -> tuple:
        """(iteration, offset in it) of tensor id ``i``; iteration -1 for a tensor from before
        the loop (or another program's)."""
        st = self.starts
        if not st[0] <= i < st[-1]:
            return -1, i
        m = bisect.bisect_right(st, i) - 1
        return m, i - st[m]

    def moved(self, i: int, k: int) -> bool:
        """Whether a handle naming tensor ``i`` at the end of iteration ``self.k`` may name
        tensor ``k`` at the end of the next, as replay moves handles on (and :meth:`inconsistent`
        agrees). Replay moves on every handle made by the last two iterations it traced (A and
        B), and no other, by the iterations it skips, and the iteration traced after them
        assigns the body's variables again. So a handle naming a tensor of that iteration must
        name the same tensor of the next (kept, replay would move it on); one of the two
        iterations before may name the same tensor of the iteration after its own (a window,
        `a, b, c = b, c, x`, whose oldest the traced last iteration puts right; iteration 0's,
        or one of an iteration making another number of tensors than the next, a pipeline
        filling, any of the next's: it may set up, and make other tensors) or stay (a value the loop
        no longer changes: a finished query block's, which replay does not move); any older
        one stays, but in iterations 0 and 1, where a window's first values, from before the
        loop, give way to iteration 0's or to others from before it. A tensor put in a slot
        the index picks (`bufs[i % 2] = x`) breaks this."""
        j = self.k
        (m, o), (m2, o2) = self.of(i), self.of(k)
        if k == i:
            ok = m != j  # (one of its own iteration's: moved on by replay)
        elif m == -1:
            ok = j <= 1 and m2 <= 0
        else:
            # (the same place in the next iteration, but where the two make unlike numbers of
            # tensors: a pipeline filling, whose iterations before the pair proving the loop
            # differ, a review found a window over them refused; replay moves B's and A's)
            st = self.starts
            ok = j - 2 <= m <= j and m2 == m + 1 and (
                o2 == o or m == 0 < j or st[m + 1] - st[m] != st[m2 + 1] - st[m2])
        if ok:
            self.pairs.append((self.var, i, k))
        return ok

    def inconsistent(self) -> set:
        """The variables of :attr:`pairs` whose handles replay would move otherwise than the
        body does: replay moves tensors, not places, so a tensor of the loop held in two places
        must become one tensor in both (a slot the index picks holding the last iteration's
        tensor beside a window: `bufs[i % 2] = prev`; one from before the loop may stay in one
        place and give way to one of the loop's in another: `acc = prev = init`, a window's
        first value, but not to two from before the loop); and one from before the loop that
        gives way to another such (a window's first values shifting along) must lead, giving
        way on, to one of the loop's: replay keeps tensors from before the loop, so two swapped
        each iteration (`a, b = b, a`) or a new one each iteration
        (`older, last = last, tiles[i]`) would stay as B left them."""
        f, bad, on = {}, set(), {}
        for j, i, k in self.pairs:
            # (a tensor of the loop: one fate; one from before it: one among those before it)
            if self.of(i)[0] >= 0 or self.of(k)[0] == -1:
                seen = f.setdefault(i, (k, j))
                if seen[0] != k:
                    bad.update((j, seen[1]))
            if i != k and self.of(i)[0] == -1:
                on.setdefault(i, set()).add(k)
        for j, i, k in self.pairs:
            if i != k and self.of(i)[0] == -1 and self.of(k)[0] == -1 and not self._settles(k, on):
                bad.add(j)
        return bad

    def _settles(self, k: int, on: dict) -> bool:
        """Whether tensor ``k``, from before the loop, gives way (by ``on``) along a chain that
        reaches one of the loop's. (Not one that stays in some place: that place is not the
        chain's, a review's `hold = tiles[2]` beside `older, last = last, get(i)`.)"""
        todo, seen = [k], set()
        while todo:
            x = todo.pop()
            if self.of(x)[0] >= 0:
                return True
            if x not in seen:
                seen.add(x)
                todo.extend(on.get(x, ()))
        return False


def _alike(x, y, w: _Iterations) -> bool:
    """Whether state ``y``, at the end of the iteration after ``x``'s, is ``x`` as replay moves
    it on: handles as :meth:`_Iterations.moved` says, everything else equal. Dicts' entries
    (their states' frozensets of (key, value)) are paired by key; a dict keyed by handles, and
    a set of them, are tuples (:func:`_state_of`), paired in order."""
    tx = type(x)
    if tx is not type(y):
        return False
    if tx is tuple:
        if len(x) != len(y):
            return False
        if x and x[0] is _HANDLE:
            if y[0] is not _HANDLE or x[1] != y[1] or len(x) == 4:
                return x == y
            return w.moved(x[2], y[2])
        for a, b in zip(x, y):
            if not _alike(a, b, w):
                return False
        return True
    if tx is frozenset:
        if len(x) != len(y):
            return False
        kx, ky = _by_key(x), _by_key(y)
        if kx is None or ky is None:  # (a set's states: no handle of the iteration in it)
            return x == y and not _names_in(x, w)
        if kx.keys() != ky.keys():
            return False
        for key, a in kx.items():
            if not _alike(a, ky[key], w):
                return False
        return True
    return x == y


def _by_key(s: frozenset):
    """A dict's state (a frozenset of (key state, value state)) as a dict, None when ``s`` is
    not one (a set's state, a key twice)."""
    out = {}
    for e in s:
        if type(e) is not tuple or len(e) != 2 or e[0] in out:
            return None
        out[e[0]] = e[1]
    return out


def _names_in(x, w: _Iterations) -> bool:
    """Whether state ``x`` holds a handle naming a tensor of iteration ``w.k``."""
    if type(x) is tuple:
        if x and x[0] is _HANDLE:
            return len(x) == 3 and w.of(x[2])[0] == w.k
        return any([_names_in(a, w) for a in x])
    if type(x) is frozenset:
        return any([_names_in(a, w) for a in x])
    return False


class TlRange:
    """What ``tl.range`` returns: like ``range``, iterable again and again (each ``for`` over it
    is a tl.range loop of its own, :func:`tl_range`) and with its ``len``."""

    __slots__ = ("_tl", "_r", "_last", "_first", "_moving")

    def __init__(self, tl, r: range, replay_last: bool = False, replay_first: bool = False,
                 shapes_move: bool = False) -> None:
        self._tl, self._r, self._last, self._first = tl, r, replay_last, replay_first
        self._moving = shapes_move

    def __iter__(self) -> Iterator[int]:
        g = tl_range(self._tl, self._r, self._last, self._first, self._moving)
        b = self._tl._b
        if isinstance(b, PEBuilder):  # (else the generator's first step raises tl's error)
            opened = b.opened
            opened.append(weakref.ref(g))
            n = len(opened)
            if n >= 64 and not n & (n - 1):  # (an inner loop run again and again: the ended go)
                opened[:] = [w for w in opened if w() is not None]
            return LoopIterator(g, b, self)
        return g

    def __reversed__(self) -> Iterator[int]:  # (a TlRange; typed as what a for over it sees)
        """``reversed(tl.range(a, b, s))``: the tl.range over ``range(a, b, s)[::-1]`` with the
        same keywords, which apply to the loop as it runs (replay_last: its last iteration, the
        first of ``range(a, b, s)``)."""
        return TlRange(self._tl, self._r[::-1], self._last, self._first, self._moving)

    def __len__(self) -> int:
        try:
            return len(self._r)
        except OverflowError:
            _too_long(self._tl._b, self._r)

    def __repr__(self) -> str:
        r = self._r
        last = ", replay_last=True" if self._last else ""
        first = ", replay_first=True" if self._first else ""
        moving = ", shapes_move=True" if self._moving else ""
        return f"tl.range({r.start}, {r.stop}, {r.step}{last}{first}{moving})"


def _too_long(b, r: range) -> None:
    """Refuse a tl.range of 2**63 iterations or more (``len`` of it is Python's OverflowError)."""
    semantic.fail(b, f"tl.range{(r.start, r.stop, r.step)}: 2**63 iterations or more, more than "
                     f"a program can trace or replay (for a loop left early by a break, use range)")


def tl_range(tl, r: range, replay_last: bool = False, replay_first: bool = False,
             shapes_move: bool = False):
    """The generator behind ``tl.range`` (see the module docstring). ``replay_last``: the last
    iteration is replayed too (the kernel says it repeats the body: no ragged last block),
    not traced; verify mode checks it as the other replayed ones. ``replay_first``: the
    kernel says iteration 0 is the body too (its loads and stores on the others' line of
    addresses), so iterations 0 (A) and 1 (B) may prove the repetition and replay starts at
    2. That proof also asks that B read only tensors it made (none from before the loop, none
    of iteration 0's: a loop-carried value fails it); else iteration 2 is traced and proves
    it as without the keyword.

    The outermost loop proving its repetition owns the builder's ``_track`` (handles) and
    ``_acc`` (loads and stores) lists; a loop inside it records into the same lists (its
    commands, replayed or traced, are part of the outer body) and leaves them alone."""
    b = tl._b
    mode = tl._replay
    try:
        n = len(r)
    except OverflowError:  # (Python's own error; a review: computed, then traced for ever)
        _too_long(b, r)
    tail = 0 if replay_last else 1  # iterations traced after the replayed ones: the last
    head = PROBES - 1 if replay_first else PROBES  # iterations traced before them, at least
    if mode == "off" or getattr(b, "functional", True) or n < head + 1 + tail:
        if mode == "on" and not getattr(b, "functional", True):  # (too short: in the record)
            _log(b, semantic.site(), n, 0, f"{n} iteration{'s' if n != 1 else ''}, fewer than the "
                                           f"{head + 1 + tail} replay needs")
        yield from r
        return
    where = semantic.site()
    no_replay = tl._no_replay
    # (the frame is not kept in a local: the kernel's frame holds this generator)
    held = no_replay is not None and (where in no_replay or where in no_replay.carried)
    if held or semantic.loop_grows(semantic.site_frame()):
        # a comprehension's loop (it collects one element per iteration run: replay cannot
        # move those on), one found off its line at an earlier try of this launch, or one
        # found carrying Python state earlier in it (each of its runs then: a later run's
        # state may hide past what the check looks at, and the warning says traced in full)
        carried = held and where in no_replay.carried
        if carried:
            no_replay.carried[where][3].add((b.pe, b.cube))
        if mode == "on":
            _log(b, where, n, 0, "it carries Python state across iterations (a ReplayWarning names it)"
                 if carried else f"traced again in full: {no_replay[where][1]} {no_replay[where][2]}"
                 if held else "a comprehension's loop: it collects an element per iteration")
        yield from r
        return
    tl._ranged += 1  # verify mode compares this PE's program with the one traced in full
    # the body's Python state: what it reads before it assigns it, seen at each iteration's start
    spec = _loop_spec(semantic.site_frame())
    check = mode == "check"  # the first pass of verify: every iteration traced and checked
    owner = b._acc is None
    if owner:
        b._track, b._acc = [], []
    at = 0  # the iteration running when the loop is left early (GeneratorExit at a yield)
    skipped = False  # verify's full pass is at an iteration replay would not trace
    # this loop in b.ranges: file, line, current index, whether loops ran interleaved, and
    # the check of the iteration traced after the replayed ones while it runs (check_cut_short)
    running = [where[0], where[1], None, False, None]
    b.ranges.append(running)
    why, replayed, left = None, 0, None  # (the launch's record of its loops: _log)
    try:
        p = None
        snaps = [_snap(b)]  # at the start of each traced iteration, and after the last
        trans = [b.transposed.mark()]
        # the variables' states at the start and the end of B (and of any iteration after A
        # traced to prove it): what B changes, replay would not (iteration 0 may set up)
        states = [] if spec else None
        steps = {}  # the ints the body steps, replay moves on (_int_steps)
        later = False  # the loop ended the probes with too few iterations for the next pair
        for k in range(MAX_PROBES):
            if k == PROBES - 1 and p is not None:
                break  # (replay_first: iterations 0 and 1 proved it)
            if k >= PROBES:
                later = p is None and n < k + 2 + tail  # (a later pair might prove it: no room)
                # B is not A moved on, or is but its next iteration's accesses would leave their
                # allocation: perhaps the body reads two iterations back (iteration 1 reads
                # tensors from before the loop where iteration 2 reads iteration 0's), or its
                # first iterations fill a software pipeline (a deferred update, a store of the
                # iteration before's result: a prefill phase of one or two folds); then the
                # next pair proves it, when a replayed iteration is left after it
                if p is not None or n < k + 2 + tail:
                    break
            at = k
            running[2] = r[k]
            yield r[k]
            snaps.append(_snap(b))
            trans.append(b.transposed.mark())
            if states is not None:  # (the start of iteration k + 1; iteration 0's end too: the
                # step of an int before A's, _int_steps; with where each iteration's tensors
                # start: _carried)
                states.append((_py_state(spec), k, tuple([b.base + x[0] for x in snaps])))
            if _interleaved(b, running):
                p = None
                break
            if k >= PROBES - 1:  # A = k - 1, B = k; operands made from iteration 0 on move on
                p = _plan(b, snaps[0], snaps[k - 1], snaps[k], snaps[k + 1], trans[k - 1], trans[k],
                          trans[k + 1], shapes_move, no_replay is not None, snaps[k - 2])
                if (p is not None and p.D and k >= PROBES and b.trace_store.reads_any(
                        snaps[k][1], snaps[k + 1][1], range(snaps[0][0], snaps[k - 2][0]))):
                    # B reads a tensor of iteration 0 .. B - 3, three iterations back or more:
                    # through a handle the kernel held as long (a window deeper than replay
                    # moves, `a, b, c = b, c, x`: a prefill phase of one fold queues its o
                    # updates three folds deep), which replay, moving A's and B's handles only,
                    # would leave naming its own iteration's tensor (B = 3 reading iteration 0:
                    # a value kept from it, out of the contract, which a chain of handles made
                    # there can pass the proof with: a breaker). A body making no tensor moves
                    # none. Every later pair reads as far back: the loop is traced
                    p = None
                    b.plan_why = OLD_HANDLE
                if (p is not None and k + 1 < MAX_PROBES and n >= k + 3 + tail
                        and _safe_iterations(b, p, 1) < 1):
                    # (A to B may be the pipeline filling, their accesses' step not the loop's:
                    # a store of the last group's o in A, of this group's in B. Replay would
                    # stop at once; the next pair may prove it, and that iteration is traced
                    # either way, its error raised where full tracing raises it)
                    b.plan_why = None
                    p = None
            elif k == 1 and replay_first:  # A = 0, B = 1: B reads only its own (_plan)
                p = _plan(b, snaps[0], snaps[0], snaps[1], snaps[2], trans[0], trans[1], trans[2],
                          shapes_move, no_replay is not None)
                if p is not None and states is not None and _carried(spec, states):
                    # (the state from iteration 0's end to 1's differs otherwise than replay
                    # moves it: iteration 0 may have set it up, a window's first values from
                    # before the loop shifting out. Iteration 2 is traced, and iterations 1 and
                    # 2 prove the loop as without the keyword; their state is checked below)
                    p = None
        kb = len(snaps) - 2  # B, the iteration replay moves on
        k = kb + 1
        if p is None:
            why = (("an earlier tl.range loop was closed inside it (its iterator kept past a break "
                    "and dropped here), taking the loads and stores it recorded with it"
                    if running[3] is _CLOSED_INSIDE else
                    "run interleaved with another tl.range loop (generators advanced together): the "
                    "loops do not nest") if running[3] else
                   # (a list() of the range, `in`, a body of Python only: a review found them
                   # given the reason below)
                   "its traced iterations made no commands: nothing to replay"
                   if snaps[0][1] == snaps[-1][1] else b.plan_why or _counts_periodic(snaps) or (
                       len(snaps) >= 4 and _why_differs(b, snaps[0], snaps[-3], snaps[-2], snaps[-1]))
                   or _counts_differ(snaps) or "its traced iterations differ otherwise than replay moves them on "
                   "(docs/language.md, 'tl.range': what kernbench checks)")
            if later and why is not CARRIED_KNOWN and why is not OLD_HANDLE:
                # (a review: a first iteration that differs, `if i > 0`, in a loop of 5 read as
                # the kernel's fault; 6 iterations replay)
                why += (f"; iterations {k - 1} and {k} might prove it (the first ones may differ: an "
                        f"`if i > 0`, a pipeline filling), but the loop has {n}, fewer than the "
                        f"{k + 2 + tail} that needs")
            if why is CARRIED_KNOWN and no_replay is not None and not check and n - tail - k > 0:
                seen = no_replay.slow.get(where)  # (a ReplayWarning names it: executor.trace)
                if seen is None:
                    no_replay.slow[where] = (semantic.site_named(b), _outer(b), {(b.pe, b.cube)})
                else:
                    seen[2].add((b.pe, b.cube))
        b.plan_why = None
        if p is not None and states is not None and kb != 1:  # (B = 1: checked above)
            # Python state the body carries (a pointer advanced with `+=`, a counter, a running
            # width, a list appended to) differs from iteration to iteration: replay, skipping the
            # body's Python, would leave it at B's for the iterations traced after; the loop is
            # traced in full from here (exact). From iteration 1: iteration 0 may set things up
            # (A's end and B's: with four probes, iteration 1 is not the loop's, as iteration 0)
            ab = [x for x in states if x[1] >= kb - 1]
            carried = _carried(spec, ab)
            if carried and (tail or p.early) and no_replay is not None:
                # ints the body steps by a constant (a pointer advanced with `+=`): replay sets
                # them, and checks them at the end of the iteration it traces after
                steps = _int_steps(spec, ab, carried, [x for x in states if x[1] == kb - 2])
                if steps:
                    carried = ()
            if carried:
                hint = _not_stepped(spec, states, kb, carried, bool(tail or p.early))
                p = None
                why = (f"it carries Python state across iterations ({', '.join(carried)}: a "
                       f"ReplayWarning names it{'; ' + hint if hint else ''})")
                if no_replay is not None and not check and n - tail - k > 0:
                    seen = no_replay.carried.get(where)
                    if seen is None:
                        no_replay.carried[where] = (semantic.site_named(b), _outer(b), carried,
                                                    {(b.pe, b.cube)}, hint)
                    else:
                        seen[3].add((b.pe, b.cube))
        if p is not None and p.early:
            tail = 1  # (replay_last: a handle from before A is held, see _plan)
        if owner:
            b._track = None
        R = 0
        if p is not None and not check:
            R = _safe_iterations(b, p, n - tail - k)
            replayed = max(R, 0)
            if R <= 0:
                why = ("no iteration left between the traced ones" if n - tail - k <= 0 else
                       "its next iteration's loads or stores, moved on by their step per "
                       "iteration (a masked one judged by its whole tile), would leave their "
                       "allocation, or the program its bounds: traced from there (an address "
                       "that does not move by a constant step, a flattened 2-D grid or a block "
                       "table, is outside the contract: replay='verify' names it)")
            if R > 0:
                _check_memory(b, p, R, where)
                _replay(b, p, R, (where[0], where[1]))
                if p.moves is None:  # (_replay_moving moves them to their addresses)
                    _move_handles(p.handles, R * p.D, R * p.S)
                if p.unknown:
                    no_replay.unknown.add(where)
                _move_known(b, p, R, UnknownValue(functools.partial(
                    _unknown_read, no_replay, (b.pe, b.cube), where)) if p.unknown else None)
                # A and B's tensors: a handle still naming one was not moved on (a copy made
                # inside the loop); it is refused where used, not read as the wrong tensor. But
                # the tensors the moved handles name now (R = 1: A's moved onto B's) stay
                b.tensors.disown(p.t_a, p.t_b + p.D, (where[0], where[1]),
                                 {h.id - b.base for h in p.handles})
                k += R
        if p is None or not check:
            if R > 0 and k < n and no_replay is not None:
                # The first iteration traced after the replayed ones: its Python ran as if they
                # had not (a counter, a pointer advanced by `p += B`, enumerate's count) when it
                # is off the loop's line; then the launch is traced again, this loop in full
                if owner:  # (its inner loops record into these as in the probes: _plan)
                    b._track = []
                s = _snap(b)
                at = k
                running[2] = r[k]
                # (after one replayed iteration the place after B is the next one's: a last
                # iteration clamping its prefetch is there too, so then the launch is traced
                # again without a word of a counter: quiet)
                what = f"iteration {k} (index {r[k]}){_outer(b)}"
                running[4] = (p, s, k - kb, where, what, R < 2, no_replay, steps, spec,
                              id(semantic.site_frame()))  # (the loop's frame: check_cut_short)
                if steps and not _set_steps(spec, steps, k - kb - 1):
                    raise _in_full(no_replay, (b.pe, b.cube), where, what, "its loop is advanced "
                                   "from elsewhere: replay cannot step its variables")
                yield r[k]
                running[4] = None
                e = _snap(b)
                if not _interleaved(b, running):
                    why = _off_line(b, p, s, e, k - kb)
                    if why is None and steps and k < n - 1:  # (the last may step otherwise:
                        # a ragged last iteration, `if i < n - 1: p += B`; it enters with B's
                        # stepped, and what it leaves is full tracing's)
                        why = _steps_off(spec, steps, k - kb)
                    if why is not None:
                        raise _in_full(no_replay, (b.pe, b.cube), where, what, why, quiet=R < 2)
                k += 1
                if owner:
                    b._track = None
            p = None
            if owner:
                b._acc = None  # inner tl.range loops of the last iterations own theirs
            for j in range(k, n):
                at = j
                running[2] = r[j]
                yield r[j]
            return
        # verify, first pass: trace the iterations replay would skip and check each (replay
        # stops before the first whose loads or stores leave their allocation, and traces it
        # and the rest: those are not skipped, e.g. a kernel that catches that iteration's error)
        safe = k + _safe_iterations(b, p, n - tail - k)
        for j in range(k, n - tail):
            s = _snap(b)
            at, skipped = j, j < safe
            running[2] = r[j]
            yield r[j]
            e = _snap(b)
            if not _interleaved(b, running) and j < safe:
                _check_iteration(b, p, s, e, j - kb, j, r[j], where, kb)
                if steps:
                    _check_steps(b, spec, steps, j - kb, j, r[j], where)
        if owner:
            b._acc = None
        if tail and k < n:  # (replay_first on 3 iterations: the probes may have traced it)
            at, skipped = n - 1, False  # (the last iteration is traced by replay too)
            running[2] = r[n - 1]
            yield r[n - 1]
    except GeneratorExit:
        if b.finished:  # (closed by the collector after a failed launch: nothing to record)
            raise
        left = at  # (the record counts the iterations run)
        if running[4] is not None:  # (its iteration after replay cut short: an error leaving
            # the kernel closes this generator first, and the access lists go with it below)
            try:  # (the frame closing it: the loop's, as an error unwinds it)
                f = semantic.site_frame()
                frame, lasti = id(f), f.f_lasti
                del f
            except ValueError:  # (no Python frame: closed at the interpreter's exit, a breaker)
                frame = lasti = None
            cut = _cut_short(b, running[4], frame, lasti)
            if cut is not None and b.cut_short is None:  # (an inner loop's, closed first, stays:
                # the outer one's close found nothing and lost it, a breaker)
                b.cut_short = cut
        # The kernel left the loop (break, return) at iteration `at`. With replay on it can only
        # leave at a traced iteration (a break in a replayed one is never seen, and the program
        # is wrong); verify's full pass sees the iterations replay skips and names the one left.
        if skipped and b.left_range is None:
            b.left_range = (where[0], where[1], at, r[at])
        raise
    finally:
        if not check and not b.finished:  # (finished: the collector closes it after a failed launch)
            if left is not None:  # (left early: the iterations up to it; a reason if none replayed)
                n = left + 1
                why = why or (f"left at iteration {left} (a break, a return, an error, or its "
                              f"iterator left unfinished: a zip with a shorter iterable)")
            _log(b, (where[0], where[1]), n, replayed, why)
        for i in range(len(b.ranges) - 1, -1, -1):  # (its own: loops may end out of order)
            if b.ranges[i] is running:
                # (closed while loops begun after it run: its iterator kept past a break, and
                # dropped in their body. They recorded into its lists, which go with it: they
                # do not nest, as generators advanced together, a breaker's raw TypeError)
                for e in b.ranges[i + 1:]:
                    e[3] = e[3] or _CLOSED_INSIDE
                del b.ranges[i]
                break
        if owner:
            b._track = b._acc = None
