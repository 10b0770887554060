"""detail="train" (closed-form packet trains, DMA trains, folds) and detail="packet" (one heap event
per packet, burst and fold) must give identical results: docs/hardware-model.md, "Engine detail
levels". Checked on every golden workload and on random launches.
"""
import pytest
from engine_helpers import MAJOR_RESULT_FIELDS, assert_same_result, random_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import test_dma_timing
import test_gemm_timing
import test_link_timing
import test_overlap
import test_vector_timing
from kernbench.common.errors import DeadlockError, MaxCyclesError

GOLDEN = {}
for _mod in (test_gemm_timing, test_vector_timing, test_dma_timing, test_link_timing, test_overlap):
    GOLDEN.update(_mod.WORKLOADS)


def _both(machine):
    """Run a machine at both detail levels; returns (train, packet) results or DeadlockErrors."""
    out = []
    for detail in ("train", "packet"):
        try:
            out.append(machine.run(detail=detail).res)
        except DeadlockError as e:
            out.append(e)
    return out


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_workloads_agree(name):
    train, packet = _both(GOLDEN[name]())
    assert train.detail == "train" and packet.detail == "packet"
    assert_same_result(train, packet)
    # packet detail really is finer: at least as many heap events (one per packet/burst/fold)
    assert packet.heap_events >= train.heap_events


def test_packet_detail_pops_an_event_per_packet():
    # 3200 packets each way: packet detail pops (sent, arrived, credit) per packet, train detail
    # a handful of completions; the cycles agree (test above), the event counts must not.
    train, packet = _both(GOLDEN["link_exchange_in_order"]())
    assert packet.heap_events >= 3 * 2 * 3200
    assert train.heap_events < 50


def _max_cycles_outcome(machine, detail, limit):
    try:
        return machine.run(detail=detail, max_cycles=limit).res.cycles
    except MaxCyclesError:
        return "max_cycles"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_max_cycles_trips_at_the_same_cycle_in_both_details(name):
    # A guard of exactly the launch's cycles lets it finish; one cycle less stops it, at both
    # levels. (Packet detail used to trip on credits still flying back after the last command.)
    machine = GOLDEN[name]()
    cycles = machine.run().res.cycles
    for detail in ("train", "packet"):
        assert _max_cycles_outcome(machine, detail, cycles) == cycles
        assert _max_cycles_outcome(machine, detail, cycles - 1) == "max_cycles"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_machine())
def test_random_launches_agree(machine):
    train, packet = _both(machine)
    if isinstance(train, DeadlockError) or isinstance(packet, DeadlockError):
        # a deadlock is a property of the program, not of the detail level
        assert isinstance(train, DeadlockError) and isinstance(packet, DeadlockError), (train, packet)
        key = lambda e: sorted((b["pe"], b["unit"], b["cmd"], b["reason"]) for b in e.blocked)  # noqa: E731
        assert key(train) == key(packet)
        assert train.cycle == packet.cycle  # the last start or end of a command, in both
        return
    assert_same_result(train, packet, MAJOR_RESULT_FIELDS)
    if train.cycles > 1:
        for detail in ("train", "packet"):
            assert _max_cycles_outcome(machine, detail, train.cycles) == train.cycles
            assert _max_cycles_outcome(machine, detail, train.cycles - 1) == "max_cycles"


@pytest.mark.parametrize("panel,causal", [("single_user_prefill", False), ("single_user_prefill", True),
                                          ("multi_user_prefill", False), ("single_user_decode", False),
                                          ("multi_user_decode", False)])
def test_shipped_kernels_agree(panel, causal):
    """Every shipped kernel at Llama-70B head shapes (2K context: 64 KiB K/V messages of 256
    packets, long enough for train detail's steady-state jump and its DMA stretches): train
    detail's closed forms equal packet detail's event-by-event run, command by command."""
    from kernbench.diag import panel_spec, run_panel
    from kernbench.hw import load_hw
    hw = load_hw("default")
    spec = panel_spec(panel, hw, shape="llama70b", context=2048, causal=causal)
    train, packet = (run_panel(spec, hw, detail=d).result.engine for d in ("train", "packet"))
    assert train.work["packets"] > 0 or "decode" in panel
    assert_same_result(train, packet, MAJOR_RESULT_FIELDS)


def test_two_level_decode_agrees():
    import numpy as np

    import kernbench
    from kernbench.kernels import attention_decode_two_level_kernel
    ctx = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 8})
    ctx.install_sfr(scope="two_level")
    S, h_q, h_kv, d = 512, 64, 8, 128
    q = ctx.replicate(np.zeros((1, h_q, d), np.float16))
    kv = ctx.empty((S, h_kv, d), "f16")
    o = ctx.empty((1, h_q, d), "f16")
    train, packet = (ctx.launch(attention_decode_two_level_kernel, (8, 2), q, kv, kv, o, 1, S, h_q, h_kv, d,
                                8, 2, mode="timing", detail=det).engine for det in ("train", "packet"))
    assert train.work["packets"] > 0
    assert_same_result(train, packet, MAJOR_RESULT_FIELDS)


@pytest.mark.parametrize("h", [7, 1000])
def test_a_deadlock_is_reported_at_the_same_cycle_in_both_details(h):
    # PE 1's second recv waits for PE 0's second send, which forwards what PE 0 receives from PE
    # 1's send, which comes after that recv. Packet detail's clock runs on after the last command
    # (the last credit flies back h cycles); the reported cycle is the last start or end in both.
    import kernbench

    def kernel(n, *, tl):
        if tl.program_id(0) == 0:
            tl.send("E", tl.zeros((n,), "f16"))
            tl.send("E", tl.recv("E", (n,), "f16"))
        else:
            tl.recv("W", (n,), "f16")
            tl.send("W", tl.recv("W", (n,), "f16"))

    errors = []
    for detail in ("train", "packet"):
        ctx = kernbench.Context("default", overrides={"pes_per_cube": 2, "n_cubes": 1,
                                                     "link.hop_latency_cycles": h})
        ctx.install_sfr(scope="pe")
        with pytest.raises(DeadlockError) as e:
            ctx.launch(kernel, (2, 1), 1000, mode="timing", detail=detail)
        errors.append(e.value)
    train, packet = errors
    assert train.cycle == packet.cycle > 0
    assert str(train).splitlines()[0] == str(packet).splitlines()[0]
    assert [b["text"] for b in train.blocked] == [b["text"] for b in packet.blocked]


def test_a_deadlock_within_max_cycles_is_a_deadlock_in_both_details():
    """An engine fuzz's case on the debug build: one PE whose E is wired to its own W sends,
    receives, then waits for a message only its own later send makes: deadlocked at cycle 202
    (the last command's end). With max_cycles from 202 up to 202 + h - 1, packet detail popped
    the last credit flying back (at 202 + h = 252) past the limit and raised MaxCyclesError,
    where train detail, with no such event, raised the DeadlockError. Both raise it now, the
    same text; below 202 both stop at the limit, with the same text too."""
    import kernbench

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    ctx.install_sfr("pe", ring=True)

    def k(x, *, tl):
        tl.send("E", tl.load(x, shape=(1,), dtype="f32"))
        tl.recv("W", (1,), "f32")
        tl.send("E", tl.recv("W", (1,), "f32"))

    traced = ctx.trace(k, (1, 1), ctx.empty((64,), "f32"))
    h = ctx.hw.link.hop_latency_cycles

    def outcome(detail, n):
        with pytest.raises((DeadlockError, MaxCyclesError)) as e:
            traced.time(ctx.hw, detail=detail, max_cycles=n)
        return type(e.value), str(e.value)

    free = outcome("train", None)
    assert free[0] is DeadlockError and free[1].startswith("deadlock at cycle 202:")
    for n in (201, 202, 202 + h - 1, 202 + h, None):
        want = (MaxCyclesError if n == 201 else DeadlockError)
        train, packet = outcome("train", n), outcome("packet", n)
        assert train == packet and train[0] is want, (n, train[1][:80], packet[1][:80])
        if want is DeadlockError:
            assert train == free



def _limited_outcome(machine, detail, limit):
    """What a run with ``max_cycles=limit`` ends in, as far as it must not depend on the detail:
    the cycles, or the error's type, text (less the cycle of the next event, which differs:
    packet detail has finer events), cycle and units."""
    import re
    try:
        return ("ok", machine.run(detail=detail, max_cycles=limit).res.cycles)
    except DeadlockError as e:
        return ("deadlock", str(e), e.cycle, [b["text"] for b in e.blocked])
    except MaxCyclesError as e:
        return ("max_cycles", re.sub(r"its next event was at cycle \d+", "", str(e)),
                [(p["pe"], p["unit"], p["cmd"], p["state"]) for p in e.positions])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_machine(), st.one_of(st.floats(0, 1), st.integers(0, 2000)))
def test_random_limits_stop_alike_in_both_details(machine, cut):
    """``max_cycles`` anywhere in a random launch, up to 2,000 cycles past its end, or within two
    hop latencies past its deadlock (past a deadlock's last command, packet detail's last
    credits are still flying back: the window where it used to raise MaxCyclesError): the
    same outcome in both details."""
    try:
        end = machine.run(detail="train").res.cycles
    except DeadlockError as e:
        end = e.cycle
        if isinstance(cut, int):  # within the credits' flight back: a hop latency each way
            cut %= 2 * machine.hw.link.hop_latency_cycles + 1
    limit = max(1, int(end * cut) if isinstance(cut, float) else end + cut)
    assert _limited_outcome(machine, "train", limit) == _limited_outcome(machine, "packet", limit)


def test_a_deadlock_is_at_the_last_packet_a_blocked_send_started():
    """A breaker's case: a send whose recv is never posted goes on starting packets on the
    credits it has, after the last command's start or end. Deadlock reported at cycle 9 (that
    command's start), max_cycles=9..256 raised MaxCyclesError in both details: "a deadlock at or
    before N is a DeadlockError" did not hold. The deadlock is now at the last packet's start.

    Default hardware, one cube of 3 PEs in a line: PE 0's fill ends at ceil(64/64) * 1 + 8 = 9;
    its send of 40 packets of 256 B (8 cycles each at 32 B/cycle) starts packet i at 9 + 8i on
    its Q = 32 credits, the last at 9 + 8 * 31 = 257, then waits for credits PE 1 never gives
    (its recv from W is gated on a recv from E that waits in a cycle with PE 2)."""
    from engine_helpers import Machine, fill

    from kernbench.hw import SfrInstall, load_hw

    hw = load_hw().with_overrides({"n_cubes": 1, "pes_per_cube": 3})
    m = Machine(hw, SfrInstall("pe"))
    big = 256 * 40
    m[0].send("E", fill(m[0], big), big)
    r2 = m[1].recv("E", 64)
    m[1].send("E", m[1].recv("W", big, after=r2), 64)
    m[2].send("W", m[2].recv("W", 64), 64)
    for detail in ("train", "packet"):
        with pytest.raises(DeadlockError, match=r"^deadlock at cycle 257:") as e:
            m.run(detail=detail)
        assert e.value.cycle == 257
        tx = [b for b in e.value.blocked if b["pe"] == 0]
        assert len(tx) == 1 and "waits for credits" in tx[0]["text"]
        for n, nxt in ((9, 17), (256, 257)):  # (the next packet's start, 9 + 8i)
            with pytest.raises(MaxCyclesError) as e:
                m.run(detail=detail, max_cycles=n)
            assert e.value.cycle == nxt
        for n in (257, 10_000):
            with pytest.raises(DeadlockError, match=r"^deadlock at cycle 257:"):
                m.run(detail=detail, max_cycles=n)
