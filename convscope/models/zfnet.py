"""ZFNet (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, Fig. 3).

conv1 96x7x7 stride 2 (pad 1) -> ReLU -> max-pool 3/2 -> contrast norm: 224 -> 110 -> 55;
conv2 256x5x5 stride 2 -> ReLU -> max-pool 3/2 -> contrast norm: 26 -> 13; conv3 384, conv4 384, conv5 256 (3x3,
dense) -> max-pool 3/2: 6x6x256; fc6, fc7 4096 with dropout 0.5. The paper's "contrast normalisation across
feature maps" is implemented with AlexNet's LRN (k=2, n=5, alpha=1e-4, beta=0.75); pooling rounds up (Caffe/
cuda-convnet style) to reproduce the figure's 55 and 13. Weights start at N(0, 0.01^2), biases at 0.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ._registry import register_model
from .alexnet import _load, build_convnet
from .convnet import ConvNet, ConvSpec

ZFNET_CONVS = (
    ConvSpec("1", 96, 7, 2, 1, norm=True, pool=True),
    ConvSpec("2", 256, 5, 2, 0, norm=True, pool=True),
    ConvSpec("3", 384, 3, 1, 1),
    ConvSpec("4", 384, 3, 1, 1),
    ConvSpec("5", 256, 3, 1, 1, pool=True),
)


@register_model
def zfnet(
    *,
    num_classes: int = 1000,
    width: float = 1.0,
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
    """Zeiler & Fergus's Figure 3 network; maps 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6 at 224 input.

    Same ablation options as :func:`~convscope.models.alexnet.alexnet` (ZF Table 3: ``remove=("conv3",
    "conv4")``, ``remove=("fc6", "fc7")``, ``conv_channels={"conv3": 512, "conv4": 1024, "conv5": 512}``,
    ``fc_width=8192``). Train it with :func:`renorm_filters_` after every step.
    """
    model = build_convnet(ZFNET_CONVS, num_classes=num_classes, width=width, remove=remove,
                          conv_channels=conv_channels, extra_conv=extra_conv, fc_width=fc_width, activation=activation,
                          lrn=lrn, pool=pool, norm_after_pool=True, ceil_mode=True, dropout=dropout,
                          input_size=input_size, init=init, conv1_std=conv1_std)
    return _load(model, weights)


# cuda-convnet's CIFAR-10 "layers-18pct" net, the AlexNet authors' own small model (SPEC §4): conv 32-32-64 5x5,
# pool 3/2, response normalisation, one FC layer. Max-pooling everywhere (the original averages in pool2/3) so
# that the deconvnet can invert it.
CIFAR_CONVS = (
    ConvSpec("1", 32, 5, 1, 2, norm=True, pool=True),
    ConvSpec("2", 32, 5, 1, 2, norm=True, pool=True),
    ConvSpec("3", 64, 5, 1, 2, pool=True),
)


@register_model
def cifar_convnet(
    *,
    num_classes: int = 10,
    width: float = 1.0,
    activation: str = "relu",
    lrn: bool = True,
    lrn_alpha: float = 1e-4,
    pool: str = "overlap",
    fc_width: int = 0,
    dropout: float = 0.0,
    input_size: int = 32,
    init: str = "kaiming",
    init_scale: float = 1.0,
    weights: str | None = None,
) -> ConvNet:
    """A 4-layer CIFAR-10 convnet in cuda-convnet's ``layers-18pct`` shape (3 conv + fc), for the papers'
    small-scale ablations (ReLU vs tanh, LRN). ``fc_width>0`` adds hidden fc6/fc7 layers."""
    model = build_convnet(CIFAR_CONVS, num_classes=num_classes, width=width, fc_width=fc_width,
                          remove=() if fc_width else ("fc6", "fc7"), activation=activation, lrn=lrn, pool=pool,
                          norm_after_pool=True, ceil_mode=True, dropout=dropout, input_size=input_size, init=init,
                          init_scale=init_scale, lrn_alpha=lrn_alpha)
    return _load(model, weights)


@torch.no_grad()
def renorm_filters_(model: nn.Module, radius: float = 0.1) -> int:
    """ZF §3: rescale every conv filter whose RMS exceeds ``radius`` to RMS ``radius``, in place.

    The RMS is taken over one output filter's weights (in_channels x kh x kw). Returns how many filters changed.
    """
    changed = 0
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            w = mod.weight
            rms = w.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
            scale = torch.where(rms > radius, radius / rms, torch.ones_like(rms))
            changed += int((rms > radius).sum())
            w.mul_(scale)
    return changed
