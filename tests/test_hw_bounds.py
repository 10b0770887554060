"""Every hardware key is bounded so that the engine's int64 arithmetic cannot wrap
(docs/hardware-model.md, "Key bounds"): each key at its bound is accepted, one past it is refused
with a HardwareConfigError naming the key. Also: numpy scalars count as numbers, a TOML file that
is not UTF-8 is refused naming its path, and at the bounds the engine's cycle counts are exact.
"""
import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import kernbench
from engine_helpers import Machine, fill
from kernbench._core import _timing, api
from kernbench.common.errors import MaxCyclesError
from kernbench.common.pe_commands import VecOp
from kernbench.hw import (KEY_BOUNDS, GemmConfig, HardwareConfig, HardwareConfigError, check_bounds,
                          load_hw)
from kernbench.hw import config as hw_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "hardware-model.md"
TESTS = Path(__file__).resolve().parent
H62 = 2**62

INT_KEYS = [k for k in KEY_BOUNDS if k != "clock_ghz"]


def _get(hw, key):
    node = hw
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _nested(key, value):
    """{"a.b.c": v} as {"a": {"b": {"c": v}}}."""
    *parents, leaf = key.split(".")
    d = {leaf: value}
    for p in reversed(parents):
        d = {p: d}
    return d


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + k + ".")
        else:
            yield prefix + k, v


# -- the table -------------------------------------------------------------------------------

def test_every_numeric_key_has_a_bound():
    numeric = {k for k, v in _leaves(load_hw().to_dict()) if not isinstance(v, str)}
    assert set(KEY_BOUNDS) == numeric
    assert len(KEY_BOUNDS) == 34  # 33 + gemm.accumulator_buffers


def test_engine_limits_are_the_ones_the_bounds_assume():
    # config.py mirrors them (api.py imports config.py, not the other way round)
    assert hw_config.ENGINE_MAX_SIZE == api.MAX_SIZE == 2**40
    assert hw_config.ENGINE_MAX_VOLUME == api.MAX_VOLUME == 2**50
    assert hw_config.ENGINE_HORIZON == api._HORIZON == H62


def test_bounds_table():
    """The chosen bounds (docs/hardware-model.md, "Key bounds")."""
    b = {k: hi for k, (lo, hi) in KEY_BOUNDS.items()}
    assert (b["n_cubes"], b["pes_per_cube"], hw_config.MAX_PES) == (2**16, 2**12, 2**20)
    assert KEY_BOUNDS["clock_ghz"] == (1e-9, 1e3)
    assert b["gemm.rows"] == b["gemm.cols"] == b["vector.lanes"] == 2**16
    assert KEY_BOUNDS["gemm.accumulator_buffers"] == (1, 2)
    assert hw_config.GEMM_SRAM_RATIO == 256
    assert all(b[f"vector.op_cycles.{op.name.lower()}"] == 2**11 for op in VecOp)
    for key in ("vector.pipeline_latency", "dma.latency_cycles", "link.hop_latency_cycles",
                "link.rx_queue_packets"):
        assert b[key] == 2**20, key
    for key in ("dma.burst_bytes", "dma.channel_bytes_per_cycle", "link.packet_bytes",
                "link.bytes_per_cycle", "sram.bytes_per_cycle"):
        assert b[key] == 2**30, key
    assert b["sram.capacity_bytes"] == 2**62
    assert all(lo == 1 for k, (lo, hi) in KEY_BOUNDS.items() if k != "clock_ghz")


def test_worst_cases_of_the_derivation_stay_in_range():
    worst = hw_config._worst_cases()
    assert all(w < limit for w, limit in worst.values()), worst
    # the tightest ones: a dot's SRAM term and a row reduction, each about 2**61 cycles
    assert 2**61 < worst["dot, SRAM term"][0] < H62
    assert 2**61 < worst["row reduction"][0] < H62


def test_raising_a_bound_past_the_derivation_fails_the_import_check(monkeypatch):
    # (KEY_BOUNDS is read-only: an edit made after the import check would go unchecked)
    with pytest.raises(TypeError):
        KEY_BOUNDS["vector.op_cycles.exp"] = (1, 2**20)
    monkeypatch.setattr(hw_config, "KEY_BOUNDS", {**KEY_BOUNDS, "vector.op_cycles.exp": (1, 2**20)})
    with pytest.raises(ImportError, match=r"KEY_BOUNDS let the engine's row reduction reach \d+ "
                                          r"\(limit 4611686018427387904\)"):
        hw_config._check_bounds_at_import()
    monkeypatch.setattr(hw_config, "KEY_BOUNDS", {k: v for k, v in KEY_BOUNDS.items() if k != "link.rx_queue_packets"})
    with pytest.raises(ImportError, match=r"missing \['link.rx_queue_packets'\]"):
        hw_config._check_bounds_at_import()


def _doc_max_column():
    """`key` -> max cell of the parameter tables (`vector.op_cycles.<op>` -> every op key)."""
    out = {}
    for table in re.findall(r"^\| key \| unit \| default \| max \|.*?\n((?:\|.*\n)+)", DOC.read_text(), re.M):
        for row in table.splitlines()[1:]:
            cells = [c.strip() for c in row.strip("|").split("|")]
            key = re.match(r"`([^`]+)`", cells[0]).group(1)
            text = cells[3]
            value = 2 ** int(text[3:]) if text.startswith("2**") else float(text)
            if key.endswith("<op>"):
                out.update({f"vector.op_cycles.{op.name.lower()}": value for op in VecOp})
            else:
                out[key] = value
    return out


def test_docs_state_the_bounds():
    assert _doc_max_column() == {k: hi for k, (lo, hi) in KEY_BOUNDS.items()}
    text = DOC.read_text()
    assert "`n_cubes * pes_per_cube <= 2**20`" in text
    assert "`max(gemm.rows, gemm.cols) <= 256 * sram.bytes_per_cycle`" in text
    assert "`[1e-9, 1e3]`" in text


# -- each key at its bound, and just past it --------------------------------------------------

@pytest.mark.parametrize("key", list(KEY_BOUNDS))
def test_each_key_at_its_bounds_is_accepted(key):
    lo, hi = KEY_BOUNDS[key]
    for value in (lo, hi):
        hw = load_hw().with_overrides({key: value})
        assert _get(hw, key) == value and type(_get(hw, key)) is type(hi)
        assert check_bounds(hw) is None
        assert load_hw(_nested(key, value)) == hw  # from a dict too


@pytest.mark.parametrize("key", INT_KEYS)
def test_each_int_key_past_its_bound_is_refused_naming_it(key):
    lo, hi = KEY_BOUNDS[key]
    shown = rf"{hi} \(2\*\*{hi.bit_length() - 1}\)" if hi > 1024 else str(hi)  # small bounds plainly
    msg = rf"overrides: hardware key '{re.escape(key)}' must be at most {shown}, got "
    for value in (hi + 1, 2 * hi, 2**63 - 1, 2**64):  # 2**64 was a raw OverflowError from the engine
        with pytest.raises(HardwareConfigError, match=msg + str(value) + "$"):
            load_hw().with_overrides({key: value})
    for value in (0, -1, -(2**64)):
        with pytest.raises(HardwareConfigError, match=rf"hardware key '{re.escape(key)}' must be positive, got {value}$"):
            load_hw().with_overrides({key: value})


@pytest.mark.parametrize("path", ["overrides", "dict", "toml", "dataclass"])
def test_every_way_of_building_a_config_checks_the_bounds(path, tmp_path):
    key, value = "link.rx_queue_packets", 2**20 + 1
    msg = r"hardware key 'link.rx_queue_packets' must be at most 1048576 \(2\*\*20\), got 1048577"
    with pytest.raises(HardwareConfigError, match=msg):
        if path == "overrides":
            load_hw().with_overrides({key: value})
        elif path == "dict":
            load_hw({"link": {"rx_queue_packets": value}})
        elif path == "toml":
            p = tmp_path / "hw.toml"
            p.write_text(f"[link]\nrx_queue_packets = {value}\n")
            load_hw(p)
        else:
            import dataclasses
            HardwareConfig(link=dataclasses.replace(load_hw().link, rx_queue_packets=value))


def test_clock_bounds():
    assert load_hw().with_overrides(clock_ghz=1e3).clock_ghz == 1e3
    assert load_hw().with_overrides(clock_ghz=1e-9).clock_ghz == 1e-9
    assert load_hw().with_overrides(clock_ghz=1000).clock_ghz == 1000.0
    cases = [
        (math.nextafter(1e3, math.inf), r"must be at most 1000, got 1000.0000000000001"),
        (1001, r"must be at most 1000, got 1001.0"),
        (10**400, r"must be at most 1000, got 1000000000"),  # an int beyond any float
        (math.nextafter(1e-9, 0), r"must be at least 1e-09, got 9.999999999999999e-10"),
        (5e-324, r"must be at least 1e-09, got 5e-324"),  # seconds() would be inf
        (0.0, r"must be positive, got 0.0"),
        (-1.5, r"must be positive, got -1.5"),
        (math.inf, r"must be a finite number, got inf"),
        (-math.inf, r"must be a finite number, got -inf"),
        (math.nan, r"must be a finite number, got nan"),
        (np.float64("nan"), r"must be a finite number, got nan"),
        (np.inf, r"must be a finite number, got inf"),
    ]
    for value, msg in cases:
        with pytest.raises(HardwareConfigError, match=r"overrides: hardware key 'clock_ghz' " + msg):
            load_hw().with_overrides(clock_ghz=value)
    # at 1 Hz the longest run the engine allows is still a finite number of seconds
    assert math.isfinite(load_hw().with_overrides(clock_ghz=1e-9).seconds(2**63 - 1))


def test_machine_size_bound_is_on_the_product():
    assert load_hw().with_overrides(n_cubes=2**16, pes_per_cube=16).n_pes == 2**20
    assert load_hw().with_overrides(n_cubes=16, pes_per_cube=2**12).n_pes == 2**16
    with pytest.raises(HardwareConfigError,
                       match=r"overrides: hardware keys 'n_cubes' x 'pes_per_cube' must make at most "
                             r"1048576 \(2\*\*20\) PEs, got 65536 x 17 = 1114112"):
        load_hw().with_overrides(n_cubes=2**16, pes_per_cube=17)
    with pytest.raises(HardwareConfigError, match=r"'n_cubes' x 'pes_per_cube'.* got 65536 x 4096 = 268435456"):
        load_hw().with_overrides(n_cubes=2**16, pes_per_cube=2**12)


def test_gemm_array_is_bounded_by_the_sram_bandwidth():
    # max(R, C) <= 256 * sram.bytes_per_cycle: at the bound, accepted
    hw = load_hw().with_overrides({"sram.bytes_per_cycle": 1, "gemm.rows": 256, "gemm.cols": 1})
    assert (hw.gemm.rows, hw.sram.bytes_per_cycle) == (256, 1)
    assert load_hw().with_overrides({"gemm.rows": 2**16, "gemm.cols": 2**16}).gemm.rows == 2**16  # s = 256
    for over, key, got in (({"sram.bytes_per_cycle": 1, "gemm.rows": 257}, "gemm.rows", 257),
                           ({"sram.bytes_per_cycle": 1, "gemm.cols": 2**16}, "gemm.cols", 2**16),
                           ({"sram.bytes_per_cycle": 255, "gemm.rows": 2**16}, "gemm.rows", 2**16)):
        s = over["sram.bytes_per_cycle"]
        with pytest.raises(HardwareConfigError,
                           match=rf"overrides: hardware key '{key}' must be at most 256 \* "
                                 rf"'sram.bytes_per_cycle' = 256 \* {s} = {256 * s}, got {got} .*"
                                 rf"raise sram.bytes_per_cycle to at least {-(-got // 256)}"):
            load_hw().with_overrides(over)


def test_a_toml_file_with_every_key_at_its_bound_loads(tmp_path):
    hi = {k: b[1] for k, b in KEY_BOUNDS.items()}
    hi["pes_per_cube"] = 16  # 2**16 cubes x 16 PEs = 2**20 PEs, the machine's bound
    lines, tables = [], {}
    for key, value in hi.items():
        table, _, leaf = key.rpartition(".")
        tables.setdefault(table, []).append(f"{leaf} = {value!r}")
    for table, rows in tables.items():
        lines += ([f"[{table}]"] if table else []) + rows
    p = tmp_path / "max.toml"
    p.write_text("\n".join(lines) + "\n")
    hw = load_hw(p)
    for key, value in hi.items():
        assert _get(hw, key) == value, key


# -- the issue's cases ----------------------------------------------------------------------

@pytest.mark.parametrize("over, key", [
    ({"link.rx_queue_packets": 2**60}, "link.rx_queue_packets"),  # credit ring size wrapped to 0: segfault
    ({"gemm.rows": 2**62, "gemm.cols": 2**62}, "gemm.rows"),  # a dot cost 0 cycles
    ({"vector.op_cycles.exp": 2**62}, "vector.op_cycles.exp"),  # an exp of 4096 elements cost 8
    ({"vector.pipeline_latency": 2**63 - 1}, "vector.pipeline_latency"),  # "deadlock at cycle -9223372036854775745"
    ({"link.hop_latency_cycles": 2**62 - 10}, "link.hop_latency_cycles"),  # a false deadlock
    ({"dma.latency_cycles": 2**64}, "dma.latency_cycles"),  # raw OverflowError naming no key
    ({"sram.capacity_bytes": 2**64}, "sram.capacity_bytes"),
    ({"n_cubes": 10**12}, "n_cubes"),  # raw MemoryError
])
def test_issue_cases_are_refused_before_the_engine(over, key):
    with pytest.raises(HardwareConfigError, match=rf"overrides: hardware key '{re.escape(key)}' must be at most"):
        kernbench.Context("default", overrides=over)
    with pytest.raises(HardwareConfigError, match=rf"hardware key '{re.escape(key)}' must be at most"):
        load_hw().with_overrides(over)


def test_rx_queue_of_2_60_cannot_crash_the_process(tmp_path):
    """In a subprocess, so that a segfault shows as a failure instead of killing pytest: the 2**60
    queue is refused however it is given, and the deepest queue accepted (2**20) runs a message in
    both detail levels."""
    script = textwrap.dedent(f"""
        import dataclasses, sys
        sys.path.insert(0, {str(TESTS)!r})
        import kernbench
        from engine_helpers import Machine, fill
        from kernbench.hw import HardwareConfig, HardwareConfigError, load_hw
        tries = [
            lambda: kernbench.Context("default", overrides={{"link.rx_queue_packets": 2**60}}),
            lambda: load_hw({{"link": {{"rx_queue_packets": 2**60}}}}),
            lambda: HardwareConfig(link=dataclasses.replace(load_hw().link, rx_queue_packets=2**60)),
        ]
        for t in tries:
            try:
                t()
                print("accepted")
            except HardwareConfigError as e:
                print("refused:", e)
        hw = load_hw().with_overrides(n_cubes=1, pes_per_cube=2, link__rx_queue_packets=2**20)
        for detail in ("train", "packet"):
            m = Machine(hw)
            x = fill(m[0, 0], 4096)
            m[0, 0].send("E", x, 4096)
            m[1, 0].recv("W", 4096)
            print(detail, m.run(detail=detail).res.cycles)
    """)
    # (from outside the checkout: `python -c` puts the cwd first on sys.path, and the source tree
    # has no built engine)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    lines = r.stdout.splitlines()
    assert lines[:3] == ["refused: overrides: hardware key 'link.rx_queue_packets' must be at most 1048576 "
                         "(2**20), got 1152921504606846976",
                         "refused: config: hardware key 'link.rx_queue_packets' must be at most 1048576 "
                         "(2**20), got 1152921504606846976",
                         "refused: hardware key 'link.rx_queue_packets' must be at most 1048576 "
                         "(2**20), got 1152921504606846976"]
    # fill 9 cycles, then 16 packets of 8 cycles + one hop: 9 + 128 + 50
    assert lines[3:] == ["train 187", "packet 187"]


def test_check_bounds_catches_a_config_changed_after_construction():
    hw = load_hw().with_overrides(n_cubes=1)
    object.__setattr__(hw.link, "rx_queue_packets", 2**60)  # frozen, but not against this
    with pytest.raises(HardwareConfigError, match=r"hardware key 'link.rx_queue_packets' must be at most 1048576"):
        check_bounds(hw)
    with pytest.raises(HardwareConfigError, match=r"hw must be a HardwareConfig, got dict"):
        check_bounds({})
    hw = load_hw()
    object.__setattr__(hw.gemm, "rows", np.int64(16))
    with pytest.raises(HardwareConfigError, match=rf"hardware key 'gemm.rows' holds int64 {re.escape(repr(np.int64(16)))}, "
                                                  r"set after the config was built"):
        check_bounds(hw)
    assert check_bounds(load_hw("mesh64")) is None


# -- numpy scalars ----------------------------------------------------------------------------

def test_numpy_scalars_are_numbers():
    over = {"gemm.rows": np.int64(64), "gemm.cols": np.int32(16), "n_cubes": np.uint8(2),
            "link.rx_queue_packets": np.uint64(8), "clock_ghz": np.float64(1.5),
            "sram.capacity_bytes": np.int64(2**62)}
    for hw in (load_hw().with_overrides(over), kernbench.Context("default", overrides=over).hw):
        assert (hw.gemm.rows, hw.gemm.cols, hw.n_cubes, hw.link.rx_queue_packets) == (64, 16, 2, 8)
        assert hw.clock_ghz == 1.5 and hw.sram.capacity_bytes == 2**62
        for key in over:
            assert type(_get(hw, key)) is (float if key == "clock_ghz" else int), key
        json.dumps(hw.to_dict())  # plain Python numbers: the launch JSON can hold them
        assert hw == load_hw().with_overrides({k: v.item() for k, v in over.items()})
    # a float key takes numpy floats of any width and numpy ints
    assert load_hw().with_overrides(clock_ghz=np.float32(2.0)).clock_ghz == 2.0
    assert type(load_hw().with_overrides(clock_ghz=np.int64(2)).clock_ghz) is float


def test_a_grid_built_with_numpy_runs():
    rows, bws = np.meshgrid(np.array([16, 32]), np.array([64.0, 128.0]))
    seen = set()
    for r, bw in zip(rows.ravel(), bws.ravel().astype(np.int64)):
        assert isinstance(r, np.integer)
        ctx = kernbench.Context("default", overrides={"n_cubes": np.int64(1), "gemm.rows": r,
                                                      "sram.bytes_per_cycle": bw})
        seen.add((ctx.hw.gemm.rows, ctx.hw.sram.bytes_per_cycle))
    assert seen == {(16, 64), (32, 64), (16, 128), (32, 128)}


def test_numpy_scalars_past_a_bound_or_of_the_wrong_kind_are_refused():
    cases = [
        ({"link.rx_queue_packets": np.int64(2**60)}, r"'link.rx_queue_packets' must be at most 1048576"),
        ({"gemm.rows": np.uint64(2**64 - 1)}, r"'gemm.rows' must be at most 65536 \(2\*\*16\), got 18446744073709551615"),
        ({"gemm.rows": np.int64(0)}, r"'gemm.rows' must be positive, got 0"),
        ({"gemm.rows": np.bool_(True)}, r"'gemm.rows' must be int, got bool"),
        ({"gemm.rows": True}, r"'gemm.rows' must be int, got bool True"),
        ({"gemm.rows": np.float64(64.0)}, rf"'gemm.rows' must be int, got float64 {re.escape(repr(np.float64(64.0)))}"),
        ({"gemm.rows": np.array(64)}, r"'gemm.rows' must be int, got ndarray"),
        ({"clock_ghz": np.bool_(True)}, r"'clock_ghz' must be float, got bool"),
        ({"clock_ghz": np.float64("nan")}, r"'clock_ghz' must be a finite number, got nan"),
        ({"clock_ghz": np.float32("inf")}, r"'clock_ghz' must be a finite number, got inf"),
        ({"name": np.int64(3)}, r"'name' must be str, got int64"),
    ]
    for over, msg in cases:
        with pytest.raises(HardwareConfigError, match=r"overrides: hardware key " + msg):
            load_hw().with_overrides(over)


def test_a_dataclass_built_with_numpy_scalars_holds_plain_numbers():
    g = GemmConfig(rows=np.int64(16), cols=np.int64(8))
    hw = HardwareConfig(n_cubes=np.int64(2), clock_ghz=np.float64(2.0), gemm=g)
    assert type(hw.n_cubes) is int and type(hw.clock_ghz) is float and type(hw.gemm.rows) is int
    assert hw.gemm == GemmConfig(16, 8)
    assert type(g.rows) is np.int64  # the caller's object is left as it was given
    with pytest.raises(HardwareConfigError, match=r"hardware key 'gemm.rows' must be int, got bool"):
        HardwareConfig(gemm=GemmConfig(rows=np.bool_(True)))


def test_override_keys_must_be_strings():
    with pytest.raises(HardwareConfigError, match=r"hardware override keys must be dotted strings like "
                                                  r"'gemm.rows', got 3"):
        load_hw().with_overrides({3: 4})


# -- TOML files that are not UTF-8 ----------------------------------------------------------------

@pytest.mark.parametrize("raw, where", [
    (b'name = "x\xff"\n', r"byte 0xff at offset 9 is invalid start byte"),
    ("# caf\u00e9, written as Latin-1\nn_cubes = 2\n".encode("latin-1"), r"byte 0xe9 at offset 5"),
    ("n_cubes = 2\n".encode("utf-16"), r"byte 0xff at offset 0"),
])
def test_a_toml_file_that_is_not_utf8_is_refused_naming_it(tmp_path, raw, where):
    p = tmp_path / "hw.toml"
    p.write_bytes(raw)
    msg = rf"hardware file '{re.escape(str(p))}' is not UTF-8 text \(a TOML file must be UTF-8\): {where}"
    with pytest.raises(HardwareConfigError, match=msg):
        load_hw(p)
    with pytest.raises(HardwareConfigError, match=msg):
        load_hw(str(p))
    with pytest.raises(HardwareConfigError, match=msg):
        kernbench.Context(hw=p)


def test_a_utf8_toml_file_is_read_as_utf8_whatever_the_locale(tmp_path):
    p = tmp_path / "hw.toml"
    p.write_bytes('name = "caf\u00e9 \u2192 \u00b5"\nn_cubes = 2\n'.encode("utf-8"))
    hw = load_hw(p)
    assert (hw.name, hw.n_cubes) == ("caf\u00e9 \u2192 \u00b5", 2)


def test_an_unreadable_toml_path_is_refused_naming_it(tmp_path):
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(HardwareConfigError, match=rf"hardware file '{re.escape(str(d))}' is not a file"):
        load_hw(d)


# -- the engine at the bounds ---------------------------------------------------------------------

#: Every timing key at its largest value.
MAX_TIMING = {
    "gemm.rows": 2**16, "gemm.cols": 2**16, "sram.bytes_per_cycle": 2**30,
    "vector.lanes": 2**16, "vector.pipeline_latency": 2**20,
    **{f"vector.op_cycles.{op.name.lower()}": 2**11 for op in VecOp},
    "dma.burst_bytes": 2**30, "dma.channel_bytes_per_cycle": 2**30, "dma.latency_cycles": 2**20,
    "link.packet_bytes": 2**30, "link.bytes_per_cycle": 2**30, "link.hop_latency_cycles": 2**20,
    "link.rx_queue_packets": 2**20, "sram.capacity_bytes": 2**62,
}


@pytest.mark.parametrize("detail", ["train", "packet"])
def test_a_small_kernel_with_every_timing_key_at_its_bound(detail):
    """By hand, docs/hardware-model.md, with R = C = L = 2**16, op = 2**11, latencies 2**20 and
    every byte size and bandwidth 2**30 (so ceil(log2 L) = 16 and any transfer here is 1 cycle):

      PE (0, 0)  load 4096 B      1 burst: ceil(4096 / 2**30) = 1, + 2**20     ends t1 = 1048577
                 exp of 4096      ceil(4096 / 2**16) * 2**11 + 2**20 = 1050624 ends t2 = 2099201
                 dot 64x64x64     1 fold: max(64 + 2**17 - 2, ceil(2**17 * 64 * 2 / 2**30))
                                  = 131134                                     ends t3 = 2230335
                 row sum 64 x 64  64 * (ceil(64 / 2**16) * 2**11 + 16) + 2**20
                                  = 1180672                                    ends t4 = 3411007
                 send E 256 B     1 packet, ser = 1                            ends t4 + 1
                 store 256 B      1 + 2**20                                    ends t4 + 1048577
      PE (1, 0)  recv W 256 B     d = t4 + ser + h = t4 + 1 + 2**20           ends 4459584
    """
    hw = load_hw().with_overrides(MAX_TIMING, n_cubes=1, pes_per_cube=2)
    m = Machine(hw)
    a = m[0, 0]
    t0 = a.load(4096)
    x = a.vec(VecOp.EXP, 4096, t0)
    d = a.dot(x, x, 64, 64, 64)
    r = a.reduce(VecOp.ADD, d, 64, 64)
    a.send("E", r, 256)
    a.store(r, 256)
    m[1, 0].recv("W", 256)
    run = m.run(detail=detail)
    t1 = 1 + 2**20
    t2 = t1 + 2**11 + 2**20
    t3 = t2 + 64 + 2**17 - 2
    t4 = t3 + 64 * (2**11 + 16) + 2**20
    assert (t1, t2, t3, t4) == (1048577, 2099201, 2230335, 3411007)
    assert [run.end((0, 0), i) for i in range(6)] == [t1, t2, t3, t4, t4 + 1, t4 + 1 + 2**20]
    assert run.end((1, 0), 0) == t4 + 1 + 2**20
    assert run.res.cycles == 4459584


def _dot_ref(R, C, s, m, n, k, e):
    """docs/hardware-model.md's dot, in Python ints (which cannot wrap)."""
    cdiv = lambda a, b: -(-a // b)  # noqa: E731
    return cdiv(m, R) * cdiv(n, C) * max(k + R + C - 2, cdiv((R + C) * k * e, s))


def test_worst_commands_at_the_bounds_are_exact_in_the_engine():
    """The largest commands the engine accepts (api.MAX_SIZE, MAX_VOLUME), on hardware at the
    bounds, each on its own PE: durations equal the formulas in unbounded Python ints, positive
    and below 2**62.

      dot (1024, 2**40) x (2**40, 1), f64-sized, R = 1, C = 256, s = 1 (max(R, C) = 256 * s):
          1024 folds of ceil(257 * 2**40 * 8 / 1) = 257 * 2**43 cycles: 257 * 2**53 (the worst
          dot, ~2**61)
      dot (2**25, 2**25) x (2**25, 1) with R = C = 2**16 at s = 256: its SRAM term
      row reduction 2**10 rows of 2**40, L = 1, op = 2**11: 2**10 * 2**40 * 2**11 + 2**20
      leading-axis reduction (4, 4096, 2**36): 4 * 4095 * 2**36 * 2**11 + 2**20
      exp of 2**40 elements, L = 1: 2**40 * 2**11 + 2**20
      load of 2**40 bytes, B = 2**30, W = 1: 1024 bursts of 2**30 cycles + 2**20
      send of 2**40 bytes, P = 2**30, b = 1, h = 2**20: 2**40 + 2**20 (recv posted at 0)
    """
    base = {"vector.lanes": 1, "vector.pipeline_latency": 2**20,
            **{f"vector.op_cycles.{op.name.lower()}": 2**11 for op in VecOp},
            "dma.burst_bytes": 2**30, "dma.channel_bytes_per_cycle": 1, "dma.latency_cycles": 2**20,
            "link.packet_bytes": 2**30, "link.bytes_per_cycle": 1, "link.hop_latency_cycles": 2**20,
            "link.rx_queue_packets": 2**10, "n_cubes": 1, "pes_per_cube": 8}
    hw = load_hw().with_overrides(base, gemm__rows=1, gemm__cols=256, sram__bytes_per_cycle=1)
    m = Machine(hw)
    src = fill(m[0, 0], 64)
    m[0, 0].dot(src, src, 1024, 1, 2**40, esize=8)
    src = fill(m[2, 0], 64)
    m[2, 0].reduce(VecOp.ADD, src, 2**10, 2**40)
    src = fill(m[3, 0], 64)
    m[3, 0].reduce(VecOp.MAX, src, 4, 4096, 2**36)
    m[4, 0].vec(VecOp.EXP, 2**40, out_bytes=64)
    m[5, 0].load(2**40)
    x = fill(m[6, 0], 2**40)
    m[6, 0].send("E", x, 2**40)
    m[7, 0].recv("W", 2**40)
    run = m.run()
    dur = lambda pe, i: run.end((pe, 0), i) - run.start((pe, 0), i)  # noqa: E731
    expected = {
        (0, 1): 1024 * 257 * 2**43,
        (2, 1): 2**10 * 2**40 * 2**11 + 2**20,
        (3, 1): 4 * 4095 * 2**36 * 2**11 + 2**20,
        (4, 0): 2**40 * 2**11 + 2**20,
        (5, 0): 1024 * 2**30 + 2**20,
        (6, 1): 2**40,
    }
    assert expected[0, 1] == _dot_ref(1, 256, 1, 1024, 1, 2**40, 8)
    for (pe, i), cycles in expected.items():
        assert 0 < dur(pe, i) == cycles < H62, (pe, i)
    assert run.end((7, 0), 0) == run.start((6, 0), 1) + 2**40 + 2**20
    assert 2**61 < run.res.cycles < H62

    # The same formulas through _timing (the engine's inline C), at other corners of the bounds.
    p = api.hw_params(load_hw().with_overrides(gemm__rows=2**16, gemm__cols=2**16))
    assert _timing.dot_cycles(p, 2**25, 2**25, 1, 8) == _dot_ref(2**16, 2**16, 256, 2**25, 2**25, 1, 8)
    assert _timing.dot_cycles(p, 2**40, 1, 2**10, 8) == _dot_ref(2**16, 2**16, 256, 2**40, 1, 2**10, 8) < H62
    p = api.hw_params(load_hw().with_overrides(MAX_TIMING))
    assert _timing.reduction_cycles(p, 2**40, 2**10, 1, int(VecOp.ADD)) == 2**40 * (2**11 + 16) + 2**20
    assert _timing.link_message_cycles(p, 2**40) == 2**10 + 2**20  # 1024 packets of 1 cycle + h


def test_past_the_horizon_with_bounded_keys_is_max_cycles_not_a_wrapped_count():
    """Two reductions of ~2**61 cycles back to back pass the engine's 2**62 horizon: the launch
    stops with MaxCyclesError at the exact cycle, no int64 wrap. fill(64) with L = 1 and op = 2**11:
    64 * 2**11 + 2**20 = 1179648; each reduction 2**61 + 2**20; the second ends at
    2**62 + 1179648 + 2 * 2**20 = 2**62 + 3276800."""
    hw = load_hw().with_overrides({"vector.lanes": 1, "vector.op_cycles.fill": 2**11,
                                   "vector.op_cycles.add": 2**11, "vector.pipeline_latency": 2**20,
                                   "n_cubes": 1, "pes_per_cube": 1})
    m = Machine(hw)
    src = fill(m[0, 0], 64)
    m[0, 0].reduce(VecOp.ADD, src, 2**10, 2**40, line=7)
    m[0, 0].reduce(VecOp.ADD, src, 2**10, 2**40, line=8)
    with pytest.raises(MaxCyclesError, match=rf"simulation passed the engine's horizon of 2\*\*62 cycles \(docs/reliability\.md: a "
                                             rf"run's cycles stay inside int64\): its next event was at cycle {H62 + 3276800}\. "
                                             rf"Where each PE stood at cycle {H62}:\n  PE \(0, 0\) VECTOR is running reduce "
                                             r"\(line 8\)") as ei:
        m.run()
    assert ei.value.cycle == H62 + 3276800


def test_an_engine_state_too_large_for_the_host_names_the_receive_rings():
    """A review: a deep receive queue on many links (accepted: each key within its bound) failed
    with "cannot allocate simulator state", naming nothing. 2,048 PEs x 4 ports x 2 rings x
    2**20 slots x 8 bytes = 2**37 bytes (128 GiB)."""

    def k(x_ptr, *, tl):
        tl.store(x_ptr, tl.exp(tl.load(x_ptr, shape=(64,), dtype="f32")))

    ctx = kernbench.Context("default", overrides={"n_cubes": 256, "link.rx_queue_packets": 2**20})
    try:
        ctx.launch(k, (1, 1), ctx.empty((64,), "f32"), mode="timing")
    except MemoryError as e:
        assert str(e) == ("kernbench engine: cannot allocate simulator state for 2,048 PEs (the links' "
                          "receive rings take 2 x 8,192 links x link.rx_queue_packets 1,048,576 x 8 bytes "
                          "= 137,438,953,472 bytes of it: docs/hardware-model.md, 'Key bounds')")
    else:  # (a host that overcommits memory gives the 128 GiB untouched: nothing to check)
        pytest.skip("this host allocated 128 GiB (memory overcommitted)")
