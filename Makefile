# The one place the torch pin lives: it is installed before anything else so that pip
# takes the local CPU wheel instead of pulling several GB of CUDA packages.
TORCH_PIN ?= torch==2.13.0
PYTHON ?= python3
# `make setup` is idempotent: the stamp records what was installed and from which pyproject.
SETUP_STAMP := .setup.stamp

.PHONY: setup train study test test-precision test-fast lint gpu-check gpu-pack clean-stamp

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml Makefile
	@$(PYTHON) -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$(TORCH_PIN)'.split('==')[1] else 1)" 2>/dev/null \
		|| $(PYTHON) -m pip install "$(TORCH_PIN)"
	$(PYTHON) -m pip install -e ".[dev]"
	@touch $(SETUP_STAMP)

train: setup
	$(PYTHON) -m cnnlab fetch fashion_mnist
	$(PYTHON) train.py experiment=quickstart

# The comparison of every zoo model on both datasets + ablations, and its report in docs/study
# (conf/study.yaml; about an hour on an idle 2-core CPU with native bf16). Re-running resumes.
# Options as key=value: make study ARGS="dry_run=true".
study: setup
	$(PYTHON) -m cnnlab study $(ARGS)

test: setup
	$(PYTHON) -m pytest

# The tests whose numbers depend on what `precision: auto` picks, with bf16 forced on: on an
# AVX2 machine (auto: fp32) this proves the bf16-mixed path of a bf16 CPU. CI runs it after `test`.
test-precision: setup
	CNNLAB_CPU_BF16=1 $(PYTHON) -m pytest -m precision

# The inner loop: unit layers only (no end-to-end processes, no slow real-data runs).
test-fast: setup
	$(PYTHON) -m pytest --ignore=tests/e2e -m "not slow"

lint: setup
	$(PYTHON) -m ruff check .

# On a CUDA machine (no `make setup` there: it installs nothing): GPU-marked tests and
# airbench94 time-to-94% with and without compile, one JSON (docs/machine-kinds.md).
# GPU_CHECK_ARGS=--dry-run runs its CPU-side parts anywhere.
GPU_CHECK_ARGS ?=
gpu-check:
	bash bench/gpu_check.sh $(GPU_CHECK_ARGS)

# Where pip and the data are: the wheels and CIFAR-10 parts the GPU machine needs.
gpu-pack: setup
	bash bench/gpu_check.sh --pack
