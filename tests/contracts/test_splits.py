"""The splitter (contracts/splits.py): stratified train/val/test splits and stratified folds, each
the same for the same seed as the code they were moved from (stores and runs hold their results)."""

from __future__ import annotations

import random

import numpy as np

from afgen.contracts.splits import stratified_folds, stratified_splits

LABELS = ["a"] * 12 + ["b"] * 9 + ["c"] * 7 + ["d"] * 2


def _old_folds(indices, labels, k, seed):
    """learning/splits.kfold's rule: classes in sorted order, each class's sorted indices permuted
    by NumPy's generator seeded [seed, 7], dealt round-robin into the k folds starting where the
    previous class stopped; each fold sorted."""
    folds = [[] for _ in range(k)]
    dealt = 0
    for label in sorted(set(labels)):
        members = sorted(i for i, lab in zip(indices, labels) if lab == label)
        for i in np.random.default_rng([seed, 7]).permutation(members).tolist():
            folds[dealt % k].append(i)
            dealt += 1
    return [sorted(f) for f in folds]


def _old_splits(labels, val_fraction, test_fraction, seed):
    """The manifest's rule: per label, the sorted ids shuffled by random.Random(f"{seed}:{label}");
    the first round(n * test) are test, the next round(n * val) val (at least one each from three
    clips up), the rest train."""
    out = {}
    for label in sorted(set(labels.values())):
        ids = sorted(cid for cid, lab in labels.items() if lab == label)
        random.Random(f"{seed}:{label}").shuffle(ids)
        n = len(ids)
        n_test = max(1, round(n * test_fraction)) if n >= 3 else 0
        n_val = max(1, round(n * val_fraction)) if n >= 3 else 0
        out.update({cid: "test" if k < n_test else "val" if k < n_test + n_val else "train" for k, cid in enumerate(ids)})
    return out


def test_folds_are_the_old_folds_for_every_seed_and_k():
    indices = [3 * i + 1 for i in range(len(LABELS))]  # not 0..n-1: the folds hold the given indices
    shuffled = random.Random(5).sample(list(zip(indices, LABELS)), len(LABELS))  # input order must not matter
    for seed in range(4):
        for k in (2, 3, 5):
            want = _old_folds(indices, LABELS, k, seed)
            assert stratified_folds([i for i, _ in shuffled], [lab for _, lab in shuffled], k, seed) == want


def test_folds_are_stratified_disjoint_and_seeded():
    idx = list(range(30))
    labels = ["a"] * 12 + ["b"] * 9 + ["c"] * 9
    folds = stratified_folds(idx, labels, 3, seed=0)
    assert sorted(sum(folds, [])) == idx
    for f in folds:
        assert {labels[i] for i in f} == {"a", "b", "c"} and 9 <= len(f) <= 11
    assert stratified_folds(idx, labels, 3, seed=0) == folds and stratified_folds(idx, labels, 3, seed=1) != folds


def test_splits_are_the_manifests_rule():
    labels = {f"{lab}_{i:02d}": lab for i, lab in enumerate(LABELS)}
    for seed in range(4):
        assert stratified_splits(labels, 0.2, 0.25, seed) == _old_splits(labels, 0.2, 0.25, seed)
    got = stratified_splits(labels, 0.2, 0.25, 0)
    assert {got[c] for c, lab in labels.items() if lab == "d"} == {"train"}  # two clips: too few to hold any out
