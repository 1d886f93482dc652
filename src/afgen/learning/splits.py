"""Which clips train, validate and test: the manifest's splits, a stratified split for clips
without one, k stratified folds for out-of-fold generation, and the classes' order."""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

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


def kfold(indices: list[int], labels: list[str], k: int, seed: int) -> list[list[int]]:
    """k stratified, seeded folds of `indices` (every class spread evenly over the folds)."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, lab in zip(indices, labels):
        by_class[lab].append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for lab in sorted(by_class):
        members = np.random.default_rng([seed, 7]).permutation(sorted(by_class[lab])).tolist()
        for j, i in enumerate(members):
            folds[(j + offset) % k].append(i)
        offset += len(members)
    return [sorted(f) for f in folds]
