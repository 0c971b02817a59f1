"""A class's grades and hand-ins, and the one way to delete them: after a backup.

What nbgrader and ``make grade`` keep of a class lives in five places of the
course folder (:data:`RECORDS`): ``gradebook.db`` (every score, hand grades and
comments included), ``submitted/`` (the hand-ins), ``autograded/``, ``feedback/``
and ``grading/`` (``grades.csv`` and the notes on each submission). No other
command of the course deletes them: ``make release`` lets nbgrader update the
assignments in the gradebook in place, ``make clean`` removes the environment only.

- :func:`backup_records` (``make backup-grades``) writes them all into one zip in
  ``backups/``, the gradebook copied with SQLite's own backup so that a grader
  writing at that moment cannot leave it half-written;
- :func:`erase_records` (``make erase-grades``) writes that backup, reads it back,
  and only then deletes them.

Restoring is unzipping the backup in the course folder.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
import zipfile
from pathlib import Path

__all__ = ["BACKUPS", "RECORDS", "backup_records", "erase_records"]

RECORDS = ("gradebook.db", "submitted", "autograded", "feedback", "grading")
BACKUPS = "backups"


def backup_records(course: str | Path) -> Path:
    """Write the class's grades and hand-ins into a new zip in ``course/backups/``.

    Args:
        course: The course folder (the one holding ``nbgrader_config.py``).

    Returns:
        The zip written, ``backups/grades-<UTC time>.zip``; it holds the records as
        they are laid out in the course folder.

    Raises:
        FileNotFoundError: If ``course`` holds none of :data:`RECORDS`.
        ValueError: If its ``gradebook.db`` is not an SQLite database.
    """
    course = Path(course)
    present = [course / name for name in RECORDS if (course / name).exists()]
    if not present:
        raise FileNotFoundError(
            f"{course.resolve()} holds no grades or hand-ins to back up: expected one of {', '.join(RECORDS)}"
        )
    (course / BACKUPS).mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    archive = course / BACKUPS / f"grades-{stamp}.zip"
    copy = 2
    while archive.exists():  # two backups within a second each get their own file
        archive, copy = course / BACKUPS / f"grades-{stamp}-{copy}.zip", copy + 1
    partial = archive.with_suffix(".zip.partial")  # a backup cut short never looks like a whole one
    try:
        with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in present:
                if path.is_file():
                    source = _consistent_copy(path, Path(scratch)) if path.name == "gradebook.db" else path
                    zipped.write(source, path.name)
                    continue
                for file in sorted(path.rglob("*")):
                    zipped.write(file, file.relative_to(course).as_posix())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(archive)
    return archive


def erase_records(course: str | Path) -> tuple[Path, list[str]]:
    """Back the class's grades and hand-ins up, check the backup, then delete them.

    Args:
        course: The course folder.

    Returns:
        The backup written and the names of the records deleted.

    Raises:
        FileNotFoundError: If there is nothing to erase.
        RuntimeError: If the backup does not read back whole (nothing is deleted then).
    """
    course = Path(course)
    archive = backup_records(course)
    with zipfile.ZipFile(archive) as zipped:
        broken = zipped.testzip()
        held = {name.split("/")[0] for name in zipped.namelist()}
    erased = [name for name in RECORDS if (course / name).exists()]
    missing = [
        name for name in erased if name not in held and ((course / name).is_file() or any((course / name).rglob("*")))
    ]
    if broken is not None or missing:
        raise RuntimeError(
            f"the backup {archive} does not read back whole ({broken or ', '.join(missing)}): nothing was deleted"
        )
    for name in erased:
        path = course / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return archive, erased


def _consistent_copy(database: Path, folder: Path) -> Path:
    """Copy an SQLite file with SQLite's backup API (whole even while another process writes it)."""
    copy = folder / database.name
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{database} is not an SQLite gradebook: {error}") from error
    finally:
        target.close()
        source.close()
    return copy
