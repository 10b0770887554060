"""A launch's tensor sizes as uint16 indices into their distinct sizes (Program.sizes, built by
TraceStore.tensor_sizes with _replay.index_sizes): 2 bytes a tensor instead of 8, read by the
checks and the engine as they are. The same sizes as the int64 array, the same checks and
errors, and every result the same to the bit."""
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from kernbench._core import _replay, api
from kernbench.common.pe_commands import Program
from kernbench.hw import load_hw
from kernbench.runtime.traced import TracedLaunch
from test_steady_state import DEFAULT, _loop_trace, _trace_panel, assert_same
from test_tl_range import loop_kernels


def _joined(parts):
    return np.concatenate([np.tile(np.asarray(a, np.int64), R) for a, R in parts]) if parts else \
        np.zeros(0, np.int64)


@pytest.mark.parametrize("seed", range(20))
def test_indices_name_the_sizes_joined(seed):
    """table[idx] is the parts joined (each repeated R times), equal sizes get equal indices,
    the table holds each size once, in the order first met. Sizes that share their low bits
    (multiples of large powers of two) collide in the hash: still exact."""
    rng = np.random.default_rng(seed)
    pool = np.concatenate([rng.integers(0, 1 << 20, 40), (np.arange(1, 40) << 30), [0, 1 << 40]])
    parts = [(rng.choice(pool, rng.integers(0, 50)).astype(np.int64), int(rng.integers(0, 5)))
             for _ in range(rng.integers(0, 12))]
    want = _joined(parts)
    idx = np.full(len(want) + 3, 7, np.uint16)  # (longer than needed: the rest untouched)
    table = _replay.index_sizes(parts, idx)
    assert table.dtype == np.int64
    assert np.array_equal(table[idx[:len(want)]], want)
    assert (idx[len(want):] == 7).all()
    _, first = np.unique(want, return_index=True)
    assert np.array_equal(table, want[np.sort(first)])  # each once, as first met


def test_more_distinct_sizes_than_indices_is_refused():
    n = _replay.MAX_SIZES
    assert n == 65535
    idx = np.empty(n + 1, np.uint16)
    assert len(_replay.index_sizes([(np.arange(n, dtype=np.int64), 1)], idx[:n])) == n
    assert _replay.index_sizes([(np.arange(n + 1, dtype=np.int64), 1)], idx) is None
    with pytest.raises(ValueError, match="out is shorter"):
        _replay.index_sizes([(np.arange(4, dtype=np.int64), 2)], idx[:7])


def _with_bytes(p: Program) -> Program:
    """``p`` with its sizes as an int64 array (what a Program held before sizes)."""
    idx, table = p.sizes
    return Program(p.commands, p.cmd_offsets, table[idx.astype(np.intp)], p.tensor_pinned,
                   p.tensor_offsets)


@pytest.mark.parametrize("name, causal", [("single_user_prefill", False), ("multi_user_prefill", False),
                                          ("single_user_prefill", True), ("single_user_decode", False)])
def test_a_launch_on_size_indices_equals_one_on_int64_sizes(name, causal):
    """The diag panels (tl.range tilings, jumped steady states, causal phases): the traced
    program holds its sizes as indices, and timing it gives what timing the int64 array does,
    every field to the bit, with the jumps and without."""
    hw = load_hw("mesh8")
    traced = _trace_panel(name, hw, causal=causal)
    p = traced.program
    assert p.sizes is not None and p.sizes[0].dtype == np.uint16 and p._tensor_bytes is None
    assert p.n_tensors == len(p.sizes[0]) == int(p.tensor_offsets[-1])
    plain = TracedLaunch(**{**traced.__dict__, "program": _with_bytes(p), "_prepared": {}})
    for steady in (True, False):
        got = traced.time(hw, steady=steady, record_events=True).engine
        want = plain.time(hw, steady=steady, record_events=True).engine
        assert_same(want, got)
    assert p.sizes is not None  # (timing read them as they are)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_kernels())
def test_generated_loop_kernels_on_size_indices_equal_int64_sizes(case):
    """test_tl_range's random loop bodies (pinned loads, carried values, sends, views ...): the
    launch on the size indices equals the launch on the int64 sizes, every field to the bit,
    with the jumps and without (or raises the same error)."""
    traced = _loop_trace(case)
    p = traced.program
    assert p.sizes is not None
    plain = TracedLaunch(**{**traced.__dict__, "program": _with_bytes(p), "_prepared": {}})
    for steady in (True, False):
        got = want = None
        try:
            got = traced.time(DEFAULT, steady=steady, record_events=True).engine
        except Exception as e:  # (a generated kernel may deadlock: the same error both ways)
            got = e
        try:
            want = plain.time(DEFAULT, steady=steady, record_events=True).engine
        except Exception as e:
            want = e
        if isinstance(want, Exception):
            assert type(got) is type(want) and str(got) == str(want)
        else:
            assert_same(want, got)


def test_reading_tensor_bytes_builds_them_and_drops_the_indices():
    """The int64 array is built once, from the indices, and is from then on what the Program
    holds: a check or a timing after a change to it sees the change."""
    hw = load_hw("mesh8")
    traced = _trace_panel("single_user_decode", hw)
    p = traced.program
    idx, table = p.sizes
    tb = p.tensor_bytes
    assert tb.dtype == np.int64 and np.array_equal(tb, table[idx.astype(np.intp)])
    assert p.sizes is None and p.tensor_bytes is tb and p.n_tensors == len(tb)
    tb[0] = -1
    with pytest.raises(ValueError, match=r"tensor_bytes must be >= 0 \(tensor 0\)"):
        traced.time(hw)


def test_a_program_pickles_with_its_size_indices():
    hw = load_hw("mesh8")
    traced = _trace_panel("single_user_prefill", hw)
    q = pickle.loads(pickle.dumps(traced.program))
    assert q._tensor_bytes is None
    for a, b in zip(q.sizes, traced.program.sizes):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # a pickle of a kernbench before sizes: six fields
    old = Program.__new__(Program)
    old.__setstate__(traced.program.__getstate__()[:3] + (traced.program.tensor_bytes,)
                     + traced.program.__getstate__()[4:6])
    assert old.sizes is None and np.array_equal(old.tensor_bytes, q.tensor_bytes)


def test_size_indices_are_checked_as_the_sizes_are():
    """Each check of the int64 sizes, on the table, naming the first tensor with a bad size;
    an index past the table, and dtypes other than (uint16, int64), refused."""
    hw = load_hw("mesh8")
    traced = _trace_panel("single_user_decode", hw)
    p, nbr = traced.program, traced.neighbours
    n_t = p.n_tensors
    at5 = np.zeros(n_t, np.uint16)
    at5[5] = 1

    def program(idx, table, pinned=p.tensor_pinned):
        return Program(p.commands, p.cmd_offsets, None, pinned, p.tensor_offsets, sizes=(idx, table))

    cases = [
        (at5, np.array([8, -4], np.int64), r"tensor_bytes must be >= 0 \(tensor 5\)"),
        (at5, np.array([8, (1 << 40) + 1], np.int64), r"tensor_bytes must be at most 2\*\*40 \(tensor 5\)"),
        (at5 * 2, np.array([8, 16], np.int64), r"tensor 5 indexes past the table of 2 sizes"),
        (at5.astype(np.int32), np.array([8, 16], np.int64), r"sizes must be \(uint16 indices, int64 table\)"),
        (at5, np.array([8, 16], np.int32), r"sizes must be \(uint16 indices, int64 table\)"),
    ]
    for idx, table, match in cases:
        with pytest.raises(ValueError, match=match):
            api.simulate(hw, nbr, program(idx, table))
    with pytest.raises(ValueError, match="tensor_pinned must be uint8 with one entry per tensor"):
        api.simulate(hw, nbr, program(at5, np.array([8, 16], np.int64), np.zeros(n_t + 1, np.uint8)))
    # valid indices: the launch of the same sizes as int64
    sizes = (at5, np.array([64, 4096], np.int64))
    got = api.simulate(hw, nbr, program(*sizes))
    want = api.simulate(hw, nbr, Program(p.commands, p.cmd_offsets, sizes[1][at5.astype(np.intp)],
                                         p.tensor_pinned, p.tensor_offsets))
    assert_same(want, got)


def test_too_many_distinct_sizes_keep_the_int64_sizes(monkeypatch):
    """When the store cannot index the sizes (more than 65,535 distinct ones: here, said so),
    the Program holds the int64 array, and the launch is the same."""
    hw = load_hw("mesh8")
    ref = _trace_panel("single_user_prefill", hw)
    monkeypatch.setattr(_replay, "index_sizes", lambda parts, out: None)
    traced = _trace_panel("single_user_prefill", hw)
    assert traced.program.sizes is None and traced.program._tensor_bytes.dtype == np.int64
    assert traced.program.tensor_bytes.tobytes() == ref.program.tensor_bytes.tobytes()
    assert_same(ref.time(hw, record_events=True).engine, traced.time(hw, record_events=True).engine)


# -- a review's cases (the change's adversarial review) -------------------------------------------
def test_a_bad_size_no_tensor_has_is_harmless():
    """A table entry out of range that no tensor indexes is not a tensor's size: accepted (the
    check raised IndexError looking for its tensor); one a tensor has is named by that tensor."""
    hw = load_hw("mesh8")
    traced = _trace_panel("single_user_decode", hw)
    p, nbr = traced.program, traced.neighbours
    idx = np.zeros(p.n_tensors, np.uint16)
    want = api.simulate(hw, nbr, Program(p.commands, p.cmd_offsets, None, p.tensor_pinned,
                                         p.tensor_offsets, sizes=(idx, np.array([512], np.int64))))
    for bad in (-8, (1 << 40) + 8):
        table = np.array([512, bad], np.int64)
        got = api.simulate(hw, nbr, Program(p.commands, p.cmd_offsets, None, p.tensor_pinned,
                                            p.tensor_offsets, sizes=(idx, table)))
        assert_same(want, got)


def test_sizes_are_checked_when_tensor_bytes_is_built():
    """Reading tensor_bytes checks the indices and the table as the checks do (it cast and
    wrapped them before: int64 indices of -1 read as the table's last size)."""
    p = _trace_panel("single_user_decode", load_hw("mesh8")).program
    n = p.n_tensors
    bad = [((np.full(n, -1, np.int64), np.array([64], np.int64)), "uint16 indices, int64 table"),
           ((np.zeros(n, np.uint16), np.array([64], np.int32)), "uint16 indices, int64 table"),
           ((np.zeros(n, np.uint16), np.array([64, 0, 128, 0], np.int64)[::2]), "contiguous"),
           ((np.full(n, 7, np.uint16), np.array([64], np.int64)), "tensor 0 indexes past the table of 1 sizes"),
           ({"idx": 0}, "got dict"), ((np.zeros(n, np.uint16),), "got tuple")]
    for sizes, match in bad:
        q = Program(p.commands, p.cmd_offsets, None, p.tensor_pinned, p.tensor_offsets, sizes=sizes)
        with pytest.raises(ValueError, match=match):
            _ = q.tensor_bytes
        with pytest.raises(ValueError, match=match):
            api.simulate(load_hw("mesh8"), np.full((64, 4), -1), q)
    with pytest.raises(ValueError, match="not both"):
        Program(p.commands, p.cmd_offsets, p.tensor_bytes, p.tensor_pinned, p.tensor_offsets,
                sizes=(np.zeros(n, np.uint16), np.array([64], np.int64)))
    with pytest.raises(ValueError, match="tensor_bytes must be int64, got NoneType"):
        _ = Program(p.commands, p.cmd_offsets, None, p.tensor_pinned, p.tensor_offsets).n_tensors


def test_index_sizes_refuses_a_negative_repeat():
    """A part repeated a negative number of times made the length check short and the pass wrote
    past ``out`` (a segfault): refused."""
    out = np.empty(4, np.uint16)
    with pytest.raises(ValueError, match="repeated -1 times"):
        _replay.index_sizes([(np.arange(4, dtype=np.int64), 1), (np.arange(2, dtype=np.int64), -1),
                             (np.arange(4, dtype=np.int64), 1)], out)
    with pytest.raises(ValueError, match="out is shorter"):
        _replay.index_sizes([(np.arange(3, dtype=np.int64), 1 << 62)], out)


def test_the_engine_gets_the_sizes_it_checked(monkeypatch):
    """simulate reads the sizes once: another thread building tensor_bytes (which drops sizes)
    between the checks and the engine changes nothing (the engine got neither array)."""
    hw = load_hw("mesh8")
    traced = _trace_panel("single_user_prefill", hw)
    want = traced.time(hw, record_events=True).engine
    p = traced.program
    fresh = Program(p.commands, p.cmd_offsets, None, p.tensor_pinned, p.tensor_offsets, sizes=p.sizes)
    check = api._check_neighbours

    def meanwhile(hw_, nbr):
        _ = fresh.tensor_bytes  # (another thread's read)
        return check(hw_, nbr)

    monkeypatch.setattr(api, "_check_neighbours", meanwhile)
    got = api.simulate(hw, traced.neighbours, fresh, record_events=True)
    assert fresh.sizes is None
    assert_same(want, got)


def test_a_program_without_sizes_pickles_as_before():
    """Six fields, as a kernbench before sizes wrote and reads them."""
    p = _trace_panel("single_user_decode", load_hw("mesh8")).program
    state = p.__getstate__()
    assert len(state) == 7 and state[6] is p.sizes and state[3] is None  # (the indices, kept)
    q = Program(p.commands, p.cmd_offsets, p.tensor_bytes, p.tensor_pinned, p.tensor_offsets)
    assert len(q.__getstate__()) == 6 and len(p.__getstate__()) == 6  # (p holds int64 sizes now)


def test_a_partial_reuse_reads_the_source_sizes_without_building_them():
    from kernbench.runtime.executor import _bytes_of
    p = _trace_panel("single_user_prefill", load_hw("mesh8")).program
    idx, table = p.sizes
    assert np.array_equal(_bytes_of(p, 3, 17), table[idx[3:17].astype(np.intp)])
    assert p.sizes is not None and p._tensor_bytes is None
