"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) and torchvision's single-column layout.

Departures from the paper, stated: the two GPU "columns" are emulated on one device with ``groups=2`` convs
(conv2, conv4, conv5 see only their own column; conv3 and the FC layers connect across), and conv1 has padding 2
so that a 224x224 input gives the paper's 55x55 map (the paper's arithmetic needs 227 without padding).
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ._registry import ModelOptionError, register_model
from .convnet import ConvNet, ConvSpec, fc_spec, scale_specs

# AlexNet §3.5 / Fig. 2: 96-256-384-384-256 kernels; conv2/4/5 within a GPU; LRN after relu1/relu2 (§3.3);
# overlapping max-pool after norm1, norm2, relu5 (§3.4); biases 1 in conv2, conv4, conv5 (§5).
ALEXNET_CONVS = (
    ConvSpec("1", 96, 11, 4, 2, norm=True, pool=True),
    ConvSpec("2", 256, 5, 1, 2, groups=2, norm=True, pool=True, bias_init=1.0),
    ConvSpec("3", 384, 3, 1, 1),
    ConvSpec("4", 384, 3, 1, 1, groups=2, bias_init=1.0),
    ConvSpec("5", 256, 3, 1, 1, groups=2, pool=True, bias_init=1.0),
)

# torchvision.models.alexnet ("one weird trick", Krizhevsky 2014): 64-192-384-256-256, no LRN, no groups.
TORCHVISION_CONVS = (
    ConvSpec("1", 64, 11, 4, 2, pool=True),
    ConvSpec("2", 192, 5, 1, 2, pool=True),
    ConvSpec("3", 384, 3, 1, 1),
    ConvSpec("4", 256, 3, 1, 1),
    ConvSpec("5", 256, 3, 1, 1, pool=True),
)
# torchvision's Sequential indices -> our paper names, so its state_dict (and its weights) load as they are
_TV_KEYS = {"features.0": "features.conv1", "features.3": "features.conv2", "features.6": "features.conv3",
            "features.8": "features.conv4", "features.10": "features.conv5", "classifier.1": "classifier.fc6",
            "classifier.4": "classifier.fc7", "classifier.6": "classifier.fc8"}


def build_convnet(
    convs: Sequence[ConvSpec],
    *,
    num_classes: int,
    width: float = 1.0,
    groups: int | None = None,
    remove: Sequence[str] = (),
    conv_channels: dict[str, int] | None = None,
    extra_conv: bool = False,
    fc_width: int = 4096,
    fc_bias_init: float = 0.0,
    **options,
) -> ConvNet:
    """Apply the ablation knobs of :func:`scale_specs`/:func:`fc_spec` and build the :class:`ConvNet`."""
    if isinstance(remove, str):
        remove = tuple(r for r in remove.split(",") if r)
    specs = scale_specs(convs, width=width, groups=groups, remove=remove, conv_channels=conv_channels,
                        extra_conv=extra_conv)
    return ConvNet(specs, num_classes=num_classes, fc_widths=fc_spec(width, fc_width, remove),
                   fc_bias_init=fc_bias_init, **options)


@register_model
def alexnet(
    *,
    num_classes: int = 1000,
    width: float = 1.0,
    groups: int = 2,
    activation: str = "relu",
    lrn: bool = True,
    pool: str = "overlap",
    remove: Sequence[str] = (),
    conv_channels: dict[str, int] | None = None,
    extra_conv: bool = False,
    fc_width: int = 4096,
    dropout: float = 0.5,
    input_size: int = 224,
    init: str = "paper",
    conv1_std: float = 0.0,
    weights: str | None = None,
) -> ConvNet:
    """AlexNet as in the 2012 paper: 60,965,224 parameters for 1000 classes (62,378,344 with ``groups=1``).

    Maps at 224 input: conv1 55 -> pool1 27 -> conv2 27 -> pool2 13 -> conv3-5 13 -> pool5 6.
    Options are the paper's ablations: ``activation="tanh"``, ``lrn=False``, ``pool="nonoverlap"``,
    ``groups=1`` (one column), ``remove=("conv3",)``, ``conv_channels={"conv3": 512}``, ``fc_width=2048``,
    ``extra_conv=True``; ``width=0.25`` scales every layer for small-compute runs. ``weights`` is a checkpoint
    or state_dict file to load.
    """
    model = build_convnet(ALEXNET_CONVS, num_classes=num_classes, width=width, groups=groups, remove=remove,
                          conv_channels=conv_channels, extra_conv=extra_conv, fc_width=fc_width,
                          fc_bias_init=1.0, activation=activation, lrn=lrn, pool=pool, dropout=dropout,
                          input_size=input_size, init=init, conv1_std=conv1_std)
    return _load(model, weights)


def _rename_torchvision_keys(state_dict, prefix, *args):
    """load_state_dict pre-hook: accept torchvision's ``features.0.weight``-style keys."""
    for key in list(state_dict):
        head, _, leaf = key[len(prefix):].rpartition(".")
        if head in _TV_KEYS:
            state_dict[prefix + _TV_KEYS[head] + "." + leaf] = state_dict.pop(key)


@register_model
def alexnet_tv(
    *,
    num_classes: int = 1000,
    dropout: float = 0.5,
    input_size: int = 224,
    weights: str | None = None,
) -> ConvNet:
    """torchvision's AlexNet layout (64-192-384-256-256, no LRN, adaptive 6x6 average pool).

    Its ``load_state_dict`` accepts torchvision's own keys, so ``torchvision.models.alexnet`` weights load and
    give identical outputs. ``weights="IMAGENET1K_V1"`` asks torchvision's weights API for them (downloads when
    online); any other string is a local file.
    """
    model = ConvNet(TORCHVISION_CONVS, num_classes=num_classes, dropout=dropout, dropout_before_fc=True,
                    adaptive_pool=(6, 6), input_size=input_size, init="none")
    model._register_load_state_dict_pre_hook(_rename_torchvision_keys)
    if weights is not None and not _is_file(weights):
        from torchvision.models import AlexNet_Weights

        try:
            tv_weights = AlexNet_Weights[weights]
        except KeyError:
            raise ModelOptionError(f"weights must be a file or one of {[w.name for w in AlexNet_Weights]}") from None
        model.load_state_dict(tv_weights.get_state_dict(progress=True))
        return model
    if weights is None:  # torchvision's default init, so an untrained alexnet_tv behaves like theirs
        from torchvision.models import alexnet as tv_alexnet

        model.load_state_dict(tv_alexnet(num_classes=num_classes).state_dict())
    return _load(model, weights)


def _is_file(path: str) -> bool:
    import os

    return os.path.isfile(path)


def _load(model: nn.Module, weights: str | None) -> nn.Module:
    """Load a local state_dict or convscope checkpoint into ``model``."""
    if weights is None:
        return model
    from ..runfolder.checkpoint import load_weights

    load_weights(model, weights)
    return model
