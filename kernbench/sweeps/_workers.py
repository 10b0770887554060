"""What the sweep's own Dask workers run as they start (imported on the workers alone: it
needs dask.distributed, an optional extra)."""
from __future__ import annotations

import signal
import threading

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["IgnoreSigint"]


class IgnoreSigint(WorkerPlugin):
    """SIGINT ignored in each worker of the sweep's own LocalCluster, a worker its nanny starts
    again (after a crash) included: a Ctrl-C in the terminal reaches the sweep's process too,
    which stops the sweep and closes the cluster; one a point's code sends its own worker
    (os.kill) killed the worker, and once every worker had been restarted the sweep waited
    forever (reviews). A worker's setup runs in its main thread, where its event loop runs;
    elsewhere no signal handler can be set, and nothing is done."""

    name = "kernbench-ignore-sigint"

    def setup(self, worker) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
