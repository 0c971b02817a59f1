"""Shared test settings: every notebook and helper runs in fast mode under pytest."""

import os
from pathlib import Path

# Before any kernel starts: nbval's and nbgrader's kernels inherit the environment.
os.environ.setdefault("DQN_FAST", "1")

REPO = Path(__file__).resolve().parent.parent

# The fixture submissions are hand-ins to grade, some broken on purpose: nbval must not run them.
collect_ignore_glob = ["submissions/*/*/*/*.ipynb"]
