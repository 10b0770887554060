"""Prefill ring attention: K/V blocks travel the open line (see kernbench.kernels.attention).

The schedule, in three layers:

- a **phase** is one K/V group and one query block (causal: the pair of query blocks i of this
  rank's two zigzag chunks, so every rank does the same work in every phase);
- within a phase, K/V **arrivals** come block-major: this rank's own block b (loaded, sent both
  ways), then block b of rank - s's share from W and of rank + s's from E for s = 1 .. n - 1,
  each passed on in the direction it was travelling;
- every (arrival, query block) pair that the causal mask does not rule out is a **fold**, and the
  folds of the whole launch form one software pipeline: the score dot of fold t + 1 is issued
  before the P.V dot of fold t, across arrivals, query blocks and phases, so the GEMM unit always
  has a dot while the vector unit works: fold t's softmax runs under P.V(t - 1), the dot issued
  right after S(t), and fold t - 1's o update under S(t + 1) (the event record, docs/kernels.md).
"""
from __future__ import annotations

import math
from collections import deque

from ._common import (DEFAULT_BLOCK_KV, DEFAULT_BLOCK_Q, F16, _causal_mask, _check_shapes, causal_flag, _init_stats,
                      _load_kv, _load_q, _rank, _store_out)

__all__ = ["attention_mesh_kv_kernel"]

#: a recv (or load) of the block of fold t waits for fold t - GATE_DEPTH to be done: deep enough
#: that a block crosses the link while the pipeline still has a fold to compute, shallow enough
#: that SRAM holds only a few blocks per direction (docs/kernels.md, "Double buffering")
GATE_DEPTH = 2


def _scores(tl, q, k):
    """Stage 1 (GEMM): raw scores of one fold, (R, n) f32. Issued one fold ahead."""
    return tl.dot(q, tl.trans(k))


def _probs(tl, s, m):
    """Stage 2 (vector, the part P.V waits for): m' = max(m, rowmax s), p = exp(s - m'), and p
    in f16 for the array. Returns (m', p, p16)."""
    m_new = tl.maximum(m, tl.max(s, axis=-1))
    p = tl.exp(s - m_new)  # unnormalised: the division by l happens once, at the end
    return m_new, p, tl.cast(p, F16)


def _rescale(tl, m, m_new, l, p):
    """Stage 3 (vector, after P.V is issued): a = exp(m - m'), l' = a l + rowsum p -> (a, l')."""
    alpha = tl.exp(m - m_new)
    return alpha, l * alpha + tl.sum(p, axis=-1)


def _update_o(tl, o, alpha, pv):
    """Stage 4 (vector, once P.V is done): o' = a o + P.V."""
    return o * alpha + pv



class _QueryBlock:
    """One query block of a phase: its rows, global positions and running (m, l, o)."""

    __slots__ = ("q0", "rows", "pos0", "q", "m", "l", "o", "last")

    def __init__(self, q0, rows, pos0):
        self.q0, self.rows, self.pos0 = q0, rows, pos0
        self.q = self.m = self.l = self.o = None
        #: (source rank, first key row) of its last fold in the phase: its o is stored after it
        self.last = None


def attention_mesh_kv_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis=0,
    block_q=DEFAULT_BLOCK_Q, block_kv=DEFAULT_BLOCK_KV, *, causal=False, tl,
):
    """Prefill ring attention: K/V blocks travel the open line both ways.

    Each rank keeps its query rows ``q (S_q, h_q, d_head)`` and its share ``k, v (S_kv_per_rank,
    h_kv, d_head)`` (f16, row-major) and writes ``o (S_q, h_q, d_head)`` f16. Every rank folds every
    K/V block of the line exactly once per query block; no merge across ranks is needed.

    ``causal=True``: the sequence of ``n_ranks * S_q`` tokens is in the **zigzag** layout (cut
    into 2 n_ranks chunks, rank r holds chunks r and 2 n_ranks - 1 - r, for Q and K/V alike:
    :func:`kernbench.kernels.attention.zigzag_split` places it), query position i attends keys
    at positions <= i. Folds wholly above the diagonal are skipped (their blocks still travel),
    folds across it are masked. Needs ``S_q == S_kv_per_rank``, even.

    Block sizes: ``block_q`` query rows per head (a dot has ``block_q * h_q / h_kv`` rows),
    ``block_kv`` K/V rows per block travelling the line. Raises ValueError (a KernelError naming
    the PE and line, at launch) before any command for shapes the kernel cannot run.
    See docs/kernels.md for the schedule and what overlaps.
    """
    causal = causal_flag("attention_mesh_kv_kernel", causal)
    S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, block_q, block_kv = _check_shapes(
        "attention_mesh_kv_kernel", S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis, causal,
        tl=tl, block_q=block_q, block_kv=block_kv)
    if causal and (S_q != S_kv_per_rank or S_q % 2):
        raise ValueError(f"attention_mesh_kv_kernel: causal (zigzag layout) needs S_q == S_kv_per_rank "
                         f"and even (two equal chunks per rank), got S_q {S_q}, S_kv_per_rank {S_kv_per_rank}")
    rank = _rank(rank_axis, tl)
    if rank is None:
        return
    G = h_q // h_kv
    d = d_head
    scale = 1.0 / math.sqrt(d)
    east, west = rank + 1 < n_ranks, rank > 0
    n2 = 2 * n_ranks
    c = S_q // 2 if causal else S_kv_per_rank  # rows per chunk (one chunk per rank unless causal)

    def pos(r, row):
        """Global position of local row ``row`` of rank r (zigzag when causal)."""
        if not causal:
            return r * S_kv_per_rank + row
        return (r if row < c else n2 - 1 - r) * c + row % c

    # K/V blocks, aligned to the chunks so a block's positions are contiguous. Causal: block j of
    # the low chunk travels with block j of the high one, back to back at every step. From source
    # rank s, rank r folds a low block for both its query blocks when s < r and for one otherwise,
    # a high block only when s >= r: the pair is 2 folds whatever s and r, so every step of the
    # line has the non-causal kernel's shape. (Low blocks and high blocks in separate sweeps
    # load the high ranks early and the low ranks late within a sweep: GEMM 88-95% busy and
    # 35 MiB of blocks waiting on 64 cubes.)
    bkv = min(block_kv, c)
    chunk_blocks = [[(k0, min(bkv, cs + c - k0)) for k0 in range(cs, cs + c, bkv)]
                    for cs in ((0, c) if causal else (0,))]
    block_groups = list(zip(*chunk_blocks))  # (low j, high j) causal, (block j,) otherwise
    bq = min(block_q, c if causal else S_q)
    if causal:
        phases = [[(q0, min(bq, c - q0)), (c + q0, min(bq, c - q0))] for q0 in range(0, c, bq)]
    else:
        phases = [[(q0, min(bq, S_q - q0))] for q0 in range(0, S_q, bq)]
    # the last phase does the others' work (tl.range replay_last) when its query blocks are
    # as tall; causal phases differ in their diagonal folds
    phases_alike = not causal and all(rows == bq for ph in phases for _, rows in ph)
    # Causal: the phases whose query blocks lie in one K/V block (a run) fold the same blocks
    # whole and the same block on the diagonal, whose unmasked keys grow by a query block a
    # phase; so a run is a tl.range whose shapes move (shapes_move). When every block is whole
    # (bkv a multiple of bq, c of bkv) and steps follow (two ranks or more), each diagonal
    # fold is followed by a whole one and the pipeline issues the same commands in every
    # phase of a run but its first and its last (whose diagonal fold, one query block short of
    # the block, and the masked one after it hold as much work as a whole fold: the softmax
    # waiting before them is issued one fold sooner); otherwise one loop over every phase.
    moving = causal and n_ranks > 1 and bkv % bq == 0 and c % bkv == 0
    runs = ([range(j, j + bkv // bq) for j in range(0, len(phases), bkv // bq)] if moving
            else [range(len(phases))])

    def plan(qbs, src, k0, n):
        """The folds of one arrival: [(query block, first key row, key rows, masked)].

        Not causal: one unmasked fold of the whole block per query block. Causal: a block of
        another rank is wholly below a query block (folded whole) or wholly above it (skipped),
        since the two hold different chunks; this rank's own block may straddle the diagonal: it
        is folded as the keys every row sees (unmasked) plus the keys after the block's first
        query (masked, at most block_q of them), and the keys after its last query are skipped."""
        if not causal:
            return [(qb, k0, n, False) for qb in qbs]
        kmin = pos(src, k0)
        kmax = kmin + n - 1
        out = []
        for qb in qbs:
            qmin, qmax = qb.pos0, qb.pos0 + qb.rows - 1
            if kmax <= qmin:
                out.append((qb, k0, n, False))
            elif kmin <= qmax:
                seen = min(kmax, qmin) - kmin + 1  # keys every row of the block sees
                if seen > 0:
                    out.append((qb, k0, seen, False))
                first = k0 + max(seen, 0)
                after = min(kmax, qmax) - pos(src, first) + 1  # keys some rows see (masked)
                if after > 0:  # (none when the block's rows see exactly the first `seen`)
                    out.append((qb, first, after, True))
        return out

    # m' of the last GATE_DEPTH folds, in fold order: the gate of later recvs and loads (a
    # window of handles, which tl.range replay moves on with the iterations it skips)
    done = deque(maxlen=GATE_DEPTH)

    def gate():
        return done[0] if len(done) == GATE_DEPTH else None

    def arrive(g, qbs, src, came_from, fwd, k0, n):
        """The transfers of one arrival (block k0:k0+n of rank src's share, from direction
        ``came_from``, None for this rank's own); yield its folds (query block, masked, k, v, key
        position, whether it is the query block's last) for the pipeline below."""
        fl = plan(qbs, src, k0, n)
        if came_from is None:  # own block: load, send both ways
            sends = [dr for dr, wired in (("E", east), ("W", west)) if wired]
            whole = sends or any(fk == k0 and fn == n for _, fk, fn, _ in fl)
            kb = _load_kv(tl, k_ptr, k0, n, g, h_kv, d, gate(), what="k") if whole else None
            vb = _load_kv(tl, v_ptr, k0, n, g, h_kv, d, gate(), what="v") if whole else None
        else:
            kb = tl.recv(dir=came_from, shape=(n, d), dtype=F16, after=gate())
            vb = tl.recv(dir=came_from, shape=(n, d), dtype=F16, after=gate())
            sends = [fwd] if fwd else []
        for dr in sends:
            tl.send(dir=dr, src=kb)
            tl.send(dir=dr, src=vb)
        for qb, fk, fn, masked in fl:
            last = qb.last == (src, fk)
            if fk == k0 and fn == n:
                yield g, qb, masked, kb, vb, pos(src, k0), last
            else:  # part of an own block on the diagonal: its own loads
                yield (g, qb, masked, _load_kv(tl, k_ptr, fk, fn, g, h_kv, d, gate(), what="k"),
                       _load_kv(tl, v_ptr, fk, fn, g, h_kv, d, gate(), what="v"), pos(src, fk), last)

    # Ranks on both sides up to step `both`, then on one side only (W above the middle of the
    # line, E below it) up to step `far`
    both, far = min(rank, n_ranks - 1 - rank), max(rank, n_ranks - 1 - rank)
    side, side_fwd = ("W", "E" if east else None) if rank > both else ("E", "W" if west else None)

    def arrivals_backwards():
        """(src, k0, n) of every arrival of a phase, last first (in order, block-major: block b
        of every share before block b + 1; at each step W before E)."""
        for group in reversed(block_groups):
            for step in range(far, 0, -1):
                if step <= both or side == "E":
                    yield from ((rank + step, k0, n) for k0, n in reversed(group))
                if step <= both or side == "W":
                    yield from ((rank - step, k0, n) for k0, n in reversed(group))
            yield from ((rank, k0, n) for k0, n in reversed(group))

    def phase_indices():
        """Every phase, run by run (``runs`` above), each run a tl.range."""
        for run in runs:
            yield from tl.range(run.start, run.stop, replay_last=phases_alike, shapes_move=moving)

    def folds():
        """Emit the transfers of every arrival in order; yield its folds for the pipeline
        below. Phases start (query loads, fresh stats) as they are reached."""
        for g in tl.range(h_kv, replay_last=True, replay_first=causal):
            if causal:
                done.clear()  # (a group's first loads wait for none of the last group's folds)
            # tl.range (every loop here): each K/V group, each phase of a group and each step of
            # the line along a phase emit the same commands, their addresses moved by a constant
            # (causal phases differ in their diagonal folds: those are traced in full), so
            # kernbench traces a few and replays the rest (docs/language.md, "Loops"). A replayed
            # step runs no Python: what a phase must know about its arrivals (which fold is a
            # query block's last, after which its o is stored) is worked out before them. The
            # last K/V group is the others' work on other heads, and the last phase the
            # others' on other query rows when its blocks are as tall (replay_last: replayed,
            # not traced); a line's last step is not (it stores the query blocks' o). Causal,
            # a traced group runs every phase's Python, so groups carry nothing from one to the
            # next (the pipeline drained at the end, below) and groups 0 and 1 prove the loop
            # (replay_first): 2 traced instead of 3, for one exposed softmax per group.
            for ph in phase_indices():
                qbs = [_QueryBlock(q0, rows, pos(rank, q0)) for q0, rows in phases[ph]]
                left = len(qbs)
                for src, k0, n in arrivals_backwards():  # (most phases stop at the first)
                    for qb, fk, _, _ in reversed(plan(qbs, src, k0, n)):
                        if qb.last is None:
                            qb.last = (src, fk)
                            left -= 1
                    if not left:
                        break
                for qb in qbs:
                    qb.q = _load_q(tl, q_ptr, qb.q0, qb.rows, g, G, h_q, d, scale)
                    qb.m, qb.l, qb.o = _init_stats(tl, qb.rows * G, d)
                for group in block_groups:  # block-major: block b of every share before block b + 1
                    for k0, n in group:
                        yield from arrive(g, qbs, rank, None, None, k0, n)
                    # (a step's folds: the group's blocks against every query block)
                    fold_work = min(qb.rows for qb in qbs) * G * min(n for _, n in group)
                    settle(fold_work)
                    for step in tl.range(1, both + 1):
                        for k0, n in group:
                            yield from arrive(g, qbs, rank - step, "W", "E" if east else None, k0, n)
                        for k0, n in group:
                            yield from arrive(g, qbs, rank + step, "E", "W" if west else None, k0, n)
                    settle(fold_work)
                    for step in tl.range(both + 1, far + 1):
                        for k0, n in group:
                            yield from arrive(g, qbs, rank - step if side == "W" else rank + step,
                                              side, side_fwd, k0, n)
            if causal:
                yield None  # the group's folds drained (below)

    def finish(g, qb, masked, s, v, k_pos0, last, idx):
        """Stage 2 of fold ``idx`` (its scores issued), its P.V, and the l update; the o update
        waits in ``updates`` until the vector unit cannot stall on it (see below)."""
        if masked:
            s = _causal_mask(tl, s, qb.pos0, k_pos0, G)
        m_new, p, p16 = _probs(tl, s, qb.m)
        pv = tl.dot(p16, v)  # behind the scores issued so far on the GEMM unit
        alpha, qb.l = _rescale(tl, qb.m, m_new, qb.l, p)
        qb.m = m_new
        done.append(m_new)
        updates.append((n_scores, g, qb, alpha, pv, last))
        # An o update reads its P.V: emitted after the softmax of a fold whose scores the GEMM
        # unit computes after that P.V, it finds it done; emitted earlier, the in-order vector
        # unit would wait for it with the next softmax queued behind.
        while updates and updates[0][0] <= idx:
            update(*updates.popleft()[1:])

    def update(g, qb, alpha, pv, last):
        qb.o = _update_o(tl, qb.o, alpha, pv)
        if last:
            _store_out(tl, o_ptr, qb.q0, qb.rows, g, G, h_q, d, qb.o, qb.l)

    # The pipeline: a fold's softmax runs on the vector unit while the GEMM unit computes the
    # scores of the folds issued after it, so its P.V waits for nothing as long as those hold at
    # least as much work (score elements: QK^T and the softmax both scale with rows x keys). One
    # fold ahead when folds are alike; more behind a long fold followed by short ones (causal
    # diagonal folds), else its softmax would sit exposed in front of its P.V.
    ahead = deque()  # (fold arguments, score elements): scores issued, softmax not yet
    updates = deque()  # (scores issued before its P.V, o-update arguments)
    later = 0  # score elements of ahead[1:]
    n_scores = 0

    def settle(work):
        """Before a tl.range loop whose folds each hold at least ``work`` score elements: a fold
        waiting in ``ahead`` with more would hold the pipeline back for several of the loop's
        iterations (a full block before a ragged one's small folds), so the iterations tl.range
        compares would not be those it replays; its softmax is issued now. Otherwise the
        loop's first fold leaves ``ahead`` holding it alone, the same in every iteration."""
        if any(w > work for _, w in ahead):
            finish_ahead()

    def finish_ahead():
        """The softmax of every fold whose scores are issued."""
        nonlocal later
        while ahead:
            finish(*ahead.popleft()[0])
        later = 0

    def drain():
        """Every fold's softmax and o update issued: at a K/V group's end, so that no group's
        commands read the last one's tensors (its first loads wait for none of them either) and
        tl.range proves the repetition from groups 0 and 1 (replay_first)."""
        finish_ahead()
        while updates:
            update(*updates.popleft()[1:])

    for fold in folds():
        if fold is None:  # a K/V group's end: its folds finished and its o updated
            drain()
            continue
        g, qb, masked, kb, vb, k_pos0, last = fold
        s = _scores(tl, qb.q, kb)
        work = s.shape[0] * s.shape[1]
        if ahead:
            later += work
        ahead.append(((g, qb, masked, s, vb, k_pos0, last, n_scores), work))
        n_scores += 1
        while len(ahead) > 1 and later >= ahead[0][1]:
            args, _ = ahead.popleft()
            later -= ahead[0][1]
            finish(*args)
    drain()
