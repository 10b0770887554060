"""Functional replay: compute every traced command with numpy, in the engine's completion order.

The engine times the commands; replay gives them values. Running in completion order means a
command's operands are computed before it (an operand is ready only when its producer ends), a
load sees every earlier store of its PE (the DMA unit is in order), and a recv finds its message:
the engine's ``messages`` pairs each recv with its send, whose value is stashed when the send
completes (a send ends before its recv does).

Numerics are the language's (kernbench.language.numerics, the functions the tracer also folds
constants with): values are kept in their declared dtypes (f16, bf16, f32, fp8 via ml_dtypes,
int32, bool masks); float ops compute in f32 and round once; dot and reductions accumulate in
f32; a store converts to the allocation's dtype.
"""
from __future__ import annotations


import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..common.errors import KernelError, file_line, pe_at, short_repr
from ..language.numerics import cast_value, convert, dot_value, reduce_value, value_of, vec_value
from ..language.semantic import NP_DTYPES, dtype_name, element_indices, fmt_shape, masked_access
from .memory import PlacementError

__all__ = ["replay", "value_of"]

_F32 = np.dtype(np.float32)


def _to(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round to ``dtype`` once (through f32, so bf16 -> f16 and fp8 conversions are exact-then-round)."""
    if v.dtype == dtype:
        return v
    if dtype == np.int32 or v.dtype.kind in "bi":
        return cast_value(v, dtype_name(dtype))
    if v.dtype != _F32 and dtype != _F32:
        v = v.astype(_F32)
    return v.astype(dtype)


def _arg(v: list, o):
    """An operand's value: a tensor spec (number or view tuple) or an immediate as it is."""
    t = type(o)
    if t is int or t is tuple:
        return value_of(v, o)
    return o


def _masked_indices(alloc, e0, shape, stride, mask, pe, file, line, verb):
    """(indices of the unmasked elements, the mask broadcast to ``shape``), or the KernelError of
    semantic.masked_access naming the PE and the line."""
    idx, m, msg = masked_access(alloc, e0, shape, stride, mask, verb == "store")
    if msg is not None:
        raise KernelError(f"{pe_at(pe, file, line)}: masked {verb} of "
                          f"{fmt_shape(shape)} {alloc.dtype} {msg}", pe=pe, where=file_line(file, line, full=True))
    return idx, m


def _region(flat: np.ndarray, e0: int, shape: tuple, stride) -> np.ndarray:
    """The elements of ``flat`` (an allocation's contiguous 1-D contents) that a load or store
    of ``shape`` at element offset ``e0`` touches, as a view (writable when ``flat`` is).

    With ``stride`` (elements between row starts) ``shape`` is (rows, cols): rows of ``cols``
    elements, ``stride`` apart. The semantic layer has checked that the region lies inside the
    allocation and that ``stride >= cols``. The strided view is made over the raw bytes and then
    viewed as ``flat``'s dtype: ``as_strided`` rebuilds its array from ``__array_interface__``,
    whose type string does not round-trip for every dtype (ml_dtypes' float8_e5m2 is '<f1',
    which numpy cannot parse), while a byte view and a same-size ``view`` work for any dtype
    (the last axis stays contiguous)."""
    if stride is None:
        n = 1
        for d in shape:
            n *= d
        return flat[e0:e0 + n].reshape(shape)
    rows, cols = shape
    isz = flat.itemsize
    raw = flat.view(np.uint8)[e0 * isz:]
    return as_strided(raw, shape=(rows, cols * isz), strides=(stride * isz, 1)).view(flat.dtype)


#: Loads of unwritten memory a launch records in full (the rest are counted).
MAX_UNWRITTEN_READS = 64


def _first_unwritten(memory, alloc, g: int, e0: int, shape: tuple, stride, idx=None):
    """Element index of the first element of a load that nothing has written, or None."""
    w = memory.written(alloc, g)
    if w is None:
        return None
    ok = w[idx] if idx is not None else _region(w, e0, shape, stride)
    if ok.all():
        return None
    flat_ix = element_indices(e0, shape, stride).reshape(-1) if idx is None else idx
    return int(flat_ix[np.argmin(ok.reshape(-1))])


def _mark_written(memory, alloc, g: int, e0: int, shape: tuple, stride, idx=None) -> None:
    w = memory.written(alloc, g)
    if w is None:
        return
    if idx is not None:
        w[idx] = True
    else:
        _region(w, e0, shape, stride)[...] = True
    if w.all():
        alloc._written[g] = None  # all written: loads need not look again


_ABSENT = object()


class _Undo:
    """What a launch's stores changed, to put back if the launch fails in replay: per (array,
    PE) copy, the objects it held before the first store (a copy made private by the store is
    dropped again), and, where a store wrote into a copy or a written-mask the array held
    before, the elements it overwrote (a store's own size, not the copy's). Where another
    thread's launch stored into a copy meanwhile (``DeviceArray._writes`` moved on by more than
    this launch's stores), the copy and its mask stay and only this launch's elements are put
    back: dropping them would drop that launch's stores too (a review's race)."""

    __slots__ = ("first", "timed", "saved", "stores", "regions")

    def __init__(self) -> None:
        #: (id(array), PE) -> (array, PE, contents, written mask, stored, its store count)
        self.first: dict = {}
        self.timed: dict = {}  #: id(array) -> (array, its timing-read flag)
        self.saved: list = []  #: (flat array, e0 or indices, shape, stride, the old elements)
        self.stores: dict = {}  #: (id(array), PE) -> stores this launch made into the copy
        #: ((id(array), PE), e0, shape, stride, the mask as bits or None) of each store into a
        #: copy or written-mask this launch made (the elements another launch's store meanwhile
        #: would share the copy with); a mask as bits, 1/64 of its indices' bytes
        self.regions: list = []

    def before(self, memory, alloc, g: int) -> None:
        """Called before PE ``g``'s copy of ``alloc`` is made writable for a store."""
        key = (id(alloc), g)
        if key not in self.first:
            with memory._lock:  # (the copy and its store count as one: another thread's store
                # between the two would be counted as this launch's: a review's race)
                self.first[key] = (alloc, g, alloc._data.get(g), alloc._written.get(g, _ABSENT),
                                   g in alloc._stored, alloc._writes.get(g, 0))
                self.timed.setdefault(id(alloc), (alloc, alloc.timed))
        self.stores[key] = self.stores.get(key, 0) + 1

    def keep(self, alloc, g: int, flat, e0, shape, stride, ix=None, mk=None) -> None:
        """Keep the elements a store at ``e0`` (or indices ``ix``, of mask ``mk``) is about to
        overwrite in ``flat`` and in the written mask, where they are the array's own from
        before; where they are not (a copy or mask this launch made), where the store is."""
        key = (id(alloc), g)
        d, w = self.first[key][2:4]
        if flat is not d or w is _ABSENT:
            self.regions.append((key, e0, shape, stride, None if ix is None else np.packbits(mk)))
        for arr, old in ((flat, d), (alloc._written.get(g), w)):
            if arr is not None and arr is old:
                region = arr[ix] if ix is not None else _region(arr, e0, shape, stride)
                self.saved.append((arr, e0, shape, stride, ix, region.copy()))

    def restore(self, memory) -> None:
        with memory._lock:  # (no store of another thread between the count and the put back)
            alone = {key: e[0]._writes.get(e[1], 0) - e[5] == self.stores[key]
                     for key, e in self.first.items()}
            for arr, e0, shape, stride, ix, old in reversed(self.saved):
                _put(arr, e0, shape, stride, ix, old)
            for key, (alloc, g, d, w, stored, _) in self.first.items():
                if alone[key]:
                    if d is None:
                        alloc._data.pop(g, None)
                    else:
                        alloc._data[g] = d
                    if w is _ABSENT:
                        alloc._written.pop(g, None)
                    else:
                        alloc._written[g] = w
                    if not stored:
                        alloc._stored.discard(g)
                else:
                    self._put_back_elements(memory, key, alloc, g, d, w)
            if all(alone.values()):
                for alloc, timed in self.timed.values():
                    alloc.timed = timed

    def _put_back_elements(self, memory, key, alloc, g: int, d, w) -> None:
        """Another launch stored into PE ``g``'s copy of ``alloc`` too: this launch's elements
        back as they were, in the copy and mask the array holds now."""
        regions = []
        for _, e0, shape, stride, bits in (r for r in self.regions if r[0] == key):
            ix = None
            if bits is not None:  # (the indices again, from the mask: as the store found them)
                mk = np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(bool)
                ix = masked_access(alloc, e0, shape, stride, mk, True)[0]
            regions.append((e0, shape, stride, ix))
        cur = alloc._data.get(g)
        if cur is not None and cur is not d:  # a copy this launch made: from the one before
            for e0, shape, stride, ix in regions:
                old = memory._fill(alloc) if d is None else (
                    d[ix] if ix is not None else _region(d, e0, shape, stride))
                _put(cur, e0, shape, stride, ix, old)
        if w is None:  # all written before: the mask was never touched
            return
        m = alloc._written.get(g, _ABSENT)
        if m is None:  # (every element written since: the mask dropped)
            m = alloc._written[g] = np.ones(alloc.numel, np.bool_)
        if m is _ABSENT or m is w:  # (the elements were put back into w itself, above)
            return
        for e0, shape, stride, ix in regions:
            old = False if w is _ABSENT else (w[ix] if ix is not None else _region(w, e0, shape, stride))
            _put(m, e0, shape, stride, ix, old)


def _put(arr, e0, shape, stride, ix, old) -> None:
    if ix is not None:
        arr[ix] = old
    else:
        _region(arr, e0, shape, stride)[...] = old


def _contents(memory, alloc, g: int, m, undo: _Undo | None = None):
    """PE ``g``'s copy of ``alloc`` for the load or store of metadata ``m``; for a store
    (``undo`` given) writable, what it held first kept in ``undo``. Memory's refusal (a copy
    too big for host memory) as a KernelError naming the PE and the kernel line, as is an
    array freed after the command was traced (its values are gone, not unwritten)."""
    if alloc.freed:
        pe = memory.hw.pe_coords(g)
        raise KernelError(f"{pe_at(pe, m[1], m[2])}: {m[0]} of {short_repr(alloc.name)}, which was freed while "
                          f"the launch ran (ctx.free in the kernel, or in another thread): free an "
                          f"array once the launches that use it have returned", pe=pe,
                          where=file_line(m[1], m[2], full=True))
    try:
        if undo is None:
            return memory.flat(alloc, g)
        undo.before(memory, alloc, g)
        return memory.writable(alloc, g)
    except PlacementError as e:
        pe = memory.hw.pe_coords(g)
        raise KernelError(f"{pe_at(pe, m[1], m[2])}: {e}", pe=pe, where=file_line(m[1], m[2], full=True)) from None


def replay(program, engine, metas: list, handles: list, memory, shadow=None, undo=None) -> list:
    """Compute every command of ``program`` and write stores into ``memory``; a launch that
    raises here (an int32 division by zero, a masked access out of bounds found in replay,
    Ctrl-C) leaves device memory as it was before the launch (docs/reliability.md).

    ``metas[g]`` is PE g's command metadata (builder.meta, or None for a silent PE);
    ``handles[g]`` is (builder.handles, builder.views): ``handles[g][0][i]`` a weak reference to
    the handle returned for tensor i, whose ``.data`` gets the value if the kernel still holds
    it; ``handles[g][1]`` maps tensor i to weak references to the views tl calls made of it,
    with their specs, each held one given what it reads of the value. Returns the loads of
    memory nothing had written, in completion order: dicts with pe, where (file:line), array, element (the first, per load),
    at most MAX_UNWRITTEN_READS of them. A value is dropped once its last reader has run, so
    replay holds about what the PEs' SRAM would, not every tensor of the launch.

    ``shadow`` (kernbench.runtime.drift.Shadow, the launch's ``drift`` option) is told every
    command once its value is computed, before its operands may be dropped.

    ``undo``: an :class:`_Undo` the caller keeps, and restores if the launch fails after
    replay too (a Ctrl-C while it reads the results back: executor.time_traced); None: one of
    replay's own, restored if replay raises."""
    own = undo is None
    if own:
        undo = _Undo()
    try:
        return _replay(program, engine, metas, handles, memory, shadow, undo)
    except BaseException as e:
        if own:
            undo.restore(memory)
        if isinstance(e, MemoryError):
            _note_where(e, memory.hw)
        raise


def _note_where(e: MemoryError, hw) -> None:
    """Name the PE and kernel line whose value functional replay was computing when memory ran
    out (read off _replay's frame: no cost per command), and what to do (a review: numpy's own
    MemoryError, with neither)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code is not _replay.__code__:
        tb = tb.tb_next
    if tb is None:
        return
    at = tb.tb_frame.f_locals
    g, m = at.get("g"), at.get("m")
    if g is None or m is None:
        return
    e.add_note(f"(raised by functional replay computing the value of {pe_at(hw.pe_coords(g), m[1], m[2])}: "
               f"the launch's tensor values alive at once took more memory than this process may use; "
               f"drop handles the kernel no longer needs, use smaller tiles, or run in timing mode, "
               f"which computes no values)")


def _replay(program, engine, metas: list, handles: list, memory, shadow, undo: _Undo) -> list:
    order = engine.completion_order
    unwritten: list = []
    if len(order) == 0:
        return unwritten
    cmds = program.commands
    offs = program.cmd_offsets
    pe_of = np.searchsorted(offs, order, side="right") - 1
    local = order - offs[pe_of]
    dst_of = cmds["dst"].tolist()
    srcs_of = list(zip(cmds["src0"].tolist(), cmds["src1"].tolist(), cmds["src2"].tolist()))
    msgs = engine.messages
    send_of = dict(zip(msgs["recv"].tolist(), msgs["send"].tolist()))
    stash: dict = {}
    vals, readers = [], []
    t_off = program.tensor_offsets
    for g in range(len(metas)):
        n_t = int(t_off[g + 1] - t_off[g])
        vals.append([None] * n_t)
        c = program.pe_commands(g)
        ids = np.concatenate([c["src0"], c["src1"], c["src2"]])
        readers.append(np.bincount(ids[ids >= 0], minlength=n_t).tolist())
    hw = memory.hw
    with np.errstate(all="ignore"):
        for g, li, idx in zip(pe_of.tolist(), local.tolist(), order.tolist()):
            m = metas[g][li]
            v = vals[g]
            kind = m[0]
            dst = dst_of[idx]
            if kind == "vec":
                name, ops, shape, dtype, ct, imm = m[3], m[4], m[5], m[6], m[7], m[8]
                try:
                    v[dst] = vec_value(name, [_arg(v, o) for o in ops], ct, shape, dtype, imm)
                except ArithmeticError as e:  # int32 // or % by zero, a shift out of range
                    pe = hw.pe_coords(g)
                    raise KernelError(f"{pe_at(pe, m[1], m[2])}: {e}",
                                      pe=pe, where=file_line(m[1], m[2], full=True)) from None
            elif kind == "load":
                alloc, e0, shape, stride, dtype, mspec, other = m[3], m[4], m[5], m[6], m[7], m[8], m[9]
                flat = _contents(memory, alloc, g, m)
                if mspec is None:
                    v[dst] = np.array(_region(flat, e0, shape, stride))
                    bad = _first_unwritten(memory, alloc, g, e0, shape, stride)
                else:
                    ix, mk = _masked_indices(alloc, e0, shape, stride, value_of(v, mspec),
                                             hw.pe_coords(g), m[1], m[2], "load")
                    bad = _first_unwritten(memory, alloc, g, e0, shape, stride, ix)
                    nd = NP_DTYPES[dtype]
                    o = 0 if other is None else _arg(v, other)
                    # (a Python number as an operator's: an f32 constant cast to the load's
                    # dtype, as Triton's load casts `other`; numerics.convert)
                    out = np.array(_to(np.asarray(o), nd) if isinstance(o, np.ndarray)
                                   else cast_value(np.asarray(convert(o, dtype)), dtype), nd)
                    out = np.array(np.broadcast_to(out, shape))
                    out[mk] = flat[ix]
                    v[dst] = out
                if bad is not None and len(unwritten) < MAX_UNWRITTEN_READS:
                    unwritten.append({"pe": hw.pe_coords(g), "where": file_line(m[1], m[2], full=True),
                                      "array": alloc.name, "element": bad})
            elif kind == "dot":
                v[dst] = dot_value(value_of(v, m[3]), value_of(v, m[4]))
            elif kind == "reduce":
                name, spec, axis, dtype = m[3], m[4], m[6], m[7]
                v[dst] = reduce_value(name, value_of(v, spec), axis, dtype)
            elif kind == "store":
                spec, alloc, e0, shape, stride, mspec = m[3], m[4], m[5], m[6], m[7], m[8]
                x = _to(value_of(v, spec), NP_DTYPES[alloc.dtype])
                if mspec is None:
                    flat = _contents(memory, alloc, g, m, undo)
                    undo.keep(alloc, g, flat, e0, shape, stride)
                    _region(flat, e0, shape, stride)[...] = x.reshape(shape)
                    _mark_written(memory, alloc, g, e0, shape, stride)
                else:
                    ix, mk = _masked_indices(alloc, e0, shape, stride, value_of(v, mspec),
                                             hw.pe_coords(g), m[1], m[2], "store")
                    flat = _contents(memory, alloc, g, m, undo)
                    undo.keep(alloc, g, flat, e0, shape, stride, ix, mk)
                    flat[ix] = x.reshape(shape)[mk]
                    _mark_written(memory, alloc, g, e0, shape, stride, ix)
            elif kind == "send":
                stash[idx] = value_of(v, m[3])
            elif kind == "recv":
                v[dst] = stash.pop(send_of[idx]).reshape(m[4])
            else:  # pragma: no cover - the builder makes only the kinds above
                raise AssertionError(f"unknown command kind {short_repr(kind)}")
            if shadow is not None:
                shadow.after(g, idx, m, v, dst, x if kind == "store" else None)
            if dst >= 0:
                refs, views = handles[g]
                h = refs[dst]()
                if h is not None:
                    h.data = v[dst]
                vs = views.get(dst) if views else None
                if vs:
                    for r, spec in vs:
                        h = r()
                        if h is not None:
                            h.data = value_of(v, spec)
            rd = readers[g]
            for sid in srcs_of[idx]:
                if sid >= 0:
                    rd[sid] -= 1
                    if rd[sid] == 0:
                        v[sid] = None
    return unwritten
