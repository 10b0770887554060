"""The debug build (KERNBENCH_DEBUG=1) keeps invariant counters; the release build keeps none.

CI runs the whole suite on both builds; this file checks the counters themselves on whichever
build is installed.
"""
from engine_helpers import Machine, fill

from kernbench._core import DEBUG_BUILD
from kernbench.hw import SfrInstall, load_hw


def _contended_launch(detail):
    """Two PEs of a cube load at once (the channel's next completion moves: a stale completion
    event in train detail) while a third sends to a fourth."""
    m = Machine(load_hw("default"), SfrInstall("pe"))
    m[0, 0].load(64 * 1024)
    m[1, 0].load(512)
    m[1, 0].load(64 * 1024)
    t = fill(m[2, 0], 4096)
    m[2, 0].send("E", t, 4096)
    m[3, 0].recv("W", 4096)
    return m.run(detail=detail).res


def test_invariant_counters():
    train, packet = _contended_launch("train"), _contended_launch("packet")
    if not DEBUG_BUILD:
        assert train.debug == {} and packet.debug == {}
        return
    for res in (train, packet):
        assert res.debug["time_regressions"] == 0  # the heap never pops an event in the past
        assert res.debug["max_heap"] >= 1
        assert res.debug["dma_invariant_errors"] == 0  # the train epochs (kernbench/_core/_dma.pyx)
    # PE 0 requests the channel in cycle 0: alone, its 64 KiB would end at 256 + 150 = 406, and
    # the channel's completion event is scheduled there. PE 1 requests in the same cycle: the
    # channel's next completion becomes PE 1's one burst (granted at 2, ends 4 + 150 = 154), a
    # new event is scheduled and the one at 406 goes stale.
    assert train.debug["stale_events"] >= 1
    assert packet.debug["stale_events"] == 0  # burst by burst nothing is ever cancelled
