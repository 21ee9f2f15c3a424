# gankd: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gankd-installed
PROFILE ?=
PYTEST_ARGS ?=

.PHONY: setup run test lab strip bench report

setup: $(STAMP)

# A fresh virtual environment with the pinned requirements and this package (editable).
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	# JupyterLab saves widget state with the notebook, so a reopened explorer shows its last grid, not an error
	mkdir -p $(VENV)/share/jupyter/lab/settings
	printf '%s\n' '{"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": true}}' \
	  > $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

# Every notebook top to bottom (default profile: full with CUDA, else quick). full writes to results/ (the
# committed record), quick and smoke to results/quick/ and results/smoke/: executed copies, chapters, REPORT.md.
run: setup
	$(PY) -m gankd_utils run $(if $(PROFILE),--profile $(PROFILE))

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

# Strip outputs from the notebooks before committing (keeps the papermill `parameters` tag).
strip: setup
	$(VENV)/bin/nbstripout notebooks/*.ipynb

# REPORT.md from what the notebooks saved (notebooks 06 and 07 also write it), for PROFILE as make run has it
report: setup
	$(PY) -m gankd_utils report $(if $(PROFILE),--profile $(PROFILE))

bench: setup
	$(PY) benchmarks/generator_speed.py
	$(PY) benchmarks/compress_speed.py
