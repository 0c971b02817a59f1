"""nbgrader configuration of the course.

``solutions/`` is the instructor's source (full solutions, hidden tests),
``notebooks/`` the student release that ``nbgrader generate_assignment`` writes.
Inline ``___`` blanks come from ``# BLANK:`` markers, through
``dqn_helpers.instructor.release.ClearSolutionsWithBlanks`` in place of ``ClearSolutions``.

A mistake in this file does not stop nbgrader: it logs "Exception while loading
config" and falls back to its defaults, which would wipe every inline blank. The
tests check the generated release and nbgrader's log for exactly that.
"""

from pathlib import Path

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
# The course's name in nbgrader's exchange, where release_assignment, fetch_assignment,
# submit, collect, release_feedback and fetch_feedback meet (README, "Handing out and
# collecting on a JupyterHub"). The exchange's folder is nbgrader's default,
# /srv/nbgrader/exchange: set c.Exchange.root here to use another.
c.CourseDirectory.course_id = "dqn-breakout"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# What running a notebook leaves beside it is not course material.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "videos",
    "runs",
    "*.mp4",
    "*.gif",
]

c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells",
    "dqn_helpers.instructor.release.ClearSolutionsWithBlanks",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Every notebook runs in fast mode under nbgrader (NBGRADER_EXECUTION is set), so
# no cell should come near this; it stops a student's endless loop.
c.Execute.timeout = 300
c.Execute.kernel_name = "python3"
# After a cell times out and is interrupted, a kernel slow to answer must cost that
# cell, not the whole notebook: nbgrader's default gives up on the notebook after 4 s.
c.Execute.raise_on_iopub_timeout = False
# A student who deletes a test cell gets it back (and graded), not a free pass.
c.OverwriteCells.add_missing_cells = True

# nbgrader's own autograde steps, with its Execute replaced: dqn_helpers.instructor.tampering.GuardedExecute
# runs each kernel in a sandbox and fails every test cell that tampering could have turned.
c.Autograde.autograde_preprocessors = [
    "dqn_helpers.instructor.tampering.GuardedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Feedback shows each test's result and message but not the hidden tests autograde put back:
# dqn_helpers.instructor.feedback.HideHiddenTests cuts them (and tracebacks quoting them) out.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "dqn_helpers.instructor.feedback.HideHiddenTests",
]

# Notebook 05 keeps its run in ../runs/my_dqn, where notebook 06 finds the agent: that
# folder of the student's is writable from the sandbox too.
c.GuardedExecute.writable_beside = ["../runs"]
