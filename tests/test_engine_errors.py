"""Bad input and stuck launches: every error names the PE as (pe, cube), the command and its kernel
line, and what was expected. Malformed arrays raise ValueError before the compiled loop runs.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from engine_helpers import Machine, fill
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernbench._core import simulate
from kernbench.common.errors import DeadlockError, MaxCyclesError, SramCapacityError
from kernbench.common.pe_commands import (
    COMMAND_DTYPE,
    Opcode,
    Program,
    Unit,
    VecOp,
    make_command,
)
from kernbench.hw import SfrInstall, load_hw


@pytest.fixture
def hw2():
    """One cube of two PEs: PE (0, 0) E <-> W PE (1, 0) under scope pe."""
    return load_hw().with_overrides(n_cubes=1, pes_per_cube=2)


def _run(hw, cmds, tensors, g=0, install=None, **kw):
    """Simulate PE g running the raw command tuples ``cmds`` with tensors of ``tensors`` bytes."""
    streams = [None] * hw.n_pes
    streams[g] = (cmds, tensors)
    return simulate(hw, (install or SfrInstall("pe")).neighbours(hw), Program.from_streams(streams), **kw)


def _fill_cmd(dst, line=1):
    return make_command(Opcode.VEC, Unit.VECTOR, sub=VecOp.FILL, dst=dst, n=64, line=line)


# -- malformed commands -------------------------------------------------------------------------

def test_unknown_opcode(hw2):
    with pytest.raises(ValueError, match=r"PE \(1, 0\) command #0 \[opcode 9 \(line 7\)\]: unknown opcode"):
        _run(hw2, [make_command(9, Unit.GEMM, line=7)], [], g=1)
    with pytest.raises(ValueError, match=r"PE \(0, 0\) command #0 \[opcode -1 .*unknown opcode"):
        _run(hw2, [make_command(-1, Unit.GEMM)], [])


@pytest.mark.parametrize("field", ["src0", "src1", "src2", "dst"])
def test_operand_id_out_of_range(hw2, field):
    kw = dict(src0=0, src1=0, dst=1)
    kw[field] = 5  # the PE has two tensors: ids 0 and 1
    cmds = [_fill_cmd(0), make_command(Opcode.DOT, Unit.GEMM, m=1, n=1, k=1, esize=2, line=3, **kw)]
    with pytest.raises(ValueError, match=rf"PE \(0, 0\) command #1 \[dot \(line 3\)\]: {field} tensor id out of range"):
        _run(hw2, cmds, [4, 4])
    kw[field] = -2  # -1 means "none"; below it is out of range
    cmds[1] = make_command(Opcode.DOT, Unit.GEMM, m=1, n=1, k=1, esize=2, line=3, **kw)
    with pytest.raises(ValueError, match=rf"{field} tensor id out of range"):
        _run(hw2, cmds, [4, 4])


@pytest.mark.parametrize(
    "cmd, message",
    [
        (make_command(Opcode.LOAD, Unit.DMA, dst=0, nbytes=0), "byte count must be >= 1"),
        (make_command(Opcode.LOAD, Unit.DMA, dst=0, nbytes=-5), "byte count must be >= 1"),
        (make_command(Opcode.DOT, Unit.GEMM, src0=1, src1=1, dst=0, m=0, n=4, k=4, esize=2), "dot sizes must be >= 1"),
        (make_command(Opcode.DOT, Unit.GEMM, src0=1, src1=1, dst=0, m=4, n=4, k=-1, esize=2), "dot sizes must be >= 1"),
        (make_command(Opcode.DOT, Unit.GEMM, src0=1, src1=1, dst=0, m=4, n=4, k=4, esize=0), "dot element size must be >= 1 byte"),
        (make_command(Opcode.VEC, Unit.VECTOR, sub=VecOp.ADD, dst=0, n=0), "vector element count must be >= 1"),
        (make_command(Opcode.REDUCE, Unit.VECTOR, sub=VecOp.MAX, src0=1, dst=0, m=2, n=0, k=1), "reduction sizes must be >= 1"),
        (make_command(Opcode.REDUCE, Unit.VECTOR, sub=VecOp.MAX, src0=1, dst=0, m=2, n=3, k=0), "reduction sizes must be >= 1"),
        (make_command(Opcode.VEC, Unit.VECTOR, sub=len(VecOp), dst=0, n=4), "unknown vector op"),
        (make_command(Opcode.VEC, Unit.VECTOR, sub=-1, dst=0, n=4), "unknown vector op"),
    ],
)
def test_non_positive_sizes_and_bad_fields(hw2, cmd, message):
    # tensor 1 is produced first (by a fill) so only the field under test is wrong
    prog = [_fill_cmd(1), cmd]
    with pytest.raises(ValueError, match=r"PE \(0, 0\) command #1 \[.*\]: " + message):
        _run(hw2, prog, [16, 16])


@pytest.mark.parametrize(
    "cmd, message",
    [
        (make_command(Opcode.DOT, Unit.GEMM, src0=1, src1=1, dst=0, m=2**40, n=2**40, k=2**40, esize=2),
         r"m \* n \* k must be at most 2\*\*50"),
        (make_command(Opcode.DOT, Unit.GEMM, src0=1, src1=1, dst=0, m=1, n=1, k=2**41, esize=2),
         r"k must be at most 2\*\*40"),
        (make_command(Opcode.DOT, Unit.GEMM, src0=1, src1=1, dst=0, m=4, n=4, k=4, esize=9),
         "dot element size must be at most 8 bytes"),
        (make_command(Opcode.REDUCE, Unit.VECTOR, sub=VecOp.ADD, src0=1, dst=0, m=2**20, n=2**20, k=2**11),
         r"m \* n \* k must be at most 2\*\*50"),
        (make_command(Opcode.VEC, Unit.VECTOR, sub=VecOp.ADD, dst=0, n=2**62), r"n must be at most 2\*\*40"),
        (make_command(Opcode.LOAD, Unit.DMA, dst=0, nbytes=2**41), r"nbytes must be at most 2\*\*40"),
    ],
)
def test_sizes_that_would_overflow_the_cycle_counters(hw2, cmd, message):
    # Without these bounds the int64 arithmetic wrapped: a 2**40-cubed dot cost 0 cycles.
    with pytest.raises(ValueError, match=r"PE \(0, 0\) command #1 \[.*\]: " + message):
        _run(hw2, [_fill_cmd(1), cmd], [16, 16])


def test_largest_sizes_still_simulate_exactly(hw2):
    # a 2**40-byte load: 2**31 bursts of 2 cycles + 150 = 2**32 + 150 (closed-form train)
    r = _run(hw2, [make_command(Opcode.LOAD, Unit.DMA, dst=0, nbytes=2**40)], [2**40])
    assert r.cycles == 2**32 + 150
    # a dot of m*n*k = 2**50: folds = (2**20/32)*(2**20/32) = 2**30, fold = 2**10 + 62:
    # 2**30 * 1086 cycles, flops 2**51
    r = _run(hw2, [_fill_cmd(1), make_command(Opcode.DOT, Unit.GEMM, src0=1, src1=1, dst=0, m=2**20, n=2**20,
                                             k=2**10, esize=2)], [16, 16])
    assert r.cmd_end[1] - r.cmd_start[1] == 2**30 * 1086
    assert r.unit_counters[0, Unit.GEMM]["work"] == 2**51
    with pytest.raises(ValueError, match=r"tensor_bytes must be at most 2\*\*40 \(tensor 0\)"):
        _run(hw2, [_fill_cmd(0)], [2**40 + 1])


def test_negative_tensor_size(hw2):
    with pytest.raises(ValueError, match=r"tensor_bytes must be >= 0 \(tensor 0\)"):
        _run(hw2, [_fill_cmd(0)], [-4])


def test_wrong_array_dtypes(hw2):
    nbr = SfrInstall("pe").neighbours(hw2)
    good = Program.from_streams([([_fill_cmd(0)], [4]), None])
    # a command array of another dtype
    with pytest.raises(ValueError, match="command arrays must have dtype COMMAND_DTYPE, got float64"):
        Program.from_streams([(np.zeros(3), [4]), None])
    bad = Program(good.commands.astype([(n, np.int64) for n in COMMAND_DTYPE.names]), good.cmd_offsets,
                  good.tensor_bytes, good.tensor_pinned, good.tensor_offsets)
    with pytest.raises(ValueError, match="commands must be a 1-D array of dtype COMMAND_DTYPE"):
        simulate(hw2, nbr, bad)
    with pytest.raises(ValueError, match="tensor_bytes must be int64, got int32"):
        simulate(hw2, nbr, Program(good.commands, good.cmd_offsets, good.tensor_bytes.astype(np.int32),
                                   good.tensor_pinned, good.tensor_offsets))
    with pytest.raises(ValueError, match="cmd_offsets must be int64 of length n_pes \\+ 1 = 3, got int32"):
        simulate(hw2, nbr, Program(good.commands, good.cmd_offsets.astype(np.int32), good.tensor_bytes,
                                   good.tensor_pinned, good.tensor_offsets))
    with pytest.raises(ValueError, match="tensor_offsets must be int64 of length n_pes \\+ 1 = 3"):
        simulate(hw2, nbr, Program(good.commands, good.cmd_offsets, good.tensor_bytes, good.tensor_pinned,
                                   good.tensor_offsets[:-1]))
    with pytest.raises(ValueError, match="tensor_offsets must be an int64 numpy array, got list"):
        simulate(hw2, nbr, Program(good.commands, good.cmd_offsets, good.tensor_bytes, good.tensor_pinned,
                                   good.tensor_offsets.tolist()))
    with pytest.raises(ValueError, match="cmd_offsets must rise from 0 to 1"):
        simulate(hw2, nbr, Program(good.commands, np.array([0, 1, 0], np.int64), good.tensor_bytes,
                                   good.tensor_pinned, good.tensor_offsets))
    with pytest.raises(ValueError, match="tensor_pinned must be uint8 with one entry per tensor"):
        simulate(hw2, nbr, Program(good.commands, good.cmd_offsets, good.tensor_bytes,
                                   good.tensor_pinned.astype(bool), good.tensor_offsets))
    with pytest.raises(ValueError, match=r"neighbour table must be integer of shape \(2, 4\)"):
        simulate(hw2, nbr.astype(float), good)
    with pytest.raises(ValueError, match=r"neighbour table must be integer of shape \(2, 4\)"):
        simulate(hw2, nbr[:1], good)


def test_bad_arguments(hw2):
    nbr = SfrInstall("pe").neighbours(hw2)
    good = Program.from_streams([([_fill_cmd(0)], [4]), None])
    with pytest.raises(ValueError, match="detail must be one of \\('train', 'packet'\\), got 'fast'"):
        simulate(hw2, nbr, good, detail="fast")
    for bad in (0, -5, True, 2**62 + 1, 2.5):
        with pytest.raises(ValueError, match=r"max_cycles must be an int in 1..2\*\*62, got "):
            simulate(hw2, nbr, good, max_cycles=bad)
    with pytest.raises(ValueError, match="hw must be a HardwareConfig, got dict"):
        simulate({}, nbr, good)
    with pytest.raises(ValueError, match="program must be a kernbench Program, got tuple"):
        simulate(hw2, nbr, (good.commands,))


def test_unit_not_matching_opcode(hw2):
    cmds = [_fill_cmd(0), make_command(Opcode.DOT, Unit.VECTOR, src0=0, src1=0, dst=1, m=1, n=1, k=1, esize=2, line=4)]
    with pytest.raises(ValueError, match=r"command #1 \[dot \(line 4\)\]: unit does not match the opcode"):
        _run(hw2, cmds, [4, 4])
    # a send's unit must be the TX side of its port
    cmds = [_fill_cmd(0), make_command(Opcode.SEND, Unit.TX_W, port=0, src0=0, nbytes=4)]
    with pytest.raises(ValueError, match=r"\[send to E \(line 0\)\]: unit does not match the opcode \(and port\)"):
        _run(hw2, cmds, [4])
    cmds = [_fill_cmd(0), make_command(Opcode.SEND, Unit.TX_E, port=7, src0=0, nbytes=4)]
    with pytest.raises(ValueError, match=r"link direction must be 0..3 \(E, W, N, S\)"):
        _run(hw2, cmds, [4])


def test_tensor_read_before_it_is_produced(hw2):
    cmds = [make_command(Opcode.VEC, Unit.VECTOR, sub=VecOp.EXP, src0=1, dst=0, n=4, line=11), _fill_cmd(1, line=12)]
    with pytest.raises(ValueError, match=r"PE \(0, 0\) command #0 \[vec \(line 11\)\]: src0 reads a tensor produced later in the stream"):
        _run(hw2, cmds, [16, 16])
    # reading its own result
    cmds = [make_command(Opcode.VEC, Unit.VECTOR, sub=VecOp.EXP, src0=0, dst=0, n=4)]
    with pytest.raises(ValueError, match="src0 reads a tensor produced later in the stream"):
        _run(hw2, cmds, [16])


def test_tensor_never_produced(hw2):
    cmds = [_fill_cmd(0), make_command(Opcode.VEC, Unit.VECTOR, sub=VecOp.ADD, src0=0, src1=1, dst=2, n=4, line=5)]
    with pytest.raises(ValueError, match=r"command #1 \[vec \(line 5\)\]: src1 reads a tensor no command produces"):
        _run(hw2, cmds, [16, 16, 16])


def test_tensor_produced_twice(hw2):
    cmds = [_fill_cmd(0, line=1), _fill_cmd(0, line=2)]
    with pytest.raises(ValueError, match=r"PE \(0, 0\) command #0 \[vec \(line 1\)\]: its result tensor is produced twice \(1 more like it\)"):
        _run(hw2, cmds, [16])


def test_required_operands_and_results(hw2):
    with pytest.raises(ValueError, match=r"\[dot \(line 0\)\]: src0 is required by this opcode"):
        _run(hw2, [make_command(Opcode.DOT, Unit.GEMM, dst=0, m=1, n=1, k=1, esize=2)], [4])
    with pytest.raises(ValueError, match=r"\[load \(line 0\)\]: dst is required by this opcode"):
        _run(hw2, [make_command(Opcode.LOAD, Unit.DMA, nbytes=4)], [])
    with pytest.raises(ValueError, match=r"\[store \(line 0\)\]: this opcode has no result"):
        _run(hw2, [_fill_cmd(0), make_command(Opcode.STORE, Unit.DMA, src0=0, dst=1, nbytes=4)], [4, 4])


# -- links --------------------------------------------------------------------------------------

def test_send_on_a_port_with_no_neighbour():
    hw = load_hw()
    m = Machine(hw)  # scope pe, open line: PE 7 of each cube has nothing east
    x = fill(m[7, 2], 64)
    m[7, 2].send("E", x, 64, line=21)
    with pytest.raises(ValueError, match=r"PE \(7, 2\) command #1 \[send to E \(line 21\)\] sends on port E, "
                                         r"which has no neighbour under the installed SFR"):
        m.run()
    m = Machine(hw)
    m[0, 1].recv("W", 64, line=4)
    with pytest.raises(ValueError, match=r"PE \(0, 1\) command #0 \[recv from W \(line 4\)\] receives on port W, which has no neighbour"):
        m.run()
    # scope cube: only PE 0 of each cube is wired
    m = Machine(hw, SfrInstall("cube", ring=True))
    x = fill(m[3, 0], 64)
    m[3, 0].send("W", x, 64)
    with pytest.raises(ValueError, match=r"PE \(3, 0\) .* sends on port W, which has no neighbour"):
        m.run()
    # N and S are named but no install wires them
    m = Machine(hw)
    x = fill(m[1, 0], 64)
    m[1, 0].send("N", x, 64)
    with pytest.raises(ValueError, match=r"PE \(1, 0\) .*\[send to N .* sends on port N, which has no neighbour"):
        m.run()


def test_send_recv_count_mismatch():
    m = Machine(load_hw())
    for _ in range(2):
        x = fill(m[2, 1], 64)
        m[2, 1].send("E", x, 64)
    m[3, 1].recv("W", 64)
    with pytest.raises(ValueError, match=r"PE \(2, 1\) sends 2 message\(s\) on port E but PE \(3, 1\) posts 1 "
                                         r"recv\(s\) on port W: every send needs exactly one matching recv"):
        m.run()
    # a recv with no send at all
    m = Machine(load_hw())
    m[3, 1].recv("W", 64)
    with pytest.raises(ValueError, match=r"PE \(2, 1\) sends 0 message\(s\) on port E but PE \(3, 1\) posts 1 recv"):
        m.run()


def test_send_recv_byte_mismatch():
    m = Machine(load_hw())
    x = fill(m[0, 0], 64)
    m[0, 0].send("E", x, 64, line=8)
    m[0, 0].send("E", x, 100, line=9)
    m[1, 0].recv("W", 64, line=30)
    m[1, 0].recv("W", 128, line=31)
    # the second pair disagrees (the k-th send meets the k-th recv)
    with pytest.raises(ValueError, match=r"PE \(0, 0\) \[send to E \(line 9\)\] sends 100 bytes but the matching recv "
                                         r"on PE \(1, 0\) \[recv from W \(line 31\)\] expects 128 bytes"):
        m.run()


def test_asymmetric_neighbour_table(hw2):
    good = Program.from_streams([([_fill_cmd(0)], [4]), None])
    nbr = SfrInstall("pe").neighbours(hw2)
    nbr[1, 1] = -1  # PE 0 reaches PE 1 eastward, PE 1 does not reach back west
    with pytest.raises(ValueError, match=r"SFR install is not symmetric: PE \(0, 0\) port E reaches PE \(1, 0\), "
                                         r"whose W port does not reach back"):
        simulate(hw2, nbr, good)
    nbr = SfrInstall("pe").neighbours(hw2)
    nbr[0, 0] = 2  # no PE 2
    with pytest.raises(ValueError, match="neighbour table entries must be -1 or a PE index"):
        simulate(hw2, nbr, good)
    # a wide entry must not wrap into a valid index when the table is narrowed to int32
    wide = SfrInstall("pe").neighbours(hw2).astype(np.int64)
    wide[0, 0] = 2**32 + 1  # int32 would read PE 1
    with pytest.raises(ValueError, match="neighbour table entries must be -1 or a PE index"):
        simulate(hw2, wide, good)


# -- stuck launches -----------------------------------------------------------------------------

def _recv_first_ring(n=4):
    """Every PE of a closed ring receives from W first and then forwards the received tensor E:
    no one ever sends."""
    hw = load_hw().with_overrides(n_cubes=1, pes_per_cube=n)
    m = Machine(hw, SfrInstall("pe", ring=True))
    for p in range(n):
        t = m[p, 0].recv("W", 256, line=10)
        m[p, 0].send("E", t, 256, line=11)
    return m


@pytest.mark.parametrize("detail", ["train", "packet"])
def test_deadlock_lists_every_blocked_pe(detail):
    with pytest.raises(DeadlockError) as ei:
        _recv_first_ring(4).run(detail=detail)
    e = ei.value
    msg = str(e)
    assert msg.startswith("deadlock at cycle 0: no unit can make progress. Blocked:")
    for p in range(4):
        w = (p - 1) % 4
        # the recv waits for data from its W neighbour, whose send waits for its own recv
        assert (f"PE ({p}, 0) RX_W: recv from W (line 10) waits for data; its sender PE ({w}, 0) has not "
                f"started the matching send: its TX_E is at send to E (line 11), waiting for an operand") in msg
        assert (f"PE ({p}, 0) TX_E: send to E (line 11) waits for the result of recv from W (line 10) on RX_W, "
                f"which has not finished") in msg
    assert sorted((b["pe"], b["unit"], b["reason"]) for b in e.blocked) == sorted(
        [(p, int(Unit.RX_W), "data") for p in range(4)] + [(p, int(Unit.TX_E), "operand") for p in range(4)])
    assert e.cycle == 0


@pytest.mark.parametrize("detail", ["train", "packet"])
def test_deadlock_through_a_credit_stalled_send(detail):
    # Two PEs in a closed ring (PE 0 E <-> W PE 1 and PE 1 E <-> W PE 0), Q = 2 packets.
    # PE 0 sends 4 packets east; PE 1 posts that recv only after a gate message PE 0 sends west,
    # whose source PE 0 receives from PE 1, whose source is the big message: a cycle through
    # PE 0's TX_E, which runs out of credits after 2 packets.
    hw = load_hw().with_overrides(n_cubes=1, pes_per_cube=2, link__rx_queue_packets=2)
    m = Machine(hw, SfrInstall("pe", ring=True))
    p0, p1 = m[0, 0], m[1, 0]
    x = fill(p0, 1024)
    p0.send("E", x, 1024, line=3)
    h = p0.recv("E", 64, line=4)
    p0.send("W", h, 64, line=5)
    g = p1.recv("E", 64, line=7)
    big = p1.recv("W", 1024, after=g, line=8)
    p1.send("W", big, 64, line=9)
    with pytest.raises(DeadlockError) as ei:
        m.run(detail=detail)
    msg = str(ei.value)
    assert ("PE (0, 0) TX_E: send to E (line 3) waits for credits; its receiver PE (1, 0) has not posted "
            "the matching recv: its RX_W is at recv from W (line 8), waiting for an operand") in msg
    assert ("PE (1, 0) RX_W: recv from W (line 8) waits for the result of recv from E (line 7) on RX_E, "
            "which has not finished") in msg
    assert ("PE (1, 0) RX_E: recv from E (line 7) waits for data; its sender PE (0, 0) has not started "
            "the matching send: its TX_W is at send to W (line 5), waiting for an operand") in msg
    assert ("PE (0, 0) RX_E: recv from E (line 4) waits for data; its sender PE (1, 0) has not started "
            "the matching send: its TX_W is at send to W (line 9), waiting for an operand") in msg
    assert sorted((b["pe"], b["unit"], b["reason"]) for b in ei.value.blocked) == sorted([
        (0, int(Unit.TX_E), "credit"), (0, int(Unit.RX_E), "data"), (0, int(Unit.TX_W), "operand"),
        (1, int(Unit.RX_E), "data"), (1, int(Unit.RX_W), "operand"), (1, int(Unit.TX_W), "operand"),
    ])


def test_max_cycles_names_where_each_pe_stands():
    m = Machine(load_hw())
    a = fill(m[0, 0], 128)
    m[0, 0].dot(a, a, 32, 32, 5000, line=12)  # 9..5071
    x = fill(m[2, 1], 64)
    m[2, 1].send("E", x, 64, line=3)
    m[3, 1].recv("W", 64, line=4)  # done by 9 + 2 + 50 = 61
    m[3, 1].vec(VecOp.EXP, 64_000_000, line=5)  # ceil(64e6/64)*4 + 8 = 4000008 cycles from 0
    for detail in ("train", "packet"):
        with pytest.raises(MaxCyclesError) as ei:
            m.run(max_cycles=1000, detail=detail)
        msg = str(ei.value)
        assert msg.startswith(f"simulation passed max_cycles=1000: its next event was at cycle {ei.value.cycle}. "
                              f"Where each PE stood at cycle 1000:\n")
        assert ei.value.cycle > 1000
        assert "PE (0, 0) GEMM is running dot (line 12)" in msg
        assert "PE (3, 1) VECTOR is running vec (line 5)" in msg
        assert all(p["cmd"] >= 0 for p in ei.value.positions)
    # without the guard the same launch finishes: 4000008 cycles (the exp)
    assert m.run().res.cycles == 4000008


def test_without_a_guard_the_cycle_horizon_still_raises_max_cycles():
    # A legal launch that runs past 2**62 cycles stops at the engine's horizon with the same error
    # as an explicit guard. With every key bounded (tests/test_hw_bounds.py) it takes two of the
    # longest reductions on one lane: 64 * 2**11 + 2**20 = 1179648 for the fill, then each
    # reduce (outer 2**10, r 2**40, inner 1) costs 2**61 + 2**20 cycles.
    hw = load_hw().with_overrides({"vector.lanes": 1, "vector.op_cycles.fill": 2**11,
                                   "vector.op_cycles.add": 2**11, "vector.pipeline_latency": 2**20})
    m = Machine(hw)
    src = fill(m[0, 0], 64)
    m[0, 0].reduce(VecOp.ADD, src, 2**10, 2**40, line=6)
    m[0, 0].reduce(VecOp.ADD, src, 2**10, 2**40, line=6)  # ends at 2**62 + 3276800
    with pytest.raises(MaxCyclesError, match=r"simulation passed the engine's horizon of 2\*\*62 cycles \(docs/reliability\.md: a run's "
                       r"cycles stay inside int64\): its next event was at cycle "
                       r"4611686018430664704\. Where each PE stood at cycle 4611686018427387904:\n  PE \(0, 0\) VECTOR is running reduce \(line 6\)"):
        m.run()


def test_max_cycles_stops_a_waiting_send():
    m = Machine(load_hw())
    x = fill(m[0, 0], 1 << 20)
    m[0, 0].send("E", x, 1 << 20, line=2)
    a = fill(m[1, 0], 128)
    d = m[1, 0].dot(a, a, 32, 32, 20000)
    m[1, 0].recv("W", 1 << 20, after=d, line=3)
    with pytest.raises(MaxCyclesError, match=r"PE \(0, 0\) TX_E is running send to E \(line 2\)"):
        m.run(max_cycles=500)


def test_strict_sram_raises_and_default_flags():
    hw = load_hw().with_overrides({"sram.capacity_bytes": 4096})
    m = Machine(hw)
    m[1, 0].load(3000, pinned=True)  # pinned: live to the end of the launch
    m[1, 0].load(2000)  # live while it runs, with the pinned one: 3000 + 2000 = 5000 > 4096
    m[2, 0].load(4096)  # exactly the capacity: not over
    r = m.run()
    assert r.res.sram_over.tolist()[:3] == [False, True, False]
    assert r.peak((1, 0)) == 5000
    with pytest.raises(SramCapacityError, match=r"peak SRAM above capacity \(4,096 bytes\) on PE \(1, 0\): 5,000 bytes") as ei:
        m.run(strict_sram=True)
    assert ei.value.over == [("PE (1, 0)", 5000)]
    # where: the second load's start, when the DMA unit (in order) is done with the first
    assert ei.value.pe == (1, 0) and ei.value.cycle == r.start((1, 0), 1) == r.end((1, 0), 0) > 0
    assert "; first on PE (1, 0) at cycle" in str(ei.value) and "5,000 bytes live" in str(ei.value)


# -- the interpreter survives anything ------------------------------------------------------------

FIELDS = COMMAND_DTYPE.names
ALLOWED = (ValueError, DeadlockError, MaxCyclesError)


def _valid_program():
    hw = load_hw().with_overrides(n_cubes=1, pes_per_cube=3)
    m = Machine(hw, SfrInstall("pe", ring=True))
    for p in range(3):
        s = m[p, 0]
        a = s.load(2048)
        b = fill(s, 2048)
        d = s.dot(a, b, 16, 16, 32)
        s.send("E", d, 1024)
        t = s.recv("W", 1024, after=b)
        s.reduce(VecOp.MAX, t, 4, 64)
        s.store(d, 1024)
    return hw, m.neighbours(), m.program()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_corrupted_fields_raise_cleanly(data):
    hw, nbr, prog = _valid_program()
    c = prog.commands.copy()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(c) - 1))
        f = data.draw(st.sampled_from(FIELDS))
        big = 2**62 if COMMAND_DTYPE[f] == np.int64 else 2**31 - 1
        c[f][i] = data.draw(st.one_of(st.integers(-3, 20), st.integers(-big, big)))
    p = Program(c, prog.cmd_offsets, prog.tensor_bytes, prog.tensor_pinned, prog.tensor_offsets)
    try:
        res = simulate(hw, nbr, p, max_cycles=10**7)
    except ALLOWED:
        return
    assert res.cycles <= 10**7 and (res.cmd_start <= res.cmd_end).all()


def test_garbage_never_crashes_the_interpreter(tmp_path):
    # Random bytes as commands and neighbour tables, and valid programs with random fields
    # overwritten, in a child process: a crash there (segfault, abort) fails this test instead of
    # killing the test run. Some corrupted programs are still valid and must run to the end.
    code = textwrap.dedent(
        """
        import numpy as np
        from kernbench._core import simulate
        from kernbench.common.errors import DeadlockError, MaxCyclesError
        from kernbench.common.pe_commands import COMMAND_DTYPE, Program, StreamBuilder, VecOp
        from kernbench.hw import SfrInstall, load_hw
        hw = load_hw().with_overrides(n_cubes=1, pes_per_cube=2, link__rx_queue_packets=2)
        rng = np.random.default_rng(7)
        streams = []
        for p, port in ((0, "E"), (1, "W")):
            s = StreamBuilder()
            a = s.load(4096)
            b = s.vec(VecOp.FILL, 64, out_bytes=4096)
            d = s.dot(a, b, 40, 40, 64)
            s.send(port, d, 3000)
            t = s.recv(port, 3000, after=b)
            s.reduce(VecOp.MAX, t, 3, 100)
            s.store(d, 2048)
            streams.append(s.build())
        valid = Program.from_streams(streams)
        ran = 0
        for trial in range(600):
            detail = ("train", "packet")[trial % 2]
            nbr = SfrInstall("pe", ring=bool(trial % 3)).neighbours(hw)
            if trial % 2:
                n = int(rng.integers(1, 6))
                raw = rng.integers(-4, 8, size=n * COMMAND_DTYPE.itemsize // 4, dtype=np.int32)
                cmds = raw.view(COMMAND_DTYPE).copy()
                n_t = int(rng.integers(0, 4))
                prog = Program(cmds, np.array([0, int(rng.integers(0, n + 1)), n], np.int64),
                               rng.integers(0, 64, n_t).astype(np.int64), np.zeros(n_t, np.uint8),
                               np.array([0, int(rng.integers(0, n_t + 1)), n_t], np.int64))
                if trial % 5 == 1:
                    nbr = rng.integers(-2, 3, size=(2, 4)).astype(np.int32)
            else:
                cmds = valid.commands.copy()
                for _ in range(int(rng.integers(1, 3))):
                    f = COMMAND_DTYPE.names[int(rng.integers(0, len(COMMAND_DTYPE.names)))]
                    hi = 2**62 if COMMAND_DTYPE[f] == np.int64 else 2**31 - 1
                    v = int(rng.integers(-3, 12)) if rng.random() < 0.7 else int(rng.integers(-hi, hi))
                    cmds[f][int(rng.integers(0, len(cmds)))] = v
                prog = Program(cmds, valid.cmd_offsets, valid.tensor_bytes, valid.tensor_pinned,
                               valid.tensor_offsets)
            try:
                res = simulate(hw, nbr, prog, max_cycles=10**7, detail=detail)
                assert (res.cmd_start <= res.cmd_end).all()
                ran += len(prog.commands) > 0
            except (ValueError, DeadlockError, MaxCyclesError):
                pass
        print("ran", ran)
        """
    )
    # cwd away from the checkout: `-c` puts the cwd first on sys.path
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ran ")
    assert int(out.stdout.split()[1]) > 20  # the corruption did not only exercise the validator


@pytest.mark.parametrize("detail", ["train", "packet"])
def test_max_cycles_stops_inside_a_huge_message(detail):
    """A 2**36-byte message (2**28 packets) with max_cycles = 10_000: the guard fires within a
    packet of the limit in both details, instead of once the whole message has been computed.
    The fill ends at ceil(64/64) * 1 + 8 = 9; packet i starts at 9 + 8 i (ser = 256 / 32 = 8,
    recv posted at 0, credits never short: the round trip 8 + 2 * 50 = 108 < Q * 8 = 256), so the
    first start past 10_000 is 10_001 (train detail stops there); packet detail stops at the
    first event past the limit, at latest that packet's arrival 10_001 + 8 + 50."""
    from kernbench.common.errors import MaxCyclesError

    m = Machine(load_hw("default"), SfrInstall("pe"))
    t = fill(m[0, 0], 1 << 36)
    m[0, 0].send("E", t, 1 << 36)
    m[1, 0].recv("W", 1 << 36)
    with pytest.raises(MaxCyclesError) as e:
        m.run(detail=detail, max_cycles=10_000)
    assert 10_000 < e.value.cycle <= 10_001 + 8 + 50
