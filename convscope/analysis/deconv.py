"""Zeiler & Fergus's deconvnet (ECCV 2014, §2.1 and Fig. 1): project a feature activation back to pixel space.

To see what excites one activation (or one whole feature map) of layer l, every other activation of that layer is
set to zero and the result is passed down a deconvnet attached to the convnet: at each stage, in reverse order,
**unpool** with the *switches* (argmax positions) recorded by the forward pass's max-pools, **rectify** (ReLU) and
**filter** with the transposed filters of the same conv (``conv_transpose2d`` with the forward weights, no bias,
groups, stride, padding and dilation as in the forward pass, and ``output_padding`` chosen so that each stage
recovers its exact input size). Normalisation layers are not inverted (ZF Fig. 1's reverse path is unpool ->
rectify -> filter); dropout and identity are skipped. No learning is involved.

With overlapping pooling (z=3, s=2) one input can be the switch of several windows; its reconstruction is the
*sum* of those windows' values (``scatter_add``), as the gradient of max-pooling is. ``F.max_unpool2d`` would
overwrite instead, and is not used. On stacks without normalisation layers the projection therefore equals the
input gradient of the kept activations under the "ReLU backward = ReLU of the gradient" rule (Captum's
``Deconvolution``), times the kept values.

The "feature map" of a conv that a ReLU follows (through a BatchNorm) is the rectified map, as ZF visualise.

**Any convnet graph.** The model is traced with ``torch.fx`` (:mod:`convscope.analysis.graph`) and the
reverse pass walks the graph from the chosen layer down to the input, summing the signals of a node's users.
Each operation on the way is treated as follows (ZF's three rules above, and for the rest what its place in a
linear reverse pass means):

- ``Conv2d``: transposed filters (above). ``Linear``: transposed weights, no bias.
- ``MaxPool2d``: unpool through the recorded switches, overlapping windows adding (above).
- ReLU — a module, a module reused several times (ResNet's in-place ``self.relu``: each call is its own node),
  ``F.relu``/``torch.relu``/``x.relu()``, ReLU6 and LeakyReLU: rectify the reconstruction.
- LRN, dropout, identity: skipped (normalisation is not inverted).
- ``BatchNorm`` in eval mode: a fixed per-channel affine map, ``gamma / sqrt(running_var + eps)`` times the
  input plus a shift; like a conv it is passed through its linear part (the transposed 1x1 per-channel filter)
  without the shift, so conv+BN is treated as the folded conv it is at test time.
- Residual addition: the signal goes down both branches unchanged (and the contributions that meet again below
  add up). Concatenation: each input gets its slice.
- Average and adaptive-average pooling, flatten, view/reshape, indexing, scaling by a constant: their exact
  transpose (each is linear; computed as the vector-Jacobian product, which for a linear map is its transpose).
- Anything else on the path (tanh, sigmoid, GELU/SiLU, attention, multiplication of two signals...) has no
  deconvnet rule: the projection refuses in one line naming the operation, instead of silently treating it.

On ``nn.Sequential`` stacks this is the same computation, op for op, as the explicit stack walk it replaced
(tested bit for bit).

**Other methods on the same walk** (``method=``). Only the ReLU rule (and LRN) differ; unpooling, transposed
filters and the linear rules are each operation's exact gradient in all three:

- ``"deconvnet"`` (default, ZF): rectify the signal coming down, ``relu(s)``; LRN skipped.
- ``"guided"`` (guided backpropagation, Springenberg et al. 2015 §3.4): the forward ReLU's mask *and* the
  rectification, ``relu(s * [x > 0])``; LRN by its gradient. Equal to Captum's ``GuidedBackprop`` on models whose
  ReLUs are modules (Captum hooks modules only; here functional ReLUs are rectified too).
- ``"gradient"``: the plain input gradient, ``s * [x > 0]`` (ReLU6 and LeakyReLU by their own slopes); LRN by its
  gradient. Equal to Captum's ``Saliency(abs=False)``.

Each projects the kept activation *times its value*, so the three are on the same scale.
"""
from __future__ import annotations

import operator
from typing import Literal, Sequence

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from . import graph as g
from ._hooks import eval_mode, resolve_layer

_SKIPPED = g.LRN_TYPES + (nn.Dropout, nn.Dropout2d, nn.Identity)
_SKIPPED_FUNCTIONS = {F.dropout, F.dropout2d}
# linear structural operations: passed down through their transpose (vector-Jacobian product)
_LINEAR_MODULES = (nn.Linear, nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.Flatten)
_LINEAR_FUNCTIONS = {torch.flatten, torch.reshape, operator.getitem, F.adaptive_avg_pool2d, F.avg_pool2d,
                     torch.mean, operator.mul, operator.truediv, F.linear}
METHODS = ("deconvnet", "guided", "gradient")
_LINEAR_METHODS = {"view", "reshape", "flatten", "permute", "contiguous", "transpose", "mean", "squeeze",
                   "unsqueeze", "mul", "div"}


def conv_stack(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """A Sequential model's (or Sequential ``.features``'s) leaf modules as ``[(dotted_name, module), ...]``.

    Raises:
        NotImplementedError: the model is neither an ``nn.Sequential`` nor has a Sequential ``.features``.
    """
    def flat(seq, prefix):
        out = []
        for name, mod in seq.named_children():
            out.extend(flat(mod, f"{prefix}{name}.") if isinstance(mod, nn.Sequential) else [(prefix + name, mod)])
        return out

    if isinstance(model, nn.Sequential):
        return flat(model, "")
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return flat(features, "features.")
    raise NotImplementedError(f"{type(model).__name__} is not an nn.Sequential conv stack and has no Sequential "
                              "`.features`")


def feature_map_layer(model: nn.Module, layer: str | nn.Module) -> str:
    """Dotted name of the module whose output is ``layer``'s feature map: for a conv, the ReLU module right after
    it (through a BatchNorm) when that ReLU is called once; else the layer itself."""
    dotted, _ = resolve_layer(model, layer)
    return g.feature_map_module(model, dotted)


class _Path:
    """The graph below one layer's feature map, checked once: every operation on it has a deconvnet rule."""

    def __init__(self, model: nn.Module, layer: str | nn.Module, method: str = "deconvnet"):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        self.model, self.layer, self.method = model, layer, method
        self.graph = g.model_graph(model)
        self.top = self.graph.node_of(feature_map_layer(model, layer))
        below = g.ancestors(self.top)
        self.nodes = [n for n in self.graph.graph.nodes if n in below]
        for node in self.nodes:
            self._check(node)

    def _check(self, node: fx.Node) -> None:
        if node.op in ("placeholder", "get_attr") or g.is_relu(self.model, node) or g.is_add(node) or g.is_cat(node):
            return
        if node.op == "call_module":
            mod = g.module_of(self.model, node)
            if isinstance(mod, nn.Conv2d) and mod.padding_mode != "zeros":
                raise NotImplementedError(f"the deconvnet cannot invert {node.target}: padding_mode={mod.padding_mode!r}")
            if isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.modules.batchnorm._BatchNorm) + _SKIPPED
                          + _LINEAR_MODULES):
                return
            what = f"{node.target} ({type(mod).__name__})"
        elif node.op == "call_function" and node.target in _SKIPPED_FUNCTIONS | _LINEAR_FUNCTIONS:
            return
        elif node.op == "call_method" and node.target in _LINEAR_METHODS | {"size", "dim"}:
            return
        elif node.op == "call_function" and getattr(node.target, "__name__", "") in ("getattr",):
            return
        else:
            what = f"{node.name} ({getattr(node.target, '__name__', node.target)})"
        raise NotImplementedError(f"the deconvnet cannot invert {what}: it rectifies ReLUs, unpools max-pools, "
                                  "transposes convs, linear layers, BatchNorm and linear pooling/reshaping, passes "
                                  "additions down both branches and skips LRN, dropout and identity")

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict, dict]:
        """Run up to the layer, recording each max-pool's switches and each conv/pool's input shape."""
        record: dict[fx.Node, tuple] = {}

        def on_node(node, args, kwargs):
            mod = g.module_of(self.model, node)
            if isinstance(mod, nn.MaxPool2d):
                x = args[0]
                out, switches = F.max_pool2d(x, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                                             ceil_mode=mod.ceil_mode, return_indices=True)
                record[node] = (x.shape, switches)
                return out
            if isinstance(mod, nn.Conv2d):
                record[node] = (args[0].shape, None)
            return None

        env = g.run_nodes(self.model, self.graph, images, self.top, on_node=on_node)
        acts = env[self.top]
        if not isinstance(acts, torch.Tensor) or acts.dim() != 4:
            raise ValueError(f"layer '{self.layer}' does not output feature maps (its output is "
                             f"{tuple(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__})")
        return acts, record, env

    def backward(self, record: dict, env: dict, signal: torch.Tensor) -> torch.Tensor:
        """The deconvnet proper: from the layer down to pixels, a signal per node, users' signals summed."""
        signals: dict[fx.Node, torch.Tensor] = {self.top: signal}
        result = None
        for node in reversed(self.nodes):
            s = signals.pop(node, None)
            if s is None:
                continue
            if node.op == "placeholder":
                result = s if result is None else result + s
                continue
            for inp, part in self._down(node, s, record, env):
                signals[inp] = part if inp not in signals else signals[inp] + part
        return result if result is not None else torch.zeros_like(env[self.nodes[0]])

    def _down(self, node: fx.Node, s: torch.Tensor, record: dict, env: dict) -> list[tuple[fx.Node, torch.Tensor]]:
        inputs = [n for n in g.tensor_inputs(node) if isinstance(env.get(n), torch.Tensor)]
        if g.is_add(node):
            return [(n, s) for n in inputs]
        if g.is_cat(node):
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            sizes = [env[n].shape[dim] for n in node.args[0]]
            return list(zip(node.args[0], torch.split(s, sizes, dim=dim)))
        if g.is_relu(self.model, node):
            return [(inputs[0], self._rectify(node, s, env))]
        mod = g.module_of(self.model, node)
        if isinstance(mod, nn.MaxPool2d):
            return [(inputs[0], unpool(s, *record[node]))]
        if isinstance(mod, nn.Conv2d):
            return [(inputs[0], transposed_conv(mod, s, record[node][0]))]
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            return [(inputs[0], s * batchnorm_scale(mod).to(s).view(1, -1, *([1] * (s.dim() - 2))))]
        if isinstance(mod, g.LRN_TYPES) and self.method != "deconvnet":
            return [(inputs[0], self._transpose(node, inputs[0], s, env))]  # LRN's gradient (not linear)
        if isinstance(mod, _SKIPPED) or (node.op == "call_function" and node.target in _SKIPPED_FUNCTIONS):
            return [(inputs[0], s)]
        return [(inputs[0], self._transpose(node, inputs[0], s, env))]

    def _rectify(self, node: fx.Node, s: torch.Tensor, env: dict) -> torch.Tensor:
        """The method's ReLU rule: deconvnet ``relu(s)``, gradient ``s * slope``, guided ``relu(s * slope)``."""
        if self.method == "deconvnet":
            return F.relu(s)
        grad = s * relu_slope(self.model, node, env[node]).to(s)
        return F.relu(grad) if self.method == "guided" else grad

    def _transpose(self, node: fx.Node, inp: fx.Node, s: torch.Tensor, env: dict) -> torch.Tensor:
        """A linear operation's transpose at ``s``: the vector-Jacobian product (no bias: the gradient has none)."""
        if isinstance(g.module_of(self.model, node), nn.Linear):
            return s @ g.module_of(self.model, node).weight.to(s)
        with torch.enable_grad():
            x = env[inp].detach().requires_grad_(True)
            args = fx.node.map_arg(node.args, lambda n: x if n is inp else env[n])
            kwargs = fx.node.map_arg(node.kwargs, lambda n: x if n is inp else env[n])
            out = g.call(self.model, node, args, kwargs)
            (grad,) = torch.autograd.grad(out, x, s)
        return grad


def relu_slope(model: nn.Module, node: fx.Node, out: torch.Tensor) -> torch.Tensor:
    """The derivative of a ReLU-like node, read from its output (an in-place ReLU leaves no input to read):
    ``[out > 0]``; ReLU6 ``[0 < out < 6]``; LeakyReLU 1 or its negative slope."""
    mod = g.module_of(model, node)
    if isinstance(mod, nn.LeakyReLU) or node.target is F.leaky_relu:
        slope = mod.negative_slope if mod is not None else (
            node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01))
        return torch.where(out > 0, 1.0, float(slope))
    on = out > 0
    if isinstance(mod, nn.ReLU6) or node.target is F.relu6:
        on = on & (out < 6)
    return on.float()


def check_projectable(model: nn.Module, layer: str | nn.Module) -> None:
    """Fail fast, before a long pass, when the deconvnet cannot project from ``layer`` (the operation named)."""
    _Path(model, layer)


def unpool(signal: torch.Tensor, shape: torch.Size, switches: torch.Tensor) -> torch.Tensor:
    """Max-unpooling through the forward pass's switches; with overlapping windows one input may be the switch
    of several outputs, and their values add (``scatter_add``)."""
    b, c, h, w = shape
    out = signal.new_zeros(b * c, h * w)
    out.scatter_add_(1, switches.reshape(b * c, -1), signal.reshape(b * c, -1))
    return out.view(b, c, h, w)


def transposed_conv(mod: nn.Conv2d, signal: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Filter with the conv's transposed filters (no bias), recovering its exact input size ``shape``."""
    stride, padding, dilation = (_two(v) for v in (mod.stride, mod.padding, mod.dilation))
    k = mod.weight.shape[-2:]
    output_padding = tuple(
        shape[2 + d] - ((signal.shape[2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (k[d] - 1) + 1)
        for d in range(2))
    return F.conv_transpose2d(signal, mod.weight, None, stride, padding, output_padding, mod.groups, dilation)


def batchnorm_scale(mod: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Eval-mode BatchNorm's per-channel factor ``gamma / sqrt(running_var + eps)``."""
    if mod.running_var is None:
        raise NotImplementedError("the deconvnet needs BatchNorm's running statistics (track_running_stats=True)")
    scale = (mod.running_var + mod.eps).rsqrt()
    return scale * mod.weight if mod.weight is not None else scale


def _two(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _plain(images: torch.Tensor) -> torch.Tensor:
    """A normal tensor (an inference-mode tensor cannot enter the autograd steps of the linear transposes)."""
    return images.clone() if images.is_inference() else images


def deconv_signal(model: nn.Module, images: torch.Tensor, *, layer: str | nn.Module,
                  signal: torch.Tensor, method: str = "deconvnet") -> torch.Tensor:
    """Project an arbitrary signal placed at ``layer`` down to pixels, with the switches of ``images``.

    The building block of :func:`deconv_project`: the forward pass over ``images`` records the max-pool switches,
    then ``signal`` (shaped like ``layer``'s feature map) goes down the deconvnet. Positively homogeneous:
    ``deconv_signal(..., signal=a * s) == a * deconv_signal(..., signal=s)`` for ``a >= 0``.

    Args:
        model: any convnet the graph tracer can trace (see module docstring).
        images: (B, 3, H, W) model input (preprocessed, as the model's forward takes it).
        layer: paper alias, dotted name or module of the conv stack.
        signal: (B, C, h, w), the shape of the layer's feature map.
        method: ``"deconvnet"``, ``"guided"`` or ``"gradient"`` (module docstring); with a one-hot ``signal``,
            ``"gradient"`` is the input gradient of that activation.

    Returns:
        (B, 3, H, W) projection in model-input space, same dtype and device as ``images``.
    """
    path = _Path(model, layer, method)
    with eval_mode(model), torch.no_grad():
        acts, record, env = path.forward(_plain(images))
        if signal.shape != acts.shape:
            raise ValueError(f"signal has shape {tuple(signal.shape)}; layer '{layer}' maps are {tuple(acts.shape)}")
        return path.backward(record, env, signal.to(acts))


def deconv_project(
    model: nn.Module,
    images: torch.Tensor,
    *,
    layer: str | nn.Module,
    channel: int | torch.Tensor,
    position: Sequence[int] | torch.Tensor | None = None,
    keep: Literal["activation", "map"] = "activation",
    batch_size: int = 32,
    method: str = "deconvnet",
) -> torch.Tensor:
    """Deconvnet projection of one activation (or one feature map) per image to pixel space (ZF §2.1, Fig. 2).

    All other activations of ``layer`` are set to zero; the kept one keeps its forward value, so the projection
    scales with it. A conv's feature map is its rectified output (the following ReLU's), as in ZF.

    Args:
        model: any traceable convnet (convscope's, torchvision's VGG/AlexNet/ResNet, timm convnets...).
        images: (B, 3, H, W) model input, preprocessed as the model's forward expects.
        layer: ``"conv1"``..``"conv5"``, ``"pool2"``..., or a dotted name / module of the stack.
        channel: feature map index, one for all images or a (B,) tensor.
        position: ``(y, x)`` for all images or a (B, 2) tensor; ``None`` keeps each image's strongest activation
            of the map. Ignored when ``keep="map"``.
        keep: ``"activation"`` keeps one unit, ``"map"`` keeps the whole feature map.
        batch_size: images per chunk (memory bound).
        method: ``"deconvnet"`` (ZF), ``"guided"`` (guided backpropagation) or ``"gradient"``: the ReLU rule of
            the way down (module docstring).

    Returns:
        (B, 3, H, W) projections in model-input space (zero-centred; normalise per tile to display).

    Raises:
        NotImplementedError: the graph below ``layer`` holds an operation the deconvnet cannot invert (named).

    Example:
        >>> proj = deconv_project(model, images, layer="conv5", channel=42)             # strongest unit per image
        >>> proj = deconv_project(model, images, layer="conv5", channel=42, position=(6, 7))
    """
    if keep not in ("activation", "map"):
        raise ValueError(f"keep must be 'activation' or 'map', not {keep!r}")
    path = _Path(model, layer, method)
    images = _plain(images)
    n = images.shape[0]
    channels = torch.as_tensor(channel, device=images.device).long().expand(n)
    positions = None
    if position is not None and keep == "activation":
        positions = torch.as_tensor(position, device=images.device).long().reshape(-1, 2).expand(n, 2)
    out = []
    with eval_mode(model), torch.no_grad():
        for s in range(0, n, batch_size):
            chunk = images[s:s + batch_size]
            acts, record, env = path.forward(chunk)  # (b, C, h, w)
            b, _, h, w = acts.shape
            rows = torch.arange(b, device=acts.device)
            maps = acts[rows, channels[s:s + b]]  # (b, h, w)
            signal = torch.zeros_like(acts)
            if keep == "map":
                signal[rows, channels[s:s + b]] = maps
            else:
                if positions is None:
                    flat = maps.reshape(b, -1).argmax(dim=1)
                    yx = torch.stack([flat // w, flat % w], dim=1)
                else:
                    yx = positions[s:s + b]
                    if (yx < 0).any() or (yx[:, 0] >= h).any() or (yx[:, 1] >= w).any():
                        raise ValueError(f"position out of range for a {h}x{w} map of layer '{layer}'")
                signal[rows, channels[s:s + b], yx[:, 0], yx[:, 1]] = maps[rows, yx[:, 0], yx[:, 1]]
            out.append(path.backward(record, env, signal))
    return torch.cat(out)
