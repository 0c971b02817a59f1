"""Releasing the course: inline ``___`` blanks and planted bugs from marked solution lines.

**In the solution notebooks** a line that becomes a blank carries its student
version in a trailing marker, so the solution stays valid, runnable Python::

    conv = layers.Conv2D(32, 8, strides=4)  # BLANK: conv = layers.Conv2D(___, 8, strides=___)

:class:`ClearSolutionsWithBlanks` (used by ``nbgrader generate_assignment`` in
place of nbgrader's ``ClearSolutions``, see ``nbgrader_config.py``) replaces each
such line with its template, keeping the indentation, after checking that the
template is the solution line with some parts blanked out: the two cannot drift apart.

**Planted bugs** (notebook 07, where students debug a script): a solution line may
instead carry the buggy version the release shows, after ``# BUG:``::

    q_taken = tf.reduce_sum(q_values * mask, axis=1)  # BUG: q_taken = tf.reduce_max(q_values, axis=1)

The release gets the buggy line, unmarked; the cell must still be valid Python.

What students run of the blanks (the IPython extension that refuses a cell still
reading ``___``) is :mod:`dqn_helpers.blanks`, which needs no nbgrader.
"""

from __future__ import annotations

import ast
import re

from nbgrader import utils as nbgrader_utils
from nbgrader.preprocessors import ClearSolutions

from dqn_helpers.blanks import BLANK

__all__ = [
    "BUG_MARKER",
    "MARKER",
    "BlankTemplateError",
    "ClearSolutionsWithBlanks",
    "apply_blank",
    "apply_bug",
]

MARKER = "# BLANK:"
BUG_MARKER = "# BUG:"
_MARKED_LINE = re.compile(r"^(?P<indent>\s*)(?P<code>.*?)\s*" + re.escape(MARKER) + r" ?(?P<template>.*)$")
_BUGGY_LINE = re.compile(r"^(?P<indent>\s*)(?P<code>.*?)\s*" + re.escape(BUG_MARKER) + r" ?(?P<bug>.*)$")


class BlankTemplateError(ValueError):
    """A ``# BLANK:`` template does not match the solution line it annotates."""


def apply_blank(line: str) -> str:
    """Turn a solution line with a ``# BLANK:`` marker into its student version.

    Lines without a marker come back unchanged.

    Args:
        line: One line of a solution cell.

    Returns:
        The template, indented like the solution line.

    Raises:
        BlankTemplateError: If the template has no ``___`` or is not the solution
            line with parts replaced by ``___``.

    Example:
        >>> apply_blank("    x = conv(32, strides=4)  # BLANK: x = conv(___, strides=___)")
        '    x = conv(___, strides=___)'
    """
    match = _MARKED_LINE.match(line)
    if match is None:
        return line
    code, template = match["code"], match["template"].strip()
    if BLANK not in template:
        raise BlankTemplateError(f"a {MARKER} template must contain {BLANK}; line: {line.strip()!r}")
    pattern = "(.+?)".join(re.escape(part) for part in template.split(BLANK))
    if not code or re.fullmatch(pattern, code) is None:
        raise BlankTemplateError(
            f"the {MARKER} template must be the solution line with parts replaced by {BLANK}, "
            f"but {template!r} does not match {code!r}"
        )
    return match["indent"] + template


def apply_bug(line: str) -> str:
    """Turn a solution line with a ``# BUG:`` marker into the buggy line the release shows.

    Lines without a marker come back unchanged.

    Args:
        line: One line of a solution cell.

    Returns:
        The buggy line, indented like the solution line.

    Raises:
        BlankTemplateError: If the marker has no solution line before it, or its bug
            is empty, equal to the solution, or contains a ``___`` blank.

    Example:
        >>> apply_bug("    y = q.max(axis=1)  # BUG: y = q.max()")
        '    y = q.max()'
    """
    match = _BUGGY_LINE.match(line)
    if match is None:
        return line
    code, bug = match["code"], match["bug"].strip()
    if not code or not bug or bug == code or BLANK in bug:
        raise BlankTemplateError(
            f"a {BUG_MARKER} marker must follow a solution line and give a different, complete line; line: {line.strip()!r}"
        )
    return match["indent"] + bug


class ClearSolutionsWithBlanks(ClearSolutions):
    """nbgrader's ``ClearSolutions``, plus blanks from ``# BLANK:`` and planted bugs from ``# BUG:`` markers.

    Marked lines may sit in any solution cell, alongside ``### BEGIN SOLUTION``
    regions or instead of them; a cell with markers keeps the rest of its code.
    Markers outside solution cells are an error: a test or a locked cell must
    never change between the solutions and the release. A marked cell must still
    parse once released (so an IPython magic has no place in one).
    """

    def preprocess_cell(self, cell, resources, cell_index):
        """Release one cell: blanks and planted bugs from markers, nbgrader's stubs elsewhere."""
        if cell.cell_type != "code" or (MARKER not in cell.source and BUG_MARKER not in cell.source):
            return super().preprocess_cell(cell, resources, cell_index)
        if not nbgrader_utils.is_solution(cell):
            raise BlankTemplateError(
                f"{MARKER} and {BUG_MARKER} markers belong in solution cells only; cell {cell_index} is not one:\n{cell.source}"
            )
        cell.source = "\n".join(apply_bug(apply_blank(line)) for line in cell.source.split("\n"))
        try:
            ast.parse(cell.source)
        except SyntaxError as error:
            raise BlankTemplateError(
                f"cell {cell_index} is not valid Python once released ({error}):\n{cell.source}"
            ) from error
        if self.begin_solution_delimeter in cell.source:
            return super().preprocess_cell(cell, resources, cell_index)
        # nbgrader would replace a whole solution cell without a region by its stub;
        # here the blanks or the bugs are the task, and the rest of the cell must stay.
        return cell, resources
