"""SFR installs: which PE port is wired to which neighbour.

Global PE index = cube * pes_per_cube + pe. A link runs from a PE's port to the neighbour's
opposite port (E -> W, W -> E, N -> S, S -> N). Scopes "pe" and "cube" wire E and W only; scope
"two_level" also wires N and S, between the PE 0s of consecutive cubes.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ..common.errors import short_repr
from .config import HardwareConfig

__all__ = ["Port", "N_PORTS", "PORT_NAMES", "PORT_INDEX", "PORTS_EXPECTED", "OPPOSITE", "SCOPES",
           "SfrInstall", "parse_port"]

#: the install scopes SfrInstall accepts
SCOPES = ("pe", "cube", "two_level")


class Port(IntEnum):
    E = 0
    W = 1
    N = 2
    S = 3


N_PORTS = len(Port)
#: the port names by index, the one table every message, label and trace reads: ("E", "W", "N", "S")
PORT_NAMES = tuple(p.name for p in Port)
#: a port's index by name, upper or lower case ("E" and "e" -> 0)
PORT_INDEX = {**{n: i for i, n in enumerate(PORT_NAMES)}, **{n.lower(): i for i, n in enumerate(PORT_NAMES)}}
#: what a link direction may be, for error messages: "'E', 'W', 'N', 'S'"
PORTS_EXPECTED = ", ".join(repr(n) for n in PORT_NAMES)
#: OPPOSITE[p] is the port a packet sent on p arrives at.
OPPOSITE = (Port.W, Port.E, Port.S, Port.N)


def parse_port(d: "str | int | Port") -> Port:
    """'E' / 'e' / Port.E / 0 -> Port.E (a number 0-3: a Python or numpy integer, not a bool);
    anything else raises ValueError naming what is allowed."""
    if isinstance(d, Port):
        return d
    if isinstance(d, str) and d in PORT_INDEX:
        return Port(PORT_INDEX[d])
    if isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d < N_PORTS:
        return Port(int(d))
    raise ValueError(f"unknown link direction {short_repr(d)}: expected one of {PORTS_EXPECTED}")


@dataclass(frozen=True)
class SfrInstall:
    """How the SFR link ports are wired.

    scope ``"pe"``: in every cube the PEs form a line, PE i east of PE i-1.
    scope ``"cube"``: PE 0 of cube c is linked E to PE 0 of cube c+1 (W to cube c-1); the other
    PEs of each cube have no links.
    scope ``"two_level"``: both levels at once. In every cube the PEs form an open line on E/W
    (as scope ``"pe"``), and PE 0 of every cube is a member of a line across cubes on N/S: PE 0 of
    cube c is linked S to PE 0 of cube c+1 (its S port to that PE's N port) and N to cube c-1.
    ``ring=True`` closes the line (the last member's E port wires to the first member's W port);
    a ring of one member is a self-loop: its E port wires to its own W port. Under
    ``"two_level"`` ``ring`` applies to the N/S line of cubes only (the last cube's PE 0's S port
    wires to cube 0's PE 0's N port; one cube: a self-loop on N/S); the E/W lines inside the cubes
    stay open.
    """

    scope: str = "pe"
    ring: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.scope, str) or self.scope not in SCOPES:
            hint = ""
            if isinstance(self.scope, str) and self.scope.lower().replace("-", "_") in ("two_level", "twolevel",
                                                                                       "2level", "2_level"):
                hint = " (did you mean 'two_level'?)"
            raise ValueError(f"SFR install scope must be 'pe' (the PEs of each cube on E/W), 'cube' (PE 0 "
                             f"of every cube on E/W) or 'two_level' (both: PE 0s on N/S), got "
                             f"{short_repr(self.scope)}{hint}")
        if not isinstance(self.ring, (bool, np.bool_)):
            raise ValueError(f"SFR install ring must be True or False, got {short_repr(self.ring)}")

    def neighbours(self, hw: HardwareConfig) -> np.ndarray:
        """int32 table (n_pes, N_PORTS): global index of the neighbour on each port, or -1."""
        table = np.full((hw.n_pes, N_PORTS), -1, dtype=np.int32)
        pe_lines = [[c * hw.pes_per_cube + p for p in range(hw.pes_per_cube)] for c in range(hw.n_cubes)]
        cube_line = [[c * hw.pes_per_cube for c in range(hw.n_cubes)]]
        if self.scope == "pe":
            _wire(table, pe_lines, Port.E, Port.W, self.ring)
        elif self.scope == "cube":
            _wire(table, cube_line, Port.E, Port.W, self.ring)
        else:  # two_level: open E/W lines in the cubes, the (optionally closed) N/S line of PE 0s
            _wire(table, pe_lines, Port.E, Port.W, False)
            _wire(table, cube_line, Port.S, Port.N, self.ring)
        return table

    def unwired_hint(self, port: int, pe: int) -> str:
        """What would wire port ``port`` of the PE ``pe`` of its cube, which this install leaves
        without a neighbour: the text a send or recv on it is refused with."""
        if port in (Port.N, Port.S):
            if self.scope != "two_level":
                return ("N and S are wired only by scope 'two_level', between the PE 0s of the "
                        "cubes (ring=True wires the line's ends too); scopes 'pe' and 'cube' wire E "
                        "and W")
            return ("two_level wires N and S of PE 0 of each cube only" if pe != 0 else
                    "the N/S line of cubes is open at its ends: ring=True closes it")
        if self.scope == "cube" and pe != 0:
            return ("scope 'cube' wires PE 0 of each cube only; scope 'pe' wires the PEs of a cube "
                    "on E/W (ring=True wires the line's ends too)")
        if self.scope == "two_level":
            return ("two_level's E/W lines inside the cubes stay open (its ring=True closes the N/S "
                    "line of cubes); scope 'pe' with ring=True closes them")
        across = "; scope 'cube' links PE 0 of each cube across cubes" if self.scope == "pe" else ""
        return f"the line is open at its ends: ring=True closes it into a ring{across}"

    def describe(self) -> str:
        shape = 'a closed ring' if self.ring else 'an open line'
        if self.scope == "two_level":
            return (f"scope two_level: the PEs of each cube in an open line (E/W), PE 0 of each cube "
                    f"in {shape} (N/S)")
        what = "the PEs of each cube" if self.scope == "pe" else "PE 0 of each cube"
        return f"scope {self.scope}: {what} in {shape}"


def _wire(table: np.ndarray, lines, fwd: Port, back: Port, ring: bool) -> None:
    """Wire each line of global PE indices: member i's ``fwd`` port to member i+1's ``back`` port
    (and back); ``ring`` closes each line."""
    for members in lines:
        n = len(members)
        for i, g in enumerate(members):
            # A ring wraps both ends; with one member both ends are that PE, so its fwd port
            # wires to its own back port (a self-loop).
            if i + 1 < n or ring:
                table[g, fwd] = members[(i + 1) % n]
            if i > 0 or ring:
                table[g, back] = members[(i - 1) % n]
