"""The docs cite shipped kernels' lines (`_prefill.py:34` in docs/reports.md's profile and
critical path examples): each cited line is the call the docs name there. A review found every
citation one line behind after a docstring grew a line: the figures held, the lines did not."""
import pathlib
import re

import pytest

import kernbench.kernels

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
KERNELS = pathlib.Path(kernbench.kernels.__file__).resolve().parent
#: the first word of a profile label -> the tl call its line holds
CALLS = {"dot": "tl.dot(", "exp": "tl.exp(", "send": "tl.send(", "recv": "tl.recv(",
         "sum-reduce": "tl.sum(", "sub": " - ", "max-reduce": "tl.max("}
CITE = re.compile(r"(_[a-z0-9_]+\.py):(\d+)(?:`?\s+(?:on \S+ )?([a-z-]+))?")


def _citations():
    for doc in sorted(DOCS.glob("*.md")):
        for n, text in enumerate(doc.read_text().splitlines(), 1):
            for m in CITE.finditer(text):
                if (KERNELS / m.group(1)).exists():
                    yield pytest.param(m.group(1), int(m.group(2)), m.group(3), id=f"{doc.name}:{n}:{m.group(0)}")


@pytest.mark.parametrize("file, line, op", list(_citations()))
def test_a_cited_kernel_line_holds_the_call_named(file, line, op):
    src = (KERNELS / file).read_text().splitlines()
    assert 1 <= line <= len(src), f"{file} has {len(src)} lines"
    text = src[line - 1]
    assert "tl." in text, f"{file}:{line} is {text.strip()!r}, no tl call"
    if op in CALLS:
        assert CALLS[op] in text, f"{file}:{line} is {text.strip()!r}, not a {op}"


def test_the_citations_are_found():
    found = list(_citations())
    assert len(found) >= 10  # (the profile table's rows, the critical path's, the step's)
