"""The SimPy baseline (bench/baselines/simpy_ring.py) and the engine time the same machine alike.

The speed benchmark compares the engine with this SimPy model, so both must model the same thing:
on small instances of the benchmark workloads the engine (detail="train" and detail="packet") and
the SimPy model (both its link styles) must give the same end cycle for every command, hence the same per-PE end times
and total cycles. The SimPy model computes the link recurrence of docs/hardware-model.md by
running processes packet by packet, the engine by its own code, so agreement checks both. Two
instances are also derived by hand, so all three cannot agree on a shared mistake there.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# bench/ is not part of the installed package; import its modules from the checkout. Appended,
# not prepended, so the installed (compiled) kernbench always wins over the source tree.
_BENCH = str(Path(__file__).resolve().parents[1] / "bench")
if _BENCH not in sys.path:
    sys.path.append(_BENCH)

from baselines.simpy_ring import simulate_simpy  # noqa: E402
from workloads import dma_workload, ring_packet_events_estimate, ring_workload  # noqa: E402
from kernbench._core.api import simulate  # noqa: E402
from kernbench.hw import load_hw  # noqa: E402


def _all_three(w):
    """Engine in both details, and the SimPy model in both link styles (which must agree exactly,
    so the lean one is returned after checking it against the idiomatic one)."""
    train = simulate(w.hw, w.neighbours, w.program, detail="train")
    packet = simulate(w.hw, w.neighbours, w.program, detail="packet")
    sp = simulate_simpy(w.hw, w.neighbours, w.program, links="resources")
    lean = simulate_simpy(w.hw, w.neighbours, w.program, links="lean")
    np.testing.assert_array_equal(lean.cmd_start, sp.cmd_start)
    np.testing.assert_array_equal(lean.cmd_end, sp.cmd_end)
    assert (lean.packets, lean.bursts) == (sp.packets, sp.bursts)
    return train, packet, sp


def _per_pe_end(w, cmd_end):
    off = w.program.cmd_offsets
    return [int(cmd_end[off[g]:off[g + 1]].max()) for g in range(w.program.n_pes)]


def _assert_same(w, train, packet, sp):
    np.testing.assert_array_equal(train.cmd_end, sp.cmd_end)
    np.testing.assert_array_equal(packet.cmd_end, sp.cmd_end)
    np.testing.assert_array_equal(train.cmd_start, sp.cmd_start)
    assert _per_pe_end(w, train.cmd_end) == _per_pe_end(w, sp.cmd_end)
    assert train.cycles == packet.cycles == sp.cycles
    # the same work was simulated, packet by packet and burst by burst
    assert train.work["packets"] == packet.work["packets"] == sp.packets
    assert train.work["bursts"] == packet.work["bursts"] == sp.bursts


def test_ring_one_message_by_hand():
    # 2 PEs in a ring, one 1024 B message each way, no GEMM, default hardware.
    # fill of block 0: 512 f16 elements -> ceil(512/64) * 1 + 8 = 16 cycles: [0, 16).
    # send E: 4 packets of 256 B, ser = 256/32 = 8; T = 16, recv posted at r = 0:
    #   e_i = 16 + 8(i+1) -> e_3 = 48 (send ends 48); a_3 = 48 + 50 = 98; d_3 = max(98, 0) = 98.
    # recv W ends at d_3 = 98, the last command of the launch: 98 cycles.
    w = ring_workload(2, message_bytes=1024, steps=1, gemm=None)
    train, packet, sp = _all_three(w)
    assert sp.cycles == 98
    assert sp.cmd_end[:3].tolist() == [16, 48, 98]  # PE 0: fill, send, recv
    _assert_same(w, train, packet, sp)


def test_ring_credit_stall_by_hand():
    # 2 PEs, 2 steps of 1024 B (4 packets, ser 8, h 50), Q = 2 credits, dot (32,32,2): 1 fold of
    # max(2 + 32 + 32 - 2, ceil(64*2*2/256)) = 64 cycles; the recv of step 1 waits for dot 0.
    # Both PEs are symmetric. Commands of a PE in program order:
    #   c0 fill blk0: 16 [0,16)            c1 fill w: 64 elements -> 1 + 8 = 9 [16,25)
    #   c2 send blk0, T=16: s0=16 e0=24, s1=24 e1=32; a0=74 a1=82; r=0 -> d0=74 d1=82;
    #      credits c0=124 c1=132; s2=max(32,124)=124 e2=132, s3=max(132,132)=132 e3=140 -> 140
    #   c3 recv (r=0): a2=182 a3=190 -> d3 = 190; credits c2=232 c3=240
    #   c4 dot blk0: operands at 16 and 25 -> [25, 89)
    #   c5 send blk1: T = 190 (blk1 ready): s4=max(140,190,c2=232)=232 e4=240, s5=max(240,240)=240
    #      e5=248; a4=290 a5=298, r=190 -> d4=290 d5=298, c4=340 c5=348;
    #      s6=max(248,340)=340 e6=348, s7=max(348,348)=348 e7=356 -> 356
    #   c6 recv, after dot 0 (89) and RX free (190): r = 190; a6=398, a7=406 -> 406
    #   c7 dot blk1: blk1 at 190, GEMM free at 89 -> [190, 254)
    hw = load_hw("default").with_overrides({"link.rx_queue_packets": 2})
    w = ring_workload(2, message_bytes=1024, steps=2, gemm=(32, 32, 2), hw=hw)
    train, packet, sp = _all_three(w)
    expected = [16, 25, 140, 190, 89, 356, 406, 254]
    assert sp.cmd_end[:8].tolist() == expected
    assert sp.cmd_end[8:].tolist() == expected  # PE 1
    assert sp.cycles == 406
    _assert_same(w, train, packet, sp)


@pytest.mark.parametrize(
    "n_pes, message_bytes, steps, gemm, double_buffer, overrides",
    [
        # link-bound, GEMM overlapped (the benchmark's shape, small)
        (4, 16 * 1024, 3, "auto", True, {}),
        # a message that is not a whole number of packets, nor a packet of whole link cycles
        (3, 5000, 4, (40, 100, 64), True, {"link.bytes_per_cycle": 24}),
        # GEMM slower than the link and a short queue: the sender is throttled by credits
        (5, 20000, 3, (200, 64, 128), True, {"link.rx_queue_packets": 3}),
        # recvs posted at once: the sender runs Q packets ahead, never throttled
        (4, 12 * 1024, 3, (96, 32, 256), False, {"link.hop_latency_cycles": 7}),
        # a credit round trip longer than Q packets of serialisation: throttled even when posted
        (6, 8192, 2, None, True, {"link.rx_queue_packets": 1, "link.hop_latency_cycles": 90}),
    ],
)
def test_ring_same_cycles(n_pes, message_bytes, steps, gemm, double_buffer, overrides):
    hw = load_hw("default").with_overrides(overrides) if overrides else None
    w = ring_workload(n_pes, message_bytes=message_bytes, steps=steps, gemm=gemm,
                      double_buffer=double_buffer, hw=hw)
    train, packet, sp = _all_three(w)
    _assert_same(w, train, packet, sp)
    assert sp.packets >= 100  # a few hundred packets: the credit loop really ran
    # the event-count estimate the benchmarks size their workloads with is exact
    p = w.params
    assert packet.heap_events == ring_packet_events_estimate(
        p["n_pes"], p["message_bytes"], p["steps"], p["gemm"], w.hw)


def test_ring_credit_stall_shows_in_both():
    # With Q = 1 and a hop latency of 90, each packet waits for the previous one's credit:
    # a whole credit round trip (8 + 2 * 90 = 188 cycles) per packet, instead of 8 cycles.
    hw = load_hw("default").with_overrides({"link.rx_queue_packets": 1, "link.hop_latency_cycles": 90})
    w = ring_workload(2, message_bytes=4 * 256, steps=1, gemm=None, hw=hw)
    train, packet, sp = _all_three(w)
    # fill ends 16; packets start at 16, 16+188, 16+2*188, 16+3*188 = 580; send ends 588;
    # the last packet lands at 588 + 90 = 678, drained at once (recv posted at 0).
    assert sp.cycles == 678
    _assert_same(w, train, packet, sp)
    assert train.unit_counters["stall_credit"][0, 3] == (588 - 16) - 4 * 8  # TX_E of PE 0


@pytest.mark.parametrize(
    "n_cubes, ppc, tiles, tile_bytes",
    [
        (1, 3, 4, 5000),  # last burst of each load short: 5000 = 9 * 512 + 392
        (2, 4, 3, 8192),  # 4 PEs of a cube contending for its channel, 2 cubes independent
    ],
)
def test_dma_variant_same_cycles(n_cubes, ppc, tiles, tile_bytes):
    w = dma_workload(n_cubes, ppc, tiles=tiles, tile_bytes=tile_bytes)
    train, packet, sp = _all_three(w)
    _assert_same(w, train, packet, sp)
    assert sp.bursts >= 100


@settings(max_examples=12, deadline=None)
@given(
    n_pes=st.integers(2, 5),
    packets=st.integers(1, 40),
    tail=st.integers(0, 255),
    steps=st.integers(1, 3),
    gemm_m=st.one_of(st.none(), st.integers(1, 300)),
    double_buffer=st.booleans(),
    queue=st.integers(1, 6),
    hop=st.integers(1, 120),
)
def test_ring_random_instances_agree(n_pes, packets, tail, steps, gemm_m, double_buffer, queue, hop):
    hw = load_hw("default").with_overrides(
        {"link.rx_queue_packets": queue, "link.hop_latency_cycles": hop})
    gemm = None if gemm_m is None else (gemm_m, 48, 96)
    w = ring_workload(n_pes, message_bytes=packets * 256 + tail, steps=steps, gemm=gemm,
                      double_buffer=double_buffer, hw=hw)
    _assert_same(w, *_all_three(w))
