"""Discover clips and labels: folder per class, Moments in Time, a CSV list, or unlabelled
videos (a flat or nested folder, a list of paths, a CSV without labels).

Every clip gets a unique, filesystem-safe id derived from its path relative to the dataset
root (two `0001.mp4` in different class folders never collide); a clip listed by absolute
path gets one from that path. Relative paths that escape the root are rejected. A clip
without a label has label None ("null" in the manifest): it can be extracted and scored,
and training skips it. How each layout is read is a reader in layouts.py's table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from afgen.config import VIDEO_EXTENSIONS, DatasetConfig
from afgen.contracts.splits import stratified_splits
from afgen.errors import DatasetError
from afgen.extraction.layouts import detect_layout, is_absolute
from afgen.extraction.layouts import layout as get_layout

log = logging.getLogger(__name__)

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
    found_rows = get_layout(layout, source).read(source, wanted, strict)
    root, rows = found_rows.root, found_rows.rows
    if wanted is not None:
        present = {label for _, label, _ in rows}
        unknown = sorted(wanted - present)
        if unknown:
            hint = "" if found_rows.filtered else f"; the dataset has e.g. {sorted(present)[:10]}"
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
    if found_rows.class_order is not None:
        order = found_rows.class_order
        unlisted = [c for c in found if c not in order]
        if unlisted:
            log.warning("%s does not list %s; they go after its classes", found_rows.order_file, unlisted[:5])
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
