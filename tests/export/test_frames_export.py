from __future__ import annotations

import json

from afgen.export.frames import write_frames
from afgen.extraction.dataset import discover


def _dataset(tmp_path, clip_factory):
    clip_factory("data/run/a.mp4", fps=25, seconds=1.0)
    clip_factory("data/run/b.mp4", fps=30, seconds=1.0, audio=False)
    (tmp_path / "data" / "jump").mkdir(parents=True)
    (tmp_path / "data" / "jump" / "broken.mp4").write_bytes(b"\x00" * 100)
    return discover(tmp_path / "data")


def test_frames_writes_the_seed_layout_and_records_failures(tmp_path, clip_factory):
    ds = _dataset(tmp_path, clip_factory)
    out = tmp_path / "out"
    summary = write_frames(ds, out, workers=1, show_progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (2, 1, 0)
    rgb = sorted(p.name for p in (out / "rgb" / "run" / "a").iterdir())
    flow = sorted(p.name for p in (out / "flow" / "run" / "a").iterdir())
    assert rgb == [f"frame_{k:04d}.jpg" for k in range(6)]
    assert flow == [f"flow_{k:04d}.jpg" for k in range(1, 6)]
    records = [json.loads(line) for line in summary.manifest.read_text().splitlines()]
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and "broken.mp4" in failed[0]["error"]
    assert not (out / "rgb" / "jump" / "broken").exists()  # nothing partial left behind


def test_frames_resume_skips_finished_clips(tmp_path, clip_factory):
    ds = _dataset(tmp_path, clip_factory)
    out = tmp_path / "out"
    write_frames(ds, out, show_progress=False)
    stamp = (out / "rgb" / "run" / "a" / "frame_0000.jpg").stat().st_mtime_ns
    # a crash left b half-written: its manifest line is gone and a temp folder remains
    lines = [line for line in (out / "manifest.jsonl").read_text().splitlines() if '"b"' not in line
             and "run__b" not in line]
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (out / "rgb" / "run" / ".b.tmp").mkdir()
    summary = write_frames(ds, out, workers=2, show_progress=False)
    assert summary.skipped == 1  # a
    assert summary.done == 1  # b redone
    assert (out / "rgb" / "run" / "a" / "frame_0000.jpg").stat().st_mtime_ns == stamp
    assert not (out / "rgb" / "run" / ".b.tmp").exists()
    assert len(list((out / "rgb" / "run" / "b").iterdir())) == 6
