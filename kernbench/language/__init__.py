"""The ``tl`` kernel language: builtins (the documented calls), semantic checks, and the builder
that turns calls into PE commands. Kernels never import this: they receive ``tl`` as an argument.
docs/language.md is the reference."""
import importlib as _importlib
import os as _os
import warnings as _warnings

from ..common.pe_commands import TensorHandle
from ._compiled import TRACING_MODULES
from .builder import PEBuilder
from .builtins import TL
from .semantic import DTYPES, NP_DTYPES, STORAGE_DTYPES, TransposedView, dtype_name

__all__ = ["TL", "PEBuilder", "TensorHandle", "TransposedView", "DTYPES", "NP_DTYPES",
           "STORAGE_DTYPES", "dtype_name", "TRACING_MODULES", "compiled_tracing"]

def compiled_tracing() -> dict:
    """{module: True when it runs compiled} for TRACING_MODULES (all False in a build with
    ``KERNBENCH_PURE_PYTHON=1``; the results are the same either way)."""
    return {m: not _importlib.import_module(m).__file__.endswith(".py") for m in TRACING_MODULES}


def _warn_stale() -> None:
    """An editable install (``pip install -e .``) compiles these modules next to their .py
    files, and Python imports the compiled one: after an edit it would run the old code. Only a
    source checkout (setup.py beside the package) is checked: an installed package's files carry
    the install's times, in no useful order."""
    root = _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    if not _os.path.exists(_os.path.join(root, "setup.py")):
        return
    stale = []
    for m in TRACING_MODULES:
        so = _importlib.import_module(m).__file__
        for ext in (".py", ".pxd"):  # (a .pxd gives the compiled module its C types)
            src = _os.path.join(_os.path.dirname(so), m.rsplit(".", 1)[1] + ext)
            if not so.endswith(".py") and _os.path.exists(src) and _os.path.getmtime(src) > _os.path.getmtime(so):
                stale.append(src)
    if stale:
        _warnings.warn(f"{', '.join(stale)} {'is' if len(stale) == 1 else 'are'} newer than the compiled "
                       f"module{'s' if len(stale) > 1 else ''} Python imports instead: rebuild "
                       f"(`pip install -e .`) or delete the compiled modules", RuntimeWarning, stacklevel=2)


_warn_stale()
