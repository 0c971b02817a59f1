"""Grading a class: every fixture submission of tests/submissions/ through `python -m dqn_helpers grade`.

The fixtures are one class of notebook 01 hand-ins, each broken in its own way
(tests/submissions/build.py writes them to tests/submissions/robustness/, whose
expected.json says what each must get).
They are graded together, two at a time, with the real nbgrader, kernels and
gradebook, in a temporary copy of the course.
"""

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from dqn_helpers.grading import graded_cells
from tests.conftest import REPO
from tests.submissions import build

pytestmark = pytest.mark.notebooks

SUBMISSIONS = REPO / "tests" / "submissions"
FIXTURES = SUBMISSIONS / "robustness"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
ASSIGNMENTS = ["00_setup", build.ASSIGNMENT]  # 00_setup: nobody handed it in
CELL_TIMEOUT = 30  # seconds: notebook 01's slowest cell takes about 1 s in fast mode (the set-up, 2 s)
MEMORY_LIMIT_GB = 4  # the memory hog fails at 4 GB; notebook 01 needs under 2 (no TensorFlow)
TESTS = [cell for cell in graded_cells(REPO / "solutions") if cell.assignment == build.ASSIGNMENT]


def _grade(course: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dqn_helpers", "grade", "--course", str(course), "--no-progress", *extra]
    return subprocess.run(command, capture_output=True, text=True)


def _rows(course: Path) -> list[dict]:
    with open(course / "grading" / "grades.csv") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of the course with every fixture graded; and the grade command's result."""
    course = tmp_path_factory.mktemp("class")
    for assignment in ASSIGNMENTS:
        shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    shutil.copy(REPO / "nbgrader_config.py", course)
    made = tmp_path_factory.mktemp("made")
    build.write(made, broken=True)  # the hand-ins that are not notebooks are not committed
    for student in EXPECTED:
        committed = FIXTURES / student
        shutil.copytree(committed if committed.is_dir() else made / "robustness" / student, course / "submitted" / student)
    return course, _grade(course, "--jobs", "2", "--cell-timeout", str(CELL_TIMEOUT), "--memory-limit-gb", str(MEMORY_LIMIT_GB))


def test_the_fixtures_are_what_build_writes(tmp_path):
    """Check that tests/submissions/ holds exactly what build.py writes (else run `python -m tests.submissions.build`)."""
    written = {path.relative_to(tmp_path) for path in build.write(tmp_path)}
    committed = {path.relative_to(SUBMISSIONS) for path in SUBMISSIONS.glob("*/*/*/*.ipynb")}
    assert written == committed
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (SUBMISSIONS / relative).read_bytes(), f"{relative} is out of date"
    made = {path.relative_to(tmp_path).parts[1] for path in build.write(tmp_path, broken=True) if "robustness" in path.parts}
    assert set(EXPECTED) == made


def test_grading_the_class_finishes_and_reports_everyone(graded):
    """Check that the batch survives every submission and writes a row per student and test cell."""
    course, result = graded
    assert result.returncode == 0, result.stderr
    rows = _rows(course)
    cells = graded_cells(course / "solutions")
    assert len(rows) == len(EXPECTED) * len(cells)
    assert {(row["student"], row["test"]) for row in rows} == {(s, cell.test) for s in EXPECTED for cell in cells}
    assert {row["status"] for row in rows if row["assignment"] == "00_setup"} == {"not submitted"}
    for student in EXPECTED:
        assert student in result.stdout, f"the summary leaves out {student}"


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_submission_gets_the_points_it_earned(graded, student):
    """Check every test cell's score, the status and the note of each fixture student."""
    course, _ = graded
    expected = EXPECTED[student]
    lost = {cell.test for cell in TESTS} if expected["lost"] == "all" else set(expected["lost"])
    rows = {row["test"]: row for row in _rows(course) if row["student"] == student and row["assignment"] == build.ASSIGNMENT}
    for cell in TESTS:
        row = rows[cell.test]
        assert float(row["max_score"]) == cell.points, f"{student}: {cell.test} is worth {cell.points}, not {row['max_score']}"
        earned = 0.0 if cell.test in lost else cell.points
        assert float(row["score"]) == earned, f"{student}: {cell.test} scored {row['score']}, expected {earned} ({row['note']})"
        assert row["status"] == expected["status"], f"{student}: {row['status']} ({row['note']})"
        assert expected["note"] in row["note"]
        assert bool(row["note"]) == bool(expected["note"]), f"{student}: unexpected note {row['note']!r}"


def test_the_gradebook_agrees_with_the_csv(graded):
    """Check that gradebook.db holds each graded student's total, as nbgrader's own tools will show it."""
    course, _ = graded
    totals = {}
    for row in _rows(course):
        if row["assignment"] == build.ASSIGNMENT:
            totals[row["student"]] = totals.get(row["student"], 0.0) + float(row["score"])
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student, total in totals.items():
            submission = gradebook.find_submission(build.ASSIGNMENT, student)
            assert submission.score == total, f"{student}: the gradebook says {submission.score}, the CSV {total}"
            assert submission.max_score == sum(cell.points for cell in TESTS)


def test_deleted_test_cells_are_put_back_and_graded(graded):
    """Check that nbgrader restored the test cells a student deleted, and ran them."""
    course, _ = graded
    notebook = json.loads((course / "autograded" / "tests_deleted" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb").read_text())
    restored = {cell["metadata"]["nbgrader"]["grade_id"]: cell for cell in notebook["cells"] if "was missing" in "".join(cell["source"])}
    assert set(restored) == {"td_targets_terminal", "q_learning_optimal_path"}
    assert any(output["output_type"] == "error" for output in restored["td_targets_terminal"]["outputs"])


@pytest.mark.parametrize(
    ("student", "grade_id", "error"),
    [
        ("memory_hog", "q_learning", "MemoryError"),  # the memory limit, not the cell timeout, stopped it
        ("endless_loop", "huber_loss", "KeyboardInterrupt"),  # the cell timeout interrupted it
        ("syntax_error", "epsilon_greedy", "SyntaxError"),
    ],
)
def test_a_broken_cell_fails_on_its_own(graded, student, grade_id, error):
    """Check that the broken answer cell shows its own error, and the set-up cell ran without one."""
    course, _ = graded
    notebook = json.loads((course / "autograded" / student / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb").read_text())
    errors = {
        cell["metadata"]["nbgrader"]["grade_id"]: [output["ename"] for output in cell["outputs"] if output["output_type"] == "error"]
        for cell in notebook["cells"] if cell["cell_type"] == "code" and "nbgrader" in cell["metadata"]
    }  # fmt: skip
    assert error in errors[grade_id], f"{student}: {grade_id} shows {errors[grade_id]}"
    assert errors["setup"] == []


def test_a_second_run_grades_only_what_changed(graded):
    """Check that grading again skips unchanged submissions and regrades a changed one."""
    course, _ = graded
    statuses = course / "grading" / build.ASSIGNMENT
    before = {path.name: path.stat().st_mtime_ns for path in statuses.glob("*.json")}
    shutil.copy(FIXTURES / "correct" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb", course / "submitted" / "syntax_error" / build.ASSIGNMENT)
    result = _grade(course, "--cell-timeout", str(CELL_TIMEOUT))
    assert result.returncode == 0, result.stderr
    after = {path.name: path.stat().st_mtime_ns for path in statuses.glob("*.json")}
    assert {name for name in after if after[name] != before[name]} == {"syntax_error.json"}
    rows = [row for row in _rows(course) if row["student"] == "syntax_error" and row["assignment"] == build.ASSIGNMENT]
    assert all(float(row["score"]) == float(row["max_score"]) for row in rows)


def _hold_at_start(notebook: Path, gate: Path, waiting: Path) -> None:
    """Put a first cell in a hand-in that says it started, then waits while ``gate`` exists."""
    content = json.loads(notebook.read_text())
    source = (
        "import pathlib, time\n"
        f"pathlib.Path({str(waiting)!r}).touch()\n"
        f"while pathlib.Path({str(gate)!r}).exists():\n"
        "    time.sleep(0.05)\n"
    )
    content["cells"].insert(0, {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source})
    notebook.write_text(json.dumps(content, indent=1))


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    """Check that Ctrl-C stops the batch with nothing half-recorded, and the next run grades only the rest."""
    course = tmp_path / "course"
    shutil.copytree(REPO / "solutions" / build.ASSIGNMENT, course / "solutions" / build.ASSIGNMENT)
    shutil.copy(REPO / "nbgrader_config.py", course)
    students = ["ada", "bob"]  # graded in this order, one at a time
    for student in students:
        shutil.copytree(FIXTURES / "correct", course / "submitted" / student)
    # bob's kernel holds at its first cell while the gate exists: the interrupt comes when ada is
    # graded and bob is under way, whatever the machine's speed (no race with bob finishing first).
    gate, waiting = tmp_path / "gate", tmp_path / "bob-is-running"
    gate.touch()
    _hold_at_start(course / "submitted" / "bob" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb", gate, waiting)
    statuses = course / "grading" / build.ASSIGNMENT
    command = [sys.executable, "-m", "dqn_helpers", "grade", "--course", str(course), "--no-progress", "--jobs", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not waiting.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting.exists(), f"bob's grading never reached its first cell (grade exited with {process.poll()})"
        assert list(statuses.glob("*.json")) == [statuses / "ada.json"], "ada must be graded before bob starts"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0 and "run again to grade the rest" in stderr
    first = {path.name: path.stat().st_mtime_ns for path in statuses.glob("*.json")}
    assert set(first) == {"ada.json"}, f"graded before the interrupt: {sorted(first)}"
    assert not list((course / "grading").glob("worker-*.db"))
    gate.unlink()
    result = _grade(course)
    assert result.returncode == 0, result.stderr
    after = {path.name: path.stat().st_mtime_ns for path in statuses.glob("*.json")}
    assert set(after) == {f"{student}.json" for student in students}
    assert after["ada.json"] == first["ada.json"], "a submission graded before the interrupt was graded again"
    assert all(float(row["score"]) == float(row["max_score"]) for row in _rows(course))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("not a course", "is not a course folder"),
        ("no submissions", "no submissions"),
    ],
)
def test_grade_refuses_what_it_cannot_grade(tmp_path, setup, message):
    """Check that the grade command says what it expected instead of a traceback."""
    if setup == "no submissions":
        shutil.copytree(REPO / "solutions" / build.ASSIGNMENT, tmp_path / "solutions" / build.ASSIGNMENT)
        shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    result = _grade(tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
