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
suffix (``conv1_1`` -> ``conv1``), and a ReLU the name of the layer it rectifies (``relu1`` after ``conv1``,
``relu6`` after ``fc6``), so ZF's and AlexNet's layer names work on zoo files.

Why our own converter and not ``onnx2torch``: the deconvnet, receptive fields and hooks (``convscope.analysis``)
know standard modules and a few tensor functions; ``onnx2torch`` maps Conv and LRN to torch modules too, but it
puts several operators these networks use (Reshape, some Gemm forms, asymmetric pooling pads) into its own
``Onnx*`` modules, each of which would need a deconvnet rule, and names modules by ONNX node names. The operator
set of the Caffe-era networks is small; ``onnx`` (the reference parser) reads the file. The last ``onnx2torch``
release (2024) also predates the torch and onnx versions used here.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.fx as fx
from torch import nn

from .errors import UserError
from .models.convnet import LRN

# operators with a torch module or function here; folded when all their inputs are constants
SUPPORTED = ("Add", "AveragePool", "BatchNormalization", "Concat", "Constant", "Conv", "Dropout", "Flatten", "Gemm",
             "GlobalAveragePool", "Identity", "LRN", "MatMul", "MaxPool", "Relu", "Reshape", "Softmax", "Sum")
FOLDABLE = ("Cast", "Concat", "Constant", "Gather", "Identity", "Reshape", "Shape", "Slice", "Squeeze", "Unsqueeze")

# Caffe's ImageNet convention (the zoo's bvlcalexnet, caffenet, zfnet512, googlenet): BGR pixels in 0..255 minus
# the channel means of Caffe's ilsvrc_2012_mean.npy (B 104.007, G 116.669, R 122.679), no scaling.
CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)


class OnnxError(UserError, ValueError):
    """An ONNX file convscope cannot read or convert; the message names the file and the reason."""


@dataclass
class _State:
    """What the conversion carries from node to node."""

    graph: fx.Graph
    root: nn.Module
    values: dict = field(default_factory=dict)  # ONNX value name -> fx.Node
    consts: dict = field(default_factory=dict)  # ONNX value name -> constant torch.Tensor
    examples: dict = field(default_factory=dict)  # ONNX value name -> example output (batch 1), for shapes
    producer: dict = field(default_factory=dict)  # ONNX value name -> module name that computed it
    used: set = field(default_factory=set)  # module names taken


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
    st = _State(fx.Graph(), nn.Module())
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
            _convert_node(st, node, notes)
        except OnnxError as err:
            raise OnnxError(f"{where}: {err}") from None
    out_name = proto.graph.output[0].name
    out_name = _drop_softmax(proto, out_name, notes)
    if out_name not in st.values:
        raise OnnxError(f"{where}: the output {out_name} does not depend on the input")
    st.graph.output(st.values[out_name])
    model = fx.GraphModule(st.root, st.graph, class_name="OnnxNet")
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


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# ---------------------------------------------------------------------------------------------------------------
# naming


def _scope_path(node) -> str:
    """A torch export's scope as a dotted module path (``/features/features.3/squeeze/Conv`` ->
    ``features.3.squeeze``); a Caffe2/zoo node's output blob without its device prefix and ``_N`` suffix
    (``conv1_1``, ``gpu_0/conv1_1`` -> ``conv1``)."""
    if node.name.startswith("/"):
        path: list[str] = []
        for part in node.name.strip("/").split("/")[:-1]:
            sub = part.split(".")
            path.extend(sub[1:] if path and len(sub) > 1 and sub[0] == path[-1] else sub)
        return ".".join(path)
    blob = node.output[0] if node.output and node.output[0] else node.name
    return re.sub(r"_\d+$", "", blob.rsplit("/", 1)[-1])  # zfnet512's blobs: gpu_0/conv1_1


def _module_name(st: _State, node, source: str | None) -> str:
    """A unique dotted module name for ``node`` (``source``: the module whose output a ReLU rectifies)."""
    base = _scope_path(node)
    if node.op_type == "Relu" and source and (not base or base == source):
        head, _, leaf = source.rpartition(".")
        m = re.fullmatch(r"(conv|fc)(\w*)", leaf)
        base = (head + "." if head else "") + ("relu" + m.group(2) if m else leaf + "_relu")
    parts = [re.sub(r"\W", "_", p) or "_" for p in base.split(".")] if base else [node.op_type.lower()]
    name = ".".join(p if not p[0].isdigit() or i else "n" + p for i, p in enumerate(parts))
    taken = lambda n: n in st.used or any(u.startswith(n + ".") or n.startswith(u + ".") for u in st.used)
    if taken(name):
        name = next(f"{name}_{i}" for i in range(1, 10 ** 6) if not taken(f"{name}_{i}"))
    st.used.add(name)
    return name


def _add_module(st: _State, name: str, mod: nn.Module) -> None:
    """Register ``mod`` at dotted ``name`` under the root, creating plain containers on the way."""
    parent = st.root
    *heads, leaf = name.split(".")
    for h in heads:
        if not hasattr(parent, h):
            parent.add_module(h, nn.Module())
        parent = getattr(parent, h)
    parent.add_module(leaf, mod)


# ---------------------------------------------------------------------------------------------------------------
# operators


def _convert_node(st: _State, node, notes: list[str]) -> None:
    """Add ``node`` to the fx graph (or fold it into a constant)."""
    ins = [i for i in node.input if i]
    if node.op_type in FOLDABLE and all(i in st.consts or (node.op_type == "Shape" and i in st.examples)
                                        for i in ins):
        return _fold(st, node)
    if node.op_type == "Identity":
        _record(st, node.output[0], st.values[ins[0]], st.examples[ins[0]], st.producer.get(ins[0]))
        return
    convert_op = _CONVERTERS.get(node.op_type)
    if convert_op is None:
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}) on computed tensors is not supported")
    missing = [i for i in ins if i not in st.values and i not in st.consts]
    if missing:
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}) reads {missing[0]}, which no earlier node "
                        "computes (the graph is not in topological order)")
    convert_op(st, node, _attrs(node), notes)


def _fold(st: _State, node) -> None:
    """Evaluate a node of constants (shape arithmetic) with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    feeds = {i: (st.consts[i] if i in st.consts else st.examples[i]).numpy() for i in node.input if i}
    try:
        outs = ReferenceEvaluator(node).run(None, feeds)
    except Exception as err:
        raise OnnxError(f"cannot evaluate {node.op_type} ({node.name or node.output[0]}) on its constants "
                        f"({type(err).__name__})") from None
    for name, value in zip(node.output, outs):
        st.consts[name] = torch.as_tensor(value.copy() if hasattr(value, "copy") else value)


def _record(st: _State, name: str, fx_node: fx.Node, example: torch.Tensor, producer: str | None) -> None:
    st.values[name], st.examples[name] = fx_node, example
    if producer:
        st.producer[name] = producer


def _dynamic(st: _State, node, i: int = 0) -> str:
    """The name of the node's ``i``-th input, which must be computed from the image."""
    name = node.input[i]
    if name not in st.values:
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}): input {name} is a constant; only computed "
                        "inputs are supported there")
    return name


def _const(st: _State, node, i: int) -> torch.Tensor | None:
    """The node's ``i``-th input as a constant (None when absent); an error when it is computed."""
    if len(node.input) <= i or not node.input[i]:
        return None
    if node.input[i] not in st.consts:
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}): input {node.input[i]} must be a constant "
                        "(an initializer), not computed")
    return st.consts[node.input[i]]


def _module(st: _State, node, mod: nn.Module) -> None:
    """Add ``mod`` as the module computing ``node`` from its first input."""
    inp = _dynamic(st, node)
    name = _module_name(st, node, st.producer.get(inp))
    _add_module(st, name, mod)
    with torch.no_grad():
        example = mod.eval()(st.examples[inp])
    _record(st, node.output[0], st.graph.call_module(name, (st.values[inp],)), example, name)


def _function(st: _State, node, fn, args: tuple, kwargs: dict | None = None) -> None:
    """Add a call of ``fn``; ``args`` may hold ONNX value names (as ``_Value``) for computed inputs."""
    kwargs = kwargs or {}
    fx_args = _map(args, lambda v: st.values[v.name])
    ex_args = _map(args, lambda v: st.examples[v.name])
    with torch.no_grad():
        example = fn(*ex_args, **kwargs)
    _record(st, node.output[0], st.graph.call_function(fn, fx_args, kwargs), example, None)


@dataclass(frozen=True)
class _Value:
    name: str


def _map(args, f):
    return tuple([f(v) if isinstance(v, _Value) else v for v in a] if isinstance(a, list)
                 else f(a) if isinstance(a, _Value) else a for a in args)


def _pair(values, default: int) -> tuple[int, int]:
    values = list(values) if values is not None else [default, default]
    if len(values) != 2:
        raise OnnxError(f"only 2-D convolutions and pools are supported (got {len(values)}-D)")
    return int(values[0]), int(values[1])


def _pads(node, attrs: dict) -> tuple[tuple[int, int], tuple[int, int]]:
    """ONNX pads ``[top, left, bottom, right]`` as ((top, left), (bottom, right)); auto_pad other than NOTSET/VALID
    refused."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}): auto_pad={auto} is not supported")
    p = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
    if len(p) != 4:
        raise OnnxError(f"only 2-D convolutions and pools are supported ({node.op_type} pads {p})")
    return (p[0], p[1]), (p[2], p[3])


def _conv(st: _State, node, attrs: dict, notes: list[str]) -> None:
    weight, bias = _const(st, node, 1), _const(st, node, 2)
    begin, end = _pads(node, attrs)
    if begin != end:
        raise OnnxError(f"Conv ({node.name or node.output[0]}): asymmetric pads {list(begin + end)} are not "
                        "supported")
    groups = int(attrs.get("group", 1))
    mod = nn.utils.skip_init(nn.Conv2d, weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[-2:]),
                             _pair(attrs.get("strides"), 1), begin, _pair(attrs.get("dilations"), 1), groups,
                             bias=bias is not None)  # no random init: the file's weights are copied in
    with torch.no_grad():
        mod.weight.copy_(weight)
        if bias is not None:
            mod.bias.copy_(bias.reshape(-1))
    _module(st, node, mod)


def _maxpool(st: _State, node, attrs: dict, notes: list[str]) -> None:
    if len(node.output) > 1 and node.output[1]:
        raise OnnxError(f"MaxPool ({node.name or node.output[0]}): its indices output is not supported")
    kernel, stride = _pair(attrs.get("kernel_shape"), 1), _pair(attrs.get("strides"), 1)
    dilation = _pair(attrs.get("dilations"), 1)
    begin, end = _pads(node, attrs)
    ceil = bool(attrs.get("ceil_mode", 0))
    mod = nn.MaxPool2d(kernel, stride, begin, dilation, ceil_mode=ceil)
    if begin != end:  # Caffe's pooling rounds up; converters write that as extra end padding
        x = st.examples[_dynamic(st, node)]
        want = [(x.shape[2 + d] + begin[d] + end[d] - dilation[d] * (kernel[d] - 1) - 1) // stride[d] + 1
                for d in range(2)]
        mod = nn.MaxPool2d(kernel, stride, begin, dilation, ceil_mode=True)
        if ceil or any(e < b for b, e in zip(begin, end)) or list(mod(x).shape[2:]) != want:
            raise OnnxError(f"MaxPool ({node.name or node.output[0]}): pads {list(begin + end)} have no torch "
                            "equivalent")
        notes.append(f"MaxPool {node.name or node.output[0]}: end pads {list(end)} as ceil_mode=True (Caffe's "
                     "rounding up)")
    _module(st, node, mod)


def _avgpool(st: _State, node, attrs: dict, notes: list[str]) -> None:
    begin, end = _pads(node, attrs)
    if begin != end:
        raise OnnxError(f"AveragePool ({node.name or node.output[0]}): asymmetric pads {list(begin + end)} are not "
                        "supported")
    _module(st, node, nn.AvgPool2d(_pair(attrs.get("kernel_shape"), 1), _pair(attrs.get("strides"), 1), begin,
                                   ceil_mode=bool(attrs.get("ceil_mode", 0)),
                                   count_include_pad=bool(attrs.get("count_include_pad", 0))))


def _lrn(st: _State, node, attrs: dict, notes: list[str]) -> None:
    size = int(attrs["size"])
    if size % 2 == 0:  # ONNX centres an even window one channel later than torch does
        raise OnnxError(f"LRN ({node.name or node.output[0]}): an even window (size={size}) is not supported")
    # ONNX (like Caffe and torch) divides alpha by the window size; LRN takes the paper's plain-sum alpha
    _module(st, node, LRN(size=size, alpha=float(attrs.get("alpha", 1e-4)) / size,
                          beta=float(attrs.get("beta", 0.75)), k=float(attrs.get("bias", 1.0))))


def _gemm(st: _State, node, attrs: dict, notes: list[str]) -> None:
    if attrs.get("transA", 0):
        raise OnnxError(f"Gemm ({node.name or node.output[0]}): transA=1 is not supported")
    b, c = _const(st, node, 1), _const(st, node, 2)
    weight = (b if attrs.get("transB", 0) else b.t()) * float(attrs.get("alpha", 1.0))  # (out, in)
    mod = nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0], bias=c is not None)
    with torch.no_grad():
        mod.weight.copy_(weight)
        if c is not None:
            mod.bias.copy_((c * float(attrs.get("beta", 1.0))).reshape(-1).expand(weight.shape[0]))
    _module(st, node, mod)


def _matmul(st: _State, node, attrs: dict, notes: list[str]) -> None:
    b = _const(st, node, 1)
    if b.dim() != 2:
        raise OnnxError(f"MatMul ({node.name or node.output[0]}): only a 2-D constant right operand is supported")
    mod = nn.utils.skip_init(nn.Linear, b.shape[0], b.shape[1], bias=False)
    with torch.no_grad():
        mod.weight.copy_(b.t())
    _module(st, node, mod)


def _batchnorm(st: _State, node, attrs: dict, notes: list[str]) -> None:
    scale, shift, mean, var = (_const(st, node, i) for i in (1, 2, 3, 4))
    mod = nn.BatchNorm2d(scale.numel(), eps=float(attrs.get("epsilon", 1e-5)))
    with torch.no_grad():
        for p, v in ((mod.weight, scale), (mod.bias, shift), (mod.running_mean, mean), (mod.running_var, var)):
            p.copy_(v.reshape(-1))
    _module(st, node, mod)


def _dropout(st: _State, node, attrs: dict, notes: list[str]) -> None:
    ratio = _const(st, node, 1)
    _module(st, node, nn.Dropout(float(ratio) if ratio is not None else float(attrs.get("ratio", 0.5))))


def _softmax(st: _State, node, attrs: dict, notes: list[str]) -> None:
    _module(st, node, nn.Softmax(dim=int(attrs.get("axis", 1))))


def _add(st: _State, node, attrs: dict, notes: list[str]) -> None:
    names = [i for i in node.input if i]
    consts = [st.consts[i] for i in names if i not in st.values]
    if any(c.numel() != 1 for c in consts) or len(consts) == len(names):
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}): adding a constant tensor is not supported")
    terms = [_Value(i) for i in names if i in st.values] + [float(c) for c in consts]
    first = terms[0]
    for k, term in enumerate(terms[1:]):
        out = node.output[0] if k == len(terms) - 2 else f"{node.output[0]}__sum{k}"
        _function(st, _Renamed(node, out), operator.add, (first, term))
        first = _Value(out)


@dataclass(frozen=True)
class _Renamed:
    """A node seen with another output name (the partial sums of a variadic Sum)."""

    node: object
    out: str

    def __getattr__(self, key):
        return [self.out] if key == "output" else getattr(self.node, key)


def _concat(st: _State, node, attrs: dict, notes: list[str]) -> None:
    parts = [_Value(_dynamic(st, node, i)) for i in range(len(node.input))]
    _function(st, node, torch.cat, (parts,), dict(dim=int(attrs.get("axis", 1))))


def _flatten(st: _State, node, attrs: dict, notes: list[str]) -> None:
    if int(attrs.get("axis", 1)) != 1:
        raise OnnxError(f"Flatten ({node.name or node.output[0]}): only axis=1 is supported")
    _function(st, node, torch.flatten, (_Value(_dynamic(st, node)), 1))


def _reshape(st: _State, node, attrs: dict, notes: list[str]) -> None:
    inp = _dynamic(st, node)
    x, target = st.examples[inp], [int(v) for v in _const(st, node, 1).tolist()]
    shape = [x.shape[i] if v == 0 and not attrs.get("allowzero", 0) else v for i, v in enumerate(target)]
    out = x.reshape(shape).shape
    if out[0] != x.shape[0]:
        raise OnnxError(f"Reshape ({node.name or node.output[0]}) to {target} mixes the batch with other dimensions")
    _function(st, node, torch.reshape, (_Value(inp), (-1, *out[1:])))  # any batch size, not the file's fixed 1


_CONVERTERS = {"Conv": _conv, "Relu": lambda st, node, a, n: _module(st, node, nn.ReLU()), "MaxPool": _maxpool,
               "AveragePool": _avgpool, "GlobalAveragePool": lambda st, node, a, n: _module(st, node,
                                                                                           nn.AdaptiveAvgPool2d(1)),
               "LRN": _lrn, "Gemm": _gemm, "MatMul": _matmul, "BatchNormalization": _batchnorm, "Dropout": _dropout,
               "Softmax": _softmax, "Add": _add, "Sum": _add, "Concat": _concat, "Flatten": _flatten,
               "Reshape": _reshape}


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
    from .models import UnknownModelError, get_model, layer_info

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
