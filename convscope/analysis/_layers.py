"""ZF's numbered layers ("layer 1" ... "layer 7") and chunked forward passes that collect their outputs."""
from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from ._hooks import UnknownLayerError, capture, eval_mode, model_device, resolve_layer


def stage_layer(model: nn.Module, layer: int | str) -> str:
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
    if index >= 6:
        alias = f"relu{index}" if any(n.endswith(f".relu{index}") for n, _ in model.named_modules()) else f"fc{index}"
        resolve_layer(model, alias)
        return alias
    features = getattr(model, "features", None)
    names = [n for n, _ in features.named_children()] if isinstance(features, nn.Sequential) else []
    stage = [n for n in names if re.fullmatch(rf"[a-z]+{index}", n)]
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
