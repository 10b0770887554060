"""Speed of tl.range loop-body replay (issue 12, item 1): a flash-attention-like loop of
``n`` iterations x 6 commands on 8 PEs, traced with replay="off" and "on".

Figures go to ``benchmark.extra_info`` (commands/s traced, CPU seconds); what is asserted is
that both traces are the same program. ``--quick`` shrinks the loop.
"""
from __future__ import annotations

import time

import pytest

import kernbench

T = 32


def flash_loop(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((T, T), "f32")
    m = tl.full((T, 1), -1e9, "f32")
    for i in tl.range(0, n):
        x = tl.load(x_ptr + i * T * T * 2, shape=(T, T))
        s = tl.dot(x, tl.trans(x))
        m2 = tl.maximum(m, tl.max(s, axis=1))
        p = tl.exp(s - m2)
        acc = tl.dot(tl.cast(p, "f16"), x, acc=acc * tl.exp(m - m2))
        m = m2
    tl.store(o_ptr, tl.cast(acc, "f16"))


@pytest.mark.parametrize("replay", ["off", "on"])
def test_trace_loop(benchmark, quick, replay):
    n = 500 if quick else 20000
    ctx = kernbench.Context("default")
    ctx.install_sfr()
    x = ctx.empty((n * T, T), "f16")
    o = ctx.empty((T, T), "f16")
    cpu = []

    def run():
        t0 = time.process_time()
        tr = ctx.trace(flash_loop, (8, 1), x, o, n, mode="timing", replay=replay)
        cpu.append(time.process_time() - t0)
        return tr

    tr = benchmark.pedantic(run, rounds=1 if quick else 3, iterations=1, warmup_rounds=0)
    ref = ctx.trace(flash_loop, (8, 1), x, o, n, mode="timing", replay="off")
    assert tr.program.commands.tobytes() == ref.program.commands.tobytes()
    benchmark.extra_info.update({"commands": tr.program.n_commands, "cpu_s": min(cpu),
                                 "commands_per_s_cpu": tr.program.n_commands / min(cpu)})


def sibling_nests(x_ptr, o_ptr, K, *, tl):
    """K nests one after the other (a plain Python loop), each a tl.range of 6 iterations over
    a tl.range of 16: every nest's proof reads back its own iterations only."""
    acc = tl.zeros((8, 8), "f32")
    for k in range(K):
        for i in tl.range(0, 6):
            for j in tl.range(0, 16):
                acc = acc + tl.load(x_ptr + ((k * 6 + i) * 16 + j) * 8 * 8 * 4, shape=(8, 8))
    tl.store(o_ptr, acc)


@pytest.mark.parametrize("nests", [200, 800])
def test_trace_sibling_nests(benchmark, quick, nests):
    """Tracing time per command should not grow with the nests before (it did: a proof found
    its rows by scanning every traced range of the program, and read tiled rows through a
    reader of every tiling: 4.1-4.9 s at 800 nests, 0.47 s now; docs/benchmarks.md). Compare
    the two sizes' ``us_per_command``."""
    K = nests // 8 if quick else nests
    ctx = kernbench.Context("default")
    x = ctx.empty((K * 6 * 16 * 8, 8), "f32")
    o = ctx.empty((8, 8), "f32")
    cpu = []

    def run():
        t0 = time.process_time()
        tr = ctx.trace(sibling_nests, (1, 1), x, o, K, mode="timing", replay="on")
        cpu.append(time.process_time() - t0)
        return tr

    tr = benchmark.pedantic(run, rounds=1 if quick else 2, iterations=1, warmup_rounds=0)
    assert tr.program.n_commands == K * 6 * 16 * 2 + 2
    benchmark.extra_info.update({"nests": K, "commands": tr.program.n_commands, "cpu_s": min(cpu),
                                 "us_per_command": 1e6 * min(cpu) / tr.program.n_commands})


def row_sum_kept_cols(x_ptr, y_ptr, N, B, *, tl):
    """Triton's layer-norm loop: `cols`, a tl.arange mask's index, stays bound after the loop
    (Python's scoping). Its value known while tracing differs from iteration to iteration:
    the loop was traced in full (docs/language.md, 'tl.range': a known value kept past the
    loop); replay goes on with it unknown, nothing reading it."""
    acc = tl.zeros((B,), "f32")
    for off in tl.range(0, N, B):
        cols = off + tl.arange(0, B)
        acc += tl.load(x_ptr + 4 * off, shape=(B,), mask=cols < N, other=0.)
    tl.store(y_ptr, acc)


@pytest.mark.parametrize("replay", ["off", "on"])
def test_trace_kept_mask_loop(benchmark, quick, replay):
    n = 500 if quick else 20000
    B = 256
    N = B * n - 3  # (a ragged last block: its mask matters)
    ctx = kernbench.Context("default")
    _on_or_off(benchmark, quick, ctx, row_sum_kept_cols, (ctx.empty((N,), "f32"), ctx.empty((B,), "f32"), N, B),
               replay)


def _on_or_off(benchmark, quick, ctx, kernel, args: tuple, replay: str) -> None:
    """Trace ``kernel`` on 8 PEs with ``replay``; the program must be full tracing's, replayed
    exactly when replay is on. Commands and CPU seconds to ``extra_info``."""
    cpu = []

    def run():
        t0 = time.process_time()
        tr = ctx.trace(kernel, (8, 1), *args, mode="timing", replay=replay)
        cpu.append(time.process_time() - t0)
        return tr

    tr = benchmark.pedantic(run, rounds=1 if quick else 3, iterations=1, warmup_rounds=0)
    ref = ctx.trace(kernel, (8, 1), *args, mode="timing", replay="off")
    assert tr.program.commands.tobytes() == ref.program.commands.tobytes()
    assert (tr.program.compact is not None) == (replay == "on")
    benchmark.extra_info.update({"commands": tr.program.n_commands, "cpu_s": min(cpu),
                                 "commands_per_s_cpu": tr.program.n_commands / min(cpu)})


def pointer_gemm(a_ptr, b_ptr, c_ptr, K, *, tl):
    """Triton's tutorial 03 loop: the pointers advanced with `+=` (int locals replay steps)."""
    BK = 32
    acc = tl.zeros((T, T), "f32")
    ap, bp = a_ptr, b_ptr
    for _ in tl.range(0, K, BK):
        acc = tl.dot(tl.load(ap, shape=(T, BK), stride=K), tl.load(bp, shape=(BK, T), stride=T), acc)
        ap += BK * 2
        bp += BK * T * 2
    tl.store(c_ptr, acc)


@pytest.mark.parametrize("replay", ["off", "on"])
def test_trace_pointer_gemm(benchmark, quick, replay):
    """A GEMM whose pointers the body advances: traced in full before ints were stepped (a
    ReplayWarning), replayed now; the same program either way."""
    K = 32 * (500 if quick else 20000)
    ctx = kernbench.Context("default")
    a, b, c = ctx.empty((T, K), "f16"), ctx.empty((K, T), "f16"), ctx.empty((T, T), "f32")
    _on_or_off(benchmark, quick, ctx, pointer_gemm, (a, b, c, K), replay)


def three_deep(x_ptr, o_ptr, N1, N2, NI, *, tl):
    """Three nested tl.range loops, the innermost replaying NI iterations as a repeated body
    (past 4,096 tensors): the outer loop's proof reads the middle loop's A and B, whose inner
    replays the middle loop marked moved past (TensorTable.marks)."""
    tot = tl.zeros((8,), "f32")
    for _ in tl.range(0, N1):
        for _ in tl.range(0, N2):
            acc = tl.zeros((8,), "f32")
            for _ in tl.range(0, NI):
                acc = acc + 1.0
            tot = tot + acc
    tl.store(o_ptr, tot)


def test_trace_three_deep_nest(benchmark, quick):
    """A reading of the marked inner replays entry by entry made this 25-30% slower (a breaker,
    2026-12-06): they are read a mark at a time at list speed. Compare ``cpu_s`` across builds."""
    NI = 20000 if quick else 200000
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x, o = ctx.empty((64,), "f32"), ctx.empty((8,), "f32")
    cpu = []

    def run():
        t0 = time.process_time()
        tr = ctx.trace(three_deep, (1, 1), x, o, 6, 5, NI, mode="timing", replay="on")
        cpu.append(time.process_time() - t0)
        return tr

    tr = benchmark.pedantic(run, rounds=1 if quick else 5, iterations=1, warmup_rounds=0)
    # (each middle iteration: a fill, NI adds and the add to tot; and tot's fill and the store)
    assert tr.program.n_commands == 6 * 5 * (NI + 2) + 2
    benchmark.extra_info.update({"commands": tr.program.n_commands, "cpu_s": min(cpu)})
