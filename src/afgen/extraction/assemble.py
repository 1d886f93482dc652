"""What one clip produces, assembled: producer messages -> per-clip v_R, v_F and audio.

The Assembler batches images from many clips through the backbone (always full batches but
the last) and hands back each clip once all its images have been through. Every engine and
`afgen predict` use it, so what a clip produces has one code path.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from afgen.encoders.backbones import Backbone
from afgen.encoders.raft import RaftFlow
from afgen.errors import AfgenError
from afgen.extraction.producer import Settings, produce


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

    def __init__(self, backbone: Backbone, flow: RaftFlow | None = None) -> None:
        self.backbone = backbone
        self.flow = flow  # a learned flow (RAFT): flow images are made here from the RGB frames
        self.last_frame: dict[str, np.ndarray] = {}
        self.buffer: deque[list] = deque()  # [clip_id, kind, images]
        self.buffered = 0
        self.parts: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        self.outstanding: Counter[str] = Counter()
        self.finished: dict[str, tuple[dict, dict]] = {}
        self.images = 0
        self.seconds = 0.0  # in backbone and learned-flow calls

    def add(self, clip_id: str, kind: str, images: np.ndarray) -> Iterator[ClipFeatures]:
        if self.flow is not None and kind == "rgb":
            previous = self.last_frame.get(clip_id)
            frames = images if previous is None else np.concatenate([previous[None], images])
            self.last_frame[clip_id] = images[-1]
            started = time.perf_counter()
            flows = self.flow.images(frames)  # pairs across chunk borders too: t frames, t-1 flows
            self.seconds += time.perf_counter() - started
            self._queue(clip_id, "rgb", images)
            if len(flows):
                self._queue(clip_id, "flow", flows)
        else:
            self._queue(clip_id, kind, images)
        while self.buffered >= self.backbone.batch_size:
            self._run(self.backbone.batch_size)
        yield from self._ready()

    def _queue(self, clip_id: str, kind: str, images: np.ndarray) -> None:
        self.buffer.append([clip_id, kind, images])
        self.buffered += len(images)
        self.outstanding[clip_id] += len(images)

    def finish(self, clip_id: str, meta: dict, audio: dict) -> Iterator[ClipFeatures]:
        self.last_frame.pop(clip_id, None)
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
        self.last_frame.pop(clip_id, None)

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
        started = time.perf_counter()
        feats = self.backbone(np.concatenate(chunks))
        self.seconds += time.perf_counter() - started
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


def features_in_process(clip_id: str, path: Path, backbone: Backbone, settings: Settings,
                        flow: RaftFlow | None = None) -> ClipFeatures:
    """Extract one clip in this process, without an engine; raises AfgenError if it fails."""
    assembler = Assembler(backbone, flow)
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
