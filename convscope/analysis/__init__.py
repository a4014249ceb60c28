"""Looking inside convnets (Zeiler & Fergus 2014): pure functions of (model, tensors) returning tensors or small
frozen dataclasses. Rendering lives in :mod:`convscope.report`.

The names below are the public API; helpers (per-batch top-k pieces, the deconvnet's stack walking, layer-alias
tables) stay in their modules.
"""
from ._hooks import UnknownLayerError, capture, layer_names, resolve_layer
from .correspondence import (AnnotationError, Annotations, Correspondence, correspondence, read_annotations,
                             sign_consistency)
from .deconv import deconv_project
from .evolution import FeatureEvolution, feature_evolution
from .filters import FilterComparison, FilterStats, compare_filters, conv_filters, filter_stats
from .invariance import InvarianceCurves, invariance_curves
from .occlusion import OcclusionMap, occlusion_map
from .receptive_field import ReceptiveField, receptive_field
from .retrieval import (BinaryAutoencoder, Neighbours, binary_codes, hamming_neighbours, nearest_neighbours,
                        precision_at_k, train_binary_autoencoder)
from .sanity import SanityResult, randomization_checks
from .top_activations import (TopActivations, TopProjections, all_gather_topk, merge_topk, project_top, rf_patches,
                              top_activations)
from .transfer import ProbeTable, extract_features, linear_probes, scratch_baseline

__all__ = [
    # finding layers and their outputs
    "UnknownLayerError", "capture", "layer_names", "resolve_layer", "ReceptiveField", "receptive_field",
    # ZF §2-4: deconvnet, top-9 atlas, filters, feature evolution
    "deconv_project", "TopActivations", "TopProjections", "top_activations", "merge_topk", "all_gather_topk",
    "project_top", "rf_patches", "FilterStats", "FilterComparison", "filter_stats", "compare_filters",
    "conv_filters", "FeatureEvolution", "feature_evolution",
    # ZF §4-5, AlexNet §6.1: occlusion, invariance, correspondence, transfer, retrieval
    "OcclusionMap", "occlusion_map", "InvarianceCurves", "invariance_curves", "AnnotationError", "Annotations",
    "Correspondence", "correspondence", "read_annotations", "sign_consistency", "ProbeTable", "extract_features",
    "linear_probes", "scratch_baseline", "BinaryAutoencoder", "Neighbours", "binary_codes", "hamming_neighbours",
    "nearest_neighbours", "precision_at_k", "train_binary_autoencoder",
    # can the pictures be trusted? (Adebayo et al. 2018)
    "SanityResult", "randomization_checks",
]
