# cython: language_level=3
"""Who calls tl, as C calls for the tracing layer's plain-Python modules: the kernel's frame
(semantic.site_frame, once per tl call), its code and instruction (the builder's plans are
keyed on them) and the thread (builtins._builder, once per tl call).

``sys._getframe`` from compiled code looks its name up on the module, makes an int argument and
raises an audit event; the frame's and code's attributes are generic attribute lookups. Here the
walk reads the frames and their code objects through the C API: the same frame, for about a
tenth of the cost (docs/benchmarks.md).
"""
from cpython.object cimport PyObject
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.ref cimport Py_DECREF

cdef extern from "Python.h":
    ctypedef struct PyFrameObject
    ctypedef struct PyCodeObject:
        PyObject *co_filename
    PyFrameObject *PyEval_GetFrame()  # (borrowed; NULL when no Python frame runs)
    PyCodeObject *PyFrame_GetCode(PyFrameObject *f)  # (a new reference)
    PyFrameObject *PyFrame_GetBack(PyFrameObject *f)  # (a new reference, or NULL)
    int PyFrame_GetLasti(PyFrameObject *f)
    bint PyFrame_Check(object o)
    int PySet_Contains(PyObject *s, PyObject *key) except -1


cpdef object kernel_frame(set internal):
    """The innermost Python frame whose code's file is not in ``internal``, walking out from
    the innermost frame running; the outermost frame when every one is in ``internal``.
    ValueError when no Python frame runs (as ``sys._getframe``)."""
    cdef PyFrameObject *f = PyEval_GetFrame()
    cdef PyFrameObject *back
    cdef PyCodeObject *co
    cdef int inside
    if f is NULL:
        raise ValueError("call stack is not deep enough")
    frame = <object><PyObject *>f  # (a reference of our own from here on)
    while True:
        co = PyFrame_GetCode(<PyFrameObject *>frame)
        try:
            inside = PySet_Contains(<PyObject *>internal, co.co_filename)
        finally:
            Py_DECREF(<object><PyObject *>co)
        if not inside:
            return frame
        back = PyFrame_GetBack(<PyFrameObject *>frame)
        if back is NULL:
            return frame
        frame = <object><PyObject *>back
        Py_DECREF(frame)  # (the cast took a reference of its own)


cpdef object frame_code(object f):
    """``f.f_code`` of a frame ``f``, as a C call."""
    if not PyFrame_Check(f):
        return f.f_code
    code = <object><PyObject *>PyFrame_GetCode(<PyFrameObject *>f)
    Py_DECREF(code)  # (PyFrame_GetCode's reference: the cast took one of its own)
    return code


cpdef object frame_lasti(object f):
    """``f.f_lasti`` of a frame ``f`` (its last instruction's byte offset), as a C call."""
    if not PyFrame_Check(f):
        return f.f_lasti
    return PyFrame_GetLasti(<PyFrameObject *>f)


cpdef unsigned long this_thread() noexcept:
    """``threading.get_ident()`` as a C call: a builder records the thread that traces it, and
    every tl call compares (builtins._builder), for the cost of a compare."""
    return PyThread_get_thread_ident()
