"""Autotuning: a sweep over kernel arguments that keeps the fastest config that fits SRAM.

    from kernbench.sweeps import tune, panel_launch
    t = tune(panel_launch("single_user_prefill", context=32768),
             configs=[{"block_kv": b} for b in (512, 1024, 2048, 4096)], hw="default")
    t.best, t.cycles, t.gain        # {'block_kv': 4096}, its cycles, default cycles / best cycles

Kernels stay plain functions: the tuner launches them (through a sweep) with each config as
keyword arguments and never wraps their definition. Every config is timed with
``strict_sram=True``: a config whose peak SRAM passes capacity fails and is not chosen. The
choice is cached (kernbench.common.cache, namespace "tune") by everything that determines it:
the target's code, the fixed arguments (the shapes), the configs, the hardware and the options;
the points themselves are in the sweep cache, so a new config list times only its new configs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..common.cache import DiskCache, digest
from ..hw.config import load_hw
from .run import make_target, sweep

__all__ = ["tune", "TuneResult"]

_KEY_VERSION = "kernbench.tune/1"


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
            return "no config fits: " + "; ".join(f"{r['config']}: {r['error']}" for r in self.table)
        g = f", {self.gain:.3f}x the default {self.default} ({self.default_cycles:,} cycles)" if self.gain else ""
        return f"best {self.best}: {self.cycles:,} cycles{g}"


def tune(target, configs: list, *, hw: Any = "default", args: dict | None = None, default: dict | None = None,
         grid=None, setup=None, sfr=None, ring: bool = False, options: dict | None = None,
         workers: int | None = 1, client=None, cache=True, progress: bool | None = False) -> TuneResult:
    """Time ``target`` (a kernel or a launch builder, as for :func:`kernbench.sweep`) with the
    fixed ``args`` and each config of ``configs`` (dicts of keyword arguments) on ``hw``; pick
    the one with the fewest cycles among those that fit SRAM. ``default`` (default ``{}``: the
    kernel's own defaults) is timed too, for :attr:`TuneResult.gain`. ``options``: fixed launch
    options (mode, detail, max_cycles; strict_sram is always on)."""
    configs = [dict(c) for c in configs]
    if not configs:
        raise ValueError("tune needs at least one config")
    fixed = dict(args or {})
    default = dict(default or {})
    base = load_hw(hw)
    opts = {**(options or {}), "strict_sram": True}
    tgt = make_target(target, grid, setup, sfr, ring)
    store = DiskCache("tune", None if cache is True else cache) if cache else None
    key = digest(_KEY_VERSION, tgt.identity(), base.to_dict(), fixed, configs, default, opts) if store is not None else None
    if store is not None:
        hit = store.get(key)
        if isinstance(hit, dict) and "table" in hit:
            return TuneResult(hit["best"], hit["cycles"], hit["default"], hit["default_cycles"], hit["table"],
                              from_cache=True)
    todo = configs + ([default] if default not in configs else [])
    res = sweep(tgt, hw=base, args=[{**fixed, **c} for c in todo], options={k: [v] for k, v in opts.items()},
                workers=workers, client=client, cache=cache, progress=progress)
    table = [{"config": c, "cycles": r["cycles"], "error": r["error"], "error_type": r["error_type"]}
             for c, r in zip(todo, res.rows)]
    ok = [t for t in table[:len(configs)] if t["error"] is None]
    best = min(ok, key=lambda t: t["cycles"]) if ok else None
    d = table[todo.index(default)]
    out = TuneResult(best["config"] if best else None, best["cycles"] if best else None, default,
                     d["cycles"] if d["error"] is None else None, table, computed=res.stats["computed"])
    if store is not None:
        store.put(key, {"best": out.best, "cycles": out.cycles, "default": out.default,
                        "default_cycles": out.default_cycles, "table": out.table})
    return out
