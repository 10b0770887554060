"""The semantic layer of ``tl``: every shape, dtype, port and pointer check, and its error message.

Builtins call these before the builder emits anything, so a bad call never leaves a half-built
command behind. Every failure is a :class:`~kernbench.common.errors.KernelError` that names the PE
as (pe, cube), the kernel's file:line and what was expected.

The functions take the tracing PE's :class:`~kernbench.language.builder.PEBuilder` as ``tr`` and
are on the tracing hot path: the common case (a handle the builder made itself, equal shapes) is
a couple of identity checks.
"""
from __future__ import annotations

import bisect
import dis
import functools
import itertools
import os
import re
import sys
import threading
import types
import weakref
from collections.abc import Mapping
from typing import NoReturn

import numpy as np

from ..common.errors import LIBRARY_DIRS, NOT_EXTENTS, PACKAGE_DIR, KernelError, file_line, pe_at, pe_label
from ..common.pe_commands import PORT_INDEX, PORT_NAMES, TensorHandle, parse_port
from ..hw.config import ENGINE_MAX_VOLUME, KEY_BOUNDS
from ._caller import kernel_frame
from ._compiled import TRACING_MODULES
from .porting import tl_hint

__all__ = [
    "DTYPES",
    "TENSORS_PER_PE",
    "NP_DTYPES",
    "ITEMSIZE",
    "TransposedView",
    "dtype_name",
    "fail",
    "site",
    "site_frame",
    "line_of",
    "kernel_error",
]

# -- dtypes ---------------------------------------------------------------------------------
#: The storage dtypes ml_dtypes defines: canonical name -> its attribute in ml_dtypes.
_ML_DTYPES = {"bf16": "bfloat16", "fp8e4m3": "float8_e4m3fn", "fp8e5m2": "float8_e5m2"}


class _NumpyDtypes(Mapping):
    """Canonical dtype name -> numpy storage dtype (a read-only mapping; "bool" is what
    comparisons produce).

    bf16 and the fp8s are ml_dtypes' types, imported when one is first looked up: importing
    ml_dtypes registers its ufunc loops with numpy, about 0.85 s of CPU and most of
    ``import kernbench`` (docs/benchmarks.md), and a timing-mode launch never needs them."""

    __slots__ = ("_d",)
    _NAMES = ("f16", "bf16", "f32", "fp8e4m3", "fp8e5m2", "int32", "bool")

    def __init__(self) -> None:
        self._d = {"f16": np.dtype(np.float16), "f32": np.dtype(np.float32),
                   "int32": np.dtype(np.int32), "bool": np.dtype(np.bool_)}

    def __getitem__(self, name):
        try:
            return self._d[name]
        except KeyError:
            if type(name) is not str or name not in _ML_DTYPES:
                raise
        import ml_dtypes  # (idempotent: two threads may both fill the same values)
        self._d.update({k: np.dtype(getattr(ml_dtypes, a)) for k, a in _ML_DTYPES.items()})
        return self._d[name]

    def __contains__(self, name) -> bool:
        # (a name, not a numpy dtype: np.dtype("int32") == "int32")
        return isinstance(name, str) and name in self._NAMES

    def __iter__(self):
        return iter(self._NAMES)

    def __len__(self) -> int:
        return len(self._NAMES)

    def __repr__(self) -> str:
        return f"NP_DTYPES({', '.join(self._NAMES)})"

    # What the dict it was also did.
    def copy(self) -> dict:
        return dict(self)

    def __or__(self, other):
        return {**self, **other} if isinstance(other, Mapping) else NotImplemented

    def __ror__(self, other):
        return {**other, **self} if isinstance(other, Mapping) else NotImplemented

    def __reduce__(self):
        return (dict, (dict(self),))  # (unpickled, a plain dict of the same dtypes)


#: Canonical dtype name -> numpy storage dtype (bf16 and fp8 from ml_dtypes, at first use).
NP_DTYPES = _NumpyDtypes()
#: Bytes per element of each storage dtype (without importing ml_dtypes; a test holds it to
#: NP_DTYPES).
ITEMSIZE = {"f16": 2, "bf16": 2, "f32": 4, "fp8e4m3": 1, "fp8e5m2": 1, "int32": 4, "bool": 1}
#: Names a kernel may use for a storage dtype (loads, recv, full, cast, device memory).
STORAGE_DTYPES = ("f16", "bf16", "f32", "fp8e4m3", "fp8e5m2", "int32")
#: The float dtypes (what tl.dot takes, what float functions return).
FLOAT_DTYPES = ("f16", "bf16", "f32", "fp8e4m3", "fp8e5m2")

#: Every accepted spelling -> canonical name.
DTYPES = {
    **{k: "f16" for k in ("f16", "fp16", "float16", "half")},
    **{k: "bf16" for k in ("bf16", "bfloat16")},
    **{k: "f32" for k in ("f32", "fp32", "float32", "float")},
    **{k: "fp8e4m3" for k in ("fp8e4m3", "fp8_e4m3", "e4m3", "f8e4m3", "fp8e4m3fn", "float8_e4m3fn",
                              "float8e4m3", "float8e4nv")},
    **{k: "fp8e5m2" for k in ("fp8e5m2", "fp8_e5m2", "e5m2", "f8e5m2", "float8_e5m2", "float8e5m2",
                              "float8e5")},
    **{k: "int32" for k in ("int32", "i32")},
}
_NP_NAME = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float8_e4m3fn": "fp8e4m3",
            "float8_e5m2": "fp8e5m2", "int32": "int32", "bool": "bool"}
_RANK = {"fp8e4m3": 1, "fp8e5m2": 1, "f16": 2, "bf16": 2, "f32": 3}


def dtype_name(d) -> str | None:
    """Canonical dtype name of a string (in any case), numpy dtype or ml_dtypes type; None when
    unknown, and for a value (a numpy scalar or array, a tensor handle: numpy would take its
    ``.dtype``, a review found, or raise ValueError naming its own internals)."""
    if isinstance(d, str):  # (a str subclass too: np.str_, from an array of names)
        d = str(d)
        return DTYPES.get(d) or DTYPES.get(d.lower())
    if isinstance(d, (np.generic, np.ndarray, TensorHandle)):
        return None
    try:
        return _NP_NAME.get(np.dtype(d).name)
    except (TypeError, ValueError):
        return None


def promote(a: str, b: str) -> str:
    """Result dtype of arithmetic on two tensors of dtypes ``a`` and ``b`` (docs/language.md,
    "Promotion"): floats by width, a float beats int32 and masks, int32 beats masks, and two
    masks give int32 (a mask in arithmetic is 0/1)."""
    if a == b:
        return "int32" if a == "bool" else a
    fa, fb = a in _RANK, b in _RANK
    if fa and fb:
        ra, rb = _RANK[a], _RANK[b]
        if ra != rb:
            return a if ra > rb else b
        # f16 with bf16, or e4m3 with e5m2: widen to the next precision that holds both.
        return "f32" if ra == 2 else "f16"
    if fa:
        return a
    if fb:
        return b
    return "int32"  # int32 with a mask


#: Pseudo-dtypes of Python numbers as operands (numpy scalars count as Python numbers).
PY_INT, PY_FLOAT, PY_BOOL = "#int", "#float", "#bool"


def scalar_kind(x) -> str | None:
    """PY_INT / PY_FLOAT / PY_BOOL for a Python or numpy number, else None."""
    t = type(x)
    if t is float:
        return PY_FLOAT
    if t is int:
        return PY_INT
    if t is bool or isinstance(x, np.bool_):
        return PY_BOOL
    if isinstance(x, np.timedelta64):  # (a numpy signed integer by class, a duration by meaning)
        return None
    if isinstance(x, (np.integer,)):
        return PY_INT
    if isinstance(x, (float, np.floating)):
        return PY_FLOAT
    if isinstance(x, int):
        return PY_INT
    if isinstance(x, np.ndarray) and x.ndim == 0 and (
            x.dtype.kind in "biuf" or type(x.dtype).__module__.startswith("ml_dtypes")
            or type(x[()]).__module__.startswith("ml_dtypes")):
        return scalar_kind(x[()])  # numpy gives 0-d arrays where it means numbers
    if isinstance(x, np.generic) and type(x).__module__.startswith("ml_dtypes"):
        # (ml_dtypes' scalars, bfloat16(0.1), are numpy scalars of its own kinds: their value)
        v = x.item()
        return scalar_kind(v) if type(v) in (int, float) else None
    return None


#: Kinds of binary op: how the result dtype follows from the compute dtype.
ARITH = ("add", "sub", "mul", "maximum", "minimum")
COMPARE = ("lt", "le", "gt", "ge", "eq", "ne")
LOGIC = ("and_", "or_", "xor")
SHIFT = ("shl", "shr")
#: Operators as kernels write them, for messages.
OP_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%",
             "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=",
             "and_": "&", "or_": "|", "xor": "^", "shl": "<<", "shr": ">>",
             "maximum": "tl.maximum", "minimum": "tl.minimum"}

_BIN_TYPES: dict = {}


def binary_types(name: str, a: str, b: str):
    """(compute dtype, result dtype) of binary ``name`` on operands of dtypes ``a`` and ``b``
    (dtype names, or PY_INT / PY_FLOAT / PY_BOOL for Python numbers), or a str saying why the
    combination is refused. Cached: a kernel uses a handful of combinations."""
    key = (name, a, b)
    r = _BIN_TYPES.get(key)
    if r is None:
        r = _BIN_TYPES[key] = _binary_types(name, a, b)
    return r


def _value_dtype(a: str, b: str, logical: bool):
    """The promoted dtype of two operands, at least one a tensor (a Python number never
    promotes a float tensor; with int32 or a mask a Python float gives f32)."""
    sa, sb = a.startswith("#"), b.startswith("#")
    if sa and sb:
        if a == b == PY_BOOL:
            return "bool"
        return "f32" if PY_FLOAT in (a, b) else "int32"
    if sa or sb:
        t, x = (b, a) if sa else (a, b)
        if t in _RANK:
            return t
        if x == PY_FLOAT:
            return "f32"
        if logical and t == "bool" and x == PY_BOOL:
            return "bool"
        return "int32"
    if logical and a == b == "bool":
        return "bool"
    return promote(a, b)


def _binary_types(name: str, a: str, b: str):
    is_float = a in _RANK or b in _RANK or PY_FLOAT in (a, b)
    sym = OP_SYMBOL.get(name, name)
    if name in ARITH or name == "mod":
        ct = _value_dtype(a, b, False)
        return ct, ct
    if name == "div":
        ct = _value_dtype(a, b, False)
        ct = "f32" if ct == "int32" else ct  # true division
        return ct, ct
    if name == "floordiv":
        if is_float:
            return ("// takes int32 tensors, masks and Python ints; for floats divide and "
                    "truncate: tl.cast(a / b, 'int32')")
        return "int32", "int32"
    if name in COMPARE:
        ct = _value_dtype(a, b, False)
        return ct, "bool"
    if name in LOGIC or name in SHIFT:
        if is_float:
            what = "bitwise and logical ops" if name in LOGIC else "shifts"
            fl = a if a in _RANK or a == PY_FLOAT else b
            shown = "a Python float" if fl == PY_FLOAT else f"a float operand of dtype {fl}"
            return f"{sym}: {what} take masks, int32 tensors and Python ints, not floats ({shown})"
        if name in SHIFT:
            return "int32", "int32"
        ct = _value_dtype(a, b, True)
        return ct, ct
    if name == "where":
        ct = _value_dtype(a, b, True)
        return ct, ct
    raise ValueError(f"unknown binary op {name!r}")


def unary_types(name: str, d: str):
    """(compute dtype, result dtype) of unary ``name`` on a ``d`` tensor, or a str (refused)."""
    if name in ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sigmoid"):
        return (d, d) if d in _RANK else ("f32", "f32")
    if name in ("neg", "abs"):
        return (d, d) if d != "bool" else ("int32", "int32")
    if name == "invert":
        if d in _RANK:
            return f"~ takes a mask or an int32 tensor, not {d}"
        return d, d
    raise ValueError(f"unknown unary op {name!r}")


def reduce_dtype(name: str, d: str) -> str:
    """Result dtype of reduction ``name`` of a ``d`` tensor: sum counts masks as int32."""
    return "int32" if name == "sum" and d == "bool" else d


# -- tensor ids -------------------------------------------------------------------------------
# A handle's id is (launch serial, cube, PE, tensor number) packed in one int, so a handle is
# recognised as another PE's or another launch's even when a kernel copies only its fields.
# The builder's command arrays hold the tensor number alone.
_PE_BITS, _CUBE_BITS, _LOCAL_BITS = 24, 24, 32
#: tensors one PE's program may make: the tensor numbers an id holds (PEBuilder refuses the next)
TENSORS_PER_PE = 1 << _LOCAL_BITS

_LAUNCHES = None  # (made at the first launch: _launch_counter)
_LAUNCHES_LOCK = threading.Lock()


def _launch_counter():
    # Launch numbers from 1 in a main process; in a child process (a fork, or a spawned or
    # forkserver Dask or multiprocessing worker) from its pid times 2**32, so that a handle a
    # child sends back (pickled) cannot name a tensor of a launch of its parent's or of another
    # child's. Decided at the first launch, not at import: a spawned child imports kernbench
    # (re-importing the main script) before multiprocessing marks it a child; a launch the
    # script makes as it is re-imported sees the child's _inheriting flag.
    mp = sys.modules.get("multiprocessing")
    # (_inheriting: set while a spawned child re-imports the main script, before parent_process)
    child = mp is not None and (mp.parent_process() is not None
                                or getattr(mp.current_process(), "_inheriting", False))
    return _child_counter() if child else itertools.count(1)


def _child_counter():
    return itertools.count((os.getpid() << 32) + 1)


def _forked() -> None:
    global _LAUNCHES
    _LAUNCHES = _child_counter()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def next_launch_serial() -> int:
    """A process-wide unique launch number (thread-safe: count() is atomic under the GIL, the
    first one made under a lock); unique across the processes a main process forks or spawns
    too (:func:`_launch_counter`)."""
    global _LAUNCHES
    if _LAUNCHES is None:
        with _LAUNCHES_LOCK:
            if _LAUNCHES is None:
                _LAUNCHES = _launch_counter()
    return next(_LAUNCHES)


def id_base(serial: int, pe: int, cube: int) -> int:
    """The id of tensor 0 of PE (pe, cube) in launch ``serial``; tensor k is base + k."""
    if not (0 <= pe < 1 << _PE_BITS and 0 <= cube < 1 << _CUBE_BITS):
        raise ValueError(f"{pe_label((pe, cube))} is beyond what tensor ids can name")
    return (((serial << _CUBE_BITS | cube) << _PE_BITS) | pe) << _LOCAL_BITS


def id_owner(i: int) -> tuple:
    """(launch serial, pe, cube, tensor number) packed in tensor id ``i``."""
    local = i & ((1 << _LOCAL_BITS) - 1)
    rest = i >> _LOCAL_BITS
    pe = rest & ((1 << _PE_BITS) - 1)
    rest >>= _PE_BITS
    cube = rest & ((1 << _CUBE_BITS) - 1)
    return rest >> _CUBE_BITS, pe, cube, local


# -- where a call came from -------------------------------------------------------------------
_HERE = os.path.dirname(os.path.abspath(__file__))
_INTERNAL = set()


def register_internal(path: str) -> None:
    """Frames from ``path`` are skipped when naming the kernel line of a tl call."""
    _INTERNAL.add(path)
    if "_user_file" in globals():  # (registered after a lookup: the cached answers may change)
        _user_file.cache_clear()


register_internal(__file__)
register_internal(sys.modules[TensorHandle.__module__].__file__)
# A compiled module's traceback entries carry the source path setup.py gave Cython, relative
# ("kernbench/language/builtins.py"), not its __file__ (the extension): a tl call with a wrong
# signature raises inside the compiled function, and the kernel's line is the frame outside it.
for _m in TRACING_MODULES:
    register_internal(_m.replace(".", "/") + ".py")
    register_internal(os.path.join(*_m.split(".")) + ".py")


def site_frame():
    """The kernel's frame at a tl call: the innermost frame outside kernbench's language (the
    files given to :func:`register_internal`). The one place kernbench finds its caller: the
    builder keys its per-instruction caches on this frame, errors name its line (:func:`site`).

    Walks out from the innermost Python frame only past tl's own frames (a handful, none when
    this module and the builtins are compiled: compiled functions push no frame), never the
    whole stack; when every frame is the language's own (no kernel on the stack), the
    outermost. The walk is C (kernbench.language._caller)."""
    return kernel_frame(_INTERNAL)


def site() -> tuple:
    """(file, line) of the kernel's call site (:func:`site_frame`), ("<unknown>", 0) when no
    kernel is on the stack."""
    f = site_frame()
    if f.f_code.co_filename in _INTERNAL:
        return ("<unknown>", 0)
    return (f.f_code.co_filename, line_of(f))


#: the shipped kernels' folder: kernels like any other, although inside kernbench's package
_KERNELS_DIR = os.path.join(PACKAGE_DIR, "kernels") + os.sep


def is_user_file(file: str, own_file: str | None = None) -> bool:
    """Whether a frame of ``file`` is the user's code: outside kernbench and outside the
    standard library and installed packages; ``own_file`` (a kernel's, a setup's), the files
    beside it (a kernel package's helpers, installed or not; not a library's installed in a
    folder beside it, a project's .venv) and the shipped kernels' files
    (kernbench.kernels) always count as the user's. The one rule for which frames an error
    names (:func:`kernel_error`, executor.user_frame), with :func:`is_user_code`."""
    return (file == own_file or _user_file(file) == 1
            or (own_file is not None and _beside(file, own_file)))


@functools.lru_cache(maxsize=4096)
def _beside(file: str, own_file: str) -> bool:
    # (a file of the kernel's own package, its sub-packages included, or of its folder when it
    # is in none, outside kernbench: its helpers; not one under a library folder at or inside
    # that folder: site-packages or the standard library as the kernel's folder itself, or a
    # project's .venv beside its kernel (an exec'd kernel's folder is the working one), whose
    # installed packages are libraries; a kernel package installed in site-packages keeps its
    # helpers, that folder being outside the package)
    try:
        root = os.path.normpath(_package_root(os.path.dirname(os.path.abspath(own_file)))) + os.sep
        a = os.path.abspath(file)
        return (not file.startswith("<") and _user_file(file) != -1 and a.startswith(root)
                and not any(d.startswith(root) and a.startswith(d) for d in LIBRARY_DIRS))
    except (OSError, ValueError):
        return False


def _package_root(folder: str) -> str:
    """The outermost package folder holding ``folder`` (a chain of folders with __init__.py),
    or ``folder`` itself when it is no package's."""
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        up = os.path.dirname(folder)
        if up == folder or not os.path.isfile(os.path.join(up, "__init__.py")):
            return folder
        folder = up
    return folder


def is_user_code(code, own_file: str | None = None) -> bool:
    """:func:`is_user_file` for a code object: code Python generates for a library (a
    dataclass's ``__init__``, ``__eq__``, ``__setattr__``, exec'd as "<string>") is not the
    user's, though its file name is no library's."""
    if code.co_filename == "<string>" and code.co_qualname.startswith("__create_fn__."):
        return False
    return is_user_file(code.co_filename, own_file)


@functools.lru_cache(maxsize=4096)
def _user_file(file: str) -> int:
    # 1: the user's; 0: a library's; -1: kernbench's own (where a launch runs its kernel). Cached:
    # an error's chain asks for every frame out to the launch (abspath reads the working folder)
    try:
        a = os.path.abspath(file)
    except OSError:  # (a relative name, "<string>", with the working folder gone)
        a = file
    if a.startswith(_KERNELS_DIR):
        return 1
    if file in _INTERNAL or a.startswith(PACKAGE_DIR):
        return -1
    if file.startswith(_GENERATED):  # (frozen standard modules; attrs' generated methods)
        return 0
    return 0 if os.path.normpath(file).startswith(LIBRARY_DIRS) else 1


#: file names of code Python or a library makes without a file of its own (Cython's utility
#: code, a memoryview's methods, compiled into an extension: a deepcopy of one named it)
_GENERATED = ("<frozen ", "<attrs generated", "View.MemoryView", "<stringsource>", "stringsource")


#: callers an error names at most: the innermost ones and the outermost (the kernel)
_CHAIN_MAX = 6
#: the frames Python makes for comprehensions (always run by the function they are written in)
_COMPREHENSIONS = frozenset(("<listcomp>", "<dictcomp>", "<setcomp>"))
_GENEXPR = "<genexpr>"


def user_calls(entries: list, own_file: str | None = None) -> list:
    """The user's frames of a call stack: ``entries`` are (code, line) innermost first (the
    error's own line first), out to the frame a kernbench launch called, the last. Returns
    (file, line, function name, code) of the first entry and every other in the user's code
    (is_user_code, ``own_file``, the kernel's, counting as the user's; without it, the last
    entry's file: library frames between, contextlib's, numpy's, are skipped, and so is a
    library's wrapper the launch called, functools.singledispatch's, past the kernel's frame)."""
    if not entries:
        return []
    own = own_file if own_file is not None else entries[-1][0].co_filename
    out = []
    for k, (co, line) in enumerate(entries):
        if k == 0 or is_user_code(co, own):
            out.append((co.co_filename, line, co.co_name, co))
    return out


def called_from(frames: list) -> str:
    """The text an error adds after its line when the tl call (or the raise) was in a function
    the kernel called: `` (in helper, called from kernel at k.py:7)``, "" when it was in the
    kernel itself. ``frames``: (file, line, function name[, code]) of the user's frames
    (:func:`user_calls`), innermost first (the first is the error's own line). A comprehension
    is the function it is written in (a generator expression too, when that function runs it);
    the same function calling from the same line in a row (recursion) is named once with its
    count; a chain still longer keeps its innermost callers and the outermost one."""
    # a comprehension is its function's; a generator expression too where that function runs it
    # (tuple(... for x in xs)), not where another function it was handed to does
    frames = [fr for fr, out in zip(frames[:-1], frames[1:])
              if fr[2] not in _COMPREHENSIONS and not (fr[2] == _GENEXPR and _runs_own(fr, out))] \
        + frames[-1:]
    if len(frames) < 2:
        return ""
    runs: list = []  # [caller, times]
    for fr in frames[1:]:
        key = (fr[3] if len(fr) > 3 else fr[2], fr[0], fr[1])  # (code when known: two lambdas differ)
        if runs and runs[-1][2] == key:
            runs[-1][1] += 1
        else:
            runs.append([fr, 1, key])
    parts = [f"{name} at {file_line(file, line)}" + (f" ({k} times)" if k > 1 else "")
             for (file, line, name, *_), k, _ in runs]
    if len(parts) > _CHAIN_MAX + 1:  # (a placeholder for two callers at least)
        hidden = sum(k for _, k, _ in runs[_CHAIN_MAX - 1:-1])
        parts = parts[:_CHAIN_MAX - 1] + [f"{hidden} more calls", parts[-1]]
    return f" (in {frames[0][2]}, called from " + ", from ".join(parts) + ")"


def _runs_own(gen: tuple, out: tuple) -> bool:
    """Whether generator expression ``gen`` runs in the function that wrote it (``out``, its
    caller: ``tuple(f(x) for x in xs)``), not in another it was handed to: its code is one of
    the caller's constants (its line, when the frames carry no code)."""
    if len(gen) > 3 and len(out) > 3:
        return any(c is gen[3] for c in out[3].co_consts)
    return out[:2] == gen[:2]


#: frames walked at most looking for the launch (past Python's default recursion limit)
_WALK_MAX = 10_000


def _frames_out(f, own_file: str | None = None) -> list:
    """:func:`user_calls` of the stack from frame ``f`` out to the launch that runs the kernel
    (the first frame of kernbench's own code): (file, line, function name, code), innermost
    first; the stack out to its end when no launch is on it."""
    entries = []
    while f is not None and len(entries) < _WALK_MAX:
        co = f.f_code
        if entries and _user_file(co.co_filename) == -1:
            break
        entries.append((co, line_of(f)))
        f = f.f_back
    return user_calls(entries, own_file)


#: id(code) + instruction offset -> (code, offset, line). A live code object holds its bytecode
#: inline, so the keys of live code objects never collide; an entry of a dead one is caught by
#: the identity check.
_LINES: dict = {}


#: id(code) -> (code, start offsets of its line table's ranges, their lines): a function's
#: line table read once a trace (a review: a generated kernel of N distinct lines traced in
#: N**2, each first call scanning the table from the start for its line)
_TABLES: dict = {}


def line_of(f) -> int:
    """``f.f_lineno``, cached: Python finds a frame's line by scanning its code's line table
    from the start, which in a long kernel function costs more than the rest of a tl call; an
    offset not seen yet is looked up in the table read once (``co_lines``, by bisection)."""
    co = f.f_code
    i = f.f_lasti
    e = _LINES.get(id(co) + i)
    if e is not None and e[0] is co and e[1] == i:
        return e[2]
    t = _TABLES.get(id(co))
    if t is None or t[0] is not co:
        ranges = list(co.co_lines())
        t = _TABLES[id(co)] = (co, [a for a, _, _ in ranges], [ln for _, _, ln in ranges])
    k = bisect.bisect_right(t[1], i) - 1
    line = t[2][k] if k >= 0 else None
    if line is None:  # (an offset of no line: Python's own answer)
        line = f.f_lineno
    if len(_LINES) >= 1 << 16:
        _LINES.clear()
    _LINES[id(co) + i] = (co, i, line)
    return line


def forget_lines() -> None:
    """Drop the line caches (and with them the code objects they hold): called after each
    trace."""
    _LINES.clear()
    _TABLES.clear()
    _GROWS.clear()


#: (id(code), offset) -> (code, _collects's answer), for a trace (forget_lines drops it)
_GROWS: dict = {}
#: what a comprehension adds its element with, each iteration
_COLLECT_OPS = frozenset({"LIST_APPEND", "SET_ADD", "MAP_ADD"})

def loop_grows(f) -> bool:
    """Whether the ``for`` loop frame ``f`` is advancing (its FOR_ITER at ``f.f_lasti``) is a
    list, set or dict comprehension's, which collects one element per iteration run: tl.range
    replay cannot move such a container on (docs/language.md, 'tl.range'), so the loop is
    traced in full. (Not a list the body grows with ``append``: a body may append anything, an
    observer's record of the iterations run among them; nor a generator's loop, whose consumer
    may keep every iteration's, ``tuple(...)``, or not, a kernel's pipeline: verify mode finds
    those.)"""
    co = f.f_code
    if co.co_name in _COMPREHENSIONS:
        return True
    if sys.version_info < (3, 12):  # (3.11: a comprehension is a function of its own, above)
        return False
    at = loop_offset(f)
    e = _GROWS.get((id(co), at))  # (3.12 inlines comprehensions, PEP 709: read the
    if e is None or e[0] is not co:  # loop's code once a trace)
        e = _GROWS[(id(co), at)] = (co, _collects(co, at))
    return e[1]


def _collects(co, at: int) -> bool:
    """Is the ``for`` loop whose FOR_ITER is at offset ``at`` of ``co`` an inlined
    comprehension's? Its body ends adding the element to the container held under the
    iterator: LIST_APPEND, SET_ADD or MAP_ADD of a depth of 2 or more, right before the jump
    back to ``at``. (A list display's ``LIST_APPEND 1``, `(*lead, T)`, in a loop's body is not:
    a review found such a body's loop traced in full.)"""
    ins = list(dis.get_instructions(co))
    j = next((j for j, x in enumerate(ins) if x.offset == at), None)
    if j is None or ins[j].opname != "FOR_ITER":  # (not a for loop: list(tl.range(n)), next())
        return False
    x = ins[j]
    heads = _heads(ins, j)
    last = None
    for k in range(j + 1, len(ins)):
        y = ins[k]
        if y.offset >= x.argval:  # (the loop's end: where FOR_ITER jumps)
            break
        if y.opname.startswith("JUMP_BACKWARD") and y.argval in heads:
            last = k  # the loop's jump back (its last one, after any `continue`'s)
    if last is None:
        return False
    y = ins[last - 1]
    return y.opname in _COLLECT_OPS and y.arg >= 2


#: id(code) -> (a weak reference to the code, {offset: _live_in's answer}, the offsets of its
#: FOR_ITERs): a pure function
#: of the code, kept while the code lives (a kernel redefined in a notebook drops its entry).
#: Keyed by id, not by the code: hashing a code object hashes its constants, nested
#: functions' code included, every time (a WeakKeyDictionary cost 40 us a loop)
_CARRIED: dict = {}
#: what reads a variable of the frame (3.13's pairs: argval is a tuple of two names); what
#: replaces or deletes one. LOAD_FAST_AND_CLEAR (3.12's inlined comprehension) saves a
#: variable it restores after its loop: with that restore, neither (_live_in's `through`),
#: else a read; LOAD_CLOSURE is one (a lambda or generator expression made in the body reads the cell). *_NAME: a
#: loop at a module's or class's top level, whose variables are its namespace's
_READ_OPS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR", "LOAD_DEREF",
                       "LOAD_CLASSDEREF", "LOAD_FROM_DICT_OR_DEREF", "LOAD_FAST_LOAD_FAST",
                       "LOAD_NAME", "LOAD_CLOSURE"})
_WRITE_OPS = frozenset({"STORE_FAST", "STORE_DEREF", "DELETE_FAST", "DELETE_DEREF",
                        "STORE_FAST_STORE_FAST", "STORE_NAME", "DELETE_NAME"})
#: a global's, under a name no variable can have ("global x")
_GLOBAL_READS = frozenset({"LOAD_GLOBAL"})
_GLOBAL_WRITES = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})
GLOBAL = "global "
#: instructions after which the next one does not run
_ENDS = frozenset({"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP_ABSOLUTE",
                   "JUMP", "JUMP_NO_INTERRUPT", "RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS",
                   "RERAISE"})
_JUMP_OPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)


def loop_carried(f) -> tuple:
    """The variables the body of the ``for`` loop that frame ``f`` is advancing (its FOR_ITER at
    ``f.f_lasti``) may take from the iteration before: those it reads before it assigns them on
    some path through one iteration (:func:`_live_in`: a pointer advanced with ``+=``, a
    counter, a running width, a list it appends to; and the tensor handles carried, an
    accumulator), a global it reads and it or code nested in it assigns (``"global x"``),
    and the frame's cells that functions nested in it use and the body does not assign (a
    closure's ``nonlocal`` count, a comprehension's ``:=``, a helper's list). tl.range replay,
    which skips the body's Python, checks that those other than handles stay the same from
    iteration to iteration (loops.py). () when ``f`` is not at a FOR_ITER (``next()`` by
    hand)."""
    co = f.f_code
    e = _code_entry(co)
    at = _loop_at(e, f.f_lasti)
    names = e[1].get(at)
    if names is None:
        names = e[1][at] = _live_in(co, at)
    return names


def settable_local(f, name: str) -> bool:
    """Whether :func:`set_locals` can set variable ``name`` of frame ``f``: a plain local of a
    function's frame (not a global, nor a cell that nested functions share)."""
    co = f.f_code
    return bool(co.co_flags & _CO_OPTIMIZED) and name in co.co_varnames and name not in co.co_cellvars


def set_locals(f, values: dict) -> None:
    """Set local variables of the running function frame ``f`` (each :func:`settable_local`):
    tl.range replay moves on the ints its body steps (loops.py). Python 3.13 writes through
    ``f_locals`` (PEP 667); before it ``f_locals`` is a copy, written back with the C API's
    ``PyFrame_LocalsToFast``, as debuggers set a variable, and emptied again after (it would keep
    every variable alive as long as the frame: loops._py_state)."""
    loc = f.f_locals
    for k, v in values.items():
        loc[k] = v
    if type(loc) is dict:  # (3.11, 3.12)
        _LOCALS_TO_FAST(f, 0)
        if sys.getrefcount(loc) <= FRAME_LOCALS_OWN_REFS:  # (not a `locals()` the kernel keeps)
            loc.clear()


def _locals_to_fast():
    if sys.version_info >= (3, 13):
        return None
    import ctypes

    fn = ctypes.pythonapi.PyFrame_LocalsToFast
    fn.argtypes, fn.restype = (ctypes.py_object, ctypes.c_int), None
    return fn


_CO_OPTIMIZED = 1  # (inspect.CO_OPTIMIZED: a function's frame, whose locals are fast slots)


def _refs_of_a_local() -> int:
    """``sys.getrefcount`` of an object one local variable holds: 2 interpreted (the variable
    and the call's argument), 1 compiled (Cython lends a call its arguments)."""
    x = object()
    return sys.getrefcount(x)


#: the references to a function frame's ``f_locals`` dict (3.11, 3.12) when only the frame and
#: one local of its reader hold it, in this build: more, and the kernel keeps it (`L =
#: locals()`, `box = [locals()]`: a review found the compiled build's count one short, and the
#: dict a kernel kept in a list emptied)
FRAME_LOCALS_OWN_REFS = _refs_of_a_local() + 1
_LOCALS_TO_FAST = _locals_to_fast()


def loop_offset(f) -> int:
    """The offset of the FOR_ITER that frame ``f`` is advancing: ``f.f_lasti``, or the
    instruction before it when that is a FOR_ITER (Python 3.12 leaves ``f_lasti`` one past a
    FOR_ITER it specialised for a generator, FOR_ITER_GEN: the pure-Python build's tl.range)."""
    return _loop_at(_code_entry(f.f_code), f.f_lasti)


def _code_entry(co) -> tuple:
    """``co``'s entry in _CARRIED: (a weak reference to it, {offset: variables}, its FOR_ITERs'
    offsets)."""
    e = _CARRIED.get(id(co))
    if e is None or e[0]() is not co:
        key = id(co)
        fors = frozenset(x.offset for x in dis.get_instructions(co) if x.opname == "FOR_ITER")
        e = _CARRIED[key] = (weakref.ref(co, lambda _, key=key: _CARRIED.pop(key, None)), {}, fors)
    return e


def _loop_at(e: tuple, lasti: int) -> int:
    return lasti if lasti in e[2] or lasti - 2 not in e[2] else lasti - 2


def _heads(ins: list, j: int) -> set:
    """The offsets a jump back to the FOR_ITER ``ins[j]`` may name: its own and its EXTENDED_ARG
    prefixes' (a loop whose body is longer than 255 code units jumps back to the first)."""
    heads = {ins[j].offset}
    while j > 0 and ins[j - 1].opname == "EXTENDED_ARG":
        j -= 1
        heads.add(ins[j].offset)
    return heads


def _live_in(co, at: int) -> tuple:
    """:func:`loop_carried` of the loop whose FOR_ITER is at offset ``at`` of ``co``, computed
    from the bytecode: a backward liveness analysis over one iteration, the instructions from
    the FOR_ITER to its last jump back (its EXTENDED_ARG prefixes included: a body longer than
    255 code units) and the exception handlers they reach (a value read in an ``except``).
    Reaching the FOR_ITER (the iteration's end), or leaving those instructions by a jump or a
    fall (a break, a return: what follows the loop is no iteration's), nothing is live."""
    ins = list(dis.get_instructions(co))
    index = {x.offset: n for n, x in enumerate(ins)}
    j = index.get(at)
    if j is None or ins[j].opname != "FOR_ITER":
        return ()
    heads = _heads(ins, j)
    last = None
    for k in range(j + 1, len(ins)):
        if ins[k].opname.startswith("JUMP_BACKWARD") and ins[k].argval in heads:
            last = k
    if last is None:
        return ()
    try:
        table = [(e.start, e.end, e.target) for e in dis._parse_exception_table(co)]
    except Exception:  # (a Python without it: handlers not followed)
        table = []
    # a try around the whole loop (its FOR_ITER inside) leaves the loop: not followed (its
    # handler and what follows it are no iteration's)
    around = {t for s0, e0, t in table if s0 <= at < e0}
    table = [(s0, e0, t) for s0, e0, t in table if t not in around]
    hi = ins[last].offset

    def successors(n: int, handler: bool):
        """(index or None for the iteration's end / the loop's exit, is a handler's) of the
        instructions that may run after ins[n]"""
        x = ins[n]
        out = []
        normal = []
        if x.opname not in _ENDS and n + 1 < len(ins):
            normal.append(ins[n + 1].offset)
        if x.opcode in _JUMP_OPS and isinstance(x.argval, int):
            normal.append(x.argval)
        for t in normal:
            if t in heads:
                continue
            inside = at < t <= hi
            if inside:
                out.append((index[t], False))
            elif handler:
                out.append((index[t], True))
        for s0, e0, t in table:
            if s0 <= x.offset < e0 and t in index:
                out.append((index[t], not (at < t <= hi)))
        return out

    # the instructions of one iteration, and whether each is reached as a handler's (outside
    # the body's range, where a fall or jump stays the handler's)
    region = {j + 1: False}
    todo = [j + 1]
    edges = {}
    while todo:
        n = todo.pop()
        edges[n] = successors(n, region[n])
        for t, handler in edges[n]:
            if t not in region:
                region[t] = handler
                todo.append(t)
    # 3.12's inlined comprehension saves a variable it shadows (LOAD_FAST_AND_CLEAR) and
    # restores it after its loop (the first STORE_FAST of it past that loop's end): the pair
    # leaves the variable as it was, neither a read nor a write of the body's (a review: a
    # comprehension's `j` beside the body's own `j`, assigned after it, looked carried)
    through = set()
    for n in region:
        if ins[n].opname == "LOAD_FAST_AND_CLEAR":
            end = next((x.argval for x in ins[n + 1:] if x.opname == "FOR_ITER"), None)
            back = next((m for m in range(n + 1, len(ins)) if isinstance(end, int) and ins[m].offset > end
                         and ins[m].opname == "STORE_FAST" and ins[m].argval == ins[n].argval), None)
            if back is not None:
                through.update((n, back))
    live = dict.fromkeys(region, frozenset())
    written = set()
    order = sorted(region, reverse=True)
    changed = True
    while changed:
        changed = False
        for n in order:
            out = set()
            for t, _ in edges[n]:
                out |= live[t]
            new = frozenset(out if n in through else _transfer(ins[n], out, written))
            if new != live[n]:
                live[n], changed = new, True
    names = set(live[j + 1])
    cells, nested_globals = _nested_use(co)
    names = {x for x in names if not x.startswith(GLOBAL) or x in written or x in nested_globals}
    # cells a function nested in this one uses (`nonlocal`, a comprehension's `:=`, a helper
    # changing a list a cell holds): called from the body, it may change them between
    # iterations; those the body assigns itself are its own (above)
    names |= cells - written
    return tuple(sorted(names))


def _nested_use(co) -> tuple:
    """(the cells of ``co``, its own and those it shares with its enclosing function, that the
    functions, lambdas and comprehensions nested in it read or assign; the globals they
    assign, as "global x"), at any depth. (A sibling closure of the enclosing function's, or a
    module's function, is not seen.)"""
    cells, glob = set(), set()
    shared = set(co.co_cellvars) | set(co.co_freevars)
    todo = [c for c in co.co_consts if isinstance(c, types.CodeType)]
    while todo:
        c = todo.pop()
        free = set(c.co_freevars) & shared
        for x in dis.get_instructions(c):
            if x.opname in _DEREF_OPS and x.argval in free:
                cells.add(x.argval)
            elif x.opname in _GLOBAL_WRITES:
                glob.add(GLOBAL + x.argval)
        todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return cells, glob


_DEREF_OPS = frozenset({"LOAD_DEREF", "STORE_DEREF", "DELETE_DEREF", "LOAD_CLASSDEREF",
                        "LOAD_FROM_DICT_OR_DEREF", "LOAD_CLOSURE"})


def _transfer(x, live: set, written: set) -> set:
    """What is live before instruction ``x`` given ``live`` after it (and the variables and
    globals the loop assigns, gathered in ``written``)."""
    op = x.opname
    names = x.argval if isinstance(x.argval, tuple) else (x.argval,)
    if op == "STORE_FAST_LOAD_FAST":  # (3.13: stores the first, then loads the second)
        # backwards: the load first, then the store (a comprehension's `for j in ...: j * T` is
        # STORE_FAST_LOAD_FAST (j, j): j read only after this store, so not live before it)
        live.add(names[1])
        live.discard(names[0])
        written.add(names[0])
    elif op in _WRITE_OPS:
        live.difference_update(names)
        written.update(names)
    elif op in _READ_OPS:
        live.update(names)
    elif op in _GLOBAL_WRITES:
        live.discard(GLOBAL + names[0])
        written.add(GLOBAL + names[0])
    elif op in _GLOBAL_READS:
        live.add(GLOBAL + names[0])
    return live


def kernel_error(tr, message: str, where: tuple | None = None, cls=KernelError) -> KernelError:
    """A KernelError naming ``tr``'s PE as (pe, cube) and the kernel line: ``where`` (file, line),
    else the tl call's (:func:`site`). When that line is the one running (a tl call's, a tl.range
    loop's) in a function the kernel called, the message names the calls that led there too
    (:func:`called_from`); ``where`` stays the innermost line."""
    head, pe, file, line = _site_named(tr, where)
    # (a Python int of hundreds of digits, as an operand, a shape or an axis: its first six)
    message = _LONG_DIGITS.sub(_digits_shown, message)
    return cls(f"{head}: {message}", pe=pe, where=file_line(file, line, full=True))


def site_named(tr) -> str:
    """``PE (p, c) at k.py:7 (in helper, called from kernel at k.py:12)``: ``tr``'s PE and the
    kernel line running now, as :func:`kernel_error` names them (a warning's head)."""
    return _site_named(tr, None)[0]


def user_line(own) -> tuple:
    """(frame, (file, line)) of the innermost frame of the user's code running now: out of a
    library's frames (heapq's, numpy's, a dataclass's generated __eq__) that called tl, to the
    kernel's line that called them; ``own`` is the kernel's file (PEBuilder.kernel_file)."""
    f = site_frame()
    g = f
    while g is not None and not is_user_code(g.f_code, own):
        g = None if _user_file(g.f_code.co_filename) == -1 else g.f_back  # (kernbench: none)
    if g is not None:
        f = g
    return f, ("<unknown>", 0) if f.f_code.co_filename in _INTERNAL else (f.f_code.co_filename, line_of(f))


def _site_named(tr, where: tuple | None) -> tuple:
    """(:func:`site_named`'s text for ``where``, else the running line; pe; file; line)."""
    own = getattr(tr, "kernel_file", None)
    f, here = user_line(own)
    if where is None:
        where = here
    chain = called_from(_frames_out(f, own)) if tuple(where) == here else ""
    file, line = where
    pe = (tr.pe, tr.cube)
    return f"{pe_at(pe, file, line)}{chain}", pe, file, line


#: a run of more digits than any size or value a message names for itself or a kernel means
#: (2**127 has 39): the number shown by its first six digits and its length
_LONG_DIGITS = re.compile(r"\d{41,}")


def _digits_shown(m) -> str:
    return f"{m.group()[:6]}... ({len(m.group())} digits)"


def fail(tr, message: str) -> NoReturn:
    """Raise the KernelError for ``message`` at the kernel's current line (and the calls that
    led there: :func:`kernel_error`)."""
    raise kernel_error(tr, message)


# -- values -----------------------------------------------------------------------------------
class TransposedView(TensorHandle):
    """A handle that reads its buffer with the last two axes swapped (made by ``tl.trans``).

    Same ``id`` as the buffer, no command, no cost. A view made from it with the
    ``TensorHandle(...)`` constructor is a plain reshape of the buffer again."""

    __slots__ = ()


def fmt_shape(shape) -> str:
    """(64,128) / (64,): shapes as error messages and labels print them."""
    return "(" + ",".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


_fmt = fmt_shape


def check_dtype(tr, d, what: str = "dtype", allow_bool: bool = False) -> str:
    """Canonical storage dtype or a KernelError naming what is allowed."""
    table = DTYPES  # (typed dict in semantic.pxd: .get is then a C call, not a method lookup)
    name = table.get(d) if type(d) is str else None
    if name is not None:
        return name
    if allow_bool and ((isinstance(d, str) and str(d).lower() == "bool") or d is bool or d is np.bool_):
        return "bool"  # (not d == "bool": a handle's == is a tl call, an array's has no truth)
    name = dtype_name(d)
    if name is None or (name == "bool" and not allow_bool):
        if name == "bool" or d is bool or (type(d) is str and d.lower() in ("bool", "int1")):
            mask = " (a mask is what a comparison returns: x != 0, not a cast or a fill)"
        else:  # (Triton's other types, "int64": porting's hint, as tl.int64 gets)
            hint = tl_hint(d.lower()) if type(d) is str else ""
            mask = "." + hint if hint else ""
        fail(tr, f"unknown {what} {d!r}: expected one of {', '.join(STORAGE_DTYPES)}"
                 f"{', or bool (a mask sent with tl.send)' if allow_bool else ''}{mask}")
    return name


#: Most elements a tensor may have: its bytes (8 per element at most) stay within what the
#: engine's counters represent (2**40 bytes per tensor).
MAX_ELEMENTS = 1 << 37
#: most multiply-adds one dot may take: the engine's bound on M * N * K
MAX_DOT_VOLUME = ENGINE_MAX_VOLUME
#: The most axes a shape or view may have: numpy 1.x's limit (2.x allows 64), so functional
#: replay never meets numpy's own refusal, and timing mode refuses what functional mode would.
MAX_NDIM = 32


def check_shape(tr, shape, what: str = "shape") -> tuple:
    """A shape as a tuple of positive ints (an int n means (n,)), at most MAX_ELEMENTS elements."""
    if type(shape) is tuple:
        n = 1
        for d in shape:
            if type(d) is not int or d < 1:
                break
            n *= d
        else:
            if shape and n <= MAX_ELEMENTS and len(shape) <= 32:  # (MAX_NDIM: a literal is a C compare)
                return shape
    return _check_shape_slow(tr, shape, what)


def _check_shape_slow(tr, shape, what: str) -> tuple:
    """check_shape for anything but a tuple of ints within bounds (its generators would make
    check_shape a closure, which a C call cannot be)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_, np.timedelta64)):
        shape = (shape,)
    try:
        ok = not isinstance(shape, NOT_EXTENTS)
        out = tuple(int(d) for d in shape) if ok else ()
        ok = ok and len(out) > 0 and all(d >= 1 and isinstance(s, (int, np.integer))
                                         and not isinstance(s, (bool, np.bool_, np.timedelta64))
                                         for d, s in zip(out, shape))
    except (TypeError, ValueError, OverflowError):  # (OverflowError: int(inf))
        ok = False
    if not ok:
        odd = next((f" (element {i} is {_not_int(s)}, not an int)" for i, s in enumerate(shape)
                    if not isinstance(s, (int, np.integer)) or isinstance(s, (bool, np.bool_, np.timedelta64))),
                   "") if isinstance(shape, (tuple, list)) else ""
        fail(tr, f"{what} must be a non-empty tuple of positive ints, got {shape!r}{odd}")
    if len(out) > MAX_NDIM:
        fail(tr, too_many_axes(what, len(out)))
    if numel(out) > MAX_ELEMENTS:
        fail(tr, f"{what} {_fmt(out)} has {numel(out)} elements: a tensor holds at most 2**37 "
                 f"elements (2**40 bytes at 8 bytes each, whatever its dtype)")
    return out


def too_many_axes(what: str, ndim: int) -> str:
    """The refusal of a shape or view of more than MAX_NDIM axes."""
    return (f"{what} has {ndim} axes: a tensor has at most {MAX_NDIM} (numpy 1.x's limit, which "
            f"functional replay computes with)")


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def foreign(tr, h, what: str) -> str:
    """Why handle ``h`` (whose id is not this PE's) cannot be used here."""
    i = h.id
    here = (tr.pe, tr.cube)
    if isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.timedelta64)) and i >= 0:
        serial, pe, cube, local = id_owner(int(i))
        hw = getattr(tr.memory, "hw", None)
        # (a PE this machine has not, as h.id + 2**48 decodes, is named as made by no tl call, not
        # as PE (65537, 0)'s tensor: a review)
        mine = hw is None or (pe < hw.pes_per_cube and cube < hw.n_cubes)
        if serial == tr.serial and (pe, cube) != here and mine:
            return (f"{what} is a tensor of {pe_label((pe, cube))} (its tensor #{local}), not of "
                    f"this {pe_label(here)}: a handle belongs to the program that made it (kept in a closure or a "
                    f"global, it still names the other PE's SRAM); send it with tl.send/tl.recv "
                    f"or compute it on this PE")
        # (an id no machine can have made, as h.id - 1 of a PE's tensor #0 decodes, is named as
        # made by no tl call, not as another launch's PE (16777215, 16777215): a review)
        if (0 < serial < tr.serial and pe < KEY_BOUNDS["pes_per_cube"][1]
                and cube < KEY_BOUNDS["n_cubes"][1]):
            return (f"{what} is a tensor of another launch (an earlier one, or one whose kernel "
                    f"started this launch; made on {pe_label((pe, cube))}, its tensor #{local}), "
                    f"used on {pe_label(here)} of this launch: handles live as long as their "
                    f"launch and are used in it; pass data between launches through device memory")
    n = len(tr.tensors)
    return (f"{what} is a TensorHandle with id {i!r}, which no tl call on this PE made "
            f"(this {pe_label(here)} has {n} tensors); handles belong to the program that made them")


class ReplayedPast(tuple):
    """The shape of a tensor tl.range replay has moved past (one of the two iterations that
    proved the loop), in its table entry: equal to the shape, but not the tuple a handle tl made
    holds, so an operand naming the tensor leaves the fast paths (``is``) for
    semantic.operand_slow, which refuses it. Only a handle replay could not move on names such
    a tensor: one not made by a tl call (copy.copy, dataclasses.replace, pickle) inside the
    loop. ``loop``: the tl.range's (file, line)."""

    def __new__(cls, shape, loop):
        self = super().__new__(cls, shape)
        self.loop = loop
        return self

    def __reduce__(self):
        return (ReplayedPast, (tuple(self), self.loop))



def operand_slow(tr, h, what: str):
    """PEBuilder.operand for views, transposed views and bad values: the checks and their
    errors, naming the operand ``what``."""
    if tr.finished:
        program_ended(tr)
    if not isinstance(h, TensorHandle):
        fail(tr, f"{what} must be a tensor (a TensorHandle from a tl call), got {type(h).__name__} {h!r}")
    tensors = tr.tensors
    hid = h.id
    i = int(hid) - tr.base if isinstance(hid, (int, np.integer)) and not isinstance(hid, (bool, np.timedelta64)) else -1
    if not 0 <= i < len(tensors):
        fail(tr, foreign(tr, h, what))
    s = h.shape
    buf = tensors[i][0]
    if type(buf) is ReplayedPast:
        fail(tr, f"{what} names tensor #{i}, made in an iteration of the tl.range loop at "
                 f"{file_line(*buf.loop[:2])} that proved the loop before replay "
                 f"emitted the next ones: this handle was not made by a tl call (a copy.copy, "
                 f"copy.deepcopy, dataclasses.replace or pickle of one, or TensorHandle(...)), so "
                 f"replay could not move it on to the last iteration's tensor. Carry the handle a "
                 f"tl call returned (or a view of it) across iterations, or launch with "
                 f"replay='off' (docs/language.md, 'tl.range')")
    if s is not buf and not _equal_shape(s, buf):  # a view: its shape is the kernel's, checked
        s = check_shape(tr, s, f"{what} (a view of tensor #{i}): shape")
    elif s is not buf:  # equal (a copy, a tuple subclass, numpy ints): the buffer's own tuple
        s = buf
    _, dtype, nbuf = tensors[i]
    n = numel(s)
    if n != nbuf and tr.functional:
        fail(tr, f"{what} is a view of tensor {i} with shape {_fmt(s)} ({n} elements), "
                 f"but its buffer is {_fmt(buf)} ({nbuf} elements): in functional mode a "
                 f"view must keep the element count (timing mode accepts it)")
    trans = isinstance(h, TransposedView)
    if trans and (i, s) not in tr.transposed:
        fail(tr, f"{what} is a transposed view of tensor #{i} given the shape {_fmt(s)}, which "
                 f"tl.trans did not make: a transposed view cannot be reshaped (its data would "
                 f"have to move); reshape before tl.trans, or store and reload")
    if s == buf and not trans:
        return i, s, dtype, i, n
    return (i, s, trans), s, dtype, i, n


def _equal_shape(s, buf: tuple) -> bool:
    """Whether ``s`` is ``buf`` written another way: a tuple (or tuple subclass) of ints or
    numpy integers, equal element by element. Anything else (a list, a numpy array, an int
    subclass whose ``==`` says what it likes: a review's view taken as its buffer's shape) is
    "not equal", so check_shape checks it and words the refusal. Compared as plain ints, no
    ``__eq__`` of the kernel's objects runs."""
    if not isinstance(s, tuple) or len(s) != len(buf):
        return False
    for x in s:
        if type(x) is not int and not isinstance(x, np.integer):
            return False
    return tuple([int(x) for x in s]) == buf


def program_ended(tr):
    """Raise the KernelError of a tl call on PE ``tr``'s program after it ended (its tables are
    gone): from a callback or a generator run as the kernel returned."""
    fail(tr, "this tl call comes after this PE's program ended (from a callback or a "
             "generator run as the kernel returned): tl calls belong in the kernel's own run")


def is_scalar(x) -> bool:
    return (isinstance(x, (int, float, np.integer, np.floating))
            and not isinstance(x, (TensorHandle, np.timedelta64)))


def broadcast(tr, a: tuple, b: tuple, op: str) -> tuple:
    """Numpy broadcasting of two shapes, or a KernelError showing both."""
    if a == b:
        return a
    out = _BROADCAST.get((a, b))
    if out is not None:
        return out
    out = _broadcast(tr, a, b, op)
    if len(_BROADCAST) < 4096:  # a kernel uses a handful of shape pairs, again and again
        _BROADCAST[(a, b)] = out
    return out


_BROADCAST: dict = {}


def _broadcast(tr, a: tuple, b: tuple, op: str) -> tuple:
    la, lb = len(a), len(b)
    n = la if la > lb else lb
    a2 = (1,) * (n - la) + a
    b2 = (1,) * (n - lb) + b
    out = []
    for x, y in zip(a2, b2):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            fail(tr, f"{op}: shapes {_fmt(a)} and {_fmt(b)} do not broadcast (axis sizes must be "
                     f"equal or 1, from the right)")
    return tuple(out)


def axis_of(tr, axis, ndim: int, op: str) -> int:
    """A reduction axis in 0..ndim-1 (negative counts from the end)."""
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.timedelta64)) and -ndim <= axis < ndim:
        return int(axis) % ndim
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.timedelta64)):
        fail(tr, f"{op}: axis must be an int in [{-ndim}, {ndim - 1}] or None, got {_not_int(axis)}")
    fail(tr, f"{op}: axis {axis!r} is out of range for a {ndim}-D tensor: expected an int in "
             f"[{-ndim}, {ndim - 1}] or None")


def _not_int(x) -> str:
    """How a message names a value that is not an int where one is expected: its type and
    value (an ml_dtypes int4 prints like an int)."""
    t = type(x)
    name = t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"
    return f"{name} {x!r}"


def dot_shapes(tr, a: tuple, b: tuple) -> tuple:
    """(M, N, K) of a 2-D dot, or a KernelError with both shapes."""
    if len(a) != 2 or len(b) != 2:
        fail(tr, f"dot takes 2-D tensors, got {_fmt(a)} x {_fmt(b)}")
    if a[1] != b[0]:
        fail(tr, f"dot shape mismatch: {_fmt(a)} x {_fmt(b)}; expected b.shape[0] == a.shape[1] "
                 f"= {a[1]}, got {b[0]}")
    m, n, k = a[0], b[1], a[1]
    # (the result is a tensor as any: at most MAX_ELEMENTS; the engine times at most 2**50
    # multiply-adds a command, and refused more only after tracing, without PE or line)
    if m * n > MAX_ELEMENTS:
        fail(tr, f"dot {_fmt(a)} x {_fmt(b)}: its ({m},{n}) result has {m * n:,} elements, more "
                 f"than a tensor's 2**37: split the dot into blocks")
    if m * n * k > MAX_DOT_VOLUME:
        fail(tr, f"dot {_fmt(a)} x {_fmt(b)}: {m * n * k:,} multiply-adds (M * N * K), more than "
                 f"one GEMM command's 2**50: split the dot into blocks")
    return m, n, k


def float_operand(tr, dtype: str, op: str, what: str) -> None:
    if dtype not in _RANK:
        kind = "a bool mask" if dtype == "bool" else "an int32 tensor"
        # (f32, not f16: an integer matmul's operands past 2048 round in f16, silently; a review)
        fail(tr, f"{op}: {what} is {kind}; {op} takes float tensors (cast first: "
                 f"tl.cast(x, 'f32'), exact for integers up to 2**24; f16 up to 2048)")


# -- device memory ----------------------------------------------------------------------------
#: device addresses lie below this (allocations: 2**40 bytes each, never reused)
_ADDRESS_TOP = 1 << 62


def _reaches(alloc, ptr: int, shape: tuple, stride, mask) -> bool:
    """Does a masked access at ``ptr`` (before ``alloc``) let an element of ``alloc`` in (mask
    None: unknown at trace; does the tile reach into ``alloc``)?"""
    off = ptr - alloc.addr
    if off % alloc.itemsize:
        return False
    try:
        if mask is None:
            idx = element_indices(off // alloc.itemsize, shape, stride)
        else:
            idx = masked_access(alloc, off // alloc.itemsize, shape, stride, mask)[0]
    except (TypeError, ValueError):  # (a bad stride or mask: refused below)
        return False
    return bool(((idx >= 0) & (idx < alloc.numel)).any())


def region(tr, ptr, shape: tuple, dtype: str | None, stride, verb: str, masked: bool = False,
           mask_value=None):
    """Check a load/store at ``ptr`` -> (allocation, element offset, dtype, row stride or None).

    The access must start inside an allocation, on an element boundary, and end inside it. A
    masked access may reach past the end (and start in the guard gap after its allocation, or
    up to 4 KiB before it: DeviceMemory.near; ``mask_value``, the mask when known at trace,
    says which when both):
    :func:`check_masked` bounds its unmasked elements when the mask is known at trace, replay
    otherwise."""
    if isinstance(ptr, TensorHandle):
        fail(tr, f"{verb}: the pointer is a tensor ({ptr.dtype} {fmt_shape(ptr.shape)}): kernbench has "
                 f"no pointer tensors; pass the base address (an int: the array plus a byte offset) "
                 f"with shape= (and stride=, mask=) for the tile (docs/language.md, 'Porting from "
                 f"Triton')")
    if not isinstance(ptr, (int, np.integer)) or isinstance(ptr, (bool, np.timedelta64)):
        addr = getattr(ptr, "addr", None)
        if isinstance(ptr, np.ndarray):  # host data passed where device memory was meant
            fail(tr, f"{verb}: pointer must be an int byte address (a device array or ptr + "
                     f"offset), got a numpy array {fmt_shape(ptr.shape)} {ptr.dtype}: place it on "
                     f"the device first (ctx.shard, ctx.replicate or ctx.put) and pass what that "
                     f"returns")
        if addr is None:
            r = repr(ptr)
            fail(tr, f"{verb}: pointer must be an int byte address (a device array or ptr + "
                     f"offset), got {type(ptr).__name__} {r if len(r) <= 80 else r[:77] + '...'}")
        if not isinstance(addr, (int, np.integer)) or isinstance(addr, (bool, np.timedelta64)):
            fail(tr, f"{verb}: pointer {type(ptr).__name__} has an addr that is not an int: {addr!r}")
    if type(ptr) is not int:
        # A device array (reaching a kernel as itself only inside a container or an object:
        # the launch turns the arrays it is passed into addresses) or a DevicePointer into
        # one: its Context is checked, and its timing-read flag follows the launch
        why = tr.memory.not_here(ptr)
        if why is not None:
            fail(tr, f"{verb}: {why}")
        tr.memory.used(ptr, tr.functional, tr.trace_store.reached)
        ptr = getattr(ptr, "addr", ptr)
    ptr = int(ptr)
    if not 0 <= ptr < _ADDRESS_TOP:
        fail(tr, f"{verb} at address {ptr:#x}: outside the device address space (0 .. 2**62)")
    alloc = tr.memory.find(ptr)
    if alloc is not None and masked and mask_value is not None:
        # (a block masked off that starts 4 KiB past its allocation's end, the end of the guard
        # gap, is on the next one's first byte: the one before's when no element of the next is
        # let in. A split-K's last block was refused as a load of the next array's dtype, or
        # taken as reading it, by that array's dtype: a review)
        prev = tr.memory.gap_owner(alloc, ptr)
        if (prev is not None and not _reaches(alloc, ptr, shape, stride, mask_value)
                and not (dtype is not None and dtype == alloc.dtype != prev.dtype)):
            # (a load naming the dtype of the allocation it starts on, not the one before's:
            # that one's, a tail block masked off whole at its own array's first byte; a
            # fuzzer found it refused as a load of the array before's dtype)
            alloc = prev
    if alloc is None and masked:
        # Outside every allocation: past the end of the one before (a block masked off, as a
        # grid larger than the data makes) or just before the next (a halo). When both may
        # be, the next if the mask (known at trace) lets one of its elements in, else the one
        # before; with a mask known only in replay, the next if the tile reaches into it.
        # (An address cannot say which array it came from: a block masked off further out,
        # nearer another array, would take that array's dtype and cost; it is refused.)
        before, after = tr.memory.near(ptr)
        alloc = before
        if after is not None and _reaches(after, ptr, shape, stride, mask_value):
            alloc = after
    if alloc is None:
        fail(tr, f"{verb} at address {ptr:#x} is outside every device allocation "
                 f"({tr.memory.describe_near(ptr)}); allocate with ctx.empty/shard/replicate and "
                 f"pass the array (or its address + a byte offset)"
                 + (" (a masked access may start at most 4 KiB past the end of its allocation, "
                    "or before it when its mask lets an element of it in: a program whose whole "
                    "block lies past the data returns before its loads and stores)" if masked else ""))
    if dtype is None:
        dtype = alloc.dtype
    elif dtype != alloc.dtype:
        if verb.startswith("store"):
            fail(tr, f"{verb} of dtype={dtype} to allocation {alloc.name!r}, which holds {alloc.dtype}: "
                     f"the kernel's byte offsets assume {dtype} elements (a store converts its tensor "
                     f"to the allocation's dtype; pass an array of {dtype})")
        fail(tr, f"{verb} as {dtype} from allocation {alloc.name!r}, which holds {alloc.dtype}: "
                 f"expected dtype={alloc.dtype!r} (cast after loading instead)")
    isz = alloc.itemsize
    off = ptr - alloc.addr
    if off % isz:
        fail(tr, f"{verb} at byte offset {off} of allocation {alloc.name!r} is not on a {dtype} "
                 f"element boundary (a multiple of {isz} bytes; pointer offsets are bytes: "
                 f"ptr + {isz} * i for element i)")
    e0 = off // isz
    n = numel(shape)
    if stride is None:
        end = e0 + n
    else:
        if len(shape) != 2:
            fail(tr, f"{verb}: stride= needs a 2-D (rows, cols) shape, got {_fmt(shape)}")
        # A masked tile may be wider than its stride (a power-of-two block over a narrow
        # matrix): the columns past the row are masked off, so rows never overlap where read.
        lo = 1 if masked else shape[1]
        if (not isinstance(stride, (int, np.integer)) or isinstance(stride, (bool, np.timedelta64))
                or not lo <= stride <= max(alloc.numel, shape[1])):
            fail(tr, f"{verb}: stride must be an int from {'1' if masked else f'the row length {lo}'} "
                     f"to the allocation's {alloc.numel} elements, got {stride!r}"
                     + ("" if masked else " (a masked tile may be wider than its stride)"))
        stride = int(stride)
        end = e0 + (shape[0] - 1) * stride + shape[1]
    if end > alloc.numel and not masked:
        fail(tr, f"{verb} of {_fmt(shape)} {dtype} at byte offset {off} runs outside allocation "
                 f"{alloc.name!r} ({alloc.nbytes} bytes = {alloc.numel} x {dtype}): it would reach "
                 f"element {end - 1}, the last is {alloc.numel - 1} (a smaller shape= or offset; for a "
                 f"ragged last tile, mask= the elements past the end)")
    return alloc, e0, dtype, stride


def element_indices(e0: int, shape: tuple, stride) -> np.ndarray:
    """Element index (into the allocation) of every element of a ``shape`` access at ``e0``
    (``stride``: elements between row starts of a 2-D tile, or None: contiguous)."""
    if stride is None:
        return np.arange(e0, e0 + numel(shape), dtype=np.int64).reshape(shape)
    return (e0 + np.arange(shape[0], dtype=np.int64)[:, None] * stride
            + np.arange(shape[1], dtype=np.int64)[None, :])


def masked_access(alloc, e0: int, shape: tuple, stride, mask: np.ndarray, store: bool = False) -> tuple:
    """(indices of the unmasked elements, the mask broadcast to ``shape``, None) of a masked
    access, or (..., the message) when an unmasked element lies outside ``alloc``, or (a
    ``store``) two unmasked elements of a tile wider than its stride are one element: which
    would win is the order of a tile's elements, not something a kernel should rest on. The one
    rule for both the trace-time check (known masks) and replay (the others)."""
    m = np.broadcast_to(mask if mask.dtype == np.bool_ else mask != 0, shape)
    idx = element_indices(e0, shape, stride)[m]
    bad = (idx < 0) | (idx >= alloc.numel)
    msg = None
    if bad.any():
        msg = (f"reaches element {int(idx[bad][0])} of allocation {alloc.name!r} ({alloc.numel} "
               f"elements) where the mask is true: only masked-off elements may lie outside the "
               f"allocation")
    elif store and stride is not None and stride < shape[1] and idx.size:
        u, counts = np.unique(idx, return_counts=True)
        if u.size != idx.size:
            msg = (f"writes element {int(u[counts > 1][0])} of allocation {alloc.name!r} twice where "
                   f"the mask is true: its rows ({shape[1]} columns, {stride} elements apart) overlap; "
                   f"mask off the columns past each row (e.g. cols < {stride})")
    return idx, m, msg


def check_masked(tr, alloc, e0: int, shape: tuple, stride, mask: np.ndarray, verb: str) -> None:
    """Every element of a masked access where the (known) ``mask`` is true lies inside
    ``alloc``, or a KernelError naming the first that does not."""
    # (a tile inside its allocation whatever the mask, its rows apart: nothing to read off the
    # mask; a masked store of a mask made before a loop cost 3.6x an unmasked one per command)
    if len(shape) == 1 or stride is None:
        span = numel(shape)
    elif len(shape) == 2 and stride >= shape[1]:
        span = (shape[0] - 1) * stride + shape[1]
    else:
        span = -1
    if span >= 0 and e0 >= 0 and e0 + span <= alloc.numel:
        return
    msg = masked_access(alloc, e0, shape, stride, mask, verb.startswith("store"))[2]
    if msg is not None:
        fail(tr, f"masked {verb} of {_fmt(shape)} {alloc.dtype} {msg}")


# -- links ------------------------------------------------------------------------------------
def port_of(tr, d, verb: str) -> int:
    """A link port with a neighbour under the installed SFR, or a KernelError."""
    table = PORT_INDEX  # (typed dict in semantic.pxd, as in check_dtype)
    p = table.get(d) if type(d) is str else None
    if p is None:  # (the rule: hw.sfr.parse_port)
        try:
            p = int(parse_port(d))
        except ValueError as e:
            fail(tr, f"{verb}: {e}")
    if tr.nbr[p] < 0:
        text = tr.sfr_text
        install = getattr(text, "install", None)  # (executor.SfrText: the install it describes)
        hint = "" if install is None else (
            f": {install.unwired_hint(p, tr.pe)} (ctx.install_sfr(scope, ring=...); kernbench run: "
            f"--sfr SCOPE [--ring]; docs/hardware-model.md)")
        fail(tr, f"{verb} on port {PORT_NAMES[p]}, which has no neighbour under the installed SFR "
                 f"({text}){hint}")
    return p


