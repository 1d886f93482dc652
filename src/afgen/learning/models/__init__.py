"""The LSTM sound-feature generators (clip-level and per-frame) and the audio-visual classifier."""

from afgen.learning.models.frame_generator import FrameGenerator, masked_frame_mse, pool_frames, pooled_dim
from afgen.learning.models.fusion import AudioVisualClassifier
from afgen.learning.models.generator import SoundFeatureGenerator, audio_cosine, audio_cosines, generator_loss, masked_mse

__all__ = ["AudioVisualClassifier", "FrameGenerator", "SoundFeatureGenerator", "audio_cosine", "audio_cosines",
           "generator_loss", "masked_frame_mse", "masked_mse", "pool_frames", "pooled_dim"]
