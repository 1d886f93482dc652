"""Figures a person reads: learning curves per stage."""

from __future__ import annotations

from pathlib import Path


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
