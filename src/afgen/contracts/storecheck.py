"""A feature store checked against its contract, by file: config.json parses and has settings,
every manifest line is a clip record, every ok clip has its .npy files with the shape and dtype
config.json and the manifest say (header and size; `deep` also loads the values), and the
packed view matches its index. `afgen verify` reports and repairs what this finds; opening a
store for a pipeline (contracts/openstore.py) runs the cheap form first. The files are read by
the caller, once (`StoreFiles`), and checked here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from afgen.contracts.store import CONFIG, FeatureStore
from afgen.contracts.storeconfig import StoreConfig
from afgen.errors import StoreError, repair_hint

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
REJECTED = "manifest.rejected.jsonl"


@dataclass(frozen=True)
class Damage:
    """One damaged artifact: the file, what is wrong and what fixes it."""

    path: Path
    problem: str
    fix: str
    clip: str | None = None


@dataclass(frozen=True)
class StoreFiles:
    """config.json, manifest.jsonl and packed/index.json of a store, each read once: what the
    check, the packed view and the pipelines work from."""

    store: FeatureStore
    config: StoreConfig | None  # None: missing or damaged (config_problem says how)
    config_problem: str | None
    lines: list[tuple[int, str, dict[str, Any] | None]]  # the manifest's lines, as Manifest.lines gives them
    #: packed/index.json parsed; a string: what is wrong with it; None: there is none yet
    index: dict[str, Any] | str | None = None

    @classmethod
    def read(cls, root: str | Path) -> StoreFiles:
        """Read config.json, the manifest and the packed view's index of the store at `root` (once each)."""
        store = FeatureStore(root)
        config_path = store.root / CONFIG
        try:
            config, problem = store.store_config(), None
        except StoreError as exc:
            config = None
            problem = "missing" if not config_path.is_file() else str(exc).removeprefix(f"{config_path}: ").split(";")[0]
        return cls(store, config, problem, list(store.manifest.lines()), _read_index(store.root / "packed"))

    @property
    def packed_index(self) -> dict[str, Any] | None:
        """The packed view's index as read, where it parsed (what pack and load_packed take)."""
        return self.index if isinstance(self.index, dict) else None

    @cached_property
    def records(self) -> dict[str, dict[str, Any]]:
        """The latest record of every clip (Manifest.records, from the lines already read)."""
        return self.store.manifest.latest(self.lines)

    def ok_records(self) -> list[dict[str, Any]]:
        """The ok clips' records, sorted by id (the packed view's order)."""
        return sorted((r for r in self.records.values() if r.get("status") == "ok"), key=lambda r: r["id"])


def _read_index(packed: Path) -> dict[str, Any] | str | None:
    """The packed view's index parsed, what is wrong with it, or None where there is none."""
    path = packed / "index.json"
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"damaged index ({exc})"
    return index if isinstance(index, dict) else "damaged index (not a JSON object)"


def npy_problem(path: Path, shape: tuple[int | None, ...], dtype: str | None = None, deep: bool = False) -> str | None:
    """What is wrong with one .npy file (None: nothing). `shape` entries that are None are not
    checked. The cheap check reads the header and the file size only; `deep` loads the values."""
    if not path.is_file():
        return "missing"
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = _HEADER_READERS.get(version)
            if reader is None:
                actual = np.load(path, mmap_mode="r", allow_pickle=False)
                got_shape, got_dtype, offset = actual.shape, actual.dtype, None
            else:
                got_shape, _, got_dtype = reader(fh)
                offset = fh.tell()
    except (ValueError, OSError, EOFError) as exc:
        return f"not a readable .npy file ({exc})"
    if offset is not None:
        expected = offset + prod(got_shape) * got_dtype.itemsize
        size = path.stat().st_size
        if size != expected:
            return f"{'truncated' if size < expected else 'longer than its header says'} ({size} of {expected} bytes)"
    if len(got_shape) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got_shape)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        return f"shape {tuple(got_shape)}, expected {want}"
    if dtype is not None and np.dtype(dtype) != got_dtype:
        return f"dtype {got_dtype}, expected {dtype}"
    if deep:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        if bad:
            return f"{bad} non-finite values (NaN or inf)"
    return None


def _expected(rec: dict, settings: dict) -> dict[str, tuple[tuple[int | None, ...], str | None]]:
    """Modality -> (shape, dtype) that an ok clip's files must have."""
    t = rec.get("t") if isinstance(rec.get("t"), int) else None
    dim, dtype = settings.get("dim"), settings.get("dtype")
    out = {"rgb": ((t, dim), dtype), "flow": ((None if t is None else t - 1, dim), dtype)}
    if rec.get("has_audio"):
        out["audio"] = (((settings.get("audio") or {}).get("dim"),), None)
        out["audio_frames"] = ((t, None), None)
    return out


def store_damage(files: StoreFiles, deep: bool) -> tuple[list[Damage], int]:
    """(What is damaged, how many things were checked) in a store read once into `files`."""
    store = files.store
    damage: list[Damage] = []
    if files.config_problem is not None:
        damage.append(Damage(store.root / CONFIG, files.config_problem, "--repair sets a damaged one aside; then "
                             "rerun `afgen extract` with the same settings to write it again"))
    checked = 1
    for n, line, rec in files.lines:
        checked += 1
        if rec is None:
            damage.append(Damage(store.manifest.path, f"line {n} is not a clip record: {line.strip()[:60]!r}",
                                 f"--repair moves it to {REJECTED}"))
    settings = files.config.settings if files.config is not None else {}
    for cid, rec in files.records.items():
        if rec.get("status") != "ok":
            continue
        for modality, (shape, dtype) in _expected(rec, settings).items():
            checked += 1
            problem = npy_problem(store.path(modality, cid), shape, dtype, deep)
            if problem:
                damage.append(Damage(store.path(modality, cid), problem,
                                     "--repair marks the clip; the next `afgen extract` redoes it", cid))
    return damage + packed_damage(store.root / "packed", files.index), checked


def packed_damage(packed: Path, index: dict[str, Any] | str | None) -> list[Damage]:
    """What is wrong with a store's packed view (nothing when there is none yet), from its index
    as StoreFiles read it."""
    index_path = packed / "index.json"
    if index is None:
        return []
    fix = "--repair removes the packed view; training rebuilds it from the clip files"
    if isinstance(index, str):
        return [Damage(index_path, index, fix)]
    try:
        rows = {"rgb": index["rgb_offsets"][-1], "flow": index["flow_offsets"][-1],
                "audio": sum(1 for k in index["audio_index"] if k >= 0)}
    except (KeyError, TypeError, IndexError) as exc:
        return [Damage(index_path, f"damaged index ({exc})", fix)]
    out = []
    for name, n in rows.items():
        path = packed / f"{name}.npy"
        if name == "audio" and n == 0:
            continue
        problem = npy_problem(path, (n, None))
        if problem:
            out.append(Damage(path, problem, fix))
    return out


def damage_error(root: Path, damage: list[Damage]) -> StoreError:
    """The cheap check's damage as one error naming the damaged files and the fix."""
    shown = "; ".join(f"{d.path}: {d.problem}" for d in damage[:3])
    more = f" (and {len(damage) - 3} more)" if len(damage) > 3 else ""
    return StoreError(f"{len(damage)} damaged file(s): {shown}{more}. "
                      + repair_hint(root, "rerun `afgen extract` with the same settings to redo them"), root)
