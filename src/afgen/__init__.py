"""afgen: audio feature generation for video action recognition with missing audio.

Reproduces Lee, Lin, Hsu & Hsu, "Audio Feature Generation for Missing Modality Problem in
Video Action Recognition" (ICASSP 2019). See README.md for the pipeline and the API.
"""

from afgen.errors import AfgenError, DatasetError, StoreError, VideoError

__version__ = "0.1.0"

__all__ = ["AfgenError", "DatasetError", "StoreError", "VideoError", "__version__"]
