# The README's two commands, `make test` and `make lab`, do all set-up themselves:
# they create .venv with `python3 -m venv` and install the package with its dev
# extras whenever pyproject.toml is newer than the last install.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Folders of solutions/ that hold a notebook (running notebook 05 also leaves solutions/runs/).
ASSIGNMENTS := $(notdir $(patsubst %/,%,$(dir $(wildcard solutions/*/*.ipynb))))

# nbgrader runs `alembic` as a program: the environment's bin/ must be on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: test test-fast test-catalogue lint browser sandbox lab release student-release grade feedback backup-grades erase-grades demo bench reference ship clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## test: every check, notebooks in fast mode (lint, unit tests, doctests, nbval, nbgrader end to end, JupyterLab in Chromium)
# Two pytest workers (pytest-xdist), one per core here: alone, pytest keeps both cores busy only
# while it grades. Each test file runs whole on one worker (its module fixtures are built once);
# tests/conftest.py hands out the longest files first. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: $(INSTALLED) lint browser sandbox
	DQN_FAST=1 $(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

## test-fast: the edit-run loop: unit tests, doctests and the notebooks' checks; no nbgrader, browser, training or install
FAST_TIER := not notebooks and not browser and not install and not training and not slow
test-fast: $(INSTALLED) lint
	DQN_FAST=1 $(BIN)/python -m pytest tests dqn_helpers -m "$(FAST_TIER)"

## test-catalogue: every mistake of the bug catalogue graded end to end by nbgrader in the sandbox (make test grades one per notebook)
test-catalogue: $(INSTALLED) sandbox
	DQN_FAST=1 DQN_CATALOGUE=all $(BIN)/python -m pytest tests/test_bug_catalogue.py -k loses_its_points

## lint: ruff's linter and formatter, as .pre-commit-config.yaml runs them (`ruff format .` fixes the layout)
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## browser: Debian's chromium for tests/test_browser.py, installed with apt-get when missing
# Playwright drives /usr/bin/chromium; it cannot download browsers of its own here. Where apt-get
# cannot install it (no apt-get, no root nor password-less sudo, no network), make test goes on
# and tests/test_browser.py is skipped with the reason.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
browser:
	@test -x $(CHROMIUM) || { command -v apt-get > /dev/null \
		&& echo "Installing Debian's chromium with apt-get for tests/test_browser.py" \
		&& $(SUDO) apt-get update -qq \
		&& $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium > /dev/null; } \
		|| echo "Could not install chromium with apt-get: tests/test_browser.py will be skipped and say why"

## sandbox: Debian's bubblewrap, the sandbox of every graded kernel, installed with apt-get when missing
# Without it `grade` refuses (unless --no-sandbox) and the sandbox's tests are skipped with the reason.
BWRAP := /usr/bin/bwrap
sandbox:
	@test -x $(BWRAP) || { command -v apt-get > /dev/null \
		&& echo "Installing Debian's bubblewrap with apt-get: the sandbox of graded kernels" \
		&& $(SUDO) apt-get update -qq \
		&& $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap > /dev/null; } \
		|| echo "Could not install bubblewrap with apt-get: grading needs --no-sandbox, and the sandbox's tests will be skipped"

## lab: JupyterLab on the student notebooks (LAB_ARGS="--port 9999" to add options)
# JupyterLab refuses to start as root (containers, cloud machines) without --allow-root.
# tests/test_browser.py starts JupyterLab with these same options (see _lab_command there).
lab: $(INSTALLED)
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

## release: regenerate notebooks/ from solutions/ (never edit notebooks/ by hand); the gradebook keeps every grade
# nbgrader updates the assignments in gradebook.db in place, and refuses (saying why) to add or
# remove a graded cell of a notebook that has submissions.
release: $(INSTALLED)
	$(foreach assignment,$(ASSIGNMENTS),$(BIN)/nbgrader generate_assignment $(assignment) --force &&) true

## student-release: what students receive, without solutions or instructor tools: dist/dqn-course-student/ and its .zip
student-release: $(INSTALLED)
	$(BIN)/python -m dqn_helpers.instructor.distribution --output dist

## grade: autograde every submission in submitted/ (GRADE_ARGS="--jobs 4"); scores in grading/grades.csv
grade: $(INSTALLED) sandbox
	$(BIN)/python -m dqn_helpers grade $(GRADE_ARGS)

## feedback: feedback/<student>/<assignment>/*.html for every graded submission, hidden tests cut out, ready to release
# One nbgrader process for every graded assignment ("*" matches autograded/<student>/<assignment>/).
feedback: $(INSTALLED)
	$(if $(wildcard autograded/*/*/*.ipynb),$(BIN)/nbgrader generate_feedback "*",true)

## backup-grades: zip gradebook.db, submitted/, autograded/, feedback/ and grading/ into backups/grades-<time>.zip
backup-grades: $(INSTALLED)
	$(BIN)/python -m dqn_helpers backup-grades

## erase-grades: the one command that deletes grades and hand-ins, after writing and checking the backup above
erase-grades: $(INSTALLED)
	$(BIN)/python -m dqn_helpers erase-grades

## demo: the reference agent plays a game of Breakout, recorded to videos/demo.mp4
demo: $(INSTALLED)
	$(BIN)/python -m dqn_helpers record --weights reference --output videos/demo.mp4

## bench: training speed (ours, notebook 05's loop, the naive tutorial loop; the update along each compute path), replay memory at 1M transitions and a checkpoint's size, as JSON
bench: $(INSTALLED)
	$(BIN)/python benchmarks/train_speed.py --impl both --steps 4000
	$(BIN)/python benchmarks/train_speed.py --impl updates
	$(BIN)/python benchmarks/replay_memory.py --capacity 1000000
	$(BIN)/python benchmarks/checkpoint_size.py
	$(BIN)/python benchmarks/agent_behaviour.py

## reference: train the reference agent (3,000,000 agent steps planned; the shipped run stopped at 2,378,072 after 2.9 hours on 2 cores; resumes from REFERENCE_DIR's checkpoint)
# The settings are the shipped run's own record: its config.json reproduces it.
REFERENCE_DIR ?= runs/reference
reference: $(INSTALLED)
	$(BIN)/python -m dqn_helpers train --config dqn_helpers/reference/config.json --run-dir $(REFERENCE_DIR)

## ship: copy the reference run into dqn_helpers/reference, evaluate it (30 games) and record the README's clip
ship: $(INSTALLED)
	$(BIN)/python -m dqn_helpers export --run-dir $(REFERENCE_DIR) --output-dir dqn_helpers/reference
	$(BIN)/python -m dqn_helpers evaluate --weights reference --episodes 30 --no-progress \
		--output dqn_helpers/reference/evaluation.json
	# Seed 11's game: the agent digs a tunnel at agent step 667 (benchmarks/agent_behaviour.py).
	$(BIN)/python -m dqn_helpers record --weights reference --seed 11 --max-episode-frames 3600 --output docs/reference_breakout.gif

## clean: remove the environment, the tests' screenshots and dist/; grades, hand-ins and backups stay (see erase-grades)
clean:
	rm -rf $(VENV) tests/artifacts dist
