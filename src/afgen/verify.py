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
from pathlib import Path

import numpy as np

from afgen.contracts.modelfile import read_model_file
from afgen.contracts.runfolder import BUNDLE, METRICS, OOF_DIR, PROVENANCE, SEEDS_FILE, load_checkpoint
from afgen.contracts.store import CONFIG, MANIFEST, FeatureStore, atomic_write_bytes
from afgen.contracts.storecheck import REJECTED, Damage, StoreFiles, store_damage
from afgen.errors import AfgenError

log = logging.getLogger(__name__)

DAMAGED = ".damaged"


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


# -- stores -----------------------------------------------------------------------------

def check_store(root: str | Path, deep: bool = True) -> Report:
    """Check a feature store (config.json and the manifest read once); `deep=False` is the cheap
    check that opening a store for a pipeline runs first (contracts/openstore.py)."""
    files = StoreFiles.read(root)
    damage, checked = store_damage(files, deep)
    return Report(files.store.root, "store", checked, damage)


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
        for name in (BUNDLE, PROVENANCE, METRICS):
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
    if (path / CONFIG).exists() or (path / MANIFEST).exists():
        report = check_store(path, deep)
        if repair and report.damage:
            repair_store(report)
    elif any((path / name).exists() for name in (BUNDLE, SEEDS_FILE, PROVENANCE)) or any(
            path.glob("*/checkpoints")) or any(path.glob("seed-*")):
        report = check_run(path)
        if repair and report.damage:
            repair_run(report)
    else:
        raise AfgenError("neither a feature store (config.json, manifest.jsonl) nor a run (model.pt, seeds.json)", path)
    for d in report.damage:
        log.debug("damaged: %s: %s", d.path, d.problem)
    return report
