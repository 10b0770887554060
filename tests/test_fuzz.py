"""Property-based fuzzing: random small tl kernels on random hardware (tests/fuzz/kernels.py),
checked against an independent reference (tests/fuzz/reference.py).

For every generated case:
  * the launch deadlocks (DeadlockError, in functional and timing mode, train and packet
    detail) exactly when the reference says so, with exactly the blocked units it predicts;
  * otherwise every kept handle has the dtype and shape the promotion rules give and the value
    the reference computes, and every output element is what the reference stores (elements
    whose value the docs leave open, f32 accumulation order, are skipped: see reference.py);
  * timing mode gives the functional cycles and counters; detail="packet" gives train's;
  * every unit's busy <= total cycles; per link, bytes sent == bytes received == the
    reference's message bytes, and links without messages are idle;
  * no two commands overlap on one unit and each unit runs in program order (record_events);
  * a rerun in a fresh Context is identical (cycles, counters, events, outputs).

Profiles: by default (CI, on the release and the debug build alike) a derandomized run of
FAST_EXAMPLES examples (deterministic: the same examples every run);
``KERNBENCH_FUZZ_EXAMPLES=100000`` selects the long profile, randomized
(``KERNBENCH_FUZZ_SEED`` fixes its seed).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings

from fuzz import reference as R
from fuzz.kernels import DTYPES, NIN, NOUT, KernelCase, build_case, kernels
from fuzz.reference import Op, RegMeta
from kernbench.common.errors import DeadlockError
from kernbench.common.pe_commands import N_PORTS, UNIT_NAMES, Port, Unit

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

FAST_EXAMPLES = 1500
_LONG = os.environ.get("KERNBENCH_FUZZ_EXAMPLES")
if _LONG:
    PROFILE = settings(max_examples=int(_LONG), deadline=None, derandomize=False, database=None,
                       suppress_health_check=list(HealthCheck), print_blob=True)
else:
    PROFILE = settings(max_examples=FAST_EXAMPLES,
                       deadline=None, derandomize=True, database=None,
                       suppress_health_check=list(HealthCheck), print_blob=True)


# ------------------------------------------------------------------------------ the checks
def _same(got, want, known):
    """got == want where known (NaN == NaN), elementwise; returns the bad flat indices."""
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype.kind in "biu" or want.dtype.kind in "biu":
        ok = got.astype(np.int64) == want.astype(np.int64)
    else:
        a, b = got.astype(np.float64), want.astype(np.float64)
        ok = (a == b) | (np.isnan(a) & np.isnan(b))
    bad = ~ok & np.broadcast_to(known, ok.shape)
    return np.flatnonzero(bad)


def _fail(case, msg):
    raise AssertionError(f"{msg}\n{case.describe()}")


def _check_values(case: KernelCase, outs: dict, handles: dict):
    exp = case.expected
    for (g, reg), h in handles.items():
        meta = case.regs[g][reg]
        if h.dtype != meta.dtype or tuple(h.shape) != tuple(meta.shape):
            _fail(case, f"PE {g} r{reg}: handle is {h.dtype}{tuple(h.shape)}, expected "
                        f"{meta.dtype}{tuple(meta.shape)}")
        if meta.view:
            continue
        want, known = exp.regs[(g, reg)]
        if h.data is None:
            _fail(case, f"PE {g} r{reg}: no data after a functional launch")
        if h.data.dtype != R.NP[meta.dtype] or h.data.shape != tuple(meta.shape):
            _fail(case, f"PE {g} r{reg}: data is {h.data.dtype}{h.data.shape}, expected "
                        f"{meta.dtype}{tuple(meta.shape)}")
        bad = _same(h.data, want, known)
        if len(bad):
            i = bad[0]
            _fail(case, f"PE {g} r{reg} ({meta.dtype}{list(meta.shape)}): value differs at flat "
                        f"{i}: kernbench {h.data.ravel()[i]!r}, reference {np.asarray(want).ravel()[i]!r}\n"
                        f"kernbench {h.data!r}\nreference {want!r}")
    for dt in DTYPES:
        want, known = exp.outputs[dt]
        bad = _same(outs[dt], want, known)
        if len(bad):
            g, i = divmod(int(bad[0]), NOUT)
            _fail(case, f"output {dt} PE {g} element {i}: kernbench {outs[dt][g, i]!r}, "
                        f"reference {want[g, i]!r}")


def _check_counters_equal(case, a, b, what):
    if a.cycles != b.cycles:
        _fail(case, f"{what}: cycles {a.cycles} != {b.cycles}")
    if not np.array_equal(a.unit_counters, b.unit_counters):
        _fail(case, f"{what}: unit counters differ")
    if not np.array_equal(a.link_counters, b.link_counters):
        _fail(case, f"{what}: link counters differ")


def _check_invariants(case: KernelCase, r):
    exp = case.expected
    uc, lc = r.unit_counters, r.link_counters.reshape(-1)
    if not (uc["busy"] <= r.cycles).all():
        _fail(case, f"a unit is busy longer than the launch ({r.cycles} cycles)")
    if not (uc["busy"] >= 0).all():
        _fail(case, "negative busy")
    # links: what the reference sends, and nothing else
    want = np.zeros(case.n_pes * N_PORTS, np.int64)
    for (g, port), nbytes in exp.link_bytes.items():
        want[g * N_PORTS + Port[port]] = nbytes
        dst = case.links[(g, port)]
        tx = uc["work"][g, Unit["TX_" + port]]
        rx = uc["work"][dst, Unit["RX_" + R.OPP[port]]]
        if not (tx == rx == nbytes):
            _fail(case, f"link PE {g} {port}: sent {tx}, received {rx}, reference {nbytes} bytes")
        if int(lc["messages"][g * N_PORTS + Port[port]]) != exp.link_messages[(g, port)]:
            _fail(case, f"link PE {g} {port}: {lc['messages'][g * N_PORTS + Port[port]]} messages, "
                        f"reference {exp.link_messages[(g, port)]}")
    if not np.array_equal(lc["bytes"].astype(np.int64), want):
        _fail(case, f"link bytes {lc['bytes'].tolist()} != reference {want.tolist()}")
    # events: one per command, units in program order, never two at once
    ev = r.events
    n_cmds = len(r.program.commands)
    if len(ev) != n_cmds or len(np.unique(ev["cmd"])) != n_cmds:
        _fail(case, f"{len(ev)} events for {n_cmds} commands")
    for pe in np.unique(ev["pe"]):
        for u in np.unique(ev["unit"][ev["pe"] == pe]):
            e = ev[(ev["pe"] == pe) & (ev["unit"] == u)]
            e = e[np.argsort(e["cmd"], kind="stable")]
            if (e["start"] > e["end"]).any() or (e["start"][1:] < e["end"][:-1]).any():
                _fail(case, f"PE {pe} {UNIT_NAMES[u]}: commands overlap or run out of order: "
                            f"{list(zip(e['cmd'].tolist(), e['start'].tolist(), e['end'].tolist()))}")
    if n_cmds and int(ev["end"].max()) != r.cycles:
        _fail(case, f"last event ends at {ev['end'].max()}, launch took {r.cycles}")


def check_case(case: KernelCase):
    """The fuzz property on one case (raises AssertionError naming the case on a failure)."""
    exp = case.expected
    if exp.deadlock:
        for mode, detail in (("functional", "train"), ("timing", "train"), ("timing", "packet")):
            try:
                case.launch(mode, detail)
            except DeadlockError as e:
                got = {(int(b["pe"]), UNIT_NAMES[int(b["unit"])]) for b in e.blocked}
                if got != exp.blocked:
                    _fail(case, f"{mode}/{detail}: blocked units {sorted(got)} != reference "
                                f"{sorted(exp.blocked)}\n{e}")
            else:
                _fail(case, f"{mode}/{detail}: no DeadlockError, the reference predicts one "
                            f"(blocked {sorted(exp.blocked)})")
        return
    try:
        _, r, outs = case.launch("functional", "train", record_events=True)
    except DeadlockError as e:
        _fail(case, f"unexpected DeadlockError: {e}")
    except Exception as e:  # a valid kernel must run: report the case with the error
        _fail(case, f"launch raised {type(e).__name__}: {e}")
    handles = dict(case.handles)
    _check_values(case, outs, handles)
    _check_invariants(case, r)
    _, t, touts = case.launch("timing", "train")
    _check_counters_equal(case, r, t, "timing vs functional")
    _, p, _ = case.launch("timing", "packet")
    _check_counters_equal(case, r, p, "packet vs train")
    _, again, outs2 = case.launch("functional", "train", record_events=True)
    _check_counters_equal(case, r, again, "rerun")
    if not np.array_equal(r.events, again.events):
        _fail(case, "rerun: events differ")
    for dt in DTYPES:
        if outs[dt].tobytes() != outs2[dt].tobytes():
            _fail(case, f"rerun: output {dt} differs")


# ----------------------------------------------------------------------------- the property
def _seeded(f):
    s = os.environ.get("KERNBENCH_FUZZ_SEED")
    return seed(int(s))(f) if (s and _LONG) else f


@_seeded
@PROFILE
@given(kernels())
def test_fuzz_kernels(case):
    check_case(case)


# ---------------------------------------------------------------- the checker is alive
def _inputs(n_pes, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    out = {}
    for dt in DTYPES:
        # distinct values, so min and max of any row differ
        v = np.stack([rng.permutation(NIN) - NIN // 2 for _ in range(n_pes)]).astype(np.float32)
        out[dt] = v.astype(np.int32) if dt == "int32" else (v / 4).astype(R.NP[dt])
    return out


HW1 = {"n_cubes": 1, "pes_per_cube": 1, "link.rx_queue_packets": 2, "link.packet_bytes": 8,
       "link.bytes_per_cycle": 4, "link.hop_latency_cycles": 5, "vector.lanes": 4,
       "vector.pipeline_latency": 2, "dma.burst_bytes": 16, "dma.channel_bytes_per_cycle": 8,
       "dma.latency_cycles": 20, "gemm.rows": 4, "gemm.cols": 4}


def min_cases():
    """Fixed cases whose stored results go through tl.min."""
    cases = []
    # 1) one PE: min of an f32 vector, stored
    regs = [RegMeta((8,), "f32"), RegMeta((1,), "f32")]
    ops = [Op("load", 0, dt="f32", e0=3, shape=(8,), stride=None, mask=None, other=None, after=None,
              give_dtype=True),
           Op("reduce", 1, op="min", x=("r", 0), axis=None),
           Op("store", None, x=("r", 1), dt="f32", e0=0, stride=None, mask=None)]
    cases.append(build_case(dict(HW1), None, (1, 1), {0: ops}, {0: regs}, _inputs(1)))
    # 2) two PEs in a ring: row minima of int32 tiles sent east, stored by the receiver
    hw = dict(HW1, pes_per_cube=2)
    r0 = [RegMeta((2, 4), "int32"), RegMeta((2, 1), "int32")]
    p0 = [Op("load", 0, dt="int32", e0=0, shape=(2, 4), stride=6, mask=None, other=None, after=None,
             give_dtype=True),
          Op("reduce", 1, op="min", x=("r", 0), axis=-1),
          Op("send", None, port="E", x=("r", 1)),
          Op("recv", 2, port="W", shape=(2, 1), dt="int32", after=None)]
    r0.append(RegMeta((2, 1), "int32"))
    p0.append(Op("store", None, x=("r", 2), dt="int32", e0=4, stride=None, mask=None))
    r1 = [RegMeta((2, 1), "int32"), RegMeta((3, 5), "f16"), RegMeta((1, 5), "f16")]
    p1 = [Op("recv", 0, port="W", shape=(2, 1), dt="int32", after=None),
          Op("send", None, port="E", x=("r", 0)),
          Op("load", 1, dt="f16", e0=10, shape=(3, 5), stride=None, mask=None, other=None, after=None,
             give_dtype=False),
          Op("reduce", 2, op="min", x=("r", 1), axis=0),
          Op("store", None, x=("r", 0), dt="f32", e0=0, stride=None, mask=None),
          Op("store", None, x=("r", 2), dt="f16", e0=0, stride=None, mask=None)]
    cases.append(build_case(hw, ("pe", True), (2, 1), {0: p0, 1: p1}, {0: r0, 1: r1}, _inputs(2, 1)))
    # 3) tl.min of a bf16 tile feeding a where and a dot
    regs = [RegMeta((4, 4), "bf16"), RegMeta((4, 1), "bf16"), RegMeta((4, 4), "bool"),
            RegMeta((4, 4), "bf16"), RegMeta((4, 4), "f32")]
    ops = [Op("load", 0, dt="bf16", e0=0, shape=(4, 4), stride=None, mask=None, other=None, after=None,
              give_dtype=True),
           Op("reduce", 1, op="min", x=("r", 0), axis=1),
           Op("bin", 2, op="eq", a=("r", 0), b=("r", 1), fn=False),
           Op("where", 3, c=("r", 2), a=("r", 0), b=("i", 0.0)),
           Op("dot", 4, a=("r", 3), b=("r", 0), acc=None, fn=True),
           Op("store", None, x=("r", 4), dt="f32", e0=0, stride=None, mask=None)]
    cases.append(build_case(dict(HW1), None, (1, 1), {0: ops}, {0: regs}, _inputs(1, 2)))
    return cases


def test_fixed_min_cases_pass():
    for case in min_cases():
        assert not case.expected.deadlock
        check_case(case)


def test_checker_catches_min_computed_as_max(monkeypatch):
    import kernbench.runtime.replay as replay

    orig = replay.reduce_value

    def broken(name, x, axis, out):
        return orig("max" if name == "min" else name, x, axis, out)

    monkeypatch.setattr(replay, "reduce_value", broken)
    for case in min_cases():
        with pytest.raises(AssertionError, match="value differs|output"):
            check_case(case)


def test_generator_is_deterministic_and_covers_deadlocks():
    """The fast profile's examples include deadlocking and communicating cases (the reference
    is exercised both ways), and a case prints as its program."""
    seen = {"deadlock": 0, "comm": 0, "ok": 0}

    @settings(max_examples=60, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(kernels())
    def collect(case):
        seen["deadlock" if case.expected.deadlock else "ok"] += 1
        if case.expected.link_bytes:
            seen["comm"] += 1
        assert "PE (" in repr(case) or not case.programs

    collect()
    assert seen["deadlock"] and seen["comm"] and seen["ok"], seen


# --------------------------------------------------------------- kernbench bugs found here
def test_float_mod_by_python_int_zero_is_fmod():
    # bug #1: float % Python-int 0 was refused as an integer remainder by zero (docs: % of floats
    # is C's fmod, NaN for a zero divisor, as x % 0.0 gives)
    import kernbench

    def k(x_ptr, o_ptr, *, tl):
        x = tl.load(x_ptr, shape=(4,), dtype="f32")
        tl.store(o_ptr, x % 0)

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.array([1.5, -2.0, 3.0, 0.0], np.float32))
    o = ctx.empty((4,), "f32")
    ctx.launch(k, (1, 1), x, o)
    assert np.isnan(ctx.read(o, (0, 0))).all()  # fmod(x, 0) is NaN, as x % 0.0 gives
