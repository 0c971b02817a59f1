"""Smoke tests of benchmarks/: each script runs at a tiny size and prints the JSON it promises.

The figures themselves (speed, memory at a million transitions) are measured by
running the scripts in full (`make bench`), not here: a timed test would pass or
fail with the machine's load.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dqn_helpers.learner import resolve_precision
from dqn_helpers.training import DQNConfig
from tests.conftest import REPO, SANDBOX

BENCHMARKS = REPO / "benchmarks"


def run_script(name: str, *args: str) -> list[dict]:
    """Run a benchmark script and parse each line of its standard output as JSON."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def usage_error(name: str, *args: str) -> str:
    """Run a benchmark script that must refuse its arguments; return what it said on stderr."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert completed.returncode == 2, completed.stderr[-3000:]
    return completed.stderr


def test_replay_memory_reports_bytes_and_memory():
    """At 20,000 transitions: 7,063 bytes each (7,056-byte frame + action 1 + reward 4 + flag 1 + position 1)."""
    (result,) = run_script("replay_memory.py", "--capacity", "20000", "--episode-length", "100")
    assert result["capacity"] == 20_000
    assert result["replay_bytes_per_transition"] == 7_063
    # Episodes of 100 steps in 4 streams of 5,000 slots: each episode's first frame takes a slot.
    assert 19_000 < result["transitions_held"] < 20_000
    assert result["peak_rss_mb"] > result["replay_gb"] * 1_000
    assert result["sample_32_ms"] > 0


def test_replay_memory_uses_the_trainers_layout():
    """The benchmark's default number of streams is the trainer's default num_envs (not imported, to keep TF out)."""
    source = (BENCHMARKS / "replay_memory.py").read_text()
    assert f"NUM_ENVS = {DQNConfig().num_envs}\n" in source


@pytest.mark.training
@pytest.mark.parametrize("impl", ["ours", "naive"])
def test_train_speed_reports_every_field(impl):
    """A tiny run of each implementation prints one JSON line with the figures the README quotes."""
    (result,) = run_script("train_speed.py", "--impl", impl, "--steps", "64", "--warmup", "64")
    assert result["impl"] == impl and result["steps"] == 64
    for field in ("steps_per_s", "update_ms", "update_ms_alone", "ceiling_steps_per_s", "act_ms", "peak_rss_mb"):
        assert result[field] > 0, field
    # The ceiling is 4 agent steps per update over the update's time alone.
    assert result["ceiling_steps_per_s"] == pytest.approx(4_000 / result["update_ms_alone"], rel=0.01)
    expected_bytes = 7_063 if impl == "ours" else 2 * 4 * 84 * 84 * 4 + 5 * 8
    assert result["replay_bytes_per_transition"] == expected_bytes


@pytest.mark.training
def test_train_speed_rejects_a_warmup_too_short_to_learn():
    """--warmup below batch + num_envs cannot time any update: a usage error that says so."""
    assert "--warmup must be at least batch size + num_envs (36), got 8" in usage_error(
        "train_speed.py", "--impl", "ours", "--warmup", "8"
    )


@pytest.mark.notebooks
def test_grading_speed_reports_the_batch():
    """One student's notebook 01 graded by the grade command: full marks, and the times the README quotes."""
    (result,) = run_script("grading_speed.py", "--students", "1", "--assignments", "01_q_learning", *SANDBOX)
    assert result["students"] == 1 and result["assignments"] == ["01_q_learning"]
    assert (
        result["all_full_marks"] is True and result["tampering_notes"] == 0 and result["sandbox"] is not bool(SANDBOX)
    )
    assert result["batch_seconds"] >= result["notebook_seconds_mean"]["01_q_learning"] > 0
    assert result["seconds_per_complete_submission"] == result["batch_seconds"]


@pytest.mark.training
def test_train_speed_times_the_students_loop():
    """Notebook 05's own train_loop, read from the solution notebook, runs and is timed against its ceiling."""
    (result,) = run_script("train_speed.py", "--impl", "student", "--steps", "64", "--warmup", "64")
    assert result["impl"] == "student" and result["num_envs"] == 1
    precision = resolve_precision("auto")  # the default: bfloat16 where this CPU has it natively
    assert result["precision"] == precision and result["xla"] is (precision == "float32")
    for field in ("steps_per_s", "update_ms", "ceiling_steps_per_s", "act_ms"):
        assert result[field] > 0, field
    assert result["fraction_of_ceiling"] == pytest.approx(
        result["steps_per_s"] / result["ceiling_steps_per_s"], abs=0.002
    )


@pytest.mark.training
def test_train_speed_times_update_paths_each_in_its_own_process():
    """Two paths, one round: a line per path with its settings, then the summary naming the faster one."""
    paths = "float32_graph,float32_xla_no_onednn"
    *lines, summary = run_script(
        "train_speed.py", "--impl", "updates", "--paths", paths, "--rounds", "1", "--update-repeats", "3"
    )
    assert [line["path"] for line in lines] == paths.split(",")
    assert lines[0]["jit_compile"] is False and lines[1]["environment"] == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert all(line["median_ms"] > 0 and len(line["rounds_ms"]) == 1 for line in lines)
    assert summary["fastest"] == min(lines, key=lambda line: line["median_ms"])["path"]
    default = "float32_xla" if resolve_precision("auto") == "float32" else "bfloat16_graph"
    assert summary["default_path"] == default and "default_ms" not in summary  # not among the paths timed


@pytest.mark.slow
def test_checkpoint_size_reports_both_ways_and_compression_keeps_everything():
    """A tiny checkpoint of real Breakout play: both ways measured, the compressed one the smaller."""
    (result,) = run_script("checkpoint_size.py", "--transitions", "600", "--updates", "2")
    assert result["source"] == "600 transitions of random Breakout play"
    for way in ("savez", "savez_compressed"):
        assert result[way]["megabytes"] > 0 and result[way]["write_s"] > 0 and result[way]["read_s"] > 0, way
    # Breakout's screens are mostly black: frames compress many times over.
    assert result["savez"]["replay_megabytes"] > 5 * result["savez_compressed"]["replay_megabytes"]
    assert result["ratio"] > 1


def test_checkpoint_size_refuses_a_folder_that_is_no_checkpoint(tmp_path):
    """--checkpoint on a folder without learner.npz and replay.npz is a usage error naming them."""
    assert f"{tmp_path} is not a checkpoint folder: expected learner.npz and replay.npz in it" in usage_error(
        "checkpoint_size.py", "--checkpoint", str(tmp_path)
    )


@pytest.mark.slow
def test_agent_behaviour_measures_the_wait_to_serve_after_each_lost_life():
    """One full game of the reference agent: five lives, so four waits to serve (the last loss ends the game)."""
    (result,) = run_script("agent_behaviour.py", "--games", "1")
    assert result["agent"] == "reference" and len(result["scores"]) == 1
    assert result["mean_score"] == result["scores"][0] > 0
    waits = result["steps_to_fire_after_a_lost_life"]
    assert len(waits) == 4 and all(wait >= 1 for wait in waits), waits
    assert result["median_steps_to_fire"] == float(np.median(waits)) and result["max_steps_to_fire"] == max(waits)
    (above,) = result["steps_with_the_ball_above_the_bricks"]
    (first,) = result["first_step_with_the_ball_above_the_bricks"]
    assert isinstance(above, int) and above >= 0
    assert (first is None) == (above == 0), (first, above)  # a first step exactly when there is one


def test_agent_behaviour_refuses_weights_that_are_not_there(tmp_path):
    assert "none.weights.h5: no such file; expected a q_network.weights.h5 written by training" in usage_error(
        "agent_behaviour.py", "--weights", str(tmp_path / "none.weights.h5")
    )
