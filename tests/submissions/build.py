"""Write the fixture submissions of tests/submissions/ from the course's notebooks.

Each hand-in is laid out as in an instructor's ``submitted/<student>/<assignment>/``:
the release notebook with the blanks filled in (:func:`filled_in`), then changed.

- ``robustness/``: notebook 01 broken in the ways real submissions are;
  ``robustness/expected.json`` says what grading each must give: its status, the
  test cells it must lose, and a phrase its note must contain.
- ``mistakes/``: one classic DQN mistake each, from ``catalogue.MISTAKES``.
- ``tampering/``: notebook 01 from students who go after the points without the
  work (turning the tests off, reading the solutions, writing into other students'
  files, the network), and one honest student whose ordinary extras must not look
  like tampering; ``tampering/expected.json`` as for ``robustness/``, and which
  students only the sandbox stops. They are graded in one class with ``robustness/``:
  ``writes_elsewhere`` goes after the files of its student ``correct``.

Run ``python -m tests.submissions.build`` after changing a notebook; a test fails
while the committed fixtures differ from what this writes.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path

from dqn_helpers.instructor.grading import graded_cells
from dqn_helpers.instructor.release import MARKER
from tests import cells
from tests.submissions.catalogue import MISTAKES

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ASSIGNMENT = "01_q_learning"
SOLUTION_LINES = ("### BEGIN SOLUTION", "### END SOLUTION")

Notebook = dict


def student_answer(solution_source: str) -> str:
    r"""An answer cell as a student fills it: the solution without nbgrader's or our markers.

    Example:
        >>> student_answer("x = 1  # BLANK: x = ___\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION")
        'x = 1\ny = 2'
    """
    lines = [
        line.split(MARKER)[0].rstrip() for line in solution_source.splitlines() if line.strip() not in SOLUTION_LINES
    ]
    return "\n".join(lines)


def filled_in(assignment: str = ASSIGNMENT) -> Notebook:
    """The release notebook of ``assignment`` with every answer cell filled in with its solution.

    Args:
        assignment: The assignment (and notebook) name.

    Returns:
        The notebook, as a dict in nbformat 4.
    """
    solution = json.loads((REPO / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    release = json.loads((REPO / "notebooks" / assignment / f"{assignment}.ipynb").read_text())
    solutions = {cells.nbgrader(cell).get("grade_id"): cells.source(cell) for cell in solution["cells"]}
    for cell in release["cells"]:
        if cells.nbgrader(cell).get("solution"):
            cell["source"] = student_answer(solutions[cells.nbgrader(cell)["grade_id"]])
    return release


def cell(notebook: Notebook, grade_id: str) -> dict:
    """The cell of ``notebook`` with this grade_id."""
    return next(c for c in notebook["cells"] if cells.nbgrader(c).get("grade_id") == grade_id)


def _edit(notebook: Notebook, grade_id: str, edit: Callable[[str], str]) -> Notebook:
    notebook = copy.deepcopy(notebook)
    target = cell(notebook, grade_id)
    target["source"] = edit(cells.source(target))
    return notebook


def _replace(source: str, old: str, new: str) -> str:
    if old not in source:
        raise ValueError(f"the solution changed: {old!r} is not in\n{source}")
    return source.replace(old, new)


def fixtures() -> dict[str, bytes | Notebook]:
    """Every fixture student's notebook (or raw bytes), by student name; see expected.json."""
    correct = filled_in()
    # A td_targets that forgets `terminated`: only td_targets loses points (q_learning's checks run it with the
    # package's td_targets, checks.reference_answers).
    forgot_terminated = _edit(
        correct, "td_targets", lambda s: _replace(s, "gamma * not_over * best_next", "gamma * best_next")
    )
    edited_tests = _edit(forgot_terminated, "td_targets_terminal", lambda s: s.splitlines()[0] + "\npass\n")
    cell(edited_tests, "td_targets_terminal")["metadata"]["nbgrader"]["points"] = 50
    deleted_tests = copy.deepcopy(forgot_terminated)
    deleted_tests["cells"] = [
        c
        for c in deleted_tests["cells"]
        if cells.nbgrader(c).get("grade_id") not in ("td_targets_terminal", "q_learning_optimal_path")
    ]
    text = json.dumps(correct, indent=1)
    return {
        "correct": correct,
        "untouched": json.loads((REPO / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()),
        "syntax_error": _edit(correct, "epsilon_greedy", lambda s: _replace(s, "< epsilon:", "< epsilon")),
        "setup_exception": _edit(correct, "setup", lambda s: "import a_package_we_do_not_have\n" + s),
        "endless_loop": _edit(
            correct,
            "huber_loss",
            lambda s: "step = 0\nwhile step < 10:  # forgot step += 1\n    delta = 1.0 / (step + 1)\n\n" + s,
        ),
        "memory_hog": _edit(
            correct,
            "q_learning",
            lambda s: (
                "# keep a copy of every table, 1 GiB each\nhistory = [np.ones(2**27) for _ in range(400)]\n\n" + s
            ),
        ),
        "forgot_terminated": forgot_terminated,
        "tests_edited": edited_tests,
        "tests_deleted": deleted_tests,
        "renamed": correct,
        "not_json": text[: len(text) // 2].encode(),
        "empty_file": b"",
    }


# The first line of the issue that asked for tamper-evident grading: every test cell becomes `pass`.
HIDE_TESTS = (
    "get_ipython().input_transformers_cleanup.append("
    'lambda lines: ["pass\\n"] if lines and lines[0].startswith(\'"""Check\') else lines)\n'
)
SWALLOW_ERRORS = (
    "get_ipython().set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)\n"
)
ZERO_HUBER = "    return np.zeros_like(np.asarray(errors, dtype=float))  # the work left undone\n"
REPLACE_CHECKS = (
    "import dqn_helpers.checks\n"
    "dqn_helpers.checks.q_learning.check_huber_loss_values = lambda *args, **kwargs: None\n"
    "dqn_helpers.checks.assert_own_code = lambda *args, **kwargs: None\n"
    "np.allclose = lambda *args, **kwargs: True\n\n"
)
# The same, through a list: no name of a module is assigned to, so only the kernel's fingerprint sees it.
REPLACE_CHECKS_QUIETLY = (
    "targets = [np, checks, checks.q_learning]\n"
    "targets[0].allclose = lambda *args, **kwargs: True\n"
    "targets[1].assert_own_code = lambda *args, **kwargs: None\n"
    "targets[2].check_huber_loss_values = lambda *args, **kwargs: None\n\n"
)
READ_SOLUTION = (
    "import json\n"
    "from pathlib import Path\n\n"
    "# The course folder is three levels up from the notebook's: take td_targets from the instructor's notebook.\n"
    "solution = json.loads((Path.cwd().parents[2] / 'solutions' / '01_q_learning' / '01_q_learning.ipynb').read_text())\n"
    "code = next(''.join(c['source']) for c in solution['cells'] if c['metadata'].get('nbgrader', {}).get('grade_id') == 'td_targets')\n"
    "Path('stolen.py').write_text('import numpy as np\\n' + code)\n"
    "from stolen import td_targets\n"
)
WRITE_ELSEWHERE = (
    "\n\nfrom pathlib import Path\n\n"
    "course = Path.cwd().parents[2]\n"
    "for target in [course / 'gradebook.db', course / 'submitted' / 'correct' / '01_q_learning' / '01_q_learning.ipynb',\n"
    "               course / 'autograded' / 'correct' / '01_q_learning' / '01_q_learning.ipynb']:\n"
    "    try:\n"
    "        target.write_text('overwritten by writes_elsewhere')\n"
    "        print('wrote', target)\n"
    "    except OSError as error:\n"
    "        print('could not write', target, error)\n"
)
USE_NETWORK = (
    "\n\nimport urllib.request\n\n"
    "try:\n"
    "    urllib.request.urlopen('http://1.1.1.1/', timeout=10)\n"
    "    print('reached the network')\n"
    "except OSError as error:\n"
    "    print('no network:', error)\n"
)
# Ordinary Python in answer cells: helpers, a class, printing, plotting, timing magics, imports.
HONEST_EXTRAS = (
    "\n\nimport math\n"
    "from collections import defaultdict\n"
    "import matplotlib.pyplot as plt\n\n\n"
    "class Tracker:\n"
    '    """Counts what it is shown."""\n\n'
    "    def __init__(self):\n"
    "        self.counts = defaultdict(int)\n\n"
    "    def __call__(self, value):\n"
    "        self.counts[value] += 1\n"
    "        return self.counts[value]\n\n\n"
    "def describe(values):\n"
    "    values = np.asarray(values, dtype=float)\n"
    "    return f'mean {values.mean():.3f}, largest {values.max():.3f}, log {math.log1p(abs(values.max())):.3f}'\n\n\n"
    "tracker = Tracker()\n"
    "tracker('td_targets')\n"
    "print(describe(td_targets(np.ones(3), np.zeros(3), np.ones((3, 2)), 0.9)))\n"
    "figure, axis = plt.subplots(figsize=(3, 2))\n"
    "axis.plot(td_targets(np.ones(3), np.zeros(3), np.ones((3, 2)), 0.9))\n"
    "plt.show()\n"
)


def tampering() -> dict[str, Notebook]:
    """Every tampering fixture's notebook, by student name; see tampering/expected.json."""
    correct = filled_in()
    untouched = json.loads((REPO / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())

    def zero_huber(patch: str) -> Notebook:
        def edit(source: str) -> str:
            head, _, _ = source.partition("    absolute = np.abs(errors)")
            return patch + head + ZERO_HUBER

        return _edit(correct, "huber_loss", edit)

    honest = _edit(correct, "td_targets", lambda s: s + HONEST_EXTRAS)
    honest = _edit(honest, "huber_loss", lambda s: "%%time\n" + s)
    honest = _edit(
        honest,
        "q_learning",
        lambda s: "%matplotlib inline\n" + s + "\n\nprint('q_learning is defined:', callable(q_learning))\n",
    )
    return {
        "hides_tests": _edit(untouched, "td_targets", lambda s: HIDE_TESTS + s),
        "swallows_errors": _edit(untouched, "td_targets", lambda s: SWALLOW_ERRORS + s),
        "replaces_checks": zero_huber(REPLACE_CHECKS),
        "replaces_checks_quietly": zero_huber(REPLACE_CHECKS_QUIETLY),
        "reads_solution": _edit(correct, "td_targets", lambda s: READ_SOLUTION),
        "writes_elsewhere": _edit(correct, "td_targets", lambda s: s + WRITE_ELSEWHERE),
        "uses_network": _edit(correct, "td_targets", lambda s: s + USE_NETWORK),
        "honest_extras": honest,
    }


def notebook_name(student: str) -> str:
    """The file name each fixture student handed in."""
    return f"{ASSIGNMENT}-Copy1.ipynb" if student == "renamed" else f"{ASSIGNMENT}.ipynb"  # Jupyter's "Duplicate"


def mistakes() -> dict[str, Notebook]:
    """Every mistake of the catalogue as a filled-in notebook, by mistake name."""
    correct = {mistake.assignment: filled_in(mistake.assignment) for mistake in MISTAKES}
    made = {}
    for mistake in MISTAKES:
        notebook = correct[mistake.assignment]
        for old, new in mistake.edits:
            notebook = _edit(notebook, mistake.exercise, lambda source, old=old, new=new: _replace(source, old, new))
        made[mistake.name] = notebook
    return made


def write(folder: Path, *, broken: bool = False) -> list[Path]:
    """Write every fixture as ``folder/{robustness,mistakes,tampering}/<student>/<assignment>/<notebook>``; returns the files.

    The hand-ins that are not notebooks at all (invalid JSON, an empty file) are
    written only with ``broken=True``: the tests make them when they run, and the
    repository holds notebooks only.
    """
    hand_ins = [
        ("robustness", student, ASSIGNMENT, notebook_name(student), content)
        for student, content in fixtures().items()
        if broken or not isinstance(content, bytes)
    ]
    assignments = {mistake.name: mistake.assignment for mistake in MISTAKES}
    hand_ins += [
        ("mistakes", name, assignments[name], f"{assignments[name]}.ipynb", nb) for name, nb in mistakes().items()
    ]
    hand_ins += [("tampering", name, ASSIGNMENT, f"{ASSIGNMENT}.ipynb", nb) for name, nb in tampering().items()]
    written = []
    for group, student, assignment, name, content in hand_ins:
        path = folder / group / student / assignment / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else (json.dumps(content, indent=1) + "\n").encode())
        written.append(path)
    return written


CATALOGUE_DOC = REPO / "docs" / "bug_catalogue.md"


def catalogue_table() -> str:
    """docs/bug_catalogue.md: every mistake of the catalogue, where it sits, the points it loses and what the check says."""
    points = {(cell.assignment, cell.test): cell.points for cell in graded_cells(REPO / "solutions")}
    lines = [
        "# The classic-bug catalogue",
        "",
        "Each row is a mistake students make, planted in a filled-in notebook",
        "(`tests/submissions/mistakes/<mistake>/`): the notebook loses exactly the test cells listed, all",
        "of the exercise where the mistake sits (a check runs a later exercise with the package's version",
        "of the earlier ones it calls), and keeps every other point; the failing check's output contains",
        "the words quoted. `tests/test_bug_catalogue.py` asserts it for every row by running the hand-in's",
        "answer and test cells (hidden tests included), and grades one row per notebook with",
        "`python -m dqn_helpers grade`. Written by `python -m tests.submissions.build` from",
        "`tests/submissions/catalogue.py`; `docs/checks.md` lists the checks the other way round.",
        "",
        "| mistake | notebook | exercise | test cells that fail | points lost | the check says |",
        "| --- | --- | --- | --- | ---: | --- |",
    ]
    for mistake in MISTAKES:
        lost = sum(points[mistake.assignment, test] for test in mistake.lost)
        total = sum(value for (assignment, _), value in points.items() if assignment == mistake.assignment)
        message = mistake.message.replace("|", "\\|")
        lines.append(
            f"| {mistake.bug} | {mistake.assignment} | `{mistake.exercise}` | {', '.join(f'`{t}`' for t in mistake.lost)} "
            f'| {lost:g} of {total:g} | "...{message}..." |'
        )
    return "\n".join(lines) + "\n"


CHECKS_DOC = REPO / "docs" / "checks.md"
# The checks' module of each notebook.
CHECK_MODULES = {
    "01_q_learning": "q_learning",
    "02_preprocessing": "preprocessing",
    "03_replay": "replay",
    "04_q_network": "q_network",
    "05_training_loop": "training_loop",
    "06_evaluation": "evaluation",
    "07_debugging": "debugging",
}


def _what_it_names(check: Callable) -> str:
    """The ``AssertionError:`` entry of a check's docstring, on one line: the mistakes it tells apart."""
    doc = inspect.getdoc(check) or ""
    entry = doc.split("AssertionError:", 1)[1] if "AssertionError:" in doc else ""
    entry = re.split(r"\n\s*\n|\n\S", entry, maxsplit=1)[0]  # up to the next section
    return " ".join(entry.split()).replace("|", "\\|")


def checks_table() -> str:
    """docs/checks.md: every visible check, the test cells that call it, what it names, and the catalogue's mistakes."""
    lines = [
        "# What each check tells apart",
        "",
        "Every visible check of the notebooks (`dqn_helpers/checks/`), the graded test cells that call it",
        "(their points), the mistakes its message names (from its docstring: each is told apart from the",
        "others by its own evidence, or the message lists the likely causes), and the catalogue's planted",
        "mistakes that fail it (`docs/bug_catalogue.md`, asserted by `tests/test_bug_catalogue.py`).",
        "Written by `python -m tests.submissions.build`.",
        "",
        "| notebook | check | test cells (points) | names | catalogue mistakes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for assignment, module_name in CHECK_MODULES.items():
        module = importlib.import_module(f"dqn_helpers.checks.{module_name}")
        notebook = REPO / "solutions" / assignment / f"{assignment}.ipynb"
        tests = {
            grade_id: (source, cells.nbgrader(cell).get("points", 0))
            for grade_id, cell in cells.code_cells(notebook).items()
            if cells.nbgrader(cell).get("grade") and not cells.nbgrader(cell).get("solution")
            for source in [cells.source(cell)]
        }
        for name in sorted(name for name in module.__all__ if name.startswith("check_")):
            calls = [grade_id for grade_id, (source, _) in tests.items() if f"checks.{module_name}.{name}(" in source]
            caught = [m.name for m in MISTAKES if m.assignment == assignment and set(m.lost) & set(calls)]
            lines.append(
                f"| {assignment} | `{name}` | "
                + (", ".join(f"`{grade_id}` ({tests[grade_id][1]:g})" for grade_id in calls) or "used by other checks")
                + f" | {_what_it_names(getattr(module, name))} | {', '.join(f'`{m}`' for m in caught)} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for path in write(HERE):
        print(path.relative_to(REPO))
    CATALOGUE_DOC.write_text(catalogue_table())
    print(CATALOGUE_DOC.relative_to(REPO))
    CHECKS_DOC.write_text(checks_table())
    print(CHECKS_DOC.relative_to(REPO))
