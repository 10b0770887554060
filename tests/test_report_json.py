"""to_json: every counter, the machine, the SFR install and the kernel's arguments; it round-trips."""
import json

import numpy as np
import pytest

from kernbench.common.pe_commands import Unit
from kernbench.report import from_json, load_json, summarize, to_json

from report_helpers import line_pipeline, ring_exchange, scale, scale_launch


@pytest.fixture(scope="module")
def res():
    r = line_pipeline(n_pes=3, record_events=True)
    r.args = {"n": 64, "dtype": "f16", "scale": np.float32(0.5), "q": np.zeros((4, 8), np.float16),
              "shape": (64, 128)}
    return r


def test_file_equals_returned_dict(res, tmp_path):
    p = tmp_path / "run.json"
    doc = to_json(res, p)
    assert json.loads(p.read_text()) == doc
    assert load_json(p) == doc


def test_counters_and_metadata(res):
    doc = to_json(res)
    e = res.engine
    assert doc["kernel"] == {
        "name": "fake_kernel",
        "file": "tests/fake_kernel.py",
        # numpy scalars become numbers, arrays their shape and dtype, tuples lists.
        "args": {"n": 64, "dtype": "f16", "scale": 0.5, "q": {"shape": [4, 8], "dtype": "f16"},
                 "shape": [64, 128]},
    }
    assert doc["hw"] == res.hw.to_dict()
    assert doc["sfr"] == {"scope": "pe", "ring": False}
    assert doc["grid"] == [3, 1] and doc["mode"] == "timing"
    assert doc["cycles"] == e.cycles
    units = doc["counters"]["units"]
    assert doc["counters"]["unit_names"][Unit.RX_W] == "RX_W"
    for field in e.unit_counters.dtype.names:
        assert np.array_equal(np.array(units[field]), e.unit_counters[field]), field
    for field in e.link_counters.dtype.names:
        assert np.array_equal(np.array(doc["counters"]["links"][field]), e.link_counters[field]), field
    assert doc["counters"]["peak_sram"] == e.peak_sram.tolist()
    assert doc["counters"]["work"] == e.work
    assert doc["commands"]["start"] == e.cmd_start.tolist()
    assert doc["commands"]["end"] == e.cmd_end.tolist()
    assert doc["messages"]["send"] == e.messages["send"].tolist()
    assert doc["summary"] == json.loads(json.dumps(summarize(res)))


def test_rebuilt_result_round_trips(res, tmp_path):
    p = tmp_path / "run.json"
    doc = to_json(res, p)
    back = from_json(p)
    assert to_json(back) == doc
    assert back.cycles == res.cycles and back.grid == (3, 1) and back.sfr == res.sfr
    assert back.hw == res.hw
    for name in ("unit_counters", "link_counters", "peak_sram", "sram_over", "cmd_start", "cmd_end",
                 "completion_order", "messages", "events"):
        assert np.array_equal(getattr(back.engine, name), getattr(res.engine, name)), name
    assert np.array_equal(back.program.commands, res.program.commands)
    assert [back.label(i) for i in range(5)] == [res.label(i) for i in range(5)]


def test_custom_labels_are_stored():
    r = ring_exchange(n_pes=4, rounds=1, labels=lambda i: f"command {i}")
    doc = to_json(r)
    assert doc["labels"] == [f"command {i}" for i in range(r.program.n_commands)]
    back = from_json(doc)
    assert back.label(3) == "command 3"
    assert to_json(back) == doc


def test_two_runs_compare_equal_by_script():
    # Determinism, as a script comparing two saved runs sees it.
    a, b = to_json(ring_exchange()), to_json(ring_exchange())
    assert a == b
    assert a["counters"]["units"]["busy"][0][Unit.TX_E] > 0


def test_an_indent_that_is_not_a_count_is_refused(res, tmp_path):
    # (a review: indent="x" wrote a file that was no JSON)
    for bad in ("x", -1, 2.5, True):
        with pytest.raises(ValueError, match="to_json: indent must be None or an int"):
            to_json(res, str(tmp_path / "r.json"), indent=bad)
    to_json(res, str(tmp_path / "r.json"), indent=2)
    assert from_json(str(tmp_path / "r.json")).cycles == res.cycles


def test_load_rejects_other_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"traceEvents": []}')
    with pytest.raises(ValueError, match="not a kernbench launch JSON"):
        load_json(p)


def test_context_launch_keeps_labels_and_sources(tmp_path):
    r = scale_launch()
    doc = to_json(r, tmp_path / "c.json")
    n = r.program.n_commands
    assert doc["labels"] == [r.label(i) for i in range(n)]
    assert doc["sources"] == [r.source(i) for i in range(n)]
    assert doc["sources"][0].endswith(f"report_helpers.py:{scale.__code__.co_firstlineno + 2}")
    back = from_json(tmp_path / "c.json")
    assert [back.source(i) for i in range(n)] == doc["sources"]
    assert to_json(back) == doc


def test_array_arguments_are_shape_and_dtype_fields(tmp_path):
    import kernbench

    def scale(x_ptr, o_ptr, n, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") * 2.0)

    ctx = kernbench.Context(hw="default")
    x = ctx.shard(np.arange(8 * 16, dtype=np.float32), axis=0, name="x")
    o = ctx.empty((16,), "f32", name="out")
    doc = json.loads(json.dumps(to_json(ctx.launch(scale, (8, 1), x, o, 16))))
    args = doc["kernel"]["args"]
    # a script reads them as fields, not by parsing "f32(16,) sharded over pe axis 0"
    assert args["x_ptr"] == {"name": "x", "shape": [16], "dtype": "f32",
                             "placement": "sharded over pe axis 0", "addr": x.addr}
    assert args["o_ptr"] == {"name": "out", "shape": [16], "dtype": "f32", "placement": "empty",
                             "addr": o.addr}
    assert args["n"] == 16
    # a host array argument too, with the same dtype names
    def host_table(table, *, tl):
        pass

    r = ctx.launch(host_table, (1, 1), np.zeros((4, 8), np.float16), mode="timing")
    assert to_json(r)["kernel"]["args"]["table"] == {"shape": [4, 8], "dtype": "f16"}


def test_a_report_past_the_memory_this_process_may_take_is_refused_up_front(monkeypatch, tmp_path):
    # (a resource review: to_json of a ~1e8-command launch, ~1 KB a command as Python objects,
    # and the profile's and critical path's facts ended in numpy's MemoryError from deep inside)
    import kernbench
    from kernbench.language import builder

    def k(x, *, tl):
        a = tl.load(x, shape=(64,))
        for _ in range(50):
            a = a + 1.0
        tl.store(x, a)

    ctx = kernbench.Context(hw="default")
    x = ctx.replicate(np.zeros(64, np.float32))
    r = ctx.launch(k, (8, 1), x, mode="timing")
    n = r.program.n_commands
    assert n == 8 * 52  # a load, 50 adds and a store on each of 8 PEs
    # to_json at 800 bytes a command: 332,800 bytes; the facts at 34: 14,144
    monkeypatch.setattr(builder, "host_memory", lambda: 800 * n - 1)
    with pytest.raises(MemoryError, match=r"to_json: this launch's 416 commands need at least "
                                          r"325.0 KiB \(800 bytes a command\), more than the .* "
                                          r"result.write_json\(path\) writes the same file"):
        r.to_json()
    r.critical_path()  # the facts fit
    monkeypatch.setattr(builder, "host_memory", lambda: 34 * n - 1)
    r2 = ctx.launch(k, (8, 1), x, mode="timing")
    for call in (r2.critical_path, lambda: r2.profile(), lambda: r2.write_json(tmp_path / "x.json")):
        with pytest.raises(MemoryError, match=r"the per-command facts of the profile, the critical "
                                              r"path and the drift report: this launch's 416 commands "
                                              r"need at least 13.8 KiB"):
            call()
    assert not (tmp_path / "x.json").exists()  # (write_json removes what it began)
    monkeypatch.setattr(builder, "host_memory", lambda: 34 * n)
    assert r2.critical_path().cycles == r2.cycles
