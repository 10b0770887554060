"""The builder: turns checked ``tl`` calls into one PE's command stream.

One :class:`PEBuilder` per traced program. It assigns tensor ids (SSA: one producer each) and SRAM
addresses, appends commands to a :class:`~kernbench.common.pe_commands.StreamBuilder` as plain
tuples in COMMAND_DTYPE field order (one numpy array is built per PE at the end), and records per
command a small metadata tuple: what functional replay needs to compute the value, and what labels
and error messages need to name it.

Metadata layout, ``(kind, file, line, ...)`` by kind:

- ``load``:   alloc, element offset, shape, row stride or None, dtype
- ``store``:  src spec, alloc, element offset, shape, row stride or None
- ``dot``:    spec a, spec b, shape a, shape b, dtype a, dtype b
- ``vec``:    op name, operands (specs or float immediates), out shape, out dtype
- ``reduce``: op name, src spec, in shape, axis (None = all), out dtype
- ``send``:   src spec, port, shape, dtype
- ``recv``:   port, shape, dtype

A spec is a tensor id, or ``(id, shape, transposed)`` for a view (see semantic.operand).
Tensor ids index ``tensors`` (shape, dtype, handle, numel) and the StreamBuilder's byte table.
"""
from __future__ import annotations

import numpy as np

from ..common.pe_commands import N_PORTS, Opcode, StreamBuilder, TensorHandle, Unit, VecOp
from . import semantic
from .semantic import ITEMSIZE

__all__ = ["PEBuilder", "SRAM_ALIGN"]

semantic.register_internal(__file__)

#: SRAM addresses are handed out in program order at this alignment (a naming aid: the engine
#: owns liveness, so addresses are unique per PE and never reused).
SRAM_ALIGN = 64

_LOAD, _STORE, _DOT, _VEC, _REDUCE, _SEND, _RECV = (int(o) for o in Opcode)
_DMA, _GEMM, _VECTOR = int(Unit.DMA), int(Unit.GEMM), int(Unit.VECTOR)
_TX0, _RX0 = int(Unit.TX_E), int(Unit.RX_E)


class PEBuilder:
    """Commands, tensors and metadata of one program, traced on PE (pe, cube)."""

    __slots__ = (
        "pe", "cube", "g", "functional", "memory", "nbr", "sfr_text",
        "sb", "tensors", "pinned", "meta", "sends", "recvs", "sram_top",
        "_cmd", "_tb", "_tens", "_meta",
    )

    def __init__(self, pe: int, cube: int, g: int, *, functional: bool, memory, nbr, sfr_text: str):
        self.pe, self.cube, self.g = pe, cube, g
        self.functional = functional
        self.memory = memory  #: DeviceMemory: pointer lookups for loads and stores
        self.nbr = nbr  #: this PE's row of the SFR neighbour table
        self.sfr_text = sfr_text
        self.sb = StreamBuilder()
        #: by tensor id: (buffer shape, dtype, the handle returned for it, element count)
        self.tensors: list = []
        self.pinned: list = []  #: ids of pinned tensors (rare, so kept sparse)
        self.meta: list = []
        self.sends = [[] for _ in range(N_PORTS)]  #: per port: (local cmd, shape, dtype, file, line)
        self.recvs = [[] for _ in range(N_PORTS)]
        self.sram_top = 0
        # Bound appends: the hot path is a few of these per tl call.
        self._cmd = self.sb.cmds.append
        self._tb = self.sb.tensor_bytes.append
        self._tens = self.tensors.append
        self._meta = self.meta.append

    @property
    def n_commands(self) -> int:
        return len(self.meta)

    def _new(self, shape: tuple, dtype: str, n: int, nbytes: int, pinned: bool = False) -> TensorHandle:
        i = len(self.tensors)
        addr = self.sram_top
        self.sram_top = addr + ((nbytes + SRAM_ALIGN - 1) & -SRAM_ALIGN)
        h = TensorHandle(i, addr, shape, dtype, nbytes, None, "sram", pinned)
        self._tens((shape, dtype, h, n))
        self._tb(nbytes)
        if pinned:
            self.pinned.append(i)
        return h

    # -- DMA --------------------------------------------------------------------------------
    def load(self, file, line, alloc, e0: int, shape: tuple, n: int, dtype: str, stride, pinned=False,
             after: int = -1):
        nbytes = n * ITEMSIZE[dtype]
        h = self._new(shape, dtype, n, nbytes, pinned)
        self._cmd((0, 0, 0, nbytes, _LOAD, _DMA, 0, -1, after, -1, -1, h.id, 0, line))
        self._meta(("load", file, line, alloc, e0, shape, stride, dtype))
        return h

    def store(self, file, line, spec, src: int, alloc, e0: int, shape: tuple, n: int, stride) -> None:
        nbytes = n * alloc.itemsize
        self._cmd((0, 0, 0, nbytes, _STORE, _DMA, 0, -1, src, -1, -1, -1, 0, line))
        self._meta(("store", file, line, spec, alloc, e0, shape, stride))

    # -- GEMM -------------------------------------------------------------------------------
    def dot(self, file, line, sa, sb, ia: int, ib: int, a_shape, b_shape, da: str, db: str,
            m: int, n: int, k: int):
        esize = max(ITEMSIZE[da], ITEMSIZE[db])
        h = self._new((m, n), "f32", m * n, 4 * m * n)
        self._cmd((m, n, k, 0, _DOT, _GEMM, 0, -1, ia, ib, -1, h.id, esize, line))
        self._meta(("dot", file, line, sa, sb, a_shape, b_shape, da, db))
        return h

    # -- VECTOR -----------------------------------------------------------------------------
    def vec(self, file, line, sub: int, name: str, operands: tuple, s0: int, s1: int, s2: int,
            shape: tuple, n: int, dtype: str):
        # _new inlined: this is the most frequent command.
        i = len(self.tensors)
        nbytes = n * ITEMSIZE[dtype]
        h = TensorHandle(i, self.sram_top, shape, dtype, nbytes, None, "sram", False)
        self.sram_top += (nbytes + SRAM_ALIGN - 1) & -SRAM_ALIGN
        self._tens((shape, dtype, h, n))
        self._tb(nbytes)
        self._cmd((0, n, 0, 0, _VEC, _VECTOR, sub, -1, s0, s1, s2, i, 0, line))
        self._meta(("vec", file, line, name, operands, shape, dtype))
        return h

    def reduce(self, file, line, sub: int, name: str, spec, src: int, shape: tuple, axis, dtype: str):
        if axis is None:
            outer, r, inner = 1, semantic.numel(shape), 1
            out = (1,) * len(shape)
        elif axis == len(shape) - 1:
            outer, r, inner = semantic.numel(shape[:-1]), shape[-1], 1
            out = shape[:-1] + (1,)
        else:
            outer = semantic.numel(shape[:axis])
            r = shape[axis]
            inner = semantic.numel(shape[axis + 1:])
            out = shape[:axis] + (1,) + shape[axis + 1:]
        n = outer * inner
        h = self._new(out, dtype, n, n * ITEMSIZE[dtype])
        self._cmd((outer, r, inner, 0, _REDUCE, _VECTOR, sub, -1, src, -1, -1, h.id, 0, line))
        self._meta(("reduce", file, line, name, spec, shape, axis, dtype))
        return h

    # -- links ------------------------------------------------------------------------------
    def send(self, file, line, spec, src: int, port: int, shape: tuple, dtype: str, n: int) -> None:
        nbytes = n * ITEMSIZE[dtype]
        self.sends[port].append((len(self.meta), shape, dtype, file, line))
        self._cmd((0, 0, 0, nbytes, _SEND, _TX0 + port, 0, port, src, -1, -1, -1, 0, line))
        self._meta(("send", file, line, spec, port, shape, dtype))

    def recv(self, file, line, port: int, shape: tuple, dtype: str, n: int, after: int = -1):
        nbytes = n * ITEMSIZE[dtype]
        h = self._new(shape, dtype, n, nbytes)
        self.recvs[port].append((len(self.meta), shape, dtype, file, line))
        self._cmd((0, 0, 0, nbytes, _RECV, _RX0 + port, 0, port, after, -1, -1, h.id, 0, line))
        self._meta(("recv", file, line, port, shape, dtype))
        return h

    def build(self):
        """(commands, tensor_bytes, tensor_pinned) for Program.from_streams, or None if silent."""
        if not self.meta:
            return None
        cmds, tb, _ = self.sb.build()
        pinned = np.zeros(len(tb), np.uint8)
        pinned[self.pinned] = 1
        return cmds, tb, pinned


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
