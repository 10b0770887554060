"""Hardware: config dataclasses, TOML presets, SFR installs. Knows nothing about kernels."""
from .config import (
    KEY_BOUNDS,
    DmaConfig,
    GemmConfig,
    HardwareConfig,
    HardwareConfigError,
    LinkConfig,
    SramConfig,
    VectorConfig,
    VectorOpCycles,
    check_bounds,
    list_presets,
    load_hw,
)
from .sfr import N_PORTS, OPPOSITE, Port, SfrInstall, parse_port

__all__ = [
    "HardwareConfig", "GemmConfig", "VectorConfig", "VectorOpCycles", "DmaConfig", "LinkConfig",
    "SramConfig", "HardwareConfigError", "KEY_BOUNDS", "check_bounds", "load_hw", "list_presets",
    "SfrInstall", "Port",
    "N_PORTS", "OPPOSITE", "parse_port",
]
