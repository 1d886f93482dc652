from __future__ import annotations

import logging

import pytest

from afgen.errors import DatasetError
from afgen.extraction.dataset import clip_id, discover, stratified_splits, with_splits


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_per_class(tmp_path):
    for label in ("jumping", "running"):
        for k in range(3):
            _touch(tmp_path / label / f"{k:04d}.mp4")
    _touch(tmp_path / "running" / "notes.txt")
    ds = discover(tmp_path)
    assert ds.layout == "folders" and ds.classes == ("jumping", "running")
    assert len(ds) == 6
    assert {c.label for c in ds.clips if c.source.startswith("running/")} == {"running"}
    assert all(c.split is None for c in ds.clips)


def test_ids_do_not_collide_across_class_folders(tmp_path):
    _touch(tmp_path / "a" / "0001.mp4")
    _touch(tmp_path / "b" / "0001.mp4")
    ids = [c.id for c in discover(tmp_path).clips]
    assert len(set(ids)) == 2
    assert all("/" not in i and "\\" not in i for i in ids)


def test_ids_stay_unique_when_sanitising_merges_names(tmp_path):
    _touch(tmp_path / "c" / "a b.mp4")
    _touch(tmp_path / "c" / "a_b.mp4")
    _touch(tmp_path / "c" / "a_b.avi")
    ids = [c.id for c in discover(tmp_path).clips]
    assert len(set(ids)) == 3


def test_clip_id_is_filesystem_safe():
    assert clip_id("class one/vid:1?.mp4") == "class_one__vid_1_.mp4".replace(".mp4", "")
    assert len(clip_id("x/" + "y" * 500 + ".mp4")) < 200


def test_empty_class_folder_warns(tmp_path, caplog):
    _touch(tmp_path / "full" / "1.mp4")
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.WARNING):
        ds = discover(tmp_path)
    assert ds.classes == ("full",)
    assert "empty" in caplog.text


def test_moments_in_time_layout_with_csvs(tmp_path):
    for split in ("training", "validation"):
        for label in ("barking", "clapping"):
            for k in range(2):
                _touch(tmp_path / split / label / f"{label}_{k}.mp4")
    (tmp_path / "trainingSet.csv").write_text(
        "barking/barking_0.mp4,barking,3,0\nbarking/barking_1.mp4,barking,3,0\n"
        "clapping/clapping_0.mp4,clapping,3,0\n")
    ds = discover(tmp_path)
    assert ds.layout == "splits"
    train = [c for c in ds.clips if c.split == "train"]
    val = [c for c in ds.clips if c.split == "val"]
    assert len(train) == 3  # the CSV lists three training clips
    assert len(val) == 4  # no validation CSV: folders are scanned
    assert train[0].path.exists()


def test_moments_in_time_unknown_label(tmp_path):
    _touch(tmp_path / "training" / "barking" / "a.mp4")
    (tmp_path / "trainingSet.csv").write_text("barking/a.mp4,meowing,3,0\n")
    with pytest.raises(DatasetError, match="trainingSet.csv.*unknown label 'meowing'"):
        discover(tmp_path, strict=True)
    with pytest.raises(DatasetError, match="no clips found"):  # skipped: nothing is left
        discover(tmp_path)


def test_generic_csv_with_splits_and_header(tmp_path):
    _touch(tmp_path / "videos" / "x.mp4")
    _touch(tmp_path / "videos" / "y.mp4")
    listing = tmp_path / "list.csv"
    listing.write_text("path,label,split\nvideos/x.mp4,cat,train\nvideos/y.mp4,dog,validation\n")
    ds = discover(listing)
    assert ds.layout == "csv" and ds.classes == ("cat", "dog")
    assert [(c.label, c.split) for c in ds.clips] == [("cat", "train"), ("dog", "val")]
    assert ds.clips[0].path == tmp_path / "videos" / "x.mp4"


@pytest.mark.parametrize("bad", ["../secret.mp4", "a/../../b.mp4"])
def test_csv_path_traversal_is_rejected(tmp_path, bad):
    listing = tmp_path / "list.csv"
    listing.write_text(f"{bad},cat\n")
    with pytest.raises(DatasetError, match="list.csv"):
        discover(listing)


def test_csv_duplicates(tmp_path, caplog):
    listing = tmp_path / "list.csv"
    listing.write_text("a.mp4,cat\na.mp4,cat\n")
    with caplog.at_level(logging.WARNING):
        assert len(discover(listing)) == 1
    assert "duplicate" in caplog.text
    listing.write_text("a.mp4,cat\na.mp4,dog\n")
    with pytest.raises(DatasetError, match="two labels"):
        discover(listing)


def test_csv_rows_without_labels_are_unlabelled_clips(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("a.mp4\nb.mp4,\nc.mp4,dog\n")
    ds = discover(listing)
    assert {c.source: c.label for c in ds.clips} == {"a.mp4": None, "b.mp4": None, "c.mp4": "dog"}
    assert ds.classes == ("dog",)


def test_a_list_file_with_absolute_paths_and_spaces(tmp_path):
    elsewhere = tmp_path / "my videos"
    for name in ("holiday 1.MOV", "b.webm"):
        _touch(elsewhere / name)
    listing = tmp_path / "lists" / "mine.txt"
    listing.parent.mkdir()
    listing.write_text(f"{elsewhere / 'holiday 1.MOV'}\n{elsewhere / 'b.webm'}\n")
    ds = discover(listing)
    assert sorted(c.path for c in ds.clips) == sorted([elsewhere / "holiday 1.MOV", elsewhere / "b.webm"])
    assert all(c.label is None for c in ds.clips) and ds.classes == ()
    assert len({c.id for c in ds.clips}) == 2 and all("/" not in c.id and " " not in c.id for c in ds.clips)


def test_a_flat_or_nested_folder_of_videos_is_unlabelled(tmp_path, caplog):
    for rel in ("a.mp4", "b.mkv", "notes.txt"):
        _touch(tmp_path / "flat" / rel)
    ds = discover(tmp_path / "flat")
    assert ds.layout == "flat" and ds.classes == ()
    assert sorted(c.source for c in ds.clips) == ["a.mp4", "b.mkv"]
    assert all(c.label is None and c.split is None for c in ds.clips)
    # loose videos beside subfolders of videos: read as class folders (with a warning), or
    # everything unlabelled with --layout flat
    _touch(tmp_path / "flat" / "trip" / "day 2" / "c.avi")
    with caplog.at_level(logging.WARNING):
        assert [c.label for c in discover(tmp_path / "flat").clips] == ["trip"]
    assert "--layout flat" in caplog.text
    nested = discover(tmp_path / "flat", layout="flat")
    assert sorted(c.source for c in nested.clips) == ["a.mp4", "b.mkv", "trip/day 2/c.avi"]
    assert all(c.label is None for c in nested.clips)


def test_class_filter_and_per_class_limit(tmp_path):
    for label in ("a", "b", "c"):
        for k in range(5):
            _touch(tmp_path / label / f"{k}.mp4")
    ds = discover(tmp_path, classes=["a", "c"], per_class=2)
    assert ds.classes == ("a", "c") and len(ds) == 4
    with pytest.raises(DatasetError, match="--only-classes.*zebra"):
        discover(tmp_path, classes=["zebra"])


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        discover(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no clips found"):
        discover(tmp_path / "empty")


def test_stratified_splits_are_deterministic_and_cover_every_class():
    labels = {f"{c}{k}": c for c in "abc" for k in range(10)}
    one, two = stratified_splits(labels, seed=1), stratified_splits(labels, seed=1)
    assert one == two
    for c in "abc":
        got = [one[f"{c}{k}"] for k in range(10)]
        assert got.count("test") == 2 and got.count("val") == 2 and got.count("train") == 6
    assert stratified_splits(labels, seed=2) != one


def test_with_splits_keeps_existing_splits(tmp_path):
    listing = tmp_path / "list.csv"
    rows = [f"{c}{k}.mp4,{c}" + (",test" if k == 0 else "") for c in "ab" for k in range(6)]
    listing.write_text("\n".join(rows) + "\n")
    ds = with_splits(discover(listing))
    assert all(c.split is not None for c in ds.clips)
    assert {c.id: c.split for c in ds.clips}["a0"] == "test"


def _mit(tmp_path, present=("barking", "clapping"), listed=("barking", "clapping", "singing")):
    for label in present:
        for k in range(4):
            _touch(tmp_path / "training" / label / f"{label}_{k}.mp4")
        _touch(tmp_path / "validation" / label / f"{label}_v.mp4")
    rows = [f"{label}/{label}_{k}.mp4,{label},3,1" for label in listed for k in range(4)]
    (tmp_path / "trainingSet.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "validationSet.csv").write_text("\n".join(f"{c}/{c}_v.mp4,{c},2,0" for c in listed) + "\n")
    return tmp_path


def test_mit_csv_with_absent_classes_warns_once_and_keeps_the_present_ones(tmp_path, caplog):
    root = _mit(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = discover(root, classes=["barking", "clapping"])
    assert ds.classes == ("barking", "clapping") and len(ds) == 10
    assert caplog.text.count("--strict") == 0  # asked-for classes only: nothing absent to report
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ds = discover(root)
    assert ds.classes == ("barking", "clapping") and len(ds) == 10
    warnings = [r.getMessage() for r in caplog.records if "no folder" in r.getMessage()]
    assert len(warnings) == 2  # one summary per CSV, not one per row
    assert "skipped 4 rows of 1 classes" in warnings[0] and "singing" in warnings[0]


def test_mit_strict_keeps_the_error(tmp_path):
    with pytest.raises(DatasetError, match="trainingSet.csv.*unknown label 'singing'"):
        discover(_mit(tmp_path), strict=True)


def test_only_classes_naming_a_class_that_exists_nowhere_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="zebra"):
        discover(_mit(tmp_path), classes=["barking", "zebra"])
    with pytest.raises(DatasetError, match="singing"):  # listed in the CSV, but not copied
        discover(_mit(tmp_path), classes=["singing"])


def test_moments_categories_order_and_names_with_spaces(tmp_path):
    root = _mit(tmp_path, present=("rock climbing", "barking", "playing+fun"),
                listed=("rock climbing", "barking", "playing+fun"))
    (root / "moments_categories.txt").write_text("playing+fun,0\nsinging,1\nrock climbing,2\nbarking,3\n")
    ds = discover(root)
    assert ds.classes == ("playing+fun", "rock climbing", "barking")
    assert ds.selection["classes"] == list(ds.classes)
    assert {c.label for c in ds.clips} == set(ds.classes)
    assert all(" " not in c.id and "+" not in c.id for c in ds.clips)


def test_per_class_is_seeded_and_stable(tmp_path):
    for label in ("a", "b"):
        for k in range(20):
            _touch(tmp_path / label / f"{k:02d}.mp4")
    first = discover(tmp_path, per_class=5, seed=0)
    again = discover(tmp_path, per_class=5, seed=0)
    other = discover(tmp_path, per_class=5, seed=1)
    assert [c.id for c in first.clips] == [c.id for c in again.clips] and len(first) == 10
    assert [c.id for c in first.clips] != [c.id for c in other.clips]
    assert [c.id for c in first.clips] != [c.id for c in discover(tmp_path).clips[:5] + discover(tmp_path).clips[20:25]]
    assert first.selection["per_class"] == 5 and first.selection["per_class_seed"] == 0
