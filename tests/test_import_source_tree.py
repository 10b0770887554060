"""Importing a source tree whose engine was never built (a fresh clone, or the checkout of a
non-editable install, run from its root) says so and what to do, instead of Python's "circular
import"; and `python -m pytest` from such a checkout tests the installed package."""
import shutil
import subprocess
import sys
from pathlib import Path

import kernbench

SRC = Path(kernbench.__file__).parent
TESTS = Path(__file__).parent


def source_tree(dest: Path) -> None:
    """The package as a clone has it: sources only, no compiled engine."""
    shutil.copytree(SRC, dest / "kernbench",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "*.html", "__pycache__"))


def test_importing_a_tree_without_the_engine_says_what_to_do(tmp_path):
    source_tree(tmp_path)
    # `python -c` puts the cwd first on sys.path, as in a clone's root
    p = subprocess.run([sys.executable, "-c", "import kernbench"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: kernbench's compiled engine is not built in")
    assert "circular import" not in p.stderr
    assert f"you are importing the source tree at {tmp_path}" in last
    assert "run from another folder" in last.lower() and "`pip install -e .`" in last
    assert "_engine" in last  # what is missing


def test_python_dash_m_pytest_in_the_checkout_tests_the_installed_package(tmp_path):
    source_tree(tmp_path)
    (tmp_path / "tests").mkdir()
    shutil.copy(TESTS / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "tests" / "test_which.py").write_text(
        "import kernbench, kernbench._core\n"
        "from pathlib import Path\n\n"
        "def test_which():\n"
        f"    assert Path(kernbench.__file__).parent.resolve() != Path({str(tmp_path / 'kernbench')!r}).resolve()\n"
    )
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_which.py"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed" in p.stdout
