"""Speed of the front end: tracing tl calls into commands, and a whole timing-mode launch.

Figures go to ``benchmark.extra_info``; nothing asserts a wall time (issue 3 target: tracing at
>= 200k commands/s, so the front end does not dominate a launch). What is asserted is that each
run traced what it should: 100 commands per program, every program working.

* tracing: ``executor.trace`` of 512 programs (8 PEs x 64 cubes, preset mesh64) x 100 commands,
  commands per second and microseconds per command;
* launch: ``ctx.launch(..., mode="timing")`` of the same 512 x 100 commands end to end (trace,
  program arrays, message check, engine), wall seconds and the share spent tracing;
* flagship, every command traced: the Llama-70B single-user prefill kernel at 8K context
  (4K with ``--quick``) traced with ``replay="off"``, so every command runs the kernel's Python
  and the tl calls (issue 12, item 2: the cost of a traced command, which tl.range replay only
  makes rarer), microseconds per command and whether the tracing layer ran compiled;
* one tl call: each of the calls the flagship kernel makes, alone in a loop (the prefill's
  shapes: scores (256, 2048) f32, row stats (256, 1), K/V blocks (2048, 128) f16), microseconds
  per call: where a traced command's cost sits (docs/benchmarks.md, "What a traced command
  costs").

* causal masks: a loop of scores tiles masked as the causal prefill's diagonal folds are
  (``_causal_mask``: ``tl.arange``, ``//``, ``>=`` of two views, then ``tl.where``) against the
  same loop with a mask that is not known (``s > 0``), microseconds per fold: what the known
  values cost, computed only when read (docs/benchmarks.md, "Known values computed when read").

* causal prefill: the Llama-70B single-user causal prefill at 32K (8K with ``--quick``) traced
  with replay, whose traced K/V groups run the kernel's Python for every phase: microseconds
  per command and per traced command.

``--quick`` shrinks the grid to 8 PEs x 8 cubes.
"""
from __future__ import annotations

import time

import pytest

import kernbench
from kernbench.diag import panel_spec
from kernbench.language import compiled_tracing
from kernbench.runtime import executor

CMDS_PER_PROGRAM = 100


def hundred_commands(x_ptr, o_ptr, *, tl):
    """Exactly 100 commands: load, fill, dot, 24 x (exp, add, row max, sub), store."""
    x = tl.load(x_ptr, shape=(64, 64), dtype="f16")
    acc = tl.zeros((64, 64), "f32")
    tl.dot(x, x)
    for _ in range(24):
        y = tl.exp(x)
        acc = acc + y
        m = tl.max(acc, axis=-1)
        acc = acc - m
    tl.store(o_ptr, acc)


def _setup(quick: bool):
    ctx = kernbench.Context("mesh64")
    grid = (8, 8) if quick else (8, 64)
    x = ctx.empty((64, 64), "f16")
    o = ctx.empty((64, 64), "f32")
    return ctx, grid, x, o


def _pedantic(benchmark, fn, rounds):
    own, out = [], []

    def timed():
        t0 = time.perf_counter()
        out.append(fn())
        own.append(time.perf_counter() - t0)

    benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=1)
    stats = getattr(benchmark, "stats", None)
    return out[-1], (stats.stats.median if stats is not None else min(own))


def test_tracing_commands_per_second(benchmark, quick):
    ctx, grid, x, o = _setup(quick)
    builders, secs = _pedantic(
        benchmark, lambda: executor.trace(ctx, hundred_commands, grid, (x.addr, o.addr), {}, False),
        rounds=3 if quick else 7)
    n = sum(b.n_commands for b in builders if b is not None)
    programs = grid[0] * grid[1]
    assert n == programs * CMDS_PER_PROGRAM
    benchmark.extra_info.update({
        "programs": programs,
        "commands": n,
        "commands_per_s": n / secs,
        "us_per_command": secs / n * 1e6,
    })


def test_launch_512_programs_timing_mode(benchmark, quick):
    ctx, grid, x, o = _setup(quick)
    r, secs = _pedantic(benchmark, lambda: ctx.launch(hundred_commands, grid, x, o, mode="timing"),
                        rounds=3 if quick else 5)
    programs = grid[0] * grid[1]
    assert r.program.n_commands == programs * CMDS_PER_PROGRAM
    assert len(r.working_pes) == programs and r.cycles > 0
    t0 = time.perf_counter()
    executor.trace(ctx, hundred_commands, grid, (x.addr, o.addr), {}, False)
    trace_s = time.perf_counter() - t0
    benchmark.extra_info.update({
        "programs": programs,
        "commands": r.program.n_commands,
        "launch_s": secs,
        "trace_share": trace_s / secs,
        "simulated_cycles": r.cycles,
    })


def _single_user_prefill(context: int, causal: bool = False):
    """(ctx, spec, kernel arguments) of the Llama-70B single-user prefill panel on one cube."""
    ctx = kernbench.Context("default")
    spec = panel_spec("single_user_prefill", ctx.hw, shape="llama70b", context=context, causal=causal)
    ctx.install_sfr(scope=spec.scope, ring=False)
    kv = [ctx.empty((spec.S_kv_per_rank, spec.h_kv, spec.d_head), "f16") for _ in range(2)]
    q, o = (ctx.empty((spec.S_q, spec.h_q, spec.d_head), "f16") for _ in range(2))
    args = (q, *kv, o, spec.S_q, spec.S_kv_per_rank, spec.h_q, spec.h_kv, spec.d_head, spec.n_ranks,
            spec.rank_axis, *spec.blocks)
    return ctx, spec, args


def test_trace_flagship_every_command(benchmark, quick):
    ctx, spec, args = _single_user_prefill(4096 if quick else 8192)
    traced, secs = _pedantic(
        benchmark, lambda: executor.trace_launch(ctx, spec.kernel, spec.grid, args, {}, mode="timing",
                                                 replay="off")[0],
        rounds=2 if quick else 3)
    n = traced.program.n_commands
    assert traced.program.tiled is None  # nothing replayed: every command traced
    assert n > 100_000
    benchmark.extra_info.update({
        "commands": n,
        "us_per_command": secs / n * 1e6,
        "compiled": all(compiled_tracing().values()),
    })


def test_trace_causal_prefill(benchmark, quick):
    """Causal prefill on one cube (32K, 8K with --quick), traced with replay: the K/V group loop
    replays groups 2 .. 7 (proven on 0 and 1: tl.range replay_first), and in the traced groups
    each run of phases on one diagonal K/V block replays its phases but its first four and its
    last (tl.range shapes_move: their diagonal folds' keys grow by a query block a phase).
    Microseconds per command and per command traced in Python (the issue 12 target for causal
    prefill at 128K: docs/benchmarks.md)."""
    import numpy as np
    ctx, spec, args = _single_user_prefill(8192 if quick else 32768, causal=True)
    traced, secs = _pedantic(
        benchmark, lambda: executor.trace_launch(ctx, spec.kernel, spec.grid, args, {"causal": True},
                                                 mode="timing")[0],
        rounds=2 if quick else 3)
    program = traced.program
    n = program.n_commands
    rows = int(np.diff(program.compact.bounds, axis=1).sum())  # the traced rows
    python = rows - traced.replayed_rows  # those whose Python ran
    # 2 of the 8 K/V groups in rows (at most: a traced group's longer step loops replay too);
    # of each run of phases (block_kv / block_q of them, the block clamped to the chunk of
    # S_q / 2 rows: 64 at 32K, 16 at 8K), 5 traced in Python (the proof's 0-3, the last)
    bq, bkv = spec.blocks
    run = min(bkv, spec.S_q // 2) // bq
    assert 0 < rows <= n * 2 // spec.h_kv
    assert 0 < python <= rows * 6 // run
    benchmark.extra_info.update({
        "context": spec.context,
        "commands": n,
        "traced_commands": python,
        "replayed_rows": traced.replayed_rows,
        "us_per_command": secs / n * 1e6,
        "us_per_traced_command": secs / python * 1e6,
    })


#: tl calls of the flagship prefill kernel, on its shapes: name -> (call, commands it makes)
TL_CALLS = {
    "add": (lambda tl, v: v["s"] + v["s"], 1),
    "mul_scalar": (lambda tl, v: v["s"] * 2.0, 1),
    "sub_broadcast": (lambda tl, v: v["s"] - v["m"], 1),
    "exp": (lambda tl, v: tl.exp(v["s"]), 1),
    "cast": (lambda tl, v: tl.cast(v["s"], "f16"), 1),
    "max_axis": (lambda tl, v: tl.max(v["s"], axis=-1), 1),
    "trans": (lambda tl, v: tl.trans(v["k"]), 0),  # a view: no command
    "dot": (lambda tl, v: tl.dot(v["q"], v["kt"]), 1),
    "load": (lambda tl, v: tl.load(v["k_ptr"], shape=(2048, 128)), 1),
    "send": (lambda tl, v: tl.send(dir="E", src=v["k"]), 1),
    "recv": (lambda tl, v: tl.recv(dir="W", shape=(2048, 128), dtype="f16", after=v["m"]), 1),
}


def one_call_kernel(k_ptr, name, n, *, tl):
    """``n`` calls of TL_CALLS[name] on the prefill's shapes (4 commands of set-up)."""
    q = tl.load(k_ptr, shape=(256, 128))
    k = tl.load(k_ptr, shape=(2048, 128))
    kt = tl.trans(k)
    s = tl.dot(q, kt)
    m = tl.max(s, axis=-1)
    v = {"q": q, "k": k, "kt": kt, "s": s, "m": m, "k_ptr": k_ptr}
    call = TL_CALLS[name][0]
    for _ in range(n):
        call(tl, v)


@pytest.mark.parametrize("name", list(TL_CALLS))
def test_tl_call_cost(benchmark, quick, name):
    ctx = kernbench.Context("default")
    ctx.install_sfr(scope="pe", ring=True)  # every PE has an E and a W neighbour
    k = ctx.empty((2048, 128), "f16")
    grid, n = (8, 1), 500 if quick else 10_000
    builders, secs = _pedantic(
        benchmark, lambda: executor.trace(ctx, one_call_kernel, grid, (k.addr, name, n), {}, False),
        rounds=2 if quick else 5)
    per_call = TL_CALLS[name][1]
    assert [b.n_commands for b in builders if b is not None] == [4 + n * per_call] * grid[0]
    benchmark.group = "tl call"
    benchmark.extra_info.update({
        "calls": grid[0] * n,
        "us_per_call": secs / (grid[0] * n) * 1e6,
        "compiled": all(compiled_tracing().values()),
    })


def _masked_folds(s_ptr, n, known, *, tl):
    from kernbench.kernels._common import _causal_mask
    s = tl.load(s_ptr, shape=(256, 31))
    for i in range(n):
        if known:
            _causal_mask(tl, s, 32 * i, 32 * i - 8, 8)
        else:
            tl.where(s > 0.0, s, -1e30)


def test_trace_causal_masks(benchmark, quick):
    """Microseconds per masked fold with the causal mask and with an unknown one, traced in
    one run (their difference is what the mask's known values cost)."""
    n = 300 if quick else 3000
    ctx = kernbench.Context("default")
    s = ctx.empty((256, 31), "f32")
    cpu = {}

    def run():
        for known in (True, False):
            t0 = time.process_time()
            ctx.trace(_masked_folds, (1, 1), s, n, known, mode="timing", replay="off")
            cpu[known] = min(cpu.get(known, 1e9), time.process_time() - t0)

    benchmark.pedantic(run, rounds=1 if quick else 3, iterations=1, warmup_rounds=0)
    mask, plain = 1e6 * cpu[True] / n, 1e6 * cpu[False] / n
    assert mask > 0 and plain > 0
    benchmark.extra_info.update({"folds": n, "us_per_masked_fold": mask,
                                 "us_per_unknown_mask_fold": plain, "ratio": mask / plain})


def _short_loops(x_ptr, y_ptr, R, N, B, *, tl):
    """The porting table's grid loop (a Python range) around a short tl.range: R runs of 5
    iterations, one replayed each."""
    for r in range(R):
        acc = tl.zeros((B,), "f32")
        for off in tl.range(0, N, B):
            acc += tl.load(x_ptr + 4 * (r * N + off), shape=(B,))
        tl.store(y_ptr + 4 * r * B, acc)


@pytest.mark.parametrize("runs", [2500, 10000])
def test_many_short_tl_range_runs(benchmark, quick, runs):
    """Microseconds per run of a short tl.range inside a Python loop, at two run counts: a
    review found it growing with the runs made before (each proof scanned the program's fills),
    40,000 runs 28 s against 0.5 s with replay off; compare the two sizes' us_per_run."""
    runs = runs // 5 if quick else runs
    ctx = kernbench.Context("default")
    B, N = 128, 5 * 128
    x, y = ctx.empty((runs * N,), "f32"), ctx.empty((runs * B,), "f32")
    traced, secs = _pedantic(benchmark, lambda: ctx.trace(_short_loops, (1, 1), x, y, runs, N, B), rounds=2)
    (lp,) = traced.loops
    assert lp.runs == runs and lp.replayed == runs  # (one of each run's five)
    benchmark.extra_info.update({"runs": runs, "us_per_run": secs / runs * 1e6})
