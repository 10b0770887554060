"""A kernel whose sends and recvs wait on each other in a cycle: the engine's DeadlockError,
naming every blocked unit by PE (pe, cube) and the kernel line of its command."""
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
