from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from afgen.encoders.backbones import build_backbone, extract_features
from afgen.errors import AfgenError


def _images(n=5, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def test_penultimate_features_and_dimension():
    backbone = build_backbone("resnet18", "none", "cpu", "fp32", batch_size=4)
    assert backbone.dim == 512
    feats = backbone(_images(5))
    assert feats.shape == (5, 512) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and feats.std() > 0


def test_batches_are_fixed_size_and_order_preserving():
    a = build_backbone("resnet18", "none", "cpu", "fp32", batch_size=4)
    images = _images(6)
    full = a(images)
    single = np.concatenate([a(images[i:i + 1]) for i in range(6)])  # each padded to a batch of 4
    np.testing.assert_allclose(full, single, rtol=1e-4, atol=1e-5)
    assert not np.allclose(full[0], full[1])


def test_random_weights_are_reproducible():
    x = _images(2)
    one = build_backbone("resnet18", "none", "cpu", "fp32")(x)
    two = build_backbone("resnet18", "none", "cpu", "fp32")(x)
    np.testing.assert_array_equal(one, two)


def test_state_dict_path_loads_the_same_network(tmp_path):
    torch.manual_seed(123)
    reference = torchvision.models.resnet18(num_classes=7)  # another head: it must be dropped
    path = tmp_path / "weights.pt"
    torch.save(reference.state_dict(), path)
    backbone = build_backbone("resnet18", str(path), "cpu", "fp32", batch_size=2)
    assert backbone.weights_id.startswith("file:weights.pt:sha256=")
    reference.fc = torch.nn.Identity()
    reference.eval()
    x = _images(2)
    inp = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) \
        / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        expected = reference(inp).numpy()
    np.testing.assert_allclose(backbone(x), expected, rtol=1e-4, atol=1e-4)
    random = build_backbone("resnet18", "none", "cpu", "fp32")(x)
    assert not np.allclose(random, expected, atol=1e-3)


def test_state_dict_that_does_not_fit_is_a_clear_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(AfgenError, match="other.pt.*does not fit resnet18"):
        build_backbone("resnet18", str(path))
    with pytest.raises(AfgenError, match="not found"):
        build_backbone("resnet18", str(tmp_path / "missing.pt"))


def test_offline_imagenet_without_cache_names_the_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(AfgenError) as err:
        build_backbone("resnet18", "imagenet")
    assert "--weights PATH" in str(err.value) and "--weights none" in str(err.value)


def test_unknown_backbone_and_bad_input():
    with pytest.raises(AfgenError, match="unknown backbone"):
        build_backbone("resnet9000")
    backbone = build_backbone("resnet18", "none")
    with pytest.raises(AfgenError, match="uint8"):
        extract_features(backbone, np.zeros((2, 32, 32, 3), np.float32))


def test_other_torchvision_models_by_name():
    backbone = build_backbone("mobilenet_v3_small", "none", "cpu", "fp32", batch_size=2)
    assert backbone(_images(3)).shape == (3, backbone.dim)
    assert backbone.dim == 1024


# Every registered kind of backbone: torchvision by name and timm models (timm's own style).
REGISTERED = [("resnet18", 512), ("timm:resnet18", 512), ("timm:convnext_atto", 320), ("efficientnet_lite0", 1280)]


@pytest.mark.parametrize("name,dim", REGISTERED)
def test_every_backbone_shapes_determinism_and_weights_round_trip(name, dim, tmp_path):
    if name.startswith("timm:") or name == "efficientnet_lite0":
        pytest.importorskip("timm")
    backbone = build_backbone(name, "none", "cpu", "fp32", batch_size=4)  # the default runtime
    assert backbone.dim == dim
    x = _images(3)
    feats = backbone(x)
    assert feats.shape == (3, dim) and np.isfinite(feats).all() and feats.std() > 0
    np.testing.assert_array_equal(feats, build_backbone(name, "none", "cpu", "fp32", batch_size=4)(x))
    # --weights PATH: a state dict the test saves (with different values) loads into the same architecture
    backbone = build_backbone(name, "none", "cpu", "fp32", batch_size=4, runtime="torch")
    torch.manual_seed(1)
    for p in backbone.model.parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "w.pt"
    torch.save(backbone.model.state_dict(), path)
    loaded = build_backbone(name, str(path), "cpu", "fp32", batch_size=4)
    np.testing.assert_allclose(loaded(x), backbone(x), rtol=1e-4, atol=1e-4)
    assert loaded.identity()["weights"].startswith("file:w.pt:sha256=")
    assert not np.allclose(loaded(x), feats)


def test_timm_backbone_uses_its_own_preprocessing():
    pytest.importorskip("timm")
    backbone = build_backbone("timm:convnext_atto", "none", "cpu", "fp32", batch_size=2)
    ident = backbone.identity()["preprocess"]
    assert ident["input_size"] == [224, 224] and ident["interpolation"] in ("bicubic", "bilinear")
    assert tuple(ident["mean"]) == pytest.approx((0.485, 0.456, 0.406))
    small = _images(2, size=32)
    # images of another size are resized to the model's input size on the device: same as resizing first
    import torch.nn.functional as F

    big = F.interpolate(torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255, size=(224, 224),
                        mode=ident["interpolation"], antialias=True, align_corners=False).clamp(0, 1)
    big = (big * 255).round().byte().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(backbone(small), backbone(big), rtol=0.05, atol=0.05)


def test_unknown_timm_model_and_missing_timm(monkeypatch):
    pytest.importorskip("timm")
    with pytest.raises(AfgenError, match="unknown timm model"):
        build_backbone("timm:not_a_model_xyz", "none")
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(AfgenError, match="needs timm"):
        build_backbone("timm:resnet18", "none")


def test_own_preprocessing_is_decided_once_cached_and_recorded_alike(monkeypatch):
    """A BACKBONES entry flagged `own_preprocess` has its preprocessing both kept beside its cached
    graph and recorded in the store's identity; an unflagged one neither. timm and
    efficientnet_lite0 are flagged, the torchvision ones are not."""
    from afgen.encoders.backbones import Backbone, _preprocess
    from afgen.encoders.registry import BACKBONES, Encoder

    def both(name: str) -> tuple[bool, bool]:
        backbone = Backbone(None, name, 8, "random:seed=0", torch.device("cpu"), "fp32", 2)
        return _preprocess(backbone) is not None, "preprocess" in backbone.identity()

    BACKBONES.register(Encoder("mine_own", "x:y", 8, "none", "a plugin's", own_preprocess=True))
    BACKBONES.register(Encoder("mine_plain", "x:y", 8, "none", "a plugin's"))
    try:
        seen = {}
        for entry in BACKBONES:
            name = entry.example or entry.name
            seen[name] = both(name)
            assert seen[name] == (entry.own_preprocess, entry.own_preprocess), name
    finally:
        BACKBONES.unregister("mine_own")
        BACKBONES.unregister("mine_plain")
    assert seen["timm:resnet18"] == seen["efficientnet_lite0"] == seen["mine_own"] == (True, True)
    assert seen["resnet18"] == seen["mine_plain"] == seen["mobilenet_v3_small"] == (False, False)
