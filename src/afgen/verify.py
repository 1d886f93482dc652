"""`afgen verify`: check a feature store or a run against its contract; repair what can be.

A store: config.json parses; every manifest line is a clip record; every ok clip has its
files, each an .npy whose header gives the expected shape and dtype (t from the manifest, D
and the audio dimension from config.json), whose size matches its header and (deep check)
whose values are finite; the packed view matches its index. A run: seeds.json, model.pt,
provenance.json, metrics.json, every checkpoint and the out-of-fold cache load.

`--repair` never deletes a good file: a damaged clip gets a manifest line "damaged" (the next
`afgen extract` redoes exactly those clips), bad manifest lines move to manifest.rejected.jsonl,
a damaged config.json is set aside (the next extract writes it again, and clips extracted
with other settings are redone, never mixed), a damaged packed view is removed (it is
rebuilt from the clip files), and damaged run files are set aside as *.damaged so that
`afgen train ... --resume` rebuilds them.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import numpy as np

from afgen.contracts.modelfile import read_model_file
from afgen.contracts.packed import PackedFeatures, load_packed
from afgen.contracts.runfolder import BUNDLE, OOF_DIR, SEEDS_FILE, load_checkpoint
from afgen.contracts.store import CONFIG, FeatureStore, atomic_write_bytes
from afgen.errors import AfgenError, StoreError, repair_hint

log = logging.getLogger(__name__)

DAMAGED = ".damaged"
REJECTED = "manifest.rejected.jsonl"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class Damage:
    """One damaged artifact: the file, what is wrong and what fixes it."""

    path: Path
    problem: str
    fix: str
    clip: str | None = None


@dataclass
class Report:
    """What `verify` checked and found (and, with repair, what it did)."""

    root: Path
    kind: str  # "store" or "run"
    checked: int = 0
    damage: list[Damage] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage


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


# -- stores -----------------------------------------------------------------------------

def _expected(rec: dict, settings: dict) -> dict[str, tuple[tuple[int | None, ...], str | None]]:
    """Modality -> (shape, dtype) that an ok clip's files must have."""
    t = rec.get("t") if isinstance(rec.get("t"), int) else None
    dim, dtype = settings.get("dim"), settings.get("dtype")
    out = {"rgb": ((t, dim), dtype), "flow": ((None if t is None else t - 1, dim), dtype)}
    if rec.get("has_audio"):
        out["audio"] = (((settings.get("audio") or {}).get("dim"),), None)
        out["audio_frames"] = ((t, None), None)
    return out


def check_store(root: str | Path, deep: bool = True) -> Report:
    """Check a feature store; `deep=False` is the cheap check train and evaluate run first."""
    store = FeatureStore(root)
    report = Report(store.root, "store")
    settings: dict = {}
    config_path = store.root / CONFIG
    try:
        settings = store.store_config().settings
    except StoreError as exc:
        problem = "missing" if not config_path.is_file() else str(exc).removeprefix(f"{config_path}: ").split(";")[0]
        report.damage.append(Damage(config_path, problem, "--repair sets a damaged one aside; then rerun "
                                    "`afgen extract` with the same settings to write it again"))
    report.checked += 1
    for n, line, rec in store.manifest.lines():
        report.checked += 1
        if rec is None:
            report.damage.append(Damage(store.manifest.path, f"line {n} is not a clip record: {line.strip()[:60]!r}",
                                        f"--repair moves it to {REJECTED}"))
    for cid, rec in store.manifest.records().items():
        if rec.get("status") != "ok":
            continue
        for modality, (shape, dtype) in _expected(rec, settings).items():
            report.checked += 1
            problem = npy_problem(store.path(modality, cid), shape, dtype, deep)
            if problem:
                report.damage.append(Damage(store.path(modality, cid), problem,
                                            "--repair marks the clip; the next `afgen extract` redoes it", cid))
    report.damage += _packed_damage(store.root / "packed")
    return report


def _packed_damage(packed: Path) -> list[Damage]:
    index_path = packed / "index.json"
    if not index_path.is_file():
        return []
    fix = "--repair removes the packed view; training rebuilds it from the clip files"
    try:
        index = json.loads(index_path.read_text())
        rows = {"rgb": index["rgb_offsets"][-1], "flow": index["flow_offsets"][-1],
                "audio": sum(1 for k in index["audio_index"] if k >= 0)}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, IndexError) as exc:
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


def repair_store(report: Report) -> None:
    """Apply the store repairs described in the module docstring to what `report` found."""
    store = FeatureStore(report.root)
    config_path = store.root / CONFIG
    damaged_clips: dict[str, list[str]] = {}
    for d in report.damage:
        if d.clip is not None:
            damaged_clips.setdefault(d.clip, []).append(f"{d.path.parent.name}/{d.path.name}: {d.problem}")
    if any(d.path == store.manifest.path for d in report.damage):
        good, bad = [], []
        for _, line, rec in store.manifest.lines():
            (good if rec is not None else bad).append(line.rstrip("\n") + "\n")
        with (store.root / REJECTED).open("a", encoding="utf-8") as fh:
            fh.writelines(bad)
        atomic_write_bytes(store.manifest.path, "".join(good).encode())
        report.repaired.append(f"moved {len(bad)} bad manifest line(s) to {REJECTED}")
    records = store.manifest.records()
    for cid, problems in damaged_clips.items():
        store.manifest.append({**records.get(cid, {}), "id": cid, "status": "damaged", "error": "; ".join(problems)})
    if damaged_clips:
        report.repaired.append(f"marked {len(damaged_clips)} damaged clip(s) for re-extraction")
    if config_path.is_file() and any(d.path == config_path for d in report.damage):
        config_path.replace(config_path.with_name(CONFIG + DAMAGED))
        report.repaired.append(f"set config.json aside as {CONFIG + DAMAGED}")
    if any(d.path.parent.name == "packed" for d in report.damage):
        shutil.rmtree(store.root / "packed")
        report.repaired.append("removed the damaged packed view (rebuilt by the next `afgen train`)")


def require_intact_store(root: str | Path) -> None:
    """The cheap store check, as one error naming the damaged files and the fix."""
    report = check_store(root, deep=False)
    if report.damage:
        shown = "; ".join(f"{d.path}: {d.problem}" for d in report.damage[:3])
        more = f" (and {len(report.damage) - 3} more)" if len(report.damage) > 3 else ""
        raise StoreError(f"{len(report.damage)} damaged file(s): {shown}{more}. "
                         + repair_hint(report.root, "rerun `afgen extract` with the same settings to redo them"),
                         report.root)


def open_packed(root: str | Path, check: bool = True) -> PackedFeatures:
    """The packed view of a store, as every pipeline opens it: after the cheap check of every
    clip file (damage is reported up front, by file and fix, not as numpy's error); `check=False`
    when the caller has just checked the same store."""
    if check:
        require_intact_store(root)
    return load_packed(root)


# -- runs -------------------------------------------------------------------------------

def check_run(root: str | Path) -> Report:
    """Check every file a run (single- or multi-seed) needs or resumes from."""
    root = Path(root)
    report = Report(root, "run")
    fix = (f"--repair sets it aside; then `afgen train FEATURES {root} --resume` (with the options it was "
           "trained with) rebuilds it")
    subs = [root]
    if (root / SEEDS_FILE).is_file():
        report.checked += 1
        try:
            subs = [root / name for name in json.loads((root / SEEDS_FILE).read_text())["runs"]]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            report.damage.append(Damage(root / SEEDS_FILE, f"damaged ({exc})", fix))
            subs = sorted(p for p in root.glob("seed-*") if p.is_dir())
    for sub in subs:
        for name in (BUNDLE, "provenance.json", "metrics.json"):
            path = sub / name
            report.checked += 1
            if not path.is_file():
                report.damage.append(Damage(path, "missing (training did not finish)", fix))
                continue
            try:
                read_model_file(path) if name == BUNDLE else json.loads(path.read_text())
            except (AfgenError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                report.damage.append(Damage(path, str(exc).removeprefix(f"{path}: ").split(";")[0], fix))
        for ckpt in sorted(sub.glob("*/checkpoints/*.ckpt")):
            report.checked += 1
            try:
                load_checkpoint(ckpt)
            except AfgenError as exc:
                report.damage.append(Damage(ckpt, str(exc).removeprefix(f"{ckpt}: ").split(";")[0],
                                            "--repair sets the stage's checkpoints aside; `afgen train ... --resume` "
                                            "retrains that stage"))
        for cache in sorted((sub / OOF_DIR).glob("**/generated.npz")):  # one per generator stage (older runs: oof/)
            report.checked += 1
            try:
                with np.load(cache, allow_pickle=False) as data:
                    for key in data.files:
                        data[key]
            except Exception as exc:  # noqa: BLE001 - any failure to read means damage
                report.damage.append(Damage(cache, f"damaged ({type(exc).__name__})", fix))
    return report


def repair_run(report: Report) -> None:
    """Set damaged run files aside (a damaged checkpoint: its stage's whole checkpoints folder)."""
    moved: set[Path] = set()
    for d in report.damage:
        target = d.path.parent if d.path.suffix == ".ckpt" else d.path
        if target in moved or not target.exists():
            continue
        aside = target.with_name(target.name + DAMAGED)
        if aside.is_dir():
            shutil.rmtree(aside)
        target.replace(aside)
        moved.add(target)
        report.repaired.append(f"set {target.relative_to(report.root)} aside as {aside.name}")


# -- both -------------------------------------------------------------------------------

def verify(path: str | Path, repair: bool = False, deep: bool = True) -> Report:
    """Check a feature store or a run folder (which one is told by its files); repair if asked."""
    path = Path(path)
    if not path.is_dir():
        raise AfgenError("not a folder: give a feature store (from `afgen extract`) or a run (from `afgen train`)", path)
    if (path / CONFIG).exists() or (path / "manifest.jsonl").exists():
        report = check_store(path, deep)
        if repair and report.damage:
            repair_store(report)
    elif any((path / name).exists() for name in ("model.pt", "seeds.json", "provenance.json")) or any(
            path.glob("*/checkpoints")) or any(path.glob("seed-*")):
        report = check_run(path)
        if repair and report.damage:
            repair_run(report)
    else:
        raise AfgenError("neither a feature store (config.json, manifest.jsonl) nor a run (model.pt, seeds.json)", path)
    for d in report.damage:
        log.debug("damaged: %s: %s", d.path, d.problem)
    return report
