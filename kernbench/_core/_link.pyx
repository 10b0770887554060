# cython: language_level=3
"""One direction of an SFR link: sender TX port -> receiver RX port, with credits.

Both detail levels implement the recurrence of docs/hardware-model.md:

    s_i = max(e_{i-1}, T, c_{i-Q})    e_i = s_i + ser_i    a_i = e_i + h
    d_i = max(a_i, r)                 c_i = d_i + h

Packet detail walks it with three heap events per packet (sent, arrived, credit back).
Train detail evaluates it in a loop, as far as its inputs are known: a packet needs the credit of
the packet Q before it, which is known once that packet's recv has been posted. The sender stops
there and is resumed when the recv is posted; the only heap events are the send's and the recv's
completions. Packets are numbered over the whole link, so slot i % Q of the rings holds the credit
time packet i waits for (before it starts) and, while undrained, its arrival time.
"""
from libc.stdint cimport int32_t, int64_t
from ._types cimport (HwParams, EventHeap, LinkState, LinkCounters, EV_PKT_SENT, EV_PKT_ARRIVE,
                      EV_CREDIT, EV_TX_DONE, EV_RX_DONE, EV_LIMIT, PRIO_NORMAL, SignalPoll,
                      poll_signals)
from ._heap cimport heap_push
from ._timing cimport cdiv, packet_cycles


cdef inline int64_t _max(int64_t a, int64_t b) noexcept nogil:
    return a if a >= b else b


# -- train detail -----------------------------------------------------------------------------

cdef int _train_advance(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                        int32_t link, SignalPoll* poll) noexcept nogil:
    cdef int64_t Q = hw.queue, h = hw.hop_latency
    cdef int64_t i, slot, c, nb, ser, s, e, a, d
    while L.tx_pkts_left > 0:
        # One event may compute a whole message here (up to 2**40 bytes): each packet is a work
        # item of the signal poll, so Ctrl-C is seen within it. The run is abandoned on -1.
        if poll_signals(poll):
            return -1
        i = L.tx_next
        slot = i % Q
        c = L.cred[slot]
        if c < 0:
            L.tx_waiting = 1  # the packet Q before this one is not drained yet
            return 0
        nb = hw.packet_bytes if L.tx_bytes_left > hw.packet_bytes else L.tx_bytes_left
        ser = packet_cycles(hw, nb)
        s = _max(_max(L.tx_e_prev, L.tx_start), c)
        if s > hw.max_cycles:
            # Past the guard: stop here (a huge message would otherwise be computed to its end
            # before the guard could fire); the event trips it when popped.
            return heap_push(heap, s, PRIO_NORMAL, EV_LIMIT, link, 0)
        e = s + ser
        a = e + h
        L.tx_e_prev = e
        L.tx_next = i + 1
        L.tx_pkts_left -= 1
        L.tx_bytes_left -= nb
        cnt.packets += 1
        cnt.busy += ser
        if L.rx_cmd >= 0 and i >= L.rx_first and i < L.rx_end:
            d = _max(a, L.rx_post)
            L.cred[slot] = d + h
            L.rx_drained += 1
            L.rx_last_drain = d
            if i == L.rx_end - 1:
                if heap_push(heap, d, PRIO_NORMAL, EV_RX_DONE, link, 0):
                    return -1
        else:
            L.cred[slot] = -1
            L.arr[slot] = a
    L.tx_waiting = 0
    return heap_push(heap, L.tx_e_prev, PRIO_NORMAL, EV_TX_DONE, link, 0)


# -- packet detail ----------------------------------------------------------------------------

cdef int _packet_try_send(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                          int32_t link, int64_t now) noexcept nogil:
    cdef int64_t nb
    if L.serialising or L.tx_pkts_left == 0:
        return 0
    if L.credits == 0:
        L.tx_waiting = 1
        return 0
    L.tx_waiting = 0
    L.credits -= 1
    nb = hw.packet_bytes if L.tx_bytes_left > hw.packet_bytes else L.tx_bytes_left
    L.cur_bytes = nb
    L.serialising = 1
    L.tx_pkts_left -= 1
    L.tx_bytes_left -= nb
    L.tx_next += 1
    cnt.packets += 1
    cnt.busy += packet_cycles(hw, nb)
    return heap_push(heap, now + packet_cycles(hw, nb), PRIO_NORMAL, EV_PKT_SENT, link, 0)


cdef int _packet_drain(const HwParams* hw, EventHeap* heap, LinkState* L, int32_t link,
                       int64_t now) noexcept nogil:
    while L.rx_cmd >= 0 and L.rx_drained < L.rx_arrived and L.rx_drained < L.rx_end:
        L.rx_drained += 1
        L.rx_last_drain = now
        if heap_push(heap, now + hw.hop_latency, PRIO_NORMAL, EV_CREDIT, link, 0):
            return -1
        if L.rx_drained == L.rx_end:
            return heap_push(heap, now, PRIO_NORMAL, EV_RX_DONE, link, 0)
    return 0


cdef int link_packet_event(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                           int32_t link, int32_t kind, int64_t now) noexcept nogil:
    if kind == EV_PKT_SENT:
        L.serialising = 0
        L.tx_e_prev = now
        if heap_push(heap, now + hw.hop_latency, PRIO_NORMAL, EV_PKT_ARRIVE, link, 0):
            return -1
        if L.tx_pkts_left == 0:
            return heap_push(heap, now, PRIO_NORMAL, EV_TX_DONE, link, 0)
        return _packet_try_send(hw, heap, L, cnt, link, now)
    if kind == EV_PKT_ARRIVE:
        L.rx_arrived += 1
        return _packet_drain(hw, heap, L, link, now)
    # EV_CREDIT
    L.credits += 1
    if L.tx_waiting:
        return _packet_try_send(hw, heap, L, cnt, link, now)
    return 0


# -- both -------------------------------------------------------------------------------------

cdef int link_send_start(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                         int32_t link, int64_t cmd, int64_t now, int64_t nbytes,
                         SignalPoll* poll) noexcept nogil:
    L.tx_cmd = cmd
    L.tx_start = now
    L.tx_pkts_left = cdiv(nbytes, hw.packet_bytes)
    L.tx_bytes_left = nbytes
    cnt.bytes += nbytes
    cnt.messages += 1
    if hw.packet_detail:
        return _packet_try_send(hw, heap, L, cnt, link, now)
    return _train_advance(hw, heap, L, cnt, link, poll)


cdef int link_recv_post(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                        int32_t link, int64_t cmd, int64_t now, int64_t nbytes,
                        SignalPoll* poll) noexcept nogil:
    cdef int64_t i, slot, upto, d
    cdef int64_t Q = hw.queue
    L.rx_cmd = cmd
    L.rx_post = now
    L.rx_first = L.rx_next_first
    L.rx_end = L.rx_first + cdiv(nbytes, hw.packet_bytes)
    L.rx_next_first = L.rx_end
    if hw.packet_detail:
        return _packet_drain(hw, heap, L, link, now)
    # drain what the sender already queued for this message
    upto = L.tx_next if L.tx_next < L.rx_end else L.rx_end
    for i in range(L.rx_first, upto):
        slot = i % Q
        d = _max(L.arr[slot], now)
        L.cred[slot] = d + hw.hop_latency
        L.rx_drained += 1
        L.rx_last_drain = d
    if upto == L.rx_end:
        if heap_push(heap, L.rx_last_drain, PRIO_NORMAL, EV_RX_DONE, link, 0):
            return -1
    if L.tx_waiting:
        return _train_advance(hw, heap, L, cnt, link, poll)
    return 0
