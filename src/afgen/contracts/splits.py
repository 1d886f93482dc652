"""The splitter: clips into train/val/test, and training clips into k folds, both stratified by
label, seeded, the same on every machine. Extraction writes the splits into the manifest (synth,
discovery) and learning fills in what the manifest leaves open, so both wings call this module;
the folds are out-of-fold generation's. Each keeps the random generator it was written with
(Python's for splits, NumPy's for folds): stores and runs hold their results, so changing either
would move clips."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np

from afgen.config import TrainConfig


def stratified_splits(
    labels: dict[str, str],
    val_fraction: float = TrainConfig.val_fraction,
    test_fraction: float = TrainConfig.test_fraction,
    seed: int = 0,
) -> dict[str, str]:
    """A deterministic stratified train/val/test assignment of clip ids, by label.

    Each class with at least three clips gets at least one val and one test clip.
    """
    by_class: dict[str, list[str]] = defaultdict(list)
    for cid, label in labels.items():
        by_class[label].append(cid)
    out = {}
    for label in sorted(by_class):
        ids = sorted(by_class[label])
        random.Random(f"{seed}:{label}").shuffle(ids)
        n = len(ids)
        n_test = max(1, round(n * test_fraction)) if n >= 3 and test_fraction > 0 else 0
        n_val = max(1, round(n * val_fraction)) if n >= 3 and val_fraction > 0 else 0
        for k, cid in enumerate(ids):
            out[cid] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return out


def stratified_folds(indices: list[int], labels: list[str], k: int, seed: int) -> list[list[int]]:
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
