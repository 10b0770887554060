"""The ``kernbench`` command line.

    kernbench diag [--panel NAME ...] [--hw PRESET] [--shape small|llama70b] [--context N]
                   [--cubes N] [--causal] [--decode-rows N] [--tune [--no-cache | --cache-dir DIR]]
                   [--table] [--trace FILE] [--pes LIST] [--window START:END]
                   [--json FILE] [--plot FILE] [--profile]
    kernbench run MODULE:KERNEL --grid P,C [--arg NAME=VALUE ...] [--hw PRESET]
                  [--sfr pe|cube|two_level] [--ring] [--mode functional|timing]
                  [--trace FILE] [--pes LIST] [--window START:END]
                  [--json FILE] [--plot FILE] [--save FILE.npz] [--profile]
    kernbench hw list
    kernbench hw show NAME
    kernbench sweep (MODULE:KERNEL --grid P,C | --panel NAME) [--set KEY=V1,V2 ...]
                    [--arg NAME=V1,V2 ...] [--option NAME=V1,V2 ...] [--workers N | --scheduler ADDR]
                    [--out FILE.csv|.parquet] [--plot FILE --x COL --y COL --hue COL] [--pareto COST]

Errors are printed as one line, ``kernbench: error: ...``, with exit status 2; ``--debug`` shows
the traceback and the whole message instead (exit status 2 all the same). ``diag`` exits 1 when
a panel fails, ``run`` when the module's check fails, ``sweep`` when a point fails. Runs that take more than a second show a
progress bar on a terminal. docs/reports.md describes every command.

``kernbench.diag.run_panels`` is called with ``progress=callback``; the callback accepts
``progress(description, done, total)`` (any of them may be omitted; keywords ``description``,
``done``, ``total`` work too).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import stat
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import Optional, Sequence

from .common.errors import NAMES_A_FOLDER, ends_in_separator, exc_text, file_line
from .common.files import output_file
from .common.shown import rich_text

__all__ = ["main", "parse_value", "parse_grid", "parse_pes", "parse_window", "load_kernel", "DelayedProgress"]

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
#: stdout closed under us (`kernbench diag | head -1`): the status a shell gives a process
#: SIGPIPE ends (128 + 13), never 1, which says a panel or a check failed
EXIT_PIPE = 141

_RUN_EPILOG = """\
kernel arguments:
  The kernel is a plain function whose last parameter is keyword-only `tl`, e.g.
      def vadd(x_ptr, y_ptr, out_ptr, n, *, tl): ...
  Its other parameters are filled, by name, from --arg NAME=VALUE. Values are parsed as
  int (42, 0x40, 4K = 4096, 1M = 1048576; leading zeros are decimal: 010 is 10), float
  (0.5, 1e-3), True/False/None in any case, a comma list (1,2,3 -> a tuple; 1, is a one-item
  tuple, an empty value between commas an error), or else kept as a string (f16, an
  identifier). In quotes, a value is the string between them: --arg 'mode="none"' passes
  the string none.

  Pointer arguments need device memory. Give the kernel's module a function
      def setup(ctx, **args): ...
  It receives the kernbench.Context (hardware and SFR already installed) and every --arg
  as a keyword; it allocates and places the inputs and returns the kernel's arguments:
  a tuple/list (passed positionally, as is) or a dict by parameter name; with a dict,
  --arg values that name kernel parameters fill the rest, in the kernel's signature
  order. A module with several kernels may define setup_<kernel>(ctx, **args) for one
  of them; it wins over setup.

  To check the numbers (--mode functional), give the module
      def check(ctx, args, result): ...
  args holds every kernel argument by name (device arrays as DeviceArray: read them with
  ctx.gather(args["out_ptr"])) and every --arg. Raising (an assert) or returning False
  fails the run with exit status 1. check_<kernel> wins over check, as for setup.
  --save out.npz writes the array arguments the kernel stored to (np.load reads them).

examples:
  kernbench run my_kernels.py:vadd --grid 8,1 --arg n=4096 --mode functional --save out.npz
  kernbench run my_pkg.attn:ring_attention --grid 8,4 --sfr cube --ring --arg S=4K \\
      --trace attn.json --plot attn.png
"""


# -- small parsers -----------------------------------------------------------------------------
class CliError(Exception):
    """A usage or input problem reported as one line with exit status 2."""


_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _comma_items(text: str) -> list:
    """The items of a comma list, the one rule of ``run --arg`` and sweep's value lists: an
    empty item between commas is a ValueError (a typo, not a value to drop silently); a
    trailing comma ends a one-item list (``8,``)."""
    items, quote, start = [], None, 0
    for i, ch in enumerate(text):
        # (a quote opening an item runs to its match, commas and all: 'a,b',c; one inside an
        # item is the string's own: it's)
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"" and not text[start:i].strip():
            quote = ch
        elif ch == ",":
            items.append(text[start:i])
            start = i + 1
    if quote:
        raise ValueError(f"an unclosed {quote} in {text.strip()!r}")
    items.append(text[start:])
    if any(not v.strip() for v in items[:-1]):
        raise ValueError(f"an empty value in {text.strip()!r}: V1,V2,... with no empty one between commas")
    return [v for v in items if v.strip()]


def _int(text: str) -> int:
    """An int as Python writes it (0x40, 1_024), and a decimal one with leading zeros too (010
    is 10, not octal: Python refuses 010, and 0256 read as a float broke int parameters)."""
    try:
        return int(text, 0)
    except ValueError:
        if re.fullmatch(r"[+-]?0[0-9_]*", text.strip()):
            return int(text, 10)
        raise


def parse_value(text: str):
    """A --arg value: int (with 0x, _ and K/M/G binary suffixes; leading zeros are decimal: 010
    is 10), float, True/False/None in any case (true, none), a comma list (tuple; an empty value
    between commas is a ValueError), or the string itself (identifiers such as dtype names). A
    value in quotes, '...' or "...", is the string between them, as it is, commas included:
    the way to pass a string that reads as another value ("none", "4K", "nan", "a,b")."""
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"" and s[0] not in s[1:-1]:
        return s[1:-1]  # (commas and all: "x,y" is one string)
    items = _comma_items(s) if "," in s else None
    if items is not None and (len(items) > 1 or s.rstrip().endswith(",")):
        return tuple(parse_value(p) for p in items)
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    try:
        return _int(s)
    except ValueError:
        pass
    if len(s) > 1 and s[-1].lower() in _SUFFIX:
        try:
            return _int(s[:-1]) * _SUFFIX[s[-1].lower()]
        except ValueError:
            pass
    try:
        return float(s)
    except ValueError:
        return s


def _positive_int(text: str) -> int:
    try:
        v = parse_value(text)
    except ValueError:  # (1,,2: not an integer either)
        v = None
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (e.g. 4096 or 4K), got {text!r}")
    return v


def parse_grid(text: str) -> tuple:
    """'8,4' or '8x4' -> (8, 4): PEs per cube used, cubes used. '8' -> (8, 1)."""
    # (whole: 'x8', '8x' and ',8' are typos, not 8)
    m = re.fullmatch(r"\s*([+-]?\d+)\s*(?:[,x]\s*([+-]?\d+)\s*)?", text)
    vals = (int(m[1]), int(m[2] or 1)) if m else ()
    if len(vals) != 2 or min(vals) < 1:
        raise argparse.ArgumentTypeError(
            f"grid must be PES,CUBES with positive integers (e.g. 8,4), got {text!r}"
        )
    return vals


def _unique_args(pairs, option: str) -> dict:
    """(name, value) pairs of a repeatable option as a dict; a name given twice is a CliError
    (the second would silently replace the first)."""
    out: dict = {}
    for name, value in pairs or []:
        if name in out:
            raise CliError(f"{option} {name} is given twice ({out[name]!r} and {value!r}): give it once")
        out[name] = value
    return out


def _parse_arg(text: str) -> tuple:
    name, eq, value = text.partition("=")
    name = name.strip()
    if not eq or not _IDENT.match(name) or "." in name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, parse_value(value)
    except ValueError as e:  # (an empty value in a list)
        raise argparse.ArgumentTypeError(f"{e} (in {text!r})") from None


def _index(text: str, what: str) -> int:
    """A non-negative integer of --pes or --window (``_`` allowed)."""
    t = text.strip().replace("_", "")
    if not t or not t.isdigit():
        raise ValueError(f"{what} must be a non-negative integer, got {text.strip()!r}")
    return int(t)


def parse_pes(text: str) -> list:
    """The CLI's ``--pes``: a comma list of global PE indices (``5``), inclusive ranges (``0-3``)
    and PEs of one cube as ``CUBE/PE`` or ``CUBE/FIRST-LAST`` (``1/0-7``: PEs 0..7 of cube 1).
    Returns what ``to_perfetto(pes=...)`` takes (global indices and ``(pe, cube)`` pairs);
    raises ValueError naming the bad item."""
    out: list = []
    items = [s.strip() for s in text.split(",")]
    if not any(items):
        raise ValueError(f"expected a list of PEs such as 0,3-5 or 1/0-7, got {text!r}")
    for k, item in enumerate(items):
        if not item:
            if k + 1 < len(items):  # (a trailing comma is fine; "0,,1" a typo, as --arg reads it)
                raise ValueError(f"an empty item in {text!r} (a comma first or two in a row): expected "
                                 f"a list of PEs such as 0,3-5 or 1/0-7")
            continue
        try:
            cube, slash, rest = item.partition("/")
            if not slash:
                cube, rest = None, item
            lo, dash, hi = rest.partition("-")
            if dash and not lo:  # ("-1": a negative index, not a range from nothing)
                raise ValueError(f"a PE must be a non-negative integer, got {rest!r}")
            first = _index(lo, "a PE")
            last = _index(hi, "a PE") if dash else first
            if last < first:
                raise ValueError(f"range {rest!r} runs backwards (write FIRST-LAST)")
            if last >= 1 << 24:
                raise ValueError(f"{last} is larger than any machine's PE count")
            if cube is None:
                out.extend(range(first, last + 1))
            else:
                c = _index(cube, "a cube")
                out.extend((p, c) for p in range(first, last + 1))
        except ValueError as e:
            where = f" in {text.strip()!r}" if item != text.strip() else ""
            raise ValueError(f"bad PE {item!r}{where}: {e}; expected global indices and ranges "
                             f"(0,3-5) or CUBE/PE (1/2, 1/0-7)") from None
    return out


def parse_window(text: str) -> tuple:
    """The CLI's ``--window START:END``: a cycle window, ends included; ``START:`` runs to the
    end of the launch, ``:END`` from cycle 0. Returns ``(start, end)`` (``end`` may be None: no
    limit); raises ValueError."""
    lo, colon, hi = text.strip().partition(":")
    if not colon:
        raise ValueError(f"expected START:END in cycles (e.g. 1000:50000, 1000: or :50000), got {text!r}")
    try:
        start = _index(lo, "START") if lo.strip() else 0
        end = _index(hi, "END") if hi.strip() else None
    except ValueError as e:
        raise ValueError(f"bad window {text!r}: {e}") from None
    if end is not None and end < start:
        raise ValueError(f"bad window {text!r}: END ({end:,}) is before START ({start:,})")
    return (start, end)


def _pes_arg(text: str) -> list:
    try:
        return parse_pes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _window_arg(text: str) -> tuple:
    try:
        return parse_window(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# -- loading a user's kernel -------------------------------------------------------------------
def load_kernel(spec: str):
    """'pkg.mod:kernel' or 'path/to/file.py:kernel' -> (module, kernel function)."""
    mod_name, colon, attr = spec.rpartition(":")
    if not colon or not mod_name or not attr or (":" in mod_name and not Path(mod_name).is_file()):
        # (two colons, `k.py:f:x`: not a file named so, nor a module)
        raise CliError(f"kernel must be MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}")
    if mod_name.endswith(".py") or "/" in mod_name or "\\" in mod_name:
        path = Path(mod_name)
        try:
            is_file = path.is_file()
        except OSError as e:  # (a name too long for the file system)
            raise CliError(f"kernel file {_path_text(mod_name)!r}: {e.strerror or exc_text(e)}") from None
        if not is_file:
            raise CliError(f"kernel file {mod_name!r} does not exist")
        name = "kernbench_user_" + re.sub(r"\W", "_", path.stem)
        # As `python file.py` does: modules beside the file import by name. It stays first on
        # sys.path, for imports the kernel makes when it runs.
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        # (read as Python source whatever its suffix, as `python FILE` does; without the loader
        # a name not ending in .py has no spec)
        # (its absolute name, as `python file.py` gives __file__ since 3.9: reports and traces
        # name the kernel's file so, the same bytes from whichever folder it ran: a review. Not
        # collapsed by text: `link/../k.py` is the file the system finds, past the link)
        path = path if path.is_absolute() else Path.cwd() / path
        sp = importlib.util.spec_from_file_location(
            name, path, loader=importlib.machinery.SourceFileLoader(name, str(path)))
        module = importlib.util.module_from_spec(sp)
        sys.modules[name] = module  # so dataclasses and pickling inside the kernel file work
        try:
            sp.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(name, None)
            raise CliError(f"importing {mod_name} failed: {type(e).__name__}: {exc_text(e)}") from e
    else:
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules in the current directory
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name and mod_name.startswith(e.name):
                raise CliError(f"cannot import kernel module {mod_name!r}: no module named {e.name!r}") from e
            raise CliError(f"importing {mod_name} failed: {type(e).__name__}: {exc_text(e)}") from e
        except Exception as e:
            raise CliError(f"importing {mod_name} failed: {type(e).__name__}: {exc_text(e)}") from e
    kernel = getattr(module, attr, None)
    if kernel is None:
        raise CliError(f"module {mod_name!r} has no kernel named {attr!r}")
    if not callable(kernel):
        raise CliError(f"{mod_name}:{attr} is not a function")
    return module, kernel


def _module_label(module) -> str:
    """How the user named the module: its file for FILE.py:KERNEL, else its dotted name."""
    if module.__name__.startswith("kernbench_user_") and getattr(module, "__file__", None):
        return str(module.__file__)
    return module.__name__


def _raised_at(e: BaseException, module) -> str:
    """' at FILE:LINE' of the user's innermost line in an error a setup or check raised
    (runtime.executor.user_frames: the user's own line, not the kernbench one that refused what
    it was given, ctx.empty's shape check say), and the calls that led there from the setup or
    check (semantic.called_from); the innermost frame if none is the user's."""
    from .language.semantic import called_from
    from .runtime.executor import user_frames

    frames = user_frames(e, getattr(module, "__file__", None))
    if frames:
        return f" at {file_line(frames[0][0], frames[0][1])}{called_from(frames)}"
    tb = traceback.extract_tb(e.__traceback__)
    return f" at {file_line(tb[-1].filename, tb[-1].lineno)}" if tb else ""


def kernel_params(kernel) -> list:
    """The kernel's launch parameters: every named parameter but ``tl`` (positional ones, then
    keyword-only ones, in the signature's order)."""
    try:
        sig = inspect.signature(kernel)
    except (TypeError, ValueError):
        return []
    return [p for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "tl"]


class LaunchArgs(tuple):
    """The positional arguments of a launch (a tuple), and ``kwargs``: its keyword-only ones."""

    kwargs: dict = {}

    def __new__(cls, args=(), kwargs=None):
        self = super().__new__(cls, args)
        self.kwargs = dict(kwargs or {})
        return self


def launch_args(module, kernel, ctx, arg_values: dict) -> tuple:
    """The positional arguments of the launch (see ``kernbench run --help``)."""
    params = kernel_params(kernel)
    names = {p.name for p in params}
    # setup_<kernel> for one kernel of a module with several, else the module's setup.
    setup_name = f"setup_{getattr(kernel, '__name__', '')}"
    if not callable(getattr(module, setup_name, None)):
        setup_name = "setup"
    setup = getattr(module, setup_name, None)
    values = dict(arg_values)
    if setup is not None:
        if not callable(setup):
            raise CliError(f"{setup_name} in {_module_label(module)} is not a function")
        try:  # check the --arg names against setup's signature before calling it
            inspect.signature(setup).bind(ctx, **values)
        except TypeError as e:
            raise CliError(
                f"{setup_name}{inspect.signature(setup)} in {_module_label(module)}: {exc_text(e)} "
                f"(every --arg goes to it as a keyword)"
            ) from e
        except ValueError:
            pass  # no signature to check (a builtin): let the call speak
        try:
            got = setup(ctx, **values)
        except Exception as e:  # the user's setup failed, not kernbench: say so, and where
            raise CliError(f"{setup_name}(ctx, ...) in {_module_label(module)} raised "
                           f"{type(e).__name__}{_raised_at(e, module)}: {exc_text(e)}") from e
        if isinstance(got, (tuple, list)):
            # (the positional arguments; an --arg naming a keyword-only parameter is the
            # kernel's too, and one it needs must be given)
            kwonly = [p for p in params if p.kind == p.KEYWORD_ONLY]
            missing = [p.name for p in kwonly if p.name not in values and p.default is p.empty]
            if missing:
                raise CliError(f"kernel {kernel.__name__} needs argument {missing[0]!r}: pass --arg "
                               f"{missing[0]}=VALUE")
            return LaunchArgs(got, {p.name: values[p.name] for p in kwonly if p.name in values})
        if isinstance(got, dict):
            # --arg values setup took that are not kernel parameters were setup's alone.
            values = {k: v for k, v in values.items() if k in names}
            extra = sorted(set(got) - names, key=str)
            if extra:  # (setup's, not the user's --arg: say whose)
                raise CliError(
                    f"{setup_name}(ctx, ...) in {_module_label(module)} returned {extra[0]!r}, which "
                    f"kernel {getattr(kernel, '__name__', kernel)} has no parameter for (parameters: "
                    f"{', '.join(p.name for p in params) or 'none'}); a setup for another kernel of the "
                    f"module is named setup_<kernel>")
            values.update(got)
        else:
            raise CliError(
                f"{setup_name}(ctx, ...) must return the kernel's arguments as a tuple, list or dict, "
                f"got {type(got).__name__}"
            )
    unknown = sorted(set(values) - names)
    if unknown:
        raise CliError(
            f"kernel {kernel.__name__} has no parameter {unknown[0]!r} "
            f"(parameters: {', '.join(p.name for p in params) or 'none'})"
        )
    out, kw = [], {}
    for p in params:
        if p.kind == p.KEYWORD_ONLY:
            if p.name in values:
                kw[p.name] = values[p.name]
            elif p.default is p.empty:
                hint = "" if setup else " (or define setup(ctx, **args) in its module, see --help)"
                raise CliError(f"kernel {kernel.__name__} needs argument {p.name!r}: pass --arg "
                               f"{p.name}=VALUE{hint}")
        elif p.name in values:
            out.append(values[p.name])
        elif p.default is not p.empty:
            out.append(p.default)
        else:
            hint = "" if setup else " (or define setup(ctx, **args) in its module, see --help)"
            raise CliError(f"kernel {kernel.__name__} needs argument {p.name!r}: pass --arg {p.name}=VALUE{hint}")
    return LaunchArgs(out, kw)


# -- progress ------------------------------------------------------------------------------------
class DelayedProgress:
    """A rich progress bar that appears only if the work is still running after ``delay`` seconds,
    and only on a terminal. Call the object as ``progress(description, done, total)``."""

    def __init__(self, description: str, console=None, delay: float = 1.0, enabled: Optional[bool] = None):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn)

        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.delay = delay
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),  # the user's names
            MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=True,
        )
        self._task = self._progress.add_task(description, total=None)
        self._lock = threading.Lock()
        self._timer = None
        self._shown = False
        self._closed = False

    def _show(self):
        with self._lock:
            if not self._closed:
                self._progress.start()
                self._shown = True

    def __enter__(self):
        if self.enabled:
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._shown:
                self._progress.stop()
        return False

    @property
    def shown(self) -> bool:
        return self._shown

    def __call__(self, *args, description=None, done=None, total=None, **_):
        for a in args:  # positional: strings describe, numbers are done then total
            if isinstance(a, str):
                description = a
            elif isinstance(a, (int, float)) and not isinstance(a, bool):
                if done is None:
                    done = a
                elif total is None:
                    total = a
        kw = {}
        if description is not None:
            kw["description"] = str(description)
        if done is not None:
            kw["completed"] = done
        if total is not None:
            kw["total"] = total
        if kw:
            self._progress.update(self._task, **kw)


# -- outputs -------------------------------------------------------------------------------------
def _suffixed(path: str, tag: Optional[str]) -> str:
    """trace.json + 'prefill' -> trace.prefill.json (one file per diag panel); a .gz stays
    last (trace.json.gz -> trace.prefill.json.gz)."""
    if not tag:
        return path
    p = Path(path)
    tag = re.sub(r"[^\w.-]", "_", tag)
    gz = ""
    if p.suffix.lower() == ".gz" and Path(p.stem).suffix:
        gz, p = p.suffix, p.with_name(p.stem)
    return str(p.with_name(f"{p.stem}.{tag}{p.suffix}{gz}"))


def _check_output_paths(args) -> None:
    """Every output file option names a file in an existing, writable folder, each its own
    (two options naming one file: the second would overwrite the first): checked before the
    run, so a typo costs nothing and the error names the options."""
    seen: dict = {}
    for opt in ("trace", "json", "plot", "save", "out", "pareto_plot"):
        path = getattr(args, opt, None)
        if path is None:
            continue
        name = "--" + opt.replace("_", "-")
        if not str(path):  # (`--json "$OUT"` with OUT unset: it wrote nothing, said nothing; a review)
            raise CliError(f"{name} '': the path is empty: give a file path")
        try:
            _check_output_path(name, str(path), opt, seen)
        except (OSError, ValueError) as e:  # (a name too long, a NUL in it: the option, not Errno 36)
            why = e.strerror if isinstance(e, OSError) and e.strerror else exc_text(e)
            raise CliError(f"{name} {_path_text(path)}: {why}") from None


@contextlib.contextmanager
def _writing(name: str, path):
    """An error writing output option ``name``'s file ``path`` as one line naming both: what
    only writing finds (a full disk, a device that refuses writes, a pipe closed early)."""
    try:
        yield
    except OSError as e:
        why = e.strerror or exc_text(e)
        raise CliError(f"{name} {_path_text(path)}: {why} (while writing it)") from None


def _path_text(path) -> str:
    """A path for an error line: a name too long for any file system cut short."""
    s = str(path)
    return s if len(s) <= 200 else s[:200] + "..."


def _check_output_path(name: str, path: str, opt: str, seen: dict) -> None:
    """One output option of _check_output_paths; ``seen``: the files named so far."""
    # (Path("t.json/") is Path("t.json"): a trailing separator names a folder, which open() refuses
    # only after the run)
    if ends_in_separator(path):
        raise CliError(f"{name} {path}: {NAMES_A_FOLDER}")
    p = Path(path)
    # the file written: matplotlib adds .png to a plot's name without a suffix; a symlink
    # or another spelling of one file is that file
    written = str(path) + ".png" if opt in ("plot", "pareto_plot") and not p.suffix else str(path)
    key = os.path.normcase(os.path.realpath(written))
    if _device(key):  # (/dev/null and other devices: written to as often as asked)
        return
    same = seen.get(key) or next((n for k, n in seen.items() if _same_file(k, key)), None)
    if same is not None:
        raise CliError(f"{same} and {name} both name {written}: the second would overwrite "
                       f"the first; give each its own file")
    seen[key] = name
    try:  # (os.stat, not Path.is_dir, which may answer False for a name too long: raised, named above)
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_dir = False
    if is_dir:
        raise CliError(f"{name} {path}: is a folder, expected a file name")
    folder = p.parent  # Path("t.json").parent is Path(".")
    if not folder.is_dir():
        raise CliError(f"{name} {path}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise CliError(f"{name} {path}: folder {str(folder)!r} is not writable")
    if opt in ("plot", "pareto_plot") and p.suffix.lower() not in _plot_suffixes():
        raise CliError(f"{name} {path}: matplotlib writes .png, .svg, .pdf, .jpg, .eps, ... (by the "
                       f"file's suffix), not {p.suffix!r}")


def _device(path: str) -> bool:
    """Whether ``path`` is a character or block device (/dev/null), not a file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def _same_file(a: str, b: str) -> bool:
    """Whether two existing paths are one file (a hard link); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


#: the file suffixes matplotlib's savefig writes ("" : its default, PNG)
def _written_plot(path: str) -> str:
    """The file a plot named ``path`` is written to: matplotlib adds .png to a name without a
    suffix (save_figure)."""
    return path if Path(path).suffix else path + ".png"


def _plot_suffixes() -> tuple:
    """The suffixes a plot may have: matplotlib's formats, or none (it adds .png)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return ("", *("." + k for k in FigureCanvasBase.get_supported_filetypes()))


def _check_trace_filters(args, hw) -> None:
    """``--pes`` and ``--window`` filter the trace: they need ``--trace``, and each PE must be on
    the machine (checked before the run, against ``hw``)."""
    given = [opt for opt in ("pes", "window") if getattr(args, opt, None) is not None]
    if given and not args.trace:
        raise CliError(f"--{given[0]} filters the trace: give --trace FILE too")
    for x in args.pes or ():
        try:
            hw.global_pe(x)
        except ValueError as e:
            raise CliError(f"--pes: {e}") from None


def _write_outputs(result, args, console, tag=None) -> None:
    profile = getattr(args, "profile", False)
    if profile:
        result.profile(console=console)
    if args.trace:
        from .report.table import fmt_bytes, plural

        path = _suffixed(args.trace, tag)
        with _writing("--trace", path):
            info = result.to_perfetto(path, pes=args.pes, window=args.window, critical_path=profile,
                                      memory_channel=profile)
        what = (f"{plural(info['slices'], 'slice')} on {plural(info['pes'], 'PE')}, "
                f"{plural(info['flows'], 'flow')}, "
                + (f"a critical-path track of {plural(info['critical_path_slices'], 'step')}, "
                   f"memory channel tracks of {plural(info['channel_counters'], 'change')}, " if profile else "")
                + fmt_bytes(info['bytes']))
        if not info["slices"]:
            what += (f": no command overlaps the window (the launch ran {result.cycles:,} cycles)"
                     if args.window is not None else ": the chosen PEs ran no command")
        console.print(rich_text(f"trace  -> {path}  ({what}; open in https://ui.perfetto.dev)"), soft_wrap=True)
    if args.json:
        path = _suffixed(args.json, tag)
        with _writing("--json", path):
            result.write_json(path)  # (a chunk at a time: a long launch's file without its dict)
        console.print(rich_text(f"json   -> {path}"), soft_wrap=True)
    if args.plot:
        # (a name without a suffix is matplotlib's PNG: p -> p.<panel>.png, not p.<panel>,
        # whose "suffix" matplotlib would read as the format)
        path = _suffixed(args.plot if Path(args.plot).suffix else args.plot + ".png", tag)
        with _writing("--plot", path):
            result.plot(path)
        console.print(rich_text(f"plot   -> {path}"), soft_wrap=True)


# -- commands ------------------------------------------------------------------------------------
def cmd_hw_list(args, console) -> int:
    from rich import box
    from rich.table import Table

    from .hw import list_presets, load_hw
    from .report.table import fmt_num, fmt_value

    t = Table(title="hardware presets (kernbench hw show NAME)", title_justify="left",
              box=box.SIMPLE_HEAD, header_style="bold")
    for col in ("name", "cubes", "PEs/cube", "clock\nGHz", "GEMM peak\nTFLOP/s", "memory\nGB/s",
                "link\nGB/s/dir", "SRAM/PE\nMiB"):
        t.add_column(col, justify="left" if col == "name" else "right", no_wrap=True)
    presets = [load_hw(name) for name in list_presets()]
    for hw in sorted(presets, key=lambda hw: (hw.n_pes, hw.name)):  # smallest machine first
        t.add_row(
            rich_text(hw.name), f"{hw.n_cubes:,}", f"{hw.pes_per_cube:,}", fmt_value(hw.clock_ghz),
            fmt_num(hw.peak_tflops()),
            fmt_num(hw.memory_gbps()), fmt_num(hw.link_gbps()), fmt_num(hw.sram.capacity_bytes / (1 << 20)),
        )
    console.print(t)
    return EXIT_OK


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, prefix + k + ".")
        else:
            yield prefix + k, v


def _value_text(v) -> str:
    """A hardware or swept value as a table shows it: ints grouped, floats as given but never in
    exponent form (reports' rule), anything else as str."""
    from .report.table import fmt_value

    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return fmt_value(v) if isinstance(v, float) else str(v)


def cmd_hw_show(args, console) -> int:
    from rich.table import Table

    from .hw import load_hw
    from .report.table import fmt_num, plural

    hw = load_hw(args.name)
    # the name (title and row) as it is: a Text, not markup
    t = Table(title=rich_text(f"hardware '{hw.label}' (docs/hardware-model.md)", "table.title"),
              title_justify="left")
    t.add_column("key")
    t.add_column("value", justify="right")
    for key, value in _flatten(hw.to_dict()):
        t.add_row(key, rich_text(_value_text(value)))
    console.print(t)
    console.print(
        f"PEs             {hw.n_pes:,} ({plural(hw.n_cubes, 'cube')} x {hw.pes_per_cube})\n"
        f"GEMM peak       {fmt_num(hw.peak_tflops())} TFLOP/s ({hw.peak_flops_per_cycle_pe:,} flop/cycle per PE)\n"
        f"memory          {fmt_num(hw.memory_gbps())} GB/s ({fmt_num(hw.memory_gbps(1))} GB/s per cube channel)\n"
        f"link            {fmt_num(hw.link_gbps())} GB/s per direction",
        highlight=False,
    )
    return EXIT_OK


def cmd_run(args, console) -> int:
    from .hw import load_hw
    from .report.table import plural

    hw = load_hw(args.hw)  # a bad preset fails here, before the kernel module is imported
    _check_output_paths(args)
    _check_trace_filters(args, hw)
    if args.save and args.mode != "functional":
        raise CliError("--save needs --mode functional: timing mode carries shapes only and "
                       "computes no numbers")
    module, kernel = load_kernel(args.kernel)
    try:
        from . import Context
    except ImportError as e:
        raise CliError(f"kernbench run needs kernbench.Context, which is not available: {e}") from e
    ctx = Context(hw=hw)
    ctx.install_sfr(scope=args.sfr, ring=args.ring)
    values = _unique_args(args.arg, "--arg")
    launch = launch_args(module, kernel, ctx, values)
    label = f"{args.kernel} on grid {plural(args.grid[0], 'PE')} x {plural(args.grid[1], 'cube')} ({args.mode})"
    with DelayedProgress(f"running {label}", console=_stderr_console()):
        result = ctx.launch(kernel, args.grid, *launch, mode=args.mode, kernel_kwargs=launch.kwargs)
    result.report(console=console)
    _write_outputs(result, args, console)
    # every kernel argument by name (device arrays as DeviceArray), and the --arg values setup took
    named = {**values, **{p.name: v for p, v in zip(kernel_params(kernel), launch)}, **launch.kwargs}
    if args.save:
        from .runtime.executor import argument_arrays
        _save_arrays(ctx, result, {**named, **argument_arrays(kernel, tuple(launch), launch.kwargs)}, args.save,
                     console)
    return _run_check(module, kernel, ctx, named, result, console)


def _save_arrays(ctx, result, named: dict, path: str, console) -> None:
    """``--save``: every device-array argument the launch stored to, as NAME (gathered the way
    it was placed) and NAME.per_pe (every PE's contents, shape (cubes, PEs per cube, ...))."""
    import numpy as np

    from .runtime.memory import PlacementError

    arrays = {}
    for name in result.written_args:
        arr = named[name]
        arrays[f"{name}.per_pe"] = ctx.read_all(arr)
        try:
            arrays[name] = ctx.gather(arr)
        except PlacementError:
            pass  # allocated with ctx.empty, no placement to undo: per_pe only
    # (a file object: np.savez would append .npz to a name without it)
    with _writing("--save", path), output_file(path) as out, open(out, "wb") as f:
        np.savez(f, **arrays)
    what = ", ".join(result.written_args) if result.written_args else "nothing: the kernel stored to no array argument"
    console.print(rich_text(f"save   -> {path}  ({what})"), soft_wrap=True)


def _run_check(module, kernel, ctx, named: dict, result, console) -> int:
    """The module's check_<kernel>(ctx, args, result) or check(...): an exception or False
    fails the run (exit status 1)."""
    check_name = f"check_{getattr(kernel, '__name__', '')}"
    if getattr(module, check_name, None) is None:  # (set but not a function: refused below)
        check_name = "check"
    check = getattr(module, check_name, None)
    if check is None:
        return EXIT_OK
    where = f"{check_name}(ctx, args, result) in {_module_label(module)}"
    if not callable(check):
        raise CliError(f"{check_name} in {_module_label(module)} is not a function")
    if result.mode != "functional":
        console.print(rich_text(f"check  skipped: {where} needs --mode functional (timing mode computes no "
                                f"numbers)"), soft_wrap=True)
        return EXIT_OK
    try:  # (parameters that cannot take the three: a usage error, not a failed check; a
        # decorated check is called as its wrapper takes them)
        inspect.signature(check, follow_wrapped=False).bind(ctx, named, result)
    except TypeError as e:
        raise CliError(f"{where}: {e}: a check takes (ctx, args, result)") from None
    except ValueError:  # (no signature to read: called as it is)
        pass
    try:
        ok = check(ctx, named, result)
    except Exception as e:  # the check's own failure: say where, as for setup
        console.print(rich_text(f"check  FAILED: {where} raised {type(e).__name__}{_raised_at(e, module)}: {exc_text(e)}"),
                      soft_wrap=True)
        return EXIT_FAILED
    failed = _check_failed(ok)
    if failed:
        console.print(rich_text(f"check  FAILED: {where} {failed}"), soft_wrap=True)
        return EXIT_FAILED
    console.print(rich_text(f"check  passed: {where}"), soft_wrap=True)
    return EXIT_OK


def _check_failed(ok) -> str | None:
    """What a check's return value says of the run: None (passed: None, True or any other
    value), or why it failed: False, a numpy False (``(o == ref).all()`` returns one; a review
    found it passed), or a numpy bool array of more than one value (a forgotten ``.all()``: its
    truth is ambiguous, as numpy says)."""
    if ok is False:
        return "returned False"
    np = sys.modules.get("numpy")  # (a numpy value means numpy is imported)
    if np is not None and isinstance(ok, (np.bool_, np.ndarray)):
        if isinstance(ok, np.ndarray) and ok.dtype != np.bool_:
            return None  # (not a verdict: as any other value)
        if ok.size == 1:
            return None if bool(ok.reshape(-1)[0]) else f"returned {ok!r}"
        return (f"returned a bool array of shape {ok.shape}: return one bool (e.g. "
                f"(o == ref).all()); its truth is ambiguous" if ok.size else "returned an empty bool array")
    return None


def cmd_diag(args, console) -> int:
    from .hw import load_hw

    kw = {}
    if args.hw is not None:
        kw["hw"] = load_hw(args.hw)  # fail on a bad preset before any panel runs
    _check_output_paths(args)
    _check_trace_filters(args, kw["hw"] if "hw" in kw else load_hw("default"))  # diag's default
    try:
        from . import diag
    except ImportError as e:
        raise CliError(f"the diag harness is not available: {e}") from e
    if not hasattr(diag, "run_panels"):
        raise CliError("the diag harness is not available: kernbench.diag has no run_panels")
    if args.panel:
        twice = next((p for i, p in enumerate(args.panel) if p in args.panel[:i]), None)
        if twice:  # (run twice, its files written twice: the second over the first)
            raise CliError(f"--panel {twice} given twice")
        kw["panels"] = list(args.panel)
    if args.shape is not None:
        kw["shape"] = args.shape
    if args.context is not None:
        kw["context"] = args.context
        # (a context is a llama70b shape's: it implies --shape llama70b, as for `kernbench sweep`)
        kw.setdefault("shape", "llama70b")
    if args.cubes is not None:
        kw["cubes"] = args.cubes
    if args.causal:
        kw["causal"] = True
    if args.decode_rows is not None:
        kw["decode_rows"] = args.decode_rows
    if args.tune:
        if args.no_cache and args.cache_dir:
            raise CliError("--no-cache and --cache-dir: give one (--no-cache neither reads nor writes the cache)")
        kw["tune"] = True
        kw["tune_cache"] = False if args.no_cache else (args.cache_dir or True)
    elif args.no_cache or args.cache_dir:
        raise CliError("--no-cache and --cache-dir are for --tune (the tuner's cache)")
    with DelayedProgress("diag", console=_stderr_console()) as progress:
        panels = list(diag.run_panels(progress=progress, **kw))
    if not panels:
        raise CliError("no diag panel ran")
    failed = 0
    many = len(panels) > 1
    for p in panels:
        ok = bool(p.passed)
        failed += not ok
        mark = rich_text("PASS", "bold green") if ok else rich_text("FAIL", "bold red")
        console.print(mark + " " + p.name)
        for line in p.summary_lines():  # unwrapped: a wrap could split a figure from its name
            console.print(rich_text(f"     {line}"), soft_wrap=True)
        if args.table and p.result is not None:
            p.result.report(console=console)
        if p.result is not None:
            _write_outputs(p.result, args, console, tag=p.name if many else None)
    console.print(f"{len(panels) - failed} of {len(panels)} panels passed")
    return EXIT_OK if not failed else EXIT_FAILED


# -- sweep (docs/sweeps.md) -------------------------------------------------------------------------
def _parse_choices(text: str) -> tuple:
    """--set/--arg/--option of ``kernbench sweep``: NAME=V1,V2,... (each value as --arg parses it)."""
    name, eq, value = text.partition("=")
    name = name.strip()
    if not eq or not _IDENT.match(name) or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE or NAME=V1,V2,..., got {text!r}")
    try:
        values = parse_value(value)  # (run's one rule: its tuple is the values to sweep)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} (in {text!r}: NAME=V1,V2,...)") from None
    return name, list(values) if isinstance(values, tuple) else [values]


def _check_sweep_columns(args, swept: list) -> None:
    """--x, --y, --hue and --pareto name columns: the swept names and the figures (SweepResult's
    columns), checked before any point is computed; the plot still checks what it is given."""
    from .sweeps.figures import FIGURE_TYPES, FIGURES

    known = [*dict.fromkeys(swept), *FIGURES]
    for opt in ("x", "y", "hue", "pareto"):
        col = getattr(args, opt)
        if col is not None and col not in known:
            raise CliError(f"--{opt} {col}: no such column (columns: {', '.join(known)})")
    if args.plot and FIGURE_TYPES.get(args.y) is str and args.y not in swept:
        # (known before any point runs: a review's plot of `bound` failed after the sweep)
        raise CliError(f"--y {args.y}: --plot draws numbers, and {args.y} is text; plot a figure "
                       f"such as cycles or tflops")


def cmd_sweep(args, console) -> int:
    from .hw import load_hw
    from .report.table import fmt_bytes, fmt_num
    from .sweeps import panel_launch, sweep
    from .sweeps.figures import more_is_better
    from .sweeps.run import is_kernel

    hw = load_hw(args.hw)
    _check_output_paths(args)
    # the formats too, before the points are computed (ResultSet.save; a plot's by
    # _check_output_paths, as run's and diag's)
    for opt, suffixes in (("out", (".csv", ".parquet", ".pq")),):
        path = getattr(args, opt)
        if path and Path(path).suffix.lower() not in suffixes:
            raise CliError(f"--{opt.replace('_', '-')} {path}: name it {' or '.join(suffixes[:2])}")
    if args.pareto_plot and not args.pareto:
        raise CliError("--pareto-plot draws the --pareto front: give --pareto COST too")
    # (options that would be ignored are refused: the user meant them to change something)
    if args.no_cache and args.cache_dir:
        raise CliError("--no-cache and --cache-dir: give one (--no-cache stores nothing)")
    if args.scheduler and args.workers is not None:
        raise CliError("--workers and --scheduler: the scheduler's cluster has its own workers; give one")
    for opt in ("x", "hue"):
        if getattr(args, opt) and not args.plot:
            raise CliError(f"--{opt} is for --plot: give --plot FILE too")
    if bool(args.kernel) == bool(args.panel):
        raise CliError("kernbench sweep: give MODULE:KERNEL (with --grid) or --panel NAME, one of them")
    # the other target's options are refused, not ignored: the user meant them to change something
    if args.panel:
        given = [o for o, v in (("--grid", args.grid), ("--sfr", args.sfr), ("--ring", args.ring)) if v]
        if given:
            raise CliError(f"{given[0]} is for MODULE:KERNEL: a panel has its own grid and SFR")
    else:
        given = [o for o, v in (("--shape", args.shape), ("--context", args.context), ("--cubes", args.cubes),
                                ("--causal", args.causal)) if v]
        if given:
            raise CliError(f"{given[0]} is for --panel: a kernel's shapes are its --arg values")
    hardware, arg_values, options = (_unique_args(args.set, "--set"), _unique_args(args.arg, "--arg"),
                                     _unique_args(args.option, "--option"))
    _check_sweep_columns(args, [*arg_values, *options, *hardware])
    if args.panel:  # (the --arg would win silently: the user meant both to count)
        for opt, name in (("--causal", "causal"), ("--context", "context")):
            if getattr(args, name) and name in arg_values:
                raise CliError(f"{opt} and --arg {name}=... both set the panel's {name}: give one "
                               f"(--arg {name}=A,B sweeps it)")
    kw = {}
    if args.panel:
        target = panel_launch(args.panel, shape=args.shape or "llama70b", context=args.context,
                              cubes=args.cubes, causal=args.causal)
    else:
        module, target = load_kernel(args.kernel)  # (its own errors first: a name it lacks)
        if not is_kernel(target):  # (a review: "needs --grid", then with it "grid= is for a kernel")
            raise CliError(f"{args.kernel} takes no keyword-only tl: the command line sweeps a kernel; "
                           f"sweep a launch builder from Python, kernbench.sweep(builder, ...) "
                           f"(docs/sweeps.md)")
        if args.grid is None:
            raise CliError("sweeping MODULE:KERNEL needs --grid P,C")
        setup = getattr(module, f"setup_{getattr(target, '__name__', '')}", None)
        setup = setup if callable(setup) else getattr(module, "setup", None)
        kw = dict(grid=args.grid, setup=setup, sfr=args.sfr or "pe", ring=args.ring)
    cache = False if args.no_cache else (args.cache_dir or True)
    res = sweep(target, hw=hw, hardware=hardware or None, args=arg_values or None, options=options or None,
                workers=args.workers, scheduler=args.scheduler, cache=cache, **kw)
    from rich.console import Console
    from rich.table import Table

    cells = []
    for r in res.rows:
        ok = r["error"] is None
        cells.append((*(_value_text(r[c]) for c in res.swept),
                      f"{r['cycles']:,}" if ok else "-", fmt_num(r['tflops']) if ok else "-",
                      f"{100 * r['roofline_fraction']:.1f}%" if ok else "-",
                      f"{r['busy_GEMM']:.1f}%" if ok else "-", fmt_bytes(r["link_bytes"]) if ok else "-",
                      (fmt_bytes(r["sram_peak_bytes"]) + (" OVER" if r["sram_over"] else "")) if ok else "-",
                      "" if ok else f"{r['error_type']}" + (f" on {r['error_pe']}" if r["error_pe"] else "")))
    heads = [*res.swept, "cycles", "TFLOP/s", "roofline", "GEMM busy", "link bytes", "peak SRAM",
             "error (--out FILE: the message)" if res.failed else "error"]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    # the user's names and values as they are: Text, not markup
    t = Table(title=rich_text(f"sweep on {hw.label}", "table.title"), title_justify="left")
    for i, h in enumerate(heads):
        t.add_column(rich_text(h), justify="left" if i == len(heads) - 1 else "right", no_wrap=True,
                     min_width=widths[i])
    for row in cells:
        t.add_row(*map(rich_text, row))
    # every figure whole: as wide as the table needs (a terminal wraps it rather than cut a number)
    Console(file=console.file, width=max(console.width, sum(widths) + 3 * len(widths) + 1),
            highlight=False).print(t)
    console.print(rich_text(res.summary()), soft_wrap=True)
    if args.out:
        with _writing("--out", args.out):
            res.save(args.out)
        console.print(rich_text(f"rows   -> {args.out}"), soft_wrap=True)
    if args.plot:
        with _writing("--plot", args.plot):
            ax = res.plot(x=args.x or (res.swept[-1] if res.swept else "cycles"), y=args.y,
                          hue=args.hue, path=args.plot)
        mean = ax.get_ylabel() if ax.get_ylabel().startswith("mean ") else ""
        console.print(rich_text(f"plot   -> {_written_plot(args.plot)}" + (f"  (y: {mean}: the points that share x and "
                                                            f"hue, differing in another swept value)"
                                                            if mean else "")), soft_wrap=True)
    if args.pareto:
        with _writing("--pareto-plot", args.pareto_plot):
            front = res.pareto(args.pareto, objective=args.y, path=args.pareto_plot)
        if args.pareto_plot:  # (as every other file written: a review found it unannounced)
            console.print(rich_text(f"pareto -> {_written_plot(args.pareto_plot)}"), soft_wrap=True)
        more = ", more is better," if more_is_better(args.y) else ""
        console.print(rich_text(f"Pareto front ({args.y}{more} against {args.pareto}):"))
        cols = list(dict.fromkeys([*res.swept, args.y, args.pareto]))  # (a swept cost once)
        console.print(rich_text(front[cols].to_string(index=False)), soft_wrap=True)
    # (as diag's failed panel: a script's `sweep ... && next` must not go on from failed points;
    # their rows, the table and the files are written all the same)
    return EXIT_FAILED if res.failed else EXIT_OK


# -- parser ----------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Usage errors raise CliError (one line, exit 2) instead of printing usage and exiting."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        # A token of '-' and a digit is a value, not an option: argparse's own rule (-5, -0.5)
        # misses -1,1 and -5:10, whose option then had "expected one argument" instead of its
        # value's message. (No kernbench option starts with a digit.)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message):
        raise CliError(f"{message} (see {self.prog} --help)")  # ("kernbench: error: " goes before)


def _add_outputs(p, save: bool = False) -> None:
    g = p.add_argument_group("outputs")
    g.add_argument("--trace", metavar="FILE",
                   help="write a Chrome trace-event JSON (open in ui.perfetto.dev); gzip-compressed when "
                   "FILE ends in .gz")
    g.add_argument("--pes", type=_pes_arg, metavar="LIST",
                   help="trace only these PEs: global indices and ranges (0,3-5) or CUBE/PE (1/2, 1/0-7)")
    g.add_argument("--window", type=_window_arg, metavar="START:END",
                   help="trace only the commands overlapping this cycle window, ends included "
                   "(1000:50000; START: to the end, :END from 0)")
    g.add_argument("--json", metavar="FILE", help="write every counter, the hardware and the arguments as JSON")
    g.add_argument("--plot", metavar="FILE", help="write a PNG: utilization heatmap and timeline")
    g.add_argument("--profile", action="store_true",
                   help="print the per-line profile (busy, stalls, commands and critical-path share per "
                   "kernel line) and the critical path; with --trace, the trace gets a critical-path track and "
                   "the cubes' memory channel tracks")
    if save:
        g.add_argument("--save", metavar="FILE.npz",
                       help="functional mode: write every array argument the kernel stored to, as numpy "
                       "arrays (NAME gathered, NAME.per_pe every PE's contents)")


#: how --hw tells a file from a preset (kernbench.hw.config._read_toml_source)
_TOML_PATH = "TOML file (a name with a '/' or ending in .toml: ./myhw, my.toml)"


def build_parser() -> argparse.ArgumentParser:
    from .hw.sfr import SCOPES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")

    parser = _Parser(
        prog="kernbench",
        description="A cycle-approximate model of a mesh AI accelerator: run kernels, read reports.",
        epilog="`kernbench COMMAND --help` describes each command; docs/reports.md how to read the output.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("diag", parents=[common], help="run the diagnostic panels and report them",
                       description="Run the diag panels (kernbench.diag), print each one's figures "
                       "and PASS/FAIL. Exit status 1 if any panel fails. With several panels, output "
                       "files get the panel name before the suffix (trace.json -> trace.NAME.json).")
    d.add_argument("--panel", action="append", metavar="NAME", help="run only this panel (repeatable)")
    d.add_argument("--hw", metavar="PRESET", help=f"hardware preset name or {_TOML_PATH}")
    d.add_argument("--shape", choices=("small", "llama70b"),
                   help="problem shapes of the panels (default small; llama70b with --context)")
    d.add_argument("--context", type=_positive_int, metavar="N",
                   help="context length in tokens (4K = 4096) of the llama70b shapes")
    d.add_argument("--cubes", type=_positive_int, metavar="N",
                   help="cubes of the multi_user panels (default: 4 at --shape small, every cube of the preset at llama70b)")
    d.add_argument("--causal", action="store_true",
                   help="prefill panels causal, in the zigzag layout (the TFLOP/s line adds the rate counting "
                        "the unmasked half); decode panels too with --decode-rows 2 or more (the rows are the "
                        "newest tokens)")
    d.add_argument("--decode-rows", type=_positive_int, metavar="N",
                   help="query rows per sequence of the decode panels (default 1; more: speculative or chunked decode)")
    d.add_argument("--tune", action="store_true",
                   help="choose each panel's block sizes with the tuner (the fastest of a few candidates that "
                   "fits SRAM, cached on disk by shapes, hardware and code) and print the choice and its gain "
                   "over the default blocks")
    d.add_argument("--no-cache", action="store_true", help="--tune: neither read nor write the tuner's cache")
    d.add_argument("--cache-dir", metavar="DIR", help="--tune: the cache folder (default: the kernbench cache)")
    d.add_argument("--table", action="store_true", help="also print each panel's utilization table")
    _add_outputs(d)
    d.set_defaults(func=cmd_diag)

    r = sub.add_parser("run", parents=[common], help="launch your own kernel and report it",
                       description="Trace, simulate and report a kernel: MODULE:KERNEL (a dotted module "
                       "importable from the current directory) or FILE.py:KERNEL.",
                       epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("kernel", metavar="MODULE:KERNEL", help="e.g. my_kernels.py:vadd or pkg.mod:attn")
    r.add_argument("--grid", type=parse_grid, required=True, metavar="P,C",
                   help="PEs per cube used, cubes used (e.g. 8,4; 8 alone is 8,1)")
    r.add_argument("--arg", type=_parse_arg, action="append", metavar="NAME=VALUE",
                   help="a kernel (or setup) argument; repeatable")
    r.add_argument("--hw", default="default", metavar="PRESET", help=f"hardware preset name or {_TOML_PATH} (default: default)")
    r.add_argument("--sfr", choices=SCOPES, default="pe",
                   help="SFR install scope (default: pe, an open line): the PEs of each cube in a line (pe), PE 0 "
                        "of each cube (cube), or both, on E/W and N/S (two_level)")
    r.add_argument("--ring", action="store_true", help="close the SFR line into a ring")
    r.add_argument("--mode", choices=("functional", "timing"), default="timing",
                   help="timing: shapes only (fast); functional: also compute the numbers (default: timing)")
    _add_outputs(r, save=True)
    r.set_defaults(func=cmd_run)

    w = sub.add_parser("sweep", parents=[common], help="time a kernel over a grid of hardware x arguments x options",
                       description="Run a kernel (MODULE:KERNEL, with the module's setup as for `run`) or a diag "
                       "panel at every point of the cartesian product of --set (hardware keys), --arg (kernel "
                       "arguments) and --option (mode, detail, strict_sram, max_cycles, replay) values; trace once per "
                       "trace group, time each point, on Dask workers when installed; rows cached on disk "
                       "(docs/sweeps.md). Comma lists are the values to sweep. Exit status 1 if any point "
                       "fails (its row, the table and the files written first).")
    w.add_argument("kernel", nargs="?", metavar="MODULE:KERNEL", help="e.g. my_kernels.py:vadd (or use --panel)")
    w.add_argument("--panel", choices=("single_user_prefill", "single_user_decode", "multi_user_prefill",
                                       "multi_user_decode"), help="sweep a diag panel instead of a kernel")
    w.add_argument("--shape", choices=("small", "llama70b"), help="panel shapes (default llama70b)")
    w.add_argument("--context", type=_positive_int, metavar="N", help="panel context length in tokens")
    w.add_argument("--cubes", type=_positive_int, metavar="N", help="cubes of a multi_user panel")
    w.add_argument("--causal", action="store_true", help="causal prefill panel")
    w.add_argument("--grid", type=parse_grid, metavar="P,C", help="PEs per cube used, cubes used (MODULE:KERNEL)")
    w.add_argument("--sfr", choices=SCOPES, help="SFR install scope for MODULE:KERNEL (default: pe)")
    w.add_argument("--ring", action="store_true", help="close the SFR line into a ring")
    w.add_argument("--hw", default="default", metavar="PRESET", help=f"base hardware preset or {_TOML_PATH}")
    w.add_argument("--set", type=_parse_choices, action="append", metavar="KEY=V1,V2",
                   help="hardware key values to sweep, e.g. link.bytes_per_cycle=16,32,64 (repeatable)")
    w.add_argument("--arg", type=_parse_choices, action="append", metavar="NAME=V1,V2",
                   help="kernel (or setup) argument values to sweep, e.g. block_kv=512,1K (repeatable)")
    w.add_argument("--option", type=_parse_choices, action="append", metavar="NAME=V1,V2",
                   help="launch option values: mode, detail, strict_sram, max_cycles, replay (repeatable)")
    w.add_argument("--workers", type=_positive_int, metavar="N",
                   help="Dask worker processes on this machine (default: one per core; 1: in this process)")
    w.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    w.add_argument("--no-cache", action="store_true", help="compute every point (and store nothing)")
    w.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $KERNBENCH_CACHE or ~/.cache/kernbench)")
    w.add_argument("--out", metavar="FILE", help="write the rows: .csv or .parquet")
    w.add_argument("--plot", metavar="FILE", help="plot --y against --x (per --hue): .png, .svg, .pdf ... (matplotlib's formats)")
    w.add_argument("--x", metavar="COL", help="x column of --plot (default: the last swept name)")
    w.add_argument("--y", default="cycles", metavar="COL", help="y column of --plot and --pareto (default cycles)")
    w.add_argument("--hue", metavar="COL", help="one line per value of this column in --plot")
    w.add_argument("--pareto", metavar="COST", help="print the Pareto front of --y against this cost column")
    w.add_argument("--pareto-plot", metavar="FILE", help="draw the --pareto front: .png, .svg, .pdf ... (matplotlib's formats)")
    w.set_defaults(func=cmd_sweep)

    h = sub.add_parser("hw", parents=[common], help="list and show hardware presets",
                       description="Hardware presets shipped with kernbench.")
    hsub = h.add_subparsers(dest="hw_command", metavar="ACTION", parser_class=_Parser)
    hl = hsub.add_parser("list", parents=[common], help="list the presets with their headline figures")
    hl.set_defaults(func=cmd_hw_list)
    hs = hsub.add_parser("show", parents=[common], help="every parameter of a preset (or TOML file)")
    hs.add_argument("name", metavar="NAME", help=f"preset name (kernbench hw list) or {_TOML_PATH}")
    hs.set_defaults(func=cmd_hw_show)
    h.set_defaults(func=None, _help=h)
    parser.set_defaults(func=None, _help=parser)
    return parser


def _version() -> str:
    from . import __version__

    return f"kernbench {__version__}"


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


#: lines of an error's message shown under its first line: a deadlock's diagnosis (the
#: cycle of waits and what would remove it), which the list of blocked units above them hides
_DIAGNOSIS = ("Cycle of waits:", "What would remove it:")


def _stdout_closed() -> int:
    """stdout's reader went away (a pipe to `head`): what is left to print goes nowhere (Python's
    own advice: devnull on stdout, so its flush at exit raises nothing)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # (stdout not a file: nothing to redirect)
        pass
    return EXIT_PIPE


def _rich_broken_pipe(e: SystemExit) -> bool:
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "on_broken_pipe":
            return True
        tb = tb.tb_next
    return False


def _user_frame(tb) -> str | None:
    """``file:line`` of the innermost frame of ``tb`` that is the user's code (not kernbench's,
    not a library's: a click command or an argparse parser the user's setup ran exits from the
    library's frames), else None."""
    from .common.cache import _user_file
    from .common.errors import file_line

    at = None
    while tb is not None:
        f = tb.tb_frame.f_code.co_filename
        if _user_file(f) and not f.startswith("<frozen"):  # (exit() and quit(): Python's frame)
            at = file_line(f, tb.tb_lineno)
        tb = tb.tb_next
    return at


def _one_line(e: BaseException) -> str:
    """An error's message for the terminal: its first line (with a list's first item), the
    count of lines left out, and under it the lines that say why (_DIAGNOSIS)."""
    text = exc_text(e).strip() or type(e).__name__
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    first, rest = lines[0], lines[1:]
    if first.endswith(":") and rest:  # "Blocked:" and a list: show the list's first item
        first, rest = f"{first} {rest[0]}", rest[1:]
    why = [l for l in rest if l.startswith(_DIAGNOSIS)]
    rest = [l for l in rest if not l.startswith(_DIAGNOSIS)]
    if rest:
        first += f" ({len(rest)} more {'line' if len(rest) == 1 else 'lines'}; rerun with --debug for all)"
    return "\n".join([first, *why])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``kernbench`` console script; returns the exit status."""
    try:
        return _main(argv)
    except SystemExit as e:  # (stderr closed while an error was told: rich exits with 1)
        if _rich_broken_pipe(e):
            return EXIT_PIPE
        raise


def _main(argv: Optional[Sequence[str]]) -> int:
    from rich.console import Console

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or a log: wide enough for the report table
        console = Console(highlight=False, width=max(console.width, 120))
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        parser = build_parser()
        try:
            args, stray = parser.parse_known_args(argv)
        except SystemExit as e:  # --help and --version exit through argparse
            return int(e.code or 0)
        if stray:  # (parse_args' own error, pointing to the help of the subcommand they follow)
            words = [w for w in argv[:2] if not w.startswith("-")]
            cmd = words if words[:1] == ["hw"] else words[:1]
            raise CliError(f"unrecognized arguments: {' '.join(stray)} (see {' '.join([parser.prog, *cmd])} --help)")
        debug = debug or bool(getattr(args, "debug", False))
        if args.func is None:
            args._help.print_help()
            return EXIT_ERROR
        with warnings.catch_warnings():  # (restores showwarning: main may be called in-process)
            if not debug:  # one line, as errors are: not Python's "FILE:LINE: Category: ..." pair
                warnings.showwarning = lambda message, category, *_a, **_k: err.print(
                    rich_text(f"kernbench: warning: {_one_line(message)}"))
            return args.func(args, console)
    except KeyboardInterrupt:
        err.print(rich_text("kernbench: interrupted"))
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    except SystemExit as e:
        if _rich_broken_pipe(e):  # (rich's Console exits with 1 on EPIPE, stdout sent to devnull)
            return EXIT_PIPE
        at = _user_frame(e.__traceback__)
        if at is None:  # (kernbench's own exit: none is expected, pass it on)
            raise
        # a kernel, setup, check or module the command ran called sys.exit(): an error of the run
        # (a review: sys.exit(0) in a kernel ended it silently with status 0, no outputs written)
        err.print(rich_text(f"kernbench: error: {at}: the code kernbench ran called sys.exit({e.code!r}) "
                            f"(raised SystemExit): the run stops here, as an error"))
        return EXIT_ERROR
    except Exception as e:
        if debug:  # the whole traceback and message, with an error's exit status all the same
            traceback.print_exc()
            return EXIT_ERROR
        err.print(rich_text(f"kernbench: error: {_one_line(e)}"))  # the message as it is
        return EXIT_ERROR
    except BaseException as e:
        # a BaseException of the user's code's own (a class of a kernel's module): Python's
        # traceback exited with 1, the status of a failed check (a review); kernbench's own, or
        # a library's from no user frame, goes on
        at = _user_frame(e.__traceback__)
        if at is None:
            raise
        if debug:
            traceback.print_exc()
            return EXIT_ERROR
        what = type(e).__name__ + (f": {_one_line(e)}" if exc_text(e).strip() else "")
        notes = " ".join(str(n) for n in getattr(e, "__notes__", ()))  # (a launch's: kernel and PE)
        err.print(rich_text(f"kernbench: error: {at}: {what} {notes}".rstrip()))
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
