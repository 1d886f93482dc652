"""Dataset layouts are a table of readers: a new layout is one reader plus one entry, `auto`
walks the table's detections, and the CLI's --layout choices come from the table."""

from __future__ import annotations

import pytest

from afgen.errors import DatasetError
from afgen.extraction.dataset import discover
from afgen.extraction.layouts import LAYOUTS, Found, Layout, detect_layout


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def _read_pairs(source, wanted, strict):
    """A layout of one's own: pairs.txt lists `label clip` per line, one clip per line."""
    rows = []
    for line in (source / "pairs.txt").read_text().splitlines():
        label, rel = line.split(" ", 1)
        rows.append((rel, label, None))
    return Found(source, rows, class_order=["zeta", "alpha"], order_file=source / "pairs.txt")


def test_a_new_layout_is_one_reader_and_one_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(LAYOUTS, "pairs", Layout(_read_pairs, lambda s: (s / "pairs.txt").is_file(), "label-clip pairs"))
    _touch(tmp_path / "x" / "a.mp4")
    _touch(tmp_path / "x" / "b.mp4")
    (tmp_path / "pairs.txt").write_text("alpha x/a.mp4\nzeta x/b.mp4\n")
    named = discover(tmp_path, layout="pairs")
    assert named.layout == "pairs" and named.classes == ("zeta", "alpha")  # the reader's class order
    assert {c.source: c.label for c in named.clips} == {"x/a.mp4": "alpha", "x/b.mp4": "zeta"}
    assert discover(tmp_path).layout == "pairs"  # `auto` detects it
    assert named.selection["layout"] == "pairs"


def test_auto_tries_the_table_in_order_and_falls_back_to_folders(tmp_path):
    _touch(tmp_path / "split" / "train" / "a" / "1.mp4")
    _touch(tmp_path / "split" / "loose.mp4")  # splits come before flat in the table
    _touch(tmp_path / "flat" / "1.mp4")
    _touch(tmp_path / "classes" / "a" / "1.mp4")
    (tmp_path / "list.csv").write_text("classes/a/1.mp4,a\n")
    assert [detect_layout(tmp_path / n) for n in ("split", "flat", "classes", "list.csv")] == [
        "splits", "flat", "folders", "csv"]
    with pytest.raises(DatasetError, match="no such folder or list"):
        detect_layout(tmp_path / "nowhere")


def test_an_unknown_layout_names_the_choices(tmp_path):
    with pytest.raises(DatasetError, match="unknown layout 'mine'; use auto, folders, splits, csv, flat"):
        discover(tmp_path, layout="mine")


def test_the_cli_offers_the_tables_layouts_after_auto():
    from typer.testing import CliRunner

    from afgen.cli import app

    shown = " ".join(CliRunner().invoke(app, ["extract", "--help"], terminal_width=400).output.split())
    assert "<auto|" + "|".join(LAYOUTS) + ">" in shown
    assert all(layout.help.split(" (")[0] in shown for layout in LAYOUTS.values())
    assert all(layout.read and layout.help for layout in LAYOUTS.values())
    assert [name for name, layout in LAYOUTS.items() if layout.detect is None] == ["folders"]  # one fallback
