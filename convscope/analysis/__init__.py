"""Looking inside convnets (Zeiler & Fergus 2014): pure functions of (model, tensors) returning tensors or small
frozen dataclasses. Rendering lives in :mod:`convscope.report`."""
from ._hooks import UnknownLayerError, capture, eval_mode, layer_names, resolve_layer
from ._layers import stage_layer
from .correspondence import (AnnotationError, Annotations, Correspondence, correspondence, read_annotations,
                             sign_consistency)
from .invariance import InvarianceCurves, invariance_curves
from .occlusion import OcclusionMap, occlusion_map
from .retrieval import (BinaryAutoencoder, Neighbours, binary_codes, hamming_neighbours, nearest_neighbours,
                        precision_at_k, train_binary_autoencoder)
from .transfer import ProbeTable, extract_features, linear_probes, scratch_baseline

__all__ = ["UnknownLayerError", "capture", "eval_mode", "layer_names", "resolve_layer"]
# issue 5 (occlusion, invariance, correspondence, transfer, retrieval)
__all__ += ["AnnotationError", "Annotations", "BinaryAutoencoder", "Correspondence", "InvarianceCurves", "Neighbours",
            "OcclusionMap", "ProbeTable", "binary_codes", "correspondence", "extract_features", "hamming_neighbours",
            "invariance_curves", "linear_probes", "nearest_neighbours", "occlusion_map", "precision_at_k",
            "read_annotations", "scratch_baseline", "sign_consistency", "stage_layer", "train_binary_autoencoder"]
# issue 4 (receptive fields, deconvnet, top-9 atlas, filters, feature evolution)
from .deconv import conv_stack, deconv_project, deconv_signal, feature_map_layer
from .evolution import FeatureEvolution, feature_evolution
from .filters import DEAD_CRITERION, FilterComparison, FilterStats, compare_filters, conv_filters, filter_stats
from .receptive_field import ReceptiveField, receptive_field
from .top_activations import (TopActivations, TopProjections, all_gather_topk, batch_topk, empty_topk, image_maxima, merge_topk,
                              project_top, rf_patches, top_activations)

__all__ += ["DEAD_CRITERION", "FeatureEvolution", "FilterComparison", "FilterStats", "ReceptiveField",
            "TopActivations", "TopProjections", "all_gather_topk", "batch_topk", "compare_filters", "conv_filters",
            "conv_stack", "deconv_project", "deconv_signal", "empty_topk", "feature_evolution", "feature_map_layer",
            "filter_stats", "image_maxima", "merge_topk", "project_top", "receptive_field", "rf_patches", "top_activations"]
