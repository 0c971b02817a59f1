"""Inline ``___`` blanks as students meet them: the IPython extension."""

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from dqn_helpers.blanks import NAME_ERROR_HINT, UnfilledBlankError, find_blanks


def _ipython():
    """The test session's one IPython shell (start_ipython returns it only on its first call)."""
    start_ipython()
    return InteractiveShell.instance()


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
