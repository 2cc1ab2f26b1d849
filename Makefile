# Two commands for a newcomer: `make demo` (the main job) and `make test` (the whole suite).
# Both create ./.venv and install the project into it.  GPU users: install PyTorch's CUDA build into
# .venv first (or set TORCH_SPEC), the Makefile only installs torch when none is importable.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
# torchvision pinned to the release of TORCH_SPEC, so installing the metrics extra never changes torch
TORCHVISION_SPEC ?= torchvision==0.28.0

.PHONY: venv demo test lint typecheck unit benchmarks-smoke gpu-check gpu-check-dry mutation clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,metrics]" "$(TORCHVISION_SPEC)"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/iddpm train

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(PY) -m mypy  # strict, on the files listed in pyproject.toml (library, test toolkit, property helpers)

unit: venv
	$(PY) -m pytest -q

benchmarks-smoke: venv
	$(PY) -m pytest -q benchmarks --benchmark-disable

# The prepared device check (benchmarks/device_check.sh, docs/performance.md "Device check"): on a GPU
# machine whose python3 already has torch with CUDA and the test packages; installs nothing, so no venv.
GPU_CHECK_PYTHON ?= python3
gpu-check:
	PYTHON=$(GPU_CHECK_PYTHON) bash benchmarks/device_check.sh

# The same script on the CPU with tiny configurations (CI runs it, so the script cannot rot).
GPU_CHECK_DRY_OUT ?= gpu-check-dry-out
gpu-check-dry: venv
	OUT=$(GPU_CHECK_DRY_OUT) IDDPM_DEVICE_DRY_RUN=1 PYTHON=$(PY) bash benchmarks/device_check.sh --overwrite

test: lint typecheck unit benchmarks-smoke gpu-check-dry

# Mutation testing (not part of `make test` or CI): mutmut over impl/diffusion and impl/sampling against
# `pytest properties/`, on a seeded random sample of the mutants (about 30 minutes on two cores); prints
# the score.  MUTATION_SAMPLE and MUTATION_SEED choose the sample; docs/testing.md records the last score.
MUTATION_SAMPLE ?= 300
MUTATION_SEED ?= 20260101
mutation: venv
	$(PY) -m pip install -q -e ".[dev,mutation]"
	env -u PYTHONPATH CI=true OMP_NUM_THREADS=1 $(PY) tools/mutation_sample.py \
		--sample $(MUTATION_SAMPLE) --seed $(MUTATION_SEED)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis $(GPU_CHECK_DRY_OUT) mutants
