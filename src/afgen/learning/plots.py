"""Figures a person reads: learning curves per stage, accuracy against the missing-audio rate,
the confusion matrix of the paper's method."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(metrics_csv: Path, out: Path, title: str) -> None:
    """Loss and accuracy per epoch (train and validation) from Lightning's CSV log."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics_csv.is_file():
        return
    rows = list(csv.DictReader(metrics_csv.open()))
    series: dict[str, dict[int, float]] = {}
    for row in rows:
        for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
            if row.get(key):
                series.setdefault(key, {})[int(row["epoch"])] = float(row[key])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, kind in zip(axes, ("loss", "acc")):
        for split in ("train", "val"):
            data = series.get(f"{split}_{kind}", {})
            if data:
                ax.plot(list(data), list(data.values()), label=split, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if kind == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title}: learning curves")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_rates(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results["rates"])
    rates = [float(r) for r in keys]
    fig, ax = plt.subplots(figsize=(11, 5))
    for i, (key, name) in enumerate(results["methods"].items()):
        cells = [results["rates"][r][key] for r in keys]
        value = [100 * c["top1"]["value"] for c in cells]
        colour = plt.cm.tab10(i % 10)
        ax.plot(rates, value, marker="o", label=name, color=colour, lw=2 if key == results["paper_method"] else 1.2)
        ax.fill_between(rates, [100 * c["top1"]["low"] for c in cells], [100 * c["top1"]["high"] for c in cells],
                        color=colour, alpha=0.12, lw=0)
        if len(results["seeds"]) > 1:  # the spread over seeds: one dot per seed
            for j, c in enumerate(cells):
                ax.scatter([rates[j]] * len(c["per_seed"]), [100 * s["value"] for s in c["per_seed"]],
                           s=6, color=colour, alpha=0.6)
    ax.set_xlabel("missing-audio rate r")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"Accuracy vs missing audio ({results['split']}, {results['n_clips']} clips, "
                 f"{len(results['seeds'])} seed(s)); bands: 95% interval, dots: seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, classes: list[str], out: Path, rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(classes), 1 + 0.55 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"AV + generated audio, r = {rate:g} (all seeds and draws)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
