"""tl.range loop-body replay (issue 12, item 1): exactly the launch full tracing gives, for
hand-written and generated loop kernels within the contract; verify mode catches kernels
outside it; a bad access in a skipped iteration is reported at that iteration."""
import re
import sys
import types
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from replay_helpers import assert_same_launch

from kernbench.common.errors import KernelError, ReplayContractError, ReplayWarning
from kernbench.language import loops, store
from kernbench.language.semantic import id_owner
from kernbench.runtime.context import Context

T = 8  # tile side
F32 = 4


def _ctx():
    ctx = Context("default")
    ctx.install_sfr(scope="pe")
    return ctx


def _launch(kernel, args_of, replay, grid=(2, 1), **kw):
    ctx = _ctx()
    args = args_of(ctx)
    return ctx.launch(kernel, grid, *args, mode="timing", replay=replay, record_events=True, **kw)


def _exact(kernel, args_of, grid=(2, 1)):
    off = _launch(kernel, args_of, "off", grid)
    on = _launch(kernel, args_of, "on", grid)
    assert_same_launch(off, on)
    _launch(kernel, args_of, "verify", grid)  # within the contract: no complaint
    return off, on


def _same_error(kernel, args_of, grid=(1, 1)) -> KernelError:
    """Replay on raises the error full tracing raises: its message and its line."""
    with pytest.raises(KernelError) as off:
        _launch(kernel, args_of, "off", grid)
    with pytest.raises(KernelError) as on:
        _launch(kernel, args_of, "on", grid)
    assert str(on.value) == str(off.value) and on.value.where == off.value.where
    return on.value


# -- hand-written kernels ------------------------------------------------------------------------
RUNS = []


def flash_like(x_ptr, o_ptr, n, last=False, *, tl):
    acc = tl.zeros((T, T), "f32")
    m = tl.full((T, 1), -1e9, "f32")
    for i in tl.range(0, n, replay_last=last):  # (last: replayed too, not traced)
        RUNS.append(i)
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        s = tl.dot(x, tl.trans(x))
        m2 = tl.maximum(m, tl.max(s, axis=1))
        p = tl.exp(s - m2)
        acc = tl.dot(p, x, acc=acc * tl.exp(m - m2))
        m = m2
    tl.store(o_ptr, acc)
    tl.store(o_ptr, p)  # a handle of the last iteration, after the loop


def _flash_args(n, last=False):
    return lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n, last)


@pytest.mark.parametrize("n", [1, 4, 5, 6, 13, 50])
def test_flash_like_exact(n):
    _exact(flash_like, _flash_args(n))


def sibling_nests(x_ptr, o_ptr, K, *, tl):
    acc = tl.zeros((T, T), "f32")
    for k in range(K):  # nests one after the other, each three tl.range loops deep
        for g in tl.range(0, 6):
            for i in tl.range(0, 5):
                for j in tl.range(0, 6):
                    x = tl.load(x_ptr + (((k * 6 + g) * 5 + i) * 6 + j) * T * T * F32, shape=(T, T))
                    acc = acc + x
    tl.store(o_ptr, acc)


def _sibling_args(K):
    return lambda ctx: (ctx.empty((K * 180 * T, T), "f32"), ctx.empty((T, T), "f32"), K)


def test_sibling_nests_exact_and_each_proof_reads_its_own_nest(monkeypatch):
    """Nests one after the other replay exactly (against full tracing, and in verify mode),
    and a loop's proof reads back the rows of its own nest: the reader it builds holds the same
    number of tilings whatever the nests before it. (It held every tiling of the program, and
    found a traced range by scanning every one before it: tracing grew as the square of the
    nests, bench/test_range_replay.py.)"""
    _exact(sibling_nests, _sibling_args(3))
    real = store._replay
    held = []

    def counting(n, bounds, literal, tiles):
        held.append((n, len(tiles)))
        return real.CommandSource(n, bounds, literal, tiles)

    spy = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
    spy.CommandSource = counting
    monkeypatch.setattr(store, "_replay", spy)
    most = []
    for K in (3, 12):
        held.clear()
        r = _launch(sibling_nests, _sibling_args(K), "on", grid=(1, 1))
        proofs = [t for n, t in held if n < r.program.n_commands]  # (not the launch's own reader)
        assert proofs, "no proof read tiled rows back"
        most.append(max(proofs))
    assert most[0] == most[1], most


def _checked_readers(monkeypatch) -> list:
    """Make every proof's reader (TraceStore._reader, from the lowest row its rows need) read
    its rows as a reader of the whole program would, bit for bit; returns the list of checked
    calls, each whether its reader holds tilings."""
    real = store.TraceStore._reader
    seen = []

    def checked(self, a, z):
        src, at = real(self, a, z)
        start, b0, i0 = self._program
        whole = self._program_source(start, b0, i0).rows(a - start, z - start)
        assert src.rows(a - at, z - at).tobytes() == whole.tobytes(), (a, z, at)
        seen.append(bool((src.segments[:, 2] >= 0).any()))  # (read through tilings?)
        return src, at

    monkeypatch.setattr(store.TraceStore, "_reader", checked)
    monkeypatch.setattr(store.TraceStore, "_pending_rows", lambda self, a, z: None)  # (all read)
    return seen


def test_proof_readers_read_what_the_whole_program_reader_reads(monkeypatch):
    """The bounded reader on the shipped prefill kernel (nested tl.range loops in a generator
    consumed between yields), on nests one after the other and on generated loop kernels:
    every read the rows a whole-program reader gives, with every proof sent through it."""
    from attention_helpers import small_spec, with_mode
    from kernbench.diag import run_panel
    from kernbench.hw import load_hw
    seen = _checked_readers(monkeypatch)
    spec = with_mode(small_spec("prefill", 4, 2, 0, h_kv=6, rows=32, block=4), "timing")  # 8 phases
    assert run_panel(spec, load_hw("mesh8")).passed
    assert any(seen), "the prefill kernel's proofs read no tiled rows"
    seen.clear()
    _launch(sibling_nests, _sibling_args(3), "on")
    assert any(seen)
    for case in [([("add", 0), ("carry", 1)], 0, 1, 6, 1, 1), ([("carry", 0), ("view", 0)], 1, 2, 7, 0, 2)]:
        k, args = make_loop_kernel(*case)
        _launch(k, args, "on")
    assert len(seen) > 20


def test_replay_skips_the_body():
    RUNS.clear()
    _launch(flash_like, _flash_args(50), "on")
    # per PE: iterations 0, 1, 2 and the last
    assert RUNS == [0, 1, 2, 49] * 2
    RUNS.clear()
    _launch(flash_like, _flash_args(50), "off")
    assert RUNS == list(range(50)) * 2


def lagged(x_ptr, o_ptr, n, lag, *, tl):
    """Each load waits for the sum made ``lag`` iterations before (a software pipeline's gate:
    the prefill kernel's recvs wait two folds back, and a step of its line makes two folds)."""
    made = [tl.zeros((T, T), "f32")] * lag
    for i in tl.range(0, n):
        RUNS.append(i)
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T), after=made[-lag])
        made = made[1:] + [x + made[-1]]
    for y in made:
        tl.store(o_ptr, y)  # every kept handle names its own iteration's tensor after the loop


@pytest.mark.parametrize("n", [5, 6, 7, 30])
@pytest.mark.parametrize("lag", [1, 2])
def test_a_body_reading_two_iterations_back_replays(n, lag):
    """Iteration 1 reads a tensor from before the loop where iteration 2 reads iteration 0's:
    2 is not 1 moved on, so iterations 2 and 3 prove the repetition (one more traced, when a
    replayed iteration is left after them). The launch is full tracing's."""
    args = lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n, lag)  # noqa: E731
    _exact(lagged, args)
    RUNS.clear()
    _launch(lagged, args, "on", grid=(1, 1))
    # (two back: iteration 1 reads the window's first value, from before the loop, where 2 reads
    # iteration 0's, so the iteration before A is A moved back from A = 3: B = 4)
    probes = loops.PROBES if lag == 1 else loops.PROBES + 2
    assert RUNS == (list(range(n)) if n < probes + 2 else [*range(probes), n - 1])


def test_a_body_reading_three_iterations_back_is_caught():
    """Outside the contract: iterations 1 and 2 both read the tensor from before the loop that
    iteration 3 no longer reads, so the proof passes and replay would be wrong; verify mode
    names the iteration."""
    args = lambda ctx: (ctx.empty((9 * T, T), "f32"), ctx.empty((T, T), "f32"), 9, 3)  # noqa: E731
    with pytest.raises(KernelError, match=r"iteration 3 \(index 3\) does not repeat the loop body"):
        _launch(lagged, args, "verify")


def ragged(x_ptr, o_ptr, N, B, *, tl):
    """Blocks of B over N elements; the last is masked (ragged) and traced for real."""
    total = tl.zeros((B,), "f32")
    for i in tl.range(0, (N + B - 1) // B):
        offs = i * B + tl.arange(0, B)
        x = tl.load(x_ptr + i * B * F32, shape=(B,), mask=offs < N, other=0.0)
        total = total + x * 2.0
        tl.store(o_ptr + i * B * F32, x, mask=offs < N)
    tl.store(o_ptr, total)


@pytest.mark.parametrize("N", [64, 70, 100, 127])
def test_ragged_tail_exact(N):
    B = 8
    _exact(ragged, lambda ctx: (ctx.empty((N,), "f32"), ctx.empty((N,), "f32"), N, B))


def ring_body(x_ptr, o_ptr, n, *, tl):
    """Sends and receives in the body (an open line of 2 PEs), a pinned tile, after=, a first
    iteration that differs, a loop-carried value two ways, nested tl.range."""
    pe = tl.program_id(0)
    w = tl.load(x_ptr, shape=(T, T), pinned=True)
    acc = tl.zeros((T, T), "f32")
    prev = acc
    for i in tl.range(1, 2 * n + 1, 2):
        if i == 1:
            acc = acc + 1.0  # the first iteration may differ: it is traced
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T), after=acc)
        if pe == 0:
            tl.send(dir="E", src=x)
            y = x
        else:
            y = tl.recv(dir="W", shape=(T, T), dtype="f32")
        for j in tl.range(0, 6):
            y = y + tl.load(x_ptr + j * T * F32, shape=(T,))[None, :]
        prev, acc = acc, tl.dot(y, w, acc=acc)
    tl.store(o_ptr, acc - prev)


@pytest.mark.parametrize("n", [3, 6, 9, 20])
def test_messages_nested_pinned_exact(n):
    _exact(ring_body, lambda ctx: (ctx.empty(((2 * n + 2) * T, T), "f32"), ctx.empty((T, T), "f32"), n))


def test_functional_mode_traces_every_iteration():
    RUNS.clear()
    ctx = _ctx()
    n = 9
    x = ctx.put(np.random.default_rng(0).standard_normal((n * T, T)).astype(np.float32) * 0.1, (0, 0))
    o = ctx.empty((T, T), "f32")
    ctx.launch(flash_like, (1, 1), x, o, n, mode="functional")
    assert RUNS == list(range(n))


def test_replay_mode_checked(monkeypatch):
    with pytest.raises(ValueError, match="replay must be one of"):
        _launch(flash_like, _flash_args(5), "sometimes")
    monkeypatch.setenv("KERNBENCH_REPLAY", "yes")  # the message names where the mode came from
    with pytest.raises(ValueError, match="the environment variable KERNBENCH_REPLAY must be one of"):
        _launch(flash_like, _flash_args(5), None)
    with pytest.raises(ValueError, match="replay must be one of"):
        _launch(flash_like, _flash_args(5), b"on")
    # (a review: a numpy str_, as a sweep's axis of an array gives it, raised Cython's TypeError)
    assert _launch(flash_like, _flash_args(5), np.str_("off")).cycles == _launch(
        flash_like, _flash_args(5), "off").cycles


# -- errors in skipped iterations ----------------------------------------------------------------
SEEN = []


def overrun(x_ptr, n, *, tl):
    for i in tl.range(0, n):
        SEEN.append(i)
        tl.load(x_ptr + i * T * F32, shape=(T,))


@pytest.mark.parametrize("replay", ["on", "off", "verify"])
def test_bad_load_reported_at_its_iteration(replay):
    """97 blocks allocated, 100 iterations: the load of iteration 97 leaves the allocation; the
    error names PE (0, 0) and the load's line, raised while iteration 97 is traced."""
    SEEN.clear()
    with pytest.raises(KernelError) as e:
        _launch(overrun, lambda ctx: (ctx.empty((97 * T,), "f32"), 100), replay, grid=(1, 1))
    assert SEEN[-1] == 97
    assert "PE (0, 0)" in str(e.value) and "outside" in str(e.value)
    assert e.value.where.endswith(f":{overrun.__code__.co_firstlineno + 3}")
    if replay == "on":
        assert SEEN == [0, 1, 2, 97]


def running_width(x_ptr, o_ptr, n, *, tl):
    """A Python counter carried across iterations sets the last block's width: replayed
    iterations would not count it down, so the last traced one would load past x. An int
    local of the kernel's, stepped by a constant: replay steps it."""
    acc = tl.zeros((T, 1), "f32")
    rem = n * T - 3
    for i in tl.range(0, n):
        w = min(T, rem)
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(T, w), stride=n * T - 3), axis=1)
        rem -= T
    tl.store(o_ptr, acc)


#: state no variable of a loop's frame holds (a helper's module keeps it): replay's check of the
#: loop's variables does not see it, so these kernels stay outside the contract for verify
_HIDDEN = types.SimpleNamespace()


def _tally():
    return _HIDDEN


def hidden_running_width(x_ptr, o_ptr, n, *, tl):
    """running_width's count held where no variable of the loop's frame is: not found."""
    acc = tl.zeros((T, 1), "f32")
    _tally().rem = n * T - 3
    for i in tl.range(0, n):
        w = min(T, _tally().rem)
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(T, w), stride=n * T - 3), axis=1)
        _tally().rem -= T
    tl.store(o_ptr, acc)


def test_a_running_width_in_a_variable_is_stepped_by_replay():
    # (the loop's variables read before assigned are compared across the iterations proving
    # it; `rem -= T` moves the last block's width, which replay left at B's: the loop was
    # traced in full. An int local stepped by a constant is now set by replay, 3 of 8 wide in
    # the last iteration as full tracing has it)
    n = 10
    args = lambda ctx: (ctx.empty((T, n * T - 3), "f32"), ctx.empty((T, 1), "f32"), n)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayWarning)
        on = _launch(running_width, args, "on", grid=(1, 1))
        _launch(running_width, args, "verify", grid=(1, 1))
    off = _launch(running_width, args, "off", grid=(1, 1))
    assert_same_launch(off, on)
    assert on.program.compact is not None  # (replayed)
    assert on.label(on.program.n_commands - 2) == off.label(off.program.n_commands - 2)


def counted_assert(x_ptr, n, *, tl):
    for k, i in enumerate(tl.range(0, n)):
        assert k == i, f"{k} != {i}"  # (replay skips the Python of iterations 3 .. n - 2)
        tl.load(x_ptr + i * T * F32, shape=(T,))


def test_an_error_after_replayed_iterations_notes_replay_and_verify_names_its_cause():
    # (a review: Triton's running-width loop raised "load ... runs outside allocation" with
    # replay on, fine with it off, with no word of replay. The message stays full tracing's
    # kind; a note, shown with the traceback, says iterations were replayed and what tells)
    n = 10
    running_width = hidden_running_width
    args = lambda ctx: (ctx.empty((T, n * T - 3), "f32"), ctx.empty((T, 1), "f32"), n)  # noqa: E731
    assert _launch(running_width, args, "off", grid=(1, 1)).cycles > 0
    with pytest.raises(KernelError, match=r"^PE \(0, 0\) at test_tl_range.py:\d+: load of \(8,8\) f32 .* "
                                          r"runs outside allocation") as e:
        _launch(running_width, args, "on", grid=(1, 1))
    assert e.value.where.endswith(f":{running_width.__code__.co_firstlineno + 6}")
    assert any("tl.range iterations were replayed on this PE before this error" in n and
               "replay='verify' tells" in n for n in getattr(e.value, "__notes__", []))
    with pytest.raises(KernelError, match=r"tl.range replay \(verify mode\) raised an error full tracing "
                                          r"does not"):
        _launch(running_width, args, "verify", grid=(1, 1))
    # a Python error (the kernel's own assert on a count) has the note too (a review: only
    # kernbench's errors had it)
    with pytest.raises(KernelError, match=r"raised AssertionError .*: 3 != 9") as e:
        _launch(counted_assert, lambda ctx: (ctx.empty((n * T,), "f32"), n), "on", grid=(1, 1))
    assert any("tl.range iterations were replayed on this PE" in n for n in e.value.__notes__)
    assert _launch(counted_assert, lambda ctx: (ctx.empty((n * T,), "f32"), n), "off", grid=(1, 1)).cycles
    # an error with no replay before it has no note
    SEEN.clear()
    with pytest.raises(KernelError) as e:
        _launch(overrun, lambda ctx: (ctx.empty((2 * T,), "f32"), 100), "on", grid=(1, 1))
    assert not getattr(e.value, "__notes__", None)


# -- Python state that replay can see: the loop traced in full ----------------------------------
def advanced_pointer(x_ptr, o_ptr, n, *, tl):
    """Triton's idiom: the pointer advanced by the body (`a_ptrs += BLOCK_K`)."""
    acc = tl.zeros((T,), "f32")
    p = x_ptr
    for _ in tl.range(0, n):
        acc = acc + tl.load(p, shape=(T,))
        p += T * F32
    tl.store(o_ptr, acc)


def enumerated(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T,), "f32")
    for j, _ in enumerate(tl.range(0, n)):
        acc = acc + tl.load(x_ptr + j * T * F32, shape=(T,))
    tl.store(o_ptr, acc)


def counted(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T,), "f32")
    j = 0
    for _ in tl.range(0, n):
        acc = acc + tl.load(x_ptr + j * T * F32, shape=(T,))
        j += 1
    tl.store(o_ptr, acc)


def _blocks(blocks, n):
    return lambda ctx: (ctx.empty((blocks * T,), "f32"), ctx.empty((T,), "f32"), n)


@pytest.mark.parametrize("kernel", [advanced_pointer, enumerated, counted])
def test_a_body_counting_its_iterations_is_exact(kernel):
    """(A review's case.) A body whose addresses come from a Python count of the iterations run
    (the pointer advanced with `+=`, enumerate, a counter) puts the iteration traced after the
    replayed ones where iteration 3 would be, not on the loop's line: a load past the array in
    the last iteration was missed, the launch succeeding. That iteration is now checked; off its
    line, the launch is traced again with the loop traced in full (exact, with a warning).
    An int local the body steps (`p += BLOCK`, `j += 1`) is stepped by replay: replayed."""
    line = kernel.__code__.co_firstlineno + {advanced_pointer: 4, enumerated: 2, counted: 3}[kernel]  # the loop's
    # in bounds: 10 blocks, 10 iterations
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", ReplayWarning)
        on = _launch(kernel, _blocks(10, 10), "on", grid=(1, 1))
    assert_same_launch(_launch(kernel, _blocks(10, 10), "off", grid=(1, 1)), on)
    if kernel is enumerated:  # (enumerate's count is no variable of the kernel's: the last
        # iteration is found off its line, and the launch traced again)
        (msg,) = [str(x.message) for x in w]
        assert msg.startswith(f"PE (0, 0) at test_tl_range.py:{line}: tl.range: iteration 9 (index 9), ")
        assert "a load or store of 'a0' reads element 24" in msg and "not element 72" in msg
        assert "`ptr + i * BLOCK`" in msg
    else:  # an int variable the body reads before assigning it, stepped by a constant: replay
        # sets it to the value full tracing has at the iteration it traces after the replayed
        assert not w and on.program.compact is not None
    # 11 iterations (the last leaves the array) and 15 (replay stops before iteration 10, a
    # middle one, which its Python puts off the line): full tracing's error, at its iteration
    # (the error is the launch's outcome: no warning besides)
    for n in (11, 15):
        on = _same_error(kernel, _blocks(10, n))
        assert "outside every device allocation" in str(on)
    # verify mode traces every iteration itself: no warning, full tracing's error
    with pytest.raises(KernelError, match="outside every device allocation"):
        _launch(kernel, _blocks(10, 11), "verify", grid=(1, 1))


def counting_with_moving_shapes(x_ptr, k_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T,), "f32")
    p = x_ptr
    for i in tl.range(0, n, shapes_move=True):
        acc = acc + tl.sum(tl.load(k_ptr, shape=(4 + 4 * i, T)), axis=0) + tl.load(p, shape=(T,))
        p += T * F32
    tl.store(o_ptr, acc)


def test_a_body_counting_its_iterations_with_shapes_moving_is_traced_in_full():
    """(A breaker's case.) A count in a loop whose shapes move (shapes_move=True): the load past
    the array in the last iteration was missed with replay on. Full tracing's error now, as
    replay='off' and verify give it."""
    kernel = counting_with_moving_shapes
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((100 * T, T), "f32"),  # noqa: E731
                        ctx.empty((T,), "f32"), 11)
    on = _same_error(kernel, args)
    assert "outside every device allocation" in str(on)


def clamped_prefetch(x_ptr, o_ptr, n, *, tl):
    """Within the contract: the last iteration prefetches its own block again (no next one)."""
    acc = tl.zeros((T,), "f32")
    cur = tl.load(x_ptr, shape=(T,))
    for i in tl.range(0, n):
        nxt = tl.load(x_ptr + min(i + 1, n - 1) * T * F32, shape=(T,))
        acc = acc + tl.exp(cur)
        cur = nxt
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("n", [5, 6, 9])
def test_a_last_iteration_where_the_next_one_would_be_is_exact_without_a_warning(n):
    """(A breaker's case.) After one replayed iteration (n = 5) the place of the iteration after
    B is the next one's, where a last iteration clamping its prefetch loads too: the launch is
    traced again, exact, but it is not called a counter (the suite makes a ReplayWarning an
    error)."""
    args = lambda ctx: (ctx.empty((n * T,), "f32"), ctx.empty((T,), "f32"), n)  # noqa: E731
    assert_same_launch(_launch(clamped_prefetch, args, "off", grid=(1, 1)),
                       _launch(clamped_prefetch, args, "on", grid=(1, 1)))
    _launch(clamped_prefetch, args, "verify", grid=(1, 1))


FREED = []


def frees_then_counts(x_ptr, o_ptr, n, *, tl):
    ctx = FREED[0]
    if tl.program_id(0) == 0:
        ctx.free(FREED[1])  # (a side effect the trace makes twice when it traces again)
    enumerated(x_ptr, o_ptr, n, tl=tl)  # (enumerate's count: found off the line, traced again)


def test_an_error_of_the_trace_made_again_says_so():
    """(A breaker's case.) The launch traced again runs the kernel's Python again from its
    first PE: a ctx.free in the kernel frees twice. The error says the launch was traced
    again, and why."""
    ctx = _ctx()
    FREED[:] = [ctx, ctx.empty((T,), "f32")]
    with pytest.raises(Exception, match="not a live allocation") as e:  # (the error alone: no warning)
        ctx.launch(frees_then_counts, (1, 1), ctx.empty((10 * T,), "f32"), ctx.empty((T,), "f32"), 10,
                   mode="timing", replay="on")
    assert any("raised while the launch was traced again, from its first PE, with the tl.range loop "
               "at test_tl_range.py:" in n for n in e.value.__notes__)
    FREED.clear()


def kept_cols(x_ptr, y_ptr, N, B, last, read, *, tl):
    """Triton's layer-norm loop: `cols` stays bound after the loop (Python's scoping); ``read``:
    a mask made of it after the loop; ``last``: replay_last (then `cols` names a replayed
    tensor after the loop, not the traced last iteration's)."""
    acc = tl.zeros((B,), "f32")
    for off in tl.range(0, N, B, replay_last=last):
        cols = off + tl.arange(0, B)
        acc += tl.load(x_ptr + 4 * off, shape=(B,), mask=cols < N, other=0.)
    if read:
        tl.store(y_ptr, acc, mask=cols < N - 4)
    else:
        tl.store(y_ptr, acc)


def _count_traces(monkeypatch):
    from kernbench.runtime import executor
    calls = []
    real = executor._trace

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(executor, "_trace", counted)
    return calls


@pytest.mark.parametrize("last,read", [(False, False), (False, True), (True, False), (True, True)])
def test_a_known_value_kept_past_the_loop_replays_until_it_is_read(monkeypatch, last, read):
    """(A newcomer's case.) A handle left bound after the loop named a tensor whose known value
    (a tl.arange mask) differs from iteration to iteration: the loop was traced in full, 300x
    slower. It is replayed now, that value unknown. The traced last iteration binds `cols`
    again, so a read after the loop reads its value; with replay_last, `cols` names a replayed
    tensor after the loop, and reading it has the launch traced again with the loop in full,
    quietly: exact either way."""
    N, B = 8 * 64 + (0 if last else 5), 8  # (replay_last: no ragged block, which replay would trace)
    args = lambda ctx: (ctx.empty((N,), "f32"), ctx.empty((B,), "f32"), N, B, last, read)  # noqa: E731
    off = _launch(kept_cols, args, "off", grid=(1, 1))
    calls = _count_traces(monkeypatch)
    on = _launch(kept_cols, args, "on", grid=(1, 1))
    assert_same_launch(off, on)
    retried = last and read
    assert len(calls) == 1 + retried
    ctx = _ctx()
    tr = ctx.trace(kept_cols, (1, 1), *args(ctx), mode="timing", replay="on")
    assert (tr.program.compact is not None) == (not retried)
    _launch(kept_cols, args, "verify", grid=(1, 1))


def _many_kept(K: int):
    """K loops on K lines, each leaving a replayed tensor's unknown value in `c0`.. (replay_last),
    all read after the last (made from source: each loop its own line)."""
    src = ["def many_kept(x_ptr, y_ptr, N, B, *, tl):", "    acc = tl.zeros((B,), 'f32')"]
    for k in range(K):
        src += ["    for off in tl.range(0, N, B, replay_last=True):",
                f"        c{k} = off + tl.arange(0, B)",
                "        acc += tl.load(x_ptr + 4 * off, shape=(B,))"]
    src += [f"    tl.store(y_ptr, acc, mask=c{k} < N)" for k in range(K)]
    ns: dict = {}
    exec(compile("\n".join(src) + "\n", "<many_kept>", "exec"), ns)
    return ns["many_kept"]


def nested_kept_unread(x_ptr, y_ptr, N, B, *, tl):
    acc = tl.zeros((B,), "f32")
    for o in tl.range(0, 6):
        for off in tl.range(0, N, B, replay_last=True):
            cols = off + tl.arange(0, B)  # noqa: F841 (kept past the inner loop, never read)
            acc += tl.load(x_ptr + 4 * off, shape=(B,))
        acc += tl.load(x_ptr + 4 * B * o, shape=(B,))
    tl.store(y_ptr, acc)


@pytest.mark.parametrize("kernel,traces", [(_many_kept(4), 2), (nested_kept_unread, 1)])
def test_unknown_values_cost_at_most_one_trace_more(monkeypatch, kernel, traces):
    """(A breaker's cases.) Four loops whose kept values are each read: one trace more, not
    one per loop (each read added its own loop, K + 1 traces). An inner loop's kept value
    nothing reads: none more (the outer loop's proof read it)."""
    N, B = 8 * 40, 8
    args = lambda ctx: (ctx.empty((N,), "f32"), ctx.empty((B,), "f32"), N, B)  # noqa: E731
    off = _launch(kernel, args, "off", grid=(1, 1))
    calls = _count_traces(monkeypatch)
    assert_same_launch(off, _launch(kernel, args, "on", grid=(1, 1)))
    assert len(calls) == traces


class _StoresWhenFreed:
    def __init__(self, tl, y, acc, cols, N):
        self.a = (tl, y, acc, cols, N)

    def __del__(self):
        tl, y, acc, cols, N = self.a
        tl.store(y, acc, mask=cols < N - 4)


def kept_cols_read_in_del(x_ptr, y_ptr, N, B, *, tl):
    acc = tl.zeros((B,), "f32")
    for off in tl.range(0, N, B, replay_last=True):
        cols = off + tl.arange(0, B)
        acc += tl.load(x_ptr + 4 * off, shape=(B,))
    keep = _StoresWhenFreed(tl, y_ptr, acc, cols, N)  # noqa: F841 (stores as the kernel returns)


def test_an_unknown_value_read_where_python_cannot_raise_is_still_traced_again():
    """(A review's case.) Read in a __del__ run as the kernel returns, the signal to trace again
    was printed as 'Exception ignored in', with kernbench's own traceback; it is the program's,
    as a KernelError there is, and the launch is full tracing's."""
    N, B = 8 * 64, 8
    args = lambda ctx: (ctx.empty((N,), "f32"), ctx.empty((B,), "f32"), N, B)  # noqa: E731
    off = _launch(kept_cols_read_in_del, args, "off", grid=(1, 1))
    seen = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        on = _launch(kept_cols_read_in_del, args, "on", grid=(1, 1))
    finally:
        sys.unraisablehook = hook
    assert_same_launch(off, on)
    assert not seen


def test_a_launch_traced_again_keeps_no_builder_of_its_first_try():
    """(A review's case.) The record of a loop traced in full held the raised signal, whose
    traceback held the first try's frames and builders until the cyclic GC."""
    import gc

    from kernbench.language.builder import PEBuilder
    N, B = 8 * 64, 8
    gc.collect()
    before = sum(type(o) is PEBuilder for o in gc.get_objects())  # (other tests' leftovers)
    gc.disable()
    try:
        for kernel, args in ((advanced_pointer, _blocks(10, 10)),
                             (kept_cols, lambda ctx: (ctx.empty((N,), "f32"), ctx.empty((B,), "f32"), N, B,
                                                      True, True))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ReplayWarning)
                r = _launch(kernel, args, "on", grid=(2, 1))
            del r
            assert sum(type(o) is PEBuilder for o in gc.get_objects()) == before, kernel.__name__
    finally:
        gc.enable()


def kept_cols_special(x_ptr, y_ptr, N, B, *, tl):
    acc = tl.zeros((B,), "f32")
    for off in tl.range(0, N, B):
        cols = off + tl.arange(0, B)
        x = tl.load(x_ptr + 4 * off, shape=(B,), mask=cols < N, other=0.)
        if off == 5 * B:  # (outside the contract: iteration 5 does more)
            x = tl.exp(x)
        acc += x
    tl.store(y_ptr, acc)


def test_verify_checks_a_loop_replayed_with_a_value_unknown():
    """(A breaker's case.) Verify's first pass traced such a loop in full where replay on
    replays it, so it compared full tracing with itself and missed the contract break that
    replay on emits wrong. Its first pass is the launch with replay on."""
    N, B = 8 * 20 + 5, 8
    args = lambda ctx: (ctx.empty((N,), "f32"), ctx.empty((B,), "f32"), N, B)  # noqa: E731
    with pytest.raises(KernelError, match=r"tl.range: iteration 5 \(index 40\) does not repeat the loop body"):
        _launch(kept_cols_special, args, "verify", grid=(1, 1))


def counted_with_a_last_extra(x_ptr, o_ptr, n, *, tl):
    """A pointer advanced by the body from block 1; the last iteration reads block 0 first."""
    acc = tl.zeros((T,), "f32")
    p = x_ptr + T * F32
    for i in tl.range(0, n):
        if i == n - 1:
            acc = acc + tl.load(x_ptr, shape=(T,))
        acc = acc + tl.load(p, shape=(T,))
        p += T * F32
    tl.store(o_ptr, acc)


def indexed_with_block_3(x_ptr, o_ptr, n, every, *, tl):
    """Within the contract: addresses from the index, and a load of block 3, the place of the
    iteration after B: the last iteration's own, first (``every`` False), or a fixed load of
    every iteration, the last leaving its indexed load out (``every`` True)."""
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        if every or i == n - 1:
            acc = acc + tl.load(x_ptr + 3 * T * F32, shape=(T,))
        if not every or i != n - 1:
            acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
    tl.store(o_ptr, acc)


def test_a_last_iteration_s_own_access_neither_hides_a_count_nor_makes_one():
    """(A fuzz campaign's cases.) The iteration's accesses were compared with B's place by
    place, so an access of the last iteration's own, first, hid a count (the load past the
    array missed) or, at the place after B, made one of an indexed body (a false warning, the
    loop traced in full). B's accesses are found in order among the iteration's now."""
    _same_error(counted_with_a_last_extra, _blocks(10, 10))
    args = lambda ctx: (*_blocks(10, 10)(ctx), False)  # noqa: E731
    off = _launch(indexed_with_block_3, args, "off", grid=(1, 1))
    on = _launch(indexed_with_block_3, args, "on", grid=(1, 1))  # (a warning: an error)
    assert_same_launch(off, on)
    ctx = _ctx()
    assert ctx.trace(indexed_with_block_3, (1, 1), *args(ctx), mode="timing",
                     replay="on").program.compact is not None


def _counted_last_differs(how):
    """A pointer advanced by the body from block 1 (its last iteration reads block n, past x),
    the last iteration differing from B in ``how``: without a fixed load of w, without a store,
    with that load moved after the counted one, or with a load past w after the counted one."""
    def k(x_ptr, w_ptr, o_ptr, n, *, tl):
        acc = tl.zeros((T,), "f32")
        p = x_ptr + T * F32
        for i in tl.range(0, n):
            last = i == n - 1
            if how in ("skip_fixed", "reorder") and not last:
                acc = acc + tl.load(w_ptr, shape=(T,))
            acc = acc + tl.load(p, shape=(T,))
            if how == "reorder" and last:
                acc = acc + tl.load(w_ptr, shape=(T,))
            if how == "skip_store" and not last:
                tl.store(o_ptr, acc)
            if how == "error_later" and last:
                acc = acc + tl.load(w_ptr + 64 * T * F32, shape=(T,))
            p += T * F32
        tl.store(o_ptr, acc)
    return k


@pytest.mark.parametrize("how", ["skip_fixed", "skip_store", "reorder", "error_later"])
def test_a_count_is_found_whatever_else_the_last_iteration_does(how):
    """(A second fuzz campaign's cases.) B's fixed accesses were looked for too, so a last
    iteration without one, or with it moved, hid the count (the load past x missed); and an
    error later in that iteration (past w) was raised before the iteration's check ran, where
    full tracing raises the count's. Only the moving accesses are looked for, and an error in
    that iteration has what it did so far checked first."""
    kernel = _counted_last_differs(how)
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((10 * T,), "f32"),  # noqa: E731
                        ctx.empty((T,), "f32"), 10)
    _same_error(kernel, args)


def two_counts_error_between(x_ptr, y_ptr, w_ptr, o_ptr, n, *, tl):
    """Two pointers advanced by the body; the last iteration loads past w between them (full
    tracing's last iteration loads past x first)."""
    acc = tl.zeros((T,), "f32")
    p, q = x_ptr, y_ptr
    for i in tl.range(0, n):
        acc = acc + tl.load(p, shape=(T,))
        if i == n - 1:
            acc = acc + tl.load(w_ptr + 8 * T * F32, shape=(T,))
        acc = acc + tl.load(q, shape=(T,))
        p += T * F32
        q += T * F32
    tl.store(o_ptr, acc)


def test_a_cut_short_iteration_and_a_fixed_access_at_the_next_place():
    """(A third fuzz campaign's cases.) An error between two counted accesses of the last
    iteration: all of B's moving accesses were looked for, so the later error was raised where
    full tracing raises the first count's; a cut short iteration's first ones are enough now.
    And a fixed load at the place after B stood for B's moving one, in an indexed body whose
    last iteration leaves that out: a false warning. B's fixed accesses are taken out first."""
    _same_error(two_counts_error_between, lambda ctx: (
        ctx.empty((7 * T,), "f32"), ctx.empty((8 * T,), "f32"), ctx.empty((8 * T,), "f32"),
        ctx.empty((T,), "f32"), 8))
    for n in (6, 10):
        args = lambda ctx, n=n: (*_blocks(12, n)(ctx), True)  # noqa: E731
        assert_same_launch(_launch(indexed_with_block_3, args, "off", grid=(1, 1)),
                           _launch(indexed_with_block_3, args, "on", grid=(1, 1)))  # (no warning)


def swallowing(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T,), "f32")
    try:
        for j, _ in enumerate(tl.range(0, n)):  # (enumerate's count: found off its line)
            acc = acc + tl.load(x_ptr + j * T * F32, shape=(T,))
    except BaseException:  # (takes kernbench's own signal too: the launch is traced again)
        pass
    tl.store(o_ptr, acc)


def test_a_kernel_that_swallows_the_signal_is_still_traced_again():
    with pytest.warns(ReplayWarning):
        on = _launch(swallowing, _blocks(10, 10), "on", grid=(2, 1))
    assert_same_launch(_launch(swallowing, _blocks(10, 10), "off", grid=(2, 1)), on)


def comprehensions(x_ptr, o_ptr, n, *, tl):
    xs = [tl.load(x_ptr + i * T * F32, shape=(T,)) for i in tl.range(0, n)]
    ys = {i: tl.exp(xs[i]) for i in tl.range(0, n)}
    acc = tl.zeros((T,), "f32")
    for x in xs + list(ys.values()):
        acc = acc + x
    tl.store(o_ptr, acc)


def test_a_comprehension_over_tl_range_is_traced_in_full():
    """(A review's case.) A list or dict comprehension over tl.range holds one element per
    iteration run: with replay it held iterations 0, 1, 2 and the last only, and the launch
    summed 4 of 10 tiles, silently. Comprehension loops are traced in full."""
    off = _launch(comprehensions, _blocks(10, 10), "off", grid=(1, 1))
    on = _launch(comprehensions, _blocks(10, 10), "on", grid=(1, 1))
    assert_same_launch(off, on)
    assert on.program.n_commands == 10 + 10 + 1 + 20 + 1
    ctx = _ctx()
    assert ctx.trace(comprehensions, (1, 1), *_blocks(10, 10)(ctx), mode="timing").replayed_rows == 0


def test_a_comprehension_inlined_in_the_kernel_s_code_is_found():
    """Python 3.12 compiles a comprehension into the function's own code (PEP 709): then the
    loop's body, from its FOR_ITER to where it jumps, is read for the comprehension's
    LIST_APPEND. Played on 3.11 with a comprehension's code renamed as a kernel's."""
    import dis

    from kernbench.language import semantic

    def k(xs):
        return [x + 1 for x in xs]

    def star(xs, lead):
        for x in xs:
            t = (*lead, x)  # (a display: LIST_APPEND 1, in a loop that collects nothing)
        return t

    # (3.11: the comprehension's own code, renamed; 3.12 and later: the kernel's, inlined)
    comp = next((c for c in k.__code__.co_consts if hasattr(c, "co_code")), k.__code__)
    inlined = comp.replace(co_name="k")
    ins = list(dis.get_instructions(inlined))
    loop = next(x.offset for x in ins if x.opname == "FOR_ITER")
    other = next(x.offset for x in ins if x.opname not in ("FOR_ITER", "CACHE"))
    assert semantic._collects(inlined, loop)
    assert not semantic._collects(inlined, other)  # (not a for loop)
    ins = list(dis.get_instructions(star))
    assert any(x.opname == "LIST_APPEND" for x in ins)
    assert not semantic._collects(star.__code__, next(x.offset for x in ins if x.opname == "FOR_ITER"))
    frame = types.SimpleNamespace
    if sys.version_info < (3, 12):  # (3.11: by its name; later, by the loop's code, above)
        assert semantic.loop_grows(frame(f_code=comp, f_lasti=0))
    assert not semantic.loop_grows(frame(f_code=star.__code__, f_lasti=0))


# -- outside the contract: verify mode catches it -------------------------------------------------
def special_iteration(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i == 5:
            x = tl.exp(x)  # iteration 5 does other work: replay would not see it
        acc = acc + x
    tl.store(o_ptr, acc)


def python_state(x_ptr, o_ptr, n, *, tl):
    _tally().kept = []
    for i in tl.range(0, n):
        _tally().kept.append(tl.load(x_ptr + i * T * T * F32, shape=(T, T)))
    for x in _tally().kept:  # a Python list grown by the body: replay skips the appends (a
        tl.store(o_ptr, x)  # list no variable of the loop's frame holds: one would be found)


def _grows(seen=[]):  # noqa: B006 (the case: a default list kept from call to call)
    seen.append(1)
    return len(seen)


def state_across_launches(x_ptr, o_ptr, n, *, tl):
    """Its first load's shape grows at every call of the kernel: verify mode's second pass
    traces another program before any iteration was replayed (a review: the message blamed
    replay)."""
    tl.load(x_ptr, shape=(_grows(),), dtype="f32")
    for i in tl.range(0, n):
        tl.store(o_ptr, tl.load(x_ptr + i * T * T * F32, shape=(T, T)))


LOG = []


def reads_another_pe_s_loop(x_ptr, o_ptr, n, *, tl):
    """PE 1's first load is as long as the iterations PE 0's body ran in Python (emptied at each
    launch): replay on PE 0 changes PE 1's program before PE 1 replays anything (a review)."""
    if tl.program_id(0) == 0:
        LOG.clear()
    tl.load(x_ptr, shape=(len(LOG) + 1,), dtype="f32")
    for i in tl.range(0, n):
        LOG.append(i)
        tl.store(o_ptr, tl.load(x_ptr + i * T * T * F32, shape=(T, T)))


def grows_at_its_end(x_ptr, o_ptr, n, *, tl):
    """PE 0 replays; PE 1's loop is too short to, and its program gains a load at each trace,
    at its end (a review: its first pass a prefix of the second was blamed on replay)."""
    p = tl.program_id(0)
    for i in tl.range(0, n if p == 0 else 2):
        tl.store(o_ptr, tl.load(x_ptr + i * T * T * F32, shape=(T, T)))
    if p == 1:
        for _ in range(_grows()):
            tl.load(x_ptr, shape=(4,), dtype="f32")


def pins_the_second_time(x_ptr, o_ptr, n, *, tl):
    """A pinned= flag the kernel's Python flips at its second trace: the tensor table differs
    before any replay, not the commands (a review)."""
    tl.load(x_ptr, shape=(4,), dtype="f32", pinned=_grows() > 1)
    for i in tl.range(0, n):
        tl.store(o_ptr, tl.load(x_ptr + i * T * T * F32, shape=(T, T)))


@pytest.mark.parametrize("kernel,what", [
    (reads_another_pe_s_loop, r"PE \(1, 0\) at test_tl_range.py:\d+: .*: command #0 is load \(5,\) f32 .* in "
                              r"the first pass, load \(41,\) f32 .* in the second"),
    (grows_at_its_end, r"PE \(1, 0\) at test_tl_range.py:\d+: .*: command #5 is nothing \(the program "
                       r"ends\) in the first pass, load \(4,\) f32"),
    (pins_the_second_time, r"PE \(0, 0\) at test_tl_range.py:\d+: .*: tensor #0 \(made by load \(4,\) f32 "
                           r"from a0 at test_tl_range.py:\d+\) is 16 bytes in the first pass, 16 bytes and "
                           r"pinned in the second"),
])
def test_verify_names_a_program_that_differs_before_a_pe_s_replay(kernel, what):
    """Verify's finding for a PE whose program differs before any of its own iterations was
    replayed names both causes (the kernel's Python keeping state across the passes, or
    reading what another PE's skipped iterations would have done), not replay alone."""
    _grows.__defaults__[0].clear()
    args = lambda ctx: (ctx.empty((40 * T, T), "f32"), ctx.empty((T, T), "f32"), 40)  # noqa: E731
    with pytest.raises(ReplayContractError, match="the kernel's Python traced this PE otherwise the "
                                                  "second time, before any of its iterations was "
                                                  "replayed") as e:
        _launch(kernel, args, "verify")
    assert re.search(what, str(e.value)), str(e.value)
    assert "or it reads state that the iterations replay skipped on another PE" in str(e.value)


def squares(x_ptr, o_ptr, n, *, tl):
    for i in tl.range(0, n):
        x = tl.load(x_ptr + (i * i % 7) * T * T * F32, shape=(T, T))  # not affine in i
        tl.store(o_ptr, x)


def stride_grows(x_ptr, o_ptr, n, *, tl):
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * F32, shape=(2, T), stride=T + i // 4)  # the stride changes at 4
        tl.store(o_ptr, x)


def breaks(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        if i == 6:  # in an iteration replay does not trace: never seen with replay on
            break
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def zipped_short(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    # zip stops the tl.range after 6 iterations with no break in the body (a review's case: verify named it
    # "a break or return in its body")
    for _, i in zip(range(6), tl.range(0, n)):
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def nested_special(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        for j in tl.range(0, 6):
            x = tl.load(x_ptr + j * T * T * F32, shape=(T, T))  # the same tiles for every i
            if i == 5 and j == 3:
                x = x * 2.0
            acc = acc + x
    tl.store(o_ptr, acc)


def pinned_once(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        # a pin is no command: the iterations' rows are alike (a review: verify named no line)
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T), pinned=(i == 5))
    tl.store(o_ptr, acc)


def pinned_after(x_ptr, o_ptr, n, *, tl):
    _tally().n = 0
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        _tally().n += 1  # Python state outside the loop's frame: replay skips it
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc + tl.load(x_ptr, shape=(T, T), pinned=_tally().n == n))


@pytest.mark.parametrize("kernel,match", [
    (special_iteration, "iteration 5 .*does not repeat the loop body"),
    (pinned_once, r"test_tl_range.py:\d+: tl.range: iteration 5 \(index 5\) does not repeat the loop "
                  r"body: it pins its tensors #0 \(pinned=True, counted from its first\), the "
                  r"replayed body none"),
    (pinned_after, r"test_tl_range.py:\d+: tl.range replay \(verify mode\) changes the program's "
                   r"tensors: tensor #\d+ \(made by load \(8,8\) f32 from a0 at test_tl_range.py:\d+\) is "
                   r"256 bytes with replay, 256 bytes and pinned traced in full"),
    (python_state, "replay .*changes the program"),
    (state_across_launches, r"test_tl_range.py:\d+: the kernel's Python traced this PE otherwise the "
                            r"second time, before any of its iterations was replayed .*: command #0 is "
                            r"load \((\d+),\) f32 from a0 at test_tl_range.py:\d+ \(operands -1, -1, -1; "
                            r"result 0\) in the first pass, load \((\d+),\) f32 .* Either the kernel keeps "
                            r"state outside the launch .* or it reads state that the iterations replay "
                            r"skipped on another PE would have changed"),
    (squares, "iteration 3 .*move by a constant per iteration"),
    (stride_grows, r"iteration 4 .*shape \(2, 8\) and stride 9, the replayed body's shape \(2, 8\) "
                   r"and stride 8"),
    (breaks, r"test_tl_range.py:\d+: tl.range replay \(verify mode\): the kernel left this tl.range "
             r"loop at iteration 6 \(index 6: a break or return"),
    (zipped_short, r"left this tl.range loop at iteration 5 \(index 5: a break or return in its "
                   r"body, or its iterator left unfinished: a zip with a shorter iterable, islice, next\(\)\)"),
    (nested_special, r"iteration 3 \(index 3\) in iteration index 5 of the tl.range at "
                     r"test_tl_range.py:\d+ does not repeat"),
])
def test_verify_catches_kernels_outside_the_contract(kernel, match):
    args = lambda ctx: (ctx.empty((20 * T, T), "f32"), ctx.empty((T, T), "f32"), 12)  # noqa: E731
    with pytest.raises(KernelError, match=match):
        _launch(kernel, args, "verify")
    if kernel in (special_iteration, python_state, breaks, zipped_short, nested_special):  # (addresses and
        # strides do not change the timing)
        off, on = _launch(kernel, args, "off"), _launch(kernel, args, "on")
        assert off.program.commands.tobytes() != on.program.commands.tobytes()
    if kernel in (pinned_once, pinned_after):  # the same commands, another tensor pinned
        off, on = _launch(kernel, args, "off"), _launch(kernel, args, "on")
        assert off.program.commands.tobytes() == on.program.commands.tobytes()
        assert not (off.program.tensor_pinned == on.program.tensor_pinned).all()


def keeps_first_and_a_window(x_ptr, o_ptr, n, depth, shift_last, *, tl):
    """Iteration 0's handle kept (`if i == 0: first = x`) beside a window of the last ``depth``
    handles (``shift_last``: the last iteration shifts it too)."""
    first = None
    win = [tl.zeros((T, T), "f32")] * depth
    for i in tl.range(0, n):
        x = tl.exp(tl.load(x_ptr + i * T * T * F32, shape=(T, T)))
        if i == 0:
            first = x
        if shift_last or i < n - 1:
            win = win[1:] + [x]
        else:
            tl.store(o_ptr, x)
    for h in [first] + win:
        tl.store(o_ptr, h)


class _Cycle:
    pass


def cyclic_temporaries(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        t = _Cycle()
        t.me, t.x = t, tl.exp(tl.load(x_ptr + i * T * T * F32, shape=(T, T)))  # garbage in a cycle
        acc = acc + t.x
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("n", [5, 12, 40])
@pytest.mark.parametrize("depth, shift_last", [(2, True), (3, True), (2, False)])
def test_kept_handles_within_the_contract_replay_exactly(n, depth, shift_last):
    """Within the contract and replayed exactly: iteration 0's handle kept beside a window of
    two or three, and beside a window of two the last iteration does not shift; handles a
    per-iteration reference cycle keeps alive (garbage: the GC is paused while tracing). A
    review found a check added to refuse lists grown by the body refusing these as well: it
    was taken out (a list and these leave the same handles alive), and lists stay outside the
    contract, for verify mode to catch (test_verify_catches_kernels_outside_the_contract)."""
    args = lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n, depth, shift_last)  # noqa: E731
    off, on = _exact(keeps_first_and_a_window, args)
    assert on.program.compact is not None and len(on.program.compact.tiles)
    off, on = _exact(cyclic_temporaries, lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n))
    assert len(on.program.compact.tiles)


def _count_on_pe0(x_ptr, o_ptr, n, tl, seen):
    """PE 0's tl.range body counting its iterations in a Python list (outside the contract:
    with replay the list holds the 4 traced iterations), copying a row each."""
    seen.clear()
    _tally().seen = seen  # (where no variable of the loop's frame holds it: one would be found)
    for i in tl.range(0, n):
        _tally().seen.append(i)
        tl.store(o_ptr + i * T * F32, tl.load(x_ptr + i * T * F32, shape=(T,)))


def state_for_the_next_pe(x_ptr, o_ptr, n, *, tl, seen):
    """PE 0's tl.range body counts its iterations in a Python list (outside the contract); PE 1,
    which runs no tl.range, stores once per count: with replay it sees the 4 traced iterations."""
    if tl.program_id(0) == 0:
        _count_on_pe0(x_ptr, o_ptr, n, tl, seen)
    else:
        for _ in seen:
            tl.store(o_ptr, tl.exp(tl.load(x_ptr, shape=(T,))))


def test_verify_catches_python_state_a_replayed_body_leaves_for_another_pe():
    """Verify traces the whole launch with replay, then every PE in full: PE 1's program, made
    from what PE 0's replayed body left, is compared too (a review found verify silent, with
    full tracing's numbers: it traced PE 0 in full right after replaying it, before PE 1)."""
    seen = []
    args = lambda ctx: (ctx.empty((12 * T,), "f32"), ctx.empty((12 * T,), "f32"), 12)  # noqa: E731
    off = _launch(state_for_the_next_pe, args, "off", seen=seen)
    assert len(seen) == 12
    on = _launch(state_for_the_next_pe, args, "on", seen=seen)
    assert len(seen) == 4 and on.program.n_commands != off.program.n_commands
    # (PE 1 replays nothing: the kernel's Python, across the passes or across PEs, is named)
    with pytest.raises(KernelError, match=r"PE \(1, 0\) at test_tl_range.py:\d+: the kernel's Python traced "
                                          r"this PE otherwise the second time.*command #12 .*or it reads "
                                          r"state that the iterations replay skipped on another PE"):
        _launch(state_for_the_next_pe, args, "verify", seen=seen)


def error_for_the_next_pe(x_ptr, o_ptr, n, *, tl, seen):
    """As state_for_the_next_pe, PE 1 reading an address from the count: past the array (an
    error) unless it saw all n iterations."""
    if tl.program_id(0) == 0:
        _count_on_pe0(x_ptr, o_ptr, n, tl, seen)
    else:
        tl.store(o_ptr, tl.load(x_ptr + (n - len(seen)) * (1 << 20), shape=(T,)))


def test_verify_names_replay_for_an_error_python_state_a_replayed_body_left_causes_on_another_pe():
    """A review's case: PE 1, which runs no loop, raises with the state PE 0's replayed body
    left; verify reported it as the kernel's own error, though full tracing raises nothing. The
    PEs before it are now traced again in full to tell: replay caused it."""
    seen = []
    args = lambda ctx: (ctx.empty((12 * T,), "f32"), ctx.empty((12 * T,), "f32"), 12)  # noqa: E731
    _launch(error_for_the_next_pe, args, "off", seen=seen)
    with pytest.raises(KernelError, match="outside every device allocation") as e:
        _launch(error_for_the_next_pe, args, "on", seen=seen)
    assert "replay" not in str(e.value)
    with pytest.raises(KernelError, match=r"PE \(1, 0\): tl.range replay \(verify mode\) raised an error full "
                                          r"tracing does not: PE \(1, 0\) at .*outside every device allocation"):
        _launch(error_for_the_next_pe, args, "verify", seen=seen)
    # an error full tracing raises too is the kernel's own, as full tracing gives it
    bad = lambda ctx: (ctx.empty((12 * T,), "f32"), ctx.empty((12 * T,), "f32"), 13)  # noqa: E731
    with pytest.raises(KernelError, match="outside every device allocation") as e:
        _launch(error_for_the_next_pe, bad, "verify", seen=seen)
    assert "replay" not in str(e.value)


def slot_counter(x_ptr, o_ptr, n, *, tl, log):
    """A slot per program, in trace order (state across PEs, not iterations); slot 1 reads past
    the array: the kernel's own bug, on PE 1, with or without replay."""
    slot = len(log)
    log.append(slot)
    if tl.program_id(0) == 0:
        for i in tl.range(0, n):
            tl.store(o_ptr + i * T * F32, tl.load(x_ptr + i * T * F32, shape=(T,)))
    tl.store(o_ptr, tl.load(x_ptr + slot * n * T * F32, shape=(T,)))


def scratch_from_the_count(x_ptr, o_ptr, n, *, tl, seen, ctx):
    """PE 1 sizes a host allocation by what PE 0's tl.range body counted: a PlacementError
    (size 0) with replay's 4 traced iterations, nothing in full."""
    if tl.program_id(0) == 0:
        _count_on_pe0(x_ptr, o_ptr, n, tl, seen)
    else:
        ctx.empty((len(seen) - 4,), "f32")


def test_verify_keeps_the_kernels_own_error_when_earlier_pes_do_not_trace_again_alike():
    """A review's cases after the fix above: tracing the PEs before the failing one again runs
    their Python again, and a kernel keeping a slot counter across PEs then saw other slots:
    verify named PE (0, 0) at another address for PE (1, 0)'s own error. When the earlier PEs
    do not trace again alike, the launch's error stands. And an error that is no KernelError
    (a PlacementError of the kernel's Python) is told apart too."""
    log = []
    args = lambda ctx: (ctx.empty((12 * T,), "f32"), ctx.empty((12 * T,), "f32"), 12)  # noqa: E731
    errors = {}
    for replay in ("off", "verify"):
        log.clear()
        with pytest.raises(KernelError, match="outside every device allocation") as e:
            _launch(slot_counter, args, replay, log=log)
        errors[replay] = (e.value.pe, str(e.value))
    assert errors["verify"] == errors["off"] and errors["off"][0] == (1, 0)
    seen = []
    ctx = _ctx()
    a = args(ctx)
    ctx.launch(scratch_from_the_count, (2, 1), *a, mode="timing", replay="off",
               kernel_kwargs={"seen": seen, "ctx": ctx})
    with pytest.raises(KernelError, match=r"PE \(1, 0\): tl.range replay \(verify mode\) raised an error full "
                                          r"tracing does not: kernel scratch_from_the_count raised PlacementError on "
                                          r"PE \(1, 0\) .*: shape must be"):
        ctx.launch(scratch_from_the_count, (2, 1), *a, mode="timing", replay="verify",
                   kernel_kwargs={"seen": seen, "ctx": ctx})


def hidden_division_then_a_later_pes_error(x_ptr, o_ptr, n, *, tl):
    """A review's case: PE 0's tl.range body divides by zero at iteration 37 (replay skips it);
    PE 1 stores past o, its own bug."""
    x = tl.load(x_ptr, shape=(8,), dtype="int32")
    if tl.program_id(0) == 0:
        acc = x
        for i in tl.range(0, n):
            acc = acc + x // (i - 37)
        tl.store(o_ptr, acc)
    else:
        tl.store(o_ptr + 4 * 8, x)


def test_verify_notes_an_earlier_pe_whose_full_trace_raises():
    """Full tracing raises first on PE 0 (the division replay skipped); replay, and verify,
    reach PE 1's own error first. Verify cannot tell that from a kernel whose Python keeps
    state across PEs (test above: tracing PE 0 again raises only then), so PE 1's error stands
    with a note naming PE 0's, and how to get full tracing's first error."""
    def args(ctx):
        return (ctx.replicate(np.arange(1, 9, dtype=np.int32), dtype="int32"), ctx.empty((8,), "int32"), 100)

    with pytest.raises(KernelError, match=r"//: integer division or remainder by zero") as off:
        _launch(hidden_division_then_a_later_pes_error, args, "off")
    assert off.value.pe == (0, 0)
    with pytest.raises(KernelError, match="is outside") as ver:
        _launch(hidden_division_then_a_later_pes_error, args, "verify")
    assert ver.value.pe == (1, 0)
    notes = " ".join(getattr(ver.value, "__notes__", []))
    assert notes.startswith("(verify mode: traced again in full, PE (0, 0) raises before it: PE (0, 0) at ")
    assert "//: integer division or remainder by zero" in notes and "replay='off'" in notes


def test_a_body_that_makes_no_tensor_replays_exactly():
    """A body that only stores or sends tensors made before the loop makes no tensor: each
    operand is the same in every iteration, the addresses move on. It was traced in full (a
    review measured a broadcast store 20x slower than its replayed twin); it replays as any
    other, exactly, and a tensor made in iteration 0 only (`if i == 0`) is one such operand."""
    def store_only(x_ptr, o_ptr, n, *, tl):
        x = tl.load(x_ptr, shape=(T,))
        for i in tl.range(0, n):
            BODIES_RUN.append(i)
            tl.store(o_ptr + i * T * F32, x)

    def first_made(x_ptr, o_ptr, n, *, tl):
        for i in tl.range(0, n):
            BODIES_RUN.append(i)
            if i == 0:
                y = tl.exp(tl.load(x_ptr, shape=(T,)))
            tl.store(o_ptr + i * T * F32, y)

    def sent(x_ptr, o_ptr, n, *, tl):
        x = tl.load(x_ptr, shape=(T,))
        if tl.program_id(0) == 0:
            for i in tl.range(0, n):
                BODIES_RUN.append(i)
                tl.send("E", x)
        else:
            acc = tl.zeros((T,), "f32")
            for _ in tl.range(0, n):
                acc = acc + tl.recv("W", (T,), "f32")
            tl.store(o_ptr, acc)

    args = lambda ctx: (ctx.empty((T,), "f32"), ctx.empty((40 * T,), "f32"), 40)  # noqa: E731
    for kernel, grid in ((store_only, (1, 1)), (first_made, (1, 1)), (sent, (2, 1))):
        _exact(kernel, args, grid=grid)
        BODIES_RUN.clear()
        r = _launch(kernel, args, "on", grid=grid)
        assert BODIES_RUN == [*range(loops.PROBES), 39], kernel.__name__  # (the proof's and the last)
        assert r.program.compact is not None
        (lp, *_) = r.loops
        assert (lp.iterations, lp.replayed, lp.why) == (40, 40 - loops.PROBES - 1, None)
    # functional mode traces every iteration; the values are what the stores wrote
    ctx = _ctx()
    x = ctx.put(np.arange(T, dtype=np.float32), pe=(0, 0))
    o = ctx.empty((40 * T,), "f32")
    ctx.launch(first_made, (1, 1), x, o, 40)
    assert np.array_equal(ctx.read(o, (0, 0)), np.tile(np.exp(np.arange(T, dtype=np.float32)), 40))


def wide_masked_weight(x_ptr, w_ptr, y_ptr, R, N, *, tl):
    """Triton's `BLOCK = next_power_of_2(N)`: the weight tile is wider than its allocation, its
    mask (made before the loop) keeps it in; the same load in every row."""
    cols = tl.arange(0, 2 * T)
    mask = cols < N
    for r in tl.range(0, R):
        x = tl.load(x_ptr + F32 * r * 2 * T, shape=(2 * T,), mask=mask, other=0.0)
        w = tl.load(w_ptr, shape=(2 * T,), mask=mask, other=0.0)
        tl.store(y_ptr + F32 * r * 2 * T, x * w, mask=mask)


def wide_masked_weight_moving(w_ptr, y_ptr, R, N, *, tl):
    mask = tl.arange(0, 2 * T) < N
    for r in tl.range(1, R, shapes_move=True):
        w = tl.load(w_ptr, shape=(2 * T,), mask=mask, other=0.0)
        tl.load(y_ptr, shape=(r, 4))  # (a shape that moves)
        tl.store(y_ptr + F32 * 2 * T * r, w)


def wide_masked_weight_inside(x_ptr, w_ptr, y_ptr, R, N, *, tl):
    """wide_masked_weight with its mask made in the body (Triton's tutorial 05 makes `cols` and
    `cols < N` inside the row loop): the same value in every row."""
    for r in tl.range(0, R):
        cols = tl.arange(0, 2 * T)
        x = tl.load(x_ptr + F32 * r * 2 * T, shape=(2 * T,), mask=cols < N, other=0.0)
        w = tl.load(w_ptr, shape=(2 * T,), mask=cols < N, other=0.0)
        tl.store(y_ptr + F32 * r * 2 * T, x * w, mask=cols < N)


def wide_masked_weight_moving_inside(w_ptr, y_ptr, R, N, *, tl):
    for r in tl.range(1, R, shapes_move=True):
        mask = tl.arange(0, 2 * T) < N
        w = tl.load(w_ptr, shape=(2 * T,), mask=mask, other=0.0)
        tl.load(y_ptr, shape=(r, 4))  # (a shape that moves)
        tl.store(y_ptr + F32 * 2 * T * r, w)


def wide_weight_inside_mask_grows(x_ptr, w_ptr, y_ptr, R, N, *, tl):
    """wide_weight_mask_grows with its mask made in the body from a tl.arange moved by the
    row (a value, not an address, following the index: iterations 1 and 2 differ)."""
    for r in tl.range(0, R):
        cols = tl.arange(0, 2 * T) + r
        w = tl.load(w_ptr, shape=(2 * T,), mask=cols < N - 5 + 2 * r, other=0.0)
        tl.store(y_ptr + F32 * r * 2 * T, w)


def wide_weight_mask_grows(x_ptr, w_ptr, y_ptr, R, N, *, tl):
    """The same wide load with a mask that grows with the row: row 5's lets an element past
    the weight's end (full tracing refuses it there)."""
    cols = tl.arange(0, 2 * T)
    for r in tl.range(0, R):
        w = tl.load(w_ptr, shape=(2 * T,), mask=cols < N - 5 + r, other=0.0)
        tl.store(y_ptr + F32 * r * 2 * T, w)


def test_a_wide_tile_a_mask_from_before_the_loop_keeps_in_replays_exactly():
    """A review: a load that stays at one place, its tile wider than its allocation and its mask
    keeping it in (Liger's RMSNorm, tutorial 05's LayerNorm: `w = tl.load(W + cols, mask=cols <
    N)` in the row loop), stopped replay for the whole loop, by the unmasked footprint, with a
    reason naming a load past its allocation that no iteration makes (300x slower). Such a load
    with its mask from before the loop is B's own in every iteration: replayed. One whose mask is
    made in the iteration is still judged by its footprint: traced, its error at its row."""
    args = lambda ctx: (ctx.empty((40 * 2 * T,), "f32"), ctx.empty((T + 3,), "f32"),  # noqa: E731
                        ctx.empty((40 * 2 * T,), "f32"), 40, T + 3)
    off, on = _exact(wide_masked_weight, args, grid=(1, 1))
    (lp,) = on.loops
    assert (lp.replayed, lp.why) == (40 - loops.PROBES - 1, None)
    # (a breaker: under shapes_move=True the access was still judged by its whole tile)
    off, on = _exact(wide_masked_weight_moving, lambda ctx: (ctx.empty((T + 3,), "f32"),
                                                              ctx.empty((40 * 2 * T,), "f32"), 40, T + 3),
                     grid=(1, 1))
    (lp,) = on.loops
    assert lp.replayed > 0 and lp.why is None
    e = _same_error(wide_weight_mask_grows, lambda ctx: (ctx.empty((1,), "f32"), ctx.empty((T,), "f32"),
                                                         ctx.empty((40 * 2 * T,), "f32"), 40, T))
    assert "load" in str(e)
    # its mask made in the body with the same value in each iteration (a review: Triton's
    # idiom replayed nothing, the reason naming an address that does not move by its step)
    off, on = _exact(wide_masked_weight_inside, args, grid=(1, 1))
    (lp,) = on.loops
    assert (lp.replayed, lp.why) == (40 - loops.PROBES - 1, None)
    # and under shapes_move=True (a breaker: judged by its whole tile there)
    moving = {}
    for k in (wide_masked_weight_moving, wide_masked_weight_moving_inside):
        off, on = _exact(k, lambda ctx: (ctx.empty((T + 3,), "f32"), ctx.empty((40 * 2 * T,), "f32"), 40,
                                         T + 3), grid=(1, 1))
        (lp,) = on.loops
        moving[k] = (lp.replayed, lp.why)
    assert moving[wide_masked_weight_moving_inside] == moving[wide_masked_weight_moving]
    assert moving[wide_masked_weight_moving][0] > 0
    e2 = _same_error(wide_weight_inside_mask_grows, lambda ctx: (
        ctx.empty((1,), "f32"), ctx.empty((T,), "f32"), ctx.empty((40 * 2 * T,), "f32"), 40, T))
    assert "load" in str(e2)


def ring_allreduce_by_list(x_ptr, o_ptr, n, *, tl):
    """A new user's ring all-reduce: its steps in tl.range, the chunks in a Python list, the
    slot each step sends from and receives into picked by the index ((r - s) % P)."""
    P, r = tl.num_programs(0), tl.program_id(0)
    c = n // P
    chunks = [tl.load(x_ptr + 4 * j * c, shape=(c,), dtype="f32") for j in range(P)]
    for s in tl.range(0, P - 1):
        tl.send("E", chunks[(r - s) % P])
        j = (r - s - 1) % P
        chunks[j] = chunks[j] + tl.recv("W", (c,), "f32")
    for s in tl.range(0, P - 1):
        tl.send("E", chunks[(r + 1 - s) % P])
        chunks[(r - s) % P] = tl.recv("W", (c,), "f32")
    for j in range(P):
        tl.store(o_ptr + 4 * j * c, chunks[j])


def test_a_ring_all_reduce_s_chunks_picked_by_the_index_are_found():
    """Timing mode's replay gave 4,386 cycles where functional mode (every iteration traced)
    gave 4,220, silently (two reviews): replay moved each chunk's handle on where it sat, not
    into the slot the index picks. The check of the body's Python state finds the handles
    changing slots, and the loop is traced in full (tests/test_tl_range_state.py)."""
    x = np.arange(8 * 4096, dtype=np.float32).reshape(8, 4096)
    cycles = {}
    for mode, replay in (("functional", None), ("timing", "off"), ("timing", "on"), ("timing", "verify")):
        ctx = Context("default")
        ctx.install_sfr(scope="pe", ring=True)
        xp = ctx.shard(x, over="pe")
        o = ctx.empty_like(xp)
        if replay in ("on", "verify"):
            with pytest.warns(ReplayWarning, match=r"PE \(0, 0\) at test_tl_range.py:\d+ \(and on 7 other "
                                                   r"PEs\): tl.range: the body reads `chunks` before"):
                r = ctx.launch(ring_allreduce_by_list, (8, 1), xp, o, 4096, mode=mode, replay=replay)
        else:
            r = ctx.launch(ring_allreduce_by_list, (8, 1), xp, o, 4096, mode=mode, replay=replay)
        cycles[mode, replay] = r.cycles
        if mode == "functional":
            np.testing.assert_allclose(ctx.gather(o, over="pe"), np.broadcast_to(x.sum(0), x.shape),
                                       rtol=1e-6)
    assert len(set(cycles.values())) == 1, cycles


def test_verify_is_the_test_suites_default(monkeypatch):
    monkeypatch.setenv("KERNBENCH_REPLAY", "verify")
    args = lambda ctx: (ctx.empty((20 * T, T), "f32"), ctx.empty((T, T), "f32"), 12)  # noqa: E731
    ctx = _ctx()
    with pytest.raises(KernelError):
        ctx.launch(special_iteration, (1, 1), *args(ctx), mode="timing")


# -- generated loop kernels ----------------------------------------------------------------------
BODY_OPS = ("load", "load_after", "masked", "add", "mul", "max", "exp", "dot", "dot_t", "reduce",
            "carry", "store", "send", "pinned", "view", "lag2", "older")


@st.composite
def loop_kernels(draw):
    ops = draw(st.lists(st.tuples(st.sampled_from(BODY_OPS), st.integers(0, 1 << 16)),
                        min_size=1, max_size=10))
    start = draw(st.integers(0, 3))
    step = draw(st.integers(1, 3))
    trips = draw(st.integers(0, 24))
    n_carry = draw(st.integers(0, 2))
    N = draw(st.integers(1, T * T))  # elements a masked load may read of its block
    return ops, start, step, trips, n_carry, N


def make_loop_kernel(ops, start, step, trips, n_carry, N, replay_last=False, replay_first=False,
                     older_first=False):
    stop = start + step * trips

    def k(x_ptr, o_ptr, *, tl):
        pe = tl.program_id(0)
        carry = [tl.full((T, T), float(c), "f32") for c in range(n_carry)]
        last = older = tl.load(x_ptr, shape=(T, T))
        for i in tl.range(start, stop, step, replay_last=replay_last, replay_first=replay_first):
            regs = [last, *carry]
            for op, r in ops:
                a, b = regs[r % len(regs)], regs[(r >> 4) % len(regs)]
                blk = x_ptr + (i + r % 3) * T * T * F32
                if op == "load":
                    regs.append(tl.load(blk, shape=(T, T)))
                elif op == "load_after":
                    regs.append(tl.load(blk, shape=(T, T), after=a))
                elif op == "masked":  # ragged: N of the block's T*T elements, past the end masked
                    offs = tl.arange(0, T * T)
                    x = tl.load(x_ptr + (stop + 3 + i) * T * T * F32, shape=(T * T,),
                                mask=offs < N, other=0.5)
                    regs.append(tl.reshape(x, (T, T)))
                elif op == "add":
                    regs.append(a + b)
                elif op == "mul":
                    regs.append(a * 0.5)
                elif op == "max":
                    regs.append(tl.maximum(a, b))
                elif op == "exp":
                    regs.append(tl.exp(a))
                elif op == "dot":
                    regs.append(tl.dot(a, b))
                elif op == "dot_t":
                    regs.append(tl.dot(a, tl.trans(b), acc=a))
                elif op == "reduce":
                    regs.append(a - tl.max(a, axis=1))
                elif op == "carry" and carry:
                    c = r % len(carry)
                    carry[c] = carry[c] + a
                elif op == "store":
                    tl.store(o_ptr, a)
                elif op == "send":
                    if pe == 0:
                        tl.send(dir="E", src=a)
                    else:
                        regs.append(tl.recv(dir="W", shape=(T, T), dtype="f32"))
                elif op == "pinned":
                    regs.append(tl.load(blk, shape=(T, T), pinned=True))
                elif op == "lag2":  # reads the result of two iterations back
                    regs.append(a + older)
                elif op == "older":  # reads only the result of two iterations back: alone in a
                    regs.append(tl.exp(older))  # body, each result is read once, two on
                elif op == "view":
                    regs.append(tl.reshape(tl.reshape(a, (T * T,)), (T, T)))
            older, last = last, regs[-1]
        for h in ((older, last) if older_first else (last, older)):
            tl.store(o_ptr, h)
        for c in carry:
            tl.store(o_ptr, c)

    def args(ctx):
        blocks = 2 * stop + 8
        return ctx.empty((blocks * T, T), "f32"), ctx.empty((T, T), "f32")

    return k, args


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_kernels())
@example(([("add", 0), ("view", 0)], 0, 1, 5, 0, 1))  # a view of a tensor from before the loop
# the vector unit runs through the loop and past it while the DMA unit is in its middle: the
# engine jumped, and the last iterations' tensors read after the loop lost a reader (peak SRAM)
@example(([("pinned", 0), ("lag2", 0), ("store", 244)], 0, 1, 23, 2, 1))
def test_generated_loop_kernels_exact(case):
    k, args = make_loop_kernel(*case)
    _exact(k, args)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_kernels())
@example(([("carry", 1)], 0, 1, 4, 1, 1))  # a handle two iterations old held past the loop
@example(([("carry", 0)], 0, 1, 5, 1, 1))
def test_generated_loop_kernels_with_their_last_iteration_replayed_exact(case):
    """The generated bodies do the same work in every iteration, the last too: replayed with
    the others (replay_last=True), the launch is full tracing's, and verify mode agrees."""
    k, args = make_loop_kernel(*case, replay_last=True)
    _exact(k, args)


def _trace(kernel, args_of, grid=(2, 1)):
    from kernbench.runtime import executor
    ctx = _ctx()
    traced, _, _ = executor.trace_launch(ctx, kernel, grid, args_of(ctx), {}, mode="timing", replay="on")
    return traced.program


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_kernels())
def test_proofs_on_waiting_rows_are_the_proofs_on_flushed_rows(case):
    """The fast path of tl.range's proof (TraceStore.moved_on and reads_any on rows not yet
    flushed: _replay.rows_moved_on and rows_read_any) against the proof read through the
    flushed rows' reader: the same replays, tilings and commands."""
    from kernbench.language.store import TraceStore
    k, args = make_loop_kernel(*case)
    fast = _trace(k, args)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TraceStore, "_pending_rows", lambda self, a, z: None)
        slow = _trace(k, args)
    assert fast.commands.tobytes() == slow.commands.tobytes()
    tf, ts = (p.compact.tiles if p.compact is not None else () for p in (fast, slow))
    assert len(tf) == len(ts)
    for x, y in zip(tf, ts):
        assert x[:5] == y[:5] and x[6] == y[6] and np.array_equal(x[5], y[5])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_kernels(), st.integers(0, 100), st.sampled_from(["extra", "skip", "shape"]))
def test_generated_kernels_outside_the_contract_caught(case, which, how):
    """A body that does something else in one middle iteration: verify mode raises."""
    ops, start, step, trips, n_carry, N = case
    trips = max(trips, loops.PROBES + 3)
    stop = start + step * trips
    # an iteration replay would skip: after the probes, before the last
    odd = start + step * (loops.PROBES + which % (trips - loops.PROBES - 1))
    k0, _ = make_loop_kernel(ops, start, step, trips, n_carry, N)

    def k(x_ptr, o_ptr, *, tl):
        for i in tl.range(start, stop, step):
            x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
            if i == odd:
                if how == "extra":
                    x = tl.exp(x)
                elif how == "shape":
                    x = tl.load(x_ptr, shape=(T, T // 2))
                else:
                    continue
            tl.store(o_ptr, x)
        k0(x_ptr, o_ptr, tl=tl)

    def args(ctx):
        return ctx.empty(((2 * stop + 8) * T, T), "f32"), ctx.empty((T, T), "f32")

    with pytest.raises(KernelError, match="tl.range"):
        _launch(k, args, "verify")


def nested(x_ptr, o_ptr, n_outer, n_inner, *, tl):
    """tl.range in tl.range, the inner loop carrying a value of the outer body, the outer
    carrying the inner's result; addresses moving with both indices."""
    acc = tl.zeros((T, T), "f32")
    for g in tl.range(0, n_outer):
        RUNS.append(("outer", g))
        h = tl.load(x_ptr + g * T * T * F32, shape=(T, T))
        for j in tl.range(0, n_inner):
            RUNS.append(("inner", g, j))
            x = tl.load(x_ptr + (g + j) * T * T * F32, shape=(T, T))
            h = tl.maximum(h, x) + acc
        acc = tl.dot(h, tl.trans(h), acc=acc)
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("n_outer,n_inner", [(3, 9), (8, 8), (12, 5), (6, 30)])
def test_nested_ranges_exact(n_outer, n_inner):
    args = lambda ctx: (ctx.empty(((n_outer + n_inner + 1) * T, T), "f32"),  # noqa: E731
                        ctx.empty((T, T), "f32"), n_outer, n_inner)
    _exact(nested, args)
    RUNS.clear()
    _launch(nested, args, "on", grid=(1, 1))
    outer = [r[1] for r in RUNS if r[0] == "outer"]
    inner = [r for r in RUNS if r[0] == "inner"]
    # the outer body runs for 4 iterations when it is long enough, the inner for 4 per outer run
    assert outer == (list(range(n_outer)) if n_outer < 5 else [0, 1, 2, n_outer - 1])
    assert len(inner) == len(outer) * min(n_inner, 4 if n_inner >= 5 else n_inner)


def kept_views(x_ptr, o_ptr, n_outer, n_inner, *, tl):
    """Each iteration reads the transposed view the iteration before made, of an inner loop and
    of the outer one: after a replay, the first traced iteration reads the view of the last
    replayed one (the handle moved on), which tl.range replay records as a run of views
    (builder.TransposedViews)."""
    prev = tl.trans(tl.load(x_ptr, shape=(T, T)))
    for g in tl.range(0, n_outer):
        x = tl.load(x_ptr + g * T * T * F32, shape=(T, T))
        tl.store(o_ptr, tl.dot(x, prev))
        for j in tl.range(0, n_inner):
            y = tl.load(x_ptr + (g + j) * T * T * F32, shape=(T, T))
            tl.store(o_ptr, tl.dot(y, prev))
            prev = tl.trans(y)
    tl.store(o_ptr, tl.dot(x, prev))


@pytest.mark.parametrize("n_outer,n_inner", [(8, 9), (6, 30)])
def test_views_of_replayed_iterations_stay_legal(n_outer, n_inner):
    args = lambda ctx: (ctx.empty(((n_outer + n_inner + 1) * T, T), "f32"),  # noqa: E731
                        ctx.empty((T, T), "f32"), n_outer, n_inner)
    _exact(kept_views, args)


@st.composite
def _view_runs(draw):
    """Views added one by one and runs of them nested as tl.range replay nests them: a body of
    D numbers from ``first``, its views (singles, or runs of an inner loop inside it) repeated
    R times D apart. Returns the operations and every (number, shape) they name."""
    ops, members = [], set()
    for _ in range(draw(st.integers(1, 6))):
        shape = draw(st.sampled_from([(4, 8), (8, 4)]))
        dims = []
        span = 0
        for _ in range(draw(st.integers(0, 3))):  # from the innermost loop out
            step = span + draw(st.integers(1, 5))
            count = draw(st.integers(1, 4))
            dims.insert(0, (step, count))
            span += step * (count - 1)
        first = draw(st.integers(0, 60))
        nums = {first}
        for step, count in dims:
            nums = {x + j * step for x in nums for j in range(count)}
        ops.append((first, tuple(dims), shape))
        members |= {(x, shape) for x in nums}
    return ops, members


@settings(max_examples=300, deadline=None)
@given(_view_runs(), st.lists(st.tuples(st.integers(-5, 400), st.sampled_from([(4, 8), (8, 4)])),
                              max_size=30))
def test_transposed_view_runs_hold_exactly_their_numbers(case, probes):
    """builder.TransposedViews: runs nested as replay nests them (one run per replayed loop, not
    one per outer iteration) hold exactly the numbers the dims make, and no other."""
    from kernbench.language.builder import TransposedViews

    ops, members = case
    tv = TransposedViews()
    m0 = tv.mark()
    log, singles = [], set()
    for first, dims, shape in ops:
        if dims:
            tv.add_run(first, dims, shape)
            log.append((first, dims, shape))
        else:
            tv.add((first, shape))
            if (first, shape) not in singles:  # a view made again is logged once
                singles.add((first, shape))
                log.append((first, (), shape))
    for item in members:
        assert item in tv
    for item in probes:
        assert (item in tv) == (item in members)
    assert tv.since(m0, tv.mark()) == log


def test_overlapping_view_runs_are_refused():
    from kernbench.language.builder import TransposedViews

    tv = TransposedViews()
    with pytest.raises(ValueError, match="overlap"):
        tv.add_run(0, ((4, 3), (2, 3)), (4, 8))  # the inner run spans 4: 0, 2, 4 | 4, 6, 8
    with pytest.raises(ValueError, match="overlap"):
        tv.add_run(0, ((0, 3),), (4, 8))
    tv.add_run(0, ((5, 3), (2, 3)), (4, 8))
    assert (12, (4, 8)) in tv and (14, (4, 8)) in tv and (13, (4, 8)) not in tv and (15, (4, 8)) not in tv


@pytest.mark.parametrize("left_at", [1, 11])
def test_a_break_replay_would_not_skip_is_no_error(left_at):
    # Left in a traced iteration (before replay starts, or the last one): the program is the one
    # full tracing gives, in every mode.
    def early(x_ptr, o_ptr, n, *, tl):
        for i in tl.range(0, n):
            if i == left_at:
                break
            tl.store(o_ptr, tl.load(x_ptr + i * T * T * F32, shape=(T, T)))

    args = lambda ctx: (ctx.empty((20 * T, T), "f32"), ctx.empty((T, T), "f32"), 12)  # noqa: E731
    runs = [_launch(early, args, mode) for mode in ("off", "on", "verify")]
    assert len({r.program.commands.tobytes() for r in runs}) == 1


# -- cases found by a review (each kept as a test: off, on and verify agree) ---------------------
def _outcomes(kernel, args_of, grid=(1, 1)):
    """Per replay mode, the launch's program bytes or the KernelError's text and line."""
    out = {}
    for mode in ("off", "on", "verify"):
        try:
            r = _launch(kernel, args_of, mode, grid)
            out[mode] = ("ok", r.cycles, r.program.commands.tobytes())
        except KernelError as e:
            out[mode] = ("error", str(e), e.where)
    return out


SEEN_IJ = []


def prefetching_nest(x_ptr, o_ptr, n_outer, n_inner, C, skip_last, *, tl):
    """The inner loop prefetches the next block (its last iteration loads nothing); the outer
    loop's last iteration may do nothing (both allowed: last iterations are traced)."""
    for i in tl.range(0, n_outer):
        if skip_last and i == n_outer - 1:
            continue
        row = x_ptr + i * C * F32
        cur = tl.load(row, shape=(8,))
        acc = tl.zeros((8,), "f32")
        for j in tl.range(0, n_inner):
            SEEN_IJ.append((i, j))
            if j + 1 < n_inner:
                nxt = tl.load(row + (j + 1) * 8 * F32, shape=(8,))
            acc = acc + cur
            cur = nxt
        tl.store(o_ptr, acc)


@pytest.mark.parametrize("skip_last,elements,bad", [(True, 10 * 8 + 17 * 5 + 4, (18, 8)),
                                                    (False, 125, (10, 8))])
def test_an_inner_loop_s_replayed_loads_bound_the_outer_replay(skip_last, elements, bad):
    """The loads of an inner loop's replayed iterations count for the outer loop's bounds (the
    first and last replayed: offsets move linearly): the load leaving the allocation in outer
    iteration i, inner iteration 8, is reported there, as full tracing reports it, not missed
    (the outer loop's traced iterations never reach so far) nor reported elsewhere."""
    out = {}
    for mode in ("off", "on", "verify"):
        SEEN_IJ.clear()
        with pytest.raises(KernelError) as e:
            _launch(prefetching_nest, lambda ctx: (ctx.empty((elements,), "f32"),
                                                   ctx.empty((8,), "f32"), 20, 10, 5, skip_last),
                    mode, grid=(1, 1))
        out[mode] = (str(e.value), SEEN_IJ[-1])
    assert out["off"][1] == bad and "outside allocation" in out["off"][0]
    assert out["on"] == out["off"] == out["verify"]


KINDS = []


def flipping_view(x_ptr, o_ptr, n, *, tl):
    w = tl.load(x_ptr, shape=(T, T))
    v = w
    for _ in tl.range(n):
        v = tl.trans(v)  # a view of w, transposed once more each iteration: no command
        tl.store(o_ptr, tl.dot(v, w))
    KINDS.append(type(v).__name__)
    tl.store(o_ptr, tl.reshape(v, (T * T,)), shape=(T * T,))  # refused for a transposed view


@pytest.mark.parametrize("n", [7, 8])
def test_a_view_whose_kind_changes_each_iteration_is_not_replayed(n):
    """A loop-carried view of a tensor from before the loop, transposed each iteration: the
    commands repeat, the view's kind does not, so the loop is traced (the handles A and B make
    must be alike, kind and shape): after 7 iterations it is a transposed view and the reshape is
    refused, after 8 a plain one, in every mode."""
    KINDS.clear()
    out = _outcomes(flipping_view, lambda ctx: (ctx.empty((T, T), "f32"), ctx.empty((T * T,), "f32"), n))
    assert out["on"] == out["off"] == out["verify"]
    assert out["off"][0] == ("error" if n % 2 else "ok")
    assert set(KINDS) == {"TransposedView" if n % 2 else "TensorHandle"}


VIEW_IDS = []


def view_two_back(x_ptr, o_ptr, n, *, tl):
    z = tl.zeros((T, T), "f32")
    h1 = h2 = z
    for i in tl.range(n):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T), after=h2)  # a gate two iterations back
        if i < n - 1:
            v = tl.trans(h2)  # a view of that tensor
        h2, h1 = h1, x * 2.0
    VIEW_IDS.append(id_owner(v.id)[3])  # (the tensor's number on its PE)
    tl.store(o_ptr, tl.trans(v))


def test_a_view_of_a_tensor_two_iterations_back_is_moved_on():
    """Replay moves a handle on when it names a tensor made from iteration 0 on (as it moves
    operands), not only from the proof's first iteration: a view made in iteration 3 (B, the body
    reading two iterations back) of iteration 1's tensor names, after the loop, the tensor full
    tracing's does, and the transposed view stays a legal one."""
    VIEW_IDS.clear()
    out = _outcomes(view_two_back, lambda ctx: (ctx.empty((12 * T, T), "f32"), ctx.empty((T, T), "f32"), 12))
    assert out["off"][0] == "ok" and out["on"] == out["off"] == out["verify"]
    assert len(set(VIEW_IDS[:2])) == 1  # off and on (verify traces twice)


ZIP_SEEN = []


def zipped(x_ptr, o_ptr, n, *, tl):
    def g1():
        for i in tl.range(n):
            ZIP_SEEN.append(("g1", i))
            yield tl.load(x_ptr + i * T * T * F32, shape=(T, T))

    def g2():
        for j in tl.range(n):
            ZIP_SEEN.append(("g2", j))
            yield tl.exp(tl.load(x_ptr + (n + j) * T * T * F32, shape=(T, T)))
    acc = tl.zeros((T, T), "f32")
    for a, b in zip(g1(), g2()):
        acc = tl.dot(a, b, acc=acc)
    tl.store(o_ptr, acc)


def test_loops_that_do_not_nest_are_traced():
    """Two generators, each over its own tl.range, advanced together (zip): neither loop's
    iterations are its body (the other's run inside them), so both are traced in full, and verify
    has nothing to complain of (it saw the loops as nested: a negative count of loads)."""
    ZIP_SEEN.clear()
    n = 6
    out = _outcomes(zipped, lambda ctx: (ctx.empty(((2 * n + 8) * T, T), "f32"), ctx.empty((T, T), "f32"), n))
    assert out["off"][0] == "ok" and out["on"] == out["off"] == out["verify"]
    assert ZIP_SEEN.count(("g1", n - 2)) == 4  # traced by off, on and verify's two passes


def test_only_the_handles_something_holds_are_compared_and_moved():
    """The proof's handle checks skip a body's temporaries (nothing but the tracking list holds
    them: no kernel can see them) and replay moves on only the held ones naming a tensor from
    iteration 0 on; a held pair that differs in kind, shape or id step still fails the proof."""
    from kernbench.common.pe_commands import TensorHandle
    from kernbench.language.semantic import TransposedView
    from kernbench._core._replay import handles_alike, live_handles

    def h(i, kind=TensorHandle, shape=(T, T)):
        return kind(i, 0, shape, "f32", 4 * T * T)

    held = [h(100), h(110)]  # A's and B's loop-carried handle, D = 10
    track = [h(101), held[0], h(111), held[1]]  # temporaries (only the list) and carried ones
    track += [h(3), h(3)]  # held below: a view of a tensor from before the loop, kept the same
    keep = track[4:]
    assert handles_alike(track, 0, 2, 2, 10, 50)
    assert live_handles(track, 0, 50) == held
    assert live_handles(track, 4, 0) == keep
    assert live_handles(track, 0, 50, 2) == held[:1] and live_handles(track, 2, 0, 2) == []
    track[0] = h(105, TransposedView)  # a temporary of another kind, shape and id: unseen
    assert handles_alike(track, 0, 2, 2, 10, 50)
    for bad in (h(110, TransposedView), h(110, shape=(T, 1)), h(111)):
        track[3] = bad
        assert not handles_alike(track, 0, 2, 2, 10, 50)
        track[3] = held[1]
    with pytest.raises(ValueError):
        handles_alike(track, 0, 5, 2, 10, 50)
    for a, z in ((7, -1), (3, 2), (0, 7)):
        with pytest.raises(ValueError):
            live_handles(track, a, 0, z)


ALTERNATE = []  # the iterations transposed_every_other's body ran


def transposed_every_other(x_ptr, o_ptr, n, *, tl):
    """A temporary view transposed in every other iteration (the index choosing a view, outside
    the contract)."""
    w = tl.load(x_ptr, shape=(T, T))
    for i in tl.range(n):
        ALTERNATE.append(i)
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        tmp = tl.trans(x) if i % 2 else tl.reshape(x, (T, T))
        tl.store(o_ptr, tl.dot(w, tmp))


@pytest.mark.parametrize("n", [7, 8])
def test_a_temporary_view_whose_kind_alternates_is_not_replayed(n):
    """The handles of such a view are temporaries, which the proof does not compare, but A and B
    still differ (their dots, and the transposed views they make): the loop is traced in full
    and replay gives full tracing's launch."""
    args = lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n)  # noqa: E731
    off = _launch(transposed_every_other, args, "off")
    ALTERNATE.clear()
    on = _launch(transposed_every_other, args, "on")
    assert ALTERNATE == list(range(n)) * 2  # (both PEs of the grid)
    assert_same_launch(off, on)


B8 = 8


def kept_mask(x_ptr, o_ptr, n, where, *, tl):
    """A tl.arange mask (known while tracing) made every iteration and kept one more in a
    variable; ``where`` uses it: after the loop, in the (traced) last iteration, or after an
    inner loop inside an outer one. Its unmasked elements reach past ``o``'s end."""
    for _ in tl.range(3 if where == "nested" else 1):
        m = m_prev = None
        for i in tl.range(n):
            m_prev = m
            m = tl.arange(0, B8) < 6
            x = tl.load(x_ptr + i * B8 * F32, shape=(B8,))
            if where == "last" and i == n - 1:
                tl.store(o_ptr + n * B8 * F32, x, mask=m_prev)
            else:
                tl.store(o_ptr + i * B8 * F32, x)
        if where != "last":
            tl.store(o_ptr + n * B8 * F32, x, mask=m_prev)


def kept_divisor(x_ptr, o_ptr, n, where, *, tl):
    """A known int32 tensor holding a 0 (or, ``where="moving"``, one whose values follow the
    index through a Python number: outside the contract), kept one iteration and used as a
    divisor after the loop."""
    d = d_prev = None
    for i in tl.range(n):
        d_prev = d
        d = tl.arange(0, B8) - 3 if where != "moving" else tl.arange(0, B8) + (i % 2)
        tl.store(o_ptr, tl.load(x_ptr + i * B8 * F32, shape=(B8,)))
    tl.store(o_ptr, (tl.arange(0, B8) + 1) // d_prev)


@pytest.mark.parametrize("kernel, where, n", [(kept_mask, "after", 12), (kept_mask, "last", 12),
                                              (kept_mask, "nested", 12), (kept_divisor, "after", 7),
                                              (kept_divisor, "moving", 7), (kept_divisor, "moving", 8)])
def test_a_known_value_kept_past_replayed_iterations_stays_known(kernel, where, n):
    """A handle moved on to a replayed iteration's tensor whose value is known while tracing
    keeps that value when the proof's two iterations made the same one there (else the loop is
    traced): a later masked store or division checks it as full tracing does, and raises the
    same error at the same line (a division by zero; a masked store past the allocation)."""
    out = _outcomes(kernel, lambda ctx: (ctx.empty((n * B8,), "f32"), ctx.empty((n * B8 + 2,), "f32"),
                                         n, where))
    assert out["on"] == out["off"] == out["verify"]
    if where == "moving":  # the last kept value (iteration n - 2) holds a 0 when n is even
        assert out["off"][0] == ("error" if n % 2 == 0 else "ok")
    else:
        assert out["off"][0] == "error"
    if out["off"][0] == "error":
        assert ("division or remainder by zero" if kernel is kept_divisor else "masked store") in out["off"][1]


BODIES_RUN = []


def carried_offsets(x_ptr, o_ptr, n, *, tl):
    """A known index vector carried from one iteration to the next (``offs = offs + B8``, its
    value computed only when read): its mask lets an element past ``o``'s end in the last
    iteration. A known value computed (read by a mask) and carried across iterations turns
    replay off for the loop, so every iteration's Python runs and the store is refused at its
    element in the last one."""
    offs = tl.arange(0, B8) - B8
    for i in tl.range(n):
        BODIES_RUN.append(i)
        offs = offs + B8
        tl.store(o_ptr + i * B8 * F32, tl.load(x_ptr + i * B8 * F32, shape=(B8,)),
                 mask=offs < n * B8 - 1)  # (o holds n * B8 - 2 elements)


def carried_chain(x_ptr, o_ptr, n, read, *, tl):
    """A known value carried from one iteration to the next that nothing reads in the loop
    (``acc = acc + 1.0`` on a fill): replayed, its value unknown; read after the loop (a mask)
    when ``read``, which traces the launch again with the loop in full."""
    acc = tl.zeros((B8,), "f32")
    for i in tl.range(n):
        BODIES_RUN.append(i)
        acc = acc + 1.0
        tl.store(o_ptr + i * B8 * F32, tl.load(x_ptr + i * B8 * F32, shape=(B8,)))
    if read:  # (acc is n everywhere: the mask lets the store past o's end when n > 3)
        tl.store(o_ptr + n * B8 * F32, tl.zeros((B8,), "f32"), mask=acc > 3)


def counting_down(x_ptr, n, op, *, tl):
    """A divisor or shift count carried across iterations, checked by the body (d = 5, 4, ...,
    0 at iteration 5): the loop is traced, so the zero is found where full tracing finds it."""
    d = tl.full((8,), 5, "int32")
    v = tl.load(x_ptr, shape=(8,), dtype="int32")
    for _ in tl.range(0, n, replay_last=True):
        tl.store(x_ptr, v // d if op == "//" else v << (5 - d) * 8)
        d = d - 1


@pytest.mark.parametrize("op", ["//", "<<"])
def test_a_known_divisor_carried_across_iterations_is_checked_in_every_iteration(op):
    """A breaker: replayed with its value unknown, a count-down divisor's zero (a shift count
    past 31) in a skipped iteration went unchecked with replay on; every other mode refused it."""
    n = 10
    out = _outcomes(counting_down, lambda ctx: (ctx.replicate(np.ones(8, np.int32), dtype="int32"), n, op))
    assert out["on"] == out["off"] == out["verify"]
    assert out["off"][0] == "error" and ("by zero" if op == "//" else "shift count 32") in out["off"][1]
    ctx = _ctx()
    with pytest.raises(KernelError, match="by zero" if op == "//" else "shift count 32"):
        ctx.launch(counting_down, (1, 1), ctx.replicate(np.ones(8, np.int32), dtype="int32"), n, op,
                   mode="functional")


def test_a_known_value_carried_across_iterations():
    n = 9
    BODIES_RUN.clear()
    # (a ReplayWarning says so, as for Python state: a review found a 350x slower launch silent)
    slow = r"tl\.range: a value known while tracing is carried from one iteration to the next"
    out = _outcomes(carried_offsets, lambda ctx: (ctx.empty((n * B8,), "f32"), ctx.empty((n * B8 - 2,), "f32"), n))
    assert BODIES_RUN == list(range(n)) * 4  # off, on, verify (twice): every body run
    assert out["on"] == out["off"] == out["verify"]
    assert out["off"][0] == "error" and "masked store" in out["off"][1]
    assert f"element {n * B8 - 2} of allocation" in out["off"][1]
    ctx = _ctx()
    with pytest.warns(ReplayWarning, match=slow) as seen:
        (lp,) = ctx.trace(carried_offsets, (1, 1), ctx.empty((n * B8,), "f32"), ctx.empty((n * B8,), "f32"), n,
                          mode="timing", replay="on").loops
    assert lp.replayed == 0 and lp.why.startswith("a value known while tracing is carried from one iteration")
    assert len(seen) == 1 and str(seen[0].message).startswith("PE (0, 0) at test_tl_range.py:")
    assert str(seen[0].message).endswith("The loop was traced in full (exact, without replay's speed: "
                                         "docs/language.md, 'tl.range')")
    # a chain nothing in the loop reads (a review: it turned replay off) replays, its value
    # unknown; read after the loop, the launch is traced again, the loop in full: exact
    for read in (False, True):
        BODIES_RUN.clear()
        args = lambda ctx, read=read: (ctx.empty((n * B8,), "f32"), ctx.empty((n * B8,), "f32"), n, read)  # noqa: E731
        out = _outcomes(carried_chain, args)
        assert out["on"] == out["off"] == out["verify"]
        assert out["off"][0] == ("error" if read else "ok")
        on = list(range(loops.PROBES)) + [n - 1] + (list(range(n)) if read else [])
        assert BODIES_RUN == list(range(n)) + on + on + ([] if read else list(range(n)))
        if not read:
            (lp,) = ctx.trace(carried_chain, (1, 1), *args(ctx), mode="timing", replay="on").loops
            assert lp.replayed == n - loops.PROBES - 1


def catches_its_bad_load(x_ptr, o_ptr, n, *, tl):
    """The load of iteration 20 leaves its allocation; the kernel catches the error and goes on
    after the loop (a probe for how many blocks fit)."""
    acc = tl.zeros((B8,), "f32")
    try:
        for i in tl.range(0, n):
            acc = acc + tl.load(x_ptr + i * B8 * F32, shape=(B8,))
    except KernelError:
        pass
    tl.store(o_ptr, acc)


def test_verify_accepts_leaving_at_an_iteration_replay_traces():
    """Replay stops before iteration 20 (its load leaves the allocation) and traces it, so the
    kernel leaves the loop there with replay on too: verify finds on and off alike and no
    iteration skipped (it said the loop was left in an iteration replay skips)."""
    out = _outcomes(catches_its_bad_load, lambda ctx: (ctx.empty((20 * B8,), "f32"), ctx.empty((B8,), "f32"), 100))
    assert out["off"][0] == "ok" and out["on"] == out["off"] == out["verify"]


# -- a tl.range is iterable like a range ---------------------------------------------------------
def test_a_tl_range_runs_whole_every_time_it_is_iterated():
    # (a review's case: the object was a generator, so a second for over it ran no iteration)
    # 6 iterations twice, then 6 x 6 nested over the same object: 12 + 36 additions of 1.
    def kernel(o_ptr, *, tl):
        if tl.program_id(0):
            return
        rr = tl.range(0, 6)
        assert len(rr) == 6
        acc = tl.zeros((T,), "f32")
        for _ in rr:
            acc = acc + 1.0
        for _ in rr:
            acc = acc + 1.0
        for _ in rr:
            for _ in rr:
                acc = acc + 1.0
        tl.store(o_ptr, acc)

    ctx = _ctx()
    o = ctx.empty((T,), "f32")
    ctx.launch(kernel, (2, 1), o)
    np.testing.assert_array_equal(ctx.read(o, (0, 0)), np.full(T, 48.0, np.float32))
    _exact(kernel, lambda c: (c.empty((T,), "f32"),))


def reversed_loop(x_ptr, o_ptr, n, *, tl):
    """acc = ((x[n-1] * 2 + x[n-2]) * 2 + ...) + x[0]: the order of the blocks shows in the value."""
    acc = tl.zeros((T, T), "f32")
    for i in reversed(tl.range(0, n, replay_last=True)):
        RUNS.append(i)
        acc = acc * 2.0 + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def test_reversed_tl_range_runs_the_range_backwards_and_replays():
    """reversed(tl.range(0, n, replay_last=True)) is tl.range(n - 1, -1, -1, replay_last=True):
    the blocks in the order n-1 .. 0 (the value is Horner's sum, which the order decides),
    iterations n-1, n-2, n-3 traced and the rest (the last, index 0, too) replayed exactly."""
    n = 9
    x = np.random.default_rng(3).standard_normal((n * T, T)).astype(np.float32)
    ctx = _ctx()
    xp, o = ctx.put(x, (0, 0)), ctx.empty((T, T), "f32")
    RUNS.clear()
    ctx.launch(reversed_loop, (1, 1), xp, o, n, mode="functional")
    want = np.zeros((T, T), np.float32)
    for i in range(n - 1, -1, -1):
        want = want * np.float32(2.0) + x[i * T:(i + 1) * T]
    np.testing.assert_array_equal(ctx.read(o, (0, 0)), want)
    assert RUNS == list(range(n - 1, -1, -1))
    RUNS.clear()
    _launch(reversed_loop, lambda c: (c.empty((n * T, T), "f32"), c.empty((T, T), "f32"), n), "on",
            grid=(1, 1))
    assert RUNS == [8, 7, 6]
    _exact(reversed_loop, lambda c: (c.empty((n * T, T), "f32"), c.empty((T, T), "f32"), n))


# -- a slot chosen by the index ----------------------------------------------------------------
@pytest.mark.parametrize("n", [8, 9])
def test_a_double_buffer_whose_slot_the_index_picks_is_found(n):
    # (a review's case) bufs[i % 2]: replay moved both slots' handles on by the iterations it
    # skipped, so after an odd number the slots held each other's tensors and the load after the
    # loop waited for the wrong one (9 iterations: the program differed), silently.
    # The handles changing slots are found (tests/test_tl_range_state.py): traced in full.
    def kernel(x_ptr, o_ptr, n, *, tl):
        bufs = [tl.zeros((T, T)), tl.zeros((T, T))]
        for i in tl.range(0, n):
            x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
            bufs[i % 2] = tl.exp(x)
        y = tl.load(x_ptr, shape=(T, T), after=bufs[1])
        tl.store(o_ptr, y)

    args = lambda c: (c.empty((n * T, T), "f32"), c.empty((T, T), "f32"), n)  # noqa: E731
    off = _launch(kernel, args, "off")
    with pytest.warns(ReplayWarning, match="the body reads `bufs` before assigning it"):
        on = _launch(kernel, args, "on")
    assert on.program.commands.tobytes() == off.program.commands.tobytes()
    assert on.cycles == off.cycles


# -- replay_last: the last iteration replayed with the others ------------------------------------
@pytest.mark.parametrize("n", [3, 4, 5, 6, 50])
def test_replay_last_replays_the_last_iteration_exactly(n):
    """The body's Python runs for iterations 0, 1 and 2 only (all of them below 4 iterations:
    nothing would be left to replay); the launch is full tracing's, handles after the loop
    naming the last iteration's tensors."""
    _exact(flash_like, _flash_args(n, last=True))
    RUNS.clear()
    _launch(flash_like, _flash_args(n, last=True), "on", grid=(1, 1))
    assert RUNS == (list(range(n)) if n < loops.PROBES + 1 else [0, 1, 2])


def last_differs(x_ptr, o_ptr, n, *, tl):
    """Outside replay_last's promise: the last iteration does one more command."""
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n, replay_last=True):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        acc = acc + x
        if i == n - 1:
            acc = acc * 2.0
    tl.store(o_ptr, acc)


def test_verify_catches_a_last_iteration_that_does_not_repeat_the_body():
    """replay_last on a loop whose last iteration differs: replay emits the body instead (the
    launch differs from full tracing's), and verify mode names the last iteration."""
    n = 9
    args = lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n)  # noqa: E731
    on, off = _launch(last_differs, args, "on"), _launch(last_differs, args, "off")
    assert on.program.n_commands == off.program.n_commands - 2  # (one command per PE)
    with pytest.raises(KernelError, match=r"iteration 8 \(index 8\) does not repeat the loop body"):
        _launch(last_differs, args, "verify")


@pytest.mark.parametrize("keyword", ["replay_last", "replay_first", "shapes_move"])
@pytest.mark.parametrize("bad", [1, 0, "yes", None, np.int64(1), np.array(True)])
def test_replay_keywords_must_be_bools(bad, keyword):
    def k(x_ptr, o_ptr, *, tl):
        for _ in tl.range(0, 4, **{keyword: bad}):
            tl.store(o_ptr, tl.load(x_ptr, shape=(T, T)))

    with pytest.raises(KernelError, match=rf"tl.range: {keyword} must be True or False \(or a numpy bool\), got"):
        _launch(k, lambda ctx: (ctx.empty((T, T), "f32"), ctx.empty((T, T), "f32")), "on")


@pytest.mark.parametrize("keyword", ["replay_last", "replay_first", "shapes_move"])
@pytest.mark.parametrize("flag", [True, False])
def test_replay_keywords_take_a_numpy_bool_as_its_value(flag, keyword):
    """A sweep's axis of np.array([True, False]) gives numpy bools: each flag reads one as the
    bool it is (as load's pinned and cast's saturate do), the same program as the Python bool's."""
    def k(x_ptr, o_ptr, value, *, tl):
        for i in tl.range(0, 6, **{keyword: value}):
            tl.store(o_ptr, tl.load(x_ptr + 4 * T * i, shape=(T, T)) * 2.0)

    args = lambda ctx, v: (ctx.empty((6 * T, T), "f32"), ctx.empty((T, T), "f32"), v)  # noqa: E731
    a = _launch(k, lambda ctx: args(ctx, flag), "on")
    b = _launch(k, lambda ctx: args(ctx, np.bool_(flag)), "on")
    assert a.program.commands.tobytes() == b.program.commands.tobytes() and a.cycles == b.cycles


def test_tl_range_repr_names_replay_last():
    seen = []

    def k(o_ptr, *, tl):
        seen.extend([repr(tl.range(2, 9, 3)), repr(tl.range(5, replay_last=True)),
                     repr(reversed(tl.range(2, 9, 3, replay_first=True)))])
        tl.store(o_ptr, tl.zeros((T, T), "f32"))

    _launch(k, lambda ctx: (ctx.empty((T, T), "f32"),), "on", grid=(1, 1))
    assert seen == ["tl.range(2, 9, 3)", "tl.range(0, 5, 1, replay_last=True)",
                    "tl.range(8, -1, -3, replay_first=True)"]


def kept_from_before_a(x_ptr, o_ptr, n, last, *, tl):
    """Handles held from iteration 0 at the end of iteration 2: one kept (first), one two
    iterations old in every iteration (older). Replay moves neither; a traced last iteration
    assigns older again, so replay_last traces it here."""
    newest = older = first = tl.zeros((T, T), "f32")
    for i in tl.range(0, n, replay_last=last):
        RUNS.append(i)
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i == 0:
            first = x
        older, newest = newest, x + 1.0
    tl.store(o_ptr, first)
    tl.store(o_ptr, older)
    tl.store(o_ptr, newest)


@pytest.mark.parametrize("n", [5, 6, 30])
def test_replay_last_traces_the_last_iteration_when_a_handle_from_iteration_0_is_held(n):
    _exact(kept_from_before_a, _flash_args(n, last=True))
    RUNS.clear()
    _launch(kept_from_before_a, _flash_args(n, last=True), "on", grid=(1, 1))
    assert RUNS == [0, 1, 2, n - 1]


def chain(x_ptr, o_ptr, n, depth, last, *, tl):
    """Handles passed down a chain of ``depth`` variables, the oldest stored after the loop."""
    held = [tl.zeros((T, T), "f32")] * depth
    for i in tl.range(0, n, replay_last=last):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T), after=held[-1])
        held = held[1:] + [x + 1.0]
    tl.store(o_ptr, held[0])


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("n", [5, 12])
def test_handles_held_two_iterations_old_are_replayed_and_three_are_caught(n, last):
    """Within the contract (docs/language.md): a chain of three (its oldest two iterations old)
    is exactly full tracing's. A chain of four holds one three iterations old, which no traced
    iteration moves on: outside it, and verify says so."""
    args = lambda depth: lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n,  # noqa: E731
                                      depth, last)
    _exact(chain, args(3))
    with pytest.raises(KernelError, match=r"changes the program.*more than two iterations old"):
        _launch(chain, args(4), "verify")


def index_after_the_loop(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n, replay_last=True):
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    for _ in range(i):  # the body's index after the loop: 2 with replay_last, not n - 1
        acc = acc * 2.0
    tl.store(o_ptr, acc)


def test_verify_names_a_value_a_replay_last_body_left_behind():
    n = 9
    args = lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n)  # noqa: E731
    on, off = _launch(index_after_the_loop, args, "on"), _launch(index_after_the_loop, args, "off")
    assert on.program.n_commands < off.program.n_commands
    with pytest.raises(KernelError, match=r"after a loop with replay_last=True, a Python value"):
        _launch(index_after_the_loop, args, "verify")


def index_addresses_after_the_loop(x_ptr, o_ptr, n, how, *, tl):
    """After a replay_last loop the index is a traced iteration's (2), not n - 1: a load, a
    store or a load's other= that uses it after the loop is the same timing-mode program with a
    different address or value (commands hold neither)."""
    for i in tl.range(0, n, replay_last=True):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    if how == "store":
        tl.store(o_ptr + i * T * T * F32, x)
    elif how == "load":
        tl.store(o_ptr, tl.load(x_ptr + i * T * T * F32, shape=(T, T)) + x)
    else:  # other=
        m = tl.arange(0, T)[:, None] < T - 1
        tl.store(o_ptr, tl.load(x_ptr, shape=(T, T), mask=m, other=float(i)) + x)


@pytest.mark.parametrize("how", ["store", "load", "other"])
def test_an_address_after_a_replay_last_loop_that_uses_its_index_is_the_same_program(how):
    # (a review: the store after the loop goes to row 2 with replay, row 8 traced in full. A
    # timing-mode program holds no element offsets: the launch is full tracing's, cycles,
    # counters and event record; verify has nothing to report, bar an error full tracing
    # raises; functional mode traces every iteration and stores where full tracing does. The
    # prefill kernel's pipeline, drained after its replay_last loops, stores its last blocks so.)
    n = 9
    args = lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((n * T, T), "f32"), n, how)  # noqa: E731
    _exact(index_addresses_after_the_loop, args)
    if how == "store":
        ctx = _ctx()
        x = ctx.replicate(np.ones((n * T, T), np.float32))
        o = ctx.replicate(np.zeros((n * T, T), np.float32))
        ctx.launch(index_addresses_after_the_loop, (1, 1), x, o, n, how, mode="functional")
        rows = np.flatnonzero(ctx.read(o, (0, 0)).reshape(n, -1).any(axis=1))
        assert rows.tolist() == [n - 1]
    if how != "store":
        return
    # out of bounds in full tracing only: verify gives full tracing's error
    small = lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((4 * T, T), "f32"), n, "store")  # noqa: E731
    assert _launch(index_addresses_after_the_loop, small, "on").cycles > 0
    for replay in ("off", "verify"):
        with pytest.raises(KernelError, match=r"store at address 0x[0-9a-f]+ is outside every device "
                                              r"allocation \(1024 bytes past the end"):
            _launch(index_addresses_after_the_loop, small, replay)


# -- replay_first: iterations 0 and 1 prove the repetition ---------------------------------------
def closed_body(x_ptr, o_ptr, n, last, *, tl):
    """Each iteration reads only what it loads itself: nothing carried across iterations."""
    for i in tl.range(0, n, replay_last=last, replay_first=True):
        RUNS.append(i)
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        s = tl.dot(x, tl.trans(x))
        tl.store(o_ptr + i * T * T * F32, tl.exp(s) + x)


def _blocks_args(n, last=False):
    return lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((n * T, T), "f32"), n, last)


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("n", [2, 3, 4, 5, 9, 40])
def test_replay_first_traces_iterations_0_and_1_of_a_closed_body(n, last):
    """A body that carries nothing: iterations 0 and 1 prove it, replay emits 2 .. n - 2 (and
    the last with replay_last), and the launch is full tracing's; verify mode agrees. Loops
    too short to leave a replayed iteration are traced in full."""
    _exact(closed_body, _blocks_args(n, last))
    RUNS.clear()
    _launch(closed_body, _blocks_args(n, last), "on", grid=(1, 1))
    tail = [] if last else [n - 1]
    assert RUNS == (list(range(n)) if n < 3 + len(tail) else [0, 1] + tail)


def carried(x_ptr, o_ptr, n, kind, *, tl):
    """replay_first on bodies iterations 0 and 1 cannot prove: each is exact all the same, its
    iteration 2 traced. ``kind``: what the body carries."""
    c = tl.load(x_ptr, shape=(T, T))
    acc = older = newest = first = c
    for i in tl.range(0, n, replay_first=True):
        RUNS.append(i)
        x = tl.load(x_ptr + (i + 1) * T * T * F32, shape=(T, T))
        if kind == "acc":  # loop-carried: iteration 0 reads c where iteration 1 reads 0's
            acc = acc + x
        elif kind == "constant":  # c read in every iteration: as `a = b = init` below, in 0 and 1
            tl.store(o_ptr, x * c)
        elif kind == "lag2":  # read two iterations back: c in 0 and 1, iteration 0's in 2
            tl.store(o_ptr, x + older)
            older, newest = newest, x
        elif kind == "kept":  # iteration 0's x kept, not read: held after iteration 1
            if i == 0:
                first = x
            tl.store(o_ptr, x + 1.0)
        elif kind == "older":  # iteration 0's x held two iterations, not read
            older, newest = newest, x + 1.0
    tl.store(o_ptr, acc)
    tl.store(o_ptr, older)
    tl.store(o_ptr, newest)
    tl.store(o_ptr, first)


@pytest.mark.parametrize("kind", ["acc", "constant", "lag2", "kept", "older"])
@pytest.mark.parametrize("n", [5, 12])
def test_replay_first_traces_iteration_2_where_0_and_1_cannot_prove_it(n, kind):
    """Iteration 1 reads a tensor from before the loop or iteration 0's, or a handle iteration
    0 made is still held after iteration 1: a constant read in both looks as the first value
    of one read two iterations back (`a = b = init`), a handle held two iterations
    (`older, newest = newest, x`) as one kept from iteration 0 (`if i == 0: first = x`), and
    only iteration 2 tells them apart; so the proof is iterations 1 and 2 (2 and 3 two
    iterations back), as without the keyword."""
    args = lambda ctx: (ctx.empty(((n + 2) * T, T), "f32"), ctx.empty((T, T), "f32"), n, kind)  # noqa: E731
    _exact(carried, args)
    RUNS.clear()
    _launch(carried, args, "on", grid=(1, 1))
    probes = loops.PROBES + 2 if kind == "lag2" else loops.PROBES  # (A = 3, B = 4: as above)
    assert RUNS == (list(range(n)) if n < probes + 2 else list(range(probes)) + [n - 1])


def chain_of_three(x_ptr, o_ptr, n, outer, *, tl):
    """A chain of three handles (within the contract) through a loop of n iterations with
    replay_first and replay_last, ``outer`` times inside an outer tl.range."""
    for i in tl.range(0, outer):
        a = b = c = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        for j in tl.range(0, n, replay_last=True, replay_first=True):
            RUNS.append(j)
            y = tl.load(x_ptr + (n * i + j + 1) * T * T * F32, shape=(T, T)) + 1.0
            tl.store(o_ptr + j * T * T * F32, y)
            a, b, c = b, c, y
        tl.store(o_ptr, a + b + c)


@pytest.mark.parametrize("outer", [1, 6])
@pytest.mark.parametrize("n", [3, 4, 5])
def test_replay_first_and_last_on_a_short_loop_trace_each_iteration_once(n, outer):
    """Iterations 0 and 1 cannot prove a body holding a handle of iteration 0 (the chain), so
    1 and 2 do; on 3 iterations that leaves none to replay, and the last iteration, traced
    because a handle from before iteration 1 is held, was one of the probes. Verify mode ran
    it twice and refused a kernel within the contract (a review's case)."""
    args = lambda ctx: (ctx.empty(((n * outer + 8) * T, T), "f32"),  # noqa: E731
                        ctx.empty((n * T, T), "f32"), n, outer)
    _exact(chain_of_three, args)
    if outer == 1:  # verify: the loop with replay, then in full; neither runs an index twice
        RUNS.clear()
        _launch(chain_of_three, args, "verify", grid=(1, 1))
        first, full = RUNS[:-n], RUNS[-n:]
        assert full == list(range(n)) and first == sorted(set(first)) and first[-1] == n - 1


def first_off_the_line(x_ptr, o_ptr, n, last, *, tl):
    """Outside replay_first's promise: iteration 0 loads block 1, iteration i block 2 i."""
    for i in tl.range(0, n, replay_last=last, replay_first=True):
        x = tl.load(x_ptr + (1 if i == 0 else 2 * i) * T * T * F32, shape=(T, T))
        tl.store(o_ptr, x + 1.0)


@pytest.mark.parametrize("last", [False, True])
def test_verify_catches_a_first_iteration_off_the_others_line(last):
    """The addresses of iteration 0 are the one thing iterations 0 and 1 cannot check: replay
    moves iteration 1's loads on by iteration 0's step. Timing does not depend on addresses
    (the launch is full tracing's, its commands the same), but the loads' bounds checks do:
    with 2 n + 1 blocks every load is in bounds, and verify mode names iteration 2 and the
    load; with n + 1, full tracing refuses the first load past the end where replay with
    replay_last finds none, and verify refuses the kernel."""
    n = 9
    args = lambda blocks: lambda ctx: (ctx.empty((blocks * T, T), "f32"),  # noqa: E731
                                       ctx.empty((T, T), "f32"), n, last)
    on, off = _launch(first_off_the_line, args(2 * n + 1), "on"), \
        _launch(first_off_the_line, args(2 * n + 1), "off")
    assert_same_launch(on, off)
    with pytest.raises(KernelError, match=r"iteration 2 \(index 2\) does not repeat the loop body: "
                                          r"its load/store #0 reads element.*instead \(replay_first=True: "
                                          r"iterations 0 and 1 proved it"):
        _launch(first_off_the_line, args(2 * n + 1), "verify")
    with pytest.raises(KernelError, match=r"load"):
        _launch(first_off_the_line, args(n + 1), "off")
    with pytest.raises(KernelError):
        _launch(first_off_the_line, args(n + 1), "verify")


def test_tl_range_repr_names_replay_first():
    seen = []

    def k(o_ptr, *, tl):
        seen.extend([repr(tl.range(5, replay_first=True)),
                     repr(tl.range(1, 5, 2, replay_last=True, replay_first=True))])
        tl.store(o_ptr, tl.zeros((T, T), "f32"))

    _launch(k, lambda ctx: (ctx.empty((T, T), "f32"),), "on", grid=(1, 1))
    assert seen == ["tl.range(0, 5, 1, replay_first=True)",
                    "tl.range(1, 5, 2, replay_last=True, replay_first=True)"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_kernels(), st.booleans())
@example(([("load", 0), ("store", 0)], 0, 1, 6, 0, 1), False)  # closed: 0 and 1 prove it
@example(([("load", 0), ("lag2", 3)], 0, 1, 7, 0, 1), True)  # iteration 0's read in 2
# (a fuzz case) a window whose first value shifts out onto a view of a fill from before the loop:
# its state from iteration 0's end to 1's read as index-picked; iterations 1 and 2 prove it
@example(([("send", 0), ("view", 1)], 0, 1, 6, 1, 1), False)
@example(([("send", 24977), ("view", 42625)], 3, 3, 7, 1, 26), False)
def test_generated_loop_kernels_with_their_first_iteration_proving_exact(case, last):
    """The generated bodies' addresses are on one line from iteration 0 (replay_first's
    promise): whether iterations 0 and 1 prove the repetition or 1 and 2 do, the launch is
    full tracing's, and verify mode agrees."""
    k, args = make_loop_kernel(*case, replay_last=last, replay_first=True)
    _exact(k, args)


def test_a_window_of_three_the_last_iteration_does_not_shift_is_caught_by_verify():
    """Outside the contract (docs/language.md): replay leaves iteration 0's tensor in the
    window's oldest slot, which only the last iteration's shift would replace; the program
    differs from full tracing, and verify mode says so."""
    n = 12
    args = lambda ctx: (ctx.empty((n * T, T), "f32"), ctx.empty((T, T), "f32"), n, 3, False)  # noqa: E731
    off, on = _launch(keeps_first_and_a_window, args, "off"), _launch(keeps_first_and_a_window, args, "on")
    assert off.program.commands.tobytes() != on.program.commands.tobytes()
    with pytest.raises(KernelError, match=r"tl.range replay \(verify mode\) changes the program"):
        _launch(keeps_first_and_a_window, args, "verify")


@pytest.mark.parametrize("how", ["copy", "deepcopy", "replace", "pickle"])
def test_a_copied_handle_carried_across_replay_is_refused_not_read_as_another_tensor(how):
    # (a review: the copy was not moved on with the iterations replay emits, so the traced
    # iteration after them read iteration 2's tensor: 26,120 cycles against 26,334, silently)
    import copy
    import dataclasses
    import pickle

    make = {"copy": copy.copy, "deepcopy": copy.deepcopy, "replace": dataclasses.replace,
            "pickle": lambda h: pickle.loads(pickle.dumps(h))}[how]
    ctx = Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.zeros(8 * 16, np.float32))
    o = ctx.empty((8 * 16,), "f32")
    def k(x_ptr, o_ptr, *, tl):
        acc = tl.zeros((16,))
        for i in tl.range(0, 8):
            acc = make(acc + tl.load(x_ptr + 4 * 16 * i, shape=(16,)))
            tl.store(o_ptr + 4 * 16 * i, acc)

    lines = [k.__code__.co_firstlineno + 3]

    full = ctx.launch(k, (1, 1), x, o, mode="timing", replay="off").cycles
    assert ctx.launch(k, (1, 1), x, o).cycles == full  # functional mode traces every iteration
    with pytest.raises(KernelError, match=rf"PE \(0, 0\) at test_tl_range.py:{lines[-1]}: add "
                                                    r"operand names tensor #\d+, made in an iteration "
                                                    r"of the tl.range loop at test_tl_range.py:\d+ "
                                                    r"that proved the loop"):
        ctx.launch(k, (1, 1), x, o, mode="timing")
    # the handle itself (or a view of it) carried: replayed, exact
    def plain(x_ptr, o_ptr, *, tl):
        acc = tl.zeros((16,))
        for i in tl.range(0, 8):
            acc = tl.reshape(acc + tl.load(x_ptr + 4 * 16 * i, shape=(16,)), (16,))
            tl.store(o_ptr + 4 * 16 * i, acc)

    assert (ctx.launch(plain, (1, 1), x, o, mode="timing").cycles
            == ctx.launch(plain, (1, 1), x, o, mode="timing", replay="off").cycles)


@pytest.mark.parametrize("inner", [50, 5000])
def test_a_copy_of_an_inner_loop_s_replayed_tensor_is_refused_however_many_it_replayed(inner):
    # (a breaker: an inner loop replaying more than TAIL_EXTEND tensors keeps them as a repeated
    # body, which the outer loop's replay did not mark: a copy of the inner loop's last handle,
    # carried to the next outer iteration, was refused after 50 inner iterations and read as
    # another tensor after 5,000; verify named it)
    import copy

    def k(x_ptr, o_ptr, NO, NI, *, tl):
        tot = tl.zeros((8,), "f32")
        c = None
        for i in tl.range(0, NO):
            acc = tl.zeros((8,), "f32")
            if c is not None:
                tot = tot + c
            for j in tl.range(0, NI, replay_last=True):
                acc = acc + tl.load(x_ptr + 4 * 8 * j, shape=(8,), dtype="f32")
            c = copy.copy(acc)
            tl.store(o_ptr + 4 * 8 * i, tot)

    # (the inner replay makes a load and an add an iteration: about 2 * inner tensors, on the
    # table's tail at 50, a repeated segment of its own at 5,000)
    assert (2 * inner > store.TAIL_EXTEND) == (inner == 5000)
    ctx = Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    args = (ctx.replicate(np.ones(inner * 8, np.float32)), ctx.empty((6 * 8,), "f32"), 6, inner)
    ctx.launch(k, (1, 1), *args, mode="timing", replay="off")  # (full tracing takes the copy)
    line = k.__code__.co_firstlineno + 6  # (tot = tot + c)
    with pytest.raises(KernelError, match=rf"PE \(0, 0\) at test_tl_range.py:{line}: add operand names "
                                          rf"tensor #\d+, made in an iteration of the tl.range loop at "
                                          rf"test_tl_range.py:{line - 3} that proved the loop"):
        ctx.launch(k, (1, 1), *args, mode="timing", replay="on")


def test_a_copied_transposed_view_carried_across_replay_is_refused():
    # (a review: the transposed views' fast path took it without looking at its tensor)
    import copy

    ctx = Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.zeros(16 * 16 * 8, np.float32))
    o = ctx.empty((16 * 16,), "f32")

    def k(x_ptr, o_ptr, *, tl):
        a = tl.load(x_ptr, shape=(16, 16))
        for i in tl.range(0, 6, replay_last=True):
            c = copy.copy(tl.trans(tl.dot(a, tl.load(x_ptr + 4 * 256 * i, shape=(16, 16)))))
        tl.store(o_ptr, tl.exp(c))

    assert ctx.launch(k, (1, 1), x, o, mode="timing", replay="off").cycles > 0
    with pytest.raises(KernelError, match="exp operand names tensor #\\d+, made in an iteration of the tl.range"):
        ctx.launch(k, (1, 1), x, o, mode="timing")


# -- Triton's tuning arguments --------------------------------------------------------------------
#: triton.language.range's parameters after step, in its order (Triton 3.3+:
#: https://triton-lang.org/main/python-api/generated/triton.language.range.html)
TRITON_RANGE_TUNING = ("num_stages", "loop_unroll_factor", "disallow_acc_multi_buffer", "flatten",
                       "warp_specialize", "disable_licm")


def tuned_by_keyword(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n, 1, num_stages=3, loop_unroll_factor=2, disallow_acc_multi_buffer=True,
                      flatten=True, warp_specialize=True, disable_licm=True):
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def tuned_by_position(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n, 1, 3, 2, True, True, True, True):
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def untuned(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def test_triton_s_tuning_arguments_are_accepted_and_ignored():
    """Each of Triton's tl.range arguments, by keyword and in Triton's positional order, changes
    nothing. (A review: disable_licm, used by flash-attention kernels, was refused as
    "range() got an unexpected keyword argument".)"""
    import inspect

    from kernbench.language.builtins import TL

    params = list(inspect.signature(TL.range).parameters)
    assert tuple(params[4:4 + len(TRITON_RANGE_TUNING)]) == TRITON_RANGE_TUNING  # (self, start, stop, step)
    args = lambda ctx: (ctx.empty((20 * T, T), "f32"), ctx.empty((T, T), "f32"), 12)  # noqa: E731
    plain, _ = _exact(untuned, args)
    for kernel in (tuned_by_keyword, tuned_by_position):
        off, _ = _exact(kernel, args)
        assert off.cycles == plain.cycles and off.program.n_commands == plain.program.n_commands
        assert [off.label(j) for j in range(off.program.n_commands)] == [
            plain.label(j) for j in range(plain.program.n_commands)]


# -- the launch's record of its loops (TracedLaunch.loops) -----------------------------------------
def four_loops(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):  # replayed: iterations 3 .. n - 2
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    for _ in tl.range(0, 2):  # too short to replay
        acc = acc * 0.5
    seen = []
    for _ in tl.range(0, n):  # Python state: a list the body appends to
        seen.append(0)
        acc = acc + tl.load(x_ptr + (len(seen) % 3) * T * T * F32, shape=(T, T))
    for i in tl.range(0, n):  # a branch on the index: no iteration is the one before moved on
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        acc = acc + (tl.exp(x) if i % 2 == 0 else x)
    tl.store(o_ptr, acc)


def early_break(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        if i == 1:
            break
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def stores_only(x_ptr, o_ptr, n, *, tl):
    x = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        tl.store(x_ptr + i * T * F32, x)


def listed_range(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in list(tl.range(0, n)):
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def kept_from_first(x_ptr, o_ptr, R, N, *, tl):
    for i in tl.range(0, R):
        x = tl.load(x_ptr + 4 * i * N, shape=(1, N), dtype="f32")
        if i == 0:
            first = x
        tl.store(o_ptr + 4 * i * N, x - first)


def inner_follows_outer(x_ptr, o_ptr, R, N, *, tl):
    for r in tl.range(0, R):
        acc = tl.zeros((1, N), "f32")
        for c in tl.range(0, r + 1):
            acc = acc + tl.load(x_ptr + 4 * c * N, shape=(1, N), dtype="f32")
        tl.store(o_ptr + 4 * r * N, acc)


def picked_by_index(x_ptr, o_ptr, R, N, *, tl):
    parts = [tl.load(x_ptr + 4 * j * N, shape=(1, N), dtype="f32") for j in range(4)]
    acc = tl.zeros((1, N), "f32")
    for i in tl.range(0, R):
        acc = acc + parts[i % 4]
        tl.store(o_ptr + 4 * i * N, acc)


def carried_into_causal(x_ptr, o_ptr, R, N, *, tl):
    acc = tl.load(x_ptr, shape=(1, N), dtype="f32")
    for r in tl.range(0, R):
        acc = acc * 0.5
        t = acc
        for c in tl.range(0, r + 1):
            t = t + tl.load(x_ptr + 4 * c * N, shape=(1, N), dtype="f32")
        tl.store(o_ptr + 4 * r * N, t)


def some_iterations(x_ptr, o_ptr, R, N, *, tl):
    for i in tl.range(0, R):
        if i % 3 == 1:
            tl.store(o_ptr + 4 * i * N, tl.exp(tl.load(x_ptr + 4 * i * N, shape=(N,), dtype="f32")))


def shape_grows(x_ptr, o_ptr, R, N, *, tl):
    for i in tl.range(1, R):
        tl.store(o_ptr, tl.load(x_ptr, shape=(1, i), dtype="f32"))


def alternates(x_ptr, o_ptr, R, N, *, tl):
    for i in tl.range(0, R):
        x = tl.load(x_ptr + 4 * i * N, shape=(1, N), dtype="f32")
        x = tl.exp(x) if i % 2 else tl.log(x)
        tl.store(o_ptr + 4 * i * N, x)


def test_a_loop_not_replayed_says_which_command_differs():
    """A review: one reason ("its traced iterations differ otherwise than replay moves them on")
    stood for a value kept from iteration 0, an inner loop whose trip count follows the outer
    index (causal attention) and a tile picked from a list by the index, naming no line. The
    reason now names the first command that differs and how; and a loop some of whose runs
    replayed says how many did not (it read as if none had)."""
    import inspect

    ctx = Context("default")
    x = ctx.shard(np.ones((8, 64, 16), np.float32), axis=0, name="x")
    o = ctx.shard(np.zeros((8, 64, 16), np.float32), axis=0, name="o")

    def loop_list(k):
        return ctx.trace(k, (1, 1), x, o, 64, 16).loops

    def line(k, text):  # the kernel line holding text
        src, at = inspect.getsourcelines(k)
        return at + next(j for j, t in enumerate(src) if text in t)

    (kf,) = loop_list(kept_from_first)
    assert kf.replayed == 0 and kf.why.startswith(
        f"the command at test_tl_range.py:{line(kept_from_first, 'x - first')} (sub (1,16) f32) reads "
        f"another tensor in the next traced iteration than replay would move it on to: one kept from "
        f"an earlier iteration")
    (pk,) = loop_list(picked_by_index)
    assert pk.replayed == 0 and pk.why.startswith(
        f"the command at test_tl_range.py:{line(picked_by_index, 'parts[i % 4]')} (add (1,16) f32) reads another")
    outer, inner = loop_list(inner_follows_outer)
    assert outer.replayed == 0 and outer.why.startswith(
        f"its traced iterations make 16 and 18 commands, alike up to the command at test_tl_range.py:"
        f"{line(inner_follows_outer, 'tl.store')} (store (1,16) f32 to o): an `if` on the index, or an "
        f"inner loop whose trip count follows the outer index")
    # r = 0 .. 3 run fewer iterations than replay needs; the 60 others replay
    assert (inner.runs, inner.not_replayed) == (64, 4) and 0 < inner.replayed < inner.iterations
    assert str(inner).endswith(f"; 4 runs not replayed (the first: 1 iteration, fewer than the "
                               f"{loops.PROBES + 2} replay needs)")
    # (a breaker: counts that differ made D no step, so a carried operand was blamed first)
    cc, _ = loop_list(carried_into_causal)
    assert cc.why.startswith(f"its traced iterations make 16 and 18 commands, alike up to the command at "
                             f"test_tl_range.py:{line(carried_into_causal, 'tl.store')} (store")
    (sm,) = loop_list(some_iterations)  # (the last two traced iterations alike, empty)
    assert sm.why.startswith("its traced iterations make 0, 3, 0, 0, 3, 0, 0, 3 commands: an `if` on "
                             "the index")
    (sg,) = loop_list(shape_grows)
    assert sg.why.startswith(f"the command at test_tl_range.py:{line(shape_grows, 'tl.store')} is load "
                             f"(1,7) f32 from x in one traced iteration and load (1,8) f32 from x in the "
                             f"next (shapes_move=True")
    (al,) = loop_list(alternates)
    at = line(alternates, "tl.exp(x) if")
    assert al.why in (f"command 2 of its body is at test_tl_range.py:{at} ({a} (1,16) f32) in one traced "
                      f"iteration and at test_tl_range.py:{at} ({b} (1,16) f32) in the next: an `if` on "
                      f"the index" for a, b in (("log", "exp"), ("exp", "log")))


def counted_then_divided(x_ptr, o_ptr, n, *, tl):
    cnt = tl.zeros((16,), "int32")
    acc = tl.zeros((16,), "int32")
    for b in tl.range(0, n):
        acc = acc + tl.load(x_ptr + 64 * b, shape=(16,), dtype="int32")
        cnt = cnt + 1
    tl.store(o_ptr, acc // cnt)


def test_a_count_carried_in_a_tile_and_divided_after_names_the_reader_and_the_fix():
    """A review: a count kept in a tile and divided by after the loop traces the launch again with
    the loop in full (its divisor is checked: exact), about 180x slower, and the reason named
    neither the line that read it nor what to write instead."""
    import inspect

    ctx = Context("default")
    n = 40
    x = ctx.shard(np.ones((8, 16 * n), np.int32), axis=0, dtype="int32")
    o = ctx.shard(np.zeros((8, 16), np.int32), axis=0, dtype="int32")
    (lp,) = ctx.trace(counted_then_divided, (8, 1), x, o, n).loops
    src, at = inspect.getsourcelines(counted_then_divided)
    reader = at + next(j for j, t in enumerate(src) if "acc // cnt" in t)
    assert lp.replayed == 0 and lp.why.startswith("traced again in full: a handle kept past its iterations")
    assert f"after the loop) at test_tl_range.py:{reader}, whose check needs its value" in lp.why
    assert lp.why.endswith("(a count, `cnt = cnt + 1`; an index, `offs = offs + N`); make it after the "
                           "loop from Python numbers (the trip count: `acc // n`, `tl.arange(0, N) + n "
                           "* N`) to keep the loop replayed")
    on, off = (ctx.launch(counted_then_divided, (8, 1), x, o, n, mode="timing", record_events=True,
                          replay=r) for r in ("on", "off"))
    assert_same_launch(on, off)


def test_the_launch_records_what_replay_did_with_each_loop():
    """Each tl.range loop: its runs on how many PEs, iterations, how many replay emitted, or
    why it replayed none. (A new user's ring all-reduce lost replay on one loop silently:
    documented, but nothing told them which loop or why.)"""
    args = lambda ctx: (ctx.empty((20 * T, T), "f32"), ctx.empty((T, T), "f32"), 12)  # noqa: E731
    ctx = _ctx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReplayWarning)
        tr = ctx.trace(four_loops, (2, 1), *args(ctx), mode="timing")
    first = four_loops.__code__.co_firstlineno
    got = [(lp.line - first, lp.pes, lp.runs, lp.iterations, lp.replayed) for lp in tr.loops]
    # per PE: 12 iterations, 0, 1, 2 and 11 traced (PROBES, and the last), 8 replayed
    assert got == [(2, 2, 2, 24, 16), (4, 2, 2, 4, 0), (7, 2, 2, 24, 0), (10, 2, 2, 24, 0)]
    why = [lp.why for lp in tr.loops]
    assert why[0] is None
    assert why[1] == f"2 iterations, fewer than the {loops.PROBES + 2} replay needs"
    assert why[2] == "it carries Python state across iterations (seen: a ReplayWarning names it)"
    assert why[3].startswith("its traced iterations make 3, 2, 3, 2, 3, 2, 3, 2 commands: an `if` on "
                             "the index")
    assert str(tr.loops[0]) == (f"tl.range at test_tl_range.py:{first + 2}: 2 runs on 2 PEs, 16 of 24 "
                                f"iterations replayed")
    assert str(tr.loops[1]).endswith("0 of 4 iterations replayed; not replayed: " + why[1])
    # a loop found off its line after replay: the launch traced again, the loop in full
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReplayWarning)
        (again,) = ctx.trace(enumerated, (1, 1), *_blocks(10, 10)(ctx), mode="timing").loops
    assert (again.runs, again.iterations, again.replayed) == (1, 10, 0)
    assert again.why.startswith("traced again in full: iteration 9 (index 9) ")
    # a loop left during its traced iterations: the iterations it ran, and why (a breaker: 12
    # iterations counted, no reason)
    (left,) = ctx.trace(early_break, (1, 1), *args(ctx), mode="timing").loops
    assert (left.iterations, left.replayed) == (2, 0)
    assert left.why.startswith("left at iteration 1 (a break, a return, an error")
    # a loop whose body makes no tensor (stores of one made before it) replays (it was traced
    # in full: test_a_body_that_makes_no_tensor_replays_exactly)
    (stores,) = ctx.trace(stores_only, (1, 1), *args(ctx), mode="timing").loops
    assert stores.replayed > 0 and stores.why is None
    # a loop whose iterations make no commands (a list() of the range) says so
    (listed,) = ctx.trace(listed_range, (1, 1), *args(ctx), mode="timing").loops
    assert (listed.iterations, listed.replayed) == (12, 0)
    assert listed.why == "its traced iterations made no commands: nothing to replay"
    # the launch's result holds it too (a review: a user of ctx.launch had no way to see it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReplayWarning)  # (the third loop's, as the trace's)
        assert ctx.launch(four_loops, (2, 1), *args(ctx), mode="timing").loops == tr.loops
    # the record is replay's: none with replay off, nor in functional mode (every iteration traced)
    assert ctx.trace(four_loops, (2, 1), *args(ctx), mode="timing", replay="off").loops == ()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReplayWarning)
        assert ctx.trace(four_loops, (2, 1), *args(ctx), mode="timing", replay="verify").loops == tr.loops
        assert ctx.trace(four_loops, (2, 1), *args(ctx), mode="functional").loops == ()


GLOBAL_STEP = 0


def global_stepped(x_ptr, o_ptr, n, *, tl):
    global GLOBAL_STEP
    acc = tl.zeros((T, T), "f32")
    for _ in tl.range(0, n):
        GLOBAL_STEP += 1  # state outside the launch: verify's second pass goes on from n
        acc = acc + tl.load(x_ptr + (GLOBAL_STEP - 1) * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def early_break_at_6(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i == 6:
            break
    tl.store(o_ptr, acc)


def test_an_error_of_verifys_second_pass_says_the_kernel_ran_twice():
    """Verify traces every PE again in full after the launch: a kernel whose Python keeps state
    outside the launch runs it twice, and an error only the second run raises says so (a review:
    a plain load error, which neither replay on nor off raised)."""
    args = lambda ctx: (ctx.empty((20 * T, T), "f32"), ctx.empty((T, T), "f32"), 20)  # noqa: E731
    global GLOBAL_STEP
    ctx = _ctx()
    for mode in ("off", "on"):  # (on: the global found, the loop traced in full)
        GLOBAL_STEP = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReplayWarning)
            assert ctx.launch(global_stepped, (1, 1), *args(ctx), mode="timing", replay=mode).cycles
    GLOBAL_STEP = 0
    with warnings.catch_warnings(), pytest.raises(KernelError, match="is outside every device") as e:
        warnings.simplefilter("ignore", ReplayWarning)
        ctx.launch(global_stepped, (1, 1), *args(ctx), mode="timing", replay="verify")
    assert any("verify mode's second pass" in n and "Python ran twice" in n for n in e.value.__notes__)
    # verify's own finding, which only its second pass makes, is a ReplayContractError with no
    # such note (a breaker: the note blamed a global counter for a break at iteration 6)
    with pytest.raises(ReplayContractError, match="left this tl.range loop at iteration 6") as e:
        ctx.launch(early_break_at_6, (1, 1), *args(ctx), mode="timing", replay="verify")
    assert not getattr(e.value, "__notes__", None)


KEPT = []


def kept_iterator(x_ptr, o_ptr, n, *, tl):
    it = iter(tl.range(0, n))
    KEPT.append(it)  # a global keeps the loop's generator past the kernel's end
    acc = tl.zeros((T, T), "f32")
    for _ in range(4):
        acc = acc + tl.load(x_ptr + next(it) * T * T * F32, shape=(T, T))
    tl.store(o_ptr, acc)


def test_a_loop_kept_past_its_kernel_is_recorded_and_closed_as_the_program_ends():
    """A tl.range iterator a global keeps is closed as its program ends, as the kernel's frame
    would have closed it: the record has the loop, verify names the loop left early, and the
    collector's close later raises nothing (a review: the loop missing from the record, a raw
    TypeError printed at collection, verify's generic 'changes the program')."""
    import gc

    args = lambda ctx: (ctx.empty((20 * T, T), "f32"), ctx.empty((T, T), "f32"), 20)  # noqa: E731
    ctx = _ctx()
    seen = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        (lp,) = ctx.trace(kept_iterator, (1, 1), *args(ctx), mode="timing", replay="on").loops
        # outside the contract (left at its 4th next(), a replayed iteration): the record says
        # what replay did, and verify is what catches it
        # (its line: where its first iteration was asked for)
        assert (lp.runs, lp.pes, lp.line) == (1, 1, kept_iterator.__code__.co_firstlineno + 5)
        with pytest.raises(KernelError, match=r"left this tl.range loop at iteration 3 \(index 3"):
            ctx.trace(kept_iterator, (1, 1), *args(ctx), mode="timing", replay="verify")
        KEPT.clear()
        gc.collect()
    finally:
        sys.unraisablehook = hook
        KEPT.clear()
    assert seen == []


def test_an_iterator_kept_from_a_program_that_ended_says_so():
    """A review: an iterator over a tl.range made on PE 0 and kept in a global ran no iteration
    on PE 1 (its program closed it as it returned, and a closed generator's for stops at once),
    silently; in a later launch likewise."""
    ctx = Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    o = ctx.empty((4,), "f32")
    kept = {}

    def k(o_ptr, *, tl):
        if tl.program_id(0) == 0:
            kept["it"] = iter(tl.range(10))
        else:
            for i in kept["it"]:
                tl.store(o_ptr, tl.full((4,), float(i)))

    with pytest.raises(KernelError, match=r"on PE \(1, 0\) .*: this tl.range\(0, 10, 1\) loop's iterator was "
                                          r"made on PE \(0, 0\), whose program has ended"):
        ctx.launch(k, (2, 1), o)

    def own(o_ptr, *, tl):  # (each PE's own iterator, with next() and a for over the rest)
        it = iter(tl.range(4))
        first = next(it)
        for i in it:
            tl.store(o_ptr, tl.full((4,), float(i + first)))

    assert ctx.launch(own, (2, 1), o, mode="timing").program.n_commands == 2 * 3 * 2
