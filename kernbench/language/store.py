"""The TraceStore: every command of a launch, as it is traced, in one growing array.

Builders (kernbench.language.builder) record four ints per command, (site, src0, src1, src2),
in the store's ``pending`` list, one program after the other; every few thousand commands the
store turns them into COMMAND_DTYPE records in one vectorized pass (the site gives every field
but the operands, and a result's tensor id is its program's running count of results). The
array grows in place of a copy-per-program and becomes the launch's Program as it is.
"""
from __future__ import annotations

import numpy as np

from .._core import _replay
from ..common.pe_commands import COMMAND_DTYPE
from .sites import SiteTable, OUT_BYTES

_RECORD = np.dtype((np.void, COMMAND_DTYPE.itemsize))  #: a command as an opaque record

__all__ = ["TraceStore", "TiledCommands"]


class TraceStore:
    """The commands of every program of one launch, in program order, and the sites naming them.

    Builders append (site, src0, src1, src2) per command to ``pending``, one program after the
    other; :meth:`flush` turns what is pending, of however many programs, into ``commands``
    (COMMAND_DTYPE) and ``sites`` (int32 index into ``table``) in one vectorized pass. The arrays
    grow as needed; :meth:`expect` lets the caller size them for the whole launch (an estimate
    costs address space only: pages are touched as commands arrive). :meth:`close` flushes,
    trims and hands them over."""

    __slots__ = ("table", "pending", "n", "closed", "current", "_commands", "_sites", "_expected",
                 "_segments", "_tensor_bytes", "_tiles")

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
        #: every append_tiled, in order: (a, z, lo, R, D, shift, made) (:class:`TiledCommands`)
        self._tiles: list = []

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
        # a copy of what is filled only (ndarray.resize would zero the whole new capacity), as
        # opaque records (a structured copy goes field by field, 12x slower)
        c[:self.n].view(_RECORD)[:] = self._commands[:self.n].view(_RECORD)
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
        pending.clear()
        self._move(rec)

    def append_tiled(self, a: int, z: int, R: int, D: int, shift: np.ndarray) -> None:
        """Append R copies of the current program's commands a..z (a loop body B, tl.range
        replay): copy m (1..R) moves operand k of command j on by ``shift[j, k] * m * D`` and
        numbers its results m iterations further on: the commands tracing those iterations
        would have recorded (verify mode compares them)."""
        if self.current is None:
            raise RuntimeError("append_tiled: no program is being traced")
        self.flush()
        n = z - a
        if R <= 0 or n <= 0:
            return
        lo, hi = self.n, self.n + R * n
        if hi > len(self._commands):
            self._grow(hi)
        sites = self._sites[a:z]
        out_bytes = self.table.fields()[:, OUT_BYTES][sites]
        made_bytes = out_bytes[out_bytes >= 0]
        shift = np.array(shift, np.uint8, order="C")  # kept (TiledCommands): a copy of its own
        _replay.tile_commands(self._commands[a:z], self._commands[lo:hi], shift, R, D, len(made_bytes))
        self._tiles.append((a, z, lo, R, D, shift, len(made_bytes)))
        self._sites[lo:hi] = np.tile(sites, R)
        tiled = np.tile(made_bytes, R)
        self._tensor_bytes.append(tiled)
        cur = self._segments[-1]  # after flush: [current, 0, its results so far]
        cur[0]._tb_parts.append(tiled)
        cur[0].cmd_end = hi
        cur[2] += len(tiled)
        self.n = hi

    def rows(self, a: int, z: int) -> np.ndarray:
        """(site, src0, src1, src2) of global commands a..z (int64, (z - a, 4)), flushed or
        pending."""
        out = np.empty((z - a, 4), np.int64)
        m = min(z, self.n)
        if a < m:
            c = self._commands[a:m]
            out[:m - a, 0] = self._sites[a:m]
            out[:m - a, 1] = c["src0"]
            out[:m - a, 2] = c["src1"]
            out[:m - a, 3] = c["src2"]
        lo = max(a, self.n)
        if lo < z:
            p = self.pending[4 * (lo - self.n):4 * (z - self.n)]
            out[lo - a:] = np.array(p, np.int64).reshape(-1, 4)
        return out

    def _move(self, rec: np.ndarray) -> None:
        """Turn ``rec`` (the segments' rows, pending already cleared) into COMMAND_DTYPE records."""
        segs = self._segments
        a = self.n
        z = a + len(rec)
        if z > len(self._commands):
            self._grow(z)
        site = rec[:, 0]
        out = self._commands[a:z]
        # sites are valid ("raise" would buffer); records taken as opaque 72-byte items (a
        # structured take goes field by field, 30x slower)
        np.take(self.table.records().view(_RECORD), site, out=out.view(_RECORD), mode="clip")
        out["src0"] = rec[:, 1]
        out["src1"] = rec[:, 2]
        out["src2"] = rec[:, 3]
        out_bytes = self.table.fields()[:, OUT_BYTES][site]
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

    def compact(self) -> "TiledCommands | None":
        """The closed store's commands as :class:`TiledCommands` (None if nothing was tiled)."""
        if not self.closed:
            raise RuntimeError("compact() before close()")
        return TiledCommands(self._commands, self._tiles) if self._tiles else None


class TiledCommands:
    """A launch's command array kept small: the rows tracing wrote and the tl.range tilings that
    rebuild the rest, exactly (:meth:`expand` equals the array tracing built, byte for byte).

    A Program holds one beside its ``commands`` and drops the array after its launch's timing
    (Program.release_commands): the replayed rows, most of a long kernel's, then cost nothing
    until something reads ``commands`` again. ``tiles``: the store's append_tiled calls in
    order, ``(a, z, lo, R, D, shift, made)``; each copies rows a..z, which precede lo, so
    rebuilding the traced rows first and the tilings in order rebuilds every row."""

    __slots__ = ("n", "bounds", "literal", "tiles")

    def __init__(self, commands: np.ndarray, tiles: list) -> None:
        self.n = n = len(commands)
        self.tiles = tuple(tiles)
        # the traced rows: the gaps between the tilings' outputs (disjoint, in order)
        cuts = [0]
        for a, z, lo, R, _, _, _ in self.tiles:
            cuts += [lo, lo + R * (z - a)]
        cuts.append(n)
        self.bounds = np.array(cuts, np.int64).reshape(-1, 2)
        if np.any(np.diff(self.bounds.ravel()) < 0):
            raise AssertionError("TiledCommands: tilings out of order or overlapping")
        rows = commands.view(_RECORD)
        self.literal = np.concatenate([rows[a:z] for a, z in self.bounds]).view(COMMAND_DTYPE)

    def __getstate__(self):  # (a slotted class needs it for pickle protocols 0 and 1)
        return self.n, self.bounds, self.literal, self.tiles

    def __setstate__(self, state) -> None:
        self.n, self.bounds, self.literal, self.tiles = state

    @property
    def nbytes(self) -> int:
        """Bytes this keeps (the traced rows and the tilings' shift tables)."""
        return self.literal.nbytes + self.bounds.nbytes + sum(t[5].nbytes for t in self.tiles)

    def expand(self) -> np.ndarray:
        """The command array, (n,) COMMAND_DTYPE, rebuilt."""
        out = np.empty(self.n, COMMAND_DTYPE)
        k = 0
        lit, rows = self.literal.view(_RECORD), out.view(_RECORD)
        for a, z in self.bounds.tolist():
            rows[a:z] = lit[k:k + z - a]
            k += z - a
        for a, z, lo, R, D, shift, made in self.tiles:
            _replay.tile_commands(out[a:z], out[lo:lo + R * (z - a)], shift, R, D, made)
        return out
