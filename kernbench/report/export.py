"""A launch as JSON: every counter, the machine, the SFR install and the kernel's arguments.

The document is plain JSON types only (dicts, lists, ints, floats, strings, bools, None), column
oriented so a script can compare two runs with ``doc["counters"]["units"]["busy"][pe][unit]``.
:func:`load_json` reads it back as the same dict; :func:`from_json` rebuilds a LaunchResult from it
(so the table, the trace and the plots can be made later from a saved run).
"""
from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..common.errors import check_output_file, is_whole, short_repr
from ..common.files import output_file
from ..common.pe_commands import COMMAND_DTYPE, UNIT_NAMES, Opcode, Program
from ..hw.config import from_dict as hw_from_dict
from ..hw.sfr import SfrInstall
from ..language.semantic import dtype_name
from ..runtime.result import LaunchResult
from . import _format
from .commands import JSON_BYTES_PER_COMMAND, check_report_memory, first_of_keys, site_keys
from .critical_path import critical_path
from .drift import drift_summary
from .profile import profile
from .summary import summarize
from ..runtime.result import check_result

__all__ = ["to_json", "write_json", "load_json", "from_json", "FORMAT", "jsonable"]

FORMAT = "kernbench.launch/1"


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON types: numpy scalars to Python, tuples to lists, arrays to
    ``{"shape", "dtype"}`` (f16, f32, ...), non-finite floats to None, anything else to its repr."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):  # dtype as kernbench names it (f16), as LaunchResult.args does
        return {"shape": list(x.shape), "dtype": dtype_name(x.dtype) or str(x.dtype)}
    return repr(x)


def _columns(a: np.ndarray) -> dict:
    """A structured array as {field: nested list}."""
    return {name: a[name].tolist() for name in a.dtype.names}


def _from_columns(cols: dict, dtype: np.dtype, shape=None) -> np.ndarray:
    first = _typed(cols[dtype.names[0]], dtype[0], dtype.names[0])
    out = np.zeros(first.shape if shape is None else shape, dtype)
    for name in dtype.names:
        a = _typed(cols[name], dtype[name], name)
        # (every field a whole column: a number or a one-entry list was broadcast over every
        # row, read as another program without a word: a fuzzer)
        if a.shape != out[name].shape:
            sub = out[name].shape[1:]
            got = f"{len(a)} of shape {a.shape[1:]}" if a.ndim > 1 else len(a) if a.ndim else "one number"
            raise ValueError(f"{name} must hold {len(out)} entries{f' of shape {sub}' if sub else ''}, as "
                             f"{dtype.names[0]} does, got {got}")
        out[name] = a
    return out


def _typed(values, dtype, what: str) -> np.ndarray:
    """``values`` (a JSON list) as an array of ``dtype``, when they are of its kind: ints for an
    int field, bools for a bool one, numbers for a float one. ValueError else (a review: "7"
    was read as 7, 0.5 as 0 and "no" as True)."""
    dtype = np.dtype(dtype)
    a = np.asarray(values)
    kinds = {"i": "iu", "u": "iu", "b": "b", "f": "iuf"}[dtype.kind]
    if a.size and a.dtype.kind not in kinds:
        raise ValueError(f"{what} must hold {dtype.name} values, got {a.dtype.name}")
    if a.size and dtype.kind in "iu":
        # (astype wraps: a line of 2**32 + 7 was read as 7, a pinned flag of 257 as 1: a fuzzer)
        lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
        if a.min() < lo or a.max() > hi:
            bad = a.min() if a.min() < lo else a.max()
            raise ValueError(f"{what} must hold {dtype.name} values ({lo}..{hi}), got {bad}")
    return a.astype(dtype) if a.size else np.zeros(a.shape, dtype)


class _Column:
    """A long list of the document (one entry per command, tensor or message), made ``JSON_CHUNK``
    entries at a time: :func:`write_json` writes it chunk by chunk, :func:`to_json` joins the
    chunks into one list. ``part(lo, hi)`` gives entries lo..hi as JSON-ready values; ``text(lo,
    hi)``, when given, the same as JSON text (bytes, ", "-joined, as json.dumps writes them);
    ``release()`` drops what was read for it, once it is written."""

    __slots__ = ("n", "part", "text", "release")

    def __init__(self, n: int, part, text=None, release=None):
        self.n, self.part, self.text = int(n), part, text
        self.release = release or (lambda: None)

    @classmethod
    def of(cls, a, n: int | None = None) -> "_Column":
        """An array of ints or bools, or a function giving it, called when the column is first
        read (``n``: its length), so that an array made for the file (a command field) is held
        only while it is written."""
        held: list = [] if callable(a) else [np.asarray(a)]

        def arr() -> np.ndarray:
            if not held:
                held.append(np.asarray(a()))
            return held[0]

        def part(lo, hi):
            return arr()[lo:hi].tolist()

        def text(lo, hi):
            v = arr()[lo:hi]
            if v.dtype.kind in "iu" and (v.dtype.itemsize < 8 or v.dtype.kind == "i"):
                return _format.ints(np.ascontiguousarray(v, np.int64), _SEP)  # (in C)
            if v.dtype == np.bool_:
                return ", ".join(["true" if x else "false" for x in v.tolist()]).encode()
            return ", ".join(map(str, v.tolist())).encode()  # (ints: str is json's text)

        return cls(len(held[0]) if n is None else n, part, text, held.clear if callable(a) else None)

    def tolist(self) -> list:
        return self.part(0, self.n)


def _int_columns(a: np.ndarray) -> dict:
    """A structured array's fields as columns."""
    return {name: _Column.of(a[name]) for name in a.dtype.names}


def _namer(result, name: str):
    """The result's command -> name function of column ``name`` (labels, sources or arrays)."""
    return {"labels": result.label, "sources": result.source, "arrays": result.arrays}[name]


def _named(result, n: int, name: str):
    """Commands' labels, sources or arrays (``name``) as a column: with the launch's kernel
    sites (``name_keys``, as commands.site_keys trusts them, and for arrays the launch's own)
    each site is named once and its name copied to its commands; else each command is named by
    itself."""
    one = _namer(result, name)
    keys = site_keys(result)
    if keys is not None and name == "arrays" and getattr(getattr(one, "__self__", None), "sites", None) is not keys:
        keys = None  # (arrays replaced since the launch)
    if keys is None:
        return _Column(n, lambda lo, hi: [one(i) for i in range(lo, hi)])
    made: list = []

    def groups() -> tuple:
        # each site's name, json-encoded, in one blob (offsets ``at``), and each site's group
        if not made:
            used, first, group = first_of_keys(keys)
            enc = [json.dumps(one(int(first[k]))).encode() for k in used.tolist()]
            at = np.zeros(len(enc) + 1, np.int64)
            np.cumsum([len(t) for t in enc], out=at[1:])
            made.append((b"".join(enc), at, group))
        return made[0]

    def text(lo, hi) -> bytes:
        blob, at, group = groups()
        return _format.picks(blob, at, group[keys[lo:hi]], _SEP)

    def part(lo, hi) -> list:
        return json.loads(b"[" + text(lo, hi) + b"]")

    return _Column(n, part, text)


def _document(result, named_by_site: bool) -> dict:
    """The launch's document with its long lists as :class:`_Column` (see :func:`to_json`)."""
    e = result.engine
    prog = result.program
    n = prog.n_commands
    named = {}
    for name in ("labels", "sources", "arrays"):
        if getattr(result, name, None) is None:
            named[name] = None
        elif named_by_site:
            named[name] = _named(result, n, name)
        else:  # each command named by itself (what to_json has always done)
            one = _namer(result, name)
            named[name] = _Column(n, lambda lo, hi, one=one: [one(i) for i in range(lo, hi)])
    # each command field read while it is written: a compact program is never expanded
    commands = {name: _Column.of(lambda name=name: prog.columns(name)[0], n) for name in COMMAND_DTYPE.names}
    doc = {
        "format": FORMAT,
        "kernel": {"name": result.kernel_name, "file": result.kernel_file, "args": jsonable(result.args)},
        "mode": result.mode,
        "grid": [int(x) for x in result.grid],
        "hw": jsonable(result.hw.to_dict()),
        "sfr": None if result.sfr is None else {"scope": result.sfr.scope, "ring": bool(result.sfr.ring)},
        "cycles": int(e.cycles),
        "seconds": float(result.seconds),
        "counters": {
            "unit_names": list(UNIT_NAMES),
            "units": _columns(e.unit_counters),
            "links": _columns(e.link_counters),
            "peak_sram": np.asarray(e.peak_sram).tolist(),
            "sram_over": np.asarray(e.sram_over, dtype=bool).tolist(),
            "heap_events": int(e.heap_events),
            "work": jsonable(e.work),
            "detail": e.detail,
            "debug": jsonable(e.debug),
        },
        "commands": {
            "start": _Column.of(np.asarray(e.cmd_start)),
            "end": _Column.of(np.asarray(e.cmd_end)),
            "completion_order": _Column.of(np.asarray(e.completion_order)),
            "events_recorded": e.events is not None,
        },
        "messages": _int_columns(e.messages),
        "program": {
            "commands": commands,
            "cmd_offsets": prog.cmd_offsets.tolist(),
            "tensor_bytes": _Column.of(prog.byte_sizes, prog.n_tensors),
            "tensor_pinned": _Column.of(prog.tensor_pinned),
            "tensor_offsets": prog.tensor_offsets.tolist(),
        },
        "labels": named["labels"],
        "sources": named["sources"],
        "arrays": named["arrays"],
        "summary": summarize(result),
        "profile": profile(result, sort="line")["lines"],
        "critical_path": critical_path(result).to_dict(),
        # (plain JSON: a drift of inf or NaN as null, as elsewhere; the record keeps them exactly)
        "drift": jsonable(drift_summary(result)) if getattr(result, "drift", None) is not None else None,
        "drift_record": _drift_record(getattr(result, "drift", None)),
        "extra": jsonable(result.extra),
    }
    return doc


def _floats(a) -> list:
    # exact JSON floats: NaN (nothing compared) as None, infinities as "inf" / "-inf"
    return [v if math.isfinite(v) else (None if v != v else ("inf" if v > 0 else "-inf"))
            for v in np.asarray(a, np.float64).tolist()]


def _unfloats(xs) -> np.ndarray:
    """:func:`_floats`' list read back; ValueError for anything it does not write."""
    return np.array([_unfloat(v) for v in xs], np.float64)


def _unfloat(v) -> float:
    if v is None:
        return math.nan
    if v in ("inf", "-inf") or (type(v) in (int, float)):
        return float(v)
    raise ValueError(f"a drift value must be a number, null, \"inf\" or \"-inf\", got {short_repr(v)}")


def _drift_record(d) -> dict | None:
    """The drift record itself (what drift_report reads), so from_json rebuilds it."""
    if d is None:
        return None
    return {"tolerance": float(d.tolerance), "drift": _floats(d.drift), "local": _floats(d.local),
            "first": None if d.first is None else int(d.first),
            "origin": None if d.origin is None else int(d.origin),
            "order": np.asarray(d.order, np.int64).tolist()}


def _joined(x):
    """``x`` with every :class:`_Column` in it made a list."""
    if isinstance(x, _Column):
        return x.tolist()
    if isinstance(x, dict):
        return {k: _joined(v) for k, v in x.items()}
    return x


def to_json(result, path: Union[str, Path, None] = None, *, indent: int | None = None) -> dict:
    """The launch as a JSON-ready dict; written to ``path`` if given. See the module docstring.

    Per command it stores start and end cycles and the program itself, so the dict grows with
    the number of commands (never with packets): several hundred bytes of Python objects a
    command. To save a long launch, :func:`write_json` writes the same file a chunk at a time
    without building the dict. ``indent``: None or a count of spaces (ValueError else: a
    string was written into the file, which was then no JSON)."""
    check_result(result, "to_json")
    if indent is not None and not (is_whole(indent) and 0 <= indent <= 64):
        raise ValueError(f"to_json: indent must be None or an int from 0 to 64 (spaces), got {short_repr(indent)}")
    if path is not None:
        check_output_file(path, "to_json")
    check_report_memory(result, JSON_BYTES_PER_COMMAND, "to_json",
                        "result.write_json(path) writes the same file a chunk at a time")
    doc = _joined(_document(result, named_by_site=False))
    if path is not None:
        text = json.dumps(doc, indent=indent)  # one-shot dumps uses the C encoder
        with output_file(path) as out, open(out, "w") as f:  # (whole or not at all)
            f.write(text)
    return doc


def write_json(result, path: Union[str, Path]) -> int:
    """Write :func:`to_json`'s document to ``path`` (the text ``json.dumps(to_json(result))``
    writes, byte for byte: tests/test_write_json.py), streaming its per-command lists
    ``JSON_CHUNK`` entries at a time, so memory stays near the launch's own whatever the
    number of commands (``kernbench ... --json`` writes with it). Each kernel site's label,
    source and array are encoded once (when they are the launch's own: commands.site_keys;
    else each command's). Returns the bytes written. If writing fails, ``path`` is left as
    it was: the file is written whole or not at all (common.files.output_file). Raises
    ValueError for a path that is no file path, and the OSError writing meets."""
    check_result(result, "write_json")
    check_output_file(path, "write_json")
    doc = _document(result, named_by_site=True)
    written = [0]
    with output_file(path) as out, open(out, "wb") as f:  # (whole or not at all)

        def write(b) -> None:  # (counted: a pipe or a device has no size to read back)
            written[0] += f.write(b)

        _write(doc, write)
    return written[0]


#: entries of a per-command list formatted (and held as text) at a time by write_json
JSON_CHUNK = 1 << 16
_SEP = b", "  #: json.dumps's item separator


def _write(x, out) -> None:
    """``x`` as json.dumps writes it (default separators; ASCII), through ``out(bytes)``."""
    if isinstance(x, _Column):
        out(b"[")
        sep = b""
        for lo in range(0, x.n, JSON_CHUNK):
            hi = min(lo + JSON_CHUNK, x.n)
            if x.text is not None:
                t = x.text(lo, hi)
            else:
                t = ", ".join(json.dumps(v) for v in x.part(lo, hi)).encode()
            out(sep + t)
            sep = _SEP
        out(b"]")
        x.release()
    elif isinstance(x, dict) and any(isinstance(v, (dict, _Column)) for v in x.values()):
        out(b"{")
        for j, (k, v) in enumerate(x.items()):
            out((", " if j else "").encode() + json.dumps(str(k)).encode() + b": ")
            _write(v, out)
        out(b"}")
    else:
        out(json.dumps(x).encode())


def load_json(path: Union[str, Path]) -> dict:
    """Read a file written by :func:`to_json`; returns the same dict ``to_json`` returned.
    Raises ValueError for a ``path`` that is not a file path (an int would be read as a file
    descriptor: True closed stdout, 0 waited on stdin, a review) or a file not of this format."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise ValueError(f"load_json: path must be a file path (str or pathlib.Path), got "
                         f"{type(path).__name__} {short_repr(path)}")
    try:
        with open(path) as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a kernbench launch JSON (truncated or not JSON: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a kernbench launch JSON (expected format {short_repr(FORMAT)})")
    return doc


def from_json(doc: Union[dict, str, Path]):
    """Rebuild a LaunchResult (with its EngineResult) from :func:`to_json`'s dict or file.

    Raises ValueError (naming the file) for a truncated, malformed or incomplete document, and
    for one whose parts disagree as no launch's do (counters against the commands' times, the
    cycles against the last command's end, messages against the program, the SRAM flags
    against the peaks, the working PEs against the grid: :func:`_check_consistent`)."""
    source = "launch JSON"
    if not isinstance(doc, dict):
        source = str(doc)
        doc = load_json(doc)
    elif doc.get("format") != FORMAT:  # (as load_json checks a file's)
        raise ValueError(f"{source}: not a kernbench launch JSON (expected format {short_repr(FORMAT)}, got "
                         f"{str(doc.get('format'))[:80]!r})")
    try:
        result = _from_doc(doc)
        _check_loaded(result)
        _check_consistent(result, doc)
    except (KeyError, TypeError, IndexError, ValueError, OverflowError, AttributeError) as e:
        raise ValueError(f"{source}: not a complete kernbench launch JSON ({type(e).__name__}: {e}); "
                         f"write it with LaunchResult.to_json") from None
    return result


def _leaf_keys(d: dict, prefix: str = "") -> set:
    out = set()
    for k, v in d.items():
        out |= _leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def _check_consistent(r, doc: dict) -> None:
    """What a launch's parts agree on, checked on a loaded one: each check in
    _check_loaded reads one field, and a document edited consistently field by field (a counter
    raised, two commands' times swapped, cycles past the last end, a message naming a load, a
    partial hw filled from the default preset) loaded as a launch whose table and profile
    disagreed, and reported another launch than the file's (a fuzzer). The engine's own
    invariants (tests/test_profile.py) are the rule: every unit counter equals the per-command
    facts summed, the cycles are the last end, every message pairs a SEND with a RECV that ends
    after it starts, a PE is over SRAM exactly where its peak passes the capacity, the working
    PEs lie in the grid, and the derived fields written beside them (seconds, the completion
    order) are those of the launch."""
    from ..hw.config import load_hw
    from .commands import command_facts

    hw, prog, e = r.hw, r.program, r.engine
    missing = _leaf_keys(load_hw("default").to_dict()) - _leaf_keys(doc["hw"])
    if missing:  # (a missing key was filled from the default preset: another machine)
        raise ValueError(f"hw must hold every key of the machine it ran on, missing {sorted(missing)[:5]}")
    n = prog.n_rows
    if n and int(e.cmd_end.max()) != e.cycles:
        raise ValueError(f"cycles ({e.cycles}) must be the last command's end ({int(e.cmd_end.max())})")
    if not np.array_equal(e.sram_over, e.peak_sram > hw.sram.capacity_bytes):
        raise ValueError("counters.sram_over must flag exactly the PEs whose peak_sram passes the capacity")
    if not np.isin(prog.tensor_pinned, (0, 1)).all():
        raise ValueError("program.tensor_pinned must hold 0 or 1 per tensor")
    working = np.flatnonzero(np.diff(prog.cmd_offsets))
    ppc = hw.pes_per_cube
    if len(working) and ((working % ppc >= r.grid[0]).any() or (working // ppc >= r.grid[1]).any()):
        raise ValueError(f"the grid {tuple(r.grid)} must hold every PE that ran a command")
    if r.drift is not None and r.mode != "functional":
        raise ValueError("a drift record comes from a functional launch, not a timing one")
    if "seconds" in doc and doc["seconds"] != float(r.seconds):
        raise ValueError(f"seconds ({short_repr(doc['seconds'])}) must be the cycles at the clock ({short_repr(r.seconds)})")
    order = doc["commands"].get("completion_order")
    if order is not None and not np.array_equal(np.asarray(order), e.completion_order):
        raise ValueError("commands.completion_order must be the commands by (end, index)")
    if not n:
        return
    try:
        fx = command_facts(r)
    except MemoryError:  # (the views that read the facts refuse such a launch themselves)
        return
    uc = e.unit_counters
    sums = {"busy": fx.end - fx.start, "commands": np.ones(n, np.int64),
            **{f"stall_{c}": getattr(fx, c) for c in ("operand", "credit", "data", "arbitration")}}
    for name, per_command in sums.items():
        got = np.zeros(uc.shape, np.int64)
        np.add.at(got, (fx.pe, fx.unit), per_command)
        if not np.array_equal(got, uc[name]):
            raise ValueError(f"counters.units.{name} must be its commands' summed (the commands' "
                             f"start and end and the hardware give other figures)")
    # every command starts at its unit's previous end or when its last operand is ready (an
    # operand pointed at another tensor, or times edited, make a path the launch did not take)
    ready = np.where(fx.producers >= 0, fx.end[np.maximum(fx.producers, 0)], 0).max(axis=1)
    if not np.array_equal(np.maximum(fx.prev_end, ready), fx.start):
        raise ValueError("each command must start when its unit is free and its operands are ready")
    m = e.messages
    if len(m):
        s, rv = m["send"].astype(np.int64), m["recv"].astype(np.int64)
        if ((fx.opcode[s] != Opcode.SEND).any() or (fx.opcode[rv] != Opcode.RECV).any()
                or (fx.end[rv] < fx.start[s]).any()):
            raise ValueError("messages must pair a SEND with a RECV that ends after it starts")
    if len(m) != int((fx.opcode == Opcode.SEND).sum()) or len(m) != int((fx.opcode == Opcode.RECV).sum()):
        raise ValueError("messages must hold one entry per SEND and per RECV of the program")
    # each link's bytes, messages and packets are its messages' (a review raised a link's
    # bytes by 3: loaded as a launch that moved them)
    lc = e.link_counters
    if len(m):
        link, nb = m["link"].astype(np.int64), m["nbytes"].astype(np.int64)
        if link.min() < 0 or link.max() >= len(lc):
            raise ValueError(f"messages.link must name one of the {len(lc)} links")
        P = int(hw.link.packet_bytes)
        for name, per_message in (("bytes", nb), ("messages", np.ones(len(m), np.int64)),
                                  ("packets", -(-nb // P))):
            got = np.zeros(len(lc), np.int64)
            np.add.at(got, link, per_message)
            if not np.array_equal(got, lc[name]):
                raise ValueError(f"counters.links.{name} must be its messages' summed")
    elif (lc["bytes"] != 0).any() or (lc["messages"] != 0).any() or (lc["packets"] != 0).any():
        raise ValueError("counters.links must be zero for a launch without messages")


def _check_loaded(r) -> None:
    """What the views of a LaunchResult read, checked as a launch makes it: a document cut or
    edited by hand raises ValueError here (from_json names the file), not a raw error in a view
    later (a review's fuzz found about 20 such places: a grid of a list, counters of another
    shape, a command's start past the cycles). The program goes through the engine's own
    checks (every command's fields, tensors and units)."""
    from .._core.api import _check_program, _default_describe, _program_tables
    from ..hw.sfr import N_PORTS
    from ..runtime.executor import MODES, _check_grid

    hw, prog, e = r.hw, r.program, r.engine
    _check_grid(hw, r.grid)
    if r.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {short_repr(r.mode)}")
    if not isinstance(r.kernel_name, str) or not isinstance(r.kernel_file, str):
        raise ValueError("the kernel's name and file must be strings")
    if not isinstance(r.args, dict) or not isinstance(r.extra, dict):
        raise ValueError("the kernel's args and extra must be objects")
    _check_program(hw, prog)
    _program_tables(hw, prog, _default_describe(prog))
    n = prog.n_rows
    if type(e.cycles) is not int or not 0 <= e.cycles < 1 << 63:
        raise ValueError(f"cycles must be an int from 0 to 2**63 - 1, got {short_repr(e.cycles)}")
    for name, a in (("start", e.cmd_start), ("end", e.cmd_end)):
        if a.shape != (n,):
            raise ValueError(f"commands' {name} must hold one cycle per command ({n}), got {len(a)}")
    if n and not (0 <= int(e.cmd_start.min()) and (e.cmd_start <= e.cmd_end).all()
                  and int(e.cmd_end.max()) <= e.cycles):
        raise ValueError(f"commands' start and end must lie in 0..cycles ({e.cycles}), start <= end")
    for name, a, shape in (("units", e.unit_counters, (hw.n_pes, len(UNIT_NAMES))),
                           ("links", e.link_counters, (hw.n_pes * N_PORTS,))):
        if a.shape != shape:
            raise ValueError(f"counters.{name} must have shape {shape} for this hardware, got {a.shape}")
        if any((a[f] < 0).any() for f in a.dtype.names):
            raise ValueError(f"counters.{name} must not be negative")
    if e.peak_sram.shape != (hw.n_pes,) or e.sram_over.shape != (hw.n_pes,) or (e.peak_sram < 0).any():
        raise ValueError(f"counters.peak_sram and sram_over must hold one entry per PE ({hw.n_pes}), "
                         f"peak_sram not negative")
    m = e.messages
    if m.ndim != 1 or (len(m) and not (
            (m["link"] >= 0).all() and (m["link"] < hw.n_pes * N_PORTS).all() and (m["nbytes"] >= 0).all()
            and all(((m[f] >= 0) & (m[f] < n)).all() for f in ("send", "recv")))):
        raise ValueError(f"messages must name links of this hardware and commands 0..{n - 1}")
    if type(e.heap_events) is not int or e.heap_events < 0 or e.detail not in ("train", "packet"):
        raise ValueError("counters.heap_events must be a count and counters.detail 'train' or 'packet'")
    if not all(isinstance(k, str) and type(v) is int for k, v in e.work.items()):
        raise ValueError("counters.work must map names to counts")
    for name, f in (("labels", r.labels), ("sources", r.sources)):
        xs = getattr(f, "__self__", None) if f is not None else None
        if f is not None and (not isinstance(xs, list) or len(xs) != n or not all(isinstance(x, str) for x in xs)):
            raise ValueError(f"{name} must be a string per command ({n}) or null")
    if r.arrays is not None:
        xs = getattr(r.arrays, "__self__", None)
        dma = np.isin(prog.columns("opcode")[0], (Opcode.LOAD, Opcode.STORE)) if n else np.zeros(0, bool)
        if not isinstance(xs, list) or len(xs) != n or not all(
                isinstance(x, str) if d else x is None for x, d in zip(xs, dma.tolist())):
            raise ValueError(f"arrays must hold, per command ({n}), the name of the device array a load or "
                             f"store reads or writes and null for another command, or be null")
    d = r.drift
    if d is not None and not 0 < d.tolerance < math.inf:
        # (a launch takes a positive tolerance; "inf" loaded and was written back as the token
        # Infinity, which is no JSON: a fuzzer)
        raise ValueError(f"drift_record.tolerance must be a positive number, got {short_repr(d.tolerance)}")
    if d is not None and ((d.drift < 0).any() or (d.local < 0).any()):
        raise ValueError("drift_record's drift and local values are ratios of absolute values: "
                         "none is negative")
    if d is not None and (len(d.drift) != n or len(d.local) != n or len(d.order) != n
                          or sorted(d.order.tolist()) != list(range(n))
                          or any(x is not None and not (type(x) is int and 0 <= x < n) for x in (d.first, d.origin))):
        raise ValueError(f"drift_record must hold a value per command ({n}) and commands 0..{n - 1}")


def _from_doc(doc: dict):
    from .._core import LINK_COUNTERS_DTYPE, UNIT_COUNTERS_DTYPE
    from .._core.api import EVENT_DTYPE, MESSAGE_DTYPE, EngineResult
    from ..runtime.drift import DriftResult

    hw = hw_from_dict(doc["hw"], source="launch JSON")
    p = doc["program"]
    prog = Program(
        _from_columns(p["commands"], COMMAND_DTYPE),
        _typed(p["cmd_offsets"], np.int64, "cmd_offsets"),
        _typed(p["tensor_bytes"], np.int64, "tensor_bytes"),
        _typed(p["tensor_pinned"], np.uint8, "tensor_pinned"),
        _typed(p["tensor_offsets"], np.int64, "tensor_offsets"),
    )
    c = doc["counters"]
    if c.get("unit_names", list(UNIT_NAMES)) != list(UNIT_NAMES):
        # (the units' counters are read in this order: a file naming others would be misread)
        raise ValueError(f"counters.unit_names must be {list(UNIT_NAMES)} (the units' rows are in "
                         f"that order), got {short_repr(c['unit_names'])}")
    cmd = doc["commands"]
    start = _typed(cmd["start"], np.int64, "start")
    end = _typed(cmd["end"], np.int64, "end")
    events = None
    if type(cmd["events_recorded"]) is not bool:
        raise ValueError(f"events_recorded must be true or false, got {short_repr(cmd['events_recorded'])}")
    if cmd["events_recorded"]:
        # The engine's event record is exactly (pe, unit, cmd, start, end) sorted by start.
        n = len(start)
        events = np.zeros(n, EVENT_DTYPE)
        events["pe"] = np.repeat(np.arange(prog.n_pes), np.diff(prog.cmd_offsets))
        (events["unit"],) = prog.columns("unit")
        events["cmd"] = np.arange(n)
        events["start"] = start
        events["end"] = end
        events = events[np.lexsort((events["cmd"], events["start"]))]
    engine = EngineResult(
        hw=hw,
        cycles=int(doc["cycles"]),
        unit_counters=_from_columns(c["units"], UNIT_COUNTERS_DTYPE),
        link_counters=_from_columns(c["links"], LINK_COUNTERS_DTYPE),
        peak_sram=_typed(c["peak_sram"], np.int64, "peak_sram"),
        sram_over=_typed(c["sram_over"], bool, "sram_over"),
        cmd_start=start,
        cmd_end=end,
        messages=_from_columns(doc["messages"], MESSAGE_DTYPE),
        heap_events=int(c["heap_events"]),
        work=dict(c["work"]),
        detail=c["detail"],
        events=events,
        debug=dict(c["debug"]),
    )
    # (copies, as of args and extra below: a result loaded from a dict must not change with it,
    # its columns checked once)
    named = {}
    for name in ("labels", "sources", "arrays"):  # (arrays None: not known, or an older file)
        col = doc.get(name)
        if col is not None and not isinstance(col, list):
            raise ValueError(f"{name} must be a list, one entry per command, or null; got {type(col).__name__}")
        named[name] = None if col is None else list(col)
    labels, sources, arrays = named["labels"], named["sources"], named["arrays"]
    sfr = doc.get("sfr")
    d = doc.get("drift_record")  # (None: no drift, or a file from before it was kept)
    drift = None if d is None else DriftResult(
        _unfloat(d["tolerance"]), _unfloats(d["drift"]), _unfloats(d["local"]), d["first"], d["origin"],
        _typed(d["order"], np.int64, "drift_record.order"))
    return LaunchResult(
        hw=hw,
        sfr=None if sfr is None else SfrInstall(sfr["scope"], sfr["ring"]),
        grid=tuple(doc["grid"]),
        mode=doc["mode"],
        kernel_name=doc["kernel"]["name"],
        kernel_file=doc["kernel"]["file"],
        args=copy.deepcopy(doc["kernel"]["args"]),
        program=prog,
        engine=engine,
        labels=(labels.__getitem__ if labels is not None else None),
        sources=(sources.__getitem__ if sources is not None else None),
        extra=copy.deepcopy(doc.get("extra", {})),  # (not "or {}": "" or [] is a malformed file, refused)
        drift=drift,
        arrays=(arrays.__getitem__ if arrays is not None else None),
    )
