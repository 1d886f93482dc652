"""`afgen train`: every registered stage (learning/method_registry.py), dependencies first, with Lightning.

Each stage trains in RUN/<stage>/ with checkpoints, CSV and TensorBoard logs and a
learning-curve PNG, through its own `train(ctx)` (stage_context.StageContext: the data, the
settings, the outputs of the stages it needs and the shared fit). Out-of-fold generated audio
(k generators, each on k-1 folds of the training clips) is in RUN/oof/<stage>/. RUN/model.pt
bundles the chosen weights of every stage with what rebuilds each model (its registered class
and arguments), loaded with weights_only=True; RUN/provenance.json records the settings, the
store's config, the stages and where they came from, versions and the git commit. With several
seeds, RUN/seed-<s>/ holds one such run per seed and RUN/seeds.json lists them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from afgen.config import TrainConfig, to_dict
from afgen.contracts.modelfile import BUNDLE_FORMAT, ModelFile, read_model_file, write_model_file
from afgen.contracts.openstore import OpenStore, open_store
from afgen.contracts.runfolder import BUNDLE, METRICS, OOF_DIR, PROVENANCE, SEEDS_FILE
from afgen.contracts.store import FeatureStore, atomic_write_json, read_json
from afgen.errors import AfgenError, RunError, repair_hint
from afgen.learning.fit import is_rank_zero
from afgen.learning.method_registry import BUILT_IN, Stage, registry
from afgen.learning.split_indices import resolve_splits
from afgen.learning.stage_context import RunShared, StageContext, Trained
from afgen.lifecycle import process_pool
from afgen.provenance import git_commit, package_versions

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run: Path
    metrics: dict[str, dict[str, float]]
    seconds: float
    per_seed: dict[int, dict] | None = None


def train(features: str | Path, run: str | Path, cfg: TrainConfig = TrainConfig(), resume: bool = False,
          show_progress: bool = True, seeds: Sequence[int] | None = None) -> TrainResult:
    """Train every stage; write RUN/ as described above. With `seeds`, one independent run per
    seed in RUN/seed-<s>/ (same store, same splits), and `metrics` is their mean."""
    run = Path(run)
    FeatureStore(features).require()  # before RUN is created or anything is built (a wrong path costs nothing)
    registry().stages_for(list(cfg.methods) or None)  # an unknown row, too
    if not seeds:
        _refuse_run_folder(run, resume)
        return _train_one(features, run, cfg, resume, open_store(features), show_progress=show_progress)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if (run / BUNDLE).exists():
        raise AfgenError("this run folder holds a single-seed run; use another RUN for --seeds", run)
    if (run / SEEDS_FILE).exists() and not resume:
        raise AfgenError("this run folder already holds a trained multi-seed run; use another RUN or --resume", run)
    if cfg.seed_workers > 1 and len(seeds) > 1 and cfg.devices not in ("auto", "1"):
        raise AfgenError("--seed-workers > 1 cannot be combined with --devices > 1; use one or the other")
    start = time.perf_counter()
    run.mkdir(parents=True, exist_ok=True)
    store = open_store(features)  # checked and packed once, before any seed's process reads it
    wanted = ({s.name for s in _stages_to_train(cfg, store.packed.frame_bands is not None, quiet=True)}
              if resume else set())  # what a finished seed must hold to be skipped
    per_seed: dict[int, dict] = {}
    todo = []
    for seed in seeds:
        sub = run / f"seed-{seed}"
        if resume and all((sub / name).is_file() for name in (BUNDLE, METRICS, PROVENANCE)) \
                and wanted <= set(getattr(_earlier_model_file(sub), "models", ())):
            log.info("seed %d is already trained in %s; skipping it", seed, sub)
            per_seed[seed] = read_json(sub / METRICS, repair_hint(run, "this command again"))
        else:
            todo.append(seed)
    workers = min(cfg.seed_workers, len(todo))
    if workers > 1:
        import os

        threads = max(1, (os.cpu_count() or 1) // workers)
        log.info("training seeds %s in %d parallel processes (%d torch thread(s) each)", todo, workers, threads)
        with process_pool(workers) as pool:
            gpus = seed_gpus(cfg, len(todo))
            if any(g is not None for g in gpus):
                log.info("each seed's process trains on one GPU: %s", ", ".join(f"seed {s} on GPU {g}"
                                                                          for s, g in zip(todo, gpus)))
            # One device per seed's process: with --devices auto on a machine with several GPUs, each
            # worker would otherwise start DDP over all of them.
            futures = {seed: pool.submit(_train_seed_process, features, run / f"seed-{seed}",
                                         replace(cfg, seed=seed, devices="1"), resume, threads, gpu)
                       for seed, gpu in zip(todo, gpus)}
            per_seed.update({seed: f.result() for seed, f in futures.items()})
    else:
        for seed in todo:
            log.info("training seed %d of %s", seed, seeds)
            per_seed[seed] = _train_one(features, run / f"seed-{seed}", replace(cfg, seed=seed), resume, store,
                                        show_progress=show_progress).metrics
    per_seed = {seed: per_seed[seed] for seed in seeds}
    if not is_rank_zero():
        return TrainResult(run=run, metrics={}, seconds=time.perf_counter() - start, per_seed=per_seed)
    atomic_write_json(run / SEEDS_FILE, {"seeds": seeds, "runs": [f"seed-{s}" for s in seeds]})
    mean = {stage: {k: float(np.mean([per_seed[s][stage][k] for s in seeds if k in per_seed[s].get(stage, {})]))
                    for k in per_seed[seeds[0]][stage]} for stage in per_seed[seeds[0]]}
    atomic_write_json(run / METRICS, {"mean": mean, "per_seed": per_seed})
    return TrainResult(run=run, metrics=mean, seconds=time.perf_counter() - start, per_seed=per_seed)


def seed_gpus(cfg: TrainConfig, n: int) -> list[int | None]:
    """Which visible GPU each of n parallel seed processes trains on (round robin), or None for
    each where training runs on the CPU."""
    if cfg.accelerator not in ("auto", "gpu", "cuda") or not torch.cuda.is_available():
        return [None] * n
    count = torch.cuda.device_count()
    return [k % count for k in range(n)] if count else [None] * n


def _train_seed_process(features: str | Path, run: Path, cfg: TrainConfig, resume: bool, threads: int,
                        gpu: int | None = None) -> dict:
    """One seed's run in a worker process (spawned): no progress bars (fit_stage quiets Lightning's
    chatter and the libraries' deprecations, learning/quiet.py); on `gpu` alone where one is given
    (set before CUDA starts in this process)."""
    import os

    if gpu is not None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(gpu + 1)]
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[gpu]
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)
    return _train_one(features, run, cfg, resume, show_progress=False).metrics


def _refuse_run_folder(run: Path, resume: bool) -> None:
    """An AfgenError if RUN already holds a trained single-seed run (without --resume) or a multi-seed one."""
    if (run / BUNDLE).exists() and not resume:
        raise AfgenError("this run folder already holds a trained model; use another RUN or --resume", run)
    if (run / SEEDS_FILE).exists():
        raise AfgenError("this run folder holds a multi-seed run; pass --seeds to resume it", run)


def _train_one(features: str | Path, run: Path, cfg: TrainConfig, resume: bool, store: OpenStore | None = None,
               show_progress: bool = True) -> TrainResult:
    """One single-seed run in RUN from the store opened by the caller (contracts.openstore.open_store),
    or, in a seed's own process, opened here unchecked (train() checked it before starting the seeds)."""
    start = time.perf_counter()
    _refuse_run_folder(run, resume)
    run.mkdir(parents=True, exist_ok=True)
    store = store or open_store(features, check=False)
    packed, store_config, classes = store.packed, store.config.raw, store.classes
    splits = resolve_splits(packed, cfg)
    if not packed.has_audio()[splits["train"]].any():
        log.warning("no training clip has audio: the regression branch gets no signal, only "
                    "the classification branch trains")
    label_index = {c: i for i, c in enumerate(classes)}
    stages = _stages_to_train(cfg, packed.frame_bands is not None)
    shared = RunShared(run, stages={s.name: s for s in stages})
    failed: set[str] = set()
    records: dict[str, dict] = {}
    for stage in stages:
        if failed & set(stage.needs):
            log.error("stage %r is skipped: it needs %s, which failed", stage.name, ", ".join(sorted(failed & set(stage.needs))))
            failed.add(stage.name)
            continue
        ctx = StageContext(stage.name, packed, cfg, splits["train"], splits["val"], label_index, resume, show_progress,
                           stage.needs, shared)
        try:
            out = stage.train(ctx)
            if out.model is not None:  # an unregistered class fails its stage now, not the run at the end
                records[stage.name] = _record(stage.name, out.model)
            shared.outputs[stage.name] = out
        except Exception as exc:  # noqa: BLE001 - a plug-in's failure is its own, not every other row's
            if stage.source == BUILT_IN:
                raise
            log.error("stage %r (from %s) failed and is skipped, with the rows that need it: %s: %s (-v shows the "
                      "traceback)", stage.name, stage.source, type(exc).__name__, (str(exc).strip().splitlines() or [""])[0],
                      exc_info=log.isEnabledFor(logging.DEBUG))
            failed.add(stage.name)
    outputs: dict[str, Trained] = shared.outputs
    metrics = {name: out.metrics for name, out in outputs.items() if out.metrics}
    models = {name: out.model for name, out in outputs.items() if out.model is not None}
    seconds = time.perf_counter() - start
    if not is_rank_zero():  # under DDP every rank trains; rank 0 alone writes the run
        return TrainResult(run=run, metrics=metrics, seconds=seconds)
    dims = {"input_dim": packed.visual_dim, "num_classes": len(classes), "audio_dim": packed.audio_dim,
            "frame_bands": packed.frame_bands}
    states = {k: _cpu_state(m) for k, m in models.items()}
    if resume:  # --resume --methods for a subset keeps the stages model.pt already holds
        states, records, metrics = _keep_earlier(run, outputs, classes, dims, states, records, metrics)
    write_model_file(run, ModelFile(models=states, records=records,
                                    classes=classes, dims=dims, train=to_dict(cfg),
                                    features=Path(features).resolve(), store_config=store_config))
    atomic_write_json(run / PROVENANCE, {
        "train": to_dict(cfg), "features": str(Path(features).resolve()),
        "store_config": store_config, "versions": package_versions(),
        "git_commit": git_commit(), "seed": cfg.seed, "classes": classes,
        "splits": {k: len(v) for k, v in splits.items()},
        "best_checkpoints": {name: str(out.checkpoints["best"]) for name, out in outputs.items() if "best" in out.checkpoints},
        "stages": {s.name: {"description": s.description, "source": s.source, "needs": list(s.needs)} for s in stages},
        "out_of_fold": {"folds": cfg.oof_folds, "cache": f"{OOF_DIR}/<stage>/generated.npz" if cfg.oof_folds >= 2 else None},
        "metrics": metrics, "seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    atomic_write_json(run / METRICS, metrics)
    return TrainResult(run=run, metrics=metrics, seconds=seconds)


def _earlier_model_file(run: Path) -> ModelFile | None:
    """RUN/model.pt as an earlier call wrote it, or None (none there, or unreadable: said once)."""
    if not (run / BUNDLE).is_file():
        return None
    try:
        return read_model_file(run / BUNDLE)
    except RunError as exc:
        log.warning("the run's earlier model.pt cannot be read (%s); this call's stages replace it", exc)
        return None


def _keep_earlier(run: Path, outputs: dict[str, Trained], classes: list[str], dims: dict, states: dict,
                  records: dict, metrics: dict) -> tuple[dict, dict, dict]:
    """States, records and metrics with those of the stages RUN/model.pt already holds that this
    call did not train added (a resume for some rows must not drop the others). An earlier stage
    is kept only where every stage it needs that this call trained came out with the weights it
    had (a resumed, finished stage), so model.pt never pairs a model with another generator than
    the one it learnt from; none from a model.pt of other classes or dimensions, or format 2."""
    earlier = _earlier_model_file(run)
    if earlier is None:
        return states, records, metrics
    stages = registry().stages
    candidates = sorted(n for n in earlier.models if n not in outputs and n in earlier.records)
    if not candidates:
        return states, records, metrics
    if earlier.classes != classes or earlier.dims != dims or earlier.format != BUNDLE_FORMAT:
        log.warning("the run's earlier model.pt (stages %s) was trained on other classes or dimensions, or by an "
                    "older afgen: this call's stages replace it", ", ".join(candidates))
        return states, records, metrics

    def unchanged(name: str, seen: frozenset = frozenset()) -> bool:
        if name in seen or name not in stages:
            return False
        for need in stages[name].needs:
            if need in states:  # trained now: same weights as model.pt held?
                old = earlier.models.get(need)
                if old is None or old.keys() != states[need].keys() or \
                        not all(torch.equal(old[k], states[need][k]) for k in old):
                    return False
            elif need not in earlier.models or not unchanged(need, seen | {name}):
                return False
        return True

    kept = [n for n in candidates if unchanged(n)]
    unknown = sorted(n for n in candidates if n not in stages)
    dropped = sorted(set(candidates) - set(kept) - set(unknown))
    if unknown:
        log.warning("dropping the run's earlier %s: no longer registered (its plug-in is not installed), so what it "
                    "learnt from cannot be checked", ", ".join(unknown))
    if dropped:
        log.warning("dropping the run's earlier %s: a stage it learnt from was trained again now (train its rows "
                    "again with --methods)", ", ".join(dropped))
    if not kept:
        return states, records, metrics
    log.info("keeping the stage(s) the run already holds: %s", ", ".join(kept))
    try:
        earlier_metrics = read_json(run / METRICS, "") if (run / METRICS).is_file() else {}
    except AfgenError:
        earlier_metrics = {}
    return ({**{n: earlier.models[n] for n in kept}, **states}, {**{n: earlier.records[n] for n in kept}, **records},
            {**{n: earlier_metrics[n] for n in kept if n in earlier_metrics}, **metrics})


def _stages_to_train(cfg: TrainConfig, has_frames: bool, quiet: bool = False) -> list[Stage]:
    """The registered stages the rows in cfg.methods need (all when empty), in dependency order;
    those that read per-frame audio (and what needs them) left out for a store without it."""
    reg = registry()
    stages = reg.stages_for(list(cfg.methods) or None)
    skipped: set[str] = set()
    for stage in stages:
        if not has_frames and (stage.per_frame_audio or skipped & set(stage.needs)):
            skipped.add(stage.name)
    if skipped and not quiet:
        log.info("this store has no per-frame audio (audio_frames): skipping %s", ", ".join(sorted(skipped)))
    stages = [s for s in stages if s.name not in skipped]
    if is_rank_zero() and not quiet:
        log.info("training %d stage(s)%s: %s", len(stages), f" for {', '.join(cfg.methods)}" if cfg.methods else "",
                 ", ".join(s.name for s in stages))
    return stages


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with every tensor on the CPU, so a run trained on a GPU (a teacher kept
    outside Lightning's reach included) loads with a plain torch.load anywhere."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _record(name: str, model: nn.Module) -> dict:
    """What model.pt needs to rebuild the stage's model: its registered class and arguments."""
    record = getattr(model, "afgen_record", None)
    if record is None:
        raise AfgenError(f"the model of stage {name!r} is a {type(model).__name__}, which is not registered: decorate "
                         "its class with @register_model(\"name\") (afgen.learning.method_api) so the run can be loaded")
    return record
