"""kernbench: a cycle-approximate model of a mesh AI accelerator for writing and judging kernels."""
from .common.errors import (CounterOverflowError, DeadlockError, EngineInvariantError, KernbenchError, KernelError,
                            MaxCyclesError, NotInLanguageError, ReplayContractError, SramCapacityError)
from .hw import HardwareConfig, SfrInstall, list_presets, load_hw
from .runtime import Context, DeviceArray, LaunchResult
from . import report  # noqa: F401  (registers the LaunchResult views: report, to_json, to_perfetto, plot)
from .sweeps import sweep  # the function; the package is kernbench.sweeps (docs/sweeps.md)

__version__ = "0.1.0"
__all__ = [
    "Context", "DeviceArray", "LaunchResult",
    "HardwareConfig", "SfrInstall", "load_hw", "list_presets", "DeadlockError", "KernbenchError",
    "KernelError", "NotInLanguageError", "ReplayContractError", "MaxCyclesError", "SramCapacityError", "EngineInvariantError",
    "CounterOverflowError", "sweep",
    "__version__",
]
