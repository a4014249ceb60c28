"""A model to look inside: a convscope run (runs), a torchvision/timm model (zoo), an ONNX file (onnx_models)."""
