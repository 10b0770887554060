"""Sweep plots (matplotlib, no display needed): a line plot and a Pareto front, PNG or SVG."""
from __future__ import annotations

import math
import numbers
from decimal import Decimal
from pathlib import Path

import numpy as np

from ..common.files import check_figure_path, save_figure
from ..common.shown import plain_texts
from .figures import comparable, more_is_better
from .result import check_column, unordered
from ..common.cache import digest
from ..common.errors import short_repr

__all__ = ["line_plot", "pareto", "pareto_rows"]


def _axes(ax):
    if ax is not None:
        return ax.figure, ax, False
    from matplotlib.figure import Figure  # no pyplot: no display, no global state

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    return fig, fig.add_subplot(), True


#: the vector formats matplotlib writes: no dpi (the raster ones at 120)
_VECTOR = (".svg", ".svgz", ".pdf", ".ps", ".eps", ".pgf")


def _save(fig, path) -> None:
    suffix = Path(check_figure_path(path, "plot")).suffix.lower()
    save_figure(fig, path, dpi=None if suffix in _VECTOR else 120)


def line_plot(res, x: str, y: str = "cycles", hue=None, path=None, ax=None, logx=None, logy=False, title=None):
    for c in (x, y, *((hue,) if hue is not None else ())):
        check_column(res, c)
    rows = [r for r in res.rows if r["error"] is None and r[y] is not None]
    if not all(_plottable(r[y]) for r in rows):  # (averaged and drawn: numbers only)
        raise unordered("plot", y, [r[y] for r in rows])
    # (a swept dict or array as x or hue: a category labelled by its repr; as a dict's key it
    # raised "unhashable type", a review)
    rows = [{**r, x: _category(r[x]), **({hue: _category(r[hue])} if hue is not None else {})} for r in rows]
    fig, ax, own = _axes(ax)
    series: dict = {}
    for r in rows:
        series.setdefault(r[hue] if hue is not None else None, {}).setdefault(r[x], []).append(r[y])
    numeric = all(_number(r[x]) for r in rows)
    # x values that are not all numbers are categories, one tick each in value order, labelled
    # here rather than by matplotlib's category axis so that a label shows as it is. Their
    # positions are kept on the Axes: sweeps drawn on one ``ax=`` share them, a value new to it
    # placed after those it has (as the category axis did).
    cats = {} if numeric else ax.__dict__.setdefault("_kernbench_x_categories", {})
    for v in () if numeric else sorted({r[x] for r in rows}, key=_sort_key):
        cats.setdefault(v, len(cats))
    for h, pts in series.items():
        xs = sorted(pts, key=_sort_key)
        # (as floats: a Decimal and a float do not add, a breaker's raw TypeError)
        ys = [sum(_float(u) for u in pts[v]) / len(pts[v]) for v in xs]
        label = f"{hue}={h}" if hue is not None else None
        ax.plot([cats[v] for v in xs] if cats else [_float(v) for v in xs], ys, marker="o", label=label)
    if cats:
        ax.set_xticks(range(len(cats)), [str(v) for v in cats])
        plain_texts([lab for t in ax.xaxis.get_major_ticks() for lab in (t.label1, t.label2)])
    if logx is None:
        vals = sorted({_float(r[x]) for r in rows}) if numeric else []
        logx = numeric and len(vals) > 2 and vals[0] > 0 and vals[-1] / vals[0] >= 16
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    # the user's text (names, values, the title), shown as it is. Points that share x and hue
    # but differ in another swept value are averaged: the y label says so and over how many
    counts = [len(v) for pts in series.values() for v in pts.values()]
    ylabel = y
    if counts and max(counts) > 1:
        lo, hi = min(counts), max(counts)
        ylabel = f"mean {y} ({lo if lo == hi else f'{lo}-{hi}'} points each)"
    plain_texts(ax.set_xlabel(x), ax.set_ylabel(ylabel))
    failed = len(res.rows) - len(rows)
    plain_texts(ax.set_title(title or f"{y} vs {x} on {res.hw.label}"
                             + (f" ({failed} failed points left out)" if failed else ""), fontsize=10))
    if hue is not None:
        plain_texts(ax.legend(fontsize=8).get_texts())
    ax.grid(True, alpha=0.3)
    if path is not None:
        _save(fig, path)
    return ax


def _plottable(v) -> bool:
    # a real number: an int, a float, a Fraction, numpy's; a Decimal too (a Number only); a bool
    return isinstance(v, numbers.Real) or (isinstance(v, numbers.Number) and not isinstance(v, numbers.Complex))


def _number(v) -> bool:
    """A value an x axis places by its size (a bool is a category)."""
    return _plottable(v) and not isinstance(v, (bool, np.bool_))


def _float(v) -> float:
    # (a Decimal NaN, quiet or signalling, as NaN: float() refuses the signalling one)
    return math.nan if isinstance(v, Decimal) and v.is_nan() else float(v)


def _category(v):
    """``v`` as a plot's x or hue value: itself when hashable, else (a dict, an array) a
    :class:`_Unhashable` standing for it."""
    try:
        hash(v)
    except TypeError:
        return _Unhashable(v)
    return v


class _Unhashable(str):
    """A dict's or an array's place on a plot: equal for equal values (their canonical key:
    two dicts whose reprs agree in their first 80 characters were merged into one averaged
    point, a review), shown as its repr cut to 80 characters."""

    def __new__(cls, v):
        self = super().__new__(cls, short_repr(v, 80))
        try:
            self.key = digest(v)
        except Exception:  # noqa: BLE001 (no key: each value its own category)
            self.key = f"id:{id(v)}"
        return self

    def __eq__(self, other):
        return isinstance(other, _Unhashable) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


def _sort_key(v):
    # numbers by value (a Decimal's and a Fraction's too: by their text, 10 came before 2.5)
    return (0, _float(v), "") if _number(v) else (1, 0, str(v))


def pareto_rows(res, cost: str, objective: str = "cycles", maximize: bool | None = None) -> list:
    """Indices (into res.rows) of the Pareto-optimal error-free rows, by increasing cost: less
    cost is better, and less objective, or more where figures.more_is_better(objective,
    maximize)."""
    for c in (cost, objective):
        check_column(res, c)
    most = more_is_better(objective, maximize)
    ok = [(r[cost], r[objective], i) for i, r in enumerate(res.rows)
          if r["error"] is None and comparable(r[cost]) and comparable(r[objective])]
    if most:
        if not all(_number(o) for _, o, _ in ok):
            # (the most of a text, negated as a number, was "" for every row: a review)
            raise ValueError(f"pareto: the most of {short_repr(objective)} needs numbers; its values are not")
        ok = [(c, -o, i) for c, o, i in ok]
    for col, j in ((cost, 0), (objective, 1)):
        # (a column of texts and tuples: a review met a raw TypeError, from the sort or, costs
        # apart, from the front's comparisons)
        if _unorderable([x[j] for x in ok]):
            raise unordered("pareto", col, [res.rows[x[2]][col] for x in ok])
    ok.sort()
    # a row is on the front unless another has lower-or-equal cost and objective, one of them
    # lower: rows tied on both are all on it (none beats the other)
    front, best, best_cost = [], None, None
    for c, o, i in ok:
        if best is None or o < best or (o == best and c == best_cost):
            front.append(i)
            best, best_cost = o, c
    return front


def _unorderable(values: list) -> bool:
    try:
        sorted(values)
    except (TypeError, ArithmeticError):  # (ArithmeticError: a Decimal that does not compare)
        return True
    return False


def pareto(res, cost: str, objective: str = "cycles", path=None, ax=None, label=None, maximize=None):
    front = pareto_rows(res, cost, objective, maximize)
    if path is not None or ax is not None:
        fig, ax, _ = _axes(ax)
        ok = [r for r in res.rows if r["error"] is None and r[cost] is not None]
        ax.scatter([r[cost] for r in ok], [r[objective] for r in ok], s=14, color="0.6", label="points")
        fx = [res.rows[i][cost] for i in front]
        fy = [res.rows[i][objective] for i in front]
        ax.step(fx, fy, where="post", color="C3", lw=1.5)
        ax.scatter(fx, fy, color="C3", s=28, zorder=3, label="Pareto front")
        for i in front:
            r = res.rows[i]
            text = label.format(**r) if label else ", ".join(f"{k}={r[k]}" for k in res.swept)
            plain_texts(ax.annotate(text, (r[cost], r[objective]), fontsize=6, xytext=(3, 3),
                                    textcoords="offset points"))
        # the user's text (names, values), shown as it is
        plain_texts(ax.set_xlabel(cost), ax.set_ylabel(objective),
                    ax.set_title(f"Pareto front: {objective} against {cost} on {res.hw.label}", fontsize=10))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        if path is not None:
            _save(fig, path)
    df = res.df
    return df.iloc[front]
