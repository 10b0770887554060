"""Build the compiled engine (kernbench._core) and the compiled tracing layer.

Every extension is declared in EXTENSIONS below. The tracing layer (TRACING_MODULES, listed
in kernbench/language/_compiled.py: the tl builtins, the semantic checks, the builder, the loop
replay, the trace store and the handles) is plain Python that Cython compiles as it is, with
augmenting .pxd files beside three of them (builder, builtins, store) that give the builder and
the pending commands C types (docs/benchmarks.md has what each step saved). The .py files stay
the source of truth, and the package works without their compiled twins
(``KERNBENCH_PURE_PYTHON=1`` builds the engine, kernbench.language._handles and _caller only). Two builds:

* release (default): bounds and wraparound checks off. The engine's Python entry point
  (kernbench/_core/api.py) validates every array before it reaches a Cython loop, so the
  unchecked indexing only ever sees checked indices.
* debug (``KERNBENCH_DEBUG=1 pip install .``): bounds/wraparound/initialized checks on,
  line tracing compiled in, and the engine's invariant checks (KERNBENCH_DEBUG macro) on.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("KERNBENCH_DEBUG", "0") not in ("", "0", "false", "False")

# name -> sources. One .pyx (and its .pxd) per engine component.
EXTENSIONS = {
    "kernbench._core._heap": ["kernbench/_core/_heap.pyx"],
    "kernbench._core._timing": ["kernbench/_core/_timing.pyx"],
    "kernbench._core._dma": ["kernbench/_core/_dma.pyx"],
    "kernbench._core._link": ["kernbench/_core/_link.pyx"],
    "kernbench._core._check": ["kernbench/_core/_check.pyx"],
    "kernbench._core._replay": ["kernbench/_core/_replay.pyx"],
    "kernbench._core._engine": ["kernbench/_core/_engine.pyx"],
    "kernbench.language._handles": ["kernbench/language/_handles.pyx"],
    "kernbench.language._caller": ["kernbench/language/_caller.pyx"],
}

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": DEBUG,
    "linetrace": DEBUG,
    "profile": False,
    "embedsignature": True,
}
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1"), ("KERNBENCH_DEBUG", "1")]
compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]

extensions = [
    Extension(
        name,
        sources,
        include_dirs=[np.get_include()],
        define_macros=macros,
        extra_compile_args=compile_args,
    )
    for name, sources in EXTENSIONS.items()
]

# Plain Python modules compiled as they are (typed only by the .pxd beside a few): the tracing
# layer's hot calls. Line tracing stays off in both builds: a traced compiled function would
# push a Python frame, and the language finds the kernel's line by walking frames
# (semantic.site_frame).
_ns: dict = {}  # (read, not imported: the package is not built yet)
with open(os.path.join("kernbench", "language", "_compiled.py")) as _f:
    exec(_f.read(), _ns)
TRACING_MODULES = _ns["TRACING_MODULES"]
PURE_PYTHON = os.environ.get("KERNBENCH_PURE_PYTHON", "0") not in ("", "0", "false", "False")
py_directives = {"language_level": 3, "binding": True}
# -O1: their C is calls into the Python C API; -O3 made tracing 4% faster for 2.3x the compile
# time (builtins.c: 23 s against 10 s on the 2-core CI machine). The debug build checks the
# engine, not these: -O1 there too, with symbols (with them at -O0 the debug test run took
# 2.1x the release run's time, against 1.8x before they were compiled).
py_compile_args = ["-O1", "-g"] if DEBUG else ["-O1"]
py_extensions = [] if PURE_PYTHON else [
    Extension(name, [name.replace(".", "/") + ".py"], extra_compile_args=py_compile_args)
    for name in TRACING_MODULES
]

# Release and debug builds keep their generated C and objects apart, so switching
# KERNBENCH_DEBUG never reuses the other build's files.
BUILD_BASE = os.path.join("build", "debug" if DEBUG else "release")

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        build_dir=os.path.join(BUILD_BASE, "cython"),
    ) + cythonize(
        py_extensions,
        compiler_directives=py_directives,
        build_dir=os.path.join(BUILD_BASE, "cython"),
    ),
    # two extensions compile at once (CI has 2 cores)
    options={"build": {"build_base": BUILD_BASE}, "build_ext": {"parallel": 2}},
)
