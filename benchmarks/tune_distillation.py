"""Choose the distillation weight and temperature on the validation split, never on test.

For each (weight, T) of the grid, trains a run on FEATURES with the demo's training settings
(seeds 0, 1, 2) and reads the validation accuracy of the two stages that use them: the
distilled visual-only student (fusion_distill) and the generator trained through the
classifier (generator_av). Prints the grid (mean over seeds, and the seed-to-seed spread) and
the cell with the best mean of the two; config.py's TrainConfig keeps the defaults it chose.

    python benchmarks/tune_distillation.py /tmp/demo_subtle/features          # ~20 min on 2 cores
    python benchmarks/tune_distillation.py FEATURES --weights 1 --temperatures 2 --seeds 0   # smoke run
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from afgen.config import DemoConfig, TrainConfig
from afgen.learning.train import train

STAGES = ("fusion_distill", "generator_av")


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", type=Path)
    ap.add_argument("--weights", type=floats, default=[0.5, 1.0, 2.0])
    ap.add_argument("--temperatures", type=floats, default=[1.0, 2.0, 4.0])
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    demo = DemoConfig()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="afgen-tune-") as tmp:
        for w in args.weights:
            for t in args.temperatures:
                cfg = TrainConfig(epochs=demo.epochs, patience=demo.patience, hidden=demo.hidden,
                                  oof_folds=demo.oof_folds, seed=seeds[0], seed_workers=min(2, len(seeds)),
                                  distill_weight=w, distill_temperature=t)
                start = time.perf_counter()
                result = train(args.features, Path(tmp) / f"w{w}-t{t}", cfg, show_progress=False, seeds=seeds)
                acc = np.array([[result.per_seed[s][stage]["val_acc"] for s in seeds] for stage in STAGES])
                rows.append((w, t, acc))
                print(f"weight {w:g}, T {t:g}: " + ", ".join(
                    f"{stage} {100 * a.mean():.1f}" for stage, a in zip(STAGES, acc))
                    + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\nvalidation accuracy (%), mean over seeds {seeds} (± std across seeds), {args.features}\n")
    print("| weight | T | " + " | ".join(STAGES) + " | mean of both |\n|---:|---:|" + "---:|" * (len(STAGES) + 1))
    for w, t, acc in rows:
        cells = " | ".join(f"{100 * a.mean():.1f} ± {100 * a.std():.1f}" for a in acc)
        print(f"| {w:g} | {t:g} | {cells} | {100 * acc.mean():.1f} |")
    top = max(round(100 * r[2].mean(), 1) for r in rows)
    best = [f"(weight {w:g}, T {t:g})" for w, t, acc in rows if round(100 * acc.mean(), 1) == top]
    spread = top - min(round(100 * r[2].mean(), 1) for r in rows)
    seed_std = 100 * float(np.mean([r[2].mean(0).std() for r in rows]))
    print(f"\nbest on validation ({top:.1f}): {', '.join(best)}; the grid spans {spread:.1f} points, "
          f"against a seed-to-seed std of {seed_std:.1f}")


if __name__ == "__main__":
    main()
