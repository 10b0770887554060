"""The ``tl`` object handed to kernels: thin, documented calls.

Each call checks its arguments in :mod:`kernbench.language.semantic` (errors name the PE (pe,
cube) and the kernel line) and then emits PE commands through
:class:`kernbench.language.builder.PEBuilder`. Nothing is computed while tracing: a call returns a
:class:`~kernbench.common.pe_commands.TensorHandle` naming the tensor its command will produce.
Numbers come later, from functional replay. docs/language.md is the reference.
"""
from __future__ import annotations

from sys import _getframe

from ..common.errors import KernelError
from ..common.pe_commands import TensorHandle
from . import semantic
from .builder import VEC_SUB, PEBuilder
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
    site_frame,
)

__all__ = ["TL"]


class _NoProgram:
    """Stands in for the builder when no program is being traced (after the launch): any use of
    ``tl`` then is a clear error, not an AttributeError from deep inside a call."""

    __slots__ = ()

    def __getattr__(self, name):
        raise KernelError("this tl object is not tracing a program: its launch has ended. A kernel "
                          "must use the tl it is passed, during its own launch")


_NO_PROGRAM = _NoProgram()

semantic.register_internal(__file__)

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
        self._b: PEBuilder = _NO_PROGRAM

    def _begin(self, builder: PEBuilder) -> None:
        """Trace the next program into ``builder`` (None: no program; any call is an error)."""
        self._b = _NO_PROGRAM if builder is None else builder

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
        f = site_frame()
        shape = check_shape(tr, shape, "load shape")
        if dtype is not None:
            dtype = check_dtype(tr, dtype)
        alloc, e0, dtype, stride = semantic.region(tr, ptr, shape, dtype, stride, "load")
        a = -1 if after is None else operand(tr, after, "load after")[3]
        return tr.load(f, alloc, e0, shape, numel(shape), dtype, stride, pinned, a)

    def store(self, ptr, x: TensorHandle, shape=None, stride=None) -> None:
        """DMA tensor ``x`` from SRAM to this PE's device memory at byte address ``ptr``.

        Values are converted to the allocation's dtype (f16 rounding when it holds f16); the
        STORE moves ``numel * allocation itemsize`` bytes. ``shape``, when given, is the shape
        the kernel means to write: a tensor of another shape is an error. ``stride`` as in
        :meth:`load`."""
        tr = self._b
        f = site_frame()
        spec, s, d, i, n = operand(tr, x, "store value")
        if shape is not None:
            want = check_shape(tr, shape, "store shape")
            if want != s:
                fail(tr, f"store of the wrong size: expected a tensor of shape {_fmt(want)} "
                         f"({numel(want)} elements), got {_fmt(s)} ({numel(s)} elements)")
        alloc, e0, _, stride = semantic.region(tr, ptr, s, None, stride, "store")
        tr.store(f, spec, i, alloc, e0, s, n, stride)

    # -- GEMM --------------------------------------------------------------------------------
    def dot(self, a: TensorHandle, b: TensorHandle) -> TensorHandle:
        """Matrix product of 2-D ``a`` (M, K) and ``b`` (K, N) on the GEMM unit -> f32 (M, N).

        Inputs f16/bf16 (2-byte operands), fp8 (1 byte) or f32 (4 bytes, costs operand
        bandwidth); accumulation is f32. One DOT command: cost in docs/hardware-model.md."""
        tr = self._b
        f = site_frame()
        sa, ash, da, ia, _ = operand(tr, a, "dot a")
        sb, bsh, db, ib, _ = operand(tr, b, "dot b")
        semantic.float_operand(tr, da, "dot", "a")
        semantic.float_operand(tr, db, "dot", "b")
        m, n, k = semantic.dot_shapes(tr, ash, bsh)
        return tr.dot(f, sa, sb, ia, ib, ash, bsh, da, db, m, n, k)

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
    # add .. ne and exp .. abs are made by _binary_op / _unary_op below (the hottest calls).

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
        return tr.vec(f, name, (spec,), i, -1, -1, s, n, dtype)

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
        f = site_frame()
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
        return tr.vec(f, "where", tuple(ops), ids[0], ids[1], ids[2], shape, numel(shape), dtype)

    def full(self, shape, value, dtype="f32") -> TensorHandle:
        """A new tensor of ``shape`` filled with ``value`` (one FILL command)."""
        tr = self._b
        f = site_frame()
        shape = check_shape(tr, shape, "full shape")
        dtype = check_dtype(tr, dtype)
        if not semantic.is_scalar(value):
            fail(tr, f"full: value must be a Python number, got {type(value).__name__}")
        return tr.vec(f, "fill", (float(value),), -1, -1, -1, shape, numel(shape), dtype)

    def zeros(self, shape, dtype="f32") -> TensorHandle:
        """``full(shape, 0, dtype)``."""
        return self.full(shape, 0.0, dtype)

    # -- reductions --------------------------------------------------------------------------
    def _reduce(self, name: str, x, axis, where=None) -> TensorHandle:
        tr = self._b
        if where is None:
            where = _getframe(1)
            while where.f_code.co_filename in _INTERNAL:
                where = where.f_back
        spec, s, d, i, _ = operand(tr, x, f"{name} operand")
        if d == "bool":
            semantic.float_operand(tr, d, name, "its operand")
        if axis is not None:
            if type(axis) is int and -len(s) <= axis < len(s):
                axis %= len(s)
            else:
                axis = semantic.axis_of(tr, axis, len(s), name)
        return tr.reduce(where, name, spec, i, s, axis, d)

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
        f = site_frame()
        m = self._reduce("max", x, axis, f)
        spec, s, d, i, n = operand(tr, x, "softmax operand")
        z = tr.vec(f, "sub", (spec, m.id), i, m.id, -1, s, n, d)
        e = tr.vec(f, "exp", (z.id,), z.id, -1, -1, s, n, d)
        t = self._reduce("sum", e, axis, f)
        return tr.vec(f, "div", (e.id, t.id), e.id, t.id, -1, s, n, d)

    # -- links -------------------------------------------------------------------------------
    def send(self, dir, src: TensorHandle) -> None:
        """Send tensor ``src`` to the neighbour on port ``dir`` ('E', 'W', 'N', 'S').

        Returns at once: the port's send side (TX unit) carries the message while the PE goes
        on, so a kernel may send to both neighbours and then receive from both. The k-th send on
        a port is received by the neighbour's k-th recv on the opposite port."""
        tr = self._b
        f = site_frame()
        port = semantic.port_of(tr, dir, "send")
        spec, s, d, i, n = operand(tr, src, "send src")
        tr.send(f, spec, i, port, s, d, n)

    def recv(self, dir, shape, dtype, after: TensorHandle | None = None) -> TensorHandle:
        """Receive a ``shape``/``dtype`` tensor from the neighbour on port ``dir``.

        Must match the sender's shape and dtype. ``after=h`` posts the recv only once tensor
        ``h`` is ready (the recv's receive-queue slot is not claimed before then); without it
        the recv is posted as soon as its RX unit reaches it."""
        tr = self._b
        f = site_frame()
        port = semantic.port_of(tr, dir, "recv")
        shape = check_shape(tr, shape, "recv shape")
        dtype = check_dtype(tr, dtype)
        a = -1
        if after is not None:
            a = operand(tr, after, "recv after")[3]
        return tr.recv(f, port, shape, dtype, numel(shape), a)


def _binary_op(name: str, out_dtype: str | None, doc: str):
    """The TL method for elementwise ``name`` of two operands (tensors or Python numbers).

    The hottest path of tracing, so site() and operand()'s fast path are inlined here; anything
    unusual (views, bad values) goes through semantic.operand."""
    what = f"{name} operand"

    def op(self, a, b) -> TensorHandle:
        tr = self._b
        f = _getframe(1)
        while f.f_code.co_filename in _INTERNAL:
            f = f.f_back
        tens = tr.tensors
        ta = tb = None
        if type(a) is TensorHandle:
            sa = a.id
            if type(sa) is int and sa >= 0:
                try:
                    ta = tens[sa]
                except IndexError:
                    pass
                else:
                    if a.shape is not ta[0]:
                        ta = None
            if ta is None:
                sa, ash, da, s0, n = operand(tr, a, what)
            else:
                s0 = sa
                ash, da, n = ta
        elif isinstance(a, TensorHandle):
            sa, ash, da, s0, n = operand(tr, a, what)
        else:
            sa = None
        if type(b) is TensorHandle:
            sb = b.id
            if type(sb) is int and sb >= 0:
                try:
                    tb = tens[sb]
                except IndexError:
                    pass
                else:
                    if b.shape is not tb[0]:
                        tb = None
            if tb is None:
                sb, bsh, db, s1, nb = operand(tr, b, what)
            else:
                s1 = sb
                bsh, db, nb = tb
        elif isinstance(b, TensorHandle):
            sb, bsh, db, s1, nb = operand(tr, b, what)
        else:
            sb = None
        if sa is not None:
            like = ta
            if sb is not None:
                if ash is not bsh and ash != bsh:
                    ash = broadcast(tr, ash, bsh, name)
                    n = numel(ash)
                    like = None
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
            ops, s0, s1, ash, da, n, like = (float(a), sb), s1, -1, bsh, db, nb, tb
        else:
            fail(tr, f"{name} needs at least one tensor operand, got {type(a).__name__} and "
                     f"{type(b).__name__}")
        if out_dtype is not None:
            da = out_dtype
        elif da == "bool":
            da = "f32"
        if like is not None and like[1] != da:
            like = None
        return tr.vec(f, name, ops, s0, s1, -1, ash, n, da, like)

    op.__name__ = name
    op.__qualname__ = f"TL.{name}"
    op.__doc__ = doc
    return op


def _unary_op(name: str, doc: str):
    """The TL method for elementwise ``name`` of one tensor, same dtype out."""
    what = f"{name} operand"

    def op(self, x) -> TensorHandle:
        tr = self._b
        f = _getframe(1)
        while f.f_code.co_filename in _INTERNAL:
            f = f.f_back
        spec, s, d, i, n = operand(tr, x, what)
        if d == "bool":
            semantic.float_operand(tr, d, name, "its operand")
        like = tr.tensors[i] if spec is i else None  # its own buffer: the result is alike
        if like is not None and like[0] is not s:
            like = None
        return tr.vec(f, name, (spec,), i, -1, -1, s, n, d, like)

    op.__name__ = name
    op.__qualname__ = f"TL.{name}"
    op.__doc__ = doc
    return op


for _name, _out, _doc in (
    ("add", None, "``a + b`` elementwise with broadcasting; either may be a Python number (immediate)."),
    ("sub", None, "``a - b`` elementwise with broadcasting."),
    ("mul", None, "``a * b`` elementwise with broadcasting."),
    ("div", None, "``a / b`` elementwise with broadcasting (the vector unit's div cost)."),
    ("maximum", None, "Elementwise maximum with broadcasting."),
    ("minimum", None, "Elementwise minimum with broadcasting."),
    ("lt", "bool", "``a < b`` -> bool mask (compare cost). Also the ``<`` operator."),
    ("le", "bool", "``a <= b`` -> bool mask. Also the ``<=`` operator."),
    ("gt", "bool", "``a > b`` -> bool mask. Also the ``>`` operator."),
    ("ge", "bool", "``a >= b`` -> bool mask. Also the ``>=`` operator."),
    ("eq", "bool", "``a == b`` -> bool mask (a function: ``==`` on handles keeps identity semantics)."),
    ("ne", "bool", "``a != b`` -> bool mask."),
):
    setattr(TL, _name, _binary_op(_name, _out, _doc))

for _name, _doc in (
    ("exp", "Elementwise e**x (exp cost)."),
    ("log", "Elementwise natural log (log cost)."),
    ("sqrt", "Elementwise square root (sqrt cost)."),
    ("rsqrt", "Elementwise 1/sqrt(x) (rsqrt cost)."),
    ("neg", "Elementwise ``-x`` (copy cost). Also unary minus."),
    ("abs", "Elementwise ``|x|`` (copy cost)."),
):
    setattr(TL, _name, _unary_op(_name, _doc))
del _name, _out, _doc
