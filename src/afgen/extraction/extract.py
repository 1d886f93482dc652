"""`afgen extract`: clips -> feature store. An engine from the table (config.ENGINES; see
extraction/engines/) plans how the backbone runs and schedules the clips; this module picks the
clips (all, or one `--shard I/N`), holds the store's lock and writes every clip the engine hands
back (engines/driver.py's loop), atomically, with its manifest line. A failed clip gets a
manifest line with the reason and the batch goes on; a rerun skips finished clips.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from afgen.config import AudioFeatureConfig, ExtractConfig, FlowConfig, VideoConfig, to_dict
from afgen.contracts.store import CONFIG, FeatureStore
from afgen.contracts.storeconfig import StoreConfig, new_store_config
from afgen.encoders.audio import get_encoder
from afgen.encoders.backbones import Backbone, build_backbone
from afgen.encoders.flows import is_learned
from afgen.encoders.raft import RaftFlow, build_raft
from afgen.encoders.registry import AUDIO, FLOWS
from afgen.errors import AfgenError, StoreError
from afgen.extraction.assemble import Assembler, ClipFeatures, features_in_process  # noqa: F401 - re-exported
from afgen.extraction.dataset import Clip, Dataset
from afgen.extraction.engines import Event
from afgen.extraction.engines.driver import drive
from afgen.extraction.engines.interface import Job, Plan, Request, engine
from afgen.extraction.engines.pool import ProducerPool
from afgen.extraction.lock import ALL, StoreLock, shard_scope
from afgen.extraction.shards import shard_of
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
                 audio: AudioFeatureConfig, raft: RaftFlow | None = None, device: str | None = None,
                 stored_as: dict | None = None) -> dict:
    """config.json: the settings that decide the bytes (compared on rerun) and provenance
    (`device`: where the backbone ran, when not where `backbone` was built: Ray's actors;
    `stored_as`: a resumed store's own runtime and precision, which its settings keep)."""
    encoder = get_encoder(audio.encoder, audio)
    settings = {
        "video": to_dict(video) | {"decoder_threads": None},
        "flow": flow_settings(flow, raft),
        "audio": encoder.params(),
        **backbone.identity(),
        "dtype": cfg.dtype,
    }
    return new_store_config(
        _recorded(settings, stored_as) if stored_as is not None else settings,
        {"batch_size": cfg.batch_size, "device": device or str(backbone.device),
         "workers": cfg.workers, "weights_arg": cfg.weights, "engine": cfg.engine,
         "flow_weights_arg": cfg.flow_weights if raft is not None else None,
         "audio_weights_arg": audio.weights if audio.encoder != "logmel" else None},
        package_versions())


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
    """Check the request, let the engine plan the run (the local engine starts its producers,
    unless `pools` holds them: a pool started there is added to it) and extract."""
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
    n_clips = len(dataset.clips[: cfg.limit] if cfg.limit else dataset.clips)
    stored = _stored_settings(store, overwrite)
    request = Request(cfg, video, flow, audio, n_clips, stored, backbone is not None, pools,
                      clips=_selected(dataset, cfg, shard) if stored is None else [])
    plan = engine(cfg.engine).plan(request)
    summary = _extract(dataset, store, plan, video, flow, audio, overwrite, show_progress, backbone, shard, start)
    return replace(summary, runtime_choice=plan.reason())


def _extract(dataset: Dataset, store: FeatureStore, plan: Plan, video: VideoConfig, flow: FlowConfig,
             audio: AudioFeatureConfig, overwrite: bool, show_progress: bool, backbone: Backbone | None,
             shard: tuple[int, int] | None, start: float) -> ExtractSummary:
    cfg = plan.cfg
    if backbone is None and plan.remote_device is not None:  # built here for its identity only, on the CPU
        backbone = build_backbone(cfg.backbone, cfg.weights, "cpu", cfg.precision, cfg.batch_size, "torch")
        backbone.runtime = cfg.runtime  # what the remote backbones run (they build their own)
    backbone = backbone or build_backbone(cfg.backbone, cfg.weights, cfg.device, cfg.precision, cfg.batch_size,
                                          cfg.runtime)
    raft = (build_raft(flow, backbone.device, cfg.flow_weights, backbone.batch_size) if is_learned(flow) else None)
    build_seconds = time.perf_counter() - start
    store.root.mkdir(parents=True, exist_ok=True)
    scope = ALL if shard is None else shard_scope(*shard)
    config = store_config(backbone, cfg, video, flow, audio, raft, device=plan.remote_device, stored_as=plan.stored_as)
    ran_as = {}
    if plan.stored_as is not None:  # a resumed store run otherwise on this device: its settings stay its own
        ran_as = {"ran_as": {"runtime": cfg.runtime, "precision": cfg.precision,
                             "device": StoreConfig(config).extract["device"]}}
    with StoreLock(store.root, scope, command=" ".join(sys.argv)):
        store.open_for_writing(config, overwrite=overwrite)
        if dataset.selection:
            store.record("dataset", dataset.selection)  # which clips, chosen how, and the class order
        clips = _selected(dataset, cfg, shard)
        sid = store.settings_id()
        done = store.done_ids(sid)
        todo = [c for c in clips if c.id not in done]
        skipped = len(clips) - len(todo)
        if skipped:
            log.info("%d of %d clips already extracted in %s; skipping them", skipped, len(clips), store.root)
        job = Job(plan.settings, cfg, backbone, raft, plan)
        events = engine(cfg.engine).run(todo, job) if todo else iter(())
        written = _Written(start)

        def commit(clip: Clip, event: Event) -> None:
            if event[0] == "done":
                item = event[2]
                arrays = {"rgb": item.rgb.astype(cfg.dtype), "flow": item.flow.astype(cfg.dtype), **item.audio}
                store.write_clip(clip.id, arrays, _record(clip) | item.meta | ran_as | {"settings": sid})
                written.add(len(item.rgb) + len(item.flow))
            else:
                store.record_failure(clip.id, _record(clip) | event[2], event[3])
                log.warning("failed: %s", event[3])

        tally = drive(events, todo, commit, label="extract", show_progress=show_progress, before=skipped,
                      of=len(clips))
    stats = job.stats
    return ExtractSummary(done=tally.done, skipped=skipped, failed=tally.failed, seconds=time.perf_counter() - start,
                          images=written.images, store=store.root, build_seconds=build_seconds,
                          first_clip_seconds=written.first_clip, wait_seconds=stats.wait_seconds,
                          startup_wait_seconds=stats.startup_wait_seconds, backbone_seconds=stats.backbone_seconds,
                          split=stats.split)


def _selected(dataset: Dataset, cfg: ExtractConfig, shard: tuple[int, int] | None) -> list[Clip]:
    """The clips this run is for: the first --limit, of --shard's only."""
    clips = list(dataset.clips[: cfg.limit] if cfg.limit else dataset.clips)
    return clips if shard is None else [c for c in clips if shard_of(c.id, shard[1]) == shard[0]]


@dataclass
class _Written:
    """Images written so far, and when the first clip was (seconds from `start`)."""

    start: float
    images: int = 0
    first_clip: float | None = None

    def add(self, images: int) -> None:
        self.images += images
        if self.first_clip is None:
            self.first_clip = time.perf_counter() - self.start


def _stored_settings(store: FeatureStore, overwrite: bool) -> dict | None:
    """The settings of the store being resumed (None: a new store, --overwrite, or a damaged
    config.json, which open_for_writing reports)."""
    if overwrite or not (store.root / CONFIG).is_file():
        return None
    try:
        settings = store.store_config().settings
        return settings if isinstance(settings, dict) else None
    except (StoreError, KeyError, TypeError):
        return None


def _recorded(settings: dict, stored_as: dict) -> dict:
    """`settings` with a resumed store's own runtime and precision (torch is recorded by its absence)."""
    out = {k: v for k, v in settings.items() if k != "runtime"}
    out["precision"] = stored_as["precision"]
    return out | ({"runtime": stored_as["runtime"]} if stored_as["runtime"] != "torch" else {})


def _record(clip: Clip) -> dict:
    return {"id": clip.id, "label": clip.label, "split": clip.split, "source": clip.source}
