"""Shared test settings: every notebook and helper runs in fast mode under pytest."""

import os
import sys
from pathlib import Path

import pytest

# Before any kernel starts: nbval's and nbgrader's kernels inherit the environment.
os.environ.setdefault("DQN_FAST", "1")

REPO = Path(__file__).resolve().parent.parent

from dqn_helpers.instructor.sandbox import sandbox_problem  # noqa: E402  (after DQN_FAST is set)

# Grading runs every kernel in the sandbox where it can run (`make test` installs bubblewrap);
# elsewhere the grading tests pass --no-sandbox and the sandbox's own tests skip, saying why.
SANDBOX_PROBLEM = sandbox_problem()
SANDBOX = [] if SANDBOX_PROBLEM is None else ["--no-sandbox"]


def grade_command(course: Path, *options: str) -> list[str]:
    """``python -m dqn_helpers grade`` on a course folder as ``make grade`` runs it, without a progress bar."""
    return [sys.executable, "-m", "dqn_helpers", "grade", "--course", str(course), "--no-progress", *SANDBOX, *options]


# The fixture submissions are hand-ins to grade, some broken on purpose: nbval must not run them.
collect_ignore_glob = ["submissions/*/*/*/*.ipynb"]


# `make test` runs two pytest workers, each taking whole files in collection order: the longest
# files go first, so that no worker is left alone with a long one at the end. Seconds of each
# file run alone (`--durations=0` on a clean clone, summed per file): grading 213, bug catalogue
# 171, course 133, training notebook 71, package 63, benchmarks 60, training 43, exchange 39,
# records 32, browser 24. Files not named here keep their order, after these.
LONGEST_FIRST = [
    "tests/test_grading.py",
    "tests/test_bug_catalogue.py",
    "tests/test_course.py",
    "tests/test_training_notebook.py",
    "tests/test_package.py",
    "tests/test_benchmarks.py",
    "tests/test_training.py",
    "tests/test_exchange.py",
    "tests/test_records.py",
    "tests/test_browser.py",
]


def pytest_collection_modifyitems(items: list) -> None:
    """Run the longest test files first (a stable sort: each file's tests keep their order)."""
    if missing := [path for path in LONGEST_FIRST if not (REPO / path).is_file()]:
        raise pytest.UsageError(f"tests/conftest.py's LONGEST_FIRST names files that do not exist: {missing}")
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
