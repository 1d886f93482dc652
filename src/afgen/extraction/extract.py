"""`afgen extract`: clips -> feature store. An engine schedules the clips (engines/local.py:
producer processes on this machine; engines/ray_data.py: Ray Data across a cluster); this
module picks the clips (all, or one `--shard I/N`), holds the store's lock and writes every
clip the engine hands back, atomically, with its manifest line. A failed clip gets a
manifest line with the reason and the batch goes on; a rerun skips finished clips.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from afgen.config import DEFAULT_WORKERS, AudioFeatureConfig, ExtractConfig, FlowConfig, VideoConfig, to_dict
from afgen.contracts.store import CONFIG, FeatureStore
from afgen.encoders.audio import get_encoder
from afgen.encoders.backbones import Backbone, build_backbone
from afgen.encoders.devices import for_device, resolve_device, resolve_precision
from afgen.encoders.flows import is_learned
from afgen.encoders.raft import RaftFlow, build_raft
from afgen.encoders.registry import AUDIO, FLOWS
from afgen.encoders.runtime_choice import Choice, choose_runtime, measured_speed
from afgen.errors import AfgenError, StoreError
from afgen.extraction.assemble import Assembler, ClipFeatures, features_in_process  # noqa: F401 - re-exported
from afgen.extraction.dataset import Clip, Dataset
from afgen.extraction.engines import Stats, local
from afgen.extraction.engines.balance import Balancer, cost_key
from afgen.extraction.engines.pool import ProducerPool, producer_settings, start_producers
from afgen.extraction.lock import ALL, StoreLock, shard_scope
from afgen.extraction.producer import Settings
from afgen.extraction.shards import shard_of
from afgen.lifecycle import critical, stopped_after
from afgen.progress import progress_bar
from afgen.provenance import package_versions

log = logging.getLogger(__name__)
#: Report the producers as the bottleneck when the backbone waited this fraction of the run.
WAIT_WARNING = 0.25


@dataclass(frozen=True)
class ExtractSummary:
    done: int
    skipped: int
    failed: int
    seconds: float
    images: int
    store: Path
    #: Seconds to build the backbone (and RAFT), from the start.
    build_seconds: float = 0.0
    #: Seconds from the start until the first clip was written (None: no clip was).
    first_clip_seconds: float | None = None
    #: Local engine: seconds the backbone's process waited for the producers once they had
    #: started (a large share means decoding, flow or audio is the bottleneck), waited for
    #: their start, and spent in backbone calls.
    wait_seconds: float = 0.0
    startup_wait_seconds: float = 0.0
    backbone_seconds: float = 0.0
    #: How `--runtime auto` chose the backbone's runtime (None: it was given or kept from the store).
    runtime_choice: str | None = None
    #: The local engine's split of a CPU's cores and why (engines/balance.py), as the run ended.
    split: str | None = None

    def runtime_line(self) -> str | None:
        """One line: how the backbone's runtime was chosen and how the cores were split, and why."""
        parts = [f"runtime {self.runtime_choice}" if self.runtime_choice else None,
                 f"cores: {self.split}" if self.split else None]
        return "; ".join(p for p in parts if p) or None

    def bottleneck(self) -> str | None:
        """A sentence when the backbone spent much of the run waiting for the producers."""
        busy = self.seconds - self.build_seconds - self.startup_wait_seconds
        if not self.done or busy <= 0 or self.wait_seconds < WAIT_WARNING * busy:
            return None
        return (f"the backbone waited {100 * self.wait_seconds / busy:.0f}% of the time for decoding, flow and "
                "audio: more --workers (on more cores), or a cheaper flow (--flow dis), would feed it faster")


def flow_settings(flow: FlowConfig, raft: RaftFlow | None = None) -> dict:
    """The flow part of a store's settings: RAFT's keys (and weights) only for a learned flow,
    so stores made with the OpenCV algorithms keep the settings they always had."""
    out = {k: v for k, v in to_dict(flow).items() if raft is not None or not k.startswith("raft_")}
    if raft is not None:
        out["raft"] = raft.identity()
    return out


def store_config(backbone: Backbone, cfg: ExtractConfig, video: VideoConfig, flow: FlowConfig,
                 audio: AudioFeatureConfig, raft: RaftFlow | None = None, device: str | None = None) -> dict:
    """config.json: the settings that decide the bytes (compared on rerun) and provenance
    (`device`: where the backbone ran, when not where `backbone` was built: Ray's actors)."""
    encoder = get_encoder(audio.encoder, audio)
    settings = {
        "video": to_dict(video) | {"decoder_threads": None},
        "flow": flow_settings(flow, raft),
        "audio": encoder.params(),
        **backbone.identity(),
        "dtype": cfg.dtype,
    }
    return {"settings": settings, "versions": package_versions(),
            "extract": {"batch_size": cfg.batch_size, "device": device or str(backbone.device),
                        "workers": cfg.workers, "weights_arg": cfg.weights, "engine": cfg.engine,
                        "flow_weights_arg": cfg.flow_weights if raft is not None else None,
                        "audio_weights_arg": audio.weights if audio.encoder != "logmel" else None}}


def extract(
    dataset: Dataset,
    out: str | Path,
    cfg: ExtractConfig = ExtractConfig(),
    video: VideoConfig = VideoConfig(),
    flow: FlowConfig = FlowConfig(),
    audio: AudioFeatureConfig = AudioFeatureConfig(),
    overwrite: bool = False,
    show_progress: bool = True,
    backbone: Backbone | None = None,
    shard: tuple[int, int] | None = None,
    producers: ProducerPool | None = None,
) -> ExtractSummary:
    """Extract v_R, v_F and audio features of every clip (of `shard` (I, N) only, if given)
    into the store at `out`, with the engine `cfg.engine`; a rerun skips finished clips.
    `producers`: the local engine's producer processes, already started (see start_producers);
    extract closes them when it ends (the CLI starts them before torch loads)."""
    start = time.perf_counter()
    pools = [producers] if producers is not None else []  # closed however the run ends
    try:
        return _prepare_and_run(dataset, out, cfg, video, flow, audio, overwrite, show_progress, backbone, shard,
                                pools, start)
    finally:
        for pool in pools:
            pool.close()


def _prepare_and_run(dataset: Dataset, out: str | Path, cfg: ExtractConfig, video: VideoConfig, flow: FlowConfig,
                     audio: AudioFeatureConfig, overwrite: bool, show_progress: bool, backbone: Backbone | None,
                     shard: tuple[int, int] | None, pools: list[ProducerPool],
                     start: float) -> ExtractSummary:
    """Check the request, choose the runtime, start the producers (unless `pools` holds them:
    a pool started here is added to it) and extract."""
    FLOWS.get(flow.algorithm)  # a typo is refused here, before any worker starts (the config checked the rest)
    native = AUDIO.get(audio.encoder).sample_rate
    if native and video.audio_rate != native:
        log.warning("--audio %s works at %d Hz; the track is decoded at %d Hz and resampled (pass "
                    "VideoConfig(audio_rate=%d) to keep the band above %d Hz)", audio.encoder, native,
                    video.audio_rate, native, video.audio_rate // 2)
    if shard is not None and overwrite:
        raise AfgenError("--overwrite cannot be combined with --shard (it would wipe the other shards' work)")
    store = FeatureStore(out)
    if store.root.exists() and not store.root.is_dir():
        raise StoreError("exists and is a file, not a folder: choose another output folder for the feature store",
                         store.root)
    device = resolve_device(cfg.device) if cfg.engine == "local" else None  # Ray: its actors' (placement)
    if device is not None and cfg.batch_size is None:  # this device's default
        cfg = replace(cfg, batch_size=cfg.batch_for(device))
    settings = producer_settings(cfg, video, flow, audio)
    n_clips = len(dataset.clips[: cfg.limit] if cfg.limit else dataset.clips)
    pool = None
    plan = Plan(cfg)
    stored = _stored_settings(store, overwrite)
    if cfg.engine == "ray":
        for p in pools:  # started for the local engine: not needed
            p.close()
        from afgen.extraction.engines import ray_data

        ray_data.require()  # before the (driver-side) backbone: a missing Ray fails fast
        if backbone is None:
            plan = _place_on_ray(cfg, stored)
    else:
        torch.set_num_threads(local.measuring_threads(cfg, n_clips))
        # measured (or read from the cache) before extract's own producers start; the CLI's start
        # earlier and warm up meanwhile
        if backbone is None:
            plan = _choose_runtime(cfg, stored, video, device)
        balancer = _balancer(plan, cfg, video, device, backbone, n_clips, settings)
        if balancer is not None:  # before the backbone is built: its runtime takes the threads
            torch.set_num_threads(balancer.split.threads)
            log.info("the cores: %s", balancer.split.reason)
        else:
            local.configure_threads(min(local.initial_workers(cfg), n_clips))
        workers = balancer.split.producers if balancer is not None else local.initial_workers(cfg)
        if not pools:  # producers start (spawn, imports, warm-up) while the backbone is built
            pools += [p for p in [start_producers(replace(plan.cfg, workers=workers), video, flow, audio, n_clips)]
                      if p is not None]
        elif workers > 0:
            pools[0].resize(min(workers, n_clips))
        pool = pools[0] if pools else None
        plan = replace(plan, balancer=balancer)
    summary = _extract(dataset, store, plan, video, flow, audio, overwrite, show_progress, backbone, shard,
                       settings, pool, start)
    return replace(summary, runtime_choice=plan.reason())


def _balancer(plan: Plan, cfg: ExtractConfig, video: VideoConfig, device: torch.device | None,
              backbone: Backbone | None, n_clips: int, settings: Settings) -> Balancer | None:
    """How the local engine splits this CPU's cores (engines/balance.py), from the backbone's
    measured speed (`auto`'s measurement, or the cache's for a runtime given); None on a GPU."""
    if device is None or device.type != "cpu":
        return None
    cores = os.cpu_count() or 1
    chosen = plan.cfg
    trial = None
    if backbone is None:
        trial = next((t for t in plan.choice.trials if (t.runtime, t.precision) == (chosen.runtime, chosen.precision)),
                     None) if plan.choice else None
        trial = trial or measured_speed(chosen.backbone, (video.height, video.width), chosen.batch_for(device),
                                        chosen.runtime, chosen.precision)
    cost, how = None, ""
    if trial is not None and trial.images_per_s > 0:
        threads = trial.threads or max(1, cores - (DEFAULT_WORKERS - 1))  # a measurement from before it said
        cost = threads / trial.images_per_s
        how = f"{trial.label} at {trial.images_per_s:.1f} img/s on {threads} thread{'s' if threads != 1 else ''}"
    workers = None if cfg.workers is None else min(cfg.workers, n_clips)
    return Balancer(cores, cost, how, workers, cfg.threads, most=n_clips, key=cost_key(asdict(settings)))


def _extract(dataset: Dataset, store: FeatureStore, plan: Plan, video: VideoConfig, flow: FlowConfig,
             audio: AudioFeatureConfig, overwrite: bool, show_progress: bool, backbone: Backbone | None,
             shard: tuple[int, int] | None, settings: Settings, pool: ProducerPool | None,
             start: float) -> ExtractSummary:
    cfg = plan.cfg
    if backbone is None and plan.placement is not None:  # Ray: built here for its identity only, on the CPU
        backbone = build_backbone(cfg.backbone, cfg.weights, "cpu", cfg.precision, cfg.batch_size, "torch")
        backbone.runtime = cfg.runtime  # what the actors run (they build their own)
    backbone = backbone or build_backbone(cfg.backbone, cfg.weights, cfg.device, cfg.precision, cfg.batch_size,
                                          cfg.runtime)
    raft = (build_raft(flow, backbone.device, cfg.flow_weights, backbone.batch_size) if is_learned(flow) else None)
    build_seconds = time.perf_counter() - start
    store.root.mkdir(parents=True, exist_ok=True)
    scope = ALL if shard is None else shard_scope(*shard)
    config = store_config(backbone, cfg, video, flow, audio, raft,
                          device=plan.placement.device if plan.placement is not None else None)
    ran_as = {}
    if plan.stored_as is not None:  # a resumed store run otherwise on this device: its settings stay its own
        config["settings"] = _recorded(config["settings"], plan.stored_as)
        ran_as = {"ran_as": {"runtime": cfg.runtime, "precision": cfg.precision, "device": config["extract"]["device"]}}
    with StoreLock(store.root, scope, command=" ".join(sys.argv)):
        store.open_for_writing(config, overwrite=overwrite)
        if dataset.selection:
            store.record("dataset", dataset.selection)  # which clips, chosen how, and the class order
        clips = list(dataset.clips[: cfg.limit] if cfg.limit else dataset.clips)
        if shard is not None:
            clips = [c for c in clips if shard_of(c.id, shard[1]) == shard[0]]
        sid = store.settings_id()
        done = store.done_ids(sid)
        todo = [c for c in clips if c.id not in done]
        skipped = len(clips) - len(todo)
        if skipped:
            log.info("%d of %d clips already extracted in %s; skipping them", skipped, len(clips), store.root)
        stats = Stats()
        if not todo:
            events = iter(())
        elif cfg.engine == "ray":
            from afgen.extraction.engines import ray_data

            events = ray_data.run(todo, settings, cfg, backbone, plan.placement)
        else:
            events = local.run(todo, settings, cfg, backbone, raft, pool=pool, stats=stats, balancer=plan.balancer)
        by_id = {c.id: c for c in todo}
        n_done = n_failed = images = 0
        first_clip = None
        with progress_bar(len(todo), "extract", enabled=show_progress) as bar, stopped_after(
                lambda: f"{skipped + n_done + n_failed} of {len(clips)} clips"):
            for event in events:
                clip = by_id[event[1]]
                with critical():  # a stop signal waits for the clip's files and its manifest line
                    if event[0] == "done":
                        item = event[2]
                        arrays = {"rgb": item.rgb.astype(cfg.dtype), "flow": item.flow.astype(cfg.dtype),
                                  **item.audio}
                        store.write_clip(clip.id, arrays, _record(clip) | item.meta | ran_as | {"settings": sid})
                        n_done += 1
                        images += len(item.rgb) + len(item.flow)
                        if first_clip is None:
                            first_clip = time.perf_counter() - start
                    else:
                        store.record_failure(clip.id, _record(clip) | event[2], event[3])
                        log.warning("failed: %s", event[3])
                        n_failed += 1
                        bar.status(f"[red]{n_failed} failed")
                bar.advance()
    return ExtractSummary(done=n_done, skipped=skipped, failed=n_failed, seconds=time.perf_counter() - start,
                          images=images, store=store.root, build_seconds=build_seconds,
                          first_clip_seconds=first_clip, wait_seconds=stats.wait_seconds,
                          startup_wait_seconds=stats.startup_wait_seconds, backbone_seconds=stats.backbone_seconds,
                          split=stats.split)


@dataclass(frozen=True)
class Plan:
    """How the backbone runs: `cfg` with the runtime and precision to build it with, how `auto`
    chose them, a resumed store's own pair when this device runs it otherwise (`stored_as`: the
    store's settings keep it), and for Ray where its actors run (engines/ray_data.Placement)."""

    cfg: ExtractConfig
    choice: Choice | None = None
    stored_as: dict | None = None
    placement: object | None = None
    #: The local engine on a CPU: how its cores are split (engines/balance.py).
    balancer: Balancer | None = None

    def reason(self) -> str | None:
        """The line the CLI prints about the runtime (None: given, or kept from the store unchanged)."""
        notice = getattr(self.placement, "notice", None)
        return self.choice.reason() if self.choice else notice if notice else None


def _stored_settings(store: FeatureStore, overwrite: bool) -> dict | None:
    """The settings of the store being resumed (None: a new store, --overwrite, or a damaged
    config.json, which open_for_writing reports)."""
    if overwrite or not (store.root / CONFIG).is_file():
        return None
    try:
        settings = store.config()["settings"]
        return settings if isinstance(settings, dict) else None
    except (StoreError, KeyError, TypeError):
        return None


def _request(cfg: ExtractConfig, stored: dict | None) -> tuple[str, str, bool]:
    """The runtime and precision asked for, and whether they are a resumed store's own: `auto`
    keeps the store's runtime (torch where it names none), and its precision when that is auto too."""
    if stored is None or cfg.runtime != "auto":
        return cfg.runtime, cfg.precision, False
    precision = stored.get("precision", "auto") if cfg.precision == "auto" else cfg.precision
    return stored.get("runtime", "torch"), precision, True


def _choose_runtime(cfg: ExtractConfig, stored: dict | None, video: VideoConfig, device: torch.device) -> Plan:
    """The local engine's backbone runtime and precision on `device`: a resumed store's own, as this
    device runs them (a CPU runtime runs as torch on a GPU, with a notice); on a CPU, `auto` (either
    of them) measured (cached per machine, encoders/runtime_choice.py); else as given."""
    runtime, precision, own = _request(cfg, stored)
    if own:
        ran_runtime, ran_precision, notice = for_device(runtime, resolve_precision(precision, device, runtime), device)
        if notice:
            log.info("%s", notice)
        return Plan(replace(cfg, runtime=ran_runtime, precision=ran_precision), stored_as=(
            {"runtime": runtime, "precision": precision} if notice else None))
    if device.type != "cpu" or "auto" not in (runtime, precision):
        return Plan(cfg)
    choice = choose_runtime(cfg.backbone, (video.height, video.width), cfg.batch_for(device), precision, device,
                            runtime, weights=cfg.weights)
    log.info("--runtime %s --precision %s: %s", runtime, precision, choice.reason())
    return Plan(replace(cfg, runtime=choice.runtime, precision=choice.precision), choice)


def _place_on_ray(cfg: ExtractConfig, stored: dict | None) -> Plan:
    """Ray: the runtime, precision and batch of the backbone actors, resolved on one of them (a GPU
    if they get GPUs), so the store records what they run."""
    from afgen.extraction.engines import ray_data

    runtime, precision, own = _request(cfg, stored)
    placement = ray_data.place(cfg, runtime, precision, stored=own)
    ran = replace(cfg, runtime=placement.runtime, precision=placement.precision, batch_size=placement.batch_size)
    stored_as = {"runtime": runtime, "precision": precision} if own and placement.notice else None
    return Plan(ran, stored_as=stored_as, placement=placement)


def _recorded(settings: dict, stored_as: dict) -> dict:
    """`settings` with a resumed store's own runtime and precision (torch is recorded by its absence)."""
    out = {k: v for k, v in settings.items() if k != "runtime"}
    out["precision"] = stored_as["precision"]
    return out | ({"runtime": stored_as["runtime"]} if stored_as["runtime"] != "torch" else {})


def _record(clip: Clip) -> dict:
    return {"id": clip.id, "label": clip.label, "split": clip.split, "source": clip.source}
