"""The Assembler (extraction/assemble.py): images of many clips batched through the backbone in
full batches, and each clip's v_R and v_F handed back once, in frame order, with nothing of
another clip mixed in. A stand-in backbone reads each image's tag, so every row is a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from afgen.config import AudioFeatureConfig, FlowConfig, VideoConfig
from afgen.errors import AfgenError
from afgen.extraction.assemble import Assembler, features_in_process
from afgen.extraction.producer import Settings

KINDS = {"rgb": 1, "flow": 2}


class TagBackbone:
    """Features of an image = its (clip, kind, frame) tag, read from its first pixel."""

    batch_size, dim = 4, 3

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(len(images))
        return images[:, 0, 0, :].astype(np.float32)


def _images(clip: int, kind: str, frames: range) -> np.ndarray:
    out = np.zeros((len(frames), 2, 2, 3), np.uint8)
    for k, j in enumerate(frames):
        out[k, 0, 0] = (clip, KINDS[kind], j)
    return out


def _tags(clip: int, kind: str, frames: range) -> np.ndarray:
    return np.array([(clip, KINDS[kind], j) for j in frames], np.float32).reshape(-1, 3)


def test_interleaved_clips_come_back_whole_in_frame_order_through_full_batches():
    backbone = TagBackbone()
    asm = Assembler(backbone)
    out = []
    out += asm.add("a", "rgb", _images(1, "rgb", range(0, 3)))
    out += asm.add("b", "rgb", _images(2, "rgb", range(0, 2)))
    out += asm.add("a", "rgb", _images(1, "rgb", range(3, 5)))
    out += asm.add("a", "flow", _images(1, "flow", range(0, 4)))
    out += asm.finish("a", {"t": 5}, {"audio": np.ones(2)})
    assert out == []  # three of a's flow images are still waiting for a full batch
    out += asm.add("b", "flow", _images(2, "flow", range(0, 1)))  # ... which this one fills
    assert [f.clip_id for f in out] == ["a"]
    out += asm.finish("b", {"t": 2}, {})
    assert [f.clip_id for f in out] == ["a", "b"]
    a, b = out
    np.testing.assert_array_equal(a.rgb, _tags(1, "rgb", range(5)))
    np.testing.assert_array_equal(a.flow, _tags(1, "flow", range(4)))
    np.testing.assert_array_equal(b.rgb, _tags(2, "rgb", range(2)))
    np.testing.assert_array_equal(b.flow, _tags(2, "flow", range(1)))
    assert a.meta == {"t": 5} and list(a.audio) == ["audio"] and b.audio == {}
    assert backbone.batches == [4, 4, 4] and asm.images == 12  # 12 images: full batches only
    assert list(asm.flush()) == [] and backbone.batches == [4, 4, 4]
    assert not asm.parts and not asm.outstanding and not asm.buffered  # nothing left behind


def test_the_last_batch_is_the_only_short_one():
    backbone = TagBackbone()
    asm = Assembler(backbone)
    out = list(asm.add("a", "rgb", _images(1, "rgb", range(10)))) + list(asm.finish("a", {}, {}))
    assert out == [] and backbone.batches == [4, 4]
    (a,) = asm.flush()
    assert backbone.batches == [4, 4, 2]
    np.testing.assert_array_equal(a.rgb, _tags(1, "rgb", range(10)))
    assert a.flow.shape == (0, TagBackbone.dim)  # a clip without flow images: an empty [0, D]


def test_a_dropped_clip_never_reaches_the_backbone_and_the_others_are_whole():
    backbone = TagBackbone()
    asm = Assembler(backbone)
    list(asm.add("a", "rgb", _images(1, "rgb", range(2))))
    list(asm.add("bad", "rgb", _images(9, "rgb", range(1))))
    asm.drop("bad")  # its producer failed
    list(asm.add("a", "rgb", _images(1, "rgb", range(2, 5))))
    (a,) = list(asm.finish("a", {}, {})) + list(asm.flush())
    np.testing.assert_array_equal(a.rgb, _tags(1, "rgb", range(5)))
    assert sum(backbone.batches) == 5  # the dropped image was never computed


class DifferenceFlow:
    """A learned flow stand-in: the flow image between two frames is their difference."""

    def images(self, frames: np.ndarray) -> np.ndarray:
        return frames[1:] - frames[:-1]


def test_a_learned_flow_pairs_frames_across_chunk_borders():
    asm = Assembler(TagBackbone(), DifferenceFlow())
    frames = _images(1, "rgb", range(6))
    list(asm.add("a", "rgb", frames[:4]))
    list(asm.add("a", "rgb", frames[4:]))
    (a,) = list(asm.finish("a", {}, {})) + list(asm.flush())
    np.testing.assert_array_equal(a.rgb, _tags(1, "rgb", range(6)))
    assert len(a.flow) == 5  # t frames, t-1 flows: the pair (3, 4) across the border included
    np.testing.assert_array_equal(a.flow, np.tile([0, 0, 1], (5, 1)).astype(np.float32))


def test_one_clip_in_process_fails_with_the_producers_reason(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    settings = Settings(VideoConfig(height=32, width=32), FlowConfig(), AudioFeatureConfig(), chunk=4)
    with pytest.raises(AfgenError, match="broken.mp4"):
        features_in_process("broken", broken, TagBackbone(), settings)
