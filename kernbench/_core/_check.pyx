# cython: language_level=3
"""The program checks of kernbench._core.api, as one pass in C, and the engine's queues.

api._prepare asks this pass first: when it says every command is valid, its tables (which tensors
are made, how many reads each has) are the ones the numpy checks would build. When it finds anything wrong, api runs the numpy
checks, which name the first failing check, its PE, command and kernel line: the error is always
theirs. tests/test_engine_errors.py compares both on generated programs, valid and not.

Commands are checked PE by PE in stream order, so a read is valid when its tensor was made
earlier in the stream (numpy: produced, once, by an earlier command).
"""
from libc.stdint cimport int32_t, int64_t, uint32_t, uint8_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy
from ._types cimport (Command, OP_DOT, OP_VEC, OP_REDUCE, N_OPCODES, N_PORTS, N_UNITS,
                      N_VEC_OPS, UNIT_TX0, UNIT_RX0)
from ._replay cimport CommandSource, fill_rows

import numpy as np

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
                    int64_t max_size, double max_volume) noexcept nogil:
    # Commands x..y, cmds[0] being command x; g_io[0]: a PE at or before command x's, left at
    # the PE of the last one (so consecutive ranges continue where the last one stopped).
    cdef int64_t g = g_io[0], i, nt, base
    cdef const Command* c
    cdef int32_t op
    cdef uint8_t props
    cdef int32_t expected
    for i in range(x, y):
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
    return 0


cdef int check_program(const Command* cmds, const int64_t* cmd_off, const int64_t* t_off,
                       int64_t n_pes, const uint8_t* op_props, const int32_t* unit_base,
                       uint8_t* made, int32_t* readers, int64_t max_size,
                       double max_volume) noexcept nogil:
    cdef int64_t g = 0
    return check_rows(cmds, 0, cmd_off[n_pes], &g, cmd_off, t_off, op_props, unit_base, made,
                      readers, max_size, max_volume)


def check_fast(const Command[::1] commands, const int64_t[::1] cmd_off, const int64_t[::1] t_off,
               const uint8_t[::1] op_props, const int32_t[::1] unit_base, uint8_t[::1] made,
               int32_t[::1] readers, int64_t max_size, double max_volume) -> bool:
    """True when every command passes api's checks; ``made`` (uint8 zeros) and ``readers``
    (int32 zeros) then hold 1 for each tensor produced and its read count. The caller checked the
    arrays' shapes (api._check_program): cmd_off and t_off have n_pes + 1 rising entries ending
    at len(commands) and len(made), op_props and unit_base one entry per opcode."""
    cdef int rc
    if len(op_props) != N_OPCODES or len(unit_base) != N_OPCODES or len(made) != len(readers):
        raise ValueError("check_fast: tables of the wrong size")
    if len(commands) == 0:
        return True
    with nogil:
        rc = check_program(&commands[0], &cmd_off[0], &t_off[0], cmd_off.shape[0] - 1, &op_props[0],
                           &unit_base[0], &made[0] if made.shape[0] else NULL,
                           &readers[0] if readers.shape[0] else NULL, max_size, max_volume)
    return rc == 0


#: rows read back at a time from a tiled array (check_source): 4.5 MiB, reused
_ROWS = 1 << 16


def check_source(CommandSource src, const int64_t[::1] cmd_off, const int64_t[::1] t_off,
                 const uint8_t[::1] op_props, const int32_t[::1] unit_base, uint8_t[::1] made,
                 int32_t[::1] readers, int64_t max_size, double max_volume,
                 uint8_t[::1] units, int64_t rows=_ROWS):
    """:func:`check_fast` of a tiled array read through ``src`` (kernbench._core._replay),
    ``rows`` rows at a time: the array is never expanded. Also writes every command's unit to
    ``units`` ((n,) uint8, for :func:`unit_queues_of`). Returns None if a check fails, else the
    byte counts of the link commands (sends and recvs) in command order (int64)."""
    cdef int64_t n = src.src.n, x, y, i, g = 0, n_link = 0, cap = 1024
    cdef int rc = 0
    cdef int64_t* lb
    cdef int64_t* grown
    cdef int64_t[::1] ov
    if len(op_props) != N_OPCODES or len(unit_base) != N_OPCODES or len(made) != len(readers):
        raise ValueError("check_source: tables of the wrong size")
    if units.shape[0] != n or cmd_off[cmd_off.shape[0] - 1] != n:
        raise ValueError("check_source: units and cmd_off must cover the array")
    if rows < 1:
        raise ValueError("check_source: rows must be >= 1")
    if n == 0:
        return np.zeros(0, np.int64)
    buf_arr = np.empty(min(n, rows), src._keep[0].dtype)
    cdef Command[::1] buf = buf_arr
    lb = <int64_t*> malloc(cap * sizeof(int64_t))
    if lb == NULL:
        raise MemoryError()
    with nogil:
        x = 0
        while x < n and rc == 0:
            y = x + buf.shape[0] if x + buf.shape[0] < n else n
            rc = fill_rows(&src.src, x, y, &buf[0])
            if rc == 0:
                rc = check_rows(&buf[0], x, y, &g, &cmd_off[0], &t_off[0], &op_props[0],
                                &unit_base[0], &made[0] if made.shape[0] else NULL,
                                &readers[0] if readers.shape[0] else NULL, max_size, max_volume)
            if rc == 0:
                for i in range(x, y):
                    units[i] = <uint8_t> buf[i - x].unit
                    if units[i] >= UNIT_TX0:
                        if n_link == cap:
                            cap *= 2
                            grown = <int64_t*> realloc(lb, cap * sizeof(int64_t))
                            if grown == NULL:
                                rc = 2
                                break
                            lb = grown
                        lb[n_link] = buf[i - x].nbytes
                        n_link += 1
            x = y
    try:
        if rc == 2:
            raise MemoryError()
        if rc:
            return None
        out = np.empty(n_link, np.int64)
        if n_link:
            ov = out
            memcpy(&ov[0], lb, n_link * sizeof(int64_t))
        return out
    finally:
        free(lb)


def unit_queues(const Command[::1] commands, const int64_t[::1] cmd_off):
    """:func:`unit_queues_of` the units of ``commands`` (a checked program)."""
    return unit_queues_of(np.ascontiguousarray(np.asarray(commands)["unit"], np.uint8), cmd_off)


def unit_queues_of(const uint8_t[::1] units, const int64_t[::1] cmd_off):
    """The engine's queues of a checked program (check_fast passed) from every command's unit:
    ``(unit_q, unit_q_off, send_idx, recv_idx)``. Unit u of global PE g runs commands
    ``cmd_off[g] + unit_q[unit_q_off[g * N_UNITS + u]:unit_q_off[g * N_UNITS + u + 1]]`` in
    program order (``unit_q`` int32: indices within the PE's stream, which api keeps below
    2**31; a counting sort by (PE, unit): what a stable argsort of the key would give);
    ``unit_q_off`` int64; ``send_idx`` and
    ``recv_idx`` are the global indices of the sends (TX units) and of the recvs (RX units),
    ascending."""
    cdef int64_t n = units.shape[0], n_pes = cmd_off.shape[0] - 1
    cdef int64_t g, i, k, n_send = 0, n_recv = 0
    cdef uint8_t u
    off_arr = np.zeros(n_pes * N_UNITS + 1, np.int64)
    cdef int64_t[::1] off = off_arr
    with nogil:
        for g in range(n_pes):
            for i in range(cmd_off[g], cmd_off[g + 1]):
                u = units[i]
                off[g * N_UNITS + u + 1] += 1
                if u >= UNIT_RX0:
                    n_recv += 1
                elif u >= UNIT_TX0:
                    n_send += 1
        for k in range(n_pes * N_UNITS):
            off[k + 1] += off[k]
    q_arr = np.empty(n, np.int32)
    send_arr = np.empty(n_send, np.int64)
    recv_arr = np.empty(n_recv, np.int64)
    pos_arr = off_arr[:-1].copy()
    cdef int32_t[::1] q = q_arr
    cdef int64_t[::1] pos = pos_arr, sends = send_arr, recvs = recv_arr
    n_send = n_recv = 0
    with nogil:
        for g in range(n_pes):
            for i in range(cmd_off[g], cmd_off[g + 1]):
                u = units[i]
                k = g * N_UNITS + u
                q[pos[k]] = <int32_t> (i - cmd_off[g])
                pos[k] += 1
                if u >= UNIT_RX0:
                    recvs[n_recv] = i
                    n_recv += 1
                elif u >= UNIT_TX0:
                    sends[n_send] = i
                    n_send += 1
    return q_arr, off_arr, send_arr, recv_arr


def stable_order(const int64_t[::1] keys, int64_t n_keys):
    """The stable order of ``keys`` (int64, each in 0..n_keys-1, checked by the caller): what
    ``np.argsort(keys, kind="stable")`` gives, by a counting sort, O(len(keys) + n_keys).
    Returns int64. (The messages of a program in link order: a few links, millions of keys.)"""
    cdef int64_t n = keys.shape[0], i, k
    start_arr = np.zeros(n_keys + 1, np.int64)
    out_arr = np.empty(n, np.int64)
    cdef int64_t[::1] start = start_arr, out = out_arr
    with nogil:
        for i in range(n):
            start[keys[i] + 1] += 1
        for k in range(n_keys):
            start[k + 1] += start[k]
        for i in range(n):
            k = keys[i]
            out[start[k]] = i
            start[k] += 1
    return out_arr
