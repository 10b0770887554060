"""Property-based fuzzing of kernbench: random tl kernels on random hardware (tests/test_fuzz.py).

``fuzz.kernels`` is the generator (a hypothesis strategy, ``kernels()``), ``fuzz.reference`` the
independent numpy reference and deadlock decider it uses to predict each case's outcome.
"""
