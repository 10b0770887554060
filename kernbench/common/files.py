"""Output files written whole or not at all: every writer of kernbench's (traces, JSON, reports,
plots, sweep tables, the CLI's arrays) goes through :func:`output_file`.

A writer that fails part way (a full disk, a closed pipe, a bad option that raises once the file
is open) left a partial file behind: a truncated CSV reads back as fewer rows, without a word,
and an existing file was emptied or, removed to clean up, deleted (a review: ``--trace
/dev/full`` deleted the device). Here the writer writes a new file beside the target, renamed
over it once the writer returns and removed if it raises, so the target is either the whole new
file or what it was. Figures are saved through :func:`save_figure`, which also keeps their bytes
the same from run to run.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import uuid

__all__ = ["output_file", "save_figure", "check_figure_path"]


@contextlib.contextmanager
def output_file(path):
    """The file name (str) a writer writes ``path``'s contents to.

    For a regular file, or a name not yet taken: a new file in the same folder whose name ends
    as ``path``'s does (formats chosen by suffix hold: ``.json.gz``, ``.svg``), renamed over
    ``path`` when the ``with`` block ends and removed if it raises. A symlink is written through:
    its target is replaced, the link kept. An existing file's permission bits are kept; a new
    one gets the umask's. Written in place, as ``open()`` would: a device, FIFO or socket
    (``/dev/null``, ``/dev/stdout``), a file of several names (a hard link: a new file would
    split them), a name ``open()`` refuses (a trailing separator, a symlink loop: its error), a
    file in a folder where no new file can be made; then a failure may leave it partial. A
    process killed by a signal leaves the new file (``.<12 hex digits>.<name>``) behind.

    An OSError the block raises without a file name (a write's: "[Errno 28] No space left on
    device") is raised again naming ``path``, with its type (a subclass by errno) and errno."""
    p = os.fspath(path)
    st, in_place = None, p.endswith(tuple(filter(None, (os.sep, os.altsep))))
    if not in_place:
        real = os.path.realpath(p)
        try:
            st = os.stat(real)
        except FileNotFoundError:  # (not there yet; a symlink to a name not taken)
            pass
        except OSError:  # (a symlink loop, a path through a file: open() names it)
            in_place = True
        else:
            in_place = not stat.S_ISREG(st.st_mode) or st.st_nlink > 1
    if not in_place:
        folder, base = os.path.split(real)
        tmp = os.path.join(folder, f".{uuid.uuid4().hex[:12]}.{base}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # (the umask applies)
        except OSError:  # (no new file here: a read-only folder, a name too long with the prefix)
            in_place = True
    if in_place:
        with _named(p, p):
            yield p
        return
    try:
        with _named(p, tmp):
            if st is not None:
                os.chmod(tmp, stat.S_IMODE(st.st_mode))
            yield tmp
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def _named(path: str, written: str):
    """An OSError of the block that names no file, or the file written in ``path``'s place,
    raised again naming ``path``."""
    try:
        yield
    except OSError as e:
        if e.errno is not None and (e.filename is None or e.filename == written != path):
            raise OSError(e.errno, e.strerror, path) from e
        raise


def default_printoptions():
    """numpy's default print options, for the time of a write (a context manager): matplotlib's
    SVG ids hash the text of numpy values and pandas' CSV writes floats through numpy's, so a
    process's own ``np.set_printoptions(legacy="1.13")`` changed an SVG's bytes and cut a CSV's
    floats to 12 digits (a review). numpy keeps print options per context: other threads keep
    theirs."""
    import numpy as np

    return np.printoptions(edgeitems=3, infstr="inf", linewidth=75, nanstr="nan", precision=8,
                           suppress=False, threshold=1000, formatter=None, sign="-",
                           floatmode="maxprec", legacy=False)


def check_figure_path(path, who: str) -> str:
    """The file a figure saved to ``path`` (str or os.PathLike) is written to, checked before
    anything is drawn: a suffix matplotlib writes (none: its default format's is added, as
    :func:`save_figure` adds it, ``p`` -> ``p.png``) and that file's path as
    errors.check_output_file checks it (a review: ``plot("p")`` checked ``p`` and wrote ``p.png``,
    a folder; ``plot("my.plot")`` failed in matplotlib after drawing). Raises ValueError naming
    ``who``."""
    from matplotlib import rcParams
    from matplotlib.backend_bases import FigureCanvasBase

    from .errors import check_output_file

    check_output_file(path, who)  # (the path as given first: a folder, a separator at its end)
    p = os.fspath(path)
    suffix = os.path.splitext(p)[1][1:].lower()
    kinds = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in kinds:
        raise ValueError(f"{who}: {p!r}: matplotlib writes {', '.join('.' + k for k in sorted(kinds))} "
                         f"(by the file's suffix), not .{suffix}")
    written = p if suffix else f"{p}.{rcParams['savefig.format']}"
    if written != p:
        check_output_file(written, who)
    return written


def save_figure(fig, path, **kw) -> str | None:
    """``fig.savefig(path, **kw)`` through :func:`output_file` (``path`` a file name; a file
    object is written as it is), with the bytes the same from run to run for PNG, SVG (and
    SVGZ) and PDF: the SVG's element ids from a fixed salt (matplotlib draws them at random), no
    creation date in an SVG, PDF or PostScript file, an SVGZ's gzip header naming ``path`` with
    no time; the writer is given a file object, so no temporary name reaches the file. A name
    without a suffix is
    written as matplotlib does, with its default format's suffix added (``p`` -> ``p.png``).
    Under numpy's default print options (:func:`default_printoptions`). Returns the name of the
    file written (a file object: None)."""
    import gzip

    from matplotlib import rc_context, rcParams

    fmt = kw.pop("format", None)
    named = isinstance(path, (str, os.PathLike))
    if named:
        path = os.fspath(path)
        suffix = os.path.splitext(path)[1][1:].lower()
        if fmt is None and not suffix:
            fmt = rcParams["savefig.format"]
            path = f"{path}.{fmt}"
        fmt = fmt or suffix
    fmt = str(fmt or rcParams["savefig.format"]).lower()
    date = {"svg": "Date", "svgz": "Date", "pdf": "CreationDate"}.get(fmt)
    if date is not None:
        kw["metadata"] = {date: None, **(kw.get("metadata") or {})}
    with rc_context({"svg.hashsalt": "kernbench"}), default_printoptions():
        if fmt in ("ps", "eps"):
            # (matplotlib dates PostScript from the clock or SOURCE_DATE_EPOCH alone, and setting
            # the environment would reach other threads: the optional DSC line is dropped)
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, **kw)
            data = re.sub(rb"(?m)^%%CreationDate:[^\r\n]*\r?\n", b"", buf.getvalue(), count=1)
            if not named:
                from matplotlib.cbook import file_requires_unicode
                path.write(data.decode("latin-1") if file_requires_unicode(path) else data)
            else:
                with output_file(path) as out, open(out, "wb") as f:
                    f.write(data)
        elif not named:
            fig.savefig(path, format=fmt, **kw)
        elif fmt == "svgz":  # (matplotlib's own gzip header holds the time and the file's name)
            with output_file(path) as out, open(out, "wb") as f, gzip.GzipFile(
                    os.path.basename(path), "wb", fileobj=f, mtime=0) as z:
                fig.savefig(z, format="svg", **kw)
        else:
            with output_file(path) as out, open(out, "wb") as f:
                fig.savefig(f, format=fmt, **kw)
    return path if named else None
