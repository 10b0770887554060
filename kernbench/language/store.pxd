# Augmenting declarations for store.py (compiled as it is: setup.py, TRACING_MODULES): the
# pending rows as a C buffer, which the builder (builder.pxd) pushes to with a C call.
cimport cython

cdef class Pending:
    cdef public object arr
    cdef long long[:, ::1] buf
    cdef public Py_ssize_t n

    @cython.locals(n=Py_ssize_t)
    cpdef push(self, long long j, long long s0, long long s1, long long s2)


cdef class TensorTable:
    cdef public list tail, starts, segs
    cdef public Py_ssize_t tail0
    cdef public dict marks

    cpdef append(self, entry)
    @cython.locals(j=Py_ssize_t, k=Py_ssize_t, body=list)
    cpdef entry(self, Py_ssize_t i)
    cpdef _marked(self, Py_ssize_t k, Py_ssize_t i, e)
    @cython.locals(out=list, kept=list, marked=list, part=list, x0=Py_ssize_t, x1=Py_ssize_t)
    cpdef list _marked_span(self, Py_ssize_t k, list body, Py_ssize_t s0, Py_ssize_t a, Py_ssize_t e)
    @cython.locals(out=list, k=Py_ssize_t, body=list, n=Py_ssize_t, s0=Py_ssize_t, e=Py_ssize_t)
    cpdef list span(self, Py_ssize_t a, Py_ssize_t z)
    @cython.locals(n=Py_ssize_t)
    cpdef repeat(self, list body, Py_ssize_t R)
    @cython.locals(i=Py_ssize_t, j=Py_ssize_t, k=Py_ssize_t, s0=Py_ssize_t, end=Py_ssize_t, lst=list,
                   made=dict, held=list)
    cpdef disown(self, Py_ssize_t a, Py_ssize_t z, tuple loop, set keep)


@cython.locals(n=Py_ssize_t, j=Py_ssize_t, c=Py_ssize_t)
cpdef _cycle(list body, Py_ssize_t s0, Py_ssize_t a, Py_ssize_t z, list out)
cpdef tuple _moved_past(dict made, tuple e, tuple loop)
