"""Model-randomisation sanity checks for the pictures (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
2018, §4.1): does a deconvnet projection or an occlusion map depend on what the network learned?

Cascading randomisation re-initialises the weights from the top layer down (fc8, then fc7 too, ... then conv1
too); independent randomisation re-initialises one layer at a time. After each step the same pictures are
recomputed (the projection of the same unit — same image, feature map and position — and the occlusion map of the
same image and class) and compared with the trained model's by Spearman rank correlation of absolute values and by
SSIM (scikit-image) of the maps scaled to [0, 1]. A picture that stays the same once the weights it should
reflect are random shows the architecture or the input, not the learned features.

**Chance level.** A raw similarity is not evidence by itself: two projections of one unit in *different* images
share the unit's footprint (its box clipped by the image edge, a centre-weighted support) and correlate 0.8-0.95 on
a real network whatever the weights. So each picture is also compared with the same model's projection of the
*same unit* (layer, map, position) in ``partners`` other images, and the score is the matched similarity minus that
mismatched mean, ``above chance``, with its spread over the images. It asks the question the check is about: is
the randomised model's picture of this image more like the trained one's picture of this image than its pictures
of other images are? 0 means no: what is left is footprint. (Pictures of other units at other positions would be
a laxer baseline: their boxes are clipped differently, and that difference alone scored +0.5 on SqueezeNet.) The
rank correlation of projections is taken only where either projection is non-zero, so that the zero padding of a
clipped box is not agreement. Occlusion maps cover the whole image: their chance level is their similarity to the
maps of other images.

A picture whose unit no longer fires after a step (its projection is all zeros) is *dead*: it is counted
separately (``alive`` of ``n``) and left out of the scores, instead of being scored 0.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch
from torch import nn

from ._hooks import eval_mode, resolve_layer
from ._layers import parametrized_layers, sanity_layers  # noqa: F401 - the checks' defaults live with the resolver
from .deconv import deconv_project
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
    """Similarity of the pictures after one randomisation step to the trained model's, per living picture, with
    each one's chance level (its mean similarity to the pictures of other images).

    ``randomized`` names the layers re-initialised at this step (cascade: all of them so far).
    """

    step: str
    randomized: list[str]
    spearman: list[float] = field(default_factory=list)  # living pictures only
    ssim: list[float] = field(default_factory=list)
    spearman_chance: list[float] = field(default_factory=list)
    ssim_chance: list[float] = field(default_factory=list)
    n: int = 0  # pictures compared, dead ones included

    def summary(self) -> dict:
        rho, chance = torch.tensor(self.spearman, dtype=torch.float64), torch.tensor(self.spearman_chance,
                                                                                     dtype=torch.float64)
        above = rho - chance
        (sm, ss), (im, is_), (am, as_) = _mean_std(rho), _mean_std(torch.tensor(self.ssim)), _mean_std(above)
        return dict(step=self.step, randomized=self.randomized, spearman_mean=sm, spearman_std=ss, ssim_mean=im,
                    ssim_std=is_, n=self.n, alive=len(self.spearman), spearman_alive_mean=sm,
                    spearman_chance=_mean_std(chance)[0], above_chance_mean=am, above_chance_std=as_,
                    ssim_chance=_mean_std(torch.tensor(self.ssim_chance))[0])


def _mean_std(v: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of the finite values (nan when none; std 0 for one)."""
    v = v[torch.isfinite(v)].double()
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std()) if len(v) > 1 else 0.0


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
    """Spearman rank correlation of |a| and |b| where either is non-zero (the zero padding of a clipped receptive
    field is not agreement), and SSIM of |a| and |b| each scaled to [0, 1] (whole maps). A constant map (e.g. a
    unit that no longer fires) scores 0 on both."""
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    a, b = _magnitude(a).double(), _magnitude(b).double()
    if a.max() == a.min() or b.max() == b.min():
        return 0.0, 0.0
    support = (a > 0) | (b > 0)
    rho = float(spearmanr(a[support].numpy(), b[support].numpy()).statistic) if support.sum() > 2 else 0.0
    sa, sb = (a - a.min()) / (a.max() - a.min()), (b - b.min()) / (b.max() - b.min())
    side = min(7, *a.shape)
    win = side if side % 2 else side - 1  # the largest odd window (<= 7) that fits the map
    ssim = float(structural_similarity(sa.numpy(), sb.numpy(), data_range=1.0, win_size=win)) if win >= 3 \
        else math.nan  # too small a map for a structural comparison
    return (0.0 if math.isnan(rho) else rho), ssim


def alive(picture: torch.Tensor) -> bool:
    """The picture has structure: not all zeros, not constant (its unit still fires)."""
    return bool(picture.abs().max() > 0) and bool(picture.max() != picture.min())


def similarity(step: str, randomized: Sequence[str], trained: Sequence[torch.Tensor],
               now: Sequence[torch.Tensor], others: Sequence[Sequence[torch.Tensor]] | None = None,
               partners: int = 4) -> Similarity:
    """Each living picture of ``now`` against the trained picture of the same item, and its chance level: the
    mean similarity of that trained picture to ``others[i]``, the same model's pictures of the same unit in other
    images (default: ``now``'s living pictures of up to ``partners`` other items, the next ones cyclically).
    Dead pictures (of ``now``, and among the others) are counted in ``n`` only / left out."""
    living = [i for i, p in enumerate(now) if alive(p)]
    if others is None:
        others = {i: [now[living[(pos + k) % len(living)]] for k in range(1, min(partners, len(living) - 1) + 1)]
                  for pos, i in enumerate(living)}
    s = Similarity(step, list(randomized), n=len(now))
    for i in living:
        rho, ssim = compare(trained[i], now[i])
        chance = [compare(trained[i], o) for o in others[i] if alive(o) and o.shape == trained[i].shape]
        s.spearman.append(rho)
        s.ssim.append(ssim)
        s.spearman_chance.append(sum(c[0] for c in chance) / len(chance) if chance else math.nan)
        s.ssim_chance.append(sum(c[1] for c in chance) / len(chance) if chance else math.nan)
    return s


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


def _projections(model: nn.Module, images: torch.Tensor, units: Sequence[Unit],
                 method: str = "deconvnet") -> list[torch.Tensor]:
    """Each unit's projection cropped to its receptive field (same box for every model: same position); the
    units of one layer go down together."""
    if not units:
        return []
    rows = torch.tensor([u.image for u in units])
    yx = torch.tensor([u.position for u in units])
    p = deconv_project(model, images[rows], layer=units[0].layer, channel=torch.tensor([u.channel for u in units]),
                       position=yx, method=method)
    boxes = receptive_field(model, units[0].layer).boxes(yx)
    return list(rf_patches(p.float().cpu(), boxes))


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

    def words(self) -> dict[str, str]:
        """The cascade's verdict per picture kind in one sentence each (:func:`plain_words`)."""
        return {kind: plain_words(kind, rows) for kind, rows in self.cascade.items()}


PROJECTION_KINDS = {"deconvnet": "projections", "guided": "guided backprop", "gradient": "gradient"}


def picture_kind(layer: str, method: str = "deconvnet") -> str:
    """The name of one kind of picture: ``"conv5 projections"`` (deconvnet), ``"conv5 guided backprop"``, ..."""
    return f"{layer} {PROJECTION_KINDS[method]}"


Pictures = dict[str, list[torch.Tensor]]
ChancePools = dict[str, "list[list[torch.Tensor]] | None"]


def picture_set(model: nn.Module, images: torch.Tensor, units: dict[str, Sequence[Unit]], *,
                methods: Sequence[str] = ("deconvnet",), partners: int = 2,
                occlusion_targets: Sequence[int] | None = None, occlusion: dict | None = None
                ) -> tuple[Pictures, ChancePools]:
    """One model's pictures of each kind (one per item), and per item its chance pool: the same unit projected in
    ``partners`` other images, the next ones (cyclically) in which that unit fires, else the next ones (a sparse
    unit, such as a late Fire module's, is silent in most photos: its silent pictures are blank and say nothing
    about chance); None for occlusion: the maps of the other images are the pool."""
    n, k = len(images), min(partners, len(images) - 1)
    out, pools = {}, {}
    for layer, us in units.items():
        firing = _fires(model, images, layer, us)
        moved = [replace(u, image=j) for u in us for j in _partners(u.image, n, k, firing[u])]
        for method in methods:
            pics = _projections(model, images, list(us) + moved, method)
            kind = picture_kind(layer, method)
            out[kind] = pics[:n]
            pools[kind] = [pics[n + i * k:n + (i + 1) * k] for i in range(n)]
    if occlusion_targets is not None:
        out["occlusion"] = _occlusions(model, images, occlusion_targets, **dict(occlusion or {}))
        pools["occlusion"] = None
    return out, pools


@torch.no_grad()
def _fires(model: nn.Module, images: torch.Tensor, layer: str, units: Sequence[Unit]) -> dict[Unit, list[bool]]:
    """Per unit, whether its (layer, map, position) fires (> 0) in each image."""
    from ._layers import layer_outputs

    acts, _ = layer_outputs(model, images, [layer])
    a = acts[layer]
    return {u: (a[:, u.channel, u.position[0], u.position[1]] > 0).tolist() for u in units}


def _partners(i: int, n: int, k: int, fires: list[bool]) -> list[int]:
    """``k`` other images for image ``i``'s chance pool: the next ones in which the unit fires, then the next."""
    order = [(i + d) % n for d in range(1, n)]
    return ([j for j in order if fires[j]] + [j for j in order if not fires[j]])[:k]


def randomization_checks(
    model: nn.Module,
    images: torch.Tensor,
    *,
    projection_layers: Sequence[str] = ("conv2", "conv5"),
    methods: Sequence[str] = ("deconvnet",),
    occlusion_targets: Sequence[int] | None = None,
    occlusion: dict | None = None,
    reinit: Callable[[str, nn.Module], None] | None = None,
    config: dict | None = None,
    seed: int = 0,
    steps: Sequence[str] | None = None,
    independent: bool = True,
    partners: int = 2,
    progress: Callable[[str], None] | None = None,
) -> SanityResult:
    """Cascading and independent randomisation (Adebayo §4.1) of a trained model, measured on fixed pictures
    against their chance level (module docstring).

    Args:
        model: the trained model (not modified: copies are randomised).
        images: (N, 3, H, W) model inputs; N >= 8 gives a usable spread (each picture is one sample).
        projection_layers: for each, the strongest unit of each image in the trained model is projected at every
            step.
        methods: how the units are projected (``"deconvnet"``, ``"guided"``, ``"gradient"``; see
            :func:`~convscope.analysis.deconv_project`): one kind of picture per layer and method.
        occlusion_targets: class per image for the occlusion probability maps (None: no occlusion check).
        occlusion: keyword arguments of :func:`occlusion_map` (patch, stride, fill, layer ...).
        reinit: how a layer is re-initialised (default :func:`default_reinit` of ``config``: the run's own init).
        seed: seed of the random weights.
        steps: the cascade's layers, top first (default every conv and linear layer, output to input).
        independent: also randomise each layer alone.
        partners: other images whose projection of the same unit sets each picture's chance level (each costs
            one more projection per picture and step).

    Returns:
        :class:`SanityResult`; the cascade's first row is the trained model itself (similarity 1; its chance
        level is the trained pictures' similarity to each other).
    """
    reinit = reinit or default_reinit(model, config)
    order = list(steps) if steps is not None else list(reversed(parametrized_layers(model)))  # fc8, ... conv1
    units = {layer: strongest_units(model, images, layer) for layer in projection_layers}
    occ = dict(occlusion or {})

    def pictures(m: nn.Module):
        return picture_set(m, images, units, methods=methods, partners=partners,
                           occlusion_targets=occlusion_targets, occlusion=occ)

    def compared(step: str, randomized: list[str], got: tuple) -> dict[str, dict]:
        now, pools = got
        return {k: similarity(step, randomized, trained[k], now[k], pools[k]).summary() for k in trained}

    torch.manual_seed(seed)
    trained, trained_pools = pictures(model)
    kinds = list(trained)
    cascade = {k: [row] for k, row in compared("trained", [], (trained, trained_pools)).items()}
    shown = {k: [trained[k]] for k in kinds}
    for i, alias in enumerate(order):
        if progress:
            progress(f"cascade: randomising {alias}")
        torch.manual_seed(seed + i)
        now = pictures(randomized_copy(model, order[:i + 1], reinit))
        for k, row in compared(f"up to {alias}", order[:i + 1], now).items():
            cascade[k].append(row)
            shown[k].append(now[0][k])
    alone = {k: [] for k in kinds}
    for alias in order if independent else []:
        if progress:
            progress(f"independent: randomising {alias}")
        for k, row in compared(alias, [alias], pictures(randomized_copy(model, [alias], reinit))).items():
            alone[k].append(row)
    return SanityResult(order, cascade, alone, shown)


def _at_chance(row: dict, trained: dict) -> bool:
    """Within two standard errors of the chance level, or less than a tenth of what the trained pictures score
    above it (a consistent +0.01 is no evidence); also when no living picture is left to compare."""
    n = row.get("alive", 0)
    if not n or math.isnan(row.get("above_chance_mean", math.nan)):
        return True
    spread = row["above_chance_std"] if n > 1 and not math.isnan(row["above_chance_std"]) else 0.0
    return row["above_chance_mean"] <= max(2 * spread / math.sqrt(n), 0.1 * trained["above_chance_mean"])


def plain_words(kind: str, cascade: list[dict]) -> str:
    """One sentence per picture kind, in terms of the chance level: how far above chance the pictures stay once
    every layer is random, how many died, and from which step on they are at chance (within two standard errors
    over the pictures, or under a tenth of the trained pictures' score above chance)."""
    first, last = cascade[0], cascade[-1]
    if "above_chance_mean" not in last:  # a record written before the chance level existed
        return (f"{kind}: after every layer is randomised, rank correlation with the trained model's pictures is "
                f"{last['spearman_mean']:.2f} (no chance level recorded; rerun convscope sanity).")
    text = (f"{kind}: the trained pictures are {first['above_chance_mean']:.2f} above chance (chance level "
            f"{first['spearman_chance']:.2f}: {_chance_words(kind)}).")
    if not last.get("alive"):
        text += f" With every layer randomised all {last['n']} pictures are blank ({_blank_words(kind)})."
    else:
        text += (f" With every layer randomised they are {_signed(last['above_chance_mean'])} {_spread(last)} "
                 f"above chance (rank correlation {last['spearman_mean']:.2f} against a chance level of "
                 f"{last['spearman_chance']:.2f}, over {last['alive']} of {last['n']} pictures).")
        dead = last["n"] - last["alive"]
        if dead:
            text += f" {dead} of {last['n']} are blank then ({_blank_words(kind)}; left out of the score)."
    reached = next((row for row in cascade[1:] if _at_chance(row, first)), None)
    if reached is None:
        return text + (" They never fall to chance: these pictures keep something of the image that does not "
                       "depend on the learned weights.")
    return text + (f" They are at chance (within two standard errors, or under a tenth of the trained score) once "
                   f"layers down to {reached['randomized'][-1]} are random: they depend on what was learned.")


def _chance_words(kind: str) -> str:
    return "the maps of the other images" if kind == "occlusion" else "the same unit's pictures in other images"


def _blank_words(kind: str) -> str:
    return "the map is flat: no occluder position changes the class score" if kind == "occlusion" else \
        "the unit no longer fires"


def _spread(row: dict) -> str:
    """``± sd`` over the living pictures; one picture has no spread."""
    return f"± {row['above_chance_std']:.2f}" if row.get("alive", 0) > 1 else "(one picture: no spread)"


def _signed(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:+.2f}"
