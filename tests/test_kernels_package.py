"""kernbench.kernels is a regular package exporting the shipped kernels.

`from kernbench.kernels import attention_mesh_kv_kernel, attention_mesh_mlo_kernel` works, gives
the very functions of kernbench.kernels.attention (which stays importable: tests and the diag
harness use it), and the package is one setuptools finds, so a non-editable install ships it.
"""
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_are_exported_from_the_package():
    from kernbench.kernels import attention_mesh_kv_kernel, attention_mesh_mlo_kernel

    attention = importlib.import_module("kernbench.kernels.attention")
    assert attention_mesh_kv_kernel is attention.attention_mesh_kv_kernel
    assert attention_mesh_mlo_kernel is attention.attention_mesh_mlo_kernel
    pkg = importlib.import_module("kernbench.kernels")
    assert sorted(pkg.__all__) == ["attention_decode_two_level_kernel", "attention_mesh_kv_kernel",
                                   "attention_mesh_mlo_kernel"]
    assert pkg.attention_decode_two_level_kernel is attention.attention_decode_two_level_kernel
    assert pkg.__doc__ and "attention_mesh_kv_kernel" in pkg.__doc__


def test_kernels_is_a_regular_package_setuptools_finds():
    # Without kernbench/kernels/__init__.py it is a namespace package: importable from a
    # checkout, but setuptools.find_packages (pyproject: packages.find include "kernbench*")
    # skips it, so a wheel would ship kernbench.diag without the kernels it imports.
    pkg = importlib.import_module("kernbench.kernels")
    assert pkg.__file__ is not None and Path(pkg.__file__).name == "__init__.py"
    setuptools = pytest.importorskip("setuptools")
    found = setuptools.find_packages(where=str(ROOT), include=["kernbench*"])
    assert "kernbench.kernels" in found, f"expected kernbench.kernels among {sorted(found)}"


def test_attention_kernels_refuse_heads_that_gqa_cannot_group():
    # h_q = 6 over h_kv = 4: heads 4 and 5 were never written (issue: silent zeros)
    import numpy as np
    import pytest

    import kernbench
    from kernbench import KernelError
    from kernbench.kernels import attention_mesh_kv_kernel, attention_mesh_mlo_kernel

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    ctx.install_sfr("pe")
    q = ctx.replicate(np.zeros((4, 6 * 8), np.float16))
    kv = ctx.replicate(np.zeros((4, 4 * 8), np.float16))
    o = ctx.empty((4, 6 * 8), "f16")
    for kernel in (attention_mesh_kv_kernel, attention_mesh_mlo_kernel):
        with pytest.raises(KernelError, match=r"h_q = 6 is not a multiple of h_kv = 4"):
            ctx.launch(kernel, (2, 1), q, kv, kv, o, 4, 4, 6, 4, 8, 2, mode="timing")
    with pytest.raises(KernelError, match=r"d_head must be a positive int, got 0"):
        ctx.launch(attention_mesh_kv_kernel, (2, 1), q, kv, kv, o, 4, 4, 6, 3, 0, 2, mode="timing")


def test_attention_kernels_take_numpy_integer_sizes():
    # Sizes often come from shape arithmetic (np.int64): each kernel runs as with Python ints;
    # bools and floats are still refused by name.
    import numpy as np
    import pytest

    import kernbench
    from kernbench import KernelError
    from kernbench.kernels import (attention_decode_two_level_kernel, attention_mesh_kv_kernel,
                                   attention_mesh_mlo_kernel)

    def launch(kernel, scope, grid, sizes):
        ctx = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 2})
        ctx.install_sfr(scope)
        q = ctx.replicate(np.zeros((4, 4, 8), np.float16))
        kv = ctx.replicate(np.zeros((4, 2, 8), np.float16))
        o = ctx.empty((4, 4, 8), "f16")
        return ctx.launch(kernel, grid, q, kv, kv, o, *sizes, mode="timing")

    cases = [(attention_mesh_kv_kernel, "pe", (2, 1), (4, 4, 4, 2, 8, 2)),
             (attention_mesh_mlo_kernel, "pe", (2, 1), (1, 4, 4, 2, 8, 2)),
             (attention_decode_two_level_kernel, "two_level", (2, 2), (1, 4, 4, 2, 8, 2, 2))]
    for kernel, scope, grid, sizes in cases:
        want = launch(kernel, scope, grid, sizes)
        got = launch(kernel, scope, grid, tuple(np.int64(s) for s in sizes))
        assert got.cycles == want.cycles and got.program.n_commands == want.program.n_commands
        for bad in (True, 4.0):
            with pytest.raises(KernelError, match=r"must be a positive int"):
                launch(kernel, scope, grid, (bad,) + sizes[1:])
    # rank_axis (after the sizes of the two ring kernels): a numpy int is an axis; a bool or a
    # float equal to 0 or 1 is refused by the kernel's own check (a review: tl.num_programs's
    # refusal, deeper, named the kernel's argument as an axis of num_programs)
    for kernel, scope, grid, sizes in cases[:2]:
        assert launch(kernel, scope, grid, sizes + (np.int64(0),)).cycles == launch(
            kernel, scope, grid, sizes + (0,)).cycles
        for bad in (False, True, np.False_, 0.0, 1.0):
            with pytest.raises(KernelError, match=r"rank_axis must be 0 \(PEs of a cube\) or 1 \(cubes\), got"):
                launch(kernel, scope, grid, sizes + (bad,))


def test_attention_kernels_refuse_more_blocks_than_a_trace_can_plan():
    # A review's case: S_kv_per_rank = 10**9 with 8-key blocks made the decode kernel build a
    # list of 2.5e8 folds before its first load (whose bounds check would have named the too
    # small arrays): a MemoryError with no message, or the OOM killer. Past 2**22 blocks per rank
    # each kernel now refuses at its first line; within it, the first load's check speaks.
    import numpy as np
    import pytest

    import kernbench
    from kernbench import KernelError
    from kernbench.kernels import (attention_decode_two_level_kernel, attention_mesh_kv_kernel,
                                   attention_mesh_mlo_kernel)

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    q, kv = ctx.replicate(np.zeros((4, 4, 8), np.float16)), ctx.replicate(np.zeros((4, 2, 8), np.float16))
    o = ctx.empty((4, 4, 8), "f16")
    many = r"make [\d,]+ K/V blocks \(over the h_kv heads\) per rank, more than the 4,194,304"
    ctx.install_sfr("pe")
    with pytest.raises(KernelError, match=many):
        ctx.launch(attention_mesh_mlo_kernel, (2, 1), q, kv, kv, o, 1, 10**9, 4, 2, 8, 2, 0, 8, mode="timing")
    with pytest.raises(KernelError, match=r"make [\d,]+ query blocks per rank"):
        ctx.launch(attention_mesh_kv_kernel, (2, 1), q, kv, kv, o, 10**9, 4, 4, 2, 8, 2, 0, 1, mode="timing")
    with pytest.raises(KernelError, match="load"):  # within the bound: the first load's own check
        ctx.launch(attention_mesh_mlo_kernel, (2, 1), q, kv, kv, o, 1, 10**9, 4, 2, 8, 2, mode="timing")
    ctx.install_sfr(scope="two_level")
    with pytest.raises(KernelError, match=many):
        ctx.launch(attention_decode_two_level_kernel, (2, 1), q, kv, kv, o, 1, 10**9, 4, 2, 8, 2, 1, 8,
                   mode="timing")
