"""The compiled engine. ``simulate`` is the one entry point; see api.py."""
import importlib.util as _util
import os as _os

#: The compiled extensions (setup.py builds each from its .pyx).
EXTENSIONS = ("_heap", "_timing", "_dma", "_link", "_check", "_replay", "_engine")


def _not_built(missing: list) -> str:
    """Why the engine does not import from this folder, and what to do: a source tree (a fresh
    clone, or the checkout of a non-editable install) has the .pyx files only, and without this
    check the import fails as a puzzling "circular import" inside api.py."""
    from importlib.metadata import PackageNotFoundError, version

    here = _os.path.dirname(_os.path.abspath(__file__))
    root = _os.path.dirname(_os.path.dirname(here))
    try:
        use = f"Run from another folder to use the installed kernbench {version('kernbench')}"
    except PackageNotFoundError:
        use = "Install it (`pip install .`) and run from another folder"
    return (f"kernbench's compiled engine is not built in {here} (missing: {', '.join(missing)}): "
            f"you are importing the source tree at {root} (Python puts the current folder first on "
            f"sys.path), which has no built engine. {use}, or build the engine in place with "
            f"`pip install -e .` in {root}.")


_missing = [m for m in EXTENSIONS if _util.find_spec(f"{__name__}.{m}") is None]
if _missing:
    raise ImportError(_not_built(_missing), name=f"{__name__}.{_missing[0]}")

from .api import DETAILS, EVENT_DTYPE, MESSAGE_DTYPE, EngineResult, hw_params, simulate  # noqa: E402
from ._engine import DEBUG_BUILD, LINK_COUNTERS_DTYPE, UNIT_COUNTERS_DTYPE  # noqa: E402

__all__ = [
    "simulate",
    "EngineResult",
    "hw_params",
    "DETAILS",
    "EVENT_DTYPE",
    "MESSAGE_DTYPE",
    "UNIT_COUNTERS_DTYPE",
    "LINK_COUNTERS_DTYPE",
    "DEBUG_BUILD",
]
