# Augmenting declarations for builtins.py (compiled as it is: setup.py, TRACING_MODULES): the
# builder's C type, so the hot builtins reach its fields and methods as C (see builder.pxd).
cimport cython

from kernbench.language._caller cimport this_thread
from kernbench.language._handles cimport handle_id, handle_shape, view_of
from kernbench.language.builder cimport PEBuilder
from kernbench.language.semantic cimport (binary_types, broadcast, check_dtype, check_shape,
                                          dot_shapes, float_operand, numel, port_of,
                                          reduce_dtype, site_frame, unary_types)

# tl as an extension type: which program it traces (``_b``) is a C field, read in one step by
# every call (_builder), where an instance attribute took a type lookup and a descriptor call.
cdef class TL:
    cdef public object _b, _grid, _serial, _replay, _ranged, _no_replay

@cython.locals(b=PEBuilder)
cdef PEBuilder _builder(TL tl)
cdef object _tracked(PEBuilder tr, h)

# Every elementwise TL method is one C call into these (the checks, the plan and the command).
@cython.locals(tens=list, ta=tuple, tb=tuple, like=tuple, by_a=dict, by_b=dict)
cdef object _binary(TL self, object a, object b, str name)
@cython.locals(by_d=dict)
cdef object _unary(TL self, object x, str name)

# What _binary and _unary learn (builtins.py): typed, so a lookup is a C call.
cdef dict _BINARY_TYPES, _UNARY_TYPES, _UNARY_OPERAND
