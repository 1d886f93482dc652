"""Discover clips and labels: folder per class, Moments in Time, a CSV list, or unlabelled
videos (a flat or nested folder, a list of paths, a CSV without labels).

Every clip gets a unique, filesystem-safe id derived from its path relative to the dataset
root (two `0001.mp4` in different class folders never collide); a clip listed by absolute
path gets one from that path. Relative paths that escape the root are rejected. A clip
without a label has label None ("null" in the manifest): it can be extracted and scored,
and training skips it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from afgen.config import LAYOUTS, SPLITS, VIDEO_EXTENSIONS, DatasetConfig
from afgen.contracts.splits import stratified_splits
from afgen.errors import DatasetError

log = logging.getLogger(__name__)

#: Top-level folder names read as splits (Moments in Time, Kinetics, UCF-style trees).
SPLIT_FOLDERS = {
    "training": "train", "train": "train",
    "validation": "val", "val": "val", "valid": "val",
    "testing": "test", "test": "test",
}
#: Moments in Time ships one CSV per split beside the split folders.
MIT_CSVS = {"training": "trainingSet.csv", "validation": "validationSet.csv"}
#: ... and its class list, `name,index` per line, which gives the class order.
MIT_CATEGORIES = "moments_categories.txt"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID = 160


@dataclass(frozen=True)
class Clip:
    """One clip: its id (safe as a file name), file, label and split (None if unassigned)."""

    id: str
    path: Path
    label: str | None  # None: unlabelled (your own videos)
    split: str | None
    source: str  # the path relative to the dataset root (or as listed, if absolute), with forward slashes


@dataclass(frozen=True)
class Dataset:
    """Clips and the class list of a dataset (sorted, or in moments_categories.txt's order),
    with how they were selected (recorded in the feature store's config.json)."""

    root: Path
    layout: str
    clips: tuple[Clip, ...]
    classes: tuple[str, ...]
    selection: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.clips)

    def label_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}


def clip_id(relative: str) -> str:
    """A filesystem-safe id from a clip's relative path (extension dropped, folders kept)."""
    stem = str(PurePosixPath(relative).with_suffix(""))
    safe = "__".join(_UNSAFE.sub("_", part) for part in stem.split("/") if part)
    safe = safe.lstrip(".") or "clip"
    if len(safe) > _MAX_ID:
        safe = safe[:_MAX_ID] + "-" + _digest(relative)
    return safe


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _unique_ids(relatives: Sequence[str]) -> list[str]:
    """Ids for the given relative paths; ids that would collide get a hash of the full path."""
    ids = [clip_id(r) for r in relatives]
    counts = Counter(ids)
    return [f"{i}-{_digest(r)}" if counts[i] > 1 else i for i, r in zip(ids, relatives)]


def is_absolute(entry: str) -> bool:
    posix = entry.strip().replace("\\", "/")
    return posix.startswith("/") or bool(re.match(r"^[A-Za-z]:/", posix))


def safe_relative(root: Path, entry: str, listing: Path, absolute_ok: bool = False) -> str:
    """Check that `entry` (from `listing`) stays inside `root`; return it with '/' separators.
    With `absolute_ok`, an absolute path is returned as it is (a list of one's own videos)."""
    posix = entry.strip().replace("\\", "/")
    if not posix:
        raise DatasetError("empty path in a row; every row needs `path[,label[,split]]`", listing)
    if is_absolute(posix):
        if absolute_ok:
            return posix
        raise DatasetError(
            f"absolute path {entry!r} is not allowed here; write paths relative to the list's folder",
            listing,
        )
    parts = PurePosixPath(posix).parts
    if ".." in parts:
        raise DatasetError(
            f"path {entry!r} escapes the dataset root with '..'; move the clip under {root}",
            listing,
        )
    resolved = (root / posix).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise DatasetError(f"path {entry!r} resolves outside the dataset root {root}", listing)
    return str(PurePosixPath(*parts))


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _scan_class_folders(base: Path, root: Path) -> list[tuple[str, str]]:
    """(relative path, label) for every video under base/<class>/, warning on empty classes."""
    rows = []
    for class_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        videos = sorted(p for p in class_dir.rglob("*") if _is_video(p))
        if not videos:
            log.warning("class folder %s holds no video files; skipping it", class_dir)
            continue
        rows += [(v.relative_to(root).as_posix(), class_dir.name) for v in videos]
    return rows


def _read_rows(listing: Path) -> list[list[str]]:
    try:
        with listing.open(newline="", encoding="utf-8-sig") as fh:
            return [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read the list: {exc}", listing) from exc


def _dedupe(rows: Iterable[tuple[str, str, str | None]], listing: Path):
    """Drop exact duplicate rows with a warning; a path listed with two labels is an error."""
    seen: dict[str, tuple[str, str | None]] = {}
    out = []
    for rel, label, split in rows:
        if rel in seen:
            if seen[rel][0] != label:
                raise DatasetError(
                    f"{rel} is listed with two labels ({seen[rel][0]!r} and {label!r}); "
                    "keep one row per clip",
                    listing,
                )
            log.warning("%s: duplicate row for %s ignored", listing, rel)
            continue
        seen[rel] = (label, split)
        out.append((rel, label, split))
    return out


def _from_csv(listing: Path) -> tuple[Path, list[tuple[str, str | None, str | None]]]:
    """Rows `path[,label[,split]]` of a CSV, or one path per line of a plain list; a missing or
    empty label means unlabelled. Relative paths resolve against the list's folder; absolute
    paths are taken as they are."""
    root = listing.parent
    rows = _read_rows(listing)
    if rows and rows[0][0].strip().lower() in ("path", "file", "video"):
        rows = rows[1:]
    out = []
    for row in rows:
        label = row[1].strip() if len(row) > 1 and row[1].strip() else None
        split = _split_name(row[2], listing) if len(row) > 2 and row[2].strip() else None
        out.append((safe_relative(root, row[0], listing, absolute_ok=True), label, split))
    return root, _dedupe(out, listing)


def _scan_flat(root: Path) -> list[tuple[str, None]]:
    """(relative path, None) for every video anywhere under root: unlabelled clips."""
    return [(v.relative_to(root).as_posix(), None) for v in sorted(p for p in root.rglob("*") if _is_video(p))]


def _split_name(value: str, listing: Path) -> str:
    name = SPLIT_FOLDERS.get(value.strip().lower())
    if name is None:
        raise DatasetError(f"unknown split {value!r}; use one of {', '.join(SPLITS)}", listing)
    return name


def _from_split_folders(root: Path, wanted: set[str] | None, strict: bool) -> list[tuple[str, str, str | None]]:
    """Rows of a train/val/test (or Moments in Time) tree. MiT's CSVs list every class; rows
    of classes the user did not ask for are dropped first, and rows of classes whose folder
    is absent (not copied) are skipped with one warning, or are an error with `strict`."""
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        split = SPLIT_FOLDERS.get(folder.name.lower())
        if split is None:
            continue
        listing = root / MIT_CSVS.get(folder.name, "")
        if folder.name in MIT_CSVS and listing.is_file():
            class_names = {p.name for p in folder.iterdir() if p.is_dir()}
            rows, absent = [], Counter()
            for n, row in enumerate(_read_rows(listing), start=1):
                if len(row) < 2:
                    raise DatasetError(f"row {n} has no label; rows are `class/file,label,...`", listing)
                label = row[1].strip()
                if wanted is not None and label not in wanted:
                    continue
                if label not in class_names:
                    if strict:
                        raise DatasetError(f"row {n}: unknown label {label!r} (no folder {folder / label}); "
                                           "copy that class folder, or drop --strict to skip its rows", listing)
                    absent[label] += 1
                    continue
                rel = safe_relative(folder, row[0], listing)
                rows.append((f"{folder.name}/{rel}", label, split))
            if absent:
                names = sorted(absent)
                log.warning("%s: skipped %d rows of %d classes with no folder in %s (%s%s); --strict makes "
                            "this an error", listing, sum(absent.values()), len(names), folder,
                            ", ".join(names[:5]), ", ..." if len(names) > 5 else "")
            out += _dedupe(rows, listing)
        else:
            out += [(rel, label, split) for rel, label in _scan_class_folders(folder, root)
                    if wanted is None or label in wanted]
    return out


def read_categories(path: Path) -> list[str]:
    """Class names in MiT's order from moments_categories.txt (`name,index` per line)."""
    pairs = []
    for n, row in enumerate(_read_rows(path), start=1):
        try:
            pairs.append((int(row[-1]), ",".join(row[:-1]).strip()))
        except (ValueError, IndexError):
            raise DatasetError(f"line {n}: expected `name,index`, got {','.join(row)!r}", path) from None
    return [name for _, name in sorted(pairs)]


def _pick_per_class(rows: list[tuple[str, str, str | None]], per_class: int, seed: int):
    """At most `per_class` clips of each class in each split, a seeded random choice that is
    the same on every machine (random.Random with a string seed hashes it with SHA-512)."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r[0], r[1] or "", r[2] or "")):
        groups[(row[1] or "", row[2] or "")].append(row)
    kept = []
    for (label, split), items in sorted(groups.items()):
        if len(items) > per_class:
            items = sorted(random.Random(f"{seed}:{label}:{split}").sample(items, per_class))
        kept += items
    return kept


def detect_layout(source: Path) -> str:
    """'csv' for a list file, 'splits' for train/val/test (or MiT) folders, 'flat' for a folder
    with videos directly in it (unlabelled, searched recursively), else 'folders'."""
    if source.is_file():
        return "csv"
    if not source.is_dir():
        raise DatasetError("no such folder or list; give a folder of videos, a dataset folder or a CSV/list file",
                           source)
    names = {p.name.lower() for p in source.iterdir() if p.is_dir()}
    if names & set(SPLIT_FOLDERS):
        return "splits"
    loose = sum(_is_video(p) for p in source.iterdir())
    if not loose:
        return "folders"
    if any(_is_video(v) for d in source.iterdir() if d.is_dir() and not d.name.startswith(".") for v in d.rglob("*")):
        log.warning("%s holds %d videos outside any class folder; they are left out (--layout flat reads every "
                    "video, unlabelled)", source, loose)
        return "folders"
    return "flat"


def discover(
    source: str | Path,
    layout: str = "auto",
    classes: Sequence[str] | None = None,
    per_class: int | None = None,
    strict: bool = DatasetConfig.strict,
    seed: int = DatasetConfig.per_class_seed,
) -> Dataset:
    """Find every clip of a dataset with its label and split.

    `classes` keeps only those classes (e.g. the paper's 10 Moments-in-Time classes), checked
    before anything else; `per_class` keeps a seeded random N clips of each class in each
    split (the same N clips on every machine for the same `seed`). With `strict`, a MiT CSV
    row whose class folder is absent is an error instead of a skipped row.
    """
    source = Path(source)
    layout = detect_layout(source) if layout == "auto" else layout
    wanted = {c.strip() for c in classes} if classes is not None else None
    if layout == "csv":
        root, rows = _from_csv(source)
    elif layout == "splits":
        root, rows = source, _from_split_folders(source, wanted, strict)
    elif layout == "folders":
        root = source
        rows = [(rel, label, None) for rel, label in _scan_class_folders(source, source)]
    elif layout == "flat":
        root = source
        rows = [(rel, None, None) for rel, _ in _scan_flat(source)]
    else:
        raise DatasetError(f"unknown layout {layout!r}; use {', '.join(LAYOUTS)}", source)
    if wanted is not None:
        present = {label for _, label, _ in rows}
        unknown = sorted(wanted - present)
        if unknown:
            hint = "" if layout == "splits" else f"; the dataset has e.g. {sorted(present)[:10]}"
            raise DatasetError(f"--only-classes names classes with no clips here: {unknown} (no such class "
                               f"folder with videos){hint}", source)
        rows = [r for r in rows if r[1] in wanted]
    if not rows:
        raise DatasetError(
            "no clips found; expected videos in the folder (unlabelled), ROOT/<class>/<clip>.mp4, "
            f"ROOT/training/<class>/..., or a CSV/list of `path[,label[,split]]` (video files: "
            f"{', '.join(VIDEO_EXTENSIONS)})",
            source,
        )
    found = sorted({label for _, label, _ in rows if label is not None})
    categories = source / MIT_CATEGORIES if layout == "splits" else None
    if categories is not None and categories.is_file():
        order = read_categories(categories)
        unlisted = [c for c in found if c not in order]
        if unlisted:
            log.warning("%s does not list %s; they go after its classes", categories, unlisted[:5])
        found = [c for c in order if c in set(found)] + unlisted
    if per_class is not None:
        rows = _pick_per_class(rows, per_class, seed)
    rows.sort(key=lambda r: (r[0], r[1] or "", r[2] or ""))
    ids = _unique_ids([rel.lstrip("/") if is_absolute(rel) else rel for rel, _, _ in rows])
    clips = tuple(
        Clip(id=i, path=Path(rel) if is_absolute(rel) else root / rel, label=label, split=split, source=rel)
        for i, (rel, label, split) in zip(ids, rows)
    )
    selection = {"source": str(source), "layout": layout, "only_classes": sorted(wanted) if wanted else None,
                 "per_class": per_class, "per_class_seed": seed if per_class is not None else None,
                 "strict": strict, "classes": list(found)}
    ceiling = _declared_ceiling(root, found)
    if ceiling is not None:  # a dataset that knows what its pictures can tell (the synthetic one)
        selection["visual_ceiling"] = ceiling
    return Dataset(root=root, layout=layout, clips=clips, classes=tuple(found), selection=selection)


def _declared_ceiling(root: Path, classes: list[str]) -> float | None:
    """The visual ceiling a dataset declares in ROOT/synth.json (`afgen synth` writes it), when
    the clips found are its classes."""
    path = root / "synth.json"
    try:
        declared = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return None
    if declared.get("visual_ceiling") is None or sorted(declared.get("classes", [])) != sorted(classes):
        return None
    return float(declared["visual_ceiling"])


def with_splits(dataset: Dataset, seed: int = 0) -> Dataset:
    """Fill in a stratified split for clips that have none; clips with a split keep it."""
    missing = {c.id: c.label for c in dataset.clips if c.split is None and c.label is not None}
    if not missing:
        return dataset
    assigned = stratified_splits(missing, seed=seed)
    clips = tuple(replace(c, split=assigned.get(c.id, c.split)) for c in dataset.clips)
    return replace(dataset, clips=clips)
