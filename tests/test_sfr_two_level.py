"""SFR install scope "two_level" (docs/hardware-model.md, "SFR installs"): the PEs of each cube in an
open line on E/W (as scope "pe"), and PE 0 of every cube in a line on N/S: PE 0 of cube c's S port
wires to PE 0 of cube c+1's N port. ``ring=True`` closes the N/S line only. Global PE index =
cube * pes_per_cube + pe; table columns are the ports E, W, N, S.
"""
import numpy as np
import pytest

import kernbench
from test_sfr import _symmetric

from kernbench.hw import N_PORTS, Port, SfrInstall, load_hw

_ = -1  # no neighbour




# -- neighbour tables, by hand ---------------------------------------------------------------------

def test_two_cubes_of_three_pes_by_hand():
    hw = load_hw().with_overrides(n_cubes=2, pes_per_cube=3)
    #            E  W  N  S
    line = [[1, _, _, 3],   # (0, 0): E to PE 1, S to PE 0 of cube 1 (global 3)
            [2, 0, _, _],   # (1, 0)
            [_, 1, _, _],   # (2, 0): end of cube 0's E/W line
            [4, _, 0, _],   # (0, 1): N to PE 0 of cube 0
            [5, 3, _, _],   # (1, 1)
            [_, 4, _, _]]   # (2, 1)
    t = SfrInstall("two_level").neighbours(hw)
    assert t.dtype == np.int32 and t.tolist() == line
    # ring: the line of two cubes closes, so PE 0 of each cube reaches the other on N and on S
    # (two distinct links, as a ring of two PEs on E/W); E/W stay open lines
    ring = [row[:] for row in line]
    ring[0][Port.N] = 3
    ring[3][Port.S] = 0
    assert SfrInstall("two_level", ring=True).neighbours(hw).tolist() == ring
    assert _symmetric(t) and _symmetric(np.array(ring))


def test_three_cubes_of_two_pes_by_hand():
    hw = load_hw().with_overrides(n_cubes=3, pes_per_cube=2)
    #            E  W  N  S
    line = [[1, _, _, 2],   # (0, 0): S to PE 0 of cube 1 (global 2)
            [_, 0, _, _],   # (1, 0)
            [3, _, 0, 4],   # (0, 1): N to cube 0, S to cube 2
            [_, 2, _, _],   # (1, 1)
            [5, _, 2, _],   # (0, 2): the south end
            [_, 4, _, _]]   # (1, 2)
    assert SfrInstall("two_level").neighbours(hw).tolist() == line
    ring = [row[:] for row in line]
    ring[0][Port.N] = 4  # cube 0's N port to cube 2's S port
    ring[4][Port.S] = 0
    t = SfrInstall("two_level", ring=True).neighbours(hw)
    assert t.tolist() == ring and _symmetric(t)


def test_one_cube_ring_is_an_ns_self_loop_and_open_line_has_no_ns_link():
    hw = load_hw().with_overrides(n_cubes=1, pes_per_cube=2)
    assert SfrInstall("two_level").neighbours(hw).tolist() == [[1, _, _, _], [_, 0, _, _]]
    assert SfrInstall("two_level", ring=True).neighbours(hw).tolist() == [[1, _, 0, 0], [_, 0, _, _]]


def test_presets_two_level_counts():
    for preset in ("default", "mesh8", "mesh64"):
        hw = load_hw(preset)
        C, P = hw.n_cubes, hw.pes_per_cube
        t = SfrInstall("two_level").neighbours(hw)
        assert _symmetric(t)
        assert int((t[:, :2] >= 0).sum()) == C * 2 * (P - 1)  # every cube's open E/W line
        assert int((t[:, 2:] >= 0).sum()) == 2 * (C - 1)      # the open N/S line of PE 0s
        heads = np.arange(C) * P
        assert (t[np.setdiff1d(np.arange(C * P), heads), 2:] == -1).all()  # only PE 0s on N/S
        # the E/W columns are exactly scope "pe"'s open lines
        assert np.array_equal(t[:, :2], SfrInstall("pe").neighbours(hw)[:, :2])


# -- the old installs keep their tables ------------------------------------------------------------

def _old_table(scope, ring, hw):
    """The tables of scopes pe and cube as the install computed them before two_level existed."""
    table = np.full((hw.n_pes, N_PORTS), -1, dtype=np.int32)
    if scope == "pe":
        lines = [[c * hw.pes_per_cube + p for p in range(hw.pes_per_cube)] for c in range(hw.n_cubes)]
    else:
        lines = [[c * hw.pes_per_cube for c in range(hw.n_cubes)]]
    for members in lines:
        n = len(members)
        for i, g in enumerate(members):
            if i + 1 < n or ring:
                table[g, Port.E] = members[(i + 1) % n]
            if i > 0 or ring:
                table[g, Port.W] = members[(i - 1) % n]
    return table


@pytest.mark.parametrize("scope", ["pe", "cube"])
@pytest.mark.parametrize("ring", [False, True])
def test_old_installs_unchanged(scope, ring):
    hws = [load_hw(p) for p in ("default", "mesh8", "mesh64")]
    hws += [load_hw().with_overrides(n_cubes=c, pes_per_cube=p) for c in (1, 2, 3) for p in (1, 2, 3)]
    for hw in hws:
        t = SfrInstall(scope, ring).neighbours(hw)
        assert np.array_equal(t, _old_table(scope, ring, hw))
        assert (t[:, Port.N] == -1).all() and (t[:, Port.S] == -1).all()


# -- validation and description --------------------------------------------------------------------

def test_bad_scope_and_ring_are_refused_with_clear_errors():
    with pytest.raises(ValueError, match=r"SFR install scope must be 'pe' \(the PEs of each cube on E/W\), 'cube' \(PE 0 of every cube on E/W\) or 'two_level' \(both: PE 0s on N/S\), got 'chip'"):
        SfrInstall("chip")
    with pytest.raises(ValueError, match=r"got 'two-level'.*did you mean 'two_level'\?"):
        SfrInstall("two-level")
    with pytest.raises(ValueError, match=r"scope must be .* got None"):
        SfrInstall(None)
    with pytest.raises(ValueError, match=r"SFR install ring must be True or False, got 1"):
        SfrInstall("two_level", ring=1)
    ctx = kernbench.Context("default")
    with pytest.raises(ValueError, match=r"did you mean 'two_level'"):
        ctx.install_sfr("TwoLevel")


def test_describe_and_context():
    assert SfrInstall("two_level").describe() == ("scope two_level: the PEs of each cube in an open line "
                                                  "(E/W), PE 0 of each cube in an open line (N/S)")
    assert SfrInstall("two_level", ring=True).describe().endswith("PE 0 of each cube in a closed ring (N/S)")
    ctx = kernbench.Context("mesh8")
    inst = ctx.install_sfr(scope="two_level", ring=True)
    assert inst == SfrInstall("two_level", True)
    assert np.array_equal(ctx.neighbours(), inst.neighbours(ctx.hw))


# -- N/S sends end to end ---------------------------------------------------------------------------

N_MSG = 1024  #: f16 elements: one message of S = 2048 bytes


def _north_to_south(x_ptr, o_ptr, *, tl):
    """PE 0 of cube 0 sends one message S; PE 0 of cube 1 receives it from N and stores it."""
    if tl.program_id(0) != 0:
        return
    if tl.program_id(1) == 0:
        tl.send("S", tl.load(x_ptr, shape=(N_MSG,), dtype="f16"))
    else:
        tl.store(o_ptr, tl.recv("N", (N_MSG,), "f16"))


def _south_to_north(x_ptr, o_ptr, *, tl):
    if tl.program_id(0) != 0:
        return
    if tl.program_id(1) == 1:
        tl.send("N", tl.load(x_ptr, shape=(N_MSG,), dtype="f16"))
    else:
        tl.store(o_ptr, tl.recv("S", (N_MSG,), "f16"))


@pytest.mark.parametrize("detail", ["train", "packet"])
@pytest.mark.parametrize("kernel, src, dst, port",
                         [(_north_to_south, 0, 1, Port.S), (_south_to_north, 1, 0, Port.N)],
                         ids=["N->S", "S->N"])
def test_one_message_across_cubes_cycles(kernel, src, dst, port, detail):
    ctx = kernbench.Context("default", overrides={"n_cubes": 2})
    ctx.install_sfr("two_level")
    x = np.random.default_rng(3).standard_normal(N_MSG).astype(np.float16)
    xa = ctx.put(x, pe=(0, src), name="x")
    oa = ctx.empty((N_MSG,), "f16", name="o")
    r = ctx.launch(kernel, (8, 2), xa, oa, detail=detail)
    assert ctx.read(oa, (0, dst)).tobytes() == x.tobytes()  # bit for bit
    # Cycles, docs/hardware-model.md (defaults: B = 512, W = 256, lambda = 150; P = 256, b = 32,
    # h = 50, Q = 32), exactly as for an E/W link:
    #   load  2048 B = 4 bursts of 512 B, ceil(512/256) = 2 cycles each: 4*2 + 150 = 158
    #   send  T = 158 (it waits for the load's tensor); 2048/256 = 8 packets, ser = 256/32 = 8,
    #         8 < Q credits, so e_i = 158 + 8 (i + 1) and the send ends at e_last = 222
    #   recv  posted at r = 0 (its RX unit is idle, no operand): d_last = e_last + h = 272
    #         (uncontended: ceil(S/P) * ser + h = 64 + 50 = 114 cycles after the send starts)
    #   store waits for the received tensor: 272 + 4*2 + 150 = 430
    assert r.cycles == 430
    ends = r.engine.cmd_end.tolist()
    assert sorted(ends) == [158, 222, 272, 430]
    # the link is the sender's port; only that port carried bytes
    lc = r.link_counters
    g = src * 8  # PE 0 of the sending cube
    assert {k: int(lc[g * N_PORTS + port][k]) for k in lc.dtype.names} == {
        "bytes": 2048, "packets": 8, "busy": 64, "messages": 1}
    assert int(lc["bytes"].sum()) == 2048
    assert ctx.launch(kernel, (8, 2), xa, oa, mode="timing", detail=detail).cycles == 430


def test_ns_on_a_pe_other_than_0_or_past_the_end_is_refused():
    ctx = kernbench.Context("default", overrides={"n_cubes": 2})
    ctx.install_sfr("two_level")
    x = ctx.replicate(np.zeros(64, np.float32))

    def k(x_ptr, *, tl):
        if tl.program_id(0) == 1 and tl.program_id(1) == 0:
            tl.send("S", tl.load(x_ptr, shape=(64,), dtype="f32"))

    with pytest.raises(Exception, match=r"PE \(1, 0\).*port S, which has no neighbour"):
        ctx.launch(k, (2, 2), x)

    def k2(x_ptr, *, tl):  # cube 1 is the south end of an open line
        if tl.program_id(0) == 0 and tl.program_id(1) == 1:
            tl.send("S", tl.load(x_ptr, shape=(64,), dtype="f32"))

    with pytest.raises(Exception, match=r"PE \(0, 1\).*port S, which has no neighbour"):
        ctx.launch(k2, (1, 2), x)
    ctx.install_sfr("two_level", ring=True)  # closed: cube 1's S reaches cube 0's N

    def k3(x_ptr, *, tl):
        if tl.program_id(0) != 0:
            return
        if tl.program_id(1) == 1:
            tl.send("S", tl.load(x_ptr, shape=(64,), dtype="f32"))
        else:
            tl.recv("N", (64,), "f32")

    assert ctx.launch(k3, (1, 2), x).cycles > 0
