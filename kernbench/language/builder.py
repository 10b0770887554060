# cython: annotation_typing=False
# (builder.pxd declares the builder's C types; the annotations below are documentation)
"""The builder: turns checked ``tl`` calls into one PE's command stream.

One :class:`PEBuilder` per traced program. It assigns tensor ids (SSA: one producer each) and SRAM
addresses, and records each command as four ints: its *site* and its three operand tensor ids.

A site is everything static about a command, interned in the launch's :class:`SiteTable`: the
kernel line, the op, the shapes and dtypes (see kernbench.language.sites). Every field of a command but
its operands follows from its site (opcode, unit, sizes, bytes, line: :func:`site_fields`), and
its result tensor id is the running count of results, so the four ints are the whole command.
Thousands of commands share one site, so naming a command later (labels, errors, Perfetto) costs
the 4-byte site index the launch keeps per command.

The recorded ints move every ``FLUSH_EVERY`` tensors into the launch's :class:`TraceStore`: one
growing COMMAND_DTYPE array that becomes the Program's, so commands are held as Python objects
only briefly, and none is copied once it is an array.

In functional mode a second record, the command's replay metadata, is kept per command: what
replay needs to compute the value. Layout, ``(kind, file, line, ...)`` by kind:

- ``load``:   alloc, element offset, shape, row stride or None, dtype, mask spec or None,
  other (a spec, a Python number or None)
- ``store``:  src spec, alloc, element offset, shape, row stride or None, mask spec or None
- ``dot``:    spec a, spec b, shape a, shape b, dtype a, dtype b
- ``vec``:    op name, operands (specs, or immediates: float, or numpy int64 for ints), out shape,
  out dtype, compute dtype, what is not an operand (fill value, arange bounds, cast saturate)
- ``reduce``: op name, src spec, in shape, axis (None = all), out dtype
- ``send``:   src spec, port, shape, dtype
- ``recv``:   port, shape, dtype

A spec is a tensor number (the tensor's index on its PE: its id minus the builder's ``base``),
or ``(number, shape, transposed)`` for a view (see PEBuilder.operand). While a program is
traced, tensor numbers index ``tensors``: (buffer shape, dtype, element count).
An elementwise result of its operand's shape and dtype shares the operand's tuple, so the table
costs about a pointer per tensor; it holds no handle, so the handles the kernel drops are freed
at once (functional mode keeps them, for replay). Once the program is finished only the byte
sizes (and, in functional mode, weak references to the handles) remain.
"""
from __future__ import annotations

import os
import weakref

import numpy as np

from ..common.pe_commands import COMMAND_DTYPE, TensorHandle
from ..hw.config import ENGINE_MAX_SIZE
from . import semantic
from .numerics import RIGHT_CHECKED, check_right, vec_value, view_value
from .semantic import ITEMSIZE, MAX_ELEMENTS as _MAX_ELEMENTS, ReplayedPast, TransposedView, line_of
from .sites import REDUCE_SUB, VEC_SUB, SiteTable, label_of, reduce_geometry, site_fields
from .store import TensorTable, TraceStore, join_sizes
from ._caller import frame_code, frame_lasti, this_thread
from ._handles import handle_id, handle_shape, new_handle

__all__ = ["PEBuilder", "SiteTable", "TraceStore", "SRAM_ALIGN", "FLUSH_EVERY", "label_of",
           "host_memory", "table_bytes", "TABLE_BYTES_PER_COMMAND", "TABLE_BYTES_PER_TENSOR",
           "REPLAY_BYTES_PER_COMMAND",
           "site_fields", "VEC_SUB", "REDUCE_SUB"]

semantic.register_internal(__file__)

#: SRAM addresses are handed out in program order at this alignment (a naming aid: the engine
#: owns liveness, so addresses are unique per PE and never reused).
SRAM_ALIGN = 64
_PAD, _ALIGNED = SRAM_ALIGN - 1, -SRAM_ALIGN
#: Highest running SRAM top a tensor may start at (bytes): one more tensor of at most 2**40
#: bytes then stays within the 64-bit top (builder.pxd). tl.range replays no further
#: (kernbench.language.loops).
SRAM_TOP_MAX = 1 << 62
_TOP_MAX = SRAM_TOP_MAX

#: Largest tensor (elements) computed while tracing when its operands are known, and largest
#: tl.full that seeds such a computation: index vectors and masks, not tiles.
KNOWN_MAX = 1 << 20
KNOWN_FILL_MAX = 1 << 12

MAX_TENSOR_BYTES = ENGINE_MAX_SIZE  #: the engine's bound on a tensor's bytes (kernbench._core.api)


def host_memory() -> int:
    """The memory this process may take, bytes: the host's physical memory (16 GiB where the
    OS does not say), or less where an address-space limit (``ulimit -v``) or the cgroup's
    ``memory.max`` says so."""
    try:
        n = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        n = 16 << 30
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            n = min(n, soft)
    except (ImportError, AttributeError, ValueError, OSError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text.isdigit():
            n = min(n, int(text))
    except (OSError, ValueError):
        pass
    return n


def bytes_text(x: int) -> str:
    """``x`` bytes as GiB, MiB, KiB or bytes, for messages about host memory."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if x >= 1 << shift:
            return f"{x / 2 ** shift:,.1f} {unit}"
    return f"{x:,} bytes"


def past_memory(b, n_commands: int, n_tensors: int, what: str = "", literal: int = 0) -> str:
    """Why program ``b`` is refused at ``n_commands`` commands in its launch (``literal`` of
    them held as traced rows) and ``n_tensors`` tensors of its own (``what``: how it got
    there)."""
    functional = bool(getattr(b, "functional", False))
    per = (" (functional mode keeps each command's replay record too: use mode='timing' for "
           "the cycles alone)" if functional else "")
    return (f"{what}this launch would hold {n_commands:,} commands and this PE {n_tensors:,} "
            f"tensors: their tables take at least "
            f"{bytes_text(table_bytes(n_commands, n_tensors, functional, literal))}, more than the "
            f"{bytes_text(b.max_table_bytes)} of memory this process may take{per} "
            f"(docs/reliability.md)")


def value_budget() -> int:
    """Most bytes one tensor may take in functional mode: an eighth of the host's physical
    memory (replay holds the live values and computes some in f32 beside them)."""
    return min(MAX_TENSOR_BYTES, max(host_memory() // 8, 1 << 20))


#: What a launch's tables keep per command and per tensor, bytes, at least (the command array's
#: sites, each command's unit, queue slot, start and end; each tensor's size index
#: (Program.sizes), pin, ready flag and reader counts, the checks' and the engine's): 38M
#: commands and 34M tensors peak at 1.15 GB (docs/benchmarks.md, 64 cubes).
TABLE_BYTES_PER_COMMAND = 32
TABLE_BYTES_PER_TENSOR = 12
#: What functional mode keeps per command besides, at least: its replay record (a tuple of the
#: op's metadata), its share of the completion order and of the values' bookkeeping; a kernel
#: of tiny tensors measured 813-832 bytes a command in all (docs/reliability.md)
REPLAY_BYTES_PER_COMMAND = 768
#: What a traced command (not one tl.range replay tiled) keeps besides: its COMMAND_DTYPE row,
#: which the launch's program holds (an unrolled kernel's 67M commands took 4.8 GB of rows
#: where the bound without them said 2.1: a review)
LITERAL_BYTES_PER_COMMAND = COMMAND_DTYPE.itemsize


def table_bytes(n_commands: int, n_tensors: int, functional: bool = False, literal: int = 0) -> int:
    """A lower bound on the bytes a launch of ``n_commands`` commands (``literal`` of them held
    as traced rows) and ``n_tensors`` tensors keeps in its tables (``functional``: with
    replay's record of every command). Tracing refuses a program past the host's memory with
    it (PEBuilder, tl.range replay) before it takes that memory."""
    per = TABLE_BYTES_PER_COMMAND + (REPLAY_BYTES_PER_COMMAND if functional else 0)
    return (n_commands * per + n_tensors * TABLE_BYTES_PER_TENSOR
            + literal * LITERAL_BYTES_PER_COMMAND)


#: Tensors a program makes between two moves of its recorded commands into the TraceStore: a
#: bound on the Python lists a program holds.
FLUSH_EVERY = 1 << 14
#: plans kept per kind (vec, dot, reduce) in a launch: past it they are dropped and made again
#: as met (sites stay interned: the same commands), so a kernel making code objects as it runs
#: (exec, a function compiled per call) does not keep one plan per call
PLANS_MAX = 1 << 14
_FLUSH_MASK = FLUSH_EVERY - 1
if semantic.TENSORS_PER_PE % FLUSH_EVERY or semantic.TENSORS_PER_PE <= 0:  # (the flush checks it)
    raise ImportError(f"kernbench.language.builder: semantic.TENSORS_PER_PE must be a positive "
                      f"multiple of FLUSH_EVERY ({FLUSH_EVERY}), got {semantic.TENSORS_PER_PE}")
#: Commands recorded between two moves when they make no tensor (stores and sends): those
#: moved and the launch's memory checked (_flush) at this many too (a review: a loop of
#: stores grew the pending rows without bound, then failed with numpy's MemoryError)
_PENDING_MAX = 4 * FLUSH_EVERY

#: Handles are made in C, field by field (a tl call makes one; the dataclass __init__ costs a
#: Python frame): TensorHandle must stay a plain dataclass with exactly these fields and no
#: __post_init__ for that to equal calling it (_handles.new_handle reads the slots' layout).
if hasattr(TensorHandle, "__post_init__") or TensorHandle.__slots__ != (
        "id", "addr", "shape", "dtype", "nbytes", "data", "space", "pinned", "__weakref__"):
    raise ImportError("kernbench.language.builder makes TensorHandles field by field: "
                      "TensorHandle must be a slotted dataclass of exactly id, addr, shape, dtype, "
                      "nbytes, data, space, pinned and no __post_init__")


class UnknownValue:
    """In ``PEBuilder.known``, the value of a tensor tl.range replay emitted that full tracing
    knows (a tl.arange mask a handle kept past the loop names) but replay did not move on: it
    differed from iteration to iteration (loops._plan). Reading it calls ``on_read``, which
    raises (the launch is traced again with that loop in full: loops._unknown_read), so a
    value nothing reads costs the loop nothing (a review: the tutorials' `cols = off +
    tl.arange(0, B)`, left bound after the loop, had it traced in full)."""

    __slots__ = ("on_read",)

    def __init__(self, on_read) -> None:
        self.on_read = on_read


class PEBuilder:
    """Commands, tensors and metadata of one program, traced on PE (pe, cube).

    Commands go to ``trace_store`` (a :class:`TraceStore` shared by the PEs of a launch, one PE
    at a time; a private one by default). After :meth:`finish` (and the store's flush, which
    :meth:`build` and the launch do): ``cmd_start``..``cmd_end`` is the program's range in the
    store, ``tensor_bytes`` and ``tensor_pinned`` its tensor table, and in functional mode
    ``meta`` (replay metadata per command) and ``handles`` (a weak reference per tensor id)."""

    def __init__(self, pe: int, cube: int, g: int, *, functional: bool, memory, nbr, sfr_text: str,
                 store: TraceStore | None = None, serial: int | None = None):
        self.pe, self.cube, self.g = pe, cube, g
        #: the kernel's file (set by the launch): its errors name lines beside it as the user's
        self.kernel_file = None
        #: the thread tracing this program: a tl call from another thread is refused
        self.thread = this_thread()
        #: the launch's serial; tensor k of this program has id ``base + k`` (semantic.id_base)
        self.serial = semantic.next_launch_serial() if serial is None else serial
        self.base = semantic.id_base(self.serial, pe, cube)
        #: (tensor number, shape) of every transposed view tl.trans made (the only legal ones)
        self.transposed = TransposedViews()
        #: largest tensor (bytes) this program may make: the engine's bound, and in functional
        #: mode what the host can hold as a numpy value
        self.max_bytes = value_budget() if functional else MAX_TENSOR_BYTES
        #: tensors this program may make: the numbers a tensor id holds (semantic.TENSORS_PER_PE,
        #: a multiple of FLUSH_EVERY: the flush before tensor k * FLUSH_EVERY checks it)
        self.max_tensors = semantic.TENSORS_PER_PE
        #: what the launch's tables may take (table_bytes): the host's memory
        self.max_table_bytes = host_memory()
        #: tensor number -> value, for tensors computed from constants while tracing (tl.arange
        #: and the index arithmetic and masks built on it): masked accesses are checked at trace
        self.known: dict = {}
        self.fills: dict = {}  #: tensor number -> (shape, dtype, value) of small tl.full tensors
        #: tensor number -> (name, operands, ct, shape, dtype, imm): a value of known operands,
        #: computed when something reads it (known_value). Most are never read: a causal mask
        #: (tl.arange, //, >=) feeds a tl.where on scores, whose value is not known.
        self.lazy: dict = {}
        #: by tensor number, 1 for each ever put in known, lazy or fills (mark_valued): one
        #: byte read per operand of each vec command, not three dict lookups (a kernel's
        #: accumulators are fills, so every command asks); a superset: a lazy one whose value
        #: turned out unknown stays. Empty until the first.
        self.valued = bytearray()
        self.functional = functional
        self.memory = memory  #: DeviceMemory: pointer lookups for loads and stores
        self.nbr = tuple(int(q) for q in nbr)  #: this PE's row of the SFR neighbour table
        self.sfr_text = sfr_text
        self.trace_store = store = TraceStore() if store is None else store
        self.site_table = store.table
        #: by tensor number: (buffer shape, dtype, element count), shared between tensors alike
        #: (a replayed loop's kept as its body and count)
        self.tensors = TensorTable()
        self.pinned: list = []  #: ids of pinned tensors (rare, so kept sparse)
        self.meta: list | None = [] if functional else None
        self.sram_top = 0
        store.begin(self)
        self.cmd_start = self.cmd_end = store.n_traced
        self.n_tensors = 0
        self.tensor_pinned = self.handles = None
        self.finished = False
        self._tb_parts: list = []  #: tensor byte sizes, an array per flush (set by the store)
        #: functional mode: the handles themselves, for replay (their ids stay unique meanwhile)
        self._keep: list | None = [] if functional else None
        #: functional mode: the views tl calls made, (handle, tensor number, spec): replay gives
        #: each the value it reads of its buffer (``views`` once finished)
        self._views: list | None = [] if functional else None
        self.views = None
        # The store's pending rows and bound methods: the hot path is a few of these per tl call.
        self._pending = store.pending
        self._meta = self.meta.append if functional else None
        self._sget = self.site_table.index.get
        plans = self.site_table.plans
        self._vec_plans, self._dot_plans = plans["vec"], plans["dot"]
        self._reduce_plans, self._other_plans = plans["reduce"], plans["other"]
        self._entries = self.site_table.entries
        #: tl.range (kernbench.language.loops), while a loop proves its repetition: the handles
        #: made (every one, views included) and the loads and stores (allocation, element
        #: offset, shape, stride)
        self._track = self._acc = None
        #: (file, line, iteration, index) of a tl.range loop left before its end in verify
        #: mode's full pass (break/return in the body): tracing then fails, naming it
        self.left_range = None
        #: [file, line, index] of each tl.range loop running, outermost first (for errors)
        self.ranges = []
        #: a check of an iteration cut short by an error (loops.check_cut_short), or None
        self.cut_short = None
        #: weak references to this program's tl.range generators, in the order made: one the
        #: kernel keeps past its end (in a global) is closed as the program ends (loops.close_kept)
        self.opened = []
        #: why the last tl.range proof refused the loop, when it says (loops._plan), or None
        self.plan_why = None

    @property
    def n_commands(self) -> int:
        if self.finished:
            return self.cmd_end - self.cmd_start
        return self.trace_store.n_traced - self.cmd_start

    @property
    def tensor_bytes(self) -> np.ndarray:
        """Byte size of each tensor (once finished and flushed)."""
        if self.finished:
            self.trace_store.flush()
        tb = join_sizes(self._tb_parts)
        if len(tb) > 1 and len(self._tb_parts) > 1:
            self._tb_parts = [tb]
        return tb

    @property
    def commands(self) -> np.ndarray:
        """This program's commands (COMMAND_DTYPE), once finished."""
        return self.trace_store.slice(self.cmd_start, self.cmd_end)[0]

    @property
    def sites(self) -> np.ndarray:
        """This program's site indices (into ``site_table``), once finished."""
        return self.trace_store.slice(self.cmd_start, self.cmd_end)[1]

    def _too_big(self, shape: tuple, dtype: str, nbytes: int):
        """A tensor larger than the engine represents, or (functional mode) than this host can
        hold as a value: refused before anything runs, naming the PE and line."""
        if self.functional:
            semantic.fail(self, f"a {semantic.fmt_shape(shape)} {dtype} tensor is {nbytes:,} bytes: "
                                f"functional mode holds every value in host memory, and one tensor may "
                                f"take at most {self.max_bytes:,} bytes (an eighth of this host's "
                                f"memory); use mode='timing' (shapes only) or smaller tiles")
        semantic.fail(self, f"a {semantic.fmt_shape(shape)} {dtype} tensor is {nbytes:,} bytes: at most "
                            f"2**40 (what the engine's byte counters represent)")

    def _flush(self, i: int) -> None:
        """Move the recorded commands into the store's arrays, before tensor number ``i`` (a
        multiple of FLUSH_EVERY) is made, or with ``i`` tensors made when _PENDING_MAX commands
        that make none wait; refuse it past the tensor numbers an id holds, or when the
        launch's tables would take more than the host's memory (table_bytes)."""
        if i >= self.max_tensors:
            self._past_tensors()
        lit = self.trace_store.n_literal
        if table_bytes(self.trace_store.n_traced, i, self.functional, lit) > self.max_table_bytes:
            self._past_memory(self.trace_store.n_traced, i, lit)
        if self.trace_store.current is not self:
            raise RuntimeError("PEBuilders sharing a TraceStore must be traced one at a time")
        try:
            self.trace_store.flush()
        except MemoryError as e:
            # the rows' next growth could not be mapped (an address-space limit counts what a
            # growth reserves, not only what it fills): the same refusal, at this tensor
            semantic.fail(self, f"this launch's command tables could not grow past "
                                f"{self.trace_store.n_traced:,} commands ({e}); this process may "
                                f"take {bytes_text(self.max_table_bytes)} (docs/reliability.md): "
                                f"fewer commands (tl.range loops replay theirs), or more memory")

    def _site(self, key: tuple) -> int:
        j = self._sget(key)
        return self.site_table.add(key) if j is None else j

    def _memo(self, plans: dict, f, parts: tuple):
        """The plan made before for a call at frame ``f`` made of ``parts`` (made the
        instruction's latest, ``plans[offset]``), or None if there is none yet.

        Plans are kept per (instruction, code object, parts): a call that alternates between
        a few (a loop over ports, a helper called for K then V, a softmax on full score tiles
        and on a causal diagonal's ragged ones) finds each in one lookup instead of building
        its site key again. A plan holds its code object, so the ``id`` in its key stays that
        object's while the plan is kept; at most PLANS_MAX are kept per kind."""
        lasti = frame_lasti(f)
        q = plans.get((lasti, id(frame_code(f)), parts))
        if q is not None:
            plans[lasti] = q
        return q

    def _replan(self, plans: dict, f, parts: tuple, key: tuple, extra: tuple = ()) -> tuple:
        """A new plan for a call at frame ``f`` made of ``parts`` (:meth:`_memo` found none):
        (code, *parts, site, file, line, *extra), the site's key being (key[0], file, line,
        *key[1:]); kept for :meth:`_memo` and made the instruction's latest."""
        co, lasti = frame_code(f), frame_lasti(f)
        file, line = co.co_filename, line_of(f)
        q = (co, *parts, self._site((key[0], file, line) + key[1:]), file, line, *extra)
        if len(plans) >= PLANS_MAX:
            plans.clear()
        plans[(lasti, id(co), parts)] = q
        plans[lasti] = q
        return q

    def _site_at(self, f, what: tuple) -> tuple:
        """(site, file, line) of a command ``what`` = (kind, *key after file and line) made at
        frame ``f``, from the plans of ``f``'s instruction (a few: a loop over ports or a
        helper loading K then V alternates between them)."""
        co, lasti = frame_code(f), frame_lasti(f)
        plans = self._other_plans.get(lasti)
        if plans is not None:
            for p in plans:
                if p[0] is co and p[1] == what:
                    return p[2]
        else:
            plans = self._other_plans[lasti] = []
        file, line = co.co_filename, line_of(f)
        p = (co, what, (self._site((what[0], file, line) + what[1:]), file, line))
        plans.insert(0, p)
        del plans[8:]
        return p[2]

    def _entry(self, shape: tuple, dtype: str, n: int) -> tuple:
        """The launch's one tensor-table entry (shape, dtype, n) for these values."""
        key = (shape, dtype, n)
        t = self._entries.get(key)
        if t is None:
            t = self._entries[key] = key
        return t

    def operand(self, h, what: str = "operand") -> tuple:
        """Resolve tensor operand ``h`` of a tl call -> (spec, shape, dtype, tensor number, numel).

        ``spec`` is what functional replay needs: the tensor number on this PE, or (number,
        shape, transposed) for a view. The buffer's dtype wins over the handle's (a view is a
        reshape, not a bitcast). Here the fast path, from this program's tensor table: a plain
        handle whose shape is the very tuple of its buffer (the handle a tl call returned, or a
        copy of it); and a transposed view tl.trans made (its (number, shape) among the
        builder's, its shape a tuple of ints that the buffer's element count allows). Other
        views and bad values go to semantic.operand_slow, which resolves such a handle the same
        way and words the errors ("what" names the operand)."""
        tens = self.tensors  # (None once the program ended: operand_slow refuses)
        try:
            i = handle_id(h)
            th = type(h)
            if type(i) is int and (th is TensorHandle or th is TransposedView) and tens is not None:
                i -= self.base  # (ids that are not ints: operand_slow's checks)
                if i >= 0:
                    t = tens.entry(i)
                    s = handle_shape(h)
                    if th is TensorHandle:
                        if s is t[0]:
                            return i, t[0], t[1], i, t[2]
                    elif type(s) is tuple and s:
                        n = 1  # what check_shape accepts as it is (ints: hashed safely); numel
                        for d in s:
                            if type(d) is not int or d < 1:
                                n = 0
                                break
                            n *= d
                        if (0 < n <= _MAX_ELEMENTS and (n == t[2] or not self.functional)
                                and (i, s) in self.transposed._one
                                and type(t[0]) is not ReplayedPast):  # (operand_slow refuses)
                            return (i, s, True), s, t[1], i, n
        except (AttributeError, IndexError, TypeError, OverflowError):
            pass
        return semantic.operand_slow(self, h, what)

    def _place(self, nbytes: int) -> int:
        """The SRAM address of a new tensor of ``nbytes`` (at most MAX_TENSOR_BYTES, checked by
        the caller): the next in program order, at SRAM_ALIGN. The running top is a C integer
        (builder.pxd), so this costs no Python arithmetic."""
        addr = self.sram_top
        if addr > _TOP_MAX:
            self._past_top()
        self.sram_top = addr + ((nbytes + _PAD) & _ALIGNED)
        return addr

    def skip_sram(self, nbytes: int) -> None:
        """Move the SRAM top past ``nbytes`` (aligned) handed out without :meth:`_place`: the
        tensors of the iterations tl.range replays. Same bound as :meth:`_place`."""
        top = self.sram_top + nbytes
        if top > _TOP_MAX:
            self._past_top()
        self.sram_top = top

    def _past_tensors(self):
        m = self.max_tensors
        semantic.fail(self, f"this program makes more than {m:,} tensors (2**{m.bit_length() - 1}): "
                            f"a tensor id keeps {m.bit_length() - 1} bits for the tensor's number "
                            f"on its PE, so the next would share an id with another PE's")

    def _past_memory(self, n_commands: int, n_tensors: int, literal: int = 0):
        semantic.fail(self, past_memory(self, n_commands, n_tensors, "", literal))

    def _past_top(self):
        semantic.fail(self, "this program's tensors take more than 2**62 bytes in all: SRAM "
                            "addresses past that are not represented")

    def _new(self, shape: tuple, dtype: str, n: int, nbytes: int, pinned: bool = False) -> TensorHandle:
        if nbytes > self.max_bytes:
            self._too_big(shape, dtype, nbytes)
        i = len(self.tensors)
        if not i & _FLUSH_MASK and i:
            self._flush(i)
        t = self._entry(shape, dtype, n)
        # (the entry's shape: operands resolve on `is`, PEBuilder.operand)
        h = new_handle(self.base + i, self._place(nbytes), t[0], dtype, nbytes, pinned)
        self.tensors.append(t)
        if self._track is not None:
            self._track.append(h)
        if self.functional:
            self._keep.append(h)
        if pinned:
            self.pinned.append(i)
        return h

    # -- DMA --------------------------------------------------------------------------------
    def load(self, f, alloc, e0: int, shape: tuple, n: int, dtype: str, stride, pinned=False,
             after: int = -1, mask=None, other=None):
        """DMA ``shape`` of ``alloc`` into a new tensor; ``f`` is the kernel's calling frame.
        ``mask``: (spec, tensor number) of a mask or None; ``other``: an immediate, (spec,
        tensor number) of a tensor, or None."""
        key = ("load", shape, dtype, alloc.name) if mask is None else \
            ("load", shape, dtype, alloc.name, "masked")
        # the site first: what can raise (interning a new site runs Python) before the tensor
        # and the command are recorded (a review: a RecursionError caught by the kernel left a
        # tensor without its command, and the launch failed with an AssertionError)
        j, file, line = self._site_at(f, key)
        h = self._new(shape, dtype, n, n * ITEMSIZE[dtype], pinned)
        m_id = -1 if mask is None else mask[1]
        if self._acc is not None:  # (the mask's tensor: loops._safe_iterations)
            self._acc.append((alloc, e0, shape, stride, m_id))
        o_id = other[1] if type(other) is tuple else -1
        self._pending.push(j, after, m_id, o_id)
        if self.functional:
            ospec = other[0] if type(other) is tuple else other
            self._meta(("load", file, line, alloc, e0, shape, stride, dtype,
                        None if mask is None else mask[0], ospec))
        return h

    def store(self, f, spec, src: int, alloc, e0: int, shape: tuple, n: int, stride,
              mask=None) -> None:
        key = ("store", shape, alloc.dtype, alloc.name) if mask is None else \
            ("store", shape, alloc.dtype, alloc.name, "masked")
        j, file, line = self._site_at(f, key)
        if self._pending.n >= _PENDING_MAX:  # (its refusal before this store is recorded)
            self._flush(len(self.tensors))
        if self._acc is not None:
            self._acc.append((alloc, e0, shape, stride, -1 if mask is None else mask[1]))
        self._pending.push(j, src, -1 if mask is None else mask[1], -1)
        if self.functional:
            self._meta(("store", file, line, spec, alloc, e0, shape, stride,
                        None if mask is None else mask[0]))

    # -- GEMM -------------------------------------------------------------------------------
    def dot(self, f, sa, sb, ia: int, ib: int, a_shape, b_shape, da: str, db: str,
            m: int, n: int, k: int):
        """GEMM of a ``a_shape`` and a ``b_shape`` tensor; ``f`` is the kernel's calling frame."""
        p = self._dot_plans.get(frame_lasti(f))
        if (p is None or p[0] is not frame_code(f) or (p[1] is not a_shape and p[1] != a_shape)
                or (p[2] is not b_shape and p[2] != b_shape) or p[3] is not da or p[4] is not db):
            p = self._memo(self._dot_plans, f, (a_shape, b_shape, da, db))
            if p is None:
                t = self._entry((m, n), "f32", m * n)
                p = self._replan(self._dot_plans, f, (a_shape, b_shape, da, db),
                                 ("dot", a_shape, b_shape, da, db), (t,))
        i = len(self.tensors)
        if not i & _FLUSH_MASK and i:
            self._flush(i)
        t = p[8]
        nbytes = 4 * t[2]
        if nbytes > self.max_bytes:
            self._too_big(t[0], "f32", nbytes)
        h = new_handle(self.base + i, self._place(nbytes), t[0], "f32", nbytes, False)
        self.tensors.append(t)
        if self._track is not None:
            self._track.append(h)
        self._pending.push(p[5], ia, ib, -1)
        if self.functional:
            self._keep.append(h)
            self._meta(("dot", p[6], p[7], sa, sb, a_shape, b_shape, da, db))
        return h

    # -- VECTOR -----------------------------------------------------------------------------
    def vec(self, f, name: str, operands: tuple, s0: int, s1: int, s2: int,
            shape: tuple, n: int, dtype: str, like: tuple | None = None, ct: str | None = None,
            imm=None):
        """Elementwise ``name`` (a VEC_SUB key) -> a ``shape``/``dtype`` tensor of ``n``
        elements; ``f`` is the kernel's calling frame. ``like``: an operand's entry in
        ``tensors`` when it is exactly (shape, dtype, n), to share. ``ct``: the compute dtype
        (default ``dtype``); ``imm``: what is not an operand (numerics.vec_value)."""
        # _new inlined: this is the most frequent command.
        i = len(self.tensors)
        if not i & _FLUSH_MASK and i:
            self._flush(i)
        nbytes = n * ITEMSIZE[dtype]
        if nbytes > self.max_bytes:
            self._too_big(shape, dtype, nbytes)
        # The site: the one this instruction made last time when made of the same objects
        # (shapes are shared tuples, names and dtypes interned strings), else built and interned.
        p = self._vec_plans.get(frame_lasti(f))
        if (p is None or p[0] is not frame_code(f) or p[1] is not name
                or (p[2] is not shape and p[2] != shape) or p[3] is not dtype):
            p = self._memo(self._vec_plans, f, (name, shape, dtype))
            if p is None:
                p = self._replan(self._vec_plans, f, (name, shape, dtype), ("vec", name, shape, dtype),
                                 (self._entry(shape, dtype, semantic.numel(shape)),
                                  name in RIGHT_CHECKED))  # (p[8]: checked when the left is not known)
        if like is None:
            like = p[7]  # the launch's entry for the site's result (see _entry)
            if like[2] != n:  # (a timing-mode view of another size)
                like = self._entry(shape, dtype, n)
        fold = False
        if operands and self.valued:
            # (a fill or an arange: seed() says whether it is known). Most commands read no
            # known value: one byte per operand says so (a divisor's check aside: it goes
            # whenever the divisor is known). Arithmetic on fills alone is folded too (a
            # review: `(tl.full(...) + 1) > 0` as a mask went unchecked in timing mode unless an
            # unrelated tl.arange came first); an accumulator's first update (tl.zeros(...) *
            # 0.5) kept past a tl.range loop is a known value replay goes on with unknown.
            if p[8] and len(operands) == 2:  # (p[8]: name in RIGHT_CHECKED)
                # a known divisor or shift count, checked before anything is recorded (a
                # review: the command stayed in the program of a kernel catching the error)
                self.check_right(name, operands[1], ct or dtype)
            # (s0..s2: the tensor operands' numbers, the command's sources)
            fold = self._valued(s0, s1, s2)
        # Nothing below raises: the tensor and its command are recorded together or not at all.
        # (the entry's shape: operands resolve on `is`, PEBuilder.operand)
        h = new_handle(self.base + i, self._place(nbytes), like[0], dtype, nbytes, False)
        self.tensors.append(like)
        if self._track is not None:
            self._track.append(h)
        self._pending.push(p[4], s0, s1, s2)
        if self.functional:
            self._keep.append(h)
            self._meta(("vec", p[5], p[6], name, operands, shape, dtype, ct or dtype, imm))
        if fold:
            self._fold(i, name, operands, shape, n, dtype, ct or dtype, imm)
        return h

    def _valued(self, s0: int, s1: int, s2: int) -> bool:
        """Whether every tensor operand of a vec command (its numbers ``s0``, ``s1``, ``s2``, -1
        for none) has a value known, lazy or filled while tracing: the only case in which
        :meth:`_fold` records the result."""
        valued = self.valued
        n = len(valued)
        return ((s0 < 0 or (s0 < n and valued[s0] != 0)) and (s1 < 0 or (s1 < n and valued[s1] != 0))
                and (s2 < 0 or (s2 < n and valued[s2] != 0)))

    def mark_valued(self, i: int) -> None:
        """Tensor number ``i`` is in known, lazy or fills (:attr:`valued`)."""
        valued = self.valued
        k = len(valued)
        if i >= k:
            valued.extend(bytes(max(i + 1 - k, k)))  # (doubling)
        valued[i] = 1

    def seed(self, i: int, name: str, shape: tuple, dtype: str, imm) -> None:
        """Tensor ``i`` (an arange, or a fill) has a value known while tracing. An arange is
        computed now; a small fill is remembered and computed only if a fold reads it (kernels
        fill accumulators all the time, and a fill alone never makes a mask)."""
        n = semantic.numel(shape)
        if name == "arange" and n <= KNOWN_MAX:
            self.known[i] = vec_value(name, [], dtype, shape, dtype, imm)
            self.mark_valued(i)
        elif n <= KNOWN_FILL_MAX:
            self.fills[i] = (shape, dtype, imm)
            self.mark_valued(i)

    def _from_fill(self, i: int):
        shape, dtype, imm = self.fills[i]
        with np.errstate(all="ignore"):  # (see _force)
            v = self.known[i] = vec_value("fill", [], dtype, shape, dtype, imm)
        return v

    def check_right(self, name: str, o, ct: str) -> None:
        """Refuse right operand ``o`` (a tensor number, a view's spec or an immediate) of
        ``name`` (in RIGHT_CHECKED) computed in ``ct`` when its value is known while tracing and
        wrong (a divisor of 0, a shift count outside 0..31), even when the other operand is not
        known (a load divided by a tl.arange): the error full replay would raise, raised at
        trace, before the command is recorded (:meth:`vec`; tl.cdiv before its first command)."""
        b = self._value(o)
        if b is not None:
            try:
                check_right(name, ct, b)
            except ArithmeticError as e:
                semantic.fail(self, str(e))

    def _fold(self, i: int, name: str, operands: tuple, shape: tuple, n: int, dtype: str,
              ct: str, imm) -> None:
        """Tensor ``i``, whose every operand has a value known while tracing (:meth:`_valued`),
        is known too (semantic: masks of tl.arange): computed when read (known_value), not now.
        Called once its command is recorded, after :meth:`check_right`, so it raises nothing:
        the only errors computing it can raise are the right operand's, checked then; a view of
        another size makes it unknown when computed, as it would now."""
        if n <= KNOWN_MAX:
            self.lazy[i] = (name, operands, ct, shape, dtype, imm)
            self.mark_valued(i)

    def known_value(self, i):
        """The value of tensor number ``i`` known while tracing (an ndarray), or None."""
        v = self.computed(i)
        if v is None and i in self.fills:
            return self._from_fill(i)
        return v

    def computed(self, i):
        """Tensor ``i``'s value if it is an arange or computed from known values (a small fill
        read by nothing yet is not: see ``fills``), else None."""
        v = self.known.get(i)
        if v is None and i in self.lazy:
            return self._force(i)
        if type(v) is UnknownValue:
            v.on_read()
        return v

    def has_known(self, i) -> bool:
        """Whether tensor number ``i`` has a value known while tracing (computing it if it
        is not yet: a view of another size among its operands makes it unknown)."""
        return self.known_value(i) is not None

    def _force(self, i):
        """Compute the value of lazy tensor ``i``, and of the lazy tensors it reads first, into
        ``known``: operands first, without recursion (an index carried through a long
        loop is a long chain); what the eager computation would have raised was raised
        when each was made. Returns the value, or None (a view of another size). numpy's
        warnings (a cast overflowing f16) are not shown: computed when read, they would name the
        reader's line, and the value is the trace's own (functional mode computes the tensor's
        value in replay)."""
        with np.errstate(all="ignore"):
            return self._compute(i)

    def _compute(self, i):
        lazy, known = self.lazy, self.known
        todo = [i]
        while todo:
            j = todo[-1]
            r = lazy.get(j)
            if r is None:  # computed meanwhile (read twice by a later one)
                todo.pop()
                continue
            ready = True
            for o in r[1]:
                t = type(o)
                k = o[0] if t is tuple else o if t is int else None
                if k is not None and k in lazy:
                    todo.append(k)
                    ready = False
            if not ready:
                continue
            todo.pop()
            del lazy[j]
            args = []
            for o in r[1]:
                v = self._value(o)
                if v is None:
                    break
                args.append(v)
            else:
                try:
                    known[j] = vec_value(r[0], args, r[2], r[3], r[4], r[5])
                except ValueError:  # a timing-mode view of another size: not a value
                    pass
        return known.get(i)

    def _value(self, o):
        """The value of operand ``o`` known while tracing (a tensor number, a view spec or an
        immediate), or None."""
        t = type(o)
        if t is int:
            return self.known_value(o)
        if t is tuple:
            v = self.known_value(o[0])
            if v is not None:
                try:
                    return view_value(v, o)
                except ValueError:  # a timing-mode view of another size: not a value
                    return None
            return None
        return o

    def reduce(self, f, name: str, spec, src: int, shape: tuple, axis, dtype: str):
        """``name`` (a REDUCE_SUB key) over ``axis`` of a ``shape`` tensor, the axis kept; ``f``
        is the kernel's calling frame."""
        p = self._reduce_plans.get(frame_lasti(f))
        if (p is None or p[0] is not frame_code(f) or p[1] is not name
                or (p[2] is not shape and p[2] != shape) or p[3] != axis or p[4] is not dtype):
            p = self._memo(self._reduce_plans, f, (name, shape, axis, dtype))
            if p is None:
                out = reduce_geometry(shape, axis, dtype)[3]
                p = self._replan(self._reduce_plans, f, (name, shape, axis, dtype),
                                 ("reduce", name, shape, axis, dtype), (self._entry(*out),))
        i = len(self.tensors)
        if not i & _FLUSH_MASK and i:
            self._flush(i)
        t = p[8]
        nbytes = t[2] * ITEMSIZE[dtype]
        if nbytes > self.max_bytes:
            self._too_big(t[0], dtype, nbytes)
        h = new_handle(self.base + i, self._place(nbytes), t[0], dtype, nbytes, False)
        self.tensors.append(t)
        if self._track is not None:
            self._track.append(h)
        self._pending.push(p[5], src, -1, -1)
        if self.functional:
            self._keep.append(h)
            self._meta(("reduce", p[6], p[7], name, spec, shape, axis, dtype))
        return h

    # -- links ------------------------------------------------------------------------------
    def send(self, f, spec, src: int, port: int, shape: tuple, dtype: str, n: int) -> None:
        j, file, line = self._site_at(f, ("send", port, shape, dtype))
        if self._pending.n >= _PENDING_MAX:  # (its refusal before this send is recorded)
            self._flush(len(self.tensors))
        self._pending.push(j, src, -1, -1)
        if self.functional:
            self._meta(("send", file, line, spec, port, shape, dtype))

    def recv(self, f, port: int, shape: tuple, dtype: str, n: int, after: int = -1):
        j, file, line = self._site_at(f, ("recv", port, shape, dtype))  # (as load: then record)
        h = self._new(shape, dtype, n, n * ITEMSIZE[dtype])
        self._pending.push(j, after, -1, -1)
        if self.functional:
            self._meta(("recv", file, line, port, shape, dtype))
        return h

    # -- end of the program -------------------------------------------------------------------
    def finish(self) -> None:
        """End the program: the store may take the next one, the tensor table is let go with
        the handles (functional mode keeps weak references, for replay to fill ``.data`` of
        those the kernel still holds). No tl call may follow."""
        if self.finished:
            return
        store = self.trace_store
        self.cmd_end = store.n_traced
        store.end(self)
        if store.pending.n >= FLUSH_EVERY:
            store.flush()
        self.n_tensors = n_t = len(self.tensors)
        self.tensor_pinned = np.zeros(n_t, np.uint8)
        self.tensor_pinned[self.pinned] = 1
        if self.functional:
            self.handles = [weakref.ref(h) for h in self._keep]
            self.views = {}
            for h, i, spec in self._views:
                self.views.setdefault(i, []).append((weakref.ref(h), spec))
        self.finished = True
        self.valued = bytearray()  # (a byte per tensor of the program)
        self.tensors = self._keep = self._views = None
        self._pending = self._meta = self._sget = None
        self._vec_plans = self._dot_plans = self._reduce_plans = self._other_plans = None

    def build(self):
        """(commands, tensor_bytes, tensor_pinned) for Program.from_streams, or None if silent."""
        self.finish()
        self.trace_store.flush()
        if not self.n_commands:
            return None
        return self.commands, self.tensor_bytes, self.tensor_pinned


class TransposedViews:
    """The (tensor number, shape) pairs of the transposed views tl.trans made: a set to ``in``
    and :meth:`add`, which also holds tl.range replay's views as runs instead of one entry
    each: numbers ``first + j0 * step0 + j1 * step1 + ...`` (each ``0 <= jk < countk``) for
    ``dims = ((step0, count0), (step1, count1), ...)``, outermost first (a loop replayed inside
    a replayed loop: one run, not one per outer iteration). :meth:`mark` and :meth:`since` give
    what was added between two points, in order, as (first, dims, shape). (An extension type
    when compiled, builder.pxd: tl.trans adds to it and operand reads ``_one`` as C.)"""

    def __init__(self) -> None:
        self._one: set = set()
        self._runs: dict = {}  #: shape -> [(first, dims)]
        self._log: list = []

    def __contains__(self, item) -> bool:
        if item in self._one:
            return True
        i, shape = item
        for first, dims in self._runs.get(shape, ()):
            d = i - first
            if d < 0:
                continue
            for step, count in dims:  # each step is past what the dims inside it span
                q = d // step
                if q >= count:
                    break
                d -= q * step
            else:
                if d == 0:
                    return True
        return False

    def add(self, item) -> None:
        if item not in self._one:
            self._one.add(item)
            self._log.append((item[0], (), item[1]))

    def add_run(self, first: int, dims: tuple, shape: tuple) -> None:
        """The numbers of ``dims`` from ``first`` (see the class docstring), all of shape
        ``shape``. Raises ValueError unless every step is >= 1 and past what the dims inside it
        span (each number is then made one way only)."""
        span = 0
        for step, count in reversed(dims):
            if step < 1 or count < 1 or step <= span:
                raise ValueError(f"add_run: dims {dims} overlap (each step >= 1 and past the span "
                                 f"of the dims inside it)")
            span += step * (count - 1)
        self._runs.setdefault(shape, []).append((first, dims))
        self._log.append((first, dims, shape))

    def mark(self) -> int:
        return len(self._log)

    def since(self, a: int, b: int) -> list:
        """What was added between marks a and b: (first, dims, shape) each."""
        return self._log[a:b]
