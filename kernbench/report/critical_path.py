"""The critical path of a launch: the chain of commands, across PEs, that sets its last cycle.

Computed from each command's start and end cycle (the engine's per-command record; the same as
the event record of ``record_events=True``) and the program, by the engine's own rules
(docs/hardware-model.md). Walking back from the command that ends last:

- a command **starts** at the end of the command before it on its unit, or at the end of the
  producer of one of its operands, whichever is later (cycle 0 if none): the path goes to that
  input (``via`` "unit order" or "operand"; on a tie, unit order);
- a command **ends** after its own work, unless something outside it held it up:

  * a **recv** that waited for data ends one hop after its matching send ends: the path goes to
    the send (``"data"`` step, the hop, on the recv);
  * a **send** whose credits came back late because a recv was posted after its packet
    landed ends a hop after that post (and the rest of its packets): the path goes to that
    recv's start (``"credit"`` step on the send, from the post to its end; see Credits below);
    a post before the send started (an earlier message's recv) held the send before it on
    the unit instead, whose credit step names it: this send is a busy step;
  * a **DMA** command that waited for the cube's memory channel (arbitration stall) and ended
    after everything requested before it (or in the same cycle) in the same busy period had
    left the channel ends when the channel has served all that: the path goes to the start of
    the command that opened that busy period (``"channel"`` step on the DMA command, from that
    start to its end; from its own start when the period opened in its request cycle). One that
    ended first (round robin served it beside a longer backlog, not after it) owes its end to
    its own start: a ``"busy"`` step, its stall inside it. A channel busy period is a run of
    ``[start, end - dma.latency_cycles]`` intervals of the cube's DMA commands, each starting
    before the latest end of the ones before it (one starting in the cycle that end was opens
    a period of its own: nothing requested before it was pending): while a command has bursts
    pending the channel is never idle (it is work-conserving), so the union of those
    intervals is exactly when the channel was busy;
  * otherwise the command's own duration is on the path (``"busy"`` step).

The steps tile ``[0, cycles]`` with no gap. Each step's ``slack`` is how many cycles its link
could gain before another input would set the time instead (0: a tie):

- ``busy``: the command's start minus its next-latest input (the unit's previous command or
  another operand; cycle 0 counts as one);
- ``data``: the data landing minus the recv's post (how long the recv had been waiting);
- ``credit``: how much earlier the send would end with the recv posted when its next-latest
  input was ready, the recvs after it on the link posted as their RX unit's order then allows
  (the link's recurrence run again so; beyond WALK_PACKETS packets in all, the send's credit
  stall, an upper bound);
- ``channel``: the DMA command's arbitration stall (its end minus its start and its time alone).

Credits: which recv's post held a send is read off the link's recurrence
(docs/hardware-model.md, "SFR links"; _link.packet_starts recomputes every packet's start from
the sends' starts and the recvs' posts), walked back from the send's last packet to the term
that set each packet's start: the send's start (then no recv held it: the send is a busy step),
the wire (the packet before), a credit back a round trip after its packet landed (the packet
``link.rx_queue_packets`` before), or a credit back a hop after a recv's post that came later
than its packet (that recv is the one; it may be an earlier message's). On a tie the walk takes
them in that order: a post it names set the time, possibly tied with another chain. The
recurrence is run from the latest message whose send started with every earlier credit back
(_link.restart_points); past WALK_PACKETS packets, :func:`_post_bound` names the recv. A credit-bound link
(small packets or queue) stalls a send for credits with every recv posted early: that stall is
inside a busy step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..common.errors import is_whole, short_repr
from ..common.pe_commands import N_UNITS, UNIT_NAMES, Opcode, Unit
from ..common.totals import exact_sums
from .commands import command_facts, dma_array, keep_report, kept_report, line_groups
from .table import plural
from ..runtime.result import check_result

__all__ = ["CriticalPath", "critical_path", "perfetto_events", "STEP_KINDS"]

#: what a step of the path spent its cycles on
STEP_KINDS = ("busy", "data", "credit", "channel")
_STEP_DTYPE = np.dtype([("cmd", np.int64), ("t0", np.int64), ("t1", np.int64), ("kind", np.int8),
                        ("via", np.int8), ("slack", np.int64), ("other", np.int64)])
#: how a step follows the step before it
VIA = ("launch start", "unit order", "operand", "send -> recv")
_BUSY, _DATA, _CREDIT, _CHANNEL = range(4)
_V_START, _V_UNIT, _V_OPERAND, _V_DATA = range(4)


@dataclass
class CriticalPath:
    """The path as arrays of steps in time order (each field one entry per step).

    ``cmd``: the command whose time the step is; ``t0``, ``t1``: its cycles; ``kind``: what the
    time was (STEP_KINDS: the command's own work, data in flight to a recv, a send waiting for the
    receiver's credits, a DMA command behind others on the memory channel); ``via``: how the step
    follows the one before (VIA); ``slack``: see the module docstring; ``other``: the command on
    the other side of a data or credit step (the send, the recv) or that opened a channel busy
    period (-1 otherwise). ``lines`` groups the commands by kernel source line."""

    result: object
    steps: np.ndarray
    cycles: int
    lines: object = field(repr=False, default=None)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def cycles_on_path(self) -> int:
        return int((self.steps["t1"] - self.steps["t0"]).sum())

    def step_dicts(self, limit: int | None = None) -> list:
        """The steps as plain dicts (the first ``limit``: None for all, else an int >= 0), in
        time order. Raises ValueError for another ``limit``."""
        if limit is not None and (not is_whole(limit) or limit < 0):
            raise ValueError(f"step_dicts: limit must be None (every step) or an int >= 0, got {short_repr(limit)}")
        limit = None if limit is None else int(limit)
        r, g = self.result, self.lines
        fx = command_facts(r)
        out = []
        for s in self.steps[:limit].tolist():
            c, t0, t1, kind, via, slack, other = s
            out.append({
                "cmd": c, "pe": int(fx.pe[c]), "pe_name": r.pe_name(int(fx.pe[c])),
                "unit": UNIT_NAMES[int(fx.unit[c])], "source": g.sources[int(g.line_of[c])],
                "label": r.label(c), "start_cycle": t0, "end_cycle": t1, "cycles": t1 - t0,
                "kind": STEP_KINDS[kind], "via": VIA[via], "slack": slack,
                "other_cmd": other if other >= 0 else None,
            })
        return out

    def by_line(self) -> np.ndarray:
        """Cycles of the path per line index of ``lines`` (steps on commands of that line)."""
        n_lines = len(self.lines.sources)
        if not len(self.steps):
            return np.zeros(n_lines, np.int64)
        li = self.lines.line_of[self.steps["cmd"]]
        return exact_sums(li, n_lines, self.steps["t1"] - self.steps["t0"])

    def shares(self) -> list:
        """The path's cycles grouped by (source line, unit, kind), largest first: dicts with
        source, short (file.py:line), unit, kind, cycles, fraction, slack (the sum of its steps'
        slacks: a channel group's arbitration wait), latency (of a DMA group: the DMA latency
        its steps end with, ``dma.latency_cycles`` each), credit (of a busy send group: its
        sends' credit stall, the link's own credit round trip), pes (sorted), label (of the
        group's longest step's command), more_labels (how many other labels its commands
        have: a line with a cast and an add on one unit is one group) and ahead (None, or when
        a command of the group sat ahead, in its unit's order, of one the path needed sooner:
        the last of the run queued behind (its label and short), the consumer reading it (its
        label and short; None: the launch's end), the run's commands, cycles (how much sooner
        the consumer could start with the run issued first, each of its commands as soon as the
        one before it and its inputs allow and taking the cycles it took, no sooner than its
        other inputs and its unit's command before; at the launch's end, how much sooner the
        unit ends with the run first and the group's commands after it, no sooner than the PE's
        other units), places (how many places on the path the same order, the group's line
        ahead of the same lines read by the same line, holds a reader up so: a loop's
        iterations, each a gain of its own; cycles is the first's) and later_run (the run's last line ran before on that
        PE: a loop's next iteration, or a helper's later call))."""
        if not len(self.steps):
            return []
        fx = command_facts(self.result)
        g = self.lines
        cmd = self.steps["cmd"]
        dur = self.steps["t1"] - self.steps["t0"]
        li = g.line_of[cmd]
        key = (li * 16 + fx.unit[cmd]) * 4 + self.steps["kind"]
        uniq, inv = np.unique(key, return_inverse=True)
        cyc = exact_sums(inv, len(uniq), dur)
        slack = exact_sums(inv, len(uniq), self.steps["slack"])
        # a DMA step's last dma.latency_cycles are its command's latency, after its last burst
        # left the channel (a review: PEs served round robin stay in step, so each pays it at
        # the same time and the channel idles, which "waiting" alone did not say)
        lat = np.where(fx.unit[cmd] == Unit.DMA, np.minimum(dur, int(self.result.hw.dma.latency_cycles)), 0)
        latency = exact_sums(inv, len(uniq), lat)
        # a busy send's credit stall: the link's own credit round trip paced it, every recv
        # posted in time (a review: a 34x credit-bound launch said only "100% TX_E send")
        held = np.where((self.steps["kind"] == _BUSY) & (fx.opcode[cmd] == Opcode.SEND), fx.credit[cmd], 0)
        credit = exact_sums(inv, len(uniq), held)
        ahead = self._queued_ahead(fx, li, inv)
        out = []
        for j, k in enumerate(uniq.tolist()):
            members = np.flatnonzero(inv == j)
            pes = sorted(set(fx.pe[cmd[members]].tolist()))
            longest = int(cmd[members[np.argmax(dur[members])]])
            line, unit, kind = k // 64, (k // 4) % 16, k % 4
            label = self.result.label(longest)
            others = {g.key_label[int(s)] for s in np.unique(g.key_of[cmd[members]]).tolist()} - {label}
            out.append({"source": g.sources[line], "short": g.short(line), "unit": UNIT_NAMES[unit],
                        "kind": STEP_KINDS[kind], "cycles": int(cyc[j]),
                        "fraction": float(cyc[j]) / self.cycles if self.cycles else 0.0,
                        "slack": int(slack[j]), "latency": int(latency[j]), "credit": int(credit[j]),
                        "pes": pes, "label": label, "more_labels": len(others), "ahead": ahead.get(j)})
        out.sort(key=lambda d: -d["cycles"])
        return out

    def _memory_order(self, fx, c: int, behind) -> bool:
        """Whether DMA command ``c`` must stay ahead of one of the commands ``behind`` it (a
        store and a load or store of one device array: reordering them changes the values)."""
        if fx.opcode[c] not in (Opcode.LOAD, Opcode.STORE):
            return False
        return any(fx.opcode[b] in (Opcode.LOAD, Opcode.STORE) and _dma_pair_depends(self.result, fx, c, int(b))
                   for b in behind.tolist())

    def _queued_ahead(self, fx, li, inv) -> dict:
        """Groups (``inv`` numbers) whose command sits ahead, in its unit's program order, of
        one the path needs sooner: a step of the group followed on the path, via "unit order"
        on the same unit, by commands of another line up to one whose result the path's next
        step reads (the consumer) or that ends the launch, when the group's own command's
        result is first read later than that consumer starts (or never). Reordering helps there
        (issue the needed one first), where the path only says "sharing the memory channel" (a
        review: 8 weight loads queued ahead of the next chunk's read as bandwidth; moving them
        after the loop made it slower). Not when the order is the values' (a store and a later
        load or store of one device array among the commands passed: a spill read back; a link
        unit's order, its messages'), nor when a command behind had an input made after the
        group's command started (moved first, it would hold the unit idle), nor, ending the
        launch, when another PE ends within the gain (the line moved there too may end it later).
        Group -> dict(label, short, consumer and consumer_short (None: the launch's end),
        commands, cycles (see :meth:`shares`), places (how many places on the path the order
        holds up a reader so, each a gain of its own; cycles is the first's), later_run)."""
        st = self.steps
        n = len(st)
        cmd, via = st["cmd"], st["via"]
        pe, unit = fx.pe[cmd], fx.unit[cmd]
        # follows[k]: step k + 1 comes after step k in the order of the same unit (not a link
        # unit's: a port's sends and recvs pair with the other end's in order, so swapping two
        # swaps their messages; a breaker's gated recv got a note)
        follows = ((via[1:] == _V_UNIT) & (pe[1:] == pe[:-1]) & (unit[1:] == unit[:-1])
                   & (unit[1:] < Unit.TX_E))
        breaks = np.flatnonzero(~follows)  # (a run of such steps ends at each)
        out, first_use, pe_end = {}, None, None
        g = self.lines
        for i in np.flatnonzero(follows & (li[1:] != li[:-1])).tolist():
            k = int(np.searchsorted(breaks, i + 1))
            j = int(breaks[k]) if k < len(breaks) else n - 1  # the run's last step
            ends = j == n - 1  # (the run ends the launch: its end is the consumer)
            if (not ends and via[j + 1] != _V_OPERAND) or j - i > _AHEAD_MAX:
                continue
            # the order: the share, the run's lines and the reader's line (the launch's end: -1)
            order = (int(inv[i]), tuple(li[i + 1:j + 1].tolist()), -1 if ends else int(li[j + 1]))
            if int(inv[i]) in out:
                # the path meets a group's noted order again (a loop's next iteration): the
                # launch may gain there too (a review: a software pipeline gained about the
                # figure at each iteration); counted, not worked out again (a review: every
                # place in full made long loops' notes 3x slower), and only the same order (a
                # review: the last iteration's store, ahead of loads ending the launch, counted)
                if out[int(inv[i])]["order"] == order:
                    out[int(inv[i])]["places"] += 1
                continue
            if first_use is None:
                first_use = _first_reads(fx)
            c, last = int(cmd[i]), int(cmd[j])
            user = None if ends else int(cmd[j + 1])
            behind = cmd[i + 1:j + 1]
            # (each command behind could have run in c's place: its inputs made by c's start; a
            # load gated by after= on a later tensor, moved first, would hold the unit idle)
            made = fx.producers[behind]
            outside = (made >= 0) & ~np.isin(made, behind)  # (the run's own inputs move with it)
            inputs = int(np.where(outside, fx.end[np.maximum(made, 0)], 0).max(initial=0))
            # the group's commands the run would pass: the run of them ending at step i
            i0 = i  # (by line: a line's first load may be a busy step, its others channel steps)
            while i0 > 0 and follows[i0 - 1] and li[i0 - 1] == li[i]:
                i0 -= 1
            passed = cmd[i0:i + 1]
            later = first_use[c] > (self.cycles if user is None else fx.start[user])
            if user is None:
                # ending the launch: no passed command read at all (a review: a helper's line
                # of two loads, the first read at once by an exp chain; moved after the run, it
                # pushed that chain past the old end: 1,174 -> 1,256 cycles)
                later = later and int(first_use[passed].min()) > self.cycles
            if (later and inputs <= fx.start[c] and not np.isin(made, passed).any() and not any(
                    self._memory_order(fx, int(x), behind) for x in passed.tolist())):
                # (and no command behind reads a passed one: it cannot go first, a review's
                # `v1 = tl.load(..., after=v0)` behind the line of v0 and u0)
                # The run issued first, from when the unit was free before the group's
                # commands: each of its commands as soon as the one before and its own inputs
                # allow, each taking the time it took (a review: the run as a whole waiting for
                # its latest input said 214 where issuing it first gained 396, as a load not
                # gated ran at once)
                c0 = int(cmd[i0])
                free = int(fx.end[fx.prev[c0]]) if fx.prev[c0] >= 0 else 0
                run_end = int(_issued_in_order(fx, behind, free)[-1])
                if user is not None:
                    # what the consumer gains: no more than its start past its inputs from outside
                    # the run and its unit's command before it (the causal prefill's next K/V
                    # group's loads wait behind a store, but its first dot waits for GEMM anyway)
                    src = fx.producers[user]
                    moved, pushed = set(behind.tolist()), set(passed.tolist())
                    other = [int(x) for x in src.tolist() if x >= 0 and x not in moved]
                    if fx.prev[user] >= 0:
                        other.append(int(fx.prev[user]))
                    # an input among the passed commands, or made from one, ends later by up to
                    # as much as a passed command does once they are issued after the run
                    # (breakers: the dot read w0, 728 claimed, 546 true; it read h made from w0,
                    # 512 claimed, 330 true; a run waiting for a gate pushed them past its own
                    # time, 110 claimed, 38 true)
                    pushed_by = int((_issued_in_order(fx, passed, run_end) - fx.end[passed]).max())
                    bound = max((int(fx.end[x]) + (pushed_by if _reaches(fx, x, pushed, int(fx.start[c0])) else 0)
                                 for x in other), default=0)
                    waited = int(fx.start[user]) - max(run_end, bound)
                else:
                    # ending the launch: the group's commands then run after the run, so the
                    # unit ends sooner by the idle time the new order fills (the same work
                    # either way); the launch no sooner than this PE's other units end (a
                    # review: the DMA unit 286 sooner, the launch 210, as an exp chain ran on);
                    # and not when another PE ends within the gain (the line moved there too
                    # may end it later: a breaker's second PE, whose values came in the other
                    # order)
                    if pe_end is None:
                        pe_end = np.zeros(int(fx.pe.max()) + 1, np.int64)
                        np.maximum.at(pe_end, fx.pe.astype(np.int64), fx.end)
                        unit_end = np.zeros((len(pe_end), int(Unit.RX_S) + 1), np.int64)
                        np.maximum.at(unit_end, (fx.pe.astype(np.int64), fx.unit.astype(np.int64)), fx.end)
                    here = np.delete(unit_end[int(fx.pe[c])], int(fx.unit[c]))
                    waited = int(st["t1"][j]) - max(int(_issued_in_order(fx, passed, run_end)[-1]), int(here.max(initial=0)))
                    others = np.delete(pe_end, int(fx.pe[c]))
                    if len(others) and int(others.max()) > self.cycles - waited:
                        continue
                if waited <= 0:
                    continue
                first = int(self.result.program.cmd_offsets[int(fx.pe[c])])
                out[int(inv[i])] = {
                    "label": self.result.label(last), "short": g.short(int(li[j])),
                    "consumer": None if user is None else self.result.label(user),
                    "consumer_short": None if user is None else g.short(int(li[j + 1])),
                    "commands": j - i, "cycles": waited, "places": 1, "order": order,
                    # a later run of the run's last line on its PE (a loop's next iteration, or
                    # a helper's second call: the commands name the helper's line)
                    "later_run": bool(np.any(g.line_of[first:c] == li[j]))}
        for note in out.values():
            del note["order"]
        return out

    def summary(self, top: int | None = 4) -> str:
        """One line: the largest shares of the path (at most ``top``, each at least 1%), e.g.
        "62% GEMM dot (256,128)x(128,2048) f16 at _prefill.py:37 on PE (3, 0), 31% VECTOR exp
        (256,2048) f32 at _prefill.py:44 on 8 PEs, 7% in 5 more". ``top`` None: every share,
        however small.
        Raises ValueError unless ``top`` is None or a positive int."""
        if top is not None and (not is_whole(top) or top < 1):
            raise ValueError(f"summary: top must be None (every share) or a positive int, got {short_repr(top)}")
        top = None if top is None else int(top)
        shares = self.shares()
        if not shares:
            return "critical path: no command"
        shown = shares if top is None else [s for s in shares[:top] if s["fraction"] >= 0.01] or shares[:1]
        parts = []
        for s in shown:
            pes = s["pes"]
            who = self.result.pe_name(pes[0]) if len(pes) == 1 else f"{len(pes)} PEs"
            # (+N: N more kinds of command of the line on this unit, as the profile marks them)
            label = s["label"] + (f" +{s['more_labels']}" if s["more_labels"] else "")
            what = {
                "busy": f"{s['unit']} {label}" + (
                    f" ({plural(s['credit'], 'cycle')} of it waiting for credits, every recv posted in time: "
                    f"the link's credit round trip, link.rx_queue_packets and packet_bytes)"
                    if s["credit"] else ""),
                "data": f"data in flight to {s['unit']} {label}",
                # (its gain: a post a few cycles late on a link its own credit round trip paces
                # was read as the whole step's cause, a review)
                "credit": f"{s['unit']} {label} waiting for the receiver's credits (posting the recv "
                          f"earlier gains up to {plural(s['slack'], 'cycle')})",
                # (the step holds the command's own bursts too: its wait is the slack)
                "channel": f"DMA {label} sharing the memory channel ({plural(s['slack'], 'cycle')} waiting)"
                           + (f" and its latency ({plural(s['latency'], 'cycle')})" if s["latency"] else ""),
            }[s["kind"]]
            parts.append(f"{_pct(s['fraction'])} {what} at {s['short']} on {who}{_ahead_text(s)}")
        rest = shares[len(shown):]
        if rest:
            parts.append(f"{_pct(sum(s['fraction'] for s in rest))} in {len(rest)} more")
        text = (f"critical path ({plural(len(self.steps), 'step')} on {plural(len(self._pes()), 'PE')}): "
                + ", ".join(parts))
        # a share too small to be shown may hold the order that costs most (a review: a 136-cycle
        # add ahead of a ring's adds held them 16,184 cycles): each such note follows, the
        # costliest first
        hidden = sorted((s for s in rest if s["ahead"]), key=lambda s: -s["ahead"]["cycles"])
        for s in hidden:
            who = self.result.pe_name(s["pes"][0]) if len(s["pes"]) == 1 else f"{len(s['pes'])} PEs"
            text += f"; also {s['unit']} {s['label']} at {s['short']} on {who}{_ahead_text(s)}"
        return text

    def _pes(self) -> np.ndarray:
        return np.unique(command_facts(self.result).pe[self.steps["cmd"]])

    def to_dict(self) -> dict:
        """Plain data for JSON: ``cycles``, ``summary``, ``shares`` and ``steps`` as columns
        (``cmd``, ``start``, ``end``, ``kind``, ``via``, ``slack``, ``other``: one entry per step in
        time order; kinds and vias by name)."""
        st = self.steps
        return {"cycles": self.cycles, "summary": self.summary(), "shares": self.shares(),
                "steps": {"cmd": st["cmd"].tolist(), "start": st["t0"].tolist(), "end": st["t1"].tolist(),
                          "kind": [STEP_KINDS[k] for k in st["kind"].tolist()],
                          "via": [VIA[v] for v in st["via"].tolist()], "slack": st["slack"].tolist(),
                          "other": st["other"].tolist()}}

    def __repr__(self) -> str:
        return f"<CriticalPath {self.summary()}>"


def _dma_pair_depends(result, fx, a: int, b: int) -> bool:
    """Whether DMA commands ``a`` and ``b`` must keep their order: one stores to the device
    array the other loads from or stores to (a spill read back; an unknown array counts as the
    same)."""
    stores = (fx.opcode[a] == Opcode.STORE) or (fx.opcode[b] == Opcode.STORE)
    if not stores:
        return False
    x, y = dma_array(result, a), dma_array(result, b)
    return x is None or y is None or x == y


def _issued_in_order(fx, cmds, t: int) -> np.ndarray:
    """The ends of ``cmds`` (int64, in their order) on a unit free from cycle ``t`` that issues
    them in that order, each starting as soon as the one before it ends and its inputs made
    outside ``cmds`` have (their ends as they ran), each taking the cycles it took."""
    made = fx.producers[cmds]
    ready = np.where((made >= 0) & ~np.isin(made, cmds), fx.end[np.maximum(made, 0)], 0).max(axis=1, initial=0)
    ends = np.empty(len(cmds), np.int64)
    for k, (x, r) in enumerate(zip(cmds.tolist(), ready.tolist())):
        t = max(t, int(r)) + int(fx.end[x] - fx.start[x])
        ends[k] = t
    return ends


def _ahead_text(share: dict) -> str:
    """The summary's words for a share's ``ahead`` note ("" without one)."""
    a = share.get("ahead")
    if not a:
        return ""
    later = " (a later run of its line)" if a["later_run"] else ""
    what = (f"{a['label']} at {a['short']}{later}" if a["commands"] == 1 else
            f"{a['commands']} commands up to {a['label']} at {a['short']}{later}")
    # (the figure is the reader's gain at this one place on the path, each command taking the
    # cycles it took: the moved commands still run on the unit, and a loop repeats the place,
    # which places counts; a reader took "N cycles late" for the launch's gain, a review)
    if a["consumer"] is None:
        reader = (f"{'which ends' if a['commands'] == 1 else 'which end'} the launch: it could end up to "
                  f"{plural(a['cycles'], 'cycle')} sooner")
    else:
        more = a.get("places", 1)
        reader = (f"which {a['consumer']} at {a['consumer_short']} reads sooner: it could start up to "
                  f"{plural(a['cycles'], 'cycle')} sooner here"
                  + (f" (the first of {more:,} such places on the path, each a gain of its own)" if more > 1 else ""))
    return (f" (ahead, in its {share['unit']} order, of {what}, {reader}; "
            f"issue {'it' if a['commands'] == 1 else 'those'} first)")


#: the most commands an 'ahead' note asks to issue first (a unit's whole steady stream, a GEMM
#: running dot after dot, is no reorder to suggest, and checking it for every step was quadratic)
_AHEAD_MAX = 64


def _reaches(fx, x: int, passed: set, since: int, limit: int = 256) -> bool:
    """Whether command ``x`` waits, through operands or its unit's order, on one of ``passed``
    (walked back over at most ``limit`` commands; those that ended by cycle ``since``, before the
    passed ones began, need none of them; beyond the limit, assumed to)."""
    todo, seen = [x], set()
    while todo:
        y = todo.pop()
        if y in passed:
            return True
        if y in seen or fx.end[y] <= since:
            continue
        seen.add(y)
        if len(seen) > limit:
            return True
        todo.extend(int(q) for q in fx.producers[y].tolist() if q >= 0)
        if fx.prev[y] >= 0:
            todo.append(int(fx.prev[y]))
    return False


def _first_reads(fx) -> np.ndarray:
    """Per command, the earliest start of a command reading its result (an operand of it; the
    largest int64 for none)."""
    first = np.full(len(fx.start), np.iinfo(np.int64).max, np.int64)
    for k in range(fx.producers.shape[1]):
        p = fx.producers[:, k]
        m = p >= 0
        np.minimum.at(first, p[m], fx.start[m])
    return first


def _pct(f: float) -> str:
    p = 100.0 * f
    if 99.5 <= p < 100:
        return ">99%"  # (not "100%" beside "0.5% in 2 more": a review; the profile's _share too)
    return f"{p:.0f}%" if p >= 1 or p == 0 else ("<0.1%" if p < 0.1 else f"{p:.1f}%")


# -- the walk ---------------------------------------------------------------------------------
def _channel_openers(result, fx) -> tuple:
    """For every DMA command, the command that opened its cube's channel busy period (-1 for
    other commands), and whether its last burst left the channel no earlier than those of every
    command requested before it in that period (see the module docstring)."""
    n = len(fx.start)
    opener = np.full(n, -1, np.int64)
    dma = np.flatnonzero((fx.opcode == Opcode.LOAD) | (fx.opcode == Opcode.STORE))
    if not len(dma):
        return opener, np.zeros(n, bool)
    lat = int(result.hw.dma.latency_cycles)
    cube = fx.pe[dma].astype(np.int64) // result.hw.pes_per_cube  # (int64: times a cycle count below)
    s = fx.start[dma]
    e = fx.end[dma] - lat  # the last burst left the channel
    order = np.lexsort((dma, s, cube))
    cube, s, e, idx = cube[order], s[order], e[order], dma[order]
    # the running max of the ends within each cube, in one pass: each cube's cycles shifted
    # past the one before's
    big = int(max(int(e.max()), int(s.max())) + 1)
    prev_max = np.r_[-1, np.maximum.accumulate(e + cube * big)[:-1]]
    new = (s + cube * big) >= prev_max  # overlaps nothing before it in its cube
    new |= np.r_[True, cube[1:] != cube[:-1]]
    period = np.cumsum(new) - 1
    opener[idx] = idx[np.flatnonzero(new)][period]
    # did it leave the channel after every command requested before it, or in the same cycle,
    # in its busy period? (the running max through the last request of its cycle and cube)
    key = e + cube * big
    incl = np.maximum.accumulate(key)
    last_of_cycle = np.r_[(s[1:] != s[:-1]) | (cube[1:] != cube[:-1]), True]
    through = incl[np.flatnonzero(last_of_cycle)][np.cumsum(np.r_[0, last_of_cycle[:-1]])]
    served_all = np.zeros(n, bool)
    served_all[idx] = key >= through
    return opener, served_all


def _link_messages(result, fx):
    """Per message (in the engine's order: by link, then program order): its link, packets,
    send, recv and bytes (int64); and the message index of every send (-1: not a send)."""
    msgs = result.engine.messages
    n = len(fx.start)
    P = int(result.hw.link.packet_bytes)
    nb = np.ascontiguousarray(msgs["nbytes"], np.int64)
    send = np.asarray(msgs["send"], np.int64)
    msg_of_send = np.full(n, -1, np.int64)
    msg_of_send[send] = np.arange(len(msgs))
    return (np.asarray(msgs["link"], np.int64), (nb + P - 1) // P, send,
            np.asarray(msgs["recv"], np.int64), nb, msg_of_send)


#: the most packets the credit walk simulates for one send (an int64 each); past them
#: :func:`_post_bound` names the recv (docs/reports.md). Also the most the credit steps' slacks
#: simulate in all for one path.
WALK_PACKETS = 1 << 24


def _post_bound(c, T, r, nb, m, P, bw, hop, Q, end, recvs) -> int:
    """The recv named for send c (message ``m`` of its link's messages ``T``, ``r``, ``nb``;
    ``recvs`` their recv commands) where the walk is not made: the latest post, after the send
    began and at least a hop before it ended, of the messages within ``Q`` packets before the
    send's last, that could have held one of its message's packets (posted after that message's
    first packet could land: its send's start, the packet's serialisation and a hop); -1 when
    none could (then exactly none did)."""
    latest, best, best_r = int(end[c]) - hop, -1, int(T[m])
    back = 0
    j = m
    while j >= 0 and (j == m or back < Q):
        first_lands = int(T[j]) + -(-min(int(nb[j]), P) // bw) + hop
        if best_r < int(r[j]) <= latest and int(r[j]) > first_lands:
            best, best_r = int(recvs[j]), int(r[j])
        back += -(-int(nb[j]) // P)
        j -= 1
    return best


def critical_path(result) -> CriticalPath:
    """The critical path of ``result`` (see the module docstring); kept on the result once made."""
    check_result(result, "critical_path")
    cached = kept_report(result, "_kb_critical_path")
    if cached is not None:
        return cached
    fx = command_facts(result)
    lines = line_groups(result)
    n = len(fx.start)
    cycles = int(result.cycles)
    if n == 0:
        return CriticalPath(result, np.zeros(0, _STEP_DTYPE), cycles, lines)
    start, end, prev, prods, opcode = fx.start, fx.end, fx.prev, fx.producers, fx.opcode
    hop = int(result.hw.link.hop_latency_cycles)
    Q = int(result.hw.link.rx_queue_packets)
    opener, served_all = _channel_openers(result, fx)
    m_link, m_pk, m_send, m_recv, m_nbytes, msg_of_send = _link_messages(result, fx)
    peer = fx.peer
    is_dma = (opcode == Opcode.LOAD) | (opcode == Opcode.STORE)
    arb, credit = fx.arbitration, fx.credit
    SEND, RECV = int(Opcode.SEND), int(Opcode.RECV)

    def start_rule(c):
        """(input command or -1, via, slack) of command c's start."""
        t = int(start[c])
        p = int(prev[c])
        cands = []
        if p >= 0:
            cands.append((int(end[p]), 0, p, _V_UNIT))
        for q in prods[c].tolist():
            if q >= 0:
                cands.append((int(end[q]), 1, q, _V_OPERAND))
        if not cands:
            return -1, _V_START, t
        cands.sort(key=lambda x: (-x[0], x[1]))
        if cands[0][0] != t:  # only at cycle 0: no input held it
            return -1, _V_START, t
        best, best_via = cands[0][2], cands[0][3]
        # the next-latest *other* command: one command can be several inputs (the command before
        # on the unit that also made an operand, ``d + d``), which is no runner-up
        runner = next((x[0] for x in cands[1:] if x[2] != best), 0)
        return best, best_via, t - max(runner, 0)

    from .._core import _link
    link_lo = np.r_[0, np.flatnonzero(m_link[1:] != m_link[:-1]) + 1]  # each link's first message
    P, bw = int(result.hw.link.packet_bytes), int(result.hw.link.bytes_per_cycle)
    walked = {}  # (link's first message, walk start) -> (messages simulated, packets' starts)
    links = {}  # link's first message -> its messages' arrays (credit_holder)

    def link_of(m):
        g = int(np.searchsorted(link_lo, m, side="right")) - 1
        return int(link_lo[g]), int(link_lo[g + 1]) if g + 1 < len(link_lo) else len(m_link)

    budget = [WALK_PACKETS]  # packets the slacks' runs of the recurrence may take in all

    def credit_holder(c):
        """(the recv whose post held send c's credits, the step's slack); (-1, 0) for none: the
        send's start, the wire and the link's own credit round trip set its end. The recv: the
        link's recurrence walked back from the send's last packet (_link.post_holder), run from
        the latest message from which it can start afresh (_link.restart_points); past
        WALK_PACKETS packets, :func:`_post_bound`. The slack: the recurrence run again with
        that recv posted at its next-latest input and the link's later recvs following it, the
        send's end against that run's (past WALK_PACKETS packets in all, the send's credit
        stall)."""
        m = int(msg_of_send[c])
        if m < 0:
            return -1, 0
        lo, hi = link_of(m)
        arrays = links.get(lo)
        if arrays is None:  # (once per link: its messages' arrays and where the walk may start)
            sends = m_send[lo:hi]
            T = np.ascontiguousarray(start[sends], np.int64)
            r = np.ascontiguousarray(start[m_recv[lo:hi]], np.int64)
            first = np.r_[0, np.cumsum(m_pk[lo:hi])].astype(np.int64)
            ok = np.empty(hi - lo, np.uint8)
            _link.restart_points(T, r, np.ascontiguousarray(end[sends], np.int64), first, hop, Q, ok)
            # each recv's inputs besides its RX unit's order (its after= tensor): when ready
            pr = prods[m_recv[lo:hi]]
            other = np.where(pr >= 0, end[np.maximum(pr, 0)], 0).max(axis=1, initial=0).astype(np.int64)
            arrays = links[lo] = (T, r, m_nbytes[lo:hi], first, np.flatnonzero(ok), other)
        T, r, nb, first, restarts, other = arrays
        recvs = m_recv[lo:hi]
        mm = m - lo
        j0 = int(restarts[np.searchsorted(restarts, mm, side="right") - 1])
        if int(first[mm + 1] - first[j0]) > WALK_PACKETS:
            return _post_bound(c, T, r, nb, mm, P, bw, hop, Q, end, recvs), int(credit[c])
        got = walked.get((lo, j0))
        if got is None or got[0] < mm:  # (once per walk start: later messages' steps reuse it)
            s = np.empty(int(first[mm + 1] - first[j0]), np.int64)
            _link.packet_starts(T[j0:mm + 1], r[j0:mm + 1], nb[j0:mm + 1], P, bw, hop, Q, s)
            memo = np.full(len(s), -3, np.int64)  # (each packet's answer, as walks find it)
            if got is not None:  # (the packets simulated before are the same: their answers too)
                memo[:len(got[3])] = got[3]
            got = walked[(lo, j0)] = (mm, s, first[j0:] - first[j0], memo)
        _, s, rel, memo = got
        e_last, k = _link.post_holder(s, T[j0:mm + 1], r[j0:mm + 1], nb[j0:mm + 1], rel[:mm - j0 + 2],
                                      mm - j0, P, bw, hop, Q, memo)
        if e_last != int(end[c]) or k < 0:  # (a mismatch cannot be: then no holder is named)
            return -1, 0
        # The step's slack: what the send's end gains with that recv posted earlier (a review:
        # its whole credit stall was given, most of it the link's own round trip)
        n_pk = int(rel[mm - j0 + 1])
        if budget[0] < n_pk:  # (past the budget: the stall, an upper bound; docs/reports.md)
            return int(recvs[j0 + k]), int(credit[c])
        budget[0] -= n_pk
        # The held recv posted when its next-latest input was ready (the RX unit's command
        # before it, or its after= tensor); the recvs after it, each posted once the one before
        # has ended (RX unit order) or its own after= is ready, move with it (a review: kept at
        # their old posts, they capped the gain: 108 given where the launch gained 806).
        held = int(recvs[j0 + k])
        r2 = np.array(r[j0:mm + 1])
        r2[k] = int(start[held]) - start_rule(held)[2]
        s2 = np.empty(n_pk, np.int64)
        _link.packet_starts(T[j0:mm + 1], r2, nb[j0:mm + 1], P, bw, hop, Q, s2,
                            np.ascontiguousarray(other[j0:mm + 1]), k)
        return held, int(s[n_pk - 1] - s2[n_pk - 1])

    steps = []
    c = int(np.argmax(end))  # the first command to end at the last cycle
    at_end = True
    guard = 4 * n + 8
    while guard:
        guard -= 1
        if at_end:
            op = int(opcode[c])
            if is_dma[c] and arb[c] > 0 and opener[c] >= 0 and served_all[c]:
                d = int(opener[c])
                if start[d] < start[c]:
                    steps.append([c, int(start[d]), int(end[c]), _CHANNEL, -1, int(arb[c]), d])
                    c, at_end = d, False
                else:  # the busy period opened in its own request cycle: on to its own start
                    steps.append([c, int(start[c]), int(end[c]), _CHANNEL, -1, int(arb[c]),
                                  d if d != c else -1])
                    at_end = False
                continue
            if op == SEND and credit[c] > 0:
                r, slack = credit_holder(c)
                # (a post before the send started, an earlier message's recv, held the sends
                # before it on the unit, whose end it started at: their credit step names it. As
                # its own, the step covered cycles another send ran: a review)
                if r >= 0 and start[r] >= start[c]:
                    steps.append([c, int(start[r]), int(end[c]), _CREDIT, -1, slack, r])
                    c, at_end = r, False
                    continue
            if op == RECV and end[c] > start[c] and peer[c] >= 0 and end[peer[c]] + hop == end[c]:
                s = int(peer[c])
                steps.append([c, int(end[s]), int(end[c]), _DATA, _V_DATA, int(end[s]) + hop - int(start[c]), s])
                c = s
                continue
            steps.append([c, int(start[c]), int(end[c]), _BUSY, -1, 0, -1])
            at_end = False
            continue
        # at c's start, where the step just recorded begins: its input gives that step's via
        # (and a busy step's slack)
        q, via, slack = start_rule(c)
        steps[-1][4] = via
        if steps[-1][3] == _BUSY:
            steps[-1][5] = slack
        if q < 0:
            break
        c, at_end = q, True
    steps.reverse()
    arr = np.array([tuple(s) for s in steps], _STEP_DTYPE) if steps else np.zeros(0, _STEP_DTYPE)
    return keep_report(result, "_kb_critical_path", CriticalPath(result, arr, cycles, lines))


# -- Perfetto ---------------------------------------------------------------------------------
def perfetto_events(result, path: CriticalPath, pid: int, window=None) -> list:
    """The path as a track of a Chrome trace: process ``pid`` named "critical path", one thread,
    one slice per step (named by its command's unit, label and line). ``window`` =
    (first_cycle, last_cycle or None) keeps the steps overlapping it."""
    ghz = float(result.hw.clock_ghz)
    # (a thread id of its own: the units' run 1 .. n_pes * N_UNITS, perfetto._tid, and viewers
    # that key threads by tid alone would merge the path into PE (0, 0)'s GEMM)
    tid = int(result.hw.n_pes) * N_UNITS + 1
    events = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": "critical path"}},
        {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": -1}},
        {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": "critical path"}},
    ]
    lo, hi = (0, None) if window is None else (int(window[0] or 0), window[1])
    from .perfetto import check_ns
    for s in path.step_dicts():
        if s["end_cycle"] < lo or (hi is not None and s["start_cycle"] > int(hi)):
            continue
        check_ns(float(s["end_cycle"]), ghz)
        t0 = round(s["start_cycle"] / ghz)
        t1 = round(s["end_cycle"] / ghz)
        kind = "" if s["kind"] == "busy" else f" [{s['kind']}]"
        events.append({
            "name": f"{s['unit']} {s['label']}{kind} ({os.path.basename(s['source'])}, {s['pe_name']})",
            "cat": "critical_path", "ph": "X", "ts": t0 / 1000, "dur": (t1 - t0) / 1000,
            "pid": pid, "tid": tid, "cname": "terrible",
            "args": {"cmd": s["cmd"], "pe": s["pe_name"], "source": s["source"], "kind": s["kind"],
                     "via": s["via"], "slack_cycles": s["slack"], "start_cycle": s["start_cycle"],
                     "end_cycle": s["end_cycle"], "cycles": s["cycles"],
                     **({"other_cmd": s["other_cmd"]} if s["other_cmd"] is not None else {})},
        })
    return events

