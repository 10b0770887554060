# cython: language_level=3
"""The event loop: units, scoreboard, SRAM liveness and counters.

``Sim`` is built by kernbench._core.api.simulate from arrays that api.py has already validated
(operand ids in range, sizes positive, links wired, sends matched with recvs); nothing here checks
them again in release builds. ``Sim.run()`` drops the GIL, runs the loop to completion and returns
a status code (ST_*), which api.py raises as an exception with the GIL held.

Ctrl-C: every SIGNAL_CHECK_PERIOD work items (heap events and train-detail packets, a few ms) the
loop takes the GIL for a moment and runs Python's signal handlers (main thread only: Python runs
them nowhere else). If one raises (KeyboardInterrupt), the loop stops with ST_INTERRUPTED, run()
frees the C state and re-raises that exception: the Sim is dead, nothing else is touched, and
the next simulate() starts from scratch.

A command's lifecycle: its unit reaches it (in program order) -> it waits until every operand
tensor is ready (operand stall) -> it starts (its result tensor is allocated in SRAM) -> a
component times it (GEMM/VECTOR by formula, DMA on the cube channel, SEND/RECV on the link) ->
its completion event ends it (result ready, operands released, the unit takes its next command,
units waiting on the result are woken).
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, INT64_MAX
from libc.stdlib cimport calloc, free
from cpython.exc cimport PyErr_CheckSignals
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
import threading

import numpy as np
cimport cython
cimport numpy as cnp

from ._types cimport *
from ._heap cimport heap_init, heap_free, heap_push, heap_pop
from ._timing cimport (gemm_folds, gemm_fold_cycles, gemm_fold_steady, gemm_dot_cycles, vec_cycles, reduce_cycles,
                       message_ser_cycles)
from ._dma cimport dma_request, dma_arbitrate, dma_done, dma_done_next
from ._link cimport link_send_start, link_recv_post, link_packet_event

cnp.import_array()

cdef extern from *:
    """
    #ifdef KERNBENCH_DEBUG
    #define KB_DEBUG 1
    #else
    #define KB_DEBUG 0
    #endif
    """
    const int KB_DEBUG

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define KB_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define KB_PREFETCH(p) ((void)(p))
    #endif
    """
    # A hint only: load the cache line at p ahead of its use (no effect on results).
    void KB_PREFETCH(const void* p) noexcept nogil

UNIT_COUNTERS_DTYPE = np.dtype([
    ("busy", np.int64), ("commands", np.int64), ("work", np.int64),
    ("stall_operand", np.int64), ("stall_credit", np.int64), ("stall_data", np.int64),
    ("stall_arbitration", np.int64),
])
LINK_COUNTERS_DTYPE = np.dtype([
    ("bytes", np.int64), ("packets", np.int64), ("busy", np.int64), ("messages", np.int64),
])

DEBUG_BUILD = bool(KB_DEBUG)
COMMAND_ITEMSIZE = sizeof(Command)
# The numpy dtype of the C struct itself (as scikit-learn builds NODE_DTYPE from its Node):
# api.py compares it, field by field and offset by offset, with pe_commands.COMMAND_DTYPE.
cdef Command _dummy_command
COMMAND_STRUCT_DTYPE = np.asarray(<Command[:1]>(&_dummy_command)).dtype
ENUMS = {
    "OP_LOAD": OP_LOAD, "OP_STORE": OP_STORE, "OP_DOT": OP_DOT, "OP_VEC": OP_VEC,
    "OP_REDUCE": OP_REDUCE, "OP_SEND": OP_SEND, "OP_RECV": OP_RECV, "N_UNITS": N_UNITS,
    "UNIT_TX0": UNIT_TX0, "UNIT_RX0": UNIT_RX0, "N_PORTS": N_PORTS, "N_VEC_OPS": N_VEC_OPS,
}
STATUS = {"ok": ST_OK, "deadlock": ST_DEADLOCK, "max_cycles": ST_MAX_CYCLES, "nomem": ST_NOMEM,
          "interrupted": ST_INTERRUPTED, "invariant": ST_INVARIANT}
UNIT_STATE_NAMES = {U_IDLE: "idle", U_WAIT_OPERAND: "operand", U_BUSY: "busy", U_DONE: "done"}

# -- Ctrl-C ------------------------------------------------------------------------------------
# Work items between two signal checks: 2**16 is ~2-4 ms of packet-detail events (30-60 ns each)
# in the release build; one check (take the free GIL, PyErr_CheckSignals) costs about a microsecond.
# While another thread holds the GIL (pure Python), taking it waits up to the switch interval
# (5 ms): the period then doubles until that wait is below 1/128 of the loop time between
# checks, up to 2**23 (~0.5 s), and halves back once it is below 1/1024.
cdef enum:
    _SIGNAL_PERIOD = 1 << 16
    _SIGNAL_PERIOD_MAX = 1 << 23
SIGNAL_CHECK_PERIOD = _SIGNAL_PERIOD
SIGNAL_CHECK_PERIOD_MAX = _SIGNAL_PERIOD_MAX


# What the engine keeps only in the debug build: statistics, and the invariant that broke (the
# loop stops with ST_INVARIANT and simulate() raises EngineInvariantError).
cdef enum:
    INV_NONE = 0
    INV_TIME_REGRESSION = 1  # an event popped before the current cycle
    INV_DMA_EPOCH = 2        # a closed-form DMA epoch disagreed with its own bookkeeping

cdef struct DebugCounters:
    int64_t stale_events
    int64_t max_heap
    int64_t time_regressions
    int32_t broken  # INV_*
    int32_t broken_obj  # the cube of a DMA invariant
    int64_t broken_at  # cycle


# nonecheck (debug build) would need the GIL to test `self` inside the nogil loop; self is
# never None there, so the check is off for the class whatever the build.
@cython.nonecheck(False)
cdef class Sim:
    # inputs (validated in api.py)
    cdef HwParams hw
    cdef const Command[::1] cmds
    cdef const int32_t[::1] cmd_pe
    cdef const int64_t[::1] unit_q
    cdef const int64_t[::1] unit_q_off
    cdef const int64_t[::1] t_off
    cdef const int64_t[::1] t_bytes
    cdef const uint8_t[::1] t_pinned
    cdef const int32_t[::1] nbr
    cdef int64_t max_cycles
    # state
    cdef EventHeap heap
    cdef UnitState* units
    cdef DmaPort* dports
    cdef Channel* chans
    cdef LinkState* links
    cdef int64_t* rings
    cdef int32_t* chan_pes      # train DMA: every channel's members and ring of ended transfers
    cdef int64_t* chan_times    # train DMA: the ring's completion cycles
    cdef uint8_t[::1] t_ready      # 1 once the tensor's producer has ended (np.zeros: pages
                                    # the OS zeroes lazily, touched only as tensors are made)
    cdef int32_t[::1] t_readers    # readers not yet done (a count, far below 2**31)
    cdef int64_t now
    cdef int64_t n_done
    cdef DebugCounters dbg
    cdef SignalPoll poll
    cdef object interrupt  # the exception a signal handler raised during the loop
    # outputs
    cdef public object cmd_start_arr, cmd_end_arr, unit_counters, link_counters
    cdef public object sram_peak_arr, sram_live_arr
    cdef int64_t[::1] cmd_start
    cdef int64_t[::1] cmd_end
    cdef UnitCounters[:, ::1] ucnt
    cdef LinkCounters[::1] lcnt
    cdef int64_t[::1] sram_live
    cdef int64_t[::1] sram_peak
    cdef int64_t[::1] sram_t
    cdef public int64_t heap_events
    cdef public int64_t n_folds
    cdef public int64_t n_bursts

    def __cinit__(self, dict params, commands, cmd_pe, unit_q, unit_q_off, t_off, t_bytes,
                  t_pinned, t_readers, nbr, int64_t max_cycles):
        cdef int64_t i, n_pes, n_links, Q, ppc
        cdef LinkState* L
        self.units = NULL
        self.dports = NULL
        self.chans = NULL
        self.links = NULL
        self.rings = NULL
        self.chan_pes = NULL
        self.chan_times = NULL
        self.heap.data = NULL
        self.poll.check = _check_signals
        self.poll.owner = <void*> self
        self.poll.period = _SIGNAL_PERIOD
        self.poll.left = INT64_MAX
        self.poll.raised = 0
        self.interrupt = None
        self.hw = params
        self.cmds = commands
        self.cmd_pe = cmd_pe
        self.unit_q = unit_q
        self.unit_q_off = unit_q_off
        self.t_off = t_off
        self.t_bytes = t_bytes
        self.t_pinned = t_pinned
        self.t_readers = np.array(t_readers, dtype=np.int32)
        self.nbr = nbr
        self.max_cycles = max_cycles
        n_pes = self.hw.n_pes
        n_links = n_pes * N_PORTS
        Q = self.hw.queue
        self.t_ready = np.zeros(len(t_bytes), dtype=np.uint8)
        self.cmd_start_arr = np.full(len(commands), -1, dtype=np.int64)
        self.cmd_end_arr = np.full(len(commands), -1, dtype=np.int64)
        self.unit_counters = np.zeros((n_pes, N_UNITS), dtype=UNIT_COUNTERS_DTYPE)
        self.link_counters = np.zeros(n_links, dtype=LINK_COUNTERS_DTYPE)
        self.sram_peak_arr = np.zeros(n_pes, dtype=np.int64)
        self.sram_live_arr = np.zeros(n_pes, dtype=np.int64)
        self.cmd_start = self.cmd_start_arr
        self.cmd_end = self.cmd_end_arr
        self.ucnt = self.unit_counters
        self.lcnt = self.link_counters
        self.sram_peak = self.sram_peak_arr
        self.sram_live = self.sram_live_arr
        self.sram_t = np.zeros(n_pes, dtype=np.int64)

        self.units = <UnitState*> calloc(n_pes * N_UNITS, sizeof(UnitState))
        self.dports = <DmaPort*> calloc(n_pes, sizeof(DmaPort))
        self.chans = <Channel*> calloc(self.hw.n_cubes, sizeof(Channel))
        self.links = <LinkState*> calloc(n_links, sizeof(LinkState))
        self.rings = <int64_t*> calloc(2 * n_links * Q, sizeof(int64_t))
        self.chan_pes = <int32_t*> calloc(2 * n_pes, sizeof(int32_t))
        self.chan_times = <int64_t*> calloc(n_pes, sizeof(int64_t))
        if (self.units == NULL or self.dports == NULL or self.chans == NULL or self.links == NULL
                or self.rings == NULL or self.chan_pes == NULL or self.chan_times == NULL
                or heap_init(&self.heap, 4 * n_pes + 64) != 0):
            raise MemoryError("kernbench engine: cannot allocate simulator state")
        for i in range(n_pes * N_UNITS):
            self.units[i].q_pos = self.unit_q_off[i]
            self.units[i].q_end = self.unit_q_off[i + 1]
            self.units[i].cur = -1
            self.units[i].wait_tensor = -1
            self.units[i].state = U_IDLE
        ppc = self.hw.pes_per_cube
        for i in range(self.hw.n_cubes):
            self.chans[i].last = <int32_t> (ppc - 1)  # PE 0 is served first
            self.chans[i].ev_time = -1
            self.chans[i].members = &self.chan_pes[2 * i * ppc]
            self.chans[i].fq_pe = &self.chan_pes[(2 * i + 1) * ppc]
            self.chans[i].fq_t = &self.chan_times[i * ppc]
        for i in range(n_links):
            L = &self.links[i]
            L.tx_cmd = -1
            L.rx_cmd = -1
            L.src = <int32_t> (i // N_PORTS)
            L.port = <int32_t> (i % N_PORTS)
            L.dst = self.nbr[i]
            L.credits = <int32_t> Q
            L.cred = &self.rings[2 * i * Q]
            L.arr = &self.rings[(2 * i + 1) * Q]
        self.now = 0
        self.n_done = 0

    def __dealloc__(self):
        self._free_state()

    cdef void _free_state(self) noexcept:
        # The C state: freed at dealloc, or as soon as an interrupted run() stops.
        free(self.units)
        free(self.dports)
        free(self.chans)
        free(self.links)
        free(self.rings)
        free(self.chan_pes)
        free(self.chan_times)
        self.chan_pes = NULL
        self.chan_times = NULL
        self.units = NULL
        self.dports = NULL
        self.chans = NULL
        self.links = NULL
        self.rings = NULL
        heap_free(&self.heap)

    cdef _check_live(self):
        if self.units == NULL:
            raise RuntimeError("kernbench engine: this Sim's run was interrupted and its state freed")

    # -- SRAM ----------------------------------------------------------------------------------
    cdef inline void _sram(self, int32_t pe, int64_t delta) noexcept nogil:
        # Live bytes at cycle t count tensors with alloc <= t < free: the value committed to the
        # peak is the one after every change of a cycle, whatever order the changes came in.
        if self.sram_t[pe] != self.now:
            if self.sram_live[pe] > self.sram_peak[pe]:
                self.sram_peak[pe] = self.sram_live[pe]
            self.sram_t[pe] = self.now
        self.sram_live[pe] += delta

    cdef inline void _release(self, int32_t pe, int64_t t) noexcept nogil:
        # one reader of global tensor t is done
        self.t_readers[t] -= 1
        if self.t_readers[t] == 0 and not self.t_pinned[t]:
            self._sram(pe, -self.t_bytes[t])

    # -- issue ---------------------------------------------------------------------------------
    cdef int _try_issue(self, int32_t pe, int32_t u) noexcept nogil:
        cdef UnitState* us = &self.units[pe * N_UNITS + u]
        cdef UnitCounters* cnt
        cdef const Command* cmd
        cdef int64_t c, tbase, t, folds, fc
        cdef int32_t link, src, port, cube
        if us.state == U_BUSY or us.state == U_DONE:
            return 0
        if us.q_pos == us.q_end:
            us.state = U_DONE
            return 0
        c = self.unit_q[us.q_pos]
        cmd = &self.cmds[c]
        tbase = self.t_off[pe]
        if cmd.src0 >= 0 and not self.t_ready[tbase + cmd.src0]:
            us.state = U_WAIT_OPERAND
            us.wait_tensor = tbase + cmd.src0
            return 0
        if cmd.src1 >= 0 and not self.t_ready[tbase + cmd.src1]:
            us.state = U_WAIT_OPERAND
            us.wait_tensor = tbase + cmd.src1
            return 0
        if cmd.src2 >= 0 and not self.t_ready[tbase + cmd.src2]:
            us.state = U_WAIT_OPERAND
            us.wait_tensor = tbase + cmd.src2
            return 0
        cnt = &self.ucnt[pe, u]
        cnt.stall_operand += self.now - us.free_since
        us.q_pos += 1
        if us.q_pos < us.q_end:
            # A unit's queue walks the command array with a stride (commands are stored PE by PE
            # in program order, queued unit by unit): fetch its next command while this one runs.
            KB_PREFETCH(&self.cmds[self.unit_q[us.q_pos]])
        us.cur = c
        us.start = self.now
        us.state = U_BUSY
        us.wait_tensor = -1
        self.cmd_start[c] = self.now
        if cmd.dst >= 0:
            self._sram(pe, self.t_bytes[tbase + cmd.dst])
        if cmd.opcode == OP_DOT:
            folds = gemm_folds(&self.hw, cmd.m, cmd.n)
            fc = gemm_fold_cycles(&self.hw, cmd.k, cmd.esize)
            cnt.work += 2 * cmd.m * cmd.n * cmd.k
            self.n_folds += folds
            if self.hw.packet_detail:
                us.folds_left = folds
                us.fold_last = fc
                us.fold_cycles = gemm_fold_steady(&self.hw, cmd.k, cmd.esize)
                return heap_push(&self.heap, self.now + (fc if folds == 1 else us.fold_cycles), PRIO_NORMAL,
                                 EV_FOLD, pe * N_UNITS + u, us.gen)
            return heap_push(&self.heap, self.now + gemm_dot_cycles(&self.hw, folds, cmd.k, cmd.esize),
                             PRIO_NORMAL, EV_UNIT_DONE, pe * N_UNITS + u, us.gen)
        if cmd.opcode == OP_VEC:
            cnt.work += cmd.n
            return heap_push(&self.heap, self.now + vec_cycles(&self.hw, cmd.n, cmd.sub),
                             PRIO_NORMAL, EV_UNIT_DONE, pe * N_UNITS + u, us.gen)
        if cmd.opcode == OP_REDUCE:
            cnt.work += cmd.m * cmd.n * cmd.k
            return heap_push(&self.heap, self.now + reduce_cycles(&self.hw, cmd.m, cmd.n, cmd.k, cmd.sub),
                             PRIO_NORMAL, EV_UNIT_DONE, pe * N_UNITS + u, us.gen)
        if cmd.opcode == OP_LOAD or cmd.opcode == OP_STORE:
            cnt.work += cmd.nbytes
            cube = pe // self.hw.pes_per_cube
            return dma_request(&self.hw, &self.heap, &self.chans[cube],
                               &self.dports[cube * self.hw.pes_per_cube], cube,
                               pe % self.hw.pes_per_cube, self.now, cmd.nbytes, &self.n_bursts)
        if cmd.opcode == OP_SEND:
            cnt.work += cmd.nbytes
            link = pe * N_PORTS + cmd.port
            return link_send_start(&self.hw, &self.heap, &self.links[link], &self.lcnt[link],
                                   link, c, self.now, cmd.nbytes, &self.poll)
        # OP_RECV: the incoming link is the neighbour's, on the opposite port
        cnt.work += cmd.nbytes
        port = cmd.port
        src = self.nbr[pe * N_PORTS + port]
        link = src * N_PORTS + (port ^ 1)  # E<->W, N<->S
        return link_recv_post(&self.hw, &self.heap, &self.links[link], &self.lcnt[link],
                              link, c, self.now, cmd.nbytes, &self.poll)

    # -- completion ----------------------------------------------------------------------------
    cdef int _complete(self, int32_t pe, int32_t u) noexcept nogil:
        cdef UnitState* us = &self.units[pe * N_UNITS + u]
        cdef UnitCounters* cnt = &self.ucnt[pe, u]
        cdef int64_t c = us.cur
        cdef const Command* cmd = &self.cmds[c]
        cdef int64_t tbase = self.t_off[pe]
        cdef int64_t dur = self.now - us.start
        cdef int64_t t, ser
        cdef int32_t v
        cdef UnitState* w
        self.cmd_end[c] = self.now
        self.n_done += 1
        cnt.busy += dur
        cnt.commands += 1
        if cmd.opcode == OP_LOAD or cmd.opcode == OP_STORE:
            cnt.stall_arbitration += dur - self.dports[pe].ideal
        elif cmd.opcode == OP_SEND:
            cnt.stall_credit += dur - message_ser_cycles(&self.hw, cmd.nbytes)
        elif cmd.opcode == OP_RECV:
            ser = message_ser_cycles(&self.hw, cmd.nbytes)
            if dur > ser:
                cnt.stall_data += dur - ser
        if cmd.src0 >= 0:
            self._release(pe, tbase + cmd.src0)
        if cmd.src1 >= 0:
            self._release(pe, tbase + cmd.src1)
        if cmd.src2 >= 0:
            self._release(pe, tbase + cmd.src2)
        t = -1
        if cmd.dst >= 0:
            t = tbase + cmd.dst
            self.t_ready[t] = 1
            if self.t_readers[t] == 0 and not self.t_pinned[t]:
                self._sram(pe, -self.t_bytes[t])
        us.cur = -1
        us.state = U_IDLE
        us.free_since = self.now
        if self._try_issue(pe, u):
            return -1
        if t >= 0:
            for v in range(N_UNITS):
                w = &self.units[pe * N_UNITS + v]
                if w.state == U_WAIT_OPERAND and w.wait_tensor == t:
                    w.state = U_IDLE
                    if self._try_issue(pe, v):
                        return -1
        return 0

    # -- loop ----------------------------------------------------------------------------------
    cdef int _loop(self) noexcept nogil:
        cdef Event ev
        cdef int32_t pe, u, l, n_pes = self.hw.n_pes
        cdef int32_t ppc = self.hw.pes_per_cube
        cdef UnitState* us
        cdef LinkState* L
        cdef int rc = 0
        cdef int64_t n_cmds = self.cmds.shape[0]
        cdef int64_t left = self.poll.left
        for pe in range(n_pes):
            for u in range(N_UNITS):
                if self._try_issue(pe, u):
                    return ST_INTERRUPTED if self.poll.raised else ST_NOMEM
        while heap_pop(&self.heap, &ev):
            self.heap_events += 1
            left -= 1  # the signal poll's count of heap events, kept in a register
            if left == 0:
                if self.poll.check(&self.poll):
                    return ST_INTERRUPTED
                left = self.poll.period
            # Once every command has ended, what remains (packet detail: credits still flying
            # back to finished senders) changes no result and must not trip max_cycles, as
            # train detail has no such events. They are still popped, so heap_events counts them.
            if ev.time > self.max_cycles and self.n_done < n_cmds:
                self.now = ev.time
                return ST_MAX_CYCLES
            if KB_DEBUG:
                if ev.time < self.now:
                    self.dbg.time_regressions += 1
                    self.dbg.broken, self.dbg.broken_at = INV_TIME_REGRESSION, self.now
                    return ST_INVARIANT
                if self.heap.size > self.dbg.max_heap:
                    self.dbg.max_heap = self.heap.size
            self.now = ev.time
            if ev.kind == EV_UNIT_DONE:
                rc = self._complete(ev.obj // N_UNITS, ev.obj % N_UNITS)
            elif ev.kind == EV_FOLD:
                us = &self.units[ev.obj]
                us.folds_left -= 1
                if us.folds_left == 0:
                    rc = self._complete(ev.obj // N_UNITS, ev.obj % N_UNITS)
                else:
                    rc = heap_push(&self.heap, self.now + (us.fold_last if us.folds_left == 1 else us.fold_cycles),
                                   PRIO_NORMAL, EV_FOLD, ev.obj, us.gen)
            elif ev.kind == EV_ARBITRATE:
                rc = dma_arbitrate(&self.hw, &self.heap, &self.chans[ev.obj],
                                   &self.dports[ev.obj * ppc], ev.obj, self.now, ev.gen,
                                   &self.n_bursts)
            elif ev.kind == EV_CHAN_DONE:
                l = dma_done(&self.hw, &self.chans[ev.obj], &self.dports[ev.obj * ppc], self.now,
                             ev.gen)
                if l < 0:
                    if KB_DEBUG:
                        self.dbg.stale_events += 1
                    continue  # a request changed the channel's next completion since
                rc = self._complete(ev.obj * ppc + l, UNIT_DMA)
                if rc == 0:
                    rc = dma_done_next(&self.hw, &self.heap, &self.chans[ev.obj], ev.obj)
            elif ev.kind == EV_DMA_DONE:
                rc = self._complete(ev.obj, UNIT_DMA)
            elif ev.kind == EV_TX_DONE:
                L = &self.links[ev.obj]
                L.tx_cmd = -1
                rc = self._complete(L.src, UNIT_TX0 + L.port)
            elif ev.kind == EV_RX_DONE:
                L = &self.links[ev.obj]
                L.rx_cmd = -1
                rc = self._complete(L.dst, UNIT_RX0 + (L.port ^ 1))
            else:
                rc = link_packet_event(&self.hw, &self.heap, &self.links[ev.obj],
                                       &self.lcnt[ev.obj], ev.obj, ev.kind, self.now)
            if rc:
                return ST_INTERRUPTED if self.poll.raised else ST_NOMEM
            if KB_DEBUG and (ev.kind == EV_ARBITRATE or ev.kind == EV_CHAN_DONE) and self.chans[ev.obj].bad:
                self.dbg.broken, self.dbg.broken_obj, self.dbg.broken_at = INV_DMA_EPOCH, ev.obj, self.now
                return ST_INVARIANT
        if KB_DEBUG and self.chans != NULL:  # a request issued outside those events may have broken one too
            for pe in range(self.hw.n_cubes):
                if self.chans[pe].bad:
                    self.dbg.broken, self.dbg.broken_obj, self.dbg.broken_at = INV_DMA_EPOCH, pe, self.now
                    return ST_INVARIANT
        for pe in range(n_pes):
            if self.sram_live[pe] > self.sram_peak[pe]:
                self.sram_peak[pe] = self.sram_live[pe]
        if self.n_done < n_cmds:
            return ST_DEADLOCK
        return ST_OK

    def run(self):
        """Run to completion; returns a status code (see STATUS). If a signal handler raises
        during the loop (Ctrl-C: KeyboardInterrupt), frees the C state and raises that exception."""
        cdef int st
        self._check_live()
        self.poll.raised = 0
        self.poll.period = _SIGNAL_PERIOD
        self.poll.last = _monotonic()
        # Python runs signal handlers in the main thread only: elsewhere, never take the GIL.
        on_main = threading.current_thread() is threading.main_thread()
        self.poll.left = _SIGNAL_PERIOD if on_main else INT64_MAX
        with nogil:
            st = self._loop()
        if st == ST_INTERRUPTED:
            exc, self.interrupt = self.interrupt, None
            self._free_state()
            raise exc
        return st

    @property
    def now_cycle(self):
        return self.now

    def debug_counters(self):
        """Invariant counters (debug build only; zeros otherwise)."""
        cdef int64_t bad = 0
        cdef int32_t c
        if self.chans != NULL:
            for c in range(self.hw.n_cubes):
                bad += self.chans[c].bad
        return {"stale_events": self.dbg.stale_events, "max_heap": self.dbg.max_heap,
                "time_regressions": self.dbg.time_regressions, "dma_invariant_errors": bad}

    def broken_invariant(self):
        """(name, cycle, cube or -1) of the invariant that stopped a debug-build run, or None."""
        names = {INV_TIME_REGRESSION: "an event popped before the current cycle",
                 INV_DMA_EPOCH: "a closed-form DMA epoch disagreed with its bookkeeping"}
        if self.dbg.broken == INV_NONE:
            return None
        return names[self.dbg.broken], self.dbg.broken_at, self.dbg.broken_obj if self.dbg.broken == INV_DMA_EPOCH else -1

    def unit_states(self):
        """(n_pes, N_UNITS) arrays: state, running command, next command, tensor waited for."""
        self._check_live()
        n = self.hw.n_pes * N_UNITS
        state = np.zeros(n, np.int32)
        cur = np.zeros(n, np.int64)
        nxt = np.full(n, -1, np.int64)
        wait = np.zeros(n, np.int64)
        for i in range(n):
            state[i] = self.units[i].state
            cur[i] = self.units[i].cur
            wait[i] = self.units[i].wait_tensor
            if self.units[i].q_pos < self.units[i].q_end:
                nxt[i] = self.unit_q[self.units[i].q_pos]
        shape = (self.hw.n_pes, N_UNITS)
        return state.reshape(shape), cur.reshape(shape), nxt.reshape(shape), wait.reshape(shape)

    def link_states(self):
        """Per link: (send in progress, recv posted, sender waiting for a credit)."""
        self._check_live()
        n = self.hw.n_pes * N_PORTS
        tx = np.array([self.links[i].tx_cmd for i in range(n)], np.int64)
        rx = np.array([self.links[i].rx_cmd for i in range(n)], np.int64)
        waiting = np.array([self.links[i].tx_waiting for i in range(n)], np.int32)
        return tx, rx, waiting


cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef int _check_signals(SignalPoll* p) noexcept nogil:
    # The signal check of the loop and of poll_signals: run Python's signal handlers; 1 if one
    # raised (the exception is kept on the Sim). Then the period adapts to the GIL's wait.
    cdef double t0 = _monotonic(), t1, wait, span
    with gil:
        t1 = _monotonic()
        try:
            PyErr_CheckSignals()
        except BaseException as e:
            (<Sim> p.owner).interrupt = e
            p.raised = 1
    if p.raised:
        return 1
    wait = t1 - t0
    span = t0 - p.last
    if wait * 128 > span:
        if p.period < _SIGNAL_PERIOD_MAX:
            p.period *= 2
    elif wait * 1024 < span and p.period > _SIGNAL_PERIOD:
        p.period //= 2
    p.left = p.period
    p.last = _monotonic()
    return 0
