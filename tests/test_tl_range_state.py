"""tl.range replay and the Python state a loop's body carries in its variables: a variable the
body reads before it assigns it, whose value differs from iteration to iteration (a pointer
advanced with `+=`, a counter, a running width, a list appended to), is found at the
iterations proving the loop, and the loop traced in full as it runs (docs/language.md,
'tl.range', "Python state in the loop's variables"). What stays replayed is checked too: a
body carrying only tensor handles and values it recomputes from the index."""
import dis
import types
import warnings

import numpy as np
import pytest
from replay_helpers import assert_same_launch

from kernbench.common.errors import ReplayWarning
from kernbench.language import semantic
from kernbench.runtime.context import Context

T = 8  # tile side
F32 = 4


def _launch(kernel, args_of, replay, grid=(1, 1), **kw):
    ctx = Context("default")
    ctx.install_sfr(scope="pe")
    return ctx.launch(kernel, grid, *args_of(ctx), mode="timing", replay=replay, record_events=True, **kw)


def _found(kernel, args_of, names: str, grid=(1, 1)):
    """Replay on gives full tracing's launch, traced in full, with a ReplayWarning naming the
    loop's variables ``names`` (as the message lists them)."""
    off = _launch(kernel, args_of, "off", grid)
    with pytest.warns(ReplayWarning) as w:
        on = _launch(kernel, args_of, "on", grid)
    assert_same_launch(off, on)
    msgs = {str(x.message) for x in w}
    assert len(msgs) == 1, msgs
    (msg,) = msgs
    assert f"tl.range: the body reads {names} before assigning" in msg, msg
    assert msg.startswith("PE (0, 0) at test_tl_range_state.py:")
    with pytest.warns(ReplayWarning):  # (verify's first pass is the launch with replay on)
        _launch(kernel, args_of, "verify", grid)
    return on


def _replayed(kernel, args_of, grid=(1, 1)):
    """Replay on gives full tracing's launch with a loop replayed, and no warning."""
    off = _launch(kernel, args_of, "off", grid)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        on = _launch(kernel, args_of, "on", grid)
        _launch(kernel, args_of, "verify", grid)
    assert_same_launch(off, on)
    assert on.program.compact is not None and len(on.program.compact.tiles)
    return on


def _rows(n, cols=T):
    return lambda ctx: (ctx.empty((n * cols,), "f32"), ctx.empty((cols,), "f32"), n)


# -- the liveness analysis -------------------------------------------------------------------
def _live(fn) -> list:
    """loop_carried's answer for each for loop of ``fn``, in the order of their FOR_ITERs."""
    co = fn.__code__
    return [semantic._live_in(co, x.offset) for x in dis.get_instructions(co) if x.opname == "FOR_ITER"]


def test_the_variables_a_body_reads_before_it_assigns_them():
    def advanced(x, n, tl):
        p = x
        for _i in range(n):
            tl.load(p)
            p += 4

    def indexed(x, n, tl):
        acc = 0
        for i in range(n):
            off = i * 4  # assigned before read: recomputed each iteration
            acc = acc + tl.load(x + off)

    def branches(x, n, tl):
        rem, kept = n, []
        for i in range(n):
            if i > 3:
                w = rem  # read on one path only: still carried
            else:
                w = 4
            kept.append(w)
            rem -= 4
            if w < 0:
                break

    def nested(x, n, tl):
        prev = None
        for _i in range(n):
            if prev is not None:
                tl.use(prev)
            prev = x
            for j in range(3):
                t = j  # (the inner loop's own)
                tl.use(t)

    def cell(x, n, tl):
        j = 0

        def g():
            return j

        for _i in range(n):
            j += 1

    assert _live(advanced) == [("p", "tl")]
    assert _live(indexed) == [("acc", "tl", "x")]
    assert _live(branches) == [("kept", "rem")]
    assert _live(nested)[0] == ("prev", "tl", "x")
    assert _live(cell) == [("j",)]


def test_not_a_for_loop_has_no_carried_variables():
    def k(x):
        y = x + 1
        return y

    co = k.__code__
    assert all(semantic._live_in(co, x.offset) == () for x in dis.get_instructions(co))


# -- found: the loop traced in full ----------------------------------------------------------
def stats_counter(x_ptr, o_ptr, n, *, tl):
    """A count the kernel divides by after the loop (replay left it at 4 of 10)."""
    acc = tl.zeros((T,), "f32")
    tiles = 0
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        tiles += 1
    tl.store(o_ptr, acc * (1.0 / tiles))


def appended(x_ptr, o_ptr, n, *, tl):
    """Triton's list of tiles: with replay it held the traced iterations' only."""
    kept = []
    for i in tl.range(0, n):
        kept.append(tl.load(x_ptr + i * T * F32, shape=(T,)))
    acc = kept[0]
    for x in kept[1:]:
        acc = acc + x
    tl.store(o_ptr, acc)


def width_replay_last(x_ptr, o_ptr, n, *, tl):
    """A running width with replay_last=True (no iteration traced after replay's to tell)."""
    acc = tl.zeros((1,), "f32")
    rem = n * T - 5
    for i in tl.range(0, n, replay_last=True):
        w = min(T, rem)
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
        rem -= T
    tl.store(o_ptr, acc)


def output_pointer(x_ptr, o_ptr, n, *, tl):
    """An output pointer advanced beside indexed loads (a count moving some addresses only)."""
    q = o_ptr
    for i in tl.range(0, n):
        tl.store(q, tl.exp(tl.load(x_ptr + i * T * F32, shape=(T,))))
        q += T * F32


def pair_state(x_ptr, o_ptr, n, *, tl):
    """A tuple of a handle and a count carried: the count is found."""
    st = (tl.zeros((T,), "f32"), 0)
    for _i in tl.range(0, n):
        acc, j = st
        st = (acc + tl.load(x_ptr + j * T * F32, shape=(T,)), j + 1)
    tl.store(o_ptr, st[0])


def float_scale(x_ptr, o_ptr, n, *, tl):
    """A Python float carried into the body's operands (`x * s`, s halving)."""
    acc = tl.zeros((T,), "f32")
    s = 1.0
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,)) * s
        s = s * 0.5
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("kernel,names,args", [
    (stats_counter, "`tiles`", _rows(10)),
    (appended, "`kept`", _rows(10)),
    (width_replay_last, "`rem`", lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10)),
    (output_pointer, "`q`", lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((10 * T,), "f32"), 10)),
    (pair_state, "`st`", _rows(10)),
    (float_scale, "`s`", _rows(10)),
])
def test_state_in_the_loop_s_variables_is_found_and_the_loop_traced_in_full(kernel, names, args):
    on = _found(kernel, args, names)
    assert on.program.compact is None


def test_a_running_width_with_replay_last_was_wrong_and_is_exact():
    # (the case of docs/language.md's old "Not found" list: replay_last replays to the end, and
    # the last block's width, 3 of 8, was iteration 2's 8: cycles off, silently)
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10)  # noqa: E731
    off = _launch(width_replay_last, args, "off")
    with pytest.warns(ReplayWarning):
        on = _launch(width_replay_last, args, "on")
    assert on.cycles == off.cycles
    assert [on.label(i) for i in range(on.program.n_commands)] == \
           [off.label(i) for i in range(off.program.n_commands)]


def test_the_functional_values_of_a_counted_loop_are_full_tracings():
    # (a stats counter read after the loop: functional mode traces every iteration; timing mode
    # now does too, so the program's immediate is 1/10, not 1/4)
    ctx = Context("default")
    x = ctx.replicate(np.arange(10 * T, dtype=np.float32))
    o = ctx.empty((T,), "f32")
    ctx.launch(stats_counter, (1, 1), x, o, 10)
    assert np.allclose(ctx.read(o, (0, 0)), np.arange(10 * T, dtype=np.float32).reshape(10, T).mean(axis=0))


def inner_counter(x_ptr, o_ptr, n, m, *, tl):
    """An inner loop's counter, reset by the outer body each iteration: the inner loop is found
    (its own probes), the outer one sees its body assign `j` before the inner loop reads it."""
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        j = 0
        for _ in tl.range(0, m):
            acc = acc + tl.load(x_ptr + (i * m + j) * T * F32, shape=(T,))
            j += 1
    tl.store(o_ptr, acc)


def test_an_inner_loop_s_counter_is_found_in_every_outer_iteration_traced():
    args = lambda ctx: (ctx.empty((6 * 8 * T,), "f32"), ctx.empty((T,), "f32"), 6, 8)  # noqa: E731
    off = _launch(inner_counter, args, "off")
    with pytest.warns(ReplayWarning, match="the body reads `j` before assigning it") as w:
        on = _launch(inner_counter, args, "on")
    assert_same_launch(off, on)
    line = inner_counter.__code__.co_firstlineno + 6
    assert {str(x.message).split(": tl.range")[0] for x in w} == {f"PE (0, 0) at test_tl_range_state.py:{line}"}
    # the outer loop carries nothing: it is replayed around its inner loop traced in full
    assert on.program.compact is not None and len(on.program.compact.tiles)
    assert "tl.range in iteration index 0 of the tl.range at" in str(w[0].message)


def test_each_pe_s_loop_is_found_and_warned_once():
    def k(x_ptr, o_ptr, n, *, tl):
        p = x_ptr
        acc = tl.zeros((T,), "f32")
        for _ in tl.range(0, n):
            acc = acc + tl.load(p, shape=(T,))
            p += T * F32
        tl.store(o_ptr, acc)

    args = _rows(10)
    off = _launch(k, args, "off", grid=(4, 1))
    with pytest.warns(ReplayWarning) as w:
        on = _launch(k, args, "on", grid=(4, 1))
    assert_same_launch(off, on)
    assert len(w) == 1 and "`p`" in str(w[0].message)


# -- not found: state the loop's variables do not hold, or none ------------------------------
def handles_only(x_ptr, o_ptr, n, *, tl):
    """A pipeline's rotation of handles, an `if i == 0:` setup, values recomputed from the index
    and invariants read each iteration: replayed."""
    acc = tl.zeros((T,), "f32")
    first = None
    prev = cur = tl.load(x_ptr, shape=(T,))
    scale, B = 0.5, T * F32
    for i in tl.range(0, n):
        off = i * B
        nxt = tl.load(x_ptr + off, shape=(T,))
        if i == 0:
            first = nxt
        acc = acc + prev * scale
        prev, cur = cur, nxt
    tl.store(o_ptr, acc + first)


def test_a_body_carrying_only_handles_stays_replayed():
    _replayed(handles_only, _rows(12))


def test_a_list_of_handles_rotated_in_place_stays_replayed():
    def k(x_ptr, o_ptr, n, *, tl):
        win = [tl.zeros((T,), "f32"), tl.zeros((T,), "f32")]
        for i in tl.range(0, n):
            win = [win[1], win[0] + tl.load(x_ptr + i * T * F32, shape=(T,))]
        tl.store(o_ptr, win[1])

    _replayed(k, _rows(12))


def test_a_nan_a_float_keeps_is_the_same_state():
    def k(x_ptr, o_ptr, n, *, tl):
        acc = tl.zeros((T,), "f32")
        nan = float("nan")
        for i in tl.range(0, n):
            acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
            nan = float("nan")  # (a new NaN object each iteration: equal state, by repr)
            if nan == nan:
                acc = acc + 1.0
        tl.store(o_ptr, acc)

    _replayed(k, _rows(12))


def test_state_an_object_holds_is_left_to_the_address_check_and_verify():
    # (documented as not found by this check: box.n is no variable of the loop's frame. Its
    # addresses give it away after replay, as before: traced again, with the older warning)
    def k(x_ptr, o_ptr, n, *, tl):
        box = types.SimpleNamespace(n=0)
        acc = tl.zeros((T,), "f32")
        for _ in tl.range(0, n):
            acc = acc + tl.load(x_ptr + box.n * T * F32, shape=(T,))
            box.n += 1
        tl.store(o_ptr, acc)

    off = _launch(k, _rows(10), "off")
    with pytest.warns(ReplayWarning, match="is not the loop body moved on"):
        on = _launch(k, _rows(10), "on")
    assert_same_launch(off, on)
