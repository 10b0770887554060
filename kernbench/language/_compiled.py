"""The tracing layer's modules: plain Python that setup.py compiles with Cython as it is (the
.pxd beside some of them gives the builder and the pending commands C types).

This file is read by setup.py without importing kernbench (it must stay free of imports), and
by kernbench.language (TRACING_MODULES, compiled_tracing)."""

TRACING_MODULES = (
    "kernbench.common.pe_commands",
    "kernbench.language.builder",
    "kernbench.language.builtins",
    "kernbench.language.loops",
    "kernbench.language.semantic",
    "kernbench.language.store",
)
