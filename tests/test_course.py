"""The nbgrader pipeline, end to end, with the real command line.

In a temporary copy of the course: ``nbgrader generate_assignment`` must reproduce
the committed ``notebooks/`` exactly, with no solution text, hidden test or marker
left; autograding (``python -m dqn_helpers grade``, which runs ``nbgrader autograde``)
must give the solutions full marks and the untouched release 0, and an unfilled
blank must explain itself. (That every solution notebook runs top to bottom is
nbval's job: pytest collects ``solutions/`` with ``--nbval-lax``.)
"""

import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from dqn_helpers.blanks import BLANK, UnfilledBlankError
from dqn_helpers.instructor.feedback import HIDDEN_NOTE
from dqn_helpers.instructor.grading import WRITTEN_ANSWER_NOTE
from dqn_helpers.instructor.release import BUG_MARKER, MARKER
from tests import cells
from tests.conftest import REPO, grade_command

pytestmark = pytest.mark.notebooks

# Folders that hold a notebook: running notebook 05 leaves its agent in solutions/runs/, which is not one.
ASSIGNMENTS = sorted({path.parent.name for path in (REPO / "solutions").glob("*/*.ipynb")})
SOLUTION_NOTEBOOKS = sorted((REPO / "solutions").glob("*/*.ipynb"))
RELEASE_NOTEBOOKS = sorted((REPO / "notebooks").glob("*/*.ipynb"))
GRADE_ID = re.compile(r"[a-zA-Z0-9_-]+")
STUDENTS = {"solution": "solutions", "untouched": "notebooks"}
LEFT_BEHIND = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "videos", "runs", "*.mp4", "*.gif")


def _course_files(folder: Path) -> list[Path]:
    """Files under ``folder`` that belong to the course, not to running it."""
    return sorted(
        path.relative_to(folder)
        for path in folder.rglob("*")
        if path.is_file() and not any(LEFT_BEHIND("", [part]) for part in path.relative_to(folder).parts)
    )


def _nbgrader(course: Path, *args: str) -> str:
    """Run the nbgrader command line in ``course``; return its log."""
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, env=environment, capture_output=True, text=True
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{log}"
    return log


def _code_cells(path: Path) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> tuple[Path, str]:
    """A temporary copy of the course with the release generated; and nbgrader's log."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(REPO / "solutions", root / "solutions", ignore=LEFT_BEHIND)
    shutil.copy(REPO / "nbgrader_config.py", root)
    # One nbgrader process for every assignment, as the grade command registers a fresh course.
    return root, _nbgrader(root, "generate_assignment", "*", "--force")


@pytest.fixture(scope="module")
def autograded(course) -> Path:
    """The course after grading two students (one hands in the solutions, one the untouched release).

    With `python -m dqn_helpers grade`, which runs `nbgrader autograde` on each
    submission, two at a time.
    """
    root, _ = course
    for student, source in STUDENTS.items():
        for name in ASSIGNMENTS:
            shutil.copytree(root / source / name, root / "submitted" / student / name)
    command = grade_command(root, "--jobs", "2")
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_there_is_a_course_to_test():
    """Check that solutions and release exist and pair up one to one."""
    assert ASSIGNMENTS, "no assignments in solutions/"
    assert [p.relative_to(REPO / "solutions") for p in SOLUTION_NOTEBOOKS] == [
        p.relative_to(REPO / "notebooks") for p in RELEASE_NOTEBOOKS
    ]


def test_nbgrader_config_loads_without_falling_back_to_defaults(course):
    """Check that nbgrader read our config: a broken one is only logged, and defaults wipe the blanks."""
    _, log = course
    assert "Exception while loading config" not in log
    assert "Traceback" not in log


def test_release_reproduces_the_committed_notebooks(course):
    """Check that notebooks/ is exactly what nbgrader generates from solutions/ (else run `make release`)."""
    root, _ = course
    generated, committed = _course_files(root / "notebooks"), _course_files(REPO / "notebooks")
    assert generated == committed, "notebooks/ holds other files than the release: run `make release`"
    for relative in generated:
        assert (root / "notebooks" / relative).read_bytes() == (REPO / "notebooks" / relative).read_bytes(), (
            f"notebooks/{relative} is out of date with solutions/: run `make release`"
        )


@pytest.mark.parametrize("solution_path", SOLUTION_NOTEBOOKS, ids=lambda p: p.name)
def test_release_holds_no_solution_text_or_hidden_tests(course, solution_path):
    """Check that the release has ___ where each marker was, and no solution line, marker or hidden test."""
    root, _ = course
    release_path = root / "notebooks" / solution_path.relative_to(REPO / "solutions")
    released = {cells.nbgrader(cell).get("grade_id"): cells.source(cell) for cell in _code_cells(release_path)}
    whole_release = release_path.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", MARKER, BUG_MARKER):
        assert marker not in whole_release
    for cell in _code_cells(solution_path):
        source, grade_id = cells.source(cell), cells.nbgrader(cell).get("grade_id")
        marked = [line.split(MARKER)[0].strip() for line in source.splitlines() if MARKER in line]
        if marked:
            assert BLANK in released[grade_id], f"cell {grade_id} lost its blanks"
            for solution_line in marked:
                assert solution_line not in released[grade_id], f"solution line left in {grade_id}: {solution_line}"
        for line in (line for line in source.splitlines() if BUG_MARKER in line):
            fixed, planted = (part.strip() for part in line.split(BUG_MARKER))
            assert fixed not in released[grade_id], f"the fix is left in {grade_id}: {fixed}"
            assert planted in released[grade_id], f"{grade_id} lost its planted bug: {planted}"
    written = [
        cell
        for cell in json.loads(solution_path.read_text())["cells"]
        if cell["cell_type"] == "markdown" and cells.nbgrader(cell).get("solution")
    ]
    for cell in written:
        assert cells.source(cell)[:60] not in whole_release, (
            f"the model answer of {cells.nbgrader(cell)['grade_id']} is in the release"
        )
        hidden = re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", source, flags=re.S)
        for line in "".join(hidden).splitlines():
            if len(line.strip()) > 12:
                assert line.strip() not in released[grade_id], f"hidden test line left in {grade_id}: {line}"


def test_autograding_gives_the_solutions_full_marks_and_the_release_zero(autograded):
    """Check the scores nbgrader's gradebook holds after autograding (written answers wait for the instructor)."""
    with Gradebook(f"sqlite:///{autograded / 'gradebook.db'}") as gradebook:
        for name in ASSIGNMENTS:
            solution = gradebook.find_submission(name, "solution")
            untouched = gradebook.find_submission(name, "untouched")
            assert solution.max_code_score > 0
            assert solution.code_score == solution.max_code_score, (
                f"{name}: the solutions scored {solution.code_score}/{solution.max_code_score}"
            )
            assert solution.written_score == 0 and solution.needs_manual_grade == (solution.max_written_score > 0)
            assert untouched.score == 0 and not untouched.needs_manual_grade, (
                f"{name}: the untouched release scored {untouched.score}"
            )


def test_written_answers_are_reported_for_grading_by_hand(autograded):
    """Check that grades.csv lists each written answer, at 0 with a note until the instructor grades it."""
    with open(autograded / "grading" / "grades.csv") as file:
        rows = list(csv.DictReader(file))
    written = {
        (path.parent.name, cells.nbgrader(cell)["grade_id"])
        for path in SOLUTION_NOTEBOOKS
        for cell in json.loads(path.read_text())["cells"]
        if cell["cell_type"] == "markdown" and cells.nbgrader(cell).get("grade")
    }
    assert written, "no written answers in the course"
    for row in rows:
        by_hand = (row["assignment"], row["test"]) in written
        waiting = WRITTEN_ANSWER_NOTE in row["note"]
        if row["student"] == "solution":
            assert waiting == by_hand, row
            assert float(row["score"]) == (0.0 if by_hand else float(row["max_score"])), row
        else:
            assert not waiting and float(row["score"]) == 0.0, row


def test_unfilled_blanks_fail_with_the_friendly_message(autograded):
    """Check that each answer cell with ___ in the untouched release stops with the lines to fill."""
    checked = 0
    for path in (autograded / "autograded" / "untouched").glob("*/*.ipynb"):
        for cell in _code_cells(path):
            if cells.nbgrader(cell).get("solution") and BLANK in cells.source(cell):
                errors = [output for output in cell["outputs"] if output["output_type"] == "error"]
                assert errors and errors[0]["ename"] == UnfilledBlankError.__name__
                traceback = "\n".join(errors[0]["traceback"])
                assert "Fill in:" in traceback and "line " in traceback and "Traceback" not in traceback
                checked += 1
    assert checked > 0


def test_graded_solutions_write_nothing_to_stderr(autograded):
    """Check that no cell of a graded solution writes to stderr, which would score a test cell 0."""
    for path in (autograded / "autograded" / "solution").glob("*/*.ipynb"):
        for cell in _code_cells(path):
            streams = [output for output in cell["outputs"] if output.get("name") == "stderr"]
            assert not streams, f"{path.name}, cell {cells.nbgrader(cell).get('grade_id')}: {streams}"


def test_no_graded_test_cell_ends_on_a_value(autograded):
    """Check that no test cell shows a value: nbgrader reads a number there as the cell's partial credit."""
    for path in (autograded / "autograded").glob("*/*/*.ipynb"):
        for cell in _code_cells(path):
            meta = cells.nbgrader(cell)
            if meta.get("grade") and not meta.get("solution"):
                values = [output for output in cell["outputs"] if output["output_type"] == "execute_result"]
                assert not values, f"{path.name}, test cell {meta['grade_id']} ends on a value: {values[0]['data']}"


@pytest.mark.parametrize(
    "path", SOLUTION_NOTEBOOKS + RELEASE_NOTEBOOKS, ids=lambda p: f"{p.parent.parent.name}/{p.name}"
)
def test_notebooks_are_committed_without_outputs(path):
    """Check that notebooks carry no outputs or execution counts."""
    for cell in _code_cells(path):
        assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path}: clear the outputs"


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=lambda p: p.name)
def test_each_introduction_states_the_grading_contract_as_graded(path):
    """Check the opening's Grading paragraph: the notebook's points and each exercise's, as its metadata gives them."""
    from dqn_helpers.instructor.grading import graded_cells

    assignment = path.parent.name
    graded = [cell for cell in graded_cells(REPO / "solutions") if cell.assignment == assignment]
    opening = " ".join(cells.source(json.loads(path.read_text())["cells"][0]).split())
    assert "**Grading.**" in opening, f"{path.name}: the opening must state how the notebook is graded"
    contract = opening[opening.index("**Grading.**") :]
    assert f"worth {sum(cell.points for cell in graded):g} points" in contract, contract
    written = sum(cell.points for cell in graded if cell.exercise == cell.test)
    assert (f"{written:g} for written answers" in contract) == bool(written), contract
    if assignment != "07_debugging":  # there the checks follow the script's functions, named in words
        exercises: dict[str, float] = {}
        for cell in graded:
            if cell.exercise != cell.test:
                exercises[cell.exercise] = exercises.get(cell.exercise, 0) + cell.points
        for exercise, points in exercises.items():
            assert f"`{exercise}` {points:g}" in contract, (exercise, points, contract)
    checks_own_code = "assert_own_code" in path.read_text()
    assert ("must be your own code" in contract) == checks_own_code, "say it exactly where hidden tests check it"


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=lambda p: p.name)
def test_solution_notebooks_follow_the_course_conventions(path):
    """Check ids, points, the set-up cell, test docstrings, and the opening's objectives and time."""
    notebook = json.loads(path.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    all_cells = notebook["cells"]
    ids = [cells.nbgrader(cell).get("grade_id") for cell in all_cells if "nbgrader" in cell["metadata"]]
    assert len(ids) == len(set(ids)) and all(GRADE_ID.fullmatch(i) for i in ids)
    first_code = next(cell for cell in all_cells if cell["cell_type"] == "code")
    assert cells.nbgrader(first_code).get("locked") and "%load_ext dqn_helpers.blanks" in cells.source(first_code)
    tests = [cell for cell in all_cells if cells.nbgrader(cell).get("grade") and cell["cell_type"] == "code"]
    assert tests, "no graded test cells"
    for cell in tests:
        assert cells.nbgrader(cell)["points"] > 0
        assert cells.source(cell).startswith('"""Check that'), (
            f"{cells.nbgrader(cell)['grade_id']}: start with a docstring"
        )
    opening = cells.source(all_cells[0])
    assert opening.startswith("# ") and "**Time:**" in opening and "You will be able to" in opening
    time = " ".join(opening[opening.index("**Time:**") :].split("\n\n")[0].split())
    # The reading time can only be estimated; the running time is measured, and the README gives the command.
    assert "(an estimate)" in time and "on the course's 2-core machine" in time, time
    assert "## Summary" in "".join(cells.source(cell) for cell in all_cells if cell["cell_type"] == "markdown")


NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
STATED_BLANKS = re.compile(rf"\b({'|'.join(NUMBER_WORDS)}|\d+) blanks?\b", re.IGNORECASE)


@pytest.mark.parametrize("path", RELEASE_NOTEBOOKS, ids=lambda p: p.name)
def test_a_stated_number_of_blanks_is_the_number_in_the_exercise(path):
    """Check that "Fill in the N blanks" counts the `___` of the next code cell that has any."""
    all_cells = json.loads(path.read_text())["cells"]
    stated = 0
    for index, cell in enumerate(all_cells):
        if cell["cell_type"] != "markdown":
            continue
        for match in STATED_BLANKS.finditer(cells.source(cell)):
            word = match.group(1).lower()
            count = NUMBER_WORDS.get(word) or int(word)
            exercise = next(c for c in all_cells[index + 1 :] if c["cell_type"] == "code" and BLANK in cells.source(c))
            found = cells.source(exercise).count(BLANK)
            assert count == found, f"{path.name}, cell {index}: says {match.group(0)!r}, the exercise has {found}"
            stated += 1
    if path.parent.name == "00_setup":  # the control: a notebook known to state its count
        assert stated, "the pattern found no stated count where there is one"


def _page_text(path: Path) -> str:
    """The text an HTML page shows: tags (and so the syntax highlighting's spans) removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def _hidden_test_lines(solution_path: Path) -> tuple[list[str], int]:
    """The hidden tests' lines that the release does not show anyway, and the number of hidden regions."""
    released = (REPO / "notebooks" / solution_path.relative_to(REPO / "solutions")).read_text()
    regions = [
        region
        for cell in _code_cells(solution_path)
        for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cells.source(cell), flags=re.S)
    ]
    lines = {line.strip() for region in regions for line in region.splitlines() if len(line.strip()) > 12}
    return sorted(line for line in lines if json.dumps(line)[1:-1] not in released), len(regions)


@pytest.fixture(scope="module")
def feedback(autograded) -> Path:
    """The feedback HTML of both graded students, as `make feedback` writes it."""
    _nbgrader(autograded, "generate_feedback", "*")  # as `make feedback` does
    return autograded / "feedback"


def test_feedback_shows_every_test_and_message_but_no_hidden_test(feedback):
    """Check each feedback page: every test cell's score and visible lines, the checks' messages, no hidden line."""
    for student in STUDENTS:
        for solution_path in SOLUTION_NOTEBOOKS:
            page = feedback / student / solution_path.parent.name / solution_path.with_suffix(".html").name
            text = _page_text(page)
            hidden, regions = _hidden_test_lines(solution_path)
            assert [line for line in hidden if line in text] == [], f"{page}: hidden tests shown"
            assert text.count(HIDDEN_NOTE) == regions, page
            tests = [
                cell
                for cell in _code_cells(solution_path)
                if cells.nbgrader(cell).get("grade") and not cells.nbgrader(cell).get("solution")
            ]
            assert text.count("(Top)") >= len(tests), f"{page}: a test cell's score is missing"
            for cell in tests:
                visible = re.sub(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS", "", cells.source(cell), flags=re.S)
                for line in (line.strip() for line in visible.splitlines() if line.strip()):
                    assert line in text, f"{page}: the visible test line {line!r} is missing"
    untouched = _page_text(feedback / "untouched" / "01_q_learning" / "01_q_learning.html")
    assert "UnfilledBlankError: this cell still has ___ blanks" in untouched


def test_nbgraders_own_feedback_would_show_the_hidden_tests(autograded, tmp_path):
    """Check that the test above could fail: nbgrader's default feedback shows the hidden tests."""
    _nbgrader(
        autograded,
        "generate_feedback",
        "01_q_learning",
        f"--CourseDirectory.feedback_directory={tmp_path}",
        '--GenerateFeedback.preprocessors=["nbgrader.preprocessors.GetGrades"]',
    )
    text = _page_text(tmp_path / "untouched" / "01_q_learning" / "01_q_learning.html")
    hidden, _ = _hidden_test_lines(REPO / "solutions" / "01_q_learning" / "01_q_learning.ipynb")
    assert hidden and all(line in text for line in hidden)
