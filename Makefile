# The README's two commands, `make test` and `make lab`, do all set-up themselves:
# they create .venv with `python3 -m venv` and install the package with its dev
# extras whenever pyproject.toml is newer than the last install.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ASSIGNMENTS := $(notdir $(wildcard solutions/*))

# nbgrader runs `alembic` as a program: the environment's bin/ must be on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: test lab release demo bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## test: every check, notebooks in fast mode (unit tests, doctests, nbval, nbgrader end to end)
test: $(INSTALLED)
	DQN_FAST=1 $(BIN)/python -m pytest

## lab: JupyterLab on the student notebooks (LAB_ARGS="--port 9999" to add options)
# JupyterLab refuses to start as root (containers, cloud machines) without --allow-root.
lab: $(INSTALLED)
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

## release: regenerate notebooks/ from solutions/ (never edit notebooks/ by hand)
release: $(INSTALLED)
	$(foreach assignment,$(ASSIGNMENTS),$(BIN)/nbgrader generate_assignment $(assignment) --force &&) true
	rm -f gradebook.db

## demo: record a game of Breakout to videos/demo.mp4
demo: $(INSTALLED)
	$(BIN)/python -m dqn_helpers record --output videos/demo.mp4

## bench: training speed (ours against the naive tutorial loop) and replay memory at 1M transitions, as JSON
bench: $(INSTALLED)
	$(BIN)/python benchmarks/train_speed.py --impl both --steps 4000
	$(BIN)/python benchmarks/replay_memory.py --capacity 1000000

clean:
	rm -rf $(VENV) gradebook.db submitted autograded feedback
