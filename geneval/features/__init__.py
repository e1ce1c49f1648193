"""Feature extractors, registered by name in ``EXTRACTORS`` when their module is imported here.

Each module registers itself where it is defined; adding an extractor means one new module and one import.
"""

from geneval.features.base import EXTRACTORS, ExtractorInfo, FeatureExtractor
from geneval.features import pixels  # noqa: F401  (registers "pixels")
from geneval.features import inception  # noqa: F401  (registers "inception-v3-fid")
from geneval.features import domain  # noqa: F401  (registers the domain classifiers)
from geneval.features import stacked  # noqa: F401  (registers "stacked-mnist-cnn")
from geneval.features import dinov2  # noqa: F401  (registers "dinov2-vit-b14", "dinov2-vit-l14"; needs timm)
from geneval.features import clip  # noqa: F401  (registers "clip-vit-l14-336"; needs open_clip)

__all__ = ["EXTRACTORS", "ExtractorInfo", "FeatureExtractor"]
