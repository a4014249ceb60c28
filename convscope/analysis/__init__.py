"""Looking inside convnets (Zeiler & Fergus 2014): pure functions of (model, tensors) returning tensors or small
frozen dataclasses. Rendering lives in :mod:`convscope.report`.

The names below are the public API: the entry points (one per figure, table or check of the papers, the layer
choices the commands default to) and the results they return. Helpers (per-batch top-k pieces, the deconvnet's
stack walking, layer-alias tables, graph tracing) stay in their modules; the package's own commands import only
these names (``tests/test_layering.py``).
"""
from ._hooks import UnknownLayerError, capture, layer_names, resolve_layer
from ._layers import atlas_layers, stage_layer, unprojectable, zf_layers
from .atlas_state import StateMismatch, atlas_pass, pass_identity, state_file
from .correspondence import (AnnotationError, Annotations, Correspondence, correspondence, read_annotations,
                             sign_consistency)
from .deconv import METHODS as PROJECTION_METHODS, deconv_project
from .evolution import FeatureEvolution, feature_evolution
from .filters import (FilterComparison, FilterStats, compare_filters, conv_filters, filter_diagnostics, filter_stats,
                      first_conv)
from .graph import first_convs
from .invariance import InvarianceCurves, invariance_curves
from .occlusion import OcclusionMap, occlusion_is_incremental, occlusion_layer, occlusion_map
from .receptive_field import ReceptiveField, receptive_field
from .retrieval import (BinaryAutoencoder, Neighbours, binary_codes, hamming_neighbours, nearest_neighbours,
                        precision_at_k, train_binary_autoencoder)
from .sanity import SanityResult, default_reinit, plain_words, randomization_checks, sanity_layers
from .unit_names import (HOW_TO_GET as WORDNET_HOW_TO_GET, ClassMeans, Hierarchy, UnitName, class_selectivity,
                         is_wordnet_id, load_hierarchy, map_names, name_unit)
from .top_activations import TopActivations, TopProjections, live_maps, project_top, top_activations, top_images
from .transfer import ProbeTable, extract_features, linear_probes, scratch_baseline
from .visualize import (FeatureVisualization, VisualizationSanity, color_basis, deep_dream, map_count,
                        visualization_sanity, visualize_maps)

__all__ = [
    # finding layers and their outputs; the layers looked at by default
    "UnknownLayerError", "capture", "layer_names", "resolve_layer", "stage_layer", "atlas_layers", "unprojectable", "zf_layers",
    "ReceptiveField", "receptive_field",
    # ZF §2-4: deconvnet, top-9 atlas (resumable, shardable pass), filters, feature evolution
    "deconv_project", "TopActivations", "TopProjections", "top_activations", "live_maps", "project_top", "top_images",
    "atlas_pass", "pass_identity", "state_file", "StateMismatch",
    "FilterStats", "FilterComparison", "filter_stats", "compare_filters", "conv_filters", "filter_diagnostics",
    "first_conv", "first_convs", "FeatureEvolution", "feature_evolution",
    # ZF §4-5, AlexNet §6.1: occlusion, invariance, correspondence, transfer, retrieval
    "OcclusionMap", "occlusion_map", "occlusion_layer", "occlusion_is_incremental", "InvarianceCurves",
    "invariance_curves", "AnnotationError", "Annotations", "Correspondence", "correspondence", "read_annotations",
    "sign_consistency", "ProbeTable", "extract_features", "linear_probes", "scratch_baseline", "BinaryAutoencoder",
    "Neighbours", "binary_codes", "hamming_neighbours", "nearest_neighbours", "precision_at_k",
    "train_binary_autoencoder",
    # can the pictures be trusted? (Adebayo et al. 2018)
    "SanityResult", "randomization_checks", "sanity_layers", "default_reinit", "plain_words", "PROJECTION_METHODS",
    # unit names: class selectivity (Morcos et al. 2018) and WordNet names of the top images' classes
    "ClassMeans", "class_selectivity", "Hierarchy", "UnitName", "load_hierarchy", "name_unit", "map_names",
    "is_wordnet_id", "WORDNET_HOW_TO_GET",
    # feature visualisation by optimisation (Olah et al. 2017), DeepDream, and its randomisation check
    "FeatureVisualization", "VisualizationSanity", "visualize_maps", "deep_dream", "color_basis", "map_count",
    "visualization_sanity",
]
