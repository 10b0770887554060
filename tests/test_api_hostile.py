"""Hostile calls to the host API (Context, placement, SFR installs, reports): each is refused with
a clear error naming what was expected, never accepted silently or answered with a raw error."""
import json
import re

import sys

import numpy as np
import pytest

import kernbench
from kernbench.hw import HardwareConfigError
from kernbench.runtime import PlacementError

HW = {"n_cubes": 1, "pes_per_cube": 2}


@pytest.fixture
def ctx():
    return kernbench.Context("default", overrides=HW)


@pytest.mark.parametrize("shape,dtype", [((2 ** 62, 2), "f32"), ((2 ** 32, 2 ** 32), "f16"),
                                         ((2 ** 20, 2 ** 20, 2), "f32")])
def test_allocations_beyond_the_byte_bound_are_refused(ctx, shape, dtype):
    # once a negative nbytes (2**62 x 2 x 4 wraps int64) or 0 elements (2**64 wraps to 0)
    with pytest.raises(PlacementError, match=r"bytes per PE: at most 2\*\*40"):
        ctx.empty(shape, dtype)
    a = ctx.empty((4,), "f32")  # later allocations are unaffected
    assert a.addr >= 0x1000_0000 and a.nbytes == 16


@pytest.mark.parametrize("shape", [(True, 4), (2.0, 4), (), (0, 4), ("4",)])
def test_allocation_shapes_must_be_positive_ints(ctx, shape):
    with pytest.raises(PlacementError, match="shape must be a non-empty tuple of positive ints"):
        ctx.empty(shape, "f32")


@pytest.mark.parametrize("name", [5, b"x", "two\nlines", "tab\there", "\x1b[31mred", ("a",)])
@pytest.mark.parametrize("how", ["empty", "replicate", "shard", "put", "empty_like"])
def test_allocation_names_must_be_printable_text(ctx, name, how):
    like = ctx.empty((2,), "f32", name="like")
    x = np.zeros((2, 2), np.float32)
    make = {"empty": lambda: ctx.empty((2,), "f32", name=name),
            "replicate": lambda: ctx.replicate(x, name=name),
            "shard": lambda: ctx.shard(x, name=name),
            "put": lambda: ctx.put(x, (0, 0), name=name),
            "empty_like": lambda: ctx.empty_like(like, name=name)}[how]
    with pytest.raises(PlacementError, match="name must be a str of printable characters"):
        make()
    assert ctx.empty((2,), "f32", name="ok name · 1").name == "ok name · 1"


def test_complex_and_non_numeric_data_are_refused(ctx):
    with pytest.raises(PlacementError, match="complex data"):
        ctx.replicate(np.ones(4, np.complex64))
    with pytest.raises(PlacementError, match="not numbers"):
        ctx.replicate(np.array(["a", "b"]))


@pytest.mark.parametrize("call", ["put", "replicate", "shard"])
def test_ragged_lists_are_refused_as_placement_errors(ctx, call):
    data = [[1.0, 2.0], [3.0]]
    place = {"put": lambda: ctx.put(data, (0, 0)), "replicate": lambda: ctx.replicate(data),
             "shard": lambda: ctx.shard(data)}[call]
    with pytest.raises(PlacementError, match="not a rectangular array of numbers"):
        place()


def test_shard_parts_must_be_an_int(ctx):
    with pytest.raises(PlacementError, match="parts must be an int"):
        ctx.shard(np.ones((2, 4), np.float32), parts=True)


@pytest.mark.parametrize("ring", ["no", 1, None])
def test_sfr_ring_must_be_a_bool(ctx, ring):
    with pytest.raises(ValueError, match="ring must be True or False"):
        ctx.install_sfr("pe", ring=ring)
    ctx.install_sfr("pe", ring=np.True_)  # numpy's bool is a bool
    assert ctx.sfr.ring


def test_from_json_refuses_truncated_and_incomplete_files(ctx, tmp_path):
    x = ctx.replicate(np.ones(8, np.float32))
    r = ctx.launch(lambda p, *, tl: tl.load(p, shape=(8,)), (1, 1), x)
    path = tmp_path / "r.json"
    r.to_json(str(path))
    text = path.read_text()
    assert kernbench.report.export.from_json(str(path)).cycles == r.cycles
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="cut.json: not a kernbench launch JSON .truncated or not JSON"):
        kernbench.report.export.from_json(str(tmp_path / "cut.json"))
    doc = json.loads(text)
    del doc["counters"]
    (tmp_path / "nokey.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="nokey.json: not a complete kernbench launch JSON .KeyError: 'counters'"):
        kernbench.report.export.from_json(str(tmp_path / "nokey.json"))


def _json_views(r, tmp_path) -> None:
    import io

    r.report(file=io.StringIO())
    r.profile(file=io.StringIO())
    str(r.critical_path())
    r.to_perfetto(str(tmp_path / "t.json"))
    r.to_json()
    if r.drift is not None:
        r.drift_report(file=io.StringIO())
    r.label(0)


def test_from_json_refuses_an_edited_document_its_views_would_fail_on(tmp_path):
    """A review's fuzz: ~20 edits of a launch JSON (a grid of a list, an offset of 2**64,
    counters cut short, a label of a number, a drift's first of a string) were accepted, or
    raised OverflowError, and the views failed later with raw TypeError / IndexError. Each
    edit now gives a ValueError from from_json, or a result whose views all work."""
    import copy
    import random

    ctx = kernbench.Context("default", overrides={"pes_per_cube": 2, "n_cubes": 1})
    ctx.install_sfr("pe", ring=True)
    x = ctx.replicate(np.arange(64, dtype=np.float32))

    def k(x, *, tl):
        a = tl.load(x, shape=(64,), dtype="f32")
        for _ in tl.range(4):
            a = a * 2
        tl.send("E", a)
        tl.store(x, tl.recv("W", (64,), "f32") + tl.sum(a))

    doc = ctx.launch(k, (2, 1), x, record_events=True, drift=True).to_json()
    leaves = []

    def walk(d, path):
        if isinstance(d, dict):
            for key, v in d.items():
                walk(v, path + [key])
        else:
            leaves.append(path)
            if isinstance(d, list):
                for i, v in enumerate(d[:3]):
                    walk(v, path + [i])

    walk(doc, [])
    values = [None, -1, 0, 2**63, 2**64, 1.5, float("nan"), "x", [], {}, [1], [[1]], True, [-1] * 5,
              list(range(100))]
    rng = random.Random(0)
    accepted = 0
    for _ in range(300):
        d = copy.deepcopy(doc)
        for _ in range(rng.randint(1, 3)):
            *up, last = rng.choice(leaves)
            try:
                parent = d
                for q in up:
                    parent = parent[q]
                parent[last]
            except (KeyError, IndexError, TypeError):
                continue  # (an edit before this one changed the path)
            parent[last] = rng.choice(values)
        try:
            r = kernbench.report.export.from_json(d)
        except ValueError:
            continue
        accepted += 1
        _json_views(r, tmp_path)
    assert accepted > 30  # (edits that keep a valid launch: the summary, the profile, ...)


@pytest.mark.parametrize("edit", ["busy as text", "start of a half", "sram_over as text", "events as text",
                                  "tolerance as text", "tolerance true", "drift as text",
                                  # (a fuzzer: each loaded as another launch without a word)
                                  "line past int32", "pinned 257", "a column as a number",
                                  "a column of one", "tolerance inf", "order of floats",
                                  "drift negative", "unit names reordered",
                                  # (the device arrays the critical path keeps a store's order by)
                                  "an array named for a mul", "a load of no array", "arrays of numbers",
                                  "arrays cut short", "arrays as a number"])
def test_from_json_refuses_values_of_another_kind_rather_than_casting_them(edit):
    # (a review: "7" was read as 7, 0.5 as 0, "no" as true, "nan" as a tolerance)
    ctx = kernbench.Context("default", overrides={"pes_per_cube": 2, "n_cubes": 1})
    x = ctx.replicate(np.arange(8, dtype=np.float32))
    doc = ctx.launch(lambda p, *, tl: tl.store(p, tl.load(p, shape=(8,)) * 2.0), (1, 1), x, drift=True).to_json()
    assert kernbench.report.export.from_json(doc).cycles == doc["cycles"]
    c, d = doc["counters"], doc["drift_record"]
    if edit == "busy as text":
        c["units"]["busy"][0] = [str(v) for v in c["units"]["busy"][0]]
    elif edit == "start of a half":
        doc["commands"]["start"][0] = 0.5
    elif edit == "sram_over as text":
        c["sram_over"] = ["no"] * len(c["sram_over"])
    elif edit == "events as text":
        doc["commands"]["events_recorded"] = "no"
    elif edit == "tolerance as text":
        d["tolerance"] = "nan"
    elif edit == "tolerance true":
        d["tolerance"] = True
    elif edit == "line past int32":  # (was read as 7: astype wraps)
        doc["program"]["commands"]["line"][0] = 2 ** 32 + 7
    elif edit == "pinned 257":  # (was read as 1, pinned)
        doc["program"]["tensor_pinned"][0] = 257
    elif edit == "a column as a number":  # (was broadcast over every command)
        doc["program"]["commands"]["line"] = 1
    elif edit == "a column of one":
        doc["program"]["commands"]["line"] = doc["program"]["commands"]["line"][:1]
    elif edit == "tolerance inf":  # (a launch refuses it; written back, the token Infinity)
        d["tolerance"] = "inf"
    elif edit == "order of floats":  # (was truncated to ints)
        d["order"] = [v + 0.5 for v in d["order"]]
    elif edit == "drift negative":
        d["drift"][0] = -1.0
    elif edit == "unit names reordered":  # (the rows would be read in this kernbench's order)
        c["unit_names"] = c["unit_names"][::-1]
    elif edit == "an array named for a mul":
        name = doc["arrays"][0]
        assert doc["arrays"] == [name, None, name] and isinstance(name, str)  # (load, mul, store)
        doc["arrays"][1] = name
    elif edit == "a load of no array":
        doc["arrays"][0] = None
    elif edit == "arrays of numbers":
        doc["arrays"] = [0, None, 0]
    elif edit == "arrays cut short":
        doc["arrays"] = doc["arrays"][:2]
    elif edit == "arrays as a number":  # (said as such, not as "'int' object has no attribute")
        doc["arrays"] = 5
    else:
        d["drift"][0] = "1e5"
    with pytest.raises(ValueError, match="not a complete kernbench launch JSON"):
        kernbench.report.export.from_json(doc)


def _gemm_busy_plus_500(d):
    from kernbench.common.pe_commands import UNIT_NAMES

    d["counters"]["units"]["busy"][0][UNIT_NAMES.index("GEMM")] += 500


def _swap_two_commands_times(d):
    s, e = d["commands"]["start"], d["commands"]["end"]
    s[0], s[2], e[0], e[2] = s[2], s[0], e[2], e[0]


def _sram_flag_on_the_wrong_pe(d):
    d["counters"]["peak_sram"][0] = 2 * d["hw"]["sram"]["capacity_bytes"]
    d["counters"]["sram_over"][1] = True


INCONSISTENT = {  # (a fuzzer: each loaded, and the table and the profile disagreed or the file's launch changed)
    "a counter raised": (_gemm_busy_plus_500, "counters.units.busy must be its commands' summed"),
    "two commands' times swapped": (_swap_two_commands_times, "completion_order"),
    "cycles past the last end": (lambda d: d.__setitem__("cycles", d["cycles"] + 5000),
                                 "must be the last command's end"),
    "SRAM flag on the wrong PE": (_sram_flag_on_the_wrong_pe, "sram_over must flag exactly"),
    "a grid without a working PE": (lambda d: d.__setitem__("grid", [1, 1]), "must hold every PE that ran"),
    "a message from a load": (lambda d: d["messages"]["send"].__setitem__(0, 0), "must pair a SEND with a RECV"),
    "no messages": (lambda d: d.__setitem__("messages", {k: [] for k in d["messages"]}),
                    "one entry per SEND and per RECV"),
    "another clock": (lambda d: d["hw"].__setitem__("clock_ghz", 3.0), "must be the cycles at the clock"),
    "a partial hw": (lambda d: d["hw"]["link"].pop("bytes_per_cycle"), "missing ['link.bytes_per_cycle']"),
    "another DMA latency": (lambda d: d["hw"]["dma"].__setitem__("latency_cycles", 300),
                            "must be its commands' summed"),
    "an operand pointed elsewhere": (lambda d: d["program"]["commands"]["src0"].__setitem__(3, 0),
                                     "must start when its unit is free and its operands are ready"),
    "extra as text": (lambda d: d.__setitem__("extra", ""), "args and extra must be objects"),
    "a pinned flag of 2": (lambda d: d["program"]["tensor_pinned"].__setitem__(0, 2), "0 or 1 per tensor"),
    # (a review of reports.md: a link's bytes raised by 3 loaded as a launch that moved them)
    "a link's bytes raised": (lambda d: d["counters"]["links"]["bytes"].__setitem__(
        int(np.argmax(d["counters"]["links"]["bytes"])), max(d["counters"]["links"]["bytes"]) + 3),
        "counters.links.bytes must be its messages' summed"),
    "a link's packets raised": (lambda d: d["counters"]["links"]["packets"].__setitem__(
        int(np.argmax(d["counters"]["links"]["packets"])), max(d["counters"]["links"]["packets"]) + 1),
        "counters.links.packets must be its messages' summed"),
}


@pytest.mark.parametrize("edit", INCONSISTENT)
def test_from_json_refuses_a_document_whose_parts_disagree(edit):
    import copy

    from report_helpers import line_pipeline

    doc = json.loads(json.dumps(line_pipeline(n_pes=2).to_json()))
    assert kernbench.report.export.from_json(copy.deepcopy(doc)).cycles == doc["cycles"]
    change, says = INCONSISTENT[edit]
    change(doc)
    with pytest.raises(ValueError, match="not a complete kernbench launch JSON") as ei:
        kernbench.report.export.from_json(doc)
    assert says in str(ei.value), str(ei.value)


def test_from_json_of_a_dict_checks_its_format():
    from report_helpers import line_pipeline

    doc = json.loads(json.dumps(line_pipeline(n_pes=2).to_json()))
    doc["format"] = "kernbench.launch/2"  # (a file's was checked, a dict's was not: a review)
    with pytest.raises(ValueError, match=r"not a kernbench launch JSON \(expected format 'kernbench.launch/1', "
                                         r"got 'kernbench.launch/2'\)"):
        kernbench.report.export.from_json(doc)


def test_integers_f32_cannot_hold_are_refused_by_default(ctx):
    with pytest.raises(PlacementError, match=r"pass dtype='int32' to keep them integers"):
        ctx.replicate(np.array([2 ** 24 + 1, -7], np.int32))
    a = ctx.replicate(np.array([2 ** 24 + 1, -7], np.int32), dtype="int32")
    np.testing.assert_array_equal(ctx.read(a, (0, 0)), [2 ** 24 + 1, -7])
    assert ctx.replicate(np.arange(8)).dtype == "f32"  # small integers still default to f32


def test_a_freed_array_is_a_placement_error_at_launch(ctx):
    a = ctx.empty((4,), "f32")
    ctx.free(a)
    with pytest.raises(PlacementError, match="was freed"):
        ctx.launch(lambda p, *, tl: None, (1, 1), a)


def test_pe_coordinates_offsets_and_gather_indices_must_be_ints_in_range():
    """A PE given as floats, strings or bools, a gather of a PE or cube that does not exist, and
    a float byte offset are refused; before, gather(pe=-1) read a PE that does not exist (NaN),
    pe=3 of 2 read another cube's PE, and x + 4.9 read from byte 4 (a review's cases)."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 2})
    x = ctx.shard(np.arange(8, dtype=np.float32).reshape(4, 2), over="cube", axis=0)
    assert ctx.gather(x).tolist() == np.arange(8).reshape(4, 2).tolist()
    for kw in ({"over": "cube", "pe": -1}, {"over": "cube", "pe": 2}, {"over": "pe", "cube": -1},
               {"over": "pe", "cube": 2}, {"over": "cube", "pe": 0.5}, {"over": "all", "parts": 1.5},
               {"over": "all", "parts": 0}):
        with pytest.raises(PlacementError, match="gather: (pe|cube|parts) must be"):
            ctx.gather(x, **kw)
    for pe in ((0.7, 0), ("1", 0), (True, 0), True, 1.0, (float("nan"), 0)):
        with pytest.raises(PlacementError, match="PE must be"):
            ctx.read(x, pe)
        with pytest.raises(PlacementError, match="PE must be"):
            ctx.put(np.ones(2, np.float32), pe=pe)
    assert ctx.read(x, (np.int64(1), 0)).shape == (2, 2)
    for off in (4.9, "8", float("nan"), True):
        with pytest.raises(TypeError, match="a byte offset is an int"):
            x + off
    assert x + np.int64(8) == x.addr + 8 and 8 + x == x.addr + 8
    # a numpy array on the left was numpy's object add, which took what the right refuses
    for left in (np.array(4), np.array([1, 2]), np.array(4.5)):
        with pytest.raises(TypeError, match="a byte offset is an int"):
            left + x
        with pytest.raises(TypeError, match="a byte offset is an int"):
            x + left
    assert np.int64(8) + x == x.addr + 8
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.add(x, 8)


@pytest.mark.parametrize("option", ["strict_sram", "record_events", "steady"])
def test_launch_flags_must_be_bools(ctx, option):
    """strict_sram='no' turned strict SRAM on (any object's truthiness counted)."""
    x = ctx.empty((4,), "f32")

    def k(p, *, tl):
        tl.load(p, shape=(4,))

    for bad in ("no", 0.0, 1, None):
        with pytest.raises(ValueError, match=f"{option} must be True or False"):
            ctx.launch(k, (1, 1), x, mode="timing", **{option: bad})
    assert ctx.launch(k, (1, 1), x, mode="timing", **{option: False}).cycles > 0


def test_wrong_objects_for_free_empty_like_label_and_kernel_kwargs_are_clear_errors(ctx):
    """Raw AttributeError and IndexError before (a review's cases): free and empty_like of
    something not a device array, a label past the launch's commands, a kernel_kwargs key not a
    str."""
    with pytest.raises(PlacementError, match="expected a device array of this context, got int"):
        ctx.free(3)
    with pytest.raises(PlacementError, match=r"empty_like: expected a device array, got ndarray"):
        ctx.empty_like(np.ones(4))
    x = ctx.empty((4,), "f32")

    def k(p, *, tl, **kw):
        tl.load(p, shape=(4,))

    r = ctx.launch(k, (1, 1), x, mode="timing")
    assert r.label(0).startswith("load")
    for i in (1, -1, 10 ** 9, 0.0, True):
        with pytest.raises(IndexError, match="is not one of this launch's 1 commands"):
            r.label(i)
    with pytest.raises(TypeError, match="a kernel parameter is named by a str, got 1"):
        ctx.launch(k, (1, 1), x, mode="timing", kernel_kwargs={1: 1})
    for bad in ([1], [("a", 1)], "ab"):  # (dict() of these: a raw TypeError, or keys from pairs)
        with pytest.raises(TypeError, match="kernel_kwargs must be a dict"):
            ctx.launch(k, (1, 1), x, mode="timing", kernel_kwargs=bad)


# -- a review's cases (2026-12-05): arrays inside containers, memory past the host, failed launches
def _copy(ptrs, o, *, tl):
    tl.store(o, tl.load(ptrs[0], shape=(8,)))


def test_a_device_array_inside_a_container_is_checked_like_an_argument(ctx):
    # (it reaches the kernel as itself: another Context's address once read whatever this one
    # held there, silently)
    other = kernbench.Context("default", overrides=HW)
    ctx.replicate(np.full(8, 111.0, np.float32), name="mine")  # (at the address 'theirs' has there)
    theirs = other.replicate(np.full(8, 7.0, np.float32), name="theirs")
    out = ctx.empty((8,), "f32", name="out")
    for arg, path in [((theirs,), "[0]"), ([[theirs]], "[0][0]"), ({"k": theirs}, "['k']")]:
        with pytest.raises(ValueError, match=r"launch argument 'ptrs' \(positional #0\)"
                                             + __import__("re").escape(path)
                                             + r" \(device array 'theirs' .*belongs to another Context"):
            ctx.launch(lambda ptrs, o, *, tl: None, (1, 1), arg, out)
    freed = ctx.empty((8,), "f32", name="old")
    ctx.free(freed)
    with pytest.raises(PlacementError, match=r"launch argument 'ptrs' \(positional #0\)\[0\] "
                                             r"\(device array 'old' at 0x[0-9a-f]+\) was freed"):
        ctx.launch(_copy, (1, 1), (freed,), out)
    with pytest.raises(PlacementError, match=r"launch argument 'ptrs' \(positional #0\) \(0x[0-9a-f]+, an "
                                             r"address into device array 'old'\) was freed"):
        ctx.launch(lambda ptrs, o, *, tl: None, (1, 1), freed + 4, out)


def test_a_device_array_the_launch_does_not_see_is_checked_at_its_load(ctx):
    # (inside an object: the load names the PE, the line and the array)
    import types

    other = kernbench.Context("default", overrides=HW)
    theirs = other.replicate(np.full(8, 7.0, np.float32), name="theirs")
    out = ctx.empty((8,), "f32")

    def k(box, o, *, tl):
        tl.store(o, tl.load(box.ptr, shape=(8,)))  # the load

    with pytest.raises(kernbench.KernelError, match=r"PE \(0, 0\) at test_api_hostile.py:\d+: load: "
                                                    r"device array 'theirs' .*belongs to another Context"):
        ctx.launch(k, (1, 1), types.SimpleNamespace(ptr=theirs), out)
    ctx.free(freed := ctx.empty((8,), "f32", name="gone"))
    with pytest.raises(kernbench.KernelError, match=r"load: device array 'gone' \(at 0x[0-9a-f]+\) was freed"):
        ctx.launch(k, (1, 1), types.SimpleNamespace(ptr=freed), out)


def test_a_pointer_into_a_freed_array_names_it(ctx):
    ctx.replicate(np.ones(8, np.float32), name="x")
    old = ctx.empty((8,), "f32", name="old")
    ptr = int(old + 8)  # (a plain int: a DevicePointer into a freed array is refused at launch)
    ctx.free(old)
    with pytest.raises(kernbench.KernelError, match=r"8 bytes into 'old' \(32 bytes at 0x[0-9a-f]+\), "
                                                    r"which was freed"):
        ctx.launch(lambda p, *, tl: tl.load(p, shape=(2,)), (1, 1), ptr)


def test_a_copy_past_an_eighth_of_host_memory_is_refused_where_it_would_be_made(ctx, monkeypatch):
    # (a raw numpy MemoryError once, from building the whole copy for a store of 8 elements)
    from kernbench.runtime import memory

    monkeypatch.setattr(memory, "value_budget", lambda: 1 << 20)
    big = ctx.empty((1 << 19,), "f32", name="big")  # 2 MiB a PE: past the (patched) 1 MiB
    x = ctx.replicate(np.ones(8, np.float32), name="x")

    def k(p, q, *, tl):
        tl.store(q, tl.load(p, shape=(8,)))  # the store

    with pytest.raises(kernbench.KernelError, match=r"PE \(0, 0\) at test_api_hostile.py:\d+: 'big' takes "
                                                    r"2.0 MiB per PE: .* at most an eighth of this host's "
                                                    r"memory \(1.0 MiB\); launch with mode='timing'") as e:
        ctx.launch(k, (1, 1), x, big)
    assert e.value.pe == (0, 0) and e.value.where.endswith(f"test_api_hostile.py:{k.__code__.co_firstlineno + 1}")
    with pytest.raises(PlacementError, match="'big' takes 2.0 MiB per PE"):
        ctx.read(big, (0, 0))
    assert ctx.read_all(ctx.empty((4,), "f32")).shape == (1, 2, 4)  # (no whole copy made to fill)
    # every copy at once: a read_all or a gather past the budget in all (a review: a raw
    # MemoryError, and an OOM kill of a 47 GiB gather)
    half = ctx.empty((100_000,), "f32", name="half")  # 400 KB a PE, 800 KB on both
    assert ctx.read(half, (1, 0)).shape == (100_000,)
    monkeypatch.setattr(memory, "value_budget", lambda: 600_000)
    for read in (lambda: ctx.read_all(half), lambda: ctx.gather(half, over="pe", axis=0)):
        with pytest.raises(PlacementError, match=r"of 'half' would return 2 copies of 390.6 KiB "
                                                 r"\(781.2 KiB\): more than an eighth of this host's "
                                                 r"memory \(585.9 KiB\); read the PEs one at a time"):
            read()
    assert ctx.launch(k, (1, 1), x, big, mode="timing").cycles > 0


def test_a_placement_past_an_eighth_of_host_memory_is_refused_before_its_copy(ctx, monkeypatch):
    # (a review: ctx.replicate of a 256 GiB broadcast view of one float, a few bytes to the
    # caller, leaked numpy's "Unable to allocate 256. GiB" from the placement's conversion.) A
    # PE's copy is what the budget bounds: a shard's piece, the whole for the others; and the
    # whole is converted once, so it must fit the memory the process may take.
    from kernbench.runtime import memory

    huge = np.broadcast_to(np.float32(1), (1 << 36,))
    n = ctx.hw.pes_per_cube
    for place, what in ((ctx.replicate, "a placement keeps one copy of it"),
                        (lambda x: ctx.put(x, (0, 0)), "a placement keeps one copy of it"),
                        (lambda x: ctx.shard(x, over="pe"), f"a shard in {n} parts keeps")):
        with pytest.raises(PlacementError, match=r"\(68719476736,\) f32 data takes 256.0 GiB: " + what):
            place(huge)
    # the budget, not the host: 2 MiB of f16 from int64 data passes at 4 MiB, not at 1 MiB
    x = np.zeros(1 << 20, np.int64)
    monkeypatch.setattr(memory, "value_budget", lambda: 4 << 20)
    assert ctx.replicate(x, dtype="f16").nbytes == 2 << 20
    monkeypatch.setattr(memory, "value_budget", lambda: 1 << 20)
    with pytest.raises(PlacementError, match=r"f16 data takes 2.0 MiB: .*an eighth of this host's memory "
                                             r"\(1.0 MiB\).*; for the cycles alone allocate it with ctx.empty"):
        ctx.replicate(x, dtype="f16")
    # a shard's pieces are PEs' copies: 2 MiB over n PEs passes the 1 MiB budget (a review: the
    # whole was compared, and a 2.9 GiB shard of 377 MiB pieces refused)
    assert ctx.shard(x.reshape(n, -1), over="pe", dtype="f16").nbytes == (2 << 20) // n
    monkeypatch.setattr(memory, "host_memory", lambda: 1 << 20)
    with pytest.raises(PlacementError, match=r"the whole at most the memory this process may take \(1.0 MiB\)"):
        ctx.shard(x.reshape(n, -1), over="pe", dtype="f16")


@pytest.mark.parametrize("where", ["_written_args", "release"])
def test_a_ctrl_c_after_replay_leaves_device_memory_as_it_was(ctx, where):
    """(A review's case.) Ctrl-C just after functional replay, while the launch reads back what
    it wrote (executor._written_args) or drops its tables (TracedLaunch.release): the launch
    raised KeyboardInterrupt and its stores stayed. They are put back as for a failure in
    replay itself. (A profile hook plays the Ctrl-C landing there.)"""
    o = ctx.replicate(np.zeros(8, np.float32), name="o")

    def inc(o_ptr, *, tl):
        tl.store(o_ptr, tl.load(o_ptr, shape=(8,), dtype="f32") + 1.0)

    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_name == where:
            sys.setprofile(None)
            raise KeyboardInterrupt

    sys.setprofile(hook)
    try:
        with pytest.raises(KeyboardInterrupt):
            ctx.launch(inc, (1, 1), o)
    finally:
        sys.setprofile(None)
    np.testing.assert_array_equal(ctx.read(o, (0, 0)), np.zeros(8))
    ctx.launch(inc, (1, 1), o)  # and the next launch stores as ever
    np.testing.assert_array_equal(ctx.read(o, (0, 0)), np.ones(8))


def test_a_launch_that_raises_in_replay_leaves_device_memory_as_it_was(ctx):
    # (the stores replayed before the error stayed: half a launch's output, read back silently)
    x = ctx.replicate(np.arange(8, dtype=np.int32), dtype="int32", name="x")
    z = ctx.replicate(np.array([1, 1, 1, 1, 1, 1, 1, 0], np.int32), dtype="int32", name="z")
    placed = ctx.replicate(np.full(8, -7, np.int32), dtype="int32", name="placed")  # shared, read-only
    written = ctx.empty((8,), "int32", name="written")
    fresh = ctx.empty((8,), "int32", name="fresh")
    part = ctx.empty((8,), "int32", name="part")

    def fill(o, w, *, tl):  # writes all of `w` and the first half of `o` on every PE
        tl.store(w, tl.full((8,), 5, "int32"))
        tl.store(o, tl.full((4,), 3, "int32"))

    ctx.launch(fill, (2, 1), part, written)

    def k(x_ptr, z_ptr, a, b, c, d, *, tl):
        v = tl.load(x_ptr, shape=(8,))
        for o in (a, b, c, d):
            tl.store(o, v + 100)
        tl.store(a, v // tl.load(z_ptr, shape=(8,)))  # divides by zero: found in replay

    arrays = (placed, written, fresh, part)
    before = [ctx.read_all(a) for a in arrays]
    state = [({g: d is None or d.flags.writeable for g, d in a._data.items()},
              {g: None if w is None else w.copy() for g, w in a._written.items()}, set(a._stored))
             for a in arrays]
    with pytest.raises(kernbench.KernelError, match="division or remainder by zero"):
        ctx.launch(k, (2, 1), x, z, *arrays)
    for a, b, (data, wr, stored) in zip(arrays, before, state):
        np.testing.assert_array_equal(ctx.read_all(a), b)
        assert {g: d.flags.writeable for g, d in a._data.items()} == data, a.name
        assert set(a._written) == set(wr) and set(a._stored) == stored, a.name
        for g, w in wr.items():
            assert (a._written[g] is None) if w is None else np.array_equal(a._written[g], w)
    # the memory is usable: the same launch without the division writes every array
    ctx.launch(fill, (2, 1), fresh, placed)
    np.testing.assert_array_equal(ctx.read(placed, (1, 0)), np.full(8, 5))


def test_a_path_is_a_hardware_file_whatever_its_name(tmp_path, monkeypatch):
    # (Path("default") loaded the preset 'default', not the file ./default)
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    Path("default").write_text("n_cubes = 1\npes_per_cube = 2\n")
    assert kernbench.Context(Path("default")).hw.n_cubes == 1
    assert kernbench.Context("default").hw.n_cubes != 1  # (a str without a slash: the preset)
    with pytest.raises(HardwareConfigError, match="hardware file 'mesh8' does not exist"):
        kernbench.Context(Path("mesh8"))


def test_hardware_config_errors_are_kernbench_errors():
    from kernbench.common.errors import KernbenchError

    with pytest.raises(KernbenchError) as e:
        kernbench.Context("default", overrides={"n_cubes": 0})
    assert isinstance(e.value, ValueError) and e.value.pe is None and e.value.where is None


def test_a_kernel_exception_whose_str_raises_is_still_named(ctx):
    class BadConfig(Exception):
        def __str__(self):
            return f"{self.args[0] / self.args[1]}"

    def k(*, tl):
        raise BadConfig(64, 0)

    with pytest.raises(kernbench.KernelError, match=r"kernel k raised BadConfig on PE \(0, 0\) .*"
                                                    r"<unprintable BadConfig: its __str__ raised "
                                                    r"ZeroDivisionError; args \(64, 0\)>") as e:
        ctx.launch(k, (1, 1))
    assert e.value.pe == (0, 0)


def test_a_failed_launch_keeps_the_timing_flag_and_undoes_only_what_it_overwrote(ctx, monkeypatch):
    # (a review: the flag was snapshotted per PE and the last PE's, already cleared, won; and
    # the undo log copied each PE's whole copy, 500x slower for 8 elements of 64 MB)
    from kernbench.runtime import replay

    big = ctx.empty((1 << 16,), "int32", name="big")
    ctx.launch(lambda o, *, tl: tl.store(o, tl.full((8,), 1, "int32")), (2, 1), big)  # private copies
    t = ctx.empty((8,), "int32", name="t")
    ctx.launch(lambda o, *, tl: tl.store(o, tl.full((8,), 1, "int32")), (1, 1), t, mode="timing")
    z = ctx.replicate(np.zeros(8, np.int32), dtype="int32")
    kept = []
    real = replay._Undo.keep
    monkeypatch.setattr(replay._Undo, "keep", lambda self, *a, **k: (real(self, *a, **k),
                                                                      kept.append(self.saved[-1][-1].size)))

    def k(b, t_ptr, z_ptr, *, tl):
        tl.store(b, tl.full((8,), 2, "int32"))
        tl.store(t_ptr, tl.full((8,), 2, "int32"))
        tl.store(b, tl.full((8,), 3, "int32") // tl.load(z_ptr, shape=(8,)))

    with pytest.raises(kernbench.KernelError, match="division or remainder by zero"):
        ctx.launch(k, (2, 1), big, t, z)
    assert kept and max(kept) == 8  # the 8 elements each store overwrote, not 65,536
    np.testing.assert_array_equal(ctx.read(big, (1, 0))[:8], np.ones(8))
    assert t.timed
    with pytest.warns(UserWarning, match="'t' was passed to a timing-mode launch"):
        ctx.read(t, (1, 0))


def test_drift_refuses_a_shadow_past_an_eighth_of_host_memory(ctx, monkeypatch):
    from kernbench.runtime import drift

    monkeypatch.setattr(drift, "value_budget", lambda: 1 << 20)
    o = ctx.empty((1 << 16,), "f32", name="o")  # 17 bytes an element: 1.1 MB
    with pytest.raises(PlacementError, match=r"drift: the f64 shadow of 'o' takes 17 bytes an element, "
                                             r"1.1 MiB for a PE's copy"):
        ctx.launch(lambda p, *, tl: tl.store(p, tl.zeros((8,), "f32")), (1, 1), o, drift=True)
    assert not o._data  # (undone)


def test_a_pointer_into_another_contexts_array_is_refused_wherever_it_goes(ctx):
    # (a review: the array's own check was passed by arithmetic, b.p + 0, inside an object)
    import pickle
    import types

    from kernbench.runtime.memory import DevicePointer

    other = kernbench.Context("default", overrides=HW)
    ctx.replicate(np.full(8, 111.0, np.float32), name="mine")  # (at the address 'theirs' has there)
    theirs = other.replicate(np.full(8, 7.0, np.float32), name="theirs")
    out = ctx.empty((8,), "f32", name="out")
    with pytest.raises(ValueError, match=r"launch argument 'p' \(positional #0\) \(0x10000000, an address "
                                         r"into device array 'theirs'\) belongs to another Context"):
        ctx.launch(lambda p, o, *, tl: None, (1, 1), theirs + 0, out)
    for arg, path, at in (([theirs.ptr], "[0]", "0x10000000"), ({"a": theirs + 4}, "['a']", "0x10000004"),
                          (((theirs - 4,),), "[0][0]", "0xffffffc")):
        with pytest.raises(ValueError, match=r"launch argument 'p' \(positional #0\)" + re.escape(path)
                                             + rf" \({at}, an address into device array 'theirs'\) "
                                             r"belongs to another Context"):
            ctx.launch(lambda p, o, *, tl: None, (1, 1), arg, out)

    def k(box, o, *, tl):
        v = tl.load(box.p + 4, shape=(7,))  # the load
        tl.store(o + 4, v)

    import copy

    for p in (theirs + 0, theirs.ptr, theirs + 8 - 8, theirs.ptr + np.int64(0), copy.copy(theirs.ptr),
              copy.deepcopy(theirs + 0), theirs.ptr - np.int32(0)):
        with pytest.raises(kernbench.KernelError, match=r"load: address 0x10000004, into device array "
                                                        r"'theirs' of another Context"):
            ctx.launch(k, (1, 1), types.SimpleNamespace(p=p), out)
    # an address into this Context's array: loads as before, and the kernel gets plain ints
    seen = []
    x = ctx.replicate(np.arange(8, dtype=np.float32), name="x")
    ctx.launch(lambda p, o, *, tl: (seen.append(type(p)), tl.store(o, tl.load(p, shape=(6,)))), (1, 1),
               x + 8, out)
    assert seen == [int] and ctx.read(out, (0, 0))[:6].tolist() == [2, 3, 4, 5, 6, 7]
    p = x + 8
    assert isinstance(p, DevicePointer) and p == x.addr + 8 and type(p - x.ptr) is int
    assert type(pickle.loads(pickle.dumps(p))) is int and pickle.loads(pickle.dumps(p)) == p


def _copy4(x_ptr, o_ptr, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(4,), dtype="f32"))


def test_an_array_where_an_option_s_name_is_expected_is_refused_by_the_option(ctx):
    """(A fuzz review.) `x in (...)` of a numpy array raised numpy's "truth value of an array is
    ambiguous" from inside kernbench (for detail=, after tracing)."""
    bad = np.array(["functional", "timing"])
    x, o = ctx.replicate(np.ones(4, np.float32)), ctx.empty((4,), "f32")
    for call, what in ((lambda: ctx.launch(_copy4, (1, 1), x, o, mode=bad), "mode must be one of"),
                       (lambda: ctx.trace(_copy4, (1, 1), x, o, mode=bad), "mode must be one of"),
                       (lambda: ctx.launch(_copy4, (1, 1), x, o, mode="timing", detail=bad),
                        "detail must be one of"),
                       (lambda: kernbench.Context("default", unwritten=np.array(["nan", "zero"])),
                        "unwritten must be one of")):
        with pytest.raises(ValueError, match=what):
            call()
    with pytest.raises(PlacementError, match="over must be 'pe', 'cube' or 'all', got array"):
        ctx.shard(np.ones((2, 4)), over=np.array(["pe", "cube"]))
    with pytest.raises(PlacementError, match=r"over must be 'pe', 'cube' or 'all' \(or None: as placed\)"):
        ctx.gather(x, over=np.array(["pe", "cube"]))

    def stepped(x_ptr, *, tl):
        for _ in tl.range(0, 4, np.array([1, 2])):
            pass

    with pytest.raises(kernbench.KernelError, match=r"tl.range\(start, stop, step\): step is ndarray "):
        ctx.launch(stepped, (1, 1), x)


def test_a_drift_tolerance_past_the_float_range_is_refused(ctx):
    x, o = ctx.replicate(np.ones(4, np.float32)), ctx.empty((4,), "f32")
    # (2**200 raised numpy's TypeError from isfinite: a review)
    for bad in (10 ** 400, -(2 ** 2000), -(2 ** 200)):
        with pytest.raises(ValueError, match=r"drift must be True, False or a positive tolerance"):
            ctx.launch(_copy4, (1, 1), x, o, drift=bad)
    for ok in (2 ** 63, 2 ** 200):
        assert ctx.launch(_copy4, (1, 1), x, o, drift=ok).drift.tolerance == float(ok)


def test_report_file_must_be_a_path_or_a_file(ctx):
    x, o = ctx.replicate(np.ones(4, np.float32)), ctx.empty((4,), "f32")
    r = ctx.launch(_copy4, (1, 1), x, o)
    for call, who in ((r.report, "print_report"), (r.profile, "print_profile")):
        with pytest.raises(ValueError, match=rf"^{who}: file must be a path or an open text file \(with "
                                             r"\.write\), got int 5"):
            call(file=5)


def test_gather_s_pe_is_an_int(ctx):
    x = ctx.replicate(np.ones(4, np.float32))
    with pytest.raises(PlacementError, match=r"^gather: pe must be an int \(the PE in its cube with pe=, the "
                                             r"cube with cube=\), got tuple \(1, 0\)$"):
        ctx.gather(x, pe=(1, 0))
    with pytest.raises(PlacementError, match=r"gather: cube must be an int .*, got str '0'"):
        ctx.gather(x, cube="0")
    assert ctx.gather(x, pe=1).tolist() == [1.0] * 4


def test_report_arguments_of_the_wrong_kind_are_said(tmp_path):
    """A review: report(console=5) was an AttributeError, plot(dpi=nan or "100") matplotlib's
    own errors, profile(path="no") a profile with the critical path (a truthy string)."""
    from report_helpers import line_pipeline

    r = line_pipeline(n_pes=2)
    with pytest.raises(ValueError, match=r"print_report: console must be a rich Console, got int 5"):
        r.report(console=5)
    # (1 to 3 failed in matplotlib's fonts, 10**6 was an image too large, 10**5000 numpy's error: a
    # breaker)
    for dpi in (0, -3, float("nan"), float("inf"), "100", True, None, 1, 3, 1.5, 10**6, 10**5000):
        with pytest.raises(ValueError, match=r"plot: dpi must be a number of dots per inch from 10 to 1200"):
            r.plot(tmp_path / "p.png", dpi=dpi)
    assert not (tmp_path / "p.png").exists()
    r.plot(tmp_path / "p.png", dpi=np.float32(50.5))
    assert (tmp_path / "p.png").stat().st_size > 0
    for bad in ("no", 0, None):
        with pytest.raises(ValueError, match=r"path must be True or False"):
            r.profile(path=bad, file=str(tmp_path / "prof.txt"))
    assert "critical path (" not in r.profile(path=False, file=str(tmp_path / "prof.txt"))  # (no path summary)


HUGE = 10**5000  # (an int Python will not print: past 4,300 digits)


@pytest.mark.parametrize("call", [
    lambda ctx, a, k: ctx.empty((HUGE,), "f32"),
    lambda ctx, a, k: ctx.empty((4,), HUGE),
    lambda ctx, a, k: ctx.empty_like(a, dtype=HUGE),
    lambda ctx, a, k: ctx.launch(k, (HUGE, 1), a),
    lambda ctx, a, k: ctx.launch(k, HUGE, a),
    lambda ctx, a, k: ctx.launch(k, (1, 1), a, max_cycles=HUGE),
    lambda ctx, a, k: ctx.launch(k, (1, 1), a, drift=HUGE),
    lambda ctx, a, k: ctx.launch(k, (1, 1), a, mode=HUGE),
    lambda ctx, a, k: ctx.launch(k, (1, 1), a, replay=HUGE),
    lambda ctx, a, k: ctx.launch(k, (1, 1), a, record_events=HUGE),
    lambda ctx, a, k: ctx.install_sfr(scope=HUGE),
    lambda ctx, a, k: ctx.read(a, (HUGE, 0)),
    lambda ctx, a, k: ctx.read(a, HUGE),
    lambda ctx, a, k: ctx.put(np.ones(2, np.float32), pe=(0, HUGE)),
    lambda ctx, a, k: ctx.shard(np.ones((8, 2), np.float32), over="cube", axis=HUGE),
    lambda ctx, a, k: ctx.shard(np.ones((8, 2), np.float32), over="cube", parts=HUGE),
    lambda ctx, a, k: ctx.gather(a, over="cube", pe=HUGE),
    lambda ctx, a, k: ctx.hw.pe_coords(HUGE),
    lambda ctx, a, k: ctx.hw.seconds(HUGE),
    lambda ctx, a, k: ctx.launch(k, (1, 1), a, mode="timing").utilization(HUGE),
])
def test_an_int_python_will_not_print_is_named_by_its_size(call):
    """A review: ``ctx.empty((10**5000,), "f32")`` raised Python's own ValueError ("Exceeds the
    limit (4300 digits) for integer string conversion") from the message of the check that
    refused it; every host call's message now names such an int by its size."""
    ctx = kernbench.Context("default")
    a = ctx.replicate(np.zeros(4, np.float32))

    def k(x, *, tl):
        tl.store(x, tl.load(x, shape=(4,), dtype="f32") + 1)

    with pytest.raises((ValueError, TypeError)) as e:
        call(ctx, a, k)
    assert "<an int of about 5,001 digits>" in str(e.value), str(e.value)


def test_a_breaker_s_public_api_cases(tmp_path):
    """A fuzzer of every public signature: load_json(True) opened file descriptor 1 and closed
    stdout (0 waited on stdin); a traced launch's label(-1) was the last command and label(5)
    numpy's IndexError; with_overrides(True) an AttributeError; the report functions given None
    AttributeErrors deep inside; sweep(client=True) an AttributeError with two points."""
    import os

    import kernbench.report as R
    from report_helpers import line_pipeline

    for bad in (True, 0, 1, 2, 1.5, b"x.json", None):
        with pytest.raises(ValueError, match=r"load_json: path must be a file path \(str or pathlib.Path\), got "):
            R.load_json(bad)
        with pytest.raises(ValueError, match=r"load_json: path must be a file path"):
            R.from_json(bad)
    os.fstat(1), os.fstat(2)  # (still open)
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})

    def k(x_ptr, o_ptr, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(64,), dtype="f16"))

    x = ctx.replicate(np.ones(64, np.float16))
    t = ctx.trace(k, (1, 1), x, ctx.empty_like(x))
    assert t.label(1) == "store (64,) f16 to a1"
    for i in (-1, 2, 2**63, 1.5, None):
        for f in (t.label, t.source, t.describe, t.array_of):
            with pytest.raises(IndexError, match=r"command .* is not one of this launch's 2 commands \(0\.\.1\)"):
                f(i)
    for bad in (True, [("n_cubes", 2)], "n_cubes=2", 5):
        with pytest.raises(kernbench.hw.config.HardwareConfigError, match="overrides must be a dict of hardware keys"):
            ctx.hw.with_overrides(bad)
    for f in (R.summarize, R.print_report, R.to_json, R.profile, R.print_profile, R.critical_path,
              R.drift_summary, R.print_drift, R.launch_html, R.plot):
        with pytest.raises(TypeError, match=r": expected a LaunchResult \(ctx.launch's result, or "
                                            r"kernbench.report.from_json's\), got NoneType None"):
            f(None)
    for f in (R.write_json, R.to_perfetto):
        with pytest.raises(TypeError, match="expected a LaunchResult"):
            f(None, tmp_path / "x.json")
    R.summarize(line_pipeline(n_pes=2))  # (a launch's result still is one)


def test_a_sweep_s_client_must_be_a_client():
    from kernbench.sweeps import Launch, sweep

    def vadd(x_ptr, o_ptr, n, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f16"))

    def builder(ctx, n=64):
        return Launch(vadd, (1, 1), ctx.empty((n,), "f16"), ctx.empty((n,), "f16"), n)

    for n in ([64], [64, 128]):  # (one point ignored it, two raised AttributeError)
        with pytest.raises(TypeError, match=r"kernbench.sweep: client must be a dask.distributed Client "
                                            r"\(or None\), got bool True"):
            sweep(builder, args={"n": n}, hw={"n_cubes": 1, "pes_per_cube": 2}, workers=1, cache=False,
                  client=True)


def test_the_fuzzer_s_smaller_cases():
    """profile(sort=array) and a sweep's plot(hue=array) were numpy's "truth value is ambiguous";
    plot(hue=0) was read as no hue; sweep(setup=True) failed every row, not up front."""
    from kernbench.sweeps import sweep
    from report_helpers import line_pipeline

    with pytest.raises(ValueError, match=r"sort must be one of"):
        line_pipeline(n_pes=2).profile(sort=np.array([1, 2]))

    def vadd(x_ptr, o_ptr, n, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f16"))

    def setup(ctx, n=64):
        return (ctx.empty((n,), "f16"), ctx.empty((n,), "f16"), n)

    with pytest.raises(TypeError, match=r"sweep: setup must be a function .*, got bool True"):
        sweep(vadd, grid=(1, 1), setup=True, args={"n": [64]}, hw={"n_cubes": 1, "pes_per_cube": 2},
              workers=1, cache=False)
    res = sweep(vadd, grid=(1, 1), setup=setup, args={"n": [64, 128]}, hw={"n_cubes": 1, "pes_per_cube": 2},
                workers=1, cache=False)
    for hue in (0, "", np.array([1, 2])):
        with pytest.raises(ValueError, match=r"no column .* in this sweep"):
            res.plot("n", hue=hue)


def test_the_fuzzer_s_last_cases(tmp_path, monkeypatch):
    """to_perfetto(pes=np.array(3)) failed iterating a 0-d array; sweep(scheduler="") waited on
    no address; a NUL in a report's file name was Python's "embedded null byte"; to_csv() with
    no path returned None, not pandas' text; a local cluster started more workers than points."""
    from kernbench.sweeps import Launch, sweep
    from kernbench.sweeps import run as sweep_run
    from report_helpers import line_pipeline

    r = line_pipeline(n_pes=2)
    with pytest.raises(ValueError, match="pes must be None or an iterable"):
        r.to_perfetto(tmp_path / "t.json", pes=np.array(1))
    assert r.to_perfetto(tmp_path / "t.json", pes=np.array([1]))["pes"] == 1
    for f in (r.report, r.profile):
        with pytest.raises(ValueError, match="holds a NUL character"):
            f(file=str(tmp_path / "a\0b.txt"))
    with pytest.raises(ValueError, match="holds a NUL character"):
        r.write_json(tmp_path / "a\0b.json")

    def vadd(x_ptr, o_ptr, n, *, tl):
        tl.store(o_ptr, tl.load(x_ptr, shape=(n,), dtype="f16"))

    def builder(ctx, n=64):
        return Launch(vadd, (1, 1), ctx.empty((n,), "f16"), ctx.empty((n,), "f16"), n)

    for bad in ("", " ", 5, True):
        with pytest.raises(TypeError, match="scheduler must be a Dask scheduler's address"):
            sweep(builder, args={"n": [64, 128]}, hw={"n_cubes": 1, "pes_per_cube": 2}, cache=False,
                  scheduler=bad)
    res = sweep(builder, args={"n": [64, 128]}, hw={"n_cubes": 1, "pes_per_cube": 2}, workers=1, cache=False)
    text = res.to_csv()
    assert text == res.df.to_csv(index=False) and text.splitlines()[0].startswith("n,")
    assert res.to_csv(tmp_path / "r.csv") is None and (tmp_path / "r.csv").read_text() == text

    started = []  # (the cluster's size, read where it is started; no processes here)

    class Stop(Exception):
        pass

    class Cluster:
        def __init__(self, n_workers, **kw):
            started.append(n_workers)
            raise Stop

    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "LocalCluster", Cluster)
    monkeypatch.setattr(sweep_run, "unguarded_script_line", lambda: None)
    monkeypatch.setattr(sweep_run, "unreadable_main_script", lambda: None)
    for workers in (2**63, 10**5000, 3):
        with pytest.raises(Stop):
            sweep_run._dask_client(workers, None, None, 2)
    assert started == [2, 2, 2]


def test_a_kernel_whose_default_is_an_array_launches():
    """A kernel with ``scale=np.ones(4)`` (or a DataFrame) as a default failed its launch with
    numpy's "truth value is ambiguous": the launch compared its signatures with ``==``."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.ones(4, np.float32))
    for default in (np.full(4, 2.0), np.full((1, 4), 2.0)):
        def k(x_ptr, o_ptr, *, tl, scale=default):
            tl.store(o_ptr, tl.load(x_ptr, shape=(4,)) * float(scale.flat[0]))

        o = ctx.empty_like(x)
        ctx.launch(k, (1, 1), x, o)
        assert ctx.read(o, (0, 0)).tolist() == [2.0] * 4
        assert ctx.trace(k, (1, 1), x, o).time(ctx.hw).cycles > 0


def test_a_hostile_value_breaker_s_cases(tmp_path):
    """A breaker of values whose dunders misbehave: a proxy whose ``__class__`` says int passed
    the int checks and failed in ``int()`` after them (a hardware key, max_cycles, a label) or in
    the result's JSON; a 10 MB repr was kept whole in the result; an object answering every
    attribute read as a torch tensor raised AttributeError; a sweep plotted by a dict column
    raised "unhashable type", and best() of an array column numpy's truth-value error."""
    from kernbench.common.errors import is_whole
    from kernbench.hw import HardwareConfigError
    from kernbench.runtime import PlacementError
    from kernbench.runtime.memory import ARG_REPR_MAX
    from kernbench.sweeps import sweep

    class Liar:
        @property
        def __class__(self):
            return int

        def __repr__(self):
            return "Liar()"

    assert isinstance(Liar(), int) and not is_whole(Liar())
    with pytest.raises(HardwareConfigError, match="must be int, got Liar"):
        kernbench.Context("default", overrides={"n_cubes": Liar()})
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.ones(4, np.float32))

    class Huge:
        def __repr__(self):
            return "x" * 10**7

    def k(x_ptr, a, b, *, tl):
        tl.store(x_ptr, tl.load(x_ptr, shape=(4,)) + 1)

    r = ctx.launch(k, (1, 1), x, Liar(), Huge(), mode="timing")
    assert r.args["a"] == "Liar()" and len(r.args["b"]) == ARG_REPR_MAX
    assert len(r.to_json()) < 20_000
    with pytest.raises(ValueError, match="max_cycles must be an int"):
        ctx.launch(k, (1, 1), x, 1, 2, mode="timing", max_cycles=Liar())
    with pytest.raises(IndexError, match="is not one of this launch's"):
        r.label(Liar())

    class Anything:  # (every attribute a number: detach() is 1())
        def __getattr__(self, name):
            return 1

    with pytest.raises(PlacementError, match="has detach, cpu and numpy, read as a torch tensor's"):
        ctx.replicate(Anything())

    def v(x_ptr, n, cfg, *, tl):
        tl.store(x_ptr, tl.load(x_ptr, shape=(n * cfg["rows"],), dtype="f16") + 1)

    def setup(ctx, n=64, cfg=None):
        return (ctx.empty((n * cfg["rows"],), "f16"), n, cfg)

    res = sweep(v, grid=(1, 1), setup=setup, args={"n": [64, 128], "cfg": [{"rows": 1}, {"rows": 2}]},
                hw={"n_cubes": 1, "pes_per_cube": 1}, workers=1, cache=False)
    data = res.plot(x="n", y="cycles", hue="cfg", path=tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0 and data is not None
    res.plot(x="cfg", y="cycles", path=tmp_path / "q.png")
    arrays = sweep(v, grid=(1, 1), setup=lambda ctx, n=64, cfg=None: (ctx.empty((n,), "f16"), n, {"rows": 1}),
                   args={"n": [64], "cfg": [np.arange(2), np.arange(3)]},
                   hw={"n_cubes": 1, "pes_per_cube": 1}, workers=1, cache=False)
    with pytest.raises(ValueError, match=r"best: .* do not order"):
        arrays.best("cfg")


def test_a_breaker_of_the_hostile_value_fixes():
    """A breaker of the fixes above: a str-mixin Enum argument was shown as 'Color.RED' where the
    kernel got "red"; a mode axis given as a numpy array put every point in a trace group of
    its own; two dicts whose reprs agree in their first 80 characters were one plot point."""
    import enum

    from kernbench.sweeps import sweep

    class Color(str, enum.Enum):
        RED = "red"

    class Five(int):
        def __int__(self):
            return 99

    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1})
    x = ctx.replicate(np.ones(4, np.float32))

    def k(x_ptr, a, b, *, tl):
        tl.store(x_ptr, tl.load(x_ptr, shape=(4,)) + 1)

    r = ctx.launch(k, (1, 1), x, Color.RED, Five(5), mode="timing")
    assert r.args["a"] == "red" and r.args["b"] == 5

    def v(x_ptr, n, *, tl):
        tl.store(x_ptr, tl.load(x_ptr, shape=(n,), dtype="f16") + 1)

    def setup(ctx, n=64):
        return (ctx.empty((n,), "f16"), n)

    res = sweep(v, grid=(1, 1), setup=setup, args={"n": [64]}, options={"mode": np.array(["timing"])},
                hardware={"vector.lanes": [16, 32, 64]}, hw={"n_cubes": 1, "pes_per_cube": 1}, workers=1,
                cache=False)
    assert res.stats["trace_groups"] == 1 and res.stats["traces"] == 1

    long = "baseline tiling for the attention prefill panel, the same text for the first 80 characters"
    cfgs = [{"description": long, "n": 64}, {"description": long, "n": 128}]

    def w(x_ptr, cfg, *, tl):
        tl.store(x_ptr, tl.load(x_ptr, shape=(cfg["n"],), dtype="f16") + 1)

    res = sweep(w, grid=(1, 1), setup=lambda ctx, cfg=None: (ctx.empty((128,), "f16"), cfg),
                args={"cfg": cfgs}, hw={"n_cubes": 1, "pes_per_cube": 1}, workers=1, cache=False)
    ax = res.plot(x="cfg")
    (line,) = ax.lines
    assert len(line.get_xdata()) == 2 and sorted(line.get_ydata()) == sorted(r["cycles"] for r in res.rows)
