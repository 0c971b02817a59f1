"""Tests of dqn_helpers.instructor.distribution: the student distribution holds no answer and runs.

"Withheld" lines are those of a solution notebook that its release in ``notebooks/``
does not hold: solution code, hidden tests, the planted bugs' fixes and the model
answers of the written exercises. None may appear in any file students receive (in the
notebooks: in the notebook it is withheld from; a later notebook may hand out what an
earlier one asked for), except the few the runtime package must hold
(:data:`PACKAGE_HOLDS`, each with its reason).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

from dqn_helpers.instructor.distribution import NAME, build_student_release, student_readme  # noqa: E402
from dqn_helpers.instructor.release import BUG_MARKER, MARKER  # noqa: E402
from tests.test_package import _SETUP_CELLS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Withheld lines the runtime package holds, and why students may read them there.
PACKAGE_HOLDS = {
    "absolute = np.abs(errors)": "checks/q_network.py works out the Huber loss it expects this way",
    "action = policy(state, rng, epsilon)": "evaluation.py's loop, which notebook 06 uses after the student wrote theirs",
    'frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")': (
        "video.py's MP4 writer, which notebooks 00 and 06 use to show games"
    ),
    "frame = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)": "video.py's MP4 writer, as above",
    "height, width = frame.shape[:2]": "video.py's MP4 writer, as above",
    "writer.append_data(frame)": "video.py's MP4 writer, as above",
    "if rng.random() < epsilon:": "policies.py's epsilon-greedy policy, which the course's trainer acts with",
    "return int(rng.integers(self.num_actions))": "policies.py's epsilon-greedy policy, as above",
    "return int(np.argmax(q_values))": "policies.py's epsilon-greedy policy, as above",
    "next_values = tf.reduce_max(next_q_target, axis=1)": (
        "learner.py, the course's update, which notebook 05's loop calls once the student has written notebook 04's"
    ),
    "next_actions = tf.argmax(next_q_online, axis=1)": "learner.py's Double DQN target, as above",
    "loss = tf.reduce_mean(huber_loss(targets - q_taken))": "learner.py's loss, as above",
    "return rewards + gamma * (1.0 - terminated) * next_values": (
        "checks/q_network.py works out the right targets to compare the student's with"
    ),
    'states = keras.Input(shape=input_shape, dtype="uint8", name="states")': (
        "checks/q_network.py's small test network takes uint8 states as the Nature CNN does"
    ),
    "replay.add(state, action, reward, next_state, terminated, truncated)": (
        "checks/training_loop.py's message that names the fix when the flags are stored wrongly"
    ),
    "state = next_state": "checks/replay.py plays episodes into the student's buffer; a generic line",
    'codec="libx264",': "video.py's MP4 writer, as above",
    'pixelformat="yuv420p",': "video.py's MP4 writer, as above",
    "return int(rng.integers(len(q_values)))": (
        "checks/q_learning.py's reference epsilon_greedy, which the Q-learning checks run q_learning with, so that a "
        "mistake in exercise 2 costs exercise 2 only (checks.reference_answers)"
    ),
    "return tf.gather(q_values, actions, axis=1, batch_dims=1)": (
        "checks/q_network.py's reference q_of_actions, which the train-step and Double DQN checks run with, as above"
    ),
    ")": "a generic line",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    return build_student_release(REPO, tmp_path_factory.mktemp("dist"))


def _withheld_lines() -> dict[str, set[str]]:
    """Every stripped line of a solution notebook its release does not hold, with the notebooks it is from."""
    withheld = {}
    for source in sorted((REPO / "solutions").glob("*/*.ipynb")):
        released = json.loads((REPO / "notebooks" / source.parent.name / source.name).read_text())
        kept = {line.strip() for cell in released["cells"] for line in "".join(cell["source"]).splitlines()}
        for cell in json.loads(source.read_text())["cells"]:
            for line in "".join(cell["source"]).splitlines():
                # A marked line's answer is its code, without the student version after the marker.
                answer = re.split(f"{re.escape(MARKER)}|{re.escape(BUG_MARKER)}", line)[0].strip()
                if answer and answer not in kept:
                    withheld.setdefault(answer, set()).add(source.name)
    return withheld


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_it_holds_the_release_the_runtime_and_make_lab_only(built):
    """Check the distribution's files: no solutions, tests, instructor tools, nbgrader config or bug catalogue."""
    folder, _ = built
    top = sorted(path.name for path in folder.iterdir())
    assert top == [".gitignore", "LICENSE", "Makefile", "README.md", "dqn_helpers", "notebooks", "pyproject.toml"]
    assert not (folder / "dqn_helpers" / "instructor").exists()
    assert (folder / "dqn_helpers" / "checks").is_dir() and (folder / "dqn_helpers" / "blanks.py").is_file()
    assert (folder / "dqn_helpers" / "reference" / "breakout.weights.h5").is_file()
    released = sorted(path.relative_to(REPO) for path in (REPO / "notebooks").glob("*/*.ipynb"))
    assert sorted(path.relative_to(folder) for path in (folder / "notebooks").rglob("*.ipynb")) == released
    for path in released:
        assert (folder / path).read_bytes() == (REPO / path).read_bytes()


def test_no_withheld_line_is_in_any_file(built):
    """Check that no solution line, hidden test, bug fix or model answer is in any file students receive."""
    folder, _ = built
    withheld = _withheld_lines()
    assert len(withheld) > 200, "the comparison found too few withheld lines to mean anything"
    found = {}
    for path in _files(folder):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # the weights and figures
        notebook = path.suffix == ".ipynb"
        if notebook:
            text = "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
        for line in text.splitlines():
            # A later notebook may hand out, as given code, what an earlier one asked for.
            if notebook and path.name not in withheld.get(line.strip(), ()):
                continue
            if line.strip() in withheld and line.strip() not in PACKAGE_HOLDS:
                found.setdefault(line.strip(), f"{path.relative_to(folder)} (from {sorted(withheld[line.strip()])})")
    assert found == {}, "withheld lines students would receive: " + json.dumps(found, indent=1)


def test_package_holds_lists_only_lines_that_are_withheld_and_held():
    """Check that every excused line is still withheld and still in the package (the list does not go stale)."""
    withheld = _withheld_lines()
    package = {
        line.strip()
        for path in (REPO / "dqn_helpers").rglob("*.py")
        if "instructor" not in path.parts
        for line in path.read_text().splitlines()
    }
    assert sorted(line for line in PACKAGE_HOLDS if line not in withheld or line not in package) == []


def test_no_marker_is_in_any_file(built):
    """Check that no # BLANK:, # BUG: or nbgrader solution and hidden-test marker reached the students."""
    folder, _ = built
    markers = ("# BLANK:", "# BUG:", "BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME")
    for path in _files(folder):
        if path.suffix in {".h5", ".png"}:
            continue
        text = path.read_text()
        assert not [marker for marker in markers if marker in text], path


def test_the_zip_holds_the_folder_and_is_the_same_for_the_same_files(built, tmp_path):
    """Check that the zip has every file of the folder, and that building again gives the same bytes."""
    folder, archive = built
    with zipfile.ZipFile(archive) as zipped:
        names = sorted(zipped.namelist())
        assert names == sorted(f"{NAME}/{path.relative_to(folder).as_posix()}" for path in _files(folder))
        assert zipped.read(f"{NAME}/Makefile") == (folder / "Makefile").read_bytes()
    _, again = build_student_release(REPO, tmp_path)
    assert again.read_bytes() == archive.read_bytes()


def test_the_readme_is_for_students(built):
    """Check that the students' README has their sections and none of the instructor's."""
    readme = (built[0] / "README.md").read_text()
    assert "## For students" in readme and "## The series" in readme and "make lab" in readme
    assert "## For instructors" not in readme and "solutions/" not in readme and "make grade" not in readme


def test_a_readme_without_a_students_section_is_refused():
    """Check the error naming the missing section."""
    with pytest.raises(FileNotFoundError, match="no section '## For students'"):
        student_readme("# Title\n\n## The series\n\n## License\n")


def test_building_from_a_folder_that_is_not_the_course_says_what_is_missing(tmp_path):
    """Check that a wrong --course is an error that names what it expected."""
    with pytest.raises(FileNotFoundError, match="expected notebooks in it"):
        build_student_release(tmp_path, tmp_path / "dist")


@pytest.mark.slow
def test_its_package_and_notebooks_run_without_the_repository(built):
    """Check, in a Python that sees only the distribution, that every module imports, notebooks 00 and 01 set up, and the CLI has no instructor commands."""
    folder, _ = built
    modules = sorted(
        ".".join(path.relative_to(folder).with_suffix("").parts).removesuffix(".__init__")
        for path in (folder / "dqn_helpers").rglob("*.py")
        if path.name != "__main__.py"
    )
    # This environment installed the repository's package in editable mode, through a finder of
    # its own on sys.meta_path: removed here, the distribution's folder is the only dqn_helpers.
    script = (
        "import importlib, sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "import dqn_helpers\n"
        f"assert dqn_helpers.__file__.startswith({str(folder)!r}), dqn_helpers.__file__\n"
        "from dqn_helpers.__main__ import build_parser\n"
        "commands = build_parser()._subparsers._group_actions[0].choices\n"
        "print('commands', sorted(commands))\n"
        f"sys.argv[1:] = {[str(folder / 'notebooks' / name / f'{name}.ipynb') for name in ('00_setup', '01_q_learning')]!r}\n"
        + _SETUP_CELLS
    )
    environment = {**os.environ, "PYTHONPATH": str(folder)}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", "set-up cells must keep stderr quiet (nbgrader zeroes such cells)"
    lines = result.stdout.splitlines()
    assert lines[0] == "commands ['evaluate', 'export', 'record', 'train']"
    report = json.loads(lines[-1])
    assert report["ran"] == ["00_setup.ipynb:setup", "00_setup.ipynb:installation_check", "01_q_learning.ipynb:setup"]
    assert report["blank"] == "UnfilledBlankError"
