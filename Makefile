# mmkd: every target creates or reuses the local virtual environment first, so each one works on a
# fresh clone. Override the interpreter with `make PYTHON=/path/to/python3.11 ...`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
PYTEST_FLAGS ?= -q

.PHONY: venv test test-unit test-notebooks reproduce lab bench clean-reports

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[test,pretrained]"
	@rm -f $(VENV)/.installed-*
	@touch $@

## make test: unit tests, then every notebook top to bottom under nbval in its small (MMKD_FAST) setting
test: test-unit test-notebooks

test-unit: $(STAMP)
	$(PY) -m pytest $(PYTEST_FLAGS) tests

test-notebooks: $(STAMP)
	MMKD_FAST=1 $(PY) -m pytest $(PYTEST_FLAGS) --nbval-lax --nbval-current-env -p no:randomly $(NOTEBOOKS)

## make reproduce: run notebooks 00-05 with papermill (parameters from reproduce.yaml) and rebuild reports/
reproduce: $(STAMP)
	$(PY) -m mmkd_core.reproduce --config reproduce.yaml

## make bench: the efficiency benchmark (step times, throughput) into reports/
bench: $(STAMP)
	$(PY) -m mmkd_core.bench

## make lab: JupyterLab on the same environment
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/
