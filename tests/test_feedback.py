"""Tests of dqn_helpers.instructor.feedback (the feedback pages themselves: tests/test_course.py)."""

from __future__ import annotations

import nbformat
import pytest

pytest.importorskip("nbgrader")

from dqn_helpers.instructor.feedback import HIDDEN_NOTE, HideHiddenTests, without_hidden_tests  # noqa: E402

TEST_CELL = """check_td_targets(td_targets)
    ### BEGIN HIDDEN TESTS
    assert secret_case() == 4.0
    ### END HIDDEN TESTS
print("visible after")"""


def _cell(source: str, grade: bool = True, solution: bool = False) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": grade, "solution": solution, "grade_id": "t", "points": 1}
    cell.outputs = [
        nbformat.v4.new_output(
            "error", ename="AssertionError", evalue="the max is over the wrong axis", traceback=["frame", "secret"]
        )
    ]
    return cell


def test_hidden_regions_become_one_note_in_place():
    """Check that the visible lines stay, in order, and each hidden region is one indented note."""
    assert without_hidden_tests(TEST_CELL).splitlines() == [
        "check_td_targets(td_targets)",
        "    " + HIDDEN_NOTE,
        'print("visible after")',
    ]


def test_an_unclosed_hidden_region_is_an_error_not_a_leak():
    """Check that a region without its end marker stops feedback rather than showing the rest."""
    with pytest.raises(ValueError, match="without '### END HIDDEN TESTS'"):
        without_hidden_tests("### BEGIN HIDDEN TESTS\nassert secret()")


def test_test_cells_keep_their_error_message_but_not_the_traceback():
    """Check that a test cell shows the error's name and message only, and that answer cells are left alone."""
    test, answer = _cell(TEST_CELL), _cell("### BEGIN HIDDEN TESTS\nx = 1", grade=True, solution=True)
    notebook = nbformat.v4.new_notebook(cells=[test, answer])

    HideHiddenTests().preprocess(notebook, {})

    assert "secret_case" not in test.source
    assert test.outputs[0].traceback == ["AssertionError: the max is over the wrong axis"]
    assert answer.source == "### BEGIN HIDDEN TESTS\nx = 1" and answer.outputs[0].traceback == ["frame", "secret"]
