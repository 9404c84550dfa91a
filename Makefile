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

# ... then the easy-VQA section of reproduce.yaml (notebooks 02-04 and 06 on the installed easy-vqa package): copies
# with the section's parameters injected (build/, not tracked), run under nbval in the same small setting
test-notebooks: $(STAMP)
	MMKD_FAST=1 $(PY) -m pytest $(PYTEST_FLAGS) --nbval-lax --nbval-current-env -p no:randomly $(NOTEBOOKS)
	@rm -rf build/nbval/easy_vqa
	$(PY) -m mmkd_core.reproduce --prepare-section easy_vqa --out build/nbval/easy_vqa
	MMKD_FAST=1 $(PY) -m pytest $(PYTEST_FLAGS) --nbval-lax --nbval-current-env -p no:randomly build/nbval/easy_vqa

## make reproduce: run notebooks 00-07 with papermill (parameters from reproduce.yaml) and rebuild reports/.
## It prints its plan first (teachers to train or cached, notebooks, the last run's time per step); PLAN=1 prints
## only the plan. Finished student runs are cached in data/run-cache (keyed by everything that defines them, source
## included): FRESH=1 retrains the runs cached before this reproduction (runs it trains are still shared); ONLY="03 04" reruns only those notebooks and the summary notebook (05),
## leaving the other notebooks' reports as they are.
## CONFIG=reproduce.gpu.yaml runs the gpu profile (larger pools and models; for a machine with a GPU).
FRESH ?= 0
ONLY ?=
PLAN ?= 0
CONFIG ?= reproduce.yaml
reproduce: $(STAMP)
	MMKD_FRESH=$(FRESH) $(PY) -m mmkd_core.reproduce --config $(CONFIG) $(if $(ONLY),--only $(ONLY)) \
		$(if $(filter 1,$(PLAN)),--plan)

## make bench: the efficiency benchmark (step times, throughput); tables go to reports/_scratch/, as for every
## run outside make reproduce (python -m mmkd_core.bench --reports-dir DIR chooses another folder)
bench: $(STAMP)
	$(PY) -m mmkd_core.bench

## make lab: JupyterLab on the same environment; LAB_ARGS passes options (e.g. LAB_ARGS="--no-browser --port 8890")
# Jupyter refuses to run as root unless told --allow-root; containers and cloud notebooks often run as root,
# so the flag is added there, and only there.
LAB_ARGS ?=
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP)
	@echo "Starting JupyterLab on notebooks/; open the http://127.0.0.1:<port>/lab?token=... URL it prints below."
	$(VENV)/bin/jupyter lab notebooks/ $(ALLOW_ROOT) $(LAB_ARGS)
