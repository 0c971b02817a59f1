"""The package as a whole: the fast-mode switch, quiet imports, declared dependencies."""

import os
import re
import subprocess
import sys
import tomllib

import pytest
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


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    """Check that conda users get the same packages and version ranges as pip users."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_side = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"])
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_side = _requirements(line for line in pip_section if not line.startswith("-e"))
    assert conda_side == pip_side
    python = next(item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python"))
    assert re.fullmatch(r"python=3\.11", python)
