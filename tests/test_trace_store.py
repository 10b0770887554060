"""The trace store turns recorded commands into the launch's arrays every FLUSH_EVERY tensors.

Where those flushes fall (inside a program, across programs, every tensor) must change nothing:
the same Program bytes, the same cycles and the same numbers as with the default interval.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attention_helpers import small_spec, with_mode
from kernbench.diag import run_panel
from kernbench.hw import load_hw
from kernbench._core import _replay
from kernbench.common.pe_commands import COMMAND_DTYPE
from kernbench.language import builder
from kernbench.language.sites import OUT_BYTES, SITE_COLUMNS

MESH8 = load_hw("mesh8")


def _launch(kind, mode):
    p = run_panel(with_mode(small_spec(kind, 3, 4, 0), mode), MESH8)
    r = p.result
    return (r.program.commands.tobytes(), r.program.cmd_offsets.tobytes(),
            r.program.tensor_bytes.tobytes(), r.engine.cmd_end.tobytes(), p.max_abs_err,
            [r.label(i) for i in range(0, r.program.n_commands, 7)])


@pytest.mark.parametrize("kind", ["prefill", "decode"])
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_flush_interval_changes_nothing(monkeypatch, kind, mode):
    reference = _launch(kind, mode)
    n_commands = len(reference[0]) // 72
    assert n_commands > 2 * 64  # several flushes at the small intervals below
    for every in (1, 2, 8, 64):
        monkeypatch.setattr(builder, "FLUSH_EVERY", every)
        monkeypatch.setattr(builder, "_FLUSH_MASK", every - 1)
        assert _launch(kind, mode) == reference, every


def test_tl_after_its_launch_is_refused():
    """A tl object kept past its launch cannot add commands to a finished trace: a clear error."""
    import kernbench
    from kernbench.common.errors import KernelError

    kept = []

    def k(*, tl):
        kept.append(tl)
        tl.zeros((4,), "f32")

    ctx = kernbench.Context("default")
    ctx.launch(k, (1, 1))
    with pytest.raises(KernelError, match="its launch has ended"):
        kept[0].zeros((4,), "f32")


def _records_by_numpy(rec, fields, starts, base):
    """The flush written field by field with numpy (what the store did before fill_records):
    (records, results' bytes, results per segment)."""
    site = rec[:, 0]
    table = np.zeros(len(fields), COMMAND_DTYPE)
    for j, name in enumerate(SITE_COLUMNS):
        table[name] = fields[:, j]
    out = table[site]
    for k, f in enumerate(("src0", "src1", "src2")):
        out[f] = rec[:, k + 1]
    out_bytes = fields[:, OUT_BYTES][site]
    makes = out_bytes >= 0
    made = np.cumsum(makes)
    lens = np.diff(list(starts) + [len(rec)])
    before = np.array([int(made[k - 1]) if k else 0 for k in starts], np.int64)
    dst = made - 1 + np.repeat(np.asarray(base, np.int64) - before, lens)
    out["dst"] = np.where(makes, dst, -1)
    per_segment = [int(makes[a:a + m].sum()) for a, m in zip(starts, lens)]
    return table, out, out_bytes[makes], per_segment


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_flush_in_c_writes_what_numpy_wrote(data):
    """fill_records (the store's flush in one C pass) against the same flush written with numpy:
    the same records byte for byte (every field from the site, the operands from the row, each
    result numbered from its segment's count on), the results' bytes in order and per segment."""
    n_sites = data.draw(st.integers(1, 6))
    fields = np.array(data.draw(st.lists(st.lists(st.integers(-1, 99), min_size=OUT_BYTES + 1,
                                                  max_size=OUT_BYTES + 1),
                                         min_size=n_sites, max_size=n_sites)), np.int64)
    n = data.draw(st.integers(1, 30))
    rec = np.array([[data.draw(st.integers(0, n_sites - 1))] + data.draw(
        st.lists(st.integers(-1, 1 << 20), min_size=3, max_size=3)) for _ in range(n)], np.int64)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=3)) if n > 1 else []))
    starts = [0] + cuts
    base = data.draw(st.lists(st.integers(0, 1000), min_size=len(starts), max_size=len(starts)))
    table, want, want_bytes, want_per = _records_by_numpy(rec, fields, starts, base)
    out = np.zeros(n, COMMAND_DTYPE)
    sites = np.zeros(n, np.int32)
    made_bytes = np.full(n, -7, np.int64)
    made = np.zeros(len(starts), np.int64)
    got = _replay.fill_records(rec, table, fields, OUT_BYTES, np.array(starts, np.int64),
                               np.array(base, np.int64), out, sites, made_bytes, made)
    assert out.tobytes() == want.tobytes()
    assert np.array_equal(sites, rec[:, 0])
    assert got == len(want_bytes) and np.array_equal(made_bytes[:got], want_bytes)
    assert made.tolist() == want_per
    bad = rec.copy()
    bad[data.draw(st.integers(0, n - 1)), 0] = n_sites  # a site outside the table
    with pytest.raises(ValueError, match="outside the table"):
        _replay.fill_records(bad, table, fields, OUT_BYTES, np.array(starts, np.int64),
                             np.array(base, np.int64), out, sites, made_bytes, made)
    with pytest.raises(ValueError, match="do not fit"):  # the first segment must start at row 0
        _replay.fill_records(rec, table, fields, OUT_BYTES, np.array(starts, np.int64) + 1,
                             np.array(base, np.int64), out, sites, made_bytes, made)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.lists(st.one_of(
    st.tuples(st.just("push"), st.lists(st.integers(-1, 2 ** 40), min_size=4, max_size=4)),
    st.tuples(st.just("rows"), st.tuples(st.integers(0, 40), st.integers(0, 40))),
    st.tuples(st.just("take"), st.none())), max_size=80))
def test_pending_rows_are_what_was_pushed(capacity, ops):
    """The store's pending rows (a C buffer that doubles when full: the builder pushes four ints
    per command with a C call) read back as a list of the pushed rows would: ``rows`` any
    range, ``take`` all of them and none left."""
    from kernbench.language.store import Pending

    p, model = Pending(capacity), []
    for op, arg in ops:
        if op == "push":
            p.push(*arg)
            model.append(arg)
        elif op == "rows":
            a, z = arg
            got = p.rows(a, z)
            assert got.dtype == np.int64 and got.shape == (len(model[a:z]), 4)
            assert got.tolist() == model[a:z]
        else:
            assert p.take().tolist() == model and p.n == 0
            model = []
        assert p.n == len(model)
