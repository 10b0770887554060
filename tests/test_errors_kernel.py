"""Exceptions raised by the kernel itself, and bad launch requests."""
import os
import re
import sys
import warnings

import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.runtime.memory import PlacementError

HW = {"n_cubes": 2, "pes_per_cube": 4}
FILE = os.path.basename(__file__)


@pytest.fixture
def ctx():
    c = kernbench.Context("default", overrides=HW)
    c.install_sfr("pe", ring=True)
    return c


def test_kernel_exception_is_reraised_with_the_program_id(ctx):
    lines = []

    def kernel(n, *, tl):
        if tl.program_id(0) == 3 and tl.program_id(1) == 1:
            lines.append(sys._getframe().f_lineno + 1)
            return n // 0

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (4, 2), 5)
    e = ei.value
    assert str(e) == (f"kernel kernel raised ZeroDivisionError on PE (3, 1) (program_id(0)=3, "
                      f"program_id(1)=1) at {FILE}:{lines[0]}: integer division or modulo by zero")
    assert e.pe == (3, 1) and e.where.endswith(f"{FILE}:{lines[0]}")
    assert isinstance(e.__cause__, ZeroDivisionError)


def test_a_bare_stop_iteration_says_what_it_means(ctx):
    # a review's case: next() by hand on a tl.range, replay on: "raised StopIteration ...: " and
    # nothing after the colon
    def kernel(*, tl):
        it = iter(tl.range(100))
        for _ in range(10):
            next(it)
            tl.zeros((8,), "f32")

    with pytest.raises(KernelError, match=r"raised StopIteration on PE \(0, 0\) .*: StopIteration: a next\(\) "
                                          r"past the end of an iterator \(for a tl.range advanced by next\(\)"):
        ctx.launch(kernel, (1, 1), mode="timing", replay="on")
    # a tl.range iterator PE 0 made and PE 1 advances (a global list): it ended with PE 0's
    # program, in every mode (a breaker: the hint spoke of replay only); said by the iterator
    # itself (a for over it ran no iteration, silently: test_tl_range.py)
    kept = []

    def shared(*, tl):
        if tl.program_id(0) == 0:
            kept.append(iter(tl.range(8)))
        else:
            next(kept[0])

    with pytest.raises(KernelError, match=r"raised RuntimeError on PE \(1, 0\) .*: this tl.range\(0, 8, 1\) loop's "
                                          r"iterator was made on PE \(0, 0\), whose program has ended"):
        ctx.launch(shared, (2, 1), mode="functional", replay="off")


def test_a_generator_exit_from_the_kernel_is_its_error_not_a_stop(ctx):
    # (a review: GeneratorExit, a BaseException, passed through raw, without PE or line)
    line = []

    def kernel(*, tl):
        if tl.program_id(0) == 1:
            line.append(sys._getframe().f_lineno + 1)
            raise GeneratorExit("closed")

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (2, 1))
    assert str(ei.value).startswith(f"kernel kernel raised GeneratorExit on PE (1, 0) (program_id(0)=1, "
                                    f"program_id(1)=0) at {FILE}:{line[0]}: ")
    assert isinstance(ei.value.__cause__, GeneratorExit)


class Cancelled(BaseException):
    """A library's BaseException (trio.Cancelled, gevent.GreenletExit)."""


@pytest.mark.parametrize("exc", [Cancelled, SystemExit, KeyboardInterrupt])
def test_a_base_exception_from_the_kernel_passes_with_a_note_naming_pe_and_line(ctx, exc):
    """(A review's case.) Not the kernel's error to wrap (a SystemExit still exits, a Ctrl-C
    still stops), but it no longer passes raw: a note names the kernel, PE and line."""
    line = []

    def kernel(*, tl):
        tl.zeros((8,), "f32")
        if tl.program_id(0) == 2:
            line.append(sys._getframe().f_lineno + 1)
            raise exc("bad block size")

    with pytest.raises(exc) as ei:
        ctx.launch(kernel, (4, 1))
    assert type(ei.value) is exc and str(ei.value) == "bad block size"
    assert ei.value.__notes__ == [f"(raised while tracing kernel kernel on PE (2, 0) (program_id(0)=2, "
                                  f"program_id(1)=0) at {FILE}:{line[0]})"]
    assert ctx.launch(kernel, (2, 1)).cycles > 0  # (PE 2 not in the grid: the launch goes on as ever)


def helper_that_fails(tl):
    return {}["no_such_key"]


def test_exception_in_a_helper_names_the_innermost_kernel_file_line(ctx):
    def kernel(*, tl):
        helper_that_fails(tl)

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (1, 1))
    line = helper_that_fails.__code__.co_firstlineno + 1
    assert "raised KeyError on PE (0, 0)" in str(ei.value)
    call = kernel.__code__.co_firstlineno + 1
    assert (f"at {FILE}:{line} (in helper_that_fails, called from kernel at {FILE}:{call}): "
            f"'no_such_key'") in str(ei.value)


def test_an_unknown_tl_call_names_the_helper_line(ctx):
    def helper(tl):
        return tl.no_such_call(1)

    with pytest.raises(KernelError) as ei:
        ctx.launch(lambda *, tl: helper(tl), (1, 1))
    line = helper.__code__.co_firstlineno + 1
    kline = line + 3  # (the lambda kernel, calling helper)
    assert (f"PE (0, 0) at {FILE}:{line} (in helper, called from <lambda> at {FILE}:{kline}): "
            f"tl.no_such_call is not part of kernbench's tl language") in str(ei.value)


def test_a_triton_name_the_language_has_not_is_a_kernel_error_where_the_kernel_reaches_it(ctx):
    """A review: tl.cumsum in a kernel raised a bare AttributeError there (no PE, no line) and
    became the documented KernelError only on leaving the kernel, so a kernel catching
    KernelError around an optional Triton call failed. Each of Triton's names the language has
    not is a NotInLanguageError where reached: a KernelError naming the PE and line, and an
    AttributeError (hasattr is False, getattr's default is given)."""
    from kernbench.common.errors import NotInLanguageError
    from kernbench.language.builtins import TL
    from kernbench.language.porting import NOT_IN_TL, TL_INSTEAD, not_in_tl

    # a tl tracing no program of this thread (kept past its launch): still an AttributeError,
    # with no PE to name (a review found hasattr raising there); not offered by dir
    kept = []
    ctx.launch(lambda *, tl: kept.append(tl), (1, 1))
    assert not hasattr(kept[0], "cumsum") and getattr(kept[0], "sort", 5) == 5
    with pytest.raises(NotInLanguageError) as ei:
        _ = kept[0].cumsum
    assert ei.value.pe is None and str(ei.value) == not_in_tl("cumsum")
    assert "cumsum" not in dir(kept[0]) and "load" in dir(kept[0])
    # the class body names them in the list's order: each attribute is its own name's
    assert all(TL.__dict__[n].name == n for n in NOT_IN_TL)
    # every name the porting hints know is a call here or one of them
    assert all(n in NOT_IN_TL or callable(getattr(TL, n)) for n in TL_INSTEAD)
    seen = {}

    def k(x_ptr, *, tl):
        for n in NOT_IN_TL:
            try:
                getattr(tl, n)
            except KernelError as e:
                seen[n] = e
        seen["hasattr"], seen["default"] = hasattr(tl, "cumsum"), getattr(tl, "sort", 7)

    ctx.launch(k, (1, 1), ctx.replicate(np.ones((4, 8), np.float32)))
    line = k.__code__.co_firstlineno + 3
    assert seen.pop("hasattr") is False and seen.pop("default") == 7
    assert list(seen) == list(NOT_IN_TL)
    for n, e in seen.items():
        assert isinstance(e, NotInLanguageError) and isinstance(e, AttributeError)
        assert str(e) == f"PE (0, 0) at {FILE}:{line}: {not_in_tl(n)}"
        assert e.pe == (0, 0) and e.where.endswith(f"{FILE}:{line}")


def _first_line_error(ctx, kernel):
    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (1, 1), ctx.replicate(np.ones((4, 8), np.float32)))
    return ei.value


@pytest.mark.parametrize("body, says", [
    ("tl.make_block_ptr(x_ptr, (4, 8), (8, 1), (0, 0), (4, 8), (1, 0))",
     "tl.make_block_ptr is not part of kernbench's tl language (docs/language.md, 'Calls' and 'Porting "
     "from Triton'). Instead: tl.load(base + itemsize * (r0 * stride + c0), shape=block_shape, stride=stride)"),
    ("tl.advance(x_ptr, (4, 0))", "Instead: the next block's offset from the loop index"),
    ("tl.rand(42, tl.arange(0, 4))", "Instead: nothing: the model has no random generator"),
    ("tl.randint(42, tl.arange(0, 4))", "Instead: nothing: the model has no random generator"),
    ("tl.extra.libdevice.exp2(tl.zeros((4,), tl.float32))", "Instead: tl.<name> for libdevice's functions"),
    ("tl.fma(tl.zeros((4,)), 2.0, 1.0)", "Instead: a * b + c: two commands, each rounded"),
    ("(tl.program_id(1) // 2).to(tl.int64)",
     "'int' object has no attribute 'to' (tl.program_id, tl.num_programs and Python numbers are Python "
     "ints here, not int32 tensors: drop .to(...)"),
    ("tl.zeros((4,), tl.float32).to(x_ptr.type.element_ty)",
     "'int' object has no attribute 'type' (if it is a pointer argument: a pointer is a byte address "
     "here, with no element type; pass the dtype as an argument of its own"),
    ("(numpy.int64(tl.program_id(0)) * 8).to(tl.int64)",  # (a numpy int: the same hint)
     "'numpy.int64' object has no attribute 'to' (tl.program_id, tl.num_programs and Python numbers"),
    ("tl.pow(tl.zeros((4,)), 0.5)", "x ** n (tl.pow) takes a Python int exponent in -64..64, got 0.5"),
    # (a bool is an int to Python: said as what it is, a numerical oracle's review)
    ("tl.zeros((4,)) ** True", "got True, a bool (x ** True is x, x ** False ones: write that)"),
    # (Inductor's index arithmetic, and Triton API a review found refused without a hint)
    ("tl.zeros((4,), tl.float32).to(tl.int64)", "tl.int64 is not part of kernbench's tl language "
     "(docs/language.md, 'Calls' and 'Porting from Triton'). Instead: tl.int32, the one integer dtype here"),
    ("tl.zeros((4,), tl.float32).to(tl.uint8)", "Instead: tl.int32, the one integer dtype here"),
    ("tl.cast(tl.zeros((4,)), 'int64')", "unknown dtype 'int64': expected one of f16, bf16, f32, "
     "fp8e4m3, fp8e5m2, int32. Instead: tl.int32, the one integer dtype here"),
    ("tl.zeros((4,), tl.float32).to(tl.int1)", "Instead: a mask: what a comparison returns"),
    ("tl.clamp(tl.zeros((4,)), 0.0, 1.0)", "Instead: tl.minimum(tl.maximum(x, lo), hi)"),
    ("tl.zeros_like(tl.zeros((4,)))", "Instead: tl.zeros(x.shape, x.dtype)"),
    # (real-world ports, a review: Liger's GeGLU, exact GELU, top-k's argmax, FlashAttention's
    # tl.minimum of two Python ints, Triton's max with indices unpacked)
    ("tl.math.tanh(tl.zeros((4,)))", "Instead: 2 * tl.sigmoid(2 * x) - 1"),
    ("tl.math.erf(tl.zeros((4,)))", "Instead: nothing: no erf unit op; GELU's tanh form"),
    ("tl.cos(tl.zeros((4,)))", "Instead: nothing: no trigonometric unit ops"),
    ("tl.floor(tl.zeros((4,)))", "Instead: t - tl.where(t > x, 1.0, 0.0)"),
    ("tl.argmax(tl.zeros((4,)), 0)", "Instead: m = tl.max(x, axis); tl.min(tl.where(x == m, idx, BIG), axis)"),
    ("tl.minimum(3, 5)", "minimum needs at least one tensor operand, got int and int (Python's min(a, b)"),
    ("m, i = tl.max(tl.zeros((4,)), 0, True)", "Triton's tl.max/tl.min(x, axis, True) return values and "
     "indices, kernbench's third argument is keep_dims"),
    # (a review porting Triton's tutorials: refusals with no "Instead"; the formulas are run in
    # test_porting_hints_compute_what_they_say)
    ("tl.cumsum(tl.zeros((4, 8)), 1)", "Instead: a prefix sum along the last axis of an (M, N) tile as one "
     "dot, tl.dot(x, tri)"),
    ("tl.associative_scan(tl.zeros((4,)), 0, None)", "Instead: for a sum, tl.cumsum's dot"),
    ("tl.flip(tl.zeros((4, 8)))", "Instead: the last axis of an (M, N) tile reversed as one dot"),
    ("tl.sort(tl.zeros((4,)))", "Instead: nothing: no sort unit op"),
    ("tl.histogram(tl.zeros((4,), tl.int32), 8)", "Instead: tl.sum(x[:, None] == bins[None, :], axis=0)"),
    ("tl.gather(tl.zeros((4,)), tl.zeros((4,), tl.int32), 0)", "Instead: tl.sum(tl.where(offs == y, x, 0), axis)"),
    ("tl.swizzle2d(0, 0, 4, 4, 2)", "Instead: Python arithmetic: program ids are Python ints here"),
    ("tl.join(tl.zeros((4,)), tl.zeros((4,)))", "Instead: nothing: no concatenation op"),
])
def test_tutorial_idioms_say_what_to_write_instead(ctx, body, says):
    """Idioms of Triton's tutorials (03's and 06's block pointers, 04's random numbers, 07's
    libdevice, 06's pid.to(tl.int64) and Out.type.element_ty): a port's first run said what
    was missing but not what to write (a review)."""
    ns = {}
    exec(compile(f"import numpy\ndef k(x_ptr, *, tl):\n    {body}\n", FILE, "exec"), ns)
    e = _first_line_error(ctx, ns["k"])
    assert says in str(e) and e.pe == (0, 0), str(e)


def test_porting_hints_compute_what_they_say():
    """The formulas the porting hints give (kernbench.language.porting.TL_INSTEAD: cumsum, flip,
    histogram, gather) as written, against numpy: exact on finite f32 values (every product is
    x * 1 or x * 0, summed in f32 in the column order of a prefix: the dot's K order)."""
    ctx = kernbench.Context("default")
    M, N = 4, 10
    x = np.random.default_rng(0).standard_normal((M, N)).astype(np.float32)
    v = (np.arange(20) * 3 % 7).astype(np.int32)
    # (an int32 row past 2**24: the hint's where with 0.0 made it f32 and rounded it, a review)
    w = np.array([[16777217, -2147483647, 123456789, 7]], np.int32)
    out = {n: ctx.empty(s, d) for n, s, d in (("cumsum", (M, N), "f32"), ("flip", (M, N), "f32"),
                                              ("histogram", (1, 8), "int32"), ("gather", (M, 1), "f32"),
                                              ("gather_int", (1, 1), "int32"))}

    def k(x_ptr, v_ptr, w_ptr, cs, fl, hist, ga, gi, *, tl):
        t = tl.load(x_ptr, shape=(M, N))
        r = tl.arange(0, N)
        tl.store(cs, tl.dot(t, tl.where(r[:, None] <= r[None, :], 1.0, 0.0)))
        tl.store(fl, tl.dot(t, tl.where(r[:, None] + r[None, :] == N - 1, 1.0, 0.0)))
        bins = tl.arange(0, 8)
        tl.store(hist, tl.sum(tl.load(v_ptr, shape=(20,))[:, None] == bins[None, :], axis=0))
        tl.store(ga, tl.sum(tl.where(r[None, :] == 3, t, 0), 1))
        ints = tl.load(w_ptr, shape=(1, 4))
        picked = tl.sum(tl.where(tl.arange(0, 4)[None, :] == 2, ints, 0), 1)
        assert picked.dtype == "int32"
        tl.store(gi, picked)

    ctx.launch(k, (1, 1), ctx.replicate(x), ctx.replicate(v), ctx.replicate(w, dtype="int32"), *out.values())
    got = {n: ctx.read(a, (0, 0)) for n, a in out.items()}
    # a prefix sum in the dot's K order is numpy's cumsum's order (left to right, f32)
    assert np.array_equal(got["cumsum"], np.cumsum(x, 1, dtype=np.float32))
    assert np.array_equal(got["flip"], x[:, ::-1])
    assert got["histogram"].tolist() == [np.bincount(v, minlength=8).tolist()]
    assert np.array_equal(got["gather"], x[:, 3:4])
    assert got["gather_int"].tolist() == [[123456789]]


@pytest.mark.parametrize("body", ["(8).total", "True.to(1)", "object().to(1)", "(1.5).to(1)"])
def test_an_ordinary_attribute_error_gets_no_porting_hint(ctx, body):
    ns = {}
    exec(compile(f"def k(x_ptr, *, tl):\n    {body}\n", FILE, "exec"), ns)
    e = _first_line_error(ctx, ns["k"])
    assert "AttributeError" in str(e) and "Porting from Triton" not in str(e), str(e)


def test_porting_mistakes_say_what_to_write_instead(ctx):
    """A review's cases: Triton's tl calls and tensor methods kernbench has not, Triton's
    keep_dims, and a handle's data read while tracing gave a bare AttributeError or TypeError
    (the PE and line, but not the fix). Each names the PE, the line and what to write."""
    def line_of(fn, k=1):
        return fn.__code__.co_firstlineno + k

    def fdiv(x_ptr, *, tl):
        return tl.fdiv(tl.load(x_ptr, shape=(4, 8)), 2.0)

    e = _first_line_error(ctx, fdiv)
    assert str(e).endswith("tl.fdiv is not part of kernbench's tl language (docs/language.md, 'Calls' "
                           "and 'Porting from Triton'). Instead: a / b.")
    assert e.pe == (0, 0) and e.where.endswith(f"{FILE}:{line_of(fdiv)}")

    def atomic(x_ptr, *, tl):
        tl.atomic_add(x_ptr, 1.0)

    assert "Instead: nothing: PEs do not share memory; combine over links" in str(_first_line_error(ctx, atomic))

    def method(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        return x.sum(0)

    e = _first_line_error(ctx, method)
    assert str(e) == (f"PE (0, 0) at {FILE}:{line_of(method, 2)}: a TensorHandle has no method sum (a "
                      f"Triton tensor's): write tl.sum(x, axis) (docs/language.md, 'Porting from Triton')")

    # every Triton tensor method a handle lacks names what to write (a port of Triton's
    # test_core: x.exp2(), x.argmax(0), x.cumsum(0) ... ended as a bare AttributeError; and
    # x.softmax()'s hint said tl.softmax(x), the last axis where Triton's is axis 0)
    from kernbench.language import TL
    from kernbench.language.porting import METHOD_INSTEAD, NOT_IN_TL, TRITON_METHODS, method_hint

    for name in TRITON_METHODS:
        def triton_method(x_ptr, *, tl, name=name):
            x = tl.load(x_ptr, shape=(4, 8))
            return getattr(x, name)

        e = _first_line_error(ctx, triton_method)
        kind = "attribute" if name in ("numel", "type") else "method"
        assert str(e) == (f"PE (0, 0) at {FILE}:{line_of(triton_method, 2)}: a TensorHandle has no "
                          f"{kind} {name} (a Triton tensor's): write {method_hint(name)} "
                          f"(docs/language.md, 'Porting from Triton')"), name
        for call in re.findall(r"\btl\.(\w+)\(", method_hint(name)):  # a hint's tl calls are calls here
            assert call not in NOT_IN_TL and callable(getattr(TL, call)), (name, call)
    assert "tl.softmax(x, 0) for x.softmax()" in METHOD_INSTEAD["softmax"]

    def typo(x_ptr, *, tl):  # (no Triton tensor has it: Python's own error, wrapped)
        return tl.load(x_ptr, shape=(4, 8)).shpe

    e = _first_line_error(ctx, typo)
    assert "raised AttributeError" in str(e) and "'shpe'" in str(e) and "Triton" not in str(e)

    def keep_dims(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        tl.store(x_ptr, x - tl.max(x, 1, keep_dims=True))  # (True: what kernbench does anyway)
        tl.store(x_ptr, x - tl.min(x, 1, keep_dims=1))  # (Triton's constexpr reads 1 as true)
        return tl.sum(x, 1, keep_dims=False)

    e = _first_line_error(ctx, keep_dims)
    assert str(e).startswith(f"PE (0, 0) at {FILE}:{line_of(keep_dims, 4)}: sum: keep_dims=False: "
                             f"kernbench keeps the reduced axis (size 1) always")

    def keep_dims_zero(x_ptr, *, tl):
        return tl.sum(tl.load(x_ptr, shape=(4, 8)), 1, keep_dims=0)

    assert "sum: keep_dims=0: kernbench keeps the reduced axis" in str(_first_line_error(ctx, keep_dims_zero))

    # Triton's test_where_broadcast: a constexpr condition, which Triton folds
    for cond in (False, np.True_, 1):
        def where_scalar(x_ptr, *, tl, cond=cond):
            return tl.where(cond, tl.load(x_ptr, shape=(4, 8)), 0.0)

        e = _first_line_error(ctx, where_scalar)
        assert str(e) == (f"PE (0, 0) at {FILE}:{line_of(where_scalar)}: where: the condition is a Python "
                          f"{type(cond).__name__} ({cond!r}), known while tracing: write `a if cond else "
                          f"b` (Python picks; for Triton's result dtype and shape, cast and "
                          f"tl.broadcast_to the one picked), or give a mask tensor (a comparison's result)")

    # Triton's `x - tl.max(x, axis=1)[:, None]`, ported as written: (4,1)[:, None] is (4,1,1),
    # and x minus it (4,4,8), which a store without shape= wrote over the next rows (a review's
    # tutorial port: wrong values, no error); also of what is made of the reduction (a breaker:
    # an RMSNorm's rstd, a running maximum)
    def new_axis(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        tl.store(x_ptr, x - tl.reshape(tl.max(x, axis=1), (4,))[:, None])  # (the right port)
        s = tl.sum(x, axis=0)
        tl.store(x_ptr, x - tl.max(x, axis=1)[:, None] + s[None, :])

    def rms(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / 8 + 1e-6)
        tl.store(x_ptr, x * rstd[:, None])

    # Triton's block-pointer keywords, and a scalar load (a review's tutorial ports: a raw
    # "unexpected keyword argument", a tile-only hint)
    def block_args(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8), boundary_check=(), padding_option="")  # (the defaults)
        tl.store(x_ptr, x, boundary_check=[])
        tl.load(x_ptr, shape=(4, 8), boundary_check=np.array([], np.int32))
        return tl.load(x_ptr, shape=(4, 8), boundary_check=(0, 1), padding_option="zero")

    assert str(_first_line_error(ctx, block_args)) == (
        f"PE (0, 0) at {FILE}:{line_of(block_args, 4)}: load: boundary_check= is for Triton's block "
        f"pointers (tl.make_block_ptr), which kernbench has not: a tile is loaded with shape= from a "
        f"base address, its edges masked with mask= and padded with other= (docs/language.md, "
        f"'Porting from Triton')")

    def numpy_check(x_ptr, *, tl):  # (a breaker: "the truth value of an array is ambiguous")
        return tl.load(x_ptr, shape=(4, 8), boundary_check=np.array([0]))

    assert "load: boundary_check= is for Triton's block pointers" in str(_first_line_error(ctx, numpy_check))

    def positional_mask(x_ptr, *, tl):  # (Triton's order: a shape error named a mask's repr)
        m = tl.arange(0, 8) < 6
        x = tl.load(x_ptr, shape=(8,), mask=m)
        tl.store(x_ptr, x, m)

    assert str(_first_line_error(ctx, positional_mask)).endswith(
        "store: shape got a tensor; a shape is a tuple of ints (a tensor's is h.shape). If it is "
        "Triton's mask, tl.store's third positional argument is shape here: write "
        "tl.store(ptr, x, mask=m) (docs/language.md, 'Porting from Triton')")

    def positional_load(x_ptr, *, tl):
        return tl.load(x_ptr, tl.arange(0, 8) < 6, 0.0)

    assert "If it is Triton's mask, tl.load's second positional argument is shape here" in str(
        _first_line_error(ctx, positional_load))

    def shape_of_a_tensor(x_ptr, *, tl):  # (a peer's slip, shape=h for h.shape: both readings named)
        h = tl.load(x_ptr, shape=(8,))
        return tl.load(x_ptr, shape=h)

    assert "load: shape got a tensor; a shape is a tuple of ints (a tensor's is h.shape)" in str(
        _first_line_error(ctx, shape_of_a_tensor))

    def scalar(x_ptr, *, tl):
        return tl.load(x_ptr + 4)

    assert "load needs shape=: the tile's shape, shape=(1,) for one value" in str(_first_line_error(ctx, scalar))

    def row_mask(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        rows = tl.arange(0, 4)
        tl.store(x_ptr, tl.sum(x, axis=1), mask=rows < 3)  # (Triton's: a (4,) mask of a (4,) sum)

    assert str(_first_line_error(ctx, row_mask)).endswith(
        "store: mask of shape (4,) does not broadcast to the store shape (4,1); the tile keeps a "
        "reduced axis of size 1 that a Triton mask leaves out: index the mask as the reduction's "
        "result is, e.g. rows[:, None] < M (docs/language.md, 'Porting from Triton')")

    for kernel, line in ((new_axis, 4), (rms, 3)):
        assert str(_first_line_error(ctx, kernel)) == (
            f"PE (0, 0) at {FILE}:{line_of(kernel, line)}: indexing a (4,1) tensor with [:, None] "
            f"makes (4,1,1): the key leaves out axes at its end, as for a 1-D tensor. In a Triton "
            f"port this is a reduction's [:, None] (Triton's tl.sum(x, axis=1) drops the axis, and "
            f"its [:, None] is (4,1)); kernbench keeps the reduced axis, so the result would "
            f"broadcast along another axis than Triton's. For Triton's (4,1) drop the indexing "
            f"(this tensor is (4,1) already: the reduced axis kept in its place); for new axes on "
            f"this tensor (the rule is the shape's: a tile whose block is 1 gets it too) spell out "
            f"every axis, x[:, None, :] (docs/language.md, 'Porting from Triton')")

    # Triton's row of a reduction, `x + tl.sum(x, 1)[None, :]` ((1, BM) there): here the sum
    # keeps its axis, and (4,1)[None, :] would be (1,4,1), adding row sums along the rows (a
    # review: accepted, a store without shape= took it). The key leaves the size-1 last axis
    # to its implied ':'; refused, [None] too, whatever the tensor was made of
    def row_of_sums(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        tl.store(x_ptr, x + tl.sum(x, 1)[None, :])

    def leading_axis(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        scale = tl.max(x, axis=1) * 0.5
        tl.store(x_ptr, x * scale[None])

    # and Triton's column of an axis-0 reduction, `x * tl.sum(x, 0)[:, None]` ((N,1) there,
    # (1,1,N) here: x times it multiplies along rows), and a 3-D one's `s[None, :, :]`
    def column_of_sums(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        tl.store(x_ptr, x * tl.sum(x, 0)[:, None])

    def three_d(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(2, 4, 4))
        tl.store(x_ptr, x + tl.sum(x, 1)[None, :, :])

    for kernel, k, shape, key, made, row, full in (
            (row_of_sums, 2, "(4,1)", "[None, :]", "(1,4,1)", "(1,4)", "[None, :, :]"),
            (leading_axis, 3, "(4,1)", "[None]", "(1,4,1)", "(1,4)", "[None, :, :]"),
            (column_of_sums, 2, "(1,8)", "[:, None]", "(1,1,8)", "(8,1)", "[:, None, :]"),
            (three_d, 2, "(2,1,4)", "[None, :, :]", "(1,2,1,4)", "(1,2,4)", "[None, :, :, :]")):
        axis = 0 if kernel is column_of_sums else 1
        assert str(_first_line_error(ctx, kernel)) == (
            f"PE (0, 0) at {FILE}:{line_of(kernel, k)}: indexing a {shape} tensor with {key} makes "
            f"{made}: the key leaves out axes at its end, as for a 1-D tensor. In a Triton port "
            f"this is a reduction's {key} (Triton's tl.sum(x, axis={axis}) drops the axis, and its "
            f"{key} is {row}); kernbench keeps the reduced axis, so the result would broadcast "
            f"along another axis than Triton's. For Triton's {row} write tl.reshape(x, {row}); "
            f"for new axes on this tensor (the rule is the shape's: a tile whose block is 1 gets "
            f"it too) spell out every axis, x{full} (docs/language.md, 'Porting from Triton')")

    # both ports the message names give Triton's values; every axis spelt out is accepted
    def row_ported(x_ptr, o_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 4))
        s = tl.sum(x, 1)
        tl.store(o_ptr, x + tl.reshape(s, (1, 4)))
        tl.store(o_ptr + 4 * 16, tl.broadcast_to(x[None, :, :] + s[None, :, :], (1, 4, 4)))

    X4 = np.arange(16, dtype=np.float32).reshape(4, 4)
    xp, op = ctx.replicate(X4), ctx.replicate(np.zeros((8, 4), np.float32))
    ctx.launch(row_ported, (1, 1), xp, op)
    got = ctx.read(op, (0, 0))
    np.testing.assert_array_equal(got[:4], X4 + X4.sum(1)[None, :])  # (Triton's: sums along columns)
    np.testing.assert_array_equal(got[4:], X4 + X4.sum(1)[:, None])

    # Triton's row of an axis-0 reduction, `tl.sum(x, 0)[None, :]`, is the (1,N) here already:
    # (1,1,N) would broadcast as Triton's, but has an axis more, so a later tl.sum(., 0) sums
    # the new size-1 axis (a review: a column normalisation's variance was x*x). Refused, [None]
    # too: drop the indexing
    def col_norm(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        xc = x - (tl.sum(x, 0) / 4)[None, :]
        tl.store(x_ptr, xc / tl.sqrt(tl.sum(xc * xc, 0) / 4 + 1e-5))

    def lead(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        tl.store(x_ptr, x * tl.max(x, 0)[None])

    for kernel, key in ((col_norm, "[None, :]"), (lead, "[None]")):
        assert str(_first_line_error(ctx, kernel)) == (
            f"PE (0, 0) at {FILE}:{line_of(kernel, 2)}: indexing a (1,8) tensor with {key} makes "
            f"(1,1,8): the key leaves out axes at its end, as for a 1-D tensor. In a Triton port "
            f"this is a reduction's {key} (Triton's tl.sum(x, axis=0) drops the axis, and its "
            f"{key} is (1,8)); kernbench keeps the reduced axis, so the result would have an axis "
            f"more than Triton's (1,8), so a later reduction's axis number would name another axis "
            f"than Triton's. For Triton's (1,8) drop the indexing (this tensor is (1,8) already: "
            f"the reduced axis kept in its place); for new axes on this tensor (the rule is the "
            f"shape's: a tile whose block is 1 gets it too) spell out every axis, x[None, :, :] "
            f"(docs/language.md, 'Porting from Triton')")

    # a 1-D tensor of one element, a block of 1, takes a 1-D key as in Triton: (1,)[None] is
    # (1,1) there too (a fuzzer found it refused)
    def block_of_one(x_ptr, o_ptr, *, tl):
        rows = tl.load(x_ptr, shape=(1,))
        tl.store(o_ptr, tl.load(x_ptr, shape=(1, 8)) + rows[None] + rows[:, None])

    X18 = np.arange(8, dtype=np.float32).reshape(1, 8) + 1.0
    xp, op = ctx.replicate(X18), ctx.replicate(np.zeros((1, 8), np.float32))
    ctx.launch(block_of_one, (1, 1), xp, op)
    np.testing.assert_array_equal(ctx.read(op, (0, 0)), X18 + 2 * X18[0, 0])

    # a key with every axis, or '...', means the same to Triton and numpy: (4,1)[:, :, None]
    # and [..., None] are (4,1,1), meant (a fuzzer found them refused as [:, None] is)
    def spelt(x_ptr, o_ptr, *, tl):
        c = tl.max(tl.load(x_ptr, shape=(4, 8)), axis=1)  # (4,1)
        tl.store(o_ptr, tl.load(x_ptr, shape=(4, 1, 8)) + c[:, :, None] + c[..., None])

    X48 = np.arange(32, dtype=np.float32).reshape(4, 8)
    xp, op = ctx.replicate(X48), ctx.replicate(np.zeros((4, 8), np.float32))
    ctx.launch(spelt, (1, 1), xp, op)
    np.testing.assert_array_equal(ctx.read(op, (0, 0)), X48 + 2 * X48.max(1)[:, None])

    # a new axis that moves no non-1 axis past a size-1 one is as Triton's (a breaker: these
    # were refused by the first rule; their values are numpy's)
    def fine(x_ptr, o_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        tl.store(o_ptr, x - tl.sum(x, 0) / 4)  # (the axis-0 sum is Triton's [None, :] already)
        tot = tl.sum(tl.reshape(x, (32,)), 0)  # (1,) -> (1,1): every axis in the key
        tl.store(o_ptr + 4 * 32, x / tot[:, None])
        tl.store(o_ptr + 8 * 32, tl.load(x_ptr, shape=(2, 4, 8)) * tl.sum(x, 0)[None, :, :])

    X = np.arange(64, dtype=np.float32).reshape(8, 8) + 1.0
    xp, op = ctx.replicate(X), ctx.replicate(np.zeros((24, 8), np.float32))
    ctx.launch(fine, (1, 1), xp, op)
    got, x = ctx.read(op, (0, 0)), X[:4]
    np.testing.assert_allclose(got[:4], x - x.sum(0) / 4, rtol=1e-6)
    np.testing.assert_allclose(got[4:8], x / x.sum(), rtol=1e-6)
    np.testing.assert_allclose(got[8:16], X * x.sum(0), rtol=1e-6)

    def data(x_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4, 8))
        return x.data[0]

    e = _first_line_error(ctx, data)
    assert "raised TypeError" in str(e) and e.where.endswith(f"{FILE}:{line_of(data, 2)}")
    assert str(e).endswith("(a TensorHandle's data is None while the kernel is traced: it holds the "
                           "tensor's value only after a functional launch; compute with tl calls on "
                           "the handle itself)")

    def other_type_error(x_ptr, *, tl):
        nothing = None
        return nothing[0]

    assert "data is None" not in str(_first_line_error(ctx, other_type_error))


def test_kernel_without_a_keyword_only_tl(ctx):
    def kernel(n):
        return n

    def positional_tl(n, tl):
        return n

    line = kernel.__code__.co_firstlineno
    with pytest.raises(TypeError, match=rf"kernel kernel \({FILE}:{line}\) must take tl as a keyword-only "
                                        r"parameter: def kernel\(\.\.\., \*, tl\)"):
        ctx.launch(kernel, (1, 1), 1)
    with pytest.raises(TypeError, match="must take tl as a keyword-only parameter"):
        ctx.launch(positional_tl, (1, 1), 1)


def test_missing_or_extra_kernel_arguments_name_the_kernel(ctx):
    def kernel(a, b, *, tl):
        return a

    line = kernel.__code__.co_firstlineno
    with pytest.raises(TypeError, match=rf"kernel kernel \({FILE}:{line}\) does not take the launch's "
                                        r"arguments: missing a required argument: 'b'"):
        ctx.launch(kernel, (1, 1), 1)
    with pytest.raises(TypeError, match="too many positional arguments"):
        ctx.launch(kernel, (1, 1), 1, 2, 3)


def test_generators_and_async_functions_are_not_kernels(ctx):
    def gen(*, tl):
        yield tl.program_id(0)

    async def coro(*, tl):
        return tl.program_id(0)

    for k in (gen, coro):
        with pytest.raises(TypeError, match="is a generator or async function"):
            ctx.launch(k, (1, 1))


def test_a_generator_or_async_kernel_behind_a_wrapper_or_call_is_refused(ctx):
    """A generator or coroutine function behind functools.wraps, or as a class's __call__: its
    call returns a generator or coroutine and runs nothing (a review: the launch ran as an empty
    program, 0 cycles, its output never written). Refused before tracing where the function can
    be found, else by what the call returned."""
    import functools

    def deco(f):
        @functools.wraps(f)
        def w(*a, **k):
            return f(*a, **k)
        return w

    def gen(o_ptr, *, tl):
        tl.store(o_ptr, tl.full((4,), 1.0, "f32"))
        yield

    async def coro(o_ptr, *, tl):
        tl.store(o_ptr, tl.full((4,), 1.0, "f32"))

    class Gen:
        def __call__(self, o_ptr, *, tl):
            yield tl.store(o_ptr, tl.full((4,), 1.0, "f32"))

    def hidden(o_ptr, *, tl):  # (no __wrapped__ to follow: what it returns tells)
        return gen(o_ptr, tl=tl)

    def ran(o_ptr, *, tl):  # (its body ran; what it returns is not read)
        tl.store(o_ptr, tl.full((4,), 3.0, "f32"))
        return (i for i in range(3))

    o = ctx.empty((4,), "f32")
    for k in (deco(gen), deco(coro), Gen()):
        with pytest.raises(TypeError, match="is a generator or async function: .*would never run"):
            ctx.launch(k, (1, 1), o)
    line = hidden.__code__.co_firstlineno
    with pytest.raises(KernelError, match=rf"PE \(0, 0\) at {FILE}:{line}: kernel hidden returned a "
                                          r"generator that never started"):
        ctx.launch(hidden, (1, 1), o)
    ctx.launch(ran, (1, 1), o)
    assert ctx.read(o, pe=(0, 0)).tolist() == [3.0] * 4

    # a breaker's cases: a coroutine reaching tl through self (not its own locals) was run as an
    # empty program; a generator the kernel started, then returned, was called never run
    class Via:
        def __call__(self, o_ptr, *, tl):
            self.tl = tl
            return self.body(o_ptr)

        async def body(self, o_ptr):
            self.tl.store(o_ptr, self.tl.full((4,), 1.0, "f32"))

    def started(o_ptr, *, tl):
        def g():
            yield tl.full((4,), 5.0, "f32")
            yield None
        it = g()
        tl.store(o_ptr, next(it))
        return it

    with pytest.raises(KernelError, match="returned a coroutine that never started"):
        ctx.launch(Via(), (1, 1), o)

    def agen_kernel(o_ptr, *, tl):  # (an async generator has no close(): a breaker's crash)
        async def agen():
            yield tl.store(o_ptr, tl.full((4,), 1.0, "f32"))
        return agen()

    with pytest.raises(KernelError, match="returned a async_generator that never started"):
        ctx.launch(agen_kernel, (1, 1), o)
    ctx.launch(started, (1, 1), o)
    assert ctx.read(o, pe=(0, 0)).tolist() == [5.0] * 4


def test_a_memoised_kernel_is_refused(ctx):
    """functools.cache / lru_cache: the launch calls the kernel once per PE with the same
    arguments and the same tl, so the cache answered PEs 1.. without running them (a review:
    only PE 0's row written, silently)."""
    import functools

    def dbl(o_ptr, *, tl):  # (each PE's own copy of o)
        tl.store(o_ptr, tl.full((4,), 2.0 + tl.program_id(0), "f32"))

    o = ctx.empty((4,), "f32")
    for memo in (functools.cache, functools.lru_cache(maxsize=8)):
        with pytest.raises(TypeError, match="is memoised .*once per PE"):
            ctx.launch(memo(dbl), (4, 1), o)
    ctx.launch(functools.cache(dbl).__wrapped__, (4, 1), o)
    assert [ctx.read(o, pe=(p, 0)).tolist() for p in range(4)] == [[2.0 + p] * 4 for p in range(4)]


def test_a_decorator_is_checked_against_its_own_signature_too(ctx):
    """A functools.wraps wrapper whose own parameters differ from the wrapped function's (it
    passes tl positionally, or binds an argument): inspect.signature follows __wrapped__, and
    the launch was refused though the wrapper takes its arguments (a review)."""
    import functools

    def tl_first(f):
        @functools.wraps(f)
        def w(*args, tl):
            return f(tl, *args)
        return w

    def bind_scale(f):
        @functools.wraps(f)
        def w(o_ptr, *, tl):
            return f(o_ptr, 3.0, tl=tl)
        return w

    @tl_first
    def positional(tl, o_ptr):
        tl.store(o_ptr, tl.full((4,), 2.0, "f32"))

    @bind_scale
    def scaled(o_ptr, scale, *, tl):
        tl.store(o_ptr, tl.full((4,), scale, "f32"))

    o = ctx.empty((4,), "f32")
    ctx.launch(positional, (1, 1), o)
    assert ctx.read(o, pe=(0, 0)).tolist() == [2.0] * 4
    ctx.launch(scaled, (1, 1), o)
    assert ctx.read(o, pe=(0, 0)).tolist() == [3.0] * 4
    # a wrapper of (*args, **kwargs) takes anything: the wrapped function's signature is checked
    # (a breaker: the usual decorator lost the up-front TypeError and its timing-option hint)
    def generic(f):
        @functools.wraps(f)
        def w(*args, **kwargs):
            return f(*args, **kwargs)
        return w

    @generic
    def two(x_ptr, o_ptr, *, tl):
        pass

    with pytest.raises(TypeError, match="does not take the launch's arguments: missing a required "
                                        "argument: 'o_ptr'"):
        ctx.launch(two, (1, 1), o)
    with pytest.raises(TypeError, match="max_cycles: options of the timing, not of the trace"):
        ctx.trace(two, (1, 1), o, o, max_cycles=10)
    # ... at the call: a generic wrapper may supply a keyword or drop one (a review: refused
    # ahead though Python runs it); what still does not bind is the same TypeError
    def with_defaults(**defaults):  # (triton.heuristics' way)
        def deco(f):
            @functools.wraps(f)
            def w(*args, **kwargs):
                return f(*args, **{**defaults, **kwargs})
            return w
        return deco

    def dropping(f):
        @functools.wraps(f)
        def w(*args, **kwargs):
            kwargs.pop("debug", None)
            return f(*args, **kwargs)
        return w

    @with_defaults(value=5.0)
    def filled(o_ptr, *, value, tl):
        tl.store(o_ptr, tl.full((4,), value, "f32"))

    @dropping
    def plain(o_ptr, *, tl):
        tl.store(o_ptr, tl.full((4,), 6.0, "f32"))

    ctx.launch(filled, (1, 1), o)
    assert ctx.read(o, pe=(0, 0)).tolist() == [5.0] * 4
    ctx.launch(plain, (1, 1), o, debug=True)
    assert ctx.read(o, pe=(0, 0)).tolist() == [6.0] * 4
    with pytest.raises(TypeError, match=r"kernel plain \(.*\) does not take the launch's arguments: got "
                                        r"an unexpected keyword argument 'other' \(given 1 positional: "
                                        r"DeviceArray; keywords other\)$"):
        ctx.launch(plain, (1, 1), o, other=1)
    # too many positional arguments: the bind names no parameter and Python's call words it its
    # own way ("takes 1 positional argument but 2 ... were given"); the same TypeError (a review
    # found the kernel's KernelError, which `except TypeError` misses)
    @generic
    def optional(o_ptr, n=4, *, tl):
        pass

    for k, args, given in ((plain, (o, 1.0), "DeviceArray, float"), (optional, (o, 4, 5), "DeviceArray, int, int")):
        with pytest.raises(TypeError, match=rf"kernel {k.__name__} \(.*\) does not take the launch's arguments: "
                                            rf"too many positional arguments \(given {len(args)} positional: {given}\)$"):
            ctx.launch(k, (1, 1), *args)
    # a wrapper's own binding mistake (a keyword renamed wrong) is its error at its line, not
    # the launch's keyword's (a review); tl not keyword-only stays refused ahead
    def rename(f):
        @functools.wraps(f)
        def w(*args, **kwargs):
            kwargs["bogus"] = kwargs.pop("s")
            return f(*args, **kwargs)
        return w

    @rename
    def scaled_by(o_ptr, *, tl, scale=1.0):
        pass

    with pytest.raises(KernelError, match=r"kernel scaled_by raised TypeError .* got an unexpected keyword "
                                          r"argument 'bogus'"):
        ctx.launch(scaled_by, (1, 1), o, s=2.0)

    @generic
    def positional_tl(o_ptr, tl):
        pass

    with pytest.raises(TypeError, match="must take tl as a keyword-only parameter"):
        ctx.launch(positional_tl, (1, 1), o)
    # an error of the wrapped function's own (it started) is the kernel's, wrapped as any other
    @generic
    def raises(o_ptr, *, tl):
        int("x", "y")

    with pytest.raises(KernelError, match="kernel raises raised TypeError on PE"):
        ctx.launch(raises, (1, 1), o)
    # the wrapped function takes (o, 4.0), its wrapper does not: the call fails before any line
    # of the kernel runs, at the wrapped function's def
    line = scaled.__wrapped__.__code__.co_firstlineno
    with pytest.raises(KernelError, match=rf"kernel scaled raised TypeError .* at {FILE}:{line}: "):
        ctx.launch(scaled, (1, 1), o, 4.0)


def test_partials_and_callable_instances_are_named_by_their_function(ctx):
    """Errors and reports name a functools.partial by its function and a callable instance by
    its class, with the file:line of the code (a review found `functools.partial(<function ...
    at 0x...>)` with no line, and reports whose kernel name held a memory address)."""
    import functools

    def dbl(x_ptr, o_ptr, n, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") * 2.0)

    class Dbl:
        def __call__(self, x_ptr, o_ptr, n, *, tl):
            tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") * 2.0)

    x, o = ctx.empty((4,), "f32"), ctx.empty((4,), "f32")
    line = dbl.__code__.co_firstlineno
    with pytest.raises(TypeError, match=rf"kernel dbl \({FILE}:{line}\) does not take"):
        ctx.launch(functools.partial(dbl, x), (1, 1), o)
    call_line = Dbl.__call__.__code__.co_firstlineno
    with pytest.raises(TypeError, match=rf"kernel Dbl \({FILE}:{call_line}\) does not take"):
        ctx.launch(Dbl(), (1, 1), x, o)
    for k, name in ((functools.partial(dbl, x), "dbl"), (Dbl(), "Dbl")):
        args = (o, 4) if name == "dbl" else (x, o, 4)
        r = ctx.launch(k, (1, 1), *args, mode="timing")
        assert (r.kernel_name, r.kernel_file) == (name, __file__)
        assert "0x" not in r.to_json()["kernel"]["name"]


def test_a_call_that_does_not_bind_takes_the_arguments_python_takes(ctx):
    """A callable instance whose __call__ is a staticmethod, a classmethod or a functools.partial:
    Python calls it with the launch's arguments, and inspect.signature (3.11), taking any
    __call__ for a function bound to the instance, dropped a parameter (a review: "too many
    positional arguments"). They run, are named by their class and the function's file:line, and
    arguments that do not fit are refused naming it."""
    import functools

    def dbl(x_ptr, o_ptr, n, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") * 2.0)

    def scaled(cls, x_ptr, o_ptr, n, *, tl):
        dbl(x_ptr, o_ptr, n, tl=tl)

    class StaticCall:
        __call__ = staticmethod(dbl)

    class PartialCall:
        __call__ = functools.partial(dbl)

    class ClassCall:
        __call__ = classmethod(scaled)

    x = ctx.replicate(np.arange(4, dtype=np.float32))
    line = dbl.__code__.co_firstlineno
    for k, at in ((StaticCall(), line), (PartialCall(), line), (ClassCall(), scaled.__code__.co_firstlineno),
                  (functools.partial(StaticCall(), x), line)):
        o = ctx.empty((4,), "f32")
        args = (o, 4) if isinstance(k, functools.partial) else (x, o, 4)
        with warnings.catch_warnings():
            # (Python 3.13 warns of the kernel's own call of a partial __call__: once, the user's)
            warnings.filterwarnings("ignore", "functools.partial will be a method descriptor", FutureWarning)
            r = ctx.launch(k, (1, 1), *args)
        assert ctx.read(o, pe=(0, 0)).tolist() == [0.0, 2.0, 4.0, 6.0], type(k).__name__
        name = type(k.func if isinstance(k, functools.partial) else k).__name__
        assert (r.kernel_name, r.kernel_file) == (name, __file__)
        assert r.to_json()["kernel"]["file"] == __file__
        with pytest.raises(TypeError, match=rf"kernel {name} \({FILE}:{at}\) does not take the launch's "
                                            r"arguments: missing a required argument: 'n'"):
            ctx.launch(k, (1, 1), *args[:-1])


def test_a_class_as_a_kernel_is_named_by_what_its_call_runs(ctx):
    """A class launched as a kernel runs its __init__ (or __new__, or its metaclass's __call__,
    as Python resolves the call): that function's file:line names it in reports and in the
    TypeError for arguments that do not fit (a review: file '<kernel>' and no line)."""
    def dbl(x_ptr, o_ptr, n, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") * 2.0)

    class ByInit:
        def __init__(self, x_ptr, o_ptr, n, *, tl):
            dbl(x_ptr, o_ptr, n, tl=tl)

    class ByNew:
        def __new__(cls, x_ptr, o_ptr, n, *, tl):
            dbl(x_ptr, o_ptr, n, tl=tl)

    class InheritsInit(ByInit):
        pass

    class Meta(type):
        def __call__(cls, x_ptr, o_ptr, n, *, tl):
            dbl(x_ptr, o_ptr, n, tl=tl)

    class ByMeta(metaclass=Meta):
        def __init__(self):  # (not run: the metaclass's __call__ is what the call runs)
            pass

    x = ctx.replicate(np.arange(4, dtype=np.float32))
    for k, f in ((ByInit, ByInit.__init__), (ByNew, ByNew.__new__), (InheritsInit, ByInit.__init__),
                 (ByMeta, Meta.__call__)):
        o = ctx.empty((4,), "f32")
        r = ctx.launch(k, (1, 1), x, o, 4)
        assert ctx.read(o, pe=(0, 0)).tolist() == [0.0, 2.0, 4.0, 6.0], k.__name__
        assert (r.kernel_name, r.kernel_file) == (k.__name__, __file__)
        assert r.to_json()["kernel"]["file"] == __file__
        with pytest.raises(TypeError, match=rf"kernel {k.__name__} \({FILE}:{f.__code__.co_firstlineno}\) "
                                            r"does not take the launch's arguments: missing a required "
                                            r"argument: 'n'"):
            ctx.launch(k, (1, 1), x, o)


def test_kernels_whose_attributes_raise_or_whose_wrapped_chain_cycles_run_and_are_named(ctx):
    """A breaker's cases: a callable instance whose attribute access raises met a bare
    RuntimeError from kernbench's own checks; a __wrapped__ cycle of two functions lost the
    kernel's file. The first runs as Python calls it; the second is named by its first function."""
    class Raising:
        def __getattribute__(self, name):
            if name == "__class__":
                return object.__getattribute__(self, name)
            raise RuntimeError("no attribute access: " + name)

        def __call__(self, o_ptr, *, tl):
            tl.store(o_ptr, tl.full((4,), 1.0, "f32"))

    def a(o_ptr, *, tl):
        tl.store(o_ptr, tl.full((4,), 2.0, "f32"))

    def b(o_ptr, *, tl):
        pass

    a.__wrapped__, b.__wrapped__ = b, a
    o = ctx.empty((4,), "f32")
    ctx.launch(Raising(), (1, 1), o)
    assert ctx.read(o, pe=(0, 0)).tolist() == [1.0] * 4
    r = ctx.launch(a, (1, 1), o)
    assert (r.kernel_name, r.kernel_file) == ("a", __file__)
    assert ctx.read(o, pe=(0, 0)).tolist() == [2.0] * 4


def test_errors_through_generated_or_library_code_name_the_kernels_line(ctx):
    """A review's cases. A frozen dataclass config assigned to, and a dataclass holding tiles
    compared with ==: their __setattr__ and __eq__ are code dataclasses generates (file
    "<string>"), which was named instead of the kernel's line. A tl error raised through a
    library's Python (heapq, contextlib, numpy.testing) named the library's file:line."""
    import contextlib
    import dataclasses
    import heapq

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        block: int

    @dataclasses.dataclass
    class Tiles:
        t: object

    lines = {}

    def frozen(*, tl):
        cfg = Cfg(8)
        lines["frozen"] = sys._getframe().f_lineno + 1
        cfg.block = 16

    def eq(*, tl):
        a, b = Tiles(tl.zeros((8,), "f32")), Tiles(tl.zeros((16,), "f32"))
        lines["eq"] = sys._getframe().f_lineno + 1
        return a == b

    def via_heapq(*, tl):
        h = tl.zeros((8,), "f32")
        lines["via_heapq"] = sys._getframe().f_lineno + 1
        heapq.nlargest(1, [h, h])

    def via_exitstack(*, tl):  # (the callback runs as the with block exits: the with's line)
        lines["via_exitstack"] = sys._getframe().f_lineno + 1
        with contextlib.ExitStack() as st:
            st.callback(tl.zeros, (8,), "f64")

    def via_frozen(*, tl):  # (collections.abc's Sequence.index: a frozen module, "<frozen ...>")
        import collections.abc

        class Tiles(collections.abc.Sequence):
            def __init__(self, ts):
                self.ts = ts

            def __getitem__(self, i):
                return self.ts[i]

            def __len__(self):
                return len(self.ts)

        t = Tiles([tl.zeros((8,), "f32"), tl.zeros((8,), "f32")])
        lines["via_frozen"] = sys._getframe().f_lineno + 1
        t.index(tl.zeros((8,), "f32"))

    for k in (frozen, eq, via_heapq, via_exitstack, via_frozen):
        for mode in ("functional", "timing"):
            with pytest.raises(KernelError) as ei:
                ctx.launch(k, (1, 1), mode=mode)
            assert ei.value.where == f"{__file__}:{lines[k.__name__]}", (k.__name__, mode, str(ei.value))
            assert f"at {FILE}:{lines[k.__name__]}" in str(ei.value).splitlines()[0], str(ei.value)


def test_a_kernel_packages_sub_package_helpers_are_its_own_lines(ctx, tmp_path, monkeypatch):
    """A kernel package with a sub-package of helpers: a tl error in a helper names the
    helper's line and the chain (a breaker: only the kernel's call line, once the walk out of
    library frames took the sub-package's file for a library's). Run from a folder of its own
    (tmp_path), as a user's package."""
    (tmp_path / "kbpkg" / "ops").mkdir(parents=True)
    (tmp_path / "kbpkg" / "__init__.py").write_text("")
    (tmp_path / "kbpkg" / "ops" / "__init__.py").write_text(
        "def load_tile(tl, x):\n    return tl.load(x, shape=(5,), dtype='f32')\n")
    (tmp_path / "kbpkg" / "kern.py").write_text(
        "from kbpkg.ops import load_tile\n\ndef k(x, *, tl):\n    load_tile(tl, x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import kbpkg.kern
    x = ctx.empty((4,), "f32")
    with pytest.raises(KernelError) as ei:
        ctx.launch(kbpkg.kern.k, (1, 1), x, mode="timing")
    assert ei.value.where == f"{tmp_path / 'kbpkg' / 'ops' / '__init__.py'}:2"
    assert "(in load_tile, called from k at kern.py:4)" in str(ei.value)


def test_a_kernel_packages_helpers_are_its_own_lines_for_every_error(ctx, tmp_path):
    """A kernel package installed among the libraries (site-packages): a Python error in its
    helper named the kernel's call line, a tl error in the same helper the helper's line (a
    review). The files beside the kernel's are its own: both name the helper's line."""
    import sysconfig
    sp = os.path.join(sysconfig.get_paths()["purelib"], "kernbench_test_pkg")
    helpers, kern = os.path.join(sp, "helpers.py"), os.path.join(sp, "attn.py")
    g = {}
    exec(compile('def h_raise(tl):\n    tl.zeros((8,), "f32")\n    raise ValueError("bad block")\n\n'
                 'def h_tl(tl):\n    return tl.zeros((8,), "f64")\n', helpers, "exec"), g)
    exec(compile("def k_raise(*, tl):\n    h_raise(tl)\n\ndef k_tl(*, tl):\n    h_tl(tl)\n", kern, "exec"), g)
    for name, line in (("k_raise", 3), ("k_tl", 6)):
        with pytest.raises(KernelError) as ei:
            ctx.launch(g[name], (1, 1), mode="timing")
        assert ei.value.where == f"{helpers}:{line}", (name, ei.value.where)


def test_a_library_installed_inside_the_kernels_folder_is_a_library(tmp_path):
    """A project's .venv beside its kernel (project/.venv, project/kern.py): a tl error in an
    installed library's helper named the library's line, its site-packages being "beside" the
    kernel (a review). The library folder is registered as LIBRARY_DIRS learns one (the user
    site, PYTHONUSERBASE), in a Python of its own; a kernel file and an exec'd one (its folder
    the working one, as in a notebook) both name the kernel's line."""
    import subprocess
    import textwrap
    proj = tmp_path / "proj"
    base = proj / ".venv"
    env = dict(os.environ, PYTHONUSERBASE=str(base))
    lib = subprocess.run([sys.executable, "-c", "import site; print(site.getusersitepackages())"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert lib.startswith(str(base)), lib
    os.makedirs(lib)
    with open(os.path.join(lib, "tilelib.py"), "w") as f:
        f.write("def row_max(tl, x):\n    return tl.max(x, axis=3)\n")
    src = textwrap.dedent("""\
        import tilelib
        def k_lib(*, tl):
            x = tl.zeros((16,), "f32")
            return tilelib.row_max(tl, x)
        """)
    (proj / "kern.py").write_text(src)
    script = textwrap.dedent(f"""\
        import os
        import kernbench
        from kernbench.common.errors import LIBRARY_DIRS
        assert os.path.join({lib!r}, "") in LIBRARY_DIRS, LIBRARY_DIRS
        import kern
        g = {{}}
        exec(compile({src!r}, "<string>", "exec"), g)
        ctx = kernbench.Context("default")
        for k in (kern.k_lib, g["k_lib"]):
            try:
                ctx.launch(k, (1, 1))
            except kernbench.KernelError as e:
                print(e.where)
        """)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (lib, str(proj), os.environ.get("PYTHONPATH")) if p)
    run = subprocess.run([sys.executable, "-c", script], cwd=proj, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [f"{proj / 'kern.py'}:4", "<string>:4"], run.stdout


def test_a_tl_error_in_a_del_or_a_generators_finally_fails_the_launch(ctx):
    """A local object's __del__ and a local generator's finally run as the kernel returns, inside
    the program (docs/reliability.md); Python only prints what they raise ("Exception ignored
    in"), and the launch returned normally without the command (a review). The KernelError is
    the launch's, naming its line; other unraisable exceptions still go to Python's hook."""
    lines = {}
    x, o = ctx.empty((8,), "f32"), ctx.empty((8,), "f32")

    def k_del(x, o, *, tl):
        class Flush:
            def __del__(self):
                lines["k_del"] = sys._getframe().f_lineno + 1
                tl.store(o, tl.zeros((8,), "f64"))
        f = Flush()  # noqa: F841
        tl.load(x, shape=(8,), dtype="f32")

    def k_gen(x, o, *, tl):
        def g():
            try:
                yield
            finally:
                lines["k_gen"] = sys._getframe().f_lineno + 1
                tl.store(o, tl.zeros((16,), "f32"))
        it = g()
        next(it)
        tl.load(x, shape=(8,), dtype="f32")

    def k_returned(x, o, *, tl):  # (freed as the launch drops what the kernel returned)
        class Flush:
            def __del__(self):
                lines["k_returned"] = sys._getframe().f_lineno + 1
                tl.store(o, tl.zeros((8,), "f64"))
        tl.load(x, shape=(8,), dtype="f32")
        return Flush()

    for k in (k_del, k_gen, k_returned):
        for mode in ("functional", "timing"):
            with pytest.raises(KernelError) as ei:
                ctx.launch(k, (1, 1), x, o, mode=mode)
            assert ei.value.where == f"{__file__}:{lines[k.__name__]}", (k.__name__, mode, str(ei.value))

    class Noisy:
        def __del__(self):
            raise RuntimeError("not kernbench's")

    # the user's hook gets the others, once each, and is the hook again after the launch (a
    # breaker: a hook installed for good, whose `previous` a user's chaining hook pointed back
    # to, recursed; a user's temporary hook kept receiving after it was restored)
    seen = []
    prev = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        def k_noisy(*, tl):
            n = Noisy()  # noqa: F841
        ctx.launch(k_noisy, (1, 1))
        assert sys.unraisablehook == seen.append
    finally:
        sys.unraisablehook = prev
    assert len(seen) == 1 and isinstance(seen[0].exc_value, RuntimeError)


def test_written_args_inside_star_args_kwargs_and_containers(ctx):
    """written_args names an array passed through *args, **kwargs or a list by its path (a
    review: () for each, and `kernbench run --save` wrote an empty file)."""
    def star(*args, tl):
        tl.store(args[1], tl.load(args[0], shape=(4,), dtype="f32"))

    def kws(x_ptr, *, tl, **kw):
        tl.store(kw["out"], tl.load(x_ptr, shape=(4,), dtype="f32"))

    def listed(ptrs, *, tl):
        tl.store(ptrs[1], tl.load(ptrs[0], shape=(4,), dtype="f32"))

    x, o = ctx.put(np.ones(4, np.float32), pe=(0, 0)), ctx.empty((4,), "f32")
    assert ctx.launch(star, (1, 1), x, o).written_args == ("args[1]",)
    assert ctx.launch(kws, (1, 1), x, out=o).written_args == ("kw['out']",)
    assert ctx.launch(listed, (1, 1), [x, o]).written_args == ("ptrs[1]",)
    # a dataclass's field by its attribute (a review: () though the kernel stored to a.o), and a
    # foreign or freed array in one refused ahead, named by its path, as in a list
    import dataclasses

    @dataclasses.dataclass
    class Args:
        x: object
        o: object
        n: int = 4

    def fields(a, *, tl):
        tl.store(a.o, tl.load(a.x, shape=(a.n,), dtype="f32"))

    assert ctx.launch(fields, (1, 1), Args(x, o)).written_args == ("a.o",)
    assert ctx.launch(listed, (1, 1), (Args(x, o).x, o)).written_args == ("ptrs[1]",)
    other = kernbench.Context("default").empty((4,), "f32")
    with pytest.raises(ValueError, match=r"launch argument 'a' \(positional #0\)\.o \(device array .* belongs "
                                         r"to another Context"):
        ctx.launch(fields, (1, 1), Args(x, other))
    # a field that raises when read is passed over (a review: its RuntimeError ended a launch
    # that never reads it)
    class Boom:
        def __get__(self, inst, owner=None):
            if inst is None:
                return None
            raise RuntimeError("not this one")

        def __set__(self, inst, v):
            pass

    @dataclasses.dataclass
    class Touchy:
        x: object
        o: object
        b: Boom = Boom()

    r = ctx.launch(lambda a, *, tl: tl.store(a.o, tl.load(a.x, shape=(4,), dtype="f32")), (1, 1), Touchy(x, o))
    assert r.written_args == ("a.o",) and r.args["a"] == "<Touchy object; its repr raised RuntimeError>"
    gone = ctx.empty((4,), "f32")
    ctx.free(gone)
    with pytest.raises(PlacementError, match=r"launch argument 'a' \(positional #0\)\.o \(device array .* was freed"):
        ctx.launch(fields, (1, 1), Args(x, gone))


def test_a_one_shot_iterator_grid_is_checked_like_a_tuple(ctx):
    """A grid given as an iterator: its values were used up by the int conversion, and the
    whole-number check compared nothing, so (7.9, 1.0) ran as (7, 1) (a review)."""
    for grid in (iter([3.9, 1.0]), map(float, ["3.9", "1"])):
        with pytest.raises(ValueError, match=r"grid must be .* got \(3\.9, 1\.0\)"):
            ctx.launch(lambda *, tl: None, grid)
    assert ctx.launch(lambda *, tl: None, iter([2, 1]), mode="timing").grid == (2, 1)


def test_a_kernel_parameter_named_like_a_launch_option(ctx):
    seen = []

    def kernel(*, tl, mode, detail="x"):
        seen.append((mode, detail))

    ctx.launch(kernel, (1, 1), kernel_kwargs={"mode": "fast", "detail": 3})
    ctx.launch(kernel, (1, 1), mode="timing", kernel_kwargs={"mode": "slow"})
    assert seen == [("fast", 3), ("slow", "x")]
    with pytest.raises(TypeError, match="given both in kernel_kwargs and as a keyword"):
        ctx.launch(lambda *, tl, n: None, (1, 1), n=1, kernel_kwargs={"n": 2})


def test_a_tl_kept_after_a_failed_launch_refuses_calls(ctx):
    kept = []

    def kernel(*, tl):
        kept.append(tl)
        raise RuntimeError("boom")

    with pytest.raises(KernelError, match="boom"):
        ctx.launch(kernel, (1, 1))
    with pytest.raises(KernelError, match="its launch has ended"):
        kept[0].full((4,), 1.0)


@pytest.mark.parametrize("grid", [(True, True), (1.0, 1), (np.True_, 1)])
def test_grids_of_bools_or_floats_are_refused(ctx, grid):
    with pytest.raises(ValueError, match="grid must be"):
        ctx.launch(lambda *, tl: None, grid)


@pytest.mark.parametrize("grid,match", [
    ((5, 1), r"grid \(5, 1\) does not fit the hardware 'default \(n_cubes=2, pes_per_cube=4\)': expected 1..4 PEs per cube and 1..2 cubes"),
    ((1, 3), r"grid \(1, 3\) does not fit"),
    ((0, 1), r"grid \(0, 1\) does not fit"),
    ((2,), r"grid must be \(PEs per cube used, cubes used\), two ints, got \(2,\)"),
    ("ab", r"grid must be"),
    ((1.5, 1), r"grid must be"),
    ((float("inf"), 1), r"grid must be .* got \(inf, 1\)"),  # (a review: a raw OverflowError)
    ((1, float("-inf")), r"grid must be"),
])
def test_bad_grid(ctx, grid, match):
    with pytest.raises(ValueError, match=match):
        ctx.launch(lambda *, tl: None, grid)


def test_bad_mode_and_kernel(ctx):
    with pytest.raises(ValueError, match=r"mode must be one of \('functional', 'timing'\), got 'fast'"):
        ctx.launch(lambda *, tl: None, (1, 1), mode="fast")
    with pytest.raises(TypeError, match="kernel must be a function"):
        ctx.launch(42, (1, 1))


def test_operator_target_is_released_after_a_failed_trace(ctx):
    from kernbench.common.pe_commands import operator_targets

    def kernel(*, tl):
        raise RuntimeError("boom")

    before = operator_targets()
    with pytest.raises(KernelError, match="boom"):
        ctx.launch(kernel, (2, 1))
    assert operator_targets() == before


def test_max_cycles_passes_through(ctx):
    def kernel(x, *, tl):
        tl.exp(tl.load(x, shape=(64,)))

    x = ctx.replicate(np.ones(64, np.float32))
    with pytest.raises(kernbench.MaxCyclesError):
        ctx.launch(kernel, (1, 1), x, max_cycles=10)


def test_branching_on_a_tensor_value_is_refused(ctx):
    x = ctx.replicate(np.ones(8, np.float32))
    lines = []

    def kernel(x_ptr, *, tl):
        t = tl.load(x_ptr, shape=(8,))
        lines.append(sys._getframe().f_lineno + 1)
        if tl.max(t) > 0.0:
            tl.store(x_ptr, t)

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (1, 1), x)
    assert f"PE (0, 0) at {FILE}:{lines[0]}: bool(tensor)" in str(ei.value)
    assert ei.value.pe == (0, 0)
    assert "control flow may depend on program ids and arguments, not on tensor values" in str(ei.value)


@pytest.mark.parametrize("call, name", [
    (lambda tl, t: tl.sum(t, 1, True, "f32", 5), "sum"),
    (lambda tl, t: tl.exp(t, 1), "exp"),
    (lambda tl, t: tl.add(t), "add"),
    (lambda tl, t: tl.maximum(t, t, None, t), "maximum"),
    (lambda tl, t: tl.invert(), "invert"),
    (lambda tl, t: tl.where(t > 0, t, t, t), "where"),
    (lambda tl, t: tl.dot(t, tl.trans(t), out_type="f16"), "dot"),
    (lambda tl, t: tl.cast(t), "cast"),
], ids=["sum_five_args", "exp_two_args", "add_one_arg", "maximum_four_args", "invert_no_arg",
        "where_four_args", "dot_out_dtype", "cast_no_dtype"])
def test_a_tl_call_with_a_wrong_signature_names_the_kernel_line(ctx, call, name):
    """The compiled tl builtins raise their TypeError inside themselves, in a traceback entry
    named by their source path ('kernbench/language/builtins.py'): it is kernbench's, so the
    error names the kernel's line, as the plain Python modules do (a review found builtins.py).
    The message names the builtin called (the elementwise ones were all ``op()``)."""
    x = ctx.put(np.ones((2, 3), np.float32), pe=(0, 0))

    def kernel(p, *, tl):
        call(tl, tl.load(p, shape=(2, 3)))

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (1, 1), x, mode="functional")
    line = call.__code__.co_firstlineno
    assert "raised TypeError on PE (0, 0)" in str(ei.value)
    # (the call is a lambda the kernel called: both lines)
    within = f" (in <lambda>, called from kernel at {FILE}:{kernel.__code__.co_firstlineno + 1})"
    assert f" at {FILE}:{line}{within}: " in str(ei.value) and ei.value.where.endswith(f"{FILE}:{line}")
    assert f": {name}() " in str(ei.value) or f": TL.{name}() " in str(ei.value)


def test_an_error_inside_kernbench_names_the_kernel_line_not_kernbench(monkeypatch):
    """An exception raised in kernbench's own code under a kernel's call (out of memory while the
    trace grows) names the kernel's line, in a checkout as installed (a review found
    'at pages.py:42'); the shipped kernels' files stay kernel lines."""
    from kernbench._core import pages
    from kernbench.runtime import executor

    def no_memory(*a, **k):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(pages.mmap, "mmap", no_memory)
    with pytest.raises(MemoryError, match=r"cannot map 400,000,000 bytes for 100,000,000 items of int32"):
        pages.untouched(10 ** 8, "int32")
    monkeypatch.undo()
    from kernbench.common.errors import PACKAGE_DIR
    from kernbench.language import semantic
    inner = os.path.join(PACKAGE_DIR, "_core", "somewhere.py")
    shipped = os.path.join(semantic._KERNELS_DIR, "helper.py")
    ns: dict = {}
    exec(compile("def fail():\n    raise MemoryError('x')\n", inner, "exec"), ns)
    exec(compile("def call(f):\n    f()\n", shipped, "exec"), ns)
    with pytest.raises(MemoryError) as ei:
        ns["call"](ns["fail"])
    assert executor._kernel_site(ei.value, __file__)[:2] == (shipped, 2)  # the shipped kernel's line
    with pytest.raises(MemoryError) as ei:
        line = sys._getframe().f_lineno + 1
        ns["fail"]()
    assert executor._kernel_site(ei.value, __file__) == (__file__, line, "")  # not somewhere.py


def test_a_kernel_error_the_kernel_raises_itself_gets_its_pe_and_line():
    # (a review: it passed through with .pe and .where None)
    import kernbench
    from kernbench import KernelError

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})

    def k(*, tl):
        if tl.program_id(0) == 1:
            raise KernelError("block size must divide the row")  # the raise

    with pytest.raises(KernelError, match="block size must divide the row") as e:
        ctx.launch(k, (2, 1))
    assert e.value.pe == (1, 0)
    assert e.value.where.endswith(f"test_errors_kernel.py:{k.__code__.co_firstlineno + 2}")


def test_kernbenchs_other_errors_raised_in_a_kernel_name_the_pe_and_line(ctx):
    # (a review: a ctx.free or ctx.empty refused inside a kernel raised its PlacementError bare,
    # with no PE, line or kernel; it is wrapped as any other exception the kernel raises)
    from kernbench.runtime.memory import PlacementError

    x = ctx.replicate(np.ones(16, np.float32))
    tmp = ctx.empty((16,), "f32")

    def frees(x_ptr, *, tl):
        tl.load(x_ptr, shape=(16,), dtype="f32")
        ctx.free(tmp)  # (PE (1, 0) frees it again)

    with pytest.raises(KernelError) as ei:
        ctx.launch(frees, (2, 1), x)
    e = ei.value
    line = frees.__code__.co_firstlineno + 2
    assert e.pe == (1, 0) and e.where == f"{__file__}:{line}"
    assert str(e).startswith(f"kernel frees raised PlacementError on PE (1, 0) (program_id(0)=1, "
                             f"program_id(1)=0) at {os.path.basename(__file__)}:{line}: "), str(e)
    assert "is not a live allocation of this context" in str(e)
    assert isinstance(e.__cause__, PlacementError)

    def empties(x_ptr, *, tl):
        ctx.empty((0,), "f32")

    with pytest.raises(KernelError) as ei:
        ctx.launch(empties, (1, 1), x)
    assert ei.value.pe == (0, 0) and ei.value.where == f"{__file__}:{empties.__code__.co_firstlineno + 1}"
    assert isinstance(ei.value.__cause__, PlacementError)


def test_bytes_and_sets_are_not_shapes_nor_grids(ctx):
    """(A fuzz review.) bytes and sets iterate as ints: b"ab" made a (97, 98) tile, {4, 16} one
    in hash order, and b"\\x02\\x01" ran as the grid (2, 1); an infinite extent raised Python's
    OverflowError as the kernel's own error."""
    for shp in (b"\x04\x04", bytearray(b"\x10"), {4, 16}, frozenset({8}), "44"):
        def k(*, tl, shp=shp):
            tl.full(shp, 1.0, "f32")
        with pytest.raises(KernelError, match=r"^PE \(0, 0\) at test_errors_kernel.py:\d+: full shape must be "
                                              r"a non-empty tuple of positive ints, got "):
            ctx.launch(k, (1, 1))
    for ext in (float("inf"), float("-inf")):
        def k2(*, tl, ext=ext):
            tl.zeros((4, ext), "f32")
        with pytest.raises(KernelError, match=r"zeros shape must be a non-empty tuple of positive ints, got "
                                              r"\(4, -?inf\) \(element 1 is float -?inf, not an int\)"):
            ctx.launch(k2, (1, 1))
    for grid in (b"\x02\x01", {1, 2}, "21"):
        with pytest.raises(ValueError, match=r"grid must be \(PEs per cube used, cubes used\), two ints, got "):
            ctx.launch(lambda *, tl: None, grid)


def test_a_tl_calls_argument_error_is_worded_alike_in_both_builds():
    """A review compared the compiled and the pure-Python build: Python's method messages name
    "TL.load()" where Cython's name "load()", and count self ("exp() takes 2 positional
    arguments but 3 were given" for one argument too many). The launch words Python's as the
    compiled build does, its count without self."""
    from kernbench.runtime.executor import _call_text

    assert _call_text(TypeError("TL.exp() takes 2 positional arguments but 3 were given")) == \
        "exp() takes 1 positional argument but 2 were given"
    assert _call_text(TypeError("TL.program_id() takes 1 positional argument but 2 were given")) == \
        "program_id() takes 0 positional arguments but 1 was given"
    assert _call_text(TypeError("TL.load() got an unexpected keyword argument 'foo'")) == \
        "load() got an unexpected keyword argument 'foo'"
    assert _call_text(ValueError("TL.x")) == "TL.x"  # (only a TypeError)
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.empty((16,), "f32")

    def extra(x, *, tl):
        tl.exp(tl.load(x, shape=(4,)), 2.0)

    def keyword(x, *, tl):
        tl.load(x, shape=(4,), foo=1)

    def view(x, *, tl):  # (view was reshape under another name: its errors said reshape())
        tl.view(tl.load(x, shape=(4,)), (4,), foo=1)

    for k, says in ((extra, r": exp\(\) takes (exactly )?1 positional argument"),
                    (keyword, r": load\(\) got an unexpected keyword argument 'foo'"),
                    (view, r": view\(\) got an unexpected keyword argument 'foo'")):
        with pytest.raises(KernelError, match=says):
            ctx.launch(k, (1, 1), x)


def test_an_int_python_cannot_print_is_said(ctx):
    """A review: an int of 5,001 digits in a tl call ended as Python's "Exceeds the limit (4300
    digits) for integer string conversion", blamed on the kernel without a word of why."""
    def kernel(x_ptr, *, tl):
        tl.store(x_ptr, tl.load(x_ptr, shape=(4, 8)) * 10 ** 5000)

    e = _first_line_error(ctx, kernel)
    assert "raised ValueError on PE (0, 0)" in str(e) and str(e).endswith(
        "(a Python int of thousands of digits reached a tl call, which could not print it (Python "
        "prints no int past 4,300 digits): pass a smaller int, or a float such as float('inf'))")
