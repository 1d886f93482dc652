"""`afgen evaluate`: the missing-audio protocol.

For each missing rate r, the audio of a seeded random r of the test clips is dropped (clips
that never had audio are always missing) and every method is scored on the same clips with
the same mask:
  visual_only   the generator's classification branch (the seed's first branch)
  av_real       audio-visual with real audio wherever the clip has it (the upper bound)
  av_zero       missing audio zero-filled
  av_mean       missing audio replaced by the training-set mean audio feature
  av_generated  missing audio replaced by the generator's audio feature (the paper)
  av_md_zero    the classifier trained with modality dropout, zero-filled
Outputs in RUN/eval/: results.json, results.md, accuracy_vs_missing.png and
confusion_generated_r1.png.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from afgen.config import EvalConfig, to_dict
from afgen.data import load_packed
from afgen.errors import AfgenError
from afgen.store import atomic_write_json
from afgen.train import ClipSet, collate, load_run, resolve_splits

log = logging.getLogger(__name__)

METHODS = {
    "visual_only": "Visual only (generator's classification branch)",
    "av_real": "AV + real audio (upper bound)",
    "av_zero": "AV + zero-filled audio",
    "av_mean": "AV + training-mean audio",
    "av_generated": "AV + generated audio (paper)",
    "av_md_zero": "AV trained with modality dropout, zero-filled",
}


@dataclass
class EvalResult:
    results: dict
    table: str
    out: Path


def missing_mask(n: int, has_audio: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """True where a clip's audio is missing at this rate: a seeded random round(r*n) clips,
    plus every clip that never had audio."""
    rng = np.random.default_rng([seed, int(round(rate * 1000))])
    dropped = np.zeros(n, bool)
    dropped[rng.permutation(n)[: int(round(rate * n))]] = True
    return dropped | ~has_audio


def _metrics(logits: torch.Tensor, labels: torch.Tensor, n_classes: int, k: int) -> dict:
    pred = logits.argmax(1)
    topk = logits.topk(min(k, logits.shape[1]), dim=1).indices
    per_class = [float((pred[labels == c] == c).float().mean()) for c in range(n_classes) if (labels == c).any()]
    return {"top1": float((pred == labels).float().mean()),
            f"top{k}": float((topk == labels[:, None]).any(1).float().mean()),
            "mean_class": float(np.mean(per_class))}


def evaluate(run: str | Path, features: str | Path | None = None, cfg: EvalConfig = EvalConfig()) -> EvalResult:
    """Score every method at every missing rate; write RUN/eval/."""
    run = Path(run)
    trained = load_run(run)
    packed = load_packed(features or trained.features)
    splits = resolve_splits(packed, trained.train)
    split = cfg.split
    if not splits.get(split):
        fallback = "val" if split == "test" else "test"
        if not splits.get(fallback):
            raise AfgenError(f"no clips in split {split!r}", run)
        log.warning("no %s clips; evaluating on %s instead", split, fallback)
        split = fallback
    idx = splits[split]
    classes = trained.classes
    unknown = sorted({packed.labels[i] for i in idx} - set(classes))
    if unknown:
        raise AfgenError(f"the {split} split has classes the run never saw: {unknown}", run)
    label_index = {c: i for i, c in enumerate(classes)}
    dl = DataLoader(ClipSet(packed, idx, label_index), batch_size=64, collate_fn=collate)
    seqs, labels, real, has = [], [], [], []
    vis_logits, generated = [], []
    with torch.no_grad():
        for v_c, lens, y, audio, h in dl:
            logits, audio_hat = trained.generator(v_c, lens)
            vis_logits.append(logits)
            generated.append(trained.generator.audio_norm.inverse(audio_hat))
            seqs.append((v_c, lens))
            labels.append(y)
            real.append(audio)
            has.append(h)
    labels_t, real_t, has_t = torch.cat(labels), torch.cat(real), torch.cat(has)
    generated_t, vis_t = torch.cat(generated), torch.cat(vis_logits)
    train_mean = trained.generator.audio_norm.mean

    def fused(model, audio: torch.Tensor) -> torch.Tensor:
        out, k = [], 0
        with torch.no_grad():
            for v_c, lens in seqs:
                out.append(model(v_c, lens, audio[k:k + len(lens)]))
                k += len(lens)
        return torch.cat(out)

    n, k = len(idx), cfg.top_k
    has_np = has_t.numpy()
    results: dict = {"split": split, "n_clips": n, "n_with_audio": int(has_np.sum()), "classes": classes,
                     "methods": METHODS, "rates": {}, "config": to_dict(cfg)}
    zeros = torch.zeros_like(real_t)
    real_or_zero = torch.where(has_t[:, None], real_t, zeros)
    av_real = _metrics(fused(trained.fusion, real_or_zero), labels_t, len(classes), k)
    visual = _metrics(vis_t, labels_t, len(classes), k)
    confusion = None
    for rate in cfg.missing_rates:
        missing = torch.from_numpy(missing_mask(n, has_np, rate, cfg.seed))[:, None]

        def fill(value: torch.Tensor, missing: torch.Tensor = missing) -> torch.Tensor:
            return torch.where(missing, value.expand_as(real_t), real_t)

        gen_logits = fused(trained.fusion, fill(generated_t))
        results["rates"][f"{rate:g}"] = {
            "missing_fraction": float(missing.float().mean()),
            "visual_only": visual,
            "av_real": av_real,
            "av_zero": _metrics(fused(trained.fusion, fill(zeros)), labels_t, len(classes), k),
            "av_mean": _metrics(fused(trained.fusion, fill(train_mean)), labels_t, len(classes), k),
            "av_generated": _metrics(gen_logits, labels_t, len(classes), k),
            "av_md_zero": _metrics(fused(trained.fusion_md, fill(zeros)), labels_t, len(classes), k),
        }
        if rate == max(cfg.missing_rates):
            confusion = _confusion(gen_logits.argmax(1), labels_t, len(classes))
            results["confusion_rate"] = rate
    results["generated_audio_quality"] = _quality(generated_t, real_t, has_t, labels_t, trained, classes)
    out = run / "eval"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    table = results_table(results)
    (out / "results.md").write_text(table)
    _plot_rates(results, out / "accuracy_vs_missing.png")
    if confusion is not None:
        _plot_confusion(confusion, classes, out / "confusion_generated_r1.png", results["confusion_rate"])
    return EvalResult(results=results, table=table, out=out)


def _confusion(pred: torch.Tensor, labels: torch.Tensor, n: int) -> np.ndarray:
    cm = np.zeros((n, n), int)
    for y, p in zip(labels.tolist(), pred.tolist()):
        cm[y, p] += 1
    return cm


def _quality(gen: torch.Tensor, real: torch.Tensor, has: torch.Tensor, labels: torch.Tensor, trained, classes) -> dict:
    """Generated vs real audio features on clips with real audio: MSE in standardised units
    (1.0 = no better than predicting the training mean) and cosine, raw and mean-centred."""
    if not has.any():
        return {"n": 0}
    norm = trained.generator.audio_norm
    g, r, y = gen[has], real[has], labels[has]
    mse = ((norm(g) - norm(r)) ** 2).mean(1)
    cos = F.cosine_similarity(g, r, dim=1)
    cos_c = F.cosine_similarity(g - norm.mean, r - norm.mean, dim=1)

    def stats(x: torch.Tensor) -> dict:
        return {"mean": float(x.mean()), "std": float(x.std()) if len(x) > 1 else 0.0}

    per_class = {classes[c]: {"n": int((y == c).sum()), "mse": stats(mse[y == c]), "cosine_centered": stats(cos_c[y == c])}
                 for c in range(len(classes)) if (y == c).any()}
    return {"n": int(has.sum()), "mse_standardized": stats(mse), "cosine": stats(cos),
            "cosine_centered": stats(cos_c), "per_class": per_class}


def results_table(results: dict) -> str:
    """The markdown table a paper would print: top-1 per method and missing rate, then details."""
    rates = list(results["rates"])
    lines = [f"Missing-audio evaluation on the {results['split']} split: {results['n_clips']} clips, "
             f"{results['n_with_audio']} with real audio.", "",
             "Top-1 accuracy (%) by missing-audio rate:", "",
             "| method | " + " | ".join(f"r = {r}" for r in rates) + " |",
             "|---|" + "---:|" * len(rates)]
    for key, name in METHODS.items():
        cells = [f"{100 * results['rates'][r][key]['top1']:.1f}" for r in rates]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    last = rates[-1]
    k = results["config"]["top_k"]
    lines += ["", f"At r = {last}: top-{k} and mean per-class accuracy (%):", "",
              f"| method | top-1 | top-{k} | mean per-class |", "|---|---:|---:|---:|"]
    for key, name in METHODS.items():
        m = results["rates"][last][key]
        lines.append(f"| {name} | {100 * m['top1']:.1f} | {100 * m[f'top{k}']:.1f} | {100 * m['mean_class']:.1f} |")
    q = results["generated_audio_quality"]
    if q.get("n"):
        lines += ["", f"Generated vs real audio feature ({q['n']} clips with audio): "
                  f"MSE (standardised; 1.0 = training mean) {q['mse_standardized']['mean']:.3f} ± "
                  f"{q['mse_standardized']['std']:.3f}, cosine {q['cosine']['mean']:.3f}, "
                  f"mean-centred cosine {q['cosine_centered']['mean']:.3f} ± {q['cosine_centered']['std']:.3f}."]
    return "\n".join(lines) + "\n"


def _plot_rates(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [float(r) for r in results["rates"]]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, name in METHODS.items():
        ax.plot(rates, [100 * results["rates"][f"{r:g}"][key]["top1"] for r in rates], marker="o", label=name)
    ax.set_xlabel("missing-audio rate r")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"Accuracy vs missing audio ({results['split']}, {results['n_clips']} clips)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_confusion(cm: np.ndarray, classes: list[str], out: Path, rate: float) -> None:
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
    ax.set_title(f"AV + generated audio, r = {rate:g}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def load_results(run: str | Path) -> dict:
    return json.loads((Path(run) / "eval" / "results.json").read_text())
