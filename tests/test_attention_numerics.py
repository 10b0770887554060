"""Both ring-attention kernels against softmax(Q K^T / sqrt(d)) V in f64.

n_ranks 1, 2, 3, 8; GQA group sizes 1, 4, 8; ring over the PEs of a cube (rank_axis 0) and over
cubes (rank_axis 1). The double-normalisation trap must fail the very same check for every n_ranks.
"""
import pytest

from attention_helpers import double_normalised, small_spec
from kernbench.diag import run_panel
from kernbench.hw import load_hw

MESH8 = load_hw("mesh8")  # 8 cubes: room for an 8-rank ring over cubes


@pytest.mark.parametrize("kind", ["prefill", "decode"])
@pytest.mark.parametrize("rank_axis", [0, 1])
@pytest.mark.parametrize("group", [1, 4, 8])
@pytest.mark.parametrize("n_ranks", [1, 2, 3, 8])
def test_matches_reference(kind, n_ranks, group, rank_axis):
    p = run_panel(small_spec(kind, n_ranks, group, rank_axis), MESH8)
    assert p.passed, p.failures
    # f16 output against an f64 reference: well inside the tolerance, not just under it
    assert p.max_abs_err < 2e-3


@pytest.mark.parametrize("kind", ["prefill", "decode"])
@pytest.mark.parametrize("n_ranks", [1, 2, 3, 8])
def test_double_normalisation_is_caught(kind, n_ranks):
    spec = small_spec(kind, n_ranks, 4, 0)
    with double_normalised():
        p = run_panel(spec, MESH8)
    assert not p.passed
    # every rank's output is off, by far more than the tolerance (o was divided by l twice)
    assert len(p.failures) == n_ranks
    assert p.max_abs_err > 20 * 2e-3
