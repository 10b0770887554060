"""The independent reference of the fuzz suite: values and deadlock of a fuzz program.

Written from docs/language.md (Promotion, Numerics, Calls) and docs/hardware-model.md (units
in program order, operand readiness, k-th send / k-th recv matching, credits), NOT from
kernbench's implementation: nothing here imports kernbench (in particular not
kernbench.runtime.replay nor kernbench.language.numerics).

A program is, per global PE, a list of :class:`Op` (the small IR tests/fuzz/kernels.py generates
and turns into tl calls). :func:`predict` returns a :class:`Prediction`:

* **deadlock**: a monotone fixpoint over the units of every PE. Each unit (GEMM, VECTOR, DMA,
  TX_E, TX_W, RX_E, RX_W) runs its commands in program order. A local command completes once the
  previous command of its unit and the producers of its operands have completed. A recv is
  *posted* once the previous command of its RX unit has completed and its ``after`` operand is
  ready; it completes once posted and its matched send has completed. A send starts once the
  previous command of its TX unit has completed and its operand is ready; it completes when its
  last packet can leave, i.e. when packet ``last - Q`` of the link (numbered over all messages on
  the link, Q = rx_queue_packets) has been drained, which happens once the recv of the message
  holding that packet is posted. The launch deadlocks iff the fixpoint leaves a command
  undone; the blocked units are the ones whose next command is undone.
* **values** (when it does not deadlock): a dataflow evaluation of every register (a recv's value
  is its matched send's operand), stores applied in each PE's program order. Every value carries
  a ``known`` mask: False where the docs do not pin the result down. That happens only for f32
  accumulation order: a float ``sum`` or ``dot`` element is known when every partial sum is
  exact in f32 whatever the order (all terms multiples of 2**e, their magnitudes summing below
  2**(e+24)), or when it is NaN/inf for order-independent reasons; unknown-ness propagates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
I64 = np.dtype(np.int64)
FLOATS = ("f16", "bf16", "f32", "fp8e4m3", "fp8e5m2")
DTYPES = FLOATS + ("int32",)  # allocation / tl dtypes
NP = {
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "f32": F32,
    "fp8e4m3": np.dtype(ml_dtypes.float8_e4m3fn),
    "fp8e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "int32": np.dtype(np.int32),
    "bool": np.dtype(np.bool_),
}
ITEMSIZE = {k: v.itemsize for k, v in NP.items()}
PRECISION = {"f32": 24, "f16": 11, "bf16": 8, "fp8e4m3": 4, "fp8e5m2": 3}
ARITH = ("add", "sub", "mul", "maximum", "minimum")
CMP = ("lt", "le", "gt", "ge", "eq", "ne")
LOGIC = ("and_", "or_", "xor")
SHIFT = ("shl", "shr")
FLOAT_FNS = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sigmoid")
INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1


# ------------------------------------------------------------------------------------ the IR
class Op:
    """One step of a PE's fuzz program. ``kind`` names the tl call, ``dst`` the register it
    defines (or None), ``a`` its parameters; a parameter ``("r", n)`` reads register n, ``("i",
    v)`` is a Python-number operand."""

    __slots__ = ("kind", "dst", "a")

    def __init__(self, kind, dst=None, **a):
        self.kind, self.dst, self.a = kind, dst, a

    def srcs(self):
        return [v[1] for v in self.a.values() if isinstance(v, tuple) and len(v) == 2 and v[0] == "r"]

    def __repr__(self):
        return f"Op({self.kind!r}, {self.dst!r}, {self.a!r})"


@dataclass
class RegMeta:
    shape: tuple
    dtype: str  # a tl dtype or "bool" (a mask)
    tview: bool = False  # made by tl.trans (no reshape allowed)
    alias: int | None = None  # view/alias of register n (no command of its own)
    view: bool = False  # a view handle (its .data is not filled in)


# ------------------------------------------------------------------------------- numerics
def wrap(x):
    x = np.asarray(x, I64)
    return ((x + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)


def float_pair(a, b):
    if a == b:
        return a
    s = {a, b}
    if "f32" in s or s == {"f16", "bf16"}:
        return "f32"
    if s == {"fp8e4m3", "fp8e5m2"}:
        return "f16"
    return a if a in ("f16", "bf16") else b


def kind_of(regs, x):
    if x[0] == "r":
        return regs[x[1]].dtype
    return "int" if isinstance(x[1], int) else "float"


def compute_dtype(op, ka, kb):
    """The promoted dtype an op with operand kinds ka, kb computes in (docs: Promotion)."""
    ta, tb = ka not in ("int", "float"), kb not in ("int", "float")
    if ta and tb:
        fa, fb = ka in FLOATS, kb in FLOATS
        if fa and fb:
            return float_pair(ka, kb)
        if fa:
            return ka
        if fb:
            return kb
        if ka == kb == "bool" and op in LOGIC + ("where",):
            return "bool"
        return "int32"
    if not ta and not tb:  # where(c, 1, 2.0)
        return "int32" if ka == kb == "int" else "f32"
    t, n = (ka, kb) if ta else (kb, ka)
    if t in FLOATS:
        return t
    return "int32" if n == "int" else "f32"


def round_to_precision(f, dt):
    """f64 values rounded once (to nearest even) to dt's significand, then converted (exact)."""
    f = np.asarray(f, F64)
    p = PRECISION[dt]
    with np.errstate(all="ignore"):
        m, e = np.frexp(f)
        r = np.ldexp(np.round(np.ldexp(m, p)), e - p)
        r = np.where(np.isfinite(f), r, f)
        return r.astype(F32).astype(NP[dt]) if dt != "f16" else r.astype(NP[dt])


def to_ct(v, kind, ct):
    """Operand ``v`` of kind ``kind`` as the wide values an op of compute dtype ``ct`` uses."""
    if kind in ("int", "float"):
        if ct == "int32":
            return np.int64(v)
        if ct == "bool":
            return np.bool_(v)
        with np.errstate(all="ignore"):  # (docs: an f32 constant cast to the op's dtype: f16(1e-8) is 0)
            return np.float32(np.float32(v).astype(NP[ct]))
    v = np.asarray(v)
    if ct == "bool":
        return v.astype(bool)
    if ct == "int32":
        return v.astype(I64)
    if kind in FLOATS:
        return v.astype(F32)  # promotion only widens: exact
    if kind == "bool":
        return v.astype(F32)
    return round_to_precision(v.astype(F64), ct).astype(F32)  # int32: converted to ct first


def round_out(r, out):
    r = np.asarray(r)
    if out == "int32":
        return wrap(r)
    if out == "bool":
        return r.astype(bool)
    with np.errstate(all="ignore"):
        return r.astype(F32).astype(NP[out])


def cast(v, kind, dt, sat=False):
    """tl.cast / store conversion of ``v`` (kind ``kind``) to ``dt``."""
    v = np.asarray(v)
    if dt == "int32":
        if kind in ("int32", "bool"):
            return v.astype(I64).astype(np.int32)
        f = v.astype(F64)
        f = np.where(np.isnan(f), 0.0, np.trunc(f))
        return np.clip(f, INT_MIN, INT_MAX).astype(np.int32)
    big = float(ml_dtypes.finfo(NP[dt]).max)
    if kind in ("int32", "bool"):
        f = v.astype(F64)
        if sat:
            f = np.clip(f, -big, big)
        return round_to_precision(f, dt)
    f = v.astype(F32)
    with np.errstate(all="ignore"):
        if sat:
            f = np.where(np.isnan(f), f, np.clip(f.astype(F64), -big, big)).astype(F32)
        return f.astype(NP[dt])


def convert_number(x, dt):
    """A Python number as a value of dtype ``dt`` (masked load's ``other``)."""
    if dt == "int32":
        return np.int32(math.trunc(x))
    return np.asarray(np.float64(x)).astype(F32).astype(NP[dt])


def _trunc_div(a, b):
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def binary(op, av, ka, bv, kb):
    """(value, dtype) of elementwise ``op`` (docs: Promotion and its bullets)."""
    ct = compute_dtype(op, ka, kb)
    if op == "div" and ct in ("int32", "bool"):
        ct = "f32"
    x, y = to_ct(av, ka, ct), to_ct(bv, kb, ct)
    with np.errstate(all="ignore"):
        if op in ARITH:
            r = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum,
                 "minimum": np.minimum}[op](x, y)
            return round_out(r, ct), ct
        if op in CMP:
            r = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
                 "eq": np.equal, "ne": np.not_equal}[op](x, y)
            return np.asarray(r, bool), "bool"
        if op == "div":
            return round_out(np.divide(x, y), ct), ct
        if op == "floordiv":
            assert ct == "int32", ct
            assert not np.any(np.asarray(y) == 0)
            return round_out(_trunc_div(x, y), ct), ct
        if op == "mod":
            if ct == "int32":
                assert not np.any(np.asarray(y) == 0)
                return round_out(x - _trunc_div(x, y) * y, ct), ct
            return round_out(np.fmod(x, y), ct), ct
        if op in LOGIC:
            if ct == "bool":
                f = {"and_": np.logical_and, "or_": np.logical_or, "xor": np.logical_xor}[op]
            else:
                f = {"and_": np.bitwise_and, "or_": np.bitwise_or, "xor": np.bitwise_xor}[op]
            return round_out(f(x, y), ct), ct
        if op in SHIFT:
            y = np.asarray(y, I64)
            assert ((y >= 0) & (y <= 31)).all()
            r = np.left_shift(x, y) if op == "shl" else np.right_shift(x, y)
            return round_out(r, "int32"), "int32"
    raise AssertionError(op)


def unary(op, v, kind):
    v = np.asarray(v)
    with np.errstate(all="ignore"):
        if op in ("neg", "abs"):
            f = np.negative if op == "neg" else np.abs
            if kind in FLOATS:
                return round_out(f(v.astype(F32)), kind), kind
            return wrap(f(v.astype(I64))), "int32"
        if op == "invert":
            if kind == "bool":
                return np.logical_not(v), "bool"
            return wrap(np.invert(v.astype(I64))), "int32"
        ct = kind if kind in FLOATS else "f32"
        x = to_ct(v, kind, ct)
        one = np.float32(1.0)
        r = {"exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "sqrt": np.sqrt,
             "rsqrt": lambda t: one / np.sqrt(t),
             "sigmoid": lambda t: one / (one + np.exp(-t))}[op](x)
        return round_out(r, ct), ct


def where(cv, kc, av, ka, bv, kb):
    c = np.asarray(cv)
    with np.errstate(invalid="ignore"):
        c = c if kc == "bool" else (c.astype(F64) != 0)
    ct = compute_dtype("where", ka, kb)
    return round_out(np.where(c, to_ct(av, ka, ct), to_ct(bv, kb, ct)), ct), ct


def _lsb_exp(v):
    """Exponent of the lowest set bit of nonzero finite f64 values."""
    m, e = np.frexp(v)
    big = np.abs(np.ldexp(m, 53)).astype(I64)
    low = big & -big
    return e - 53 + np.round(np.log2(low.astype(F64))).astype(I64)


def exact_sum(terms):
    """(f32 value, known) of an f32-accumulated sum of f64 ``terms`` (exact values) in an
    unspecified order: known when the order cannot matter."""
    t = np.asarray(terms, F64).ravel()
    if np.isnan(t).any():
        return np.float32(np.nan), True
    pinf, ninf = (t == np.inf).any(), (t == -np.inf).any()
    if pinf or ninf:
        if pinf and ninf:
            return np.float32(np.nan), True
        return np.float32(np.inf if pinf else -np.inf), True
    nz = t[t != 0]
    if nz.size == 0:
        return np.float32(0.0), True
    lsb = int(_lsb_exp(nz).min())
    total = float(np.abs(nz).sum())
    ok = lsb >= -149 and total < 2.0 ** (24 + lsb) and total <= float(np.finfo(F32).max)
    return np.float32(nz.sum()), bool(ok)


def reduce(op, v, kind, axis):
    """(value, dtype, exact mask) of tl.sum/max/min (the axis kept)."""
    v = np.asarray(v)
    if kind == "bool":
        if op == "sum":
            return wrap(np.sum(v.astype(I64), axis=axis, keepdims=True)), "int32", None
        f = np.any if op == "max" else np.all
        return f(v, axis=axis, keepdims=True), "bool", None
    if kind == "int32":
        f = {"sum": np.sum, "max": np.max, "min": np.min}[op]
        return wrap(f(v.astype(I64), axis=axis, keepdims=True)), "int32", None
    if op in ("max", "min"):
        f = np.max if op == "max" else np.min
        return round_out(f(v.astype(F32), axis=axis, keepdims=True), kind), kind, None
    w = v.astype(F64)
    if axis is None:
        rows, out_shape = w.reshape(1, -1), (1,) * v.ndim
    else:
        ax = axis % v.ndim
        rows = np.moveaxis(w, ax, -1).reshape(-1, v.shape[ax])
        out_shape = tuple(1 if i == ax else s for i, s in enumerate(v.shape))
    vals, ok = zip(*(exact_sum(r) for r in rows)) if len(rows) else ((), ())
    if axis is None:
        vals_a = np.array(vals, F32).reshape(out_shape)
        ok_a = np.array(ok, bool).reshape(out_shape)
    else:
        rest = tuple(s for i, s in enumerate(v.shape) if i != ax)
        vals_a = np.expand_dims(np.array(vals, F32).reshape(rest), ax)
        ok_a = np.expand_dims(np.array(ok, bool).reshape(rest), ax)
    return round_out(vals_a, kind), kind, ok_a


def dot(av, bv):
    """(f32 value, exact mask) of a @ b accumulated in f32 in an unspecified order."""
    A, B = np.asarray(av).astype(F64), np.asarray(bv).astype(F64)
    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N), F32)
    ok = np.zeros((M, N), bool)
    for i in range(M):
        for j in range(N):
            if not (np.isfinite(A[i]).all() and np.isfinite(B[:, j]).all()):
                out[i, j] = np.nan
                continue
            out[i, j], ok[i, j] = exact_sum(A[i] * B[:, j])
    return out, ok


# -------------------------------------------------------------------------- the scheduler
@dataclass
class Prediction:
    deadlock: bool
    blocked: set  #: {(global PE, unit name)} whose next command never completes
    regs: dict = field(default_factory=dict)  #: (g, reg) -> (value, known)
    outputs: dict = field(default_factory=dict)  #: dtype -> (values (n_pes, NOUT), known)
    link_bytes: dict = field(default_factory=dict)  #: (g, port) -> bytes sent on that link
    link_messages: dict = field(default_factory=dict)  #: (g, port) -> messages


OPP = {"E": "W", "W": "E"}


def neighbours(n_cubes, ppc, scope, ring):
    """{(g, port): neighbour g} of the SFR install (docs/hardware-model.md, SFR installs)."""
    if scope == "pe":
        lines = [[c * ppc + p for p in range(ppc)] for c in range(n_cubes)]
    else:
        lines = [[c * ppc for c in range(n_cubes)]]
    nb = {}
    for members in lines:
        n = len(members)
        for i, g in enumerate(members):
            if i + 1 < n or ring:
                nb[(g, "E")] = members[(i + 1) % n]
            if i > 0 or ring:
                nb[(g, "W")] = members[(i - 1) % n]
    return nb


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def commands(op, regs):
    """The commands op emits: [(unit, [operand registers], chained)] where ``chained`` makes the
    command also wait for the op's previous command (dot + acc's add waits for the dot)."""
    k, a = op.kind, op.a
    s = op.srcs()
    if k in ("view",):
        return []
    if k == "cast" and regs[op.dst].alias is not None:
        return []
    if k == "bcast" and regs[op.dst].alias is not None:
        return []
    if k in ("load", "store"):
        return [("DMA", s, False)]
    if k == "dot":
        cmds = [("GEMM", [a["a"][1], a["b"][1]], False)]
        if a.get("acc") is not None:
            cmds.append(("VECTOR", [a["acc"][1]], True))
        return cmds
    if k == "send":
        return [("TX_" + a["port"], s, False)]
    if k == "recv":
        return [("RX_" + a["port"], s, False)]
    if k == "pow":
        n = a["n"]
        count = {0: 1, 1: 0, 2: 1, 3: 2, 4: 2, -1: 1, -2: 2}[n]
        return [("VECTOR", s if n != 0 else [], False)] * count
    if k == "softmax":
        return [("VECTOR", s, False)] * 5
    return [("VECTOR", s, False)]


def predict(programs, regs, links, inputs, rx_queue, packet_bytes, n_pes, nout):
    """Deadlock, blocked units, and (without deadlock) the value of every register and output.

    programs: {g: [Op]}; regs: {g: [RegMeta]}; links: {(g, port): dst g} restricted to running
    PEs; inputs: {dtype: (n_pes, NIN) array}."""
    # ---- commands, per PE per unit ---------------------------------------------------------
    cmds = []  # global list: dict(g, unit, deps (cmd ids), kind, link, k)
    reg_cmd = {}  # (g, reg) -> cmd producing it
    queues = {}  # (g, unit) -> [cmd ids]
    sends = {}  # (g, port) -> [cmd ids]
    recvs = {}  # (g, port) -> [cmd ids]  (g is the receiver, port its RX port)
    for g, ops in programs.items():
        rm = regs[g]
        for i, op in enumerate(ops):
            prev = None
            for unit, srcs, chained in commands(op, rm):
                deps = [reg_cmd[(g, r)] for r in srcs if reg_cmd.get((g, r)) is not None]
                if chained and prev is not None:
                    deps.append(prev)
                cid = len(cmds)
                cmds.append({"g": g, "unit": unit, "deps": deps, "kind": op.kind, "op": i})
                queues.setdefault((g, unit), []).append(cid)
                if op.kind == "send":
                    sends.setdefault((g, op.a["port"]), []).append(cid)
                    nb = _numel(rm[op.a["x"][1]].shape) * ITEMSIZE[rm[op.a["x"][1]].dtype]
                    cmds[cid]["nbytes"] = nb
                elif op.kind == "recv":
                    recvs.setdefault((g, op.a["port"]), []).append(cid)
                prev = cid
            if op.dst is not None:
                m = rm[op.dst]
                if prev is not None:
                    reg_cmd[(g, op.dst)] = prev
                else:  # a view or alias: its source's producer
                    reg_cmd[(g, op.dst)] = reg_cmd.get((g, m.alias))
    # ---- matching and packets --------------------------------------------------------------
    match_recv, match_send = {}, {}
    link_bytes, link_msgs = {}, {}
    credit_need = {}  # send cid -> recv cid that must be posted (packet last - Q), or None
    for (g, port), dst in links.items():
        ss = sends.get((g, port), [])
        rr = recvs.get((dst, OPP[port]), [])
        assert len(ss) == len(rr), ("unmatched", g, port, len(ss), len(rr))
        link_bytes[(g, port)] = sum(cmds[c]["nbytes"] for c in ss)
        link_msgs[(g, port)] = len(ss)
        owner = []  # packet index -> message index
        for k, (s, r) in enumerate(zip(ss, rr)):
            match_recv[s], match_send[r] = r, s
            npk = -(-cmds[s]["nbytes"] // packet_bytes)
            owner.extend([k] * npk)
            last = len(owner) - 1
            credit_need[s] = rr[owner[last - rx_queue]] if last - rx_queue >= 0 else None
    for (g, port), ss in sends.items():
        assert (g, port) in links and len(ss) == len(match_recv.keys() & set(ss)), ("no link", g, port)
    # ---- the fixpoint ----------------------------------------------------------------------
    done = [False] * len(cmds)
    posted = [False] * len(cmds)
    head = {q: 0 for q in queues}
    changed = True
    while changed:
        changed = False
        for q, lst in queues.items():
            while head[q] < len(lst):
                c = lst[head[q]]
                cmd = cmds[c]
                ready = all(done[d] for d in cmd["deps"])
                if cmd["kind"] == "recv":
                    if not posted[c] and ready:
                        posted[c] = True
                        changed = True
                    ok = posted[c] and done[match_send[c]]
                elif cmd["kind"] == "send":
                    need = credit_need[c]
                    ok = ready and (need is None or posted[need])
                else:
                    ok = ready
                if not ok:
                    break
                done[c] = True
                head[q] += 1
                changed = True
    blocked = {(cmds[lst[head[q]]]["g"], q[1]) for q, lst in queues.items() if head[q] < len(lst)}
    pred = Prediction(deadlock=bool(blocked), blocked=blocked, link_bytes=link_bytes,
                      link_messages=link_msgs)
    if blocked:
        return pred
    _values(pred, programs, regs, links, inputs, n_pes, nout)
    return pred


# ---------------------------------------------------------------------------- the values
def _val(V, g, x):
    """(value, kind, known) of operand x on PE g."""
    if x[0] == "r":
        v, k = V[(g, x[1])]
        return v[0], v[1], k
    return x[1], ("int" if isinstance(x[1], int) else "float"), True


def _region_idx(e0, shape, stride):
    if stride is None:
        return e0 + np.arange(_numel(shape)).reshape(shape)
    r, c = shape
    return e0 + np.arange(r)[:, None] * stride + np.arange(c)[None, :]


def _eval(op, g, rm, V, inputs, sent, rk=None):
    """Compute op's register value; returns (value, dtype, known) or None (not ready)."""
    a, k = op.a, op.kind
    for r in op.srcs():
        if (g, r) not in V:
            return None
    get = lambda x: _val(V, g, x)  # noqa: E731
    if k == "load":
        dt, shape = a["dt"], a["shape"]
        mem = inputs[dt][g]
        idx = _region_idx(a["e0"], shape, a["stride"])
        if a["mask"] is None:
            return mem[idx], dt, np.ones(shape, bool)
        mv, mk, mknown = get(a["mask"])
        mb = np.broadcast_to(np.asarray(mv, bool), shape)
        o = a["other"]
        if o is None:
            ov, oknown = convert_number(0, dt), True
        elif o[0] == "i":
            ov, oknown = convert_number(o[1], dt), True
        else:
            v, kk, oknown = get(o)
            ov = cast(v, kk, dt)
        ov = np.broadcast_to(ov, shape)
        vals = np.where(mb, mem[np.clip(idx, 0, len(mem) - 1)], ov).astype(NP[dt])
        known = np.broadcast_to(mknown, shape) & np.where(mb, True, np.broadcast_to(oknown, shape))
        return vals, dt, known
    if k == "recv":
        key = (g, a["port"], rk)
        if key not in sent:
            return None
        v, kind, known = sent[key]
        return np.asarray(v).reshape(a["shape"]), kind, np.broadcast_to(known, a["shape"])
    if k == "bin":
        av, ka, kna = get(a["a"])
        bv, kb, knb = get(a["b"])
        v, dt = binary(a["op"], av, ka, bv, kb)
        return v, dt, np.broadcast_to(kna & knb, np.shape(v)) if np.ndim(v) else kna & knb
    if k == "un":
        xv, kx, kn = get(a["x"])
        v, dt = unary(a["op"], xv, kx)
        return v, dt, kn
    if k == "where":
        cv, kc, knc = get(a["c"])
        av, ka, kna = get(a["a"])
        bv, kb, knb = get(a["b"])
        v, dt = where(cv, kc, av, ka, bv, kb)
        cb = np.broadcast_to(np.asarray(cv, bool) if kc == "bool" else np.asarray(cv).astype(F64) != 0,
                             v.shape)
        known = np.broadcast_to(knc, v.shape) & np.where(cb, np.broadcast_to(kna, v.shape),
                                                          np.broadcast_to(knb, v.shape))
        return v, dt, known
    if k == "reduce":
        xv, kx, kn = get(a["x"])
        v, dt, ok = reduce(a["op"], xv, kx, a["axis"])
        known = np.all(np.broadcast_to(kn, np.shape(xv)), axis=a["axis"], keepdims=True)
        if ok is not None:
            known = known & ok
        return v, dt, known
    if k == "dot":
        av, _, kna = get(a["a"])
        bv, _, knb = get(a["b"])
        v, ok = dot(av, bv)
        kna = np.broadcast_to(kna, np.shape(av))
        knb = np.broadcast_to(knb, np.shape(bv))
        known = ok & kna.all(axis=1)[:, None] & knb.all(axis=0)[None, :]
        if a.get("acc") is not None:
            cv, _, knc = get(a["acc"])
            with np.errstate(all="ignore"):
                v = (np.asarray(cv, F32) + v).astype(F32)
            known = known & knc
        return v, "f32", known
    if k == "cast":
        xv, kx, kn = get(a["x"])
        if kx == a["dt"]:
            return xv, kx, kn
        return cast(xv, kx, a["dt"], a["sat"]), a["dt"], kn
    if k == "view":
        xv, kx, kn = get(a["x"])
        kn = np.broadcast_to(kn, np.shape(xv))
        how = a["how"]
        if how == "trans":
            return np.swapaxes(xv, -1, -2), kx, np.swapaxes(kn, -1, -2)
        shape = a["shape"]
        return np.reshape(xv, shape), kx, np.reshape(kn, shape)
    if k == "bcast":
        xv, kx, kn = get(a["x"])
        return (np.array(np.broadcast_to(xv, a["shape"])), kx,
                np.array(np.broadcast_to(kn, a["shape"])))
    if k == "full":
        dt = a["dt"]
        v = np.full(a["shape"], a["value"], np.int64) if dt == "int32" else \
            np.full(a["shape"], np.float32(a["value"]), F32)
        return round_out(v, dt), dt, np.ones(a["shape"], bool)
    if k == "arange":
        return np.arange(a["start"], a["end"], dtype=np.int32), "int32", np.ones(a["end"] - a["start"], bool)
    if k == "pow":
        xv, kx, kn = get(a["x"])
        n = a["n"]
        if n == 0:
            return round_out(np.ones(np.shape(xv), F32), kx), kx, np.ones(np.shape(xv), bool)
        if n == 1:
            return xv, kx, kn
        sq = binary("mul", xv, kx, xv, kx)[0]
        if n == 2:
            v = sq
        elif n == 3:
            v = binary("mul", xv, kx, sq, kx)[0]
        elif n == 4:
            v = binary("mul", sq, kx, sq, kx)[0]
        elif n == -1:
            v = binary("div", 1.0, "float", xv, kx)[0]
        else:
            v = binary("div", 1.0, "float", sq, kx)[0]
        return v, kx, kn
    if k == "softmax":
        xv, kx, kn = get(a["x"])
        ax = a["axis"]
        kn = np.broadcast_to(kn, np.shape(xv))
        m, _, _ = reduce("max", xv, kx, ax)
        s, _ = binary("sub", xv, kx, m, kx)
        e, _ = unary("exp", s, kx)
        t, _, ok = reduce("sum", e, kx, ax)
        out, _ = binary("div", e, kx, t, kx)
        rowk = np.all(kn, axis=ax, keepdims=True) & ok
        return out, kx, np.broadcast_to(rowk, out.shape) & kn
    raise AssertionError(k)


def _values(pred, programs, regs, links, inputs, n_pes, nout):
    V = {}  # (g, reg) -> ((value, kind), known)
    sent = {}  # (dst g, dst port, k) -> (value, kind, known)
    send_k, recv_k, recv_of = {}, {}, {}
    sends_of = {}  # (g, op index) -> (dst, port, k)
    for g, ops in programs.items():
        for i, op in enumerate(ops):
            if op.kind == "send":
                p = op.a["port"]
                k = send_k.get((g, p), 0)
                send_k[(g, p)] = k + 1
                sends_of[(g, i)] = (links[(g, p)], OPP[p], k)
            elif op.kind == "recv":
                p = op.a["port"]
                k = recv_k.get((g, p), 0)
                recv_k[(g, p)] = k + 1
                recv_of[(g, i)] = k
    pending = {g: list(range(len(ops))) for g, ops in programs.items()}
    progress = True
    while progress:
        progress = False
        for g, ops in programs.items():
            rest = []
            for i in pending[g]:
                op = ops[i]
                if op.kind == "store":
                    continue
                if op.kind == "send":
                    x = op.a["x"][1]
                    if (g, x) in V:
                        (v, kind), known = V[(g, x)]
                        sent[sends_of[(g, i)]] = (v, kind, known)
                        progress = True
                    else:
                        rest.append(i)
                    continue
                r = _eval(op, g, regs[g], V, inputs, sent, recv_of.get((g, i)))
                if r is None:
                    rest.append(i)
                    continue
                v, dt, known = r
                v = np.asarray(v)
                V[(g, op.dst)] = ((v, dt), np.array(np.broadcast_to(known, v.shape)))
                progress = True
            pending[g] = rest
    left = {g: [i for i in p if programs[g][i].kind != "store"] for g, p in pending.items()}
    assert not any(left.values()), ("dataflow stuck without a deadlock", left)
    # registers the kernel's handles carry: the value and known mask
    for (g, r), ((v, dt), known) in V.items():
        assert dt == regs[g][r].dtype, (g, r, dt, regs[g][r].dtype)
        pred.regs[(g, r)] = (v, known)
    # outputs: stores in program order
    # never-written device memory reads as NaN (int32: -2**31) in functional mode
    # (docs/language.md, "Unwritten memory")
    outs = {dt: (np.full((n_pes, nout), INT_MIN if dt == "int32" else np.nan).astype(NP[dt]),
                 np.ones((n_pes, nout), bool)) for dt in DTYPES}
    for g, ops in programs.items():
        for op in ops:
            if op.kind != "store":
                continue
            a = op.a
            (xv, kx), kn = V[(g, a["x"][1])]
            dt = a["dt"]
            mem, mk = outs[dt][0][g], outs[dt][1][g]
            shape = np.shape(xv) if a["stride"] is not None else (_numel(np.shape(xv)),)
            idx = _region_idx(a["e0"], shape, a["stride"])
            val = cast(xv, kx, dt).reshape(shape)
            kn = np.broadcast_to(kn, np.shape(xv)).reshape(shape)
            if a["mask"] is None:
                mem[idx] = val
                mk[idx] = kn
            else:
                (mv, _), mkn = V[(g, a["mask"][1])]
                mb = np.broadcast_to(np.asarray(mv, bool), np.shape(xv)).reshape(shape)
                mkn = np.broadcast_to(mkn, np.shape(xv)).reshape(shape)
                sel = mb & mkn
                mem[idx[sel]] = val[sel]
                mk[idx[sel]] = kn[sel]
                unk = ~mkn
                ii = idx[unk]
                ii = ii[(ii >= 0) & (ii < nout)]
                mk[ii] = False
    pred.outputs = outs
