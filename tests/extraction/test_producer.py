from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import afgen.extraction.video
from afgen.config import AudioFeatureConfig, FlowConfig, VideoConfig
from afgen.encoders.audio import get_encoder
from afgen.encoders.flows import gray, make_encoder, make_flow
from afgen.extraction.producer import Settings, produce
from afgen.extraction.video import iter_frames, read_audio

SETTINGS = Settings(video=VideoConfig(height=48, width=48), flow=FlowConfig(), audio=AudioFeatureConfig(), chunk=5)


def collect(clip_id, path, settings=SETTINGS):
    """rgb, flow (each [n, H, W, 3]), the done message's meta and arrays."""
    rgb, flow, end = [], [], None
    for message in produce(clip_id, path, settings):
        if message[0] == "images":
            (rgb if message[2] == "rgb" else flow).append(message[3])
        else:
            end = message
    assert end[0] == "done", end
    return np.concatenate(rgb), np.concatenate(flow), end[2], end[3]


def separate_reads(path, settings=SETTINGS):
    """What extraction computed before clips were opened once: frames, then audio, each its own pass."""
    frames = list(iter_frames(path, settings.video))
    rgb = np.stack([f.rgb for f in frames])
    flow_fn, encode = make_flow(settings.flow), make_encoder(settings.flow)
    flow = np.stack([encode(flow_fn(gray(a), gray(b))) for a, b in zip(rgb[:-1], rgb[1:])])
    track = read_audio(path, settings.video.audio_rate)
    audio = {}
    if track.present:
        with threadpool_limits(limits=1, user_api="blas"):  # as the producer does
            feats = get_encoder(settings.audio.encoder, settings.audio).encode(
                track.samples, track.rate, [f.time for f in frames], 1.0 / settings.video.fps)
        audio = {"audio": feats.clip, "audio_frames": feats.frames}
    return rgb, flow, audio


@pytest.mark.parametrize("kwargs", [
    dict(fps=25.0, seconds=2.0),
    dict(fps=30000 / 1001, seconds=1.5, audio_rate=44_100, tone_hz=1000.0),
    dict(fps=25.0, seconds=1.0, audio=False),
    dict(fps=50.0, seconds=1.2, start=0.7),
])
def test_one_open_gives_the_bytes_of_separate_reads(clip_factory, monkeypatch, kwargs):
    path = clip_factory("c.mp4", **kwargs)
    opened = []
    real_open = afgen.extraction.video._open
    monkeypatch.setattr(afgen.extraction.video, "_open", lambda p: opened.append(p) or real_open(p))
    rgb, flow, meta, arrays = collect("c", path)
    assert opened == [path]  # decode, audio and probe share one open container

    monkeypatch.setattr(afgen.extraction.video, "_open", real_open)
    want_rgb, want_flow, want_audio = separate_reads(path)
    assert rgb.tobytes() == want_rgb.tobytes() and rgb.shape == want_rgb.shape
    assert flow.tobytes() == want_flow.tobytes() and flow.shape == want_flow.shape
    assert arrays.keys() == want_audio.keys()
    for key in arrays:
        assert arrays[key].tobytes() == want_audio[key].tobytes()
    assert meta["has_audio"] is kwargs.get("audio", True)
    assert meta["t"] == len(want_rgb)


def test_one_open_on_synthetic_clips(tmp_path):
    from afgen.config import SynthConfig
    from afgen.extraction.dataset import discover
    from afgen.extraction.synth import generate

    listing = generate(tmp_path / "clips", SynthConfig(classes=2, clips_per_class=2, size=48, seconds=1.0,
                                                      missing_audio=0.3), show_progress=False)
    for clip in discover(listing).clips:
        rgb, flow, _, arrays = collect(clip.id, clip.path)
        want_rgb, want_flow, want_audio = separate_reads(clip.path)
        assert rgb.tobytes() == want_rgb.tobytes() and flow.tobytes() == want_flow.tobytes()
        assert {k: v.tobytes() for k, v in arrays.items()} == {k: v.tobytes() for k, v in want_audio.items()}


def test_unreadable_audio_is_missing_not_a_failure(clip_factory, monkeypatch):
    path = clip_factory("c.mp4", fps=25.0, seconds=1.0)

    def broken(self, packet):
        self._audio.fail(ValueError("corrupt audio packet"))

    monkeypatch.setattr(afgen.extraction.video.ClipReader, "_decode_audio", broken)
    rgb, _, meta, arrays = collect("c", path)
    assert len(rgb) == 6 and arrays == {}
    assert meta["has_audio"] is False and "corrupt audio packet" in meta["audio_missing"]


def test_warm_up_leaves_the_first_clip_as_a_later_one(clip_factory, tmp_path):
    """Workers warm up (audio encoder, flow) before their first clip; that clip's features
    must be those of a later clip with the same content, byte for byte."""
    import shutil

    from afgen.config import ExtractConfig
    from afgen.extraction.dataset import discover
    from afgen.extraction.extract import extract

    source = clip_factory("src.mp4", fps=25.0, seconds=1.0, audio_rate=22_050)
    for name in ("a1", "a2", "a3"):
        (tmp_path / "clips" / "tone").mkdir(parents=True, exist_ok=True)
        shutil.copy(source, tmp_path / "clips" / "tone" / f"{name}.mp4")
    ds = discover(tmp_path / "clips")
    summary = extract(ds, tmp_path / "f", ExtractConfig(backbone="resnet18", weights="none", workers=1,
                                                        batch_size=4, precision="fp32"),
                      VideoConfig(height=32, width=32), show_progress=False)
    assert summary.done == 3 and summary.first_clip_seconds is not None
    ids = [c.id for c in ds.clips]
    for kind in ("audio", "audio_frames", "flow"):
        first = (tmp_path / "f" / kind / f"{ids[0]}.npy").read_bytes()
        assert all((tmp_path / "f" / kind / f"{i}.npy").read_bytes() == first for i in ids[1:]), kind


def test_warm_up_runs_the_encoder_and_changes_nothing(clip_factory):
    from afgen.extraction.producer import warm_up

    path = clip_factory("c.mp4", fps=25.0, seconds=1.0)
    before = collect("c", path)[3]
    warm_up(SETTINGS)
    after = collect("c", path)[3]
    assert {k: v.tobytes() for k, v in before.items()} == {k: v.tobytes() for k, v in after.items()}
