"""The utilization table and the summary figures behind it equal the engine counters they come from."""
import io
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from rich.console import Console

from kernbench.common.pe_commands import StreamBuilder, Unit, VecOp
from kernbench.hw import load_hw
from kernbench.report import print_report, summarize
from kernbench.report.summary import unit_kinds

from report_helpers import launch, line_pipeline

# docs/hardware-model.md, default preset (R = C = 32, L = 64, 1.5 GHz):
# dot (64,128)x(128,64) f16: folds = ceil(64/32) * ceil(64/32) = 4,
#   fold_cycles = max(128 + 32 + 32 - 2, ceil((32 + 32) * 128 * 2 / 256)) = max(190, 64) = 190,
#   busy = 4 * 190 = 760 cycles; flops = 2 * 64 * 64 * 128 = 1_048_576.
GEMM_BUSY = 4 * 190
DOT_FLOPS = 2 * 64 * 64 * 128
# exp over 4096 elements: ceil(4096/64) * 4 + 8 = 264; add over 4096: 64 * 1 + 8 = 72.
EXP_BUSY, ADD_BUSY = 64 * 4 + 8, 64 * 1 + 8
# send of 16 KiB: 64 packets of 256 B, ser = 256/32 = 8 cycles each, receiver posted early: 512.
SEND_BUSY = 64 * 8


@pytest.fixture(scope="module")
def res():
    return line_pipeline(n_pes=3)


def row(s, unit):
    return next(r for r in s["units"] if r["unit"] == unit)


def test_working_pes_exclude_silent_ones(res):
    s = summarize(res)
    assert s["working_pes"] == 3  # PEs 3..31 have no program
    assert list(res.working_pes) == [0, 1, 2]


def test_unit_rows_equal_counters(res):
    s = summarize(res)
    uc = res.unit_counters
    w = np.array([0, 1, 2])
    cyc = res.cycles
    for r in s["units"]:
        u = Unit[r["unit"]]
        busy = uc["busy"][w, u]
        assert r["commands"] == uc["commands"][:, u].sum()
        assert r["work"] == uc["work"][:, u].sum()
        assert r["busy_pct"]["min"] == pytest.approx(100 * busy.min() / cyc)
        assert r["busy_pct"]["mean"] == pytest.approx(100 * busy.mean() / cyc)
        assert r["busy_pct"]["max"] == pytest.approx(100 * busy.max() / cyc)
        g_min = int(w[np.argmin(busy)])
        assert r["busy_pct"]["min_pe"] == g_min
        assert r["busy_pct"]["min_pe_name"] == f"PE ({g_min}, 0)"
        for cause in ("operand", "credit", "data", "arbitration"):
            assert r["stall_pct"][cause] == pytest.approx(100 * uc["stall_" + cause][w, u].mean() / cyc)


def test_hand_derived_figures(res):
    s = summarize(res)
    cyc = res.cycles
    gemm = row(s, "GEMM")
    # Every PE runs the same dot: min = mean = max = 760 / cycles.
    for k in ("min", "mean", "max"):
        assert gemm["busy_pct"][k] == pytest.approx(100 * GEMM_BUSY / cyc)
    assert gemm["work"] == 3 * DOT_FLOPS and gemm["work_unit"] == "flop"
    # VECTOR: PE 0 only exps (264); PEs 1 and 2 also add what they received (264 + 72 = 336).
    vec = row(s, "VECTOR")
    assert vec["busy_pct"]["min"] == pytest.approx(100 * EXP_BUSY / cyc)
    assert vec["busy_pct"]["min_pe_name"] == "PE (0, 0)"
    assert vec["busy_pct"]["max"] == pytest.approx(100 * (EXP_BUSY + ADD_BUSY) / cyc)
    assert vec["work"] == 3 * 4096 + 2 * 4096
    # TX_E: PEs 0 and 1 send 16 KiB (512 cycles); PE 2, the east end, sends nothing.
    tx = row(s, "TX_E")
    assert tx["busy_pct"]["min"] == 0.0 and tx["busy_pct"]["min_pe_name"] == "PE (2, 0)"
    assert tx["busy_pct"]["max"] == pytest.approx(100 * SEND_BUSY / cyc)
    assert tx["work"] == 2 * 16384 and tx["work_unit"] == "byte"
    # DMA bytes: per PE two 16 KiB loads and one 16 KiB store.
    assert row(s, "DMA")["work"] == 3 * 3 * 16384
    t = s["totals"]
    seconds = cyc / 1.5e9
    assert t["flops"] == 3 * DOT_FLOPS
    assert t["achieved_tflops"] == pytest.approx(3 * DOT_FLOPS / seconds / 1e12)
    # Peak of the 3 working PEs: 2 * 32 * 32 flop/cycle * 3 * 1.5 GHz = 9.216 TFLOP/s.
    assert t["peak_tflops"] == pytest.approx(9.216)
    # Memory: one cube channel of 256 B/cycle at 1.5 GHz = 384 GB/s.
    assert t["memory_peak_gbps"] == pytest.approx(384.0)
    ln = s["links"]
    assert ln["bytes"] == 2 * 16384 and ln["links_used"] == 2 and ln["messages"] == 2
    assert ln["packets"] == 2 * 64
    # Two used links of 32 B/cycle at 1.5 GHz: 2 * 48 GB/s.
    assert ln["peak_gbps"] == pytest.approx(96.0)
    assert ln["achieved_gbps"] == pytest.approx(2 * 16384 / seconds / 1e9)


def test_units_shown_and_ns_hidden(res):
    names = [r["unit"] for r in summarize(res)["units"]]
    assert names == ["GEMM", "VECTOR", "DMA", "TX_E", "TX_W", "RX_E", "RX_W"]
    assert Unit.TX_N not in unit_kinds(res)


def test_table_text_shows_counter_figures(res):
    text = print_report(res, file=io.StringIO())
    uc = res.unit_counters
    cyc = res.cycles
    # The GEMM row: busy min/mean/max, the least busy PE and the command count.
    busy = uc["busy"][[0, 1, 2], Unit.GEMM]
    gemm_line = next(l for l in text.splitlines() if l.strip().startswith("GEMM "))
    expect = "/".join(f"{100 * v / cyc:.1f}" for v in (busy.min(), busy.mean(), busy.max()))
    assert expect in gemm_line
    assert "PE (0, 0)" in gemm_line
    assert re.search(rf"\s{int(uc['commands'][:, Unit.GEMM].sum())}\s", gemm_line)
    # The DMA row shows the mean arbitration stall inside busy.
    arb = 100 * uc["stall_arbitration"][[0, 1, 2], Unit.DMA].mean() / cyc
    dma_line = next(l for l in text.splitlines() if l.strip().startswith("DMA "))
    assert f"arb {arb:.1f}" in dma_line
    # Totals: time at clock, TFLOP/s, SRAM.
    assert f"{cyc:,} cycles = {cyc / 1.5e3:.3f} us at 1.5 GHz" in text
    assert "of 9.22 TFLOP/s peak" in text
    # PEs 1 and 2 post their recv at cycle 0, so its 16 KiB buffer is live while the dot runs
    # with its two 16 KiB operands and 16 KiB result: 64 KiB.
    assert "peak 64 KiB of 16 MiB" in text
    assert "OVER CAPACITY" not in text


def test_report_method_prints_to_console(res):
    buf = io.StringIO()
    text = res.report(console=Console(file=buf, width=140, color_system=None))
    printed = buf.getvalue()
    assert "least" in printed and "RX_W" in printed
    assert text.splitlines()[0].startswith("fake_kernel on default")


def test_sram_over_capacity_is_flagged():
    # 32 KiB capacity: a PE that loads two 16 KiB tensors and adds them holds 16 + 16 + 16 KiB
    # while the add runs (operands live until their last reader ends; the result from its start).
    hw = load_hw("default").with_overrides({"sram.capacity_bytes": 32768})
    streams = []
    for _p in range(2):
        b = StreamBuilder()
        x = b.load(16384, line=1)
        y = b.load(16384, line=2)
        z = b.vec(VecOp.ADD, 4096, x, y, line=3)
        b.store(z, 16384, line=4)
        streams.append(b)
    r = launch(streams, hw=hw, grid=(2, 1))
    s = summarize(r)
    assert r.peak_sram[0] == 3 * 16384
    assert s["sram"]["over_capacity"] is True
    assert s["sram"]["over_pe_names"] == ["PE (0, 0)", "PE (1, 0)"]
    assert s["sram"]["peak_fraction"] == pytest.approx(1.5)
    text = print_report(r, file=io.StringIO())
    assert "OVER CAPACITY on 2 PEs: PE (0, 0), PE (1, 0)" in text
    assert "peak 48 KiB of 32 KiB (150%)" in text  # 3 significant digits, as every figure
    # far over: 3 digits, every integer digit grouped (a review found "(3276800.0%)")
    r = launch(streams, hw=hw.with_overrides({"sram.capacity_bytes": 8}), grid=(2, 1))
    assert "peak 48 KiB of 8 B (614,400%)" in print_report(r, file=io.StringIO())


def test_empty_launch_reports_zeros():
    r = launch([None])
    s = summarize(r)
    assert s["cycles"] == 0 and s["working_pes"] == 0
    assert all(x["busy_pct"]["min_pe"] is None and x["commands"] == 0 for x in s["units"])
    text = print_report(r, file=io.StringIO())
    assert "0 cycles" in text and "no link traffic" in text
    # the peaks of the working PEs and their cubes' channels: none (a review found one PE's)
    assert s["totals"]["peak_tflops"] == 0 and s["totals"]["memory_peak_gbps"] == 0
    assert "0 of 0 TFLOP/s peak" in text and "0 of 0 GB/s (0 cube channels)" in text
    # the result's own peak and the SRAM line agree: no working PE, none named (a review found
    # one PE's peak and "on PE (0, 0)")
    assert r.peak_tflops == 0 and s["sram"]["peak_pe"] is None
    assert "on PE" not in text


def test_busiest_link_is_the_one_busy_longest():
    """PE 0 sends 64 messages of 4 bytes east (a packet each: ceil(4 / 32) = 1 cycle on the
    wire, 64 busy cycles, 256 bytes); PE 1 sends one of 260 bytes east (packets of 256 and 4
    bytes: 8 + 1 = 9 busy cycles, 260 bytes). The busiest link is PE 0's, which carried fewer
    bytes (a review found the one with the most bytes named, with its 2.5% busy)."""
    p0, p1, p2 = StreamBuilder(), StreamBuilder(), StreamBuilder()
    t = p0.load(256, line=30)
    for _ in range(64):
        p0.send("E", t, 4, line=31)
        p1.recv("W", 4, line=40)
    u = p1.load(512, line=41)
    p1.send("E", u, 260, line=42)
    p2.recv("W", 260, line=50)
    r = launch([p0, p1, p2])
    busy = r.engine.link_counters["busy"]
    assert busy[0 * 4 + 0] == 64 and busy[1 * 4 + 0] == 9  # (link id = PE * 4 + port, E = 0)
    ln = summarize(r)["links"]
    assert ln["busiest_link"] == 0 and ln["busiest_link_name"] == "PE (0, 0) -> E"
    assert ln["busiest_link_busy_pct"] == pytest.approx(100 * 64 / r.cycles)


def test_north_south_rows_appear_when_used():
    # Wire PE 0's N port to PE 1's S port by hand (no SFR install uses N/S yet).
    hw = load_hw("default")
    nbr = np.full((hw.n_pes, 4), -1, np.int32)
    nbr[0, 2], nbr[1, 3] = 1, 0  # ports: 0 E, 1 W, 2 N, 3 S
    a, b = StreamBuilder(), StreamBuilder()
    t = a.load(4096, line=1)
    a.send("N", t, 4096, line=2)
    b.recv("S", 4096, line=3)
    r = launch([a, b], neighbours=nbr, grid=(2, 1))
    s = summarize(r)
    names = [x["unit"] for x in s["units"]]
    assert names == ["GEMM", "VECTOR", "DMA", "TX_E", "TX_W", "TX_N", "RX_E", "RX_W", "RX_S"]
    # 4 KiB = 16 packets of 256 B at 8 cycles each: TX_N busy 128 cycles on PE 0.
    assert row(s, "TX_N")["busy_cycles"] == 16 * 8 and row(s, "TX_N")["work"] == 4096
    assert row(s, "RX_S")["work"] == 4096
    text = print_report(r, file=io.StringIO())
    assert re.search(r"^\s*TX_N\s", text, re.M) and re.search(r"^\s*RX_S\s", text, re.M)
    assert not re.search(r"^\s*TX_S\s", text, re.M)


# -- narrow consoles: every figure whole -----------------------------------------------------------
def figures(s: dict) -> list:
    """Every figure of the unit rows as the table prints it."""
    from kernbench.report.table import _rate, _work

    out = []
    for r in s["units"]:
        b = r["busy_pct"]
        out += [f"{b['min']:.1f}/{b['mean']:.1f}/{b['max']:.1f}", f"{r['stall_pct']['operand']:.1f}",
                f"{r['commands']:,}", _work(r), _rate(r)]
        if r["commands"]:
            out.append(b["min_pe_name"])
    return out


def worst_case(res) -> dict:
    """A summary with the widest figures a report can have: full units, 5-digit PE names,
    10-digit command counts, 4-digit rates."""
    s = summarize(res)
    for r in s["units"]:
        r["busy_pct"].update(min=100.0, mean=100.0, max=100.0, min_pe_name="PE (15, 4095)")
        r["stall_pct"] = {k: 100.0 for k in r["stall_pct"]}
        r["commands"], r["work"], r["rate_per_s"] = 1_234_567_890, 1.23e15, 1.57e15
    s["kernel"] = "a_long_kernel_name_for_the_title"
    s["cycles"], s["seconds"], s["commands"] = 4_116_961_294, 2.74464, 1_234_567_890
    return s


@pytest.mark.parametrize("case", ["pipeline", "worst"])
def test_every_figure_is_whole_at_80_columns(res, case):
    from kernbench.report.table import render_report

    s = summarize(res) if case == "pipeline" else worst_case(res)
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(render_report(res, s))
    text = buf.getvalue()
    assert "…" not in text
    assert max(len(l.rstrip()) for l in text.splitlines()) <= 80
    for fig in figures(s):
        assert fig in text, f"{fig!r} missing or cut at 80 columns:\n{text}"
    assert f"{s['cycles']:,} cycles" in text
    # the unit names head both halves of the split table
    assert len(re.findall(r"^\s+GEMM\s", text, re.M)) == 2  # (the totals line starts at column 0)


def test_a_wide_console_keeps_one_table(res):
    text = print_report(res, file=io.StringIO(), width=120)
    header = next(l for l in text.splitlines() if l.strip().startswith("unit"))
    assert "min/mean/max" in header and "commands" in header and "rate" in header
    assert len(re.findall(r"^\s+GEMM\s", text, re.M)) == 1


def test_figures_format_alike():
    from kernbench.report.table import fmt_bytes, fmt_count, fmt_num, fmt_seconds, plural

    assert [fmt_num(x) for x in (0, 0.8413, 98.304, 196.6, 999.4, 999.6, 1572.864, 24576)] == \
        ["0", "0.841", "98.3", "197", "999", "1,000", "1,573", "24,576"]
    assert fmt_count(1.23e15, "FLOP") == "1.23 PFLOP" and fmt_count(4.2e18) == "4,200 P"
    assert fmt_bytes(1536) == "1.5 KiB"
    # a 2.7 s launch once printed as "2,744,640.9 us"
    assert [fmt_seconds(t) for t in (2.74464, 0.0123, 1.741e-6, 8.413e-7, 0)] == \
        ["2.745 s", "12.3 ms", "1.741 us", "841.3 ns", "0 ns"]
    assert (plural(1, "cube"), plural(4, "cube"), plural(1234, "PE")) == ("1 cube", "4 cubes", "1,234 PEs")
    # never in exponent form (docs/reports.md; a review found 9.11e-08 TFLOP/s and 6.872e+04 s)
    assert [fmt_num(x) for x in (9.11e-08, 4.5649e-05, -0.000123)] == ["0.0000000911", "0.0000456", "-0.000123"]
    assert [fmt_seconds(t) for t in (68719.7389, 5208.0, 9999.6)] == ["68,720 s", "5,208 s", "10,000 s"]
    assert fmt_count(1.25e-7, "B") == "0.000000125 B"
    # more digits keep them up to 1,000, and a duration takes the next unit once rounded to it (a
    # review found 1,499,300 cycles at 1.5 GHz printed "1,000 us")
    assert [fmt_num(999.7, 4), fmt_num(5208.4, 4), fmt_num(-1234.5)] == ["999.7", "5,208", "-1,234"]
    assert [fmt_seconds(t) for t in (999.5e-6, 999.96e-6, 1499300 / 1.5e9)] == ["999.5 us", "1 ms", "999.5 us"]
    assert fmt_num(2 ** 70) == "1,180,591,620,717,411,303,424" and fmt_count(float("nan"), "B") == "nan B"
    # a unit once rounded to it, as fmt_seconds (a review found "1,000 kFLOP" and "1,024 KiB")
    assert (fmt_count(999_999, "FLOP"), fmt_bytes(1048575), fmt_bytes(1023)) == ("1 MFLOP", "1 MiB", "1,023 B")
    with pytest.raises(ValueError, match="digits must be an int of 3 or more"):
        fmt_num(0.012345, 2)
    assert (fmt_seconds(float("inf")), fmt_num(999.7, np.int64(4))) == ("inf s", "999.7")


@given(st.floats(min_value=-1e30, max_value=1e30, allow_nan=False))
@settings(max_examples=300, deadline=None)
def test_figures_are_never_in_exponent_form_and_keep_their_digits(x):
    from kernbench.report.table import fmt_bytes, fmt_count, fmt_num, fmt_seconds, fmt_value

    for f in (fmt_num, fmt_count, fmt_bytes, fmt_seconds, fmt_value):
        assert "e" not in f(x).split(" ")[0].lower(), (f.__name__, x, f(x))
    back = float(fmt_num(x).replace(",", ""))
    # 3 significant digits (every integer digit from 1,000 up): within half a unit of the third
    assert abs(back - x) <= 0.5 * 10 ** (math.floor(math.log10(abs(x))) - 2) + 0.5 if x else back == 0
    assert float(fmt_value(x)) == x  # a value as given: every digit repr would show


def test_a_report_of_tiny_rates_and_long_times_has_no_exponent():
    # a review's cases: 2 FLOPs beside an 8 MiB load (TFLOP/s of 1e-7), and a 68,720 s launch
    import kernbench

    def k(x_ptr, *, tl):
        a = tl.zeros((1, 1), "f16")
        tl.dot(a, a)
        tl.load(x_ptr, shape=(1 << 22,), dtype="f16")

    ctx = kernbench.Context("default")
    text = ctx.launch(k, (1, 1), ctx.empty((1 << 22,), "f16"), mode="timing").report(file=io.StringIO())
    assert "0.0000000911 TFLOP/s" in text and not re.search(r"\d[eE][+-]?\d", text)

    def big(*, tl):
        a = tl.zeros((1 << 12, 1 << 12), "f16")
        tl.dot(a, a)

    ctx = kernbench.Context("default", overrides={"gemm.rows": 1, "gemm.cols": 1, "clock_ghz": 1e-9})
    text = ctx.launch(big, (1, 1), mode="timing").report(file=io.StringIO())
    assert " at 0.000000001 GHz" in text and not re.search(r"\d[eE][+-]?\d", text)


def test_report_lines_count_in_words(res):
    text = print_report(res, file=io.StringIO())
    assert "grid 3 PEs x 1 cube, 3 working PEs" in text and "(1 cube channel)" in text
    assert "on 2 links" in text and "(s)" not in text


def test_print_report_to_a_path(res, tmp_path):
    text = print_report(res, file=tmp_path / "r.txt")
    assert (tmp_path / "r.txt").read_text() == text
    print_report(res, file=str(tmp_path / "s.txt"))
    assert (tmp_path / "s.txt").read_text() == text


def test_utilization_by_unit_name(res):
    np.testing.assert_array_equal(res.utilization("DMA"), res.utilization(Unit.DMA))
    np.testing.assert_array_equal(res.utilization("tx_e"), res.utilization(int(Unit.TX_E)))
    with pytest.raises(ValueError, match=r"unknown unit 'DMX': expected one of GEMM, VECTOR, DMA, TX_E, "):
        res.utilization("DMX")
    with pytest.raises(ValueError, match=r"unknown unit 11: .*index 0\.\.10"):
        res.utilization(11)


def test_a_peak_just_over_capacity_is_written_in_bytes():
    """8,192 B of 8,191 B read "8 KiB of 8 KiB ... OVER CAPACITY" (a review): when the two
    would read the same they are written in whole bytes."""
    import kernbench
    from kernbench.report.table import fmt_bytes_pair

    assert fmt_bytes_pair(8192, 8191) == ("8,192 B", "8,191 B")
    assert fmt_bytes_pair(8192, 8192) == ("8 KiB", "8 KiB")
    assert fmt_bytes_pair(1536, 16 << 20) == ("1.5 KiB", "16 MiB")
    ctx = kernbench.Context("default", overrides={"sram": {"capacity_bytes": 8191}})

    def k(p, *, tl):
        tl.load(p, shape=(2048,))

    r = ctx.launch(k, (1, 1), ctx.empty((2048,), "f32"), mode="timing")
    line = next(ln for ln in r.report(width=200).splitlines() if ln.startswith("SRAM"))
    assert "peak 8,192 B of 8,191 B (100%) on PE (0, 0)  OVER CAPACITY on 1 PE: PE (0, 0)" in line, line


def _exp_chain(x_ptr, o_ptr, *, tl):
    x = tl.load(x_ptr, shape=(16384,), dtype="f32")
    for _ in range(8):
        x = tl.exp(x)
    tl.store(o_ptr, x)


def _two_pe_stream(x_ptr, o_ptr, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(16384,), dtype="f32"))


def test_the_bound_row_names_the_busiest_resource():
    """The model's bound on a launch (summary["bound"], the table's "bound" row; a review: only
    the diag panels had it, and a user's report could not say whether anything was left to
    gain). By hand, docs/hardware-model.md, default preset:
    exp chain on one PE: load 64 KiB = 128 bursts x 2 + 150 = 406; exp of 16,384 elements =
    ceil(16384 / 64) x 4 + 8 = 1,032, 8 of them = 8,256; store 406: 9,068 cycles. VECTOR busy
    8,256, DMA busy 812 (alone: no arbitration), channel 812 - 2 x 150 = 512, no GEMM, no link:
    bound VECTOR 8,256 on PE (0, 0), the launch 9068 / 8256 = 1.098x that.
    Two PEs copying 64 KiB each (load then store): each PE's DMA runs load and store one after
    another; the channel serves both PEs' 512 bursts of 2 cycles: 1,024 x 2 = 2,048 cycles of
    cube 0's channel, more than any one PE's DMA alone (256 + 150 per command, 812): bound the
    memory channel of cube 0."""
    from kernbench import Context

    ctx = Context("default")
    r = ctx.launch(_exp_chain, (1, 1), ctx.empty((16384,), "f32"), ctx.empty((16384,), "f32"), mode="timing")
    assert r.cycles == 406 + 8 * 1032 + 406
    b = summarize(r)["bound"]
    assert (b["cycles"], b["resource"], b["where"]) == (8 * 1032, "VECTOR", "PE (0, 0)")
    assert b["ratio"] == pytest.approx(9068 / 8256)
    text = print_report(r, file=io.StringIO(), width=200)
    assert ("bound     8,256 cycles, the busiest resource's busy time (VECTOR, PE (0, 0)): no schedule of "
            "these commands ends sooner; the launch takes 1.098x that (what it waits on: critical_path(), "
            "--profile)") in text
    r2 = ctx.launch(_two_pe_stream, (2, 1), ctx.empty((2, 16384), "f32"), ctx.empty((2, 16384), "f32"),
                    mode="timing")
    b2 = summarize(r2)["bound"]
    assert (b2["cycles"], b2["resource"], b2["where"]) == (2 * 2 * 128 * 2, "memory channel", "cube 0")


def _load64k(x_ptr, *, tl):
    tl.load(x_ptr + tl.program_id(0) * 65536, shape=(16384,), dtype="f32")


def test_the_bound_row_says_a_busier_unit_counts_its_waits():
    """(a review read "the busiest resource" against a DMA row busier than the resource it named.)
    Eight PEs each loading 64 KiB at once (docs/hardware-model.md): cube 0's channel holds 1,024
    bursts of 2 cycles, 2,048, the bound; PE 7's load ends at 2,198, 1,792 of it waiting for the
    channel: its DMA row is busier than the bound, and the row says why. One PE alone: no note."""
    from kernbench import Context

    ctx = Context("default")
    r = ctx.launch(_load64k, (8, 1), ctx.empty((8 * 16384,), "f32"), mode="timing")
    b = summarize(r)["bound"]
    assert (b["cycles"], b["resource"], r.cycles) == (2048, "memory channel", 2198)
    text = " ".join(print_report(r, file=io.StringIO(), width=400).split())
    assert text.endswith("(what it waits on: critical_path(), --profile); DMA's busy above counts its "
                         "waits for the memory channel too, the bound a unit's own work")
    one = ctx.launch(_load64k, (1, 1), ctx.empty((8 * 16384,), "f32"), mode="timing")
    assert " ".join(print_report(one, file=io.StringIO(), width=400).split()).endswith(
        "(what it waits on: critical_path(), --profile)")


def _credit_bound(x_ptr, *, tl):
    x = tl.load(x_ptr, shape=(64, 64), dtype="f32")
    if tl.program_id(0) == 0:
        tl.send("E", x)
    else:
        tl.store(x_ptr, tl.recv("W", (64, 64), "f32"))


def test_a_credit_bound_row_says_nothing_of_waits():
    """(a review: the note said "the bound a unit's own work" beside a bound made of credit round
    trips.) 16 KiB in 64-byte packets with 2 credits: the link's credits bind, and its waits are
    the bound's own: no note."""
    from kernbench import Context

    ctx = Context(load_hw().with_overrides({"link.rx_queue_packets": 2, "link.packet_bytes": 64}))
    ctx.install_sfr("pe")
    r = ctx.launch(_credit_bound, (2, 1), ctx.empty((64, 64), "f32"), mode="timing")
    assert summarize(r)["bound"]["resource"] == "link credits"
    assert " ".join(print_report(r, file=io.StringIO(), width=400).split()).endswith(
        "(what it waits on: critical_path(), --profile)")


def _nothing(x_ptr, *, tl):
    return


def test_a_launch_that_ran_no_command_names_no_bound_resource(tmp_path):
    """No PE ran a command: no resource was busy, so the bound is resource "none" (as a
    sweep's ``bound`` column says) and where None (a review found DMA on PE (0, 0), the first
    of the all-zero candidates, though docs/reports.md counts only working PEs' units). The
    table has no bound row, and --json's ``summary.bound`` says the same and round-trips."""
    import json

    from kernbench import Context
    from kernbench.report import from_json, to_json

    ctx = Context("default")
    r = ctx.launch(_nothing, (8, 1), ctx.empty((8,), "f32"))
    assert r.engine.cycles == 0 and len(r.working_pes) == 0
    b = summarize(r)["bound"]
    assert b == {"cycles": 0, "resource": "none", "where": None, "ratio": None}
    text = print_report(r, file=io.StringIO(), width=200)
    assert not re.search(r"^\s*bound\s", text, re.M) and "DMA, PE (0, 0)" not in text
    doc = to_json(r, tmp_path / "run.json")
    assert doc["summary"]["bound"] == b == json.loads((tmp_path / "run.json").read_text())["summary"]["bound"]
    back = from_json(tmp_path / "run.json")
    assert summarize(back)["bound"] == b and to_json(back) == doc


def test_a_short_receive_queue_makes_the_link_credits_the_bound():
    """A review: with link.rx_queue_packets = 2 the bound named the link's serialisation (512
    cycles) and the launch 6.8x it, though no schedule could do better than the credit round
    trips. Derivation (default link: packets of 256 B at 32 B/cycle, ser = 8, hop h = 50): packet
    i leaves no sooner than 2h + ser after packet i - 2, so 64 packets take at least
    floor(63 / 2) * 108 + 8 = 3,356 cycles; the launch (the fill's 72 cycles, then the message)
    takes 3,486."""
    import kernbench
    from kernbench.report.summary import bound

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2, "link.rx_queue_packets": 2})
    ctx.install_sfr("pe")

    def k(*, tl):
        if tl.program_id(0) == 0:
            tl.send(dir="E", src=tl.zeros((64, 64), "f32"))
        else:
            tl.recv(dir="W", shape=(64, 64), dtype="f32")

    r = ctx.launch(k, (2, 1), mode="timing")
    b = bound(r)
    assert (b["cycles"], b["resource"], b["where"]) == (31 * 108 + 8, "link credits", "PE (0, 0) -> E")
    assert r.cycles >= b["cycles"] and r.cycles == 3486
    assert ("3,356 cycles, the credit round trips of link PE (0, 0) -> E's packets, link.rx_queue_packets "
            "at a time (link credits): no schedule") in " ".join(r.report().split())
    # with the default queue (32) the round trips do not bind: the serialisation is the bound
    ctx2 = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    ctx2.install_sfr("pe")
    assert bound(ctx2.launch(k, (2, 1), mode="timing"))["resource"] == "link"


def test_the_bound_is_never_above_the_launch_on_credit_bound_links():
    """No schedule beats the bound, so no launch does: random links (packet sizes, bandwidths,
    hops, receive queues of 1-4), messages of whole and partial packets, recvs posted late
    behind vector work on either side."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    import kernbench
    from kernbench.report.summary import bound

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(st.sampled_from([4, 8, 64, 256]), st.sampled_from([1, 4, 32]), st.integers(1, 60),
           st.integers(1, 4), st.lists(st.integers(1, 300), min_size=1, max_size=4), st.integers(0, 3))
    def check(P, bw, h, Q, sizes, late):
        ctx = kernbench.Context("default", overrides={
            "n_cubes": 1, "pes_per_cube": 2, "link.packet_bytes": P, "link.bytes_per_cycle": bw,
            "link.hop_latency_cycles": h, "link.rx_queue_packets": Q})
        ctx.install_sfr("pe")

        def k(*, tl):
            for n in sizes:
                if tl.program_id(0) == 0:
                    tl.send(dir="E", src=tl.zeros((n,), "f32"))
                else:
                    g = tl.zeros((64,), "f32")
                    for _ in range(late):
                        g = tl.exp(g)
                    tl.recv(dir="W", shape=(n,), dtype="f32", after=g if late else None)

        r = ctx.launch(k, (2, 1), mode="timing")
        b = bound(r)
        assert r.cycles >= b["cycles"] > 0
        seen.add(b["resource"])

    seen = set()
    check()
    assert "link credits" in seen  # (the credit bound bound some of them)


@pytest.mark.parametrize("n, want", [(16384, 255 * 100 + 256 * 8), (16385, 256 * 100 + 256 * 8 + 1)])
def test_a_short_last_packet_costs_the_credit_bound_one_packet_only(n, want):
    """A breaker: 4 bytes more (a short 257th packet) made every packet count 1 cycle, and the
    bound fell by 1,691 as work was added. Derivation (packets of 256 B at 32 B/cycle, ser = 8;
    h = 50; Q = 1): 64 KiB is 256 packets, each a round trip 2h after the one before: 255 x 100
    + 256 x 8 = 27,548. One element more: 257 packets, the short last one counted 1 cycle: 256 x
    100 + 256 x 8 + 1 = 27,649."""
    import kernbench
    from kernbench.report.summary import bound

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2, "link.rx_queue_packets": 1})
    ctx.install_sfr("pe")

    def k(*, tl):
        if tl.program_id(0) == 0:
            tl.send(dir="E", src=tl.zeros((n,), "f32"))
        else:
            tl.recv(dir="W", shape=(n,), dtype="f32")

    r = ctx.launch(k, (2, 1), mode="timing")
    b = bound(r)
    assert (b["cycles"], b["resource"]) == (want, "link credits") and r.cycles >= want


def test_only_the_messages_with_a_short_last_packet_count_one_cycle():
    """A review: a link carrying one message of whole packets (4,096 B: 16) and one with a short
    last packet (9,000 B: 35 whole and one of 40 B) counted both as short, a bound 7 cycles
    looser than docs/reports.md's formula. Derivation (packets of 256 B at 32 B/cycle, ser = 8;
    h = 50; Q = 1): 52 packets, each a round trip after the one before: 51 x 100 + 51 x 8 + 1
    = 5,509 (the one short packet 1 cycle)."""
    import kernbench
    from kernbench.report.summary import bound

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2, "link.rx_queue_packets": 1})
    ctx.install_sfr("pe")

    def k(*, tl):
        if tl.program_id(0) == 0:
            tl.send(dir="E", src=tl.zeros((1024,), "f32"))
            tl.send(dir="E", src=tl.zeros((2250,), "f32"))
        else:
            tl.recv(dir="W", shape=(1024,), dtype="f32")
            tl.recv(dir="W", shape=(2250,), dtype="f32")

    r = ctx.launch(k, (2, 1), mode="timing")
    b = bound(r)
    assert (b["cycles"], b["resource"]) == (5509, "link credits") and r.cycles >= 5509


def test_the_docs_sample_table_is_what_prints():
    """docs/reports.md's sample table is this launch's report at 105 columns, line for line (a
    review found its bound row short of the clause the prose describes, and its columns wider
    than they print: the sample had been pasted once and gone stale)."""
    import pathlib

    doc = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "reports.md").read_text()
    sample = re.search(r"```text\n(fake_kernel on default.*?)```", doc, re.S).group(1).strip()
    out = io.StringIO()
    line_pipeline(n_pes=3).report(file=out, width=105)
    assert "\n".join(x.rstrip() for x in out.getvalue().splitlines()).strip() == sample


def test_a_percentage_below_one_keeps_three_significant_digits():
    from kernbench.report.table import fmt_pct
    assert [fmt_pct(p) for p in (100.0, 37.25, 1.0, 0.9995, 0.0, 0.5, 0.0000318, 0.04567)] == [
        "100.0", "37.2", "1.0", "1.0", "0.0", "0.5", "0.0000318", "0.0457"]
