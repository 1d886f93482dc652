"""Clips as tensors: none aliases the store's read-only memory map (writing to one is safe and
changes nothing on disk), and making them raises no NumPy "not writable" warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from afgen.learning.batches import ClipSet, FrameAudio
from afgen.verify import open_packed


@pytest.mark.parametrize("view", ["clip", "pooled frames", "frames"])
def test_tensors_never_alias_the_memory_map(tiny_store, view):
    packed = open_packed(tiny_store / "features")
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
