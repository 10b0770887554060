"""Accuracy matrix of the shipped attention kernels against f64 attention.

Every case runs one kernel in functional mode and compares every rank's f16 output with
``softmax(Q K^T / sqrt(d)) V`` computed in f64 from the very f16 inputs the kernel got, under two
bounds:

- the diag tolerance ``|out - ref| <= 2e-3 + 2e-2 * |ref|`` (``kernbench.diag.check_output``),
- ``|out - ref| <= 2e-3`` wherever ``|ref| <= 2`` (no relative slack on ordinary outputs).

Axes: kernel (prefill ``attention_mesh_kv_kernel``, decode ``attention_mesh_mlo_kernel``),
n_ranks 1/2/3/8, rank_axis 0 (ring over the PEs of one cube, SFR scope "pe") and 1 (ring over
cubes, scope "cube", only PE 0 of each cube works), GQA group G = h_q / h_kv of 1/4/8, h_kv 1/2,
d_head 64/80/96/128, score standard deviation 1/5/10/30 (Q and K scaled by sqrt(std) each),
causal or not, data (random scores; one dominant key far above the rest; equal scores: all keys
identical), shape (blocks that divide the rows; longer rows; ragged rows that are no multiple of
the blocks), and for decode S_q 1/4/7.

The full product is tens of thousands of launches, so :data:`PAIRWISE` holds a covering array:
every pair of values of any two axes meets in at least one case (``test_matrix_covers_every_pair``
keeps it so). :data:`TARGETED` adds the cases the issue names: score std 30 at d_head 128 and 64,
a dominant key, equal scores, ragged blocks, S_q = 1 for prefill, the default block sizes.

Causal cases of a kernel that does not take ``causal=`` yet are skipped, and run by themselves as
soon as it does. ``test_f16_scaled_q_*`` show the check has teeth: rounding the scaled Q to f16
(an old bug) fails the std-30 case at d_head 128, both modelled in numpy and patched into the
kernels; ``test_causal_cases_catch_a_missing_mask`` shows a causal case fails without the mask.
"""
from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import re
import zlib
from typing import NamedTuple
from unittest import mock

import numpy as np
import pytest

from kernbench import Context, KernelError, load_hw
from kernbench.diag.panels import ATOL, RTOL, attention_reference, check_output
from kernbench.kernels import _decode, _prefill
from kernbench.kernels.attention import (attention_decode_two_level_kernel, attention_mesh_kv_kernel,
                                         attention_mesh_mlo_kernel, zigzag_positions, zigzag_split)

MESH8 = load_hw("mesh8")  # 8 cubes of 8 PEs: an 8-rank ring on either axis
#: where |ref| <= SMALL_REF, the error must stay under SMALL_ATOL (no relative slack)
SMALL_REF = 2.0
SMALL_ATOL = 2e-3
#: dominant key: its score exceeds every other score of every query row by at least this much
DOMINANT_GAP = 12.0

KERNELS = {"prefill": attention_mesh_kv_kernel, "decode": attention_mesh_mlo_kernel}

#: (S_q, S_kv_per_rank, blocks after rank_axis) per kind, shape and causal; None for S_q means
#: the case's own (decode). Prefill causal needs S_q == S_kv_per_rank, even (two zigzag chunks
#: of c = S/2 rows; the kernel blocks within a chunk).
SHAPES = {
    ("prefill", "even", False): (16, 16, (4, 8)),    # 4 query blocks, 2 K/V blocks
    ("prefill", "even", True): (16, 16, (4, 8)),     # c = 8: 2 query blocks, 1 K/V block per chunk
    ("prefill", "long", False): (64, 64, (16, 16)),
    ("prefill", "long", True): (64, 64, (16, 16)),   # c = 32: 2 + 2 per chunk
    ("prefill", "ragged", False): (13, 11, (4, 5)),  # query blocks 4,4,4,1; K/V 5,5,1
    ("prefill", "ragged", True): (14, 14, (4, 3)),   # c = 7: query blocks 4,3; K/V 3,3,1 per chunk
    ("prefill", "sq1", False): (1, 11, (4, 5)),      # a single query row per rank
    ("prefill", "defaults", False): (16, 16, ()),    # default blocks, larger than the rows
    ("prefill", "defaults", True): (16, 16, ()),
    ("decode", "even", False): (None, 16, (8,)),
    ("decode", "long", False): (None, 64, (16,)),
    ("decode", "ragged", False): (None, 13, (4,)),   # K/V blocks 4,4,4,1
    ("decode", "defaults", False): (None, 16, ()),
}


class Case(NamedTuple):
    kind: str  # "prefill" or "decode"
    n: int  # n_ranks
    axis: int  # rank_axis
    G: int  # h_q / h_kv
    h_kv: int
    d: int  # d_head
    std: float  # standard deviation of the scores q.k / sqrt(d)
    causal: bool
    data: str  # "random", "dominant" or "equal"
    shape: str  # a key of SHAPES
    S_q: int = 1  # decode only (prefill: from SHAPES)

    @property
    def id(self) -> str:
        sq = f"-sq{self.S_q}" if self.kind == "decode" else ""
        return (f"{self.kind}-n{self.n}-ax{self.axis}-G{self.G}-hkv{self.h_kv}-d{self.d}-std{self.std:g}-"
                f"{'causal' if self.causal else 'full'}-{self.data}-{self.shape}{sq}")

    def dims(self):
        """(S_q, S_kv_per_rank, blocks)."""
        S_q, S_kv, blocks = SHAPES[(self.kind, self.shape, self.causal and self.kind == "prefill")]
        return (self.S_q if S_q is None else S_q), S_kv, blocks


def P(n, axis, G, h_kv, d, std, causal, data, shape):
    return Case("prefill", n, axis, G, h_kv, d, std, causal, data, shape)


def D(n, axis, G, h_kv, d, std, causal, data, shape, S_q):
    return Case("decode", n, axis, G, h_kv, d, std, causal, data, shape, S_q)


#: the axes the pairwise tables cover (decode adds S_q)
AXES = dict(n=(1, 2, 3, 8), axis=(0, 1), G=(1, 4, 8), h_kv=(1, 2), d=(64, 80, 96, 128),
            std=(1, 5, 10, 30), causal=(False, True), data=("random", "dominant", "equal"),
            shape=("even", "long", "ragged"))
DECODE_AXES = dict(AXES, S_q=(1, 4, 7))

# A covering array per kernel (greedy all-pairs, 23 rows each, fixed here so case ids are stable):
#            n  ax G  hkv d  std causal  data        shape      [S_q]
PAIRWISE = [
    P(1, 0, 8, 1,  64,  1, True , "equal",    "long"),
    P(1, 0, 8, 1, 128, 10, False, "random",   "ragged"),
    P(1, 0, 8, 2,  80, 30, True , "random",   "long"),
    P(1, 1, 1, 1,  64,  5, False, "random",   "ragged"),
    P(1, 1, 4, 2,  80, 10, True , "dominant", "even"),
    P(1, 1, 4, 1,  96, 30, False, "dominant", "ragged"),
    P(2, 0, 4, 1, 128, 30, True , "equal",    "long"),
    P(2, 0, 4, 2, 128, 10, False, "equal",    "even"),
    P(2, 0, 4, 1,  64, 30, False, "equal",    "long"),
    P(2, 1, 1, 2, 128,  1, False, "dominant", "ragged"),
    P(2, 1, 8, 2,  80,  5, True , "random",   "long"),
    P(2, 1, 1, 2,  96, 10, True , "random",   "long"),
    P(3, 0, 8, 2,  64, 30, True , "random",   "even"),
    P(3, 0, 1, 1,  80,  5, False, "dominant", "even"),
    P(3, 0, 4, 2,  80,  1, False, "random",   "long"),
    P(3, 0, 4, 2, 128,  5, True , "random",   "even"),
    P(3, 1, 1, 1,  96,  1, True , "equal",    "even"),
    P(3, 1, 4, 1,  64, 10, True , "dominant", "ragged"),
    P(3, 1, 8, 2,  96,  5, False, "equal",    "even"),
    P(8, 0, 8, 2,  96, 10, False, "dominant", "long"),
    P(8, 0, 4, 1,  80,  5, False, "equal",    "ragged"),
    P(8, 1, 1, 2, 128, 30, True , "random",   "even"),
    P(8, 1, 4, 2,  64,  1, False, "random",   "ragged"),
    D(1, 0, 1, 2,  80, 10, True , "equal",    "even",   7),
    D(1, 0, 1, 1,  64,  1, False, "random",   "even",   1),
    D(1, 0, 4, 1,  96,  5, True , "equal",    "even",   1),
    D(1, 1, 4, 1,  64, 30, False, "dominant", "long",   4),
    D(1, 1, 1, 2, 128,  1, False, "dominant", "ragged", 4),
    D(1, 1, 8, 1,  80, 10, False, "dominant", "ragged", 4),
    D(2, 0, 4, 1, 128,  1, True , "random",   "long",   1),
    D(2, 0, 1, 1,  80,  5, False, "equal",    "ragged", 4),
    D(2, 0, 8, 1,  80, 10, True , "random",   "long",   4),
    D(2, 0, 4, 1,  96, 30, True , "dominant", "long",   1),
    D(2, 1, 1, 2,  64,  5, True , "dominant", "even",   7),
    D(2, 1, 8, 1, 128, 30, False, "equal",    "even",   1),
    D(3, 0, 1, 2,  96, 30, True , "dominant", "ragged", 4),
    D(3, 0, 8, 1,  64, 10, True , "equal",    "ragged", 4),
    D(3, 1, 8, 1,  96, 10, False, "dominant", "long",   1),
    D(3, 1, 4, 2,  80,  1, True , "equal",    "even",   1),
    D(3, 1, 4, 2,  96, 10, True , "random",   "ragged", 7),
    D(3, 1, 4, 2, 128,  5, True , "dominant", "long",   7),
    D(8, 0, 8, 1, 128, 10, True , "dominant", "even",   4),
    D(8, 0, 1, 2,  80, 30, True , "random",   "long",   7),
    D(8, 1, 8, 2, 128,  5, False, "random",   "ragged", 1),
    D(8, 1, 8, 1,  64,  1, False, "equal",    "even",   7),
    D(8, 1, 4, 1,  96,  1, False, "equal",    "long",   4),
]

#: the cases the issue names, each at full strength (8 ranks, G = 8 where it matters)
TARGETED = [
    # score std 30 at d_head 128 and 64 (64: 1/sqrt(d) is a power of two, 128: it is not)
    P(8, 0, 8, 1, 128, 30, False, "random",   "long"),
    P(8, 1, 8, 1, 128, 30, True , "random",   "long"),
    P(8, 0, 4, 2,  64, 30, False, "random",   "even"),
    P(8, 1, 4, 2,  64, 30, True , "random",   "even"),
    D(8, 0, 8, 2, 128, 30, False, "random",   "long",   1),
    D(8, 1, 8, 2, 128, 30, True , "random",   "long",   4),
    D(8, 1, 4, 2,  64, 30, False, "random",   "even",   1),
    D(8, 0, 4, 2,  64, 30, True , "random",   "even",   7),
    # a dominant key (non-causal: the last key of the last rank, the last block rank 0 folds)
    P(8, 0, 8, 1, 128, 30, False, "dominant", "ragged"),
    P(8, 0, 8, 1, 128, 30, True , "dominant", "ragged"),
    P(2, 1, 4, 2,  64,  1, False, "dominant", "even"),
    D(8, 0, 8, 1, 128, 30, False, "dominant", "ragged", 1),
    D(8, 1, 8, 1, 128, 30, True , "dominant", "ragged", 7),
    # equal scores
    P(8, 0, 8, 1,  96, 30, True , "equal",    "ragged"),
    P(3, 1, 4, 2, 128, 30, False, "equal",    "long"),
    D(8, 0, 8, 1, 128, 30, False, "equal",    "long",   1),
    D(3, 1, 4, 2,  80, 30, True , "equal",    "ragged", 4),
    # ragged blocks on a 3-rank line, both kinds, both axes
    P(3, 1, 4, 2,  80, 10, False, "random",   "ragged"),
    P(3, 0, 4, 2,  80, 10, True , "random",   "ragged"),
    D(3, 1, 4, 2,  80, 10, False, "random",   "ragged", 1),
    D(3, 0, 4, 2,  80, 10, True , "random",   "ragged", 7),
    # prefill with one query row per rank
    P(1, 0, 8, 1, 128, 30, False, "random",   "sq1"),
    P(3, 1, 8, 1, 128, 30, False, "random",   "sq1"),
    P(8, 0, 4, 2,  96, 10, False, "dominant", "sq1"),
    # default block sizes (larger than the rows)
    P(2, 0, 4, 2, 128, 30, False, "random",   "defaults"),
    P(2, 1, 4, 2, 128, 30, True , "random",   "defaults"),
    D(2, 0, 4, 2, 128, 30, False, "random",   "defaults", 1),
    D(2, 1, 4, 2, 128, 30, True , "random",   "defaults", 4),
]


# -- data, launch and errors ---------------------------------------------------------------------
def _positions(case: Case):
    """(query positions, key positions) in sequence order, or (None, None) when not causal."""
    S_q, S_kv, _ = case.dims()
    if not case.causal:
        return None, None
    keys = np.arange(case.n * S_kv)
    if case.kind == "prefill":
        return keys, keys
    return case.n * S_kv - S_q + np.arange(S_q), keys


def make_inputs(case: Case, seed: int):
    """f16 q, k, v in sequence order: q (n * S_q, h_q, d) for prefill, (S_q, h_q, d) for decode;
    k, v (n * S_kv_per_rank, h_kv, d). Q and K have standard deviation sqrt(std) each, so the
    scores q.k / sqrt(d) have standard deviation ``std``."""
    S_q, S_kv, _ = case.dims()
    rng = np.random.default_rng(seed)
    n, G, h_kv, d = case.n, case.G, case.h_kv, case.d
    h_q, a = G * h_kv, math.sqrt(case.std)
    n_q = n * S_q if case.kind == "prefill" else S_q
    n_kv = n * S_kv
    k = rng.standard_normal((n_kv, h_kv, d)) * a
    v = rng.standard_normal((n_kv, h_kv, d))
    z = rng.standard_normal((n_q, h_q, d))
    if case.data == "equal":
        k[:] = k[0]  # every key identical: every score of a row is equal
    if case.data != "dominant":
        return (z * a).astype(np.float16), k.astype(np.float16), v.astype(np.float16)
    # dominant: the query rows share a direction u_g per K/V group, one key is beta_g * u_g
    u = rng.standard_normal((h_kv, d))
    q = np.empty_like(z)
    for h in range(h_q):
        q[:, h] = a * (0.8 * u[h // G] + 0.6 * z[:, h])
    q = q.astype(np.float16).astype(np.float64)
    q_pos, _ = _positions(case)
    if not case.causal:
        dom = n_kv - 1  # the last key of the last rank: folded last by rank 0
    elif case.kind == "prefill":
        dom = 0  # the only key every query sees
    else:
        dom = int(q_pos[0])  # the latest key every query row sees
    k[dom] = 0
    k = k.astype(np.float16).astype(np.float64)
    for g in range(h_kv):
        heads = slice(g * G, (g + 1) * G)
        others = (q[:, heads] @ k[:, g].T).max(axis=-1) / math.sqrt(d)
        along = q[:, heads] @ u[g] / math.sqrt(d)
        assert (along > 0).all()
        k[dom, g] = u[g] * ((others + DOMINANT_GAP) / along).max()
    k = k.astype(np.float16)
    k_heads = k.astype(np.float64)[:, np.arange(h_q) // G]  # (n_kv, h_q, d): each query head's K
    s = np.matmul(q.transpose(1, 0, 2), k_heads.transpose(1, 2, 0)).transpose(1, 0, 2) / math.sqrt(d)
    gap = s[:, :, dom] - np.delete(s, dom, axis=-1).max(axis=-1)
    assert gap.min() > DOMINANT_GAP - 1, f"dominant key built with a gap of only {gap.min():.2f}"
    return q.astype(np.float16), k, v.astype(np.float16)


def reference(case: Case, q, k, v):
    q_pos, k_pos = _positions(case)
    return attention_reference(q, k, v, q_pos=q_pos, k_pos=k_pos)


def kernel_takes_causal(kernel) -> bool:
    return "causal" in inspect.signature(kernel).parameters


def launch(case: Case, q, k, v, kernel=None, mask=True):
    """Place q, k, v as the kernel expects, launch in functional mode; return each rank's output
    (n, S_q, h_q, d) f16, rank r read from PE (r, 0) (axis 0) or (0, r) (axis 1). ``mask=False``
    launches a causal case without ``causal=True`` (same placement)."""
    S_q, S_kv, blocks = case.dims()
    n, h_kv, d = case.n, case.h_kv, case.d
    h_q = case.G * h_kv
    ctx = Context(MESH8)
    scope = "pe" if case.axis == 0 else "cube"
    ctx.install_sfr(scope=scope, ring=False)

    def split(x):  # sequence order -> (n, rows per rank, ...): zigzag for causal prefill
        if case.kind == "prefill" and case.causal:
            return zigzag_split(x, n)
        return x.reshape((n, -1) + x.shape[1:])

    kp = ctx.shard(split(k), axis=0, over=scope, parts=n)
    vp = ctx.shard(split(v), axis=0, over=scope, parts=n)
    qp = ctx.shard(split(q), axis=0, over=scope, parts=n) if case.kind == "prefill" else ctx.replicate(q)
    op = ctx.empty((S_q, h_q, d), "f16")
    grid = (n, 1) if case.axis == 0 else (MESH8.pes_per_cube, n)
    kw = {"causal": True} if case.causal and mask else {}
    ctx.launch(kernel or KERNELS[case.kind], grid, qp, kp, vp, op, S_q, S_kv, h_q, h_kv, d, n,
               case.axis, *blocks, **kw)
    pes = [(r, 0) if case.axis == 0 else (0, r) for r in range(n)]
    return np.stack([ctx.read(op, pe).reshape(S_q, h_q, d) for pe in pes])


def rank_refs(case: Case, ref):
    """The reference rows of each rank's output: (n, S_q, h_q, d)."""
    S_q = case.dims()[0]
    if case.kind == "decode":
        return np.broadcast_to(ref, (case.n,) + ref.shape)
    if case.causal:
        return ref[zigzag_positions(case.n * S_q, case.n)]
    return ref.reshape((case.n, S_q) + ref.shape[1:])


class Errors(NamedTuple):
    diag_ok: bool  # within ATOL + RTOL * |ref| and finite everywhere
    small_ok: bool  # within SMALL_ATOL where |ref| <= SMALL_REF
    max_abs: float
    max_rel: float  # as check_output: max |out - ref| / (|ref| + ATOL)
    max_abs_small: float  # max |out - ref| where |ref| <= SMALL_REF
    worst: str

    def describe(self, name: str) -> str:
        return (f"{name}: max abs err {self.max_abs:.3g}, max rel err {self.max_rel:.3g} "
                f"(diag tolerance {ATOL:g} + {RTOL:g}*|ref|: {'ok' if self.diag_ok else 'EXCEEDED'}), "
                f"max abs err where |ref| <= {SMALL_REF:g}: {self.max_abs_small:.3g} "
                f"(limit {SMALL_ATOL:g}: {'ok' if self.small_ok else 'EXCEEDED'}); worst {self.worst}")


def errors(out, ref) -> Errors:
    """``out`` against ``ref``, both (n_ranks, S_q, h_q, d)."""
    out = np.asarray(out, dtype=np.float64)
    diag_ok, max_abs, max_rel = check_output(out, ref)
    err = np.abs(out - ref)
    err = np.where(np.isfinite(err), err, np.inf)
    small = np.abs(ref) <= SMALL_REF
    max_small = float(err[small].max()) if small.any() else 0.0
    excess = err - (ATOL + RTOL * np.abs(ref))
    at = np.unravel_index(int(np.argmax(excess)), err.shape)
    worst = (f"at rank {at[0]} row {at[1]} head {at[2]} col {at[3]}: out {out[at]:.6g}, ref {ref[at]:.6g}, "
             f"{int((excess > 0).sum())} of {err.size} outside the diag tolerance")
    return Errors(diag_ok, max_small <= SMALL_ATOL, float(max_abs), float(max_rel), max_small, worst)


def seed_of(case: Case) -> int:
    return zlib.crc32(case.id.encode())


def run_case(case: Case, kernel=None, mask=True) -> Errors:
    q, k, v = make_inputs(case, seed_of(case))
    return errors(launch(case, q, k, v, kernel, mask), rank_refs(case, reference(case, q, k, v)))


# -- the matrix ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", PAIRWISE + TARGETED, ids=lambda c: c.id)
def test_accuracy(case):
    kernel = KERNELS[case.kind]
    if case.causal and not kernel_takes_causal(kernel):
        pytest.skip(f"{kernel.__name__} does not take causal= yet (causal case runs once it does)")
    e = run_case(case)
    assert e.diag_ok and e.small_ok, e.describe(case.id)


def test_matrix_covers_every_pair():
    """Every pair of values of any two axes meets in a pairwise case of each kernel, and every
    case's shape exists (so an edit of the table cannot silently drop coverage)."""
    for kind, axes in (("prefill", AXES), ("decode", DECODE_AXES)):
        rows = [c for c in PAIRWISE if c.kind == kind]
        names = list(axes)
        missing = [(x, a, y, b) for x, y in itertools.combinations(names, 2)
                   for a in axes[x] for b in axes[y]
                   if not any(getattr(c, x) == a and getattr(c, y) == b for c in rows)]
        assert not missing, f"{kind}: pairs no case covers: {missing[:10]}"
    for c in PAIRWISE + TARGETED:
        c.dims()  # KeyError for a shape the kind does not have
    assert len({c.id for c in PAIRWISE + TARGETED}) == len(PAIRWISE + TARGETED), "duplicate cases"


# -- teeth: Q rounded to f16 after scaling --------------------------------------------------------
TEETH = P(2, 0, 8, 1, 128, 30, False, "random", "long")


def test_f16_scaled_q_fails_the_check_in_numpy():
    """The old bug modelled in f64: scores from f16(f32(q) / sqrt(d)) . k. At std 30, d 128 it
    misses the tolerance (the scale is no power of two: rounding moves every score by up to
    |s| 2**-11), while the kernel on the very same data passes; at std 1 the model passes too, so
    only the large scores catch it."""
    case = TEETH
    q, k, v = make_inputs(case, seed_of(case))
    ref = rank_refs(case, reference(case, q, k, v))
    d = case.d
    q_bad = (q.astype(np.float32) * np.float32(1 / math.sqrt(d))).astype(np.float16)
    bad = reference(case, q_bad.astype(np.float64) * math.sqrt(d), k, v).astype(np.float16)
    e_bad = errors(rank_refs(case, bad), ref)
    assert not (e_bad.diag_ok and e_bad.small_ok), e_bad.describe("f16-scaled Q model at std 30")
    assert e_bad.max_abs_small > 3 * SMALL_ATOL, e_bad.describe("f16-scaled Q model at std 30")
    e = run_case(case)
    assert e.diag_ok and e.small_ok, e.describe(case.id)
    assert e.max_abs_small < e_bad.max_abs_small / 3, (e.describe(case.id), e_bad.describe("model"))

    mild = case._replace(std=1)
    q, k, v = make_inputs(mild, seed_of(mild))
    q_bad = (q.astype(np.float32) * np.float32(1 / math.sqrt(d))).astype(np.float16)
    bad = reference(mild, q_bad.astype(np.float64) * math.sqrt(d), k, v).astype(np.float16)
    e_mild = errors(rank_refs(mild, bad), rank_refs(mild, reference(mild, q, k, v)))
    assert e_mild.diag_ok and e_mild.small_ok, e_mild.describe("f16-scaled Q model at std 1")


@contextlib.contextmanager
def f16_scaled_q():
    """Both kernels with the scaled Q rounded to f16 before the score dot (the old bug)."""
    from kernbench.kernels import _common

    def bad_load_q(tl, *args, **kw):
        return tl.cast(_common._load_q(tl, *args, **kw), "f16")

    with contextlib.ExitStack() as stack:
        for mod in (_prefill, _decode):
            stack.enter_context(mock.patch.object(mod, "_load_q", bad_load_q))
        yield


@pytest.mark.parametrize("kind", ["prefill", "decode"])
def test_f16_scaled_q_fails_the_check_in_the_kernel(kind):
    """The shipped kernel with the old bug patched in fails the std-30 case the kernel passes."""
    if not all(hasattr(mod, "_load_q") for mod in (_prefill, _decode)):
        pytest.skip("the kernels no longer load Q through _common._load_q: nothing to patch")
    case = TEETH if kind == "prefill" else D(2, 0, 8, 1, 128, 30, False, "random", "long", 7)
    good = run_case(case)
    assert good.diag_ok and good.small_ok, good.describe(case.id)
    with f16_scaled_q():
        bad = run_case(case)
    assert not (bad.diag_ok and bad.small_ok), bad.describe(f"{case.id} with f16-scaled Q")
    assert bad.max_abs_small > 2 * good.max_abs_small, (good.describe(case.id), bad.describe("f16 Q"))


@pytest.mark.parametrize("case", [P(3, 0, 4, 2, 80, 1, True, "random", "ragged"),
                                  D(3, 1, 4, 2, 80, 1, True, "random", "ragged", 7)], ids=lambda c: c.id)
def test_causal_cases_catch_a_missing_mask(case):
    """The causal cases check the mask: the same data launched without ``causal=True`` fails."""
    kernel = KERNELS[case.kind]
    if not kernel_takes_causal(kernel):
        pytest.skip(f"{kernel.__name__} does not take causal= yet (runs once it does)")
    e = run_case(case)
    assert e.diag_ok and e.small_ok, e.describe(case.id)
    unmasked = run_case(case, mask=False)
    assert not unmasked.diag_ok, unmasked.describe(f"{case.id} launched without causal=True")


# -- keys that score -inf (FlashAttention-2's guard in its softmax: "we don't want (-inf - (-inf))")
@pytest.mark.parametrize("keys", ["first block", "a rank's every key", "the last block"])
@pytest.mark.parametrize("kind", ["prefill", "decode"])
def test_keys_scoring_minus_inf_get_weight_zero(kind, keys):
    """Keys of -inf against all-positive queries score -inf: softmax gives them weight 0 and the
    f64 reference is finite. A review found NaN everywhere when such keys filled the first block a
    rank folds (the running max started at -inf: exp(-inf - -inf)), and in decode when they filled
    a rank's whole shard (l = 0: 0 / 0)."""
    case = (P(2, 0, 4, 1, 64, 1, False, "random", "even") if kind == "prefill"
            else D(2, 0, 4, 1, 64, 1, False, "random", "even", 4))
    q, k, v = make_inputs(case, seed_of(case))
    q = np.abs(q) + np.float16(0.1)  # every score of a -inf key is -inf (not NaN)
    S_kv, block = case.dims()[1], case.dims()[2][-1]
    rows = {"first block": range(0, block), "a rank's every key": range(0, S_kv),
            "the last block": range(2 * S_kv - block, 2 * S_kv)}[keys]
    k = k.copy()
    k[list(rows)] = -np.inf
    ref = rank_refs(case, reference(case, q, k, v))
    assert np.isfinite(ref).all()
    e = errors(launch(case, q, k, v), ref)
    assert e.diag_ok and e.small_ok, e.describe(f"{case.id}, -inf keys: {keys}")


def test_the_two_level_decode_gives_minus_inf_keys_weight_zero():
    ctx = Context("default", overrides={"n_cubes": 2, "pes_per_cube": 2})
    ctx.install_sfr(scope="two_level")
    rng = np.random.default_rng(1)
    S_q, h_q, h_kv, d, S, N = 1, 4, 1, 32, 8, 4
    q = (np.abs(rng.standard_normal((S_q, h_q, d))) + 0.1).astype(np.float16)
    k = rng.standard_normal((N * S, h_kv, d)).astype(np.float16)
    v = rng.standard_normal((N * S, h_kv, d)).astype(np.float16)
    k[:4] = -np.inf  # the first block of rank 0
    k[S:2 * S] = -np.inf  # every key of rank 1
    ref = attention_reference(q, k, v)
    assert np.isfinite(ref).all()
    qp, op = ctx.replicate(q), ctx.empty((S_q, h_q, d), "f16")
    kp = ctx.shard(k.reshape(N, S, h_kv, d), axis=0, over="all")
    vp = ctx.shard(v.reshape(N, S, h_kv, d), axis=0, over="all")
    ctx.launch(attention_decode_two_level_kernel, (2, 2), qp, kp, vp, op, S_q, S, h_q, h_kv, d, 2, 2, 4)
    ok, max_abs, _ = check_output(ctx.read(op, (0, 0)).astype(np.float64), ref)
    assert ok, max_abs


@pytest.mark.parametrize("kind", ["prefill", "decode"])
@pytest.mark.parametrize("axis", [0, 1])
def test_n_ranks_must_match_the_grid(kind, axis):
    """A review launched decode with n_ranks=1 on 4 PEs: no error, and under causal the other PEs
    placed their keys past the context and stored the mean of V. Both kernels refuse it now."""
    case = (P(2, axis, 1, 1, 64, 1, False, "random", "even") if kind == "prefill"
            else D(2, axis, 1, 1, 64, 1, True, "random", "even", 1))
    S_q, S_kv, blocks = case.dims()
    q, k, v = make_inputs(case, 0)
    ctx = Context(MESH8)
    scope = "pe" if axis == 0 else "cube"
    ctx.install_sfr(scope=scope, ring=False)
    kp = ctx.shard(k.reshape(2, S_kv, 1, 64), axis=0, over=scope, parts=2)
    vp = ctx.shard(v.reshape(2, S_kv, 1, 64), axis=0, over=scope, parts=2)
    qp = ctx.shard(q.reshape(2, S_q, 1, 64), axis=0, over=scope, parts=2) if kind == "prefill" else ctx.replicate(q)
    op = ctx.empty((S_q, 1, 64), "f16")
    grid = (4, 1) if axis == 0 else (MESH8.pes_per_cube, 4)
    along = "PEs of a cube (grid axis 0)" if axis == 0 else "cubes (grid axis 1)"
    with pytest.raises(KernelError, match=rf"n_ranks = 2, but the grid has 4 {re.escape(along)}"):
        ctx.launch(KERNELS[kind], grid, qp, kp, vp, op, S_q, S_kv, 1, 1, 64, 2, axis, *blocks,
                   **({"causal": True} if case.causal else {}))


@pytest.mark.parametrize("wrong", ["q", "k", "v", "o"])
@pytest.mark.parametrize("kind", ["prefill", "decode"])
def test_arrays_of_another_dtype_are_named_as_the_kernels_inputs(kind, wrong):
    """The kernels read f16 q, k, v and write f16 o. A review found f32 inputs refused as a load to
    rewrite ("expected dtype='f32' (cast after loading instead)") and, worse, an f32 o accepted:
    the store converted, but the kernel's byte offsets assume f16, so the rows landed in the wrong
    places (max error 1.6)."""
    S, h, d = 8, 2, 16
    S_q = S if kind == "prefill" else 1
    ctx = Context(MESH8)
    ctx.install_sfr(scope="pe", ring=False)
    shapes = {"q": (S_q, h, d), "k": (S, 1, d), "v": (S, 1, d), "o": (S_q, h, d)}
    arrs = [ctx.empty(shapes[n], "f32" if n == wrong else "f16") for n in "qkvo"]
    want = ("store of dtype=f16 to allocation 'a3', which holds f32" if wrong == "o" else
            f"{wrong} must be an f16 array (the attention kernels read f16 q, k and v")
    with pytest.raises(KernelError, match=re.escape(want)):
        ctx.launch(KERNELS[kind], (2, 1), *arrs, S_q, S, h, 1, d, 2, 0, mode="timing")
