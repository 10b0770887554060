"""Hardware configuration: frozen dataclasses loaded from TOML presets.

Every field carries its unit in its name or docstring; docs/hardware-model.md gives the formulas
that use them. A config is immutable; derive variants with :meth:`HardwareConfig.with_overrides`.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import re
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..common.errors import KernbenchError, is_whole, pe_label, short_repr
from ..common.readonly import ReadOnlyDict

__all__ = [
    "GemmConfig",
    "VectorOpCycles",
    "VectorConfig",
    "DmaConfig",
    "LinkConfig",
    "SramConfig",
    "HardwareConfig",
    "load_hw",
    "list_presets",
    "HardwareConfigError",
    "KEY_BOUNDS",
    "check_bounds",
]


class HardwareConfigError(KernbenchError, ValueError):
    """A hardware config key is unknown, has the wrong type, or a value outside its bounds
    (KEY_BOUNDS; docs/hardware-model.md, "Key bounds"); a hardware file cannot be read."""


@dataclass(frozen=True)
class GemmConfig:
    """Output-stationary systolic array of ``rows`` x ``cols`` MAC cells (f16/bf16 in, f32 acc)."""

    rows: int = 32  #: R, MAC rows (output rows per fold)
    cols: int = 32  #: C, MAC columns (output columns per fold)
    #: accumulator buffers per cell: 1 (a fold drains before the next accumulates) or 2 (the
    #: drain overlaps the next fold; docs/hardware-model.md "Two accumulator buffers")
    accumulator_buffers: int = 1


@dataclass(frozen=True)
class VectorOpCycles:
    """Cycles per issue slot (one slot = ``lanes`` elements) of each vector operation."""

    add: int = 1
    sub: int = 1
    mul: int = 1
    max: int = 1
    min: int = 1
    compare: int = 1
    select: int = 1  #: where(cond, a, b)
    copy: int = 1  #: also neg and abs
    cast: int = 1
    fill: int = 1  #: full / zeros
    div: int = 4
    exp: int = 4
    log: int = 4
    sqrt: int = 4
    rsqrt: int = 2
    bitwise: int = 1  #: and, or, xor, not, shifts (int32 and masks)
    sigmoid: int = 4  #: one activation-table op, like exp


@dataclass(frozen=True)
class VectorConfig:
    """SIMD vector unit with ``lanes`` f32 lanes."""

    lanes: int = 64  #: L, elements per issue slot
    pipeline_latency: int = 8  #: cycles added once per vector command (fill/drain)
    op_cycles: VectorOpCycles = field(default_factory=VectorOpCycles)


@dataclass(frozen=True)
class DmaConfig:
    """Per-PE DMA engine on the cube's shared memory channel."""

    burst_bytes: int = 512  #: bytes per DMA burst
    channel_bytes_per_cycle: int = 256  #: the cube memory channel, shared by its PEs (round robin)
    latency_cycles: int = 150  #: memory latency, paid once per DMA command (bursts are pipelined)


@dataclass(frozen=True)
class LinkConfig:
    """SFR link port (E/W; N/S under the two_level SFR install): full duplex, packetised, credit flow control."""

    packet_bytes: int = 256  #: bytes per link packet
    bytes_per_cycle: int = 32  #: serialisation bandwidth per direction
    hop_latency_cycles: int = 50  #: wire latency of a packet, and of a returning credit
    rx_queue_packets: int = 32  #: Q, receive queue depth = credits a sender starts with


@dataclass(frozen=True)
class SramConfig:
    """Local SRAM of a PE."""

    capacity_bytes: int = 16 * 1024 * 1024  #: live-byte capacity; peak above it is flagged
    bytes_per_cycle: int = 256  #: bound on GEMM operand reads per cycle


@dataclass(frozen=True)
class HardwareConfig:
    """The whole machine: ``n_cubes`` cubes of ``pes_per_cube`` PEs."""

    name: str = "default"
    n_cubes: int = 4
    pes_per_cube: int = 8
    clock_ghz: float = 1.5  #: cycles -> seconds
    gemm: GemmConfig = field(default_factory=GemmConfig)
    vector: VectorConfig = field(default_factory=VectorConfig)
    dma: DmaConfig = field(default_factory=DmaConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    sram: SramConfig = field(default_factory=SramConfig)

    def __post_init__(self) -> None:
        # Checked (and numpy scalars turned into int/float) however the config was built: TOML,
        # dict, overrides or by hand. Every value the engine sees is within KEY_BOUNDS.
        for name, value in _checked_fields(self, "").items():
            object.__setattr__(self, name, value)
        _check_joint_bounds(self)

    # -- derived figures ---------------------------------------------------------------
    @property
    def n_pes(self) -> int:
        return self.n_cubes * self.pes_per_cube

    def pe_coords(self, g: int) -> tuple:
        """Global PE index ``g`` (cube * pes_per_cube + pe) -> (pe, cube), as plain ints.
        Raises ValueError for an index no PE of this machine has (a review: (0, 125000))."""
        if not is_whole(g) or not 0 <= g < self.n_pes:  # (a float, a bool, "3": refused, not cut)
            raise ValueError(f"global PE index must be an int in 0..{self.n_pes - 1} ({self.n_cubes} "
                             f"cubes of {self.pes_per_cube} PEs), got {short_repr(g)}")
        g = int(g)
        return (g % self.pes_per_cube, g // self.pes_per_cube)

    def global_pe(self, pe) -> int:
        """A PE as a (pe, cube) pair of ints or a global index -> its global index (cube *
        pes_per_cube + pe): the inverse of :meth:`pe_coords`, for a PE a caller names. Raises
        ValueError naming this machine for a PE it does not have, or another value."""
        bad = f"a PE must be a (pe, cube) pair of ints or a global PE index, got {short_repr(pe)}"
        if isinstance(pe, (tuple, list)):
            if len(pe) != 2 or not all(is_whole(v) for v in pe):
                raise ValueError(bad)
            p, c = int(pe[0]), int(pe[1])
            if not 0 <= c < self.n_cubes:
                raise ValueError(f"cube {short_repr(c)} does not exist: {self.label} has cubes 0-{self.n_cubes - 1}")
            if not 0 <= p < self.pes_per_cube:
                raise ValueError(f"{pe_label((p, c))} does not exist: {self.label} has PEs "
                                 f"0-{self.pes_per_cube - 1} per cube")
            return c * self.pes_per_cube + p
        if not is_whole(pe):
            raise ValueError(bad)
        if not 0 <= pe < self.n_pes:
            cubes = f"{self.n_cubes} cube{'' if self.n_cubes == 1 else 's'}"
            raise ValueError(f"PE {short_repr(int(pe))} does not exist: {self.label} has global PE indices "
                             f"0-{self.n_pes - 1} ({cubes} x {self.pes_per_cube} PEs)")
        return int(pe)

    def seconds(self, cycles: int | float) -> float:
        """``cycles`` (a real number, not negative) in seconds at ``clock_ghz``. Raises TypeError
        for anything but a real number (a string was read as one), ValueError for a count that
        is negative, NaN or past a float's range."""
        if isinstance(cycles, np.ndarray) and cycles.ndim == 0 and cycles.dtype.kind in "iuf":
            cycles = cycles.item()  # (a 0-d array: a reduction's result)
        if isinstance(cycles, (bool, np.bool_, np.timedelta64)) or not isinstance(cycles, numbers.Real):
            raise TypeError(f"seconds: cycles must be a number, got {type(cycles).__name__} {short_repr(cycles)}")
        try:
            c = float(cycles)
        except OverflowError:
            c = math.inf
        if not 0 <= c < math.inf:
            raise ValueError(f"seconds: cycles must be a finite count, not negative, got {short_repr(cycles)}")
        return c / (self.clock_ghz * 1e9)

    @property
    def peak_flops_per_cycle_pe(self) -> int:
        """MACs of the array x 2 (multiply + add) per cycle; the GEMM roofline of one PE."""
        return 2 * self.gemm.rows * self.gemm.cols

    def peak_tflops(self, n_pes: int | None = None) -> float:
        """The GEMM peak of ``n_pes`` PEs (default all), TFLOP/s. Raises ValueError for a count
        that is not an int in 0..n_pes."""
        return self.peak_flops_per_cycle_pe * self._count("n_pes", n_pes) * self.clock_ghz * 1e9 / 1e12

    def memory_gbps(self, n_cubes: int | None = None) -> float:
        """The memory channels' bandwidth of ``n_cubes`` cubes (default all), GB/s. Raises
        ValueError for a count that is not an int in 0..n_cubes."""
        return self.dma.channel_bytes_per_cycle * self._count("n_cubes", n_cubes) * self.clock_ghz

    def _count(self, name: str, n) -> int:
        top = getattr(self, name)
        if n is None:
            return top
        if not is_whole(n) or not 0 <= n <= top:
            raise ValueError(f"{name} must be an int in 0..{top} (this machine's), got {short_repr(n)}")
        return int(n)

    def link_gbps(self) -> float:
        return self.link.bytes_per_cycle * self.clock_ghz

    # -- construction ------------------------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any] | None = None, **kw: Any) -> "HardwareConfig":
        """A copy with fields replaced. Keys are dotted paths: ``{"link.bytes_per_cycle": 64}``;
        keyword form uses ``__`` for the dot: ``with_overrides(link__bytes_per_cycle=64)``.

        The copy keeps the name (a config is its values: equal values, equal configs, one
        cache key); :attr:`label` says what changed. Raises HardwareConfigError naming a bad key
        or value, or a key given twice (dotted and nested, or in both ``overrides`` and ``kw``)."""
        if overrides is not None and not isinstance(overrides, Mapping):  # (as load_hw: a review)
            raise HardwareConfigError(f"overrides must be a dict of hardware keys to values, got "
                                      f"{type(overrides).__name__} {short_repr(overrides)}")
        given = [(overrides or {}), {k.replace("__", "."): v for k, v in kw.items()}]
        data = to_dict(self)
        for key, value in _leaves(_nested(given)):
            _set_dotted(data, key, value)
        return from_dict(data, source="overrides")

    @property
    def label(self) -> str:
        """How reports, traces and plots name this machine: its name, and when that is a
        preset's, the keys whose values differ from the preset's, in field order (``mesh8`` with
        ``n_cubes=2``: ``"mesh8 (n_cubes=2)"``; a dict or TOML file without a name changes the
        ``default`` preset's keys); ``"mesh8 (12 keys changed)"`` when the list is long."""
        return _label(self)

    def to_dict(self) -> dict:
        return to_dict(self)


#: a hardware name's longest, and what it may not hold: what no table row or plot title can show
#: on one line (control characters, line separators, bidirectional overrides). Any other text
#: is a name: "mesh8 [HBM3e]", "a100-like $2/h"; the places that show it show it as it is
#: (kernbench.common.shown).
MAX_NAME = 200
_UNSHOWN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

#: HardwareConfig's own field types (its sub-configs are checked against their defaults' types)
_TOP_TYPES = {"name": str, "n_cubes": int, "pes_per_cube": int, "clock_ghz": float, "gemm": GemmConfig,
              "vector": VectorConfig, "dma": DmaConfig, "link": LinkConfig, "sram": SramConfig}


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def leaves(obj, prefix: str = ""):
    """(dotted key, value) of every leaf of a config or sub-config ``obj`` (its fields read by
    attribute, in field order): ``("link.bytes_per_cycle", 32)``, ...; ``prefix`` names ``obj``
    ("link."), and a value that is not a config is the one leaf ``prefix`` names."""
    if hasattr(obj, "__dataclass_fields__"):
        for f in fields(obj):
            yield from leaves(getattr(obj, f.name), prefix + f.name + ".")
    else:
        yield prefix[:-1], obj


def _label(cfg: "HardwareConfig") -> str:
    base = _preset(cfg.name)
    if base is None:
        return cfg.name
    was = dict(leaves(base))
    changed = [f"{k}={_shown(v)}" for k, v in leaves(cfg) if k != "name" and v != was[k]]
    if not changed:
        return cfg.name
    text = ", ".join(changed)
    if len(text) > MAX_NAME:
        text = f"{len(changed)} keys changed"
    return f"{cfg.name} ({text})"


def _shown(v) -> str:
    # a float as repr writes it but never in exponent form (as reports print figures): 2.0,
    # 0.000000001
    return np.format_float_positional(v, trim="0") if isinstance(v, float) and math.isfinite(v) else str(v)


@functools.lru_cache(maxsize=None)
def _preset(name: str) -> "HardwareConfig | None":
    # a preset's config by its name (None for any other name): read once, a config is immutable
    return load_hw(name) if name in list_presets() else None


def _nested(given: list, source: str = "overrides") -> dict:
    """The keys of the mappings ``given`` as one nested dict ({"gemm.rows": 8} and {"gemm":
    {"rows": 8}} alike), refusing a key given twice: dotted and nested, or in two of them (a
    review: one of the two values was dropped without a word; TOML refuses it too)."""
    out: dict = {}

    def put(path: list, value) -> None:
        node = out
        for j, p in enumerate(path[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise HardwareConfigError(f"{source}: hardware key '{'.'.join(path[:j + 1])}' is given twice "
                                          f"(as a value and as a table of keys)")
        last = path[-1]
        if isinstance(value, Mapping):
            if last in node and not isinstance(node[last], dict):
                raise HardwareConfigError(f"{source}: hardware key '{'.'.join(path)}' is given twice (as a "
                                          f"value and as a table of keys)")
            node.setdefault(last, {})
            for k, v in value.items():
                if not isinstance(k, str):
                    raise HardwareConfigError(f"{source}: hardware keys are names (str), got "
                                              f"{type(k).__name__} {short_repr(k)} in '{'.'.join(path)}'")
                put(path + k.split("."), v)
        elif last in node:
            raise HardwareConfigError(f"{source}: hardware key '{'.'.join(path)}' is given twice: give it once")
        else:
            node[last] = value

    for items in given:
        for key, value in items.items():
            if not isinstance(key, str):
                raise HardwareConfigError(
                    f"hardware override keys must be dotted strings like 'gemm.rows', got {short_repr(key)}"
                    if source == "overrides" else
                    f"{source}: hardware keys are names (str), got {type(key).__name__} {short_repr(key)}")
            put(key.split("."), value)
    return out


def _leaves(nested: dict, prefix: str = ""):
    """(dotted key, value) of each value of ``nested`` (:func:`_nested`), in order. An empty
    table is a leaf of its own: :func:`_set_dotted` finds its key (a review: ``{"bogus": {}}``
    and ``{"link.packet_bytes": {}}`` were dropped without a word) and keeps a section's keys."""
    for k, v in nested.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def unknown_key(key: str) -> str:
    """The error text of an unknown hardware key: the near misses of a known section's keys and
    tables (a misspelt ``link.packet_size`` names ``link.packet_bytes``), else that section's,
    else the near misses among all keys and tables, or the top-level names."""
    section, _, last = key.rpartition(".")
    known = ["name", *KEY_BOUNDS]  # (the one text key, and the numbers)
    tables = {k.rpartition(".")[0] for k in KEY_BOUNDS} - {""}
    if section and any(k.startswith(section + ".") for k in KEY_BOUNDS):
        # the section's keys, then its tables (vector's op_cycles), each by its own name
        names = sorted({k[len(section) + 1:].split(".")[0] for k in KEY_BOUNDS if k.startswith(section + ".")},
                       key=lambda n: (f"{section}.{n}" in tables, n))
        keys = [f"{section}.{n}" + (".*" if f"{section}.{n}" in tables else "") for n in names]
        near = [f"{section}.{n}" for n in difflib.get_close_matches(last, names, n=2, cutoff=0.6)]
    else:
        keys = [k for k in known if "." not in k] + sorted({k.split(".")[0] + ".*" for k in KEY_BOUNDS
                                                            if "." in k})
        near = difflib.get_close_matches(key, [*known, *sorted(tables)], n=2, cutoff=0.7)
    if near:
        return f"unknown hardware key '{key}': did you mean {' or '.join(repr(k) for k in near)}?"
    return f"unknown hardware key '{key}' (known: {', '.join(keys)}; docs/hardware-model.md)"


def _set_dotted(data: dict, key: str, value: Any) -> None:
    if not isinstance(key, str):
        raise HardwareConfigError(f"hardware override keys must be dotted strings like 'gemm.rows', got {short_repr(key)}")
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise HardwareConfigError(unknown_key(key))
        node = node[p]
    if parts[-1] not in node:
        raise HardwareConfigError(unknown_key(key))
    if isinstance(value, Mapping) and isinstance(node[parts[-1]], dict):
        # a table of keys: each set on its own, the section's others kept (not reset to defaults)
        for k, v in value.items():
            if not isinstance(k, str):
                raise HardwareConfigError(f"hardware override keys must be strings, got {short_repr(k)} in '{key}'")
            _set_dotted(data, f"{key}.{k}", v)
        return
    node[parts[-1]] = value


# -- key bounds ----------------------------------------------------------------------------------
#
# The engine does its timing in int64 (kernbench/_core/_timing.pxd, _dma.pyx, _link.pyx,
# _engine.pyx) with no overflow checks, and its HwParams struct holds every key as an int64 (the
# machine's size as int32). A key may therefore take any value for which every formula of
# docs/hardware-model.md, fed the largest command the engine accepts, stays representable; past
# that the C arithmetic wraps (a dot costing 0 cycles, a deadlock "at cycle -9223372036854775745",
# a credit ring of 0 bytes written past its end). The engine's own per-command bounds, which
# kernbench/_core/api.py checks commands against (and the language, reports and memory read):
ENGINE_MAX_SIZE = 1 << 40  #: api.MAX_SIZE: m, n, k, byte counts and tensor sizes of a command
ENGINE_MAX_VOLUME = 1 << 50  #: api.MAX_VOLUME: m * n * k of a dot or a reduction
ENGINE_MAX_ESIZE = 8  #: api.py: bytes of a dot's input element
ENGINE_HORIZON = 1 << 62  #: api._HORIZON: the last cycle a command may start at
#
# Every command starts at a cycle <= ENGINE_HORIZON, so it ends inside int64 when its duration is
# below 2**62 (2**62 + 2**62 = 2**63 would wrap). With S = 2**40, V = 2**50, e <= 8 and the
# bounds below (R, C <= 2**16; max(R, C) <= 256 * s, s = sram.bytes_per_cycle; op <= 2**11;
# L <= 2**16; latencies <= 2**20; byte sizes <= 2**30), the worst command of each formula:
#
#   dot, a = ceil(M/R), b = ceil(N/C), folds = a*b; a*R <= max(2M, R), b <= N, MNK <= V, K <= S:
#     array term  folds * (K + R + C - 2) <= MNK + N*max(2M, R) + M*max(2N, C)
#                                         <= V + 2*max(2V, 2**16 * S)                    ~ 2**57
#     SRAM term   folds * ceil((R + C)*K*e / s) < e*(abRK + abCK)/s + folds
#                 abRK + abCK <= 4V + max(R, C)*K*(M + N) <= 4V + max(R, C)*(V + S)
#                 so < 8*4V + 8*256*(V + S) + V (using max(R, C) <= 256 * s, s >= 1)  ~ 2**61
#                 (its numerator (R + C)*K*e + s <= 2**17 * 2**40 * 8 + 2**30 ~ 2**60)
#     Without the joint bound max(R, C) <= 256 * s, R = 2**16, C = 1, s = 1 and a dot of
#     (1, 2**25) x (2**25, 2**25) is 2**25 folds of ~2**44 cycles: 2**69, which wraps.
#   elementwise   ceil(n/L) * op + latency <= S * 2**11 + 2**20                          ~ 2**51
#   row reduction outer * (ceil(r/L) * op + ceil(log2 L)) + latency
#                 <= V * 2**11 + S * 16 + 2**20                                          ~ 2**61
#     (op <= 2**11 is what this needs: with L = 1 a reduction of V elements costs V * op)
#   lead-axis     outer * (r - 1) * ceil(inner/L) * op + latency <= V * 2**11 + 2**20   ~ 2**61
#   DMA           sum of ceil(bytes_b / W) + latency <= S + 2**20 per command; a burst or a
#                 train adds at most S + 2**20 to the cycle it is granted at (<= the horizon)
#   link          a packet starts at s_i <= the horizon (the engine stops there) and adds
#                 ser <= P <= 2**30 and two hops <= 2**21; a message's ser <= S + P
# Sizes the engine indexes with: n_cubes * pes_per_cube <= 2**20 keeps the int32 event object
# pe * 11 + unit (and link pe * 4 + port) below 2**31, and the credit rings of
# 2 * 4 * n_pes * Q int64 below 2**43 entries (their byte count cannot wrap; Q <= 2**20 also
# fits the int32 credit counter of packet detail). sram.capacity_bytes is only compared with live
# bytes (int64): at most 2**62. clock_ghz in [1e-9, 1e3]: a clock of at least 1 Hz keeps
# seconds = cycles / (clock_ghz * 1e9) finite for every int64 cycle count.
# _worst_cases() below recomputes each of these figures from KEY_BOUNDS; the module refuses to
# import if one reaches its limit, so a bound cannot be raised past what the engine represents.

_OP_KEYS = tuple(f"vector.op_cycles.{f.name}" for f in fields(VectorOpCycles))

#: key -> (smallest, largest) value accepted; docs/hardware-model.md, "Key bounds".
KEY_BOUNDS: Mapping[str, tuple[int | float, int | float]] = ReadOnlyDict("KEY_BOUNDS", {
    "n_cubes": (1, 1 << 16),
    "pes_per_cube": (1, 1 << 12),
    "clock_ghz": (1e-9, 1e3),
    "gemm.rows": (1, 1 << 16),
    "gemm.cols": (1, 1 << 16),
    "gemm.accumulator_buffers": (1, 2),
    "vector.lanes": (1, 1 << 16),
    "vector.pipeline_latency": (1, 1 << 20),
    **{k: (1, 1 << 11) for k in _OP_KEYS},
    "dma.burst_bytes": (1, 1 << 30),
    "dma.channel_bytes_per_cycle": (1, 1 << 30),
    "dma.latency_cycles": (1, 1 << 20),
    "link.packet_bytes": (1, 1 << 30),
    "link.bytes_per_cycle": (1, 1 << 30),
    "link.hop_latency_cycles": (1, 1 << 20),
    "link.rx_queue_packets": (1, 1 << 20),
    "sram.capacity_bytes": (1, 1 << 62),
    "sram.bytes_per_cycle": (1, 1 << 30),
})  # (read-only: the derivation above is checked against these at import, not after an edit)
MAX_PES = 1 << 20  #: n_cubes * pes_per_cube
GEMM_SRAM_RATIO = 256  #: max(gemm.rows, gemm.cols) <= GEMM_SRAM_RATIO * sram.bytes_per_cycle
_CYCLE_LIMIT = 1 << 62  #: a command's duration stays below it (see above)


def _worst_cases() -> dict[str, tuple[int, int]]:
    """The derivation above as numbers: figure -> (worst value at KEY_BOUNDS, limit)."""
    hi = {k: b[1] for k, b in KEY_BOUNDS.items()}
    S, V, E = ENGINE_MAX_SIZE, ENGINE_MAX_VOLUME, ENGINE_MAX_ESIZE
    R, C = hi["gemm.rows"], hi["gemm.cols"]
    op = max(hi[k] for k in _OP_KEYS)
    lat = hi["vector.pipeline_latency"]
    log2_lanes = (hi["vector.lanes"] - 1).bit_length()
    P = max(hi["link.packet_bytes"], hi["dma.burst_bytes"])
    h = max(hi["link.hop_latency_cycles"], hi["dma.latency_cycles"])
    T = _CYCLE_LIMIT
    return {
        "dot, array term": (V + 2 * max(2 * V, max(R, C) * S), T),
        "dot, SRAM term": (E * 4 * V + E * GEMM_SRAM_RATIO * (V + S) + V, T),
        "dot, SRAM numerator": ((R + C) * S * E + hi["sram.bytes_per_cycle"], T),
        "elementwise": (S * op + lat, T),
        "row reduction": (V * op + S * log2_lanes + lat, T),
        "leading-axis reduction": (V * op + lat, T),
        "DMA command alone": (S + h, T),
        "link message serialisation": (S + P, T),
        "link packet past the horizon": (ENGINE_HORIZON + P + 2 * h, 1 << 63),
        "event object pe * 11 + unit": (MAX_PES * 11, 1 << 31),
        "credit ring entries": (2 * 4 * MAX_PES * hi["link.rx_queue_packets"], 1 << 60),
        "packet-detail credits": (hi["link.rx_queue_packets"], 1 << 31),
    }


def _numeric_keys(types: Mapping[str, type], prefix: str = "") -> set[str]:
    """Dotted names of the int and float keys, from the declared types (no config is built:
    building one needs KEY_BOUNDS to be complete)."""
    out = set()
    for name, t in types.items():
        if dataclasses.is_dataclass(t):
            d = t()
            out |= _numeric_keys({f.name: type(getattr(d, f.name)) for f in fields(t)}, prefix + name + ".")
        elif t is not str:
            out.add(prefix + name)
    return out


def _check_bounds_at_import() -> None:
    leaves = _numeric_keys(_TOP_TYPES)
    if leaves != set(KEY_BOUNDS):
        raise ImportError(f"kernbench.hw.config: KEY_BOUNDS must bound exactly the numeric keys; "
                          f"missing {sorted(leaves - set(KEY_BOUNDS))}, "
                          f"unknown {sorted(set(KEY_BOUNDS) - leaves)}")
    for what, (worst, limit) in _worst_cases().items():
        if worst >= limit:
            raise ImportError(f"kernbench.hw.config: KEY_BOUNDS let the engine's {what} reach "
                              f"{worst} (limit {limit}): lower the bounds")


_check_bounds_at_import()


def _show_bound(b: int | float) -> str:
    if isinstance(b, int) and b > 1024 and b & (b - 1) == 0:
        return f"{b} (2**{b.bit_length() - 1})"
    return f"{b:g}" if isinstance(b, float) else str(b)


def _shown_number(v) -> str:
    """``repr(v)``, cut to 120 characters; for an int whose repr raises (more than 4300 digits:
    Python's int-to-text limit) its size in bits, for anything else whose repr raises (a
    container holding such an int) a placeholder: a refusal should neither raise nor echo it
    whole."""
    try:
        r = repr(v)
    except Exception:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f"{'a negative' if v < 0 else 'an'} int of {abs(int(v)).bit_length():,} bits"
        return "(too long to show)"
    return r if len(r) <= 120 else r[:117] + "..."


def _number(key: str, want: type, v: Any) -> int | float:
    """``v`` as a plain int or float for a key of type ``want``, within KEY_BOUNDS[key].

    numpy integer and floating scalars count as numbers (a grid built with numpy or pandas
    yields them); bools (Python or numpy) are refused, as are NaN and inf."""
    t = type(v)  # (by type: a proxy's __class__ says int, and int() of it raised: a review)
    if issubclass(t, (bool, np.bool_, np.timedelta64)):  # (timedelta64: a numpy int by class)
        ok = False
    elif want is int:
        ok = issubclass(t, (int, np.integer))
    else:  # an int stands for a float
        ok = issubclass(t, (int, float, np.integer, np.floating))
    if not ok:
        raise HardwareConfigError(f"hardware key '{key}' must be {want.__name__}, got {type(v).__name__} "
                                  f"{_shown_number(v)}")
    lo, hi = KEY_BOUNDS[key]
    if want is int:
        v = int(v)
    else:
        try:
            v = float(v)
        except OverflowError:  # an int beyond any float, so beyond the bound (or below 0)
            raise HardwareConfigError(
                f"hardware key '{key}' must be "
                + ("positive" if int(v) < 0 else f"at most {_show_bound(hi)}")
                + f", got {_shown_number(v)}") from None
        if not math.isfinite(v):
            raise HardwareConfigError(f"hardware key '{key}' must be a finite number, got {_shown_number(v)}")
    if v <= 0:
        raise HardwareConfigError(f"hardware key '{key}' must be positive, got {_shown_number(v)}")
    if v < lo:
        raise HardwareConfigError(f"hardware key '{key}' must be at least {_show_bound(lo)}, got {_shown_number(v)}")
    if v > hi:
        raise HardwareConfigError(f"hardware key '{key}' must be at most {_show_bound(hi)}, got {_shown_number(v)}")
    return v


def _checked_fields(cfg: Any, prefix: str, frozen: bool = False) -> dict[str, Any]:
    """The fields of ``cfg`` whose value had to be converted (numpy scalar -> int/float, a
    sub-config holding one -> a converted copy), after checking each field's type and bounds.
    Types are the declared ones: a sub-config's defaults, or _TOP_TYPES for HardwareConfig.
    ``frozen``: ``cfg`` was built already, so a value needing conversion is an error."""
    default = type(cfg)() if prefix else None
    changed = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        key = prefix + f.name
        want = type(getattr(default, f.name)) if default is not None else _TOP_TYPES.get(f.name)
        if want is None:
            continue
        if dataclasses.is_dataclass(want):
            if type(v) is not want:
                raise HardwareConfigError(f"hardware key '{key}' must be a {want.__name__}, got {type(v).__name__}")
            sub = _checked_fields(v, key + ".", frozen)
            new = dataclasses.replace(v, **sub) if sub else v  # a copy: the caller's object stays as given
        elif want is str:
            if not isinstance(v, str):
                raise HardwareConfigError(f"hardware key '{key}' must be str, got {type(v).__name__} {short_repr(v)}")
            new = str(v)
            if key == "name" and (not new or len(new) > MAX_NAME or _UNSHOWN.search(new)):
                raise HardwareConfigError(
                    f"hardware key 'name' must be 1 to {MAX_NAME} characters on one line (no control "
                    f"character, line separator, bidirectional override or lone surrogate), got {short_repr(new[:80])}")
        else:
            new = _number(key, want, v)
        if new is not v:  # int(), float() and str() of an exact int, float or str return it as is
            if frozen and not dataclasses.is_dataclass(want):
                raise HardwareConfigError(
                    f"hardware key '{key}' holds {type(v).__name__} {short_repr(v)}, set after the config was "
                    f"built (a HardwareConfig holds plain {want.__name__}s)")
            changed[f.name] = new
    return changed


def check_bounds(cfg: "HardwareConfig") -> None:
    """Check ``cfg`` again as its construction did (types, KEY_BOUNDS, the joint bounds), for
    code about to hand it to the engine: a frozen dataclass can still be changed with
    object.__setattr__, and the engine trusts every value it is given."""
    if not isinstance(cfg, HardwareConfig):
        raise HardwareConfigError(f"hw must be a HardwareConfig, got {type(cfg).__name__}")
    _checked_fields(cfg, "", frozen=True)
    _check_joint_bounds(cfg)


def _check_joint_bounds(cfg: "HardwareConfig") -> None:
    """Bounds on products of keys (see the derivation above KEY_BOUNDS)."""
    if cfg.n_cubes * cfg.pes_per_cube > MAX_PES:
        raise HardwareConfigError(
            f"hardware keys 'n_cubes' x 'pes_per_cube' must make at most {_show_bound(MAX_PES)} PEs, "
            f"got {cfg.n_cubes} x {cfg.pes_per_cube} = {cfg.n_cubes * cfg.pes_per_cube}")
    s = cfg.sram.bytes_per_cycle
    for key, v in (("gemm.rows", cfg.gemm.rows), ("gemm.cols", cfg.gemm.cols)):
        if v > GEMM_SRAM_RATIO * s:
            raise HardwareConfigError(
                f"hardware key '{key}' must be at most {GEMM_SRAM_RATIO} * 'sram.bytes_per_cycle' = "
                f"{GEMM_SRAM_RATIO} * {s} = {GEMM_SRAM_RATIO * s}, got {v} (past it a dot's SRAM operand "
                f"bound can pass 2**62 cycles; raise sram.bytes_per_cycle to at least "
                f"{-(-v // GEMM_SRAM_RATIO)})")


def _build(cls: type, data: Mapping[str, Any], prefix: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise HardwareConfigError(f"{source}: hardware key '{prefix.rstrip('.')}' must be a table")
    known = {f.name: f for f in fields(cls)}
    defaults = cls()
    kwargs = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise HardwareConfigError(f"{source}: hardware keys are names (str), got "
                                      f"{type(key).__name__} {short_repr(key)}" + (f" in '{prefix[:-1]}'" if prefix else ""))
        full = prefix + key
        if key not in known:
            raise HardwareConfigError(f"{source}: {unknown_key(full)}")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, full + ".", source)
            continue
        kwargs[key] = value  # type and bounds: checked by HardwareConfig.__post_init__, by full key
    try:
        return cls(**kwargs)
    except HardwareConfigError as e:
        raise HardwareConfigError(f"{source}: {e}") from None


def from_dict(data: Mapping[str, Any], source: str = "config") -> HardwareConfig:
    """Build a HardwareConfig from nested dicts, rejecting unknown keys and wrong types by name."""
    return _build(HardwareConfig, data, "", source)


def _preset_dir():
    return resources.files("kernbench.hw").joinpath("presets")


def list_presets() -> list[str]:
    """Names of the TOML presets shipped in the package."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".toml"))


def load_hw(
    hw: "str | Path | HardwareConfig | Mapping[str, Any]" = "default",
    overrides: Mapping[str, Any] | None = None,
) -> HardwareConfig:
    """Resolve a preset name, a TOML path, a dict, or a config object, then apply overrides
    (dotted keys, ``{"link.packet_bytes": 64}``). Every value is checked against KEY_BOUNDS
    and the joint bounds (docs/hardware-model.md, "Key bounds"). Raises HardwareConfigError (a
    ValueError) naming the key, file or preset: an unknown preset or key, a file that does not
    exist or is not TOML, a value of the wrong type or out of bounds."""
    if isinstance(hw, HardwareConfig):
        cfg = hw
    elif isinstance(hw, Mapping):
        # (dotted keys as the overrides take them: {"vector.lanes": 16} as {"vector": {...}})
        cfg = from_dict(_nested([hw], "config"))
    else:
        text, source = _read_toml_source(hw)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise HardwareConfigError(f"{source}: not valid TOML: {e}") from None
        except RecursionError:  # (tomllib recurses per nesting level)
            raise HardwareConfigError(f"{source}: nested too deeply to read (a hardware file is "
                                      f"at most a few tables deep)") from None
        except ValueError as e:  # (an int of more than 4300 digits: Python's int-from-text limit)
            raise HardwareConfigError(f"{source}: a number TOML cannot read here ({e}); hardware "
                                      f"values are at most 2**62") from None
        cfg = from_dict(data, source=source)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise HardwareConfigError(f"overrides must be a dict of hardware keys to values, got "
                                  f"{type(overrides).__name__} {short_repr(overrides)}")
    if overrides:
        cfg = cfg.with_overrides(overrides)
    return cfg


def _read_toml_source(hw: "str | Path") -> tuple[str, str]:
    if not isinstance(hw, (str, Path)):
        raise HardwareConfigError(f"hw must be a preset's name, a TOML file's path, a dict or a "
                                  f"HardwareConfig, got {type(hw).__name__}")
    s = str(hw)
    # The rule: a Path, or a name with a path separator or ending in .toml (any case: My.TOML),
    # is a file; any other name is a preset's (Path("default") is ./default, not the preset).
    if isinstance(hw, Path) or s.lower().endswith(".toml") or "/" in s or "\\" in s:
        path = Path(s)
        try:
            exists, is_file = path.exists(), path.is_file()
        except OSError as e:  # (a name too long for the file system, ...)
            raise HardwareConfigError(f"hardware file '{s[:200]}': {e.strerror}") from None
        if not is_file:
            raise HardwareConfigError(f"hardware file '{s}' " + ("is not a file" if exists else "does not exist"))
        return _decode_toml(path, f"hardware file '{s}'"), str(path)
    entry = _preset_dir().joinpath(s + ".toml")
    try:
        known = entry.is_file()
    except OSError:  # (a name too long for the file system: no preset's)
        known = False
    if not known:
        try:  # (a file of that name: the user meant it, and needs the rule that makes it a path)
            hint = (f"; for the file '{s}' write './{s}' (a hardware file is named with a '/' or "
                    f"a .toml suffix)") if Path(s).is_file() else ""
        except OSError:
            hint = ""
        raise HardwareConfigError(
            f"unknown hardware preset '{s[:200]}' (presets: {', '.join(list_presets())}){hint}"
        )
    return _decode_toml(entry, f"hardware preset '{s}'"), f"preset '{s}'"


def _decode_toml(entry, what: str) -> str:
    """The text of a TOML file. TOML is UTF-8 by definition, so it is decoded as UTF-8 whatever
    the locale (read_text() would use the locale's encoding); a leading byte-order mark is
    skipped."""
    try:
        raw = entry.read_bytes()
    except OSError as e:
        raise HardwareConfigError(f"{what} cannot be read: {e.strerror or e}") from None
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows editors write one)
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HardwareConfigError(
            f"{what} is not UTF-8 text (a TOML file must be UTF-8): byte 0x{raw[e.start]:02x} at "
            f"offset {e.start} is {e.reason}"
        ) from None
