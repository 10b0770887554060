"""Output files written whole or not at all (kernbench.common.files): every writer, on a write
that fails part way (a file-size limit standing in for a full disk) or a bad option raised once
the file is open, leaves the file as it was and nothing beside it; a symlink's target is
replaced, the link kept; a file's permission bits stay; plots are the same bytes every run.

(Reviews: a --trace to /dev/full deleted the device, to_json deleted a file it could not open,
a sweep's CSV, Parquet and SVG stayed partial on a full disk and an existing one was emptied by
a bad keyword.)"""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from kernbench.common.files import output_file, save_figure

#: a launch, a sweep and each writer, by name, to run in a subprocess under a file-size limit
SCRIPT = textwrap.dedent("""
    import os, resource, signal, sys, warnings
    warnings.simplefilter("ignore")
    import kernbench
    from kernbench.sweeps import Launch, sweep

    def k(x_ptr, n, *, tl):
        t = tl.load(x_ptr, shape=(16, 16), dtype="f16")
        for i in tl.range(0, 300):
            t = t * 2.0
        tl.store(x_ptr, t)

    def builder(ctx, n=1):
        return Launch(k, (8, 1), ctx.empty((16, 16), "f16"), n)

    ctx = kernbench.Context("default")
    r = ctx.launch(k, (8, 1), ctx.empty((16, 16), "f16"), 1, mode="timing")
    res = sweep(builder, args={"n": list(range(40))}, workers=1, cache=False)
    res.df
    import matplotlib, pyarrow  # (imported before the limit)
    WRITERS = {
        "trace.json": r.to_perfetto, "trace.json.gz": r.to_perfetto, "w.json": r.write_json,
        "t.json": r.to_json, "report.txt": lambda p: r.report(file=p), "plot.png": r.plot,
        "plot.svg": r.plot, "rows.csv": res.to_csv, "rows.parquet": res.to_parquet,
        "saved.csv": res.save, "s.svg": lambda p: res.plot(x="n", path=p),
        "front.svg": lambda p: res.pareto("n", path=p),
    }
    limit = int(sys.argv[1])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    for name, write in WRITERS.items():  # (the limit is per file: each writer meets it)
        try:
            write(name)
            print(name, "written")
        except OSError as e:
            print(name, "OSError", e.errno, e.filename)
""")

NAMES = ["trace.json", "trace.json.gz", "w.json", "t.json", "report.txt", "plot.png", "plot.svg",
         "rows.csv", "rows.parquet", "saved.csv", "s.svg", "front.svg"]


def _write(tmp_path, limit=0) -> dict:
    """Each writer's outcome in a fresh process: "written", or "OSError errno filename"."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(limit)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())


def test_a_write_that_fails_leaves_the_file_as_it_was(tmp_path):
    pytest.importorskip("pyarrow")
    for name in NAMES:
        (tmp_path / name).write_bytes(b"PRECIOUS")
        (tmp_path / name).chmod(0o640)
    # (every file here is over 600 bytes: the limit stops each part way)
    assert _write(tmp_path, limit=600) == {name: f"OSError {errno.EFBIG} {name}" for name in NAMES}
    for name in NAMES:
        assert (tmp_path / name).read_bytes() == b"PRECIOUS", name
    assert sorted(os.listdir(tmp_path)) == sorted(NAMES)  # (no partial file beside them)
    # without the limit: each written whole, over the old, its permission bits kept
    assert _write(tmp_path) == {name: "written" for name in NAMES}
    for name in NAMES:
        st = (tmp_path / name).stat()
        assert st.st_size > 600 and stat.S_IMODE(st.st_mode) == 0o640, name
    assert sorted(os.listdir(tmp_path)) == sorted(NAMES)


def test_a_symlink_is_written_through_and_kept(tmp_path):
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_bytes(b"PRECIOUS")
    link.symlink_to(real)
    whole = b'{"whole": true}'
    with pytest.raises(OSError) as e, output_file(link) as out:
        with open(out, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.filename == str(link) and e.value.errno == errno.ENOSPC
    assert link.is_symlink() and real.read_bytes() == b"PRECIOUS"
    with output_file(link) as out, open(out, "wb") as f:
        f.write(whole)
    assert link.is_symlink() and real.read_bytes() == whole


def test_a_bad_option_raised_once_the_file_is_open_empties_nothing(tmp_path):
    pd = pytest.importorskip("pandas")
    pyarrow = pytest.importorskip("pyarrow")
    from kernbench.sweeps import sweep
    from test_sweep import builder

    res = sweep(builder, args={"chunks": [1, 2]}, workers=1, cache=False)
    for name, write in (("a.csv", lambda p: res.to_csv(p, sep="ab")),
                        ("b.parquet", lambda p: res.to_parquet(p, compression="bogus"))):
        p = tmp_path / name
        p.write_bytes(b"PRECIOUS")
        with pytest.raises((TypeError, ValueError, NotImplementedError, pyarrow.ArrowException)):
            write(p)
        assert p.read_bytes() == b"PRECIOUS"
    res.to_csv(tmp_path / "c.csv", index=True)  # (index= was passed twice to pandas: TypeError)
    assert list(pd.read_csv(tmp_path / "c.csv").columns)[0] == "Unnamed: 0"
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.parquet", "c.csv"]


def test_a_device_is_written_in_place():
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    with output_file("/dev/null") as out, open(out, "wb") as f:
        f.write(b"x")
    assert out == "/dev/null" and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_an_error_naming_the_file_written_names_the_target(tmp_path):
    p = tmp_path / "x.json"
    with pytest.raises(PermissionError) as e, output_file(p) as out:
        raise PermissionError(errno.EACCES, "Permission denied", out)
    assert e.value.filename == str(p)
    assert not p.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("suffix", [".svg", ".pdf", ".png", ".ps", ".eps", ""])
def test_figures_are_the_same_bytes_every_run(tmp_path, suffix):
    """(A review: an SVG's clip-path and marker ids were drawn at random, and its date was the
    wall clock; PostScript's date was the wall clock to the second.) Two processes, so that
    nothing of matplotlib's state is shared."""
    code = textwrap.dedent(f"""
        import sys
        from matplotlib.figure import Figure
        from kernbench.common.files import save_figure
        fig = Figure()
        ax = fig.add_subplot()
        ax.plot([0, 1, 2], [2, 0, 1], marker="o")
        save_figure(fig, sys.argv[1] + {suffix!r})
    """)
    for run in "ab":
        # (from tmp_path: `python -c` puts the working folder first on sys.path, and the
        # checkout's source tree has no built engine)
        subprocess.run([sys.executable, "-c", code, str(tmp_path / run)], check=True, cwd=tmp_path)
    written = suffix or ".png"  # (matplotlib's default format, its suffix added)
    a, b = ((tmp_path / f"{run}{written}").read_bytes() for run in "ab")
    assert a == b and len(a) > 1000
    assert sorted(os.listdir(tmp_path)) == [f"a{written}", f"b{written}"]
    # (the runs may fall in one second: no date at all is what keeps them alike)
    assert b"CreationDate" not in a and b"<dc:date>" not in a


def test_a_figure_to_a_file_object_is_written_as_it_is(tmp_path):
    import io

    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    buf = io.BytesIO()
    save_figure(fig, buf, format="svg")
    assert buf.getvalue().startswith(b"<?xml") and b"<dc:date>" not in buf.getvalue()
    buf = io.BytesIO()
    save_figure(fig, buf, format="eps")
    assert buf.getvalue().startswith(b"%!PS-Adobe-3.0 EPSF") and b"%%CreationDate" not in buf.getvalue()
    text = io.StringIO()  # (matplotlib writes PostScript to a text file too)
    save_figure(fig, text, format="ps")
    assert text.getvalue().startswith("%!PS") and "%%CreationDate" not in text.getvalue()


def test_what_open_refuses_or_a_new_file_would_break_is_written_in_place(tmp_path):
    """(A breaker: a symlink loop was replaced by a file, "out.json/" wrote out.json, and a
    hard-linked file's other name kept the old contents.)"""
    os.symlink(tmp_path / "loopB", tmp_path / "loopA")
    os.symlink(tmp_path / "loopA", tmp_path / "loopB")
    with pytest.raises(OSError) as e, output_file(tmp_path / "loopA") as out, open(out, "w") as f:
        f.write("x")
    assert e.value.errno == errno.ELOOP and (tmp_path / "loopA").is_symlink()
    with pytest.raises(OSError), output_file(str(tmp_path / "out.json") + "/") as out, open(out, "w") as f:
        f.write("x")
    assert not (tmp_path / "out.json").exists()
    (tmp_path / "h1").write_text("old")
    os.link(tmp_path / "h1", tmp_path / "h2")
    with output_file(tmp_path / "h1") as out, open(out, "w") as f:
        f.write("new")
    assert (tmp_path / "h2").read_text() == "new" and (tmp_path / "h1").stat().st_nlink == 2
    assert sorted(os.listdir(tmp_path)) == ["h1", "h2", "loopA", "loopB"]


def test_a_csv_appended_to_or_compressed_is_written_as_pandas_writes_it(tmp_path):
    """(A breaker: mode="a" appended to the new empty file, dropping the rows before; mode="x"
    always failed; a .zip's member and a .gz's header named the temporary file.)"""
    import gzip
    import zipfile

    pd = pytest.importorskip("pandas")
    from kernbench.sweeps import sweep
    from test_sweep import builder

    res = sweep(builder, args={"chunks": [1, 2]}, workers=1, cache=False)
    p = tmp_path / "s.csv"
    res.to_csv(p)
    res.to_csv(p, mode="a", header=False)
    assert len(pd.read_csv(p)) == 4
    res.to_csv(tmp_path / "x.csv", mode="x")
    assert len(pd.read_csv(tmp_path / "x.csv")) == 2
    res.to_csv(tmp_path / "s.csv.zip")
    assert zipfile.ZipFile(tmp_path / "s.csv.zip").namelist() == ["s.csv"]
    res.to_csv(tmp_path / "s.csv.gz")
    raw = (tmp_path / "s.csv.gz").read_bytes()
    assert raw[10:raw.index(b"\0", 10)] == b"s.csv" and gzip.decompress(raw).startswith(b"chunks")
    assert sorted(os.listdir(tmp_path)) == ["s.csv", "s.csv.gz", "s.csv.zip", "x.csv"]


def test_no_temporary_name_reaches_a_figure(tmp_path):
    """PostScript's title and an SVGZ's gzip header took the file's name: the temporary one (a
    breaker); an SVGZ is the same bytes every run too."""
    import gzip

    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    for name in ("p.eps", "p.ps", "p.svgz"):
        save_figure(fig, tmp_path / name)
    for name in ("p.eps", "p.ps"):
        head = (tmp_path / name).read_bytes()[:400]
        assert b"%!PS" in head and b"%%Title" not in head
    raw = (tmp_path / "p.svgz").read_bytes()
    assert raw[10:raw.index(b"\0", 10)] == b"p.svgz" and raw[4:8] == b"\0\0\0\0"  # (mtime 0)
    assert gzip.decompress(raw).startswith(b"<?xml")
    save_figure(fig, tmp_path / "q.svgz")
    assert (tmp_path / "q.svgz").read_bytes()[raw.index(b"\0", 10):] == raw[raw.index(b"\0", 10):]


def test_numpy_print_options_do_not_reach_the_files(tmp_path):
    """(A determinism review.) matplotlib hashes numpy values' text into an SVG's clip-path ids
    and pandas writes a CSV's floats through numpy's: `np.set_printoptions(legacy="1.13")` in
    the process changed an SVG's bytes and cut the CSV's floats to 12 digits."""
    import numpy as np
    from matplotlib.figure import Figure

    from kernbench.common.files import save_figure
    import pandas as pd

    from kernbench.sweeps.result import SweepResult

    def files(tag):
        fig = Figure()
        ax = fig.add_subplot()
        ax.plot(np.array([0.1, 1.0, 2.0]), np.array([2.0, 0.17679558011049723, 1.0]), marker="o")
        save_figure(fig, tmp_path / f"{tag}.svg")
        res = SweepResult([], [], None, {}, names=["x"])
        res._df = pd.DataFrame({"x": [0.17679558011049723, 2.413333333333333e-07]})
        res.to_csv(tmp_path / f"{tag}.csv")
        return (tmp_path / f"{tag}.svg").read_bytes(), (tmp_path / f"{tag}.csv").read_bytes()

    before = np.get_printoptions()
    try:
        plain = files("plain")
        np.set_printoptions(legacy="1.13", precision=3)
        odd = files("odd")
        assert np.get_printoptions()["precision"] == 3  # (the process's options are its own)
    finally:
        np.set_printoptions(**before)
    assert plain == odd
    assert b"0.17679558011049723" in plain[1]
