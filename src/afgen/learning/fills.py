"""What a classifier is given where a clip's audio is missing: one small object per rule.

A fill answers two questions, in training (a dropped or absent training audio) and in the
missing-audio protocol (a test clip whose audio the mask drops): which clips are missing
(`missing`: the drawn mask, except for the upper bound and the visual-only rows) and what
audio stands in for them (`apply`). A method (registry.Method) names its fill; a stage names the
fill its training uses. A new rule is a subclass; no if-chain elsewhere knows the names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Fill:
    """Zeros where the audio is missing (the base rule; subclasses change it)."""

    name: str = "zero"
    description: str = "zero-filled"

    @property
    def generator(self) -> str | None:
        """The stage whose generated audio this fill uses (None: none)."""
        return None

    def missing(self, has_audio: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """Which test clips are missing their audio, from the clips that have a track and the
        protocol's drawn mask (True: dropped at this rate, and every clip without a track)."""
        return drawn

    def apply(self, audio: torch.Tensor, missing: torch.Tensor, generated: torch.Tensor | None = None,
              mean: torch.Tensor | None = None) -> torch.Tensor:
        """The audio a classifier reads: the real `audio` where present, the fill where `missing` [B]."""
        return audio.masked_fill(missing[:, None], 0.0)


@dataclass(frozen=True)
class OwnFill(Fill):
    """Zeros, and the model replaces them itself (a learned token, a reconstruction): it reads
    the `missing` mask it is given."""

    name: str = "own"
    description: str = "the model's own stand-in (a learned token or its reconstruction)"


@dataclass(frozen=True)
class AbsentFill(Fill):
    """The audio is missing for every clip at every rate (a visual-only row)."""

    name: str = "absent"
    description: str = "no audio at any rate (visual only)"

    def missing(self, has_audio: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(has_audio)


@dataclass(frozen=True)
class MeanFill(Fill):
    """The training mean of the audio feature (the scoring model's own statistics)."""

    name: str = "mean"
    description: str = "the training mean"

    def apply(self, audio, missing, generated=None, mean=None):
        return torch.where(missing[:, None], mean.expand_as(audio), audio)


@dataclass(frozen=True)
class GeneratedFill(Fill):
    """The audio feature a generator stage makes from the clip's video."""

    name: str = "generated"
    description: str = "generated from the video"
    stage: str = ""

    @property
    def generator(self) -> str | None:
        return self.stage

    def apply(self, audio, missing, generated=None, mean=None):
        return torch.where(missing[:, None], generated, audio)


@dataclass(frozen=True)
class RealFill(GeneratedFill):
    """The upper bound: real audio wherever the clip has a track, whatever the rate; a clip that
    never had one gets the generator's audio (what the paper's method gives it), so the row
    is the classifier's best with the audio that exists, never below the paper's own row for
    want of audio no method could have."""

    name: str = "real"
    description: str = "real audio wherever the clip has a track (else generated)"

    def missing(self, has_audio: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        return ~has_audio


ZERO = Fill()
OWN = OwnFill()
ABSENT = AbsentFill()
MEAN = MeanFill()


def generated(stage: str) -> GeneratedFill:
    """Fill with the audio the generator stage `stage` makes from the video."""
    return GeneratedFill(stage=stage)


def real(stage: str) -> RealFill:
    """The upper bound's fill: real audio where a track exists, `stage`'s generated audio elsewhere."""
    return RealFill(stage=stage)
