"""Every complete example in README.md and docs/*.md runs as written (a block that makes a
Context and defines a kernel), so the docs cannot drift from the API."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples():
    for doc in DOCS:
        if not doc.exists():
            continue
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)):
            if "kernbench.Context(" in block and "def " in block:
                yield pytest.param(block, id=f"{doc.name}-{i}")


@pytest.mark.parametrize("block", list(examples()))
def test_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write traces
    exec(compile(block, "<doc example>", "exec"), {"__name__": "__doc_example__"})
