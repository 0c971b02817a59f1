"""Feedback an instructor can release: each test's result and message, never the hidden tests.

``nbgrader autograde`` puts the hidden tests back into every test cell to run them,
and ``nbgrader generate_feedback`` renders the graded notebook as it is: the HTML a
student receives would show every hidden test. :class:`HideHiddenTests` (run by
``generate_feedback`` after nbgrader's ``GetGrades``, see ``nbgrader_config.py``)
removes them from each test cell first, and leaves in their place one line saying
that hidden tests ran. A failed test keeps what the student needs, the error's name
and message (a visible check's message names the mistake), but not its traceback,
whose frames would quote the hidden lines around the one that failed.
"""

from __future__ import annotations

from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbgrader_utils
from nbgrader.preprocessors import NbGraderPreprocessor

__all__ = ["HIDDEN_NOTE", "HideHiddenTests", "without_hidden_tests"]

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests ran here; they are not shown)"


def without_hidden_tests(source: str) -> str:
    """A test cell's source with each hidden-test region replaced by :data:`HIDDEN_NOTE`.

    Raises:
        ValueError: If a region is not closed (the cell would otherwise leak its tail).
    """
    lines, hidden = [], False
    for line in source.splitlines():
        if BEGIN in line:
            hidden = True
            lines.append(line[: len(line) - len(line.lstrip())] + HIDDEN_NOTE)
        elif END in line and hidden:
            hidden = False
        elif not hidden:
            lines.append(line)
    if hidden:
        raise ValueError(f"a test cell has '{BEGIN}' without '{END}': its hidden tests cannot be cut out")
    return "\n".join(lines)


class HideHiddenTests(NbGraderPreprocessor):
    """Remove the hidden tests, and the tracebacks that quote them, from the graded test cells."""

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[NotebookNode, dict]:
        """Cut the hidden tests out of a test cell, and keep only its errors' names and messages."""
        if cell.cell_type == "code" and nbgrader_utils.is_grade(cell) and not nbgrader_utils.is_solution(cell):
            cell.source = without_hidden_tests(cell.source)
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
