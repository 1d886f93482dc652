"""Every backbone runtime available here, side by side, in one process: images per second and
the lowest cosine of its features to fp32 eager torch, on the same batches, and what
`--runtime auto` chooses from them and why.

    python benchmarks/bench_runtimes.py [--backbones resnet50,efficientnet_lite0] [--batches 6] [--quick]

By default ResNet50 (the paper's backbone) and beside it efficientnet_lite0, the ImageNet
backbone that works offline (the demo's). Random weights (the weights change neither the speed
nor the cosine), 224 px, batch 16, threads as `afgen extract` gives the backbone with one
producer on this machine's cores. The table is
`--runtime auto`'s own measurement (encoders/runtime_choice.py), with more batches.
"""

from __future__ import annotations

import argparse
import os

import torch

from afgen.config import RUNTIME_MIN_COSINE
from afgen.encoders.runtime_choice import Choice, cpu_description, measure


def table(trials, choice: Choice | None = None) -> str:
    """The trials as a markdown table, fastest eligible first marked as auto's choice."""
    base = next((t.images_per_s for t in trials if (t.runtime, t.precision) == ("torch", "fp32")), None)
    lines = ["| runtime | img/s | vs torch fp32 | min cosine to torch fp32 | auto |", "|---|---:|---:|---:|---|"]
    for t in trials:
        mark = "**chosen**" if choice and (t.runtime, t.precision) == (choice.runtime, choice.precision) else (
            "failed" if t.error else ("refused" if not t.eligible else ""))
        ratio = f"{t.images_per_s / base:.2f}x" if base and not t.error else "-"
        lines.append(f"| {t.label} | {t.images_per_s:.1f} | {ratio} | {t.min_cosine:.7f} | {mark} |")
    return "\n".join(lines)


def choose(trials) -> Choice:
    eligible = [t for t in trials if t.eligible]
    best = max(eligible, key=lambda t: t.images_per_s)
    return Choice(best.runtime, best.precision, tuple(trials))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default="resnet50,efficientnet_lite0", help="comma-separated, one table each")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="112 px, 2 batches (a smoke run, not for figures)")
    args = ap.parse_args()
    size, batches = (112, 2) if args.quick else (224, args.batches)
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - 1) if cores > 2 else cores)
    for name in args.backbones.split(","):
        print(f"\n{cpu_description()}; {torch.get_num_threads()} backbone threads; {name} at {size} px, batch 16")
        trials = measure(name, (size, size), 16, "auto", trials=batches)
        choice = choose(trials)
        print(table(trials, choice))
        print(f"`--runtime auto` here: {choice.reason()} (never below cosine {RUNTIME_MIN_COSINE})")


if __name__ == "__main__":
    main()
