"""``kernbench.sweep``: trace once per trace group, time every point, serially or on Dask.

docs/sweeps.md describes the API. The pieces:

- :class:`Target`: what is launched at every point (a kernel with a grid and an optional setup,
  or a launch builder), picklable so Dask workers get it;
- :func:`trace_one`: build the launch on a Context and trace it, recording which hardware keys
  the setup or builder read (``ctx.hw``): those, with the machine's shape, are what the trace
  depends on (a functional-mode point is launched whole there: traced, timed and replayed);
- :func:`time_one`: time a traced launch under one point's hardware (tracing again, for that
  point alone, when the setup read a key whose value differs there);
- :func:`sweep`: expand the points, read the cache, group the rest by what their trace depends
  on, run the groups, write the cache, return a :class:`~kernbench.sweeps.result.SweepResult`.
"""
from __future__ import annotations

import ast
import contextlib
import copyreg
import inspect
import io
import logging
import marshal
import os
import pickle
import signal
import sys
import threading
import time
import types
import warnings
from collections import ChainMap
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

import numpy as np

from ..common.errors import as_flag, exc_text, is_whole, short_repr
from ..common.gc_pause import pause_gc, resume_gc
from ..common.cache import DiskCache, NotCanonical, canonical, check_kernbench_files, code_fingerprint, digest
from ..hw.config import HardwareConfig, HardwareConfigError, leaves, load_hw, unknown_key
from ..hw.sfr import SfrInstall
from .figures import TRANSIENT, cacheable, error_figures, is_row, row_figures
from .grid import Launch, Point, expand_axis, points_of

__all__ = ["sweep", "Target", "trace_one", "time_one", "SHAPE_KEYS", "SWEEP_EXTRA_HINT"]

#: hardware keys every trace depends on (the machine's shape)
SHAPE_KEYS = ("n_cubes", "pes_per_cube")
SWEEP_EXTRA_HINT = 'pip install "kernbench[sweep]"'
_KEY_VERSION = "kernbench.sweep-point/3"  # (/3: error_pe "PE (p, c)", as every PE is named)
_TOP = tuple(f.name for f in fields(HardwareConfig))


# -- what is launched ------------------------------------------------------------------------------
def is_kernel(fn) -> bool:
    """Whether ``fn`` takes a keyword-only ``tl``: a kernel, not a launch builder."""
    try:
        p = inspect.signature(fn).parameters.get("tl")
    except (TypeError, ValueError):
        return False
    return p is not None and p.kind == inspect.Parameter.KEYWORD_ONLY


@dataclass(frozen=True)
class Target:
    """A kernel (``kind="kernel"``: ``grid``, optional ``setup``, the SFR install) or a launch
    builder (``kind="builder"``: ``fn(ctx, **args) -> Launch``)."""

    fn: Callable
    kind: str
    grid: tuple | None = None
    setup: Callable | None = None
    sfr: str | None = None
    ring: bool = False

    def identity(self) -> list:
        """What of the target goes into every cache key besides its code. Raises NotCanonical
        when kernbench's files changed since this process imported it (checked at each sweep:
        the fingerprint, made once, stands for the files it was made from)."""
        check_kernbench_files()
        return [self.kind, canonical(self.grid), self.sfr, bool(self.ring),
                code_fingerprint(self.fn), None if self.setup is None else code_fingerprint(self.setup)]

    def values(self) -> str | None:
        """The code the target runs and the values it reads (``code_fingerprint``'s
        ``values_only``: no files), as this process has them; None where they cannot be keyed. A
        Dask worker compares its own with the client's: a module it imports by name holds the
        values of its file, not those set in the client (``cfg.REPS = 3`` in a notebook)."""
        try:
            return digest(code_fingerprint(self.fn, values_only=True),
                          None if self.setup is None else code_fingerprint(self.setup, values_only=True))
        except Exception:  # noqa: BLE001 (NotCanonical, or state that raises when read: not compared)
            return None

    def build(self, ctx, args: dict) -> Launch:
        if self.kind == "builder":
            got = self.fn(ctx, **args)
            if not isinstance(got, Launch):
                raise TypeError(f"launch builder {getattr(self.fn, '__name__', self.fn)!r} must return "
                                f"kernbench.sweeps.Launch(kernel, grid, *args, **kwargs), got "
                                f"{type(got).__name__}")
            return got
        if self.sfr is not None:
            ctx.install_sfr(scope=self.sfr, ring=self.ring)
        if self.setup is None:
            return Launch(self.fn, self.grid, **args)
        got = self.setup(ctx, **args)
        if isinstance(got, (tuple, list)):
            # (the positional arguments; a swept value naming a keyword-only parameter is the
            # kernel's too, as with a dict)
            params = inspect.signature(self.fn).parameters
            kw = {k: v for k, v in args.items()
                  if k in params and params[k].kind == inspect.Parameter.KEYWORD_ONLY and k != "tl"}
            return Launch(self.fn, self.grid, *got, **kw)
        if isinstance(got, Mapping):
            names = set(inspect.signature(self.fn).parameters)
            kw = {k: v for k, v in args.items() if k in names}
            kw.update(got)
            return Launch(self.fn, self.grid, **kw)
        raise TypeError(f"setup must return the kernel's arguments as a tuple, list or dict, got "
                        f"{type(got).__name__}")


def make_target(target, grid=None, setup=None, sfr=None, ring=False) -> Target:
    """The sweep's target: a kernel (``grid``, ``setup``, the SFR install; each checked here,
    before any point) or a launch builder (which takes none of them), or a Target as made."""
    given = grid is not None or setup is not None or sfr is not None or not (
        isinstance(ring, (bool, np.bool_)) and not ring)
    if isinstance(target, Target):
        if given:  # (a review: ignored, the Target's own used)
            raise TypeError("a Target carries its own grid, setup, sfr and ring: give them to it")
        if target.kind not in ("kernel", "builder"):
            raise ValueError(f"Target kind must be 'kernel' or 'builder', got {short_repr(target.kind)}")
        return target
    if not callable(target):
        raise TypeError(f"sweep needs a kernel (a function with keyword-only tl) or a launch builder "
                        f"(ctx, **args) -> Launch, got {short_repr(target)}")
    if is_kernel(target):
        if grid is None:
            raise TypeError("sweeping a kernel needs grid=(PEs per cube, cubes)")
        if setup is not None and not callable(setup):  # (every row failed on it: a review)
            raise TypeError(f"sweep: setup must be a function (ctx, **args) -> the kernel's arguments, "
                            f"got {type(setup).__name__} {short_repr(setup)}")
        # (the install's own checks, before any point: a ring of "False" was a ring, silently)
        install = SfrInstall("pe" if sfr is None else sfr, ring)
        return Target(target, "kernel", _grid_of(grid), setup, install.scope, bool(install.ring))
    if given:
        raise TypeError(f"{getattr(target, '__name__', target)!r} takes no keyword-only tl, so it is a "
                        f"launch builder: it installs the SFR and returns Launch(kernel, grid, ...) "
                        f"itself (grid=, setup=, sfr= and ring= are for sweeping a kernel)")
    return Target(target, "builder")


def _grid_of(grid) -> tuple:
    """A kernel's grid, checked before any point as a launch checks it (bar the fit to each
    point's hardware): two positive ints (a review: 8 was a raw TypeError, (inf, 1) an error
    row per point)."""
    try:
        g = tuple(grid)
        ok = len(g) == 2 and all(is_whole(x) and x >= 1 for x in g)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"grid must be (PEs per cube used, cubes used), two positive ints, got {short_repr(grid)}")
    return tuple(int(x) for x in g)


# -- what the trace read of the hardware -----------------------------------------------------------
#: what reads the whole config at once: its ``__dict__`` (``vars(ctx.hw)``) and the ways to
#: copy or pickle it (a copy's reads would not be noted here)
_WHOLE = frozenset({"__dict__", "__reduce_ex__", "__reduce__", "__getstate__", "__deepcopy__",
                    "__copy__"})


class _RecordingHw(HardwareConfig):
    """A HardwareConfig that notes which of its top-level fields are read (a setup choosing a
    block size from ``ctx.hw.sram``); a sub-config read counts as reading all its keys, and
    reading it whole (``vars``, a copy, a pickle, ``==``, ``hash``) as reading every field.

    To the code reading it, it is the plain config: its ``__class__`` is HardwareConfig, so the
    dataclass ``==`` (which wants the same class) and ``hash`` match a HardwareConfig's (a
    table of tuned values keyed by config), ``vars`` gives its fields, and
    ``dataclasses.replace``, copies and pickles give plain configs; only ``type(ctx.hw)``
    tells it apart."""

    __class__ = property(lambda self: HardwareConfig)  # (type() still tells it apart)
    # the reads noted in a slot, not the instance's __dict__: vars(ctx.hw) is the plain
    # config's (a builder's HardwareConfig(**vars(ctx.hw)) failed on it: a review)
    __slots__ = ("_kb_reads",)

    def __getattribute__(self, name):
        if name in _TOP or name in _WHOLE:
            try:
                reads = object.__getattribute__(self, "_kb_reads")
            except AttributeError:  # (not set yet)
                reads = None
            if reads is not None:
                reads.update(_TOP if name in _WHOLE else (name,))
        return object.__getattribute__(self, name)

    def __reduce_ex__(self, protocol):
        # (copy, deepcopy, pickle: a plain config; reading this method noted every field read)
        return HardwareConfig, tuple(object.__getattribute__(self, f) for f in _TOP)


def _recording(hw: HardwareConfig) -> _RecordingHw:
    rec = _RecordingHw(**{f.name: object.__getattribute__(hw, f.name) for f in fields(hw)})
    object.__setattr__(rec, "_kb_reads", set())
    return rec


def hw_value(hw: HardwareConfig, key: str):
    obj = hw
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _on_dask_worker() -> bool:
    """Is this a dask.distributed worker's task? (distributed is imported there already.)"""
    d = sys.modules.get("distributed")
    if d is None:
        return False
    try:
        d.get_worker()
        return True
    except ValueError:
        return False


@dataclass
class TraceOutcome:
    """A trace (or the error that stopped it) and the non-shape hardware keys it read, with
    their values: another point may reuse it when its hardware agrees on them."""

    traced: Any  #: kernbench.runtime.TracedLaunch, or None
    error: dict | None  #: error figures
    reads: dict  #: dotted key -> value
    figures: dict | None = None  #: a functional-mode launch run whole: its row (error or not)

    def fits(self, hw: HardwareConfig) -> bool:
        return all(hw_value(hw, k) == v for k, v in self.reads.items())


def trace_one(target: Target, hw: HardwareConfig, args: dict, mode: str, replay: str | None = None,
              options: dict | None = None) -> TraceOutcome:
    """Build the launch on a fresh Context of ``hw`` and trace it. ``replay``: the tl.range
    replay mode ("on", "off", "verify"; None: KERNBENCH_REPLAY, as ctx.launch). In functional
    mode with the point's launch ``options`` (detail, max_cycles, strict_sram) the launch is run
    whole, as ``ctx.launch(..., mode="functional")`` runs it (traced, timed, then replayed on
    this Context's memory, where errors only replay finds are raised): the outcome's
    ``figures`` are its row, and it serves no other point."""
    from ..runtime import Context, executor
    from ..runtime.context import _kernel_kwargs

    rec = _recording(hw)
    stage = "setup"
    figures = None
    ctx = None
    try:
        ctx = Context(hw)
        # The builder or setup, and the kernel as it is traced (a kernel made by a factory may
        # read ctx.hw then), see a recording config, through ctx.hw and ctx.memory.hw alike.
        ctx.hw = ctx.memory.hw = rec
        try:
            launch = target.build(ctx, dict(args))
            stage = "trace"
            kw = _kernel_kwargs(launch.kwargs, {})
            traced, metas, handles = executor.trace_launch(ctx, launch.kernel, launch.grid, launch.args, kw,
                                                           mode=mode, replay=replay)
        finally:
            ctx.hw = ctx.memory.hw = hw
        error = None
        if mode == "functional" and options is not None:
            try:
                figures = row_figures(executor.time_traced(
                    ctx, launch.kernel, launch.args, kw, traced, metas, handles, mode="functional",
                    detail=options["detail"], max_cycles=options["max_cycles"],
                    strict_sram=options["strict_sram"]))
            except Exception as e:  # (as time_one's: the engine's or replay's error, no stage)
                figures = error_figures(e)
            traced = None
    except BaseException as e:
        # Any BaseException the point's code raised is its row: SystemExit (a setup's
        # sys.exit()), a class of the user's own (a review: on Dask it killed the task's
        # callback and the sweep waited forever). A KeyboardInterrupt in this process is the
        # user's Ctrl-C: the sweep stops (on a worker it is the point's row, not cached)
        if isinstance(e, KeyboardInterrupt) and not _on_dask_worker():
            raise
        from ..common.errors import KernbenchError

        traced = None
        # Whatever the setup or builder raised is "setup raised ...", a kernbench error it
        # called into too (a PlacementError from ctx.empty: a review found it unprefixed); one
        # raised while tracing or making the Context already says where it came from
        user_setup = stage == "setup" and ctx is not None
        error = error_figures(e, f"{stage} raised {type(e).__name__}"
                              if user_setup or not isinstance(e, KernbenchError) else "")
    read = object.__getattribute__(rec, "_kb_reads")
    reads = {}
    for top in sorted(read - set(SHAPE_KEYS)):
        for k, v in leaves(getattr(hw, top), top + "."):
            reads[k] = v
    return TraceOutcome(traced, error, reads, figures)


def time_one(outcome: TraceOutcome, target: Target, point: Point, hw: HardwareConfig) -> tuple:
    """``(figures, retraced)`` of one point, timing ``outcome``'s trace under ``hw`` (a
    functional-mode point: the row of its whole launch, launched again when ``outcome`` has
    none)."""
    o = point.options
    retraced = False
    functional = isinstance(o["mode"], str) and o["mode"] == "functional"  # (a Series' == is no bool)
    if not outcome.fits(hw) or (functional and outcome.error is None and outcome.figures is None):
        outcome = trace_one(target, hw, point.args, o["mode"], o.get("replay"), o)
        retraced = True
    if outcome.error is not None:
        return dict(outcome.error), retraced
    if outcome.figures is not None:
        return dict(outcome.figures), retraced
    pause_gc()  # as ctx.launch does: the cyclic GC would rescan a worker's many objects
    try:
        res = outcome.traced.time(hw, detail=o["detail"], max_cycles=o["max_cycles"],
                                  strict_sram=o["strict_sram"])
        return row_figures(res), retraced
    except Exception as e:
        return error_figures(e), retraced
    finally:
        resume_gc()


# -- Dask tasks (module-level: workers import them) -------------------------------------------------
def _code_by_marshal(code: types.CodeType):
    return marshal.loads, (marshal.dumps(code),)


def _dumps(obj) -> bytes:
    """cloudpickle's bytes of ``obj``, code shipped by value keeping its file name: cloudpickle
    writes ``<dynamic-code>`` there, and a worker's error rows (``error_where``, the message)
    would not name the kernel's file as the serial path's do. The code goes as marshal's bytes
    (code constants always marshal; the workers run this Python, as cloudpickle needs anyway)."""
    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        dispatch_table = ChainMap({types.CodeType: _code_by_marshal},
                                  getattr(cloudpickle.Pickler, "dispatch_table", copyreg.dispatch_table))

    buf = io.BytesIO()
    Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


class _ByValue:
    """The sweep's target as cloudpickle bytes, for Dask workers. distributed pickles with plain
    pickle first, which ships a function by reference whatever cloudpickle was told, so a
    kernel whose module the workers cannot import (a file loaded by path) would fail there."""

    __slots__ = ("data",)

    def __init__(self, obj):
        self.data = _dumps(obj)

    def load(self):
        import cloudpickle

        return cloudpickle.loads(self.data)


def _check_args_ship(points: list) -> None:
    """Raise TypeError naming the first argument value of ``points`` that cannot be pickled for
    Dask's workers (each distinct value tried once), before any task is submitted: Dask's own
    error names only its task graph."""
    import cloudpickle

    seen: set = set()
    for p in points:
        for k, v in p.args.items():
            if id(v) in seen:
                continue
            seen.add(id(v))
            try:
                cloudpickle.dumps(v)
            except Exception as e:
                raise TypeError(f"kernbench.sweep on Dask: argument {short_repr(k)} = {short_repr(v, 80)} cannot "
                                f"be pickled for the workers ({type(e).__name__}: {exc_text(e)}); pass "
                                f"workers=1 to run the sweep "
                                f"in this process (docs/sweeps.md, On Dask)") from e


def _shipped(target: "_ByValue") -> "_ByValue":
    return target


def _trace_task(target, hw, args, mode, replay, options):
    # (args arrive as bytes, unpickled here: a value a worker cannot rebuild fails this task,
    # which is the point's row; as a task argument it failed in the worker's connection
    # handler, where distributed reports nothing, and the sweep waited forever)
    tgt = target.load()
    return trace_one(tgt, hw, args.load(), mode, replay, options), tgt.values()


def _time_task(traced, target, point, hw):
    """(point index, figures, traced again, the target's values where the point's trace was
    made: Target.values)."""
    outcome, values = traced
    point = point.load()
    tgt = target.load()
    fig, retraced = time_one(outcome, tgt, point, hw)
    return point.index, fig, retraced, (tgt.values() if retraced else values)


# -- the sweep -------------------------------------------------------------------------------------
def _check_hw_keys(base: HardwareConfig, pts: list) -> None:
    """Unknown hardware keys fail the whole sweep at once (a typo, not a point's failure)."""
    data = base.to_dict()
    for key in sorted({k for p in pts for k in p.hw}):
        node = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise HardwareConfigError(unknown_key(key))
            node = node[part]
        if isinstance(node, dict):
            raise HardwareConfigError(f"hardware key '{key}' is a table: sweep one of its keys "
                                      f"({', '.join(key + '.' + k for k in node)})")


def _group_key(point: Point, hw: HardwareConfig, args_key) -> str:
    """The points that may share a trace: the same arguments (``args_key``, their strict
    canonical form), mode, replay mode and machine shape. Points whose arguments have no
    faithful form (``args_key`` None: an object keyed by its repr) share a trace only with
    points holding the very same objects (the sweep keeps them all alive meanwhile, so their
    ids are theirs); a functional-mode point (its replay writes its own Context's memory) is a
    group of its own."""
    mode, replay = point.options["mode"], point.options["replay"]
    if not isinstance(mode, str) or mode == "functional" or not (replay is None or isinstance(replay, str)):
        # (a mode that is no str is refused by its launch, in a group of its own: a Series
        # compared with == raised pandas' "truth value is ambiguous" here, a review)
        return f"own:{point.index}"
    args = args_key if args_key is not None else {"same objects": [[k, id(v)] for k, v in point.args.items()]}
    return digest(args, point.options["mode"], point.options["replay"], [hw.n_cubes, hw.pes_per_cube])


def _replay_option(value):
    """The replay mode a launch with option ``value`` uses (None: KERNBENCH_REPLAY, read here,
    where the sweep is called: workers get it explicitly); a bad value stays, to fail its points
    as it fails ctx.launch."""
    from ..runtime.executor import replay_mode

    try:
        return replay_mode(value)
    except ValueError:
        return value


class _Progress:
    """The sweep's progress on standard error: rich's bar on a terminal; elsewhere (a log, CI),
    when asked for, a line at each tenth of the points and at the end (rich draws no live
    display off a terminal: ``progress=True`` printed nothing there, a review)."""

    def __init__(self, total: int, enabled):
        self.p = None
        self.lines = None
        tty = sys.stderr.isatty()
        if enabled is None:
            enabled = tty
        if enabled and total and not tty:
            self.lines = [0, total, time.perf_counter(), 0]  # done, total, start, tenths printed
        elif enabled and total:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.p = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              TimeRemainingColumn(), transient=True)
            self.task = self.p.add_task("sweep", total=total)
            self.p.start()

    def advance(self, n: int = 1):
        if self.p is not None:
            self.p.advance(self.task, n)
        elif self.lines is not None:
            st = self.lines
            st[0] += n
            tenths = 10 * st[0] // st[1]
            if tenths > st[3]:
                st[3] = tenths
                print(f"sweep: {st[0]:,} of {st[1]:,} points ({time.perf_counter() - st[2]:.1f} s)",
                      file=sys.stderr, flush=True)

    def close(self):
        if self.p is not None:
            self.p.stop()


def _by_value(*fns) -> None:
    """Dask workers unpickle functions by module name; a kernel module they cannot import (a
    file loaded by path, a test module) is shipped by value instead."""
    import cloudpickle

    from ..common.cache import _user_file

    for fn in fns:
        mod = sys.modules.get(getattr(fn, "__module__", None) or "")
        if mod is None or mod.__name__ == "__main__":
            continue
        if _user_file(getattr(mod, "__file__", None)):
            try:
                cloudpickle.register_pickle_by_value(mod)
            except ValueError:
                pass


def _main_guard(node) -> str | None:
    """``"=="`` for ``if __name__ == "__main__":``, ``"!="`` for ``if __name__ != "__main__":``
    (either way round), else None."""
    t = node.test if isinstance(node, ast.If) else None
    if not (isinstance(t, ast.Compare) and len(t.ops) == 1 and isinstance(t.ops[0], (ast.Eq, ast.NotEq))):
        return None
    sides = [t.left, t.comparators[0]]
    if (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides)):
        return "==" if isinstance(t.ops[0], ast.Eq) else "!="
    return None


def unguarded_script_line(frame=None) -> tuple | None:
    """``(path, line)`` of the statement of the running script (the ``__main__`` module, a file)
    from which this call comes, when that statement is at the script's top level outside
    ``if __name__ == "__main__":`` (a decorator's line included), or inside one whose ``else``
    branch calls anything (the workers run that branch); else None (an interactive session, a guarded call, a
    package's ``__main__.py``, which multiprocessing never runs again, as ``python -m kernbench``;
    a script that cannot be read). Worker processes started by spawning import the script
    again, running such a statement in each of them."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec = getattr(main, "__spec__", None)
    if (not path or os.path.splitext(os.path.basename(path))[0] == "__main__"
            or (spec is not None and str(spec.name).endswith(".__main__"))):
        return None  # (multiprocessing runs a __main__.py only in the parent: python -m pkg)
    f = frame if frame is not None else sys._getframe(1)
    top = None
    while f is not None:  # the outermost frame of the script's own top-level code
        if f.f_code.co_name == "<module>" and f.f_globals.get("__name__") == "__main__":
            top = f
        f = f.f_back
    if top is None or top.f_code.co_filename != path:
        return None
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    line = top.f_lineno
    for node in tree.body:
        if _first_line(node) <= line <= (node.end_lineno or node.lineno):
            guard = _main_guard(node)
            if guard is None:
                return path, line
            # The guard's branch for __name__ other than "__main__" (the else of ==, the body of
            # !=) runs in every worker, as it imports the script. One that calls anything may
            # start the sweep there.
            workers = node.orelse if guard == "==" else node.body
            calls = any(isinstance(x, ast.Call) for x in ast.walk(ast.Module(workers, [])))
            return (path, line) if calls else None
    return None


def unreadable_main_script() -> str | None:
    """The path a spawned worker process would run as the main module (multiprocessing's own
    choice: the ``__main__`` module's file when it was not run by module name with ``-m``) when
    no such file can be read there: a script given on stdin (``python - < job.py``, whose file is
    ``<stdin>``), or one deleted since it started; else None. Such workers fail as they start
    (FileNotFoundError, then distributed's "Nanny failed to start": a review)."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) is not None:
        return None  # (run by module name: workers import it by name)
    path = getattr(main, "__file__", None)
    if path is None or os.path.splitext(os.path.basename(path))[0] == "ipython":
        return None  # (an interactive session; multiprocessing skips IPython's main)
    import multiprocessing.process as mp_process

    origin = getattr(mp_process, "ORIGINAL_DIR", None)
    full = os.path.join(origin, path) if not os.path.isabs(path) and origin is not None else path
    full = os.path.normpath(full)
    # (named as Python names it: "<stdin>", not the folder it was run in joined to that)
    return None if os.path.isfile(full) and os.access(full, os.R_OK) else path


def _first_line(node) -> int:
    # a statement's first line, its decorators' included (a call in a decorator runs there)
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])


def _dask_client(workers, client, scheduler, most):
    """(client, cleanup) for the run, or (None, None) for the serial path. A cluster started
    here has at most ``most`` workers (the points to run): more would sit idle."""
    if client is not None:
        return client, None
    if scheduler is None and workers is not None and int(workers) <= 1:
        return None, None
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:  # (by default the sweep runs here; asked for Dask, it says why not)
        if scheduler is None and workers is None:
            return None, None
        missing = isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in ("distributed", "dask")
        if missing:
            raise ImportError(f"a sweep on Dask needs dask.distributed: {SWEEP_EXTRA_HINT}") from None
        raise ImportError(f"dask.distributed is installed but cannot be imported: {e}") from e
    if scheduler is not None:
        c = Client(scheduler)
        return c, c.close
    n = min(int(workers) if workers is not None else (os.cpu_count() or 1), most)
    if n <= 1:
        return None, None
    import dask

    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") != "fork":
        lost = unreadable_main_script()
        if lost is not None:
            warnings.warn(
                f"kernbench.sweep ran in this process, not on {n} Dask workers: worker processes "
                f"run the main script again, and {lost} cannot be read (a script given on stdin, "
                f"or deleted since it started). Run it from a file to use Dask, or pass workers=1 "
                f"to choose this (docs/sweeps.md, On Dask)", stacklevel=3)
            return None, None
        at = unguarded_script_line()
        if at is not None:
            # Each worker would import the script again and run this sweep in its bootstrap:
            # multiprocessing refuses that ("Nanny failed to start"). The rows are the same
            # either way; say how to get the workers.
            warnings.warn(
                f"kernbench.sweep ran in this process, not on {n} Dask workers: it is called from "
                f"the top level of the script {os.path.basename(at[0])} (line {at[1]}), and worker "
                f"processes import the script again. Put the sweep under "
                f'`if __name__ == "__main__":` to run it on Dask, or pass workers=1 to choose '
                f"this (docs/sweeps.md, On Dask)", stacklevel=3)
            return None, None
    interrupted: list = []
    try:
        with _sigint_held() as interrupted:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            try:
                c = Client(cluster)
                from ._workers import IgnoreSigint

                c.register_plugin(IgnoreSigint())
            except BaseException:
                cluster.close()
                raise
    except BaseException:
        if interrupted:  # (a Ctrl-C held while the start failed: passed on, not lost: a review)
            interrupted[0]()
        raise

    def cleanup():
        c.close()
        cluster.close()
    if interrupted:  # (Ctrl-C while it started: passed on; closed if that raises)
        try:
            interrupted[0]()
        except BaseException:
            cleanup()
            raise
    return c, cleanup


@contextlib.contextmanager
def _sigint_held():
    """Hold a Ctrl-C (SIGINT) back until the block ends; yields a list that then holds a callable
    passing it on to the handler that was there (raising KeyboardInterrupt). LocalCluster(...)
    interrupted while it starts cancels its own start and loses the worker processes it was
    starting: nothing can close them (distributed's constructor cleans up after an Exception
    only). A second Ctrl-C meanwhile goes to that handler at once (a start that hangs). Only in
    the main thread, where Python runs signal handlers, and while Python handles SIGINT."""
    held: list = []
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield held
        return

    def hold(signum, frame):
        held.append(lambda: previous(signum, frame))
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, hold)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)


def cache_choice(who: str, cache):
    """A sweep's or tune's ``cache`` checked before any point: True or False (a numpy bool as
    its value) or a folder (a str or os.PathLike) that is one or can be made. Returns the bool,
    or the folder as given. Raises TypeError for another kind, ValueError for a file or a path
    that cannot be a folder, naming ``who``."""
    flag = as_flag(cache)
    if flag is not None:
        return flag
    if not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"{who}: cache must be True, False or a folder (a str or os.PathLike), "
                        f"got {type(cache).__name__} {short_repr(cache)}")
    folder = os.path.abspath(os.path.expanduser(os.fspath(cache))) if os.fspath(cache) else ""
    # (the folder, or the first of its parents that exists, must be a folder)
    while folder and not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not folder or not os.path.isdir(folder):
        raise ValueError(f"{who}: cache must be a folder (or one that can be made), got "
                         f"{os.fspath(cache)!r}" + (f": {short_repr(folder)} is a file" if folder else ""))
    return cache


def sweep(target, grid=None, *, hw="default", hardware=None, args=None, options=None, setup=None,
          sfr: str | None = None, ring: bool = False, workers: int | None = None, client=None,
          scheduler: str | None = None, cache: "bool | str | os.PathLike" = True, progress: bool | None = None):
    """Run ``target`` at every point of hardware x args x options; a SweepResult (docs/sweeps.md).

    ``target``: a kernel (a function with keyword-only ``tl``; give ``grid``, and ``setup(ctx,
    **args)`` returning its arguments as for ``kernbench run``, and ``sfr``/``ring``, default an
    open line of each cube's PEs), or a launch builder ``builder(ctx, **args) ->
    Launch(kernel, grid, *args, **kwargs)``. ``hw``: the base hardware (preset, TOML path, dict
    or HardwareConfig). ``hardware``, ``args``, ``options``: the axes (kernbench.sweeps.grid):
    dotted hardware keys, kernel/builder arguments, launch options (mode, detail, strict_sram,
    max_cycles, replay: None reads KERNBENCH_REPLAY here; a functional-mode point is a whole
    functional launch, replay included). ``workers``: Dask worker processes on this machine (default one per core when
    dask.distributed is installed; 1: in this process); ``client`` / ``scheduler``: an existing
    Dask cluster. ``cache``: True (the kernbench cache folder), a folder, or False; a point whose
    arguments have no faithful key (an object keyed by its repr) is neither cached nor shares a
    trace, and a target whose code reads data too deep to key is not cached (a warning).

    A point that fails (a kernel error, over SRAM with strict_sram) is a row with its error, not
    a raise. Raises ValueError or TypeError (a value of the wrong type: a target that is not
    callable, a kernel without ``grid``, ``cache=3``, ``args=[1]``) for a bad target, axis,
    option, ``workers``, ``cache`` or ``progress``;
    HardwareConfigError for bad hardware (the base, or an axis's values, before any launch);
    ImportError naming the extra to install when ``workers`` > 1 or ``client`` needs
    dask.distributed; KeyboardInterrupt when interrupted (the rows done are cached). Warns
    CacheNotWrittenWarning when the cache folder cannot be written."""
    from .result import SweepResult

    if workers is not None and (not is_whole(workers) or workers < 1):
        raise ValueError(f"kernbench.sweep: workers must be a positive int (Dask worker processes on "
                         f"this machine; 1: in this process) or None (one per core), got {short_repr(workers)}")
    if client is not None and not all(callable(getattr(client, a, None)) for a in ("submit", "scheduler_info")):
        # (used as it was given: an AttributeError with two points, ignored with one; a review)
        raise TypeError(f"kernbench.sweep: client must be a dask.distributed Client (or None), got "
                        f"{type(client).__name__} {short_repr(client)}")
    if scheduler is not None and not (isinstance(scheduler, str) and scheduler.strip()) \
            and not hasattr(scheduler, "scheduler_address"):
        # (Client("") waited for a scheduler at no address; a number failed inside distributed)
        raise TypeError(f"kernbench.sweep: scheduler must be a Dask scheduler's address (e.g. "
                        f"'tcp://10.0.0.1:8786') or a Dask cluster, got {short_repr(scheduler)}")
    if progress is not None and as_flag(progress) is None:  # ("no" is true by truth: a review)
        raise ValueError(f"kernbench.sweep: progress must be True, False or None (a bar on a "
                         f"terminal), got {short_repr(progress)}")
    cache = cache_choice("kernbench.sweep", cache)
    t0, c0 = time.perf_counter(), time.process_time()
    tgt = make_target(target, grid, setup, sfr, ring)
    base = load_hw(hw)
    pts = points_of(hardware, args, options)
    _check_hw_keys(base, pts)
    for p in pts:  # (the environment's replay mode changes the rows: in the keys, given to workers)
        p.options["replay"] = _replay_option(p.options["replay"])
    store = None
    if cache:
        store = DiskCache("sweep", None if cache is True else cache)
    ident = None
    if store is not None:
        try:
            ident = tgt.identity()
        except NotCanonical as e:
            warnings.warn(f"kernbench.sweep: not cached: the target's key cannot hold what its code "
                          f"reads ({e})", stacklevel=2)
            store = None
    args_keys: list = [None] * len(pts)
    class_codes: dict = {}  # (a class met at every point: fingerprinted once)
    for p in pts:
        try:
            args_keys[p.index] = canonical(p.args, strict=True, class_codes=class_codes)
        except NotCanonical:  # (an argument keyed by its repr: not cached, grouped by identity)
            pass

    rows: list = [None] * len(pts)
    hws: list = [None] * len(pts)
    keys: list = [None] * len(pts)
    todo: list[Point] = []
    n_cached = 0
    for p in pts:
        try:
            hws[p.index] = base.with_overrides(p.hw) if p.hw else base
            hw_id = hws[p.index].to_dict()
        except HardwareConfigError as e:
            hw_id = [base.to_dict(), p.hw]
            rows[p.index] = error_figures(e, "hardware")
        if store is not None and args_keys[p.index] is not None:
            try:
                keys[p.index] = digest(_KEY_VERSION, ident, hw_id, args_keys[p.index], p.options)
            except NotCanonical:  # (an option or a refused hardware value with no key: its
                pass  # repr raises; a review found it aborting the sweep. Computed, not cached)
            if rows[p.index] is None and keys[p.index] is not None:  # (a bad config is known at once: nothing to cache)
                hit = store.get(keys[p.index])
                if is_row(hit):
                    rows[p.index] = hit
                    n_cached += 1
                    continue
        if rows[p.index] is None:
            todo.append(p)

    groups: dict[str, list[Point]] = {}
    for p in todo:
        groups.setdefault(_group_key(p, hws[p.index], args_keys[p.index]), []).append(p)
    # (every point is computed, from the cache or refused: its hardware config is bad)
    stats = {"points": len(pts), "cached": n_cached, "computed": len(todo),
             "refused": len(pts) - n_cached - len(todo), "trace_groups": len(groups), "traces": 0,
             "workers": 1, "uncacheable": 0}

    unwritable: list = []  # (the cache folder refused a write: the rest are not tried)
    deferred: list = []  # (on Dask, the rows to cache once the target's code is known unchanged)

    def put(key: str, fig: dict, stacklevel: int) -> None:
        if unwritable:
            return
        try:
            store.put(key, fig)
        except OSError as e:  # (read-only, full, an entry that is a folder: the rows still count)
            unwritable.append(e)
            _cache_not_written(not_cached_message("kernbench.sweep", store, e), stacklevel)

    def done(p: Point, fig: dict) -> None:
        ok = cacheable(fig)
        fig.pop(TRANSIENT, None)  # (a mark for cacheable, not a column)
        stats["uncacheable"] += not ok
        rows[p.index] = fig
        if keys[p.index] is not None and ok:
            if dc is not None:
                deferred.append((keys[p.index], fig))
            else:
                put(keys[p.index], fig, 5)
        bar.advance()

    def cache_deferred() -> None:
        # Workers import the target's modules from their files when they first run it, after
        # the keys were made here: a helper edited meanwhile ran there under the old code's key
        # (a review). The rows are cached only when the code is still what the keys say; also
        # those done when the sweep is interrupted (Ctrl-C), so that a re-run resumes.
        try:
            same = tgt.identity() == ident
        except NotCanonical:
            same = False
        if same:
            for key, fig in deferred:
                put(key, fig, 4)
        else:
            stats["uncacheable"] += len(deferred)
            _cache_not_written("kernbench.sweep: the results were not cached: the target's code (its "
                               "module or a module it reaches) changed on disk while the sweep ran, "
                               "so the Dask workers may have run the new code; the results returned "
                               "are complete (run the sweep again to cache them)", 3)
        deferred.clear()

    bar = _Progress(len(todo), progress)
    try:
        dc, cleanup = (None, None) if len(todo) <= 1 else _dask_client(workers, client, scheduler, len(todo))
        try:
            if dc is None:
                stats["traces"] = _run_serial(tgt, groups, hws, done)
            else:
                stats["workers"] = len(dc.scheduler_info().get("workers", {})) or None
                stats["traces"] = _run_dask(dc, tgt, groups, hws, done)
        finally:
            if cleanup is not None:
                cleanup()
            if deferred:
                cache_deferred()
    finally:
        bar.close()
    stats["wall_seconds"] = time.perf_counter() - t0
    stats["cpu_seconds_client"] = time.process_time() - c0
    # (a sweep of no points still has its swept columns: the names its other axes give)
    names = None if pts else list(dict.fromkeys(
        k for axis, what in ((args, "argument"), (options, "launch option"), (hardware, "hardware key"))
        for q in expand_axis(axis, what) for k in q))
    return SweepResult(pts, rows, base, stats, names)


#: per thread: the CacheNotWrittenWarning messages of the sweep kernbench.sweeps.tune runs,
#: which tune gives under its own name (None: warned as they come)
_unwritten = threading.local()


def _cache_not_written(message: str, stacklevel: int) -> None:
    # (stacklevel: as warnings.warn's from the caller)
    sink = getattr(_unwritten, "messages", None)
    if sink is not None:
        sink.append(message)
    else:
        warnings.warn(message, CacheNotWrittenWarning, stacklevel=stacklevel + 1)


@contextlib.contextmanager
def cache_warnings_collected():
    """The messages of the CacheNotWrittenWarnings that sweeps run on this thread inside the
    ``with`` would give, as a list, instead of the warnings (a per-thread switch: a review found
    ``warnings.catch_warnings``, process-wide, left every later warning of the process lost
    after two tunes overlapped in threads)."""
    before = getattr(_unwritten, "messages", None)
    _unwritten.messages = got = []
    try:
        yield got
    finally:
        _unwritten.messages = before


class CacheNotWrittenWarning(UserWarning):
    """The cache folder refused a write: the results returned are complete, not cached."""


def not_cached_message(who: str, store: DiskCache, e: OSError) -> str:
    return (f"{who}: the results were not cached: the cache folder {str(store.folder)!r} cannot be "
            f"written ({type(e).__name__}: {exc_text(e)}); the results returned are complete (pass "
            f"cache=False, or another folder, to silence this)")


def _run_serial(tgt: Target, groups: dict, hws: list, done: Callable) -> int:
    traces = 0
    for members in groups.values():
        outcomes: list[TraceOutcome] = []
        for p in members:
            hw = hws[p.index]
            oc = next((o for o in outcomes if o.fits(hw)), None)
            if oc is None:
                oc = trace_one(tgt, hw, p.args, p.options["mode"], p.options["replay"], p.options)
                outcomes.append(oc)
                traces += 1
            fig, _ = time_one(oc, tgt, p, hw)
            done(p, fig)
    return traces


def _run_dask(dc, tgt: Target, groups: dict, hws: list, done: Callable) -> int:
    from distributed import as_completed

    _by_value(tgt.fn, tgt.setup)
    try:
        shipped = _ByValue(tgt)
    except Exception as e:  # (the serial path needs no pickling: say how to get it)
        raise TypeError(f"kernbench.sweep on Dask: the target cannot be pickled for the workers "
                        f"({type(e).__name__}: {exc_text(e)}); pass workers=1 to run the sweep in this "
                        f"process (docs/sweeps.md, On Dask)") from e
    _check_args_ship([p for members in groups.values() for p in members])
    # A task, not scattered data: when a worker is lost the scheduler computes it again on
    # another, where scattered data would be gone and every point's task with it
    target_f = dc.submit(_shipped, shipped, pure=False, priority=20)
    futures = []
    point_of = {}
    for members in groups.values():
        first = members[0]
        # The trace stays on the worker that made it; each other worker fetches it once, when it
        # runs its first point of the group (Dask keeps a task's inputs until its last dependent).
        tf = dc.submit(_trace_task, target_f, hws[first.index], _ByValue(first.args),
                       first.options["mode"], first.options["replay"], first.options, pure=False,
                       priority=10)
        for p in members:
            f = dc.submit(_time_task, tf, target_f, _ByValue(p), hws[p.index], pure=False)
            futures.append(f)
            point_of[f.key] = p
        del tf
    retraced = 0
    ours = tgt.values()
    if ours is None:
        warnings.warn("kernbench.sweep on Dask: the values the target reads cannot be compared with the "
                      "workers' (data nested too deep to key, or state that raises when read): a value "
                      "set in this process in a module the workers import from its file (cfg.X = ...) "
                      "is not seen there; pass workers=1 for this process's values (docs/sweeps.md, On "
                      "Dask)", stacklevel=3)
    differ: list = []  # (points whose worker's target reads other values than this process's)
    for f in as_completed(futures):
        p = point_of[f.key]
        try:
            index, fig, again, theirs = f.result()
            if ours is not None and theirs != ours:
                differ.append(p)
                f.release()
                continue
        except Exception as e:  # a worker lost, a task that could not be unpickled: that point's row
            fig, again = error_figures(e, "dask"), False
            fig["error_type"] = "DaskError:" + type(e).__name__
            if getattr(dc, "status", None) in ("closing", "closed") or "Cancelled" in type(e).__name__:
                # (a task cancelled "for reason: unknown" said nothing of why: a review)
                fig["error"] = (f"the point's Dask task was cancelled: the client given as client=, "
                                f"or its cluster, closed while the sweep ran ({fig['error']})")
        retraced += again
        done(p, fig)
        f.release()
    if retraced:
        warnings.warn(f"{retraced} point(s) were traced again on their own: the setup read hardware keys "
                      f"that differ between points of one trace group (docs/sweeps.md)", stacklevel=3)
    again = 0
    if differ:
        # A worker imports the modules the target reaches by name: their values there are their
        # files' (a value set here, cfg.REPS = 3, is not), or an edit made since. Its rows
        # would be of other code than the key and the serial path say: computed here instead.
        warnings.warn(f"kernbench.sweep: {len(differ)} point(s) were computed again in this process: "
                      f"the Dask workers' copy of the target reads other values or runs other code "
                      f"than this process's (a module it reaches, imported there from its file: a "
                      f"value set here, such as cfg.X = ..., or an edit not reloaded here); the rows "
                      f"are this process's (docs/sweeps.md, On Dask)", stacklevel=3)
        redo = {id(p) for p in differ}
        sub = {k: [p for p in members if id(p) in redo] for k, members in groups.items()}
        again = _run_serial(tgt, {k: m for k, m in sub.items() if m}, hws, done)
    return len(groups) + retraced + again

