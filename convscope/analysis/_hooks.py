"""Scoped activation capture and layer lookup by paper alias or dotted name."""
from __future__ import annotations

import contextlib
import difflib
from typing import Iterator, Sequence

import torch
from torch import nn

from ..util.errors import UserError


class UnknownLayerError(UserError, KeyError):
    """A layer name the model does not have; the message lists the available ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def layer_names(model: nn.Module) -> list[str]:
    """Paper aliases (``conv1``, ``relu1``, ``fc7``...) of a model's leaf layers, in definition order; the dotted
    name where an alias is not unique (torchvision's ``features.0``, ResNet's ``layer1.0.conv1``)."""
    return short_names(model, [name for name, mod in model.named_modules() if name and not list(mod.children())])


def short_names(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Each dotted module name as its alias (the last part) where that alias names no other module of the model
    (so :func:`resolve_layer` finds it) and is not a bare index (Sequential's ``8``), else in full."""
    every = [n.rsplit(".", 1)[-1] for n, _ in model.named_modules()]
    alias = (lambda n: n.rsplit(".", 1)[-1])
    return [alias(n) if every.count(alias(n)) == 1 and not alias(n).isdigit() else n for n in names]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Find a layer by paper alias (``"conv5"``), dotted name (``"features.conv5"``) or the module itself.

    Returns ``(dotted_name, module)``. Raises :class:`UnknownLayerError` listing the available aliases.
    """
    if _is_layer(layer):  # a Layer (analysis._layers.resolve_layers) found before: its module as found then
        return layer.path, layer.module
    named = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, mod in named.items():
            if mod is layer:
                return name, mod
        raise UnknownLayerError("the given module is not part of this model")
    if layer in named and layer:
        return layer, named[layer]
    hits = [name for name in named if name.rsplit(".", 1)[-1] == layer]
    if len(hits) == 1:
        return hits[0], named[hits[0]]
    if len(hits) > 1:
        raise UnknownLayerError(f"layer '{layer}' is ambiguous: {', '.join(hits)}")
    choices = layer_names(model)
    near = difflib.get_close_matches(str(layer), choices, n=3)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise UnknownLayerError(f"unknown layer '{layer}'; {hint}available: {', '.join(choices)}")


def _is_layer(layer) -> bool:
    """Whether ``layer`` is a :class:`~convscope.analysis._layers.Layer` (told by its fields: that module imports
    this one)."""
    return isinstance(getattr(layer, "module", None), nn.Module) and isinstance(getattr(layer, "path", None), str)


def layer_key(model: nn.Module, layer) -> str:
    """The name :func:`capture` keys a layer's output by: a name as given, a Layer's name, a module's dotted name."""
    if isinstance(layer, str):
        return layer
    return layer.name if _is_layer(layer) else resolve_layer(model, layer)[0]


@contextlib.contextmanager
def capture(model: nn.Module, layers: Sequence[str | nn.Module], *, detach: bool = True) -> Iterator[dict]:
    """Record the outputs of named layers during forward passes inside the ``with`` block.

    ``acts[name]`` holds the latest output of each layer, keyed by the name given. Hooks are removed on exit, also
    when the block raises.

    Example:
        >>> with capture(model, ["conv5", "fc7"]) as acts:
        ...     model(images)
        >>> acts["conv5"].shape   # (B, 256, 13, 13)
    """
    acts: dict = {}
    handles = []
    try:
        for layer in layers:
            key = layer_key(model, layer)
            _, mod = resolve_layer(model, layer)

            def hook(_mod, _inp, out, key=key):
                acts[key] = out.detach() if detach else out

            handles.append(mod.register_forward_hook(hook))
        yield acts
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a parameterless model)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))
