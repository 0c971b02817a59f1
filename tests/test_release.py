"""The release: inline ``___`` blanks and planted bugs from marked solution lines."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dqn_helpers.instructor.release import BlankTemplateError, ClearSolutionsWithBlanks, apply_blank, apply_bug

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x = 1", "x = 1"),
        ("x = f(1)  # BLANK: x = ___", "x = ___"),
        ("    y = conv(32, strides=4)  # BLANK: y = conv(___, strides=___)", "    y = conv(___, strides=___)"),
        ("\tdone = a or b # BLANK: done = ___ or ___", "\tdone = ___ or ___"),
        ("z = g(h(2), 3)  # BLANK:z = g(___, 3)", "z = g(___, 3)"),
    ],
)
def test_apply_blank_replaces_marked_lines_with_their_template(line, expected):
    """Check that a marked line becomes its template, indented like the solution, and others stay."""
    assert apply_blank(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("x = f(1)  # BLANK: x = f(2)", "must contain ___"),
        ("x = f(1)  # BLANK: y = ___", "does not match"),
        ("x = conv(32, strides=4)  # BLANK: x = conv(___, stride=___)", "does not match"),
        ("# BLANK: x = ___", "does not match"),
    ],
)
def test_apply_blank_refuses_templates_that_drifted_from_the_solution(line, message):
    """Check that a template must be the solution line with parts replaced by ___."""
    with pytest.raises(BlankTemplateError, match=message):
        apply_blank(line)


def _solution_cell(source, *, solution=True, grade=False):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": grade,
        "grade_id": "cell",
        "locked": not solution,
        "schema_version": 3,
        "solution": solution,
    }
    return cell


def _release(*cells):
    notebook = new_notebook(
        cells=list(cells),
        metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    )
    released, _ = ClearSolutionsWithBlanks().preprocess(notebook, {})
    return [cell.source for cell in released.cells]


def test_release_keeps_the_rest_of_a_cell_with_blanks():
    """Check that a solution cell with markers and no solution region keeps its other lines."""
    source = "def f(a):\n    b = a * 2  # BLANK: b = ___\n    return b"
    assert _release(_solution_cell(source)) == ["def f(a):\n    b = ___\n    return b"]


def test_release_combines_blanks_with_solution_regions():
    """Check that markers and ### BEGIN SOLUTION regions work in the same cell."""
    source = "x = 1  # BLANK: x = ___\n### BEGIN SOLUTION\ny = 2  # BLANK: y = ___\n### END SOLUTION\nz = x"
    assert _release(_solution_cell(source)) == [f"x = ___\n{STUB}\nz = x"]


def test_release_still_stubs_plain_solution_cells():
    """Check that cells without markers keep nbgrader's own behaviour."""
    assert _release(_solution_cell("answer = 42")) == [STUB]


def test_release_refuses_markers_outside_solution_cells():
    """Check that a test or locked cell can never be changed by a marker."""
    cell = _solution_cell("assert f(1) == 2  # BLANK: assert f(___) == 2", solution=False, grade=True)
    with pytest.raises(BlankTemplateError, match="solution cells only"):
        _release(cell)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("y = q.max(axis=1)", "y = q.max(axis=1)"),
        ("    y = q.max(axis=1)  # BUG: y = q.max()", "    y = q.max()"),
        (
            "x = layers.Conv2D(64, 3, strides=1)(x)  # BUG:x = layers.Conv2D(64, 3, 3)(x)",
            "x = layers.Conv2D(64, 3, 3)(x)",
        ),
    ],
)
def test_apply_bug_puts_the_planted_line_in_place_of_the_solution(line, expected):
    """Check that a line marked # BUG: becomes the buggy line, indented like the solution, and others stay."""
    assert apply_bug(line) == expected


@pytest.mark.parametrize(
    "line",
    ["y = q.max(axis=1)  # BUG: y = q.max(axis=1)", "y = 1  # BUG:", "# BUG: y = q.max()", "y = 1  # BUG: y = ___"],
)
def test_apply_bug_refuses_a_bug_that_is_no_bug(line):
    """Check that the bug must follow a solution line, differ from it, and be complete."""
    with pytest.raises(BlankTemplateError, match="different, complete line"):
        apply_bug(line)


def test_release_plants_bugs_and_keeps_the_rest_of_the_cell():
    """Check that a solution cell with # BUG: markers releases the buggy function, whole and unmarked."""
    source = "def f(q):\n    m = q.max(axis=1)  # BUG: m = q.max()\n    return m * 2  # BLANK: return m * ___"
    assert _release(_solution_cell(source)) == ["def f(q):\n    m = q.max()\n    return m * ___"]


def test_release_refuses_a_planted_bug_that_breaks_the_cell():
    """Check that a released cell with its bugs planted must still be valid Python."""
    with pytest.raises(BlankTemplateError, match="not valid Python once released"):
        _release(_solution_cell("def f(q):\n    return q.max(axis=1)  # BUG: return q.max(axis=1"))


def test_release_refuses_bug_markers_outside_solution_cells():
    """Check that a test or locked cell can never be changed by a bug marker."""
    with pytest.raises(BlankTemplateError, match="solution cells only"):
        _release(_solution_cell("y = 2  # BUG: y = 3", solution=False, grade=True))


def test_release_of_a_real_notebook_round_trips_through_nbformat(tmp_path):
    """Check that a released notebook with blanks is valid nbformat."""
    notebook = new_notebook(cells=[_solution_cell("a = 1  # BLANK: a = ___")])
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    released, _ = ClearSolutionsWithBlanks().preprocess(notebook, {})
    path = tmp_path / "released.ipynb"
    nbformat.write(released, path)
    nbformat.validate(nbformat.read(path, as_version=4))
