"""Large per-command and per-tensor arrays on small pages (kernbench/_core/pages.py): the same
values as numpy's arrays, only placed differently; a launch whose every array goes there gives
the same results to the bit."""
import mmap
import os
import pickle

import numpy as np
import pytest

from kernbench._core import pages
from kernbench._core.api import MESSAGE_DTYPE
from kernbench.common.pe_commands import COMMAND_DTYPE
from kernbench.hw import load_hw
from test_steady_state import _trace_panel, assert_same


def _mapped(a: np.ndarray) -> bool:
    base = a
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(getattr(base, "obj", base), mmap.mmap)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, COMMAND_DTYPE, MESSAGE_DTYPE])
def test_from_fresh_bytes_up_on_a_mapping_below_from_numpy(dtype):
    dt = np.dtype(dtype)
    n = -(-pages.FRESH_BYTES // dt.itemsize)  # the fewest items of at least FRESH_BYTES
    for make in (pages.empty, pages.zeros):
        big, small = make(n, dt), make(n - 1, dt)
        assert big.dtype == dt and big.shape == (n,) and big.flags.writeable and big.flags.c_contiguous
        assert _mapped(big) and not _mapped(small) and small.flags.owndata
        assert not big.view(np.uint8).any()  # a fresh mapping reads as zeros
    assert not pages.zeros(3, dt).view(np.uint8).any()


def test_a_mapping_holds_what_is_written_and_pickles_as_numpy():
    n = pages.FRESH_BYTES // 8
    a = pages.empty(n, np.int64)
    a[[0, n // 2, -1]] = (-1, 5, 7)
    assert (a[0], a[n // 2], a[-1], a[1]) == (-1, 5, 7, 0)
    b = pickle.loads(pickle.dumps(a[n // 2 - 1:n // 2 + 2]))
    assert b.tolist() == [0, 5, 0] and b.flags.owndata


def test_trimmed_keeps_the_first_items_in_place():
    own = np.arange(10, dtype=np.int64)
    t = pages.trimmed(own, 4)
    assert t is own and t.tolist() == [0, 1, 2, 3]
    m = pages.untouched(10, np.int32)
    m[:] = np.arange(10)
    t = pages.trimmed(m, 3)
    assert t.tolist() == [0, 1, 2] and np.shares_memory(t, m)


def test_concatenate_joins_as_numpy_does():
    parts = [np.arange(3), np.zeros(0, np.int64), np.array([7, -1], np.int32)]
    got = pages.concatenate(parts, np.int64)
    assert got.dtype == np.int64 and got.tolist() == np.concatenate(parts).tolist()
    assert pages.concatenate([], np.int64).shape == (0,)
    n = pages.FRESH_BYTES // 8
    big = pages.concatenate([np.ones(n // 2, np.int64), np.full(n - n // 2, 2, np.int64)], np.int64)
    assert _mapped(big) and big.sum() == n // 2 + 2 * (n - n // 2)


def _resident_bytes() -> int:
    """The process's resident bytes (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * mmap.PAGESIZE


@pytest.mark.skipif(not pages._POPULATE or not os.path.exists("/proc/self/statm"),
                    reason="MAP_POPULATE and statm are Linux's")
@pytest.mark.parametrize("make", [pages.empty, pages.zeros])
def test_an_array_filled_whole_is_mapped_at_once_a_sparse_one_as_written(make):
    """By default (the caller fills it whole) every page is resident from the start; ``sparse``
    and ``untouched``: none until written. Each reads as zeros and takes writes alike."""
    n = 2 * pages.FRESH_BYTES // 4
    r0 = _resident_bytes()
    sparse = make(n, np.int32, sparse=True)
    untouched = pages.untouched(n, np.int32)
    r1 = _resident_bytes()
    whole = make(n, np.int32)
    r2 = _resident_bytes()
    assert _mapped(whole) and _mapped(sparse)
    assert r1 - r0 < sparse.nbytes // 8 and r2 - r1 >= whole.nbytes * 0.95
    for a in (whole, sparse, untouched):
        a[::4096] = 7
        assert not a[1::4096].any() and (a[::4096] == 7).all() and int(a.sum()) == 7 * len(a[::4096])
    small = make(16, np.int32, sparse=True)  # below FRESH_BYTES: numpy's, as before
    assert not _mapped(small) and small.shape == (16,)


def test_untouched_refuses_a_negative_size():
    with pytest.raises(ValueError, match="n must be >= 0"):
        pages.untouched(-1, np.int64)
    assert pages.untouched(0, np.int64).shape == (0,)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_mapping_is_private_to_the_process():
    """A forked worker (a Dask process, multiprocessing) writing a mapped array must not
    change the parent's: numpy's memory is copied on write, and so is this (mmap's default,
    MAP_SHARED, would share it)."""
    a = pages.untouched(16, np.int64)
    pid = os.fork()
    if pid == 0:  # the child writes and leaves at once
        a[:] = 9
        os._exit(0)
    os.waitpid(pid, 0)
    assert not a.any()


@pytest.mark.parametrize("name", ["multi_user_prefill", "single_user_decode"])
def test_a_launch_on_mappings_only_equals_the_default(monkeypatch, name):
    """Every array the launch builds through pages (the store's sites and tensor size indices, the
    checks' units and queues, the message table, the engine's start and end cycles) on a
    mapping: the program and every result field the same to the bit."""
    hw = load_hw("mesh8")
    ref_traced = _trace_panel(name, hw)
    ref = ref_traced.time(hw, record_events=True).engine
    monkeypatch.setattr(pages, "FRESH_BYTES", 1)
    traced = _trace_panel(name, hw)
    got = traced.time(hw, record_events=True).engine
    assert _mapped(got.cmd_start) and _mapped(got.cmd_end)
    sizes = traced.program.sizes  # (the tensors' sizes as uint16 indices: Program.sizes)
    assert sizes is not None and _mapped(sizes[0])
    p, q = ref_traced.program, traced.program
    for f in ("tensor_bytes", "tensor_pinned", "cmd_offsets", "tensor_offsets"):
        assert getattr(p, f).tobytes() == getattr(q, f).tobytes(), f
    assert_same(ref, got)
