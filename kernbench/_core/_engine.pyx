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
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, INT64_MAX
from libc.stdlib cimport calloc, free, malloc, realloc, qsort
from libc.string cimport memcmp, memcpy
from cpython.ref cimport Py_XDECREF

import numpy as np
cimport cython
cimport numpy as cnp

from ._types cimport *
from . import pages
from ._heap cimport heap_init, heap_free, heap_push, heap_pop
from ._timing cimport (gemm_folds, gemm_fold_cycles, gemm_fold_steady, gemm_dot_cycles, vec_cycles, reduce_cycles,
                       message_ser_cycles, packet_cycles)
from ._dma cimport dma_request, dma_arbitrate, dma_done, dma_done_next
from ._link cimport link_send_start, link_recv_post, link_packet_event
from ._replay cimport CommandSource, fill_rows, traced_rows

cnp.import_array()

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
    # (GCC and clang builtins: the sum or product, and whether it wrapped)
    bint __builtin_add_overflow(int64_t a, int64_t b, int64_t* out) noexcept nogil
    bint __builtin_mul_overflow(int64_t a, int64_t b, int64_t* out) noexcept nogil

DEBUG_BUILD = bool(KB_DEBUG)
COMMAND_ITEMSIZE = sizeof(Command)
# The numpy dtypes of the C structs themselves (as scikit-learn builds NODE_DTYPE from its
# Node): the counters' arrays are made of them, and api.py compares the Command one, as a whole
# dtype, with pe_commands.COMMAND_DTYPE.
cdef Command _dummy_command
cdef UnitCounters _dummy_unit_counters
cdef LinkCounters _dummy_link_counters
COMMAND_STRUCT_DTYPE = np.asarray(<Command[:1]>(&_dummy_command)).dtype
#: per PE x unit counters (all int64, _types.pxd UnitCounters)
UNIT_COUNTERS_DTYPE = np.asarray(<UnitCounters[:1]>(&_dummy_unit_counters)).dtype
#: per link counters (all int64, _types.pxd LinkCounters)
LINK_COUNTERS_DTYPE = np.asarray(<LinkCounters[:1]>(&_dummy_link_counters)).dtype
ENUMS = {
    "OP_LOAD": OP_LOAD, "OP_STORE": OP_STORE, "OP_DOT": OP_DOT, "OP_VEC": OP_VEC,
    "OP_REDUCE": OP_REDUCE, "OP_SEND": OP_SEND, "OP_RECV": OP_RECV, "N_UNITS": N_UNITS,
    "UNIT_TX0": UNIT_TX0, "UNIT_RX0": UNIT_RX0, "N_PORTS": N_PORTS, "N_VEC_OPS": N_VEC_OPS,
}
STATUS = {"ok": ST_OK, "deadlock": ST_DEADLOCK, "max_cycles": ST_MAX_CYCLES, "nomem": ST_NOMEM,
          "interrupted": ST_INTERRUPTED, "invariant": ST_INVARIANT, "overflow": ST_OVERFLOW}
UNIT_STATE_NAMES = {U_IDLE: "idle", U_WAIT_OPERAND: "operand", U_BUSY: "busy", U_DONE: "done"}

# -- Ctrl-C ------------------------------------------------------------------------------------
# Work items between two signal checks, and the most the period grows to while another thread
# holds the GIL (the signal poll, shared with the passes before and after the loop: _types.pxd)
SIGNAL_CHECK_PERIOD = SIGNAL_PERIOD
SIGNAL_CHECK_PERIOD_MAX = SIGNAL_PERIOD_MAX


# What the engine keeps only in the debug build: statistics, and the invariant that broke (the
# loop stops with ST_INVARIANT and simulate() raises EngineInvariantError).
cdef enum:
    INV_NONE = 0
    INV_TIME_REGRESSION = 1  # an event popped before the current cycle
    INV_DMA_EPOCH = 2        # a closed-form DMA epoch disagreed with its own bookkeeping
    INV_RING = 3             # a credit ring's live slots were not its newest packets

cdef struct DebugCounters:
    int64_t stale_events
    int64_t max_heap
    int64_t time_regressions
    int32_t broken  # INV_*
    int32_t broken_obj  # the cube of a DMA invariant
    int64_t broken_at  # cycle
    int64_t break_from  # a test's: the first DMA request at cycle >= break_from - 1 breaks its channel (0: none)


# -- steady state: declarations (the section "Steady state" in Sim has the method) -------------
# A compact program's rows are read in blocks of 2**_ROWS_SHIFT (18 KiB of records): each block
# read is fresh pages faulted in, so a block no bigger than a loop's few simulated iterations
# keeps what a jumped launch touches near what it simulates (64 cubes at 128K: 3.3M rows read for
# 3.0M simulated; 4.1M with 1,024-row blocks, 6.4M with 4,096).
cdef enum:
    _ROWS_SHIFT = 8

cdef enum:
    FF_KEEP = 4          # snapshots kept: a period of up to 4 strides is recognised
    FF_STRIDE_MAX = 1 << 30
    # columns of the region table (api._steady_regions builds it)
    RG_PE = 0            # the PE
    RG_C0 = 1            # global index of iteration 0's first command
    RG_N = 2             # commands per iteration
    RG_ITERS = 3         # iterations (0 .. ITERS - 1)
    RG_T0 = 4            # global id of iteration 0's first result
    RG_MADE = 5          # results per iteration (= the operand shift per iteration)
    RG_DLO = 6           # <= 0: a shifted operand reads at most -DLO iterations back
    RG_F0 = 7            # its fixed operand tensors: rg_fixed[F0:F1]
    RG_F1 = 8
    RG_MID = 9           # 0 < MID < N: the middle trigger's offset in an iteration (_ff_next), else 0
    RG_U0 = 10           # the unit of an iteration's first command (and of its middle trigger)
    RG_COLS = 11

cdef enum:
    COPY_COLS = 6        # a jump's start/end copy: unit, q, e, k, dq, delta (apply_copies)

cdef struct FFBuf:
    # A growable int64 buffer.
    int64_t* p
    int64_t n
    int64_t cap


cdef inline int _ff_put(FFBuf* b, int64_t v) noexcept nogil:
    cdef int64_t* q
    cdef int64_t cap
    if b.n == b.cap:
        cap = 1024 if b.cap < 512 else 2 * b.cap
        q = <int64_t*> realloc(b.p, cap * sizeof(int64_t))
        if q == NULL:
            return -1
        b.p = q
        b.cap = cap
    b.p[b.n] = v
    b.n += 1
    return 0


cdef inline int _ff_reserve(FFBuf* b, int64_t n) noexcept nogil:
    cdef int64_t* q
    if n <= b.cap:
        return 0
    q = <int64_t*> realloc(b.p, n * sizeof(int64_t))
    if q == NULL:
        return -1
    b.p = q
    b.cap = n
    return 0


cdef inline int _ff_put_bytes(FFBuf* b, const void* src, int64_t nbytes) noexcept nogil:
    # nbytes bytes in ceil(nbytes / 8) slots, the last one's padding zero (snapshots are
    # compared with memcmp): a tensor window's 1-byte ready flags and 4-byte reader counts
    # take 5 bytes a tensor instead of two slots of 8
    cdef int64_t k = (nbytes + 7) >> 3
    if k <= 0:
        return 0
    if b.n + k > b.cap and _ff_reserve(b, max(2 * b.cap, b.n + k)) != 0:
        return -1
    b.p[b.n + k - 1] = 0
    memcpy(b.p + b.n, src, nbytes)
    b.n += k
    return 0


cdef int _ev_cmp(const void* a, const void* b) noexcept nogil:
    # pop order: (time, prio, seq)
    cdef const Event* x = <const Event*> a
    cdef const Event* y = <const Event*> b
    if x.time != y.time:
        return -1 if x.time < y.time else 1
    if x.prio != y.prio:
        return -1 if x.prio < y.prio else 1
    if x.seq != y.seq:
        return -1 if x.seq < y.seq else 1
    return 0


#: How the steady-state snapshot (Sim._ff_snapshot) writes every field of the engine's state
#: structs (_types.pxd), and how a jump (Sim._ff_jump) moves it: "time" relative to now (moved on
#: m * Delta), "past-bound" a lower bound on a time, "now" when in the past, "cmd" / "tensor" an
#: index relative to its PE's region (moved on m * P iterations; absolute outside it), "queue" a
#: queue position written as the command there, "packet" relative to the link's next packet (moved
#: on m times the stretch's packets), "ring" a ring read from its head, "gen" relative to its
#: owner's (events), "counter" not compared (moved on m times its growth), "value" compared as it
#: is, "static" never changes during a run. tests/test_steady_state.py checks that every field of
#: the structs is here.
STEADY_FIELDS = {
    "UnitState": {"q_base": "static", "q_pos": "queue", "q_end": "static", "cur": "cmd", "start": "time",
                  "free_since": "time", "folds_left": "value", "fold_cycles": "value",
                  "fold_last": "value", "wait_tensor": "tensor", "state": "value", "gen": "gen"},
    "DmaPort": {"bursts_left": "value", "bytes_left": "value", "last_cycles": "value", "ideal": "value",
                "requesting": "value"},
    "Channel": {"busy_until": "past-bound", "t0": "time", "fin_idx": "value", "fin_end": "time",
                "ev_time": "time", "members": "value", "fq_pe": "ring", "fq_t": "ring", "k": "value",
                "fin": "value", "fq_head": "ring", "fq_len": "value", "last": "value", "pending": "value",
                "gen": "gen", "n_requesting": "value", "bad": "value"},
    "LinkState": {"tx_cmd": "cmd", "tx_start": "time", "tx_pkts_left": "value", "tx_bytes_left": "value",
                  "tx_ser_full": "value", "tx_ser_last": "value", "tx_e_prev": "past-bound",
                  "tx_next": "packet", "tx_slot": "ring", "rx_cmd": "cmd", "rx_post": "time",
                  "rx_first": "packet", "rx_end": "packet", "rx_next_first": "packet",
                  "rx_drained": "value", "rx_last_drain": "time", "rx_arrived": "value", "cred": "ring",
                  "arr": "ring", "cur_bytes": "value", "credits": "value", "serialising": "value",
                  "tx_waiting": "value", "src": "static", "dst": "static", "port": "static"},
    "Event": {"time": "time", "seq": "ring", "prio": "value", "kind": "value", "obj": "value",
              "gen": "gen"},
    "EventHeap": {"data": "ring", "size": "value", "capacity": "static", "seq": "counter"},
    "UnitCounters": {f: "counter" for f in ("busy", "commands", "work", "stall_operand", "stall_credit",
                                            "stall_data", "stall_arbitration")},
    "LinkCounters": {f: "counter" for f in ("bytes", "packets", "busy", "messages")},
}


# nonecheck (debug build) would need the GIL to test `self` inside the nogil loop; self is
# never None there, so the check is off for the class whatever the build.
@cython.nonecheck(False)
cdef class Sim:
    # inputs (validated in api.py)
    cdef HwParams hw
    cdef const Command[::1] cmds
    cdef int64_t n_cmds
    # A compact program (api: Program.tiled; cmds then empty): its rows are read through src,
    # 2**_ROWS_SHIFT at a time, when the engine first reaches a block of them. A block of traced
    # rows of one run is read where the trace keeps them; any other block (a tiling's rows, or
    # rows of two runs) is filled into a slot of the row pool, the slots taken in turn, so a
    # slot's old block is dropped and filled again if reached again. The pool holds 2 blocks per
    # unit, more than the units read at once: what a run touches stays near what it simulates,
    # not its program's length. Its arrays are the caller's (api keeps them with the program for
    # its next timing, whose blocks still in the pool are read from there; rows never change).
    cdef CommandSource src
    # per block: where its rows are read from (NULL: not yet, or dropped from the pool)
    cdef const Command** cmd_blk
    cdef Command[::1] pool_rows     # n_slots blocks of 2**_ROWS_SHIFT rows
    cdef int64_t[::1] pool_blk      # the block each slot holds (-1 none), then the next slot
    cdef int64_t n_slots
    cdef public int64_t blocks_in_place  # blocks of traced rows read where the trace keeps them
    cdef public int64_t blocks_filled    # blocks filled into the pool (again when dropped first)
    cdef public int64_t blocks_kept      # blocks found in the pool from an earlier run
    cdef const int32_t[::1] unit_q       # per unit, its commands' indices in the PE's stream
    cdef const int64_t[::1] unit_q_off
    cdef const int64_t[::1] t_off
    cdef const int64_t[::1] t_bytes      # every tensor's size (bytes), unless t_small:
    cdef const uint16_t[::1] t_size_idx  # its index into t_size_tab instead (2 bytes a tensor)
    cdef const int64_t[::1] t_size_tab   # the distinct sizes (Program.sizes)
    cdef bint t_small
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
    cdef uint8_t[::1] t_ready      # 1 once the tensor's producer has ended (pages.zeros: pages
                                    # the OS zeroes lazily, touched only as tensors are made)
    cdef int32_t[::1] t_readers    # readers not yet done (a count, far below 2**31)
    cdef int64_t now
    cdef int64_t n_done
    cdef DebugCounters dbg
    cdef SignalPoll poll
    # outputs
    cdef public object cmd_start_arr, cmd_end_arr, unit_counters, link_counters
    cdef public object sram_peak_arr, sram_live_arr
    #: per PE, where its live SRAM first rose above capacity: (cycle, the command that allocated
    #: last then, live bytes), -1s when it never did (the peak is committed once a cycle's
    #: changes are in, so the first peak above capacity is that cycle's)
    cdef public object sram_over_arr
    cdef int64_t[::1] cmd_start
    cdef int64_t[::1] cmd_end
    cdef UnitCounters[:, ::1] ucnt
    cdef LinkCounters[::1] lcnt
    cdef int64_t[::1] sram_live
    cdef int64_t[::1] sram_peak
    cdef int64_t[::1] sram_t
    cdef int64_t[:, ::1] sram_over
    cdef int64_t[::1] sram_last_alloc  # per PE: the last in program order to allocate its
    cdef int64_t[::1] sram_alloc_t  # result in cycle sram_alloc_t (issue order ties: a detail's)
    cdef public int64_t heap_events
    cdef public int64_t n_folds
    cdef public int64_t n_bursts
    # steady state (see the section "Steady state" below)
    cdef const int64_t[:, ::1] rg        # regions: RG_* columns, sorted by (pe, c0)
    cdef const int64_t[::1] rg_pe_off    # per PE: its regions are rows rg_pe_off[pe]..[pe + 1]
    cdef const int64_t[::1] rg_fixed     # the regions' fixed operand tensors (global ids)
    cdef const int32_t[::1] t_readers0   # every tensor's reader count before the run
    cdef int32_t ff_flag                 # the trigger command was issued: snapshot after the event
    cdef int64_t ff_fired                # that command
    cdef int64_t ff_trig                 # trigger: the reference PE's next iteration start or middle (_ff_next)
    cdef int64_t ff_trig_rg              # its region
    cdef int64_t* ff_reg                 # per PE: its region at the snapshot, -1 if none
    cdef int64_t* ff_lo                  # per PE: window of iterations [lo, hi] at the snapshot
    cdef int64_t* ff_hi
    cdef uint8_t* ff_idle                # per PE: every unit done (nothing on it can change again)
    cdef FFBuf ff_cur                    # the snapshot being taken
    cdef FFBuf ff_ring[FF_KEEP]          # the last FF_KEEP snapshots (ff_ring[(ff_at - j) % FF_KEEP])
    cdef FFBuf ff_mid                    # the snapshot at iteration 0's middle (_ff_next), if ff_mid_k == 0
    cdef int64_t ff_mid_k                # 0: ff_mid holds iteration 0's middle; -1: none
    cdef int64_t ff_rg_events            # heap events when the reference PE's region's triggers began
    cdef int64_t ff_cost                 # the last snapshot's cost: its canon length and the
                                         # ring slots it read (0: none yet)
    cdef int64_t ff_read                 # ring slots the snapshot being taken read
    cdef FFBuf ff_tmp                    # scratch: sorted events, ring rotations, tensor windows
    cdef FFBuf ff_copies                 # the jumps' start/end copies, COPY_COLS each (apply_copies)
    cdef int32_t ff_n                    # snapshots in the ring
    cdef int64_t ff_stride               # snapshot every ff_stride-th iteration of the reference
    cdef int32_t ff_misses               # snapshots in a row that matched none before
    cdef int64_t ff_events               # heap events at the last snapshot
    cdef int32_t ff_at                   # index of the newest
    cdef public int64_t steady_jumps     # jumps made
    cdef public int64_t steady_commands  # commands whose start and end were written by a jump
    cdef public int64_t steady_snapshots # snapshots taken
    cdef public int64_t last_end         # cycle the last command ended (the run's cycles)
    # the command whose work would have taken its unit's counter past 2**63 - 1 (-2: a
    # steady-state jump's, -1: none): the work counters are the ones a launch within the cycle
    # horizon can wrap (GEMM flops the first: 2**50 MACs a dot, a review's 4,100 on one PE).
    # Of the commands passing it in one cycle (overflow_t), the first in global order: the run
    # ends the cycle before it stops, as the order units issue in within a cycle is the heap's
    # ties, which train and packet detail push in different orders (a review)
    cdef public int64_t overflow_cmd
    cdef int64_t overflow_t

    def __cinit__(self, dict params, commands, unit_q, unit_q_off, cmd_off, t_off, t_bytes,
                  t_pinned, t_readers, nbr, int64_t max_cycles, regions=None, region_pe_off=None,
                  region_fixed=None, CommandSource source=None, row_pool=None, t_sizes=None):
        cdef int64_t i, n_pes, n_links, Q, ppc
        cdef LinkState* L
        self.overflow_cmd = -1
        self.ff_reg = NULL
        self.ff_lo = NULL
        self.ff_hi = NULL
        self.ff_idle = NULL
        self.units = NULL
        self.dports = NULL
        self.chans = NULL
        self.links = NULL
        self.rings = NULL
        self.chan_pes = NULL
        self.chan_times = NULL
        self.heap.data = NULL
        self.poll.check = _check_signals  # (run() starts the poll: signal_poll_start)
        self.poll.exc = NULL
        self.poll.period = SIGNAL_PERIOD
        self.poll.left = INT64_MAX
        self.poll.raised = 0
        self.hw = params
        self.src = source
        self.cmd_blk = NULL
        self.n_slots = 0
        self.blocks_in_place = self.blocks_filled = self.blocks_kept = 0
        if source is None:
            self.cmds = commands
            self.n_cmds = len(commands)
        else:
            if commands is not None and len(commands):
                raise ValueError("Sim: a compact program's rows come from source, not commands")
            self.cmds = np.empty(0, COMMAND_STRUCT_DTYPE)
            self.n_cmds = source.src.n
            if self.n_cmds:
                self._take_pool(row_pool)
        self.unit_q = unit_q
        self.unit_q_off = unit_q_off
        self.t_off = t_off
        # a tensor's size: t_bytes[t], or t_size_tab[t_size_idx[t]] given t_sizes (a launch's
        # tensors as indices into their few distinct sizes: a quarter of the bytes to touch)
        self.t_small = t_sizes is not None
        if self.t_small:
            self.t_size_idx, self.t_size_tab = t_sizes
            n_t = len(t_sizes[0])
        else:
            self.t_bytes = t_bytes
            n_t = len(t_bytes)
        self.t_pinned = t_pinned
        readers = pages.empty(len(t_readers), np.int32)  # a copy: counted down as reads end
        readers[:] = t_readers
        self.t_readers = readers
        self.nbr = nbr
        self.max_cycles = max_cycles
        n_pes = self.hw.n_pes
        n_links = n_pes * N_PORTS
        Q = self.hw.queue
        self.t_ready = pages.zeros(n_t, np.uint8, sparse=True)
        # Written once per command, as it starts and ends, or (steady-state jumps) by
        # apply_copies when read (api: EngineResult): the run does not write the entries of the
        # commands a jump skipped. Commands that never ran are set to -1 on the error paths only.
        # (on small pages when large: pages.empty; a jumped run writes a tenth of them)
        self.cmd_start_arr = pages.empty(self.n_cmds, np.int64, sparse=True)
        self.cmd_end_arr = pages.empty(self.n_cmds, np.int64, sparse=True)
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
        self.sram_over_arr = np.full((n_pes, 3), -1, dtype=np.int64)
        self.sram_over = self.sram_over_arr
        self.sram_last_alloc = np.full(n_pes, -1, dtype=np.int64)
        self.sram_alloc_t = np.full(n_pes, -1, dtype=np.int64)

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
            # (the links' receive rings are the one table a key alone can make huge: named)
            raise MemoryError(
                f"kernbench engine: cannot allocate simulator state for {n_pes:,} PEs (the "
                f"links' receive rings take 2 x {n_links:,} links x link.rx_queue_packets "
                f"{Q:,} x 8 bytes = {16 * int(n_links) * int(Q):,} bytes of it: docs/hardware-model.md, "
                f"'Key bounds')")
        for i in range(n_pes * N_UNITS):
            self.units[i].q_base = cmd_off[i // N_UNITS]
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
        self.ff_trig = -1
        if regions is not None and len(regions) and not self.hw.packet_detail:
            if regions.shape[1] != RG_COLS:
                raise ValueError(f"Sim: the region table has {regions.shape[1]} columns, expected {RG_COLS} (RG_*)")
            self._ff_init(regions, region_pe_off, region_fixed, t_readers)

    def __dealloc__(self):
        self._free_state()
        Py_XDECREF(self.poll.exc)  # (NULL: run() raised it)

    cdef void _free_state(self) noexcept:
        # The C state: freed at dealloc, or as soon as an interrupted run() stops.
        cdef int i
        free(self.units)
        free(self.dports)
        free(self.chans)
        free(self.links)
        free(self.rings)
        free(self.chan_pes)
        free(self.chan_times)
        self.chan_pes = NULL
        self.chan_times = NULL
        free(self.ff_reg)
        free(self.ff_lo)
        free(self.ff_hi)
        free(self.ff_idle)
        self.ff_reg = self.ff_lo = self.ff_hi = NULL
        self.ff_idle = NULL
        free(self.ff_cur.p)
        free(self.ff_mid.p)
        free(self.ff_tmp.p)
        free(self.ff_copies.p)
        free(self.cmd_blk)
        self.cmd_blk = NULL
        self.ff_cur.p = self.ff_mid.p = self.ff_tmp.p = self.ff_copies.p = NULL
        for i in range(FF_KEEP):
            free(self.ff_ring[i].p)
            self.ff_ring[i].p = NULL
        self.units = NULL
        self.dports = NULL
        self.chans = NULL
        self.links = NULL
        self.rings = NULL
        heap_free(&self.heap)

    cdef _check_live(self):
        if self.units == NULL:
            raise RuntimeError("kernbench engine: this Sim's run was interrupted and its state freed")

    def _take_pool(self, row_pool) -> None:
        """Read blocks into ``row_pool`` = (rows, blocks): rows ((n_slots * 2**8,) records of
        COMMAND_STRUCT_DTYPE), blocks ((n_slots + 1,) int64: the block each slot holds, -1 none,
        then the next slot to fill), as :func:`new_row_pool` makes them or an earlier run of the
        same program left them. Raises ValueError for arrays that do not fit."""
        cdef int64_t s, k, blocks = row_blocks(self.n_cmds)
        if not isinstance(row_pool, tuple) or len(row_pool) != 2:
            raise ValueError("Sim: a compact program needs row_pool = (rows, blocks) (new_row_pool)")
        rows, blk = row_pool
        if (not isinstance(rows, np.ndarray) or rows.dtype != COMMAND_STRUCT_DTYPE
                or not isinstance(blk, np.ndarray) or blk.dtype != np.int64 or blk.ndim != 1
                or len(blk) < 2 or rows.shape != ((len(blk) - 1) << _ROWS_SHIFT,)):
            raise ValueError("Sim: row_pool's arrays do not fit (new_row_pool makes them)")
        self.n_slots = len(blk) - 1
        if not (0 <= blk[self.n_slots] < self.n_slots) or ((blk[:-1] < -1) | (blk[:-1] >= blocks)).any():
            raise ValueError("Sim: row_pool's blocks are not this program's")
        self.pool_rows = rows
        self.pool_blk = blk
        self.cmd_blk = <const Command**> calloc(blocks, sizeof(Command*))
        if self.cmd_blk == NULL:
            raise MemoryError("kernbench engine: cannot allocate simulator state")
        for s in range(self.n_slots):
            k = self.pool_blk[s]
            if k >= 0:
                self.cmd_blk[k] = &self.pool_rows[s << _ROWS_SHIFT]
                self.blocks_kept += 1

    cdef inline const Command* _row(self, int64_t c) noexcept nogil:
        # command c's row: in the program's array, or a compact program's block. Valid until
        # the next call, which may drop the block from the pool: read it before another.
        cdef const Command* b
        if self.cmd_blk == NULL:
            return &self.cmds[c]
        b = self.cmd_blk[c >> _ROWS_SHIFT]
        if b == NULL:
            b = self._place(c >> _ROWS_SHIFT)
        return b + (c & ((1 << _ROWS_SHIFT) - 1))

    cdef const Command* _place(self, int64_t k) noexcept nogil:
        # Block k of a compact program. Traced rows all of one segment are read where the trace
        # keeps them: no copy, no fresh pages (a causal prefill traces most of its rows). Else
        # the block is filled into the pool's next slot, dropping the block it held.
        cdef int64_t lo = k << _ROWS_SHIFT, hi = lo + (1 << _ROWS_SHIFT), s
        cdef const Command* b
        if hi > self.n_cmds:
            hi = self.n_cmds
        b = traced_rows(&self.src.src, lo, hi)
        if b != NULL:
            self.blocks_in_place += 1
        else:
            s = self.pool_blk[self.n_slots]
            self.pool_blk[self.n_slots] = s + 1 if s + 1 < self.n_slots else 0
            if self.pool_blk[s] >= 0:
                self.cmd_blk[self.pool_blk[s]] = NULL
            self.pool_blk[s] = -1  # (while filled: a run interrupted here leaves no wrong block)
            b = &self.pool_rows[s << _ROWS_SHIFT]
            fill_rows(&self.src.src, lo, hi, <Command*> b)  # in range: cannot fail
            self.pool_blk[s] = k
            self.blocks_filled += 1
        self.cmd_blk[k] = b
        return b

    cdef inline void _prefetch(self, int64_t c) noexcept nogil:
        cdef const Command* b
        if self.cmd_blk == NULL:
            KB_PREFETCH(&self.cmds[c])
        else:
            b = self.cmd_blk[c >> _ROWS_SHIFT]
            if b != NULL:  # (a block not placed yet is placed when its command issues)
                KB_PREFETCH(b + (c & ((1 << _ROWS_SHIFT) - 1)))

    # -- SRAM ----------------------------------------------------------------------------------
    cdef inline void _sram(self, int32_t pe, int64_t delta) noexcept nogil:
        # Live bytes at cycle t count tensors with alloc <= t < free: the value committed to the
        # peak is the one after every change of a cycle, whatever order the changes came in.
        if self.sram_t[pe] != self.now:
            if self.sram_live[pe] > self.sram_peak[pe]:
                self._new_peak(pe)
            self.sram_t[pe] = self.now
        self.sram_live[pe] += delta

    cdef inline void _new_peak(self, int32_t pe) noexcept nogil:
        # commit cycle sram_t[pe]'s live bytes as the peak; the first above capacity is noted
        # (a peak, so never before one: the ones before were within capacity)
        self.sram_peak[pe] = self.sram_live[pe]
        if self.sram_live[pe] > self.hw.sram_capacity and self.sram_over[pe, 0] < 0:
            self.sram_over[pe, 0] = self.sram_t[pe]
            self.sram_over[pe, 1] = self.sram_last_alloc[pe]
            self.sram_over[pe, 2] = self.sram_live[pe]

    cdef inline int64_t _size(self, int64_t t) noexcept nogil:
        # global tensor t's size in bytes
        if self.t_small:
            return self.t_size_tab[self.t_size_idx[t]]
        return self.t_bytes[t]

    cdef inline void _release(self, int32_t pe, int64_t t) noexcept nogil:
        # one reader of global tensor t is done
        self.t_readers[t] -= 1
        if self.t_readers[t] == 0 and not self.t_pinned[t]:
            self._sram(pe, -self._size(t))

    # -- issue ---------------------------------------------------------------------------------
    cdef int _try_issue(self, int32_t pe, int32_t u) noexcept nogil:
        cdef UnitState* us = &self.units[pe * N_UNITS + u]
        cdef UnitCounters* cnt
        cdef const Command* cmd  # (valid until the next _row: read before any other issue)
        cdef int64_t c, tbase, t, folds, fc
        cdef int32_t link, src, port, cube
        cdef int rc
        if us.state == U_BUSY or us.state == U_DONE:
            return 0
        if us.q_pos == us.q_end:
            us.state = U_DONE
            return 0
        c = us.q_base + self.unit_q[us.q_pos]
        cmd = self._row(c)
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
            self._prefetch(us.q_base + self.unit_q[us.q_pos])
        us.cur = c
        us.start = self.now
        us.state = U_BUSY
        us.wait_tensor = -1
        self.cmd_start[c] = self.now
        if c == self.ff_trig:
            self.ff_flag = 1
            self.ff_fired = c
        if cmd.dst >= 0:
            self._sram(pe, self._size(tbase + cmd.dst))
            # (after: a commit in _sram is an earlier cycle's.) Of the commands allocating in one
            # cycle, the last in program order: the order units issue in within a cycle is the
            # heap's ties, which train and packet detail push in different orders (a review)
            if self.sram_alloc_t[pe] != self.now or c > self.sram_last_alloc[pe]:
                self.sram_last_alloc[pe] = c
            self.sram_alloc_t[pe] = self.now
        if cmd.opcode == OP_DOT:
            folds = gemm_folds(&self.hw, cmd.m, cmd.n)
            fc = gemm_fold_cycles(&self.hw, cmd.k, cmd.esize)
            if __builtin_add_overflow(cnt.work, 2 * cmd.m * cmd.n * cmd.k, &cnt.work):
                self._overflow(c)
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
            if __builtin_add_overflow(cnt.work, cmd.n, &cnt.work):
                self._overflow(c)
            return heap_push(&self.heap, self.now + vec_cycles(&self.hw, cmd.n, cmd.sub),
                             PRIO_NORMAL, EV_UNIT_DONE, pe * N_UNITS + u, us.gen)
        if cmd.opcode == OP_REDUCE:
            if __builtin_add_overflow(cnt.work, cmd.m * cmd.n * cmd.k, &cnt.work):
                self._overflow(c)
            return heap_push(&self.heap, self.now + reduce_cycles(&self.hw, cmd.m, cmd.n, cmd.k, cmd.sub),
                             PRIO_NORMAL, EV_UNIT_DONE, pe * N_UNITS + u, us.gen)
        # (bytes: a link's own byte counter sums what its TX unit's does, so never wraps first)
        if __builtin_add_overflow(cnt.work, cmd.nbytes, &cnt.work):
            self._overflow(c)
        if cmd.opcode == OP_LOAD or cmd.opcode == OP_STORE:
            cube = pe // self.hw.pes_per_cube
            rc = dma_request(&self.hw, &self.heap, &self.chans[cube],
                             &self.dports[cube * self.hw.pes_per_cube], cube,
                             pe % self.hw.pes_per_cube, self.now, cmd.nbytes, &self.n_bursts)
            if KB_DEBUG and rc == 0:
                if self.dbg.break_from and self.now >= self.dbg.break_from - 1:  # (a test's break)
                    self.dbg.break_from = 0
                    self.chans[cube].bad += 1
                # a request is where an epoch's bookkeeping changes most: stop at its cycle
                return self._dma_broken(cube)
            return rc
        if cmd.opcode == OP_SEND:
            link = pe * N_PORTS + cmd.port
            return link_send_start(&self.hw, &self.heap, &self.links[link], &self.lcnt[link],
                                   link, c, self.now, cmd.nbytes, &self.poll)
        # OP_RECV: the incoming link is the neighbour's, on the opposite port
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
        cdef const Command* cmd  # (valid until the next _row: read before any other issue)
        cmd = self._row(c)  # (a steady-state jump moves a running command on, to rows not read)
        cdef int64_t tbase = self.t_off[pe]
        cdef int64_t dur = self.now - us.start
        cdef int64_t t, ser
        cdef int32_t v
        cdef UnitState* w
        self.cmd_end[c] = self.now
        self.last_end = self.now  # (now never decreases, and a jump's commands end before it)
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
                self._sram(pe, -self._size(t))
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

    # -- steady state ----------------------------------------------------------------------------
    # A tl.range loop's iterations issue the same commands, shifted: iteration i + 1 is iteration i
    # with its command indices n further on and its tensors `made` further on (api._steady_regions
    # lists these regions, per PE, from the program's compact form). When the whole machine's state
    # at the start of the reference PE's iteration k equals its state at iteration k - P, with
    # every time moved on by delta and every index in a region moved on P iterations, the run from
    # there repeats that stretch: the engine is a deterministic function of its state, and the
    # commands ahead are the same ones shifted. So it jumps m such stretches at once: times plus
    # m * delta, indices plus m * P iterations, counters plus m times their growth over the
    # stretch, and the start and end of every command in between copied from P iterations earlier
    # plus delta. The comparison (_ff_snapshot) writes every field of the state in a canonical
    # form: times relative to now, indices relative to the region's iteration k, events in pop
    # order, rings from their head. A field that only ever bounds a time from below (a link's wire
    # free cycle, credit and arrival rings, an idle channel's start) is written as "not after now"
    # when it is in the past: every past value acts the same. Fields a state does not read (the
    # start of a unit with no command) are written as 0. Nothing else is left out.

    cdef void _ff_init(self, regions, region_pe_off, region_fixed, t_readers):
        cdef int64_t p, r
        self.rg = regions
        self.rg_pe_off = region_pe_off
        self.rg_fixed = region_fixed
        self.t_readers0 = t_readers
        n_pes = self.hw.n_pes
        self.ff_reg = <int64_t*> calloc(n_pes, sizeof(int64_t))
        self.ff_lo = <int64_t*> calloc(n_pes, sizeof(int64_t))
        self.ff_hi = <int64_t*> calloc(n_pes, sizeof(int64_t))
        self.ff_idle = <uint8_t*> calloc(n_pes, sizeof(uint8_t))
        if self.ff_reg == NULL or self.ff_lo == NULL or self.ff_hi == NULL or self.ff_idle == NULL:
            raise MemoryError("kernbench engine: cannot allocate simulator state")
        for p in range(n_pes):  # the reference PE: the first with a region of 2+ iterations
            for r in range(self.rg_pe_off[p], self.rg_pe_off[p + 1]):
                if self.rg[r, RG_ITERS] >= 2:
                    self.ff_trig_rg = r
                    self.ff_trig = self._ff_first(r)
                    self.ff_stride = 1
                    return

    cdef int64_t _ff_first(self, int64_t r) noexcept nogil:
        # Region r's first trigger (_ff_next) that its unit has not issued yet; -1: it issued
        # them all. (When the reference PE moves on to its next region, another of its units
        # may have run ahead into it: a trigger already issued would never fire, and no
        # snapshot would be taken for the rest of the run.)
        cdef int64_t end = self.rg[r, RG_C0] + self.rg[r, RG_N] * self.rg[r, RG_ITERS], nxt = -1, t
        cdef UnitState* us
        if self.rg[r, RG_U0] >= 0:  # (-1: not known; the triggers are taken as they come)
            us = &self.units[self.rg[r, RG_PE] * N_UNITS + self.rg[r, RG_U0]]
            nxt = us.q_base + self.unit_q[us.q_pos] if us.q_pos < us.q_end else INT64_MAX
        self.ff_rg_events = self.heap_events
        if nxt >= end:
            return -1
        t = self._ff_next(r, -1)
        while t < nxt:  # (two per iteration the unit ran ahead at most: less than it issued)
            t = self._ff_next(r, t)
        return t if t < end else -1

    cdef inline int64_t _ff_next(self, int64_t r, int64_t fired) noexcept nogil:
        # The reference PE's trigger after command `fired` of region r (-1: none yet): the start
        # of each iteration from the second (_steady), and when the region has a middle (command
        # RG_MID of an iteration, on its first command's unit, so that the triggers issue in
        # order) the middles of iterations 0 and 1 before them (_ff_middle).
        cdef int64_t c0 = self.rg[r, RG_C0], n = self.rg[r, RG_N], mid = self.rg[r, RG_MID], k
        if fired < 0:
            self.ff_mid_k = -1
            return c0 + mid if mid > 0 else c0 + n
        k = (fired - c0) // n
        if fired == c0 + k * n and mid > 0 and k <= 1:
            return fired + mid
        return c0 + (k + 1) * n

    cdef inline int64_t _ff_region(self, int32_t pe, int64_t c) noexcept nogil:
        # the region of PE pe holding command c, -1 if none (regions of a PE are disjoint)
        cdef int64_t lo = self.rg_pe_off[pe], hi = self.rg_pe_off[pe + 1], mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.rg[mid, RG_C0] <= c:
                lo = mid + 1
            else:
                hi = mid
        lo -= 1
        if lo < self.rg_pe_off[pe] or c >= self.rg[lo, RG_C0] + self.rg[lo, RG_N] * self.rg[lo, RG_ITERS]:
            return -1
        return lo

    cdef inline bint _ff_in(self, int32_t pe, int64_t c) noexcept nogil:
        # command c is in PE pe's region of the snapshot
        cdef int64_t r = self.ff_reg[pe]
        return (r >= 0 and c >= self.rg[r, RG_C0]
                and c < self.rg[r, RG_C0] + self.rg[r, RG_N] * self.rg[r, RG_ITERS])

    cdef inline bint _ff_tin(self, int32_t pe, int64_t t) noexcept nogil:
        # global tensor t is made in PE pe's region of the snapshot
        cdef int64_t r = self.ff_reg[pe]
        return (r >= 0 and t >= self.rg[r, RG_T0]
                and t < self.rg[r, RG_T0] + self.rg[r, RG_MADE] * self.rg[r, RG_ITERS])

    cdef inline int64_t _ff_front(self, UnitState* us) noexcept nogil:
        # the unit's running command, else its next one, else -1
        if us.state == U_BUSY:
            return us.cur
        if us.q_pos < us.q_end:
            return us.q_base + self.unit_q[us.q_pos]
        return -1

    cdef inline int _ff_cmd(self, FFBuf* b, int32_t pe, int64_t c, int64_t k) noexcept nogil:
        cdef int64_t r = self.ff_reg[pe]
        if c < 0:
            return _ff_put(b, 2) | _ff_put(b, 0)
        if self._ff_in(pe, c):
            return _ff_put(b, 1) | _ff_put(b, c - self.rg[r, RG_C0] - k * self.rg[r, RG_N])
        return _ff_put(b, 0) | _ff_put(b, c)

    cdef inline int64_t _ff_past(self, int64_t t) noexcept nogil:
        # a lower bound on a time: any value not after now acts as now
        return t - self.now if t > self.now else 0

    cdef inline bint _ff_live(self, LinkState* L, int64_t slot) noexcept nogil:
        # a ring slot holding more than "not after now": a credit still to come back, a packet
        # not drained (-1) or not yet arrived
        return L.cred[slot] < 0 or L.cred[slot] > self.now or L.arr[slot] > self.now

    cdef int _ff_snapshot(self, FFBuf* b, int64_t k) noexcept nogil:
        # b = [now, k, canon length, canon..., raw...], taken as the reference PE starts a
        # command of its iteration k (its start, or its middle: _ff_middle keeps those apart);
        # raw holds what a jump adds to. The parts
        # run in this order (`or`: in sequence; the later ones read what _ff_put_regions sets).
        # Within a part, the values of one statement are joined by `|`, whose order of
        # evaluation C leaves to the compiler: any order, the same in every snapshot of a build,
        # as the canon is only compared with itself; the header and the raw part, read by
        # position, are written in sequence.
        b.n = 0
        self.ff_read = 0
        if (_ff_put(b, self.now) or _ff_put(b, k) or _ff_put(b, 0) or self._ff_put_regions(b, k)
                or self._ff_put_units(b, k) or self._ff_put_dma(b) or self._ff_put_links(b, k)
                or self._ff_put_heap(b) or self._ff_put_tensors(b)):
            return -1
        b.p[2] = b.n - 3
        # (its cost, what decides how often to take one: the slots read count as what is
        # written, or a ring of 2**20 read over its packets sent looked free; a review found
        # 200 short loops 20x slower with steady on)
        self.ff_cost = b.p[2] + self.ff_read
        return self._ff_put_raw(b)

    cdef int _ff_put_regions(self, FFBuf* b, int64_t k) noexcept nogil:
        # Every PE's region (of its earliest running or next command), its window of iterations
        # [ff_lo, ff_hi] (the live ones and the ones they read back to), whether it is idle.
        cdef int32_t pe, u
        cdef int64_t r, c, c0, n, end, it, lo, hi, i
        cdef UnitState* us
        cdef int rc = 0
        for pe in range(self.hw.n_pes):
            c = -1
            self.ff_idle[pe] = 1
            for u in range(N_UNITS):
                us = &self.units[pe * N_UNITS + u]
                if us.state != U_DONE:
                    self.ff_idle[pe] = 0
                i = self._ff_front(us)
                if i >= 0 and (c < 0 or i < c):
                    c = i
            r = self._ff_region(pe, c) if c >= 0 else -1
            self.ff_reg[pe] = r
            rc |= _ff_put(b, r)
            if r < 0:
                continue
            c0 = self.rg[r, RG_C0]
            n = self.rg[r, RG_N]
            end = c0 + n * self.rg[r, RG_ITERS]
            lo = INT64_MAX
            hi = -1
            for u in range(N_UNITS):
                us = &self.units[pe * N_UNITS + u]
                i = self._ff_front(us)
                if i >= c0 and i < end:
                    it = (i - c0) // n
                    lo = it if it < lo else lo
                    hi = it if it > hi else hi
                if us.q_pos > self.unit_q_off[pe * N_UNITS + u]:
                    i = us.q_base + self.unit_q[us.q_pos - 1]  # the last command it started
                    if i >= c0 and i < end:
                        it = (i - c0) // n
                        hi = it if it > hi else hi
                    elif i >= end and self._ff_passed(pe * N_UNITS + u, c0, end):
                        # A unit that ran through the run and past it has read the tensors of
                        # its last iterations as the commands after the loop will not (a
                        # tensor an after-loop command reads has as many readers as one the
                        # next iteration reads, but not the same ones done): the window
                        # reaches the run's end, so no jump from here.
                        hi = self.rg[r, RG_ITERS] - 1
            self.ff_lo[pe] = lo + self.rg[r, RG_DLO]
            self.ff_hi[pe] = hi
            rc |= _ff_put(b, self.ff_lo[pe] - k) | _ff_put(b, hi - k)
        return rc

    cdef bint _ff_passed(self, int64_t ui, int64_t c0, int64_t end) noexcept nogil:
        # Did unit ui start a command in [c0, end) (global indices) before its last started one?
        # Its queue is in program order: the first entry at or after c0, by bisection.
        cdef UnitState* us = &self.units[ui]
        cdef int64_t a = self.unit_q_off[ui], z = us.q_pos - 1, mid
        cdef int64_t lo_rel = c0 - us.q_base
        while a < z:
            mid = (a + z) >> 1
            if self.unit_q[mid] < lo_rel:
                a = mid + 1
            else:
                z = mid
        return a < us.q_pos - 1 and self.unit_q[a] < end - us.q_base

    cdef int _ff_put_units(self, FFBuf* b, int64_t k) noexcept nogil:
        # A PE whose units are all done stays as it is (no command of its own will run, nothing
        # else touches its units, DMA port, SRAM or tensors): a marker stands for it.
        cdef int32_t pe, u
        cdef int64_t r, i, t, now = self.now
        cdef UnitState* us
        cdef int rc = 0
        for pe in range(self.hw.n_pes):
            rc |= _ff_put(b, self.ff_idle[pe])
            if self.ff_idle[pe]:
                continue
            for u in range(N_UNITS):
                us = &self.units[pe * N_UNITS + u]
                i = self._ff_front(us)
                rc |= _ff_put(b, us.state)
                rc |= self._ff_cmd(b, pe, us.cur, k)
                rc |= _ff_put(b, us.start - now if us.cur >= 0 else 0)
                rc |= self._ff_cmd(b, pe, us.q_base + self.unit_q[us.q_pos] if us.q_pos < us.q_end else -1, k)
                if us.state == U_IDLE or us.state == U_WAIT_OPERAND:
                    # in a region it moves on with the run; parked before a later command, not
                    rc |= _ff_put(b, us.free_since - now if i >= 0 and self._ff_in(pe, i) else us.free_since)
                else:
                    rc |= _ff_put(b, 0)
                if us.state == U_WAIT_OPERAND:
                    t = us.wait_tensor
                    if self._ff_in(pe, i) and self._ff_tin(pe, t):
                        r = self.ff_reg[pe]
                        rc |= _ff_put(b, 1) | _ff_put(b, t - self.rg[r, RG_T0] - k * self.rg[r, RG_MADE])
                    else:
                        rc |= _ff_put(b, 0) | _ff_put(b, t)
                else:
                    rc |= _ff_put(b, 2) | _ff_put(b, 0)
                rc |= _ff_put(b, us.folds_left) | _ff_put(b, us.fold_cycles) | _ff_put(b, us.fold_last)
        return rc

    cdef int _ff_put_dma(self, FFBuf* b) noexcept nogil:
        # DMA ports of the PEs not idle, and every cube's channel (its epoch, its ring from the head)
        cdef int32_t pe, l, j, ppc = self.hw.pes_per_cube
        cdef int64_t i, now = self.now
        cdef DmaPort* dp
        cdef Channel* ch
        cdef int rc = 0
        for pe in range(self.hw.n_pes):
            if self.ff_idle[pe]:
                continue
            dp = &self.dports[pe]
            rc |= (_ff_put(b, dp.bursts_left) | _ff_put(b, dp.bytes_left) | _ff_put(b, dp.last_cycles)
                   | _ff_put(b, dp.ideal) | _ff_put(b, dp.requesting))
        for l in range(self.hw.n_cubes):
            ch = &self.chans[l]
            rc |= _ff_put(b, ch.k)
            if ch.k > 0:
                rc |= (_ff_put(b, ch.t0 - now) | _ff_put(b, ch.fin_idx) | _ff_put(b, ch.fin_end - now)
                       | _ff_put(b, ch.fin))
                for j in range(ch.k):
                    rc |= _ff_put(b, ch.members[j])
            else:
                rc |= _ff_put(b, self._ff_past(ch.t0))
            rc |= _ff_put(b, ch.ev_time >= 0) | _ff_put(b, ch.ev_time - now if ch.ev_time >= 0 else 0)
            rc |= _ff_put(b, ch.fq_len)
            for j in range(ch.fq_len):
                i = (ch.fq_head + j) % ppc
                rc |= _ff_put(b, ch.fq_pe[i]) | _ff_put(b, ch.fq_t[i] - now)
            rc |= (_ff_put(b, ch.last) | _ff_put(b, ch.n_requesting) | _ff_put(b, ch.pending)
                   | _ff_put(b, self._ff_past(ch.busy_until)) | _ff_put(b, ch.bad))
        return rc

    cdef int _ff_put_links(self, FFBuf* b, int64_t k) noexcept nogil:
        # Links: packet numbers relative to the link's next packet, rings from its slot.
        cdef int64_t l, i, c, slot, used, live, base, Q = self.hw.queue, now = self.now
        cdef LinkState* L
        cdef int rc = 0
        for l in range(self.hw.n_pes * N_PORTS):
            L = &self.links[l]
            if L.dst < 0 or (self.ff_idle[L.src] and self.ff_idle[L.dst]):
                continue  # unwired, or between two idle PEs: no send or recv will touch it
            base = L.tx_next
            rc |= self._ff_cmd(b, L.src, L.tx_cmd, k) | self._ff_cmd(b, L.dst, L.rx_cmd, k)
            if L.tx_cmd >= 0:
                rc |= (_ff_put(b, L.tx_start - now) | _ff_put(b, L.tx_ser_full) | _ff_put(b, L.tx_ser_last))
            rc |= _ff_put(b, L.tx_pkts_left) | _ff_put(b, L.tx_bytes_left) | _ff_put(b, self._ff_past(L.tx_e_prev))
            if L.rx_cmd >= 0:
                rc |= (_ff_put(b, L.rx_post - now) | _ff_put(b, L.rx_first - base)
                       | _ff_put(b, L.rx_end - base))
            # (rx_drained, rx_arrived, cur_bytes, credits, serialising: packet detail's, unused here)
            rc |= (_ff_put(b, L.rx_next_first - base) | _ff_put(b, L.rx_drained)
                   | _ff_put(b, L.rx_arrived) | _ff_put(b, L.cur_bytes) | _ff_put(b, L.credits)
                   | _ff_put(b, L.serialising) | _ff_put(b, L.tx_waiting))
            # The credit and arrival rings: the slots holding more than "not after now" (a credit
            # still to come back, a packet not drained or not yet arrived), written oldest first
            # after their count. They are the newest packets sent: a link's arrivals and credit
            # times grow with the packet number (packets leave in order, recvs drain in order,
            # a jump moves every live time by the same D), a packet not drained (-1) is among
            # the newest. So the walk goes back from the newest while live: the same for two
            # states exactly when the whole rings are, at the cost of the packets in flight.
            # (Written whole, a ring of 2**20 made every snapshot 16 MB a link and a tiny launch
            # 75x slower; read over every packet sent, many short loops took quadratic time:
            # reviews.) The debug build checks the rest of the ring is not live, and the slots
            # past the packets sent hold calloc's zeros.
            used = Q if L.tx_next >= Q else L.tx_next
            live = 0
            slot = L.tx_slot
            while live < used:
                slot = slot - 1 if slot > 0 else Q - 1
                if not self._ff_live(L, slot):
                    break
                live += 1
            self.ff_read += live + 1
            if KB_DEBUG:
                for i in range(Q - live):  # (from the oldest slot of the ring's order)
                    slot = (L.tx_slot + i) % Q
                    if self._ff_live(L, slot) or (slot >= used and (L.cred[slot] != 0 or L.arr[slot] != 0)):
                        self.dbg.broken, self.dbg.broken_obj, self.dbg.broken_at = INV_RING, <int32_t> l, self.now
                        return -1
            rc |= _ff_put(b, live)
            slot = (L.tx_slot + Q - live) % Q
            for i in range(live):
                c = L.cred[slot]
                rc |= _ff_put(b, -1 if c < 0 else self._ff_past(c))
                rc |= _ff_put(b, self._ff_past(L.arr[slot]))
                slot += 1
                if slot == Q:
                    slot = 0
        return rc

    cdef int _ff_put_heap(self, FFBuf* b) noexcept nogil:
        # The heap in pop order; an event's generation relative to its owner's.
        cdef int64_t i, j
        cdef Event* ev
        cdef int rc = 0
        if _ff_reserve(&self.ff_tmp, self.heap.size * (sizeof(Event) // sizeof(int64_t) + 1)):
            return -1
        memcpy(self.ff_tmp.p, self.heap.data, self.heap.size * sizeof(Event))
        ev = <Event*> self.ff_tmp.p
        qsort(ev, self.heap.size, sizeof(Event), _ev_cmp)
        rc |= _ff_put(b, self.heap.size)
        for i in range(self.heap.size):
            j = ev[i].gen
            if ev[i].kind == EV_UNIT_DONE or ev[i].kind == EV_FOLD:
                j = j - self.units[ev[i].obj].gen
            elif ev[i].kind == EV_ARBITRATE or ev[i].kind == EV_CHAN_DONE:
                j = j - self.chans[ev[i].obj].gen
            rc |= (_ff_put(b, ev[i].time - self.now) | _ff_put(b, ev[i].prio) | _ff_put(b, ev[i].kind)
                   | _ff_put(b, ev[i].obj) | _ff_put(b, j))
        return rc

    cdef int _ff_put_tensors(self, FFBuf* b) noexcept nogil:
        # SRAM, and the tensors: each PE's window in its region, and its region's fixed operands.
        cdef int32_t pe
        cdef int64_t r, t, n, made, i
        cdef int rc = 0
        for pe in range(self.hw.n_pes):
            rc |= _ff_put(b, self.sram_live[pe]) | _ff_put(b, self.sram_t[pe] == self.now)
            r = self.ff_reg[pe]
            if r < 0:
                continue
            if self.ff_lo[pe] < 0:
                rc |= _ff_put(b, -1)  # the window reaches before the loop: no jump from here
            else:
                made = self.rg[r, RG_MADE]
                t = self.rg[r, RG_T0] + self.ff_lo[pe] * made
                n = (self.ff_hi[pe] + 1 - self.ff_lo[pe]) * made
                if n > 0:  # (the window's tensors are a contiguous range of ids)
                    rc |= (_ff_put_bytes(b, &self.t_ready[t], n)
                           | _ff_put_bytes(b, &self.t_readers[t], n * sizeof(int32_t)))
            for i in range(self.rg[r, RG_F0], self.rg[r, RG_F1]):
                rc |= _ff_put(b, self.t_ready[self.rg_fixed[i]])
        return rc

    cdef int _ff_put_raw(self, FFBuf* b) noexcept nogil:
        # What a jump adds m times the growth of (not compared): the run's counts, the unit and
        # link counters, queue positions, links' next packets, fixed operands' readers.
        cdef int32_t pe
        cdef int64_t r, i, n_links = self.hw.n_pes * N_PORTS
        cdef int64_t* raw
        cdef int rc = 0
        if (_ff_put(b, self.n_done) or _ff_put(b, self.heap_events) or _ff_put(b, self.n_folds)
                or _ff_put(b, self.n_bursts) or _ff_put(b, self.dbg.stale_events)):
            return -1
        raw = <int64_t*> &self.ucnt[0, 0]
        for i in range(self.hw.n_pes * N_UNITS * (sizeof(UnitCounters) // sizeof(int64_t))):
            rc |= _ff_put(b, raw[i])
        raw = <int64_t*> &self.lcnt[0]
        for i in range(n_links * (sizeof(LinkCounters) // sizeof(int64_t))):
            rc |= _ff_put(b, raw[i])
        for i in range(self.hw.n_pes * N_UNITS):
            rc |= _ff_put(b, self.units[i].q_pos)
        for i in range(n_links):
            rc |= _ff_put(b, self.links[i].tx_next)
        for pe in range(self.hw.n_pes):
            r = self.ff_reg[pe]
            if r >= 0:
                for i in range(self.rg[r, RG_F0], self.rg[r, RG_F1]):
                    rc |= _ff_put(b, self.t_readers[self.rg_fixed[i]])
        return -1 if rc else 0

    cdef int64_t _ff_periods(self, const int64_t* old, int64_t P, int64_t delta) noexcept nogil:
        # How many stretches of P iterations the run may jump from now (0: none): every
        # command and tensor they touch must exist and repeat, the guard must not be passed.
        cdef int32_t pe, u, n_pes = self.hw.n_pes
        cdef int64_t n_links = n_pes * N_PORTS
        cdef int64_t m = INT64_MAX, r, i, t, a, made, t0, q1, dq, r1, r2, hi, d
        cdef const int64_t* raw = old + 3 + old[2] + 5
        cdef const int64_t* cnt = <const int64_t*> &self.ucnt[0, 0]
        cdef UnitState* us
        # The counters, unit and link ones in turn: m stretches keep each inside int64 (a work
        # counter can pass it; the run then stops where simulating on would, at the command
        # _try_issue refuses, not in a jump: the same error, steady or not)
        for i in range(n_pes * N_UNITS * (sizeof(UnitCounters) // sizeof(int64_t))):
            d = cnt[i] - raw[i]
            if d > 0 and (INT64_MAX - cnt[i]) // d < m:
                m = (INT64_MAX - cnt[i]) // d
        cnt = <const int64_t*> &self.lcnt[0]
        for i in range(n_links * (sizeof(LinkCounters) // sizeof(int64_t))):
            d = cnt[i] - raw[n_pes * N_UNITS * (sizeof(UnitCounters) // sizeof(int64_t)) + i]
            if d > 0 and (INT64_MAX - cnt[i]) // d < m:
                m = (INT64_MAX - cnt[i]) // d
        raw += n_pes * N_UNITS * (sizeof(UnitCounters) // sizeof(int64_t))
        raw += n_links * (sizeof(LinkCounters) // sizeof(int64_t))
        # The cycle guard: train detail computes a link's packets ahead, up to the first that
        # would start past max_cycles (an EV_LIMIT instead). Every time a stretch computes ends
        # up in the heap, is popped before its end, or is a packet computed ahead, which starts
        # before its link's wire is free (tx_e_prev, the end of the last one computed): the
        # stretches are the run's as long as none of those, moved on, is past the guard. (Not
        # the heap's alone: a packet a stretch computes ahead would have stopped the run at its
        # start, past the guard, with no event of the heap there yet.)
        t = self.now
        for i in range(self.heap.size):
            if self.heap.data[i].time > t:
                t = self.heap.data[i].time
        for i in range(n_links):
            if self.links[i].dst >= 0 and self.links[i].tx_e_prev > t:
                t = self.links[i].tx_e_prev
        if t > self.max_cycles:
            return 0
        if (self.max_cycles - t) // delta < m:
            m = (self.max_cycles - t) // delta
        for pe in range(n_pes):
            for u in range(N_UNITS):
                us = &self.units[pe * N_UNITS + u]
                dq = us.q_pos - raw[pe * N_UNITS + u]
                if dq < 0:
                    return 0
                if dq > 0 and (us.q_end - us.q_pos) // dq < m:
                    m = (us.q_end - us.q_pos) // dq
        raw += n_pes * N_UNITS + n_links  # the fixed operands' readers
        for pe in range(n_pes):
            r = self.ff_reg[pe]
            if r < 0:
                continue
            if self.ff_lo[pe] - P < 0:
                return 0
            if (self.rg[r, RG_ITERS] - 1 - self.ff_hi[pe]) // P < m:
                m = (self.rg[r, RG_ITERS] - 1 - self.ff_hi[pe]) // P
            for i in range(self.rg[r, RG_F0], self.rg[r, RG_F1]):
                r1 = raw[0]
                raw += 1
                r2 = self.t_readers[self.rg_fixed[i]]
                if r2 > r1:
                    return 0
                if r1 > r2 and (r2 - 1) // (r1 - r2) < m:
                    m = (r2 - 1) // (r1 - r2)
        # A unit parked on a later command (past its region: it does not move on) that waits for
        # a tensor of the region: the run makes that tensor, and only the run's own command
        # ending wakes the unit, so the jump stops before the iteration that makes it (a
        # review's deadlock: the store after a replay_last loop, waiting for the loop's last
        # tensors, whose reader counts match the loop's own)
        for pe in range(n_pes):
            r = self.ff_reg[pe]
            if r < 0 or self.rg[r, RG_MADE] == 0:
                continue
            for u in range(N_UNITS):
                us = &self.units[pe * N_UNITS + u]
                if us.state != U_WAIT_OPERAND or not self._ff_tin(pe, us.wait_tensor):
                    continue
                i = self._ff_front(us)
                if i >= 0 and self._ff_in(pe, i):
                    continue  # (it moves on with the run, its wait too)
                i = (us.wait_tensor - self.rg[r, RG_T0]) // self.rg[r, RG_MADE]  # the iteration
                if i <= self.ff_hi[pe]:
                    return 0
                if (i - 1 - self.ff_hi[pe]) // P < m:
                    m = (i - 1 - self.ff_hi[pe]) // P
        if m <= 0:
            return 0
        # The tensors a jump writes (the window and every iteration after it that the stretches
        # reach) and those it copies from (P iterations back) have the same sizes, pins and
        # reader counts before the run: iteration by iteration, the same tensors. (A tensor some
        # later command reads again differs here, and stops the jump before it.)
        for pe in range(n_pes):
            r = self.ff_reg[pe]
            if r < 0:
                continue
            made = self.rg[r, RG_MADE]
            t0 = self.rg[r, RG_T0]
            hi = self.ff_hi[pe]
            for t in range(t0 + self.ff_lo[pe] * made, t0 + (hi + m * P + 1) * made):
                if (self.t_readers0[t] != self.t_readers0[t - P * made] or self._size(t) != self._size(t - P * made)
                        or self.t_pinned[t] != self.t_pinned[t - P * made]):
                    i = (t - t0) // made  # the first iteration that differs
                    if i <= hi:
                        return 0
                    if (i - 1 - hi) // P < m:
                        m = (i - 1 - hi) // P
                    break
        return m if m > 0 else 0

    cdef int _ff_jump(self, const int64_t* old, int64_t P, int64_t delta, int64_t m) noexcept nogil:
        # Move the state on m stretches of P iterations (m * delta cycles): see the section's
        # comment. `old` is the snapshot P iterations back.
        cdef int32_t pe, u, j, n_pes = self.hw.n_pes, ppc = self.hw.pes_per_cube
        cdef int64_t n_links = n_pes * N_PORTS, Q = self.hw.queue
        cdef int64_t D = m * delta, r, i, q, dq, e, t, t0, made, lo, hi, w, dl, s, fr, pm, done, nb, sent
        cdef const int64_t* raw = old + 3 + old[2]
        cdef int64_t* cnt
        cdef int64_t* tmp
        cdef UnitState* us
        cdef Channel* ch
        cdef LinkState* L
        # the start and end of every command of the stretches, from P iterations before
        cdef const int64_t* qraw = raw + 5 + n_pes * N_UNITS * (sizeof(UnitCounters) // sizeof(int64_t)) \
            + n_links * (sizeof(LinkCounters) // sizeof(int64_t))
        # (recorded here, written by apply_copies when the arrays are read: each copy reads
        # commands that had run or that an earlier copy writes, so copies in order are exact)
        for i in range(n_pes * N_UNITS):
            us = &self.units[i]
            dq = us.q_pos - qraw[i]
            if dq == 0:
                continue
            e = us.q_pos - (1 if us.state == U_BUSY else 0)
            if (_ff_put(&self.ff_copies, i) or _ff_put(&self.ff_copies, us.q_pos) or _ff_put(&self.ff_copies, e)
                    or _ff_put(&self.ff_copies, m * dq) or _ff_put(&self.ff_copies, dq)
                    or _ff_put(&self.ff_copies, delta)):
                return -1
            self.steady_commands += m * dq
        # units
        for pe in range(n_pes):
            r = self.ff_reg[pe]
            for u in range(N_UNITS):
                us = &self.units[pe * N_UNITS + u]
                fr = self._ff_front(us)
                if fr >= 0 and self._ff_in(pe, fr):
                    if us.cur >= 0:
                        us.cur += m * P * self.rg[r, RG_N]
                        us.start += D
                    if us.state == U_IDLE or us.state == U_WAIT_OPERAND:
                        us.free_since += D
                    if us.state == U_WAIT_OPERAND and self._ff_tin(pe, us.wait_tensor):
                        us.wait_tensor += m * P * self.rg[r, RG_MADE]
                us.q_pos += m * (us.q_pos - qraw[pe * N_UNITS + u])
        # channels
        for j in range(self.hw.n_cubes):
            ch = &self.chans[j]
            if ch.k > 0 or ch.t0 > self.now:
                ch.t0 += D
            if ch.k > 0:
                ch.fin_end += D
            if ch.ev_time >= 0:
                ch.ev_time += D
            for i in range(ch.fq_len):
                ch.fq_t[(ch.fq_head + i) % ppc] += D
            if ch.busy_until > self.now:
                ch.busy_until += D
        # links: packet numbers on by m times the stretch's packets, rings turned with them
        if _ff_reserve(&self.ff_tmp, 2 * Q):
            return -1
        tmp = self.ff_tmp.p
        for i in range(n_links):
            L = &self.links[i]
            if L.dst < 0:
                continue
            if L.tx_cmd >= 0 and self._ff_in(L.src, L.tx_cmd):
                L.tx_cmd += m * P * self.rg[self.ff_reg[L.src], RG_N]
            if L.rx_cmd >= 0 and self._ff_in(L.dst, L.rx_cmd):
                L.rx_cmd += m * P * self.rg[self.ff_reg[L.dst], RG_N]
            L.tx_start += D
            L.rx_post += D
            L.rx_last_drain += D
            if L.tx_e_prev > self.now:
                L.tx_e_prev += D
            dl = m * (L.tx_next - qraw[n_pes * N_UNITS + i])
            sent = L.tx_next
            L.tx_next += dl
            L.rx_first += dl
            L.rx_end += dl
            L.rx_next_first += dl
            if L.tx_next < Q:
                # Never wrapped: the packets sent hold slots [0, sent), the rest calloc's zeros
                # (a zero is not after now: it stays). The rotation below then moves the
                # used slots up by dl and leaves zeros around them: done over those slots
                # alone, from the top (a ring of 2**20 copied whole at every jump: a review)
                for q in range(sent - 1, -1, -1):
                    L.cred[q + dl] = L.cred[q] + D if L.cred[q] > self.now else L.cred[q]
                    L.arr[q + dl] = L.arr[q] + D if L.arr[q] > self.now else L.arr[q]
                for q in range(dl if dl < sent else sent):
                    L.cred[q] = 0
                    L.arr[q] = 0
                L.tx_slot = L.tx_next
                continue
            for q in range(Q):
                tmp[q] = L.cred[q]
                tmp[Q + q] = L.arr[q]
            s = dl % Q
            for q in range(Q):
                w = (q + s) % Q
                L.cred[w] = tmp[q] + D if tmp[q] > self.now else tmp[q]
                L.arr[w] = tmp[Q + q] + D if tmp[Q + q] > self.now else tmp[Q + q]
            L.tx_slot = L.tx_next % Q
        # the heap: every event later by D (its order unchanged)
        for i in range(self.heap.size):
            self.heap.data[i].time += D
        # SRAM and tensors
        for pe in range(n_pes):
            if self.sram_t[pe] == self.now:
                self.sram_t[pe] = self.now + D
            if self.sram_alloc_t[pe] == self.now:
                self.sram_alloc_t[pe] = self.now + D
            r = self.ff_reg[pe]
            if r < 0:
                continue
            made = self.rg[r, RG_MADE]
            t0 = self.rg[r, RG_T0]
            lo = t0 + self.ff_lo[pe] * made
            hi = t0 + (self.ff_hi[pe] + 1) * made
            if _ff_reserve(&self.ff_tmp, 2 * (hi - lo)):
                return -1
            tmp = self.ff_tmp.p
            for t in range(lo, hi):  # the window moves on; behind it, what P iterations before left
                tmp[2 * (t - lo)] = self.t_ready[t]
                tmp[2 * (t - lo) + 1] = self.t_readers[t]
            w = m * P * made
            # t_ready[t] = t_ready[t - pm] for t in lo .. lo + w (likewise t_readers): the
            # stretch before lo repeated, copied in doubling blocks, each from lo - pm (the
            # period before lo and the copies already written: a whole number of periods, and
            # ending where the block starts). In range: lo - pm >= t0 (_ff_periods: ff_lo >= P)
            # and the window moved on below ends past lo + w.
            pm = P * made
            done = 0
            while done < w:
                nb = done + pm if done + pm < w - done else w - done
                memcpy(&self.t_ready[lo + done], &self.t_ready[lo - pm], nb * sizeof(uint8_t))
                memcpy(&self.t_readers[lo + done], &self.t_readers[lo - pm], nb * sizeof(int32_t))
                done += nb
            for t in range(lo, hi):
                self.t_ready[t + w] = <uint8_t> tmp[2 * (t - lo)]
                self.t_readers[t + w] = <int32_t> tmp[2 * (t - lo) + 1]
        # the fixed operands' readers, then the counters
        raw = qraw + n_pes * N_UNITS + n_links
        for pe in range(n_pes):
            r = self.ff_reg[pe]
            if r < 0:
                continue
            for i in range(self.rg[r, RG_F0], self.rg[r, RG_F1]):
                t = self.rg_fixed[i]
                self.t_readers[t] = <int32_t> (self.t_readers[t] - m * (raw[0] - self.t_readers[t]))
                raw += 1
        raw = old + 3 + old[2]
        self.n_done += m * (self.n_done - raw[0])
        self.heap_events += m * (self.heap_events - raw[1])
        self.n_folds += m * (self.n_folds - raw[2])
        self.n_bursts += m * (self.n_bursts - raw[3])
        self.dbg.stale_events += m * (self.dbg.stale_events - raw[4])
        raw += 5
        cnt = <int64_t*> &self.ucnt[0, 0]
        for i in range(n_pes * N_UNITS * (sizeof(UnitCounters) // sizeof(int64_t))):
            # (checked again: _ff_periods keeps m within every counter's range)
            if __builtin_mul_overflow(m, cnt[i] - raw[i], &w) or __builtin_add_overflow(cnt[i], w, &cnt[i]):
                self.overflow_cmd = -2
                return -1
        raw += n_pes * N_UNITS * (sizeof(UnitCounters) // sizeof(int64_t))
        cnt = <int64_t*> &self.lcnt[0]
        for i in range(n_links * (sizeof(LinkCounters) // sizeof(int64_t))):
            if __builtin_mul_overflow(m, cnt[i] - raw[i], &w) or __builtin_add_overflow(cnt[i], w, &cnt[i]):
                self.overflow_cmd = -2
                return -1
        self.now += D
        self.steady_jumps += 1
        return 0

    cdef int64_t _ff_middle(self, int64_t r, int64_t k) noexcept nogil:
        # The reference PE is at the middle (command RG_MID) of iteration k of region r, k = 0 or 1:
        # snapshot; at iteration 1, compare with iteration 0's and jump if they repeat and the
        # jump takes m >= ITERS - 3 iterations. Returns the commands jumped, -1: out of memory.
        #
        # A loop whose first iteration starts on an idle machine often repeats from its middle
        # on: from 0.5 and 1.5 rather than from the starts of 1 and 2, and its jump then lands
        # half an iteration later (8 causal prefill K/V groups on 64 cubes: 2 simulated instead
        # of 3, docs/benchmarks.md). A PE ahead of the reference by half an iteration or more
        # shortens m, and a jump from a later start might take more: the starts' first
        # comparison (_steady) is at iteration 2, and lands at most ITERS - 3 iterations on
        # (every PE's window ends at 2 or later), so a jump of m >= ITERS - 3 from here never
        # simulates more of this run than the starts would. Otherwise the starts go on as
        # without these two snapshots: not kept in the ring, nor counted as misses. (The next
        # run's triggers may then have issued: _ff_first.)
        cdef int64_t delta, m
        if k == 0:
            # A snapshot costs about its length, what the middles save at most an iteration:
            # none while half an iteration's heap events are fewer than a sixteenth of the last
            # snapshot's length (a small body on a large machine; api._mid_trigger leaves out
            # loops of many iterations).
            if (self.heap_events - self.ff_rg_events) * 16 < self.ff_cost:
                return 0
            if self._ff_snapshot(&self.ff_mid, 0):
                return -1
            self.steady_snapshots += 1
            self.ff_mid_k = 0 if self.ff_reg[self.rg[r, RG_PE]] == r else -1
            return 0
        if k != 1 or self.ff_mid_k != 0:
            return 0
        self.ff_mid_k = -1
        if self._ff_snapshot(&self.ff_cur, 1):
            return -1
        self.steady_snapshots += 1
        delta = self.now - self.ff_mid.p[0]
        if (self.ff_reg[self.rg[r, RG_PE]] != r or delta <= 0 or self.ff_mid.p[2] != self.ff_cur.p[2]
                or memcmp(self.ff_mid.p + 3, self.ff_cur.p + 3, self.ff_mid.p[2] * sizeof(int64_t)) != 0):
            return 0
        m = self._ff_periods(self.ff_mid.p, 1, delta)
        if m <= 0 or m < self.rg[r, RG_ITERS] - 3:
            return 0
        if self._ff_jump(self.ff_mid.p, 1, delta, m):
            return -1
        self.ff_n = 0
        self.ff_misses = 0
        return m * self.rg[r, RG_N]

    cdef int _steady(self) noexcept nogil:
        # The reference PE started an iteration: snapshot, compare with the last FF_KEEP, jump
        # when one repeats; then set the next trigger. -1: out of memory.
        #
        # A snapshot costs about its length (every unit, link and live tensor of the machine);
        # an iteration's run, its heap events (~50x a value written). So snapshots are taken every
        # ff_stride-th iteration only, the stride doubling while a snapshot is longer than 16
        # times the heap events since the last one (it then costs about a third of them), and after FF_KEEP snapshots in a row that repeat none before
        # (a loop whose state keeps changing then costs O(log iterations) snapshots). Any two
        # snapshots at one offset compare: P is the iterations between them.
        cdef int64_t r = self.ff_trig_rg, c0 = self.rg[r, RG_C0], n = self.rg[r, RG_N]
        cdef int64_t fired = self.ff_fired, k = (fired - c0) // n, P, delta, m = 0, n_rg, q, rj
        cdef int32_t j
        cdef FFBuf* old
        cdef FFBuf swap
        if fired != c0 + k * n:  # an iteration's middle
            m = self._ff_middle(r, k)
            if m < 0:
                return -1
            fired += m
        elif k % self.ff_stride == 0:
            if self._ff_snapshot(&self.ff_cur, k):
                return -1
            self.steady_snapshots += 1
            if self.ff_reg[self.rg[r, RG_PE]] != r:
                self.ff_n = 0  # the reference PE lags behind its own trigger: no comparison
            for j in range(self.ff_n):
                old = &self.ff_ring[(self.ff_at - j + FF_KEEP) % FF_KEEP]
                P = k - old.p[1]
                delta = self.now - old.p[0]
                if (P <= 0 or delta <= 0 or old.p[2] != self.ff_cur.p[2]
                        or memcmp(old.p + 3, self.ff_cur.p + 3, old.p[2] * sizeof(int64_t)) != 0):
                    continue
                m = self._ff_periods(old.p, P, delta)
                if m > 0:
                    if self._ff_jump(old.p, P, delta, m):
                        return -1
                    fired += m * P * n
                    self.ff_n = 0
                    self.ff_misses = 0
                break
            if m == 0:  # keep this snapshot: the ring's newest
                self.ff_misses += 1
                if ((self.heap_events - self.ff_events) * 16 < self.ff_cost or self.ff_misses >= FF_KEEP) \
                        and self.ff_stride < FF_STRIDE_MAX:
                    self.ff_stride *= 2
                    self.ff_misses = 0
                self.ff_at = (self.ff_at + 1) % FF_KEEP
                swap = self.ff_ring[self.ff_at]
                self.ff_ring[self.ff_at] = self.ff_cur
                self.ff_cur = swap
                if self.ff_n < FF_KEEP:
                    self.ff_n += 1
            self.ff_events = self.heap_events
        # the next trigger: the next start or middle of an iteration, else the next region of
        # 2+ iterations not run through yet: the reference PE's, else another PE's (any PE's
        # iterations may set the snapshots; a review found one short loop on PE 0 leaving a
        # long one on PE 1 without jumps)
        self.ff_trig = self._ff_next(r, fired)
        if self.ff_trig >= c0 + n * self.rg[r, RG_ITERS]:
            self.ff_trig = -1
            self.ff_n = 0
            self.ff_stride = 1
            self.ff_misses = 0
            n_rg = self.rg.shape[0]
            for q in range(1, n_rg):
                rj = (r + q) % n_rg
                if self.rg[rj, RG_ITERS] >= 2:
                    self.ff_trig = self._ff_first(rj)
                    if self.ff_trig >= 0:
                        self.ff_trig_rg = rj
                        break
        return 0

    # -- loop ----------------------------------------------------------------------------------
    cdef void _overflow(self, int64_t c) noexcept nogil:
        # command c passes its unit's work counter past 2**63 - 1 in this cycle: noted (the
        # first in global order of this cycle's), the run stopped once the cycle is done
        if self.overflow_cmd < 0 or c < self.overflow_cmd:
            self.overflow_cmd = c
            self.overflow_t = self.now

    cdef int _stopped(self) noexcept nogil:
        # the status of a loop stopped by a nonzero code: a broken invariant (debug build), a
        # Python signal handler that raised, or a failed allocation
        if KB_DEBUG and self.dbg.broken:
            return ST_INVARIANT
        if self.overflow_cmd != -1:
            return ST_OVERFLOW
        return ST_INTERRUPTED if self.poll.raised else ST_NOMEM

    cdef int _dma_broken(self, int32_t cube) noexcept nogil:
        # Debug build: 1 (and the invariant recorded) if cube's channel broke an epoch's
        # invariant (_dma.pyx's _check), else 0
        if KB_DEBUG and self.chans[cube].bad:
            self.dbg.broken, self.dbg.broken_obj, self.dbg.broken_at = INV_DMA_EPOCH, cube, self.now
            return 1
        return 0

    cdef int _dma_scan(self) noexcept nogil:
        # _dma_broken over every cube's channel
        cdef int32_t c
        if self.chans != NULL:
            for c in range(self.hw.n_cubes):
                if self._dma_broken(c):
                    return 1
        return 0

    cdef int _loop(self) noexcept nogil:
        cdef Event ev
        cdef int32_t pe, u, l, n_pes = self.hw.n_pes
        cdef int32_t ppc = self.hw.pes_per_cube
        cdef UnitState* us
        cdef LinkState* L
        cdef int rc = 0
        cdef int64_t n_cmds = self.n_cmds, sent
        cdef int64_t left = self.poll.left
        for pe in range(n_pes):
            for u in range(N_UNITS):
                if self._try_issue(pe, u):
                    return self._stopped()
        while heap_pop(&self.heap, &ev):
            if self.overflow_cmd >= 0 and ev.time > self.overflow_t:
                return ST_OVERFLOW  # (the cycle a work counter passed 2**63 - 1 is done)
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
                # Packet detail's own bookkeeping (a packet leaving or landing, a credit flying
                # back) has no event in train detail, so it alone is not an overrun: a deadlocked
                # run's last credits land past the limit. It is drained until the run either does
                # what train detail would past the limit too (start a packet, end a command: an
                # overrun) or runs out of events (a deadlock within the limit). No unit changes
                # state meanwhile, so the positions reported stay those at the limit.
                if ev.kind == EV_PKT_SENT or ev.kind == EV_PKT_ARRIVE or ev.kind == EV_CREDIT:
                    sent = self.lcnt[ev.obj].packets
                    rc = link_packet_event(&self.hw, &self.heap, &self.links[ev.obj],
                                           &self.lcnt[ev.obj], ev.obj, ev.kind, ev.time)
                    if rc:
                        return self._stopped()
                    if self.lcnt[ev.obj].packets == sent:
                        continue
                self.now = ev.time
                if KB_DEBUG and self._dma_scan():  # (a break before the stop is the report)
                    return ST_INVARIANT
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
                return self._stopped()
            if self.ff_flag:
                self.ff_flag = 0
                if self.overflow_cmd < 0 and self._steady():
                    return self._stopped()  # (a counter's overflow, a broken ring: debug, memory)
            if KB_DEBUG and (ev.kind == EV_ARBITRATE or ev.kind == EV_CHAN_DONE) and self._dma_broken(ev.obj):
                return ST_INVARIANT
        if KB_DEBUG and self._dma_scan():  # (a steady-state jump moves channels too)
            return ST_INVARIANT
        if self.overflow_cmd >= 0:
            return ST_OVERFLOW
        for pe in range(n_pes):
            if self.sram_live[pe] > self.sram_peak[pe]:
                self._new_peak(pe)
        if self.n_done < n_cmds:
            return ST_DEADLOCK
        return ST_OK

    def run(self):
        """Run to completion; returns a status code (see STATUS). If a signal handler raises
        during the loop (Ctrl-C: KeyboardInterrupt), frees the C state and raises that exception."""
        cdef int st
        self._check_live()
        # Python runs signal handlers in the main thread only: elsewhere, never take the GIL.
        signal_poll_start(&self.poll, -1)
        with nogil:
            st = self._loop()
        if st == ST_INTERRUPTED:
            self._free_state()
            signal_poll_raise(&self.poll)
        return st

    @property
    def now_cycle(self):
        return self.now

    def start_end_copies(self):
        """The steady-state jumps' copies of start and end cycles, (k, COPY_COLS) int64, in
        order: what :func:`apply_copies` writes into ``cmd_start_arr`` and ``cmd_end_arr``."""
        out = np.zeros((self.ff_copies.n // COPY_COLS, COPY_COLS), np.int64)
        cdef int64_t[:, ::1] o = out
        if self.ff_copies.n:
            memcpy(&o[0, 0], self.ff_copies.p, self.ff_copies.n * sizeof(int64_t))
        return out

    def queue_positions(self):
        """(n_pes * N_UNITS,) int64: each unit's next position in ``unit_q``."""
        out = np.zeros(self.hw.n_pes * N_UNITS, np.int64)
        cdef int64_t i
        if self.units != NULL:
            for i in range(self.hw.n_pes * N_UNITS):
                out[i] = self.units[i].q_pos
        return out

    def debug_counters(self):
        """Invariant counters (debug build only; zeros otherwise)."""
        cdef int64_t bad = 0
        cdef int32_t c
        if self.chans != NULL:
            for c in range(self.hw.n_cubes):
                bad += self.chans[c].bad
        return {"stale_events": self.dbg.stale_events, "max_heap": self.dbg.max_heap,
                "time_regressions": self.dbg.time_regressions, "dma_invariant_errors": bad}

    def debug_break_dma(self, int64_t cycle):
        """Debug build, for tests of the invariant checks: the first DMA request issued at or
        after ``cycle`` marks its cube's channel broken, as _dma.pyx's check of an epoch does.
        Raises RuntimeError on the release build, which has no checks."""
        if not KB_DEBUG:
            raise RuntimeError("debug_break_dma: the release build has no invariant checks")
        if cycle < 0:
            raise ValueError(f"debug_break_dma: cycle must be >= 0, got {cycle}")
        self.dbg.break_from = cycle + 1

    def broken_invariant(self):
        """(name, cycle, cube or -1) of the invariant that stopped a debug-build run, or None."""
        names = {INV_TIME_REGRESSION: "an event popped before the current cycle",
                 INV_DMA_EPOCH: "a closed-form DMA epoch disagreed with its bookkeeping",
                 INV_RING: "a link's credit ring held a live slot outside its newest packets"}
        if self.dbg.broken == INV_NONE:
            return None
        return (names[self.dbg.broken], self.dbg.broken_at,
                self.dbg.broken_obj if self.dbg.broken == INV_DMA_EPOCH else -1)

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
                nxt[i] = self.units[i].q_base + self.unit_q[self.units[i].q_pos]
        shape = (self.hw.n_pes, N_UNITS)
        return state.reshape(shape), cur.reshape(shape), nxt.reshape(shape), wait.reshape(shape)

    def link_states(self):
        """Per link: (send in progress, recv posted, sender waiting for a credit, the cycle the
        last packet of the send in progress started: -1 without a send in progress).

        The last: a send in progress has sent full packets only (its last, maybe short, ends it),
        so its last started packet began a full packet's serialisation before the wire came
        free (``e = s + ser``, both details); with none of its own sent yet, that of the
        message before, which started before that message ended."""
        cdef int64_t full
        self._check_live()
        n = self.hw.n_pes * N_PORTS
        tx = np.array([self.links[i].tx_cmd for i in range(n)], np.int64)
        rx = np.array([self.links[i].rx_cmd for i in range(n)], np.int64)
        waiting = np.array([self.links[i].tx_waiting for i in range(n)], np.int32)
        full = packet_cycles(&self.hw, self.hw.packet_bytes)
        started = np.array([self.links[i].tx_e_prev - full if self.links[i].tx_cmd >= 0 else -1
                            for i in range(n)], np.int64)
        return tx, rx, waiting, started


def pool_slots(row_slots, unit_q_off, int64_t n) -> int:
    """Slots of a row pool for a compact program of ``n`` rows: ``row_slots`` (tests: a few, to
    drop blocks often), else 2 per unit of every PE with commands (``unit_q_off``: the unit
    queues' offsets; a unit reads one block at a time: 64 cubes at 128K fill no block twice
    from 8 per PE on), at least 64; never more than the program's blocks, at least 1. Raises
    ValueError for a row_slots that is not a positive int."""
    cdef int64_t blocks = max(row_blocks(n), 1)
    if row_slots is not None:
        if not isinstance(row_slots, (int, np.integer)) or isinstance(row_slots, (bool, np.timedelta64)) or row_slots < 1:
            raise ValueError(f"row_slots must be a positive int, got {row_slots!r}")
        return min(int(row_slots), blocks)
    per_pe = np.diff(np.asarray(unit_q_off, np.int64)[::N_UNITS])
    return min(max(64, 2 * N_UNITS * int(np.count_nonzero(per_pe))), blocks)


def new_row_pool(int64_t slots) -> tuple:
    """An empty row pool of ``slots`` blocks for Sim(row_pool=...): (rows, blocks)."""
    blk = np.full(slots + 1, -1, np.int64)
    blk[slots] = 0
    return pages.empty(slots << _ROWS_SHIFT, COMMAND_STRUCT_DTYPE, sparse=True), blk


def row_blocks(int64_t n) -> int:
    """Blocks of 2**8 rows a Sim reads a compact program of ``n`` rows in (the last may be
    short): ceil(n / 256). Raises ValueError for n < 0."""
    if n < 0:
        raise ValueError(f"row_blocks: n must be >= 0, got {n}")
    return (n + (1 << _ROWS_SHIFT) - 1) >> _ROWS_SHIFT


def apply_copies(int64_t[::1] start, int64_t[::1] end, const int32_t[::1] unit_q,
                 const int64_t[::1] unit_q_off, const int64_t[::1] cmd_off,
                 const int64_t[:, ::1] copies) -> None:
    """Write the start and end cycles a run's steady-state jumps skipped (Sim.start_end_copies),
    in order: for each copy (i, q, e, k, dq, delta) of unit i (PE i // N_UNITS), the k commands
    of its queue from position q start ``delta`` cycles after the command dq positions before,
    and from position e end so (a queue holds indices in the PE's stream, from cmd_off). Runs
    holding the GIL, so no other thread reads the arrays half written; writing them twice writes
    the same values (a signal handler's exception, Ctrl-C: KeyboardInterrupt, stops it midway
    and propagates: the caller writes them all again). Raises ValueError on a copy outside its
    unit's queue."""
    cdef int64_t r, q, i, base, lo, hi, work = 0, left, a, z, e, dq, delta
    cdef SignalPoll poll
    if copies.shape[0] and copies.shape[1] != COPY_COLS:
        raise ValueError("apply_copies: copies must be (k, 6)")
    for r in range(copies.shape[0]):
        i = copies[r, 0]
        if not 0 <= i < unit_q_off.shape[0] - 1 or i // N_UNITS >= cmd_off.shape[0] - 1:
            raise ValueError("apply_copies: no such unit")
        lo, hi = unit_q_off[i], unit_q_off[i + 1]
        if (copies[r, 4] < 1 or copies[r, 3] < 0 or min(copies[r, 1], copies[r, 2]) - copies[r, 4] < lo
                or max(copies[r, 1], copies[r, 2]) + copies[r, 3] > hi):
            raise ValueError("apply_copies: a copy outside its unit's queue")
        work += 2 * copies[r, 3]
    signal_poll_start(&poll, work)  # (the GIL held: the check takes it again, at no wait)
    left = poll.left
    for r in range(copies.shape[0]):
        base = cmd_off[copies[r, 0] // N_UNITS]
        dq, delta = copies[r, 4], copies[r, 5]
        a, z = copies[r, 1], copies[r, 1] + copies[r, 3]
        while a < z:  # (in runs between two signal checks)
            e = signal_run_end(a, z, left)
            for q in range(a, e):
                start[base + unit_q[q]] = start[base + unit_q[q - dq]] + delta
            if signal_tick(&poll, &left, e - a):
                break
            a = e
        a, z = copies[r, 2], copies[r, 2] + copies[r, 3]
        while a < z and not poll.raised:
            e = signal_run_end(a, z, left)
            for q in range(a, e):
                end[base + unit_q[q]] = end[base + unit_q[q - dq]] + delta
            if signal_tick(&poll, &left, e - a):
                break
            a = e
        if poll.raised:
            break
    signal_poll_raise(&poll)
