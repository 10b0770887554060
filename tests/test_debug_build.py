"""The debug build (KERNBENCH_DEBUG=1) keeps statistics and stops with EngineInvariantError on a
broken invariant; the release build keeps none.

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


def test_a_broken_invariant_raises_not_counts(monkeypatch):
    # The debug build's loop stops with ST_INVARIANT when an invariant breaks (an event popped
    # in the past, a DMA epoch out of step); simulate() raises it once the GIL is back. The
    # status is what the real loop returns: a stand-in Sim returns it here, on either build.
    import pytest

    from kernbench import EngineInvariantError
    from kernbench._core import _engine

    class BrokenSim:
        def __init__(self, *a, **k):
            pass

        def run(self):
            return _engine.STATUS["invariant"]

        def broken_invariant(self):
            return ("an event popped before the current cycle", 1234, -1)

    monkeypatch.setattr(_engine, "Sim", BrokenSim)
    m = Machine(load_hw("default"), SfrInstall("pe"))
    m[0, 0].load(512)
    with pytest.raises(EngineInvariantError, match=r"invariant broken at cycle 1,234: an event popped") as e:
        m.run()
    assert e.value.cycle == 1234


def _breaking_sim(monkeypatch, cycle):
    """Sims whose first DMA request at or after ``cycle`` marks its channel broken."""
    from kernbench._core import _engine, api

    real = _engine.Sim

    def make(*a, **k):
        sim = real(*a, **k)
        sim.debug_break_dma(cycle)
        return sim

    monkeypatch.setattr(api._engine, "Sim", make)


def test_a_broken_dma_epoch_stops_the_run_at_the_request_that_broke_it(monkeypatch):
    """A request that breaks a channel's epoch stops the run in that cycle (it was reported at
    the channel's next arbitration or completion, and lost when the run stopped before one:
    max_cycles)."""
    import pytest

    from kernbench import EngineInvariantError, MaxCyclesError

    if not DEBUG_BUILD:
        pytest.skip("the invariant checks are the debug build's")
    # PE 0's first load (64 KiB) is alone on cube 0's channel: granted in cycle 0, its 256
    # bursts of 256 B leave one a cycle, the last at 256, and the data lands 150 cycles later:
    # it ends at 406 (docs/hardware-model.md, DMA). The unit then issues the second load: its
    # request, in cycle 406, is the first at or after cycle 1 and breaks the channel.
    for max_cycles in (None, 450):  # (450: before the second load's completion at 406 + 2 + 150)
        _breaking_sim(monkeypatch, 1)
        m = Machine(load_hw("default"), SfrInstall("pe"))
        m[0, 0].load(64 * 1024)
        m[0, 0].load(512)
        with pytest.raises(EngineInvariantError,
                           match=r"invariant broken at cycle 406 on cube 0's memory channel") as e:
            m.run(max_cycles=max_cycles)
        assert e.value.cycle == 406
    # unbroken, the same launch runs past 450 (what the stop above preempts)
    monkeypatch.undo()
    m = Machine(load_hw("default"), SfrInstall("pe"))
    m[0, 0].load(64 * 1024)
    m[0, 0].load(512)
    with pytest.raises(MaxCyclesError):
        m.run(max_cycles=450)


def test_debug_break_dma_is_the_debug_builds(monkeypatch):
    import pytest

    if DEBUG_BUILD:
        pytest.skip("the release build refuses it")
    _breaking_sim(monkeypatch, 0)
    m = Machine(load_hw("default"), SfrInstall("pe"))
    m[0, 0].load(512)
    with pytest.raises(RuntimeError, match="release build has no invariant checks"):
        m.run()


def test_a_bounds_check_in_the_loop_raises_not_prints(monkeypatch):
    """The loop's functions are noexcept nogil: a debug build's failed bounds check in one was
    printed as unraisable and the run went on, ending as a deadlock (a review gave the engine a
    readers table one entry short). simulate() now raises EngineInvariantError naming it. The
    release build has no bounds checks: its engine is given only validated tables."""
    import numpy as np
    import pytest

    from kernbench import EngineInvariantError
    from kernbench._core import _engine, api

    if not DEBUG_BUILD:
        pytest.skip("bounds checks are the debug build's")
    real = _engine.Sim

    def short_readers(*a, **k):
        a = list(a)
        a[8] = np.ascontiguousarray(np.asarray(a[8])[:1])  # (api.simulate: prep["readers"])
        return real(*a, **k)

    monkeypatch.setattr(api._engine, "Sim", short_readers)
    m = Machine(load_hw("default"), SfrInstall("pe"))
    for _ in range(2):  # two tensors: the second's readers entry is past the short table
        m[0, 0].store(m[0, 0].load(512), 512)
    before = __import__("sys").unraisablehook
    with pytest.raises(EngineInvariantError, match=r"IndexError: .* in kernbench\._core\._engine\.Sim"):
        m.run()
    assert __import__("sys").unraisablehook is before  # put back


def test_import_refuses_an_engine_built_from_other_structs(monkeypatch):
    import numpy as np
    import pytest

    from kernbench._core import _engine, api

    api._check_build()  # the installed build matches
    c = _engine.COMMAND_STRUCT_DTYPE
    swapped = np.dtype({"names": list(c.names), "formats": [c.fields[n][0] for n in c.names],
                        "offsets": [c.fields[n][1] for n in c.names][:4]
                        + [c.fields["unit"][1], c.fields["opcode"][1]]
                        + [c.fields[n][1] for n in c.names][6:], "itemsize": c.itemsize})
    monkeypatch.setattr(_engine, "COMMAND_STRUCT_DTYPE", swapped)  # same itemsize, fields moved
    with pytest.raises(ImportError, match="C Command struct .* differs from pe_commands.COMMAND_DTYPE"):
        api._check_build()
    monkeypatch.setattr(_engine, "COMMAND_STRUCT_DTYPE", c)
    monkeypatch.setitem(_engine.ENUMS, "N_VEC_OPS", 99)
    with pytest.raises(ImportError, match="enum N_VEC_OPS is 99 in the engine"):
        api._check_build()
    monkeypatch.undo()
    from kernbench.hw.sfr import Port
    monkeypatch.setattr(api, "OPPOSITE", (Port.S, Port.N, Port.W, Port.E))  # (not port ^ 1)
    with pytest.raises(ImportError, match=r"the engine takes a port's opposite as port \^ 1"):
        api._check_build()
