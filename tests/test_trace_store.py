"""The trace store turns recorded commands into the launch's arrays every FLUSH_EVERY tensors.

Where those flushes fall (inside a program, across programs, every tensor) must change nothing:
the same Program bytes, the same cycles and the same numbers as with the default interval.
"""
import pytest

from attention_helpers import small_spec, with_mode
from kernbench.diag import run_panel
from kernbench.hw import load_hw
from kernbench.language import builder

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
