"""Shared fixtures for the test suite."""
import os
import sys

import pytest

from kernbench.hw import SfrInstall, load_hw

# engine_helpers (and the golden workloads other tests reuse) import by module name whatever
# pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def hw():
    """The default preset (4 cubes x 8 PEs)."""
    return load_hw("default")


@pytest.fixture
def pe_line(hw):
    """Neighbour table: the PEs of each cube in an open line."""
    return SfrInstall("pe").neighbours(hw)
