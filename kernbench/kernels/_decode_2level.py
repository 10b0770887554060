"""Two-level decode: every PE of every cube folds a share of the context, partials merge over E/W
inside each cube, then over N/S between the cubes' PE 0s (SFR install scope ``"two_level"``;
docs/kernels.md, "Two-level decode", has the schedule and the measured figures).

1. **Folds** over every (GQA group, K/V block) of the PE's share, as in ``_decode.py`` (online
   softmax, f32 statistics, q scaled in f32, P.V issued as column pieces, the loads of fold t gated
   on the scores of fold t - 2), but memory-bound: the 8 PEs of a cube share one memory channel, so
   the P.V of fold t is issued before the score dot of fold t + 1 (LOOKAHEAD), PE p > 0 cuts its
   first block short (STAGGER) and the last block is folded in shorter pieces (TAIL_BLOCK_KV).
   After a group's last fold its partial is normalised once: (lse = (m, log l), o / l).
2. **The exchange of group g runs under the folds of later groups**: it is emitted EXCHANGE_LAG
   folds after the group's last fold. Inside a cube the PEs form an open line on E/W: PE p receives
   the merged partial of PEs p + 1 .. P - 1 from E, merges its own in front and sends the result W,
   piece by piece (the lse first), so PE 0 ends with the cube's partial. Across cubes the PE 0s form
   an open line on N/S (cube c + 1 is south of cube c): the cubes north of the centre scan south,
   the others north; the two centre cubes swap their halves, both merge them (in the same operand
   order, so into the same bits), cast to f16 and broadcast the output away from the centre.
3. **Stores**: PE 0 of every cube stores group g's output after the loads of a fold
   STORE_LAG_GROUPS groups later (so the in-order DMA unit never waits for an output), the last
   groups' after every load. The other PEs store nothing.
"""
from __future__ import annotations

import math

from ._common import F16, F16_BYTES, F32, _check_block_counts, causal_flag, _load_f16, _load_kv, _load_q, _positive_ints
from ._decode import _fold_stats, _lse_weights, _normalise, _piece_selectors, _recv_lse, _send_lse, _store_pieces

__all__ = ["attention_decode_two_level_kernel", "DEFAULT_TWO_LEVEL_BLOCK_KV"]

#: K/V rows per DMA load (the score tile of a fold is (S_q * G, block_kv) f32)
DEFAULT_TWO_LEVEL_BLOCK_KV = 512
#: the loads of fold t wait for the scores of fold t - GATE_DEPTH (about two blocks in flight)
GATE_DEPTH = 2
#: a group's exchange is emitted this many folds after its last fold, behind the softmax of the
#: folds in between on the vector unit: its merges wait for the neighbours' partials, and should
#: not hold up a softmax the next score dot's loads are gated on
EXCHANGE_LAG = 1
#: PE 0 stores group g's output after the loads of the first fold of group g + STORE_LAG_GROUPS
STORE_LAG_GROUPS = 2
#: o pieces of this many columns (a multiple of the array's width: P.V split costs no fold) travel
#: the lines, so a hop forwards a piece as soon as it is merged
PIECE_COLS = 32
#: issue the score dot of fold t + 1 before the P.V of fold t (``_decode.py``'s GEMM-bound
#: pipeline). Off: with all 8 PEs of a cube sharing its memory channel the folds are memory-bound,
#: and that order only holds P.V(t) back until block t + 1 has landed (the last fold's P.V then
#: runs after the last byte: 739 cycles more at 32K on mesh8, 70,889 against 70,150)
LOOKAHEAD = False
#: PE p > 0 cuts its first block short by p / n_pes of a block, so the PEs' loads end at different
#: cycles: each load's DMA latency (docs/hardware-model.md) is then covered by the other PEs'
#: bursts instead of leaving the shared channel idle for all of them at once (5,694 cycles at
#: 32K on mesh8: 75,844 without it)
STAGGER = True
#: the last block of the last group is folded in blocks of at most this many keys: the score dot,
#: softmax and P.V left after the launch's last byte shrink with it (a fold of R = 8 rows costs
#: its GEMM about 10 cycles a key, and a PE whose cube-mates are done gets the whole channel,
#: 2 cycles a key); shorter still, the folds' fixed costs win (32K on mesh8: 512 keys 70,886
#: cycles, 256 70,150, 128 70,624, 64 71,820)
TAIL_BLOCK_KV = 256


def attention_decode_two_level_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, S_q, S_kv_per_pe, h_q, h_kv, d_head, n_pes, n_cubes,
    block_kv=DEFAULT_TWO_LEVEL_BLOCK_KV, *, causal=False, tl,
):
    """Decode attention on every PE of every cube: K/V stay put, partials merge on two levels.

    Launch with grid ``(n_pes, n_cubes)`` under ``ctx.install_sfr(scope="two_level")`` (the N/S
    line of cubes may be a ring; the kernel uses it as a line). PE p of cube c is rank ``r = c *
    n_pes + p`` and holds the context positions ``[r * S_kv_per_pe, (r + 1) * S_kv_per_pe)``:
    ``k, v (S_kv_per_pe, h_kv, d_head)`` (``ctx.shard(k.reshape(n_cubes * n_pes, S_kv_per_pe,
    h_kv, d_head), over="all")``). Every PE holds the same ``S_q`` query rows ``q (S_q, h_q,
    d_head)``. All f16 row-major. GQA: query head h reads K/V head ``h // (h_q // h_kv)``.

    The output ``o (S_q, h_q, d_head)`` f16 ends where ``attention_mesh_mlo_kernel`` with
    ``rank_axis=1`` leaves it: in ``o`` of PE 0 of every cube (all of them hold the full output).
    The other PEs do not write ``o``.

    ``causal=True``: query row i sits at global position ``n_cubes * n_pes * S_kv_per_pe - S_q +
    i`` and attends keys at positions <= its own (as ``attention_mesh_mlo_kernel``).

    Raises ValueError (a KernelError naming the PE and line, at launch) before any command for
    shapes the kernel cannot run, a grid other than ``(n_pes, n_cubes)``, or a bad ``causal``.
    """
    name = "attention_decode_two_level_kernel"
    causal = causal_flag(name, causal)
    S_q, S_kv_per_pe, h_q, h_kv, d_head, n_pes, n_cubes, block_kv = _positive_ints(
        name, S_q=S_q, S_kv_per_pe=S_kv_per_pe, h_q=h_q, h_kv=h_kv, d_head=d_head, n_pes=n_pes,
        n_cubes=n_cubes, block_kv=block_kv).values()
    if h_q % h_kv:
        raise ValueError(f"{name}: h_q = {h_q} is not a multiple of h_kv = {h_kv} (GQA: each K/V "
                         f"head serves h_q / h_kv query heads)")
    _check_block_counts(name, S_q, S_kv_per_pe, h_kv, block_kv=block_kv)
    grid = (tl.num_programs(axis=0), tl.num_programs(axis=1))
    if grid != (n_pes, n_cubes):
        raise ValueError(f"{name}: launch it with grid (n_pes, n_cubes) = ({n_pes}, {n_cubes}), got "
                         f"grid {grid}")
    n_ranks = n_pes * n_cubes
    if causal and S_q > n_ranks * S_kv_per_pe:
        raise ValueError(f"{name}: causal needs S_q <= n_cubes * n_pes * S_kv_per_pe (every query row "
                         f"is one of the context's tokens), got S_q {S_q} > {n_ranks} * {S_kv_per_pe}")
    pe, cube = tl.program_id(axis=0), tl.program_id(axis=1)
    rank = cube * n_pes + pe
    G = h_q // h_kv
    d = d_head
    R = S_q * G
    S = S_kv_per_pe
    bkv = min(block_kv, S)
    scale = 1.0 / math.sqrt(d)
    q_pos0 = n_ranks * S - S_q
    cw = PIECE_COLS if d % PIECE_COLS == 0 else d
    n_pc = d // cw

    def load_v(k0, n, g, c, after):
        return _load_f16(tl, "v", v_ptr + ((k0 * h_kv + g) * d + c * cw) * F16_BYTES, shape=(n, cw),
                       stride=h_kv * d, after=after)

    # ---------------------------------------------------------------- the exchange of one group
    def recv_partial(direction):
        return (_recv_lse(tl, direction, R),
                [tl.recv(dir=direction, shape=(R, cw), dtype=F32) for _ in range(n_pc)])

    def send_partial(direction, lse_x, o_x):
        _send_lse(tl, direction, lse_x)
        for x in o_x:
            tl.send(dir=direction, src=x)

    def merge_send(a, b, a_in, direction):
        """merge(a, b) of two partials (lse, pieces), the received one ``a_in`` ("a" or "b");
        with ``direction``, each piece is sent on as soon as it is merged (the lse first)."""
        (lse_a, o_a), (lse_b, o_b) = a, b
        w, u, lse = _lse_weights(tl, lse_a, lse_b, forward=True, received=a_in)
        if direction is not None:
            _send_lse(tl, direction, lse)
        own = [x * (w if a_in == "b" else u) for x in (o_a if a_in == "b" else o_b)]  # before arrival
        out = []
        for xi, xo in zip(o_b if a_in == "b" else o_a, own):
            x = xi * (u if a_in == "b" else w) + xo
            if direction is not None:
                tl.send(dir=direction, src=x)
            out.append(x)
        return lse, out

    def in_cube(partial):
        """E/W line: PE p merges the partial of PEs p+1.. (from E) behind its own, sends W."""
        if n_pes == 1:
            return partial
        west = "W" if pe > 0 else None
        if pe == n_pes - 1:
            send_partial("W", *partial)
            return None
        return merge_send(partial, recv_partial("E"), "b", west)

    def across_cubes(partial):
        """N/S line of PE 0s, reduce to the centre and broadcast back: the f16 output pieces."""
        if n_cubes == 1:
            return [tl.cast(x, F16) for x in partial[1]]
        c = (n_cubes + 1) // 2  # cubes [0, c) scan south, [c, n) north
        north = cube < c
        toward, away = ("S", "N") if north else ("N", "S")
        centre = cube in (c - 1, c)
        end = cube in (0, n_cubes - 1)
        if end:
            half = partial
            if not centre:
                send_partial(toward, *half)
        else:
            # north half: the prefix (cubes above) merges in front; south half: the suffix behind
            half = merge_send(recv_partial(away), partial, "a", None if centre else toward) if north else \
                merge_send(partial, recv_partial(away), "b", None if centre else toward)
        if centre:
            send_partial(toward, *half)
            other = recv_partial(toward)
            a, b = (half, other) if north else (other, half)
            w, u, _ = _lse_weights(tl, a[0], b[0], forward=False, received="b" if north else "a")
            final = [tl.cast(xa * w + xb * u, F16) for xa, xb in zip(a[1], b[1])]
        else:
            final = [tl.recv(dir=toward, shape=(R, cw), dtype=F16) for _ in range(n_pc)]
        if not end:
            for x in final:
                tl.send(dir=away, src=x)
        return final

    finals = {}  # group -> f16 output pieces (PE 0 only)

    def exchange(g):
        cube_partial = in_cube((lse[g], on[g]))
        if pe == 0:
            finals[g] = across_cubes(cube_partial)

    # ---------------------------------------------------------------- stores (PE 0)
    col_is = _piece_selectors(tl, n_pc) if pe == 0 else None
    stored = set()

    def store(g):
        _store_pieces(tl, o_ptr, g, finals[g], col_is, S_q, G, d, h_q)
        stored.add(g)

    # ---------------------------------------------------------------- folds, all groups
    starts = {g: list(range(0, S, bkv)) for g in range(h_kv)}
    if STAGGER and n_pes > 1 and pe > 0:
        # group 0's first block is shorter on PE p, so the PEs' loads end at different cycles
        n0 = bkv - (pe * bkv) // n_pes
        if 0 < n0 < min(bkv, S):
            starts[0] = [0] + list(range(n0, S, bkv))
    if TAIL_BLOCK_KV < bkv:
        # the launch's last block in shorter pieces: what follows its last byte (its softmax and
        # P.V) shrinks with them
        k0 = starts[h_kv - 1][-1]
        starts[h_kv - 1] = starts[h_kv - 1][:-1] + list(range(k0, S, TAIL_BLOCK_KV))
    folds = []
    for g in range(h_kv):
        ends = starts[g][1:] + [S]
        folds += [(g, k0, e - k0, b == 0) for b, (k0, e) in enumerate(zip(starts[g], ends))]
    q, m, l, o = {}, {}, {}, {}
    lse, on = {}, {}
    pending = None
    scores = []
    done = []  # (fold index, group) of groups normalised, in order, awaiting their exchange

    def update(t, g, first, last, alpha, pv):
        o[g] = pv if first else [oc * alpha + pc for oc, pc in zip(o[g], pv)]
        if last:
            lse[g], on[g] = _normalise(tl, m[g], l[g], o[g])
            done.append((t, g))

    def exchanges_due(t):
        while done and done[0][0] + EXCHANGE_LAG <= t:
            _, g = done.pop(0)
            exchange(g)

    for t, (g, k0, n, first) in enumerate(folds):
        last = t + 1 == len(folds) or folds[t + 1][0] != g
        if t == 0:
            q[g] = _load_q(tl, q_ptr, 0, S_q, g, G, h_q, d, scale)
        gate = scores[t - GATE_DEPTH] if t >= GATE_DEPTH else None
        kb = _load_kv(tl, k_ptr, k0, n, g, h_kv, d, gate, what="k")
        vb = [load_v(k0, n, g, c, gate) for c in range(n_pc)]
        if pe == 0 and first:
            for sg in sorted(finals):
                if sg not in stored and sg + STORE_LAG_GROUPS <= g:
                    store(sg)
        if last and g + 1 < h_kv:
            q[g + 1] = _load_q(tl, q_ptr, 0, S_q, g + 1, G, h_q, d, scale)
        if pending is not None and not LOOKAHEAD:
            pt, pg, pfirst, plast, palpha, pp16, pvb = pending
            pv = [tl.dot(pp16, vc) for vc in pvb]
        s = tl.dot(q[g], tl.trans(kb))
        scores.append(s)
        if pending is not None and LOOKAHEAD:
            pt, pg, pfirst, plast, palpha, pp16, pvb = pending
            pv = [tl.dot(pp16, vc) for vc in pvb]
        m[g], p16, alpha, l[g] = _fold_stats(tl, s, None if first else m[g], None if first else l[g],
                                             q_pos0, rank * S + k0, G, causal)
        if pending is not None:
            update(pt, pg, pfirst, plast, palpha, pv)
        exchanges_due(t)
        pending = (t, g, first, last, alpha, p16, vb)
    pt, pg, pfirst, plast, palpha, pp16, pvb = pending
    update(pt, pg, pfirst, plast, palpha, [tl.dot(pp16, vc) for vc in pvb])
    for _, g in done:
        exchange(g)
    if pe == 0:
        for g in range(h_kv):
            if g not in stored:
                store(g)
