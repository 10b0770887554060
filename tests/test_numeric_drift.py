"""Numeric drift: the f64 shadow of a functional launch points at the line that rounds a scaled Q
to f16 before the score dot (the old prefill bug), passes the fixed kernel, follows values across
links and device memory, and leaves the launch's own numbers alone."""
import inspect
import math

import numpy as np
import pytest

import kernbench
from kernbench.common.pe_commands import Opcode
from kernbench.runtime.drift import DEFAULT_TOLERANCE, measure

F16, F32 = "f16", "f32"
R, N, D = 64, 128, 128  # d = 128: the scale 1/sqrt(d) is not a power of two, so rounding it shows


def attention_q16(q_ptr, k_ptr, v_ptr, o_ptr, *, tl):
    """One query block against one K/V block, with Q * scale rounded to f16 before the dot."""
    scale = 1.0 / math.sqrt(D)
    q = tl.load(q_ptr, shape=(R, D), dtype=F16)
    k = tl.load(k_ptr, shape=(N, D), dtype=F16)
    v = tl.load(v_ptr, shape=(N, D), dtype=F16)
    qs = tl.cast(tl.cast(q, F32) * scale, F16)  # MARK: the bug, Q * scale in f16
    s = tl.dot(qs, tl.trans(k))
    m = tl.max(s, axis=-1)
    p = tl.exp(s - m)  # MARK: exp
    l = tl.sum(p, axis=-1)
    o = tl.dot(tl.cast(p, F16), v)  # MARK: p16
    tl.store(o_ptr, tl.cast(o / l, F16))


def attention_f32(q_ptr, k_ptr, v_ptr, o_ptr, *, tl):
    """The same with Q * scale kept in f32 (what kernbench.kernels._common._load_q does)."""
    scale = 1.0 / math.sqrt(D)
    q = tl.load(q_ptr, shape=(R, D), dtype=F16)
    k = tl.load(k_ptr, shape=(N, D), dtype=F16)
    v = tl.load(v_ptr, shape=(N, D), dtype=F16)
    qs = tl.cast(q, F32) * scale
    s = tl.dot(qs, tl.trans(k))
    m = tl.max(s, axis=-1)
    p = tl.exp(s - m)
    l = tl.sum(p, axis=-1)
    o = tl.dot(tl.cast(p, F16), v)  # MARK: fixed p16
    tl.store(o_ptr, tl.cast(o / l, F16))


def line_of(fn, mark: str) -> int:
    src, first = inspect.getsourcelines(fn)
    return first + next(i for i, text in enumerate(src) if f"# MARK: {mark}" in text)


def launch(kernel, drift=True, seed=0, sigma=3.0):
    """Scores with a spread like a trained model's (std about 9 here): an error of 2**-11 in Q
    becomes about 0.01 in a score, so 1% in its exp."""
    rng = np.random.default_rng(seed)
    ctx = kernbench.Context("default")
    q = (rng.standard_normal((R, D)) * sigma).astype(np.float16)
    k = (rng.standard_normal((N, D)) * sigma).astype(np.float16)
    v = rng.standard_normal((N, D)).astype(np.float16)
    args = [ctx.put(x, (0, 0)) for x in (q, k, v)] + [ctx.empty((R, D), F16)]
    r = ctx.launch(kernel, (1, 1), *args, drift=drift)
    return r, ctx.read(args[3], (0, 0))


def where(r, c):
    return int(r.source(c).rsplit(":", 1)[1])


def test_the_f16_scaling_of_q_is_pointed_at():
    r, _ = launch(attention_q16)
    d = r.drift
    assert not d.passed and d.tolerance == DEFAULT_TOLERANCE
    # the first result out of tolerance is the exp, whose argument carries the score error ...
    assert where(r, d.first) == line_of(attention_q16, "exp") and r.label(d.first).startswith("exp")
    # ... and the command that introduced it is the cast of Q * scale to f16, on PE (0, 0)
    assert where(r, d.origin) == line_of(attention_q16, "the bug")
    assert r.label(d.origin) == f"cast ({R},{D}) f16"
    s = kernbench.report.drift_summary(r)
    assert s["origin"]["pe"] == [0, 0] and s["first"]["pe"] == [0, 0]
    assert f"introduced by cast ({R},{D}) f16 at test_numeric_drift.py:{line_of(attention_q16, 'the bug')}" in s["text"]
    # how far each line drifts: the cast line's own rounding is f16's, the dot after it carries it
    lines = {int(ln["source"].rsplit(":", 1)[1]): ln for ln in s["lines"]}
    bug = lines[line_of(attention_q16, "the bug")]
    assert 2 ** -13 < bug["max_rounding"] <= 2 ** -11 and bug["over"] == 0
    assert lines[line_of(attention_q16, "exp")]["max_drift"] > 3 * DEFAULT_TOLERANCE


def _load_q_f16(tl, q_ptr, q0, rows, g, G, h_q, d, scale):
    """kernbench.kernels._common._load_q as it was: Q * scale rounded to f16."""
    from kernbench.kernels._common import F16_BYTES, _view

    q = tl.load(q_ptr + (q0 * h_q + g * G) * d * F16_BYTES, shape=(rows, G * d), dtype=F16, stride=h_q * d)
    return tl.cast(tl.cast(_view(q, (rows * G, d)), F32) * scale, F16)  # MARK: old prefill


@pytest.mark.parametrize("old", [True, False])
def test_the_prefill_kernel_with_its_old_q_scaling(monkeypatch, old):
    """The shipped pipelined prefill kernel on 2 PEs (K/V blocks crossing the link), with the
    old f16 scaling of Q patched back in: the drift is traced to it; the shipped kernel passes."""
    import kernbench.kernels._prefill as prefill
    from kernbench.kernels.attention import attention_mesh_kv_kernel

    if old:
        monkeypatch.setattr(prefill, "_load_q", _load_q_f16)
    rng = np.random.default_rng(0)
    n, S, h_q, h_kv = 2, 64, 2, 1
    ctx = kernbench.Context("default")
    ctx.install_sfr(scope="pe")
    k = (rng.standard_normal((n, S, h_kv, D)) * 3).astype(np.float16)
    v = rng.standard_normal((n, S, h_kv, D)).astype(np.float16)
    q = (rng.standard_normal((n, S, h_q, D)) * 3).astype(np.float16)
    kp, vp, qp = (ctx.shard(x, axis=0, over="pe", parts=n) for x in (k, v, q))
    r = ctx.launch(attention_mesh_kv_kernel, (n, 1), qp, kp, vp, ctx.empty((S, h_q, D), F16), S, S, h_q, h_kv,
                   D, n, 0, 32, 32, drift=True)
    if old:
        assert r.drift.origin is not None and where(r, r.drift.origin) == line_of(_load_q_f16, "old prefill")
        assert r.label(r.drift.first).startswith("exp")
    else:
        assert r.drift.passed


def test_the_fixed_kernel_passes():
    r, _ = launch(attention_f32)
    assert r.drift.passed and r.drift.first is None and r.drift.origin is None
    s = kernbench.report.drift_summary(r)
    assert s["passed"] and "every result within" in s["text"]
    # its scores are f32-accurate; only the deliberate f16 casts round at f16's precision
    dot = next(ln for ln in s["lines"] if ln["labels"][0].startswith("dot (64,128)x(128,128) f32"))
    assert dot["max_drift"] < 1e-5


def test_a_tolerance_below_f16_precision_points_at_the_first_f16_rounding():
    r, _ = launch(attention_f32, drift=1e-4)
    assert where(r, r.drift.first) == line_of(attention_f32, "fixed p16") == where(r, r.drift.origin)


def test_drift_does_not_change_the_launch():
    a, out_a = launch(attention_q16, drift=False)
    b, out_b = launch(attention_q16, drift=True)
    assert a.drift is None
    assert np.array_equal(out_a, out_b) and a.cycles == b.cycles


def test_options_are_checked():
    with pytest.raises(ValueError, match="mode='functional'"):
        ctx = kernbench.Context("default")
        x = ctx.empty((R, D), F16)
        ctx.launch(attention_f32, (1, 1), x, x, x, x, mode="timing", drift=True)
    for bad in (0, -1e-3, "x", float("nan")):
        with pytest.raises(ValueError, match="drift must be"):
            launch(attention_f32, drift=bad)


def relay(x_ptr, t_ptr, o_ptr, *, tl):
    """PE 0 scales x in f16 and sends it east; PE 1 stores it to memory, loads it back and
    stores it again. The drift travels with the value."""
    if tl.program_id(0) == 0:
        x = tl.load(x_ptr, shape=(256,), dtype=F32)
        tl.send(dir="E", src=tl.cast(x * 0.1, F16))  # MARK: relay rounding
    else:
        y = tl.recv(dir="W", shape=(256,), dtype=F16)
        tl.store(t_ptr, y)
        z = tl.load(t_ptr, shape=(256,), dtype=F16, after=y)
        tl.store(o_ptr, tl.cast(z, F32) * 2.0)


def test_across_a_link_and_through_memory():
    rng = np.random.default_rng(1)
    ctx = kernbench.Context("default")
    ctx.install_sfr(scope="pe")
    x = ctx.put(rng.standard_normal(256).astype(np.float32), (0, 0))
    t, o = ctx.empty((256,), F16), ctx.empty((256,), F32)
    r = ctx.launch(relay, (2, 1), x, t, o, drift=1e-4)
    d = r.drift
    labels = {c: r.label(c) for c in range(r.program.n_commands)}
    cast = next(c for c, lab in labels.items() if lab.startswith("cast (256,) f16"))
    recv = next(c for c, lab in labels.items() if lab.startswith("recv"))
    reload = next(c for c, lab in labels.items() if lab.startswith("load (256,) f16"))
    # the f16 rounding is the first (and only) source of drift; the recv and the load back carry
    # exactly its drift: the shadow crossed the link and read what the shadow stored
    assert d.drift[cast] == pytest.approx(d.local[cast], rel=1e-3) and d.local[cast] > 1e-4
    assert d.drift[recv] == d.drift[reload] == d.drift[cast]
    assert d.local[recv] == d.local[reload] == 0.0
    assert d.first == cast and d.origin == cast
    assert where(r, d.origin) == line_of(relay, "relay rounding")


def test_measure():
    assert measure(np.float32([1, 2, 4]), np.array([1, 2, 4.0])) == 0.0
    assert measure(np.float32([1, 2, 4.5]), np.array([1, 2, 4.0])) == pytest.approx(0.125)
    assert measure(np.float32([np.inf, 1]), np.array([np.inf, 1.0])) == 0.0
    assert measure(np.float32([np.nan, 1]), np.array([0.0, 1.0])) == np.inf
    assert measure(np.array([True, False, True, True]), np.array([True, True, True, True])) == 0.25


def test_report_table_and_json(tmp_path):
    r, _ = launch(attention_q16)
    text = r.drift_report(width=120)
    assert "numeric drift" in text and "introduced by cast" in text
    doc = r.to_json(tmp_path / "d.json")
    assert doc["drift"]["passed"] is False and doc["drift"]["origin"]["label"].startswith("cast")
    assert "drift: first out of tolerance" in r._repr_html_()  # Jupyter shows the verdict too
    with pytest.raises(ValueError, match="no drift record"):
        launch(attention_q16, drift=False)[0].drift_report()


def test_json_round_trip_keeps_the_record(tmp_path):
    """from_json rebuilds result.drift from the JSON's drift_record (a review found it dropped:
    the rebuilt launch's drift_report said to relaunch with drift=True), NaN (nothing compared)
    and an infinite drift included, and to_json of the rebuilt launch is the document again."""
    import dataclasses
    import json
    from kernbench.report import from_json
    r, _ = launch(attention_q16)
    d = r.drift
    drift = d.drift.copy()
    nan_at = [next(i for i in range(len(drift)) if i != d.origin)]
    drift[nan_at[0]] = np.nan  # (as a command with nothing to compare has)
    drift[d.origin] = np.inf
    r = dataclasses.replace(r, drift=dataclasses.replace(d, drift=drift))
    doc = json.loads(json.dumps(r.to_json(tmp_path / "d.json"), allow_nan=False))  # (plain JSON)
    assert doc["drift_record"]["drift"][d.origin] == "inf" and doc["drift_record"]["drift"][nan_at[0]] is None
    back = from_json(tmp_path / "d.json")
    for f in ("drift", "local", "order"):
        np.testing.assert_array_equal(getattr(back.drift, f), getattr(r.drift, f))
    assert (back.drift.tolerance, back.drift.first, back.drift.origin) == (d.tolerance, d.first, d.origin)
    assert back.drift_report(width=120) == r.drift_report(width=120)
    assert json.loads(json.dumps(back.to_json())) == doc


def test_float_to_int32_conversions_drift_nothing():
    """A review's case: a float tensor stored to an int32 allocation, or given as a masked
    int32 load's `other`, drifted 0.75 though the launch's values were exactly the language's
    conversion of the exact inputs (the shadow was converted by numpy's astype: NaN and values
    past int32 to INT_MIN, not the saturating, NaN -> 0 conversion the launch makes). Now every
    path converts the shadow as the launch does: no drift, as the explicit tl.cast had."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    x = ctx.put(np.array([3e9, np.nan, np.inf, 1.5, -3e9, -np.inf, -2.5, 7.0], np.float32), pe=(0, 0))
    n = ctx.put(np.arange(8), pe=(0, 0), dtype="int32")
    o1, o2, o3 = ctx.empty((8,), "int32"), ctx.empty((8,), "int32"), ctx.empty((8,), "int32")

    def k(x_ptr, n_ptr, o1_ptr, o2_ptr, o3_ptr, *, tl):
        if tl.program_id(0):
            return
        v = tl.load(x_ptr, shape=(8,), dtype="f32")
        tl.store(o1_ptr, v)  # the store converts f32 -> int32
        tl.store(o2_ptr, tl.cast(v, "int32"))  # the same, by an explicit cast
        m = tl.arange(0, 8) < 0  # all masked off: every element is `other`
        tl.store(o3_ptr, tl.load(n_ptr, shape=(8,), dtype="int32", mask=m, other=v))
        tl.store(n_ptr, v)  # and read back through memory (the shadow's overlay)
        tl.store(o3_ptr, tl.load(n_ptr, shape=(8,), dtype="int32") + 0)

    r = ctx.launch(k, (1, 1), x, n, o1, o2, o3, mode="functional", drift=True)
    want = [2147483647, 0, 2147483647, 1, -2147483648, -2147483648, -2, 7]
    assert ctx.read(o1, (0, 0)).tolist() == want and ctx.read(o2, (0, 0)).tolist() == want
    assert ctx.read(o3, (0, 0)).tolist() == want
    assert r.drift.passed and float(np.max(r.drift.drift)) == 0.0
    assert measure(np.array(want, np.int32), np.array([3e9, np.nan, np.inf, 1.5, -3e9, -np.inf, -2.5, 7.0])) == 0.0


@pytest.mark.parametrize("op", ["floordiv", "mod", "shl"])
def test_an_int_op_undefined_only_in_the_shadow_is_drift_not_a_crash(op):
    """A review's case (the class of flagos-ai/FlagGems#204): the f16 product 0.1 * 10 rounds
    to 1.0, so the launch's int32 cast is 1, while the unrounded shadow's 0.99976 casts to 0.
    `100 // c` (or `%`, or `1 << (c - 1)`) is fine in the launch and undefined in the shadow:
    drift=True raised numerics' bare IntegerDivisionByZero (no PE, no line) from a launch that
    runs without it. Now the launch's outputs are the same, that op's drift is inf, and it is
    the first one out of tolerance (the cast itself drifts too: it is the origin's candidate)."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.array([0.1, 0.1], np.float16), dtype="f16")

    def k(x_ptr, o_ptr, *, tl):
        c = tl.cast(tl.load(x_ptr, shape=(2,)) * 10.0, "int32")
        tl.store(o_ptr, 100 // c if op == "floordiv" else (100 % c if op == "mod" else 1 << (c - 1)))

    want = {"floordiv": 100, "mod": 0, "shl": 1}[op]
    outs = []
    for drift in (False, True):
        o = ctx.empty((2,), "int32")
        r = ctx.launch(k, (1, 1), x, o, mode="functional", drift=drift)
        outs.append(ctx.read(o, (0, 0)).tolist())
    assert outs == [[want, want]] * 2
    d = r.drift
    labels = [r.label(i) for i in range(len(d.drift))]
    cast = next(i for i, s in enumerate(labels) if s.startswith("cast"))
    assert d.drift[cast] == 1.0  # both elements differ: 1 against 0
    undefined = [i for i in range(len(d.drift)) if d.drift[i] == np.inf]
    assert len(undefined) == 1 and labels[undefined[0]].startswith(("floordiv", "mod", "shl"))
    assert not d.passed


def test_a_masked_store_drifts_by_the_elements_it_stored():
    """A review: a masked store's drift counted the masked-off elements too. exp(80) overflows
    f16 where nothing is stored (elements 8..15), and the store read inf; with masked-off values
    of 3000 beside stored ones of 3 at most it read 1,000x less than the load that reads the
    stored elements back. Now both are the stored elements' max|value - shadow| / max|shadow|,
    against a float64 exp (the shadow) of the same inputs."""
    ctx = kernbench.Context("default")

    def k(x_ptr, o_ptr, *, tl):
        y = tl.exp(tl.load(x_ptr, shape=(16,), dtype="f32"))
        tl.store(o_ptr, y, mask=tl.arange(0, 16) < 8)
        tl.load(o_ptr, shape=(16,), dtype="f16", mask=tl.arange(0, 16) < 8)

    for masked_off in (80.0, 8.0):  # exp: inf in f16, or 2981 beside stored values of e at most
        xv = np.full(16, masked_off, np.float32)
        xv[:8] = np.linspace(0, 1, 8)
        x, o = ctx.put(xv, (0, 0)), ctx.put(np.zeros(16, np.float16), (0, 0))
        r = ctx.launch(k, (1, 1), x, o, drift=True)
        stored = ctx.read(o, (0, 0))[:8].astype(np.float64)
        shadow = np.exp(xv[:8].astype(np.float64))
        want = np.abs(stored - shadow).max() / np.abs(shadow).max()
        ops = r.program.commands["opcode"]
        store = int(np.flatnonzero(ops == Opcode.STORE)[0])
        back = int(np.flatnonzero(ops == Opcode.LOAD)[-1])
        d = r.drift.drift
        # the store (its figure) and the load after it (what it stored, read back) agree
        assert d[store] == pytest.approx(want, rel=1e-12) and d[back] == pytest.approx(want, rel=1e-12)
        assert want < 1e-3 and r.drift.first is None
