# Shared C types of the engine. Every field is in cycles, bytes or counts as its comment says.
# The enums mirror kernbench/common/pe_commands.py (Opcode, Unit); api._check_build checks they agree.
from libc.stdint cimport int32_t, int64_t, uint8_t, INT64_MAX
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from cpython.pythread cimport PyThread_get_thread_ident
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.unistd cimport getpid

# 1 in the debug build (KERNBENCH_DEBUG=1 at build time: setup.py defines the macro), else 0:
# the engine's invariant checks compile away in the release build
cdef extern from *:
    """
    #ifdef KERNBENCH_DEBUG
    #define KB_DEBUG 1
    #else
    #define KB_DEBUG 0
    #endif
    """
    const int KB_DEBUG

cdef enum:
    # Opcode
    OP_LOAD = 0
    OP_STORE = 1
    OP_DOT = 2
    OP_VEC = 3
    OP_REDUCE = 4
    OP_SEND = 5
    OP_RECV = 6
    N_OPCODES = 7

cdef enum:
    # Unit: GEMM, VECTOR, DMA, then TX_<port> and RX_<port> for ports E, W, N, S
    UNIT_GEMM = 0
    UNIT_VECTOR = 1
    UNIT_DMA = 2
    UNIT_TX0 = 3
    UNIT_RX0 = 7
    N_UNITS = 11
    N_PORTS = 4
    N_VEC_OPS = 17

cdef enum:
    # Event kinds
    EV_UNIT_DONE = 0    # GEMM/VECTOR command ends (obj = pe * N_UNITS + unit)
    EV_FOLD = 1         # packet detail: one GEMM fold ends (obj = pe)
    EV_ARBITRATE = 2    # packet detail: the cube memory channel is free: grant the next burst
                        # (obj = cube)
    EV_DMA_DONE = 3     # packet detail: a DMA command's last burst has landed (obj = pe)
    EV_PKT_SENT = 4     # packet detail: a packet has left the sender (obj = link)
    EV_PKT_ARRIVE = 5   # packet detail: a packet lands in the receive queue (obj = link)
    EV_CREDIT = 6       # packet detail: a credit is back at the sender (obj = link)
    EV_TX_DONE = 7      # a send's last packet has left (obj = link)
    EV_RX_DONE = 8      # a recv's last packet is drained (obj = link)
    EV_LIMIT = 9        # train detail: a packet would start past max_cycles (never handled:
                        # popping it trips the max_cycles guard)
    EV_CHAN_DONE = 10   # train detail: the next DMA command of a cube's channel ends (obj = cube)

cdef enum:
    # Priorities: within one cycle, arbitration runs after every other event, so all requests
    # of that cycle compete (deterministic whatever the order they were pushed in).
    PRIO_NORMAL = 0
    PRIO_ARBITRATE = 2

cdef enum:
    # Unit states
    U_IDLE = 0          # no command (queue empty or not yet looked at)
    U_WAIT_OPERAND = 1  # next command waits for an operand tensor
    U_BUSY = 2          # running a command
    U_DONE = 3          # queue exhausted

cdef enum:
    # Status codes returned from the nogil loop; raised as exceptions once the GIL is back.
    ST_OK = 0
    ST_DEADLOCK = 1
    ST_MAX_CYCLES = 2
    ST_NOMEM = 3
    ST_INTERRUPTED = 4  # a Python signal handler raised (Ctrl-C: KeyboardInterrupt)
    ST_INVARIANT = 5    # debug build: an engine invariant broke (Sim.broken_invariant says which)
    ST_OVERFLOW = 6     # a unit's work counter would pass 2**63 - 1 (Sim.overflow_cmd says where)

ctypedef struct Command:
    # Mirror of pe_commands.COMMAND_DTYPE (align=True, 72 bytes).
    int64_t m           # DOT: rows of A; REDUCE: outer
    int64_t n           # DOT: cols of B; VEC: output elements; REDUCE: reduced length
    int64_t k           # DOT: inner dim; REDUCE: inner (1 = row reduction)
    int64_t nbytes      # LOAD/STORE/SEND/RECV: bytes moved
    int32_t opcode      # OP_*
    int32_t unit        # UNIT_* (checked against opcode and port)
    int32_t sub         # VEC/REDUCE: vector op cost class (VecOp)
    int32_t port        # SEND/RECV: 0..3 = E, W, N, S
    int32_t src0        # operand tensor ids local to the PE, -1 = none
    int32_t src1
    int32_t src2
    int32_t dst         # result tensor id, -1 = none
    int32_t esize       # DOT: input element bytes
    int32_t line        # kernel source line (not used by timing)

ctypedef struct Message:
    # One message of a program: a send paired with the recv that drains its link (api.pair_links).
    # api.MESSAGE_DTYPE is this struct's dtype.
    int64_t link        # the sending end: global PE * N_PORTS + port
    int64_t send        # global command index of the send
    int64_t recv        # global command index of the recv
    int64_t nbytes      # bytes carried

ctypedef struct Event:
    int64_t time        # cycle the event fires
    int64_t seq         # push order: the last tie-breaker, so pops are deterministic
    int32_t prio        # PRIO_*
    int32_t kind        # EV_*
    int32_t obj         # pe, pe * N_UNITS + unit, cube or link, by kind
    int32_t gen         # generation of obj when pushed; a stale event is skipped

ctypedef struct HwParams:
    int64_t gemm_rows           # R
    int64_t gemm_cols           # C
    int64_t gemm_acc_buffers    # accumulator buffers per cell: 1, or 2 (a fold's drain overlaps the next)
    int64_t sram_bw             # SRAM bytes/cycle (GEMM operand bound)
    int64_t lanes               # L
    int64_t log2_lanes          # ceil(log2 L): row reduction tree depth
    int64_t vec_latency         # pipeline latency per vector command
    int64_t vec_cost[N_VEC_OPS] # cycles per issue slot by VecOp
    int64_t burst_bytes         # DMA burst size
    int64_t channel_bw          # cube memory channel bytes/cycle
    int64_t dma_latency         # cycles from last burst to DMA completion
    int64_t packet_bytes        # link packet size
    int64_t link_bw             # link bytes/cycle per direction
    int64_t hop_latency         # packet (and credit) wire latency
    int64_t queue               # Q: receive queue packets = initial credits
    int64_t sram_capacity       # bytes
    int64_t max_cycles          # the run stops (ST_MAX_CYCLES) past this cycle
    int32_t n_pes
    int32_t pes_per_cube
    int32_t n_cubes
    int32_t packet_detail       # 1: one heap event per packet/burst/fold

ctypedef struct UnitCounters:
    # Per PE x unit; exposed to Python as a numpy structured array (all int64, no padding).
    int64_t busy                # cycles occupied by a command (sum of command durations)
    int64_t commands            # commands run
    int64_t work                # GEMM flops; vector elements; DMA/TX/RX bytes
    int64_t stall_operand       # cycles idle with the next command waiting on an operand
    int64_t stall_credit        # TX: cycles of a send waiting for credits (within busy)
    int64_t stall_data          # RX: cycles of a recv with no data streaming in (within busy)
    int64_t stall_arbitration   # DMA: cycles bursts waited for other PEs (within busy)

ctypedef struct LinkCounters:
    int64_t bytes               # payload bytes carried
    int64_t packets             # packets carried
    int64_t busy                # serialisation cycles
    int64_t messages            # sends carried

ctypedef struct UnitState:
    int64_t q_base              # global index of the PE's first command (queues hold indices
                                # within the PE's stream: command = q_base + unit_q[q])
    int64_t q_pos               # next index into the unit's command queue
    int64_t q_end               # end of the unit's command queue
    int64_t cur                 # global index of the running command, -1 if none
    int64_t start               # cycle the running command started
    int64_t free_since          # cycle the unit last became free (operand stall accounting)
    int64_t folds_left          # packet detail GEMM: folds still to run
    int64_t fold_cycles         # packet detail GEMM: cycles per fold
    int64_t fold_last           # packet detail GEMM: cycles of the dot's last fold
    int64_t wait_tensor         # global tensor id the next command waits for, -1 if none
    int32_t state               # U_*
    int32_t gen                 # bumped to cancel this unit's pending event

ctypedef struct DmaPort:
    # A PE's DMA engine as the cube channel sees it.
    int64_t bursts_left         # bursts of the running command not yet granted (train: not yet
                                # granted when the channel's epoch began, for its members)
    int64_t bytes_left          # packet detail: bytes not yet granted
    int64_t last_cycles         # train: channel cycles of the command's last burst
    int64_t ideal               # sum of burst cycles + latency of the running command
    int32_t requesting          # 1 while bursts_left > 0

ctypedef struct Channel:
    # One cube's shared memory channel.
    # Train detail keeps an epoch: a fixed set of requesting PEs (its members) served round
    # robin from t0, every burst full until the first member to reach its last burst (the
    # finisher) is granted it. The epoch ends when that burst leaves (fin_end); a request that
    # arrives before cuts it. See _dma.pyx.
    int64_t busy_until          # packet: cycle the burst being served ends
    int64_t t0                  # train: cycle of the epoch's first grant (no members: cycle the
                                # channel became free)
    int64_t fin_idx             # train: grants of the epoch before the finisher's last burst
    int64_t fin_end             # train: cycle the finisher's last burst leaves the channel
    int64_t ev_time             # train: cycle of the scheduled EV_CHAN_DONE, -1 if none
    int32_t* members            # train: the epoch's members (local PEs) in round-robin order
    int32_t* fq_pe              # train: ring of local PEs whose last burst has left (in order)
    int64_t* fq_t               # train: the cycle each of their commands ends
    int32_t k                   # train: members of the epoch, 0 while the channel is idle
    int32_t fin                 # train: the finisher's index in members
    int32_t fq_head             # train: first entry of the ring
    int32_t fq_len              # train: entries in the ring
    int32_t last                # local PE served last (round-robin pointer)
    int32_t pending             # packet: 1 while an EV_ARBITRATE is scheduled
    int32_t gen                 # bumped to cancel the scheduled EV_ARBITRATE or EV_CHAN_DONE
    int32_t n_requesting        # PEs with bursts pending
    int32_t bad                 # debug build: broken invariants of the train epochs

ctypedef struct LinkState:
    # One direction of one SFR link: sender (src, port) -> receiver (dst, opposite port).
    int64_t tx_cmd              # global index of the send being sent, -1 if none
    int64_t tx_start            # T: cycle the send started
    int64_t tx_pkts_left        # packets of the send not yet started
    int64_t tx_bytes_left       # packet detail: bytes of the send not yet started
    int64_t tx_ser_full         # train: serialisation cycles of a full packet
    int64_t tx_ser_last         # train: serialisation cycles of the send's last packet
    int64_t tx_e_prev           # cycle the wire is free (end of the last packet)
    int64_t tx_next             # link-global index of the next packet to start
    int64_t tx_slot             # train: tx_next % Q, kept as a running index (no division)
    int64_t rx_cmd              # global index of the posted recv, -1 if none
    int64_t rx_post             # r: cycle the recv was posted
    int64_t rx_first            # link-global index of the recv's first packet
    int64_t rx_end              # one past its last packet
    int64_t rx_next_first       # first packet of the next recv
    int64_t rx_drained          # packet detail: packets drained (link-global count)
    int64_t rx_last_drain       # d of the last packet drained
    int64_t rx_arrived          # packet detail: packets in the queue or drained
    int64_t* cred               # train: ring of Q credit-return cycles (-1 = not known yet)
    int64_t* arr                # train: ring of Q arrival cycles of undrained packets
    int64_t cur_bytes           # packet detail: bytes of the packet on the wire
    int32_t credits             # packet detail: credits held by the sender
    int32_t serialising         # packet detail: 1 while a packet is on the wire
    int32_t tx_waiting          # 1 while the send waits for a credit
    int32_t src                 # sender PE
    int32_t dst                 # receiver PE, -1 if the port has no neighbour
    int32_t port                # sender port

ctypedef struct EventHeap:
    Event* data
    int64_t size
    int64_t capacity
    int64_t seq                 # next sequence number

# -- signals (Ctrl-C) --------------------------------------------------------------------------
# The engine's loop and the long C passes before and after it (the program checks and queues,
# _check; the tl.range tilings' reads, _replay; the jumps' copies, _engine.apply_copies) run
# without the GIL, so Python's signal handlers cannot run during them. Each counts its work items
# (heap events, train packets, rows) in a local kept in a register (signal_tick, per item or per
# run of items: signal_run_end; the engine's loop and train detail count inline); every `period`
# of them, check(p) (_check_signals) takes the GIL
# briefly and runs the handlers (PyErr_CheckSignals). When one raises, check returns 1 and keeps
# the exception: the loop stops with an error code (the engine: ST_INTERRUPTED) and the caller
# raises it with signal_poll_raise once the GIL is back. Python runs signal handlers in the main
# thread only: elsewhere, signal_poll_start sets `left` to INT64_MAX, which never counts down to 0,
# and the GIL is never taken.
#
# Work items between two checks: 2**16 is ~2-4 ms of packet-detail events (30-60 ns each) in the
# release build, and less of rows (5-30 ns each); one check (take the free GIL,
# PyErr_CheckSignals) costs about a microsecond. While another thread holds the GIL (pure
# Python), taking it waits up to the switch interval (5 ms): the period then doubles until that
# wait is below 1/128 of the loop time between checks, up to 2**23 (~0.5 s), and halves back once
# it is below 1/1024.
cdef enum:
    SIGNAL_PERIOD = 1 << 16
    SIGNAL_PERIOD_MAX = 1 << 23

cdef struct SignalPoll
ctypedef int (*signal_check_fn)(SignalPoll* p) noexcept nogil

cdef struct SignalPoll:
    int64_t left                # work items before the next check (the engine: train packets;
                                # its loop counts heap events in a local of its own)
    int64_t period              # work items between checks (longer while the GIL is contended)
    double last                 # monotonic seconds when the previous check ended
    signal_check_fn check       # _check_signals (takes the GIL)
    PyObject* exc               # the exception a handler raised (a reference owned here until
                                # signal_poll_raise raises it), else NULL
    int32_t raised              # 1 once a handler has raised


cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef inline int _check_signals(SignalPoll* p) noexcept nogil:
    # The check: run Python's signal handlers; 1 if one raised (its exception kept in p.exc).
    # Then the period adapts to the GIL's wait.
    cdef double t0 = monotonic(), t1, wait, span
    with gil:
        t1 = monotonic()
        try:
            PyErr_CheckSignals()
        except BaseException as e:
            if p.exc == NULL:
                Py_INCREF(e)
                p.exc = <PyObject*> e
            p.raised = 1
    if p.raised:
        return 1
    wait = t1 - t0
    span = t0 - p.last
    if wait * 128 > span:
        if p.period < SIGNAL_PERIOD_MAX:
            p.period *= 2
    elif wait * 1024 < span and p.period > SIGNAL_PERIOD:
        p.period //= 2
    p.left = p.period
    p.last = monotonic()
    return 0


cdef extern from *:
    """
    /* kernbench _types.pxd, signal_poll_start: the main thread's ident, in the process it is of
       (each module keeps its own; -1: not looked up yet) */
    static unsigned long kernbench_main_ident = 0;
    static long kernbench_main_pid = -1;
    """
    unsigned long kb_main_ident "kernbench_main_ident"
    long kb_main_pid "kernbench_main_pid"


cdef inline int signal_poll_start(SignalPoll* p, int64_t work) except -1:
    # With the GIL, before a loop of about `work` items (-1: not known): checks every period on the
    # main thread, none elsewhere nor when the loop ends before the first would come. No Python
    # code runs here but the first time in a process (its main thread's ident, then kept: a
    # forked child's main thread is the one that forked), so a signal that is pending as the
    # loop starts is seen by its first check.
    global kb_main_ident, kb_main_pid
    p.check = _check_signals
    p.exc = NULL
    p.raised = 0
    p.period = SIGNAL_PERIOD
    p.left = INT64_MAX
    p.last = 0
    if work >= 0 and work < SIGNAL_PERIOD:
        return 0
    if kb_main_pid != getpid():
        import threading
        kb_main_ident = threading.main_thread().ident
        kb_main_pid = getpid()
    if PyThread_get_thread_ident() == kb_main_ident:
        p.left = SIGNAL_PERIOD
        p.last = monotonic()
    return 0


cdef inline int signal_poll_raise(SignalPoll* p) except -1:
    # With the GIL, after the loop: raise the exception a handler raised during it, if any.
    cdef object exc
    if p.exc == NULL:
        return 0
    exc = <object> p.exc
    Py_XDECREF(p.exc)  # (exc holds its own reference)
    p.exc = NULL
    raise exc


cdef inline bint signal_tick(SignalPoll* p, int64_t* left, int64_t k) noexcept nogil:
    # k more work items done, counted down in *left (the loop's local copy of p.left: inlined, a
    # register); every p.period items, the check. 1 when a handler raised: the loop must stop.
    left[0] -= k
    if left[0] > 0:
        return 0
    if p.check(p):
        return 1
    left[0] = p.left
    return 0


cdef inline int64_t signal_run_end(int64_t i, int64_t y, int64_t left) noexcept nogil:
    # A loop too tight for a count per item runs its items i..y in runs that end where the next
    # check is due (left: its count), signal_tick(p, &left, run length) after each: nothing is
    # added per item. (Off the main thread left is INT64_MAX: one run.)
    return i + left if y - i > left else y


cdef inline int poll_signals(SignalPoll* p) noexcept nogil:
    # One train packet computed; 1 when a signal handler has raised and the run must stop. Off the
    # main thread (where Python runs no handlers) left starts at INT64_MAX and never reaches 0.
    p.left -= 1
    if p.left > 0:
        return 0
    return p.check(p)
