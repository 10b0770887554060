# cython: language_level=3
"""Python view of the engine's cost formulas (the same inline C the engine runs).

The HwParams struct is built from a HardwareConfig by ``kernbench._core.api.hw_params``.
These wrappers exist so tests and reports use the very formulas the engine uses.
"""
from libc.stdint cimport int64_t
from ._types cimport HwParams
from ._timing cimport (gemm_folds, gemm_fold_cycles, gemm_dot_cycles, vec_cycles, reduce_cycles,
                       dma_ideal_cycles, message_ser_cycles, burst_cycles, packet_cycles)


cdef HwParams _params(dict p):
    cdef HwParams hw
    cdef int i
    hw = p  # Cython converts the dict to the struct; missing keys raise
    return hw


def dot_cycles(dict params, int64_t m, int64_t n, int64_t k, int64_t esize=2):
    """Cycles of a dot (M,K)x(K,N): folds * fold_cycles (one accumulator buffer), or every fold
    but the last at the steady cost (two)."""
    cdef HwParams hw = _params(params)
    return gemm_dot_cycles(&hw, gemm_folds(&hw, m, n), k, esize)


def dot_folds(dict params, int64_t m, int64_t n):
    """Folds of an (M,K)x(K,N) dot on the R x C array: ceil(M / R) * ceil(N / C) (the output
    tiles, each one pass of K through the array; docs/hardware-model.md, GEMM)."""
    cdef HwParams hw = _params(params)
    return gemm_folds(&hw, m, n)


def elementwise_cycles(dict params, int64_t n, int sub):
    """Cycles of an elementwise vector op of ``n`` elements and sub-op ``sub`` (a VEC_OP index):
    ceil(n / lanes) * op_cycles[sub] + pipeline latency (docs/hardware-model.md, Vector)."""
    cdef HwParams hw = _params(params)
    return vec_cycles(&hw, n, sub)


def reduction_cycles(dict params, int64_t outer, int64_t r, int64_t inner, int sub):
    """Cycles of a reduction over ``r`` elements, ``outer`` x ``inner`` times (the shape around
    the reduced axis): along the lanes (inner 1) outer * (ceil(r / lanes) * op + ceil(log2 lanes)),
    else outer * (r - 1) * ceil(inner / lanes) * op, plus the pipeline latency
    (docs/hardware-model.md, Vector)."""
    cdef HwParams hw = _params(params)
    return reduce_cycles(&hw, outer, r, inner, sub)


def dma_alone_cycles(dict params, int64_t nbytes):
    """One DMA command with the cube channel to itself."""
    cdef HwParams hw = _params(params)
    return dma_ideal_cycles(&hw, nbytes)


def link_message_cycles(dict params, int64_t nbytes):
    """Uncontended message, recv posted early: serialisation of all packets + one hop."""
    cdef HwParams hw = _params(params)
    return message_ser_cycles(&hw, nbytes) + hw.hop_latency
