"""afgen's public method API: everything a method of your own needs, in one import.

A *stage* is a model `afgen train` fits (Stage: a name, a description, `train(ctx) -> Trained`,
the stages it needs); a *method* is a row of the evaluation table (Method: the stage whose
model scores it and the Fill that handles a test clip's missing audio). Register them from
your code (`register_stage`, `register_method`) or from an installed package's entry point in
the group "afgen.methods"; decorate your model class with `@register_model("name")` so
model.pt can rebuild it. The built-in rows (learning/rows/) are written against this module
too. docs/methods.md walks through a whole method.

The model that scores a row is called as `model.score(v_c, lengths, audio, missing)` (or
`model(...)` when it has no `score`): padded v_C [B, T, 2D], lengths [B], the audio the row's
fill gives [B, A] (raw store space) and the missing-audio mask [B] -> class logits [B, C].
A generator whose audio a fill uses has `generate(v_c, lengths) -> [B, A]`.
"""

from __future__ import annotations

from afgen.learning.fills import ABSENT, MEAN, OWN, ZERO, Fill, generated, real
from afgen.learning.fit import ClassifierModule, GeneratorModule, StageModule, distillation
from afgen.learning.method_registry import (
    ENTRY_POINT_GROUP,
    Method,
    Stage,
    register_method,
    register_model,
    register_stage,
    registry,
)
from afgen.learning.models import AudioVisualClassifier, SoundFeatureGenerator
from afgen.learning.models.standardize import Standardizer
from afgen.learning.stage_context import StageContext, Trained
from afgen.learning.stage_recipes import classifier, generator, new_generator

__all__ = [
    "ABSENT", "MEAN", "OWN", "ZERO", "ENTRY_POINT_GROUP", "AudioVisualClassifier", "ClassifierModule", "Fill",
    "GeneratorModule", "Method", "SoundFeatureGenerator", "Stage", "StageContext", "StageModule", "Standardizer",
    "Trained", "classifier", "distillation", "generated", "generator", "new_generator", "real", "register_method",
    "register_model", "register_stage", "registry",
]
