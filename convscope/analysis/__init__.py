"""Looking inside convnets (Zeiler & Fergus 2014): pure functions of (model, tensors) returning tensors or small
frozen dataclasses. Rendering lives in :mod:`convscope.report`."""
from ._hooks import UnknownLayerError, capture, eval_mode, layer_names, resolve_layer

__all__ = ["UnknownLayerError", "capture", "eval_mode", "layer_names", "resolve_layer"]
