"""A handle belongs to the program (PE) and the launch that made it: used anywhere else it is
refused naming both PEs, even when a kernel copies only its eight fields (docs/language.md,
"Ids are unique across PEs and launches")."""
import dataclasses
import os
import sys

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
    assert "tensor of an earlier launch (made on PE (1, 1)" in msg and "used on PE (1, 1)" in msg


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
