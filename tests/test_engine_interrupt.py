"""Ctrl-C during a long engine run: the nogil loop runs Python's signal handlers every
SIGNAL_CHECK_PERIOD work items, so KeyboardInterrupt stops it within milliseconds; the engine's
memory is freed and the same process and Context launch again with identical results. The same
for the passes over every command outside the loop: tl.range replay's (kernbench/_core/_replay.pyx)
and the jumps' copies (_engine.apply_copies); the check pass's are in tests/test_program_checks.py.

Runs are sized by a calibration launch (the debug build is ~50x slower than the release build),
so every test takes about the same time on both.
"""
from __future__ import annotations

import _thread
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from contextlib import contextmanager

import numpy as np
import pytest
from engine_helpers import assert_same_result, call_interrupted, pass_result

import kernbench
from kernbench._core import _engine, _replay
from kernbench.common.pe_commands import N_UNITS

HW = {"n_cubes": 1, "pes_per_cube": 4}


def ring(n, *, tl):
    """Each PE passes an n-element f32 tensor east twice: in packet detail, three heap events per
    packet (sent, arrived, credit back), so the run's length grows with n and nothing else."""
    x = tl.zeros((n,), "f32")
    tl.send(dir="E", src=x)
    y = tl.recv(dir="W", shape=(n,), dtype="f32")
    tl.send(dir="E", src=y + 1.0)
    tl.recv(dir="W", shape=(n,), dtype="f32")


def ring_context():
    ctx = kernbench.Context("default", overrides=HW)
    ctx.install_sfr("pe", ring=True)
    return ctx


def launch(ctx, n):
    return ctx.launch(ring, (4, 1), n, mode="timing", detail="packet")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


@contextmanager
def sigint_after(seconds: float):
    """SIGINT (``_thread.interrupt_main``) ``seconds`` from now, raising KeyboardInterrupt only
    inside the block: a late one (the run ended first) is dropped instead of stopping pytest."""
    armed = True

    def handler(signum, frame):
        if armed:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        armed = False
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, old)  # runs a pending handler (disarmed) first


def stopped_in_the_loop(exc: BaseException) -> bool:
    """The exception was raised by the engine's signal check, not by Python code around it."""
    return "_check_signals" in "".join(traceback.format_tb(exc.__traceback__))


def live_sims() -> int:
    gc.collect()
    return sum(isinstance(o, _engine.Sim) for o in gc.get_objects())


@pytest.fixture(scope="module")
def reference():
    """(ctx, n, result, seconds): a launch of 0.9 s or more, never interrupted, on the Context
    that the tests interrupt and launch again."""
    ctx = ring_context()
    n = 1 << 16
    while True:  # scale n until a launch takes 0.9 s or more
        res, secs = timed(lambda n=n: launch(ctx, n))
        if secs >= 0.9:
            return ctx, n, res, secs
        n = int(n * min(1.2 / max(secs, 1e-3), 64))


def assert_same_launch(a, b):
    assert a.cycles == b.cycles
    assert_same_result(a.engine, b.engine)
    assert a.engine.heap_events == b.engine.heap_events
    np.testing.assert_array_equal(a.unit_counters, b.unit_counters)
    np.testing.assert_array_equal(a.link_counters, b.link_counters)


def test_ctrl_c_stops_a_long_launch_in_a_subprocess(tmp_path):
    """A real SIGINT to a process 1 s into a launch of 1.6e9 heap events (about a minute of
    engine time): it exits within seconds with a plain KeyboardInterrupt traceback."""
    n = 1 << 32  # 16 GiB messages of 256-byte packets: 4 PEs x 2 x 2**26 packets x 3 events
    script = tmp_path / "long_launch.py"
    # The script installs Python's Ctrl-C handler itself: a test run started as a background
    # command of a non-interactive shell (`python -m pytest ... &`, nohup) starts with SIGINT
    # ignored, its children inherit that, and Python then installs no handler (the launch ran on).
    script.write_text(textwrap.dedent(f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)

        import kernbench

        def ring(n, *, tl):
            x = tl.zeros((n,), "f32")
            tl.send(dir="E", src=x)
            y = tl.recv(dir="W", shape=(n,), dtype="f32")
            tl.send(dir="E", src=y + 1.0)
            tl.recv(dir="W", shape=(n,), dtype="f32")

        ctx = kernbench.Context("default", overrides={HW!r})
        ctx.install_sfr("pe", ring=True)
        print("READY", flush=True)
        ctx.launch(ring, (4, 1), {n}, mode="timing", detail="packet")
        print("FINISHED", flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(1.0)
        assert proc.poll() is None
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        waited = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # 1.6e9 heap events take ~50 s at the engine's best (~30 ns each)
    assert waited < 5, f"took {waited:.1f} s to stop after SIGINT"
    assert "FINISHED" not in out
    assert proc.returncode == -signal.SIGINT, (proc.returncode, err)  # Python's exit by SIGINT
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):", err
    assert lines[-1] == "KeyboardInterrupt", err
    assert "in launch" in err and "kernbench._core._engine.Sim.run" in err, err
    for bad in ("Exception ignored", "SystemError", "Fatal Python error", "Segmentation fault"):
        assert bad not in err, err


def test_interrupted_launch_frees_the_engine_and_the_context_launches_again(reference):
    ctx, n, want, full = reference
    before = live_sims()
    t0 = time.perf_counter()
    with sigint_after(0.5), pytest.raises(KeyboardInterrupt) as info:
        launch(ctx, n)
    assert time.perf_counter() - t0 < 0.5 + 0.5 * full  # stopped well before the end
    assert stopped_in_the_loop(info.value)
    # while the traceback (which holds simulate's frame) is alive, the engine is gone already
    assert live_sims() == before
    del info
    again = launch(ctx, n)  # same process, same Context
    assert_same_launch(again, want)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_whatever_a_signal_handler_raises_propagates(reference):
    """Not only SIGINT: the exception of any Python handler that raises during the loop (here a
    SIGALRM timeout) leaves simulate() the same way."""
    ctx, n, _, _ = reference

    def on_alarm(signum, frame):
        raise TimeoutError("launch took too long")

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(TimeoutError, match="took too long") as info:
            launch(ctx, n)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert stopped_in_the_loop(info.value)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_a_handler_that_does_not_raise_runs_during_the_loop_and_changes_nothing(reference):
    ctx, n, want, full = reference
    ran = []
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: ran.append(time.perf_counter()))
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.daemon = True
    try:
        timer.start()
        got, secs = timed(lambda: launch(ctx, n))
        end = time.perf_counter()
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, old)
    assert len(ran) == 1 and ran[0] < end - 0.2 * secs  # handled mid-run, not at its end
    assert_same_launch(got, want)


# -- the passes over every command outside the loop -----------------------------------------------
#: iterations of the loop below: every pass goes well past its first signal check
BIG = 3 << 16


def counter(n, *, tl):
    acc = tl.zeros((8,), "f32")
    for _ in tl.range(0, n):
        acc = acc + 1.0


@pytest.fixture(scope="module")
def tiled():
    """A launch of BIG + 1 commands kept as one tiling (its body the loop's first iteration),
    read as the array, its tiling and its C reader."""
    ctx = kernbench.Context("default")
    ctx.install_sfr(scope="pe")
    # (replay on, not the tests' verify, conftest.py: verify traces all BIG iterations, 7 s)
    tc = ctx.launch(counter, (1, 1), BIG, mode="timing", replay="on").program.compact
    assert tc is not None and len(tc.tiles) == 1
    return tc, tc.expand(), tc.source()


def _tile(t):
    a, z, lo, R, D, shift, made = t[0].tiles[0]
    return t[1], a, z - a, lo, R, D, shift, made


def _tile_commands(t):
    full, a, n, lo, R, D, shift, made = _tile(t)
    return _replay.tile_commands, (full[a:a + n], np.empty(R * n, full.dtype), shift, R, D, made)


def _tiles_repeat(t):
    full, a, n, lo, R, D, shift, made = _tile(t)
    return _replay.tiles_repeat, (full[a:lo + R * n], n, R + 1, made, shift)


def _source_repeats(t):
    full, a, n, lo, R, D, shift, made = _tile(t)
    return _replay.source_repeats, (t[2], a, n, R + 1, made, shift)


def _fill_records(t):
    n = 2 * BIG
    rec = np.full((n, 4), -1, np.int64)
    rec[:, 0] = np.arange(n) % 2  # sites 0 and 1: the first makes an 8-byte result, the other none
    return _replay.fill_records, (rec, t[1][:2], np.array([[8], [-1]], np.int64), 0,
                                  np.zeros(1, np.int64), np.zeros(1, np.int64),
                                  np.zeros(n, t[1].dtype), np.zeros(n, np.int32),
                                  np.zeros(n, np.int64), np.zeros(1, np.int64))


def _apply_copies(t):
    # one unit's queue of n commands; one copy: each starts and ends 5 cycles after the one before
    n = 2 * BIG
    start, end = np.zeros(n, np.int64), np.zeros(n, np.int64)
    start[0], end[0] = 7, 9
    q_off = np.full(N_UNITS + 1, n, np.int64)
    q_off[0] = 0
    return _engine.apply_copies, (start, end, np.arange(n, dtype=np.int32), q_off,
                                  np.array([0, n], np.int64),
                                  np.array([[0, 1, 1, n - 1, 1, 5]], np.int64))


PASSES = {
    "tile_commands": _tile_commands,
    "tiles_repeat": _tiles_repeat,
    "source_repeats": _source_repeats,
    "source_moved_on": lambda t: (_replay.source_moved_on,
                                  (t[2], 1, 2, BIG - 2, 0, 1, 0, np.zeros((BIG - 2, 3), np.uint8))),
    "source_reads_any": lambda t: (_replay.source_reads_any,
                                   (t[2], 0, BIG + 1, np.array([1 << 40], np.int64))),
    "rows": lambda t: (t[2].rows, (0, BIG + 1, np.empty(BIG + 1, t[1].dtype))),
    "fill_records": _fill_records,
    "apply_copies": _apply_copies,
}


@pytest.mark.parametrize("name", PASSES)
def test_ctrl_c_stops_a_pass_over_every_command_and_it_runs_again_alike(tiled, name):
    """SIGINT pending as the pass starts: KeyboardInterrupt from its signal poll (not after the
    whole pass); then the same pass, uninterrupted, gives what it gave before, bit for bit."""
    want = pass_result(*PASSES[name](tiled))
    if name in ("tiles_repeat", "source_repeats", "source_moved_on"):
        assert want[0] is True  # (the whole pass ran)
    fn, args = PASSES[name](tiled)
    call_interrupted(fn, *args)
    assert pass_result(*PASSES[name](tiled)) == want
