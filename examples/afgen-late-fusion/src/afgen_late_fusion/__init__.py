"""Late fusion: log p(y | video) + log p(y | audio), the audio term dropped where the audio is
missing. An example of a method of one's own, registered through afgen's entry point."""

from __future__ import annotations

import torch
from torch import nn

from afgen.learning.method_api import (
    OWN,
    ClassifierModule,
    Method,
    Stage,
    StageContext,
    Standardizer,
    Trained,
    register_method,
    register_model,
    register_stage,
)


@register_model("late_fusion")
class LateFusion(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, audio_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.visual_norm, self.audio_norm = Standardizer(input_dim), Standardizer(audio_dim)
        self.visual = nn.Sequential(nn.Linear(2 * input_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        self.audio = nn.Sequential(nn.Linear(audio_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, v_c, lengths, audio, missing=None):
        z = self.visual_norm(v_c)
        valid = torch.arange(z.shape[1], device=z.device)[None, :, None] < lengths.to(z.device)[:, None, None]
        mean = (z * valid).sum(1) / valid.sum(1).clamp_min(1)
        peak = z.masked_fill(~valid, float("-inf")).amax(1)
        seen = self.visual(torch.cat([mean, peak], 1)).log_softmax(1)
        heard = self.audio(self.audio_norm(audio)).log_softmax(1)
        if missing is not None:
            heard = heard.masked_fill(missing[:, None], 0.0)
        return seen + heard


def train(ctx: StageContext) -> Trained:
    ctx.seed()
    model = ctx.standardized(LateFusion(ctx.visual_dim, ctx.num_classes, ctx.audio_dim))
    return ctx.fit(ClassifierModule(model, ctx.cfg, ctx.class_weights(), OWN, dropout=ctx.cfg.modality_dropout))


register_stage(Stage("late_fusion", "late fusion: a visual and an audio classifier, log-probabilities summed; "
                     "modality dropout", train))
register_method(Method("av_late_fusion", "Late fusion (visual + audio experts; visual alone where audio is missing)",
                       "late_fusion", OWN))
