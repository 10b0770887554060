"""Prefill ring attention: K/V blocks travel the open line (see kernbench.kernels.attention)."""
from __future__ import annotations

import math

from ._common import (DEFAULT_BLOCK_KV, DEFAULT_BLOCK_Q, F16, _check_shapes, _fold, _init_stats,
                      _load_kv, _load_q, _rank, _store_out)

__all__ = ["attention_mesh_kv_kernel"]


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
