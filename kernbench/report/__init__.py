"""Reports of a launch: the utilization table, JSON, Perfetto trace, plots, the per-line profile,
the critical path and the numeric drift.

Every function takes a :class:`kernbench.runtime.result.LaunchResult`; the same are reachable as
``result.report()``, ``result.to_json(path)``, ``result.to_perfetto(path)``, ``result.plot(path)``,
``result.profile()``, ``result.critical_path()`` and ``result.drift_report()`` (and Jupyter shows a
result as an HTML table). docs/reports.md explains how to read each.
"""
from ..runtime.result import register_views
from .critical_path import critical_path
from .drift import drift_summary, print_drift
from .export import from_json, load_json, to_json, write_json
from .html import launch_html
from .perfetto import to_perfetto
from .plots import plot
from .profile import print_profile, profile
from .summary import summarize
from .table import print_report

# The LaunchResult methods of the same names call these (the runtime, a layer below, never
# imports this package).
register_views(report=print_report, to_json=to_json, write_json=write_json, to_perfetto=to_perfetto, plot=plot,
               profile=print_profile, critical_path=critical_path, drift_report=print_drift,
               repr_html=launch_html)

__all__ = ["summarize", "print_report", "to_json", "write_json", "load_json", "from_json", "to_perfetto", "plot",
           "profile", "print_profile", "critical_path", "drift_summary", "print_drift", "launch_html"]
