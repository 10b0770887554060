"""Baselines the engine is timed against: the same machine model in other simulators."""
