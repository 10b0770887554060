"""Shape and dtype mistakes in tl calls: a KernelError naming the PE (pe, cube), the kernel's
file:line and what was expected, raised before anything is emitted."""
import os
import sys

import numpy as np
import pytest

import kernbench
from kernbench import KernelError
from kernbench.common.pe_commands import TensorHandle

HW = {"n_cubes": 2, "pes_per_cube": 4}
FILE = os.path.basename(__file__)


def fails_on(body, pe=(2, 1), mode="functional", shape=(64, 64)):
    """Run ``body(tl, tile, mark)`` where only PE ``pe`` misbehaves; return (error, marked line)."""
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.replicate(np.ones(shape, np.float16))
    lines = []

    def mark():
        lines.append(sys._getframe(1).f_lineno)

    def kernel(x_ptr, *, tl):
        t = tl.load(x_ptr, shape=shape, dtype="f16")
        if (tl.program_id(0), tl.program_id(1)) == pe:
            body(tl, t, mark)

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (4, 2), x, mode=mode)
    e = ei.value
    assert e.pe == pe
    # the failing call is in body, which the kernel called: the error names both lines
    call = kernel.__code__.co_firstlineno + 3
    assert str(e).startswith(f"PE {pe} at {FILE}:{lines[-1]} (in "), str(e)
    assert f", called from kernel at {FILE}:{call}): " in str(e), str(e)
    assert e.where.endswith(f"{FILE}:{lines[-1]}")
    return str(e)


def test_dot_inner_dimensions():
    def body(tl, t, mark):
        a = tl.reshape(t, (128, 32))
        mark(); tl.dot(a, t)  # noqa: E702

    msg = fails_on(body)
    assert "dot shape mismatch: (128,32) x (64,64); expected b.shape[0] == a.shape[1] = 32, got 64" in msg


def test_dot_needs_2d():
    def body(tl, t, mark):
        v = tl.reshape(t, (4096,))
        mark(); tl.dot(v, t)  # noqa: E702

    assert "dot takes 2-D tensors, got (4096,) x (64,64)" in fails_on(body)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum"])
def test_broadcast_mismatch(op):
    def body(tl, t, mark):
        u = tl.sum(tl.reshape(t, (32, 128)), axis=0)  # (1, 128)
        mark(); getattr(tl, op)(t, u)  # noqa: E702

    msg = fails_on(body)
    assert f"{op}: shapes (64,64) and (1,128) do not broadcast" in msg


def test_operator_broadcast_mismatch_names_the_operator_line():
    def body(tl, t, mark):
        u = tl.reshape(t, (32, 128))
        mark(); t + u  # noqa: E702

    assert "add: shapes (64,64) and (32,128) do not broadcast" in fails_on(body)


def test_where_broadcast_mismatch():
    def body(tl, t, mark):
        u = tl.reshape(t, (32, 128))
        mark(); tl.where(t > 0.0, t, u)  # noqa: E702

    assert "where: shapes (64,64) and (32,128) do not broadcast" in fails_on(body)


@pytest.mark.parametrize("body", [
    # The error names the innermost frame outside kernbench: here, each lambda's own line.
    lambda tl, t, mark: (mark(), tl.zeros((4, 4), "f64")),
    lambda tl, t, mark: (mark(), tl.cast(t, "int8")),
    lambda tl, t, mark: (mark(), tl.full((2,), 1.0, dtype="float64")),
])
def test_unknown_dtype(body):
    msg = fails_on(body)
    assert "unknown dtype" in msg and "expected one of f16, bf16, f32, fp8e4m3, fp8e5m2" in msg


def test_unknown_dtype_in_load():
    def body(tl, t, mark):
        mark(); tl.load(1 << 28, shape=(4,), dtype="float64")  # noqa: E702

    assert "unknown dtype 'float64'" in fails_on(body)


def test_reduction_axis_out_of_range():
    def body(tl, t, mark):
        mark(); tl.max(t, axis=2)  # noqa: E702

    assert "max: axis 2 is out of range for a 2-D tensor" in fails_on(body)


def test_bad_shapes():
    def body(tl, t, mark):
        mark(); tl.zeros((4, -1))  # noqa: E702

    assert "zeros shape must be a non-empty tuple of positive ints, got (4, -1)" in fails_on(body)


@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_more_axes_than_a_tensor_has(mode):
    """A review's case: a 65-axis tl.full, or 64 None keys on a 1-D tensor, leaked numpy's
    "maximum supported dimension" ValueError (no PE, no line) in functional mode while timing
    mode ran it. Both modes now refuse past 32 axes (numpy 1.x's limit) at the kernel's line."""
    def full(tl, t, mark):
        mark(); tl.full((1,) * 33, 7, "int32")  # noqa: E702

    def index(tl, t, mark):
        mark(); tl.full((1,), 7, "int32")[(None,) * 32]  # noqa: E702

    assert "full shape has 33 axes: a tensor has at most 32" in fails_on(full, mode=mode)
    assert "gives a view that has 33 axes: a tensor has at most 32" in fails_on(index, mode=mode)
    fails_on(lambda tl, t, mark: (mark(), tl.full((1,) * 32, 7, "int32")[None] + 1), mode=mode)


def test_non_tensor_operands():
    def body(tl, t, mark):
        mark(); tl.exp(np.ones(4))  # noqa: E702

    assert "exp operand must be a tensor (a TensorHandle from a tl call), got ndarray" in fails_on(body)

    def body2(tl, t, mark):
        mark(); tl.add(1.0, 2.0)  # noqa: E702

    assert "add needs at least one tensor operand" in fails_on(body2)

    def body3(tl, t, mark):
        mark(); t * "2"  # noqa: E702

    assert "mul: expected a tensor or a Python number, got str" in fails_on(body3)


def test_masks_are_not_float_matrices():
    # A mask in arithmetic is 0/1 (docs/language.md, "Promotion"), but tl.dot takes floats only.
    def body(tl, t, mark):
        m = t > 0.0
        mark(); tl.dot(m, t)  # noqa: E702

    assert "dot: a is a bool mask; dot takes float tensors (cast first" in fails_on(body)

    def body2(tl, t, mark):
        i = tl.cast(t, "int32")
        mark(); tl.dot(t, i)  # noqa: E702

    # (the cast it suggests is exact for the integers an int32 matmul holds, up to 2**24: f32, not
    # f16, which rounds past 2048; a review of integer-matmul bug reports)
    assert ("dot: b is an int32 tensor; dot takes float tensors (cast first: tl.cast(x, 'f32'), "
            "exact for integers up to 2**24") in fails_on(body2)


def test_handle_from_nowhere():
    def body(tl, t, mark):
        mark(); tl.exp(TensorHandle(id=99, shape=(4,)))  # noqa: E702

    assert "TensorHandle with id 99, which no tl call on this PE made" in fails_on(body)


def test_program_id_axis():
    def body(tl, t, mark):
        mark(); tl.program_id(axis=2)  # noqa: E702

    assert "program_id: axis must be 0 (PE) or 1 (cube), got 2" in fails_on(body)


def test_view_with_another_element_count_fails_in_functional_mode():
    def body(tl, t, mark):
        v = TensorHandle(id=t.id, shape=(64, 128), dtype=t.dtype)
        mark(); tl.exp(v)  # noqa: E702

    msg = fails_on(body, mode="functional")
    assert ("view of tensor 0 with shape (64,128) (8192 elements), but its buffer is (64,64) "
            "(4096 elements)") in msg
    assert "timing mode accepts it" in msg


def test_view_with_another_element_count_is_costed_in_timing_mode():
    # Cost-model kernels pretend a tile is bigger on purpose: timing mode takes the view's shape.
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.empty((64, 64), "f16")

    def kernel(x_ptr, *, tl):
        t = tl.load(x_ptr, shape=(64, 64))
        tl.exp(TensorHandle(id=t.id, shape=(64, 128), dtype=t.dtype))

    r = ctx.launch(kernel, (1, 1), x, mode="timing")
    assert r.program.commands["n"][1] == 64 * 128
    # load 8192 B: 16 bursts x 2 + 150 = 182; exp: ceil(8192/64) * 4 + 8 = 520 -> 702
    assert r.cycles == 182 + 520
