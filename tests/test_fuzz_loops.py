"""tl.range loops fuzzed (a review found test_fuzz's kernels make none): a random straight-line
program of the fuzz generator (fuzz.kernels._Gen, no messages) is split into ops before the loop,
a loop body and stores after it. The body's loads and stores move by a constant step per
iteration; some body ops read a value carried from the last iteration (iteration 0: a register
made before the loop), dot's ``acc=`` included; the range's start, step and flags
(replay_first, replay_last, shapes_move) are drawn, inside an outer tl.range or not.

Oracle: the unrolled program through the independent fuzz.reference.predict. Checks: functional
values against it and against the unrolled kernel's, bit for bit; cycles and every unit and link
counter equal in functional mode, in the unrolled kernel and in timing mode with replay on, off
and verify. Profiles as test_fuzz's (``KERNBENCH_FUZZ_EXAMPLES`` for a long randomized run)."""
from __future__ import annotations

import copy
import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from fuzz import reference as R
from fuzz.kernels import (DTYPES, NIN, NOUT, _Gen, _inputs, _interpret, _numel, hardware, ACTION_LIST)
from fuzz.reference import Op

from test_fuzz import _LONG, _same, _seeded

PROFILE = settings(max_examples=int(_LONG) if _LONG else 300, deadline=None, derandomize=not _LONG,
                   database=None, suppress_health_check=list(HealthCheck), print_blob=True)


def interp(ops, tl, get, put, ins, outs, j):
    """``ops`` of a loop case through ``tl`` (fuzz.kernels._interpret, its loads and stores moved
    on ``j`` steps)."""
    _interpret(ops, tl, None, ins, outs, 0, None, get=get, put=put, j=j)


class LoopCase:
    def __init__(self, o, pre, body, post, regs, P, n, S, T, flags, inputs, carried):
        self.o, self.pre, self.body, self.post, self.regs = o, pre, body, post, regs
        self.P, self.n, self.S, self.T, self.flags, self.inputs = P, n, S, T, flags, inputs
        self.carried = carried  # body k -> init pre reg
        self.unroll()

    def unroll(self):
        P, NB = self.P, len(self.regs) - self.P
        self.NB = NB
        progs, metas = list(self.pre), list(self.regs[:P])

        def m(x, j):
            if not isinstance(x, tuple):
                return x
            if x[0] == "b":
                return ("r", P + j * NB + x[1])
            if x[0] == "c":
                return ("r", x[2]) if j == 0 else ("r", P + (j - 1) * NB + x[1])
            return x

        for j in range(self.n):
            for k in range(NB):
                mt = copy.copy(self.regs[P + k])
                if mt.alias is not None and mt.alias >= P:
                    mt.alias = P + j * NB + (mt.alias - P)
                metas.append(mt)
            for op in self.body:
                a = {key: m(val, j) for key, val in op.a.items()}
                if op.kind in ("load", "store"):
                    a["e0"] = a["e0"] + j * a.pop("step", 0)
                dst = None if op.dst is None else P + j * NB + (op.dst - P)
                progs.append(Op(op.kind, dst, **a))
        for op in self.post:
            a = {key: m(val, self.n) if self.n else val for key, val in op.a.items()}
            progs.append(Op(op.kind, None, **a))
        self.uprog, self.umetas = progs, metas
        o = self.o
        self.expected = R.predict({0: progs}, {0: metas}, {}, self.inputs, o["link.rx_queue_packets"],
                                  o["link.packet_bytes"], 1, NOUT)

    def kernel(self, use_tl_range=True, unrolled=False):
        case = self

        def k(i_f16, i_bf16, i_f32, i_e4m3, i_e5m2, i_i32, o_f16, o_bf16, o_f32, o_e4m3, o_e5m2, o_i32, *, tl):
            ins = dict(zip(DTYPES, (i_f16, i_bf16, i_f32, i_e4m3, i_e5m2, i_i32)))
            outs = dict(zip(DTYPES, (o_f16, o_bf16, o_f32, o_e4m3, o_e5m2, o_i32)))
            if unrolled:
                H = {}
                interp(case.uprog, tl, lambda x: H[x[1]] if x[0] == "r" else x[1], H.__setitem__, ins, outs, 0)
                return
            H = {}
            interp(case.pre, tl, lambda x: H[x[1]] if x[0] == "r" else x[1], H.__setitem__, ins, outs, 0)
            C = {kk: H[init] for kk, init in case.carried.items()}
            P = case.P
            no = case.outer
            ni = case.n // no
            orng = tl.range(0, no, **case.oflags) if (use_tl_range and no > 1) else range(no)
            for io in orng:
                rng = (tl.range(case.S, case.S + ni * case.T, case.T, **case.flags) if use_tl_range
                       else range(case.S, case.S + ni * case.T, case.T))
                for i in rng:
                    j = io * ni + (i - case.S) // case.T
                    B = {}

                    def get(x, B=B, C=C):
                        if x[0] == "r":
                            return H[x[1]]
                        if x[0] == "b":
                            return B[x[1]]
                        if x[0] == "c":
                            return C[x[1]]
                        return x[1]

                    interp(case.body, tl, get, lambda d, v, B=B: B.__setitem__(d - P, v), ins, outs, j)
                    C = {kk: B[kk] for kk in case.carried}
            interp(case.post, tl, lambda x: C[x[1]] if x[0] == "c" else (H[x[1]] if x[0] == "r" else x[1]),
                   None, ins, outs, 0)
        return k

    def launch(self, mode, replay=None, **kw):
        import kernbench
        ctx = kernbench.Context("default", overrides=self.o)
        ins = [ctx.shard(self.inputs[dt].reshape(-1), axis=0, over="all", dtype=dt) for dt in DTYPES]
        outs = [ctx.empty((NOUT,), dt) for dt in DTYPES]
        r = ctx.launch(self.kernel(**kw), (1, 1), *ins, *outs, mode=mode, replay=replay)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = {dt: ctx.read_all(oo).reshape(1, NOUT) for dt, oo in zip(DTYPES, outs)}
        return r, got

    def describe(self):
        L = [f"LoopCase(hw={self.o}, n={self.n}, range({self.S}, {self.S + self.n*self.T}, {self.T}), "
             f"flags={self.flags}, carried={self.carried}, outer={self.outer} {self.oflags})", "  pre:"]
        for op in self.pre:
            L.append(f"    r{op.dst} {self.regs[op.dst] if op.dst is not None else ''} = {op}")
        L.append("  body:")
        for op in self.body:
            L.append(f"    r{op.dst} {self.regs[op.dst] if op.dst is not None else ''} = {op}")
        L.append("  post:")
        for op in self.post:
            L.append(f"    {op}")
        return "\n".join(L)

    __repr__ = describe


def _span(op, regs):
    a = op.a
    shape = a["shape"] if op.kind == "load" else regs[a["x"][1]].shape if a["x"][0] == "r" else None
    if a["stride"] is not None:
        return (shape[0] - 1) * a["stride"] + shape[1]
    return _numel(shape)


@st.composite
def loop_cases(draw, max_steps=14):
    o, _sfr, _grid = draw(hardware())
    o = dict(o, n_cubes=1, pes_per_cube=1)
    gen = _Gen(draw, o, None, (1, 1))
    acts = [a for a in ACTION_LIST if a not in ("comm", "collective", "pair")]
    for _ in range(draw(st.integers(2, max_steps))):
        getattr(gen, draw(st.sampled_from(acts)))(0)
    if draw(st.booleans()):
        gen.store(0)
    ops, regs = gen.programs[0], gen.regs[0]
    if len(ops) < 2:
        gen.store(0)
        ops, regs = gen.programs[0], gen.regs[0]
    # split: pre = ops[:p]; registers of pre are < P
    p = draw(st.integers(0, len(ops) - 1))
    P = min([op.dst for op in ops[p:] if op.dst is not None] + [len(regs)])
    # registers defined by ops[:p] must all be < P (generation order guarantees dst increasing)
    pre, body = ops[:p], ops[p:]
    outer = draw(st.sampled_from((1, 1, 2, 3, 5)))
    n = draw(st.integers(1, 7)) * outer

    def remap(x):
        if isinstance(x, tuple) and len(x) == 2 and x[0] == "r" and x[1] >= P:
            return ("b", x[1] - P)
        return x

    nbody = []
    for op in body:
        a = {k: remap(v) for k, v in op.a.items()}
        if op.kind in ("load", "store"):
            span = _span(op, regs)
            lim = NIN if op.kind == "load" else NOUT
            room = lim - (a["e0"] + span)
            if room >= 0 and n > 1 and draw(st.booleans()):
                a["step"] = draw(st.integers(0, room // (n - 1)))
            else:
                a["step"] = 0
        nbody.append(Op(op.kind, op.dst, **a))
    body = nbody
    # carried: a body op reading pre reg x whose result has x's dtype and shape (not a view)
    carried = {}
    for op in body:
        if op.dst is None or op.kind not in ("bin", "where", "un", "dot", "pow", "softmax", "cast", "reduce"):
            continue
        mt = regs[op.dst]
        if mt.view or mt.alias is not None:
            continue
        for key, v in list(op.a.items()):
            if isinstance(v, tuple) and len(v) == 2 and v[0] == "r" and v[1] < P:
                x = regs[v[1]]
                if x.dtype == mt.dtype and tuple(x.shape) == tuple(mt.shape) and not x.view and draw(st.booleans()):
                    k = op.dst - P
                    if k in carried:
                        continue
                    op.a[key] = ("c", k, v[1])
                    carried[k] = v[1]
                    break
    post = []
    for k in carried:
        if draw(st.booleans()):
            mt = regs[P + k]
            span = _numel(mt.shape)
            if span <= NOUT:
                post.append(Op("store", None, x=("c", k, carried[k]), dt=draw(st.sampled_from(DTYPES)),
                               e0=draw(st.integers(0, NOUT - span)), stride=None, mask=None))
    S = draw(st.integers(-3, 5))
    T = draw(st.sampled_from((1, 1, 2, 3)))
    flags = {}
    for f in ("replay_last", "replay_first", "shapes_move"):
        if draw(st.integers(0, 2)) == 0:
            flags[f] = True
    inputs = _inputs(draw(st.integers(0, 2 ** 32 - 1)), 1)
    try:
        return _mk(o, pre, body, post, regs, P, n, S, T, flags, inputs, carried, outer,
               {f: True for f in ("replay_last", "replay_first") if draw(st.integers(0, 2)) == 0})
    except (AssertionError, ValueError):  # the unrolled program is invalid (a carried divisor reaching 0)
        assume(False)


def check_loop(case: LoopCase):
    exp = case.expected
    assert not exp.deadlock, case.describe()
    try:
        rf, outs = case.launch("functional", replay="verify")
    except Exception as e:
        raise AssertionError(f"functional raised {type(e).__name__}: {e}\n{case.describe()}")
    for dt in DTYPES:
        want, known = exp.outputs[dt]
        bad = _same(outs[dt], want, known)
        if len(bad):
            i = int(bad[0])
            raise AssertionError(f"output {dt} elem {i}: kernbench {outs[dt].ravel()[i]!r} reference "
                                 f"{np.asarray(want).ravel()[i]!r}\n{case.describe()}")
    ru, outs_u = case.launch("functional", unrolled=True)
    for dt in DTYPES:
        if outs_u[dt].tobytes() != outs[dt].tobytes():
            raise AssertionError(f"unrolled vs tl.range output {dt} differ\n{case.describe()}")
    res = {"functional": rf, "unrolled": ru}
    for rp in ("on", "off", "verify"):
        try:
            res["timing-" + rp], _ = case.launch("timing", replay=rp)
        except Exception as e:
            raise AssertionError(f"timing replay={rp} raised {type(e).__name__}: {e}\n{case.describe()}")
    for name, r in res.items():
        if r.cycles != rf.cycles or not np.array_equal(r.unit_counters, rf.unit_counters) \
                or not np.array_equal(r.link_counters, rf.link_counters):
            raise AssertionError(f"{name}: cycles {r.cycles} vs functional {rf.cycles} (or counters)\n"
                                 f"{case.describe()}")


@_seeded
@PROFILE
@given(loop_cases())
def test_fuzz_loops(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_loop(case)


def _mk(o, pre, body, post, regs, P, n, S, T, flags, inputs, carried, outer, oflags):
    c = LoopCase.__new__(LoopCase)
    c.outer, c.oflags = outer, oflags
    LoopCase.__init__(c, o, pre, body, post, regs, P, n, S, T, flags, inputs, carried)
    return c
