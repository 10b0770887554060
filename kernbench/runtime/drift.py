"""Numeric drift: the launch replayed a second time in f64, beside the real replay.

``ctx.launch(..., mode="functional", drift=True)`` (or ``drift=TOLERANCE``) runs a **shadow**
of every command next to functional replay (kernbench.runtime.replay), in completion order:

- the shadow computes each command from the shadow values of its operands in float64 and never
  rounds a float to its declared dtype (a cast between float dtypes is the identity; float
  results of every op stay f64; int32 and mask results follow the language's rules exactly, from
  the shadow operands);
- a load reads the same device memory as the launch, except the elements a store of this launch
  wrote, which it reads back as the shadow stored them (f64); a recv gets the shadow of its send;
- masked loads and stores touch the elements the *launch's* mask selects.

For every command with a result (and every store: its stored value) it records

- ``drift``: how far the launch's value is from the shadow, ``max|value - shadow| / max|shadow|``
  over the tensor (the largest error relative to the tensor's largest value; elements that are
  the same infinity or NaN in both are left out, a non-finite value on one side only is
  ``inf``). For int32 and mask results: the fraction of elements that differ;
  An int32 op the shadow cannot compute from its own operands (a division by zero or a shift
  past 31, where the launch's operands differ and are fine) has drift ``inf`` and passes the
  launch's value on as its shadow;
- ``local``: the rounding this command alone introduced, the same measure between its value and
  the f64 result of its op on the launch's own operands (0 for loads and recvs, which copy).

The **first** command (in completion order) whose drift exceeds the tolerance is the one
reported, with its **origin**: among the commands it was computed from (operands, the send
behind a recv, the stores behind a load, and so on back to the loads of the inputs) and itself,
the one with the largest local rounding (the earliest on a tie). A rounding that costs nothing
where it happens (an f16 cast sits within f16's precision) but is amplified later (an exp of
a score computed from it) shows up that way: the first command out of tolerance is the later
one, the origin the cast.

The default tolerance, 1e-3, is about twice f16's unit roundoff (2**-11): an f16 rounding by
itself stays under it, f32 arithmetic far under it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..common.errors import as_flag, short_repr
from ..common.pe_commands import Opcode
from ..language.builder import bytes_text, value_budget
from ..language.numerics import (IntegerDivisionByZero, ShiftOutOfRange, cast_value, reduce_value, value_of,
                                 vec_compute, vec_value)
from ..language.semantic import dtype_name, masked_access
from .memory import PlacementError

__all__ = ["DriftResult", "Shadow", "DEFAULT_TOLERANCE", "drift_tolerance"]

DEFAULT_TOLERANCE = 1e-3
_F64 = np.dtype(np.float64)
_EXACT = ("int32", "bool")


def drift_tolerance(drift) -> Optional[float]:
    """The launch option ``drift`` as a tolerance: False/None -> None (no shadow), True -> the
    default, a positive number -> itself."""
    if as_flag(drift) is not None:  # (a numpy bool as its value)
        drift = as_flag(drift)
    if drift is None or drift is False:
        return None
    if drift is True:
        return DEFAULT_TOLERANCE
    if isinstance(drift, (int, float, np.integer, np.floating)) and not isinstance(drift, (bool, np.timedelta64)):
        try:  # (an int past the float range: numpy's isfinite raised TypeError on 2**200)
            tol = float(drift)
        except OverflowError:
            tol = float("nan")
        if math.isfinite(tol) and tol > 0:
            return tol
    raise ValueError(f"drift must be True, False or a positive tolerance (e.g. 1e-3), got {short_repr(drift)}")


@dataclass
class DriftResult:
    """What the f64 shadow found (module docstring). Arrays by global command index; NaN for a
    command with nothing to compare (a send)."""

    tolerance: float
    drift: np.ndarray
    local: np.ndarray
    first: Optional[int]  #: the first command (completion order) with drift above the tolerance
    origin: Optional[int]  #: the command that introduced most of it (module docstring)
    order: np.ndarray  #: completion order (global command indices)

    @property
    def passed(self) -> bool:
        return self.first is None

    def __repr__(self) -> str:
        worst = np.nanmax(self.drift) if np.isfinite(self.drift).any() or np.isinf(self.drift).any() else 0.0
        state = "within" if self.first is None else f"first out at command {self.first}"
        return f"DriftResult(tolerance={self.tolerance:g}, worst drift={worst:.3g}, {state})"


def _is_exact(a: np.ndarray) -> bool:
    return dtype_name(a.dtype) in _EXACT


def _f64(a, rows: bool = False) -> np.ndarray:
    """``a`` as float64; ``rows``: row-major too (a copy of a view)."""
    return np.ascontiguousarray(a, dtype=_F64) if rows else np.asarray(a, dtype=_F64)


def _as(v, dtype: str) -> np.ndarray:
    """Shadow values ``v`` read as a load of ``dtype`` reads them: converted as the launch
    converts (numerics.cast_value: a float to int32 truncates, saturates, NaN -> 0) for an
    int32 or mask load, else in f64."""
    v = np.asarray(v)
    return cast_value(v, dtype) if dtype in _EXACT else _f64(v)


def measure(value, shadow) -> float:
    """The drift of ``value`` from ``shadow`` (module docstring)."""
    a = np.asarray(value)
    s = np.asarray(shadow)
    if a.size == 0:
        return 0.0
    if _is_exact(a):  # (the shadow converted as the launch converts: NaN -> 0, saturating)
        return float(np.mean(a.reshape(-1) != cast_value(s.reshape(-1), dtype_name(a.dtype))))
    a, s = _f64(a).reshape(-1), _f64(s).reshape(-1)
    fa, fs = np.isfinite(a), np.isfinite(s)
    if not (fa.all() and fs.all()):
        same = (a == s) | (np.isnan(a) & np.isnan(s))
        if np.any(~same & ~(fa & fs)):
            return float("inf")
        keep = fa & fs
        a, s = a[keep], s[keep]
        if not a.size:
            return 0.0
    num = float(np.max(np.abs(a - s)))
    den = float(np.max(np.abs(s)))
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


# -- the ops in f64 ------------------------------------------------------------------------------
def shadow_vec(name: str, args: list, ct: str, shape: tuple, out: str, imm=None) -> np.ndarray:
    """Elementwise ``name`` without rounding, broadcast to ``shape``: with a float compute dtype
    ``ct``, the op of kernbench.language.numerics.vec_compute on the operands in f64, a float
    result kept in f64 (not rounded to ``out``), an int32 or mask result converted as
    numerics.cast_value does; with an int32 or mask ``ct``, exactly vec_value. A float fill or
    cast is the f64 value. Raises what vec_value and vec_compute raise."""
    if name == "fill":
        return np.full(shape, imm, _F64) if out not in _EXACT else vec_value(name, args, ct, shape, out, imm)
    if name == "arange":
        return vec_value(name, args, ct, shape, out, imm)
    if name == "cast":
        a = np.asarray(args[0])
        return _f64(a) if out not in _EXACT else cast_value(a, out)
    if name == "copy":
        return np.ascontiguousarray(np.broadcast_to(np.asarray(args[0]), shape))
    if ct in _EXACT:
        return vec_value(name, args, ct, shape, out, imm)
    r = np.asarray(vec_compute(name, args, ct, _f64))
    if out in _EXACT:
        r = cast_value(r, out) if out == "int32" else r.astype(np.bool_)
    elif r.dtype != _F64:
        r = r.astype(_F64)
    if r.shape != shape:
        r = np.broadcast_to(r, shape)
    return np.ascontiguousarray(r)


def shadow_reduce(name: str, x: np.ndarray, axis, out: str) -> np.ndarray:
    if out in _EXACT or _is_exact(np.asarray(x)):
        return reduce_value(name, x, axis, out)
    fn = {"max": np.max, "min": np.min, "sum": np.sum}[name]
    with np.errstate(all="ignore"):
        return np.ascontiguousarray(fn(_f64(x), axis=axis, keepdims=True))


def _arg(vals: list, o):
    t = type(o)
    if t is int or t is tuple:
        return value_of(vals, o)
    return o


def _region(flat: np.ndarray, e0: int, shape: tuple, stride) -> np.ndarray:
    from .replay import _region as region

    return region(flat, e0, shape, stride)


#: bytes an _Overlay keeps per element of its allocation (f64 value, written flag, int64 writer)
OVERLAY_BYTES = 17


class _Overlay:
    """One allocation on one PE: what this launch's stores wrote, as the shadow stored it."""

    __slots__ = ("values", "written", "writer")

    def __init__(self, n: int):
        self.values = np.zeros(n, _F64)
        self.written = np.zeros(n, np.bool_)
        self.writer = np.full(n, -1, np.int64)


class Shadow:
    """The f64 shadow of one replay: ``replay`` calls :meth:`after` once per command, in
    completion order, after the command's value is computed (a store's after it is written)."""

    def __init__(self, program, engine, metas: list, tolerance: float):
        n = program.n_commands
        self.tolerance = tolerance
        self.drift = np.full(n, np.nan)
        self.local = np.full(n, np.nan)
        self.first: Optional[int] = None
        t_off = program.tensor_offsets
        self.sh = [[None] * int(t_off[g + 1] - t_off[g]) for g in range(len(metas))]
        c = program.commands
        self.srcs = [tuple(x for x in t if x >= 0)
                     for t in zip(c["src0"].tolist(), c["src1"].tolist(), c["src2"].tolist())]
        # readers left per tensor, as replay counts them: a shadow value goes with its last reader
        self.readers = []
        for g in range(len(metas)):
            pc = program.pe_commands(g)
            ids = np.concatenate([pc["src0"], pc["src1"], pc["src2"]])
            self.readers.append(np.bincount(ids[ids >= 0], minlength=len(self.sh[g])).tolist())
        self.stash: dict = {}
        self.overlay: dict = {}
        self.load_deps: dict = {}  # load command -> the stores it read (this launch's)
        self.program = program
        self.engine = engine
        msgs = engine.messages
        self.send_of = dict(zip(msgs["recv"].tolist(), msgs["send"].tolist()))

    def _record(self, idx: int, value, shadow, local: float, undefined: bool = False) -> None:
        d = float("inf") if undefined else measure(value, shadow)
        self.drift[idx] = d
        self.local[idx] = local
        if self.first is None and d > self.tolerance:
            self.first = idx

    def after(self, g: int, idx: int, m: tuple, v: list, dst: int, stored=None) -> None:
        kind = m[0]
        sh = self.sh[g]
        if kind == "vec":
            name, ops, shape, dtype, ct, imm = m[3], m[4], m[5], m[6], m[7], m[8]
            exact = shadow_vec(name, [_arg(v, o) for o in ops], ct, shape, dtype, imm)
            try:
                s = shadow_vec(name, [_arg(sh, o) for o in ops], ct, shape, dtype, imm)
            except (IntegerDivisionByZero, ShiftOutOfRange):
                # the shadow's own int32 operands (a cast of an unrounded value) make the op
                # undefined where the launch's are fine: no shadow value, so the launch's
                # goes on, and the drift is inf (the shadow could not follow the launch here)
                sh[dst] = v[dst]
                self._record(idx, v[dst], v[dst], measure(v[dst], exact), undefined=True)
            else:
                sh[dst] = s
                self._record(idx, v[dst], s, measure(v[dst], exact))
        elif kind == "dot":
            # (row-major operands: BLAS's order of additions follows their layout, and a
            # tl.trans view must give the figures its row-major copy gives, as numerics.dot_value)
            with np.errstate(all="ignore"):
                s = np.matmul(_f64(value_of(sh, m[3]), rows=True), _f64(value_of(sh, m[4]), rows=True))
                exact = np.matmul(_f64(value_of(v, m[3]), rows=True), _f64(value_of(v, m[4]), rows=True))
            sh[dst] = s
            self._record(idx, v[dst], s, measure(v[dst], exact))
        elif kind == "reduce":
            name, spec, axis, dtype = m[3], m[4], m[6], m[7]
            s = shadow_reduce(name, value_of(sh, spec), axis, dtype)
            exact = shadow_reduce(name, value_of(v, spec), axis, dtype)
            sh[dst] = s
            self._record(idx, v[dst], s, measure(v[dst], exact))
        elif kind == "load":
            s = self._load(g, idx, m, v, dst)
            sh[dst] = s
            self._record(idx, v[dst], s, 0.0)
        elif kind == "store":
            spec, alloc, e0, shape, stride, mspec = m[3], m[4], m[5], m[6], m[7], m[8]
            s = value_of(sh, spec)
            mask = None if mspec is None else value_of(v, mspec)
            self._store(g, idx, alloc, e0, shape, stride, mask, s)
            exact = value_of(v, spec)
            if mask is not None:
                # the elements it stored: a review found the masked-off ones counted (an exp
                # that overflowed where nothing was stored made the store's drift inf)
                _, mk, _ = masked_access(alloc, e0, shape, stride, mask)
                stored = np.asarray(stored).reshape(shape)[mk]
                s, exact = (np.broadcast_to(np.asarray(a), shape)[mk] for a in (s, exact))
            self._record(idx, stored, s, measure(stored, exact))
        elif kind == "send":
            self.stash[idx] = value_of(sh, m[3])
        elif kind == "recv":
            s = self.stash.pop(self.send_of[idx]).reshape(m[4])
            sh[dst] = s
            self._record(idx, v[dst], s, 0.0)
        rd = self.readers[g]
        for sid in self.srcs[idx]:
            rd[sid] -= 1
            if rd[sid] == 0:
                sh[sid] = None

    def _load(self, g, idx, m, v, dst) -> np.ndarray:
        alloc, e0, shape, stride, dtype, mspec, other = m[3], m[4], m[5], m[6], m[7], m[8], m[9]
        act = v[dst]
        s = act.copy() if dtype in _EXACT else _f64(act).copy()
        ov = self.overlay.get((id(alloc), g))
        if mspec is None:
            if ov is not None:
                w = _region(ov.written, e0, shape, stride)
                if w.any():
                    s[w] = _as(_region(ov.values, e0, shape, stride)[w], dtype)
                    self.load_deps[idx] = np.unique(_region(ov.writer, e0, shape, stride)[w])
            return s
        ix, mk, _ = masked_access(alloc, e0, shape, stride, value_of(v, mspec))
        if other is not None and type(other) in (int, tuple):  # a tensor fills the masked-off elements
            o = np.asarray(value_of(self.sh[g], other))
            fill = np.array(np.broadcast_to(_as(o, dtype), shape))
            fill[mk] = s[mk]
            s = fill
        if ov is not None:
            w = ov.written[ix]
            if w.any():
                sub = s[mk]
                sub[w] = _as(ov.values[ix][w], dtype)
                s[mk] = sub
                self.load_deps[idx] = np.unique(ov.writer[ix][w])
        return s

    def _store(self, g, idx, alloc, e0, shape, stride, mask, s) -> None:
        key = (id(alloc), g)
        ov = self.overlay.get(key)
        if ov is None:
            if OVERLAY_BYTES * alloc.numel > value_budget():
                raise PlacementError(
                    f"drift: the f64 shadow of {short_repr(alloc.name)} takes {OVERLAY_BYTES} bytes an element, "
                    f"{bytes_text(OVERLAY_BYTES * alloc.numel)} for a PE's copy: more than an eighth of "
                    f"this host's memory ({bytes_text(value_budget())}); measure drift on a smaller "
                    f"launch")
            ov = self.overlay[key] = _Overlay(int(alloc.numel))
        s = _f64(s) if not _is_exact(np.asarray(s)) else np.asarray(s).astype(_F64)
        if mask is None:
            _region(ov.values, e0, shape, stride)[...] = s.reshape(shape)
            _region(ov.written, e0, shape, stride)[...] = True
            _region(ov.writer, e0, shape, stride)[...] = idx
        else:
            ix, mk, _ = masked_access(alloc, e0, shape, stride, mask)
            ov.values[ix] = np.broadcast_to(s.reshape(shape), shape)[mk]
            ov.written[ix] = True
            ov.writer[ix] = idx

    # -- after the replay -------------------------------------------------------------------------
    def result(self) -> DriftResult:
        origin = None if self.first is None else self._origin(self.first)
        return DriftResult(tolerance=self.tolerance, drift=self.drift, local=self.local,
                           first=self.first, origin=origin,
                           order=np.asarray(self.engine.completion_order, np.int64))

    def ancestors(self, c: int) -> np.ndarray:
        """``c`` and every command it was computed from (operands, the send behind a recv and
        what that send sent, the stores behind a load), as sorted global indices."""
        prog = self.program
        cmds = prog.commands
        pe_of = np.repeat(np.arange(prog.n_pes, dtype=np.int64), np.diff(prog.cmd_offsets))
        t_off = prog.tensor_offsets
        producer = np.full(int(t_off[-1]), -1, np.int64)
        dst = cmds["dst"].astype(np.int64)
        made = np.flatnonzero(dst >= 0)
        producer[t_off[pe_of[made]] + dst[made]] = made
        srcs = np.stack([cmds[f].astype(np.int64) for f in ("src0", "src1", "src2")], axis=1)
        seen = {c}
        todo = [c]
        while todo:
            x = todo.pop()
            deps = [int(producer[t_off[pe_of[x]] + s]) for s in srcs[x].tolist() if s >= 0]
            if int(cmds["opcode"][x]) == Opcode.RECV:
                deps.append(self.send_of[x])
            if x in self.load_deps:
                deps.extend(int(w) for w in self.load_deps[x])
            for d in deps:
                if d >= 0 and d not in seen:
                    seen.add(d)
                    todo.append(d)
        return np.array(sorted(seen), np.int64)

    def _origin(self, c: int) -> int:
        anc = self.ancestors(c)
        loc = np.nan_to_num(self.local[anc], nan=-1.0, posinf=np.finfo(np.float64).max)
        best = loc.max()
        cands = anc[loc == best]
        # the earliest to complete among the largest
        rank = np.empty(len(self.engine.completion_order), np.int64)
        rank[np.asarray(self.engine.completion_order, np.int64)] = np.arange(len(rank))
        return int(cands[np.argmin(rank[cands])])

