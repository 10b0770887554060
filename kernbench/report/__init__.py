"""Reports of a launch: the utilization table, JSON, Perfetto trace and plots.

Every function takes a :class:`kernbench.runtime.result.LaunchResult`; the same are reachable as
``result.report()``, ``result.to_json(path)``, ``result.to_perfetto(path)`` and
``result.plot(path)``. docs/reports.md explains how to read each.
"""
from ..runtime.result import register_views
from .export import from_json, load_json, to_json
from .perfetto import to_perfetto
from .plots import plot
from .summary import summarize
from .table import print_report

# The LaunchResult methods of the same names call these (the runtime, a layer below, never
# imports this package).
register_views(report=print_report, to_json=to_json, to_perfetto=to_perfetto, plot=plot)

__all__ = ["summarize", "print_report", "to_json", "load_json", "from_json", "to_perfetto", "plot"]
