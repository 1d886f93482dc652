from __future__ import annotations

import csv

import numpy as np
import pytest

from afgen.config import SynthConfig
from afgen.errors import AfgenError
from afgen.extraction.dataset import discover
from afgen.extraction.synth import CLASSES, generate
from afgen.extraction.video import iter_frames, probe, read_audio

TINY = SynthConfig(classes=3, clips_per_class=4, size=48, seconds=1.0, missing_audio=0.25)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.mp4"))}


def test_same_seed_gives_byte_identical_clips(tmp_path):
    generate(tmp_path / "a", TINY, show_progress=False)
    generate(tmp_path / "b", TINY, show_progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 12 and a == b
    assert (tmp_path / "a" / "clips.csv").read_bytes() == (tmp_path / "b" / "clips.csv").read_bytes()
    generate(tmp_path / "c", SynthConfig(**{**TINY.__dict__, "seed": 1}), show_progress=False)
    assert _files(tmp_path / "c") != a


def test_layout_split_and_missing_audio(tmp_path):
    listing = generate(tmp_path, TINY, show_progress=False)
    rows = list(csv.DictReader(listing.open()))
    assert len(rows) == 12
    assert {r["label"] for r in rows} == set(list(CLASSES)[:3])
    for label in {r["label"] for r in rows}:
        splits = [r["split"] for r in rows if r["label"] == label]
        assert set(splits) == {"train", "val", "test"}  # stratified
    ds = discover(listing)
    silent = [c for c in ds.clips if not probe(c.path).has_audio]
    assert len(silent) == 3  # round(0.25 * 4) per class
    for c in ds.clips:
        assert c.path.parent.name == c.label  # folder per class


def test_clips_decode_with_audio_and_native_rates(tmp_path):
    cfg = SynthConfig(classes=8, clips_per_class=2, size=48, seconds=1.0)
    generate(tmp_path, cfg, show_progress=False)
    rates = set()
    for path in sorted(tmp_path.rglob("*.mp4")):
        info = probe(path)
        rates.add(round(info.fps, 2))
        assert len(list(iter_frames(path))) == 6
        audio = read_audio(path)
        assert audio.present and audio.seconds == pytest.approx(1.0, rel=0.01)
        assert 0.05 < np.abs(audio.samples).max() <= 1.0
    assert rates <= {25.0, 29.97} and len(rates) == 2


def test_sound_follows_motion_not_appearance():
    # spin: pitch is set by the angular speed, which differs clip to clip
    from afgen.extraction.synth import make_clip

    cfg = SynthConfig(size=48, seconds=1.0)
    peaks = []
    for k in range(4):
        _, audio, _ = make_clip("spin", np.random.default_rng([7, k]), cfg)
        spec = np.abs(np.fft.rfft(audio))
        peaks.append(np.fft.rfftfreq(len(audio), 1 / cfg.audio_rate)[spec.argmax()])
    assert max(peaks) - min(peaks) > 50  # different speeds, different pitch


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(AfgenError, match="--classes"):
        generate(tmp_path, SynthConfig(classes=99), show_progress=False)
    with pytest.raises(AfgenError, match="--missing-audio"):
        generate(tmp_path, SynthConfig(missing_audio=2.0), show_progress=False)


@pytest.mark.parametrize("looks_like, sounds_other", [("bounce", "clang"), ("hammer", "knock")])
def test_sound_only_pairs_look_the_same_and_sound_different(looks_like, sounds_other):
    from afgen.extraction.synth import SOUND_ONLY_PAIRS, make_clip

    assert (looks_like, sounds_other) in SOUND_ONLY_PAIRS
    cfg = SynthConfig(size=48, seconds=1.0)
    frames_a, audio_a, fps_a = make_clip(looks_like, np.random.default_rng([3, 1]), cfg)
    frames_b, audio_b, fps_b = make_clip(sounds_other, np.random.default_rng([3, 1]), cfg)
    assert fps_a == fps_b and all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b))  # same pictures

    def spectrum(x):
        s = np.abs(np.fft.rfft(x))
        return s / np.linalg.norm(s)

    assert float(spectrum(audio_a) @ spectrum(audio_b)) < 0.8  # different sounds


def test_mit_layout_has_official_style_files(tmp_path, caplog):
    import logging

    from afgen.extraction.synth import ABSENT_CLASS

    cfg = SynthConfig(classes=3, clips_per_class=5, size=32, seconds=1.0, layout="mit", workers=1)
    root = generate(tmp_path, cfg, show_progress=False)
    assert root == tmp_path and (root / "moments_categories.txt").is_file()
    rows = [line.split(",") for line in (root / "trainingSet.csv").read_text().splitlines()]
    assert all(len(r) == 4 for r in rows)  # class/file,label,agree,disagree; no header
    assert any(r[1] == ABSENT_CLASS for r in rows) and not (root / "training" / ABSENT_CLASS).exists()
    missing = [r[0] for r in rows if not (root / "training" / r[0]).exists() and r[1] != ABSENT_CLASS]
    assert len(missing) == 1  # one listed clip was never copied
    with caplog.at_level(logging.WARNING):
        ds = discover(root)
    assert ds.layout == "splits" and set(ds.classes) == set(list(CLASSES)[:3])
    assert ABSENT_CLASS in caplog.text
    assert {c.split for c in ds.clips} == {"train", "val"}
    assert sum(not c.path.exists() for c in ds.clips) == 1
    # the same clips, the same bytes as the folder layout
    flat = generate(tmp_path / "flat", SynthConfig(**{**cfg.__dict__, "layout": "folders"}), show_progress=False)
    for clip in discover(flat).clips:
        twin = [c for c in ds.clips if c.path.name == clip.path.name]
        assert len(twin) == 1 and twin[0].path.read_bytes() == clip.path.read_bytes()


def test_the_visual_ceiling_is_recorded_and_is_75_percent_for_the_demo(tmp_path):
    import json

    from afgen.config import DemoConfig
    from afgen.extraction.dataset import discover
    from afgen.extraction.synth import CLASSES, visual_ceiling

    assert visual_ceiling(list(CLASSES)[: DemoConfig.classes]) == 0.75  # two look-alike pairs in 8 classes
    assert visual_ceiling(list(CLASSES)[:6]) == 1.0 and visual_ceiling(list(CLASSES)[:7]) == 6 / 7
    listing = generate(tmp_path / "s", TINY, show_progress=False)
    assert json.loads((tmp_path / "s" / "synth.json").read_text())["visual_ceiling"] == 1.0
    assert discover(listing).selection["visual_ceiling"] == 1.0


def test_the_subtle_cue_is_a_small_mark_on_one_class_of_each_pair():
    from dataclasses import replace

    from afgen.extraction.synth import make_clip, visual_ceiling

    plain, subtle = replace(TINY, size=96), replace(TINY, size=96, cue="subtle")
    for label, marked in (("clang", True), ("knock", True), ("bounce", False), ("roll", False)):
        a_frames, a_audio, _ = make_clip(label, np.random.default_rng(3), plain)
        b_frames, b_audio, _ = make_clip(label, np.random.default_rng(3), subtle)
        np.testing.assert_array_equal(a_audio, b_audio)  # the sound is the same
        changed = np.mean([np.any(a != b, axis=-1).mean() for a, b in zip(a_frames, b_frames)])
        if marked:
            assert 0 < changed < 0.02, (label, changed)  # visible, but a small spot
        else:
            assert changed == 0, label
    assert visual_ceiling(list(CLASSES)[:8], "subtle") == 1.0
