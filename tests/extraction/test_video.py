from __future__ import annotations

import numpy as np
import pytest

from afgen.config import VideoConfig
from afgen.errors import AfgenError, VideoError
from afgen.extraction.video import TimestampSampler, decode_clip, iter_frames, probe, read_audio


@pytest.mark.parametrize("fps", [24, 25, 30000 / 1001, 30, 50, 60000 / 1001])
def test_three_second_clip_gives_18_frames_at_any_native_rate(clip_factory, fps):
    clip = clip_factory(f"c{fps:.2f}.mp4", fps=fps, seconds=3.0, audio=False)
    decoded = decode_clip(clip, audio=False)
    assert decoded.frames.shape == (18, 224, 224, 3)
    assert decoded.frames.dtype == np.uint8
    # sampled frames sit within one native frame of the targets k/6
    targets = np.arange(18) / 6
    assert np.all(decoded.times <= targets + 1e-3)
    assert np.all(targets - decoded.times < 1 / fps + 1e-3)


def test_clip_slower_than_target_rate_gives_every_frame(clip_factory):
    clip = clip_factory("slow.mp4", fps=4, seconds=3.0, audio=False)
    assert len(list(iter_frames(clip))) == 12


def test_variable_frame_rate(clip_factory):
    gaps = np.random.default_rng(3).uniform(0.02, 0.07, 200)
    times = [float(t) for t in np.concatenate([[0], np.cumsum(gaps)]) if t < 2.99]
    clip = clip_factory("vfr.mp4", times=times, fps=30, audio=False)
    got = [f.time for f in iter_frames(clip)]
    assert len(got) == 18
    for k, t in enumerate(got):  # each is the latest frame at or before k/6
        before = [x for x in times if x <= k / 6 + 1e-4]
        assert t == pytest.approx(before[-1], abs=2e-3)


def test_nonzero_start_time_counts_from_stream_start(clip_factory):
    clip = clip_factory("late.mp4", fps=25, seconds=3.0, start=1.5, audio=False)
    frames = list(iter_frames(clip))
    assert len(frames) == 18
    assert frames[0].time == pytest.approx(0.0, abs=1e-6)


def test_working_size_is_configurable(clip_factory):
    clip = clip_factory("small.mp4", fps=25, seconds=1.0, audio=False)
    decoded = decode_clip(clip, VideoConfig(height=48, width=80), audio=False)
    assert decoded.frames.shape == (6, 48, 80, 3)


def test_sampler_keeps_each_frame_once():
    sampler = TimestampSampler(6.0)
    kept = [sampler.keep(upper) for upper in (0.1, 0.2, 0.25, 0.3, 0.6)]
    assert kept == [True, True, False, False, True]


def test_audio_is_mono_16k_with_the_clip_duration(clip_factory):
    clip = clip_factory("tone.mp4", fps=25, seconds=2.0, audio=True)
    audio = read_audio(clip)
    assert audio.present and audio.rate == 16_000
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.seconds == pytest.approx(2.0, rel=0.01)
    spectrum = np.abs(np.fft.rfft(audio.samples))
    peak = np.fft.rfftfreq(len(audio.samples), 1 / 16_000)[spectrum.argmax()]
    assert peak == pytest.approx(440, abs=5)


def test_clip_without_audio_stream_is_missing_not_an_error(clip_factory):
    clip = clip_factory("silent.mp4", audio=False)
    audio = read_audio(clip)
    assert not audio.present and audio.samples is None
    assert "no audio stream" in audio.missing_reason
    assert probe(clip).has_audio is False


def test_zero_byte_file(tmp_path):
    bad = tmp_path / "empty.mp4"
    bad.touch()
    with pytest.raises(VideoError, match="empty.mp4.*0 bytes"):
        decode_clip(bad)


def test_non_video_file(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match="notes.mp4"):
        decode_clip(bad)


def test_truncated_file(clip_factory, tmp_path):
    clip = clip_factory("whole.mp4", fps=25, seconds=2.0)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="cut.mp4"):
        decode_clip(cut)


def test_too_short_clip(clip_factory):
    clip = clip_factory("one.mp4", times=[0.0], fps=25, audio=False)
    with pytest.raises(VideoError, match="one.mp4.*at least 2"):
        decode_clip(clip)


def test_missing_file(tmp_path):
    with pytest.raises(AfgenError, match="nope.mp4.*not found"):
        decode_clip(tmp_path / "nope.mp4")


def test_truncation_is_detected_against_declared_duration(clip_factory):
    clip = clip_factory("long.mp4", fps=25, seconds=2.0, audio=False)
    strict = VideoConfig(min_decoded_fraction=1.5)  # pretend the container promised more
    with pytest.raises(VideoError, match="truncated"):
        list(iter_frames(clip, strict))
