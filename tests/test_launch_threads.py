"""Launches in different threads are independent (a thread-pool sweep): operators dispatch to
the tl of their own thread's launch, and every result equals the serial one."""
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import kernbench
from kernbench.common.errors import UnwrittenReadWarning

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


def copy(x_ptr, o_ptr, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(64,), dtype="f32") + 0.0)


def test_threads_sharing_one_context_allocate_launch_and_free(fast_switching, monkeypatch):
    """A review's case: four threads allocating on one Context at once got arrays at one
    address (the allocator's read-modify-write of its top, and its table unsorted): outputs
    holding another thread's data, and "outside every device allocation" errors. Allocation,
    free and the address lookups are locked now. (Each array made yields the GIL, as a busy
    machine's thread switch would there: the race every time, not by chance.)"""
    import threading
    import time
    from kernbench.runtime.memory import DeviceArray
    made = DeviceArray.__init__

    def yielding(self, *a, **kw):
        time.sleep(0)
        made(self, *a, **kw)

    monkeypatch.setattr(DeviceArray, "__init__", yielding)
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    go = threading.Barrier(4)
    bad = []

    def work(t):
        go.wait()
        mine = []
        try:
            for i in range(100):
                x = np.full((2, 64), 1000 * t + i, np.float32)
                xp = ctx.shard(x, over="pe")
                mine.append((x, xp, ctx.empty_like(xp), ctx.empty((8,), "f32")))
            for x, xp, o, spare in mine[:25]:
                ctx.free(spare)  # (frees shift the table the lookups search)
                ctx.launch(copy, (2, 1), xp, o)
                if not np.array_equal(ctx.gather(o), x):
                    bad.append((t, float(x.flat[0])))
        except Exception as e:  # (a thread's exception would not fail the test by itself)
            bad.append((t, repr(e)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    m = ctx.memory
    addrs = [a.addr for a in m.arrays]
    assert len(addrs) == 4 * (3 * 100 - 25) and len(set(addrs)) == len(addrs)
    assert addrs == sorted(addrs) and not bad


def half(o_ptr, off, *, tl):
    tl.store(o_ptr + off * 4, tl.full((32,), 1.0 + off, "f32"))


def test_two_threads_storing_disjoint_halves_of_one_array_both_land(monkeypatch):
    """A review's case: each thread's first store to a PE's copy made (or copied) its own
    buffer, unlocked, and the last one installed won: one half lost. The copy is made once,
    under the Context's lock (a thread switch forced where it was made)."""
    import threading
    import time
    from kernbench.runtime.memory import DeviceMemory
    fresh = DeviceMemory._fresh

    def slow(self, arr):
        time.sleep(0.02)
        return fresh(self, arr)

    monkeypatch.setattr(DeviceMemory, "_fresh", slow)
    for fill in ("empty", "replicate"):
        ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2}, unwritten="zero")
        o = ctx.empty((64,), "f32") if fill == "empty" else ctx.replicate(np.zeros(64, np.float32))
        errors = []

        def work(off, ctx=ctx, o=o, errors=errors):
            try:
                ctx.launch(half, (1, 1), o, off)
            except Exception as e:  # (a thread's exception would not fail the test)
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(off,)) for off in (0, 32)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        got = ctx.read(o, (0, 0))
        assert not errors and (got[:32] == 1.0).all() and (got[32:] == 33.0).all(), fill


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("fill", ["empty", "replicate", "written"])
def test_a_failed_launch_puts_back_only_its_own_elements_when_another_launch_stored_meanwhile(
        monkeypatch, fill, masked):
    """A review's race: a launch failing in replay put back the copy it had made private (a
    replicated array's shared one, or none at all), dropping the stores another thread's launch
    had made into that copy meanwhile, to other elements: read back as -7, silently. Here the
    other launch's store runs between the failing launch's first store and its undo, every
    time (DeviceMemory.writable wrapped); its elements must stay, the failed launch's go back."""
    from kernbench.runtime.memory import DeviceMemory
    from kernbench.runtime.replay import _mark_written

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    if fill == "empty":
        d = ctx.empty((8,), "int32", name="d")
    elif fill == "replicate":
        d = ctx.replicate(np.full(8, -7, np.int32), dtype="int32", name="d")
    else:  # a copy a launch already made private, half of it written
        d = ctx.empty((8,), "int32", name="d")
        ctx.launch(lambda p, *, tl: tl.store(p, tl.full((4,), -7, "int32")), (1, 1), d)
    before = ctx.read(d, (0, 0)).copy()
    z = ctx.replicate(np.zeros(8, np.int32), dtype="int32")  # (a mask known only in replay)
    writable = DeviceMemory.writable
    other = []

    def meanwhile(self, arr, g):
        out = writable(self, arr, g)
        if arr is d and not other:  # another launch's store to d[4:8], into the same copy
            flat = writable(self, arr, g)
            flat[4:] = [41, 42, 43, 44]
            _mark_written(self, arr, g, 4, (4,), None)
            other.append(True)
        return out

    monkeypatch.setattr(DeviceMemory, "writable", meanwhile)

    def k(p, zp, *, tl):
        if masked:  # d[0:4] through a mask (its indices kept as bits, made again to put back)
            tl.store(p, tl.full((8,), 5, "int32"), mask=tl.arange(0, 8) < tl.load(zp, shape=(8,)) + 4)
        else:
            tl.store(p, tl.full((4,), 5, "int32"))  # d[0:4]
        tl.store(p, tl.arange(0, 4) // tl.load(zp, shape=(4,)))  # divides by zero in replay

    with pytest.raises(kernbench.KernelError, match="division or remainder by zero"):
        ctx.launch(k, (1, 1), d, z)
    monkeypatch.undo()
    assert other
    got = ctx.read(d, (0, 0))
    assert got[4:].tolist() == [41, 42, 43, 44]  # the other launch's stores stay
    assert got[:4].tolist() == before[:4].tolist()  # the failed launch's are put back
    # which elements were written: the other launch's and those written before (an empty
    # array's d[0:4] stays unwritten: a load of it is reported, at element 0)
    out = ctx.empty((8,), "int32")
    copy = lambda p, o, *, tl: tl.store(o, tl.load(p, shape=(8,)))  # noqa: E731
    if fill == "empty":
        with pytest.warns(UnwrittenReadWarning, match="element 0 of 'd'"):
            r = ctx.launch(copy, (1, 1), d, out)
    else:
        r = ctx.launch(copy, (1, 1), d, out)
    assert [u["element"] for u in r.unwritten_reads] == ([0] if fill == "empty" else [])


def test_overlapping_launches_share_one_gc_pause():
    """The cyclic GC is paused while any launch runs and put back when the last ends (a review:
    each launch read and restored the switch itself; B, starting while A had it off, read
    "off", and A's end turned it on under B, or B's left it off for good). Launch A traces
    until B is tracing; B traces until A has returned: the GC must still be off inside B, and on
    once both are done."""
    import gc
    import threading

    b_tracing, a_done = threading.Event(), threading.Event()
    seen = {}

    def kernel_a(x_ptr, o_ptr, *, tl):
        assert b_tracing.wait(10)
        tl.store(o_ptr, tl.load(x_ptr, shape=(64,), dtype="f32") + 1.0)

    def kernel_b(x_ptr, o_ptr, *, tl):
        b_tracing.set()
        assert a_done.wait(10)
        seen["gc inside B after A"] = gc.isenabled()
        tl.store(o_ptr, tl.load(x_ptr, shape=(64,), dtype="f32") * 2.0)

    assert gc.isenabled()
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.ones(64, np.float32))
    o1, o2 = ctx.empty((64,), "f32"), ctx.empty((64,), "f32")

    def a():
        try:
            ctx.launch(kernel_a, (1, 1), x, o1)
        finally:
            a_done.set()

    with ThreadPoolExecutor(2) as pool:
        fa = pool.submit(a)
        fb = pool.submit(ctx.launch, kernel_b, (1, 1), x, o2)
        fa.result(), fb.result()
    assert seen == {"gc inside B after A": False}
    assert gc.isenabled()
    assert ctx.read(o1, 0)[0] == 2.0 and ctx.read(o2, 0)[0] == 2.0
