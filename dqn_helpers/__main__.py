"""Command line: ``python -m dqn_helpers {train,export,evaluate,record,grade} --help``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import dqn_helpers

DEFAULT_GAME = "Breakout"
REFERENCE = Path("reference")  # --weights reference: the agent shipped in dqn_helpers/reference


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from dqn_helpers.training import DQNConfig

    docs = DQNConfig.docs()
    for field in dataclasses.fields(DQNConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=docs[field.name])
        else:
            kind = {"int": int, "float": float, "str": str}[str(field.type)]
            parser.add_argument(flag, type=kind, default=None, help=f"{docs[field.name]} (default: {field.default})")


def _agent(weights: Path | None, game: str):
    """The Q-network loaded from ``weights``, or the random agent without them."""
    from dqn_helpers.envs import make_env
    from dqn_helpers.networks import load_q_network
    from dqn_helpers.policies import RandomPolicy

    with make_env(game, training=False) as env:
        num_actions = int(env.action_space.n)
    if weights == REFERENCE:
        from dqn_helpers import reference

        weights = reference.WEIGHTS
    if weights is None:
        print(f"No --weights given: using the random agent ({num_actions} actions).", file=sys.stderr)
        return RandomPolicy(num_actions)
    return load_q_network(weights, num_actions)


def config_from_args(args: argparse.Namespace):
    """The :class:`~dqn_helpers.training.DQNConfig` that ``train``'s arguments ask for.

    A run's record (``--config``) or a preset (``--preset``), or the defaults; with
    the settings given as flags on top.
    """
    from dqn_helpers.training import DQNConfig

    overrides = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(DQNConfig) if getattr(args, f.name) is not None
    }
    if args.config:
        return DQNConfig.from_file(args.config, **overrides)
    if args.preset:
        return DQNConfig.preset(args.preset, **overrides)
    return DQNConfig(**overrides)


def _train(args: argparse.Namespace) -> None:
    from dqn_helpers.training import train

    summary = train(config_from_args(args), args.run_dir, progress=not args.no_progress)
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in summary._asdict().items()}))


def _export(args: argparse.Namespace) -> None:
    import shutil

    from dqn_helpers.curves import save_learning_curve
    from dqn_helpers.training import export_weights

    config_file = args.run_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"no training run in {args.run_dir}: it has no config.json")
    game = json.loads(config_file.read_text())["game"]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    weights = export_weights(args.run_dir, args.output_dir / f"{game.lower()}.weights.h5")
    # The weights are the checkpoint's: keep the games played up to it, not those of a run still going.
    step = json.loads((args.run_dir / "checkpoint" / "state.json").read_text())["step"]
    header, *rows = (args.run_dir / "episodes.csv").read_text().splitlines()
    curve = args.output_dir / "learning_curve.csv"
    curve.write_text("\n".join([header, *(row for row in rows if int(row.split(",")[0]) <= step)]) + "\n")
    written = [
        weights,
        Path(shutil.copyfile(config_file, args.output_dir / "config.json")),
        curve,
        save_learning_curve(curve, args.output_dir / "learning_curve.png", label=f"DQN on {game}"),
    ]
    print(json.dumps({"run_dir": str(args.run_dir), "step": step, "written": [str(path) for path in written]}))


def _evaluate(args: argparse.Namespace) -> None:
    from dqn_helpers.evaluation import evaluate, summarize

    scores = evaluate(
        _agent(args.weights, args.game),
        game=args.game,
        episodes=args.episodes,
        epsilon=args.epsilon,
        seed=args.seed,
        max_episode_frames=args.max_episode_frames,
        progress=not args.no_progress,
    )
    report = {
        "game": args.game,
        "weights": str(args.weights) if args.weights else "random agent",
        "protocol": {
            "epsilon": args.epsilon,
            "max_episode_frames": args.max_episode_frames,
            "noop_max": 30,
            "full_games": True,
            "seed": args.seed,
        },
        **summarize(scores),
        "scores": scores.tolist(),
    }
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)


def _record(args: argparse.Namespace) -> None:
    from dqn_helpers.video import record_episode

    recorded = record_episode(
        _agent(args.weights, args.game),
        args.output,
        game=args.game,
        epsilon=args.epsilon,
        seed=args.seed,
        max_episode_frames=args.max_episode_frames,
    )
    print(f"Wrote {recorded.frames} frames (score {recorded.score:g}) to {recorded.path}")


def _grade(args: argparse.Namespace) -> None:
    import csv
    from collections import defaultdict

    from dqn_helpers.instructor.grading import grade_course

    output = grade_course(
        args.course,
        jobs=args.jobs,
        cell_timeout=args.cell_timeout,
        memory_limit_gb=args.memory_limit_gb,
        submission_timeout=args.submission_timeout,
        force=args.force,
        progress=not args.no_progress,
        sandbox=not args.no_sandbox,
        scheduler=args.scheduler,
    )
    totals: dict[tuple[str, str], list] = defaultdict(lambda: [0.0, 0.0, ""])
    with open(output) as file:
        for row in csv.DictReader(file):
            total = totals[row["student"], row["assignment"]]
            total[0] += float(row["score"])
            total[1] += float(row["max_score"])
            total[2] = row["status"] + (f" ({row['note']})" if row["note"] else "")
    for (student, assignment), (score, max_score, status) in totals.items():
        print(f"{student:<20} {assignment:<20} {score:>5g} / {max_score:<5g} {status}")
    print(f"Scores per test cell: {output}")


def _backup_grades(args: argparse.Namespace) -> None:
    from dqn_helpers.instructor.records import backup_records

    print(f"Backed up the grades and hand-ins to {backup_records(args.course)}")


def _erase_grades(args: argparse.Namespace) -> None:
    from dqn_helpers.instructor.records import erase_records

    try:
        archive, erased = erase_records(args.course)
    except RuntimeError as error:  # the backup did not read back: nothing was deleted
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from error
    print(
        f"Backed up to {archive}, then deleted {', '.join(erased)} (unzip the backup in the course folder to restore)"
    )


def _add_instructor_commands(commands: argparse._SubParsersAction) -> None:
    """The instructor's commands: grading a class, and backing up or erasing its grades."""
    grade_parser = commands.add_parser(
        "grade", help="autograde every submission in submitted/ with nbgrader and write grading/grades.csv"
    )
    grade_parser.add_argument("--course", type=Path, default=Path("."), help="the course folder (nbgrader_config.py)")
    grade_parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (one kernel each)")
    grade_parser.add_argument("--cell-timeout", type=int, help="seconds a cell may run (default: nbgrader_config.py's)")
    grade_parser.add_argument(
        "--memory-limit-gb", type=float, default=8.0, help="memory per kernel in GB (0: no limit)"
    )
    grade_parser.add_argument("--submission-timeout", type=float, default=1800.0, help="seconds per submission in all")
    grade_parser.add_argument("--force", action="store_true", help="grade again what an earlier run graded")
    grade_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade_parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run the students' kernels unsandboxed, with your permissions (only where bubblewrap cannot run; grades.csv says so)",
    )
    grade_parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on the workers of this Dask cluster (e.g. tcp://10.0.0.5:8786); each needs the course folder "
        "at the same path and the course's environment (README: grading beyond one machine)",
    )
    grade_parser.set_defaults(run=_grade)
    for name, help_text, run in (
        (
            "backup-grades",
            "zip the gradebook, submitted/, autograded/, feedback/ and grading/ into backups/",
            _backup_grades,
        ),
        (
            "erase-grades",
            "back them up as backup-grades does, then delete them (the only command that does)",
            _erase_grades,
        ),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--course", type=Path, default=Path("."), help="the course folder (nbgrader_config.py)")
        sub.set_defaults(run=run)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m dqn_helpers``."""
    from dqn_helpers.evaluation import EVAL_EPSILON, EVAL_MAX_EPISODE_FRAMES
    from dqn_helpers.training import PRESETS

    parser = argparse.ArgumentParser(
        prog="python -m dqn_helpers", description="Train, evaluate and record DQN agents on Atari."
    )
    parser.add_argument("--version", action="version", version=dqn_helpers.__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train a DQN agent (resumes from --run-dir's checkpoint)")
    train_parser.add_argument(
        "--run-dir", type=Path, default=Path("runs/breakout"), help="folder for logs, checkpoints, weights"
    )
    train_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    start = train_parser.add_mutually_exclusive_group()
    start.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a named preset (short: learns within minutes on a CPU); flags override it",
    )
    start.add_argument(
        "--config",
        type=Path,
        help="start from the settings a run recorded in its config.json (e.g. dqn_helpers/reference/config.json); "
        "flags override them",
    )
    _add_config_flags(train_parser)
    train_parser.set_defaults(run=_train)

    export_parser = commands.add_parser(
        "export", help="copy a run's newest weights, config and learning curve (CSV and PNG) into a folder"
    )
    export_parser.add_argument(
        "--run-dir", type=Path, required=True, help="a folder that train wrote (finished or not)"
    )
    export_parser.add_argument("--output-dir", type=Path, required=True, help="folder to write the files to")
    export_parser.set_defaults(run=_export)

    for name, help_text, run in (
        ("evaluate", "score an agent by the standard protocol (full games, no-op starts, epsilon 0.05)", _evaluate),
        ("record", "record one game of an agent to an MP4 or GIF", _record),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--weights",
            type=Path,
            help="a .weights.h5 file, or 'reference' for the shipped agent; the random agent without it",
        )
        sub.add_argument("--game", default=DEFAULT_GAME, help="ALE game name")
        sub.add_argument("--epsilon", type=float, default=EVAL_EPSILON, help="probability of a random action")
        sub.add_argument("--seed", type=int, default=0, help="seed of the no-op starts and exploration")
        sub.add_argument(
            "--max-episode-frames", type=int, default=EVAL_MAX_EPISODE_FRAMES, help="emulator frames per game at most"
        )
        sub.set_defaults(run=run)
    # The student distribution ships the package without dqn_helpers.instructor, and so without these.
    if importlib.util.find_spec("dqn_helpers.instructor") is not None:
        _add_instructor_commands(commands)
    evaluate_parser, record_parser = commands.choices["evaluate"], commands.choices["record"]
    evaluate_parser.add_argument("--episodes", type=int, default=30, help="full games to play")
    evaluate_parser.add_argument("--output", type=Path, help="also write the JSON report here")
    evaluate_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    record_parser.add_argument("--output", type=Path, default=Path("videos/breakout.mp4"), help=".mp4 or .gif to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        if error.name != "nbgrader":
            raise
        print(f"error: {error}", file=sys.stderr)  # `grade` without the instructor extra
        return 2
    except KeyboardInterrupt:
        return 130  # what was finished is kept; the command said how to go on
    return 0


if __name__ == "__main__":
    sys.exit(main())
