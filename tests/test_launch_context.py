"""The launch Context: hardware resolution, SFR installs, argument forwarding, and what a
LaunchResult carries."""
import os
import sys

import numpy as np
import pytest

import kernbench
from kernbench import SramCapacityError
from kernbench.common.pe_commands import Unit
from kernbench.hw import HardwareConfigError, load_hw

FILE = os.path.basename(__file__)


def test_hardware_from_preset_overrides_path_and_object(tmp_path):
    assert kernbench.Context().hw.name == "default"
    assert kernbench.Context("mesh8").hw.n_cubes == 8
    c = kernbench.Context("default", overrides={"link.bytes_per_cycle": 64, "n_cubes": 2})
    assert c.hw.link.bytes_per_cycle == 64 and c.hw.n_pes == 16
    p = tmp_path / "tiny.toml"
    p.write_text('name = "tiny"\nn_cubes = 1\npes_per_cube = 2\n')
    assert kernbench.Context(str(p)).hw.n_pes == 2
    hw = load_hw("default")
    assert kernbench.Context(hw).hw is hw
    with pytest.raises(HardwareConfigError, match="unknown hardware preset 'nope'"):
        kernbench.Context("nope")


def test_install_sfr():
    ctx = kernbench.Context("default", overrides={"n_cubes": 2, "pes_per_cube": 4})
    assert (ctx.neighbours() == -1).all()
    s = ctx.install_sfr(scope="pe", ring=True)
    assert ctx.sfr is s and s.scope == "pe" and s.ring
    nbr = ctx.neighbours()
    assert nbr[3, 0] == 0 and nbr[0, 1] == 3 and nbr[4, 0] == 5  # E of PE 3 wraps to PE 0
    ctx.install_sfr(scope="cube")
    assert ctx.neighbours()[0, 0] == 4 and ctx.neighbours()[1, 0] == -1
    with pytest.raises(ValueError, match="scope must be 'pe' .*, 'cube' .* or 'two_level'"):
        ctx.install_sfr(scope="mesh")
    assert "scope cube" in repr(ctx)


def test_arguments_are_forwarded_positionally_then_keywords():
    ctx = kernbench.Context("default", overrides={"n_cubes": 2})
    seen = []

    def k(q_ptr, k_ptr, v_ptr, o_ptr, S_q, S_kv_per_rank, h_q, h_kv, d_head, n_ranks, rank_axis=0, *, tl, extra=None):
        seen.append((q_ptr, S_q, d_head, n_ranks, rank_axis, extra, tl.program_id(0), tl.program_id(1),
                     tl.num_programs(0), tl.num_programs(1)))

    q = ctx.empty((4,), "f16")
    r = ctx.launch(k, (2, 2), q, q, q, q, 128, 64, 8, 2, 64, 4, 1, mode="timing", extra="x")
    assert seen == [(q.addr, 128, 64, 4, 1, "x", p, c, 2, 2) for c in range(2) for p in range(2)]
    assert r.args["rank_axis"] == 1 and r.args["extra"] == "x" and r.args["q_ptr"]["shape"] == [4]


def vadd(x_ptr, y_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,)) + tl.load(y_ptr, shape=(n,)))


def test_launch_result_fields():
    ctx = kernbench.Context()
    x = ctx.put(np.ones(1024, np.float16), pe=(0, 0), name="x")
    y = ctx.put(np.ones(1024, np.float16), pe=(0, 0), name="y")
    o = ctx.empty((1024,), "f16", name="o")
    r = ctx.launch(vadd, (1, 1), x, y, o, 1024, record_events=True)
    assert isinstance(r, kernbench.LaunchResult)
    assert r.hw is ctx.hw and r.sfr is None and r.grid == (1, 1) and r.mode == "functional"
    assert r.kernel_name == "vadd" and r.kernel_file == __file__
    # Device arrays by name, shape, dtype, placement and address (so the JSON has them as fields).
    assert r.args == {
        "x_ptr": {"name": "x", "shape": [1024], "dtype": "f16", "placement": "on PE (0, 0)", "addr": x.addr},
        "y_ptr": {"name": "y", "shape": [1024], "dtype": "f16", "placement": "on PE (0, 0)", "addr": y.addr},
        "o_ptr": {"name": "o", "shape": [1024], "dtype": "f16", "placement": "empty", "addr": o.addr},
        "n": 1024}
    # The launch stored to o only: its output.
    assert r.written_args == ("o_ptr",)
    assert r.program.n_commands == 4
    # 498 cycles (derived in test_e2e_vector_add.test_one_pe) at 1.5 GHz
    assert r.cycles == 498 and r.seconds == pytest.approx(498 / 1.5e9)
    assert [r.label(i) for i in range(4)] == [
        "load (1024,) f16 from x", "load (1024,) f16 from y", "add (1024,) f16", "store (1024,) f16 to o"]
    # Peak SRAM: x (2 KiB, from 0) and y (from 158) stay live until the add ends at 340; the
    # add's output is allocated when the add starts at 316: 3 x 2048 = 6144 bytes.
    assert r.peak_sram[0] == 6144 and r.peak_sram[1:].sum() == 0
    ev = r.events
    assert ev is not None and len(ev) == 4 and list(ev["end"]) == [158, 316, 340, 498]
    assert r.unit_counters["busy"][0, Unit.VECTOR] == 24
    # events are off unless asked for
    assert ctx.launch(vadd, (1, 1), x, y, o, 1024).events is None


def test_detail_packet_gives_the_same_cycles():
    ctx = kernbench.Context("default", overrides={"n_cubes": 1})
    ctx.install_sfr("pe", ring=True)
    x = ctx.shard(np.arange(8 * 2048, dtype=np.float32).reshape(8, 2048), axis=0)

    def k(x_ptr, *, tl):
        t = tl.load(x_ptr, shape=(2048,), dtype="f32")
        tl.send("E", t)
        tl.store(x_ptr, tl.recv("W", (2048,), "f32") + t)

    a = ctx.launch(k, (8, 1), x, mode="timing")
    b = ctx.launch(k, (8, 1), x, mode="timing", detail="packet")
    assert a.cycles == b.cycles and a.engine.detail == "train" and b.engine.detail == "packet"


def test_strict_sram_raises_from_the_engine():
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "sram.capacity_bytes": 1 << 20})

    def k(*, tl):
        tl.exp(tl.zeros((512, 1024), "f32"))  # 2 MiB live twice over a 1 MiB SRAM

    r = ctx.launch(k, (1, 1), mode="timing")
    assert r.engine.sram_over[0] and r.peak_sram[0] == 2 * 512 * 1024 * 4
    with pytest.raises(SramCapacityError):
        ctx.launch(k, (1, 1), mode="timing", strict_sram=True)


def test_strict_sram_names_where_it_first_went_above_capacity():
    """The error names the PE, the kernel line and the cycle where live SRAM first rose above
    capacity (a review found only the PEs and peak bytes). Derived from docs/hardware-model.md
    (vector unit: a fill of n f32 elements takes ceil(n / 64) * 1 + 8 cycles, an exp
    ceil(n / 64) * 4 + 8; a result is allocated when its command starts, an operand freed when
    its last reader ends): n = 128 * 1024, the fill 0 -> 2,056, exp b 2,056 -> 10,256, exp c
    from 10,256, when a (read again at the end), b (read by c) and c are live: 3 x 512 KiB =
    1,572,864 bytes above the 1 MiB capacity; at 2,056, a and b alone are exactly 1 MiB."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "sram.capacity_bytes": 1 << 20})
    lines = []

    def k(*, tl):
        a = tl.zeros((128, 1024), "f32")
        b = tl.exp(a)
        lines.append(sys._getframe().f_lineno + 1)
        c = tl.exp(b)
        tl.exp(c) + a

    r = ctx.launch(k, (1, 1), mode="timing")
    assert r.engine.cmd_start.tolist()[:3] == [0, 2056, 10256] and r.peak_sram[0] == 1572864
    with pytest.raises(SramCapacityError) as ei:
        ctx.launch(k, (1, 1), mode="timing", strict_sram=True)
    e = ei.value
    assert e.pe == (0, 0) and e.cycle == 10256 and e.where.endswith(f"{FILE}:{lines[0]}")
    assert str(e) == ("peak SRAM above capacity (1,048,576 bytes) on PE (0, 0): 1,572,864 bytes; first on "
                      f"PE (0, 0) at cycle 10,256, 1,572,864 bytes live, as exp (128,1024) f32 "
                      f"({FILE}:{lines[0]}) allocated its result. Raise sram.capacity_bytes to at "
                      f"least 1,572,864, or keep fewer bytes live: smaller tiles, loads gated with "
                      f"after= (docs/language.md)")


@pytest.mark.parametrize("detail", ["train", "packet"])
def test_strict_sram_names_the_last_in_program_order_of_a_cycles_allocations(detail):
    """Two units allocate in the cycle live SRAM first rises above capacity: the error names the
    later in program order at both detail levels (a review: train named the fill, packet the
    load, as their heaps order the two completions at 166 differently). Derived from
    docs/hardware-model.md: the load of 1024 f32 (8 bursts of 512 B: 16 + 150) ends at 166; the
    fills take ceil(n / 64) + 8: 64 elements 0 -> 9, 9,536 elements 9 -> 166; at 166 the second
    load (line `load`) and the big fill (line `fill`, after it) both start and allocate 100,000
    bytes each: 200,000 live (the first tensors freed, nothing reads them), above 150,000."""
    ctx = kernbench.Context("default", overrides={"n_cubes": 1, "pes_per_cube": 1,
                                                  "sram.capacity_bytes": 150_000})
    x = ctx.empty((25_000,), "f32")
    lines = {}

    def k(x_ptr, *, tl):
        tl.load(x_ptr, shape=(1024,))
        tl.zeros((64,), "f32")
        tl.zeros((149 * 64,), "f32")
        lines["load"] = sys._getframe().f_lineno + 1
        tl.load(x_ptr, shape=(25_000,))
        lines["fill"] = sys._getframe().f_lineno + 1
        tl.zeros((25_000,), "f32")

    r = ctx.launch(k, (1, 1), x, mode="timing", detail=detail)
    assert r.engine.cmd_start.tolist() == [0, 0, 9, 166, 166]
    with pytest.raises(SramCapacityError) as ei:
        ctx.launch(k, (1, 1), x, mode="timing", detail=detail, strict_sram=True)
    e = ei.value
    assert e.cycle == 166 and e.where.endswith(f"{FILE}:{lines['fill']}")
    assert "200,000 bytes live, as fill (25000,) f32" in str(e)


def test_pinned_loads_stay_live():
    ctx = kernbench.Context("default", overrides={"n_cubes": 1})
    x = ctx.empty((1024,), "f32")

    def k(x_ptr, pinned, *, tl):
        t = tl.load(x_ptr, shape=(1024,), pinned=pinned)
        tl.exp(t)

    a = ctx.launch(k, (1, 1), x, False, mode="timing")
    b = ctx.launch(k, (1, 1), x, True, mode="timing")
    assert a.program.tensor_pinned.tolist() == [0, 0] and b.program.tensor_pinned.tolist() == [1, 0]
    assert a.cycles == b.cycles and a.peak_sram[0] == b.peak_sram[0] == 8192


def _copy(x_ptr, o_ptr, n, *, tl):
    tl.store(o_ptr, tl.load(x_ptr, shape=(n,)))


def test_device_array_of_another_context_is_refused():
    # Each Context's first allocation sits at BASE_ADDR 0x10000000, so a's x and b's y have the
    # same address: launched on b, x's int address would silently read y's contents (2s, not 1s).
    a = kernbench.Context("default", overrides={"n_cubes": 1})
    b = kernbench.Context("default", overrides={"n_cubes": 1})
    x = a.put(np.ones(64, np.float16), pe=(0, 0), name="x")
    y = b.put(np.full(64, 2, np.float16), pe=(0, 0), name="y")
    o = b.empty((64,), "f16", name="o")
    assert x.addr == y.addr == 0x1000_0000
    # positionally: named by the kernel parameter it binds to, and by the array's name
    with pytest.raises(ValueError, match=r"launch argument 'x_ptr' \(positional #0\) \(device array 'x' "
                                         r"at 0x10000000\) belongs to another Context: expected a device "
                                         r"array of this Context"):
        b.launch(_copy, (1, 1), x, o, 64)
    # as a keyword argument: named by its keyword
    with pytest.raises(ValueError, match=r"launch argument 'o_ptr' \(device array 'x' at 0x10000000\) "
                                         r"belongs to another Context"):
        b.launch(_copy, (1, 1), y, n=64, o_ptr=x)
    # timing mode is refused too (the address is as meaningless for the cost model's allocation checks)
    with pytest.raises(ValueError, match="belongs to another Context"):
        b.launch(_copy, (1, 1), x, o, 64, mode="timing")
    # nothing ran: o is still unwritten (NaN) on b, x still all ones on a
    assert np.isnan(b.read(o, (0, 0))).all() and (a.read(x, (0, 0)) == 1).all()
    # the same launch with b's own arrays works: o gets y's 2s
    b.launch(_copy, (1, 1), y, o, 64)
    assert (b.read(o, (0, 0)) == 2).all()


def test_a_context_takes_hardware_of_its_own_shape_only():
    """ctx.hw may become another config of the same cubes x PEs (timing keys); another shape or
    not a config is a clear ValueError (was a neighbour-table error at the next launch, or an
    AttributeError)."""
    ctx = kernbench.Context("default")
    ctx.hw = load_hw("default", {"link.bytes_per_cycle": 8})
    assert ctx.hw.link.bytes_per_cycle == 8
    with pytest.raises(ValueError, match="laid out for 4 cubes x 8 PEs, not 8 x 8"):
        ctx.hw = load_hw("mesh8")
    for bad in (None, {"n_cubes": 4}):
        with pytest.raises(ValueError, match="must be a HardwareConfig"):
            ctx.hw = bad
