# Binary min-heap of events keyed on (time, prio, seq): deterministic pop order.
from libc.stdint cimport int32_t, int64_t
from ._types cimport Event, EventHeap

cdef int heap_init(EventHeap* h, int64_t capacity) noexcept nogil
cdef void heap_free(EventHeap* h) noexcept nogil
# Returns -1 when memory runs out (the caller turns it into ST_NOMEM).
cdef int heap_push(EventHeap* h, int64_t time, int32_t prio, int32_t kind,
                   int32_t obj, int32_t gen) noexcept nogil
# Pops the smallest event into *out; returns 0 when the heap is empty.
cdef int heap_pop(EventHeap* h, Event* out) noexcept nogil
