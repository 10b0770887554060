"""A kernel whose sends and recvs wait on each other in a cycle: the engine's DeadlockError,
naming every blocked unit by PE (pe, cube) and the kernel line of its command."""
import re
import os
import sys

import pytest

import kernbench
from kernbench import DeadlockError

HW = {"n_cubes": 2, "pes_per_cube": 4}
FILE = os.path.basename(__file__)


@pytest.fixture
def ctx():
    c = kernbench.Context("default", overrides=HW)
    c.install_sfr("pe", ring=True)
    return c


def test_deadlock_names_pe_coordinates_and_kernel_lines(ctx):
    # Every PE waits for its west neighbour before sending east: a ring of waits.
    lines = {}

    def kernel(x, *, tl):
        lines["recv"] = sys._getframe().f_lineno + 1
        got = tl.recv(dir="W", shape=(64,), dtype="f32")
        lines["send"] = sys._getframe().f_lineno + 1
        tl.send(dir="E", src=got)

    x = ctx.empty((64,), "f32")
    with pytest.raises(DeadlockError) as ei:
        ctx.launch(kernel, (4, 1), x)
    msg = str(ei.value)
    assert msg.startswith("deadlock at cycle 0")
    assert (f"PE (2, 0) RX_W: recv from W (64,) f32 ({FILE}:{lines['recv']}) waits for data; its sender "
            f"PE (1, 0) has not started the matching send") in msg
    assert (f"PE (2, 0) TX_E: send to E (64,) f32 ({FILE}:{lines['send']}) waits for the result of "
            f"recv from W (64,) f32 ({FILE}:{lines['recv']})") in msg
    blocked = {(b["pe"], b["unit"]) for b in ei.value.blocked}
    assert len(blocked) == 8  # 4 PEs x (RX_W, TX_E)


def test_deadlock_in_timing_mode_too(ctx):
    def kernel(x, *, tl):
        got = tl.recv(dir="W", shape=(64,), dtype="f32")
        tl.send(dir="E", src=got)

    with pytest.raises(DeadlockError):
        ctx.launch(kernel, (4, 1), ctx.empty((64,), "f32"), mode="timing")


def test_deadlock_shows_the_cycle_of_waits_and_where(ctx):
    # The same ring of waits: each PE's send waits for its recv, which waits for the west
    # neighbour's send. The cycle through PE 0's RX_W closes over the four PEs of cube 0.
    lines = {}

    def kernel(*, tl):
        lines["recv"] = sys._getframe().f_lineno + 1
        got = tl.recv(dir="W", shape=(64,), dtype="f32")
        tl.send(dir="E", src=got)

    with pytest.raises(DeadlockError) as ei:
        ctx.launch(kernel, (4, 1))
    e = ei.value
    assert e.pe == (0, 0) and e.where == f"{__file__}:{lines['recv'] + 1}"  # PE 0's TX_E is listed first
    assert all(b["where"].startswith(__file__) and len(b["pe_coords"]) == 2 for b in e.blocked)
    chain = ("Cycle of waits: PE (0, 0) TX_E -> PE (0, 0) RX_W -> PE (3, 0) TX_E -> PE (3, 0) RX_W -> "
             "PE (2, 0) TX_E -> PE (2, 0) RX_W -> PE (1, 0) TX_E -> PE (1, 0) RX_W -> PE (0, 0) TX_E")
    assert chain in str(e)
    # no recv is gated: the fix is the kernel's order, one PE sending before it receives
    assert str(e).count("\nWhat would remove it: ") == 1
    assert (f"What would remove it: send to E (64,) f32 ({FILE}:{lines['recv'] + 1}) sends what a recv "
            f"on this cycle brings in, as every send on it does, so no message can start: have one PE "
            f"send before it receives") in str(e)


def test_a_recv_gated_by_after_on_the_cycle_is_named_as_the_fix(ctx):
    # Each PE posts its W recv only after its E recv, whose sender sends only what its own W
    # recv brought: posting the W recv without after= breaks the cycle.
    def kernel(*, tl):
        z = tl.recv("E", (64,), "f32")
        r = tl.recv("W", (64,), "f32", after=z)
        tl.send("E", tl.full((64,), 1.0))
        tl.send("W", r)

    ctx2 = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    ctx2.install_sfr("pe", ring=True)
    with pytest.raises(DeadlockError) as ei:
        ctx2.launch(kernel, (2, 1))
    msg = str(ei.value)
    assert "Cycle of waits:" in msg
    assert msg.count("What would remove it: posting recv from W (64,) f32") == 1
    assert "would remove this cycle (another may remain: the launch's next error would name it)" in msg


def test_a_deadlock_of_many_units_lists_the_first_and_keeps_every_one():
    """A review: a ring of 65,536 PEs waiting on each other made a 26 MB message. The message
    lists 64 blocked units and the cycle's first and last links; the error's `blocked` has all."""
    c = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 100})
    c.install_sfr("pe", ring=True)

    def kernel(*, tl):
        tl.send(dir="E", src=tl.recv(dir="W", shape=(16,), dtype="f32"))

    with pytest.raises(DeadlockError) as ei:
        c.launch(kernel, (100, 2), mode="timing")
    e, text = ei.value, str(ei.value)
    assert len(e.blocked) == 400  # (a TX and an RX unit a PE)
    assert "... and 336 more blocked units (every one in the error's .blocked)" in text
    assert text.count("\n  PE (") == 64  # (each listed unit on its own line)
    # (the cycle of waits: one cube's ring, 100 PEs x 2 units: 32 links, then the last 2)
    assert "... 166 more ..." in text and len(text) < 20_000


def test_an_operand_queued_behind_the_cycle_on_its_unit_is_named_as_the_fix():
    """A review: a send whose value needs no recv, computed on VECTOR behind an op that waits for
    one (the unit runs in program order), was told to 'send before it receives'. The fix named
    is the unit's order: issue the independent op first; with the two lines swapped the launch
    runs. A value that does need the recv keeps the ring's fix."""
    ctx2 = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    ctx2.install_sfr("pe", ring=True)

    def queued(*, tl):
        r = tl.recv("W", (64,), "f32")
        y = r * 2.0  # noqa: F841 (waits for the recv)
        x = tl.full((64,), 1.0, "f32") + 1.0
        tl.send("E", x)

    def swapped(*, tl):
        r = tl.recv("W", (64,), "f32")
        x = tl.full((64,), 1.0, "f32") + 1.0
        y = r * 2.0  # noqa: F841
        tl.send("E", x)

    def forwards(*, tl):
        r = tl.recv("W", (64,), "f32")
        y = r * 2.0  # noqa: F841
        tl.send("E", r + 1.0)

    with pytest.raises(DeadlockError) as ei:
        ctx2.launch(queued, (2, 1), mode="timing")
    fix = [x for x in str(ei.value).splitlines() if x.startswith("What would remove it: ")]
    assert len(fix) == 1 and re.match(
        rf"What would remove it: add \(64,\) f32 \({FILE}:\d+\), which send to E \(64,\) f32 \({FILE}:\d+\) "
        rf"waits for, is queued on VECTOR behind mul \(64,\) f32 \({FILE}:\d+\), which waits on this cycle: "
        r"issuing it \(and what it reads on that unit\) before that one would remove this cycle \(another "
        r"may remain: the launch's next error would name it\)$", fix[0]), fix
    assert ctx2.launch(swapped, (2, 1), mode="timing").cycles > 0
    with pytest.raises(DeadlockError, match=r"What would remove it: send to E \(64,\) f32 .* sends what a recv "
                                            r"on this cycle brings in"):
        ctx2.launch(forwards, (2, 1), mode="timing")


def test_no_fix_is_named_that_the_kernel_cannot_write_or_that_would_not_work():
    """A review's three cases. A load of the buffer a store before it writes cannot pass that
    store (the value read back would be the old one): the ring's fix stands, the load reading a
    recv through the buffer. A cast cannot pass the add it reads: only the dot it needs is named.
    A value whose input is queued behind another blocked unit's head needs two moves: no
    single fix is named rather than a false one."""
    T = 64

    def spill(a_ptr, *, tl):
        r = tl.recv("W", (T,), "f32")
        tl.store(a_ptr, r + 1.0)
        tl.send("E", tl.load(a_ptr, shape=(T,), dtype="f32"))

    def reads_head(a_ptr, *, tl):
        a = tl.load(a_ptr, shape=(T, T), dtype="f16")
        r = tl.recv("W", (T, T), "f16")
        y = tl.dot(r, r)  # noqa: F841 (GEMM: waits for the recv)
        f = tl.dot(a, a)  # GEMM: needs no recv, queued behind y
        g = f + 1.0  # VECTOR: waits for f
        tl.send("E", tl.cast(g, "f16"))  # (the cast reads g: it cannot pass it)

    def two_moves(a_ptr, *, tl):
        a = tl.load(a_ptr, shape=(T, T), dtype="f16")
        r = tl.recv("W", (T, T), "f16")
        z = r * 2.0  # noqa: F841 (VECTOR: waits for the recv)
        y = tl.dot(r, r)  # noqa: F841
        f = tl.dot(a, a)
        tl.send("E", tl.cast(f + 1.0, "f16"))

    def fixes(kernel, dtype):
        ctx2 = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
        ctx2.install_sfr("pe", ring=True)
        with pytest.raises(DeadlockError) as ei:
            ctx2.launch(kernel, (2, 1), ctx2.empty((T * T,), dtype), mode="timing")
        return [x for x in str(ei.value).splitlines() if x.startswith("What would remove it: ")]

    got = fixes(spill, "f32")
    assert len(got) == 1 and "sends what a recv on this cycle brings in" in got[0], got
    got = fixes(reads_head, "f16")
    assert len(got) == 1 and re.match(rf"What would remove it: dot \(64,64\)x\(64,64\) f16 \({FILE}:\d+\), which "
                                      r"add \(64,64\) f32", got[0]), got
    assert fixes(two_moves, "f16") == []


def test_a_send_of_a_load_gated_on_the_recv_is_told_to_drop_the_gate():
    """A breaker: a send's value is a load that waits for the recv only through after=; its value
    is memory's, not the recv's, so the ring's 'send first' was false. The fix named is the
    gate's, and without it the launch runs."""
    ctx2 = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    ctx2.install_sfr("pe", ring=True)
    a = ctx2.empty((64,), "f32")

    def gated(a, *, tl):
        r = tl.recv("W", (64,), "f32")
        tl.send("E", tl.load(a, shape=(64,), dtype="f32", after=r))

    def ungated(a, *, tl):
        tl.recv("W", (64,), "f32")
        tl.send("E", tl.load(a, shape=(64,), dtype="f32"))

    with pytest.raises(DeadlockError) as ei:
        ctx2.launch(gated, (2, 1), a, mode="timing")
    fix = [x for x in str(ei.value).splitlines() if x.startswith("What would remove it: ")]
    assert len(fix) == 1 and fix[0].startswith("What would remove it: issuing load (64,) f32 from ")
    assert "earlier (without after=, or after a tensor that does not wait on this exchange)" in fix[0]
    assert ctx2.launch(ungated, (2, 1), a, mode="timing").cycles > 0
