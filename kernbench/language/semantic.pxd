# Augmenting declarations for semantic.py (compiled as it is: setup.py, TRACING_MODULES): the
# two checks every tl call makes, as C calls for the builtins (builtins.pxd cimports them).
from kernbench.language._caller cimport kernel_frame
from kernbench.language._handles cimport handle_id, handle_shape

cpdef object site_frame()
cpdef tuple operand(tr, h, str what=*)
