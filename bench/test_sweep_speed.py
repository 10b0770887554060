"""Speed of a timing-parameter sweep (``kernbench.sweep``) over the flagship launch: the diag
``single_user_prefill`` panel at Llama-70B shapes, 32K context, preset ``mesh8`` (8 ranks, PE 0
of each cube, 2.4M commands).

200 points of timing keys only, so ONE trace group (traced once, timed 200 times):
``link.bytes_per_cycle`` 4..64 (5) x ``link.rx_queue_packets`` 2..32 (5) x
``link.hop_latency_cycles`` 25..3200 (8). Target (sweeps issue, item 7): < 60 s wall on this
2-core machine when it is otherwise idle.

Two ways: ``serial`` (``workers=1``: one trace and every timing in this process) and ``dask2``
(a LocalCluster of 2 worker processes, one thread each, made here and passed as ``client=`` so
the workers' CPU can be read: its start-up is recorded apart, ``cluster_start_s``).
``extra_info``: points, wall s, CPU s of this process, the Dask workers' CPU s (summed), points
per second (wall), traces. Run with ``--benchmark-timer=time.process_time``: the benchmark's own
figure is then this process's CPU, which for ``dask2`` leaves out the workers (see
``workers_cpu_s``). Nothing asserts a time: every row must be error-free and the launch traced
once. ``--quick``: 4K context, 2 x 2 x 2 points.
"""
from __future__ import annotations

import time

import pytest

import kernbench
from kernbench.sweeps import panel_launch


def _axes(quick: bool) -> tuple[int, dict]:
    if quick:
        return 4096, {"link.bytes_per_cycle": [16, 32], "link.rx_queue_packets": [4, 32],
                      "link.hop_latency_cycles": [50, 400]}
    return 32768, {"link.bytes_per_cycle": [4, 8, 16, 32, 64],
                   "link.rx_queue_packets": [2, 4, 8, 16, 32],
                   "link.hop_latency_cycles": [25, 50, 100, 200, 400, 800, 1600, 3200]}


def _workers_cpu(client) -> float:
    return sum(client.run(time.process_time).values())


@pytest.mark.parametrize("how", ["serial", "dask2"])
def test_sweep_200_timing_points_prefill_mesh8(benchmark, quick, how):
    context, hardware = _axes(quick)
    n_points = 1
    for v in hardware.values():
        n_points *= len(v)
    benchmark.group = "sweep"
    builder = panel_launch("single_user_prefill", shape="llama70b", context=context)
    client = cluster = None
    cluster_start = 0.0
    if how == "dask2":
        distributed = pytest.importorskip("distributed")
        import logging

        t0 = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
        client = distributed.Client(cluster)
        cluster_start = time.perf_counter() - t0
    kw = {"workers": 1} if client is None else {"client": client}
    figures = {}

    def run():
        w0 = _workers_cpu(client) if client is not None else 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        res = kernbench.sweep(builder, hw="mesh8", hardware=hardware, cache=False, progress=False, **kw)
        figures["wall"] = time.perf_counter() - t0
        figures["cpu"] = time.process_time() - c0
        figures["workers_cpu"] = (_workers_cpu(client) - w0) if client is not None else 0.0
        return res

    try:
        res = benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        if client is not None:
            client.close()
            cluster.close()

    assert len(res.rows) == n_points
    assert [r["error"] for r in res.rows] == [None] * n_points
    assert res.stats["trace_groups"] == 1 and res.stats["traces"] == 1

    wall = figures["wall"]
    benchmark.extra_info.update({
        "how": how,
        "context": context,
        "points": n_points,
        "traces": res.stats["traces"],
        "workers": res.stats["workers"],
        "commands": res.rows[0]["commands"],
        "wall_s": round(wall, 3),
        "cpu_s": round(figures["cpu"], 3),
        "workers_cpu_s": round(figures["workers_cpu"], 3),
        "total_cpu_s": round(figures["cpu"] + figures["workers_cpu"], 3),
        "cluster_start_s": round(cluster_start, 3),
        "points_per_s": round(n_points / wall, 3),
        "cycles_min": min(r["cycles"] for r in res.rows),
        "cycles_max": max(r["cycles"] for r in res.rows),
    })
