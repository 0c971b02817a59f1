"""Inline ``___`` blanks: the release preprocessor and the IPython extension."""

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython
from nbformat.v4 import new_code_cell, new_notebook

from dqn_helpers.blanks import (
    NAME_ERROR_HINT,
    BlankTemplateError,
    ClearSolutionsWithBlanks,
    UnfilledBlankError,
    apply_blank,
    apply_bug,
    find_blanks,
)



def _ipython():
    """The test session's one IPython shell (start_ipython returns it only on its first call)."""
    start_ipython()
    return InteractiveShell.instance()


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
        "grade": grade, "grade_id": "cell", "locked": not solution, "schema_version": 3, "solution": solution,
    }  # fmt: skip
    return cell


def _release(*cells):
    notebook = new_notebook(cells=list(cells), metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
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
        ("x = layers.Conv2D(64, 3, strides=1)(x)  # BUG:x = layers.Conv2D(64, 3, 3)(x)", "x = layers.Conv2D(64, 3, 3)(x)"),
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


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a = 1", []),
        ("a = ___", [(1, "a = ___")]),
        ("a = 1\nb = f(___,\n      ___)", [(2, "b = f(___,"), (3, "      ___)")]),
        ("s = '___'  # ___ in a comment", []),
        ("obj.___ = 3", []),
        ("def broken(:\n    ___", []),
    ],
)
def test_find_blanks_reports_lines_that_read_the_blank(source, expected):
    """Check that only the name ___ counts, not strings, comments or attributes; broken code reports none."""
    assert find_blanks(source) == expected


@pytest.fixture
def shell():
    """A real IPython shell with the extension loaded (and unloaded afterwards)."""
    ipython = _ipython()
    ipython.run_line_magic("load_ext", "dqn_helpers.blanks")
    yield ipython
    ipython.run_line_magic("unload_ext", "dqn_helpers.blanks")
    ipython.user_ns.pop("ran", None)


def test_cell_with_a_blank_does_not_run_and_names_the_line(shell):
    """Check that a cell reading ___ runs none of its lines and says which to fill."""
    result = shell.run_cell("ran = True\nvalue = ___ + 1")
    assert isinstance(result.error_in_exec, UnfilledBlankError)
    assert "ran" not in shell.user_ns
    assert result.error_in_exec.lines == [(2, "value = ___ + 1")]
    assert "line 2: value = ___ + 1" in str(result.error_in_exec)


def test_blank_error_shows_a_short_message_instead_of_a_traceback(shell):
    """Check that IPython renders the friendly lines, without a Python traceback."""
    result = shell.run_cell("x = ___")
    rendered = result.error_in_exec._render_traceback_()
    assert rendered[0].startswith("UnfilledBlankError: this cell still has ___ blanks")
    assert "  line 1:  x = ___" in rendered
    assert not any("Traceback" in row for row in rendered)


def test_filled_cells_and_magics_run_normally(shell):
    """Check that the extension leaves complete cells, magics and strings with ___ alone."""
    result = shell.run_cell("%time ran = '___'")
    assert result.success and shell.user_ns["ran"] == "___"


def test_syntax_errors_stay_syntax_errors(shell):
    """Check that a cell that does not parse gets Python's own SyntaxError."""
    result = shell.run_cell("x = (___")
    assert isinstance(result.error_before_exec, SyntaxError)


def test_undefined_names_get_a_hint_about_exercise_cells(shell):
    """Check that a NameError tells the student to run the exercise cell that defines the name."""
    result = shell.run_cell("not_defined_yet(1)")
    assert isinstance(result.error_in_exec, NameError)
    assert NAME_ERROR_HINT in str(result.error_in_exec)
    assert "not_defined_yet" in str(result.error_in_exec)


def test_without_the_extension_ipython_binds_the_blank_to_output_history():
    """Check the trap the extension exists for: plain IPython runs ___ as ''."""
    ipython = _ipython()
    ipython.run_line_magic("unload_ext", "dqn_helpers.blanks")
    result = ipython.run_cell("blank_value = ___")
    assert result.success and ipython.user_ns.pop("blank_value") == ""


def test_release_of_a_real_notebook_round_trips_through_nbformat(tmp_path):
    """Check that a released notebook with blanks is valid nbformat."""
    notebook = new_notebook(cells=[_solution_cell("a = 1  # BLANK: a = ___")])
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    released, _ = ClearSolutionsWithBlanks().preprocess(notebook, {})
    path = tmp_path / "released.ipynb"
    nbformat.write(released, path)
    nbformat.validate(nbformat.read(path, as_version=4))
