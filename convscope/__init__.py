"""convscope: train AlexNet and ZFNet as their papers describe, and look inside convnets as Zeiler & Fergus did."""
__version__ = "0.1.0"
__all__ = ["__version__", "get_model", "list_models", "renorm_filters_"]


def __getattr__(name: str):
    # the model API loads torch on first use, so that the command line starts (and refuses a busy folder) at once
    if name in ("get_model", "list_models", "renorm_filters_"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'convscope' has no attribute {name!r}")
