"""Batch prediction on a folder of one's own clips: one row per file, the right audio status,
a reason for each broken file, resumable, the same with an exported (ONNX) model."""

from __future__ import annotations

import csv
import json

import pytest

from afgen.cli import main
from afgen.learning.model_export import export_model
from afgen.learning.predict import predict
from afgen.learning.predict_batch import predict_many


@pytest.fixture()
def mixed(tmp_path, clip_factory):
    """Clips with sound, without an audio track, and two broken files, in class folders."""
    clip_factory("clips/bounce/loud.mp4", seconds=1.5, size=48)
    clip_factory("clips/bounce/silent.mp4", seconds=1.5, size=48, audio=False)
    clip_factory("clips/roll/quiet one.mp4", seconds=1.5, size=48, audio=False)
    (tmp_path / "clips" / "roll" / "broken.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "clips" / "roll" / "empty.mkv").write_bytes(b"")
    return tmp_path / "clips"


def _rows(path):
    return list(csv.DictReader(path.open()))


def test_a_folder_gives_one_row_per_file_and_a_rerun_adds_nothing(tiny_run, mixed, tmp_path, capsys):
    out = tmp_path / "p.csv"
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(mixed), "--run", str(tiny_run), "--out", str(out), "--workers", "0", "--top", "2"])
    assert exit_.value.code in (0, None)
    printed = capsys.readouterr().out
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in _rows(out)}
    assert set(rows) == {"loud.mp4", "silent.mp4", "quiet one.mp4", "broken.mp4", "empty.mkv"}
    assert rows["loud.mp4"]["audio"] == "real"
    assert rows["silent.mp4"]["audio"] == rows["quiet one.mp4"]["audio"] == "missing"
    for name in ("broken.mp4", "empty.mkv"):
        assert rows[name]["status"] == "failed" and rows[name]["error"] and not rows[name]["pred_1"]
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert all(r["pred_1"] and 0 < float(r["prob_1"]) <= 1 and float(r["prob_2"]) <= float(r["prob_1"]) for r in ok)
    assert "on the 3 labelled clips: top-1" in printed
    single = predict(mixed / "bounce" / "loud.mp4", tiny_run, top=2)
    assert rows["loud.mp4"]["pred_1"] == single.top[0][0]
    assert abs(float(rows["loud.mp4"]["prob_1"]) - single.top[0][1]) < 1e-5
    before = out.read_bytes()
    again = predict_many(mixed, out, tiny_run, top=2, show_progress=False)
    assert (again.scored, again.failed, again.skipped) == (0, 0, 5)
    assert out.read_bytes() == before


def test_drop_audio_and_jsonl_and_a_torn_last_line(tiny_run, mixed, tmp_path):
    from afgen.config import ExtractConfig

    out = tmp_path / "p.jsonl"
    cfg = ExtractConfig(workers=1)
    summary = predict_many(mixed, out, tiny_run, drop_audio=True, cfg=cfg, show_progress=False)
    assert (summary.scored, summary.failed) == (3, 2)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["audio"] for r in rows if r["status"] == "ok"} == {"dropped", "missing"}
    # a kill mid-row leaves a torn last line: it is dropped and that clip scored again
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:-1]) + text[-1][:10])
    again = predict_many(mixed, out, tiny_run, drop_audio=True, cfg=cfg, show_progress=False)
    assert again.scored + again.failed == 1 and again.skipped == 4
    assert len(out.read_text().splitlines()) == 5


def test_the_same_with_an_exported_onnx_model(tiny_run, mixed, tmp_path):
    export_model(tiny_run, tmp_path / "onnx", "onnx")
    a = predict_many(mixed, tmp_path / "run.csv", tiny_run, show_progress=False)
    b = predict_many(mixed, tmp_path / "onnx.csv", onnx=tmp_path / "onnx", show_progress=False)
    assert (b.scored, b.failed) == (a.scored, a.failed) == (3, 2)
    ra, rb = (sorted(_rows(tmp_path / n), key=lambda r: r["id"]) for n in ("run.csv", "onnx.csv"))
    assert [r["pred_1"] for r in ra] == [r["pred_1"] for r in rb]
    assert all(abs(float(x["prob_1"]) - float(y["prob_1"])) < 1e-3 for x, y in zip(ra, rb) if x["prob_1"])
