"""Decode ring attention: K/V stay put, per-group partials travel the open line
(see kernbench.kernels.attention for the layout, docs/kernels.md for the schedule).

1. **Folds**, every GQA group's first: one software pipeline over all groups' K/V blocks. The
   score dot of fold t + 1 is issued before the P.V dots of fold t, so the GEMM unit always has
   a dot while the vector unit works: fold t's softmax runs under the P.V of fold t - 1 (issued
   right after S(t); the event record, docs/kernels.md); the loads of fold t wait for the
   scores of fold t - 2 (about two blocks live). P.V may be split into column pieces, multiples of
   the array's width (same folds, same cycles), so the partial o is born cut into messages. After
   a group's last fold its partial is normalised once: (lse = (m, log l), o / l).
2. **One exchange for all groups**, after the last fold. The west half of the line scans eastward
   (each rank merges the prefix from W with its own partial and forwards it E, piece by piece), the
   east half westward; the two centre ranks swap their halves, merge them into the final output,
   cast it to f16 and broadcast it back out to the ends.
3. **Stores** last, behind every load on the in-order DMA unit.
"""
from __future__ import annotations

import math

from ._common import (DEFAULT_DECODE_BLOCK_KV, F16, F16_BYTES, F32, M_FLOOR, _causal_mask, _check_shapes, causal_flag, _load_f16, _load_kv,
                      _load_q, _rank, _view)

__all__ = ["attention_mesh_mlo_kernel"]

#: the modelled PE (docs/hardware-model.md defaults) as the kernel plans with it: array width,
#: vector lanes and pipeline latency, link bytes per cycle and hop latency. They only choose the
#: piece width of the exchange (``_piece_cols``); results never depend on them.
ARRAY_COLS, LANES, VEC_LATENCY, LINK_BYTES, HOP = 32, 64, 8, 32, 50
#: the loads of fold t wait for the scores of fold t - GATE_DEPTH: on the GEMM unit, S(t) follows
#: S(t - 2), PV(t - 3), S(t - 1), PV(t - 2), so the block has those dots' time to land, and about
#: two blocks are live (one less and S(t) waits for its K block behind PV(t - 2) alone: at t = 1,
#: for the whole load)
GATE_DEPTH = 2


def _piece_cols(d, R, n_ranks, h_kv):
    """Column width of the o pieces the exchange sends: d / k for a k that keeps pieces a multiple
    of the array's width (P.V split so costs no extra fold). Smaller pieces shorten each hop of the
    chain (a piece is received whole before it is merged), larger ones cost fewer vector commands
    of VEC_LATENCY each; this picks the width with the smallest estimated tail of the exchange:

        (hops to the centre) x (merge hop + broadcast hop) + h_kv x (centre's vector per group)

    with a merge hop = serialisation + HOP + 2 vector ops (the lse's 7-op hop at the least), and
    per group 13 + 3k ops forwarding, (8 + 4k) / 2 settling and k - 1 assembling (docs/kernels.md)."""
    def op(n):
        return -(-n // LANES) + VEC_LATENCY

    small = 2 * -(-R // LANES) + VEC_LATENCY  # an (R, 1) op: 1 to 4 cycles an issue slot
    best = None
    for w in [w for w in range(ARRAY_COLS, d, ARRAY_COLS) if d % w == 0] + [d]:
        k, el = d // w, R * w
        hop = max(-(-4 * el // LINK_BYTES) + HOP + 2 * op(el), 1 + HOP + 7 * small)
        bcast = -(-2 * el // LINK_BYTES) + HOP
        per_group = 13 * small + 3 * k * op(el) + (8 * small + 4 * k * op(el)) / 2 + (k - 1) * op(R * d)
        est = ((n_ranks + 1) // 2 - 1) * (hop + bcast) + h_kv * per_group
        if best is None or est < best[0]:
            best = (est, w)
    return best[1]


def _probs(tl, s, m):
    """Stage 2 (vector, what P.V waits for): m' = max(m, rowmax s) (m None: a group's first fold),
    p = exp(s - m') unnormalised (the division by l happens once, after the last fold), and p in
    f16 for the array. Returns (m', p, p16)."""
    rm = tl.max(s, axis=-1)
    # (a group's first fold: m' no lower than M_FLOOR, as prefill's m starts: a block of -inf
    # scores gives p = 0, not exp(-inf - -inf) = NaN, and masked keys weigh 0)
    m_new = tl.maximum(rm, M_FLOOR) if m is None else tl.maximum(m, rm)
    p = tl.exp(s - m_new)
    return m_new, p, tl.cast(p, F16)



def _fold_stats(tl, s, m, l, q_pos0, k_pos0, G, causal):
    """Stage 2 of a decode fold on scores ``s`` (R, n) f32 of keys k_pos0.. against queries
    q_pos0..: the causal mask where the block reaches past the newest query, then :func:`_probs`
    and l' = a l + rowsum p with a = exp(m - m') (m, l None: a group's first fold, a None, l' =
    rowsum p). Returns (m', p16, a, l')."""
    if causal and k_pos0 + s.shape[1] - 1 > q_pos0:
        s = _causal_mask(tl, s, q_pos0, k_pos0, G)
    m_new, p, p16 = _probs(tl, s, m)
    if m is None:  # (l from L_FLOOR: see _normalise)
        return m_new, p16, None, tl.sum(p, axis=-1) + L_FLOOR
    alpha = tl.exp(m - m_new)
    return m_new, p16, alpha, l * alpha + tl.sum(p, axis=-1)


#: the least l a partial is divided by (a rank whose every key scored -inf has l = 0)
L_FLOOR = 1e-30


def _normalise(tl, m, l, o_pieces):
    """A group's finished partial: (lse, its o pieces divided by l), lse = (m, log l), each (R, 1)
    f32: the log-sum-exp m + log l kept as its two terms, since one f32 holding their sum keeps
    log l only to the step of m's magnitude (at |m| ~ 1e6, 0.125: log 2 would be 0.75, and the
    merge weights of a 2:1 split 0.68:0.32). l is 0 only where the rank sees none of its keys, or
    every one it sees scores -inf (a seen key of finite score adds at least exp(0) = 1 to it): l
    read as at least L_FLOOR, the partial there is o = 0 with lse = (M_FLOOR, log L_FLOOR)
    (finite: two such partials merge without NaN), which every merge with a seen key weighs 0;
    any other l is itself."""
    inv = 1.0 / l
    return (m, tl.log(l)), [oc * inv for oc in o_pieces]


def _send_lse(tl, direction, lse):
    """Send a partial's lse, its two (R, 1) f32 terms, m first."""
    for x in lse:
        tl.send(dir=direction, src=x)


def _recv_lse(tl, direction, R):
    """Receive a partial's lse sent by :func:`_send_lse`: (m, log l), each (R, 1) f32."""
    return tuple(tl.recv(dir=direction, shape=(R, 1), dtype=F32) for _ in range(2))


def _piece_selectors(tl, n_pc):
    """Masks (1, n_pc, 1) selecting column piece j = 1..n_pc-1 (None for one piece): made once,
    reused by every :func:`_store_pieces`."""
    if n_pc == 1:
        return None
    col = tl.arange(0, n_pc)
    return [_view(col == j, (1, n_pc, 1)) for j in range(1, n_pc)]


def _store_pieces(tl, o_ptr, g, pieces, col_is, S_q, G, d, h_q):
    """Store group g's output, held as column pieces (R, cw) f16 (R = S_q * G rows, n_pc pieces
    of cw = d / n_pc columns), into o (S_q, h_q, d): the pieces assembled into (R, n_pc, cw),
    row-major (R, d), by one select a piece, then one strided store."""
    out = pieces[0]
    if col_is is not None:
        R, cw = out.shape
        out = tl.where(col_is[0], _view(pieces[1], (R, 1, cw)), _view(pieces[0], (R, 1, cw)))
        for j in range(2, len(pieces)):
            out = tl.where(col_is[j - 1], _view(pieces[j], (R, 1, cw)), out)
    tl.store(o_ptr + g * G * d * F16_BYTES, _view(out, (S_q, G * d)), stride=h_q * d, dtype=F16)


def _lse_weights(tl, lse_a, lse_b, forward, received="a"):
    """Merge weights of two normalised partials whose lse are (m, log l) pairs. With M = max(m_a,
    m_b), t_x = log l_x + (m_x - M) is lse_x - M, kept exact however large m is (the m's
    difference first: Sterbenz, or a weight that underflows anyway); w = e^lse_a / (e^lse_a +
    e^lse_b) = sigmoid(delta), delta = t_a - t_b, and u = 1 - w. With ``forward``, the merged
    lse: (M, max(t_a, t_b) - log(sigmoid(|delta|))), the log of the larger weight, >= 1/2, so
    exact where the other underflows; M is what it sends first, one op after the m's arrive.
    ``received`` ("a" or "b"), the partial that comes over the link: the ops on the other's
    log l go first, so those after its log l lands are t, delta, |delta|, sigmoid, log, max and
    a sub. Returns (w, u, lse or None)."""
    (m_a, ll_a), (m_b, ll_b) = lse_a, lse_b
    big = tl.maximum(m_a, m_b)
    d_a, d_b = m_a - big, m_b - big
    if received == "a":
        t_b = ll_b + d_b
        t_a = ll_a + d_a
    else:
        t_a = ll_a + d_a
        t_b = ll_b + d_b
    delta = t_a - t_b
    lse = None
    if forward:
        lse = (big, tl.maximum(t_a, t_b) - tl.log(tl.sigmoid(abs(delta))))
    w = tl.sigmoid(delta)
    return w, 1.0 - w, lse


def attention_mesh_mlo_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis=0,
    block_kv=DEFAULT_DECODE_BLOCK_KV, *, causal=False, tl,
):
    """Decode ring attention: K/V stay put, per-group partials (lse, o / l) travel the line.

    Every rank holds the same ``S_q`` query rows ``q (S_q, h_q, d_head)`` and its contiguous share
    ``k, v (S_kv_per_rank, h_kv, d_head)`` of the sequence (rank r: positions [r * S_kv_per_rank,
    (r + 1) * S_kv_per_rank)), all f16 row-major, and writes the final ``o (S_q, h_q, d_head)`` f16
    of every query row. A dot has ``S_q * h_q / h_kv`` rows (all query rows of a GQA group);
    ``block_kv`` keys are one DMA load, so the f32 score tile is (S_q * h_q / h_kv, block_kv).

    ``causal=True``: query row i sits at global position ``n_ranks * S_kv_per_rank - S_q + i`` (the
    S_q newest tokens: chunked or speculative decode) and attends keys at positions <= its own.
    The newest row sees every key, so no block is wholly above the diagonal; blocks that reach past
    the oldest query row are masked.

    Raises ValueError (a KernelError naming the PE and line, at launch) before any command for
    shapes the kernel cannot run, a ``causal`` that is not a bool, or causal with more query rows
    than keys. See docs/kernels.md for the schedule, what overlaps and the bounds.
    """
    name = "attention_mesh_mlo_kernel"
    causal = causal_flag(name, causal)
    S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, block_kv = _check_shapes(
        name, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis, causal, tl=tl, block_kv=block_kv)
    if causal and S_q > n_ranks * S_kv_per_rank:
        raise ValueError(f"{name}: causal needs S_q <= n_ranks * S_kv_per_rank (every query row is one "
                         f"of the context's tokens), got S_q {S_q} > {n_ranks} * {S_kv_per_rank}")
    rank = _rank(rank_axis, tl)
    if rank is None:
        return
    G = h_q // h_kv
    d = d_head
    R = S_q * G
    S = S_kv_per_rank
    bkv = min(block_kv, S)
    scale = 1.0 / math.sqrt(d)
    q_pos0 = n_ranks * S - S_q  # global position of query row 0
    cw = _piece_cols(d, R, n_ranks, h_kv) if n_ranks > 1 else d  # column width of an o piece
    n_pc = d // cw

    def load_v(k0, n, g, c, after):
        """Column piece c (n, cw) of V block (k0, n) of group g."""
        return _load_f16(tl, "v", v_ptr + ((k0 * h_kv + g) * d + c * cw) * F16_BYTES, shape=(n, cw),
                       stride=h_kv * d, after=after)

    # ---------------------------------------------------------------- 1. folds, all groups
    folds = [(g, k0, min(bkv, S - k0), b == 0)
             for g in range(h_kv) for b, k0 in enumerate(range(0, S, bkv))]
    q, m, l, o = {}, {}, {}, {}  # group -> queries and running stats (o: column pieces (R, cw))
    lse, on = {}, {}  # group -> normalised partial: lse (m, log l) (R, 1) each, o / l pieces
    pending = None  # (group, first, last, alpha, p16, V pieces): the fold whose P.V is next
    scores = []  # s of every fold so far: the gates of later loads

    def update(g, first, last, alpha, pv):
        """o update of a fold once its P.V is issued; the group's normalisation after its last."""
        o[g] = pv if first else [oc * alpha + pc for oc, pc in zip(o[g], pv)]
        if last:
            lse[g], on[g] = _normalise(tl, m[g], l[g], o[g])

    for t, (g, k0, n, first) in enumerate(folds):
        last = t + 1 == len(folds) or folds[t + 1][0] != g
        if t == 0:
            q[g] = _load_q(tl, q_ptr, 0, S_q, g, G, h_q, d, scale)
        gate = scores[t - GATE_DEPTH] if t >= GATE_DEPTH else None
        kb = _load_kv(tl, k_ptr, k0, n, g, h_kv, d, gate, what="k")
        vb = [load_v(k0, n, g, c, gate) for c in range(n_pc)]
        if last and g + 1 < h_kv:
            # the next group's queries, a fold ahead: the score dot that opens the group would
            # otherwise wait for their scaling behind this fold's softmax on the vector unit
            q[g + 1] = _load_q(tl, q_ptr, 0, S_q, g + 1, G, h_q, d, scale)
        s = tl.dot(q[g], tl.trans(kb))  # ahead of the previous fold's P.V on the GEMM unit
        scores.append(s)
        if pending is not None:
            pg, pfirst, plast, palpha, pp16, pvb = pending
            pv = [tl.dot(pp16, vc) for vc in pvb]
        # stage 2 of this fold before the previous fold's o update: it needs only the scores
        m[g], p16, alpha, l[g] = _fold_stats(tl, s, None if first else m[g], None if first else l[g],
                                             q_pos0, rank * S + k0, G, causal)
        if pending is not None:
            update(pg, pfirst, plast, palpha, pv)
        pending = (g, first, last, alpha, p16, vb)
    pg, pfirst, plast, palpha, pp16, pvb = pending
    update(pg, pfirst, plast, palpha, [tl.dot(pp16, vc) for vc in pvb])

    # ---------------------------------------------------------------- 2. one exchange
    finals = {}  # group -> final output pieces (R, cw) f16
    if n_ranks == 1:
        for g in range(h_kv):
            finals[g] = [tl.cast(x, F16) for x in on[g]]
    else:
        c = (n_ranks + 1) // 2  # ranks [0, c) scan eastward, [c, n) westward
        west = rank < c
        toward, away = ("E", "W") if west else ("W", "E")
        centre = rank in (c - 1, c)
        end = rank in (0, n_ranks - 1)  # nothing comes from, nor goes to, beyond it

        def recv_partial(direction):
            return (_recv_lse(tl, direction, R),
                    [tl.recv(dir=direction, shape=(R, cw), dtype=F32) for _ in range(n_pc)])

        half = {}  # group -> this half's partial up to and including this rank

        def forward(g):
            """Merge the partial from the far side of the half with our own and (off the centre)
            send it on, piece by piece: the lse first, it is what the next rank's weights wait for."""
            send = not centre
            if end:
                half[g] = (lse[g], on[g])
                if send:
                    _send_lse(tl, toward, lse[g])
                    for x in on[g]:
                        tl.send(dir=toward, src=x)
                return
            lse_in, o_in = recv_partial(away)
            w, u, lse_h = _lse_weights(tl, lse_in, lse[g], forward=True)
            if send:
                _send_lse(tl, toward, lse_h)
            own = [x * u for x in on[g]]
            out = []
            for xi, xo in zip(o_in, own):
                x = xi * w + xo
                if send:
                    tl.send(dir=toward, src=x)
                out.append(x)
            half[g] = (lse_h, out)

        def settle(g):
            """Centre, group g: the two centres take the groups in turns. The one whose turn it is
            receives the other half's partial, merges it with its own half's into the f16 output and
            sends that back across; the other sends its half's partial and receives the output. Both
            broadcast the output away from the centre."""
            lse_h, o_h = half[g]
            if (g % 2 == 0) == west:
                lse_o, o_o = recv_partial(toward)
                w, u, _ = _lse_weights(tl, lse_h, lse_o, forward=False, received="b")
                finals[g] = [tl.cast(xh * w + xo * u, F16) for xh, xo in zip(o_h, o_o)]
                for x in finals[g]:
                    tl.send(dir=toward, src=x)
            else:
                _send_lse(tl, toward, lse_h)
                for x in o_h:
                    tl.send(dir=toward, src=x)
                finals[g] = [tl.recv(dir=toward, shape=(R, cw), dtype=F16) for _ in range(n_pc)]
            if not end:
                for x in finals[g]:
                    tl.send(dir=away, src=x)

        if centre:
            lag = 1  # settle group g after forwarding g + 1: the other half's partial has landed
            for g in range(h_kv):
                forward(g)
                if g >= lag:
                    settle(g - lag)
            for g in range(max(0, h_kv - lag), h_kv):
                settle(g)
        else:
            for g in range(h_kv):
                forward(g)
            for g in range(h_kv):
                finals[g] = [tl.recv(dir=toward, shape=(R, cw), dtype=F16) for _ in range(n_pc)]
                if not end:
                    for x in finals[g]:
                        tl.send(dir=away, src=x)

    # ---------------------------------------------------------------- 3. stores, after every load
    # each group's pieces assembled into (R, n_pc, cw), row-major (R, d), by one select a piece
    col_is = _piece_selectors(tl, n_pc)
    for g in range(h_kv):
        _store_pieces(tl, o_ptr, g, finals[g], col_is, S_q, G, d, h_q)
