"""Grading a class: every fixture submission of tests/submissions/ through `python -m dqn_helpers grade`.

The fixtures are one class of notebook 01 hand-ins: each of tests/submissions/robustness/
is broken in its own way, each of tests/submissions/tampering/ goes after points it
did not earn (tests/submissions/build.py writes them; each folder's expected.json
says what each must get).
They are graded together, two at a time, with the real nbgrader, kernels, sandbox and
gradebook, in a temporary copy of the course. Where the sandbox cannot run, the class
is graded without it and leaves out the students only the sandbox stops.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from dqn_helpers.instructor.grading import NO_SANDBOX_NOTE, TAMPERING_NOTE, graded_cells, register_assignments
from dqn_helpers.instructor.tampering import TAMPERING_ERROR
from tests import cells
from tests.conftest import REPO, SANDBOX, SANDBOX_PROBLEM, grade_command
from tests.submissions import build

pytestmark = pytest.mark.notebooks

SUBMISSIONS = REPO / "tests" / "submissions"
FIXTURES = SUBMISSIONS / "robustness"
TAMPERING = json.loads((SUBMISSIONS / "tampering" / "expected.json").read_text())
ROBUSTNESS = json.loads((FIXTURES / "expected.json").read_text())  # the class the cluster grades too
EXPECTED = {
    **ROBUSTNESS,
    **{student: expected for student, expected in TAMPERING.items() if not (SANDBOX and expected["needs_sandbox"])},
}
ASSIGNMENTS = ["00_setup", build.ASSIGNMENT]  # 00_setup: nobody handed it in
CELL_TIMEOUT = 30  # seconds: notebook 01's slowest cell takes about 1 s in fast mode (the set-up, 2 s)
MEMORY_LIMIT_GB = 4  # the memory hog fails at 4 GB; notebook 01 needs under 2 (no TensorFlow)
TESTS = [cell for cell in graded_cells(REPO / "solutions") if cell.assignment == build.ASSIGNMENT]


def _grade(course: Path, *extra: str) -> subprocess.CompletedProcess:
    command = grade_command(course, *extra)
    return subprocess.run(command, capture_output=True, text=True)


def _rows(course: Path) -> list[dict]:
    with open(course / "grading" / "grades.csv") as file:
        return list(csv.DictReader(file))


def _class(course: Path, made: Path, students: Iterable[str] = EXPECTED) -> Path:
    """A copy of the course with the class of fixtures (or some of its ``students``) handed in, none graded yet."""
    for assignment in ASSIGNMENTS:
        shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    shutil.copy(REPO / "nbgrader_config.py", course)
    build.write(made, broken=True)  # the hand-ins that are not notebooks are not committed
    for student in students:
        committed = SUBMISSIONS / ("tampering" if student in TAMPERING else "robustness") / student
        shutil.copytree(
            committed if committed.is_dir() else made / "robustness" / student, course / "submitted" / student
        )
    return course


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of the course with every fixture graded; and the grade command's result."""
    course = _class(tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("made"))
    return course, _grade(
        course, "--jobs", "2", "--cell-timeout", str(CELL_TIMEOUT), "--memory-limit-gb", str(MEMORY_LIMIT_GB)
    )


def test_the_fixtures_are_what_build_writes(tmp_path):
    """Check that tests/submissions/ holds exactly what build.py writes (else run `python -m tests.submissions.build`)."""
    written = {path.relative_to(tmp_path) for path in build.write(tmp_path)}
    committed = {path.relative_to(SUBMISSIONS) for path in SUBMISSIONS.glob("*/*/*/*.ipynb")}
    assert written == committed
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (SUBMISSIONS / relative).read_bytes(), f"{relative} is out of date"
    made = {
        path.relative_to(tmp_path).parts[1] for path in build.write(tmp_path, broken=True) if "robustness" in path.parts
    }
    assert set(json.loads((FIXTURES / "expected.json").read_text())) == made
    assert set(TAMPERING) == {
        path.relative_to(tmp_path).parts[1] for path in build.write(tmp_path) if "tampering" in path.parts
    }


def test_a_test_cell_belongs_to_the_answer_it_checks_even_sections_later():
    """Check that notebook 07's checks, far below the script's functions, count for the function each one checks."""
    exercise_of = {
        cell.test: cell.exercise for cell in graded_cells(REPO / "solutions") if cell.assignment == "07_debugging"
    }
    assert exercise_of == {
        "build_model_architecture": "build_model",
        "build_model_explanation": "build_model_explanation",
        "compute_targets_per_sample": "compute_targets",
        "compute_targets_per_sample_explanation": "compute_targets_per_sample_explanation",
        "sample_batch_fields": "sample_batch",
        "sample_batch_explanation": "sample_batch_explanation",
        "targets_by_hand_check": "targets_by_hand",
        "compute_targets_terminal": "compute_targets",
        "compute_targets_terminal_explanation": "compute_targets_terminal_explanation",
        "train_step_action_taken": "train_step",
        "train_step_explanation": "train_step_explanation",
    }


def test_grading_the_class_finishes_and_reports_everyone(graded):
    """Check that the batch survives every submission and writes a row per student and test cell."""
    course, result = graded
    assert result.returncode == 0, result.stderr
    rows = _rows(course)
    test_cells = graded_cells(course / "solutions")
    assert len(rows) == len(EXPECTED) * len(test_cells)
    assert {(row["student"], row["test"]) for row in rows} == {(s, cell.test) for s in EXPECTED for cell in test_cells}
    assert {row["status"] for row in rows if row["assignment"] == "00_setup"} == {"not submitted"}
    for student in EXPECTED:
        assert student in result.stdout, f"the summary leaves out {student}"


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_submission_gets_the_points_it_earned(graded, student):
    """Check every test cell's score, the status and the note of each fixture student."""
    course, _ = graded
    expected = EXPECTED[student]
    lost = {cell.test for cell in TESTS} if expected["lost"] == "all" else set(expected["lost"])
    rows = {
        row["test"]: row for row in _rows(course) if row["student"] == student and row["assignment"] == build.ASSIGNMENT
    }
    for cell in TESTS:
        row = rows[cell.test]
        assert float(row["max_score"]) == cell.points, (
            f"{student}: {cell.test} is worth {cell.points}, not {row['max_score']}"
        )
        earned = 0.0 if cell.test in lost else cell.points
        assert float(row["score"]) == earned, (
            f"{student}: {cell.test} scored {row['score']}, expected {earned} ({row['note']})"
        )
        assert row["status"] == expected["status"], f"{student}: {row['status']} ({row['note']})"
        note = row["note"].replace(NO_SANDBOX_NOTE, "").strip("; ")  # on every row where the sandbox cannot run
        assert expected["note"] in note, f"{student}: the note {note!r} lacks {expected['note']!r}"
        assert bool(note) == bool(expected["note"]), f"{student}: unexpected note {note!r}"


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


@pytest.fixture(scope="module")
def cluster():
    """A Dask cluster of two worker processes on this machine, one submission at a time each."""
    from distributed import LocalCluster

    # memory_limit=0: the grading processes have limits of their own; the nanny must not pause a worker.
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=0
    ) as local_cluster:
        yield local_cluster


def test_a_dask_cluster_grades_the_class_as_this_machine_does(graded, cluster, tmp_path):
    """Check that grading the robustness class on two Dask workers writes the same grades.csv and gradebook scores."""
    course, _ = graded
    on_cluster = _class(tmp_path / "class", tmp_path / "made", students=ROBUSTNESS)
    result = _grade(
        on_cluster,
        "--scheduler",
        cluster.scheduler_address,
        "--cell-timeout",
        str(CELL_TIMEOUT),
        "--memory-limit-gb",
        str(MEMORY_LIMIT_GB),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    local = [
        {**row, "note": row["note"].replace(str(course), "COURSE")}
        for row in _rows(course)
        if row["student"] in ROBUSTNESS
    ]
    remote = [{**row, "note": row["note"].replace(str(on_cluster), "COURSE")} for row in _rows(on_cluster)]
    assert remote == local
    with (
        Gradebook(f"sqlite:///{course / 'gradebook.db'}") as here,
        Gradebook(f"sqlite:///{on_cluster / 'gradebook.db'}") as there,
    ):
        for student in ROBUSTNESS:
            expected = here.find_submission(build.ASSIGNMENT, student).score
            assert there.find_submission(build.ASSIGNMENT, student).score == expected, student
    assert not list((on_cluster / "grading").glob("*.db")), "no gradebook but the course's is left behind"


def _outputs(course: Path, student: str) -> dict[str, list[dict]]:
    """The outputs of each code cell of a student's graded notebook 01, by grade_id."""
    notebook = json.loads(
        (course / "autograded" / student / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb").read_text()
    )
    return {
        cell["metadata"].get("nbgrader", {}).get("grade_id", f"cell {index}"): cell["outputs"]
        for index, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code"
    }


def _text(outputs: list[dict]) -> str:
    return "".join("".join(o.get("text", "")) + o.get("ename", "") + ": " + o.get("evalue", "") for o in outputs)


@pytest.mark.parametrize("student", ["hides_tests", "swallows_errors", "replaces_checks", "replaces_checks_quietly"])
def test_tampered_test_cells_fail_first_and_say_why(graded, student):
    """Check that each test cell lost to tampering shows the TamperingSuspected error first, naming what was seen."""
    course, _ = graded
    outputs = _outputs(course, student)
    lost = [cell.test for cell in TESTS] if TAMPERING[student]["lost"] == "all" else TAMPERING[student]["lost"]
    for test in lost:
        first = outputs[test][0]
        assert first["output_type"] == "error" and first["ename"] == TAMPERING_ERROR, f"{student}: {test} shows {first}"
    kept = {cell.test for cell in TESTS} - set(lost)
    assert not any(o.get("ename") == TAMPERING_ERROR for test in kept for o in outputs[test]), (
        "an earlier test was failed too"
    )


def test_the_gradebook_comments_name_the_tampering(graded):
    """Check that the instructor sees the note in nbgrader's own comments on the tamperer's answers, and only there."""
    course, _ = graded
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in EXPECTED:
            notebook = gradebook.find_submission_notebook(build.ASSIGNMENT, build.ASSIGNMENT, student)
            comments = [comment.auto_comment or "" for comment in notebook.comments]
            flagged = TAMPERING_NOTE in EXPECTED[student]["note"]
            assert any(TAMPERING_NOTE in comment for comment in comments) == flagged, f"{student}: {comments}"


@pytest.mark.skipif(bool(SANDBOX), reason=f"the sandbox cannot run here: {SANDBOX_PROBLEM}")
def test_the_sandbox_keeps_each_student_in_their_own_folder(graded):
    """Check that one student's kernel could neither read the solutions, nor write another's files, nor reach the network."""
    course, _ = graded
    stolen = _text(_outputs(course, "reads_solution")["td_targets"])
    assert "FileNotFoundError" in stolen and "solutions" in stolen
    written = _text(_outputs(course, "writes_elsewhere")["td_targets"])
    for victim in ("submitted", "autograded"):
        assert f"could not write {course / victim / 'correct'}" in written, written
    handed_in = course / "submitted" / "correct" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb"
    assert (
        handed_in.read_bytes() == (FIXTURES / "correct" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb").read_bytes()
    )
    json.loads((course / "autograded" / "correct" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb").read_text())
    assert "Network is unreachable" in _text(_outputs(course, "uses_network")["td_targets"])


def test_deleted_test_cells_are_put_back_and_graded(graded):
    """Check that nbgrader restored the test cells a student deleted, and ran them."""
    course, _ = graded
    notebook = json.loads(
        (course / "autograded" / "tests_deleted" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb").read_text()
    )
    restored = {
        cell["metadata"]["nbgrader"]["grade_id"]: cell
        for cell in notebook["cells"]
        if "was missing" in "".join(cell["source"])
    }
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
    path = course / "autograded" / student / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb"
    errors = {
        grade_id: [output["ename"] for output in cell["outputs"] if output["output_type"] == "error"]
        for grade_id, cell in cells.code_cells(path).items()
    }
    assert error in errors[grade_id], f"{student}: {grade_id} shows {errors[grade_id]}"
    assert errors["setup"] == []


def test_a_second_run_grades_only_what_changed(graded):
    """Check that grading again skips unchanged submissions and regrades a changed one."""
    course, _ = graded
    statuses = course / "grading" / build.ASSIGNMENT
    before = {path.name: path.stat().st_mtime_ns for path in statuses.glob("*.json")}
    shutil.copy(
        FIXTURES / "correct" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb",
        course / "submitted" / "syntax_error" / build.ASSIGNMENT,
    )
    result = _grade(course, "--cell-timeout", str(CELL_TIMEOUT))
    assert result.returncode == 0, result.stderr
    after = {path.name: path.stat().st_mtime_ns for path in statuses.glob("*.json")}
    assert {name for name in after if after[name] != before[name]} == {"syntax_error.json"}
    rows = [row for row in _rows(course) if row["student"] == "syntax_error" and row["assignment"] == build.ASSIGNMENT]
    assert all(float(row["score"]) == float(row["max_score"]) for row in rows)


def _hold_at_start(notebook: Path) -> None:
    """Put a first cell in a hand-in that says it started, then waits for a file named release.

    Both files are in the kernel's own folder (autograded/<student>/<assignment>/), the
    only one its sandbox lets it see and write.
    """
    content = json.loads(notebook.read_text())
    source = (
        "import pathlib, time\n"
        "pathlib.Path('started').touch()\n"
        "while not pathlib.Path('release').exists():\n"
        "    time.sleep(0.05)\n"
    )
    content["cells"].insert(
        0, {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
    )
    notebook.write_text(json.dumps(content, indent=1))


def _start_interruptible(command: list[str]) -> subprocess.Popen:
    """Start ``command`` as Ctrl-C in a terminal would reach it, whoever started the tests.

    A shell without job control starts its background commands with SIGINT ignored, and a
    child inherits that: Python then never raises KeyboardInterrupt. The grader gets the
    default action back, so the test's SIGINT reaches it however CI runs pytest.
    """
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    """Wait until ``path`` exists (a held kernel has started), or fail if grading ends first."""
    deadline = time.monotonic() + 300  # a bound on a hang, not a timing assumption: the file comes first
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.exists(), f"bob's grading never reached its first cell (grade exited with {process.poll()})"


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    """Check that Ctrl-C stops the batch with nothing half-recorded, and the next run grades only the rest."""
    course = tmp_path / "course"
    shutil.copytree(REPO / "solutions" / build.ASSIGNMENT, course / "solutions" / build.ASSIGNMENT)
    shutil.copy(REPO / "nbgrader_config.py", course)
    students = ["ada", "bob"]  # graded in this order, one at a time
    for student in students:
        shutil.copytree(FIXTURES / "correct", course / "submitted" / student)
    # bob's kernel holds at its first cell until the test releases it: the interrupt comes when
    # ada is graded and bob is under way, whatever the machine's speed (no race with bob finishing first).
    _hold_at_start(course / "submitted" / "bob" / build.ASSIGNMENT / f"{build.ASSIGNMENT}.ipynb")
    held = course / "autograded" / "bob" / build.ASSIGNMENT
    statuses = course / "grading" / build.ASSIGNMENT
    command = grade_command(course, "--jobs", "1")
    process = _start_interruptible(command)
    try:
        _wait_for(held / "started", process)
        assert list(statuses.glob("*.json")) == [statuses / "ada.json"], "ada must be graded before bob starts"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0 and "run again to grade the rest" in stderr
    first = {path.name: path.stat().st_mtime_ns for path in statuses.glob("*.json")}
    assert set(first) == {"ada.json"}, f"graded before the interrupt: {sorted(first)}"
    assert not list((course / "grading").glob("worker-*.db"))
    (held / "started").unlink()
    process = _start_interruptible(command)
    try:
        _wait_for(held / "started", process)
        (held / "release").touch()
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    after = {path.name: path.stat().st_mtime_ns for path in statuses.glob("*.json")}
    assert set(after) == {f"{student}.json" for student in students}
    assert after["ada.json"] == first["ada.json"], "a submission graded before the interrupt was graded again"
    assert all(float(row["score"]) == float(row["max_score"]) for row in _rows(course))


def _grade_cells_in_gradebook(course: Path) -> dict[tuple[str, str], tuple[str, float]]:
    """(assignment, grade_id) -> (the cell's row id, its points) for every grade cell of the course's gradebook."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {
            (assignment.name, cell.name): (cell.id, cell.max_score)
            for assignment in gradebook.assignments
            for notebook in assignment.notebooks
            for cell in notebook.grade_cells
        }


def test_a_fresh_course_is_registered_whole_and_a_later_assignment_joins_it(tmp_path):
    """Check that the gradebook gets every graded cell of a new course, then a new assignment's, the others untouched."""
    course = tmp_path / "course"
    for assignment in ASSIGNMENTS:
        shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    shutil.copy(REPO / "nbgrader_config.py", course)

    register_assignments(course)
    first = _grade_cells_in_gradebook(course)
    shutil.copytree(REPO / "solutions" / "02_preprocessing", course / "solutions" / "02_preprocessing")
    register_assignments(course)
    second = _grade_cells_in_gradebook(course)

    expected = {(cell.assignment, cell.test): cell.points for cell in graded_cells(course / "solutions")}
    assert {key: points for key, (_, points) in second.items()} == expected
    assert {key for key in expected if key[0] != "02_preprocessing"} == set(first)
    assert {key: row for key, row in second.items() if key[0] != "02_preprocessing"} == first
    assert not (course / "notebooks").exists(), "registering wrote a release into the course"


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


def test_without_bubblewrap_grade_refuses_unless_told_and_then_says_so(tmp_path):
    """Check that grading stops with the reason where the sandbox cannot run, and --no-sandbox grades with a note."""
    course = tmp_path / "course"
    shutil.copytree(REPO / "solutions" / build.ASSIGNMENT, course / "solutions" / build.ASSIGNMENT)
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(FIXTURES / "correct", course / "submitted" / "ada")
    no_bwrap = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # Python, nbgrader and alembic, no bwrap
    command = [sys.executable, "-m", "dqn_helpers", "grade", "--course", str(course), "--no-progress"]
    refused = subprocess.run(command, capture_output=True, text=True, env=no_bwrap)
    assert (
        refused.returncode == 2 and "bubblewrap is not installed" in refused.stderr and "--no-sandbox" in refused.stderr
    )
    assert "Traceback" not in refused.stderr and not (course / "grading" / "grades.csv").exists()
    graded = subprocess.run([*command, "--no-sandbox"], capture_output=True, text=True, env=no_bwrap)
    assert graded.returncode == 0, graded.stderr
    rows = _rows(course)
    assert all(NO_SANDBOX_NOTE in row["note"] and float(row["score"]) == float(row["max_score"]) for row in rows)
