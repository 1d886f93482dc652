"""Which rows of the packed view train, validate and test: the manifest's splits, the stratified
split (contracts/splits.py) for clips without one. (The class order is StoreConfig.classes_of.)"""

from __future__ import annotations

import logging

from afgen.config import TrainConfig
from afgen.contracts.packed import PackedFeatures
from afgen.contracts.splits import stratified_splits
from afgen.errors import AfgenError

log = logging.getLogger(__name__)


def resolve_splits(packed: PackedFeatures, cfg: TrainConfig) -> dict[str, list[int]]:
    """Indices per split: the manifest's splits, a stratified split for clips without one.
    Unlabelled clips (label None: extracted from one's own videos) are left out, with a note."""
    unlabelled = sum(label is None for label in packed.labels)
    if unlabelled == len(packed.labels):
        raise AfgenError(f"none of the store's {unlabelled} clips has a label; training and evaluation need labelled "
                         "clips (a folder per class, or a CSV of `path,label`); `afgen predict` scores unlabelled ones")
    if unlabelled:
        log.warning("%d of %d clips have no label and are left out of training and evaluation", unlabelled,
                    len(packed.labels))
    splits = [s if label is not None else "unlabelled" for s, label in zip(packed.splits, packed.labels)]
    unassigned = {packed.ids[i]: packed.labels[i] for i, s in enumerate(splits) if s is None}
    if unassigned:
        assigned = stratified_splits(unassigned, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        splits = [s if s is not None else assigned[packed.ids[i]] for i, s in enumerate(splits)]
    out = {s: [i for i, x in enumerate(splits) if x == s] for s in ("train", "val", "test")}
    if not out["train"] or not out["val"]:
        raise AfgenError(f"need train and val clips, got {len(out['train'])} train and "
                         f"{len(out['val'])} val; extract more clips or set splits in the CSV")
    return out


