"""Model-randomisation sanity checks for the pictures (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
2018, §4.1): does a deconvnet projection or an occlusion map depend on what the network learned?

Cascading randomisation re-initialises the weights from the top layer down (fc8, then fc7 too, ... then conv1
too); independent randomisation re-initialises one layer at a time. After each step the same pictures are
recomputed (the projection of the same unit — same image, feature map and position — and the occlusion map of the
same image and class) and compared with the trained model's by Spearman rank correlation of absolute values and by
SSIM (scikit-image) of the maps scaled to [0, 1]. A picture that stays the same once the weights it should
reflect are random shows the architecture or the input, not the learned features.

A picture whose unit no longer fires after a step (its projection is all zeros) has no structure left: its
similarity is counted as 0.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from ._hooks import eval_mode, resolve_layer, short_names
from ._layers import named_stages, stage_layer
from .deconv import deconv_project, feature_map_layer
from .occlusion import occlusion_map
from .receptive_field import receptive_field
from .top_activations import rf_patches


@dataclass(frozen=True)
class Unit:
    """One activation whose projection is tracked: image row, layer, feature map and (y, x) position."""

    image: int
    layer: str
    channel: int
    position: tuple[int, int]


@dataclass
class Similarity:
    """Similarity of the pictures after one randomisation step to the trained model's (mean and std over the set).

    ``randomized`` names the layers re-initialised at this step (cascade: all of them so far).
    """

    step: str
    randomized: list[str]
    spearman: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    alive: list[bool] = field(default_factory=list)  # the picture still has structure (its unit still fires)

    def summary(self) -> dict:
        def ms(v):
            return (float(torch.tensor(v).mean()), float(torch.tensor(v).std())) if len(v) > 1 else (
                (float(v[0]), 0.0) if v else (math.nan, math.nan))
        (sm, ss), (im, is_) = ms(self.spearman), ms(self.ssim)
        living = [r for r, a in zip(self.spearman, self.alive) if a]
        return dict(step=self.step, randomized=self.randomized, spearman_mean=sm, spearman_std=ss, ssim_mean=im,
                    ssim_std=is_, n=len(self.spearman), alive=len(living),
                    spearman_alive_mean=ms(living)[0])


def parametrized_layers(model: nn.Module) -> list[str]:
    """Names of the conv and linear layers, input to output: the paper alias (``conv1``, ``fc8``) where it is
    unique in the model, else the dotted name (torchvision's ``features.0``, ResNet's ``layer1.0.conv1``)."""
    return short_names(model, [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))])


def sanity_layers(model: nn.Module, input_size: int = 224) -> tuple[list[str], str]:
    """The default layers of the checks: the projections' (ZF's layers 2 and 5: ``conv2``, ``conv5`` on a model with
    ZF's named stages, else an early and the last conv stage by meaning) and the occlusion's (the layer-5 feature
    map: the last conv's rectified output, else the last conv stage)."""
    if named_stages(model):
        last_conv = [n for n in parametrized_layers(model) if n.startswith("conv")][-1]
        return ["conv2", "conv5"], feature_map_layer(model, last_conv)
    return [stage_layer(model, i, input_size) for i in (2, 5)], stage_layer(model, 5, input_size)


def _module(model: nn.Module, alias: str) -> nn.Module:
    return resolve_layer(model, alias)[1]


def default_reinit(model: nn.Module, config: dict | None = None) -> Callable[[str, nn.Module], None]:
    """How a layer is re-initialised: as the run was initialised when its config says (He-normal or N(0, 0.01^2)
    weights, conv1's own std), else PyTorch's default initialisation of the module."""
    opts = dict((config or {}).get("model_options") or {})
    init, conv1_std = opts.get("init"), float(opts.get("conv1_std", 0) or 0)

    def reinit(alias: str, module: nn.Module) -> None:
        with torch.no_grad():
            if alias == "conv1" and conv1_std > 0:
                nn.init.normal_(module.weight, 0.0, conv1_std)
                nn.init.zeros_(module.bias)
            elif init == "kaiming":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif init == "paper":
                nn.init.normal_(module.weight, 0.0, 0.01)
            else:
                module.reset_parameters()

    return reinit


def randomized_copy(model: nn.Module, layers: Sequence[str], reinit: Callable[[str, nn.Module], None]) -> nn.Module:
    """A copy of ``model`` with the named layers re-initialised by ``reinit``; the model itself is not touched."""
    copy_ = copy.deepcopy(model)
    for alias in layers:
        reinit(alias, _module(copy_, alias))
    return copy_


def _magnitude(p: torch.Tensor) -> torch.Tensor:
    """(3, h, w) projection -> (h, w) absolute magnitude (sum over colour channels)."""
    return p.abs().sum(0) if p.dim() == 3 else p.abs()


def compare(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Spearman rank correlation of |a| and |b| and SSIM of |a| and |b| each scaled to [0, 1] (2-D maps).
    A constant map (e.g. a unit that no longer fires) scores 0 on both."""
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    a, b = _magnitude(a).double(), _magnitude(b).double()
    if a.max() == a.min() or b.max() == b.min():
        return 0.0, 0.0
    rho = float(spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic)
    sa, sb = (a - a.min()) / (a.max() - a.min()), (b - b.min()) / (b.max() - b.min())
    side = min(7, *a.shape)
    win = side if side % 2 else side - 1  # the largest odd window (<= 7) that fits the map
    ssim = float(structural_similarity(sa.numpy(), sb.numpy(), data_range=1.0, win_size=win)) if win >= 3 \
        else math.nan  # too small a map for a structural comparison
    return rho, ssim


def strongest_units(model: nn.Module, images: torch.Tensor, layer: str) -> list[Unit]:
    """For each image, the strongest unit of ``layer`` in the given (trained) model: the tracked units."""
    from .deconv import feature_map_layer

    name = feature_map_layer(model, layer)
    modules = dict(model.named_modules())
    got = {}
    handle = modules[name].register_forward_hook(lambda m, i, o: got.__setitem__("a", o.detach()))
    try:
        with eval_mode(model), torch.inference_mode():
            model(images)
    finally:
        handle.remove()
    acts = got["a"]
    b, c, h, w = acts.shape
    flat = acts.reshape(b, -1).argmax(1)
    return [Unit(i, layer, int(f // (h * w)), (int(f % (h * w) // w), int(f % w))) for i, f in enumerate(flat)]


def _projections(model: nn.Module, images: torch.Tensor, units: Sequence[Unit]) -> list[torch.Tensor]:
    """Each unit's projection cropped to its receptive field (same box for every model: same position)."""
    out = []
    for u in units:
        p = deconv_project(model, images[u.image:u.image + 1], layer=u.layer, channel=u.channel,
                           position=u.position)
        box = receptive_field(model, u.layer).boxes(torch.tensor([u.position]))
        out.append(rf_patches(p.float().cpu(), box)[0])
    return out


def _occlusions(model: nn.Module, images: torch.Tensor, targets: Sequence[int], **occ) -> list[torch.Tensor]:
    return [occlusion_map(model, images[i], target=t, **occ).prob.float().cpu() for i, t in enumerate(targets)]


@dataclass
class SanityResult:
    """Similarities along the cascade and for independent randomisation, per picture kind (``"conv5
    projections"``, ``"occlusion"``), plus the pictures of the cascade for a figure."""

    order: list[str]
    cascade: dict[str, list[dict]]
    independent: dict[str, list[dict]]
    pictures: dict[str, list[list[torch.Tensor]]]  # kind -> steps (trained first) -> one picture per item


def randomization_checks(
    model: nn.Module,
    images: torch.Tensor,
    *,
    projection_layers: Sequence[str] = ("conv2", "conv5"),
    occlusion_targets: Sequence[int] | None = None,
    occlusion: dict | None = None,
    reinit: Callable[[str, nn.Module], None] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> SanityResult:
    """Cascading and independent randomisation (Adebayo §4.1) of a trained model, measured on fixed pictures.

    Args:
        model: the trained model (not modified: copies are randomised).
        images: (N, 3, H, W) model inputs.
        projection_layers: for each, the strongest unit of each image in the trained model is projected at every
            step.
        occlusion_targets: class per image for the occlusion probability maps (None: no occlusion check).
        occlusion: keyword arguments of :func:`occlusion_map` (patch, stride, fill, layer ...).
        reinit: how a layer is re-initialised (default :func:`default_reinit`).
        seed: seed of the random weights.

    Returns:
        :class:`SanityResult`; the cascade's first row is the trained model itself (similarity 1).
    """
    reinit = reinit or default_reinit(model)
    order = list(reversed(parametrized_layers(model)))  # fc8, fc7, ... conv1
    units = {f"{layer} projections": strongest_units(model, images, layer) for layer in projection_layers}
    occ = dict(occlusion or {})

    def pictures(m: nn.Module) -> dict[str, list[torch.Tensor]]:
        out = {kind: _projections(m, images, us) for kind, us in units.items()}
        if occlusion_targets is not None:
            out["occlusion"] = _occlusions(m, images, occlusion_targets, **occ)
        return out

    def similarity(step: str, randomized: list[str], ref: dict, now: dict) -> dict[str, dict]:
        result = {}
        for kind in ref:
            s = Similarity(step, list(randomized))
            for a, b in zip(ref[kind], now[kind]):
                rho, ssim = compare(a, b)
                s.spearman.append(rho)
                s.ssim.append(ssim)
                s.alive.append(bool(b.abs().max() > 0) and bool(b.max() != b.min()))
            result[kind] = s.summary()
        return result

    torch.manual_seed(seed)
    trained = pictures(model)
    kinds = list(trained)
    cascade = {k: [similarity("trained", [], trained, trained)[k]] for k in kinds}
    shown = {k: [trained[k]] for k in kinds}
    for i, alias in enumerate(order):
        if progress:
            progress(f"cascade: randomising {alias}")
        torch.manual_seed(seed + i)
        now = pictures(randomized_copy(model, order[:i + 1], reinit))
        sims = similarity(f"up to {alias}", order[:i + 1], trained, now)
        for k in kinds:
            cascade[k].append(sims[k])
            shown[k].append(now[k])
    independent = {k: [] for k in kinds}
    for alias in order:
        if progress:
            progress(f"independent: randomising {alias}")
        sims = similarity(alias, [alias], trained, pictures(randomized_copy(model, [alias], reinit)))
        for k in kinds:
            independent[k].append(sims[k])
    return SanityResult(order, cascade, independent, shown)


def plain_words(kind: str, cascade: list[dict], threshold: float = 0.5) -> str:
    """One sentence per picture kind: how much survives once the layers above the picture are random, and when
    it falls below ``threshold`` rank correlation."""
    below = next((row for row in cascade[1:] if row["spearman_mean"] < threshold), None)
    last = cascade[-1]
    text = (f"{kind}: after every layer is randomised, rank correlation with the trained model's pictures is "
            f"{last['spearman_mean']:.2f} ± {last['spearman_std']:.2f} (SSIM {last['ssim_mean']:.2f}).")
    if "alive" in last and last["alive"] == 0:
        text += f" All {last['n']} pictures are blank then (their units no longer fire, counted as 0)."
    elif "alive" in last and last["alive"] < last["n"]:
        text += (f" {last['n'] - last['alive']} of {last['n']} pictures are blank then (their unit no longer fires, "
                 f"counted as 0); the {last['alive']} others keep {last['spearman_alive_mean']:.2f}.")
    if below is None:
        return text + f" It never falls below {threshold:g}: these pictures depend little on the learned weights."
    return text + (f" It first falls below {threshold:g} once layers down to {below['randomized'][-1]} are random "
                   f"({below['spearman_mean']:.2f}).")
