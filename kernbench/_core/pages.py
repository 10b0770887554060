"""Large per-command and per-tensor arrays on small pages.

A launch of tens of millions of commands builds arrays of hundreds of MB (each command's unit,
queue position, start and end cycle; each tensor's size; the messages) and drops them when it
returns. numpy asks the kernel for 2 MiB pages on every array of 4 MiB and more
(``madvise(MADV_HUGEPAGE)``), and glibc serves every request of 32 MiB and more with a fresh
mapping, so each such array is faulted in 2 MiB at a time, each huge page zeroed whole however
little of it is written. Measured with ``perf`` on the single-user 128K prefill (37.5M
commands; docs/benchmarks.md, "Large arrays on small pages"): 30% of the launch in the kernel
zeroing huge pages, 4.5% with numpy's hint off. The arrays here are anonymous mappings of
small pages instead: mapped all at once for an array its caller fills whole, as they are written
for the others (``sparse``). (tracemalloc, which
numpy reports its own allocations to, does not see them: read a large launch's memory off its
RSS.)
"""
from __future__ import annotations

import mmap

import numpy as np

__all__ = ["FRESH_BYTES", "empty", "zeros", "untouched", "trimmed", "concatenate"]

#: Arrays of at least this many bytes are fresh mappings at every allocation whatever numpy
#: asks (glibc's mmap threshold is at most 32 MiB on 64-bit: DEFAULT_MMAP_THRESHOLD_MAX), so
#: from here up nothing is lost by mapping them ourselves; smaller ones come from numpy, whose
#: freed blocks the next launch of a sweep reuses, already touched.
FRESH_BYTES = 32 << 20

_PRIVATE = hasattr(mmap, "MAP_PRIVATE")  # (POSIX)
#: mmap's flag mapping every page at once (Linux; 0 elsewhere: faulted as written)
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def untouched(n: int, dtype) -> np.ndarray:
    """An (n,) array of ``dtype`` on small pages of its own that cost nothing until written
    (a private anonymous mapping); its values are zeros until written. Raises ValueError if
    n < 0, MemoryError if the host cannot map it."""
    return _mapping(n, dtype, False)


def _mapping(n: int, dtype, populate: bool) -> np.ndarray:
    # untouched's mapping; ``populate``: every page mapped at once (MAP_POPULATE, where there is
    # one: one pass in the kernel instead of a trap per 4 KiB page as each is first written)
    if n < 0:
        raise ValueError(f"untouched: n must be >= 0, got {n}")
    dt = np.dtype(dtype)
    size = max(n * dt.itemsize, 1)
    # private (as numpy's memory: a forked worker's writes stay its own), not mmap's default
    # shared mapping, whose pages are shmem's; Windows has neither fork nor the flag
    try:
        buf = (mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | (_POPULATE if populate else 0))
               if _PRIVATE else mmap.mmap(-1, size))
    except (OSError, OverflowError) as e:  # (the host's address space or overcommit limit)
        what = dt if dt.fields is None else f"{dt.itemsize} bytes"  # (a record's repr is long)
        raise MemoryError(f"kernbench: cannot map {size:,} bytes for {n:,} items of {what}: the launch "
                          f"needs more memory than this host gives ({e})") from None
    return np.frombuffer(buf, dt, count=n)


def zeros(n: int, dtype, sparse: bool = False) -> np.ndarray:
    """``np.zeros(n, dtype)``; from FRESH_BYTES up, on small pages of its own, every page mapped
    at once for an array its caller writes whole (12-15% less system time on the 128K
    launches than faulting them in as written: docs/benchmarks.md, "Arrays filled whole mapped
    at once"). ``sparse``: the caller writes only some items (a capacity, a record of the
    commands that run): pages mapped as written (:func:`untouched`)."""
    dt = np.dtype(dtype)
    return _mapping(n, dt, not sparse) if n * dt.itemsize >= FRESH_BYTES else np.zeros(n, dt)


def empty(n: int, dtype, sparse: bool = False) -> np.ndarray:
    """``np.empty(n, dtype)``; from FRESH_BYTES up, as :func:`zeros` (zeros until written,
    which nothing may rely on)."""
    dt = np.dtype(dtype)
    return _mapping(n, dt, not sparse) if n * dt.itemsize >= FRESH_BYTES else np.empty(n, dt)


def concatenate(parts: list, dtype) -> np.ndarray:
    """``np.concatenate(parts)``, as ``dtype``, into :func:`empty`, each part written once:
    1-d arrays, or parts kept unexpanded that write themselves (``len(part)`` items,
    ``part.put(out)``; the trace's repeated tensor sizes)."""
    out = empty(sum(len(p) for p in parts), dtype)
    k = 0
    for p in parts:
        n = len(p)
        if isinstance(p, np.ndarray):
            out[k:k + n] = p
        else:
            p.put(out[k:k + n])
        k += n
    return out


def trimmed(arr: np.ndarray, n: int) -> np.ndarray:
    """The first n items of a 1-d array from :func:`empty` or :func:`zeros`, moving no data
    and touching no page: numpy's own shrunk in place (realloc), a mapping's as a view (the
    pages past n were never written, so they cost address space only)."""
    if arr.flags.owndata:
        arr.resize(n, refcheck=False)
        return arr
    return arr[:n]
