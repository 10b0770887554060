# Augmenting declarations for semantic.py (compiled as it is: setup.py, TRACING_MODULES): the
# checks every tl call makes, as C calls for the builtins (builtins.pxd cimports them). The
# caches and tables are typed dicts, so a lookup is a C call instead of a bound-method call.
cimport cython

from kernbench.language._caller cimport kernel_frame

cdef dict _BIN_TYPES, _BROADCAST, _LINES

cpdef object site_frame()
cpdef object binary_types(str name, str a, str b)
cpdef object unary_types(str name, str d)
@cython.locals(table=dict)
cpdef str check_dtype(tr, d, str what=*, bint allow_bool=*)
cpdef tuple check_shape(tr, shape, str what=*)
cpdef object numel(shape)
cpdef tuple broadcast(tr, tuple a, tuple b, str op)
cpdef str reduce_dtype(str name, str d)
cpdef tuple dot_shapes(tr, tuple a, tuple b)
cpdef object float_operand(tr, str dtype, str op, str what)
@cython.locals(table=dict)
cpdef object port_of(tr, d, str verb)
