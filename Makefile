# convscope: set-up and the two main commands. Every target creates the virtual environment if it is missing.
PYTHON ?= python3
VENV ?= .venv
# torch/torchvision for the venv; override for your platform, e.g. make TORCH="torch torchvision" (pyproject needs >=2.4/>=0.19)
TORCH ?= torch==2.14.1 torchvision==0.29.1
# where they come from: without an NVIDIA GPU (no nvidia-smi) PyTorch's CPU wheel index, which leaves out the ~4 GB
# of CUDA libraries that PyPI's Linux torch brings; empty = the default index (PyPI). make TORCH_INDEX= forces PyPI.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,$(TORCH_CPU_INDEX))
# where the datasets live (imagenette2-160/, cifar10-jpeg/ ...); tests that need real data skip without it
CONVSCOPE_DATA ?= $(abspath ../shared/data)
export CONVSCOPE_DATA

.PHONY: venv demo demo-quick test test-all bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@if [ -z "$(TORCH_INDEX)" ]; then $(VENV)/bin/pip install -q $(TORCH); \
	elif $(VENV)/bin/python -c "import urllib.request as u; u.urlopen('$(TORCH_INDEX)/torch/', timeout=15)" 2>/dev/null; then \
	  echo "no NVIDIA GPU (nvidia-smi not found): the CPU build of torch from $(TORCH_INDEX)"; \
	  $(VENV)/bin/pip install -q --index-url $(TORCH_INDEX) $(TORCH); \
	else \
	  echo "no NVIDIA GPU, but $(TORCH_INDEX) is unreachable: torch from the default index instead (on Linux its CUDA build, ~6 GB installed)" >&2; \
	  $(VENV)/bin/pip install -q $(TORCH); \
	fi
	$(VENV)/bin/pip install -q -e . pytest pytest-timeout playwright scikit-image
	@# Captum is the tests' independent peer for deconvnet/occlusion; without it (offline) those checks skip
	$(VENV)/bin/pip install -q captum || echo "warning: captum not installed; its cross-check tests will skip" >&2
	@# timm: the tests also load one timm convnet (--model timm:NAME); without it that test skips
	$(VENV)/bin/pip install -q timm || echo "warning: timm not installed; its --model test will skip" >&2
	@# onnx: reads --model onnx:FILE.onnx (ONNX zoo AlexNet/CaffeNet/ZFNet); without it those tests skip
	$(VENV)/bin/pip install -q onnx || echo "warning: onnx not installed; the --model onnx: tests will skip" >&2
	@# pytest-xdist: make test runs on 2 processes (2 cores); without it the tests run in one
	$(VENV)/bin/pip install -q pytest-xdist || echo "warning: pytest-xdist not installed; tests run in one process" >&2
	touch $@

venv: $(VENV)/.installed

## demo: train a small ZFNet on Imagenette-160 (real ImageNet photos), inspect it, build the report
demo: venv
	$(VENV)/bin/convscope demo --download --data-root "$(CONVSCOPE_DATA)" --out runs/demo

## demo-quick: the same in a few hundred steps (CI-sized)
demo-quick: venv
	$(VENV)/bin/convscope demo --quick --download --data-root "$(CONVSCOPE_DATA)" --out runs/demo-quick

## test: the test suite (CPU, no network; real-data tests skip when CONVSCOPE_DATA is absent)
test: venv
	$(VENV)/bin/python -m pytest -m "not slow and not gpu" -q $$($(VENV)/bin/python -c "import xdist" 2>/dev/null && echo "-n 2")

test-all: venv
	$(VENV)/bin/python -m pytest -q

bench: venv
	$(VENV)/bin/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) runs .pytest_cache
