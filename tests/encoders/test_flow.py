from __future__ import annotations

import cv2
import numpy as np
import pytest

from afgen.config import FlowConfig
from afgen.encoders.flows import encode_hsv, encode_xy, flow_images, make_flow
from afgen.errors import AfgenError


def _textured_pair(dx: int, dy: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (size + 40, size + 40)).astype(np.float32), (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    a = big[20:20 + size, 20:20 + size]
    b = big[20 - dy:20 - dy + size, 20 - dx:20 - dx + size]  # content moves by (+dx, +dy)
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


@pytest.mark.parametrize("algorithm", ["farneback", "dis", "tvl1"])
def test_flow_recovers_a_known_translation(algorithm):
    a, b = _textured_pair(3, -2)
    flow = make_flow(FlowConfig(algorithm=algorithm))(a, b)
    assert flow.shape == (96, 96, 2)
    inner = flow[16:-16, 16:-16]  # borders have no match
    assert abs(inner[..., 0].mean() - 3) < 0.5
    assert abs(inner[..., 1].mean() - (-2)) < 0.5


def test_unknown_algorithm_and_encoding_are_clear_errors():
    with pytest.raises(AfgenError, match="unknown flow algorithm 'lk'"):
        make_flow(FlowConfig(algorithm="lk"))
    with pytest.raises(AfgenError, match=r"encoding \(--flow-encoding\) must be one of hsv, xy"):
        flow_images(np.zeros((2, 8, 8, 3), np.uint8), FlowConfig(encoding="rgb"))


def test_hsv_encoding_range_and_direction():
    flow = np.zeros((32, 32, 2), np.float32)
    flow[:, 16:, 0] = 5.0  # right half moves right
    img = encode_hsv(flow)
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
    assert img[:, :16].max() == 0  # still pixels are black
    assert img[:, 16:].max() == 255  # the fastest pixels are full value
    hue = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[:, 16:, 0]
    assert np.all(hue == 0)  # direction 0 rad -> hue 0


def test_hsv_encoding_does_not_amplify_noise_when_nothing_moves():
    noise = np.random.default_rng(0).normal(0, 0.01, (32, 32, 2)).astype(np.float32)
    img = encode_hsv(noise)
    assert img.max() < 20  # 0.04 px jitter stays dark (min-max alone would stretch it to 255)
    assert np.isfinite(img).all()
    assert encode_hsv(np.zeros((8, 8, 2), np.float32)).max() == 0


def test_xy_encoding_clips_and_scales():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[0, 0] = (-50, 50)
    flow[1, 1] = (20, -20)
    img = encode_xy(flow)
    assert img.dtype == np.uint8
    assert tuple(img[0, 0]) == (0, 255, 128)
    assert tuple(img[1, 1]) == (255, 0, 128)
    assert tuple(img[2, 2]) == (128, 128, 128)  # zero flow sits mid-range


def test_t_frames_give_t_minus_one_flow_images():
    frames = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    for encoding in ("hsv", "xy"):
        out = flow_images(frames, FlowConfig(algorithm="dis", encoding=encoding))
        assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
    with pytest.raises(AfgenError, match="at least 2 frames"):
        flow_images(frames[:1])
