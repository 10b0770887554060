"""One table of every tl operator and function x every operand kind, checked against the numpy
oracle in op_table_helpers.py, which is written from docs/language.md (Promotion, Numerics,
Calls), not from the implementation.

Operand kinds: f16, bf16, f32, fp8e4m3, fp8e5m2 tensors (loaded from a device array of that
dtype), int32 tensors (an int32 device array in the function-spelling cases ``-fn-``, else
``tl.cast(loaded_f32, "int32")``; tl.arange in the literal cases), masks (``loaded_f32 > 0.0``),
and the Python scalars int and float (also as numpy scalars, on either side of an operator). Each
case is a one-PE kernel on a (4, 8) tile that builds its operands and applies one op (a one-line
lambda below, so a refusal can be traced to its line).

The table: every binary operator and its tl function form x every ordered pair of kinds (two
Python numbers excepted); numpy scalars on both sides; a few broadcasting mixed-kind pairs; the
unary operators and float functions x every tensor kind; ** with Python int exponents; casts to
every dtype (and saturating to fp8) from every tensor kind; sum/max/min over axis None, 0, -1;
where with every pair of branches; dot; refusals (bitwise ops and // of floats, shift counts
outside 0..31, integer division by zero, float or too-large exponents, negative powers of int32
and masks, dot of int32 or masks, tl names the Calls table does not list); and spec examples
with literal answers (tl.arange).

For each case:
  (a) the result handle's ``.dtype`` is the dtype the promotion rules give (and ``.data`` has
      the matching numpy dtype and ``.shape``);
  (b) ``.data`` equals the oracle exactly (NaN == NaN): float ops in f32 on the inputs as
      stored, rounded once to the output dtype; int32 exact and wrapped; // and % truncating;
  (c) mode="timing" gives exactly the cycles of mode="functional";
  (d) refused combinations raise KernelError naming "PE (0, 0)" and this file:line of the op,
      in both modes (an integer division by a tensor holding zero: in functional mode only).

Every failed check of a case is reported together, each prefixed with its class: SETUP (an
operand could not be built), RAISED (an unexpected exception), NOT-A-HANDLE, DTYPE, SHAPE,
NPDTYPE, VALUE, CYCLES, NOT-REFUSED, REFUSAL-MESSAGE.
"""
import os
import re

import numpy as np
import pytest

import kernbench
from kernbench.common.errors import KernelError
from kernbench.common.pe_commands import TensorHandle

import op_table_helpers as H

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

FILE = os.path.basename(__file__)
HW = {"n_cubes": 1, "pes_per_cube": 2}
SHAPE = (4, 8)

# ------------------------------------------------------------------------------------ the ops
# One lambda per line: the line is where a refusal must point.
OPERATOR = {
    "add": lambda tl, a, b: a + b,
    "sub": lambda tl, a, b: a - b,
    "mul": lambda tl, a, b: a * b,
    "div": lambda tl, a, b: a / b,
    "floordiv": lambda tl, a, b: a // b,
    "mod": lambda tl, a, b: a % b,
    "and": lambda tl, a, b: a & b,
    "or": lambda tl, a, b: a | b,
    "xor": lambda tl, a, b: a ^ b,
    "shl": lambda tl, a, b: a << b,
    "shr": lambda tl, a, b: a >> b,
    "lt": lambda tl, a, b: a < b,
    "le": lambda tl, a, b: a <= b,
    "gt": lambda tl, a, b: a > b,
    "ge": lambda tl, a, b: a >= b,
    "eq": lambda tl, a, b: a == b,
    "ne": lambda tl, a, b: a != b,
    "neg": lambda tl, x: -x,
    "abs": lambda tl, x: abs(x),
    "pos": lambda tl, x: +x,
    "invert": lambda tl, x: ~x,
    "pow": lambda tl, x, n: x ** n,
    "dot": lambda tl, a, b: a @ b,
}
FUNCTION = {
    "add": lambda tl, a, b: tl.add(a, b),
    "sub": lambda tl, a, b: tl.sub(a, b),
    "mul": lambda tl, a, b: tl.mul(a, b),
    "div": lambda tl, a, b: tl.div(a, b),
    "floordiv": lambda tl, a, b: tl.floordiv(a, b),
    "mod": lambda tl, a, b: tl.mod(a, b),
    "and": lambda tl, a, b: tl.and_(a, b),
    "or": lambda tl, a, b: tl.or_(a, b),
    "xor": lambda tl, a, b: tl.xor(a, b),
    "shl": lambda tl, a, b: tl.shl(a, b),
    "shr": lambda tl, a, b: tl.shr(a, b),
    "lt": lambda tl, a, b: tl.lt(a, b),
    "le": lambda tl, a, b: tl.le(a, b),
    "gt": lambda tl, a, b: tl.gt(a, b),
    "ge": lambda tl, a, b: tl.ge(a, b),
    "eq": lambda tl, a, b: tl.eq(a, b),
    "ne": lambda tl, a, b: tl.ne(a, b),
    "maximum": lambda tl, a, b: tl.maximum(a, b),
    "minimum": lambda tl, a, b: tl.minimum(a, b),
    "neg": lambda tl, x: tl.neg(x),
    "abs": lambda tl, x: tl.abs(x),
    "invert": lambda tl, x: tl.invert(x),
    "exp": lambda tl, x: tl.exp(x),
    "exp2": lambda tl, x: tl.exp2(x),
    "log": lambda tl, x: tl.log(x),
    "log2": lambda tl, x: tl.log2(x),
    "sqrt": lambda tl, x: tl.sqrt(x),
    "rsqrt": lambda tl, x: tl.rsqrt(x),
    "sigmoid": lambda tl, x: tl.sigmoid(x),
    "cast": lambda tl, x, dtype: tl.cast(x, dtype),
    "cast_sat": lambda tl, x, dtype: tl.cast(x, dtype, saturate=True),
    "sum": lambda tl, x, axis: tl.sum(x, axis=axis),
    "max": lambda tl, x, axis: tl.max(x, axis=axis),
    "min": lambda tl, x, axis: tl.min(x, axis=axis),
    "where": lambda tl, c, a, b: tl.where(c, a, b),
    "dot": lambda tl, a, b: tl.dot(a, b),
}
# Spec examples with literal answers (tl.arange is the third source of int32).
LITERAL = [
    ("arange", lambda tl: tl.arange(2, 6), "int32", [2, 3, 4, 5]),
    ("arange_div_2", lambda tl: tl.arange(0, 4) / 2, "f32", [0.0, 0.5, 1.0, 1.5]),
    ("arange_floordiv_neg", lambda tl: (tl.arange(0, 8) - 7) // 2, "int32", [-3, -3, -2, -2, -1, -1, 0, 0]),
    ("arange_mod_neg", lambda tl: (tl.arange(0, 8) - 7) % 2, "int32", [-1, 0, -1, 0, -1, 0, -1, 0]),
    ("arange_mod_negdiv", lambda tl: (tl.arange(0, 8) - 7) % -2, "int32", [-1, 0, -1, 0, -1, 0, -1, 0]),
    ("arange_gt_is_mask", lambda tl: tl.arange(0, 4) > 1, "bool", [False, False, True, True]),
    ("mask_plus_mask", lambda tl: (tl.arange(0, 4) > 1) + (tl.arange(0, 4) > 2), "int32", [0, 0, 1, 2]),
    ("arange_times_half", lambda tl: tl.arange(0, 4) * 0.5, "f32", [0.0, 0.5, 1.0, 1.5]),
    ("neg_int_min", lambda tl: -((tl.arange(0, 2) - 1) * 2147483647 - 1), "int32", [-2147483648, 1]),
    ("arange_shr", lambda tl: (tl.arange(0, 4) - 2) >> 1, "int32", [-1, -1, 0, 0]),
]

# tl names the Calls table does not list ("not yet": a KernelError naming the PE and line)
UNLISTED = {
    "cumsum": lambda tl, x: tl.cumsum(x, 0),
    "argmax": lambda tl, x: tl.argmax(x, 0),
    "sort": lambda tl, x: tl.sort(x),
    "atomic_add": lambda tl, x: tl.atomic_add(x, x),
}

ROLES = {  # input value roles per operand position
    "div": ("any", "divisor"), "floordiv": ("any", "divisor"), "mod": ("any", "divisor"),
    "shl": ("any", "shift"), "shr": ("any", "shift"),
    **{op: ("cmp", "cmp") for op in H.CMP},
    "log": ("positive",), "log2": ("positive",), "sqrt": ("positive",), "rsqrt": ("positive",),
}


class Case:
    def __init__(self, id, op, fn, operands, params=None, extra=()):
        self.id, self.op, self.fn = id, op, fn
        self.operands = operands  # [(kind, role, shape)]; shape None for Python scalars
        self.params = params or {}  # for the oracle
        self.extra = extra  # positional arguments after the operands

    def __repr__(self):
        return self.id


def _opd(kind, role, shape=SHAPE):
    return (kind, role, None if kind in H.SCALARS else shape)


def build_cases():
    cases = []
    # binary operators and their function forms: every ordered kind pair but two Python numbers
    for op in H.BINARY:
        roles = ROLES.get(op, ("any", "any"))
        for spelling, table in (("op", OPERATOR), ("fn", FUNCTION)):
            if op not in table:
                continue
            for ka in H.KINDS:
                for kb in H.KINDS:
                    if ka in H.SCALARS and kb in H.SCALARS:
                        continue
                    cases.append(Case(f"{op}-{spelling}-{ka}-{kb}", op, table[op],
                                      [_opd(ka, roles[0]), _opd(kb, roles[1])]))
    # numpy scalars in operators are Python numbers ("np.float32(2) * h works"): on both sides
    for op in H.BINARY:
        if op not in OPERATOR:
            continue
        roles = ROLES.get(op, ("any", "any"))
        for k in H.TENSORS:
            for sk in ("int", "float"):
                cases.append(Case(f"{op}-op-{k}-np{sk}", op, OPERATOR[op],
                                  [_opd(k, roles[0]), (sk, roles[1] + "+np", None)]))
                cases.append(Case(f"{op}-op-np{sk}-{k}", op, OPERATOR[op],
                                  [(sk, roles[0] + "+np", None), _opd(k, roles[1])]))
    # mixed kinds under broadcasting: a (4, 1) or (1, 8) operand against a (4, 8) tile
    for op in ("add", "mul", "div", "mod", "lt", "eq", "and", "maximum"):
        for (ka, sa), (kb, sb) in ((("int32", SHAPE), ("mask", (4, 1))), (("mask", (1, 8)), ("f16", SHAPE)),
                                   (("fp8e4m3", (4, 1)), ("int32", (1, 8))), (("mask", (4, 1)), ("mask", (1, 8)))):
            roles = ROLES.get(op, ("any", "any"))
            spelling, table = ("op", OPERATOR) if op in OPERATOR else ("fn", FUNCTION)
            cases.append(Case(f"{op}-{spelling}-{ka}{sa[0]}x{sa[1]}-{kb}{sb[0]}x{sb[1]}", op, table[op],
                              [_opd(ka, roles[0], sa), _opd(kb, roles[1], sb)]))
    # shift counts outside 0..31 given as Python ints
    for op in H.SHIFT:
        for spelling, table in (("op", OPERATOR), ("fn", FUNCTION)):
            for ka in ("int32", "mask"):
                for count in (-1, 32):
                    cases.append(Case(f"{op}-{spelling}-{ka}-count{count}", op, table[op],
                                      [_opd(ka, "any"), ("int", count, None)]))
    # integer division / remainder by zero: a Python 0 (trace) and a tensor holding 0 (replay;
    # int32 "any" tiles hold a 0 at [0, 1], masks hold False)
    for op in ("floordiv", "mod"):
        for ka in ("int32", "mask"):
            cases.append(Case(f"{op}-op-{ka}-int0", op, OPERATOR[op], [_opd(ka, "any"), ("int", 0, None)]))
            for kb in ("int32", "mask"):
                cases.append(Case(f"{op}-op-{ka}-{kb}zero", op, OPERATOR[op],
                                  [_opd(ka, "any"), _opd(kb, "any")]))
    # int32 wrap-around: values near the int32 range (INT_MIN, saturated INT_MAX, ...)
    for op in ("add", "sub", "mul"):
        cases.append(Case(f"{op}-op-int32wide-int", op, OPERATOR[op],
                          [_opd("int32", "wide"), _opd("int", "any")]))
        cases.append(Case(f"{op}-op-int32wide-int32wide", op, OPERATOR[op],
                          [_opd("int32", "wide"), _opd("int32", "wide")]))
    # unary operators and functions
    for op in H.UNARY:
        role = ROLES.get(op, ("any",))[0]
        for spelling, table in (("op", OPERATOR), ("fn", FUNCTION)):
            if op not in table:
                continue
            for k in H.TENSORS:
                cases.append(Case(f"{op}-{spelling}-{k}", op, table[op], [_opd(k, role)]))
            if op in ("neg", "abs", "pos", "invert"):
                cases.append(Case(f"{op}-{spelling}-int32wide", op, table[op], [_opd("int32", "wide")]))
    # ** with a Python int exponent; float exponents, |n| > 64 and negative powers of int32
    # tensors and masks are refused
    for k in H.TENSORS:
        for n in (0, 1, 2, 3, 4, 5, -1, -2, 0.5, 3.0, 65):
            cases.append(Case(f"pow-op-{k}-n{n}", "pow", OPERATOR["pow"], [_opd(k, "any")], {"n": n}, (n,)))
    # casts, saturating casts to fp8
    for k in H.TENSORS:
        for dst in H.FLOATS + ("int32",):
            cases.append(Case(f"cast-fn-{k}-to-{dst}", "cast", FUNCTION["cast"], [_opd(k, "wide")],
                              {"dtype": dst}, (dst,)))
        for dst in ("fp8e4m3", "fp8e5m2"):
            cases.append(Case(f"cast_sat-fn-{k}-to-{dst}", "cast", FUNCTION["cast_sat"], [_opd(k, "wide")],
                              {"dtype": dst, "saturate": True}, (dst,)))
    # reductions
    for op in H.REDUCE:
        for k in H.TENSORS:
            for axis in (None, 0, -1):
                cases.append(Case(f"{op}-fn-{k}-axis{axis}", op, FUNCTION[op], [_opd(k, "coarse")],
                                  {"axis": axis}, (axis,)))
        cases.append(Case(f"{op}-fn-int32wide-axisNone", op, FUNCTION[op], [_opd("int32", "wide")],
                          {"axis": None}, (None,)))
    # where: a mask condition with every pair of branches; other conditions tested for non-zero
    for ka in H.KINDS:
        for kb in H.KINDS:
            cases.append(Case(f"where-fn-mask-{ka}-{kb}", "where", FUNCTION["where"],
                              [_opd("mask", "any"), _opd(ka, "any"), _opd(kb, "any")]))
    for kc in H.TENSORS:
        if kc != "mask":
            cases.append(Case(f"where-fn-{kc}-f16-int", "where", FUNCTION["where"],
                              [_opd(kc, "cond"), _opd("f16", "any"), _opd("int", "any")]))
    # dot: float tensors only
    for spelling, table in (("op", OPERATOR), ("fn", FUNCTION)):
        pairs = [(k, k) for k in H.FLOATS] + [("int32", "int32"), ("mask", "mask"), ("f16", "int32"),
                                               ("int32", "f16"), ("f32", "mask"), ("mask", "bf16")]
        for ka, kb in pairs:
            cases.append(Case(f"dot-{spelling}-{ka}-{kb}", "dot", table["dot"],
                              [_opd(ka, "coarse", (4, 8)), _opd(kb, "coarse", (8, 4))]))
    for name, fn in UNLISTED.items():
        cases.append(Case(f"unlisted-fn-{name}", "unlisted", fn, [_opd("f32", "any")]))
    for name, fn, dtype, value in LITERAL:
        cases.append(Case(f"literal-{name}", "literal", fn, [], {"dtype": dtype, "value": value}))
    return cases


CASES = build_cases()


def scalar(kind, role):
    """A Python number for a role (a literal role is the number itself); "+np": a numpy scalar."""
    if not isinstance(role, str):
        return role
    base, _, np_ = role.partition("+")
    v = H.SCALAR_VALUES[base][kind == "float"]
    return (np.float32(v) if kind == "float" else np.int64(v)) if np_ else v


def storage(case, kind, role):
    """The device array's dtype: a float kind's own; masks come from f32 (``x > 0.0``); int32
    from an int32 device array in the function-spelling cases, from ``tl.cast(f32, "int32")``
    in the others (and for the "wide" values, which need the float-to-int32 conversion)."""
    if kind in H.FLOATS:
        return kind
    if kind == "int32" and "-fn-" in case.id and role != "wide":
        return "int32"
    return "f32"


def _seed(case, i):
    return sum(map(ord, case.id)) * 7 + i


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_table(case):
    ctx = kernbench.Context("default", overrides=HW)
    kinds, values, arrays, shapes = [], [], [], []
    for i, (kind, role, shape) in enumerate(case.operands):
        kinds.append(kind)
        if kind in H.SCALARS:
            values.append(scalar(kind, role))
            continue
        src = H.source(kind, role, _seed(case, i), shape)
        store = storage(case, kind, role)
        arr = ctx.put(src, pe=(0, 0), dtype=store)
        arrays.append(arr)
        shapes.append((shape, store))
        stored = ctx.read(arr, (0, 0))
        values.append(stored.astype(np.int32) if store == "int32" else H.operand_value(kind, stored))
    want = H.oracle(case.op, kinds, values, case.params)
    seen = {}

    def kernel(*ptrs, tl):
        if tl.program_id(0) != 0:
            return
        args, ptrs, tshapes = [], list(ptrs), list(shapes)
        seen["setup"] = True
        for kind, v in zip(kinds, values):
            if kind in H.SCALARS:
                args.append(v)
                continue
            shape, store = tshapes.pop(0)
            x = tl.load(ptrs.pop(0), shape=shape, dtype=store)
            args.append(x if kind == store else tl.cast(x, "int32") if kind == "int32" else x > 0.0)
        seen["setup"] = False
        seen["h"] = case.fn(tl, *args, *case.extra)

    line = case.fn.__code__.co_firstlineno
    problems = []

    def launch(mode):
        seen.clear()
        try:
            return ctx.launch(kernel, (1, 1), *arrays, mode=mode), None
        except Exception as e:  # noqa: BLE001 - classified below
            return None, e

    def check_refusal(e, mode):
        if e is None:
            problems.append(f"NOT-REFUSED[{mode}]: expected a KernelError ({want.why}), the launch succeeded"
                            + (f" giving {seen['h'].dtype}" if isinstance(seen.get("h"), TensorHandle) else ""))
            return
        msg = str(e)
        if not isinstance(e, KernelError):
            problems.append(f"REFUSAL-MESSAGE[{mode}]: {type(e).__name__} instead of KernelError: {msg[:300]}")
        elif seen.get("setup"):
            problems.append(f"SETUP[{mode}]: {msg[:300]}")
        elif "PE (0, 0)" not in msg or f"{FILE}:{line}" not in msg:
            problems.append(f"REFUSAL-MESSAGE[{mode}]: no 'PE (0, 0)' or '{FILE}:{line}' in: {msg[:300]}")
        elif re.search(r"kernel \w+ raised \w+ on PE", msg) and case.op != "unlisted":
            problems.append(f"REFUSAL-MESSAGE[{mode}]: an incidental Python exception, not a refusal: {msg[:300]}")

    if isinstance(want, H.Refused):
        r, e = launch("functional")
        check_refusal(e, "functional")
        r, e = launch("timing")
        if want.when == "trace":
            check_refusal(e, "timing")
        elif e is not None:
            problems.append(f"RAISED[timing]: a replay-time refusal raised in timing mode: {e}")
        assert not problems, "\n".join(problems)
        return

    r, e = launch("functional")
    if e is not None:
        tag = "SETUP" if seen.get("setup") else "RAISED"
        pytest.fail(f"{tag}[functional]: {type(e).__name__}: {str(e)[:400]}", pytrace=False)
    h = seen.get("h")
    if not isinstance(h, TensorHandle):
        pytest.fail(f"NOT-A-HANDLE: the op returned {type(h).__name__}: {h!r}"[:400], pytrace=False)
    if h.dtype != want.dtype:
        problems.append(f"DTYPE: got {h.dtype!r}, the promotion rules give {want.dtype!r}")
    if tuple(h.shape) != want.value.shape:
        problems.append(f"SHAPE: got {tuple(h.shape)}, want {want.value.shape}")
    data = h.data
    if data is None:
        problems.append("VALUE: .data is None after a functional launch")
    else:
        data = np.asarray(data)
        if data.dtype != H.NP[want.dtype]:
            problems.append(f"NPDTYPE: .data is {data.dtype}, want {H.NP[want.dtype]}")
        if not H.same_values(data, want.value):
            problems.append("VALUE: " + H.describe_mismatch(data, want.value, values))
    rt, e = launch("timing")
    if e is not None:
        problems.append(f"RAISED[timing]: {type(e).__name__}: {str(e)[:300]}")
    elif rt.cycles != r.cycles:
        problems.append(f"CYCLES: timing {rt.cycles} != functional {r.cycles}")
    assert not problems, "\n".join(problems)


def test_int32_device_arrays():
    """int32 device arrays: put/load/store keep int32; a store of floats to an int32 array
    truncates toward zero and saturates, NaN -> 0 (Numerics)."""
    ctx = kernbench.Context("default", overrides=HW)
    ints = np.arange(-16, 16, dtype=np.int64).reshape(SHAPE) * 3
    src = ctx.put(ints, pe=(0, 0), dtype="int32")
    floats = np.resize(np.asarray(H.WIDE), 32).reshape(SHAPE)
    fsrc = ctx.put(floats, pe=(0, 0), dtype="f32")
    o = ctx.empty(SHAPE, "int32")
    o2 = ctx.empty(SHAPE, "int32")
    seen = {}

    def kernel(p, fp, op, op2, *, tl):
        if tl.program_id(0) != 0:
            return
        x = tl.load(p, shape=SHAPE, dtype="int32")
        seen["x"] = x
        tl.store(op, x * 2 + 1)
        tl.store(op2, tl.load(fp, shape=SHAPE, dtype="f32"))

    r = ctx.launch(kernel, (1, 1), src, fsrc, o, o2)
    assert seen["x"].dtype == "int32"
    np.testing.assert_array_equal(ctx.read(o, (0, 0)), (ints * 2 + 1).astype(np.int32))
    assert ctx.read(o, (0, 0)).dtype == np.int32
    stored = ctx.read(fsrc, (0, 0)).astype(np.float32)
    np.testing.assert_array_equal(ctx.read(o2, (0, 0)), H.f32_to_int32(stored))
    rt = ctx.launch(kernel, (1, 1), src, fsrc, o, o2, mode="timing")
    assert rt.cycles == r.cycles


@pytest.mark.parametrize("dt", ["f32", "bf16", "f16", "fp8e4m3", "fp8e5m2"])
def test_an_int32_tensor_becomes_a_float_dtype_rounded_once(dt):
    """An int32 tensor cast to (or promoted with) a float dtype rounds once from its exact value
    (Numerics): 2**24 + 2**16 + 1 is 16908288 in bf16, where int -> f32 -> bf16 would give 2**24
    (a review found the op table's oracle rounding twice, right only for its small values)."""
    ctx = kernbench.Context("default", overrides=HW)
    big = [2 ** 24 + 2 ** 16 + 1, -(2 ** 24 + 2 ** 16 + 1), 2 ** 24 + 3, 2049, 300001, 2 ** 31 - 1,
           -2 ** 31, 463, 465, 57345, 0, -7]
    v = np.asarray(big, np.int64)
    src = ctx.put(v, pe=(0, 0), dtype="int32")
    o, o2 = ctx.empty((len(v),), dt), ctx.empty((len(v),), "f32")
    fl = ctx.put(np.zeros(len(v)), pe=(0, 0), dtype=dt)

    def kernel(p, f, op, op2, *, tl):
        x = tl.load(p, shape=(len(big),), dtype="int32")
        tl.store(op, tl.cast(x, dt))
        tl.store(op2, tl.cast(x + tl.load(f, shape=(len(big),), dtype=dt), "f32"))  # (promoted)

    ctx.launch(kernel, (1, 1), src, fl, o, o2)
    want = H.to_f32_in(v, "int32", dt)
    if dt == "bf16":
        assert want[0] == 16908288  # (the oracle itself: one rounding)
    np.testing.assert_array_equal(np.asarray(ctx.read(o, (0, 0)), np.float32), want)
    np.testing.assert_array_equal(ctx.read(o2, (0, 0)), want)
