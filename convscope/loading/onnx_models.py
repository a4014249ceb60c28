"""ONNX files as torch modules (``--model onnx:FILE.onnx``): the papers' own trained networks as the ONNX model zoo
ships them (``bvlcalexnet``: Caffe's two-column AlexNet with LRN; ``caffenet``; ``zfnet512``: ZF's layout), most
Caffe-era convnets (GoogLeNet, VGG) and any convnet exported with ``torch.onnx.export``.

The graph becomes a ``torch.fx.GraphModule`` of *standard* torch modules: ``Conv`` -> ``nn.Conv2d`` (groups kept),
``Relu`` -> ``nn.ReLU``, ``MaxPool`` -> ``nn.MaxPool2d`` (``ceil_mode``; Caffe's asymmetric end padding becomes
``ceil_mode=True`` where it gives the same output size), ``LRN`` -> convscope's :class:`~convscope.models.LRN`
(ONNX's alpha is divided by the window size, as Caffe's and torch's; ``k`` is ONNX's ``bias``),
``Gemm``/``MatMul`` with constant weights -> ``nn.Linear``, ``Dropout`` -> ``nn.Dropout``, ``BatchNormalization``
-> ``nn.BatchNorm2d``, ``AveragePool``/``GlobalAveragePool`` -> ``nn.AvgPool2d``/``nn.AdaptiveAvgPool2d``, and
``Concat``, ``Add``/``Sum``, ``Flatten``, ``Reshape`` -> ``torch.cat``, ``+``, ``torch.flatten``, ``torch.reshape``
(batch size free). ``Constant``, ``Identity`` and shape arithmetic on constants (``Shape``, ``Gather``,
``Unsqueeze``...) are folded while converting. A ``Softmax`` that produces the graph's output is dropped, so the
module returns logits as every convscope model does. Any other operator is refused in one line that names it.

Module names come from the file: a torch export's scopes give back the original dotted names
(``/features/conv1/Conv`` -> ``features.conv1``), a Caffe2/zoo node its output blob without Caffe2's ``_1``
suffix and ``gpu_0/`` prefix (``conv1_1`` -> ``conv1``; GoogLeNet's ``inception_3a/1x1_1`` -> ``inception_3a.1x1``),
and a ReLU the name of the layer it rectifies (``relu1`` after ``conv1``,
``relu6`` after ``fc6``), so ZF's and AlexNet's layer names work on zoo files.

Why our own converter and not ``onnx2torch``: the deconvnet, receptive fields and hooks (``convscope.analysis``)
know standard modules and a few tensor functions; ``onnx2torch`` maps Conv and LRN to torch modules too, but it
puts operators these networks use into its own ``Onnx*`` modules, each of which would need a deconvnet rule: its
``OnnxReshape`` branches on the shape tensor's values (``torch.any(shape == 0)``), which ``torch.fx`` cannot trace
symbolically, and asymmetric pads (Caffe's round-up pooling) become an ``OnnxPadStatic`` module in front of the
pool. It also names modules by ONNX node names. The operator set of the Caffe-era networks is small; ``onnx``
(the reference parser) reads the file. The last ``onnx2torch`` release (2024) predates the torch and onnx
versions used here.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.fx as fx
from torch import nn

from ._onnx_ops import FOLDABLE, SUPPORTED, OnnxError, State, convert_node
from ..util.errors import UserError
from ..models.convnet import LRN

__all__ = ["CAFFE_MEAN_BGR", "OnnxError", "SUPPORTED", "bgr_to_rgb_", "convert", "input_convention", "load_into",
           "load_onnx", "onnx_model", "read_onnx", "reinitialised"]

# Caffe's ImageNet convention (the zoo's bvlcalexnet, caffenet, zfnet512, googlenet): BGR pixels in 0..255 minus
# the channel means of Caffe's ilsvrc_2012_mean.npy (B 104.007, G 116.669, R 122.679), no scaling.
CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)


def read_onnx(path: str | Path):
    """The ``onnx.ModelProto`` of ``path``; one-line :class:`OnnxError` for a missing, truncated or non-ONNX file."""
    try:
        import onnx
    except ImportError:
        raise UserError("--model onnx:... needs the onnx package: pip install onnx") from None
    path = Path(path)
    if not path.is_file():
        raise OnnxError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path))
    except Exception as err:  # protobuf DecodeError, missing external data ...
        raise OnnxError(f"{path} is not a readable ONNX model (truncated or another format: "
                        f"{type(err).__name__}{': ' + str(err).splitlines()[0] if str(err) else ''})") from None
    if not proto.graph.node:
        raise OnnxError(f"{path} is not a readable ONNX model (no graph nodes; truncated or another format)")
    return proto


def load_onnx(path: str | Path) -> fx.GraphModule:
    """Convert an ONNX file to a torch module in eval mode (module docstring: operators and names).

    Returns:
        ``fx.GraphModule`` taking (B, C, H, W) float input and returning logits; ``onnx_input_size`` holds the
        file's spatial input size (None when not fixed), ``onnx_notes`` what the conversion changed.

    Raises:
        OnnxError: unreadable file, or operators/attributes without a conversion (named, in one line).

    Example:
        >>> model = load_onnx("bvlcalexnet-12.onnx")
        >>> logits = model(torch.zeros(1, 3, 224, 224))
    """
    proto = read_onnx(path)
    return convert(proto, where=str(path))


def convert(proto, *, where: str = "the ONNX model") -> fx.GraphModule:
    """An ``onnx.ModelProto`` as an ``fx.GraphModule`` (see :func:`load_onnx`)."""
    from onnx import numpy_helper

    bad = sorted({n.op_type for n in proto.graph.node} - set(SUPPORTED) - set(FOLDABLE))
    if bad:
        raise OnnxError(f"{where} uses ONNX operator(s) convscope cannot convert: {', '.join(bad)} (supported: "
                        f"{', '.join(SUPPORTED)})")
    st = State(fx.Graph(), nn.Module())
    for init in proto.graph.initializer:
        st.consts[init.name] = torch.from_numpy(numpy_helper.to_array(init).copy())
    inputs = [i for i in proto.graph.input if i.name not in st.consts]
    if len(inputs) != 1:
        raise OnnxError(f"{where} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); an image "
                        "classifier has one")
    shape = _input_shape(inputs[0], where)
    st.values[inputs[0].name] = st.graph.placeholder("x")
    st.examples[inputs[0].name] = torch.zeros(shape)
    notes: list[str] = []
    for node in proto.graph.node:
        try:
            convert_node(st, node, notes)
        except OnnxError as err:
            raise OnnxError(f"{where}: {err}") from None
        except Exception as err:  # attributes or weights of an unexpected shape (an old opset's form, a damaged file)
            first = str(err).splitlines()[0] if str(err) else ""
            raise OnnxError(f"{where}: cannot convert {node.op_type} ({node.name or node.output[0]}): "
                            f"{type(err).__name__}: {first}") from None
    out_name = proto.graph.output[0].name
    out_name = _drop_softmax(proto, out_name, notes)
    if out_name not in st.values:
        raise OnnxError(f"{where}: the output {out_name} does not depend on the input")
    st.graph.output(st.values[out_name])
    model = fx.GraphModule(st.root, st.graph, class_name="OnnxNet")
    model.graph.eliminate_dead_code()  # the dropped Softmax, unused branches
    model.delete_all_unused_submodules()
    model.recompile()
    model.onnx_input_size = shape[-1] if shape[-1] == shape[-2] and shape[-1] > 1 else None
    model.onnx_notes = notes
    return model.eval()


def _input_shape(value, where: str) -> tuple[int, ...]:
    """The input's (1, C, H, W) example shape: a symbolic batch becomes 1, symbolic sizes 224."""
    dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise OnnxError(f"{where}: the input {value.name} has {len(dims)} dimensions; convscope needs (N, C, H, W)")
    return (1, dims[1] or 3, dims[2] or 224, dims[3] or 224)


def _drop_softmax(proto, out_name: str, notes: list[str]) -> str:
    """The name of the logits: the input of a Softmax that produces the graph output, else the output itself."""
    for node in proto.graph.node:
        if node.op_type == "Softmax" and out_name in node.output:
            notes.append(f"the final Softmax ({out_name}) was dropped: the module returns logits")
            return node.input[0]
    return out_name

# ---------------------------------------------------------------------------------------------------------------
# as a convscope model: input convention, convscope's own architecture


def input_convention(model: nn.Module, caffe: bool) -> tuple[int, int, tuple, tuple, str]:
    """``(image_size, crop, mean, std, in words)`` for a converted model: the file's input size as the crop
    (shorter side crop / 0.875, 256 for 224), and torchvision's ImageNet mean/std, or with ``caffe`` Caffe's
    0..255 pixels minus its ImageNet channel means (the channel order is handled by :func:`bgr_to_rgb_`)."""
    crop = getattr(model, "onnx_input_size", None) or 224
    size = int(round(crop / 0.875))
    if caffe:
        mean = tuple(m / 255 for m in reversed(CAFFE_MEAN_BGR))
        return size, crop, mean, (1 / 255,) * 3, f"Caffe's convention (BGR, 0..255 minus {CAFFE_MEAN_BGR}), " \
                                                 f"{size} -> {crop}"
    return size, crop, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), f"the ImageNet default ({size} -> {crop})"


def bgr_to_rgb_(model: nn.Module) -> str:
    """Make a BGR-input network take RGB: reverse the input channels of the first conv's weights (exact: a conv is
    linear in its input channels), so images, conv1's filters and deconvnet projections are all RGB. Returns the
    conv's name."""
    gm_nodes = [n for n in model.graph.nodes if n.op == "placeholder"]
    users = list(gm_nodes[0].users) if gm_nodes else []
    convs = [u for u in users if u.op == "call_module" and isinstance(model.get_submodule(u.target), nn.Conv2d)]
    if len(users) != 1 or not convs or model.get_submodule(convs[0].target).in_channels != 3:
        raise OnnxError("--caffe-input needs a network whose input goes into one 3-channel convolution only")
    conv = model.get_submodule(convs[0].target)
    with torch.no_grad():
        conv.weight.copy_(conv.weight.flip(1))
    return convs[0].target


def reinitialised(model: nn.Module, num_classes: int) -> nn.Module:
    """The converted architecture with torch's default initialisation and a ``num_classes``-way last layer (a
    Linear, or SqueezeNet's 1x1 conv): the from-scratch baseline that ``convscope transfer`` trains."""
    name, last = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    if isinstance(last, nn.Linear):
        new = nn.Linear(last.in_features, num_classes, bias=last.bias is not None)
    else:
        new = nn.Conv2d(last.in_channels, num_classes, last.kernel_size, last.stride, last.padding)
    head, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(head) if head else model, leaf, new)
    for mod in model.modules():
        if mod is not new and hasattr(mod, "reset_parameters"):
            mod.reset_parameters()
    return model


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that carry weights or geometry, in forward order (both kinds of model define them so)."""
    kinds = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.LocalResponseNorm)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]


def _fit_geometry(dst: nn.Module, src: nn.Module) -> list[str]:
    """Copy padding/pooling/LRN settings of ``src`` into ``dst`` (same kind of layer); what changed, in words."""
    fields = {nn.Conv2d: ("padding",), nn.MaxPool2d: ("kernel_size", "stride", "padding", "ceil_mode"),
              nn.LocalResponseNorm: ("size", "alpha", "beta", "k")}
    kind = next((k for k in fields if isinstance(dst, k)), None)
    changed = []
    for f in fields.get(kind, ()):
        if getattr(dst, f) != getattr(src, f):
            changed.append(f"{f} {getattr(dst, f)} -> {getattr(src, f)}")
            setattr(dst, f, getattr(src, f))
    if isinstance(dst, LRN) and isinstance(src, LRN):
        dst.paper_alpha = src.paper_alpha
    return changed


def load_into(model: fx.GraphModule, name: str, *, where: str = "the ONNX file") -> nn.Module:
    """convscope's registered model ``name`` (``alexnet``, ``zfnet``...) holding the converted network's weights.

    Layers are matched in forward order (convs, linear layers, max-pools, LRNs: same kinds and weight shapes);
    where the file's padding, pooling or LRN constants differ from convscope's defaults (Caffe's AlexNet: conv1
    unpadded, pools rounding up, LRN k=1), convscope's layer takes the file's, and the differences are listed in
    ``model.onnx_notes``. The two networks must then give the same logits on a probe input (1e-4 relative).

    Raises:
        OnnxError: unknown model, layers that do not match (the first named), or different logits.
    """
    from ..models import UnknownModelError, get_model, layer_info

    src = _layers(model)
    n_classes = next((m.out_features for _, m in reversed(src) if isinstance(m, nn.Linear)), 1000)
    size = getattr(model, "onnx_input_size", None) or 224
    try:
        target = get_model(name, num_classes=n_classes, input_size=size)
    except UnknownModelError as err:
        raise OnnxError(f"--into: {err}") from None
    except Exception as err:  # a head that does not fit this input size, ...
        raise OnnxError(f"--into {name}: cannot build it for {size}px input ({str(err).splitlines()[0]})") from None
    dst = _layers(target)
    notes = list(getattr(model, "onnx_notes", []))
    pairs = list(zip(dst, src))
    for (dn, d), (sn, s) in pairs:
        ws = [(getattr(d, k, None), getattr(s, k, None)) for k in ("weight", "bias")]
        if type(d) is not type(s) and not (isinstance(d, LRN) and isinstance(s, nn.LocalResponseNorm)) or any(
                (a is None) != (b is None) or (a is not None and a.shape != b.shape) for a, b in ws):
            raise OnnxError(f"{where} does not fit {name}: its {sn} ({_describe(s)}) meets {name}'s {dn} "
                            f"({_describe(d)})")
    if len(dst) != len(src):
        raise OnnxError(f"{where} does not fit {name}: {len(src)} conv/linear/pool/LRN layers vs {name}'s {len(dst)}")
    with torch.no_grad():
        for (dn, d), (sn, s) in pairs:
            for k in ("weight", "bias"):
                if getattr(d, k, None) is not None:
                    getattr(d, k).copy_(getattr(s, k))
            notes += [f"{dn}: {c}" for c in _fit_geometry(d, s)]
    target.input_size, target.feature_info = size, layer_info(target)
    _same_logits(model, target.eval(), size, where, name)
    target.onnx_notes = notes
    return target


def _describe(m: nn.Module) -> str:
    w = getattr(m, "weight", None)
    return type(m).__name__ + (f" {tuple(w.shape)}" if isinstance(w, torch.Tensor) else "")


def _same_logits(a: nn.Module, b: nn.Module, size: int, where: str, name: str) -> None:
    """Both models give the same logits on a seeded probe input, else one line with the largest difference."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.no_grad():
        ya, yb = a.eval()(x), b(x)
    diff = (ya - yb).abs().max().item()
    if ya.shape != yb.shape or diff > 1e-4 * max(1.0, ya.abs().max().item()):
        raise OnnxError(f"{where}'s weights fit {name}'s layers but the two networks compute different logits (max "
                        f"difference {diff:.3g}): their layouts differ somewhere the weights do not show")


def onnx_model(path: str, weights: str | None, *, caffe: bool = False, into: str | None = None) -> nn.Module:
    """``--model onnx:FILE``: the converted network (``--caffe-input``: made to take RGB, see
    :func:`bgr_to_rgb_`; ``--into NAME``: as convscope's model NAME, see :func:`load_into`)."""
    if weights:
        raise OnnxError(f"--weights does not apply to --model onnx:{path}: an ONNX file carries its weights")
    model = load_onnx(path)
    if caffe:
        conv = bgr_to_rgb_(model)
        model.onnx_notes.append(f"{conv}'s input channels reversed: the network takes RGB (it was trained on BGR)")
    return load_into(model, into, where=path) if into else model
