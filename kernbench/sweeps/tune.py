"""Autotuning: a sweep over kernel arguments that keeps the fastest config that fits SRAM.

    from kernbench.sweeps import tune, panel_launch
    t = tune(panel_launch("single_user_prefill", context=32768),
             configs=[{"block_kv": b} for b in (512, 1024, 2048, 4096)], hw="default")
    t.best, t.cycles, t.gain        # {'block_kv': 4096}, its cycles, default cycles / best cycles

Kernels stay plain functions: the tuner launches them (through a sweep) with each config as
keyword arguments and never wraps their definition. Every config is timed with
``strict_sram=True``: a config whose peak SRAM passes capacity fails and is not chosen. The
choice is cached (kernbench.common.cache, namespace "tune") by everything that determines it:
the target's code, the fixed arguments (the shapes), the configs, the hardware and the options
(the tl.range replay mode too); the points themselves are in the sweep cache, so a new config
list times only its new configs. The cache holds the figures of each config by its place in the
list, never the configs: a result from the cache is the fresh one (``t.best`` is one of the
configs given, a tuple still a tuple), and a config no JSON holds (a function) is cached all the
same. Configs the key cannot hold faithfully (an object keyed by its repr) are not cached.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..common.cache import DiskCache, NotCanonical, digest
from ..hw.config import load_hw
from .figures import is_row
from .run import (CacheNotWrittenWarning, _replay_option, cache_choice, cache_warnings_collected, make_target, not_cached_message,
                  sweep)
from ..common.errors import short_repr

__all__ = ["tune", "TuneResult"]

_KEY_VERSION = "kernbench.tune/2"


@dataclass
class TuneResult:
    """The chosen config and what it gains over the default."""

    best: dict | None  #: the fastest config that fits (None: every config failed)
    cycles: int | None  #: its cycles
    default: dict  #: the config compared against ({}: the kernel's own defaults)
    default_cycles: int | None  #: None when the default failed (e.g. over SRAM)
    table: list = field(default_factory=list)  #: per config: {"config", "cycles", "error", "error_type"}
    from_cache: bool = False
    computed: int = 0  #: launches this call made (0 from the cache; the sweep cache may hold some)

    @property
    def gain(self) -> float | None:
        """Default cycles / best cycles (1.0: the default is best)."""
        if self.cycles and self.default_cycles:
            return self.default_cycles / self.cycles
        return None

    @property
    def kwargs(self) -> dict:
        """The best config as keyword arguments (empty when none fits)."""
        return dict(self.best or {})

    def __str__(self) -> str:
        if self.best is None:
            # each config that failed with its own error (raised, or over SRAM); the default,
            # timed beside them, said to have run when it did (a review: "fits" read as SRAM,
            # and the default that ran was listed as failed, "{}: None")
            d = self._default_row()
            failed = "; ".join(f"{r['config']}{' (the default)' if r is d else ''}: {r['error']}"
                               for r in self.table if r["error"] is not None)
            ran = (f"; the default {self.default} ran: {self.default_cycles:,} cycles"
                   if d is not None and d["error"] is None and self.default_cycles is not None else "")
            return f"no config ran without an error: {failed}{ran}"
        g = f", {self.gain:.3f}x the default {self.default} ({self.default_cycles:,} cycles)" if self.gain else ""
        return f"best {self.best}: {self.cycles:,} cycles{g}"

    def _default_row(self) -> dict | None:
        """The table's row of the default (found as tune found it: the same value)."""
        return next((r for r in self.table if r["config"] is self.default or _same(r["config"], self.default)),
                    None)


def _configs(configs) -> list:
    # (a review: [64] and {"B": [64, 128]} failed in dict() with raw errors naming neither)
    want = "tune: configs is a list of dicts of keyword arguments, one dict a config"
    if isinstance(configs, Mapping):
        one = {k: v[0] if isinstance(v, (list, tuple)) and v else v for k, v in configs.items()}
        raise TypeError(f"{want}, got a dict (a sweep's axes): write [{short_repr(one)}, ...], one dict each")
    if (isinstance(configs, (str, bytes)) or not isinstance(configs, Iterable)
            or getattr(configs, "ndim", None) == 0):  # (a 0-d array cannot be iterated)
        raise TypeError(f"{want}, got {type(configs).__name__} {configs!r:.80}")
    out = list(configs)
    for i, c in enumerate(out):
        if not isinstance(c, Mapping):
            raise TypeError(f"{want}, got {type(c).__name__} {c!r:.80} at position {i}")
        bad = next((k for k in c if not isinstance(k, str)), None)
        if bad is not None:  # (Python's own "argument names must be strings" named neither)
            raise TypeError(f"{want}: its keys are the kernel's argument names, got {short_repr(bad)} at "
                            f"position {i}")
    return [dict(c) for c in out]


def tune(target, configs: list, *, hw: Any = "default", args: dict | None = None, default: dict | None = None,
         grid=None, setup=None, sfr=None, ring: bool = False, options: dict | None = None,
         workers: int | None = 1, client=None, cache=True, progress: bool | None = False) -> TuneResult:
    """Time ``target`` (a kernel or a launch builder, as for :func:`kernbench.sweep`) with the
    fixed ``args`` and each config of ``configs`` (dicts of keyword arguments) on ``hw``; pick
    the one with the fewest cycles among those that fit SRAM. ``default`` (default ``{}``: the
    kernel's own defaults) is timed too, for :attr:`TuneResult.gain`. ``options``: fixed launch
    options (mode, detail, max_cycles; strict_sram is always on). A config that fails is a
    table row with its error. Raises ValueError for no configs, TypeError for ``configs`` that
    is not a list of dicts (a sweep's axis dict among them), and what :func:`kernbench.sweep`
    raises; warns CacheNotWrittenWarning (once) when the cache folder cannot be written."""
    configs = _configs(configs)
    if not configs:
        raise ValueError("tune needs at least one config")
    for name, v in (("args", args), ("default", default)):  # (dict(5) was a raw TypeError: a review)
        if v is not None and not isinstance(v, Mapping):
            raise TypeError(f"tune: {name} must be a dict of the kernel's arguments (or None), got "
                            f"{type(v).__name__} {short_repr(v)}"[:300])
    fixed = dict(args or {})
    default = dict(default or {})
    base = load_hw(hw)
    opts = {**(options or {}), "strict_sram": True}
    opts["replay"] = _replay_option(opts.get("replay"))  # (KERNBENCH_REPLAY read here: in the key)
    tgt = make_target(target, grid, setup, sfr, ring)
    # (the default is one of the configs only when it is the same value: {"B": 64.0} is not
    # {"B": 64}, though ==; it is then timed itself)
    at = next((i for i, c in enumerate(configs) if _same(c, default)), None)
    todo = configs + ([default] if at is None else [])
    cache = cache_choice("tune", cache)
    store = DiskCache("tune", None if cache is True else cache) if cache is not False else None
    key = None
    if store is not None:
        try:
            key = digest(_KEY_VERSION, tgt.identity(), base.to_dict(), fixed, configs, default, opts, strict=True)
        except NotCanonical:  # (a config keyed by its repr: the choice is made again each time)
            store = None
    if store is not None:
        hit = store.get(key)
        if (isinstance(hit, dict) and isinstance(hit.get("rows"), list) and len(hit["rows"]) == len(todo)
                and all(is_row(r, _FIGURES) for r in hit["rows"])):
            return _result(todo, len(configs), default, hit["rows"], 0, from_cache=True)
    # Each value as the one choice of its axis: a list, range or array is an argument's value
    # here, never a set of choices (each config is exactly one point, its row at its place)
    # (the sweep's own warnings go as they come, but its cache's: tune says it once)
    with cache_warnings_collected() as unwritable:
        res = sweep(tgt, hw=base, args=[{k: [v] for k, v in {**fixed, **c}.items()} for c in todo],
                    options={k: [v] for k, v in opts.items()}, workers=workers, client=client, cache=cache,
                    progress=progress)
    if len(res.rows) != len(todo):
        raise RuntimeError(f"kernbench.sweeps.tune: the sweep gave {len(res.rows)} rows for "
                           f"{len(todo)} configs (a kernbench bug)")
    rows = [{k: r[k] for k in _FIGURES} for r in res.rows]
    out = _result(todo, len(configs), default, rows, res.stats["computed"])
    # (by position in the list: plain JSON whatever the configs hold; not when a row's error is
    # not determined by the key, an OSError in a setup: the sweep does not cache those either)
    if unwritable:  # (the folder refused the sweep's rows: not tried again)
        warnings.warn(unwritable[0].replace("kernbench.sweep:", "kernbench.sweeps.tune:", 1),
                      CacheNotWrittenWarning, stacklevel=2)
    elif store is not None and res.stats["uncacheable"] == 0:
        try:
            store.put(key, {"rows": rows})
        except OSError as e:  # (as the sweep's: the choice is made, only not kept)
            warnings.warn(not_cached_message("kernbench.sweeps.tune", store, e), CacheNotWrittenWarning,
                          stacklevel=2)
    return out


def _same(a: dict, b: dict) -> bool:
    """Are two configs the same value (their strict keys equal; without one, the same object)?"""
    try:  # (as the keys' text: 64 and 64.0 differ there, not under ==)
        return digest(a, strict=True) == digest(b, strict=True)
    except NotCanonical:
        return a is b


_FIGURES = ("cycles", "error", "error_type")  #: what the tune cache keeps of each config's row


def _result(todo: list, n_configs: int, default: dict, rows: list, computed: int,
            from_cache: bool = False) -> TuneResult:
    """The TuneResult of the configs ``todo`` (the first ``n_configs`` the candidates, then the
    default if it is not one of them) from their rows, fresh or from the cache alike."""
    table = [{"config": c, **{k: r[k] for k in _FIGURES}} for c, r in zip(todo, rows)]
    ok = [t for t in table[:n_configs] if t["error"] is None]
    best = min(ok, key=lambda t: t["cycles"]) if ok else None
    d = table[next(i for i, c in enumerate(todo) if c is default or _same(c, default))]
    return TuneResult(best["config"] if best else None, best["cycles"] if best else None, default,
                      d["cycles"] if d["error"] is None else None, table, from_cache=from_cache,
                      computed=computed)
