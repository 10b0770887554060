# cython: language_level=3
"""tl.range replay's inner loop (kernbench/language/loops.py): a loop body's commands, tiled.

The body B was traced; iteration m after it is B with its operands that name tensors of B or of
the iteration before moved on by m * D tensors, and its results numbered m * made further on
(made: results B makes). This writes those copies as whole command records, one pass in C,
instead of building each field with numpy; and the trace store's flush of traced rows
(:func:`fill_records`), one pass in C too.

Ctrl-C: the passes that can run over every command of a launch (writing or comparing a tiling's
copies, reading rows back, the flush) run without the GIL and poll Python's signal handlers every
SIGNAL_PERIOD rows (the engine's signal poll, _types.pxd); when one raises (KeyboardInterrupt),
the pass stops and the function raises that exception once the GIL is back, its output partly
written.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject
from ._types cimport (Command, SIGNAL_PERIOD, SignalPoll, signal_poll_start, signal_poll_raise,
                      signal_tick, signal_run_end)

import numpy as np

#: a reader's tables when it has no tilings (CommandSource.of_rows): read-only, so sharing them
#: shares nothing a reader could change
_NO_TILES = np.zeros((0, T_COLS), np.int64)
_NO_TILES.flags.writeable = False
_NO_SHIFT = np.zeros(1, np.uint8)
_NO_SHIFT.flags.writeable = False


cdef inline void _move_on(Command* c, const uint8_t* shift, int64_t sd, int64_t rd) noexcept nogil:
    # a body row moved on: operand k by shift[k] * sd, the result (if any) by rd
    if shift[0]:
        c.src0 = <int32_t> (c.src0 + sd)
    if shift[1]:
        c.src1 = <int32_t> (c.src1 + sd)
    if shift[2]:
        c.src2 = <int32_t> (c.src2 + sd)
    if c.dst >= 0:
        c.dst = <int32_t> (c.dst + rd)


def tile_commands(const Command[::1] body, Command[::1] out, const uint8_t[:, ::1] shift,
                  int64_t R, int64_t D, int64_t made) -> None:
    """``out[(m - 1) * n + j]`` = ``body[j]`` moved on m iterations, for m = 1..R: operand k
    (src0, src1, src2) plus ``shift[j, k] * m * D``, the result (if any) plus ``m * made``.
    ``body``: (n,) records; ``out``: (R * n,); ``shift``: (n, 3) of 0/1. Raises ValueError on
    shapes that do not fit (nothing written)."""
    cdef int64_t n = body.shape[0], m, j, base, sd, rd, left, m0 = 1, m1
    cdef Command c
    cdef SignalPoll poll
    if out.shape[0] != R * n or shift.shape[0] != n or shift.shape[1] != 3 or R < 0:
        raise ValueError("tile_commands: shapes do not fit")
    signal_poll_start(&poll, R * n)
    with nogil:
        left = poll.left
        while n and m0 <= R:  # copies m0..m1 in one run between two signal checks
            m1 = signal_run_end(m0, R + 1, (left - 1) // n + 1)
            for m in range(m0, m1):
                base = (m - 1) * n
                sd = m * D
                rd = m * made
                for j in range(n):
                    c = body[j]
                    _move_on(&c, &shift[j, 0], sd, rd)
                    out[base + j] = c
            if signal_tick(&poll, &left, (m1 - m0) * n):
                break
            m0 = m1
    signal_poll_raise(&poll)


cdef inline bint _is_moved_on(const Command* body, const Command* rows, int64_t n, int64_t sd,
                              const uint8_t* shift) noexcept nogil:
    # rows[0 .. n] is body moved on by sd (operands with a shift flag and the results alike)
    cdef int64_t j
    cdef Command c
    for j in range(n):
        c = body[j]
        _move_on(&c, &shift[3 * j], sd, sd)
        if memcmp(&c, &rows[j], sizeof(Command)) != 0:
            return False
    return True


def tiles_repeat(const Command[::1] rows, int64_t n, int64_t iters, int64_t made,
                 const uint8_t[:, ::1] shift) -> bool:
    """True if ``rows`` ((iters * n,) records) are their first n (a body) followed by iters - 1
    copies of it, copy i being what :func:`tile_commands` writes for m = i with D = made: operand
    k of row j moved on by ``shift[j, k] * i * made``, its result (if any) by ``i * made``. One
    read of the rows, in C (the engine's steady-state jumps rely on it: kernbench._core.api).
    Raises ValueError on shapes that do not fit."""
    cdef int64_t i, left, i0 = 1, i1
    cdef bint ok = True
    cdef SignalPoll poll
    if rows.shape[0] != iters * n or shift.shape[0] != n or shift.shape[1] != 3 or iters < 1:
        raise ValueError("tiles_repeat: shapes do not fit")
    signal_poll_start(&poll, iters * n)
    with nogil:
        left = poll.left
        while n and ok and i0 < iters:  # iterations i0..i1 in one run between two signal checks
            i1 = signal_run_end(i0, iters, (left - 1) // n + 1)
            for i in range(i0, i1):
                if not _is_moved_on(&rows[0], &rows[i * n], n, i * made, &shift[0, 0]):
                    ok = False
                    break
            if ok and signal_tick(&poll, &left, (i1 - i0) * n):
                break
            i0 = i1
    signal_poll_raise(&poll)
    return ok


def run_step(const Command[::1] b0, const Command[::1] b1, uint8_t[:, ::1] shift,
             int64_t[::1] fixed):
    """What the second iteration ``b1`` of a run does to its first ``b0`` ((n,) records each):
    the steady-state regions' reading of a repeating run (kernbench._core.api._run_body). None
    unless every row of ``b1`` is its row of ``b0`` with the same fields but the tensor
    numbers (opcode, unit, m, n, k, nbytes, sub, port, esize), the results of ``b0`` are
    numbers first .. first + made - 1 in order and those of ``b1`` each ``made`` further on,
    and each operand is in both or in neither, the same number (fixed: written to ``fixed``)
    or ``made`` further on (moved: ``shift[j, k] = 1``). Else (made, dlo, first, n_fixed):
    dlo the lowest iteration a moved operand of ``b0`` reads, relative to it (<= 0: floor of
    (operand - first) / made), ``fixed[:n_fixed]`` the fixed operands in row order (repeats
    kept). Raises ValueError on shapes that do not fit: ``shift`` (n, 3), ``fixed`` >= 3 n."""
    cdef int64_t n = b0.shape[0], j, k, made = 0, first = -1, dlo = 0, nf = 0, v0, v1, q, a
    cdef const Command* x
    cdef const Command* y
    cdef bint ok = True
    if b1.shape[0] != n or shift.shape[0] != n or shift.shape[1] != 3 or fixed.shape[0] < 3 * n:
        raise ValueError("run_step: shapes do not fit")
    with nogil:
        for j in range(n):
            x, y = &b0[j], &b1[j]
            if (x.opcode != y.opcode or x.unit != y.unit or x.m != y.m or x.n != y.n or x.k != y.k
                    or x.nbytes != y.nbytes or x.sub != y.sub or x.port != y.port
                    or x.esize != y.esize or (x.dst >= 0) != (y.dst >= 0)):
                ok = False
                break
            if x.dst >= 0:
                if made == 0:
                    first = x.dst
                elif x.dst != first + made:
                    ok = False
                    break
                made += 1
        ok = ok and made > 0
        for j in range(n if ok else 0):
            x, y = &b0[j], &b1[j]
            if x.dst >= 0 and y.dst != x.dst + made:
                ok = False
                break
            for k in range(3):
                v0 = x.src0 if k == 0 else x.src1 if k == 1 else x.src2
                v1 = y.src0 if k == 0 else y.src1 if k == 1 else y.src2
                shift[j, k] = 0
                if (v0 >= 0) != (v1 >= 0):
                    ok = False
                    break
                if v0 < 0:
                    continue
                if v1 - v0 == made:
                    shift[j, k] = 1
                    a = v0 - first
                    q = a // made
                    if a < 0 and q * made != a:  # (C division truncates; the floor is wanted)
                        q -= 1
                    if q < dlo:
                        dlo = q
                elif v1 == v0:
                    fixed[nf] = v0
                    nf += 1
                else:
                    ok = False
                    break
            if not ok:
                break
    if not ok:
        return None
    return made, dlo, first, nf


def source_repeats(CommandSource src, int64_t c0, int64_t n, int64_t iters, int64_t made,
                   const uint8_t[:, ::1] shift) -> bool:
    """:func:`tiles_repeat` of rows c0 .. c0 + iters * n of ``src``, read one iteration at a
    time (the array is never expanded)."""
    cdef int64_t i, left
    cdef bint ok = True
    cdef int rc = 0
    cdef SignalPoll poll
    if shift.shape[0] != n or shift.shape[1] != 3 or iters < 1 or n < 1:
        raise ValueError("source_repeats: shapes do not fit")
    if c0 < 0 or c0 + n * iters > src.src.n:
        return False
    body_arr = np.empty(n, src._keep[0].dtype)
    it_arr = np.empty(n, src._keep[0].dtype)
    cdef Command[::1] body = body_arr, it = it_arr
    signal_poll_start(&poll, iters * n)
    with nogil:
        left = poll.left
        rc = fill_rows(&src.src, c0, c0 + n, &body[0])
        for i in range(1, iters):
            if rc or signal_tick(&poll, &left, n):
                break
            rc = fill_rows(&src.src, c0 + i * n, c0 + (i + 1) * n, &it[0])
            if rc == 0 and not _is_moved_on(&body[0], &it[0], n, i * made, &shift[0, 0]):
                ok = False
                break
    signal_poll_raise(&poll)
    return ok and rc == 0


cdef inline bint _operands_moved_on(int64_t a0, int64_t a1, int64_t a2, int64_t b0, int64_t b1,
                                    int64_t b2, int64_t t0, int64_t D, int64_t t_a,
                                    uint8_t* shift) noexcept nogil:
    # tl.range's proof, one row: B's operands are A's, those at or above t0 moved on by D; then
    # shift[k] = B's operand k is at or above t_a (replay moves it on)
    if (a0 + D if a0 >= t0 else a0) != b0 or (a1 + D if a1 >= t0 else a1) != b1 \
            or (a2 + D if a2 >= t0 else a2) != b2:
        return False
    shift[0], shift[1], shift[2] = b0 >= t_a, b1 >= t_a, b2 >= t_a
    return True


def source_moved_on(CommandSource src, int64_t a, int64_t b, int64_t n, int64_t t0, int64_t D,
                    int64_t t_a, uint8_t[:, ::1] shift, int64_t rows=4096) -> bool:
    """True if rows b .. b + n of ``src`` are rows a .. a + n with each operand (src0, src1,
    src2) at or above ``t0`` moved on by ``D`` and the others (before ``t0``, or -1) unchanged:
    tl.range's proof that iteration B repeats iteration A (kernbench.language.loops; the caller
    compares the sites). Then ``shift`` ((n, 3) uint8) is 1 for each operand of B at or above
    ``t_a`` (those replay moves on). Both ranges are read ``rows`` rows at a time, never
    expanded. Raises ValueError on shapes that do not fit or rows outside the array."""
    cdef int64_t x, y, j, left
    cdef int rc = 0
    cdef bint ok = True
    cdef SignalPoll poll
    if shift.shape[0] != n or shift.shape[1] != 3 or n < 0 or rows < 1:
        raise ValueError("source_moved_on: shapes do not fit")
    if a < 0 or b < 0 or a + n > src.src.n or b + n > src.src.n:
        raise ValueError(f"source_moved_on: rows outside 0..{src.src.n}")
    if n == 0:
        return True
    ba_arr = np.empty(min(n, rows), src._keep[0].dtype)
    bb_arr = np.empty(min(n, rows), src._keep[0].dtype)
    cdef Command[::1] ba = ba_arr, bb = bb_arr
    signal_poll_start(&poll, n)
    with nogil:
        left = poll.left
        x = 0
        while x < n and ok:
            y = x + ba.shape[0] if x + ba.shape[0] < n else n
            if signal_tick(&poll, &left, y - x):
                break
            rc = fill_rows(&src.src, a + x, a + y, &ba[0])
            if rc == 0:
                rc = fill_rows(&src.src, b + x, b + y, &bb[0])
            if rc:
                break
            for j in range(y - x):
                if not _operands_moved_on(ba[j].src0, ba[j].src1, ba[j].src2, bb[j].src0,
                                          bb[j].src1, bb[j].src2, t0, D, t_a, &shift[x + j, 0]):
                    ok = False
                    break
            x = y
    signal_poll_raise(&poll)
    if rc:
        raise ValueError("source_moved_on: rows outside the array")
    return ok


def source_reads_any(CommandSource src, int64_t x, int64_t y, const int64_t[::1] watch,
                     int64_t rows=4096) -> bool:
    """True if an operand (src0, src1, src2) of rows x..y of ``src`` is one of ``watch``
    (ascending int64): does a tl.range iteration read a tensor whose value tracing knows
    (kernbench.language.loops)? Read ``rows`` rows at a time, never expanded. Raises ValueError
    for rows outside the array."""
    cdef int64_t i, j, z, left
    cdef int rc = 0
    cdef bint hit = False
    cdef int64_t n_w = watch.shape[0]
    cdef SignalPoll poll
    if x < 0 or y > src.src.n or x > y or rows < 1:
        raise ValueError(f"source_reads_any: rows {x}..{y} outside 0..{src.src.n}")
    if n_w == 0 or x == y:
        return False
    buf_arr = np.empty(min(y - x, rows), src._keep[0].dtype)
    cdef Command[::1] buf = buf_arr
    cdef int64_t ops[3]
    signal_poll_start(&poll, y - x)
    with nogil:
        left = poll.left
        i = x
        while i < y and not hit and rc == 0:
            z = i + buf.shape[0] if i + buf.shape[0] < y else y
            if signal_tick(&poll, &left, z - i):
                break
            rc = fill_rows(&src.src, i, z, &buf[0])
            for j in range(z - i if rc == 0 else 0):
                ops[0], ops[1], ops[2] = buf[j].src0, buf[j].src1, buf[j].src2
                if _watched(ops[0], &watch[0], n_w) or _watched(ops[1], &watch[0], n_w) \
                        or _watched(ops[2], &watch[0], n_w):
                    hit = True
                    break
            i = z
    signal_poll_raise(&poll)
    return hit


cdef inline bint _watched(int64_t v, const int64_t* watch, int64_t n_w) noexcept nogil:
    # Is v one of watch[0 .. n_w] (ascending, n_w >= 1)? A binary search: watch[lo] <= v < watch[hi].
    cdef int64_t lo = 0, hi = n_w, mid
    if v < watch[0] or v > watch[n_w - 1]:
        return False
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if watch[mid] <= v:
            lo = mid
        else:
            hi = mid
    return watch[lo] == v


def rows_read_any(const int64_t[:, ::1] rows, const int64_t[::1] watch) -> bool:
    """:func:`source_reads_any` for rows not yet flushed: True if an operand (columns 1..3) of
    ``rows`` ((n, 4) int64: site, src0, src1, src2, as they wait in the store) is one of
    ``watch`` (ascending int64). Raises ValueError on rows that are not (n, 4)."""
    cdef int64_t j, n = rows.shape[0], n_w = watch.shape[0]
    cdef bint hit = False
    if rows.shape[1] != 4:
        raise ValueError("rows_read_any: rows must be (n, 4)")
    if n_w == 0:
        return False
    with nogil:
        for j in range(n):
            if _watched(rows[j, 1], &watch[0], n_w) or _watched(rows[j, 2], &watch[0], n_w) \
                    or _watched(rows[j, 3], &watch[0], n_w):
                hit = True
                break
    return hit


def fill_records(const int64_t[:, ::1] rec, const Command[::1] table, const int64_t[:, ::1] fields,
                 int64_t col, const int64_t[::1] starts, const int64_t[::1] base, Command[::1] out,
                 int32_t[::1] sites, int64_t[::1] made_bytes, int64_t[::1] made) -> int:
    """The trace store's flush (kernbench.language.store.TraceStore): rows ``rec`` ((n, 4)
    int64: site, src0, src1, src2) as command records. ``out[i]`` is ``table[site]`` with the
    operands of row i and, if its site makes a result (of ``fields[site, col]`` >= 0 bytes;
    SiteTable.fields, ``col`` = OUT_BYTES), the result number ``base[k]`` + the results made
    before it in its segment k (rows ``starts[k]`` up to ``starts[k + 1]``, the last up to n),
    else -1; ``sites[i]`` = site. The results' bytes go to ``made_bytes`` in row order and each
    segment's count of results to ``made[k]``; returns how many results in all. One pass in C
    (numpy took ~25 calls per flush). Raises ValueError on shapes that do not fit, segments out
    of order or a site outside the table (nothing is written then)."""
    cdef int64_t n = rec.shape[0], K = starts.shape[0], n_sites = table.shape[0]
    cdef int64_t i, k, hi, site, cnt, tot = 0, nb, left, a, e
    cdef Command c
    cdef SignalPoll poll
    if (rec.shape[1] != 4 or out.shape[0] != n or sites.shape[0] != n or made_bytes.shape[0] < n
            or base.shape[0] != K or made.shape[0] != K or fields.shape[0] != n_sites
            or col < 0 or col >= fields.shape[1]
            or (K == 0 and n > 0) or (K > 0 and starts[0] != 0)):
        raise ValueError("fill_records: shapes do not fit")
    for k in range(K):
        if starts[k] > (starts[k + 1] if k + 1 < K else n):
            raise ValueError("fill_records: segments out of order")
    for i in range(n):
        if rec[i, 0] < 0 or rec[i, 0] >= n_sites:
            raise ValueError(f"fill_records: site {rec[i, 0]} outside the table (0..{n_sites})")
    signal_poll_start(&poll, n)
    with nogil:
        left = poll.left
        for k in range(K):
            hi = starts[k + 1] if k + 1 < K else n
            cnt = base[k]
            a = starts[k]
            while a < hi:  # (in runs between two signal checks)
                e = signal_run_end(a, hi, left)
                for i in range(a, e):
                    site = rec[i, 0]
                    c = table[site]
                    # (int32 operands, as numpy's assignment of int64 ones casts them)
                    c.src0 = <int32_t> rec[i, 1]
                    c.src1 = <int32_t> rec[i, 2]
                    c.src2 = <int32_t> rec[i, 3]
                    nb = fields[site, col]
                    if nb >= 0:
                        c.dst = <int32_t> cnt
                        cnt += 1
                        made_bytes[tot] = nb
                        tot += 1
                    else:
                        c.dst = -1
                    out[i] = c
                    sites[i] = <int32_t> site
                if signal_tick(&poll, &left, e - a):
                    break
                a = e
            made[k] = cnt - base[k]
            if poll.raised:
                break
    signal_poll_raise(&poll)
    return tot


def rows_moved_on(const int64_t[:, ::1] ra, const int64_t[:, ::1] rb, int64_t t0, int64_t D,
                  int64_t t_a, uint8_t[:, ::1] shift) -> bool:
    """:func:`source_moved_on` for rows not yet flushed: ``ra`` and ``rb`` ((n, 4) int64: site,
    src0, src1, src2) are iterations A and B; True if B has A's sites and A's operands, those at
    or above ``t0`` moved on by ``D``; then ``shift[j, k]`` = operand k of B's row j is at or
    above ``t_a``. Raises ValueError on shapes that do not fit."""
    cdef int64_t n = ra.shape[0], j
    cdef bint ok = True
    if rb.shape[0] != n or ra.shape[1] != 4 or rb.shape[1] != 4 or shift.shape[0] != n \
            or shift.shape[1] != 3:
        raise ValueError("rows_moved_on: shapes do not fit")
    with nogil:
        for j in range(n):
            if ra[j, 0] != rb[j, 0] or not _operands_moved_on(
                    ra[j, 1], ra[j, 2], ra[j, 3], rb[j, 1], rb[j, 2], rb[j, 3], t0, D, t_a, &shift[j, 0]):
                ok = False
                break
    return ok


# -- the handles a proof tracks (loops._plan) -----------------------------------------------
cdef extern from "Python.h":
    Py_ssize_t _refcount "Py_REFCNT" (PyObject* o)  # (on the pointer: no reference taken)

# A handle only the tracking list holds (reference count 1) is unreachable: no kernel variable,
# container or frame names it, so whether it is moved on or what it looked like changes nothing
# a kernel can see. Most of a traced body's handles are such temporaries; these two skip them.
# (Counts are read on the list's borrowed references, before any is taken.)


def handles_alike(list track, Py_ssize_t sa, Py_ssize_t sb, Py_ssize_t n, D,
                  lo) -> bool:
    """tl.range's proof on the handles iterations A and B made (``track[sa:sa + n]`` and
    ``track[sb:sb + n]``, one by one): every pair of which one is still held elsewhere has the
    same type (a transposed view or not) and shape, and B's ``id`` is A's plus ``D`` if A's is
    at least ``lo``, else A's (:func:`handles_moving` finds no shape moving). Raises ValueError
    if the ranges leave the list."""
    moved = handles_moving(track, sa, sb, n, D, lo)
    return moved is not None and not moved


def handles_moving(list track, Py_ssize_t sa, Py_ssize_t sb, Py_ssize_t n, D, lo):
    """tl.range's proof on the handles iterations A and B made (``track[sa:sa + n]`` and
    ``track[sb:sb + n]``, one by one): every pair of which one is still held elsewhere has the
    same type (a transposed view or not), and B's ``id`` is A's plus ``D`` if A's is at least
    ``lo``, else A's. Then the list of ``(j, A's shape, B's shape)`` of those pairs whose
    shapes differ (a body whose shapes move, tl.range(..., shapes_move=True): the caller checks
    that they move by a step), else None. Raises ValueError if the ranges leave the list."""
    cdef Py_ssize_t j
    cdef PyObject* px
    cdef PyObject* py
    if sa < 0 or sb < 0 or n < 0 or sa + n > len(track) or sb + n > len(track):
        raise ValueError("handles_moving: ranges outside the list")
    out = []
    for j in range(n):
        px = PyList_GET_ITEM(track, sa + j)
        py = PyList_GET_ITEM(track, sb + j)
        if _refcount(px) == 1 and _refcount(py) == 1:
            continue
        x = <object> px
        y = <object> py
        if type(x) is not type(y) or y.id - x.id != (D if x.id >= lo else 0):
            return None
        if x.shape != y.shape:
            out.append((j, x.shape, y.shape))
    return out


def live_handles(list track, Py_ssize_t a, lo, Py_ssize_t z=-1) -> list:
    """The handles of ``track[a:z]`` (z = -1: to the end) still held elsewhere whose ``id`` is
    at least ``lo``: those tl.range replay moves on. Raises ValueError if ``a`` or ``z`` is
    outside the list."""
    cdef Py_ssize_t j, n = len(track)
    cdef PyObject* p
    if z == -1:
        z = n
    if a < 0 or a > z or z > n:
        raise ValueError("live_handles: start or end outside the list")
    out = []
    for j in range(a, z):
        p = PyList_GET_ITEM(track, j)
        if _refcount(p) == 1:
            continue
        h = <object> p
        if h.id >= lo:
            out.append(h)
    return out


# -- reading a tiled array without expanding it (SEG_* and T_* columns: _replay.pxd) -------


cdef const Command* traced_rows(const CmdSource* s, int64_t x, int64_t y) noexcept nogil:
    # Rows x..y where the trace keeps them, when they are all traced rows of one segment (what
    # fill_rows would copy from there, byte for byte); NULL otherwise (a tiling's rows, or out of
    # range).
    cdef int64_t lo = 0, hi = s.n_seg, mid
    cdef const int64_t* g
    if x < 0 or y > s.n or x >= y:
        return NULL
    while hi - lo > 1:  # the segment holding x (as fill_rows finds it)
        mid = (lo + hi) >> 1
        if s.seg[mid * SEG_COLS + SEG_LO] <= x:
            lo = mid
        else:
            hi = mid
    g = &s.seg[lo * SEG_COLS]
    if g[SEG_TILE] >= 0 or y > g[SEG_HI]:
        return NULL
    return &s.literal[g[SEG_AT] + x - g[SEG_LO]]


cdef int fill_rows(const CmdSource* s, int64_t x, int64_t y, Command* out) noexcept nogil:
    # Rows x..y of the array, written to out[0 .. y - x]: traced rows copied, a tiling's rows
    # as its body's rows (read the same way: a body precedes its copies) moved on. Moves add up,
    # so a row copied by nested tilings is its traced row moved on by every level's shift, what
    # TiledCommands.expand (one tile_commands per tiling, in order) writes. -1 if out of range.
    cdef int64_t lo = 0, hi = s.n_seg, mid, k, e, off, n, m, j0, j1, j
    cdef const int64_t* g
    cdef const int64_t* t
    if x < 0 or y > s.n or x > y:
        return -1
    if x == y:
        return 0
    while hi - lo > 1:  # the segment holding x: the last with lo <= x
        mid = (lo + hi) >> 1
        if s.seg[mid * SEG_COLS + SEG_LO] <= x:
            lo = mid
        else:
            hi = mid
    k = lo
    while x < y:
        g = &s.seg[k * SEG_COLS]
        e = g[SEG_HI] if g[SEG_HI] < y else y
        if g[SEG_TILE] < 0:
            memcpy(out, &s.literal[g[SEG_AT] + x - g[SEG_LO]], (e - x) * sizeof(Command))
            out += e - x
        else:
            t = &s.tile[g[SEG_TILE] * T_COLS]
            n = t[T_Z] - t[T_A]
            off = x - t[T_LO]
            while off < e - t[T_LO]:
                m = off // n + 1
                j0 = off % n
                j1 = j0 + (e - t[T_LO] - off)
                if j1 > n:
                    j1 = n
                if fill_rows(s, t[T_A] + j0, t[T_A] + j1, out):
                    return -1
                for j in range(j0, j1):
                    _move_on(&out[j - j0], &s.shift[t[T_SHIFT] + 3 * j], m * t[T_D], m * t[T_MADE])
                out += j1 - j0
                off += j1 - j0
        x = e
        k += 1
    return 0


cdef class CommandSource:
    """A tiled command array (TiledCommands) as C reads it: :meth:`rows` and :meth:`take` give
    any of its rows, exactly as the expanded array holds them, without expanding the rest.

    ``n``: rows of the array; ``bounds`` ((k, 2) int64): the traced rows' global ranges, in
    order, held one after the other in ``literal`` ((sum of the ranges,) records);
    ``tiles``: the tilings ``(a, z, lo, R, D, shift, made)`` in order (TiledCommands.tiles).
    Raises ValueError if they do not cover 0..n exactly once, in order."""

    def __init__(self, int64_t n, bounds, literal, tiles):
        segs, flags, tile_rows = [], [], []
        at = fo = 0
        for a, z in np.asarray(bounds, np.int64).reshape(-1, 2).tolist():
            if z > a:
                segs.append((a, z, -1, at))
                at += z - a
        for i, (a, z, lo, R, D, shift, made) in enumerate(tiles):
            segs.append((lo, lo + R * (z - a), i, 0))
            tile_rows.append((a, z, lo, R, D, made, fo))
            flags.append(np.ascontiguousarray(shift, np.uint8).ravel())
            fo += 3 * (z - a)
            if not 0 <= a < z <= lo:
                raise ValueError("CommandSource: a tiling's body must precede its copies")
        segs.sort()
        seg = np.array(segs, np.int64).reshape(-1, SEG_COLS)
        if len(seg) and (seg[0, SEG_LO] != 0 or seg[len(seg) - 1, SEG_HI] != n
                         or np.any(seg[1:, SEG_LO] != seg[:-1, SEG_HI])):
            raise ValueError("CommandSource: traced rows and tilings do not cover the array")
        if not len(seg) and n:
            raise ValueError("CommandSource: no rows")
        lit = np.ascontiguousarray(literal)
        if len(lit) != at:
            raise ValueError("CommandSource: literal rows and bounds disagree")
        tile = np.array(tile_rows, np.int64).reshape(-1, T_COLS)
        shift = np.concatenate(flags) if flags else np.zeros(1, np.uint8)
        self._keep = (lit, seg, tile, shift)
        cdef const Command[::1] lv = lit
        cdef const int64_t[:, ::1] sv = seg
        cdef const int64_t[:, ::1] tv = tile
        cdef const uint8_t[::1] fv = shift
        self.src.literal = &lv[0] if lv.shape[0] else NULL
        self.src.n = n
        self.src.n_seg = sv.shape[0]
        self.src.seg = &sv[0, 0] if sv.shape[0] else NULL
        self.src.tile = &tv[0, 0] if tv.shape[0] else NULL
        self.src.shift = &fv[0]

    @staticmethod
    def of_rows(rows):
        """A reader of ``rows`` (a contiguous (n,) COMMAND_DTYPE array) alone: what
        ``CommandSource(n, ((0, n),), rows, ())`` builds, without its general checks (one run
        of traced rows: tl.range's proofs read their loop's rows this way, many times a
        launch). Raises ValueError for anything else."""
        if not isinstance(rows, np.ndarray) or rows.ndim != 1 or not rows.flags.c_contiguous:
            raise ValueError("CommandSource.of_rows: a contiguous 1-D array of rows")
        cdef const Command[::1] lv = rows
        cdef int64_t n = lv.shape[0]
        cdef CommandSource out = CommandSource.__new__(CommandSource)
        seg = np.empty((1 if n else 0, SEG_COLS), np.int64)
        cdef int64_t[:, ::1] sv = seg
        cdef const uint8_t[::1] fv = _NO_SHIFT
        if n:
            sv[0, SEG_LO], sv[0, SEG_HI], sv[0, SEG_TILE], sv[0, SEG_AT] = 0, n, -1, 0
        out._keep = (rows, seg, _NO_TILES, _NO_SHIFT)
        out.src.literal = &lv[0] if n else NULL
        out.src.n = n
        out.src.n_seg = sv.shape[0]
        out.src.seg = &sv[0, 0] if n else NULL
        out.src.tile = NULL
        out.src.shift = &fv[0]
        return out

    @property
    def n(self) -> int:
        return self.src.n

    @property
    def segments(self) -> np.ndarray:
        """(k, 4) int64, in row order: each range of rows (lo, hi), the tiling it is a copy of
        (-1: traced rows) and, for traced rows, their offset in ``literal``. A copy."""
        return self._keep[1].copy()

    def rows(self, int64_t x, int64_t y, out=None):
        """Rows x..y, (y - x,) of the array's dtype (written to ``out`` if given)."""
        if out is None:
            out = np.empty(max(y - x, 0), self._keep[0].dtype)
        cdef Command[::1] o = out
        cdef int rc
        cdef int64_t a, z, left
        cdef SignalPoll poll
        if o.shape[0] != y - x:
            raise ValueError("CommandSource.rows: out has the wrong length")
        signal_poll_start(&poll, y - x)
        with nogil:
            # SIGNAL_PERIOD rows at a time, the signal poll between (each call reads its rows
            # exactly as one call over all of them would)
            rc = -1 if x < 0 or y > self.src.n or x > y else 0  # (fill_rows' range check)
            left = poll.left
            a = x
            while rc == 0 and a < y:
                z = a + SIGNAL_PERIOD if y - a > SIGNAL_PERIOD else y
                rc = fill_rows(&self.src, a, z, &o[a - x])
                if rc == 0 and signal_tick(&poll, &left, z - a):
                    break
                a = z
        signal_poll_raise(&poll)
        if rc:
            raise ValueError(f"CommandSource.rows: {x}..{y} outside 0..{self.src.n}")
        return out

    def take(self, idx):
        """Rows ``idx`` (any int array of indices in 0..n), in that order: vectorized, each
        tiling's rows read as their body's (the distinct body rows once) moved on."""
        ix = np.asarray(idx, np.int64).ravel()
        if len(ix) and (ix.min() < 0 or ix.max() >= self.src.n):
            raise ValueError(f"CommandSource.take: an index outside 0..{self.src.n}")
        return self._take(ix)

    def _take(self, ix):
        lit, seg, tile, shift = self._keep
        out = np.empty(len(ix), lit.dtype)
        if not len(ix):
            return out
        rec = np.dtype((np.void, lit.dtype.itemsize))  # whole records: one copy, not per field
        k = np.searchsorted(seg[:, SEG_LO], ix, "right") - 1
        tix = seg[k, SEG_TILE]
        traced = np.flatnonzero(tix < 0)
        kl = k[traced]
        out.view(rec)[traced] = lit.view(rec)[seg[kl, SEG_AT] + ix[traced] - seg[kl, SEG_LO]]
        tiled = np.flatnonzero(tix >= 0)
        if len(tiled):
            t = tile[tix[tiled]]
            n = t[:, T_Z] - t[:, T_A]
            off = ix[tiled] - t[:, T_LO]
            m, j = off // n + 1, off % n
            body, inv = np.unique(t[:, T_A] + j, return_inverse=True)
            rows = self._take(body).view(rec)[inv].view(lit.dtype)
            flags = shift[(t[:, T_SHIFT] + 3 * j)[:, None] + np.arange(3)].astype(np.int64)
            sd = m * t[:, T_D]
            for q, f in enumerate(("src0", "src1", "src2")):
                rows[f] = (rows[f] + flags[:, q] * sd).astype(np.int32)
            dst = rows["dst"].astype(np.int64)
            rows["dst"] = np.where(dst >= 0, dst + m * t[:, T_MADE], dst).astype(np.int32)
            out.view(rec)[tiled] = rows.view(rec)
        return out


cdef enum:
    _MAX_SIZES = 65535     # the most distinct sizes (uint16 indices)
    _SIZE_SLOTS = 1 << 17  # the hash table's slots: at most half full

#: the most distinct tensor sizes :func:`index_sizes` numbers (uint16 indices)
MAX_SIZES = _MAX_SIZES


def index_sizes(list parts, uint16_t[::1] out):
    """Every tensor's byte size as an index into a table of the distinct sizes: ``parts`` is
    a list of ``(sizes, R)`` (int64 arrays, each repeated R times in a row), ``out`` (uint16,
    as long as all of them) receives the indices, in order. Returns the table (int64, the sizes
    in the order first met: equal sizes, equal indices, so ``table[out]`` is the sizes joined),
    or None, ``out`` partly written, when there are more than MAX_SIZES distinct sizes. One
    pass in C, a hash of the sizes (a launch's tensors have a few hundred sizes at most);
    a repeated part is indexed once and its indices copied. Raises ValueError if ``out`` is too
    short or a part is repeated a negative number of times."""
    cdef int64_t total = 0, k = 0, n, R, i, j, v, h, done, nb, n_tab = 0
    cdef const int64_t[::1] a
    for part in parts:
        n, R = len(part[0]), int(part[1])
        if R < 0 or (n and R > (out.shape[0] - total) // n):  # (no product that overflows)
            raise ValueError("index_sizes: out is shorter than the parts" if R >= 0 else
                             f"index_sizes: a part repeated {R} times")
        total += n * R
    cdef int64_t* keys = <int64_t*> malloc(_SIZE_SLOTS * sizeof(int64_t))
    cdef int32_t* vals = <int32_t*> malloc(_SIZE_SLOTS * sizeof(int32_t))
    cdef int64_t* tab = <int64_t*> malloc((_MAX_SIZES + 1) * sizeof(int64_t))
    cdef bint full = False
    if keys == NULL or vals == NULL or tab == NULL:
        free(keys)
        free(vals)
        free(tab)
        raise MemoryError()
    try:
        for i in range(_SIZE_SLOTS):
            vals[i] = -1
        for part in parts:
            a = np.ascontiguousarray(part[0], np.int64)
            R = int(part[1])
            n = a.shape[0]
            if n == 0 or R <= 0:
                continue
            with nogil:
                for i in range(n):
                    v = a[i]
                    # (Fibonacci hashing: sizes are multiples of small powers of two)
                    h = <int64_t> ((<uint64_t> v * <uint64_t> 0x9E3779B97F4A7C15) >> 47)
                    while vals[h] >= 0 and keys[h] != v:
                        h = (h + 1) & (_SIZE_SLOTS - 1)
                    if vals[h] < 0:
                        if n_tab == _MAX_SIZES:
                            full = True
                            break
                        keys[h] = v
                        vals[h] = <int32_t> n_tab
                        tab[n_tab] = v
                        n_tab += 1
                    out[k + i] = <uint16_t> vals[h]
                if not full:
                    done = n  # the part's other R - 1 copies, in doubling blocks
                    while done < n * R:
                        nb = done if done < n * R - done else n * R - done
                        memcpy(&out[k + done], &out[k], nb * sizeof(uint16_t))
                        done += nb
            if full:
                return None
            k += n * R
        table = np.empty(n_tab, np.int64)
        for j in range(n_tab):
            table[j] = tab[j]
        return table
    finally:
        free(keys)
        free(vals)
        free(tab)
