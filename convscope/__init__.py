"""convscope: train AlexNet and ZFNet as their papers describe, and look inside convnets as Zeiler & Fergus did."""
from .models import get_model, list_models, renorm_filters_

__version__ = "0.1.0"
__all__ = ["__version__", "get_model", "list_models", "renorm_filters_"]
