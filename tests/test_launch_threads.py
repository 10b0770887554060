"""Launches in different threads are independent (a thread-pool sweep): operators dispatch to
the tl of their own thread's launch, and every result equals the serial one."""
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import kernbench

HW = {"n_cubes": 1, "pes_per_cube": 4}


def kernel(x_ptr, o_ptr, scale, *, tl):
    # Operators (the dispatch that used to be process-wide) on every line.
    t = tl.load(x_ptr, shape=(16, 32))
    offs = tl.arange(0, 32)
    m = offs[None, :] < 8 + tl.program_id(0)
    y = tl.where(m, t * scale + 1.0, -t) - (t == 0.0) * 2
    s = tl.sum(y, axis=-1)
    tl.store(o_ptr, y / (abs(s) + 1.0))


def one(seed: int, mode: str):
    ctx = kernbench.Context("default", overrides=HW)
    x = np.random.default_rng(seed).standard_normal((4, 16, 32)).astype(np.float16)
    xp = ctx.shard(x, over="pe")
    o = ctx.empty_like(xp)
    r = ctx.launch(kernel, (4, 1), xp, o, 0.5 + seed % 3, mode=mode)
    out = ctx.gather(o) if mode == "functional" else None
    return r.cycles, r.unit_counters.tobytes(), None if out is None else out.tobytes()


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
    yield
    sys.setswitchinterval(old)


def test_eight_threads_of_launches_equal_the_serial_results(fast_switching):
    jobs = [(seed, mode) for seed in range(12) for mode in ("functional", "timing")]
    serial = [one(*j) for j in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda j: one(*j), jobs * 2))
    assert threaded == serial * 2
