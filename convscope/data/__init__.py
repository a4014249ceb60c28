"""Data: dataset readers, the decoded cache, training-set statistics and the papers' batch transforms."""
from .cache import DecodedCache, cache_key, passthrough
from .datasets import IMAGENETTE_WORDS, build_dataset, collate_skip_bad
from .images import ImageReadError, read_image
from .sharding import ShardedEvalSampler
from .stats import DataStats, compute_stats
from .transforms import CenterCrop, PCALighting, RandomCropFlip, SubtractMean, TenCrop

__all__ = ["CenterCrop", "DataStats", "DecodedCache", "IMAGENETTE_WORDS", "ImageReadError", "PCALighting",
           "RandomCropFlip", "ShardedEvalSampler", "SubtractMean", "TenCrop", "build_dataset", "cache_key",
           "collate_skip_bad", "compute_stats", "passthrough", "read_image"]
