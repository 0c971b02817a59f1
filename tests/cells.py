"""Notebook cells in tests: found by their nbgrader grade id, with their source as one string."""

from __future__ import annotations

import ast
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


# Top-level statements a cell may hold to be run as support for the test cells: definitions and
# simple assignments, nothing that plays, trains or draws.
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _defines_only(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return all(
        isinstance(node, _DEFINITIONS) or isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        for node in tree.body
    )


def _names(source: str) -> tuple[set[str], set[str]]:
    """The names a cell reads and binds at its top level (not inside the functions and classes it defines)."""
    try:
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    except SyntaxError:
        return set(), set()
    read, bound = set(), set()
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        if not isinstance(node, scopes):
            nodes.extend(ast.iter_child_nodes(node))
    return read, bound


def graded_run(notebook: dict) -> list[dict]:
    """The code cells :func:`run_graded_cells` runs, in notebook order.

    The set-up cell, every cell that only defines things, every answer cell and every test
    cell; and, for a name a chosen cell reads that none of the chosen cells before it binds,
    the latest earlier cell that binds it (e.g. the frame a test cell shows), until none is missing.
    """
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    names = [_names(source(cell)) for cell in code]
    chosen = {
        i
        for i, cell in enumerate(code)
        if nbgrader(cell).get("grade_id") == "setup"
        or nbgrader(cell).get("solution")
        or nbgrader(cell).get("grade")
        or _defines_only(source(cell))
    }
    missing = True
    while missing:
        missing = False
        for i in sorted(chosen):
            known = set().union(*(names[j][1] for j in chosen if j < i))
            for name in names[i][0] - known - names[i][1]:
                binders = [j for j in range(i) if name in names[j][1] and j not in chosen]
                if binders:
                    chosen.add(binders[-1])
                    missing = True
    return [code[i] for i in sorted(chosen)]


def run_graded_cells(notebook: dict, solution: str | Path) -> dict[str, str | None]:
    """Run a filled-in notebook's answer and test cells in this process; each test cell's error, or None.

    The cells of :func:`graded_run` run in order in one namespace (IPython magics left out),
    each test cell as the solution notebook holds it, hidden tests included, as nbgrader
    puts it back before grading; all without a kernel. Figures and demonstrations no test
    cell needs are left out, so this is much faster than grading, and tells which test
    cells an answer fails.
    """
    tests = {grade_id: source(cell) for grade_id, cell in code_cells(solution).items() if nbgrader(cell).get("grade")}
    namespace: dict[str, Any] = {"__name__": "__main__"}
    errors: dict[str, str | None] = {}
    for cell in graded_run(notebook):
        meta = nbgrader(cell)
        text = tests[meta["grade_id"]] if meta.get("grade") else source(cell)
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            exec(compile(code, meta.get("grade_id", "cell"), "exec"), namespace)  # noqa: S102 - the course's own cells
            error = None
        except Exception as exception:  # a failing test cell is what is measured
            error = f"{type(exception).__name__}: {exception}"
        if meta.get("grade"):
            errors[meta["grade_id"]] = error
    return errors
