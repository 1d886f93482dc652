"""Dataset layouts: how a clip source is read, as a table of readers (name -> Layout).

Each reader turns a source (a folder or a list file) into rows `(relative path, label or
None, split or None)` under a root; `discover` (dataset.py) turns rows into clips. `auto`
takes the first layout in the table whose `detect` accepts the source, else `folders`.
A new layout is one reader function plus one entry in LAYOUTS (the CLI's --layout lists it).
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from afgen.config import SPLITS, VIDEO_EXTENSIONS
from afgen.errors import DatasetError

log = logging.getLogger(__name__)

#: (path relative to the root, or absolute as listed; label or None; split or None)
Row = tuple[str, str | None, str | None]

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


@dataclass(frozen=True)
class Found:
    """What a reader found: the root the rows' paths are relative to, the rows, and the class
    order the source declares (None: sorted). `filtered`: the reader already dropped the rows
    of classes not asked for (so the classes it saw are not all the source has)."""

    root: Path
    rows: list[Row]
    class_order: list[str] | None = None
    filtered: bool = False
    #: The file that gave class_order (named in a warning when it leaves out a class found).
    order_file: Path | None = None


def read_folders(source: Path, wanted: set[str] | None, strict: bool) -> Found:
    """ROOT/<class>/<clip>: a folder per class gives the labels."""
    return Found(source, [(rel, label, None) for rel, label in _scan_class_folders(source, source)])


def read_splits(source: Path, wanted: set[str] | None, strict: bool) -> Found:
    """ROOT/<split>/<class>/<clip> (train/val/test, or Moments in Time with its CSVs and
    moments_categories.txt, which gives the class order)."""
    categories = source / MIT_CATEGORIES
    order = read_categories(categories) if categories.is_file() else None
    return Found(source, _from_split_folders(source, wanted, strict), order, filtered=True, order_file=categories)


def read_csv(source: Path, wanted: set[str] | None, strict: bool) -> Found:
    """A CSV of `path[,label[,split]]`, or a list of paths (unlabelled)."""
    root, rows = _from_csv(source)
    return Found(root, rows)


def read_flat(source: Path, wanted: set[str] | None, strict: bool) -> Found:
    """Every video under the folder, unlabelled."""
    return Found(source, [(rel, None, None) for rel, _ in _scan_flat(source)])


def _has_split_folders(source: Path) -> bool:
    return source.is_dir() and bool({p.name.lower() for p in source.iterdir() if p.is_dir()} & set(SPLIT_FOLDERS))


def _is_flat(source: Path) -> bool:
    """Videos directly in the folder and none in its subfolders (else they are left out, with
    a warning, and the subfolders read as classes)."""
    if not source.is_dir():
        return False
    loose = sum(_is_video(p) for p in source.iterdir())
    if not loose:
        return False
    if any(_is_video(v) for d in source.iterdir() if d.is_dir() and not d.name.startswith(".") for v in d.rglob("*")):
        log.warning("%s holds %d videos outside any class folder; they are left out (--layout flat reads every "
                    "video, unlabelled)", source, loose)
        return False
    return True


@dataclass(frozen=True)
class Layout:
    """A way to read a clip source: `read(source, wanted classes or None, strict) -> Found`, and
    `detect(source)`: whether `auto` picks it (None: the layout `auto` falls back to)."""

    read: Callable[[Path, set[str] | None, bool], Found]
    detect: Callable[[Path], bool] | None
    help: str


#: The layouts, in the order `auto` tries them (and --layout lists them, after auto).
LAYOUTS: dict[str, Layout] = {
    "folders": Layout(read_folders, None, "a folder per class"),
    "splits": Layout(read_splits, _has_split_folders, "train/val/test or Moments-in-Time folders"),
    "csv": Layout(read_csv, Path.is_file, "a CSV of `path[,label[,split]]`, or a list of paths"),
    "flat": Layout(read_flat, _is_flat, "every video under the folder, unlabelled"),
}
#: The values of --layout: auto, then the table's names.
LAYOUT_NAMES: tuple[str, ...] = ("auto", *LAYOUTS)


def detect_layout(source: Path) -> str:
    """The first layout whose `detect` accepts `source` ('csv' for a list file, 'splits' for
    train/val/test or MiT folders, 'flat' for a folder of loose videos), else 'folders'."""
    if not source.is_file() and not source.is_dir():
        raise DatasetError("no such folder or list; give a folder of videos, a dataset folder or a CSV/list file",
                           source)
    fallback = next(name for name, layout in LAYOUTS.items() if layout.detect is None)
    return next((name for name, layout in LAYOUTS.items() if layout.detect and layout.detect(source)), fallback)


def layout(name: str, source: Path) -> Layout:
    """The layout called `name`; an unknown name is refused naming the choices."""
    if name not in LAYOUTS:
        raise DatasetError(f"unknown layout {name!r}; use {', '.join(LAYOUT_NAMES)}", source)
    return LAYOUTS[name]
