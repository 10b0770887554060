"""Launching kernels: the Context, device memory and placement, functional replay, LaunchResult."""
from .context import Context
from .memory import DeviceArray, DeviceMemory, PlacementError
from .result import LaunchResult
from .traced import TracedLaunch

__all__ = ["Context", "DeviceArray", "DeviceMemory", "PlacementError", "LaunchResult", "TracedLaunch"]
