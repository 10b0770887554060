"""tl.range replay and the Python state a loop's body carries in its variables: a variable the
body reads before it assigns it, whose value differs from iteration to iteration (a pointer
advanced with `+=`, a counter, a running width, a list appended to, a handle put in a slot the
index picks), is found at the
iterations proving the loop, and the loop traced in full as it runs (docs/language.md,
'tl.range', "Python state in the loop's variables"). What stays replayed is checked too: a
body carrying only tensor handles and values it recomputes from the index."""
import dataclasses
import dis
import sys
import types
import warnings

import numpy as np
import pytest
from replay_helpers import assert_same_launch

from kernbench.common.errors import KernelError, ReplayContractError, ReplayWarning
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
    (appended, "`kept`", _rows(10)),
    (width_replay_last, "`rem`", lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10)),
    (pair_state, "`st`", _rows(10)),
    (float_scale, "`s`", _rows(10)),
])
def test_state_in_the_loop_s_variables_is_found_and_the_loop_traced_in_full(kernel, names, args):
    on = _found(kernel, args, names)
    assert on.program.compact is None


@pytest.mark.parametrize("kernel,args", [
    (stats_counter, _rows(10)),
    (output_pointer, lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((10 * T,), "f32"), 10)),
])
def test_an_int_the_body_steps_is_stepped_by_replay(kernel, args):
    """A count the kernel divides by after the loop, an output pointer advanced with `+=`: an
    int local the body steps by a constant, which replay sets to the value full tracing has
    (loops._int_steps): replayed, and the same launch."""
    _replayed(kernel, args)


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
    """An inner loop's counter, reset by the outer body each iteration: the inner loop steps it
    (its own probes), the outer one sees its body assign `j` before the inner loop reads it."""
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        j = 0
        for _ in tl.range(0, m):
            acc = acc + tl.load(x_ptr + (i * m + j) * T * F32, shape=(T,))
            j += 1
    tl.store(o_ptr, acc)


def inner_float(x_ptr, o_ptr, n, m, *, tl):
    """inner_counter with a float scale carried instead (not an int: not stepped)."""
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        s = 1.0
        for j in tl.range(0, m):
            acc = acc + tl.load(x_ptr + (i * m + j) * T * F32, shape=(T,)) * s
            s = s * 0.5
    tl.store(o_ptr, acc)


def test_an_inner_loop_s_state_is_found_in_every_outer_iteration_traced():
    args = lambda ctx: (ctx.empty((6 * 8 * T,), "f32"), ctx.empty((T,), "f32"), 6, 8)  # noqa: E731
    off = _launch(inner_float, args, "off")
    with pytest.warns(ReplayWarning, match="the body reads `s` before assigning it") as w:
        on = _launch(inner_float, args, "on")
    assert_same_launch(off, on)
    line = inner_float.__code__.co_firstlineno + 5
    assert {str(x.message).split(": tl.range")[0] for x in w} == {f"PE (0, 0) at test_tl_range_state.py:{line}"}
    # the outer loop carries nothing: it is replayed around its inner loop traced in full
    assert on.program.compact is not None and len(on.program.compact.tiles)
    assert "tl.range in iteration index 0 of the tl.range at" in str(w[0].message)
    # an int counter instead: the inner loop steps it in every run, both loops replayed
    on = _replayed(inner_counter, args)
    assert {(lp.runs, lp.iterations, lp.replayed) for lp in on.loops} == {(1, 6, 2), (4, 32, 16)}


def test_each_pe_s_loop_is_found_and_warned_once():
    def k(x_ptr, o_ptr, n, *, tl):
        p = [x_ptr]
        acc = tl.zeros((T,), "f32")
        for _ in tl.range(0, n):
            acc = acc + tl.load(p[0], shape=(T,))
            p[0] += T * F32  # (in a list: not an int local, which replay would step)
        tl.store(o_ptr, acc)

    args = _rows(10)
    off = _launch(k, args, "off", grid=(4, 1))
    with pytest.warns(ReplayWarning) as w:
        on = _launch(k, args, "on", grid=(4, 1))
    assert_same_launch(off, on)
    assert len(w) == 1 and "`p`" in str(w[0].message)



# -- tensor handles that change places ---------------------------------------------------------
# Replay moves each handle the last two traced iterations made on by the iterations it skips,
# where it sits. A body putting its tensor in a slot the index picks leaves, after replay, the
# slots holding other iterations' tensors than it would: before, replayed silently (the
# program's operands differed from full tracing's; a ring all-reduce's cycles 4% off:
# test_tl_range.py, test_a_ring_all_reduce_s_chunks_picked_by_the_index_are_found).
def double_buffer(x_ptr, o_ptr, n, *, tl):
    bufs = [tl.zeros((T,), "f32"), tl.zeros((T,), "f32")]
    for i in tl.range(0, n):
        bufs[i % 2] = bufs[(i + 1) % 2] + tl.load(x_ptr + i * T * F32, shape=(T,))
    tl.store(o_ptr, bufs[0] * 2.0 + bufs[1])


def rotating_slots(x_ptr, o_ptr, n, *, tl):
    ch = [tl.zeros((T,), "f32") for _ in range(4)]
    for i in tl.range(0, n):
        ch[i % 4] = ch[(i - 1) % 4] + tl.load(x_ptr + i * T * F32, shape=(T,))
    tl.store(o_ptr, ch[0] + ch[1] * 2.0 + ch[2] * 3.0 + ch[3] * 4.0)


def kept_from_iteration_one(x_ptr, o_ptr, n, *, tl):
    keep = {"x": None}
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * F32, shape=(T,))
        if i == 1:  # (A's tensor, kept: replay would move it on to the last replayed one's)
            keep["x"] = x
        acc = acc + x
    tl.store(o_ptr, acc + keep["x"])


def previous_in_a_double_buffer(x_ptr, o_ptr, n, *, tl):
    # (a review) the slot the index picks holds the last iteration's tensor; iteration 0 sets
    # both: at A's end [x0, x0], at B's [x1, x0], each slot alone a window or a value kept,
    # but x0 cannot become both x1 and itself
    bufs = prev = None
    for i in tl.range(0, n):
        x = tl.exp(tl.load(x_ptr + i * T * F32, shape=(T,)))
        if i == 0:
            bufs = [x, x]
        else:
            bufs[i % 2] = prev
        prev = x
    tl.store(o_ptr, tl.exp(tl.exp(bufs[1])))


def object_array_double_buffer(x_ptr, o_ptr, n, *, tl):
    bufs = np.empty(2, dtype=object)  # (a review: an object array was compared by its identity)
    bufs[0] = bufs[1] = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        bufs[i % 2] = tl.exp(tl.load(x_ptr + i * T * F32, shape=(T,)))
    tl.store(o_ptr, tl.exp(tl.exp(bufs[1])))


class _Ring(list):
    pass


def list_subclass_s_attribute(x_ptr, o_ptr, n, *, tl):
    r = _Ring()  # (a review: a list subclass's own attributes were not read)
    r.bufs = [tl.zeros((T,), "f32")] * 2
    for i in tl.range(0, n):
        r.bufs[i % 2] = tl.exp(tl.load(x_ptr + i * T * F32, shape=(T,)))
    tl.store(o_ptr, tl.exp(tl.exp(r.bufs[1])))


def swapped_from_before_the_loop(x_ptr, o_ptr, n, *, tl):
    a = tl.zeros((T,), "f32")  # (a review: two tensors from before the loop swapping roles)
    b = tl.exp(tl.load(x_ptr, shape=(T,)))
    for i in tl.range(0, n):
        p = x_ptr + i * T * F32
        tl.store(p, tl.exp(tl.load(p, shape=(T,))))
        a, b = b, a
    tl.store(o_ptr, tl.exp(a))


def a_new_tensor_from_before_the_loop_each_iteration(x_ptr, o_ptr, n, *, tl):
    # (a window over tensors from before the loop, read by no command: replay keeps them, so
    # after it older is B's, which the traced last iteration does not put right)
    tiles = [tl.load(x_ptr + j * T * F32, shape=(T,)) for j in range(n)]
    older = last = tiles[0]
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        older, last = last, tiles[i]
    tl.store(o_ptr, acc + older * 2.0 + last)


def first_two_as_dict_keys(x_ptr, o_ptr, n, *, tl):
    seen = {}  # (a review: handles as a dict's keys were compared as they are, never moved)
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        t = tl.load(x_ptr + i * T * F32, shape=(T,))
        acc = acc + t
        if len(seen) < 2:
            seen[t] = len(seen)
    for h in seen:
        tl.store(o_ptr, h)
    tl.store(o_ptr, acc)


def window_over_tensors_one_of_which_is_held(x_ptr, o_ptr, n, *, tl):
    # (a review: the chain's end, held by another variable, counted as one that stays)
    tiles = [tl.load(x_ptr + j * T * F32, shape=(T,)) for j in range(n)]
    get = tiles.__getitem__
    hold, last = tiles[2], tiles[0]
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,)) * hold
        older, last = last, get(i)
    tl.store(o_ptr, acc + older * 2.0 + last)


@pytest.mark.parametrize("kernel,names", [(a_new_tensor_from_before_the_loop_each_iteration, "`last`, `tiles`"),
                                          (first_two_as_dict_keys, "`seen`"),
                                          (window_over_tensors_one_of_which_is_held, "`last`"),
                                          (double_buffer, "`bufs`"), (rotating_slots, "`ch`"),
                                          (kept_from_iteration_one, "`keep`"),
                                          (previous_in_a_double_buffer, "`bufs`"),
                                          (object_array_double_buffer, "`bufs`"),
                                          (list_subclass_s_attribute, "`r`"),
                                          (swapped_from_before_the_loop, "`a`, `b`")])
def test_a_handle_put_in_a_slot_the_index_picks_is_found(kernel, names):
    for n in (11, 12):  # (an odd and an even number of replayed iterations)
        _found(kernel, _rows(n), names)


def fixed_slot(x_ptr, o_ptr, n, *, tl):
    st = [tl.zeros((T,), "f32"), tl.zeros((T,), "f32")]
    for i in tl.range(0, n):
        st[0] = st[0] + tl.load(x_ptr + i * T * F32, shape=(T,))
    tl.store(o_ptr, st[0] + st[1])


def dict_slot(x_ptr, o_ptr, n, *, tl):
    st = {"acc": tl.zeros((T,), "f32"), "c": tl.zeros((T,), "f32")}
    for i in tl.range(0, n):
        st["acc"] = st["acc"] + tl.load(x_ptr + i * T * F32, shape=(T,))
    tl.store(o_ptr, st["acc"] + st["c"])


def kept_from_iteration_zero(x_ptr, o_ptr, n, *, tl):
    keep = [None]
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * F32, shape=(T,))
        if i == 0:  # (set-up: a tensor replay keeps where it is)
            keep[0] = x
        acc = acc + x
    tl.store(o_ptr, acc + keep[0])


def window_in_a_list(x_ptr, o_ptr, n, *, tl):
    w = [tl.zeros((T,), "f32")] * 3
    for i in tl.range(0, n):
        w[0], w[1] = w[1], w[2]  # (two iterations old at most, each slot keeping its role)
        w[2] = w[1] + tl.load(x_ptr + i * T * F32, shape=(T,))
    tl.store(o_ptr, w[0] + w[2])


def two_back_after_a_shorter_iteration_0(x_ptr, o_ptr, n, *, tl):
    # (a review: iteration 0 makes one tensor fewer, so its x sits elsewhere than iteration 1's;
    # a window moving it on was taken for a slot the index picks)
    z = tl.zeros((T,), "f32")
    a, b = z, z
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        if i > 0:
            acc = acc + a
        x = tl.exp(tl.load(x_ptr + i * T * F32, shape=(T,)))
        a, b = b, x
    tl.store(o_ptr, acc + a + b)


def init_shared_by_a_window_and_a_constant(x_ptr, o_ptr, n, *, tl):
    c = tl.zeros((T,), "f32")  # (one tensor from before the loop: kept in one, given way in another)
    keep, older, newest = c, c, c
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * F32, shape=(T,))
        tl.store(o_ptr, x + keep)
        older, newest = newest, x + 1.0
    tl.store(o_ptr, older + newest)


def window_fed_from_before_the_loop(x_ptr, o_ptr, n, *, tl):
    # (a fuzz case) at iteration 0's end (older, last) = (L, C), at 1's (C, K0): a window's first
    # values, from before the loop, shifting along to the loop's own
    c = tl.zeros((T,), "f32")
    older = last = tl.load(x_ptr, shape=(T,))
    for _ in tl.range(0, n, replay_first=True):
        prev_c = c
        c = c + last
        older, last = last, prev_c
    tl.store(o_ptr, older + last + c)


def window_shifting_onto_a_constant(x_ptr, o_ptr, n, lag=False, *, tl):
    # (a fuzz case, replay_first) at iteration 0's end (older, last) = (L, C), at 1's (C, C):
    # the window's first value, from before the loop, shifts out onto a constant from before it.
    # From 0's end to 1's that is also how a window over tensors from before the loop the index
    # picks would read, so iteration 0 counts as set-up: iterations 1 and 2 prove the loop (it
    # was traced in full, with a warning). The body reads `older` only where `lag` is set (the
    # check reads the code: a read it may make)
    c = tl.zeros((T,), "f32")
    older = last = tl.load(x_ptr, shape=(T,))
    for i in tl.range(0, n, replay_first=True):
        x = tl.load(x_ptr + i * T * F32, shape=(T,))
        tl.store(o_ptr, x + older if lag else x * 2.0)
        older, last = last, tl.reshape(c, (T,))
    tl.store(o_ptr, older + last)


def last_tile_as_a_dict_key(x_ptr, o_ptr, n, *, tl):
    pend = {}  # (a review: a dict keyed by the last iteration's tensor, rebuilt: replayed)
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        t = tl.load(x_ptr + i * T * F32, shape=(T,))
        for h, w in pend.items():
            acc = acc + h * w
        pend = {t: 0.5}
    tl.store(o_ptr, acc)


def last_tile_in_a_set(x_ptr, o_ptr, n, *, tl):
    pend = set()
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        t = tl.load(x_ptr + i * T * F32, shape=(T,))
        for h in pend:
            acc = acc + h
        pend = {t}
    tl.store(o_ptr, acc)


def finished_after_iteration_1(x_ptr, o_ptr, n, *, tl):
    # (a review) iterations 2 and 3 prove the loop (iteration 1 makes a tensor more): its
    # iteration 1 is set-up, as iteration 0, and not compared
    acc0 = tl.zeros((T,), "f32")
    acc1 = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        t = tl.load(x_ptr + i * T * F32, shape=(T,))
        if i <= 1:
            acc0 = acc0 + t
        acc1 = acc1 + t
    tl.store(o_ptr, acc0 + acc1)


@pytest.mark.parametrize("kernel", [fixed_slot, dict_slot, kept_from_iteration_zero, window_in_a_list,
                                    last_tile_as_a_dict_key, last_tile_in_a_set, finished_after_iteration_1,
                                    window_fed_from_before_the_loop, window_shifting_onto_a_constant,
                                    two_back_after_a_shorter_iteration_0,
                                    init_shared_by_a_window_and_a_constant])
def test_handles_keeping_their_places_stay_replayed(kernel):
    _replayed(kernel, _rows(12))


def test_a_handle_s_state_is_compared_as_replay_moves_it():
    from kernbench.common.pe_commands import TensorHandle
    from kernbench.language import loops

    def th(i):
        return TensorHandle(i, 0, (T,), "f32", T * F32)

    def h(i):
        return loops._safe_state(th(i))

    # iterations 0 to 4 made tensors 80..89, 90..99, ...; x is read at the end of iteration 3
    w = loops._Iterations(3, (80, 90, 100, 110, 120, 130))
    assert loops._alike(h(112), h(122), w)  # x's own: the same tensor of the next iteration
    assert not loops._alike(h(112), h(112), w)  # (kept: replay would move it on)
    for i in (103, 93):  # the two before: moved on (a window) or kept (a value done with)
        assert loops._alike(h(i), h(i + 10), w) and loops._alike(h(i), h(i), w)
        assert not loops._alike(h(i), h(i + 20), w)  # (a slot the index picks)
    assert loops._alike(h(85), h(85), w) and not loops._alike(h(85), h(95), w)  # older: kept
    assert loops._alike(h(5), h(5), w) and not loops._alike(h(5), h(82), w)  # from before
    assert not loops._alike(h(112), loops._safe_state(122), w)
    # a window's first values, from before the loop, at the end of iteration 1: iteration 0's next
    w1 = loops._Iterations(1, (80, 90, 100, 110))
    assert loops._alike(h(5), h(82), w1) and not loops._alike(h(5), h(92), w1)
    assert loops._alike(h(5), h(7), w1)  # (`older, last = last, x` where x is from before it)
    # in containers, by place; a dict's entries by key, in any order
    assert loops._alike(loops._safe_state([th(5), th(112)]), loops._safe_state([th(5), th(122)]), w)
    assert not loops._alike(loops._safe_state([th(112), th(5)]), loops._safe_state([th(5), th(122)]), w)
    a = {"m": th(112), "k": 1}
    b = {"k": 1, "m": th(122)}
    assert loops._alike(loops._safe_state(a), loops._safe_state(b), w)
    b["k"] = 2
    assert not loops._alike(loops._safe_state(a), loops._safe_state(b), w)


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


_HIDDEN = types.SimpleNamespace()


def _tally():
    return _HIDDEN


def test_state_no_variable_of_the_loop_holds_is_left_to_the_address_check_and_verify():
    # (documented as not found by this check: a helper's module keeps the count, and no
    # variable of the loop's frame holds it. Its addresses give it away after replay, as before:
    # traced again, with the older warning)
    def k(x_ptr, o_ptr, n, *, tl):
        _tally().n = 0
        acc = tl.zeros((T,), "f32")
        for _ in tl.range(0, n):
            acc = acc + tl.load(x_ptr + _tally().n * T * F32, shape=(T,))
            _tally().n += 1
        tl.store(o_ptr, acc)

    off = _launch(k, _rows(10), "off")
    with pytest.warns(ReplayWarning, match="is not the loop body moved on"):
        on = _launch(k, _rows(10), "on")
    assert_same_launch(off, on)


# -- a review's cases (breakers of the first version) -----------------------------------------
def long_body_width(x_ptr, y_ptr, o_ptr, n, *, tl):
    """A body past 255 code units: its FOR_ITER has an EXTENDED_ARG prefix, which the jump back
    names (the analysis found no loop: the running width went unseen)."""
    acc = tl.zeros((1,), "f32")
    rem = n * 256 - 250
    for i in tl.range(0, n):
        w = min(256, rem)
        x = tl.load(x_ptr + i * 256 * F32, shape=(w,), dtype="f32")
        y = tl.load(y_ptr + i * 256 * F32, shape=(w,), dtype="f32")
        d = x - y
        e = tl.exp(d - tl.max(d, axis=0))
        s = tl.sum(e, axis=0)
        acc = acc + tl.sum(e * x, axis=0) / s
        acc = acc + tl.sum(tl.abs(d), axis=0)
        acc = acc + tl.sum(tl.abs(x), axis=0) * tl.sum(tl.abs(y), axis=0)
        acc = acc + tl.sum(tl.exp(x), axis=0) * tl.sum(tl.exp(y), axis=0)  # (3.13's code is
        acc = acc + tl.sum(tl.exp(d), axis=0) * tl.sum(tl.exp(e), axis=0)  # more compact)
        rem -= 256
    tl.store(o_ptr, acc)


def test_a_body_longer_than_255_code_units_is_analysed():
    fi = next(x for x in dis.get_instructions(long_body_width) if x.opname == "FOR_ITER")
    assert fi.arg > 255  # (the case: an EXTENDED_ARG before the FOR_ITER)
    assert "rem" in semantic._live_in(long_body_width.__code__, fi.offset)
    args = lambda ctx: (ctx.empty((10 * 256,), "f32"), ctx.empty((10 * 256,), "f32"),  # noqa: E731
                        ctx.empty((1,), "f32"), 10)
    _replayed(long_body_width, args)  # (an int local stepped: replay steps it)


class _Flusher:
    """Stores its tile when it is freed: a local object's __del__ runs inside the program."""

    def __init__(self, tl, ptr, h):
        self.tl, self.ptr, self.h = tl, ptr, h

    def __del__(self):
        self.tl.store(self.ptr, self.h)


def flushes_after_the_loop(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T,), "f32")
    fl = _Flusher(tl, o_ptr, tl.zeros((T,), "f32") + 1.0)
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
    del fl  # its __del__ stores here
    tl.store(o_ptr, tl.exp(acc))


def test_reading_the_loop_s_variables_keeps_no_value_alive():
    # (a review: the frame's f_locals copy held `fl` to the kernel's return, so its store moved
    # after the last one)
    _replayed(flushes_after_the_loop, _rows(12))


HIDDEN_REM = 0


def global_width(x_ptr, o_ptr, n, *, tl):
    global HIDDEN_REM
    HIDDEN_REM = n * T - 5
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, HIDDEN_REM)
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
        HIDDEN_REM -= T
    tl.store(o_ptr, acc)


def closure_width(x_ptr, o_ptr, n, *, tl):
    rem = n * T - 5

    def next_width():
        nonlocal rem
        w = min(T, rem)
        rem -= T
        return w

    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(next_width(),)))
    tl.store(o_ptr, acc)


def walrus_width(x_ptr, o_ptr, n, *, tl):
    rem = n * T - 5 + T
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = [min(T, (rem := rem - T)) for _ in (0,)][0]
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def except_width(x_ptr, o_ptr, n, *, tl):
    cache, rem = {}, n * T - 5
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        try:
            w = cache[i]
        except KeyError:
            w = min(T, rem)
            rem -= T
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def deep_width(x_ptr, o_ptr, n, *, tl):
    st = [[[[n * T - 5]]]]
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, st[0][0][0][0])
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
        st[0][0][0][0] -= T
    tl.store(o_ptr, acc)


def array_width(x_ptr, o_ptr, n, *, tl):
    rem = np.array(n * T - 5)
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = int(min(T, rem))
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
        rem -= T
    tl.store(o_ptr, acc)


def deque_width(x_ptr, o_ptr, n, *, tl):
    import collections
    widths = collections.deque([T] * (n - 1) + [T - 5])
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(widths.popleft(),)))
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("kernel,names", [
    (global_width, "`HIDDEN_REM`"), (closure_width, "`rem`"), (walrus_width, "`rem`"),
    (deep_width, "`st`"), (array_width, "`rem`"), (deque_width, "`widths`"),
])
def test_a_running_width_wherever_the_loop_s_frame_keeps_it_is_found(kernel, names):
    # (a review: each was a silent wrong program: the last block loaded 8 wide, not 3)
    if kernel is walrus_width and sys.version_info >= (3, 12):
        # (3.12 inlines the comprehension, PEP 709: `rem` is then a plain local, stepped)
        _replayed(kernel, lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10))
        return
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10)  # noqa: E731
    _found(kernel, args, names)


def test_a_running_width_in_an_int_local_is_stepped_wherever_the_body_steps_it():
    # (except_width: the width counted down in an `except` branch taken every iteration)
    _replayed(except_width, lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10))


@dataclasses.dataclass(frozen=True)
class _Softmax:
    m: object
    acc: object


def dataclass_of_handles(x_ptr, o_ptr, n, *, tl):
    """An online softmax's state as a frozen dataclass of handles, rebound each iteration."""
    st = _Softmax(tl.full((T,), -1e30, "f32"), tl.zeros((T,), "f32"))
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * F32, shape=(T,))
        m = tl.maximum(st.m, x)
        st = _Softmax(m, st.acc * tl.exp(st.m - m) + tl.exp(x - m))
    tl.store(o_ptr, st.acc)


def namespace_of_handles(x_ptr, o_ptr, n, *, tl):
    st = types.SimpleNamespace(acc=tl.zeros((T,), "f32"), scale=0.5)
    add = st.acc.__add__
    for i in tl.range(0, n):
        st = types.SimpleNamespace(acc=st.acc + tl.load(x_ptr + i * T * F32, shape=(T,)) * st.scale,
                                   scale=st.scale)
        add = st.acc.__add__
    tl.store(o_ptr, add(1.0))


@pytest.mark.parametrize("kernel", [dataclass_of_handles, namespace_of_handles])
def test_objects_holding_only_handles_stay_replayed(kernel):
    # (a review: compared by identity, they lost replay: 10x slower, with a warning)
    _replayed(kernel, _rows(12))


def test_a_value_s_state_looks_at_a_bounded_number_of_elements():
    from kernbench.language import loops

    # (a review: a 32 x 32 x 32 table of floats read each iteration made replay 200x slower)
    cube = [[[float(a * b * c) for c in range(32)] for b in range(32)] for a in range(32)]

    def leaves(s):
        return sum(leaves(x) for x in s) if isinstance(s, tuple) else 1

    state = loops._safe_state(cube)
    assert leaves(state) <= 4 * loops._STATE_BUDGET
    assert loops._safe_state(cube) == state
    cube[0][0][0] = -1.0  # (past the budget: not seen, the documented limit)
    small = [[1.0, 2.0], {"a": (3, 4)}, {5}]
    before = loops._safe_state(small)
    small[1]["a"] = (3, 5)
    assert loops._safe_state(small) != before


def test_a_type_whose_metaclass_compares_oddly_runs_none_of_its_code():
    class Meta(type):
        def __eq__(cls, other):
            raise RuntimeError("metaclass __eq__ called")
        __hash__ = type.__hash__

    class A(metaclass=Meta):
        pass

    class B(metaclass=Meta):
        pass

    def k(x_ptr, o_ptr, n, *, tl):
        acc = tl.zeros((T,), "f32")
        tag = A()
        for i in tl.range(0, n):
            acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
            seen = tag  # noqa: F841 (read before assigned: carried)
            tag = B() if i % 2 == 0 else A()
        tl.store(o_ptr, acc)

    _found(k, _rows(12), "`tag`")


def yielded_from_width(x_ptr, o_ptr, n, *, tl):
    def blocks():
        yield from tl.range(0, n)

    rem = n * T - 5
    acc = tl.zeros((1,), "f32")
    for i in blocks():
        w = min(T, rem)
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
        rem -= T
    tl.store(o_ptr, acc)


def test_a_loop_over_a_generator_over_tl_range_is_not_looked_at():
    # (documented: the shipped prefill kernel's pipeline counts folds in such a loop on purpose;
    # verify mode finds this one)
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10)  # noqa: E731
    off, on = _launch(yielded_from_width, args, "off"), _launch(yielded_from_width, args, "on")
    assert off.program.commands.tobytes() != on.program.commands.tobytes()
    from kernbench.common.errors import KernelError
    with pytest.raises(KernelError, match=r"tl.range replay \(verify mode\)"):
        _launch(yielded_from_width, args, "verify")


# -- a second review's cases ------------------------------------------------------------------
def list16_width(x_ptr, o_ptr, n, *, tl):  # (16 elements: all within the budget)
    st = [n * T - 5] + [0] * 15
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, st[0])
        st[0] -= T
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def array16_width(x_ptr, o_ptr, n, *, tl):
    st = np.zeros(16, np.int64)
    st[0] = n * T - 5
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, int(st[0]))
        st[0] -= T
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


@dataclasses.dataclass
class _Eight:
    rem: int
    a: int = 0
    b: int = 0
    c: int = 0
    d: int = 0
    e: int = 0
    f: int = 0
    g: int = 0


def dataclass8_width(x_ptr, o_ptr, n, *, tl):
    st = _Eight(rem=n * T - 5)
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, st.rem)
        st.rem -= T
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def rebound_width(x_ptr, o_ptr, n, *, tl):  # (a new object each iteration)
    st = _Eight(rem=n * T - 5)
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, st.rem)
        st = dataclasses.replace(st, rem=st.rem - T)
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def helper_list_width(x_ptr, o_ptr, n, *, tl):  # (a nested helper changes a list a cell holds)
    rem = [n * T - 5]

    def width():
        w = min(T, rem[0])
        rem[0] -= T
        return w

    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(width(),)))
    tl.store(o_ptr, acc)


GLOBAL_REM = 0


def global_walrus_width(x_ptr, o_ptr, n, *, tl):  # (a comprehension's := assigns the global)
    global GLOBAL_REM
    GLOBAL_REM = n * T - 5
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, GLOBAL_REM)
        [(GLOBAL_REM := GLOBAL_REM - T) for _ in (0,)]
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def genexp_width(x_ptr, o_ptr, n, *, tl):  # (read only through generator expressions)
    rem = n * T - 5
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = sum(1 for c in range(T) if c < rem)
        rem = next(rem - T for _ in "x")
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("kernel,names", [
    (list16_width, "`st`"), (array16_width, "`st`"), (dataclass8_width, "`st`"), (rebound_width, "`st`"),
    (helper_list_width, "`rem`"), (global_walrus_width, "`GLOBAL_REM`"), (genexp_width, "`rem`"),
])
def test_state_within_the_documented_reach_is_found(kernel, names):
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10)  # noqa: E731
    _found(kernel, args, names)


def after_the_loop_in_an_except(x_ptr, o_ptr, n, *, tl):
    """A variable of the body read in an except around the loop: no iteration's."""
    from kernbench.common.errors import KernelError
    acc = tl.zeros((T,), "f32")
    try:
        for i in tl.range(0, n):
            off = i * T * F32
            acc = acc + tl.load(x_ptr + off, shape=(T,))
    except KernelError as e:
        raise RuntimeError(f"load failed at byte offset {off}") from e
    tl.store(o_ptr, acc)


def sixteen_accumulators(x_ptr, o_ptr, n, *, tl):
    accs = [tl.zeros((T,), "f32") for _ in range(16)]
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * F32, shape=(T,))
        accs = [a + x for a in accs]
    tl.store(o_ptr, accs[0] + accs[15])


def dict_of_handles(x_ptr, o_ptr, n, *, tl):
    st = {h: tl.zeros((T,), "f32") for h in range(8)}
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * F32, shape=(T,))
        st = {h: a + x for h, a in st.items()}
    tl.store(o_ptr, st[0] + st[7])


def keeps_locals(x_ptr, o_ptr, n, *, tl):
    L = locals()  # (Python 3.11: the frame's own copy, which the check must not empty)
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
    tl.store(L["o_ptr"], acc)


@pytest.mark.parametrize("kernel", [after_the_loop_in_an_except, sixteen_accumulators, dict_of_handles,
                                    keeps_locals])
def test_kernels_within_the_contract_stay_replayed(kernel):
    _replayed(kernel, _rows(12))


def test_reading_a_variable_runs_none_of_its_code():
    calls = []

    class Probe:
        def __getattribute__(self, name):
            calls.append(name)
            return object.__getattribute__(self, name)

    def k(x_ptr, o_ptr, n, *, tl):
        p = Probe()
        acc = tl.zeros((T,), "f32")
        for i in tl.range(0, n):
            id(p)
            acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        tl.store(o_ptr, acc)

    _replayed(k, _rows(10))
    assert calls == []


# -- a fuzz campaign's cases --------------------------------------------------------------------
def class_width(x_ptr, o_ptr, n, *, tl):
    class St:  # (a class as a namespace)
        rem = n * T - 5

    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, St.rem)
        St.rem -= T
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def partial_width(x_ptr, o_ptr, n, *, tl):
    import functools
    st = functools.partial(min, T, n * T - 5)  # (its state is in C: func, args, keywords)
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(st(),)))
        st = functools.partial(min, T, st.args[1] - T)
    tl.store(o_ptr, acc)


def bytearray_width(x_ptr, o_ptr, n, *, tl):
    st = bytearray([n * T - 5])
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, st[0])
        st[0] = max(0, st[0] - T)
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def array_module_width(x_ptr, o_ptr, n, *, tl):
    import array
    st = array.array("i", [n * T - 5, 0, 0])
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        w = min(T, st[0])
        st[0] -= T
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,)))
    tl.store(o_ptr, acc)


def range_rebound_width(x_ptr, o_ptr, n, *, tl):
    r = range(n * T - 5)
    acc = tl.zeros((1,), "f32")
    for i in tl.range(0, n):
        left = len(r)
        del r  # (the old range freed first: a new one may take its address)
        r = range(max(0, left - T))  # noqa: F841 (read by the next iteration)
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(min(T, left),)))
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("kernel,names", [
    (class_width, "`St`"), (partial_width, "`st`"), (bytearray_width, "`st`"), (array_module_width, "`st`"),
    (range_rebound_width, "`r`"),
])
def test_state_in_classes_c_objects_and_buffers_is_found(kernel, names):
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10)  # noqa: E731
    _found(kernel, args, names)


def rebuilt_equal(x_ptr, o_ptr, n, *, tl):
    """A slice, a range, a lambda and a dict made again each iteration, equal (the dict in
    another order): the same state."""
    acc = tl.zeros((T,), "f32")
    win, reps, f, cfg = slice(0, T), range(1), (lambda a: a), {"W": T, "B": T * F32}
    for i in tl.range(0, n):
        for _ in reps:
            acc = f(acc + tl.load(x_ptr + i * cfg["B"], shape=(win.stop - win.start,)))
        win, reps, f = slice(0, T), range(1), (lambda a: a)
        cfg = dict(reversed(list(cfg.items())))
    tl.store(o_ptr, acc)


def test_values_rebuilt_equal_each_iteration_stay_replayed():
    _replayed(rebuilt_equal, _rows(12))


def nested_slice(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T,), "f32")
    sl = slice(0, T)
    for o in tl.range(0, 6):
        for i in tl.range(0, n):
            acc = acc + tl.load(x_ptr + (o * n + i) * T * F32, shape=(T,))
            sl = slice(sl.start + 1, sl.stop + 1)
    acc = acc + tl.sum(tl.load(x_ptr, shape=(max(1, sl.start - 6 * n + T),)))
    tl.store(o_ptr, acc)


def nested_list_in_a_dict(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T,), "f32")
    st = {"done": []}
    for o in tl.range(0, 5):
        for i in tl.range(0, n):
            st["done"].append(i)
            acc = acc + tl.load(x_ptr + (o * n + i) * T * F32, shape=(T,))
    acc = acc + tl.sum(tl.load(x_ptr, shape=(len(st["done"]) - 5 * n + T,)))
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("kernel", [nested_slice, nested_list_in_a_dict])
def test_a_loop_found_once_is_traced_in_full_in_every_run(kernel):
    # (a fuzz campaign: the inner loop was found in the outer loop's first iteration, then
    # replayed in a later one where its state hid past what the check looks at, or the outer
    # loop was replayed with a slice rebound at a reused address: wrong, under a warning
    # promising exactness)
    args = lambda ctx: (ctx.empty((6 * 6 * T,), "f32"), ctx.empty((T,), "f32"), 6)  # noqa: E731
    off = _launch(kernel, args, "off")
    with pytest.warns(ReplayWarning):
        on = _launch(kernel, args, "on")
    assert_same_launch(off, on)


def shadowing_comprehension(x_ptr, o_ptr, n, *, tl):
    """A comprehension's `j` beside the body's own `j`, assigned after it (3.12 inlines the
    comprehension and saves the shadowed `j`: no read of the body's)."""
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        parts = [j * T * F32 for j in range(2)]
        j = 2 * i
        acc = acc + tl.load(x_ptr + j * T * F32 + parts[1], shape=(T,))
    tl.store(o_ptr, acc)


def carried_beside_a_comprehension(x_ptr, o_ptr, n, *, tl):
    """The body's `j` carried, a comprehension's `j` between its reads (saved and restored)."""
    acc = tl.zeros((1,), "f32")
    j = n * T - 5
    for i in tl.range(0, n):
        parts = [j for j in range(2)]
        w = min(T, j)
        j -= T
        acc = acc + tl.sum(tl.load(x_ptr + i * T * F32, shape=(w,))) + parts[0]
    tl.store(o_ptr, acc)


def test_a_comprehension_s_variable_is_its_own_on_every_python():
    # (a review on Python 3.12: the saved variable counted as read, a false warning)
    _replayed(shadowing_comprehension, lambda ctx: (ctx.empty((2 * 13 * T,), "f32"), ctx.empty((T,), "f32"), 12))
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((1,), "f32"), 10)  # noqa: E731
    _replayed(carried_beside_a_comprehension, args)  # (its `j` an int local, stepped by replay)


# -- ints the body steps: replay sets them (loops._int_steps) ----------------------------------
def triton_matmul(a_ptr, b_ptr, c_ptr, K, *, tl):
    """Triton's tutorial 03 idiom: the pointers advanced by the body with `+=`."""
    BK = 16
    acc = tl.zeros((T, T), "f32")
    ap, bp = a_ptr, b_ptr
    for _ in tl.range(0, K, BK):
        acc = tl.dot(tl.load(ap, shape=(T, BK), stride=K), tl.load(bp, shape=(BK, T), stride=T), acc)
        ap += BK * F32
        bp += BK * T * F32
    tl.store(c_ptr, acc)


def test_triton_s_advanced_pointers_are_stepped_and_the_values_right():
    K = 16 * 20
    a = np.random.default_rng(0).standard_normal((T, K)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((K, T)).astype(np.float32)

    def args(ctx):
        return ctx.replicate(a), ctx.replicate(b), ctx.empty((T, T), "f32"), K

    on = _replayed(triton_matmul, args)
    (lp,) = on.loops
    assert (lp.iterations, lp.replayed) == (20, 16)  # (iterations 0, 1, 2 and the last traced)
    ctx = Context("default")
    x = args(ctx)
    ctx.launch(triton_matmul, (1, 1), *x)  # (functional: every iteration traced)
    np.testing.assert_allclose(ctx.read(x[2], (0, 0)), a @ b, rtol=1e-4, atol=1e-4)


def doubling(x_ptr, o_ptr, n, *, tl):
    """An int the body doubles: not a constant step."""
    acc = tl.zeros((T,), "f32")
    s = 1
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        s = s * 2
    tl.store(o_ptr + (s % 7) * T * F32, acc)


def growing_step(x_ptr, o_ptr, n, *, tl):
    """An int stepped by the index (0, 1, 3, 6, ...): A's and B's step differ from the rest."""
    acc = tl.zeros((T,), "f32")
    s = 0
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        s += i
    tl.store(o_ptr + (s % 7) * T * F32, acc)


@pytest.mark.parametrize("kernel", [doubling, growing_step])
def test_an_int_not_stepped_by_a_constant_is_found_in_the_probes(kernel):
    """Its step from iteration 0's end to A's differs from A's to B's: found before replay, the
    loop traced in full as it runs, a ReplayWarning naming it. (Found after replay, at the
    iteration traced after it, the launch was traced again: the kernel's Python twice, what it
    changed outside itself changed twice, a breaker.) The store after the loop reads it."""
    calls = []

    def counted(*a, tl):
        calls.append(1)
        kernel(*a, tl=tl)

    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((7 * T,), "f32"), 10)  # noqa: E731
    off = _launch(kernel, args, "off")
    with pytest.warns(ReplayWarning, match=r"the body reads `s` before assigning it") as w:
        on = _launch(counted, args, "on")
    assert len(w) == 1 and calls == [1]  # (one trace)
    assert_same_launch(off, on)
    assert on.program.compact is None  # (traced in full)


def ragged_last_step(x_ptr, o_ptr, n, *, tl):
    """The pointer advanced by every iteration but the last: a ragged last iteration."""
    acc = tl.zeros((T,), "f32")
    p = x_ptr
    for i in tl.range(0, n):
        acc = acc + tl.load(p, shape=(T,))
        if i < n - 1:
            p += T * F32
    tl.store(o_ptr, acc + tl.load(p, shape=(T,)))


def test_a_last_iteration_stepping_otherwise_keeps_replay():
    """(A breaker: the last iteration's end was checked against the step, and the launch traced
    again.) The last iteration enters with B's value stepped, and leaves what full tracing has."""
    on = _replayed(ragged_last_step, _rows(10))
    assert on.loops[0].replayed == 6


def changed_step_read_in_the_last(x_ptr, o_ptr, n, *, tl):
    """A step that differs in a skipped iteration (outside the contract), read by the last
    iteration's shape: replay's value there makes an empty tile, full tracing's does not."""
    acc = tl.zeros((T,), "f32")
    j = 0
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        j += 2 if i == 5 else 1
        if i == n - 1:
            tl.store(o_ptr, tl.zeros((j - 10,), "f32"))
    tl.store(o_ptr, acc)


def test_an_error_in_the_iteration_after_replay_with_stepped_ints_is_full_tracing_s():
    """(A breaker.) Full tracing raises nothing; the last iteration, its Python run with `j` as
    replay stepped it, raised a shape error. An error there has the launch traced again with the
    loop in full: full tracing's outcome, a ReplayWarning saying why (verify's too)."""
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((T,), "f32"), 10)  # noqa: E731
    off = _launch(changed_step_read_in_the_last, args, "off")
    with pytest.warns(ReplayWarning, match=r"iteration 9 \(index 9\), traced after the iterations replay "
                                           r"skipped, is not the loop body moved on: it raised an error while its "
                                           r"Python ran with `j` as replay stepped it"):
        on = _launch(changed_step_read_in_the_last, args, "on")
    assert_same_launch(off, on)
    with pytest.warns(ReplayWarning, match="it raised an error while its Python ran with `j` as replay stepped it"):
        # (verify's first pass, replay on, finds it so, and the loop is traced in full in both)
        assert_same_launch(off, _launch(changed_step_read_in_the_last, args, "verify"))


def step_changed_once(x_ptr, o_ptr, n, *, tl):
    """A step that differs in one skipped iteration (an `if` on the index: outside the contract)."""
    acc = tl.zeros((T,), "f32")
    j = 0
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        j += 2 if i == 5 else 1
    tl.store(o_ptr + (j % 7) * T * F32, acc)


def test_verify_names_a_step_that_differs_in_a_skipped_iteration():
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((7 * T,), "f32"), 10)  # noqa: E731
    with pytest.raises(ReplayContractError, match=r"tl.range: iteration 5 \(index 5\) does not repeat the "
                                                  r"loop body: its variable `j` is 7 at its end, not 6"):
        _launch(step_changed_once, args, "verify")


def stepped_global(x_ptr, o_ptr, n, *, tl):
    global STEPPED
    acc = tl.zeros((T,), "f32")
    STEPPED = x_ptr
    for _ in tl.range(0, n):
        acc = acc + tl.load(STEPPED, shape=(T,))
        STEPPED += T * F32
    tl.store(o_ptr, acc)


def stepped_cell(x_ptr, o_ptr, n, *, tl):
    p = x_ptr
    at = lambda: p  # noqa: E731  (p a cell the lambda shares: not set by replay)
    acc = tl.zeros((T,), "f32")
    for _ in tl.range(0, n):
        acc = acc + tl.load(at(), shape=(T,))
        p += T * F32
    tl.store(o_ptr, acc)


def stepped_bool_and_subclass(x_ptr, o_ptr, n, *, tl):
    flag = False
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        flag = not flag
    tl.store(o_ptr + int(flag) * T * F32, acc)


@pytest.mark.parametrize("kernel,names", [
    (stepped_global, "`STEPPED`"), (stepped_cell, "`p`"), (stepped_bool_and_subclass, "`flag`")])
def test_an_int_replay_cannot_set_is_found_as_before(kernel, names):
    """A global, a cell a nested function shares, a bool: not stepped, the loop traced in full."""
    on = _found(kernel, lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((2 * T,), "f32"), 10), names)
    assert on.program.compact is None


def test_frame_locals_are_set_and_the_frame_s_copy_released():
    """semantic.set_locals writes a running function's local (3.11 and 3.12: the C API; 3.13:
    f_locals writes through), and leaves no copy of the frame's variables alive."""
    import gc
    import weakref

    class Big:
        pass

    seen = []

    def f():
        x, big = 1, Big()
        ref = weakref.ref(big)
        frame = sys._getframe()
        assert semantic.settable_local(frame, "x") and not semantic.settable_local(frame, "nope")
        semantic.set_locals(frame, {"x": 41})
        del frame, big
        gc.collect()
        seen.append(ref() is None)
        return x + 1

    assert f() == 42 and seen == [True]


def enumerate_inside_replayed_outer(x_ptr, o_ptr, n, *, tl):
    """(A breaker.) An inner loop whose addresses come from enumerate's count, whose last
    iteration, in the outer loop's last, reads the count in a shape: replay's count makes an
    empty tile, full tracing's does not."""
    acc = tl.zeros((T,), "f32")
    for i in tl.range(0, n):
        m = 10 if i == n - 1 else 3
        for c, q in enumerate(tl.range(0, m)):
            acc = acc + tl.load(x_ptr + (i * 16 + c) * T * F32, shape=(T,))
            if q == m - 1 and m == 10:
                tl.store(o_ptr, tl.zeros((c - 8,), "f32"))
    tl.store(o_ptr, acc)


def test_an_inner_loop_s_record_of_its_cut_iteration_survives_the_outer_loop_s_close():
    """The error leaving the kernel closes the loops innermost first; the outer loop, finding
    nothing in its own iteration, overwrote the inner one's record, and replay's error stood."""
    args = lambda ctx: (ctx.empty((6 * 16 * T,), "f32"), ctx.empty((T,), "f32"), 6)  # noqa: E731
    off = _launch(enumerate_inside_replayed_outer, args, "off")
    with pytest.warns(ReplayWarning, match="a load or store of 'a0' reads element"):
        on = _launch(enumerate_inside_replayed_outer, args, "on")
    assert_same_launch(off, on)


def break_then_error(x_ptr, o_ptr, n, runs, *, tl):
    runs.append(1)
    acc = tl.zeros((T,), "f32")
    p = x_ptr
    for i in tl.range(0, n):
        acc = acc + tl.load(p, shape=(T,))
        if i == n - 1:
            break
        p += T * F32
    raise ValueError(f"the kernel's own error, run {len(runs)}")


def test_a_break_in_the_last_iteration_does_not_retrace_a_later_error():
    """(A breaker.) A break closes the loop as an error does; with stepped ints any later
    error had the launch traced again (the kernel's Python twice, a note blaming the loop).
    Only an error unwinding that iteration does now (loops._left_by_code)."""
    for replay in ("off", "on"):
        runs = []
        with pytest.raises(KernelError, match="the kernel's own error, run 1") as e:
            _launch(break_then_error, lambda ctx, runs=runs: (*_rows(10)(ctx), runs), replay)
        assert runs == [1]
        assert not any("traced again" in n for n in getattr(e.value, "__notes__", []))


def numpy_stride(x_ptr, o_ptr, n, stride, *, tl):
    acc = tl.zeros((T,), "f32")
    p = x_ptr
    for _ in tl.range(0, n):
        acc = acc + tl.load(p, shape=(T,))
        p += stride
    tl.store(o_ptr, acc)


def one_not_constant(x_ptr, o_ptr, n, stride, *, tl):
    acc = tl.zeros((T,), "f32")
    p, s = x_ptr, 0
    for i in tl.range(0, n):
        acc = acc + tl.load(p, shape=(T,))
        p += T * F32
        s += i
    tl.store(o_ptr + (s % 2) * T * F32, acc)


@pytest.mark.parametrize("kernel,hint", [
    (numpy_stride, "`p`: a numpy integer (`p += stride` with a numpy stride makes one: `int(stride)`)"),
    (one_not_constant, "`s`: its step changes (1 then 2)"),
    (stepped_global, "`STEPPED`: a global"),
    (stepped_cell, "`p`: a variable a nested function shares (a cell)"),
])
def test_the_warning_says_why_a_number_was_not_stepped(kernel, hint):
    """(A breaker: the warning named `p`, `s` together, and a numpy stride's `p` with the advice
    `p += BLOCK` the kernel had written.)"""
    args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((2 * T,), "f32"), 10, np.int64(T * F32))  # noqa: E731
    if kernel in (stepped_global, stepped_cell):
        args = lambda ctx: (ctx.empty((10 * T,), "f32"), ctx.empty((2 * T,), "f32"), 10)  # noqa: E731
    with pytest.warns(ReplayWarning) as w:
        on = _launch(kernel, args, "on")
    assert "replay steps an int local by a constant only; " in str(w[0].message) and hint in str(w[0].message)
    assert hint in on.loops[0].why
    assert_same_launch(_launch(kernel, args, "off"), on)


def _kept_past_a_break(tl, x_ptr, n):
    """A tl.range left by a break in its last iteration (the iteration after replay), and its
    iterator, kept: the loop is not closed."""
    acc = tl.zeros((T,), "f32")
    it = iter(tl.range(0, n))
    for i in it:
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
        if i == n - 1:
            break
    return acc, it


def kept_iterator_dropped_in_a_later_loop(x_ptr, o_ptr, n, *, tl):
    """(A breaker.) Loop 1 left by a break, its iterator kept; loop 2 began while loop 1's
    lists were still set, recorded into them, and dropping the iterator in its first iteration
    closed loop 1, which took the lists with it: a raw TypeError in loop 2's proof."""
    acc, it = _kept_past_a_break(tl, x_ptr, n)
    for j in tl.range(0, n):
        acc = acc + tl.load(x_ptr + j * T * F32, shape=(T,))
        if j == 0:
            it = None  # noqa: F841
    tl.store(o_ptr, acc)


def test_a_loop_closed_inside_a_later_loop_leaves_it_exact():
    off = _launch(kept_iterator_dropped_in_a_later_loop, _rows(10), "off")
    on = _launch(kept_iterator_dropped_in_a_later_loop, _rows(10), "on")
    assert_same_launch(off, on)
    assert_same_launch(off, _launch(kept_iterator_dropped_in_a_later_loop, _rows(10), "verify"))


def locals_in_a_list(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T,), "f32")
    kept = [locals()]  # (a holder outside the frame's variables)
    for i in tl.range(0, n):
        acc = acc + tl.load(x_ptr + i * T * F32, shape=(T,))
    tl.store(o_ptr + 0 * kept[0]["n"], acc)


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13's locals() is a snapshot of its own (PEP 667)")
def test_a_locals_dict_kept_in_a_list_is_not_emptied():
    """(A breaker.) Replay empties the frame's f_locals copy it read when only the frame and its
    reader hold it; the compiled build counted one reference fewer (Cython lends a call its
    arguments), and a dict the kernel kept in a list was emptied: a KeyError."""
    assert_same_launch(_launch(locals_in_a_list, _rows(10), "off"), _launch(locals_in_a_list, _rows(10), "on"))
    assert semantic.FRAME_LOCALS_OWN_REFS == semantic._refs_of_a_local() + 1


def held_break_then_error(x_ptr, o_ptr, n, runs, drop, *, tl):
    runs.append(1)
    acc = tl.zeros((T,), "f32")
    p = x_ptr
    it = iter(tl.range(0, n))
    for i in it:
        acc = acc + tl.load(p, shape=(T,))
        if i == n - 1:
            break
        p += T * F32
    if drop:
        del it
    raise ValueError(f"the kernel's own error, run {len(runs)}")


@pytest.mark.parametrize("drop", [False, True])
def test_a_kept_iterator_left_by_a_break_does_not_retrace_a_later_error(drop):
    """(A breaker.) The loop is closed when the error unwinds the frame (or by `del it`), not at
    a break's POP_TOP: taken as an error in its last iteration, the launch was traced again.
    Whether the error was raised in the loop's body is read off where the frame was."""
    runs = []
    with pytest.raises(KernelError, match="the kernel's own error, run 1") as e:
        _launch(held_break_then_error, lambda ctx: (*_rows(10)(ctx), runs, drop), "on")
    assert runs == [1] and not any("traced again" in n for n in getattr(e.value, "__notes__", []))


def test_the_warning_names_a_loop_outside_a_function_and_an_int_blocked_by_other_state():
    def class_body(x_ptr, o_ptr, n, *, tl):
        class K:
            acc = tl.zeros((T,), "f32")
            p = x_ptr
            for _ in tl.range(0, n):
                acc = acc + tl.load(p, shape=(T,))
                p += T * F32
        tl.store(o_ptr, K.acc)

    def blocked(x_ptr, o_ptr, n, *, tl):
        acc = tl.zeros((T,), "f32")
        p, kept = x_ptr, []
        for i in tl.range(0, n):
            acc = acc + tl.load(p, shape=(T,))
            p += T * F32
            kept.append(i)
        tl.store(o_ptr, acc)

    for kernel, hint in ((class_body, "`p`: the loop is not in a function (a class body, module or exec'd code)"),
                         (blocked, "`p`: replay would step it, but not the loop's other state")):
        with pytest.warns(ReplayWarning) as w:
            on = _launch(kernel, _rows(10), "on")
        assert hint in str(w[0].message) and hint in on.loops[0].why
        assert_same_launch(_launch(kernel, _rows(10), "off"), on)


def _recursing(tl, x_ptr, n, depth, runs):
    acc = tl.zeros((T,), "f32")
    p = x_ptr
    it = iter(tl.range(0, n))  # (kept: the break does not close it)
    for i in it:
        acc = acc + tl.load(p, shape=(T,))
        if depth == 1 and i == 1:
            raise ValueError(f"the inner call's own error, run {len(runs)}")
        if i == n - 1:
            break
        p += T * F32
    if depth == 0:
        _recursing(tl, x_ptr, n, 1, runs)  # (after the loop: not in its body)


def recursing(x_ptr, o_ptr, n, runs, *, tl):
    runs.append(1)
    _recursing(tl, x_ptr, n, 0, runs)


def test_where_an_error_left_the_loop_is_read_off_the_loop_s_own_frame():
    """(A breaker.) The traceback's entries for the loop's function were matched by code: under
    recursion the deepest call's, and an error after the loop read as one in its body."""
    runs = []
    with pytest.raises(KernelError, match="the inner call's own error, run 1") as e:
        _launch(recursing, lambda ctx: (*_rows(10)(ctx), runs), "on")
    assert runs == [1] and not any("traced again" in n for n in getattr(e.value, "__notes__", []))


def test_a_loop_closed_inside_a_nesting_loop_says_so():
    def kernel(x_ptr, o_ptr, n, *, tl):
        acc, it = _kept_past_a_break(tl, x_ptr, n)
        for j in tl.range(0, n):
            for k in tl.range(0, n):
                acc = acc + tl.load(x_ptr + k * T * F32, shape=(T,))
                if j == 1 and k == 0:
                    it = None  # noqa: F841
        tl.store(o_ptr, acc)

    on = _launch(kernel, _rows(10), "on")
    assert_same_launch(_launch(kernel, _rows(10), "off"), on)
    assert on.loops[1].why.startswith("an earlier tl.range loop was closed inside it (its iterator kept "
                                      "past a break and dropped here)")


KEPT_TO_EXIT = """\
import numpy as np
from kernbench import KernelError
from kernbench.runtime.context import Context
T, F32 = 8, 4
keep = []
def first(tl, x_ptr, n):
    acc = tl.zeros((T,), "f32"); p = x_ptr
    it = iter(tl.range(0, n))
    for i in it:
        acc = acc + tl.load(p, shape=(T,))
        if i == n - 1:
            break
        p += T * F32
    keep.append(it)
def second(tl, x_ptr):
    acc = tl.zeros((T,), "f32")
    for j in range(3):
        acc = acc + tl.load(x_ptr, shape=(T,))
        raise ValueError("second's error")
def kernel(x_ptr, o_ptr, n, *, tl):
    first(tl, x_ptr, n); second(tl, x_ptr)
ctx = Context("default")
x = ctx.replicate(np.ones(10 * T, np.float32), name="x")
try:
    ctx.launch(kernel, (1, 1), x, ctx.empty((T,), "f32"), 10, mode="timing")
except KernelError:
    print("refused")
"""


def test_a_loop_kept_to_the_interpreter_s_exit_closes_quietly(tmp_path):
    """(A breaker.) A tl.range generator kept in a list past a failed launch was closed at the
    interpreter's exit, with no Python frame: "Exception ignored ... call stack is not deep
    enough" from the close's look for the frame closing it."""
    import os
    import subprocess

    import kernbench

    (tmp_path / "k.py").write_text(KEPT_TO_EXIT)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(kernbench.__file__))))
    r = subprocess.run([sys.executable, "k.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "refused", r.stderr
    assert "Exception ignored" not in r.stderr, r.stderr


def test_a_replay_warning_fails_the_suite(pytestconfig):
    # (set in tests/conftest.py: a kernel of the suite whose loop replay has to trace in full after
    # all fails its test unless the test expects it with pytest.warns)
    assert "error::kernbench.common.errors.ReplayWarning" in pytestconfig.getini("filterwarnings")
    with pytest.raises(ReplayWarning):
        warnings.warn("a loop traced in full", ReplayWarning, stacklevel=1)
