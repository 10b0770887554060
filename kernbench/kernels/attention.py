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

from ._common import DEFAULT_BLOCK_KV, DEFAULT_BLOCK_Q, DEFAULT_DECODE_BLOCK_KV
from ._decode import attention_mesh_mlo_kernel
from ._prefill import attention_mesh_kv_kernel

__all__ = [
    "attention_mesh_kv_kernel",
    "attention_mesh_mlo_kernel",
    "DEFAULT_BLOCK_Q",
    "DEFAULT_BLOCK_KV",
    "DEFAULT_DECODE_BLOCK_KV",
]
