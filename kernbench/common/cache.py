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
so processes and concurrent runs can share the folder. Delete the folder to clear it.

:func:`code_fingerprint` is the code part of a key: the source of a function's module and of
the user modules it reaches by name (recursively), the values it reaches the same way (a
partial's arguments, closure cells, defaults, globals: plain data by value, the callables held
in it by their code, a library's by name), plus :func:`kernbench_fingerprint`, the hash of
kernbench's own source and version. Editing the kernel, a helper it calls in another file or
holds in a dict, a constant it reads, or kernbench itself gives new keys; installed third-party
packages are not hashed.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import os
import re
import sys
import sysconfig
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DiskCache", "cache_dir", "canonical", "digest", "code_fingerprint", "kernbench_fingerprint"]


def cache_dir() -> Path:
    """The cache's root folder (see the module docstring); not created here."""
    env = os.environ.get("KERNBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "kernbench"


def canonical(x: Any) -> Any:
    """``x`` as plain JSON data that is equal exactly when the values are: numpy scalars as
    Python numbers (``np.int64(32)`` and ``32`` give one key), floats by their repr (NaN and
    inf too), tuples tagged apart from lists, sets by their elements, arrays by dtype, shape and
    a hash of their bytes, dataclasses by their fields, functions by :func:`code_fingerprint`, a
    container met again inside itself by how many levels up it is."""
    return _Walk(lambda walk, f: {"code": code_fingerprint(f)}, _repr_key)(x)


def digest(*parts: Any) -> str:
    """SHA-256 (hex) of the canonical form of ``parts``: a cache key."""
    text = json.dumps(canonical(list(parts)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# -- code fingerprints ---------------------------------------------------------------------------
_PKG = Path(__file__).resolve().parent.parent  #: the kernbench package folder
_LIBRARY_DIRS = tuple({os.path.normpath(p) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
                       if (p := sysconfig.get_paths().get(key))})


@functools.lru_cache(maxsize=None)
def kernbench_fingerprint() -> str:
    """Hash of kernbench's version and every .py/.pyx/.pxd/.toml file of the package: a cached
    result is never reused across a change of kernbench (engine, language, shipped kernels)."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    try:
        h.update(version("kernbench").encode())
    except PackageNotFoundError:
        pass
    for p in sorted(_PKG.rglob("*")):
        if p.suffix in (".py", ".pyx", ".pxd", ".toml") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(_PKG)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _user_file(path: str | None) -> bool:
    """A file of the user's (hashed): not kernbench's (its own fingerprint covers it), not the
    standard library's or an installed package's."""
    if not path:
        return False
    p = os.path.normpath(os.path.abspath(path))
    if p.startswith(str(_PKG) + os.sep):
        return False
    return not p.startswith(_LIBRARY_DIRS)


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


#: nesting of data keyed by value: a value nested deeper is ``{"deeper": PLAIN_DEPTH}`` in the
#: key; well inside the interpreter's recursion limit, which the walk recurses against
PLAIN_DEPTH = 64
#: callables held in a callable's state (its defaults and cells, a partial's arguments, an
#: object's attributes) are keyed with their own state to this depth, deeper ones by name
#: (and code): their own facts are in the fingerprint anyway (:func:`code_fingerprint`)
REF_DEPTH = 4
_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+")  #: a memory address in a repr (differs per process)
_CONTAINERS = (tuple, list, dict, set, frozenset, np.ndarray)
_PLAIN_SCALARS = (bool, int, float, str, bytes, np.generic)
_BUILTIN_CALLABLES = (types.BuiltinFunctionType, types.MethodWrapperType, types.MethodDescriptorType,
                      types.WrapperDescriptorType, types.ClassMethodDescriptorType, np.ufunc)


class _Walk:
    """The walk behind :func:`canonical` and the values in :func:`code_fingerprint`: plain data
    by value, a container (tuple, list, dict, set, object array, dataclass) met again inside
    itself as ``{"cycle": levels up}``, a callable by ``on_callable(walk, c)``, any other object
    by ``on_object(x)``; with ``limit``, what is nested deeper as ``{"deeper": limit}``.
    ``stack`` holds the ids of the containers and callables being walked (never in a key)."""

    def __init__(self, on_callable, on_object, limit: int | None = None):
        self.on_callable, self.on_object, self.limit = on_callable, on_object, limit
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
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, np.generic):
            v = x.item()
            return _repr_key(x) if isinstance(v, np.generic) else self(v)
        if isinstance(x, int):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else {"float": repr(x)}
        if isinstance(x, np.ndarray) and not x.dtype.hasobject:
            return {"ndarray": [str(x.dtype), list(x.shape),
                                hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()]}
        dc = dataclasses.is_dataclass(x) and not isinstance(x, type)
        if callable(x) and not isinstance(x, _CONTAINERS):
            return self.on_callable(self, x)
        if not (dc or isinstance(x, _CONTAINERS)):
            return self.on_object(x)
        if id(x) in self.stack:
            return {"cycle": len(self.stack) - self.stack.index(id(x))}
        if self.limit is not None and len(self.stack) >= self.limit:
            return {"deeper": self.limit}
        return self.inside(x, lambda: self._container(x), callable_owner=False)

    def _container(self, x: Any) -> Any:
        if isinstance(x, tuple):
            return {"tuple": [self(v) for v in x]}
        if isinstance(x, list):
            return [self(v) for v in x]
        if isinstance(x, dict):
            return {"dict": sorted(([json.dumps(self(k), sort_keys=True), self(v)]
                                    for k, v in x.items()), key=lambda kv: kv[0])}
        if isinstance(x, (set, frozenset)):  # by their elements, in an order of their own
            return {"set": sorted(json.dumps(self(v), sort_keys=True) for v in x)}
        if isinstance(x, np.ndarray):  # (an object array: its bytes are pointers, keyed by its elements)
            return {"ndarray": [str(x.dtype), list(x.shape), self(x.tolist())]}
        return {"dataclass": f"{type(x).__module__}.{type(x).__qualname__}",
                "fields": {f.name: self(getattr(x, f.name)) for f in dataclasses.fields(x)}}


def _repr_key(x: Any) -> dict:
    return {"repr": f"{type(x).__module__}.{type(x).__qualname__}:{x!r}"}


def _class_key(x: Any) -> dict:
    """An object that is neither plain data nor callable, read by code: by its class (its
    repr may hold an address, its state anything); an enum member, bytes, a complex or a numpy
    dtype by its repr."""
    if isinstance(x, (enum.Enum, bytes, complex, np.dtype)):
        return _repr_key(x)
    return {"object": f"{type(x).__module__}.{type(x).__qualname__}"}


def _user_module(name: Any) -> bool:
    mod = sys.modules.get(name) if isinstance(name, str) else None
    return mod is not None and _user_file(getattr(mod, "__file__", None))


def _user_code(code: types.CodeType) -> bool:
    """Code of the user's: from a user file, or from none (a notebook cell, exec)."""
    return _user_file(code.co_filename) or not os.path.isfile(code.co_filename or "")


def _callable_name(c: Any) -> str:
    """``module.qualname`` of a callable (of its class for a callable object), no address."""
    qn = getattr(c, "__qualname__", None)
    qn = qn if isinstance(qn, str) else getattr(c, "__name__", None)
    if not isinstance(qn, str):
        return f"{type(c).__module__}.{type(c).__qualname__}"
    mod = getattr(c, "__module__", None)
    if not isinstance(mod, str):  # (a method of a builtin type: its class's module)
        owner = getattr(c, "__objclass__", None) or getattr(c, "__self__", None)
        owner = owner if owner is None or isinstance(owner, type) else type(owner)
        mod = getattr(owner, "__module__", "") or ""
    return f"{mod}.{qn}"


def _library_callable(c: Any) -> bool:
    """A builtin, a numpy ufunc, a library's named callable object (numpy's array-function
    dispatchers): keyed by its name."""
    if isinstance(c, _BUILTIN_CALLABLES):
        return True
    return (isinstance(getattr(c, "__qualname__", None), str) and not _user_module(getattr(c, "__module__", None))
            and not _user_module(type(c).__module__))


def _object_key(obj: Any, walk: _Walk) -> dict:
    """A callable object, or the object a method is bound to, in a code key: its class, and its
    ``repr`` only when its class writes one (an address in it, ``at 0x...``, cut: it differs
    in every process), else its attributes (``__dict__``), a dataclass its fields, plain data its
    value; callables in them by :func:`_ref`."""
    t = obj if isinstance(obj, type) else type(obj)
    name = f"{t.__module__}.{t.__qualname__}"
    if isinstance(obj, type):
        return {"class": name}
    if id(obj) in walk.stack:  # (an object met again inside its own state)
        return {"class": name, "again": True}
    if obj is None or isinstance(obj, _PLAIN_SCALARS + _CONTAINERS):
        return {"class": name, "value": walk(obj)}
    if dataclasses.is_dataclass(obj):
        return {"class": name, "fields": walk.inside(obj, lambda: {
            f.name: walk(getattr(obj, f.name)) for f in dataclasses.fields(obj)}, callable(obj))}
    if type(obj).__repr__ is not object.__repr__:
        try:
            return {"class": name, "repr": _ADDRESS.sub("at 0x?", repr(obj))}
        except Exception:  # noqa: BLE001 (a repr that fails: the class alone)
            return {"class": name}
    state = getattr(obj, "__dict__", None)
    if not isinstance(state, dict):
        return {"class": name, "state": None}
    return {"class": name, "state": walk.inside(obj, lambda: walk(dict(state)), callable(obj))}


def _ref(walk: _Walk, c: Any) -> dict:
    """A callable in a code key, wherever it is held (a global, a cell, a default, a dict's
    value, a dataclass field, a partial's argument): the same in every process.

    - a user function (its file the user's, or none: a lambda, a notebook cell): ``module.qualname``,
      :func:`_code_digest` of the code it runs, its defaults and closure cells
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
    code = getattr(c, "__code__", None)
    if isinstance(c, functools.partial):
        kind, state = "partial", lambda: {"func": walk(c.func), "args": walk(list(c.args)),
                                          "keywords": walk(dict(c.keywords))}
    elif isinstance(c, types.MethodType):
        kind, state = "method", lambda: {"func": walk(c.__func__), "of": _object_key(c.__self__, walk)}
    elif isinstance(code, types.CodeType):
        cells = {}
        for var, cell in zip(code.co_freevars, getattr(c, "__closure__", None) or ()):
            try:
                cells[var] = cell.cell_contents
            except ValueError:  # (an empty cell)
                pass
        if not _user_code(code):  # (a library's closure: with its cells, the values it was made with)
            return {"lib": name} if deep or not cells else {"lib": name, **walk.inside(c, lambda: {"cells": walk(cells)})}
        kind, state = "fn", lambda: {"defaults": walk(list(getattr(c, "__defaults__", None) or ())),
                                     "kwdefaults": walk(dict(getattr(c, "__kwdefaults__", None) or {})),
                                     "cells": walk(cells)}
        if deep:
            return {"fn": name, "code": _code_digest(code)}
        return {"fn": name, "code": _code_digest(code), **walk.inside(c, state)}
    elif _library_callable(c):
        bound = getattr(c, "__self__", None)
        if bound is None or isinstance(bound, (types.ModuleType, type)):
            return {"lib": name}
        kind, state = "lib", lambda: {"of": _object_key(bound, walk)}
    else:
        if deep:
            return {"object": name}
        return {"object": name, **_object_key(c, walk)}
    return {kind: name} if deep else {kind: name, **walk.inside(c, state)}


def _code_digest(code: types.CodeType) -> str:
    """SHA-256 of what ``code`` runs: its bytecode, names, constants and those of the code
    objects nested in it (marshal's bytes are not used: they depend on reference counts). The
    code that runs, not the file on disk: a module edited but not reloaded runs its old code."""
    h = hashlib.sha256()

    def walk(c: types.CodeType) -> None:
        h.update(c.co_code)
        h.update(repr((c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars, c.co_argcount,
                       c.co_posonlyargcount, c.co_kwonlyargcount, c.co_flags, c.co_name,
                       c.co_firstlineno)).encode())
        for k in c.co_consts:
            if isinstance(k, types.CodeType):
                walk(k)
            elif isinstance(k, frozenset):  # (a set literal: its repr's order is the hash seed's)
                h.update(repr(sorted(map(repr, k))).encode())
            else:
                h.update(f"{type(k).__name__}:{k!r}".encode())

    walk(code)
    return h.hexdigest()


def code_fingerprint(fn: Any, depth: int = 4) -> str:
    """Hash of the code ``fn`` runs: the source files of its module and of every user module it
    reaches through global names, closures, defaults, ``functools.partial`` and the data those
    hold (to ``depth`` levels), plus :func:`kernbench_fingerprint`, plus the values it reaches
    the same way: a partial's bound arguments, a closure's cells, the globals its code names (a
    constant imported from another module, a notebook cell's global), a user module's attributes
    it reads, and a user function's default arguments. Each value is keyed by :class:`_Walk`:
    plain data by value, every callable in it (a dict of functions, a dataclass field holding
    one, ``np.exp``) by :func:`_ref`, and each such callable is then reached in turn. Every user
    function counts by the code it runs as well as by its file (:func:`_code_digest`: a module
    edited but not reloaded runs its old code). Another object a function reads counts by its
    class only (:func:`_class_key`)."""
    files: dict[str, str] = {}
    loose: list[str] = []
    seen: set[int] = set()  # (ids of what was visited: never in the key)

    def reach(tag: str, v: Any, level: int) -> None:
        """``v`` in the key under ``tag``, then every callable met in it visited at ``level``
        (in the order of their keys: a set's order is the process's)."""
        found: list[tuple[str, Any]] = []

        def on_callable(walk: _Walk, c: Any) -> dict:
            key = _ref(walk, c)
            found.append((json.dumps(key, sort_keys=True), c))
            return key

        loose.append(f"{tag}={json.dumps(_Walk(on_callable, _class_key, PLAIN_DEPTH)(v), sort_keys=True)}")
        for _, c in sorted(found, key=lambda kc: kc[0]):
            visit(c, level)

    def visit(obj: Any, level: int) -> None:
        if id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        if isinstance(obj, functools.partial):  # (its arguments are in its key: reach)
            visit(obj.func, level)
            return
        if isinstance(obj, types.MethodType):
            visit(obj.__func__, level)
            visit(obj.__self__ if isinstance(obj.__self__, type) else type(obj.__self__), level)
            return
        if isinstance(obj, types.ModuleType):
            f = getattr(obj, "__file__", None)
            if _user_file(f):
                files.setdefault(os.path.abspath(f), _file_hash(f))
            return
        if isinstance(obj, type):
            mod = sys.modules.get(obj.__module__)
            if mod is not None:
                visit(mod, level)
            loose.append(f"class {obj.__module__}.{obj.__qualname__}")
            for _, v in sorted(vars(obj).items(), key=lambda kv: kv[0]):  # the user methods it runs
                if isinstance(v, (staticmethod, classmethod)):
                    v = v.__func__
                if isinstance(v, types.FunctionType) and _user_code(v.__code__):
                    visit(v, level + 1)
            return
        code = getattr(obj, "__code__", None)
        if not isinstance(code, types.CodeType):
            if callable(obj):  # a callable object (its state is in its key): its class's code
                visit(type(obj), level)
            return
        where = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        if _user_code(code):  # the code that runs, and its file (other functions of it, and error lines)
            loose.append(f"{where} code {_code_digest(code)}")
            if os.path.isfile(code.co_filename):
                files.setdefault(os.path.abspath(code.co_filename), _file_hash(code.co_filename))
            reach(f"{where} defaults", [list(getattr(obj, "__defaults__", None) or ()),
                                        dict(getattr(obj, "__kwdefaults__", None) or {})], level + 1)
        glb = getattr(obj, "__globals__", {})
        names = sorted(set(_names(code)))
        for name in names:
            if name not in glb:
                continue
            v = glb[name]
            if isinstance(v, types.ModuleType):
                visit(v, level + 1)
                if _user_file(getattr(v, "__file__", None)):  # the module's values the code names
                    for attr in names:
                        a = getattr(v, attr, None)
                        if a is not None and not isinstance(a, types.ModuleType):
                            reach(f"{where} {name}.{attr}", a, level + 1)
            else:
                reach(f"{where} global {name}", v, level + 1)
        for i, cell in enumerate(getattr(obj, "__closure__", None) or ()):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            reach(f"{where} cell {code.co_freevars[i]}", v, level + 1)

    reach("fn", fn, 0)
    h = hashlib.sha256(kernbench_fingerprint().encode())
    for path in sorted(files):
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
        try:
            with open(self.path(key), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return default

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data: dicts, lists, str, numbers, None; numpy scalars are
        converted). Written to a temporary file, then renamed into place."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(value, default=_json_default, allow_nan=True)
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


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"cannot store {type(x).__name__} in the cache (JSON data only)")

