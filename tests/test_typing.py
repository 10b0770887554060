"""What a type checker sees of a kernel: kernbench ships its annotations (``py.typed``), so mypy
knows that ``tl``'s calls and every tensor operator return a TensorHandle, that ``tl.range``
loops over ints, and which calls and methods do not exist (docs/language.md, the opening
section). Before, every value after a kernel's first ``x + y`` was ``Any`` (a review with mypy
and pyright), and without the marker mypy read none of it.
"""
import os
import re
import sys

import pytest

import kernbench

api = pytest.importorskip("mypy.api")  # (in the test extra: CI always has it)

KERNEL = '''\
import numpy as np
from kernbench.language import TL, TensorHandle

def k(x_ptr: int, o_ptr: int, n: int, *, tl: TL) -> None:
    x = tl.load(x_ptr, shape=(n,), dtype=np.float32, pinned=np.True_)
    reveal_type(x)
    reveal_type(x + 1.0)
    reveal_type(2 * x)
    reveal_type(np.float32(2) * x)
    reveal_type(x < 3)
    reveal_type(x == x)
    reveal_type(-x)
    reveal_type(x @ x)
    reveal_type(x.T)
    reveal_type(x.to(tl.f16))
    reveal_type(x[:, None])
    reveal_type(tl.exp(x))
    reveal_type(tl.dot(x, x, out_dtype=np.float32))
    reveal_type(tl.sum(x, axis=0, dtype="f32"))
    reveal_type(tl.cast(x, tl.f16, saturate=1))
    reveal_type(tl.zeros((n,), np.float32))
    reveal_type(tl.math.exp2(x))
    reveal_type(tl.program_id(0))
    for i in tl.range(0, n, np.int64(4), replay_last=np.True_):
        reveal_type(i)
    for j in tl.static_range(0, n):
        reveal_type(j)
    for r in reversed(tl.range(0, n)):
        reveal_type(r)
    reveal_type(x.shape[0])
    h = tl.cast(x, tl.float16, "rtne")  # (Triton's rounding in saturate's place: it runs)
    y: TensorHandle = np.array(2.0) * x  # (a 0-d array on the left: numpy's stubs said ndarray)
    tl.store(o_ptr, h + y)
'''

WRONG = '''\
from kernbench.language import TL

def k(x_ptr: int, o_ptr: int, *, tl: TL) -> None:
    x = tl.load(x_ptr, shape=(4,))
    a = (x + x).too(tl.f16)
    b = tl.lod(x_ptr, shape=(4,))
    tl.store(o_ptr, 3.0)
'''


@pytest.fixture(scope="module")
def mypy_lines(tmp_path_factory) -> dict:
    """mypy's lines for KERNEL and WRONG as a user's files (one run: mypy reads numpy's stubs
    each time), by file name; kernbench read as a user's checker reads it (its own modules'
    findings silenced, as for any installed package)."""
    d = tmp_path_factory.mktemp("typed")
    for name, text in (("good.py", KERNEL), ("wrong.py", WRONG)):
        (d / name).write_text(text)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(kernbench.__file__)))
    if "site-packages" not in root:  # (a source checkout or editable install: point mypy at it)
        env["MYPYPATH"] = root
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        out, err, _ = api.run([str(d / "good.py"), str(d / "wrong.py"), "--follow-imports=silent",
                               "--no-incremental", "--cache-dir", os.devnull, "--python-version",
                               f"{sys.version_info[0]}.{sys.version_info[1]}"])
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert not err, err
    lines = out.splitlines()
    return {name: [ln for ln in lines if f"{name}:" in ln] for name in ("good.py", "wrong.py")}


def test_a_kernels_values_are_tensor_handles_to_a_type_checker(mypy_lines):
    lines = mypy_lines["good.py"]
    # (mypy names int "builtins.int" or "int" by version)
    revealed = [m.group(1).removeprefix("builtins.")
                for m in (re.search(r'Revealed type is "([^"]+)"', ln) for ln in lines) if m]
    handle = "kernbench.common.pe_commands.TensorHandle"
    # every tensor value and operator result, then tl.math, program_id, the three loops' ints
    # and a shape's element
    assert revealed == [handle] * 16 + [handle, "int", "int", "int", "int", "int"], lines
    # numpy dtypes, a numpy bool flag, saturate=1 and a numpy int step are accepted (the docs
    # say so): no error beside the notes
    assert not [ln for ln in lines if ": error:" in ln], lines


def test_a_type_checker_finds_a_misspelt_call_and_a_number_stored(mypy_lines):
    lines = "\n".join(mypy_lines["wrong.py"])
    # an operator's result is a TensorHandle, so a method it lacks is found after x + x too
    assert re.search(r'wrong\.py:5: error: "TensorHandle" has no attribute "too"', lines), lines
    assert re.search(r'wrong\.py:6: error: "TL" has no attribute "lod"', lines), lines
    assert re.search(r'wrong\.py:7: error: Argument 2 to "store" of "TL" has incompatible type "float"',
                     lines), lines
