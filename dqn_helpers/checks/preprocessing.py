"""Visible checks of notebook 02, Atari preprocessing.

They check ``preprocess_frame``, ``skip_and_max`` and ``FrameStacker``.

Every check feeds the student's answer small synthetic inputs whose right answer
is known exactly, so a wrong answer can be told apart from a merely different but
correct one, and the message names the likely mistake:

- frames are made from an asymmetric *test card* (taller than wide, with a bright
  block near the top-left corner), so that swapped axes, transposes and crops along
  the wrong axis change the picture even when the output is square;
- a scripted fake game draws a sprite at a different place on each emulator frame
  and gives a reward of ``2**(k-1)`` on its ``k``-th frame, so the returned frame
  and the summed reward say exactly which frames of the skip were used;
- frame stacks are built from random, never all-zero frames, so each slot of a
  returned stack can be named (a zero slot can only be padding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from dqn_helpers.envs import FRAME_SHAPE

__all__ = [
    "LUMA_WEIGHTS",
    "ScriptedGame",
    "check_frame_stacker_order",
    "check_frame_stacker_reset",
    "check_frame_stacker_returns_copy",
    "check_preprocess_frame_geometry",
    "check_preprocess_frame_grayscale",
    "check_preprocess_frame_output",
    "check_skip_and_max_frames",
    "check_skip_and_max_reward_and_end",
]

SCREEN_SHAPE = (210, 160, 3)  # rows, columns, colour channels of an Atari frame
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # weights of R, G, B in the luma Y
NON_SQUARE_SIZE = (60, 100)  # (height, width): a swapped pair gives another shape
CROP_ROWS = (32, 196)  # rows kept by the crop in the checks: below the score, above the floor
TOLERANCE_MEAN = 1.0  # gray levels: rounding and the order of gray/resize may differ this much
TOLERANCE_MAX = 3.0


# --- preprocess_frame ------------------------------------------------------------------


def _test_card(
    height: int = SCREEN_SHAPE[0], width: int = SCREEN_SHAPE[1], seed: int = 0, gray: bool = False
) -> np.ndarray:
    """A smooth RGB picture that looks different upside down, mirrored or transposed.

    With ``gray``, R = G = B, so that every gray conversion whose weights add up to 1
    gives the same gray picture.
    """
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, height)[:, None]
    columns = np.linspace(0.0, 1.0, width)[None, :]
    phase = rng.uniform(0.0, 2 * np.pi, size=3)
    red = 0.5 + 0.4 * np.sin(3 * np.pi * rows + phase[0])  # changes from row to row
    green = 0.5 + 0.4 * np.cos(2 * np.pi * columns + phase[1])  # changes from column to column
    blue = 0.2 + 0.6 * rows * columns + 0.1 * np.sin(phase[2])
    card = np.stack(np.broadcast_arrays(red, green, blue), axis=-1) * 255
    card[height // 20 : height // 4, width // 16 : width // 5] = 255  # a white block near the top-left corner
    card = np.clip(np.round(card), 0, 255).astype(np.uint8)
    if gray:
        card = np.repeat(np.round(card @ np.array(LUMA_WEIGHTS)).astype(np.uint8)[..., None], 3, axis=2)
    return card


def _reference_frame(
    frame: np.ndarray, size: tuple[int, int] = FRAME_SHAPE, top: int = 0, bottom: int | None = None
) -> np.ndarray:
    """The right answer: luma gray, rows top:bottom, INTER_AREA resize to (height, width)."""
    gray = np.round(frame @ np.array(LUMA_WEIGHTS)).astype(np.uint8)[top:bottom, :]
    return cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _same_picture(answer: np.ndarray, expected: np.ndarray) -> bool:
    """Same shape, and the same gray levels up to rounding."""
    if answer.shape != expected.shape:
        return False
    difference = np.abs(answer.astype(np.float64) - expected.astype(np.float64))
    return bool(difference.mean() <= TOLERANCE_MEAN and difference.max() <= TOLERANCE_MAX)


def _run_preprocess(preprocess_frame: Callable, frame: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Call the answer on a copy of ``frame``; return its output as an array."""
    original = frame.copy()
    try:
        output = preprocess_frame(frame, **kwargs)
    except AssertionError:
        raise
    except Exception as error:  # the student's crash, explained where it can be
        raise AssertionError(_crash_text(error, _call_text(**kwargs))) from error
    if not np.array_equal(frame, original):
        raise AssertionError(
            "preprocess_frame changed the frame it was given: compute new arrays instead of writing into `frame`"
        )
    if not isinstance(output, np.ndarray):
        raise AssertionError(f"preprocess_frame must return a NumPy array, got {type(output).__name__}")
    return output


def _crash_text(error: Exception, call: str) -> str:
    """What a crash of preprocess_frame says, with the likely cause where the error shows it."""
    lines = str(error).strip().splitlines()
    text = f"{call} raised {type(error).__name__}: {lines[-1] if lines else ''}"
    if isinstance(error, cv2.error) and "resize" in str(error) and "func != 0" in str(error):
        # OpenCV has no INTER_AREA resize for int8, int32, int64, float16 or bool images.
        text += (
            ". cv2.resize has no area resize for the dtype of the image it was given: round the gray levels and "
            "make them one byte each, np.round(gray).astype(np.uint8), before resizing (astype(int) gives int64)"
        )
    return text


def _call_text(**kwargs: Any) -> str:
    arguments = ", ".join(f"{name}={value!r}" for name, value in kwargs.items())
    return f"preprocess_frame(frame{', ' if arguments else ''}{arguments})"


def _scale_back(preprocess_frame: Callable) -> float:
    """255 if the answer scales gray levels to [0, 1] (as a white screen shows), else 1.

    Only the output check fails an answer for its scale; the others undo it, so
    that one mistake costs one check.
    """
    white = _run_preprocess(preprocess_frame, np.full(SCREEN_SHAPE, 255, np.uint8))
    return 255.0 if white.size and float(white.max()) <= 1.0 else 1.0


def check_preprocess_frame_output(preprocess_frame: Callable) -> None:
    """Check that preprocess_frame returns one 84x84 ``uint8`` frame of gray levels 0-255.

    Args:
        preprocess_frame: The student's function, called as ``preprocess_frame(frame)``
            on a ``(210, 160, 3)`` RGB frame.

    Raises:
        AssertionError: If the output is not an ``(84, 84)`` ``uint8`` array, is scaled
            to [0, 1], keeps a colour axis, or if the input frame was changed.
    """
    _run_preprocess(preprocess_frame, _test_card())  # fails if it writes into its input
    output = _run_preprocess(preprocess_frame, np.full(SCREEN_SHAPE, 255, np.uint8))
    if output.dtype != np.uint8:
        if np.issubdtype(output.dtype, np.floating) and output.size and float(output.max()) <= 1.0:
            raise AssertionError(
                f"your frame is {output.dtype} scaled to [0, 1] (a white screen gave {float(output.max()):g}, not 255): "
                "the pipeline must keep uint8 gray levels 0-255, 4 to 8 times smaller in the replay memory; "
                "the network divides by 255 itself, once"
            )
        raise AssertionError(
            f"your frame has dtype {output.dtype}, not uint8: a float frame takes {output.dtype.itemsize} times the memory "
            "of a uint8 one, in a replay memory of a million frames; convert with .astype(np.uint8) after rounding"
        )
    if output.ndim == 3:
        raise AssertionError(
            f"your frame has shape {output.shape}: it still has a colour axis; combine R, G and B into one gray level "
            "per pixel, for a frame of shape (84, 84)"
        )
    if output.shape != FRAME_SHAPE:
        raise AssertionError(
            f"for the default size, preprocess_frame must return shape {FRAME_SHAPE}, got {output.shape}"
        )
    if int(output.min()) < 250:
        raise AssertionError(
            f"a white screen should stay white (255) after preprocessing, but your frame has values down to {output.min()}"
            + (
                ": it looks scaled to [0, 1] and then cast to uint8; keep gray levels 0-255"
                if output.max() <= 1
                else ""
            )
        )


def check_preprocess_frame_grayscale(preprocess_frame: Callable) -> None:
    """Check that preprocess_frame turns colour into gray with the luma weights ``Y = 0.299R + 0.587G + 0.114B``.

    Args:
        preprocess_frame: The student's function, called as ``preprocess_frame(frame)``.

    Raises:
        AssertionError: If pure red, green and blue screens do not become gray levels
            76, 150 and 29 (give or take 1), naming the likely mistake: a plain average
            of the channels, channels read in BGR order, or other weights.
    """
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    expected = np.array([round(255 * weight) for weight in LUMA_WEIGHTS], dtype=np.float64)  # 76, 150, 29
    got, scale = [], _scale_back(preprocess_frame)
    for name, colour in colours.items():
        output = scale * _run_preprocess(preprocess_frame, np.full(SCREEN_SHAPE, colour, np.uint8)).astype(np.float64)
        if output.size == 0 or np.ptp(output) > 1.0:
            raise AssertionError(
                f"a screen that is pure {name} everywhere should become one gray level everywhere, but your frame "
                f"ranges from {output.min():g} to {output.max():g}"
            )
        got.append(float(output.mean()))
    got_array = np.array(got)
    if np.all(np.abs(got_array - expected) <= 1.0):
        return
    shown = ", ".join(f"{value:.4g}" for value in got)
    message = (
        f"pure red, green and blue screens should become 76, 150 and 29 (Y = 0.299R + 0.587G + 0.114B), got {shown}"
    )
    if np.all(np.abs(got_array - 85) <= 1.0):
        message += ": that is the plain average (R + G + B) / 3; weight the channels with the luma weights instead"
    elif np.all(np.abs(got_array - expected[::-1]) <= 1.0):
        message += (
            ": red and blue are swapped, the BGR order of OpenCV's COLOR_BGR2GRAY; Gymnasium's frames are RGB "
            "(use cv2.COLOR_RGB2GRAY, or the weights in R, G, B order)"
        )
    elif np.count_nonzero(got_array > 1.0) == 1:
        message += ": only one colour channel is used; combine all three with the luma weights"
    else:
        message += ": use the weights 0.299, 0.587 and 0.114 for R, G and B"
    raise AssertionError(message)


def _diagnose_geometry(
    output: np.ndarray, frame: np.ndarray, size: tuple[int, int], top: int, bottom: int | None, call: str
) -> str | None:
    """Why ``output`` is not the right frame for these arguments, or None if it is."""
    expected = _reference_frame(frame, size, top, bottom)
    if _same_picture(output, expected):
        return None
    height, width = size
    if output.shape == (width, height) and height != width:
        return (
            f"{call} returned shape {output.shape}, not {size}: cv2.resize takes its size as (width, height), "
            "the reverse of NumPy's (rows, columns) order; with a square 84x84 output this mistake hides"
        )
    if output.shape != expected.shape:
        hint = ""
        if output.shape == FRAME_SHAPE:
            hint = ": your function ignores its `size` argument"
        elif top and output.shape[0] < height:
            hint = ": crop the screen's rows before resizing, so that the output keeps the requested size"
        return f"{call} should return shape {expected.shape}, got {output.shape}{hint}"
    gray = np.round(frame @ np.array(LUMA_WEIGHTS)).astype(np.uint8)
    transposed = cv2.resize(np.ascontiguousarray(gray[top:bottom, :].T), (width, height), interpolation=cv2.INTER_AREA)
    if _same_picture(output, transposed):
        return (
            f"{call} returns the picture transposed (rows and columns swapped, as if mirrored along the diagonal): "
            "an image array is indexed [row, column], i.e. [y, x], and cv2.resize wants (width, height)"
        )
    if _same_picture(output, expected[::-1]) or _same_picture(output, expected[:, ::-1]):
        return f"{call} returns the picture flipped upside down or mirrored: keep the rows and columns in their order"
    if top != 0 or bottom is not None:
        if _same_picture(output, _reference_frame(frame, size)):
            return (
                f"{call} ignores `top` and `bottom`: it should keep only rows top:bottom of the screen before resizing"
            )
        columns_cut = cv2.resize(
            np.ascontiguousarray(gray[:, top:bottom]), (width, height), interpolation=cv2.INTER_AREA
        )
        if _same_picture(output, columns_cut):
            return (
                f"{call} cuts columns, not rows: the first axis of an image array is the rows (y), so the crop is "
                "gray[top:bottom, :]"
            )
    difference = np.abs(output.astype(np.float64) - expected.astype(np.float64))
    return (
        f"{call} differs from the expected frame by {difference.mean():.1f} gray levels on average "
        f"(up to {difference.max():.0f}) on an asymmetric test card: convert to gray with the luma weights, "
        "crop rows top:bottom, then cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)."
    )


def check_preprocess_frame_geometry(preprocess_frame: Callable, seed: int = 0) -> None:
    """Check that preprocess_frame keeps rows as rows: resize to (height, width) and crop rows, on an asymmetric picture.

    A square 84x84 output hides a swapped pair of axes, so the check also asks for a
    non-square size and a crop, and compares each output with the right answer. The
    test card is gray already (R = G = B), and outputs scaled to [0, 1] are scaled
    back: the other two checks judge the gray conversion and the scale.

    Args:
        preprocess_frame: The student's function, called as
            ``preprocess_frame(frame, size=(height, width), top=..., bottom=...)``.
        seed: Varies the test card.

    Raises:
        AssertionError: If an output has the wrong shape or content, naming the
            likely mistake: ``(height, width)`` passed to ``cv2.resize``, a transposed
            picture, a crop of columns instead of rows, or an ignored argument.
    """
    frame, scale = _test_card(seed=seed, gray=True), _scale_back(preprocess_frame)
    cases: list[dict[str, Any]] = [
        {},
        {"size": NON_SQUARE_SIZE},
        {"top": CROP_ROWS[0], "bottom": CROP_ROWS[1]},
        {"size": (NON_SQUARE_SIZE[1], NON_SQUARE_SIZE[0]), "top": 17},
    ]
    for kwargs in cases:
        output = scale * _run_preprocess(preprocess_frame, frame, **kwargs).astype(np.float64)
        problem = _diagnose_geometry(
            output,
            frame,
            kwargs.get("size", FRAME_SHAPE),
            kwargs.get("top", 0),
            kwargs.get("bottom"),
            _call_text(**kwargs),
        )
        if problem:
            raise AssertionError(problem)


# --- skip_and_max ----------------------------------------------------------------------

_SPRITE = 12  # pixels: the side of each frame's sprite


def _scripted_frame(k: int, seed: int) -> np.ndarray:
    """Emulator frame ``k`` (1, 2, ...) of the scripted game: a dim background, one sprite at a place of its own."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 40, size=SCREEN_SHAPE, dtype=np.uint8)  # dim: below every sprite
    frame[_sprite_box(k)] = (80 + 20 * (k % 7), 240 - 15 * (k % 9), 60 + 25 * (k % 5))
    return frame


def _sprite_box(k: int) -> tuple[slice, slice]:
    """Where frame ``k`` of the scripted game draws its sprite."""
    row, column = 10 + 24 * ((k - 1) % 8), 10 + 40 * ((k - 1) // 8)
    return slice(row, row + _SPRITE), slice(column, column + _SPRITE)


def _sprites_shown(frame: np.ndarray, count: int, seed: int) -> list[int]:
    """Which of the scripted frames 1..count have their whole sprite in ``frame``."""
    shown = []
    for k in range(1, count + 1):
        box = _sprite_box(k)
        if np.array_equal(frame[box], _scripted_frame(k, seed)[box]):
            shown.append(k)
    return shown


class ScriptedGame(gym.Env):
    """A fake raw Atari game (one emulator frame per step) whose frames and rewards give away how they were used.

    Frame ``k`` (counting from 1 after a reset) shows one coloured sprite at a place of
    its own on a dim background, and its reward is ``reward_scale * 2**(k-1)``, so a sum of rewards
    says which frames were added. The game can end on a chosen frame; stepping after
    that raises an ``AssertionError``, as a loop that misses the end of a game would
    otherwise run on.

    Args:
        end_on: Frame on which the game ends, or None for never.
        end_by: ``"terminated"`` (game over) or ``"truncated"`` (time limit).
        seed: Varies the frames.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, end_on: int | None = None, end_by: str = "terminated", seed: int = 0, reward_scale: float = 1.0):
        self.observation_space = gym.spaces.Box(0, 255, SCREEN_SHAPE, np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.end_on, self.end_by, self.seed, self.reward_scale = end_on, end_by, seed, reward_scale
        self.frame_number = 0
        self.actions: list[Any] = []
        self.over = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start a new scripted game."""
        self.frame_number, self.actions, self.over = 0, [], False
        return np.zeros(SCREEN_SHAPE, np.uint8), {"lives": 5}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Give the next scripted frame and record the action."""
        if self.over:
            raise AssertionError(
                f"skip_and_max called env.step() again after the game ended on frame {self.frame_number} of the skip "
                f"(that step returned {self.end_by}=True): stop repeating the action as soon as `terminated` or "
                "`truncated` is True"
                + (": a time limit ends the episode as surely as a lost game" if self.end_by == "truncated" else "")
            )
        self.frame_number += 1
        self.actions.append(action)
        ended = self.frame_number == self.end_on
        terminated, truncated = ended and self.end_by == "terminated", ended and self.end_by == "truncated"
        self.over = ended
        reward = self.reward_scale * float(2 ** (self.frame_number - 1))
        return _scripted_frame(self.frame_number, self.seed), reward, terminated, truncated, {"lives": 5}


def _run_skip(skip_and_max: Callable, env: ScriptedGame, action: int, skip: int) -> tuple[Any, ...]:
    """Reset ``env``, call the answer once, and check it returned a 4-tuple."""
    env.reset()
    result = skip_and_max(env, action, skip=skip)
    if not isinstance(result, tuple) or len(result) != 4:
        raise AssertionError(
            "skip_and_max must return a tuple (frame, total_reward, terminated, truncated), "
            f"got {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, tuple) else "")
        )
    return result


def _frames_problem(frame: Any, seen: int, skip: int, seed: int, when: str) -> str | None:
    """Why ``frame`` is not the max of the last two of ``seen`` scripted frames, or None."""
    if not isinstance(frame, np.ndarray):
        return f"{when}, skip_and_max returned a frame of type {type(frame).__name__}, not a NumPy array"
    if frame.shape != SCREEN_SHAPE:
        hint = ""
        if frame.shape in ((2, *SCREEN_SHAPE[1:]), (2, *SCREEN_SHAPE[:1], SCREEN_SHAPE[2])):
            hint = ": the max ran over a picture axis; axis 0 of the stacked frames is the one that counts the frames"
        elif frame.shape in ((2, *SCREEN_SHAPE[:2]), SCREEN_SHAPE[:2]):
            hint = ": the max ran over the colour axis; take it over the frames (axis 0 of the stacked frames)"
        return f"{when}, skip_and_max should return one raw frame of shape {SCREEN_SHAPE}, got {frame.shape}{hint}"
    if frame.dtype != np.uint8:
        return (
            f"{when}, skip_and_max returned a frame of dtype {frame.dtype}: the pixel-wise max of uint8 frames is a "
            "uint8 frame; keep it so (an average would be a float, and the wrong operation)"
        )
    expected = np.max(np.stack([_scripted_frame(k, seed) for k in range(max(1, seen - 1), seen + 1)]), axis=0)
    if np.array_equal(frame, expected):
        return None
    shown = _sprites_shown(frame, seen, seed)
    wanted = list(range(max(1, seen - 1), seen + 1))
    described = f"your frame shows the sprites of frames {shown} of {seen}, expected those of the last two, {wanted}"
    if len(shown) > len(wanted) and set(wanted) <= set(shown):
        return (
            f"{when}, {described}: you took the max over all frames of the skip; only the last two are pooled, "
            "so that flicker is removed without smearing older positions of moving objects"
        )
    if shown == [seen]:
        return (
            f"{when}, {described}: you returned only the last frame; pool it with the one before, or a sprite drawn "
            "on alternate frames (flicker) can vanish"
        )
    if not shown:
        return (
            f"{when}, skip_and_max's frame shows none of the sprites whole: use the pixel-wise maximum, "
            "not an average, of the last two frames"
        )
    return f"{when}, {described}"


def check_skip_and_max_frames(skip_and_max: Callable, skip: int = 4, seed: int = 0) -> None:
    """Check that skip_and_max repeats the action for ``skip`` frames and returns the max of the last two.

    Args:
        skip_and_max: The student's function, called as ``skip_and_max(env, action, skip=skip)``
            on a fake game whose frame ``k`` shows a sprite at a place of its own.
        skip: Emulator frames per agent step.
        seed: Varies the frames.

    Raises:
        AssertionError: If the action is not repeated ``skip`` times, or the frame is
            not the pixel-wise max of the last two, naming the mistake: the max over
            all frames, only the last frame, or the max over the wrong axis.
    """
    action = 2
    env = ScriptedGame(seed=seed)
    frame, *_ = _run_skip(skip_and_max, env, action, skip)
    if len(env.actions) != skip:
        raise AssertionError(
            f"with skip={skip}, skip_and_max should call env.step {skip} times, it called it {len(env.actions)} times"
        )
    if any(sent != action for sent in env.actions):
        raise AssertionError(
            f"skip_and_max must repeat the agent's action ({action}) on every frame of the skip, "
            f"but it sent {env.actions}"
        )
    problem = _frames_problem(frame, skip, skip, seed, f"with skip={skip}")
    if problem:
        raise AssertionError(problem)


def _counted_frames(total_reward: float, seen: int) -> list[int]:
    """Which scripted frames a summed reward of ``2**(k-1)`` terms counted."""
    bits = int(round(total_reward))
    return [k for k in range(1, seen + 1) if bits >> (k - 1) & 1]


def check_skip_and_max_reward_and_end(skip_and_max: Callable, skip: int = 4, seed: int = 0) -> None:
    """Check that skip_and_max sums the rewards of the skip and stops on the frame the game ends.

    Args:
        skip_and_max: The student's function, called as ``skip_and_max(env, action, skip=skip)``
            on a fake game whose frame ``k`` gives the reward ``2**(k-1)``.
        skip: Emulator frames per agent step (at least 2).
        seed: Varies the frames.

    Raises:
        AssertionError: If the reward is not the sum over the frames played (naming
            the frames it counted, or rewards clipped to their sign), the loop
            steps on after ``terminated`` or ``truncated``, the flags are not passed on,
            or the game ending on the first frame of the skip is not handled (one frame
            to pool). Which frames are pooled otherwise is the frames check's job.
    """
    ends: list[tuple[int | None, str]] = [(None, ""), (2, "terminated"), (skip - 1, "truncated"), (1, "terminated")]
    for end_on, end_by in ends:
        env = ScriptedGame(end_on=end_on, end_by=end_by, seed=seed)
        when = f"with skip={skip}"
        if end_on:
            when = f"when the game ended ({end_by}) on frame {end_on} of a {skip}-frame skip"
        try:
            frame, total_reward, terminated, truncated = _run_skip(skip_and_max, env, 1, skip)
        except AssertionError:
            raise
        except Exception as error:  # a student's IndexError is a finding, not a crash of the check
            raise AssertionError(
                f"{when}, skip_and_max raised {type(error).__name__}: {error}. When the game ends early, fewer "
                "frames were played: pool the last two that exist, frames[-2:] (only one if the game ended on the "
                "first frame); np.max(np.stack(frames[-2:]), axis=0) handles both"
            ) from error
        seen = end_on or skip
        expected = float(2**seen - 1)  # 1 + 2 + ... + 2**(seen-1)
        if not np.isclose(float(total_reward), expected):
            # A second game whose rewards are 3 times larger tells clipped rewards from a subset of frames.
            _, scaled_total, *_ = _run_skip(skip_and_max, ScriptedGame(end_on, end_by, seed, reward_scale=3.0), 1, skip)
            if np.isclose(float(scaled_total), float(total_reward)):
                raise AssertionError(
                    f"{when}, the total reward should add the rewards of all {seen} frames played, {expected:g}, "
                    f"but yours is {float(total_reward):g}, and stays {float(scaled_total):g} when every reward is 3 "
                    "times larger: the rewards are clipped (np.sign or np.clip) or replaced by a constant. skip_and_max "
                    "returns the game's own points; the learner clips rewards later, and evaluation needs the true score"
                )
            counted = _counted_frames(float(total_reward), seen)
            raise AssertionError(
                f"{when}, the total reward should add the rewards of all {seen} frames played, {expected:g}, "
                f"but yours is {float(total_reward):g}"
                + (f", the reward of frames {counted} only" if 0 < float(total_reward) < expected else "")
                + ": add every frame's reward inside the loop (total_reward += reward)"
            )
        if bool(terminated) != (end_by == "terminated") or bool(truncated) != (end_by == "truncated"):
            raise AssertionError(
                f"{when}, skip_and_max returned terminated={terminated}, truncated={truncated}: pass on the flags "
                "of the last env.step, each as it is"
            )
        if end_on == 1:  # one frame played: any pooling must return it (which two frames: the frames check)
            problem = _frames_problem(frame, seen, skip, seed, when)
            if problem:
                raise AssertionError(problem)


# --- FrameStacker ----------------------------------------------------------------------


def _distinct_frames(count: int, shape: Sequence[int], seed: int) -> list[np.ndarray]:
    """``count`` random uint8 frames, none all zero, no two equal."""
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 256, size=tuple(shape), dtype=np.uint8) for _ in range(count)]


def _names(stack: np.ndarray, named: dict[str, np.ndarray]) -> list[str]:
    """Name each slot of ``stack``: 'zeros', a frame's name, or '?'."""
    names = []
    for slot in stack:
        if not np.any(slot):
            names.append("zeros")
            continue
        names.append(next((name for name, frame in named.items() if np.array_equal(slot, frame)), "?"))
    return names


def _shown(names: list[str]) -> str:
    return "[" + ", ".join(names) + "]"


def _assert_stack_array(
    stack: Any, stack_size: int, frame_shape: tuple[int, ...], call: str, check_dtype: bool = True
) -> np.ndarray:
    """Check type, dtype (unless told not to) and shape of a returned stack."""
    if not isinstance(stack, np.ndarray):
        raise AssertionError(f"{call} must return a NumPy array, got {type(stack).__name__}")
    expected_shape = (stack_size, *frame_shape)
    if check_dtype and stack.dtype != np.uint8:
        frame_bytes = int(np.prod(expected_shape))
        default = " (np.zeros makes float64 unless told dtype=np.uint8)" if stack.dtype == np.float64 else ""
        raise AssertionError(
            f"{call} returned a stack of dtype {stack.dtype}, not uint8{default}: a {expected_shape} stack takes "
            f"{frame_bytes:,} bytes as uint8 and "
            f"{frame_bytes * stack.dtype.itemsize:,} as {stack.dtype}; keep the frames' uint8"
        )
    if stack.shape != expected_shape:
        hint = ""
        if stack.shape == (*frame_shape, stack_size):
            hint = ": the frame axis must come first (stack, height, width), as make_env's observations"
        elif stack.shape[1:] == tuple(frame_shape):
            hint = f": it should hold stack_size={stack_size} frames"
        raise AssertionError(f"{call} should return shape {expected_shape}, got {stack.shape}{hint}")
    return stack


@contextlib.contextmanager
def _explain_stacker_errors(stack_size: int, frame_shape: tuple[int, ...]) -> Iterator[None]:
    """Turn an exception raised inside the student's FrameStacker into a message for the student."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as error:
        hint = ""
        if isinstance(error, (ValueError, IndexError)):
            hint = ": build the stack's shape from stack_size and frame.shape, not from fixed numbers"
        raise AssertionError(
            f"FrameStacker(stack_size={stack_size}) raised {type(error).__name__} on frames of shape "
            f"{tuple(frame_shape)}: {error}{hint}"
        ) from error


def _expected_names(pushed: list[str], stack_size: int) -> list[str]:
    """Oldest first, zero-padded on the left: what a stack holds after these frames of one episode."""
    recent = pushed[-stack_size:]
    return ["zeros"] * (stack_size - len(recent)) + recent


def _order_problem(got: list[str], expected: list[str], call: str) -> str | None:
    if got == expected:
        return None
    message = f"after {call} the stack should be {_shown(expected)} (oldest first), got {_shown(got)}"
    if got == expected[::-1] and got != expected:
        return message + ": the newest frame must be last, at index -1, as in make_env's observations"
    if "zeros" in expected and "zeros" not in got and set(got) <= set(expected) and got.count(got[0]) > 1:
        return message + (
            ": the slots before the first frame must be zeros, not copies of a frame; this course pads with zeros, "
            "like make_env (padding_type='zero') and the replay buffer of notebook 03"
        )
    return message + (
        ": each push moves every frame one slot towards index 0 along the stack axis (axis 0), drops the oldest, "
        "and writes the new frame at index -1"
    )


def check_frame_stacker_order(
    FrameStacker: type, stack_size: int = 4, frame_shape: tuple[int, ...] = FRAME_SHAPE, seed: int = 0
) -> None:
    """Check that FrameStacker returns uint8 stacks, oldest frame first, padded with zeros at the start of an episode.

    Args:
        FrameStacker: The student's class, built as ``FrameStacker(stack_size=...)``,
            with ``reset(frame)`` and ``push(frame)`` that return the stack.
        stack_size: Frames per stack.
        frame_shape: Shape of one frame.
        seed: Varies the frames.

    Raises:
        AssertionError: If a stack has the wrong dtype or shape, is newest first, or
            is padded with copies of the first frame instead of zeros.
    """
    frames = _distinct_frames(stack_size + 3, frame_shape, seed)
    named = {f"frame {i + 1}": frame for i, frame in enumerate(frames)}
    with _explain_stacker_errors(stack_size, frame_shape):
        stacker = FrameStacker(stack_size=stack_size)
        pushed: list[str] = []
        for i, (name, frame) in enumerate(named.items()):
            call = f"reset({name})" if i == 0 else f"reset(frame 1) and push(frame 2{' ... ' + name if i > 1 else ''})"
            stack = stacker.reset(frame.copy()) if i == 0 else stacker.push(frame.copy())
            pushed.append(name)
            stack = _assert_stack_array(stack, stack_size, frame_shape, "reset" if i == 0 else "push")
            problem = _order_problem(_names(stack, named), _expected_names(pushed, stack_size), call)
            if problem:
                raise AssertionError(problem)


def check_frame_stacker_reset(
    FrameStacker: type, stack_size: int = 4, frame_shape: tuple[int, ...] = FRAME_SHAPE, seed: int = 0
) -> None:
    """Check that FrameStacker's reset starts a new episode cleanly: no frame of the previous episode survives it.

    Args:
        FrameStacker: The student's class.
        stack_size: Frames per stack, as for :func:`check_frame_stacker_order`.
        frame_shape: Shape of one frame.
        seed: Seeds the test frames.

    Raises:
        AssertionError: If after ``reset`` a stack still holds a frame from before
            the reset. (Order, padding and dtype are the order check's job.)
    """
    episodes = {
        "A": _distinct_frames(stack_size + 2, frame_shape, seed),
        "B": _distinct_frames(2, frame_shape, seed + 1),
        "C": _distinct_frames(1, frame_shape, seed + 2),
    }
    named = {f"{episode}{i + 1}": frame for episode, frames in episodes.items() for i, frame in enumerate(frames)}

    def play(stacker: Any, episode: str, *, pushes: int) -> None:
        """Reset on the episode's first frame, push the next ones, and check every stack."""
        frames = episodes[episode]
        pushed: list[str] = []
        for i in range(pushes + 1):
            name = f"{episode}{i + 1}"
            stack = stacker.reset(frames[i].copy()) if i == 0 else stacker.push(frames[i].copy())
            pushed.append(name)
            stack = _assert_stack_array(
                stack, stack_size, frame_shape, "reset" if i == 0 else "push", check_dtype=False
            )
            got = _names(stack, named)
            expected = _expected_names(pushed, stack_size)
            call = f"reset({pushed[0]})" + (f" and push({', '.join(pushed[1:])})" if pushed[1:] else "")
            left_over = [slot for slot in got if slot not in ("zeros", "?") and slot[0] != episode]
            if left_over:
                raise AssertionError(
                    f"frames from the previous episode are still in the stack after reset: after episode "
                    f"{chr(ord(episode) - 1)}, then {call}, the stack is {_shown(got)}, expected "
                    f"{_shown(expected)}. reset must clear the whole stack to zeros before adding the first frame; "
                    "otherwise the agent sees the old game's ball jump into the new one"
                )

    with _explain_stacker_errors(stack_size, frame_shape):
        stacker = FrameStacker(stack_size=stack_size)
        play(stacker, "A", pushes=stack_size + 1)
        play(stacker, "B", pushes=1)
        play(stacker, "C", pushes=0)


def check_frame_stacker_returns_copy(
    FrameStacker: type, stack_size: int = 4, frame_shape: tuple[int, ...] = FRAME_SHAPE, seed: int = 0
) -> None:
    """Check that FrameStacker returns copies: later pushes leave them alone, writing into them leaves the stacker alone.

    Args:
        FrameStacker: The student's class.
        stack_size: Frames per stack, as for :func:`check_frame_stacker_order`.
        frame_shape: Shape of one frame.
        seed: Seeds the test frames.

    Raises:
        AssertionError: If a returned stack shares its memory with the stacker's own
            array (a view), so that a stack kept in a list or a replay memory changes.
    """
    frames = _distinct_frames(stack_size + 2, frame_shape, seed)
    with _explain_stacker_errors(stack_size, frame_shape):
        stacker = FrameStacker(stack_size=stack_size)
        kept = [stacker.reset(frames[0].copy())]
        snapshots = [np.array(kept[0])]  # np.array copies: these are what each call returned
        for frame in frames[1:3]:
            kept.append(stacker.push(frame.copy()))
            snapshots.append(np.array(kept[-1]))
        for i, (stack, snapshot) in enumerate(zip(kept, snapshots)):
            if not np.array_equal(stack, snapshot):
                which = "reset" if i == 0 else f"push number {i}"
                raise AssertionError(
                    f"the stack returned by {which} changed when you pushed later frames: you returned the stacker's own "
                    "array (or a view of it), so every state you keep aliases the same memory; return a copy, e.g. "
                    "self.frames.copy()"
                )
        # The caller writes into the stack it was given; a twin stacker, fed the same frames and left alone, says
        # what the next push should return, whatever order the stacker keeps (that is the order check's job).
        twin = FrameStacker(stack_size=stack_size)
        twin.reset(frames[0].copy())
        for frame in frames[1:3]:
            twin.push(frame.copy())
        kept[-1][...] = 0
        following, expected = stacker.push(frames[3].copy()), twin.push(frames[3].copy())
        if not np.array_equal(np.asarray(following), np.asarray(expected)):
            raise AssertionError(
                "after the caller overwrote a stack that push returned, the stacker's own frames changed: push returned "
                "its internal array instead of a copy; return self.frames.copy()"
            )
