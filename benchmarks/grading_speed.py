"""Grading speed: time `python -m dqn_helpers grade` on a class of complete submissions.

Builds a throwaway copy of the course in which ``--students`` students each hand in
the solution notebook of every assignment (or of ``--assignments``), grades them
with ``--jobs`` submissions at once, and prints one JSON line: the wall-clock time
of the whole batch, per complete submission (all notebooks of one student), and the
mean time nbgrader took per notebook, with the check that every student got full
marks (written answers, which the instructor grades by hand, aside). Putting the assignments in the fresh gradebook, which an instructor does once
per course, is timed apart. Notebooks run in fast mode, as they do under nbgrader.

Usage:
    python benchmarks/grading_speed.py --students 1
    python benchmarks/grading_speed.py --students 20 --jobs 2
    python benchmarks/grading_speed.py --students 1 --no-sandbox   # the kernels without bubblewrap
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from dqn_helpers.instructor.grading import (
    GRADING,
    SOURCE,
    SUBMITTED,
    TAMPERING_NOTE,
    WRITTEN_ANSWER_NOTE,
    grade_course,
    register_assignments,
)

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    """Grade the solutions as a class of N students and print the timings as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=1, help="students, each handing in every assignment")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    parser.add_argument("--assignments", nargs="*", help="only these assignments (default: all)")
    parser.add_argument("--no-sandbox", action="store_true", help="grade without the sandbox, to measure what it costs")
    args = parser.parse_args()
    if args.students < 1:
        parser.error(f"--students must be at least 1, got {args.students}")
    every = sorted({path.parent.name for path in (REPO / SOURCE).glob("*/*.ipynb")})
    assignments = args.assignments or every
    unknown = set(assignments) - set(every)
    if unknown:
        parser.error(f"no such assignments: {sorted(unknown)} (there are {every})")

    with tempfile.TemporaryDirectory() as folder:
        course = Path(folder)
        shutil.copy(REPO / "nbgrader_config.py", course)
        for assignment in assignments:
            shutil.copytree(
                REPO / SOURCE / assignment,
                course / SOURCE / assignment,
                ignore=shutil.ignore_patterns("runs", "videos"),
            )
            for index in range(args.students):
                shutil.copytree(course / SOURCE / assignment, course / SUBMITTED / f"student{index:03d}" / assignment)
        start = time.perf_counter()
        register_assignments(course)  # once per course, as an instructor's gradebook already has them
        setup_seconds = time.perf_counter() - start
        start = time.perf_counter()
        output = grade_course(course, jobs=args.jobs, sandbox=not args.no_sandbox)
        seconds = time.perf_counter() - start
        with open(output) as file:
            rows = list(csv.DictReader(file))
        per_notebook = defaultdict(list)
        for path in (course / GRADING).glob("*/*.json"):
            if path.name.endswith(".tampering.json"):
                continue  # what dqn_helpers.tampering saw, not a timing
            per_notebook[path.parent.name].append(json.loads(path.read_text())["seconds"])

    print(
        json.dumps(
            {
                "students": args.students,
                "jobs": args.jobs,
                "assignments": assignments,
                "cores": os.cpu_count(),
                "sandbox": not args.no_sandbox,
                "register_assignments_seconds": round(setup_seconds, 1),
                "batch_seconds": round(seconds, 1),
                "seconds_per_complete_submission": round(seconds / args.students, 1),
                "notebook_seconds_mean": {
                    name: round(statistics.mean(times), 1) for name, times in sorted(per_notebook.items())
                },
                "all_full_marks": all(  # written answers wait for the instructor
                    row["status"] == "graded"
                    and (row["score"] == row["max_score"] or WRITTEN_ANSWER_NOTE in row["note"])
                    for row in rows
                ),
                "tampering_notes": sum(TAMPERING_NOTE in row["note"] for row in rows),
            }
        )
    )


if __name__ == "__main__":
    main()
