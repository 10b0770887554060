"""Shared by the attention-kernel tests: small panel specs and the double-normalisation trap.

The trap is kept here, as a test fixture, never in the package: a fold that accumulates the
already-normalised softmax P = softmax(scores) into o and still divides by l at the end.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from unittest import mock

from kernbench.diag import PanelSpec
from kernbench.kernels import _decode, _prefill


def small_spec(kind: str, n_ranks: int, group: int, rank_axis: int, *, h_kv: int = 2, d: int = 16,
               rows: int = 8, block: int = 4, seed: int = 0) -> PanelSpec:
    """A functional spec whose every loop runs more than once: 2 query blocks and 2 K/V blocks
    per rank (prefill), 2 DMA blocks per rank (decode), h_kv = 2 GQA groups."""
    if kind == "prefill":
        S_q, blocks = rows, (block, block)
    else:
        S_q, blocks = 1, (block,)
    return PanelSpec(
        name=f"{kind}_n{n_ranks}_g{group}_axis{rank_axis}", kind=kind,
        scope="pe" if rank_axis == 0 else "cube", rank_axis=rank_axis, n_ranks=n_ranks,
        grid=(n_ranks, 1) if rank_axis == 0 else (8, n_ranks), S_q=S_q, S_kv_per_rank=rows,
        h_q=h_kv * group, h_kv=h_kv, d_head=d, blocks=blocks, mode="functional", shape="test",
        seed=seed)


def _double_normalised_probs(tl, s, m):
    """The trap in the pipelined kernels' stage 2: l sums the unnormalised p, P.V gets the
    row-normalised softmax (m None: decode's first fold of a group)."""
    m_new = tl.max(s, axis=-1) if m is None else tl.maximum(m, tl.max(s, axis=-1))
    p = tl.exp(s - m_new)
    return m_new, p, tl.cast(tl.softmax(s, axis=-1), "f16")


@contextlib.contextmanager
def double_normalised():
    """Inside the block, both shipped kernels fold with the trap (same schedule otherwise)."""
    with mock.patch.object(_prefill, "_probs", _double_normalised_probs), \
            mock.patch.object(_decode, "_probs", _double_normalised_probs):
        yield


def with_mode(spec: PanelSpec, mode: str) -> PanelSpec:
    return replace(spec, mode=mode)
