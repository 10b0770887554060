"""Helpers shared by the attention kernels (kernbench.kernels.attention documents the layout).

Each helper emits ``tl`` commands like any user's code; nothing here is engine-specific.
"""
from __future__ import annotations

from dataclasses import replace

from ..common.errors import as_flag, is_whole

F16 = "f16"
F32 = "f32"
F16_BYTES = 2
#: query rows per head in one block (the dot has block_q * G rows)
DEFAULT_BLOCK_Q = 32
#: K/V rows in one block travelling the line (and one DMA load)
DEFAULT_BLOCK_KV = 2048
#: K/V rows per DMA load in decode (no travel: K/V stay put)
DEFAULT_DECODE_BLOCK_KV = 2048


def _view(h, shape):
    """A metadata-only view: same buffer id, another shape (emits nothing)."""
    return replace(h, shape=tuple(shape))


def causal_flag(kernel: str, causal) -> bool:
    """A kernel's ``causal`` as a bool: True or False, or a numpy bool (a sweep's axis of
    ``np.array([True, False])``), as tl's own flags take them. Raises ValueError naming
    ``kernel`` for anything else (1, "yes", None: a string "False" is true by truth)."""
    flag = as_flag(causal)
    if flag is not None:
        return flag
    raise ValueError(f"{kernel}: causal must be True or False, got {causal!r}")


def _check_shapes(kernel: str, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis, causal=False,
                  tl=None, **blocks):
    """The kernel's shape arguments, checked before any command: a clear ValueError instead of
    heads never written (h_q not a multiple of h_kv) or a malformed ring; with ``tl``, also
    ``n_ranks`` against the launch's grid along ``rank_axis`` (a rank past n_ranks would place its
    keys past the context: a silent wrong answer under causal). Returns the sizes (S_q,
    S_kv_per_rank, h_q, h_kv, d_head, n_ranks, then ``blocks`` in order) as Python ints."""
    causal_flag(kernel, causal)
    sizes = _positive_ints(kernel, S_q=S_q, S_kv_per_rank=S_kv_per_rank, h_q=h_q, h_kv=h_kv,
                           d_head=d_head, n_ranks=n_ranks, **blocks)
    h_q, h_kv = sizes["h_q"], sizes["h_kv"]
    if h_q % h_kv:
        raise ValueError(f"{kernel}: h_q = {h_q} is not a multiple of h_kv = {h_kv} (GQA: each K/V "
                         f"head serves h_q / h_kv query heads)")
    if not is_whole(rank_axis) or rank_axis not in (0, 1):  # (True and 1.0 are == 1, not axes)
        raise ValueError(f"{kernel}: rank_axis must be 0 (PEs of a cube) or 1 (cubes), got {rank_axis!r}")
    _check_block_counts(kernel, sizes["S_q"], sizes["S_kv_per_rank"], h_kv, **{
        k: sizes[k] for k in ("block_q", "block_kv") if k in sizes})
    if tl is not None and tl.num_programs(axis=rank_axis) != sizes["n_ranks"]:
        along = "PEs of a cube (grid axis 0)" if rank_axis == 0 else "cubes (grid axis 1)"
        raise ValueError(f"{kernel}: n_ranks = {sizes['n_ranks']}, but the grid has "
                         f"{tl.num_programs(axis=rank_axis)} {along}: launch it with one rank per "
                         f"program along rank_axis {rank_axis}")
    return tuple(sizes.values())


#: the most blocks a kernel plans per rank (query blocks; K/V blocks times the K/V heads): its
#: Python lists of blocks stay small (a few hundred MiB at most) and any launch within it is one a
#: trace can finish; past it a kernel would run the host out of memory before its first load's
#: bounds check could say the arrays are too small
MAX_BLOCKS = 1 << 22


def _check_block_counts(kernel: str, S_q: int, S_kv: int, h_kv: int, block_q: int | None = None,
                        block_kv: int | None = None) -> None:
    """Refuse (ValueError) a launch planning more than MAX_BLOCKS blocks per rank."""
    counts = []
    if block_q is not None:
        counts.append(("query blocks", -(-S_q // min(block_q, S_q)), f"S_q = {S_q}, block_q = {block_q}"))
    if block_kv is not None:
        counts.append(("K/V blocks (over the h_kv heads)", h_kv * -(-S_kv // min(block_kv, S_kv)),
                       f"S_kv_per_rank = {S_kv}, block_kv = {block_kv}, h_kv = {h_kv}"))
    for what, n, given in counts:
        if n > MAX_BLOCKS:
            raise ValueError(f"{kernel}: {given} make {n:,} {what} per rank, more than the "
                             f"{MAX_BLOCKS:,} (2**22) a kernel plans: larger blocks, or a shorter "
                             f"sequence per rank (more ranks)")


def _positive_ints(kernel: str, **sizes) -> dict:
    """Each size as a Python int, checked >= 1: ints and numpy integers (from shape arithmetic)
    pass; bools, floats and anything else raise ValueError naming the argument."""
    out = {}
    for name, v in sizes.items():
        if not is_whole(v) or v < 1:
            raise ValueError(f"{kernel}: {name} must be a positive int, got {v!r}")
        out[name] = int(v)
    return out


def _rank(rank_axis, tl):
    """This program's rank, or None for a PE that stays silent (rank_axis 1: all but PE 0)."""
    if rank_axis != 0 and tl.program_id(axis=0) != 0:
        return None
    return tl.program_id(axis=rank_axis)


def _load_q(tl, q_ptr, q0, rows, g, G, h_q, d, scale):
    """rows x (G*d) of group g from row q0 (row stride h_q*d), viewed (rows*G, d), times
    ``scale`` in f32. Rounding q * scale to f16 would put an error of |s| * 2**-11 on every score
    (0.3 at score std 30); an f32 operand costs the dot no cycles while (R + C) * K * 4 bytes per
    fold stay under the SRAM bound (docs/hardware-model.md), as they do at d <= 190."""
    q = _load_f16(tl, "q", q_ptr + (q0 * h_q + g * G) * d * F16_BYTES, shape=(rows, G * d), stride=h_q * d)
    return tl.cast(_view(q, (rows * G, d)), F32) * scale


def _load_kv(tl, ptr, k0, n, g, h_kv, d, after, what="k and v"):
    return _load_f16(tl, what, ptr + (k0 * h_kv + g) * d * F16_BYTES, shape=(n, d), stride=h_kv * d, after=after)


def _load_f16(tl, what: str, ptr, **kw):
    """``tl.load(ptr, **kw)`` of an f16 array, read as the array holds it (the same command): an
    array of another dtype is named as the kernel's input, not as a load to rewrite."""
    x = tl.load(ptr, **kw)
    if x.dtype != F16:
        raise ValueError(f"{what} must be an f16 array (the attention kernels read f16 q, k and v, "
                         f"docs/kernels.md), got {x.dtype}: place it as f16, e.g. "
                         f"ctx.shard({what}.astype(np.float16), ...)")
    return x


def _init_stats(tl, R, d):
    # m starts at M_FLOOR, not -inf: a first block whose scores are all -inf (keys of -inf) then
    # gives p = exp(-inf - M_FLOOR) = 0, not exp(-inf - -inf) = NaN (FlashAttention-2 guards the
    # same in its softmax)
    return (tl.full((R, 1), M_FLOOR, dtype=F32), tl.zeros((R, 1), dtype=F32), tl.zeros((R, d), dtype=F32))


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
    tl.store(o_ptr + (q0 * h_q + g * G) * d * F16_BYTES, _view(out, (rows, G * d)), stride=h_q * d, dtype=F16)




#: masked scores: a finite stand-in for -inf, below M_FLOOR: a row with no visible key in one
#: block gives p = exp(-1e30 - M_FLOOR) = 0 (and l = 0) rather than exp(-inf - -inf) = NaN; the
#: first visible key rescales such a row's partial sums by exp(M_FLOOR - m) = 0 (decode: a rank
#: that sees none of its keys has l = 0, a partial o = 0 with lse ~ M_FLOOR, which every merge
#: with a seen key weighs 0)
MASKED_SCORE = -1e30
#: the least running max m: above MASKED_SCORE, so a masked key weighs exp(-1e30 - m) = 0 however
#: few keys a row sees (a row whose visible keys all score -inf ends 0 / 0 = NaN, as softmax of
#: them does, not the mean of the masked ones), and far below any finite score of f16 inputs
#: (|s| < 2**40), so m, and every p and rescale, is otherwise what it would be from -inf
M_FLOOR = -1e29


def _causal_mask(tl, s, q_pos0, k_pos0, G):
    """``s`` (R, n) with the scores of keys after their query set to MASKED_SCORE. Row rho is
    query position q_pos0 + rho // G (the G heads of a query row are adjacent), column j key
    k_pos0 + j."""
    R, n = s.shape
    qpos = tl.arange(q_pos0 * G, q_pos0 * G + R) // G
    kpos = tl.arange(k_pos0, k_pos0 + n)
    return tl.where(qpos[:, None] >= kpos[None, :], s, MASKED_SCORE)
