# cython: annotation_typing=False
# (store.pxd declares Pending's C types; the annotations below are documentation)
"""The TraceStore: every command of a launch, as it is traced, in one growing array.

Builders (kernbench.language.builder) record four ints per command, (site, src0, src1, src2),
in the store's ``pending`` rows (:class:`Pending`), one program after the other; every few
thousand commands the store turns them into COMMAND_DTYPE records in one pass in C (the site
gives every field but the operands, and a result's tensor id is its program's running count of
results). The array grows in place of a copy-per-program and becomes the launch's Program as it
is.
"""
from __future__ import annotations

import bisect

import numpy as np

from .._core import _replay, pages
from ..common.pe_commands import COMMAND_DTYPE
from .semantic import ReplayedPast
from .sites import SiteTable, OUT_BYTES

_RECORD = np.dtype((np.void, COMMAND_DTYPE.itemsize))  #: a command as an opaque record

__all__ = ["TraceStore", "TiledCommands", "Pending", "join_sizes"]


class Pending:
    """The commands recorded since the store's last flush: (site, src0, src1, src2) as int64
    rows of ``arr`` (the first ``n``), which doubles when full. Compiled (store.pxd),
    :meth:`push` writes four C integers: no tuple or list entry per command."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        self.arr = np.empty((max(int(capacity), 1), 4), np.int64)
        self.buf = self.arr  # (compiled: a typed view of it)
        self.n = 0

    def push(self, j, s0, s1, s2) -> None:
        """Record a command: site ``j``, operands ``s0``, ``s1``, ``s2`` (-1: none)."""
        n = self.n
        if n == self.buf.shape[0]:
            self._grow()
        self.buf[n, 0] = j
        self.buf[n, 1] = s0
        self.buf[n, 2] = s1
        self.buf[n, 3] = s2
        self.n = n + 1

    def extend(self, rows) -> None:
        """Record the commands ``rows`` ((k, 4) int64: site, src0, src1, src2 each) at once:
        tl.range's replay of a body whose shapes move (kernbench.language.loops)."""
        rows = np.asarray(rows, np.int64).reshape(-1, 4)
        k = len(rows)
        while self.n + k > len(self.arr):
            self._grow()
        self.arr[self.n:self.n + k] = rows
        self.n += k

    def _grow(self) -> None:
        arr = np.empty((2 * len(self.arr), 4), np.int64)
        arr[:self.n] = self.arr[:self.n]
        self.arr = self.buf = arr

    def rows(self, a: int, z: int) -> np.ndarray:
        """A copy of rows a..z (those recorded of them)."""
        return self.arr[a:min(z, self.n)].copy()

    def take(self) -> np.ndarray:
        """A copy of every row recorded; none is left."""
        out = self.arr[:self.n].copy()
        self.n = 0
        return out


#: a replay of at most this many tensors extends TensorTable's tail instead of making a segment
TAIL_EXTEND = 1 << 12


class TensorTable:
    """A program's tensor table while it is traced (PEBuilder.tensors): tensor number ->
    (buffer shape, dtype, element count), one entry shared between the tensors alike. Read
    like a list (``len``, ``t[i]``, ``t[a:b]``, :meth:`append`), but the iterations tl.range
    replays are kept as their body and a count (:meth:`repeat`), not an entry per tensor, so
    a replay costs its body, not its iterations (a loop of 500,000 iterations on 8 PEs traces
    in about half the time: docs/benchmarks.md).

    ``tail``: the entries traced since the last :meth:`repeat`, from number ``tail0`` on (the
    builder's hot paths index it directly); ``segs``: the earlier ones, each (entries, R): the
    list R times over (R = 1: traced), from number ``starts[k]`` on. ``marks``: segment k ->
    the ranges of a repeated one that :meth:`disown` marked, each (lo, hi, loop, kept, made),
    applied as its entries are read (:meth:`_marked`): a repeated body is shared, not copied."""

    def __init__(self) -> None:
        self.tail = []
        self.tail0 = 0
        self.starts = []
        self.segs = []
        self.marks = {}

    def __len__(self) -> int:
        return self.tail0 + len(self.tail)

    def append(self, entry) -> None:
        self.tail.append(entry)

    def entry(self, i):
        """The entry of tensor number ``i`` (>= 0): IndexError past the last or below 0
        (compiled: OverflowError past a C ssize_t)."""
        j = i - self.tail0
        if j >= 0:
            return self.tail[j]
        if i < 0:
            raise IndexError(f"tensor number {i} out of range")
        k = bisect.bisect_right(self.starts, i) - 1
        body = self.segs[k][0]
        e = body[(i - self.starts[k]) % len(body)]
        if self.marks and k in self.marks:
            return self._marked(k, i, e)
        return e

    def _marked(self, k, i, e):
        """Entry ``e`` of tensor number ``i``, in repeated segment ``k``, as :meth:`disown`'s
        marks make it: the first mark holding ``i`` (and not keeping it) wins."""
        for lo, hi, loop, kept, made in self.marks[k]:
            if lo <= i < hi and i not in kept:
                return _moved_past(made, e, loop)
        return e

    def span(self, a, z) -> list:
        """The entries of tensor numbers a .. z (0 <= a, z <= len), as a list."""
        z = max(a, z)
        if a >= self.tail0:
            return self.tail[a - self.tail0:z - self.tail0]
        out = []
        k = bisect.bisect_right(self.starts, a) - 1
        while a < z:
            if k >= len(self.segs):  # (the tail)
                out.extend(self.tail[a - self.tail0:z - self.tail0])
                break
            body, R = self.segs[k]
            n, s0 = len(body), self.starts[k]
            e = min(z, s0 + n * R)  # this segment's part
            if self.marks and k in self.marks:
                out.extend(self._marked_span(k, body, s0, a, e))
            else:
                _cycle(body, s0, a, e, out)
            a = e
            k += 1
        return out

    def _marked_span(self, k, body: list, s0, a, e) -> list:
        """The entries of tensor numbers a .. e of repeated segment ``k`` (``body`` from number
        ``s0`` on) as :meth:`_marked` makes them, at list speed: each mark's part from the body
        marked once (the last mark first, so that the first one wins), the kept tensors one by
        one (a three-deep nest reads an inner loop's marked replay whole in its proof)."""
        out: list = []
        _cycle(body, s0, a, e, out)
        kept = []
        for lo, hi, loop, keep, made in reversed(self.marks[k]):
            x0, x1 = max(a, lo), min(e, hi)
            if x0 >= x1:
                continue
            marked = [_moved_past(made, x, loop) for x in body]
            part: list = []
            _cycle(marked, s0, x0, x1, part)
            out[x0 - a:x1 - a] = part
            kept += [x for x in keep if x0 <= x < x1]
        for x in kept:
            out[x - a] = self._marked(k, x, body[(x - s0) % len(body)])
        return out

    def disown(self, a, z, loop: tuple, keep: set) -> None:
        """Mark tensors a .. z but those in ``keep`` as moved past by tl.range replay: their
        entries' shapes become :class:`ReplayedPast` (an entry marked already keeps its mark).
        A traced one's entry is replaced; a repeated segment's (an inner loop's replayed
        iterations, its body shared) is marked as read (:attr:`marks`)."""
        made: dict = {}  # (_moved_past; the last entry met is looked at first)
        last = last_new = None
        i = a
        while i < z:  # segment by segment: a repeated one is marked whole, not walked
            if i >= self.tail0:
                lst, s0, end = self.tail, self.tail0, z
            else:
                k = bisect.bisect_right(self.starts, i) - 1
                lst, R = self.segs[k]
                s0 = self.starts[k]
                end = min(z, s0 + len(lst) * R)
                if R != 1:  # (a repeated body: marked as it is read, not copied)
                    self.marks.setdefault(k, []).append(
                        (i, end, loop, frozenset([x for x in keep if i <= x < end]), made))
                    i = end
                    continue
            held = [(x - s0, lst[x - s0]) for x in keep if i <= x < end]  # (put back below)
            for j in range(i - s0, end - s0):
                e = lst[j]
                if e is not last:
                    last_new = _moved_past(made, e, loop)
                    last = e
                lst[j] = last_new
            for j, e in held:
                lst[j] = e
            i = end

    def repeat(self, body: list, R) -> None:
        """Append the entries ``body`` R times over (a replayed loop's iterations). A few
        entries in all go on the tail (a loop of a few short iterations, inside a plain Python
        loop, would otherwise leave a segment each and send the next lookups to bisection)."""
        if R <= 0 or not body:
            return
        if R * len(body) <= TAIL_EXTEND:
            for _ in range(R):
                self.tail.extend(body)
            return
        n = self.tail0 + len(self.tail)
        if self.tail:
            self.starts.append(self.tail0)
            self.segs.append((self.tail, 1))
        self.starts.append(n)
        self.segs.append((body, R))
        self.tail = []
        self.tail0 = n + R * len(body)

    def __getitem__(self, i):
        if isinstance(i, slice):
            a, z, step = i.indices(len(self))
            if step != 1:
                raise ValueError("TensorTable: slices of step 1 only")
            return self.span(a, z)
        if i < 0:
            i += len(self)
        return self.entry(i)


def _moved_past(made: dict, e: tuple, loop: tuple) -> tuple:
    """Table entry ``e`` marked moved past by tl.range replay of ``loop`` (its shape a
    :class:`ReplayedPast`), one per entry in ``made`` (an entry is the launch's one tuple for its
    values, PEBuilder._entry: keyed by value); an entry marked already stays as it is (an inner
    loop's mark wins), and keys nothing, being equal to the entry it was."""
    if type(e[0]) is ReplayedPast:
        return e
    new = made.get(e)
    if new is None:
        new = made[e] = (ReplayedPast(e[0], loop),) + tuple(e[1:])
    return new


def _cycle(body: list, s0, a, z, out: list) -> None:
    """Extend ``out`` with the entries of tensor numbers a .. z of ``body`` repeated from number
    ``s0`` on: whole repeats of the body at list speed, the ends sliced."""
    n = len(body)
    while a < z:
        j = (a - s0) % n
        c = min(n - j, z - a)
        out.extend(body[j:j + c] if c < n else body)
        a += c


def _first(r) -> int:
    return r[0]  # a traced range's first row (TraceStore._bounds: [lo, hi, at])


def _tile_lo(t) -> int:
    return t[2]  # a tiling's first copied row (TraceStore._tiles: (a, z, lo, R, ...))


def _tile_end(t) -> int:
    return t[2] + t[3] * (t[1] - t[0])  # the row after its last copy


class _Repeated:
    """A tiling's tensor byte sizes: ``sizes`` (int64) repeated ``R`` times, kept unexpanded
    until :func:`join_sizes` writes them where they go."""

    __slots__ = ("sizes", "R")

    def __init__(self, sizes: np.ndarray, R: int) -> None:
        self.sizes, self.R = sizes, R

    def __len__(self) -> int:
        return len(self.sizes) * self.R

    def put(self, out: np.ndarray) -> None:
        out.reshape(self.R, -1)[:] = self.sizes


def join_sizes(parts: list) -> np.ndarray:
    """The parts (int64 arrays and :class:`_Repeated`) one after the other, int64, written
    once (no per-part copy first)."""
    return pages.concatenate(parts, np.int64)


class TraceStore:
    """The commands of every program of one launch, in program order, and the sites naming them.

    Builders push (site, src0, src1, src2) per command to ``pending``, one program after the
    other; :meth:`flush` turns what is pending, of however many programs, into COMMAND_DTYPE
    records (the traced rows, one array) and ``sites`` (int32 index into ``table``, one per
    command) in one pass in C (_replay.fill_records). tl.range replay appends tilings
    (:meth:`append_tiled`), which are kept as such: the rows they stand for are never written,
    and are read back exactly (:meth:`rows`, :meth:`slice`, the launch's
    :class:`TiledCommands`). Global command numbers count traced and tiled rows alike. The
    arrays grow as needed; :meth:`expect` sizes them for the whole launch (an estimate costs
    address space only: pages are touched as commands arrive). :meth:`close` flushes, trims and
    hands them over."""

    __slots__ = ("table", "pending", "n", "closed", "current", "_commands", "_n_lit", "_bounds",
                 "_sites", "_expected", "_segments", "_tensor_bytes", "_tiles", "_loops", "_program",
                 "replayed", "loop_runs", "reached", "_moved_at")

    def __init__(self, capacity: int = 1 << 12) -> None:
        self.table = SiteTable()
        self.pending = Pending()  #: (site, src0, src1, src2) per command not yet in the arrays
        #: rows tl.range replay wrote as traced rows (a body whose shapes move): traced rows
        #: whose Python did not run
        self.replayed = 0
        #: where each replay of a body whose shapes move starts writing (global numbering)
        self._moved_at: list = []
        #: the launch's tl.range loops: (file, line) -> [runs, iterations, replayed, PEs, why]
        #: (kernbench.language.loops: _log, loop_replays)
        self.loop_runs: dict = {}
        #: the device arrays the kernel reached as objects (DeviceMemory.used): id -> array
        self.reached: dict = {}
        self.n = 0  #: commands in the arrays (global numbering: traced and tiled rows)
        self.closed = False
        self.current = None  #: the builder appending to ``pending``
        self._commands = np.empty(capacity, COMMAND_DTYPE)  #: the traced rows
        self._n_lit = 0  #: traced rows in ``_commands``
        #: the traced rows' global ranges [lo, hi], in order (held one after the other)
        self._bounds: list = []
        self._sites = np.empty(capacity, np.int32)  #: every command's site, global numbering
        self._expected = 0
        #: per run of one program's commands in ``pending``: [builder, index of its first
        #: command in ``pending``, the builder's results made before it]
        self._segments: list = []
        #: byte size of every tensor made, in global order (PE, then id): an array per flush
        self._tensor_bytes: list = []
        #: every append_tiled, in order: (a, z, lo, R, D, shift, made) (:class:`TiledCommands`)
        self._tiles: list = []
        self._loops: list = []  #: the loop each tiling replays (append_tiled's ``loop``)
        #: where the current program starts: (its first global command, the first of _bounds
        #: and of _tiles that can hold its rows)
        self._program = (0, 0, 0)

    @property
    def n_traced(self) -> int:
        """Commands traced so far, pending ones included."""
        return self.n + self.pending.n

    @property
    def replay_mark(self) -> tuple:
        """What tl.range replay has emitted so far (rows replayed as traced rows, tilings): it
        moves exactly when an iteration is replayed."""
        return (self.replayed, len(self._tiles))

    def moving_replay(self) -> None:
        """tl.range replay of a body whose shapes move starts writing its rows here (as traced
        rows, kernbench.language.loops._replay_moving): :meth:`first_replayed` finds them."""
        self._moved_at.append(self.n_traced)

    def first_replayed(self, a: int, z: int) -> int:
        """The first of global commands a..z that tl.range replay wrote (no Python ran for it:
        a tiling's copy or a moving body's row), or ``z`` when none."""
        at = [t[2] for t in self._tiles if a <= t[2] < z]
        at += [x for x in self._moved_at if a <= x < z]
        return min(at, default=z)

    @property
    def n_literal(self) -> int:
        """Commands held as COMMAND_DTYPE rows (traced ones, not tiled), pending ones included."""
        return self._n_lit + self.pending.n

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
        # (its first rows may extend the last range of traced rows: that one is scanned too)
        self._program = (self.n_traced, max(len(self._bounds) - 1, 0), len(self._tiles))
        self._segments.append([builder, self.pending.n, 0])

    def end(self, builder) -> None:
        if self.current is builder:
            self.current = None

    def abandon(self) -> None:
        """The launch's trace failed: let go of the builders (a builder and its store hold each
        other, so they waited for the cyclic GC, which tracing turns off: a try of a launch
        traced again kept its builders through the next, a review)."""
        self.current = None
        self._segments.clear()

    @staticmethod
    def _grown(arr: np.ndarray, filled: int, need: int, expected: int) -> np.ndarray:
        cap = max(need, 4 * len(arr))  # few copies while the first PE is traced
        # the expected size costs address space only; where that is refused (an address-space
        # limit counts it), smaller growths, down to what is needed (a review: a kernel that
        # fitted was refused for its 4x growth)
        sizes = sorted({max(cap, expected), cap, max(need, 2 * len(arr)), need + need // 4, need},
                       reverse=True)
        for size in sizes:
            try:
                out = pages.empty(size, arr.dtype, sparse=True)
                break
            except MemoryError:
                if size == sizes[-1]:
                    raise
        # a copy of what is filled only (ndarray.resize would zero the whole new capacity), as
        # opaque records (a structured copy goes field by field, 12x slower)
        item = np.dtype((np.void, arr.dtype.itemsize))
        out[:filled].view(item)[:] = arr[:filled].view(item)
        return out

    def _room(self, lit: int, glob: int) -> None:
        """Room for ``lit`` more traced rows and ``glob`` more commands."""
        if self._n_lit + lit > len(self._commands):
            # tiled rows take no room here: expect the share of the launch traced so far
            exp = self._expected * max(self._n_lit, 1) // max(self.n, 1) if self._expected else 0
            self._commands = self._grown(self._commands, self._n_lit, self._n_lit + lit, exp)
        if self.n + glob > len(self._sites):
            self._sites = self._grown(self._sites, self.n, self.n + glob, self._expected)

    def flush(self) -> None:
        """Move every pending command into the arrays; each builder gets the byte sizes of the
        tensors its moved commands make (``_tb_parts``) and its range (``cmd_end``)."""
        pending = self.pending
        segs = self._segments
        if not pending.n:  # nothing to move; only the current program's segment goes on
            if self.current is not None:
                del segs[:-1]
                segs[0][1] = 0
            else:
                segs.clear()
            return
        self._move(pending.take())

    def append_tiled(self, a: int, z: int, R: int, D: int, shift: np.ndarray, loop=None) -> None:
        """Append R copies of the current program's commands a..z (a loop body B, tl.range
        replay): copy m (1..R) moves operand k of command j on by ``shift[j, k] * m * D`` and
        numbers its results m iterations further on: the commands tracing those iterations
        would have recorded (verify mode compares them). The copies are kept as the tiling
        (sites excepted, one int32 each): :meth:`rows` and :class:`TiledCommands` read them.
        ``loop``: which loop of the kernel this is (tl.range passes its file and line), the
        same on every PE and in every iteration of the loops around it."""
        if self.current is None:
            raise RuntimeError("append_tiled: no program is being traced")
        self.flush()
        n = z - a
        if R <= 0 or n <= 0:
            return
        lo, hi = self.n, self.n + R * n
        self._room(0, R * n)
        sites = self._sites[a:z]
        out_bytes = self.table.fields()[:, OUT_BYTES][sites]
        made_bytes = out_bytes[out_bytes >= 0]
        shift = np.array(shift, np.uint8, order="C")  # kept (TiledCommands): a copy of its own
        if shift.shape != (n, 3):
            raise ValueError("append_tiled: shift must be (z - a, 3)")
        self._tiles.append((a, z, lo, R, D, shift, len(made_bytes)))
        self._loops.append(len(self._loops) if loop is None else loop)
        self._sites[lo:hi].reshape(R, n)[:] = sites  # (no tiled copy first)
        tiled = _Repeated(made_bytes, R)
        self._tensor_bytes.append(tiled)
        cur = self._segments[-1]  # after flush: [current, 0, its results so far]
        cur[0]._tb_parts.append(tiled)
        cur[0].cmd_end = hi
        cur[2] += len(tiled)
        self.n = hi

    def layout(self, a: int, z: int) -> list | None:
        """How the current program's flushed rows a..z are kept, in order: ``(x, y, None)`` for
        traced rows x..y, ``(x, y, k)`` for the copies x..y of tiling k (``tiling(k)``), whose
        body lies in a..z too; None when they do not cover a..z so (a tiling reaching out of
        it). tl.range's replay of a body whose shapes move copies it part by part
        (kernbench.language.loops._replay_moving)."""
        start, b0, t0 = self._program
        out = []
        for lo, hi, _ in self._bounds[b0:]:
            if hi > a and lo < z:
                out.append((max(lo, a), min(hi, z), None))
        for k in range(t0, len(self._tiles)):
            ta, tz, lo, R = self._tiles[k][:4]
            hi = lo + R * (tz - ta)
            if hi > a and lo < z:
                if lo < a or hi > z or ta < a:
                    return None
                out.append((lo, hi, k))
        out.sort()
        at = a
        for x, y, _ in out:
            if x != at:
                return None
            at = y
        return out if at == z else None

    def tiling(self, k: int) -> tuple:
        """Tiling k as append_tiled took it: (a, z, R, D, shift, loop)."""
        a, z, _, R, D, shift, _ = self._tiles[k]
        return a, z, R, D, shift, self._loops[k]

    def _source(self) -> "_replay.CommandSource":
        return _replay.CommandSource(self.n, [(lo, hi) for lo, hi, _ in self._bounds],
                                     self._commands[:self._n_lit], self._tiles)

    def _records(self, a: int, z: int) -> np.ndarray:
        """Records of global commands a..z (flushed ones): a view when they are traced rows of
        one range, else read back (a copy)."""
        if not self._tiles:
            return self._commands[a:z]
        start, b0, t0 = self._program if self.current is not None else (0, 0, 0)
        if a < start:
            b0 = t0 = 0
        for lo, hi, at in self._bounds[b0:]:
            if lo <= a and z <= hi:
                return self._commands[at + a - lo:at + z - lo]
        if a < start:
            return self._source().rows(a, z)
        return self._program_source(start, b0, t0).rows(a - start, z - start)

    def _program_source(self, start: int, b0: int, t0: int) -> "_replay.CommandSource":
        """The current program's rows from global row ``start`` (its first, or one :meth:`_reader`
        chose) to n as a CommandSource numbered from 0: ``b0``, ``t0`` the first of ``_bounds``
        and of ``_tiles`` that can hold them. Every tiling from ``t0`` on must have its body at
        or after ``start`` (a program's tilings copy its own rows only, so the rest of the
        launch is left out; CommandSource refuses a body before its row 0)."""
        bounds, first = [], None
        for lo, hi, at in self._bounds[b0:]:
            if hi > start:
                x = max(lo, start)
                if first is None:
                    first = at + x - lo
                bounds.append((x - start, hi - start))
        tiles = [(a - start, z - start, lo - start, R, D, shift, made)
                 for a, z, lo, R, D, shift, made in self._tiles[t0:]]
        lit = self._commands[first:self._n_lit] if first is not None else self._commands[:0]
        return _replay.CommandSource(self.n - start, bounds, lit, tiles)

    def rows(self, a: int, z: int) -> np.ndarray:
        """(site, src0, src1, src2) of global commands a..z (int64, (z - a, 4)), flushed or
        pending."""
        out = np.empty((z - a, 4), np.int64)
        m = min(z, self.n)
        if a < m:
            c = self._records(a, m)
            out[:m - a, 0] = self._sites[a:m]
            out[:m - a, 1] = c["src0"]
            out[:m - a, 2] = c["src1"]
            out[:m - a, 3] = c["src2"]
        lo = max(a, self.n)
        if lo < z:
            out[lo - a:] = self.pending.rows(lo - self.n, z - self.n)
        return out

    def moved_on(self, a: int, b: int, n: int, t0: int, D: int, t_a: int, sites: bool = True):
        """tl.range's proof (kernbench.language.loops): are the current program's commands
        b..b+n commands a..a+n with the same sites, each operand at or above tensor ``t0``
        moved on by ``D`` and the others unchanged? If so, the (n, 3) uint8 flags of B's
        operands at or above ``t_a`` (those replay moves on), else None. Read in C through
        the program's reader (_replay.source_moved_on): a body holding replayed inner loops
        is never expanded. Rows not yet flushed (a loop of traced commands) are compared as
        they wait, with the same rule. ``sites=False``: the operands only (a body whose
        shapes move: the caller compares the sites)."""
        rec = self._pending_rows(a, b + n)
        if rec is not None:
            shift = np.empty((n, 3), np.uint8)
            if not sites:  # (rows_moved_on compares the sites too)
                rec = rec.copy()
                rec[b - a:b - a + n, 0] = rec[:n, 0]
            if not _replay.rows_moved_on(rec[:n], rec[b - a:b - a + n], t0, D, t_a, shift):
                return None
            return shift
        self.flush()
        # (a body's few rows: their bytes compared cost less than numpy's array_equal)
        if sites and self._sites[a:a + n].tobytes() != self._sites[b:b + n].tobytes():
            return None
        shift = np.empty((n, 3), np.uint8)
        src, at = self._reader(a, b + n)
        if not _replay.source_moved_on(src, a - at, b - at, n, t0, D, t_a, shift):
            return None
        return shift

    def _pending_rows(self, a: int, z: int):
        """(site, src0, src1, src2) of global commands a..z (int64, (z - a, 4)) if all are
        pending (recorded since the last flush), else None."""
        if a < self.n or not self.pending.n:
            return None
        p = self.pending.rows(a - self.n, z - self.n)
        if len(p) != z - a:
            return None
        return p

    def _reader(self, a: int, z: int) -> tuple:
        """(a CommandSource holding the current program's flushed rows a..z, the global row its
        row 0 is): the traced rows themselves when a..z is one range of them (a loop of
        traced commands: a reader of one segment is cheap), else the program's rows from the
        lowest one a..z needs on. A tiling's rows are read from its body's, which precede them,
        so that row is the lowest body start of the tilings from a on, taken again from there
        until none lies lower: a loop's proof reads back its own iterations, not every tiling
        of the program before them (building that reader grew with the program)."""
        start, b0, i0 = self._program
        bounds, tiles = self._bounds, self._tiles
        k = bisect.bisect_right(bounds, a, b0, key=_first) - 1  # the range holding a, if traced
        if k >= b0:
            lo, hi, at = bounds[k]
            if lo <= a and z <= hi:
                return _replay.CommandSource.of_rows(self._commands[at + a - lo:at + z - lo]), a
        x = a
        while True:
            j = bisect.bisect_right(tiles, x, i0, key=_tile_lo)  # the first tiling after x, or
            if j > i0 and _tile_end(tiles[j - 1]) > x:           # the one whose copies hold x
                j -= 1
            low = min([x] + [t[0] for t in tiles[j:]])
            if low == x:
                break
            x = low
        if x < start:  # (cannot be: a tiling's body is its own program's rows)
            raise RuntimeError("TraceStore: a tiling's body lies before its program")
        return self._program_source(x, max(bisect.bisect_right(bounds, x, b0, key=_first) - 1, b0),
                                    j), x

    def reads_any(self, a: int, z: int, watch) -> bool:
        """Does a command of the current program's a..z read one of the tensor numbers
        ``watch`` (an operand equal to one)? Read in C through the program's reader
        (_replay.source_reads_any), or as they wait to be flushed."""
        if type(watch) is range and watch.step == 1:  # (iterations' tensors: tens of thousands)
            w = np.arange(watch.start, max(watch.start, watch.stop), dtype=np.int64)
        else:
            w = np.array(sorted({int(x) for x in watch}), np.int64)  # (a few: np.unique costs more)
        rec = self._pending_rows(a, z)
        if rec is not None:
            return _replay.rows_read_any(rec, w)
        self.flush()
        src, at = self._reader(a, z)
        return _replay.source_reads_any(src, a - at, z - at, w)

    def _move(self, rec: np.ndarray) -> None:
        """Turn ``rec`` (the segments' rows, pending already cleared) into COMMAND_DTYPE records."""
        segs = self._segments
        a = self.n
        z = a + len(rec)
        self._room(len(rec), len(rec))
        at = self._n_lit
        starts = [seg[1] for seg in segs]
        made = np.empty(len(segs), np.int64)
        made_bytes = np.empty(len(rec), np.int64)
        # every field from the site's record, the operands from rec, each result numbered by
        # its program's count of results before it (a segment starts at its builder's count)
        n_made = _replay.fill_records(
            rec, self.table.records(), self.table.fields(), OUT_BYTES, np.array(starts, np.int64),
            np.array([seg[2] for seg in segs], np.int64), self._commands[at:at + len(rec)],
            self._sites[a:z], made_bytes, made)
        if self._bounds and self._bounds[-1][1] == a:
            self._bounds[-1][1] = z
        else:
            self._bounds.append([a, z, at])
        self._n_lit = at + len(rec)
        made_bytes = made_bytes[:n_made]
        self._tensor_bytes.append(made_bytes)
        made = made.tolist()
        k0 = 0
        for k, seg in enumerate(segs):
            k1 = k0 + made[k]
            seg[0]._tb_parts.append(made_bytes[k0:k1])
            seg[0].cmd_end = a + (starts[k + 1] if k + 1 < len(starts) else len(rec))
            k0 = k1
        self.n = z
        if self.current is not None:  # its next commands start a new segment
            cur = self._segments[-1]
            cur[1], cur[2] = 0, cur[2] + made[-1]
            del self._segments[:-1]
        else:
            self._segments.clear()

    def slice(self, a: int, z: int) -> tuple:
        """(commands, sites) of global commands a..z: views once closed (read back where
        tilings stand for them), copies before."""
        self.flush()
        c = self._records(a, z)
        if self.closed:
            return c, self._sites[a:z]
        return (c.copy() if c.base is not None else c), self._sites[a:z].copy()

    def tensor_bytes(self) -> np.ndarray:
        """Every tensor's byte size, in global order (flushed ones; all of them once closed)."""
        parts = self._tensor_bytes
        if len(parts) != 1 or not isinstance(parts[0], np.ndarray):
            self._tensor_bytes = parts = [join_sizes(parts)]
        return parts[0]

    def tensor_sizes(self) -> tuple | None:
        """Every tensor's byte size as ``(idx, table)``: ``table[idx]`` is :meth:`tensor_bytes`,
        ``idx`` uint16 (2 bytes a tensor, not 8; a repeated part indexed once), ``table`` the
        distinct sizes (int64, in the order first met). None when there are more than
        _replay.MAX_SIZES distinct sizes (then :meth:`tensor_bytes`)."""
        parts = [(p, 1) if isinstance(p, np.ndarray) else (p.sizes, p.R) for p in self._tensor_bytes]
        idx = pages.empty(sum(len(p) * R for p, R in parts), np.uint16)
        table = _replay.index_sizes(parts, idx)
        return None if table is None else (idx, table)

    def close(self) -> tuple:
        """Flush, trim to the commands traced and return (commands, sites); nothing is added
        after. ``commands`` is None when tilings stand for some rows (:meth:`compact`)."""
        if not self.closed:
            if self.current is not None:
                raise RuntimeError("close() while a PEBuilder is still tracing")
            self.flush()
            for plans in self.table.plans.values():
                plans.clear()  # they hold the kernel's code objects
            self._commands = pages.trimmed(self._commands, self._n_lit)
            self._sites = pages.trimmed(self._sites, self.n)
            self.closed = True
        return (None if self._tiles else self._commands), self._sites

    def compact(self) -> "TiledCommands | None":
        """The closed store's commands as :class:`TiledCommands` (None if nothing was tiled)."""
        if not self.closed:
            raise RuntimeError("compact() before close()")
        if not self._tiles:
            return None
        return TiledCommands(self.n, [(lo, hi) for lo, hi, _ in self._bounds], self._commands,
                             self._tiles, self._loops)


def _frozen(a):
    # an array no view can write: the C reader copies the tilings' flags and bounds, so an edit
    # in place would leave it on the old rows while `expand` gave the new ones (a review)
    if not isinstance(a, np.ndarray):
        return a
    a = np.ascontiguousarray(a)
    return np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape)


def _frozen_tiles(tiles) -> tuple:
    return tuple(tuple(_frozen(v) for v in t) if isinstance(t, (tuple, list)) else t for t in tiles)


class TiledCommands:
    """A launch's command array kept small: the rows tracing wrote and the tl.range tilings that
    stand for the rest, exactly (:meth:`expand` equals the array full tracing builds, byte for
    byte; verify mode and tests/test_compact_program.py compare them).

    A Program holds one in place of its ``commands`` (Program.compact): the tiled rows, most of
    a long kernel's, cost nothing until something reads ``commands``; the engine's checks and
    queues read it through :meth:`source` instead (kernbench._core.api). ``bounds`` ((k, 2)):
    the traced rows' global ranges, in order, held one after the other in ``literal``;
    ``tiles``: the store's append_tiled calls in order, ``(a, z, lo, R, D, shift, made)``; each
    copies rows a..z, which precede lo, so rebuilding the traced rows first and the tilings in
    order rebuilds every row. ``loops``: which loop of the kernel each tiling replays (a
    hashable key per tiling, alike for the same loop on every PE; default: each its own).
    Raises ValueError when they do not cover 0..n once, in order."""

    __slots__ = ("n", "bounds", "literal", "tiles", "loops", "_src")

    def __setattr__(self, name: str, value) -> None:
        # set once: the C reader (_src) is made from them, and the engine's checks are kept by
        # their contents (kernbench._core.api._stamp); a field replaced would leave the reader
        # on the old rows while `expand` gave the new ones (a review)
        try:
            now = object.__getattribute__(self, name)
        except AttributeError:
            pass
        else:  # (the reader may be dropped, to be made again from the fields: api.simulate)
            if not (name == "_src" and (value is None or now is None)):
                raise AttributeError(f"TiledCommands.{name} is set once (make a TiledCommands of "
                                     f"the rows you mean instead)")
        object.__setattr__(self, name, value)

    def __init__(self, n: int, bounds, literal: np.ndarray, tiles: list, loops=None) -> None:
        self.n = int(n)
        self.tiles = _frozen_tiles(tiles)
        self.loops = tuple(range(len(self.tiles)) if loops is None else loops)
        if len(self.loops) != len(self.tiles):
            raise ValueError("TiledCommands: one loop per tiling")
        self.bounds = _frozen(np.asarray(bounds, np.int64).reshape(-1, 2))
        self.literal = literal
        self._src = None
        self.source()  # checks that the ranges cover 0..n once, in order

    @classmethod
    def from_array(cls, commands: np.ndarray, tiles: list, loops=None) -> "TiledCommands":
        """The compact form of an expanded ``commands`` whose rows ``tiles`` rebuild."""
        cuts = [0]
        for a, z, lo, R, _, _, _ in tiles:
            cuts += [lo, lo + R * (z - a)]
        cuts.append(len(commands))
        bounds = np.array(cuts, np.int64).reshape(-1, 2)
        if np.any(np.diff(bounds.ravel()) < 0):
            raise ValueError("TiledCommands: tilings out of order or overlapping")
        bounds = bounds[bounds[:, 1] > bounds[:, 0]]
        rows = commands.view(_RECORD)
        literal = (np.concatenate([rows[a:z] for a, z in bounds]) if len(bounds)
                   else rows[:0]).view(COMMAND_DTYPE)
        return cls(len(commands), bounds, literal, tiles, loops)

    def __getstate__(self):  # (a slotted class needs it for pickle protocols 0 and 1)
        return self.n, self.bounds, self.literal, self.tiles, self.loops

    def __setstate__(self, state) -> None:
        self.n, self.literal = state[0], state[2]
        self.bounds, self.tiles = _frozen(state[1]), _frozen_tiles(state[3])
        self.loops = state[4] if len(state) > 4 else tuple(range(len(self.tiles)))
        self._src = None

    def source(self) -> "_replay.CommandSource":
        """The C reader of these rows (kernbench._core._replay.CommandSource): any row, exactly
        as :meth:`expand` writes it, without expanding the others."""
        if self._src is None:
            self._src = _replay.CommandSource(self.n, self.bounds, self.literal, self.tiles)
        return self._src

    def rows(self, a: int, z: int) -> np.ndarray:
        """Rows a..z, (z - a,) COMMAND_DTYPE."""
        return self.source().rows(a, z)

    def rows_with_unit(self, lowest: int) -> np.ndarray:
        """Global indices (ascending, int64) of the rows whose unit is ``lowest`` or above (the
        link commands: Unit.TX_E), found in the traced rows and each tiling's body, never
        reading the rows tilings stand for."""
        hit = np.flatnonzero(self.literal["unit"] >= lowest)
        seg = self.source().segments  # the reader's ranges: (lo, hi, tiling or -1, offset)
        segs = seg.tolist()
        starts = seg[:, 0]
        memo: dict = {}

        def within(x: int, y: int) -> np.ndarray:
            out = []
            k = max(int(np.searchsorted(starts, x, "right")) - 1, 0)
            while k < len(segs) and segs[k][0] < y:
                lo, hi, t, at = segs[k]
                a0, z0 = max(x, lo), min(y, hi)
                if a0 < z0:
                    if t < 0:
                        sel = hit[np.searchsorted(hit, at + a0 - lo):np.searchsorted(hit, at + z0 - lo)]
                        out.append(sel - at + lo)
                    else:
                        a, z, _, R = self.tiles[t][:4]
                        if t not in memo:
                            memo[t] = within(a, z) - a
                        n, body = z - a, memo[t]
                        m0, m1 = (a0 - lo) // n, (z0 - lo - 1) // n + 1
                        pos = (lo + n * np.arange(m0, m1, dtype=np.int64)[:, None] + body).ravel()
                        out.append(pos[(pos >= a0) & (pos < z0)])
                k += 1
            return pages.concatenate(out, np.int64)

        return within(0, self.n)

    @property
    def nbytes(self) -> int:
        """Bytes this keeps (the traced rows and the tilings' shift tables)."""
        return self.literal.nbytes + self.bounds.nbytes + sum(t[5].nbytes for t in self.tiles)

    def expand(self) -> np.ndarray:
        """The command array, (n,) COMMAND_DTYPE, rebuilt: the traced rows, then every tiling
        in order, one pass in C each (_replay.tile_commands)."""
        out = np.empty(self.n, COMMAND_DTYPE)
        k = 0
        lit, rows = self.literal.view(_RECORD), out.view(_RECORD)
        for a, z in self.bounds.tolist():
            rows[a:z] = lit[k:k + z - a]
            k += z - a
        for a, z, lo, R, D, shift, made in self.tiles:
            _replay.tile_commands(out[a:z], out[lo:lo + R * (z - a)], shift, R, D, made)
        return out
