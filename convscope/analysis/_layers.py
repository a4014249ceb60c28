"""The one layer resolver (what a user typed -> :class:`Layer` values), ZF's numbered layers ("layer 1" ...
"layer 7"), the layers each figure looks at by default, and chunked forward passes that collect layer outputs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import torch
from torch import nn

from ..util.errors import UserError
from ._hooks import UnknownLayerError, _is_layer, capture, eval_mode, model_device, resolve_layer, short_names


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of one model, resolved once from what the user typed (:func:`resolve_layers`).

    ``name`` is how the analyses and their records spell it (the alias or dotted name as typed; for a ZF number
    :func:`stage_layer`'s alias, e.g. ``pool5``, ``relu7``, SqueezeNet's ``features.12``), ``path`` its dotted
    module name, ``zf`` the ZF number it was chosen by (None for a name). Every analysis taking a layer takes a
    Layer too; :attr:`receptive_field` is computed on first use."""

    name: str
    path: str
    module: nn.Module = field(repr=False)
    model: nn.Module = field(repr=False)
    zf: int | None = None

    @property
    def given(self) -> int | str:
        """The ZF number it was chosen by, else its name: how the records of ZF-numbered commands spell it."""
        return self.zf if self.zf is not None else self.name

    @cached_property
    def receptive_field(self):
        """Its :class:`~convscope.analysis.receptive_field.ReceptiveField` (size, stride, offset) in input pixels."""
        from .receptive_field import receptive_field

        return receptive_field(self.model, self.path)

    def __str__(self) -> str:
        return self.name


class Layers(list):
    """:func:`resolve_layers`' answer: a list of :class:`Layer`; ``skipped`` the default layers left out, with why
    (the atlas's conv maps the deconvnet cannot project from)."""

    def __init__(self, layers=(), skipped: Sequence[tuple[str, str]] = ()):
        super().__init__(layers)
        self.skipped = list(skipped)


def resolve_layers(model: nn.Module, typed=None, *, default: str | Sequence[int] = (), input_size: int = 224) -> Layers:
    """What a user typed -> :class:`Layer` values: the one place a ``--layer``/``--layers`` value is resolved.

    ``typed``: a name or alias (``conv5``, ``features.conv5``, ``layer1.0.relu``), a ZF layer number 1-7 (an int
    or a bare digit string always means ZF's number: :func:`stage_layer`), a ``Layer``, a comma-separated string
    or a sequence of these; None (or nothing) takes the figure's ``default``: ZF numbers (each missing one
    replaced by the nearest lower one the model has), ``"atlas"`` (conv1-conv5, else the rectified conv maps the
    deconvnet can project from), ``"occlusion"`` (the last conv stage's rectified map), ``"sanity"`` (ZF's 2 and 5)
    or ``"sanity-occlusion"`` (the layer-5 map). An unknown name or a number the model lacks is a one-line
    :class:`UnknownLayerError` with the choices."""
    items = _typed_items(typed)
    if items is None:
        return _default_layers(model, default, input_size)
    if not items:
        raise UserError("no layer given (an empty --layers)")
    return Layers(_one_layer(model, x, input_size) for x in items)


def _typed_items(typed) -> list | None:
    if typed is None:
        return None
    if isinstance(typed, (str, int, Layer)):
        typed = [typed]
    items = []
    for x in typed:
        items += [p.strip() for p in x.split(",") if p.strip()] if isinstance(x, str) else [x]
    return items if items or typed else None


def _one_layer(model: nn.Module, x, input_size: int) -> Layer:
    if _is_layer(x):
        return x
    zf = int(x) if isinstance(x, int) or x.isdigit() else None
    name = stage_layer(model, zf if zf is not None else x, input_size)
    path, module = resolve_layer(model, name)
    return Layer(name=name, path=path, module=module, model=model, zf=zf)


def _default_layers(model: nn.Module, default, input_size: int) -> Layers:
    skipped = []
    if default == "atlas":
        names, skipped = atlas_layers(model, input_size)
    elif default == "occlusion":
        names = [occlusion_layer(model, input_size)]
    elif default in ("sanity", "sanity-occlusion"):
        projected, top = sanity_layers(model, input_size)
        names = projected if default == "sanity" else [top]
    elif isinstance(default, str):
        raise ValueError(f"unknown default {default!r}: ZF numbers, 'atlas', 'occlusion', 'sanity' or "
                         "'sanity-occlusion'")
    else:
        names = default_numbers(model, default, input_size)
    return Layers((_one_layer(model, n, input_size) for n in names), skipped)


def numbered_layers(model: nn.Module, input_size: int = 224) -> tuple[list[str], list[str]]:
    """A model's own "layer 1, 2, ..." when it does not have ZF's conv1-5/fc6-7 stages (torchvision, timm...):
    ``(stages, hidden)``. ``stages``: its conv stages below the classifier
    (:func:`~convscope.analysis.graph.feature_stages`: each conv's rectified map, or a block's output: a ResNet
    stage, a Fire's concatenation). ``hidden``: each hidden fully connected layer's rectified output (a ReLU
    module after a Linear), or, if there is none, the pooling module feeding the classifier where it is not
    already a stage (ResNet's ``avgpool``)."""
    from . import graph

    stages = [graph.feature_map_module(model, n) for n in graph.feature_stages(model, input_size)[0]]
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
    return stages, hidden


def zf_numbers(model: nn.Module, input_size: int = 224) -> list[int]:
    """The ZF layer numbers (1-7) that :func:`stage_layer` resolves on ``model``: a convscope stack's conv stages
    and its ``relu6``/``relu7``; elsewhere 1-5 (with at least one conv stage), 7 where a hidden fully connected
    layer or a pooled classifier input exists, 6 where there are two hidden fully connected layers."""
    if named_stages(model):
        names = set(_stack_names(model))
        modules = [n for n, _ in model.named_modules()]
        top = [i for i in (6, 7) if any(n.endswith((f".relu{i}", f".fc{i}")) for n in modules)]
        return [i for i in range(1, 6) if f"conv{i}" in names] + top
    stages, hidden = numbered_layers(model, input_size)
    return ([1, 2, 3, 4, 5] if stages else []) + ([6, 7] if len(hidden) >= 2 else [7] if hidden else [])


def default_numbers(model: nn.Module, wanted, input_size: int = 224) -> list[int]:
    """ZF layer numbers a command looks at when the user names none: ``wanted`` (e.g. ``(5, 7)``) where the model
    has them, each missing one replaced by the nearest lower number it has (a CIFAR net's 3 for 5, SqueezeNet's 5
    for 7), without repeats."""
    have = zf_numbers(model, input_size)
    if not have:
        raise UnknownLayerError(f"{type(model).__name__} has no ZF layers (no conv stage); name --layers")
    out = [max([h for h in have if h <= w] or have[:1]) for w in wanted]
    return list(dict.fromkeys(out))


def stage_layer(model: nn.Module, layer: int | str, input_size: int = 224) -> str:
    """Map ZF's "layer l" to the alias of the module whose output is that layer's feature vector.

    On a model without convscope's conv1-5 stages (torchvision, timm...) the numbers keep their meaning on the
    model's own layers (:func:`_by_meaning`: 5 = the last conv stage, 7 = the last feature layer).

    Layers 1-5 are the *last* module of conv stage l (after ReLU, pooling and normalisation, e.g. ``norm1`` in
    ZFNet, ``pool5``), layers 6-7 the rectified ``relu6``/``relu7`` (Caffe's in-place ReLU makes ZF's ``fc7`` blob the
    rectified one). Anything that is not an int or a digit string is returned as given (``"conv5"``,
    ``"classifier.fc7"``) after checking that the model has it.
    """
    if _is_layer(layer):
        return layer.name
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
    (:func:`unprojectable`). Raises :class:`~convscope.util.errors.UserError` when none is left."""
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


def occlusion_layer(model: nn.Module, input_size: int = 224) -> str:
    """The layer whose strongest map ZF Fig. 7 sums when none is named: the rectified map of the last conv stage,
    ``relu5`` on a model with ZF's named stages (``relu3`` on the three-stage CIFAR net), else the model's own
    layer 5 by meaning, its last feature layer below the classifier (:func:`stage_layer`)."""
    top = default_numbers(model, (5,), input_size)[0]
    return f"relu{top}" if named_stages(model) else stage_layer(model, top, input_size)


def parametrized_layers(model: nn.Module) -> list[str]:
    """Names of the conv and linear layers, input to output: the paper alias (``conv1``, ``fc8``) where it is
    unique in the model, else the dotted name (torchvision's ``features.0``, ResNet's ``layer1.0.conv1``)."""
    return short_names(model, [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))])


def sanity_layers(model: nn.Module, input_size: int = 224) -> tuple[list[str], str]:
    """The default layers of the checks: the projections' (ZF's layers 2 and 5: ``conv2``, ``conv5`` on a model with
    ZF's named stages, else an early and the last conv stage by meaning) and the occlusion's (the layer-5 feature
    map: the last conv's rectified output, else the last conv stage)."""
    from .deconv import feature_map_layer

    if named_stages(model):
        last_conv = [n for n in parametrized_layers(model) if n.startswith("conv")][-1]
        return ["conv2", "conv5"], feature_map_layer(model, last_conv)
    return [stage_layer(model, i, input_size) for i in (2, 5)], stage_layer(model, 5, input_size)


def _by_meaning(model: nn.Module, index: int, input_size: int) -> str:
    """ZF's layer number on a model with other stages: 1-5 spread evenly over its conv stages below the classifier
    (1 = the first, 5 = the last feature layer: SqueezeNet's fire9, not its class maps), 7 the last hidden fully
    connected layer (or the pooled classifier input, ResNet's ``avgpool``), 6 the one below it. A number the
    model does not have is a one-line error."""
    stages, hidden = numbered_layers(model, input_size)
    own = stages + hidden
    if 1 <= index <= 5 and stages:
        return stages[round((index - 1) * (len(stages) - 1) / 4)]
    if index == 7 and hidden:
        return hidden[-1]
    if index == 6 and len(hidden) >= 2:
        return hidden[-2]
    if index in (6, 7):
        top = f"; its last feature layer is 5 ({stages[-1]})" if stages else ""
        raise UnknownLayerError(f"{type(model).__name__} has no ZF layer {index}: "
                                f"{'one' if hidden else 'no'} fully connected layer between its last conv stage and "
                                f"its classifier{top}; name a layer instead, e.g. {', '.join(own[-3:])}")
    raise UnknownLayerError(f"ZF's layers are 1-7, not {index}; or name one: " + ", ".join(own))


@torch.no_grad()
def layer_outputs(model: nn.Module, inputs: torch.Tensor, layers: Sequence[str], *, batch_size: int = 64,
                  transform=None, reduce=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Run ``inputs`` (N, 3, H, W) through ``model`` in chunks; return ``({layer: (N, ...)}, logits (N, K))`` on CPU.
    ``transform`` (e.g. a run's ``Preprocess`` on uint8 images) is applied to each chunk on the model's device;
    ``reduce(activation)`` (e.g. pooling) to each chunk's activations before they are kept, so memory holds only
    what it returns for all N images."""
    device = model_device(model)
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    logits = []
    with eval_mode(model), capture(model, list(layers)) as acts:
        for start in range(0, inputs.shape[0], batch_size):
            chunk = inputs[start:start + batch_size].to(device)
            logits.append(model(transform(chunk) if transform is not None else chunk).float().cpu())
            for name in layers:
                a = acts[name].float()
                outs[name].append((reduce(a) if reduce is not None else a).cpu())
            acts.clear()
    return {name: torch.cat(v) for name, v in outs.items()}, torch.cat(logits)
