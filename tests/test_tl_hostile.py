"""Hostile inputs to the language (cases from trying to break it): each is refused with a
KernelError naming the PE and the kernel line, or computes what docs/language.md says. Never a raw
Python or numpy exception, never a silent wrong value."""
import os
import sys

import ml_dtypes
import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.common.pe_commands import TensorHandle as TH
from kernbench.runtime import PlacementError

HW = {"n_cubes": 1, "pes_per_cube": 2}
FILE = os.path.basename(__file__)
A = np.arange(6, dtype=np.float32).reshape(2, 3)


def run(body, x=A, mode="functional", dtype=None):
    ctx = kernbench.Context("default", overrides=HW)
    p = ctx.put(x, pe=(0, 0), dtype=dtype)
    seen = {}

    def kernel(ptr, *, tl):
        if tl.program_id(0) == 0:
            seen["out"] = body(tl, ptr)  # (kernel calls body)

    r = ctx.launch(kernel, (1, 1), p, mode=mode)
    return seen.get("out"), r


def _line_of(marker: str) -> int:
    """The line of this file that ends with ``marker``."""
    return next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith(marker))


def at(line: int) -> str:
    """How an error in a body run by :func:`refused` names its line and the calls to it."""
    return (f"PE (0, 0) at {FILE}:{line} (in body, called from wrapped at "
            f"{FILE}:{_line_of('# (wrapped calls body)')}, from kernel at "
            f"{FILE}:{_line_of('# (kernel calls body)')})")


def refused(body, mode="functional", **kw):
    lines = []

    def wrapped(tl, ptr):
        lines.append(sys._getframe().f_lineno + 1)
        return body(tl, ptr)  # (wrapped calls body)

    with pytest.raises(KernelError) as ei:
        run(wrapped, mode=mode, **kw)
    msg = str(ei.value)
    assert msg.startswith("PE (0, 0) at ") and "raised" not in msg.split(":")[1], msg
    return msg


@pytest.mark.parametrize("mode", ["functional", "timing"])
@pytest.mark.parametrize("shape", [(-6, -1), (True, 6), (-2, 3), (0, 6), (6.0,), (2 ** 40, 2 ** 40)])
def test_hand_made_views_with_bad_shapes_are_refused(mode, shape):
    msg = refused(lambda tl, p: TH(id=tl.load(p, shape=(2, 3)).id, shape=shape) + 0.0, mode=mode)
    assert "(a view of tensor #0): shape" in msg


class _Minus:
    """An id whose subtraction answers 0 or True: resolved to no tensor, whatever it says."""

    def __init__(self, answer):
        self.answer = answer

    def __sub__(self, other):
        return self.answer

    def __repr__(self):
        return f"_Minus({self.answer!r})"


_ELEMENTWISE = {
    "h + 0.0": lambda tl, h: h + 0.0,
    "h * h": lambda tl, h: h * h,
    "tl.maximum(h, h)": lambda tl, h: tl.maximum(h, h),
    "tl.exp(h)": lambda tl, h: tl.exp(h),
}


@pytest.mark.parametrize("mode", ["functional", "timing"])
@pytest.mark.parametrize("op", list(_ELEMENTWISE))
@pytest.mark.parametrize("bad_id", ["0", 0.0, True, None, np.int64(5), np.uint64(2 ** 63), _Minus(0),
                                    _Minus(True)])
def test_ids_that_are_not_ints_are_refused(bad_id, op, mode):
    # (a review found np.int64 ids raising a raw OverflowError from the binary ops, and an id
    # whose subtraction answered 0 or True resolved to a tensor, or to a constant: a wrong value)
    msg = refused(lambda tl, p: (tl.load(p, shape=(2, 3)),
                                 _ELEMENTWISE[op](tl, TH(id=bad_id, shape=(2, 3)))), mode=mode)
    assert "which no tl call on this PE made" in msg


@pytest.mark.parametrize("call", ["a + 1.0", "a + a", "tl.exp(a)", "tl.store(o, a)", "tl.zeros"])
def test_a_tl_call_from_a_callback_as_the_program_ends_is_refused(call):
    # A weakref callback on a handle runs as the program ends (its handles let go): its tl
    # calls reached the finished program's tables, and the compiled builtins crashed the
    # interpreter on them (a review's case). Python ignores a callback's exception, so the
    # callback keeps what it raised.
    import weakref
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.put(np.ones(4, np.float32), pe=(0, 0))
    o = ctx.put(np.zeros(4, np.float32), pe=(0, 0))
    raised, refs = [], []

    def kernel(x, o, *, tl):
        a = tl.load(x, shape=(4,))
        h = tl.load(x, shape=(4,))

        def callback(_):
            try:
                {"a + 1.0": lambda: a + 1.0, "a + a": lambda: a + a, "tl.exp(a)": lambda: tl.exp(a),
                 "tl.store(o, a)": lambda: tl.store(o, a), "tl.zeros": lambda: tl.zeros((4,), "f32")}[call]()
            except BaseException as e:  # noqa: BLE001 (what the callback raised is the test)
                raised.append(e)

        refs.append(weakref.ref(h, callback))
        tl.store(o, a + h)

    r = ctx.launch(kernel, (1, 1), x, o)
    assert r.cycles > 0 and np.array_equal(ctx.read(o, pe=(0, 0)), np.full(4, 2, np.float32))
    assert len(raised) == 1 and isinstance(raised[0], KernelError), raised
    assert "after this PE's program ended" in str(raised[0]) and str(raised[0]).startswith("PE (0, 0) at ")


@pytest.mark.parametrize("transposed", [False, True])
def test_the_builders_operand_after_the_program_ended_is_refused(transposed):
    # The builder kept past its program (tl._b) resolving a handle: its tensor table is gone.
    # The compiled fast path crashed the interpreter on it (a review's case).
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.put(np.ones((2, 3), np.float16), pe=(0, 0))
    keep = {}

    def kernel(x, *, tl):
        a = tl.load(x, shape=(2, 3))
        keep["b"], keep["h"] = tl._b, (tl.trans(a) if transposed else a)

    ctx.launch(kernel, (1, 1), x)
    with pytest.raises(KernelError, match="after this PE's program ended"):
        keep["b"].operand(keep["h"], "x")


class _Raising:
    """A shape element whose hash, or equality, raises."""

    def __init__(self, v, what):
        self.v, self.what = v, what

    def __hash__(self):
        if self.what == "hash":
            raise ValueError("bad hash")
        return hash(self.v)

    def __eq__(self, other):
        raise ValueError("bad eq")

    def __int__(self):
        return self.v


@pytest.mark.parametrize("what", ["hash", "eq"])
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_view_shapes_of_objects_that_raise_are_refused_as_shapes(what, mode):
    # A hand-made transposed view of tl.trans's shape with an element that is not an int: the
    # view's shape is refused, not the element's own exception raised (a review's case: the
    # fast path looked the shape up among tl.trans's views before checking its elements).
    from kernbench.language.semantic import TransposedView

    def body(tl, p):
        a = tl.load(p, shape=(2, 3))
        tl.trans(a)  # (3, 2) is a transposed view of tensor 0
        return tl.exp(TransposedView(a.id, a.addr, (3, _Raising(2, what)), a.dtype, a.nbytes))

    msg = refused(body, mode=mode)
    assert "(a view of tensor #0): shape must be a non-empty tuple of positive ints" in msg


@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_view_shapes_that_do_not_compare_are_checked_as_shapes(mode):
    # A view's shape is compared with its buffer's first: an element whose == raises where the
    # buffer has its value let that ValueError out, and a numpy array answered == with an
    # array whose truth raised (a review's cases, before and after the fast path). Such a shape
    # is checked as a shape: refused, or, for an array of ints, taken as that tuple.
    msg = refused(lambda tl, p: tl.exp(TH(tl.load(p, shape=(2, 3)).id, shape=(2, _Raising(3, "eq")))),
                  mode=mode)
    assert "(a view of tensor #0): shape must be a non-empty tuple of positive ints" in msg
    out, _ = run(lambda tl, p: tl.exp(TH(tl.load(p, shape=(2, 3)).id, shape=np.array([2, 3]))),
                 mode=mode)
    assert out.shape == (2, 3) and all(type(n) is int for n in out.shape)
    if mode == "functional":
        np.testing.assert_allclose(out.data, np.exp(A), rtol=1e-6)


def test_a_view_of_the_buffers_shape_as_a_tuple_subclass_is_the_buffer():
    # A shape equal to the buffer's (a tuple subclass, numpy ints) is the buffer's own shape:
    # tl.dot refused it with Cython's TypeError for its argument type (a review's case), the
    # reductions took it as it was.
    class Tup(tuple):
        pass

    def body(tl, p):
        a = tl.load(p, shape=(2, 3))
        va = TH(a.id, a.addr, Tup((2, 3)), a.dtype, a.nbytes)
        vb = TH(a.id, a.addr, (np.int64(2), np.int64(3)), a.dtype, a.nbytes)
        return tl.dot(va, tl.trans(vb)), tl.sum(vb, axis=0), tl.dot(a, tl.trans(a))

    (d, s, ref), _ = run(body)
    assert type(d.shape) is tuple and d.shape == (2, 2) and type(s.shape) is tuple
    assert all(type(n) is int for n in d.shape + s.shape)
    np.testing.assert_array_equal(d.data, ref.data)
    np.testing.assert_array_equal(s.data, A.sum(axis=0, keepdims=True))


def test_shapes_of_bools_and_oversized_tensors_are_refused():
    assert "must be a non-empty tuple of positive ints, got (2, True)" in refused(
        lambda tl, p: tl.load(p, shape=(2, True)))
    for mode in ("functional", "timing"):
        assert "a tensor holds at most 2**37" in refused(lambda tl, p: tl.full((2 ** 39,), 1.0), mode=mode)


def test_float_other_of_an_int32_load_converts_like_a_cast():
    x = np.arange(6, dtype=np.int32)
    # (its f32 constant first, as every Python number: a review found 16777217.0 converted from
    # the f64, 16777217; f32 rounds it to 16777216, 2147483584.0 to 2**31, saturated)
    for other, want in ((float("nan"), 0), (float("inf"), 2 ** 31 - 1), (1e10, 2 ** 31 - 1), (-2.7, -2),
                        (16777217.0, 16777216), (2147483584.0, 2 ** 31 - 1), (33554435.0, 33554436)):
        t, _ = run(lambda tl, p, o=other: tl.load(p, shape=(6,), mask=tl.arange(0, 6) < 3, other=o),
                   x=x, dtype="int32")
        np.testing.assert_array_equal(t.data, [0, 1, 2, want, want, want])


def test_large_known_masks_are_checked_at_trace_in_timing_mode():
    x = np.zeros(10, np.float32)
    msg = refused(lambda tl, p: tl.load(p, shape=(70000,), mask=tl.arange(0, 70000) < 11), x=x,
                  mode="timing")
    assert "reaches element 10" in msg


def test_full_of_a_huge_int_is_refused():
    msg = refused(lambda tl, p: tl.full((3,), 2 ** 2000))
    assert "the Python int 114813... (603 digits) is too large for tl.full's f32 value" in msg, msg


def test_host_int32_puts_convert_like_a_cast_or_are_refused():
    ctx = kernbench.Context("default", overrides=HW)
    a = ctx.put(np.array([np.nan, 1e10, -1e10, 2.7, -2.7]), pe=(0, 0), dtype="int32")
    np.testing.assert_array_equal(ctx.read(a, (0, 0)), [0, 2 ** 31 - 1, -2 ** 31, 2, -2])
    with pytest.raises(PlacementError, match="outside the int32 range"):
        ctx.put(np.array([2 ** 40, 1]), pe=(0, 0), dtype="int32")


def test_int32_to_bf16_and_fp8_rounds_once():
    v0 = 2 ** 30 + 2 ** 22 + 1  # just above the bf16 midpoint: rounds up to 2**30 + 2**23
    (c, s), _ = run(lambda tl, p: (tl.cast(tl.arange(v0, v0 + 1), "bf16"),
                                   tl.arange(v0, v0 + 1) + tl.zeros((1,), "bf16")))
    assert float(c.data[0]) == float(s.data[0]) == 2 ** 30 + 2 ** 23
    # 17 and 19 are e4m3 ties (precision 4 bits): to even, 16 and 20
    e, _ = run(lambda tl, p: tl.cast(tl.arange(17, 20), "fp8e4m3"))
    np.testing.assert_array_equal(e.data.astype(np.float32), [16, 18, 20])
    assert e.data.dtype == ml_dtypes.float8_e4m3fn


def helper_in_this_file(x):
    return x + {}["missing"]  # raises KeyError on this line


def test_an_exception_in_a_helper_names_the_helper_line():
    line = helper_in_this_file.__code__.co_firstlineno + 1
    with pytest.raises(KernelError) as ei:
        run(lambda tl, p: helper_in_this_file(p))
    assert f"raised KeyError on PE (0, 0) (program_id(0)=0, program_id(1)=0) at {FILE}:{line}" in str(ei.value)


def test_a_sent_mask_is_received_as_bool():
    ctx = kernbench.Context("default", overrides=HW)
    ctx.install_sfr("pe", ring=True)
    seen = {}

    def kernel(*, tl):
        tl.send("E", tl.arange(0, 4) > 1)
        seen[tl.program_id(0)] = tl.recv("W", (4,), "bool")

    ctx.launch(kernel, (2, 1))
    assert seen[0].dtype == "bool"
    np.testing.assert_array_equal(seen[0].data, [False, False, True, True])


def test_zero_d_numpy_arrays_are_numbers():
    (a, b), _ = run(lambda tl, p: (tl.load(p, shape=(2, 3)) * np.array(2.0),
                                   np.array(2.0) * tl.load(p, shape=(2, 3))))
    np.testing.assert_array_equal(a.data, A * 2)
    np.testing.assert_array_equal(b.data, A * 2)


def test_a_tensor_the_host_cannot_hold_is_refused_in_functional_mode_only():
    # 10**10 f32 elements = 40 GB: once numpy's raw MemoryError from replay, after timing had run
    msg = refused(lambda tl, p: tl.full((10 ** 5, 10 ** 5), 1.0))
    assert "(100000,100000) f32 tensor is 40,000,000,000 bytes: functional mode holds every value" in msg
    _, r = run(lambda tl, p: tl.full((10 ** 5, 10 ** 5), 1.0), mode="timing")
    # fill of 10**10 elements: ceil(10**10 / 64) * 1 + 8 cycles
    assert r.cycles == -(-10 ** 10 // 64) + 8


@pytest.mark.parametrize("iterations, where", [(2 ** 23 + 1, "# after line"), (2 ** 25, "# body line")])
def test_a_program_past_2_62_bytes_of_tensors_is_refused(iterations, where, monkeypatch):
    # Each iteration makes a 2**39-byte tensor (2**37 f32). 2**25 iterations: tl.range replays
    # those that fit and traces the first past 2**62, named at its line as full tracing names
    # it. 2**23 + 1: the iterations take 2**62 + 2**39 bytes, so the tensor after the loop
    # starts past 2**62.
    # Replay on, not the tests' verify (conftest.py): that traces all 2**23 iterations (150 s).
    monkeypatch.setenv("KERNBENCH_REPLAY", "on")
    def body(tl, p):
        for _ in tl.range(iterations):
            tl.zeros((2 ** 37,), "f32")  # body line
        tl.zeros((64,), "f32")  # after line
    msg = refused(body, mode="timing")
    line = next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith(where))
    assert msg.startswith(f"{at(line)}: this program's tensors take more than "
                          f"2**62 bytes"), msg


def test_tensor_ids_hold_tensors_per_pe_numbers_of_one_pe():
    # Why the bound below is 2**32: a PE's tensor ids are its base plus the tensor's number, and
    # the number's bits end where the PE's begin. Its last number is still its own; the next
    # is PE (1, 0)'s tensor 0.
    from kernbench.language import semantic
    n = semantic.TENSORS_PER_PE
    assert n == 2 ** 32
    base = semantic.id_base(7, 0, 0)
    assert semantic.id_owner(base + n - 1) == (7, 0, 0, n - 1)
    assert base + n == semantic.id_base(7, 1, 0)


@pytest.mark.parametrize("iterations, where, replay", [
    (2 ** 15, "# after tensor", "on"), (2 ** 15, "# after tensor", "off"),
    (2 ** 16, "# body tensor", "on"), (2 ** 16, "# body tensor", "off"),
    (2 ** 16, "# body tensor", "verify")])  # (verify traces every iteration, checking each)
def test_a_program_past_its_tensor_numbers_is_refused(iterations, where, replay, monkeypatch):
    # A PE makes at most semantic.TENSORS_PER_PE tensors (2**32; the test above says why). The
    # real bound takes a 32 GB tensor table to reach, so the builder reads it at its start and
    # this test lowers it to 2**15 (the builder needs a multiple of FLUSH_EVERY, 2**14). 2**16
    # iterations of one tensor: the iteration making tensor 2**15 is refused at its line, with
    # tl.range replay (which replays those before it and traces it) as without. 2**15: the loop
    # makes tensors 0..2**15 - 1, and the one after it is refused.
    from kernbench.language import semantic
    monkeypatch.setattr(semantic, "TENSORS_PER_PE", 2 ** 15)
    monkeypatch.setenv("KERNBENCH_REPLAY", replay)

    def body(tl, p):
        for _ in tl.range(iterations):
            tl.zeros((4,), "f32")  # body tensor
        tl.zeros((4,), "f32")  # after tensor

    msg = refused(body, mode="timing")
    line = next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith(where))
    assert msg.startswith(f"{at(line)}: this program makes more than 32,768 "
                          f"tensors (2**15): a tensor id keeps 15 bits"), msg


def test_functional_mode_counts_its_replay_records_against_the_hosts_memory(monkeypatch):
    # A review's case: functional mode keeps a replay record per command (813-832 bytes a
    # command measured in all), but the refusal counted 44, so a functional loop of 1e7 tiny
    # adds ran the host out of memory (a bare MemoryError from replay) long before tracing
    # refused it. With the host made 32 MiB: 32 + 768 + 12 = 812 bytes per command and tensor
    # refuse at the first check past 41,000 of them, 3 * 2**14 = 49,152 (the check runs every
    # 2**14 tensors); timing mode, 44 bytes each, traces all 2**17.
    from kernbench.language import builder
    monkeypatch.setattr(builder, "host_memory", lambda: 32 << 20)

    def body(tl, p):
        x = tl.zeros((4,), "f32")
        for _ in range(2 ** 17):
            x = x + 1.0  # (one command, one tensor)

    msg = refused(body, mode="functional")
    assert "this launch would hold 49,152 commands" in msg, msg
    assert "functional mode keeps each command's replay record too: use mode='timing'" in msg, msg
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    p = ctx.empty((4,), "f32")
    r = ctx.launch(lambda p, *, tl: body(tl, p), (1, 1), p, mode="timing")
    assert r.program.n_commands == 2 ** 17 + 1


@pytest.mark.parametrize("replay, where", [("on", "# the loop"), ("off", "# a tensor")])
def test_a_program_past_the_hosts_memory_is_refused_before_it_takes_it(replay, where, monkeypatch):
    # (a review's case: a tl.range of 5e9 iterations grew the host's memory by 0.6 GB/s.) The
    # launch's tables take at least 32 bytes per command and 12 per tensor
    # (builder.table_bytes); past the host's memory, tracing refuses the program. Here the
    # host is made 2 MiB: 2**22 iterations of one command and one tensor need 176 MiB. With
    # replay, at the tl.range line before replaying (iterations 0-2 are traced); traced in
    # full, at the tensor past 2 MiB / 44 bytes (the check runs every 2**14 tensors).
    from kernbench.language import builder
    monkeypatch.setattr(builder, "host_memory", lambda: 2 << 20)
    monkeypatch.setenv("KERNBENCH_REPLAY", replay)

    def body(tl, p):
        for _ in tl.range(2 ** 22):  # the loop
            tl.zeros((4,), "f32")  # a tensor

    msg = refused(body, mode="timing")
    line = next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith(where))
    assert msg.startswith(f"{at(line)}: "), msg
    assert "B, more than the 2.0 MiB of memory this process may take (docs/reliability.md)" in msg, msg
    if replay == "on":
        assert msg.split(": ", 1)[1].startswith("tl.range: replaying 4,194,300 more iterations "
                                                "of this loop, this launch would hold"), msg


def test_a_moving_body_counts_its_replayed_rows_against_the_hosts_memory(monkeypatch):
    """A breaker's reading: tl.range(..., shapes_move=True) writes its replayed iterations as
    rows, each its own (72 bytes a command more than a tiling's), but the host-memory check
    counted them at a tiling's rate. Here the host is made 2 MiB: 30,000 iterations of one load
    need 30,000 x (32 + 12) = 1.3 MB as a tiling and 30,000 x (32 + 12 + 72) = 3.5 MB as rows,
    so the loop is refused at its line before replay (it ran, before)."""
    from kernbench.common.pe_commands import COMMAND_DTYPE
    from kernbench.language import builder
    assert (builder.TABLE_BYTES_PER_COMMAND, builder.TABLE_BYTES_PER_TENSOR, COMMAND_DTYPE.itemsize) == (32, 12, 72)
    monkeypatch.setattr(builder, "host_memory", lambda: 2 << 20)
    monkeypatch.setenv("KERNBENCH_REPLAY", "on")

    def body(tl, p):
        for i in tl.range(30_000, shapes_move=True):  # the moving loop
            tl.load(p, shape=(2 + i,), dtype="f32")

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    p = ctx.empty((30_002,), "f32")
    with pytest.raises(KernelError) as e:
        ctx.launch(lambda p, *, tl: body(tl, p), (1, 1), p, mode="timing")
    msg = str(e.value)
    line = next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith("# the moving loop"))
    assert msg.startswith(f"PE (0, 0) at test_tl_hostile.py:{line} "), msg
    assert "): tl.range: replaying 29,996 more iterations of this loop" in msg, msg
    assert "more than the 2.0 MiB of memory this process may take" in msg, msg


def test_a_loop_of_stores_is_checked_against_the_hosts_memory_too(monkeypatch):
    """A review: commands that make no tensor (stores, sends) were moved into the store and
    checked against the host's memory only when a tensor was made, so a loop of stores grew
    the recorded rows without bound and failed with numpy's MemoryError (the kernel's own
    error, under ulimit). They are moved every 4 * 2**14 rows: 2 MiB of host refuses the
    store-only loop at its store (65,536 commands need 2 MiB + 4 MiB of rows)."""
    from kernbench.language import builder
    monkeypatch.setattr(builder, "host_memory", lambda: 2 << 20)

    def body(tl, p):
        x = tl.load(p, shape=(4,))
        for _ in range(2 ** 20):
            tl.store(p, x)  # a store

    msg = refused(body, mode="timing")
    line = next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith("# a store"))
    assert msg.startswith(f"{at(line)}: "), msg
    assert "more than the 2.0 MiB of memory this process may take" in msg, msg


@pytest.mark.parametrize("call", [
    lambda tl, x: tl.cast(x, x),  # a tensor as dtype
    lambda tl, x: tl.zeros((4,), np.int32(-7)),  # a numpy value, not a type
    lambda tl, x: tl.full((4,), 1.0, np.float16(3.0)),
])
def test_a_value_given_as_a_dtype_is_an_unknown_dtype(call):
    """A review: a tensor as dtype met numpy's ValueError about its .dtype (as the kernel's own
    error), and a numpy value was taken as its type. Each is an unknown dtype at its line
    (recv's: tests/test_errors_links.py)."""
    def body(tl, p):
        x = tl.load(p, shape=(4,))
        call(tl, x)

    msg = refused(body, mode="timing")
    assert ": unknown dtype " in msg and "expected one of f16, bf16, f32, fp8e4m3, fp8e5m2, int32" in msg, msg


def test_dtype_names_in_any_case_and_numpy_types_are_dtypes():
    seen = {}

    def body(tl, p):
        x = tl.load(p, shape=(4,))
        seen["F16"] = tl.cast(x, "F16").dtype
        seen["BFloat16"] = tl.zeros((4,), "BFloat16").dtype
        seen["np"] = tl.cast(x, np.float16).dtype
        seen["dtype"] = tl.cast(x, np.dtype("int32")).dtype

    run(body, mode="timing")
    assert seen == {"F16": "f16", "BFloat16": "bf16", "np": "f16", "dtype": "int32"}


@pytest.mark.parametrize("call, what", [
    (lambda tl: tl.range(0, "5"), "stop is str '5'"),
    (lambda tl: tl.range(0.5), "start is float 0.5"),
    (lambda tl: tl.range(0, 5, 0), "step is 0"),
    (lambda tl: tl.range(0, 5, "1"), "step is str '1'"),
    (lambda tl: tl.static_range(None), "start is NoneType None"),
    (lambda tl: tl.static_range(0, 4, 0), "step is 0"),
])
def test_range_bounds_are_checked_at_the_call(call, what):
    """A review: Python's range raised its own TypeError or ValueError, named as the kernel's."""
    def body(tl, p):
        call(tl)

    msg = refused(body, mode="timing")
    assert f"(start, stop, step): {what}; the bounds are ints (as range's), step not 0" in msg, msg


@pytest.mark.parametrize("mode", ["timing", "functional"])
@pytest.mark.parametrize("makes", ["a tensor", "nothing"])
def test_a_range_of_2_to_the_63_iterations_or_more_is_refused_at_its_line(mode, makes):
    """A review: len() of such a range is Python's OverflowError; a first fix computed the
    length and traced the loop for ever where it is traced in full (functional mode, a body
    that makes no tensor). Refused at the loop's line in every mode."""
    def body(tl, p):
        x = tl.load(p, shape=(4,))
        for _ in tl.range(-(2 ** 63) - 1, 6):  # a loop too long
            if makes == "a tensor":
                x = x + 1.0
            else:
                tl.store(p, x)

    msg = refused(body, mode=mode)
    line = next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith("# a loop too long"))
    assert msg.startswith(f"{at(line)}: tl.range(-9223372036854775809, 6, 1): 2**63 iterations or more"), msg


def test_a_loop_replay_refuses_for_memory_is_not_traced_in_full_by_verify(monkeypatch):
    """Verify mode (the suite's default) traces a PE again in full when replay raised; a loop
    replay refused for memory would take the host's memory first (a test reached 7.6 GB)
    before full tracing's own refusal: the refusal stands."""
    def body(tl, p):
        x = tl.load(p, shape=(4,))
        for _ in tl.range(2 ** 40):
            x = x + 1.0

    monkeypatch.setenv("KERNBENCH_REPLAY", "verify")
    msg = refused(body, mode="timing")
    assert ": tl.range: replaying " in msg and "memory this process may take" in msg, msg


@pytest.mark.parametrize("call, want", [
    (lambda tl: tl.range(10, step=3), [0, 3, 6, 9]),
    (lambda tl: tl.static_range(10, step=3), [0, 3, 6, 9]),
    (lambda tl: tl.range(2, 11, 4), [2, 6, 10]),
    (lambda tl: tl.range(4, step=None), [0, 1, 2, 3]),  # (Triton's: None is 1)
    (lambda tl: tl.static_range(1, 4, None), [1, 2, 3]),
    (lambda tl: [len(tl.range(10, step=3))], [4]),
])
def test_a_range_without_stop_keeps_its_step_as_tritons_does(call, want):
    """Triton's tl.range(10, step=3) counts 0, 3, 6, 9; the step was dropped (a review)."""
    def body(tl, p):
        return list(call(tl))

    assert run(body, mode="timing")[0] == want


def test_a_tensor_as_a_range_bound_is_named_once():
    def body(tl, p):
        x = tl.load(p, shape=(4,))
        tl.range(x)

    msg = refused(body, mode="timing")
    assert msg.count("PE (0, 0) at ") == 1 and "a tensor used as an index or size" in msg, msg


@pytest.mark.parametrize("a, b, match", [
    ((2 ** 19, 1), (1, 2 ** 19), r"its \(524288,524288\) result has 274,877,906,944 elements, more than "
                                 r"a tensor's 2\*\*37"),
    ((2 ** 17, 2 ** 17), (2 ** 17, 2 ** 17), r"2,251,799,813,685,248 multiply-adds \(M \* N \* K\), more "
                                             r"than one GEMM command's 2\*\*50")])
def test_a_dot_past_a_tensors_elements_or_the_engines_volume_is_refused_at_its_line(a, b, match):
    # (a reliability audit: a dot's result skipped the 2**37-element bound every other tensor
    # has, and M * N * K past 2**50 met the engine's check after tracing, a plain ValueError
    # without PE or line)
    def body(tl, p):
        x = tl.load(p, shape=a, dtype="fp8e4m3")
        y = tl.load(p, shape=b, dtype="fp8e4m3")
        tl.dot(x, y)  # the dot

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    big = ctx.empty((2 ** 34,), "fp8e4m3")

    def kernel(p, *, tl):
        body(tl, p)

    with pytest.raises(KernelError, match=r"PE \(0, 0\) at test_tl_hostile.py:\d+ \(in body.*: dot .*" + match):
        ctx.launch(kernel, (1, 1), big, mode="timing")


def test_traced_rows_count_against_the_hosts_memory_and_a_growth_that_cannot_map_is_refused(monkeypatch):
    # (a review: under ulimit -v 3 GB an unrolled kernel's 67M-row command table (72 bytes a
    # row) ran into "kernel k raised MemoryError" while the bound, 32 bytes a command, allowed
    # 94M.) A traced command is counted with its row: 32 + 72 bytes, and 12 a tensor, so with
    # 3 MiB the flush at tensor 2**15 (32,768 commands and tensors: 3.8 MiB) refuses, where
    # without the rows (1.4 MiB) it passed.
    from kernbench._core import pages
    from kernbench.language import builder
    assert builder.table_bytes(10, 4, literal=10) == 10 * 32 + 4 * 12 + 10 * 72
    monkeypatch.setattr(builder, "host_memory", lambda: 3 << 20)

    def body(tl, p):
        for _ in range(2 ** 16):
            tl.zeros((4,), "f32")  # an unrolled tensor

    msg = refused(body, mode="timing")
    line = next(i + 1 for i, s in enumerate(open(__file__).read().splitlines()) if s.endswith("# an unrolled tensor"))
    assert msg.startswith(f"{at(line)}: this launch would hold 32,768 commands and this PE 32,768 tensors: "
                          f"their tables take at least 3.6 MiB, more than the 3.0 MiB"), msg
    # a growth of the rows that cannot be mapped (an address-space limit counts what it
    # reserves) is refused at the same line, not raised as the kernel's MemoryError
    monkeypatch.setattr(builder, "host_memory", lambda: 1 << 40)
    empty = pages.empty

    def tight(n, dtype, sparse=False):
        if n > 2 ** 14:
            raise MemoryError(f"kernbench: cannot map {n * 72:,} bytes")
        return empty(n, dtype, sparse)

    monkeypatch.setattr(pages, "empty", tight)
    msg = refused(body, mode="timing")
    assert msg.startswith(f"{at(line)}: this launch's command tables could not grow past 16,384 "
                          f"commands (kernbench: cannot map"), msg


def test_the_memory_a_launch_may_take_follows_ulimit(tmp_path):
    # A review ran its cases under `ulimit -v 8000000`: the refusals compared with the host's
    # 23 GiB, so the limit's bare MemoryError came first. builder.host_memory now takes the
    # smaller of the host's memory and the address-space limit (and a cgroup's memory.max).
    import subprocess
    code = ("import resource; from kernbench.language import builder as b; "
            "lim = 6 << 30; resource.setrlimit(resource.RLIMIT_AS, (lim, resource.getrlimit(resource.RLIMIT_AS)[1])); "
            "print(b.host_memory() == min(lim, b.os.sysconf('SC_PAGE_SIZE') * b.os.sysconf('SC_PHYS_PAGES')), "
            "b.value_budget() == b.host_memory() // 8)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["True", "True"], out.stderr


# -- a refused call records nothing (docs/reliability.md, sections 1-2) ------------------------
# A kernel that catches a tl call's KernelError and carries on gives the launch it gives without
# that call: cycles, commands, counters, values. A review found calls that checked after they
# had recorded a command (tl.sum(x, axis=bad, dtype=...) its cast; a shift count or divisor
# known while tracing its shl or //; a tensor tl.cdiv by a known zero its add), and a tl.load
# that counted its tensor before interning its site, which an exception can interrupt.

def _fingerprint(ctx, r, out):
    """What a launch gave, to compare two launches: every command, cycles, counters, values."""
    p = r.program
    d = {"cycles": r.cycles, "n": p.n_commands, "labels": [r.label(j) for j in range(p.n_commands)],
         "commands": p.commands.tobytes(), "flops": r.flops,
         "unit": np.ascontiguousarray(r.unit_counters).tobytes(),
         "link": np.ascontiguousarray(r.link_counters).tobytes(),
         "sram": np.ascontiguousarray(r.peak_sram).tobytes()}
    if r.mode == "functional":
        d["out"] = ctx.read_all(out).tobytes()
    return d


def _launch_both(body, mode, links=False):
    """(the launch of a kernel calling ``body(tl, t)`` and catching its KernelError, the same
    kernel without the call, what it caught: the KernelError's message or None): fingerprints
    of the two launches. ``t`` holds the tensors both make first (known ones among them)."""
    caught = []

    def launch(refuse):
        ctx = kernbench.Context("default", overrides=HW if links else {"n_cubes": 1, "pes_per_cube": 1})
        if links:
            ctx.install_sfr("pe", ring=True)
        x = ctx.replicate(np.arange(8, dtype=np.float32) - 3, name="x")
        y = ctx.replicate(np.ones((8, 8), np.float32), name="y")
        o = ctx.empty((8,), "f32", name="o")

        def kernel(x_ptr, y_ptr, o_ptr, *, tl):
            a = tl.load(x_ptr, shape=(8,), dtype="f32")
            r = tl.arange(0, 8)
            t = {"a": a, "i": tl.cast(a, "int32"), "m": a > 0, "x": x_ptr, "o": o_ptr,
                 "y": tl.load(y_ptr, shape=(8, 8), dtype="f32"), "r": r, "r40": r + 40,
                 "r-1": r - 1, "z": tl.zeros((8,), "int32"), "z84": tl.zeros((8, 4), "f32"),
                 "z3": tl.zeros((3,), "f32"), "all": r >= 0}
            t["yi"] = tl.cast(t["y"], "int32")
            if refuse:
                try:
                    body(tl, t)
                except KernelError as e:
                    caught.append(str(e))
                else:
                    caught.append(None)
            tl.store(o_ptr, tl.exp(a) + t["i"])

        r = ctx.launch(kernel, (HW["pes_per_cube"], 1) if links else (1, 1), x, y, o, mode=mode)
        return _fingerprint(ctx, r, o)

    ref = launch(False)
    got = launch(True)
    return got, ref, caught


_REFUSALS = {
    # a reduction's dtype= cast, then the reduction's own checks
    "sum axis out of range, dtype=": lambda tl, t: tl.sum(t["a"], axis=3, dtype="f16"),
    "sum axis not an int, dtype=": lambda tl, t: tl.sum(t["a"], axis=0.5, dtype="f16"),
    "sum bad dtype=": lambda tl, t: tl.sum(t["a"], axis=0, dtype="f64"),
    "sum keep_dims=False, dtype=": lambda tl, t: tl.sum(t["a"], keep_dims=False, dtype="f16"),
    "max axis out of range": lambda tl, t: tl.max(t["a"], axis=1),
    # a right operand known while tracing (checked by the builder: _fold ran after the push)
    "shift count of an arange": lambda tl, t: t["i"] << t["r40"],
    "shift count negative": lambda tl, t: t["i"] >> t["r-1"],
    "// by a zero fill": lambda tl, t: t["i"] // t["z"],
    "% by an arange from 0": lambda tl, t: t["i"] % t["r"],
    "// by a number 0": lambda tl, t: t["i"] // 0,
    "<< by a number 32": lambda tl, t: t["i"] << 32,
    # tl.cdiv of tensors: an add (and a sub) then a //
    "cdiv tensors by a known zero": lambda tl, t: tl.cdiv(t["i"], t["z"]),
    "cdiv int by a known zero": lambda tl, t: tl.cdiv(5, t["z"]),
    "cdiv float tensor": lambda tl, t: tl.cdiv(t["a"], 2),
    # calls of several commands or options: every check before the first
    "dot acc of the wrong shape": lambda tl, t: tl.dot(t["y"], t["y"], acc=t["z84"]),
    "dot int32": lambda tl, t: tl.dot(t["yi"], t["y"]),
    "softmax of int32": lambda tl, t: tl.softmax(t["i"]),
    "softmax axis out of range": lambda tl, t: tl.softmax(t["a"], axis=2),
    "pow int32 negative": lambda tl, t: t["i"] ** -2,
    "where shapes": lambda tl, t: tl.where(t["m"], t["a"], t["z3"]),
    "where other operand": lambda tl, t: tl.where(t["m"], t["a"], "x"),
    "broadcast_to": lambda tl, t: tl.broadcast_to(t["a"], (3, 7)),
    "cast to bool": lambda tl, t: tl.cast(t["a"], "bool"),
    "cast bitcast": lambda tl, t: tl.cast(t["a"], "f16", bitcast=True),
    "maximum propagate_nan NONE": lambda tl, t: tl.maximum(t["a"], 1.0, propagate_nan=tl.PropagateNan.NONE),
    # loads and stores: a mask, other=, a known mask out of bounds, the region
    "load other of the wrong shape": lambda tl, t: tl.load(t["x"], shape=(8,), mask=t["m"], other=t["y"]),
    "load other without mask": lambda tl, t: tl.load(t["x"], shape=(8,), other=1.0),
    "load mask not bool": lambda tl, t: tl.load(t["x"], shape=(8,), mask=t["i"]),
    "load known mask out of bounds": lambda tl, t: tl.load(t["x"] + 16, shape=(8,), mask=t["all"]),
    "load past the array": lambda tl, t: tl.load(t["x"] + 4, shape=(8,)),
    "store of the wrong shape": lambda tl, t: tl.store(t["o"], t["y"]),
    "store mask not bool": lambda tl, t: tl.store(t["o"], t["a"], mask=t["i"]),
    "store known mask out of bounds": lambda tl, t: tl.store(t["o"] + 8, t["a"], mask=t["all"]),
    "send on a port with no neighbour": lambda tl, t: tl.send("N", t["a"]),
    "recv bad dtype": lambda tl, t: tl.recv("E", (8,), "f64"),
}


@pytest.mark.parametrize("mode", ["timing", "functional"])
@pytest.mark.parametrize("case", list(_REFUSALS))
def test_a_refused_call_records_nothing(case, mode):
    got, ref, caught = _launch_both(_REFUSALS[case], mode)
    assert caught and caught[0] is not None and caught[0].startswith("PE (0, 0) at "), caught
    assert got == ref, (caught, [k for k in ref if got[k] != ref[k]], got["labels"], ref["labels"])


def test_a_known_shift_count_refused_and_caught_is_not_replayed():
    """The review's functional case: the refused shl stayed and replay raised its error again,
    which the kernel had handled, failing the launch."""
    got, ref, caught = _launch_both(_REFUSALS["shift count of an arange"], "functional")
    assert "shift count 40 is outside 0..31" in caught[0], caught
    assert got == ref


class _Injected(Exception):
    pass


def _raise_in_site_add(frame, event, arg):
    # an exception as a new site is interned (sites.SiteTable.add, plain Python): a stand-in
    # for a RecursionError caught by the kernel at the wrong depth
    if event == "call" and frame.f_code.co_name == "add" and frame.f_code.co_filename.endswith("sites.py"):
        raise _Injected


_NEW_SITES = {
    "load": lambda tl, t: tl.load(t["x"], shape=(4,), dtype="f32"),
    "masked load": lambda tl, t: tl.load(t["x"], shape=(8,), mask=t["m"], other=t["a"]),
    "store": lambda tl, t: tl.store(t["o"], t["a"]),
    "vec": lambda tl, t: t["a"] * t["a"],
    "reduce": lambda tl, t: tl.max(t["y"], axis=0),
    "dot": lambda tl, t: tl.dot(t["y"], t["y"]),
    "send": lambda tl, t: tl.send("E", t["a"]),
    "recv": lambda tl, t: tl.recv("E", (8,), "f32"),
}


@pytest.mark.parametrize("mode", ["timing", "functional"])
@pytest.mark.parametrize("call", list(_NEW_SITES))
def test_an_exception_as_a_call_interns_its_site_records_nothing(call, mode):
    """A review: tl.load counted its tensor, then interned its site, which raised (a
    RecursionError the kernel caught at the wrong depth, or a trace function): the launch died
    in _assemble with a bare AssertionError, no PE, no line. Every call now does what can raise
    first, then records its tensor and command: the launch equals one without the call."""
    def body(tl, t):
        call_it = _NEW_SITES[call]
        sys.settrace(_raise_in_site_add)
        try:
            call_it(tl, t)
        except _Injected:
            pass
        finally:
            sys.settrace(None)

    links = call in ("send", "recv")
    got, ref, caught = _launch_both(body, mode, links=links)
    assert caught == ([None] * HW["pes_per_cube"] if links else [None])
    assert got == ref, ([k for k in ref if got[k] != ref[k]], got["labels"], ref["labels"])
