"""What importing kernbench loads: ml_dtypes (bf16 and fp8) only when a launch needs one of
its dtypes.

Importing ml_dtypes registers its ufunc loops with numpy, about 0.85 s of CPU and most of
``import kernbench`` (docs/benchmarks.md), so ``kernbench.language.semantic.NP_DTYPES`` loads it
at the first lookup of bf16 or an fp8. Each check runs in a fresh interpreter: this test
process has imported ml_dtypes long ago.
"""
import subprocess
import sys
import tempfile
import textwrap

import pytest

from kernbench.language.semantic import ITEMSIZE, NP_DTYPES, STORAGE_DTYPES


def _run(code: str) -> str:
    # (run from the temporary folder, not the checkout: Python would import its source tree)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=300, cwd=tempfile.gettempdir())
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_command_line_and_the_f16_panels_do_not_import_ml_dtypes():
    out = _run("""
        import sys
        import kernbench, kernbench.cli, kernbench.diag
        from kernbench.diag import run_panels
        runs = run_panels(shape="small") + run_panels(shape="llama70b", context=4096)
        assert all(r.passed for r in runs) and len(runs) == 8
        print("ml_dtypes" in sys.modules)
    """)
    assert out == "False"


@pytest.mark.parametrize("dtype", ["bf16", "fp8e4m3", "fp8e5m2"])
def test_a_launch_of_an_ml_dtype_loads_it_and_computes_the_same(dtype):
    # A functional launch that loads and stores ``dtype`` in a fresh interpreter: its bytes
    # are those of numpy's own conversion of the values (which imports ml_dtypes here).
    out = _run(f"""
        import sys
        import numpy as np
        import kernbench
        assert "ml_dtypes" not in sys.modules
        def k(x, y, *, tl):
            tl.store(y, tl.load(x, shape=(4, 8)) * 2.0)
        ctx = kernbench.Context("default")
        v = np.linspace(-3, 3, 32).reshape(4, 8)
        x = ctx.replicate(v, dtype="{dtype}")
        y = ctx.empty((4, 8), "{dtype}")
        ctx.launch(k, (1, 1), x, y)
        import ml_dtypes
        nd = {{"bf16": ml_dtypes.bfloat16, "fp8e4m3": ml_dtypes.float8_e4m3fn,
               "fp8e5m2": ml_dtypes.float8_e5m2}}["{dtype}"]
        want = (v.astype(nd).astype(np.float32) * 2).astype(nd)
        got = ctx.read(y, 0)
        print(got.dtype == np.dtype(nd), got.tobytes() == want.tobytes())
    """)
    assert out == "True True"


def test_the_mapping_holds_every_storage_dtype_and_the_item_sizes_agree():
    assert set(STORAGE_DTYPES) | {"bool"} == set(NP_DTYPES) == set(ITEMSIZE)
    assert len(NP_DTYPES) == len(ITEMSIZE)
    assert {k: v.itemsize for k, v in NP_DTYPES.items()} == ITEMSIZE
    assert "bf16" in NP_DTYPES and "bfloat16" not in NP_DTYPES and 3 not in NP_DTYPES
    with pytest.raises(KeyError):
        NP_DTYPES["bfloat16"]  # (a spelling: dtype_name gives the canonical name)


def test_the_mapping_does_what_the_dict_did():
    """A review's cases: numpy dtypes are not names (np.dtype("int32") == "int32"), and copy,
    | and pickling (every protocol) give the dict of the same dtypes."""
    import pickle

    import numpy as np

    assert np.dtype("int32") not in NP_DTYPES and np.dtype(bool) not in NP_DTYPES
    want = {k: NP_DTYPES[k] for k in ITEMSIZE}
    assert NP_DTYPES.copy() == want and type(NP_DTYPES.copy()) is dict
    assert NP_DTYPES | {"x": 1} == {**want, "x": 1} and {"f16": 0} | NP_DTYPES == want
    assert NP_DTYPES | NP_DTYPES == want  # (another Mapping, not a dict)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(NP_DTYPES, protocol)) == want


def test_a_saturating_f16_cast_does_not_import_ml_dtypes():
    out = _run("""
        import sys
        import numpy as np
        import kernbench
        def k(x, y, *, tl):
            tl.store(y, tl.cast(tl.load(x, shape=(4,)) * 1e6, "f16", saturate=True))
        ctx = kernbench.Context("default")
        x, y = ctx.replicate(np.ones(4, np.float32)), ctx.empty((4,), "f16")
        ctx.launch(k, (1, 1), x, y)
        print(ctx.read(y, 0).tolist(), "ml_dtypes" in sys.modules)
    """)
    assert out == "[65504.0, 65504.0, 65504.0, 65504.0] False"
