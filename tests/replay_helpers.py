"""What tl.range replay is compared on (tests/test_tl_range*.py): two launches the same."""
from __future__ import annotations

import numpy as np


def assert_same_launch(a, b):
    """Cycles, every counter, peak SRAM, the event record and the program itself (the
    LaunchResults of one kernel traced with and without replay)."""
    assert a.cycles == b.cycles
    for name in ("unit_counters", "link_counters"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.tobytes() == y.tobytes(), name
    assert np.array_equal(a.peak_sram, b.peak_sram)
    assert a.events.tobytes() == b.events.tobytes()
    pa, pb = a.program, b.program
    for f in ("commands", "cmd_offsets", "tensor_bytes", "tensor_pinned", "tensor_offsets"):
        assert getattr(pa, f).tobytes() == getattr(pb, f).tobytes(), f
    assert [a.label(i) for i in range(pa.n_commands)] == [b.label(i) for i in range(pb.n_commands)]
