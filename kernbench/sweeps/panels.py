"""The diag panels as launch builders, for sweeps and the tuner (``kernbench sweep --panel``).

``panel_launch("single_user_prefill", shape="llama70b", context=4096)`` is a builder
``(ctx, **args) -> Launch`` placing the panel's data as ``kernbench.diag.run_panel`` does; its
arguments (what a sweep can vary) are ``context``, ``block_q`` (prefill), ``block_kv`` and
``causal``, each defaulting to the panel's own. Timing mode needs no data (``ctx.empty``);
functional mode places the panel's seeded random data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..diag.panels import PANELS, _make_data, panel_arrays, panel_spec
from .grid import Launch
from ..common.errors import short_repr

__all__ = ["PanelLaunch", "panel_launch"]


@dataclass(frozen=True)
class PanelLaunch:
    """A diag panel as a launch builder (see the module docstring)."""

    panel: str
    shape: str = "llama70b"
    context: int | None = None
    cubes: int | None = None
    causal: bool = False
    decode_rows: int = 1
    functional_data: bool = False  #: place the panel's random data (for mode="functional")

    def __post_init__(self):
        if self.panel not in PANELS:
            raise ValueError(f"unknown diag panel {short_repr(self.panel)}: expected one of {', '.join(PANELS)}")

    def __call__(self, ctx, context: int | None = None, block_q: int | None = None,
                 block_kv: int | None = None, causal: bool | None = None) -> Launch:
        # (whole floats, as np.linspace makes, are the ints they hold; anything else reaches the
        # panel's and the kernel's checks as given)
        context, block_q, block_kv = (_as_int(v) for v in (context, block_q, block_kv))
        spec = panel_spec(self.panel, ctx.hw, shape=self.shape,
                          context=self.context if context is None else context, cubes=self.cubes,
                          causal=self.causal if causal is None else causal,
                          decode_rows=self.decode_rows)
        if spec.kind == "prefill":
            if block_kv is None and block_q is None:
                blocks = spec.blocks
            else:
                blocks = (spec.blocks[0] if block_q is None else block_q,
                          spec.blocks[1] if block_kv is None else block_kv)
        else:
            if block_q is not None:
                raise TypeError("block_q is a prefill argument: a decode panel has block_kv only")
            blocks = spec.blocks if block_kv is None else (block_kv,)
        ctx.install_sfr(scope=spec.scope, ring=False)
        n, S_q, h_q, d = spec.n_ranks, spec.S_q, spec.h_q, spec.d_head
        kw = {"causal": True} if spec.causal else {}
        return Launch(spec.kernel, spec.grid, *panel_arrays(ctx, spec, _make_data(spec) if self.functional_data else None), S_q,
                      spec.S_kv_per_rank, h_q, spec.h_kv, d, n, spec.rank_axis, *blocks, **kw)


def _as_int(v):
    """A float of a whole value (a swept 32768.0) as that int; anything else as it is."""
    return int(v) if isinstance(v, (float, np.floating)) and float(v).is_integer() else v


def panel_launch(panel: str, shape: str = "llama70b", context: int | None = None, cubes: int | None = None,
                 causal: bool = False, decode_rows: int = 1, functional_data: bool = False) -> PanelLaunch:
    """A diag panel as a launch builder; see the module docstring. Raises ValueError for a
    ``context`` with the small shape, before any point (a review: an error row per point)."""
    if shape == "small" and context is not None:
        raise ValueError("--context applies to --shape llama70b only (the small shape has its own rows)")
    return PanelLaunch(panel, shape, context, cubes, causal, decode_rows, functional_data)
