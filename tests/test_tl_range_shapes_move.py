"""tl.range(..., shapes_move=True): a loop whose tiles' shapes move by a constant step per
iteration, as its addresses do (kernbench.language.loops, docs/language.md 'tl.range').

Every launch here is compared with full tracing (replay="off"): cycles, counters, peak SRAM,
the event record and the program, or the error and its message; and traced once more in verify
mode, which checks every iteration replay skipped."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from replay_helpers import assert_same_launch

from kernbench.common.errors import KernelError
from kernbench.runtime.context import Context

R = 8  # tile rows
F32 = 4
RUNS: list = []  # the iterations whose Python ran, in order


def _launch(kernel, args_of, replay, grid=(1, 1)):
    ctx = Context("default")
    ctx.install_sfr(scope="pe")
    return ctx.launch(kernel, grid, *args_of(ctx), mode="timing", replay=replay, record_events=True)


def _outcome(kernel, args_of, replay, grid=(1, 1)):
    """The launch, or the KernelError's message; and the iterations that ran."""
    RUNS.clear()
    try:
        out = _launch(kernel, args_of, replay, grid)
    except KernelError as e:
        out = str(e)
    return out, list(RUNS)


def _same(a, b):
    """Two launches the same (replay_helpers.assert_same_launch), or the same error message."""
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert_same_launch(a, b)


def _exact(kernel, args_of, grid=(1, 1)):
    """Replay equals full tracing, and verify mode finds nothing: the iterations replay ran."""
    off, _ = _outcome(kernel, args_of, "off", grid)
    on, ran = _outcome(kernel, args_of, "on", grid)
    _same(off, on)
    ver, _ = _outcome(kernel, args_of, "verify", grid)
    _same(off, ver)
    return on, ran


# -- hand-written kernels ----------------------------------------------------------------------
def causal_like(x_ptr, o_ptr, n, w0, step, *, tl):
    """Flash attention over keys that grow by ``step`` each iteration (a causal diagonal block):
    the score dot's inner dimension, the softmax's width and the P.V dot's K move."""
    q = tl.load(x_ptr, shape=(R, 32))
    o = tl.zeros((R, 32), "f32")
    m = tl.full((R, 1), -1e9, "f32")
    for i in tl.range(0, n, shapes_move=True):
        RUNS.append(i)
        w = w0 + i * step
        k = tl.load(x_ptr + 64 * i * F32, shape=(w, 32))
        s = tl.dot(q, tl.trans(k))  # (R, w): a transposed view whose shape moves
        m2 = tl.maximum(m, tl.max(s, axis=1))
        p = tl.exp(s - m2)
        o = tl.dot(p, k, acc=o * tl.exp(m - m2))
        m = m2
    tl.store(o_ptr, o)
    tl.store(o_ptr + R * 32 * F32, p)  # the last iteration's (R, w), held past the loop


def _causal_args(n, w0, step, rows=4096):
    return lambda ctx: (ctx.empty((rows, 32), "f32"), ctx.empty((2 * R, 256), "f32"), n, w0, step)


@pytest.mark.parametrize("n, w0, step", [(12, 4, 4), (40, 2, 5), (12, 60, -4), (6, 3, 7)])
def test_moving_body_exact_and_replayed(n, w0, step):
    """Iterations 0, 1 and 2 traced (A = 1 and B = 2 prove the steps), the last traced, the
    ones between replayed with their shapes moved on."""
    _, ran = _exact(causal_like, _causal_args(n, w0, step))
    assert ran == [0, 1, 2, n - 1]


def held_past_the_loop(x_ptr, o_ptr, n, *, tl):
    """replay_last: no iteration traced after the replayed ones, so the handles held after the
    loop (one of the last iteration, one of the one before: ``older, last = last, x``) are
    the ones replay moved on, their shapes with them."""
    q = tl.load(x_ptr, shape=(R, 32))
    older = last = q
    for i in tl.range(0, n, replay_last=True, shapes_move=True):
        RUNS.append(i)
        k = tl.load(x_ptr + 64 * i * F32, shape=(4 + 4 * i, 32))
        older, last = last, tl.exp(tl.dot(q, tl.trans(k)))
    tl.store(o_ptr, tl.sum(last, axis=1))
    tl.store(o_ptr, tl.sum(older, axis=1))
    tl.store(o_ptr, last)  # (R, 4 + 4 * (n - 1)): its shape is the last iteration's


def test_handles_held_past_the_loop_have_the_last_iterations_shapes():
    """(A review found the shapes of the handles held left at B's: the loop that owns the
    tracking list had dropped it before replaying.)"""
    args = lambda ctx: (ctx.empty((4096, 32), "f32"), ctx.empty((R, 256), "f32"), 12)  # noqa: E731
    on, ran = _exact(held_past_the_loop, args)
    assert ran == [0, 1, 2]
    assert on.label(on.program.n_commands - 1).startswith("store (8,48) f32")


def view_of_a_tensor_before_the_loop(x_ptr, o_ptr, n, *, tl):
    """A view (timing mode: its element count need not be its buffer's) of a tensor from
    before the loop, whose shape moves and which is held past it: replay keeps its id and
    moves its shape."""
    big = tl.load(x_ptr, shape=(64, 32), stride=256)
    for i in tl.range(0, n, shapes_move=True, replay_last=True):
        RUNS.append(i)
        v = tl.reshape(big, (4 + 2 * i, 32))
        tl.store(o_ptr + i * F32, tl.sum(v, axis=1))
    tl.store(o_ptr + 300 * F32, tl.sum(v, axis=1))  # (22, 32) at n = 10


def test_a_view_of_a_tensor_before_the_loop_moves_its_shape():
    """(A review found it left at iteration B's shape.)"""
    args = lambda ctx: (ctx.empty((64, 256), "f32"), ctx.empty((64, 256), "f32"), 10)  # noqa: E731
    on, ran = _exact(view_of_a_tensor_before_the_loop, args)
    assert ran == [0, 1, 2]
    assert "sum-reduce (22,32)" in on.label(on.program.n_commands - 2)


HELD: list = []  # every field of the handles a kernel holds past its loop, by launch


def _fields(h):
    """A handle's fields as a kernel reads them (its id as its place on its PE: the launch's
    serial is in the high bits)."""
    return (h.id & 0xFFFF_FFFF, h.addr, h.shape, h.dtype, h.nbytes, h.space, h.pinned)


def held_window(x_ptr, o_ptr, n, last_too, *, tl):
    """A ``prev, cur = cur, new`` window over keys that grow each iteration, and tl.trans of
    the last: the handles held past the loop are replayed ones (or, with replay_last, the
    last iteration's), and their sizes feed a command after it."""
    q = tl.load(x_ptr, shape=(R, 32))
    o = tl.zeros((R, 32), "f32")
    k = prev = tl.zeros((4, 32), "f32")
    for i in tl.range(0, n, shapes_move=True, replay_last=last_too):
        RUNS.append(i)
        prev, k = k, tl.load(x_ptr + 64 * i * F32, shape=(4 + 4 * i, 32))
        kt = tl.trans(k)
        o = o + tl.dot(tl.exp(tl.dot(q, kt)), k)
    HELD.append([_fields(h) for h in (prev, k, kt, o)])
    again = tl.load(x_ptr, shape=(prev.nbytes // (32 * F32), 32))  # as many rows as prev holds
    tl.store(o_ptr, o + tl.sum(again, axis=0))


@pytest.mark.parametrize("last_too", [False, True])
def test_handles_held_past_the_loop_have_every_field_of_full_tracing(last_too):
    """Each field of each handle held past the loop, nbytes included, is full tracing's. (A
    review found nbytes left at iteration B's: (76, 32) f32 with nbytes 1536, and the load
    sized by it 64 cycles shorter.)"""
    args = lambda ctx: (ctx.empty((1024, 32), "f32"), ctx.empty((R, 32), "f32"), 20, last_too)  # noqa: E731
    HELD.clear()
    _exact(held_window, args)
    off, on, ver = HELD[0], HELD[1], HELD[-1]  # (verify traces the PE twice: its last pass is full)
    assert off == on == ver
    # (each size as the buffer's: the window's older tile is iteration 18's (76, 32) f32)
    assert off[0][2:5] == ((76, 32), "f32", 76 * 32 * F32)
    assert off[1][4] == off[2][4] == 80 * 32 * F32


def concave(x_ptr, o_ptr, gn, *, tl):
    """A moving loop inside another: a tile without stride= whose two dimensions move in
    opposite ways, (2 + i) x (30 - i), reaches furthest at i = 14, not at either end. The loop
    around it bounds the inner loop's accesses by its first and last replayed ones, so such a
    tile is not moved (traced): outer iteration 5's load past the allocation is found there."""
    for g in tl.range(0, gn, replay_last=True):
        for i in tl.range(0, 20, shapes_move=True):
            x = tl.load(x_ptr + g * F32, shape=(2 + i, 30 - i))
            tl.store(o_ptr, tl.sum(tl.sum(x, axis=1), axis=0))


def test_a_footprint_not_linear_in_the_index_is_traced():
    """(A review found replay missing outer iteration 5's error, or reporting iteration 7's.)"""
    args = lambda ctx: (ctx.empty((260,), "f32"), ctx.empty((1, 1), "f32"), 8)  # noqa: E731
    off, _ = _outcome(concave, args, "off")
    assert isinstance(off, str) and "load of (16,16) f32 at byte offset 20 runs outside" in off
    _exact(concave, args)


def test_without_the_keyword_a_moving_body_is_traced():
    def plain(x_ptr, o_ptr, n, w0, step, *, tl):
        q = tl.load(x_ptr, shape=(R, 32))
        for i in tl.range(0, n):
            RUNS.append(i)
            k = tl.load(x_ptr + 64 * i * F32, shape=(w0 + i * step, 32))
            tl.store(o_ptr, tl.dot(q, tl.trans(k)))

    _, ran = _exact(plain, _causal_args(12, 4, 4))
    assert ran == list(range(12))


@pytest.mark.parametrize("n, w0, step, bad", [
    (20, 4, 300, 14),  # grows past its allocation (4096 rows): iteration 14's load
    (12, 40, -4, 10),  # shrinks to 0 keys at iteration 10
])
def test_an_error_is_raised_at_its_iteration(n, w0, step, bad):
    """Replay stops before the first iteration whose shapes or accesses would fail, and traces
    it: the error is full tracing's, at its iteration."""
    off, _ = _outcome(causal_like, _causal_args(n, w0, step), "off")
    on, ran = _outcome(causal_like, _causal_args(n, w0, step), "on")
    assert isinstance(off, str) and off == on
    assert ran[:3] == [0, 1, 2] and ran[-1] == bad
    ver, _ = _outcome(causal_like, _causal_args(n, w0, step), "verify")
    assert ver == off


def growing_k(a_ptr, b_ptr, o_ptr, n, *, tl):
    """A dot whose inner dimension grows by 450,000 an iteration at M = N = 12,000: its
    multiply-adds pass one GEMM command's 2**50 = 1.1259e15 at iteration 18 (12,000**2 x
    8,200,000 = 1.1808e15; iteration 17's K of 7,750,000 gives 1.116e15), while every tile stays
    under 2**37 elements."""
    M = 12_000
    acc = tl.zeros((M, M))
    for i in tl.range(0, n, shapes_move=True):
        RUNS.append(i)
        K = 100_000 + 450_000 * i
        acc = acc + tl.dot(tl.load(a_ptr, shape=(M, K), dtype="f16"), tl.load(b_ptr, shape=(K, M), dtype="f16"))
    tl.store(o_ptr, acc)


def test_a_dot_past_2_50_multiply_adds_is_traced_and_refused_at_its_iteration():
    """A review's case: replay checked each moving tensor's size, not a dot's M * N * K, so it
    emitted iteration 18's dot past 2**50 multiply-adds; the traced last iteration raised
    iteration 19's error (its sizes and count), or, with replay_last, the engine refused the
    program with a ValueError naming no PE or line. Replay stops before iteration 18, which is
    traced: full tracing's KernelError, at its iteration."""
    args = lambda ctx: (ctx.empty((12_000, 9_000_000), "f16"), ctx.empty((9_000_000, 12_000), "f16"),  # noqa: E731
                        ctx.empty((12_000, 12_000), "f32"), 20)
    off, _ = _outcome(growing_k, args, "off")
    on, ran = _outcome(growing_k, args, "on")
    assert isinstance(off, str) and off == on
    assert "dot (12000,8200000) x (8200000,12000): 1,180,800,000,000,000 multiply-adds" in off
    assert ran[:3] == [0, 1, 2] and ran[-1] == 18 and len(ran) < 10
    ver, _ = _outcome(growing_k, args, "verify")
    assert ver == off


def test_a_dimension_moving_to_one_is_traced_from_there():
    """A moving dimension of 1 could broadcast where the others cannot: replay stops before
    it (the iteration with 1 key, and after, traced)."""
    _, ran = _exact(causal_like, _causal_args(12, 41, -4))  # 41, 37, ..., 5, 1 keys
    assert ran == [0, 1, 2, 10, 11]


def broadcast_at_a(x_ptr, o_ptr, n, *, tl):
    """Iteration 1's tile is (R, 1) and broadcasts against (R, 16); iteration 2's is (R, 16):
    a step of 15 would make iteration 3's (R, 31), which does not broadcast. Not a repetition
    shapes_move accepts (a moving dimension of 1): iterations 2 and 3 prove the loop."""
    base = tl.load(x_ptr, shape=(R, 16))
    for i in tl.range(0, n, shapes_move=True):
        RUNS.append(i)
        w = 1 if i < 2 else 16
        x = tl.load(x_ptr + i * F32, shape=(R, w), stride=64)
        tl.store(o_ptr, tl.sum(x + base, axis=1))


def fill_moves(x_ptr, o_ptr, n, *, tl):
    """A fill whose shape moves (a value known while tracing): not moved, traced."""
    for i in tl.range(0, n, shapes_move=True):
        RUNS.append(i)
        z = tl.zeros((R, 2 + i), "f32")
        tl.store(o_ptr, tl.sum(z + tl.load(x_ptr, shape=(R, 2 + i), stride=64), axis=1))


def masked_moves(x_ptr, o_ptr, n, *, tl):
    """A masked load whose shape moves (its footprint is its mask's values): traced."""
    for i in tl.range(0, n, shapes_move=True):
        RUNS.append(i)
        cols = tl.arange(0, 2 + i)
        x = tl.load(x_ptr, shape=(R, 2 + i), stride=64, mask=(cols < 3)[None, :], other=0.0)
        tl.store(o_ptr, tl.sum(x, axis=1))


@pytest.mark.parametrize("kernel, traced", [(broadcast_at_a, [0, 1, 2, 3, 7]),
                                            (fill_moves, list(range(8))),
                                            (masked_moves, list(range(8)))])
def test_moves_it_refuses_are_traced(kernel, traced):
    args = lambda ctx: (ctx.empty((64, 64), "f32"), ctx.empty((64,), "f32"), 8)  # noqa: E731
    _, ran = _exact(kernel, args)
    assert ran == traced


def squares(x_ptr, o_ptr, n, *, tl):
    """Keys 2, 3, 6, 11, 18, ...: not a constant step (outside the contract)."""
    q = tl.load(x_ptr, shape=(R, 32))
    for i in tl.range(0, n, shapes_move=True):
        k = tl.load(x_ptr, shape=(2 + i * i, 32))
        tl.store(o_ptr, tl.sum(tl.dot(q, tl.trans(k)), axis=1))


def test_verify_catches_a_shape_off_its_step():
    args = lambda ctx: (ctx.empty((512, 32), "f32"), ctx.empty((64,), "f32"), 8)  # noqa: E731
    with pytest.raises(KernelError, match=r"iteration 3 \(index 3\) does not repeat the loop body"):
        _launch(squares, args, "verify")
    off, on = _launch(squares, args, "off"), _launch(squares, args, "on")
    assert off.cycles != on.cycles  # what replay would compute: not silently right


def nested(x_ptr, o_ptr, n, *, tl):
    """A moving loop inside a constant one (causal prefill's K/V groups around its phases),
    and a constant loop inside the moving one (a ring's steps in each phase)."""
    q = tl.load(x_ptr, shape=(R, 32))
    for g in tl.range(0, 5):
        o = tl.zeros((R, 32), "f32")
        for i in tl.range(0, n, shapes_move=True):
            RUNS.append((g, i))
            k = tl.load(x_ptr + (64 * i + 8 * g) * F32, shape=(4 + 4 * i, 32))
            o = o + tl.dot(tl.exp(tl.dot(q, tl.trans(k))), k)
            for j in tl.range(0, 6):
                v = tl.load(x_ptr + (128 * j + g) * F32, shape=(16, 32))
                o = o + tl.dot(tl.dot(q, tl.trans(v)), v)
        tl.store(o_ptr + g * R * 32 * F32, o)


def test_nested_exact():
    args = lambda ctx: (ctx.empty((2048, 32), "f32"), ctx.empty((5 * R, 32), "f32"), 9)  # noqa: E731
    on, ran = _exact(nested, args)
    # the outer loop traced its iterations 0, 1, 2 and 4; each traced its moving loop's 0, 1,
    # 2 and 8 (the rest replayed)
    assert ran == [(g, i) for g in (0, 1, 2, 4) for i in (0, 1, 2, 8)]
    # The innermost loop (6 steps: 0, 1, 2, 5 traced) is one tiling of 2 copies in each of the
    # moving loop's iterations, the 5 replayed ones included (each copy keeps its inner loop's
    # tiling, of its own rows): 9 per traced outer iteration, 36, and the outer loop's own
    # tiling of its iteration 3.
    tiles = on.program.compact.tiles
    assert len(tiles) == 4 * 9 + 1 and sorted(t[3] for t in tiles) == [1] + [2] * 36


def test_two_pes_and_replay_first():
    """Every PE its own moving loop, with replay_first: iterations 0 and 1 prove it."""
    def kern(x_ptr, o_ptr, n, *, tl):
        p = tl.program_id(0)
        for i in tl.range(0, n, replay_first=True, shapes_move=True):
            RUNS.append(i)
            x = tl.load(x_ptr + p * 4 * F32, shape=(R, 2 + (p + 1) * i), stride=256)
            tl.store(o_ptr + p * R * F32, tl.sum(tl.exp(x), axis=1))

    args = lambda ctx: (ctx.empty((R, 256), "f32"), ctx.empty((2, R), "f32"), 10)  # noqa: E731
    _, ran = _exact(kern, args, grid=(2, 1))
    assert ran == [0, 1, 9] * 2


def test_keyword_checked_and_shown():
    def kern(x_ptr, *, tl):
        r = tl.range(0, 4, shapes_move=True)
        assert repr(r) == "tl.range(0, 4, 1, shapes_move=True)"
        tl.range(0, 4, shapes_move=1)

    with pytest.raises(KernelError, match=r"shapes_move must be True or False \(or a numpy bool\), got int 1"):
        _launch(kern, lambda ctx: (ctx.empty((8,), "f32"),), "on")


# -- generated moving bodies ---------------------------------------------------------------------
MOVE_OPS = ("exp", "add_row", "max", "sum", "dot_t", "dot", "keep", "store")


def make_moving_kernel(ops, w0, step, n, rows):
    """A loop over keys w0 + i * step (i < n) of an allocation of ``rows`` rows: a tile (R, w)
    or (w, 32) loaded each iteration, then ``ops`` in order on it."""
    def kern(x_ptr, o_ptr, *, tl):
        q = tl.load(x_ptr, shape=(R, 32))
        row = tl.load(x_ptr, shape=(R, 1), stride=32)
        kept = None
        for i in tl.range(0, n, shapes_move=True):
            w = w0 + i * step
            k = tl.load(x_ptr + 32 * i * F32, shape=(w, 32))
            s = tl.dot(q, tl.trans(k))  # (R, w)
            for op, arg in ops:
                if op == "exp":
                    s = tl.exp(s)
                elif op == "add_row":
                    s = s + row
                elif op in ("max", "sum"):
                    r = (tl.max if op == "max" else tl.sum)(s, axis=1)
                    s = s - r
                elif op == "dot_t":
                    s = tl.dot(tl.dot(s, k), tl.trans(q))  # (R, R)... back to (R, w) below
                    s = tl.dot(s, tl.dot(q, tl.trans(k)))
                elif op == "dot":
                    tl.store(o_ptr, tl.dot(s, k))
                elif op == "keep":
                    kept = s
                elif op == "store":
                    tl.store(o_ptr + arg % 4 * F32, tl.sum(s, axis=1))
        if kept is not None:
            tl.store(o_ptr, tl.sum(kept, axis=1))
    return kern


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example([("exp", 0), ("max", 0), ("keep", 0), ("dot", 0)], 4, 4, 12, 400)  # replayed: 0-2, 11 traced
@example([("add_row", 0), ("dot_t", 0), ("store", 3)], 30, -2, 14, 400)  # shrinking
@example([("sum", 0)], 4, 12, 14, 100)  # past the allocation at iteration 8
@given(st.lists(st.tuples(st.sampled_from(MOVE_OPS), st.integers(0, 7)), max_size=6),
       st.integers(1, 40), st.integers(-6, 12), st.integers(0, 14), st.integers(40, 400))
def test_generated_moving_bodies_exact(ops, w0, step, n, rows):
    """Random bodies, first widths, steps (shrinking ones too), trip counts and allocation
    sizes (some loops run past it, some shrink to nothing: the error is full tracing's)."""
    kern = make_moving_kernel(ops, w0, step, n, rows)
    args = lambda ctx: (ctx.empty((rows, 32), "f32"), ctx.empty((R, 32), "f32"))  # noqa: E731
    off, _ = _outcome(kern, args, "off")
    on, _ = _outcome(kern, args, "on")
    _same(off, on)
    ver, _ = _outcome(kern, args, "verify")
    _same(off, ver)
