# The two commands a newcomer needs: `make demo` (deploy the default model to a local simulated 3-Pi fleet and print
# the fleet report) and `make test` (every test: lint, unit, Molecule, end-to-end fleet). Everything else is a step.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIS ?= 3
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Molecule and ansible-runner start ansible-playbook from PATH: it must be the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test setup engine fleet fleet-down lint unit molecule fleet-test arm64-check benchmark clean dfc-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[compile,app,dev]'
	touch $@

setup: $(VENV)/.installed

# Hailo's Dataflow Compiler in its own venv (it wants Python <= 3.10 and numpy<2; docs/HEF_COMPAT.md), from the wheel
# the user downloads from Hailo's Developer Zone: make dfc-venv DFC_WHEEL=.../hailo_dataflow_compiler-3.33.0-...whl
# Then point model_dfc_python / HAILO_PIPELINE_DFC_PYTHON at $(DFC_VENV)/bin/python.
DFC_PYTHON ?= python3.10
DFC_VENV ?= .venv-dfc
dfc-venv:
	@test -n "$(DFC_WHEEL)" || { echo "DFC_WHEEL=path/to/hailo_dataflow_compiler-*.whl is required"; exit 2; }
	$(DFC_PYTHON) -m venv $(DFC_VENV)
	$(DFC_VENV)/bin/pip install --quiet "$(DFC_WHEEL)"
	PYTHONPATH=$(CURDIR) $(DFC_VENV)/bin/python -m compile.dfc_stage --version

# The docker engine and the Pi images the simulated fleet and Molecule run on.
engine: setup
	$(BIN)/python -m simfleet engine
	$(BIN)/python -m simfleet images

fleet: engine
	$(BIN)/python -m simfleet up --pis $(PIS)

fleet-down: setup
	$(BIN)/python -m simfleet down

demo: fleet
	$(BIN)/ansible-playbook -i inventory/local site.yml

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint .
	$(BIN)/ansible-lint --profile production

unit: setup
	$(BIN)/pytest -m "not fleet" -n auto

molecule: engine
	$(BIN)/molecule test --all

fleet-test: engine
	$(BIN)/pytest -m fleet --durations=0

# The aarch64 releases a Pi 5 gets, served in arm64 Debian trees under qemu (README, "The aarch64 check").
# ARM64_RELEASES=trixie checks one Pi OS release; `make test` checks both (the README says why that fits CI).
ARM64_RELEASES ?= bookworm trixie
arm64-check: setup
	$(BIN)/python -m simfleet arm64-check $(foreach release,$(ARM64_RELEASES),--release $(release))

test: lint unit molecule fleet-test
	$(MAKE) arm64-check

benchmark: setup
	$(BIN)/python scripts/benchmark_infer.py

clean: fleet-down
	rm -rf build reports
