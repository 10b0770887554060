"""Shared fixtures for the test suite."""
import pytest

from kernbench.hw import SfrInstall, load_hw


@pytest.fixture
def hw():
    """The default preset (4 cubes x 8 PEs)."""
    return load_hw("default")


@pytest.fixture
def pe_line(hw):
    """Neighbour table: the PEs of each cube in an open line."""
    return SfrInstall("pe").neighbours(hw)
