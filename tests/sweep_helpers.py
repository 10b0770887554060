"""Sweeps on a Dask LocalCluster of processes, for the tests: the worker processes must import
the kernbench this process runs, and a kernel or argument module loaded by path is one the
workers cannot import (what `kernbench sweep my_kernels.py:k` makes)."""
import importlib.util
import os
import sys

import kernbench


def module_by_path(monkeypatch, tmp_path, name: str, text: str):
    """Module ``name`` made from ``text``, written to ``tmp_path`` and loaded by path (in
    sys.modules until the test ends). The worker processes search sys.path afresh: whatever
    puts the checkout on it in this process (pytest's rootdir, a test) would make them import
    the source tree, which has no built engine under CI's non-editable install; only the
    kernbench this process runs is kept, and the test runs in ``tmp_path``."""
    mine = os.path.dirname(os.path.dirname(os.path.abspath(kernbench.__file__)))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p or os.curdir) == mine
                                      or not os.path.isdir(os.path.join(p or os.curdir, "kernbench"))])
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, mod)
    spec.loader.exec_module(mod)
    return mod
