"""The compiled engine. ``simulate`` is the one entry point; see api.py."""
from .api import DETAILS, EVENT_DTYPE, MESSAGE_DTYPE, EngineResult, hw_params, simulate
from ._engine import DEBUG_BUILD, LINK_COUNTERS_DTYPE, UNIT_COUNTERS_DTYPE

__all__ = [
    "simulate",
    "EngineResult",
    "hw_params",
    "DETAILS",
    "EVENT_DTYPE",
    "MESSAGE_DTYPE",
    "UNIT_COUNTERS_DTYPE",
    "LINK_COUNTERS_DTYPE",
    "DEBUG_BUILD",
]
