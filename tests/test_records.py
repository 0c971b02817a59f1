"""Tests of dqn_helpers.instructor.records and of the Makefile targets that must keep a class's grades.

The Makefile's own targets run on a temporary copy of one assignment of the course, with
the real nbgrader, a gradebook holding a submission and a hand grade, and a hand-in.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

from nbgrader.api import Gradebook  # noqa: E402

from dqn_helpers.__main__ import main  # noqa: E402
from dqn_helpers.instructor.records import RECORDS, backup_records, erase_records  # noqa: E402

# nbgrader's Gradebook.add_submission builds its rows in a way SQLAlchemy 2 warns about; the rows are written.
pytestmark = pytest.mark.filterwarnings("ignore:Object of type:sqlalchemy.exc.SAWarning")

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "01_q_learning"


def _records(course: Path) -> Path:
    """Write a small gradebook, a hand-in and a grades.csv into ``course``; returns the hand-in."""
    with sqlite3.connect(course / "gradebook.db") as database:
        database.execute("CREATE TABLE grade (student TEXT, score REAL)")
        database.execute("INSERT INTO grade VALUES ('ada', 7.5)")
    database.close()
    hand_in = course / "submitted" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    hand_in.parent.mkdir(parents=True)
    hand_in.write_text('{"cells": []}')
    (course / "grading").mkdir()
    (course / "grading" / "grades.csv").write_text("student,score\nada,7.5\n")
    return hand_in


def test_a_backup_holds_the_gradebook_and_the_hand_ins(tmp_path):
    """Check that the zip holds a gradebook SQLite can read and every file, and that nothing is removed."""
    hand_in = _records(tmp_path)

    archive = backup_records(tmp_path)

    assert archive.parent == tmp_path / "backups" and archive.name.startswith("grades-")
    assert hand_in.exists() and (tmp_path / "gradebook.db").exists()
    restored = tmp_path / "restored"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(restored)
    assert (restored / hand_in.relative_to(tmp_path)).read_text() == hand_in.read_text()
    assert (restored / "grading" / "grades.csv").read_text() == "student,score\nada,7.5\n"
    database = sqlite3.connect(restored / "gradebook.db")
    assert database.execute("SELECT student, score FROM grade").fetchall() == [("ada", 7.5)]
    database.close()


def test_two_backups_in_the_same_second_are_two_files(tmp_path):
    """Check that a second backup never overwrites the first."""
    _records(tmp_path)

    first, second = backup_records(tmp_path), backup_records(tmp_path)

    assert first != second and first.exists() and second.exists()


def test_backing_up_nothing_says_what_was_expected(tmp_path):
    """Check that a folder without grades is an error naming the records it looked for."""
    with pytest.raises(FileNotFoundError, match="gradebook.db, submitted"):
        backup_records(tmp_path)


def test_a_gradebook_that_is_not_sqlite_is_refused_and_leaves_no_backup(tmp_path):
    """Check that a damaged gradebook stops the backup, names the file, and leaves no half-written zip."""
    (tmp_path / "gradebook.db").write_text("not a database")

    with pytest.raises(ValueError, match="gradebook.db is not an SQLite gradebook"):
        backup_records(tmp_path)

    assert list((tmp_path / "backups").iterdir()) == []


def test_erasing_backs_up_first_and_the_backup_restores_everything(tmp_path):
    """Check that erase_records deletes every record only after a backup that gives them all back."""
    hand_in = _records(tmp_path)
    (tmp_path / "feedback").mkdir()  # an empty record folder is deleted too
    text = hand_in.read_text()

    archive, erased = erase_records(tmp_path)

    assert erased == ["gradebook.db", "submitted", "feedback", "grading"]
    assert not any((tmp_path / name).exists() for name in RECORDS)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path)
    assert hand_in.read_text() == text
    assert (tmp_path / "gradebook.db").exists()


def test_erasing_deletes_nothing_when_the_backup_fails(tmp_path):
    """Check that a gradebook the backup cannot copy keeps every record where it was."""
    hand_in = _records(tmp_path)
    (tmp_path / "gradebook.db").write_bytes(b"damaged")

    with pytest.raises(ValueError):
        erase_records(tmp_path)

    assert hand_in.exists() and (tmp_path / "gradebook.db").read_bytes() == b"damaged"


def test_the_command_line_names_the_backup_and_what_it_deleted(tmp_path, capsys):
    """Check `python -m dqn_helpers erase-grades`' report, and its error when there is nothing to erase."""
    _records(tmp_path)

    assert main(["erase-grades", "--course", str(tmp_path)]) == 0
    report = capsys.readouterr().out
    assert "backups/grades-" in report and "deleted gradebook.db, submitted, grading" in report

    assert main(["erase-grades", "--course", str(tmp_path)]) == 2
    assert "no grades or hand-ins to back up" in capsys.readouterr().err


def _make(course: Path, target: str) -> subprocess.CompletedProcess:
    """Run one of the Makefile's targets in ``course`` with this test's environment (never reinstalled)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(course), target, "-o", ".venv/.installed"],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def graded_course(tmp_path) -> Path:
    """A copy of one assignment of the course, released, with a submission, a hand grade and a hand-in."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    course = tmp_path / "course"
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    for name in ("Makefile", "nbgrader_config.py"):
        shutil.copy2(REPO / name, course / name)
    (course / ".venv").symlink_to(Path(sys.prefix))  # `make clean` removes only this link
    released = _make(course, "release")
    assert released.returncode == 0, released.stderr
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.add_student("ada")
        submission = gradebook.add_submission(ASSIGNMENT, "ada")
        notebook = submission.notebooks[0]
        notebook.grades[0].manual_score = 1.0
        notebook.comments[0].manual_comment = "good"
        gradebook.db.commit()
    shutil.copytree(course / "notebooks" / ASSIGNMENT, course / "submitted" / "ada" / ASSIGNMENT)
    return course


def _hand_grade(course: Path) -> tuple[float | None, str | None]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission(ASSIGNMENT, "ada").notebooks[0]
        return notebook.grades[0].manual_score, notebook.comments[0].manual_comment


@pytest.mark.notebooks
def test_make_release_keeps_the_gradebook_and_the_hand_ins(graded_course):
    """Check that regenerating the release after fixing a typo keeps every grade and hand-in."""
    source = graded_course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    source.write_text(source.read_text().replace("Q-learning", "Q-Learning", 1))

    released = _make(graded_course, "release")

    assert released.returncode == 0, released.stderr
    assert _hand_grade(graded_course) == (1.0, "good")
    assert (graded_course / "submitted" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()
    assert "Q-Learning" in (graded_course / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()


@pytest.mark.notebooks
def test_make_clean_keeps_the_gradebook_and_the_hand_ins(graded_course):
    """Check that `make clean` removes the environment and build output only."""
    cleaned = _make(graded_course, "clean")

    assert cleaned.returncode == 0, cleaned.stderr
    assert not (graded_course / ".venv").exists() and Path(sys.prefix).exists()
    assert _hand_grade(graded_course) == (1.0, "good")
    assert (graded_course / "submitted" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()


@pytest.mark.notebooks
def test_changing_an_exercises_points_in_mid_term_keeps_the_grades(graded_course):
    """Check that new points for a test cell reach the gradebook through `make release`, hand grades kept."""
    source = graded_course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = json.loads(source.read_text())
    test_cell = next(
        cell
        for cell in notebook["cells"]
        if cell["metadata"].get("nbgrader", {}).get("grade") and not cell["metadata"]["nbgrader"].get("solution")
    )
    grade_id, points = test_cell["metadata"]["nbgrader"]["grade_id"], test_cell["metadata"]["nbgrader"]["points"]
    test_cell["metadata"]["nbgrader"]["points"] = points + 3
    source.write_text(json.dumps(notebook))

    released = _make(graded_course, "release")

    assert released.returncode == 0, released.stderr
    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gradebook:
        assert gradebook.find_grade_cell(grade_id, ASSIGNMENT, ASSIGNMENT).max_score == points + 3
    assert _hand_grade(graded_course) == (1.0, "good")


@pytest.mark.notebooks
def test_adding_a_test_cell_after_hand_ins_is_refused_saying_why(graded_course):
    """Check that nbgrader refuses to add a graded cell to a notebook with submissions, and the grades stay."""
    source = graded_course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = json.loads(source.read_text())
    new_test = {
        "cell_type": "code",
        "execution_count": None,
        "id": "new-test",
        "metadata": {
            "nbgrader": {
                "grade": True,
                "grade_id": "new_test",
                "locked": True,
                "points": 1,
                "schema_version": 3,
                "solution": False,
                "task": False,
            }
        },
        "outputs": [],
        "source": ["assert True"],
    }
    notebook["cells"].append(new_test)
    source.write_text(json.dumps(notebook))

    released = _make(graded_course, "release")

    assert released.returncode != 0
    assert "Cannot add or remove cells" in released.stdout + released.stderr
    assert _hand_grade(graded_course) == (1.0, "good")


@pytest.mark.notebooks
def test_make_feedback_skips_assignments_nobody_was_graded_in(graded_course):
    """Check that `make feedback` runs on a course with no autograded hand-in yet, writing nothing and deleting nothing."""
    made = _make(graded_course, "feedback")

    assert made.returncode == 0, made.stderr
    assert "generate_feedback" not in made.stdout and not (graded_course / "feedback").exists()
    assert _hand_grade(graded_course) == (1.0, "good")
