"""Every code block of README.md and docs/*.md runs, with Sybil (https://sybil.readthedocs.io), so the
docs cannot drift from the API.

Sybil finds the blocks: a ```python block runs (one starting with ``>>>`` is a doctest); the blocks
of one file share a namespace, in order, so a fragment runs with what the blocks above it defined. In
the Markdown, a hidden ``<!-- invisible-code-block: python ... -->`` gives a fragment the setup the
reader does not need to see, ``<!-- skip: next "why" -->`` marks a python block that cannot run
(reported as a skip with its reason), and output samples, usage lines and shell commands sit in
```text / ```bash fences, which are not run. test_every_fence_is_marked keeps it that way.

Each block is a test (``test_docs_examples.py::test_block[reports.md:208]``). Sybil's pytest
plugin collects only files under a conftest.py, and a conftest.py at the checkout's root would
put the source tree on sys.path ahead of the installed package, so this module asks Sybil to parse
the files and runs the examples itself: a block selected alone first runs the blocks above it.
"""
import pathlib
import re
import unittest

import pytest
from sybil import Sybil
from sybil.parsers.markdown import ClearNamespaceParser, PythonCodeBlockParser, SkipParser

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SYBIL = Sybil(parsers=[PythonCodeBlockParser(), SkipParser(), ClearNamespaceParser()],
              path=str(ROOT), patterns=["README.md", "docs/*.md"])


def _is_block(example) -> bool:
    """A code block or a hidden one (not a skip or clear-namespace directive). Hidden blocks are
    tests too: one after a file's last visible block (the asserts that hold a block's printed
    figures) was never run (a review found kernels.md's ``assert r.cycles == 69970`` stale)."""
    start = example.document.text[example.region.start:example.region.start + 40]
    return start.lstrip().startswith(("```", ">>>", "<!-- invisible-code-block"))


class _Doc:
    def __init__(self, path: pathlib.Path):
        self.path = path
        self.document = SYBIL.parse(path)
        self.examples = list(self.document.examples())
        self.done = 0  # examples evaluated so far, in order
        self.failed: str | None = None

    def run_through(self, index: int) -> None:
        """Evaluate the examples up to and including ``index``, each once, in order."""
        while self.done <= index:
            example = self.examples[self.done]
            self.done += 1
            if self.failed is not None:
                pytest.fail(f"{self.failed} failed: the blocks below it run in its namespace", pytrace=False)
            try:
                example.evaluate()
            except unittest.SkipTest as e:  # a block after <!-- skip: next "why" -->
                if self.done - 1 == index:
                    pytest.skip(f"{self.path.name}:{example.line}: {e}")
            except BaseException:
                self.failed = f"{self.path.name}:{example.line}"
                raise


_DOCS = {p.name: _Doc(p) for p in DOCS if p.exists()}
_BLOCKS = [(name, i) for name, doc in _DOCS.items() for i, ex in enumerate(doc.examples) if _is_block(ex)]


@pytest.fixture(scope="module", autouse=True)
def _scratch_folder(tmp_path_factory):
    """Examples write traces, plots and JSON into the current folder, and sweeps cache rows on disk:
    both go to a scratch folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("docs"))
        mp.setenv("KERNBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.mark.parametrize("name, index", _BLOCKS, ids=[f"{n}:{_DOCS[n].examples[i].line}" for n, i in _BLOCKS])
def test_block(name, index):
    _DOCS[name].run_through(index)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_fence_is_marked(doc):
    """Every fenced block names its language, so none escapes the run by accident: python runs, and a
    block that cannot run is text (output, usage), bash or another language."""
    fences = re.findall(r"^ *(```+|~~~+)(.*)$", doc.read_text(), re.M)
    opening = fences[::2]
    bare = [i for i, (_, info) in enumerate(opening) if not info.strip()]
    assert not bare, f"{doc.name}: fenced blocks {bare} (0-based) have no language: ```python, ```text, ```bash ..."
