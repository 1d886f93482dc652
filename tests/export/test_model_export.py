"""afgen export-model: ONNX and TorchScript files that agree with PyTorch on real v_C of any
batch size and length, and `predict --onnx` giving the run's prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from afgen.contracts.exportfolder import onnx_session
from afgen.contracts.packed import load_packed
from afgen.errors import AfgenError
from afgen.export.model import export_model
from afgen.learning.batches import ClipSet, collate
from afgen.learning.run_loader import load_run

pytest.importorskip("onnxruntime")


def _batch(tiny_store, trained, n):
    packed = load_packed(tiny_store / "features")
    ds = ClipSet(packed, list(range(n)), {c: i for i, c in enumerate(trained.classes)})
    v_c, lengths, _, audio, _, _ = collate([ds[i] for i in range(n)])
    # sequences of several lengths; what lies past a length (here: real rows) must be ignored
    lengths = (lengths - torch.arange(n) % 3).clamp_min(1)
    return v_c, lengths, audio


@pytest.mark.parametrize("n", [1, 5])
def test_onnx_export_matches_pytorch_on_any_batch_and_length(tiny_store, tiny_run, tmp_path, n):
    result = export_model(tiny_run, tmp_path / "onnx", "onnx")
    assert max(result.diff.values()) < 1e-4
    trained = load_run(tiny_run)
    v_c, lengths, audio = _batch(tiny_store, trained, n)
    assert n == 1 or len(set(lengths.tolist())) > 1  # sequences of several lengths, padded
    gen = onnx_session(tmp_path / "onnx" / "generator.onnx")
    cls = onnx_session(tmp_path / "onnx" / "classifier.onnx")
    logits, generated = gen.run(None, {"v_c": v_c.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        want_logits, want_std = trained.generator(v_c, lengths)
        want_audio = trained.generator.audio_norm.inverse(want_std)
        want_cls = trained.fusion(v_c, lengths, audio)
    np.testing.assert_allclose(logits, want_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(generated, want_audio.numpy(), atol=1e-4 * float(want_audio.abs().max()))
    got_cls = cls.run(None, {"v_c": v_c.numpy(), "lengths": lengths.numpy(), "audio": audio.numpy()})[0]
    np.testing.assert_allclose(got_cls, want_cls.numpy(), atol=1e-4)
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert meta["classes"] == trained.classes and meta["dims"]["audio_dim"] == audio.shape[1]


def test_torchscript_export_matches_pytorch(tiny_store, tiny_run, tmp_path):
    result = export_model(tiny_run, tmp_path / "ts", "torchscript")
    trained = load_run(tiny_run)
    v_c, lengths, audio = _batch(tiny_store, trained, 4)
    gen = torch.jit.load(str(result.files[0]))
    with torch.no_grad():
        torch.testing.assert_close(gen(v_c, lengths)[0], trained.generator(v_c, lengths)[0], atol=1e-4, rtol=1e-4)


def test_predict_with_onnx_equals_predict_with_the_run(tiny_store, tiny_run, tmp_path):
    from afgen.learning.predict import predict

    export_model(tiny_run, tmp_path / "onnx", "onnx")
    clips = sorted((tiny_store / "clips").rglob("*.mp4"))
    for clip in clips[:2]:
        a = predict(clip, tiny_run, top=3)
        b = predict(clip, onnx=tmp_path / "onnx", top=3)
        assert [name for name, _ in a.top] == [name for name, _ in b.top]
        np.testing.assert_allclose([p for _, p in a.top], [p for _, p in b.top], atol=1e-4)
        np.testing.assert_allclose(a.audio_feature, b.audio_feature, rtol=1e-4, atol=1e-4)
    with pytest.raises(AfgenError, match="not both"):
        predict(clips[0], tiny_run, onnx=tmp_path / "onnx")
