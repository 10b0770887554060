"""Shared options and fixtures of the benchmark suite (``pytest bench/ --benchmark-only``).

``--quick`` shrinks every benchmark to a smoke run of the suite (CI, well under 2 minutes on 2
cores): the figures it produces are not speed measurements. Benchmarks read it through the
``quick`` fixture and pick their sizes from it.

``pytest bench/`` collects ``bench/test_*.py`` with pytest's default file pattern; the repo's
``testpaths = ["tests"]`` only applies when no path is given, so nothing else is configured here.
"""
from __future__ import annotations

import pytest


def pytest_configure(config):
    # a benchmarked kernel whose tl.range loop replay has to trace in full is a failure, as in
    # the tests (tests/conftest.py says why the filter is set here)
    config.addinivalue_line("filterwarnings", "error::kernbench.common.errors.ReplayWarning")


def pytest_addoption(parser):
    group = parser.getgroup("kernbench", "kernbench benchmarks")
    group.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="small sizes for every benchmark: a smoke run of the suite, not a speed measurement",
    )


@pytest.fixture(scope="session")
def quick(request) -> bool:
    """True under ``--quick``: benchmarks shrink their sizes."""
    return bool(request.config.getoption("--quick"))
