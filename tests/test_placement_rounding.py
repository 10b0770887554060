"""Host data placed as bf16 or fp8 is rounded once (ctx.put / replicate / shard).

ml_dtypes older than numpy 2's (0.5, what numpy 1.x installs) convert float64 and int64 to its
types through float32, rounding twice: 1 + 2**-8 + 2**-40 became bf16 1.0. kernbench rounds to
float32 to odd first (language.numerics.round_once, also the language's int-to-float rounding), which these tests hold against an exact oracle: the
nearest representable value, computed with fractions, ties to the even bit pattern."""
from fractions import Fraction

import numpy as np
import pytest

import kernbench
from kernbench.language.numerics import round_once
from kernbench.runtime.memory import NP_DTYPES

_BITS = {"bf16": np.uint16, "fp8e4m3": np.uint8, "fp8e5m2": np.uint8}


def _finite_values(name):
    bits = _BITS[name]
    with np.errstate(invalid="ignore"):
        allv = np.arange(np.iinfo(bits).max + 1, dtype=np.int64).astype(bits).view(NP_DTYPES[name]).astype(np.float64)
    return np.unique(allv[np.isfinite(allv)])


def _exact(x: float, vals: np.ndarray, name: str) -> float:
    """x rounded to nearest among vals (x within their range), ties to the even bit pattern."""
    i = min(max(int(np.searchsorted(vals, x)), 1), len(vals) - 1)
    lo, hi = float(vals[i - 1]), float(vals[i])
    d_lo, d_hi = Fraction(x) - Fraction(lo), Fraction(hi) - Fraction(x)
    if d_lo != d_hi:
        return lo if d_lo < d_hi else hi
    pattern = int(np.array([lo]).astype(NP_DTYPES[name]).view(_BITS[name])[0])
    return lo if pattern % 2 == 0 else hi


@pytest.mark.parametrize("name", ["bf16", "fp8e4m3", "fp8e5m2"])
def test_float64_and_int64_values_round_once(name):
    vals = _finite_values(name)
    rng = np.random.default_rng(3)
    mids = (vals[1:] + vals[:-1]) / 2
    pick = rng.choice(len(mids), size=min(len(mids), 3000), replace=False)
    m = mids[pick]
    # ties, a hair either side (the values a rounding through float32 gets wrong), and random
    xs = np.concatenate([m, np.nextafter(m, np.inf), np.nextafter(m, -np.inf), m * (1 + 2.0 ** -40),
                         rng.uniform(vals[0], vals[-1], 3000)])
    got = round_once(xs, name).astype(np.float64)
    for x, g in zip(xs.tolist(), got.tolist()):
        assert g == _exact(x, vals, name), (name, x, g)
    ints = np.concatenate([rng.integers(-2 ** 62, 2 ** 62, 2000), [16973823, 2 ** 53 + 1, -(2 ** 63), 2 ** 63 - 1]])
    ints = ints[np.abs(ints.astype(np.float64)) <= vals[-1]].astype(np.int64)
    got = round_once(ints, name).astype(np.float64)
    for v, g in zip(ints.tolist(), got.tolist()):
        assert g == _exact_int(v, vals, name), (name, v, g)


def _exact_int(v: int, vals: np.ndarray, name: str) -> float:
    """Int v rounded to nearest among vals, ties to the even pattern (exact, in fractions)."""
    i = min(max(int(np.searchsorted(vals, float(v))), 1), len(vals) - 1)
    for j in (i - 1, i, i + 1):  # (float(v) may sit a value off when v is past 2**53)
        if 1 <= j < len(vals) and Fraction(float(vals[j - 1])) <= v <= Fraction(float(vals[j])):
            i = j
            break
    lo, hi = float(vals[i - 1]), float(vals[i])
    d_lo, d_hi = v - Fraction(lo), Fraction(hi) - v
    if d_lo != d_hi:
        return lo if d_lo < d_hi else hi
    pattern = int(np.array([lo]).astype(NP_DTYPES[name]).view(_BITS[name])[0])
    return lo if pattern % 2 == 0 else hi


def test_a_review_s_cases_through_put():
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    for data, dtype, want in (([1 + 2 ** -8 + 2 ** -40], "bf16", 1.0078125),
                              ([-431.99999999999994], "fp8e4m3", -416.0),
                              (np.array([16973823], np.int64), "bf16", 16908288.0)):
        h = ctx.replicate(np.asarray(data), dtype=dtype)
        assert float(ctx.read(h, (0, 0)).astype(np.float64)[0]) == want


def test_f16_data_past_nothing_warns_nothing():
    # (numpy 2 warned "overflow encountered in cast" comparing f16 data with 2**63)
    import warnings

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx.replicate([np.float16(1.5), np.float16(-2.0)])


def test_large_data_is_rounded_in_pieces_the_same(monkeypatch):
    from kernbench.language import numerics

    x = np.random.default_rng(5).standard_normal((37, 29)) * 1000.0
    whole = numerics.round_once(x, "bf16")
    monkeypatch.setattr(numerics, "_ODD_CHUNK", 100)  # (11 pieces, the last short)
    pieces = numerics.round_once(x, "bf16")
    assert pieces.shape == x.shape and (pieces.view(np.uint16) == whole.view(np.uint16)).all()
