# Augmenting declarations for builtins.py (compiled as it is: setup.py, TRACING_MODULES): the
# builder's C type, so the hot builtins reach its fields and methods as C (see builder.pxd).
cimport cython

from kernbench.language._caller cimport this_thread
from kernbench.language._handles cimport handle_id, handle_shape
from kernbench.language.builder cimport PEBuilder
from kernbench.language.semantic cimport operand, site_frame

@cython.locals(b=PEBuilder)
cdef PEBuilder _builder(object tl)

# Every elementwise TL method is one C call into these (the checks, the plan and the command).
cdef object _binary(object self, object a, object b, str name)
cdef object _unary(object self, object x, str name)
