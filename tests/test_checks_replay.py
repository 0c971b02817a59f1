"""The visible checks of notebook 03 pass correct replay buffers and name each classic mistake.

The correct buffers are the package's reference and the notebook's two exercises,
taken from the solution notebook itself; each buggy variant below changes one
piece of them and is named after its mistake.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from dqn_helpers.checks import replay as checks
from dqn_helpers.replay import ReplayBuffer
from tests import cells
from tests.conftest import REPO

SOLUTION = REPO / "solutions" / "03_replay" / "03_replay.ipynb"


def _solution_classes() -> dict:
    """Run the notebook's Batch cell and its two exercise cells (solutions filled in), as the notebook would."""
    namespace = {"__name__": "__main__", "np": np, "NamedTuple": NamedTuple}
    return cells.run_cells(SOLUTION, ["batch_type", "StackReplayBuffer", "FrameReplayBuffer"], namespace)


_NOTEBOOK = _solution_classes()
Batch, StackBuffer, FrameBuffer = _NOTEBOOK["Batch"], _NOTEBOOK["StackReplayBuffer"], _NOTEBOOK["FrameReplayBuffer"]


def _gather(buffer, indices) -> Batch:
    """The batch a StackBuffer returns for these slot indices."""
    return Batch(
        buffer.states[indices],
        buffer.actions[indices],
        buffer.rewards[indices],
        buffer.next_states[indices],
        buffer.terminated[indices],
    )


def _frame_sample(
    buffer, batch_size, rng, *, skip_episode_starts=True, skip_overwritten=True, state_offset=-1, next_offset=0
):
    """FrameBuffer.sample with switches for its classic mistakes."""
    oldest = max(0, buffer.written - buffer.capacity)
    indices = []
    while len(indices) < batch_size:
        index = int(rng.integers(oldest, buffer.written))
        position = int(buffer.positions[index % buffer.capacity])
        held = index - min(position, buffer.stack_size) >= oldest
        if (position > 0 or not skip_episode_starts) and (held or not skip_overwritten):
            indices.append(index)
    slots = np.array(indices) % buffer.capacity
    return Batch(
        np.stack([buffer.stack(i + state_offset) for i in indices]),
        buffer.actions[slots].astype(np.int64),
        buffer.rewards[slots],
        np.stack([buffer.stack(i + next_offset) for i in indices]),
        buffer.terminated[slots].astype(np.float32),
    )


# --- buggy variants of the stack buffer (exercise 1) -----------------------------------------


class SamplesUnwrittenSlots(StackBuffer):
    def sample(self, batch_size, rng):
        return _gather(self, rng.integers(0, self.capacity, size=batch_size))


class SamplesOnePastTheEnd(StackBuffer):
    def sample(self, batch_size, rng):
        return _gather(self, rng.integers(0, len(self), size=batch_size, endpoint=True))


class Float32Stacks(StackBuffer):
    def __init__(self, capacity, frame_shape=(84, 84), stack_size=4):
        super().__init__(capacity, frame_shape, stack_size)
        self.states, self.next_states = self.states.astype(np.float32), self.next_states.astype(np.float32)


class Float32StorageUint8Batches(Float32Stacks):
    def sample(self, batch_size, rng):
        batch = super().sample(batch_size, rng)
        return batch._replace(states=batch.states.astype(np.uint8), next_states=batch.next_states.astype(np.uint8))


class Float32ScaledOnAdd(Float32Stacks):
    def add(self, state, action, reward, next_state, terminated, truncated=False):
        super().add(state / 255.0, action, reward, next_state / 255.0, terminated, truncated)

    def sample(self, batch_size, rng):
        batch = super().sample(batch_size, rng)
        return batch._replace(states=batch.states * 255, next_states=batch.next_states * 255)


def _updates_cursor_and_size(name: str, update):
    """A stack buffer whose add ends with ``cursor, size = update(buffer, old cursor, old size)``."""

    def add(self, *transition, **flags):
        cursor, size = self.cursor, self.size
        StackBuffer.add(self, *transition, **flags)
        self.cursor, self.size = update(self, cursor, size)

    return type(name, (StackBuffer,), {"add": add})


NoWraparound = _updates_cursor_and_size("NoWraparound", lambda b, cursor, size: (cursor + 1, min(size + 1, b.capacity)))
OverwritesTheLastSlot = _updates_cursor_and_size(
    "OverwritesTheLastSlot", lambda b, cursor, size: (min(cursor + 1, b.capacity - 1), min(size + 1, b.capacity))
)
LenGrowsPastCapacity = _updates_cursor_and_size(
    "LenGrowsPastCapacity", lambda b, cursor, size: ((cursor + 1) % b.capacity, size + 1)
)

WrapsOneSlotEarly = _updates_cursor_and_size(
    "WrapsOneSlotEarly", lambda b, cursor, size: ((cursor + 1) % (b.capacity - 1), min(size + 1, b.capacity))
)
WrapsAtTheSize = _updates_cursor_and_size(
    "WrapsAtTheSize", lambda b, cursor, size: ((cursor + 1) % (size + 1), min(size + 1, b.capacity))
)
LenFollowsTheCursor = _updates_cursor_and_size(
    "LenFollowsTheCursor", lambda b, cursor, size: ((cursor + 1) % b.capacity, (cursor + 1) % b.capacity)
)


class StoresTheStateAsNextState(StackBuffer):
    def add(self, state, action, reward, next_state, terminated, truncated=False):
        super().add(state, action, reward, state, terminated, truncated)


class SamplesOnlySinceTheWrap(StackBuffer):
    def sample(self, batch_size, rng):
        return _gather(self, rng.integers(0, self.cursor if self.cursor > 0 else len(self), size=batch_size))


class SamplesOneShort(StackBuffer):
    def sample(self, batch_size, rng):
        return _gather(self, rng.integers(0, len(self) - 1, size=batch_size))


class SamplesRecentHalf(StackBuffer):
    def sample(self, batch_size, rng):
        recent = rng.integers(len(self) // 2, len(self), size=batch_size)
        return _gather(
            self, np.where(rng.random(batch_size) < 0.5, recent, rng.integers(0, len(self), size=batch_size))
        )


class IgnoresTheRng(StackBuffer):
    def sample(self, batch_size, rng):
        return super().sample(batch_size, np.random.default_rng())


class ReusesTheOutputArrays(StackBuffer):
    def sample(self, batch_size, rng):
        batch = super().sample(batch_size, rng)
        if not hasattr(self, "out"):
            self.out = batch
        for mine, new in zip(self.out, batch):
            mine[...] = new
        return self.out


class KeepsTheCallersArrays(StackBuffer):
    def add(self, state, action, reward, next_state, terminated, truncated=False):
        self.kept = getattr(self, "kept", [None] * self.capacity)
        self.kept[self.cursor] = (state, next_state)
        super().add(state, action, reward, next_state, terminated, truncated)

    def sample(self, batch_size, rng):
        indices = rng.integers(0, len(self), size=batch_size)
        states, next_states = zip(*(self.kept[i] for i in indices))
        return _gather(self, indices)._replace(states=np.stack(states), next_states=np.stack(next_states))


class TruncatedAsTerminated(StackBuffer):
    def add(self, state, action, reward, next_state, terminated, truncated=False):
        super().add(state, action, reward, next_state, terminated or truncated, truncated)


class TerminalFlagOnTheNextSlot(StackBuffer):
    def add(self, state, action, reward, next_state, terminated, truncated=False):
        cursor = self.cursor
        super().add(state, action, reward, next_state, False, truncated)
        self.terminated[(cursor + 1) % self.capacity] = terminated


class NextStateInTheNextSlot(StackBuffer):
    def add(self, state, action, reward, next_state, terminated, truncated=False):
        cursor, kept = self.cursor, self.next_states[self.cursor].copy()
        super().add(state, action, reward, next_state, terminated, truncated)
        self.next_states[cursor] = kept
        self.next_states[(cursor + 1) % self.capacity] = next_state


class ActionInThePreviousSlot(StackBuffer):
    def add(self, state, action, reward, next_state, terminated, truncated=False):
        cursor = self.cursor
        super().add(state, action, reward, next_state, terminated, truncated)
        self.actions[(cursor - 1) % self.capacity] = action


# --- buggy variants of the frame buffer (exercise 2) -----------------------------------------


class StacksAcrossEpisodes(FrameBuffer):
    def stack(self, newest):
        return self.frames[[(newest - back) % self.capacity for back in range(self.stack_size - 1, -1, -1)]]


class PadsWithTheFirstFrame(FrameBuffer):
    def stack(self, newest):
        stack = super().stack(newest)
        first = self.stack_size - 1 - min(int(self.positions[newest % self.capacity]), self.stack_size - 1)
        stack[:first] = stack[first]
        return stack


class NewestFrameFirst(FrameBuffer):
    def stack(self, newest):
        return super().stack(newest)[::-1].copy()


class TruncatedDoesNotEndTheEpisode(FrameBuffer):
    def add(self, state, action, reward, next_state, terminated, truncated=False):
        super().add(state, action, reward, next_state, terminated, truncated=False)


class SamplesEpisodeStarts(FrameBuffer):
    def sample(self, batch_size, rng):
        return _frame_sample(self, batch_size, rng, skip_episode_starts=False)


class SamplesOverwrittenFrames(FrameBuffer):
    def sample(self, batch_size, rng):
        return _frame_sample(self, batch_size, rng, skip_overwritten=False)


class NextStateFromTheWrongIndex(FrameBuffer):
    def sample(self, batch_size, rng):
        return _frame_sample(self, batch_size, rng, next_offset=1)


class StateIsTheNextState(FrameBuffer):
    def sample(self, batch_size, rng):
        return _frame_sample(self, batch_size, rng, state_offset=0)


class StateTwoFramesBack(FrameBuffer):
    def sample(self, batch_size, rng):
        return _frame_sample(self, batch_size, rng, state_offset=-2)


class Float32Frames(FrameBuffer):
    def __init__(self, capacity, frame_shape=(84, 84), stack_size=4):
        super().__init__(capacity, frame_shape, stack_size)
        self.frames = self.frames.astype(np.float32)


class StoresWholeStacks(StackBuffer):
    """A buffer of whole stacks where one frame per transition was asked for."""


class LenCountsEpisodeStarts(FrameBuffer):
    def __len__(self):
        return min(self.written, self.capacity)


# --- the tables -------------------------------------------------------------------------------

ALL_CHECKS = [getattr(checks, name) for name in checks.__all__]
CORRECT = [ReplayBuffer, StackBuffer, FrameBuffer]
ONE_FRAME_PER_TRANSITION = {checks.check_buffer_stores_each_frame_once}

# (buggy buffer, the check that must catch it, key words of its message)
BUGGY = [
    # a classic mistake (docs/bug_catalogue.md): the replay buffer hands out slots that were never written
    (SamplesUnwrittenSlots, checks.check_buffer_never_returns_unwritten_slots, "never written"),
    (SamplesOnePastTheEnd, checks.check_buffer_never_returns_unwritten_slots, "never written"),
    (LenCountsEpisodeStarts, checks.check_buffer_never_returns_unwritten_slots, "len\\(buffer\\) must be 5, got 6"),
    (
        SamplesEpisodeStarts,
        checks.check_buffer_never_returns_unwritten_slots,
        "first frame of episode 0 as if it were a transition",
    ),
    # a classic mistake (docs/bug_catalogue.md): it stacks frames across an episode boundary
    (
        StacksAcrossEpisodes,
        checks.check_buffer_stacks_stop_at_episode_start,
        "stacks frames across an episode boundary",
    ),
    (
        PadsWithTheFirstFrame,
        checks.check_buffer_stacks_stop_at_episode_start,
        "padded with copies of the episode's first frame",
    ),
    (
        TruncatedDoesNotEndTheEpisode,
        checks.check_buffer_keeps_truncated_apart,
        "across an episode boundary.*a truncation ends the episode too",
    ),
    # a classic mistake (docs/bug_catalogue.md): frames kept as float32 (4x memory)
    (
        Float32Stacks,
        checks.check_buffer_stores_uint8,
        "batch.states must be uint8, got float32: frames are kept as float",
    ),
    (Float32ScaledOnAdd, checks.check_buffer_batch_types, "batch.states must be uint8, got float32"),
    (Float32StorageUint8Batches, checks.check_buffer_stores_uint8, "225,808 bytes per transition.*kept as float32"),
    (Float32Frames, checks.check_buffer_stores_each_frame_once, "frames are kept as float32"),
    (StoresWholeStacks, checks.check_buffer_stores_each_frame_once, "store only the newest frame of each next_state"),
    # no wraparound, or overwriting the wrong slot
    (NoWraparound, checks.check_buffer_len_stops_at_capacity, "IndexError.*the cursor must wrap around to slot 0"),
    (NoWraparound, checks.check_buffer_wraps_around, "the cursor must wrap around to slot 0"),
    (OverwritesTheLastSlot, checks.check_buffer_wraps_around, "must overwrite the oldest slot"),
    # len keeps growing past capacity
    (LenGrowsPastCapacity, checks.check_buffer_len_stops_at_capacity, "must stop growing at capacity"),
    (LenGrowsPastCapacity, checks.check_buffer_wraps_around, "len\\(buffer\\) is 25, not 10"),
    (LenFollowsTheCursor, checks.check_buffer_wraps_around, "len\\(buffer\\) is 5, not 10: sample draws among"),
    # the cursor wraps too early: an empty slot comes back, blamed on add, not on sample
    (WrapsOneSlotEarly, checks.check_buffer_wraps_around, "every slot should hold a transition: add's cursor skips"),
    (WrapsAtTheSize, checks.check_buffer_never_returns_unwritten_slots, "some adds wrote into the same slot"),
    (SamplesOnePastTheEnd, checks.check_buffer_never_returns_unwritten_slots, "Draw indices only among"),
    # sampling only the first N slots after wraparound; sampling without the full range
    (SamplesOnlySinceTheWrap, checks.check_buffer_wraps_around, "not only those written since the cursor wrapped"),
    (SamplesOneShort, checks.check_buffer_samples_uniformly, "never returned the newest one"),
    (SamplesOneShort, checks.check_buffer_wraps_around, "rng.integers\\(low, high\\) never returns high"),
    (SamplesRecentHalf, checks.check_buffer_samples_uniformly, "sampling is not uniform"),
    (IgnoresTheRng, checks.check_buffer_samples_uniformly, "draw the indices with the `rng` passed to sample"),
    (SamplesOverwrittenFrames, checks.check_buffer_wraps_around, "a slot it needed had been overwritten"),
    # returning views that later adds overwrite; keeping the caller's arrays
    (ReusesTheOutputArrays, checks.check_buffer_sample_returns_copies, "a batch returned by sample changed"),
    (KeepsTheCallersArrays, checks.check_buffer_sample_returns_copies, "keeps the very arrays passed to add"),
    # next_state rebuilt from the wrong index; stacks in the wrong order
    (NextStateFromTheWrongIndex, checks.check_buffer_returns_exact_transitions, "not one step apart"),
    (StateIsTheNextState, checks.check_buffer_returns_exact_transitions, "state and next_state .* are the same stack"),
    (StoresTheStateAsNextState, checks.check_buffer_returns_exact_transitions, "store the next_state passed to add"),
    (StateTwoFramesBack, checks.check_buffer_stacks_stop_at_episode_start, "not one step apart"),
    (
        NextStateInTheNextSlot,
        checks.check_buffer_returns_exact_transitions,
        "are the same stack|in the same slot as its state",
    ),
    (NewestFrameFirst, checks.check_buffer_returns_exact_transitions, "newest frame first"),
    (ActionInThePreviousSlot, checks.check_buffer_returns_exact_transitions, "the action of .* stored one slot off"),
    # terminal flag attached to the wrong transition; truncated treated as terminated
    (
        TerminalFlagOnTheNextSlot,
        checks.check_buffer_returns_exact_transitions,
        "terminated is 0.0 for .*, the step that ended the game",
    ),
    (TruncatedAsTerminated, checks.check_buffer_keeps_truncated_apart, "only truncated.*store `terminated` alone"),
]


@pytest.mark.parametrize("buffer_class", CORRECT, ids=lambda c: c.__name__)
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda f: f.__name__)
def test_correct_buffers_pass(check, buffer_class):
    """Check that the reference and both correct exercise buffers pass every check that applies to them."""
    if buffer_class is StackBuffer and check in ONE_FRAME_PER_TRANSITION:
        pytest.skip("a buffer of whole stacks keeps more than one frame per transition, by design")
    check(buffer_class)


@pytest.mark.parametrize("buffer_class", CORRECT, ids=lambda c: c.__name__)
@pytest.mark.parametrize("seed", [1, 7])
def test_correct_buffers_pass_with_other_seeds_and_sizes(buffer_class, seed):
    """Check that the checks' other seeds and sizes, as hidden tests use them, pass correct buffers too."""
    checks.check_buffer_wraps_around(buffer_class, capacity=7 + seed, seed=seed)
    checks.check_buffer_len_stops_at_capacity(buffer_class, capacity=5 + seed)
    checks.check_buffer_never_returns_unwritten_slots(buffer_class, capacity=20 + seed, seed=seed)
    checks.check_buffer_samples_uniformly(buffer_class, num_transitions=6 + seed, seed=seed)
    checks.check_buffer_returns_exact_transitions(buffer_class, seed=seed)
    checks.check_buffer_keeps_truncated_apart(buffer_class, seed=seed)
    checks.check_buffer_stacks_stop_at_episode_start(buffer_class, seed=seed)
    checks.check_buffer_sample_returns_copies(buffer_class, capacity=5 + seed)


@pytest.mark.parametrize(("buffer_class", "check", "message"), BUGGY, ids=lambda v: getattr(v, "__name__", ""))
def test_buggy_buffers_fail_with_a_message_that_names_the_mistake(buffer_class, check, message):
    """Check that each buggy buffer fails its check with a message naming its mistake."""
    with pytest.raises(AssertionError, match=message):
        check(buffer_class)


def test_a_crossing_after_terminated_episodes_does_not_blame_truncation():
    """Check that a buffer that stacks across every episode boundary is not told that truncation is its mistake."""
    with pytest.raises(AssertionError, match="across an episode boundary") as failure:
        checks.check_buffer_keeps_truncated_apart(StacksAcrossEpisodes)
    assert "truncation ends the episode too" not in str(failure.value)


def test_a_buffer_that_cannot_be_built_is_named():
    """Check that a constructor with another signature fails with the call the checks made."""

    class NoFrameShape(StackBuffer):
        def __init__(self, capacity):
            super().__init__(capacity)

    with pytest.raises(AssertionError, match="building your buffer as NoFrameShape\\(50, frame_shape=\\(2, 2\\)"):
        checks.check_buffer_batch_types(NoFrameShape)


def test_a_batch_without_the_contract_fields_is_named():
    """Check that sample returning a plain tuple fails with the fields it must have."""

    class PlainTuple(StackBuffer):
        def sample(self, batch_size, rng):
            return tuple(super().sample(batch_size, rng))

    with pytest.raises(
        AssertionError, match="must return a Batch\\(states, actions, rewards, next_states, terminated\\)"
    ):
        checks.check_buffer_batch_types(PlainTuple)


@pytest.mark.parametrize(("dtype", "name"), [(np.int32, "actions"), (np.float64, "rewards")])
def test_wrong_dtypes_of_actions_and_rewards_are_named(dtype, name):
    """Check that int32 actions or float64 rewards fail with the dtype the contract wants."""

    class WrongDtype(StackBuffer):
        def sample(self, batch_size, rng):
            batch = super().sample(batch_size, rng)
            return batch._replace(**{name: getattr(batch, name).astype(dtype)})

    with pytest.raises(AssertionError, match=f"batch.{name} must be a NumPy array of dtype .*: convert it with"):
        checks.check_buffer_batch_types(WrongDtype)


@pytest.mark.parametrize("check", [checks.check_buffer_returns_exact_transitions, checks.check_buffer_wraps_around])
def test_float32_frames_cost_only_the_dtype_checks(check):
    """Check that float32 stacks holding the pixel values 0-255 pass the checks that are not about dtypes."""
    check(Float32Stacks)


def test_frames_scaled_to_one_are_named_by_every_check():
    """Check that stacks scaled to [0, 1], which no check can decode, fail with the float message, not a riddle."""

    class ScaledToOne(Float32Stacks):
        def sample(self, batch_size, rng):
            batch = super().sample(batch_size, rng)
            return batch._replace(states=batch.states / 255, next_states=batch.next_states / 255)

    with pytest.raises(AssertionError, match="batch.states must be uint8, got float.*scaled to \\[0, 1\\]"):
        checks.check_buffer_returns_exact_transitions(ScaledToOne)


WHICH_COME_BACK = [
    checks.check_buffer_never_returns_unwritten_slots,
    checks.check_buffer_samples_uniformly,
    checks.check_buffer_sample_returns_copies,
    checks.check_buffer_wraps_around,
]


WRONG_STACKS = [StacksAcrossEpisodes, StateIsTheNextState, NewestFrameFirst, PadsWithTheFirstFrame]


@pytest.mark.parametrize("buffer_class", WRONG_STACKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("check", WHICH_COME_BACK, ids=lambda f: f.__name__)
def test_a_wrong_stack_costs_only_the_checks_about_stacks(check, buffer_class):
    """Check that a buffer which samples the right transitions but builds their stacks wrong passes the sampling checks."""
    check(buffer_class)


def test_a_sample_loop_that_never_ends_is_stopped(monkeypatch):
    """Check that a sampling loop that keeps no index fails after the time limit, with a message, instead of hanging."""
    monkeypatch.setattr(checks, "SAMPLE_SECONDS", 0.3)

    class KeepsNothing(FrameBuffer):
        def sample(self, batch_size, rng):
            indices = []
            while len(indices) < batch_size:
                index = int(rng.integers(0, self.written))
                if self.positions[index % self.capacity] > 255:  # a uint8 never is: no index passes
                    indices.append(index)

    with pytest.raises(AssertionError, match="did not return within 0.3 s.*is its loop stuck"):
        checks.check_buffer_batch_types(KeepsNothing)
