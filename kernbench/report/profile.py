"""The per-line profile: where the time went, by line of the kernel.

For every kernel source line (the file:line of the ``tl`` call that emitted a command; a helper's
line when the kernel called a helper), summed over every PE:

- **busy** cycles its commands kept each unit busy (the engine's busy counter, split by line);
- **stall** cycles its commands suffered, by cause (docs/hardware-model.md): ``operand`` (the
  unit sat idle before the command, waiting for an operand), and inside busy ``credit`` (sends),
  ``data`` (recvs) and ``arbitration`` (DMA). All four are exact per command, derived from each
  command's start and end cycle (kernbench.report.commands); summed over lines they equal the
  engine's counters;
- its **command** count and the PEs that ran them;
- its share of the **critical path** (kernbench.report.critical_path);
- its GEMM, VECTOR and DMA busy cycles split into the work at the unit's peak and what the
  model charges beside it: edge folds, fill and drain, the SRAM operand bound; partly used issue
  slots, reduction trees, pipeline latency; partly used channel cycles, latency, waiting for the
  channel (kernbench.report.busy_parts).

:func:`profile` returns plain data (the JSON stores it under ``"profile"``); :func:`print_profile`
prints it as a table, sorted by busy cycles (or by critical-path share), followed by the critical
path's one-line summary and a line for each of GEMM, VECTOR and DMA that ran (:func:`busy_text`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from rich import box
from rich.cells import cell_len
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..common.errors import is_whole, short_repr
from ..common.pe_commands import N_UNITS, UNIT_NAMES
from ..common.shown import rich_text
from .table import emit, plural
from ..common.totals import exact_sums
from .commands import UNIT_ORDER, command_facts, line_groups
from .critical_path import critical_path
from .busy_parts import PARTS, command_columns, gemm_what_if, unit_parts, vector_what_if
from ..runtime.result import check_result

__all__ = ["profile", "print_profile", "render_profile", "busy_text", "STALLS"]

STALLS = ("operand", "credit", "data", "arbitration")
_SORTS = ("busy", "path", "line")


def profile(result, sort: str = "busy", path: bool = True) -> dict:
    """The per-line profile of ``result`` as plain data (see the module docstring).

    Returns ``{"cycles", "working_pes", "pe_cycles" (cycles x working PEs, the denominator of
    every percentage), "lines": [...], "critical_path": summary or None}``; each line is a dict
    with ``source`` (path:line), ``short`` (file.py:line), ``labels`` (its commands' names, the
    busiest first), ``commands``, ``pes``, ``busy`` ({unit name: cycles}), ``busy_cycles`` (all
    units), ``work_cycles`` (busy but the waits inside it: credit, data, arbitration),
    ``stall`` ({cause: cycles}), ``path_cycles`` and ``path_fraction`` (0 when ``path=False``),
    and for a line with commands on GEMM, VECTOR or DMA ``gemm`` / ``vector`` / ``dma``: its
    busy cycles on that unit split into their parts (kernbench.report.busy_parts: ``mac``,
    ``edge``, ``fill_drain``, ``sram``; ``lanes``, ``partial``, ``tree``, ``latency``;
    ``bytes``, ``partial``, ``latency``, ``arbitration``; floats summing to the line's busy on
    the unit), with ``flops`` and ``what_if`` (busy_parts.gemm_what_if, summed) for GEMM and
    ``what_if`` (busy_parts.vector_what_if) for VECTOR. The
    launch's ``gemm`` / ``vector`` / ``dma``: those summed over the lines, ``lost_most`` (the
    source of the line that lost the most cycles: busy but the work part), and the sizes the
    text names (GEMM ``rows``, ``cols``, ``accumulator_buffers``; VECTOR ``lanes_per_slot``,
    ``pipeline_latency``; DMA ``channel_bytes_per_cycle``, ``burst_bytes``,
    ``latency_cycles``); None when no command ran on the unit.
    ``sort``: "busy" (work cycles, most first; the default), "path" (critical path share, then
    work) or "line" (source order)."""
    check_result(result, "profile")
    if not isinstance(sort, str) or sort not in _SORTS:  # (an array's `in`: numpy's error)
        raise ValueError(f"sort must be one of {', '.join(_SORTS)}, got {short_repr(sort)}")
    if not isinstance(path, (bool, np.bool_)):  # ("no" would be true)
        raise ValueError(f"path must be True or False (the critical path's column), got {short_repr(path)}")
    fx = command_facts(result)
    g = line_groups(result)
    n_lines = len(g.sources)
    li = g.line_of
    busy = fx.end - fx.start
    per_unit = exact_sums(li * N_UNITS + fx.unit, n_lines * N_UNITS, busy).reshape(n_lines, N_UNITS)
    stalls = {name: exact_sums(li, n_lines, getattr(fx, name)) for name in STALLS}
    count = np.bincount(li, minlength=n_lines)
    npe = int(fx.pe.max()) + 1 if len(fx.pe) else 1
    n_pe = np.bincount(np.unique(li * npe + fx.pe) // npe, minlength=n_lines)  # PEs per line
    cp = critical_path(result) if path else None
    on_path = cp.by_line() if cp is not None else np.zeros(n_lines, np.int64)
    cycles = int(result.cycles)
    working = len(result.working_pes)
    labels = g.labels_by(busy.astype(np.float64) + 1e-9)  # by busy cycles (then commands)
    # each GEMM, VECTOR and DMA line's busy split into its parts (kernbench.report.busy_parts)
    split = {}
    cols = command_columns(result)
    for unit in PARTS:
        idx, parts = unit_parts(result, unit, columns=cols)
        on = li[idx]
        # the most commands of one opcode (loads, stores, exps...) one PE runs on each line (a
        # review: counted over every PE, two loads on PE 0 of a line the others ran otherwise
        # were one a PE)
        ops = np.asarray(cols["opcode"])[idx].astype(np.int64)
        n_ops = int(ops.max()) + 1 if len(ops) else 1
        keys, counts = np.unique((on * npe + fx.pe[idx]) * n_ops + ops, return_counts=True)
        one_kind = np.zeros(n_lines, np.int64)
        np.maximum.at(one_kind, keys // n_ops // npe, counts)
        split[unit] = ({p: np.bincount(on, weights=parts[p], minlength=n_lines) for p in PARTS[unit]},
                       np.bincount(on, minlength=n_lines), one_kind)
    dots, alt = gemm_what_if(result, cols)
    m, nn, k = (np.asarray(cols[c])[dots].astype(np.int64) for c in ("m", "n", "k"))
    flops = exact_sums(li[dots], n_lines, 2 * m * nn * k)  # (each at most 2**51; their sums exact)
    what_if = {"gemm": {name: np.bincount(li[dots], weights=v, minlength=n_lines) for name, v in alt.items()}}
    vec, alt = vector_what_if(result, cols)
    what_if["vector"] = {name: np.bincount(li[vec], weights=v, minlength=n_lines) for name, v in alt.items()}
    del cols
    lines = []
    for i in range(n_lines):
        lines.append({
            "source": g.sources[i],
            "short": g.short(i),
            "labels": labels[i],
            "commands": int(count[i]),
            "pes": int(n_pe[i]),
            "busy": {UNIT_NAMES[u]: int(per_unit[i, u]) for u in UNIT_ORDER if per_unit[i, u]},
            "busy_cycles": int(per_unit[i].sum()),
            "work_cycles": int(per_unit[i].sum()) - int(stalls["credit"][i]) - int(stalls["data"][i])
                           - int(stalls["arbitration"][i]),  # (Python ints: exact_sums' may pass int64)
            "stall": {name: int(stalls[name][i]) for name in STALLS},
            "path_cycles": int(on_path[i]),
            "path_fraction": float(on_path[i]) / cycles if cycles else 0.0,
        })
        for unit, (sums, ran, one_kind) in split.items():
            if ran[i]:
                lines[-1][unit.lower()] = {**{p: float(sums[p][i]) for p in PARTS[unit]},
                                           "commands": int(ran[i]), "commands_one_kind": int(one_kind[i])}
        if "gemm" in lines[-1]:
            lines[-1]["gemm"]["flops"] = int(flops[i])
        for unit, changes in what_if.items():
            if unit in lines[-1]:
                lines[-1][unit]["what_if"] = {name: float(v[i]) for name, v in changes.items()}
    # (before the sort: their ties go to the first line)
    totals = {unit.lower(): _unit_total(lines, unit, result.hw) for unit in PARTS}
    if sort == "busy":
        lines.sort(key=lambda d: (-d["work_cycles"], -d["busy_cycles"], -d["path_cycles"]))
    elif sort == "path":
        lines.sort(key=lambda d: (-d["path_cycles"], -d["work_cycles"]))
    else:
        lines.sort(key=lambda d: _source_key(d["source"]))
    return {
        "cycles": cycles,
        "working_pes": working,
        "pe_cycles": cycles * working,
        "lines": lines,
        **totals,
        "critical_path": None if cp is None else {"summary": cp.summary(), "steps": len(cp),
                                                   "shares": cp.shares()},
    }


def _unit_total(lines: list, unit: str, hw):
    """A unit's parts summed over ``lines``, the line that lost the most cycles (busy but the
    work part) and the unit's sizes the text names; None if no line ran on it."""
    key = unit.lower()
    ran = [d for d in lines if key in d]
    if not ran:
        return None
    parts = PARTS[unit]
    out = {p: float(sum(d[key][p] for d in ran)) for p in parts}
    if unit == "GEMM":
        out["flops"] = sum(d[key]["flops"] for d in ran)
        out["rows"], out["cols"] = int(hw.gemm.rows), int(hw.gemm.cols)
        out["accumulator_buffers"] = int(hw.gemm.accumulator_buffers)
    elif unit == "VECTOR":
        out["lanes_per_slot"] = int(hw.vector.lanes)
        out["pipeline_latency"] = int(hw.vector.pipeline_latency)
    else:
        out["channel_bytes_per_cycle"] = int(hw.dma.channel_bytes_per_cycle)
        out["burst_bytes"] = int(hw.dma.burst_bytes)
        out["latency_cycles"] = int(hw.dma.latency_cycles)
    worst = max(ran, key=lambda d: (sum(d[key][p] for p in parts[1:]), d["busy"].get(unit, 0)))
    out["lost_most"] = worst["source"]
    return out


def _source_key(src: str) -> tuple:
    path, _, line = src.rpartition(":")
    return (path, int(line) if line.isdigit() else 0)


# -- the table ------------------------------------------------------------------------------------
#: table columns for unit busy: heading -> units summed into it
_UNIT_COLUMNS = (("GEMM", ("GEMM",)), ("VEC", ("VECTOR",)), ("DMA", ("DMA",)),
                 ("TX", ("TX_E", "TX_W", "TX_N", "TX_S")), ("RX", ("RX_E", "RX_W", "RX_N", "RX_S")))
_STALL_HEAD = {"operand": "oper", "credit": "cred", "data": "data", "arbitration": "arb"}
#: below this console width the op goes under its line instead of in a column of its own
_WIDE = 110


def _pct(x: float, total: float) -> str:
    if not x:
        return "-"
    p = 100.0 * x / total if total else 0.0
    return f"{p:.1f}" if p >= 0.05 else "<0.1"


class _ProfileTable:
    """The profile table, laid out for the console's width. Wide: the op in a column of its own
    and a column per stall cause. Narrow (below 110 columns): the op on a second line under its
    kernel line, TX and RX as one link column, and the waits inside busy as one column marked
    with their cause (each unit has one: credit for sends, data for recvs, arb for DMA), so that
    at 80 columns no figure is cut."""

    def __init__(self, prof: dict, top: Optional[int], title: Optional[str]):
        self.prof, self.top, self.title = prof, top, title

    def table(self, wide: bool, width: int = 1 << 16) -> Table:
        prof = self.prof
        total = prof["pe_cycles"]
        lines = prof["lines"][:self.top] if self.top else prof["lines"]
        unit_cols = _UNIT_COLUMNS if wide else _UNIT_COLUMNS[:3] + (("link", _UNIT_COLUMNS[3][1] + _UNIT_COLUMNS[4][1]),)
        used_units = [(h, us) for h, us in unit_cols
                      if any(u in d["busy"] for d in prof["lines"] for u in us)]
        used_stalls = [s for s in STALLS if any(d["stall"][s] for d in prof["lines"])]
        with_path = prof["critical_path"] is not None
        t = Table(header_style="bold", box=box.SIMPLE_HEAD,
                  show_edge=False, padding=0)  # one space between columns: the box's divider
        rows = []
        for d in lines:
            op = d["labels"][0] if d["labels"] else ""
            if len(d["labels"]) > 1:
                op += f" +{len(d['labels']) - 1}"
            head = (d["short"], op)
            nums = [f"{d['commands']:,}"]
            nums += [_pct(sum(d["busy"].get(u, 0) for u in us), total) for _, us in used_units]
            if wide:
                nums += [_pct(d["stall"][s], total) for s in used_stalls]
            else:
                if "operand" in used_stalls:
                    nums.append(_pct(d["stall"]["operand"], total))
                if any(s != "operand" for s in used_stalls):
                    inside = {s: d["stall"][s] for s in STALLS[1:] if d["stall"][s]}
                    cause = max(inside, key=inside.get) if inside else None
                    nums.append(f"{_pct(sum(inside.values()), total)} {_STALL_HEAD[cause]}" if cause else "-")
            if with_path:
                nums.append(_pct(d["path_cycles"], prof["cycles"]))
            rows.append((head, nums, "bold" if with_path and d["path_fraction"] >= 0.1 else None))
        heads = ["cmds"] + [f"busy\n{h}" for h, _ in used_units]
        if wide:
            heads += [f"stall\n{_STALL_HEAD[s]}" for s in used_stalls]
        else:
            if "operand" in used_stalls:
                heads.append("stall\noper")
            if any(s != "operand" for s in used_stalls):
                heads.append("stall\nin busy")
        if with_path:
            heads.append("path")
        widths = [max([len(x) for x in h.split("\n")] + [len(r[1][j]) for r in rows])
                  for j, h in enumerate(heads)]
        # what the figures leave to the text (a one-space divider before each figure column)
        room = max(12, width - sum(w + 1 for w in widths) - (1 if wide else 0))
        line_w = max([len("line")] + [cell_len(r[0][0]) for r in rows])
        if wide:
            short_w = min(line_w, room // 2)
            t.add_column("line", no_wrap=True, overflow="ellipsis", max_width=short_w)
            t.add_column("op", no_wrap=True, overflow="ellipsis", max_width=max(8, min(40, room - line_w)))
        else:
            short_w = min(room, 40)
            t.add_column("line / op", no_wrap=True, overflow="ellipsis", max_width=short_w)
        for h, w in zip(heads, widths):
            t.add_column(h, justify="right", no_wrap=True, min_width=w)
        for (short, op), nums, style in rows:
            # file names and labels are the user's text: a Text, which rich shows as it is. A
            # long file name is cut on its left: its ":line" is how a reader finds the code.
            short = rich_text(_cut_left(short, short_w))
            head = [short, rich_text(op)] if wide else [short.append("\n").append(op, style="dim")]
            t.add_row(*head, *nums, style=style)
        return t

    def __rich_console__(self, console, options):
        # the title on a line of its own, at the console's width: as the table's title rich
        # wraps it to the table's, a column of 17 for a launch of no command (a review)
        if self.title is not None:
            yield rich_text(self.title, "table.title")  # the kernel's name, as it is
        yield self.table(options.max_width >= _WIDE, options.max_width)


def _cut_left(text: str, width: int) -> str:
    """``text`` in at most ``width`` terminal cells, cut on its left behind an ellipsis (a wide
    character, CJK, takes two cells: rich measures cells, not characters)."""
    if cell_len(text) <= width:
        return text
    i = 0
    while i < len(text) and cell_len(text[i:]) > width - 1:
        i += 1
    return "…" + text[i:]


def _check_top(top) -> None:
    if top is not None and (not is_whole(top) or top < 1):
        raise ValueError(f"top: expected None (every line) or a positive int, got {short_repr(top)}")


def render_profile(prof: dict, top: Optional[int] = None, title: Optional[str] = None):
    """The profile (from :func:`profile`) as a rich renderable: the table, what its figures are
    and the critical path's summary. Raises ValueError for a ``top`` that is not None or a
    positive int."""
    _check_top(top)
    parts = [_ProfileTable(prof, top, title)]
    if top and len(prof["lines"]) > top:
        parts.append(Text(f"... and {len(prof['lines']) - top} more lines", style="dim"))
    pes = f"{prof['working_pes']} working PE{'' if prof['working_pes'] == 1 else 's'}"
    parts.append(Text(f"busy and stall: % of {prof['cycles']:,} cycles x {pes}, "
                      f"summed over the units a line used; busy includes the waits inside it "
                      f"(credit, data, arb); path: % of the critical path", style="dim"))
    if prof["critical_path"] is not None:
        parts.append(Text(prof["critical_path"]["summary"]))
    for unit in PARTS:
        if prof.get(unit.lower()) is not None:
            parts.append(rich_text(busy_text(prof, unit)))
    return Group(*parts)


#: how the text names each part that is not the work, by unit
_LOSSES = {"GEMM": {"edge": "edge folds", "fill_drain": "fill and drain",
                    "sram": "the SRAM operand bound"},
           "VECTOR": {"partial": "partly used issue slots", "tree": "reduction trees",
                      "latency": "pipeline latency"},
           "DMA": {"partial": "partly used channel cycles", "latency": "latency",
                   "arbitration": "waiting for the channel"}}


def busy_text(prof: dict, unit: str) -> str:
    """The profile's line for ``unit`` ("GEMM", "VECTOR" or "DMA"): the share of the unit's busy
    cycles that was work at its peak (MACs of the whole array; every lane; bytes at the cube
    channel's rate), what the rest went to (kernbench.report.busy_parts), and the kernel line
    that lost the most, with its largest loss and what would cut it: for GEMM only a change the
    formula says cuts it, with its figure (:func:`kernbench.report.busy_parts.gemm_what_if`).
    ``prof``: :func:`profile`'s result. Raises ValueError for another unit, or one no command
    of the launch ran on."""
    if unit not in PARTS:
        raise ValueError(f"unit must be one of {', '.join(PARTS)}, got {short_repr(unit)}")
    t = prof.get(unit.lower())
    if t is None:
        raise ValueError(f"busy_text: no command of this launch ran on {unit}")
    parts = PARTS[unit]
    busy = sum(t[p] for p in parts)
    # (printed from the lines' integer busy cycles: the parts are floats, which lose the units
    # past 2**53, a review's 64 cycles at 9.2e18)
    exact = sum(d["busy"].get(unit, 0) for d in prof["lines"]) or round(busy)
    losses = ", ".join(f"{_LOSSES[unit][p]} {_share(t[p], busy)}" for p in parts[1:])
    if unit == "GEMM":
        work = f"were MACs at the {t['rows']} x {t['cols']} array's peak"
    elif unit == "VECTOR":
        work = f"used all {t['lanes_per_slot']} lanes"
    else:
        work = f"moved bytes at the channel's {t['channel_bytes_per_cycle']} B/cycle"
    text = (f"{unit}{_on_path(prof, unit)}: {_share(t[parts[0]], busy)} of its {exact:,} busy "
            f"cycles {work}; {losses}")
    line = next(d for d in prof["lines"] if d["source"] == t["lost_most"])
    mine = line[unit.lower()]
    worst = max(parts[1:], key=lambda p: mine[p])
    if mine[worst] <= 0:
        return text
    mine_busy = sum(mine[p] for p in parts)
    text = (f"{text}. Most lost at {line['short']}: {_LOSSES[unit][worst]}, "
            f"{_share(mine[worst], mine_busy)} of that line's {unit} cycles")
    # (fewer, larger commands only where a PE runs more than one of a kind there: a review was
    # told to merge a line's one load; a load and a store on one line are not two of a kind)
    several = mine["commands_one_kind"] > 1
    fix = (_gemm_fix(t, mine, worst, mine_busy) if unit == "GEMM" else
           _vector_fix(t, mine, worst, mine_busy, several) if unit == "VECTOR" else _dma_fix(t, worst, several))
    return f"{text} (what cuts it: {fix})" if fix else text


def _on_path(prof: dict, unit: str) -> str:
    """" (N% of the critical path)" or " (not on the critical path)" for ``unit``'s line, "" when
    the profile has no critical path: a unit off the path is not what the launch waits on (a
    review followed a VECTOR line's advice on a launch whose path was 97% DMA)."""
    cp = prof.get("critical_path")
    if cp is None:
        return ""
    on = sum(s["fraction"] for s in cp["shares"] if s["unit"] == unit)
    return f" ({_share(on, 1.0)} of the critical path)" if on > 0 else " (not on the critical path)"


def _gemm_fix(t: dict, mine: dict, worst: str, busy: float) -> str:
    # each change named only where gemm_what_if's figure says it cuts the line's cycles
    alt = mine["what_if"]
    if worst == "edge":
        return "more rows and columns a dot, M toward a multiple of R and N of C (an idle cell costs as a busy one)"
    fixes = []
    if worst == "fill_drain":
        now, then = mine["mac"] / busy, alt["k_x2_mac"] / alt["k_x2_busy"]
        if then > now:
            fixes.append(f"twice the K a dot, {_peak(now)} -> {_peak(then)} of peak")
        if t["accumulator_buffers"] == 1 and alt["two_buffers"] < busy:
            fixes.append(f"two accumulator buffers, {round(busy):,} -> {round(alt['two_buffers']):,} cycles")
    else:  # sram: each remedy with its own figure (fp8 has no narrower dtype; a mixed dot
        # streams its wider operand's elements: a review)
        if alt["sram_x2"] < busy:
            fixes.append(f"twice sram.bytes_per_cycle, {round(busy):,} -> {round(alt['sram_x2']):,} cycles")
        if alt["narrower"] < busy:
            # (both: a dot streams its wider operand's elements, so halving one of two f32
            # operands gains nothing; a review applied it to one)
            fixes.append(f"operands at most half as wide as the wider one now, {round(busy):,} -> "
                         f"{round(alt['narrower']):,} cycles")
    return "; or ".join(fixes)


def _dma_fix(t: dict, worst: str, several: bool) -> str:
    width, burst = t["channel_bytes_per_cycle"], t["burst_bytes"]
    if worst == "partial" and burst % width:
        # (every burst holds the channel a partly used cycle: no tile size removes it; a review)
        return (f"dma.burst_bytes a multiple of the channel's {width} B/cycle (each {burst}-byte burst "
                f"holds it {plural(-(-burst // width), 'cycle')})")
    return {"partial": f"tiles a multiple of {width} bytes (a burst's last channel cycle costs as a full "
                       f"one)",
            "latency": (f"fewer, larger tiles (each command pays {plural(t['latency_cycles'], 'cycle')})"
                        if several else ""),
            # (its transfers, not its loads: the line may be a store's, a review)
            "arbitration": "the cube's other PEs' bursts share its channel: its transfers at "
                           "other times, or fewer bytes (the table's memory and bound rows say "
                           "whether the channel is the limit)"}[worst]


def _vector_fix(t: dict, mine: dict, worst: str, busy: float, several: bool) -> str:
    lanes = t["lanes_per_slot"]
    if worst == "tree":
        # (offered only where vector_what_if says it cuts the line's cycles: fewer rows than
        # lanes reduced along a leading axis take longer, a review)
        alt = mine["what_if"]["leading_axis"]
        if alt >= busy:
            return ""
        # (priced as a 2-D (rows, r) tile transposed: tl.trans swaps the last two axes, so a
        # tile of more axes is reshaped first, which a transposed view cannot be without a copy:
        # reviews applied it to a 3-D tile and to a transposed 3-D view as written)
        return (f"each row reduced along the lanes pays ceil(log2 {lanes}) = {(lanes - 1).bit_length()} "
                f"cycles; the rows reduced over a leading axis instead where that is cheaper, as "
                f"tl.trans(x) over axis 0 of a 2-D (rows, r) tile, {round(busy):,} -> {round(alt):,} "
                f"cycles (a tile of more axes reshaped to 2-D first; a transposed one cannot be "
                f"without a copy, not counted here)")
    return {"partial": f"more elements a command, sizes toward a multiple of the {lanes} lanes (an idle "
                       f"lane costs as a busy one)",
            "latency": (f"fewer, larger commands (each pays {plural(t['pipeline_latency'], 'cycle')})"
                        if several else "")}[worst]


def _peak(f: float) -> str:
    # a fraction of peak shown with the digits that make a small one visible: "0.0% -> 0.0%" hid
    # a matrix-vector dot's gain (a review; 0.020% -> 0.033%)
    p = 100.0 * f
    # (two significant digits without an exponent: "3e-06%" read badly, a review)
    return f"{p:.1f}%" if p >= 1 else np.format_float_positional(p, precision=2, unique=False,
                                                                 fractional=False, trim="-") + "%"


def _share(x: float, total: float) -> str:
    if x <= 0:
        return "0%"
    p = 100.0 * x / total if total else 0.0
    if p < 0.05:
        return "<0.1%"
    # (not all of it, never "100.0%": beside other units' "<0.1%" it read as more than all; a review)
    return ">99.9%" if 99.95 <= p < 100 else f"{p:.1f}%"


def print_profile(result, console: Optional[Console] = None, file=None, width: int = 120,
                  sort: str = "busy", top: Optional[int] = None, path: bool = True) -> str:
    """Print the per-line profile of ``result`` (a table sorted by ``sort``, the first ``top``
    lines) and the critical path's summary; returns the plain text. ``console``, ``file`` and
    ``width`` as for :func:`kernbench.report.print_report`."""
    check_result(result, "print_profile")
    _check_top(top)  # (before the profile is made)
    prof = profile(result, sort=sort, path=path)
    renderable = render_profile(prof, top=top, title=f"{result.kernel_name}: per-line profile "
                                f"({result.cycles:,} cycles, sorted by {sort})")
    return emit(renderable, console, file, width, who="print_profile")
