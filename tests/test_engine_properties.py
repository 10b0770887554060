"""Invariants of the engine on random valid launches (hypothesis).

Random small meshes (1-3 cubes of 1-4 PEs, either SFR install, random queue depth, packet size,
bandwidths, latencies, array and lane counts) carry random command streams built with
StreamBuilder: local work on every unit and matched send/recv pairs on every wired link. A launch
either finishes or raises DeadlockError; when it finishes, the counters must be consistent with
the command times and with docs/hardware-model.md's definitions.
"""
import numpy as np
from engine_helpers import assert_same_result, random_machine
from hypothesis import HealthCheck, given, settings

from kernbench._core import DEBUG_BUILD
from kernbench.common.errors import DeadlockError
from kernbench.common.pe_commands import N_PORTS, OPPOSITE, Opcode, Unit

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cdiv(a, b):
    return -(-a // b)


def _producers(program):
    """Global command index producing each (PE, tensor), and the readers of each."""
    prod, readers = {}, {}
    c = program.commands
    for g in range(program.n_pes):
        for i in range(int(program.cmd_offsets[g]), int(program.cmd_offsets[g + 1])):
            if c["dst"][i] >= 0:
                prod[(g, int(c["dst"][i]))] = i
            for f in ("src0", "src1", "src2"):
                if c[f][i] >= 0:
                    readers.setdefault((g, int(c[f][i])), []).append(i)
    return prod, readers


def _check_invariants(run):
    hw, prog, res = run.machine.hw, run.program, run.res
    c = prog.commands
    n = len(c)
    pe = np.repeat(np.arange(hw.n_pes), np.diff(prog.cmd_offsets))
    start, end = res.cmd_start, res.cmd_end
    uc = res.unit_counters

    # every command ran: start <= end, and the total is the last end
    assert (start >= 0).all() and (start <= end).all()
    assert res.cycles == (int(end.max()) if n else 0)
    assert uc["commands"].sum() == n

    # a command starts after its operands' producers end
    prod, readers = _producers(prog)
    for i in range(n):
        for f in ("src0", "src1", "src2"):
            t = int(c[f][i])
            if t >= 0:
                assert start[i] >= end[prod[(int(pe[i]), t)]], (i, f)

    # commands on one unit run one at a time, in program order
    for g in range(hw.n_pes):
        for u in range(len(Unit)):
            idx = np.flatnonzero((pe == g) & (c["unit"] == u))
            assert (start[idx[1:]] >= end[idx[:-1]]).all(), (g, u)

    # busy = sum of durations; busy and the operand stall both fit in the launch
    for g in range(hw.n_pes):
        for u in range(len(Unit)):
            idx = np.flatnonzero((pe == g) & (c["unit"] == u))
            row = uc[g, u]
            assert row["busy"] == int((end[idx] - start[idx]).sum())
            assert 0 <= row["busy"] <= res.cycles
            assert 0 <= row["stall_operand"] and row["busy"] + row["stall_operand"] <= res.cycles
    # stall counters lie within busy for the units the doc puts them on, zero elsewhere
    for field, units in (("stall_credit", range(Unit.TX_E, Unit.TX_S + 1)),
                         ("stall_data", range(Unit.RX_E, Unit.RX_S + 1)),
                         ("stall_arbitration", [Unit.DMA])):
        inside = uc[field][:, list(units)]
        assert (inside >= 0).all() and (inside <= uc["busy"][:, list(units)]).all(), field
        others = [u for u in range(len(Unit)) if u not in units]
        assert (uc[field][:, others] == 0).all(), field

    # links: bytes sent == bytes received, per link; packets and serialisation add up
    P, b, h = hw.link.packet_bytes, hw.link.bytes_per_cycle, hw.link.hop_latency_cycles
    lc = res.link_counters
    nbr = run.machine.neighbours()
    is_send = c["opcode"] == Opcode.SEND
    is_recv = c["opcode"] == Opcode.RECV
    for g in range(hw.n_pes):
        for p in range(N_PORTS):
            link = g * N_PORTS + p
            sends = np.flatnonzero(is_send & (pe == g) & (c["port"] == p))
            other = int(nbr[g, p])
            recvs = (np.flatnonzero(is_recv & (pe == other) & (c["port"] == int(OPPOSITE[p])))
                     if other >= 0 else np.zeros(0, int))
            sent = int(c["nbytes"][sends].sum())
            assert lc["bytes"][link] == sent == int(c["nbytes"][recvs].sum()), link
            assert uc["work"][g, Unit.TX_E + p] == sent
            if other >= 0:
                assert uc["work"][other, Unit.RX_E + int(OPPOSITE[p])] == sent
            sizes = [int(x) for x in c["nbytes"][sends]]
            assert lc["packets"][link] == sum(cdiv(s, P) for s in sizes)
            assert lc["messages"][link] == len(sizes)
            ser = sum((s // P) * cdiv(P, b) + (cdiv(s % P, b) if s % P else 0) for s in sizes)
            assert lc["busy"][link] == ser
            assert lc["busy"][link] <= res.cycles
    # a recv cannot end before its message's last packet has left and crossed the hop
    for msg in res.messages:
        assert end[msg["recv"]] >= end[msg["send"]] + h
        assert end[msg["send"]] >= start[msg["send"]] + cdiv(int(msg["nbytes"]), P)  # >= 1 cycle a packet

    # the debug build checks on every event that time never runs backwards
    if DEBUG_BUILD:
        assert res.debug["time_regressions"] == 0

    # work items
    folds = sum(cdiv(int(x["m"]), hw.gemm.rows) * cdiv(int(x["n"]), hw.gemm.cols) for x in c[c["opcode"] == Opcode.DOT])
    dma = c[(c["opcode"] == Opcode.LOAD) | (c["opcode"] == Opcode.STORE)]
    bursts = sum(cdiv(int(x), hw.dma.burst_bytes) for x in dma["nbytes"])
    assert res.work == {"packets": int(lc["packets"].sum()), "bursts": bursts, "folds": folds}

    # completion order: by end cycle, then command index
    order = res.completion_order
    assert sorted(order.tolist()) == list(range(n))
    keys = list(zip(end[order].tolist(), order.tolist()))
    assert keys == sorted(keys)
    # replaying in that order (the functional layer does) meets every operand and message first
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    for i in range(n):
        for f in ("src0", "src1", "src2"):
            t = int(c[f][i])
            if t >= 0:
                assert rank[prod[(int(pe[i]), t)]] < rank[i]
    for msg in res.messages:
        assert rank[msg["send"]] < rank[msg["recv"]]

    # peak SRAM from the definition: a tensor is live on [producer start, last reader end)
    # (its producer's end if nothing reads it), pinned ones to the end of the launch
    for g in range(hw.n_pes):
        deltas = {}
        t0 = int(prog.tensor_offsets[g])
        for t in range(int(prog.tensor_offsets[g + 1]) - t0):
            if (g, t) not in prod:
                continue
            i = prod[(g, t)]
            nb = int(prog.tensor_bytes[t0 + t])
            alloc = int(start[i])
            free = max([int(end[j]) for j in readers.get((g, t), [])] or [int(end[i])])
            if prog.tensor_pinned[t0 + t]:
                free = res.cycles + 1
            if free > alloc:
                deltas[alloc] = deltas.get(alloc, 0) + nb
                deltas[free] = deltas.get(free, 0) - nb
        live, peak = 0, 0
        for t in sorted(deltas):
            live += deltas[t]
            peak = max(peak, live)
        assert res.peak_sram[g] == peak, g
        assert res.sram_over[g] == (peak > hw.sram.capacity_bytes)


@SETTINGS
@given(random_machine())
def test_random_launches_finish_or_deadlock_and_keep_their_invariants(machine):
    try:
        run = machine.run()
    except DeadlockError as e:
        # a deadlock names at least one blocked unit, each with a reason
        assert e.blocked and "deadlock at cycle" in str(e)
        assert all(b["reason"] in ("operand", "data", "credit") for b in e.blocked)
        return
    _check_invariants(run)


@SETTINGS
@given(random_machine(max_local=3))
def test_two_runs_agree(machine):
    try:
        a = machine.run(record_events=True)
    except DeadlockError as e:
        try:
            machine.run()
        except DeadlockError as e2:
            assert str(e2) == str(e)
            return
        raise AssertionError("the second run did not deadlock")
    b = machine.run(record_events=True)
    assert_same_result(a.res, b.res)
    assert a.res.heap_events == b.res.heap_events
    np.testing.assert_array_equal(a.res.events, b.res.events)
