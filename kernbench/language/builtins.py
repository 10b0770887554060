"""The ``tl`` object handed to kernels: thin, documented calls.

Each call checks its arguments in :mod:`kernbench.language.semantic` (errors name the PE (pe,
cube) and the kernel line) and then emits PE commands through
:class:`kernbench.language.builder.PEBuilder`. Nothing is computed while tracing: a call returns a
:class:`~kernbench.common.pe_commands.TensorHandle` naming the tensor its command will produce.
Numbers come later, from functional replay. docs/language.md is the reference.
"""
from __future__ import annotations

from sys import _getframe

from ..common.pe_commands import TensorHandle
from . import semantic
from .builder import REDUCE_SUB, VEC_SUB, PEBuilder
from .semantic import (
    _INTERNAL,
    TransposedView,
    broadcast,
    check_dtype,
    check_shape,
    fail,
    numel,
    operand,
    promote,
    site,
)

__all__ = ["TL"]

semantic.register_internal(__file__)

_ADD, _SUB, _MUL, _DIV = VEC_SUB["add"], VEC_SUB["sub"], VEC_SUB["mul"], VEC_SUB["div"]
_fmt = semantic.fmt_shape


class TL:
    """The kernel language. One object per launch; :meth:`_begin` points it at each program in turn.

    Dtype names are available as attributes (``tl.f16``, ``tl.bf16``, ``tl.f32``,
    ``tl.fp8e4m3``, ``tl.fp8e5m2``) and as strings."""

    f16 = float16 = "f16"
    bf16 = bfloat16 = "bf16"
    f32 = float32 = "f32"
    fp8e4m3 = float8e4m3 = "fp8e4m3"
    fp8e5m2 = float8e5m2 = "fp8e5m2"

    __slots__ = ("_b", "_grid")

    def __init__(self, grid: tuple):
        self._grid = grid
        self._b: PEBuilder | None = None

    def _begin(self, builder: PEBuilder) -> None:
        """Trace the next program into ``builder``."""
        self._b = builder

    # -- program ids -------------------------------------------------------------------------
    def program_id(self, axis: int = 0) -> int:
        """This program's index along grid ``axis``: 0 = PE within its cube, 1 = cube."""
        if axis == 0:
            return self._b.pe
        if axis == 1:
            return self._b.cube
        fail(self._b, f"program_id: axis must be 0 (PE) or 1 (cube), got {axis!r}")

    def num_programs(self, axis: int = 0) -> int:
        """Grid size along ``axis``: 0 = PEs per cube used, 1 = cubes used."""
        if axis == 0 or axis == 1:
            return self._grid[axis]
        fail(self._b, f"num_programs: axis must be 0 (PE) or 1 (cube), got {axis!r}")

    # -- memory ------------------------------------------------------------------------------
    def load(self, ptr, shape, dtype=None, stride=None, pinned: bool = False,
             after: TensorHandle | None = None) -> TensorHandle:
        """DMA ``shape`` elements from this PE's device memory at byte address ``ptr`` into SRAM.

        ``ptr`` is a device array's address plus a byte offset; every PE reads its own copy of
        the allocation. ``dtype`` defaults to (and must equal) the allocation's dtype. With
        ``stride`` (elements between row starts) a 2-D ``shape`` reads ``rows`` rows of ``cols``
        elements, e.g. a column block of a row-major matrix. One LOAD on the DMA unit moving
        ``numel * itemsize`` bytes. ``pinned`` keeps the tile in SRAM to the end of the launch.
        ``after=h`` starts the load only once tensor ``h`` is ready: the way a kernel bounds how
        far its DMA prefetch runs ahead (double buffering) and so its live SRAM."""
        tr = self._b
        file, line = site()
        shape = check_shape(tr, shape, "load shape")
        if dtype is not None:
            dtype = check_dtype(tr, dtype)
        alloc, e0, dtype, stride = semantic.region(tr, ptr, shape, dtype, stride, "load")
        a = -1 if after is None else operand(tr, after, "load after")[3]
        return tr.load(file, line, alloc, e0, shape, numel(shape), dtype, stride, pinned, a)

    def store(self, ptr, x: TensorHandle, shape=None, stride=None) -> None:
        """DMA tensor ``x`` from SRAM to this PE's device memory at byte address ``ptr``.

        Values are converted to the allocation's dtype (f16 rounding when it holds f16); the
        STORE moves ``numel * allocation itemsize`` bytes. ``shape``, when given, is the shape
        the kernel means to write: a tensor of another shape is an error. ``stride`` as in
        :meth:`load`."""
        tr = self._b
        file, line = site()
        spec, s, d, i, n = operand(tr, x, "store value")
        if shape is not None:
            want = check_shape(tr, shape, "store shape")
            if want != s:
                fail(tr, f"store of the wrong size: expected a tensor of shape {_fmt(want)} "
                         f"({numel(want)} elements), got {_fmt(s)} ({numel(s)} elements)")
        alloc, e0, _, stride = semantic.region(tr, ptr, s, None, stride, "store")
        tr.store(file, line, spec, i, alloc, e0, s, n, stride)

    # -- GEMM --------------------------------------------------------------------------------
    def dot(self, a: TensorHandle, b: TensorHandle) -> TensorHandle:
        """Matrix product of 2-D ``a`` (M, K) and ``b`` (K, N) on the GEMM unit -> f32 (M, N).

        Inputs f16/bf16 (2-byte operands), fp8 (1 byte) or f32 (4 bytes, costs operand
        bandwidth); accumulation is f32. One DOT command: cost in docs/hardware-model.md."""
        tr = self._b
        file, line = site()
        sa, ash, da, ia, _ = operand(tr, a, "dot a")
        sb, bsh, db, ib, _ = operand(tr, b, "dot b")
        semantic.float_operand(tr, da, "dot", "a")
        semantic.float_operand(tr, db, "dot", "b")
        m, n, k = semantic.dot_shapes(tr, ash, bsh)
        return tr.dot(file, line, sa, sb, ia, ib, ash, bsh, da, db, m, n, k)

    # -- views (no command) --------------------------------------------------------------------
    def trans(self, x: TensorHandle) -> TensorHandle:
        """``x`` with its last two axes swapped: metadata only, same tensor id, no command."""
        tr = self._b
        spec, s, d, i, _ = operand(tr, x, "trans operand")
        if len(s) < 2:
            return x
        t = s[:-2] + (s[-1], s[-2])
        cls = TensorHandle if isinstance(x, TransposedView) else TransposedView
        return cls(i, x.addr, t, d, x.nbytes, None, x.space, x.pinned)

    def reshape(self, x: TensorHandle, shape) -> TensorHandle:
        """A view of ``x``'s buffer with another shape: same tensor id, no command. Same rule
        as a ``TensorHandle(id=x.id, shape=...)`` made by hand: the element count must match in
        functional mode."""
        tr = self._b
        shape = check_shape(tr, shape, "reshape shape")
        spec, s, d, i, _ = operand(tr, x, "reshape operand")
        if isinstance(x, TransposedView):
            fail(tr, "reshape of a transposed view: reshape before tl.trans, or store and reload")
        h = TensorHandle(i, x.addr, shape, d, x.nbytes, None, x.space, x.pinned)
        operand(tr, h, "reshape result")  # the view rule, checked here with this line
        return h

    view = reshape

    # -- elementwise -------------------------------------------------------------------------
    def _binary(self, sub: int, name: str, a, b, out_dtype=None) -> TensorHandle:
        # The hottest path of tracing: site() and operand()'s fast path are inlined.
        tr = self._b
        f = _getframe(1)
        while f.f_code.co_filename in _INTERNAL:
            f = f.f_back
        file, line = f.f_code.co_filename, f.f_lineno
        tens = tr.tensors
        ta = tb = None
        if type(a) is TensorHandle:
            try:
                ta = tens[a.id]
            except (IndexError, TypeError):
                pass
        if type(b) is TensorHandle:
            try:
                tb = tens[b.id]
            except (IndexError, TypeError):
                pass
        if ta is not None and ta[2] is a and a.shape is ta[0]:
            sa = s0 = a.id
            ash, da, n = ta[0], ta[1], ta[3]
        elif isinstance(a, TensorHandle):
            sa, ash, da, s0, n = operand(tr, a, f"{name} operand")
        else:
            sa = None
        if tb is not None and tb[2] is b and b.shape is tb[0]:
            sb = s1 = b.id
            bsh, db, nb = tb[0], tb[1], tb[3]
        elif isinstance(b, TensorHandle):
            sb, bsh, db, s1, nb = operand(tr, b, f"{name} operand")
        else:
            sb = None
        if sa is not None:
            if sb is not None:
                if ash is not bsh and ash != bsh:
                    ash = broadcast(tr, ash, bsh, name)
                    n = numel(ash)
                if da != db:
                    da = promote(da, db)
                ops = (sa, sb)
            elif type(b) is float or type(b) is int or semantic.is_scalar(b):
                ops, s1 = (sa, float(b)), -1
            else:
                fail(tr, f"{name}: expected a tensor or a Python number, got {type(b).__name__}")
        elif sb is not None:
            if not (type(a) is float or type(a) is int or semantic.is_scalar(a)):
                fail(tr, f"{name}: expected a tensor or a Python number, got {type(a).__name__}")
            ops, s0, s1, ash, da, n = (float(a), sb), s1, -1, bsh, db, nb
        else:
            fail(tr, f"{name} needs at least one tensor operand, got {type(a).__name__} and "
                     f"{type(b).__name__}")
        if out_dtype is not None:
            da = out_dtype
        elif da == "bool":
            da = "f32"
        return tr.vec(file, line, sub, name, ops, s0, s1, -1, ash, n, da)

    def add(self, a, b) -> TensorHandle:
        """``a + b`` elementwise with broadcasting; either may be a Python number (immediate)."""
        return self._binary(_ADD, "add", a, b)

    def sub(self, a, b) -> TensorHandle:
        """``a - b`` elementwise with broadcasting."""
        return self._binary(_SUB, "sub", a, b)

    def mul(self, a, b) -> TensorHandle:
        """``a * b`` elementwise with broadcasting."""
        return self._binary(_MUL, "mul", a, b)

    def div(self, a, b) -> TensorHandle:
        """``a / b`` elementwise with broadcasting (the vector unit's div cost)."""
        return self._binary(_DIV, "div", a, b)

    def maximum(self, a, b) -> TensorHandle:
        """Elementwise maximum with broadcasting."""
        return self._binary(VEC_SUB["maximum"], "maximum", a, b)

    def minimum(self, a, b) -> TensorHandle:
        """Elementwise minimum with broadcasting."""
        return self._binary(VEC_SUB["minimum"], "minimum", a, b)

    def lt(self, a, b) -> TensorHandle:
        """``a < b`` -> bool mask (compare cost). Also the ``<`` operator."""
        return self._binary(VEC_SUB["lt"], "lt", a, b, "bool")

    def le(self, a, b) -> TensorHandle:
        """``a <= b`` -> bool mask. Also the ``<=`` operator."""
        return self._binary(VEC_SUB["le"], "le", a, b, "bool")

    def gt(self, a, b) -> TensorHandle:
        """``a > b`` -> bool mask. Also the ``>`` operator."""
        return self._binary(VEC_SUB["gt"], "gt", a, b, "bool")

    def ge(self, a, b) -> TensorHandle:
        """``a >= b`` -> bool mask. Also the ``>=`` operator."""
        return self._binary(VEC_SUB["ge"], "ge", a, b, "bool")

    def eq(self, a, b) -> TensorHandle:
        """``a == b`` -> bool mask (a function: ``==`` on handles keeps identity semantics)."""
        return self._binary(VEC_SUB["eq"], "eq", a, b, "bool")

    def ne(self, a, b) -> TensorHandle:
        """``a != b`` -> bool mask."""
        return self._binary(VEC_SUB["ne"], "ne", a, b, "bool")

    def _unary(self, name: str, x, dtype=None) -> TensorHandle:
        tr = self._b
        f = _getframe(1)
        while f.f_code.co_filename in _INTERNAL:
            f = f.f_back
        spec, s, d, i, n = operand(tr, x, f"{name} operand")
        if dtype is None:
            if d == "bool":
                semantic.float_operand(tr, d, name, "its operand")
            dtype = d
        return tr.vec(f.f_code.co_filename, f.f_lineno, VEC_SUB[name], name, (spec,), i, -1, -1,
                      s, n, dtype)

    def exp(self, x) -> TensorHandle:
        """Elementwise e**x (exp cost)."""
        return self._unary("exp", x)

    def log(self, x) -> TensorHandle:
        """Elementwise natural log (log cost)."""
        return self._unary("log", x)

    def sqrt(self, x) -> TensorHandle:
        """Elementwise square root (sqrt cost)."""
        return self._unary("sqrt", x)

    def rsqrt(self, x) -> TensorHandle:
        """Elementwise 1/sqrt(x) (rsqrt cost)."""
        return self._unary("rsqrt", x)

    def neg(self, x) -> TensorHandle:
        """Elementwise ``-x`` (copy cost). Also unary minus."""
        return self._unary("neg", x)

    def abs(self, x) -> TensorHandle:
        """Elementwise ``|x|`` (copy cost)."""
        return self._unary("abs", x)

    def cast(self, x, dtype) -> TensorHandle:
        """``x`` converted to ``dtype`` (one CAST command); ``x`` itself when already ``dtype``."""
        tr = self._b
        dtype = check_dtype(tr, dtype)
        d = operand(tr, x, "cast operand")[2]
        if d == dtype:
            return x
        return self._unary("cast", x, dtype)

    def where(self, cond, a, b) -> TensorHandle:
        """``a`` where ``cond`` is true (non-zero) else ``b``, with broadcasting; ``a`` and ``b``
        may be Python numbers. One SELECT command reading up to three tensors."""
        tr = self._b
        file, line = site()
        sc, shape, dc, ic, _ = operand(tr, cond, "where condition")
        ops, ids, dtype = [sc], [ic], None
        for x, what in ((a, "where a"), (b, "where b")):
            if isinstance(x, TensorHandle):
                spec, s, d, i, _ = operand(tr, x, what)
                shape = broadcast(tr, shape, s, "where")
                dtype = d if dtype is None or dtype == d else promote(dtype, d)
                ops.append(spec)
                ids.append(i)
            elif semantic.is_scalar(x):
                ops.append(float(x))
            else:
                fail(tr, f"{what}: expected a tensor or a Python number, got {type(x).__name__}")
        if dtype is None or dtype == "bool":
            dtype = "f32" if dc == "bool" else dc
        ids += [-1] * (3 - len(ids))
        return tr.vec(file, line, VEC_SUB["where"], "where", tuple(ops), ids[0], ids[1], ids[2],
                      shape, numel(shape), dtype)

    def full(self, shape, value, dtype="f32") -> TensorHandle:
        """A new tensor of ``shape`` filled with ``value`` (one FILL command)."""
        tr = self._b
        file, line = site()
        shape = check_shape(tr, shape, "full shape")
        dtype = check_dtype(tr, dtype)
        if not semantic.is_scalar(value):
            fail(tr, f"full: value must be a Python number, got {type(value).__name__}")
        return tr.vec(file, line, VEC_SUB["fill"], "fill", (float(value),), -1, -1, -1, shape,
                      numel(shape), dtype)

    def zeros(self, shape, dtype="f32") -> TensorHandle:
        """``full(shape, 0, dtype)``."""
        return self.full(shape, 0.0, dtype)

    # -- reductions --------------------------------------------------------------------------
    def _reduce(self, name: str, x, axis, where=None) -> TensorHandle:
        tr = self._b
        if where is None:
            f = _getframe(1)
            while f.f_code.co_filename in _INTERNAL:
                f = f.f_back
            where = (f.f_code.co_filename, f.f_lineno)
        spec, s, d, i, _ = operand(tr, x, f"{name} operand")
        if d == "bool":
            semantic.float_operand(tr, d, name, "its operand")
        if axis is not None:
            if type(axis) is int and -len(s) <= axis < len(s):
                axis %= len(s)
            else:
                axis = semantic.axis_of(tr, axis, len(s), name)
        return tr.reduce(where[0], where[1], REDUCE_SUB[name], name, spec, i, s, axis, d)

    def max(self, x, axis=None) -> TensorHandle:
        """Maximum along ``axis`` (None: all elements), keeping the reduced axis with size 1 so
        the result broadcasts against ``x``. One REDUCE command."""
        return self._reduce("max", x, axis)

    def min(self, x, axis=None) -> TensorHandle:
        """Minimum along ``axis``, reduced axis kept with size 1."""
        return self._reduce("min", x, axis)

    def sum(self, x, axis=None) -> TensorHandle:
        """Sum along ``axis`` (f32 accumulation, rounded to ``x``'s dtype), axis kept with size 1."""
        return self._reduce("sum", x, axis)

    def softmax(self, x, axis=-1) -> TensorHandle:
        """``exp(x - max) / sum(exp(x - max))`` along ``axis``: five commands (max-reduce, sub,
        exp, sum-reduce, div), each rounded to ``x``'s dtype like the same ops written by hand."""
        tr = self._b
        where = file, line = site()
        m = self._reduce("max", x, axis, where)
        spec, s, d, i, n = operand(tr, x, "softmax operand")
        z = tr.vec(file, line, _SUB, "sub", (spec, m.id), i, m.id, -1, s, n, d)
        e = tr.vec(file, line, VEC_SUB["exp"], "exp", (z.id,), z.id, -1, -1, s, n, d)
        t = self._reduce("sum", e, axis, where)
        return tr.vec(file, line, _DIV, "div", (e.id, t.id), e.id, t.id, -1, s, n, d)

    # -- links -------------------------------------------------------------------------------
    def send(self, dir, src: TensorHandle) -> None:
        """Send tensor ``src`` to the neighbour on port ``dir`` ('E', 'W', 'N', 'S').

        Returns at once: the port's send side (TX unit) carries the message while the PE goes
        on, so a kernel may send to both neighbours and then receive from both. The k-th send on
        a port is received by the neighbour's k-th recv on the opposite port."""
        tr = self._b
        file, line = site()
        port = semantic.port_of(tr, dir, "send")
        spec, s, d, i, n = operand(tr, src, "send src")
        tr.send(file, line, spec, i, port, s, d, n)

    def recv(self, dir, shape, dtype, after: TensorHandle | None = None) -> TensorHandle:
        """Receive a ``shape``/``dtype`` tensor from the neighbour on port ``dir``.

        Must match the sender's shape and dtype. ``after=h`` posts the recv only once tensor
        ``h`` is ready (the recv's receive-queue slot is not claimed before then); without it
        the recv is posted as soon as its RX unit reaches it."""
        tr = self._b
        file, line = site()
        port = semantic.port_of(tr, dir, "recv")
        shape = check_shape(tr, shape, "recv shape")
        dtype = check_dtype(tr, dtype)
        a = -1
        if after is not None:
            a = operand(tr, after, "recv after")[3]
        return tr.recv(file, line, port, shape, dtype, numel(shape), a)
