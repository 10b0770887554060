"""Link mistakes: ports with no neighbour, sends and recvs that do not match."""
import os
import re
import sys

import numpy as np
import pytest

import kernbench
from kernbench import KernelError

HW = {"n_cubes": 2, "pes_per_cube": 4}
FILE = os.path.basename(__file__)


def launch(kernel, scope="pe", ring=False, grid=(4, 2), mode="functional"):
    ctx = kernbench.Context("default", overrides=HW)
    if scope:
        ctx.install_sfr(scope, ring=ring)
    x = ctx.replicate(np.ones(64, np.float32))
    return ctx.launch(kernel, grid, x, mode=mode)


def test_send_past_the_end_of_an_open_line():
    lines = []

    def kernel(x, *, tl):
        t = tl.load(x, shape=(64,))
        lines.append(sys._getframe().f_lineno + 1)
        tl.send(dir="E", src=t)

    with pytest.raises(KernelError) as ei:
        launch(kernel)
    msg = str(ei.value)
    # PE 3 is the east end of cube 0's line (cube 0 is traced first)
    assert msg.startswith(f"PE (3, 0) at {FILE}:{lines[-1]}: send on port E, which has no neighbour "
                          f"under the installed SFR (scope pe: the PEs of each cube in a")
    assert ei.value.pe == (3, 0)


def test_recv_with_no_sfr_installed():
    lines = []

    def kernel(x, *, tl):
        lines.append(sys._getframe().f_lineno + 1)
        tl.recv(dir="W", shape=(64,), dtype="f32")

    with pytest.raises(KernelError) as ei:
        launch(kernel, scope=None)
    assert str(ei.value) == (f"PE (0, 0) at {FILE}:{lines[-1]}: recv on port W, which has no "
                             f"neighbour under the installed SFR (no SFR installed: call ctx.install_sfr())")


def test_scope_cube_leaves_other_pes_unwired():
    def kernel(x, *, tl):
        if tl.program_id(0) == 1:
            tl.send("E", tl.load(x, shape=(64,)))

    with pytest.raises(KernelError, match=r"PE \(1, 0\) at .*: send on port E, which has no neighbour"):
        launch(kernel, scope="cube", ring=True)


def test_unknown_direction():
    def kernel(x, *, tl):
        tl.send(dir="up", src=tl.load(x, shape=(64,)))

    with pytest.raises(KernelError, match="send: unknown link direction 'up': expected one of 'E', 'W', 'N', 'S'"):
        launch(kernel)


def ring_kernel(recv_shape, recv_dtype, lines):
    def kernel(x, *, tl):
        t = tl.load(x, shape=(64,))
        lines["send"] = sys._getframe().f_lineno + 1
        tl.send(dir="E", src=t)
        lines["recv"] = sys._getframe().f_lineno + 1
        tl.recv(dir="W", shape=recv_shape, dtype=recv_dtype)

    return kernel


@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_recv_shape_differs_from_send(mode):
    lines = {}
    with pytest.raises(KernelError) as ei:
        launch(ring_kernel((8, 8), "f32", lines), ring=True, mode=mode)
    assert str(ei.value) == (
        f"PE (1, 0) at {FILE}:{lines['recv']}: recv on port W expects (8,8) f32, but the matching "
        f"send of PE (0, 0) at {FILE}:{lines['send']} sends (64,) f32")
    assert ei.value.pe == (1, 0)


def test_recv_dtype_differs_from_send():
    lines = {}
    with pytest.raises(KernelError) as ei:
        launch(ring_kernel((128,), "f16", lines), ring=True)  # same 256 bytes, other dtype
    assert "recv on port W expects (128,) f16, but the matching send of PE (0, 0)" in str(ei.value)
    assert f"{FILE}:{lines['send']} sends (64,) f32" in str(ei.value)


def test_an_unknown_recv_dtype_names_bool_too():
    """tl.recv takes "bool" (a mask sent with tl.send); its unknown-dtype refusal says so (a
    review: it listed the storage dtypes only)."""
    def kernel(x, *, tl):
        tl.recv("W", (8,), "mask")

    with pytest.raises(KernelError, match=r"unknown dtype 'mask': expected one of f16, bf16, f32, "
                                          r"fp8e4m3, fp8e5m2, int32, or bool \(a mask sent with tl.send\)"):
        launch(kernel, ring=True)


def test_more_sends_than_recvs():
    lines = {}

    def kernel(x, *, tl):
        t = tl.load(x, shape=(64,))
        if tl.program_id(0) == 0:
            tl.send("E", t)
            lines["second"] = sys._getframe().f_lineno + 1
            tl.send("E", t)
        if tl.program_id(0) == 1:
            tl.recv("W", (64,), "f32")

    with pytest.raises(KernelError) as ei:
        launch(kernel)
    assert str(ei.value).startswith(
        f"PE (0, 0) at {FILE}:{lines['second']} sends message #2 on port E, but PE (0, 0) sends 2 "
        f"message(s) on port E and PE (1, 0) posts 1 recv(s) on port W")
    assert ei.value.pe == (0, 0) and ei.value.where.endswith(f"{FILE}:{lines['second']}")


def test_more_recvs_than_sends_names_the_receiver():
    """A review's case: the error named the receiving PE and its line in its text, but its
    ``pe`` was the sender's. ``pe`` and ``where`` are the PE and line the text names: the first
    unmatched message's, sender or receiver."""
    lines = {}

    def kernel(x, *, tl):
        t = tl.load(x, shape=(64,))
        if tl.program_id(0) == 2:
            tl.send("E", t)
        elif tl.program_id(0) == 3:
            tl.recv("W", (64,), "f32")
            lines["second"] = sys._getframe().f_lineno + 1
            tl.recv("W", (64,), "f32")

    with pytest.raises(KernelError) as ei:
        launch(kernel)
    assert str(ei.value).startswith(f"PE (3, 0) at {FILE}:{lines['second']} posts recv #2 on port W")
    assert ei.value.pe == (3, 0) and ei.value.where.endswith(f"{FILE}:{lines['second']}")
    # and says what to do (a new user found it stated the rule only)
    assert str(ei.value).endswith("every send needs exactly one matching recv (send it from PE (2, 0) "
                                  "with tl.send(dir='E', ...), or drop the recv)")


def test_send_to_a_pe_outside_the_grid():
    def kernel(x, *, tl):
        if tl.program_id(0) == 1:
            tl.send("E", tl.load(x, shape=(64,)))

    with pytest.raises(KernelError) as ei:
        launch(kernel, grid=(2, 1))
    msg = str(ei.value)
    assert "PE (2, 0) posts 0 recv(s) on port W (PE (2, 0) ran no program" in msg
    assert msg.endswith("(post a tl.recv(dir='W', ...) on PE (2, 0) for it, or drop the send)")
    # (outside the grid: how to get a smaller ring, a new user asked)
    assert ("the launch grid is (2, 1): the SFR install links PE (2, 0), PE 2 of the cube's 4, so "
            "launch every PE of the cube (grid[0] = 4), or a Context with "
            "overrides={'pes_per_cube': 2})") in msg


def _cube_ring(send, recv):
    def ring(x, *, tl):
        if tl.program_id(0) == 0:
            tl.send(send, tl.load(x, shape=(64,)))
            tl.recv(recv, (64,), "f32")
    return ring


def _cubes(n_cubes, scope):
    ctx = kernbench.Context("default", overrides={"n_cubes": n_cubes, "pes_per_cube": 2})
    ctx.install_sfr(scope, ring=True)
    return ctx, ctx.replicate(np.ones(64, np.float32))


def test_send_to_a_cube_outside_the_grid():
    """Scope cube (and two_level's N/S line) links cubes: a linked PE outside the grid is in a
    cube the launch left out, and the hint names the cubes, not the cube's PEs (a review: it
    said overrides={'pes_per_cube': 8}, which changes nothing)."""
    ctx, x = _cubes(4, "cube")
    with pytest.raises(KernelError) as ei:
        ctx.launch(_cube_ring("E", "W"), (2, 3), x, mode="timing")  # cube 3 not launched
    msg = str(ei.value)
    assert ("the launch grid is (2, 3): the SFR install links PE (0, 3), in cube 3 of the "
            "machine's 4, so launch every cube (grid[1] = 4), or a Context with "
            "overrides={'n_cubes': 3})") in msg
    assert "pes_per_cube" not in msg
    ctx, x = _cubes(3, "cube")  # the fix the hint names
    assert ctx.launch(_cube_ring("E", "W"), (2, 3), x, mode="timing").cycles > 0
    ctx, x = _cubes(4, "two_level")
    with pytest.raises(KernelError, match=r"launch grid is \(1, 3\): the SFR install links PE "
                                          r"\(0, 3\), in cube 3 .*'n_cubes': 3"):
        ctx.launch(_cube_ring("S", "N"), (1, 3), x, mode="timing")


def test_recv_from_a_pe_outside_the_grid():
    lines = []

    def kernel(x, *, tl):
        if tl.program_id(0) == 0:
            lines.append(sys._getframe().f_lineno + 1)
            tl.recv("W", (64,), "f32")

    with pytest.raises(KernelError) as ei:
        launch(kernel, ring=True, grid=(2, 1))  # PE 0's west neighbour is PE 3, not launched
    msg = str(ei.value)
    assert msg.startswith(f"PE (0, 0) at {FILE}:{lines[0]} posts recv #1 on port W, but PE (3, 0) "
                          f"sends 0 message(s) on port E")
    assert "(PE (3, 0) ran no program or returned before any tl call; the launch grid is (2, 1): the SFR install links PE (3, 0)" in msg
    assert ei.value.pe == (0, 0) and ei.value.where.endswith(f"{FILE}:{lines[0]}")


def test_links_are_checked_once_at_trace_and_the_tables_kept(monkeypatch):
    """ctx.trace checks the links (the engine's pairing, each pair's shape and dtype: one pairing
    per launch) and keeps the engine's tables, so the first timing checks nothing again."""
    from kernbench._core import api

    lines = {}
    ctx = kernbench.Context("default", overrides=HW)
    ctx.install_sfr("pe", ring=True)
    x = ctx.replicate(np.ones(64, np.float32))
    with pytest.raises(KernelError, match=r"recv on port W expects \(128,\) f16, but the matching send"):
        ctx.trace(ring_kernel((128,), "f16", lines), (4, 2), x)  # at trace: no timing asked for
    good = ring_kernel((64,), "f32", lines)
    traced = ctx.trace(good, (4, 2), x)
    assert set(traced._prepared) == {"program", "stamp", api._prepared_key(ctx.hw, ctx.neighbours())}  # (program, wiring, arrays)
    want = ctx.launch(good, (4, 2), x, mode="timing").cycles

    def checked_again(*a, **k):
        raise AssertionError("the program was checked again")

    monkeypatch.setattr(api, "_program_tables", checked_again)
    monkeypatch.setattr(api._check, "message_table", checked_again)
    assert traced.time(ctx.hw).cycles == want


@pytest.mark.parametrize("links_agree", [False, True])
def test_a_link_mismatch_is_named_before_a_failed_program_check(monkeypatch, links_agree):
    """The launch's checks run once, the links' pairing after the program's commands: a link
    that does not pair is still the error named when the program check fails too (as when the
    link check ran first), and the program check's own error when the links agree."""
    from kernbench._core import api

    def failing(*a, **k):
        raise ValueError("the program check failed")

    monkeypatch.setattr(api, "_program_tables", failing)
    kernel = ring_kernel((64,) if links_agree else (8, 8), "f32", {})
    with pytest.raises((KernelError, ValueError)) as ei:
        launch(kernel, ring=True, mode="timing")
    if links_agree:
        assert str(ei.value) == "the program check failed"
    else:
        assert isinstance(ei.value, KernelError) and "recv on port W expects (8,8) f32" in str(ei.value)


@pytest.mark.parametrize("scope, ring, pe, port, says", [
    ("pe", False, 0, "W", "the line is open at its ends: ring=True closes it into a ring; scope 'cube' links "
                          "PE 0 of each cube across cubes"),
    ("pe", True, 0, "N", "N and S are wired only by scope 'two_level'"),
    ("cube", True, 1, "E", "scope 'cube' wires PE 0 of each cube only; scope 'pe' wires the PEs of a cube on "
                           "E/W (ring=True wires the line's ends too)"),
    ("two_level", True, 0, "W", "two_level's E/W lines inside the cubes stay open"),
    ("two_level", True, 1, "S", "two_level wires N and S of PE 0 of each cube only"),
])
def test_an_unwired_port_says_what_would_wire_it(scope, ring, pe, port, says):
    """A review found one fixed hint for every scope and port (pointing an N/S send to scope
    'cube', and a PE 1 under scope 'cube' with a ring to the ring it had)."""
    def kernel(x, *, tl):
        if tl.program_id(0) == pe and tl.program_id(1) == 0:
            tl.send(dir=port, src=tl.zeros((8,), "f32"))

    with pytest.raises(KernelError, match=re.escape(f"PE ({pe}, 0) at ") + ".*" + re.escape(says)):
        launch(kernel, scope=scope, ring=ring)


def test_direction_as_a_numpy_integer():
    """docs/language.md: a direction is a name, a Port, or its number 0-3; a number computed
    with numpy is one (a review: np.int64(0) was refused as an unknown direction)."""
    def ring(x, *, tl):
        v = tl.load(x, shape=(64,))
        tl.send(np.int64(0), v)  # E
        r = tl.recv(np.int32(1), (64,), "f32")  # W
        tl.store(x, r * 2.0)

    ctx = kernbench.Context("default", overrides=HW)
    ctx.install_sfr("pe", ring=True)
    x = ctx.replicate(np.arange(64, dtype=np.float32))
    ctx.launch(ring, (4, 2), x)
    np.testing.assert_array_equal(ctx.read(x, (1, 0)), np.arange(64, dtype=np.float32) * 2)
    with pytest.raises(KernelError, match=r"send: unknown link direction np.int64\(4\)|"
                                          r"send: unknown link direction 4"):
        ctx.launch(lambda x, *, tl: tl.send(np.int64(4), tl.load(x, shape=(64,))), (4, 2), x)


@pytest.mark.parametrize("dtype", ["handle", np.array([1, 2]), np.float32(7.0)])
def test_a_value_given_as_a_recv_dtype_is_an_unknown_dtype(dtype):
    """A review: recv's bool check ran ``dtype == "bool"``: a handle's == is a tl call (an 'eq'
    error), an array's has no truth value (numpy's ValueError), and a numpy value was taken
    as its type."""
    def kernel(x, *, tl):
        v = tl.load(x, shape=(64,))
        tl.send("E", v)
        tl.recv("W", (64,), v if isinstance(dtype, str) else dtype)

    with pytest.raises(KernelError, match=r"PE \(0, 0\) at .*: unknown dtype .*expected one of f16"):
        launch(kernel, ring=True, mode="timing")
