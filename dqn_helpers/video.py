"""Gameplay videos: record an agent's episode to MP4 (or GIF) and show it inline.

MP4s are H.264, baseline profile, yuv420p, with the index at the front of the file
(``+faststart``): the combination that browsers play, in JupyterLab and in exported
HTML. Frames are the full-colour 210x160 screen, doubled to 420x320 so pixels stay
sharp; the agent acts every 4th frame, so 15 video frames per second is real time.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import imageio.v2 as imageio
import numpy as np

from dqn_helpers._tensorflow import keras
from dqn_helpers.envs import make_env
from dqn_helpers.evaluation import EVAL_EPSILON, EVAL_MAX_EPISODE_FRAMES, as_policy, play_episode
from dqn_helpers.policies import Policy

__all__ = ["RecordedEpisode", "record_episode", "show_video", "write_video"]

REAL_TIME_FPS = 15  # 60 Hz emulator, one rendered frame per agent step of 4 frames


class RecordedEpisode(NamedTuple):
    """What :func:`record_episode` wrote."""

    path: Path
    score: float
    frames: int


def write_video(frames: Iterable[np.ndarray], path: str | Path, *, fps: int = REAL_TIME_FPS, scale: int = 2) -> int:
    """Write RGB frames to an MP4 (H.264) or GIF file, chosen by the suffix.

    Frames are streamed to the file, so a long episode never sits in memory. An MP4
    frame of odd height or width gets one more row or column (a copy of the last). GIFs
    store frame times in hundredths of a second (15 fps plays at about 16.7) and
    merge identical consecutive frames; use MP4 for exact timing.

    Args:
        frames: ``uint8`` arrays of shape ``(height, width, 3)``.
        path: Where to write; ``.mp4`` or ``.gif``.
        fps: Frames per second.
        scale: Integer upscaling of each frame (nearest neighbour).

    Returns:
        The number of frames written.

    Raises:
        ValueError: For another suffix, a bad ``fps`` or ``scale``, or no frames.
    """
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"video path must end in .mp4 or .gif, got {path.name!r}")
    if fps <= 0 or scale <= 0:
        raise ValueError(f"fps and scale must be positive, got fps={fps}, scale={scale}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        writer = imageio.get_writer(
            path,
            format="FFMPEG",
            fps=fps,
            codec="libx264",
            macro_block_size=1,
            ffmpeg_log_level="error",
            ffmpeg_params=["-profile:v", "baseline", "-movflags", "+faststart"],
            pixelformat="yuv420p",
        )
    else:
        writer = imageio.get_writer(path, format="GIF", duration=1000 / fps, loop=0)
    count = 0
    with writer:
        for frame in frames:
            frame = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
            if path.suffix.lower() == ".mp4":
                # yuv420p stores colour at half resolution: H.264 needs an even height and width.
                height, width = frame.shape[:2]
                frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            writer.append_data(frame)
            count += 1
    if count == 0:
        path.unlink(missing_ok=True)
        raise ValueError("no frames to write")
    return count


def record_episode(
    agent: Policy | keras.Model,
    path: str | Path,
    *,
    game: str = "Breakout",
    epsilon: float = EVAL_EPSILON,
    seed: int = 0,
    max_episode_frames: int = EVAL_MAX_EPISODE_FRAMES,
) -> RecordedEpisode:
    """Play one full game with ``agent`` and write it to a video file.

    Args:
        agent: A policy, or a Keras Q-network to act with.
        path: ``.mp4`` or ``.gif`` file to write.
        game: ALE game name.
        epsilon: Probability of a random action.
        seed: Seed of the reset and of exploration.
        max_episode_frames: Emulator frames after which the game is cut off.

    Returns:
        A :class:`RecordedEpisode` with the path, the score and the frame count.
    """
    score = 0.0
    with make_env(game, training=False, max_episode_frames=max_episode_frames, render_mode="rgb_array") as env:

        def frames() -> Iterable[np.ndarray]:
            nonlocal score
            for step in play_episode(env, as_policy(agent), np.random.default_rng(seed), epsilon=epsilon, seed=seed):
                score += step.reward
                yield env.render()  # the screen after this step's action

        count = write_video(frames(), path)
    return RecordedEpisode(Path(path), score, count)


def show_video(path: str | Path, *, width: int = 320):
    """Display a video inline in Jupyter, embedded so it also plays in exported HTML.

    Args:
        path: An ``.mp4`` or ``.gif`` file.
        width: Display width in pixels.

    Returns:
        An IPython display object (the notebook shows it when it is a cell's last value).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
    """
    from IPython.display import Image, Video

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video at {path}: record one first, e.g. with record_episode(agent, {str(path)!r})")
    if path.suffix.lower() == ".gif":
        return Image(filename=str(path), width=width)
    return Video(str(path), embed=True, width=width, html_attributes="controls loop muted playsinline")
