"""The builder: turns checked ``tl`` calls into one PE's command stream.

One :class:`PEBuilder` per traced program. It assigns tensor ids (SSA: one producer each) and SRAM
addresses, and records each command as four ints: its *site* and its three operand tensor ids.

A site is everything static about a command, interned in the launch's :class:`SiteTable`: the
kernel line, the op, the shapes and dtypes (see "Site keys" below). Every field of a command but
its operands follows from its site (opcode, unit, sizes, bytes, line: :func:`site_fields`), and
its result tensor id is the running count of results, so the four ints are the whole command.
Thousands of commands share one site, so naming a command later (labels, errors, Perfetto) costs
the 4-byte site index the launch keeps per command.

The recorded ints move every ``FLUSH_EVERY`` tensors into the launch's :class:`TraceStore`: one
growing COMMAND_DTYPE array that becomes the Program's, so commands are held as Python objects
only briefly, and none is copied once it is an array.

In functional mode a second record, the command's replay metadata, is kept per command: what
replay needs to compute the value. Layout, ``(kind, file, line, ...)`` by kind:

- ``load``:   alloc, element offset, shape, row stride or None, dtype
- ``store``:  src spec, alloc, element offset, shape, row stride or None
- ``dot``:    spec a, spec b, shape a, shape b, dtype a, dtype b
- ``vec``:    op name, operands (specs or float immediates), out shape, out dtype
- ``reduce``: op name, src spec, in shape, axis (None = all), out dtype
- ``send``:   src spec, port, shape, dtype
- ``recv``:   port, shape, dtype

A spec is a tensor id, or ``(id, shape, transposed)`` for a view (see semantic.operand).
While a program is traced, tensor ids index ``tensors``: (buffer shape, dtype, element count).
An elementwise result of its operand's shape and dtype shares the operand's tuple, so the table
costs about a pointer per tensor; it holds no handle, so the handles the kernel drops are freed
at once (functional mode keeps them, for replay). Once the program is finished only the byte
sizes (and, in functional mode, weak references to the handles) remain.

Site keys, ``(kind, file, line, ...)`` by kind (what :func:`label_of` prints):

- ``load``:   shape, dtype, allocation name
- ``store``:  shape, allocation dtype, allocation name
- ``dot``:    shape a, shape b, dtype a, dtype b
- ``vec``:    op name, out shape, out dtype
- ``reduce``: op name, in shape, axis (None = all), out dtype
- ``send``:   port, shape, dtype
- ``recv``:   port, shape, dtype
"""
from __future__ import annotations

import weakref

import numpy as np

from ..common.pe_commands import COMMAND_DTYPE, N_PORTS, Opcode, TensorHandle, Unit, VecOp
from . import semantic
from .semantic import ITEMSIZE, fmt_shape, line_of

__all__ = ["PEBuilder", "SiteTable", "TraceStore", "SRAM_ALIGN", "FLUSH_EVERY", "label_of",
           "site_fields"]

semantic.register_internal(__file__)

#: SRAM addresses are handed out in program order at this alignment (a naming aid: the engine
#: owns liveness, so addresses are unique per PE and never reused).
SRAM_ALIGN = 64
_PAD, _ALIGNED = SRAM_ALIGN - 1, -SRAM_ALIGN

#: Tensors a program makes between two moves of its recorded commands into the TraceStore: a
#: bound on the Python lists a program holds.
FLUSH_EVERY = 1 << 14
_FLUSH_MASK = FLUSH_EVERY - 1

#: Handles are made field by field (a tl call makes one; the dataclass __init__ costs a Python
#: frame): TensorHandle must stay a plain dataclass with exactly these fields and no
#: __post_init__ for that to equal calling it.
_make_handle = object.__new__
assert not hasattr(TensorHandle, "__post_init__") and TensorHandle.__slots__ == (
    "id", "addr", "shape", "dtype", "nbytes", "data", "space", "pinned", "__weakref__")

_LOAD, _STORE, _DOT, _VEC, _REDUCE, _SEND, _RECV = (int(o) for o in Opcode)
_DMA, _GEMM, _VECTOR = int(Unit.DMA), int(Unit.GEMM), int(Unit.VECTOR)
_TX0, _RX0 = int(Unit.TX_E), int(Unit.RX_E)

# VecOp cost class of each elementwise name (docs/hardware-model.md, "Vector unit").
VEC_SUB = {
    "add": VecOp.ADD, "sub": VecOp.SUB, "mul": VecOp.MUL, "div": VecOp.DIV,
    "maximum": VecOp.MAX, "minimum": VecOp.MIN,
    "lt": VecOp.COMPARE, "le": VecOp.COMPARE, "gt": VecOp.COMPARE, "ge": VecOp.COMPARE,
    "eq": VecOp.COMPARE, "ne": VecOp.COMPARE,
    "where": VecOp.SELECT, "neg": VecOp.COPY, "abs": VecOp.COPY, "copy": VecOp.COPY,
    "cast": VecOp.CAST, "fill": VecOp.FILL,
    "exp": VecOp.EXP, "log": VecOp.LOG, "sqrt": VecOp.SQRT, "rsqrt": VecOp.RSQRT,
}
VEC_SUB = {k: int(v) for k, v in VEC_SUB.items()}
REDUCE_SUB = {"max": int(VecOp.MAX), "min": int(VecOp.MIN), "sum": int(VecOp.ADD)}


# -- sites: what names a command, and every field but its operands -------------------------------
_PORT = ("E", "W", "N", "S")


def label_of(key: tuple) -> str:
    """A command in the kernel's words, from its site key, e.g. "dot (64,128)x(128,64) f16"."""
    kind = key[0]
    if kind == "vec":
        return f"{key[3]} {fmt_shape(key[4])} {key[5]}"
    if kind == "load":
        return f"load {fmt_shape(key[3])} {key[4]} from {key[5]}"
    if kind == "store":
        return f"store {fmt_shape(key[3])} {key[4]} to {key[5]}"
    if kind == "dot":
        d = key[5] if key[5] == key[6] else f"{key[5]}x{key[6]}"
        return f"dot {fmt_shape(key[3])}x{fmt_shape(key[4])} {d}"
    if kind == "reduce":
        ax = "all" if key[5] is None else key[5]
        return f"{key[3]}-reduce {fmt_shape(key[4])} axis {ax} {key[6]}"
    if kind == "send":
        return f"send to {_PORT[key[3]]} {fmt_shape(key[4])} {key[5]}"
    if kind == "recv":
        return f"recv from {_PORT[key[3]]} {fmt_shape(key[4])} {key[5]}"
    return kind


#: Columns of :func:`site_fields`: COMMAND_DTYPE fields, then the bytes of the command's result
#: tensor (-1: the command makes none).
SITE_COLUMNS = ("opcode", "unit", "sub", "port", "m", "n", "k", "nbytes", "esize", "line")
_OUT_BYTES = len(SITE_COLUMNS)


def site_fields(key: tuple) -> tuple:
    """Every field of a command at site ``key`` but its operands and result ids, in
    SITE_COLUMNS order, plus its result's bytes (-1 for store and send)."""
    kind, line = key[0], int(key[2])
    numel = semantic.numel
    if kind == "vec":
        name, shape, dtype = key[3], key[4], key[5]
        n = int(numel(shape))
        return (_VEC, _VECTOR, VEC_SUB[name], -1, 0, n, 0, 0, 0, line, n * ITEMSIZE[dtype])
    if kind == "load":
        nb = int(numel(key[3])) * ITEMSIZE[key[4]]
        return (_LOAD, _DMA, 0, -1, 0, 0, 0, nb, 0, line, nb)
    if kind == "store":
        nb = int(numel(key[3])) * ITEMSIZE[key[4]]
        return (_STORE, _DMA, 0, -1, 0, 0, 0, nb, 0, line, -1)
    if kind == "dot":
        a, b, da, db = key[3], key[4], key[5], key[6]
        m, n, k = int(a[0]), int(b[1]), int(a[1])
        return (_DOT, _GEMM, 0, -1, m, n, k, 0, max(ITEMSIZE[da], ITEMSIZE[db]), line, 4 * m * n)
    if kind == "reduce":
        name, shape, axis, dtype = key[3], key[4], key[5], key[6]
        outer, r, inner, _ = _reduce_geometry(shape, axis, dtype)
        return (_REDUCE, _VECTOR, REDUCE_SUB[name], -1, int(outer), int(r), int(inner), 0, 0, line,
                int(outer * inner) * ITEMSIZE[dtype])
    port, shape, dtype = key[3], key[4], key[5]
    nb = int(numel(shape)) * ITEMSIZE[dtype]
    if kind == "send":
        return (_SEND, _TX0 + port, 0, port, 0, 0, 0, nb, 0, line, -1)
    if kind == "recv":
        return (_RECV, _RX0 + port, 0, port, 0, 0, 0, nb, 0, line, nb)
    raise ValueError(f"unknown site kind {kind!r}")


class SiteTable:
    """The sites of one launch, interned: site key -> index, each site's command fields as one
    int64 row (:meth:`fields`), and each site's label once made.

    Every PE traced in a launch shares one table, so a command costs one small int for its
    fields, its name and its kernel line."""

    __slots__ = ("index", "keys", "plans", "_labels", "_fields", "_records")

    def __init__(self) -> None:
        self.index: dict = {}
        self.keys: list = []
        #: by kind of call: instruction offset of a kernel call site -> the site it made last
        #: time, with the code object and what it was made of (see PEBuilder.vec): a repeated
        #: call skips building its key
        self.plans: dict = {"vec": {}, "dot": {}, "reduce": {}, "other": {}}
        self._labels: dict = {}
        self._fields = np.zeros((0, _OUT_BYTES + 1), np.int64)
        self._records = np.zeros(0, COMMAND_DTYPE)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: tuple) -> int:
        """The index of ``key``, added when new."""
        i = self.index.get(key)
        if i is None:
            site_fields(key)  # a key that names no command fails here, not at the next flush
            i = self.index[key] = len(self.keys)
            self.keys.append(key)
        return i

    def fields(self) -> np.ndarray:
        """(sites, len(SITE_COLUMNS) + 1) int64: :func:`site_fields` of every site."""
        f = self._fields
        if len(f) < len(self.keys):
            new = np.array([site_fields(k) for k in self.keys[len(f):]], np.int64)
            f = self._fields = np.concatenate([f, new.reshape(-1, _OUT_BYTES + 1)])
        return f

    def records(self) -> np.ndarray:
        """One COMMAND_DTYPE record per site: its command with no operand and no result."""
        if len(self._records) < len(self.keys):
            f = self.fields()
            r = np.zeros(len(f), COMMAND_DTYPE)
            for j, name in enumerate(SITE_COLUMNS):
                r[name] = f[:, j]
            for name in ("src0", "src1", "src2", "dst"):
                r[name] = -1
            self._records = r
        return self._records

    def label(self, i: int) -> str:
        s = self._labels.get(i)
        if s is None:
            s = self._labels[i] = label_of(self.keys[i])
        return s

    def source(self, i: int) -> str:
        k = self.keys[i]
        return f"{k[1]}:{k[2]}"


class TraceStore:
    """The commands of every program of one launch, in program order, and the sites naming them.

    Builders append (site, src0, src1, src2) per command to ``pending``, one program after the
    other; :meth:`flush` turns what is pending, of however many programs, into ``commands``
    (COMMAND_DTYPE) and ``sites`` (int32 index into ``table``) in one vectorized pass. The arrays
    grow as needed; :meth:`expect` lets the caller size them for the whole launch (an estimate
    costs address space only: pages are touched as commands arrive). :meth:`close` flushes,
    trims and hands them over."""

    __slots__ = ("table", "pending", "n", "closed", "current", "_commands", "_sites", "_expected",
                 "_segments", "_tensor_bytes")

    def __init__(self, capacity: int = 1 << 12) -> None:
        self.table = SiteTable()
        self.pending: list = []  #: (site, src0, src1, src2) per command not yet in the arrays
        self.n = 0  #: commands in the arrays
        self.closed = False
        self.current = None  #: the builder appending to ``pending``
        self._commands = np.empty(capacity, COMMAND_DTYPE)
        self._sites = np.empty(capacity, np.int32)
        self._expected = 0
        #: per run of one program's commands in ``pending``: [builder, index of its first
        #: command in ``pending``, the builder's results made before it]
        self._segments: list = []
        #: byte size of every tensor made, in global order (PE, then id): an array per flush
        self._tensor_bytes: list = []

    @property
    def n_traced(self) -> int:
        """Commands traced so far, pending ones included."""
        return self.n + len(self.pending) // 4

    def expect(self, n_commands: int) -> None:
        """Size the next growth for about ``n_commands`` commands in all."""
        self._expected = int(n_commands)

    def begin(self, builder) -> None:
        """``builder``'s commands follow: one program at a time."""
        if self.closed:
            raise RuntimeError("this launch's trace is closed: no command may be added")
        if self.current is not None:
            raise RuntimeError("PEBuilders sharing a TraceStore must be traced one at a time "
                               "(finish() the previous one first)")
        self.current = builder
        self._segments.append([builder, len(self.pending) // 4, 0])

    def end(self, builder) -> None:
        if self.current is builder:
            self.current = None

    def _grow(self, need: int) -> None:
        cap = max(need, 4 * len(self._commands))  # few copies while the first PE is traced
        try:  # the expected size costs address space only; fall back to growing if refused
            big = max(cap, self._expected)
            c, s = np.empty(big, COMMAND_DTYPE), np.empty(big, np.int32)
        except MemoryError:
            c, s = np.empty(cap, COMMAND_DTYPE), np.empty(cap, np.int32)
        # a copy of what is filled only (ndarray.resize would zero the whole new capacity)
        c[:self.n] = self._commands[:self.n]
        s[:self.n] = self._sites[:self.n]
        self._commands, self._sites = c, s

    def flush(self) -> None:
        """Move every pending command into the arrays; each builder gets the byte sizes of the
        tensors its moved commands make (``_tb_parts``) and its range (``cmd_end``)."""
        pending = self.pending
        segs = self._segments
        if not pending:  # nothing to move; only the current program's segment goes on
            if self.current is not None:
                del segs[:-1]
                segs[0][1] = 0
            else:
                segs.clear()
            return
        rec = np.fromiter(pending, np.int64, len(pending)).reshape(-1, 4)
        a = self.n
        z = a + len(rec)
        if z > len(self._commands):
            self._grow(z)
        site = rec[:, 0]
        out = self._commands[a:z]
        np.take(self.table.records(), site, out=out, mode="clip")  # sites are valid; "raise" buffers
        out["src0"] = rec[:, 1]
        out["src1"] = rec[:, 2]
        out["src2"] = rec[:, 3]
        out_bytes = self.table.fields()[:, _OUT_BYTES][site]
        makes = out_bytes >= 0
        made = np.cumsum(makes)  # results made up to and including each command
        # A result's id is its program's count of results before it: per segment, the count at
        # the segment's start (the builder's tensors before this flush) plus the running count.
        starts = [seg[1] for seg in segs]
        lens = np.diff(starts + [len(rec)])
        before = np.array([int(made[k - 1]) if k else 0 for k in starts], np.int64)
        base = np.array([seg[2] for seg in segs], np.int64)
        dst = made - 1 + np.repeat(base - before, lens)
        out["dst"] = np.where(makes, dst, -1)
        self._sites[a:z] = site
        bounds = [int(x) for x in before] + [int(made[-1])]
        made_bytes = out_bytes[makes]
        self._tensor_bytes.append(made_bytes)
        for k, seg in enumerate(segs):
            b = seg[0]
            b._tb_parts.append(made_bytes[bounds[k]:bounds[k + 1]])
            b.cmd_end = a + starts[k] + int(lens[k])
        self.n = z
        pending.clear()
        if self.current is not None:  # its next commands start a new segment
            cur = self._segments[-1]
            cur[1], cur[2] = 0, cur[2] + bounds[-1] - bounds[-2]
            del self._segments[:-1]
        else:
            self._segments.clear()

    def slice(self, a: int, z: int) -> tuple:
        """(commands, sites) of global commands a..z: views once closed, copies before."""
        self.flush()
        if self.closed:
            return self._commands[a:z], self._sites[a:z]
        return self._commands[a:z].copy(), self._sites[a:z].copy()

    def tensor_bytes(self) -> np.ndarray:
        """Every tensor's byte size, in global order (flushed ones; all of them once closed)."""
        parts = self._tensor_bytes
        if len(parts) != 1:
            self._tensor_bytes = parts = [np.concatenate(parts) if parts else np.zeros(0, np.int64)]
        return parts[0]

    def close(self) -> tuple:
        """Flush, trim to the commands traced and return (commands, sites); nothing is added
        after."""
        if not self.closed:
            if self.current is not None:
                raise RuntimeError("close() while a PEBuilder is still tracing")
            self.flush()
            for plans in self.table.plans.values():
                plans.clear()  # they hold the kernel's code objects
            # shrinking in place (realloc) moves no data and touches no page
            self._commands.resize(self.n, refcheck=False)
            self._sites.resize(self.n, refcheck=False)
            self.closed = True
        return self._commands, self._sites


class PEBuilder:
    """Commands, tensors and metadata of one program, traced on PE (pe, cube).

    Commands go to ``trace_store`` (a :class:`TraceStore` shared by the PEs of a launch, one PE
    at a time; a private one by default). After :meth:`finish` (and the store's flush, which
    :meth:`build` and the launch do): ``cmd_start``..``cmd_end`` is the program's range in the
    store, ``tensor_bytes`` and ``tensor_pinned`` its tensor table, and in functional mode
    ``meta`` (replay metadata per command) and ``handles`` (a weak reference per tensor id)."""

    __slots__ = (
        "pe", "cube", "g", "functional", "memory", "nbr", "sfr_text", "trace_store", "site_table",
        "tensors", "pinned", "meta", "sram_top", "cmd_start", "cmd_end", "n_tensors",
        "tensor_pinned", "handles", "finished",
        "_tb_parts", "_keep", "_cmd", "_tens", "_meta", "_sget",
        "_vec_plans", "_dot_plans", "_reduce_plans", "_other_plans",
    )

    def __init__(self, pe: int, cube: int, g: int, *, functional: bool, memory, nbr, sfr_text: str,
                 store: TraceStore | None = None):
        self.pe, self.cube, self.g = pe, cube, g
        self.functional = functional
        self.memory = memory  #: DeviceMemory: pointer lookups for loads and stores
        self.nbr = tuple(int(q) for q in nbr)  #: this PE's row of the SFR neighbour table
        self.sfr_text = sfr_text
        self.trace_store = store = TraceStore() if store is None else store
        self.site_table = store.table
        #: by tensor id: (buffer shape, dtype, element count), shared between tensors alike
        self.tensors: list = []
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
        # Bound methods: the hot path is a few of these per tl call.
        self._cmd = store.pending.extend
        self._tens = self.tensors.append
        self._meta = self.meta.append if functional else None
        self._sget = self.site_table.index.get
        plans = self.site_table.plans
        self._vec_plans, self._dot_plans = plans["vec"], plans["dot"]
        self._reduce_plans, self._other_plans = plans["reduce"], plans["other"]

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
        tb = np.concatenate(self._tb_parts) if self._tb_parts else np.zeros(0, np.int64)
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

    def _flush(self) -> None:
        """Move the recorded commands into the store's arrays (before a new tensor is made)."""
        if self.trace_store.current is not self:
            raise RuntimeError("PEBuilders sharing a TraceStore must be traced one at a time")
        self.trace_store.flush()

    def _site(self, key: tuple) -> int:
        j = self._sget(key)
        return self.site_table.add(key) if j is None else j

    def _replan(self, plans: dict, f, parts: tuple, key: tuple, extra: tuple = ()) -> tuple:
        """The plan for a call at frame ``f`` made of ``parts``: (code, *parts, site, file, line,
        *extra), the site's key being (key[0], file, line, *key[1:]).

        ``plans[offset]`` is an instruction's latest plan, ``plans[~offset]`` a few older ones:
        a call that alternates (a loop over ports, a helper called for K then V) finds its plan
        there instead of building its site key again."""
        co, lasti = f.f_code, f.f_lasti
        n = len(parts) + 1
        cur = plans.get(lasti)
        older = plans.get(~lasti) or []
        for q in ([cur] if cur is not None else []) + older:
            if q[0] is co and q[1:n] == parts:
                break
        else:
            file, line = co.co_filename, line_of(f)
            q = (co, *parts, self._site((key[0], file, line) + key[1:]), file, line, *extra)
        if q is not cur:
            if cur is not None:
                older = [cur] + [x for x in older if x is not q]
                plans[~lasti] = older[:8]
            plans[lasti] = q
        return q

    def _site_at(self, f, what: tuple) -> tuple:
        """(site, file, line) of a command ``what`` = (kind, *key after file and line) made at
        frame ``f``, from the plans of ``f``'s instruction (a few: a loop over ports or a
        helper loading K then V alternates between them)."""
        co = f.f_code
        plans = self._other_plans.get(f.f_lasti)
        if plans is not None:
            for p in plans:
                if p[0] is co and p[1] == what:
                    return p[2]
        else:
            plans = self._other_plans[f.f_lasti] = []
        file, line = co.co_filename, line_of(f)
        p = (co, what, (self._site((what[0], file, line) + what[1:]), file, line))
        plans.insert(0, p)
        del plans[8:]
        return p[2]

    def _new(self, shape: tuple, dtype: str, n: int, nbytes: int, pinned: bool = False) -> TensorHandle:
        i = len(self.tensors)
        if not i & _FLUSH_MASK and i:
            self._flush()
        addr = self.sram_top
        self.sram_top = addr + ((nbytes + _PAD) & _ALIGNED)
        h = _make_handle(TensorHandle)  # see _make_handle
        h.id = i
        h.addr = addr
        h.shape = shape
        h.dtype = dtype
        h.nbytes = nbytes
        h.data = None
        h.space = "sram"
        h.pinned = pinned
        self._tens((shape, dtype, n))
        if self.functional:
            self._keep.append(h)
        if pinned:
            self.pinned.append(i)
        return h

    # -- DMA --------------------------------------------------------------------------------
    def load(self, f, alloc, e0: int, shape: tuple, n: int, dtype: str, stride, pinned=False,
             after: int = -1):
        """DMA ``shape`` of ``alloc`` into a new tensor; ``f`` is the kernel's calling frame."""
        h = self._new(shape, dtype, n, n * ITEMSIZE[dtype], pinned)
        j, file, line = self._site_at(f, ("load", shape, dtype, alloc.name))
        self._cmd((j, after, -1, -1))
        if self.functional:
            self._meta(("load", file, line, alloc, e0, shape, stride, dtype))
        return h

    def store(self, f, spec, src: int, alloc, e0: int, shape: tuple, n: int, stride) -> None:
        j, file, line = self._site_at(f, ("store", shape, alloc.dtype, alloc.name))
        self._cmd((j, src, -1, -1))
        if self.functional:
            self._meta(("store", file, line, spec, alloc, e0, shape, stride))

    # -- GEMM -------------------------------------------------------------------------------
    def dot(self, f, sa, sb, ia: int, ib: int, a_shape, b_shape, da: str, db: str,
            m: int, n: int, k: int):
        """GEMM of a ``a_shape`` and a ``b_shape`` tensor; ``f`` is the kernel's calling frame."""
        p = self._dot_plans.get(f.f_lasti)
        if (p is None or p[0] is not f.f_code or (p[1] is not a_shape and p[1] != a_shape)
                or (p[2] is not b_shape and p[2] != b_shape) or p[3] is not da or p[4] is not db):
            t = _DOT_OUT.get((m, n))
            if t is None:
                t = _remember(_DOT_OUT, (m, n), ((m, n), "f32", m * n))
            p = self._replan(self._dot_plans, f, (a_shape, b_shape, da, db),
                             ("dot", a_shape, b_shape, da, db), (t,))
        i = len(self.tensors)
        if not i & _FLUSH_MASK and i:
            self._flush()
        t = p[8]
        nbytes = 4 * t[2]
        h = _make_handle(TensorHandle)  # see _make_handle
        h.id = i
        h.addr = self.sram_top
        h.shape = t[0]
        h.dtype = "f32"
        h.nbytes = nbytes
        h.data = None
        h.space = "sram"
        h.pinned = False
        self.sram_top += (nbytes + _PAD) & _ALIGNED
        self._tens(t)
        self._cmd((p[5], ia, ib, -1))
        if self.functional:
            self._keep.append(h)
            self._meta(("dot", p[6], p[7], sa, sb, a_shape, b_shape, da, db))
        return h

    # -- VECTOR -----------------------------------------------------------------------------
    def vec(self, f, name: str, operands: tuple, s0: int, s1: int, s2: int,
            shape: tuple, n: int, dtype: str, like: tuple | None = None):
        """Elementwise ``name`` (a VEC_SUB key) -> a ``shape``/``dtype`` tensor of ``n``
        elements; ``f`` is the kernel's calling frame. ``like``: an operand's entry in
        ``tensors`` when it is exactly (shape, dtype, n), to share."""
        # _new inlined: this is the most frequent command.
        i = len(self.tensors)
        if not i & _FLUSH_MASK and i:
            self._flush()
        nbytes = n * ITEMSIZE[dtype]
        h = _make_handle(TensorHandle)  # see _make_handle
        h.id = i
        h.addr = self.sram_top
        h.shape = shape
        h.dtype = dtype
        h.nbytes = nbytes
        h.data = None
        h.space = "sram"
        h.pinned = False
        self.sram_top += (nbytes + _PAD) & _ALIGNED
        self._tens((shape, dtype, n) if like is None else like)
        # The site: the one this instruction made last time when made of the same objects
        # (shapes are shared tuples, names and dtypes interned strings), else built and interned.
        p = self._vec_plans.get(f.f_lasti)
        if (p is None or p[0] is not f.f_code or p[1] is not name
                or (p[2] is not shape and p[2] != shape) or p[3] is not dtype):
            p = self._replan(self._vec_plans, f, (name, shape, dtype), ("vec", name, shape, dtype))
        self._cmd((p[4], s0, s1, s2))
        if self.functional:
            self._keep.append(h)
            self._meta(("vec", p[5], p[6], name, operands, shape, dtype))
        return h

    def reduce(self, f, name: str, spec, src: int, shape: tuple, axis, dtype: str):
        """``name`` (a REDUCE_SUB key) over ``axis`` of a ``shape`` tensor, the axis kept; ``f``
        is the kernel's calling frame."""
        p = self._reduce_plans.get(f.f_lasti)
        if (p is None or p[0] is not f.f_code or p[1] is not name
                or (p[2] is not shape and p[2] != shape) or p[3] != axis or p[4] is not dtype):
            geom = _REDUCE_OUT.get((shape, axis, dtype))
            if geom is None:
                geom = _remember(_REDUCE_OUT, (shape, axis, dtype), _reduce_geometry(shape, axis, dtype))
            p = self._replan(self._reduce_plans, f, (name, shape, axis, dtype),
                             ("reduce", name, shape, axis, dtype), (geom[3],))
        i = len(self.tensors)
        if not i & _FLUSH_MASK and i:
            self._flush()
        t = p[8]
        nbytes = t[2] * ITEMSIZE[dtype]
        h = _make_handle(TensorHandle)  # see _make_handle
        h.id = i
        h.addr = self.sram_top
        h.shape = t[0]
        h.dtype = dtype
        h.nbytes = nbytes
        h.data = None
        h.space = "sram"
        h.pinned = False
        self.sram_top += (nbytes + _PAD) & _ALIGNED
        self._tens(t)
        self._cmd((p[5], src, -1, -1))
        if self.functional:
            self._keep.append(h)
            self._meta(("reduce", p[6], p[7], name, spec, shape, axis, dtype))
        return h

    # -- links ------------------------------------------------------------------------------
    def send(self, f, spec, src: int, port: int, shape: tuple, dtype: str, n: int) -> None:
        j, file, line = self._site_at(f, ("send", port, shape, dtype))
        self._cmd((j, src, -1, -1))
        if self.functional:
            self._meta(("send", file, line, spec, port, shape, dtype))

    def recv(self, f, port: int, shape: tuple, dtype: str, n: int, after: int = -1):
        h = self._new(shape, dtype, n, n * ITEMSIZE[dtype])
        j, file, line = self._site_at(f, ("recv", port, shape, dtype))
        self._cmd((j, after, -1, -1))
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
        if len(store.pending) >= 4 * FLUSH_EVERY:
            store.flush()
        self.n_tensors = n_t = len(self.tensors)
        self.tensor_pinned = np.zeros(n_t, np.uint8)
        self.tensor_pinned[self.pinned] = 1
        if self.functional:
            self.handles = [weakref.ref(h) for h in self._keep]
        self.finished = True
        self.tensors = self._keep = None
        self._cmd = self._tens = self._meta = self._sget = None
        self._vec_plans = self._dot_plans = self._reduce_plans = self._other_plans = None

    def build(self):
        """(commands, tensor_bytes, tensor_pinned) for Program.from_streams, or None if silent."""
        self.finish()
        self.trace_store.flush()
        if not self.n_commands:
            return None
        return self.commands, self.tensor_bytes, self.tensor_pinned


def _reduce_geometry(shape: tuple, axis, dtype: str) -> tuple:
    """(outer, reduced length, inner, (out shape, dtype, out numel)) of a reduction."""
    numel = semantic.numel
    if axis is None:
        outer, r, inner = 1, numel(shape), 1
        out = (1,) * len(shape)
    elif axis == len(shape) - 1:
        outer, r, inner = numel(shape[:-1]), shape[-1], 1
        out = shape[:-1] + (1,)
    else:
        outer = numel(shape[:axis])
        r = shape[axis]
        inner = numel(shape[axis + 1:])
        out = shape[:axis] + (1,) + shape[axis + 1:]
    return (outer, r, inner, (out, dtype, outer * inner))


def _remember(cache: dict, key, value):
    """Cache ``value`` under ``key`` (bounded: a kernel repeats a handful of shapes) and return it."""
    if len(cache) < 4096:
        cache[key] = value
    return value


#: Result entries of the tensor table by shape, shared by every launch: a kernel's dots and
#: reductions repeat a few shapes thousands of times, so their results share one tuple.
_DOT_OUT: dict = {}
_REDUCE_OUT: dict = {}
