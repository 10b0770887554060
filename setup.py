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
* debug (``KERNBENCH_DEBUG=1 pip install .``): bounds/wraparound/initialized/None checks
  on, the engine's invariant checks (KERNBENCH_DEBUG macro) on, -O0 with symbols. Line
  tracing (Cython's ``linetrace``, for coverage and profilers) is not compiled in: it made
  the debug engine 17x slower than without it (a packet-detail launch: 26.4 s against
  1.6 s; the release build takes 0.55 s) and checks nothing.
"""
import hashlib
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
    "profile": False,
    "embedsignature": True,
}
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    macros += [("KERNBENCH_DEBUG", "1")]
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
CYTHON_DIR = os.path.join(BUILD_BASE, "cython")
# Cython and the C compiler run this many modules at once (CI has 2 cores; gcc -O3 on the
# largest module takes about 0.5 GB)
JOBS = max(1, min(os.cpu_count() or 1, 8))

# Every .pxd/.pxi of the package: any module may cimport any of them (hashed whole, not traced
# module by module: a change to one regenerates every module, which is rare and always right).
PXD_FILES = sorted(
    os.path.join(root, name)
    for root, _, names in os.walk("kernbench")
    for name in names
    if name.endswith((".pxd", ".pxi"))
)


def _inputs_digest(ext, cython_directives):
    """SHA-256 of everything a module's generated C and its compiled object depend on: the
    Cython and numpy versions (their own .pxd and headers), the directives, the C macros and
    flags, the source and the package's .pxd files. Python's version is not in it: the build
    directory of the objects (build/*/lib.<platform>-<python>) already names it."""
    import Cython

    h = hashlib.sha256()
    for part in (Cython.__version__, np.__version__, repr(sorted(cython_directives.items())),
                 repr(ext.define_macros), repr(ext.extra_compile_args)):
        h.update(part.encode() + b"\0")
    for path in [*ext.sources, *PXD_FILES]:
        with open(path, "rb") as f:
            h.update(path.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def cythonize_changed(exts, cython_directives):
    """cythonize() the modules whose inputs changed since their C was generated; keep the rest.

    Cython decides by timestamps, and each `pip install .` builds in a fresh isolated
    environment whose Cython/Includes/*.pxd are newer than any C generated before: every
    install regenerated every module that cimports libc, and setuptools then recompiled it
    (70-80 s of CI's second install, which changed nothing). Here a digest of the inputs,
    kept beside the generated C, decides instead: a kept .c keeps its mtime, so setuptools
    finds the extension it built from it up to date and does not compile it again.
    """
    kept, changed, stamps = [], [], []
    for ext in exts:
        (source,) = ext.sources
        c_file = os.path.join(CYTHON_DIR, os.path.splitext(source)[0] + ".c")
        stamp = c_file + ".inputs"
        digest = _inputs_digest(ext, cython_directives)
        try:
            with open(stamp) as f:
                same = f.read() == digest and os.path.exists(c_file)
        except OSError:
            same = False
        if same:
            ext.sources = [c_file]
            kept.append(ext)
        else:
            if os.path.exists(stamp):  # a run stopped while the C is written must not keep it
                os.remove(stamp)
            changed.append(ext)
            stamps.append((stamp, digest))
    # force: the digest, not Cython's timestamps, has said which modules changed
    out = kept + (cythonize(changed, compiler_directives=cython_directives, build_dir=CYTHON_DIR,
                            force=True, nthreads=JOBS) if changed else [])
    for stamp, digest in stamps:  # written once the C is: a failed run leaves no stamp
        with open(stamp, "w") as f:
            f.write(digest)
    return out


ext_modules = (cythonize_changed(extensions, directives)
               + cythonize_changed(py_extensions, py_directives))
# largest C first: JOBS compilers take the next module as one finishes, and a long module
# left for last would keep one of them running alone
ext_modules.sort(key=lambda ext: -os.path.getsize(ext.sources[0]))

setup(
    ext_modules=ext_modules,
    options={"build": {"build_base": BUILD_BASE}, "build_ext": {"parallel": JOBS}},
)
