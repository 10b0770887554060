# Cost formulas of docs/hardware-model.md, inline so the engine pays no call for them.
from libc.stdint cimport int64_t
from ._types cimport HwParams

cdef inline int64_t cdiv(int64_t a, int64_t b) noexcept nogil:
    return (a + b - 1) // b

cdef inline int64_t gemm_folds(const HwParams* hw, int64_t m, int64_t n) noexcept nogil:
    return cdiv(m, hw.gemm_rows) * cdiv(n, hw.gemm_cols)

cdef inline int64_t gemm_fold_cycles(const HwParams* hw, int64_t k, int64_t esize) noexcept nogil:
    # fill + K MAC steps + drain (SCALE-Sim output stationary), or the SRAM operand bound
    cdef int64_t compute = k + hw.gemm_rows + hw.gemm_cols - 2
    cdef int64_t sram = cdiv((hw.gemm_rows + hw.gemm_cols) * k * esize, hw.sram_bw)
    return compute if compute >= sram else sram

cdef inline int64_t gemm_fold_steady(const HwParams* hw, int64_t k, int64_t esize) noexcept nogil:
    # a fold followed by another of the same dot: with one accumulator buffer the whole fold;
    # with two, the next fold's operands stream in right behind this one's (K MAC steps) while
    # this one skews and drains into the other buffer, which must be empty again two folds on:
    # max(K, ceil((R + C - 2) / 2), the SRAM operand bound) (docs/hardware-model.md)
    cdef int64_t full = gemm_fold_cycles(hw, k, esize)
    if hw.gemm_acc_buffers < 2:
        return full
    cdef int64_t steady = k if 2 * k >= hw.gemm_rows + hw.gemm_cols - 2 else cdiv(hw.gemm_rows + hw.gemm_cols - 2, 2)
    cdef int64_t sram = cdiv((hw.gemm_rows + hw.gemm_cols) * k * esize, hw.sram_bw)
    return steady if steady >= sram else sram

cdef inline int64_t gemm_dot_cycles(const HwParams* hw, int64_t folds, int64_t k, int64_t esize) noexcept nogil:
    # every fold but the last at the steady cost, the last whole (its skew and drain show)
    return (folds - 1) * gemm_fold_steady(hw, k, esize) + gemm_fold_cycles(hw, k, esize)

cdef inline int64_t vec_cycles(const HwParams* hw, int64_t n, int sub) noexcept nogil:
    return cdiv(n, hw.lanes) * hw.vec_cost[sub] + hw.vec_latency

cdef inline int64_t reduce_cycles(const HwParams* hw, int64_t outer, int64_t r, int64_t inner,
                                  int sub) noexcept nogil:
    if inner == 1:
        return outer * (cdiv(r, hw.lanes) * hw.vec_cost[sub] + hw.log2_lanes) + hw.vec_latency
    return outer * (r - 1) * cdiv(inner, hw.lanes) * hw.vec_cost[sub] + hw.vec_latency

cdef inline int64_t burst_cycles(const HwParams* hw, int64_t nbytes) noexcept nogil:
    return cdiv(nbytes, hw.channel_bw)

cdef inline int64_t dma_ideal_cycles(const HwParams* hw, int64_t nbytes) noexcept nogil:
    # one PE alone on the channel: every burst back to back, then the latency
    cdef int64_t full = nbytes // hw.burst_bytes
    cdef int64_t rest = nbytes - full * hw.burst_bytes
    cdef int64_t c = full * burst_cycles(hw, hw.burst_bytes) + hw.dma_latency
    if rest > 0:
        c += burst_cycles(hw, rest)
    return c

cdef inline int64_t packet_cycles(const HwParams* hw, int64_t nbytes) noexcept nogil:
    return cdiv(nbytes, hw.link_bw)

cdef inline int64_t message_ser_cycles(const HwParams* hw, int64_t nbytes) noexcept nogil:
    cdef int64_t full = nbytes // hw.packet_bytes
    cdef int64_t rest = nbytes - full * hw.packet_bytes
    cdef int64_t c = full * packet_cycles(hw, hw.packet_bytes)
    if rest > 0:
        c += packet_cycles(hw, rest)
    return c
