"""The feature store contract: config.json, manifest.jsonl and one .npy per clip and modality.

    FEATURES/config.json           extraction settings + package versions + weights identity
    FEATURES/manifest.jsonl        one line per clip outcome (the last line for a clip wins)
    FEATURES/rgb/<id>.npy          v_R [t, D]
    FEATURES/flow/<id>.npy         v_F [t-1, D]
    FEATURES/audio/<id>.npy        clip audio feature [A], only when the clip has audio
    FEATURES/audio_frames/<id>.npy audio sequence aligned to the t video frames [t, B]

Every file is written under a temporary name and renamed, so a killed run leaves no partial
file; a clip counts as done only once its manifest line says ok and its files exist.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from afgen.errors import StoreError
from afgen.manifest import Manifest

MODALITIES = ("rgb", "flow", "audio", "audio_frames")
CONFIG = "config.json"
#: config.json keys that must match for a rerun to add to the same store.
SETTINGS_KEY = "settings"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The process id keeps two writers of the same file (e.g. parallel seeds packing one
    # store) from renaming each other's temporary file away; the last rename wins, whole.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


class FeatureStore:
    """Read and write one feature store folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = Manifest(self.root / "manifest.jsonl")

    # -- config -----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        path = self.root / CONFIG
        if not path.is_file():
            raise StoreError("no config.json: not a feature store (run `afgen extract` first)", self.root)
        return json.loads(path.read_text())

    def record(self, key: str, value: Any) -> None:
        """Set one provenance entry of config.json (not a setting: a rerun may change it)."""
        config = self.config()
        config[key] = value
        atomic_write_json(self.root / CONFIG, config)

    def open_for_writing(self, config: dict[str, Any], overwrite: bool = False) -> None:
        """Create the store, or check that an existing one was made with the same settings."""
        path = self.root / CONFIG
        if path.is_file() and not overwrite:
            old = json.loads(path.read_text()).get(SETTINGS_KEY, {})
            new = json.loads(json.dumps(config[SETTINGS_KEY], default=str))
            if old != new:
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
                raise StoreError(
                    f"this store was extracted with other settings ({details}); use another "
                    "output folder, the same settings, or --overwrite to start it afresh", path)
            return
        if overwrite and self.root.exists():
            for mod in MODALITIES:
                for f in (self.root / mod).glob("*.npy"):
                    f.unlink()
            self.manifest.path.unlink(missing_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, config)

    # -- clips ------------------------------------------------------------------------
    def path(self, modality: str, clip_id: str) -> Path:
        return self.root / modality / f"{clip_id}.npy"

    def write_clip(self, clip_id: str, arrays: dict[str, np.ndarray], record: dict[str, Any]) -> None:
        """Write a clip's arrays atomically, then its manifest line (status ok)."""
        for modality, array in arrays.items():
            atomic_save_npy(self.path(modality, clip_id), array)
        self.manifest.append({**record, "id": clip_id, "status": "ok", "error": None})

    def record_failure(self, clip_id: str, record: dict[str, Any], error: str) -> None:
        for modality in MODALITIES:
            self.path(modality, clip_id).unlink(missing_ok=True)
        self.manifest.append({**record, "id": clip_id, "status": "failed", "error": error})

    def done_ids(self) -> set[str]:
        """Clips whose manifest says ok and whose files are all there."""
        done = set()
        for cid, rec in self.manifest.records().items():
            if rec.get("status") != "ok":
                continue
            needed = ["rgb", "flow"] + (["audio"] if rec.get("has_audio") else [])
            if all(self.path(m, cid).is_file() for m in needed):
                done.add(cid)
        return done

    def records(self, status: str | None = "ok") -> list[dict[str, Any]]:
        recs = self.manifest.records().values()
        return [r for r in recs if status is None or r.get("status") == status]

    def load(self, modality: str, clip_id: str, mmap: bool = False) -> np.ndarray:
        path = self.path(modality, clip_id)
        if not path.is_file():
            raise StoreError(f"no {modality} features for clip {clip_id}", path)
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
