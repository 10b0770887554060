"""Imports point down the layers of docs (/work/shared/design.md): the runtime and everything
below it never import their consumers (reports, diag, the command line, shipped kernels), at
module level or inside a function."""
import ast
from pathlib import Path

import pytest

import kernbench

PKG = Path(kernbench.__file__).parent
LOWER = ("common", "hw", "language", "_core", "runtime")
CONSUMERS = ("kernbench.report", "kernbench.diag", "kernbench.cli", "kernbench.kernels")


def imported_modules(path: Path, text: str | None = None) -> list:
    """(line, absolute module name) of every import in the file (or ``text`` as that file),
    nested ones included; ``from . import x`` counts as importing ``package.x``."""
    package = list(path.relative_to(PKG.parent).parts[:-1])  # an __init__'s package is its folder
    out = []
    source = path.read_text() if text is None else text
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def test_the_parser_sees_lazy_and_relative_imports():
    # The check below is only as good as this: the upward import result.py used to make inside
    # a method must be seen.
    old = "def report(self):\n    from ..report import table\n    return table\n"
    mods = [m for _, m in imported_modules(PKG / "runtime" / "result.py", old)]
    assert mods == ["kernbench.report", "kernbench.report.table"]
    mods = [m for _, m in imported_modules(PKG / "report" / "__init__.py")]
    assert "kernbench.runtime.result" in mods and "kernbench.report.table" in mods


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_never_import_their_consumers(layer):
    bad = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for line, mod in imported_modules(path):
            if any(mod == c or mod.startswith(c + ".") for c in CONSUMERS):
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {mod}")
    assert not bad, "imports must point down (reports sit above the runtime):\n" + "\n".join(bad)


def test_result_views_still_work_without_the_runtime_importing_reports():
    # kernbench.report registers the views on import; `import kernbench` imports it.
    from kernbench.report import (critical_path, launch_html, plot, print_drift, print_profile,
                                  print_report, to_json, to_perfetto, write_json)
    from kernbench.runtime import result

    assert result._VIEWS == {"report": print_report, "to_json": to_json, "write_json": write_json,
                             "to_perfetto": to_perfetto, "plot": plot, "profile": print_profile,
                             "critical_path": critical_path, "drift_report": print_drift,
                             "repr_html": launch_html}
    assert set(result._VIEWS) == set(result.VIEW_NAMES)


def test_compiled_pyx_code_indexes_nothing_from_the_end():
    # (a review: the .pyx files build with wraparound off in release (setup.py), so `a[-1]` on a
    # numpy array reached its sq_item as -1; numpy 2.5, which pip installs on Python 3.12+, reads
    # that as past the start, and every Perfetto trace and JSON report raised IndexError)
    import re

    negative = re.compile(r"\[\s*-\s*\d")
    found = []
    for path in sorted(PKG.rglob("*.pyx")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if negative.search(code) and '"' not in code and "'" not in code:
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert not found, "index with len(x) - k instead:\n" + "\n".join(found)
