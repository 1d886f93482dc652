"""`afgen evaluate`: the missing-audio protocol, with intervals and paired verdicts.

For each missing rate r and each of `mask_draws` seeded draws, the audio of a random r of the
test clips is dropped (clips that never had audio are always missing) and every registered
method (learning/method_registry.py) the run has models for is scored on the same clips with the
same mask. A run trained
with several seeds is scored seed by seed on the same masks. Each cell is the accuracy
averaged over seeds and draws with a 95% bootstrap interval (statistics.py); each method is
compared, paired, with the baselines (the paper's method first) and the best visual-only row,
and at every rate the best method is named with whether it is resolvably better than the
runner-up. A declared primary comparison (EvalConfig.primary) is reported apart, with its own
interval.
Outputs in RUN/eval/: results.json, results.md, scores.npz (per-clip correctness and masks,
for your own analysis), accuracy_vs_missing.png and confusion_generated_r1.png.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from afgen.config import EvalConfig, to_dict
from afgen.contracts.evalfolder import (
    CONFUSION_PLOT,
    FOREST_PLOT,
    RATES_PLOT,
    RESULTS,
    SCORES,
    TABLE,
    eval_folder,
    load_results,
)
from afgen.contracts.openstore import open_store
from afgen.contracts.packed import PackedFeatures
from afgen.contracts.runfolder import seed_runs
from afgen.contracts.store import atomic_write_json
from afgen.contracts.storeconfig import StoreConfig
from afgen.errors import AfgenError
from afgen.learning.batches import ClipSet, FrameAudio, collate
from afgen.learning.fills import RealFill
from afgen.learning.method_registry import Method, Registry, registry
from afgen.learning.models import audio_cosines
from afgen.learning.plots import plot_confusion, plot_forest, plot_rates
from afgen.learning.report import results_table
from afgen.learning.run_loader import TrainedRun, load_run
from afgen.learning.split_indices import resolve_splits
from afgen.learning.statistics import Bootstrap, mean_std
from afgen.learning.verdicts import Roles, add_comparisons, check_primary

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    results: dict
    table: str
    out: Path


def missing_mask(n: int, has_audio: np.ndarray, rate: float, seed: int, draw: int = 0) -> np.ndarray:
    """True where a clip's audio is missing at this rate in this draw: a seeded random
    round(r*n) clips, plus every clip that never had audio."""
    rng = np.random.default_rng([seed, int(round(rate * 1000)), draw])
    dropped = np.zeros(n, bool)
    dropped[rng.permutation(n)[: int(round(rate * n))]] = True
    return dropped | ~has_audio


def mask_draws(has_audio: np.ndarray, rate: float, cfg: EvalConfig) -> np.ndarray:
    """The [draws, n] missing-audio masks of one rate, shared by every method and seed."""
    return np.stack([missing_mask(len(has_audio), has_audio, rate, cfg.seed, d) for d in range(cfg.mask_draws)])


@dataclass
class _Inputs:
    """One seed's test-time tensors: padded v_C batches, labels, real audio, generated audio."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    labels: torch.Tensor
    real: torch.Tensor
    has: torch.Tensor
    #: The real per-frame audio pooled as the per-frame classifier reads it (None: not in the store).
    real_frames: torch.Tensor | None = None


def _test_split(packed: PackedFeatures, trained: TrainedRun, split: str) -> tuple[str, list[int]]:
    splits = resolve_splits(packed, trained.train)
    if not splits.get(split):
        fallback = "val" if split == "test" else "test"
        if not splits.get(fallback):
            raise AfgenError(f"no clips in split {split!r}", trained.path)
        log.warning("no %s clips; evaluating on %s instead", split, fallback)
        split = fallback
    idx = splits[split]
    unknown = sorted({packed.labels[i] for i in idx} - set(trained.classes))
    if unknown:
        raise AfgenError(f"the {split} split has classes the run never saw: {unknown}", trained.path)
    return split, idx


def _inputs(packed: PackedFeatures, idx: list[int], classes: list[str]) -> _Inputs:
    label_index = {c: i for i, c in enumerate(classes)}
    batches, labels, real, has = [], [], [], []
    for v_c, lens, y, audio, h, _ in DataLoader(ClipSet(packed, idx, label_index), batch_size=64, collate_fn=collate):
        batches.append((v_c, lens))
        labels.append(y)
        real.append(audio)
        has.append(h)
    frames = None
    if packed.frame_bands is not None:
        view = FrameAudio(packed, pooled=True)
        frames = torch.from_numpy(np.stack([a if (a := view.audio(i)) is not None
                                            else np.zeros(view.audio_dim, np.float32) for i in idx]))
    return _Inputs(batches, torch.cat(labels), torch.cat(real), torch.cat(has), frames)


def available_methods(trained: TrainedRun, reg: Registry | None = None) -> dict[str, Method]:
    """The rows this run can score: those whose stages it has models for (a run trained with
    --methods, or before a row existed, has no model for the others)."""
    reg = reg or registry()
    return {k: m for k, m in reg.methods.items() if all(n in trained.models for n in m.needs)}


@torch.no_grad()
def _seed_logits(trained: TrainedRun, inputs: _Inputs, masks: dict[str, np.ndarray], methods: dict[str, Method],
                 reg: Registry) -> tuple[dict[str, dict[str, list]], dict[str, torch.Tensor]]:
    """Logits [D][N, C] of every method at every rate for one trained seed, and the audio each
    generator used makes [N, A] (raw space, as its classifier reads it)."""
    made: dict[str, torch.Tensor] = {}

    def generated(name: str) -> torch.Tensor:
        if name not in made:
            made[name] = torch.cat([trained.models[name].generate(v_c, lens) for v_c, lens in inputs.batches])
        return made[name]

    def scored(model, audio: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        score = getattr(model, "score", model)
        out, k = [], 0
        for v_c, lens in inputs.batches:
            n = len(lens)
            out.append(score(v_c, lens, audio[k:k + n], missing[k:k + n]))
            k += n
        return torch.cat(out)

    logits: dict[str, dict[str, list]] = {rate: {} for rate in masks}
    for key, method in methods.items():
        model, fill = trained.models[method.model], method.fill
        real = inputs.real_frames if reg.reads_frames(method) else inputs.real
        norm = getattr(model, "audio_norm", None)
        stand_in = generated(fill.generator) if fill.generator else None
        seen = {}  # identical masks (r = 0, r = 1, the upper bound, visual-only rows) are scored once
        for rate, rate_masks in masks.items():
            draws = []
            for mask in rate_masks:
                missing = fill.missing(inputs.has, torch.from_numpy(mask))
                token = missing.numpy().tobytes()
                if token not in seen:
                    seen[token] = scored(model, fill.apply(real, missing, stand_in, getattr(norm, "mean", None)), missing)
                draws.append(seen[token])
            logits[rate][key] = draws
    return logits, made


def evaluate(run: str | Path, features: str | Path | None = None, cfg: EvalConfig = EvalConfig(),
             out: str | Path | None = None) -> EvalResult:
    """Score every method at every missing rate (every seed of the run); write results.json,
    results.md and the plots to `out` (default: eval_folder(run, split))."""
    run = Path(run)
    runs = seed_runs(run)
    trained_runs = {sub: load_run(sub) for sub in runs}  # every model.pt up front: damage before any work
    first = trained_runs[runs[0]]
    reg = registry()
    methods = available_methods(first, reg)
    for sub in runs:
        methods = {k: m for k, m in methods.items() if k in available_methods(trained_runs[sub], reg)}
    skipped = [m.label for k, m in reg.methods.items() if k not in methods]
    if skipped:
        log.warning("this run has no model for %d row(s) (trained with --methods, or by an earlier afgen): %s",
                    len(skipped), "; ".join(skipped))
    packed = open_store(features or first.features).packed
    if packed.frame_bands is None:  # another store without per-frame audio: no per-frame rows
        methods = {k: m for k, m in methods.items() if not reg.reads_frames(m)}
    if not methods:
        raise AfgenError("this run has no model for any registered row; `afgen methods` lists the rows and what they "
                         "need", run)
    if cfg.primary:  # a wrong declaration is refused before any scoring
        check_primary(cfg.primary, methods, Roles.of(methods))
    split, idx = _test_split(packed, first, cfg.split)
    classes = first.classes
    inputs = _inputs(packed, idx, classes)
    has_np = inputs.has.numpy()
    masks = {f"{r:g}": mask_draws(has_np, r, cfg) for r in cfg.missing_rates}
    k = cfg.top_k
    labels = inputs.labels
    paper = reg.paper()
    quality_from = paper.fill.generator if paper.key in methods else next(  # a clip-level generator's audio
        (m.fill.generator for m in methods.values() if m.fill.generator and not reg.reads_frames(m)), None)
    # correctness [R, D, N] per (rate, method): top-1, top-k; predictions for per-class accuracy
    top1: dict[tuple[str, str], list] = {}
    topk: dict[tuple[str, str], list] = {}
    preds: dict[tuple[str, str], list] = {}
    quality, seeds = [], []
    for sub in runs:
        trained = trained_runs[sub]
        if trained.classes != classes:
            raise AfgenError(f"{sub.name} was trained on other classes than {runs[0].name}; retrain the run", run)
        seeds.append(trained.train.seed)
        logits, generated = _seed_logits(trained, inputs, masks, methods, reg)
        for rate, per_method in logits.items():
            for key, draws in per_method.items():
                lg = torch.stack(draws)  # [D, N, C]
                top1.setdefault((rate, key), []).append((lg.argmax(-1) == labels).numpy())
                hits = (lg.topk(min(k, lg.shape[-1]), dim=-1).indices == labels[None, :, None]).any(-1)
                topk.setdefault((rate, key), []).append(hits.numpy())
                preds.setdefault((rate, key), []).append(lg.argmax(-1).numpy())
        if quality_from is not None:
            quality.append(_quality(trained.models[quality_from], inputs, generated[quality_from], classes))
    shape = (len(runs), cfg.mask_draws, len(idx))
    boot = Bootstrap(shape, cfg.bootstrap, cfg.seed, cfg.confidence)
    scores = {key: np.asarray(v, np.uint8) for key, v in top1.items()}
    roles = Roles.of(methods)
    no_track = int((~inputs.has).sum())
    results: dict = {
        "split": split, "n_clips": len(idx), "n_with_audio": int(has_np.sum()), "classes": classes,
        "seeds": seeds, "methods": {key: m.label for key, m in methods.items()},
        "sources": {key: m.source for key, m in methods.items()},
        "paper_method": roles.paper, "baselines": roles.baselines, "visual_reference": roles.visual,
        "not_competing": [k for k, m in methods.items() if not m.competes],
        "upper_bound": {key: f"real audio wherever the clip has a track; the {no_track} test clip(s) without one get "
                             f"the audio generated by stage {m.fill.generator!r}, as the paper's method gives them"
                        for key, m in methods.items() if isinstance(m.fill, RealFill)},
        "config": to_dict(cfg), "rates": {}, "comparisons": {}, "best": {},
        "interval": (f"{100 * cfg.confidence:g}% percentile bootstrap ({cfg.bootstrap} resamples) over the "
                     f"{len(idx)} test clips, the {cfg.mask_draws} missing-audio mask draws and the "
                     f"{len(runs)} seed(s), paired across methods"),
    }
    seed_boot = Bootstrap((1,) + shape[1:], cfg.bootstrap, cfg.seed, cfg.confidence)
    for rate in masks:
        cells = {}
        for key in methods:
            s = scores[(rate, key)]
            seed_values = [float(x) for x in s.mean(axis=(1, 2))]
            cells[key] = {
                "top1": boot.accuracy(s).as_dict(),
                f"top{k}": float(np.mean(topk[(rate, key)])),
                "mean_class": _mean_class(np.asarray(preds[(rate, key)]), labels.numpy(), len(classes)),
                "per_seed": [seed_boot.accuracy(s[r:r + 1]).as_dict() for r in range(len(runs))],
                "seed_mean_std": list(mean_std(seed_values)),
            }
        results["rates"][rate] = {"missing_fraction": float(masks[rate].mean()), **cells}
    add_comparisons(results, scores, methods, roles, boot, cfg)
    results["generated_audio_quality"] = _aggregate_quality(quality) if quality else {"n": 0}
    ceiling = StoreConfig(first.store_config).visual_ceiling
    if ceiling is not None:  # the data's own limit for a visual-only classifier, and each row's share of the gap
        results["visual_ceiling"] = float(ceiling)
        results["ceiling_gap_closed"] = {
            rate: {key: _gap(results["rates"][rate][key]["top1"]["value"],
                             results["rates"][rate][roles.visual[0]]["top1"]["value"], float(ceiling))
                   for key in methods} for rate in masks} if roles.visual else {}
    last = f"{max(cfg.missing_rates):g}"
    results["confusion_rate"] = float(last)
    out = Path(out) if out is not None else eval_folder(run, split)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RESULTS, results)
    tmp = out / ".scores.tmp.npz"
    np.savez_compressed(tmp, ids=np.array([packed.ids[i] for i in idx]), seeds=np.array(seeds),
                        **{f"correct@{rate}@{key}": v for (rate, key), v in scores.items()},
                        **{f"missing@{rate}": m for rate, m in masks.items()})
    tmp.replace(out / SCORES)
    table = results_table(results)
    (out / TABLE).write_text(table)
    plot_rates(results, out / RATES_PLOT)
    plot_forest(results, out / FOREST_PLOT)
    shown = roles.paper or next(iter(methods))
    plot_confusion(_confusion(np.asarray(preds[(last, shown)]), labels.numpy(), len(classes)), classes,
                    out / CONFUSION_PLOT, float(last))
    return EvalResult(results=results, table=table, out=out)


def _gap(value: float, visual: float, ceiling: float) -> float | None:
    """The share of the gap between visual-only and the visual ceiling a row closes (None where
    visual-only is already at the ceiling)."""
    return (value - visual) / (ceiling - visual) if ceiling - visual > 1e-9 else None


def _mean_class(preds: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Mean per-class accuracy over every seed and draw."""
    hit = preds == labels
    return float(np.mean([hit[..., labels == c].mean() for c in range(n_classes) if (labels == c).any()]))


def _confusion(preds: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Counts summed over seeds and draws."""
    cm = np.zeros((n, n), int)
    flat = preds.reshape(-1, len(labels))
    for row in flat:
        np.add.at(cm, (labels, row), 1)
    return cm


def _quality(generator: torch.nn.Module, inputs: _Inputs, generated: torch.Tensor, classes: list[str]) -> dict:
    """Generated vs real audio features on clips with real audio: MSE in standardised units
    (1.0 = no better than predicting the training mean) and cosine, raw and mean-centred."""
    has = inputs.has
    if not has.any():
        return {"n": 0}
    g, r, y, norm = generated[has], inputs.real[has], inputs.labels[has], generator.audio_norm
    mse = ((norm(g) - norm(r)) ** 2).mean(1)
    cos, cos_c = audio_cosines(g, r, norm.mean)

    def stats(x: torch.Tensor) -> dict:
        return {"mean": float(x.mean()), "std": float(x.std()) if len(x) > 1 else 0.0}

    per_class = {classes[c]: {"n": int((y == c).sum()), "mse": stats(mse[y == c]), "cosine_centered": stats(cos_c[y == c])}
                 for c in range(len(classes)) if (y == c).any()}
    return {"n": int(has.sum()), "mse_standardized": stats(mse), "cosine": stats(cos),
            "cosine_centered": stats(cos_c), "per_class": per_class}


def _aggregate_quality(per_seed: list[dict]) -> dict:
    """The first seed's full report, plus mean ± std over seeds of its headline numbers."""
    out = dict(per_seed[0])
    if out.get("n"):
        out["over_seeds"] = {key: list(mean_std([q[key]["mean"] for q in per_seed]))
                             for key in ("mse_standardized", "cosine", "cosine_centered")}
    return out


__all__ = ["evaluate", "missing_mask", "mask_draws", "results_table", "load_results", "EvalResult"]
