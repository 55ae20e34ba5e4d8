# labkit — every target sets itself up on first use (python3 -m venv + pip install).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.labkit-installed
CHROMIUM ?= /usr/bin/chromium
# JupyterLab refuses to start as root unless told; containers often run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
export PYTHONHASHSEED := 0

.PHONY: demo replay test lint unit notebooks browser-deps bench lab clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## demo: a full simulated session, headless, with a report under runs/
demo: $(STAMP)
	$(PY) -m labkit.demo

## replay: re-execute the newest demo run on its recording; exit 0 when every output matches
replay: $(STAMP)
	@run=$$(ls -d runs/*/ 2>/dev/null | sort | tail -n 1); \
	if [ -z "$$run" ]; then echo "no run under runs/: make demo first" >&2; exit 2; fi; \
	$(PY) -m labkit.replay "$$run"

## lint: ruff over the package, tests and benchmarks
lint: $(STAMP)
	$(PY) -m ruff check labkit tests benchmarks

## test: the whole suite: lint, unit tests, notebooks under nbval, browser test
test: $(STAMP) browser-deps lint
	$(PY) -m pytest tests -q -p no:cacheprovider
	$(PY) -m pytest --nbval notebooks/ -q -p no:cacheprovider

browser-deps:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "chromium missing: run 'sudo apt-get install chromium'" >&2; exit 1; fi; \
	fi

## bench: speed and accuracy figures as JSON lines; every benchmark runs, a failed one is
## reported as {"bench": ..., "status": "failed", "reason": ...} and makes the exit status 1
bench: $(STAMP)
	@$(PY) benchmarks/run_all.py

## lab: JupyterLab on localhost only, with a token
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.open_browser=False $(ALLOW_ROOT) notebooks/

clean:
	rm -rf $(VENV) runs .pytest_cache
