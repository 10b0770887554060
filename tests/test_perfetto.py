"""The Perfetto / Chrome trace-event file: valid, well-formed, and equal to the engine's counters."""
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from kernbench.common.pe_commands import N_UNITS, UNIT_NAMES
from kernbench.report import to_perfetto

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
    with open(path) as f:
        return json.load(f)  # raises on invalid JSON


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
    assert sorted(procs.values()) == [f"cube 0 / PE {p}" for p in range(4)]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    # Each ring PE uses DMA, VECTOR, TX_E and RX_W: one named thread each.
    assert sorted(set(threads.values())) == ["DMA", "RX_W", "TX_E", "VECTOR"]
    assert len(threads) == 4 * 4
    us_per_cycle = 1 / (1.5 * 1e3)
    for ev in slices(trace):
        a = ev["args"]
        i = a["cmd"]
        assert ev["name"] == ring.label(i) == a["label"]
        assert a["source"] == ring.source(i)
        assert threads[(ev["pid"], ev["tid"])] == UNIT_NAMES[int(ring.program.commands["unit"][i])]
        assert procs[ev["pid"]] == ring.pe_name(int(np.searchsorted(ring.program.cmd_offsets, i, "right") - 1))
        assert a["start_cycle"] == ring.engine.cmd_start[i] and a["end_cycle"] == ring.engine.cmd_end[i]
        assert ev["ts"] == pytest.approx(a["start_cycle"] * us_per_cycle, abs=1e-9)
        assert ev["ts"] + ev["dur"] == pytest.approx(a["end_cycle"] * us_per_cycle, abs=1e-9)
        if a["op"] in ("send", "recv", "load", "store"):
            assert a["bytes"] == 8192
        if a["op"] == "send":
            assert a["port"] == "E" and a["peer"].startswith("cube 0 / PE ")


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
    for ev in slices(trace):
        key = (ev["pid"] - 1, (ev["tid"] - 1) % N_UNITS)  # pid = PE + 1, tid = PE * 11 + unit + 1
        dur_us[key] += ev["dur"]
        dur_cycles[key] += ev["args"]["cycles"]
    busy = ring.unit_counters["busy"]
    for g in range(ring.hw.n_pes):
        for u in range(N_UNITS):
            assert dur_cycles[(g, u)] == busy[g, u]
            assert dur_us[(g, u)] * cycles_per_us == pytest.approx(busy[g, u], abs=1e-6)


def test_keep_some_pes(ring, tmp_path):
    p = tmp_path / "t.json"
    trace = to_perfetto(ring, p, pes=[(0, 0), 1])
    names = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    assert names == {"cube 0 / PE 0", "cube 0 / PE 1"}
    n0 = int(ring.program.cmd_offsets[2])
    assert len(slices(trace)) == n0  # PE 0 and PE 1's commands
    # Only PE 0 -> PE 1 messages have both ends kept: one per round.
    ids = Counter(e["id"] for e in trace["traceEvents"] if e["ph"] in "sf")
    assert len(ids) == 3 and set(ids.values()) == {2}
    with pytest.raises(ValueError, match=r"PE \(9, 0\) is outside"):
        to_perfetto(ring, p, pes=[(9, 0)])


def test_cycle_window(ring, tmp_path):
    p = tmp_path / "t.json"
    lo, hi = 300, 600
    trace = to_perfetto(ring, p, window=(lo, hi))
    e = ring.engine
    expected = int(((e.cmd_end >= lo) & (e.cmd_start <= hi)).sum())
    got = slices(trace)
    assert 0 < len(got) == expected < ring.program.n_commands
    for ev in got:
        assert ev["args"]["end_cycle"] >= lo and ev["args"]["start_cycle"] <= hi
    ids = Counter(ev["id"] for ev in trace["traceEvents"] if ev["ph"] in "sf")
    assert set(ids.values()) <= {2}


def test_size_grows_with_commands_not_packets(tmp_path):
    # Same commands, 64x the packets: 2 KiB messages (8 packets) vs 128 KiB (512 packets).
    small = to_perfetto(ring_exchange(nbytes=2048), tmp_path / "a.json")
    large = to_perfetto(ring_exchange(nbytes=128 * 1024), tmp_path / "b.json")
    assert len(small["traceEvents"]) == len(large["traceEvents"])
    r = ring_exchange(nbytes=2048)
    n_meta = 4 * 2 + 4 * 4 * 2  # per PE: name + sort index; per used unit thread: name + sort index
    assert len(small["traceEvents"]) == r.program.n_commands + 2 * len(r.engine.messages) + n_meta
