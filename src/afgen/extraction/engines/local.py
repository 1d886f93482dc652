"""The local engine: producer processes on this machine feed one backbone in this process.

Worker processes decode, compute flow and audio features (producer.py) and stream image
chunks through a bounded queue; the Assembler batches images across clips through the
backbone. A worker that dies mid-clip costs that clip (a failure line); the rest go on.
`plan` decides first how the backbone runs (`--runtime auto`'s measurement) and how the cores are
split (balance.py), and starts the producers while the backbone is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, replace

import torch

from afgen.config import AHEAD_CLIPS, DEFAULT_WORKERS, ExtractConfig, VideoConfig
from afgen.encoders.backbones import Backbone, set_threads
from afgen.encoders.devices import for_device, resolve_device, resolve_precision
from afgen.encoders.runtime_choice import choose_runtime, measured_speed, will_measure
from afgen.encoders.runtimes.openvino import OPENVINO
from afgen.extraction.assemble import Assembler, ClipFeatures
from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Event, Stats
from afgen.extraction.engines.balance import Balancer, Split, cost_key
from afgen.extraction.engines.interface import Job, Plan, Request, requested_runtime
from afgen.extraction.engines.pool import ProducerPool, producer_settings, start_producers
from afgen.extraction.producer import Settings, produce

log = logging.getLogger(__name__)


def plan(request: Request) -> Plan:
    """The backbone on this machine's device (`--device`): its batch, its runtime and precision (a
    resumed store's own, or `auto` measured on a CPU: a new store's first clips go to the producers
    first), the split of a CPU's cores between it and the producers, and the producers started (or
    the CLI's early ones resized) while it is built."""
    cfg, n_clips, pools = request.cfg, request.n_clips, request.pools
    device = resolve_device(cfg.device)
    if cfg.batch_size is None:  # this device's default
        cfg = replace(cfg, batch_size=cfg.batch_for(device))
    settings = producer_settings(cfg, request.video, request.flow, request.audio)
    torch.set_num_threads(measuring_threads(cfg, n_clips))
    chosen, early = Plan(cfg, settings), None
    if not request.backbone_given:
        # a new store's first clips go to the producers (the CLI's, started before torch loaded,
        # or started now) before `auto` measures: they work through its builds and exports, and
        # pause while it times
        early = _hand_out_early(request, cfg, device)
        chosen = _choose_runtime(cfg, settings, request.stored, request.video, device,
                                 early.paused if early is not None else nullcontext)
    balancer = _balancer(chosen, cfg, request, device, settings, len(early.handed) if early is not None else 0)
    if balancer is not None:  # before the backbone is built: its runtime takes the threads
        torch.set_num_threads(balancer.threads)
        log.info("the cores: %s%s", balancer.split.reason, f" (the backbone takes all {balancer.threads} while "
                 f"the {balancer.ahead} clips begun during the measurement come through)" if balancer.draining else "")
    else:
        configure_threads(min(initial_workers(cfg), n_clips))
    workers = balancer.split.producers if balancer is not None else initial_workers(cfg)
    if not pools:  # producers start (spawn, imports, warm-up) while the backbone is built
        pools += [p for p in [start_producers(replace(chosen.cfg, workers=workers), request.video, request.flow,
                                              request.audio, n_clips)] if p is not None]
    elif workers > 0:
        pools[0].resize(min(workers, n_clips))
    return replace(chosen, balancer=balancer, pool=pools[0] if pools else None)


def _balancer(chosen: Plan, cfg: ExtractConfig, request: Request, device: torch.device,
              settings: Settings, ahead: int = 0) -> Balancer | None:
    """How this CPU's cores are split (engines/balance.py), from the backbone's measured speed
    (`auto`'s measurement, or the cache's for a runtime given); None on a GPU. `ahead`: clips
    handed to the producers before the measurement."""
    if device.type != "cpu":
        return None
    cores = os.cpu_count() or 1
    video, n_clips, ran = request.video, request.n_clips, chosen.cfg
    trial = None
    if not request.backbone_given:
        trial = next((t for t in chosen.choice.trials if (t.runtime, t.precision) == (ran.runtime, ran.precision)),
                     None) if chosen.choice else None
        trial = trial or measured_speed(ran.backbone, (video.height, video.width), ran.batch_for(device),
                                        ran.runtime, ran.precision)
    cost, how = None, ""
    if trial is not None and trial.images_per_s > 0:
        threads = trial.threads or max(1, cores - (DEFAULT_WORKERS - 1))  # a measurement from before it said
        cost = threads / trial.images_per_s
        how = f"{trial.label} at {trial.images_per_s:.1f} img/s on {threads} thread{'s' if threads != 1 else ''}"
    workers = None if cfg.workers is None else min(cfg.workers, n_clips)
    backbone = {"backbone": ran.backbone, "runtime": ran.runtime, "precision": ran.precision,
                "batch": ran.batch_for(device), "cores": cores, "workers": cfg.workers, "threads": cfg.threads}
    return Balancer(cores, cost, how, workers, cfg.threads, most=n_clips, key=cost_key(asdict(settings)),
                    split_key=cost_key({**asdict(settings), **backbone}), ahead=ahead, streams=ran.runtime == OPENVINO)


def _hand_out_early(request: Request, cfg: ExtractConfig, device: torch.device) -> ProducerPool | None:
    """The producers given a new store's first AHEAD_CLIPS clips now (started now if the CLI did
    not start them), when `auto` is about to measure the runtimes on this CPU; else None."""
    runtime, precision, own = requested_runtime(cfg, request.stored)
    video = request.video
    if own or not request.clips or "auto" not in (runtime, precision) or not will_measure(
            cfg.backbone, (video.height, video.width), cfg.batch_for(device), precision, device, runtime):
        return None
    pools = request.pools
    if not pools:
        pools += [p for p in [start_producers(cfg, request.video, request.flow, request.audio,
                                              request.n_clips)] if p is not None]
    if not pools or pools[0].handed:
        return pools[0] if pools else None
    pools[0].ahead(request.clips[:AHEAD_CLIPS])
    return pools[0]


def _choose_runtime(cfg: ExtractConfig, settings: Settings, stored: dict | None, video: VideoConfig,
                    device: torch.device, hush: Callable[[], AbstractContextManager] = nullcontext) -> Plan:
    """The backbone's runtime and precision on `device`: a resumed store's own, as this device runs
    them (a CPU runtime runs as torch on a GPU, with a notice); on a CPU, `auto` (either of them)
    measured (cached per machine, encoders/runtime_choice.py); else as given."""
    runtime, precision, own = requested_runtime(cfg, stored)
    if own:
        ran_runtime, ran_precision, notice = for_device(runtime, resolve_precision(precision, device, runtime), device)
        if notice:
            log.info("%s", notice)
        return Plan(replace(cfg, runtime=ran_runtime, precision=ran_precision), settings, stored_as=(
            {"runtime": runtime, "precision": precision} if notice else None))
    if device.type != "cpu" or "auto" not in (runtime, precision):
        return Plan(cfg, settings)
    choice = choose_runtime(cfg.backbone, (video.height, video.width), cfg.batch_for(device), precision, device,
                            runtime, weights=cfg.weights, hush=hush)
    log.info("--runtime %s --precision %s: %s", runtime, precision, choice.reason())
    return Plan(replace(cfg, runtime=choice.runtime, precision=choice.precision), settings, choice)


def run(todo: list[Clip], job: Job) -> Iterator[Event]:
    """Extract `todo` here: ("done", clip_id, ClipFeatures) or ("failed", clip_id, meta, error) per clip.
    With a learned flow (`job.raft`), flow images are computed here, beside the backbone. The
    plan's `pool`: producer processes already started (they warm up while the backbone is built);
    without one, the balancer's (or cfg.workers) are started now. The plan's `balancer`: the split
    of the cores (balance.py), re-checked from the producers' cost as clips finish; without one,
    the backbone gets the cores the producers leave. `job.stats` collects where the time went."""
    cfg, settings, backbone, flow, stats = job.cfg, job.settings, job.backbone, job.raft, job.stats
    callers_threads = torch.get_num_threads()  # put back at the end: a library caller's (predict's)
    pool = job.plan.pool if job.plan is not None else None
    balancer = job.plan.balancer if job.plan is not None else None
    workers = balancer.split.producers if balancer is not None else initial_workers(cfg)
    own = pool is None and workers > 0
    if own:
        pool = ProducerPool(settings, min(workers, len(todo)), cfg.queue_depth)
    if balancer is not None:
        set_threads(backbone, balancer.threads)
        stats.split = balancer.split.reason
    else:
        configure_threads(pool.workers if pool is not None else 0)
    assembler = Assembler(backbone, flow)
    messages = pool.messages(todo, stats) if pool is not None else _in_process(todo, settings)
    trying = balancer is not None and pool is not None

    def through() -> None:
        """A clip is through (done or failed): a trial of splits times the backbone's images per
        wall second, and the early clips end with their last one."""
        if trying:
            _apply(balancer, balancer.finished(assembler.images, pool.settled), pool, backbone, stats)

    def done(features: Iterator[ClipFeatures]) -> Iterator[Event]:
        for f in features:
            yield ("done", f.clip_id, f)
            through()

    try:
        for message in messages:
            kind, clip_id = message[0], message[1]
            if kind == "images":
                yield from done(assembler.add(clip_id, message[2], message[3]))
            elif kind == "done":
                if trying:
                    _rebalance(balancer, message[2], pool, backbone, stats)
                yield from done(assembler.finish(clip_id, message[2], message[3]))
            elif kind == "failed":
                assembler.drop(clip_id)
                yield ("failed", clip_id, message[2], message[3])
                through()
        yield from done(assembler.flush())
    finally:
        stats.backbone_seconds += assembler.seconds
        torch.set_num_threads(callers_threads)
        if own:
            pool.close()


def _in_process(clips: list[Clip], settings: Settings) -> Iterator[tuple]:
    for clip in clips:
        yield from produce(clip.id, clip.path, settings)


def _rebalance(balancer: Balancer, meta: dict, pool: ProducerPool, backbone: Backbone, stats: Stats) -> None:
    """Count a finished clip's producer cost; apply the split when the measurement changed it."""
    frames = meta.get("t") or 0
    _apply(balancer, balancer.observe(meta.get("cpu_seconds"), 2 * frames - 1 if frames else 0), pool, backbone,
           stats)


def _apply(balancer: Balancer, new: Split | None, pool: ProducerPool, backbone: Backbone, stats: Stats) -> None:
    """Run the balancer's new split, if it has one: processes started or retired, threads rebuilt."""
    stats.split = balancer.split.reason
    if new is None:
        return
    log.info("re-balancing: %s", new.reason)
    pool.resize(new.producers)
    set_threads(backbone, new.threads)


def initial_workers(cfg: ExtractConfig) -> int:
    """Producer processes to start before anything is measured: --workers, else every core but one."""
    return DEFAULT_WORKERS if cfg.workers is None else cfg.workers


def measuring_threads(cfg: ExtractConfig, n_clips: int) -> int:
    """The backbone's threads while `--runtime auto` measures: --threads, else the cores
    --workers leave (and one more), else every core (the split then follows the measurement)."""
    cores = os.cpu_count() or 1
    if cfg.threads is not None:
        return cfg.threads
    if cfg.workers is not None:
        return max(1, cores - max(0, min(cfg.workers, n_clips) - 1))
    return cores


def configure_threads(workers: int) -> None:
    """Leave the producer processes room: the backbone gets the cores they do not need."""
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - max(0, workers - 1)))
