"""`afgen export-model`: a trained run's generator and audio-visual classifier as ONNX or
TorchScript files that run without afgen (dynamic batch and sequence length).

    OUT/generator.onnx   v_c [B, T, 2D] float32, lengths [B] int64 -> logits [B, C], audio [B, A]
    OUT/classifier.onnx  v_c, lengths, audio [B, A] float32 -> logits [B, C]
    OUT/export.json      classes, dims, inputs/outputs, the run it came from

The generator's `audio` output is in the store's raw feature space (what the classifier and
the real track's feature use). The LSTM runs over the padded input and reads the top layer's
output at each sequence's last step, which equals the packed sequence's final hidden state
(the ONNX exporters cannot trace pack_padded_sequence).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from afgen.contracts.exportfolder import INSTALL, onnx_session, write_export_meta
from afgen.errors import AfgenError
from afgen.learning.models import AudioVisualClassifier, SoundFeatureGenerator
from afgen.learning.run_loader import load_run

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")


class ExportedGenerator(nn.Module):
    """v_c, lengths -> (class logits, generated audio feature in the raw store space)."""

    def __init__(self, generator: SoundFeatureGenerator) -> None:
        super().__init__()
        self.g = generator

    def forward(self, v_c: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.g.lstm(self.g.visual_norm(v_c))
        last = (lengths.to(torch.int64) - 1).clamp_min(0)
        x = out[torch.arange(out.shape[0]), last]
        return self.g.classify(x), self.g.audio_norm.inverse(self.g.regress(x))


class ExportedClassifier(nn.Module):
    """v_c, lengths, audio (raw; real or generated) -> class logits."""

    def __init__(self, classifier: AudioVisualClassifier) -> None:
        super().__init__()
        self.c = classifier

    def forward(self, v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.c(v_c, lengths, audio)


@dataclass(frozen=True)
class ExportResult:
    out: Path
    files: list[Path]
    #: exported vs PyTorch on a probe batch: logits absolute, generated audio relative to its largest value
    diff: dict[str, float]


def _probe(input_dim: int, audio_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    v_c = torch.randn(3, 7, input_dim, generator=gen)
    return v_c, torch.tensor([7, 4, 2], dtype=torch.int64), torch.randn(3, audio_dim, generator=gen)


def export_model(run: str | Path, out: str | Path, fmt: str = "onnx") -> ExportResult:
    """Export the run's generator and audio-visual classifier (its first seed, for several)."""
    if fmt not in FORMATS:
        raise AfgenError(f"unknown --format {fmt!r}; use onnx or torchscript")
    trained = load_run(run)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AfgenError("exists and is a file; choose an output folder", out)
    out.mkdir(parents=True, exist_ok=True)
    generator = ExportedGenerator(trained.generator).eval()
    classifier = ExportedClassifier(trained.fusion).eval()
    dims = {"input_dim": trained.generator.lstm.input_size, "num_classes": len(trained.classes),
            "audio_dim": trained.generator.regress.out_features}
    v_c, lengths, audio = _probe(dims["input_dim"], dims["audio_dim"])
    with torch.no_grad():
        want_gen = generator(v_c, lengths)
        want_cls = classifier(v_c, lengths, audio)
        packed = trained.generator(v_c, lengths)[0]
    if not torch.allclose(packed, want_gen[0], atol=1e-5):
        raise AfgenError("internal: the export's padded LSTM disagrees with the packed one")  # pragma: no cover
    if fmt == "onnx":
        files = _onnx(generator, classifier, (v_c, lengths), (v_c, lengths, audio), out)
        got_gen, got_cls = _run_onnx(files, v_c, lengths, audio)
    else:
        files = _torchscript(generator, classifier, (v_c, lengths), (v_c, lengths, audio), out)
        gen_ts, cls_ts = (torch.jit.load(str(f)) for f in files)
        with torch.no_grad():
            got_gen = [t.numpy() for t in gen_ts(v_c, lengths)]
            got_cls = cls_ts(v_c, lengths, audio).numpy()
    scale = float(want_gen[1].abs().max()) or 1.0  # raw audio features run to tens: compare relatively
    diff = {"generator_logits": float(np.abs(got_gen[0] - want_gen[0].numpy()).max()),
            "generator_audio_relative": float(np.abs(got_gen[1] - want_gen[1].numpy()).max()) / scale,
            "classifier_logits": float(np.abs(got_cls - want_cls.numpy()).max())}
    write_export_meta(out, fmt, files, trained.classes, dims, trained.path.resolve(), trained.store_config, diff)
    return ExportResult(out, files, diff)


def _onnx(generator: nn.Module, classifier: nn.Module, gen_args: tuple, cls_args: tuple, out: Path) -> list[Path]:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise AfgenError(f"ONNX export needs the onnx package: {INSTALL}") from None
    batch_time = {0: "batch", 1: "time"}
    files = [out / "generator.onnx", out / "classifier.onnx"]
    specs = [
        (generator, gen_args, files[0], ["v_c", "lengths"], ["logits", "audio"],
         {"v_c": batch_time, "lengths": {0: "batch"}, "logits": {0: "batch"}, "audio": {0: "batch"}}),
        (classifier, cls_args, files[1], ["v_c", "lengths", "audio"], ["logits"],
         {"v_c": batch_time, "lengths": {0: "batch"}, "audio": {0: "batch"}, "logits": {0: "batch"}}),
    ]
    for model, args, path, inputs, outputs, axes in specs:
        tmp = path.with_name(f".{path.name}.tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, args, str(tmp), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=17, dynamo=False)
        tmp.replace(path)
    return files


def _run_onnx(files: list[Path], v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor):
    gen, cls = (onnx_session(f) for f in files)
    got_gen = gen.run(None, {"v_c": v_c.numpy(), "lengths": lengths.numpy()})
    got_cls = cls.run(None, {"v_c": v_c.numpy(), "lengths": lengths.numpy(), "audio": audio.numpy()})[0]
    return got_gen, got_cls


def _torchscript(generator: nn.Module, classifier: nn.Module, gen_args: tuple, cls_args: tuple,
                 out: Path) -> list[Path]:
    files = [out / "generator.pt", out / "classifier.pt"]
    for model, args, path in ((generator, gen_args, files[0]), (classifier, cls_args, files[1])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, args, check_trace=False)
        tmp = path.with_name(f".{path.name}.tmp")
        traced.save(str(tmp))
        tmp.replace(path)
    return files
