"""Batch prediction on a folder of one's own clips: one row per file, the right audio status,
a reason for each broken file, resumable, the same with an exported (ONNX) model."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import afgen_loading, lines_held, loaded, other_lines, wait_until_waiting

from afgen.cli import main
from afgen.export.model import export_model
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


@pytest.mark.slow
def test_the_same_with_an_exported_onnx_model(tiny_run, mixed, tmp_path):
    export_model(tiny_run, tmp_path / "onnx", "onnx")
    a = predict_many(mixed, tmp_path / "run.csv", tiny_run, show_progress=False)
    b = predict_many(mixed, tmp_path / "onnx.csv", onnx=tmp_path / "onnx", show_progress=False)
    assert (b.scored, b.failed) == (a.scored, a.failed) == (3, 2)
    ra, rb = (sorted(_rows(tmp_path / n), key=lambda r: r["id"]) for n in ("run.csv", "onnx.csv"))
    assert [r["pred_1"] for r in ra] == [r["pred_1"] for r in rb]
    assert all(abs(float(x["prob_1"]) - float(y["prob_1"])) < 1e-3 for x, y in zip(ra, rb) if x["prob_1"])


def _lock_file(out, scope="all"):
    return out.parent / f".{out.name}.locks" / f"{scope}.lock"


def _predict_cmd(clips, run, out, *extra):
    """`afgen predict` as a subprocess that also says on stderr whether it loaded torch."""
    return afgen_loading("predict", clips, "--run", run, "--out", out, "--workers", "0", *extra)


@pytest.mark.slow
def test_the_same_predict_twice_on_one_out_the_second_is_refused_and_rows_stay_one_per_clip(tiny_run, mixed,
                                                                                           tmp_path):
    import subprocess

    out = tmp_path / "p.csv"
    lock = _lock_file(out)
    # The first run waits to write its first row (on the file's lock, held here) while it holds the
    # output, so the second surely starts while it works, whatever the load.
    with lines_held(out):
        first = subprocess.Popen(_predict_cmd(mixed, tiny_run, out), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_until_waiting(out, first)
        assert lock.exists(), "the first run should hold the output's lock while it works"
        second = subprocess.run(_predict_cmd(mixed, tiny_run, out), capture_output=True, text=True)
    assert first.wait(timeout=300) == 0
    assert second.returncode == 2, second.stderr
    refusal = other_lines(second.stderr)
    assert len(refusal) == 1 and "another afgen run is writing this file" in refusal[0], second.stderr
    assert f"pid {first.pid}" in refusal[0] and "Wait for it to finish" in refusal[0]
    assert not loaded(second.stderr)  # refused before anything heavy loads
    ids = [r["id"] for r in _rows(out)]
    assert len(ids) == len(set(ids)) == 5
    assert not lock.parent.exists()  # the lock folder goes with its last holder


@pytest.mark.slow
def test_shards_share_one_out_and_the_same_shard_twice_is_refused(tiny_run, mixed, tmp_path):
    from afgen.errors import StoreError
    from afgen.extraction.lock import FileLock, shard_scope

    out = tmp_path / "p.csv"
    with FileLock(out, shard_scope(0, 2), command="afgen predict --shard 0/2"):  # a live writer of shard 0
        with pytest.raises(StoreError, match="another afgen run is writing this file.*--shard 0/2"):
            predict_many(mixed, out, tiny_run, shard=(0, 2), show_progress=False)
        assert not out.exists()
        one = predict_many(mixed, out, tiny_run, shard=(1, 2), show_progress=False)  # the other shard runs
    zero = predict_many(mixed, out, tiny_run, shard=(0, 2), show_progress=False)
    assert one.scored + one.failed > 0 and zero.scored + zero.failed > 0
    text = out.read_text()
    assert text.count("path,id,label") == 1  # one header
    ids = [r["id"] for r in _rows(out)]
    assert len(ids) == len(set(ids)) == 5
    assert zero.accuracy["n"] == 3  # every labelled clip of the file, each once


def test_a_stale_lock_is_taken_over_and_the_accuracy_counts_each_clip_once(tiny_run, mixed, tmp_path, caplog):
    import socket
    import subprocess
    import sys

    out = tmp_path / "p.csv"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = _lock_file(out)
    lock.parent.mkdir()
    lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": "2026-01-01 00:00:00",
                                "command": "afgen predict (killed)"}))
    with caplog.at_level("WARNING", logger="afgen.extraction.lock"):
        first = predict_many(mixed, out, tiny_run, show_progress=False)
    assert "stale lock" in caplog.text and (first.scored, first.failed) == (3, 2)
    assert not lock.parent.exists()
    # a file written twice over (two runs before the lock existed): every clip still counts once
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines + lines[1:]))
    again = predict_many(mixed, out, tiny_run, show_progress=False)
    assert again.skipped == 5 and again.accuracy["n"] == first.accuracy["n"] == 3
