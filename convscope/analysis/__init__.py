"""Looking inside convnets (Zeiler & Fergus 2014): pure functions of (model, tensors) returning tensors or small
frozen dataclasses. Rendering lives in :mod:`convscope.report`.

The names below are the public API: the layer resolver (what a user typed -> :class:`Layer` values), about one
entry point per figure, table or check of the papers, and the results they return. Everything else (per-batch
top-k pieces, the resumable pass's state, the deconvnet's stack walking, ZF's layer numbering and each figure's
default layers, graph tracing, the retrieval's auto-encoder, WordNet naming) is private to its module; the
package's own commands import only these names (``tests/test_layering.py``).
"""
from ._hooks import UnknownLayerError, capture
from ._layers import Layer, resolve_layers, unprojectable
from .atlas_state import StateMismatch
from .correspondence import AnnotationError, Annotations, Correspondence, correspondence, read_annotations
from .deconv import METHODS as PROJECTION_METHODS, deconv_project
from .evolution import FeatureEvolution, feature_evolution
from .filters import FilterComparison, FilterStats, compare_filters, filter_stats
from .inspection import Atlas, AtlasLayer, InspectFilters, atlas, atlas_tops, inspect_filters
from .invariance import InvarianceCurves, invariance_curves
from .occlusion import OcclusionMap, occlusion_is_incremental, occlusion_map
from .receptive_field import ReceptiveField, receptive_field
from .retrieval import Retrieval, image_retrieval
from .sanity import SanityResult, randomization_checks
from .top_activations import TopActivations, TopProjections, project_top, top_activations, top_images
from .transfer import ProbeTable, extract_features, linear_probes, scratch_baseline
from .visualize import (FeatureVisualization, VisualizationSanity, color_basis, deep_dream, map_count,
                        visualization_sanity, visualize_maps)

__all__ = [
    # layers: the one resolver, their outputs, their receptive fields
    "Layer", "resolve_layers", "UnknownLayerError", "unprojectable", "capture", "ReceptiveField", "receptive_field",
    # ZF §2-4: deconvnet, top-9 atlas (resumable, shardable pass), filters (AlexNet Fig. 3, ZF Fig. 6), evolution
    "deconv_project", "PROJECTION_METHODS", "TopActivations", "TopProjections", "top_activations", "project_top",
    "top_images", "Atlas", "AtlasLayer", "atlas_tops", "atlas", "StateMismatch", "InspectFilters", "inspect_filters",
    "FilterStats", "filter_stats", "FilterComparison", "compare_filters", "FeatureEvolution", "feature_evolution",
    # ZF §4-5, AlexNet §6.1: occlusion, invariance, correspondence, transfer, retrieval
    "OcclusionMap", "occlusion_map", "occlusion_is_incremental", "InvarianceCurves", "invariance_curves",
    "Annotations", "AnnotationError", "read_annotations", "Correspondence", "correspondence",
    "ProbeTable", "extract_features", "linear_probes", "scratch_baseline", "Retrieval", "image_retrieval",
    # can the pictures be trusted? (Adebayo et al. 2018)
    "SanityResult", "randomization_checks",
    # feature visualisation by optimisation (Olah et al. 2017), DeepDream, and its randomisation check
    "FeatureVisualization", "VisualizationSanity", "visualize_maps", "deep_dream", "color_basis", "map_count",
    "visualization_sanity",
]
