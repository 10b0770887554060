"""What ``kernbench.sweep`` returns: one row per point, as a pandas DataFrame and plain dicts."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..common.errors import check_output_file, short_repr
from ..common.files import default_printoptions, output_file
from ..report.table import plural
from .figures import FIGURE_TYPES, FIGURES, comparable, more_is_better

#: figures that are whole numbers (pandas "Int64": a failed point's is <NA>), the floats
#: (float64, NaN where a point failed) and the flag (pandas "boolean", <NA> where a point
#: failed): their dtypes whatever the rows' outcomes (figures.FIGURE_TYPES)
INT_FIGURES, FLOAT_FIGURES, BOOL_FIGURES = (tuple(c for c in FIGURES if FIGURE_TYPES[c] is t) for t in (int, float, bool))

__all__ = ["SweepResult", "require", "check_column"]


def check_column(res, c: str) -> None:
    """Raise ValueError unless ``c`` is one of ``res.columns`` (a swept name or a figure): the
    one check of every method that names a column (best, plot, pareto)."""
    if not isinstance(c, str) or c not in res.columns:  # (an array's `in`: numpy's error, a review)
        raise ValueError(f"no column {short_repr(c)} in this sweep (columns: {', '.join(res.columns)})")


def unordered(method: str, c: str, values: list) -> ValueError:
    """The error of ``method`` (best, pareto; plot, whose y takes numbers) when column ``c``'s
    values are of kinds it cannot order or draw: the kinds and an example of each named."""
    kinds: dict = {}
    for v in values:
        kinds.setdefault(type(v).__name__, v)
    seen = ", ".join(f"{k} ({short_repr(v)})" for k, v in sorted(kinds.items()))
    why = ("y takes numbers: a figure such as 'cycles', or a swept column of numbers" if method == "plot"
           else "they do not order; give it a column of numbers (or of texts alone), or pick the rows "
                "from res.rows yourself")
    return ValueError(f"{method}: the values of {short_repr(c)} are {seen}: {why}")


def require(module: str):
    """Import an optional dependency of sweeps, or say how to install it. Raises ImportError:
    with the install hint when the package is missing; with the package's own error when it is
    installed but fails to import (a review: pyarrow 26 refusing numpy 1.x was reported as
    missing, and reinstalling the extra changed nothing)."""
    import importlib

    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != top:  # (installed; something it imports is missing)
            raise ImportError(f"{top} is installed but cannot be imported: {e}") from e
        raise ImportError(f"this part of kernbench sweeps needs {top}: "
                          f'pip install "kernbench[sweep]"') from None
    except ImportError as e:
        raise ImportError(f"{top} is installed but cannot be imported: {e} (a version built for "
                          f"another numpy or Python: install one that matches)") from e


def _plain(v: Any) -> Any:
    """A swept value as a plain Python value (numpy scalars as numbers)."""
    if isinstance(v, np.generic):  # (any other object as it is: its __getattr__ may raise)
        return v.item()
    return v


#: the suffixes pandas infers a compression from (pandas.io.common._compression_to_extension)
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")


class SweepResult:
    """Rows of a sweep, in point order: the swept values (hardware keys as dotted names, kernel
    arguments, launch options the sweep gave), then :data:`~kernbench.sweeps.figures.FIGURES`.

    ``rows`` (list of dicts) needs nothing; ``df`` needs pandas. ``stats``: points, cached,
    computed, trace_groups, traces, workers, uncacheable (rows whose failure need not recur: not
    cached), wall_seconds, cpu_seconds_client."""

    def __init__(self, points: list, figures: list, hw, stats: dict, names: list | None = None):
        self.points = points
        self.hw = hw  #: the base HardwareConfig
        self.stats = stats
        #: the swept names, the first columns (``names``: those of a sweep of no points)
        self.swept = list(dict.fromkeys(k for p in points for k in
                                        (*p.args, *p.options_swept, *p.hw))) if points else list(names or ())
        self.rows = [{**{k: None for k in self.swept},
                      **{k: _plain(v) for k, v in p.values().items()}, **fig}
                     for p, fig in zip(points, figures)]
        self._df = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def columns(self) -> list:
        return [*self.swept, *FIGURES]

    @property
    def df(self):
        """A pandas DataFrame, one row per point (built once)."""
        if self._df is None:
            pd = require("pandas")
            df = pd.DataFrame(self.rows, columns=self.columns)
            for c in INT_FIGURES:  # whole numbers stay whole beside a failed point's missing value
                df[c] = df[c].astype("Int64")
            for c in FLOAT_FIGURES:  # (object when every point failed: their None)
                df[c] = df[c].astype("float64")
            for c in BOOL_FIGURES:
                df[c] = df[c].astype("boolean")
            for c in self.swept:  # an axis of ints that some points leave out: ints and <NA>
                vals = [r.get(c) for r in self.rows]
                given = [v for v in vals if v is not None]
                if given and len(given) < len(vals) and all(type(v) is int for v in given):
                    df[c] = pd.array(vals, dtype="Int64")
            self._df = df
        return self._df

    @property
    def failed(self) -> list:
        """The rows with an error."""
        return [r for r in self.rows if r["error"] is not None]

    def best(self, by: str = "cycles", maximize: bool | None = None) -> dict | None:
        """The error-free row with the least ``by`` (the largest for a column where more is
        better, figures.MORE_IS_BETTER: ``tflops``, ``roofline_fraction``, ``busy_*``, ...;
        ``maximize`` True or False decides instead); the first of a tie; rows where ``by`` is
        None or NaN are passed over; None when there is none (no points, every point failed,
        or a column the error-free rows leave empty: ``error_pe``). Raises ValueError when ``by``
        is not a column (a misspelt name must not read as "every point failed"), ``maximize`` is
        not a bool, or the values are of kinds that do not order (texts and tuples)."""
        check_column(self, by)
        most = more_is_better(by, maximize)
        ok = [r for r in self.rows if r["error"] is None and comparable(r.get(by))]
        if not ok:
            return None
        try:
            return (max if most else min)(ok, key=lambda r: r[by])
        except (TypeError, ValueError, ArithmeticError):  # (texts and tuples: a review met a raw
            # TypeError; arrays numpy's "truth value is ambiguous")
            raise unordered("best", by, [r[by] for r in ok]) from None

    # -- files ---------------------------------------------------------------------------------
    def to_csv(self, path=None, **kw) -> "str | None":
        """The rows as CSV (pandas' ``to_csv``, ``kw`` passed on). ``path`` a file name written
        over is written whole or not at all (common.files.output_file); appended to
        (``mode="a"``) or compressed (``.gz``, ``.zip``, ...: the archive names the file), in
        place, as pandas writes it. Without ``path`` (None) it returns the CSV text, as pandas
        does; else None."""
        if isinstance(path, (str, os.PathLike)):  # (a folder, a missing one: named, not raw OSErrors)
            check_output_file(path, "to_csv")
        kw.setdefault("index", False)
        whole = (isinstance(path, (str, os.PathLike)) and kw.get("mode", "w") == "w"
                 and kw.get("compression", "infer") in ("infer", None)
                 and (kw.get("compression", "infer") is None
                      or not os.fspath(path).lower().endswith(_COMPRESSED)))
        with default_printoptions():  # (floats written whole, whatever the process set)
            if whole:
                with output_file(path) as out:
                    self.df.to_csv(out, **kw)
            else:
                return self.df.to_csv(path, **kw)  # (the text for path=None: pandas' contract)
        return None

    def to_parquet(self, path, **kw) -> None:
        """The rows as Parquet (pandas' ``to_parquet``, ``kw`` passed on), written whole or not
        at all. Raises ValueError for a path that names a folder or is in none."""
        if isinstance(path, (str, os.PathLike)):
            check_output_file(path, "to_parquet")
        pa = require("pyarrow")
        df = self.df.copy()
        # a column of mixed types (ints and tuples), or of values Arrow has no type for (a fixed
        # value that is a generator), as text; missing stays null
        for c in self.swept:
            if df[c].dtype != object:  # (ints and floats: df made it float64, as the file keeps it)
                continue
            vals = [r.get(c) for r in self.rows]
            given = [v for v in vals if v is not None]
            text = len({type(v) for v in given}) > 1
            if not text:
                try:
                    pa.array(given)
                except (pa.ArrowException, TypeError, ValueError, OverflowError):
                    text = True
            if text:
                df[c] = [None if v is None else repr(v) for v in vals]
        kw.setdefault("index", False)
        if isinstance(path, (str, os.PathLike)):
            with output_file(path) as out:  # (whole or not at all)
                df.to_parquet(out, **kw)
        else:
            df.to_parquet(path, **kw)

    def save(self, path) -> None:
        """``.csv`` or ``.parquet`` by the file's suffix."""
        check_output_file(path, "save")
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            self.to_csv(path)
        elif suffix in (".parquet", ".pq"):
            self.to_parquet(path)
        else:
            raise ValueError(f"cannot tell the format of {str(path)!r}: name it .csv or .parquet")

    # -- views ---------------------------------------------------------------------------------
    def plot(self, x: str, y: str = "cycles", hue: str | None = None, path=None, ax=None,
             logx: bool | None = None, logy: bool = False, title: str | None = None):
        """``y`` against ``x`` (error-free rows), one line per value of ``hue``; points that
        share x and hue but differ in another swept value are averaged. Written to ``path``
        (a format matplotlib writes, by its suffix: .png, .svg, .pdf ...) when given. Returns the
        matplotlib Axes. Raises ValueError for a name that is not a column, or a ``path``
        matplotlib cannot write (its suffix, or no such folder)."""
        from . import plots

        return plots.line_plot(self, x, y, hue, path=path, ax=ax, logx=logx, logy=logy, title=title)

    def pareto(self, cost: str, objective: str = "cycles", path=None, ax=None, label: str | None = None,
               maximize: bool | None = None):
        """The error-free rows no other row beats on both ``objective`` and ``cost``, sorted by
        cost, as a DataFrame: less cost is better; less ``objective`` too, or more for a column
        where more is better (figures.MORE_IS_BETTER: ``tflops``, ``roofline_fraction``, ...;
        ``maximize`` True or False decides instead); rows where either is None or NaN are
        passed over. With ``path`` (.png / .svg) or ``ax`` also a scatter of every point with
        the front drawn. Raises ValueError for a name that is not a column, a ``maximize`` that
        is not a bool, the most of an objective that is not numbers, or a ``path`` matplotlib
        cannot write (its suffix, or no such folder)."""
        from . import plots

        return plots.pareto(self, cost, objective, path=path, ax=ax, label=label, maximize=maximize)

    def summary(self) -> str:
        s = self.stats
        failed = len(self.failed)
        workers = s.get("workers") or 1
        refused = s.get("refused", 0)
        return (f"{plural(s['points'], 'point')} ({s['computed']:,} computed, {s['cached']:,} from the cache"
                + (f", {refused:,} refused: bad hardware" if refused else "") + ")"
                + (f"; {failed:,} failed" if failed else "")
                + f"; {plural(s['traces'], 'trace')} for {plural(s['trace_groups'], 'trace group')}; "
                f"{s['wall_seconds']:.2f} s wall" + (f" on {workers} workers" if workers > 1 else ""))

    def __repr__(self) -> str:
        return f"SweepResult({self.summary()}; columns: {', '.join(self.swept)} + figures)"

    def _repr_html_(self) -> str:
        head = f"<p><b>kernbench sweep</b> on {html.escape(self.hw.label)}: {html.escape(self.summary())}</p>"
        try:
            cols = [*self.swept, "cycles", "seconds", "tflops", "roofline_fraction", "busy_GEMM",
                    "link_bytes", "sram_peak_bytes", "error"]
            return head + self.df[cols]._repr_html_()
        except ImportError:
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c)))}</td>" for c in self.swept +
                                            ["cycles", "error"]) + "</tr>" for r in self.rows[:50])
            hdr = "".join(f"<th>{html.escape(c)}</th>" for c in self.swept + ["cycles", "error"])
            return f"{head}<table><tr>{hdr}</tr>{rows}</table>"
