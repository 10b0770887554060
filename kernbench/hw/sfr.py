"""SFR installs: which PE port is wired to which neighbour.

Global PE index = cube * pes_per_cube + pe. A link runs from a PE's port to the neighbour's
opposite port (E -> W, W -> E, N -> S, S -> N). N and S are named so the neighbour table has room
for a 2-D install later; no install wires them yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .config import HardwareConfig

__all__ = ["Port", "N_PORTS", "OPPOSITE", "SfrInstall", "parse_port"]


class Port(IntEnum):
    E = 0
    W = 1
    N = 2
    S = 3


N_PORTS = 4
#: OPPOSITE[p] is the port a packet sent on p arrives at.
OPPOSITE = (Port.W, Port.E, Port.S, Port.N)


def parse_port(d: "str | int | Port") -> Port:
    """'E' / 'e' / Port.E / 0 -> Port.E; anything else raises ValueError naming what is allowed."""
    if isinstance(d, Port):
        return d
    if isinstance(d, str) and d.upper() in Port.__members__:
        return Port[d.upper()]
    if isinstance(d, int) and not isinstance(d, bool) and 0 <= d < N_PORTS:
        return Port(d)
    raise ValueError(f"unknown link direction {d!r}: expected one of 'E', 'W', 'N', 'S'")


@dataclass(frozen=True)
class SfrInstall:
    """How the SFR link ports are wired.

    scope ``"pe"``: in every cube the PEs form a line, PE i east of PE i-1.
    scope ``"cube"``: PE 0 of cube c is linked E to PE 0 of cube c+1 (W to cube c-1); the other
    PEs of each cube have no links.
    ``ring=True`` closes the line (the last member's E port wires to the first member's W port);
    a ring of one member is a self-loop: its E port wires to its own W port.
    """

    scope: str = "pe"
    ring: bool = False

    def __post_init__(self) -> None:
        if self.scope not in ("pe", "cube"):
            raise ValueError(f"SFR install scope must be 'pe' or 'cube', got {self.scope!r}")
        if not isinstance(self.ring, (bool, np.bool_)):
            raise ValueError(f"SFR install ring must be True or False, got {self.ring!r}")

    def neighbours(self, hw: HardwareConfig) -> np.ndarray:
        """int32 table (n_pes, N_PORTS): global index of the neighbour on each port, or -1."""
        table = np.full((hw.n_pes, N_PORTS), -1, dtype=np.int32)
        if self.scope == "pe":
            lines = [[c * hw.pes_per_cube + p for p in range(hw.pes_per_cube)] for c in range(hw.n_cubes)]
        else:
            lines = [[c * hw.pes_per_cube for c in range(hw.n_cubes)]]
        for members in lines:
            n = len(members)
            for i, g in enumerate(members):
                # A ring wraps both ends; with one member both ends are that PE, so its E port
                # wires to its own W port (a self-loop).
                if i + 1 < n or self.ring:
                    table[g, Port.E] = members[(i + 1) % n]
                if i > 0 or self.ring:
                    table[g, Port.W] = members[(i - 1) % n]
        return table

    def describe(self) -> str:
        what = "the PEs of each cube" if self.scope == "pe" else "PE 0 of each cube"
        return f"scope {self.scope}: {what} in {'a closed ring' if self.ring else 'an open line'}"
