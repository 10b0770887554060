"""write_json: to_json's document written a chunk at a time (the CLI's --json), byte for byte
the text json.dumps(to_json(result)) gives; and the reports reading a long launch's command
fields (Program.columns) without expanding a compact program."""
import io
import json

import numpy as np
import pytest

import kernbench
from kernbench.common import pe_commands
from kernbench.common.pe_commands import COMMAND_DTYPE
from kernbench.diag import panel_spec, run_panel
from kernbench.hw import load_hw
from kernbench.report import critical_path, export, from_json, profile, to_json, to_perfetto, write_json

from report_helpers import line_pipeline, ring_exchange, scale_launch

MESH8 = load_hw("mesh8")


def _panel(name="single_user_prefill", context=4096, causal=False):
    spec = panel_spec(name, MESH8, shape="llama70b", context=context, causal=causal)
    return run_panel(spec, MESH8).result


@pytest.fixture(scope="module")
def prefill():
    """A replayed launch: its program compact (tilings), its tensor sizes as indices."""
    r = _panel()
    assert r.program.tiled is not None and r.program.sizes is not None
    return r


def _same_text(r, path):
    n = write_json(r, path)
    text = path.read_text()
    assert n == len(text.encode())
    assert text == json.dumps(to_json(r))


def _functional_with_drift():
    def k(x_ptr, o_ptr, n, *, tl):
        x = tl.load(x_ptr, shape=(n,), dtype="f16")
        tl.store(o_ptr, tl.exp(x) * 2.0)

    ctx = kernbench.Context(hw="default")
    x = ctx.shard(np.linspace(0, 1, 4 * 64).astype(np.float16), axis=0, parts=4)
    return ctx.launch(k, (4, 1), x, ctx.empty_like(x), 64, mode="functional", drift=True)


def _rebuilt():
    """A result read back from JSON: labels and sources per command, no kernel sites."""
    r = from_json(to_json(scale_launch()))
    assert getattr(r, "name_keys", None) is None
    return r


@pytest.mark.parametrize("make", [
    lambda: line_pipeline(n_pes=3, record_events=True),
    lambda: ring_exchange(n_pes=4, rounds=2),
    lambda: ring_exchange(n_pes=4, rounds=1, labels=lambda i: f"command {i}"),
    scale_launch,
    _functional_with_drift,
    _rebuilt,
    lambda: _panel("single_user_decode"),
    lambda: _panel(context=2048, causal=True),
], ids=["line_pipeline", "ring_exchange", "custom_labels", "ctx_launch", "functional_drift", "from_json",
        "decode_panel", "causal_prefill"])
def test_file_is_to_jsons_text(make, tmp_path):
    _same_text(make(), tmp_path / "r.json")


def test_a_replayed_launch_is_written_without_expanding(prefill, tmp_path):
    """Each kernel site's label and source written once and copied (name_keys): the same text
    as naming every command; the program stays compact and its sizes indices."""
    r = prefill
    assert r.name_keys is not None and len(r.name_keys) == r.program.n_commands
    _same_text(r, tmp_path / "p.json")
    # to_json read the program too, but through columns: neither form was changed
    assert r.program.tiled is not None and r.program.sizes is not None
    idx, table = r.program.sizes
    sizes = r.program.byte_sizes()
    assert sizes.dtype == np.int64 and sizes.tolist() == [int(table[i]) for i in idx]
    assert r.program.sizes is not None


def test_chunk_boundaries(monkeypatch, tmp_path):
    """Lists cut every 7 entries (and a list shorter than a chunk, an empty one: decode's
    messages) write the same text."""
    monkeypatch.setattr(export, "JSON_CHUNK", 7)
    for make in (lambda: line_pipeline(n_pes=3), lambda: ring_exchange(n_pes=4, rounds=3)):
        _same_text(make(), tmp_path / "c.json")
    r = ring_exchange(n_pes=4, rounds=3)
    write_json(r, tmp_path / "c.json")
    back = from_json(tmp_path / "c.json")
    assert np.array_equal(back.engine.cmd_end, r.engine.cmd_end)
    assert to_json(back) == to_json(r)


def test_a_failed_write_leaves_no_file(monkeypatch, tmp_path):
    r = ring_exchange(n_pes=4, rounds=1)

    def boom(lo, hi):
        raise RuntimeError("disk full")

    doc = export._document

    def broken(result, named_by_site):
        d = doc(result, named_by_site)
        d["commands"]["end"].text = boom
        return d

    monkeypatch.setattr(export, "_document", broken)
    p = tmp_path / "x.json"
    with pytest.raises(RuntimeError, match="disk full"):
        write_json(r, p)
    assert not p.exists()


def test_result_method_and_the_views():
    r = ring_exchange(n_pes=4, rounds=1)
    assert r.write_json.__doc__ and "chunk" in r.write_json.__doc__


@pytest.mark.parametrize("names", [("unit",), ("dst", "src0", "nbytes", "line"), COMMAND_DTYPE.names])
def test_columns_equal_the_expanded_fields(prefill, names, monkeypatch):
    """Program.columns on the compact program (read 1,000 rows at a time here, so its last
    chunk is partial) equals the fields of the expanded array, dtype and all; the compact
    program stays compact."""
    prog = prefill.program
    monkeypatch.setattr(pe_commands, "COLUMN_CHUNK", 1000)
    cols = prog.columns(*names)
    assert prog.tiled is not None
    full = prog.compact.expand()
    assert len(cols) == len(names)
    for f, c in zip(names, cols):
        assert c.dtype == COMMAND_DTYPE[f] and c.tobytes() == full[f].tobytes(), f
    # an expanded program gives views of its array
    held = pe_commands.Program(full, prog.cmd_offsets, prog.tensor_bytes.copy(), prog.tensor_pinned,
                               prog.tensor_offsets)
    (u,) = held.columns("unit")
    assert u.base is not None and np.shares_memory(u, full)


def test_columns_refuses_a_name_that_is_not_a_field(prefill):
    with pytest.raises(ValueError, match=r"'units' is not a command field \(fields: m, n, k"):
        prefill.program.columns("unit", "units")


def test_reports_leave_a_compact_program_compact(tmp_path):
    """The profile, the critical path, the trace and the JSON of a replayed launch read the
    fields they need: the 72-byte rows are never rebuilt and kept on the result."""
    r = _panel(context=2048)
    assert r.program.tiled is not None
    profile(r)
    critical_path(r).to_dict()
    to_perfetto(r, tmp_path / "t.json")
    r.label(5), r.source(5)
    write_json(r, tmp_path / "r.json")
    assert r.program.tiled is not None


def test_bad_paths_are_named(tmp_path):
    r = ring_exchange(n_pes=4, rounds=1)
    with pytest.raises(ValueError, match="is a directory"):
        write_json(r, tmp_path)
    with pytest.raises(ValueError, match="folder .*nowhere.* does not exist"):
        write_json(r, tmp_path / "nowhere" / "r.json")
    with pytest.raises(ValueError, match="must be a file path"):
        write_json(r, 3)


def test_every_writer_names_a_missing_folder(tmp_path):
    """A new user's case: to_json, plot and a report to a file raised a bare FileNotFoundError
    (write_json and to_perfetto named the folder); each names the writer and the folder now,
    before drawing or writing anything."""
    from kernbench.report import print_profile, print_report

    r = ring_exchange(n_pes=4, rounds=1)
    gone = tmp_path / "nowhere"
    for name, call in (("to_json", lambda: r.to_json(gone / "r.json")),
                       ("plot", lambda: r.plot(gone / "p.png")),
                       ("print_report", lambda: print_report(r, file=gone / "r.txt")),
                       ("print_profile", lambda: print_profile(r, file=str(gone / "p.txt"))),
                       ("to_perfetto", lambda: r.to_perfetto(gone / "t.json"))):
        with pytest.raises(ValueError, match=rf"^{name}: folder .*nowhere.* does not exist$"):
            call()
    assert not gone.exists()
    with pytest.raises(ValueError, match="^to_json: the path is empty"):
        r.to_json("")
    buf = io.BytesIO()  # (a binary file object: savefig's to write, as before the check)
    r.plot(buf)
    assert buf.getvalue()[:4] == b"\x89PNG"
    # anything else that is not a path is refused (a review found to_json(3) writing the JSON into
    # file descriptor 3 and closing it, and to_json(True) into stdout)
    for bad in (3, True, io.StringIO(), b"x.json"):
        with pytest.raises(ValueError, match="^to_json: path must be a file path"):
            r.to_json(bad)
    for bad in (3, io.StringIO()):
        with pytest.raises(ValueError, match="^plot: path must be a file path"):
            r.plot(bad)
    import tempfile  # (a tempfile's wrapper is a binary file too: a review found it refused)

    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        r.plot(f)
        assert f.tell() > 0
    (tmp_path / "r.bin").write_bytes(b"")
    with open(tmp_path / "r.bin", "rb") as f, pytest.raises(ValueError, match="not open for writing"):
        r.plot(f)
    import codecs
    import gzip

    with gzip.open(tmp_path / "p.png.gz", "wb") as f:  # (gzip's mode is an int)
        r.plot(f)
    assert gzip.decompress((tmp_path / "p.png.gz").read_bytes())[:4] == b"\x89PNG"
    with codecs.open(tmp_path / "t.txt", "w", encoding="utf-8") as f, pytest.raises(ValueError, match="^plot: path"):
        r.plot(f)  # (a text writer whose mode reads "wb")
    closed = io.BytesIO()
    closed.close()
    with pytest.raises(ValueError, match="^plot: the file object .* is closed"):
        r.plot(closed)


def test_labels_replaced_after_the_launch_are_written_one_by_one(tmp_path):
    """A review's case: a ctx.launch result whose labels or sources were replaced afterwards
    (dataclasses.replace) keeps its name_keys, and write_json named each site from its first
    command. Such a result's commands are named one by one now (commands.site_keys), in the
    file, the trace and the profile."""
    import dataclasses

    from kernbench.report import profile
    from kernbench.report.commands import site_keys

    r = scale_launch()
    assert site_keys(r) is not None
    n = r.program.n_commands
    for field in ("labels", "sources"):
        other = dataclasses.replace(r, **{field: lambda i: f"cmd {i}"})
        assert site_keys(other) is None
        _same_text(other, tmp_path / f"{field}.json")
        doc = json.loads((tmp_path / f"{field}.json").read_text())
        assert doc[field] == [f"cmd {i}" for i in range(n)]
    other = dataclasses.replace(r, labels=lambda i: f"cmd {i}")
    to_perfetto(other, tmp_path / "t.json")
    names = [e["name"] for e in json.loads((tmp_path / "t.json").read_text())["traceEvents"]
             if e.get("ph") == "X"]
    assert sorted(names) == sorted(f"cmd {i}" for i in range(n))
    labels = {lab for line in profile(other)["lines"] for lab in line["labels"]}
    assert labels == {f"cmd {i}" for i in range(n)}
