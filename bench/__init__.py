"""Benchmarks of kernbench: the modelled machine and the simulator itself (pytest-benchmark)."""
