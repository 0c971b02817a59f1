"""The student distribution: exactly what students receive, and nothing of the answers.

The course's repository holds every answer (``solutions/``, hidden tests included),
the planted bugs' fixes and the instructor's tools; it stays with the instructor, as
nbgrader expects. :func:`build_student_release` (``make student-release``) writes
what students get instead, as a folder and a zip:

- ``notebooks/``, the release ``make release`` generated (blanks, visible checks);
- the ``dqn_helpers`` package the notebooks import, without
  :mod:`dqn_helpers.instructor`, and the reference agent it ships;
- a ``pyproject.toml`` with the runtime and the ``lab`` extra only, a ``Makefile``
  whose ``make lab`` installs them and opens JupyterLab, and a ``.gitignore``;
- ``README.md``, made of the repository README's sections for students
  (:data:`STUDENT_SECTIONS`), and ``LICENSE``.

The folder is also the layout of a repository to publish: ``git init`` in it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

__all__ = ["NAME", "STUDENT_SECTIONS", "build_student_release", "main"]

NAME = "dqn-course-student"
# The repository README's sections written for students, in this order; the text above
# its first section (the course in a paragraph) comes first.
STUDENT_SECTIONS = ("For students", "The series", "License")
# What running a notebook leaves beside it (as nbgrader_config.py's CourseDirectory.ignore).
LEFT_BEHIND = shutil.ignore_patterns(
    ".ipynb_checkpoints", "__pycache__", "*.pyc", "runs", "videos", "feedback", "*.mp4", "*.gif"
)

MAKEFILE = """\
# `make lab` does all set-up itself: it creates .venv with `python3 -m venv`, installs the
# course's package with JupyterLab whenever pyproject.toml is newer than the last install,
# and opens JupyterLab on the notebooks.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: lab demo

$(INSTALLED): pyproject.toml
\ttest -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
\t$(BIN)/python -m pip install --quiet --upgrade pip
\t$(BIN)/python -m pip install --quiet -e ".[lab]"
\ttouch $@

## lab: JupyterLab on the notebooks (LAB_ARGS="--port 9999" to add options)
# JupyterLab refuses to start as root (containers, cloud machines) without --allow-root.
lab: $(INSTALLED)
\t$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

## demo: the reference agent plays a game of Breakout, recorded to videos/demo.mp4
demo: $(INSTALLED)
\t$(BIN)/python -m dqn_helpers record --weights reference --output videos/demo.mp4
"""

GITIGNORE = """\
.venv/
__pycache__/
*.egg-info/
.ipynb_checkpoints/
runs/
videos/
*.mp4
"""


def build_student_release(course: str | Path, output: str | Path) -> tuple[Path, Path]:
    """Write the student distribution of ``course`` into ``output``, as a folder and a zip.

    Args:
        course: The course's repository (``notebooks/``, ``dqn_helpers/``, ``README.md``...).
        output: Folder to write into; its ``dqn-course-student/`` and
            ``dqn-course-student.zip`` are replaced.

    Returns:
        The folder and the zip (which holds the folder).

    Raises:
        FileNotFoundError: If ``course`` lacks the release, the package or a README
            section for students.
    """
    course, output = Path(course).resolve(), Path(output).resolve()
    for needed in ("notebooks", "dqn_helpers", "README.md", "LICENSE", "pyproject.toml"):
        if not (course / needed).exists():
            raise FileNotFoundError(f"{course} is not the course's repository: expected {needed} in it")
    if not list((course / "notebooks").glob("*/*.ipynb")):
        raise FileNotFoundError(f"{course / 'notebooks'} holds no released notebook: run `make release` first")
    folder, archive = output / NAME, output / f"{NAME}.zip"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copytree(course / "notebooks", folder / "notebooks", ignore=LEFT_BEHIND)
    package = course / "dqn_helpers"

    def runtime_only(where: str, names: list[str]) -> set[str]:
        return LEFT_BEHIND(where, names) | ({"instructor"} if Path(where) == package else set())

    shutil.copytree(package, folder / "dqn_helpers", ignore=runtime_only)
    shutil.copy2(course / "LICENSE", folder / "LICENSE")
    (folder / "README.md").write_text(student_readme((course / "README.md").read_text()))
    (folder / "pyproject.toml").write_text(student_pyproject((course / "pyproject.toml").read_text()))
    (folder / "Makefile").write_text(MAKEFILE)
    (folder / ".gitignore").write_text(GITIGNORE)
    _write_zip(folder, archive)
    return folder, archive


def student_readme(readme: str) -> str:
    """The README students get: the repository README's opening and its sections for students.

    Raises:
        FileNotFoundError: If a section of :data:`STUDENT_SECTIONS` is missing.
    """
    parts = re.split(r"^## ", readme, flags=re.MULTILINE)
    sections = {part.split("\n", 1)[0].strip(): "## " + part for part in parts[1:]}
    missing = [name for name in STUDENT_SECTIONS if name not in sections]
    if missing:
        raise FileNotFoundError(f"README.md has no section '## {missing[0]}' for the student distribution")
    return parts[0].rstrip() + "\n\n" + "\n".join(sections[name].rstrip() + "\n" for name in STUDENT_SECTIONS)


def student_pyproject(pyproject: str) -> str:
    """The course's ``pyproject.toml`` cut to what students install: the runtime and the ``lab`` extra."""
    try:
        import tomllib
    except ModuleNotFoundError as error:  # Python 3.10; the course's Makefile uses 3.11
        raise ModuleNotFoundError("building the student distribution needs Python 3.11 or newer (tomllib)") from error
    project = tomllib.loads(pyproject)
    meta, setuptools = project["project"], project["tool"]["setuptools"]

    def value(item) -> str:  # JSON strings and lists of them are TOML too
        return json.dumps(item)

    lines = ["[build-system]", f"requires = {value(project['build-system']['requires'])}"]
    lines += [f"build-backend = {value(project['build-system']['build-backend'])}", "", "[project]"]
    for key in ("name", "version", "description", "readme", "requires-python"):
        lines.append(f"{key} = {value(meta[key])}")
    lines.append(f"license = {{ text = {value(meta['license']['text'])} }}")
    lines += ["dependencies = ["] + [f"    {value(item)}," for item in meta["dependencies"]] + ["]", ""]
    lines += ["[project.optional-dependencies]", "lab = ["]
    lines += [f"    {value(item)}," for item in meta["optional-dependencies"]["lab"]] + ["]", ""]
    lines += ["[project.scripts]"] + [f"{name} = {value(target)}" for name, target in meta["scripts"].items()]
    lines += ["", "[tool.setuptools.packages.find]", f"include = {value(setuptools['packages']['find']['include'])}"]
    lines += ["", "[tool.setuptools.package-data]"]
    lines += [f"{name} = {value(patterns)}" for name, patterns in setuptools["package-data"].items()]
    return "\n".join(lines) + "\n"


def _write_zip(folder: Path, archive: Path) -> None:
    """Zip ``folder`` (as its own top folder), the same bytes for the same files."""
    partial = archive.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                entry = zipfile.ZipInfo(
                    f"{NAME}/{path.relative_to(folder).as_posix()}", date_time=(2026, 1, 1, 0, 0, 0)
                )
                entry.external_attr = 0o644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                zipped.writestr(entry, path.read_bytes())
    partial.replace(archive)


def main(argv: list[str] | None = None) -> int:
    """``python -m dqn_helpers.instructor.distribution``: build the student distribution."""
    parser = argparse.ArgumentParser(
        prog="python -m dqn_helpers.instructor.distribution",
        description="Write what students receive (the release, the runtime package, make lab) as a folder and a zip.",
    )
    parser.add_argument("--course", type=Path, default=Path("."), help="the course's repository")
    parser.add_argument("--output", type=Path, default=Path("dist"), help="folder to write into")
    args = parser.parse_args(argv)
    try:
        folder, archive = build_student_release(args.course, args.output)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = sum(1 for path in folder.rglob("*") if path.is_file())
    print(f"Wrote the student distribution: {folder} ({files} files) and {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
