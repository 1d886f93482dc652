"""The Ray engine: the same per-clip work, scheduled by Ray Data on one machine or a cluster.

    clips (minus finished) -> map: decode + flow + audio (producer.py, CPU tasks)
                           -> map_batches: the backbone (an actor class; a GPU each if any)
                           -> this process: each clip written atomically with its manifest line

Workers never write to the store: features come back to the driver (a few hundred KB per
clip), which writes them exactly as the local engine does. A task or actor that dies is
retried by Ray; a clip it held is redone, never half-written. The store must live on a path
the driver sees; the clips on a path every node sees.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from afgen.config import ExtractConfig, FlowConfig, device_type
from afgen.encoders.backbones import Backbone
from afgen.encoders.devices import for_device, resolve_device, resolve_precision
from afgen.encoders.runtimes.resolve import resolve_runtime
from afgen.errors import AfgenError
from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Event
from afgen.extraction.engines.interface import Job, Plan, Request, requested_runtime
from afgen.extraction.engines.pool import producer_settings
from afgen.extraction.producer import Settings, produce

log = logging.getLogger(__name__)

INSTALL = 'pip install "afgen[ray]"'


def require() -> None:
    """Fail fast, with the install command, when Ray Data is missing."""
    _ray()


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise AfgenError(f"--engine ray needs Ray Data, which is not installed: {INSTALL}") from None
    return ray


def connect(cfg: ExtractConfig) -> None:
    """Join the cluster at cfg.ray_address, or start a local Ray instance (once per process)."""
    ray = _ray()
    if ray.is_initialized():
        return
    if cfg.ray_address:
        try:
            ray.init(address=cfg.ray_address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise AfgenError(f"cannot connect to the Ray cluster at {cfg.ray_address!r} ({exc}); start one with "
                             "`ray start --head` or drop --ray-address to use a local instance") from None
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)


def produce_row(row: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """One clip's producer messages gathered into one row: images, audio, meta or the error."""
    import cv2

    cv2.setNumThreads(1)  # as in the local engine's workers: a task holds one CPU
    parts: dict[str, list[np.ndarray]] = {"rgb": [], "flow": []}
    meta, audio, error = {}, {}, ""
    for message in produce(row["id"], Path(row["path"]), settings):
        if message[0] == "images":
            parts[message[2]].append(message[3])
        elif message[0] == "done":
            meta, audio = message[2], message[3]
        else:
            meta, error = message[2], message[3]
    h, w = settings.video.height, settings.video.width
    empty = np.zeros((0, h, w, 3), np.uint8)
    ok = not error
    return {
        "id": row["id"], "error": error, "meta": json.dumps(meta),
        "rgb": np.concatenate(parts["rgb"]) if ok and parts["rgb"] else empty,
        "flow": np.concatenate(parts["flow"]) if ok and parts["flow"] else empty,
        "audio": np.asarray(audio.get("audio", np.zeros(0)), np.float32),
        "audio_frames": np.asarray(audio.get("audio_frames", np.zeros((0, 0))), np.float32),
    }


class BackboneActor:
    """Ray Data actor: holds one backbone; turns clips' images into per-clip features."""

    def __init__(self, name: str, weights: str, device: str, precision: str, batch_size: int, threads: int,
                 flow: FlowConfig | None = None, flow_weights: str = "default", runtime: str = "torch") -> None:
        import torch

        from afgen.encoders.backbones import build_backbone
        from afgen.encoders.flows import is_learned
        from afgen.encoders.raft import build_raft

        if device == "cpu":
            # One thread more than the CPUs it reserves, as the local engine gives its backbone:
            # it uses the core a producer leaves idle while waiting on I/O or the queue.
            torch.set_num_threads(max(1, min(os.cpu_count() or 1, threads + 1)))
        self.backbone = build_backbone(name, weights, device, precision, batch_size, runtime)
        self.raft = (build_raft(flow, self.backbone.device, flow_weights, batch_size)
                     if flow is not None and is_learned(flow) else None)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        ids = list(batch["id"])
        ok = [i for i, error in enumerate(batch["error"]) if not error]
        if self.raft is not None:  # learned flow: made here, beside the backbone, from the RGB frames
            batch = dict(batch)
            batch["flow"] = [self.raft.images(batch["rgb"][i]) if i in ok else batch["flow"][i]
                             for i in range(len(ids))]
        images = [batch[kind][i] for i in ok for kind in ("rgb", "flow")]
        dim = self.backbone.dim
        features = self.backbone(np.concatenate(images)) if images else np.zeros((0, dim), np.float32)
        rgb_out = [np.zeros((0, dim), np.float32) for _ in ids]
        flow_out = [np.zeros((0, dim), np.float32) for _ in ids]
        pos = 0
        for i in ok:
            n_rgb, n_flow = len(batch["rgb"][i]), len(batch["flow"][i])
            rgb_out[i] = features[pos:pos + n_rgb]
            flow_out[i] = features[pos + n_rgb:pos + n_rgb + n_flow]
            pos += n_rgb + n_flow
        return {"id": ids, "error": list(batch["error"]), "meta": list(batch["meta"]), "rgb": rgb_out,
                "flow": flow_out, "audio": list(batch["audio"]), "audio_frames": list(batch["audio_frames"])}


def _actors(cfg: ExtractConfig, gpus: float) -> int:
    if cfg.ray_actors:
        return cfg.ray_actors
    return max(1, int(gpus)) if gpus else 1


@dataclass(frozen=True)
class Placement:
    """Where the backbone actors run and what they run, resolved on one of them."""

    #: cuda (one GPU each, Ray's choice of GPU) or cpu.
    device: str
    actors: int
    actor_cpus: int
    producers: int
    runtime: str
    precision: str
    batch_size: int
    #: Set when the runtime or precision asked for (a store's own) runs otherwise on the actors.
    notice: str | None = None


def actor_settings(device: str, runtime: str, precision: str, stored: bool) -> tuple[str, str, str | None]:
    """The runtime and precision a backbone actor on `device` runs: `auto` resolved for its hardware,
    or (`stored`: a store's own pair) as that device runs it. Called on an actor's resources."""
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev, runtime)
    if stored:
        return for_device(runtime, precision, dev)
    return resolve_runtime(runtime, dev, precision), precision, None


def place(cfg: ExtractConfig, runtime: str | None = None, precision: str | None = None,
          stored: bool = False) -> Placement:
    """Connect, then decide the actors: a GPU each where the cluster has GPUs and --device allows
    (auto, cuda, cuda:N), else CPUs; their runtime, precision and batch size are resolved for that
    device by a task with an actor's resources, not on this (driver's) machine."""
    ray = _ray()
    connect(cfg)
    resources = ray.cluster_resources()
    kind = device_type(cfg.device)
    gpus = resources.get("GPU", 0.0) if kind in ("auto", "cuda") else 0.0
    if kind == "cuda" and not gpus:
        raise AfgenError(f"--device {cfg.device}, but the Ray cluster has no GPUs; use --device cpu")
    if gpus and cfg.device.startswith("cuda:"):
        log.info("Ray gives each backbone actor a GPU of its own: --device %s runs them on GPUs, but not on GPU %s "
                 "in particular", cfg.device, cfg.device[5:])
    actors = _actors(cfg, gpus)
    actor_cpus = 1 if gpus else cfg.ray_actor_cpus
    producers = cfg.ray_producers or max(1, int(resources.get("CPU", 1)) - actors * actor_cpus)
    device = "cuda" if gpus else "cpu"
    probe = ray.remote(num_gpus=1 if gpus else 0, num_cpus=actor_cpus)(actor_settings)
    runtime, precision, notice = ray.get(probe.remote(device, runtime or cfg.runtime, precision or cfg.precision,
                                                      stored))
    if notice:
        log.info("Ray: %s", notice)
    return Placement(device, actors, actor_cpus, producers, runtime, precision, cfg.batch_for(device), notice)


def actor_kwargs(placement: Placement, backbone: Backbone, cfg: ExtractConfig, settings: Settings) -> dict:
    """What each BackboneActor is built with: the placement's device, runtime, precision and batch."""
    return {"name": backbone.name, "weights": cfg.weights, "device": placement.device,
            "precision": placement.precision, "batch_size": placement.batch_size, "threads": placement.actor_cpus,
            "flow": settings.flow, "flow_weights": cfg.flow_weights, "runtime": placement.runtime}


def plan(request: Request) -> Plan:
    """Ray's plan: Ray Data installed (checked before the driver-side backbone, so a missing Ray
    fails fast), the CLI's early producer processes closed (Ray runs its own), and the actors'
    runtime, precision and batch resolved on one of them (a GPU if they get GPUs), so the store
    records what they run. With a backbone given, `run` places the actors as that backbone runs."""
    for pool in request.pools:  # started for the local engine: not needed
        pool.close()
    require()
    cfg = request.cfg
    settings = producer_settings(cfg, request.video, request.flow, request.audio)
    if request.backbone_given:
        return Plan(cfg, settings)
    runtime, precision, own = requested_runtime(cfg, request.stored)
    placement = place(cfg, runtime, precision, stored=own)
    ran = replace(cfg, runtime=placement.runtime, precision=placement.precision, batch_size=placement.batch_size)
    stored_as = {"runtime": runtime, "precision": precision} if own and placement.notice else None
    return Plan(ran, settings, notice=placement.notice, stored_as=stored_as, remote_device=placement.device,
                placement=placement)


def run(todo: list[Clip], job: Job) -> Iterator[Event]:
    """Extract `todo` on Ray: one event per clip, in completion order (see engines/__init__).
    Without a placement in `job.plan` (extract's plan makes one), the actors run the backbone's
    runtime and precision as their device runs them; they build their own backbone (and RAFT)."""
    from afgen.extraction.assemble import ClipFeatures

    settings, cfg, backbone = job.settings, job.cfg, job.backbone
    placement = job.plan.placement if job.plan is not None else None
    ray = _ray()
    placement = placement or place(cfg, backbone.runtime, backbone.precision, stored=True)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # afgen shows its own, per clip
    # One clip per block: each finished clip leaves the actor at once (Ray Data otherwise packs
    # outputs into blocks of up to 128 MiB, and features are small: nothing would arrive before
    # the end) and each decoded clip reaches the backbone as soon as it is ready.
    context.target_max_block_size = 1
    producers, actors, gpus = placement.producers, placement.actors, placement.device == "cuda"
    blocks = min(len(todo), max(4 * producers, math.ceil(len(todo) / 8)))
    items = [{"id": c.id, "path": str(Path(c.path).resolve())} for c in todo]
    log.info("Ray: %d clips, %d producer tasks at a time, %d backbone actor(s)%s running %s %s, batch %d",
             len(todo), producers, actors, " with a GPU each" if gpus else "", placement.runtime,
             placement.precision, placement.batch_size)
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    # flat_map (one row per clip) rather than map: Ray Data then never fuses the producers
    # into the backbone actor, where decoding would stall the backbone instead of overlapping it.
    ds = ds.flat_map(lambda row: [produce_row(row, settings)], num_cpus=1,
                     compute=ray.data.TaskPoolStrategy(size=producers))
    ds = ds.map_batches(
        BackboneActor, batch_size=cfg.ray_clips_per_call, batch_format="numpy",
        fn_constructor_kwargs=actor_kwargs(placement, backbone, cfg, settings),
        compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=1 if gpus else 0, num_cpus=placement.actor_cpus)
    try:
        for row in ds.iter_rows():
            meta = json.loads(row["meta"])
            if row["error"]:
                yield ("failed", row["id"], meta, row["error"])
                continue
            audio = {}
            if meta.get("has_audio"):
                audio = {"audio": np.asarray(row["audio"]), "audio_frames": np.asarray(row["audio_frames"])}
            yield ("done", row["id"], ClipFeatures(row["id"], np.asarray(row["rgb"]), np.asarray(row["flow"]),
                                                   meta, audio))
    except ray.exceptions.RayError as exc:
        raise AfgenError(f"the Ray pipeline stopped ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                         "finished clips are kept: rerun the same command to continue") from None
