"""TensorHandle as a value of the language: elementwise == and !=, no value while tracing, numpy
refused, identity in dicts, exactly its eight fields (docs/language.md, "Values")."""
import dataclasses
import math
import os
import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernbench
from kernbench import KernelError
from kernbench.common.pe_commands import TensorHandle

HW = {"n_cubes": 1, "pes_per_cube": 2}
FILE = os.path.basename(__file__)


def run(body, x, mode="functional"):
    """Run ``body(tl, tile)`` on PE (0, 0) over f16 ``x``; return (what body returned, result)."""
    ctx = kernbench.Context("default", overrides=HW)
    p = ctx.put(x, pe=(0, 0), dtype="f16")
    seen = {}

    def kernel(ptr, *, tl):
        if tl.program_id(0) == 0:
            seen["out"] = body(tl, tl.load(ptr, shape=x.shape))

    r = ctx.launch(kernel, (1, 1), p, mode=mode)
    return seen["out"], r


def refused(body, x=None, exact_line=True):
    """The KernelError of ``body(tl, tile, mark)``; it names the line ``mark()`` was called on
    (or, with ``exact_line=False``, a line of this file: the innermost frame outside kernbench
    is then a lambda of a parametrize table)."""
    x = np.array([0.0, 1.0, -2.0, 0.0], np.float16) if x is None else x
    lines = []

    def mark():
        lines.append(sys._getframe(1).f_lineno)

    with pytest.raises(KernelError) as ei:
        run(lambda tl, t: body(tl, t, mark), x)
    assert ei.value.pe == (0, 0)
    where = f"PE (0, 0) at {FILE}:{lines[-1] if exact_line else ''}"
    assert where in str(ei.value)
    return str(ei.value)


def test_handle_is_a_dataclass_of_exactly_eight_fields():
    names = [f.name for f in dataclasses.fields(TensorHandle)]
    assert names == ["id", "addr", "shape", "dtype", "nbytes", "data", "space", "pinned"]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2 ** 62), st.integers(0, 2 ** 40), st.lists(st.integers(1, 4096), max_size=3),
       st.sampled_from(["f16", "bf16", "f32", "int32", "bool"]), st.integers(0, 2 ** 40), st.booleans())
def test_the_builders_handles_are_the_dataclasses(i, addr, shape, dtype, nbytes, pinned):
    """The builder makes its handles in C (kernbench.language._handles: the eight slots stored
    at the offsets the dataclass's descriptors give); each equals the dataclass constructor's
    field for field, is weakly referenceable and is freed with its last reference (by its
    reference count: no gc.collect, which took 0.4 s a call in a full test run's heap)."""
    import weakref

    from kernbench.language._handles import FIELDS, new_handle

    assert FIELDS == tuple(f.name for f in dataclasses.fields(TensorHandle))
    shape = tuple(shape)
    h = new_handle(i, addr, shape, dtype, nbytes, pinned)
    ref = TensorHandle(i, addr, shape, dtype, nbytes, None, "sram", pinned)
    assert type(h) is TensorHandle
    assert [getattr(h, f) for f in FIELDS] == [getattr(ref, f) for f in FIELDS]
    assert h.shape is shape and type(h.pinned) is bool
    assert dataclasses.replace(h, shape=(1,)).id == i  # a view, as users make them
    w = weakref.ref(h)
    del h
    assert w() is None


def test_the_fields_read_in_c_are_the_attributes():
    """kernbench.language._handles.handle_id / handle_shape read a TensorHandle's slots in C (the
    tl calls' operand checks): the attribute's value for a handle, a subclass, another object
    (by attribute), and the attribute's error for an unset slot."""
    from kernbench.language._handles import handle_id, handle_shape
    from kernbench.language.semantic import TransposedView

    h = TensorHandle(7, 0, (2, 3))
    assert handle_id(h) == 7 and handle_shape(h) is h.shape
    v = TransposedView(8, 0, (3, 2))
    assert handle_id(v) == 8 and handle_shape(v) is v.shape
    other = type("Like", (), {"id": 9, "shape": (1,)})()
    assert (handle_id(other), handle_shape(other)) == (9, (1,))
    del h.id, h.shape
    with pytest.raises(AttributeError):
        handle_id(h)
    with pytest.raises(AttributeError):
        handle_shape(h)
    with pytest.raises(AttributeError):
        handle_id(3)


def test_eq_and_ne_are_elementwise():
    # The case: x + (x == 0.0) * 5 adds 5 where x is 0 (a mask in arithmetic is 0/1).
    x = np.array([0.0, 1.0, -2.0, 0.0], np.float16)
    out, _ = run(lambda tl, t: (t + (t == 0.0) * 5, t != 0.0, 0.0 == t, t == t), x)
    a, ne, req, same = out
    assert a.dtype == "f16"
    np.testing.assert_array_equal(a.data, np.array([5.0, 1.0, -2.0, 5.0], np.float16))
    assert ne.dtype == "bool"
    np.testing.assert_array_equal(ne.data, [False, True, True, False])
    np.testing.assert_array_equal(req.data, [True, False, False, True])  # reflected ==
    np.testing.assert_array_equal(same.data, [True] * 4)


def test_eq_costs_a_compare_in_both_modes():
    x = np.zeros(4096, np.float16)
    # load 8192 B: 16 bursts x 2 cycles + 150 = 182; compare of 4096: ceil(4096/64)*1 + 8 = 72
    for mode in ("functional", "timing"):
        _, r = run(lambda tl, t: t == 1.0, x, mode=mode)
        assert r.cycles == 182 + 72


def test_handles_hash_and_compare_by_identity_in_containers():
    def body(tl, t):
        u = tl.exp(t)
        d = {t: "t", u: "u"}
        s = {t, u, t}
        return d[t], d[u], len(s), hash(t) == id(t) or hash(t) == object.__hash__(t)

    (a, b, n, h), _ = run(body, np.ones(4, np.float16))
    assert (a, b, n, h) == ("t", "u", 2, True)


def test_eq_with_none_is_identity_and_with_other_objects_refused():
    (r1, r2), _ = run(lambda tl, t: (t == None, t != None), np.ones(4, np.float16))  # noqa: E711
    assert r1 is False and r2 is True
    # A list, a string or a complex would otherwise be a silent Python bool an `if` branches on.
    for other in ([0.0, 1.0], "x", 1j):
        def body(tl, t, mark, other=other):
            mark(); t == other  # noqa: E702, B015

        assert f"eq: expected a tensor or a Python number, got {type(other).__name__}" in refused(body)


@pytest.mark.parametrize("what,expr", [
    ("bool(tensor)", lambda t: bool(t)),
    ("bool(tensor)", lambda t: 1 if t != 0.0 else 2),  # the issue's `if x != 0.0:`
    ("bool(tensor)", lambda t: not t),
    ("int(tensor)", lambda t: int(t)),
    ("float(tensor)", lambda t: float(t)),
    ("len(tensor)", lambda t: len(t)),
    ("iterating over a tensor", lambda t: list(t)),
    ("a tensor used as an index or size", lambda t: range(t)),
])
def test_value_dependent_control_flow_is_refused(what, expr):
    def body(tl, t, mark):
        mark(); expr(t)  # noqa: E702

    msg = refused(body, exact_line=False)
    assert what in msg
    assert "control flow may depend on program ids and arguments, not on tensor values" in msg


@pytest.mark.parametrize("call,use", [
    (lambda t: np.sum(t), "tl.sum"),
    (lambda t: np.maximum(t, 0), "tl.maximum"),
    (lambda t: np.exp(t), "tl.exp"),
    (lambda t: np.asarray(t), "replay fills h.data"),
    (lambda t: np.ones(4) * t, "* (tl.mul)"),
    (lambda t: np.where(t, 1, 0), "tl.where"),
])
def test_numpy_on_a_handle_is_refused_naming_the_tl_call(call, use):
    def body(tl, t, mark):
        mark(); call(t)  # noqa: E702

    msg = refused(body, exact_line=False)
    assert "numpy" in msg and use in msg


def test_a_numpy_scalar_is_a_number_in_an_operator():
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float16)
    (a, b, c), _ = run(lambda tl, t: (np.float32(2) * t, np.float16(1) - t, t + np.int64(1)), x)
    assert a.dtype == b.dtype == c.dtype == "f16"
    np.testing.assert_array_equal(a.data, x * 2)
    np.testing.assert_array_equal(b.data, 1 - x)
    np.testing.assert_array_equal(c.data, x + 1)


def test_setitem_is_refused():
    def body(tl, t, mark):
        mark(); t[0] = 1.0  # noqa: E702

    assert "tensors are immutable" in refused(body)


def test_operators_outside_a_trace_are_a_clear_error():
    h = TensorHandle(id=0, shape=(4,), dtype="f16")
    with pytest.raises(KernelError, match="work only inside a kernel being traced") as e:
        line = sys._getframe().f_lineno + 1
        h + 1
    assert e.value.where.endswith(f"test_tl_handles.py:{line}")
    with pytest.raises(KernelError, match="work only inside a kernel being traced"):
        bool(h)
    assert (h == h) is True and (h == TensorHandle(id=0)) is False  # identity outside a trace
    assert (h == 1.0) is False and (h != 1.0) is True and (h == "abc") is False  # (docs: on the host)
    with pytest.raises(KernelError, match="work only inside a kernel being traced"):
        h < h  # noqa: B015


def test_copies_of_a_transposed_view_read_transposed_and_a_rebuild_row_major():
    """docs/language.md, Views: being transposed is not one of the eight fields; copy.copy,
    dataclasses.replace and pickling keep it, a handle rebuilt field by field is a plain view."""
    import copy
    import pickle

    x = np.arange(6, dtype=np.float16).reshape(2, 3)
    ctx = kernbench.Context("default", overrides=HW)
    a = ctx.put(x, pe=(0, 0), dtype="f16")
    makers = {
        "copy": copy.copy, "replace": dataclasses.replace,
        "pickle": lambda t: pickle.loads(pickle.dumps(t)),
        "fields": lambda t: TensorHandle(**{f.name: getattr(t, f.name) for f in dataclasses.fields(t)}),
    }
    outs = {k: ctx.put(np.zeros((3, 2), np.float16), pe=(0, 0), dtype="f16") for k in makers}

    def kernel(a, *os, tl):
        if tl.program_id(0) == 0:
            t = tl.trans(tl.load(a, shape=(2, 3)))
            for o, make in zip(os, makers.values()):
                tl.store(o, make(t))

    ctx.launch(kernel, (1, 1), a, *outs.values(), mode="functional")
    got = {k: ctx.read(o, (0, 0)) for k, o in outs.items()}
    for k in ("copy", "replace", "pickle"):
        np.testing.assert_array_equal(got[k], x.T)
    np.testing.assert_array_equal(got["fields"], x.reshape(3, 2))


class _Sub(TensorHandle):
    """A user's subclass: its fields are read by attribute."""

    __slots__ = ()


@pytest.mark.parametrize("source", [TensorHandle, "TransposedView", _Sub])
@pytest.mark.parametrize("transposed", [False, True])
def test_views_made_in_c_are_the_dataclasses(source, transposed):
    """tl.trans makes its views in C (_handles.view_of): each equals the constructor's,
    ``TensorHandle(...)`` or ``TransposedView(...)`` of the source's id, addr, nbytes, space and
    pinned with the new shape and dtype, whatever the source's type; a missing field is the
    source's AttributeError."""
    import weakref

    from kernbench.language._handles import FIELDS, view_of
    from kernbench.language.semantic import TransposedView

    cls = TransposedView if source == "TransposedView" else source
    src = cls(3 << 40, 4096, (8, 16), "bf16", 256, np.zeros(1), "sram", True)
    shape = (16, 8)
    v = view_of(src, shape, "f16", transposed)
    ref = (TransposedView if transposed else TensorHandle)(
        src.id, src.addr, shape, "f16", src.nbytes, None, src.space, src.pinned)
    assert type(v) is type(ref)
    assert [getattr(v, f) for f in FIELDS] == [getattr(ref, f) for f in FIELDS]
    assert v.shape is shape and v.id is src.id and v.data is None
    w = weakref.ref(v)
    del v
    assert w() is None
    del src.nbytes
    with pytest.raises(AttributeError):
        view_of(src, shape, "f16", transposed)


class _Int(int):
    pass


_SHAPES = [(16, 8), (16, 8.0), (16, True), (np.int64(16), 8), [16, 8], (), (8, 16), (128,),
           (4, 32), (2, 16, 4), (16, 0), (-16, -8), (2 ** 40, 2 ** 40), "16x8", None]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["functional", "timing"]), st.sampled_from(_SHAPES),
       st.sampled_from(["same", "other", "intsub", "float", "missing", "next"]),
       st.sampled_from(["TransposedView", "TensorHandle", "replace"]))
def test_operand_fast_path_of_views_equals_the_checks(mode, shape, id_kind, kind):
    """PEBuilder.operand resolves a transposed view tl.trans made without semantic.operand_slow:
    for any view, hand-made or replaced (shapes of floats, bools, numpy ints, lists, other
    element counts; ids of another tensor, an int subclass or a float), it answers what operand_slow does,
    value for value, or refuses with the same message."""
    from kernbench.language import semantic
    from kernbench.language.semantic import TransposedView

    seen = []

    def body(tl, t):
        b = tl._b
        kt = tl.trans(tl.exp(tl.reshape(t, (8, 16))))  # a buffer (8, 16), its view (16, 8)
        tl.exp(t)  # a second tensor: "next" names it
        i = {"same": kt.id, "other": t.id, "intsub": _Int(kt.id), "float": float(kt.id),
             "missing": kt.id + 999, "next": kt.id + 1}[id_kind]
        if kind == "replace":
            h = dataclasses.replace(kt, id=i, shape=shape)
        else:
            cls = TransposedView if kind == "TransposedView" else TensorHandle
            h = cls(i, kt.addr, shape, kt.dtype, kt.nbytes)
        for resolve in (lambda: b.operand(h, "x"), lambda: semantic.operand_slow(b, h, "x")):
            try:
                seen.append(("ok", resolve()))
            except KernelError as e:
                seen.append(("refused", str(e)))
        return kt

    run(body, np.ones(128, np.float16), mode=mode)
    assert len(seen) == 2 and seen[0] == seen[1], seen
    if (id_kind, kind, repr(shape)) == ("same", "TransposedView", "(16, 8)"):
        assert seen[0][1][0][2] is True  # (number, shape, transposed): the view read transposed


@pytest.mark.parametrize("call, says", [
    (lambda x: math.floor(x), r"math.floor\(tensor\): .* per element: t - tl.where\(t > x, 1.0, 0.0\)"),
    (lambda x: math.ceil(x), r"math.ceil\(tensor\): .* per element: t \+ tl.where\(t < x, 1.0, 0.0\)"),
    (lambda x: math.trunc(x), r"math.trunc\(tensor\): .* tl.cast\(tl.cast\(x, tl.int32\), x.dtype\)"),
    (lambda x: round(x), r"round\(tensor\): .* no round-to-nearest op"),
    (lambda x: round(x, 2), r"round\(tensor\): "),
    (lambda x: divmod(x, 2), r"divmod\(a, b\) with a tensor: write a // b and a % b"),
    (lambda x: divmod(7, x), r"divmod\(a, b\) with a tensor"),
    (lambda x: 2 ** x, r"2 \*\* tensor: .* write tl.exp2\(x\)"),
    (lambda x: 3.0 ** x, r"3.0 \*\* tensor: .* write tl.exp\(x \* math.log\(base\)\)"),
    (lambda x: x ** x, r"got a f32 tensor of shape \(8,\): for other powers"),
])
def test_python_rounding_and_powers_are_refused_with_the_per_element_way(call, says):
    """round(x), math.trunc and divmod were a raw TypeError wrapped, math.floor a float() error,
    and x ** x printed the handle's every field (reviews)."""
    def k(a, *, tl):
        x = tl.load(a, shape=(8,))
        tl.store(a, call(x))

    ctx = kernbench.Context("default")
    a = ctx.put(np.ones(8, np.float32), 0)
    with pytest.raises(KernelError, match=r"PE \(0, 0\) at test_tl_handles.py:\d+") as e:
        ctx.launch(k, (1, 1), a)
    assert re.search(says, str(e.value)), str(e.value)
    assert "TensorHandle(" not in str(e.value)


def test_a_deep_copy_of_tl_is_tl_and_pickling_it_is_refused_at_the_kernel_line():
    """A review: a ``**kwargs`` kernel deep-copying its keywords (tl among them), or
    ``copy.deepcopy(tl.range(4))``, raised Cython's "no default __reduce__" at
    ``View.MemoryView:2``, a file of no one's, not the kernel's line."""
    import copy
    import pickle

    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.replicate(np.arange(4, dtype=np.float32))
    o = ctx.empty_like(x)

    def kern(x_ptr, o_ptr, **kwargs):
        opts = copy.deepcopy(kwargs)
        tl = opts["tl"]
        assert tl is kwargs["tl"] and copy.deepcopy(tl.math) is tl and copy.copy(tl) is tl
        loop = copy.deepcopy(tl.range(2))
        acc = tl.load(x_ptr, shape=(4,))
        for _ in loop:
            acc = acc + 1
        tl.store(o_ptr, acc)

    ctx.launch(kern, (1, 1), x, o)
    assert ctx.read(o, (0, 0)).tolist() == [2.0, 3.0, 4.0, 5.0]
    for what in (lambda tl: pickle.dumps(tl), lambda tl: pickle.dumps(tl.range(4)),
                 lambda tl: pickle.dumps([tl])):
        def k2(x_ptr, *, tl, what=what):
            what(tl)

        with pytest.raises(KernelError, match=r"cannot be pickled: a kernel gets it from its launch") as e:
            ctx.launch(k2, (1, 1), x)
        assert e.value.where.startswith(f"{__file__}:"), e.value.where  # (the lambda's line, in this file)
