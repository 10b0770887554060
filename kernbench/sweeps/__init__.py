"""Design-space sweeps: ``kernbench.sweep(...)`` and ``kernbench sweep`` (docs/sweeps.md).

A sweep launches one kernel (or launch builder) at every point of hardware overrides x kernel
arguments x launch options, traces it once per group of points whose trace is the same (same
arguments, mode, replay mode and machine shape) and times that trace under each point's
hardware, in this process or on Dask workers; each row equals a fresh ``ctx.launch``. Results are cached on disk
(kernbench.common.cache), so a re-run computes only new points.

The core needs nothing more than kernbench; ``.df``, files and Dask need
``pip install "kernbench[sweep]"`` (pandas, pyarrow, dask[distributed]).
"""
from .figures import FIGURES
from .grid import DEFAULT_OPTIONS, LAUNCH_OPTIONS, Launch, Point, expand_axis, points_of
from .panels import PanelLaunch, panel_launch
from .result import SweepResult
from .run import SHAPE_KEYS, Target, sweep, time_one, trace_one
from .tune import TuneResult, tune

__all__ = ["sweep", "SweepResult", "Launch", "Point", "Target", "tune", "TuneResult", "panel_launch",
           "PanelLaunch", "expand_axis", "points_of", "trace_one", "time_one", "FIGURES", "SHAPE_KEYS",
           "LAUNCH_OPTIONS", "DEFAULT_OPTIONS"]
