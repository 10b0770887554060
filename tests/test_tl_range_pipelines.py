"""tl.range replay of software-pipelined loops: a first few iterations that fill the pipeline
(proved by a later pair of iterations), a fill one iteration makes and the next reads (a deferred
update of an accumulator), and a window of handles deeper than replay moves (traced). Each
launch is full tracing's: the program, the event record, cycles, counters and peak SRAM.

A review (public attention bug reports rebuilt as kernels) found the shipped prefill kernel
itself out of replay with one or two K/V blocks per query block (one rank, MHA: h_q = h_kv),
with a ReplayWarning telling the user to fix the kernel's code: its phase loop defers a phase's
o update into the next phase, reading the tl.zeros o of the phase before (a value known while
tracing, carried), and its first phases fill the pipeline (the proof's first pair is not the
loop's step)."""
import dataclasses
import warnings

import numpy as np
import pytest
from replay_helpers import assert_same_launch

from kernbench.common.errors import KernelError, ReplayWarning
from kernbench.kernels import attention_mesh_kv_kernel
from kernbench.language import loops
from kernbench.runtime.context import Context

T = 8  # tile side
F32 = 4
RUNS = []


def _launch(kernel, args_of, replay, grid=(1, 1)):
    ctx = Context("default")
    ctx.install_sfr(scope="pe")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayWarning)  # (within the contract: never one)
        return ctx.launch(kernel, grid, *args_of(ctx), mode="timing", replay=replay, record_events=True)


def _exact(kernel, args_of, grid=(1, 1)):
    """Replay on gives full tracing's launch, verify finds nothing; returns (off, on, the
    iterations whose Python ran with replay on)."""
    off = _launch(kernel, args_of, "off", grid)
    RUNS.clear()
    on = _launch(kernel, args_of, "on", grid)
    runs = list(RUNS)
    assert_same_launch(off, on)
    _launch(kernel, args_of, "verify", grid)
    return off, on, runs


def _args(n):
    return lambda ctx: (ctx.empty(((n + 2) * T, T), "f32"), ctx.empty(((n + 2) * T, T), "f32"), n)


def warm_up(x_ptr, o_ptr, n, *, tl):
    """A pipeline filling: iteration i runs min(i, 3) stages, so iterations 1 and 2, and 2 and
    3, differ (as `if i == 0` makes 0 and 1 differ); 3 and 4 prove the loop."""
    for i in tl.range(0, n):
        RUNS.append(i)
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        for _ in range(min(i, 3)):
            x = tl.exp(x)
        tl.store(o_ptr + i * T * T * F32, x)


def deferred_update(x_ptr, o_ptr, n, *, tl):
    """Each iteration fills its accumulator and defers its update to the next iteration, which
    reads that fill (`acc * s`: s is not known, so nothing known follows from the fill) and
    stores the result at the index before its own."""
    prev_acc = prev_s = None
    for i in tl.range(0, n):
        RUNS.append(i)
        acc = tl.zeros((T, T), "f32")
        s = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i > 0:
            tl.store(o_ptr + (i - 1) * T * T * F32, prev_acc * prev_s + s)
        prev_acc, prev_s = acc, s
    tl.store(o_ptr + (n - 1) * T * T * F32, prev_acc * prev_s)


@pytest.mark.parametrize("n", [6, 7, 8, 12, 40])
def test_a_loop_whose_first_iterations_fill_a_pipeline_replays_from_a_later_pair(n):
    _, on, runs = _exact(warm_up, _args(n))
    (lp,) = on.loops
    # iterations 0-4 traced (3 and 4 prove it) and the last; the rest replayed
    assert runs == ([*range(5), n - 1] if n >= 7 else list(range(n)))
    assert lp.replayed == max(0, n - 6) and (lp.why is None) == (n >= 7)


@pytest.mark.parametrize("n", [6, 7, 9, 40])
def test_a_fill_read_by_the_next_iteration_is_replayed(n):
    """Iterations 2 and 3 read iteration 1's and 2's fills: alike, read by `acc * s` (its value
    not known), so the loop replays (iteration 0 makes fewer tensors, so 1 and 2 are not the
    step: 2 and 3 prove it). Before, any fill read across iterations kept the loop traced."""
    _, on, runs = _exact(deferred_update, _args(n))
    (lp,) = on.loops
    assert lp.why is None and lp.replayed == n - 5
    assert runs == [0, 1, 2, 3, n - 1]


def fill_chain(x_ptr, o_ptr, n, *, tl):
    """A fill the next iteration reads into a value known while tracing (`acc + 1.0`): replay
    would leave the replayed iterations' known values uncomputed, so the loop is traced."""
    acc = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        y = acc + 1.0
        acc = tl.zeros((T, T), "f32")
        tl.store(o_ptr + i * T * T * F32, y + tl.load(x_ptr + i * T * T * F32, shape=(T, T)))


def fill_follows_index(x_ptr, o_ptr, n, *, tl):
    """A fill whose value follows the index, read by the next iteration: not alike, traced."""
    prev = tl.zeros((T, T), "f32")
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        tl.store(o_ptr + i * T * T * F32, x * prev)
        prev = tl.full((T, T), float(i), "f32")


@pytest.mark.parametrize("kernel", [fill_chain, fill_follows_index])
def test_a_carried_fill_replay_cannot_keep_known_is_traced(kernel):
    tr = {}
    for replay in ("off", "on"):
        ctx = Context("default")  # (a context each: the arrays' names, in the labels, alike)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            tr[replay] = ctx.launch(kernel, (1, 1), *_args(12)(ctx), mode="timing", replay=replay,
                                    record_events=True)
    assert_same_launch(tr["off"], tr["on"])
    (lp,) = tr["on"].loops
    assert lp.replayed == 0 and lp.why == loops.CARRIED_KNOWN
    assert any(issubclass(x.category, ReplayWarning) and "known while tracing" in str(x.message) for x in w)


def window_of_three(x_ptr, o_ptr, n, *, tl):
    """Iteration i reads the load of iteration i - 3 (a window deeper than the two iterations of
    handles replay moves on); iterations 0-2 read a tile from before the loop."""
    first = tl.load(x_ptr, shape=(T, T))
    a = b = c = first
    for i in tl.range(0, n):
        RUNS.append(i)
        if i == 2:  # (the first iterations differ, so the proof reaches a later pair)
            a = a * 2.0
        x = tl.load(x_ptr + (i + 1) * T * T * F32, shape=(T, T))
        tl.store(o_ptr + i * T * T * F32, a + x)
        a, b, c = b, c, x


def test_a_body_reading_three_iterations_back_is_traced_in_full():
    """From the fifth probe on the proof could pass such a body; replay would then leave the
    handle three iterations old naming its own tensor (verify: 'changes the program'). It is
    traced in full instead, saying why."""
    _, on, runs = _exact(window_of_three, _args(20))
    (lp,) = on.loops
    assert lp.replayed == 0 and lp.why == loops.OLD_HANDLE
    assert runs == list(range(20))


@pytest.mark.parametrize("S, h, bq, bkv", [(64, 3, 4, 32), (256, 4, 4, 128), (4096, 8, 32, 2048)])
def test_prefill_with_few_blocks_per_query_block_replays_without_a_warning(S, h, bq, bkv):
    """The review's cases: one rank, h_q = h_kv, one query block folding two K/V blocks (and
    four: the pipeline then stays inside a phase). No ReplayWarning (a shipped kernel within
    the contract), the phase loop replayed, the launch full tracing's."""
    d = 16 if S < 4096 else 128

    def args(ctx):
        return (*(ctx.empty((S, h, d), "f16") for _ in range(4)), S, S, h, h, d, 1, 0, bq, bkv)

    runs = {}
    for replay in ("off", "on", "verify"):
        ctx = Context("mesh8")
        ctx.install_sfr(scope="pe", ring=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ReplayWarning)
            runs[replay] = ctx.launch(attention_mesh_kv_kernel, (1, 1), *args(ctx), mode="timing",
                                      replay=replay, record_events=True)
    assert_same_launch(runs["off"], runs["on"])
    phases = next(lp for lp in runs["on"].loops if lp.iterations > 0)
    assert phases.replayed > phases.iterations // 2, runs["on"].loops


def test_prefill_with_one_block_per_query_block_stays_exact():
    """One K/V block per query block: the o updates trail three phases, a window replay cannot
    move; traced in full (no replay, no warning), as before this change."""
    S, h, d = 64, 3, 16
    runs = {}
    for replay in ("off", "on"):
        ctx = Context("mesh8")
        ctx.install_sfr(scope="pe", ring=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ReplayWarning)
            runs[replay] = ctx.launch(attention_mesh_kv_kernel, (1, 1),
                                      *(ctx.empty((S, h, d), "f16") for _ in range(4)), S, S, h, h, d, 1,
                                      0, 4, 64, mode="timing", replay=replay, record_events=True)
    assert_same_launch(runs["off"], runs["on"])
    assert all(lp.replayed == 0 for lp in runs["on"].loops)
    assert np.array_equal(runs["off"].peak_sram, runs["on"].peak_sram)


def last_divides(x_ptr, o_ptr, n, *, tl):
    """The last iteration divides by the fill of the one before: a known zero, refused at trace
    (the error full tracing raises). With replay, that fill is a replayed iteration's: replay
    gives it the value B's had (_move_fills), or the division would pass unchecked."""
    prev = None
    for i in tl.range(0, n):
        acc = tl.zeros((T, T), "i32")
        x = tl.load(x_ptr + i * T * T * 4, shape=(T, T), dtype="i32")
        if i > 0:
            tl.store(o_ptr + (i - 1) * T * T * 4, prev * x)
        if i == n - 1:
            tl.store(o_ptr + i * T * T * 4, x // prev)
        prev = acc


def test_a_replayed_fill_is_known_to_the_iterations_traced_after():
    errors = {}
    for replay in ("off", "on"):
        ctx = Context("default")
        args = (ctx.empty((14 * T, T), "i32"), ctx.empty((14 * T, T), "i32"), 12)
        with pytest.raises(KernelError) as e:
            ctx.launch(last_divides, (1, 1), *args, mode="timing", replay=replay)
        errors[replay] = e.value
    assert str(errors["on"]) == str(errors["off"]) and "zero" in str(errors["off"])


def window_over_warm_up(x_ptr, o_ptr, n, K, *, tl):
    """A review's case: a two-deep window of handles (`hist = [hist[1], x]`, the older read by
    Python only) beside a pipeline filling for K iterations: the window's older handle, at the
    end of the pair's first iteration, names a tensor of an iteration that made another number
    of tensors (was refused as Python state carried, with a ReplayWarning)."""
    hist = [None, None]
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        for _ in range(min(i, K)):
            x = tl.exp(x)
        if i >= 1:
            tl.store(o_ptr + (i - 1) * T * T * F32, hist[1] + x)
        hist = [hist[1], x]


@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_a_window_of_handles_over_a_pipeline_filling_replays(K):
    n = 20
    _, on, _ = _exact(window_over_warm_up, lambda ctx: (*_args(n)(ctx)[:2], n, K))
    (lp,) = on.loops
    # proved by iterations K and K + 1, 2 and 3 at least (iteration 1 reads iteration 0's, which
    # made fewer tensors): traced 0 .. B and the last
    B = max(K + 1, 3)
    assert lp.why is None and lp.replayed == n - (B + 1) - 1


def kept_as_is(x_ptr, o_ptr, n, *, tl):
    """A carried fill stored as it is and reduced: neither makes a value known while tracing
    (a review: refused as if they did)."""
    prev = None
    for i in tl.range(0, n):
        acc = tl.zeros((T, T), "f32")
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i > 0:
            tl.store(o_ptr + i * T * T * F32, prev)
            tl.store(o_ptr + (i + n) * T * T * F32, tl.sum(prev, axis=1) + x)
        prev = acc


def test_a_carried_fill_stored_or_reduced_replays():
    n = 12
    _, on, _ = _exact(kept_as_is, lambda ctx: (ctx.empty(((2 * n + 2) * T, T), "f32"),
                                               ctx.empty(((2 * n + 2) * T, T), "f32"), n))
    (lp,) = on.loops
    assert lp.why is None and lp.replayed == n - 5


def first_differs(x_ptr, o_ptr, n, *, tl):
    prev = None
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i > 0:
            tl.store(o_ptr + i * T * T * F32, x * prev)
        prev = x


def test_a_loop_too_short_for_the_pair_that_would_prove_it_says_so():
    """A review: `if i > 0` makes iteration 0 make fewer tensors, so iterations 2 and 3 prove the
    loop; at 5 iterations `.loops` blamed the kernel ("reads another tensor ... make it in the
    iteration"), where 6 replay."""
    (lp5,) = _exact(first_differs, _args(5))[1].loops
    assert lp5.replayed == 0 and lp5.why.endswith(
        "; iterations 2 and 3 might prove it (the first ones may differ: an `if i > 0`, a pipeline "
        "filling), but the loop has 5, fewer than the 6 that needs")
    (lp6,) = _exact(first_differs, _args(6))[1].loops
    assert lp6.why is None and lp6.replayed == 1


def two_stage(x_ptr, o_ptr, n, *, tl):
    """A breaker's case: tile i is consumed two iterations later (`older, newer = newer, x`);
    iteration 0 also clears the last output block, so it makes one tensor more than iteration
    1, and iteration 1 one fewer than the rest. Iterations 2 and 3 read iterations 0 and 1: B's
    operand was A's plus D by chance, and every replayed iteration read the tensor beside the
    right one (verify named it, blaming the kernel). B may read the iteration before A only
    when that one is A moved back, operands and all (iteration 3 reads iteration 1's tile, 4
    iteration 2's, and 1 made one tensor fewer): iterations 5 and 6 prove the loop."""
    older = newer = None
    for i in tl.range(0, n):
        RUNS.append(i)
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i == 0:
            tl.store(o_ptr + (n - 1) * T * T * F32, tl.zeros((T, T), "f32"))
        if i >= 2:
            tl.store(o_ptr + (i - 2) * T * T * F32, older * 2.0)
        older, newer = newer, x


def three_fill(x_ptr, o_ptr, n, *, tl):
    """The same with set-up in iterations 0 and 1 and the consumer from iteration 3 on (exposed
    by the later pairs: 3 and 4 alike, reading iteration 2, which made fewer tensors; 6 and 7
    prove it)."""
    older = newer = None
    for i in tl.range(0, n):
        RUNS.append(i)
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i <= 1:
            tl.store(o_ptr + (n - 1 - i) * T * T * F32, tl.zeros((T, T), "f32"))
        if i >= 3:
            tl.store(o_ptr + (i - 3) * T * T * F32, older * 2.0)
        older, newer = newer, x


@pytest.mark.parametrize("kernel, first", [(two_stage, 6), (three_fill, 7)])
@pytest.mark.parametrize("n", [10, 30])
def test_a_body_reading_two_back_waits_for_a_pair_after_the_uneven_iterations(kernel, first, n):
    _, on, runs = _exact(kernel, _args(n))
    (lp,) = on.loops
    assert lp.why is None and runs == [*range(first + 1), n - 1] and lp.replayed == n - first - 2


@dataclasses.dataclass
class _Settings:
    """Seventeen plain values (more than the state check looks into: docs/language.md) and a
    window of two handles, updated in place."""
    s0: int = 0; s1: int = 1; s2: int = 2; s3: int = 3; s4: int = 4; s5: int = 5  # noqa: E702
    s6: int = 6; s7: int = 7; s8: int = 8; s9: int = 9; s10: int = 10; s11: int = 11  # noqa: E702
    s12: int = 12; s13: int = 13; s14: int = 14; s15: int = 15; s16: int = 16  # noqa: E702
    older: object = None
    newer: object = None


def reordered_first(x_ptr, z_ptr, o_ptr, n, *, tl):
    """A breaker's case: iterations 0 and 1 make the same calls in another order on one line
    (alike by site), and the body reads exp(x) two iterations back through a state object the
    state check does not look into: iterations 2 and 3 proved the loop, and every replayed
    iteration read exp(z). The iteration before A must be A moved back."""
    pre = tl.load(x_ptr + n * T * T * F32, shape=(T, T))
    st = _Settings()
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        z = tl.load(z_ptr + i * T * T * F32, shape=(T, T))
        srcs = (x, z) if i >= 2 else (z, x)
        e = [tl.exp(t) for t in srcs]
        u, w = (e[0], e[1]) if i >= 2 else (e[1], e[0])
        tl.store(o_ptr + i * T * T * F32, (st.older if i >= 2 else pre) * 2.0)
        tl.store(o_ptr + (n + i) * T * T * F32, w)
        st.older, st.newer = st.newer, u


def kept_chain(x_ptr, z_ptr, o_ptr, n, *, tl):
    """Out of the contract (values kept from iteration 0, read three back), yet exact: a chain
    of handles iteration 0 made D apart passed the proof at iterations 2 and 3."""
    for i in tl.range(0, n):
        tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        if i == 0:
            v, _, w, _, u, _, z = (tl.load(x_ptr + (n + j) * T * T * F32, shape=(T, T)) for j in range(7))
        tl.store(o_ptr + i * T * T * F32, v * 2.0)
        v, w, u, z = w, u, z, z


def moving_two_back(x_ptr, z_ptr, o_ptr, n, *, tl):
    """shapes_move=True and a read two back: the iteration before A is A moved back, its shapes
    a step behind (a breaker: refused for the shapes once sites were compared)."""
    older = newer = None
    for i in tl.range(0, n, shapes_move=True):
        y = tl.sum(tl.exp(tl.load(x_ptr + i * F32, shape=(4 + i,))))
        if i >= 2:
            tl.store(o_ptr + i * F32, older + y)
        older, newer = newer, y


@pytest.mark.parametrize("kernel, replays", [(reordered_first, True), (kept_chain, False),
                                             (moving_two_back, True)])
def test_the_iteration_before_a_read_two_back_is_a_moved_back(kernel, replays):
    n = 20

    def args(ctx):
        return (ctx.empty(((n + 8) * T, T), "f32"), ctx.empty(((n + 1) * T, T), "f32"),
                ctx.empty((2 * (n + 1) * T, T), "f32"), n)

    _, on, _ = _exact(kernel, args)
    (lp,) = on.loops
    assert (lp.replayed > 0) == replays, lp


def _window(init):
    """A window of two handles in a closure another function made (cells the state check
    compares by identity: docs/language.md): push(x) returns the x pushed two calls before."""
    st = [init, init]

    def push(x):
        old = st[0]
        st[0], st[1] = st[1], x
        return old
    return push


def swapped_first(x_ptr, o_ptr, n, *, tl):
    """A breaker's case: iterations 0 and 1 make their two exps in the other order, on one
    line (alike by site, each reading a tile from before the loop); the body stores exp(c) of
    two iterations before. Iteration 1 was taken for iteration 2 moved back, and every replayed
    store read exp(d)."""
    c = tl.load(x_ptr, shape=(T, T))
    d = tl.load(x_ptr + T * T * F32, shape=(T, T))
    push = _window(tl.load(x_ptr + 8 * T * T * F32, shape=(T, T)))
    for i in tl.range(0, n):
        got = {}
        for name in (("y", "x") if i < 2 else ("x", "y")):
            got[name] = tl.exp(d if name == "y" else c)
        tl.store(o_ptr + i * T * T * F32, push(got["x"]))


def swapped_first_moving(x_ptr, o_ptr, n, *, tl):
    """The same with shapes_move=True (sites not compared, the two exps on two lines)."""
    big = tl.load(x_ptr, shape=(32, 64))
    c = tl.load(x_ptr, shape=(T, T))
    push = _window(tl.load(x_ptr + 8 * T * T * F32, shape=(T, T)))
    for i in tl.range(0, n, shapes_move=True):
        if i < 2:
            y = tl.exp(big)
            x = tl.exp(c)
        else:
            x = tl.exp(c)
            y = tl.exp(big)
        tl.store(o_ptr + i * T * T * F32, push(x) + 0.0 * tl.sum(y, axis=None))


@pytest.mark.parametrize("kernel", [swapped_first, swapped_first_moving])
def test_first_iterations_making_their_tensors_in_another_order_are_not_a_moved_back(kernel):
    n = 12
    _exact(kernel, lambda ctx: (ctx.empty((64, 64), "f32"), ctx.empty(((n + 1) * T, T), "f32"), n))


def fill_then_two_back(x_ptr, o_ptr, n, K, *, tl):
    """A breaker's case: iterations i < K make fewer tensors (a pipeline filling) and the body
    reads two back. At K = 5 the last pair tried (6, 7) reads iteration 5, which read a filling
    iteration: not replayed, and `.loops` said "an `if` on the index"."""
    pre = tl.load(x_ptr + (n + 1) * T * T * F32, shape=(T, T))
    older = newer = pre
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * T * F32, shape=(T, T))
        for _ in range(min(i, K)):
            x = tl.exp(x)
        tl.store(o_ptr + i * T * T * F32, older * 2.0)
        older, newer = newer, x + x


@pytest.mark.parametrize("K", [4, 5])
def test_a_two_back_body_past_the_pairs_tried_says_why(K):
    n = 24
    _, on, _ = _exact(fill_then_two_back, lambda ctx: (*_args(n + 2)(ctx)[:2], n, K))
    (lp,) = on.loops
    if K == 4:
        assert lp.why is None and lp.replayed > 0
    else:
        assert lp.replayed == 0 and lp.why == loops.TWO_BACK
