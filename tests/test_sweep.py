"""Design-space sweeps (docs/sweeps.md): the grid, trace once / time many (exact against fresh
launches), failing points as rows, the on-disk cache, Dask against the serial path, plots, the
tuner and the command line."""
import dataclasses
import functools
import importlib
import json
import math
import os
import random
import subprocess
import sys
import types

import numpy as np
import pytest

import kernbench
from kernbench.common.cache import DiskCache, code_fingerprint, digest
from kernbench.runtime import TracedLaunch
from kernbench.sweeps import Launch, expand_axis, points_of, sweep, tune
from kernbench.sweeps.figures import FIGURES, row_figures


# -- a small kernel: loads, a dot, a vector op, a ring pass over the links, a store ------------------
def ring_gemm(x_ptr, w_ptr, o_ptr, M, K, N, chunks, fail_on=-1, *, tl):
    pe = tl.program_id(0)
    if pe == fail_on:
        raise ValueError("this PE was told to fail")
    w = tl.load(w_ptr, shape=(K, N), dtype="f16")
    acc = tl.zeros((M, N), "f32")
    for c in range(chunks):
        x = tl.load(x_ptr + c * M * K * 2, shape=(M, K), dtype="f16")
        acc = tl.dot(x, w, acc)
    tl.send(dir="E", src=acc)
    got = tl.recv(dir="W", shape=(M, N), dtype="f32")
    tl.store(o_ptr, tl.exp(got) + acc)


def setup(ctx, M=32, K=64, N=64, chunks=2, fail_on=-1):
    x = ctx.empty((chunks * M, K), "f16", name="x")
    w = ctx.empty((K, N), "f16", name="w")
    o = ctx.empty((M, N), "f32", name="o")
    return {"x_ptr": x, "w_ptr": w, "o_ptr": o, "M": M, "K": K, "N": N, "chunks": chunks, "fail_on": fail_on}


def builder(ctx, M=32, chunks=2):
    """A launch builder: installs the SFR, places data, returns the Launch."""
    ctx.install_sfr("pe", ring=True)
    return Launch(ring_gemm, (8, 1), *setup(ctx, M=M, chunks=chunks).values())


def hw_reading_builder(ctx, chunks=2):
    """A builder that chooses an argument from the hardware (as an autotuned block size would)."""
    ctx.install_sfr("pe", ring=True)
    M = 64 if ctx.hw.sram.capacity_bytes >= 1 << 20 else 16
    return Launch(ring_gemm, (8, 1), *setup(ctx, M=M, chunks=chunks).values())


HARDWARE = {"link.bytes_per_cycle": [8, 32], "link.rx_queue_packets": np.array([2, 32]),
            "gemm.rows": [16, 32], "dma.latency_cycles": [50, 150]}


def fresh_figures(row_hw: dict, M: int, chunks: int, strict=False) -> dict:
    ctx = kernbench.Context("default", overrides=row_hw)
    launch = builder(ctx, M=M, chunks=chunks)
    r = ctx.launch(launch.kernel, launch.grid, *launch.args, mode="timing", strict_sram=strict)
    return row_figures(r)


def test_bound_is_none_without_flops_or_dma_bytes():
    """A launch of vector work and a link message only: neither roofline term has work, so
    the row's bound is "none" (a review found "GEMM", from 0 >= 0)."""
    from kernbench.common.pe_commands import StreamBuilder, VecOp
    from report_helpers import launch
    p0, p1 = StreamBuilder(), StreamBuilder()
    t = p0.vec(VecOp.EXP, 4096, line=30)
    p0.send("E", t, 4096, line=31)
    p1.recv("W", 4096, line=40)
    f = row_figures(launch([p0, p1]))
    assert f["dma_bytes"] == 0 and f["tflops"] == 0 and f["link_bytes"] == 4096
    assert f["bound"] == "none" and f["roofline_fraction"] == 0.0
    # one DMA byte makes it memory-bound
    p = StreamBuilder()
    p.load(512, line=30)
    assert row_figures(launch([p]))["bound"] == "memory"


# -- the grid -------------------------------------------------------------------------------------------
def test_axes_expand_products_lists_and_numpy_values():
    assert expand_axis({"a": [1, 2], "b": range(2)}, "x") == [{"a": 1, "b": 0}, {"a": 1, "b": 1},
                                                           {"a": 2, "b": 0}, {"a": 2, "b": 1}]
    assert expand_axis([{"a": 1}, {"a": [2, 3], "b": (4, 5)}], "x") == [{"a": 1}, {"a": 2, "b": (4, 5)},
                                                                       {"a": 3, "b": (4, 5)}]
    assert expand_axis(None, "x") == [{}]
    pts = points_of({"gemm.rows": np.array([16, 32])}, {"M": [np.int64(16)]}, {"strict_sram": [True]})
    assert [p.index for p in pts] == [0, 1] and pts[0].options["mode"] == "timing"
    assert pts[1].values() == {"M": 16, "strict_sram": True, "gemm.rows": 32}
    assert [type(v) for v in pts[1].values().values()] == [int, bool, int]  # (np.int64: the int)
    # a 0-d array is a number: one fixed value, as anything but a list, range or 1-D array (a
    # review: refused as "must be 1-D"); a 2-D one is refused, naming how to fix it as a value
    assert expand_axis({"n": np.array(256)}, "x") == [{"n": 256}] and type(expand_axis(
        {"n": np.array(256)}, "x")[0]["n"]) is int
    with pytest.raises(ValueError, match=r"must be 1-D, got shape \(2, 2\) \(a fixed array value is a list "
                                         r"of one choice: \[arr\]\)"):
        expand_axis({"n": np.zeros((2, 2))}, "x")
    a = np.zeros((2, 2))  # (and that advice gives the array itself)
    assert expand_axis({"n": [a]}, "x")[0]["n"] is a
    with pytest.raises(ValueError, match="unknown launch option 'bogus'"):
        points_of(None, None, {"bogus": [1]})
    with pytest.raises(ValueError, match="given both"):
        points_of(None, {"mode": [1]}, {"mode": ["timing"]})
    with pytest.raises(kernbench.hw.config.HardwareConfigError, match="unknown hardware key 'link.speed'"):
        sweep(builder, hardware={"link.speed": [1]}, cache=False, workers=1)
    with pytest.raises(kernbench.hw.config.HardwareConfigError,  # (as load_hw says it: a review)
                       match=r"unknown hardware key 'link.packet_size': did you mean 'link.packet_bytes'\?"):
        sweep(builder, hardware={"link.packet_size": [8]}, cache=False, workers=1)


def test_a_grid_past_ten_million_points_is_refused_before_it_is_listed():
    """A review's case: hardware axes of 10,000 values x 3 (1e12 points) or args={"n":
    range(1, 10**9)} ran the host out of memory listing the points (a bare MemoryError, or
    the OOM killer). Counted first now, each refused at once with the product named."""
    with pytest.raises(ValueError, match=r"the hardware keys' product \(10,000 x 10,000 x 10,000\) "
                                         r"makes 1,000,000,000,000 points: a sweep takes at most 10,000,000"):
        points_of({"a": range(10**4), "b": range(10**4), "c": range(10**4)}, None, None)
    with pytest.raises(ValueError, match=r"argument 'n' makes 999,999,999 points"):
        sweep(builder, args={"n": range(1, 10**9)}, cache=False, workers=1)
    with pytest.raises(ValueError, match=r"args x options x hardware \(4,000 x 1 x 4,000\) makes 16,000,000"):
        points_of({"a": range(4000)}, {"n": range(4000)}, None)
    # a list of point dicts: counted before any is listed (a review: 12M dicts built, 2.4 GB and
    # 5 s, before the refusal; 10,000,001 one-point dicts took 28 s)
    with pytest.raises(ValueError, match=r"the hardware key points makes 12,000,000 points"):
        points_of([{"a": range(6 * 10**6)}, {"b": range(6 * 10**6)}], None, None)
    with pytest.raises(ValueError, match=r"the argument points makes 10,000,001 points"):
        points_of(None, [{}] * (10**7 + 1), None)


def test_the_product_of_the_axes_is_refused_before_any_axis_is_listed(monkeypatch):
    """A review's case: args and hardware of a million values each were refused (10**12 points),
    but only after both axes' million dicts were built: 3.2 s and 509 MB. The product is counted
    from the choices; no axis's points are listed before it passes."""
    from kernbench.sweeps import grid

    listed = []
    monkeypatch.setattr(grid, "_expand", lambda parts: listed.append(parts) or [])
    with pytest.raises(ValueError, match=r"args x options x hardware \(1,000,000 x 1 x 1,000,000\) makes "
                                         r"1,000,000,000,000 points"):
        points_of({"a": range(10**6)}, {"n": range(10**6)}, None)
    assert listed == []
    monkeypatch.undo()
    assert [p.values() for p in points_of({"a": [1, 2]}, [{"n": 3}, {"n": [4, 5]}], None)] == [
        {"n": n, "a": a} for n in (3, 4, 5) for a in (1, 2)]


def test_sweep_is_the_function_and_the_package_imports_without_pandas():
    import kernbench.sweeps

    assert callable(kernbench.sweep) and kernbench.sweep is kernbench.sweeps.sweep


# -- trace once, time many: exact --------------------------------------------------------------------------
def test_every_point_equals_a_fresh_launch_on_a_random_sample():
    res = sweep(builder, hardware=HARDWARE, args={"M": [16, 32], "chunks": [1, 3]}, cache=False, workers=1)
    assert len(res) == 64
    assert res.stats["traces"] == res.stats["trace_groups"] == 4  # one per (M, chunks), not per point
    rng = random.Random(13)
    for row in rng.sample(res.rows, 8):
        hw = {k: row[k] for k in HARDWARE}
        fresh = fresh_figures(hw, row["M"], row["chunks"])
        assert {k: row[k] for k in FIGURES} == fresh, hw
    assert len({r["cycles"] for r in res.rows}) > 8  # the timing keys matter


def test_a_traced_launch_times_like_a_fresh_launch_and_pickles():
    import pickle

    ctx = kernbench.Context("default")
    launch = builder(ctx)
    traced = ctx.trace(launch.kernel, launch.grid, *launch.args)
    again = pickle.loads(pickle.dumps(traced))
    for over in ({}, {"link.bytes_per_cycle": 4, "vector.lanes": 16}):
        hw = kernbench.load_hw("default", over)
        c2 = kernbench.Context(hw)
        l2 = builder(c2)
        fresh = c2.launch(l2.kernel, l2.grid, *l2.args, mode="timing")
        for t in (traced, again):
            r = t.time(hw)
            assert r.cycles == fresh.cycles
            assert np.array_equal(r.unit_counters, fresh.unit_counters)
            assert np.array_equal(r.link_counters, fresh.link_counters)
            assert np.array_equal(r.peak_sram, fresh.peak_sram)
            assert r.label(0) == fresh.label(0) and r.source(0) == fresh.source(0)
            assert np.array_equal(r.engine.cmd_start, fresh.engine.cmd_start)
            assert np.array_equal(r.engine.cmd_end, fresh.engine.cmd_end)
    with pytest.raises(ValueError, match="traced on 4 cubes x 8 PEs"):
        traced.time(kernbench.load_hw("mesh8"))


def test_a_traced_launch_checks_its_program_once(monkeypatch):
    # The engine's tables (checks, queues, message pairs) depend on the program and the wiring,
    # not on timing parameters: the first time() makes them, the next ones reuse them.
    from kernbench._core import api
    calls = []
    real = api._prepare
    monkeypatch.setattr(api, "_prepare", lambda *a: calls.append(1) or real(*a))
    ctx = kernbench.Context("default")
    launch = builder(ctx)
    traced = ctx.trace(launch.kernel, launch.grid, *launch.args)
    for bw in (4, 8, 32):
        traced.time(kernbench.load_hw("default", {"link.bytes_per_cycle": bw}))
    assert len(calls) == 1
    assert len(pickle_roundtrip(traced)._prepared) == 0  # not shipped to workers


def test_a_traced_launch_takes_a_preset_name_and_refuses_bad_options():
    ctx = kernbench.Context("default")
    launch = builder(ctx)
    traced = ctx.trace(launch.kernel, launch.grid, *launch.args)
    assert traced.time("default").cycles == traced.time(kernbench.load_hw("default")).cycles
    with pytest.raises(ValueError, match="steady must be True or False, got 'no'"):
        traced.time(ctx.hw, steady="no")  # (any non-empty string would have meant True)
    # the engine's options given to the trace go to the kernel, which does not take them: named
    with pytest.raises(TypeError, match=r"detail: options of the timing, not of the trace "
                                        r"\(ctx.trace\(...\).time\(hw, detail=...\)"):
        ctx.trace(launch.kernel, launch.grid, *launch.args, detail="packet")


def pickle_roundtrip(x):
    import pickle
    return pickle.loads(pickle.dumps(x))


def logging_builder(ctx, log, label=False):
    """A builder that logs the context it was given, or its hardware's label."""
    log.append(ctx.hw.label if label else repr(ctx))
    return builder(ctx)


def test_a_setup_that_logs_its_context_shares_one_trace_and_one_reading_the_label_does_not():
    # (a review's case: repr(ctx) named the hardware's label, which lists every key that differs
    # from the preset: reading it is reading them all, six traces for six points that trace
    # alike. repr names the hardware by name and size; the label is for reports.) A setup that
    # does read the label depends on the keys it lists, and the points' labels differ.
    hardware = {"link.bytes_per_cycle": [16, 32, 64], "dma.latency_cycles": [100, 150]}
    log = []
    res = sweep(functools.partial(logging_builder, log=log), cache=False, workers=1, hardware=hardware)
    assert res.stats["trace_groups"] == 1 and res.stats["traces"] == 1 and res.stats["points"] == 6
    assert log == ["Context(hw='default', 4 cubes x 8 PEs, no SFR installed)"]
    log = []
    res = sweep(functools.partial(logging_builder, log=log, label=True), cache=False, workers=1,
                hardware=hardware)
    assert res.stats["traces"] == 6 and len(set(log)) == 6


def test_a_setup_that_reads_the_hardware_splits_its_trace_group():
    res = sweep(hw_reading_builder, hardware={"sram.capacity_bytes": [1 << 19, 1 << 24],
                                              "link.bytes_per_cycle": [8, 32]}, cache=False, workers=1)
    assert res.stats["trace_groups"] == 1 and res.stats["traces"] == 2  # one per SRAM size read
    for row in res.rows:
        ctx = kernbench.Context("default", overrides={"sram.capacity_bytes": row["sram.capacity_bytes"],
                                                      "link.bytes_per_cycle": row["link.bytes_per_cycle"]})
        launch = hw_reading_builder(ctx)
        fresh = row_figures(ctx.launch(launch.kernel, launch.grid, *launch.args, mode="timing"))
        assert {k: row[k] for k in FIGURES} == fresh


def test_the_kernel_form_with_setup_and_shape_keys():
    res = sweep(ring_gemm, (8, 1), setup=setup, ring=True, hardware={"n_cubes": [1, 2], "link.bytes_per_cycle": [8, 64]},
                args={"chunks": [1, 2]}, cache=False, workers=1)
    assert res.stats["trace_groups"] == 4  # n_cubes is the machine's shape: it is in the trace key
    assert all(r["error"] is None for r in res.rows)
    assert res.rows[0]["cycles"] == res.rows[2]["cycles"]  # one cube or two: the same launch on cube 0


@pytest.mark.parametrize("ring", ["False", "no", 1, None])
def test_a_ring_that_is_not_a_bool_is_refused_before_running(ring):
    # (a review: ring="False" was bool("False"), a closed ring, and a kernel needing an open
    # line got a ring's cycles; ctx.install_sfr refuses the same value)
    with pytest.raises(ValueError, match="SFR install ring must be True or False"):
        sweep(ring_gemm, (8, 1), setup=setup, ring=ring, cache=False, workers=1)
    with pytest.raises(ValueError, match="SFR install scope must be"):
        sweep(ring_gemm, (8, 1), setup=setup, sfr="ring", cache=False, workers=1)


@pytest.mark.parametrize("grid", [8, (float("inf"), 1), {8: 1}, (8, 0), (8, 1, 1), (True, 1)])
def test_a_bad_grid_is_refused_before_running(grid):
    # (a review: 8 raised a raw TypeError, the others made an error row of every point)
    with pytest.raises(ValueError, match="grid must be .PEs per cube used, cubes used., two positive ints"):
        sweep(ring_gemm, grid, setup=setup, cache=False, workers=1)


def test_a_target_refuses_arguments_it_carries_itself():
    from kernbench.sweeps import Target

    t = Target(ring_gemm, "kernel", (8, 1), setup, "pe", True)
    with pytest.raises(TypeError, match="a Target carries its own grid, setup, sfr and ring"):
        sweep(t, (4, 1), cache=False, workers=1)  # (a review: ignored)
    with pytest.raises(ValueError, match="Target kind must be 'kernel' or 'builder'"):
        sweep(Target(ring_gemm, "kernle", (8, 1), setup), cache=False, workers=1)
    assert sweep(t, cache=False, workers=1).rows[0]["error"] is None


def test_a_launch_builder_refuses_the_kernel_form_s_sfr_arguments():
    for kw in ({"ring": True}, {"ring": np.True_}, {"sfr": "cube"}):
        with pytest.raises(TypeError, match="ring= are for sweeping a kernel"):
            sweep(builder, cache=False, workers=1, **kw)
    assert sweep(builder, ring=False, cache=False, workers=1).rows[0]["error"] is None


# -- failing points are rows ---------------------------------------------------------------------------------
def test_failing_points_are_rows_with_their_error_pe_and_line():
    res = sweep(ring_gemm, (8, 1), setup=setup, ring=True,
                hardware={"sram.capacity_bytes": [1024, 1 << 24], "link.bytes_per_cycle": [0, 32]},
                args={"fail_on": [-1, 3]}, options={"strict_sram": [True]}, cache=False, workers=1)
    by = {(r["fail_on"], r["sram.capacity_bytes"], r["link.bytes_per_cycle"]): r for r in res.rows}
    ok = by[(-1, 1 << 24, 32)]
    assert ok["error"] is None and ok["cycles"] > 0
    sram = by[(-1, 1024, 32)]
    assert sram["error_type"] == "SramCapacityError" and sram["error_pe"] == "PE (0, 0)"
    assert sram["cycles"] is None and "capacity" in sram["error"]
    bad = by[(-1, 1 << 24, 0)]
    assert bad["error_type"] == "HardwareConfigError" and "link.bytes_per_cycle" in bad["error"]
    kern = by[(3, 1 << 24, 32)]
    assert kern["error_type"] == "KernelError" and kern["error_pe"] == "PE (3, 0)"
    assert kern["error_where"].endswith(f"test_sweep.py:{ring_gemm.__code__.co_firstlineno + 3}")
    assert len(res.failed) == 7  # 4 bad configs, 2 kernel errors, 1 over SRAM
    # every point computed, from the cache or refused (a review found "computed" and "failed"
    # adding up past the points: the refused ones counted as neither computed nor cached)
    st = res.stats
    assert (st["points"], st["computed"], st["cached"], st["refused"]) == (8, 4, 0, 4)
    assert res.summary().startswith("8 points (4 computed, 0 from the cache, 4 refused: bad "
                                    "hardware); 7 failed; ")
    df = res.df
    assert list(df.columns) == res.columns and df["cycles"].isna().sum() == 7


def test_a_setup_that_raises_is_a_row_naming_its_line():
    def broken(ctx, M=16):
        raise RuntimeError("no data for M=%d" % M)

    res = sweep(broken, args={"M": [16, 32]}, cache=False, workers=1)
    assert [r["error_type"] for r in res.rows] == ["RuntimeError", "RuntimeError"]
    assert "setup raised RuntimeError: no data for M=32" == res.rows[1]["error"]
    assert res.rows[0]["error_where"].endswith(f"test_sweep.py:{broken.__code__.co_firstlineno + 1}")


def test_a_setup_that_exits_is_its_points_row():
    """sys.exit() in a setup: its point's row (a review: it ended a serial sweep with no rows,
    and killed a Dask worker four times before a KilledWorker row)."""
    def quits(ctx, M=16):
        if M == 32:
            sys.exit("no data for M=32")
        return builder(ctx, M=M)

    res = sweep(quits, args={"M": [16, 32]}, cache=False, workers=1)
    assert [r["error_type"] for r in res.rows] == [None, "SystemExit"]
    assert res.rows[0]["cycles"] > 0


class _Stop(BaseException):
    """A user's own BaseException (not an Exception)."""


def _stops(*, tl):
    tl.zeros((4,), "f32")
    raise _Stop("enough")


def _interrupts(*, tl):
    tl.zeros((4,), "f32")
    raise KeyboardInterrupt


def test_a_base_exception_of_the_users_own_is_its_points_row_here_and_on_dask():
    """A review: a kernel raising a BaseException class of its own, on Dask, killed the task's
    callback and the sweep waited forever; here it ended the sweep. It is each point's row;
    a KeyboardInterrupt is the user's Ctrl-C here (the sweep stops) and the point's row, not
    cached, on a worker."""
    hw = {"link.bytes_per_cycle": [16, 32]}
    res = sweep(_stops, (8, 1), hardware=hw, cache=False, workers=1)
    assert [r["error"] for r in res.rows] == ["trace raised _Stop: enough"] * 2
    assert all(r["error_where"].endswith(f"test_sweep.py:{_stops.__code__.co_firstlineno + 2}") for r in res.rows)
    with pytest.raises(KeyboardInterrupt):
        sweep(_interrupts, (8, 1), hardware=hw, cache=False, workers=1)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        res = sweep(_stops, (8, 1), hardware=hw, client=client, cache=False)
        assert [r["error"] for r in res.rows] == ["trace raised _Stop: enough"] * 2
        res = sweep(_interrupts, (8, 1), hardware=hw, client=client, cache=False)
        assert [r["error"] for r in res.rows] == ["trace raised KeyboardInterrupt"] * 2
        assert res.stats["uncacheable"] == 2


def _signals_its_process(*, tl):
    import os
    import signal

    tl.zeros((4,), "f32")
    os.kill(os.getpid(), signal.SIGINT)


def test_a_point_that_sends_its_worker_sigint_is_computed_not_a_hang():
    """A review: a point's code sending SIGINT to its own Dask worker killed the worker and the
    sweep waited forever. The sweep's own cluster's workers ignore SIGINT (a terminal's Ctrl-C
    reaches the sweep's process, which stops the sweep and closes the cluster)."""
    pytest.importorskip("distributed")
    res = sweep(_signals_its_process, (8, 1), hardware={"link.bytes_per_cycle": [16, 32]}, workers=2,
                cache=False)
    assert res.stats["workers"] == 2 and [r["error"] for r in res.rows] == [None, None]
    assert all(r["cycles"] > 0 for r in res.rows)


def _dies_once_or_signals(x_ptr, i, flags, *, tl):
    import os
    import signal

    tl.store(x_ptr, tl.load(x_ptr, shape=(16,), dtype="f32") + 1.0)
    if i < 2:  # points 0 and 1: their worker dies once, and its nanny starts it again
        flag = os.path.join(flags, str(i))
        if not os.path.exists(flag):
            open(flag, "w").close()
            os._exit(1)
    else:
        os.kill(os.getpid(), signal.SIGINT)


def test_a_restarted_worker_ignores_sigint_too(tmp_path):
    """A breaker: SIGINT was ignored by the workers the cluster started with (Client.run), not by
    one its nanny started again after a crash: a point signalling it killed it, and with both
    workers restarted the sweep waited forever. A worker plugin runs in every worker."""
    pytest.importorskip("distributed")

    def setup(ctx, i):
        return ctx.empty((16,), "f32"), i, str(tmp_path)

    res = sweep(_dies_once_or_signals, (2, 1), setup=setup, args={"i": list(range(6))}, workers=2,
                cache=False)
    assert [r["error"] for r in res.rows] == [None] * 6


def test_a_sweeps_files_refuse_a_folder_and_a_missing_one(tmp_path):
    """A breaker: to_csv, to_parquet and save gave raw OSErrors (IsADirectoryError, pandas'
    "Cannot save file into a non-existent directory") where every other writer names the path."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    res = sweep(builder, args={"M": [16]}, cache=False, workers=1)
    for call in (res.to_csv, res.to_parquet, res.save):
        for p, says in ((str(tmp_path / "out") + "/", "ends in a path separator"),
                        (tmp_path / "nope" / "s.csv", "does not exist"), (tmp_path, "is a directory")):
            with pytest.raises(ValueError, match=says):
                call(p)


def test_a_swept_keyword_only_argument_reaches_the_kernel_with_a_tuple_setup():
    """setup returns the positional arguments as a tuple; a swept value naming the kernel's
    keyword-only parameter was labelled on its row and never passed (a breaker)."""
    def k(x_ptr, o_ptr, *, tl, reps=1):
        t = tl.load(x_ptr, shape=(64,), dtype="f32")
        for _ in range(reps):
            t = t + 1.0
        tl.store(o_ptr, t)

    def setup(ctx, reps=1):
        return ctx.empty((64,), "f32"), ctx.empty((64,), "f32")

    res = sweep(k, (1, 1), setup=setup, args={"reps": [1, 8]}, cache=False, workers=1)
    assert res.rows[1]["commands"] - res.rows[0]["commands"] == 7


def test_a_sweep_of_no_points_keeps_its_columns_and_figure_dtypes_do_not_depend_on_outcomes():
    """hardware=[] with args={"M": [...]}: no points, yet the column M (a review: swept was []
    and df["M"] a KeyError). Every float figure is float64 and sram_over pandas "boolean"
    whether every point failed or none did (a review: object when all failed)."""
    pytest.importorskip("pandas")
    zero = sweep(builder, args={"M": [16, 32]}, hardware=[], cache=False, workers=1)
    assert zero.swept == ["M"] and list(zero.df.columns[:1]) == ["M"] and len(zero.df) == 0
    bad = sweep(builder, args={"M": [16]}, hardware={"link.bytes_per_cycle": [0]}, cache=False, workers=1)
    ok = sweep(builder, args={"M": [16]}, cache=False, workers=1)
    assert bad.rows[0]["error"] is not None and ok.rows[0]["error"] is None
    from kernbench.sweeps.result import BOOL_FIGURES, FLOAT_FIGURES
    for res in (bad, ok, zero):
        assert all(res.df[c].dtype == "float64" for c in FLOAT_FIGURES)
        assert all(str(res.df[c].dtype) == "boolean" for c in BOOL_FIGURES)


TILE = """\
import dataclasses

@dataclasses.dataclass
class Tile:
    n: int
"""


def test_an_argument_the_workers_cannot_rebuild_is_each_points_row_not_a_hang(tmp_path, monkeypatch):
    """An argument of a class from a module loaded by path: it pickles here, and the workers
    cannot import its module. Shipped as a task argument it failed in the worker's connection
    handler, which distributed does not report, and the sweep waited forever (a review);
    shipped as bytes and unpickled in the task, each point is a DaskError row."""
    distributed = pytest.importorskip("distributed")
    from sweep_helpers import module_by_path

    mod = module_by_path(monkeypatch, tmp_path, "kernbench_test_tiles", TILE)

    def tiled(ctx, tile):
        return builder(ctx, M=tile.n)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        res = sweep(tiled, args={"tile": [mod.Tile(16), mod.Tile(32)]}, client=client, cache=False)
    assert [r["error_type"] for r in res.rows] == ["DaskError:ModuleNotFoundError"] * 2
    assert all("kernbench_test_tiles" in r["error"] for r in res.rows)


# -- the cache ---------------------------------------------------------------------------------------------
def test_a_rerun_computes_only_missing_points(tmp_path):
    kw = dict(hardware={"link.bytes_per_cycle": [8, 32]}, args={"chunks": [1, 2]}, cache=tmp_path, workers=1)
    first = sweep(builder, **kw)
    assert (first.stats["computed"], first.stats["cached"]) == (4, 0)
    again = sweep(builder, **kw)
    assert (again.stats["computed"], again.stats["cached"]) == (0, 4)
    assert again.rows == first.rows
    kw["hardware"] = {"link.bytes_per_cycle": [8, 32, 64]}
    more = sweep(builder, **kw)
    assert (more.stats["computed"], more.stats["cached"]) == (2, 4)
    # numpy scalars are the same point as Python ones
    kw["hardware"] = {"link.bytes_per_cycle": np.array([8, 32, 64], dtype=np.int32)}
    assert sweep(builder, **kw).stats["computed"] == 0
    assert len(DiskCache("sweep", tmp_path)) == 6


def test_cache_keys_see_code_values_and_types(tmp_path):
    assert digest(np.int64(3), np.float32(0.5)) == digest(3, 0.5)
    assert digest((1, 2)) != digest([1, 2]) and digest(1) != digest(1.0) and digest(True) != digest(1)
    assert code_fingerprint(builder) != code_fingerprint(hw_reading_builder)
    src = tmp_path / "k.py"
    src.write_text("def f(ctx):\n    return 1\n")
    import importlib.util

    def load():
        spec = importlib.util.spec_from_file_location("kb_cache_probe", src)
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        return m.f

    a = code_fingerprint(load())
    src.write_text("def f(ctx):\n    return 2\n")
    assert code_fingerprint(load()) != a
    c = DiskCache("probe", tmp_path / "c")
    k = digest("x")
    assert c.get(k) is None
    c.put(k, {"a": np.int64(1), "b": (1, 2)})
    assert c.get(k) == {"a": 1, "b": [1, 2]} and k in c and c.clear() == 1



def _scaled(x_ptr, o_ptr, n, reps, *, tl):
    for _ in range(reps):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") * 2.0)


def test_cache_keys_see_the_values_code_reads(tmp_path):
    """What a kernel or builder reads besides its arguments is in its key when it is plain
    data: a partial's bound values, a closure's cells, the globals its code names (a constant
    imported from another module, a notebook cell's global), and not only the source files (a
    review found stale rows served for each). Objects that are not plain data are not hashed."""
    import functools

    def closure(reps):
        def kernel(x_ptr, o_ptr, n, *, tl):
            _scaled(x_ptr, o_ptr, n, reps, tl=tl)
        return kernel

    assert code_fingerprint(functools.partial(_scaled, reps=1)) != code_fingerprint(functools.partial(_scaled, reps=2))
    assert code_fingerprint(functools.partial(_scaled, reps=1)) == code_fingerprint(functools.partial(_scaled, reps=1))
    assert code_fingerprint(closure(1)) != code_fingerprint(closure(2))
    assert code_fingerprint(closure(3)) == code_fingerprint(closure(3))
    # a function with no source file reading a global: a notebook cell's, or an imported constant
    glb = {"REPS": 1, "BLOCKS": (64, np.int64(128)), "obj": object()}
    exec("def k(n):\n    return n * REPS + BLOCKS[0] + len(str(obj))\n", glb)
    a = code_fingerprint(glb["k"])
    glb["obj"] = object()  # not plain data: not hashed, the key stays
    assert code_fingerprint(glb["k"]) == a
    glb["REPS"] = 50
    assert code_fingerprint(glb["k"]) != a
    glb["REPS"], glb["BLOCKS"] = 1, (64, 256)
    assert code_fingerprint(glb["k"]) != a
    # a sweep of the partial with another bound value computes its points again
    kw = dict(hw="default", args={"n": [256]}, cache=str(tmp_path))
    setup = lambda ctx, n: (ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n)  # noqa: E731
    one = sweep(functools.partial(_scaled, reps=1), (1, 1), setup=setup, workers=1, **kw)
    two = sweep(functools.partial(_scaled, reps=3), (1, 1), setup=setup, workers=1, **kw)
    assert two.stats["computed"] == 1 and two.rows[0]["cycles"] > one.rows[0]["cycles"]
    assert sweep(functools.partial(_scaled, reps=3), (1, 1), setup=setup, workers=1, **kw).stats["computed"] == 0

def test_cache_keys_see_the_code_that_runs_defaults_sets_and_big_data(tmp_path, monkeypatch):
    """Four stale rows a review found, each now a new key: a kernel module edited on disk but
    not reloaded (its old code ran, stored under the new file's key, and was served after the
    reload), a default argument changed, a set global, and plain data longer than 4,096 items
    or nested deeper than 4 levels (left out of the key)."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))
    src = tmp_path / "kb_stale_probe.py"
    src.write_text("def f(n):\n    return n + 1\n")
    mod = importlib.import_module("kb_stale_probe")
    try:
        before = code_fingerprint(mod.f)
        # (another length too: a reload within the same second must not take the stale .pyc)
        src.write_text("def f(n):\n    return n + 500\n")
        edited = code_fingerprint(mod.f)  # the old code runs: not the edited file's key
        importlib.reload(mod)
        assert len({before, edited, code_fingerprint(mod.f)}) == 3
    finally:
        sys.modules.pop("kb_stale_probe", None)

    keys = set()
    for reps in (1, 4):
        glb: dict = {}
        exec(f"def k(n, reps={reps}, *, scale=2):\n    return n * reps * scale\n", glb)
        keys.add(code_fingerprint(glb["k"]))
        glb["k"].__kwdefaults__ = {"scale": 3}
        keys.add(code_fingerprint(glb["k"]))
    assert len(keys) == 4

    glb = {"S": {1}, "BIG": [1] + [0] * 5000, "DEEP": [[[[[1]]]]]}
    exec("def k(n):\n    return n * len(S) * BIG[0] * DEEP[0][0][0][0][0]\n", glb)
    a = code_fingerprint(glb["k"])
    seen = {a}
    for name, v in (("S", {1, 2}), ("BIG", [4] + [0] * 5000), ("DEEP", [[[[[4]]]]])):
        old, glb[name] = glb[name], v
        seen.add(code_fingerprint(glb["k"]))
        glb[name] = old
    assert len(seen) == 4 and code_fingerprint(glb["k"]) == a
    assert digest({"b", "a"}) == digest({"a", "b"}) != digest(frozenset({"a"}))


def _zeros(o_ptr, n, *, tl):
    tl.store(o_ptr, tl.zeros((n,), "f32"))


def _lanes_from_memory(ctx):
    n = ctx.memory.hw.vector.lanes * 4
    return Launch(_zeros, (1, 1), ctx.empty((n,), "f32"), n)


def _lanes_from_vars(ctx):
    n = vars(ctx.hw)["vector"].lanes * 4
    return Launch(_zeros, (1, 1), ctx.empty((n,), "f32"), n)


def _lanes_read_while_tracing(ctx):
    o = ctx.empty((4096,), "f32")

    def kernel(o_ptr, *, tl):  # a kernel made by a factory, reading the hardware as it traces
        _zeros(o_ptr, ctx.hw.vector.lanes * 4, tl=tl)
    return Launch(kernel, (1, 1), o)


@pytest.mark.parametrize("build", [_lanes_from_memory, _lanes_from_vars, _lanes_read_while_tracing])
def test_a_trace_is_reused_only_where_the_hardware_it_read_agrees(build):
    """A trace serves another point only when the hardware keys it read agree; reads through
    ctx.memory.hw, vars(ctx.hw) and a kernel reading ctx.hw as it is traced count too (a review
    found each served one trace to every point: rows of the first point's shapes)."""
    lanes, base = [16, 64, 256], {"n_cubes": 1, "pes_per_cube": 1}
    res = sweep(build, hw=base, hardware={"vector.lanes": lanes}, workers=1, cache=False, progress=False)
    fresh = []
    for n in lanes:
        ctx = kernbench.Context(base, {"vector.lanes": n})
        launch = build(ctx)
        fresh.append(ctx.launch(launch.kernel, launch.grid, *launch.args, mode="timing").cycles)
    assert [r["cycles"] for r in res.rows] == fresh and len(set(fresh)) == 3


# -- Dask ------------------------------------------------------------------------------------------------
BY_PATH = """
def vadd(x_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") + 1.0)


def setup(ctx, n):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n
"""


def _unpickled(dask_worker=None):
    return TracedLaunch.unpickled


def test_a_local_cluster_of_processes_gives_the_serial_rows(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    # The worker processes search sys.path afresh: whatever puts the checkout on it in this
    # process (pytest's rootdir, a test) would make them import the source tree, which has no
    # built engine under CI's non-editable install. Keep only the kernbench this process runs.
    import os
    import sys

    import kernbench

    mine = os.path.dirname(os.path.dirname(os.path.abspath(kernbench.__file__)))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p or os.curdir) == mine
                                      or not os.path.isdir(os.path.join(p or os.curdir, "kernbench"))])
    monkeypatch.chdir(tmp_path)
    kw = dict(hardware={"link.bytes_per_cycle": [8, 32], "dma.latency_cycles": [50, 150]},
              args={"chunks": [1, 2, 3]}, options={"strict_sram": [False]}, cache=False)
    serial = sweep(builder, workers=1, **kw)
    # a kernel module loaded by path, under a name the workers cannot import (what `kernbench
    # sweep my_kernels.py:vadd` does): shipped by value (a review found the sweep aborted)
    import importlib.util
    (tmp_path / "by_path.py").write_text(BY_PATH)
    spec = importlib.util.spec_from_file_location("kernbench_test_by_path", tmp_path / "by_path.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "kernbench_test_by_path", mod)
    spec.loader.exec_module(mod)
    kw2 = dict(hardware={"dma.latency_cycles": [50, 150]}, args={"n": [256, 1024]}, cache=False)
    serial2 = sweep(mod.vadd, (2, 1), setup=mod.setup, workers=1, **kw2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        par = sweep(builder, client=client, **kw)
        received = client.run(_unpickled)
        par2 = sweep(mod.vadd, (2, 1), setup=mod.setup, client=client, **kw2)
    assert par.stats["workers"] == 2
    assert par.rows == serial.rows
    assert par2.rows == serial2.rows and all(r["error_type"] is None and r["cycles"] > 0 for r in par2.rows)
    # each trace reaches a worker at most once, however many of its points that worker times
    assert all(n <= par.stats["trace_groups"] for n in received.values()), received


GUARD_PROBE = """\
from kernbench.sweeps.run import unguarded_script_line as u
def f(): return u()
print("top", u())
print("fn", f())
if __name__ == "__main__":
    print("guard", u())
    print("guard-fn", f())
if "__main__" == __name__:
    print("guard2", u())
else:
    print("else", u())
def deco(fn):
    print("deco", u())
    return fn
@deco
def g():
    pass
if __name__ != "__main__":
    pass
else:
    print("ne-else", u())
if "__main__" != __name__:
    len("workers run this")
else:
    print("ne-calls", u())
"""

UNGUARDED_SWEEP = """\
import kernbench

def k(x_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") + 1.0)

def setup(ctx, n):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n

res = kernbench.sweep(k, (2, 1), setup=setup, hardware={"link.bytes_per_cycle": [16, 32]},
                      args={"n": [256]}, workers=2, cache=False)
print("rows", len(res.rows), sum(r["cycles"] > 0 for r in res.rows), res.stats["workers"])
"""


def _run_script(tmp_path, name, text):
    import kernbench

    path = tmp_path / name
    path.write_text(text)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(kernbench.__file__))))
    return subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120), str(path)


def test_a_call_from_a_scripts_top_level_is_told_from_a_guarded_one(tmp_path):
    """unguarded_script_line: the script's statement a call comes from, when it is at the top
    level outside `if __name__ == "__main__":` (directly or through a function), else None."""
    out, path = _run_script(tmp_path, "probe.py", GUARD_PROBE)
    assert out.returncode == 0, out.stderr
    got = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    # (a decorator runs at the top level: a review found it taken for guarded; and a guard
    # whose else branch calls anything, which the workers run as they import the script: guard2)
    # (and `if __name__ != "__main__": ... else:`, the else the guarded branch: a review found
    # it taken for unguarded; guarded unless the branch the workers run calls anything)
    assert got == {"top": repr((path, 3)), "fn": repr((path, 4)), "guard": "None",
                   "guard-fn": "None", "guard2": repr((path, 9)), "deco": repr((path, 15)),
                   "ne-else": "None", "ne-calls": repr((path, 25))}
    # a package's __main__.py (python -m pkg, as python -m kernbench sweep): never run again
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__main__.py").write_text(GUARD_PROBE)
    import kernbench

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(kernbench.__file__))))
    out = subprocess.run([sys.executable, "-m", "pkg"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert set(line.split(" ", 1)[1] for line in out.stdout.splitlines()) == {"None"}


def test_a_sweep_at_a_scripts_top_level_runs_here_and_says_why(tmp_path):
    """A review's case: docs/sweeps.md's first example pasted into a script, without the
    `if __name__ == "__main__":` guard, died with "Nanny failed to start" and a 477-line
    traceback (each Dask worker imports the script again). It runs in this process now, with a
    warning naming the script's line and the fix."""
    pytest.importorskip("distributed")
    out, path = _run_script(tmp_path, "unguarded.py", UNGUARDED_SWEEP)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "rows 2 2 1"
    assert "kernbench.sweep ran in this process, not on 2 Dask workers" in out.stderr
    assert "unguarded.py:9: UserWarning" in out.stderr  # (attributed to the sweep call)
    assert '`if __name__ == "__main__":`' in out.stderr and "Nanny" not in out.stderr


def test_a_sweep_from_a_script_on_stdin_or_deleted_runs_here_and_says_why(tmp_path):
    """A review's case: a guarded sweep in a script given on stdin (``python - < job.py``, a
    heredoc in CI) or deleted once started died with "Nanny failed to start": each spawned worker
    runs the main script again, and ``<stdin>`` is no file. It runs in this process now, the same
    rows, with a warning naming the file and the two ways out."""
    pytest.importorskip("distributed")
    import kernbench

    guarded = UNGUARDED_SWEEP.replace("res = kernbench.sweep", 'if __name__ == "__main__":\n    res = kernbench.sweep')
    guarded = guarded.replace("\nprint(", "\n    print(").replace("\n                      args", "\n        args")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(kernbench.__file__))))
    out = subprocess.run([sys.executable, "-"], input=guarded, cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "rows 2 2 1"
    assert ("not on 2 Dask workers: worker processes run the main script again, and <stdin> cannot "
            "be read") in out.stderr
    assert "Nanny" not in out.stderr
    gone, path = _run_script(tmp_path, "gone.py", "import os\nos.remove(__file__)\n" + guarded)
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == "rows 2 2 1" and f"and {path} cannot be read" in gone.stderr


def test_ctrl_c_while_the_sweep_starts_its_cluster_leaves_no_worker_running(monkeypatch):
    """A review's case: Ctrl-C while LocalCluster(...) started its workers (about a second into a
    sweep) left the worker processes running: distributed cancels its start, losing the workers it
    was starting, and the sweep held no reference to the cluster. The Ctrl-C is held until the
    cluster has started, which is then closed, and the KeyboardInterrupt raised."""
    pytest.importorskip("distributed")
    import multiprocessing
    import signal
    import threading

    from distributed.core import Status
    from distributed.deploy import local

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    sent: list = []

    class InterruptedNanny(local.Nanny):
        def __init__(self, *a, **kw):
            if not sent:  # (as a Ctrl-C lands on the main thread while the workers are started)
                sent.append(threading.current_thread().name)
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            made.append(self)
            super().__init__(*a, **kw)

    made: list = []
    monkeypatch.setattr(local, "Nanny", InterruptedNanny)
    before = set(multiprocessing.active_children())
    # (Python's own handler, whatever the test process was left with: once in a full run here the
    # sweep ran on as if no Ctrl-C came, which SIGINT ignored, or handled outside Python, gives)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep(builder, hardware={"link.bytes_per_cycle": [8, 32]}, workers=2, cache=False)
        assert sent and sent[0] != threading.main_thread().name  # (sent while the cluster started)
        # (each worker closed, not still starting in the background: its process not yet up)
        assert len(made) == 2 and [getattr(w, "status", None) for w in made] == [Status.closed] * 2
        assert set(multiprocessing.active_children()) - before == set()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # (restored)
    finally:  # (none left running by this test, whatever it found)
        signal.signal(signal.SIGINT, old)
        for proc in set(multiprocessing.active_children()) - before:
            proc.terminate()
            proc.join(10)


# -- plots, files, HTML ------------------------------------------------------------------------------------
def test_parquet_keeps_a_missing_swept_value_missing(tmp_path):
    """Explicit points whose keys differ leave some swept values out: in .df and the Parquet
    file they are nulls beside the others' values (ints as Int64, strings as themselves), not
    'nan' and quoted reprs (a review found both)."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    res = sweep(builder, hardware=[{"link.bytes_per_cycle": 16}, {"link.rx_queue_packets": 8}],
                args=[{"chunks": 1}, {"chunks": 2, "M": 16}], workers=1, cache=False)
    assert [r["M"] for r in res.rows] == [None, None, 16, 16]
    res.to_parquet(tmp_path / "p.parquet")
    q = pd.read_parquet(tmp_path / "p.parquet")
    for c in ("M", "link.bytes_per_cycle", "link.rx_queue_packets"):
        assert str(q[c].dtype) == "Int64", (c, q[c].dtype)
        assert q[c].isna().tolist() == [r[c] is None for r in res.rows]
        assert [int(v) for v in q[c].dropna()] == [r[c] for r in res.rows if r[c] is not None]
    mixed = sweep(builder, args=[{"chunks": 1}, {"chunks": 2, "M": "x"}, {"chunks": 1, "M": 16}],
                  workers=1, cache=False)  # (a string M fails the point: the row stays)
    mixed.to_parquet(tmp_path / "m.parquet")
    assert pd.read_parquet(tmp_path / "m.parquet")["M"].tolist()[1:] == ["'x'", "16"]
    assert pd.read_parquet(tmp_path / "m.parquet")["M"].isna().tolist() == [True, False, False]



def test_parquet_keeps_numbers_numbers(tmp_path):
    """An axis of ints and floats (``clock_ghz=[1, 1.5]``: the CLI's ``--set clock_ghz=1,1.5``)
    is float64 in .df and in the file, not the reprs '1' and '1.5' (a review: read back, its
    values doubled to '11' and '1.51.5'); a fixed value Arrow has no type for (a generator) is
    written as its repr, not Arrow's raw error."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    res = sweep(builder, hardware={"clock_ghz": [1, 1.5]}, args={"chunks": [1, 2.0]}, workers=1,
                cache=False)
    res.to_parquet(tmp_path / "n.parquet")
    back = pd.read_parquet(tmp_path / "n.parquet")
    for c in ("clock_ghz", "chunks"):
        assert back[c].dtype == res.df[c].dtype == "float64", (c, back[c].dtype)
        assert back[c].tolist() == [float(r[c]) for r in res.rows]
    gen = sweep(builder, args={"chunks": 1, "M": (m for m in [16])}, workers=1, cache=False)
    gen.to_parquet(tmp_path / "g.parquet")
    assert pd.read_parquet(tmp_path / "g.parquet")["M"].tolist() == [repr(gen.rows[0]["M"])]

def test_pareto_keeps_rows_tied_on_both_columns():
    """Rows with the same cost and objective do not beat each other: all are on the front (a
    review found one kept of twelve tied rows); a row matched on one and worse on the other is
    not."""
    from kernbench.sweeps.plots import pareto_rows

    rows = [{"cost": c, "cycles": y, "error": None} for c, y in
            [(2, 10), (1, 20), (2, 10), (3, 10), (1, 20), (2, 15), (4, 5)]]
    res = types.SimpleNamespace(rows=rows, columns=["cost", "cycles", "error"])
    assert pareto_rows(res, "cost") == [1, 4, 0, 2, 6]


def test_best_and_pareto_take_the_most_of_a_rate():
    """(a review: a Pareto front of TFLOP/s against cycles minimised the TFLOP/s, so every point
    was on it; best("tflops") gave the slowest.) Rates, fractions of a peak and busy % are
    better larger; maximize= decides instead."""
    from kernbench.sweeps.plots import pareto_rows

    rows = [{"cost": c, "tflops": y, "cycles": z, "error": None} for c, y, z in
            [(1, 2.0, 9), (2, 5.0, 7), (3, 4.0, 8), (4, 6.0, 5)]]
    res = types.SimpleNamespace(rows=rows, columns=["cost", "tflops", "cycles", "error"])
    # more TFLOP/s for more cost: (1, 2), (2, 5), (4, 6) are the front; (3, 4) is beaten by (2, 5)
    assert pareto_rows(res, "cost", "tflops") == [0, 1, 3]
    assert pareto_rows(res, "cost", "tflops", maximize=False) == [0]
    assert pareto_rows(res, "cost", "cycles") == [0, 1, 3]
    assert pareto_rows(res, "cost", "cycles", maximize=True) == [0]
    with pytest.raises(ValueError, match="maximize: expected None"):
        pareto_rows(res, "cost", "tflops", maximize="yes")
    # the most of a text is its largest, for best(); pareto() needs numbers to take the most
    text = types.SimpleNamespace(rows=[{"cost": 1, "tag": "a", "error": None},
                                       {"cost": 2, "tag": "z", "error": None}], columns=["cost", "tag", "error"])
    with pytest.raises(ValueError, match="the most of 'tag' needs numbers"):
        pareto_rows(text, "cost", "tag", maximize=True)
    assert pareto_rows(text, "cost", "tag") == [0]
    # a NaN compares false with everything: passed over, as None is, not kept by its place
    nan = types.SimpleNamespace(rows=[{"s": float("nan"), "cycles": 5, "error": None},
                                      {"s": 2.0, "cycles": 4, "error": None},
                                      {"s": 0.5, "cycles": 4, "error": None}], columns=["s", "cycles", "error"])
    assert pareto_rows(nan, "s", "cycles") == [2]
    real = sweep(builder, args={"chunks": [1, 2, 3]}, cache=False, workers=1)
    assert real.best("tflops")["tflops"] == max(r["tflops"] for r in real.rows)
    assert real.best("tflops", maximize=False)["tflops"] == min(r["tflops"] for r in real.rows)
    assert real.best("cycles")["cycles"] == min(r["cycles"] for r in real.rows)
    assert real.best("chunks", maximize=True)["chunks"] == 3
    real.rows[2]["chunks"] = float("nan")  # (as a NaN swept value would be)
    assert real.best("chunks", maximize=True)["chunks"] == 2 and real.best("chunks")["chunks"] == 1


def test_plot_pareto_files_and_html(tmp_path):
    pytest.importorskip("pandas")
    res = sweep(builder, hardware={"link.bytes_per_cycle": [4, 8, 32, 64]}, args={"chunks": [1, 3]},
                cache=False, workers=1)
    for name in ("p.png", "p.svg"):
        res.plot(x="link.bytes_per_cycle", y="cycles", hue="chunks", path=tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000
    front = res.pareto("link.bytes_per_cycle", path=tmp_path / "front.png")
    assert (tmp_path / "front.png").is_file()
    rows = [r for r in res.rows]
    for _, f in front.iterrows():  # nobody is better on both
        assert not any(r["cycles"] < f["cycles"] and r["link.bytes_per_cycle"] < f["link.bytes_per_cycle"]
                       for r in rows)
    res.to_csv(tmp_path / "r.csv")
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "r.csv")) == 8
    pytest.importorskip("pyarrow")
    res.save(tmp_path / "r.parquet")
    back = pd.read_parquet(tmp_path / "r.parquet")
    assert back["cycles"].tolist() == res.df["cycles"].tolist()
    assert "<table" in res._repr_html_() and "8 points" in repr(res)
    with pytest.raises(ValueError, match="no column 'nope'"):
        res.plot(x="nope")
    # without the hue, each x averages the two chunks values: the y label says so (a new user
    # found a plot of means labelled "cycles", matching no run)
    assert res.plot(x="link.bytes_per_cycle", hue="chunks").get_ylabel() == "cycles"
    ax = res.plot(x="link.bytes_per_cycle")
    assert ax.get_ylabel() == "mean cycles (2 points each)"
    want = [np.mean([r["cycles"] for r in rows if r["link.bytes_per_cycle"] == b]) for b in (4, 8, 32, 64)]
    assert ax.get_lines()[-1].get_ydata().tolist() == want


# -- the tuner ---------------------------------------------------------------------------------------------
def test_tune_picks_the_fastest_config_that_fits(tmp_path):
    configs = [{"M": 16}, {"M": 32}, {"M": 64}]
    t = tune(builder, configs, hw=kernbench.load_hw("default", {"sram.capacity_bytes": 40_000}),
             args={"chunks": 2}, default={"M": 16}, cache=tmp_path)
    table = {c["config"]["M"]: c for c in t.table}
    assert table[64]["error"] is not None  # over SRAM with strict checking: never chosen
    fits = {m: c["cycles"] for m, c in table.items() if c["error"] is None}
    assert t.best == {"M": min(fits, key=fits.get)} and t.cycles == min(fits.values())
    assert t.gain == pytest.approx(fits[16] / t.cycles)
    again = tune(builder, configs, hw=kernbench.load_hw("default", {"sram.capacity_bytes": 40_000}),
                 args={"chunks": 2}, default={"M": 16}, cache=tmp_path)
    assert again.from_cache and again.best == t.best and str(again).startswith("best {'M'")


@pytest.mark.parametrize("configs, says", [
    ({"M": [16, 32]}, "got a dict (a sweep's axes): write [{'M': 16}, ...], one dict each"),
    ([16], "got int 16 at position 0"),
    ([{"M": 16}, ("M", 32)], "got tuple ('M', 32) at position 1"),
    (None, "got NoneType None"),
    ("M", "got str 'M'"),
    ([{1: 2}], "its keys are the kernel's argument names, got 1 at position 0"),
])
def test_tune_refuses_configs_that_are_not_a_list_of_dicts(configs, says):
    # (a review: dict() of each config raised "'int' object is not iterable" and "dictionary
    # update sequence element #0 has length 1", naming neither tune nor configs)
    with pytest.raises(TypeError, match="^tune: configs is a list of dicts of keyword arguments") as ei:
        tune(builder, configs, args={"chunks": 2}, cache=False)
    assert says in str(ei.value)


@pytest.mark.parametrize("kw", [{"default": 5}, {"args": [("chunks", 2)]}, {"default": "M"}])
def test_tune_refuses_args_and_default_that_are_not_dicts(kw):
    # (a review: default=5 raised "'int' object is not iterable")
    name = next(iter(kw))
    with pytest.raises(TypeError, match=rf"^tune: {name} must be a dict of the kernel's arguments \(or None\), "
                                        rf"got {type(kw[name]).__name__} "):
        tune(builder, [{"M": 16}], **{"args": {"chunks": 2}, **kw}, cache=False)


# -- the command line --------------------------------------------------------------------------------------
def test_cli_sweep(tmp_path, capsys):
    from kernbench.cli import main

    pytest.importorskip("pandas")
    kfile = tmp_path / "kern.py"
    kfile.write_text(
        "def k(x_ptr, o_ptr, n, *, tl):\n"
        "    x = tl.load(x_ptr, shape=(n,), dtype='f32')\n"
        "    tl.send(dir='E', src=x)\n"
        "    tl.store(o_ptr, tl.recv(dir='W', shape=(n,), dtype='f32') + x)\n"
        "def setup(ctx, n):\n"
        "    return (ctx.empty((n,), 'f32'), ctx.empty((n,), 'f32'), n)\n")
    out = tmp_path / "rows.csv"
    argv = ["sweep", f"{kfile}:k", "--grid", "8,1", "--ring", "--set", "link.bytes_per_cycle=8,32",
            "--set", "link.hop_latency_cycles=0,50", "--arg", "n=256,1K", "--workers", "1",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--plot", str(tmp_path / "p.png"),
            "--hue", "n", "--pareto", "link.bytes_per_cycle"]
    # exit 1: four points failed (a script's `sweep ... && next` must not go on), every output
    # written all the same (a review: a sweep whose points all failed exited 0)
    assert main(argv) == 1
    text = capsys.readouterr().out
    # hop latency 0: a bad config, refused before any launch; the counts partition the points
    # (a review found "4 computed, 0 from the cache, 4 failed" adding up past the 8 points when
    # a computed one failed too)
    assert "8 points (4 computed, 0 from the cache, 4 refused: bad hardware); 4 failed" in text
    assert "HardwareConfigError" in text and "Pareto front" in text
    # the cost is a swept column: shown once (a review found it twice in the front's table)
    head = text.splitlines()[next(i for i, ln in enumerate(text.splitlines()) if ln.startswith("Pareto front")) + 1]
    assert head.split().count("link.bytes_per_cycle") == 1, head
    import pandas as pd

    df = pd.read_csv(out)
    assert len(df) == 8 and set(df["n"]) == {256, 1024}
    assert (tmp_path / "p.png").is_file()
    assert main(argv) == 1 and "(0 computed, 4 from the cache, 4 refused: bad hardware); 4 failed" \
        in capsys.readouterr().out
    assert main(["sweep", "--panel", "single_user_prefill", "--grid", "8,1"]) == 2
    assert "a panel has its own grid" in capsys.readouterr().err
    # output paths and formats are checked before any point is computed (a review found them
    # checked after the sweep, its work lost), and --pareto-plot needs --pareto
    fresh = ["--cache-dir", str(tmp_path / "fresh")]
    base = argv[:argv.index("--cache-dir")]
    for extra, msg in ((["--out", str(tmp_path / "nodir" / "s.csv")], "--out"),
                       (["--out", str(tmp_path / "s.txt")], "--out"),
                       (["--plot", str(tmp_path / "s.txt")], "s.txt: matplotlib writes"),
                       (["--pareto-plot", str(tmp_path / "f.png")], "--pareto-plot draws the --pareto front")):
        assert main(base + fresh + extra) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()  # nothing computed, nothing cached
    json.dumps(df.to_dict())  # plain data


class _Scale:
    def __call__(self, v):
        return v * 2.0


def test_cache_keys_hold_no_addresses_and_see_module_values_classes_and_enums(tmp_path, monkeypatch):
    """A callable object with object's repr (a memory address) is keyed by its class and plain
    state, an object-dtype array by its elements: the same key in every process (a default
    ``act=Scale()`` missed the cache on every run). What code reads and the key now sees: a user
    module's attribute set at run time (``cfg.BLOCK = 256``), which class a global names
    (``np.float16`` or ``np.float32``), an enum member."""
    import enum
    import importlib
    import sys

    keys = set()
    for _ in range(2):  # two instances at two addresses: one key
        glb = {"_Scale": _Scale}
        exec("def k(n, *, act=_Scale()):\n    return act(n)\n", glb)
        keys.add(code_fingerprint(glb["k"]))
    assert len(keys) == 1
    assert digest(np.array([1, "a", None], dtype=object)) == digest(np.array([1, "a", None], dtype=object))

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "kb_cfg_probe.py").write_text("BLOCK = 1024\n")
    cfg = importlib.import_module("kb_cfg_probe")
    try:
        glb = {"cfg": cfg, "DT": np.float32, "Mode": enum.Enum("Mode", "A B")}
        glb["MODE"] = glb["Mode"].A
        exec("def k(n):\n    return n // cfg.BLOCK, DT, MODE\n", glb)
        seen = {code_fingerprint(glb["k"])}
        cfg.BLOCK = 256
        seen.add(code_fingerprint(glb["k"]))
        glb["DT"] = np.float16
        seen.add(code_fingerprint(glb["k"]))
        glb["MODE"] = glb["Mode"].B
        seen.add(code_fingerprint(glb["k"]))
        assert len(seen) == 4
    finally:
        sys.modules.pop("kb_cfg_probe", None)


# -- callables held in data: in the key ------------------------------------------------------------
_HELD_SRC = """
def helper(x):
    return x + {n}


lam = lambda x: x * {n}  # noqa: E731


class Cls:
    def __call__(self, x):
        return x - {n}


class Scale:
    def __init__(self, s):
        self.s = s

    def __call__(self, x):
        return x * self.s

    def method(self, x):
        return x * self.s
"""


@dataclasses.dataclass
class _Held:
    f: object


def _apply(f, x):
    return f(x)


_HOLDERS = {"dict": lambda c: {"act": c}, "list": lambda c: [c], "tuple": lambda c: (1, c),
            "set": lambda c: {c}, "dataclass": lambda c: _Held(c), "partial": lambda c: functools.partial(_apply, c)}


def _held_key(held, where: str) -> str:
    """The key of a function reaching ``held`` as a global, a closure cell or a default."""
    if where == "cell":
        def kernel(x):
            return held
        return code_fingerprint(kernel)
    glb = {"H": held}
    exec("def k(x):\n    return H\n" if where == "global" else "def k(x, h=H):\n    return h\n", glb)
    return code_fingerprint(glb["k"])


def _load_held(tmp_path, n: int, pad: str = ""):
    # (another length each time: a reload within the same second must not take the stale .pyc)
    (tmp_path / "kb_held_probe.py").write_text(_HELD_SRC.format(n=n) + pad)
    if "kb_held_probe" in sys.modules:
        return importlib.reload(sys.modules["kb_held_probe"])
    return importlib.import_module("kb_held_probe")


@pytest.mark.parametrize("where", ["global", "cell", "default"])
@pytest.mark.parametrize("holder", sorted(_HOLDERS))
def test_cache_keys_see_callables_held_in_data(holder, where, tmp_path, monkeypatch):
    """A callable inside plain data (``ACT = {"act": np.exp}``, ``OPS = [helper]``, a dataclass
    field, a partial's argument) is in the key: a user function, lambda or class by its code, a
    library callable by its name, a callable object and a bound method's object by class and
    state. Before, a container holding a callable was not plain data and was left out of the key
    whole (each case here kept its key: stale rows), and a partial bound to a method kept its key
    when the method's object changed."""
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        m = _load_held(tmp_path, 1)
        old = {"function": m.helper, "lambda": m.lam, "class": m.Cls,
               "object": m.Scale(2), "method": m.Scale(2).method}
        m = _load_held(tmp_path, 22, "# edited\n")  # the functions' bodies edited, the module reloaded
        new = {"function": m.helper, "lambda": m.lam, "class": m.Cls,
               "object": m.Scale(3), "method": m.Scale(3).method}
        old["object"], old["method"] = m.Scale(2), m.Scale(2).method  # (the same class: only the state)
    finally:
        sys.modules.pop("kb_held_probe", None)
    old.update(ufunc=np.exp, builtin=math.sqrt, numpy_function=np.sum, source_less=eval("lambda x: x + 1"))
    new.update(ufunc=np.tanh, builtin=math.cos, numpy_function=np.prod, source_less=eval("lambda x: x + 2"))
    wrap = _HOLDERS[holder]
    for kind in old:
        key = _held_key(wrap(old[kind]), where)
        assert _held_key(wrap(old[kind]), where) == key, kind  # nothing changed: the same key
        assert _held_key(wrap(new[kind]), where) != key, kind


_ACTS = {"act": _scaled}


def _act_builder(ctx, n):
    return Launch(_ACTS["act"], (1, 1), ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, 2)


def _scaled_thrice(x_ptr, o_ptr, n, reps, *, tl):
    _scaled(x_ptr, o_ptr, n, reps * 3, tl=tl)


def test_a_sweep_recomputes_when_a_kernel_held_in_a_dict_changes(tmp_path, monkeypatch):
    """The builder launches the kernel a module dict holds: another kernel there is a new key
    (it was the same key, and the first kernel's rows were served)."""
    kw = dict(hw="default", args={"n": [256]}, cache=str(tmp_path), workers=1, progress=False)
    one = sweep(_act_builder, **kw)
    assert sweep(_act_builder, **kw).stats["computed"] == 0
    monkeypatch.setitem(_ACTS, "act", _scaled_thrice)
    three = sweep(_act_builder, **kw)
    assert three.stats["computed"] == 1 and three.rows[0]["cycles"] > one.rows[0]["cycles"]


def test_cache_keys_see_callables_a_user_module_holds(tmp_path, monkeypatch):
    """``cfg.ACT["act"](x)``, ``cfg.helper(x)`` with cfg a user module: its attributes are keyed
    the same way (before: a dict holding a function left out, a function attribute not followed,
    so a helper's own module was not hashed)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "kb_held_dep.py").write_text("def inner(x):\n    return x + 1\n")
    (tmp_path / "kb_held_cfg.py").write_text(
        "import numpy as np\nimport kb_held_dep\n\nACT = {'act': np.exp}\n\n\n"
        "def helper(x):\n    return kb_held_dep.inner(x)\n")
    cfg = importlib.import_module("kb_held_cfg")
    try:
        glb = {"cfg": cfg}
        exec("def k(x):\n    return cfg.ACT['act'](x) + cfg.helper(x)\n", glb)
        a = code_fingerprint(glb["k"])
        assert code_fingerprint(glb["k"]) == a
        cfg.ACT = {"act": np.tanh}
        b = code_fingerprint(glb["k"])
        (tmp_path / "kb_held_dep.py").write_text("def inner(x):\n    return x + 500\n")  # the helper's helper
        assert len({a, b, code_fingerprint(glb["k"])}) == 3
    finally:
        sys.modules.pop("kb_held_cfg", None)
        sys.modules.pop("kb_held_dep", None)


_CYCLES_SRC = """
import numpy as np


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def even(n):
    return n == 0 or odd(n - 1)


def odd(n):
    return n != 0 and even(n - 1)


def _looped():
    def again(n):
        return n and again(n - 1)
    return again


again = _looped()
REG = {"scale": 2}


def via_registry(x):
    return REG["fn"](x) * REG["scale"]


REG["fn"] = via_registry
LOOP = [1]
LOOP.append(LOOP)


def reads_loop(x):
    return LOOP[0]


class Holder:
    def __init__(self):
        self.me = self.run
        self.ops = {"exp": np.exp, "fns": [fact, even], "self": self}

    def __call__(self, x):
        return self.me(x)

    def run(self, x):
        return self.ops["exp"](x)


holder = Holder()
SET = {fact, even, odd, np.exp, np.tanh, again, holder}
npsum = np.sum
normal = np.random.default_rng(0).normal


def everything(x):
    return fact(x), even(x), again(x), via_registry(x), reads_loop(x), holder(x), SET, npsum, normal
"""
_CYCLE_NAMES = ["fact", "even", "odd", "again", "via_registry", "reads_loop", "holder", "everything"]
_CYCLE_KEYS = f"""
import json, sys
sys.path.insert(0, sys.argv[1])
import kb_cycles_probe as m
from kernbench.common.cache import code_fingerprint, digest
keys = {{name: code_fingerprint(getattr(m, name)) for name in {_CYCLE_NAMES!r}}}
keys["digest"] = digest(m.LOOP, m.REG, m.SET, {{"ops": m.holder.ops}})
print(json.dumps(keys))
"""


def test_cache_keys_of_recursive_code_and_data_terminate_and_agree_across_processes(tmp_path, monkeypatch):
    """A function that calls itself, two that call each other, a closure holding itself, a dict
    holding a function whose globals hold that dict, a list holding itself, an object whose
    attributes hold its own bound method and itself, a set of functions (in an order of each
    process's): each key is computed (no endless recursion), is the same in three processes of
    three hash seeds, and still changes with what it reads. np.sum (its repr holds an address)
    and a bound method of a numpy Generator gave another key in every process."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "kb_cycles_probe.py").write_text(_CYCLES_SRC)
    m = importlib.import_module("kb_cycles_probe")
    try:
        here = {name: code_fingerprint(getattr(m, name)) for name in _CYCLE_NAMES}
        here["digest"] = digest(m.LOOP, m.REG, m.SET, {"ops": m.holder.ops})
        assert here == {**{name: code_fingerprint(getattr(m, name)) for name in _CYCLE_NAMES},
                        "digest": digest(m.LOOP, m.REG, m.SET, {"ops": m.holder.ops})}
        assert len(set(here.values())) == len(here)
        for seed in ("0", "12345"):
            out = subprocess.run([sys.executable, "-c", _CYCLE_KEYS, str(tmp_path)], capture_output=True, text=True,
                                 env={**os.environ, "PYTHONHASHSEED": seed}, check=True, timeout=300,
                                 cwd=tmp_path)  # (not the checkout: its source tree has no engine)
            assert json.loads(out.stdout) == here
        m.REG["scale"] = 3
        assert code_fingerprint(m.via_registry) != here["via_registry"]
        m.holder.ops["exp"] = np.tanh
        assert code_fingerprint(m.holder) != here["holder"]
    finally:
        sys.modules.pop("kb_cycles_probe", None)


def _latency_read_from_a_copy(ctx, n, reps):
    import copy

    hw = copy.deepcopy(ctx.hw)  # (a copy's reads: the whole config counts as read)
    m = n if hw.dma.latency_cycles < 150 else n // 2
    return ctx.empty((m,), "f32"), ctx.empty((m,), "f32"), m, reps


def _latency_read_from_a_pickle(ctx, n, reps):
    import pickle

    hw = pickle.loads(pickle.dumps(ctx.hw))
    m = n if hw.dma.latency_cycles < 150 else n // 2
    return ctx.empty((m,), "f32"), ctx.empty((m,), "f32"), m, reps


@pytest.mark.parametrize("setup", [_latency_read_from_a_copy, _latency_read_from_a_pickle])
def test_a_setup_reading_a_copy_of_the_hardware_gets_its_own_traces(setup):
    res = sweep(_scaled, (8, 1), setup=setup, hardware={"dma.latency_cycles": [100, 200]},
                args={"n": [4096], "reps": [1]}, cache=False, progress=False, workers=1)
    assert res.stats["traces"] == 2
    for row, lat in zip(res.rows, (100, 200)):
        ctx = kernbench.Context("default", {"dma.latency_cycles": lat})
        assert row["cycles"] == ctx.launch(_scaled, (8, 1), *setup(ctx, 4096, 1), mode="timing").cycles


def test_a_target_dask_cannot_pickle_is_named_with_the_way_out():
    """A review's case: a builder closing over a lock ran serially but raised a bare "cannot
    pickle '_thread.lock' object" on Dask."""
    import threading

    from kernbench.sweeps.run import _run_dask, make_target

    lock = threading.Lock()

    def locked(ctx, M=16):
        with lock:
            return builder(ctx, M=M)

    with pytest.raises(TypeError, match=r"kernbench.sweep on Dask: the target cannot be pickled for the "
                                        r"workers \(TypeError: cannot pickle '_thread.lock' object\); pass "
                                        r"workers=1"):
        _run_dask(None, make_target(locked, None, None, None, False), {}, [], None)


# -- a review's cases (2026-12-05): workers, cache and arguments Dask cannot take ----------------
def _vadd(x_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") + 1.0)


def _vadd_setup(ctx, n):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n


@pytest.mark.parametrize("kw, err, says", [
    ({"workers": "two"}, ValueError, "workers must be a positive int"),
    ({"workers": -3}, ValueError, "workers must be a positive int"),
    ({"workers": 1.9}, ValueError, "workers must be a positive int"),
    ({"workers": True}, ValueError, "workers must be a positive int"),
    ({"cache": 5}, TypeError, "cache must be True, False or a folder"),
    ({"cache": b"/tmp/x"}, TypeError, "cache must be True, False or a folder"),
    ({"progress": "x"}, ValueError, "progress must be True, False or None"),  # (a review: taken as True)
    ({"progress": 2}, ValueError, "progress must be True, False or None"),
])
def test_workers_and_cache_are_checked_before_anything_runs(kw, err, says):
    with pytest.raises(err, match=says):
        kernbench.sweep(_vadd, (2, 1), setup=_vadd_setup, hw={"n_cubes": 1, "pes_per_cube": 2},
                        args={"n": [8, 16]}, **{"workers": 1, "cache": False, **kw})


def test_a_cache_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "not_a_folder"
    f.write_text("x")
    for cache in (str(f), f / "sub" / "folder"):  # (a file on the way: a raw NotADirectoryError once)
        with pytest.raises(ValueError, match="cache must be a folder .*not_a_folder' is a file"):
            kernbench.sweep(_vadd, (2, 1), setup=_vadd_setup, hw={"n_cubes": 1, "pes_per_cube": 2},
                            args={"n": [8]}, workers=1, cache=cache)
    with pytest.raises(ValueError, match="cache must be a folder .*got ''"):  # (the default, silently)
        kernbench.sweep(_vadd, (2, 1), setup=_vadd_setup, hw={"n_cubes": 1, "pes_per_cube": 2},
                        args={"n": [8]}, workers=1, cache="")
    made = kernbench.sweep(_vadd, (2, 1), setup=_vadd_setup, hw={"n_cubes": 1, "pes_per_cube": 2},
                           args={"n": [8]}, workers=1, cache=tmp_path / "new" / "cache")
    assert made.rows[0]["cycles"] > 0 and (tmp_path / "new" / "cache").is_dir()
    import numpy as np  # (numpy ints are ints for workers=)

    res = kernbench.sweep(_vadd, (2, 1), setup=_vadd_setup, hw={"n_cubes": 1, "pes_per_cube": 2},
                          args={"n": [8]}, workers=np.int64(1), cache=False)
    assert res.rows[0]["cycles"] > 0


def test_an_argument_dask_cannot_pickle_is_named_with_the_way_out():
    # (Dask's own error named its task graph, "Could not serialize object of type LLGExpr")
    import threading

    from kernbench.sweeps.grid import points_of
    from kernbench.sweeps.run import _check_args_ship

    pts = points_of(None, {"n": [8, 16], "lock": [threading.Lock()]}, None)
    with pytest.raises(TypeError, match=r"argument 'lock' = <unlocked _thread.lock object .*> cannot be "
                                        r"pickled for the workers .*pass workers=1"):
        _check_args_ship(pts)
    _check_args_ship(points_of(None, {"n": [8, 16]}, None))  # (picklable: nothing raised)


def test_a_setup_error_whose_str_raises_is_a_row_not_a_crash():
    class Bad(Exception):
        def __str__(self):
            return str(1 / 0)

    def setup(ctx, n):
        raise Bad(n)

    res = kernbench.sweep(_vadd, (2, 1), setup=setup, hw={"n_cubes": 1, "pes_per_cube": 2},
                          args={"n": [8]}, workers=1, cache=False)
    assert "<unprintable Bad: its __str__ raised ZeroDivisionError; args (8,)>" in res.rows[0]["error"]


# -- review H4: fixes of the sweep layer, each with the case that found it --------------------------
def _ops(x_ptr, o_ptr, n, commands, *, tl):
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    for _ in range(commands):
        x = x + 1.0
    tl.store(o_ptr, x)


def _ops_setup(ctx, n, commands):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, commands


@pytest.mark.parametrize("axis", ["args", "hardware", "list of args"])
def test_a_swept_name_that_is_a_figure_column_is_refused_before_running(axis):
    """An argument named "commands" was overwritten in its row by the figure of that name."""
    kw = {"args": {"n": [256], "commands": [1, 4]}, "hardware": {"cycles": [1]},
          "list of args": [{"n": 256, "commands": 1}]}[axis]
    key = "args" if axis == "list of args" else axis
    with pytest.raises(ValueError, match=r"name '(commands|cycles)' is the name of a figure column"):
        sweep(_ops, (8, 1), setup=_ops_setup, workers=1, cache=False, **{key: kw})
    with pytest.raises(ValueError, match="figure column"):
        points_of(None, {"error": [1]}, None)


def _dims_kernel(x_ptr, o_ptr, dims, reps=4, *, tl):
    n = dims if isinstance(dims, int) else dims[0] * dims[1]
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    for _ in range(reps):
        x = x * 1.5
    tl.store(o_ptr, x)


def _dims_setup(ctx, dims, reps=4):
    n = dims if isinstance(dims, int) else int(np.prod(dims))
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), dims, reps


def _dims_launch(dims, reps):
    ctx = kernbench.Context("default")
    ctx.install_sfr("pe")
    return ctx.launch(_dims_kernel, (8, 1), *_dims_setup(ctx, dims, reps), mode="timing", strict_sram=True).cycles


@pytest.mark.parametrize("fixed, configs", [
    ({"dims": [64, 64]}, [{"reps": 32}, {"reps": 8}, {"reps": 1}]),          # a list-valued fixed argument
    ({"dims": range(16, 18)}, [{"reps": 8}, {"reps": 1}]),                   # a range
    ({}, [{"dims": [32, 64], "reps": 2}, {"dims": np.array([64, 64]), "reps": 1}]),  # list/array configs
])
def test_tune_times_each_config_as_one_point_whatever_its_values(fixed, configs):
    """A list in the fixed arguments or a config was a set of choices to the sweep: each config
    became several points and tune paired configs with another launch's row."""
    t = tune(_dims_kernel, configs, grid=(8, 1), setup=_dims_setup, args=fixed, cache=False)
    want = [_dims_launch(c.get("dims", fixed.get("dims")), c["reps"]) for c in configs]
    assert [r["cycles"] for r in t.table[:len(configs)]] == want
    assert len(t.table) == len(configs) + 1 and t.cycles == min(want)
    assert t.best == configs[want.index(min(want))]


@pytest.mark.filterwarnings("ignore:.*which nothing has written")
@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_strict_sram_is_checked_as_ctx_launch_checks_it_not_coerced(mode):
    """options={"strict_sram": ["False"]} ran strict (bool("False") is True) while its row said
    'False'; ctx.launch refuses such a value."""
    vals = ["False", "off", "0", 0, None, False, np.bool_(False), True]
    res = sweep(_vadd, (8, 1), setup=_vadd_setup, args={"n": [2048]}, hardware={"sram.capacity_bytes": [4096]},
                options={"strict_sram": vals, "mode": [mode]}, workers=1, cache=False)
    for r in res.rows[:5]:
        assert r["error_type"] == "ValueError", r
        assert f"strict_sram must be True or False, got {r['strict_sram']!r}" in r["error"]
    assert [r["error_type"] for r in res.rows[5:]] == [None, None, "SramCapacityError"]


def test_cli_sweep_strict_sram_off_is_a_row_naming_the_option(tmp_path, capsys):
    from kernbench.cli import main

    pytest.importorskip("pandas")
    kfile = tmp_path / "vk.py"
    kfile.write_text("def k(x_ptr, o_ptr, n, *, tl):\n"
                     "    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype='f32') + 1.0)\n"
                     "def setup(ctx, n):\n"
                     "    return (ctx.empty((n,), 'f32'), ctx.empty((n,), 'f32'), n)\n")
    out = tmp_path / "rows.csv"
    assert main(["sweep", f"{kfile}:k", "--grid", "8,1", "--arg", "n=2K", "--set", "sram.capacity_bytes=4096",
                 "--option", "strict_sram=off", "--workers", "1", "--no-cache", "--out", str(out)]) == 1
    import pandas as pd

    row = pd.read_csv(out).iloc[0]
    assert row["error_type"] == "ValueError" and "strict_sram must be True or False, got 'off'" in row["error"]


def test_a_cache_folder_that_cannot_be_written_returns_the_rows_and_warns_once(tmp_path):
    """Every point was computed, then the first cache write raised out of the sweep (a raw
    PermissionError / IsADirectoryError): all rows lost. Here the namespace folders are files
    (a read-only folder would not stop root)."""
    (tmp_path / "sweep").write_text("not a folder")
    (tmp_path / "tune").write_text("not a folder")
    kw = dict(setup=_vadd_setup, args={"n": [256, 512, 1024]}, workers=1)
    with pytest.warns(UserWarning, match=r"not cached: the cache folder .*sweep' cannot be written "
                                         r"\((NotADirectoryError|FileExistsError)") as got:
        res = sweep(_vadd, (8, 1), cache=tmp_path, **kw)
    assert len([w for w in got if "not cached" in str(w.message)]) == 1
    assert res.rows == sweep(_vadd, (8, 1), cache=False, **kw).rows and res.rows[0]["cycles"] > 0
    with pytest.warns(UserWarning) as got:
        t = tune(_vadd, [{"n": 256}, {"n": 512}], grid=(8, 1), setup=_vadd_setup, default={"n": 256}, cache=tmp_path)
    assert t.best == {"n": 256} and t.cycles == res.rows[0]["cycles"]
    # one warning, tune's, at the caller's line (a review found the sweep's and tune's both)
    assert [str(w.message).split(":")[0] for w in got] == ["kernbench.sweeps.tune"]
    assert got[0].filename == __file__


_OVERLAP: dict = {}  # (the events of the test below; its setups read them)


def _setup_a(ctx, n):
    _OVERLAP["a in"].set()
    assert _OVERLAP["b in"].wait(10)
    return _vadd_setup(ctx, n)


def _setup_b(ctx, n):
    _OVERLAP["b in"].set()
    assert _OVERLAP["a done"].wait(10)
    return _vadd_setup(ctx, n)


def test_tunes_overlapping_in_threads_leave_the_warnings_machinery_as_it_was():
    """Tune A enters, tune B enters, A returns, then B (each setup waits for the other). A
    review: tune recorded its sweep's warnings with warnings.catch_warnings, process-wide; B's
    exit put back A's recording state, and every later warning of the process went into A's
    dead list. The filters and the display hook must be those from before."""
    import threading
    import warnings

    _OVERLAP.update({k: threading.Event() for k in ("a in", "b in", "a done")})
    filters, show = list(warnings.filters), warnings.showwarning

    def a():
        try:
            return tune(_vadd, [{"n": 256}, {"n": 512}], grid=(8, 1), setup=_setup_a, cache=False, workers=1)
        finally:
            _OVERLAP["a done"].set()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        fa = pool.submit(a)
        assert _OVERLAP["a in"].wait(10)
        fb = pool.submit(tune, _vadd, [{"n": 256}, {"n": 512}], grid=(8, 1), setup=_setup_b,
                         cache=False, workers=1)
        ta, tb = fa.result(), fb.result()
    assert ta.best == tb.best == {"n": 256}
    assert warnings.filters == filters and warnings.showwarning is show
    with pytest.warns(UserWarning, match="still shown"):
        warnings.warn("still shown", stacklevel=1)


@pytest.mark.parametrize("entry", ["{trunc", "[" * 100_000 + "]" * 100_000, "null", "[1, 2]",
                                   "cycles", "float-cycles", "a-column-less", "a-column-more",
                                   "no-figures", "negative", "error-and-cycles", "bound", "fifo"])
def test_a_cache_entry_that_is_not_a_row_is_computed_again(tmp_path, entry):
    """A review: an entry nested too deep for JSON raised RecursionError out of the sweep, and
    one edited to hold ``"cycles": "zz"`` was served as the row."""
    import glob

    kw = dict(setup=_vadd_setup, args={"n": [256]}, workers=1, cache=tmp_path)
    first = sweep(_vadd, (8, 1), **kw)
    (path,) = glob.glob(str(tmp_path / "**" / "*.json"), recursive=True)
    store, key = DiskCache("sweep", tmp_path), os.path.basename(path)[:-5]
    row = store.get(key)
    if entry == "cycles":
        row["cycles"] = "zz"
    elif entry == "float-cycles":
        row["cycles"] = 12.5  # (a float where the column is an int)
    elif entry == "a-column-less":
        del row["bound"]
    elif entry == "a-column-more":
        row["extra"] = 1
    elif entry == "no-figures":  # (a review: served, and tune's choice raised a raw TypeError)
        row = {k: None for k in row}
    elif entry == "negative":
        row["cycles"] = -5
    elif entry == "error-and-cycles":
        row["error"], row["error_type"] = "x", "KernelError"
    elif entry == "bound":
        row["bound"] = "banana"
    if entry == "fifo":  # (a review: opening it blocked the sweep for ever)
        os.unlink(path)
        os.mkfifo(path)
    elif entry[0] in "{[" or entry == "null":
        with open(path, "w") as f:
            f.write(entry)
    else:  # (an entry whose key and digest hold: what is_row refuses)
        store.put(key, row)
        assert store.get(key) == row
    again = sweep(_vadd, (8, 1), **kw)
    assert again.stats["cached"] == 0 and again.stats["computed"] == 1
    assert again.rows == first.rows
    if entry != "fifo":  # (a FIFO is left where it is: not a file the cache writes over)
        assert sweep(_vadd, (8, 1), **kw).stats["cached"] == 1  # (written again, whole)


def test_a_tune_cache_entry_that_is_not_its_rows_is_computed_again(tmp_path):
    import glob

    kw = dict(grid=(8, 1), setup=_vadd_setup, default={"n": 256}, cache=tmp_path)
    first = tune(_vadd, [{"n": 256}, {"n": 512}], **kw)
    (path,) = glob.glob(str(tmp_path / "tune" / "**" / "*.json"), recursive=True)
    store, key = DiskCache("tune", tmp_path), os.path.basename(path)[:-5]
    entry = store.get(key)
    for edit in ({"cycles": "1"}, {"cycles": None}, {"cycles": -1}, {"error": "x"}):
        # (a string made the choice of a string; no cycles and no error raised a raw TypeError)
        bad = json.loads(json.dumps(entry))
        bad["rows"][1].update(edit)
        store.put(key, bad)  # (its key and digest hold: what tune's check refuses)
        again = tune(_vadd, [{"n": 256}, {"n": 512}], **kw)
        assert again.best == first.best and again.cycles == first.cycles
        assert store.get(key) == entry  # (computed again and written whole)


@pytest.mark.parametrize("how", ["edited", "another-key", "symlink", "unsigned"])
def test_a_cache_entry_of_another_key_or_edited_is_a_miss(tmp_path, how):
    """A review: a symlink to another point's entry, or an entry edited by hand (cycles + 1, a
    figure NaN), was served as the point's row. An entry holds its key and its value's digest."""
    import glob

    kw = dict(setup=_vadd_setup, args={"n": [256, 512]}, workers=1, cache=tmp_path)
    first = sweep(_vadd, (8, 1), **kw)
    paths = sorted(glob.glob(str(tmp_path / "**" / "*.json"), recursive=True))
    assert len(paths) == 2
    text = open(paths[0]).read()
    if how == "edited":
        cycles = json.loads(text)["value"]["cycles"]
        assert f'"cycles": {cycles},' in text
        text = text.replace(f'"cycles": {cycles},', f'"cycles": {cycles + 1},')
    elif how == "another-key":
        text = open(paths[1]).read()
    elif how == "unsigned":  # (an entry as the cache wrote them before: the row alone)
        text = json.dumps(json.loads(text)["value"])
    if how == "symlink":
        os.unlink(paths[0])
        os.symlink(paths[1], paths[0])
    else:
        with open(paths[0], "w") as f:
            f.write(text)
    again = sweep(_vadd, (8, 1), **kw)
    assert again.stats["cached"] == 1 and again.stats["computed"] == 1
    assert again.rows == first.rows


def _reads_a_file(x_ptr, o_ptr, n, path, *, tl):
    with open(path) as f:  # (a table read while tracing)
        scale = float(f.read())
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") * scale)


def _reads_a_file_setup(ctx, n, path):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, path


def test_a_kernel_error_caused_by_the_machine_is_not_cached(tmp_path):
    """An OSError raised inside the kernel became a KernelError row, which was cached: once the
    file was there the re-run still served the error."""
    from kernbench.common.errors import KernelError
    from kernbench.sweeps.figures import cacheable, error_figures

    table = tmp_path / "scale.txt"
    kw = dict(setup=_reads_a_file_setup, args={"n": [256], "path": [str(table)]}, workers=1, cache=tmp_path / "c")
    first = sweep(_reads_a_file, (8, 1), **kw)
    assert first.rows[0]["error_type"] == "KernelError" and "FileNotFoundError" in first.rows[0]["error"]
    table.write_text("2.0")
    again = sweep(_reads_a_file, (8, 1), **kw)
    assert again.stats["cached"] == 0 and again.rows[0]["error"] is None and again.rows[0]["cycles"] > 0
    assert first.stats["uncacheable"] == 1 and set(first.rows[0]) == set(first.columns)  # (the mark: no column)
    assert sweep(_reads_a_file, (8, 1), **kw).stats["cached"] == 1
    # the chain, however it is made: "raise ... from e", an error raised while handling another
    for inner in (OSError("disk"), MemoryError(), ModuleNotFoundError("x")):
        try:
            try:
                raise inner
            except Exception as e:
                raise KernelError("kernel raised") from e
        except KernelError as k:
            by_cause = k
        try:
            try:
                raise inner
            except Exception:
                raise KernelError("while handling")  # noqa: B904 (__context__ only)
        except KernelError as k:
            by_context = k
        assert not cacheable(error_figures(by_cause)) and not cacheable(error_figures(by_context))
    try:
        try:
            raise IndexError("the code's own")
        except IndexError as e:
            raise KernelError("kernel raised") from e
    except KernelError as k:
        assert cacheable(error_figures(k))  # (the code's error: determined by the key)


def _rows_kernel(x_ptr, o_ptr, *, tl):
    n = _rows_kernel.ROWS  # (a config kept on the function object)
    tl.store(o_ptr, tl.exp(tl.load(x_ptr, shape=(n, 64), dtype="f32")), shape=(n, 64))


def _rows_setup(ctx):
    return ctx.empty((64, 64), "f32"), ctx.empty((64, 64), "f32")


def test_cache_keys_see_a_functions_attributes(tmp_path, monkeypatch):
    """kernel.ROWS = 64 after a sweep with ROWS = 4 served the first sweep's row."""
    kw = dict(setup=_rows_setup, args=[{}], workers=1, cache=tmp_path)
    got = {}
    for rows in (4, 64, 4):
        monkeypatch.setattr(_rows_kernel, "ROWS", rows, raising=False)
        res = sweep(_rows_kernel, (1, 1), **kw)
        got.setdefault(rows, []).append((res.rows[0]["cycles"], res.stats["cached"]))
    assert got[4][0][0] != got[64][0][0] and got[64][0][1] == 0 and got[4][1] == (got[4][0][0], 1)
    # a function held in data (an argument, a global) by its attributes too
    def f():
        return 0
    keys = []
    for v in (1, 2):
        f.BLOCK = v
        keys.append((digest({"act": f}, strict=True), code_fingerprint(f)))
    assert keys[0][0] != keys[1][0] and keys[0][1] != keys[1][1]


class _SlotBase:
    __slots__ = ("cols",)


class _Tiles(_SlotBase):
    __slots__ = ("rows", "__pad")

    def __init__(self, rows, cols=64, pad=None):
        self.rows, self.cols = rows, cols
        if pad is not None:
            self.__pad = pad

    def kernel(self, x_ptr, o_ptr, *, tl):
        tl.store(o_ptr, tl.exp(tl.load(x_ptr, shape=(self.rows, self.cols), dtype="f32")),
                 shape=(self.rows, self.cols))


def test_cache_keys_see_a_classs_properties_and_attributes():
    """A review's case: a class was keyed by its name and plain methods: a property's body or a
    class attribute (ROWS = 256) edited in a notebook cell (no file to hash) served the old
    row. Both are in the key; the same class made again keys the same."""
    cell = ("class Tiling:\n    ROWS = {rows}\n    @property\n    def rows(self):\n        return {prop}\n"
            "def k(x):\n    return x + min(Tiling().rows, Tiling.ROWS)\n")
    keys = {}
    for rows, prop in ((256, 256), (128, 256), (256, 128), (256, 256)):
        ns = {}
        exec(compile(cell.format(rows=rows, prop=prop), "<cell>", "exec"), ns)
        keys.setdefault(code_fingerprint(ns["k"]), []).append((rows, prop))
    assert sorted(keys.values()) == [[(128, 256)], [(256, 128)], [(256, 256), (256, 256)]]


def test_cache_keys_see_the_function_an_lru_cache_wraps():
    """A review's case: an lru_cache wrapper (no code of its own) was keyed by its name alone:
    its helper edited in a notebook cell served the old row. The function it wraps is keyed."""
    import functools
    keys = []
    for reps in (1, 8):
        ns = {}
        exec(compile(f"import functools\n@functools.lru_cache(maxsize=None)\ndef reps():\n    return {reps}\n"
                     f"def k(x):\n    return x * reps()\n", "<cell>", "exec"), ns)
        keys.append(code_fingerprint(ns["k"]))
    assert keys[0] != keys[1]
    assert code_fingerprint(functools.lru_cache(maxsize=None)(len)) == code_fingerprint(functools.lru_cache(maxsize=None)(len))


def test_cache_keys_see_the_slots_of_a_bound_methods_object(tmp_path):
    """A bound-method kernel on an object with __slots__ (no __dict__) was keyed {"state": None}:
    another object's sweep served the first one's rows."""
    kw = dict(setup=_rows_setup, args=[{}], workers=1, cache=tmp_path)
    a = sweep(_Tiles(4).kernel, (1, 1), **kw)
    b = sweep(_Tiles(64).kernel, (1, 1), **kw)
    assert b.stats["cached"] == 0 and b.rows[0]["cycles"] != a.rows[0]["cycles"]
    assert sweep(_Tiles(64).kernel, (1, 1), **kw).stats["cached"] == 1  # (an equal object: the same key)
    fp = [code_fingerprint(t.kernel) for t in (_Tiles(4), _Tiles(4, cols=32), _Tiles(4, pad=None),
                                               _Tiles(4, pad=0), _Tiles(4, pad=["unset"]))]
    assert len(set(fp)) == 4 and fp[0] == fp[2]  # (a base class's slot, a private one, unset vs any value)
    assert digest(_Tiles(4).kernel, strict=True) != digest(_Tiles(8).kernel, strict=True)


_TUNED_REPS = {kernbench.load_hw("default"): 16, kernbench.load_hw("mesh8"): 4}  # (per machine)


def _tuned_builder(ctx, n):
    ctx.install_sfr("pe")
    reps = _TUNED_REPS.get(ctx.hw, 1) + (ctx.hw == kernbench.load_hw("default"))
    return Launch(_scaled, (8, 1), ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, reps)


@pytest.mark.filterwarnings("ignore:.*which nothing has written")
def test_a_builder_sees_ctx_hw_equal_and_hashing_as_the_plain_config():
    """ctx.hw was a recording subclass during a sweep: == a HardwareConfig was False (the
    dataclass __eq__ wants the same class) and dict lookups missed, so the sweep launched
    another configuration than a plain launch on the same hardware."""
    import copy
    import pickle

    from kernbench.sweeps.run import _recording

    default = kernbench.load_hw("default")
    res = sweep(_tuned_builder, hw="default", args={"n": [1024]},
                hardware={"link.bytes_per_cycle": [default.link.bytes_per_cycle, 2 * default.link.bytes_per_cycle]},
                workers=1, cache=False)
    reps = []
    for row in res.rows:
        ctx = kernbench.Context(default.with_overrides({"link.bytes_per_cycle": row["link.bytes_per_cycle"]}))
        launch = _tuned_builder(ctx, 1024)
        reps.append(launch.args[-1])
        assert row["error"] is None and row["cycles"] == ctx.launch(launch.kernel, launch.grid, *launch.args).cycles
    assert reps == [17, 1] and res.stats["traces"] == 2  # (== reads every key: a trace per machine)
    # whatever else a builder does with ctx.hw sees the plain config
    rec = _recording(default)
    assert rec == default and default == rec and hash(rec) == hash(default) and rec != kernbench.load_hw("mesh8")
    assert isinstance(rec, kernbench.HardwareConfig) and dataclasses.asdict(rec) == dataclasses.asdict(default)
    # (vars too: the reads were kept in its __dict__, and HardwareConfig(**vars(ctx.hw)) failed)
    assert vars(rec) == vars(default) and kernbench.HardwareConfig(**vars(rec)) == default
    for other in (dataclasses.replace(rec, name="x"), copy.copy(rec), copy.deepcopy(rec), pickle.loads(pickle.dumps(rec))):
        assert type(other) is kernbench.HardwareConfig and other.to_dict() == {**default.to_dict(), "name": other.name}


@pytest.mark.parametrize("edited", [False, True])
def test_rows_run_on_dask_are_cached_only_if_the_code_is_unchanged_after(tmp_path, monkeypatch, edited):
    """A review: a helper module edited while a Dask sweep started ran on the workers (they
    import it from its file when they first run the target), and its rows were cached under
    the old code's key, served later for the old code. On Dask the rows are cached once the run
    is over and the target's code is still what the keys say; else a warning, and no entry.
    (Dask itself is stood in for: the deferral is the sweep's.)"""
    from kernbench.sweeps import run as sweep_run

    class _Client:
        def scheduler_info(self):
            return {"workers": {"a": None, "b": None}}

    monkeypatch.setattr(sweep_run, "_dask_client", lambda *a: (_Client(), None))
    monkeypatch.setattr(sweep_run, "_run_dask",
                        lambda dc, tgt, groups, hws, done: sweep_run._run_serial(tgt, groups, hws, done))
    calls = []
    identity = sweep_run.Target.identity

    def changing(self):  # (the first call makes the keys; a later one sees the edit)
        calls.append(1)
        got = identity(self)
        return got + ["edited"] if edited and len(calls) > 1 else got

    monkeypatch.setattr(sweep_run.Target, "identity", changing)
    kw = dict(setup=_vadd_setup, args={"n": [256, 512]}, cache=tmp_path)
    if edited:
        with pytest.warns(sweep_run.CacheNotWrittenWarning, match="the target's code .* changed on disk "
                                                                  "while the sweep ran") as w:
            res = sweep(_vadd, (8, 1), **kw)
        assert w[0].filename == __file__
    else:
        res = sweep(_vadd, (8, 1), **kw)
    assert res.stats["workers"] == 2 and res.rows == sweep(_vadd, (8, 1), **dict(kw, cache=False)).rows
    assert len(DiskCache("sweep", tmp_path)) == (0 if edited else 2)


def test_a_point_whose_dask_task_was_cancelled_says_the_client_closed(monkeypatch):
    """A review: closing the client given as client= mid-sweep gave rows saying only
    "FutureCancelledError: ... cancelled for reason: unknown". (Dask's futures stood in for.)"""
    import distributed

    from kernbench.sweeps import run as sweep_run

    class FutureCancelledError(Exception):
        pass

    class _Future:
        def __init__(self, key):
            self.key = key

        def result(self):
            raise FutureCancelledError(f"{self.key} cancelled for reason: unknown.")

        def release(self):
            pass

    class _Client:
        status = "running"  # (a cluster closed under a running client: the status says nothing)

        def __init__(self):
            self.n = 0

        def scheduler_info(self):
            return {"workers": {"a": None}}

        def submit(self, *a, **k):
            self.n += 1
            return _Future(f"task-{self.n}")

    monkeypatch.setattr(sweep_run, "_dask_client", lambda *a: (_Client(), None))
    monkeypatch.setattr(distributed, "as_completed", lambda fs: iter(fs))
    res = sweep(_vadd, (8, 1), setup=_vadd_setup, args={"n": [256, 512]}, cache=False)
    assert [r["error_type"] for r in res.rows] == ["DaskError:FutureCancelledError"] * 2
    assert all(r["error"].startswith("the point's Dask task was cancelled: the client given as client=, "
                                      "or its cluster, closed while the sweep ran (dask: task-")
               for r in res.rows), res.rows


def test_rows_a_dask_run_finished_before_an_interrupt_are_cached(tmp_path, monkeypatch):
    """A review: with the rows of a Dask run cached once it is over, a Ctrl-C lost every row
    done (a re-run resumed before). They are cached as the sweep is left, too."""
    from kernbench.sweeps import run as sweep_run

    class _Client:
        def scheduler_info(self):
            return {"workers": {"a": None}}

    def interrupted(dc, tgt, groups, hws, done):
        calls = []

        def one_then_stop(p, fig):
            if calls:
                raise KeyboardInterrupt
            calls.append(p)
            done(p, fig)

        return sweep_run._run_serial(tgt, groups, hws, one_then_stop)

    monkeypatch.setattr(sweep_run, "_dask_client", lambda *a: (_Client(), None))
    monkeypatch.setattr(sweep_run, "_run_dask", interrupted)
    kw = dict(setup=_vadd_setup, args={"n": [256, 512, 1024]}, cache=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        sweep(_vadd, (8, 1), **kw)
    assert len(DiskCache("sweep", tmp_path)) == 1
    monkeypatch.undo()  # (the re-run in this process, as the serial path runs it)
    again = sweep(_vadd, (8, 1), **dict(kw, workers=1))
    assert again.stats["cached"] == 1 and again.stats["computed"] == 2
    assert again.rows == sweep(_vadd, (8, 1), **dict(kw, cache=False, workers=1)).rows


def test_a_sweeps_configs_are_frozen():
    """Launch, Point and Target feed the cache keys, and the default options every point: read
    only, as hardware configs are (an edit after a key was made would serve another's rows)."""
    from kernbench.sweeps import DEFAULT_OPTIONS
    from kernbench.sweeps.run import Target

    la = Launch(_vadd, [8, 1], 1, 2, n=3)
    assert (la.grid, la.args, la.kwargs) == ((8, 1), (1, 2), {"n": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        la.grid = (4, 1)
    with pytest.raises(TypeError, match=r"DEFAULT_OPTIONS is read-only"):
        DEFAULT_OPTIONS["mode"] = "functional"
    # still a dict to what reads one: JSON, pickle and copies (plain dicts, free to change)
    import copy
    import pickle
    assert json.loads(json.dumps(DEFAULT_OPTIONS)) == DEFAULT_OPTIONS
    for c in (pickle.loads(pickle.dumps(DEFAULT_OPTIONS)), copy.deepcopy(DEFAULT_OPTIONS), copy.copy(DEFAULT_OPTIONS)):
        assert type(c) is dict and c == DEFAULT_OPTIONS
        c["mode"] = "functional"
    assert Target.__dataclass_params__.frozen
    assert all(type(p).__dataclass_params__.frozen for p in points_of(None, {"n": [1, 2]}, None))


def test_an_optional_dependency_installed_but_broken_is_not_called_missing(monkeypatch):
    """A review: pyarrow 26 installed beside numpy 1.x raised its own ImportError, reported as
    "needs pyarrow: pip install kernbench[sweep]", which changes nothing."""
    import importlib

    from kernbench.sweeps.result import require

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "pyarrow":
            raise ImportError("pyarrow requires NumPy 2.0 or newer, found 1.25.2")
        if name == "missingpkg":
            raise ModuleNotFoundError("No module named 'missingpkg'", name="missingpkg")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"pyarrow is installed but cannot be imported: pyarrow requires "
                                          r"NumPy 2\.0") as e:
        require("pyarrow")
    assert isinstance(e.value.__cause__, ImportError)
    with pytest.raises(ImportError, match=r'needs missingpkg: pip install "kernbench\[sweep\]"'):
        require("missingpkg")


def _plus_one(x_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") + 1.0)


def _plus_one_setup(ctx, n):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n


def test_progress_asked_for_off_a_terminal_prints_lines(capsys):
    """(A peer review.) rich draws no live display off a terminal: progress=True printed
    nothing to a log. A line at each tenth of the points now; None (the default) and False
    print nothing there."""
    kw = dict(setup=_plus_one_setup, args={"n": [64, 128]}, hardware={"dma.latency_cycles": [1, 2, 3, 4, 5]},
              workers=1, cache=False)
    kernbench.sweep(_plus_one, (1, 1), progress=True, **kw)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 10 and err[0].startswith("sweep: 1 of 10 points (") and err[-1].startswith("sweep: 10 of 10 points (")
    for quiet in (None, False):
        kernbench.sweep(_plus_one, (1, 1), progress=quiet, **kw)
        assert capsys.readouterr().err == ""


# -- a review's cases: best's column, a setup's kernbench error, tune's message when none ran --------------
def test_best_refuses_a_name_that_is_no_column():
    """best("cylces") returned None, what a sweep whose every point failed returns, so a typo
    read as "every point failed"; it is the ValueError naming the columns that plot and pareto
    give. A real column still gives None where no row ran: every point failed, or no points."""
    res = kernbench.sweep(_plus_one, (8, 1), setup=_plus_one_setup, args={"n": [64, 128]}, workers=1,
                          cache=False)
    assert res.best("cycles") is min(res.rows, key=lambda r: r["cycles"])
    with pytest.raises(ValueError, match=r"no column 'cylces' in this sweep \(columns: n, cycles, seconds, "):
        res.best("cylces")
    failed = kernbench.sweep(_plus_one, (8, 1), setup=_plus_one_setup, args={"n": [64]},
                             hardware={"link.bytes_per_cycle": [0]}, workers=1, cache=False)
    empty = kernbench.sweep(_plus_one, (8, 1), setup=_plus_one_setup, args={"n": [64]}, hardware=[],
                            workers=1, cache=False)
    assert len(failed.failed) == 1 and len(empty) == 0
    for r in (failed, empty):
        assert r.best("cycles") is None and r.best("n") is None
        with pytest.raises(ValueError, match="no column 'cylces'"):
            r.best("cylces")


def odd_front(res):
    from kernbench.sweeps.plots import pareto_rows

    return pareto_rows(res, "tag", "cycles")


def test_best_pareto_and_plot_name_the_kinds_of_a_column_that_does_not_order():
    """A review's case: a swept argument of a text and a tuple made best() and pareto() raise
    Python's "'<' not supported between instances of 'tuple' and 'str'", and plot(y="bound")
    (a text figure) "unsupported operand type(s) for +". Each is the method's ValueError naming
    the kinds; best() of a column the error-free rows leave empty (error_pe) is None, as the
    docs say."""
    pytest.importorskip("matplotlib")

    def k(x_ptr, o_ptr, n, *, tl, tag=None):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") + 1.0)

    def setup(ctx, n, tag=None):
        return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n

    res = kernbench.sweep(k, (8, 1), setup=setup, args={"n": [64, 128], "tag": ["a", (1, 2)]}, workers=1,
                          cache=False)
    kinds = r"the values of 'tag' are str \('a'\), tuple \(\(1, 2\)\): they do not order"
    for call in (lambda: res.best("tag"), lambda: res.pareto("tag"), lambda: res.pareto("n", "tag")):
        with pytest.raises(ValueError, match=kinds):
            call()
    with pytest.raises(ValueError, match=r"plot: the values of 'bound' are str \('memory'\): y takes numbers"):
        res.plot(x="n", y="bound")
    assert res.plot(x="tag", y="cycles") is not None  # (x may be anything: its values are categories)
    # (a breaker: with no two costs tied the sort never compared the objectives, and the front's
    # own comparison raised the TypeError)
    apart = kernbench.sweep(k, (8, 1), setup=setup, args=[{"n": [64], "tag": ["a"]}, {"n": [128], "tag": [(1, 2)]}],
                            workers=1, cache=False)
    for call in (lambda: apart.pareto("n", "tag"), lambda: apart.pareto("cycles", "tag")):
        with pytest.raises(ValueError, match=kinds):
            call()
    # (a Decimal is a number to plot, as before the check: a breaker)
    from decimal import Decimal

    dec = kernbench.sweep(k, (8, 1), setup=setup, args={"n": [64, 128], "tag": [Decimal("1.5"), Decimal(2)]},
                          workers=1, cache=False)
    assert dec.plot(x="n", y="tag") is not None
    # (a breaker: a Decimal NaN raised decimal.InvalidOperation from best and pareto; a Decimal
    # beside a float did not add in plot's mean; Decimal and Fraction x values went in text order)
    from fractions import Fraction

    odd = kernbench.sweep(k, (8, 1), setup=setup, workers=1, cache=False,
                          args=[{"n": [64], "tag": [Decimal("NaN")]}, {"n": [128], "tag": [Decimal(2)]},
                                {"n": [256], "tag": [2.5]}, {"n": [512], "tag": [Fraction(1, 3)]}])
    assert odd.best("tag")["n"] == 512 and odd.best("tag", maximize=True)["n"] == 256
    # (the front by tag, less better, and cycles, which grow with n: 1/3 (n 512), then 2 (n 128,
    # fewer cycles); 2.5 (n 256) is beaten by 2, and the NaN's row passed over)
    assert [odd.rows[i]["n"] for i in odd_front(odd)] == [512, 128]
    assert odd.plot(x="n", y="tag") is not None
    ax = odd.plot(x="tag", y="cycles")
    xs = [float(v) for v in ax.get_lines()[0].get_xdata()]
    assert [v for v in xs if v == v] == [1 / 3, 2.0, 2.5] and len(xs) == 4  # (value order; a NaN x is not drawn)
    assert res.best("error_pe") is None and res.best("n")["n"] == 64


def _placement_setup(ctx, n):
    if n == 1:
        raise RuntimeError("bad n")
    return ctx.empty((n - 2,), "f32"), ctx.empty((8,), "f32"), n


def _placement_builder(ctx, n):
    return Launch(_plus_one, (8, 1), *_placement_setup(ctx, n))


@pytest.mark.parametrize("target", ["setup", "builder"])
def test_a_setup_that_raises_a_kernbench_error_is_prefixed_as_any_other(target):
    """A PlacementError from the setup's ctx.empty((0,)) was a row without the "setup raised
    ..." that a RuntimeError from the same setup has (docs/sweeps.md); a builder's too. Its
    type and line are as they were."""
    kw = (dict(target=_plus_one, grid=(8, 1), setup=_placement_setup) if target == "setup"
          else dict(target=_placement_builder))
    res = kernbench.sweep(**kw, args={"n": [1, 2]}, workers=1, cache=False)
    ran, placed = res.rows
    line = _placement_setup.__code__.co_firstlineno
    assert (ran["error_type"], ran["error"]) == ("RuntimeError", "setup raised RuntimeError: bad n")
    assert placed["error_type"] == "PlacementError"
    assert placed["error"] == ("setup raised PlacementError: shape must be a non-empty tuple of positive "
                               "ints, got (0,)")
    assert ran["error_where"].endswith(f"test_sweep.py:{line + 2}")
    assert placed["error_where"].endswith(f"test_sweep.py:{line + 3}")


def _blk_kernel(x_ptr, o_ptr, n, blk, *, tl):
    if blk == 3:
        raise RuntimeError("bad blk")
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") + 1.0)


def _blk_builder(ctx, n=1024, blk=1024):
    return Launch(_blk_kernel, (8, 1), ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, blk)


def test_tune_with_no_config_that_ran_gives_each_error_and_the_default_that_ran(tmp_path):
    """str(t) when no config ran was "no config fits: {'blk': 3}: kernel ... bad blk; {}: None":
    "fits" read as SRAM though the config raised, and the default {}, which ran (its cycles are
    t.default_cycles), was listed as failed. Now each failed config with its own error, then the
    default's cycles; a default that failed is marked so, with its error. From the cache alike."""
    t = tune(_blk_builder, [{"blk": 3}], hw="default", cache=tmp_path)
    err = t.table[0]["error"]
    assert t.best is None and t.default_cycles > 0 and "bad blk" in err
    assert str(t) == (f"no config ran without an error: {{'blk': 3}}: {err}; the default {{}} ran: "
                      f"{t.default_cycles:,} cycles")
    assert str(tune(_blk_builder, [{"blk": 3}], hw="default", cache=tmp_path)) == str(t)
    t2 = tune(_blk_builder, [{"blk": 3}, {"n": 0}], hw="default", default={"n": 0}, cache=tmp_path)
    assert t2.best is None and t2.default_cycles is None and len(t2.table) == 2
    assert str(t2) == (f"no config ran without an error: {{'blk': 3}}: {err}; {{'n': 0}} (the default): "
                       f"setup raised PlacementError: shape must be a non-empty tuple of positive ints, got (0,)")
