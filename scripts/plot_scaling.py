#!/usr/bin/env python3
"""Plots review latency against object size from the CSV that
`cargo bench --bench admission` writes (target/perf/admission-scaling.csv).

    pip install matplotlib
    python3 scripts/plot_scaling.py [CSV] [PNG]

Defaults: target/perf/admission-scaling.csv -> docs/performance-scaling.png.
"""

import csv
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SERIES = [
    ("answer_us", "rollguard full review (decode, evaluate, patch, encode)", "o-"),
    ("engine_mutate_us", "rollguard engine alone (mutate)", "s--"),
    ("engine_validate_us", "rollguard engine alone (validate)", "^--"),
    ("floor_us", "floor: parse JSON + allowed response", "x:"),
]


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target/perf/admission-scaling.csv"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/performance-scaling.png"
    with source.open(newline="") as f:
        rows = list(csv.DictReader(f))
    scaling = sorted(
        (r for r in rows if r["body"].startswith("pod-")), key=lambda r: int(r["bytes"])
    )
    if not scaling:
        print(f"{source}: no pod-N rows", file=sys.stderr)
        return 1

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    kb = [int(r["bytes"]) / 1024 for r in scaling]
    for column, label, style in SERIES:
        ax.plot(kb, [float(r[column]) for r in scaling], style, label=label, markersize=5)
    for r in scaling:
        ax.annotate(
            f'{r["containers"]} ctr',
            (int(r["bytes"]) / 1024, float(r["answer_us"])),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=8,
        )
    for r in rows:
        if not r["body"].startswith("pod-"):
            ax.plot(int(r["bytes"]) / 1024, float(r["answer_us"]), "*", markersize=10, color="black")
            ax.annotate(
                r["body"],
                (int(r["bytes"]) / 1024, float(r["answer_us"])),
                textcoords="offset points",
                xytext=(6, -10),
                fontsize=8,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([2, 3, 5, 10, 20, 40, 80, 160]))
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator([10, 20, 50, 100, 200, 500, 1000, 2000, 5000]))
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("AdmissionReview body (KiB, compact JSON)")
    ax.set_ylabel("time per review (µs, median)")
    ax.set_title("rollguard review cost vs object size (Pod with N containers)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
