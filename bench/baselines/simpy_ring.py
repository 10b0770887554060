"""The kernbench machine model written with SimPy, the way a user would otherwise write it.

This is the baseline the engine's speed is compared against (issue 6, "The simulator itself"). It
follows docs/hardware-model.md formula by formula and must give the same cycles as the engine on
the same ``Program``; tests/test_simpy_baseline.py checks that command by command.

It is a genuine discrete-event model, packet by packet and burst by burst:

* every unit of every PE (GEMM, VECTOR, DMA, TX_<port>, RX_<port>) is a SimPy process that runs
  its commands in program order; a command starts when its unit is free and every operand tensor
  is ready (a ``simpy.Event`` per tensor, succeeded when its producer ends);
* every link direction has a ``simpy.Container`` of Q credits and a ``simpy.Store`` receive queue
  of Q packets. A send takes one credit per packet, holds the wire for ``ceil(bytes/b)`` cycles,
  and the packet lands in the receiver's queue a hop latency later. A recv takes its packets off
  the queue as they arrive (``d_i = max(a_i, r)``) and each drained packet's credit reaches the
  sender a hop latency later (``c_i = d_i + h``). So ``s_i = max(e_{i-1}, T, c_{i-Q})`` falls out
  of the processes rather than being computed;
* each cube's memory channel is a process that, whenever it is free and PEs have bursts pending,
  grants one burst to the next requester in round-robin order. Like the engine, it arbitrates after
  every other event of the cycle (a SimPy event of lower priority than NORMAL), so every request
  of that cycle competes;
* links come in two styles (``links=``): ``"resources"`` (default) is the idiomatic SimPy above,
  a Container of credits and a Store queue; ``"lean"`` is what a user tuning the model would
  write: the credit count and the queue as a plain int and deque, with a bare event to wake the
  one process waiting on each. Both give the same cycles; "lean" schedules about half the events
  and is the stronger baseline for the speed ratio;
* GEMM (fold formula), vector and reduction commands are one timeout each (the formulas of
  docs/hardware-model.md; one timeout per dot rather than per fold, which is what a user would
  write and favours SimPy in the speed comparison).

SRAM liveness is not modelled (it does not affect timing).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import Event

from kernbench.common.pe_commands import N_PORTS, OPPOSITE, Opcode, Program, VEC_OP_NAMES
from kernbench.hw import HardwareConfig

__all__ = ["SimPyMachine", "SimPyResult", "simulate_simpy"]

#: Below SimPy's NORMAL (1): processed after every other event of the same cycle.
_END_OF_CYCLE = 2


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class SimPyResult:
    cycles: int  #: cycle the last command ended
    cmd_start: np.ndarray  #: (n_commands,) start cycle per global command
    cmd_end: np.ndarray  #: (n_commands,) end cycle per global command
    sim_events: int  #: events SimPy scheduled (its heap pushes)
    packets: int  #: link packets moved
    bursts: int  #: DMA bursts granted


class _EndOfCycle(Event):
    """An event that fires at the current cycle after every NORMAL event of that cycle."""

    def __init__(self, env: simpy.Environment):
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, _END_OF_CYCLE)


class _Link:
    """One direction of an SFR link: the sender's credits and the receiver's queue."""

    __slots__ = ("credits", "queue")

    def __init__(self, env: simpy.Environment, q: int):
        self.credits = simpy.Container(env, capacity=q, init=q)
        self.queue = simpy.Store(env, capacity=q)


class _LeanLink:
    """The same link with the credit count and the receive queue as plain Python state; each
    side's single waiting process is woken by a bare event."""

    __slots__ = ("credits", "credit_wait", "queue", "data_wait")

    def __init__(self, q: int):
        self.credits = q
        self.credit_wait: Event | None = None  # the sender, waiting for a credit
        self.queue: deque = deque()
        self.data_wait: Event | None = None  # the receiver, waiting for a packet

    def land(self, ev: Event) -> None:  # a packet lands in the receive queue
        self.queue.append(ev.value)
        if self.data_wait is not None:
            w, self.data_wait = self.data_wait, None
            w.succeed()

    def credit_back(self, ev: Event) -> None:  # a credit reaches the sender
        self.credits += 1
        if self.credit_wait is not None:
            w, self.credit_wait = self.credit_wait, None
            w.succeed()


class _Channel:
    """One cube's memory channel, shared round robin by its PEs' DMA engines."""

    def __init__(self, env: simpy.Environment, ppc: int):
        self.pending = [None] * ppc  # per local PE: [bursts_left, bytes_left, done_event] or None
        self.n_requesting = 0
        self.last = ppc - 1  # PE 0 is served first
        self.wake: Event | None = None


class SimPyMachine:
    """Build with (hw, neighbours, program), then ``run()`` -> SimPyResult.

    ``links``: "resources" (Container credits + Store queue) or "lean" (see the module doc)."""

    def __init__(self, hw: HardwareConfig, neighbours, program: Program, links: str = "resources"):
        if links not in ("resources", "lean"):
            raise ValueError(f"links must be 'resources' or 'lean', got {links!r}")
        self.lean = links == "lean"
        self.hw = hw
        self.nbr = np.asarray(neighbours)
        self.program = program
        self.env = simpy.Environment()
        env = self.env
        c = program.commands
        n = len(c)
        self.cmd_start = np.full(n, -1, np.int64)
        self.cmd_end = np.full(n, -1, np.int64)
        self.packets = 0
        self.bursts = 0
        # plain Python lists: a user's model would not index numpy scalars in its hot loop
        self._op = c["opcode"].tolist()
        self._unit = c["unit"].tolist()
        self._sub = c["sub"].tolist()
        self._port = c["port"].tolist()
        self._src = list(zip(c["src0"].tolist(), c["src1"].tolist(), c["src2"].tolist()))
        self._dst = c["dst"].tolist()
        self._m, self._n, self._k = c["m"].tolist(), c["n"].tolist(), c["k"].tolist()
        self._nbytes, self._esize = c["nbytes"].tolist(), c["esize"].tolist()
        q = hw.link.rx_queue_packets
        self.links = {}
        for g in range(hw.n_pes):
            for p in range(N_PORTS):
                if self.nbr[g, p] >= 0:
                    self.links[(g, p)] = _LeanLink(q) if self.lean else _Link(env, q)
        self.channels = [_Channel(env, hw.pes_per_cube) for _ in range(hw.n_cubes)]
        self.vec_cost = [getattr(hw.vector.op_cycles, name) for name in VEC_OP_NAMES]
        self.log2_lanes = max(0, (hw.vector.lanes - 1).bit_length())
        cmd_off = program.cmd_offsets
        for g in range(hw.n_pes):
            lo, hi = int(cmd_off[g]), int(cmd_off[g + 1])
            if lo == hi:
                continue
            n_t = int(program.tensor_offsets[g + 1] - program.tensor_offsets[g])
            ready = [env.event() for _ in range(n_t)]  # one per tensor of the PE
            queues: dict[int, list[int]] = {}
            for i in range(lo, hi):
                queues.setdefault(self._unit[i], []).append(i)
            for _u, q_cmds in sorted(queues.items()):
                env.process(self._unit_proc(g, q_cmds, ready))
        for cube in range(hw.n_cubes):
            env.process(self._channel_proc(cube))

    # -- timing formulas (docs/hardware-model.md) ---------------------------------------------
    def _dot_cycles(self, i: int) -> int:
        g = self.hw.gemm
        folds = _cdiv(self._m[i], g.rows) * _cdiv(self._n[i], g.cols)
        k = self._k[i]
        fold = max(k + g.rows + g.cols - 2, _cdiv((g.rows + g.cols) * k * self._esize[i],
                                                   self.hw.sram.bytes_per_cycle))
        return folds * fold

    def _vec_cycles(self, i: int) -> int:
        v = self.hw.vector
        return _cdiv(self._n[i], v.lanes) * self.vec_cost[self._sub[i]] + v.pipeline_latency

    def _reduce_cycles(self, i: int) -> int:
        v = self.hw.vector
        outer, r, inner, cost = self._m[i], self._n[i], self._k[i], self.vec_cost[self._sub[i]]
        if inner == 1:
            return outer * (_cdiv(r, v.lanes) * cost + self.log2_lanes) + v.pipeline_latency
        return outer * (r - 1) * _cdiv(inner, v.lanes) * cost + v.pipeline_latency

    # -- units ---------------------------------------------------------------------------------
    def _unit_proc(self, g: int, cmds: list[int], ready: list[Event]):
        env = self.env
        for i in cmds:
            waits = [ready[t] for t in self._src[i] if t >= 0 and not ready[t].triggered]
            if waits:
                yield env.all_of(waits)  # operand stall
            self.cmd_start[i] = env.now
            op = self._op[i]
            if op == Opcode.DOT:
                yield env.timeout(self._dot_cycles(i))
            elif op == Opcode.VEC:
                yield env.timeout(self._vec_cycles(i))
            elif op == Opcode.REDUCE:
                yield env.timeout(self._reduce_cycles(i))
            elif op == Opcode.SEND:
                link = self.links[(g, self._port[i])]
                send = self._send_lean if self.lean else self._send
                yield from send(link, self._nbytes[i])
            elif op == Opcode.RECV:
                p = self._port[i]
                link = self.links[(int(self.nbr[g, p]), int(OPPOSITE[p]))]
                recv = self._recv_lean if self.lean else self._recv
                yield from recv(link, self._nbytes[i])
            else:  # LOAD / STORE
                yield from self._dma(g, self._nbytes[i])
            self.cmd_end[i] = env.now
            if self._dst[i] >= 0:
                ready[self._dst[i]].succeed()

    # -- links -----------------------------------------------------------------------------------
    def _send(self, link: _Link, nbytes: int):
        env = self.env
        P, b, h = self.hw.link.packet_bytes, self.hw.link.bytes_per_cycle, self.hw.link.hop_latency_cycles
        queue = link.queue
        left = nbytes
        while left > 0:
            nb = P if left > P else left
            left -= nb
            yield link.credits.get(1)  # one receive-queue slot: waits for c_{i-Q}
            yield env.timeout(_cdiv(nb, b))  # serialisation on the wire: e_i = s_i + ser_i
            self.packets += 1
            hop = env.timeout(h, nb)  # lands in the receive queue at a_i = e_i + h
            hop.callbacks.append(lambda ev: queue.put(ev.value))

    def _recv(self, link: _Link, nbytes: int):
        env = self.env
        h = self.hw.link.hop_latency_cycles
        credits = link.credits
        for _ in range(_cdiv(nbytes, self.hw.link.packet_bytes)):
            yield link.queue.get()  # drained at d_i = max(a_i, r)
            back = env.timeout(h)  # the credit reaches the sender at c_i = d_i + h
            back.callbacks.append(lambda ev: credits.put(1))

    def _send_lean(self, link: _LeanLink, nbytes: int):
        env = self.env
        P, b, h = self.hw.link.packet_bytes, self.hw.link.bytes_per_cycle, self.hw.link.hop_latency_cycles
        left = nbytes
        while left > 0:
            nb = P if left > P else left
            left -= nb
            if link.credits == 0:  # wait for c_{i-Q}
                link.credit_wait = env.event()
                yield link.credit_wait
            link.credits -= 1
            yield env.timeout(_cdiv(nb, b))  # e_i = s_i + ser_i
            self.packets += 1
            env.timeout(h, nb).callbacks.append(link.land)  # a_i = e_i + h

    def _recv_lean(self, link: _LeanLink, nbytes: int):
        env = self.env
        h = self.hw.link.hop_latency_cycles
        for _ in range(_cdiv(nbytes, self.hw.link.packet_bytes)):
            if not link.queue:  # d_i = max(a_i, r)
                link.data_wait = env.event()
                yield link.data_wait
            link.queue.popleft()
            env.timeout(h).callbacks.append(link.credit_back)  # c_i = d_i + h

    # -- DMA -------------------------------------------------------------------------------------
    def _dma(self, g: int, nbytes: int):
        ppc = self.hw.pes_per_cube
        ch = self.channels[g // ppc]
        done = self.env.event()
        ch.pending[g % ppc] = [_cdiv(nbytes, self.hw.dma.burst_bytes), nbytes, done]
        ch.n_requesting += 1
        if ch.wake is not None and not ch.wake.triggered:
            ch.wake.succeed()
        yield done

    def _channel_proc(self, cube: int):
        env = self.env
        ch = self.channels[cube]
        ppc = self.hw.pes_per_cube
        B, W, lat = self.hw.dma.burst_bytes, self.hw.dma.channel_bytes_per_cycle, self.hw.dma.latency_cycles
        while True:
            if ch.n_requesting == 0:
                ch.wake = env.event()
                yield ch.wake
            yield _EndOfCycle(env)  # arbitrate once every request of this cycle is in
            for k in range(1, ppc + 1):
                local = (ch.last + k) % ppc
                if ch.pending[local] is not None:
                    break
            ch.last = local
            req = ch.pending[local]
            nb = B if req[1] > B else req[1]
            req[0] -= 1
            req[1] -= nb
            self.bursts += 1
            dur = _cdiv(nb, W)
            if req[0] == 0:  # last burst: the command ends a memory latency after it leaves
                ch.pending[local] = None
                ch.n_requesting -= 1
                land = env.timeout(dur + lat)
                land.callbacks.append(lambda ev, done=req[2]: done.succeed())
            yield env.timeout(dur)  # the channel is held for the burst

    # -- run -------------------------------------------------------------------------------------
    def run(self) -> SimPyResult:
        self.env.run()
        if (self.cmd_end < 0).any():
            stuck = int(np.flatnonzero(self.cmd_end < 0)[0])
            raise RuntimeError(f"SimPy model stopped with command {stuck} unfinished (deadlock)")
        return SimPyResult(
            cycles=int(self.cmd_end.max()) if len(self.cmd_end) else 0,
            cmd_start=self.cmd_start,
            cmd_end=self.cmd_end,
            sim_events=next(self.env._eid),  # SimPy numbers every event it schedules
            packets=self.packets,
            bursts=self.bursts,
        )


def simulate_simpy(hw: HardwareConfig, neighbours, program: Program,
                   links: str = "resources") -> SimPyResult:
    """Run ``program`` on the SimPy model of ``hw`` wired by ``neighbours`` (``links``: the
    link style, "resources" or "lean")."""
    return SimPyMachine(hw, neighbours, program, links).run()
