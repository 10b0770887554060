# cython: language_level=3
"""tl.range replay's inner loop (kernbench/language/loops.py): a loop body's commands, tiled.

The body B was traced; iteration m after it is B with its operands that name tensors of B or of
the iteration before moved on by m * D tensors, and its results numbered m * made further on
(made: results B makes). This writes those copies as whole command records, one pass in C,
instead of building each field with numpy.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.string cimport memcmp
from ._types cimport Command


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
    cdef int64_t n = body.shape[0], m, j, base, sd, rd
    cdef Command c
    if out.shape[0] != R * n or shift.shape[0] != n or shift.shape[1] != 3 or R < 0:
        raise ValueError("tile_commands: shapes do not fit")
    with nogil:
        for m in range(1, R + 1):
            base = (m - 1) * n
            sd = m * D
            rd = m * made
            for j in range(n):
                c = body[j]
                _move_on(&c, &shift[j, 0], sd, rd)
                out[base + j] = c


def tiles_repeat(const Command[::1] rows, int64_t n, int64_t iters, int64_t made,
                 const uint8_t[:, ::1] shift) -> bool:
    """True if ``rows`` ((iters * n,) records) are their first n (a body) followed by iters - 1
    copies of it, copy i being what :func:`tile_commands` writes for m = i with D = made: operand
    k of row j moved on by ``shift[j, k] * i * made``, its result (if any) by ``i * made``. One
    read of the rows, in C (the engine's steady-state jumps rely on it: kernbench._core.api).
    Raises ValueError on shapes that do not fit."""
    cdef int64_t i, j, sd
    cdef Command c
    cdef bint ok = True
    if rows.shape[0] != iters * n or shift.shape[0] != n or shift.shape[1] != 3 or iters < 1:
        raise ValueError("tiles_repeat: shapes do not fit")
    with nogil:
        for i in range(1, iters):
            sd = i * made
            for j in range(n):
                c = rows[j]
                _move_on(&c, &shift[j, 0], sd, sd)
                if memcmp(&c, &rows[i * n + j], sizeof(Command)) != 0:
                    ok = False
                    break
            if not ok:
                break
    return ok
