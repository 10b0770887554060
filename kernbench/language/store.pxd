# Augmenting declarations for store.py (compiled as it is: setup.py, TRACING_MODULES): the
# pending rows as a C buffer, which the builder (builder.pxd) pushes to with a C call.
cimport cython

cdef class Pending:
    cdef public object arr
    cdef long long[:, ::1] buf
    cdef public Py_ssize_t n

    @cython.locals(n=Py_ssize_t)
    cpdef push(self, long long j, long long s0, long long s1, long long s2)
