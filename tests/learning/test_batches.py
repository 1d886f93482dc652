"""Batches (learning/batches.py) from a packed store built in memory: each clip's v_C, label,
real audio or zeros, generated audio where given, padded to the longest; a store's per-frame
audio as a sequence aligned with v_C or pooled to its mean and maximum; and no tensor aliases
the store's read-only memory map (writing to one changes nothing on disk, and no NumPy "not
writable" warning)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from afgen.contracts.openstore import open_store
from afgen.contracts.packed import PackedFeatures
from afgen.errors import AfgenError
from afgen.learning.batches import ClipSet, FrameAudio, collate

D, A, BANDS = 2, 3, 2


def _packed(frames: bool = True) -> PackedFeatures:
    """Clip 0: 3 frames with audio; clip 1: 5 frames without; clip 2: 4 frames with audio."""
    lengths = [3, 5, 4]
    rgb = np.arange(sum(lengths) * D, dtype=np.float32).reshape(-1, D)
    flow = -np.arange((sum(lengths) - 3) * D, dtype=np.float32).reshape(-1, D)
    audio_rows = np.array([[1, 2, 3], [7, 8, 9]], np.float32)
    frames_rows = np.arange((3 + 4) * BANDS, dtype=np.float32).reshape(-1, BANDS)
    return PackedFeatures(
        ids=["c0", "c1", "c2"], labels=["x", "y", "x"], splits=[None] * 3, rgb=rgb, flow=flow,
        audio_rows=audio_rows, rgb_offsets=np.array([0, 3, 8, 12]), flow_offsets=np.array([0, 2, 6, 9]),
        audio_index=np.array([0, -1, 1]), audio_dim=A,
        frames_rows=frames_rows if frames else None, frames_offsets=np.array([0, 3, 7]) if frames else None)


@pytest.mark.parametrize("cache_mb", [1024.0, 0.0], ids=["held in memory", "read per item"])
def test_a_clip_set_item_is_its_v_c_label_audio_or_zeros_and_generated_audio(cache_mb):
    packed = _packed()
    generated = {1: np.array([4, 5, 6], np.float32)}
    ds = ClipSet(packed, [1, 0], {"x": 0, "y": 1}, generated, cache_mb=cache_mb)
    assert len(ds) == 2 and (ds._cache is None) == (cache_mb == 0.0)
    v_c, label, audio, has, gen = ds[0]  # clip 1: no audio, a generated feature
    torch.testing.assert_close(v_c, torch.from_numpy(np.concatenate([packed.rgb[4:8], packed.flow[2:6]], axis=1)))
    assert label == 1 and has is False
    torch.testing.assert_close(audio, torch.zeros(A))
    torch.testing.assert_close(gen, torch.tensor([4.0, 5.0, 6.0]))
    v_c, label, audio, has, gen = ds[1]  # clip 0: real audio, no generated feature
    assert v_c.shape == (2, 2 * D) and label == 0 and has is True
    torch.testing.assert_close(audio, torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(gen, torch.zeros(A))


def test_collate_pads_to_the_longest_clip_and_keeps_the_lengths():
    packed = _packed()
    ds = ClipSet(packed, [0, 1, 2], {"x": 0, "y": 1})
    v_c, lengths, labels, audio, has, gen = collate([ds[i] for i in range(3)])
    assert lengths.tolist() == [2, 4, 3] and v_c.shape == (3, 4, 2 * D)
    for k in range(3):
        torch.testing.assert_close(v_c[k, : lengths[k]], torch.from_numpy(packed.v_c(k)))
        assert not v_c[k, lengths[k]:].any()  # padding is zeros
    assert labels.tolist() == [0, 1, 0] and has.tolist() == [True, False, True]
    torch.testing.assert_close(audio, torch.tensor([[1.0, 2, 3], [0, 0, 0], [7, 8, 9]]))
    assert gen.shape == (3, A) and not gen.any()


def test_frame_audio_as_a_sequence_aligned_with_v_c_and_pooled_to_mean_and_max():
    packed = _packed()
    seq = FrameAudio(packed, pooled=False)
    assert seq.audio_dim == BANDS and seq.sequence and seq.ids == packed.ids  # the rest is the store's
    np.testing.assert_array_equal(seq.audio(0), packed.frames_rows[1:3])  # frames 1.. pair with v_C's rows
    assert seq.audio(1) is None
    pooled = FrameAudio(packed, pooled=True)
    assert pooled.audio_dim == 2 * BANDS and not pooled.sequence
    rows = packed.frames_rows[4:7]  # clip 2's frames 1..3
    np.testing.assert_allclose(pooled.audio(2), np.concatenate([rows.mean(0), rows.max(0)]))
    # a sequence set pads its audio like v_C, and zeros where a clip has none
    ds = ClipSet(seq, [0, 1], {"x": 0, "y": 1})
    _, lengths, _, audio, has, _ = collate([ds[0], ds[1]])
    assert audio.shape == (2, 4, BANDS) and not audio[1].any() and has.tolist() == [True, False]
    torch.testing.assert_close(audio[0, :2], torch.from_numpy(packed.frames_rows[1:3]))


def test_frame_audio_needs_a_store_with_per_frame_audio():
    with pytest.raises(AfgenError, match="no per-frame audio"):
        FrameAudio(_packed(frames=False), pooled=True)


@pytest.mark.parametrize("view", ["clip", "pooled frames", "frames"])
def test_tensors_never_alias_the_memory_map(tiny_store, view):
    packed = open_store(tiny_store / "features").packed
    if view != "clip":
        packed = FrameAudio(packed, pooled=view == "pooled frames")
    with_audio = [i for i in range(len(packed.ids)) if packed.has_audio()[i]]
    labels = {name: k for k, name in enumerate(sorted(set(packed.labels)))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "The given NumPy array is not writable" included
        items = ClipSet(packed, with_audio, labels, cache_mb=0)
        v_c, _, audio, has, generated = items[0]
    assert has
    maps = [m for m in (packed.rgb, packed.flow, packed.audio_rows, packed.frames_rows) if m is not None]
    assert not any(np.shares_memory(t.numpy(), m) for t in (v_c, audio, generated) for m in maps)
    before = packed.audio(with_audio[0]).copy()
    for tensor in (v_c, audio, generated):
        tensor.add_(1.0)  # training may write in place: it must not reach the store
    assert np.array_equal(packed.audio(with_audio[0]), before)
