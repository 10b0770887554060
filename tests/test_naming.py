"""One name for each thing: a PE is "PE (p, c)" everywhere, ports come from one table, sends and
recvs are paired by one function, and a tl call's line is found by one caller-frame helper."""
import os
import sys

import numpy as np
import pytest
from engine_helpers import random_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernbench
from kernbench import KernelError
from kernbench._core import api
from kernbench.common.errors import pe_at, pe_label
from kernbench.common.pe_commands import N_PORTS, OPPOSITE, Unit
from kernbench.hw.sfr import PORT_INDEX, PORT_NAMES, PORTS_EXPECTED, Port, parse_port
from kernbench.language import semantic, sites

FILE = os.path.basename(__file__)


def test_pe_label_prints_plain_numbers():
    assert pe_label((np.int64(3), np.int32(1))) == "PE (3, 1)"
    assert pe_at((2, 0), "/some/dir/kern.py", 17) == "PE (2, 0) at kern.py:17"


def test_hardware_pe_coords_is_the_grid_order():
    hw = kernbench.Context("default", overrides={"n_cubes": 3, "pes_per_cube": 4}).hw
    # global index = cube * pes_per_cube + pe
    assert [hw.pe_coords(g) for g in (0, 3, 4, 11)] == [(0, 0), (3, 0), (0, 1), (3, 2)]
    assert all(type(x) is int for x in hw.pe_coords(np.int64(5)))
    # (reviews: 10**6 was PE (0, 250000), 3.7 was PE (3, 0))
    for g in (12, -1, 10**6, 3.7, True, "3", None, float("inf")):
        with pytest.raises(ValueError, match=r"global PE index must be an int in 0..11 \(3 cubes of 4 PEs\)"):
            hw.pe_coords(g)
    assert hw.peak_tflops(0) == 0.0 and hw.memory_gbps(np.int64(1)) * 3 == hw.memory_gbps()
    for bad in (-1, 13, 2.5, "1"):
        with pytest.raises(ValueError, match="n_pes must be an int in 0..12"):
            hw.peak_tflops(bad)
    with pytest.raises(ValueError, match="n_cubes must be an int in 0..3"):
        hw.memory_gbps(999)


def test_hardware_seconds_takes_a_number_of_cycles():
    hw = kernbench.load_hw("default")
    assert hw.seconds(hw.clock_ghz * 1e9) == 1.0 == hw.seconds(np.int64(hw.clock_ghz * 1e9))
    import fractions  # (any real number, a 0-d array's too: a review found them refused)
    assert hw.seconds(fractions.Fraction(3, 2)) == hw.seconds(1.5) and hw.seconds(np.array(3000)) == 2e-6
    # (reviews: "1" was read as 1 cycle, -1 gave negative seconds)
    for bad in ("1", b"1", True, None, [1], np.complex128(3), np.timedelta64(5, "s")):
        with pytest.raises(TypeError, match="seconds: cycles must be a number"):
            hw.seconds(bad)
    for bad in (10**400, -1, float("nan"), float("inf"), np.longdouble("1e4000")):
        with pytest.raises(ValueError, match="seconds: cycles must be a finite count, not negative"):
            hw.seconds(bad)


def test_the_same_pe_is_named_alike_by_tracing_the_engine_and_the_report():
    ctx = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 4})
    ctx.install_sfr("pe")
    x = ctx.replicate(np.ones(64, np.float32))
    lines = []

    def bad(x, *, tl):
        t = tl.load(x, shape=(64,))
        if tl.program_id(0) == 2 and tl.program_id(1) == 1:
            lines.append(sys._getframe().f_lineno + 1)
            t + tl.zeros((3,), "f32")  # shapes (64,) and (3,) do not broadcast

    with pytest.raises(KernelError) as ei:
        ctx.launch(bad, (4, 2), x, mode="timing")
    assert str(ei.value).startswith(f"PE (2, 1) at {FILE}:{lines[-1]}: ")
    assert ei.value.pe == (2, 1)

    def ring(x, *, tl):
        t = tl.load(x, shape=(64,))
        if tl.program_id(0) < 3:
            tl.send("E", t)
        if tl.program_id(0) > 0:
            tl.recv("W", shape=(64,), dtype="f32")

    r = ctx.launch(ring, (4, 2), x, mode="timing")
    g = 6  # PE (2, 1)
    assert r.pe_name(g) == pe_label(ctx.hw.pe_coords(g)) == "PE (2, 1)"
    # the engine's own checks name PEs the same way: a wiring that does not reach back
    nbr = ctx.neighbours().copy()
    nbr[g, int(Port.E)] = 4  # PE (2, 1)'s E port to PE (0, 1), whose W port is unwired
    with pytest.raises(ValueError, match=r"^SFR install is not symmetric: PE \(2, 1\) port E reaches "
                                         r"PE \(0, 1\), whose W port does not reach back$"):
        api.simulate(ctx.hw, nbr, r.program)


def test_one_port_table():
    assert PORT_NAMES == tuple(p.name for p in Port) == ("E", "W", "N", "S")
    assert {k: PORT_NAMES[v] for k, v in PORT_INDEX.items()} == {
        "E": "E", "W": "W", "N": "N", "S": "S", "e": "E", "w": "W", "n": "N", "s": "S"}
    assert [parse_port(d) for d in ("E", "w", 2, Port.S)] == [Port.E, Port.W, Port.N, Port.S]
    with pytest.raises(ValueError, match=f"expected one of {PORTS_EXPECTED}$"):
        parse_port("X")
    # a send's label names its port from the same table
    assert sites.label_of(("send", "k.py", 3, 1, (64,), "f32")) == "send to W (64,) f32"


def test_tl_refuses_a_bad_port_with_the_tables_list():
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    ctx.install_sfr("pe")
    x = ctx.replicate(np.ones(64, np.float32))

    def kernel(x, *, tl):
        tl.send("up", tl.load(x, shape=(64,)))

    with pytest.raises(KernelError, match=f"unknown link direction 'up': expected one of {PORTS_EXPECTED}"):
        ctx.launch(kernel, (2, 1), x, mode="timing")


def test_pair_links_pairs_the_kth_send_with_the_kth_recv_of_each_link():
    # a line of 3 PEs: 0 -E-> 1 -E-> 2 (and back on W)
    nbr = np.full((3, 4), -1, np.int64)
    nbr[0, Port.E], nbr[1, Port.W], nbr[1, Port.E], nbr[2, Port.W] = 1, 0, 2, 1
    # sends in command order: PE 1 W, PE 0 E, PE 0 E, PE 1 E
    s_pe, s_port = [1, 0, 0, 1], [Port.W, Port.E, Port.E, Port.E]
    # recvs: PE 2 W (drains 1 E), PE 1 W (drains 0 E) twice, PE 0 E (drains 1 W)
    r_pe, r_port = [2, 1, 1, 0], [Port.W, Port.W, Port.W, Port.E]
    lp = api.pair_links(nbr, s_pe, s_port, r_pe, r_port)
    E, W = int(Port.E), int(Port.W)
    assert lp.send_link.tolist() == [4 + W, E, E, 4 + E]
    assert lp.recv_link.tolist() == [4 + E, E, E, 4 + W]
    assert lp.count_mismatch() == -1
    # in link order, command order within a link: link 0E (sends 1, 2 / recvs 1, 2), 1E, 1W
    assert lp.send_order.tolist() == [1, 2, 3, 0]
    assert lp.recv_order.tolist() == [1, 2, 0, 3]
    short = api.pair_links(nbr, s_pe, s_port, r_pe[:2], r_port[:2])
    assert short.count_mismatch() == E  # link 0 E: two sends, one recv


def test_site_frame_is_the_kernels_frame_through_operators_and_helpers():
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.ones((8, 8), np.float32))
    seen = []

    def helper(tl, t):
        seen.append(sys._getframe().f_lineno + 1)
        return t * 2.0  # an operator: TensorHandle.__mul__ then tl.mul, both kernbench's frames

    def kernel(x, *, tl):
        t = tl.load(x, shape=(8, 8))
        seen.append(sys._getframe().f_lineno + 1)
        u = tl.exp(t)
        helper(tl, u)

    r = ctx.launch(kernel, (1, 1), x, mode="timing")
    srcs = [r.source(i) for i in range(r.program.n_commands)]
    assert srcs[1].endswith(f"{FILE}:{seen[0]}") and srcs[2].endswith(f"{FILE}:{seen[1]}")
    # called from outside the language, the caller itself
    here = semantic.site(), sys._getframe().f_lineno
    assert here[0] == (__file__, here[1])


@pytest.mark.parametrize("seed", range(5))
def test_link_order_is_numpys_stable_argsort(seed):
    rng = np.random.default_rng(seed)
    n_links = int(rng.integers(1, 70_000))  # both sides of the old 16-bit radix path
    links = rng.integers(0, n_links, int(rng.integers(0, 50_000)))
    assert np.array_equal(api.link_order(links, n_links), np.argsort(links, kind="stable"))


def test_link_order_refuses_a_link_outside_the_table():
    with pytest.raises(ValueError, match=r"links must be in 0\.\.7, got -1\.\.3"):
        api.link_order(np.array([3, -1]), 8)
    with pytest.raises(ValueError, match=r"links must be in 0\.\.7, got 0\.\.8"):
        api.link_order(np.array([0, 8]), 8)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 5), st.sampled_from([1, -1]),
                                             st.integers(0, 3), st.integers(0, 2)), max_size=40),
       st.booleans(), st.booleans())
def test_the_engines_pairing_checks_types_as_the_numpy_pairing(n_pes, msgs, pad, mirror):
    """_check.message_table given each command's site and each site's message type (the
    launch's one link check, api.prepare) pairs a program exactly when pair_links pairs every
    send with a recv of its type: equal counts on every link, the k-th send's type the k-th
    recv's. A ring of ``n_pes`` PEs (E/W) and random sends and recvs, each a (PE, direction,
    port, type) of the same byte count (so only counts and types decide); with ``mirror``,
    every send also gets its recv (so most programs agree but the random recvs')."""
    nbr = np.full((n_pes, 4), -1, np.int32)
    for g in range(n_pes):
        nbr[g, Port.E], nbr[g, Port.W] = (g + 1) % n_pes, (g - 1) % n_pes
    msgs = [(g % n_pes, d, (Port.E, Port.W)[p % 2], t) for g, d, p, t in msgs]
    if mirror:  # the sends only, each with the recv that drains it
        msgs = [m for m in msgs if m[1] == 1]
        msgs += [(int(nbr[g, p]), -1, OPPOSITE[p], t) for g, _, p, t in msgs]
    msgs.sort(key=lambda m: m[0])  # command order: PE by PE
    # a site per message kind (direction, port, type); other commands around them when pad
    kinds = sorted({(d, int(p), t) for _, d, p, t in msgs})
    site_type = np.array([-1] + [t for _, _, t in kinds], np.int64)
    sites, units, counts = [], [], np.zeros(n_pes, np.int64)
    send_idx, recv_idx = [], []
    for g, d, p, t in msgs:
        if pad:
            sites.append(0)
            units.append(int(Unit.VECTOR))
            counts[g] += 1
        (send_idx if d == 1 else recv_idx).append(len(sites))
        units.append((int(Unit.TX_E) if d == 1 else int(Unit.RX_E)) + int(p))
        sites.append(1 + kinds.index((d, int(p), t)))
        counts[g] += 1
    cmd_off = np.concatenate([[0], np.cumsum(counts)])
    table = api._check.message_table(
        np.array(units, np.uint8), np.array(send_idx, np.int64), np.array(recv_idx, np.int64),
        cmd_off, nbr, api._OPPOSITE, np.full(len(send_idx), 64, np.int64),
        np.full(len(recv_idx), 64, np.int64), np.array(sites, np.int32), site_type)
    fast = table is not None
    sends = [m for m in msgs if m[1] == 1]
    recvs = [m for m in msgs if m[1] == -1]
    lp = api.pair_links(nbr, [m[0] for m in sends], [int(m[2]) for m in sends],
                        [m[0] for m in recvs], [int(m[2]) for m in recvs])
    st_ = np.array([m[3] for m in sends], np.int64)[lp.send_order]
    rt_ = np.array([m[3] for m in recvs], np.int64)[lp.recv_order]
    agree = lp.count_mismatch() == -1 and np.array_equal(st_, rt_)
    assert fast == agree
    if mirror:
        assert fast


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_machine(), st.data())
def test_message_table_in_c_is_the_numpy_pairing(machine, data):
    """The engine's message table (_check.message_table, C) against the numpy pairing that names
    errors (api._messages_numpy, built on pair_links): the same rows on random valid programs;
    on a program with a recv dropped, a recv's byte count changed, or a link command moved to
    another port, C refuses (None) exactly when numpy raises."""
    hw, program = machine.hw, machine.program()
    nbr = np.ascontiguousarray(machine.neighbours(), np.int32)
    describe = api._default_describe(program)
    t = api._program_tables(hw, program, describe)

    def both(t):
        fast = api._check.message_table(t["units"], t["send_idx"], t["recv_idx"], program.cmd_offsets,
                                        nbr, api._OPPOSITE, t["send_bytes"], t["recv_bytes"])
        try:
            slow = api._messages_numpy(hw, nbr, program, t, describe)
        except ValueError:
            slow = None
        assert (fast is None) == (slow is None)
        if fast is not None:
            assert fast.dtype == api.MESSAGE_DTYPE and fast.tobytes() == slow.tobytes()
        return fast

    assert both(t) is not None  # the generator's programs are valid
    n = len(t["recv_idx"])
    if n == 0:
        return
    i = data.draw(st.integers(0, n - 1))
    how = data.draw(st.sampled_from(["drop", "bytes", "port"]))
    bad = dict(t)
    if how == "drop":
        keep = np.arange(n) != i
        bad["recv_idx"], bad["recv_bytes"] = t["recv_idx"][keep], t["recv_bytes"][keep]
    elif how == "bytes":
        bad["recv_bytes"] = t["recv_bytes"].copy()
        bad["recv_bytes"][i] += data.draw(st.sampled_from([-1, 1, 512]))
    else:
        units = bad["units"] = t["units"].copy()
        x = int(data.draw(st.sampled_from([t["send_idx"], t["recv_idx"]]))[i % len(t["send_idx"])])
        first = int(Unit.TX_E) if units[x] < int(Unit.RX_E) else int(Unit.RX_E)
        units[x] = first + data.draw(st.integers(0, N_PORTS - 1))
    both(bad)


def test_the_c_pairing_refuses_a_port_that_a_narrower_column_would_wrap():
    """The C pairing keeps a port in a byte: a port or unit far outside the table (one that would
    wrap to a wired port, 257 -> 1) is refused, as the numpy pairing refuses it, not paired."""
    n_pes = 2
    nbr = np.full((n_pes, 4), -1, np.int32)
    nbr[0, Port.E], nbr[1, Port.W] = 1, 0
    # PE 0 sends E, PE 1 receives from W: one command each; a unit byte past the TX/RX units
    cmd_off = np.array([0, 1, 2], np.int64)
    units = np.array([int(Unit.TX_E) + int(Port.E), int(Unit.RX_E) + int(Port.W)], np.uint8)
    idx_s, idx_r, nb = np.array([0], np.int64), np.array([1], np.int64), np.array([64], np.int64)
    ok = api._check.message_table(units, idx_s, idx_r, cmd_off, nbr, api._OPPOSITE, nb, nb)
    assert ok is not None and ok["link"].tolist() == [0 * N_PORTS + int(Port.E)]
    for k in (0, 1):
        bad = units.copy()
        bad[k] = 255
        assert api._check.message_table(bad, idx_s, idx_r, cmd_off, nbr, api._OPPOSITE, nb, nb) is None
    # typed: a command's site outside the type table is refused, not read
    one_type = np.array([7], np.int64)
    for site_of, paired in (([0, 0], True), ([0, 1], False), ([-1, 0], False)):
        got = api._check.message_table(units, idx_s, idx_r, cmd_off, nbr, api._OPPOSITE, nb, nb,
                                       np.array(site_of, np.int32), one_type)
        assert (got is not None) == paired
    with pytest.raises(ValueError, match="wrong size"):  # sites without types, or too few
        api._check.message_table(units, idx_s, idx_r, cmd_off, nbr, api._OPPOSITE, nb, nb,
                                 np.zeros(2, np.int32), None)
    with pytest.raises(ValueError, match="wrong size"):
        api._check.message_table(units, idx_s, idx_r, cmd_off, nbr, api._OPPOSITE, nb, nb,
                                 np.zeros(1, np.int32), one_type)


def test_message_dtype_is_the_c_structs():
    assert api.MESSAGE_DTYPE.names == ("link", "send", "recv", "nbytes")
    assert all(api.MESSAGE_DTYPE[f] == np.int64 for f in api.MESSAGE_DTYPE.names)
    assert api.MESSAGE_DTYPE.itemsize == 32
