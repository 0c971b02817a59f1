"""The instructor's tools: releasing the notebooks and grading a class.

- :mod:`~dqn_helpers.instructor.release`: the nbgrader preprocessor that turns
  ``# BLANK:`` and ``# BUG:`` markers of ``solutions/`` into the student release;
- :mod:`~dqn_helpers.instructor.grading`: ``python -m dqn_helpers grade``, a whole
  class autograded with nbgrader;
- :mod:`~dqn_helpers.instructor.sandbox` and :mod:`~dqn_helpers.instructor.tampering`:
  every graded kernel in bubblewrap, and test cells that tampering cannot turn.
- :mod:`~dqn_helpers.instructor.records`: ``python -m dqn_helpers backup-grades`` and
  ``erase-grades``, the one command that deletes a class's grades, after a backup.

Students never import this package: what the notebooks load (``dqn_helpers`` and
its ``blanks`` extension) needs only the runtime dependencies. These tools need
nbgrader, installed with the ``instructor`` extra.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("nbgrader") is None:
    raise ModuleNotFoundError(
        "dqn_helpers.instructor (releasing and grading the course) needs nbgrader, which is not "
        "installed: pip install 'dqn-helpers[instructor]' (make release and make grade install it)",
        name="nbgrader",
    )
