"""Registered models: ``alexnet`` (2012 paper), ``alexnet_tv`` (torchvision layout), ``zfnet`` (ZF Fig. 3),
``cifar_convnet`` (cuda-convnet's small CIFAR net)."""
from ._registry import (ModelOptionError, UnknownModelError, UnknownOptionError, get_model, list_models,
                        model_accepts, register_model)
from .alexnet import alexnet, alexnet_tv
from .convnet import LRN, ConvNet, ConvSpec, layer_info
from .zfnet import cifar_convnet, renorm_filters_, zfnet

__all__ = ["ConvNet", "ConvSpec", "LRN", "ModelOptionError", "UnknownModelError", "UnknownOptionError", "alexnet",
           "alexnet_tv", "cifar_convnet", "get_model", "layer_info", "list_models", "model_accepts", "register_model",
           "renorm_filters_", "zfnet"]
