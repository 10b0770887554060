"""Cost of the reports on a long launch: CPU time and memory per command.

Each report of one launch of the diag panel ``single_user_prefill`` at Llama-70B shapes on mesh64
(a ring over the 64 cubes, PE 0 of each working; tl.range replay, so its program is compact):
16K context, 618,496 commands (4K, 38,656, with ``--quick``). What is measured, in
``benchmark.extra_info``:

* the benchmark's time: the report made once on a fresh launch's result (the facts the profile
  and the critical path keep on a result would otherwise be reused);
* ``peak_bytes_per_command``: in a fresh process that made the launch, the largest resident set
  while the report is made (sampled every millisecond from /proc/self/statm, Linux; None
  elsewhere) over the one before it, per command;
* ``kept_bytes_per_command``: that process's resident set afterwards over the one before, per
  command (what the result keeps, and what the allocator has not given back).

``write_json`` (the CLI's ``--json``) against ``to_json`` is the streamed file against the
dict. What is asserted is that each report ran on the launch's commands and left its program
compact (the reports read the command fields, never the expanded 72-byte rows).
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import threading

import pytest

from kernbench.diag import panel_spec, run_panel
from kernbench.hw import load_hw
from kernbench.report import critical_path, profile, to_json, to_perfetto, write_json

MESH64 = load_hw("mesh64")


def _launch(quick: bool):
    spec = panel_spec("single_user_prefill", MESH64, shape="llama70b", context=4096 if quick else 16384)
    r = run_panel(spec, MESH64).result
    assert r.program.tiled is not None  # replayed: compact
    return r


def _rss() -> int | None:
    """This process's resident set in bytes (/proc/self/statm; None off Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


class _PeakRss:
    """The largest resident set seen while the block runs, sampled every millisecond on a
    thread (tracemalloc would slow the reports' Python 20-fold)."""

    def __enter__(self):
        self.bytes = _rss() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self.bytes = max(self.bytes, _rss() or 0)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, _rss() or 0)


REPORTS = {
    "profile": lambda r, path: profile(r),
    "critical_path": lambda r, path: critical_path(r).to_dict(),
    "to_perfetto": lambda r, path: to_perfetto(r, path / "t.json.gz"),
    "write_json": lambda r, path: write_json(r, path / "r.json"),
    "to_json": lambda r, path: to_json(r, path / "r.json"),
}


def _memory_in_child(name: str, quick: bool, folder: str) -> tuple:
    """(commands, resident bytes before the report, the most during it, after it, whether the
    program stayed compact), in a process of its own."""
    from pathlib import Path

    r = _launch(quick)
    gc.collect()
    before = _rss()
    with _PeakRss() as peak:
        REPORTS[name](r, Path(folder))
    gc.collect()
    return r.program.n_commands, before, peak.bytes, _rss(), r.program.tiled is not None


@pytest.mark.parametrize("name", list(REPORTS))
def test_report_cost(benchmark, quick, tmp_path, name):
    make = REPORTS[name]
    results = []

    def setup():
        results.append(_launch(quick))
        return (results[-1], tmp_path), {}

    benchmark.pedantic(make, setup=setup, rounds=1, iterations=1)
    r = results[-1]
    n = r.program.n_commands
    assert r.program.tiled is not None

    # memory: the same report in a fresh process (so no earlier launch's freed memory is
    # reused), its resident set sampled meanwhile
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        n2, before, peak, kept, compact = pool.apply(_memory_in_child, (name, quick, str(tmp_path)))
    assert n2 == n and compact
    if name in ("write_json", "to_json"):
        with open(tmp_path / "r.json") as f:
            assert f.read(64).startswith('{"format": "kernbench.launch/1", "kernel": ')
    benchmark.extra_info.update(
        report=name,
        commands=n,
        peak_bytes_per_command=None if before is None else round((peak - before) / n, 1),
        kept_bytes_per_command=None if before is None else round((kept - before) / n, 1),
    )
