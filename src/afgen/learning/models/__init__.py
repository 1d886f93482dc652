"""The LSTM sound-feature generator and the audio-visual classifier."""

from afgen.learning.models.fusion import AudioVisualClassifier
from afgen.learning.models.generator import SoundFeatureGenerator, generator_loss, masked_mse

__all__ = ["AudioVisualClassifier", "SoundFeatureGenerator", "generator_loss", "masked_mse"]
