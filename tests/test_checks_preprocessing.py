"""Tests for dqn_helpers.checks.preprocessing, the visible checks of notebook 02.

Each check must pass on correct answers (the notebook's solution and other correct
ways to write it) and fail on every buggy variant below with a message that names
the mistake. The variants are small copies of the notebook's exercises, each with
one mistake, named after it.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
import pytest

from dqn_helpers.checks import preprocessing as checks
from dqn_helpers.envs import make_env

LUMA = np.array([0.299, 0.587, 0.114])


# --- correct answers -------------------------------------------------------------------


def preprocess_frame(frame, size=(84, 84), top=0, bottom=None):
    """The notebook's solution."""
    gray = frame @ np.array([0.299, 0.587, 0.114])
    gray = np.round(gray).astype(np.uint8)
    gray = gray[top:bottom, :]
    height, width = size
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)


def preprocess_frame_with_opencv_gray(frame, size=(84, 84), top=0, bottom=None):
    """Correct too: OpenCV's RGB-to-gray conversion uses the same luma weights."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[top:bottom]
    return cv2.resize(gray, size[::-1], interpolation=cv2.INTER_AREA)


def preprocess_frame_truncating(frame, size=(84, 84), top=0, bottom=None):
    """Correct too: truncating instead of rounding is off by less than one gray level."""
    gray = (frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114).astype(np.uint8)
    return cv2.resize(gray[top:bottom, :], (size[1], size[0]), interpolation=cv2.INTER_AREA)


def preprocess_frame_resize_first(frame, size=(84, 84), top=0, bottom=None):
    """Correct too: resizing the colour frame before the gray conversion differs by rounding only."""
    small = cv2.resize(frame[top:bottom], (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return np.round(small @ LUMA).astype(np.uint8)


def skip_and_max(env, action, skip=4):
    """The notebook's solution."""
    frames = []
    total_reward = 0.0
    terminated = truncated = False
    for _ in range(skip):
        observation, reward, terminated, truncated, info = env.step(action)
        frames.append(observation)
        total_reward += reward
        if terminated or truncated:
            break
    frame = np.max(np.stack(frames[-2:]), axis=0)
    return frame, total_reward, terminated, truncated


def skip_and_max_with_two_buffers(env, action, skip=4):
    """Correct too: keep only the last two frames, as Gymnasium's AtariPreprocessing does."""
    previous = latest = None
    total_reward, terminated, truncated = 0.0, False, False
    for _ in range(skip):
        observation, reward, terminated, truncated, _ = env.step(action)
        previous, latest = latest, observation
        total_reward += reward
        if terminated or truncated:
            break
    frame = latest if previous is None else np.maximum(previous, latest)
    return frame, total_reward, terminated, truncated


class FrameStacker:
    """The notebook's solution."""

    def __init__(self, stack_size=4):
        self.stack_size = stack_size
        self.frames = None

    def reset(self, frame):
        self.frames = np.zeros((self.stack_size, *frame.shape), dtype=np.uint8)
        return self.push(frame)

    def push(self, frame):
        self.frames[:-1] = self.frames[1:]
        self.frames[-1] = frame
        return self.frames.copy()


class DequeFrameStacker:
    """Correct too: a deque of frames, stacked anew on every call."""

    def __init__(self, stack_size=4):
        self.frames = deque(maxlen=stack_size)

    def reset(self, frame):
        self.frames.extend([np.zeros_like(frame)] * self.frames.maxlen)
        return self.push(frame)

    def push(self, frame):
        self.frames.append(frame.copy())
        return np.stack(self.frames)


class RollFrameStacker(FrameStacker):
    """Correct too: np.roll makes a new array at every push."""

    def push(self, frame):
        self.frames = np.roll(self.frames, -1, axis=0)
        self.frames[-1] = frame
        return self.frames.copy()


# --- buggy preprocess_frame ------------------------------------------------------------


def keeps_float_frames(frame, size=(84, 84), top=0, bottom=None):
    gray = (frame @ LUMA)[top:bottom, :]
    return cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def rounds_to_int(frame, size=(84, 84), top=0, bottom=None):
    gray = np.round(frame @ LUMA).astype(int)[top:bottom, :]  # int64: OpenCV has no area resize for it
    return cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def scales_to_unit_range(frame, size=(84, 84), top=0, bottom=None):
    return preprocess_frame(frame, size, top, bottom).astype(np.float32) / 255.0


def scales_then_casts_to_uint8(frame, size=(84, 84), top=0, bottom=None):
    return (preprocess_frame(frame, size, top, bottom) / 255.0).astype(np.uint8)


def keeps_colour_axis(frame, size=(84, 84), top=0, bottom=None):
    return cv2.resize(frame[top:bottom], (size[1], size[0]), interpolation=cv2.INTER_AREA)


def writes_into_the_input(frame, size=(84, 84), top=0, bottom=None):
    frame[..., 0] = np.round(frame @ LUMA).astype(np.uint8)
    return cv2.resize(frame[top:bottom, :, 0], (size[1], size[0]), interpolation=cv2.INTER_AREA)


def plain_channel_average(frame, size=(84, 84), top=0, bottom=None):
    gray = np.round(frame.mean(axis=-1)).astype(np.uint8)[top:bottom, :]
    return cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def bgr_order(frame, size=(84, 84), top=0, bottom=None):
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[top:bottom, :]
    return cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def red_channel_only(frame, size=(84, 84), top=0, bottom=None):
    return cv2.resize(np.ascontiguousarray(frame[top:bottom, :, 0]), (size[1], size[0]), interpolation=cv2.INTER_AREA)


def rec709_weights(frame, size=(84, 84), top=0, bottom=None):
    gray = np.round(frame @ np.array([0.2126, 0.7152, 0.0722])).astype(np.uint8)[top:bottom, :]
    return cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def resize_with_height_width(frame, size=(84, 84), top=0, bottom=None):
    gray = np.round(frame @ LUMA).astype(np.uint8)[top:bottom, :]
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def transposes_the_picture(frame, size=(84, 84), top=0, bottom=None):
    gray = np.round(frame @ LUMA).astype(np.uint8)[top:bottom, :]
    return cv2.resize(np.ascontiguousarray(gray.T), (size[1], size[0]), interpolation=cv2.INTER_AREA)


def crops_columns(frame, size=(84, 84), top=0, bottom=None):
    gray = np.round(frame @ LUMA).astype(np.uint8)[:, top:bottom]
    return cv2.resize(np.ascontiguousarray(gray), (size[1], size[0]), interpolation=cv2.INTER_AREA)


def crops_after_resizing(frame, size=(84, 84), top=0, bottom=None):
    return preprocess_frame(frame, size)[top:bottom, :]


def ignores_crop(frame, size=(84, 84), top=0, bottom=None):
    return preprocess_frame(frame, size)


def ignores_size(frame, size=(84, 84), top=0, bottom=None):
    return preprocess_frame(frame, (84, 84), top, bottom)


def flips_upside_down(frame, size=(84, 84), top=0, bottom=None):
    return preprocess_frame(frame, size, top, bottom)[::-1]


def nearest_neighbour_resize(frame, size=(84, 84), top=0, bottom=None):
    gray = np.round(frame @ LUMA).astype(np.uint8)[top:bottom, :]
    return cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


# --- buggy skip_and_max ----------------------------------------------------------------


def _skip(env, action, skip, *, pool, add_reward=lambda total, reward, t: total + reward, stop_on_truncated=True):
    """A skip loop with pluggable pooling and reward; stops on the end of the game."""
    frames, total_reward, terminated, truncated = [], 0.0, False, False
    for t in range(skip):
        observation, reward, terminated, truncated, _ = env.step(action)
        frames.append(observation)
        total_reward = add_reward(total_reward, reward, t)
        if terminated or (truncated and stop_on_truncated):
            break
    return pool(frames), total_reward, terminated, truncated


def max_over_all_frames(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.max(np.stack(frames), axis=0))


def last_frame_only(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: frames[-1])


def first_two_frames(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.max(np.stack(frames[:2]), axis=0))


def average_of_last_two(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.mean(np.stack(frames[-2:]), axis=0).astype(np.uint8))


def float_mean_of_last_two(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.mean(np.stack(frames[-2:]), axis=0))


def max_over_a_picture_axis(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.max(np.stack(frames[-2:]), axis=1))


def max_over_colour_axis(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.max(np.stack(frames[-2:]), axis=-1))


def pools_as_float32(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.max(np.stack(frames[-2:]).astype(np.float32), axis=0))


def crashes_when_one_frame(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.maximum(frames[-2], frames[-1]))


def pools_frames_three_and_four_by_index(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda frames: np.max(np.stack(frames[2:4]), axis=0))


def reward_of_last_frame_only(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda f: np.max(np.stack(f[-2:]), axis=0), add_reward=lambda _, r, t: r)


def reward_of_first_frame_only(env, action, skip=4):
    add = lambda total, reward, t: reward if t == 0 else total  # noqa: E731
    return _skip(env, action, skip, pool=lambda f: np.max(np.stack(f[-2:]), axis=0), add_reward=add)


def clips_each_reward(env, action, skip=4):
    add = lambda total, reward, t: total + np.sign(reward)  # noqa: E731
    return _skip(env, action, skip, pool=lambda f: np.max(np.stack(f[-2:]), axis=0), add_reward=add)


def ignores_truncated(env, action, skip=4):
    return _skip(env, action, skip, pool=lambda f: np.max(np.stack(f[-2:]), axis=0), stop_on_truncated=False)


def never_stops_early(env, action, skip=4):
    frames, total_reward, terminated, truncated = [], 0.0, False, False
    for _ in range(skip):
        observation, reward, terminated, truncated, _ = env.step(action)
        frames.append(observation)
        total_reward += reward
    return np.max(np.stack(frames[-2:]), axis=0), total_reward, terminated, truncated


def action_on_first_frame_only(env, action, skip=4):
    frames, total_reward, terminated, truncated = [], 0.0, False, False
    for t in range(skip):
        observation, reward, terminated, truncated, _ = env.step(action if t == 0 else 0)
        frames.append(observation)
        total_reward += reward
        if terminated or truncated:
            break
    return np.max(np.stack(frames[-2:]), axis=0), total_reward, terminated, truncated


def hard_coded_four_frames(env, action, skip=4):
    return skip_and_max(env, action, skip=4)


def merges_the_flags(env, action, skip=4):
    frame, total_reward, terminated, truncated = skip_and_max(env, action, skip)
    return frame, total_reward, terminated or truncated, False


def returns_no_flags(env, action, skip=4):
    frame, total_reward, _, _ = skip_and_max(env, action, skip)
    return frame, total_reward


# --- buggy FrameStacker ----------------------------------------------------------------


class NewestFirst(FrameStacker):
    def push(self, frame):
        self.frames[1:] = self.frames[:-1].copy()
        self.frames[0] = frame
        return self.frames.copy()


class PushWithoutShift(FrameStacker):
    def push(self, frame):
        self.frames[-1] = frame
        return self.frames.copy()


class ResetKeepsOldFrames(FrameStacker):
    def reset(self, frame):
        if self.frames is None:
            self.frames = np.zeros((self.stack_size, *frame.shape), dtype=np.uint8)
        return self.push(frame)


class DequeNotClearedOnReset(DequeFrameStacker):
    def __init__(self, stack_size=4):
        super().__init__(stack_size)
        self.started = False

    def reset(self, frame):
        if not self.started:  # zeros only the first time
            self.frames.extend([np.zeros_like(frame)] * self.frames.maxlen)
            self.started = True
        return self.push(frame)


class PadsWithFirstFrame(FrameStacker):
    def reset(self, frame):
        self.frames = np.stack([frame] * self.stack_size).astype(np.uint8)
        return self.frames.copy()


class ReturnsInternalArray(FrameStacker):
    def push(self, frame):
        self.frames[:-1] = self.frames[1:]
        self.frames[-1] = frame
        return self.frames


class ReturnsAView(FrameStacker):
    def push(self, frame):
        super().push(frame)
        return self.frames[:]


class NewArrayButReturnsIt(FrameStacker):
    def push(self, frame):
        self.frames = np.concatenate([self.frames[1:], frame[None]])
        return self.frames


class Float64Stack(FrameStacker):
    def reset(self, frame):
        self.frames = np.zeros((self.stack_size, *frame.shape))
        return self.push(frame)


class ScaledFloat32Stack(FrameStacker):
    def reset(self, frame):
        self.frames = np.zeros((self.stack_size, *frame.shape), dtype=np.float32)
        return self.push(frame)

    def push(self, frame):
        self.frames[:-1] = self.frames[1:]
        self.frames[-1] = frame / 255.0
        return self.frames.copy()


class HardCodedFour(FrameStacker):
    def reset(self, frame):
        self.frames = np.zeros((4, *frame.shape), dtype=np.uint8)
        return self.push(frame)


class HardCodedFrameShape(FrameStacker):
    def reset(self, frame):
        self.frames = np.zeros((self.stack_size, 84, 84), dtype=np.uint8)
        return self.push(frame)


class ChannelsLast(FrameStacker):
    def push(self, frame):
        return np.moveaxis(super().push(frame), 0, -1)


class RollsTheWrongAxis(FrameStacker):
    def push(self, frame):
        self.frames = np.roll(self.frames, -1, axis=1)
        self.frames[-1] = frame
        return self.frames.copy()


# --- tables ----------------------------------------------------------------------------

OUTPUT = checks.check_preprocess_frame_output
GRAY = checks.check_preprocess_frame_grayscale
GEOMETRY = checks.check_preprocess_frame_geometry
FRAMES = checks.check_skip_and_max_frames
REWARD = checks.check_skip_and_max_reward_and_end
ORDER = checks.check_frame_stacker_order
RESET = checks.check_frame_stacker_reset
COPY = checks.check_frame_stacker_returns_copy

CORRECT_ANSWERS = [  # (correct answers, the checks they must pass)
    (
        (
            preprocess_frame,
            preprocess_frame_with_opencv_gray,
            preprocess_frame_truncating,
            preprocess_frame_resize_first,
        ),
        (OUTPUT, GRAY, GEOMETRY),
    ),
    ((skip_and_max, skip_and_max_with_two_buffers), (FRAMES, REWARD)),
    ((FrameStacker, DequeFrameStacker, RollFrameStacker), (ORDER, RESET, COPY)),
]
CORRECT = [(check, answer) for answers, checks_ in CORRECT_ANSWERS for answer in answers for check in checks_]
SMALL_STACK = {"stack_size": 3, "frame_shape": (6, 5)}

BUGGY = [
    # mistake, check, extra arguments, key words of the message
    (keeps_float_frames, OUTPUT, {}, r"dtype float64, not uint8.*8 times the memory"),
    (scales_to_unit_range, OUTPUT, {}, r"float32 scaled to \[0, 1\].*uint8 gray levels 0-255"),
    (scales_then_casts_to_uint8, OUTPUT, {}, r"white screen should stay white.*scaled to \[0, 1\]"),
    (keeps_colour_axis, OUTPUT, {}, r"shape \(84, 84, 3\): it still has a colour axis"),
    (writes_into_the_input, OUTPUT, {}, r"changed the frame it was given"),
    (plain_channel_average, GRAY, {}, r"plain average \(R \+ G \+ B\) / 3"),
    (bgr_order, GRAY, {}, r"red and blue are swapped, the BGR order"),
    (red_channel_only, GRAY, {}, r"only one colour channel is used"),
    (rec709_weights, GRAY, {}, r"use the weights 0.299, 0.587 and 0.114"),
    (resize_with_height_width, GEOMETRY, {}, r"cv2.resize takes its size as \(width, height\)"),
    (transposes_the_picture, GEOMETRY, {}, r"returns the picture transposed"),
    (crops_columns, GEOMETRY, {}, r"cuts columns, not rows.*gray\[top:bottom, :\]"),
    (crops_after_resizing, GEOMETRY, {}, r"crop the screen's rows before resizing"),
    (ignores_crop, GEOMETRY, {}, r"ignores `top` and `bottom`"),
    (ignores_size, GEOMETRY, {}, r"ignores its `size` argument"),
    (flips_upside_down, GEOMETRY, {}, r"flipped upside down or mirrored"),
    (nearest_neighbour_resize, GEOMETRY, {}, r"differs from the expected frame.*INTER_AREA"),
    (max_over_all_frames, FRAMES, {}, r"max over all frames of the skip; only the last two"),
    (last_frame_only, FRAMES, {}, r"returned only the last frame"),
    (first_two_frames, FRAMES, {}, r"sprites of frames \[1, 2\] of 4, expected those of the last two, \[3, 4\]"),
    (average_of_last_two, FRAMES, {}, r"maximum, not an average"),
    (float_mean_of_last_two, FRAMES, {}, r"dtype float64.*the wrong operation"),
    (max_over_a_picture_axis, FRAMES, {}, r"got \(2, 160, 3\): the max ran over a picture axis"),
    (max_over_colour_axis, FRAMES, {}, r"got \(2, 210, 160\): the max ran over the colour axis"),
    (pools_as_float32, FRAMES, {}, r"dtype float32"),
    (action_on_first_frame_only, FRAMES, {}, r"repeat the agent's action \(2\) on every frame.*\[2, 0, 0, 0\]"),
    (
        hard_coded_four_frames,
        FRAMES,
        {"skip": 3},
        r"with skip=3, skip_and_max should call env.step 3 times, it called it 4",
    ),
    (
        pools_frames_three_and_four_by_index,
        REWARD,
        {},
        r"on frame 2 .* raised ValueError.*pool the last two that exist",
    ),
    (reward_of_last_frame_only, REWARD, {}, r"should add the rewards of all 4 frames.*frames \[4\] only"),
    (reward_of_first_frame_only, REWARD, {}, r"yours is 1, the reward of frames \[1\] only"),
    (
        clips_each_reward,
        REWARD,
        {},
        r"yours is 4, and stays 4 when every reward is 3 times larger: the rewards are clipped",
    ),
    (rounds_to_int, OUTPUT, {}, r"raised error.*np.round\(gray\).astype\(np.uint8\).*astype\(int\) gives int64"),
    (rounds_to_int, GRAY, {}, r"cv2.resize has no area resize for the dtype"),
    (rounds_to_int, GEOMETRY, {}, r"cv2.resize has no area resize for the dtype"),
    (PushWithoutShift, ORDER, {}, r"got \[zeros, zeros, zeros, frame 2\]: each push moves every frame one slot"),
    (never_stops_early, REWARD, {}, r"called env.step\(\) again after the game ended on frame 2"),
    (
        ignores_truncated,
        REWARD,
        {},
        r"again after the game ended on frame 3 of the skip \(that step returned truncated=True\).*a time limit ends",
    ),
    (
        crashes_when_one_frame,
        REWARD,
        {},
        r"ended \(terminated\) on frame 1 .* raised IndexError.*only one if the game ended on the first frame",
    ),
    (merges_the_flags, REWARD, {}, r"returned terminated=True, truncated=False: pass on the flags"),
    (returns_no_flags, REWARD, {}, r"must return a tuple \(frame, total_reward, terminated, truncated\).*length 2"),
    (
        NewestFirst,
        ORDER,
        {},
        r"should be \[zeros, zeros, zeros, frame 1\].*got \[frame 1, zeros, zeros, zeros\]: the newest frame must be last",
    ),
    (PadsWithFirstFrame, ORDER, {}, r"must be zeros, not copies of a frame"),
    (Float64Stack, ORDER, {}, r"dtype float64, not uint8.*28,224 bytes as uint8 and 225,792"),
    (ScaledFloat32Stack, ORDER, {}, r"dtype float32, not uint8"),
    (HardCodedFour, ORDER, SMALL_STACK, r"should return shape \(3, 6, 5\), got \(4, 6, 5\).*stack_size=3 frames"),
    (
        HardCodedFrameShape,
        ORDER,
        SMALL_STACK,
        r"raised ValueError on frames of shape \(6, 5\).*from stack_size and frame.shape",
    ),
    (HardCodedFrameShape, COPY, SMALL_STACK, r"raised ValueError on frames of shape \(6, 5\)"),
    (ChannelsLast, ORDER, {}, r"got \(84, 84, 4\): the frame axis must come first"),
    (RollsTheWrongAxis, ORDER, {}, r"oldest first"),
    (
        ResetKeepsOldFrames,
        RESET,
        {},
        r"frames from the previous episode are still in the stack after reset: after episode A, then reset\(B1\), the stack is \[A4, A5, A6, B1\]",
    ),
    (DequeNotClearedOnReset, RESET, {}, r"frames from the previous episode are still in the stack after reset"),
    (
        ResetKeepsOldFrames,
        RESET,
        SMALL_STACK,
        r"frames from the previous episode.*the stack is \[A4, A5, B1\], expected \[zeros, zeros, B1\]",
    ),
    (ReturnsInternalArray, COPY, {}, r"stack returned by reset changed when you pushed later frames.*return a copy"),
    (ReturnsAView, COPY, {}, r"changed when you pushed later frames.*view"),
    (NewArrayButReturnsIt, COPY, {}, r"after the caller overwrote a stack that push returned"),
]


@pytest.mark.parametrize(("check", "answer"), CORRECT, ids=lambda x: x.__name__)
def test_check_passes_on_a_correct_answer(check, answer):
    """Check that each check accepts the solution and other correct ways to write it."""
    check(answer)


@pytest.mark.parametrize(
    ("check", "answer", "kwargs"),
    [
        (checks.check_preprocess_frame_geometry, preprocess_frame, {"seed": 5}),
        (checks.check_skip_and_max_frames, skip_and_max, {"skip": 2, "seed": 3}),
        (checks.check_skip_and_max_frames, skip_and_max, {"skip": 9}),
        (checks.check_skip_and_max_reward_and_end, skip_and_max, {"skip": 2}),
        (checks.check_skip_and_max_reward_and_end, skip_and_max_with_two_buffers, {"skip": 5, "seed": 7}),
        (checks.check_frame_stacker_order, FrameStacker, {"stack_size": 2, "frame_shape": (3, 7), "seed": 1}),
        (checks.check_frame_stacker_reset, DequeFrameStacker, SMALL_STACK),
        (checks.check_frame_stacker_returns_copy, RollFrameStacker, {"stack_size": 2}),
    ],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_check_passes_with_other_arguments(check, answer, kwargs):
    """Check that the checks' other sizes and seeds, which the hidden tests use, accept correct answers."""
    check(answer, **kwargs)


@pytest.mark.parametrize(("answer", "check", "kwargs", "message"), BUGGY, ids=lambda x: getattr(x, "__name__", ""))
def test_check_names_the_mistake(answer, check, kwargs, message):
    """Check that each buggy variant fails its check with a message that names its mistake."""
    with pytest.raises(AssertionError, match=message):
        check(answer, **kwargs)


def test_every_buggy_variant_is_in_the_table():
    """Check that no buggy variant defined in this file is left out of the table."""
    correct = {answer for _, answer in CORRECT} | {preprocess_frame, skip_and_max, FrameStacker}
    defined = {
        value
        for name, value in globals().items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", None) == __name__
        and not name.startswith("test_")
    }
    assert defined - correct - {answer for answer, *_ in BUGGY} == set()


def test_the_solution_matches_the_real_emulator():
    """Check that the solution's gray frame equals ALE's own grayscale screen resized, on a real Breakout frame."""
    env = make_env("Breakout", training=False, noop_max=0)
    env.reset(seed=0)
    for _ in range(20):
        env.step(3)
    ale = env.unwrapped.ale
    ours = preprocess_frame(ale.getScreenRGB())
    theirs = cv2.resize(ale.getScreenGrayscale(), (84, 84), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(ours, theirs)
    env.close()


def test_scripted_game_refuses_steps_after_its_end():
    """Check that the scripted game raises on a step after the frame it ends on, naming `terminated`."""
    env = checks.ScriptedGame(end_on=1)
    env.reset()
    _, reward, terminated, truncated, _ = env.step(0)
    assert (reward, terminated, truncated) == (1.0, True, False)
    with pytest.raises(AssertionError, match="after the game ended on frame 1 of the skip"):
        env.step(0)


ONE_CHECK_PER_MISTAKE = [  # (mistake, the sibling checks it must still pass)
    (scales_to_unit_range, (GRAY, GEOMETRY)),
    (keeps_float_frames, (GRAY, GEOMETRY)),
    (plain_channel_average, (OUTPUT, GEOMETRY)),
    (bgr_order, (OUTPUT, GEOMETRY)),
    (resize_with_height_width, (OUTPUT, GRAY)),
    (transposes_the_picture, (OUTPUT, GRAY)),
    (crops_columns, (OUTPUT, GRAY)),
    (max_over_all_frames, (REWARD,)),
    (last_frame_only, (REWARD,)),
    (action_on_first_frame_only, (REWARD,)),
    (reward_of_last_frame_only, (FRAMES,)),
    (ignores_truncated, (FRAMES,)),
    (NewestFirst, (RESET, COPY)),
    (PadsWithFirstFrame, (RESET, COPY)),
    (Float64Stack, (RESET, COPY)),
    (ResetKeepsOldFrames, (ORDER, COPY)),
    (ReturnsInternalArray, (ORDER, RESET)),
    (clips_each_reward, (FRAMES,)),
    (PushWithoutShift, (RESET, COPY)),  # the copy check's own probe does not rely on the order
]


@pytest.mark.parametrize(("answer", "siblings"), ONE_CHECK_PER_MISTAKE, ids=lambda x: getattr(x, "__name__", ""))
def test_a_mistake_costs_only_its_own_check(answer, siblings):
    """Check that a single mistake fails only the check about it, so that it loses only that check's points."""
    for check in siblings:
        check(answer)
