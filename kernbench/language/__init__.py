"""The ``tl`` kernel language: builtins (the documented calls), semantic checks, and the builder
that turns calls into PE commands. Kernels never import this: they receive ``tl`` as an argument.
docs/language.md is the reference."""
from ..common.pe_commands import TensorHandle
from .builder import PEBuilder
from .builtins import TL
from .semantic import DTYPES, NP_DTYPES, STORAGE_DTYPES, TransposedView, dtype_name

__all__ = ["TL", "PEBuilder", "TensorHandle", "TransposedView", "DTYPES", "NP_DTYPES",
           "STORAGE_DTYPES", "dtype_name"]
