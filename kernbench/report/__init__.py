"""Reports of a launch: the utilization table, JSON, Perfetto trace and plots.

Every function takes a :class:`kernbench.runtime.result.LaunchResult`; the same are reachable as
``result.report()``, ``result.to_json(path)``, ``result.to_perfetto(path)`` and
``result.plot(path)``. docs/reports.md explains how to read each.
"""
from .export import from_json, load_json, to_json
from .perfetto import to_perfetto
from .plots import plot
from .summary import summarize
from .table import print_report

__all__ = ["summarize", "print_report", "to_json", "load_json", "from_json", "to_perfetto", "plot"]
