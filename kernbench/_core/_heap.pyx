# cython: language_level=3
"""The engine's event heap: a binary heap of C structs ordered by (time, prio, seq).

``seq`` is a per-heap counter assigned at push, so two events at the same cycle and priority pop
in the order they were pushed, on every run.
"""
from libc.stdlib cimport malloc, realloc, free
from libc.stdint cimport int32_t, int64_t
from ._types cimport Event, EventHeap


cdef inline bint _less(const Event* a, const Event* b) noexcept nogil:
    if a.time != b.time:
        return a.time < b.time
    if a.prio != b.prio:
        return a.prio < b.prio
    return a.seq < b.seq


cdef int heap_init(EventHeap* h, int64_t capacity) noexcept nogil:
    if capacity < 16:
        capacity = 16
    h.data = <Event*> malloc(capacity * sizeof(Event))
    h.size = 0
    h.capacity = capacity
    h.seq = 0
    return 0 if h.data != NULL else -1


cdef void heap_free(EventHeap* h) noexcept nogil:
    free(h.data)
    h.data = NULL
    h.size = 0
    h.capacity = 0


cdef int heap_push(EventHeap* h, int64_t time, int32_t prio, int32_t kind,
                   int32_t obj, int32_t gen) noexcept nogil:
    cdef Event* grown
    cdef Event ev
    cdef int64_t i, parent
    if h.size == h.capacity:
        grown = <Event*> realloc(h.data, 2 * h.capacity * sizeof(Event))
        if grown == NULL:
            return -1
        h.data = grown
        h.capacity *= 2
    ev.time = time
    ev.prio = prio
    ev.kind = kind
    ev.obj = obj
    ev.gen = gen
    ev.seq = h.seq
    h.seq += 1
    i = h.size
    h.size += 1
    # sift up
    while i > 0:
        parent = (i - 1) >> 1
        if _less(&ev, &h.data[parent]):
            h.data[i] = h.data[parent]
            i = parent
        else:
            break
    h.data[i] = ev
    return 0


cdef int heap_pop(EventHeap* h, Event* out) noexcept nogil:
    cdef int64_t i, child, n
    cdef Event last
    if h.size == 0:
        return 0
    out[0] = h.data[0]
    h.size -= 1
    n = h.size
    if n == 0:
        return 1
    last = h.data[n]
    i = 0
    # sift down
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _less(&h.data[child + 1], &h.data[child]):
            child += 1
        if _less(&h.data[child], &last):
            h.data[i] = h.data[child]
            i = child
        else:
            break
    h.data[i] = last
    return 1


def _selftest_order(list items):
    """Push (time, prio) pairs and pop them: returns the pop order as indices (for tests)."""
    cdef EventHeap h
    cdef Event ev
    cdef int idx = 0
    heap_init(&h, 4)
    try:
        for t, p in items:
            heap_push(&h, t, p, 0, idx, 0)
            idx += 1
        out = []
        while heap_pop(&h, &ev):
            out.append(ev.obj)
        return out
    finally:
        heap_free(&h)


def _selftest_ops(list ops):
    """Run ``ops``, each (time, prio) to push (the event numbered by its push) or None to pop:
    returns the popped events' numbers in order, then the rest as the heap empties (for tests:
    pushes and pops interleaved, as the engine makes them)."""
    cdef EventHeap h
    cdef Event ev
    cdef int idx = 0
    heap_init(&h, 4)
    try:
        out = []
        for op in ops:
            if op is None:
                if heap_pop(&h, &ev):
                    out.append(ev.obj)
            else:
                heap_push(&h, op[0], op[1], 0, idx, 0)
                idx += 1
        while heap_pop(&h, &ev):
            out.append(ev.obj)
        return out
    finally:
        heap_free(&h)
