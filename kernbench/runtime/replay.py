"""Functional replay: compute every traced command with numpy, in the engine's completion order.

The engine times the commands; replay gives them values. Running in completion order means a
command's operands are computed before it (an operand is ready only when its producer ends), a
load sees every earlier store of its PE (the DMA unit is in order), and a recv finds its message:
the engine's ``messages`` pairs each recv with its send, whose value is stashed when the send
completes (a send ends before its recv does).

Numerics: values are kept in their declared dtypes (f16, bf16, f32, fp8 via ml_dtypes). Every op
computes in f32 and rounds its output to the output dtype; dot and reductions accumulate in f32;
a store converts to the allocation's dtype.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..language.semantic import NP_DTYPES

__all__ = ["replay", "value_of"]

_F32 = np.dtype(np.float32)

_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "maximum": np.maximum, "minimum": np.minimum,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "eq": np.equal, "ne": np.not_equal,
}
_UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda x: np.float32(1.0) / np.sqrt(x),
    "neg": np.negative, "abs": np.abs,
}
_REDUCE = {"max": np.max, "min": np.min, "sum": np.sum}


def value_of(vals: list, spec) -> np.ndarray:
    """The value an operand spec reads: a tensor id, or (id, shape, transposed) for a view."""
    if type(spec) is int:
        return vals[spec]
    i, shape, trans = spec
    v = vals[i]
    if trans:
        return v.reshape(shape[:-2] + (shape[-1], shape[-2])).swapaxes(-1, -2)
    return v.reshape(shape)


def _f32(vals: list, x):
    """Operand as f32 (bool masks stay bool); immediates as f32 scalars."""
    if type(x) is float:
        return np.float32(x)
    v = value_of(vals, x)
    return v if v.dtype == _F32 or v.dtype == np.bool_ else v.astype(_F32)


def _to(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round to ``dtype`` once (through f32, so bf16 -> f16 and fp8 conversions are exact-then-round)."""
    if v.dtype == dtype:
        return v
    if v.dtype != _F32 and dtype != _F32:
        v = v.astype(_F32)
    return v.astype(dtype)


def _region(flat: np.ndarray, e0: int, shape: tuple, stride) -> np.ndarray:
    if stride is None:
        n = 1
        for d in shape:
            n *= d
        return flat[e0:e0 + n].reshape(shape)
    isz = flat.itemsize
    return as_strided(flat[e0:], shape=shape, strides=(stride * isz, isz))


def replay(program, engine, metas: list, handles: list, memory) -> None:
    """Compute every command of ``program`` and write stores into ``memory``.

    ``metas[g]`` is PE g's command metadata (builder.meta, or None for a silent PE);
    ``handles[g][i]`` a weak reference to the handle returned for tensor i, whose ``.data`` gets
    the value if the kernel still holds it. A value is dropped once its last reader has run, so
    replay holds about what the PEs' SRAM would, not every tensor of the launch."""
    order = engine.completion_order
    if len(order) == 0:
        return
    cmds = program.commands
    offs = program.cmd_offsets
    pe_of = np.searchsorted(offs, order, side="right") - 1
    local = order - offs[pe_of]
    dst_of = cmds["dst"].tolist()
    srcs_of = list(zip(cmds["src0"].tolist(), cmds["src1"].tolist(), cmds["src2"].tolist()))
    msgs = engine.messages
    send_of = dict(zip(msgs["recv"].tolist(), msgs["send"].tolist()))
    stash: dict = {}
    vals, readers = [], []
    t_off = program.tensor_offsets
    for g in range(len(metas)):
        n_t = int(t_off[g + 1] - t_off[g])
        vals.append([None] * n_t)
        c = program.pe_commands(g)
        ids = np.concatenate([c["src0"], c["src1"], c["src2"]])
        readers.append(np.bincount(ids[ids >= 0], minlength=n_t).tolist())
    with np.errstate(all="ignore"):
        for g, li, idx in zip(pe_of.tolist(), local.tolist(), order.tolist()):
            m = metas[g][li]
            v = vals[g]
            kind = m[0]
            dst = dst_of[idx]
            if kind == "vec":
                name, ops, shape, dtype = m[3], m[4], m[5], m[6]
                out = NP_DTYPES[dtype]
                if name in _BINARY:
                    r = _BINARY[name](_f32(v, ops[0]), _f32(v, ops[1]))
                elif name in _UNARY:
                    r = _UNARY[name](_f32(v, ops[0]))
                elif name == "fill":
                    r = np.full(shape, ops[0], _F32)
                elif name == "cast":
                    r = value_of(v, ops[0])
                else:  # where
                    c = _f32(v, ops[0])
                    r = np.where(c if c.dtype == np.bool_ else c != 0, _f32(v, ops[1]), _f32(v, ops[2]))
                r = np.asarray(r)
                if r.shape != shape:
                    r = np.broadcast_to(r, shape)
                v[dst] = np.ascontiguousarray(_to(r, out))
            elif kind == "load":
                alloc, e0, shape, stride = m[3], m[4], m[5], m[6]
                v[dst] = np.array(_region(memory.flat(alloc, g), e0, shape, stride))
            elif kind == "dot":
                v[dst] = np.matmul(_f32(v, m[3]), _f32(v, m[4]))
            elif kind == "reduce":
                name, spec, axis, dtype = m[3], m[4], m[6], m[7]
                r = _REDUCE[name](_f32(v, spec), axis=axis, keepdims=True)
                v[dst] = np.ascontiguousarray(_to(np.asarray(r, _F32), NP_DTYPES[dtype]))
            elif kind == "store":
                spec, alloc, e0, shape, stride = m[3], m[4], m[5], m[6], m[7]
                x = _to(value_of(v, spec), NP_DTYPES[alloc.dtype])
                _region(memory.writable(alloc, g), e0, shape, stride)[...] = x.reshape(shape)
            elif kind == "send":
                stash[idx] = value_of(v, m[3])
            elif kind == "recv":
                v[dst] = stash.pop(send_of[idx]).reshape(m[4])
            else:  # pragma: no cover - the builder makes only the kinds above
                raise AssertionError(f"unknown command kind {kind!r}")
            if dst >= 0:
                h = handles[g][dst]()
                if h is not None:
                    h.data = v[dst]
            rd = readers[g]
            for sid in srcs_of[idx]:
                if sid >= 0:
                    rd[sid] -= 1
                    if rd[sid] == 0:
                        v[sid] = None
