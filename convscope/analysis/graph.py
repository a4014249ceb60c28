"""A convnet as a graph of calls (``torch.fx``), so that the deconvnet, receptive fields and layer choice work on
any model: ``nn.Sequential`` stacks, torchvision's VGG / AlexNet / ResNet, timm convnets, your own.

The model is traced once symbolically; every call of a module (leaf or container) is recorded with the graph
node that holds its output, so a *layer* keeps meaning what users name: a module's dotted name
(``features.8``, ``layer3``, ``layer2.1``). A module called more than once per forward (ResNet's ``self.relu``)
has no single output and cannot be a layer; its block can. Structure only is kept: the graph's module calls fetch
the live modules from the model when run, so changing weights never needs a new trace.
"""
from __future__ import annotations

import operator
import weakref
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..util.errors import UserError
from ._hooks import resolve_layer

# modules kept whole in the trace (the rules of the deconvnet and receptive fields know them)
LRN_TYPES = (nn.LocalResponseNorm, nn.CrossMapLRN2d)
RELU_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu}
RELU_METHODS = {"relu", "relu_"}
ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
ADD_METHODS = {"add", "add_"}
CAT_FUNCTIONS = {torch.cat, torch.concat}


class GraphError(UserError, NotImplementedError):
    """A model or layer the graph tools cannot handle; the message names the module or operation."""


class _Tracer(fx.Tracer):
    """fx tracer that keeps LRN whole and records, per module, the output node of each of its calls."""

    def __init__(self):
        super().__init__()
        self.calls: dict[str, list[fx.Node]] = {}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LRN_TYPES + RELU_MODULES) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):
            self.calls.setdefault(self.path_of_module(m), []).append(out.node)
        return out


@dataclass
class ModelGraph:
    """The traced graph of a model and where each module's output lives in it."""

    graph: fx.Graph
    calls: dict[str, list[fx.Node]]
    shapes: dict[int, dict[fx.Node, tuple]] = field(default_factory=dict)  # input size -> output shapes

    def node_of(self, name: str) -> fx.Node:
        """The output node of module ``name`` (dotted); one-line error when it is not called exactly once."""
        nodes = self.calls.get(name, [])
        if len(nodes) != 1:
            if not nodes:
                raise GraphError(f"module '{name}' is never called in the model's forward")
            raise GraphError(f"module '{name}' is called {len(nodes)} times per forward (a shared module such as "
                             "ResNet's self.relu), so it has no single output; name the block that contains it")
        return nodes[0]

    def name_of(self, node: fx.Node) -> str | None:
        """The shortest dotted name of a module called once whose output is ``node``."""
        names = [n for n, nodes in self.calls.items() if len(nodes) == 1 and nodes[0] is node]
        return min(names, key=lambda n: (n.count("."), len(n))) if names else None


_CACHE: "weakref.WeakKeyDictionary[nn.Module, ModelGraph]" = weakref.WeakKeyDictionary()


def model_graph(model: nn.Module) -> ModelGraph:
    """Trace ``model`` (cached per model object).

    Raises:
        GraphError: the forward cannot be traced symbolically (data-dependent control flow), in one line.
    """
    got = _CACHE.get(model)
    if got is None:
        tracer = _Tracer()
        try:
            graph = tracer.trace(model)
        except Exception as err:  # fx raises TraceError, TypeError, ... on untraceable forwards
            raise GraphError(f"cannot trace {type(model).__name__}'s forward with torch.fx "
                             f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
        got = _CACHE[model] = ModelGraph(graph, tracer.calls)
    return got


# ---------------------------------------------------------------------------------------------------------------
# node kinds


def module_of(model: nn.Module, node: fx.Node) -> nn.Module | None:
    return model.get_submodule(node.target) if node.op == "call_module" else None


def is_relu(model: nn.Module, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(module_of(model, node), RELU_MODULES)
    if node.op == "call_function":
        return node.target in RELU_FUNCTIONS
    return node.op == "call_method" and node.target in RELU_METHODS


def is_add(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in ADD_FUNCTIONS) or (
        node.op == "call_method" and node.target in ADD_METHODS)


def is_cat(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target in CAT_FUNCTIONS


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """The node's arguments that are graph nodes (tensors computed by the model), in order."""
    out: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: out.append(n) or n)
    return out


def ancestors(node: fx.Node) -> set[fx.Node]:
    """Every node ``node`` depends on, itself included."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(tensor_inputs(n))
    return seen


# ---------------------------------------------------------------------------------------------------------------
# running the graph


def run_nodes(model: nn.Module, graph: ModelGraph, x: torch.Tensor, until: fx.Node, *,
              on_node=None) -> dict[fx.Node, object]:
    """Evaluate the graph on input ``x`` up to and including ``until``; ``on_node(node, args, kwargs)`` may return
    a replacement result (e.g. a max-pool with its switches recorded). Returns every computed node's value."""
    env: dict[fx.Node, object] = {}
    first = True
    for node in graph.graph.nodes:
        if node.op == "placeholder":  # the input, then any further arguments at their defaults
            env[node], first = (x if first else (node.args[0] if node.args else None)), False
            if node is until:
                break
            continue
        if node.op == "output":
            break
        args = fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
        result = on_node(node, args, kwargs) if on_node is not None else None
        if result is None:
            result = call(model, node, args, kwargs)
        env[node] = result
        if node is until:
            break
    return env


def call(model: nn.Module, node: fx.Node, args, kwargs):
    """One node's operation on concrete arguments."""
    if node.op == "call_module":
        return model.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        obj, *rest = args
        return getattr(obj, node.target)(*rest, **kwargs)
    if node.op == "get_attr":
        value = model
        for part in node.target.split("."):
            value = getattr(value, part)
        return value
    raise GraphError(f"unexpected graph node {node.op} {node.target}")


def output_shapes(model: nn.Module, input_size: int) -> dict[fx.Node, tuple]:
    """Shape of every tensor node for one (1, 3, input_size, input_size) input (the model in eval mode); one probe
    forward per model and size (shapes do not depend on the weights)."""
    graph = model_graph(model)
    if input_size in graph.shapes:
        return graph.shapes[input_size]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            last = [n for n in graph.graph.nodes if n.op == "output"][0].args[0]
            env = run_nodes(model, graph, torch.zeros(1, 3, input_size, input_size, device=device),
                            last if isinstance(last, fx.Node) else None)
    finally:
        model.train(was)
    graph.shapes[input_size] = {n: tuple(v.shape) for n, v in env.items() if isinstance(v, torch.Tensor)}
    return graph.shapes[input_size]


# ---------------------------------------------------------------------------------------------------------------
# feature maps: which outputs are layers worth looking at


def _through_bn(model: nn.Module, node: fx.Node) -> fx.Node:
    """Follow a conv's single-user chain through BatchNorm to the node whose users may be its ReLU."""
    while len(node.users) == 1:
        nxt = next(iter(node.users))
        if isinstance(module_of(model, nxt), nn.modules.batchnorm._BatchNorm):
            node = nxt
        else:
            break
    return node


def rectified_output(model: nn.Module, node: fx.Node) -> fx.Node | None:
    """The ReLU node right after ``node`` (through a BatchNorm), if ``node`` feeds nothing else."""
    tail = _through_bn(model, node)
    if len(tail.users) == 1:
        nxt = next(iter(tail.users))
        if is_relu(model, nxt):
            return nxt
    return None


def feature_map_module(model: nn.Module, dotted: str) -> str:
    """The module whose output is ``dotted``'s feature map: for a conv, the ReLU module right after it (through
    a BatchNorm), as ZF show rectified maps, when that ReLU is a module called once; else ``dotted`` itself."""
    mod = model.get_submodule(dotted)
    if not isinstance(mod, nn.Conv2d):
        return dotted
    graph = model_graph(model)
    relu = rectified_output(model, graph.node_of(dotted))
    name = graph.name_of(relu) if relu is not None else None
    return name or dotted


def is_block_output(model: nn.Module, node: fx.Node) -> bool:
    """Whether ``node`` is a block's rectified output: a ReLU (a residual block after its addition) or a
    concatenation of ReLUs (SqueezeNet's Fire, Inception-style branches)."""
    if is_cat(node):
        parts = tensor_inputs(node)
        return bool(parts) and all(is_relu(model, p) for p in parts)
    return is_relu(model, node)


def classifier_head(model: nn.Module) -> fx.Node | None:
    """The classifier's own layer: the last parametrised call (a Linear, or a conv such as SqueezeNet's
    ``final_conv``) on the path back from the output through parameter-free operations (pooling, flatten,
    ReLU, dropout); None when the output comes from no such layer."""
    graph = model_graph(model)
    out = [n for n in graph.graph.nodes if n.op == "output"][0]
    todo = tensor_inputs(out)
    while len(todo) == 1:
        node = todo[0]
        mod = module_of(model, node)
        if mod is not None and any(True for _ in mod.parameters(recurse=False)):
            return node
        if node.op == "placeholder":
            return None
        todo = tensor_inputs(node)
    return None


def feature_stages(model: nn.Module, input_size: int) -> tuple[list[str], list[str]]:
    """A model's own conv stages below its classifier, in forward order, and its classifier's rectified maps.

    A stage is a conv with its own rectified map (ReLU after it, through BatchNorm), or a block's output
    (:func:`is_block_output`: a ResNet block or stage, a Fire's concatenation) whose name then stands for
    everything inside it. Returns ``(stages, head_maps)``: the stages that feed the classifier (ZF's layers
    1-5 are spread over these) and the rectified conv maps at or after it (SqueezeNet's class maps), which an
    atlas may still look at."""
    graph = model_graph(model)
    shapes = output_shapes(model, input_size)
    order = {n: i for i, n in enumerate(graph.graph.nodes)}
    found: dict[fx.Node, str] = {}
    block_names: dict[fx.Node, list[str]] = {}
    for name, nodes in graph.calls.items():
        if len(nodes) != 1 or len(shapes.get(nodes[0], ())) != 4:
            continue
        node, mod = nodes[0], model.get_submodule(name)
        if isinstance(mod, nn.Conv2d):
            relu = rectified_output(model, node)
            if relu is not None:
                found.setdefault(relu, name)
        elif is_block_output(model, node) and not isinstance(mod, RELU_MODULES):
            block_names.setdefault(node, []).append(name)
    spatial = {**{node: shapes[node][-2:] for node in found}, **{node: shapes[node][-2:] for node in block_names}}
    everything = [(name, node) for node, name in found.items()] + [
        (name, node) for node, names in block_names.items() for name in names]

    def one_resolution(name: str, node: fx.Node) -> bool:  # "layer4" names ResNet's stage; "features" is no stage
        return all(spatial[other] == spatial[node] for n, other in everything if n.startswith(name + "."))

    blocks = []
    for node, names in block_names.items():
        names = sorted(names, key=lambda n: (n.count("."), len(n)))
        found[node] = next((n for n in names if one_resolution(n, node)), names[-1])
        blocks.append(found[node])
    # a ReLU module right after a conv is that conv's map: keep the conv's name; a block hides what is inside it
    picked = [(node, name) for node, name in sorted(found.items(), key=lambda kv: order[kv[0]])
              if not any(name.startswith(b + ".") for b in blocks)]
    head = classifier_head(model)
    below = ancestors(head) - {head} if head is not None else set(order)
    return [name for node, name in picked if node in below], [name for node, name in picked if node not in below]


def default_layers(model: nn.Module, input_size: int, most: int = 8) -> list[str]:
    """Layers to look at when the user names none: the model's :func:`feature_stages` in forward order (when
    there are more than ``most``, the last one at each spatial resolution: VGG16 conv1_2 ... conv5_3, SqueezeNet
    conv1, fire4, fire8, fire9), then the classifier's own rectified maps where it is a conv (SqueezeNet's class
    maps)."""
    stages, head_maps = feature_stages(model, input_size)
    if len(stages) > most:
        graph, shapes = model_graph(model), output_shapes(model, input_size)
        last: dict[tuple, str] = {}
        for name in stages:
            node = graph.node_of(feature_map_module(model, name))
            last[shapes[node][-2:]] = name
        stages = [name for name in stages if name in last.values()]
    if not stages and not head_maps:
        raise GraphError(f"{type(model).__name__} has no rectified conv feature maps (ReLU after a conv) to look at; "
                         "name --layers")
    return stages + head_maps


def convs(model: nn.Module) -> list[str]:
    """Dotted names of the model's Conv2d modules in definition order (``conv1``, ``features.0``, ...)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def first_convs(model: nn.Module, n: int = 2, *, spatial: bool = False) -> list[str]:
    """The first ``n`` convs (``spatial``: only those with kernels larger than 1x1, whose filters are pictures) by
    their alias where it is unique (``conv1``), else their dotted name."""
    out = []
    names = [name for name in convs(model) if not spatial or min(model.get_submodule(name).kernel_size) > 1]
    for name in names[:n]:
        alias = name.rsplit(".", 1)[-1]
        try:
            out.append(alias if resolve_layer(model, alias)[0] == name else name)
        except UserError:
            out.append(name)
    return out
