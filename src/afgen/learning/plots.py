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
    """Accuracy against the missing-audio rate for the lines a reader needs: the paper's method,
    the best visual-only row, the best other method at the highest rate, the upper bound with
    real audio, and the visual ceiling when the data has one; bands: 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results["rates"])
    rates = [float(r) for r in keys]
    last = keys[-1]
    paper = results.get("paper_method")
    bounds = list(results.get("not_competing", ()))
    shown = [k for k in (paper, results.get("best_visual_only", {}).get(last)) if k]
    others = sorted((k for k in results["methods"] if k not in shown and k not in bounds),
                    key=lambda k: -results["rates"][last][k]["top1"]["value"])
    shown += others[:1 if shown else 2] + bounds
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, key in enumerate(shown):
        cells = [results["rates"][r][key] for r in keys]
        colour = plt.cm.tab10(i)
        ax.plot(rates, [100 * c["top1"]["value"] for c in cells], marker="o", color=colour,
                lw=2.2 if key == paper else 1.4, ls="--" if key in bounds else "-", label=results["methods"][key])
        ax.fill_between(rates, [100 * c["top1"]["low"] for c in cells], [100 * c["top1"]["high"] for c in cells],
                        color=colour, alpha=0.15, lw=0)
    if results.get("visual_ceiling") is not None:
        ax.axhline(100 * results["visual_ceiling"], color="grey", ls=":", lw=1.5, label="visual ceiling (the data's)")
    ax.set_xlabel("missing-audio rate r")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"Accuracy vs missing audio ({results['split']}, {results['n_clips']} clips, "
                 f"{len(results['seeds'])} seed(s)); bands: 95% intervals", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_forest(results: dict, out: Path, rates: tuple[str, ...] = ("0", "0.5", "1")) -> None:
    """Paired differences from the paper's method (simultaneous 95% intervals) for every row,
    one panel per rate: what is resolvably better or worse reads off the zero line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paper = results.get("paper_method")
    if not paper or not results["comparisons"]:  # a run trained without the paper's method: nothing to draw
        return
    panels = [r for r in rates if r in results["comparisons"]] or list(results["comparisons"])[-1:]
    keys = [k for k in results["methods"] if k != paper]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 3, 0.35 * len(keys) + 1.6),
                             sharey=True, squeeze=False)
    for ax, rate in zip(axes[0], panels):
        for y, key in enumerate(keys):
            c = results["comparisons"][rate][key][paper]
            colour = {"better": "tab:green", "worse": "tab:red"}.get(c["verdict"], "grey")
            ax.errorbar(100 * c["value"], y, xerr=[[100 * (c["value"] - c["low"])], [100 * (c["high"] - c["value"])]],
                        fmt="o", color=colour, capsize=3, ms=4)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"r = {rate}", fontsize=9)
        ax.set_xlabel("points vs the paper's method")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(keys)), [results["methods"][k] for k in keys], fontsize=7)
    axes[0][0].invert_yaxis()
    fig.suptitle(f"Paired differences from {results['methods'][paper]}, simultaneous 95% intervals", fontsize=9)
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
