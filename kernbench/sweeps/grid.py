"""A sweep's points: hardware overrides x kernel arguments x launch options.

Each axis is given as

- a dict ``{name: choices}``: the cartesian product of the choices (a list, a range or a 1-D
  numpy array; any other value, a tuple too, is one fixed value);
- a list of such dicts: each expanded as above, one after the other (explicit points, or
  several products);
- None: the axis has one empty point.

A choice that is an np.int64 or np.float64 is the Python number it equals (:func:`_plain`).

The sweep's points are the product of the three axes, in order: kernel arguments outermost,
then launch options, then hardware (the last key of a dict varies fastest).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..common.readonly import ReadOnlyDict
from .figures import FIGURES
from ..common.errors import short_repr

__all__ = ["Launch", "Point", "expand_axis", "points_of", "LAUNCH_OPTIONS", "DEFAULT_OPTIONS"]

#: launch options a sweep may vary, with their defaults (a sweep times: mode "timing"; replay
#: None: the environment variable KERNBENCH_REPLAY, else "on", as ctx.launch)
DEFAULT_OPTIONS = ReadOnlyDict(
    "DEFAULT_OPTIONS", {"mode": "timing", "detail": "train", "strict_sram": False, "max_cycles": None, "replay": None})
LAUNCH_OPTIONS = tuple(DEFAULT_OPTIONS)


@dataclass(frozen=True)
class Launch:
    """What a launch builder returns: ``Launch(kernel, grid, *args, **kernel_kwargs)``, the
    arguments of ``ctx.launch`` without its options (the sweep gives those). Frozen."""

    kernel: Callable
    grid: tuple
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def __init__(self, kernel: Callable, grid, *args, **kernel_kwargs):
        for name, v in (("kernel", kernel), ("grid", tuple(grid)), ("args", tuple(args)),
                        ("kwargs", dict(kernel_kwargs))):
            object.__setattr__(self, name, v)  # (frozen: the dataclass's own __init__ does so)


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its index (row), and its values on each axis."""

    index: int
    hw: dict  #: hardware overrides, dotted keys
    args: dict  #: kernel (or builder / setup) arguments
    options: dict  #: launch options, defaults filled in

    def values(self) -> dict:
        """Every swept value by column name."""
        return {**self.args, **self.options_swept, **self.hw}

    options_swept: dict = field(default_factory=dict)  #: the options the sweep gave (not defaults)


#: the most points a sweep takes: each is a launch (or a row of one), so past it a sweep would
#: run the host out of memory listing them, or not end in a day
MAX_POINTS = 10 ** 7


def _too_many(n: int, what: str) -> ValueError:
    return ValueError(f"{what} makes {n:,} points: a sweep takes at most {MAX_POINTS:,} (each point "
                      f"is a launch); sweep fewer values, or a coarser grid first")


def _plain(v: Any) -> Any:
    """A swept value as the launch gets it: np.int64 and np.float64 (a numpy array's elements,
    ``np.linspace``) as the Python int and float they equal. The kernel's Python computes
    otherwise with them (``1.0 / np.float64(0.0)`` is inf, ``1.0 / 0.0`` raises), so they become
    what docs/sweeps.md promises, the same point as 32 and 0.5; a scalar of another dtype, or
    one nested in a value, is passed as it is (and keyed with its dtype)."""
    return v.item() if type(v) in (np.int64, np.float64) else v


def _choices(v: Any, what: str = "a sweep axis") -> list:
    if isinstance(v, (list, range)):
        if len(v) > MAX_POINTS:
            raise _too_many(len(v), what)
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        if v.ndim == 0:  # (a number: one fixed value, as docs/sweeps.md says of anything else)
            return [_plain(v[()])]
        if v.ndim != 1:
            raise ValueError(f"a numpy array of choices must be 1-D, got shape {v.shape} (a fixed "
                             f"array value is a list of one choice: [arr])")
        if len(v) > MAX_POINTS:
            raise _too_many(len(v), what)
        return [_plain(x) for x in v]
    return [_plain(v)]


def _mapping_choices(axis: Mapping, what: str) -> tuple:
    """(names, their lists of choices) of a dict axis: names must be strings, every list
    non-empty."""
    keys = list(axis)
    for k in keys:
        if not isinstance(k, str):
            raise TypeError(f"{what} names must be strings, got {short_repr(k)}")
    lists = [_choices(axis[k], f"{what} {short_repr(k)}") for k in keys]
    for k, c in zip(keys, lists):
        if not c:
            raise ValueError(f"{what} {short_repr(k)} has no values to sweep")
    return keys, lists


def _axis_parts(axis: "Mapping | list | None", what: str) -> list[tuple]:
    """One axis as ``[(names, their lists of choices)]``, a dict's product each, checked and
    counted before any point is listed (each dict makes one point at least)."""
    if axis is None:
        return [([], [])]
    if isinstance(axis, Mapping):
        keys, lists = _mapping_choices(axis, what)
        n = math.prod(len(c) for c in lists)
        if n > MAX_POINTS:
            raise _too_many(n, f"the {what}s' product ({' x '.join(f'{len(c):,}' for c in lists)})")
        return [(keys, lists)]
    if isinstance(axis, (list, tuple)):
        if len(axis) > MAX_POINTS:
            raise _too_many(len(axis), f"the {what} points")
        parts, n = [], 0
        for item in axis:
            if not isinstance(item, Mapping):
                raise TypeError(f"{what}: a list of points must hold dicts, got {type(item).__name__}")
            keys, lists = _mapping_choices(item, what)
            n += math.prod(len(c) for c in lists)
            if n > MAX_POINTS:
                raise _too_many(n, f"the {what} points")
            parts.append((keys, lists))
        return parts
    raise TypeError(f"{what} must be a dict of choices or a list of dicts, got {type(axis).__name__}")


def _count(parts: list) -> int:
    return sum(math.prod(len(c) for c in lists) for _, lists in parts)


def _expand(parts: list) -> list[dict]:
    return [dict(zip(keys, combo)) for keys, lists in parts for combo in itertools.product(*lists)]


def expand_axis(axis: "Mapping | list | None", what: str) -> list[dict]:
    """The points of one axis (see the module docstring)."""
    return _expand(_axis_parts(axis, what))


def points_of(hardware, args, options) -> list[Point]:
    """Every point of the sweep, in row order. Raises for an unknown launch option, a name
    given on two axes (a column each) or a name of a figure column (``commands``, ``cycles``)."""
    parts = [_axis_parts(a, what) for a, what in ((hardware, "hardware key"), (args, "argument"),
                                                   (options, "launch option"))]
    n_hw, n_arg, n_opt = (_count(p) for p in parts)
    # (counted before any axis is listed: two axes of a million values each built their million
    # dicts, half a GB, before the product was refused; a review)
    if n_hw * n_arg * n_opt > MAX_POINTS:
        raise _too_many(n_hw * n_arg * n_opt, f"args x options x hardware ({n_arg:,} x {n_opt:,} x {n_hw:,})")
    hw_pts, arg_pts, opt_pts = (_expand(p) for p in parts)
    for o in opt_pts:
        bad = sorted(set(o) - set(LAUNCH_OPTIONS))
        if bad:
            raise ValueError(f"unknown launch option {short_repr(bad[0])}: a sweep varies {', '.join(LAUNCH_OPTIONS)} "
                             f"(kernel arguments go in args=)")
    names = {"hardware": {k for p in hw_pts for k in p}, "args": {k for p in arg_pts for k in p},
             "options": {k for p in opt_pts for k in p}}
    for (a, na), (b, nb) in itertools.combinations(names.items(), 2):
        both = sorted(na & nb)
        if both:
            raise ValueError(f"{short_repr(both[0])} is given both in {a} and in {b}: each swept name is one column")
    for axis, na in names.items():
        clash = sorted(na & set(FIGURES))  # (a row holds swept values and figures by name alike)
        if clash:
            raise ValueError(f"{axis} name {short_repr(clash[0])} is the name of a figure column of every row "
                             f"(kernbench.sweeps.figures.FIGURES), which would overwrite its swept value: "
                             f"rename the {'argument' if axis == 'args' else 'key'} (e.g. {clash[0] + '_'!r})")
    out = []
    for i, (a, o, h) in enumerate(itertools.product(arg_pts, opt_pts, hw_pts)):
        out.append(Point(index=i, hw=dict(h), args=dict(a), options={**DEFAULT_OPTIONS, **o},
                         options_swept=dict(o)))
    return out
