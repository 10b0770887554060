"""A test-only prefill ring attention with the old fold-by-fold schedule (no software pipeline).

The same data movement as kernbench.kernels.attention's prefill kernel (K/V blocks travel the open
line both ways, block-major arrivals), but each fold is computed whole before the next one is
issued: score dot, softmax on the vector unit, P.V dot (``_fold`` of kernbench.kernels._common).
The GEMM unit waits for the vector unit's softmax in every fold and the vector unit for the dots,
so the critical path alternates between them; tests/test_critical_path.py compares it with the
pipelined kernel, whose path is GEMM almost throughout. Not causal.
"""
from __future__ import annotations

import math

from kernbench.kernels._common import F16, _fold, _init_stats, _load_kv, _load_q, _store_out


def prefill_unpipelined_kernel(q_ptr, k_ptr, v_ptr, o_ptr, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks,
                               rank_axis=0, block_q=32, block_kv=2048, *, tl):
    rank = tl.program_id(axis=rank_axis)
    G = h_q // h_kv
    d = d_head
    scale = 1.0 / math.sqrt(d)
    east, west = rank + 1 < n_ranks, rank > 0
    bkv = min(block_kv, S_kv_per_rank)
    bq = min(block_q, S_q)
    for g in range(h_kv):
        for q0 in range(0, S_q, bq):
            rows = min(bq, S_q - q0)
            q = _load_q(tl, q_ptr, q0, rows, g, G, h_q, d, scale)
            m, l, o = _init_stats(tl, rows * G, d)
            for k0 in range(0, S_kv_per_rank, bkv):
                n = min(bkv, S_kv_per_rank - k0)
                kb = _load_kv(tl, k_ptr, k0, n, g, h_kv, d, None)
                vb = _load_kv(tl, v_ptr, k0, n, g, h_kv, d, None)
                for dr, wired in (("E", east), ("W", west)):
                    if wired:
                        tl.send(dir=dr, src=kb)
                        tl.send(dir=dr, src=vb)
                m, l, o = _fold(tl, q, kb, vb, m, l, o)
                for step in range(1, n_ranks):
                    for came_from, src, fwd in (("W", rank - step, "E" if east else None),
                                                ("E", rank + step, "W" if west else None)):
                        if not 0 <= src < n_ranks:
                            continue
                        kr = tl.recv(dir=came_from, shape=(n, d), dtype=F16)
                        vr = tl.recv(dir=came_from, shape=(n, d), dtype=F16)
                        if fwd:
                            tl.send(dir=fwd, src=kr)
                            tl.send(dir=fwd, src=vr)
                        m, l, o = _fold(tl, q, kr, vr, m, l, o)
            _store_out(tl, o_ptr, q0, rows, g, G, h_q, d, o, l)
