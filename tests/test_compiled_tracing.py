"""The tracing layer runs compiled (setup.py compiles its plain-Python modules with Cython); what
it traces is the same, so the rest of the suite is the exactness check."""
import os

import numpy as np
import pytest

import kernbench
import kernbench.language as language
from kernbench.language import semantic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PURE = os.environ.get("KERNBENCH_PURE_PYTHON", "0") not in ("", "0", "false", "False")


def test_setup_reads_the_packages_list():
    path = os.path.join(ROOT, "setup.py")
    if not os.path.exists(path):
        pytest.skip("no setup.py next to the tests")
    ns: dict = {}
    exec(open(os.path.join(ROOT, "kernbench", "language", "_compiled.py")).read(), ns)
    assert ns["TRACING_MODULES"] == language.TRACING_MODULES
    assert 'exec(_f.read(), _ns)' in open(path).read()  # setup.py takes the list from that file


@pytest.mark.skipif(PURE, reason="built with KERNBENCH_PURE_PYTHON=1")
def test_the_installed_tracing_layer_is_compiled():
    assert all(language.compiled_tracing().values()), language.compiled_tracing()


def test_the_frame_walk_finds_the_innermost_frame_outside_the_given_files():
    """kernbench.language._caller.kernel_frame, the C walk behind semantic.site_frame (compiled
    or not: as plain Python the language's own frames are walked past like any in the set)."""
    import sys

    from kernbench.language._caller import frame_code, frame_lasti, kernel_frame

    here = sys._getframe()
    assert semantic.site_frame() is here  # (the language's frames, if any, walked past)

    def inner():
        return kernel_frame({__file__}), sys._getframe()

    got, f = inner()
    while f.f_code.co_filename == __file__ and f.f_back is not None:
        f = f.f_back
    assert got is f and got.f_code.co_filename != __file__
    stack, f = set(), here
    while f is not None:
        stack.add(f.f_code.co_filename)
        f = f.f_back
    assert kernel_frame(stack).f_back is None  # every frame in the set: the outermost
    with pytest.raises(TypeError):
        kernel_frame(frozenset(stack))  # (a set, as semantic keeps them)
    def probe(f):  # (f, the caller's frame, paused at this call)
        return frame_code(f) is f.f_code, frame_lasti(f) == f.f_lasti

    assert probe(here) == (True, True)
    fake = type("F", (), {"f_code": "c", "f_lasti": 7})()  # not a frame: read by attribute
    assert (frame_code(fake), frame_lasti(fake)) == ("c", 7)


@pytest.mark.skipif(PURE, reason="built with KERNBENCH_PURE_PYTHON=1")
def test_a_source_newer_than_its_compiled_module_warns(monkeypatch):
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(language.__file__)))
    if not os.path.exists(os.path.join(os.path.dirname(pkg), "setup.py")):
        pytest.skip("an installed package: its files' times are the install's (not checked)")
    real = os.path.getmtime
    monkeypatch.setattr(os.path, "getmtime", lambda p: real(p) + (1e6 if p.endswith(".py") else 0))
    with pytest.warns(RuntimeWarning, match=r"builder\.py, .* are newer than the compiled modules"):
        language._warn_stale()


def test_an_installed_package_is_not_checked(monkeypatch, tmp_path):
    """In site-packages the .py files may be newer than the compiled ones (the wheel's order):
    no warning there, only in a source checkout."""
    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: False if p.endswith("setup.py") else real(p))
    monkeypatch.setattr(os.path, "getmtime", lambda p: 1e12 if p.endswith(".py") else 0.0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        language._warn_stale()


def test_kernel_lines_through_operators_helpers_and_loops():
    """Compiled or not, every command names the kernel line of its tl call (the frame walk)."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.ones((8, 8), np.float32))
    here = __file__

    def kernel(x, *, tl):
        t = tl.load(x, shape=(8, 8))  # line +1
        for _ in tl.range(6):
            t = t * 2.0  # line +3: TensorHandle.__mul__ -> tl.mul
        tl.store(x, tl.exp(t))  # line +4: exp, then store

    first = kernel.__code__.co_firstlineno
    r = ctx.launch(kernel, (1, 1), x, mode="timing")
    got = [r.source(i) for i in range(r.program.n_commands)]
    want = ([f"{here}:{first + 1}"] + [f"{here}:{first + 3}"] * 6 + [f"{here}:{first + 4}"] * 2)
    assert got == want


def test_the_sdist_carries_every_compiled_source():
    """Every .pyx and .pxd of the package matches pyproject.toml's package-data, so the sdist
    ships what setup.py compiles (CI's sdist build once lacked kernbench/language/_handles.pyx)."""
    import fnmatch
    import tomllib

    path = os.path.join(ROOT, "pyproject.toml")
    if not os.path.exists(path):
        pytest.skip("no pyproject.toml next to the tests")
    with open(path, "rb") as f:
        data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    found = 0
    for dirpath, _, files in os.walk(os.path.join(ROOT, "kernbench")):
        for name in files:
            if name.endswith((".pyx", ".pxd")):
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                package = os.path.dirname(rel).replace(os.sep, ".")
                assert any(fnmatch.fnmatch(name, p) for p in data.get(package, [])), rel
                found += 1
    assert found >= 14  # the engine's and the tracing layer's
