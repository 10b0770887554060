"""Report text formatted in C (kernbench/report/_format.pyx). The Perfetto trace's slices: byte
for byte the text of the Python template perfetto._SLICE, on launches (whole files, with PE and
window filters, gzip) and on generated columns (any int64, negative ones included, where
Python's floor division splits the microseconds), and clear errors for columns that do not fit.
The launch JSON's lists (ints, and a few strings picked per entry): json.dumps's text."""
import json
import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernbench.diag import panel_spec, run_panel
from kernbench.hw import load_hw
from kernbench.report import perfetto, to_perfetto
from kernbench.report import _format

from report_helpers import line_pipeline, ring_exchange

MESH8 = load_hw("mesh8")


def _python_slices(heads, heads_at, args, args_at, peers, peers_at, *columns):
    """_format.slices made with the Python template: the reference."""
    def parts(blob, at):
        out = np.empty(len(at) - 1, object)
        for g in range(len(at) - 1):
            out[g] = bytes(blob[at[g]:at[g + 1]]).decode()
        return out

    return perfetto._slices_text(parts(heads, heads_at), parts(args, args_at), parts(peers, peers_at),
                                 columns).encode()


def _python_flows(head_s, head_f, *columns):
    """_format.flows made with the Python templates: the reference."""
    assert (head_s, head_f) == perfetto._FLOW_HEADS
    return perfetto._flows_text(columns).encode()


def _read(path):
    with (gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")) as f:
        return f.read()


def _panel(name, context, causal=False):
    return run_panel(panel_spec(name, MESH8, shape="llama70b", context=context, causal=causal), MESH8).result


@pytest.mark.parametrize("make,kw", [
    (lambda: line_pipeline(n_pes=3, record_events=True), {}),
    (lambda: ring_exchange(n_pes=4, rounds=3), {"critical_path": True}),
    (lambda: ring_exchange(n_pes=4, rounds=3, labels=lambda i: f"command \u00e9 {i}"), {"pes": [1, (2, 0)]}),
    (lambda: _panel("single_user_prefill", 4096), {}),
    (lambda: _panel("single_user_prefill", 2048, causal=True), {"window": (20_000, 90_000)}),
    (lambda: _panel("multi_user_decode", 4096), {}),
], ids=["line_pipeline", "ring_critical_path", "ring_pes_labels", "prefill", "causal_window", "decode"])
@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_files_equal_the_python_templates(make, kw, suffix, tmp_path, monkeypatch):
    r = make()
    (tmp_path / "c").mkdir()
    (tmp_path / "p").mkdir()
    fast = tmp_path / "c" / ("t" + suffix)  # (one name: gzip's header holds it)
    to_perfetto(r, fast, **kw)
    calls = []
    monkeypatch.setattr(perfetto._format, "slices", lambda *a: calls.append(1) or _python_slices(*a))
    monkeypatch.setattr(perfetto._format, "flows", lambda *a: calls.append(2) or _python_flows(*a))
    slow = tmp_path / "p" / ("t" + suffix)
    to_perfetto(r, slow, **kw)
    assert 1 in calls  # (the templates made the second file)
    if to_perfetto(r, tmp_path / "n.json", **kw)["flows"]:
        assert 2 in calls
    a, b = _read(fast), _read(slow)
    assert a == b and len(a) > 100
    if suffix == ".json.gz":  # the same compressed bytes too (mtime 0)
        assert fast.read_bytes() == slow.read_bytes()


ints = st.integers(-(1 << 62) + 1, (1 << 62) - 1)  # (slices' bound: the engine's horizon)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_generated_columns_equal_the_python_template(data):
    n_groups = data.draw(st.integers(1, 4))
    texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
    heads = [data.draw(texts) for _ in range(n_groups)]
    args = [data.draw(texts) + "," for _ in range(n_groups)]
    peers = [""] + [data.draw(texts) for _ in range(data.draw(st.integers(0, 3)))]
    n = data.draw(st.integers(0, 20))
    cols = [np.array([data.draw(st.integers(0, n_groups - 1)) for _ in range(n)], np.int64)]
    cols += [np.array([data.draw(ints) for _ in range(n)], np.int64) for _ in range(7)]
    cols.append(np.array([data.draw(st.integers(0, len(peers) - 1)) for _ in range(n)], np.int64))
    blobs = perfetto._blobs(np.array(heads, object), np.array(args, object), np.array(peers, object))
    assert _format.slices(*blobs, *cols) == _python_slices(*blobs, *cols)


floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e7, 1e7) | st.sampled_from(
    [0.0, -0.0, 0.001, 1e-7, 1e16, 123456789.125, 5e-324, 1.7976931348623157e308, -1e22])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_generated_flows_equal_the_python_templates(data):
    """Flow events: ids, pids and tids any int64, timestamps any float64 (%r: repr's shortest
    digits, exponents, -0.0, subnormals, inf and nan as Python writes them)."""
    n = data.draw(st.integers(0, 20))
    any_int = st.integers(-(1 << 63), (1 << 63) - 1)
    cols = []
    for kind in ("i", "f", "i", "i", "f", "i", "i"):
        draw = any_int if kind == "i" else floats
        cols.append(np.array([data.draw(draw) for _ in range(n)], np.int64 if kind == "i" else np.float64))
    assert _format.flows(*perfetto._FLOW_HEADS, *cols) == _python_flows(*perfetto._FLOW_HEADS, *cols)


def test_flows_refuse_what_does_not_fit():
    one_i, one_f = np.zeros(1, np.int64), np.zeros(1, np.float64)
    good = [one_i, one_f, one_i, one_i, one_f, one_i, one_i]
    text = _format.flows(*perfetto._FLOW_HEADS, *good)
    assert text == _python_flows(*perfetto._FLOW_HEADS, *good)
    assert json.loads("[" + text.decode()[1:] + "]")[1]["bp"] == "e"
    with pytest.raises(ValueError, match="one entry per flow"):
        _format.flows(*perfetto._FLOW_HEADS, *good[:6], np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="contiguous"):
        _format.flows(*perfetto._FLOW_HEADS, np.zeros(4, np.int64)[::2], *good[1:])
    with pytest.raises(ValueError):  # (float64 timestamps, not int64)
        _format.flows(*perfetto._FLOW_HEADS, one_i, one_i, *good[2:])
    with pytest.raises(TypeError):
        _format.flows(None, perfetto._FLOW_HEADS[1], *good)


def test_the_bounds_of_the_times():
    """Times up to +-(2**62 - 1) (the engine's horizon is 2**62) are written as Python writes
    them, their differences too; beyond, ValueError (their differences might not fit int64);
    pid, tid and cmd may be any int64."""
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    big = (1 << 62) - 1
    blobs = perfetto._blobs(np.array(["h"], object), np.array(["a,"], object), np.array([""], object))
    for t0, t1 in ((-big, big), (big, -big), (-1, -1), (-999, 999), (-1000, -1001), (0, 0)):
        cols = [np.array([0]), np.array([t0]), np.array([t1]), np.array([lo]), np.array([hi]),
                np.array([lo]), np.array([t1]), np.array([t0]), np.array([0])]
        cols = [c.astype(np.int64) for c in cols]
        assert _format.slices(*blobs, *cols) == _python_slices(*blobs, *cols)
    for at in (1, 2, 6, 7):
        cols = [np.zeros(1, np.int64) for _ in range(9)]
        cols[at] = np.array([1 << 62], np.int64)
        with pytest.raises(ValueError, match=r"outside \+-2\*\*62"):
            _format.slices(*blobs, *cols)
    assert _format.ints(np.array([lo, hi, 0], np.int64), b", ") == f"{lo}, {hi}, 0".encode()


def test_columns_that_do_not_fit_are_refused():
    blobs = perfetto._blobs(np.array(["h"], object), np.array(["a,"], object), np.array([""], object))
    one = np.zeros(1, np.int64)
    good = [one] * 9
    assert _format.slices(*blobs, *good).startswith(b',\n{h,"ph":"X","ts":0.000')
    with pytest.raises(ValueError, match="one entry per slice"):
        _format.slices(*blobs, *good[:8], np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="group or peer index outside"):
        _format.slices(*blobs, np.ones(1, np.int64), *good[1:])
    with pytest.raises(ValueError, match="group or peer index outside"):
        _format.slices(*blobs, *good[:8], np.full(1, -1, np.int64))
    bad_at = np.array([0, 5], np.int64)  # past the end of a 1-byte blob
    with pytest.raises(ValueError, match="offsets must rise from 0 within their blob"):
        _format.slices(blobs[0], bad_at, *blobs[2:], *good)
    with pytest.raises(ValueError, match="one offset per group"):
        _format.slices(blobs[0], blobs[1], blobs[2], np.zeros(3, np.int64), *blobs[4:], *good)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=40))
def test_int_lists_are_json_dumps_text(values):
    a = np.array(values, np.int64)
    assert _format.ints(a, b", ") == json.dumps(values)[1:-1].encode()
    assert _format.ints(a, b"") == "".join(map(str, values)).encode()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=6), min_size=1, max_size=5), st.data())
def test_picked_strings_are_json_dumps_text(names, data):
    code = data.draw(st.lists(st.integers(0, len(names) - 1), max_size=30))
    enc = [json.dumps(x).encode() for x in names]
    at = np.cumsum([0] + [len(t) for t in enc]).astype(np.int64)
    got = _format.picks(b"".join(enc), at, np.array(code, np.int64), b", ")
    assert got == json.dumps([names[c] for c in code])[1:-1].encode()


def test_picks_refuses_what_does_not_fit():
    blob, at = b"ab", np.array([0, 1, 2], np.int64)
    with pytest.raises(ValueError, match="a code outside the groups"):
        _format.picks(blob, at, np.array([2], np.int64), b", ")
    with pytest.raises(ValueError, match="offsets must rise"):
        _format.picks(blob, np.array([0, 3], np.int64), np.array([0], np.int64), b", ")
    with pytest.raises(ValueError, match="offsets must rise"):
        _format.picks(blob, np.array([0, 2, 1], np.int64), np.array([0], np.int64), b", ")


def test_buffers_must_be_contiguous_and_given():
    """A review's cases: a strided or reversed byte buffer was read as if contiguous (wrong
    text, or bytes past the buffer) and None passed as empty. Each is refused now."""
    v = np.array([1, 2], np.int64)
    with pytest.raises(ValueError, match="contiguous"):
        _format.ints(v, np.frombuffer(b",Yx ", np.uint8)[::2])
    with pytest.raises(ValueError, match="contiguous"):
        _format.ints(v, np.frombuffer(b"x ,", np.uint8)[::-1])
    with pytest.raises(ValueError, match="contiguous"):
        _format.ints(np.arange(4, dtype=np.int64)[::2], b", ")
    with pytest.raises(ValueError, match="contiguous"):
        _format.picks(np.frombuffer(b'"Xa"', np.uint8)[::2], np.array([0, 2], np.int64),
                      np.zeros(1, np.int64), b", ")
    with pytest.raises(TypeError):
        _format.ints(None, b", ")
    with pytest.raises(TypeError):
        _format.ints(v, None)
    with pytest.raises(TypeError):
        _format.picks(b"a", np.array([0, 1], np.int64), np.zeros(1, np.int64), None)
    blobs = perfetto._blobs(np.array(["HH"], object), np.array(["a,"], object), np.array([""], object))
    good = [np.zeros(1, np.int64)] * 9
    with pytest.raises(ValueError, match="contiguous"):
        _format.slices(np.frombuffer(b"HxHx", np.uint8)[::2], *blobs[1:], *good)
    with pytest.raises(TypeError):
        _format.slices(*blobs, *good[:8], None)
