"""Grading on a Dask cluster: the template gradebook, and workers that cannot grade.

That a cluster grades a whole class exactly as this machine does is tested with the
class of tests/test_grading.py, which grades it both ways.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from dqn_helpers.instructor.cluster import WorkerError, grade_on_worker, gradebook_template
from dqn_helpers.instructor.grading import _Settings, grade_course
from tests.conftest import REPO
from tests.submissions import build

SETTINGS = _Settings(cell_timeout=30, memory_limit_gb=4, submission_timeout=600, sandbox=True)


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def _course(root: Path) -> Path:
    """A course folder of notebook 01 with one hand-in, the solution itself."""
    shutil.copytree(REPO / "solutions" / build.ASSIGNMENT, root / "solutions" / build.ASSIGNMENT)
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copytree(REPO / "solutions" / build.ASSIGNMENT, root / "submitted" / "ada" / build.ASSIGNMENT)
    return root


def test_the_template_keeps_the_course_and_drops_every_submission(tmp_path, monkeypatch):
    """Check that a worker's gradebook has the assignments and students, and no grade, however many the course has."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # nbgrader runs alembic
    course_db = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{course_db}") as gradebook:
        gradebook.add_assignment("01_q_learning")
        for student in ("ada", "grace"):
            gradebook.add_student(student)
            gradebook.add_submission("01_q_learning", student)
    template = tmp_path / "template.db"
    template.write_bytes(gradebook_template(course_db))
    assert _count(course_db, "submitted_assignment") == 2  # the course's own is left alone
    assert _count(template, "submitted_assignment") == 0
    assert _count(template, "assignment") == 1 and _count(template, "student") == 2
    with Gradebook(f"sqlite:///{template}") as gradebook:  # nbgrader still takes it as a gradebook
        gradebook.add_submission("01_q_learning", "ada")
        assert gradebook.find_submission("01_q_learning", "ada").student_id == "ada"


def test_a_worker_that_does_not_see_the_course_folder_says_so(tmp_path):
    """Check the error of a worker on which the course folder is not at the coordinator's path."""
    with pytest.raises(WorkerError, match=r"does not see the course folder .*: every worker needs it at the same path"):
        grade_on_worker(str(tmp_path / "elsewhere"), b"", "ada", build.ASSIGNMENT, [build.ASSIGNMENT], SETTINGS)


def test_jobs_and_a_scheduler_together_are_refused(tmp_path):
    """Check that a cluster's grading refuses --jobs, whose meaning would be lost there, before grading anything."""
    course = _course(tmp_path)
    with pytest.raises(ValueError, match=r"jobs and a scheduler were both given \(jobs=2\)"):
        grade_course(course, jobs=2, scheduler="tcp://127.0.0.1:1", progress=False)
    assert not (course / "grading").exists()


@pytest.mark.slow
def test_a_worker_without_bubblewrap_stops_grading_and_says_so(tmp_path, monkeypatch):
    """Check that a worker that cannot sandbox grades nothing, and the error names what it lacks."""
    from distributed import LocalCluster

    course = _course(tmp_path)
    # The workers start with this PATH: Python, nbgrader and alembic, no bwrap.
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with pytest.raises(
            ValueError, match=r"worker .* cannot sandbox the students' kernels: bubblewrap is not installed"
        ):
            grade_course(course, scheduler=cluster.scheduler_address, progress=False)
    assert not (course / "autograded").exists() and not (course / "grading" / "grades.csv").exists()
