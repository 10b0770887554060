"""Hardware presets and config: TOML presets load into frozen dataclasses; unknown keys, wrong types
and non-positive sizes are rejected naming the key; overrides copy, never mutate. (Upper bounds,
numpy scalars and unreadable files: tests/test_hw_bounds.py.)
"""
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import kernbench

from kernbench.hw.config import KEY_BOUNDS
from kernbench.hw import HardwareConfig, HardwareConfigError, list_presets, load_hw

DOC = Path(__file__).resolve().parents[1] / "docs" / "hardware-model.md"


# -- presets ------------------------------------------------------------------------------------

def test_presets_are_listed():
    assert {"default", "mesh8", "mesh64"} <= set(list_presets())


@pytest.mark.parametrize("name, n_cubes", [("default", 4), ("mesh8", 8), ("mesh64", 64)])
def test_presets_load(name, n_cubes):
    hw = load_hw(name)
    assert isinstance(hw, HardwareConfig)
    assert hw.name == name
    assert hw.n_cubes == n_cubes
    assert hw.pes_per_cube == 8
    assert hw.n_pes == n_cubes * 8
    # the multi-cube presets differ from the default only in the machine's size
    same_pe = dataclasses.replace(hw, name="default", n_cubes=4)
    assert same_pe == load_hw("default")


def test_default_preset_is_the_dataclass_default():
    assert load_hw() == load_hw("default") == HardwareConfig()


def _doc_defaults():
    """`key` -> default value text from the parameter tables of docs/hardware-model.md."""
    rows = re.findall(r"^\| `([a-z_.]+)`[^|]*\|[^|]*\| ([^|]+) \|", DOC.read_text(), re.M)
    return {k: v.strip() for k, v in rows}


def test_doc_tables_state_the_default_preset():
    hw = load_hw("default")
    table = _doc_defaults()
    assert len(table) == 17, table  # every parameter row of the doc with a plain default
    for key, text in table.items():
        node = hw
        for part in key.split("."):
            node = getattr(node, part)
        if text.endswith("MiB"):
            expected = int(text.split()[0]) * 1024 * 1024
        else:
            expected = type(node)(text)
        assert node == expected, key
    # the op cost row: "1; div, exp, log, sqrt 4; rsqrt 2"
    ops = hw.vector.op_cycles
    assert (ops.div, ops.exp, ops.log, ops.sqrt, ops.rsqrt) == (4, 4, 4, 4, 2)
    assert all(getattr(ops, f) == 1 for f in ("add", "sub", "mul", "max", "min", "compare", "select",
                                                "copy", "cast", "fill"))


def test_derived_figures():
    hw = load_hw()
    assert hw.seconds(1.5e9) == pytest.approx(1.0)  # 1.5 GHz
    assert hw.peak_flops_per_cycle_pe == 2 * 32 * 32
    # 2048 flop/cycle x 32 PEs x 1.5e9 / 1e12 = 98.304 TFLOP/s
    assert hw.peak_tflops() == pytest.approx(98.304)
    assert hw.memory_gbps() == pytest.approx(256 * 4 * 1.5)
    assert hw.link_gbps() == pytest.approx(32 * 1.5)


# -- rejection, from TOML text --------------------------------------------------------------------

def _toml(tmp_path, text):
    p = tmp_path / "hw.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, message",
    [
        ("n_cubez = 2\n", r"unknown hardware key 'n_cubez'"),
        ("[gemm]\nrowz = 16\n", r"unknown hardware key 'gemm.rowz'"),
        ("[vector.op_cycles]\ngelu = 3\n", r"unknown hardware key 'vector.op_cycles.gelu'"),
        ("[sfr]\nports = 4\n", r"unknown hardware key 'sfr'"),
        ('[gemm]\nrows = "32"\n', r"hardware key 'gemm.rows' must be int, got str '32'"),
        ("[gemm]\nrows = 32.0\n", r"hardware key 'gemm.rows' must be int, got float 32.0"),
        ("[link]\nrx_queue_packets = true\n", r"hardware key 'link.rx_queue_packets' must be int, got bool True"),
        ("gemm = 3\n", r"hardware key 'gemm' must be a table"),
        ("clock_ghz = \"fast\"\n", r"hardware key 'clock_ghz' must be float, got str 'fast'"),
        ("[gemm]\nrows = 0\n", r"hardware key 'gemm.rows' must be positive, got 0"),
        ("[dma]\nburst_bytes = -512\n", r"hardware key 'dma.burst_bytes' must be positive, got -512"),
        ("[vector.op_cycles]\nexp = 0\n", r"hardware key 'vector.op_cycles.exp' must be positive, got 0"),
        ("clock_ghz = 0.0\n", r"hardware key 'clock_ghz' must be positive, got 0.0"),
        ("clock_ghz = inf\n", r"hardware key 'clock_ghz' must be a finite number, got inf"),
        ("clock_ghz = nan\n", r"hardware key 'clock_ghz' must be a finite number, got nan"),
        ("[sram\ncapacity_bytes = 1\n", r"not valid TOML"),
    ],
)
def test_bad_toml_is_rejected_naming_the_key(tmp_path, text, message):
    path = _toml(tmp_path, text)
    with pytest.raises(HardwareConfigError, match=re.escape(str(path)) + ": " + message):
        load_hw(path)
    # also by its path as a string
    with pytest.raises(HardwareConfigError, match=message):
        load_hw(str(path))


@pytest.mark.parametrize("name", ["a\nb", "a\tb", "", "x" * 201, "a\x85b", "a\u2028b", "a\u202eb", "a\u2066b",
                                  "a\ud800b"])  # (a lone surrogate: report() could not print it)
def test_a_hardware_name_is_one_line_of_text(name):
    """Tables and plot titles show the name on one line: no control characters, line separators
    or bidirectional overrides, at most 200 characters. Markup characters are text like any other
    ("[/]" and "$\\foo$" once broke report() and plot(); they are shown as they are now:
    tests/test_shown_text.py)."""
    with pytest.raises(HardwareConfigError, match="hardware key 'name' must be 1 to 200 characters on one line"):
        load_hw("default", {"name": name})
    for ok in ("mesh8 (tuned) v2", "mesh8 [HBM3e]", "a100-like $2/h", "v2\\x", "x" * 200):
        assert load_hw("default", {"name": ok}).name == ok


@pytest.mark.parametrize("args, match", [
    (("x" * 300,), "unknown hardware preset"),  # (an OSError: name too long, before)
    (("x" * 300 + ".toml",), "File name too long"),
    (("/dev/null",), "is not a file"),
    (("/tmp/",), "is not a file"),
    (({1: 1},), "hardware keys are names"),
    (({"gemm": {2: 3}},), "got int 2 in 'gemm'"),
    (("default", "gemm.rows"), "overrides must be a dict"),
    (("default", 0), "overrides must be a dict"),
    ((3,), "hw must be a preset's name"),
])
def test_odd_hardware_arguments_are_config_errors(args, match):
    with pytest.raises(HardwareConfigError, match=match):
        load_hw(*args)


def test_toml_nested_beyond_the_readers_recursion_is_a_config_error(tmp_path):
    p = tmp_path / "deep.toml"
    p.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(HardwareConfigError, match="nested too deeply"):
        load_hw(p)


def test_partial_toml_keeps_the_other_defaults(tmp_path):
    hw = load_hw(_toml(tmp_path, 'name = "tiny"\nn_cubes = 1\nclock_ghz = 2\n[link]\nbytes_per_cycle = 64\n'))
    assert (hw.name, hw.n_cubes, hw.link.bytes_per_cycle) == ("tiny", 1, 64)
    assert hw.clock_ghz == 2.0 and isinstance(hw.clock_ghz, float)  # an int is fine for a float key
    assert hw.link.packet_bytes == 256 and hw.gemm == load_hw().gemm


def test_missing_file_and_unknown_preset():
    with pytest.raises(HardwareConfigError, match=r"hardware file '/no/such/hw.toml' does not exist"):
        load_hw("/no/such/hw.toml")
    with pytest.raises(HardwareConfigError, match=r"unknown hardware preset 'mesh9' \(presets: default, mesh64, mesh8"):
        load_hw("mesh9")


# -- rejection, from dicts and overrides ----------------------------------------------------------

@pytest.mark.parametrize(
    "data, message",
    [
        ({"gemm": {"rows": 32, "colz": 2}}, r"config: unknown hardware key 'gemm.colz'"),
        ({"link": {"hop_latency_cycles": "50"}}, r"config: hardware key 'link.hop_latency_cycles' must be int"),
        ({"sram": {"capacity_bytes": 0}}, r"config: hardware key 'sram.capacity_bytes' must be positive, got 0"),
        ({"pes_per_cube": -8}, r"config: hardware key 'pes_per_cube' must be positive, got -8"),
        ({"name": 3}, r"config: hardware key 'name' must be str, got int 3"),
        ({"vector": 64}, r"config: hardware key 'vector' must be a table"),
    ],
)
def test_bad_dicts_are_rejected_naming_the_key(data, message):
    with pytest.raises(HardwareConfigError, match=message):
        load_hw(data)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"gemm.rowz": 16}, r"unknown hardware key 'gemm.rowz'"),
        ({"gemmm.rows": 16}, r"unknown hardware key 'gemmm.rows'"),
        ({"link.bytes_per_cycle": 0}, r"overrides: hardware key 'link.bytes_per_cycle' must be positive, got 0"),
        ({"n_cubes": 2.0}, r"overrides: hardware key 'n_cubes' must be int, got float 2.0"),
        ({"dma.latency_cycles": None}, r"overrides: hardware key 'dma.latency_cycles' must be int, got NoneType"),
        ({"gemm": 3}, r"overrides: hardware key 'gemm' must be a table"),
    ],
)
def test_bad_overrides_are_rejected_naming_the_key(overrides, message):
    hw = load_hw()
    with pytest.raises(HardwareConfigError, match=message):
        hw.with_overrides(overrides)


@pytest.mark.parametrize("key, says", [
    # a near miss of its section's keys: named (a review's link.packet_size)
    ("link.packet_size", "did you mean 'link.packet_bytes'?"),
    ("gemm.rowz", "did you mean 'gemm.rows'?"),
    ("dma.latency", "did you mean 'dma.latency_cycles'?"),
    ("gemmm.rows", "did you mean 'gemm.rows'"),
    ("pes_per_cub", "did you mean 'pes_per_cube'?"),
    ("vector.op_cycle.exp", "did you mean 'vector.op_cycles.exp'"),
    # no near miss: the section's keys, or the top level's
    ("sram.size", "(known: sram.bytes_per_cycle, sram.capacity_bytes; docs/hardware-model.md)"),
    ("vector.op_cycles.gelu", "(known: vector.op_cycles.add, vector.op_cycles.bitwise,"),
    ("vector.size", "(known: vector.lanes, vector.pipeline_latency, vector.op_cycles.*;"),
    ("sfr", "(known: name, n_cubes, pes_per_cube, clock_ghz, dma.*, gemm.*, link.*, sram.*, vector.*;"),
    # a table's near miss, and the one text key's (a second review)
    ("vector.op_cycle", "did you mean 'vector.op_cycles'?"),
    ("nmae", "did you mean 'name'?"),
])
def test_an_unknown_key_names_what_is_known(key, says):
    with pytest.raises(HardwareConfigError) as ei:
        load_hw().with_overrides({key: 1})
    assert f"unknown hardware key '{key}'" in str(ei.value) and says in str(ei.value)
    with pytest.raises(HardwareConfigError) as ei:  # (a file's tables: the first unknown name)
        load_hw(_nest(key, 1))
    assert "did you mean" in str(ei.value) or "(known: " in str(ei.value)
    if key in ("gemmm.rows", "link.packet_size"):
        assert ("did you mean 'gemm'?" if key == "gemmm.rows" else "did you mean 'link.packet_bytes'?") in str(ei.value)


def _nest(key, value):
    d = value
    for part in reversed(key.split(".")):
        d = {part: d}
    return d


def test_hardware_config_error_is_a_value_error():
    assert issubclass(HardwareConfigError, ValueError)


# -- overrides and immutability -------------------------------------------------------------------

def test_overrides_copy_and_leave_the_original_unchanged():
    hw = load_hw()
    before = hw.to_dict()
    new = hw.with_overrides({"link.bytes_per_cycle": 64, "gemm.rows": 16}, n_cubes=2,
                            vector__op_cycles__exp=7)
    assert (new.link.bytes_per_cycle, new.gemm.rows, new.n_cubes, new.vector.op_cycles.exp) == (64, 16, 2, 7)
    # everything else is carried over
    assert new.link.packet_bytes == hw.link.packet_bytes and new.gemm.cols == hw.gemm.cols
    assert new.dma == hw.dma and new.sram == hw.sram
    # the original is untouched
    assert hw.to_dict() == before and hw == load_hw()
    assert new != hw


def test_every_field_can_be_overridden():
    hw = load_hw()
    flat = {}

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, prefix + k + ".")
            else:
                flat[prefix + k] = v

    walk(hw.to_dict())
    assert len(flat) >= 30
    for key, value in flat.items():
        if isinstance(value, str):
            new_value = value + "-x"
        elif isinstance(value, float):
            new_value = value * 2
        else:  # a change within the key's bounds (accumulator_buffers: 1 or 2)
            lo, hi = KEY_BOUNDS[key]
            new_value = value + 3 if value + 3 <= hi else lo if value != lo else hi
        new = hw.with_overrides({key: new_value})
        node = new
        for part in key.split("."):
            node = getattr(node, part)
        assert node == new_value, key


def test_a_variant_is_labelled_by_what_its_overrides_change(tmp_path):
    # (a new user's review: Context({"n_cubes": 2}) reported its hardware as "default", and every
    # variant of a preset went into reports and traces under the preset's name)
    v = load_hw("mesh8", {"n_cubes": 2, "link": {"bytes_per_cycle": 64}})
    assert v.label == "mesh8 (n_cubes=2, link.bytes_per_cycle=64)"  # (field order)
    assert v.name == "mesh8"  # the name is kept: a config is its values (below)
    assert load_hw({"n_cubes": 2}).label == "default (n_cubes=2)"  # a dict changes the default's keys
    toml = tmp_path / "small.toml"
    toml.write_text("n_cubes = 2\n[gemm]\nrows = 16\n")
    assert load_hw(toml).label == "default (n_cubes=2, gemm.rows=16)"  # so does a TOML file
    assert load_hw("mesh8", {"n_cubes": 8}).label == "mesh8"  # nothing changed
    assert load_hw("mesh8", {"n_cubes": 2, "name": "small"}).label == "small"  # not a preset's name
    fast = load_hw().with_overrides(clock_ghz=2.0)
    assert fast.label == "default (clock_ghz=2.0)" and fast.with_overrides(clock_ghz=2).label == fast.label
    # never in exponent form, as reports print figures (a review found "clock_ghz=1e-09" in one)
    assert load_hw().with_overrides(clock_ghz=1e-9).label == "default (clock_ghz=0.000000001)"
    # steps of overrides: what differs from the preset, once
    assert load_hw("mesh8").with_overrides(n_cubes=4).with_overrides(gemm__rows=16).label == \
        "mesh8 (n_cubes=4, gemm.rows=16)"
    assert load_hw("mesh8", {"n_cubes": 2}).with_overrides(n_cubes=8).label == "mesh8"
    # equal values are equal configs, however they were made (a sweep's cache key and trace groups)
    a = load_hw("default", {"n_cubes": 2, "gemm.rows": 16})
    b = load_hw({"n_cubes": 2}).with_overrides(gemm__rows=16)
    assert a == b and hash(a) == hash(b) and a.label == b.label
    # a long list: the count
    many = {f"vector.op_cycles.{op}": 9 for op in ("add", "sub", "mul", "max", "min", "compare", "select",
                                                   "copy", "cast", "fill", "div", "exp", "log", "sqrt")}
    assert load_hw("default", many).label.endswith(" keys changed)")
    # (repr and errors name it by name and size: a sweep's setup logging repr(ctx) reads no key)
    assert repr(kernbench.Context("mesh8", overrides={"n_cubes": 2})).startswith(
        "Context(hw='mesh8', 2 cubes x 8 PEs")


def test_load_hw_applies_overrides_and_accepts_a_config():
    hw = load_hw("mesh8", overrides={"link.rx_queue_packets": 4})
    assert hw.n_cubes == 8 and hw.link.rx_queue_packets == 4
    assert load_hw(hw) is hw


def test_configs_are_frozen():
    hw = load_hw()
    with pytest.raises(dataclasses.FrozenInstanceError):
        hw.n_cubes = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        hw.link.bytes_per_cycle = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        hw.vector.op_cycles.exp = 1
    assert hw.n_cubes == 4 and hw.link.bytes_per_cycle == 32
    # frozen and equal by value: usable as a dict key
    assert {hw: 1}[load_hw()] == 1


def test_round_trip_through_a_dict():
    hw = load_hw("mesh64").with_overrides(gemm__rows=8)
    assert load_hw(hw.to_dict()) == hw


def test_direct_construction_checks_types():
    """Building the dataclass by hand is checked like a TOML file: wrong types name the key."""
    from kernbench.hw import GemmConfig, HardwareConfig, HardwareConfigError

    with pytest.raises(HardwareConfigError, match=r"hardware key 'n_cubes' must be int, got str '4'"):
        HardwareConfig(n_cubes="4")
    with pytest.raises(HardwareConfigError, match=r"hardware key 'gemm' must be a GemmConfig"):
        HardwareConfig(gemm=3)
    with pytest.raises(HardwareConfigError, match=r"hardware key 'gemm.rows' must be int, got float"):
        HardwareConfig(gemm=GemmConfig(rows=32.0))
    assert HardwareConfig(clock_ghz=2).clock_ghz == 2  # an int stands for a float


def test_nested_override_names_the_whole_key(hw):
    from kernbench.hw import HardwareConfigError

    with pytest.raises(HardwareConfigError, match=r"unknown hardware key 'gemm.rows.x'"):
        hw.with_overrides({"gemm.rows.x": 3})


def test_an_override_given_as_a_table_sets_its_keys_and_keeps_the_others():
    # (a review's case: {"gemm": {"rows": 8}} replaced the whole section, its other keys reset
    # to the defaults instead of the base config's)
    base = {"gemm": {"rows": 16, "cols": 16, "accumulator_buffers": 2},
            "vector": {"op_cycles": {"exp": 9}}}
    hw = load_hw(base, {"gemm": {"rows": 8}, "vector.op_cycles": {"add": 2}})
    assert (hw.gemm.rows, hw.gemm.cols, hw.gemm.accumulator_buffers) == (8, 16, 2)
    assert (hw.vector.op_cycles.exp, hw.vector.op_cycles.add) == (9, 2)
    with pytest.raises(HardwareConfigError, match="unknown hardware key 'gemm.rowz'"):
        load_hw(base, {"gemm": {"rowz": 8}})


def test_an_int_past_pythons_text_limit_is_refused_naming_its_key(tmp_path):
    """A value of more than 4300 digits: its repr raises (Python's int-to-text limit), and the
    refusal met ValueError instead of HardwareConfigError; a TOML file holding one met tomllib's
    ValueError, naming neither file nor key (a review)."""
    for key in ("n_cubes", "clock_ghz"):
        with pytest.raises(HardwareConfigError, match=rf"hardware key '{key}' must be at most .* got an "
                                                      r"int of 16,610 bits"):
            load_hw().with_overrides({key: 10 ** 5000})
    big = tmp_path / "big.toml"
    big.write_text("[gemm]\nrows = 1" + "0" * 5000 + "\n")
    with pytest.raises(HardwareConfigError, match=rf"{re.escape(str(big))}: a number TOML cannot read here"):
        load_hw(str(big))


def test_a_toml_file_with_a_byte_order_mark_loads(tmp_path):
    """Windows editors write a UTF-8 byte-order mark; it was read as an invalid first statement."""
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbfn_cubes = 2\n")
    assert load_hw(str(f)).n_cubes == 2


def test_a_huge_negative_float_key_is_refused_as_not_positive():
    """clock_ghz=-10**400 was refused as "must be at most 1000" (a breaker)."""
    for v, shown in ((-10 ** 400, "-1000000"), (-10 ** 5000, "a negative int of 16,610 bits")):
        with pytest.raises(HardwareConfigError, match=rf"'clock_ghz' must be positive, got {shown}"):
            load_hw().with_overrides({"clock_ghz": v})


def test_global_pe_is_the_inverse_of_pe_coords_and_names_what_is_outside():
    """One conversion of a PE a caller names (memory placement, trace filters, --pes) to its
    global index: three copies before, each with its own message."""
    hw = load_hw("default", {"n_cubes": 3, "pes_per_cube": 4})
    for g in range(hw.n_pes):
        assert hw.global_pe(hw.pe_coords(g)) == hw.global_pe(g) == g
    assert hw.global_pe([1, 2]) == 9 and hw.global_pe(np.int64(5)) == 5
    for bad, says in (((4, 0), r"PE \(4, 0\) does not exist: .* has PEs 0-3 per cube"),
                      ((0, 3), r"cube 3 does not exist: .* has cubes 0-2"),
                      (12, r"PE 12 does not exist: .* has global PE indices 0-11 \(3 cubes x 4 PEs\)"),
                      (-1, "PE -1 does not exist"), (1.5, "a PE must be a .* got 1.5"), ((1,), "got \\(1,\\)"),
                      ((0.5, 0), "pair of ints"), ("1", "got '1'"), (True, "got True")):
        with pytest.raises(ValueError, match=says):
            hw.global_pe(bad)


@pytest.mark.parametrize("overrides", [
    {"gemm.rows": 64, "gemm": {"rows": 16}}, {"gemm": {"rows": 16}, "gemm.rows": 64},
    {"link": {"bytes_per_cycle": 8}, "link.bytes_per_cycle": 64}])
def test_a_key_given_twice_in_one_overrides_dict_is_refused(overrides):
    """Dotted and nested: whichever came later won, the other dropped without a word (a review;
    TOML refuses it too)."""
    key = next(k for k in overrides if "." in k)
    with pytest.raises(HardwareConfigError, match=f"overrides: hardware key '{key}' is given twice"):
        load_hw("default", overrides)
    with pytest.raises(HardwareConfigError, match="hardware key 'gemm.rows' is given twice"):
        load_hw().with_overrides({"gemm.rows": 64}, gemm__rows=16)
    with pytest.raises(HardwareConfigError, match=r"'gemm.rows' is given twice \(as a value and as a table"):
        load_hw("default", {"gemm": {"rows": 8}, "gemm.rows.x": 3})
    # keys of one section given apart are one each
    hw = load_hw("default", {"gemm.rows": 64, "gemm": {"cols": 16}})
    assert (hw.gemm.rows, hw.gemm.cols) == (64, 16)


def test_a_dict_as_the_hardware_takes_dotted_keys_too():
    """{"vector.lanes": 16} as hw= was refused as an unknown key, though the overrides and
    `kernbench hw show` spell keys so (a review)."""
    import kernbench

    hw = load_hw({"vector.lanes": 16, "gemm": {"rows": 64}})
    assert (hw.vector.lanes, hw.gemm.rows) == (16, 64)
    assert hw == load_hw({"vector": {"lanes": 16}, "gemm.rows": 64})
    assert kernbench.Context({"vector.lanes": 16}).hw.vector.lanes == 16
    with pytest.raises(HardwareConfigError, match="config: hardware key 'vector.lanes' is given twice"):
        load_hw({"vector": {"lanes": 16}, "vector.lanes": 8})
    with pytest.raises(HardwareConfigError, match="config: unknown hardware key 'vector.nope'"):
        load_hw({"vector.nope": 16})


@pytest.mark.parametrize("overrides, says", [
    ({"link.packet_bytes": {}}, "hardware key 'link.packet_bytes' must be int, got dict {}"),
    ({"n_cubes": {}}, "hardware key 'n_cubes' must be int, got dict {}"),
    ({"bogus": {}}, "unknown hardware key 'bogus'"),
    ({"link.packet_bytes": {"typo": {}}}, "unknown hardware key 'link.packet_bytes.typo'"),
    ({"link": {"bogus": {}}}, "unknown hardware key 'link.bogus'")])
def test_an_empty_table_as_an_override_is_checked_as_a_value(overrides, says):
    """An empty dict had no leaves, so its key was never looked up: a sweep labelled rows with a
    value never applied (a review). An empty table for a section changes nothing."""
    with pytest.raises(HardwareConfigError, match=re.escape(says)):
        load_hw("mesh8", overrides)
    assert load_hw("mesh8", {"link": {}}) == load_hw("mesh8")
    assert load_hw("mesh8", {"link": {}}).label == "mesh8"
