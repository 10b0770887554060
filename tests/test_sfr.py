"""SFR installs: who is whose neighbour. docs/hardware-model.md, "SFR installs": scope pe (the PEs
of each cube in a line, PE i E of PE i-1), scope cube (PE 0 of each cube in a line, the other PEs
unlinked), ring=True closes the line. Global PE index = cube * pes_per_cube + pe.
"""
import numpy as np
import pytest
from engine_helpers import Machine, fill

from kernbench.hw import N_PORTS, OPPOSITE, Port, SfrInstall, load_hw, parse_port


def _symmetric(table):
    """Every link a -> b on port p comes back b -> a on the opposite port."""
    for a in range(table.shape[0]):
        for p in range(N_PORTS):
            b = table[a, p]
            if b >= 0 and table[b, int(OPPOSITE[p])] != a:
                return False
    return True


def test_scope_pe_open_line():
    hw = load_hw()  # 4 cubes x 8 PEs
    t = SfrInstall("pe").neighbours(hw)
    assert t.shape == (32, N_PORTS) and t.dtype == np.int32
    for c in range(4):
        for p in range(8):
            g = c * 8 + p
            assert t[g, Port.E] == (g + 1 if p < 7 else -1)
            assert t[g, Port.W] == (g - 1 if p > 0 else -1)
    # lines never cross cubes; N and S are reserved and unwired
    assert t[7, Port.E] == -1 and t[8, Port.W] == -1
    assert (t[:, Port.N] == -1).all() and (t[:, Port.S] == -1).all()
    assert _symmetric(t)


def test_scope_pe_closed_ring():
    hw = load_hw()
    t = SfrInstall("pe", ring=True).neighbours(hw)
    for c in range(4):
        first, last = c * 8, c * 8 + 7
        assert t[last, Port.E] == first  # the last PE's E port wires to the first PE's W port
        assert t[first, Port.W] == last
        assert (t[c * 8:(c + 1) * 8, :2] >= 0).all()  # every PE of the ring has both ports
    assert _symmetric(t)


def test_scope_cube_open_line():
    hw = load_hw()
    t = SfrInstall("cube").neighbours(hw)
    heads = [c * 8 for c in range(4)]
    assert [t[g, Port.E] for g in heads] == [8, 16, 24, -1]
    assert [t[g, Port.W] for g in heads] == [-1, 0, 8, 16]
    others = [g for g in range(32) if g not in heads]
    assert (t[others] == -1).all()  # the other PEs of each cube have no links
    assert _symmetric(t)


def test_scope_cube_closed_ring():
    hw = load_hw("mesh8")
    t = SfrInstall("cube", ring=True).neighbours(hw)
    assert t[7 * 8, Port.E] == 0 and t[0, Port.W] == 7 * 8
    assert all(t[c * 8, Port.E] == ((c + 1) % 8) * 8 for c in range(8))
    assert _symmetric(t)


def test_small_rings():
    # two members: E and W both reach the other one (two distinct links)
    hw = load_hw().with_overrides(n_cubes=1, pes_per_cube=2)
    t = SfrInstall("pe", ring=True).neighbours(hw)
    assert t[:, :2].tolist() == [[1, 1], [0, 0]]
    assert _symmetric(t)
    # one member: a ring of one has no link to itself
    hw1 = load_hw().with_overrides(n_cubes=1, pes_per_cube=1)
    assert (SfrInstall("pe", ring=True).neighbours(hw1) == -1).all()
    assert (SfrInstall("cube", ring=True).neighbours(hw1) == -1).all()


def test_big_preset_table():
    hw = load_hw("mesh64")
    t = SfrInstall("cube", ring=True).neighbours(hw)
    assert t.shape == (512, N_PORTS)
    assert int((t >= 0).sum()) == 2 * 64  # E and W of each cube's PE 0
    assert _symmetric(t)


def test_unknown_scope():
    with pytest.raises(ValueError, match=r"SFR install scope must be 'pe' or 'cube', got 'chip'"):
        SfrInstall("chip")


def test_describe():
    assert SfrInstall("cube", ring=True).describe() == "scope cube: PE 0 of each cube in a closed ring"
    line = SfrInstall("pe").describe()
    assert line.startswith("scope pe: the PEs of each cube") and line.endswith("open line")


def test_ports_and_directions():
    assert [int(p) for p in Port] == [0, 1, 2, 3]
    assert [OPPOSITE[p] for p in Port] == [Port.W, Port.E, Port.S, Port.N]
    assert parse_port("e") is Port.E and parse_port("W") is Port.W and parse_port(2) is Port.N
    assert parse_port(Port.S) is Port.S
    for bad in ("X", 4, -1, True, None, 1.0):
        with pytest.raises(ValueError, match=r"unknown link direction .*: expected one of 'E', 'W', 'N', 'S'"):
            parse_port(bad)


def test_port_with_no_neighbour_is_an_error_naming_pe_and_direction():
    # the engine refuses a send on an unwired port of the installed SFR (see test_engine_errors
    # for every case); here: the same program is fine on a ring and refused on a line.
    for install, ok in ((SfrInstall("pe", ring=True), True), (SfrInstall("pe"), False)):
        m = Machine(load_hw().with_overrides(n_cubes=1, pes_per_cube=3), install)
        x = fill(m[2, 0], 256)
        m[2, 0].send("E", x, 256, line=40)
        m[0, 0].recv("W", 256)
        if ok:
            assert m.run().res.cycles == 9 + 8 + 50  # one packet: fill 9, ser 8, hop 50
        else:
            with pytest.raises(ValueError, match=r"PE \(2, 0\) command #1 \[send to E \(line 40\)\] sends on port E, "
                                                 r"which has no neighbour"):
                m.run()
