"""The packed, memory-mapped training view of a feature store, and v_C.

`pack` concatenates the per-clip files once into one array per modality plus offsets
(FEATURES/packed/); training then opens a handful of memory-mapped files instead of tens
of thousands of small ones. v_C = concat(v_R[1:], v_F) is built here, per clip.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from afgen.contracts.store import FeatureStore, atomic_save_npy, atomic_write_json, load_npy, read_json
from afgen.contracts.storeconfig import StoreConfig
from afgen.contracts.vc import v_c
from afgen.errors import StoreError, repair_hint

__all__ = ["PACKED", "PackedFeatures", "load_packed", "pack", "v_c"]

log = logging.getLogger(__name__)

PACKED = "packed"


def _fingerprint(records: list[dict]) -> str:
    key = "packed-v3" + json.dumps(sorted((r["id"], r.get("t"), bool(r.get("has_audio"))) for r in records))
    return hashlib.sha1(key.encode()).hexdigest()


def pack(root: str | Path, force: bool = False, records: list[dict] | None = None,
         config: StoreConfig | None = None) -> Path:
    """Build FEATURES/packed/ from the per-clip files (skipped when it is up to date). `records`
    (the ok clips' manifest records, sorted by id) and `config` are read from the store unless
    the caller read them already (contracts/openstore.py: each file once)."""
    return _pack(root, force, records, config)[0]


def _pack(root: str | Path, force: bool = False, records: list[dict] | None = None,
          config: StoreConfig | None = None, index: dict | None = None) -> tuple[Path, dict]:
    """pack, and the packed view's index (`index`: as the caller read it, else read here)."""
    store = FeatureStore(root)
    if records is None:
        records = sorted(store.records("ok"), key=lambda r: r["id"])
    if not records:
        raise StoreError("no successfully extracted clips to pack; run `afgen extract`", store.root)
    out = store.root / PACKED
    fingerprint = _fingerprint(records)
    index_path = out / "index.json"
    if index is None and index_path.is_file():
        index = read_json(index_path, store.repair_hint)
    if not force and isinstance(index, dict) and index.get("fingerprint") == fingerprint:
        return out, index
    arrays = {m: [store.load(m, r["id"]) for r in records] for m in ("rgb", "flow")}
    audio = [store.load("audio", r["id"]) for r in records if r.get("has_audio")]
    rgb_len = [len(a) for a in arrays["rgb"]]
    flow_len = [len(a) for a in arrays["flow"]]
    with_audio = [r for r in records if r.get("has_audio")]
    bad = [(r["id"], m) for m in ("rgb", "flow") for r, a in zip(records, arrays[m]) if not np.isfinite(a).all()]
    bad += [(r["id"], "audio") for r, a in zip(with_audio, audio) if not np.isfinite(a).all()]
    if bad:
        shown = ", ".join(str(store.path(m, cid)) for cid, m in bad[:3])
        raise StoreError(f"{len(bad)} feature file(s) hold NaN or inf values ({shown}); {store.repair_hint}",
                         store.root)
    for r, nr, nf in zip(records, rgb_len, flow_len):
        if nf != nr - 1:
            raise StoreError(f"clip {r['id']}: {nr} RGB rows but {nf} flow rows (expected "
                             f"{nr - 1}); re-extract it", store.root)
    out.mkdir(exist_ok=True)
    atomic_save_npy(out / "rgb.npy", np.concatenate(arrays["rgb"]))
    atomic_save_npy(out / "flow.npy", np.concatenate(arrays["flow"]))
    if audio:
        atomic_save_npy(out / "audio.npy", np.stack(audio).astype(np.float32))
    # the per-video-frame audio sequences (per-frame generation), where every clip with audio has one
    frames = ([store.load("audio_frames", r["id"]) for r in with_audio]
              if with_audio and all(store.path("audio_frames", r["id"]).is_file() for r in with_audio) else None)
    if frames is not None:
        atomic_save_npy(out / "audio_frames.npy", np.concatenate(frames).astype(np.float32))
    elif (out / "audio_frames.npy").exists():
        (out / "audio_frames.npy").unlink()
    k = 0
    audio_index = []
    for r in records:
        audio_index.append(k if r.get("has_audio") else -1)
        k += bool(r.get("has_audio"))
    index = {
        "fingerprint": fingerprint,
        "ids": [r["id"] for r in records],
        "labels": [r["label"] for r in records],
        "splits": [r.get("split") for r in records],
        "rgb_offsets": np.concatenate([[0], np.cumsum(rgb_len)]).tolist(),
        "flow_offsets": np.concatenate([[0], np.cumsum(flow_len)]).tolist(),
        "audio_index": audio_index,
        "audio_dim": (config or store.store_config()).audio_dim,
        "frames_offsets": np.concatenate([[0], np.cumsum([len(f) for f in frames])]).tolist() if frames else None,
    }
    atomic_write_json(index_path, index)
    log.info("packed %d clips into %s", len(records), out)
    return out, index


@dataclass
class PackedFeatures:
    """Memory-mapped features of every ok clip of a store, indexed 0..n-1."""

    ids: list[str]
    labels: list[str]
    splits: list[str | None]
    rgb: np.ndarray
    flow: np.ndarray
    audio_rows: np.ndarray | None
    rgb_offsets: np.ndarray
    flow_offsets: np.ndarray
    audio_index: np.ndarray
    audio_dim: int
    #: Per-video-frame audio [t, bands] of the clips with audio, by audio row (None: not in the store).
    frames_rows: np.ndarray | None = None
    frames_offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def visual_dim(self) -> int:
        return self.rgb.shape[1] + self.flow.shape[1]

    def v_r(self, i: int) -> np.ndarray:
        return np.asarray(self.rgb[self.rgb_offsets[i]:self.rgb_offsets[i + 1]], np.float32)

    def v_f(self, i: int) -> np.ndarray:
        return np.asarray(self.flow[self.flow_offsets[i]:self.flow_offsets[i + 1]], np.float32)

    def v_c(self, i: int) -> np.ndarray:
        """concat(v_R[1:], v_F) [t-1, 2D]: row k pairs frame k+1 with the motion into it."""
        return v_c(self.v_r(i), self.v_f(i))

    def audio(self, i: int) -> np.ndarray | None:
        k = self.audio_index[i]
        return None if k < 0 else np.asarray(self.audio_rows[k], np.float32)

    def audio_frames(self, i: int) -> np.ndarray | None:
        """The clip's per-video-frame audio sequence [t, bands] (None: no audio, or not stored)."""
        k = self.audio_index[i]
        if k < 0 or self.frames_rows is None:
            return None
        return np.asarray(self.frames_rows[self.frames_offsets[k]:self.frames_offsets[k + 1]], np.float32)

    @property
    def frame_bands(self) -> int | None:
        return None if self.frames_rows is None else int(self.frames_rows.shape[1])

    def has_audio(self) -> np.ndarray:
        return self.audio_index >= 0


def load_packed(root: str | Path, records: list[dict] | None = None, config: StoreConfig | None = None,
                index: dict | None = None) -> PackedFeatures:
    """Open (building first if needed) the packed view of a feature store, unchecked: pipelines
    open a store with contracts.openstore.open_store, which checks it first (damage is reported
    up front, by file, not as numpy's error) and hands `records`, `config` and the packed
    `index` on as it read them (see pack)."""
    out, index = _pack(root, records=records, config=config, index=index)
    fix = repair_hint(root, "rerun this command (the packed view is rebuilt from the clip files)")
    audio_path = out / "audio.npy"
    return PackedFeatures(
        ids=index["ids"], labels=index["labels"], splits=index["splits"],
        rgb=load_npy(out / "rgb.npy", fix, mmap=True),
        flow=load_npy(out / "flow.npy", fix, mmap=True),
        audio_rows=load_npy(audio_path, fix, mmap=True) if audio_path.is_file() else None,
        rgb_offsets=np.asarray(index["rgb_offsets"]),
        flow_offsets=np.asarray(index["flow_offsets"]),
        audio_index=np.asarray(index["audio_index"]),
        audio_dim=index["audio_dim"],
        frames_rows=load_npy(out / "audio_frames.npy", fix, mmap=True) if index.get("frames_offsets") else None,
        frames_offsets=np.asarray(index["frames_offsets"]) if index.get("frames_offsets") else None,
    )
