"""The one way a clip without a split gets one: stratified by label, seeded, the same on every
machine. Extraction writes it into the manifest (synth, discovery) and learning fills in what
the manifest leaves open, so both wings call this one function."""

from __future__ import annotations

import random
from collections import defaultdict

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
