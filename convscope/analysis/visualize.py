"""Feature visualisation by regularised optimisation: an image that a feature map (or a class logit) responds to
most (Erhan et al. 2009; Simonyan et al. 2013 for class models; Yosinski et al. 2015; Olah et al. 2017, Distill
"Feature Visualization"), and DeepDream (Mordvintsev et al. 2015), which starts from a photo instead of noise.

Definition: maximise ``objective(layer(model(to_input(image(θ)))))`` over θ with Adam, where ``image(θ)`` is the
parameterisation the literature found necessary for natural-looking results: a Fourier-basis image whose
coefficients are scaled by 1/f (so that gradient steps do not favour high frequencies), its colour decorrelated
with the square root of an RGB covariance (ImageNet's, or a run's own PCA), and a sigmoid to the valid pixel range;
each step sees a randomly padded, jittered, scaled and slightly rotated view (transformation robustness). The
objective is a map's centre unit, the map's mean (both as in Lucid's ``channel``/``neuron``), or, on a 2-D output
such as logits, the unit itself. DeepDream maximises the mean squared activation of the whole layer. While
optimising, every ReLU module passes a rescue gradient to an image whose true ReLU gradient is all zero (Lucid's
redirected ReLU gradient), so that a map silent on the grey start still gets one.

Deviations: the views are drawn in one affine resampling per image (Lucid/Lucent chain pad, jitter, scale,
rotate, jitter), with a fixed output size. Each map has its own random stream (seeded from ``seed`` and the map
index), so a map's image does not depend on which maps share its batch.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import capture, eval_mode, model_device

OBJECTIVES = ("mean", "centre")
# ImageNet's RGB PCA in 0..1 pixel units (eigenvalues descending; column i = eigenvector i), as published with
# fb.resnet.torch's lighting augmentation (datasets/imagenet.lua), the same statistic as AlexNet §4.1's
IMAGENET_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
IMAGENET_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                                [-0.5808, -0.0045, -0.8140],
                                [-0.5836, -0.6948, 0.4203]])
FOURIER_SCALE = 4.0  # Lucid's "magic" divisor of the inverse FFT: keeps the initial image near grey
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))  # Lucid's standard_transforms: 0.9 ... 1.1
DEGREES = 10  # Lucid's standard_transforms: rotations of -10 ... 10 degrees


def color_basis(eigval: torch.Tensor = IMAGENET_EIGVAL, eigvec: torch.Tensor = IMAGENET_EIGVEC) -> torch.Tensor:
    """(3, 3) square root of an RGB covariance, ``V diag(sqrt(λ / λ_1))``: decorrelated colour -> RGB.

    Scaled so that its largest column has norm 1 (Lucid's ``color_correlation_normalized``), so the units of the
    eigenvalues (0..1 or 0..255 pixels) do not matter.
    """
    eigval = eigval.double().clamp_min(0)
    return (eigvec.double() * (eigval / eigval.max()).sqrt()).float()


def _frequency_scale(size: int, decay: float = 1.0) -> torch.Tensor:
    """(S, S//2+1) 1/f^decay scale of the rFFT coefficients (the DC term treated as frequency 1/S)."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    return 1.0 / (fy ** 2 + fx ** 2).sqrt().clamp_min(1.0 / size) ** decay


class FourierImage(nn.Module):
    """B images of S x S pixels parameterised by decorrelated-colour Fourier coefficients; ``forward()`` gives
    (B, 3, S, S) pixels in (0, 1). Each image's initial coefficients come from its own generator."""

    def __init__(self, generators: Sequence[torch.Generator], size: int, color: torch.Tensor, *,
                 decay: float = 1.0, init_std: float = 0.01):
        super().__init__()
        shape = (3, size, size // 2 + 1, 2)
        self.size = size
        self.spectrum = nn.Parameter(torch.stack([torch.randn(shape, generator=g) * init_std for g in generators]))
        self.register_buffer("scale", _frequency_scale(size, decay)[..., None])
        self.register_buffer("color", color.float())

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex((self.spectrum * self.scale).contiguous())
        decorrelated = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / FOURIER_SCALE
        rgb = torch.einsum("ij,bjhw->bihw", self.color, decorrelated)
        return torch.sigmoid(rgb)

    @torch.no_grad()
    def set_pixels_(self, pixels: torch.Tensor) -> "FourierImage":
        """Set the coefficients so that ``forward()`` returns ``pixels`` (B, 3, S, S) in [0, 1] (kept 1% inside)."""
        logits = torch.logit(pixels.float().clamp(0.01, 0.99))
        decorrelated = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.color), logits)
        spectrum = torch.fft.rfft2(decorrelated * FOURIER_SCALE, norm="ortho")
        self.spectrum.copy_(torch.view_as_real(spectrum) / self.scale)
        return self


def random_views(images: torch.Tensor, generators: Sequence[torch.Generator], *, pad: int = 12,
                 jitter: int = 8) -> torch.Tensor:
    """Each image (B, 3, S, S) padded by ``pad`` grey pixels, then shifted by up to ``jitter`` pixels, scaled by
    one of :data:`SCALES` and rotated by up to :data:`DEGREES`, drawn from its own generator; same size out."""
    b, _, s, _ = images.shape
    padded = F.pad(images, (pad,) * 4, value=0.5)
    thetas = []
    for g in generators:
        dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=g) * 2.0 / (s + 2 * pad)).tolist()
        scale = SCALES[int(torch.randint(len(SCALES), (1,), generator=g))]
        angle = math.radians(int(torch.randint(-DEGREES, DEGREES + 1, (1,), generator=g)))
        k = s / (s + 2 * pad) / scale  # output grid in the padded image's [-1, 1] coordinates
        thetas.append([[k * math.cos(angle), -k * math.sin(angle), dx],
                       [k * math.sin(angle), k * math.cos(angle), dy]])
    theta = torch.tensor(thetas, dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta, [b, 3, s, s], align_corners=False)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)


def map_objective(acts: torch.Tensor, maps: Sequence[int], objective: str) -> torch.Tensor:
    """Row b's value of feature map ``maps[b]``: its mean over positions, or its centre unit (``"centre"``);
    a 2-D output (B, C) (logits, a fully connected layer) gives the unit itself. -> (B,)"""
    rows = torch.arange(acts.shape[0], device=acts.device)
    picked = acts[rows, torch.as_tensor(list(maps), device=acts.device)]  # (B,) or (B, H, W)
    if picked.dim() == 1:
        return picked
    if objective == "centre":
        return picked[:, picked.shape[1] // 2, picked.shape[2] // 2]
    if objective == "mean":
        return picked.mean((1, 2))
    raise ValueError(f"unknown objective '{objective}'; choose from {', '.join(OBJECTIVES)}")


def _layer_output(model: nn.Module, layer: str | None, inputs: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` (None: the model's own output, e.g. logits) for ``inputs``, with its graph."""
    if layer is None:
        return model(inputs)
    with capture(model, [layer], detach=False) as acts:
        model(inputs)
    return acts[layer]


def _generators(seed: int, keys: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 1_000_003 + int(k)) for k in keys]


@dataclass(frozen=True)
class FeatureVisualization:
    """Optimised images and what they reach.

    ``images`` (M, 3, S, S) in [0, 1] (CPU); ``activation`` (M,) the objective on the final image as it is
    (no random view); ``peak`` (M,) the map's strongest unit on it (a logit: the unit), comparable with the
    top-9 atlas's activations at the same input size; ``trace`` (M, T) the objective every ``steps // T`` steps.
    """

    layer: str | None
    maps: list[int]
    objective: str
    steps: int
    seed: int
    images: torch.Tensor
    activation: torch.Tensor
    peak: torch.Tensor
    trace: torch.Tensor


class _RedirectedReLU(torch.autograd.Function):
    """ReLU whose gradient, for an image through which the true ReLU gradient is all zero (a map not yet firing
    anywhere), lets through the part that would raise negative inputs (Lucid's ``redirected_relu_grad``): the
    optimisation can start from a grey image on a map that is silent on it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        relu_grad = grad * (x > 0)
        redirected = grad.masked_fill((x < 0) & (grad > 0), 0)  # we minimise: grad > 0 would push x lower
        alive = relu_grad.flatten(1).abs().amax(1) > 0 if grad.dim() > 1 else relu_grad.abs() > 0
        return torch.where(alive.view(-1, *([1] * (grad.dim() - 1))), relu_grad, redirected)


@contextlib.contextmanager
def _redirected_relus(model: nn.Module):
    """Every ``nn.ReLU`` module of ``model`` computes :class:`_RedirectedReLU` in the block (an in-place one from a
    copy of its input taken before it runs); hooks removed on exit, also on error."""
    handles = []
    try:
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                kept = {}
                handles.append(module.register_forward_pre_hook(
                    lambda m, inp, kept=kept: kept.__setitem__("x", inp[0].clone() if m.inplace else inp[0])))
                handles.append(module.register_forward_hook(
                    lambda m, inp, out, kept=kept: _RedirectedReLU.apply(kept.pop("x"))))
        yield model
    finally:
        for h in handles:
            h.remove()


def _optimise(model, layer, param: FourierImage, score: Callable[[torch.Tensor], torch.Tensor], *, to_input,
              steps: int, lr: float, generators, transforms: bool, trace_every: int) -> torch.Tensor:
    """Adam on ``param`` maximising ``score(layer output of a random view)`` (B,) summed; -> trace (B, T)."""
    with _redirected_relus(model):
        return _adam(model, layer, param, score, to_input=to_input, steps=steps, lr=lr, generators=generators,
                     transforms=transforms, trace_every=trace_every)


def _adam(model, layer, param, score, *, to_input, steps, lr, generators, transforms, trace_every) -> torch.Tensor:
    opt = torch.optim.Adam(param.parameters(), lr=lr)
    trace = []
    for step in range(steps):
        pixels = param()
        view = random_views(pixels, generators) if transforms else pixels
        values = score(_layer_output(model, layer, to_input(view)))
        opt.zero_grad(set_to_none=True)
        (-values.sum()).backward()
        opt.step()
        if step % trace_every == 0 or step == steps - 1:
            trace.append(values.detach().float().cpu())
    return torch.stack(trace, 1) if trace else torch.zeros(param.spectrum.shape[0], 0)


def visualize_maps(model: nn.Module, layer: str | None, maps: Sequence[int], *,
                   to_input: Callable[[torch.Tensor], torch.Tensor], size: int = 224, steps: int = 256,
                   lr: float = 0.05, objective: str = "mean", seed: int = 0, color: torch.Tensor | None = None,
                   transforms: bool = True, decay: float = 1.0) -> FeatureVisualization:
    """One optimised image per feature map of ``layer`` (batched over ``maps``), Olah et al. 2017's recipe.

    ``to_input`` maps pixels (B, 3, S, S) in [0, 1] to the model's input (its normalisation). ``layer`` None
    optimises the model's output (class logits: Simonyan et al. 2013's class models). ``color`` is
    :func:`color_basis`'s matrix (default ImageNet's). The result is the same for a seed at a given torch thread
    count; each map's image does not depend on the other maps in the call.

    Example:
        >>> vis = visualize_maps(model, "features.12", [3, 7], to_input=normalize, size=128, steps=128)
        >>> vis.images.shape   # (2, 3, 128, 128)
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective '{objective}'; choose from {', '.join(OBJECTIVES)}")
    device = model_device(model)
    maps = [int(m) for m in maps]
    gens = _generators(seed, maps)
    param = FourierImage(gens, size, color if color is not None else color_basis(), decay=decay).to(device)
    score = lambda acts: map_objective(acts, maps, objective)  # noqa: E731
    with eval_mode(model), _frozen(model):
        trace = _optimise(model, layer, param, score, to_input=to_input, steps=steps, lr=lr, generators=gens,
                          transforms=transforms, trace_every=max(1, steps // 32))
        with torch.no_grad():
            images = param()
            acts = _layer_output(model, layer, to_input(images))
            activation = score(acts)
            peak = acts[torch.arange(len(maps)), maps]
            peak = peak.flatten(1).amax(1) if peak.dim() > 1 else peak
    return FeatureVisualization(layer=layer, maps=maps, objective=objective, steps=steps, seed=seed,
                                images=images.cpu(), activation=activation.cpu(), peak=peak.cpu(), trace=trace)


def deep_dream(model: nn.Module, layer: str | None, pixels: torch.Tensor, *,
               to_input: Callable[[torch.Tensor], torch.Tensor], steps: int = 64, lr: float = 0.02, seed: int = 0,
               color: torch.Tensor | None = None, transforms: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepDream (Mordvintsev et al. 2015; Microscope's "caricature"): photos ``pixels`` (B, 3, S, S) in [0, 1]
    changed to amplify what ``layer`` already sees in them, by maximising the layer's mean squared activation
    with :func:`visualize_maps`'s parameterisation and random views. -> (images (B, 3, S, S) in [0, 1],
    the objective before and after (2, B)).

    Example:
        >>> dreamt, (before, after) = deep_dream(model, "features.7", photo[None], to_input=normalize)
    """
    device = model_device(model)
    keys = list(range(pixels.shape[0]))
    gens = _generators(seed, keys)
    param = FourierImage(gens, pixels.shape[-1], color if color is not None else color_basis()).to(device)
    param.set_pixels_(pixels.to(device))
    score = lambda acts: acts.pow(2).flatten(1).mean(1)  # noqa: E731
    with eval_mode(model), _frozen(model):
        with torch.no_grad():
            before = score(_layer_output(model, layer, to_input(param())))
        _optimise(model, layer, param, score, to_input=to_input, steps=steps, lr=lr, generators=gens,
                  transforms=transforms, trace_every=max(1, steps))
        with torch.no_grad():
            images = param()
            after = score(_layer_output(model, layer, to_input(images)))
    return images.cpu(), torch.stack([before, after]).cpu()


class _frozen:
    """Turn off the model's parameter gradients for the block (only the image is optimised), then restore them."""

    def __init__(self, model: nn.Module):
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)


def map_count(model: nn.Module, layer: str | None, *, to_input: Callable[[torch.Tensor], torch.Tensor],
              size: int) -> int:
    """How many maps (or units) ``layer`` (None: the model's output) has at ``size`` x ``size`` input. Raises
    ValueError when its output is neither (B, C, H, W) nor (B, C), or the model does not take that size."""
    device = model_device(model)
    with torch.no_grad(), eval_mode(model):
        try:
            acts = _layer_output(model, layer, to_input(torch.full((1, 3, size, size), 0.5, device=device)))
        except RuntimeError as err:
            raise ValueError(f"the model does not take {size}x{size} images ({str(err).splitlines()[0]})") from None
    if acts.dim() not in (2, 4):
        raise ValueError(f"layer {layer} gives {acts.dim()}-D outputs; pick a conv map (B, C, H, W) or logits")
    return acts.shape[1]


@dataclass(frozen=True)
class VisualizationSanity:
    """The same maps optimised on a randomised network: its ``images`` (M, 3, S, S), their Spearman and SSIM
    against the trained network's (M,) and the chance level: the trained images of two different maps."""

    images: torch.Tensor
    spearman: torch.Tensor
    ssim: torch.Tensor
    chance_spearman: float
    chance_ssim: float


def visualization_sanity(model: nn.Module, vis: FeatureVisualization, *,
                         to_input: Callable[[torch.Tensor], torch.Tensor],
                         reinit: Callable[[str, nn.Module], None] | None = None, config: dict | None = None,
                         lr: float = 0.05, color: torch.Tensor | None = None, batch: int = 8) -> VisualizationSanity:
    """Adebayo et al. 2018's model randomisation applied to feature visualisation: every conv and linear layer of
    a copy of ``model`` re-initialised by ``reinit`` (seeded by ``vis.seed``), the same maps optimised on it with
    ``vis``'s settings from another seed's start (the same seed would share its initial noise and views), and each
    image compared with its trained twin (:func:`convscope.analysis.sanity.compare` on grey levels). Similarity
    near the chance level (two trained images of different maps) = the picture shows what was learned.

    Example:
        >>> check = visualization_sanity(model, vis, to_input=normalize)   # reinit: the run's init (``config``)
    """
    from .sanity import compare, default_reinit, parametrized_layers, randomized_copy

    reinit = reinit or default_reinit(model, config)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(vis.seed)
        random_net = randomized_copy(model, parametrized_layers(model), reinit)
    images = torch.cat([visualize_maps(random_net, vis.layer, vis.maps[s:s + batch], to_input=to_input,
                                       size=vis.images.shape[-1], steps=vis.steps, lr=lr, objective=vis.objective,
                                       seed=vis.seed + 1, color=color).images
                        for s in range(0, len(vis.maps), batch)])
    pairs = torch.tensor([compare(vis.images[i], images[i]) for i in range(len(vis.maps))]).view(-1, 2)
    chance = torch.tensor([compare(vis.images[i], vis.images[j]) for i in range(len(vis.maps))
                           for j in range(i + 1, len(vis.maps))]).view(-1, 2)
    chance = chance.mean(0) if len(chance) else torch.full((2,), math.nan)
    return VisualizationSanity(images=images, spearman=pairs[:, 0], ssim=pairs[:, 1],
                               chance_spearman=float(chance[0]), chance_ssim=float(chance[1]))
