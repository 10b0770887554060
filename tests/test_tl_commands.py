"""What each tl call emits: opcode, unit, sizes, operands, and what emits nothing.

Traced in timing mode (shapes only) and read from ``LaunchResult.program``: the command stream
the engine times. Sizes follow the command vocabulary in kernbench/common/pe_commands.py.
"""
import sys

import numpy as np
import pytest

import kernbench
from kernbench.common.pe_commands import Opcode, TensorHandle, Unit, VecOp, Port

HW = {"n_cubes": 1, "pes_per_cube": 2}


def trace(body, allocs=(("f16", (64, 64)),), sfr=None, grid=(1, 1)):
    """Launch ``body(tl, *ptrs)`` in timing mode; return (PE 0's commands, result, tensor bytes)."""
    ctx = kernbench.Context("default", overrides=HW)
    if sfr:
        ctx.install_sfr(sfr, ring=True)
    ptrs = [ctx.empty(shape, dt) for dt, shape in allocs]

    def kernel(*ptrs, tl):
        body(tl, *ptrs)

    r = ctx.launch(kernel, grid, *ptrs, mode="timing")
    p = r.program
    tb = p.tensor_bytes[p.tensor_offsets[0]:p.tensor_offsets[1]]
    return p.pe_commands(0), r, tb


def test_load_and_store_move_numel_times_itemsize():
    def body(tl, x, o):
        t = tl.load(x, shape=(64, 64), dtype="f16")
        tl.store(o, tl.cast(t, "f32"))  # f32 tile into an f16 allocation: 2 bytes per element

    c, _, tb = trace(body, (("f16", (64, 64)), ("f16", (64, 64))))
    assert [int(o) for o in c["opcode"]] == [Opcode.LOAD, Opcode.VEC, Opcode.STORE]
    assert c["unit"][0] == Unit.DMA and c["unit"][2] == Unit.DMA
    assert c["nbytes"][0] == 64 * 64 * 2 and tb[c["dst"][0]] == 64 * 64 * 2
    assert c["nbytes"][2] == 64 * 64 * 2  # the allocation's itemsize, not the f32 tile's
    assert c["src0"][2] == c["dst"][1]


def test_strided_load_moves_only_the_block():
    def body(tl, x):
        tl.load(x + 16 * 2, shape=(64, 16), dtype="f16", stride=64)

    c, _, _ = trace(body)
    assert c["nbytes"][0] == 64 * 16 * 2


@pytest.mark.parametrize("dtype,esize", [("f16", 2), ("bf16", 2), ("fp8e4m3", 1), ("fp8e5m2", 1), ("f32", 4)])
def test_dot_sizes_and_esize(dtype, esize):
    def body(tl, a, b):
        x = tl.load(a, shape=(64, 128))
        y = tl.load(b, shape=(128, 32))
        tl.dot(x, y)

    c, r, tb = trace(body, ((dtype, (64, 128)), (dtype, (128, 32))))
    d = c[2]
    assert int(d["opcode"]) == Opcode.DOT and int(d["unit"]) == Unit.GEMM
    assert (int(d["m"]), int(d["n"]), int(d["k"]), int(d["esize"])) == (64, 32, 128, esize)
    assert (d["src0"], d["src1"]) == (c["dst"][0], c["dst"][1])
    assert tb[d["dst"]] == 4 * 64 * 32  # f32 accumulators
    assert r.label(2) == f"dot (64,128)x(128,32) {dtype}"


def test_elementwise_counts_output_elements_after_broadcasting():
    def body(tl, x):
        t = tl.load(x, shape=(64, 64))
        m = tl.max(t, axis=-1)
        t - m  # (64,64) - (64,1): 4096 outputs
        t * 0.5  # scalar: an immediate, no tensor
        -t

    c, _, tb = trace(body)
    sub, mul, neg = c[2], c[3], c[4]
    assert int(sub["sub"]) == VecOp.SUB and sub["n"] == 4096
    assert (sub["src0"], sub["src1"]) == (c["dst"][0], c["dst"][1])
    assert int(mul["sub"]) == VecOp.MUL and mul["src1"] == -1 and mul["src0"] == c["dst"][0]
    assert int(neg["sub"]) == VecOp.COPY
    assert tb[sub["dst"]] == 4096 * 2  # f16 output
    assert len(c) == 5  # the immediate 0.5 made no tensor and no command


@pytest.mark.parametrize("name,cls", [("exp", VecOp.EXP), ("log", VecOp.LOG), ("sqrt", VecOp.SQRT),
                                      ("rsqrt", VecOp.RSQRT), ("abs", VecOp.COPY)])
def test_unary_cost_classes(name, cls):
    c, _, _ = trace(lambda tl, x: getattr(tl, name)(tl.load(x, shape=(64, 64))))
    assert int(c["sub"][1]) == cls and c["n"][1] == 4096 and int(c["unit"][1]) == Unit.VECTOR


def test_where_reads_three_tensors_and_full_reads_none():
    def body(tl, x):
        t = tl.load(x, shape=(64, 64))
        z = tl.zeros((64, 64), "f16")
        tl.where(t > z, t, z)
        tl.full((8, 8), 2.0)

    c, _, tb = trace(body)
    fill, cmp_, sel, fill2 = c[1], c[2], c[3], c[4]
    assert int(fill["sub"]) == VecOp.FILL and fill["src0"] == -1
    assert int(cmp_["sub"]) == VecOp.COMPARE and tb[cmp_["dst"]] == 4096  # bool: 1 byte
    assert int(sel["sub"]) == VecOp.SELECT
    assert (sel["src0"], sel["src1"], sel["src2"]) == (cmp_["dst"], c["dst"][0], fill["dst"])
    assert fill2["n"] == 64 and tb[fill2["dst"]] == 64 * 4


@pytest.mark.parametrize("shape,axis,mnk,out", [
    ((64, 128), -1, (64, 128, 1), (64, 1)),  # row reduction: inner 1
    ((64, 128), 0, (1, 64, 128), (1, 128)),  # leading axis: lane-parallel
    ((4, 8, 16), 1, (4, 8, 16), (4, 1, 16)),
    ((64, 128), None, (1, 64 * 128, 1), (1, 1)),  # axis=None: one row of every element
    ((8, 100, 1), 1, (8, 100, 1), (8, 1, 1)),  # not the last axis, but inner 1: a row reduction
])
def test_reduce_outer_reduced_inner(shape, axis, mnk, out):
    seen = {}

    def body(tl, x):
        seen["h"] = tl.sum(tl.load(x, shape=shape), axis=axis)

    c, _, tb = trace(body, (("f32", shape),))
    r = c[1]
    assert int(r["opcode"]) == Opcode.REDUCE and int(r["sub"]) == VecOp.ADD
    assert (int(r["m"]), int(r["n"]), int(r["k"])) == mnk
    assert seen["h"].shape == out and tb[r["dst"]] == 4 * mnk[0] * mnk[2]


def test_softmax_is_five_commands():
    c, r, _ = trace(lambda tl, x: tl.softmax(tl.load(x, shape=(64, 64))))
    kinds = [(int(o), int(s)) for o, s in zip(c["opcode"][1:], c["sub"][1:])]
    assert kinds == [(Opcode.REDUCE, VecOp.MAX), (Opcode.VEC, VecOp.SUB), (Opcode.VEC, VecOp.EXP),
                     (Opcode.REDUCE, VecOp.ADD), (Opcode.VEC, VecOp.DIV)]
    assert [r.label(i).split()[0] for i in range(1, 6)] == ["max-reduce", "sub", "exp", "sum-reduce", "div"]


def test_views_trans_reshape_and_noop_cast_emit_nothing():
    seen = {}

    def body(tl, x):
        t = tl.load(x, shape=(64, 64))
        v = TensorHandle(id=t.id, addr=t.addr, shape=(32, 128), dtype=t.dtype, nbytes=t.nbytes)
        seen["ids"] = [t.id, tl.trans(t).id, t.T.id, tl.reshape(t, (4096,)).id, v.id,
                       tl.cast(t, "f16").id]
        seen["T"] = t.T.shape
        tl.exp(v)

    c, _, _ = trace(body)
    assert len(c) == 2  # the load and the exp
    assert len(set(seen["ids"])) == 1
    assert c["src0"][1] == c["dst"][0]  # the exp of the view reads the load's tensor
    assert seen["T"] == (64, 64)


def test_links_use_the_port_units_and_after_sets_src0():
    def body(tl, x):
        t = tl.load(x, shape=(64, 64))
        tl.send(dir="E", src=t)
        tl.recv(dir="W", shape=(64, 64), dtype="f16", after=t)
        tl.recv("W", (8,), "f32")
        f = tl.full((8,), 1.0)
        tl.send("E", f)
        tl.send("W", f)
        tl.recv(dir="E", shape=(8,), dtype="f32")

    c, _, _ = trace(body, sfr="pe", grid=(2, 1))
    send, recv, recv2 = c[1], c[2], c[3]
    assert int(c["unit"][6]) == Unit.TX_W and int(c["unit"][7]) == Unit.RX_E
    assert int(send["unit"]) == Unit.TX_E and send["port"] == Port.E and send["nbytes"] == 8192
    assert int(recv["unit"]) == Unit.RX_W and recv["src0"] == c["dst"][0]
    assert recv2["src0"] == -1 and recv2["nbytes"] == 32


def test_command_lines_labels_and_sources_name_the_kernel():
    lines = {}

    def kernel(x, *, tl):
        t = tl.load(x, shape=(64, 64)); lines["load"] = sys._getframe().f_lineno  # noqa: E702
        u = t + t; lines["add"] = sys._getframe().f_lineno  # noqa: E702
        tl.store(x, u)

    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.empty((64, 64), "f16", name="x")
    r = ctx.launch(kernel, (1, 1), x, mode="timing")
    c = r.program.commands
    assert c["line"][0] == lines["load"] and c["line"][1] == lines["add"]
    assert r.label(0) == "load (64,64) f16 from x"
    assert r.label(1) == "add (64,64) f16"
    assert r.label(2) == "store (64,64) f16 to x"
    assert r.source(1) == f"{__file__}:{lines['add']}"


def test_tensor_ids_are_ssa_and_sram_addresses_distinct():
    seen = []

    def body(tl, x):
        t = tl.load(x, shape=(64, 64))
        for _ in range(4):
            t = tl.exp(t)
            seen.append(t)

    c, _, _ = trace(body)
    assert list(c["dst"]) == [0, 1, 2, 3, 4]
    addrs = [h.addr for h in seen]
    assert len(set(addrs)) == 4 and all(a % 64 == 0 for a in addrs)


def test_operators_outside_a_kernel_are_refused():
    h = TensorHandle(id=0, shape=(4,), dtype="f16")
    with pytest.raises(kernbench.KernelError, match="inside a kernel"):
        h + h


def test_silent_programs_emit_nothing():
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.empty((64,), "f16")

    def kernel(x, *, tl):
        if tl.program_id(axis=0) != 0:
            return
        tl.exp(tl.load(x, shape=(64,)))

    r = ctx.launch(kernel, (2, 1), x, mode="timing")
    assert list(np.diff(r.program.cmd_offsets)) == [2, 0]
