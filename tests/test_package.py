"""The package as a whole: the fast-mode switch, quiet imports, declared dependencies, the runtime alone."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

import dqn_helpers
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, False),
        ({"DQN_FAST": "1"}, True),
        ({"DQN_FAST": "0"}, False),
        ({"NBGRADER_EXECUTION": "autograde"}, True),
        ({"NBGRADER_EXECUTION": "validate", "DQN_FAST": "0"}, True),
    ],
)
def test_fast_mode_follows_environment(monkeypatch, environment, expected):
    """Check that fast mode is on exactly when DQN_FAST=1 or nbgrader is executing."""
    monkeypatch.delenv("DQN_FAST", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert dqn_helpers.fast_mode() is expected


@pytest.mark.slow  # a fresh Python imports TensorFlow: about 8 s each
@pytest.mark.parametrize(
    "code",
    [
        "from dqn_helpers import tf, keras; keras.layers.Dense(2)",
        "from dqn_helpers.envs import make_env; make_env('Breakout').reset(seed=0)",
        "from dqn_helpers.learner import DQNLearner; DQNLearner(4)",
    ],
)
def test_imports_write_nothing_to_stderr(code):
    """Check that TensorFlow's and ALE's start-up messages are kept off stderr (nbgrader zeroes such cells)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_quiet_import_still_reports_import_errors():
    """Check that silencing stderr during the TensorFlow import does not hide a failing import."""
    code = "import sys; sys.modules['tensorflow'] = None; import dqn_helpers._tensorflow"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    assert "ImportError" in result.stderr or "ModuleNotFoundError" in result.stderr


def test_unknown_attribute_is_an_attribute_error():
    """Check that the package's lazy attributes do not swallow typos."""
    with pytest.raises(AttributeError, match="no attribute 'keras3'"):
        dqn_helpers.keras3  # noqa: B018


def _requirements(strings):
    return {Requirement(s).name.lower(): str(Requirement(s).specifier) for s in strings}


def _with_extras(project: dict, extra: str) -> list[str]:
    """An extra's requirements, with the package's own extras it names (``dqn-helpers[lab]``) spelled out."""
    requirements = []
    for line in project["optional-dependencies"][extra]:
        requirement = Requirement(line)
        if requirement.name == project["name"]:
            requirements += [item for name in sorted(requirement.extras) for item in _with_extras(project, name)]
        else:
            requirements.append(line)
    return requirements


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    """Check that conda users get the same packages and version ranges as pip users."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_side = _requirements(project["dependencies"] + _with_extras(project, "dev"))
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_side = _requirements(line for line in pip_section if not line.startswith("-e"))
    assert conda_side == pip_side
    python = next(item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python"))
    assert re.fullmatch(r"python=3\.11", python)


# Run inside the fresh environment: the set-up cells of notebooks 00 and 01 as the student's
# Jupyter would run them (an IPython shell), then a cell with a blank left in it.
_SETUP_CELLS = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
ran = []
for path in sys.argv[1:]:
    cells = json.load(open(path))["cells"]
    for cell in cells:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if cell["cell_type"] == "code" and grade_id in ("setup", "installation_check"):
            result = shell.run_cell("".join(cell["source"]))
            if not result.success:
                sys.exit(f"{path}: cell {grade_id} failed: {result.error_before_exec or result.error_in_exec!r}")
            ran.append(f"{path.split('/')[-1]}:{grade_id}")
blank = shell.run_cell("x = ___")
print(json.dumps({"ran": ran, "blank": type(blank.error_in_exec).__name__}))
"""


@pytest.mark.install
def test_the_runtime_alone_opens_the_first_notebooks(tmp_path):
    """Check that a student's `pip install` (no extras, no nbgrader) runs notebooks 00 and 01's set-up cells."""
    source = tmp_path / "source"  # a copy: pip builds in the source tree, and the checkout stays clean
    shutil.copytree(REPO / "dqn_helpers", source / "dqn_helpers", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", venv], check=True)
    python = str(venv / "bin" / "python")
    # ipykernel stands for the student's Jupyter (it brings IPython, which runs the cells).
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source), "ipykernel"],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    nbgrader = subprocess.run([python, "-c", "import nbgrader"], capture_output=True, text=True)
    assert "No module named 'nbgrader'" in nbgrader.stderr, "the runtime must not pull in nbgrader"

    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    notebooks = [
        str(REPO / "notebooks/00_setup/00_setup.ipynb"),
        str(REPO / "notebooks/01_q_learning/01_q_learning.ipynb"),
    ]
    result = subprocess.run(
        [python, "-c", _SETUP_CELLS, *notebooks], capture_output=True, text=True, cwd=tmp_path, env=environment
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", "set-up cells must keep stderr quiet (nbgrader zeroes such cells)"
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["ran"] == ["00_setup.ipynb:setup", "00_setup.ipynb:installation_check", "01_q_learning.ipynb:setup"]
    assert report["blank"] == "UnfilledBlankError"

    grade = subprocess.run(
        [python, "-m", "dqn_helpers", "grade", "--course", str(tmp_path)], capture_output=True, text=True
    )
    assert grade.returncode == 2
    assert grade.stderr.strip().splitlines() == [
        "error: dqn_helpers.instructor (releasing and grading the course) needs nbgrader, which is not "
        "installed: pip install 'dqn-helpers[instructor]' (make release and make grade install it)"
    ]


def test_pre_commit_runs_the_ruff_that_pyproject_pins():
    """Check that the pre-commit hooks and `make lint` run the same ruff, so a commit that passes one passes both."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = {
        Requirement(line).name: str(Requirement(line).specifier) for line in project["optional-dependencies"]["dev"]
    }
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"] if hook["id"].startswith("ruff")]
    assert {hook["id"] for hook in hooks} == {"ruff-check", "ruff-format"}
    for hook in hooks:
        assert [f"ruff{pinned['ruff']}"] == hook["additional_dependencies"], hook["id"]
