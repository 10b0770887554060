"""Counters past int64: a unit's work counter (GEMM flops, vector elements, bytes) that would pass
2**63 - 1 is refused where it would (CounterOverflowError, naming the PE and line), the same
with steady-state jumps and without; sums of counters over PEs and lines are exact past it.

Two reviews' cases: 4,100 dots of 2**50 multiply-adds on one PE printed -9,214 PFLOP (the
counter wrapped); eight PEs of 1.15e18 busy VECTOR cycles each summed to a negative number in
the summary and the profile, which then sorted the line doing all the work last."""
import numpy as np
import pytest

import kernbench
from kernbench import CounterOverflowError
from kernbench.common.totals import exact_sums, exact_total
from kernbench.report import profile, summarize
from kernbench.report.profile import busy_text

M = N = 2**16
K = 2**18  # a dot of M * N * K = 2**50 multiply-adds: the most one may do (docs/reliability.md)


def big_dots(it, *, tl):
    a = tl.full((M, K), 1.0, "f16")
    b = tl.full((K, N), 1.0, "f16")
    for _ in tl.range(0, it):
        tl.dot(a, b)


@pytest.mark.parametrize("steady", [True, False])
def test_a_work_counter_that_would_wrap_is_refused_at_its_command(steady):
    ctx = kernbench.Context("default")
    # each dot is 2 * 2**50 = 2**51 flops: 4,095 of them are 4,095 * 2**51 < 2**63 - 1
    r = ctx.launch(big_dots, (1, 1), 4095, mode="timing", steady=steady)
    assert int(r.unit_counters["work"][0, 0]) == 4095 * 2**51 == r.flops
    # the 4,096th makes 2**63: commands #0 and #1 are the fills, so it is command #4097
    for it in (4096, 4100):  # (4,100: past it by more than a stretch a jump could take)
        with pytest.raises(CounterOverflowError, match=r"PE \(0, 0\) command #4097 \[dot \(65536,262144\)x"
                                                       r"\(262144,65536\) f16 .*would pass 2\*\*63 - 1") as e:
            ctx.launch(big_dots, (1, 1), it, mode="timing", steady=steady)
        assert e.value.pe == (0, 0) and e.value.where.endswith(f"test_counter_range.py:{big_dots.__code__.co_firstlineno + 4}")


def test_the_error_is_the_same_with_steady_state_jumps_and_without():
    ctx = kernbench.Context("default")
    got = []
    for steady in (True, False):
        with pytest.raises(CounterOverflowError) as e:
            ctx.launch(big_dots, (1, 1), 4100, mode="timing", steady=steady)
        got.append((str(e.value), e.value.cycle, e.value.pe, e.value.where))
    assert got[0] == got[1]


def long_exps(n, it, *, tl):
    x = tl.full((n,), 1.0, "f32")
    for _ in tl.range(0, it):
        x = tl.exp(x)


def test_sums_over_pes_and_lines_are_exact_past_int64():
    ctx = kernbench.Context("default", overrides={"vector.lanes": 1, "vector.op_cycles.exp": 2**11})
    r = ctx.launch(long_exps, (8, 1), 2**37, 4096, mode="timing")
    busy = [int(v) for v in r.unit_counters["busy"][r.working_pes, 1]]
    assert all(0 < v < 2**63 for v in busy) and sum(busy) >= 2**63  # each fits, their sum does not
    assert summarize(r)["units"][1]["busy_cycles"] == sum(busy)
    lines = profile(r)["lines"]
    exp_line = max(lines, key=lambda x: x["busy_cycles"])
    # the exps' line does 4,096 of each PE's 4,097 commands (the fill the rest): first, and the
    # two lines' busy cycles add up to the counters'
    assert exp_line["commands"] == 8 * 4096 and lines[0] is exp_line
    assert exp_line["busy_cycles"] > 4096 * 8 * 2**37 and exp_line["busy_cycles"] >= 2**63
    assert sum(x["busy_cycles"] for x in lines) == sum(busy)


def test_exact_sums_agree_with_python_ints():
    rng = np.random.default_rng(0)
    for scale in (2**10, 2**40, 2**61, 2**62):
        v = rng.integers(0, scale, 300, dtype=np.int64)
        g = rng.integers(0, 7, 300)
        want = [0] * 7
        for gi, vi in zip(g.tolist(), v.tolist()):
            want[gi] += vi
        assert [int(x) for x in exact_sums(g, 7, v)] == want
        assert exact_total(v) == sum(v.tolist())


def dots_then_max(x_ptr, o_ptr, n, M, *, tl):
    a = tl.load(x_ptr, shape=(M, M), dtype="f16")
    acc = tl.zeros((16, 16), "f32")
    for _ in tl.range(0, n):
        c = tl.dot(a, a)  # 2 * M**3 = 2**49 flops
        acc = acc + tl.max(tl.max(c, axis=1), axis=0)
    tl.store(o_ptr, acc)


def test_a_jump_stops_short_of_the_counter_s_end():
    """A review's launch whose steady-state jumps skip most of its commands: the counter passes
    2**63 - 1 at the 16,384th dot (2**14 * 2**49 = 2**63), inside what a jump would take; with
    jumps the run stops at the same command, cycle and message as without."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    M = 2**16
    t = ctx.trace(dots_then_max, (2, 1), ctx.empty((M, M), "f16"), ctx.empty((16, 16), "f32"), 20000, M)
    # (short of it, jumps write all but a few of the commands)
    short = ctx.trace(dots_then_max, (2, 1), ctx.empty((M, M), "f16"), ctx.empty((16, 16), "f32"), 16000, M)
    assert short.time(ctx.hw).engine.steady_commands > 0.99 * short.program.n_commands
    got = []
    for steady in (False, True):
        with pytest.raises(CounterOverflowError) as e:
            t.time(ctx.hw, steady=steady)
        got.append((str(e.value), e.value.cycle, e.value.pe, e.value.where))
    assert got[0] == got[1]
    # commands: the load and the fill, then 4 a dot (dot, two maxes, add): the 16,384th dot is
    # command #2 + 4 * 16,383 = #65,534
    assert "PE (0, 0) command #65534 [dot (65536,65536)x(65536,65536) f16" in got[0][0]


def two_pass_at_once(*, tl):
    a = tl.full((M, K), 1.0, "f16")
    b = tl.full((K, N), 1.0, "f16")
    for _ in tl.range(0, 4095):  # 4,095 * 2**51 flops: 2**51 short of 2**63
        tl.dot(a, b)
    if tl.program_id(0) == 0:  # two folds on PE 0, one on PE 1, ending in the same cycle
        x, y = tl.full((2 * 2**16, 64), 1.0, "f16"), tl.full((64, 1), 1.0, "f16")
    else:
        x, y = tl.full((2**16, 131198), 1.0, "f16"), tl.full((131198, 1), 1.0, "f16")
    tl.dot(x, y)
    tl.dot(a, b)  # passes 2**63 - 1 on both PEs in one cycle


def test_two_pes_passing_in_one_cycle_name_the_first_at_either_detail():
    """A breaker: train detail named PE (0, 0) and packet detail PE (1, 0), the order units issue
    in within a cycle being the heap's ties, which the two push in different orders. The run now
    ends the cycle and names the first command in global order that passed."""
    ctx = kernbench.Context("default", overrides={"gemm.rows": 2**16, "gemm.cols": 2**16,
                                                  "sram.bytes_per_cycle": 2**30})
    got = set()
    for detail in ("train", "packet"):
        for steady in (True, False):
            with pytest.raises(CounterOverflowError) as e:
                ctx.launch(two_pass_at_once, (2, 1), mode="timing", detail=detail, steady=steady)
            got.add((str(e.value), e.value.cycle, e.value.pe, e.value.where))
    assert len(got) == 1
    (msg, _, pe, _), = got
    assert pe == (0, 0) and msg.startswith("PE (0, 0) command #4100 [dot (65536,262144)x(262144,65536)")


def many_big_dots(*, tl):
    for m, n, k in [(2**16, 2**16, 2**18)] * 16 + [(1, 1, 1)]:
        tl.dot(tl.full((m, k), 1.0, "f16"), tl.full((k, n), 1.0, "f16"))


def test_the_profile_s_flops_and_busy_cycles_are_exact_past_2_53():
    """A breaker: the profile summed flops per line as float64 weights (16 x 2**51 + 2 read
    ...968, not ...970), and printed a unit's busy cycles from its float parts, 64 cycles off
    the counters at 9.2e18."""
    r = kernbench.Context("default").launch(many_big_dots, (1, 1), mode="timing")
    assert r.flops == 16 * 2**51 + 2 == profile(r)["gemm"]["flops"]
    ctx = kernbench.Context("default", overrides={"vector.lanes": 1, "vector.op_cycles.exp": 2**11})
    r = ctx.launch(long_exps, (8, 1), 2**37, 4096, mode="timing")
    busy = summarize(r)["units"][1]["busy_cycles"]
    assert busy > 2**63 and f"of its {busy:,} busy cycles" in busy_text(profile(r), "VECTOR")


def test_an_int_python_will_not_print_keeps_its_sign():
    from kernbench.common.errors import short_repr
    assert short_repr(-10**5000) == "<a negative int of about 5,001 digits>"
    assert short_repr((10**5000, -1)) == "(<an int of about 5,001 digits>, -1)"
