"""The nbgrader exchange, round trip, with the real command line and the course's configuration.

An instructor's course folder and a student's home share a local exchange folder, as
a JupyterHub's users share /srv/nbgrader/exchange: the instructor releases notebook 01,
the student fetches it, fills its answers and submits it a day after its due date, the
instructor collects it, grades it (``python -m dqn_helpers grade``, as ``make grade``),
generates and releases the feedback, and the student fetches that feedback. nbgrader
knows the student by the name of the user who runs it, as on a hub.
"""

from __future__ import annotations

import csv
import getpass
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

from nbgrader.api import Gradebook  # noqa: E402

from dqn_helpers.instructor.feedback import HIDDEN_NOTE  # noqa: E402
from dqn_helpers.instructor.grading import LATE_NOTE  # noqa: E402
from tests import cells  # noqa: E402
from tests.conftest import REPO, grade_command  # noqa: E402
from tests.test_course import _hidden_test_lines  # noqa: E402

pytestmark = pytest.mark.notebooks

ASSIGNMENT = "01_q_learning"
COURSE_ID = "dqn-breakout"
# The hub's configuration for every user (here the student's ~/.jupyter): the course and the exchange.
STUDENT_CONFIG = (
    'c = get_config()  # noqa: F821\nc.CourseDirectory.course_id = "{course}"\nc.Exchange.root = "{root}"\n'
)


def _run(where: Path, home: Path, *command: str) -> str:
    environment = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(command, cwd=where, env=environment, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{log}"
    return log


def _fill(fetched: Path, solution: Path) -> None:
    """Write the solution's answer cells into the fetched notebook, as a student who solved it would."""
    answers = {
        cells.nbgrader(cell)["grade_id"]: cell["source"]
        for cell in json.loads(solution.read_text())["cells"]
        if cells.nbgrader(cell).get("solution")
    }
    notebook = json.loads(fetched.read_text())
    for cell in notebook["cells"]:
        if cells.nbgrader(cell).get("solution"):
            cell["source"] = answers[cells.nbgrader(cell)["grade_id"]]
    fetched.write_text(json.dumps(notebook))


def test_release_fetch_submit_collect_grade_and_feedback_round_trip(tmp_path):
    """Check the whole round trip, a late hand-in's penalty, and feedback without the hidden tests."""
    course, student, exchange = tmp_path / "course", tmp_path / "student", tmp_path / "exchange"
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    # The course's own configuration, with the late-penalty policy the README shows.
    config = (REPO / "nbgrader_config.py").read_text() + '\nc.LateSubmissionPlugin.penalty_method = "zero"\n'
    (course / "nbgrader_config.py").write_text(config)
    (student / ".jupyter").mkdir(parents=True)
    (student / ".jupyter" / "nbgrader_config.py").write_text(STUDENT_CONFIG.format(course=COURSE_ID, root=exchange))
    exchange.mkdir()
    exchange.chmod(0o777)
    instructor = [sys.executable, "-m", "nbgrader"]
    on_exchange = f"--Exchange.root={exchange}"

    _run(course, course, *instructor, "generate_assignment", ASSIGNMENT, "--force")
    _run(course, course, *instructor, "db", "assignment", "add", ASSIGNMENT, "--duedate=2026-01-01 00:00:00 UTC")
    _run(course, course, *instructor, "release_assignment", ASSIGNMENT, on_exchange)
    listed = _run(student, student, *instructor, "list")
    assert f"{COURSE_ID} {ASSIGNMENT}" in listed

    _run(student, student, *instructor, "fetch_assignment", ASSIGNMENT)
    fetched = student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert fetched.read_text() == (course / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    _fill(fetched, REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    _run(student, student, *instructor, "submit", ASSIGNMENT)

    _run(course, course, *instructor, "collect", ASSIGNMENT, on_exchange)
    name = getpass.getuser()
    assert (course / "submitted" / name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text() == fetched.read_text()
    _run(course, course, *grade_command(course))
    with open(course / "grading" / "grades.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows and all(row["student"] == name and row["status"] == "graded" for row in rows)
    assert sum(float(row["score"]) for row in rows) == sum(float(row["max_score"]) for row in rows) == 10.0
    assert all(LATE_NOTE in row["note"] and "late penalty takes 10 points" in row["note"] for row in rows)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, name)
        assert submission.score == 10.0 and submission.late_submission_penalty == 10.0

    _run(course, course, *instructor, "generate_feedback", ASSIGNMENT)
    _run(course, course, *instructor, "release_feedback", ASSIGNMENT, on_exchange)
    _run(student, student, *instructor, "fetch_feedback", ASSIGNMENT)
    pages = list((student / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
    assert len(pages) == 1
    text = html.unescape(re.sub(r"<[^>]+>", "", pages[0].read_text()))
    # Every test passed, and the penalty of a hand-in after the due date takes all 10 points.
    assert text.count("Score: 1.0 / 1.0 (Top)") == 6 and text.count("Score: 2.0 / 2.0 (Top)") == 2
    assert "Late submission penalty (Score: -10.0)" in text and "Score: 0.0 / 10.0" in text
    assert text.count(HIDDEN_NOTE) == 7
    hidden, _ = _hidden_test_lines(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    assert hidden and [line for line in hidden if line in text] == []
