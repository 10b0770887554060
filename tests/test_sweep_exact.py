"""A sweep's or tuner's row is a fresh launch's, cached or not (docs/sweeps.md): the cache key
follows every user module the code reaches (however far, however reached), a point whose
arguments have no faithful key shares no trace and no cache entry, a cached tune result is the
fresh one, the replay mode is in the key, functional points replay, and Dask's error rows name
the kernel's file. Each test is a case a review found served stale or wrong rows."""
import collections
import dataclasses
import datetime
import enum
import importlib
import logging
import json
import os
import pathlib
import sys
import uuid
import warnings
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import kernbench
from kernbench.common.cache import NotCanonical, canonical, code_fingerprint, digest
from kernbench.sweeps import sweep, tune
from kernbench.sweeps.figures import row_figures


def _write(root: pathlib.Path, files: dict) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """Write modules under tmp_path (importable); those imported are dropped from sys.modules after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield lambda files: _write(tmp_path, files)
    for name in set(sys.modules) - before:
        sys.modules.pop(name, None)


# -- F1: every user module the code reaches ---------------------------------------------------------
# Each case: (the files, the module and attribute of the function keyed, the file edited and the
# module reloaded after). The edit keeps the old text's length apart (a reload within one second
# must not take the stale .pyc).
_REACH = {
    "submodule read as an attribute": (
        {"kbx_a/__init__.py": "", "kbx_a/tiles.py": "BLOCK = 64\n",
         "kbx_a_k.py": "import kbx_a.tiles\n\n\ndef k(n):\n    return n // kbx_a.tiles.BLOCK\n"},
        ("kbx_a_k", "k"), "kbx_a/tiles.py", "kbx_a.tiles"),
    "module imported in the function's body": (
        {"kbx_b_tiles.py": "BLOCK = 64\n",
         "kbx_b_k.py": "def k(n):\n    import kbx_b_tiles\n    return n // kbx_b_tiles.BLOCK\n"},
        ("kbx_b_k", "k"), "kbx_b_tiles.py", "kbx_b_tiles"),
    "module from-imported in the function's body": (
        {"kbx_f/__init__.py": "", "kbx_f/tiles.py": "BLOCK = 64\n",
         "kbx_f/k.py": "def k(n):\n    from . import tiles\n    return n // tiles.BLOCK\n"},
        ("kbx_f.k", "k"), "kbx_f/tiles.py", "kbx_f.tiles"),
    "module held in a closure cell": (
        {"kbx_c_tiles.py": "BLOCK = 64\n",
         "kbx_c_k.py": "import importlib\n\n\ndef make_kernel(cfg):\n    def k(n):\n        return n // cfg.BLOCK\n"
                       "    return k\n\n\nk = make_kernel(importlib.import_module('kbx_c_tiles'))\n"},
        ("kbx_c_k", "k"), "kbx_c_tiles.py", "kbx_c_tiles"),
    "a value a module's __getattr__ serves": (
        {"kbx_g_helpers.py": "def block():\n    return 64\n",
         "kbx_g.py": "import kbx_g_helpers\n\n\ndef __getattr__(name):\n    if name == 'BLOCK':\n"
                     "        return kbx_g_helpers.block()\n    raise AttributeError(name)\n",
         "kbx_g_k.py": "import kbx_g\n\n\ndef k(n):\n    return n // kbx_g.BLOCK\n"},
        ("kbx_g_k", "k"), "kbx_g_helpers.py", "kbx_g_helpers"),
    "helper function in a submodule": (
        {"kbx_d/__init__.py": "", "kbx_d/ops.py": "def extra(n):\n    return n + 1\n",
         "kbx_d_k.py": "import kbx_d.ops\n\n\ndef k(n):\n    return kbx_d.ops.extra(n)\n"},
        ("kbx_d_k", "k"), "kbx_d/ops.py", "kbx_d.ops"),
}


@pytest.mark.parametrize("case", sorted(_REACH))
def test_cache_keys_follow_every_user_module_the_code_reaches(case, user_modules, tmp_path):
    """docs/sweeps.md promises the key covers every user module the code reaches: a submodule
    read as ``pkg.sub.X`` (module attributes that are modules were skipped), a module imported
    inside the kernel, one held in a closure cell (a kernel factory's ``cfg``), a helper in a
    submodule. Editing each served a stale cached row."""
    files, (mod, attr), edited, reloaded = _REACH[case]
    user_modules(files)
    fn = getattr(importlib.import_module(mod), attr)
    key = code_fingerprint(fn)
    assert code_fingerprint(fn) == key  # nothing changed: the same key
    text = (tmp_path / edited).read_text()
    (tmp_path / edited).write_text(text.replace("64", "32").replace("+ 1", "+ 500") + "# edited\n")
    on_disk = code_fingerprint(fn)  # the file edited, not reloaded (or, imported in the body, not yet imported)
    if reloaded in sys.modules:
        importlib.reload(sys.modules[reloaded])
    else:
        importlib.import_module(reloaded)
    assert len({key, on_disk, code_fingerprint(fn)}) == 3
    if "BLOCK" in text:  # a value set at run time, no file edited
        again = code_fingerprint(fn)
        sys.modules[reloaded].BLOCK = 7
        assert code_fingerprint(fn) != again


_KMOD = """\
import kbx_s.tiles


def kern(x_ptr, o_ptr, n, *, tl):
    B = kbx_s.tiles.BLOCK
    for i in tl.range(0, n // B):
        tl.store(o_ptr + i * B * 4, tl.exp(tl.load(x_ptr + i * B * 4, shape=(B,), dtype="f32")))


def setup(ctx, n):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n
"""


def _fresh_cycles(kern, setup, n, **launch) -> int:
    ctx = kernbench.Context("default")
    ctx.install_sfr("pe")
    return ctx.launch(kern, (1, 1), *setup(ctx, n), mode="timing", **launch).cycles


def test_a_sweep_recomputes_when_a_submodule_it_reads_changes(user_modules, tmp_path):
    """The review's script: the kernel reads ``cfgpkg.tiles.BLOCK``; after BLOCK was edited
    (and the module reloaded) the cached row of the old BLOCK was served."""
    user_modules({"kbx_s/__init__.py": "", "kbx_s/tiles.py": "BLOCK = 64\n", "kbx_s_kmod.py": _KMOD})
    km = importlib.import_module("kbx_s_kmod")
    kw = dict(setup=km.setup, args={"n": [4096]}, workers=1, cache=tmp_path / "cache", progress=False)
    first = sweep(km.kern, (1, 1), **kw)
    assert sweep(km.kern, (1, 1), **kw).stats["cached"] == 1
    (tmp_path / "kbx_s" / "tiles.py").write_text("BLOCK = 32  # edited\n")
    importlib.reload(sys.modules["kbx_s.tiles"])
    again = sweep(km.kern, (1, 1), **kw)
    assert again.stats["computed"] == 1
    assert again.rows[0]["cycles"] == _fresh_cycles(km.kern, km.setup, 4096) != first.rows[0]["cycles"]


# -- F2: no depth bound ---------------------------------------------------------------------------------
def _chain(n: int) -> dict:
    files = {f"kbx_m{i}.py": f"import kbx_m{i + 1}\n\n\ndef f{i}():\n    return kbx_m{i + 1}.f{i + 1}()\n"
             for i in range(n)}
    files[f"kbx_m{n}.py"] = f"BLOCK = 64\n\n\ndef f{n}():\n    return BLOCK\n"
    return files


@pytest.mark.parametrize("hops", [5, 40])
def test_cache_keys_follow_user_code_however_many_modules_away(hops, user_modules, tmp_path):
    """The fingerprint stopped 4 levels deep: a constant 5 module hops from the kernel was
    served stale. It follows the whole graph now (40 hops: no recursion limit either)."""
    user_modules(_chain(hops))
    f0 = importlib.import_module("kbx_m0").f0
    key = code_fingerprint(f0)
    (tmp_path / f"kbx_m{hops}.py").write_text(f"BLOCK = 32\n\n\ndef f{hops}():\n    return BLOCK\n# edited\n")
    assert code_fingerprint(f0) != key
    importlib.reload(sys.modules[f"kbx_m{hops}"])
    assert f0() == 32 and len({key, code_fingerprint(f0)}) == 2


def test_modules_importing_each_other_terminate_and_agree(user_modules, tmp_path):
    user_modules({"kbx_p.py": "import kbx_q\n\nN = 1\n\n\ndef p(n):\n    return n and kbx_q.q(n - 1) + N\n",
                  "kbx_q.py": "import kbx_p\n\n\ndef q(n):\n    return n and kbx_p.p(n - 1)\n"})
    p = importlib.import_module("kbx_p").p
    key = code_fingerprint(p)
    assert code_fingerprint(p) == key
    sys.modules["kbx_p"].N = 2
    assert code_fingerprint(p) != key


def _deep(n):
    v = [1]
    for _ in range(n):
        v = [v]
    return v


_DEEP = {"cfg": _deep(80)}


def _deep_kernel(x_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") * float(len(_DEEP["cfg"])))


def test_data_deeper_than_the_key_holds_is_not_cached(tmp_path):
    """What the key cannot hold whole (data nested deeper than PLAIN_DEPTH) was keyed as
    ``{"deeper": 64}``: an edit below it kept the key. Now the target is not cached (a warning
    says so), and such a point is computed every time."""
    with pytest.raises(NotCanonical, match="deeper than 64"):
        code_fingerprint(_deep_kernel)
    setup = lambda ctx, n: (ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n)  # noqa: E731
    kw = dict(setup=setup, args={"n": [256]}, workers=1, cache=tmp_path, progress=False)
    for _ in range(2):
        with pytest.warns(UserWarning, match="not cached: the target's key cannot hold"):
            res = sweep(_deep_kernel, (1, 1), **kw)
        assert res.stats["computed"] == 1 and res.rows[0]["error"] is None


# -- F3: no shared trace or cache entry without a faithful key ------------------------------------------
class Cfg:
    """A config whose repr shows its name only."""

    def __init__(self, name, block):
        self.name, self.block = name, block

    def __repr__(self):
        return f"Cfg({self.name!r})"


def _blocked(x_ptr, o_ptr, n, B, *, tl):
    for i in tl.range(0, n // B):
        tl.store(o_ptr + i * B * 4, tl.exp(tl.load(x_ptr + i * B * 4, shape=(B,), dtype="f32")))


def _cfg_setup(ctx, n, cfg):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, cfg.block


def test_arguments_with_the_same_repr_get_their_own_traces_and_no_cache(tmp_path):
    """Two configs of one repr and different state shared one trace (wrong rows even with
    cache=False) and one cache entry."""
    cfgs = [Cfg("t", 64), Cfg("t", 16)]
    fresh = [_fresh_cycles(_blocked, lambda ctx, n, c=c: _cfg_setup(ctx, n, c), 4096) for c in cfgs]
    assert fresh[0] != fresh[1]
    res = sweep(_blocked, (1, 1), setup=_cfg_setup, args={"n": [4096], "cfg": cfgs}, workers=1, cache=False)
    assert [r["cycles"] for r in res.rows] == fresh and res.stats["traces"] == 2
    kw = dict(setup=_cfg_setup, args={"n": [4096], "cfg": cfgs}, workers=1, cache=tmp_path, progress=False)
    for _ in range(2):
        res = sweep(_blocked, (1, 1), **kw)
        assert res.stats["computed"] == 2 and [r["cycles"] for r in res.rows] == fresh


def _sizes(x_ptr, o_ptr, sizes, *, tl):
    off = 0
    for n in sizes:
        t = tl.load(x_ptr + off * 4, shape=(n,), dtype="f32")
        for _ in range(10 if off == 0 else 1):
            t = tl.exp(t)
        tl.store(o_ptr + off * 4, t)
        off += n


def _layers_setup(ctx, layers):
    return ctx.empty((8192,), "f32"), ctx.empty((8192,), "f32"), list(layers.values())


def test_dicts_keep_their_order_in_trace_groups_and_keys(tmp_path):
    """Dicts equal up to insertion order were one key (sorted items): a setup iterating
    ``.values()`` got the first one's trace."""
    a, b = {"q": 4096, "k": 16}, {"k": 16, "q": 4096}
    fresh = []
    for layers in (a, b):
        ctx = kernbench.Context("default")
        ctx.install_sfr("pe")
        fresh.append(ctx.launch(_sizes, (1, 1), *_layers_setup(ctx, layers), mode="timing").cycles)
    assert fresh[0] != fresh[1]
    for cache in (False, tmp_path):
        res = sweep(_sizes, (1, 1), setup=_layers_setup, args={"layers": [a, b]}, workers=1, cache=cache)
        assert [r["cycles"] for r in res.rows] == fresh
    assert sweep(_sizes, (1, 1), setup=_layers_setup, args={"layers": [b, a]}, workers=1,
                 cache=tmp_path).stats["computed"] == 0  # (each order is its own entry)
    assert digest(a) != digest(b) and digest(a) == digest(dict(a))


class Mode(enum.Enum):
    A = 1


def test_strict_keys_refuse_what_they_cannot_hold():
    """canonical(strict=True): a value keyed by less than what it holds raises; a type whose
    repr is its value is keyed by it; a container subclass keeps its class."""
    P = namedtuple("P", "x y")
    assert digest(P(1, 2)) != digest((1, 2)) and digest(OrderedDict(a=1)) != digest({"a": 1})
    for ok in (b"ab", 1 + 2j, range(3), Mode.A, pathlib.Path("/x"), np.dtype("f4"), slice(1, 4),
               {"t": (1, [2.5, None])}, P(1, 2), np.arange(3)):
        assert canonical(ok, strict=True) == canonical(ok, strict=True)

    class Act:
        def __init__(self, s):
            self.s = s

        def __repr__(self):
            return "Act"

        def __call__(self, x):
            return x * self.s

    for bad in (Cfg("t", 1), [object()], {"m": np}, np.ma.array([1, 2], mask=[0, 1]), _deep(80)):
        with pytest.raises(NotCanonical):
            canonical(bad, strict=True)
    canonical(Cfg("t", 1))  # (not strict: by its repr, as before)
    # a callable object is keyed by its state beside its repr (a review: one repr, two states,
    # one cached row), so a strict key holds it
    assert canonical(Act(2), strict=True) == canonical(Act(2), strict=True) != canonical(Act(3), strict=True)


# -- F4: a cached tune result is the fresh one ----------------------------------------------------------
def _pair(x_ptr, o_ptr, n, blk, *, tl):
    a, _ = blk
    for i in tl.range(0, n // a):
        tl.store(o_ptr + i * a * 4, tl.load(x_ptr + i * a * 4, shape=(a,), dtype="f32") * 2.0)


def _pair_setup(ctx, n, blk):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, blk


def _act_kernel(x_ptr, o_ptr, n, act, *, tl):
    t = tl.load(x_ptr, shape=(n,), dtype="f32")
    tl.store(o_ptr, act(t) if act is not None else t)


def _act_setup(ctx, n, act):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, act


def _square(t):
    return t * t


def test_a_cached_tune_result_is_the_fresh_one(tmp_path):
    """Configs went through JSON: tuples came back as lists (``t.best in configs`` False)."""
    cfgs = [{"blk": (64, 1)}, {"blk": (256, 3)}]
    kw = dict(args={"n": 4096}, default={"blk": (64, 1)}, grid=(1, 1), setup=_pair_setup, cache=tmp_path)
    fresh = tune(_pair, cfgs, **kw)
    cached = tune(_pair, cfgs, **kw)
    assert cached.from_cache and not fresh.from_cache
    assert cached.best == fresh.best and cached.best in cfgs and isinstance(cached.best["blk"], tuple)
    assert cached.default == fresh.default and isinstance(cached.default["blk"], tuple)
    assert cached.table == fresh.table and (cached.cycles, cached.default_cycles) == (fresh.cycles, fresh.default_cycles)


def test_a_tune_over_callables_caches_and_one_over_reprs_does_not(tmp_path):
    """A config holding a function made cache=True raise ``cannot store function in the cache``
    after every launch ran; a config keyed by its repr shared a cache entry."""
    kw = dict(args={"n": 4096}, grid=(1, 1), setup=_act_setup)
    cfgs = [{"act": None}, {"act": _square}]
    plain = tune(_act_kernel, cfgs, cache=False, **kw)
    fresh = tune(_act_kernel, cfgs, cache=tmp_path, **kw)
    cached = tune(_act_kernel, cfgs, cache=tmp_path, **kw)
    assert (plain.best, plain.table) == (fresh.best, fresh.table) == (cached.best, cached.table)
    assert cached.from_cache and cached.table[1]["config"]["act"] is _square
    kw = dict(args={"n": 4096}, grid=(1, 1), setup=_cfg_setup, cache=tmp_path)
    first = tune(_blocked, [{"cfg": Cfg("t", 64)}], **kw)
    other = tune(_blocked, [{"cfg": Cfg("t", 16)}], **kw)
    assert not other.from_cache and other.cycles != first.cycles


# -- F5: the replay mode is in the key ------------------------------------------------------------------
def _breaks_range(x_ptr, o_ptr, n, *, tl):
    acc = tl.zeros((64,), "f32")
    for i in tl.range(0, n):
        t = tl.load(x_ptr + i * 256, shape=(64,), dtype="f32")
        if i == 5:  # breaks the tl.range contract: what verify mode finds
            for _ in range(20):
                t = tl.exp(t)
        acc = acc + t
    tl.store(o_ptr, acc)


def _range_setup(ctx, n):
    return ctx.empty((64 * n,), "f32"), ctx.empty((64,), "f32"), n


def test_the_replay_mode_is_in_the_sweep_and_tune_keys(tmp_path, monkeypatch):
    """KERNBENCH_REPLAY (or the replay option) changes the rows: on, off and verify each have
    their entry (a cached row hid verify's error, or served it under on)."""
    kw = dict(setup=_range_setup, args={"n": [10]}, workers=1, cache=tmp_path, progress=False)
    rows = {}
    for mode in ("on", "verify", "off", "on"):
        monkeypatch.setenv("KERNBENCH_REPLAY", mode)
        res = sweep(_breaks_range, (1, 1), **kw)
        rows.setdefault(mode, res.rows[0])
        assert res.rows[0] == rows[mode]
        ctx = kernbench.Context("default")
        ctx.install_sfr("pe")
        try:
            fresh = row_figures(ctx.launch(_breaks_range, (1, 1), *_range_setup(ctx, 10), mode="timing"))
        except kernbench.KernbenchError as e:
            fresh = {"error_type": type(e).__name__}
        assert res.rows[0]["error_type"] == fresh["error_type"] and res.rows[0]["commands"] == fresh.get("commands")
    assert rows["verify"]["error_type"] == "ReplayContractError"
    assert rows["on"]["error"] is None and rows["off"]["commands"] > rows["on"]["commands"]
    # the option, whatever the environment says
    res = sweep(_breaks_range, (1, 1), options={"replay": ["off", "verify"]}, **kw)
    assert res.stats["cached"] == 2 and [r["replay"] for r in res.rows] == ["off", "verify"]
    assert res.rows[0]["commands"] == rows["off"]["commands"] and res.rows[1]["error_type"] == "ReplayContractError"
    tkw = dict(args={"n": 10}, grid=(1, 1), setup=_range_setup, cache=tmp_path)
    monkeypatch.setenv("KERNBENCH_REPLAY", "on")
    assert tune(_breaks_range, [{}], **tkw).best == {}
    monkeypatch.setenv("KERNBENCH_REPLAY", "verify")
    t = tune(_breaks_range, [{}], **tkw)
    assert not t.from_cache and t.best is None and t.table[0]["error_type"] == "ReplayContractError"


# -- F6: functional points replay -----------------------------------------------------------------------
def _divide(x_ptr, o_ptr, *, tl):
    a = tl.load(x_ptr, shape=(16,), dtype="int32")
    tl.store(o_ptr, tl.arange(0, 16) // a)  # a holds a 0 when zero=True: integer division by zero


def _divide_setup(ctx, zero=True):
    a = np.array([1] * 15 + [0 if zero else 3], np.int32)
    return ctx.replicate(a, dtype="int32"), ctx.empty((16,), "int32")


def _fresh_functional(zero, hw=None):
    ctx = kernbench.Context("default", overrides=hw or {})
    ctx.install_sfr("pe")
    try:
        return row_figures(ctx.launch(_divide, (1, 1), *_divide_setup(ctx, zero), mode="functional"))
    except kernbench.KernbenchError as e:
        return {"error_type": type(e).__name__, "error": str(e), "error_where": e.where}


def test_functional_points_are_fresh_functional_launches():
    """options={"mode": ["functional"]} traced and timed, never replayed: an error only replay
    finds (an integer division by zero on loaded data) was missing from the rows."""
    res = sweep(_divide, (1, 1), setup=_divide_setup, args={"zero": [True, False]},
                hardware={"dma.latency_cycles": [50, 150]}, options={"mode": ["functional", "timing"]},
                workers=1, cache=False)
    for row in res.rows:
        if row["mode"] == "timing":
            assert row["error"] is None
            continue
        fresh = _fresh_functional(row["zero"], {"dma.latency_cycles": row["dma.latency_cycles"]})
        assert {k: row[k] for k in fresh} == fresh
        assert (row["error_type"] == "KernelError") == row["zero"]
    assert "division or remainder by zero" in res.rows[0]["error"]
    assert res.stats["traces"] == 6  # a launch per functional point, a trace per timing group


# -- F7: Dask's error rows name the kernel's file -------------------------------------------------------
KBAD = """\
def kbad(x_ptr, o_ptr, n, *, tl):
    t = tl.load(x_ptr, shape=(n,), dtype="f32")
    tl.store(o_ptr, tl.dot(t, t))  # KernelError at this line


def setup(ctx, n):
    if n > 100:
        raise RuntimeError("no data for n=%d" % n)
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n
"""


def test_dask_error_rows_name_the_kernels_file_as_the_serial_path_does(tmp_path, monkeypatch):
    """cloudpickle ships code by value with co_filename "<dynamic-code>": a worker's error rows
    named ``<dynamic-code>:3`` (and were cached so)."""
    distributed = pytest.importorskip("distributed")
    from sweep_helpers import module_by_path

    mod = module_by_path(monkeypatch, tmp_path, "kernbench_test_kbad", KBAD)
    kw = dict(setup=mod.setup, args={"n": [64, 128]}, hardware={"dma.latency_cycles": [50, 150]})
    serial = sweep(mod.kbad, (1, 1), workers=1, cache=False, **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        par = sweep(mod.kbad, (1, 1), client=client, cache=tmp_path / "cache", **kw)
    assert par.rows == serial.rows
    assert serial.rows[0]["error_where"] == f"{tmp_path / 'kernbench_test_kbad.py'}:3" and "kbad.py:3" in serial.rows[0]["error"]
    assert serial.rows[2]["error_where"] == f"{tmp_path / 'kernbench_test_kbad.py'}:8"  # (the setup that raised)
    assert sweep(mod.kbad, (1, 1), workers=1, cache=tmp_path / "cache", **kw).rows[:2] == serial.rows[:2]


#: a kernel applying exp as many times as ``{reps}`` reads, and its setup (after a module's head)
EXPS = """

def k(x_ptr, o_ptr, n, *, tl):
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    for _ in range({reps}):
        x = tl.exp(x)
    tl.store(o_ptr, x)


def setup(ctx, n):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n
"""
KREPS = "import kbv_cfg\n" + EXPS.format(reps="kbv_cfg.REPS")


def test_a_value_set_here_in_a_module_the_workers_import_by_name_is_what_dask_rows_run(tmp_path, monkeypatch):
    """A review's case: the kernel's module (loaded by path) is shipped by value, the config module
    it reads by name, so the workers ran ``REPS = 1`` from its file where this process had set 3:
    the Dask rows differed from the serial path's and were cached under the key of REPS = 3. Each
    worker now reports the values its copy of the target reads; a point whose differ is computed
    here, with a warning, and its row cached as the serial path's."""
    distributed = pytest.importorskip("distributed")
    from sweep_helpers import module_by_path

    (tmp_path / "kbv_cfg.py").write_text("REPS = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # (the workers are spawned with this sys.path)
    monkeypatch.delitem(sys.modules, "kbv_cfg", raising=False)
    cfg = importlib.import_module("kbv_cfg")
    monkeypatch.setitem(sys.modules, "kbv_cfg", cfg)
    mod = module_by_path(monkeypatch, tmp_path, "kernbench_test_kreps", KREPS)
    kw = dict(setup=mod.setup, args={"n": [256, 512]})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (the workers' values are the file's: nothing computed here)
            same = sweep(mod.k, (8, 1), client=client, cache=False, **kw)
        assert same.rows == sweep(mod.k, (8, 1), workers=1, cache=False, **kw).rows
        monkeypatch.setattr(cfg, "REPS", 3)  # (a notebook cell's `cfg.REPS = 3`)
        serial = sweep(mod.k, (8, 1), workers=1, cache=False, **kw)
        assert [r["cycles"] for r in serial.rows] != [r["cycles"] for r in same.rows]
        with pytest.warns(UserWarning, match=r"2 point\(s\) were computed again in this process"):
            par = sweep(mod.k, (8, 1), client=client, cache=tmp_path / "cache", **kw)
    assert par.rows == serial.rows
    cached = sweep(mod.k, (8, 1), workers=1, cache=tmp_path / "cache", **kw)
    assert cached.stats["cached"] == 2 and cached.rows == serial.rows


KNAME = """\
def softmax(x_ptr, o_ptr, n, *, tl):  # (named as the tl function it calls)
    tl.store(o_ptr, tl.softmax(tl.load(x_ptr, shape=(n,), dtype="f32")))


k = softmax


def setup(ctx, n):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n
"""

KDC = """\
import dataclasses


@dataclasses.dataclass
class Cfg:
    reps: int = 2
    scratch: list = dataclasses.field(init=False, repr=False)  # (never set)


CFG = Cfg()
""" + EXPS.format(reps="CFG.reps")

KOBJ = "import kbo_cfg\n" + EXPS.format(reps="kbo_cfg.OPTS.reps")


def test_dask_rows_and_the_workers_values_a_breakers_cases(tmp_path, monkeypatch):
    """A breaker of the check above: a kernel named as an attribute its code reads (``softmax``
    calling ``tl.softmax``: cloudpickle ships only the globals code reads as globals) and a
    dataclass instance of a module shipped by value (the worker has no such module) were
    computed twice, with a warning that something differed; an attribute set on an object
    (``cfg.OPTS.reps = 3``, keyed by its class) was not seen; a dataclass field never set
    (``field(init=False)``) raised AttributeError."""
    import types as _types

    distributed = pytest.importorskip("distributed")
    from sweep_helpers import module_by_path

    (tmp_path / "kbo_cfg.py").write_text("import types\nOPTS = types.SimpleNamespace(reps=1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "kbo_cfg", raising=False)
    cfg = importlib.import_module("kbo_cfg")
    monkeypatch.setitem(sys.modules, "kbo_cfg", cfg)
    mods = [module_by_path(monkeypatch, tmp_path, f"kernbench_test_{n}", t)
            for n, t in (("kname", KNAME), ("kdc", KDC), ("kobj", KOBJ))]
    kw = dict(args={"n": [256, 512]})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        for mod in mods:
            serial = sweep(mod.k, (8, 1), setup=mod.setup, workers=1, cache=False, **kw)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # (nothing differs: nothing computed here)
                assert sweep(mod.k, (8, 1), setup=mod.setup, client=client, cache=False, **kw).rows == serial.rows
        monkeypatch.setattr(cfg, "OPTS", _types.SimpleNamespace(reps=1))
        cfg.OPTS.reps = 3  # (an attribute set here on the object the workers make from the file)
        serial = sweep(mods[2].k, (8, 1), setup=mods[2].setup, workers=1, cache=False, **kw)
        with pytest.warns(UserWarning, match=r"2 point\(s\) were computed again in this process"):
            par = sweep(mods[2].k, (8, 1), setup=mods[2].setup, client=client, cache=False, **kw)
    assert par.rows == serial.rows
    # (the dataclass field never set is keyed as unset: cached, where identity() raised)
    kdc = sweep(mods[1].k, (8, 1), setup=mods[1].setup, workers=1, cache=tmp_path / "c", **kw)
    assert kdc.stats["uncacheable"] == 0 and sweep(mods[1].k, (8, 1), setup=mods[1].setup, workers=1,
                                                   cache=tmp_path / "c", **kw).stats["cached"] == 2


# -- review E, F1: a class's base classes are in the code key ------------------------------------------
def test_a_method_inherited_from_a_base_class_in_another_module_is_in_the_key(user_modules, tmp_path):
    """The key held the class's file and methods but not its bases': editing ``Base.n`` in its own
    module served the old row."""
    user_modules({"kbe_base.py": "class Base:\n    def n(self):\n        return 1024\n",
                  "kbe_cfg.py": "from kbe_base import Base\n\n\nclass Cfg(Base):\n    pass\n",
                  "kbe_k.py": "from kbe_cfg import Cfg\n\n\ndef k(x):\n    return x + Cfg().n()\n"})
    k = importlib.import_module("kbe_k").k
    key = code_fingerprint(k)
    (tmp_path / "kbe_base.py").write_text("class Base:\n    def n(self):\n        return 4096\n# edited\n")
    on_disk = code_fingerprint(k)
    assert on_disk != key
    sys.modules["kbe_base"].Base.n = lambda self: 4096  # the code that runs, not only the file
    assert len({key, on_disk, code_fingerprint(k)}) == 3


# -- review E, F2: the code of an argument's class is in its key ---------------------------------------
_CFGS = """\
import collections
import dataclasses
import enum


@dataclasses.dataclass
class DC:
    n: int

    def size(self):
        return self.n


class Mode(enum.Enum):
    A = 1

    def size(self):
        return self.value


class NT(collections.namedtuple("NT", "n")):
    def size(self):
        return self.n
"""


@pytest.mark.parametrize("kind", ["DC(1024)", "Mode.A", "NT(1024)", "[DC(1024)]"])
def test_the_code_of_an_arguments_class_is_in_its_key(kind, user_modules, tmp_path):
    """An argument that is a user class's instance was keyed by its class name and values:
    editing its method (``cfg.size()``) served the old row. Data reached by code too."""
    user_modules({"kbe_cfgs.py": _CFGS, "kbe_kd.py": f"from kbe_cfgs import DC, Mode, NT\n\nCFG = {kind}\n\n\n"
                  "def k(x):\n    return x + len(CFG)\n"})
    mod = importlib.import_module("kbe_cfgs")
    arg = eval(kind, vars(mod))
    k = importlib.import_module("kbe_kd").k
    key, code = digest(arg, strict=True), code_fingerprint(k)
    assert digest(arg, strict=True) == key
    (tmp_path / "kbe_cfgs.py").write_text(_CFGS.replace("return self.n", "return self.n * 4") + "# edited\n")
    assert digest(arg, strict=True) != key and code_fingerprint(k) != code


# -- review E, F3: different arguments get different strict keys ---------------------------------------
class IMode(enum.IntEnum):
    FAST = 1


class SMode(str, enum.Enum):
    X = "x"


class MyInt(int):
    pass


@dataclasses.dataclass
class DCfg:
    n: int


def _with_extra():
    c = DCfg(1)
    c.extra = 4096
    return c


@pytest.mark.parametrize("a, b", [
    (1, IMode.FAST), ("x", SMode.X), (1, MyInt(1)), (DCfg(1), _with_extra()), ({1}, frozenset({1})),
    (300, np.int16(300)), (1.5, np.float32(1.5)), (True, np.bool_(True)), (7, np.uint64(7)),
    ((1, 2.0), np.void((1, 2.0), dtype=[("a", "i4"), ("b", "f8")])),
], ids=["intenum", "strenum", "int-subclass", "dataclass-extra", "frozenset", "int16", "float32", "bool_",
        "uint64", "void"])
def test_different_arguments_get_different_strict_keys(a, b):
    """Each pair was one strict key (one trace group, one cache entry) for values code tells apart."""
    assert canonical(a, strict=True) != canonical(b, strict=True)


def test_int64_and_float64_are_keyed_with_their_dtype():
    """Code computes otherwise with them (1.0 / np.float64(0.0) is inf, 1.0 / 0.0 raises): one
    key was a stale row (a review's case). A sweep passes a swept one as the Python number."""
    assert canonical(np.int64(32), strict=True) != canonical(32, strict=True)
    assert canonical(np.float64(2.5), strict=True) != canonical(2.5, strict=True)
    assert canonical([np.int64(3)], strict=True) != canonical([3], strict=True)
    assert canonical(np.float64(2.5), strict=True) == canonical(np.float64(2.5), strict=True)
    assert code_fingerprint(_glb_kernel(np.float64(0.0))) != code_fingerprint(_glb_kernel(0.0))


def _glb_kernel(temp):
    glb = {"TEMP": temp}
    exec("def k(n):\n    return n / TEMP\n", glb)
    return glb["k"]


def _temp_kernel(x_ptr, o_ptr, n, temp, *, tl):
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    t = temp[0] if isinstance(temp, tuple) else temp
    tl.store(o_ptr, x * (1.0 / t))  # (the Python-side scale: ZeroDivisionError for 0.0 only)


def _temp_setup(ctx, n, temp):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, temp


def test_numpy_float_choices_are_the_python_floats_they_equal(tmp_path):
    """A review's case: np.linspace temps and the same float temps shared a cache entry (and a
    trace), but 1.0 / np.float64(0.0) is inf where 1.0 / 0.0 raises: the float sweep read the
    numpy run's success row for temp=0.0 from the cache. A swept np.float64 is now passed as the
    float it equals: the same point, the same entry and the same row (docs/sweeps.md)."""
    kw = dict(setup=_temp_setup, workers=1)
    a = sweep(_temp_kernel, (8, 1), args={"n": [1024], "temp": np.linspace(0.0, 1.0, 3)}, cache=tmp_path, **kw)
    b = sweep(_temp_kernel, (8, 1), args={"n": [1024], "temp": [0.0, 0.5, 1.0]}, cache=tmp_path, **kw)
    c = sweep(_temp_kernel, (8, 1), args={"n": [1024], "temp": [0.0, 0.5, 1.0]}, cache=False, **kw)
    assert (a.stats["computed"], b.stats["cached"]) == (3, 3)
    for r in (a, b, c):
        assert [type(x["temp"]) for x in r.rows] == [float] * 3  # (the rows show what the kernel got)
        assert r.rows[0]["error_type"] == "KernelError" and "ZeroDivisionError" in r.rows[0]["error"]
        assert r.rows[1]["error"] is None and r.rows[2]["error"] is None
    assert a.rows == b.rows == c.rows
    # np.int64 choices (np.arange) too; within one sweep the two spellings are one point
    d = sweep(_temp_kernel, (8, 1), args={"n": np.arange(1024, 1025), "temp": [np.float64(0.0), 0.0]},
              cache=False, **kw)
    assert type(d.rows[0]["n"]) is int and d.stats["trace_groups"] == 1
    assert [x["error_type"] for x in d.rows] == ["KernelError"] * 2


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # (1.0 / np.float64(0.0): inf)
def test_a_numpy_float_inside_a_value_is_its_own_point(tmp_path):
    """Passed as it is (a tuple is the user's value), so keyed with its dtype: not grouped with
    nor served from the entry of (0.0,)."""
    kw = dict(setup=_temp_setup, workers=1, cache=tmp_path)
    a = sweep(_temp_kernel, (8, 1), args={"n": [1024], "temp": [(np.float64(0.0),), (0.0,)]}, **kw)
    assert a.stats["trace_groups"] == 2
    assert a.rows[0]["error"] is None and a.rows[1]["error_type"] == "KernelError"
    b = sweep(_temp_kernel, (8, 1), args={"n": [1024], "temp": [(0.0,)]}, **kw)
    assert b.stats["cached"] == 1 and b.rows[0]["error_type"] == "KernelError"


def test_an_intenum_argument_gets_its_own_trace():
    """1 and IMode.FAST (equal, but not to the code) shared one trace."""
    def setup(ctx, v):
        n = 4096 if isinstance(v, IMode) else 1024
        return ctx.empty((8192,), "f32"), ctx.empty((8192,), "f32"), n

    res = sweep(_deep_free, (1, 1), setup=setup, args=[{"v": [v]} for v in (1, IMode.FAST)], workers=1, cache=False)
    assert res.stats["trace_groups"] == 2 and res.rows[0]["cycles"] != res.rows[1]["cycles"]


def _deep_free(x_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") + 1.0)


# -- review E, F5: ordinary arguments have strict keys; globals read by an argument's code as the target's
@pytest.mark.parametrize("a, b", [
    (datetime.date(2020, 1, 1), datetime.date(2020, 1, 2)),
    (datetime.datetime(2020, 1, 1), datetime.datetime(2020, 1, 1, fold=1)),
    (datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc), datetime.datetime(2020, 1, 1)),
    (datetime.timedelta(days=1), datetime.timedelta(days=1, microseconds=1)),
    (Ellipsis, None),
    (uuid.UUID(int=1), uuid.UUID(int=2)),
    (collections.deque([1, 2]), collections.deque([1, 2], maxlen=3)),
    (collections.deque([1, 2]), [1, 2]),
    (np.datetime64("2020-01-01", "D"), np.datetime64("2020-01-01", "m")),
    (np.timedelta64(5, "s"), np.timedelta64(5, "ms")),
], ids=["date", "datetime-fold", "datetime-tz", "timedelta", "ellipsis", "uuid", "deque-maxlen", "deque-list",
        "datetime64", "timedelta64"])
def test_ordinary_arguments_have_strict_keys(a, b):
    """These were refused by strict keys (uncached, ungrouped) though what they hold is known."""
    ka, kb = canonical(a, strict=True), canonical(b, strict=True)
    assert ka == canonical(a, strict=True) and ka != kb


def test_strict_keys_still_refuse_what_a_repr_hides():
    class TZ(datetime.tzinfo):
        def __init__(self, h):
            self.h = h

        def utcoffset(self, dt):
            return datetime.timedelta(hours=self.h)

    for bad in (datetime.datetime(2020, 1, 1, tzinfo=TZ(1)), collections.deque([Cfg("t", 1)])):
        with pytest.raises(NotCanonical):
            canonical(bad, strict=True)


_LOG = logging.getLogger("kernbench.test.review_e")


def _logging_act(t):
    _LOG.debug("act")
    return t * t


def test_a_kernel_argument_reading_a_logger_global_is_cached_and_grouped(tmp_path):
    """A callable argument whose code reads a module-level Logger made its point uncached and
    ungrouped: the target's own globals are keyed by class; an argument's are now too."""
    canonical({"act": _logging_act}, strict=True)
    kw = dict(setup=_act_setup, args={"n": [1024], "act": [_logging_act]}, workers=1, cache=tmp_path,
              progress=False)
    assert sweep(_act_kernel, (1, 1), **kw).stats["computed"] == 1
    assert sweep(_act_kernel, (1, 1), **kw).stats["cached"] == 1


# -- a review of the keys above: regressions and crashes ------------------------------------------
def test_one_object_without_a_faithful_key_shares_its_trace_across_hardware(tmp_path):
    """A review's case: one unkeyable config swept over 6 hardware points was traced 6 times
    (each such point a group of its own). The points holding the very same object share one
    trace; their rows equal fresh launches; nothing is cached."""
    cfg = Cfg("t", 64)
    bws = [8, 16, 32, 64, 128, 256]
    res = sweep(_blocked, (1, 1), setup=_cfg_setup, args={"n": [4096], "cfg": [cfg]},
                hardware={"link.bytes_per_cycle": bws}, workers=1, cache=tmp_path, progress=False)
    assert res.stats["traces"] == 1 and res.stats["trace_groups"] == 1
    fresh = []
    for b in bws:
        ctx = kernbench.Context("default", overrides={"link.bytes_per_cycle": b})
        ctx.install_sfr("pe")
        fresh.append(ctx.launch(_blocked, (1, 1), *_cfg_setup(ctx, 4096, cfg), mode="timing").cycles)
    assert [r["cycles"] for r in res.rows] == fresh
    again = sweep(_blocked, (1, 1), setup=_cfg_setup, args={"n": [4096], "cfg": [cfg]},
                  hardware={"link.bytes_per_cycle": bws}, workers=1, cache=tmp_path, progress=False)
    assert again.stats["cached"] == 0


@dataclasses.dataclass(frozen=True)
class _SizedCfg:
    block: int

    def size(self):
        return self.block


def test_a_user_class_in_every_point_is_fingerprinted_once(monkeypatch):
    """A review's case: the class of a user-class argument was fingerprinted again at every
    point (1.35 s a point with a large package behind it: 200 points, 270 s)."""
    from kernbench.common import cache

    calls = []
    real = cache.code_fingerprint

    def counting(fn, strict=False):
        if fn is _SizedCfg:
            calls.append(strict)
        return real(fn, strict)

    monkeypatch.setattr(cache, "code_fingerprint", counting)
    res = sweep(_blocked, (1, 1), setup=lambda ctx, n, cfg: _cfg_setup(ctx, n, Cfg("", cfg.size())),
                args={"n": [4096], "cfg": [_SizedCfg(64)]}, hardware={"link.bytes_per_cycle": [8, 16, 32, 64]},
                workers=1, cache=False, progress=False)
    assert res.stats["traces"] == 1 and len(res.rows) == 4
    assert calls == [True]


class _Registry:
    """A callable whose __getattr__ raises KeyError for any name it lacks."""

    def __init__(self):
        self.table = {"block": 64}

    def __getattr__(self, name):
        return self.table[name]

    def __call__(self):
        return self.block


def _plus_one(x_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f32") + 1.0)


def test_a_callable_whose_getattr_raises_is_keyed_without_a_crash(tmp_path):
    """A review's case: KeyError('__qualname__') escaped from the key of such an argument."""
    res = sweep(_plus_one, (1, 1), setup=lambda ctx, n, extra=None: (ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n),
                args={"n": [64], "extra": [_Registry()]}, workers=1, cache=tmp_path, progress=False)
    assert res.rows[0]["error_type"] is None and res.rows[0]["cycles"] > 0


def _tune_setup(ctx, n, B):
    if os.path.exists(os.environ.get("KB_TEST_FAIL_FLAG", "/nonexistent")):
        raise OSError("device busy")
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n, B


def test_tune_times_a_default_equal_to_a_config_but_not_the_same_value(tmp_path, monkeypatch):
    """A review's cases: a default {"B": 64.0} took the row of the config {"B": 64} (== but not
    the same launch: a float block fails); and rows whose errors are not determined by the key
    (an OSError in the setup) were cached by tune."""
    t = tune(_blocked, [{"B": 64}, {"B": 16}], args={"n": 4096}, default={"B": 64.0}, grid=(1, 1),
             setup=_tune_setup, cache=False)
    assert t.default_cycles is None and t.table[-1]["config"] == {"B": 64.0} and len(t.table) == 3
    flag = tmp_path / "fail"
    monkeypatch.setenv("KB_TEST_FAIL_FLAG", str(flag))
    flag.write_text("")
    cache_dir = tmp_path / "c"
    t1 = tune(_blocked, [{"B": 64}, {"B": 16}], args={"n": 4096}, grid=(1, 1), setup=_tune_setup, cache=cache_dir)
    assert t1.best is None and {r["error_type"] for r in t1.table[:2]} == {"OSError"}
    flag.unlink()
    t2 = tune(_blocked, [{"B": 64}, {"B": 16}], args={"n": 4096}, grid=(1, 1), setup=_tune_setup, cache=cache_dir)
    assert not t2.from_cache and t2.best == {"B": 64}


# -- code with no file on disk: its lines and its file name ------------------------------------------
_CELL_V1 = '''
def kern(x_ptr, o_ptr, n, *, tl):
    x = tl.load(x_ptr, shape=(n,), dtype="f32")
    y = tl.load(x_ptr, shape=(n + 1,), dtype="f32")   # one element past the array
    tl.store(o_ptr, x)
'''
_CELL_V2 = _CELL_V1.replace('dtype="f32")\n    y', 'dtype="f32")\n\n    # a comment added in the cell\n    y')


def _cell(text: str, fname: str):
    ns: dict = {}
    exec(compile(text, fname, "exec"), ns)  # (as a notebook runs a cell: no file on disk)
    return ns["kern"]


def _n_setup(ctx, n):
    return ctx.empty((n,), "f32"), ctx.empty((n,), "f32"), n


def test_a_cells_lines_and_file_name_are_in_its_key(tmp_path):
    """A review's case: a comment line added in a notebook cell left the bytecode, and the key,
    as they were, so the cached error row named the old cell's file:line."""
    assert _CELL_V2 != _CELL_V1
    fname = str(tmp_path / "no_such_dir" / "cell_a.py")
    v1 = code_fingerprint(_cell(_CELL_V1, fname))
    assert code_fingerprint(_cell(_CELL_V1, fname)) == v1  # (the same cell run again: one key)
    assert code_fingerprint(_cell(_CELL_V2, fname)) != v1  # (lines moved)
    assert code_fingerprint(_cell(_CELL_V1, fname.replace("cell_a", "cell_b"))) != v1  # (another cell)
    # the same cell in a notebook restarted (ipykernel's folder is named by its process) and
    # one file spelt another way (python ./k.py): one key (a review: the cache never hit)
    assert code_fingerprint(_cell(_CELL_V1, str(tmp_path / "ipykernel_999" / "cell_a.py"))) == v1
    assert code_fingerprint(_cell(_CELL_V1, str(tmp_path / "no_such_dir" / "." / "cell_a.py"))) == v1
    rows = {}
    for text, name in ((_CELL_V1, "cell_a.py"), (_CELL_V2, "cell_b.py")):
        fn = _cell(text, str(tmp_path / "no_such_dir" / name))
        for cache in (tmp_path / "cache", False):
            rows[name, bool(cache)] = sweep(fn, (8, 1), setup=_n_setup, args={"n": [64]}, workers=1,
                                            cache=cache).rows[0]
    assert rows["cell_a.py", True]["error_where"].endswith("cell_a.py:4")
    assert rows["cell_b.py", False]["error_where"].endswith("cell_b.py:6")
    assert rows["cell_b.py", True] == rows["cell_b.py", False]


_CLASS_CELL = '''
import functools
class Meta(type):
    def __call__(cls, *a):
        return super().__call__(*a) {META}
class C(metaclass=Meta):
    ROWS = {ROWS}
    @property
    def p(self):
        return {PROP}
    @staticmethod
    def s():
        return {STATIC}
    @functools.cached_property
    def cp(self):
        return {CP}
    def _f(self, a, b):
        return a + b
    pm = functools.partialmethod(_f, {PM})
    class Inner:
        N = {INNER}
'''


def test_what_a_class_is_keyed_by_is_what_the_docs_say():
    """docs/sweeps.md said both that a class is keyed by its class attributes' values and that
    class constants and properties are not seen (a review). The code keys its constants by
    value, its properties' and methods' code; its nested classes, its metaclass and the function
    a cached_property or partialmethod holds it does not (listed among what the key cannot see)."""
    first = dict(META="", ROWS=1, PROP=1, STATIC=1, CP=1, PM=1, INNER=1)

    def key(**edit):
        ns: dict = {}
        exec(compile(_CLASS_CELL.format(**{**first, **edit}), "<cell>", "exec"), ns)
        return code_fingerprint(ns["C"])

    base = key()
    seen = {k: key(**{k: "2"}) != base for k in first if k != "META"}
    seen["META"] = key(META="or 1") != base
    assert seen == {"ROWS": True, "PROP": True, "STATIC": True, "CP": False, "PM": False, "INNER": False,
                    "META": False}


def test_a_debug_build_keys_its_rows_apart_from_a_release_build(monkeypatch):
    # (a review: the debug build served the release build's cached sweep rows, so its engine
    # checks never ran on them)
    import kernbench._core as core
    from kernbench.common import cache

    fingerprint = getattr(cache.kernbench_fingerprint, "__wrapped__", cache.kernbench_fingerprint)
    monkeypatch.setattr(core, "DEBUG_BUILD", False)
    release = fingerprint()
    monkeypatch.setattr(core, "DEBUG_BUILD", True)
    assert fingerprint() != release
    monkeypatch.setattr(core, "DEBUG_BUILD", False)
    assert fingerprint() == release


class _ExpKernel:
    """A kernel object whose repr does not show its size."""

    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return "Exp kernel"

    def __call__(self, x_ptr, o_ptr, *, tl):
        tl.store(o_ptr, tl.exp(tl.load(x_ptr, shape=(self.n,), dtype="f32")))


def _two_arrays(ctx):
    return ctx.empty((4096,), "f32"), ctx.empty((4096,), "f32")


def test_a_kernel_object_is_keyed_by_its_state_not_its_repr_alone(tmp_path):
    """A review: a callable object was keyed by its class and its repr when its class writes
    one, so Exp kernel of 4,096 elements was served the 64-element one's cached row (314 cycles
    for 692). Its attributes are in the key now: each size computes, and each is then cached."""
    fresh = [_fresh_cycles(_ExpKernel(n), lambda ctx, _: _two_arrays(ctx), None) for n in (64, 4096)]
    assert fresh[0] != fresh[1]
    for _ in range(2):
        got = [sweep(_ExpKernel(n), (1, 1), setup=_two_arrays, cache=tmp_path, workers=1, progress=False)
               for n in (64, 4096)]
        assert [r.rows[0]["cycles"] for r in got] == fresh
    assert [r.stats["cached"] for r in got] == [1, 1]


def test_a_process_whose_kernbench_files_changed_caches_nothing(tmp_path, monkeypatch):
    """A review: kernbench's fingerprint hashed its files when first asked, not when imported,
    so a process that imported kernbench, saw a file edited, then swept, cached the old code's
    rows under the edited files' key (a fresh process was served 1,842 cycles for 2,154), and one
    that swept, then reloaded an edited module, kept caching under the old key. The files as
    imported are kept (paths, mtimes, sizes, the compiled extensions too), and a sweep or tune
    in a process whose files differ now caches nothing. Here one file reads as changed since
    import: its recorded mtime is moved back a nanosecond."""
    from kernbench.common import cache

    (f, mtime, size), *rest = cache._AT_IMPORT
    assert any(p.endswith(cache._EXTENSIONS) for p, _, _ in rest)  # (the engine's binaries: keyed too)
    monkeypatch.setattr(cache, "_AT_IMPORT", ((f, mtime - 1, size), *rest))
    cache.kernbench_fingerprint.cache_clear()
    try:
        with pytest.raises(NotCanonical, match=rf"kernbench's own files changed since this process imported it \({f}\)"):
            cache.kernbench_fingerprint()
        kw = dict(setup=_two_arrays, cache=tmp_path, workers=1, progress=False)
        with pytest.warns(UserWarning, match="not cached: .*kernbench's own files changed"):
            res = sweep(_ExpKernel(64), (1, 1), **kw)
        assert res.stats["computed"] == 1 and not list(tmp_path.rglob("*.json"))
    finally:
        monkeypatch.undo()
        cache.kernbench_fingerprint.cache_clear()
    res = sweep(_ExpKernel(64), (1, 1), setup=_two_arrays, cache=tmp_path, workers=1, progress=False)
    assert res.stats["computed"] == 1 and list(tmp_path.rglob("*.json"))


# -- a cache breaker: a config object's attributes are in the key -----------------------------------
class _UserOpts:
    def __init__(self, reps):
        self.reps = reps


_OPTS = None  # (a global the test sets: a notebook's config object)


def test_a_config_object_read_by_the_code_is_keyed_by_its_attributes(tmp_path):
    """A breaker: a kernel reading ``OPTS.reps`` from a global SimpleNamespace (or a ChainMap, a
    DataFrame, an instance of a class of the user's), changed between two cached sweeps in one
    session (a notebook), was keyed by the object's class alone and served the first sweep's rows."""
    import types as _types

    import pandas as pd

    global _OPTS
    _OPTS = _types.SimpleNamespace(reps=1)
    cases = [(_OPTS, lambda o: o.reps, lambda o: setattr(o, "reps", 3)),
             (_UserOpts(1), lambda o: o.reps, lambda o: setattr(o, "reps", 3)),
             (collections.ChainMap({}, {"reps": 1}), lambda o: o["reps"], lambda o: o.maps[1].update(reps=3)),
             (pd.DataFrame({"reps": [1]}), lambda o: int(o["reps"].iloc[0]), lambda o: o.loc.__setitem__((0, "reps"), 3))]
    for i, (opts, read, change) in enumerate(cases):
        def k(x_ptr, o_ptr, n, *, tl, opts=opts if opts is not _OPTS else None, read=read):
            x = tl.load(x_ptr, shape=(n,), dtype="f16")
            for _ in range(read(_OPTS if opts is None else opts)):
                x = x + 1
            tl.store(o_ptr, x)

        def setup(ctx, n=64):
            return (ctx.empty((n,), "f16"), ctx.empty((n,), "f16"), n)

        kw = dict(grid=(1, 1), setup=setup, args={"n": [64, 128]}, hw={"n_cubes": 1, "pes_per_cube": 1},
                  workers=1, cache=tmp_path / str(i))
        key = code_fingerprint(k)
        one = sweep(k, **kw)
        change(opts)
        assert read(opts) == 3 and code_fingerprint(k) != key, type(opts)
        three = sweep(k, **kw)
        assert three.stats["cached"] == 0
        assert [r["cycles"] for r in three.rows] == [r["cycles"] for r in sweep(k, **{**kw, "cache": False}).rows]
        assert [r["cycles"] for r in three.rows] != [r["cycles"] for r in one.rows], (three.rows[0]["error"], i)
        assert sweep(k, **kw).stats["cached"] == 2  # (and cached again under the new key)
    one, two = pd.DataFrame({"a": [[1, 2]]}), pd.DataFrame({"a": [[1, 3]]})  # (cells pandas cannot hash)
    assert code_fingerprint(lambda t=one: t) != code_fingerprint(lambda t=two: t)

    log = logging.getLogger("kbo_library_object")

    def k2(n):
        log.debug("n=%d", n)
        return n

    key = code_fingerprint(k2)
    log.setLevel(logging.ERROR)  # (a library's object: by its class, as before)
    assert code_fingerprint(k2) == key


def test_a_hostile_value_breaker_s_key_cases(tmp_path):
    """A breaker of values whose dunders misbehave: a proxy whose ``__class__`` says int raised
    from inside the walk (``int.__int__`` of it); a DataFrame keyed by pandas' row hashes took
    32 for "32"; a masked array, a mapping proxy, an ``array.array`` were keyed by their data or
    class alone (a stale row served); an option whose repr raises aborted a cached sweep."""
    import array
    import copy
    import types as _types
    from unittest import mock

    import pandas as pd

    class Liar:  # (as a proxy: the class it stands for, not its own)
        @property
        def __class__(self):
            return int

    for v in (Liar(), mock.Mock(spec=int)):
        with pytest.raises(NotCanonical, match="says it is a"):
            canonical(v, strict=True)
        with pytest.raises(NotCanonical):
            code_fingerprint(lambda v=v: v)
    pairs = [
        (pd.DataFrame({"b": pd.Series([32, "a"], dtype=object)}), pd.DataFrame({"b": pd.Series(["32", "a"], dtype=object)})),
        (pd.DataFrame({1: [1.0]}), pd.DataFrame({"1": [1.0]})),
        (pd.DataFrame({"a": [0.0]}), pd.DataFrame({"a": [-0.0]})),
        (pd.Series([1], name=None), pd.Series([1], name="None")),
        (pd.Series([1], index=pd.Index([0], dtype=object)), pd.Series([1], index=pd.Index(["0"], dtype=object))),
        (np.ma.array(np.arange(4.0), mask=[0, 0, 0, 0]), np.ma.array(np.arange(4.0), mask=[0, 0, 1, 1])),
        (_types.MappingProxyType({"a": 1}), _types.MappingProxyType({"a": 2})),
        (array.array("i", [1, 2]), array.array("i", [1, 3])),
        (memoryview(b"ab"), memoryview(b"ac")),
    ]
    def fp(v):  # (the value as a closure's cell: what a kernel's code reads)
        return code_fingerprint(lambda: v)

    for a, b in pairs:
        assert fp(a) != fp(b), (a, b)
        try:
            same = copy.deepcopy(a)
        except TypeError:  # (a mapping proxy, a memoryview)
            same = a
        assert fp(a) == fp(same), a

    class Opaque:
        def __repr__(self):
            raise RuntimeError("no repr")

    def k(x_ptr, n, *, tl):
        tl.store(x_ptr, tl.load(x_ptr, shape=(n,), dtype="f16") + 1)

    def setup(ctx, n=64):
        return (ctx.empty((n,), "f16"), n)

    kw = dict(grid=(1, 1), setup=setup, args={"n": [64, 128]}, hw={"n_cubes": 1, "pes_per_cube": 1},
              workers=1, cache=tmp_path / "c")
    for extra in (dict(options={"max_cycles": Opaque()}), dict(hardware={"link.bytes_per_cycle": [Opaque()]}),
                  dict(options={"mode": pd.Series(["timing", "functional"])})):
        res = sweep(k, **kw, **extra)  # (rows with errors, as without the cache; none cached)
        assert all(r["error"] for r in res.rows) and res.stats["cached"] == 0, res.rows
        assert [r["error"] for r in res.rows] == [r["error"] for r in sweep(k, **{**kw, "cache": False}, **extra).rows]


class _Slotted:
    __slots__ = ("block",)

    def __init__(self, block):
        self.block = block


class _TaggedDict(dict):
    pass


def test_a_breaker_of_the_state_keys(tmp_path):
    """A breaker of the keys by state: a categorical's order, times with a zone, a nullable
    column's 2**53 + 1 collided; a SimpleNamespace holding a set was keyed with its repr, which
    differs from process to process (no hit ever); a slotted class of the user's and a dict
    subclass's attributes were keyed by class; a wrapt-decorated helper made its target uncached."""
    import subprocess
    import sys as _sys

    import pandas as pd

    def fp(v):
        return code_fingerprint(lambda v=v: v)

    differ = [
        (pd.Series(pd.Categorical(["s", "b"], categories=["s", "b"])),
         pd.Series(pd.Categorical(["s", "b"], categories=["b", "s"]))),
        (pd.Series(pd.Categorical(["s"], categories=["s"], ordered=True)),
         pd.Series(pd.Categorical(["s"], categories=["s"], ordered=False))),
        (pd.Series(pd.to_datetime(["2024-03-01"]).tz_localize("Europe/Paris")),
         pd.Series(pd.to_datetime(["2024-03-30"]).tz_localize("Europe/Paris"))),
        (pd.Series([2**53, None], dtype="Int64"), pd.Series([2**53 + 1, None], dtype="Int64")),
        (pd.Series([1], index=pd.MultiIndex.from_tuples([("a", 1)])),
         pd.Series([1], index=pd.MultiIndex.from_tuples([("a", 2)]))),
        (pd.Series(["x", None], dtype="string"), pd.Series(["y", None], dtype="string")),
        (_Slotted(64), _Slotted(128)),
    ]
    for a, b in differ:
        assert fp(a) != fp(b), (a, b)
    with pytest.raises(NotCanonical, match="no faithful key"):
        fp(pd.Series(pd.interval_range(0, 2)))
    d1, d2 = _TaggedDict(a=1), _TaggedDict(a=1)
    d1.name, d2.name = "fast", "slow"
    assert canonical(d1) != canonical(d2) and "again" not in json.dumps(canonical(d1))

    script = ("import types, json\nfrom kernbench.common.cache import code_fingerprint\n"
              "CFG = types.SimpleNamespace(n=64, units={'gemm', 'vector', 'dma', 'sfr', 'link', 'sram'})\n"
              "def k():\n    return CFG.n\nprint(code_fingerprint(k, values_only=True))\n")
    (tmp_path / "kbo_ns.py").write_text(script)
    keys = {subprocess.run([_sys.executable, str(tmp_path / "kbo_ns.py")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}, cwd=tmp_path, check=True).stdout
            for seed in (1, 2, 3)}
    assert len(keys) == 1, keys

    wrapt = pytest.importorskip("wrapt")

    @wrapt.decorator
    def logged(wrapped, instance, args, kwargs):
        return wrapped(*args, **kwargs)

    @logged
    def size(n):
        return 2 * n

    assert code_fingerprint(lambda: size(1))  # (keyed, as before: not NotCanonical)
