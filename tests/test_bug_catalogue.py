"""The classic-bug catalogue, graded: every mistake of tests/submissions/catalogue.py loses its points and is named.

Each mistake is a filled-in student notebook with that one mistake
(tests/submissions/mistakes/). Every hand-in's answer and test cells (the solution's
test cells, hidden tests included, as nbgrader puts them back) run in this process, one
after the other: which test cells fail, and what they say. One mistake per notebook
(catalogue.GRADED_END_TO_END) is also graded by `python -m dqn_helpers grade`, the real
nbgrader in the sandbox, in a copy of the course. `make test-catalogue` (DQN_CATALOGUE=all)
grades every hand-in that way: too long for `make test`, whose in-process runs of every
hand-in take about 2.5 minutes.
"""

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dqn_helpers.instructor.grading import WRITTEN_ANSWER_NOTE, graded_cells
from tests import cells
from tests.conftest import REPO, grade_command
from tests.submissions import build
from tests.submissions.catalogue import GRADED_END_TO_END, MISTAKES

pytestmark = pytest.mark.notebooks

HAND_INS = REPO / "tests" / "submissions" / "mistakes"
# DQN_CATALOGUE=all: every hand-in through nbgrader (`make test-catalogue`), not one per notebook.
END_TO_END = [
    mistake for mistake in MISTAKES if os.environ.get("DQN_CATALOGUE") == "all" or mistake.name in GRADED_END_TO_END
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """A copy of the course with every mistake graded."""
    course = tmp_path_factory.mktemp("catalogue")
    for assignment in sorted({mistake.assignment for mistake in END_TO_END}):
        shutil.copytree(
            REPO / "solutions" / assignment, course / "solutions" / assignment, ignore=shutil.ignore_patterns("runs")
        )
    shutil.copy(REPO / "nbgrader_config.py", course)
    for mistake in END_TO_END:
        shutil.copytree(HAND_INS / mistake.name, course / "submitted" / mistake.name)
    command = grade_command(course, "--jobs", "2")
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return course


def _errors(course: Path, mistake) -> dict[str, str]:
    """The error each test cell of the mistake's graded notebook shows, by grade_id ("" for none)."""
    path = course / "autograded" / mistake.name / mistake.assignment / f"{mistake.assignment}.ipynb"
    shown = {}
    for grade_id, cell in cells.code_cells(path).items():
        if cells.nbgrader(cell).get("grade"):
            errors = [f"{o['ename']}: {o['evalue']}" for o in cell["outputs"] if o["output_type"] == "error"]
            shown[grade_id] = "\n".join(errors)
    return shown


@pytest.mark.parametrize("mistake", END_TO_END, ids=lambda mistake: mistake.name)
def test_each_mistake_loses_its_points_and_is_named(graded, mistake):
    """Check that the mistake fails exactly its test cells, keeps every other point, and its check names it."""
    with open(graded / "grading" / "grades.csv") as file:
        rows = [
            row
            for row in csv.DictReader(file)
            if row["student"] == mistake.name and row["assignment"] == mistake.assignment
        ]
    assert rows and all(row["status"] == "graded" for row in rows), rows[:1]
    # Written answers wait for the instructor (0 points and a note until graded by hand): not the mistake's doing.
    failed = {
        row["test"]
        for row in rows
        if float(row["score"]) < float(row["max_score"]) and WRITTEN_ANSWER_NOTE not in row["note"]
    }
    assert failed == set(mistake.lost), f"{mistake.name}: failed {sorted(failed)}, expected {sorted(mistake.lost)}"
    errors = _errors(graded, mistake)
    named = [test for test in mistake.lost if mistake.message in errors[test]]
    assert named, f"{mistake.name}: no failing check says {mistake.message!r}; they say:\n" + "\n".join(
        f"{test}: {errors[test][:400]}" for test in mistake.lost
    )
    assert "Traceback" not in errors[named[0]]


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda mistake: mistake.name)
def test_each_mistake_fails_exactly_its_test_cells_when_its_cells_run(mistake):
    """Check that a hand-in's test cells, run in order with its answers, fail exactly the listed ones, naming the mistake."""
    notebook = json.loads((HAND_INS / mistake.name / mistake.assignment / f"{mistake.assignment}.ipynb").read_text())
    errors = cells.run_graded_cells(notebook, REPO / "solutions" / mistake.assignment / f"{mistake.assignment}.ipynb")
    failed = {test for test, error in errors.items() if error is not None}
    assert failed == set(mistake.lost), f"{mistake.name}: failed {sorted(failed)}, expected {sorted(mistake.lost)}"
    named = [test for test in mistake.lost if mistake.message in errors[test]]
    assert named, f"{mistake.name}: no failing check says {mistake.message!r}; they say:\n" + "\n".join(
        f"{test}: {errors[test][:400]}" for test in mistake.lost
    )


def test_the_filled_in_notebooks_pass_every_test_cell_when_their_cells_run():
    """Check the in-process runner itself: a correct hand-in of each assignment fails no test cell."""
    for assignment in sorted({mistake.assignment for mistake in MISTAKES}):
        errors = cells.run_graded_cells(
            build.filled_in(assignment), REPO / "solutions" / assignment / f"{assignment}.ipynb"
        )
        assert errors and all(error is None for error in errors.values()), (assignment, errors)


def test_every_classic_mistake_is_in_the_catalogue():
    """Check that each classic DQN mistake (its key words, one by one) has a hand-in, and so a row in docs/bug_catalogue.md."""
    bugs = " ".join(mistake.bug for mistake in MISTAKES)
    for key_words in [
        "`terminated` is ignored",
        "truncation is treated like a real terminal",
        "online network instead of the target",
        "Gradients reach the target network",
        "synced every step",
        "`max_a Q(s, a)` instead of `Q(s, a_taken)`",
        "max runs over the batch axis",
        "argmax runs over the batch axis",
        "(B, 1) - (B,)",
        "Double DQN picks the next action with the target network",
        "kept as float",
        "scaled to [0, 1] twice",
        "carries frames from the previous episode",
        "axes swapped",
        "never written",
        "across an episode boundary",
        "never settles at its floor",
        "same object as the online network",
        "Training starts before",
        "`state = next_state` missing",
    ]:
        assert key_words in bugs, f"no mistake in the catalogue for {key_words!r}"


def test_the_catalogue_doc_is_up_to_date():
    """Check that docs/bug_catalogue.md is what build.py writes from the catalogue."""
    assert build.CATALOGUE_DOC.read_text() == build.catalogue_table(), "run `python -m tests.submissions.build`"


def test_the_checks_doc_is_up_to_date():
    """Check that docs/checks.md lists every check as the checks and the catalogue stand (else run the build)."""
    assert build.CHECKS_DOC.read_text() == build.checks_table(), "run `python -m tests.submissions.build`"


def test_each_mistake_costs_its_own_exercise_only():
    """Check that every test cell a catalogued mistake fails belongs to the exercise where the mistake sits."""
    exercise_of = {(cell.assignment, cell.test): cell.exercise for cell in graded_cells(REPO / "solutions")}
    elsewhere = {
        mistake.name: sorted({exercise_of[mistake.assignment, test] for test in mistake.lost} - {mistake.exercise})
        for mistake in MISTAKES
    }
    assert {name: exercises for name, exercises in elsewhere.items() if exercises} == {}
