"""What a kernel ported from Triton reaches for and kernbench's language has instead: the
hints the launch adds to the error of a ``tl.<name>`` that is not a call here, or of a Triton
tensor method called on a TensorHandle. docs/language.md, "Porting from Triton", is the
whole table; these are its rows a kernel runs into as an AttributeError."""
from __future__ import annotations

__all__ = ["TL_INSTEAD", "METHOD_INSTEAD", "TRITON_METHODS", "NOT_IN_TL", "tl_hint", "method_hint", "not_in_tl"]

#: Triton's ``tl.<name>`` -> what to write here
TL_INSTEAD = {
    "fdiv": "a / b", "div_rn": "a / b", "sqrt_rn": "tl.sqrt(x) (correctly rounded here)",
    **{name: "tl.fp8e4m3 (Triton's float8e4nv) or tl.fp8e5m2 (float8e5): kernbench has no other fp8"
       for name in ("float8e4b15", "float8e4b8", "float8e5b16")},
    "device_print": "nothing while tracing: read h.data after a functional launch",
    "device_assert": "nothing while tracing: read h.data after a functional launch",
    "static_print": "print() of Python values (shapes, dtypes) while tracing",
    "static_assert": "a Python assert",
    "debug_barrier": "nothing: each unit runs in program order and operands are tracked",
    "multiple_of": "nothing: a compiler hint, leave it out",
    "max_contiguous": "nothing: a compiler hint, leave it out",
    "max_constancy": "nothing: a compiler hint, leave it out",
    "assume": "nothing: a compiler hint, leave it out (a Python assert checks a trace-time value)",
    "constexpr": "a plain Python value",
    "view": "tl.reshape(x, shape)",
    "permute": "tl.trans(x) for a 2-D tensor",
    "ravel": "tl.reshape(x, (n,))",
    "expand_dims": "x[:, None] or x[None, :]",
    "pow": "x ** n for a Python int n, else tl.exp(p * tl.log(x))",
    "int1": "a mask: what a comparison returns (x != 0 for x.to(tl.int1))",
    **{name: "tl.int32, the one integer dtype here (its arithmetic wraps as Triton's int32 does; "
             "an index past 2**31 is refused, not wrapped); a mask (x != 0) for a boolean"
       for name in ("int8", "int16", "int64", "uint8", "uint16", "uint32", "uint64")},
    "zeros_like": "tl.zeros(x.shape, x.dtype)",
    "full_like": "tl.full(x.shape, value, x.dtype)",
    "clamp": "tl.minimum(tl.maximum(x, lo), hi)",
    **{f"atomic_{op}": "nothing: PEs do not share memory; combine over links (tl.send / tl.recv)"
       for op in ("add", "sub", "max", "min", "and", "or", "xor", "xchg", "cas")},
    "make_block_ptr": "tl.load(base + itemsize * (r0 * stride + c0), shape=block_shape, "
                      "stride=stride) (a K^T block with order=(0, 1): tl.trans of the (BN, D) tile)",
    "advance": "the next block's offset from the loop index (base + itemsize * i * BLOCK * stride), "
               "which tl.range replays (a pointer in an int local advanced with += too: replay steps it)",
    **{name: "tl.load(base + itemsize * (r0 * stride + c0), shape=block_shape, stride=stride)"
       for name in ("make_tensor_descriptor", "load_tensor_descriptor", "store_tensor_descriptor")},
    **{name: "nothing: the model has no random generator; pass random data as an input, or "
             "hash tl.arange with int32 arithmetic (*, ^, >>, &: it wraps as Triton's does)"
       for name in ("rand", "randn", "randint", "randint4x", "rand4x", "philox")},
    "extra": "tl.<name> for libdevice's functions kernbench has (exp, exp2, log, log2, sqrt, "
             "rsqrt, abs; pow: x ** n for a Python int n)",
    "fma": "a * b + c: two commands, each rounded (there is no fused multiply-add)",
    "tanh": "2 * tl.sigmoid(2 * x) - 1 (each op rounded: no tanh unit op; its error is absolute, "
            "about an f32 ulp of 1, so near 0 it is x's that counts: tl.where(abs(x) < 2**-12, x, "
            "2 * tl.sigmoid(2 * x) - 1) keeps it relative, tanh(x) rounding to x there)",
    "erf": "nothing: no erf unit op; GELU's tanh form, x * tl.sigmoid(1.5957691 * (x + 0.044715 * "
           "x * x * x))",
    **{name: "nothing: no trigonometric unit ops; pass the values as an input (RoPE's cos and sin "
             "tables are)" for name in ("cos", "sin")},
    "floor": "t - tl.where(t > x, 1.0, 0.0) with t = tl.cast(tl.cast(x, tl.int32), x.dtype) (a cast "
             "to int32 truncates toward zero; |x| < 2**31)",
    "ceil": "t + tl.where(t < x, 1.0, 0.0) with t = tl.cast(tl.cast(x, tl.int32), x.dtype) (a cast "
            "to int32 truncates toward zero; |x| < 2**31)",
    **{name: f"m = tl.{op}(x, axis); tl.min(tl.where(x == m, idx, BIG), axis) with idx a tl.arange "
             f"along the axis: the first index of the {word} (a row with a NaN gives BIG)"
       for name, op, word in (("argmax", "max", "maximum"), ("argmin", "min", "minimum"))},
    "reduce": "tl.sum, tl.max or tl.min, or the combine written as ops on halves of the tile",
    "umulhi": "nothing: no 64-bit products (int32 arithmetic wraps)",
    # (a review porting Triton's tutorials: these refusals said what was missing, not what to
    # write; each formula below was run against numpy before it was written here)
    "cumsum": "a prefix sum along the last axis of an (M, N) tile as one dot, tl.dot(x, tri) with "
              "r = tl.arange(0, N) and tri = tl.where(r[:, None] <= r[None, :], 1.0, 0.0) (f32; "
              "finite values: an inf or NaN times 0 spreads along its row)",
    "associative_scan": "for a sum, tl.cumsum's dot (tl.dot(x, tri), tri = tl.where(r[:, None] <= "
                        "r[None, :], 1.0, 0.0)); no other combine",
    "cumprod": "nothing exact: no product scan (for positive values, tl.exp of tl.cumsum's dot of "
               "tl.log(x), rounded differently)",
    "flip": "the last axis of an (M, N) tile reversed as one dot, tl.dot(x, J) with "
            "r = tl.arange(0, N) and J = tl.where(r[:, None] + r[None, :] == N - 1, 1.0, 0.0) (f32; "
            "finite values: an inf or NaN times 0 spreads along its row; a -0 reads as +0)",
    **{name: "nothing: no sort unit op; sort on the host and pass the sorted data, or for a few "
             "largest, repeated tl.max with the found one masked out by tl.where"
       for name in ("sort", "topk")},
    "histogram": "tl.sum(x[:, None] == bins[None, :], axis=0) for int32 x and bins = "
                 "tl.arange(0, n_bins): an int32 (1, n_bins) count",
    "gather": "tl.sum(tl.where(offs == y, x, 0), axis) with offs a tl.arange along the axis: the "
              "element at index y, in x's dtype (an int 0: 0.0 would make an int32 x f32; a -0 "
              "reads as +0)",
    "swizzle2d": "Python arithmetic: program ids are Python ints here, so Triton's swizzle2d "
                 "formula runs as written in plain Python",
    **{name: "nothing: no concatenation op; store the parts at their offsets in one buffer "
             "(stride= for a 2-D tile) and load the whole"
       for name in ("cat", "join", "interleave")},
    "split": "the halves loaded as tiles of their own (a load each)",
    "xor_sum": "nothing: no xor reduction (tl.sum, tl.max and tl.min reduce)",
}

#: Triton's tensor methods -> the tl call here
METHOD_INSTEAD = {
    "sum": "tl.sum(x, axis)", "max": "tl.max(x, axis)", "min": "tl.min(x, axis)",
    "reshape": "tl.reshape(x, shape)", "view": "tl.reshape(x, shape)",
    "trans": "tl.trans(x) (or x.T)", "permute": "tl.trans(x) for a 2-D tensor",
    "exp": "tl.exp(x)", "log": "tl.log(x)", "sqrt": "tl.sqrt(x)", "abs": "abs(x)",
    "broadcast_to": "tl.broadcast_to(x, shape)",
    # (Triton's softmax without dim= is along axis 0; tl.softmax's default is the last axis)
    "softmax": "tl.softmax(x, 0) for x.softmax() (Triton's is along axis 0 without dim=; "
               "tl.softmax's default is the last axis), tl.softmax(x, dim) for x.softmax(dim)",
    **{name: f"tl.{name}(x)" for name in ("exp2", "log2", "rsqrt", "sigmoid")},
    "logical_and": "x & y (of masks: & is logical)", "logical_or": "x | y (of masks: | is logical)",
    "reduce_or": "tl.max(x, axis) of a mask (a mask's max is any)",
    "numel": "math.prod(x.shape) (a Python int)", "type": "x.dtype and x.shape",
    "cast": "x.to(dtype) or tl.cast(x, dtype)", "astype": "x.to(dtype) or tl.cast(x, dtype)",
    "numpy": "h.data after a functional launch", "item": "h.data after a functional launch",
    "tolist": "h.data after a functional launch",
}

#: Triton's tensor methods and attributes a TensorHandle has not (its ``@_tensor_member_fn``s:
#: triton/language core, standard and math; ``numel`` and ``type``), each hinted as a method
#: (METHOD_INSTEAD) or as the ``tl.<name>`` it stands for (TL_INSTEAD)
TRITON_METHODS = (
    "sum", "max", "min", "argmax", "argmin", "xor_sum", "reduce_or", "reduce", "associative_scan",
    "cumsum", "cumprod", "histogram", "gather", "sort", "topk", "flip", "reshape", "view", "ravel",
    "trans", "permute", "expand_dims", "broadcast_to", "split", "interleave", "cast", "abs", "exp",
    "exp2", "log", "log2", "sqrt", "sqrt_rn", "rsqrt", "sigmoid", "softmax", "cos", "sin", "erf",
    "floor", "ceil", "fma", "fdiv", "div_rn", "umulhi", "logical_and", "logical_or", "numel", "type",
)


#: Triton's ``tl.<name>``s (its language reference, triton.language, and the dtypes and
#: modules beside it) that kernbench's ``tl`` has not: ``tl`` has each as an attribute that
#: raises NotInLanguageError where the kernel reaches it (builtins.TL lists them in this order)
NOT_IN_TL = (
    "tensor", "tensor_descriptor", "cat", "zeros_like", "full_like", "broadcast", "expand_dims",
    "interleave", "join", "permute", "ravel", "split", "dot_scaled", "make_tensor_descriptor",
    "load_tensor_descriptor", "store_tensor_descriptor", "make_block_ptr", "advance", "flip",
    "swizzle2d", "ceil", "clamp", "cos", "div_rn", "erf", "fdiv", "floor", "fma", "sin", "tanh",
    "sqrt_rn", "umulhi", "argmax", "argmin", "reduce", "xor_sum", "associative_scan", "cumprod",
    "cumsum", "histogram", "sort", "topk", "gather", "atomic_add", "atomic_sub", "atomic_and",
    "atomic_cas", "atomic_max", "atomic_min", "atomic_or", "atomic_xchg", "atomic_xor",
    "randint4x", "randint", "rand", "randn", "rand4x", "randn4x", "philox",
    "inline_asm_elementwise", "debug_barrier", "max_constancy", "max_contiguous", "multiple_of",
    "assume", "static_print", "static_assert", "device_print", "device_assert", "int1", "int8",
    "int16", "int64", "uint8", "uint16", "uint32", "uint64", "float64", "float8e4b15",
    "float8e4b8", "float8e5b16", "pointer_type", "block_type", "constexpr", "dtype", "void",
    "extra",
)


def not_in_tl(name: str) -> str:
    """The error text of a ``tl.<name>`` kernbench's language has not (one of NOT_IN_TL, reached
    in the kernel, or any other name, as the launch reports the AttributeError that escaped)."""
    return (f"tl.{name} is not part of kernbench's tl language (docs/language.md, 'Calls' and "
            f"'Porting from Triton').{tl_hint(name)}")


def tl_hint(name: str) -> str:
    """``" Instead: ..."`` for a Triton ``tl.<name>`` kernbench does not have, else ""."""
    got = TL_INSTEAD.get(name)
    return f" Instead: {got}." if got else ""


def method_hint(name: str) -> str | None:
    """What to write for Triton tensor method ``x.<name>(...)`` on a TensorHandle, or None (a
    name no Triton tensor has: a typo's AttributeError, as Python says it)."""
    got = METHOD_INSTEAD.get(name)
    if got is None and name in TRITON_METHODS:
        got = TL_INSTEAD.get(name)
    return got
