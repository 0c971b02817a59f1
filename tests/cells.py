"""Notebook cells in tests: found by their nbgrader grade id, with their source as one string."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def source(cell: dict) -> str:
    """A cell's source as one string (a notebook file may store it as a list of lines)."""
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def nbgrader(cell: dict) -> dict:
    """A cell's nbgrader metadata ({} for a cell nbgrader does not know)."""
    return cell["metadata"].get("nbgrader", {})


def code_cells(path: str | Path) -> dict[str, dict]:
    """The code cells of a notebook that have a grade id, by it, in notebook order."""
    cells = json.loads(Path(path).read_text())["cells"]
    return {
        nbgrader(cell)["grade_id"]: cell
        for cell in cells
        if cell["cell_type"] == "code" and nbgrader(cell).get("grade_id")
    }


def sources(path: str | Path) -> dict[str, str]:
    """The sources of a notebook's code cells that have a grade id, by it."""
    return {grade_id: source(cell) for grade_id, cell in code_cells(path).items()}


def run_cells(path: str | Path, grade_ids: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """Run the named code cells of a notebook, in order, in ``namespace`` (as the notebook would); return it."""
    found = sources(path)
    for grade_id in grade_ids:
        exec(found[grade_id], namespace)
    return namespace
