"""Grading a class on a Dask cluster: each submission on a worker, the gradebook written by the coordinator alone.

nbgrader has no parallel engine of its own, and one machine grades a few hundred
submissions an hour at most. ``python -m dqn_helpers grade --scheduler ADDRESS``
hands each submission to a worker of a `Dask distributed
<https://distributed.dask.org>`_ cluster instead of a local process. A worker grades
it exactly as local grading does (:func:`dqn_helpers.instructor.grading.grade_course`:
``nbgrader autograde`` in a process of its own, with the memory and time limits, each
kernel in the sandbox), into a gradebook of its own in its scratch space, and sends
that small gradebook back. The coordinating process, the one that ran ``grade``, is
the only one that writes the course's ``gradebook.db`` and ``grades.csv``.

What every worker needs:

- the course folder at the same path as on the coordinator, read and write: it reads
  ``nbgrader_config.py`` and ``submitted/``, and writes ``autograded/`` and
  ``grading/<assignment>/<student>.log`` (on Slurm, a shared file system such as
  NFS; on Kubernetes, a ``ReadWriteMany`` volume mounted at that path);
- the course's environment: the same Python packages (``pip install
  "dqn-helpers[instructor,cluster]"`` from the course folder), and bubblewrap for the
  sandbox, unless grading with ``--no-sandbox``.

A worker that lacks either fails its first submission with an error that names the
worker and what it lacks, and grading stops there; what was graded before is kept.
"""

from __future__ import annotations

import socket
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from dqn_helpers.instructor.sandbox import sandbox_problem

if TYPE_CHECKING:
    from dqn_helpers.instructor.grading import Outcome, _Plan, _Settings

__all__ = ["WorkerError", "grade_on_cluster", "grade_on_worker"]

# What a submission adds to a gradebook; the template keeps the course's assignments, notebooks, cells and students.
_SUBMISSION_TABLES = ("comment", "grade", "submitted_notebook", "submitted_assignment")


class WorkerError(RuntimeError):
    """A worker cannot grade: it does not see the course folder, or cannot sandbox the kernels."""


def grade_on_cluster(root: Path, plan: _Plan, settings: _Settings, scheduler: str, *, progress: bool) -> None:
    """Grade ``plan.todo`` on the Dask cluster at ``scheduler``; merge each result into the course's gradebook.

    An interrupt cancels the submissions not started; those running finish on their
    workers, within the submission timeout, and are not recorded.

    Args:
        root: The course folder, at the same path on every worker.
        plan: What to grade (see :func:`dqn_helpers.instructor.grading.grade_course`).
        settings: How each submission is graded.
        scheduler: The address of the cluster's scheduler, e.g. ``tcp://10.0.0.5:8786``.
        progress: Show a progress bar.

    Raises:
        ValueError: When Dask distributed is not installed, the scheduler cannot be
            reached, or a worker cannot grade (the error names it and says why).
    """
    try:
        from distributed import Client, as_completed
    except ModuleNotFoundError:
        raise ValueError(
            'grading on a Dask cluster needs Dask distributed: pip install "dqn-helpers[cluster]" here and on every worker'
        ) from None
    from dqn_helpers.instructor.grading import record_outcome

    template = gradebook_template(root / "gradebook.db")
    run = uuid.uuid4().hex[:8]
    try:
        client = Client(scheduler, timeout="30s")
    except OSError as error:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    with client:
        shared = client.scatter(template, broadcast=True)
        futures = {
            client.submit(
                grade_on_worker,
                str(root),
                shared,
                student,
                assignment,
                plan.notebooks[assignment],
                settings,
                key=f"grade-{assignment}-{student}-{run}",
                pure=False,
            ): (student, assignment)
            for student, assignment in plan.todo
        }
        bar = tqdm(total=len(futures), disable=not progress, unit="submission", desc="Grading on the cluster")
        try:
            with tempfile.TemporaryDirectory(prefix="dqn-grade-") as scratch:
                for future in as_completed(futures):
                    try:
                        outcome, gradebook = future.result()
                    except WorkerError as error:
                        raise ValueError(str(error)) from None  # the grade command prints it and stops
                    worker_db = Path(scratch) / "worker.db"
                    worker_db.write_bytes(gradebook)
                    record_outcome(root, plan, futures[future], outcome, worker_db)
                    bar.update()
        except BaseException:
            client.cancel(list(futures))
            if bar.n < len(futures):
                print(
                    f"Stopped: {bar.n} of {len(futures)} submissions graded; run again to grade the rest.",
                    file=sys.stderr,
                )
            raise
        finally:
            bar.close()


def grade_on_worker(
    root: str, template: bytes, student: str, assignment: str, notebooks: list[str], settings: _Settings
) -> tuple[Outcome, bytes]:
    """Grade one submission on this worker, into a gradebook made from ``template``; return the outcome and it.

    Runs on a Dask worker (see the module's docstring for what the worker needs).

    Raises:
        WorkerError: If this worker does not see the course folder or cannot sandbox the kernels.
    """
    from dqn_helpers.instructor.grading import _grade_submission

    course = Path(root)
    host = socket.gethostname()
    if not (course / "nbgrader_config.py").is_file() or not (course / "submitted" / student / assignment).is_dir():
        raise WorkerError(
            f"worker {host} does not see the course folder {root} (expected nbgrader_config.py and "
            f"submitted/{student}/{assignment}/ in it): every worker needs it at the same path"
        )
    if settings.sandbox and (problem := sandbox_problem()) is not None:
        raise WorkerError(f"worker {host} cannot sandbox the students' kernels: {problem}")
    with tempfile.TemporaryDirectory(prefix="dqn-grade-") as scratch:
        worker_db = Path(scratch) / "gradebook.db"
        worker_db.write_bytes(template)
        outcome = _grade_submission(course, worker_db, student, assignment, notebooks, settings, set())
        return outcome, worker_db.read_bytes()


def gradebook_template(main_db: Path) -> bytes:
    """The course's gradebook without any submission: what a worker grades one submission into.

    It keeps the assignments, notebooks, cells and students, so that nbgrader grades
    into it as into the course's own, and stays small however many grades the course
    already holds.
    """
    with tempfile.TemporaryDirectory(prefix="dqn-grade-") as scratch:
        copy = Path(scratch) / "template.db"
        source, target = sqlite3.connect(main_db), sqlite3.connect(copy)
        try:
            source.backup(target)
            for table in _SUBMISSION_TABLES:
                target.execute(f"DELETE FROM {table}")
            target.commit()
            target.execute("VACUUM")
        finally:
            source.close()
            target.close()
        return copy.read_bytes()
