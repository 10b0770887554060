"""Turn a saved pytest-benchmark run of the suite into docs/benchmarks.md's tables and plot.

    pytest bench/ --benchmark-only --benchmark-json=results.json
    python bench/make_tables.py results.json            # print the markdown
    python bench/make_tables.py results.json --write    # also rewrite the generated sections of
                                                        # docs/benchmarks.md and the PNG plot

    KERNBENCH_BENCH_TUNE=1 pytest bench/test_milestone_gqa_llama70b.py -k tuned --benchmark-only \
        --benchmark-json=tuned.json                     # the tuned rows (chosen blocks, gain)
    python bench/make_tables.py tuned.json --write      # their section only (milestone-tuned)

Generated sections sit between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in
docs/benchmarks.md; the rest of that file is written by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "img" / "latency_vs_context.png"
MESH_ORDER = {"1cube": 0, "8cubes": 1, "64cubes": 2}


def _mesh_of(name: str) -> str:
    return next(m for m in MESH_ORDER if f"-{m}-" in name)


TUNED = "test_milestone_gqa_llama70b_tuned"


def milestone_rows(data: dict, tuned: bool = False) -> list[dict]:
    """The milestone's rows (``tuned``: those of test_milestone_gqa_llama70b_tuned instead)."""
    rows = []
    for b in data["benchmarks"]:
        if not b["name"].startswith("test_milestone_gqa_llama70b") or b["name"].startswith(TUNED) != tuned:
            continue
        e = dict(b["extra_info"])
        e["mesh"] = _mesh_of(b["name"])
        e["wall_s"] = b["stats"]["mean"]
        e["timer"] = "CPU" if "process_time" in str(b.get("options", {}).get("timer", "")) else "wall"
        rows.append(e)
    rows.sort(key=lambda r: (r["kind"] != "prefill", bool(r.get("causal")), r.get("S_q", 1) if r["kind"] == "decode" else 0,
                             MESH_ORDER[r["mesh"]], r["context"]))
    return rows


def _ctx(c: int) -> str:
    return f"{c // 1024}K"


def milestone_table(rows: list[dict]) -> str:
    head = ("| kind | mesh | context | ranks | cycles | latency | tokens/s | achieved TFLOP/s | roofline | "
            "attainable (bound) | GEMM util | link util | peak SRAM / PE | commands | sim " + (rows[0]["timer"] if rows else "wall") + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        sram = f"{r['peak_sram_bytes'] / 2**20:.1f} MiB"
        if not r["sram_fits"]:
            sram += f" **over {r['sram_capacity_bytes'] / 2**20:.0f} MiB**"
        lat = r["latency_us"]
        lat_s = f"{lat / 1000:,.2f} ms" if lat >= 1000 else f"{lat:,.1f} us"
        kind = r["kind"] + (" causal" if r.get("causal") else "")
        if r["kind"] == "decode":
            kind += f" S_q {r.get('S_q', 1)}"
        lines.append(
            f"| {kind} | {r['mesh']} | {_ctx(r['context'])} | {r['n_ranks']} | {r['cycles']:,} | "
            f"{lat_s} | {r['tokens_per_s']:,.0f} | {r['achieved_tflops']:.2f} of {r['peak_tflops']:.1f} | "
            f"{100 * r['roofline_fraction']:.1f}% {r['roofline']} | "
            f"{100 * r['attainable_fraction']:.1f}% ({r['binding']}) | {100 * r['gemm_util']:.0f}% | "
            f"{100 * r['link_util']:.0f}% | {sram} | {r['commands']:,} | {r['wall_s']:.2f} s |"
        )
    return "\n".join(lines)


def _blocks(b) -> str:
    return str(tuple(b))


def tuned_table(rows: list[dict]) -> str:
    """The tuned rows: the blocks chosen, the default blocks' cycles, the gain, the tuner's cost."""
    head = ("| kind | mesh | context | default blocks | default cycles | tuned blocks | tuned cycles | gain | "
            "configs (over SRAM) | peak SRAM / PE | tuning CPU / wall |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        kind = r["kind"] + (" causal" if r.get("causal") else "")
        if r["kind"] == "decode":
            kind += f" S_q {r.get('S_q', 1)}"
        default = f"{r['default_cycles']:,}" if r["default_cycles"] is not None else "over SRAM"
        gain = f"{r['gain']:.4f}x" if r["gain"] is not None else "-"
        cost = ("cached" if r["tune_from_cache"] else
                f"{r['tune_cpu_s']:.1f} s / {r['tune_wall_s']:.1f} s ({r['tune_launches']} launch{'es' if r['tune_launches'] != 1 else ''})")
        lines.append(
            f"| {kind} | {r['mesh']} | {_ctx(r['context'])} | {_blocks(r['default_blocks'])} | {default} | "
            f"**{_blocks(r['blocks'])}** | {r['cycles']:,} | {gain} | {r['tune_configs']} ({r['tune_over_sram']}) | "
            f"{r['peak_sram_bytes'] / 2**20:.1f} MiB | {cost} |"
        )
    return "\n".join(lines)


def speed_table(data: dict) -> str:
    """The simulator's own speed: every non-milestone benchmark with its extra_info figures."""
    timers = {str(b.get("options", {}).get("timer", "")) for b in data["benchmarks"]}
    what = "mean CPU" if timers and all("process_time" in t for t in timers) else "mean wall"
    lines = [f"| benchmark | {what} | figures |", "|---|---|---|"]
    for b in data["benchmarks"]:
        if b["name"].startswith("test_milestone_gqa_llama70b"):
            continue
        e = b.get("extra_info", {})
        keep = {k: v for k, v in e.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        fig = ", ".join(f"{k} {v:,.3g}" if isinstance(v, float) else f"{k} {v:,}" if isinstance(v, int)
                        else f"{k} {v}" for k, v in list(keep.items())[:8])
        lines.append(f"| {b['name']} | {b['stats']['mean']:.4f} s | {fig} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind in zip(axes, ("prefill", "decode")):
        for mesh in MESH_ORDER:
            pts = sorted((r["context"], r["latency_us"]) for r in rows if r["kind"] == kind and r["mesh"] == mesh
                         and not r.get("causal") and r.get("S_q", 1) in (1, r["context"] // r["n_ranks"]))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=mesh)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel("simulated latency (us)")
        ax.set_title(f"Llama-70B GQA attention, {kind}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replace_section(text: str, name: str, body: str) -> str:
    pat = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"{DOC} has no <!-- generated:{name} --> section")
    return pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="pytest-benchmark JSON (--benchmark-json)")
    ap.add_argument("--write", action="store_true", help="rewrite docs/benchmarks.md sections and the plot")
    args = ap.parse_args(argv)
    data = json.loads(Path(args.results).read_text())
    rows = milestone_rows(data)
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", "?")
    stamp = f"Run {data.get('datetime', '?')} on {cpu}, Python {machine.get('python_version', '?')}."
    tables = {"milestone": stamp + "\n\n" + milestone_table(rows), "speed": stamp + "\n\n" + speed_table(data)}
    tuned = milestone_rows(data, tuned=True)
    if tuned:  # (only when the run had them: KERNBENCH_BENCH_TUNE=1; else that section stays)
        tables["milestone-tuned"] = stamp + "\n\n" + tuned_table(tuned)
    # a run of some benchmarks only (the tuned rows alone) leaves the other sections as they are
    if not rows:
        tables.pop("milestone")
    if all(b["name"].startswith("test_milestone_gqa_llama70b") for b in data["benchmarks"]):
        tables.pop("speed")
    for name, body in tables.items():
        print(f"## {name}\n\n{body}\n")
    if args.write:
        text = DOC.read_text()
        for name, body in tables.items():
            text = replace_section(text, name, body)
        DOC.write_text(text)
        if rows:
            plot(rows, PLOT)
        print(f"wrote {DOC}" + (f" and {PLOT}" if rows else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
