"""Sums of int64 counters and cycles that stay exact: numpy's int64 sums wrap past 2**63 and
its float64 weights lose the units past 2**53, where a launch's counters, each inside int64,
can sum past it over PEs or lines (a review: the VECTOR busy cycles of 8 PEs at 1.15e18
cycles each read negative in the summary and the profile). Each is an int64 sum where none
can pass 2**63, else Python ints."""
from __future__ import annotations

import numpy as np

__all__ = ["exact_sums", "exact_total"]


def exact_sums(groups: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """``values`` (int64 cycles) summed by group (``groups``: 0..n-1 per value), exactly, for
    the profile and the critical path: bincount's float64 weights lost the units past 2**53 and
    overflowed past 2**63 (a review: a 4.5e18-cycle launch's slack read -2**63). int64 where no sum can pass 2**63 (every launch short of 2**63 / n_steps cycles),
    else Python ints: the slacks of 500 steps of 2**59 cycles sum past it."""
    values = np.asarray(values, np.int64)
    if not len(values) or int(np.abs(values).max()) < (1 << 62) // len(values):
        out = np.zeros(n, np.int64)
        np.add.at(out, groups, values)
        return out
    big = [0] * n
    for g, v in zip(np.asarray(groups).tolist(), values.tolist()):
        big[g] += v
    return np.array(big, dtype=object)


def exact_total(values) -> int:
    """The sum of ``values`` (int64 counters or cycles, any shape) as a Python int, exactly."""
    values = np.asarray(values, np.int64).ravel()
    if not len(values) or int(np.abs(values).max()) < (1 << 62) // len(values):
        return int(values.sum())
    return sum(values.tolist())
