# cython: language_level=3
"""The program checks of kernbench._core.api, as one pass in C, and the engine's queues.

api._prepare asks this pass first: when it says every command is valid, its tables (which tensors
are made, how many reads each has) are the ones the numpy checks would build. When it finds anything wrong, api runs the numpy
checks, which name the first failing check, its PE, command and kernel line: the error is always
theirs. tests/test_engine_errors.py compares both on generated programs, valid and not.

Commands are checked PE by PE in stream order, so a read is valid when its tensor was made
earlier in the stream (numpy: produced, once, by an earlier command).

Ctrl-C: the passes over every command (the checks, the queues, the message pairing) run without
the GIL and poll Python's signal handlers every SIGNAL_PERIOD rows (the engine's signal poll,
_types.pxd); when one raises (KeyboardInterrupt), the pass stops with ST_INTERRUPTED and the
function raises that exception once the GIL is back, its output arrays partly written.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint32_t, uint64_t, uint8_t, INT32_MAX, INT64_MAX
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset
from ._types cimport (Command, Message, OP_DOT, OP_VEC, OP_REDUCE, N_OPCODES, N_PORTS, N_UNITS,
                      N_VEC_OPS, UNIT_TX0, UNIT_RX0, ST_INTERRUPTED, SignalPoll, signal_poll_start,
                      signal_poll_raise, signal_tick, signal_run_end)
from ._replay cimport (CmdSource, CommandSource, fill_rows, SEG_LO, SEG_HI, SEG_TILE, SEG_COLS,
                      T_A, T_Z, T_R, T_D, T_MADE, T_SHIFT, T_COLS)

import numpy as np

from . import pages

# What each opcode needs and is: the bits of api's per-opcode table (api builds it from PROP_BITS)
cdef enum:
    P_LINK = 1
    P_SRC0 = 2
    P_SRC1 = 4
    P_DST = 8
    P_NO_RESULT = 16
    P_MOVE = 32
    P_MNK = 64
    P_N = 128

# The numpy dtype of the C Message struct (as scikit-learn builds NODE_DTYPE from its Node):
# api.MESSAGE_DTYPE.
cdef Message _dummy_message
MESSAGE_DTYPE = np.asarray(<Message[:1]>(&_dummy_message)).dtype

PROP_BITS = {"link": P_LINK, "src0": P_SRC0, "src1": P_SRC1, "dst": P_DST, "no_result": P_NO_RESULT,
             "move": P_MOVE, "mnk": P_MNK, "n": P_N}


cdef inline bint _read_ok(int64_t x, int64_t base, uint8_t* made, int32_t* readers) noexcept nogil:
    if x < 0:
        return True
    if not made[base + x]:
        return False  # not produced yet (or never)
    readers[base + x] += 1
    return True


cdef int check_rows(const Command* cmds, int64_t x, int64_t y, int64_t* g_io,
                    const int64_t* cmd_off, const int64_t* t_off, const uint8_t* op_props,
                    const int32_t* unit_base, uint8_t* made, int32_t* readers,
                    int64_t max_size, double max_volume, SignalPoll* poll) noexcept nogil:
    # Commands x..y, cmds[0] being command x; g_io[0]: a PE at or before command x's, left at
    # the PE of the last one (so consecutive ranges continue where the last one stopped).
    cdef int64_t g = g_io[0], i, nt, base, r = x, e
    cdef int64_t left = poll.left  # (the signal poll's count: written back)
    cdef const Command* c
    cdef int32_t op
    cdef uint8_t props
    cdef int32_t expected
    while r < y:  # in runs between two signal checks
        e = signal_run_end(r, y, left)
        for i in range(r, e):
            while i >= cmd_off[g + 1]:
                g += 1
            g_io[0] = g
            base = t_off[g]
            nt = t_off[g + 1] - base
            c = &cmds[i - x]
            op = c.opcode
            if <uint32_t> op >= N_OPCODES:
                return 1
            props = op_props[op]
            expected = unit_base[op]
            if props & P_LINK:
                if <uint32_t> c.port >= N_PORTS:
                    return 1
                expected += c.port
            if c.unit != expected:
                return 1
            if (c.src0 < -1 or c.src0 >= nt or c.src1 < -1 or c.src1 >= nt
                    or c.src2 < -1 or c.src2 >= nt or c.dst < -1 or c.dst >= nt):
                return 1
            if ((props & P_SRC0 and c.src0 < 0) or (props & P_SRC1 and c.src1 < 0)
                    or (props & P_DST and c.dst < 0) or (props & P_NO_RESULT and c.dst >= 0)):
                return 1
            if op == OP_DOT:
                if c.m < 1 or c.n < 1 or c.k < 1 or c.esize < 1 or c.esize > 8:
                    return 1
            elif op == OP_REDUCE:
                if c.m < 1 or c.n < 1 or c.k < 1:
                    return 1
            elif op == OP_VEC:
                if c.n < 1:
                    return 1
            if (op == OP_VEC or op == OP_REDUCE) and <uint32_t> c.sub >= N_VEC_OPS:
                return 1
            if props & P_MOVE and (c.nbytes < 1 or c.nbytes > max_size):
                return 1
            if props & P_MNK:
                if c.m > max_size or c.k > max_size:
                    return 1
                if <double> c.m * <double> c.n * <double> c.k > max_volume:
                    return 1
            if props & P_N and c.n > max_size:
                return 1
            # reads first: a command may not read its own result
            if not (_read_ok(c.src0, base, made, readers) and _read_ok(c.src1, base, made, readers)
                    and _read_ok(c.src2, base, made, readers)):
                return 1
            if c.dst >= 0:
                if made[base + c.dst]:
                    return 1  # produced twice
                made[base + c.dst] = 1
        if signal_tick(poll, &left, e - r):
            return ST_INTERRUPTED
        r = e
    poll.left = left
    return 0


cdef int check_program(const Command* cmds, const int64_t* cmd_off, const int64_t* t_off,
                       int64_t n_pes, const uint8_t* op_props, const int32_t* unit_base,
                       uint8_t* made, int32_t* readers, int64_t max_size,
                       double max_volume, SignalPoll* poll) noexcept nogil:
    cdef int64_t g = 0
    return check_rows(cmds, 0, cmd_off[n_pes], &g, cmd_off, t_off, op_props, unit_base, made,
                      readers, max_size, max_volume, poll)


def check_fast(const Command[::1] commands, const int64_t[::1] cmd_off, const int64_t[::1] t_off,
               const uint8_t[::1] op_props, const int32_t[::1] unit_base, uint8_t[::1] made,
               int32_t[::1] readers, int64_t max_size, double max_volume) -> bool:
    """True when every command passes api's checks; ``made`` (uint8 zeros) and ``readers``
    (int32 zeros) then hold 1 for each tensor produced and its read count. The caller checked the
    arrays' shapes (api._check_program): cmd_off and t_off have n_pes + 1 rising entries ending
    at len(commands) and len(made), op_props and unit_base one entry per opcode. A signal
    handler's exception (Ctrl-C: KeyboardInterrupt) stops the pass and propagates."""
    cdef int rc
    cdef SignalPoll poll
    if len(op_props) != N_OPCODES or len(unit_base) != N_OPCODES or len(made) != len(readers):
        raise ValueError("check_fast: tables of the wrong size")
    if len(commands) == 0:
        return True
    signal_poll_start(&poll, commands.shape[0])
    with nogil:
        rc = check_program(&commands[0], &cmd_off[0], &t_off[0], cmd_off.shape[0] - 1, &op_props[0],
                           &unit_base[0], &made[0] if made.shape[0] else NULL,
                           &readers[0] if readers.shape[0] else NULL, max_size, max_volume, &poll)
    signal_poll_raise(&poll)
    return rc == 0


#: rows read back at a time from a tiled array (check_source): 4.5 MiB, reused
_ROWS = 1 << 16


cdef struct LinkBytes:
    # the link commands' byte counts, in command order (a growing C array): check_source keeps
    # two, the sends' (TX units) and the recvs' (RX units)
    int64_t* v
    int64_t n
    int64_t cap


cdef inline int _push(LinkBytes* lb, int32_t unit, int64_t x) noexcept nogil:
    # append x to lb[0] (a send) or lb[1] (a recv, unit >= UNIT_RX0); 2 when out of memory
    cdef int64_t* grown
    if unit >= UNIT_RX0:
        lb += 1
    if lb.n == lb.cap:
        grown = <int64_t*> realloc(lb.v, 2 * lb.cap * sizeof(int64_t))
        if grown == NULL:
            return 2
        lb.v = grown
        lb.cap *= 2
    lb.v[lb.n] = x
    lb.n += 1
    return 0


cdef const int64_t* _segment(const CmdSource* s, int64_t k, const int64_t* cmd_off,
                             int64_t* g, int64_t* lo, int64_t* hi) noexcept nogil:
    # Segment k of a tiled array: its rows lo..hi, g moved on to the PE of row lo. Its tiling's
    # row of s.tile when it is a tiling within PE g's stream (read through its body), else NULL
    # (traced rows, or a tiling across PEs' streams: read row by row; nothing when hi <= lo).
    lo[0], hi[0] = s.seg[k * SEG_COLS + SEG_LO], s.seg[k * SEG_COLS + SEG_HI]
    if hi[0] <= lo[0]:
        return NULL
    while lo[0] >= cmd_off[g[0] + 1]:
        g[0] += 1
    if s.seg[k * SEG_COLS + SEG_TILE] < 0 or hi[0] > cmd_off[g[0] + 1]:
        return NULL
    return &s.tile[s.seg[k * SEG_COLS + SEG_TILE] * T_COLS]


cdef int _check_span(const CmdSource* s, int64_t x, int64_t y, Command* buf, int64_t rows,
                     int64_t* g, const int64_t* cmd_off, const int64_t* t_off,
                     const uint8_t* op_props, const int32_t* unit_base, uint8_t* made,
                     int32_t* readers, int64_t max_size, double max_volume, uint8_t* units,
                     LinkBytes* lb, SignalPoll* poll) noexcept nogil:
    # Rows x..y read back ``rows`` at a time into buf and checked row by row (check_rows).
    cdef int64_t z, i
    cdef int rc = 0
    while x < y and rc == 0:
        z = x + rows if x + rows < y else y
        rc = fill_rows(s, x, z, buf)
        if rc == 0:
            rc = check_rows(buf, x, z, g, cmd_off, t_off, op_props, unit_base, made, readers,
                            max_size, max_volume, poll)
        if rc == 0:
            for i in range(x, z):
                units[i] = <uint8_t> buf[i - x].unit
                if units[i] >= UNIT_TX0:
                    rc = _push(lb, units[i], buf[i - x].nbytes)
                    if rc:
                        break
        x = z
    return rc


cdef int _check_copies(const Command* body, int64_t n, const uint8_t* shift, int64_t lo,
                       int64_t R, int64_t D, int64_t made_step, int64_t g,
                       const int64_t* t_off, const uint8_t* op_props, uint8_t* made,
                       int32_t* readers, uint8_t* units, LinkBytes* lb,
                       SignalPoll* poll) noexcept nogil:
    # check_rows over the R copies of a tiling's body (rows lo .. lo + R * n, all on PE g), the
    # body's rows already checked: a copy differs from its body row only in its tensor numbers
    # (operand k moved on by shift[k] * m * D, the result by m * made_step: _replay._move_on,
    # int32 wrap included), so every check that reads no tensor number (opcode, unit, port,
    # sizes, volume) holds for it as it did for the body; the checks of tensor numbers (range,
    # presence, made before read, made once) and the reader counts run on the moved numbers.
    cdef int64_t base = t_off[g], nt = t_off[g + 1] - t_off[g], m, j, i = lo, sd, rd
    cdef int64_t left = poll.left, m0 = 1, m1
    cdef const Command* b
    cdef const uint8_t* f
    cdef int32_t s0, s1, s2, d
    cdef uint8_t props
    while n and m0 <= R:  # copies m0..m1 in one run between two signal checks
        m1 = signal_run_end(m0, R + 1, (left - 1) // n + 1)
        for m in range(m0, m1):
            sd = m * D
            rd = m * made_step
            for j in range(n):
                b = &body[j]
                f = &shift[3 * j]
                s0 = <int32_t> (b.src0 + sd) if f[0] else b.src0
                s1 = <int32_t> (b.src1 + sd) if f[1] else b.src1
                s2 = <int32_t> (b.src2 + sd) if f[2] else b.src2
                d = <int32_t> (b.dst + rd) if b.dst >= 0 else b.dst
                if (s0 < -1 or s0 >= nt or s1 < -1 or s1 >= nt or s2 < -1 or s2 >= nt
                        or d < -1 or d >= nt):
                    return 1
                props = op_props[b.opcode]
                if ((props & P_SRC0 and s0 < 0) or (props & P_SRC1 and s1 < 0)
                        or (props & P_DST and d < 0) or (props & P_NO_RESULT and d >= 0)):
                    return 1
                if not (_read_ok(s0, base, made, readers) and _read_ok(s1, base, made, readers)
                        and _read_ok(s2, base, made, readers)):
                    return 1
                if d >= 0:
                    if made[base + d]:
                        return 1
                    made[base + d] = 1
                units[i] = <uint8_t> b.unit
                if b.unit >= UNIT_TX0 and _push(lb, b.unit, b.nbytes):
                    return 2
                i += 1
        if signal_tick(poll, &left, (m1 - m0) * n):
            return ST_INTERRUPTED
        m0 = m1
    poll.left = left
    return 0


cdef enum:
    NOT_CLOSED = -1  # _check_copies_closed: the tiling is not of the form it answers for


cdef inline int64_t _floor_div(int64_t a, int64_t b) noexcept nogil:
    # a // b rounded down (b > 0; cdivision truncates toward zero)
    cdef int64_t q = a / b
    if a % b != 0 and a < 0:
        q -= 1
    return q


cdef struct Closed:
    # what _check_copies_closed reads off a tiling's body
    int64_t F                # the body's first result: window 0 is F .. F + D
    int64_t n_dst            # the body's results
    int64_t* row_of          # per window offset: the body row making that tensor, -1 if none
    int64_t* rd              # the moved reads' tensor numbers in the body, n_rd of them
    int64_t n_rd
    int64_t* fx              # the fixed reads' tensor numbers, n_fx of them
    int64_t n_fx
    int32_t* lk_unit         # the body's link rows (units, byte counts), n_lk of them
    int64_t* lk_bytes
    int64_t n_lk
    uint8_t* units           # every body row's unit


cdef int _closed_read(const Closed* c, int64_t x, int64_t j, int64_t R, int64_t D, int64_t base,
                      const uint8_t* made) noexcept nogil:
    # 0 when copies 1..R of body row j read the moved operand x (+ m * D) made, else 1
    cdef int64_t q, m, hi
    # (q is -1 or 0 for the reads of the same or the last iteration: no division for those)
    if x >= c.F:
        q = 0 if x - c.F < D else _floor_div(x - c.F, D)
    else:
        q = -1 if c.F - x <= D else _floor_div(x - c.F, D)
    if q > 0:
        if 1 + q <= R:
            return 1  # copy 1 reads a later copy's result
        for m in range(1, R + 1):  # past the windows: made before the tiling, or never
            if not made[base + x + m * D]:
                return 1
    elif q == 0:  # its own copy's: made by an earlier row
        if not 0 <= c.row_of[x - c.F] < j:
            return 1
    else:
        hi = -q if -q < R else R
        for m in range(1, hi + 1):  # window 0 and below: made before the tiling, or never
            if not made[base + x + m * D]:
                return 1
        if R > -q and c.row_of[x - q * D - c.F] < 0:  # an earlier copy's
            return 1
    return 0


cdef int _closed_plan(const Command* body, int64_t n, const uint8_t* shift, int64_t R, int64_t D,
                      int64_t base, int64_t nt, const uint8_t* op_props, const uint8_t* made,
                      Closed* c) noexcept nogil:
    # The body's facts (c) and the checks of every copy: 0 all pass, 1 one fails, NOT_CLOSED
    # the tiling is not of the form _check_copies_closed answers for.
    cdef int64_t j, k, x
    cdef const Command* b
    cdef int32_t ops[3]
    cdef uint8_t props
    for k in range(D):
        c.row_of[k] = -1
    for j in range(n):
        if body[j].dst >= 0:
            if c.row_of[body[j].dst - c.F] >= 0:
                return NOT_CLOSED  # (a body making a tensor twice)
            c.row_of[body[j].dst - c.F] = j
    for j in range(n):
        b = &body[j]
        props = op_props[b.opcode]
        c.units[j] = <uint8_t> b.unit
        if b.unit >= UNIT_TX0:
            c.lk_unit[c.n_lk] = b.unit
            c.lk_bytes[c.n_lk] = b.nbytes
            c.n_lk += 1
        if b.dst >= 0:
            if props & P_NO_RESULT or b.dst + R * D >= nt:
                return 1
        elif b.dst < -1 or props & P_DST:
            return 1
        ops[0], ops[1], ops[2] = b.src0, b.src1, b.src2
        for k in range(3):
            x = ops[k]
            if shift[3 * j + k]:
                if x + D < 0 or x + R * D > INT32_MAX:
                    return NOT_CLOSED  # (a number reaching -1, or wrapping)
                if x + R * D >= nt or _closed_read(c, x, j, R, D, base, made):
                    return 1
                c.rd[c.n_rd] = x
                c.n_rd += 1
            elif x < 0:
                if x < -1 or (k == 0 and props & P_SRC0) or (k == 1 and props & P_SRC1):
                    return 1
            else:
                if x >= nt:
                    return 1
                if c.F + D <= x < c.F + (R + 1) * D:
                    return NOT_CLOSED  # (a fixed read of a copy's result)
                if not made[base + x]:
                    return 1
                c.fx[c.n_fx] = x
                c.n_fx += 1
    return 0


cdef int _closed_apply(const Closed* c, const Command* body, int64_t n, int64_t lo, int64_t R,
                       int64_t D, int64_t base, uint8_t* made, int32_t* readers, uint8_t* units,
                       LinkBytes* lb, SignalPoll* poll) noexcept nogil:
    # The tables of copies 1..R that all pass (_closed_plan)
    cdef int64_t k, j, m, m0 = 1, m1, sd
    cdef int64_t left = poll.left
    for k in range(c.n_fx):
        readers[base + c.fx[k]] += <int32_t> R
    if c.n_dst == D:  # (every tensor of a window made: the windows whole)
        memset(&made[base + c.F + D], 1, R * D)
    else:
        for m in range(1, R + 1):
            for j in range(n):
                if body[j].dst >= 0:
                    made[base + body[j].dst + m * D] = 1
    while m0 <= R:  # copies m0..m1 in one run between two signal checks
        m1 = signal_run_end(m0, R + 1, (left - 1) // n + 1)
        for m in range(m0, m1):
            sd = m * D
            memcpy(&units[lo + (m - 1) * n], c.units, n)
            for k in range(c.n_rd):
                readers[base + c.rd[k] + sd] += 1
            for k in range(c.n_lk):
                if _push(lb, c.lk_unit[k], c.lk_bytes[k]):
                    return 2
        if signal_tick(poll, &left, (m1 - m0) * n):
            return ST_INTERRUPTED
        m0 = m1
    poll.left = left
    return 0


cdef int _check_copies_closed(const Command* body, int64_t n, const uint8_t* shift, int64_t lo,
                              int64_t R, int64_t D, int64_t made_step, int64_t g,
                              const int64_t* t_off, const uint8_t* op_props, uint8_t* made,
                              int32_t* readers, uint8_t* units, LinkBytes* lb,
                              SignalPoll* poll) noexcept nogil:
    # _check_copies' answer and tables without checking copy by copy, for the tilings replay
    # makes: the body's results are within the D tensors F .. F + D (D = made_step; window 0),
    # so copy m makes its results in window m = F + m * D .. F + (m + 1) * D, which nothing made
    # before the tiling (checked: one pass over those bytes of ``made``). Then every check is a
    # fact about the body, the same for all copies or linear in m (_closed_plan):
    # - a tensor number moved on is x + m * D: in range for m = 1..R when it is at m = 1 and R;
    # - a copy's results are made once (the windows are the copies' own, the body's results
    #   distinct);
    # - a read of x + m * D, x in window q of the body (q = (x - F) // D), reads window m + q
    #   (_closed_read): q > 0, a later copy's (not made yet: fails) or, past window R, a tensor
    #   made before the tiling or never; q == 0, its own copy's, made by an earlier row iff the
    #   body's row that makes x is earlier; q < 0, an earlier copy's (made iff the body makes
    #   x - q * D) or, at window 0 and below, a tensor whose made flag the copies never change;
    # - a fixed read (operand not moved) outside the windows: its made flag, never changed.
    # The tables (_closed_apply): units copied per copy, the link byte counts pushed per copy,
    # moved reads counted per copy (fixed ones R at once), the windows marked made. NOT_CLOSED,
    # nothing written, when the tiling is not of that form (results outside one window of D,
    # a window past the PE's tensors or made already, tensor numbers that would reach -1 or
    # wrap int32, a fixed read inside the windows): _check_copies then checks copy by copy.
    cdef int64_t base = t_off[g], nt = t_off[g + 1] - t_off[g], j, top = -1, v
    cdef Closed c
    cdef int rc
    if n <= 0 or R <= 0 or D <= 0 or made_step != D or R >= INT32_MAX or D > INT32_MAX // (R + 1):
        return NOT_CLOSED  # ((R + 1) * D below must not wrap int64: a hand-built tiling's D)
    c.F, c.n_dst, c.n_rd, c.n_fx, c.n_lk = INT64_MAX, 0, 0, 0, 0
    for j in range(n):
        if body[j].dst >= 0:
            c.F = body[j].dst if body[j].dst < c.F else c.F
            top = body[j].dst if body[j].dst > top else top
            c.n_dst += 1
    if c.n_dst == 0 or top - c.F >= D or c.F + (R + 1) * D > nt or c.F + (R + 1) * D > INT32_MAX:
        return NOT_CLOSED
    for v in range(base + c.F + D, base + c.F + (R + 1) * D):
        if made[v]:
            return NOT_CLOSED
    c.row_of = <int64_t*> malloc(D * sizeof(int64_t))
    c.rd = <int64_t*> malloc(3 * n * sizeof(int64_t))
    c.fx = <int64_t*> malloc(3 * n * sizeof(int64_t))
    c.lk_unit = <int32_t*> malloc(n * sizeof(int32_t))
    c.lk_bytes = <int64_t*> malloc(n * sizeof(int64_t))
    c.units = <uint8_t*> malloc(n)
    if (c.row_of == NULL or c.rd == NULL or c.fx == NULL or c.lk_unit == NULL
            or c.lk_bytes == NULL or c.units == NULL):
        rc = 2
    else:
        rc = _closed_plan(body, n, shift, R, D, base, nt, op_props, made, &c)
        if rc == 0:
            rc = _closed_apply(&c, body, n, lo, R, D, base, made, readers, units, lb, poll)
    free(c.row_of)
    free(c.rd)
    free(c.fx)
    free(c.lk_unit)
    free(c.lk_bytes)
    free(c.units)
    return rc


def check_source(CommandSource src, const int64_t[::1] cmd_off, const int64_t[::1] t_off,
                 const uint8_t[::1] op_props, const int32_t[::1] unit_base, uint8_t[::1] made,
                 int32_t[::1] readers, int64_t max_size, double max_volume,
                 uint8_t[::1] units, int64_t rows=_ROWS, bint closed=True):
    """:func:`check_fast` of a tiled array read through ``src`` (kernbench._core._replay): the
    array is never expanded. Traced rows are read back ``rows`` at a time and checked row by
    row; a tiling within one PE's stream has its body read once and its copies checked on their
    tensor numbers only (the rest of a copy is its body row's, checked already: _check_copies),
    or, for a tiling of the form replay makes (its copies' results in windows of their own),
    all at once from facts about its body (_check_copies_closed; ``closed=False``: copy by copy
    always, what the tests compare it with). Also writes every command's unit to ``units`` ((n,) uint8, for :func:`unit_queues_of`).
    Returns None if a check fails, else the byte counts of the sends (TX units) and of the recvs
    (RX units), each in command order: two int64 arrays. Raises ValueError on tables of the
    wrong size, MemoryError; a signal handler's exception (Ctrl-C: KeyboardInterrupt) stops the
    pass and propagates."""
    cdef const CmdSource* s = &src.src
    cdef int64_t n = s.n, k, lo, hi, g = 0, a, z, nb, cap_body = 0
    cdef const int64_t* t
    cdef int rc = 0
    cdef LinkBytes lb[2]
    cdef SignalPoll poll
    cdef Command* body = NULL
    cdef Command* grown
    cdef int64_t[::1] ov
    if len(op_props) != N_OPCODES or len(unit_base) != N_OPCODES or len(made) != len(readers):
        raise ValueError("check_source: tables of the wrong size")
    if units.shape[0] != n or cmd_off[cmd_off.shape[0] - 1] != n:
        raise ValueError("check_source: units and cmd_off must cover the array")
    if rows < 1:
        raise ValueError("check_source: rows must be >= 1")
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    buf_arr = np.empty(min(n, rows), src._keep[0].dtype)
    cdef Command[::1] buf = buf_arr
    cdef uint8_t* made_p = &made[0] if made.shape[0] else NULL
    cdef int32_t* readers_p = &readers[0] if readers.shape[0] else NULL
    for k in range(2):
        lb[k].cap = 1024
        lb[k].n = 0
        lb[k].v = <int64_t*> malloc(lb[k].cap * sizeof(int64_t))
    if lb[0].v == NULL or lb[1].v == NULL:
        free(lb[0].v)
        free(lb[1].v)
        raise MemoryError()
    signal_poll_start(&poll, n)
    with nogil:
        for k in range(s.n_seg):
            t = _segment(s, k, &cmd_off[0], &g, &lo, &hi)
            if t == NULL:
                rc = _check_span(s, lo, hi, &buf[0], buf.shape[0], &g, &cmd_off[0], &t_off[0],
                                 &op_props[0], &unit_base[0], made_p, readers_p, max_size,
                                 max_volume, &units[0], lb, &poll)
            else:
                a, z = t[T_A], t[T_Z]
                nb = z - a
                if nb > cap_body:
                    grown = <Command*> realloc(body, nb * sizeof(Command))
                    if grown == NULL:
                        rc = 2
                        break
                    body, cap_body = grown, nb
                rc = fill_rows(s, a, z, body)
                if rc == 0:
                    rc = NOT_CLOSED
                    if closed:
                        rc = _check_copies_closed(body, nb, &s.shift[t[T_SHIFT]], lo, t[T_R],
                                                  t[T_D], t[T_MADE], g, &t_off[0], &op_props[0],
                                                  made_p, readers_p, &units[0], lb, &poll)
                if rc == NOT_CLOSED:  # (not of the closed form: copy by copy)
                    rc = _check_copies(body, nb, &s.shift[t[T_SHIFT]], lo, t[T_R], t[T_D],
                                       t[T_MADE], g, &t_off[0], &op_props[0], made_p, readers_p,
                                       &units[0], lb, &poll)
            if rc:
                break
    try:
        signal_poll_raise(&poll)
        if rc == 2:
            raise MemoryError()
        if rc:
            return None
        out = []
        for k in range(2):
            arr = pages.empty(lb[k].n, np.int64)
            if lb[k].n:
                ov = arr
                memcpy(&ov[0], lb[k].v, lb[k].n * sizeof(int64_t))
            out.append(arr)
        return tuple(out)
    finally:
        free(lb[0].v)
        free(lb[1].v)
        free(body)


def unit_queues(const Command[::1] commands, const int64_t[::1] cmd_off):
    """:func:`unit_queues_of` the units of ``commands`` (a checked program)."""
    return unit_queues_of(np.ascontiguousarray(np.asarray(commands)["unit"], np.uint8), cmd_off)


cdef struct Queues:
    # unit_queues_of's arrays while they are filled
    int64_t* off        # (n_pes * N_UNITS + 1,): counts, then offsets
    int64_t* pos        # (n_pes * N_UNITS,): each queue's next slot
    int32_t* q
    int64_t* sends
    int64_t* recvs
    int64_t n_send
    int64_t n_recv


cdef int _queue_rows(const uint8_t* units, int64_t x, int64_t y, const int64_t* cmd_off,
                     int64_t* g_io, Queues* Q, bint fill, SignalPoll* poll) noexcept nogil:
    # rows x..y one by one: counted (fill False) or queued; ST_INTERRUPTED if a handler raised
    cdef int64_t g = g_io[0], i, k, e
    cdef int64_t left = poll.left
    cdef uint8_t u
    while x < y:  # in runs between two signal checks
        e = signal_run_end(x, y, left)
        for i in range(x, e):
            while i >= cmd_off[g + 1]:
                g += 1
            u = units[i]
            k = g * N_UNITS + u
            if fill:
                Q.q[Q.pos[k]] = <int32_t> (i - cmd_off[g])
                Q.pos[k] += 1
            else:
                Q.off[k + 1] += 1
            if u >= UNIT_RX0:
                if fill:
                    Q.recvs[Q.n_recv] = i
                Q.n_recv += 1
            elif u >= UNIT_TX0:
                if fill:
                    Q.sends[Q.n_send] = i
                Q.n_send += 1
        if signal_tick(poll, &left, e - x):
            return ST_INTERRUPTED
        x = e
    g_io[0] = g
    poll.left = left
    return 0


cdef int _queue_copies(const uint8_t* units, int64_t a, int64_t n, int64_t lo, int64_t R,
                       int64_t g, const int64_t* cmd_off, Queues* Q, bint fill,
                       SignalPoll* poll) noexcept nogil:
    # the R copies of body rows a..a+n at rows lo.. (one PE's, g), whose units are the body's:
    # counted as R times the body's, or queued unit by unit (each queue's entries for every
    # copy in one run, program order kept within it; the sends and recvs in row order).
    # 2 if out of memory, ST_INTERRUPTED if a signal handler raised.
    cdef int64_t cnt[N_UNITS + 1]
    cdef int64_t j, m, u, t, p, base, k, m0, m1
    cdef int64_t left = poll.left
    cdef int rc = 0
    cdef int64_t* by_unit
    cdef int64_t* links
    cdef int64_t n_link = 0
    for u in range(N_UNITS + 1):
        cnt[u] = 0
    for j in range(n):
        cnt[units[a + j] + 1] += 1
    if not fill:
        for u in range(N_UNITS):
            Q.off[g * N_UNITS + u + 1] += R * cnt[u + 1]
            if u >= UNIT_RX0:
                Q.n_recv += R * cnt[u + 1]
            elif u >= UNIT_TX0:
                Q.n_send += R * cnt[u + 1]
        return 0
    by_unit = <int64_t*> malloc((n if n else 1) * sizeof(int64_t))
    links = <int64_t*> malloc((n if n else 1) * sizeof(int64_t))
    if by_unit == NULL or links == NULL:
        free(by_unit)
        free(links)
        return 2
    for u in range(N_UNITS):
        cnt[u + 1] += cnt[u]
    for j in range(n):  # the body's rows grouped by unit (a counting sort: in order within one)
        u = units[a + j]
        by_unit[cnt[u]] = j
        cnt[u] += 1
        if u >= UNIT_TX0:
            links[n_link] = j
            n_link += 1
    # (copies m0..m1 in one run between two signal checks, each k rows)
    t = 0  # cnt[u] is now the end of unit u's rows; they start where unit u - 1's end
    for u in range(N_UNITS):
        p = Q.pos[g * N_UNITS + u]
        k = cnt[u] - t
        m0 = 0
        while k and m0 < R and rc == 0:
            m1 = signal_run_end(m0, R, (left - 1) // k + 1)
            for m in range(m0, m1):
                base = lo + m * n - cmd_off[g]
                for j in range(t, cnt[u]):
                    Q.q[p] = <int32_t> (base + by_unit[j])
                    p += 1
            if signal_tick(poll, &left, (m1 - m0) * k):
                rc = ST_INTERRUPTED
            m0 = m1
        Q.pos[g * N_UNITS + u] = p
        t = cnt[u]
        if rc:
            break
    m0 = 0
    while n_link and m0 < R and rc == 0:
        m1 = signal_run_end(m0, R, (left - 1) // n_link + 1)
        for m in range(m0, m1):
            base = lo + m * n
            for j in range(n_link):
                if units[a + links[j]] >= UNIT_RX0:
                    Q.recvs[Q.n_recv] = base + links[j]
                    Q.n_recv += 1
                else:
                    Q.sends[Q.n_send] = base + links[j]
                    Q.n_send += 1
        if signal_tick(poll, &left, (m1 - m0) * n_link):
            rc = ST_INTERRUPTED
        m0 = m1
    free(by_unit)
    free(links)
    poll.left = left
    return rc


cdef int _queue_pass(const uint8_t* units, int64_t n, const int64_t* cmd_off,
                     const CmdSource* s, Queues* Q, bint fill, SignalPoll* poll) noexcept nogil:
    # every row, in order: a tiling within one PE's stream through its body, the rest row by row
    cdef int64_t k, lo, hi, g = 0
    cdef const int64_t* t
    cdef int rc = 0
    Q.n_send = Q.n_recv = 0
    if s == NULL:
        return _queue_rows(units, 0, n, cmd_off, &g, Q, fill, poll)
    for k in range(s.n_seg):
        t = _segment(s, k, cmd_off, &g, &lo, &hi)
        if t == NULL:
            rc = _queue_rows(units, lo, hi, cmd_off, &g, Q, fill, poll)
        else:
            rc = _queue_copies(units, t[T_A], t[T_Z] - t[T_A], lo, t[T_R], g, cmd_off, Q, fill,
                               poll)
        if rc:
            return rc
    return 0


def unit_queues_of(const uint8_t[::1] units, const int64_t[::1] cmd_off, CommandSource src=None):
    """The engine's queues of a checked program (check_fast passed) from every command's unit:
    ``(unit_q, unit_q_off, send_idx, recv_idx)``. Unit u of global PE g runs commands
    ``cmd_off[g] + unit_q[unit_q_off[g * N_UNITS + u]:unit_q_off[g * N_UNITS + u + 1]]`` in
    program order (``unit_q`` int32: indices within the PE's stream, which api keeps below
    2**31; a counting sort by (PE, unit): what a stable argsort of the key would give);
    ``unit_q_off`` int64; ``send_idx`` and
    ``recv_idx`` are the global indices of the sends (TX units) and of the recvs (RX units),
    ascending. ``src``: the program's tiled form (its rows are ``units``' commands), whose
    tilings are queued through their bodies: the same arrays, fewer passes over ``units``.
    Raises MemoryError; a signal handler's exception (Ctrl-C: KeyboardInterrupt) stops it and
    propagates."""
    cdef int64_t n = units.shape[0], n_pes = cmd_off.shape[0] - 1, k
    cdef int rc
    cdef Queues Q
    cdef SignalPoll poll
    cdef const CmdSource* s = NULL
    if src is not None:
        if src.src.n != n:
            raise ValueError("unit_queues_of: src and units differ in length")
        s = &src.src
    if cmd_off[n_pes] != n:
        raise ValueError("unit_queues_of: cmd_off must cover units")
    off_arr = np.zeros(n_pes * N_UNITS + 1, np.int64)
    cdef int64_t[::1] off = off_arr
    Q.off = &off[0]
    cdef const uint8_t* u_p = &units[0] if n else NULL
    signal_poll_start(&poll, 2 * n)
    with nogil:
        rc = _queue_pass(u_p, n, &cmd_off[0], s, &Q, False, &poll)
        for k in range(n_pes * N_UNITS):
            off[k + 1] += off[k]
    signal_poll_raise(&poll)
    q_arr = pages.empty(n, np.int32)
    send_arr = pages.empty(Q.n_send, np.int64)
    recv_arr = pages.empty(Q.n_recv, np.int64)
    pos_arr = off_arr[:-1].copy()
    cdef int32_t[::1] q = q_arr
    cdef int64_t[::1] pos = pos_arr, sends = send_arr, recvs = recv_arr
    Q.q = &q[0] if n else NULL
    Q.pos = &pos[0] if pos.shape[0] else NULL
    Q.sends = &sends[0] if sends.shape[0] else NULL
    Q.recvs = &recvs[0] if recvs.shape[0] else NULL
    with nogil:
        rc = _queue_pass(u_p, n, &cmd_off[0], s, &Q, True, &poll)
    signal_poll_raise(&poll)
    if rc:
        raise MemoryError()
    return q_arr, off_arr, send_arr, recv_arr


def stable_order(const int64_t[::1] keys, int64_t n_keys):
    """The stable order of ``keys`` (int64, each in 0..n_keys-1, checked by the caller): what
    ``np.argsort(keys, kind="stable")`` gives, by a counting sort, O(len(keys) + n_keys).
    Returns int64. (The messages of a program in link order: a few links, millions of keys.)
    A signal handler's exception (Ctrl-C: KeyboardInterrupt) stops it and propagates."""
    cdef int64_t n = keys.shape[0], i, k, a, e
    cdef int64_t left
    cdef SignalPoll poll
    start_arr = np.zeros(n_keys + 1, np.int64)
    out_arr = pages.empty(n, np.int64)
    cdef int64_t[::1] start = start_arr, out = out_arr
    signal_poll_start(&poll, 2 * n)
    with nogil:
        left = poll.left
        a = 0
        while a < n:  # (in runs between two signal checks)
            e = signal_run_end(a, n, left)
            for i in range(a, e):
                start[keys[i] + 1] += 1
            if signal_tick(&poll, &left, e - a):
                break
            a = e
        for k in range(n_keys if not poll.raised else 0):
            start[k + 1] += start[k]
        a = 0 if not poll.raised else n
        while a < n:
            e = signal_run_end(a, n, left)
            for i in range(a, e):
                k = keys[i]
                out[start[k]] = i
                start[k] += 1
            if signal_tick(&poll, &left, e - a):
                break
            a = e
    signal_poll_raise(&poll)
    return out_arr


# -- messages: the C twin of api.pair_links (the k-th send on a link meets the k-th recv that
# drains it), for programs that pass; api's numpy pairing names what is wrong in the others.
# Per message the pairing keeps 26 bytes (a port byte, an int32 link and an int64 slot for its
# send and its recv; _Pairing), the link check 24 more (indices, types): at 128K on 64 cubes
# (4,128,768 messages) 206 MB, where int64 columns sized for every link command took 594 MB,
# and their first touch most of the check's time (docs/benchmarks.md).
cdef int _message_links(const int64_t* idx, int64_t n, const int64_t* cmd_off, int64_t n_pes,
                        const int8_t* port, bint recv, const int32_t* nbr,
                        const int64_t* opposite, int32_t* link, SignalPoll* poll) noexcept nogil:
    # each message's link (api.LinkPairs): a send's is its own end (PE * N_PORTS + port), a
    # recv's the end it drains (the neighbour's, opposite port). 1 if the indices are not
    # ascending within 0..n_cmds or a port is out of range or has no neighbour.
    cdef int64_t i, x, g = 0, p, q, a = 0, e
    cdef int64_t left = poll.left
    while a < n:  # (in runs between two signal checks)
        e = signal_run_end(a, n, left)
        for i in range(a, e):
            x = idx[i]
            if x < 0 or x >= cmd_off[n_pes] or (i and x <= idx[i - 1]):
                return 1
            while x >= cmd_off[g + 1]:
                g += 1
            p = port[i]
            if p < 0 or p >= N_PORTS:
                return 1
            q = nbr[g * N_PORTS + p]
            if q < 0 or q >= n_pes:
                return 1
            link[i] = <int32_t> (q * N_PORTS + opposite[p] if recv else g * N_PORTS + p)
        if signal_tick(poll, &left, e - a):
            return ST_INTERRUPTED
        a = e
    poll.left = left
    return 0


cdef inline bint _count_links(const int32_t* link, int64_t n, int64_t* cnt, SignalPoll* poll,
                              int64_t* left) noexcept nogil:
    # cnt[link[i]] += 1 for each i, in runs between two signal checks; 1 if a handler raised
    cdef int64_t i, a = 0, e
    while a < n:
        e = signal_run_end(a, n, left[0])
        for i in range(a, e):
            cnt[link[i]] += 1
        if signal_tick(poll, left, e - a):
            return 1
        a = e
    return 0


cdef inline bint _slot_links(const int32_t* link, int64_t n, int64_t* cnt, int64_t* slot,
                             SignalPoll* poll, int64_t* left) noexcept nogil:
    # each i's slot: the next of its link's (cnt), in runs between two signal checks; 1 if a
    # handler raised
    cdef int64_t i, a = 0, e, lk
    while a < n:
        e = signal_run_end(a, n, left[0])
        for i in range(a, e):
            lk = link[i]
            slot[i] = cnt[lk]
            cnt[lk] += 1
        if signal_tick(poll, left, e - a):
            return 1
        a = e
    return 0


cdef int _message_slots(const int32_t* s_link, int64_t n_s, const int32_t* r_link, int64_t n_r,
                        int64_t n_links, int64_t* s_slot, int64_t* r_slot,
                        SignalPoll* poll) noexcept nogil:
    # message k of a link (its k-th send, its k-th recv in command order) at slot off[link] + k,
    # the links in order (api.pair_links' send_order/recv_order, inverted): each send's and each
    # recv's slot. 1 if a link's send and recv counts differ, 2 if out of memory,
    # ST_INTERRUPTED if a signal handler raised.
    cdef int64_t lk, x = 0, c
    cdef int64_t left = poll.left
    cdef int rc = 0
    cdef int64_t* cnt = <int64_t*> calloc(2 * n_links + 1, sizeof(int64_t))
    if cnt == NULL:
        return 2
    if (_count_links(s_link, n_s, cnt, poll, &left)
            or _count_links(r_link, n_r, cnt + n_links, poll, &left)):
        rc = ST_INTERRUPTED
    for lk in range(n_links if rc == 0 else 0):
        if cnt[lk] != cnt[n_links + lk]:
            rc = 1
            break
        c = cnt[lk]
        cnt[lk] = cnt[n_links + lk] = x
        x += c
    if rc == 0 and (_slot_links(s_link, n_s, cnt, s_slot, poll, &left)
                    or _slot_links(r_link, n_r, cnt + n_links, r_slot, poll, &left)):
        rc = ST_INTERRUPTED
    free(cnt)
    poll.left = left
    return rc


cdef int _pair(const int64_t* s_idx, const int8_t* s_port, int64_t n_s, const int64_t* r_idx,
               const int8_t* r_port, int64_t n_r, const int64_t* cmd_off, int64_t n_pes,
               const int32_t* nbr, const int64_t* opposite, int32_t* s_link, int32_t* r_link,
               int64_t* s_slot, int64_t* r_slot, SignalPoll* poll) noexcept nogil:
    # the pairing: links (_message_links), then slots (_message_slots)
    cdef int rc
    if n_s != n_r:
        return 1
    rc = _message_links(s_idx, n_s, cmd_off, n_pes, s_port, False, nbr, opposite, s_link, poll)
    if rc == 0:
        rc = _message_links(r_idx, n_r, cmd_off, n_pes, r_port, True, nbr, opposite, r_link, poll)
    if rc == 0:
        rc = _message_slots(s_link, n_s, r_link, n_r, n_pes * N_PORTS, s_slot, r_slot, poll)
    return rc


cdef class _Pairing:
    """The columns _pair writes (and the ports it reads) for n_s sends and n_r recvs, numpy-owned."""
    cdef object arrays
    cdef int64_t[::1] s_slot, r_slot
    cdef int8_t[::1] s_port, r_port
    cdef int32_t[::1] s_link, r_link

    def __init__(self, int64_t n_s, int64_t n_r):
        a = self.arrays = [pages.empty(max(n, 1), t) for n, t in (
            (n_s, np.int64), (n_r, np.int64), (n_s, np.int8), (n_r, np.int8), (n_s, np.int32),
            (n_r, np.int32))]
        self.s_slot, self.r_slot, self.s_port, self.r_port, self.s_link, self.r_link = a

    cdef int pair(self, const int64_t* s_idx, int64_t n_s, const int64_t* r_idx, int64_t n_r,
                  const int64_t* cmd_off, int64_t n_pes, const int32_t* nbr,
                  const int64_t* opposite, SignalPoll* poll) noexcept nogil:
        return _pair(s_idx, &self.s_port[0], n_s, r_idx, &self.r_port[0], n_r, cmd_off, n_pes,
                     nbr, opposite, &self.s_link[0], &self.r_link[0], &self.s_slot[0],
                     &self.r_slot[0], poll)


def message_table(const uint8_t[::1] units, const int64_t[::1] send_idx,
                  const int64_t[::1] recv_idx, const int64_t[::1] cmd_off,
                  const int32_t[:, ::1] nbr, const int64_t[::1] opposite,
                  const int64_t[::1] send_bytes, const int64_t[::1] recv_bytes,
                  const int32_t[::1] sites=None, const int64_t[::1] site_type=None):
    """The program's messages (MESSAGE_DTYPE: link, send, recv, nbytes) in link order, program
    order within a link: the k-th send on each link paired with the k-th recv that drains it
    (api.pair_links' pairing, in C: _pair). None when a send or recv is on a port with no
    neighbour, a link's send and recv counts differ, or a recv expects other bytes than its
    send: the caller's numpy pairing then names the first of these. Given ``sites`` (every
    command's site, int32) and ``site_type`` (per site, int64: equal numbers for the link
    commands of equal shape and dtype), also when a recv expects another shape or dtype than
    its send: the launch's link check (one pairing for the check and the engine).

    ``units``: every command's unit (uint8); ``send_idx``/``recv_idx``: ascending global
    indices of the sends (TX units) and recvs (RX units), ``send_bytes``/``recv_bytes`` their
    byte counts; ``nbr``: (n_pes, N_PORTS) int32 neighbour table; ``opposite``: (N_PORTS,)
    int64. Raises ValueError on tables of the wrong size, MemoryError; a signal handler's
    exception (Ctrl-C: KeyboardInterrupt) stops it and propagates."""
    cdef int64_t n_pes = cmd_off.shape[0] - 1, n_s = send_idx.shape[0], n_r = recv_idx.shape[0]
    cdef int64_t i, x, k, p, a, e
    cdef int64_t left
    cdef int rc = 0
    cdef SignalPoll poll
    cdef bint typed = sites is not None
    cdef int64_t n_types = 0, ts, tr
    if (nbr.shape[0] != n_pes or nbr.shape[1] != N_PORTS or opposite.shape[0] != N_PORTS
            or send_bytes.shape[0] != n_s or recv_bytes.shape[0] != n_r
            or typed != (site_type is not None) or (typed and sites.shape[0] != units.shape[0])):
        raise ValueError("message_table: tables of the wrong size")
    if typed:
        n_types = site_type.shape[0]
    out_arr = pages.empty(n_s, MESSAGE_DTYPE)  # every field written when the pairing succeeds
    if n_s != n_r or n_pes * N_PORTS >= 1 << 30:
        return None
    if n_s == 0:
        return out_arr
    cdef Message[::1] out = out_arr
    cdef _Pairing m = _Pairing(n_s, n_r)
    signal_poll_start(&poll, 8 * n_s)  # (about: 8 passes over the messages)
    with nogil:
        left = poll.left
        a = 0
        while a < n_s:  # (every pass over the messages in runs between two signal checks)
            e = signal_run_end(a, n_s, left)
            for i in range(a, e):
                x = send_idx[i]
                if x < 0 or x >= units.shape[0]:
                    rc = 1
                    break
                p = <int64_t> units[x] - UNIT_TX0
                x = recv_idx[i]
                if p < 0 or p >= N_PORTS or x < 0 or x >= units.shape[0]:
                    rc = 1
                    break
                m.s_port[i] = <int8_t> p
                p = <int64_t> units[x] - UNIT_RX0
                if p < 0 or p >= N_PORTS:
                    rc = 1
                    break
                m.r_port[i] = <int8_t> p
            if rc == 0 and signal_tick(&poll, &left, e - a):
                rc = ST_INTERRUPTED
            a = e if rc == 0 else n_s
        poll.left = left
        if rc == 0:
            rc = m.pair(&send_idx[0], n_s, &recv_idx[0], n_r, &cmd_off[0], n_pes, &nbr[0, 0],
                        &opposite[0], &poll)
        left = poll.left
        a = 0 if rc == 0 else n_s
        while a < n_s:
            e = signal_run_end(a, n_s, left)
            for i in range(a, e):
                k = m.s_slot[i]
                out[k].link = m.s_link[i]
                out[k].send = send_idx[i]
                out[k].nbytes = send_bytes[i]
            if signal_tick(&poll, &left, e - a):
                rc = ST_INTERRUPTED
            a = e if rc == 0 else n_s
        a = 0 if rc == 0 else n_r
        while a < n_r:
            e = signal_run_end(a, n_r, left)
            for i in range(a, e):
                k = m.r_slot[i]
                if out[k].nbytes != recv_bytes[i]:
                    rc = 1
                    break
                out[k].recv = recv_idx[i]
            if rc == 0 and signal_tick(&poll, &left, e - a):
                rc = ST_INTERRUPTED
            a = e if rc == 0 else n_r
        a = 0 if rc == 0 and typed else n_s  # each pair's shape and dtype (indices checked by
        while a < n_s:                       # the pairing)
            e = signal_run_end(a, n_s, left)
            for k in range(a, e):
                ts, tr = sites[out[k].send], sites[out[k].recv]
                if ts < 0 or ts >= n_types or tr < 0 or tr >= n_types or site_type[ts] != site_type[tr]:
                    rc = 1
                    break
            if rc == 0 and signal_tick(&poll, &left, e - a):
                rc = ST_INTERRUPTED
            a = e if rc == 0 else n_s
    signal_poll_raise(&poll)
    if rc == 2:
        raise MemoryError()
    return out_arr if rc == 0 else None


cdef inline uint64_t _mix(uint64_t h, uint64_t w) noexcept nogil:
    # (rotate, xor the word, multiply by the 64-bit golden ratio: each word's bits reach every
    # later bit of h, and a word's position matters)
    h = ((h << 27) | (h >> 37)) ^ w
    return h * <uint64_t>0x9E3779B97F4A7C15ULL


def digest64(a) -> int:
    """A 64-bit checksum of ``a``'s bytes (any C-contiguous numpy array or buffer), in C without
    the GIL (5 GB/s here: 32 ms for 2.4M command rows): api keeps one per array the engine's
    tables were checked from, and checks the program again when one changed (an edit through any
    view of it). Not a cryptographic hash: it tells accidental edits apart (two byte strings of
    one length alike with probability about 2**-64), not crafted ones."""
    cdef const uint8_t[::1] b = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    cdef Py_ssize_t n = b.shape[0], i, words = n // 8
    cdef uint64_t h = <uint64_t>n * <uint64_t>0xC2B2AE3D27D4EB4FULL, w
    cdef const uint8_t *p = &b[0] if n else NULL
    with nogil:
        for i in range(words):
            memcpy(&w, p + 8 * i, 8)
            h = _mix(h, w)
        if n % 8:
            w = 0
            memcpy(&w, p + 8 * words, n % 8)
            h = _mix(h, w)
        h ^= h >> 31
    return h
