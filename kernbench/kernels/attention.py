"""Mesh ring-attention kernels: prefill (K/V travel) and decode (partial (m, l, o) travel), and
the two-level decode (``attention_decode_two_level_kernel``: every PE of every cube folds a share,
partials merge over E/W in each cube and over N/S across cubes; SFR install scope "two_level").

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

from ..common.errors import is_whole
from ._common import DEFAULT_BLOCK_KV, DEFAULT_BLOCK_Q, DEFAULT_DECODE_BLOCK_KV
from ._decode import attention_mesh_mlo_kernel
from ._decode_2level import DEFAULT_TWO_LEVEL_BLOCK_KV, attention_decode_two_level_kernel
from ._prefill import attention_mesh_kv_kernel

__all__ = [
    "attention_mesh_kv_kernel",
    "attention_mesh_mlo_kernel",
    "attention_decode_two_level_kernel",
    "DEFAULT_BLOCK_Q",
    "DEFAULT_BLOCK_KV",
    "DEFAULT_DECODE_BLOCK_KV",
    "DEFAULT_TWO_LEVEL_BLOCK_KV",
    "zigzag_positions",
    "zigzag_split",
    "zigzag_merge",
]


def zigzag_positions(seq_len: int, n_ranks: int):
    """Global positions held by each rank in the zigzag layout of causal prefill.

    The sequence of ``seq_len`` tokens is cut into ``2 * n_ranks`` equal chunks; rank r holds
    chunk r followed by chunk ``2 * n_ranks - 1 - r``, so under a causal mask every rank has the
    same work (the zigzag layout of zhuzilin/ring-flash-attention; Brandon et al., "Striped
    Attention", 2023, balance the same mask with a striped layout instead).
    Returns an int64 array of shape (n_ranks, seq_len // n_ranks). Raises ValueError unless
    ``seq_len`` is a positive multiple of ``2 * n_ranks``."""
    import numpy as np

    for name, v in (("seq_len", seq_len), ("n_ranks", n_ranks)):
        if not is_whole(v) or v < 1:
            raise ValueError(f"zigzag_positions: {name} must be a positive int, got {v!r}")
    # (Python ints: a narrow numpy int would overflow in 2 * n_ranks or beside a shape)
    seq_len, n_ranks = int(seq_len), int(n_ranks)
    if seq_len % (2 * n_ranks):
        raise ValueError(f"zigzag_positions: seq_len {seq_len} is not a multiple of 2 * n_ranks = "
                         f"{2 * n_ranks} (each rank holds two equal chunks)")
    c = seq_len // (2 * n_ranks)
    chunks = np.arange(seq_len, dtype=np.int64).reshape(2 * n_ranks, c)
    return np.stack([np.concatenate([chunks[r], chunks[2 * n_ranks - 1 - r]]) for r in range(n_ranks)])


def zigzag_split(x, n_ranks: int):
    """``x`` (seq_len, ...) in sequence order -> (n_ranks, seq_len // n_ranks, ...): rank r's rows
    in the zigzag layout (:func:`zigzag_positions`), ready for ``ctx.shard(..., axis=0)``."""
    import numpy as np

    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError("zigzag_split: x needs a sequence axis (axis 0)")
    return x[zigzag_positions(x.shape[0], n_ranks)]


def zigzag_merge(parts):
    """Inverse of :func:`zigzag_split`: (n_ranks, rows, ...) per rank -> (n_ranks * rows, ...) in
    sequence order."""
    import numpy as np

    parts = np.asarray(parts)
    if parts.ndim < 2:
        raise ValueError("zigzag_merge: parts must be (n_ranks, rows, ...)")
    n, rows = parts.shape[:2]
    pos = zigzag_positions(n * rows, n)
    out = np.empty((n * rows,) + parts.shape[2:], dtype=parts.dtype)
    out[pos.reshape(-1)] = parts.reshape((n * rows,) + parts.shape[2:])
    return out
