# Augmenting declarations for builder.py (compiled as it is: setup.py, TRACING_MODULES). The
# builder as an extension type: its fields are C struct members and its hot methods C calls,
# for its own methods and for the tl builtins, which declare the builder's type (builtins.py).
cimport cython

from kernbench.language.store cimport Pending, TensorTable


cdef class TransposedViews:
    cdef public set _one
    cdef public dict _runs
    cdef public list _log

    cpdef add(self, tuple item)


cdef class PEBuilder:
    cdef public object pe, cube, g, serial, base, max_bytes, max_table_bytes
    cdef public TransposedViews transposed
    cdef public dict known, fills, lazy
    cdef public bytearray valued
    cdef public bint functional
    cdef public unsigned long thread
    cdef public object memory, nbr, sfr_text, trace_store, site_table
    cdef public TensorTable tensors
    cdef public list pinned
    cdef public object meta, cmd_start, cmd_end, n_tensors
    cdef public long long sram_top, max_tensors
    cdef public object tensor_pinned, handles, views, finished
    cdef public Pending _pending
    cdef public list _keep, _track, _acc
    cdef public object _tb_parts, _views, _meta, _sget
    cdef public dict _vec_plans, _dot_plans, _reduce_plans, _other_plans, _entries
    cdef public object left_range, ranges, kernel_file, cut_short, opened, plan_why

    cpdef _flush(self, long long i)
    cpdef _site(self, key)
    cpdef _memo(self, dict plans, f, tuple parts)
    cpdef _replan(self, dict plans, f, tuple parts, tuple key, tuple extra=*)
    @cython.locals(p=tuple, plans=list)
    cpdef _site_at(self, f, what)
    cpdef _entry(self, shape, dtype, n)
    @cython.locals(t=tuple)
    cpdef tuple operand(self, h, str what=*)
    @cython.locals(addr=cython.longlong)
    cdef object _place(self, long long nbytes)
    cpdef _new(self, shape, dtype, n, nbytes, pinned=*)
    cpdef load(self, f, alloc, e0, shape, n, dtype, stride, pinned=*, after=*, mask=*, other=*)
    cpdef store(self, f, spec, src, alloc, e0, shape, n, stride, mask=*)
    @cython.locals(p=tuple, t=tuple)
    cpdef dot(self, f, sa, sb, ia, ib, a_shape, b_shape, da, db, m, n, k)
    @cython.locals(p=tuple, like=tuple, fold=cython.bint)
    cpdef vec(self, f, name, operands, s0, s1, s2, shape, n, dtype, like=*, ct=*, imm=*)
    cpdef check_right(self, name, o, ct)
    cpdef _fold(self, i, name, operands, shape, n, dtype, ct, imm)
    @cython.locals(valued=bytearray, k=Py_ssize_t)
    cpdef mark_valued(self, Py_ssize_t i)
    @cython.locals(valued=bytearray, n=Py_ssize_t)
    cdef bint _valued(self, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t s2)
    @cython.locals(p=tuple, t=tuple)
    cpdef reduce(self, f, name, spec, src, shape, axis, dtype)
    cpdef send(self, f, spec, src, port, shape, dtype, n)
    cpdef recv(self, f, port, shape, dtype, n, after=*)
from kernbench.language._caller cimport frame_code, frame_lasti, this_thread
from kernbench.language._handles cimport handle_id, handle_shape, new_handle

cdef long long _PAD, _ALIGNED, _TOP_MAX, _PENDING_MAX
