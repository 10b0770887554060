"""Hardware configuration: frozen dataclasses loaded from TOML presets.

Every field carries its unit in its name or docstring; docs/hardware-model.md gives the formulas
that use them. A config is immutable; derive variants with :meth:`HardwareConfig.with_overrides`.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

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
]


class HardwareConfigError(ValueError):
    """A hardware config key is unknown, has the wrong type, or a non-positive size."""


@dataclass(frozen=True)
class GemmConfig:
    """Output-stationary systolic array of ``rows`` x ``cols`` MAC cells (f16/bf16 in, f32 acc)."""

    rows: int = 32  #: R, MAC rows (output rows per fold)
    cols: int = 32  #: C, MAC columns (output columns per fold)


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
    """SFR link port (E/W; N/S reserved): full duplex, packetised, credit flow control."""

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
        _check_types(self, "")
        _check_positive(self, "")

    # -- derived figures ---------------------------------------------------------------
    @property
    def n_pes(self) -> int:
        return self.n_cubes * self.pes_per_cube

    def seconds(self, cycles: int | float) -> float:
        return float(cycles) / (self.clock_ghz * 1e9)

    @property
    def peak_flops_per_cycle_pe(self) -> int:
        """MACs of the array x 2 (multiply + add) per cycle; the GEMM roofline of one PE."""
        return 2 * self.gemm.rows * self.gemm.cols

    def peak_tflops(self, n_pes: int | None = None) -> float:
        n = self.n_pes if n_pes is None else n_pes
        return self.peak_flops_per_cycle_pe * n * self.clock_ghz * 1e9 / 1e12

    def memory_gbps(self, n_cubes: int | None = None) -> float:
        n = self.n_cubes if n_cubes is None else n_cubes
        return self.dma.channel_bytes_per_cycle * n * self.clock_ghz

    def link_gbps(self) -> float:
        return self.link.bytes_per_cycle * self.clock_ghz

    # -- construction ------------------------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any] | None = None, **kw: Any) -> "HardwareConfig":
        """A copy with fields replaced. Keys are dotted paths: ``{"link.bytes_per_cycle": 64}``;
        keyword form uses ``__`` for the dot: ``with_overrides(link__bytes_per_cycle=64)``."""
        items = dict(overrides or {})
        items.update({k.replace("__", "."): v for k, v in kw.items()})
        data = to_dict(self)
        for key, value in items.items():
            _set_dotted(data, key, value)
        return from_dict(data, source="overrides")

    def to_dict(self) -> dict:
        return to_dict(self)


#: HardwareConfig's own field types (its sub-configs check themselves against their defaults)
_TOP_TYPES = {"name": str, "n_cubes": int, "pes_per_cube": int, "clock_ghz": float, "gemm": GemmConfig,
              "vector": VectorConfig, "dma": DmaConfig, "link": LinkConfig, "sram": SramConfig}


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise HardwareConfigError(f"unknown hardware key '{key}'")
        node = node[p]
    if parts[-1] not in node:
        raise HardwareConfigError(f"unknown hardware key '{key}'")
    node[parts[-1]] = value


def _check_types(cfg: Any, prefix: str) -> None:
    """Field types as declared (ints may stand for floats), whoever built the dataclass."""
    default = type(cfg)() if prefix else None
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        key = prefix + f.name
        want = type(getattr(default, f.name)) if default is not None else _TOP_TYPES.get(f.name)
        if want is None:
            continue
        if dataclasses.is_dataclass(want):
            if type(v) is not want:
                raise HardwareConfigError(f"hardware key '{key}' must be a {want.__name__}, got {type(v).__name__}")
            _check_types(v, key + ".")
        elif want is float:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise HardwareConfigError(f"hardware key '{key}' must be float, got {type(v).__name__} {v!r}")
        elif not isinstance(v, want) or isinstance(v, bool):
            raise HardwareConfigError(f"hardware key '{key}' must be {want.__name__}, got {type(v).__name__} {v!r}")


def _check_positive(cfg: Any, prefix: str) -> None:
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(v):
            _check_positive(v, key + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if not (v > 0) or (isinstance(v, float) and not math.isfinite(v)):
                raise HardwareConfigError(f"hardware key '{key}' must be positive, got {v!r}")


def _build(cls: type, data: Mapping[str, Any], prefix: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise HardwareConfigError(f"{source}: hardware key '{prefix.rstrip('.')}' must be a table")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = prefix + key
        if key not in known:
            raise HardwareConfigError(f"{source}: unknown hardware key '{full}'")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, full + ".", source)
            continue
        expected = type(default)
        ok = isinstance(value, expected) and not isinstance(value, bool)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise HardwareConfigError(
                f"{source}: hardware key '{full}' must be {expected.__name__}, "
                f"got {type(value).__name__} {value!r}"
            )
        kwargs[key] = value
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
    """Resolve a preset name, a TOML path, a dict, or a config object, then apply overrides."""
    if isinstance(hw, HardwareConfig):
        cfg = hw
    elif isinstance(hw, Mapping):
        cfg = from_dict(hw)
    else:
        text, source = _read_toml_source(hw)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise HardwareConfigError(f"{source}: not valid TOML: {e}") from None
        cfg = from_dict(data, source=source)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    return cfg


def _read_toml_source(hw: "str | Path") -> tuple[str, str]:
    s = str(hw)
    if s.endswith(".toml") or "/" in s or "\\" in s:
        path = Path(s)
        if not path.is_file():
            raise HardwareConfigError(f"hardware file '{s}' does not exist")
        return path.read_text(), str(path)
    entry = _preset_dir().joinpath(s + ".toml")
    if not entry.is_file():
        raise HardwareConfigError(
            f"unknown hardware preset '{s}' (presets: {', '.join(list_presets())})"
        )
    return entry.read_text(), f"preset '{s}'"
