"""Public bug reports of Triton, numpy and ml_dtypes rebuilt as kernels (a review's cases, each a
kind): kernbench is right or refuses, never silently wrong.

- fp8e4m3 has no infinity (tinygrad#18274; softmax NaN from -inf masks, vllm-fork#682): a Python
  number an fp8e4m3 operand cannot hold is refused, where it became NaN silently.
- Triton's tl.dot keywords (triton#1800, #5895: TF32 by default on NVIDIA): taken where they ask
  for what kernbench computes (exact f32 products), refused otherwise.
- ml_dtypes scalars were numbers on the left of an operator and refused on the right.
"""
import ml_dtypes
import numpy as np
import pytest

import kernbench
from kernbench import KernelError

HW = {"n_cubes": 1, "pes_per_cube": 2}
E4M3 = ml_dtypes.float8_e4m3fn


def run(body, x, dtype=None):
    """``body(tl, tile)`` on PE (0, 0) with ``x`` loaded whole: its result's data."""
    ctx = kernbench.Context("default", overrides=HW)
    p = ctx.put(x, pe=(0, 0), dtype=dtype)
    out = {}

    def kernel(ptr, *, tl):
        if tl.program_id(0) == 0:
            out["r"] = body(tl, ptr, tl.load(ptr, shape=x.shape))

    ctx.launch(kernel, (1, 1), p, mode="functional")
    r = out["r"]
    return tuple(h.data for h in r) if isinstance(r, tuple) else r.data


def refused(body, x, dtype=None) -> str:
    with pytest.raises(KernelError) as ei:
        run(body, x, dtype)
    return str(ei.value)


X8 = np.array([1, 2, 3, 4], E4M3)


@pytest.mark.parametrize("body", [
    lambda tl, p, t: tl.load(p, shape=(4,), mask=tl.arange(0, 4) < 2, other=float("-inf")),
    lambda tl, p, t: tl.where(tl.arange(0, 4) < 2, t, float("-inf")),
    lambda tl, p, t: tl.maximum(t, -1e30),
    lambda tl, p, t: t < 1000.0,
    lambda tl, p, t: t * 0 + 500,
    lambda tl, p, t: 1000 - t,
    lambda tl, p, t: tl.full((4,), float("inf"), "fp8e4m3"),
], ids=["load_other", "where", "maximum", "compare", "add_int", "reflected", "full"])
def test_a_number_fp8e4m3_cannot_hold_is_refused(body):
    # (before: x = [1, 2, nan, nan] and a NaN max and softmax from a half-masked row; t < 1000
    # all False; t * 0 + 500 NaN everywhere)
    msg = refused(body, X8, "fp8e4m3")
    assert "has no fp8e4m3 value" in msg and "448" in msg and msg.startswith("PE (0, 0) at "), msg


def test_fp8e4m3_numbers_it_can_hold_are_taken():
    # 464 rounds to 448 (the largest; docs/language.md "fp8 overflow"); NaN asked for stays NaN;
    # -448 masks as -inf would: the masked row's max is the unmasked elements'
    lo, nan, mx = run(lambda tl, p, t: (t * 0 + 464, t + float("nan"),
                                        tl.max(tl.where(tl.arange(0, 4) < 2, t, -448.0))), X8, "fp8e4m3")
    assert lo.dtype == E4M3 and np.all(lo.astype(np.float32) == 448)
    assert np.all(np.isnan(nan.astype(np.float32)))
    assert float(np.asarray(mx).astype(np.float32).ravel()[0]) == 2.0
    # the other fp8 has infinities: -inf stays -inf there
    x5 = X8.astype(ml_dtypes.float8_e5m2)
    m = run(lambda tl, p, t: tl.where(tl.arange(0, 4) < 2, t, float("-inf")), x5, "fp8e5m2")
    assert np.array_equal(m.astype(np.float32), [1, 2, -np.inf, -np.inf])


A = np.array([[1 + 2.0 ** -20, 3.0], [0.5, -1.0]], np.float32)


@pytest.mark.parametrize("kw", [
    {"input_precision": "ieee"}, {"allow_tf32": False}, {"out_dtype": "f32"}, {"out_dtype": np.float32},
    {"max_num_imprecise_acc": None}, {"max_num_imprecise_acc": 0},
    {"input_precision": None, "allow_tf32": None, "out_dtype": "float32"}])
def test_tritons_dot_keywords_that_ask_for_exact_f32_are_taken(kw):
    plain, with_kw = run(lambda tl, p, t: (tl.dot(t, t), tl.dot(t, t, **kw)), A)
    np.testing.assert_array_equal(plain, with_kw)
    # f32 products are exact, not TF32's 10-bit mantissas: 2**-20 survives
    want = (A.astype(np.float64) @ A.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(with_kw, want)
    assert with_kw[0, 0] != np.float32(1 + 1.5)  # (TF32 would drop the 2**-20 of a[0, 0]**2)


@pytest.mark.parametrize("kw, says", [
    ({"input_precision": "tf32"}, "full f32 precision ('ieee')"),
    ({"input_precision": "tf32x3"}, "TF32 and its 3-pass variants are not modelled"),
    ({"allow_tf32": True}, "write allow_tf32=False or leave it out"),
    ({"max_num_imprecise_acc": 32}, "no imprecise fp8 accumulation"),
    ({"out_dtype": "f16"}, "accumulates in f32 and gives f32"),
    ({"out_dtype": "f64"}, "out_dtype f32 or tl.float32 only"),
    ({"out_dtype": "int32"}, "the GEMM unit accumulates in f32 and gives f32"),
])
def test_tritons_dot_keywords_asking_for_another_computation_are_refused(kw, says):
    msg = refused(lambda tl, p, t: tl.dot(t, t, **kw), A)
    assert says in msg and msg.startswith("PE (0, 0) at "), msg


@pytest.mark.parametrize("scalar", [ml_dtypes.bfloat16(0.1), E4M3(3.5), ml_dtypes.float8_e5m2(-2.0),
                                    np.float16(0.1)])
def test_an_ml_dtypes_scalar_is_a_number_on_either_side(scalar):
    x = np.array([1.0, 2.5, -3.0, 7.0], np.float16)
    v = float(scalar)  # (its value, exactly: every one of these is an f32)
    got = run(lambda tl, p, t: (t + scalar, scalar + t, t + v, tl.maximum(t, scalar),
                                tl.where(t > 0, scalar, t), t < scalar), x)
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[0], got[2])
    np.testing.assert_array_equal(got[3], np.maximum(x, np.float16(v)))
    np.testing.assert_array_equal(got[4], np.where(x > 0, np.float16(v), x))
    np.testing.assert_array_equal(got[5], x < np.float16(v))


def test_a_masked_load_reads_zero_where_masked_off_without_other():
    x = np.array([5.0, 6.0, 7.0, 8.0], np.float32)
    got = run(lambda tl, p, t: tl.load(p, shape=(4,), mask=tl.arange(0, 4) < 2), x)
    np.testing.assert_array_equal(got, [5, 6, 0, 0])


# -- a second review's cases ---------------------------------------------------------------------
def test_fp8e4m3_takes_the_numbers_whose_f32_constant_it_holds():
    # the check reads the f32 constant the number becomes: 464.0000001 is 464 there (-> 448)
    got = run(lambda tl, p, t: (t * 0 + 464.0000001, tl.full((4,), -464.00001, "fp8e4m3"),
                                tl.load(p, shape=(4,), mask=tl.arange(0, 4) < 2, other=464.00001)),
              X8, "fp8e4m3")
    assert [g.astype(np.float32).tolist() for g in got] == [[448] * 4, [-448] * 4, [1, 2, 448, 448]]
    assert "has no fp8e4m3 value" in refused(lambda tl, p, t: t * 0 + 464.0001, X8, "fp8e4m3")
    # a Python int too large for any float: the float operand's message, not a raw OverflowError
    msg = refused(lambda tl, p, t: tl.load(p, shape=(4,), mask=tl.arange(0, 4) < 2, other=10 ** 400),
                  X8, "fp8e4m3")
    assert "is too large for a float operand" in msg, msg


@pytest.mark.parametrize("kw", [{"input_precision": "IEEE"}, {"allow_tf32": 0}, {"allow_tf32": np.False_},
                                {"max_num_imprecise_acc": False}])
def test_tritons_dot_keywords_read_as_triton_reads_them(kw):
    plain, with_kw = run(lambda tl, p, t: (tl.dot(t, t), tl.dot(t, t, **kw)), A)
    np.testing.assert_array_equal(plain, with_kw)


def test_a_dot_keyword_of_another_type_is_named():
    msg = refused(lambda tl, p, t: tl.dot(t, t, input_precision=t), A)
    assert "dot: input_precision must be a string ('ieee'), got TensorHandle" in msg, msg
    # (annotated for type checkers, str | None written out: the compiled module checked it
    # itself, a bare "Argument 'input_precision' has incorrect type"; the rounding keywords too)
    for call in (lambda tl, p, t: t.to(tl.f16, 5), lambda tl, p, t: tl.cast(t, tl.f16, fp_downcast_rounding=5)):
        assert "fp_downcast_rounding=5): kernbench rounds to nearest even ('rtne') only" in refused(call, A)


def test_a_0d_ml_dtypes_array_is_a_number_on_either_side():
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float16)
    z = np.array(0.5, ml_dtypes.bfloat16)
    got = run(lambda tl, p, t: (z + t, t + z, t < z, tl.where(t > 2, t, z), tl.full((4,), z, "f16")), x)
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[1], x + np.float16(0.5))
    np.testing.assert_array_equal(got[2], x < 0.5)
    np.testing.assert_array_equal(got[3], np.where(x > 2, x, np.float16(0.5)))
    np.testing.assert_array_equal(got[4], [0.5] * 4)


def test_an_int_like_that_is_not_an_int_is_named_as_what_it_is():
    # (an ml_dtypes int4 prints as 1: "axis 1 is out of range ... expected an int in [-2, 1]")
    msg = refused(lambda tl, p, t: tl.sum(tl.zeros((4, 4), "f32"), axis=ml_dtypes.int4(1)), A)
    assert "sum: axis must be an int in [-2, 1] or None, got ml_dtypes.int4 1" in msg, msg
    msg = refused(lambda tl, p, t: tl.zeros((ml_dtypes.int4(2), 8), "f32"), A)
    assert "got (2, 8) (element 0 is ml_dtypes.int4 2, not an int)" in msg, msg


def test_an_int_past_int32_is_named_exactly():
    # (the fp8e4m3 check's float in the same compiled function made Cython type the int path's
    # value a C double: "the Python int 9.223372036854776e+18")
    x = np.arange(4, dtype=np.int32)
    for big in (np.uint64(2 ** 63), 2 ** 53 + 1):
        msg = refused(lambda tl, p, t, big=big: t + big, x, "int32")
        assert f"the Python int {int(big)} does not fit an int32 operand" in msg, msg


def test_a_dot_flag_without_a_truth_value_is_named():
    msg = refused(lambda tl, p, t: tl.dot(t, t, allow_tf32=np.array([True, False])), A)
    assert "dot: allow_tf32 must be a bool or a number, got ndarray" in msg, msg


def test_an_fp8e4m3_refusal_names_the_number_given():
    msg = refused(lambda tl, p, t: t + np.longdouble("1e400"), X8, "fp8e4m3")
    assert "the Python number 1e+400 has no fp8e4m3 value" in msg, msg


def test_fp8e4m3_refusals_read_the_same_either_side_and_say_what_to_do_where():
    # (a review's cases: bf16(1e4) * t printed 9984.0, t * bf16(1e4) 9984; a load's other was told
    # to cast a tensor it had not loaded yet; cdiv named the 999 it adds, not the user's 1000)
    left = refused(lambda tl, p, t: ml_dtypes.bfloat16(1e4) * t, X8, "fp8e4m3")
    right = refused(lambda tl, p, t: t * ml_dtypes.bfloat16(1e4), X8, "fp8e4m3")
    assert "the Python number 9984.0 has no" in left and "the Python number 9984.0 has no" in right
    msg = refused(lambda tl, p, t: tl.load(p, shape=(4,), mask=tl.arange(0, 4) < 2, other=float("-inf")),
                  X8, "fp8e4m3")
    assert "or load with other=0 and mask with tl.where in f16/f32" in msg, msg
    msg = refused(lambda tl, p, t: tl.cdiv(t, 1000), X8, "fp8e4m3")
    assert "cdiv takes ints and int32 tensors, got a fp8e4m3 tensor" in msg, msg


# -- Triton's own spellings (a port of triton-lang/triton's test_core.py, run as a peer suite) ---

F = np.array([[-2.5, 0.0, 1.5], [3.0, -1.0, 2.25]], np.float32)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def test_triton_keywords_compute_what_triton_does():
    # each Triton spelling against kernbench's own (or numpy): the same values, bit for bit
    same = [
        (lambda tl, p, t: tl.cast(t, tl.float16, fp_downcast_rounding="rtne"), F.astype(np.float16)),
        (lambda tl, p, t: tl.cast(t, tl.float16, "rtne"), F.astype(np.float16)),  # Triton's 3rd positional
        (lambda tl, p, t: tl.cast(t, tl.float16, bitcast=False), F.astype(np.float16)),
        (lambda tl, p, t: tl.cast(t, tl.float16, None, fp_downcast_rounding="rtne"), F.astype(np.float16)),
        (lambda tl, p, t: t.to(tl.float8e4nv), F.astype(E4M3)),
        (lambda tl, p, t: tl.cast(t, tl.float8e5), F.astype(ml_dtypes.float8_e5m2)),
        (lambda tl, p, t: tl.cast(t, "float8e4nv"), F.astype(E4M3)),
        (lambda tl, p, t: tl.maximum(t, 1.0, propagate_nan=tl.PropagateNan.ALL), np.maximum(F, 1)),
        (lambda tl, p, t: tl.minimum(t, 1.0, propagate_nan=True), np.minimum(F, 1)),
        (lambda tl, p, t: tl.trans(t, 1, 0), F.T),
        (lambda tl, p, t: tl.trans(t, (1, 0)), F.T),
        (lambda tl, p, t: tl.trans(t, 0, 1), F),
        (lambda tl, p, t: tl.reshape(t, 3, 2), F.reshape(3, 2)),
        (lambda tl, p, t: tl.reshape(t, (6,), can_reorder=True), F.reshape(6)),
        (lambda tl, p, t: tl.reshape(t, shape=(3, 2)), F.reshape(3, 2)),
        (lambda tl, p, t: tl.broadcast_to(tl.sum(t, 0), 2, 3),
         np.broadcast_to(F.sum(0, keepdims=True), (2, 3))),
        (lambda tl, p, t: tl.where(condition=t > 0, x=t, y=0.0), np.where(F > 0, F, 0)),
        (lambda tl, p, t: tl.sum(t, 1, dtype=tl.float16),
         F.astype(np.float16).astype(np.float32).sum(1, keepdims=True).astype(np.float16)),
        (lambda tl, p, t: tl.max(t, 1, return_indices=False), F.max(1, keepdims=True)),
        (lambda tl, p, t: tl.max(t, 1, propagate_nan=tl.PropagateNan.ALL), F.max(1, keepdims=True)),
        (lambda tl, p, t: tl.min(t, 0, propagate_nan=True), F.min(0, keepdims=True)),
        (lambda tl, p, t: tl.softmax(t, dim=1, ieee_rounding=True), _softmax(F, 1)),
        # Triton's positional order (x, dim, keep_dims, ieee_rounding): a review found four raise a TypeError
        (lambda tl, p, t: tl.softmax(t, 1, False, True), _softmax(F, 1)),
    ]
    for body, want in same:
        got = run(body, F)
        assert got.dtype == want.dtype and np.array_equal(got, want), (body, got, want)
    # Triton's third positional argument of tl.cast is the rounding: "rtne" rounds (a review found
    # it read as saturate=True by the compiled signature: 1e5 gave 65504, not inf)
    big = np.array([[1e5, -1e5, 1.0]], np.float32)
    assert run(lambda tl, p, t: tl.cast(t, tl.float16, "rtne"), big).tolist() == [[np.inf, -np.inf, 1]], \
        "rtne rounds; it does not saturate"
    assert run(lambda tl, p, t: tl.cast(t, tl.float16, 1), big).tolist() == [[65504, -65504, 1]]  # truth value
    # Triton's softmax reduces axis 0 when given dim; kernbench's default is the last axis
    np.testing.assert_allclose(run(lambda tl, p, t: tl.softmax(t, dim=0), F), _softmax(F, 0), rtol=1e-6)
    np.testing.assert_allclose(run(lambda tl, p, t: tl.softmax(t), F), _softmax(F, 1), rtol=1e-6)


@pytest.mark.parametrize("body, says", [
    (lambda tl, p, t: tl.cast(t, tl.float16, fp_downcast_rounding="rtz"), "rounds to nearest even ('rtne') only"),
    (lambda tl, p, t: tl.cast(t, tl.int32, bitcast=True), "kernbench has no bit casts"),
    (lambda tl, p, t: tl.cast(t, tl.int32, bitcast=np.array([1, 0])), "bitcast must be True or False"),
    (lambda tl, p, t: tl.maximum(t, 1.0, propagate_nan=tl.PropagateNan.NONE), "always propagates NaN"),
    (lambda tl, p, t: tl.minimum(t, 1.0, propagate_nan="all"), "propagate_nan must be tl.PropagateNan.ALL"),
    (lambda tl, p, t: tl.max(t, 1, return_indices=True), "kernbench has no argmax"),
    (lambda tl, p, t: tl.max(t, 1, propagate_nan=tl.PropagateNan.NONE), "kernbench's max always propagates NaN"),
    (lambda tl, p, t: tl.min(t, 1, propagate_nan="x"), "min: propagate_nan must be tl.PropagateNan.ALL"),
    (lambda tl, p, t: tl.full((2,), 3e9, "int32"), "the Python float 3000000000.0 does not fit an int32"),
    (lambda tl, p, t: t.to(tl.int1), "Instead: a mask: what a comparison returns (x != 0 for x.to(tl.int1))"),
    (lambda tl, p, t: tl.cast(t, "bool"), "(a mask is what a comparison returns: x != 0, not a cast or a fill)"),
    (lambda tl, p, t: tl.min(t, 1, return_indices=True), "kernbench has no argmin"),
    (lambda tl, p, t: tl.softmax(t, dim=None), "dim=None is Triton's axis 0"),
    (lambda tl, p, t: tl.softmax(t, 0, dim=1), "the axis given twice"),
    (lambda tl, p, t: tl.trans(t, 1, 1), "kernbench's trans swaps the last two axes ((1, 0)) only"),
    (lambda tl, p, t: tl.reshape(t, (6,), shape=(6,)), "the shape given twice"),
    (lambda tl, p, t: tl.broadcast_to(t), "broadcast_to: missing the shape"),
    (lambda tl, p, t: tl.where(t > 0, t, 0.0, condition=t > 0), "cond given twice"),
    (lambda tl, p, t: tl.where(condition=t > 0, x=t), "b given not at all"),
    (lambda tl, p, t: tl.where(t > 0, t), "where takes three arguments"),
    (lambda tl, p, t: t.to(tl.float8e4b15), "kernbench has no other fp8"),
    (lambda tl, p, t: tl.cast(t, tl.float16, "rtz"), "rounds to nearest even ('rtne') only"),
    (lambda tl, p, t: tl.cast(t, tl.float16, "rtne", fp_downcast_rounding="rtne"), "the rounding given twice"),
    (lambda tl, p, t: tl.cast(t, tl.float16, saturate=[1]), "saturate must be True or False"),
    (lambda tl, p, t: tl.softmax(t, -1, dim=0), "the axis given twice"),
    (lambda tl, p, t: tl.trans(t, 1.0, 0), "trans: dims must be ints"),
    (lambda tl, p, t: tl.full((2,), 10 ** 400, "int32"), "the Python int 100000... (401 digits) does not fit"),
    (lambda tl, p, t: tl.reshape(t, (10 ** 400,)), "100000... (401 digits)"),  # (a shape: every digit once)
    (lambda tl, p, t: tl.sum(t, 10 ** 400), "100000... (401 digits)"),
    (lambda tl, p, t: tl.sqrt_rn(t), "tl.sqrt(x) (correctly rounded here)"),
])
def test_triton_keywords_kernbench_does_not_compute_are_refused_naming_why(body, says):
    msg = refused(body, F)
    assert says in msg and "PE (0, 0)" in msg, msg


def test_a_python_int_is_the_f32_constant_of_its_value_like_a_float():
    # a review found x * 10**40 refused while x * 1e40 gave inf, and 10**400's refusal printing
    # all 401 digits
    x = np.array([1.0, -2.0], np.float32)
    big = run(lambda tl, p, t: (t * 10 ** 40, t * 1e40, t * (2 ** 127 + 2 ** 100)), x)
    assert np.array_equal(big[0], big[1]) and np.isinf(big[0]).all()
    # past 2**127 but within f32's range: finite (a first version refused every int past 2**127)
    assert big[2][0] == np.float32(2.0 ** 127 + 2.0 ** 100) and np.isfinite(big[2][0])
    msg = refused(lambda tl, p, t: t * 10 ** 400, x)
    assert "the Python int 100000... (401 digits) is too large for a float operand: past f64's range" \
        in msg and len(msg) < 400, msg
