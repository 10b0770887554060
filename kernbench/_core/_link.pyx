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

Train detail also skips a message's steady state exactly. Once neither T nor r binds and every
packet is full, the recurrence is e_i = max(e_{i-1}, e_{i-Q} + 2h) + ser, a map of the last Q ends
that commutes with adding a constant. So if Q packets in a row each end Delta after the packet Q
before them (whose credits came back unclamped too), every later period of Q packets repeats the
last one Delta later: the loop adds m * Delta to the Q credit slots and to e and jumps m * Q packets,
stopping short of the message's last packet (docs/hardware-model.md, "Engine detail levels").
"""
from libc.stdint cimport int32_t, int64_t, uint8_t
from ._types cimport (HwParams, EventHeap, LinkState, LinkCounters, EV_PKT_SENT, EV_PKT_ARRIVE,
                      EV_CREDIT, EV_TX_DONE, EV_RX_DONE, EV_LIMIT, PRIO_NORMAL, SignalPoll)
from ._heap cimport heap_push
from ._timing cimport cdiv, packet_cycles

import numpy as np


cdef inline int64_t _max(int64_t a, int64_t b) noexcept nogil:
    return a if a >= b else b


# -- train detail -----------------------------------------------------------------------------

cdef int _train_advance(const HwParams* hw, EventHeap* heap, LinkState* L, LinkCounters* cnt,
                        int32_t link, SignalPoll* poll) noexcept nogil:
    # The hot loop of train detail: one pass per packet. Everything it carries from packet to
    # packet lives in locals, written back to L, cnt and poll on every way out: the rings are
    # int64_t* like the struct fields, so the compiler must assume a ring store may change a field
    # and would reload them all after each one. No division per packet: the ring slot is a
    # running index (i % Q), and the message's serialisation (full packets, then the last) was
    # worked out once by link_send_start.
    cdef int64_t Q = hw.queue, h = hw.hop_latency, limit = hw.max_cycles
    cdef int64_t* cred = L.cred
    cdef int64_t* arr = L.arr
    cdef int64_t i = L.tx_next, slot = L.tx_slot, left = L.tx_pkts_left
    cdef int64_t T = L.tx_start, e = L.tx_e_prev
    cdef int64_t ser_full = L.tx_ser_full, ser_last = L.tx_ser_last
    # packets [rx_lo, rx_hi) belong to the posted recv (none if no recv is posted); a recv is
    # only posted between two calls, so the range holds for the whole loop
    cdef int64_t rx_lo = 0, rx_hi = 0, r = 0
    cdef int64_t pl = poll.left, n = 0, busy = 0
    cdef int64_t c, ser, s, a, d
    # steady-state detection (module docstring): `steady` counts the packets in a row for which
    # neither T nor r bound and the packet was full; `periodic` those of them whose credit came
    # back `delta` after the credit of the packet Q before.
    cdef int64_t steady = 0, periodic = 0, delta = -1, m, k
    cdef int rc = 0, stopped = 0
    if L.rx_cmd >= 0:
        rx_lo = L.rx_first
        rx_hi = L.rx_end
        r = L.rx_post
    while left > 0:
        if periodic >= Q and steady >= 2 * Q:
            # Every packet left but the message's last is a full one in the posted recv, so the
            # last Q repeat: jump whole periods (at most up to the cycle guard).
            m = left - 1
            if rx_hi - 1 - i < m:
                m = rx_hi - 1 - i
            m //= Q
            if delta > 0 and (limit - e) // delta < m:
                m = (limit - e) // delta
            if m > 0:
                for k in range(Q):
                    cred[k] += m * delta
                e += m * delta
                i += m * Q
                left -= m * Q
                n += m * Q
                busy += m * Q * ser_full
            periodic = 0
            steady = 0
        # One event may compute a whole message here (up to 2**40 bytes): each packet is a work
        # item of the signal poll (poll_signals, inlined), so Ctrl-C is seen within it. The run
        # is abandoned on -1.
        pl -= 1
        if pl <= 0:
            poll.left = 0
            if poll.check(poll):
                rc = -1  # a signal handler raised: the run is abandoned
                break
            pl = poll.left
        c = cred[slot]
        if c < 0:
            break  # the packet Q before this one is not drained yet: tx_waiting below
        ser = ser_last if left == 1 else ser_full
        s = e if e >= T else T
        if c > s:
            s = c
        if s > limit:
            # Past the guard: stop here (a huge message would otherwise be computed to its end
            # before the guard could fire); the event trips it when popped.
            rc = heap_push(heap, s, PRIO_NORMAL, EV_LIMIT, link, 0)
            stopped = 1
            break
        e = s + ser
        a = e + h
        n += 1
        busy += ser
        left -= 1
        if i >= rx_lo and i < rx_hi:
            d = a if a >= r else r
            if a >= r and left > 0 and s > T:
                # (s > T: T did not bind; left > 0: not the last packet, which may be short)
                steady += 1
                if c + delta == d + h:
                    periodic += 1
                else:
                    delta = d + h - c
                    periodic = 1
            else:
                steady = 0
                periodic = 0
            cred[slot] = d + h
            if i == rx_hi - 1:
                L.rx_last_drain = d
                if heap_push(heap, d, PRIO_NORMAL, EV_RX_DONE, link, 0):
                    rc = -1  # out of memory: the run is abandoned, L no longer matters
                    break
        else:
            steady = 0
            periodic = 0
            cred[slot] = -1
            arr[slot] = a
        i += 1
        slot += 1
        if slot == Q:
            slot = 0
    L.tx_next = i
    L.tx_slot = slot
    L.tx_pkts_left = left
    L.tx_e_prev = e
    cnt.packets += n
    cnt.busy += busy
    poll.left = pl
    if rc or stopped:
        return rc
    if left > 0:
        L.tx_waiting = 1
        return 0
    L.tx_waiting = 0
    return heap_push(heap, e, PRIO_NORMAL, EV_TX_DONE, link, 0)


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
    # Every packet but the last is full: two serialisation times per message, not a division
    # per packet.
    L.tx_ser_full = packet_cycles(hw, hw.packet_bytes)
    L.tx_ser_last = packet_cycles(hw, nbytes - (L.tx_pkts_left - 1) * hw.packet_bytes)
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
    # drain what the sender already queued for this message (one division for the first slot,
    # then a running index)
    upto = L.tx_next if L.tx_next < L.rx_end else L.rx_end
    slot = L.rx_first % Q
    for i in range(L.rx_first, upto):
        d = _max(L.arr[slot], now)
        L.cred[slot] = d + hw.hop_latency
        L.rx_last_drain = d
        slot += 1
        if slot == Q:
            slot = 0
    if upto == L.rx_end:
        if heap_push(heap, L.rx_last_drain, PRIO_NORMAL, EV_RX_DONE, link, 0):
            return -1
    if L.tx_waiting:
        return _train_advance(hw, heap, L, cnt, link, poll)
    return 0


# -- reports: which recv's post held a send's credits ------------------------------------------

def packet_starts(const int64_t[::1] T, const int64_t[::1] r, const int64_t[::1] nbytes,
                  int64_t packet_bytes, int64_t link_bw, int64_t hop, int64_t queue,
                  int64_t[::1] s, const int64_t[::1] other=None, int64_t chain_from=-1) -> None:
    """``s_i`` of every packet of one link's messages, by the recurrence of the module docstring:
    message k (in link order) has send start ``T[k]``, recv post ``r[k]`` and ``nbytes[k]`` >= 1
    bytes (cycles and bytes, int64); ``s`` holds the link's packets (sum of ceil(nbytes / P)).
    With ``other``, the posts of the messages after ``chain_from`` follow the RX unit's order
    instead of ``r``: recv k is posted at max(other[k], the end of recv k - 1), d_last of the
    message before (its other inputs' ready cycle: an ``after=`` tensor; 0 for none).
    For the critical path (kernbench.report.critical_path): the engine keeps no packet times.
    Raises ValueError on sizes that do not fit."""
    cdef int64_t n = T.shape[0], k, j, npk, i = 0, e = 0, c, ser, a, d = 0, rk, total = 0
    cdef bint chained = other is not None
    cdef HwParams hw
    if r.shape[0] != n or nbytes.shape[0] != n or packet_bytes < 1 or link_bw < 1 or queue < 1 \
            or (chained and other.shape[0] != n):
        raise ValueError("packet_starts: sizes do not fit")
    for k in range(n):
        if nbytes[k] < 1:
            raise ValueError("packet_starts: a message of no bytes")
        total += cdiv(nbytes[k], packet_bytes)
    if s.shape[0] != total:
        raise ValueError("packet_starts: s must hold every packet")
    hw.packet_bytes, hw.link_bw = packet_bytes, link_bw
    cred = np.zeros(queue, np.int64)  # c_{i-Q} of the packet Q before, by slot i % Q (0 at first)
    cdef int64_t[::1] cr = cred
    with nogil:
        for k in range(n):
            npk = cdiv(nbytes[k], packet_bytes)
            rk = _max(other[k], d) if chained and k > chain_from and k > 0 else r[k]
            for j in range(npk):
                ser = packet_cycles(&hw, packet_bytes if j < npk - 1
                                    else nbytes[k] - (npk - 1) * packet_bytes)
                c = cr[i % queue]
                s[i] = _max(_max(e, T[k]), c)
                e = s[i] + ser
                a = e + hop
                d = _max(a, rk)  # (drained; the message's last: its recv's end)
                cr[i % queue] = d + hop
                i += 1


def restart_points(const int64_t[::1] T, const int64_t[::1] r, const int64_t[::1] send_end,
                   const int64_t[::1] first, int64_t hop, int64_t queue, uint8_t[::1] out) -> None:
    """``out[j]`` = 1 where the recurrence can be run afresh from message j of one link
    (arrays as :func:`packet_starts`; ``send_end`` each send's end cycle, ``first`` each
    message's first packet number, n + 1 entries): every credit of the ``queue`` packets before
    j's first is back by j's send start (a credit is back by ``max(send_end + hop, r) + hop`` of
    its message: its packets land by its send's end plus a hop), and the wire is free then (the
    TX unit ran the sends one after the other). Message 0 always is. One pass: the messages
    holding those packets slide forward with j, their largest bound kept in a monotone queue."""
    cdef int64_t n = T.shape[0], j, jq = 0, head = 0, tail = 0, bound
    if (r.shape[0] != n or send_end.shape[0] != n or first.shape[0] != n + 1 or out.shape[0] != n
            or queue < 1):
        raise ValueError("restart_points: sizes do not fit")
    dq = np.empty(max(n, 1), np.int64)  # message indices, their bounds decreasing
    cdef int64_t[::1] q = dq
    with nogil:
        for j in range(n):
            if j > 0:
                # message j - 1 enters the window; those wholly before packet first[j] - Q leave
                bound = _max(send_end[j - 1] + hop, r[j - 1]) + hop
                while tail > head and _max(send_end[q[tail - 1]] + hop, r[q[tail - 1]]) + hop <= bound:
                    tail -= 1
                q[tail] = j - 1
                tail += 1
                while jq < j and first[jq + 1] <= first[j] - queue:
                    jq += 1
                while tail > head and q[head] < jq:
                    head += 1
            out[j] = 1 if (j == 0 or tail == head
                           or _max(send_end[q[head]] + hop, r[q[head]]) + hop <= T[j]) else 0


def post_holder(const int64_t[::1] s, const int64_t[::1] T, const int64_t[::1] r,
                const int64_t[::1] nbytes, const int64_t[::1] first, int64_t m,
                int64_t packet_bytes, int64_t link_bw, int64_t hop, int64_t queue,
                int64_t[::1] memo) -> tuple:
    """Why message ``m`` of a link (arrays as :func:`packet_starts`, ``s`` its result for at
    least messages 0..m, ``first`` each message's first packet number in ``s``, n + 1
    entries) ends when it does: the recurrence walked back from m's last packet,
    each packet's start to the term that set it (a send's start first, then the wire, then a
    credit back a round trip after its packet landed, then a recv's post).
    Returns ``(e_last, k)``: m's last packet's end (cycles) and the message whose recv's post
    held a credit on the way (-1 when the walk reaches a send's start: the sender, the wire and
    the link's own credit round trip set the end, no post held it; -2 when ``s`` does not
    follow the recurrence). ``memo`` (one int64 a packet of ``s``, -3 where unknown) keeps each
    packet's answer: a later walk that meets a packet an earlier one passed stops there, so the
    walks of a link's sends cost its packets once, not once each."""
    cdef int64_t n = T.shape[0], i, npk, e_last, k
    cdef HwParams hw
    if (m < 0 or m >= n or r.shape[0] != n or nbytes.shape[0] != n or first.shape[0] != n + 1
            or packet_bytes < 1 or link_bw < 1 or queue < 1):
        raise ValueError("post_holder: sizes do not fit")
    hw.packet_bytes, hw.link_bw = packet_bytes, link_bw
    if s.shape[0] < first[m + 1] or memo.shape[0] < first[m + 1]:
        raise ValueError("post_holder: s and memo must hold message m's packets")
    i = first[m + 1] - 1
    npk = first[m + 1] - first[m]
    e_last = s[i] + packet_cycles(&hw, nbytes[m] - (npk - 1) * packet_bytes)
    with nogil:
        k = _walk(&hw, s, T, r, nbytes, first, m, i, hop, queue, memo, -3)
        if k >= -1:  # (the same steps again, each packet passed given the answer)
            _walk(&hw, s, T, r, nbytes, first, m, i, hop, queue, memo, k)
    return e_last, k


cdef int64_t _msg_of(const int64_t[::1] f, int64_t j, int64_t k) noexcept nogil:
    # the message holding packet j, at most k: f[result] <= j < f[result + 1]
    cdef int64_t lo = 0, hi = k, mid
    if j >= f[k]:
        return k
    while lo < hi:  # (the last message whose first packet is <= j)
        mid = (lo + hi + 1) // 2
        if f[mid] <= j:
            lo = mid
        else:
            hi = mid - 1
    return lo


cdef int64_t _walk(const HwParams* hw, const int64_t[::1] s, const int64_t[::1] T,
                   const int64_t[::1] r, const int64_t[::1] nbytes, const int64_t[::1] f,
                   int64_t k, int64_t i, int64_t hop, int64_t queue, int64_t[::1] memo,
                   int64_t answer) noexcept nogil:
    # post_holder's walk from packet i (of message k). answer -3: find the answer (stopping
    # at a packet whose answer memo holds); else write it for every packet the walk passes
    cdef int64_t j, kj, sj, aj, pb = hw.packet_bytes
    while True:
        if memo[i] != -3:
            return memo[i]
        if answer != -3:
            memo[i] = answer
        k = _msg_of(f, i, k)
        if s[i] == T[k]:
            return -1
        if i > 0:  # the packet before on the wire (this message's, or the one before's)
            j = i - 1
            kj = k if j >= f[k] else k - 1
            sj = s[j] + _ser(hw, j, f[kj], f[kj + 1], nbytes[kj], pb)
            if sj == s[i]:
                i = j
                continue
        j = i - queue
        if j < 0:  # (cannot be: the packet's start is one of the three terms)
            return -2
        kj = _msg_of(f, j, k)
        aj = s[j] + _ser(hw, j, f[kj], f[kj + 1], nbytes[kj], pb) + hop
        if _max(aj, r[kj]) + hop != s[i]:  # (cannot be: s is not this recurrence's)
            return -2
        if aj >= r[kj]:  # drained as it landed: the link's own round trip
            i = j
            continue
        return kj


cdef inline int64_t _ser(const HwParams* hw, int64_t j, int64_t lo, int64_t hi, int64_t nbytes,
                         int64_t packet_bytes) noexcept nogil:
    # serialisation of packet j of a message holding packets lo..hi-1 of nbytes
    return packet_cycles(hw, packet_bytes if j < hi - 1 else nbytes - (hi - 1 - lo) * packet_bytes)
