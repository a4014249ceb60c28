"""A small model registry: name -> builder. Duplicate names are an error (torchvision ``_api.py`` shape)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..util.errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


class UnknownModelError(UserError, KeyError):
    """Raised for a model name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class ModelOptionError(UserError, ValueError):
    """A model option with a value the builder cannot use (the message names the option and what it must be)."""


class UnknownOptionError(ModelOptionError, TypeError):
    """An option the builder does not take (the message lists the valid ones)."""


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its own function name."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"An entry is already registered under the name '{name}'.")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def model_accepts(name: str, option: str) -> bool:
    """Whether the registered builder ``name`` takes ``option`` (False for an unknown name)."""
    import inspect

    return name in _MODELS and option in inspect.signature(_MODELS[name]).parameters


def get_model(name: str, num_classes: int | None = None, **options) -> nn.Module:
    """Build a registered model: ``get_model("zfnet", num_classes=10, width=0.5)`` (None = the builder's default).

    Raises:
        UnknownModelError: unknown name (the message lists the valid ones).
        UnknownOptionError: an option the builder does not accept (the message lists the valid ones); a TypeError.
        ModelOptionError: an option of the wrong type (against the builder's default) or value; a ValueError.
    """
    if name not in _MODELS:
        raise UnknownModelError(f"unknown model '{name}'; available: {', '.join(list_models())}")
    import inspect

    builder = _MODELS[name]
    params = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        bad = sorted(set(options) - set(params))
        if bad:
            valid = ", ".join(p for p in params if p != "num_classes")
            raise UnknownOptionError(f"model '{name}' has no option {', '.join(map(repr, bad))}; valid options: "
                                     f"{valid}")
    for key, value in options.items():
        default = params[key].default if key in params else None
        kinds = {bool: (bool,), int: (int,), float: (int, float)}.get(type(default))
        if kinds and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            raise ModelOptionError(f"model '{name}' option {key}={value!r}: expected {type(default).__name__} "
                                   f"(like the default {default!r})")
    if num_classes is not None:
        options["num_classes"] = num_classes
    return builder(**options)
