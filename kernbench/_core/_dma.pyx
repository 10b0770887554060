# cython: language_level=3
"""The cube memory channel shared by the DMA engines of its PEs.

Burst by burst (``packet_detail``): every time the channel frees it grants one burst to the next
requesting PE in round-robin order (an EV_ARBITRATE per burst).

Train (default): when exactly one PE is requesting, all its remaining bursts are granted as one
train and its completion is scheduled directly. If another PE requests before the train ends, the
train is cut at the first burst not yet granted by then, exactly where burst-by-burst arbitration
would have let the newcomer in, so both give the same cycles.
"""
from libc.stdint cimport int32_t, int64_t
from ._types cimport (HwParams, EventHeap, Channel, DmaPort, EV_ARBITRATE, EV_DMA_DONE,
                      PRIO_NORMAL, PRIO_ARBITRATE)
from ._heap cimport heap_push
from ._timing cimport cdiv, burst_cycles, dma_ideal_cycles


cdef inline int _schedule_arbitration(EventHeap* heap, Channel* ch, int32_t cube,
                                      int64_t t) noexcept nogil:
    ch.gen += 1
    ch.pending = 1
    return heap_push(heap, t, PRIO_ARBITRATE, EV_ARBITRATE, cube, ch.gen)


cdef int dma_request(const HwParams* hw, EventHeap* heap, Channel* ch, DmaPort* ports,
                     int32_t cube, int32_t local, int64_t now, int64_t nbytes,
                     int64_t* bursts) noexcept nogil:
    cdef DmaPort* p = &ports[local]
    cdef DmaPort* tp
    cdef int64_t df, j
    p.bursts_left = cdiv(nbytes, hw.burst_bytes)
    p.bytes_left = nbytes
    p.ideal = dma_ideal_cycles(hw, nbytes)
    p.requesting = 1
    ch.n_requesting += 1
    if ch.train_pe >= 0 and now < ch.busy_until:
        # Cut the train at the first burst burst-by-burst arbitration would not yet have granted:
        # burst i is granted at train_start + i * df, and a grant at exactly `now` runs after
        # this request (arbitration is the last event of a cycle).
        tp = &ports[ch.train_pe]
        df = burst_cycles(hw, hw.burst_bytes)
        j = cdiv(now - ch.train_start, df)
        if j < 1:
            j = 1
        if j < ch.train_bursts:
            bursts[0] -= ch.train_bursts - j
            tp.bursts_left = ch.train_bursts - j
            tp.bytes_left = ch.train_bytes - j * hw.burst_bytes
            tp.requesting = 1
            tp.gen += 1  # its EV_DMA_DONE is no longer valid
            ch.n_requesting += 1
            ch.busy_until = ch.train_start + j * df
        ch.train_pe = -1
        return _schedule_arbitration(heap, ch, cube, ch.busy_until)
    if ch.train_pe >= 0:
        ch.train_pe = -1  # the train has ended
    if ch.pending == 0:
        return _schedule_arbitration(heap, ch, cube, now if now > ch.busy_until else ch.busy_until)
    return 0


cdef int dma_arbitrate(const HwParams* hw, EventHeap* heap, Channel* ch, DmaPort* ports,
                       int32_t cube, int64_t now, int32_t gen, int64_t* bursts) noexcept nogil:
    cdef int32_t i, l = -1, n = hw.pes_per_cube
    cdef DmaPort* p
    cdef int64_t nb, dur, b
    if gen != ch.gen:
        return 0  # cancelled
    ch.pending = 0
    if ch.n_requesting == 0:
        return 0
    for i in range(1, n + 1):
        l = (ch.last + i) % n
        if ports[l].requesting:
            break
    p = &ports[l]
    ch.last = l
    if ch.n_requesting == 1 and not hw.packet_detail:
        # uncontended: every remaining burst back to back, as one train
        b = p.bursts_left
        dur = (b - 1) * burst_cycles(hw, hw.burst_bytes) + burst_cycles(hw, p.bytes_left - (b - 1) * hw.burst_bytes)
        ch.train_pe = l
        ch.train_start = now
        ch.train_bursts = b
        ch.train_bytes = p.bytes_left
        ch.busy_until = now + dur
        bursts[0] += b
        p.bursts_left = 0
        p.bytes_left = 0
        p.requesting = 0
        ch.n_requesting -= 1
        # No EV_ARBITRATE at the train's end: a request during the train schedules it.
        return heap_push(heap, now + dur + hw.dma_latency, PRIO_NORMAL, EV_DMA_DONE,
                         cube * n + l, p.gen)
    nb = hw.burst_bytes if p.bytes_left > hw.burst_bytes else p.bytes_left
    dur = burst_cycles(hw, nb)
    p.bytes_left -= nb
    p.bursts_left -= 1
    bursts[0] += 1
    ch.busy_until = now + dur
    if p.bursts_left == 0:
        p.requesting = 0
        ch.n_requesting -= 1
        if heap_push(heap, now + dur + hw.dma_latency, PRIO_NORMAL, EV_DMA_DONE, cube * n + l, p.gen):
            return -1
    return _schedule_arbitration(heap, ch, cube, now + dur)
