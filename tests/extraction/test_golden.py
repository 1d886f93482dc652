"""Golden reference features: the default extractor on one committed tiny clip must give the
committed features (within floating-point noise), so a library upgrade that changes decoding,
resizing, flow, normalisation or the audio front end is caught here, not in a user's results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent.parent / "data" / "golden"


def _maker():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    return _maker().extract_golden_clip(tmp_path_factory.mktemp("golden") / "features")


@pytest.mark.parametrize("modality", ["rgb", "flow", "audio", "audio_frames"])
def test_default_extractor_gives_the_golden_features(extracted, modality):
    want = np.load(GOLDEN / "golden.npz")[modality]
    got = extracted[modality]
    assert got.shape == want.shape
    rows_got, rows_want = got.reshape(len(got), -1) if got.ndim > 1 else got[None], \
        want.reshape(len(want), -1) if want.ndim > 1 else want[None]
    cosine = (rows_got * rows_want).sum(1) / (np.linalg.norm(rows_got, axis=1) * np.linalg.norm(rows_want, axis=1))
    assert cosine.min() > 0.9999, f"{modality}: features changed (min cosine {cosine.min():.6f})"
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))
