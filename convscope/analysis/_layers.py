"""ZF's numbered layers ("layer 1" ... "layer 7") and chunked forward passes that collect their outputs."""
from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from ._hooks import UnknownLayerError, capture, eval_mode, model_device, resolve_layer


def numbered_layers(model: nn.Module, input_size: int = 224) -> list[str]:
    """A model's own "layer 1, 2, ..." when it does not have ZF's conv1-5/fc6-7 stages (torchvision, timm...):
    its conv stages (:func:`~convscope.analysis.graph.default_layers`, each conv's rectified map), then each hidden fully connected layer's
    rectified output (a ReLU module after a Linear), or, if there is none, the module feeding the classifier
    (ResNet's ``avgpool``)."""
    from . import graph

    stages = [graph.feature_map_module(model, n) for n in graph.default_layers(model, input_size)]
    mg = graph.model_graph(model)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and len(mg.calls.get(n, [])) == 1]
    hidden = []
    for name in linears[:-1]:
        relu = graph.rectified_output(model, mg.calls[name][0])
        hidden += [mg.name_of(relu)] if relu is not None and mg.name_of(relu) else []
    if not hidden and linears:
        feeds = [n for n in graph.tensor_inputs(mg.calls[linears[-1]][0])]
        while feeds and mg.name_of(feeds[0]) is None and graph.tensor_inputs(feeds[0]):  # through flatten/view
            feeds = graph.tensor_inputs(feeds[0])
        hidden = [mg.name_of(feeds[0])] if feeds and mg.name_of(feeds[0]) and mg.name_of(feeds[0]) not in stages \
            else []
    return stages + hidden


def stage_layer(model: nn.Module, layer: int | str, input_size: int = 224) -> str:
    """Map ZF's "layer l" to the alias of the module whose output is that layer's feature vector.

    Layers 1-5 are the *last* module of conv stage l (after ReLU, pooling and normalisation, e.g. ``norm1`` in
    ZFNet, ``pool5``), layers 6-7 the rectified ``relu6``/``relu7`` (Caffe's in-place ReLU makes ZF's ``fc7`` blob the
    rectified one). Anything that is not an int or a digit string is returned as given (``"conv5"``,
    ``"classifier.fc7"``) after checking that the model has it.
    """
    if isinstance(layer, str) and not layer.isdigit():
        resolve_layer(model, layer)
        return layer
    index = int(layer)
    if index >= 6 and any(n.endswith((f".relu{index}", f".fc{index}")) for n, _ in model.named_modules()):
        alias = f"relu{index}" if any(n.endswith(f".relu{index}") for n, _ in model.named_modules()) else f"fc{index}"
        resolve_layer(model, alias)
        return alias
    features = getattr(model, "features", None)
    names = [n for n, _ in features.named_children()] if isinstance(features, nn.Sequential) else []
    stage = [n for n in names if re.fullmatch(rf"[a-z]+{index}", n)]
    if not any(re.fullmatch(r"conv\d+", n) for n in names):  # not a convscope stack: the model's own numbering
        own = numbered_layers(model, input_size)
        if not 1 <= index <= len(own):
            raise UnknownLayerError(f"the model has no layer {index}; its layers: "
                                    + ", ".join(f"{i}={n}" for i, n in enumerate(own, 1)))
        return own[index - 1]
    if not stage:
        raise UnknownLayerError(f"the model has no layer {index} (no conv{index} stage); "
                                f"stages: {', '.join(n for n in names if n.startswith('conv'))}")
    return stage[-1]


@torch.no_grad()
def layer_outputs(model: nn.Module, inputs: torch.Tensor, layers: Sequence[str], *, batch_size: int = 64,
                  transform=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Run ``inputs`` (N, 3, H, W) through ``model`` in chunks; return ``({layer: (N, ...)}, logits (N, K))`` on CPU.
    ``transform`` (e.g. a run's ``Preprocess`` on uint8 images) is applied to each chunk on the model's device."""
    device = model_device(model)
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    logits = []
    with eval_mode(model), capture(model, list(layers)) as acts:
        for start in range(0, inputs.shape[0], batch_size):
            chunk = inputs[start:start + batch_size].to(device)
            logits.append(model(transform(chunk) if transform is not None else chunk).float().cpu())
            for name in layers:
                outs[name].append(acts[name].float().cpu())
    return {name: torch.cat(v) for name, v in outs.items()}, torch.cat(logits)
