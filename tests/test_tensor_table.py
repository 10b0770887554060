"""The tracing builder's tensor table (kernbench.language.store.TensorTable): read like the
list of one entry per tensor it replaces, with a replayed loop's iterations kept as the body
and a count. Compared with that list on random appends, repeats, lookups and slices; and a
replay of 10**9 iterations is kept in the size of its body."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernbench.language import store
from kernbench.language.semantic import ReplayedPast
from kernbench.language.store import TensorTable

#: a program's steps: append one entry, or repeat a body of k new entries R times
_steps = st.lists(st.one_of(st.tuples(st.just("append")),
                            st.tuples(st.just("repeat"), st.integers(0, 5), st.integers(0, 4))),
                  max_size=30)


def _build(steps):
    table, ref, serial = TensorTable(), [], 0
    for step in steps:
        if step[0] == "append":
            entry = ("t", serial)
            table.append(entry)
            ref.append(entry)
            serial += 1
        else:
            _, k, R = step
            body = [("b", serial, j) for j in range(k)]
            serial += 1
            table.repeat(body, R)
            for _ in range(R):
                ref.extend(body)
    return table, ref


@settings(max_examples=300, deadline=None)
@given(_steps, st.sampled_from([0, 3, store.TAIL_EXTEND]), st.data())
def test_the_table_reads_as_the_list_it_replaces(steps, tail_extend, data):
    # (tail_extend 0: every replay a segment of its own; the default: these small ones on the tail)
    saved = store.TAIL_EXTEND
    store.TAIL_EXTEND = tail_extend
    try:
        table, ref = _build(steps)
    finally:
        store.TAIL_EXTEND = saved
    assert len(table) == len(ref)
    for i in range(len(ref)):
        assert table.entry(i) is ref[i] and table[i] is ref[i]
    if ref:
        assert table[-1] is ref[-1]
    a = data.draw(st.integers(0, len(ref)))
    z = data.draw(st.integers(0, len(ref) + 3))
    got = table[a:z]
    assert got == ref[a:z] and all(x is y for x, y in zip(got, ref[a:z]))
    assert table.span(a, max(a, min(z, len(ref)))) == ref[a:z]
    for bad in (len(ref), len(ref) + 7, -1):
        with pytest.raises(IndexError):
            table.entry(bad)


def test_a_long_replay_is_kept_as_its_body():
    table = TensorTable()
    table.append(("q",))
    body = [("s",), ("p",), ("o",)]
    table.repeat(body, 10**9)
    table.append(("out",))
    assert len(table) == 1 + 3 * 10**9 + 1
    assert table.entry(1 + 3 * 123_456_789 + 2) is body[2]
    assert table.entry(len(table) - 1) == ("out",) and table.entry(0) == ("q",)
    # the entries held: the traced ones and the body once, not a slot per tensor
    assert sum(len(entries) for entries, _ in table.segs) + len(table.tail) == 1 + 3 + 1
    assert table[2:8] == [body[1], body[2], body[0], body[1], body[2], body[0]]


def test_a_short_replay_goes_on_the_tail():
    # a few entries in all: no segment (a plain loop of many short tl.range loops would leave
    # one each, and every lookup before the last would go to bisection)
    table = TensorTable()
    table.append(("a",))
    table.repeat([("b",), ("c",)], store.TAIL_EXTEND // 2)
    assert table.segs == [] and len(table.tail) == 1 + store.TAIL_EXTEND
    table.repeat([("d",)], store.TAIL_EXTEND + 1)
    assert len(table.segs) == 2 and table.tail0 == len(table)


def test_an_empty_or_zero_repeat_changes_nothing():
    table = TensorTable()
    table.append(("a",))
    table.repeat([], 5)
    table.repeat([("x",)], 0)
    assert len(table) == 1 and table.segs == [] and table.tail == [("a",)]


#: shared entries, as PEBuilder._entry makes them: one tuple per (shape, dtype, n)
_POOL = [((2, 3), "f32", 6), ((4,), "f16", 4), ((1, 8), "bf16", 8), ((5, 5), "int32", 25)]


def _disown_each(entries: list, a, z, loop, keep):
    # the definition, tensor by tensor, on the table read as a list: a tensor of a .. z but those
    # in keep gets its entry with the shape a ReplayedPast; one marked already keeps its mark
    made = {}
    for i in range(a, z):
        e = entries[i]
        if i in keep or type(e[0]) is ReplayedPast:
            continue
        new = made.get(id(e))
        if new is None:
            new = made[id(e)] = (ReplayedPast(e[0], loop),) + tuple(e[1:])
        entries[i] = new


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("append"), st.integers(0, 3)),
                          st.tuples(st.just("repeat"), st.lists(st.integers(0, 3), max_size=4),
                                    st.integers(0, 4))), max_size=30),
       st.sampled_from([0, 3, store.TAIL_EXTEND]), st.data())
def test_disown_walks_segments_as_the_definition_walks_tensors(steps, tail_extend, data):
    # tl.range replay marks the tensors of the two iterations that proved a loop (A and B) as
    # moved past; an outer loop's A and B hold its inner loops' tensors (tens of thousands in
    # a prefill's K/V group loop), which disown walks segment by segment, marking an inner
    # loop's replayed iterations kept as a repeated body as they are read (a breaker: a copy of
    # a handle naming one was refused when the inner loop replayed up to 4,096 tensors, which
    # go on the tail, and accepted past that). Each call's result, read whole, one by one and
    # in slices, is the definition's, entry for entry, ReplayedPast loops and shared tuples
    # alike, and nested calls (an inner loop's, then the outer one's) too.
    saved = store.TAIL_EXTEND
    store.TAIL_EXTEND = tail_extend
    try:
        table = TensorTable()
        for step in steps:
            if step[0] == "append":
                table.append(_POOL[step[1]])
            else:
                table.repeat([_POOL[x] for x in step[1]], step[2])
    finally:
        store.TAIL_EXTEND = saved
    n = len(table)
    for call in range(data.draw(st.integers(1, 3))):
        a = data.draw(st.integers(0, n))
        z = data.draw(st.integers(a, n))
        keep = set(data.draw(st.lists(st.integers(max(a - 2, 0), z + 2), max_size=4)))
        loop = ("k.py", call)
        want = table[0:n]
        _disown_each(want, a, z, loop, keep)
        table.disown(a, z, loop, keep)
        got = table[0:n]
        assert got == want
        assert all(table.entry(i) is x for i, x in enumerate(got))
        lo = data.draw(st.integers(0, n))
        assert all(x is y for x, y in zip(table[lo:n], got[lo:]))
        assert [type(e[0]) for e in got] == [type(e[0]) for e in want]
        assert [getattr(e[0], "loop", None) for e in got] == [getattr(e[0], "loop", None) for e in want]
        # the tensors alike share one entry, as before
        pairs = {}
        for e, f in zip(want, got):
            assert pairs.setdefault(id(e), f) is f
