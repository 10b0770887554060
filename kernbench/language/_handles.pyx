# cython: language_level=3
"""Making a TensorHandle in C: the builder makes one per tl call that produces a tensor, and
tl.trans, tl.reshape and indexing one per view (:func:`view_of`, a TransposedView for tl.trans).

A TensorHandle is a slotted dataclass (kernbench.common.pe_commands): its fields live at fixed
offsets that the type's member descriptors record. :func:`new_handle` allocates one with the
type's own allocator and stores the eight fields at those offsets: what ``object.__new__``
followed by eight attribute stores does, without the eight attribute lookups (about a sixth of
a traced command's cost). The layout is read from the descriptors at import and checked there:
anything else (another field order, a field that is not a plain object slot) is an ImportError.
"""
from cpython.object cimport Py_TYPE, PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF

from kernbench.common.pe_commands import TensorHandle
from kernbench.language.semantic import TransposedView

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member
    object PyType_GenericAlloc(PyTypeObject *t, Py_ssize_t n)  # (a new reference)
    ctypedef PyObject *(*allocfunc)(PyTypeObject *, Py_ssize_t)
    ctypedef struct _AllocOf "PyTypeObject":  # (the one field read of the type object)
        allocfunc tp_alloc

cdef enum:
    T_OBJECT_EX = 16  # structmember.h: a plain object slot (AttributeError while unset)
    N_FIELDS = 8

#: TensorHandle's fields, in the order new_handle takes them
FIELDS = ("id", "addr", "shape", "dtype", "nbytes", "data", "space", "pinned")

cdef Py_ssize_t _offset[N_FIELDS]
cdef PyTypeObject *_type = <PyTypeObject *>TensorHandle
cdef PyTypeObject *_tview = <PyTypeObject *>TransposedView
cdef object _sram = "sram"


cdef int _layout() except -1:
    member = type(TensorHandle.__dict__["id"])
    if <void *>(<_AllocOf *>_type).tp_alloc != <void *>PyType_GenericAlloc:
        raise ImportError("kernbench.language._handles: TensorHandle must be allocated by "
                          "PyType_GenericAlloc (a plain slotted class)")
    for i, name in enumerate(FIELDS):
        d = TensorHandle.__dict__.get(name)
        if type(d) is not member or (<PyMemberDescrObject *>d).d_member.type != T_OBJECT_EX:
            raise ImportError(f"kernbench.language._handles: TensorHandle.{name} must be a plain "
                              f"slot (a slotted dataclass of {', '.join(FIELDS)})")
        _offset[i] = (<PyMemberDescrObject *>d).d_member.offset
    # tl.trans's views are made here too: a subclass adding no slot has the same layout
    if (not issubclass(TransposedView, TensorHandle) or TransposedView.__slots__ != ()
            or TransposedView.__basicsize__ != TensorHandle.__basicsize__
            or <void *>(<_AllocOf *>_tview).tp_alloc != <void *>PyType_GenericAlloc):
        raise ImportError("kernbench.language._handles: TransposedView must be a TensorHandle "
                          "subclass adding no slot (__slots__ = ())")
    return 0


_layout()


cdef inline void _put(PyObject *h, int i, object v) noexcept:
    # a fresh object: the slot is NULL, nothing to release
    Py_INCREF(v)
    (<PyObject **>((<char *>h) + _offset[i]))[0] = <PyObject *>v


cdef inline object _make(PyTypeObject *tp, object id, object addr, object shape, object dtype,
                         object nbytes, object space, object pinned):
    # a handle of type ``tp`` (TensorHandle or TransposedView: the same slots), data None
    h = PyType_GenericAlloc(tp, 0)
    cdef PyObject *p = <PyObject *>h
    _put(p, 0, id)
    _put(p, 1, addr)
    _put(p, 2, shape)
    _put(p, 3, dtype)
    _put(p, 4, nbytes)
    _put(p, 5, None)
    _put(p, 6, space)
    _put(p, 7, pinned)
    return h


cpdef object new_handle(object id, object addr, object shape, object dtype, object nbytes,
                        bint pinned):
    """A TensorHandle(id, addr, shape, dtype, nbytes, data=None, space="sram", pinned), equal
    field for field to the dataclass's constructor's (tests/test_tl_handles.py)."""
    return _make(_type, id, addr, shape, dtype, nbytes, _sram, True if pinned else False)


# The two fields every tl call reads of its operands, at their slots: what the member
# descriptors do, without the attribute lookup (PEBuilder.operand, builtins._binary).
cdef inline object _field(object h, int i, str name):
    cdef PyObject *v
    if Py_TYPE(h) is _type or Py_TYPE(h) is _tview:
        v = (<PyObject **>((<char *><PyObject *>h) + _offset[i]))[0]
        if v is not NULL:
            return <object>v
    return getattr(h, name)  # (another type, or an unset slot: its AttributeError)


cpdef object handle_id(object h):
    """``h.id``, read at its slot when ``h`` is a TensorHandle or TransposedView itself (else by
    attribute)."""
    return _field(h, 0, "id")


cpdef object handle_shape(object h):
    """``h.shape``, read at its slot when ``h`` is a TensorHandle or TransposedView itself (else
    by attribute)."""
    return _field(h, 2, "shape")


cpdef object view_of(object h, object shape, object dtype, bint transposed):
    """A view of handle ``h``: ``TensorHandle(h.id, h.addr, shape, dtype, h.nbytes, None, h.space,
    h.pinned)``, or with ``transposed`` the same as a ``TransposedView`` (tl.trans), made field
    by field without the dataclass's Python ``__init__`` (equal to it:
    tests/test_tl_handles.py). Raises ``h``'s AttributeError for a missing field."""
    cdef object id = _field(h, 0, "id")
    cdef object addr = _field(h, 1, "addr")
    cdef object nbytes = _field(h, 4, "nbytes")
    cdef object space = _field(h, 6, "space")
    cdef object pinned = _field(h, 7, "pinned")
    return _make(_tview if transposed else _type, id, addr, shape, dtype, nbytes, space, pinned)
