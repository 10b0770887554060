# cython: language_level=3
"""The cube memory channel shared by the DMA engines of its PEs.

The rule (docs/hardware-model.md): whenever the channel is free and PEs have bursts pending, it
grants one burst to the next requesting PE in round-robin order after the PE it served last; a
request that arrives in the cycle the channel frees competes for that grant.

Burst by burst (``packet_detail``): an EV_ARBITRATE per burst applies the rule literally.

Train (default): between changes of the set of requesting PEs the rule is periodic, so the
channel is computed in closed form, an **epoch** at a time. An epoch starts at a grant, at cycle
t0, with its k members (the requesting PEs) in round-robin order p_0 .. p_{k-1} after the PE
served last. Grant i goes to p_{i mod k} at t0 + i * df (df: cycles of a full burst), until the
first member to reach its last burst gets it: member j's last burst is grant (b_j - 1) * k + j
(b_j: its bursts left at t0), and the smallest of these, fin_idx, is the finisher's. Every grant
before it is a full burst, which is what keeps the epoch periodic. The finisher's last burst
leaves at fin_end = t0 + fin_idx * df + (its cycles), and the next epoch starts there with the
members that have bursts left. Nothing is scheduled for that: epochs are ended lazily, when a
request arrives after fin_end or when the finisher's completion event fires.

A request arriving at `now` while an epoch runs changes the set:
- if the finisher's last burst is granted at or after `now`, the epoch is cut: the grants before
  `now` stand (m = ceil((now - t0) / df) of them, the j-th member has had ceil((m - j) / k)), and
  a new epoch starts at the next grant, t0 + m * df, with the newcomer among its members. A grant
  at exactly `now` is not made yet: arbitration runs after every other event of its cycle.
- otherwise the finisher's last burst is on the channel: the epoch ends as planned and the next
  one starts at fin_end with the newcomer.
Same-cycle requests need no care: the second one cuts the epoch the first one started at `now`
after zero grants, so the epoch that runs is the one with every request of that cycle.

Completions: a command ends dma_latency cycles after its last burst leaves. PEs whose last burst
has left wait in the channel's ring (fq), in the order they left; after them comes the running
epoch's finisher. One EV_CHAN_DONE per channel is in the heap, for the first of these; it is
rescheduled (the old one cancelled by gen) only when a request changes that first completion.
Heap events: about one per DMA command, however many bursts it has and however many PEs share
the channel; the start and end cycle of every command are those of burst-by-burst arbitration
(tests/test_detail_levels.py, tests/test_dma_contention.py).
"""
from libc.stdint cimport int32_t, int64_t, INT64_MAX
from ._types cimport (HwParams, EventHeap, Channel, DmaPort, EV_ARBITRATE, EV_DMA_DONE,
                      EV_CHAN_DONE, PRIO_NORMAL, PRIO_ARBITRATE, KB_DEBUG)
from ._heap cimport heap_push
from ._timing cimport cdiv, burst_cycles, dma_ideal_cycles


cdef inline void _check(Channel* ch, bint ok) noexcept nogil:
    # Debug build: mark the channel broken; the engine stops the run with EngineInvariantError
    # once the call that broke it returns (Sim._dma_broken). The release build compiles this away.
    if KB_DEBUG and not ok:
        ch.bad += 1


# -- packet detail: burst by burst -------------------------------------------------------------

cdef inline int _schedule_arbitration(EventHeap* heap, Channel* ch, int32_t cube,
                                      int64_t t) noexcept nogil:
    ch.gen += 1
    ch.pending = 1
    return heap_push(heap, t, PRIO_ARBITRATE, EV_ARBITRATE, cube, ch.gen)


cdef int dma_arbitrate(const HwParams* hw, EventHeap* heap, Channel* ch, DmaPort* ports,
                       int32_t cube, int64_t now, int32_t gen, int64_t* bursts) noexcept nogil:
    cdef int32_t i, l = -1, n = hw.pes_per_cube
    cdef DmaPort* p
    cdef int64_t nb, dur
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
    nb = hw.burst_bytes if p.bytes_left > hw.burst_bytes else p.bytes_left
    dur = burst_cycles(hw, nb)
    p.bytes_left -= nb
    p.bursts_left -= 1
    bursts[0] += 1
    ch.busy_until = now + dur
    if p.bursts_left == 0:
        p.requesting = 0
        ch.n_requesting -= 1
        if heap_push(heap, now + dur + hw.dma_latency, PRIO_NORMAL, EV_DMA_DONE, cube * n + l, 0):
            return -1
    return _schedule_arbitration(heap, ch, cube, now + dur)


# -- train detail: epochs ----------------------------------------------------------------------

cdef void _plan(const HwParams* hw, Channel* ch, DmaPort* ports, int64_t t0,
                int64_t df) noexcept nogil:
    # A new epoch from t0: the requesting PEs in round-robin order after the PE served last, and
    # its finisher (the smallest grant index of a last burst; ties cannot happen, j differs).
    cdef int32_t n = hw.pes_per_cube, k = ch.n_requesting, l = ch.last, i, j = 0, f = 0
    cdef int64_t key, best = INT64_MAX
    ch.t0 = t0
    ch.k = k
    if k == 0:
        return  # idle from t0
    for i in range(n):
        l += 1
        if l == n:
            l = 0
        if ports[l].requesting:
            ch.members[j] = l
            key = (ports[l].bursts_left - 1) * k + j
            if key < best:
                best = key
                f = j
            j += 1
            if j == k:
                break
    ch.fin = f
    ch.fin_idx = best
    ch.fin_end = t0 + best * df + ports[ch.members[f]].last_cycles


cdef void _grant(Channel* ch, DmaPort* ports, int64_t m) noexcept nogil:
    # The epoch's first m grants are made: member j has had ceil((m - j) / k) of them, and the
    # last went to member (m - 1) mod k. Two divisions per epoch, none per burst.
    cdef int32_t k = ch.k, j
    cdef int64_t q, r
    if m <= 0:
        return
    q = m // k
    r = m - q * k
    for j in range(k):
        ports[ch.members[j]].bursts_left -= q + (1 if j < r else 0)
        # no member gets past its last burst; only the finisher reaches it (m = fin_idx + 1)
        _check(ch, ports[ch.members[j]].bursts_left >= (0 if j == ch.fin and m == ch.fin_idx + 1 else 1))
    ch.last = ch.members[r - 1 if r > 0 else k - 1]


cdef void _end_epoch(const HwParams* hw, Channel* ch, DmaPort* ports, int64_t df) noexcept nogil:
    # Every grant of the epoch is made, the finisher's last burst included: it joins the ring of
    # ended transfers, and the next epoch starts when that burst leaves.
    cdef int32_t f = ch.members[ch.fin]
    cdef int32_t tail
    _grant(ch, ports, ch.fin_idx + 1)
    _check(ch, ports[f].bursts_left == 0 and ch.fq_len < hw.pes_per_cube)
    ports[f].requesting = 0
    ch.n_requesting -= 1
    tail = ch.fq_head + ch.fq_len
    if tail >= hw.pes_per_cube:
        tail -= hw.pes_per_cube
    ch.fq_pe[tail] = f
    ch.fq_t[tail] = ch.fin_end + hw.dma_latency
    ch.fq_len += 1
    _plan(hw, ch, ports, ch.fin_end, df)


cdef int _schedule_done(const HwParams* hw, EventHeap* heap, Channel* ch,
                        int32_t cube) noexcept nogil:
    # Keep exactly one live EV_CHAN_DONE, at the channel's next completion: the ring's first
    # entry, else the running epoch's finisher. A new event only when that cycle changed.
    cdef int64_t t = -1
    if ch.fq_len > 0:
        t = ch.fq_t[ch.fq_head]
    elif ch.k > 0:
        t = ch.fin_end + hw.dma_latency
    if t == ch.ev_time:
        return 0
    ch.gen += 1  # the event scheduled before (if any) is stale
    ch.ev_time = t
    if t < 0:
        return 0
    return heap_push(heap, t, PRIO_NORMAL, EV_CHAN_DONE, cube, ch.gen)


cdef int _train_request(const HwParams* hw, EventHeap* heap, Channel* ch, DmaPort* ports,
                        int32_t cube, int32_t local, int64_t now, int64_t nbytes,
                        int64_t* bursts) noexcept nogil:
    cdef DmaPort* p = &ports[local]
    cdef int64_t df = burst_cycles(hw, hw.burst_bytes)
    cdef int64_t b, m
    # First the epochs that ended before now, without the newcomer: they did not see it.
    while ch.k > 0 and ch.fin_end < now:
        _end_epoch(hw, ch, ports, df)
    b = cdiv(nbytes, hw.burst_bytes)
    p.bursts_left = b
    p.last_cycles = burst_cycles(hw, nbytes - (b - 1) * hw.burst_bytes)
    p.requesting = 1
    ch.n_requesting += 1
    bursts[0] += b
    if ch.k == 0:
        _plan(hw, ch, ports, now if now > ch.t0 else ch.t0, df)
    elif ch.t0 + ch.fin_idx * df >= now:
        # cut before the finisher's last grant: the grants before now stand
        m = 0 if now <= ch.t0 else cdiv(now - ch.t0, df)
        _grant(ch, ports, m)
        _plan(hw, ch, ports, ch.t0 + m * df, df)
    else:
        _end_epoch(hw, ch, ports, df)  # the next epoch, at fin_end >= now, has the newcomer
    return _schedule_done(hw, heap, ch, cube)


cdef int32_t dma_done(const HwParams* hw, Channel* ch, DmaPort* ports, int64_t now,
                      int32_t gen) noexcept nogil:
    cdef int32_t l
    if gen != ch.gen:
        return -1  # cancelled
    ch.ev_time = -1
    if ch.fq_len == 0:
        # the event was for the running epoch's finisher: the epoch has ended
        _end_epoch(hw, ch, ports, burst_cycles(hw, hw.burst_bytes))
    l = ch.fq_pe[ch.fq_head]
    _check(ch, ch.fq_t[ch.fq_head] == now)  # the event was scheduled for this completion
    ch.fq_head += 1
    if ch.fq_head == hw.pes_per_cube:
        ch.fq_head = 0
    ch.fq_len -= 1
    return l


cdef int dma_done_next(const HwParams* hw, EventHeap* heap, Channel* ch,
                       int32_t cube) noexcept nogil:
    return _schedule_done(hw, heap, ch, cube)


# -- both --------------------------------------------------------------------------------------

cdef int dma_request(const HwParams* hw, EventHeap* heap, Channel* ch, DmaPort* ports,
                     int32_t cube, int32_t local, int64_t now, int64_t nbytes,
                     int64_t* bursts) noexcept nogil:
    cdef DmaPort* p = &ports[local]
    p.ideal = dma_ideal_cycles(hw, nbytes)
    if not hw.packet_detail:
        return _train_request(hw, heap, ch, ports, cube, local, now, nbytes, bursts)
    p.bursts_left = cdiv(nbytes, hw.burst_bytes)
    p.bytes_left = nbytes
    p.requesting = 1
    ch.n_requesting += 1
    if ch.pending == 0:
        return _schedule_arbitration(heap, ch, cube, now if now > ch.busy_until else ch.busy_until)
    return 0
