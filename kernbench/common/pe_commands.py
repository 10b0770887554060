"""The command vocabulary shared by the ``tl`` language and the engine.

This is the one place opcodes, units and vector operations are named. The engine's C mirror of
:data:`COMMAND_DTYPE` is ``Command`` in ``kernbench/_core/_types.pxd``; importing the engine checks
the two layouts agree.

A PE's program is a stream of commands in program order. Each command runs on one unit of its PE;
commands on one unit run in order, the units of a PE run concurrently, and a command starts when its
unit is free and its operand tensors are ready. Tensors are SSA values local to a PE: each is
produced by exactly one command (its ``dst``) and read by any number of later commands.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from .errors import KernelError, file_line, user_where
from ..hw.sfr import N_PORTS, OPPOSITE, PORT_INDEX, PORT_NAMES, PORTS_EXPECTED, Port, parse_port

__all__ = [
    "TensorHandle",
    "check_sizes",
    "Opcode",
    "Unit",
    "VecOp",
    "Port",
    "N_PORTS",
    "PORT_NAMES",
    "PORT_INDEX",
    "PORTS_EXPECTED",
    "OPPOSITE",
    "N_UNITS",
    "UNIT_NAMES",
    "VEC_OP_NAMES",
    "COMMAND_DTYPE",
    "Program",
    "send_unit",
    "recv_unit",
    "parse_port",
    "StreamBuilder",
    "make_command",
    "push_operator_target",
    "pop_operator_target",
    "operator_targets",
]


@dataclass(eq=False, slots=True, weakref_slot=True)
class TensorHandle:
    """A tensor living in a PE's SRAM (or a view of one).

    ``id`` names the buffer: a new handle with the same ``id`` and another ``shape`` is a view
    (metadata only, no command, no cost). ``addr`` is the SRAM address the builder assigned,
    ``nbytes`` the buffer's size, ``data`` the numpy value in functional replay (None while tracing),
    ``space`` where it lives ("sram"), ``pinned`` keeps it live to the end of the launch.

    Slotted (and weakly referenceable): a launch makes one per command while tracing, so they
    are kept small and quick to make.
    """

    id: int
    addr: int = 0
    shape: tuple[int, ...] = ()
    dtype: str = "f32"
    nbytes: int = 0
    data: Any = None
    space: str = "sram"
    pinned: bool = False

    # Handles compare and hash by identity in dicts and sets (``==`` is elementwise below).
    __hash__ = object.__hash__

    # Operators dispatch to the ``tl`` tracing in this thread (push_operator_target); each
    # builtin checks its operands and names the PE and kernel line when they are wrong.
    def __add__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.add(self, o)

    def __radd__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.add(o, self)

    def __sub__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.sub(self, o)

    def __rsub__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.sub(o, self)

    def __mul__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.mul(self, o)

    def __rmul__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.mul(o, self)

    def __truediv__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.div(self, o)

    def __rtruediv__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.div(o, self)

    def __floordiv__(self, o: Operand) -> TensorHandle:
        return _ops().floordiv(self, o)

    def __rfloordiv__(self, o: Operand) -> TensorHandle:
        return _ops().floordiv(o, self)

    def __mod__(self, o: Operand) -> TensorHandle:
        return _ops().mod(self, o)

    def __rmod__(self, o: Operand) -> TensorHandle:
        return _ops().mod(o, self)

    def __pow__(self, o: Operand) -> TensorHandle:
        return _ops().pow(self, o)

    def __rpow__(self, o: Operand) -> TensorHandle:
        how = "tl.exp2(x)" if type(o) in (int, float) and o == 2 else "tl.exp(x * math.log(base))"
        return _ops()._refuse(self, f"{o!r} ** tensor: a tensor exponent is not supported; "
                                    f"write {how}")

    def __matmul__(self, o: Operand) -> TensorHandle:
        return _ops().dot(self, o)

    def __rmatmul__(self, o: Operand) -> TensorHandle:
        return _ops().dot(o, self)

    def __and__(self, o: Operand) -> TensorHandle:
        return _ops().and_(self, o)

    def __rand__(self, o: Operand) -> TensorHandle:
        return _ops().and_(o, self)

    def __or__(self, o: Operand) -> TensorHandle:
        return _ops().or_(self, o)

    def __ror__(self, o: Operand) -> TensorHandle:
        return _ops().or_(o, self)

    def __xor__(self, o: Operand) -> TensorHandle:
        return _ops().xor(self, o)

    def __rxor__(self, o: Operand) -> TensorHandle:
        return _ops().xor(o, self)

    def __lshift__(self, o: Operand) -> TensorHandle:
        return _ops().shl(self, o)

    def __rlshift__(self, o: Operand) -> TensorHandle:
        return _ops().shl(o, self)

    def __rshift__(self, o: Operand) -> TensorHandle:
        return _ops().shr(self, o)

    def __rrshift__(self, o: Operand) -> TensorHandle:
        return _ops().shr(o, self)

    def __neg__(self) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.neg(self)

    def __pos__(self) -> TensorHandle:
        _ops()  # outside a trace this is an error like every other operator
        return self

    def __abs__(self) -> TensorHandle:
        return _ops().abs(self)

    def __invert__(self) -> TensorHandle:
        return _ops().invert(self)

    # Python's rounding of one number and divmod: refused with the per-element way to write them
    # (a review: round(x) was a raw "doesn't define __round__", math.floor(x) a float() error)
    def __floor__(self):
        return _ops()._rounding(self, "math.floor")

    def __ceil__(self):
        return _ops()._rounding(self, "math.ceil")

    def __trunc__(self):
        return _ops()._rounding(self, "math.trunc")

    def __round__(self, ndigits=None):
        return _ops()._rounding(self, "round")

    def __divmod__(self, o):
        return _ops()._refuse(self, "divmod(a, b) with a tensor: write a // b and a % b (two "
                                    "commands; int32 truncates toward zero, as in C)")

    def __rdivmod__(self, o):
        return self.__divmod__(o)

    def __lt__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.lt(self, o)

    def __le__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.le(self, o)

    def __gt__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.gt(self, o)

    def __ge__(self, o: Operand) -> TensorHandle:
        try:
            t = _LOCAL.stack[-1]
        except (AttributeError, IndexError):
            t = _ops()
        return t.ge(self, o)

    def __eq__(self, o: object) -> TensorHandle:  # type: ignore[override]
        # Elementwise against a tensor or a number, like <; anything else is refused like <
        # refuses it. ``h == None`` and any comparison outside a trace are identity: a handle
        # is then an inert record.
        t = _target()
        if t is None or o is None:
            return NotImplemented
        return t.eq(self, o)

    def __ne__(self, o: object) -> TensorHandle:  # type: ignore[override]
        t = _target()
        if t is None or o is None:
            return NotImplemented
        return t.ne(self, o)

    def __getitem__(self, key: Any) -> TensorHandle:
        return _ops()._getitem(self, key)

    def __setitem__(self, key, value):
        _ops()._refuse(self, "tensors are immutable: build the new value with tl.where(mask, "
                             "new, old)")

    # A tensor has no value while tracing: branching, sizing or converting on one would pick a
    # path silently, so each of these is the value-dependent-control-flow error.
    def __bool__(self):
        return _ops()._no_value(self, "bool(tensor) (an `if`, `while`, `and`, `or` or `not` on it)")

    def __int__(self):
        return _ops()._no_value(self, "int(tensor)")

    def __float__(self):
        return _ops()._no_value(self, "float(tensor)")

    def __complex__(self):
        return _ops()._no_value(self, "complex(tensor)")

    def __index__(self):
        return _ops()._no_value(self, "a tensor used as an index or size")

    def __len__(self):
        return _ops()._no_value(self, "len(tensor) (use .shape)")

    def __iter__(self):
        return _ops()._no_value(self, "iterating over a tensor")

    def __contains__(self, item):
        return _ops()._no_value(self, "`in` on a tensor")

    # numpy cannot compute on a handle: it has no value while tracing. Refused with the tl
    # function to use; a numpy scalar on the left of an operator is a number (np.float32(2) * h).
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = _REFLECTED.get(ufunc.__name__)
        if (op is not None and method == "__call__" and not kwargs and len(inputs) == 2
                and inputs[1] is self and (isinstance(inputs[0], np.generic) or (
                    isinstance(inputs[0], np.ndarray) and inputs[0].ndim == 0))):
            # (numpy hands comparisons over with its scalar as a 0-d array)
            return getattr(_ops(), op)(inputs[0].item(), self)
        if (ufunc.__name__ in ("power", "float_power") and method == "__call__" and not kwargs
                and len(inputs) == 2 and inputs[1] is self and isinstance(inputs[0], np.generic)):
            return self.__rpow__(inputs[0].item())  # (np.int64(2) ** h: a base number, as 2 ** h)
        return _ops()._numpy(self, ufunc.__name__, method)

    def __array_function__(self, func, types, args, kwargs):
        return _ops()._numpy(self, func.__name__, "__call__")

    if not TYPE_CHECKING:  # (seen, it makes a handle array-like to numpy's stubs, and
        # np.array(2.0) * x reads as an ndarray to a type checker: a review)
        def __array__(self, dtype=None, copy=None):
            return _ops()._numpy(self, "asarray", "__call__")

    @property
    def T(self) -> TensorHandle:
        return _ops().trans(self)

    def to(self, dtype: DType, fp_downcast_rounding: MaybeStr = None,
           bitcast: Flag = False) -> TensorHandle:
        """This tensor converted to ``dtype``: ``tl.cast(self, dtype)`` (Triton's
        ``x.to(tl.float16)``). Rounds to nearest even; ``bitcast=True`` is refused."""
        return _ops()._to(self, dtype, fp_downcast_rounding, bitcast)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"TensorHandle(id={self.id}, shape={tuple(self.shape)}, dtype={self.dtype})"


# Types for type checkers and IDEs (annotations only: each builtin checks its arguments itself,
# naming the PE and kernel line). Aliases, so the compiled modules leave them unchecked: Cython
# types an argument annotated with a builtin type (int, bool, float, str | None) and converts
# or checks it before tl's own checks see it.
#: an operand of a tensor operator or an elementwise tl call: a tensor, a Python number, a
#: numpy scalar or a 0-d array
Operand = Union[TensorHandle, int, float, np.generic, np.ndarray]
#: a Python number, a numpy scalar or a 0-d array (tl.full's value)
Number = Union[int, float, np.generic, np.ndarray]
#: a dtype as tl takes it: a name ("f16", tl.f16), a numpy or ml_dtypes type, or a numpy dtype
DType = Union[str, type, np.dtype]
#: a flag as tl takes it: a bool or a numpy bool (a few take 0 or 1 too: their docstrings say)
Flag = Union[bool, np.bool_, int]
#: tl.cast's third argument: saturate (a Flag), or Triton's rounding there ("rtne" or None)
CastFlag = Union[bool, np.bool_, int, str, None]
#: a name or None (Triton's rounding and precision keywords). An alias, not ``str | None``
#: written out: the compiled modules would check that type themselves, with Cython's TypeError
#: in place of tl's message naming the PE and line (a test found it)
MaybeStr = Optional[str]


#: numpy ufunc name -> the tl builtin a reflected operator (numpy scalar on the left) means.
_REFLECTED = {
    "add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div", "divide": "div",
    "left_shift": "shl", "right_shift": "shr",
    "floor_divide": "floordiv", "remainder": "mod", "less": "lt", "less_equal": "le",
    "greater": "gt", "greater_equal": "ge", "equal": "eq", "not_equal": "ne",
    "bitwise_and": "and_", "bitwise_or": "or_", "bitwise_xor": "xor", "matmul": "dot",
}

# The tl of the launch tracing in each thread (a stack: a kernel may launch another). Per
# thread, so two launches in two threads never dispatch into each other.
_LOCAL = threading.local()


def push_operator_target(tl) -> None:
    """Make ``tl`` the target of TensorHandle operators in this thread (a launch starting)."""
    stack = getattr(_LOCAL, "stack", None)
    if stack is None:
        stack = _LOCAL.stack = []
    stack.append(tl)


def pop_operator_target(tl) -> None:
    """Undo :func:`push_operator_target` of ``tl`` (a launch ending, normally or not)."""
    stack = getattr(_LOCAL, "stack", None)
    if not stack or stack[-1] is not tl:
        raise RuntimeError("operator targets popped out of order")
    stack.pop()


def operator_targets() -> tuple:
    """This thread's stack of tracing ``tl`` objects (for tests and tools)."""
    return tuple(getattr(_LOCAL, "stack", ()))


def _target():
    stack = getattr(_LOCAL, "stack", None)
    return stack[-1] if stack else None


def _ops():
    """The ``tl`` tracing in this thread; TensorHandle operators call into it."""
    stack = getattr(_LOCAL, "stack", None)
    if not stack:
        # (a handle kept past its launch, or used on a thread the kernel started: no program to
        # name, but the line that called is named, as for a tl call there)
        file, line = user_where()
        raise KernelError(f"at {file_line(file, line)}: TensorHandle operators (h * 2, h[i], ...) work "
                          f"only inside a kernel being traced, on the thread its launch runs it on: "
                          f"this handle's launch has ended, or this thread traces no kernel",
                          where=file_line(file, line, full=True))
    return stack[-1]


class Opcode(IntEnum):
    LOAD = 0  #: DMA cube memory -> SRAM.   dst, nbytes
    STORE = 1  #: DMA SRAM -> cube memory.  src0, nbytes
    DOT = 2  #: GEMM dst(M,N) = src0(M,K) @ src1(K,N); m, n, k, esize = input element bytes
    VEC = 3  #: vector elementwise over n output elements; sub = VecOp; src0..src2 optional
    REDUCE = 4  #: vector reduction; sub = VecOp; m outer, n reduced length, k inner (1 = rows)
    SEND = 5  #: link TX on port: src0, nbytes
    RECV = 6  #: link RX on port: dst, nbytes; src0 optional "post after this tensor is ready"


N_OPCODES = len(Opcode)


class Unit(IntEnum):
    GEMM = 0
    VECTOR = 1
    DMA = 2
    TX_E = 3
    TX_W = 4
    TX_N = 5
    TX_S = 6
    RX_E = 7
    RX_W = 8
    RX_N = 9
    RX_S = 10


N_UNITS = len(Unit)
UNIT_NAMES = tuple(u.name for u in Unit)
# A link unit per port, in the port table's order (send_unit, recv_unit and the engine index them so)
if UNIT_NAMES[Unit.TX_E:] != tuple(f"{d}_{n}" for d in ("TX", "RX") for n in PORT_NAMES):
    raise ImportError(f"kernbench.common.pe_commands: the link units {UNIT_NAMES[Unit.TX_E:]} must be "
                      f"TX_ then RX_ of each port in PORT_NAMES' order {PORT_NAMES}")


def send_unit(port: Port | int) -> Unit:
    """The TX unit that sends on ``port`` (Unit.TX_E for E)."""
    return Unit(Unit.TX_E + int(port))


def recv_unit(port: Port | int) -> Unit:
    """The RX unit that receives on ``port`` (Unit.RX_W for W)."""
    return Unit(Unit.RX_E + int(port))


class VecOp(IntEnum):
    """Vector operation cost classes; order matches kernbench.hw.VectorOpCycles fields."""

    ADD = 0
    SUB = 1
    MUL = 2
    MAX = 3
    MIN = 4
    COMPARE = 5
    SELECT = 6
    COPY = 7
    CAST = 8
    FILL = 9
    DIV = 10
    EXP = 11
    LOG = 12
    SQRT = 13
    RSQRT = 14
    BITWISE = 15
    SIGMOID = 16


VEC_OP_NAMES = tuple(v.name.lower() for v in VecOp)

#: One command. Aligned like the C struct ``Command`` in _core/_types.pxd (72 bytes).
COMMAND_DTYPE = np.dtype(
    [
        ("m", np.int64),
        ("n", np.int64),
        ("k", np.int64),
        ("nbytes", np.int64),
        ("opcode", np.int32),
        ("unit", np.int32),
        ("sub", np.int32),
        ("port", np.int32),
        ("src0", np.int32),
        ("src1", np.int32),
        ("src2", np.int32),
        ("dst", np.int32),
        ("esize", np.int32),
        ("line", np.int32),
    ],
    align=True,
)

#: rows Program.columns reads from a compact program at a time (a 19 MB buffer)
COLUMN_CHUNK = 1 << 18


def check_sizes(sizes) -> tuple:
    """``sizes`` (Program.sizes) as ``(idx, table)``, checked: ``idx`` a 1-D uint16 array, one
    index per tensor, each below ``len(table)``; ``table`` a 1-D C-contiguous int64 array of
    sizes (bytes). Raises ValueError naming what is wrong (the first tensor indexing past the
    table)."""
    if not isinstance(sizes, tuple) or len(sizes) != 2:
        raise ValueError(f"a Program's sizes must be (uint16 indices, int64 table), got "
                         f"{type(sizes).__name__}")
    idx, table = sizes
    if (not isinstance(idx, np.ndarray) or idx.dtype != np.uint16 or idx.ndim != 1
            or not isinstance(table, np.ndarray) or table.dtype != np.int64 or table.ndim != 1
            or not idx.flags.c_contiguous or not table.flags.c_contiguous):
        raise ValueError("a Program's sizes must be (uint16 indices, int64 table), 1-D and contiguous")
    if len(idx) and int(idx.max()) >= len(table):
        raise ValueError(f"sizes: tensor {int(np.flatnonzero(idx >= len(table))[0])} indexes past "
                         f"the table of {len(table)} sizes")
    return idx, table


class Program:
    """Every PE's command stream and tensor table, concatenated (CSR by global PE index).

    ``commands[cmd_offsets[g]:cmd_offsets[g+1]]`` is PE g's stream; its tensor ids index
    ``tensor_bytes[tensor_offsets[g]:tensor_offsets[g+1]]`` (and ``tensor_pinned``).

    ``compact`` (optional): an object whose ``expand()`` rebuilds ``commands`` exactly (the
    launch's TraceStore gives a kernbench.language.store.TiledCommands when tl.range replay tiled
    rows): :meth:`release_commands` then drops the array and ``commands`` rebuilds it when next
    read. Pickles carry the compact form only.

    ``sizes`` (optional, with ``tensor_bytes`` None): the tensor sizes as ``(idx, table)``,
    ``idx`` uint16 per tensor into ``table`` (int64, the distinct sizes): a launch's tensors in
    2 bytes each (TraceStore.tensor_sizes), which the engine reads as they are. Reading
    ``tensor_bytes`` then builds the int64 array (``table[idx]``) and drops ``sizes``, so that
    array is the one every later check and timing reads.
    """

    __slots__ = ("_commands", "compact", "cmd_offsets", "_tensor_bytes", "sizes", "tensor_pinned",
                 "tensor_offsets")

    def __init__(self, commands, cmd_offsets, tensor_bytes, tensor_pinned, tensor_offsets, compact=None,
                 sizes=None):
        if tensor_bytes is not None and sizes is not None:
            raise ValueError("Program: give the tensor sizes as tensor_bytes or as sizes, not both")
        self._commands = commands
        self.compact = compact
        self.cmd_offsets = cmd_offsets
        self._tensor_bytes = tensor_bytes
        self.sizes = sizes
        self.tensor_pinned = tensor_pinned
        self.tensor_offsets = tensor_offsets

    @property
    def tensor_bytes(self) -> np.ndarray:
        """(n_tensors,) int64: every tensor's size in bytes, PE by PE (``sizes`` expanded when
        the Program holds them so)."""
        tb = self._tensor_bytes
        if tb is None and self.sizes is not None:
            tb = self._tensor_bytes = self.byte_sizes()
            self.sizes = None
        return tb

    def byte_sizes(self) -> np.ndarray:
        """(n_tensors,) int64: every tensor's size in bytes, leaving the form the Program holds
        them in as it is (sizes as indices stay indices; a report reads them so). Raises
        ValueError for sizes that do not check (check_sizes)."""
        if self._tensor_bytes is not None or self.sizes is None:
            return self._tensor_bytes
        idx, table = check_sizes(self.sizes)
        return table[idx.astype(np.intp)]

    @tensor_bytes.setter
    def tensor_bytes(self, value) -> None:
        self._tensor_bytes = value
        self.sizes = None

    @property
    def n_tensors(self) -> int:
        """Tensors in the tensor table (without building ``tensor_bytes``). Raises ValueError if
        the Program holds neither."""
        if self._tensor_bytes is not None:
            return len(self._tensor_bytes)
        if isinstance(self.sizes, tuple) and len(self.sizes) == 2:
            return len(self.sizes[0])  # (checked by the checks that read them)
        if self.sizes is not None:
            check_sizes(self.sizes)  # (raises)
        raise ValueError("tensor_bytes must be int64, got NoneType (a Program holds its tensor sizes "
                         "as tensor_bytes or as sizes)")

    @property
    def commands(self) -> np.ndarray:
        """(n_commands,) COMMAND_DTYPE, every PE's stream in global PE order."""
        c = self._commands
        if c is None:
            c = self._commands = self.compact.expand()
        return c

    @property
    def tiled(self):
        """The compact form when the array is not held (the engine then reads rows through it,
        never expanding them: kernbench._core.api), else None."""
        return self.compact if self._commands is None else None

    @property
    def n_rows(self) -> int:
        """Rows of the command array, held or not."""
        c = self._commands
        return len(c) if c is not None else self.compact.n

    def columns(self, *names: str) -> tuple:
        """Fields ``names`` of every command, one (n_commands,) array each in its
        COMMAND_DTYPE dtype, read without keeping the command array: a view of the held array,
        or, from the compact form, a copy filled ``COLUMN_CHUNK`` rows at a time (a report on a
        long launch then holds the fields it reads, not the 72-byte rows). Raises ValueError
        naming a field that is not one."""
        bad = [f for f in names if f not in COMMAND_DTYPE.names]
        if bad:
            raise ValueError(f"columns: {bad[0]!r} is not a command field "
                             f"(fields: {', '.join(COMMAND_DTYPE.names)})")
        cp = self.tiled
        if cp is None:
            c = self.commands
            return tuple(c[f] for f in names)
        n = cp.n
        out = tuple(np.empty(n, COMMAND_DTYPE[f]) for f in names)
        src = cp.source()
        buf = np.empty(min(n, COLUMN_CHUNK), COMMAND_DTYPE)
        for a in range(0, n, COLUMN_CHUNK):
            z = min(a + COLUMN_CHUNK, n)
            rows = src.rows(a, z, out=buf[:z - a])
            for f, o in zip(names, out):
                o[a:z] = rows[f]
        return out

    def take(self, idx) -> np.ndarray:
        """Commands at global indices ``idx`` (int array), read without expanding a compact
        form."""
        cp = self.tiled
        if cp is None:
            return self.commands[np.asarray(idx, np.int64)]
        return cp.source().take(idx)

    def moved(self, cmd_offsets, tensor_bytes, tensor_pinned, tensor_offsets, sizes=None) -> "Program":
        """A Program sharing this one's command array (or its compact form) under other offsets:
        the same streams placed on other PEs (``sizes``: the tensor sizes as ``(idx, table)``,
        with ``tensor_bytes`` None)."""
        return Program(self._commands, cmd_offsets, tensor_bytes, tensor_pinned, tensor_offsets,
                       compact=self.compact, sizes=sizes)

    def shares_commands(self, other: "Program") -> bool:
        """True if ``other`` holds this one's very command array or compact form (:meth:`moved`)."""
        return (self._commands is not None and self._commands is other._commands
                or self.compact is not None and self.compact is other.compact)

    def release_commands(self) -> None:
        """Drop the command array if ``compact`` can rebuild it (a launch's result keeps ~72
        bytes per command less); ``commands`` rebuilds it, byte for byte, when next read."""
        if self.compact is not None:
            self._commands = None

    def __getstate__(self):
        state = (None if self.compact is not None else self._commands, self.compact, self.cmd_offsets,
                 self._tensor_bytes, self.tensor_pinned, self.tensor_offsets)
        # (six fields without sizes: what a kernbench before them reads)
        return state if self.sizes is None else (*state, self.sizes)

    def __setstate__(self, state) -> None:
        if len(state) == 2 and isinstance(state[1], dict):  # pickled by a kernbench without compact
            slots = state[1]
            state = (slots["commands"], None, slots["cmd_offsets"], slots["tensor_bytes"],
                     slots["tensor_pinned"], slots["tensor_offsets"])
        if len(state) == 6:  # (pickled by a kernbench without sizes)
            state = (*state, None)
        (self._commands, self.compact, self.cmd_offsets, self._tensor_bytes, self.tensor_pinned,
         self.tensor_offsets, self.sizes) = state

    @property
    def n_pes(self) -> int:
        return len(self.cmd_offsets) - 1

    def __repr__(self) -> str:
        # what it holds, without building the rows a compact program stands for
        n = self.n_commands
        try:
            t = f", {self.n_tensors:,} tensors"
        except ValueError:  # (neither tensor_bytes nor sizes: a Program being built)
            t = ""
        how = ", compact" if self._commands is None and self.compact is not None else ""
        return f"<Program {self.n_pes:,} PEs, {n:,} command{'' if n == 1 else 's'}{t}{how}>"

    @property
    def n_commands(self) -> int:
        return int(self.cmd_offsets[-1])

    def pe_commands(self, g: int) -> np.ndarray:
        return self.commands[self.cmd_offsets[g] : self.cmd_offsets[g + 1]]

    @classmethod
    def from_streams(
        cls,
        streams: Sequence["tuple[np.ndarray, Sequence[int]] | tuple[np.ndarray, Sequence[int], Sequence[bool]] | None"],
    ) -> "Program":
        """Build from one entry per global PE: ``(commands, tensor_bytes[, tensor_pinned])`` or
        None for a PE with no program. ``commands`` may be a COMMAND_DTYPE array or a list of
        tuples in COMMAND_DTYPE field order."""
        cmds, tb, tp = [], [], []
        cmd_off = [0]
        ten_off = [0]
        for s in streams:
            if s is None:
                c = np.zeros(0, COMMAND_DTYPE)
                b = np.zeros(0, np.int64)
                p = np.zeros(0, np.uint8)
            else:
                c = s[0]
                if not isinstance(c, np.ndarray):
                    c = np.array(list(c), dtype=COMMAND_DTYPE)
                b = np.asarray(s[1], dtype=np.int64)
                p = np.asarray(s[2] if len(s) > 2 else np.zeros(len(b)), dtype=np.uint8)
                if p.shape != b.shape:
                    raise ValueError("tensor_pinned must have one entry per tensor")
            cmds.append(c)
            tb.append(b)
            tp.append(p)
            cmd_off.append(cmd_off[-1] + len(c))
            ten_off.append(ten_off[-1] + len(b))
        for c in cmds:
            if c.dtype != COMMAND_DTYPE:
                raise ValueError(f"command arrays must have dtype COMMAND_DTYPE, got {c.dtype}")
        return cls(
            np.concatenate(cmds) if cmds else np.zeros(0, COMMAND_DTYPE),
            np.asarray(cmd_off, dtype=np.int64),
            np.concatenate(tb) if tb else np.zeros(0, np.int64),
            np.concatenate(tp) if tp else np.zeros(0, np.uint8),
            np.asarray(ten_off, dtype=np.int64),
        )


def make_command(
    opcode: int,
    unit: int,
    *,
    sub: int = 0,
    port: int = -1,
    src0: int = -1,
    src1: int = -1,
    src2: int = -1,
    dst: int = -1,
    m: int = 0,
    n: int = 0,
    k: int = 0,
    nbytes: int = 0,
    esize: int = 0,
    line: int = 0,
) -> tuple:
    """A command as a tuple in COMMAND_DTYPE field order (handy for tests and builders)."""
    return (m, n, k, nbytes, opcode, unit, sub, port, src0, src1, src2, dst, esize, line)


class StreamBuilder:
    """Appends one PE's commands and tensors in program order; ``build()`` -> (commands, bytes, pinned).

    The ``tl`` builder emits through this, and tests and benchmarks use it to write engine
    programs directly. Every method returns the result tensor id (or None)."""

    __slots__ = ("cmds", "tensor_bytes", "tensor_pinned")

    def __init__(self) -> None:
        self.cmds: list[tuple] = []
        self.tensor_bytes: list[int] = []
        self.tensor_pinned: list[bool] = []

    def tensor(self, nbytes: int, pinned: bool = False) -> int:
        self.tensor_bytes.append(int(nbytes))
        self.tensor_pinned.append(bool(pinned))
        return len(self.tensor_bytes) - 1

    def emit(self, opcode: int, unit: int, **kw) -> None:
        self.cmds.append(make_command(opcode, unit, **kw))

    def load(self, nbytes: int, *, line: int = 0, pinned: bool = False, after: int = -1) -> int:
        t = self.tensor(nbytes, pinned)
        self.emit(Opcode.LOAD, Unit.DMA, dst=t, src0=after, nbytes=nbytes, line=line)
        return t

    def store(self, src: int, nbytes: int, *, line: int = 0) -> None:
        self.emit(Opcode.STORE, Unit.DMA, src0=src, nbytes=nbytes, line=line)

    def dot(self, a: int, b: int, m: int, n: int, k: int, *, esize: int = 2, line: int = 0) -> int:
        t = self.tensor(4 * m * n)
        self.emit(Opcode.DOT, Unit.GEMM, src0=a, src1=b, dst=t, m=m, n=n, k=k, esize=esize, line=line)
        return t

    def vec(self, op: int, n: int, *srcs: int, out_bytes: int | None = None, line: int = 0) -> int:
        t = self.tensor(4 * n if out_bytes is None else out_bytes)
        s = list(srcs) + [-1] * (3 - len(srcs))
        self.emit(Opcode.VEC, Unit.VECTOR, sub=int(op), src0=s[0], src1=s[1], src2=s[2], dst=t, n=n, line=line)
        return t

    def reduce(self, op: int, src: int, outer: int, r: int, inner: int = 1, *, line: int = 0) -> int:
        t = self.tensor(4 * outer * inner)
        self.emit(Opcode.REDUCE, Unit.VECTOR, sub=int(op), src0=src, dst=t, m=outer, n=r, k=inner, line=line)
        return t

    def send(self, port: "Port | int | str", src: int, nbytes: int, *, line: int = 0) -> None:
        p = parse_port(port)
        self.emit(Opcode.SEND, send_unit(p), port=int(p), src0=src, nbytes=nbytes, line=line)

    def recv(self, port: "Port | int | str", nbytes: int, *, after: int = -1, line: int = 0) -> int:
        p = parse_port(port)
        t = self.tensor(nbytes)
        self.emit(Opcode.RECV, recv_unit(p), port=int(p), src0=after, dst=t, nbytes=nbytes, line=line)
        return t

    def build(self) -> tuple:
        return (
            np.array(self.cmds, dtype=COMMAND_DTYPE) if self.cmds else np.zeros(0, COMMAND_DTYPE),
            np.asarray(self.tensor_bytes, dtype=np.int64),
            np.asarray(self.tensor_pinned, dtype=np.uint8),
        )
