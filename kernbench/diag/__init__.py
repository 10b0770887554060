"""The diag harness: four ring-attention panels (single/multi user x prefill/decode).

``kernbench diag`` on the command line; ``kernbench.diag.run_panels()`` from Python.
"""
from .panels import (
    ATOL,
    PANELS,
    RTOL,
    SHAPES,
    PanelResult,
    PanelSpec,
    attention_reference,
    check_output,
    panel_spec,
    run_panel,
    run_panels,
)

__all__ = [
    "PANELS", "SHAPES", "PanelSpec", "PanelResult", "panel_spec", "run_panel", "run_panels",
    "attention_reference", "check_output", "ATOL", "RTOL",
]
