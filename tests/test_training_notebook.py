"""Notebook 05 never loses a student's run: the stop button saves it, running the cell again resumes it.

The real cells of the solution notebook run in a real Jupyter kernel, as a student
runs them (not in fast mode, where every run starts anew), on a run shortened by one
line the test adds after the notebook's own config cell. The test presses the stop
button (a kernel interrupt) once the run has played two full games, the state it
wants, never after a fixed wait.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager

from tests import cells
from tests.conftest import REPO

pytestmark = [pytest.mark.training, pytest.mark.notebooks, pytest.mark.slow]

NOTEBOOK = REPO / "solutions" / "05_training_loop" / "05_training_loop.ipynb"
# The cells the training cells need, in notebook order (the checks and figures are left out).
DEFINITIONS = [
    "setup",
    "config_table",
    "run_config",
    "linear_schedule",
    "training_log",
    "train_loop",
    "checkpoint_code",
]
SHORT_RUN = (
    "config = dataclasses.replace(config, total_steps=4_000, buffer_size=5_000, learning_starts=200, "
    "epsilon_decay_steps=1_000, target_update_interval=200)"
)
LIMIT = 600  # seconds: a bound on a hang, far above the minute this takes


class Kernel:
    """A Jupyter kernel started in a folder, running code as a notebook's cells."""

    def __init__(self, folder: Path):
        env = {name: value for name, value in os.environ.items() if name != "DQN_FAST"}  # as a student runs it
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(folder), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=LIMIT)

    def run(self, code: str, *, interrupt_when=None) -> tuple[str, dict]:
        """Run ``code``; its printed text and its reply. With ``interrupt_when``, interrupt once it returns True."""
        msg_id = self.client.execute(code)
        if interrupt_when is not None:
            deadline = time.monotonic() + LIMIT
            while not interrupt_when():
                assert time.monotonic() < deadline, "the run never reached the state to interrupt it in"
                time.sleep(0.1)
            self.manager.interrupt_kernel()
        text = ""
        while True:
            message = self.client.get_iopub_msg(timeout=LIMIT)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                text += message["content"]["text"]
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        while (reply := self.client.get_shell_msg(timeout=LIMIT))["parent_header"].get("msg_id") != msg_id:
            pass
        return text, reply["content"]

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def _games(run_dir: Path) -> list[dict]:
    path = run_dir / "episodes.csv"
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _saved_step(run_dir: Path) -> int:
    return json.loads((run_dir / "checkpoint" / "state.json").read_text())["counters"]["step"]


@pytest.fixture
def kernel(tmp_path):
    folder = tmp_path / "05_training_loop"
    folder.mkdir()
    shutil.copy(NOTEBOOK, folder)
    kernel = Kernel(folder)
    sources = cells.sources(NOTEBOOK)
    for grade_id in DEFINITIONS:
        text, reply = kernel.run(sources[grade_id])
        assert reply["status"] == "ok", (grade_id, reply)
    text, reply = kernel.run(SHORT_RUN)
    assert reply["status"] == "ok", reply
    yield kernel, sources, tmp_path / "runs" / "my_dqn"
    kernel.close()


def test_the_stop_button_saves_the_run_and_the_cell_resumes_it(kernel):
    """Check that an interrupted first half saves a checkpoint at the step reached, and running the cell again resumes."""
    kernel, sources, run_dir = kernel
    text, reply = kernel.run(sources["first_half"], interrupt_when=lambda: len(_games(run_dir)) >= 2)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    assert "Stopped at agent step" in text and "Run this cell again to go on" in text, text
    stopped = _saved_step(run_dir)
    games = _games(run_dir)
    assert int(games[-1]["step"]) <= stopped < 2_000, (stopped, games[-1])
    assert f"Stopped at agent step {stopped:,}" in text, text

    text, reply = kernel.run(sources["first_half"])
    assert reply["status"] == "ok", reply
    assert f"Resuming from the checkpoint at agent step {stopped:,}" in text, text
    assert _saved_step(run_dir) == 2_000

    text, reply = kernel.run(sources["resume"])
    assert reply["status"] == "ok", reply
    assert "Resuming from the checkpoint at agent step 2,000" in text, text
    assert _saved_step(run_dir) == 4_000
    games = _games(run_dir)
    assert [int(game["episode"]) for game in games] == list(range(1, len(games) + 1)), "games lost or counted twice"
    steps = [int(game["step"]) for game in games]
    assert steps == sorted(set(steps)), steps
    with (run_dir / "losses.csv").open(newline="") as file:
        updates = [int(row["step"]) for row in csv.DictReader(file)]
    assert updates == sorted(set(updates)) and updates[-1] > 2_000, updates[-5:]

    text, reply = kernel.run(sources["first_half"])
    assert reply["status"] == "ok", reply
    assert "already trained to agent step 4,000: nothing to do" in text, text
    assert _saved_step(run_dir) == 4_000


def test_only_start_over_by_name_begins_a_new_run_and_keeps_the_old_one(kernel):
    """Check that START_OVER = True renames the old run, never deletes it, and trains anew from step 0."""
    kernel, sources, run_dir = kernel
    text, reply = kernel.run(sources["first_half"])
    assert reply["status"] == "ok", reply
    assert _saved_step(run_dir) == 2_000
    assert "START_OVER = FAST" in sources["first_half"]
    text, reply = kernel.run(sources["first_half"].replace("START_OVER = FAST", "START_OVER = True"))
    assert reply["status"] == "ok", reply
    backups = [path for path in run_dir.parent.iterdir() if path.name.startswith("my_dqn-until-")]
    assert len(backups) == 1 and _saved_step(backups[0]) == 2_000, backups
    assert f"your previous run is kept in {backups[0]}" in text.replace("\\", "/") or backups[0].name in text, text
    assert "Resuming" not in text and _saved_step(run_dir) == 2_000
