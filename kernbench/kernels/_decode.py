"""Decode ring attention: partial (m, l, o) travel the open line (see kernbench.kernels.attention)."""
from __future__ import annotations

import math

from ._common import (DEFAULT_DECODE_BLOCK_KV, F32, _check_shapes, _fold, _init_stats, _load_kv,
                      _load_q, _merge, _rank, _store_out)

__all__ = ["attention_mesh_mlo_kernel"]


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
