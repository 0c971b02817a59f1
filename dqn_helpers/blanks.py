"""Inline ``___`` blanks, as students meet them: the IPython extension that explains them.

IPython already binds ``___`` to the third-last output (``''`` at first), so an
unfilled blank would silently run with a wrong value. This extension, loaded with
``%load_ext dqn_helpers.blanks`` in every notebook's first cell, checks each cell
before it runs: a cell that still reads ``___`` raises :class:`UnfilledBlankError`
naming the lines to fill, and nothing in it runs.

How the release makes the blanks from marked solution lines is the instructor's
side: :mod:`dqn_helpers.instructor.release`.
"""

from __future__ import annotations

import ast

__all__ = [
    "BLANK",
    "UnfilledBlankError",
    "find_blanks",
    "load_ipython_extension",
    "unload_ipython_extension",
]

BLANK = "___"


class UnfilledBlankError(Exception):
    """A cell still has ``___`` blanks; it was not run."""

    def __init__(self, lines: list[tuple[int, str]]):
        self.lines = lines
        where = "; ".join(f"line {number}: {text.strip()}" for number, text in lines)
        plural = "s" if len(lines) > 1 else ""
        super().__init__(
            f"Fill in the {BLANK} blank{plural} before running this cell (nothing in it ran). "
            f"Replace {BLANK} on {where}"
        )

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the message is all a student needs.
        rows = [f"UnfilledBlankError: this cell still has {BLANK} blanks; nothing in it ran.", "Fill in:"]
        rows += [f"  line {number}:  {text.strip()}" for number, text in self.lines]
        return rows


def find_blanks(source: str) -> list[tuple[int, str]]:
    r"""Lines of Python source that use the name ``___``, as ``(line number, text)``.

    Source that does not parse has no blanks to report (Python's own SyntaxError
    says more).

    Example:
        >>> find_blanks("a = 1\nb = f(___, 2)\nc = '___'")
        [(2, 'b = f(___, 2)')]
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    numbers = sorted({node.lineno for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id == BLANK})
    lines = source.splitlines()
    return [(number, lines[number - 1]) for number in numbers]


def _refuse_blanks(lines: list[str]) -> list[str]:
    """IPython input transformer: replace a cell that reads ``___`` by one that explains."""
    blanks = find_blanks("".join(lines))
    if not blanks:
        return lines
    return [f"raise __import__('importlib').import_module({__name__!r}).UnfilledBlankError({blanks!r})\n"]


NAME_ERROR_HINT = (
    "If an exercise cell above defines it, that cell has not run successfully yet: "
    "fill in its blanks and run it, then run this cell again."
)


def _explain_name_error(shell, etype, value, tb, tb_offset=None):
    """IPython custom exception handler: say that an undefined name most often means an exercise did not run.

    A check cell that meets an undefined name most often follows an exercise cell
    that was not run (or failed).
    """
    if NAME_ERROR_HINT not in str(value):
        value.args = (f"{value}. {NAME_ERROR_HINT}",)
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def load_ipython_extension(ipython) -> None:
    """Called by ``%load_ext dqn_helpers.blanks``: check every cell for blanks, and explain undefined names."""
    if _refuse_blanks not in ipython.input_transformers_post:
        ipython.input_transformers_post.append(_refuse_blanks)
    ipython.set_custom_exc((NameError,), _explain_name_error)


def unload_ipython_extension(ipython) -> None:
    """Called by ``%unload_ext dqn_helpers.blanks``."""
    if _refuse_blanks in ipython.input_transformers_post:
        ipython.input_transformers_post.remove(_refuse_blanks)
    ipython.set_custom_exc((), None)
