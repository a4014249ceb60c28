"""ZF's numbered layers ("layer 1" ... "layer 7") and chunked forward passes that collect their outputs."""
from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from ..errors import UserError
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

    On a model without convscope's conv1-5 stages (torchvision, timm...) the numbers keep their meaning on the
    model's own layers (:func:`_by_meaning`: 5 = the last conv stage, 7 = the last feature layer).

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
    names = _stack_names(model)
    stage = [n for n in names if re.fullmatch(rf"[a-z]+{index}", n)]
    if not named_stages(model):  # not a convscope stack: ZF's numbers by meaning
        return _by_meaning(model, index, input_size)
    if not stage:
        raise UnknownLayerError(f"the model has no layer {index} (no conv{index} stage); "
                                f"stages: {', '.join(n for n in names if n.startswith('conv'))}")
    return stage[-1]


def _stack_names(model: nn.Module) -> list[str]:
    features = getattr(model, "features", None)
    return [n for n, _ in features.named_children()] if isinstance(features, nn.Sequential) else []


def named_stages(model: nn.Module) -> bool:
    """Whether the model is a convscope conv stack: a Sequential ``features`` with ZF's stage names (``conv1``,
    ``relu1``, ``pool1`` ...), however many stages it has (ZFNet and AlexNet five, ``cifar_convnet`` three)."""
    return any(re.fullmatch(r"conv\d+", n) for n in _stack_names(model))


PAPER_STAGES = tuple(f"conv{i}" for i in range(1, 6))


def has_paper_stages(model: nn.Module) -> bool:
    """Whether the model has ZF's named conv stages ``conv1`` ... ``conv5`` (a convscope model)."""
    try:
        for name in PAPER_STAGES:
            resolve_layer(model, name)
    except UnknownLayerError:
        return False
    return True


def unprojectable(model: nn.Module, layer: str) -> str | None:
    """Why an atlas cannot be drawn at ``layer`` (no receptive field, or an operation below it that the deconvnet
    cannot invert), or None when it can."""
    from .deconv import check_projectable
    from .receptive_field import receptive_field

    try:
        receptive_field(model, layer)
        check_projectable(model, layer)
    except (ValueError, NotImplementedError) as err:
        return str(err)
    return None


def atlas_layers(model: nn.Module, input_size: int = 224) -> tuple[list[str], list[tuple[str, str]]]:
    """The layers an atlas looks at when none are named, and those left out with why: ZF's ``conv1`` ... ``conv5``
    where the model has them (convscope's), else the graph's rectified conv maps
    (:func:`~convscope.analysis.graph.default_layers`) that the deconvnet can project from
    (:func:`unprojectable`). Raises :class:`~convscope.errors.UserError` when none is left."""
    from . import graph

    if has_paper_stages(model):
        return list(PAPER_STAGES), []
    keep, skipped = [], []
    for name in graph.default_layers(model, input_size):
        why = unprojectable(model, name)
        if why is None:
            keep.append(name)
        else:
            skipped.append((name, why))
    if not keep:
        raise UserError(f"none of this model's rectified conv maps can be projected ({skipped[0][0]}: {skipped[0][1]}); "
                        "name others with --layers, e.g. its first conv")
    return keep, skipped


def _by_meaning(model: nn.Module, index: int, input_size: int) -> str:
    """ZF's layer number on a model with other stages: 1-5 spread evenly over its conv stages (1 = the first,
    5 = the last), 6-7 its hidden fully connected layers (7 = the last feature layer before the classifier, 6 the
    one below it where there is one) or, without hidden fc layers, the classifier's input for both."""
    from . import graph

    own = numbered_layers(model, input_size)
    stages = len(graph.default_layers(model, input_size))
    top = own[stages:] or own[-1:]
    if 1 <= index <= 5:
        return own[round((index - 1) * (stages - 1) / 4)]
    if index in (6, 7):
        return top[-1] if index == 7 or len(top) == 1 else top[-2]
    raise UnknownLayerError(f"ZF's layers are 1-7, not {index}; or name one: "
                            + ", ".join(f"{n}" for n in own))


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
