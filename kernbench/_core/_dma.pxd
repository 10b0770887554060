# The cube memory channel: round-robin bursts from the PEs' DMA engines (docs/hardware-model.md).
from libc.stdint cimport int32_t, int64_t
from ._types cimport HwParams, EventHeap, Channel, DmaPort

# A PE's DMA command of nbytes starts at now. Returns -1 on out-of-memory.
cdef int dma_request(const HwParams* hw, EventHeap* heap, Channel* ch, DmaPort* ports,
                     int32_t cube, int32_t local, int64_t now, int64_t nbytes,
                     int64_t* bursts) noexcept nogil
# Packet detail, EV_ARBITRATE for this cube's channel. Returns -1 on out-of-memory.
cdef int dma_arbitrate(const HwParams* hw, EventHeap* heap, Channel* ch, DmaPort* ports,
                       int32_t cube, int64_t now, int32_t gen, int64_t* bursts) noexcept nogil
# Train detail, EV_CHAN_DONE: the local PE whose DMA command ends now, -1 if the event was
# cancelled. The caller completes that command, then calls dma_done_next.
cdef int32_t dma_done(const HwParams* hw, Channel* ch, DmaPort* ports, int64_t now,
                      int32_t gen) noexcept nogil
# Train detail: schedules the channel's next completion. Returns -1 on out-of-memory.
cdef int dma_done_next(const HwParams* hw, EventHeap* heap, Channel* ch,
                       int32_t cube) noexcept nogil
