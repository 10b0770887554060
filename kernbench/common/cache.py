"""The one on-disk cache of kernbench: sweep points, tuned configs, anything keyed by what made it.

A value is stored as JSON under a key: the SHA-256 of a canonical form of everything that
determines it (:func:`digest`). Features keep their entries apart by namespace:

    cache = DiskCache("sweep")
    key = digest("sweep-point", code_fingerprint(kernel), hw.to_dict(), args, options)
    row = cache.get(key)
    if row is None:
        row = compute(); cache.put(key, row)

The folder is ``$KERNBENCH_CACHE``, else ``$XDG_CACHE_HOME/kernbench``, else
``~/.cache/kernbench``; each namespace is a subfolder of it, each entry one file
``<namespace>/<key[:2]>/<key>.json``, written atomically (a reader sees the whole entry or none),
so processes and concurrent runs can share the folder. Delete the folder to clear it. An entry
holds its key and the SHA-256 of its value's JSON beside the value: one copied over another
(a symlink to another entry) or edited reads as a miss, not as the value of another key.

:func:`code_fingerprint` is the code part of a key: the source of a function's module and of
every user module it reaches (a global name, a submodule read as an attribute, ``cfg.sub.X``, an
``import`` inside a function, a module held in a closure cell, a default or data), followed over
the whole graph of user code however many hops away, the values it reaches the same way (a
partial's arguments, closure cells, defaults, a function's attributes, globals, the attributes of reached user modules
that user code names: plain data by value, the callables held in it by their code, a library's by
name), plus :func:`kernbench_fingerprint`, the hash of kernbench's own source and version.
Editing the kernel, a helper it calls in another file or holds in a dict, a constant it reads,
or kernbench itself gives new keys; installed third-party packages are not hashed. A value the
key cannot hold faithfully raises :class:`NotCanonical` (data nested deeper than
:data:`PLAIN_DEPTH`; with ``strict=True`` also an object keyed by its repr or class only): the
caller does not cache it, rather than serve another value's entry.
"""
from __future__ import annotations

import array
import collections
import dataclasses
import datetime
import decimal
import enum
import dis
import fractions
import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import math
import os
import pathlib
import re
import sys
import tempfile
import types
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LIBRARY_DIRS

__all__ = ["DiskCache", "cache_dir", "canonical", "digest", "code_fingerprint", "kernbench_fingerprint",
           "NotCanonical"]


def cache_dir() -> Path:
    """The cache's root folder (see the module docstring); not created here."""
    env = os.environ.get("KERNBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "kernbench"


class NotCanonical(TypeError):
    """A value a key cannot hold faithfully (:func:`canonical` with ``strict=True``,
    :func:`code_fingerprint`): whatever holds it is not cached, and a sweep point holding it
    shares no trace with another."""


def canonical(x: Any, strict: bool = False, class_codes: dict | None = None) -> Any:
    """``x`` as plain JSON data that is equal exactly when the values are: with ``strict`` a
    numpy scalar with its dtype (``np.float64(0.5)`` is not ``0.5``: code computes otherwise with
    it; without ``strict``, as the Python number), floats by their repr
    (NaN and inf too), tuples tagged apart from lists, sets from frozensets, dicts in their
    insertion order, sets by their elements, deques by their items and maxlen, arrays by dtype,
    shape and a hash of their bytes, dataclasses by their fields and other attributes, a
    subclass of those or of int, float, str (a namedtuple, an OrderedDict, an IntEnum member)
    with its class, an instance of a user class also with its class's :func:`code_fingerprint`
    (its methods are code the value runs), functions by :func:`code_fingerprint`, a container
    met again inside itself by how many levels up it is; any other object by its repr.

    ``strict``: raise :class:`NotCanonical` where the form could be the same for values that
    differ: an object whose repr need not show its state (only bytes, complex, ranges, enum
    members, paths, decimals, fractions, numpy dtypes, dates, times, timedeltas, timezones,
    UUIDs and Ellipsis are keyed by repr; a datetime with another tzinfo is refused), a module,
    a container subclass with attributes of its own, data nested deeper than
    :data:`PLAIN_DEPTH`, and in a callable's key what :func:`code_fingerprint` with
    ``strict=True`` refuses (what its code reads from globals is keyed as without ``strict``:
    by class, as for a target). ``class_codes``: a dict the caller keeps across calls for the
    user classes' fingerprints (a sweep keys every point's arguments: a class met at every
    point is fingerprinted once, not once a point)."""
    if strict:
        return _Walk(lambda walk, f: {"code": code_fingerprint(f, strict=True)}, _faithful_repr_key,
                     PLAIN_DEPTH, strict=True, on_class=_class_code(True, class_codes))(x)
    return _Walk(lambda walk, f: {"code": code_fingerprint(f)}, _repr_key,
                 on_class=_class_code(False, class_codes), dtypes=False)(x)


def digest(*parts: Any, strict: bool = False) -> str:
    """SHA-256 (hex) of the canonical form of ``parts``: a cache key. ``strict``: as for
    :func:`canonical` (raises :class:`NotCanonical`)."""
    text = json.dumps(canonical(list(parts), strict), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# -- code fingerprints ---------------------------------------------------------------------------
_PKG = Path(__file__).resolve().parent.parent  #: the kernbench package folder


def _package_files() -> tuple:
    """(path in the package, mtime in ns, size) of every file :func:`kernbench_fingerprint`
    reads: kernbench's .py/.pyx/.pxd/.toml files and its compiled extensions."""
    out = []
    for p in sorted(_PKG.rglob("*")):
        if "__pycache__" not in p.parts and (p.suffix in (".py", ".pyx", ".pxd", ".toml")
                                             or p.name.endswith(_EXTENSIONS)):
            try:
                st = p.stat()
            except OSError:  # (removed meanwhile)
                continue
            out.append((str(p.relative_to(_PKG)), st.st_mtime_ns, st.st_size))
    return tuple(out)


_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)
#: kernbench's files as this process imported them (this module is imported with kernbench):
#: what the code it runs was read from
_AT_IMPORT = _package_files()


def check_kernbench_files() -> None:
    """Raises :class:`NotCanonical` when kernbench's files on disk are not those this process
    imported (an edit, a rebuild, a reinstall since): its rows come from the code it runs, which
    neither the files' key nor the one before stands for. 3 ms for about 100 files' stats."""
    now = _package_files()
    if now != _AT_IMPORT:
        was, new = dict((f, m) for f, *m in _AT_IMPORT), dict((f, m) for f, *m in now)
        changed = sorted(f for f in set(was) | set(new) if was.get(f) != new.get(f))
        raise NotCanonical(f"kernbench's own files changed since this process imported it "
                           f"({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}): the code it "
                           f"runs is keyed by neither; restart Python to cache again")


@functools.lru_cache(maxsize=None)
def kernbench_fingerprint() -> str:
    """Hash of kernbench's version, its build kind (release or debug: a debug build runs its
    own checks, not a release build's cached rows), every .py/.pyx/.pxd/.toml file of the
    package and its compiled extensions: a cached result is never reused across a change of
    kernbench (engine, language, shipped kernels). Raises :class:`NotCanonical` when those
    files changed since this process imported kernbench (:func:`check_kernbench_files`: a
    review's process computed rows with the old code under the edited files' key)."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import _core

    check_kernbench_files()
    h = hashlib.sha256()
    try:
        h.update(version("kernbench").encode())
    except PackageNotFoundError:
        pass
    h.update(b"debug" if _core.DEBUG_BUILD else b"release")
    for f, _, _ in _AT_IMPORT:
        h.update(f.encode())
        h.update((_PKG / f).read_bytes())
    check_kernbench_files()  # (none changed while they were read)
    return h.hexdigest()


def _user_file(path: str | None) -> bool:
    """A file of the user's (hashed): not kernbench's (its own fingerprint covers it), not the
    standard library's or an installed package's."""
    if not path:
        return False
    p = os.path.normpath(os.path.abspath(path))
    if p.startswith(str(_PKG) + os.sep):
        return False
    return not p.startswith(LIBRARY_DIRS)


def _file_hash(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable:" + path


def _names(code: types.CodeType):
    yield from code.co_names
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _names(c)


_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})


def _global_names(code: types.CodeType):
    """The names ``code`` (and the code nested in it) reads or writes as globals, not as
    attributes: what cloudpickle ships of a function's globals when it pickles it by value."""
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_OPS:
            yield ins.argval
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _global_names(c)


#: nesting of data keyed by value: a value nested deeper cannot be keyed (:class:`NotCanonical`:
#: not cached); well inside the interpreter's recursion limit, which the walk recurses against
PLAIN_DEPTH = 64
#: callables held in a callable's state (its defaults and cells, a partial's arguments, an
#: object's attributes) are keyed with their own state to this depth, deeper ones by name
#: (and code): their own state is in the fingerprint anyway, each callable being visited in turn
#: (:func:`code_fingerprint`)
REF_DEPTH = 4
_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+")  #: a memory address in a repr (differs per process)
_CONTAINERS = (tuple, list, dict, set, frozenset, np.ndarray)
_PLAIN_SCALARS = (bool, int, float, str, bytes, np.generic)
_BUILTIN_CALLABLES = (types.BuiltinFunctionType, types.MethodWrapperType, types.MethodDescriptorType,
                      types.WrapperDescriptorType, types.ClassMethodDescriptorType, np.ufunc)
#: objects whose repr shows all they hold: keyed by it even with ``strict``
_FAITHFUL_REPR = (bytes, bytearray, complex, range, enum.Enum, pathlib.PurePath, decimal.Decimal,
                  fractions.Fraction, np.dtype, np.generic, datetime.date, datetime.time, datetime.timedelta,
                  datetime.timezone, type(Ellipsis), uuid.UUID)


class _Walk:
    """The walk behind :func:`canonical` and the values in :func:`code_fingerprint`: plain data
    by value, a container (tuple, list, dict, set, deque, object array, dataclass) met again
    inside itself as ``{"cycle": levels up}``, a callable by ``on_callable(walk, c)``, any other
    object by ``on_object(x)``; with ``limit``, what is nested deeper raises :class:`NotCanonical`.
    ``strict``: a value keyed by less than what it holds raises NotCanonical too. ``dtypes``: a
    numpy scalar keyed with its dtype (else as the Python number it converts to:
    :func:`canonical` without ``strict``). ``on_class``:
    called with the class of every value that is an instance of a user class (a dataclass, an
    enum member, a namedtuple subclass, an int subclass...): what it returns (not None: the
    class's :func:`code_fingerprint`) is in the value's key, its methods being code the value
    runs. ``stack`` holds the ids of the containers and callables being walked (never in a key)."""

    def __init__(self, on_callable, on_object, limit: int | None = None, strict: bool = False, on_class=None,
                 dtypes: bool = True):
        self.on_callable, self.on_object, self.limit, self.strict = on_callable, on_object, limit, strict
        self.on_class, self.dtypes = on_class, dtypes
        self.stack: list[int] = []
        self.callables = 0  #: how many of the stack are callables

    def inside(self, owner: Any, fn, callable_owner: bool = True) -> Any:
        """``fn()`` with ``owner`` on the stack (its state is being walked; ``callable_owner``:
        it counts towards REF_DEPTH)."""
        self.stack.append(id(owner))
        self.callables += callable_owner
        try:
            return fn()
        finally:
            self.stack.pop()
            self.callables -= callable_owner

    def __call__(self, x: Any) -> Any:
        t = type(x)
        if x is None or t is bool or t is str or t is int:
            return x
        if t is float:
            return x if math.isfinite(x) else {"float": repr(x)}
        key = self._key(x)
        if self.on_class is not None and not callable(x) and _user_class(t):
            code = self.on_class(t)
            if code is not None:
                key = {**key, "code": code} if isinstance(key, dict) else {"value": key, "code": code}
        return key

    def _key(self, x: Any) -> Any:
        if _attr(x, "__class__") is not type(x):
            # (a proxy or a Mock(spec=int): isinstance believes its __class__, and int.__int__
            # of it raised TypeError from inside the walk: a review). A wrapt decorator's
            # function, a proxy of a function it names as __wrapped__, is keyed as a callable,
            # as before (a Mock's attributes go on for ever: not walked)
            inner = _attr(x, "__wrapped__")
            if callable(x) and isinstance(inner, (types.FunctionType, types.MethodType, type)):
                return self.on_callable(self, x)
            raise NotCanonical(f"a {type(x).__module__}.{type(x).__qualname__} that says it is a "
                               f"{_attr(x, '__class__')!s:.80} is keyed as neither")
        if isinstance(x, np.generic):
            return self._numpy_scalar(x)
        if isinstance(x, enum.Enum):  # (an IntEnum member is not its int: its class, its methods)
            return _repr_key(x)
        if isinstance(x, (int, float, str)):  # a subclass of them: with its class
            base = int if isinstance(x, int) else float if isinstance(x, float) else str
            value = {int: int.__int__, float: float.__float__, str: str.__str__}[base](x)  # (not its own __str__)
            return self._typed(x, {base.__name__: self(value)}, exact=())
        if isinstance(x, np.ndarray) and not x.dtype.hasobject:
            return self._typed(x, {"ndarray": [str(x.dtype), list(x.shape),
                                               hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()]})
        if isinstance(x, slice):
            return {"slice": [self(x.start), self(x.stop), self(x.step)]}
        dc = dataclasses.is_dataclass(x) and not isinstance(x, type)
        if callable(x) and not isinstance(x, _CONTAINERS):
            return self.on_callable(self, x)
        if not (dc or isinstance(x, _CONTAINERS + (collections.deque,))):
            return self.on_object(x)
        if id(x) in self.stack:
            return {"cycle": len(self.stack) - self.stack.index(id(x))}
        if self.limit is not None and len(self.stack) >= self.limit:
            raise NotCanonical(f"data nested deeper than {self.limit} levels cannot be keyed")
        return self.inside(x, lambda: self._container(x), callable_owner=False)

    def _numpy_scalar(self, x: np.generic) -> Any:
        """A numpy scalar with its dtype, np.int64 and np.float64 too (code computes otherwise
        with them than with Python numbers: ``1.0 / np.float64(0.0)`` is inf where ``1.0 / 0.0``
        raises, np.int64 wraps; np.int16(300) squares to another number than 300); a structured
        one (np.void) by its fields' values under its dtype, not as a tuple. Without ``dtypes``,
        as the Python number it converts to. (A sweep passes a swept np.int64 or np.float64 as
        the Python number: kernbench.sweeps.grid._plain.)"""
        if not self.dtypes:
            v = x.item()
            return _repr_key(x) if isinstance(v, np.generic) else self(v)
        if x.dtype.kind in "mM":  # (datetime64, timedelta64: the repr shows value and unit)
            return {"numpy": str(x.dtype), "repr": repr(x)}
        v = x.item()
        if isinstance(v, np.generic):  # (a longdouble: no Python number holds it)
            return {"numpy": str(x.dtype), **_repr_key(x)}
        return {"numpy": str(x.dtype), "value": self(v)}

    def _typed(self, x: Any, key: dict, exact: tuple = _CONTAINERS) -> dict:
        """``key`` of a container, with its class when it is a subclass (a namedtuple is not a
        tuple to the code reading it); with ``strict``, a subclass holding attributes of its own
        (a masked array's mask) raises."""
        if type(x) in exact:
            return key
        state = _attr(x, "__dict__")
        if self.strict and state:
            raise NotCanonical(f"a {type(x).__qualname__} holds attributes besides its items")
        key = {**key, "class": f"{type(x).__module__}.{type(x).__qualname__}"}
        if isinstance(x, collections.defaultdict):
            key["default"] = self(x.default_factory)
        if isinstance(state, dict) and state:  # (a masked array's mask, a subclass's fields: a
            # review found a global masked array keyed by its data alone, a stale row served)
            if self.stack and self.stack[-1] == id(x):  # (a container: being walked already)
                key["attributes"] = self(dict(state))
            elif id(x) in self.stack:
                return {**key, "again": True}
            else:
                key["attributes"] = self.inside(x, lambda: self(dict(state)), callable_owner=False)
        return key

    def _container(self, x: Any) -> Any:
        if isinstance(x, tuple):
            return self._typed(x, {"tuple": [self(v) for v in x]})
        if isinstance(x, list):
            return self._typed(x, {"list": [self(v) for v in x]}) if type(x) is not list else [self(v) for v in x]
        if isinstance(x, dict):  # (in order: code iterating it sees its order)
            return self._typed(x, {"dict": [[self(k), self(v)] for k, v in x.items()]})
        if isinstance(x, (set, frozenset)):  # by their elements, in an order of their own
            tag = "frozenset" if isinstance(x, frozenset) else "set"
            return self._typed(x, {tag: sorted(json.dumps(self(v), sort_keys=True) for v in x)})
        if isinstance(x, collections.deque):
            return self._typed(x, {"deque": [self(v) for v in x], "maxlen": x.maxlen}, exact=(collections.deque,))
        if isinstance(x, np.ndarray):  # (an object array: its bytes are pointers, keyed by its elements)
            return self._typed(x, {"ndarray": [str(x.dtype), list(x.shape), self(x.tolist())]})
        return _dataclass_key(x, self)


def _dataclass_key(x: Any, walk: _Walk) -> dict:
    """A dataclass instance: its class, its fields and any other attribute its ``__dict__``
    holds (set after ``__init__``: code reading it sees it)."""
    names = [f.name for f in dataclasses.fields(x)]
    fields = {}
    for n in names:
        try:
            fields[n] = walk(getattr(x, n))
        except AttributeError:  # (a field(init=False) not set yet: a review found it raising)
            fields[n] = {"unset": True}
    key = {"dataclass": f"{type(x).__module__}.{type(x).__qualname__}", "fields": fields}
    state = getattr(x, "__dict__", None)
    extra = {k: v for k, v in state.items() if k not in names} if isinstance(state, dict) else {}
    if extra:
        key["attributes"] = walk(extra)
    return key


def _user_class(t: type) -> bool:
    """A class of the user's, or with one among its bases: defined in a user module or in one
    with no file (a notebook's ``__main__``)."""
    for c in getattr(t, "__mro__", ()):
        name = _attr(c, "__module__")
        mod = sys.modules.get(name) if isinstance(name, str) else None
        if mod is None and isinstance(name, str) and name not in sys.builtin_module_names and any(
                isinstance(v, types.FunctionType) and _user_code(v.__code__) for v in vars(c).values()):
            return True  # (a class of a module shipped by value: a Dask worker has no such module)
        if mod is None or name in sys.builtin_module_names:
            continue
        f = getattr(mod, "__file__", None)
        if _user_file(f) or (not f and not hasattr(mod, "__path__") and name.partition(".")[0] != "kernbench"):
            return True
    return False


def _class_code(strict: bool, memo: dict | None = None):
    """``on_class`` of a :class:`_Walk` keying arguments: a user class's
    :func:`code_fingerprint`, once per ``memo`` (a dict the caller keeps; default: this walk's)."""
    memo = {} if memo is None else memo

    def on_class(t: type) -> str:
        key = (t, strict)
        if key not in memo:
            memo[key] = code_fingerprint(t, strict=strict)
        return memo[key]
    return on_class


def _repr_key(x: Any) -> dict:
    """An object by its class and repr; :class:`NotCanonical` when its repr raises (a sweep's
    option of that kind aborted the sweep when it was keyed: a review) or is not a str."""
    try:
        r = repr(x)
    except Exception as e:  # noqa: BLE001
        raise NotCanonical(f"a {type(x).__qualname__} whose repr raises {type(e).__name__}") from None
    return {"repr": f"{type(x).__module__}.{type(x).__qualname__}:{r}"}


def _faithful_repr_key(x: Any) -> dict:
    """An object keyed by its repr when that shows all it holds; else :class:`NotCanonical`."""
    if isinstance(x, _FAITHFUL_REPR) and _repr_complete(x):
        key = _repr_key(x)
        if isinstance(x, uuid.UUID):  # (its repr leaves out is_safe)
            key["safe"] = repr(x.is_safe)
        return key
    raise NotCanonical(f"a {type(x).__module__}.{type(x).__qualname__} is keyed by its repr or class, "
                       f"which need not show its state")


def _repr_complete(x: Any) -> bool:
    """The repr of an object of :data:`_FAITHFUL_REPR` shows all it holds: not a subclass's
    instance with attributes of its own, a datetime or time whose tzinfo is None or a
    ``datetime.timezone`` (another tzinfo's repr need not show its state)."""
    if not isinstance(x, enum.Enum) and getattr(x, "__dict__", None):
        return False
    if isinstance(x, (datetime.datetime, datetime.time)):
        return x.tzinfo is None or type(x.tzinfo) is datetime.timezone
    return True


def _class_key(x: Any) -> dict:
    """An object that is neither plain data nor callable, read by code: by its class (its
    repr may hold an address, its state anything); an enum member, bytes, a complex or a numpy
    dtype by its repr."""
    if isinstance(x, _FAITHFUL_REPR) and _repr_complete(x):
        return _faithful_repr_key(x)
    return {"object": f"{type(x).__module__}.{type(x).__qualname__}"}


def _state_keyed(x: Any) -> bool:
    """An object code reads that a key holds by its state (:func:`_object_key`, its attributes
    and slots, not its repr), not its class alone: a ``types.SimpleNamespace``, a
    ``collections.ChainMap`` or a user class's instance (a config object in a global,
    ``cfg.OPTS.reps = 3`` set in a notebook: keyed by its class, a review found the old row
    served). A library's objects (a Logger, a lock) stay keyed by their class: their state is
    the library's, not what the kernel computes from."""
    t = type(x)
    return t in (types.SimpleNamespace, collections.ChainMap) or (
        _user_class(t) and (isinstance(_attr(x, "__dict__"), dict) or _slot_state(x) is not None))


def _pandas_data(x: Any) -> bool:
    """A pandas DataFrame or Series (pandas already imported: never imported here)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(x, (pd.DataFrame, pd.Series))


def _pandas_key(x: Any, walk: "_Walk") -> dict:
    """A DataFrame or Series code reads (a table of sizes in a global), keyed by what it holds:
    each column's name (as itself: 1 is not "1"), dtype and values, the index (its values and
    names; a MultiIndex by its levels and codes), a Series' name, ``attrs``. Values by dtype
    (:func:`_pandas_values`). Raises :class:`NotCanonical` for what has no faithful key."""
    import pandas as pd

    idx = x.index
    key = {"pandas": type(x).__name__, "index": [_pandas_values(idx), walk(list(idx.names)), type(idx).__name__],
           "attrs": walk(dict(x.attrs))}
    if isinstance(x, pd.DataFrame):
        key["columns"] = [[walk(name), str(col.dtype), _pandas_values(col)] for name, col in x.items()]
        key["columns_index"] = [type(x.columns).__name__, walk(list(x.columns.names))]
    else:
        key.update(name=walk(x.name), dtype=str(x.dtype), values=_pandas_values(x))
    return key


def _pandas_values(v: Any) -> list:
    """A Series' or an Index's values: numbers, bools and naive times by their bytes (-0.0 is
    not 0.0); a categorical by its categories, codes and order; times with a zone and periods
    by their dtype and int64 values; a nullable column by its mask and values (2**53 + 1 is not
    2**53); a MultiIndex by its levels and codes; an object or string column element by element,
    each by :func:`canonical`'s strict form (32 is not "32"; pandas' own row hashes read both as
    "32", a review). Anything else (intervals, another extension type) raises
    :class:`NotCanonical`: not cached, rather than keyed by less than it holds."""
    import pandas as pd

    def raw(a) -> str:
        return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

    dt = v.dtype
    if isinstance(v, pd.MultiIndex):
        return ["multi", [_pandas_values(level) for level in v.levels], [raw(c) for c in v.codes]]
    if isinstance(dt, np.dtype) and dt.kind in "biufcmM":
        return [str(dt), raw(v.to_numpy())]
    arr = v.array
    if isinstance(dt, pd.CategoricalDtype):
        return ["category", bool(dt.ordered), _pandas_values(dt.categories), raw(arr.codes)]
    if isinstance(dt, (pd.DatetimeTZDtype, pd.PeriodDtype)):
        return [str(dt), raw(arr.asi8)]
    if pd.api.types.is_extension_array_dtype(dt) and getattr(dt, "kind", "O") in "biuf" and hasattr(dt, "numpy_dtype"):
        mask = np.asarray(v.isna(), dtype=bool)
        return [str(dt), raw(mask), raw(v.to_numpy(dtype=dt.numpy_dtype, na_value=0))]
    if (isinstance(dt, np.dtype) and dt.kind == "O") or isinstance(dt, pd.StringDtype):
        return [str(dt), [{"missing": repr(e)} if e is pd.NA or e is pd.NaT else canonical(e, strict=True)
                          for e in v.to_numpy(dtype=object)]]
    raise NotCanonical(f"pandas values of dtype {dt} have no faithful key")


def _buffer_key(x: Any, walk: "_Walk") -> dict:
    """A mapping proxy by its mapping, an ``array.array`` or a memoryview by its format, shape
    and bytes (they were keyed by their class alone: a review); a released memoryview raises
    :class:`NotCanonical`."""
    if isinstance(x, types.MappingProxyType):
        return {"mappingproxy": walk(dict(x))}
    try:
        raw = x.tobytes()
    except ValueError as e:
        raise NotCanonical(f"a {type(x).__name__} that cannot be read ({e})") from None
    shape = [len(x)] if isinstance(x, array.array) else list(x.shape)
    return {type(x).__name__: [x.typecode if isinstance(x, array.array) else x.format, shape,
                               hashlib.sha256(raw).hexdigest()]}


def _user_module(name: Any) -> bool:
    mod = sys.modules.get(name) if isinstance(name, str) else None
    return mod is not None and _user_file(getattr(mod, "__file__", None))


def _user_code(code: types.CodeType) -> bool:
    """Code of the user's: from a user file, or from none (a notebook cell, exec)."""
    return _user_file(code.co_filename) or not os.path.isfile(code.co_filename or "")


def _attr(c: Any, name: str):
    """``getattr(c, name, None)``, None too when the object's ``__getattr__`` raises anything
    (a registry raising KeyError for a name it lacks)."""
    try:
        return getattr(c, name, None)
    except Exception:  # noqa: BLE001
        return None


def _callable_name(c: Any) -> str:
    """``module.qualname`` of a callable (of its class for a callable object), no address."""
    qn = _attr(c, "__qualname__")
    qn = qn if isinstance(qn, str) else _attr(c, "__name__")
    if not isinstance(qn, str):
        return f"{type(c).__module__}.{type(c).__qualname__}"
    mod = _attr(c, "__module__")
    if not isinstance(mod, str):  # (a method of a builtin type: its class's module)
        owner = _attr(c, "__objclass__") or _attr(c, "__self__")
        owner = owner if owner is None or isinstance(owner, type) else type(owner)
        mod = getattr(owner, "__module__", "") or ""
    return f"{mod}.{qn}"


def _library_callable(c: Any) -> bool:
    """A builtin, a numpy ufunc, a library's named callable object (numpy's array-function
    dispatchers): keyed by its name."""
    if isinstance(c, _BUILTIN_CALLABLES):
        return True
    return (isinstance(_attr(c, "__qualname__"), str) and not _user_module(_attr(c, "__module__"))
            and not _user_module(type(c).__module__))


def _object_key(obj: Any, walk: _Walk, with_repr: bool = True) -> dict:
    """A callable object, or the object a method is bound to, in a code key: its class, its
    attributes (``__dict__``, and the ``__slots__`` of every class of its MRO, an unset one
    told apart) and its ``repr`` when its class writes one (an address in it, ``at 0x...``,
    cut: it differs in every process), a dataclass its fields, plain data its value; callables
    in them by :func:`_ref`. With the walk's ``strict``, state out of both (C fields) raises
    :class:`NotCanonical` (with a repr written, as a repr need not show the state).
    ``with_repr=False``: the state alone (:func:`_state_keyed`'s objects: a repr showing a set
    or an id differs from process to process, and the state is all a user class holds)."""
    t = obj if isinstance(obj, type) else type(obj)
    name = f"{t.__module__}.{t.__qualname__}"
    if isinstance(obj, type):
        return {"class": name}
    if id(obj) in walk.stack:  # (an object met again inside its own state)
        return {"class": name, "again": True}
    if obj is None or isinstance(obj, _PLAIN_SCALARS + _CONTAINERS):
        return {"class": name, "value": walk(obj)}
    if dataclasses.is_dataclass(obj):
        key = walk.inside(obj, lambda: _dataclass_key(obj, walk), callable(obj))
        return {"class": name, **{k: v for k, v in key.items() if k != "dataclass"}}
    state = _attr(obj, "__dict__")
    slots = _slot_state(obj)
    key = {"class": name}
    if with_repr and type(obj).__repr__ is not object.__repr__:
        # its repr, and its state beside it: a repr need not show the state (a review: two
        # kernels of one repr, "Exp kernel", and different sizes served one cached row)
        if walk.strict and not isinstance(state, dict) and slots is None:
            _faithful_repr_key(obj)  # (raises: a repr need not show the state, and there is no other)
        try:
            key["repr"] = _ADDRESS.sub("at 0x?", repr(obj))
        except Exception:  # noqa: BLE001 (a repr that fails: the class and state alone)
            pass
    if not isinstance(state, dict) and slots is None:
        if "repr" in key:
            return key
        if walk.strict:
            raise NotCanonical(f"a {name} keeps its state out of __dict__ and __slots__ (C fields)")
        return {"class": name, "state": None}
    if isinstance(state, dict):
        key["state"] = walk.inside(obj, lambda: walk(dict(state)), callable(obj))
    if slots:  # (absent when there are none: an object with a __dict__ only keeps its key)
        key["slots"] = walk.inside(obj, lambda: walk(slots), callable(obj))
    return key


def _slot_state(obj: Any) -> dict | None:
    """The values of ``obj``'s ``__slots__`` over its whole MRO, by class and name: ``["set",
    value]``, or ``["unset"]`` (no value is keyed so); None when no class of its MRO declares
    slots other than ``__dict__``/``__weakref__``."""
    out: dict = {}
    found = False
    for c in type(obj).__mro__:
        declared = vars(c).get("__slots__")
        if declared is None:
            continue
        for slot in [declared] if isinstance(declared, str) else declared:
            if slot in ("__dict__", "__weakref__"):
                continue
            found = True
            # (a private slot is stored under its mangled name)
            attr = f"_{c.__name__.lstrip('_')}{slot}" if slot.startswith("__") and not slot.endswith("__") else slot
            desc = vars(c).get(attr)
            try:
                v = desc.__get__(obj, c) if hasattr(desc, "__get__") else getattr(obj, attr)
            except AttributeError:
                out[f"{c.__qualname__}.{attr}"] = ["unset"]
                continue
            out[f"{c.__qualname__}.{attr}"] = ["set", v]
    return out if found else None


def _ref(walk: _Walk, c: Any) -> dict:
    """A callable in a code key, wherever it is held (a global, a cell, a default, a dict's
    value, a dataclass field, a partial's argument): the same in every process.

    - a user function (its file the user's, or none: a lambda, a notebook cell): ``module.qualname``,
      :func:`_code_digest` of the code it runs, its defaults, closure cells and attributes
    - a library function, builtin or ufunc (``np.exp``, ``math.sqrt``, a kernbench function): its
      ``module.qualname`` (and the object a builtin method is bound to, a library closure's cells)
    - a class: its ``module.qualname``; a partial: its function and arguments; a bound method: its
      function and :func:`_object_key` of its object; a callable object: :func:`_object_key`
    - met again inside its own state (a closure holding itself): ``{"again": name}``; held more
      than REF_DEPTH callables deep: its name and code only
    """
    name = _callable_name(c)
    if id(c) in walk.stack:
        return {"again": name}
    if isinstance(c, type):
        return {"class": name}
    deep = walk.callables >= REF_DEPTH
    code = _attr(c, "__code__")
    if isinstance(c, functools.partial):
        kind, state = "partial", lambda: {"func": walk(c.func), "args": walk(list(c.args)),
                                          "keywords": walk(dict(c.keywords))}
    elif isinstance(c, types.MethodType):
        kind, state = "method", lambda: {"func": walk(c.__func__), "of": _object_key(c.__self__, walk)}
    elif isinstance(code, types.CodeType):
        cells = {}
        for var, cell in zip(code.co_freevars, _attr(c, "__closure__") or ()):
            try:
                cells[var] = cell.cell_contents
            except ValueError:  # (an empty cell)
                pass
        if not _user_code(code):  # (a library's closure: with its cells, the values it was made with)
            return {"lib": name} if deep or not cells else {"lib": name, **walk.inside(c, lambda: {"cells": walk(cells)})}
        attrs = _fn_attributes(c)

        def state():
            got = {"defaults": walk(list(_attr(c, "__defaults__") or ())),
                   "kwdefaults": walk(dict(_attr(c, "__kwdefaults__") or {})), "cells": walk(cells)}
            if attrs:  # (code may read them: kernel.ROWS; absent, the key is as it was)
                got["attributes"] = walk(attrs)
            return got
        if deep:
            return {"fn": name, "code": _code_digest(code)}
        return {"fn": name, "code": _code_digest(code), **walk.inside(c, state)}
    elif callable(_attr(c, "__wrapped__")):
        # a wrapper object (functools.lru_cache, cache): the function it wraps is what runs
        kind, state = "wrapper", lambda: {"wrapped": walk(_attr(c, "__wrapped__"))}
    elif _library_callable(c):
        bound = _attr(c, "__self__")
        if bound is None or isinstance(bound, (types.ModuleType, type)):
            return {"lib": name}
        kind, state = "lib", lambda: {"of": _object_key(bound, walk)}
    else:
        if deep:
            return {"object": name}
        return {"object": name, **_object_key(c, walk)}
    return {kind: name} if deep else {kind: name, **walk.inside(c, state)}


def _fn_attributes(fn: Any) -> dict:
    """The attributes set on a function object (``kernel.ROWS = 64``; what ``functools.wraps``
    copies, ``__wrapped__`` among them)."""
    d = _attr(fn, "__dict__")
    return dict(d) if isinstance(d, dict) else {}


def _code_digest(code: types.CodeType) -> str:
    """SHA-256 of what ``code`` runs: its bytecode, names, constants, exception table, file name
    and line table, and those of the code objects nested in it (marshal's bytes are not used:
    they depend on reference counts). The code that runs, not the file on disk: a module edited
    but not reloaded runs its old code. The file name and lines are what an error row names
    (``error_where``): code with no file on disk (a notebook cell, exec) has only them to tell a
    comment line added, or another cell, apart. The file's base name only: its folder is not
    the code's (a notebook's cells live in a folder named by the kernel process, new at each
    restart; `python ./k.py` and `python k.py` spell one file two ways: a review found either
    missing the cache)."""
    h = hashlib.sha256()

    def walk(c: types.CodeType) -> None:
        h.update(c.co_code)
        h.update(repr((c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars, c.co_argcount,
                       c.co_posonlyargcount, c.co_kwonlyargcount, c.co_flags, c.co_name,
                       c.co_firstlineno, os.path.basename(c.co_filename))).encode())
        h.update(repr(list(c.co_lines())).encode())  # (each instruction's line)
        h.update(c.co_exceptiontable)  # (where each try block ends)
        for k in c.co_consts:
            if isinstance(k, types.CodeType):
                walk(k)
            elif isinstance(k, frozenset):  # (a set literal: its repr's order is the hash seed's)
                h.update(repr(sorted(map(repr, k))).encode())
            else:
                h.update(f"{type(k).__name__}:{k!r}".encode())

    walk(code)
    return h.hexdigest()


def _imports(code: types.CodeType, package: str | None):
    """Names of the modules an ``import`` in ``code`` (or the code nested in it) binds or reads:
    ``import a.b`` gives ``a`` and ``a.b``, ``from .c import d`` the resolved ``pkg.c`` and
    ``pkg.c.d`` (which is a module only when d is a submodule)."""
    for c in _codes(code):
        prev: list = [None, None]  # the arguments of the two instructions before: level, fromlist
        for ins in dis.get_instructions(c):
            if ins.opname == "IMPORT_NAME":
                level, fromlist = prev
                level = level if isinstance(level, int) else 0
                try:
                    base = importlib.util.resolve_name("." * level + ins.argval, package) if level else ins.argval
                except (ImportError, ValueError):
                    continue
                parts = base.split(".")
                yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                for f in fromlist if isinstance(fromlist, tuple) else ():
                    yield f"{base}.{f}"
            prev = [prev[1], ins.argval if ins.opname == "LOAD_CONST" else None]


def _find_spec(name: str):
    """The spec of module ``name`` found on its path, importing neither it nor its parents
    (None: not found)."""
    mod = sys.modules.get(name)
    if mod is not None:
        return getattr(mod, "__spec__", None)
    parent = name.rpartition(".")[0]
    path = None
    if parent:
        pm = sys.modules.get(parent)
        path = getattr(pm, "__path__", None) if pm is not None else getattr(
            _find_spec(parent), "submodule_search_locations", None)
        if path is None:
            return None
    try:
        return importlib.machinery.PathFinder.find_spec(name, path)
    except (ImportError, ValueError):
        return None


def _codes(code: types.CodeType):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _codes(c)


def code_fingerprint(fn: Any, strict: bool = False, values_only: bool = False) -> str:
    """Hash of the code ``fn`` runs: the source files of its module and of every user module it
    reaches, plus :func:`kernbench_fingerprint`, plus the values it reaches: a partial's bound
    arguments, a closure's cells, the globals its code names (a constant imported from another
    module, a notebook cell's global), a user function's default arguments and the attributes
    set on it (``kernel.ROWS``), and the attributes
    of every user module reached that some user code reached names (``cfg.BLOCK``,
    ``pkg.sub.helper``: a module attribute that is a module is reached in turn).

    A user module is reached as a global name, an attribute of a reached module, a module an
    ``import`` inside the code names (``import tiles`` in the kernel's body), or a value held
    anywhere a value is reached (a closure cell: a kernel made by ``make_kernel(cfg_module)``, a
    default, a dict). Each value is keyed by :class:`_Walk`: plain data by value, every callable
    in it (a dict of functions, a dataclass field holding one, ``np.exp``) by :func:`_ref`, and
    each such callable is then visited in turn: the whole graph of user code, however many hops
    away, a visited set ending its cycles. Every user function counts by the code it runs as well
    as by its file (:func:`_code_digest`: a module edited but not reloaded runs its old code).
    Another object a function reads counts by its state when it is a ``SimpleNamespace``, a
    ``ChainMap`` or a user class's instance (:func:`_state_keyed`), by its values when it is a
    pandas DataFrame or Series (:func:`_pandas_key`), else by its class only (:func:`_class_key`). A class
    counts by its user methods and those of its user base classes (its whole MRO); an instance
    of a user class met in a value makes its class visited too.

    ``values_only``: the code each reached function runs and the values, without the files and
    kernbench's own fingerprint (what another process, another machine's included, compares
    with its own copy: a Dask worker's, kernbench.sweeps); an object keyed by its state (its
    attributes, ``cfg.OPTS.reps``), not its class alone; a function's globals those it reads
    as globals (a global named as an attribute the code reads, ``tl.softmax`` beside a kernel
    ``softmax``, is not one: cloudpickle does not ship it).

    Raises :class:`NotCanonical` for data nested deeper than :data:`PLAIN_DEPTH` (its key would
    leave the deeper part out); with ``strict``, also where a value is keyed by its repr or class
    only (:func:`canonical`'s ``strict``), except what code reads from globals or a reached
    module's attributes: keyed as without ``strict`` (a Logger by its class)."""
    files: dict[str, str] = {}
    loose: list[str] = []
    seen: set[int] = set()  # (ids of what was visited: never in the key)
    alive: list = []  # (what the ids in seen name, kept alive: an id is not reused meanwhile)
    todo: list = []  # callables and modules met, to visit
    modules: dict[str, types.ModuleType] = {}  # user modules reached, by name
    names: set[str] = set()  # every name user code reached reads (globals, attributes, imports)
    read: set[tuple[str, str]] = set()  # (module, attribute) pairs already keyed

    def on_object(x: Any, strict: bool, walk: _Walk) -> dict:
        if isinstance(x, types.ModuleType):  # (visited: its file, and the attributes code names)
            todo.append(x)
            return {"module": x.__name__}
        if not strict and _pandas_data(x):
            return _pandas_key(x, walk)
        if not strict and isinstance(x, (types.MappingProxyType, array.array, memoryview)):
            return _buffer_key(x, walk)
        if not strict and _state_keyed(x):
            return _object_key(x, walk, with_repr=False)
        if values_only:
            return _object_key(x, walk)
        return _faithful_repr_key(x) if strict else _class_key(x)

    def on_class(t: type) -> None:  # (a user class's instance met: its class's code is visited)
        todo.append(t)

    def reach(tag: str, v: Any, how=None, strict: bool = strict) -> None:
        """``v`` (or ``how(walk)``) in the key under ``tag``; every callable met in it is visited
        (in the order of their keys: a set's order is the process's). ``strict=False``: what code
        reads from globals, keyed as for the target itself inside a strict key too (an argument's
        own values stay strict)."""
        found: list[tuple[str, Any]] = []

        def on_callable(walk: _Walk, c: Any) -> dict:
            key = _ref(walk, c)
            found.append((json.dumps(key, sort_keys=True), c))
            return key

        walk = _Walk(on_callable, lambda x: on_object(x, strict, walk), PLAIN_DEPTH, strict, on_class)
        loose.append(f"{tag}={json.dumps(walk(v) if how is None else how(walk), sort_keys=True)}")
        todo.extend(c for _, c in sorted(found, key=lambda kc: kc[0]))

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        alive.append(obj)
        if isinstance(obj, types.ModuleType):
            f = _attr(obj, "__file__")
            if _user_file(f):
                files.setdefault(os.path.abspath(f), _file_hash(f))
                modules.setdefault(obj.__name__, obj)
            return
        if isinstance(obj, functools.partial):  # (its arguments again here: its key may be a deep one's)
            todo.append(obj.func)
            reach(f"partial of {_callable_name(obj.func)}", {"args": list(obj.args), "keywords": dict(obj.keywords)})
            return
        if isinstance(obj, types.MethodType):
            todo.append(obj.__func__)
            me = obj.__self__
            todo.append(me if isinstance(me, type) else type(me))
            if not isinstance(me, (type, types.ModuleType)):
                reach(f"method {_callable_name(obj)} of", None, lambda walk: _object_key(me, walk))
            return
        if isinstance(obj, type):
            f = getattr(sys.modules.get(obj.__module__), "__file__", None)
            if _user_file(f):  # (its file; its methods' globals are reached from them)
                files.setdefault(os.path.abspath(f), _file_hash(f))
            loose.append(f"class {obj.__module__}.{obj.__qualname__}")
            todo.extend(b for b in obj.__mro__[1:] if _user_class(b))  # (the methods it inherits)
            for k, v in sorted(vars(obj).items(), key=lambda kv: kv[0]):  # the user code it runs
                if isinstance(v, (staticmethod, classmethod)):
                    v = v.__func__
                if isinstance(v, property):  # (a property's functions: its body is code too)
                    todo.extend(f for f in (v.fget, v.fset, v.fdel) if f is not None)
                elif isinstance(v, types.FunctionType):
                    if _user_code(v.__code__):
                        todo.append(v)
                elif not k.startswith("__") and not isinstance(v, type):
                    # its class attributes (ROWS = 256), read as a global is: by value
                    reach(f"class {obj.__module__}.{obj.__qualname__}.{k}", v, strict=False)
            return
        code = _attr(obj, "__code__")
        if not isinstance(code, types.CodeType):
            if not callable(obj):
                return
            wrapped = _attr(obj, "__wrapped__")
            if callable(wrapped):  # (a wrapper object, functools.lru_cache: the function it wraps runs)
                todo.append(wrapped)
            if _library_callable(obj):  # (by name; a builtin method by the object it is bound to)
                me = _attr(obj, "__self__")
                if me is not None and not isinstance(me, (types.ModuleType, type)):
                    reach(f"method {_callable_name(obj)} of", None, lambda walk: _object_key(me, walk))
                return
            todo.append(type(obj))  # a callable object: its class's code, and its state
            reach(f"object {_callable_name(obj)}", None, lambda walk: _object_key(obj, walk))
            return
        where = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        glb = getattr(obj, "__globals__", {})
        code_names = sorted(set(_names(code)))
        if _user_code(code):  # the code that runs, and its file (other functions of it, and error lines)
            loose.append(f"{where} code {_code_digest(code)}")
            if os.path.isfile(code.co_filename):
                files.setdefault(os.path.abspath(code.co_filename), _file_hash(code.co_filename))
            reach(f"{where} defaults", [list(_attr(obj, "__defaults__") or ()),
                                        dict(_attr(obj, "__kwdefaults__") or {})])
            attrs = _fn_attributes(obj)
            if attrs:  # (its attributes, as its globals: read by code, kernel.ROWS)
                reach(f"{where} attributes", attrs, strict=False)
            names.update(code_names)
            package = glb.get("__package__") or glb.get("__name__")
            for name in sorted(set(_imports(code, package if isinstance(package, str) else None))):
                m = sys.modules.get(name)
                if isinstance(m, types.ModuleType):
                    todo.append(m)
                elif name not in sys.modules:  # not imported yet: the file the import will run
                    f = getattr(_find_spec(name), "origin", None)
                    if isinstance(f, str) and os.path.isfile(f) and _user_file(f):
                        files.setdefault(os.path.abspath(f), _file_hash(f))
        for name in code_names if not values_only else sorted(set(_global_names(code))):
            if name not in glb:
                continue
            v = glb[name]
            if isinstance(v, types.ModuleType):
                todo.append(v)
            else:
                reach(f"{where} global {name}", v, strict=False)
        for i, cell in enumerate(_attr(obj, "__closure__") or ()):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            reach(f"{where} cell {code.co_freevars[i]}", v)

    reach("fn", fn)
    while todo:
        while todo:
            visit(todo.pop())
        # the values of reached user modules that user code names: cfg.BLOCK, pkg.sub (a module:
        # visited, its own attributes then read), pkg.sub.helper (a function: visited)
        for mname in sorted(modules):
            mod = modules[mname]
            # (a module's __getattr__ serves names its dict lacks: read them through it)
            served = names & set(vars(mod))
            ga = vars(mod).get("__getattr__")
            if callable(ga):  # (its code, and what it reads, are what those names run)
                served = names
                if id(ga) not in seen:
                    todo.append(ga)
            for attr in sorted(served):
                if (mname, attr) in read:
                    continue
                read.add((mname, attr))
                if attr in vars(mod):
                    v = vars(mod)[attr]
                else:
                    try:
                        v = getattr(mod, attr)
                    except Exception:  # noqa: BLE001 (a name it does not serve: nothing to key)
                        continue
                if isinstance(v, types.ModuleType):
                    todo.append(v)
                else:
                    reach(f"module {mname}.{attr}", v, strict=False)
    h = hashlib.sha256(b"values" if values_only else kernbench_fingerprint().encode())
    for path in sorted(files) if not values_only else ():
        h.update(f"{path}\0{files[path]}\0".encode())
    for s in sorted(loose):
        h.update(s.encode())
    return h.hexdigest()


def source_of(fn: Any) -> str:
    """``module.qualname`` of ``fn`` (for messages)."""
    try:
        return f"{fn.__module__}.{fn.__qualname__}"
    except AttributeError:
        return repr(fn)


# -- the store -------------------------------------------------------------------------------------
class DiskCache:
    """JSON values by key in ``root/namespace`` (see the module docstring). ``root`` defaults to
    :func:`cache_dir`. ``get`` of a missing or unreadable entry returns ``default``."""

    def __init__(self, namespace: str, root: "str | os.PathLike | None" = None):
        if not namespace or not namespace.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"cache namespace must be a plain name, got {namespace!r}")
        self.namespace = namespace
        self.folder = Path(root).expanduser() / namespace if root is not None else cache_dir() / namespace

    def __repr__(self) -> str:
        return f"DiskCache({self.namespace!r}, folder={str(self.folder)!r})"

    def path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"cache keys are hex digests (kernbench.common.cache.digest), got {key!r}")
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when there is none or the entry is
        not JSON this cache can read (truncated, garbage, nested too deep to decode: a
        review's RecursionError; not a file: a FIFO in its place would block the read)."""
        path = self.path(key)
        try:
            if not path.is_file():  # (a FIFO or a device in its place: opening it would block)
                return default
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
            # (another key's entry in its place, or one edited: a miss, not a wrong value)
            if (type(entry) is not dict or entry.keys() != {"key", "sha256", "value"}
                    or entry["key"] != key or entry["sha256"] != _text_digest(_dumps(entry["value"]))):
                return default
            return entry["value"]
        except (OSError, ValueError, RecursionError):
            return default

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data: dicts, lists, str, numbers, None; numpy scalars are
        converted). Written to a temporary file, then renamed into place."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # (the value as JSON reads it back: tuples as lists, numpy scalars as numbers, so that
        # get() hashes the same text)
        plain = json.loads(_dumps(value))
        text = _dumps({"key": key, "sha256": _text_digest(_dumps(plain)), "value": plain})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.json")) if self.folder.is_dir() else 0

    def clear(self) -> int:
        """Delete every entry of this namespace; returns how many."""
        n = 0
        for p in self.folder.glob("*/*.json") if self.folder.is_dir() else ():
            p.unlink(missing_ok=True)
            n += 1
        return n


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=True)


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"cannot store {type(x).__name__} in the cache (JSON data only)")

