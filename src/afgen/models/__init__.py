"""The LSTM sound-feature generator and the audio-visual classifier."""

from afgen.models.fusion import AudioVisualClassifier
from afgen.models.generator import SoundFeatureGenerator, generator_loss, masked_mse

__all__ = ["AudioVisualClassifier", "SoundFeatureGenerator", "generator_loss", "masked_mse"]
