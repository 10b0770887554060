"""The engine's event heap pops in (time, priority, push sequence) order: ties at the same cycle and
priority come out in the order they were pushed, which makes every run deterministic.
"""
from hypothesis import given, settings
from hypothesis import strategies as st

from kernbench._core._heap import _selftest_ops, _selftest_order


def _expected(items):
    return sorted(range(len(items)), key=lambda i: (items[i][0], items[i][1], i))


def test_orders_by_time_then_priority_then_push_order():
    items = [(5, 0), (3, 2), (3, 0), (5, 0), (0, 2), (3, 0), (0, 0)]
    # time 0: prio 0 (#6) before prio 2 (#4); time 3: prio 0 #2 then #5, then prio 2 #1;
    # time 5: #0 then #3 (pushed first, popped first)
    assert _selftest_order(items) == [6, 4, 2, 5, 1, 0, 3]


def test_empty_and_single():
    assert _selftest_order([]) == []
    assert _selftest_order([(7, 1)]) == [0]


def test_grows_past_its_initial_capacity():
    # starts with room for 16 events; 5000 pushes force several reallocations
    items = [((i * 7919) % 613, i % 3) for i in range(5000)]
    assert _selftest_order(items) == _expected(items)


def test_all_ties_pop_in_push_order():
    assert _selftest_order([(42, 1)] * 300) == list(range(300))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**62), st.integers(0, 2)), max_size=300))
def test_random_pushes(items):
    assert _selftest_order(items) == _expected(items)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2)), max_size=200))
def test_random_pushes_with_many_ties(items):
    assert _selftest_order(items) == _expected(items)


def _model(ops):
    # a sorted list of (time, prio, push number): what every pop must return
    live, out, idx = [], [], 0
    for op in ops:
        if op is None:
            if live:
                live.sort()
                out.append(live.pop(0)[2])
        else:
            live.append((op[0], op[1], idx))
            idx += 1
    return out + [e[2] for e in sorted(live)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.tuples(st.integers(0, 40), st.integers(0, 2))), max_size=400))
def test_pushes_and_pops_interleaved(ops):
    # the engine pushes while it pops (an event's handler schedules the next): every pop is the
    # smallest (time, prio, push order) then in the heap, at every size the sift reaches
    assert _selftest_ops(ops) == _model(ops)


def test_interleaved_deep_heap():
    # thousands live at once (sift-down through 11+ levels), with ties
    ops = []
    for i in range(6000):
        ops.append(((i * 7919) % 97, i % 3))
        if i % 3 == 2:
            ops.append(None)
    assert _selftest_ops(ops) == _model(ops)
