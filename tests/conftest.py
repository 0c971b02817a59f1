"""Shared test settings: every notebook and helper runs in fast mode under pytest."""

import os
import sys
from pathlib import Path

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
