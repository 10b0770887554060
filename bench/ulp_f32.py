"""The worst error, in f32 ulps, of tl.exp, tl.exp2, tl.log and tl.log2 over every f32 input
whose result is finite and nonzero, as functional mode computes them (numerics.vec_value, the
function replay calls), against numpy's f64 function as the reference (long double's for
exp2, which kernbench computes in f64).

    python bench/ulp_f32.py [exp exp2 log log2]      # about a minute a function on 2 cores

The figures in docs/language.md ("Numerics") come from this script. They depend on the host's
numpy build and CPU (its SIMD code paths); the script prints the numpy version beside them.
An ulp is the spacing of f32 at the reference's magnitude (below a power of two, the smaller
spacing; at least 2**-149, the subnormals'), as in Muller, "Handbook of Floating-Point
Arithmetic", 2.6.
"""
from __future__ import annotations

import sys

import numpy as np

from kernbench.language.numerics import vec_value

CHUNK = 1 << 24
F32 = np.float32


def _bits(x: float) -> int:
    return int(np.array(x, F32).view(np.uint32))


def ranges(name: str):
    """The f32 bit patterns (as [start, stop) ranges) whose ``name`` is finite and nonzero."""
    if name in ("exp", "exp2"):
        hi, lo = (88.72284, -103.97) if name == "exp" else (127.99999, -149.0)
        return [(0, _bits(hi) + 1), (0x80000000, _bits(lo) + 1)]
    return [(1, 0x7F800000)]  # log, log2: every positive finite f32 but +0


def ulps(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|got - ref| in f32 ulps of ``ref`` (f64)."""
    mag = np.abs(ref).astype(F32)
    sp = np.spacing(mag).astype(np.float64)
    below = (np.abs(ref) < mag.astype(np.float64)) & (mag == np.exp2(np.floor(np.log2(mag))))
    sp = np.maximum(np.where(below, sp / 2, sp), 2.0 ** -149)
    return np.abs(got.astype(np.float64) - ref) / sp


def worst(name: str) -> tuple:
    """(max ulps, the input where it is) of tl.``name`` over :func:`ranges`."""
    ref_fn = getattr(np, name)
    best = (0.0, None)
    with np.errstate(all="ignore"):
        for a, b in ranges(name):
            for s in range(a, b, CHUNK):
                x = np.arange(s, min(s + CHUNK, b), dtype=np.uint32).view(F32)
                got = vec_value(name, [x], "f32", x.shape, "f32")
                # (exp2, correctly rounded, against long double: f64's own exp2 cannot show the
                # f32 ties it rounds the wrong way, a review)
                ref = ref_fn(x.astype(np.longdouble if name == "exp2" else np.float64))
                e = ulps(got, ref)
                e[~(np.isfinite(got) & np.isfinite(ref) & (ref != 0))] = 0
                i = int(e.argmax())
                if e[i] > best[0]:
                    best = (float(e[i]), float(x[i]))
    return best


if __name__ == "__main__":
    for fn in sys.argv[1:] or ["exp", "exp2", "log", "log2"]:
        e, at = worst(fn)
        print(f"tl.{fn}: {e:.3f} ulp at x = {np.float32(at)!r} (numpy {np.__version__})", flush=True)
