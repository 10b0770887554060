"""The ops Triton kernels use every day: tl.arange and int32 index arithmetic (//, %, shifts),
tl.cdiv, x ** n, tl.dot(acc=), tl.broadcast_to, tl.sigmoid, saturating casts, int32 device
arrays. Values against numpy, costs derived from docs/hardware-model.md (default preset: 64
lanes, 8 cycles of pipeline latency; op_cycles div, exp, sigmoid 4, fill, copy, bitwise 1)."""
import os
import sys
import warnings

import ml_dtypes
import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.common.pe_commands import Opcode, VecOp

HW = {"n_cubes": 1, "pes_per_cube": 2}
FILE = os.path.basename(__file__)


def run(body, *arrays, mode="functional", dtype=None):
    """``body(tl, *tiles)`` on PE (0, 0): (its result, the LaunchResult)."""
    ctx = kernbench.Context("default", overrides=HW)
    ptrs = [ctx.put(a, pe=(0, 0), dtype=dtype) for a in arrays]
    seen = {}

    def kernel(*ps, tl):
        if tl.program_id(0) == 0:
            tiles = [tl.load(p, shape=a.shape) for p, a in zip(ps, arrays)]
            seen["out"] = body(tl, *tiles)

    r = ctx.launch(kernel, (1, 1), *ptrs, mode=mode)
    return seen["out"], r


def vec_ops(r):
    c = r.program.commands
    v = c[c["opcode"] == Opcode.VEC]
    return [(VecOp(int(s)).name, int(n)) for s, n in zip(v["sub"], v["n"])]


def test_arange_is_int32_and_costs_a_fill():
    for mode in ("timing", "functional"):
        a, r = run(lambda tl: tl.arange(3, 3 + 100), mode=mode)
        assert (a.dtype, a.shape) == ("int32", (100,))
        # ceil(100 / 64) * fill 1 + latency 8 = 10
        assert r.cycles == 10 and vec_ops(r) == [("FILL", 100)]
    np.testing.assert_array_equal(a.data, np.arange(3, 103, dtype=np.int32))
    b, _ = run(lambda tl: tl.arange(5))
    np.testing.assert_array_equal(b.data, np.arange(5))


def test_int32_division_and_remainder_truncate_like_c():
    a = np.array([-7, -6, -1, 0, 1, 6, 7, 2 ** 30], np.float32)
    b = np.array([2, -4, 3, 5, -2, 4, -3, 7], np.float32)

    def body(tl, x, y):
        i, j = tl.cast(x, "int32"), tl.cast(y, "int32")
        return i // j, i % j, i // 2, -7 // j, i / j

    (q, rem, q2, q3, td), r = run(body, a, b, dtype="f32")
    ai, bi = a.astype(np.int64), b.astype(np.int64)
    trunc = (np.abs(ai) // np.abs(bi)) * np.sign(ai) * np.sign(bi)
    assert q.dtype == rem.dtype == "int32" and td.dtype == "f32"
    np.testing.assert_array_equal(q.data, trunc)
    np.testing.assert_array_equal(rem.data, ai - bi * trunc)  # the dividend's sign
    np.testing.assert_array_equal(q2.data, np.trunc(ai / 2).astype(np.int64))
    np.testing.assert_array_equal(q3.data, np.trunc(-7 / bi).astype(np.int64))
    np.testing.assert_array_equal(td.data, ai.astype(np.float32) / bi.astype(np.float32))
    # // and % cost the div class: ceil(8/64) * 4 + 8 = 12
    assert [op for op in vec_ops(r) if op[0] == "DIV"] == [("DIV", 8)] * 5


def test_int32_arithmetic_is_exact_and_wraps():
    def body(tl):
        i = tl.arange(2 ** 24, 2 ** 24 + 4)  # not representable in f32 beyond 2**24
        big = tl.full((4,), 2 ** 31 - 1, "int32")
        return i + 1, big + i, i * i

    (a, b, c), _ = run(body)
    i = np.arange(2 ** 24, 2 ** 24 + 4, dtype=np.int64)
    np.testing.assert_array_equal(a.data, i + 1)
    np.testing.assert_array_equal(b.data, ((2 ** 31 - 1 + i + 2 ** 31) % 2 ** 32 - 2 ** 31))
    np.testing.assert_array_equal(c.data, ((i * i + 2 ** 31) % 2 ** 32 - 2 ** 31))


def test_division_by_zero_is_found_at_trace_or_in_replay():
    lines = []

    def scalar(tl):
        lines.append(sys._getframe().f_lineno + 1)
        return tl.arange(0, 4) // 0

    def known(tl):
        z = tl.arange(0, 4) * 0
        lines.append(sys._getframe().f_lineno + 1)
        return tl.arange(0, 4) % z

    for body in (scalar, known):
        for mode in ("functional", "timing"):
            with pytest.raises(KernelError) as ei:
                run(body, mode=mode)
            assert f"PE (0, 0) at {FILE}:{lines[-1]}" in str(ei.value)
            assert "division or remainder by zero" in str(ei.value)

    def unknown(tl, x):
        lines.append(sys._getframe().f_lineno + 1)
        return tl.arange(0, 4) // tl.cast(x, "int32")

    zeros = np.zeros(4, np.float32)
    assert run(unknown, zeros, mode="timing")[1].cycles > 0  # no values: nothing to find
    with pytest.raises(KernelError) as ei:
        run(unknown, zeros)
    assert f"PE (0, 0) at {FILE}:{lines[-1]}" in str(ei.value)
    # where the zero is, and what was expected (a review: the bare words named neither)
    assert "the divisor is 0 at element (0,) (4 of 4 elements); int32 // and % need a nonzero" in str(ei.value)
    with pytest.raises(KernelError, match=r"the divisor is 0 at element \(2,\); int32") as ei:
        run(unknown, np.array([1, 2, 0, 4], np.float32))
    for mode in ("functional", "timing"):
        with pytest.raises(KernelError, match=r"shift count 36 is outside 0..31 at element \(6,\) \(2 of 8"):
            run(lambda tl: tl.arange(0, 8) << tl.arange(0, 8) * 6, mode=mode)


def test_bitwise_and_shifts():
    def body(tl):
        i = tl.arange(-4, 4)
        m = i > 0
        return i & 6, i | 1, i ^ -1, ~i, i << 3, i >> 1, ~m, m & (i < 3), m ^ True

    outs, r = run(body)
    i = np.arange(-4, 4)
    want = [i & 6, i | 1, i ^ -1, ~i, i << 3, i >> 1, ~(i > 0), (i > 0) & (i < 3), (i > 0) ^ True]
    for h, w in zip(outs, want):
        assert h.dtype == ("bool" if w.dtype == bool else "int32")
        np.testing.assert_array_equal(h.data, w)
    assert sum(op == "BITWISE" for op, _ in vec_ops(r)) == 9
    with pytest.raises(KernelError, match="shift count 32 is outside 0..31"):
        run(lambda tl: tl.arange(0, 4) << 32)
    with pytest.raises(KernelError, match="bitwise and logical ops take masks, int32"):
        run(lambda tl, x: x & 1, np.ones(4, np.float16))


def test_cdiv():
    out, _ = run(lambda tl: (tl.cdiv(10, 4), tl.cdiv(8, 4), tl.cdiv(tl.arange(0, 6), 4)))
    assert out[:2] == (3, 2)
    np.testing.assert_array_equal(out[2].data, [0, 1, 1, 1, 1, 2])


def test_cdiv_with_a_tensor_divisor_costs_what_the_calls_table_says():
    """A review's case: tl.cdiv(7, t) emitted an add, a sub and a //, where the Calls table
    says an add and a //. Now an int a with a tensor b is b + (a - 1) (the same int32 bits as
    a + b - 1), one add; two tensors take an add, a sub and a //, as the table now says.

    Cycles (docs/hardware-model.md, vector unit: ceil(n / 64) * op cycles + latency 8; fill and
    add 1, // 4): arange(1, 71): 2 + 8 = 10; the add 10; the // 2 * 4 + 8 = 16: 36 for
    tl.cdiv(7, b); with a = arange(0, 70) too: 10 + 10 + add 10 + sub 10 + // 16 = 56."""
    b = lambda tl: tl.arange(1, 71)  # noqa: E731
    for mode in ("timing", "functional"):
        t, r = run(lambda tl: tl.cdiv(7, b(tl)), mode=mode)
        assert vec_ops(r) == [("FILL", 70), ("ADD", 70), ("DIV", 70)] and r.cycles == 36
        if mode == "functional":
            np.testing.assert_array_equal(t.data, -(-7 // np.arange(1, 71)))
        t, r = run(lambda tl: tl.cdiv(tl.arange(0, 70), b(tl)), mode=mode)
        assert [op for op, _ in vec_ops(r)] == ["FILL", "FILL", "ADD", "SUB", "DIV"]
        assert r.cycles == 56
    for a in (-(2 ** 31), 2 ** 31 - 1):  # a - 1 wraps (a review found -2**31 took three commands)
        t, r = run(lambda tl, a=a: tl.cdiv(a, b(tl)))
        assert [op for op, _ in vec_ops(r)] == ["FILL", "ADD", "DIV"]
        want = ((np.int64(a) + np.arange(1, 71) - 1 + 2 ** 31) % 2 ** 32 - 2 ** 31)
        np.testing.assert_array_equal(t.data, np.trunc(want / np.arange(1, 71)).astype(np.int64))


def test_cdiv_of_negative_operands_is_tritons_formula():
    """A review's case (triton-lang/triton#954): (a + b - 1) // b with each path's own //, as
    Triton computes it: Python ints floor, int32 tensors truncate, so tl.cdiv(-36, 5) is -7 of
    ints and -6 of a tensor; for a >= 0, b > 0 both are the ceiling (docs/language.md)."""
    a = np.arange(-40, 41, dtype=np.int64)
    for b in (5, 3, 1, -2, -7):
        ints, _ = run(lambda tl, b=b: tuple(tl.cdiv(int(x), b) for x in a))
        assert list(ints) == [(int(x) + b - 1) // b for x in a]  # Python's floor
        (t,), _ = run(lambda tl, b=b: (tl.cdiv(tl.arange(0, 81) - 40, b),))
        num = a + b - 1
        trunc = np.sign(num) * np.sign(b) * (np.abs(num) // abs(b))  # C's truncation
        np.testing.assert_array_equal(t.data, trunc)
        ok = a >= 0 if b > 0 else np.zeros(len(a), bool)
        ceil = -((-a) // b)
        np.testing.assert_array_equal(t.data[ok], ceil[ok])
        assert [ints[i] for i in np.flatnonzero(ok)] == ceil[ok].tolist()
        if b > 0:  # the docs' a <= -b: one more than the ceiling unless b divides a - 1
            past = a <= -b
            np.testing.assert_array_equal(t.data[past], ceil[past] + ((a[past] - 1) % b != 0))
    (t,), _ = run(lambda tl: (tl.cdiv(tl.full((1,), -36, "int32"), 5),))
    assert int(t.data[0]) == -6 and run(lambda tl: (tl.cdiv(-36, 5),))[0] == (-7,)
    (t,), _ = run(lambda tl: (tl.cdiv(tl.full((1,), -9, "int32"), 5),))
    assert int(t.data[0]) == -1  # b divides a - 1: the ceiling (docs/language.md)


def test_cdiv_and_softmax_errors_name_themselves():
    """A review's cases: tl.cdiv(x, -2**31) was refused naming -2**31 - 1, a number the kernel
    never wrote, tl.cdiv(x, 0) as "//", and tl.softmax's axis errors as "max"'s."""
    x = lambda tl: tl.arange(0, 4)  # noqa: E731
    for b in (-2**31, 2**31):
        with pytest.raises(KernelError, match=rf"cdiv: b = {b}: cdiv computes \(a \+ b - 1\) // b in int32"):
            run(lambda tl, b=b: tl.cdiv(x(tl), b))
    with pytest.raises(KernelError, match="cdiv: division by zero"):
        run(lambda tl: tl.cdiv(x(tl), 0))
    for bad in ("2", None, np.timedelta64(2, "s")):  # (named as cdiv's, not the add it becomes)
        for a, b in ((x, bad), (bad, x)):
            with pytest.raises(KernelError, match="cdiv takes ints and int32 tensors, got"):
                run(lambda tl, a=a, b=b: tl.cdiv(a(tl) if callable(a) else a, b(tl) if callable(b) else b))
    # a float beside a tensor: the tensor named by its dtype and shape, not its handle's repr
    # with its 80-bit id (a review)
    with pytest.raises(KernelError, match=r"cdiv takes ints and int32 tensors, got a int32 \(4,\) "
                                          r"tensor and 2\.0$"):
        run(lambda tl: tl.cdiv(x(tl), 2.0))
    b = -(2**31) + 1  # (b and b - 1 fit: int32's truncating // of a + b - 1 = i - 2**31)
    (t,), _ = run(lambda tl: (tl.cdiv(x(tl), b),))
    np.testing.assert_array_equal(t.data, [1, 1, 0, 0])  # -2**31 / b = 1.0000000005, then <= 1
    for axis, what in ((5, "softmax: axis 5 is out of range"), ("a", "softmax: axis must be an int")):
        with pytest.raises(KernelError, match=what):
            run(lambda tl, axis=axis: tl.softmax(tl.zeros((4, 4), "f32"), axis))


def test_a_timedelta_is_no_number():
    """A review's case: np.timedelta64 is a numpy signed integer by class; f32 + timedelta64(5)
    added 5, with a unit it failed inside kernbench blamed on the kernel. Refused as datetime64
    is (numpy refuses float32 + timedelta64 too)."""
    for v in (np.timedelta64(5, "D"), np.timedelta64(5, "s"), np.datetime64("2020-01-01")):
        with pytest.raises(KernelError, match=f"add: expected a tensor or a Python number, got {type(v).__name__}"):
            run(lambda tl, v=v: tl.zeros((4,), "f32") + v)
        with pytest.raises(KernelError, match="expected|number|value"):
            run(lambda tl, v=v: tl.full((3,), v, "int32"))


def test_a_timedelta_is_no_int_anywhere():
    """A review's case: after scalar_kind, np.timedelta64 (a numpy signed integer by class) was
    still taken as an int by every other check: a shape, an axis, trans's dims, a pointer
    offset, program_id's axis, the grid, max_cycles, a hardware key, profile's top. numpy
    refuses them all ("cannot be interpreted as an integer"); so does kernbench now."""
    from kernbench.hw.config import HardwareConfigError

    def td(n, unit="s"):  # (numpy 2.5 deprecates the generic unit)
        return np.timedelta64(n, unit)

    for body in (lambda tl: tl.zeros((td(4),), "f32"), lambda tl: tl.zeros(td(4, "s"), "f32"),
                 lambda tl: tl.sum(tl.zeros((4, 4), "f32"), axis=td(0)),
                 lambda tl: tl.softmax(tl.zeros((4, 4), "f32"), td(0)),
                 lambda tl: tl.trans(tl.zeros((4, 2), "f32"), td(1), td(0)),
                 lambda tl: tl.reshape(tl.zeros((4, 2), "f32"), (td(8),)),
                 lambda tl: tl.broadcast_to(tl.zeros((1, 2), "f32"), (td(3), 2)),
                 lambda tl: tl.program_id(td(0)), lambda tl: tl.num_programs(td(1))):
        with pytest.raises(KernelError):
            run(body)
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.put(np.arange(16, dtype=np.float32), pe=(0, 0))

    def ld(x_ptr, off, shape, *, tl):
        tl.load(x_ptr + off, shape=shape)

    for off, shape in ((td(16), (4,)), (16, (td(4),))):
        with pytest.raises(KernelError), warnings.catch_warnings():
            # (numpy 2.5 deprecates an int + a timedelta: the test's own sum, refused all the same)
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.launch(ld, (1, 1), x, off, shape)
    with pytest.raises(TypeError):
        x + td(16)
    with pytest.raises(ValueError):
        ctx.launch(ld, (td(1), 1), x, 0, (4,))
    with pytest.raises(ValueError):
        ctx.launch(ld, (1, 1), x, 0, (4,), max_cycles=td(100))
    with pytest.raises(HardwareConfigError):
        kernbench.Context("default", overrides={"n_cubes": td(1), "pes_per_cube": 2})


def test_program_id_axis_and_pinned_are_not_converted():
    """A review's kind: compiled, an argument annotated int was converted with int() and one
    annotated bool by truth before the checks saw it: program_id(1.7) was axis 1 and
    program_id(True) too, load(pinned="False") pinned the tile. Refused now; numpy ints and
    bools are their values."""
    for axis in (1.7, True, np.float64(1.0), "1", None):
        with pytest.raises(KernelError, match="program_id: axis must be 0 .PE. or 1 .cube."):
            run(lambda tl, a=axis: tl.program_id(a))
        with pytest.raises(KernelError, match="num_programs: axis must be 0"):
            run(lambda tl, a=axis: tl.num_programs(a))
    assert run(lambda tl: (tl.program_id(np.int64(1)), tl.num_programs(np.int32(1))))[0] == (0, 1)
    for v in ("False", 0, None, 2):
        with pytest.raises(KernelError, match="load: pinned must be True or False"):
            _load_pinned(v)
    assert _load_pinned(np.bool_(True)) is True and _load_pinned(False) is False


def _load_pinned(v):
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.put(np.zeros(8, np.float32), pe=(0, 0))
    seen = []

    def k(x_ptr, *, tl):
        seen.append(tl.load(x_ptr, shape=(8,), pinned=v).pinned)

    ctx.launch(k, (1, 1), x, mode="timing")
    return seen[0]


def test_pow_is_square_and_multiply():
    x = np.array([1.1, -2.3, 0.7, 3.3], np.float16)
    f = x.astype(np.float32)

    def r16(v):
        return np.asarray(v, np.float32).astype(np.float16).astype(np.float32)

    (p0, p1, p2, p3, p4, pm2, pb), r = run(
        lambda tl, t: (t ** 0, t ** 1, t ** 2, t ** 3, t ** 4, t ** -2, (t > 0) ** 2), x)
    assert p1 is not None and p1.shape == (4,)
    np.testing.assert_array_equal(p0.data, np.ones(4, np.float16))
    np.testing.assert_array_equal(p1.data, x)
    x2 = r16(f * f)
    np.testing.assert_array_equal(p2.data, x2.astype(np.float16))
    np.testing.assert_array_equal(p3.data, r16(f * x2).astype(np.float16))  # x * (x * x)
    np.testing.assert_array_equal(p4.data, r16(x2 * x2).astype(np.float16))
    np.testing.assert_array_equal(pm2.data, r16(np.float32(1) / x2).astype(np.float16))
    assert pb.dtype == "int32"
    np.testing.assert_array_equal(pb.data, (x > 0).astype(np.int32))
    # fill; x**2: 1 mul; x**3: 2; x**4: 2; x**-2: 1 mul + div; mask**2: 1 mul
    ops = [op for op, _ in vec_ops(r)]
    assert ops.count("MUL") == 1 + 2 + 2 + 1 + 1 and ops.count("DIV") == 1 and ops.count("FILL") == 1
    for bad in (0.5, 2.0, 65, "2"):
        with pytest.raises(KernelError, match="takes a Python int exponent in -64..64"):
            run(lambda tl, t, bad=bad: t ** bad, x)
    with pytest.raises(KernelError, match="tensor exponent is not supported"):
        run(lambda tl, t: 2 ** t, x)


def test_dot_acc_is_acc_plus_dot_with_one_f32_add():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((32, 64)).astype(np.float16)
    b = rng.standard_normal((64, 32)).astype(np.float16)
    c = rng.standard_normal((32, 32)).astype(np.float32)

    def fused(tl, x, y, acc):
        return tl.dot(x, y, acc=tl.cast(acc, "f32") * 1.0)

    def by_hand(tl, x, y, acc):
        return tl.cast(acc, "f32") * 1.0 + tl.dot(x, y)

    ctx_args = (a, b, c.astype(np.float16))
    (d1, r1), (d2, r2) = run(fused, *ctx_args), run(by_hand, *ctx_args)
    np.testing.assert_array_equal(d1.data, d2.data)
    want = c.astype(np.float16).astype(np.float32) + a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(d1.data, want, rtol=1e-6, atol=1e-5)
    assert r1.cycles == r2.cycles
    # The dot: one fold, max(64 + 32 + 32 - 2, ceil(64 * 64 * 2 / 256)) = 126 cycles; the add
    # of 32 * 32 f32: ceil(1024 / 64) + 8 = 24.
    assert ("ADD", 1024) in vec_ops(r1)
    c1 = r1.program.commands
    assert int((c1["opcode"] == Opcode.DOT).sum()) == 1
    with pytest.raises(KernelError, match=r"acc must be an f32 tensor of the result's shape \(32,32\)"):
        run(lambda tl, x, y, acc: tl.dot(x, y, acc=acc), *ctx_args)  # an f16 acc
    (m, _) = run(lambda tl, x, y, acc: x @ y, *ctx_args)
    assert m.shape == (32, 32) and m.dtype == "f32"


def test_broadcast_to_materializes_a_copy():
    x = np.arange(4, dtype=np.float32).reshape(4, 1)
    (b, same), r = run(lambda tl, t: (tl.broadcast_to(t, (4, 96)), tl.broadcast_to(t, (4, 1))), x)
    np.testing.assert_array_equal(b.data, np.broadcast_to(x, (4, 96)))
    assert same.shape == (4, 1) and vec_ops(r) == [("COPY", 384)]
    # load of 16 B: 1 + 150 = 151; copy of 384: ceil(384/64) * 1 + 8 = 14
    assert r.cycles == 151 + 14
    with pytest.raises(KernelError, match=r"broadcast_to: shapes \(4,1\) and \(3,96\) do not broadcast"):
        run(lambda tl, t: tl.broadcast_to(t, (3, 96)), x)


def test_sigmoid_value_and_cost():
    x = np.linspace(-6, 6, 128).astype(np.float32)
    s, r = run(lambda tl, t: tl.sigmoid(t), x)
    np.testing.assert_array_equal(s.data, (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32))
    # load 512 B: one burst of ceil(512/256) = 2 cycles + 150 = 152; sigmoid: ceil(128/64) * 4 + 8 = 16
    assert r.cycles == 152 + 16 and vec_ops(r) == [("SIGMOID", 128)]


@pytest.mark.parametrize("what", ["floordiv", "mod", "cdiv", "fill", "shl", "shr"])
def test_a_known_divisor_or_shift_count_of_an_unknown_tensor_is_checked_at_trace(what):
    """Only the right operand known (a tl.arange, a small tl.full) and the left one loaded: the
    divisor or shift count alone makes the op fail, so timing mode refuses it at trace, at the
    op's line, as functional mode does (a review found timing mode silent)."""
    op = {"floordiv": lambda tl, a: a // tl.arange(0, 4),
          "mod": lambda tl, a: a % tl.arange(0, 4),
          "cdiv": lambda tl, a: tl.cdiv(a, tl.arange(0, 4)),
          "fill": lambda tl, a: a // tl.full((4,), 0, "int32"),
          "shl": lambda tl, a: a << tl.arange(30, 34),
          "shr": lambda tl, a: a >> (tl.arange(0, 4) - 1)}[what]

    x = np.ones(4, np.float32)
    for mode in ("functional", "timing"):
        with pytest.raises(KernelError) as ei:
            run(lambda tl, t: op(tl, tl.cast(t, "int32")), x, mode=mode)
        assert f"PE (0, 0) at {FILE}:{op.__code__.co_firstlineno}" in str(ei.value)
        assert ("shift count" if what in ("shl", "shr") else "division or remainder by zero") in str(ei.value)
    ok = {"floordiv": lambda tl, a: a // (tl.arange(0, 4) + 1), "shl": lambda tl, a: a << tl.arange(28, 32),
          "fmod": lambda tl, a: tl.cast(a, "f32") % tl.cast(tl.arange(0, 4), "f32")}  # (fmod: NaN)
    for f in ok.values():
        assert run(lambda tl, x, f=f: f(tl, tl.cast(x, "int32")), x, mode="timing")[1].cycles > 0


def test_saturating_cast_to_fp8_and_casts_to_int32():
    x = np.array([500.0, -1000.0, 448.0, np.nan, 1.0e5, 3.7, -3.7, 3e9], np.float32)
    (plain, sat, sat5, i32), _ = run(
        lambda tl, t: (tl.cast(t, "fp8e4m3"), tl.cast(t, "fp8e4m3", saturate=True),
                       tl.cast(t, "fp8e5m2", saturate=True), tl.cast(t, "int32")), x)
    f = plain.data.astype(np.float32)
    assert np.isnan(f[[0, 1, 3, 4, 7]]).all()  # e4m3fn overflows to NaN
    s = sat.data.astype(np.float32)
    np.testing.assert_array_equal(s[[0, 1, 2, 4, 7]], [448, -448, 448, 448, 448])
    assert np.isnan(s[3])
    s5 = sat5.data.astype(np.float32)
    assert s5[4] == 57344 and s5[7] == 57344 and np.isnan(s5[3])
    np.testing.assert_array_equal(i32.data, [500, -1000, 448, 0, 100000, 3, -3, 2 ** 31 - 1])


def _nearest(v: int, dtype) -> float:
    """The value of ``dtype`` nearest integer ``v`` (ties to the even bit pattern), from every
    finite value of the format: an oracle independent of any conversion routine."""
    bits = np.arange(1 << (8 * np.dtype(dtype).itemsize), dtype=np.uint64)
    vals = bits.astype(np.uint16 if np.dtype(dtype).itemsize == 2 else np.uint8).view(dtype)
    with np.errstate(invalid="ignore"):  # (the format's NaN patterns: dropped next)
        f = vals.astype(np.float64)
    ok = np.isfinite(f)
    f, b = f[ok], bits[ok]
    d = np.abs(f - v)
    best = np.flatnonzero(d == d.min())
    even = [j for j in best if b[j] % 2 == 0]
    return float(f[(even or best)[0]])


@pytest.mark.parametrize("dtype", ["bf16", "f16", "fp8e4m3", "fp8e5m2"])
def test_a_saturating_cast_of_int32_rounds_once(dtype):
    """int32 to a float: the value rounded once to nearest even, saturating or not; with
    ``saturate`` only the values past the largest finite one differ (clamped to it). (A review
    found int32 -> f32 -> bf16 under saturate: 2**24 + 2**16 + 1 gave 2**24.)"""
    nd = {"bf16": ml_dtypes.bfloat16, "f16": np.float16, "fp8e4m3": ml_dtypes.float8_e4m3fn,
          "fp8e5m2": ml_dtypes.float8_e5m2}[dtype]
    big = float(ml_dtypes.finfo(nd).max)
    v = np.array([2 ** 24 + 2 ** 16 + 1, -(2 ** 24 + 2 ** 16 + 1), 2 ** 31 - 1, -2 ** 31, 16777217,
                  65519, 65520, 70001, 465, 449, 300, 33, -17, 0], np.int32)
    (plain, sat), _ = run(lambda tl, t: (tl.cast(t, dtype), tl.cast(t, dtype, saturate=True)), v,
                          dtype="int32")
    for j, x in enumerate(v.tolist()):
        want = _nearest(x, nd)
        got_sat = float(sat.data[j].astype(np.float64))
        if abs(x) <= big:
            assert got_sat == want, (x, got_sat, want)
            assert float(plain.data[j].astype(np.float64)) == want, x
        else:
            assert got_sat == (big if x > 0 else -big), x


def test_views_made_by_tl_calls_get_their_data():
    """After a functional launch a view a tl call made (tl.reshape, tl.trans, x[:, None],
    x[None, :], a view of a view, a same-dtype cast of a view: the view itself) holds what it reads
    of its buffer, as the buffer's own handle holds the buffer (a review found them None)."""
    x = np.arange(6, dtype=np.float32)
    (a, r, t, col, row, tr2, same), _ = run(
        lambda tl, a: (a, tl.reshape(a, (2, 3)), tl.trans(tl.reshape(a, (2, 3))), a[:, None],
                       a[None, :], tl.trans(tl.trans(tl.reshape(a, (3, 2)))),
                       tl.cast(tl.reshape(a, (3, 2)), "f32")), x)
    np.testing.assert_array_equal(a.data, x)
    np.testing.assert_array_equal(r.data, x.reshape(2, 3))
    np.testing.assert_array_equal(t.data, x.reshape(2, 3).T)
    np.testing.assert_array_equal(col.data, x[:, None])
    np.testing.assert_array_equal(row.data, x[None, :])
    np.testing.assert_array_equal(tr2.data, x.reshape(3, 2))
    np.testing.assert_array_equal(same.data, x.reshape(3, 2))
    v, _ = run(lambda tl, a: tl.reshape(a, (2, 3)), x, mode="timing")
    assert v.data is None  # (timing mode computes no values)


def test_int32_device_arrays():
    ctx = kernbench.Context("default", overrides=HW)
    idx = ctx.put(np.array([5, -2, 7, 1], np.int32), pe=(0, 0), dtype="int32")
    out = ctx.empty((4,), "f32")
    back = ctx.empty((4,), "int32")

    def kernel(i_ptr, o_ptr, b_ptr, *, tl):
        if tl.program_id(0):
            return
        i = tl.load(i_ptr, shape=(4,), dtype="int32")
        tl.store(o_ptr, i * 2)  # int32 stored to f32 converts
        tl.store(b_ptr, tl.cast(i, "f32") / 2.0)  # f32 stored to int32 truncates

    ctx.launch(kernel, (1, 1), idx, out, back)
    np.testing.assert_array_equal(ctx.read(out, (0, 0)), [10, -4, 14, 2])
    np.testing.assert_array_equal(ctx.read(back, (0, 0)), [2, -1, 3, 0])
    assert ctx.read(back, (0, 0)).dtype == np.int32


def test_fp8_overflow_values_documented():
    # docs/language.md: e4m3 gives NaN above 464 (464 rounds to 448); e5m2 inf from 61440.
    e4, e5 = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2
    assert float(np.float32(464).astype(e4)) == 448 and np.isnan(float(np.float32(465).astype(e4)))
    assert float(np.float32(61439).astype(e5)) == 57344 and np.isinf(float(np.float32(61440).astype(e5)))


def test_exp2_of_an_integer_is_its_power_of_two_exactly():
    """A review rebuilding Triton reports: exp2(127.0) was 2**127 + 2**104 (numpy's f32 exp2, an
    ulp off), where a GPU's ex2 gives 2**127: an MX scale built as exp2(e - 127). tl.exp2 is
    f64's rounded once to f32 (docs/language.md, Numerics): every integer from -149 (the least
    subnormal) to 127 gives its power of two, and x + 0.5 the nearest f32 of 2**(x + 0.5)."""
    n = np.arange(-149, 128)
    (e, h), _ = run(lambda tl, t: (tl.exp2(t), tl.exp2(t + 0.5)), n.astype(np.float32))
    np.testing.assert_array_equal(e.data, np.ldexp(np.float32(1), n))
    assert e.data[-1] == np.float32(2.0 ** 127)
    np.testing.assert_array_equal(h.data, np.exp2(n + 0.5).astype(np.float32))  # (n + 0.5 exact in f64)
    # (a breaker: at these two inputs f64's exp2 lies exactly on an f32 tie and rounded to even
    # the wrong way; long double settles them: the nearest f32)
    ties = np.array([0x3B429D37, 0xBCF3A937], np.uint32).view(np.float32)
    (t,), _ = run(lambda tl, v: (tl.exp2(v),), ties)
    assert t.data.view(np.uint32).tolist() == [0x3F804385, 0x3F7AC6B1]  # (mpmath at 200 bits, the breaker's)
    assert t.data.tobytes() == np.exp2(ties.astype(np.longdouble)).astype(np.float32).tobytes()
    assert np.exp2(ties.astype(np.float64)).astype(np.float32).view(np.uint32).tolist() == [0x3F804384, 0x3F7AC6B0]
    # (a 2-D tile with results below f32's normal range: the fuzz's IndexError, flat indices
    # read as rows)
    tile = np.array([[15, -3, -7, -11], [-1, 13, -140.5, 20], [-15, -6, 12, -2 ** 31], [1, 2, 3, -149.25]], np.float32)
    (t2,), _ = run(lambda tl, v: (tl.exp2(v),), tile)
    assert t2.data.tobytes() == np.exp2(tile.astype(np.longdouble)).astype(np.float32).tobytes()


def test_exp2_log2_and_unknown_calls():
    x = np.array([0.5, 1.0, 3.0, 10.0], np.float32)
    (e, l), r = run(lambda tl, t: (tl.exp2(t), tl.log2(t)), x)
    np.testing.assert_array_equal(e.data, np.exp2(x))
    np.testing.assert_array_equal(l.data, np.log2(x))
    assert [op for op, _ in vec_ops(r)] == ["EXP", "LOG"]
    lines = []

    def body(tl, t):
        lines.append(sys._getframe().f_lineno + 1)
        return tl.cumsum(t)

    with pytest.raises(KernelError) as ei:
        run(body, x)
    call = run.__code__.co_firstlineno + 9  # (kernel's line calling body)
    assert (f"PE (0, 0) at {FILE}:{lines[0]} (in body, called from kernel at {FILE}:{call}): "
            f"tl.cumsum is not part of kernbench's tl language") in str(ei.value)


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32", "fp8e5m2"])
def test_a_saturating_cast_to_the_same_float_dtype_clamps_its_infinities(dtype):
    """``saturate=True`` clamps +-inf to the largest finite value whatever the source dtype, the
    target's own included: one cast command then, not the operand returned unchanged (a review
    found inf kept). Without ``saturate`` a same-dtype cast is the operand itself, no command."""
    nd = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32,
          "fp8e5m2": ml_dtypes.float8_e5m2}[dtype]
    big = float(ml_dtypes.finfo(nd).max)
    x = np.array([np.inf, -np.inf, 1.0, np.nan], np.float32).astype(nd)
    (sat, same, t), r = run(lambda tl, t: (tl.cast(t, dtype, saturate=True), tl.cast(t, dtype), t), x,
                            dtype=dtype)
    got = sat.data.astype(np.float64)
    assert got[0] == big and got[1] == -big and got[2] == 1.0 and np.isnan(got[3])
    assert sat.dtype == dtype and same is t  # the plain cast: the loaded tile itself
    assert vec_ops(r) == [("CAST", 4)]


def test_signed_zeros_order_minus_zero_below_plus_zero():
    """IEEE 754-2019 maximum and minimum: -0 < +0, so the answer does not depend on the order of
    the operands (numpy's maximum returns the first of two zeros; a review found tl.maximum(+0,
    -0) = -0). tl.max / tl.min of a row follow the same order; NaN still propagates."""
    a = np.array([0.0, -0.0, -0.0, 0.0, np.nan, -1.0], np.float32)
    b = np.array([-0.0, 0.0, -0.0, 0.0, -0.0, -0.0], np.float32)
    (mx, mn, mx2, mn2, rmax, rmin, smax), _ = run(
        lambda tl, x, y: (tl.maximum(x, y), tl.minimum(x, y), tl.maximum(y, x), tl.minimum(y, x),
                          tl.max(tl.reshape(x, (3, 2)), axis=1), tl.min(tl.reshape(x, (3, 2)), axis=1),
                          tl.maximum(x, 0.0)), a, b)
    sign = lambda h: np.signbit(h.data).ravel().tolist()  # noqa: E731
    assert sign(mx) == sign(mx2) == [False, False, True, False, False, True]
    assert sign(mn) == sign(mn2) == [True, True, True, False, False, True]
    assert np.isnan(mx.data[4]) and np.isnan(mn.data[4]) and mx.data[5] == 0 and mn.data[5] == -1
    # rows [+0, -0], [-0, +0], [NaN, -1]
    assert sign(rmax)[:2] == [False, False] and sign(rmin)[:2] == [True, True]
    assert np.isnan(rmax.data.ravel()[2]) and np.isnan(rmin.data.ravel()[2])
    assert not np.signbit(smax.data[[0, 1, 2, 3]]).any()  # max(-0, 0.0) is +0


@pytest.mark.parametrize("dtype, number", [("f16", 0.1), ("bf16", 1.00390625), ("f16", 70000.0),
                                           ("fp8e4m3", 449.0), ("fp8e5m2", 0.1)])
def test_a_python_number_is_cast_to_its_float_tensors_dtype(dtype, number):
    """With an f16/bf16/fp8 tensor a Python number is that dtype's value (an f32 constant cast to
    it, as Triton casts a scalar): x == c holds where x holds the number's value in that dtype,
    and x - c is 0 there (a review found 0.1 kept as an f32 constant: f16(0.1) == 0.1 false)."""
    nd = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "fp8e4m3": ml_dtypes.float8_e4m3fn,
          "fp8e5m2": ml_dtypes.float8_e5m2}[dtype]
    with np.errstate(over="ignore"):
        c = np.float32(number).astype(nd)  # the immediate's value in the tensor's dtype
    x = np.array([c, 2.0], nd)
    (eq, diff), _ = run(lambda tl, t: (t == number, t - number), x, dtype=dtype)
    assert eq.data.tolist() == [True, False] and diff.dtype == dtype
    d0 = float(diff.data[0].astype(np.float64))
    assert d0 == 0.0 or (np.isnan(d0) and not np.isfinite(float(np.float64(c))))


@pytest.mark.parametrize("big", [2 ** 60 + 2 ** 36 + 1, -(2 ** 60 + 2 ** 36 + 1), 2 ** 54 + 2 ** 30 + 1,
                                 2 ** 100 - 1, 2 ** 128 - 2 ** 103, 2 ** 128 - 2 ** 103 - 1, 2 ** 200])
def test_a_python_int_past_2_53_is_its_nearest_f32(big):
    """A review's case (numpy/numpy#20687): a Python int is "the f32 constant of its value"
    (docs/language.md, "Promotion"), but went through f64 first, rounding twice: with
    BIG = 2**60 + 2**36 + 1 (nearest f32: 2**60 + 2**37), an f32 tensor holding BIG (placed by
    the host, which rounds once) compared unequal to BIG, x - BIG was 1.4e11 and tl.full(BIG)
    was 2**60. The expected value here is the exact nearest f32, worked out with fractions:
    round half to even on the int itself; past (2 - 2**-24) * 2**127, inf."""
    from fractions import Fraction
    exact = Fraction(big)
    with np.errstate(over="ignore"):
        lo = np.float32(float(big))  # a candidate: the nearest f32 is it or a neighbour
    cands = [np.nextafter(lo, np.float32(-np.inf)), lo, np.nextafter(lo, np.float32(np.inf))]
    cands = [c for c in cands if np.isfinite(c)]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(np.uint32)) & 1))
    limit = Fraction(2 ** 128 - 2 ** 103)  # halfway between f32's largest and 2**128: ties go up (even)
    want = np.float32(np.inf) if abs(exact) >= limit else best
    x = np.array([want, 1.0], np.float32)
    (eq, diff, full), _ = run(lambda tl, t: (t == big, t - big, tl.full((2,), big, "f32")), x)
    assert eq.data.tolist() == [True, False]
    assert full.data[0] == want
    assert diff.data[0] == 0 or (np.isinf(want) and np.isnan(diff.data[0]))


def test_a_dtype_name_of_a_str_subclass_is_a_name():
    """np.str_ (an element of an array of names) names a dtype as str does: 'f16' is f16, not
    numpy's 16-byte float."""
    x = np.ones(4, np.float32)
    h, _ = run(lambda tl, t: tl.cast(t, np.str_("f16")), x)
    assert h.dtype == "f16"
    ctx = kernbench.Context("default", overrides=HW)
    assert ctx.put(np.ones(4, np.float32), pe=(0, 0), dtype=np.str_("bf16")).dtype == "bf16"


def test_tritons_to_method_is_a_cast_and_its_cache_hints_are_accepted():
    """``x.to(tl.float16)`` is tl.cast (Triton's method); a bit cast or another rounding is
    refused naming the line; load and store take Triton's cache hints and ignore them (a new
    user's port of a Triton kernel met raw AttributeError and TypeError)."""
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    ctx = kernbench.Context("default", overrides=HW)
    xp, op = ctx.put(x, pe=(0, 0)), ctx.empty((64,), "f16")

    def kernel(x_ptr, o_ptr, *, tl):
        v = tl.load(x_ptr, shape=(64,), cache_modifier=".cg", eviction_policy="evict_last", volatile=False)
        tl.store(o_ptr, v.to(tl.float16), cache_modifier=".wb", eviction_policy="evict_first")

    r = ctx.launch(kernel, (1, 1), xp, op)
    np.testing.assert_array_equal(ctx.read(op, (0, 0)), x.astype(np.float16))
    assert sum(1 for c in r.program.commands if c["opcode"] == int(Opcode.VEC)
               and c["sub"] == int(VecOp.CAST)) == 1
    def falsy(x_ptr, o_ptr, *, tl):  # bitcast=0 asks for no bit cast
        tl.store(o_ptr, tl.load(x_ptr, shape=(64,)).to(tl.float16, bitcast=0))

    ctx.launch(falsy, (1, 1), xp, op)
    for kw, match in (("bitcast=True", "kernbench has no bit casts"),
                      ("fp_downcast_rounding='rtz'", "rounds to nearest even")):
        src = (f"def bad(x_ptr, o_ptr, *, tl):\n"
               f"    tl.store(o_ptr, tl.load(x_ptr, shape=(64,)).to(tl.float16, {kw}))\n")
        ns: dict = {}
        exec(compile(src, "bad_kernel.py", "exec"), ns)
        with pytest.raises(KernelError, match=rf"PE \(0, 0\) at bad_kernel.py:2: .*{match}"):
            ctx.launch(ns["bad"], (1, 1), xp, op)

    def bad_hint(x_ptr, *, tl):
        tl.load(x_ptr, shape=(64,), cache_modifier=object())

    with pytest.raises(KernelError, match="load: cache_modifier is a Triton cache hint, a str"):
        ctx.launch(bad_hint, (1, 1), xp)


def test_tritons_tl_math_and_cast_positionals_run_as_written():
    """A Triton-tutorials port: tutorial 06's ``tl.math.exp2`` was refused as "tl.math is not
    part of kernbench's tl language", and ``tl.cast(x, tl.float16, None, False)`` (Triton's
    signature: rounding, then bitcast) raised a TypeError."""
    x = np.linspace(-3, 3, 16, dtype=np.float32)
    (e2, l2, c16, c_r), _ = run(lambda tl, t: (tl.math.exp2(t), tl.math.log2(abs(t) + 1.0),
                                                 tl.cast(t, tl.float16, None, False),
                                                 tl.cast(t, tl.float16, "rtne", 0)), x)
    np.testing.assert_array_equal(e2.data, np.exp2(x.astype(np.float64)).astype(np.float32))  # (docs: f64's, rounded once)
    np.testing.assert_array_equal(l2.data, np.log2(np.abs(x) + np.float32(1)))
    np.testing.assert_array_equal(c16.data, x.astype(np.float16))
    np.testing.assert_array_equal(c_r.data, x.astype(np.float16))
    for call, match in (("tl.cast(t, tl.float16, None, True)", "kernbench has no bit casts"),
                        ("tl.cast(t, 'f16', saturate='yes')", r"tl.cast\(x, dtype, 'yes'\): a str third "
                                                              r"argument is Triton's rounding.*saturate "
                                                              r"\(the third argument otherwise\) is True or False"),
                        ("tl.math.fma(t, t, t)", "tl.fma is not part of kernbench's tl language")):
        with pytest.raises(KernelError, match=match):
            run(lambda tl, t, call=call: eval(call, {"tl": tl, "t": t}), x)


def test_cast_saturate_takes_a_numpy_bool_and_refuses_other_objects():
    """saturate is True or False, a numpy bool (a sweep's axis) or an int 0 or 1 (as it always
    was); a list is refused, and so is any other number (a review: 0.5, NaN and 2 were true by
    their truth value, numpy's float scalars too while an ml_dtypes one was refused)."""
    x = np.array([1e5, -1e5, 1.0], np.float32)
    (a, b, c), _ = run(lambda tl, t: (tl.cast(t, "f16", saturate=np.bool_(True)),
                                      tl.cast(t, "f16", saturate=np.bool_(False)),
                                      tl.cast(t, "f16", saturate=1)), x)
    assert a.data.tolist() == [65504, -65504, 1] and b.data.tolist() == [np.inf, -np.inf, 1]
    assert c.data.tolist() == [65504, -65504, 1]
    (d, e), _ = run(lambda tl, t: (tl.cast(t, "f16", saturate=np.int64(1)), tl.cast(t, "f16", saturate=0)), x)
    assert d.data.tolist() == [65504, -65504, 1] and e.data.tolist() == [np.inf, -np.inf, 1]
    for bad in ("[1]", "np.array(True)", "object()", "0.5", "float('nan')", "2", "1.0", "np.float32(1.5)",
                "-1"):
        with pytest.raises(KernelError, match="cast: saturate must be True or False"):
            run(lambda tl, t, bad=bad: tl.cast(t, "f16", saturate=eval(bad, {"np": np})), x)


def test_a_numpy_array_given_as_a_pointer_says_to_place_it():
    ctx = kernbench.Context("default", overrides=HW)

    def kernel(x_ptr, *, tl):
        tl.load(x_ptr, shape=(8,))

    with pytest.raises(KernelError, match=r"got a numpy array \(8,64\) float32: place it on the device "
                                          r"first \(ctx.shard, ctx.replicate or ctx.put\)"):
        ctx.launch(kernel, (1, 1), np.zeros((8, 64), np.float32))


def test_what_the_docs_now_say_of_powers_signed_zeros_and_int_division():
    """A differential fuzz's docs findings, kept as checks of the sentences added: ``x ** n``
    multiplies the running product by each next square (``x ** 7`` is ``(x * x²) * x⁴``, not
    ``x * (x² * x⁴)``: they round differently); a dot's left-to-right sum starts from +0 where a
    sum of -0s is -0; ``/`` of an int32 tensor by a Python int past int32 is the f32 quotient."""
    v = np.float32(1.0355310440063477)  # (where the two orders of x ** 7 differ)
    (p6, p7), _ = run(lambda tl, t: (t ** 6, t ** 7), np.full((4,), v, np.float32))
    x2 = v * v
    x4 = x2 * x2
    assert p6.data[0] == x2 * x4 and p7.data[0] == (v * x2) * x4
    assert (v * x2) * x4 != v * (x2 * x4)  # (the other order is another number)
    z = np.full((1, 3), -0.0, np.float32)
    (s, d), _ = run(lambda tl, a, b: (tl.sum(a * 1.0, axis=1), tl.dot(a, b)), z, np.ones((3, 1), np.float32))
    assert np.signbit(s.data).all() and not np.signbit(d.data).any()
    i = np.array([3, -2 ** 31], np.int32)
    q, _ = run(lambda tl, t: t / 2 ** 40, i, dtype="int32")
    assert q.dtype == "f32" and q.data.tolist() == (i.astype(np.float32) / np.float32(2 ** 40)).tolist()
    with pytest.raises(KernelError, match=r"\*\* -2: a negative power of an int32 tensor"):
        run(lambda tl, t: t ** -2, i, dtype="int32")
