"""Errors kernbench raises, shared by the engine, the language and the runtime.

Each carries structured fields (for tools) and a message that names the PE as (pe, cube), the
kernel line, and what was expected (for people).
"""
from __future__ import annotations

__all__ = [
    "KernbenchError",
    "DeadlockError",
    "MaxCyclesError",
    "SramCapacityError",
    "KernelError",
    "UnwrittenReadWarning",
]


class KernbenchError(Exception):
    """Base of kernbench's own errors."""


class DeadlockError(KernbenchError, RuntimeError):
    """No event is left but commands remain: ``blocked`` lists every blocked unit."""

    def __init__(self, message: str, blocked: list[dict], cycle: int):
        super().__init__(message)
        self.blocked = blocked
        self.cycle = cycle


class MaxCyclesError(KernbenchError, RuntimeError):
    """The run passed ``max_cycles``; ``positions`` says where each PE stands."""

    def __init__(self, message: str, positions: list[dict], cycle: int):
        super().__init__(message)
        self.positions = positions
        self.cycle = cycle


class SramCapacityError(KernbenchError, RuntimeError):
    """Peak live SRAM above capacity with ``strict_sram=True``."""

    def __init__(self, message: str, over: list[tuple]):
        super().__init__(message)
        self.over = over


class KernelError(KernbenchError, ValueError):
    """Bad input found while tracing or replaying a kernel: names the PE and the kernel line."""

    def __init__(self, message: str, pe: tuple | None = None, where: str | None = None):
        super().__init__(message)
        self.pe = pe
        self.where = where


class UnwrittenReadWarning(UserWarning):
    """Functional replay loaded device memory that nothing had written (it reads as NaN, or as
    zeros with ``Context(unwritten="zero")``). The message names the PE, the kernel line and the
    allocation; ``LaunchResult.unwritten_reads`` lists every such load."""
