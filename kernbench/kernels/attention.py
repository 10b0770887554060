"""Mesh ring-attention kernels: prefill (K/V travel) and decode (partial (m, l, o) travel).

Written only against ``tl``, like any user's kernel. Data layout in each rank's memory space
(row-major, f16):

    q: (S_q, h_q, d_head)        this rank's query rows (prefill: its share; decode: shared rows)
    k, v: (S_kv_per_rank, h_kv, d_head)   this rank's share of the sequence
    o: (S_q, h_q, d_head)        output

GQA: query head ``h`` uses K/V head ``h // (h_q // h_kv)``. The ``G = h_q // h_kv`` query heads of a
group sit next to each other in a row of ``q``, so a block of ``rows`` query rows of one group is one
strided 2-D load of shape (rows, G * d_head), viewed as (rows * G, d_head): all G heads are folded
against the group's K/V block by one dot.

Every fold uses the online-softmax recurrence on running (m, l, o), with scores scaled by
1/sqrt(d_head) (folded into Q) and f32 statistics:

    s = q k^T;  m' = max(m, rowmax s);  p = exp(s - m');  a = exp(m - m')
    l' = a l + rowsum p;  o' = a o + p v;  at the end  out = o / l     (normalised once)

See docs/kernels.md for the schedule, what overlaps and the block-size choices.
"""
from __future__ import annotations

import math
from dataclasses import replace

__all__ = [
    "attention_mesh_kv_kernel",
    "attention_mesh_mlo_kernel",
    "DEFAULT_BLOCK_Q",
    "DEFAULT_BLOCK_KV",
    "DEFAULT_DECODE_BLOCK_KV",
]

F16 = "f16"
F32 = "f32"
F16_BYTES = 2
#: query rows per head in one block (the dot has block_q * G rows)
DEFAULT_BLOCK_Q = 64
#: K/V rows in one block travelling the line (and one DMA load)
DEFAULT_BLOCK_KV = 512
#: K/V rows per DMA load in decode (no travel: K/V stay put)
DEFAULT_DECODE_BLOCK_KV = 2048


def _view(h, shape):
    """A metadata-only view: same buffer id, another shape (emits nothing)."""
    return replace(h, shape=tuple(shape))


def _check_shapes(kernel: str, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis, **blocks):
    """The kernel's shape arguments, checked before any command: a clear ValueError instead of
    heads never written (h_q not a multiple of h_kv) or a malformed ring."""
    sizes = dict(S_q=S_q, S_kv_per_rank=S_kv_per_rank, h_q=h_q, h_kv=h_kv, d_head=d_head,
                 n_ranks=n_ranks, **blocks)
    for name, v in sizes.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{kernel}: {name} must be a positive int, got {v!r}")
    if h_q % h_kv:
        raise ValueError(f"{kernel}: h_q = {h_q} is not a multiple of h_kv = {h_kv} (GQA: each K/V "
                         f"head serves h_q / h_kv query heads)")
    if rank_axis not in (0, 1):
        raise ValueError(f"{kernel}: rank_axis must be 0 (PEs of a cube) or 1 (cubes), got {rank_axis!r}")


def _rank(rank_axis, tl):
    """This program's rank, or None for a PE that stays silent (rank_axis 1: all but PE 0)."""
    if rank_axis != 0 and tl.program_id(axis=0) != 0:
        return None
    return tl.program_id(axis=rank_axis)


def _load_q(tl, q_ptr, q0, rows, g, G, h_q, d, scale):
    # rows x (G*d) of group g starting at row q0, row stride h_q*d elements
    q = tl.load(q_ptr + (q0 * h_q + g * G) * d * F16_BYTES, shape=(rows, G * d), dtype=F16, stride=h_q * d)
    return _view(q, (rows * G, d)) * scale  # f16, scaled once instead of every score block


def _load_kv(tl, ptr, k0, n, g, h_kv, d, after):
    return tl.load(ptr + (k0 * h_kv + g) * d * F16_BYTES, shape=(n, d), dtype=F16, stride=h_kv * d, after=after)


def _init_stats(tl, R, d):
    return (tl.full((R, 1), -math.inf, dtype=F32), tl.zeros((R, 1), dtype=F32), tl.zeros((R, d), dtype=F32))


def _fold(tl, q, k, v, m, l, o):
    """Fold one K/V block into the running (m, l, o) of the query block q."""
    s = tl.dot(q, tl.trans(k))  # (R, n) f32
    m_new = tl.maximum(m, tl.max(s, axis=-1))
    p = tl.exp(s - m_new)  # unnormalised: the division by l happens once, at the end
    alpha = tl.exp(m - m_new)
    l = l * alpha + tl.sum(p, axis=-1)
    o = o * alpha + tl.dot(tl.cast(p, F16), v)
    return m_new, l, o


def _merge(tl, m, l, o, m2, l2, o2):
    """Merge two partial states of the same query rows (the same recurrence, block-free)."""
    m_new = tl.maximum(m, m2)
    a = tl.exp(m - m_new)
    b = tl.exp(m2 - m_new)
    return m_new, l * a + l2 * b, o * a + o2 * b


def _store_out(tl, o_ptr, q0, rows, g, G, h_q, d, o, l):
    out = tl.cast(o / l, F16)
    tl.store(o_ptr + (q0 * h_q + g * G) * d * F16_BYTES, _view(out, (rows, G * d)), stride=h_q * d)


def attention_mesh_kv_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis=0,
    block_q=DEFAULT_BLOCK_Q, block_kv=DEFAULT_BLOCK_KV, *, tl,
):
    """Prefill ring attention: K/V blocks travel the open line both ways.

    Each rank keeps its query rows and its 1/n_ranks of K and V. For every (K/V group, query
    block) and every K/V block index b: the rank loads its own block b, sends it east and west and
    folds it; then for s = 1 .. n_ranks - 1 it receives block b of rank - s's chunk (from W) and of
    rank + s's (from E), passes each on in the direction it was going, and folds it. Every rank
    folds every chunk exactly once; no merge across ranks is needed.

    Block-major order (block b of every chunk before block b + 1) keeps what travels in step:
    a block a rank passes on at step s is the one its neighbour folds at step s + 1, right after.
    (Chunk by chunk, the neighbour would want it only a whole chunk later, and a chunk per
    direction would wait in SRAM behind a send short of credits.) A recv (or load) of the block
    folded at position f is posted only once fold f - 2 is done: double buffering, so the next
    block travels while this one computes and SRAM holds about two blocks per direction.
    """
    _check_shapes("attention_mesh_kv_kernel", S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks,
                  rank_axis, block_q=block_q, block_kv=block_kv)
    rank = _rank(rank_axis, tl)
    if rank is None:
        return
    G = h_q // h_kv
    d = d_head
    bq = min(block_q, S_q)
    bkv = min(block_kv, S_kv_per_rank)
    scale = 1.0 / math.sqrt(d)
    east, west = rank + 1 < n_ranks, rank > 0
    blocks = [(k0, min(bkv, S_kv_per_rank - k0)) for k0 in range(0, S_kv_per_rank, bkv)]

    for g in range(h_kv):
        for q0 in range(0, S_q, bq):
            rows = min(bq, S_q - q0)
            q = _load_q(tl, q_ptr, q0, rows, g, G, h_q, d, scale)
            m, l, o = _init_stats(tl, rows * G, d)
            done = []  # o after each fold: the double-buffering gate

            def gate(done=done):
                return done[-2] if len(done) >= 2 else None

            for k0, n in blocks:  # block-major: block b of every chunk before block b + 1
                # own block: load, send both ways, fold
                kb = _load_kv(tl, k_ptr, k0, n, g, h_kv, d, gate())
                vb = _load_kv(tl, v_ptr, k0, n, g, h_kv, d, gate())
                for direction, wired in (("E", east), ("W", west)):
                    if wired:
                        tl.send(dir=direction, src=kb)
                        tl.send(dir=direction, src=vb)
                m, l, o = _fold(tl, q, kb, vb, m, l, o)
                done.append(o)
                for step in range(1, n_ranks):
                    # block b of rank - step's chunk arrives from W and goes on E; of
                    # rank + step's from E, on W
                    for src_dir, fwd_dir, forward, has in (
                            ("W", "E", east, rank - step >= 0), ("E", "W", west, rank + step < n_ranks)):
                        if not has:
                            continue
                        kb = tl.recv(dir=src_dir, shape=(n, d), dtype=F16, after=gate())
                        vb = tl.recv(dir=src_dir, shape=(n, d), dtype=F16, after=gate())
                        if forward:
                            tl.send(dir=fwd_dir, src=kb)
                            tl.send(dir=fwd_dir, src=vb)
                        m, l, o = _fold(tl, q, kb, vb, m, l, o)
                        done.append(o)
            _store_out(tl, o_ptr, q0, rows, g, G, h_q, d, o, l)


def attention_mesh_mlo_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis=0,
    block_kv=DEFAULT_DECODE_BLOCK_KV, *, tl,
):
    """Decode ring attention: K/V stay put, partial (m, l, o) statistics travel the line.

    Every rank holds the same S_q query rows (decode: 1 per sequence) and 1/n_ranks of K and V.
    Per K/V group it streams its own K/V blocks from memory with DMA and folds them into a partial
    (m, l, o); it sends that partial east and west, and for s = 1 .. n_ranks - 1 receives the
    partials of rank - s (from W) and rank + s (from E), passes each on, and merges it. Every rank
    ends with the final output of all query rows. Group g's exchange runs on the links while
    group g + 1 streams and computes.
    """
    _check_shapes("attention_mesh_mlo_kernel", S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks,
                  rank_axis, block_kv=block_kv)
    rank = _rank(rank_axis, tl)
    if rank is None:
        return
    G = h_q // h_kv
    d = d_head
    R = S_q * G
    bkv = min(block_kv, S_kv_per_rank)
    scale = 1.0 / math.sqrt(d)
    east, west = rank + 1 < n_ranks, rank > 0

    for g in range(h_kv):
        q = _load_q(tl, q_ptr, 0, S_q, g, G, h_q, d, scale)
        m, l, o = _init_stats(tl, R, d)
        done = []
        for k0 in range(0, S_kv_per_rank, bkv):
            n = min(bkv, S_kv_per_rank - k0)
            gate = done[-2] if len(done) >= 2 else None
            kb = _load_kv(tl, k_ptr, k0, n, g, h_kv, d, gate)
            vb = _load_kv(tl, v_ptr, k0, n, g, h_kv, d, gate)
            m, l, o = _fold(tl, q, kb, vb, m, l, o)
            done.append(o)
        own = (m, l, o)
        for direction, wired in (("E", east), ("W", west)):
            if wired:
                for t in own:
                    tl.send(dir=direction, src=t)
        for step in range(1, n_ranks):
            for src_dir, fwd_dir, forward, has in (
                ("W", "E", east, rank - step >= 0), ("E", "W", west, rank + step < n_ranks)):
                if not has:
                    continue
                part = (tl.recv(dir=src_dir, shape=(R, 1), dtype=F32),
                        tl.recv(dir=src_dir, shape=(R, 1), dtype=F32),
                        tl.recv(dir=src_dir, shape=(R, d), dtype=F32))
                if forward:
                    for t in part:
                        tl.send(dir=fwd_dir, src=t)
                m, l, o = _merge(tl, m, l, o, *part)
        _store_out(tl, o_ptr, 0, S_q, g, G, h_q, d, o, l)
