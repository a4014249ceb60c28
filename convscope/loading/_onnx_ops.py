"""The operators of :mod:`convscope.loading.onnx_models`: each ONNX node becomes a standard torch module or function in an
fx graph (or is folded into a constant), with a module name taken from the file."""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import nn

from ..util.errors import UserError
from ..models.convnet import LRN

# operators with a torch module or function here; folded when all their inputs are constants
SUPPORTED = ("Add", "AveragePool", "BatchNormalization", "Concat", "Constant", "Conv", "Dropout", "Flatten", "Gemm",
             "GlobalAveragePool", "Identity", "LRN", "MatMul", "MaxPool", "Relu", "Reshape", "Softmax", "Sum")
FOLDABLE = ("Cast", "Concat", "Constant", "Gather", "Identity", "Reshape", "Shape", "Slice", "Squeeze", "Unsqueeze")


class OnnxError(UserError, ValueError):
    """An ONNX file convscope cannot read or convert; the message names the file and the reason."""


@dataclass
class State:
    """What the conversion carries from node to node."""

    graph: fx.Graph
    root: nn.Module
    values: dict = field(default_factory=dict)  # ONNX value name -> fx.Node
    consts: dict = field(default_factory=dict)  # ONNX value name -> constant torch.Tensor
    examples: dict = field(default_factory=dict)  # ONNX value name -> example output (batch 1), for shapes
    producer: dict = field(default_factory=dict)  # ONNX value name -> module name that computed it
    used: set = field(default_factory=set)  # module names taken


def attrs(node) -> dict:
    """The node's attributes as Python values."""
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# ---------------------------------------------------------------------------------------------------------------
# naming


def _scope_path(node) -> str:
    """A torch export's scope as a dotted module path (``/features/features.3/squeeze/Conv`` ->
    ``features.3.squeeze``); a Caffe2/zoo node's output blob without its device prefix and ``_N`` suffix
    (``conv1_1``, ``gpu_0/conv1_1`` -> ``conv1``), its ``/`` as dots (``inception_3a/1x1_1`` ->
    ``inception_3a.1x1``)."""
    if node.name.startswith("/"):
        path: list[str] = []
        for part in node.name.strip("/").split("/")[:-1]:
            sub = part.split(".")
            path.extend(sub[1:] if path and len(sub) > 1 and sub[0] == path[-1] else sub)
        return ".".join(path)
    blob = node.output[0] if node.output and node.output[0] else node.name
    blob = re.sub(r"_\d+$", "", re.sub(r"^gpu_\d+/", "", blob))  # zfnet512's blobs: gpu_0/conv1_1
    return blob.replace("/", ".")  # GoogLeNet's inception_3a/1x1 -> inception_3a.1x1


def _module_name(st: State, node, source: str | None) -> str:
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


def _add_module(st: State, name: str, mod: nn.Module) -> None:
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


def convert_node(st: State, node, notes: list[str]) -> None:
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
    convert_op(st, node, attrs(node), notes)


def _fold(st: State, node) -> None:
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


def _record(st: State, name: str, fx_node: fx.Node, example: torch.Tensor, producer: str | None) -> None:
    st.values[name], st.examples[name] = fx_node, example
    if producer:
        st.producer[name] = producer


def _dynamic(st: State, node, i: int = 0) -> str:
    """The name of the node's ``i``-th input, which must be computed from the image."""
    name = node.input[i]
    if name not in st.values:
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}): input {name} is a constant; only computed "
                        "inputs are supported there")
    return name


def _const(st: State, node, i: int) -> torch.Tensor | None:
    """The node's ``i``-th input as a constant (None when absent); an error when it is computed."""
    if len(node.input) <= i or not node.input[i]:
        return None
    if node.input[i] not in st.consts:
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}): input {node.input[i]} must be a constant "
                        "(an initializer), not computed")
    return st.consts[node.input[i]]


def _module(st: State, node, mod: nn.Module) -> None:
    """Add ``mod`` as the module computing ``node`` from its first input."""
    inp = _dynamic(st, node)
    name = _module_name(st, node, st.producer.get(inp))
    _add_module(st, name, mod)
    with torch.no_grad():
        example = mod.eval()(st.examples[inp])
    _record(st, node.output[0], st.graph.call_module(name, (st.values[inp],)), example, name)


def _function(st: State, node, fn, args: tuple, kwargs: dict | None = None, out: str | None = None) -> None:
    """Add a call of ``fn`` computing ``out`` (default: the node's output); ``args`` may hold ONNX value names (as
    ``_Value``) for computed inputs."""
    kwargs = kwargs or {}
    fx_args = _map(args, lambda v: st.values[v.name])
    ex_args = _map(args, lambda v: st.examples[v.name])
    with torch.no_grad():
        example = fn(*ex_args, **kwargs)
    _record(st, out or node.output[0], st.graph.call_function(fn, fx_args, kwargs), example, None)


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


def _conv(st: State, node, attrs: dict, notes: list[str]) -> None:
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


def _maxpool(st: State, node, attrs: dict, notes: list[str]) -> None:
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


def _avgpool(st: State, node, attrs: dict, notes: list[str]) -> None:
    begin, end = _pads(node, attrs)
    if begin != end:
        raise OnnxError(f"AveragePool ({node.name or node.output[0]}): asymmetric pads {list(begin + end)} are not "
                        "supported")
    _module(st, node, nn.AvgPool2d(_pair(attrs.get("kernel_shape"), 1), _pair(attrs.get("strides"), 1), begin,
                                   ceil_mode=bool(attrs.get("ceil_mode", 0)),
                                   count_include_pad=bool(attrs.get("count_include_pad", 0))))


def _lrn(st: State, node, attrs: dict, notes: list[str]) -> None:
    size = int(attrs["size"])
    if size % 2 == 0:  # ONNX centres an even window one channel later than torch does
        raise OnnxError(f"LRN ({node.name or node.output[0]}): an even window (size={size}) is not supported")
    # ONNX (like Caffe and torch) divides alpha by the window size; LRN takes the paper's plain-sum alpha
    _module(st, node, LRN(size=size, alpha=float(attrs.get("alpha", 1e-4)) / size,
                          beta=float(attrs.get("beta", 0.75)), k=float(attrs.get("bias", 1.0))))


def _gemm(st: State, node, attrs: dict, notes: list[str]) -> None:
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


def _matmul(st: State, node, attrs: dict, notes: list[str]) -> None:
    b = _const(st, node, 1)
    if b.dim() != 2:
        raise OnnxError(f"MatMul ({node.name or node.output[0]}): only a 2-D constant right operand is supported")
    mod = nn.utils.skip_init(nn.Linear, b.shape[0], b.shape[1], bias=False)
    with torch.no_grad():
        mod.weight.copy_(b.t())
    _module(st, node, mod)


def _batchnorm(st: State, node, attrs: dict, notes: list[str]) -> None:
    scale, shift, mean, var = (_const(st, node, i) for i in (1, 2, 3, 4))
    mod = nn.BatchNorm2d(scale.numel(), eps=float(attrs.get("epsilon", 1e-5)))
    with torch.no_grad():
        for p, v in ((mod.weight, scale), (mod.bias, shift), (mod.running_mean, mean), (mod.running_var, var)):
            p.copy_(v.reshape(-1))
    _module(st, node, mod)


def _dropout(st: State, node, attrs: dict, notes: list[str]) -> None:
    ratio = _const(st, node, 1)
    _module(st, node, nn.Dropout(float(ratio) if ratio is not None else float(attrs.get("ratio", 0.5))))


def _softmax(st: State, node, attrs: dict, notes: list[str]) -> None:
    _module(st, node, nn.Softmax(dim=int(attrs.get("axis", 1))))


def _add(st: State, node, attrs: dict, notes: list[str]) -> None:
    """``Add`` or a variadic ``Sum`` of computed tensors (and scalar constants) as a chain of ``+``."""
    names = [i for i in node.input if i]
    consts = [st.consts[i] for i in names if i not in st.values]
    if any(c.numel() != 1 for c in consts) or len(consts) == len(names):
        raise OnnxError(f"{node.op_type} ({node.name or node.output[0]}): adding a constant tensor is not supported")
    terms = [_Value(i) for i in names if i in st.values] + [float(c) for c in consts]
    if len(terms) == 1:  # a Sum of one tensor
        _record(st, node.output[0], st.values[names[0]], st.examples[names[0]], st.producer.get(names[0]))
    total = terms[0]
    for k, term in enumerate(terms[1:]):
        out = node.output[0] if k == len(terms) - 2 else f"{node.output[0]}__sum{k}"
        _function(st, node, operator.add, (total, term), out=out)
        total = _Value(out)


def _concat(st: State, node, attrs: dict, notes: list[str]) -> None:
    parts = [_Value(_dynamic(st, node, i)) for i in range(len(node.input))]
    _function(st, node, torch.cat, (parts,), dict(dim=int(attrs.get("axis", 1))))


def _flatten(st: State, node, attrs: dict, notes: list[str]) -> None:
    if int(attrs.get("axis", 1)) != 1:
        raise OnnxError(f"Flatten ({node.name or node.output[0]}): only axis=1 is supported")
    _function(st, node, torch.flatten, (_Value(_dynamic(st, node)), 1))


def _reshape(st: State, node, attrs: dict, notes: list[str]) -> None:
    inp = _dynamic(st, node)
    given = _const(st, node, 1)  # opset < 5 (the zoo's oldest files): the shape is an attribute
    x, target = st.examples[inp], [int(v) for v in (given.tolist() if given is not None else attrs["shape"])]
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
