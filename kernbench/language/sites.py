"""Sites: what names a command, and every field of it but its operands.

A site is everything static about a command: its kernel line, its op, its shapes and dtypes.
Each launch interns its sites in a :class:`SiteTable`; a command is its site's index plus its
operand tensor ids (kernbench.language.builder), so a launch keeps 4 bytes per command to name
it (labels, errors, Perfetto) and to rebuild its fields (:func:`site_fields`).

Site keys, ``(kind, file, line, ...)`` by kind (what :func:`label_of` prints):

- ``load``:   shape, dtype, allocation name
- ``store``:  shape, allocation dtype, allocation name
- ``dot``:    shape a, shape b, dtype a, dtype b
- ``vec``:    op name (a VEC_SUB key), out shape, out dtype
- ``reduce``: op name (a REDUCE_SUB key), in shape, axis (None = all), out dtype
- ``send``:   port, shape, dtype
- ``recv``:   port, shape, dtype
"""
from __future__ import annotations

import numpy as np

from ..common.pe_commands import COMMAND_DTYPE, PORT_NAMES, Opcode, Unit, VecOp
from . import semantic
from .semantic import ITEMSIZE, fmt_shape

__all__ = ["SiteTable", "array_of", "label_of", "site_fields", "SITE_COLUMNS", "OUT_BYTES", "VEC_SUB", "REDUCE_SUB",
           "reduce_geometry"]

semantic.register_internal(__file__)

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
    "exp": VecOp.EXP, "exp2": VecOp.EXP, "log": VecOp.LOG, "log2": VecOp.LOG, "sqrt": VecOp.SQRT, "rsqrt": VecOp.RSQRT,
    "floordiv": VecOp.DIV, "mod": VecOp.DIV, "arange": VecOp.FILL, "sigmoid": VecOp.SIGMOID,
    "and_": VecOp.BITWISE, "or_": VecOp.BITWISE, "xor": VecOp.BITWISE, "invert": VecOp.BITWISE,
    "shl": VecOp.BITWISE, "shr": VecOp.BITWISE,
}
VEC_SUB = {k: int(v) for k, v in VEC_SUB.items()}
REDUCE_SUB = {"max": int(VecOp.MAX), "min": int(VecOp.MIN), "sum": int(VecOp.ADD)}


def label_of(key: tuple) -> str:
    """A command in the kernel's words, from its site key, e.g. "dot (64,128)x(128,64) f16"."""
    kind = key[0]
    if kind == "vec":
        return f"{key[3]} {fmt_shape(key[4])} {key[5]}"
    if kind == "load":
        return f"load {fmt_shape(key[3])} {key[4]} from {key[5]}" + (" masked" if len(key) > 6 else "")
    if kind == "store":
        return f"store {fmt_shape(key[3])} {key[4]} to {key[5]}" + (" masked" if len(key) > 6 else "")
    if kind == "dot":
        d = key[5] if key[5] == key[6] else f"{key[5]}x{key[6]}"
        return f"dot {fmt_shape(key[3])}x{fmt_shape(key[4])} {d}"
    if kind == "reduce":
        ax = "all" if key[5] is None else key[5]
        return f"{key[3]}-reduce {fmt_shape(key[4])} axis {ax} {key[6]}"
    if kind == "send":
        return f"send to {PORT_NAMES[key[3]]} {fmt_shape(key[4])} {key[5]}"
    if kind == "recv":
        return f"recv from {PORT_NAMES[key[3]]} {fmt_shape(key[4])} {key[5]}"
    return kind


def array_of(key: tuple):
    """The device array a load or store site reads or writes (its name), None for other sites."""
    return key[5] if key[0] in ("load", "store") else None


#: Columns of :func:`site_fields`: COMMAND_DTYPE fields, then the bytes of the command's result
#: tensor (-1: the command makes none).
SITE_COLUMNS = ("opcode", "unit", "sub", "port", "m", "n", "k", "nbytes", "esize", "line")
OUT_BYTES = len(SITE_COLUMNS)  #: the column of the result's bytes


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
        outer, r, inner, _ = reduce_geometry(shape, axis, dtype)
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

    __slots__ = ("index", "keys", "plans", "entries", "_labels", "_fields", "_records")

    def __init__(self) -> None:
        self.index: dict = {}
        self.keys: list = []
        #: by kind of call: instruction offset of a kernel call site -> the site it made last
        #: time, with the code object and what it was made of (see PEBuilder.vec): a repeated
        #: call skips building its key
        self.plans: dict = {"vec": {}, "dot": {}, "reduce": {}, "other": {}}
        #: (shape, dtype, element count) -> the one tuple of the launch's tensor tables for it:
        #: tl.range's proof compares bodies of tensor entries, which is an identity test when
        #: alike entries are one object (and a comparison of three fields when not)
        self.entries: dict = {}
        self._labels: dict = {}
        self._fields = np.zeros((0, OUT_BYTES + 1), np.int64)
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
            f = self._fields = np.concatenate([f, new.reshape(-1, OUT_BYTES + 1)])
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


def reduce_geometry(shape: tuple, axis, dtype: str) -> tuple:
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
