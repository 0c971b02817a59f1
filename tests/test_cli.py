"""Tests of the command line, ``python -m dqn_helpers {train,evaluate,record}``."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

import dqn_helpers
from dqn_helpers.__main__ import build_parser, main
from dqn_helpers.evaluation import evaluate
from dqn_helpers.learner import DQNLearner, resolve_precision
from dqn_helpers.networks import load_q_network, nature_cnn
from dqn_helpers.policies import RandomPolicy
from dqn_helpers.training import FIXED_CHOICES, DQNConfig

REPO = Path(__file__).resolve().parents[1]
CONFIG_FIELDS = [field.name for field in dataclasses.fields(DQNConfig)]


@pytest.fixture(scope="module")
def train_help():
    """The text of ``train --help``, unwrapped (a very wide terminal)."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("COLUMNS", "1000")
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--help"])
    assert exit_info.value.code == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """Weights of an untrained 4-action Q-network, saved to a .weights.h5 file."""
    path = tmp_path_factory.mktemp("weights") / "q.weights.h5"
    nature_cnn(4).save_weights(path)
    return path


@pytest.mark.slow  # a fresh Python imports TensorFlow: about 8 s
def test_module_help_lists_the_commands():
    """``python -m dqn_helpers --help`` runs in a fresh interpreter and names the four commands."""
    result = subprocess.run(
        [sys.executable, "-m", "dqn_helpers", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for command in ("train", "export", "evaluate", "record"):
        assert command in result.stdout
    assert result.stderr == ""  # TensorFlow's start-up noise is kept off stderr


def test_version(capsys):
    """--version prints the package version."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == dqn_helpers.__version__


def test_a_command_is_required(capsys):
    """No command is a usage error (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "required" in capsys.readouterr().err


@pytest.mark.parametrize("name", CONFIG_FIELDS)
def test_train_help_documents_every_setting(train_help, name):
    """Each DQNConfig field has a flag whose help is its doc, with the default for valued flags."""
    flag = "--" + name.replace("_", "-")
    assert flag in train_help
    assert DQNConfig.docs()[name] in train_help
    default = next(field.default for field in dataclasses.fields(DQNConfig) if field.name == name)
    if not isinstance(default, bool):
        assert f"{DQNConfig.docs()[name]} (default: {default})" in train_help


@pytest.mark.parametrize(
    ("argv", "name", "value"),
    [
        (["--total-steps", "5000"], "total_steps", 5000),
        (["--gamma", "0.9"], "gamma", 0.9),
        (["--game", "Pong"], "game", "Pong"),
        (["--double-dqn"], "double_dqn", True),
        (["--no-double-dqn"], "double_dqn", False),
        ([], "double_dqn", None),  # not given: the config's default applies
        ([], "learning_rate", None),
    ],
)
def test_train_flags_parse_to_typed_values(argv, name, value):
    """Flags become values of the field's type; flags not given stay None."""
    parsed = getattr(build_parser().parse_args(["train", *argv]), name)
    assert parsed == value and type(parsed) is type(value)


def test_record_writes_a_video(tmp_path, capsys):
    """Record with the random agent writes a playable MP4 and says how many frames."""
    output = tmp_path / "x.mp4"
    assert main(["record", "--output", str(output), "--max-episode-frames", "400"]) == 0
    captured = capsys.readouterr()
    assert "No --weights given: using the random agent (4 actions)" in captured.err
    frames = int(captured.out.split("Wrote ")[1].split(" frames")[0])
    assert f"to {output}" in captured.out
    with imageio.get_reader(output) as reader:
        assert sum(1 for _ in reader.iter_data()) == frames
    # 400 frames: at most 100 agent steps, at least (400 - 4 - 30) / 4 = 91.5.
    assert 91 <= frames <= 100


def test_evaluate_writes_a_json_report(tmp_path, capsys):
    """Evaluate reports mean, median, std, min, max and every score, to stdout and to --output."""
    json_path = tmp_path / "reports" / "eval.json"
    argv = ["evaluate", "--episodes", "2", "--max-episode-frames", "400", "--no-progress", "--output", str(json_path)]
    assert main(argv) == 0
    report = json.loads(json_path.read_text())
    assert json.loads(capsys.readouterr().out) == report
    scores = report["scores"]
    assert len(scores) == 2 == report["episodes"]
    assert report["mean"] == pytest.approx(np.mean(scores))
    assert report["median"] == pytest.approx(np.median(scores))
    assert report["std"] == pytest.approx(np.std(scores))
    assert (report["min"], report["max"]) == (min(scores), max(scores))
    assert report["game"] == "Breakout" and report["weights"] == "random agent"
    assert report["protocol"] == {
        "epsilon": 0.05,
        "max_episode_frames": 400,
        "noop_max": 30,
        "full_games": True,
        "seed": 0,
    }
    # The same games as calling evaluate directly with the same seed.
    direct = evaluate(RandomPolicy(4), episodes=2, max_episode_frames=400, seed=0, progress=False)
    assert scores == direct.tolist()


def test_evaluate_with_weights(weights_file, capsys):
    """--weights loads the Q-network and scores it like evaluate() on the loaded model."""
    argv = [
        "evaluate",
        "--weights",
        str(weights_file),
        "--episodes",
        "1",
        "--max-episode-frames",
        "200",
        "--epsilon",
        "0",
        "--seed",
        "4",
        "--no-progress",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["weights"] == str(weights_file)
    assert report["protocol"]["epsilon"] == 0.0 and report["protocol"]["seed"] == 4
    assert "random agent" not in captured.err
    direct = evaluate(
        load_q_network(weights_file, 4), episodes=1, epsilon=0.0, seed=4, max_episode_frames=200, progress=False
    )
    assert report["scores"] == direct.tolist()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["evaluate", "--game", "Breakoutt", "--episodes", "1", "--no-progress"],
            "error: unknown Atari game 'Breakoutt'. Did you mean 'Breakout'",
        ),
        (["record", "--game", "Breakoutt"], "error: unknown Atari game 'Breakoutt'"),
        (["train", "--game", "Breakoutt", "--no-progress"], "error: unknown Atari game 'Breakoutt'"),
        (["evaluate", "--episodes", "0", "--no-progress"], "error: episodes must be positive, got 0"),
        (
            ["train", "--learning-starts", "4", "--batch-size", "32"],
            "error: learning_starts (4) must be at least batch_size + num_envs (32 + 4)",
        ),
        (["train", "--gamma", "1.5"], "error: gamma must be in [0, 1], got 1.5"),
        (["train", "--total-steps", "10"], "error: total_steps (10) must be a multiple of num_envs (4)"),
    ],
)
def test_errors_exit_with_status_2_and_a_message(argv, message, capsys, tmp_path):
    """Bad input gives exit status 2 and a one-line error on stderr, no traceback."""
    if argv[0] == "train":
        argv = [*argv, "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_missing_weights_file_exits_with_status_2(tmp_path, capsys):
    """A --weights path that does not exist is reported, not raised."""
    missing = tmp_path / "none.weights.h5"
    assert main(["evaluate", "--weights", str(missing), "--episodes", "1", "--no-progress"]) == 2
    assert f"error: no weights file at {missing}" in capsys.readouterr().err


def test_record_bad_suffix_exits_with_status_2(tmp_path, capsys):
    """Record refuses an output that is neither .mp4 nor .gif."""
    assert main(["record", "--output", str(tmp_path / "x.avi"), "--max-episode-frames", "100"]) == 2
    assert "error: video path must end in .mp4 or .gif" in capsys.readouterr().err


@pytest.mark.training
def test_train_starts_from_a_preset_and_flags_override_it(tmp_path, capsys):
    """Train --preset short runs with the preset's settings, except those the flags give."""
    run_dir = tmp_path / "run"
    argv = [
        "train",
        "--preset",
        "short",
        "--run-dir",
        str(run_dir),
        "--total-steps",
        "48",
        "--learning-starts",
        "40",
        "--batch-size",
        "8",
        "--buffer-size",
        "300",
        "--checkpoint-interval",
        "1000",
        "--no-progress",
    ]
    assert main(argv) == 0
    config = json.loads((run_dir / "config.json").read_text())
    given = {"total_steps": 48, "learning_starts": 40, "batch_size": 8, "buffer_size": 300, "checkpoint_interval": 1000}
    expected = dataclasses.asdict(DQNConfig.preset("short", **given))
    assert {name: config[name] for name in expected} == expected
    assert config["n_step"] == 3 and config["learning_rate"] == 2.5e-4


@pytest.mark.training
def test_train_tiny_run(tmp_path, capsys):
    """A tiny train command writes the run folder and prints the summary as JSON."""
    run_dir = tmp_path / "run"
    argv = [
        "train",
        "--run-dir",
        str(run_dir),
        "--total-steps",
        "96",
        "--learning-starts",
        "32",
        "--batch-size",
        "8",
        "--buffer-size",
        "300",
        "--log-interval",
        "32",
        "--checkpoint-interval",
        "1000",
        "--epsilon-decay-steps",
        "50",
        "--learning-rate",
        "0.0005",
        "--double-dqn",
        "--no-progress",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {
        "run_dir": str(run_dir),
        "steps": 96,
        "episodes": summary["episodes"],
        "weights_path": str(run_dir / "q_network.weights.h5"),
        "interrupted": False,
    }
    config = json.loads((run_dir / "config.json").read_text())
    given = {
        "total_steps": 96,
        "learning_starts": 32,
        "batch_size": 8,
        "buffer_size": 300,
        "log_interval": 32,
        "checkpoint_interval": 1000,
        "epsilon_decay_steps": 50,
        "learning_rate": 0.0005,
        "double_dqn": True,
    }
    assert config == {**dataclasses.asdict(DQNConfig()), **given, "fixed": FIXED_CHOICES, "compute": config["compute"]}
    assert config["compute"]["precision"] == resolve_precision("auto")
    assert (run_dir / "q_network.weights.h5").is_file()
    # Updates at 32, 36, ..., 96 are logged at 32, 64 and 96.
    assert [line.split(",")[0] for line in (run_dir / "losses.csv").read_text().splitlines()[1:]] == ["32", "64", "96"]


def fake_run(run_dir: Path, games: int = 3) -> DQNLearner:
    """A run folder as train() leaves it: config.json, episodes.csv and a checkpoint of a fresh learner."""
    learner = DQNLearner(4)
    (run_dir / "checkpoint").mkdir(parents=True)
    np.savez(run_dir / "checkpoint" / "learner.npz", **learner.get_state())
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(DQNConfig())))
    (run_dir / "checkpoint" / "state.json").write_text(json.dumps({"step": 800 * games, "episodes": games}))
    # One more game was logged after the checkpoint, by a run still going.
    rows = [f"{800 * i},{i},{2.0 * i},700,0.5,{0.1 * i}" for i in range(1, games + 2)]
    (run_dir / "episodes.csv").write_text("\n".join(["step,episode,return,length,epsilon,hours", *rows]) + "\n")
    return learner


def test_export_writes_weights_config_and_curve(tmp_path, capsys):
    """Export copies the checkpoint's online network (loadable by load_q_network), the config and the curve up to it."""
    run_dir, out = tmp_path / "run", tmp_path / "shipped"
    learner = fake_run(run_dir)
    assert main(["export", "--run-dir", str(run_dir), "--output-dir", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = ["breakout.weights.h5", "config.json", "learning_curve.csv", "learning_curve.png"]
    assert report["written"] == [str(out / name) for name in names]
    loaded = load_q_network(out / "breakout.weights.h5", 4)
    for mine, theirs in zip(loaded.get_weights(), learner.online_network.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert (out / "config.json").read_text() == (run_dir / "config.json").read_text()
    # The curve stops at the checkpoint the weights come from.
    assert report["step"] == 2_400
    assert (out / "learning_curve.csv").read_text().splitlines() == (run_dir / "episodes.csv").read_text().splitlines()[
        :4
    ]
    assert imageio.imread(out / "learning_curve.png").shape[:2] == (420, 1200)


@pytest.mark.parametrize(
    ("missing", "message"),
    [("config.json", "no training run in .*: it has no config.json"), ("checkpoint", "no checkpoint in")],
)
def test_export_of_something_that_is_not_a_run_exits_with_status_2(tmp_path, capsys, missing, message):
    run_dir = tmp_path / "run"
    fake_run(run_dir)
    if missing == "checkpoint":
        shutil.rmtree(run_dir / missing)
    else:
        (run_dir / missing).unlink()
    assert main(["export", "--run-dir", str(run_dir), "--output-dir", str(tmp_path / "out")]) == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.training
def test_a_runs_record_reproduces_it_with_train_config(tmp_path):
    """Check that train --config <a run's config.json> starts the same run, and that flags override the record."""
    tiny = ["--total-steps", "48", "--learning-starts", "40", "--batch-size", "8", "--buffer-size", "300"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--run-dir", str(first), "--seed", "7", "--n-step", "2", *tiny, "--no-progress"]) == 0
    assert main(["train", "--config", str(first / "config.json"), "--run-dir", str(second), "--no-progress"]) == 0
    assert json.loads((second / "config.json").read_text()) == json.loads((first / "config.json").read_text())
    third = tmp_path / "third"
    assert (
        main(["train", "--config", str(first / "config.json"), "--run-dir", str(third), "--seed", "8", *tiny[:2]]) == 0
    )
    assert json.loads((third / "config.json").read_text())["seed"] == 8


def test_train_config_and_preset_exclude_each_other(tmp_path, capsys):
    """Check that a run starts from a record or from a preset, not both."""
    reference = "dqn_helpers/reference/config.json"
    with pytest.raises(SystemExit):
        main(["train", "--config", reference, "--preset", "short", "--run-dir", str(tmp_path)])
    assert "not allowed with argument" in capsys.readouterr().err
