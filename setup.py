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
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

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
    "kernbench.report._format": ["kernbench/report/_format.pyx"],
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


def _digest(parts, paths=()):
    """SHA-256 (hex) of ``parts`` (strings) and of the contents of the files ``paths``."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() + b"\0")
    for path in paths:
        with open(path, "rb") as f:
            h.update(path.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def cythonize_changed(exts, cython_directives):
    """cythonize() the modules whose Cython inputs changed since their C was generated; keep
    the C of the rest.

    Cython decides by timestamps, and each `pip install .` builds in a fresh isolated
    environment whose Cython/Includes/*.pxd are newer than any C generated before: every
    install regenerated every module that cimports libc, and setuptools then recompiled it
    (70-80 s of CI's second install, which changed nothing). Here a digest of what the C is
    generated from (the Cython and numpy versions: their own .pxd; the directives; the source
    and every .pxd of the package), stored beside the C, decides instead. Whether the C is
    compiled again is build_ext's decision below.
    """
    import Cython

    kept, changed, stamps = [], [], []
    for ext in exts:
        (source,) = ext.sources
        c_file = os.path.join(CYTHON_DIR, os.path.splitext(source)[0] + ".c")
        stamp = c_file + ".inputs"
        digest = _digest([Cython.__version__, np.__version__, repr(sorted(cython_directives.items()))],
                         [source, *PXD_FILES])
        if _read(stamp) == digest and os.path.exists(c_file):
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
        _write(stamp, digest)
    return out


# What the C compiler and the linker read besides an Extension's own fields: the environment
# (CC=..., CFLAGS=... reach distutils from there) and the interpreter's build configuration.
COMPILER_ENV = ("CC", "CXX", "CFLAGS", "CPPFLAGS", "CXXFLAGS", "LDFLAGS", "LDSHARED", "AR",
                "ARFLAGS", "ARCHFLAGS", "MACOSX_DEPLOYMENT_TARGET", "SETUPTOOLS_EXT_SUFFIX")
COMPILER_CONFIG = ("CC", "CXX", "CFLAGS", "CCSHARED", "LDSHARED", "LDFLAGS", "CPPFLAGS",
                   "EXT_SUFFIX", "SOABI")


class build_ext(_build_ext):
    """setuptools' build_ext, deciding by digest rather than by timestamps whether to compile.

    An extension is compiled and linked again unless the digest of everything that goes into
    it (its C file's contents, every field of its Extension, numpy's version for its headers,
    the compiler variables of the environment and of the interpreter's build, the Python
    version), stored in build_temp when it was last built, is the current one and its file
    exists. A run stopped mid-link leaves no stamp, so its half-written file is rebuilt.
    Outside in-place builds, extension files in build_lib that this build does not make (a
    KERNBENCH_PURE_PYTHON=1 build after a compiled one; a module since removed) are deleted
    first, so no wheel ships a compiled module that shadows its current .py.
    """

    def run(self):
        if not self.inplace and os.path.isdir(self.build_lib):
            made = {ext.name for ext in self.extensions}
            for root, _, names in os.walk(self.build_lib):
                for name in names:
                    sfx = next((s for s in EXTENSION_SUFFIXES if name.endswith(s)), None)
                    if sfx is None:
                        continue
                    path = os.path.join(root, name)
                    module = os.path.relpath(path[: -len(sfx)], self.build_lib).replace(os.sep, ".")
                    if module not in made:
                        os.remove(path)
        super().run()

    def _compile_digest(self, ext):
        numpy_include = np.get_include()  # (a path in each isolated build env: named by version)
        fields = {k: v for k, v in vars(ext).items() if k not in ("sources", "include_dirs")}
        fields["include_dirs"] = [f"numpy {np.__version__}" if d == numpy_include else d
                                  for d in ext.include_dirs]
        return _digest([sys.version, repr(sorted(fields.items(), key=lambda kv: kv[0])),
                        repr([(k, os.environ.get(k)) for k in COMPILER_ENV]),
                        repr(sysconfig.get_config_vars(*COMPILER_CONFIG))],
                       [*ext.sources, *ext.depends])

    def build_extension(self, ext):
        target = self.get_ext_fullpath(ext.name)
        stamp = os.path.join(self.build_temp, ext.name + ".inputs")
        digest = self._compile_digest(ext)
        if _read(stamp) == digest and os.path.exists(target):
            return  # built from these very inputs
        if os.path.exists(stamp):
            os.remove(stamp)
        if os.path.exists(target):
            os.remove(target)  # (setuptools would keep a file newer than its sources)
        super().build_extension(ext)
        _write(stamp, digest)


ext_modules = (cythonize_changed(extensions, directives)
               + cythonize_changed(py_extensions, py_directives))
# largest C first: JOBS compilers take the next module as one finishes, and a long module
# left for last would keep one of them running alone
ext_modules.sort(key=lambda ext: -os.path.getsize(ext.sources[0]))

setup(
    ext_modules=ext_modules,
    cmdclass={"build_ext": build_ext},
    options={"build": {"build_base": BUILD_BASE}, "build_ext": {"parallel": JOBS}},
)
