"""Cost of the front end on the flagship launch: time and memory per command.

One launch of the diag panel ``single_user_prefill`` at Llama-70B shapes (ring attention over the
8 PEs of one cube, timing mode, default hardware): ~1.17M commands at the default 32K context.
What is measured, in ``benchmark.extra_info``:

* ``launch_s``: the launch's wall time (trace, program assembly, validation, engine), the median
  of the timed rounds; ``commands_per_s`` = commands / launch_s;
* ``retained_bytes_per_command``: memory the launch's result keeps (program, sites, engine
  arrays), per command: tracemalloc's count plus ``mapped_bytes_per_command``, the resident
  pages of the arrays it holds on mappings of their own (kernbench/_core/pages.py: from 32 MiB
  up, which tracemalloc does not see; read off ``/proc/self/smaps``, Linux); the engine's own
  record is 72 bytes per command;
* ``peak_bytes_per_command``: tracemalloc's peak during the launch over the memory before it,
  per command (what tracing and validation hold at most);
* ``max_rss_mb``: the process's peak resident set (everything before included).

The memory figures come from one extra, untimed launch under tracemalloc (which slows tracing
several times). Nothing asserts a time or a size: what is asserted is that the launch traced
exactly the kernel's commands (counted by hand below) and ran.

``--quick``: 4K context (about 1/64 of the commands).
"""
from __future__ import annotations

import gc
import math
import mmap
import os
import resource
import tracemalloc

import numpy as np

from kernbench.diag import panel_spec, run_panel
from kernbench.hw import load_hw

PANEL = "single_user_prefill"
#: commands of one online-softmax fold (kernels/_prefill.py: _scores, _probs, the P.V dot, _rescale,
#: _update_o): dot; row max, maximum, sub, exp, cast; dot; sub, exp, mul, row sum, add; mul, add
FOLD = 14


def mapped_resident_bytes(root) -> int | None:
    """Resident bytes of the mappings holding the numpy arrays reachable from ``root`` whose
    memory is an ``mmap`` (pages.untouched), from ``/proc/self/smaps``; None off Linux."""
    if not os.path.exists("/proc/self/smaps"):
        return None
    found, seen, stack = set(), set(), [root]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, (str, bytes, int, float, type(None))):
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            while isinstance(o.base, np.ndarray):
                o = o.base
            if isinstance(getattr(o.base, "obj", None), mmap.mmap):
                found.add(o.ctypes.data)
            continue
        stack.extend(gc.get_referents(o))
    total, span = 0, None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                span = any(lo <= a < hi for a in found)
            elif span and line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
    return total


def expected_commands(spec) -> int:
    """Commands attention_mesh_kv_kernel emits for ``spec``, counted from its structure.

    Per rank, K/V group and query block: load q, cast it to f32, scale it, three stat inits (6); per own K/V
    block two loads, two sends per wired direction and a fold; per ring step, source direction
    and block two recvs, two forwarding sends when the block goes on, and a fold; the output
    division, cast and store (3)."""
    n, bq, bkv = spec.n_ranks, min(spec.blocks[0], spec.S_q), min(spec.blocks[1], spec.S_kv_per_rank)
    q_blocks = math.ceil(spec.S_q / bq)
    kv_blocks = math.ceil(spec.S_kv_per_rank / bkv)
    total = 0
    for r in range(n):
        east, west = r + 1 < n, r > 0
        per_q = 6 + kv_blocks * (2 + 2 * (east + west) + FOLD) + 3
        for step in range(1, n):
            if r - step >= 0:  # from W, forwarded E
                per_q += kv_blocks * (2 + 2 * east + FOLD)
            if r + step < n:  # from E, forwarded W
                per_q += kv_blocks * (2 + 2 * west + FOLD)
        total += spec.h_kv * q_blocks * per_q
    return total


def test_frontend_flagship_launch(benchmark, quick):
    hw = load_hw("default")
    spec = panel_spec(PANEL, hw, shape="llama70b", context=4096 if quick else None)
    walls, out = [], []

    def launch():
        p = run_panel(spec, hw)
        walls.append(p.wall_seconds)
        out.append(p)
        gc.collect()

    benchmark.pedantic(launch, rounds=1 if quick else 3, iterations=1, warmup_rounds=0)
    p = out[-1]
    n = p.result.program.n_commands
    assert n == expected_commands(spec)
    assert p.passed and p.result.cycles > 0
    out.clear()
    del p
    gc.collect()

    # Memory: one more launch under tracemalloc, its result held while the figure is taken.
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        held = run_panel(spec, hw)
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    mapped = mapped_resident_bytes(held)
    retained += mapped or 0
    assert held.result.program.n_commands == n

    launch_s = sorted(walls)[len(walls) // 2]
    benchmark.extra_info.update({
        "panel": PANEL,
        "context": spec.context,
        "commands": n,
        "launch_s": launch_s,
        "commands_per_s": n / launch_s,
        "us_per_command": launch_s / n * 1e6,
        "retained_bytes_per_command": (retained - before) / n,
        "mapped_bytes_per_command": None if mapped is None else mapped / n,
        "peak_bytes_per_command": (peak - before) / n,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "simulated_cycles": held.result.cycles,
    })
    print(f"\n{PANEL} @ {spec.context}: {n} commands, launch {launch_s:.2f} s "
          f"({n / launch_s:,.0f} commands/s), retained {(retained - before) / n:.0f} B/command, "
          f"peak {(peak - before) / n:.0f} B/command")
