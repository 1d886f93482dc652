"""Golden reference features: the default extractor on one committed tiny clip must give the
committed features (within floating-point noise), so a library upgrade that changes decoding,
resizing, flow, normalisation or the audio front end is caught here, not in a user's results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

GOLDEN = Path(__file__).parent.parent / "data" / "golden"

#: The flow rows' least cosine to golden. OpenCV picks Farneback's SIMD code by CPU, and the
#: hsv encoding quantises direction and magnitude to uint8, so another CPU moves a few pixels
#: by a level: an AVX2 EPYC gave min cosine 0.99984, exactly what cv2.setUseOptimized(False)
#: gives here (tested below). Real changes sit far below: the decoded frames blurred 3x3 gave
#: 0.937, Farneback's iterations 3 -> 2 gave 0.961, winsize 15 -> 13 gave 0.898.
FLOW_MIN_COSINE = 0.9995


def _maker():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    return _maker().extract_golden_clip(tmp_path_factory.mktemp("golden") / "features")


def _row_cosines(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    rows_got = got.reshape(len(got), -1) if got.ndim > 1 else got[None]
    rows_want = want.reshape(len(want), -1) if want.ndim > 1 else want[None]
    return (rows_got * rows_want).sum(1) / (np.linalg.norm(rows_got, axis=1) * np.linalg.norm(rows_want, axis=1))


@pytest.mark.parametrize("modality", ["rgb", "audio", "audio_frames"])
def test_default_extractor_gives_the_golden_features(extracted, modality):
    want = np.load(GOLDEN / "golden.npz")[modality]
    got = extracted[modality]
    assert got.shape == want.shape
    cosine = _row_cosines(got, want)
    assert cosine.min() > 0.9999, f"{modality}: features changed (min cosine {cosine.min():.6f})"
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))


def test_default_extractor_gives_the_golden_flow_features(extracted):
    want = np.load(GOLDEN / "golden.npz")["flow"]
    assert extracted["flow"].shape == want.shape
    cosine = _row_cosines(extracted["flow"], want)
    assert cosine.min() > FLOW_MIN_COSINE, f"flow: features changed (min cosine {cosine.min():.6f})"


def test_golden_flow_holds_on_opencvs_other_code_path(tmp_path):
    """OpenCV's plain C++ Farneback (what a CPU without this one's SIMD paths runs) still
    passes: the tolerance covers the CPU, not only this machine."""
    cv2.setUseOptimized(False)
    try:
        got = _maker().extract_golden_clip(tmp_path / "features")["flow"]
    finally:
        cv2.setUseOptimized(True)
    cosine = _row_cosines(got, np.load(GOLDEN / "golden.npz")["flow"])
    assert cosine.min() > FLOW_MIN_COSINE, f"flow on OpenCV's unoptimised path: min cosine {cosine.min():.6f}"
