# SFR links: packets, receive queue and credits (docs/hardware-model.md, "SFR links").
from libc.stdint cimport int32_t, int64_t
from ._types cimport HwParams, EventHeap, LinkState, LinkCounters, SignalPoll

# Every function returns 0, or -1 when the event heap cannot grow (ST_NOMEM) or, in train detail,
# when a signal handler raised while packets were computed (poll.raised set: ST_INTERRUPTED).
# The send on this link starts at now (its TX unit is free and its operand ready).
cdef int link_send_start(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                         int32_t link, int64_t cmd, int64_t now, int64_t nbytes,
                         SignalPoll* poll) noexcept nogil
# The matching recv is posted at now on the receiver's RX unit.
cdef int link_recv_post(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                        int32_t link, int64_t cmd, int64_t now, int64_t nbytes,
                        SignalPoll* poll) noexcept nogil
# Packet detail only: EV_PKT_SENT, EV_PKT_ARRIVE, EV_CREDIT.
cdef int link_packet_event(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                           int32_t link, int32_t kind, int64_t now) noexcept nogil
