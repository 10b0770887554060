"""A launch as JSON: every counter, the machine, the SFR install and the kernel's arguments.

The document is plain JSON types only (dicts, lists, ints, floats, strings, bools, None), column
oriented so a script can compare two runs with ``doc["counters"]["units"]["busy"][pe][unit]``.
:func:`load_json` reads it back as the same dict; :func:`from_json` rebuilds a LaunchResult from it
(so the table, the trace and the plots can be made later from a saved run).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..common.pe_commands import COMMAND_DTYPE, UNIT_NAMES, Program
from ..hw.config import from_dict as hw_from_dict
from ..hw.sfr import SfrInstall
from ..language.semantic import dtype_name
from ..runtime.result import LaunchResult
from .critical_path import critical_path
from .drift import drift_summary
from .profile import profile
from .summary import summarize

__all__ = ["to_json", "load_json", "from_json", "FORMAT", "jsonable"]

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
    first = np.asarray(cols[dtype.names[0]])
    out = np.zeros(first.shape if shape is None else shape, dtype)
    for name in dtype.names:
        out[name] = np.asarray(cols[name], dtype=dtype[name])
    return out


def to_json(result, path: Union[str, Path, None] = None, *, indent: int | None = None) -> dict:
    """The launch as a JSON-ready dict; written to ``path`` if given. See the module docstring.

    Per command it stores start and end cycles and the program itself, so the file grows with
    the number of commands (never with packets)."""
    e = result.engine
    prog = result.program
    # Names the launch gave its commands (callables in memory), stored as lists.
    labels = sources = None
    if result.labels is not None:
        labels = [result.label(i) for i in range(prog.n_commands)]
    if getattr(result, "sources", None) is not None:
        sources = [result.source(i) for i in range(prog.n_commands)]
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
            "start": np.asarray(e.cmd_start).tolist(),
            "end": np.asarray(e.cmd_end).tolist(),
            "completion_order": np.asarray(e.completion_order).tolist(),
            "events_recorded": e.events is not None,
        },
        "messages": _columns(e.messages),
        "program": {
            "commands": _columns(prog.commands),
            "cmd_offsets": prog.cmd_offsets.tolist(),
            "tensor_bytes": prog.tensor_bytes.tolist(),
            "tensor_pinned": prog.tensor_pinned.tolist(),
            "tensor_offsets": prog.tensor_offsets.tolist(),
        },
        "labels": labels,
        "sources": sources,
        "summary": summarize(result),
        "profile": profile(result, sort="line")["lines"],
        "critical_path": critical_path(result).to_dict(),
        "drift": drift_summary(result) if getattr(result, "drift", None) is not None else None,
        "extra": jsonable(result.extra),
    }
    if path is not None:
        text = json.dumps(doc, indent=indent)  # one-shot dumps uses the C encoder
        with open(path, "w") as f:
            f.write(text)
    return doc


def load_json(path: Union[str, Path]) -> dict:
    """Read a file written by :func:`to_json`; returns the same dict ``to_json`` returned."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a kernbench launch JSON (truncated or not JSON: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a kernbench launch JSON (expected format {FORMAT!r})")
    return doc


def from_json(doc: Union[dict, str, Path]):
    """Rebuild a LaunchResult (with its EngineResult) from :func:`to_json`'s dict or file.

    Raises ValueError (naming the file) for a truncated, malformed or incomplete document."""
    source = "launch JSON"
    if not isinstance(doc, dict):
        source = str(doc)
        doc = load_json(doc)
    try:
        return _from_doc(doc)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"{source}: not a complete kernbench launch JSON ({type(e).__name__}: {e}); "
                         f"write it with LaunchResult.to_json") from None


def _from_doc(doc: dict):
    from .._core import LINK_COUNTERS_DTYPE, UNIT_COUNTERS_DTYPE
    from .._core.api import EVENT_DTYPE, MESSAGE_DTYPE, EngineResult

    hw = hw_from_dict(doc["hw"], source="launch JSON")
    p = doc["program"]
    prog = Program(
        _from_columns(p["commands"], COMMAND_DTYPE),
        np.asarray(p["cmd_offsets"], dtype=np.int64),
        np.asarray(p["tensor_bytes"], dtype=np.int64),
        np.asarray(p["tensor_pinned"], dtype=np.uint8),
        np.asarray(p["tensor_offsets"], dtype=np.int64),
    )
    c = doc["counters"]
    cmd = doc["commands"]
    start = np.asarray(cmd["start"], dtype=np.int64)
    end = np.asarray(cmd["end"], dtype=np.int64)
    events = None
    if cmd["events_recorded"]:
        # The engine's event record is exactly (pe, unit, cmd, start, end) sorted by start.
        n = len(start)
        events = np.zeros(n, EVENT_DTYPE)
        events["pe"] = np.repeat(np.arange(prog.n_pes), np.diff(prog.cmd_offsets))
        events["unit"] = prog.commands["unit"]
        events["cmd"] = np.arange(n)
        events["start"] = start
        events["end"] = end
        events = events[np.lexsort((events["cmd"], events["start"]))]
    engine = EngineResult(
        hw=hw,
        cycles=int(doc["cycles"]),
        unit_counters=_from_columns(c["units"], UNIT_COUNTERS_DTYPE),
        link_counters=_from_columns(c["links"], LINK_COUNTERS_DTYPE),
        peak_sram=np.asarray(c["peak_sram"], dtype=np.int64),
        sram_over=np.asarray(c["sram_over"], dtype=bool),
        cmd_start=start,
        cmd_end=end,
        messages=_from_columns(doc["messages"], MESSAGE_DTYPE),
        heap_events=int(c["heap_events"]),
        work=dict(c["work"]),
        detail=c["detail"],
        events=events,
        debug=dict(c["debug"]),
    )
    labels = doc.get("labels")
    sources = doc.get("sources")
    sfr = doc.get("sfr")
    return LaunchResult(
        hw=hw,
        sfr=None if sfr is None else SfrInstall(sfr["scope"], bool(sfr["ring"])),
        grid=tuple(doc["grid"]),
        mode=doc["mode"],
        kernel_name=doc["kernel"]["name"],
        kernel_file=doc["kernel"]["file"],
        args=doc["kernel"]["args"],
        program=prog,
        engine=engine,
        labels=(labels.__getitem__ if labels is not None else None),
        sources=(sources.__getitem__ if sources is not None else None),
        extra=doc.get("extra") or {},
    )
