"""The feature store contract: config.json, manifest.jsonl and one .npy per clip and modality.

    FEATURES/config.json           extraction settings + package versions + weights identity
    FEATURES/manifest.jsonl        one line per clip outcome (the last line for a clip wins)
    FEATURES/rgb/<id>.npy          v_R [t, D]
    FEATURES/flow/<id>.npy         v_F [t-1, D]
    FEATURES/audio/<id>.npy        clip audio feature [A], only when the clip has audio
    FEATURES/audio_frames/<id>.npy audio sequence aligned to the t video frames [t, B]

Every file is written under a temporary name and renamed, so a killed run leaves no partial
file; a clip counts as done only once its manifest line says ok and its files exist. A
write that fails (disk full, I/O error) removes its temporary file and stops the run with a
WriteError; the rerun redoes that clip. Each ok line carries the id of the settings it was
extracted with, so a store whose config.json was lost never mixes settings on resume.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from afgen.contracts.manifest import Manifest
from afgen.contracts.storeconfig import SETTINGS, StoreConfig
from afgen.contracts.vc import v_c
from afgen.errors import StoreError, repair_hint, write_failed

MODALITIES = ("rgb", "flow", "audio", "audio_frames")
CONFIG = "config.json"
MANIFEST = "manifest.jsonl"
#: config.json keys that must match for a rerun to add to the same store.
SETTINGS_KEY = SETTINGS


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (temporary file + rename)."""
    # The process id keeps two writers of the same file (e.g. parallel seeds packing one
    # store) from renaming each other's temporary file away; the last rename wins, whole.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise write_failed(path, exc) from exc
    except BaseException:  # a stop signal mid-write: nothing partial stays behind
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    """Remove a temporary file if it is there; a folder that could not be made holds none."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path, fix: str) -> Any:
    """Parse a JSON file afgen wrote; a damaged one is an error naming the file and `fix`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"damaged: not valid JSON ({exc}); {fix}", path) from None


def settings_id(settings: dict[str, Any]) -> str:
    """A short fingerprint of the settings that decide a clip's bytes (stored on its manifest line)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def load_npy(path: Path, fix: str, mmap: bool = False) -> np.ndarray:
    """np.load with a damaged file (truncated, not .npy) turned into an error naming it and `fix`."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise StoreError(f"missing; {fix}", path) from None
        raise StoreError(f"damaged feature file ({exc}); {fix}", path) from None


class FeatureStore:
    """Read and write one feature store folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = Manifest(self.root / MANIFEST)

    @property
    def repair_hint(self) -> str:
        return repair_hint(self.root, "rerun `afgen extract` with the same "
                "settings to redo the damaged clips")

    def require(self) -> FeatureStore:
        """This store, if the folder is one; otherwise a StoreError that says what it is instead
        (checked before anything is built or created, so a wrong path costs nothing)."""
        if not self.root.exists():
            raise StoreError("no such folder; give a feature store written by `afgen extract CLIPS FEATURES`",
                             self.root)
        if not self.root.is_dir():
            raise StoreError("is a file, not a feature store folder", self.root)
        if not (self.root / CONFIG).is_file():
            raise StoreError("not a feature store (no config.json); extract into it first with "
                             "`afgen extract CLIPS FEATURES`", self.root)
        return self

    # -- config -----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        path = self.root / CONFIG
        if self.root.is_file():
            raise StoreError("is a file, not a feature store folder", self.root)
        if not path.is_file():
            raise StoreError("no config.json: not a feature store (run `afgen extract` first)", self.root)
        config = read_json(path, self.repair_hint)
        if not isinstance(config, dict) or not isinstance(config.get(SETTINGS_KEY), dict):
            raise StoreError(f"damaged: no settings in config.json; {self.repair_hint}", path)
        return config

    def store_config(self) -> StoreConfig:
        """config.json, read and checked, through its typed reader (contracts/storeconfig.py)."""
        return StoreConfig(self.config())

    def record(self, key: str, value: Any) -> None:
        """Set one provenance entry of config.json (not a setting: a rerun may change it)."""
        config = self.config()
        config[key] = value
        atomic_write_json(self.root / CONFIG, config)

    def open_for_writing(self, config: dict[str, Any], overwrite: bool = False) -> None:
        """Create the store, or check that an existing one was made with the same settings."""
        path = self.root / CONFIG
        if self.root.exists() and not self.root.is_dir():
            raise StoreError("exists and is a file, not a folder: choose another output folder for the "
                             "feature store", self.root)
        if path.is_file() and not overwrite:
            old = self.config()[SETTINGS_KEY]
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

    def settings_id(self) -> str:
        return settings_id(self.config()[SETTINGS_KEY])

    def record_failure(self, clip_id: str, record: dict[str, Any], error: str) -> None:
        for modality in MODALITIES:
            self.path(modality, clip_id).unlink(missing_ok=True)
        self.manifest.append({**record, "id": clip_id, "status": "failed", "error": error})

    def done_ids(self, settings: str | None = None) -> set[str]:
        """Clips whose manifest says ok and whose files are all there (extracted with the
        settings whose id is `settings`, when given: lines written before ids existed count)."""
        done = set()
        for cid, rec in self.manifest.records().items():
            if rec.get("status") != "ok":
                continue
            if settings and rec.get("settings", settings) != settings:
                continue
            needed = ["rgb", "flow"] + (["audio"] if rec.get("has_audio") else [])
            if all(self.path(m, cid).is_file() for m in needed):
                done.add(cid)
        return done

    # -- reading, for your own code ------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        """The ids of every successfully extracted clip, sorted."""
        return sorted(r["id"] for r in self.records("ok"))

    @property
    def labels(self) -> dict[str, str | None]:
        """Clip id -> label (None for an unlabelled clip)."""
        return {r["id"]: r.get("label") for r in self.records("ok")}

    def split(self, name: str | None) -> list[str]:
        """The ids of the ok clips whose manifest split is `name` (None: clips without one)."""
        return sorted(r["id"] for r in self.records("ok") if r.get("split") == name)

    def clip(self, clip_id: str, record: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """One clip's arrays as float32: v_r [t, D], v_f [t-1, D], v_c [t-1, 2D], and audio [A] and
        audio_frames [t, B] when the clip has an audio track. Pass its manifest `record` when you
        hold it (reading many clips): otherwise the manifest is read to find it."""
        record = record if record is not None else self.manifest.records().get(clip_id)
        if record is None or record.get("status") != "ok":
            raise StoreError(f"no extracted clip {clip_id!r} in this store (see its manifest.jsonl)", self.root)
        out = {"v_r": np.asarray(self.load("rgb", clip_id), np.float32),
               "v_f": np.asarray(self.load("flow", clip_id), np.float32)}
        out["v_c"] = v_c(out["v_r"], out["v_f"])
        if record.get("has_audio"):
            out["audio"] = np.asarray(self.load("audio", clip_id), np.float32)
            if self.path("audio_frames", clip_id).is_file():
                out["audio_frames"] = np.asarray(self.load("audio_frames", clip_id), np.float32)
        return out

    def records(self, status: str | None = "ok") -> list[dict[str, Any]]:
        recs = self.manifest.records().values()
        return [r for r in recs if status is None or r.get("status") == status]

    def load(self, modality: str, clip_id: str, mmap: bool = False) -> np.ndarray:
        path = self.path(modality, clip_id)
        if not path.is_file():
            raise StoreError(f"no {modality} features for clip {clip_id} (its manifest line says ok); "
                             f"{self.repair_hint}", path)
        return load_npy(path, self.repair_hint, mmap)
