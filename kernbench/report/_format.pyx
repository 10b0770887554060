# cython: language_level=3
"""Report text formatted in C: the Perfetto trace's slices (kernbench.report.perfetto) and the
long lists of the launch JSON (kernbench.report.export).

:func:`slices` writes a chunk of slices exactly as the Python template ``perfetto._SLICE``
formats them with ``%`` (tests/test_report_format.py compares the two byte for byte): the same
numbers in the same places, integers as Python writes them (``%d``), the microsecond fields
split as Python's floor ``//`` and ``%`` split them. The static parts of a slice (its name and
category, its arguments but the numbers, its peer) are formatted once per kernel site in
Python and passed as one blob each with offsets; the loop over slices runs without the GIL.
:func:`flows` writes a chunk of link messages' flow events as ``perfetto._FLOW_S`` and
``_FLOW_F`` do, their float timestamps as ``%r`` (``repr``) writes them.
:func:`ints` and :func:`picks` write a list's entries as ``json.dumps`` does (", " between).
"""
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free

cdef extern from "Python.h":
    # repr(float)'s digits (the shortest that read back the same double), as %r writes them
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0

import numpy as np

from ..hw.config import ENGINE_HORIZON

#: bound on the times :func:`slices` takes: the engine's horizon (kernbench.hw.config)
LIMIT = ENGINE_HORIZON

cdef enum:
    N_INT = 9          # integers written per slice
    INT_CHARS = 20     # the most an int64 takes ("-9223372036854775808")

cdef inline char* _lit(char* p, const char* s) noexcept nogil:
    # a C string literal (one of the template's fixed parts), without its NUL
    while s[0]:
        p[0] = s[0]
        p += 1
        s += 1
    return p


cdef inline char* _put(char* p, const unsigned char* s, int64_t n) noexcept nogil:
    if n > 0:
        memcpy(p, s, n)
    return p + n


cdef inline char* _int(char* p, int64_t v) noexcept nogil:
    # v in decimal, as Python's str(int) writes it
    cdef char tmp[INT_CHARS + 1]
    cdef int k = 0
    cdef uint64_t u
    if v < 0:
        p[0] = c'-'
        p += 1
        u = <uint64_t>(-(v + 1)) + 1  # (INT64_MIN too)
    else:
        u = <uint64_t>v
    while True:
        tmp[k] = <char>(c'0' + u % 10)
        k += 1
        u //= 10
        if u == 0:
            break
    while k > 0:
        k -= 1
        p[0] = tmp[k]
        p += 1
    return p


cdef inline char* _micros(char* p, int64_t ns) noexcept nogil:
    # "%d.%03d" % (ns // 1000, ns % 1000), Python's floor division and modulo
    cdef int64_t q = ns // 1000
    cdef int64_t r = ns - q * 1000
    if r < 0:  # C truncates toward zero: back to the floor
        q -= 1
        r += 1000
    p = _int(p, q)
    p[0] = c'.'
    p[1] = <char>(c'0' + r // 100)
    p[2] = <char>(c'0' + (r // 10) % 10)
    p[3] = <char>(c'0' + r % 10)
    return p + 4


cdef char* _alloc(Py_ssize_t cap) except NULL:
    # a text buffer of ``cap`` bytes (one at least), freed by its caller
    cdef char* buf = <char*>malloc(cap if cap > 0 else 1)
    if buf is NULL:
        raise MemoryError()
    return buf


cdef const unsigned char* _base(const unsigned char[::1] blob) noexcept:
    return &blob[0] if blob.shape[0] else NULL


def slices(const unsigned char[::1] heads not None, const int64_t[::1] heads_at not None,
           const unsigned char[::1] args not None, const int64_t[::1] args_at not None,
           const unsigned char[::1] peers not None, const int64_t[::1] peers_at not None,
           const int64_t[::1] code not None, const int64_t[::1] t0 not None,
           const int64_t[::1] t1 not None, const int64_t[::1] pid not None,
           const int64_t[::1] tid not None, const int64_t[::1] cmd not None,
           const int64_t[::1] s0 not None, const int64_t[::1] s1 not None,
           const int64_t[::1] peer not None) -> bytes:
    """Slices ``0..n`` as ``perfetto._SLICE % ...`` writes them, one after the other, as bytes.

    ``heads``, ``args``, ``peers``: the static parts (UTF-8), group ``g``'s at
    ``blob[at[g]:at[g + 1]]``; per slice (int64, (n,) each): its group ``code``, start and end
    in whole nanoseconds ``t0``, ``t1``, ``pid``, ``tid``, command ``cmd``, start and end
    cycles ``s0``, ``s1``, and ``peer`` (an index into ``peers``). Every argument contiguous
    (bytes, or C-contiguous arrays; else ValueError; None: TypeError). Raises ValueError when the
    columns differ in length, an index or offset is outside its table, or a start or end is
    outside +-2**62 (``LIMIT``: beyond the engine's horizon; within it the durations fit)."""
    cdef Py_ssize_t n = code.shape[0], i
    cdef int64_t c, q
    cdef char* buf
    cdef char* p
    cdef const unsigned char* hp = _base(heads)
    cdef const unsigned char* ap = _base(args)
    cdef const unsigned char* pp = _base(peers)
    if not (t0.shape[0] == t1.shape[0] == pid.shape[0] == tid.shape[0] == cmd.shape[0] == s0.shape[0]
            == s1.shape[0] == peer.shape[0] == n):
        raise ValueError("slices: every column must have one entry per slice")
    cdef Py_ssize_t n_h = heads_at.shape[0] - 1, n_a = args_at.shape[0] - 1, n_p = peers_at.shape[0] - 1
    if n_h < 0 or n_a != n_h or n_p < 0:
        raise ValueError("slices: heads and args need one offset per group and one more")
    most = 0
    for at, size in ((np.asarray(heads_at), heads.shape[0]), (np.asarray(args_at), args.shape[0]),
                     (np.asarray(peers_at), peers.shape[0])):
        d = np.diff(at)
        if (len(d) and d.min() < 0) or at[0] != 0 or at[len(at) - 1] > size:
            raise ValueError("slices: offsets must rise from 0 within their blob")
        most += int(d.max()) if len(d) else 0
    if n and (np.min(code) < 0 or np.max(code) >= n_h or np.min(peer) < 0 or np.max(peer) >= n_p):
        raise ValueError("slices: a group or peer index outside its table")
    # times within +-2**62 (the engine's horizon), so that t1 - t0 and s1 - s0 fit an int64
    if n and any(np.min(x) <= -LIMIT or np.max(x) >= LIMIT
                 for x in (np.asarray(t0), np.asarray(t1), np.asarray(s0), np.asarray(s1))):
        raise ValueError("slices: a start or end outside +-2**62")
    buf = _alloc(n * (128 + most + N_INT * (INT_CHARS + 5)))
    p = buf
    try:
        with nogil:
            for i in range(n):
                c = code[i]
                p = _lit(p, b',\n{')
                p = _put(p, hp + heads_at[c], heads_at[c + 1] - heads_at[c])
                p = _lit(p, b',"ph":"X","ts":')
                p = _micros(p, t0[i])
                p = _lit(p, b',"dur":')
                p = _micros(p, t1[i] - t0[i])
                p = _lit(p, b',"pid":')
                p = _int(p, pid[i])
                p = _lit(p, b',"tid":')
                p = _int(p, tid[i])
                p = _lit(p, b',"args":{')
                p = _put(p, ap + args_at[c], args_at[c + 1] - args_at[c])
                p = _lit(p, b'"cmd":')
                p = _int(p, cmd[i])
                p = _lit(p, b',"start_cycle":')
                p = _int(p, s0[i])
                p = _lit(p, b',"end_cycle":')
                p = _int(p, s1[i])
                p = _lit(p, b',"cycles":')
                p = _int(p, s1[i] - s0[i])
                q = peer[i]
                p = _put(p, pp + peers_at[q], peers_at[q + 1] - peers_at[q])
                p = _lit(p, b'}}')
        return PyBytes_FromStringAndSize(buf, p - buf)
    finally:
        free(buf)


cdef enum:
    FLOW_CHARS = 256   # a flow's two events but their heads: six ints, two floats (~24), the rest


cdef inline char* _float(char* p, double v) except NULL:
    # repr(v): the shortest digits that read back v ("1.5", "0.001", "1e+16", "inf")
    cdef char* s = PyOS_double_to_string(v, c'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    cdef char* q = s
    while q[0]:
        p[0] = q[0]
        p += 1
        q += 1
    PyMem_Free(s)
    return p


cdef inline char* _flow_event(char* p, const unsigned char* head, Py_ssize_t k, int64_t ident,
                              double ts, int64_t pid, int64_t tid) except NULL:
    # one end of a flow but its closing: the head, then its id, timestamp, pid and tid
    p = _put(p, head, k)
    p = _int(p, ident)
    p = _lit(p, b',"ts":')
    p = _float(p, ts)
    p = _lit(p, b',"pid":')
    p = _int(p, pid)
    p = _lit(p, b',"tid":')
    return _int(p, tid)


def flows(const unsigned char[::1] head_s not None, const unsigned char[::1] head_f not None,
          const int64_t[::1] ids not None, const double[::1] ts_s not None,
          const int64_t[::1] pid_s not None, const int64_t[::1] tid_s not None,
          const double[::1] ts_f not None, const int64_t[::1] pid_f not None,
          const int64_t[::1] tid_f not None) -> bytes:
    """Flows ``0..n`` as ``(perfetto._FLOW_S + perfetto._FLOW_F) % ...`` writes them, one after
    the other, as bytes: for flow i its start event (``head_s``, the template's text up to the
    id, then id ``ids[i]``, timestamp ``ts_s[i]`` in microseconds, ``pid_s[i]``, ``tid_s[i]``)
    and its end event (``head_f``, ``ids[i]``, ``ts_f[i]``, ``pid_f[i]``, ``tid_f[i]``,
    ``"bp":"e"``). Integers as ``%d`` writes them, the float64 timestamps as ``%r``. Every
    argument contiguous (bytes, or C-contiguous arrays; else ValueError; None: TypeError);
    ValueError when the columns differ in length."""
    cdef Py_ssize_t n = ids.shape[0], i
    cdef char* buf
    cdef char* p
    if not (ts_s.shape[0] == pid_s.shape[0] == tid_s.shape[0] == ts_f.shape[0] == pid_f.shape[0]
            == tid_f.shape[0] == n):
        raise ValueError("flows: every column must have one entry per flow")
    cdef Py_ssize_t ks = head_s.shape[0], kf = head_f.shape[0]
    cdef const unsigned char* hs = _base(head_s)
    cdef const unsigned char* hf = _base(head_f)
    buf = _alloc(n * (FLOW_CHARS + ks + kf))
    p = buf
    try:
        for i in range(n):  # (with the GIL: repr's digits come from Python's allocator)
            p = _flow_event(p, hs, ks, ids[i], ts_s[i], pid_s[i], tid_s[i])
            p = _lit(p, b'}')
            p = _flow_event(p, hf, kf, ids[i], ts_f[i], pid_f[i], tid_f[i])
            p = _lit(p, b',"bp":"e"}')
        return PyBytes_FromStringAndSize(buf, p - buf)
    finally:
        free(buf)


cdef bytes _joined(Py_ssize_t n, Py_ssize_t most, const unsigned char[::1] sep, const int64_t* v,
                   const unsigned char* blob, const int64_t* at):
    # entries 0..n, sep between: v[i] in decimal, or with ``blob``, group v[i]'s text
    # blob[at[v[i]]:at[v[i] + 1]] (``most``: the longest entry)
    cdef Py_ssize_t i, k = sep.shape[0]
    cdef const unsigned char* sp = _base(sep)
    cdef char* buf = _alloc(n * (most + k))
    cdef char* p = buf
    try:
        with nogil:
            for i in range(n):
                if i:
                    p = _put(p, sp, k)
                if blob is NULL:
                    p = _int(p, v[i])
                else:
                    p = _put(p, blob + at[v[i]], at[v[i] + 1] - at[v[i]])
        return PyBytes_FromStringAndSize(buf, p - buf)
    finally:
        free(buf)


def ints(const int64_t[::1] values not None, const unsigned char[::1] sep not None) -> bytes:
    """``values`` in decimal, ``sep`` between: ``sep.join(str(v) for v in values)`` as bytes
    (what json.dumps writes for a list of ints, with sep ", ")."""
    if values.shape[0] == 0:
        return b""
    return _joined(values.shape[0], INT_CHARS, sep, &values[0], NULL, NULL)


def picks(const unsigned char[::1] blob not None, const int64_t[::1] at not None,
          const int64_t[::1] code not None, const unsigned char[::1] sep not None) -> bytes:
    """Group ``code[i]``'s text (``blob[at[g]:at[g + 1]]``) for each entry, ``sep`` between:
    a list of a few distinct strings (each already JSON) written as json.dumps writes it.
    Raises ValueError for offsets that do not rise within the blob or a code outside them."""
    cdef Py_ssize_t n = code.shape[0], n_g = at.shape[0] - 1
    a = np.asarray(at)
    if n_g < 0 or a[0] != 0 or a[len(a) - 1] > blob.shape[0] or (n_g and np.diff(a).min() < 0):
        raise ValueError("picks: offsets must rise from 0 within their blob")
    if n and (np.min(code) < 0 or np.max(code) >= n_g):
        raise ValueError("picks: a code outside the groups")
    if n == 0:
        return b""
    # (an empty blob: every group's text is empty, and nothing is read from it)
    cdef unsigned char nothing = 0
    return _joined(n, int(np.diff(a).max()), sep, &code[0], _base(blob) if blob.shape[0] else &nothing,
                   &at[0])
