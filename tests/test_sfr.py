"""SFR installs: who is whose neighbour. docs/hardware-model.md, "SFR installs": scope pe (the PEs
of each cube in a line, PE i E of PE i-1), scope cube (PE 0 of each cube in a line, the other PEs
unlinked), ring=True closes the line. Global PE index = cube * pes_per_cube + pe.
"""
import numpy as np
import pytest
from engine_helpers import Machine, fill

import kernbench
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
    # one member: a ring of one is a self-loop (test_one_member_ring_is_a_self_loop below)
    hw1 = load_hw().with_overrides(n_cubes=1, pes_per_cube=1)
    assert SfrInstall("pe", ring=True).neighbours(hw1)[:, :2].tolist() == [[0, 0]]
    assert SfrInstall("cube", ring=True).neighbours(hw1)[:, :2].tolist() == [[0, 0]]


def test_big_preset_table():
    hw = load_hw("mesh64")
    t = SfrInstall("cube", ring=True).neighbours(hw)
    assert t.shape == (512, N_PORTS)
    assert int((t >= 0).sum()) == 2 * 64  # E and W of each cube's PE 0
    assert _symmetric(t)


def test_unknown_scope():
    with pytest.raises(ValueError, match=r"SFR install scope must be 'pe' .* or 'two_level' .*, got 'chip'"):
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
    # a number computed with numpy is a number (a review: np.int64(0) was refused)
    assert parse_port(np.int64(0)) is Port.E and parse_port(np.uint8(3)) is Port.S
    assert type(parse_port(np.int32(1))) is Port
    for bad in ("X", 4, -1, True, None, 1.0, np.int64(4), np.bool_(True), np.float64(1.0)):
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


# -- a ring of one PE: a self-loop ----------------------------------------------------------------
# docs/hardware-model.md, "SFR installs": ring=True wires the last member's E port to the first
# member's W port. With one member the last and the first are the same PE, so its E port wires to
# its own W port (and W to its own E): a message sent E comes back on W.

ONE_PE = {"n_cubes": 1, "pes_per_cube": 1}
#: (scope, overrides) of the three one-member rings: scope pe with one PE per cube, scope cube
#: with one cube of one PE, and scope cube with one cube of 8 PEs (only PE 0 is a ring member).
ONE_MEMBER_RINGS = [("pe", ONE_PE), ("cube", ONE_PE), ("cube", {"n_cubes": 1})]
ONE_MEMBER_IDS = ["pe-1x1", "cube-1x1", "cube-1x8"]


def test_one_member_ring_is_a_self_loop():
    for scope, ov in ONE_MEMBER_RINGS:
        ctx = kernbench.Context("default", overrides=ov)
        ctx.install_sfr(scope, ring=True)
        t = ctx.neighbours()
        assert t[0, Port.E] == 0 and t[0, Port.W] == 0, f"{scope} {ov}: expected E and W of PE 0 to be PE 0"
        assert t[0, Port.N] == -1 and t[0, Port.S] == -1
        assert (t[1:] == -1).all()  # scope cube: PEs 1..7 of the cube have no links
        assert _symmetric(t)
        # an open line of one member has no links at all
        ctx.install_sfr(scope, ring=False)
        assert (ctx.neighbours() == -1).all()
    # scope pe on several one-PE cubes: every cube's PE is its own ring, never linked to another
    t = SfrInstall("pe", ring=True).neighbours(load_hw().with_overrides(pes_per_cube=1))
    assert t[:, :2].tolist() == [[g, g] for g in range(4)]


N_LOOP = 1024  #: f16 elements: S = 2048 bytes


def _loopback(x_ptr, o_ptr, *, tl):
    t = tl.load(x_ptr, shape=(N_LOOP,), dtype="f16")
    tl.send("E", t)
    tl.store(o_ptr, tl.recv("W", (N_LOOP,), "f16"))


@pytest.mark.parametrize("detail", ["train", "packet"])
@pytest.mark.parametrize("scope, ov", ONE_MEMBER_RINGS, ids=ONE_MEMBER_IDS)
def test_self_loop_round_trip_and_cycles(scope, ov, detail):
    ctx = kernbench.Context("default", overrides=ov)
    ctx.install_sfr(scope, ring=True)
    x = np.random.default_rng(5).standard_normal(N_LOOP).astype(np.float16)
    xa = ctx.put(x, pe=(0, 0), name="x")
    oa = ctx.empty((N_LOOP,), "f16", name="o")
    r = ctx.launch(_loopback, (1, 1), xa, oa, detail=detail)
    # the value comes back bit for bit
    assert ctx.read(oa, (0, 0)).tobytes() == x.tobytes()
    # Cycles, docs/hardware-model.md (defaults: B=512, W=256, lambda=150; P=256, b=32, h=50, Q=32):
    #   load  2048 B = 4 bursts of 512 B, ceil(512/256) = 2 cycles each:  4*2 + 150 = 158
    #   send  T = 158 (its operand is the load's tensor); ceil(2048/256) = 8 packets of 256 B,
    #         ser = ceil(256/32) = 8; 8 packets < Q = 32 credits, so no credit waits:
    #         e_i = 158 + 8*(i+1), the send ends at e_last = 158 + 64 = 222
    #   recv  posted at r = 0 (RX_W is idle and the recv has no operand);
    #         d_last = max(a_last, r) = e_last + h = 222 + 50 = 272
    #         (the doc's uncontended figure: ceil(S/P)*ser + h = 64 + 50 = 114 after 158)
    #   store waits for the recv's tensor: 272 + (4*2 + 150) = 430
    assert r.engine.cmd_end.tolist() == [158, 222, 272, 430]
    assert r.cycles == 430
    # the link is PE 0's E port; nothing is sent on W (its RX side is the link's far end)
    lc = r.link_counters
    assert {k: int(lc[0 * 4 + Port.E][k]) for k in lc.dtype.names} == {
        "bytes": 2048, "packets": 8, "busy": 8 * 8, "messages": 1}
    assert int(lc[0 * 4 + Port.W]["bytes"]) == 0
    # timing mode: the same command stream, the same cycles
    assert ctx.launch(_loopback, (1, 1), xa, oa, mode="timing", detail=detail).cycles == 430


def test_self_loop_keeps_message_order():
    """The k-th send on E is received by the k-th recv on W, also when both are the same PE's."""
    ctx = kernbench.Context("default", overrides=ONE_PE)
    ctx.install_sfr("pe", ring=True)
    x = ctx.put(np.arange(3 * 64, dtype=np.float32).reshape(3, 64), pe=(0, 0), name="x")
    o = ctx.empty((3, 64), "f32", name="o")

    def k(x_ptr, o_ptr, *, tl):
        for i in range(3):  # three messages of 64 f32 = 256 B each, in flight together
            tl.send("E", tl.load(x_ptr + 256 * i, shape=(64,), dtype="f32"))
        for i in range(3):
            tl.store(o_ptr + 256 * i, tl.recv("W", (64,), "f32"))

    ctx.launch(k, (1, 1), x, o)
    # row i of o is the i-th message: row i of x (0..63, 64..127, 128..191)
    assert (ctx.read(o, (0, 0)) == np.arange(3 * 64).reshape(3, 64)).all()


def test_an_sfr_installed_while_the_kernel_traces_is_an_error():
    """The trace checks its links against the wiring installed at the launch; a kernel that
    installs another while it is traced gets a clear ValueError, not the link pairing's raw one
    against the new wiring (a review's case)."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 2})
    ctx.install_sfr("pe", ring=True)

    def k(*, tl):
        tl.send("E", tl.zeros((4,), "f32"))
        tl.recv("W", (4,), "f32")
        if tl.program_id(0) == 1:
            ctx.install_sfr("pe", ring=False)

    with pytest.raises(ValueError, match="the SFR install changed while the kernel was traced"):
        ctx.launch(k, (2, 1))


def test_the_same_sfr_installed_again_while_the_kernel_traces_changes_nothing():
    """The check compares wirings, not objects: installing the same wiring again during a launch
    (another thread's setup, in a review's case; here the kernel itself) leaves the launch as it
    was, and a changed wiring's error names both."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 2})
    ctx.install_sfr("pe", ring=True)

    def k(again, *, tl):
        tl.send("E", tl.zeros((4,), "f32"))
        tl.recv("W", (4,), "f32")
        if again and tl.program_id(0) == 1:
            ctx.install_sfr(*again)

    want = ctx.launch(k, (2, 1), None)
    got = ctx.launch(k, (2, 1), ("pe", True))
    assert got.cycles == want.cycles and (got.unit_counters == want.unit_counters).all()
    assert (got.link_counters == want.link_counters).all()
    with pytest.raises(ValueError, match=r"from .*closed ring.* to .*open line.*install_sfr called from"):
        ctx.launch(k, (2, 1), ("pe", False))
