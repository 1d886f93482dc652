"""Per-frame generation: the LSTM regresses the audio of every video frame it reads (the store's
audio_frames, aligned with v_C's rows) instead of one clip-level summary, so the supervision
says *when* each sound happens; `pool_frames` turns a sequence (real or generated) into the
input of the classifier that reads it: its mean and maximum over time.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from afgen.config import TrainConfig
from afgen.learning.method_registry import register_model
from afgen.learning.models.generator import SoundFeatureGenerator


def _valid(lengths: torch.Tensor, steps: int, device: torch.device) -> torch.Tensor:
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


def pooled_dim(bands: int) -> int:
    """The width of a pooled sequence of `bands`-wide frames: its mean and its maximum."""
    return 2 * bands


def pool_frames(seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """concat(mean, max) over the valid steps of padded sequences [B, T, F] -> [B, 2F]."""
    valid = _valid(lengths, seq.shape[1], seq.device)[..., None]
    mean = (seq * valid).sum(1) / lengths.to(seq.device)[:, None].clamp_min(1)
    peak = seq.masked_fill(~valid, float("-inf")).amax(1)
    return torch.cat([mean, peak.clamp_min(torch.finfo(seq.dtype).min)], dim=1)


def frame_targets(frames):
    """The per-frame audio aligned with v_C: row k of v_C is frame k+1, so frames[1:]."""
    return frames[1:]


def masked_frame_mse(pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor,
                     has_audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean squared error over the valid steps of clips with real audio, per-clip MSE [B])."""
    valid = _valid(lengths, pred.shape[1], pred.device) & has_audio.to(pred.device)[:, None]
    per_step = ((pred - target) ** 2).mean(-1) * valid
    per_clip = per_step.sum(1) / valid.sum(1).clamp_min(1)
    return per_step.sum() / valid.sum().clamp_min(1), per_clip


@register_model("lstm_frame_generator")
class FrameGenerator(SoundFeatureGenerator):
    """The paper's LSTM with its regression head applied at every step: [B, T, bands]
    (standardised per band); classification still reads the last hidden state."""

    def __init__(self, input_dim: int, num_classes: int, bands: int, hidden: int = TrainConfig.hidden,
                 layers: int = TrainConfig.layers, dropout: float = TrainConfig.dropout,
                 input_dropout: float = TrainConfig.input_dropout) -> None:
        super().__init__(input_dim, num_classes, bands, hidden, layers, dropout, input_dropout)

    def forward(self, v_c: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits [B, C] and the standardised per-frame audio [B, T, bands]."""
        z = self.input_dropout(self.visual_norm(v_c))
        packed = pack_padded_sequence(z, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, _) = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=v_c.shape[1])
        return self.classify(self.dropout(h[-1])), self.regress(self.dropout(out))

    @torch.no_grad()
    def predict(self, v_c: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits and the generated audio as the classifier reads it: pooled, raw space
        [B, pooled_dim(bands)]."""
        logits, seq = self(v_c, lengths)
        return logits, pool_frames(self.audio_norm.inverse(seq), lengths)

    @torch.no_grad()
    def generate(self, v_c: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.predict(v_c, lengths)[1]
