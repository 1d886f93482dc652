"""encoders/weights.py: the one rule for `none`, `default` and a PATH, and the identity each
gives (what a store's config.json records of a learned component's weights)."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from afgen.encoders.weights import (
    RANDOM_ID,
    RANDOM_SEED,
    is_default,
    load_into,
    load_state_dict,
    one_torch_thread,
    resolve_weights,
    seeded,
)
from afgen.errors import AfgenError


def _net() -> nn.Module:
    return nn.Linear(3, 2)


def test_none_is_the_same_seeded_network_every_time_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, ident = resolve_weights("none", _net, default=lambda: pytest.fail("default() called for none"))
    assert ident == RANDOM_ID == f"random:seed={RANDOM_SEED}"
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random stream is untouched
    torch.manual_seed(RANDOM_SEED)
    expected = _net()  # what RANDOM_SEED draws
    b = seeded(_net)
    for x, y, z in zip(a.parameters(), b.parameters(), expected.parameters()):
        assert torch.equal(x, y) and torch.equal(x, z)


@pytest.mark.parametrize("spec", ["default", "imagenet"])
def test_default_and_its_alias_take_the_librarys_weights(spec):
    marker = _net()
    assert resolve_weights(spec, _net, default=lambda: (marker, "torchvision:X")) == (marker, "torchvision:X")
    assert is_default(spec) and not is_default("none") and not is_default("weights.pt")


def test_a_path_loads_strictly_and_is_named_by_its_digest(tmp_path):
    source = seeded(lambda: nn.Linear(3, 2))
    with torch.no_grad():
        source.weight.fill_(0.5)
    path = tmp_path / "mine.pt"
    torch.save(source.state_dict(), path)
    model, ident = resolve_weights(str(path), _net, default=lambda: pytest.fail("default() called for a path"))
    assert ident == f"file:mine.pt:sha256={hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    assert torch.equal(model.weight, torch.full((2, 3), 0.5))
    fitted = resolve_weights(str(path), _net, default=lambda: None, fit=lambda m, p: (m, f"fit:{p.name}"))
    assert fitted[1] == "fit:mine.pt"  # a component's own rule for files replaces the strict load


def test_a_checkpoint_or_ddp_state_dict_is_unwrapped(tmp_path):
    state = {f"module.{k}": v for k, v in _net().state_dict().items()}  # saved from DistributedDataParallel
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pt")  # inside a Lightning-style checkpoint
    loaded, _ = load_state_dict(tmp_path / "ckpt.pt")
    assert set(loaded) == {"weight", "bias"}


def test_bad_weight_files_are_refused_by_name(tmp_path):
    with pytest.raises(AfgenError, match="weights file not found") as missing:
        load_state_dict(tmp_path / "nope.pt")
    assert "nope.pt" in str(missing.value)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(AfgenError, match="expected a state dict"):
        load_state_dict(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(AfgenError, match="not a loadable state dict"):
        load_state_dict(tmp_path / "junk.pt")
    torch.save(nn.Linear(4, 2).state_dict(), tmp_path / "other.pt")
    with pytest.raises(AfgenError, match="does not fit the probe") as wrong:
        load_into(_net(), tmp_path / "other.pt", "the probe")
    assert "other.pt" in str(wrong.value)
    torch.save({"weight": torch.zeros(2, 3)}, tmp_path / "partial.pt")  # strict: no key may be missing
    with pytest.raises(AfgenError, match="does not fit the probe"):
        load_into(_net(), tmp_path / "partial.pt", "the probe")


def test_one_torch_thread_inside_and_the_count_restored_after():
    threads = torch.get_num_threads()
    with one_torch_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
    with pytest.raises(RuntimeError), one_torch_thread():
        raise RuntimeError("a failure inside")
    assert torch.get_num_threads() == threads


# -- the identity a store records, written and read back by weights.py --------------------------

CONFIG = "FEATURES/config.json"


def _back(identity: str, given: str | None = None) -> str:
    from afgen.encoders.weights import spec_for

    return spec_for(identity, given, "settings.weights", CONFIG, "pass the same file with --weights PATH")


def test_random_round_trip():
    _, ident = resolve_weights("none", _net, default=lambda: pytest.fail("no default"))
    assert _back(ident) == "none" and resolve_weights(_back(ident), _net, default=None)[1] == ident


@pytest.mark.parametrize("identity", [
    "torchvision:ResNet18_Weights.IMAGENET1K_V1", "package:torch==2.0:w.pth:sha256=0123456789abcdef",
    "hf:MIT/ast-finetuned-audioset-10-10-0.4593", "timm:resnet18:timm/resnet18.a1_in1k", "torchvggish:vggish"])
def test_pretrained_identities_are_rebuilt_by_default(identity):
    assert _back(identity) == "default"


def test_the_pretrained_writers_write_what_spec_for_reads():
    from afgen.encoders.weights import hf_id, package_id, spec_for, timm_id, torchvggish_id, torchvision_id

    for ident in (torchvision_id("ResNet18_Weights.IMAGENET1K_V1"), package_id("torch", "file:w.pth:sha256=ab"),
                  hf_id("MIT/ast"), timm_id("resnet18", "tag"), torchvggish_id("vggish")):
        assert spec_for(ident, None, "f", CONFIG, "fix") == "default", ident
    from afgen.provenance import installed_version

    assert package_id("torch", "file:w.pth:sha256=ab") == f"package:torch=={installed_version('torch')}:w.pth:sha256=ab"


def test_file_round_trip_and_a_moved_or_changed_file_is_a_clear_error(tmp_path):
    path = tmp_path / "mine.pt"
    torch.save(_net().state_dict(), path)
    _, ident = resolve_weights(str(path), _net, default=None)
    assert _back(ident, str(path)) == str(path)
    assert resolve_weights(_back(ident, str(path)), _net, default=None)[1] == ident
    with pytest.raises(AfgenError, match="does not record") as unrecorded:
        _back(ident, None)
    assert str(unrecorded.value).startswith(f"{CONFIG}: settings.weights is local weights (file:mine.pt:sha256=")
    torch.save(nn.Linear(3, 2).state_dict(), path)  # other weights under the same name
    with pytest.raises(AfgenError, match="but .*mine.pt is now file:mine.pt:sha256=.*--weights PATH"):
        _back(ident, str(path))
    path.unlink()
    with pytest.raises(AfgenError, match=f"no longer at {path}; pass the same file with --weights PATH") as gone:
        _back(ident, str(path))
    assert CONFIG in str(gone.value)


def test_folder_round_trip(tmp_path):
    from afgen.encoders.weights import folder_id

    folder = tmp_path / "ast-saved"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    ident = folder_id(folder)
    assert ident.startswith("folder:ast-saved:") and _back(ident, str(folder)) == str(folder)
    (folder / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(AfgenError, match="is now folder:ast-saved:"):
        _back(ident, str(folder))


@pytest.mark.parametrize("identity", ["file:mine.pt", "file:mine.pt:sha256=zz", "random:seed=7", "weird:thing",
                                      "torchvision:", "garbage"])
def test_an_unknown_or_garbled_identity_is_a_clear_error(identity, tmp_path):
    with pytest.raises(AfgenError, match="not a weights identity this afgen writes") as bad:
        _back(identity, str(tmp_path))
    assert str(bad.value).startswith(f"{CONFIG}: settings.weights is {identity!r}")
    assert "re-extract the store" in str(bad.value)


def test_no_identity_is_default():
    assert _back("") == "default"
