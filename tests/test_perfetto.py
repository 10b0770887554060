"""The Perfetto / Chrome trace-event file: valid, well-formed, and equal to the engine's counters;
streamed (equal to the in-memory event list), gzip-compressed for .gz, filtered by PEs and cycle
window from Python and the command line; every flow points forward in time."""
import dataclasses
import gzip
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

import kernbench
from kernbench.cli import main, parse_pes, parse_window
from kernbench.common.pe_commands import N_UNITS, UNIT_NAMES
from kernbench.report import perfetto, to_perfetto
from kernbench.report.perfetto import trace_events

from report_helpers import line_pipeline, ring_exchange

# Fields the trace-event format requires per phase (ts in microseconds; X adds dur; flow
# events s/f add id; metadata M carries its value in args).
REQUIRED = {
    "X": {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"},
    "s": {"name", "cat", "ph", "ts", "pid", "tid", "id"},
    "f": {"name", "cat", "ph", "ts", "pid", "tid", "id", "bp"},
    "M": {"name", "ph", "pid", "args"},
}


@pytest.fixture(scope="module")
def ring():
    return ring_exchange(n_pes=4, rounds=3)


def load(path):
    with (gzip.open(path, "rt") if str(path).endswith(".gz") else open(path)) as f:
        return json.load(f)  # raises on invalid JSON


def ns(cycles, clock_ghz=1.5):
    """A cycle on the trace's whole-nanosecond grid, in microseconds."""
    return round(cycles / clock_ghz) / 1000


def slices(trace):
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


@pytest.mark.parametrize("make", [ring_exchange, line_pipeline])
def test_valid_json_with_required_fields(make, tmp_path):
    r = make()
    p = tmp_path / "t.json"
    to_perfetto(r, p)
    trace = load(p)
    assert trace["displayTimeUnit"] == "ns"
    for ev in trace["traceEvents"]:
        assert ev["ph"] in REQUIRED, ev
        missing = REQUIRED[ev["ph"]] - set(ev)
        assert not missing, (ev, missing)
        if ev["ph"] == "X":
            assert ev["dur"] >= 0 and ev["ts"] >= 0
            assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
        if ev["ph"] == "M":
            assert ev["name"] in ("process_name", "process_sort_index", "thread_name", "thread_sort_index")
    # One slice per command of the working PEs.
    assert len(slices(trace)) == r.program.n_commands


def test_processes_threads_and_args(ring, tmp_path):
    p = tmp_path / "t.json"
    to_perfetto(ring, p)
    trace = load(p)
    meta = [e for e in trace["traceEvents"] if e["ph"] == "M"]
    procs = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    assert sorted(procs.values()) == [f"PE ({p}, 0)" for p in range(4)]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    # Each ring PE uses DMA, VECTOR, TX_E and RX_W: one named thread each.
    assert sorted(set(threads.values())) == ["DMA", "RX_W", "TX_E", "VECTOR"]
    assert len(threads) == 4 * 4
    us_per_cycle = 1 / (1.5 * 1e3)
    for ev in slices(trace):
        a = ev["args"]
        i = a["cmd"]
        assert ev["name"] == ring.label(i) and "label" not in a  # the name is the label
        assert a["source"] == ring.source(i)
        assert threads[(ev["pid"], ev["tid"])] == UNIT_NAMES[int(ring.program.commands["unit"][i])]
        assert procs[ev["pid"]] == ring.pe_name(int(np.searchsorted(ring.program.cmd_offsets, i, "right") - 1))
        assert a["start_cycle"] == ring.engine.cmd_start[i] and a["end_cycle"] == ring.engine.cmd_end[i]
        # Whole nanoseconds: within half a nanosecond of the exact time, on the grid exactly.
        assert ev["ts"] == ns(a["start_cycle"]) == pytest.approx(a["start_cycle"] * us_per_cycle, abs=0.5e-3)
        assert ev["ts"] + ev["dur"] == pytest.approx(ns(a["end_cycle"]), abs=1e-9)
        if a["op"] in ("send", "recv", "load", "store"):
            assert a["bytes"] == 8192
        if a["op"] == "send":
            assert a["port"] == "E" and a["peer"].startswith("PE (")


def test_slices_on_one_thread_never_overlap(ring, tmp_path):
    p = tmp_path / "t.json"
    to_perfetto(ring, p)
    by_thread = defaultdict(list)
    for ev in slices(load(p)):
        by_thread[(ev["pid"], ev["tid"])].append(ev)
    for evs in by_thread.values():
        evs.sort(key=lambda e: e["args"]["start_cycle"])
        for a, b in zip(evs, evs[1:]):
            assert a["args"]["end_cycle"] <= b["args"]["start_cycle"]
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-9


def enclosing(trace, flow_ev):
    inside = [e for e in slices(trace) if (e["pid"], e["tid"]) == (flow_ev["pid"], flow_ev["tid"])
              and e["ts"] < flow_ev["ts"] < e["ts"] + e["dur"]]
    assert len(inside) == 1, flow_ev
    return inside[0]


def test_every_flow_has_both_ends_on_its_slices(ring, tmp_path):
    p = tmp_path / "t.json"
    to_perfetto(ring, p)
    trace = load(p)
    by_cmd = {ev["args"]["cmd"]: ev for ev in slices(trace)}
    flows = defaultdict(dict)
    for ev in trace["traceEvents"]:
        if ev["ph"] in "sf":
            assert ev["ph"] not in flows[ev["id"]], "two flow starts (or ends) with one id"
            flows[ev["id"]][ev["ph"]] = ev
    # 4 PEs x 3 rounds = 12 messages, each one flow with a start and an end.
    assert len(flows) == len(ring.engine.messages) == 12
    sends = {}
    for _fid, ends in flows.items():
        assert set(ends) == {"s", "f"}
        s, f = ends["s"], ends["f"]
        assert (s["name"], s["cat"]) == (f["name"], f["cat"])
        # Each end lies strictly inside exactly one slice of its own thread (never on a boundary
        # between back-to-back slices, where the binding would be ambiguous).
        send, recv = (enclosing(trace, ev) for ev in (s, f))
        assert send["args"]["op"] == "send" and recv["args"]["op"] == "recv"
        sends[send["args"]["cmd"]] = recv["args"]["cmd"]
    assert sends == {int(m["send"]): int(m["recv"]) for m in ring.engine.messages}
    procs = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    for s, r in sends.items():  # each end names the other end's PE
        assert by_cmd[r]["args"]["peer"] == procs[by_cmd[s]["pid"]]
        assert by_cmd[s]["args"]["peer"] == procs[by_cmd[r]["pid"]]


def test_slice_durations_sum_to_busy_counters(ring, tmp_path):
    p = tmp_path / "t.json"
    to_perfetto(ring, p)
    trace = load(p)
    cycles_per_us = 1.5 * 1e3
    dur_us = Counter()
    dur_cycles = Counter()
    n = Counter()
    for ev in slices(trace):
        key = (ev["pid"] - 1, (ev["tid"] - 1) % N_UNITS)  # pid = PE + 1, tid = PE * 11 + unit + 1
        dur_us[key] += ev["dur"]
        dur_cycles[key] += ev["args"]["cycles"]
        n[key] += 1
    busy = ring.unit_counters["busy"]
    for g in range(ring.hw.n_pes):
        for u in range(N_UNITS):
            assert dur_cycles[(g, u)] == busy[g, u]
            # each slice's ends are rounded to the nanosecond: within 1 ns of it per slice
            assert dur_us[(g, u)] * cycles_per_us == pytest.approx(busy[g, u], abs=1.5 * n[(g, u)] + 1e-6)


def test_a_flow_starts_inside_its_send_when_its_recv_lasts_0_ns(tmp_path):
    """Two back-to-back 4 KiB sends (16 packets each: both fit the queue) whose recvs are posted
    after an exp of 65,536 elements (4104 cycles), long after the data landed: each recv lasts
    0 cycles. Each end has its own inset: the send's end 1 ns into its 85-86 ns slice, not on
    the boundary it shares with the other send (a review found the 0 ns recv's inset, 0, used
    for both ends)."""
    from kernbench.common.pe_commands import StreamBuilder, VecOp
    from report_helpers import launch
    p0, p1 = StreamBuilder(), StreamBuilder()
    t = p0.load(4096, line=30)
    p0.send("E", t, 4096, line=31)
    p0.send("E", t, 4096, line=32)
    big = p1.vec(VecOp.EXP, 65536, line=40)
    p1.recv("W", 4096, after=big, line=41)
    p1.recv("W", 4096, line=42)
    r = launch([p0, p1])
    assert (r.engine.cmd_end - r.engine.cmd_start)[[4, 5]].tolist() == [0, 0]  # (PE 1's recvs)
    to_perfetto(r, tmp_path / "t.json")
    trace = load(tmp_path / "t.json")
    starts = [ev for ev in trace["traceEvents"] if ev["ph"] == "s"]
    assert len(starts) == 2
    for ev in starts:
        send = enclosing(trace, ev)  # strictly inside exactly one slice
        assert send["args"]["op"] == "send" and round(ev["ts"] - send["ts"], 6) == 0.001


def test_back_to_back_slices_share_their_boundary(tmp_path):
    # A slice ending at cycle c and the next starting at c meet at one nanosecond, whatever the
    # rounding: Perfetto keeps whole nanoseconds and would nest an overlapping slice.
    r = line_pipeline()
    to_perfetto(r, tmp_path / "t.json")
    by_thread = defaultdict(list)
    for ev in slices(load(tmp_path / "t.json")):
        by_thread[(ev["pid"], ev["tid"])].append(ev)
    touching = 0
    for evs in by_thread.values():
        evs.sort(key=lambda e: e["ts"])
        for a, b in zip(evs, evs[1:]):
            end_ns, start_ns = round((a["ts"] + a["dur"]) * 1000, 6), round(b["ts"] * 1000, 6)
            assert end_ns == int(end_ns) and start_ns == int(start_ns)  # whole nanoseconds
            assert end_ns <= start_ns
            touching += a["args"]["end_cycle"] == b["args"]["start_cycle"]
            if a["args"]["end_cycle"] == b["args"]["start_cycle"]:
                assert end_ns == start_ns
    assert touching > 0


def test_keep_some_pes(ring, tmp_path):
    p = tmp_path / "t.json"
    info = to_perfetto(ring, p, pes=[(0, 0), 1])
    trace = load(p)
    assert (info["slices"], info["flows"], info["pes"]) == (len(slices(trace)), 3, 2)
    assert info["events"] == len(trace["traceEvents"]) and info["bytes"] == p.stat().st_size
    names = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    assert names == {"PE (0, 0)", "PE (1, 0)"}
    n0 = int(ring.program.cmd_offsets[2])
    assert len(slices(trace)) == n0  # PE 0 and PE 1's commands
    # Only PE 0 -> PE 1 messages have both ends kept: one per round.
    ids = Counter(e["id"] for e in trace["traceEvents"] if e["ph"] in "sf")
    assert len(ids) == 3 and set(ids.values()) == {2}
    with pytest.raises(ValueError, match=r"PE \(9, 0\) does not exist"):
        to_perfetto(ring, p, pes=[(9, 0)])


def test_cycle_window(ring, tmp_path):
    p = tmp_path / "t.json"
    lo, hi = 300, 600
    to_perfetto(ring, p, window=(lo, hi))
    trace = load(p)
    assert trace["otherData"]["window_cycles"] == [lo, hi]
    e = ring.engine
    expected = int(((e.cmd_end >= lo) & (e.cmd_start <= hi)).sum())
    got = slices(trace)
    assert 0 < len(got) == expected < ring.program.n_commands
    for ev in got:
        assert ev["args"]["end_cycle"] >= lo and ev["args"]["start_cycle"] <= hi
    ids = Counter(ev["id"] for ev in trace["traceEvents"] if ev["ph"] in "sf")
    assert set(ids.values()) <= {2}
    # An open end: from cycle lo to the end of the launch.
    to_perfetto(ring, p, window=(lo, None))
    assert len(slices(load(p))) == int((e.cmd_end >= lo).sum())


def test_size_grows_with_commands_not_packets(tmp_path):
    # Same commands, 64x the packets: 2 KiB messages (8 packets) vs 128 KiB (512 packets).
    small = to_perfetto(ring_exchange(nbytes=2048), tmp_path / "a.json")
    large = to_perfetto(ring_exchange(nbytes=128 * 1024), tmp_path / "b.json")
    assert small["events"] == large["events"] == len(load(tmp_path / "a.json")["traceEvents"])
    r = ring_exchange(nbytes=2048)
    n_meta = 4 * 2 + 4 * 4 * 2  # per PE: name + sort index; per used unit thread: name + sort index
    assert small["events"] == r.program.n_commands + 2 * len(r.engine.messages) + n_meta


# -- a real launch: a ring all-reduce whose recvs are posted before the data is sent -------------
from test_e2e_ring import ring_allreduce  # noqa: E402  (the same kernel, one copy)


@pytest.fixture(scope="module")
def allreduce():
    ctx = kernbench.Context("default")
    ctx.install_sfr("pe", ring=True)
    x = ctx.shard(np.ones((8, 8 * 256), np.float32), axis=0, over="pe")
    return ctx.launch(ring_allreduce, (8, 1), x, ctx.empty_like(x), 8, 256, mode="timing")


def canonical(events):
    return sorted(json.dumps(e, sort_keys=True) for e in events)


@pytest.mark.parametrize("sel", [{}, {"pes": [0, (3, 0), 5]}, {"window": (200, 900)}, {"window": (500, None)},
                                 {"pes": [1, 2], "window": (0, 400)}])
def test_streamed_file_holds_the_in_memory_events(allreduce, tmp_path, monkeypatch, sel):
    monkeypatch.setattr(perfetto, "_CHUNK", 7)  # many chunks, one partial
    p = tmp_path / "t.json"
    info = to_perfetto(allreduce, p, **sel)
    trace = load(p)
    assert canonical(trace["traceEvents"]) == canonical(trace_events(allreduce, **sel))
    assert info["events"] == len(trace["traceEvents"]) and info["slices"] == len(slices(trace))
    # The same with one chunk, and without the launch's kernel sites (a LaunchResult rebuilt from
    # JSON has none): every command named and grouped one by one.
    monkeypatch.setattr(perfetto, "_CHUNK", 1 << 15)
    bare = dataclasses.replace(allreduce, name_keys=None)
    to_perfetto(bare, tmp_path / "bare.json", **sel)
    assert load(tmp_path / "bare.json") == trace


@pytest.mark.parametrize("name", ["t.json", "t.json.gz"])
def test_bytes_written_to_a_device_are_counted(allreduce, tmp_path, name):
    """A pipe or a device has no size to read back: a trace to /dev/null said 0 bytes (a review)."""
    import os
    import threading

    info = to_perfetto(allreduce, tmp_path / name)
    assert info["bytes"] == (tmp_path / name).stat().st_size > 0
    fifo = tmp_path / ("pipe" + name[1:])
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(len(open(fifo, "rb").read())))
    reader.start()
    piped = to_perfetto(allreduce, fifo)
    reader.join()
    assert piped["bytes"] == got[0] > 0
    if not name.endswith(".gz"):  # (gzip's header names the file: 3 bytes longer here)
        assert piped["bytes"] == info["bytes"]


def test_gz_round_trips(allreduce, tmp_path):
    plain, packed = tmp_path / "t.json", tmp_path / "t.json.gz"
    to_perfetto(allreduce, plain)
    info = to_perfetto(allreduce, packed)
    assert packed.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    assert info["bytes"] == packed.stat().st_size < plain.stat().st_size / 4
    with gzip.open(packed) as f:
        assert json.load(f) == load(plain)
    first = packed.read_bytes()
    to_perfetto(allreduce, packed)
    assert packed.read_bytes() == first  # no timestamp in the header: same run, same bytes


def test_every_flow_points_forward_and_ids_pair(allreduce, tmp_path):
    e = allreduce.engine
    m = e.messages
    early = e.cmd_start[m["recv"]] < e.cmd_start[m["send"]]
    assert early.any()  # recvs posted before their data was sent: the case that went backwards
    p = tmp_path / "t.json"
    to_perfetto(allreduce, p)
    trace = load(p)
    flows = defaultdict(dict)
    for ev in trace["traceEvents"]:
        if ev["ph"] in "sf":
            assert ev["ph"] not in flows[ev["id"]], "two flow starts (or ends) with one id"
            flows[ev["id"]][ev["ph"]] = ev
    assert sorted(flows) == list(range(len(m)))
    by_cmd = {ev["args"]["cmd"]: ev for ev in slices(trace)}
    for k, ends in flows.items():
        assert set(ends) == {"s", "f"}
        s, f = ends["s"], ends["f"]
        assert f["ts"] >= s["ts"], (k, s, f)
        send, recv = enclosing(trace, s), enclosing(trace, f)  # strictly inside one slice each
        assert (send["args"]["cmd"], recv["args"]["cmd"]) == (int(m["send"][k]), int(m["recv"][k]))
        # near the send's start and the recv's end (when its data has landed): 1 ns in
        assert s["ts"] == pytest.approx(by_cmd[int(m["send"][k])]["ts"] + 1e-3, abs=1e-9)
        r = by_cmd[int(m["recv"][k])]
        assert f["ts"] == pytest.approx(r["ts"] + r["dur"] - 1e-3, abs=1e-9)


# -- the command line: --trace FILE[.gz] --pes LIST --window START:END ---------------------------
RING = '''
import numpy as np


def ring_pass(x_ptr, o_ptr, n, *, tl):
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    tl.send(dir="E", src=x)
    tl.store(o_ptr, tl.recv(dir="W", shape=(n,), dtype="f32"))


def setup(ctx, n):
    x = ctx.shard(np.ones((8, n), np.float32), axis=0, over="pe")
    return {"x_ptr": x, "o_ptr": ctx.empty_like(x)}
'''


@pytest.fixture
def ring_file(tmp_path):
    p = tmp_path / "ring_kernel.py"
    p.write_text(RING)
    return p


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trace_pes_and_window(capsys, ring_file, tmp_path):
    base = (f"{ring_file}:ring_pass", "--grid", "8,1", "--ring", "--arg", "n=128")
    t = tmp_path / "t.json.gz"
    code, out, err = run_cli(capsys, "run", *base, "--trace", t, "--pes", "0-2,1/0,0/5")
    assert code == 0, err
    trace = load(t)
    procs = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    assert procs == {"PE (0, 0)", "PE (1, 0)", "PE (2, 0)", "PE (5, 0)"}  # 1/0 ran nothing
    assert len(slices(trace)) == 4 * 4  # load, send, recv, store on each
    assert Counter(e["id"] for e in trace["traceEvents"] if e["ph"] in "sf") == {0: 2, 1: 2}  # 0->1, 1->2
    assert f"trace  -> {t}  (16 slices on 4 PEs, 2 flows, " in out
    # The window: the commands overlapping cycles 200..260, each PE's recv (posted at 0, its data
    # landing from ~216) and store; the sends ended before 200, so no flow has both ends.
    code, out, err = run_cli(capsys, "run", *base, "--trace", tmp_path / "w.json", "--window", "200:260")
    assert code == 0, err
    trace = load(tmp_path / "w.json")
    assert trace["otherData"]["window_cycles"] == [200, 260]
    got = slices(trace)
    assert Counter(e["args"]["op"] for e in got) == {"recv": 8, "store": 8}
    assert all(e["args"]["end_cycle"] >= 200 and e["args"]["start_cycle"] <= 260 for e in got)
    assert not [e for e in trace["traceEvents"] if e["ph"] in "sf"]


def test_parse_pes_and_window():
    assert parse_pes("0,3-5") == [0, 3, 4, 5]
    assert parse_pes(" 2 , 1/0-2 ") == [2, (0, 1), (1, 1), (2, 1)]
    assert parse_window("1000:50000") == (1000, 50000)
    assert parse_window("1_000:") == (1000, None) and parse_window(":7") == (0, 7)
    assert parse_pes("0,1,") == [0, 1]  # (a trailing comma; an empty item between two is refused)
    for bad in ("0,,1", ",0", "0,1,,"):
        with pytest.raises(ValueError, match="an empty item in"):
            parse_pes(bad)


@pytest.mark.parametrize("argv, message", [
    (("--pes", "3-1"), "argument --pes: bad PE '3-1': range '3-1' runs backwards"),
    (("--pes", "0,x"), "argument --pes: bad PE 'x' in '0,x': a PE must be a non-negative integer"),
    (("--pes=-1",), "argument --pes: bad PE '-1': a PE must be a non-negative integer, got '-1'"),
    (("--pes", ","), "argument --pes: expected a list of PEs such as 0,3-5"),
    (("--pes", "40"), "--pes: PE 40 does not exist: default has global PE indices 0-31 (4 cubes x 8 PEs)"),
    (("--pes", "4/0"), "--pes: cube 4 does not exist: default has cubes 0-3"),
    (("--pes", "0/8"), "--pes: PE (8, 0) does not exist: default has PEs 0-7 per cube"),
    (("--window", "9:5"), "argument --window: bad window '9:5': END (5) is before START (9)"),
    (("--window", "100"), "argument --window: expected START:END in cycles"),
    (("--window", "1.5:9"), "argument --window: bad window '1.5:9': START must be a non-negative integer"),
])
def test_cli_bad_pes_and_window_fail_before_the_run(capsys, tmp_path, argv, message):
    marker = tmp_path / "imported"
    k = tmp_path / "marks.py"
    k.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef k(*, tl):\n    pass\n")
    code, _, err = run_cli(capsys, "run", f"{k}:k", "--grid", "1,1", "--trace", tmp_path / "t.json", *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kernbench: error: ") and message in lines[0], err
    assert not marker.exists()  # failed before the kernel's module was imported


@pytest.mark.parametrize("cmd", ["run", "diag"])
def test_cli_pes_and_window_need_trace(capsys, tmp_path, cmd):
    k = tmp_path / "k.py"
    k.write_text("def k(*, tl):\n    pass\n")
    argv = ("run", f"{k}:k", "--grid", "1,1") if cmd == "run" else ("diag",)
    for opt, value in (("--pes", "0"), ("--window", "0:10")):
        code, _, err = run_cli(capsys, *argv, opt, value)
        assert code == 2 and f"kernbench: error: {opt} filters the trace: give --trace FILE too" in err


@pytest.mark.parametrize("kw, match", [
    (dict(pes=0), "pes must be None or an iterable"), (dict(pes="0,3"), "pes must be None"),
    (dict(pes=["1"]), "a PE must be a \\(pe, cube\\) pair of ints or a global PE index"),
    (dict(pes=[(0, 0.5)]), "pair of ints"), (dict(pes=[True]), "pair of ints"),
    (dict(window=(1,)), "cycle window must be"), (dict(window="0:10"), "cycle window must be"),
    (dict(window=(1.5, 3)), "cycle window must be"), (dict(critical_path="yes"), "critical_path"),
    (dict(window=(-5, 10)), "of cycles from 0"), (dict(window=(None, -1)), "of cycles from 0"),
])
def test_bad_arguments_get_a_value_error_naming_them(ring, tmp_path, kw, match):
    # (a review's cases: raw TypeErrors, or a string of PEs read character by character)
    with pytest.raises(ValueError, match=match):
        ring.to_perfetto(str(tmp_path / "t.json"), **kw)


def test_a_path_that_is_not_a_writable_file_gets_a_value_error(ring, tmp_path):
    for path, match in ((None, "path must be a file path"), (tmp_path, "is a directory"),
                        (tmp_path / "missing" / "t.json", "does not exist")):
        with pytest.raises(ValueError, match=match):
            ring.to_perfetto(path)
    n = ring.program.n_commands
    for i in (n, -1, 10 ** 6, 1.0, True):  # (source once indexed numpy: -1 gave the last line)
        with pytest.raises(IndexError, match="is not one of this launch's"):
            ring.source(i)


def test_a_write_that_fails_leaves_no_partial_file(tmp_path):
    """A trace review: a .json.gz whose last block could not be written (a full disk; here a
    file-size limit, EFBIG) stayed behind truncated, and so did to_json's file; .json and
    write_json were removed. Every writer now removes what it began and raises the OSError."""
    import subprocess
    import sys
    code = f"""
import os, resource, signal, kernbench
def k(x_ptr, o_ptr, *, tl):
    t = tl.load(x_ptr, shape=(16, 16), dtype="f16")
    for i in tl.range(0, 3000):
        t = t * 2.0
    tl.store(o_ptr, t)
ctx = kernbench.Context("default"); ctx.install_sfr("pe")
x = ctx.empty((16, 16), "f16"); o = ctx.empty((16, 16), "f16")
r = ctx.launch(k, (8, 1), x, o, mode="timing")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
for name, write in (("a.json", r.to_perfetto), ("b.json.gz", r.to_perfetto), ("c.json", r.write_json),
                    ("d.json", r.to_json)):
    p = os.path.join({str(tmp_path)!r}, name)
    try:
        write(p)
        print(name, "written")
    except OSError as e:
        print(name, e.errno, os.path.exists(p))
    # a symlink is not the writer's to remove (nor a device it names: a review's --trace
    # /dev/full deleted the device)
    link = p + ".link"
    os.symlink(p + ".target", link)
    try:
        write(link)
    except OSError as e:
        print(name, "link", e.errno, os.path.islink(link))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    import errno
    assert out.stdout.split("\n")[:8] == [
        line for n in ("a.json", "b.json.gz", "c.json", "d.json")
        for line in (f"{n} {errno.EFBIG} False", f"{n} link {errno.EFBIG} True")], out.stdout + out.stderr


def test_the_critical_path_track_has_a_thread_id_of_its_own(tmp_path):
    """A trace review: the path's thread was tid 1, PE (0, 0)'s GEMM unit's too; viewers that
    key threads by tid alone merge them. Every thread id in the file is its own."""
    import json

    import kernbench

    def k(x_ptr, *, tl):
        t = tl.load(x_ptr, shape=(16, 16), dtype="f16")
        tl.store(x_ptr, tl.dot(t, t).to("f16"))

    ctx = kernbench.Context("default")
    r = ctx.launch(k, (2, 1), ctx.empty((16, 16), "f16"), mode="timing")
    r.to_perfetto(tmp_path / "t.json", critical_path=True)
    ev = json.loads((tmp_path / "t.json").read_text())
    ev = ev["traceEvents"] if isinstance(ev, dict) else ev
    names = {}
    for e in ev:
        if e.get("ph") == "M" and e["name"] == "thread_name":
            names.setdefault(e["tid"], set()).add((e["pid"], e["args"]["name"]))
    assert all(len(v) == 1 for v in names.values()), names
    assert any(n == "critical path" for v in names.values() for _, n in v)


def test_a_trace_past_two_to_the_62_nanoseconds_is_refused_naming_the_clock(tmp_path):
    """clock_ghz 1e-9 (the documented minimum) makes 10**9 ns a cycle: a 2-PE message on a
    slow link passes 2**62 ns, which the trace's times cannot hold. The formatter's internal
    bound refused it ("slices: a start or end outside +-2**62"); now a ValueError naming the
    cycles and the clock, and no file (a review)."""
    ctx = kernbench.Context("default", overrides={"clock_ghz": 1e-9, "link.rx_queue_packets": 1,
                                                  "link.packet_bytes": 1, "link.hop_latency_cycles": 2**20})
    ctx.install_sfr("pe")

    def pair(o_ptr, *, tl):
        if tl.program_id(0) == 0:
            tl.send("E", tl.zeros((1000,), "f32"))
        else:
            tl.store(o_ptr, tl.recv("W", (1000,), "f32"))

    r = ctx.launch(pair, (2, 1), ctx.empty((1000,), "f32"), mode="timing")
    assert r.cycles / 1e-9 > 2 ** 62
    path = tmp_path / "t.json"
    with pytest.raises(ValueError, match=rf"to_perfetto: times up to {r.cycles:,} cycles at 1e-09 GHz are .* "
                                         r"ns, past the 2\*\*62 ns a trace's times hold"):
        r.to_perfetto(str(path))  # (the launch's last cycle: each chunk named its own, a review)
    assert not path.exists()


def test_critical_path_slices_and_counters_are_whole_nanoseconds_up_to_two_to_the_53(tmp_path):
    """Just under 2**53 ns (a 1e-4 Hz clock, 8.95e6 cycles: 8.99e15 ns) the critical path's
    slices and the channel counters, written as ``ns / 1000`` doubles, strayed by a nanosecond
    (one ulp of 2**43 us is 2**-9 us) and back-to-back path slices overlapped by one (a
    review). Read with exact decimals, each is now round(cycle / clock) ns, as a command's is."""
    from decimal import Decimal

    from kernbench._core import simulate
    from kernbench.common.pe_commands import Program, StreamBuilder
    from kernbench.hw import SfrInstall, load_hw
    from kernbench.runtime.result import LaunchResult

    hw = load_hw("default").with_overrides(clock_ghz=1.0001e-9)
    b = StreamBuilder()
    for _ in range(272):  # a load of 8 MiB and a store of 256 B: 32,914 cycles each pair
        b.store(b.load(8 << 20, line=1), 256, line=2)
    prog = Program.from_streams([b.build()] + [None] * (hw.n_pes - 1))
    sfr = SfrInstall("pe")
    r = LaunchResult(hw=hw, sfr=sfr, grid=(1, 1), mode="timing", kernel_name="k", kernel_file="k.py", args={},
                     program=prog, engine=simulate(hw, sfr.neighbours(hw), prog), labels=None)
    assert 2 ** 52.97 < r.cycles / hw.clock_ghz < 2 ** 53
    path = tmp_path / "t.json"
    r.to_perfetto(str(path), critical_path=True, memory_channel=True)
    events = json.loads(path.read_text(), parse_float=Decimal)["traceEvents"]
    path_slices = [e for e in events if e["ph"] == "X" and e["cat"] == "critical_path"]
    assert len(path_slices) == 2 * 272
    for e in (e for e in events if e["ph"] == "X"):
        a = e["args"]
        assert e["ts"] * 1000 == round(a["start_cycle"] / hw.clock_ghz), e
        assert (e["ts"] + e["dur"]) * 1000 == round(a["end_cycle"] / hw.clock_ghz), e
    assert all(x["ts"] + x["dur"] <= y["ts"] for x, y in zip(path_slices, path_slices[1:]))
    from kernbench.report.commands import channel_pending

    t, _ = channel_pending(r, 0)  # (cube 0's changes: the one cube that ran)
    assert [e["ts"] * 1000 for e in events if e["ph"] == "C"] == [round(int(c) / hw.clock_ghz) for c in t]


def test_the_memory_channel_track_counts_the_commands_sharing_it(tmp_path):
    """A review: the table's launch-wide DMA figures hid a ramp where the channel was saturated.
    ``memory_channel=True`` adds a counter per cube of the DMA commands with bursts pending.

    Derivation (default preset: burst 512 B, 256 B/cycle = 2 cycles, latency 150): 3 PEs of cube
    0 each load 8 KiB (16 bursts) at cycle 0, then PE 0 loads 8 KiB more after its first ends.
    Round robin serves the three in turn: PE p's last burst leaves at 2 * (3 * 15 + p + 1) = 92,
    94, 96, and each command's count ends there: 3 until 92, then 2, 1, 0 at 96. PE 0's first
    load ends at 92 + 150 = 242, its second starts then, alone: 1 until 242 + 32 = 274, then 0.
    Cube 1 (PE 8 loads alone at 0: 16 * 2 = 32) is its own track, only when one of its PEs is kept."""
    import json

    import kernbench
    from kernbench.report.commands import channel_pending
    from kernbench.report.perfetto import trace_events

    def k(x_ptr, *, tl):
        g = tl.program_id(1) * 8 + tl.program_id(0)
        if g in (0, 1, 2, 8):
            tl.load(x_ptr, shape=(4096,), dtype="f16")
        if g == 0:
            tl.load(x_ptr, shape=(4096,), dtype="f16")

    ctx = kernbench.Context("default")
    r = ctx.launch(k, (8, 2), ctx.empty((4096,), "f16"), mode="timing")
    t, n = channel_pending(r, 0)
    assert list(zip(t.tolist(), n.tolist())) == [(0, 3), (92, 2), (94, 1), (96, 0), (242, 1), (274, 0)]
    t, n = channel_pending(r, 1)
    assert list(zip(t.tolist(), n.tolist())) == [(0, 1), (32, 0)]
    with pytest.raises(ValueError, match=r"channel_pending: cube must be an int in 0\.\.3, got 4"):
        channel_pending(r, 4)
    info = r.to_perfetto(tmp_path / "t.json", pes=[0, 1, 2], memory_channel=True)
    assert info["channel_counters"] == 6
    ev = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    pid = r.hw.n_pes + 2  # (after the PEs and the critical path's)
    assert [e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name" and e["pid"] >= pid] \
        == ["cube 0 memory channel"]
    counters = [(e["ts"], e["args"]["commands"]) for e in ev if e["ph"] == "C"]
    ghz = r.hw.clock_ghz
    assert counters == [(round(c / ghz) / 1000, v) for c, v in [(0, 3), (92, 2), (94, 1), (96, 0), (242, 1), (274, 0)]]
    # a window: the count at its first cycle, then the changes inside it; cube 1's PE kept too
    ev = trace_events(r, pes=[0, 8], window=(93, 250), memory_channel=True)
    got = {(e["pid"], e["ts"], e["args"]["commands"]) for e in ev if e["ph"] == "C"}
    want = {(pid, round(c / ghz) / 1000, v) for c, v in [(93, 2), (94, 1), (96, 0), (242, 1)]}
    assert got == want | {(pid + 1, round(93 / ghz) / 1000, 0)}
    assert info["events"] == len(json.loads((tmp_path / "t.json").read_text())["traceEvents"])
    with pytest.raises(ValueError, match="memory_channel must be True or False"):
        r.to_perfetto(tmp_path / "u.json", memory_channel="yes")
