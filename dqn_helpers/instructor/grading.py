"""Autograding a whole class with nbgrader, whatever the students handed in.

:func:`grade_course` runs ``nbgrader autograde`` once per submission
(``submitted/<student>/<assignment>/``), each in its own process with a memory limit
and a wall-clock limit, so a broken notebook, an endless loop or a memory hog costs
that submission its points and nothing else. Submissions can be graded in parallel:
nbgrader's gradebook is one SQLite file, which does not take concurrent writers, so
each worker grades into its own copy and every finished submission is copied into
the course's ``gradebook.db`` at once. An interrupted run keeps what it finished;
running it again grades only what is new or changed.

What it writes, beside the gradebook and nbgrader's ``autograded/``:

- ``grading/grades.csv``: one row per student, notebook and graded cell (a test
  cell, or a written answer that the instructor grades by hand in formgrader), with
  the exercise (the answer cell) it grades, the score, the points and the
  submission's status (``graded``, ``failed`` or ``not submitted``) and a note
  saying why; a written answer not graded yet scores 0 and its note says so;
- ``grading/<assignment>/<student>.log``: nbgrader's log of that submission;
- ``grading/<assignment>/<student>.tampering.json``: what :mod:`dqn_helpers.instructor.tampering`
  saw, if anything; every row of a notebook where it saw something gets the note
  ``tampering suspected: ...``, and so do the gradebook's comments on its answers.

Each kernel runs in :mod:`dqn_helpers.instructor.sandbox` (bubblewrap): it sees neither the
solutions, nor the gradebook, nor another student's files, nor the network. Where
the sandbox cannot run, grading refuses unless told ``sandbox=False``
(``--no-sandbox``), and every row graded without it says so.

Example:
    ``python -m dqn_helpers grade --jobs 2`` in the course folder, or ``make grade``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from dqn_helpers.instructor.sandbox import sandbox_problem

__all__ = [
    "SOURCE",
    "SUBMITTED",
    "AUTOGRADED",
    "GRADING",
    "WRITTEN_ANSWER_NOTE",
    "NO_SANDBOX_NOTE",
    "TAMPERING_NOTE",
    "Outcome",
    "GradedCell",
    "grade_course",
    "graded_cells",
    "register_assignments",
]

SOURCE = "solutions"  # nbgrader_config.py: CourseDirectory.source_directory
SUBMITTED = "submitted"  # nbgrader's defaults
AUTOGRADED = "autograded"
GRADING = "grading"  # our logs, statuses and grades.csv

CSV_FIELDS = ["student", "assignment", "notebook", "exercise", "test", "score", "max_score", "status", "note"]
WRITTEN_ANSWER_NOTE = "written answer: grade it by hand in formgrader"  # a manually graded cell, not graded yet
NO_SANDBOX_NOTE = "graded without the sandbox"
TAMPERING_NOTE = "tampering suspected"
LATE_NOTE = "handed in after the due date"

# Runs nbgrader with the memory limit in place: a limit set here is inherited by the
# kernels nbgrader starts, and a student's runaway allocation raises MemoryError in
# its own cell instead of waking the kernel's OOM killer. (subprocess's preexec_fn
# would do the same but is unsafe in a program with threads.) jsonschema's optional
# IRI checker, rfc3987_syntax, takes 2.9 s to import (half of nbgrader's start-up);
# nbgrader never checks an IRI, and jsonschema does without it when it is missing.
_NBGRADER = (
    "import resource, runpy, sys\n"
    "limit = int(sys.argv[1])\n"
    "if limit: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "sys.modules['rfc3987_syntax'] = None\n"
    "sys.argv = ['nbgrader', *sys.argv[2:]]\n"
    "runpy.run_module('nbgrader', run_name='__main__', alter_sys=True)\n"
)
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): ?(.*)$")


@dataclass(frozen=True)
class GradedCell:
    """A graded cell of a source notebook: a test cell, or a written answer graded by hand."""

    assignment: str
    notebook: str
    exercise: str  # grade_id of the answer cell the test follows (a written answer's own)
    test: str  # grade_id of the graded cell
    points: float


@dataclass(frozen=True)
class Outcome:
    """How grading one submission went."""

    status: str  # "graded" or "failed"
    note: str  # why it failed, or what was done to grade it; "" when nothing to say
    seconds: float
    fingerprint: str  # hash of the submitted files, to tell a changed submission on resume
    sandboxed: bool = True  # its kernels ran in dqn_helpers.instructor.sandbox
    tampering: dict[str, str] | None = None  # notebook -> what dqn_helpers.instructor.tampering saw there


def graded_cells(source_dir: str | Path) -> list[GradedCell]:
    """The test cells of every source notebook, in notebook order.

    Args:
        source_dir: The instructor's source folder (``solutions/``), one folder per assignment.

    Returns:
        One :class:`GradedCell` per cell whose nbgrader metadata has ``grade: true``.
        Its exercise is the answer cell (``solution: true``) whose id begins its
        own id (``sample_batch`` for ``sample_batch_fields``), else the answer
        cell it follows; a written answer (``solution`` and ``grade``, in
        markdown) is its own exercise.
    """
    cells = []
    for path in sorted(Path(source_dir).glob("*/*.ipynb")):
        notebook = [cell["metadata"].get("nbgrader", {}) for cell in json.loads(path.read_text())["cells"]]
        answers = [meta["grade_id"] for meta in notebook if meta.get("solution")]
        exercise = ""
        for meta in notebook:
            if meta.get("solution"):
                exercise = meta["grade_id"]
            if meta.get("grade"):
                test = meta["grade_id"]
                # Notebook 07 gives the script's functions first and checks them sections later.
                named = [answer for answer in answers if test == answer or test.startswith(f"{answer}_")]
                owner = max(named, key=len) if named else exercise
                cells.append(GradedCell(path.parent.name, path.stem, owner, test, float(meta["points"])))
    return cells


def grade_course(
    root: str | Path = ".",
    *,
    jobs: int = 1,
    cell_timeout: int | None = None,
    memory_limit_gb: float = 8.0,
    submission_timeout: float = 1800.0,
    force: bool = False,
    progress: bool = True,
    sandbox: bool = True,
    scheduler: str | None = None,
) -> Path:
    """Autograde every submission of every assignment and write ``grading/grades.csv``.

    Args:
        root: The course folder (``nbgrader_config.py``, ``solutions/``, ``submitted/``).
        jobs: Submissions graded at once. Each runs a kernel: mind cores and memory.
        cell_timeout: Seconds a cell may run before it is interrupted (and fails);
            ``None`` keeps ``c.Execute.timeout`` of ``nbgrader_config.py``.
        memory_limit_gb: Address space each grading process and its kernel may
            use, in GB; 0 for no limit. A TensorFlow kernel maps about 3 GB.
        submission_timeout: Seconds one submission may take in all before its
            processes are killed and it is marked failed.
        force: Grade again what an earlier run already graded. Without it, a
            submission is graded again only if its files changed, or if it was
            graded with the sandbox off and is now graded with it on (or back).
        progress: Show a progress bar.
        sandbox: Run each kernel in :mod:`dqn_helpers.instructor.sandbox`. ``False`` only where
            it cannot run, knowingly: the student's code then runs with your permissions.
        scheduler: The address of a Dask cluster's scheduler: grade each submission on
            one of its workers (:mod:`dqn_helpers.instructor.cluster`) instead of
            ``jobs`` local processes. ``None`` grades on this machine.

    Returns:
        The path of ``grades.csv``.

    Raises:
        ValueError: On a folder that is not a course, no submissions, a bad setting,
            or a sandbox that cannot run here (the error says why).
    """
    root = Path(root).resolve()
    _check_settings(root, jobs, cell_timeout, memory_limit_gb, submission_timeout, sandbox, scheduler)
    plan = _plan(root, force=force, sandbox=sandbox)
    settings = _Settings(cell_timeout, memory_limit_gb, submission_timeout, sandbox)
    if scheduler is None:
        _run(root, plan, settings, jobs=jobs, progress=progress)
    elif plan.todo:
        from dqn_helpers.instructor.cluster import grade_on_cluster

        grade_on_cluster(root, plan, settings, scheduler, progress=progress)
    output = root / GRADING / "grades.csv"
    _write_grades(output, root / "gradebook.db", plan.cells, plan.students, plan.outcomes)
    return output


@dataclass(frozen=True)
class _Settings:
    """How each submission is graded (see :func:`grade_course` for each)."""

    cell_timeout: int | None  # seconds; None keeps nbgrader_config.py's
    memory_limit_gb: float  # address space per grading process and its kernel; 0: no limit
    submission_timeout: float  # seconds per submission in all
    sandbox: bool


@dataclass
class _Plan:
    """What a grading run covers: the course's graded cells, the class, and what is left to grade."""

    cells: list[GradedCell]
    notebooks: dict[str, list[str]]  # assignment -> its notebooks, sorted
    students: list[str]
    outcomes: dict[tuple[str, str], Outcome | None]  # (student, assignment) -> how its last grading went
    todo: list[tuple[str, str]]  # (student, assignment) pairs to grade in this run


def _check_settings(
    root: Path,
    jobs: int,
    cell_timeout: int | None,
    memory_limit_gb: float,
    submission_timeout: float,
    sandbox: bool,
    scheduler: str | None,
) -> None:
    """Fail fast, before anything is graded, on a bad setting, a folder that is no course, or no sandbox."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if scheduler is not None and jobs != 1:
        raise ValueError(f"jobs and a scheduler were both given (jobs={jobs}): on a cluster, its workers grade at once")
    if cell_timeout is not None and cell_timeout < 1:
        raise ValueError(f"cell_timeout must be at least 1 second, got {cell_timeout}")
    if memory_limit_gb < 0:
        raise ValueError(f"memory_limit_gb must be positive (or 0 for no limit), got {memory_limit_gb}")
    if submission_timeout <= 0:
        raise ValueError(f"submission_timeout must be positive, got {submission_timeout}")
    if not (root / "nbgrader_config.py").is_file() or not (root / SOURCE).is_dir():
        raise ValueError(f"{root} is not a course folder: expected nbgrader_config.py and {SOURCE}/ in it")
    # On a cluster, each worker checks its own sandbox before it grades.
    if sandbox and scheduler is None and (problem := sandbox_problem()) is not None:
        raise ValueError(
            f"cannot sandbox the students' kernels: {problem}. "
            "Pass --no-sandbox to grade without it (grades.csv will say so)"
        )


def _plan(root: Path, *, force: bool, sandbox: bool) -> _Plan:
    """Register the assignments and find the submissions to grade: new, changed, or graded otherwise before."""
    cells = graded_cells(root / SOURCE)
    notebooks: dict[str, list[str]] = {}
    for assignment, notebook in sorted({(cell.assignment, cell.notebook) for cell in cells}):
        notebooks.setdefault(assignment, []).append(notebook)
    students = sorted(path.name for path in (root / SUBMITTED).glob("*") if path.is_dir())
    if not students:
        raise ValueError(f"no submissions: expected {SUBMITTED}/<student>/<assignment>/<notebook>.ipynb in {root}")
    (root / GRADING).mkdir(exist_ok=True)
    register_assignments(root)
    submitted = [(s, a) for s in students for a in notebooks if (root / SUBMITTED / s / a).is_dir()]
    outcomes = {pair: _load_outcome(root / GRADING, *pair) for pair in submitted}

    def needs_grading(pair: tuple[str, str]) -> bool:
        outcome = outcomes[pair]
        return (
            force
            or outcome is None
            or outcome.fingerprint != _fingerprint(root / SUBMITTED / pair[0] / pair[1])
            or outcome.sandboxed != sandbox  # graded without the sandbox before: grade it in one now
        )

    return _Plan(cells, notebooks, students, outcomes, [pair for pair in submitted if needs_grading(pair)])


def _run(root: Path, plan: _Plan, settings: _Settings, *, jobs: int, progress: bool) -> None:
    """Grade ``plan.todo``, ``jobs`` at a time, each into a gradebook of its own merged into the course's.

    An interrupt kills the running kernels; what was graded before it is kept in ``plan.outcomes``.
    """
    grading, main_db = root / GRADING, root / "gradebook.db"
    workers: queue.Queue[Path] = queue.Queue()
    for index in range(min(jobs, len(plan.todo))):
        worker_db = grading / f"worker-{index}.db"
        shutil.copyfile(main_db, worker_db)
        workers.put(worker_db)
    merge_lock, running, stopping = threading.Lock(), set(), threading.Event()

    def grade_one(pair: tuple[str, str]) -> None:
        worker_db = workers.get()
        try:
            student, assignment = pair
            outcome = _grade_submission(
                root, worker_db, student, assignment, plan.notebooks[assignment], settings, running
            )
            if stopping.is_set():
                return  # killed by the interrupt: not an outcome of the submission
            with merge_lock:
                record_outcome(root, plan, pair, outcome, worker_db)
        finally:
            workers.put(worker_db)

    bar = tqdm(total=len(plan.todo), disable=not progress, unit="submission", desc="Grading")
    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(plan.todo))))
    try:
        for future in as_completed([pool.submit(grade_one, pair) for pair in plan.todo]):
            future.result()
            bar.update()
    except KeyboardInterrupt:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(running):
            _kill(process)
        print(
            f"Interrupted: {bar.n} of {len(plan.todo)} submissions graded; run again to grade the rest.",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()
        pool.shutdown(wait=True)
        for worker_db in grading.glob("worker-*.db"):
            worker_db.unlink()


def record_outcome(root: Path, plan: _Plan, pair: tuple[str, str], outcome: Outcome, worker_db: Path) -> None:
    """Merge one graded submission from ``worker_db`` into the course's gradebook and keep its outcome.

    Only the coordinating process calls this, one submission at a time: the course's
    gradebook has a single writer.
    """
    student, assignment = pair
    comments = {notebook: f"{TAMPERING_NOTE}: {seen}" for notebook, seen in (outcome.tampering or {}).items()}
    _merge_submission(
        root / "gradebook.db", worker_db, assignment, student, zero=outcome.status != "graded", comments=comments
    )
    (root / GRADING / assignment).mkdir(exist_ok=True)
    (root / GRADING / assignment / f"{student}.json").write_text(json.dumps(asdict(outcome), indent=1))
    plan.outcomes[pair] = outcome


def _grade_submission(
    root: Path,
    worker_db: Path,
    student: str,
    assignment: str,
    expected: list[str],
    settings: _Settings,
    running: set[subprocess.Popen],
) -> Outcome:
    """Run ``nbgrader autograde`` on one submission, into ``worker_db``."""
    cell_timeout, sandbox, submission_timeout = settings.cell_timeout, settings.sandbox, settings.submission_timeout
    folder = root / SUBMITTED / student / assignment
    notes = [note for notebook in expected if (note := _prepare_notebook(folder, notebook))]
    fingerprint = _fingerprint(folder)  # after the copy a renamed notebook gets, so a rerun knows it
    report = root / GRADING / assignment / f"{student}.tampering.json"
    report.unlink(missing_ok=True)
    command = [
        "autograde",
        assignment,
        "--force",
        f"--student={student}",
        f"--CourseDirectory.db_url=sqlite:///{worker_db}",
        *([f"--Execute.timeout={cell_timeout}"] if cell_timeout else []),
        f"--GuardedExecute.sandbox={sandbox}",
        f"--GuardedExecute.report={report}",
    ]
    log_path = root / GRADING / assignment / f"{student}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            _nbgrader(*command, memory_bytes=int(settings.memory_limit_gb * 2**30)),
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(),
            start_new_session=True,
        )
        running.add(process)
        try:
            returncode = process.wait(timeout=submission_timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            returncode = None
        finally:
            running.discard(process)
    seconds = time.monotonic() - start
    tampering = _tampering(report)
    if not sandbox:
        notes.append(NO_SANDBOX_NOTE)
    graded = all((root / AUTOGRADED / student / assignment / f"{notebook}.ipynb").is_file() for notebook in expected)
    if returncode == 0 and graded:
        return Outcome("graded", "; ".join(notes), seconds, fingerprint, sandbox, tampering)
    if returncode is None:
        reason = f"grading took longer than {submission_timeout:g} s and was stopped"
    else:
        reason = _failure_reason(log_path.read_text(errors="replace"))
    return Outcome("failed", "; ".join([*notes, reason]), seconds, fingerprint, sandbox, tampering)


def _tampering(report: Path) -> dict[str, str] | None:
    """What dqn_helpers.instructor.tampering saw, per notebook, from its report (None if nothing)."""
    if not report.is_file():
        return None
    seen: dict[str, list[str]] = {}
    for finding in json.loads(report.read_text()):
        seen.setdefault(finding["notebook"], []).append(f"{finding['cell']} {finding['what']}")
    return {notebook: "; ".join(dict.fromkeys(found)) for notebook, found in seen.items()} or None


def _prepare_notebook(folder: Path, notebook: str) -> str:
    """Find the expected notebook in a submission; say what was wrong with it, or ""."""
    path = folder / f"{notebook}.ipynb"
    if not path.exists():
        # Jupyter's "Duplicate" and browsers' downloads rename notebooks ("x-Copy1.ipynb", "x (1).ipynb"):
        # when there is one other notebook, it is the student's answer. Copy it, keep theirs.
        others = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
        if len(others) != 1:
            return f"{notebook}.ipynb is missing" + (f" (found {', '.join(p.name for p in others)})" if others else "")
        shutil.copyfile(others[0], path)
        return f"graded {others[0].name} as {path.name}"
    try:
        json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as error:
        return (
            f"{path.name} is not a notebook: {'it is empty' if path.stat().st_size == 0 else f'invalid JSON ({error})'}"
        )
    return ""


def _failure_reason(log: str) -> str:
    """The error that stopped nbgrader, from its log."""
    for line in reversed(log.splitlines()):
        match = _EXCEPTION_LINE.match(line.strip())
        if match and match.group(1) != "NbGraderException":
            return f"nbgrader could not grade it: {match.group(1)}: {match.group(2)}"[:300]
    errors = [line for line in log.splitlines() if "ERROR]" in line]
    return errors[0].split("ERROR]", 1)[1].strip()[:300] if errors else "nbgrader could not grade it (see its log)"


def _merge_submission(
    main_db: Path, worker_db: Path, assignment: str, student: str, *, zero: bool, comments: dict[str, str] | None = None
) -> None:
    """Replace one submission's rows in the course gradebook by the worker's; zero its scores if grading failed.

    ``comments`` (notebook -> text) become the automatic comment on every answer of that notebook.

    Both gradebooks share their assignments, notebooks and cells (the worker's is a
    copy), and nbgrader's row ids are UUIDs, so rows copy over as they are.
    """
    connection = sqlite3.connect(main_db, isolation_level=None)
    try:
        connection.execute("ATTACH DATABASE ? AS worker", (str(worker_db),))
        connection.execute("BEGIN")
        for db in ("main", "worker"):
            connection.execute(
                f"CREATE TEMP TABLE {db}_submission AS SELECT s.id FROM {db}.submitted_assignment s "
                f"JOIN {db}.assignment a ON s.assignment_id = a.id WHERE a.name = ? AND s.student_id = ?",
                (assignment, student),
            )
            connection.execute(
                f"CREATE TEMP TABLE {db}_notebooks AS SELECT id FROM {db}.submitted_notebook "
                f"WHERE assignment_id IN (SELECT id FROM {db}_submission)"
            )
        for table in ("comment", "grade"):
            connection.execute(f"DELETE FROM main.{table} WHERE notebook_id IN (SELECT id FROM main_notebooks)")
        connection.execute("DELETE FROM main.submitted_notebook WHERE id IN (SELECT id FROM main_notebooks)")
        connection.execute("DELETE FROM main.submitted_assignment WHERE id IN (SELECT id FROM main_submission)")
        connection.execute("INSERT OR IGNORE INTO main.student SELECT * FROM worker.student WHERE id = ?", (student,))
        connection.execute(
            "INSERT INTO main.submitted_assignment SELECT * FROM worker.submitted_assignment WHERE id IN (SELECT id FROM worker_submission)"
        )
        connection.execute(
            "INSERT INTO main.submitted_notebook SELECT * FROM worker.submitted_notebook WHERE id IN (SELECT id FROM worker_notebooks)"
        )
        for table in ("grade", "comment"):
            connection.execute(
                f"INSERT INTO main.{table} SELECT * FROM worker.{table} WHERE notebook_id IN (SELECT id FROM worker_notebooks)"
            )
        if zero:
            # A failed grading leaves nbgrader's empty grades (or an earlier run's): it earned nothing.
            connection.execute(
                "UPDATE main.grade SET auto_score = 0, manual_score = NULL, needs_manual_grade = 0 "
                "WHERE notebook_id IN (SELECT id FROM worker_notebooks)"
            )
        for notebook, text in (comments or {}).items():
            connection.execute(
                "UPDATE main.comment SET auto_comment = ? WHERE notebook_id IN (SELECT sn.id FROM worker.submitted_notebook sn "
                "JOIN worker.notebook n ON sn.notebook_id = n.id WHERE sn.id IN (SELECT id FROM worker_notebooks) AND n.name = ?)",
                (text, notebook),
            )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def register_assignments(root: str | Path) -> None:
    """Put every assignment of ``solutions/`` in the course's gradebook, as ``nbgrader generate_assignment`` does.

    nbgrader grades only the assignments its gradebook knows; :func:`grade_course`
    calls this first. The release goes to a scratch folder: ``notebooks/`` is left alone.

    Args:
        root: The course folder.
    """
    root = Path(root).resolve()
    main_db = root / "gradebook.db"
    assignments = {cell.assignment for cell in graded_cells(root / SOURCE)}
    known = set()
    if main_db.is_file():
        with sqlite3.connect(main_db) as connection:
            known = {name for (name,) in connection.execute("SELECT name FROM assignment")}
    new = sorted(assignments - known)
    with_notebooks = {path.parent.name for path in (root / SOURCE).glob("*/*.ipynb")}
    # One nbgrader process registers them all when every assignment is new (a fresh course):
    # its start-up (about 2.5 s) is most of the cost of registering one.
    for pattern in ["*"] if new and set(new) == with_notebooks else new:
        with tempfile.TemporaryDirectory() as release:
            result = subprocess.run(
                _nbgrader(
                    "generate_assignment",
                    pattern,
                    "--force",
                    f"--CourseDirectory.release_directory={release}",
                    f"--CourseDirectory.db_url=sqlite:///{main_db}",
                ),
                cwd=root,
                capture_output=True,
                text=True,
                env=_environment(),
            )
        if result.returncode != 0:
            raise ValueError(f"nbgrader generate_assignment {pattern} failed:\n{result.stdout}{result.stderr}")


def _write_grades(
    output: Path,
    main_db: Path,
    cells: list[GradedCell],
    students: list[str],
    outcomes: dict[tuple[str, str], Outcome | None],
) -> None:
    """Write one row per student and test cell, scores read from the gradebook."""
    with sqlite3.connect(main_db) as connection:
        scores = {
            (student, assignment, cell): (score, max_score, needs_manual_grade)
            for student, assignment, cell, score, max_score, needs_manual_grade in connection.execute(
                "SELECT s.student_id, a.name, c.name, "
                "COALESCE(g.manual_score, g.auto_score, 0) + COALESCE(g.extra_credit, 0), gc.max_score, g.needs_manual_grade "
                "FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id "
                "JOIN submitted_assignment s ON sn.assignment_id = s.id JOIN assignment a ON s.assignment_id = a.id "
                "JOIN base_cell c ON g.cell_id = c.id JOIN grade_cells gc ON gc.id = c.id"
            )
        }
    lateness = _late_submissions(main_db)
    with open(output, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for student in students:
            for cell in cells:
                outcome = outcomes.get((student, cell.assignment))
                score, max_score, by_hand = scores.get((student, cell.assignment, cell.test), (0.0, cell.points, False))
                notes = [outcome.note] if outcome and outcome.note else []
                if outcome and (seen := (outcome.tampering or {}).get(cell.notebook)):
                    notes.append(f"{TAMPERING_NOTE}: {seen}")
                if outcome and by_hand:
                    notes.append(WRITTEN_ANSWER_NOTE)
                if outcome and (late := lateness.get((student, cell.assignment, cell.notebook))):
                    notes.append(late)
                writer.writerow(
                    {
                        "student": student,
                        "assignment": cell.assignment,
                        "notebook": cell.notebook,
                        "exercise": cell.exercise,
                        "test": cell.test,
                        "score": score if outcome else 0.0,
                        "max_score": max_score,
                        "status": outcome.status if outcome else "not submitted",
                        "note": "; ".join(notes),
                    }
                )


def _late_submissions(main_db: Path) -> dict[tuple[str, str, str], str]:
    """A note for each notebook handed in after its due date (and extension), with nbgrader's late penalty."""
    from nbgrader.api import Gradebook

    notes = {}
    with Gradebook(f"sqlite:///{main_db}") as gradebook:
        for assignment in gradebook.assignments:
            if assignment.duedate is None:
                continue
            for submission in assignment.submissions:
                if not submission.total_seconds_late:
                    continue
                for notebook in submission.notebooks:
                    note = f"{LATE_NOTE} by {submission.total_seconds_late / 3600:.1f} h"
                    if notebook.late_submission_penalty:
                        note += (
                            f"; nbgrader's late penalty takes {notebook.late_submission_penalty:g} points off this "
                            "notebook's total (the scores here are before it)"
                        )
                    notes[submission.student.id, assignment.name, notebook.name] = note
    return notes


def _load_outcome(grading: Path, student: str, assignment: str) -> Outcome | None:
    path = grading / assignment / f"{student}.json"
    return Outcome(**json.loads(path.read_text())) if path.is_file() else None


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _nbgrader(*args: str, memory_bytes: int = 0) -> list[str]:
    """The command that runs ``nbgrader *args`` (with at most ``memory_bytes`` of address space, if not 0)."""
    return [sys.executable, "-c", _NBGRADER, str(memory_bytes), *args]


def _environment() -> dict[str, str]:
    # nbgrader runs `alembic` as a program: this Python's bin/ must be on PATH. Few
    # malloc arenas keep a many-core machine's kernels well inside the memory limit.
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MALLOC_ARENA_MAX": "2",
    }


def _kill(process: subprocess.Popen) -> None:
    """Kill a grading process and the kernel it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
