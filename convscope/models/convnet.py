"""The one convnet class behind every registered model, built from a layer description.

AlexNet, ZFNet and their ablation variants differ only in numbers (channels, kernels, strides, groups) and in a
few switches (LRN or not, pooling size, activation), so they are *configuration* of :class:`ConvNet`, not copies.
Every submodule carries the papers' name (``features.conv1``, ``features.relu1``, ``features.norm1``,
``features.pool1`` ... ``classifier.fc6`` ... ``classifier.fc8``) and every ReLU is a non-inplace ``nn.ReLU``
module, so hooks and the deconvnet see it.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import ModelOptionError


class LRN(nn.LocalResponseNorm):
    """Local response normalisation exactly as AlexNet §3.3 writes it.

    ``b_i = a_i / (k + alpha * sum_{j in window(i, n)} a_j^2) ** beta`` with the *plain* sum over ``n`` adjacent
    channels (zero beyond the edges). ``torch.nn.LocalResponseNorm`` (like Caffe) multiplies alpha by 1/n, so we
    hand it ``alpha * n``. Defaults are the paper's: k=2, n=5, alpha=1e-4, beta=0.75.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__(size=size, alpha=alpha * size, beta=beta, k=k)
        self.paper_alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():  # one ONNX LRN op (alpha there is divided by n), not its arithmetic
            return _OnnxLRN.apply(x, self.size, self.alpha, self.beta, self.k)
        # the window sum as n shifted adds over zero-padded channels: ~1.7x faster on CPU than torch's avg_pool3d
        n, c = self.size, x.shape[1]
        sq = F.pad(x.pow(2), (0, 0, 0, 0, n // 2, (n - 1) // 2))
        window = sq[:, :c]
        for i in range(1, n):
            window = window + sq[:, i:i + c]
        return x * (self.k + self.paper_alpha * window).pow(-self.beta)

    def extra_repr(self) -> str:
        return f"n={self.size}, alpha={self.paper_alpha} (plain sum), beta={self.beta}, k={self.k}"


class _OnnxLRN(torch.autograd.Function):
    """What the TorchScript ONNX exporter (``torch.onnx.export(..., dynamo=False)``) writes for :class:`LRN`: the
    ONNX ``LRN`` operator, whose alpha is divided by n as torch's is (so converters and the deconvnet see a
    normalisation layer instead of its pad/slice/pow arithmetic)."""

    @staticmethod
    def forward(ctx, x, size: int, alpha: float, beta: float, k: float):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size: int, alpha: float, beta: float, k: float):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


@dataclass(frozen=True)
class ConvSpec:
    """One convolutional stage: conv -> activation [-> norm] [-> pool] (order set by the network)."""

    name: str  # paper index, e.g. "1" -> conv1/relu1/norm1/pool1
    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    norm: bool = False
    pool: bool = False
    bias_init: float = 0.0  # the paper's initial bias for this conv


Activation = Literal["relu", "tanh"]
PoolKind = Literal["overlap", "nonoverlap"]


class ConvNet(nn.Module):
    """A conv stack (``features``) and a fully connected head (``classifier``) with paper layer names.

    Args:
        convs: the convolutional stages, input to output.
        num_classes: width of the last layer (``fc8``).
        fc_widths: hidden fully connected widths (``fc6``, ``fc7``); empty removes them.
        in_channels: image channels.
        input_size: the square input the head is sized for (224 for the papers; 32 for CIFAR).
        activation: "relu" (the papers) or "tanh" (AlexNet §3.1 ablation).
        lrn: keep the normalisation layers; ``False`` drops them (ablation).
        lrn_alpha: the LRN's alpha (paper 1e-4); 0 leaves only its constant division by k^beta, the control that
            separates normalisation from rescaling in the LRN ablation.
        pool: "overlap" (z=3, s=2, AlexNet §3.4) or "nonoverlap" (z=2, s=2, same output size).
        norm_after_pool: ZFNet normalises after pooling; AlexNet before.
        ceil_mode: round pooled sizes up (ZFNet's 110 -> 55 -> 26 -> 13 arithmetic); the last pool always floors.
        dropout: probability in the hidden FC layers (0.5 in both papers).
        dropout_before_fc: torchvision's layout puts dropout before fc6/fc7 instead of after relu6/relu7.
        adaptive_pool: torchvision's ``AdaptiveAvgPool2d`` output size, or None (the papers have none).
        fc_bias_init: initial bias of the hidden FC layers (AlexNet: 1).
        init: "paper" = N(0, 0.01^2) weights and the per-layer biases; "kaiming" = He-normal weights, zero
            biases (for small from-scratch runs, where 0.01 std stalls deep stacks).
        conv1_std: if > 0, the first conv's weights start at N(0, conv1_std^2) whatever ``init`` says (the
            papers' 0.01 for conv1 only: what conv1 learns is then not buried under He-sized initial noise).
        init_scale: multiplies the initial weights' standard deviation: "paper" N(0, (0.01 s)^2), "kaiming" He x s
            (the init-scale axis of the ReLU-vs-tanh sweep; AlexNet states 0.01 and no other).
    """

    def __init__(
        self,
        convs: Sequence[ConvSpec],
        *,
        num_classes: int = 1000,
        fc_widths: Sequence[int] = (4096, 4096),
        in_channels: int = 3,
        input_size: int = 224,
        activation: Activation = "relu",
        lrn: bool = True,
        lrn_alpha: float = 1e-4,
        pool: PoolKind = "overlap",
        norm_after_pool: bool = False,
        ceil_mode: bool = False,
        dropout: float = 0.5,
        dropout_before_fc: bool = False,
        adaptive_pool: tuple[int, int] | None = None,
        fc_bias_init: float = 0.0,
        init: Literal["paper", "kaiming", "none"] = "paper",
        conv1_std: float = 0.0,
        init_scale: float = 1.0,
    ):
        super().__init__()
        if activation not in ("relu", "tanh"):
            raise ModelOptionError(f"activation must be 'relu' or 'tanh', not {activation!r}")
        if pool not in ("overlap", "nonoverlap"):
            raise ModelOptionError(f"pool must be 'overlap' or 'nonoverlap', not {pool!r}")
        if init not in ("paper", "kaiming", "none"):
            raise ModelOptionError(f"init must be 'paper', 'kaiming' or 'none', not {init!r}")
        if not init_scale > 0:
            raise ModelOptionError(f"init_scale must be positive, not {init_scale!r}")
        self.input_size = input_size
        self.activation = activation
        act = nn.ReLU if activation == "relu" else nn.Tanh
        pool_k = 3 if pool == "overlap" else 2
        last_pool = max((i for i, c in enumerate(convs) if c.pool), default=-1)

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        self._bias_init: dict[str, float] = {}
        ch = in_channels
        for i, c in enumerate(convs):
            if ch % c.groups or c.channels % c.groups:
                raise ModelOptionError(f"conv{c.name}: {ch}->{c.channels} channels do not split into {c.groups} "
                                       "groups")
            layers[f"conv{c.name}"] = nn.Conv2d(ch, c.channels, c.kernel, c.stride, c.padding, groups=c.groups)
            self._bias_init[f"features.conv{c.name}"] = c.bias_init
            layers[f"{activation}{c.name}"] = act()
            norm = [(f"norm{c.name}", LRN(alpha=lrn_alpha))] if (c.norm and lrn) else []
            pooling = (
                [(f"pool{c.name}", nn.MaxPool2d(pool_k, 2, ceil_mode=ceil_mode and i != last_pool))] if c.pool else []
            )
            for key, mod in (pooling + norm) if norm_after_pool else (norm + pooling):
                layers[key] = mod
            ch = c.channels
        self.features = nn.Sequential(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(adaptive_pool) if adaptive_pool else nn.Identity()
        with torch.no_grad():
            try:
                flat = self.avgpool(self.features(torch.zeros(1, in_channels, input_size, input_size))).numel()
            except RuntimeError as err:  # torch: "Output size is too small" and the like
                raise ModelOptionError(f"input_size {input_size} is too small for these layers "
                                       f"({str(err).splitlines()[0]})") from None

        head: OrderedDict[str, nn.Module] = OrderedDict()
        width = flat
        for j, w in enumerate(fc_widths):
            idx = 6 + j
            if dropout_before_fc:
                head[f"drop{idx}"] = nn.Dropout(dropout)
            head[f"fc{idx}"] = nn.Linear(width, w)
            self._bias_init[f"classifier.fc{idx}"] = fc_bias_init
            head[f"{activation}{idx}"] = act()
            if not dropout_before_fc:
                head[f"drop{idx}"] = nn.Dropout(dropout)
            width = w
        head["fc8"] = nn.Linear(width, num_classes)
        self._bias_init["classifier.fc8"] = 0.0
        self.classifier = nn.Sequential(head)
        self.feature_info = layer_info(self)
        self.conv1_std, self.init_scale = conv1_std, init_scale
        if init != "none":
            self.reset_parameters(init)

    def reset_parameters(self, init: str = "paper") -> None:
        """AlexNet §5: weights N(0, 0.01^2); biases as given per layer (1 in conv2/4/5, fc6/7; 0 elsewhere).
        ``init="kaiming"``: He-normal weights, zero biases. Weight stds times ``init_scale``; ``conv1_std``
        overrides the first conv's weights."""
        first = next(m for m in self.features if isinstance(m, nn.Conv2d))
        for name, mod in self.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                if mod is first and self.conv1_std > 0:
                    nn.init.normal_(mod.weight, 0.0, self.conv1_std)
                    nn.init.constant_(mod.bias, self._bias_init.get(name, 0.0))
                elif init == "paper":
                    nn.init.normal_(mod.weight, 0.0, 0.01 * self.init_scale)
                    nn.init.constant_(mod.bias, self._bias_init.get(name, 0.0))
                else:
                    nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                    mod.weight.data.mul_(self.init_scale)
                    nn.init.zeros_(mod.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _square(v) -> int:
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise NotImplementedError(f"receptive fields need square kernels/strides/padding, got {v}")
        return int(v[0])
    return int(v)


def rf_step(mod: nn.Module, rf: int, jump: int, start: float) -> tuple[int, int, float]:
    """Receptive-field arithmetic through one conv or pooling layer: (size, stride, offset of unit 0's centre) of
    its input units -> of its output units, in input pixels (the one implementation; dilation included)."""
    k, s, p = _square(mod.kernel_size), _square(mod.stride), _square(mod.padding)
    k_eff = _square(getattr(mod, "dilation", 1)) * (k - 1) + 1
    return rf + (k_eff - 1) * jump, jump * s, start + ((k_eff - 1) / 2 - p) * jump


def layer_info(model: ConvNet) -> list[dict]:
    """Describe every named layer: name, module path, kind, channels, output size, stride and receptive field.

    Geometry is in input pixels at ``model.input_size``: ``stride`` is the step between adjacent units,
    ``rf`` the side of the input box one unit sees, ``offset`` the input coordinate of the centre of unit (0, 0)
    (negative when padding reaches outside the image).
    """
    info = []
    rf, jump, start = 1, 1, 0.0
    ch = size = None
    x = torch.zeros(1, model.features[0].in_channels, model.input_size, model.input_size)
    with torch.no_grad():
        for name, mod in model.features.named_children():
            x = mod(x)
            if isinstance(mod, (nn.Conv2d, nn.MaxPool2d)):
                rf, jump, start = rf_step(mod, rf, jump, start)
            ch, size = x.shape[1], x.shape[-1]
            kind = "conv" if isinstance(mod, nn.Conv2d) else type(mod).__name__.lower()
            info.append(dict(name=name, module=f"features.{name}", kind=kind, channels=ch, size=size,
                             stride=jump, rf=rf, offset=start))
    for name, mod in model.classifier.named_children():
        if isinstance(mod, nn.Linear):
            ch = mod.out_features
        info.append(dict(name=name, module=f"classifier.{name}", kind="fc" if isinstance(mod, nn.Linear)
                         else type(mod).__name__.lower(), channels=ch, size=1, stride=None, rf=None, offset=None))
    return info


def scale_specs(
    convs: Sequence[ConvSpec],
    *,
    width: float = 1.0,
    groups: int | None = None,
    remove: Sequence[str] = (),
    conv_channels: dict[str, int] | None = None,
    extra_conv: bool = False,
) -> list[ConvSpec]:
    """Apply the ablation knobs (AlexNet §4.1/§6, ZF Table 3) to a layer description.

    ``width`` multiplies every conv's channels (rounded to a multiple of its groups), ``groups`` overrides the
    grouped convs' group count (1 = one column), ``remove`` drops whole stages by name ("conv3"), and
    ``conv_channels`` sets named stages' widths ({"conv3": 512}), ``extra_conv`` appends a 3x3 ``conv5b``. A removed stage's pooling and normalisation
    move to the stage before it so that the map sizes downstream stay the same.
    """
    known = {f"conv{c.name}" for c in convs}
    bad = sorted((set(r for r in remove if not r.startswith("fc")) | set(conv_channels or {})) - known)
    if bad:
        raise ModelOptionError(f"unknown conv layer(s) {', '.join(bad)}; available: {', '.join(sorted(known))}")
    out: list[ConvSpec] = []
    for c in convs:
        g = c.groups if groups is None or c.groups == 1 else groups
        chans = (conv_channels or {}).get(f"conv{c.name}", c.channels)
        chans = max(g, int(round(chans * width / g)) * g)
        spec = replace(c, channels=chans, groups=g)
        if f"conv{c.name}" in remove:
            if out and (c.pool or c.norm):
                out[-1] = replace(out[-1], pool=out[-1].pool or c.pool, norm=out[-1].norm or c.norm)
            continue
        out.append(spec)
    if not out:
        raise ModelOptionError("every conv layer was removed")
    if extra_conv:  # ZF Table 3 "adding an extra 3x3 conv layer": conv5b after conv5, taking over its pooling
        last = out[-1]
        out[-1] = replace(last, pool=False)
        out.append(ConvSpec(f"{last.name}b", last.channels, 3, 1, 1, pool=last.pool, bias_init=last.bias_init))
    return out


def fc_spec(width: float, fc_width: int, remove: Sequence[str]) -> tuple[int, ...]:
    """Hidden FC widths after the ablation knobs (``fc_width`` resizes, ``remove`` drops fc6/fc7)."""
    bad = sorted(set(r for r in remove if r.startswith("fc")) - {"fc6", "fc7"})
    if bad:
        raise ModelOptionError(f"unknown fc layer(s) {', '.join(bad)}; removable: fc6, fc7")
    w = max(1, int(math.ceil(fc_width * width)))
    return tuple(w for name in ("fc6", "fc7") if name not in remove)
