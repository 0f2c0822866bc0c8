# The one place the torch pin lives: it is installed before anything else so that pip
# takes the local CPU wheel instead of pulling several GB of CUDA packages.
TORCH_PIN ?= torch==2.13.0
PYTHON ?= python3
# `make setup` is idempotent: the stamp records what was installed and from which pyproject.
SETUP_STAMP := .setup.stamp

.PHONY: setup train study test test-fast lint clean-stamp

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml Makefile
	@$(PYTHON) -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$(TORCH_PIN)'.split('==')[1] else 1)" 2>/dev/null \
		|| $(PYTHON) -m pip install "$(TORCH_PIN)"
	$(PYTHON) -m pip install -e ".[dev]"
	@touch $(SETUP_STAMP)

train: setup
	$(PYTHON) -m cnnlab.verbs.fetch fashion_mnist
	$(PYTHON) train.py experiment=quickstart

# The comparison of every zoo model on both datasets + ablations, and its report in docs/study
# (conf/study.yaml; about an hour on an idle 2-core CPU with native bf16). Re-running resumes.
# Options as key=value: make study ARGS="dry_run=true".
study: setup
	$(PYTHON) -m cnnlab study $(ARGS)

test: setup
	$(PYTHON) -m pytest

# The inner loop: unit layers only (no end-to-end processes, no slow real-data runs).
test-fast: setup
	$(PYTHON) -m pytest --ignore=tests/e2e -m "not slow"

lint: setup
	$(PYTHON) -m ruff check .
