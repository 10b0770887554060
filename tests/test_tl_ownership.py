"""A handle belongs to the program (PE) and the launch that made it: used anywhere else it is
refused naming both PEs, even when a kernel copies only its eight fields (docs/language.md,
"Ids are unique across PEs and launches")."""
import dataclasses
import os
import sys
import warnings

import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.common.pe_commands import TensorHandle

HW = {"n_cubes": 2, "pes_per_cube": 2}
FILE = os.path.basename(__file__)


@pytest.fixture
def ctx():
    c = kernbench.Context("default", overrides=HW)
    c.install_sfr("pe", ring=True)
    return c


def launch_fails(ctx, kernel, *args, mode="functional"):
    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (2, 2), *args, mode=mode)
    return ei.value


@pytest.mark.parametrize("mode", ["functional", "timing"])
@pytest.mark.parametrize("how", ["handle", "fields", "recv_after", "load_after"])
def test_a_handle_of_another_pe_is_refused(ctx, mode, how):
    x = ctx.replicate(np.ones(8, np.float16))
    kept, lines = {}, []

    def kernel(ptr, *, tl):
        t = tl.load(ptr, shape=(8,))
        me = (tl.program_id(0), tl.program_id(1))
        if me == (0, 0):
            kept["h"] = t  # a global/closure: the classic mistake
            return
        if me == (1, 0):
            h = kept["h"]
            if how == "fields":  # a view built field by field, as kernels written elsewhere do
                h = TensorHandle(id=h.id, addr=h.addr, shape=(2, 4), dtype=h.dtype, nbytes=h.nbytes)
            here = sys._getframe()
            if how in ("handle", "fields"):
                lines.append(here.f_lineno); tl.exp(h)  # noqa: E702
            elif how == "recv_after":
                lines.append(here.f_lineno); tl.recv("W", shape=(8,), dtype="f16", after=h)  # noqa: E702
            else:
                lines.append(here.f_lineno); tl.load(ptr, shape=(8,), after=h)  # noqa: E702

    e = launch_fails(ctx, kernel, x, mode=mode)
    msg = str(e)
    assert e.pe == (1, 0)
    assert f"PE (1, 0) at {FILE}:{lines[0]}" in msg
    assert "is a tensor of PE (0, 0)" in msg and "not of this PE (1, 0)" in msg


def test_a_handle_of_an_earlier_launch_is_refused(ctx):
    x = ctx.replicate(np.ones(8, np.float16))
    kept = {}

    def first(ptr, *, tl):
        if (tl.program_id(0), tl.program_id(1)) == (1, 1):
            kept["h"] = tl.load(ptr, shape=(8,))

    ctx.launch(first, (2, 2), x)

    def second(ptr, *, tl):
        t = tl.load(ptr, shape=(8,))  # this PE's tensor #0: the same number the kept one has
        if (tl.program_id(0), tl.program_id(1)) == (1, 1):
            tl.store(ptr, kept["h"] + t)

    msg = str(launch_fails(ctx, second, x))
    assert "tensor of another launch (an earlier one" in msg and "made on PE (1, 1)" in msg and "used on PE (1, 1)" in msg


def test_an_id_no_machine_made_is_not_named_as_another_launchs(ctx):
    """An id just below a PE's tensor #0 (h.id - 1) borrows from the PE and launch bits: it
    decoded as a tensor of an earlier launch made on PE (16777215, 16777215), which no machine
    has (a review). It is named as made by no tl call, in the first launch and every later one."""
    x = ctx.replicate(np.ones(8, np.float16))

    def k(ptr, *, tl):
        h = tl.load(ptr, shape=(8,))  # tensor #0 of its PE
        tl.store(ptr, TensorHandle(id=h.id - 1, shape=(8,)))

    for _ in range(2):
        msg = str(launch_fails(ctx, k, x))
        assert "which no tl call on this PE made" in msg and "16777215" not in msg, msg

    def beyond(ptr, *, tl):  # (h.id + 2**48 decoded as PE (65537, 0)'s tensor, on a 2 x 2 machine)
        h = tl.load(ptr, shape=(8,))
        tl.store(ptr, TensorHandle(id=h.id + 2 ** 48, shape=(8,)))

    msg = str(launch_fails(ctx, beyond, x))
    assert "which no tl call on this PE made" in msg and "65537" not in msg, msg


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_handle_from_a_forked_process_is_refused(ctx):
    """A forked child numbers its launches from its pid times 2**32: a handle it sends back
    (pickled) names no launch of its parent's (a review: the child's first launch had the
    parent's next serial, and its handle silently read the parent's own tensor #0)."""
    import pickle

    x = ctx.replicate(np.ones(8, np.float16))

    def first(ptr, *, tl):
        kept["h"] = tl.load(ptr, shape=(8,))

    kept = {}
    r, w = os.pipe()
    with warnings.catch_warnings():  # (3.12+: fork of a process with threads, the suite's own)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: one launch, its handle back through the pipe
        try:
            ctx.launch(first, (1, 1), x)
            os.write(w, pickle.dumps(kept["h"]))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        h = pickle.loads(f.read())
    os.waitpid(pid, 0)

    def second(ptr, *, tl):
        t = tl.load(ptr, shape=(8,))  # this launch's tensor #0, as the child's was
        tl.store(ptr, h + t)

    msg = str(launch_fails(ctx, second, x))
    assert "tensor of another launch" in msg or "which no tl call on this PE made" in msg


def _child_handle(_):
    """In a spawned or forkserver worker: one launch, its handle back (pickled by the pool)."""
    c = kernbench.Context("default", overrides=HW)
    x = c.replicate(np.full(8, 5.0, np.float16))
    kept = {}

    def first(ptr, *, tl):
        kept["h"] = tl.load(ptr, shape=(8,))

    c.launch(first, (1, 1), x)
    return kept["h"]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_handle_from_a_spawned_worker_is_refused(ctx, method):
    """A spawned or forkserver child imports kernbench before multiprocessing marks it a child:
    its launch numbers are chosen at its first launch, from its pid (a breaker found the child's
    first handle named the parent's next launch, and the parent's own tensor #0 was read)."""
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    with multiprocessing.get_context(method).Pool(1) as pool:
        h = pool.map(_child_handle, [0])[0]
    x = ctx.replicate(np.ones(8, np.float16))

    def second(ptr, *, tl):
        t = tl.load(ptr, shape=(8,))
        tl.store(ptr, h + t)

    msg = str(launch_fails(ctx, second, x))
    assert "tensor of another launch" in msg or "which no tl call on this PE made" in msg


SPAWN_AT_TOP = """\
import multiprocessing
import numpy as np
import kernbench

HW = {"n_cubes": 1, "pes_per_cube": 1}

def first(ptr, *, tl):
    KEPT["h"] = tl.load(ptr, shape=(8,))

KEPT = {}
WARM = kernbench.Context("default", overrides=HW)  # a launch at the top level: a spawned child
WARM.launch(first, (1, 1), WARM.replicate(np.ones(8, np.float16)))  # runs it as it re-imports

def child(_):
    c = kernbench.Context("default", overrides=HW)
    c.launch(first, (1, 1), c.replicate(np.full(8, 5.0, np.float16)))
    return KEPT["h"]

if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        h = pool.map(child, [0])[0]
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.replicate(np.ones(8, np.float16))

    def second(ptr, *, tl):
        t = tl.load(ptr, shape=(8,))
        tl.store(ptr, h + t)

    try:
        ctx.launch(second, (1, 1), x)
        print("accepted", ctx.read(x, pe=(0, 0)).tolist())
    except kernbench.KernelError as e:
        print("refused", str(e)[:80])
"""


def test_a_handle_from_a_spawned_worker_that_launched_as_it_imported_is_refused(tmp_path):
    """The main script launches at its top level, so a spawned child launches as it re-imports
    the script, before multiprocessing marks it a child: it must still number its launches as a
    child's (a breaker: the child's handle was read as the parent's own tensor #0)."""
    import subprocess

    path = tmp_path / "spawn_at_top.py"
    path.write_text(SPAWN_AT_TOP)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(kernbench.__file__))))
    out = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused"), out.stdout


def test_an_id_from_nowhere_is_refused(ctx):
    x = ctx.replicate(np.ones(8, np.float16))

    def kernel(ptr, *, tl):
        tl.load(ptr, shape=(8,))
        tl.exp(TensorHandle(id=0, shape=(8,), dtype="f16"))

    assert "TensorHandle with id 0, which no tl call on this PE made" in str(launch_fails(ctx, kernel, x))

    def moved(ptr, *, tl):  # an id of this PE's, past its tensors (a review: "of PE (0, 0), not
        h = tl.load(ptr, shape=(8,))  # of this PE (0, 0)" named one PE twice)
        tl.exp(dataclasses.replace(h, id=h.id + 5))

    msg = str(launch_fails(ctx, moved, x))
    assert "which no tl call on this PE made (this PE (0, 0) has 1 tensors)" in msg, msg


def test_ids_are_unique_across_pes_and_launches(ctx):
    x = ctx.replicate(np.ones(8, np.float16))
    ids = []

    def kernel(ptr, *, tl):
        t = tl.load(ptr, shape=(8,))
        ids.extend([t.id, tl.exp(t).id, tl.reshape(t, (2, 4)).id])

    ctx.launch(kernel, (2, 2), x)
    ctx.launch(kernel, (2, 2), x, mode="timing")
    # per program: the load, the exp and a view of the load (same id): 2 distinct ids
    assert len(ids) == 2 * 4 * 3
    assert len(set(ids)) == 2 * 4 * 2


# -- a tl belongs to its launch, in its thread ---------------------------------------------------

def test_a_nested_launch_stores_before_the_outer_launch_computes_its_values(ctx):
    """docs/language.md: a nested launch's stores land when it returns; the outer launch
    computes its values after its own trace, so its load (before the nested launch in the
    kernel's Python) reads what the nested launch stored (a review asked for it written)."""
    a = ctx.replicate(np.ones(8, np.float32))
    o = ctx.empty((8,), "f32")

    def inner(p, *, tl):
        tl.store(p, tl.full((8,), 7.0, "f32"))

    def outer(a_ptr, o_ptr, *, tl):
        x = tl.load(a_ptr, shape=(8,), dtype="f32")
        if tl.program_id(0) == 0:
            ctx.launch(inner, (1, 1), a_ptr)
        tl.store(o_ptr, x + 1.0)

    ctx.launch(outer, (1, 1), a, o)
    assert (ctx.read(o, (0, 0)) == 8.0).all()


@pytest.mark.parametrize("call", ["load", "exp", "zeros", "program_id", "range"])
def test_a_nested_launch_that_uses_the_outer_tl_is_refused_and_the_outer_goes_on(ctx, call):
    """A kernel that launches another: while the nested launch runs, the outer launch's tl
    refuses every call (before, a call added commands to the outer PE's program), naming the
    nested PE and line; after it, the outer kernel traces on as if nothing happened."""
    x = ctx.replicate(np.ones(8, np.float32))
    y = ctx.empty((8,), "f32")
    lines, errors = [], []

    def inner(ptr, *, tl, outer):
        t = tl.load(ptr, shape=(8,))
        f = {"load": lambda: outer.load(ptr, shape=(8,)), "exp": lambda: outer.exp(t),
             "zeros": lambda: outer.zeros((8,)), "program_id": lambda: outer.program_id(1),
             "range": lambda: list(outer.range(8))}[call]
        lines.append(f.__code__.co_firstlineno)
        f()

    def kernel(ptr, out, *, tl):
        t = tl.load(ptr, shape=(8,))
        with pytest.raises(KernelError) as ei:
            ctx.launch(inner, (1, 1), ptr, kernel_kwargs={"outer": tl})
        errors.append(ei.value)
        tl.store(out, t * 2.0)

    ctx.launch(kernel, (1, 1), x, y)
    e = errors[0]
    assert e.pe == (0, 0) and e.where.endswith(f"{FILE}:{lines[0]}")
    assert "waiting for the launch its kernel started (a nested ctx.launch) to end" in str(e)
    np.testing.assert_array_equal(ctx.read(y, (0, 0)), np.full(8, 2.0, np.float32))


def test_a_tl_of_a_launch_tracing_on_another_thread_is_refused():
    """Thread A's kernel keeps its tl where thread B's kernel finds it, and waits while B runs:
    B's call is refused naming B's PE and line (before, it added commands to A's program, and
    A's cycles were silently wrong); A's launch then ends with its own result."""
    import threading

    shared, lines = {}, []
    a_in, b_done = threading.Event(), threading.Event()

    def kernel_a(ptr, out, *, tl):
        t = tl.load(ptr, shape=(8,))
        shared["tl"], shared["t"] = tl, t
        a_in.set()
        assert b_done.wait(60)
        tl.store(out, t + 1.0)

    def kernel_b(ptr, *, tl):
        t = tl.load(ptr, shape=(8,))
        lines.append(sys._getframe().f_lineno + 1)
        shared["tl"].exp(shared["t"])
        tl.store(ptr, t)

    def run_a(result):
        c = kernbench.Context("default", overrides=HW)
        x, y = c.replicate(np.ones(8, np.float32)), c.empty((8,), "f32")
        c.launch(kernel_a, (1, 1), x, y)
        result["a"] = c.read(y, (0, 0))

    result = {}
    ta = threading.Thread(target=run_a, args=(result,))
    ta.start()
    assert a_in.wait(60)
    try:
        c = kernbench.Context("default", overrides=HW)
        with pytest.raises(KernelError) as ei:
            c.launch(kernel_b, (1, 1), c.replicate(np.ones(8, np.float32)))
    finally:
        b_done.set()
        ta.join(60)
    assert ei.value.pe == (0, 0) and ei.value.where.endswith(f"{FILE}:{lines[0]}")
    assert "this tl is tracing PE (0, 0) on another thread" in str(ei.value)
    np.testing.assert_array_equal(result["a"], np.full(8, 2.0, np.float32))


def test_a_tl_used_outside_any_launch_on_another_thread_names_no_pe():
    """A thread that traces nothing and calls a tracing launch's tl: the error is the same,
    without a PE (there is no program of that thread to name)."""
    import threading

    shared = {}
    a_in, b_done = threading.Event(), threading.Event()

    def kernel_a(*, tl):
        shared["tl"] = tl
        a_in.set()
        assert b_done.wait(60)

    c = kernbench.Context("default", overrides=HW)
    ta = threading.Thread(target=lambda: c.launch(kernel_a, (1, 1)))
    ta.start()
    assert a_in.wait(60)
    try:
        with pytest.raises(KernelError, match="on another thread") as ei:
            line = sys._getframe().f_lineno + 1
            shared["tl"].zeros((8,))
    finally:
        b_done.set()
        ta.join(60)
    # (no PE of this thread's to name; the line that called is named)
    assert ei.value.pe is None and ei.value.where.endswith(f"{FILE}:{line}")
    assert str(ei.value).startswith(f"at {FILE}:{line}: this tl is tracing PE (0, 0) on another thread")


def test_a_thread_the_kernel_starts_names_the_line_that_called_its_tl():
    """A kernel that hands its tl to a thread it starts: the call there is refused naming the
    thread's line (a review found an error with neither PE nor line)."""
    import threading

    seen, lines = {}, []

    def kernel(x_ptr, o_ptr, *, tl):
        def work():
            try:
                lines.append(sys._getframe().f_lineno + 1)
                tl.load(x_ptr, shape=(8,))
            except KernelError as e:
                seen["e"] = e
        th = threading.Thread(target=work)
        th.start()
        th.join(60)
        tl.store(o_ptr, tl.zeros((8,)))

    c = kernbench.Context("default", overrides=HW)
    c.launch(kernel, (1, 1), c.replicate(np.ones(8, np.float32)), c.empty((8,), "f32"))
    e = seen["e"]
    assert e.pe is None and e.where.endswith(f"{FILE}:{lines[0]}")
    assert str(e).startswith(f"at {FILE}:{lines[0]}: this tl is tracing PE (0, 0) on another thread")


def test_a_tl_kept_past_its_launch_names_the_line_that_called_it():
    kept = {}

    def kernel(o_ptr, *, tl):
        kept["tl"] = tl
        tl.store(o_ptr, tl.zeros((8,)))

    c = kernbench.Context("default", overrides=HW)
    c.launch(kernel, (1, 1), c.empty((8,), "f32"))
    with pytest.raises(KernelError, match="its launch has ended") as ei:
        line = sys._getframe().f_lineno + 1
        kept["tl"].zeros((8,))
    assert ei.value.pe is None and ei.value.where.endswith(f"{FILE}:{line}")


def test_a_handles_operator_past_its_launch_names_the_line_that_called_it():
    """An operator on a handle kept past its launch (in a generator resumed after it, or on a
    thread the kernel started) is a KernelError naming the line, as a tl call there is (a review
    found a bare RuntimeError with no line)."""
    import threading

    kept = {}

    def raised(op, h):
        with pytest.raises(KernelError) as ei:
            op(h)
        e = ei.value
        # (the operator's line: the first frame outside kernbench)
        assert e.pe is None and e.where.endswith(f"{FILE}:{op.__code__.co_firstlineno}"), e.where
        assert str(e).startswith(f"at {FILE}:{op.__code__.co_firstlineno}: TensorHandle operators")
        return str(e)

    def kernel(o_ptr, *, tl):
        kept["h"] = h = tl.zeros((8,))
        t = threading.Thread(target=lambda: kept.__setitem__("thread", raised(lambda h: h + 1, h)))
        t.start()
        t.join()
        tl.store(o_ptr, h)

    c = kernbench.Context("default", overrides=HW)
    c.launch(kernel, (1, 1), c.empty((8,), "f32"))
    assert "this thread traces no kernel" in kept["thread"]
    for op in (lambda h: h * 2.0, lambda h: h[None, :], lambda h: -h, lambda h: h.to("f16")):
        assert "this handle's launch has ended" in raised(op, kept["h"])


def test_a_waiting_tl_called_from_another_thread_says_another_thread():
    """A tl waiting for the launch its kernel started, called from a thread that traces
    nothing: the error is the other-thread one (a review found the nested-launch message,
    which speaks of the nested kernel, given to another thread)."""
    import threading

    shared = {}
    a_in, b_done = threading.Event(), threading.Event()

    def inner(*, tl):
        a_in.set()
        assert b_done.wait(60)

    def outer(*, tl):
        shared["tl"] = tl
        ctx.launch(inner, (1, 1))

    ctx = kernbench.Context("default", overrides=HW)
    ta = threading.Thread(target=lambda: ctx.launch(outer, (1, 1)))
    ta.start()
    assert a_in.wait(60)
    try:
        with pytest.raises(KernelError, match="this tl is tracing PE \\(0, 0\\) on another thread"):
            shared["tl"].zeros((8,))
    finally:
        b_done.set()
        ta.join(60)
