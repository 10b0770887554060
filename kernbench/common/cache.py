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
the user modules it reaches by name (recursively), the plain data values it reaches the same way
(a partial's arguments, closure cells, globals), plus :func:`kernbench_fingerprint`, the hash
of kernbench's own source and version. Editing the kernel, a helper it calls in another file, a
constant it reads, or kernbench itself gives new keys; installed third-party packages are not
hashed.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import os
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
    a hash of their bytes, dataclasses by their fields, functions by :func:`code_fingerprint`."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, np.generic):
        return canonical(x.item())
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else {"float": repr(x)}
    if isinstance(x, tuple):
        return {"tuple": [canonical(v) for v in x]}
    if isinstance(x, list):
        return [canonical(v) for v in x]
    if isinstance(x, dict):
        return {"dict": sorted(([json.dumps(canonical(k), sort_keys=True), canonical(v)]
                                for k, v in x.items()), key=lambda kv: kv[0])}
    if isinstance(x, (set, frozenset)):  # by their elements, in an order of their own
        return {"set": sorted(json.dumps(canonical(v), sort_keys=True) for v in x)}
    if isinstance(x, np.ndarray):
        if x.dtype.hasobject:  # (its bytes are pointers: keyed by its elements)
            return {"ndarray": [str(x.dtype), list(x.shape), canonical(x.tolist())]}
        return {"ndarray": [str(x.dtype), list(x.shape),
                            hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()]}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {"dataclass": f"{type(x).__module__}.{type(x).__qualname__}",
                "fields": {f.name: canonical(getattr(x, f.name)) for f in dataclasses.fields(x)}}
    if callable(x):
        return {"code": code_fingerprint(x)}
    return {"repr": f"{type(x).__module__}.{type(x).__qualname__}:{x!r}"}


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


#: nesting of plain data keyed by value (deeper: not plain data, see :func:`_plain`); well
#: inside the interpreter's recursion limit, which :func:`canonical` recurses against
PLAIN_DEPTH = 64


def _plain(x: Any, depth: int = 0) -> bool:
    """Is ``x`` plain data, whose value :func:`canonical` keys exactly: None, numbers, strings,
    bytes, numpy scalars and arrays, and tuples, lists, sets, dicts and dataclasses of those
    (of any length, nested up to PLAIN_DEPTH levels)?"""
    if isinstance(x, np.ndarray) and x.dtype.hasobject:
        return depth < PLAIN_DEPTH and _plain(x.tolist(), depth + 1)
    if x is None or isinstance(x, (bool, int, float, str, bytes, np.generic, np.ndarray, enum.Enum)):
        return True  # (an enum member by its repr: its class and name)
    if depth >= PLAIN_DEPTH:
        return False
    if isinstance(x, (tuple, list, set, frozenset)):
        return all(_plain(v, depth + 1) for v in x)
    if isinstance(x, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in x.items())
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return all(_plain(getattr(x, f.name), depth + 1) for f in dataclasses.fields(x))
    return False


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


def _object_key(obj: Any) -> str:
    """A callable object (or a library class) in a code key: its class, and its ``repr`` only
    when its class writes one (object's default repr holds a memory address, which differs in
    every process), else its plain-data ``__dict__``."""
    t = obj if isinstance(obj, type) else type(obj)
    name = f"{t.__module__}.{t.__qualname__}"
    if isinstance(obj, type):
        return f"class {name}"
    if type(obj).__repr__ is not object.__repr__:
        return f"{name}:{obj!r}"
    state = _value(getattr(obj, "__dict__", None))
    return f"{name}:{state if state is not None else '(no plain state)'}"


def _value(x: Any) -> str | None:
    """The canonical JSON of plain data ``x`` (:func:`_plain`), else None."""
    return json.dumps(canonical(x), sort_keys=True) if _plain(x) else None


def code_fingerprint(fn: Any, depth: int = 4) -> str:
    """Hash of the code ``fn`` runs: the source files of its module and of every user module it
    reaches through global names, closures and ``functools.partial`` (to ``depth`` levels),
    plus :func:`kernbench_fingerprint`, plus the values of the plain data (:func:`_plain`) it
    reaches the same way: a partial's bound arguments, a closure's cells, the globals its code
    names (a constant imported from another module, a notebook cell's global), and a user
    function's default arguments. Every user function counts by the code it runs as well as by
    its file (:func:`_code_digest`: a module edited but not reloaded runs its old code). A
    callable object counts by its class and its ``repr``; other objects a function reads are not
    part of the hash."""
    files: dict[str, str] = {}
    loose: list[str] = []
    seen: set[int] = set()

    def data(tag: str, v: Any) -> None:
        key = _value(v)
        if key is not None:
            loose.append(f"{tag}={key}")

    def visit(obj: Any, level: int) -> None:
        if id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        if isinstance(obj, functools.partial):
            visit(obj.func, level)
            tag = f"partial {getattr(obj.func, '__qualname__', type(obj.func).__qualname__)}"
            for k, a in [*enumerate(obj.args), *obj.keywords.items()]:
                if callable(a):
                    visit(a, level)
                else:
                    data(f"{tag} {k}", a)
            return
        if isinstance(obj, types.MethodType):
            visit(obj.__func__, level)
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
            loose.append(_object_key(obj))  # which class (np.float16 or np.float32, ...)
            if _user_file(getattr(mod, "__file__", None)):  # the methods it runs
                for _, v in sorted(vars(obj).items(), key=lambda kv: kv[0]):
                    if isinstance(v, (staticmethod, classmethod)):
                        v = v.__func__
                    if isinstance(v, types.FunctionType):
                        visit(v, level + 1)
            return
        code = getattr(obj, "__code__", None)
        if not isinstance(code, types.CodeType):
            if callable(obj):  # a callable object: its class's code and its state
                loose.append(_object_key(obj))
                visit(type(obj), level)  # its module's source
            return
        where = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        user = _user_file(code.co_filename) or not os.path.isfile(code.co_filename or "")
        if user:  # the code that runs, and its file (other functions of it, and error lines)
            loose.append(f"{where} code {_code_digest(code)}")
            if os.path.isfile(code.co_filename):
                files.setdefault(os.path.abspath(code.co_filename), _file_hash(code.co_filename))
            defaults = [*enumerate(getattr(obj, "__defaults__", None) or ()),
                        *sorted((getattr(obj, "__kwdefaults__", None) or {}).items())]
            for k, v in defaults:
                if callable(v):
                    visit(v, level + 1)
                else:
                    data(f"{where} default {k}", v)
        glb = getattr(obj, "__globals__", {})
        for name in sorted(set(_names(code))):
            if name not in glb:
                continue
            v = glb[name]
            if isinstance(v, types.ModuleType):
                visit(v, level + 1)
                if _user_file(getattr(v, "__file__", None)):  # the module's values the code names
                    for attr in sorted(set(_names(code))):
                        a = getattr(v, attr, None)
                        if a is not None and not callable(a) and not isinstance(a, types.ModuleType):
                            data(f"{where} {name}.{attr}", a)
            elif callable(v):
                visit(v, level + 1)
            else:
                data(f"{where} global {name}", v)
        for i, cell in enumerate(getattr(obj, "__closure__", None) or ()):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if callable(v):
                visit(v, level + 1)
            else:
                data(f"{where} cell {code.co_freevars[i]}", v)

    visit(fn, 0)
    h = hashlib.sha256(kernbench_fingerprint().encode())
    for path in sorted(files):
        h.update(f"{path}\0{files[path]}\0".encode())
    for s in sorted(loose):
        h.update(s.encode())
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    h.update(f"{getattr(fn, '__module__', '')}.{name}".encode())
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

