"""`afgen extract`: clips -> feature store, with producer processes feeding the backbone.

Worker processes decode, compute flow and audio features (producer.py) and stream image
chunks through a bounded queue; the main process batches images across clips through the
backbone and writes each finished clip atomically. A failed clip gets a manifest line with
the reason and the batch goes on; a rerun skips finished clips.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import platform
import queue
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from afgen.audio import get_encoder
from afgen.config import AudioFeatureConfig, ExtractConfig, FlowConfig, VideoConfig, to_dict
from afgen.dataset import Clip, Dataset
from afgen.errors import AfgenError, StoreError
from afgen.lock import ALL, StoreLock
from afgen.producer import Settings, produce, worker_loop
from afgen.progress import progress_bar
from afgen.store import FeatureStore
from afgen.visual import Backbone, build_backbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractSummary:
    done: int
    skipped: int
    failed: int
    seconds: float
    images: int
    store: Path


@dataclass
class ClipFeatures:
    """Everything extracted for one clip."""

    clip_id: str
    rgb: np.ndarray  # [t, D]
    flow: np.ndarray  # [t-1, D]
    meta: dict
    audio: dict  # {"audio": [A], "audio_frames": [t, B]} or {}


class Assembler:
    """Batches images from many clips through the backbone and reassembles per-clip features.

    Batches are always full (except the final flush), so memory is bounded by the batch size
    and the backbone never sees one small batch per clip.
    """

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self.buffer: deque[list] = deque()  # [clip_id, kind, images]
        self.buffered = 0
        self.parts: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        self.outstanding: Counter[str] = Counter()
        self.finished: dict[str, tuple[dict, dict]] = {}
        self.images = 0

    def add(self, clip_id: str, kind: str, images: np.ndarray) -> Iterator[ClipFeatures]:
        self.buffer.append([clip_id, kind, images])
        self.buffered += len(images)
        self.outstanding[clip_id] += len(images)
        while self.buffered >= self.backbone.batch_size:
            self._run(self.backbone.batch_size)
        yield from self._ready()

    def finish(self, clip_id: str, meta: dict, audio: dict) -> Iterator[ClipFeatures]:
        self.finished[clip_id] = (meta, audio)
        yield from self._ready()

    def drop(self, clip_id: str) -> None:
        """Forget a failed clip, including images still waiting for the backbone."""
        kept = deque(seg for seg in self.buffer if seg[0] != clip_id)
        self.buffered = sum(len(seg[2]) for seg in kept)
        self.buffer = kept
        for key in [k for k in self.parts if k[0] == clip_id]:
            del self.parts[key]
        self.outstanding.pop(clip_id, None)
        self.finished.pop(clip_id, None)

    def flush(self) -> Iterator[ClipFeatures]:
        if self.buffered:
            self._run(self.buffered)
        yield from self._ready()

    def _run(self, n: int) -> None:
        owners, chunks, need = [], [], n
        while need:
            seg = self.buffer[0]
            take = seg[2][:need]
            owners.append((seg[0], seg[1], len(take)))
            chunks.append(take)
            need -= len(take)
            if len(take) == len(seg[2]):
                self.buffer.popleft()
            else:
                seg[2] = seg[2][len(take):]
        self.buffered -= n
        feats = self.backbone(np.concatenate(chunks))
        self.images += n
        pos = 0
        for clip_id, kind, count in owners:
            self.parts[(clip_id, kind)].append(feats[pos:pos + count])
            self.outstanding[clip_id] -= count
            pos += count

    def _ready(self) -> Iterator[ClipFeatures]:
        for clip_id in [c for c in self.finished if self.outstanding[c] == 0]:
            meta, audio = self.finished.pop(clip_id)
            self.outstanding.pop(clip_id, None)
            dim = self.backbone.dim
            rgb = self.parts.pop((clip_id, "rgb"), [np.empty((0, dim), np.float32)])
            flow = self.parts.pop((clip_id, "flow"), [np.empty((0, dim), np.float32)])
            yield ClipFeatures(clip_id, np.concatenate(rgb), np.concatenate(flow), meta, audio)


def features_in_process(clip_id: str, path: Path, backbone: Backbone, settings: Settings) -> ClipFeatures:
    """Extract one clip in this process (used by `afgen predict`); raises AfgenError if it fails."""
    assembler = Assembler(backbone)
    out = []
    for message in produce(clip_id, path, settings):
        if message[0] == "failed":
            raise AfgenError(message[3])
        if message[0] == "images":
            out += assembler.add(message[1], message[2], message[3])
        else:
            out += assembler.finish(message[1], message[2], message[3])
    out += assembler.flush()
    return out[0]


def package_versions() -> dict[str, str]:
    names = ["afgen", "torch", "torchvision", "av", "opencv-contrib-python-headless", "numpy",
             "librosa", "lightning"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def store_config(backbone: Backbone, cfg: ExtractConfig, video: VideoConfig, flow: FlowConfig,
                 audio: AudioFeatureConfig) -> dict:
    """config.json: the settings that decide the bytes (compared on rerun) and provenance."""
    encoder = get_encoder(audio.encoder, audio)
    settings = {
        "video": to_dict(video) | {"decoder_threads": None},
        "flow": to_dict(flow),
        "audio": encoder.params(),
        **backbone.identity(),
        "dtype": cfg.dtype,
    }
    return {"settings": settings, "versions": package_versions(),
            "extract": {"batch_size": cfg.batch_size, "device": str(backbone.device),
                        "workers": cfg.workers, "weights_arg": cfg.weights}}


def _ordered_messages(clips: list[Clip], settings: Settings, workers: int, depth: int,
                      ) -> Iterator[tuple]:
    """Producer messages for all clips: in this process (workers=0) or from worker processes."""
    if workers <= 0:
        for clip in clips:
            yield from produce(clip.id, clip.path, settings)
        return
    ctx = mp.get_context("spawn")
    jobs, results = ctx.Queue(), ctx.Queue(maxsize=depth * max(2, workers))
    for clip in clips:
        jobs.put((clip.id, str(clip.path)))
    for _ in range(workers):
        jobs.put(None)
    procs = {i: ctx.Process(target=worker_loop, args=(i, jobs, results, settings), daemon=True)
             for i in range(workers)}
    for p in procs.values():
        p.start()
    in_flight: dict[int, str] = {}
    exited: set[int] = set()
    paths = {c.id: c.path for c in clips}
    try:
        while len(exited) < len(procs):
            try:
                message = results.get(timeout=2.0)
            except queue.Empty:
                for i, p in procs.items():
                    if i not in exited and not p.is_alive():  # crashed (e.g. a decoder segfault)
                        exited.add(i)
                        if i in in_flight:
                            cid = in_flight.pop(i)
                            yield ("failed", cid, {}, f"{paths[cid]}: worker process died "
                                   f"(exit code {p.exitcode}) while decoding")
                if len(exited) == len(procs) and not jobs.empty():
                    raise AfgenError("every worker process died; rerun with --workers 0 to see why") from None
                continue
            kind = message[0]
            if kind == "start":
                in_flight[message[2]] = message[1]
            elif kind == "exit":
                exited.add(message[2])
            else:
                if kind in ("done", "failed"):
                    in_flight = {w: c for w, c in in_flight.items() if c != message[1]}
                yield message
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


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
) -> ExtractSummary:
    """Extract v_R, v_F and audio features of every clip into the store at `out`."""
    start = time.perf_counter()
    if cfg.dtype not in ("float16", "float32"):
        raise AfgenError(f"unknown --dtype {cfg.dtype!r}; use float16 or float32")
    store = FeatureStore(out)
    if store.root.exists() and not store.root.is_dir():
        raise StoreError("exists and is a file, not a folder: choose another output folder for the feature store",
                         store.root)
    backbone = backbone or build_backbone(cfg.backbone, cfg.weights, cfg.device, cfg.precision,
                                          cfg.batch_size)
    store.root.mkdir(parents=True, exist_ok=True)
    with StoreLock(store.root, ALL, command=" ".join(sys.argv)):
        store.open_for_writing(store_config(backbone, cfg, video, flow, audio), overwrite=overwrite)
        return _fill(store, dataset, cfg, Settings(video=video, flow=flow, audio=audio, chunk=cfg.batch_size),
                     backbone, show_progress, start)


def _fill(store: FeatureStore, dataset: Dataset, cfg: ExtractConfig, settings: Settings, backbone: Backbone,
          show_progress: bool, start: float) -> ExtractSummary:
    """Extract every clip of `dataset` the store does not hold yet (the caller holds the lock)."""
    if dataset.selection:
        store.record("dataset", dataset.selection)  # which clips, chosen how, and the class order
    clips = list(dataset.clips[: cfg.limit] if cfg.limit else dataset.clips)
    sid = store.settings_id()
    done = store.done_ids(sid)
    todo = [c for c in clips if c.id not in done]
    skipped = len(clips) - len(todo)
    if skipped:
        log.info("%d of %d clips already extracted in %s; skipping them", skipped, len(clips), store.root)
    by_id = {c.id: c for c in todo}
    configure_threads(min(cfg.workers, len(todo)))
    workers = min(cfg.workers, len(todo))
    assembler = Assembler(backbone)
    n_done = n_failed = 0
    with progress_bar(len(todo), "extract", enabled=show_progress) as bar:
        def write(items: Iterable[ClipFeatures]) -> None:
            nonlocal n_done
            for item in items:
                clip = by_id[item.clip_id]
                arrays = {"rgb": item.rgb.astype(cfg.dtype), "flow": item.flow.astype(cfg.dtype),
                          **item.audio}
                store.write_clip(clip.id, arrays, _record(clip) | item.meta | {"settings": sid})
                n_done += 1
                bar.advance()

        for message in _ordered_messages(todo, settings, workers, cfg.queue_depth):
            kind, clip_id = message[0], message[1]
            if kind == "images":
                write(assembler.add(clip_id, message[2], message[3]))
            elif kind == "done":
                write(assembler.finish(clip_id, message[2], message[3]))
            elif kind == "failed":
                assembler.drop(clip_id)
                clip = by_id[clip_id]
                store.record_failure(clip_id, _record(clip) | message[2], message[3])
                log.warning("failed: %s", message[3])
                n_failed += 1
                bar.advance()
                bar.status(f"[red]{n_failed} failed")
        write(assembler.flush())
    seconds = time.perf_counter() - start
    return ExtractSummary(done=n_done, skipped=skipped, failed=n_failed, seconds=seconds,
                          images=assembler.images, store=store.root)


def _record(clip: Clip) -> dict:
    return {"id": clip.id, "label": clip.label, "split": clip.split, "source": clip.source}


def configure_threads(workers: int) -> None:
    """Leave the producer processes room: the backbone gets the cores they do not need."""
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - max(0, workers - 1)))
