"""The LSTM sound-feature generator (Lee et al. 2019, section 2.1).

An LSTM reads v_C [t-1, 2D]; its last hidden state x feeds the classification branch
p(y) = softmax(W_p x + b_p) and the regression branch â = W_a x + b_a, which generates the
audio feature. Loss = CE + λ·MSE(â, a), the MSE only on clips that have real audio.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from afgen.config import TrainConfig
from afgen.learning.method_registry import register_model
from afgen.learning.models.standardize import Standardizer


@register_model("lstm_generator")
class SoundFeatureGenerator(nn.Module):
    """LSTM over v_C with a classification head and an audio-feature regression head.

    Inputs are standardised with training statistics; the regression head works in the
    standardised audio space, and `generate` returns features in the store's raw space.
    """

    def __init__(self, input_dim: int, num_classes: int, audio_dim: int,
                 hidden: int = TrainConfig.hidden, layers: int = TrainConfig.layers,
                 dropout: float = TrainConfig.dropout, input_dropout: float = TrainConfig.input_dropout) -> None:
        super().__init__()
        self.visual_norm = Standardizer(input_dim)
        self.audio_norm = Standardizer(audio_dim)
        self.input_dropout = nn.Dropout(input_dropout)
        self.lstm = nn.LSTM(input_dim, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(hidden, num_classes)  # W_p x + b_p
        self.regress = nn.Linear(hidden, audio_dim)  # W_a x + b_a

    def encode(self, v_c: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last hidden state x [B, hidden] of each (padded) sequence."""
        z = self.input_dropout(self.visual_norm(v_c))
        packed = pack_padded_sequence(z, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return h[-1]

    def forward(self, v_c: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits [B, C] and the standardised generated audio feature [B, A]."""
        x = self.dropout(self.encode(v_c, lengths))
        return self.classify(x), self.regress(x)

    @torch.no_grad()
    def predict(self, v_c: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits [B, C] and the generated audio feature in the raw (store) space [B, A]."""
        logits, audio = self(v_c, lengths)
        return logits, self.audio_norm.inverse(audio)

    @torch.no_grad()
    def generate(self, v_c: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Generated audio features in the raw (store) space [B, A]."""
        return self.predict(v_c, lengths)[1]

    @torch.no_grad()
    def score(self, v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor | None = None,
              missing: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits from the video alone (its classification branch): a visual-only row."""
        return self.predict(v_c, lengths)[0]


def audio_cosine(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-clip cosine of generated to real audio features [N, A] (raw space): the one
    generated-vs-real cosine that fit's validation, the stage metrics and evaluate all report."""
    return F.cosine_similarity(generated, real, dim=1)


def audio_cosines(generated: torch.Tensor, real: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip cosine of generated to real audio features [N, A] (raw space): as they are, and
    centred on the training mean (what says whether the generator beats predicting the mean)."""
    return audio_cosine(generated, real), audio_cosine(generated - mean, real - mean)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, has_audio: torch.Tensor) -> torch.Tensor:
    """Mean squared error over clips with real audio only (0 when a batch has none)."""
    mask = has_audio.to(pred.dtype)
    per_clip = ((pred - target) ** 2).mean(dim=1)
    return (per_clip * mask).sum() / mask.sum().clamp_min(1.0)


def generator_loss(logits: torch.Tensor, audio_pred: torch.Tensor, labels: torch.Tensor,
                   audio_target: torch.Tensor, has_audio: torch.Tensor, lambda_reg: float,
                   class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, cross-entropy, masked MSE); targets in the standardised audio space."""
    ce = F.cross_entropy(logits, labels, weight=class_weights)
    mse = masked_mse(audio_pred, audio_target, has_audio)
    return ce + lambda_reg * mse, ce, mse
