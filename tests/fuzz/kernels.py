"""Random small tl kernels on random hardware, with their expected outcome: a hypothesis strategy.

Usage (any suite)::

    from fuzz.kernels import kernels, KernelCase      # tests/ is on sys.path (conftest.py)

    @given(kernels())                                  # kernels(max_steps=..., comm=..., deadlocks=...)
    def test_something(case: KernelCase):
        ctx, r, outs = case.launch(mode="functional")  # or expect DeadlockError if case.expected.deadlock
        ...

A :class:`KernelCase` carries

* ``overrides``: the hardware overrides dict (n_cubes 1..3, pes_per_cube 1..4,
  link.rx_queue_packets 1..4, link.packet_bytes, link.bytes_per_cycle 1..64,
  link.hop_latency_cycles, vector.lanes 3..64, vector.pipeline_latency, dma.burst_bytes,
  dma.channel_bytes_per_cycle, dma.latency_cycles, gemm.rows / gemm.cols 2..32) on the
  ``default`` preset;
* ``sfr``: ``(scope, ring)`` for ``ctx.install_sfr`` (scope "pe" or "cube"), or None;
* ``grid``: (PEs per cube used, cubes used);
* ``inputs``: {dtype: (n_pes, NIN) array}, PE g's input allocation of that dtype (placed with
  ``ctx.shard(.., over="all")``); the outputs are one ``ctx.empty((NOUT,), dtype)`` per dtype;
* ``programs`` / ``regs``: per global PE, the IR (:class:`fuzz.reference.Op`) and the register
  metadata; ``kernel`` is one plain kernel ``k(i_f16, i_bf16, i_f32, i_e4m3, i_e5m2, i_i32,
  o_f16, ..., o_i32, *, tl)`` that interprets PE g's IR with tl calls and keeps every returned
  handle in ``case.handles[(g, reg)]``;
* ``expected``: the :class:`fuzz.reference.Prediction` of the independent reference: deadlock
  (and the blocked units), else the value (and the ``known`` mask) of every register and of
  every output element, and the bytes/messages on every link.

Coverage: loads (1-D and 2-D, strided rows, masked with a data mask or an arange tail mask that
lets masked-off elements leave the allocation, ``other`` as number or tensor, ``after=``), stores
(strided, masked, converting to any allocation dtype), every binary operator and its tl function
(``+ - * / // % & | ^ << >>``, the six comparisons, maximum/minimum) on tensors of every dtype
(f16, bf16, f32, fp8e4m3, fp8e5m2, int32, masks) and Python int/float immediates on either
side, unary ``-``/abs/``~`` and exp/exp2/log/log2/sqrt/rsqrt/sigmoid, ``tl.where``, sum/max/min
over None/0/-1/1, ``tl.dot`` (mixed float dtypes, ``acc=``, ``@``), ``tl.cast`` (incl.
saturate), views (``tl.reshape``/``tl.view``, ``tl.trans``/``.T``, ``[:, None]``, ``[None, :]``),
``tl.broadcast_to``, ``tl.full``/``tl.zeros``, ``tl.arange``, ``x ** n``, ``tl.softmax``, and
sends/recvs: messages on random links of the SFR install (line or ring, scope pe or cube,
self-loops of one-member rings) generated from a global schedule (each message sent then
received: deadlock-free by construction), ring/line collectives in send-first or recv-first
(forwarding) order, ``recv(after=)``, and, with ``deadlocks=True``, random moves of ops within a
PE's program (keeping data dependencies and the per-port message order) that may create a
deadlock, which the reference decides.

Integer ``//``/``%`` divisors and shift counts are guarded in the kernel itself
(``where(d == 0, 1, d)``, ``s & 31``), so every generated kernel is valid.
"""
from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from . import reference as R
from .reference import DTYPES, FLOATS, NP, Op, RegMeta

__all__ = ["kernels", "KernelCase", "build_case", "NIN", "NOUT", "DTYPES"]

NIN = 48  #: elements of each input allocation per PE
NOUT = 48  #: elements of each output allocation per PE
ALLOC_NAME = {"f16": "f16", "bf16": "bf16", "f32": "f32", "fp8e4m3": "e4m3", "fp8e5m2": "e5m2",
              "int32": "i32"}

F_IMMS = (0.5, 2.0, -1.5, 3.0, 0.25, 1.0, -0.75, 0.0)
I_IMMS = (0, 1, 2, 3, -1, -3, 5, 7, 100, 65536)

BIN_OPS = ("add", "sub", "mul", "div", "floordiv", "mod", "and_", "or_", "xor", "shl", "shr",
           "lt", "le", "gt", "ge", "eq", "ne", "maximum", "minimum")
PY_OP = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
         "floordiv": operator.floordiv, "mod": operator.mod, "and_": operator.and_,
         "or_": operator.or_, "xor": operator.xor, "shl": operator.lshift, "shr": operator.rshift,
         "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
         "eq": operator.eq, "ne": operator.ne}
UN_OPS = ("neg", "abs", "invert") + R.FLOAT_FNS
INTLIKE = ("int32", "bool")


# --------------------------------------------------------------------------- the kernel
def _interpret(ops, tl, H, ins, outs, g, keep, get=None, put=None, j=0):
    """Run ``ops`` through ``tl``: registers in ``H`` (and ``keep``, by PE ``g``), or, for a loop
    body (test_fuzz_loops), read by ``get`` and set by ``put``, its loads and stores moved on by
    their ``step`` ``j`` times."""
    def v(x):
        return H[x[1]] if x[0] == "r" else x[1]

    if get is not None:
        v = get
    for op in ops:
        a, k = op.a, op.kind
        out = None
        if k == "load":
            dt = a["dt"]
            kw = {}
            if a["give_dtype"]:
                kw["dtype"] = dt
            if a["stride"] is not None:
                kw["stride"] = a["stride"]
            if a["mask"] is not None:
                kw["mask"] = v(a["mask"])
                if a["other"] is not None:
                    kw["other"] = v(a["other"])
            if a["after"] is not None:
                kw["after"] = v(a["after"])
            out = tl.load(ins[dt] + R.ITEMSIZE[dt] * (a["e0"] + j * a.get("step", 0)), shape=a["shape"], **kw)
        elif k == "store":
            dt = a["dt"]
            x = v(a["x"])
            kw = {}
            if a["stride"] is not None:
                kw["stride"] = a["stride"]
                kw["shape"] = tuple(x.shape)
            if a["mask"] is not None:
                kw["mask"] = v(a["mask"])
            tl.store(outs[dt] + R.ITEMSIZE[dt] * (a["e0"] + j * a.get("step", 0)), x, **kw)
        elif k == "bin":
            x, y = v(a["a"]), v(a["b"])
            if a["fn"] or a["op"] in ("maximum", "minimum"):
                out = getattr(tl, a["op"])(x, y)
            else:
                out = PY_OP[a["op"]](x, y)
        elif k == "un":
            x = v(a["x"])
            name = a["op"]
            if a["fn"] or name in R.FLOAT_FNS:
                out = getattr(tl, name)(x)
            else:
                out = {"neg": operator.neg, "abs": abs, "invert": operator.invert}[name](x)
        elif k == "where":
            out = tl.where(v(a["c"]), v(a["a"]), v(a["b"]))
        elif k == "reduce":
            out = getattr(tl, a["op"])(v(a["x"]), axis=a["axis"])
        elif k == "dot":
            x, y = v(a["a"]), v(a["b"])
            if a.get("acc") is not None:
                out = tl.dot(x, y, acc=v(a["acc"]))
            elif a["fn"]:
                out = tl.dot(x, y)
            else:
                out = x @ y
        elif k == "cast":
            out = tl.cast(v(a["x"]), a["dt"], saturate=a["sat"]) if a["sat"] else tl.cast(v(a["x"]), a["dt"])
        elif k == "view":
            x = v(a["x"])
            how = a["how"]
            if how == "trans":
                out = tl.trans(x) if a["fn"] else x.T
            elif how == "col":
                out = x[:, None]
            elif how == "row":
                out = x[None, :]
            else:
                out = tl.reshape(x, a["shape"]) if a["fn"] else tl.view(x, a["shape"])
        elif k == "bcast":
            out = tl.broadcast_to(v(a["x"]), a["shape"])
        elif k == "full":
            if a["value"] == 0 and a["fn"]:
                out = tl.zeros(a["shape"], dtype=a["dt"])
            else:
                out = tl.full(a["shape"], a["value"], dtype=a["dt"])
        elif k == "arange":
            out = tl.arange(a["start"], a["end"])
        elif k == "pow":
            out = v(a["x"]) ** a["n"]
        elif k == "softmax":
            out = tl.softmax(v(a["x"]), axis=a["axis"])
        elif k == "send":
            tl.send(a["port"], v(a["x"]))
        elif k == "recv":
            kw = {} if a["after"] is None else {"after": v(a["after"])}
            out = tl.recv(a["port"], a["shape"], a["dt"], **kw)
        else:  # pragma: no cover
            raise AssertionError(k)
        if op.dst is not None and put is not None:
            put(op.dst, out)
        elif op.dst is not None:
            H[op.dst] = out
            keep[(g, op.dst)] = out


def make_kernel(case):
    ppc = case.overrides["pes_per_cube"]
    programs = case.programs

    def fuzz_kernel(i_f16, i_bf16, i_f32, i_e4m3, i_e5m2, i_i32,
                    o_f16, o_bf16, o_f32, o_e4m3, o_e5m2, o_i32, *, tl):
        g = tl.program_id(1) * ppc + tl.program_id(0)
        ops = programs.get(g)
        if not ops:
            return
        ins = dict(zip(DTYPES, (i_f16, i_bf16, i_f32, i_e4m3, i_e5m2, i_i32)))
        outs = dict(zip(DTYPES, (o_f16, o_bf16, o_f32, o_e4m3, o_e5m2, o_i32)))
        _interpret(ops, tl, {}, ins, outs, g, case.handles)

    return fuzz_kernel


# ------------------------------------------------------------------------------ the case
def _fmt(x):
    if x is None:
        return "None"
    if isinstance(x, tuple) and len(x) == 2 and x[0] == "r":
        return f"r{x[1]}"
    if isinstance(x, tuple) and len(x) == 2 and x[0] == "i":
        return repr(x[1])
    return repr(x)


def describe_op(op, meta):
    a = ", ".join(f"{k}={_fmt(v)}" for k, v in op.a.items())
    lhs = f"r{op.dst} {meta.dtype}{list(meta.shape)} = " if op.dst is not None else ""
    return f"{lhs}{op.kind}({a})"


@dataclass(repr=False)
class KernelCase:
    overrides: dict
    sfr: tuple | None  #: (scope, ring) or None
    grid: tuple
    programs: dict  #: global PE -> [Op]
    regs: dict  #: global PE -> [RegMeta]
    inputs: dict  #: dtype -> (n_pes, NIN) array
    links: dict  #: (g, port) -> neighbour g, the links between running PEs
    expected: R.Prediction = None
    handles: dict = field(default_factory=dict)  #: (g, reg) -> TensorHandle of the last launch
    kernel: object = None

    def __post_init__(self):
        if self.kernel is None:
            self.kernel = make_kernel(self)
        if self.expected is None:
            o = self.overrides
            self.expected = R.predict(self.programs, self.regs, self.links, self.inputs,
                                      o["link.rx_queue_packets"], o["link.packet_bytes"],
                                      self.n_pes, NOUT)

    @property
    def n_pes(self):
        return self.overrides["n_cubes"] * self.overrides["pes_per_cube"]

    @property
    def ppc(self):
        return self.overrides["pes_per_cube"]

    def launch(self, mode="functional", detail="train", record_events=False, **kw):
        """A fresh Context, the inputs placed, the kernel launched: (ctx, result, outputs) with
        outputs {dtype: (n_pes, NOUT) array} (zeros in timing mode)."""
        import kernbench

        ctx = kernbench.Context("default", overrides=self.overrides)
        if self.sfr is not None:
            ctx.install_sfr(scope=self.sfr[0], ring=self.sfr[1])
        ins = [ctx.shard(self.inputs[dt].reshape(-1), axis=0, over="all", dtype=dt) for dt in DTYPES]
        outs = [ctx.empty((NOUT,), dt) for dt in DTYPES]
        self.handles.clear()
        r = ctx.launch(self.kernel, self.grid, *ins, *outs, mode=mode, detail=detail,
                       record_events=record_events, **kw)
        with warnings.catch_warnings():  # (timing mode: the outputs read as never written)
            warnings.simplefilter("ignore" if mode == "timing" else "default")
            got = {dt: ctx.read_all(o).reshape(self.n_pes, NOUT) for dt, o in zip(DTYPES, outs)}
        return ctx, r, got

    def describe(self):
        lines = [f"KernelCase(hw={self.overrides}, sfr={self.sfr}, grid={self.grid}, "
                 f"expected deadlock={self.expected.deadlock if self.expected else '?'})"]
        for g in sorted(self.programs):
            lines.append(f"  PE ({g % self.ppc}, {g // self.ppc}):")
            for op in self.programs[g]:
                meta = self.regs[g][op.dst] if op.dst is not None else None
                lines.append("    " + describe_op(op, meta))
        return "\n".join(lines)

    __repr__ = describe

    def _repr_pretty_(self, p, cycle):  # hypothesis' and IPython's printer
        p.text(self.describe())


def build_case(overrides, sfr, grid, programs, regs, inputs):
    """A KernelCase from hand-written IR (fixed examples); links from the SFR and the grid."""
    return KernelCase(overrides=overrides, sfr=sfr, grid=grid, programs=programs, regs=regs,
                      inputs=inputs, links=_links(overrides, sfr, grid))


def _running(overrides, grid):
    ppc = overrides["pes_per_cube"]
    return [c * ppc + p for c in range(grid[1]) for p in range(grid[0])]


def _links(overrides, sfr, grid):
    if sfr is None:
        return {}
    run = set(_running(overrides, grid))
    nb = R.neighbours(overrides["n_cubes"], overrides["pes_per_cube"], sfr[0], sfr[1])
    return {k: d for k, d in nb.items() if k[0] in run and d in run}


# -------------------------------------------------------------------------- the generator
def _bcast(*shapes):
    try:
        s = np.broadcast_shapes(*shapes)
    except ValueError:
        return None
    return s if len(s) <= 2 else None


def _numel(s):
    return R._numel(s)


class _Gen:
    def __init__(self, draw, overrides, sfr, grid):
        self.draw = draw
        self.o = overrides
        self.sfr, self.grid = sfr, grid
        self.pes = _running(overrides, grid)
        self.links = _links(overrides, sfr, grid)
        self.programs = {g: [] for g in self.pes}
        self.regs = {g: [] for g in self.pes}

    # helpers
    def pick(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def chance(self, p):
        return self.draw(st.integers(0, 999)) < int(p * 1000)

    def new(self, g, kind, meta, **a):
        self.regs[g].append(meta)
        r = len(self.regs[g]) - 1
        self.programs[g].append(Op(kind, r, **a))
        return r

    def emit(self, g, kind, **a):
        self.programs[g].append(Op(kind, None, **a))

    def cands(self, g, pred):
        return [i for i, m in enumerate(self.regs[g]) if pred(m)]

    def reg(self, g, pred=lambda m: True, make=None):
        c = self.cands(g, pred)
        if c:
            return self.pick(c)
        return make() if make else None

    def shape(self, ndim=None):
        nd = ndim or self.pick((1, 2))
        if nd == 1:
            return (self.draw(st.integers(1, 8)),)
        return (self.draw(st.integers(1, 4)), self.draw(st.integers(1, 6)))

    def imm(self, intlike):
        if intlike or self.chance(0.3):
            return ("i", self.pick(I_IMMS[:8] if not intlike else I_IMMS))
        return ("i", self.pick(F_IMMS))

    # ---- ops ----------------------------------------------------------------------------
    def load(self, g, dt=None, shape=None):
        dt = dt or self.pick(DTYPES)
        shape = shape or self.shape()
        stride, mask, other = None, None, None
        if len(shape) == 2 and self.chance(0.35):
            stride = shape[1] + self.draw(st.integers(0, 4))
            if (shape[0] - 1) * stride + shape[1] > NIN:
                stride = None
        hi = NIN - ((shape[0] - 1) * stride + shape[1] if stride else _numel(shape))
        e0 = self.draw(st.integers(0, hi))
        if self.chance(0.3):
            if len(shape) == 1 and self.chance(0.5):  # arange tail mask, may leave the allocation
                n = shape[0]
                lim = self.draw(st.integers(0, n))
                e0 = self.draw(st.integers(max(0, NIN - n - 3) if self.chance(0.5) else 0, NIN - lim))
                mask = self.tail_mask(g, n, lim)
            else:
                c = self.cands(g, lambda m: m.dtype == "bool" and _bcast(m.shape, shape) == shape)
                if c:
                    mask = ("r", self.pick(c))
            if mask is not None and self.chance(0.7):
                if self.chance(0.5):
                    other = self.imm(dt == "int32")
                else:
                    c = self.cands(g, lambda m: _bcast(m.shape, shape) == shape)
                    other = ("r", self.pick(c)) if c else None
        after = None
        if self.regs[g] and self.chance(0.2):
            after = ("r", self.pick(range(len(self.regs[g]))))
        return self.new(g, "load", RegMeta(shape, dt), dt=dt, e0=e0, shape=shape, stride=stride,
                        mask=mask, other=other, after=after, give_dtype=self.chance(0.8))

    def tail_mask(self, g, n, lim):
        ar = self.new(g, "arange", RegMeta((n,), "int32"), start=0, end=n)
        return ("r", self.new(g, "bin", RegMeta((n,), "bool"), op="lt", a=("r", ar), b=("i", lim),
                              fn=self.chance(0.5)))

    def any_reg(self, g):
        return self.reg(g, make=lambda: self.load(g))

    def store(self, g):
        x = self.any_reg(g)
        m = self.regs[g][x]
        dt = self.pick(DTYPES)
        n = _numel(m.shape)
        stride, mask = None, None
        if len(m.shape) == 2 and self.chance(0.4):
            stride = m.shape[1] + self.draw(st.integers(0, 3))
            if (m.shape[0] - 1) * stride + m.shape[1] > NOUT:
                stride = None
        span = (m.shape[0] - 1) * stride + m.shape[1] if stride else n
        if span > NOUT:
            return
        e0 = self.draw(st.integers(0, NOUT - span))
        if self.chance(0.3):
            if len(m.shape) == 1 and stride is None and self.chance(0.5):
                lim = self.draw(st.integers(0, n))
                e0 = self.draw(st.integers(0, NOUT - lim))
                mask = self.tail_mask(g, n, lim)
            else:
                c = self.cands(g, lambda mm: mm.dtype == "bool" and _bcast(mm.shape, m.shape) == m.shape)
                if c:
                    mask = ("r", self.pick(c))
        self.emit(g, "store", x=("r", x), dt=dt, e0=e0, stride=stride, mask=mask)

    def guard_div(self, g, r):
        meta = self.regs[g][r]
        c = self.new(g, "bin", RegMeta(meta.shape, "bool"), op="eq", a=("r", r), b=("i", 0), fn=False)
        return self.new(g, "where", RegMeta(meta.shape, "int32"), c=("r", c), a=("i", 1), b=("r", r))

    def guard_shift(self, g, r):
        meta = self.regs[g][r]
        return self.new(g, "bin", RegMeta(meta.shape, "int32"), op="and_", a=("r", r), b=("i", 31),
                        fn=False)

    def kind(self, g, x):
        return R.kind_of(self.regs[g], x)

    def shape_of(self, g, x):
        return self.regs[g][x[1]].shape if x[0] == "r" else ()

    def binop(self, g):
        op = self.pick(BIN_OPS)
        intonly = op in ("floordiv", "and_", "or_", "xor", "shl", "shr")
        pred = (lambda m: m.dtype in INTLIKE) if intonly else (lambda m: True)
        a = self.reg(g, pred, make=(lambda: self.load(g, "int32")) if intonly else (lambda: self.load(g)))
        sa = self.regs[g][a].shape
        a = ("r", a)
        if self.chance(0.4) and op not in ("maximum", "minimum"):
            if op in ("shl", "shr"):
                b = ("i", self.draw(st.integers(0, 31)))
            elif op in ("floordiv",) or (op == "mod" and self.kind(g, a) in INTLIKE and self.chance(0.7)):
                b = ("i", self.pick((1, 2, 3, -3, 7, -1)))
            else:
                b = self.imm(intonly)
        else:
            c = self.cands(g, lambda m: _bcast(m.shape, sa) is not None and (not intonly or m.dtype in INTLIKE))
            b = ("r", self.pick(c)) if c else self.imm(intonly)
        if op == "mod" and b == ("i", 0) and self.kind(g, a) in INTLIKE:
            # an int32 remainder by a Python 0 is refused at trace (docs); a float % 0 is fmod's
            # NaN (once refused too: kernbench bug #1, test_float_mod_by_python_int_zero_is_fmod)
            b = ("i", 0.0)
        if op in ("shl", "shr") and b[0] == "r":
            b = ("r", self.guard_shift(g, b[1]))
        ka, kb = self.kind(g, a), self.kind(g, b)
        ct = R.compute_dtype(op, ka, kb)
        if op in ("floordiv", "mod") and ct == "int32" and b[0] == "r":
            b = ("r", self.guard_div(g, b[1]))
            kb = "int32"
        if op == "floordiv" and ct != "int32":
            return
        swap = b[0] == "i" and op not in ("shl", "shr", "floordiv", "mod", "div") and self.chance(0.3)
        if swap:
            a, b = b, a
        dt = self._bin_dtype(op, self.kind(g, a), self.kind(g, b))
        shape = _bcast(self.shape_of(g, a), self.shape_of(g, b))
        self.new(g, "bin", RegMeta(shape, dt), op=op, a=a, b=b, fn=self.chance(0.3))

    @staticmethod
    def _bin_dtype(op, ka, kb):
        ct = R.compute_dtype(op, ka, kb)
        if op in R.CMP:
            return "bool"
        if op == "div" and ct in INTLIKE:
            return "f32"
        if op in ("shl", "shr", "floordiv"):
            return "int32"
        return ct

    def unop(self, g):
        op = self.pick(UN_OPS)
        pred = (lambda m: m.dtype in INTLIKE) if op == "invert" else (lambda m: True)
        x = self.reg(g, pred, make=lambda: self.load(g, "int32"))
        k = self.regs[g][x].dtype
        if op in ("neg", "abs"):
            dt = k if k in FLOATS else "int32"
        elif op == "invert":
            dt = k
        else:
            dt = k if k in FLOATS else "f32"
        self.new(g, "un", RegMeta(self.regs[g][x].shape, dt), op=op, x=("r", x), fn=self.chance(0.3))

    def where(self, g):
        c = self.any_reg(g)
        sc = self.regs[g][c].shape

        def operand():
            if self.chance(0.3):
                return self.imm(False)
            cc = self.cands(g, lambda m: _bcast(m.shape, sc) is not None)
            return ("r", self.pick(cc))

        a = operand()
        b = operand()
        shape = _bcast(sc, self.shape_of(g, a), self.shape_of(g, b))
        if shape is None:
            return
        ka, kb = self.kind(g, a), self.kind(g, b)
        dt = R.compute_dtype("where", ka, kb)
        self.new(g, "where", RegMeta(shape, dt), c=("r", c), a=a, b=b)

    def reduce(self, g):
        x = self.any_reg(g)
        m = self.regs[g][x]
        op = self.pick(("sum", "max", "min"))
        axis = self.pick((None, 0, -1) + ((1,) if len(m.shape) == 2 else ()))
        shape = tuple(1 for _ in m.shape) if axis is None else \
            tuple(1 if i == axis % len(m.shape) else s for i, s in enumerate(m.shape))
        dt = "int32" if (m.dtype in INTLIKE and op == "sum") else m.dtype
        self.new(g, "reduce", RegMeta(shape, dt), op=op, x=("r", x), axis=axis)

    def dot(self, g):
        a = self.reg(g, lambda m: m.dtype in FLOATS and len(m.shape) == 2,
                     make=lambda: self.load(g, self.pick(FLOATS), self.shape(2)))
        M, K = self.regs[g][a].shape
        if K > NIN:
            return
        b = self.reg(g, lambda m: m.dtype in FLOATS and len(m.shape) == 2 and m.shape[0] == K,
                     make=lambda: self.load(g, self.pick(FLOATS),
                                            (K, self.draw(st.integers(1, max(1, min(6, NIN // K)))))))
        N = self.regs[g][b].shape[1]
        acc = None
        if self.chance(0.3):
            c = self.cands(g, lambda m: m.dtype == "f32" and m.shape == (M, N))
            if c:
                acc = ("r", self.pick(c))
        self.new(g, "dot", RegMeta((M, N), "f32"), a=("r", a), b=("r", b), acc=acc, fn=self.chance(0.5))

    def cast(self, g):
        x = self.any_reg(g)
        m = self.regs[g][x]
        dt = self.pick(DTYPES)
        sat = dt in FLOATS and self.chance(0.3)
        if dt == m.dtype:
            sat = False
            self.new(g, "cast", RegMeta(m.shape, dt, m.tview, alias=x, view=m.view), x=("r", x), dt=dt, sat=sat)
        else:
            self.new(g, "cast", RegMeta(m.shape, dt), x=("r", x), dt=dt, sat=sat)

    def view(self, g):
        x = self.any_reg(g)
        m = self.regs[g][x]
        hows = []
        if len(m.shape) == 2:
            hows.append("trans")
        if not m.tview:
            hows.append("reshape")
            if len(m.shape) == 1:
                hows += ["col", "row"]
        if not hows:
            return
        how = self.pick(hows)
        if how == "trans":
            shape = (m.shape[1], m.shape[0])
        elif how == "col":
            shape = (m.shape[0], 1)
        elif how == "row":
            shape = (1, m.shape[0])
        else:
            n = _numel(m.shape)
            opts = [(n,)] + [(d, n // d) for d in range(1, n + 1) if n % d == 0]
            shape = self.pick(opts)
        self.new(g, "view", RegMeta(shape, m.dtype, tview=m.tview or how == "trans", alias=x, view=True),
                 x=("r", x), how=how, shape=shape, fn=self.chance(0.5))

    def bcast(self, g):
        x = self.reg(g, lambda mm: len(mm.shape) == 1 or 1 in mm.shape, make=lambda: self.load(g))
        m = self.regs[g][x]
        if len(m.shape) == 1:
            shape = (self.draw(st.integers(1, 4)), m.shape[0])
        else:
            shape = tuple(self.draw(st.integers(1, 4)) if s == 1 else s for s in m.shape)
        if shape == m.shape:
            meta = RegMeta(shape, m.dtype, m.tview, alias=x, view=m.view)
        else:
            meta = RegMeta(shape, m.dtype)
        self.new(g, "bcast", meta, x=("r", x), shape=shape)

    def full(self, g):
        dt = self.pick(DTYPES)
        shape = self.shape()
        value = self.pick(I_IMMS[:6]) if dt == "int32" else self.pick(F_IMMS)
        self.new(g, "full", RegMeta(shape, dt), shape=shape, value=value, dt=dt, fn=self.chance(0.5))

    def arange(self, g):
        s = self.draw(st.integers(-4, 4))
        n = self.draw(st.integers(1, 8))
        self.new(g, "arange", RegMeta((n,), "int32"), start=s, end=s + n)

    def pow(self, g):
        x = self.reg(g, lambda m: m.dtype in FLOATS, make=lambda: self.load(g, self.pick(FLOATS)))
        m = self.regs[g][x]
        n = self.pick((0, 1, 2, 3, 4, -1, -2))
        meta = RegMeta(m.shape, m.dtype, m.tview, alias=x, view=m.view) if n == 1 else RegMeta(m.shape, m.dtype)
        self.new(g, "pow", meta, x=("r", x), n=n)

    def softmax(self, g):
        x = self.reg(g, lambda m: m.dtype in FLOATS, make=lambda: self.load(g, self.pick(FLOATS)))
        m = self.regs[g][x]
        axis = self.pick((-1, 0))
        self.new(g, "softmax", RegMeta(m.shape, m.dtype), x=("r", x), axis=axis)

    # ---- communication ------------------------------------------------------------------
    def message(self, g, port, dst, payload=None, after_p=0.25):
        x = payload if payload is not None else self.any_reg(g)
        m = self.regs[g][x]
        self.emit(g, "send", port=port, x=("r", x))
        after = None
        if self.regs[dst] and self.chance(after_p):
            after = ("r", self.pick(range(len(self.regs[dst]))))
        return self.new(dst, "recv", RegMeta(m.shape, m.dtype), port=R.OPP[port], shape=m.shape,
                        dt=m.dtype, after=after)

    def comm(self):
        if not self.links:
            return False
        (g, port) = self.pick(sorted(self.links))
        self.message(g, port, self.links[(g, port)])
        return True

    def collective(self):
        if not self.links:
            return False
        port = self.pick(sorted({p for (_, p) in self.links}))
        lk = sorted((g, d) for (g, p), d in self.links.items() if p == port)
        dt = self.pick(DTYPES)
        shape = self.shape()
        order = self.pick(("send_first", "recv_first"))
        senders = [g for g, _ in lk]
        receivers = {d: g for g, d in lk}
        payload = {}
        for g in senders:
            c = self.cands(g, lambda m: m.dtype == dt and m.shape == shape)
            payload[g] = self.pick(c) if c and self.chance(0.5) else self.load(g, dt, shape)
        if order == "send_first":
            for g in senders:
                self.emit(g, "send", port=port, x=("r", payload[g]))
            for d in receivers:
                self.new(d, "recv", RegMeta(shape, dt), port=R.OPP[port], shape=shape, dt=dt, after=None)
        else:
            fwd = self.chance(0.5)
            got = {}
            for d in receivers:
                got[d] = self.new(d, "recv", RegMeta(shape, dt), port=R.OPP[port], shape=shape, dt=dt,
                                  after=None)
            for g in senders:
                x = got[g] if (fwd and g in got) else payload[g]
                self.emit(g, "send", port=port, x=("r", x))
        return True

    def pair(self):
        """Two neighbours (or a self-loop) exchange one message each way; each side's recv,
        its consumer, the payload's producer and the send come in a random order on the units
        (a forwarding side sends what it received): a cycle through the units deadlocks."""
        es = sorted(k for k in self.links if k[1] == "E" and (self.links[k], "W") in self.links)
        if not es:
            return False
        a = self.pick(es)
        sides = [(a[0], "E", self.links[a]), (self.links[a], "W", a[0])]
        dt = self.pick(DTYPES)
        shape = self.shape()
        for x, port, _y in sides:
            fwd = self.chance(0.4)
            recv = dict(port=R.OPP["W" if port == "E" else "E"], shape=shape, dt=dt, after=None)
            if fwd:
                r = self.new(x, "recv", RegMeta(shape, dt), **recv)
                c = self.new(x, "un", RegMeta(shape, dt), op="neg", x=("r", r), fn=False)
                self.emit(x, "send", port=port, x=("r", c))
                continue
            steps = ["P", "S", "R", "C"]
            order = []
            while steps:  # a random order with P before S and R before C
                ok = [t for t in steps if not (t == "S" and "P" in steps) and not (t == "C" and "R" in steps)]
                t = self.pick(ok)
                steps.remove(t)
                order.append(t)
            got = payload = None
            for t in order:
                if t == "P":
                    payload = self.load(x, dt, shape) if self.chance(0.6) else \
                        self.new(x, "full", RegMeta(shape, dt), shape=shape, value=1, dt=dt, fn=False)
                elif t == "S":
                    self.emit(x, "send", port=port, x=("r", payload))
                elif t == "R":
                    got = self.new(x, "recv", RegMeta(shape, dt), **recv)
                elif self.chance(0.5):
                    self.emit(x, "store", x=("r", got), dt=self.pick(DTYPES), e0=0, stride=None, mask=None)
                else:
                    self.new(x, "un", RegMeta(shape, dt), op="abs", x=("r", got), fn=True)
        return True

    # ---- moves that may deadlock --------------------------------------------------------
    def _valid(self, g, ops):
        defined = set()
        for op in ops:
            if any(r not in defined for r in op.srcs()):
                return False
            if op.dst is not None:
                defined.add(op.dst)
        return True

    @staticmethod
    def _comm_key(op):
        return (op.kind, op.a["port"]) if op.kind in ("send", "recv") else None

    def move(self):
        g = self.pick(self.pes)
        ops = self.programs[g]
        if len(ops) < 2:
            return
        comm = [k for k, o in enumerate(ops) if o.kind in ("send", "recv")]
        # ops reading (transitively) a received value: hoisting one ahead of the work feeding a
        # send on its unit (DMA, VECTOR, GEMM run in order) is what makes exchanges deadlock
        tainted, late = set(), []
        for k, o in enumerate(ops):
            if o.kind == "recv" or any(r in tainted for r in o.srcs()):
                if o.dst is not None:
                    tainted.add(o.dst)
                if o.kind not in ("send", "recv"):
                    late.append(k)
        if late and self.chance(0.5):
            i = self.pick(late)
            pos = {o.dst: k for k, o in enumerate(ops) if o.dst is not None}
            j = max([pos[r] + 1 for r in ops[i].srcs()] + [0])
        elif comm and self.chance(0.6):  # a recv earlier or a send later
            i = self.pick(comm)
            j = self.draw(st.integers(0, i) if ops[i].kind == "recv" else st.integers(i, len(ops) - 1))
        else:
            i = self.draw(st.integers(0, len(ops) - 1))
            j = self.draw(st.integers(0, len(ops) - 1))
        if i == j:
            return
        key = self._comm_key(ops[i])
        lo, hi = min(i, j), max(i, j)
        if key is not None and any(self._comm_key(o) == key for o in ops[lo:hi + 1] if o is not ops[i]):
            return
        new = ops[:i] + ops[i + 1:]
        new.insert(j, ops[i])
        if self._valid(g, new):
            self.programs[g] = new


ACTIONS = (("load", 3), ("store", 3), ("binop", 7), ("unop", 3), ("where", 2), ("reduce", 3),
           ("dot", 2), ("cast", 3), ("view", 3), ("bcast", 1), ("full", 1), ("arange", 1),
           ("pow", 1), ("softmax", 1), ("comm", 5), ("collective", 2), ("pair", 3))
ACTION_LIST = tuple(a for a, w in ACTIONS for _ in range(w))


def _inputs(seed, n_pes):
    rng = np.random.default_rng(seed)
    out = {}
    specials_f = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e4, 60000.0, -300.0, 448.0, 1e-3,
                           70000.0, 500.0], np.float32)
    specials_i = np.array([R.INT_MIN, R.INT_MAX, 2 ** 24 + 1, -(2 ** 20), 65535, 0], np.int64)
    for dt in DTYPES:
        if dt == "int32":
            v = rng.integers(-20, 21, size=(n_pes, NIN))
            sp = rng.random((n_pes, NIN)) < 0.05
            v[sp] = rng.choice(specials_i, size=int(sp.sum()))
            out[dt] = v.astype(np.int32)
        else:
            v = (rng.integers(-24, 25, size=(n_pes, NIN)) / 4.0).astype(np.float32)
            sp = rng.random((n_pes, NIN)) < 0.05
            v[sp] = rng.choice(specials_f, size=int(sp.sum()))
            with np.errstate(all="ignore"):
                out[dt] = v.astype(NP[dt])
    return out


@st.composite
def hardware(draw):
    """(overrides, sfr, grid) of a small random machine."""
    o = {
        "n_cubes": draw(st.integers(1, 3)),
        "pes_per_cube": draw(st.integers(1, 4)),
        "link.rx_queue_packets": draw(st.integers(1, 4)),
        "link.packet_bytes": draw(st.sampled_from((1, 2, 4, 8, 16, 32, 64, 256))),
        "link.bytes_per_cycle": draw(st.integers(1, 64)),
        "link.hop_latency_cycles": draw(st.integers(1, 60)),
        "vector.lanes": draw(st.integers(3, 64)),
        "vector.pipeline_latency": draw(st.integers(1, 10)),
        "dma.burst_bytes": draw(st.sampled_from((1, 4, 16, 32, 64, 512))),
        "dma.channel_bytes_per_cycle": draw(st.integers(1, 256)),
        "dma.latency_cycles": draw(st.integers(1, 200)),
        "gemm.rows": draw(st.integers(2, 32)),
        "gemm.cols": draw(st.integers(2, 32)),
    }
    sfr = None
    if draw(st.integers(0, 9)) < 8:
        sfr = (draw(st.sampled_from(("pe", "cube"))), draw(st.booleans()))
    grid = (draw(st.integers(1, o["pes_per_cube"])), draw(st.integers(1, o["n_cubes"])))
    if sfr is not None and draw(st.booleans()):
        grid = (o["pes_per_cube"], o["n_cubes"])  # every member of every line runs
    return o, sfr, grid


@st.composite
def kernels(draw, max_steps=18, comm=True, deadlocks=True):
    """A :class:`KernelCase`: random hardware, SFR install, grid, inputs and per-PE programs,
    with the reference's expected outcome in ``case.expected``."""
    o, sfr, grid = draw(hardware())
    if not comm:
        sfr = None
    gen = _Gen(draw, o, sfr, grid)
    n_steps = draw(st.integers(1, max_steps))
    for _ in range(n_steps):
        act = draw(st.sampled_from(ACTION_LIST))
        if act == "comm":
            if gen.comm():
                continue
            act = "binop"
        if act == "pair":
            if gen.pair():
                continue
            act = "load"
        if act == "collective":
            if gen.collective():
                continue
            act = "load"
        g = gen.pick(gen.pes)
        getattr(gen, act)(g)
    for g in gen.pes:  # keep something of every PE's work in memory
        if gen.regs[g] and gen.chance(0.6):
            gen.store(g)
    if deadlocks and gen.links and draw(st.integers(0, 9)) < 5:
        for _ in range(draw(st.integers(1, 6))):
            gen.move()
    programs = {g: ops for g, ops in gen.programs.items() if ops}
    regs = {g: gen.regs[g] for g in programs}
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return KernelCase(overrides=o, sfr=sfr, grid=grid, programs=programs, regs=regs,
                      inputs=_inputs(seed, o["n_cubes"] * o["pes_per_cube"]), links=gen.links)
