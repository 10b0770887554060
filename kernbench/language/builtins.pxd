# Augmenting declarations for builtins.py (compiled as it is: setup.py, TRACING_MODULES): the
# builder's C type, so the hot builtins reach its fields and methods as C (see builder.pxd).
from kernbench.language.builder cimport PEBuilder

cdef PEBuilder _builder(object tl)
from kernbench.language.semantic cimport operand, site_frame
