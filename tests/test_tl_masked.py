"""Masked loads and stores (Triton's ragged edges): only unmasked elements are read, written and
bounds-checked; at trace when the mask is known then (built from tl.arange, program ids and
constants), else in functional replay; a masked access costs the whole tile."""
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernbench
from kernbench import KernelError

HW = {"n_cubes": 1, "pes_per_cube": 2}
FILE = os.path.basename(__file__)
N, BLOCK = 10, 8


def ragged(x_ptr, o_ptr, n, *, tl):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + 4 * pid * BLOCK, shape=(BLOCK,), mask=m, other=-1.0)
    tl.store(o_ptr + 4 * pid * BLOCK, x * 2.0, mask=m)


@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_ragged_tail_reads_and_writes_only_the_unmasked_elements(mode):
    ctx = kernbench.Context("default", overrides=HW)
    x = np.arange(N, dtype=np.float32) + 1
    xp = ctx.replicate(x)
    o = ctx.replicate(np.full(N, 7.0, np.float32))
    r = ctx.launch(ragged, (2, 1), xp, o, N, mode=mode)
    if mode == "functional":
        got = ctx.read_all(o)[0]
        np.testing.assert_array_equal(got[0], np.r_[2 * x[:8], 7, 7])  # PE 0 writes 0..7
        np.testing.assert_array_equal(got[1], np.r_[7 * np.ones(8), 2 * x[8:]])  # PE 1: 8, 9
    # Per PE, each vector op on 8 elements costs ceil(8/64) * 1 + 8 = 9 cycles: arange (fill
    # cost), the add of pid * BLOCK, the compare: 27. The load of the whole tile, 32 B:
    # ceil(32/256) + 150 = 151 (masked elements cost the same) -> 178; mul 9 -> 187; store 151
    # -> 338. Both PEs share the cube's channel: PE 1's single-burst load waits one cycle
    # behind PE 0's burst (their stores start a cycle apart already): PE 1 ends at 339.
    assert r.cycles == 339


def test_other_as_a_tensor_and_a_2d_strided_masked_load():
    ctx = kernbench.Context("default", overrides=HW)
    a = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    ap = ctx.put(a, pe=(0, 0))
    seen = {}

    def kernel(a_ptr, *, tl):
        if tl.program_id(0):
            return
        rows = tl.arange(0, 4)[:, None] + 3  # rows 3..6 of 5: rows 5, 6 masked off
        cols = tl.arange(0, 4)[None, :] + 4  # cols 4..7 of 7: col 7 masked off
        m = (rows < 5) & (cols < 7)
        fill = tl.full((4, 4), -5.0)
        seen["t"] = tl.load(a_ptr + 4 * (3 * 7 + 4), shape=(4, 4), stride=7, mask=m, other=fill)

    ctx.launch(kernel, (1, 1), ap)
    want = np.full((4, 4), -5.0, np.float32)
    want[:2, :3] = a[3:5, 4:7]
    np.testing.assert_array_equal(seen["t"].data, want)


@pytest.mark.parametrize("dtype", ["f16", "bf16", "fp8e4m3", "f32"])
def test_a_python_float_other_is_an_f32_constant_cast_to_the_load(dtype):
    """A review's case: a masked load's Python-float ``other`` was rounded from f64 to f16
    directly (1 + 2**-11 + 2**-40 -> 1.0009765625) where every other Python number is an f32
    constant cast to the dtype (f64 -> f32 -> f16: 1.0), as Triton casts a load's ``other``.
    Now the same as ``x + val``, ``tl.where`` and ``tl.full``."""
    import ml_dtypes

    # just above half an ulp at 1 of the dtype, by less than f32 keeps: f32 rounds it to the tie
    val = 1 + {"f16": 2 ** -11, "bf16": 2 ** -8, "fp8e4m3": 2 ** -4, "f32": 2 ** -24}[dtype] + 2 ** -40
    nd = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "fp8e4m3": ml_dtypes.float8_e4m3fn,
          "f32": np.float32}[dtype]
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    a = ctx.put(np.zeros(4), pe=(0, 0), dtype=dtype)
    seen = {}

    def k(a_ptr, *, tl):
        if tl.program_id(0):
            return
        m = tl.arange(0, 4) < 0
        seen["load other"] = tl.load(a_ptr, shape=(4,), dtype=dtype, mask=m, other=val)
        x = tl.load(a_ptr, shape=(4,), dtype=dtype)
        seen["x + val"] = x + val
        seen["where"] = tl.where(m, x, val)
        seen["full"] = tl.full((4,), val, dtype)

    ctx.launch(k, (1, 1), a, mode="functional")
    want = float(nd(np.float32(val)))
    assert {name: float(h.data[0]) for name, h in seen.items()} == dict.fromkeys(seen, want)
    if dtype != "f32":  # (the case double rounding tells apart: rounded once from f64, another
        # value; round_once, as numpy 1.x's ml_dtypes rounds through f32 itself)
        from kernbench.language.numerics import round_once
        assert want != float(round_once(np.array([val]), dtype)[0])


@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_a_known_mask_that_lets_an_element_out_is_refused_at_trace(mode):
    ctx = kernbench.Context("default", overrides=HW)
    xp = ctx.replicate(np.ones(N, np.float32))
    lines = []

    def kernel(x_ptr, *, tl):
        pid = tl.program_id(0)
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        m = offs < N + 1  # one too many: element 10 of a 10-element allocation
        lines.append(sys._getframe().f_lineno + 1)
        tl.load(x_ptr + 4 * pid * BLOCK, shape=(BLOCK,), mask=m)

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (2, 1), xp, mode=mode)
    msg = str(ei.value)
    assert f"PE (1, 0) at {FILE}:{lines[-1]}" in msg
    assert "reaches element 10 of allocation" in msg and "where the mask is true" in msg


def test_a_data_dependent_mask_is_checked_in_replay():
    ctx = kernbench.Context("default", overrides=HW)
    xp = ctx.replicate(np.ones(N, np.float32))
    flags = ctx.replicate(np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 1], np.float32))
    lines = []

    def kernel(x_ptr, f_ptr, *, tl):
        if tl.program_id(0):
            return
        f = tl.load(f_ptr + 4 * 6, shape=(4,))  # [1, 1, 0, 1]: element 9 + 3 = 12 is unmasked
        lines.append(sys._getframe().f_lineno + 1)
        tl.load(x_ptr + 4 * 9, shape=(4,), mask=f > 0.0)

    r = ctx.launch(kernel, (1, 1), xp, flags, mode="timing")  # no values: nothing to check
    assert r.cycles > 0
    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (1, 1), xp, flags)
    assert f"PE (0, 0) at {FILE}:{lines[-1]}" in str(ei.value)
    assert "masked load of (4,) f32 reaches element 10" in str(ei.value)


def test_mask_must_be_a_bool_mask_that_broadcasts():
    ctx = kernbench.Context("default", overrides=HW)
    xp = ctx.replicate(np.ones(N, np.float32))

    def bad_dtype(x_ptr, *, tl):
        tl.load(x_ptr, shape=(8,), mask=tl.arange(0, 8))

    def bad_shape(x_ptr, *, tl):
        tl.load(x_ptr, shape=(8,), mask=tl.arange(0, 4) < 2)

    def other_without_mask(x_ptr, *, tl):
        tl.load(x_ptr, shape=(8,), other=0.0)

    with pytest.raises(KernelError, match="mask must be a bool mask .* got an int32 tensor"):
        ctx.launch(bad_dtype, (1, 1), xp)
    with pytest.raises(KernelError, match=r"shapes \(4,\) and \(8,\) do not broadcast"):
        ctx.launch(bad_shape, (1, 1), xp)
    with pytest.raises(KernelError, match="other= .* needs mask="):
        ctx.launch(other_without_mask, (1, 1), xp)


def test_causal_mask_from_arange_without_memory():
    ctx = kernbench.Context("default", overrides=HW)
    s = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    sp = ctx.put(s, pe=(0, 0))
    seen = {}

    def kernel(s_ptr, *, tl):
        if tl.program_id(0):
            return
        offs_q, offs_k = tl.arange(0, 4) + 2, tl.arange(0, 6)
        causal = offs_q[:, None] >= offs_k[None, :]
        seen["p"] = tl.where(causal, tl.load(s_ptr, shape=(4, 6)), float("-inf"))

    ctx.launch(kernel, (1, 1), sp)
    want = np.where(np.arange(4)[:, None] + 2 >= np.arange(6)[None, :], s, -np.inf)
    np.testing.assert_array_equal(seen["p"].data, want.astype(np.float32))


def test_a_masked_block_wider_than_its_rows():
    # Triton's power-of-two block over a narrow matrix: 16 columns over rows of 10; the columns
    # past each row are masked off, so rows never overlap where read.
    ctx = kernbench.Context("default", overrides=HW)
    a = np.arange(5 * 10, dtype=np.float32).reshape(5, 10)
    ap = ctx.put(a, pe=(0, 0))
    seen = {}

    def kernel(a_ptr, *, tl):
        if tl.program_id(0):
            return
        rows, cols = tl.arange(0, 8)[:, None], tl.arange(0, 16)[None, :]
        m = (rows < 5) & (cols < 10)
        seen["t"] = tl.load(a_ptr, shape=(8, 16), stride=10, mask=m, other=-1.0)

    ctx.launch(kernel, (1, 1), ap)
    want = np.full((8, 16), -1.0, np.float32)
    want[:5, :10] = a
    np.testing.assert_array_equal(seen["t"].data, want)


def test_a_pointer_tensor_is_refused_clearly():
    ctx = kernbench.Context("default", overrides=HW)
    xp = ctx.replicate(np.ones(N, np.float32))

    def kernel(x_ptr, *, tl):
        tl.load(x_ptr + tl.arange(0, 4), shape=(4,))

    def no_shape(x_ptr, *, tl):
        tl.load(x_ptr, mask=tl.arange(0, 4) < 2)

    with pytest.raises(KernelError, match="the pointer is a tensor .int32 .4,... kernbench has no pointer tensors"):
        ctx.launch(kernel, (1, 1), xp)
    with pytest.raises(KernelError, match="load needs shape="):
        ctx.launch(no_shape, (1, 1), xp)


def test_a_fill_is_known_by_its_size_not_by_what_came_before(monkeypatch):
    """A tl.full seeds trace-time values (masks) when it is small (<= KNOWN_FILL_MAX elements,
    computed only once a fold reads it) and never when larger, whether or not a tl.arange ran
    before it on the PE. (Once an arange had run, every fill up to KNOWN_MAX elements was
    computed and kept as it was made: a causal prefill kept each phase's (256, 128) f32
    accumulator, 134 MB per PE at 64K.)"""
    from kernbench.language import builder as bm
    from kernbench.runtime import executor

    seen, made = {}, {}

    class Spy(bm.PEBuilder):  # (the builder is an extension type: subclassed, not patched)
        def finish(self):
            if not self.finished:
                seen[self.pe] = (self.base, set(self.known), set(self.fills))
            return super().finish()

    monkeypatch.setattr(executor, "PEBuilder", Spy)
    big = (64, bm.KNOWN_FILL_MAX // 32)  # twice the largest fill that seeds a value

    def kernel(x_ptr, *, tl):
        pid = tl.program_id(0)
        if pid == 1:
            tl.arange(0, 8)  # a known value before the fills, on PE 1 only
        acc = tl.zeros(big)
        five = tl.full((8,), 5, "int32")
        m = tl.arange(0, 8) < five  # a fold reads the small fill: a known mask
        made[pid] = (acc.id, five.id, m.id)
        tl.store(x_ptr, tl.load(x_ptr, shape=(8,), mask=m, other=0.0), mask=m)

    ctx = kernbench.Context("default", overrides=HW)
    ctx.launch(kernel, (2, 1), ctx.replicate(np.zeros(8, np.float32)), mode="timing")
    for pe in (0, 1):
        base, known, fills = seen[pe]
        acc, five, m = (i - base for i in made[pe])
        assert acc not in known and acc not in fills
        assert five in fills and five in known and m in known


@pytest.mark.parametrize("make", ["tl.full((8,), 1, 'int32') == 1", "tl.full((8,), tl.program_id(0)) >= 0",
                                  "(tl.zeros((8,)) == 0) & (tl.full((8,), 2.0) > 1.0)",
                                  "(tl.full((8,), 0, 'int32') + 1) > 0",
                                  "tl.cast(tl.full((8,), 2.0) * 0.5, 'int32') == 1",
                                  "tl.where(tl.zeros((8,)) - 1.0 < 0, 1, 0) == 1"])
@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_a_mask_of_fills_alone_is_known_at_trace(make, mode):
    """A review: a mask made of small fills and numbers, with no tl.arange before it on the PE,
    was left to replay, so timing mode let a masked store 4 elements past its array through
    (functional mode refused it); made after an unrelated tl.arange it was checked. A
    comparison folds fills, and so does arithmetic on them (a second review: one op deeper,
    `(tl.full(...) + 1) > 0`, was still unchecked): refused at the store's line in both modes,
    before replay."""
    ns: dict = {}
    src = (f"def k(p, *, tl):\n"
           f"    m = {make}\n"
           f"    tl.store(p + 4 * 28, tl.zeros((8,)), mask=m)\n")
    exec(compile(src, "fills_mask.py", "exec"), ns)
    ctx = kernbench.Context("default", overrides=HW)
    o = ctx.empty((32,), "f32", name="o")
    with pytest.raises(KernelError, match=r"PE \(0, 0\) at fills_mask.py:3: masked store of \(8,\) f32 "
                                          r"reaches element 32 of allocation 'o'"):
        ctx.launch(ns["k"], (1, 1), o, mode=mode)


@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_a_divisor_of_fills_alone_is_checked_at_trace(mode):
    """A review: an int32 tile of zeros made by arithmetic on a fill (a cast), with no tl.arange
    in the kernel, divided a load in timing mode without a word (functional mode refused it)."""
    ns: dict = {}
    src = ("def k(x, o, *, tl):\n"
           "    a = tl.load(x, shape=(64,), dtype='int32')\n"
           "    d = tl.cast(tl.full((64,), 0.5), 'int32')\n"
           "    tl.store(o, a // d)\n")
    exec(compile(src, "fills_div.py", "exec"), ns)
    ctx = kernbench.Context("default", overrides=HW)
    x, o = ctx.replicate(np.ones(64, np.int32), dtype="int32"), ctx.empty((64,), "int32")
    with pytest.raises(KernelError, match=r"PE \(0, 0\) at fills_div.py:4: integer division or remainder by zero"):
        ctx.launch(ns["k"], (1, 1), x, o, mode=mode)


def test_a_known_value_is_computed_when_read_and_only_then(monkeypatch):
    """A value made from known ones (a causal mask: tl.arange, //, >=) is computed when
    something reads it (a masked access, a divisor, a tl.range proof), not when made: a mask
    that only feeds a tl.where on scores is never computed (it cost a causal prefill 27% of its
    tracing). What is read is computed exactly as before: a masked load whose mask ends a
    chain of 2,000 known adds (computed without recursion) is refused or accepted at its
    element, at its line."""
    from kernbench.language import builder as bm
    from kernbench.runtime import executor

    seen, made, lines = {}, {}, []

    class Spy(bm.PEBuilder):
        def finish(self):
            if not self.finished:
                seen[self.pe] = (self.base, set(self.known), set(self.lazy))
            return super().finish()

    monkeypatch.setattr(executor, "PEBuilder", Spy)
    ctx = kernbench.Context("default", overrides=HW)
    xp = ctx.replicate(np.ones(N, np.float32))

    def kernel(x_ptr, n_ok, *, tl):
        if tl.program_id(0):
            return
        s = tl.load(x_ptr, shape=(2, 4))
        qpos = tl.arange(4, 6) // 2
        causal = qpos[:, None] >= tl.arange(0, 4)[None, :]
        s = tl.where(causal, s, -1e30)  # s is not known: nor is this, and causal is not read
        offs = tl.arange(0, BLOCK)
        for _ in range(2000):
            offs = offs + 1
        m = offs < 2000 + n_ok
        made["ids"] = (qpos.id, causal.id, s.id, offs.id, m.id)
        lines.append(sys._getframe().f_lineno + 1)
        tl.load(x_ptr + 4 * 4, shape=(BLOCK,), mask=m)  # elements 4 .. 4 + n_ok - 1 unmasked

    r = ctx.launch(kernel, (1, 1), xp, 6, mode="timing")
    assert r.cycles > 0
    base, known, lazy = seen[0]
    qpos, causal, s, offs, m = (i - base for i in made["ids"])
    assert qpos in lazy and causal in lazy and qpos not in known and causal not in known
    assert s not in lazy and s not in known  # (an operand not known: no value at all)
    assert offs in known and m in known and not any(offs - 2000 < i <= m for i in lazy)
    with pytest.raises(KernelError) as ei:  # element 4 + 6 = 10 of 10 unmasked
        ctx.launch(kernel, (1, 1), xp, 7, mode="timing")
    assert f"PE (0, 0) at {FILE}:{lines[-1]}" in str(ei.value)
    assert "reaches element 10 of allocation" in str(ei.value)


@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_computing_a_known_value_warns_of_nothing(mode):
    """A known value is computed when read (another op's line, or never): numpy's warnings
    while computing it (a cast overflowing f16) would name the wrong line, so none is shown,
    whether the value is read (a mask made of it) or not; the launch is the same."""
    import warnings

    ctx = kernbench.Context("default", overrides=HW)
    xp = ctx.replicate(np.ones(N, np.float32))

    def unread(x_ptr, *, tl):
        big = tl.full((4,), 1e30, "f16")  # inf in f16
        big + tl.arange(0, 4)

    def read(x_ptr, *, tl):
        h = (tl.arange(0, 4) * 100000).to("f16")  # 1e5 .. 3e5: inf in f16
        tl.load(x_ptr, shape=(4,), mask=h > 0)

    for kernel in (unread, read):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert ctx.launch(kernel, (1, 1), xp, mode=mode).cycles > 0


def _eager_spy(monkeypatch, checked):
    """A builder that computes every known value as it is made (the way it was computed
    before it was kept as a recipe), beside the builder's own, and at the PE's end compares
    each with what the recipe computes when read: the same dtype, shape and bytes, or both
    unknown (a view of another size)."""
    from kernbench.language import builder as bm
    from kernbench.language.numerics import vec_value, view_value
    from kernbench.runtime import executor

    class Eager(bm.PEBuilder):
        def _fold(self, i, name, operands, shape, n, dtype, ct, imm):
            super()._fold(i, name, operands, shape, n, dtype, ct, imm)
            if i not in self.lazy:
                return
            if not hasattr(self, "_eager"):
                self._eager = {}
            args = []
            for o in operands:
                t = type(o)
                if t is int or t is tuple:
                    k = o if t is int else o[0]
                    v = self._eager.get(k, self.known.get(k))
                    if v is None and k in self.fills:
                        sh, dt, im = self.fills[k]
                        v = vec_value("fill", [], dt, sh, dt, im)
                    if v is not None and t is tuple:
                        try:
                            v = view_value(v, o)
                        except ValueError:
                            v = None
                    if v is None:
                        self._eager[i] = None
                        return
                    o = v
                args.append(o)
            with np.errstate(all="ignore"):
                try:
                    self._eager[i] = vec_value(name, args, ct, shape, dtype, imm)
                except ValueError:
                    self._eager[i] = None

        def finish(self):
            if not self.finished:
                for i, want in getattr(self, "_eager", {}).items():
                    got = self.known_value(i)
                    assert (got is None) == (want is None), i
                    if got is not None:
                        assert got.dtype == want.dtype and got.shape == want.shape, i
                        assert got.tobytes() == want.tobytes(), i
                    checked.append(i)
            return super().finish()

    monkeypatch.setattr(executor, "PEBuilder", Eager)


def test_known_values_computed_when_read_equal_those_computed_when_made_shipped(monkeypatch):
    """The shipped causal prefill (its masks) and the ring kernels of the diag's small panels:
    every known value, computed when read, equals the value computed as it was made."""
    from kernbench.diag import panel_spec, run_panel
    from kernbench.hw import load_hw

    checked = []
    _eager_spy(monkeypatch, checked)
    hw = load_hw("default")
    for spec in (panel_spec("single_user_prefill", hw, shape="llama70b", context=2048, causal=True),
                 panel_spec("single_user_prefill", hw, causal=True),
                 panel_spec("single_user_decode", hw)):
        assert run_panel(spec, hw).passed
    assert len(checked) > 100


_OPS = ["+", "-", "*", "//", "%", "<", ">=", "&", "max", "where", "f16", "view"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(st.tuples(st.sampled_from(_OPS), st.integers(-3, 9), st.integers(0, 5)),
                    min_size=1, max_size=25))
def test_known_values_computed_when_read_equal_those_computed_when_made_generated(ops):
    """Random chains of known ops (int32, masks, f16 casts, [:, None] views to (8, 8), fills, Python
    numbers, several reading one value), every value read at the end (a masked load of the
    last mask): computed when read, each equals the value computed when made."""
    import _pytest.monkeypatch

    checked = []
    mp = _pytest.monkeypatch.MonkeyPatch()
    try:
        _eager_spy(mp, checked)

        def kernel(x_ptr, *, tl):
            vals = [tl.arange(0, 8) - 3, tl.full((8,), 2, "int32")]
            for op, c, j in ops:
                a, b = vals[-1], vals[j % len(vals)]
                if a.dtype != b.dtype:
                    b = c
                if op == "+":
                    r = a + b
                elif op == "-":
                    r = a - c
                elif op == "*":
                    r = a * b
                elif op in ("//", "%"):
                    if a.dtype != "int32":
                        continue
                    d = c if c != 0 else 7
                    r = a // d if op == "//" else a % d
                elif op == "<":
                    r = (a < c).to("int32") if a.dtype != "bool" else a
                elif op == ">=":
                    r = tl.where(a >= c, a, b)
                elif op == "&":
                    r = (a > c) & (a < c + 4)
                    r = r.to("int32")
                elif op == "max":
                    r = tl.maximum(a, b)
                elif op == "where":
                    r = tl.where(a > 0, a, c)
                elif op == "f16":
                    r = (a * 1000).to("f16").to("int32") if a.dtype == "int32" else a
                elif len(a.shape) == 1:  # views: a column against the row, (8, 8)
                    r = tl.where(a[:, None] >= b[None, :], a[:, None], c)
                else:
                    r = a
                vals.append(r)
            m = vals[-1] > 0 if vals[-1].dtype != "bool" else vals[-1]
            tl.load(x_ptr, shape=m.shape, mask=m)

        ctx = kernbench.Context("default", overrides=HW)
        ctx.launch(kernel, (1, 1), ctx.replicate(np.ones(64, np.float32)), mode="timing")
    finally:
        mp.undo()
    assert checked  # (the last mask, at least, was computed when read)


# -- a review's cases (2026-12-05): a halo before the allocation, overlapping masked stores ------
@pytest.mark.parametrize("known", [True, False])
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_a_halo_before_the_allocation_is_masked_off(known, mode):
    # Triton's stencil idiom o[i] = x[i - 1]: the tile starts one element before x, its first
    # element masked off (refused once, naming another allocation's end). The allocation before
    # x is as long as the guard gap, so x - 4 is as near x as the gap after it allows.
    ctx = kernbench.Context("default", overrides=HW)
    ctx.replicate(np.zeros(1024, np.float32), name="first")  # 4,096 bytes: x starts a gap after it
    x = ctx.replicate(np.arange(100, 110, dtype=np.float32), name="x")
    o = ctx.empty((10,), "f32", name="o")
    keep = ctx.replicate(np.array([0] + [1] * 9, np.float32))  # the same mask, as data

    def kernel(x_ptr, o_ptr, k_ptr, *, tl):
        offs = tl.arange(0, 10)
        m = offs >= 1 if known else tl.load(k_ptr, shape=(10,)) > 0.0
        v = tl.load(x_ptr - 4, shape=(10,), mask=m, other=0.0)
        tl.store(o_ptr - 4, v + 1.0, mask=(offs >= 1) & (offs < 11))  # a halo store too

    ctx.launch(kernel, (1, 1), x, o, keep, mode=mode)
    if mode == "functional":
        np.testing.assert_array_equal(ctx.read(o, (0, 0))[:9], np.arange(101, 110, dtype=np.float32))

    def unmasked(x_ptr, *, tl):
        tl.load(x_ptr - 4, shape=(10,), mask=tl.arange(0, 10) >= 0)  # the halo element too

    with pytest.raises(KernelError, match=r"reaches element -1 of allocation 'x'"):
        ctx.launch(unmasked, (1, 1), x, mode=mode)


def test_a_masked_access_between_two_allocations_takes_the_one_it_reaches():
    # (past the end of the one before, or before the one after: whose dtype the access reads;
    # a review found a first rule, the nearer end, gave a halo of 2 KiB or more to the one before)
    ctx = kernbench.Context("default", overrides=HW)
    a = ctx.replicate(np.arange(1024, dtype=np.float32), name="a")  # 4,096 bytes: b is a gap after it
    b = ctx.replicate(np.arange(8, dtype=np.int32), dtype="int32", name="b")
    seen = {}

    def kernel(a_ptr, b_ptr, *, tl):
        offs = tl.arange(0, 4)
        seen["tail"] = tl.load(a_ptr + 4096, shape=(4,), mask=offs < 0)  # all past a's end: a's
        seen["halo"] = tl.load(b_ptr - 8, shape=(4,), mask=offs >= 2)  # two before b: b's
        # a 4 KiB halo (the row above b's first, masked off)
        seen["row"] = tl.load(b_ptr - 4096, shape=(1032,), mask=tl.arange(0, 1032) >= 1024)

    ctx.launch(kernel, (1, 1), a, b)
    assert seen["tail"].dtype == "f32" and seen["halo"].dtype == "int32" and seen["row"].dtype == "int32"
    np.testing.assert_array_equal(seen["halo"].data, [0, 0, 0, 1])
    np.testing.assert_array_equal(seen["row"].data[1024:], np.arange(8))


@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_a_block_before_an_allocation_masked_off_whole_is_refused_as_docs_say(mode):
    """A block 32 bytes before an allocation, every element masked off, not within 4 KiB past
    another's end: it may as well be a block far past another array (the address does not say),
    so it is refused (docs/language.md, "Pointers": a review found the docs allowed it without
    saying the mask must let an element in). With one element let in it is the halo's."""
    ctx = kernbench.Context("default", overrides=HW)
    x = ctx.replicate(np.arange(8, dtype=np.float32), name="x")
    seen = {}

    def off_whole(x_ptr, *, tl):
        tl.load(x_ptr - 32, shape=(8,), mask=tl.arange(0, 8) < 0, other=-1.0)

    def one_in(x_ptr, *, tl):
        seen["v"] = tl.load(x_ptr - 28, shape=(8,), mask=tl.arange(0, 8) >= 7, other=-1.0)

    with pytest.raises(KernelError, match="outside every device allocation .*or before it when its "
                                          "mask lets an element of it in"):
        ctx.launch(off_whole, (1, 1), x, mode=mode)
    ctx.launch(one_in, (1, 1), x, mode=mode)
    if mode == "functional":
        assert seen["v"].data.tolist() == [-1.0] * 7 + [0.0]


@pytest.mark.parametrize("known", [True, False])
def test_a_masked_store_whose_rows_overlap_where_unmasked_is_refused(known):
    # Triton's forgotten `cols < N`: a 4-column tile stored with stride 3 writes element 3 twice
    # (the later row won, silently)
    ctx = kernbench.Context("default", overrides=HW)
    d = ctx.empty((7,), "f32", name="d")  # (the last row reaches element 6)
    rows_ok = ctx.replicate(np.ones(2, np.float32))
    lines = []

    def kernel(d_ptr, r_ptr, *, tl):
        rows = tl.arange(0, 2)[:, None] if known else tl.load(r_ptr, shape=(2,))[:, None]
        m = tl.broadcast_to((rows < 2) if known else (rows > 0.0), (2, 4))
        lines.append(sys._getframe().f_lineno + 1)
        tl.store(d_ptr, tl.full((2, 4), 1.0, "f32"), stride=3, mask=m)

    with pytest.raises(KernelError) as ei:
        ctx.launch(kernel, (1, 1), d, rows_ok)
    msg = str(ei.value)
    assert f"PE (0, 0) at {FILE}:{lines[-1]}" in msg, msg
    assert ("masked store of (2,4) f32 writes element 3 of allocation 'd' twice where the mask is "
            "true: its rows (4 columns, 3 elements apart) overlap") in msg

    def fixed(d_ptr, *, tl):  # the columns past each row masked off: accepted
        m = (tl.arange(0, 2)[:, None] < 2) & (tl.arange(0, 4)[None, :] < 3)
        tl.store(d_ptr, tl.full((2, 4), 1.0, "f32"), stride=3, mask=m)

    ctx.launch(fixed, (1, 1), d)
    np.testing.assert_array_equal(ctx.read(d, (0, 0))[:6], np.ones(6))


def test_a_block_masked_off_past_the_data_keeps_its_array_whatever_follows_it():
    # Triton's vector add on a grid one block larger than the data: the last block starts in
    # x's guard gap, all masked off. A review found it took the allocation after x (its dtype
    # and its cost), and refused dtype="f32" naming that allocation.
    n = 1000

    def add(x_ptr, o_ptr, *, tl):
        offs = tl.program_id(0) * n + tl.arange(0, n)
        v = tl.load(x_ptr + 4 * tl.program_id(0) * n, shape=(n,), mask=offs < n, other=0.0, dtype="f32")
        tl.store(o_ptr + 4 * tl.program_id(0) * n, v, mask=offs < n)

    cycles = set()
    for neighbour in ("f32", "f16", "int32"):
        ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 4})
        x = ctx.replicate(np.ones(n, np.float32), name="x")
        ctx.replicate(np.zeros(n, np.float32), dtype=neighbour, name="neighbour")  # right after x
        out = ctx.empty((n,), "f32", name="out")
        cycles.add(ctx.launch(add, (3, 1), x, out, mode="timing").cycles)
        ctx.launch(add, (3, 1), x, out)
        np.testing.assert_array_equal(ctx.read(out, (0, 0)), np.ones(n))
    assert len(cycles) == 1


@pytest.mark.parametrize("order", ["x first", "out first"])
def test_a_block_masked_off_far_past_the_data_is_refused_and_an_early_return_runs(order):
    # A block 4 KiB and more past its array, every element masked off: an address does not say
    # which array it came from, and taking the allocation below or after it gave the block
    # another array's dtype and cost (a review: wrong cycles, false refusals, an input listed
    # as written). Refused, saying how to write it: return before the loads and stores.
    n, B = 100, 256  # (block 5 starts 5,120 bytes in: past x's 400 bytes and its 4 KiB gap)
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 8})
    made = {}
    for name in (("x", "out") if order == "x first" else ("out", "x")):
        made[name] = (ctx.replicate(np.arange(n, dtype=np.float32), name="x") if name == "x"
                      else ctx.empty((n,), "f16", name="out"))
    x, out = made["x"], made["out"]

    def add(x_ptr, o_ptr, *, tl):
        pid = tl.program_id(0)
        offs = pid * B + tl.arange(0, B)
        v = tl.load(x_ptr + 4 * pid * B, shape=(B,), mask=offs < n, other=0.0)
        tl.store(o_ptr + 2 * pid * B, v + 1.0, mask=offs < n)

    with pytest.raises(KernelError, match=r"outside every device allocation .*a masked access may start "
                                          r"at most 4 KiB past the end of its allocation.*returns before "
                                          r"its loads and stores"):
        ctx.launch(add, (8, 1), x, out, mode="timing")

    def add_early(x_ptr, o_ptr, *, tl):
        pid = tl.program_id(0)
        if pid * B >= n:
            return
        add(x_ptr, o_ptr, tl=tl)

    cycles = ctx.launch(add_early, (8, 1), x, out, mode="timing").cycles
    r = ctx.launch(add_early, (8, 1), x, out)
    assert r.cycles == cycles and r.written_args == ("o_ptr",)
    np.testing.assert_array_equal(ctx.read(out, (0, 0)), (np.arange(n) + 1).astype(np.float16))
    with pytest.raises(KernelError, match="outside the device address space"):
        ctx.launch(lambda p, *, tl: tl.load(p + 2 ** 100, shape=(4,), mask=tl.arange(0, 4) < 0), (1, 1), x)


def test_check_masked_skips_the_mask_only_where_no_mask_could_fail():
    """semantic.check_masked returns without reading the mask when the whole tile lies inside its
    allocation, rows apart (a fast path: a masked store of a mask made before a loop cost 3.6x an
    unmasked one). Against the slow rule (semantic.masked_access, the mask all true: the most it
    can let in), on every small case: where the fast path says nothing can fail, nothing does,
    and where it does not apply, the slow rule runs (a refusal there is checked as before)."""
    import types as _types

    from kernbench.language import semantic

    real = semantic.masked_access
    calls: list = []

    def counted(*a, **k):
        calls.append(a)
        return real(*a, **k)

    skipped = 0
    for numel in range(1, 13):
        alloc = _types.SimpleNamespace(numel=numel, name="a", dtype="f32")
        for shape, stride in [((n,), None) for n in range(1, 14)] + [
                ((r, c), sd) for r in (1, 2, 3) for c in (1, 2, 4) for sd in (None, c - 1, c, c + 2) if sd != 0]:
            for e0 in range(-3, numel + 4):
                calls.clear()
                try:
                    semantic.masked_access = counted
                    try:
                        semantic.check_masked(None, alloc, e0, shape, stride, np.ones(shape, bool), "store")
                        refused = False
                    except Exception:  # (fail(None, ...): a refusal, whatever it raises without a builder)
                        refused = True
                finally:
                    semantic.masked_access = real
                slow = real(alloc, e0, shape, stride, np.ones(shape, bool), store=True)[2]
                if not calls:  # the fast path: nothing the mask lets in can leave the allocation
                    skipped += 1
                    assert slow is None and not refused, (numel, shape, stride, e0)
                else:
                    assert refused == (slow is not None), (numel, shape, stride, e0)
    assert skipped > 100


def _blocks_4k(x_ptr, o_ptr, *, tl):
    """PE 1's block of 1,024 f32 starts 8 KiB into x of 4 KiB: exactly 4 KiB past its end, the
    end of its guard gap; masked off whole."""
    n = 1024
    pid = tl.program_id(0)
    offs = pid * n + tl.arange(0, n)
    v = tl.load(x_ptr + 4 * pid * n * 2, shape=(n,), mask=offs < n, other=0.0, dtype="f32")
    tl.store(o_ptr + 4 * pid * n, v, mask=offs < n)


@pytest.mark.parametrize("neighbour", ["f32", "f16", "int32"])
def test_a_block_masked_off_exactly_4_kib_past_its_array_keeps_it(neighbour):
    # (A review's split-K: the last split's block of B, all masked off, starts exactly 4 KiB
    # past B's end, the end of the guard gap: the next allocation's first byte. It was refused
    # as a load of that array's dtype (f32), or taken as reading it (f16), by what followed B.)
    n = 1024  # (4 KiB of f32: the next allocation starts one guard gap, 4 KiB, after x's end)

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    x = ctx.replicate(np.ones(n, np.float32), name="x")
    nb = ctx.replicate(np.zeros(n, np.float32), dtype=neighbour, name="neighbour")
    assert nb.addr == x.addr + 2 * 4 * n  # (the case: PE 1's block starts on its first byte)
    out = ctx.empty((2 * n,), "f32", name="out")
    ctx.launch(_blocks_4k, (2, 1), x, out)
    np.testing.assert_array_equal(ctx.read(out, (0, 0))[:n], np.ones(n))
    assert ctx.launch(_blocks_4k, (2, 1), x, out, mode="timing").cycles > 0

    def lets_one_in(x_ptr, o_ptr, *, tl):  # the mask lets the neighbour's first element in
        offs = tl.arange(0, n)
        tl.load(x_ptr + 4 * n * 2, shape=(n,), mask=offs < 1, other=0.0, dtype="f32")

    if neighbour != "f32":  # (then it is the neighbour's load, of the neighbour's dtype)
        with pytest.raises(KernelError, match=r"load as f32 from allocation 'neighbour'"):
            ctx.launch(lets_one_in, (1, 1), x, out)


@pytest.mark.parametrize("n_left", [1, 0])
def test_a_tail_block_masked_off_at_its_own_array_s_first_byte_is_its_own(n_left):
    # (A fuzzer: y starts exactly 4 KiB past the end of x, a 4 KiB f32 array, so y's first byte
    # is also the end of x's guard gap. A load of y's f16 there with nothing left, n = 0, was
    # given to x and refused as "load as f16 from allocation 'x', which holds f32"; with a
    # 16-byte x it ran. A load naming the dtype of the array it starts on, and not the one
    # before's, is that array's; one naming the one before's stays that one's, as above.)
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.put(np.zeros(1024, np.float32), pe=(0, 0), name="x")
    y = ctx.put(np.ones(8, np.float16), pe=(0, 0), dtype="f16", name="y")
    assert y.addr == x.addr + 2 * 4096  # (the case)

    def tail(x_ptr, y_ptr, n, *, tl):
        t = tl.load(y_ptr, shape=(8,), dtype="f16", mask=tl.arange(0, 8) < n, other=0.0)
        tl.store(y_ptr, t + 1, mask=tl.arange(0, 8) < 8)

    ctx.launch(tail, (1, 1), x, y, n_left)
    want = np.ones(8, np.float16)
    want[n_left:] = 0
    np.testing.assert_array_equal(ctx.read(y, (0, 0)), want + 1)
    assert ctx.launch(tail, (1, 1), x, y, n_left, mode="timing").cycles > 0


@pytest.mark.parametrize("after", ["nothing", "a freed array"])
def test_a_block_masked_off_exactly_4_kib_past_the_last_array_keeps_it(after):
    # (A breaker: the fix above reached the case of an array right after x only; with x the
    # last allocation, or the one after it freed, the same block was refused as "4096 bytes
    # past the end" of x, "at most 4 KiB" in the same message.)
    n = 1024

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 2})
    out = ctx.empty((2 * n,), "f32", name="out")
    x = ctx.replicate(np.ones(n, np.float32), name="x")
    if after == "a freed array":
        ctx.free(ctx.empty((n,), "f16"))
    ctx.launch(_blocks_4k, (2, 1), x, out)
    np.testing.assert_array_equal(ctx.read(out, (0, 0))[:n], np.ones(n))
