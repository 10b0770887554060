"""Kernels shipped with kernbench, written only against ``tl`` like any user's kernel.

- :func:`attention_mesh_kv_kernel`: ring-attention prefill, K/V blocks travel the line of ranks.
- :func:`attention_mesh_mlo_kernel`: ring-attention decode, partial (m, l, o) travel, K/V stay.
- :func:`attention_decode_two_level_kernel`: decode on every PE of every cube, partials merged
  over E/W in each cube and over N/S across cubes (SFR install scope "two_level").

All live in :mod:`kernbench.kernels.attention` (also importable directly, with its block-size
defaults); docs/kernels.md describes their schedules.

    from kernbench.kernels import attention_mesh_kv_kernel
    ctx.install_sfr(scope="pe")          # the ranks: the PEs of one cube, in an open line
    r = ctx.launch(attention_mesh_kv_kernel, (n_ranks, 1), q, k, v, o, S_q, S_kv_per_rank,
                   h_q, h_kv, d_head, n_ranks)
"""
from .attention import attention_decode_two_level_kernel, attention_mesh_kv_kernel, attention_mesh_mlo_kernel

__all__ = ["attention_mesh_kv_kernel", "attention_mesh_mlo_kernel", "attention_decode_two_level_kernel"]
