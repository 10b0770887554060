"""The per-line profile: per-command stalls derived from start and end cycles equal the engine's
counters, the lines' figures add up to them, hand-derived lines, the table at 120 and 80
columns, JSON, a result rebuilt from JSON, and ``kernbench run --profile``."""
import io
import json
import textwrap

import numpy as np
import pytest

from kernbench.cli import main
from kernbench.common.pe_commands import N_UNITS, UNIT_NAMES, Unit
from kernbench.report import from_json
from kernbench.report.commands import command_facts
from kernbench.report.profile import STALLS, print_profile, profile

from report_helpers import line_pipeline, ring_exchange


def small_prefill():
    from kernbench.diag import panel_spec, run_panel
    from kernbench.hw import load_hw

    hw = load_hw("default")
    return run_panel(panel_spec("single_user_prefill", hw), hw).result


@pytest.fixture(scope="module")
def prefill():
    return small_prefill()


CASES = {"line_pipeline": line_pipeline, "ring": ring_exchange, "prefill": small_prefill}


@pytest.mark.parametrize("name", CASES)
def test_per_command_stalls_sum_to_the_engine_counters(name):
    r = CASES[name]()
    fx = command_facts(r)
    uc = r.unit_counters
    for cause in STALLS:
        per = np.zeros(uc.shape, np.int64)
        np.add.at(per, (fx.pe, fx.unit), getattr(fx, cause))
        assert (per == uc["stall_" + cause]).all(), cause
    busy = np.zeros(uc.shape, np.int64)
    np.add.at(busy, (fx.pe, fx.unit), fx.end - fx.start)
    assert (busy == uc["busy"]).all()
    # every command starts at its unit's previous end or at an operand's end (or at 0)
    ready = np.where(fx.producers >= 0, fx.end[np.maximum(fx.producers, 0)], 0).max(axis=1)
    assert (np.maximum(fx.prev_end, ready) == fx.start).all()


@pytest.mark.parametrize("name", CASES)
def test_facts_equal_a_command_by_command_reference(name):
    """command_facts builds its arrays vectorized (radix-sorted queue keys, a sentinel for the
    producers): each equals a plain loop over every PE's commands in program order."""
    r = CASES[name]()
    fx = command_facts(r)
    prog = r.program
    c = prog.take(np.arange(prog.n_commands))
    prev = np.full(prog.n_commands, -1, np.int64)
    producers = np.full((prog.n_commands, 3), -1, np.int64)
    for g in range(prog.n_pes):
        last_on_unit, made_by = {}, {}
        for i in range(int(prog.cmd_offsets[g]), int(prog.cmd_offsets[g + 1])):
            u = int(c["unit"][i])
            prev[i] = last_on_unit.get(u, -1)
            last_on_unit[u] = i
            for j, f in enumerate(("src0", "src1", "src2")):
                producers[i, j] = made_by.get(int(c[f][i]), -1) if c[f][i] >= 0 else -1
            if c["dst"][i] >= 0:
                made_by[int(c["dst"][i])] = i
    assert fx.prev.tolist() == prev.tolist()
    assert fx.producers.tolist() == producers.tolist()
    assert fx.pe.tolist() == np.repeat(np.arange(prog.n_pes), np.diff(prog.cmd_offsets)).tolist()
    assert fx.unit.tolist() == c["unit"].tolist() and fx.opcode.tolist() == c["opcode"].tolist()


def test_narrow_facts_report_as_int64_facts():
    """The facts keep command numbers as int32 (index_dtype), PEs as int32, units and opcodes
    as int8: 34 bytes a command instead of 72. The profile and the critical path of a launch
    whose cycles pass 2**31 on 8 cubes (mesh8, 32K: 2.7e9 cycles; the critical path's channel
    openers multiply a cube number by a cycle count) equal those made from the same facts
    widened to int64."""
    import dataclasses

    from kernbench.diag import panel_spec, run_panel
    from kernbench.hw import load_hw
    from kernbench.report import critical_path
    from kernbench.report.commands import CommandFacts, index_dtype, keep_report

    hw = load_hw("mesh8")
    r = run_panel(panel_spec("multi_user_prefill", hw, shape="llama70b", context=32768), hw).result
    assert r.cycles > 2 ** 31 and r.hw.n_cubes > 1
    fx = command_facts(r)
    kept = {f.name: getattr(fx, f.name).dtype for f in dataclasses.fields(CommandFacts)}
    assert kept == {"pe": np.int32, "unit": np.int8, "opcode": np.int8, "start": np.int64,
                    "end": np.int64, "prev": np.int32, "producers": np.int32, "ideal": np.int64,
                    "peer": np.int32}
    assert index_dtype(2 ** 31 - 2) == np.int32 and index_dtype(2 ** 31 - 1) == np.int64
    wide = CommandFacts(**{f: getattr(fx, f).astype(np.int64) for f in kept})
    r64 = dataclasses.replace(r)
    keep_report(r64, "_kb_command_facts", wide)
    assert profile(r64) == profile(r)
    assert critical_path(r64).to_dict() == critical_path(r).to_dict()
    assert len(critical_path(r).steps) > 10


def test_reports_kept_on_a_result_are_made_again_when_their_inputs_are_replaced():
    """A review's case: the profile's line groups, the facts and the critical path were kept on
    a result by its engine alone, so a result whose sources (or hw) were replaced after a first
    report kept reporting the old ones, unlike a result given them before any report."""
    import dataclasses

    from kernbench.report import critical_path

    def src(i):
        return f"/elsewhere/gen.py:{i % 3}"

    a, b = line_pipeline(n_pes=3), line_pipeline(n_pes=3)
    before = profile(a)
    a.sources = src
    b.sources = src
    assert profile(a) == profile(b) != before
    assert sorted(d["source"] for d in profile(a)["lines"]) == [f"/elsewhere/gen.py:{k}" for k in range(3)]
    # a slower DMA: the facts' alone times (ideal) and the stalls they give are made again
    slow = dataclasses.replace(a.hw, dma=dataclasses.replace(a.hw.dma, latency_cycles=a.hw.dma.latency_cycles * 3))
    fx = command_facts(a)
    a.hw = slow
    b.hw = slow
    assert command_facts(a) is not fx
    assert (command_facts(a).ideal == command_facts(b).ideal).all()
    assert critical_path(a).to_dict() == critical_path(b).to_dict()
    assert command_facts(a) is command_facts(a)  # (kept while nothing changes)


@pytest.mark.parametrize("name", CASES)
def test_lines_add_up_to_the_counters(name):
    r = CASES[name]()
    p = profile(r)
    uc = r.unit_counters
    for u in range(N_UNITS):
        assert sum(d["busy"].get(UNIT_NAMES[u], 0) for d in p["lines"]) == uc["busy"][:, u].sum()
    for cause in STALLS:
        assert sum(d["stall"][cause] for d in p["lines"]) == uc["stall_" + cause].sum()
    assert sum(d["commands"] for d in p["lines"]) == r.program.n_commands
    assert sum(d["path_cycles"] for d in p["lines"]) == r.cycles
    assert p["pe_cycles"] == r.cycles * len(r.working_pes)
    work = [d["work_cycles"] for d in p["lines"]]
    assert work == sorted(work, reverse=True)  # sorted by cost: busy but the waits inside it


def test_hand_derived_lines():
    """report_helpers.line_pipeline on 3 PEs (tests/test_report_table.py derives the cycles):
    line 12 is the dot, 760 cycles on each PE; line 13 the exp, 264 each; line 14 the sends of
    PEs 0 and 1; line 16 the adds of PEs 1 and 2, 72 each; lines 10 and 11 one load per PE."""
    r = line_pipeline(n_pes=3)
    lines = {d["short"]: d for d in profile(r)["lines"]}
    assert lines["fake_kernel.py:12"]["busy"] == {"GEMM": 3 * 760}
    assert lines["fake_kernel.py:12"]["commands"] == 3 and lines["fake_kernel.py:12"]["pes"] == 3
    assert lines["fake_kernel.py:13"]["busy"] == {"VECTOR": 3 * 264}
    assert lines["fake_kernel.py:14"]["commands"] == 2 and set(lines["fake_kernel.py:14"]["busy"]) == {"TX_E"}
    assert lines["fake_kernel.py:16"]["busy"] == {"VECTOR": 2 * 72}
    for ln in ("fake_kernel.py:10", "fake_kernel.py:11"):
        assert lines[ln]["commands"] == 3 and set(lines[ln]["busy"]) == {"DMA"}
    # the dots wait for their second load: operand stall on GEMM, on line 12
    fx = command_facts(r)
    dots = np.flatnonzero(fx.unit == Unit.GEMM)
    assert lines["fake_kernel.py:12"]["stall"]["operand"] == int(fx.start[dots].sum()) > 0
    # the recv of a PE posted at 0 waits for its data: data stall on line 15, nowhere else
    assert lines["fake_kernel.py:15"]["stall"]["data"] > 0
    assert all(d["stall"]["data"] == 0 for k, d in lines.items() if k != "fake_kernel.py:15")


def test_table_at_120_and_80_columns(prefill):
    wide = print_profile(prefill, file=io.StringIO(), width=120)
    narrow = print_profile(prefill, file=io.StringIO(), width=80)
    for text, width in ((wide, 120), (narrow, 80)):
        assert max(len(line) for line in text.splitlines()) <= width
    p = profile(prefill)
    # no figure is cut (rich marks a cut with an ellipsis): at 80 columns a row's first line
    # holds its kernel line and its figures only (the op goes below); at 120 every row ends with
    # its path share, its last column
    for d in p["lines"]:
        row_n = next(line for line in narrow.splitlines() if line.startswith(d["short"] + " "))
        assert "…" not in row_n
        row_w = next(line for line in wide.splitlines() if line.startswith(d["short"] + " "))
        pct = 100 * d["path_fraction"]
        assert row_w.rstrip().endswith("-" if not d["path_cycles"] else f"{pct:.1f}" if pct >= 0.05 else "<0.1")
    p = profile(prefill)
    for d in p["lines"]:
        assert d["short"] in wide and d["short"] in narrow
    # every figure of a row is in both layouts (the narrow one merges TX+RX and the in-busy stalls)
    first = p["lines"][0]
    row_w = next(line for line in wide.splitlines() if line.startswith(first["short"]))
    row_n = next(line for line in narrow.splitlines() if line.startswith(first["short"]))
    assert f"{first['commands']:,}" in row_w and f"{first['commands']:,}" in row_n
    assert f"{100 * first['path_fraction']:.1f}" in row_w and f"{100 * first['path_fraction']:.1f}" in row_n


def test_sort_and_top(prefill):
    by_path = profile(prefill, sort="path")["lines"]
    cyc = [d["path_cycles"] for d in by_path]
    assert cyc == sorted(cyc, reverse=True)
    by_line = profile(prefill, sort="line")["lines"]
    assert len(by_line) == len(by_path)
    with pytest.raises(ValueError, match="sort must be one of"):
        profile(prefill, sort="cost")
    text = print_profile(prefill, file=io.StringIO(), top=3)
    assert f"and {len(by_line) - 3} more lines" in text
    # top is None or a positive int: 0 printed every line and -1 dropped one while saying
    # "... and 4 more lines" (a review)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="top: expected None"):
            print_profile(prefill, file=io.StringIO(), top=bad)
    assert print_profile(prefill, file=io.StringIO(), top=np.int64(3)) == text


def test_json_and_a_result_rebuilt_from_it(tmp_path):
    r = line_pipeline(n_pes=3)
    doc = r.to_json(tmp_path / "r.json")
    assert [d["short"] for d in doc["profile"]] == sorted(d["short"] for d in doc["profile"])
    back = from_json(tmp_path / "r.json")
    a, b = profile(r), profile(back)
    strip = ("labels",)
    assert [{k: v for k, v in d.items() if k not in strip} for d in a["lines"]] == \
        [{k: v for k, v in d.items() if k not in strip} for d in b["lines"]]
    assert json.loads(json.dumps(doc["profile"])) == doc["profile"]


def test_result_method_prints_and_returns_text(capsys):
    r = line_pipeline(n_pes=3)
    text = r.profile(width=100)
    assert "per-line profile" in capsys.readouterr().out
    assert "fake_kernel.py:12" in text


KERNEL = textwrap.dedent('''
    def vadd(x_ptr, y_ptr, o_ptr, n, *, tl):
        x = tl.load(x_ptr, shape=(n,), dtype="f32")
        y = tl.load(y_ptr, shape=(n,), dtype="f32")
        tl.store(o_ptr, tl.exp(x) + y)
    def setup(ctx, n):
        import numpy as np
        x = ctx.empty((n,), "f32")
        return {"x_ptr": x, "y_ptr": ctx.empty((n,), "f32"), "o_ptr": ctx.empty((n,), "f32")}
''')


def test_cli_run_profile(tmp_path, capsys):
    f = tmp_path / "k.py"
    f.write_text(KERNEL)
    code = main(["run", f"{f}:vadd", "--grid", "2,1", "--arg", "n=4096", "--profile",
                 "--trace", str(tmp_path / "t.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "per-line profile" in out and "k.py:5" in out  # the line of the store and its exp
    assert "critical path (" in out and "critical-path track" in out
    trace = json.load(open(tmp_path / "t.json"))
    assert any(e.get("args", {}).get("name") == "critical path" for e in trace["traceEvents"])


def _growing_keys(q_ptr, k_ptr, o_ptr, n, *, tl):
    q = tl.load(q_ptr, shape=(8, 32), dtype="f32")
    o = tl.zeros((8, 32), "f32")
    for i in tl.range(0, n, shapes_move=True):
        k = tl.load(k_ptr + 64 * i * 4, shape=(4 + 4 * i, 32), dtype="f32")
        p = tl.exp(tl.dot(q, tl.trans(k)))
        o = o + tl.dot(p, k)  # 20 dots, one label each (their shapes move), and 20 adds of one
    tl.store(o_ptr, o)


def test_a_line_is_named_by_its_busiest_op_not_its_commonest_label():
    """The line ``o = o + tl.dot(p, k)`` of a shapes_move loop: 20 dots of 20 shapes (a label
    each) and 20 adds of one label. The adds' label has the most busy cycles of any one label
    (20 * 12 = 240: (8, 32) f32 is 256 / 64 + 8 = 12 cycles, docs/hardware-model.md) while the
    dots take more together; the op column names the dots, by the busiest: the last, with the
    longest K (80), whose fold K + R + C - 2 is the longest (a review found the add named)."""
    import kernbench
    ctx = kernbench.Context("default")
    q, k, o = ctx.empty((8, 32), "f32"), ctx.empty((1024, 32), "f32"), ctx.empty((8, 32), "f32")
    r = ctx.launch(_growing_keys, (1, 1), q, k, o, 20, mode="timing")
    at = _growing_keys.__code__.co_firstlineno + 6  # the line of ``o = o + tl.dot(p, k)``
    line = next(d for d in profile(r)["lines"] if d["source"].endswith(f":{at}"))
    assert line["busy"]["VECTOR"] == 20 * 12 < line["busy"]["GEMM"]
    assert line["labels"][0] == "dot (8,80)x(80,32) f32"
    assert len(line["labels"]) == 21 and "add (8,32) f32" in line["labels"]


def test_a_long_file_name_is_cut_on_its_left_keeping_its_line(tmp_path, monkeypatch):
    """A helper in a file whose name is longer than the line column: the row keeps its ":2"
    (cut on the left, with an ellipsis) at 80 and at 120 columns (a review found the name cut
    on its right, the line number gone)."""
    import kernbench
    from rich.cells import cell_len
    monkeypatch.syspath_prepend(str(tmp_path))
    ctx = kernbench.Context("default")
    # an ASCII name, and one of wide (CJK) characters, two terminal cells each: cut by cells (a
    # breaker found the cut by characters let rich cut it again, on its right, dropping ":2")
    for name in ("a_really_quite_long_helper_module_name_for_testing_widths",
                 "カーネル補助関数モジュール_長い名前のファイル"):
        (tmp_path / f"{name}.py").write_text("def helper(tl, x):\n    return tl.exp(x)\n")
        helper = __import__(name).helper

        def k(x_ptr, o_ptr, *, tl, helper=helper):
            tl.store(o_ptr, helper(tl, tl.load(x_ptr, shape=(4096,), dtype="f32")))

        r = ctx.launch(k, (1, 1), ctx.empty((4096,), "f32"), ctx.empty((4096,), "f32"), mode="timing")
        for width in (80, 120):
            text = print_profile(r, file=io.StringIO(), width=width)
            assert max(cell_len(x) for x in text.splitlines()) <= width
            row = next(x for x in text.splitlines() if x.startswith("…") and f"{name[-8:]}.py:2 " in x)
            assert row.split()[0].endswith(f"{name[-8:]}.py:2")


@pytest.mark.parametrize("width", [60, 120])
def test_the_title_of_an_empty_launch_s_profile_is_one_line(width):
    """(A review's case.) A launch of no command has a table of one narrow column: rich wrapped
    the title, as the table's, to 17 columns on four lines. It is a line of its own now."""
    from kernbench.runtime.context import Context

    def empty(*, tl):
        pass

    r = Context("default").launch(empty, (8, 1))
    text = print_profile(r, file=io.StringIO(), width=width)
    assert text.splitlines()[0] == "empty: per-line profile (0 cycles, sorted by busy)"
