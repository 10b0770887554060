"""A tl call's site plan: what the builder keeps per kernel instruction so a command is named
(line, op, shapes, dtypes) without building its site key again.

An instruction may make commands of many shapes (a softmax on full score tiles and on a causal
diagonal's ragged ones, a loop whose tile grows) and two functions may share an instruction
offset (helpers with the same bytecode). Each command must still name its own line, op and
shapes, in both modes, whatever order those calls come in.
"""
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernbench
from kernbench.diag import panel_spec, run_panel
from kernbench.hw import load_hw
from kernbench.language import builder

FILE = os.path.basename(__file__)


def _ctx():
    return kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})


def _lines(fn, *offsets):
    return [fn.__code__.co_firstlineno + k for k in offsets]


def one_instruction(x_ptr, rows, *, tl):
    """For each r in ``rows``: a load of r x 8, then at one instruction each: an add, a row
    max and a dot, on r-row tiles."""
    for r in rows:
        t = tl.load(x_ptr, shape=(r, 8))
        u = t + t
        tl.max(u, axis=-1)
        tl.dot(t, tl.trans(t))


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.integers(1, 24), min_size=1, max_size=60))
def test_each_command_names_its_own_shape_when_an_instruction_alternates(rows):
    """Up to 24 shapes at each instruction, in any order (more than any fixed number of plans
    kept per instruction): every command's row sizes and label are its own call's."""
    ctx = _ctx()
    x = ctx.replicate(np.ones((24, 8), np.float16))
    for mode in ("timing", "functional"):
        r = ctx.launch(one_instruction, (1, 1), x, rows, mode=mode)
        c = r.program.commands
        assert len(c) == 4 * len(rows)
        for j, n in enumerate(rows):
            load, add, mx, dot = (4 * j + k for k in range(4))
            assert r.label(load).startswith(f"load ({n},8) f16 from ")
            assert r.label(add) == f"add ({n},8) f16"
            assert r.label(mx) == f"max-reduce ({n},8) axis 1 f16"
            assert r.label(dot) == f"dot ({n},8)x(8,{n}) f16"
            assert (int(c["m"][dot]), int(c["n"][dot]), int(c["k"][dot])) == (n, n, 8)
            assert int(c["n"][add]) == n * 8
        lines = _lines(one_instruction, 5, 6, 7)
        assert c["line"][1::4].tolist() == [lines[0]] * len(rows)
        assert c["line"][2::4].tolist() == [lines[1]] * len(rows)
        assert c["line"][3::4].tolist() == [lines[2]] * len(rows)


def helper_a(tl, t):
    return t * t


def helper_b(tl, t):
    return t * t


def test_functions_sharing_an_instruction_offset_keep_their_own_lines():
    """helper_a and helper_b have the same bytecode: their multiplications sit at the same
    instruction offset of two code objects. Called in turn, on the same shape and then on
    alternating ones, each command names its own function's line."""
    assert helper_a.__code__.co_code == helper_b.__code__.co_code
    line_a, line_b = _lines(helper_a, 1)[0], _lines(helper_b, 1)[0]
    order = [0, 1, 1, 0, 1, 0, 0, 1] * 3

    def kernel(x_ptr, *, tl):
        for j, which in enumerate(order):
            t = tl.load(x_ptr, shape=(1 + j % 3, 8))
            (helper_b if which else helper_a)(tl, t)

    ctx = _ctx()
    x = ctx.replicate(np.ones((4, 8), np.float32))
    r = ctx.launch(kernel, (1, 1), x, mode="timing")
    muls = r.program.commands[1::2]
    assert muls["line"].tolist() == [line_b if w else line_a for w in order]
    assert [r.source(2 * j + 1).endswith(f"{FILE}:{line_b if w else line_a}")
            for j, w in enumerate(order)] == [True] * len(order)
    assert muls["n"].tolist() == [8 * (1 + j % 3) for j in range(len(order))]


@pytest.mark.parametrize("n_kernels", [2, 5])
def test_kernels_of_one_launch_share_sites_not_plans(n_kernels):
    """Launches in a row (each its own site table): the same kernel gives the same rows, with
    shapes that differ from one launch to the next, so a plan kept past its launch would name a
    stale shape."""
    ctx = _ctx()
    x = ctx.replicate(np.ones((24, 8), np.float16))
    for k in range(n_kernels):
        rows = [1 + (k + j) % 7 for j in range(10)]
        r = ctx.launch(one_instruction, (1, 1), x, rows, mode="timing")
        dots = r.program.commands[3::4]
        assert dots["m"].tolist() == rows and dots["n"].tolist() == rows


def test_a_plan_names_the_frame_of_the_call_not_of_the_last_one():
    """Two calls alike (the same op on the same tile) at two lines of one kernel, in turn:
    each command names its own line (a plan belongs to an instruction, not to an op and
    shape)."""
    seen = []

    def kernel(x_ptr, *, tl):
        t = tl.load(x_ptr, shape=(4, 8))
        for _ in range(3):
            seen.append(sys._getframe().f_lineno + 1)
            tl.exp(t)
            seen.append(sys._getframe().f_lineno + 1)
            tl.exp(t)

    ctx = _ctx()
    x = ctx.replicate(np.ones((4, 8), np.float32))
    r = ctx.launch(kernel, (1, 1), x, mode="timing")
    assert r.program.commands["line"][1:].tolist() == seen


@pytest.mark.parametrize("cap", [1, 2, 5])
def test_plans_dropped_past_the_cap_make_the_same_commands(monkeypatch, cap):
    """Past PLANS_MAX plans of a kind the builder drops them and makes them again as met (so a
    kernel compiling a function per call keeps no plan per call): the same commands, sites and
    labels as with every plan kept, in both modes."""
    rows = [1 + (7 * j) % 11 for j in range(40)]
    ctx = _ctx()
    x = ctx.replicate(np.ones((24, 8), np.float16))

    def launch(mode):
        r = ctx.launch(one_instruction, (1, 1), x, rows, mode=mode)
        return (r.program.commands.tobytes(), [r.label(i) for i in range(r.program.n_commands)],
                [r.source(i) for i in range(r.program.n_commands)])

    kept = {mode: launch(mode) for mode in ("timing", "functional")}
    monkeypatch.setattr(builder, "PLANS_MAX", cap)
    for mode in ("timing", "functional"):
        assert launch(mode) == kept[mode]


def _every_name(r):
    n = r.program.n_commands
    return (r.cycles, r.program.commands.tobytes(), [r.label(i) for i in range(n)],
            [r.source(i) for i in range(0, n, 7)])


@pytest.mark.parametrize("preset, panel, causal", [
    ("default", "single_user_prefill", False), ("default", "single_user_prefill", True),
    ("mesh8", "multi_user_prefill", True), ("default", "single_user_decode", True),
    ("mesh8", "multi_user_decode", False)])
def test_shipped_kernels_name_their_commands_alike_with_every_plan_made_again(monkeypatch, preset,
                                                                             panel, causal):
    """The shipped kernels (diag panels, 2K context; causal prefill's softmax alternates shapes
    at one instruction) with the plans kept, and with PLANS_MAX = 1 (every plan but the last
    dropped: nearly every call builds its site key again, the slow path): the same cycles,
    command bytes, labels and sources."""
    hw = load_hw(preset)
    spec = panel_spec(panel, hw, shape="llama70b", context=2048, causal=causal)
    kept = _every_name(run_panel(spec, hw).result)
    monkeypatch.setattr(builder, "PLANS_MAX", 1)
    assert _every_name(run_panel(spec, hw).result) == kept


def _loop_case():
    from test_tl_range import loop_kernels

    return loop_kernels()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.deferred(_loop_case))
def test_generated_loop_kernels_name_their_commands_alike_with_every_plan_made_again(case):
    """The generated tl.range kernels (tests/test_tl_range.py), replayed, with the plans kept
    and with PLANS_MAX = 1: the same launch, command for command."""
    from test_tl_range import _launch, make_loop_kernel

    k, args = make_loop_kernel(*case)
    kept = _every_name(_launch(k, args, "on"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builder, "PLANS_MAX", 1)
        assert _every_name(_launch(k, args, "on")) == kept


def test_a_generated_kernel_of_many_lines_names_each_commands_line():
    """Each first call at a line finds it in the code's line table, read once a trace by
    bisection (a review: Python's own lookup scans the table from its start, so a generated
    kernel of N distinct lines traced in N**2). Lines of one-line statements, of a call split
    over lines, of blank and comment lines between, and a helper's, against the source."""
    body, want = [], []
    line = 3  # (def, load)
    for i in range(600):
        if i % 7 == 3:
            body.append("    # a comment\n\n")
            line += 2
        if i % 11 == 5:
            body.append(f"    a = tl.maximum(\n        a,\n        a * {i}.0)\n")
            want += [line + 2, line]  # (the mul on its own line, then the maximum's first)
            line += 3
        else:
            body.append(f"    a = a + {i}.0\n")
            want.append(line)
            line += 1
    src = ("def k(x_ptr, *, tl):\n    a = tl.load(x_ptr, shape=(8,), dtype='f32')\n"
           + "".join(body) + "    tl.store(x_ptr, a)\n")
    ns = {}
    exec(compile(src, "generated_kernel.py", "exec"), ns)
    ctx = _ctx()
    x = ctx.replicate(np.ones(8, np.float32))
    for mode in ("timing", "functional"):
        r = ctx.launch(ns["k"], (1, 1), x, mode=mode)
        lines = r.program.columns("line")[0].tolist()
        assert lines == [2] + want + [line], mode
