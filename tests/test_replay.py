"""Tests for dqn_helpers.replay: the frame-deduplicated circular replay buffer.

Synthetic episodes use tiny frames in which every frame is unique and never all
zero, so any sampled stack can be traced back to the exact transition it came from:
a zero frame in a stack can only be padding from before an episode start.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
import pytest

from dqn_helpers.replay import Batch, ReplayBuffer, VectorReplayBuffer

FRAME_SHAPE = (2, 2)
STACK_SIZE = 4
NUM_ACTIONS = 4
SAMPLES = 2_000  # enough draws that every transition of a small buffer is seen


class Transition(NamedTuple):
    state: np.ndarray
    action: int
    reward: float
    next_state: np.ndarray
    terminated: bool
    episode: int
    t: int  # 1-based step in the episode: next_state's newest frame is frame t


def make_frame(episode: int, t: int) -> np.ndarray:
    """A frame unique to (episode, t) for t < 65,000, with no all-zero frame."""
    low, high = t % 256, t // 256 + 1
    return np.array([[low, high], [episode + 1, 200]], dtype=np.uint8)


def decode(frame: np.ndarray) -> tuple[int, int] | None:
    """(episode, t) of a frame made by make_frame, or None for a padding frame."""
    if not frame.any():
        return None
    return int(frame[1, 0]) - 1, int(frame[0, 0]) + 256 * (int(frame[0, 1]) - 1)


def reset_stack(episode: int) -> np.ndarray:
    """The stack an environment returns after a reset: [0, 0, 0, f0]."""
    stack = np.zeros((STACK_SIZE, *FRAME_SHAPE), np.uint8)
    stack[-1] = make_frame(episode, 0)
    return stack


def play_episode(buffer: ReplayBuffer, episode: int, length: int, end: str | None = "terminated") -> list[Transition]:
    """Add one episode of ``length`` transitions, as an agent loop would; ``end`` in {terminated, truncated, None}."""
    state = reset_stack(episode)
    added = []
    for t in range(1, length + 1):
        next_state = np.concatenate([state[1:], make_frame(episode, t)[None]])
        last = t == length
        action = (episode + t) % NUM_ACTIONS
        reward = float(t % 3 - 1)  # -1, 0, +1 in turn: a clipped reward
        terminated = last and end == "terminated"
        buffer.add(state, action, reward, next_state, terminated, truncated=last and end == "truncated")
        added.append(Transition(state, action, reward, next_state, terminated, episode, t))
        state = next_state
    return added


def matched(batch: Batch, transitions: list[Transition]) -> list[Transition]:
    """Check every sampled row equals the transition that was added; return those transitions."""
    lookup = {tr.next_state[-1].tobytes(): tr for tr in transitions}  # newest frames are unique
    found = []
    for row in range(len(batch.actions)):
        key = batch.next_states[row, -1].tobytes()
        assert key in lookup, f"row {row}: newest frame {decode(batch.next_states[row, -1])} was never added"
        tr = lookup[key]
        where = f"episode {tr.episode}, step {tr.t}"
        np.testing.assert_array_equal(batch.states[row], tr.state, err_msg=f"state of {where}")
        np.testing.assert_array_equal(batch.next_states[row], tr.next_state, err_msg=f"next_state of {where}")
        assert batch.actions[row] == tr.action
        assert batch.rewards[row] == tr.reward
        assert batch.terminated[row] == float(tr.terminated)
        found.append(tr)
    return found


# --- construction and memory --------------------------------------------------------------------


def test_nbytes_per_transition_for_atari_frames():
    """An 84x84 buffer holds 7,063 bytes per transition, not float32 stack pairs."""
    capacity = 1_000
    buffer = ReplayBuffer(capacity)
    # 84*84 uint8 frame (7,056) + uint8 action (1) + float32 reward (4) + bool terminated (1)
    # + uint8 position (1) = 7,063; float32 stacks would take 2*4*84*84*4 = 225,792.
    assert buffer.nbytes / capacity == 7_063


def test_nbytes_scales_with_frame_shape():
    """Nbytes counts one frame per slot plus 7 bytes of per-slot bookkeeping."""
    buffer = ReplayBuffer(10, frame_shape=(3, 3))
    assert buffer.nbytes == 10 * (3 * 3 + 7)  # 9 frame bytes + 1 + 4 + 1 + 1


def test_new_buffer_is_empty():
    """A new buffer has length 0."""
    assert len(ReplayBuffer(10, FRAME_SHAPE)) == 0


@pytest.mark.parametrize(
    "capacity, stack_size, message",
    [
        (0, 4, "capacity must be positive, got 0"),
        (-5, 4, "capacity must be positive, got -5"),
        (4, 4, r"capacity must exceed stack_size \(4\), got 4"),
        (10, 0, "stack_size must be positive, got 0"),
    ],
)
def test_bad_construction_arguments(capacity, stack_size, message):
    """Bad capacity or stack size raises a ValueError that says what is wrong."""
    with pytest.raises(ValueError, match=message):
        ReplayBuffer(capacity, FRAME_SHAPE, stack_size=stack_size)


# --- add: validation -----------------------------------------------------------------------------

GOOD = reset_stack(0)


@pytest.mark.parametrize(
    "state, next_state, message",
    [
        (GOOD.astype(np.float32), GOOD, r"state must be a uint8 array of shape \(4, 2, 2\), got float32"),
        (GOOD, GOOD.astype(np.float32) / 255, r"next_state must be a uint8 array .* got float32"),
        (GOOD[1:], GOOD, r"state must be a uint8 array of shape \(4, 2, 2\), got uint8 array of shape \(3, 2, 2\)"),
        (GOOD, np.zeros((4, 3, 3), np.uint8), r"next_state must be .* got uint8 array of shape \(4, 3, 3\)"),
        (GOOD.tolist(), GOOD, "state must be a uint8 array .* got list"),
    ],
    ids=["float32-state", "float32-next-state", "short-stack", "wrong-frame-shape", "list"],
)
def test_add_rejects_bad_stacks(state, next_state, message):
    """float32 frames, wrong shapes and non-arrays are rejected with the expected shape and dtype."""
    buffer = ReplayBuffer(10, FRAME_SHAPE)
    with pytest.raises(ValueError, match=message):
        buffer.add(state, 0, 0.0, next_state, False)
    assert len(buffer) == 0


@pytest.mark.parametrize("action", [-1, 256, 1_000, 2.7])
def test_add_rejects_out_of_range_action(action):
    """Actions must fit the uint8 action array."""
    buffer = ReplayBuffer(10, FRAME_SHAPE)
    next_state = np.concatenate([GOOD[1:], make_frame(0, 1)[None]])
    with pytest.raises(ValueError, match=rf"action must be an integer in \[0, 255\], got {action}"):
        buffer.add(GOOD, action, 0.0, next_state, False)


@pytest.mark.parametrize("action", [0, 255])
def test_add_accepts_action_bounds(action):
    """Actions 0 and 255 are stored and sampled back unchanged."""
    buffer = ReplayBuffer(10, FRAME_SHAPE)
    next_state = np.concatenate([GOOD[1:], make_frame(0, 1)[None]])
    buffer.add(GOOD, action, 0.0, next_state, False)
    assert buffer.sample(1, np.random.default_rng(0)).actions[0] == action


def test_missing_state_update_is_named():
    """Re-adding the reset state (no `state = next_state`) raises an error that names the fix."""
    buffer = ReplayBuffer(10, FRAME_SHAPE)
    state = reset_stack(0)
    first_next = np.concatenate([state[1:], make_frame(0, 1)[None]])
    buffer.add(state, 0, 0.0, first_next, False)
    # The classic bug: the loop keeps acting from the reset state.
    second_next = np.concatenate([state[1:], make_frame(0, 2)[None]])
    with pytest.raises(ValueError, match="is `state = next_state` missing"):
        buffer.add(state, 0, 0.0, second_next, False)
    assert len(buffer) == 1  # the rejected transition was not stored
    buffer.add(first_next, 0, 0.0, np.concatenate([first_next[1:], make_frame(0, 2)[None]]), False)
    assert len(buffer) == 2


def test_new_episode_without_ending_the_old_one_is_rejected():
    """A reset state added while an episode is open (no terminated/truncated) is refused."""
    buffer = ReplayBuffer(20, FRAME_SHAPE)
    play_episode(buffer, episode=0, length=3, end=None)
    next_state = np.concatenate([reset_stack(1)[1:], make_frame(1, 1)[None]])
    with pytest.raises(ValueError, match="terminated=True or truncated=True"):
        buffer.add(reset_stack(1), 0, 0.0, next_state, False)


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_ending_an_episode_allows_a_new_start(end):
    """After terminated or truncated, the next add starts a new episode without a continuity error."""
    buffer = ReplayBuffer(20, FRAME_SHAPE)
    play_episode(buffer, episode=0, length=3, end=end)
    play_episode(buffer, episode=1, length=2)
    assert len(buffer) == 5  # 3 + 2 transitions (episode starts are not transitions)


# --- sample: exact rebuilding --------------------------------------------------------------------


def test_sample_errors():
    """Sampling an empty buffer or a non-positive batch raises a ValueError."""
    buffer = ReplayBuffer(10, FRAME_SHAPE)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cannot sample from an empty replay buffer"):
        buffer.sample(1, rng)
    play_episode(buffer, 0, 2)
    for batch_size in (0, -3):
        with pytest.raises(ValueError, match=f"batch_size must be positive, got {batch_size}"):
            buffer.sample(batch_size, rng)


def test_batch_dtypes_and_shapes():
    """States stay uint8 (never float32); actions int64; rewards and terminated float32."""
    buffer = ReplayBuffer(50, FRAME_SHAPE)
    play_episode(buffer, 0, 10)
    batch = buffer.sample(7, np.random.default_rng(0))
    assert isinstance(batch, Batch)
    assert batch.states.shape == batch.next_states.shape == (7, STACK_SIZE, *FRAME_SHAPE)
    assert batch.states.dtype == batch.next_states.dtype == np.uint8
    assert batch.actions.dtype == np.int64 and batch.actions.shape == (7,)
    assert batch.rewards.dtype == np.float32 and batch.rewards.shape == (7,)
    assert batch.terminated.dtype == np.float32 and batch.terminated.shape == (7,)


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_stacks_rebuild_exactly_across_episodes(end):
    """Every sampled state, next state, action, reward and terminated flag is exactly what was added."""
    buffer = ReplayBuffer(200, FRAME_SHAPE)
    added = []
    for episode, length in enumerate([1, 2, 5, 9, 3]):
        added += play_episode(buffer, episode, length, end=end)
    assert len(buffer) == 20  # 1 + 2 + 5 + 9 + 3
    found = matched(buffer.sample(SAMPLES, np.random.default_rng(1)), added)
    assert {(tr.episode, tr.t) for tr in found} == {(tr.episode, tr.t) for tr in added}
    # terminated is 1.0 only on the last step of an episode that really ended (matched() checks each row)
    ended = {tr.episode for tr in found if tr.terminated}
    assert ended == (set(range(5)) if end == "terminated" else set())


# decoded stacks of episode 1 (t of each frame, None = zero padding) at its first steps
EPISODE_START_TABLE = [
    (1, [None, None, None, 0], [None, None, 0, 1]),
    (2, [None, None, 0, 1], [None, 0, 1, 2]),
    (3, [None, 0, 1, 2], [0, 1, 2, 3]),
    (4, [0, 1, 2, 3], [1, 2, 3, 4]),
    (6, [2, 3, 4, 5], [3, 4, 5, 6]),
]


@pytest.mark.parametrize("end", ["terminated", "truncated"])
@pytest.mark.parametrize("t, state_ts, next_ts", EPISODE_START_TABLE)
def test_stacks_are_zero_padded_after_an_episode_boundary(end, t, state_ts, next_ts):
    """Frames before an episode start are zeros, never frames of the previous episode."""
    buffer = ReplayBuffer(100, FRAME_SHAPE)
    play_episode(buffer, episode=0, length=7, end=end)
    play_episode(buffer, episode=1, length=6)
    batch = buffer.sample(SAMPLES, np.random.default_rng(2))
    rows = [row for row in range(SAMPLES) if decode(batch.next_states[row, -1]) == (1, t)]
    assert rows, f"step {t} of episode 1 never sampled"
    for row in rows:
        assert [decode(f) for f in batch.states[row]] == [None if s is None else (1, s) for s in state_ts]
        assert [decode(f) for f in batch.next_states[row]] == [None if s is None else (1, s) for s in next_ts]


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_no_stack_mixes_episodes(end):
    """Across many short episodes, every non-zero frame of a stack belongs to that transition's episode."""
    buffer = ReplayBuffer(300, FRAME_SHAPE)
    for episode in range(40):
        play_episode(buffer, episode, length=1 + episode % 5, end=end)
    batch = buffer.sample(SAMPLES, np.random.default_rng(3))
    for row in range(SAMPLES):
        episode, _ = decode(batch.next_states[row, -1])
        for frame in [*batch.states[row], *batch.next_states[row]]:
            code = decode(frame)
            assert code is None or code[0] == episode


def test_terminated_flag_survives_an_episode_of_one_step():
    """A one-step terminated episode samples state [0,0,0,f0], next [0,0,f0,f1], terminated 1.0."""
    buffer = ReplayBuffer(10, FRAME_SHAPE)
    (only,) = play_episode(buffer, 0, 1, end="terminated")
    batch = buffer.sample(5, np.random.default_rng(0))
    matched(batch, [only])
    assert batch.terminated.tolist() == [1.0] * 5


def test_never_samples_unwritten_slots():
    """A big buffer with 5 transitions returns only those 5, never zero-filled garbage slots."""
    buffer = ReplayBuffer(1_000, FRAME_SHAPE)
    added = play_episode(buffer, 0, 5)
    batch = buffer.sample(500, np.random.default_rng(4))
    assert batch.next_states[:, -1].any(axis=(1, 2)).all()  # the newest frame is never padding
    assert sorted({tr.t for tr in matched(batch, added)}) == [1, 2, 3, 4, 5]


def test_sampling_is_uniform_over_transitions():
    """Each of 10 transitions is drawn about 1/10 of the time."""
    buffer = ReplayBuffer(100, FRAME_SHAPE)
    play_episode(buffer, 0, 4, end="terminated")
    play_episode(buffer, 1, 6)
    draws = 20_000
    batch = buffer.sample(draws, np.random.default_rng(5))
    _, counts = np.unique(batch.next_states[:, -1].reshape(draws, -1), axis=0, return_counts=True)
    assert len(counts) == 10
    # Each count is Binomial(20,000, 0.1): mean 2,000, sd ~42, so +-300 is a 7-sd band;
    # episode-start slots being drawn as transitions would skew it far more.
    assert np.all(np.abs(counts - draws / 10) < 300)


def test_same_rng_seed_same_batch():
    """Sampling is driven only by the rng passed in."""
    buffer = ReplayBuffer(100, FRAME_SHAPE)
    play_episode(buffer, 0, 30)
    first = buffer.sample(16, np.random.default_rng(9))
    second = buffer.sample(16, np.random.default_rng(9))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


# --- wraparound ----------------------------------------------------------------------------------


def test_len_never_exceeds_capacity_and_counts_held_transitions():
    """len() counts the transitions still held: never above capacity, minus held episode starts."""
    capacity = 12
    buffer = ReplayBuffer(capacity, FRAME_SHAPE)
    slots = []  # mirror of the logical slots: True for a transition, False for an episode's first frame
    for episode in range(15):
        state = reset_stack(episode)
        slots.append(False)
        for t in range(1, 2 + episode % 4):
            next_state = np.concatenate([state[1:], make_frame(episode, t)[None]])
            buffer.add(state, 0, 0.0, next_state, terminated=t == 1 + episode % 4)
            slots.append(True)
            state = next_state
            assert len(buffer) <= capacity
            assert len(buffer) == sum(slots[-capacity:])


@pytest.mark.parametrize("capacity", [5, 13, 20])
def test_wraparound_samples_only_recent_transitions_exactly(capacity):
    """After overwriting, samples come from the newest `capacity` slots and their stacks are still exact."""
    buffer = ReplayBuffer(capacity, FRAME_SHAPE)
    added, logical = [], []  # logical slot index of each added transition
    written = 0
    for episode, length in enumerate([7, 3, 12, 1, 9, 4, 6]):
        written += 1  # the episode's first frame takes a slot
        for tr in play_episode(buffer, episode, length, end="terminated" if episode % 2 else "truncated"):
            added.append(tr)
            logical.append(written)
            written += 1
    recent = [tr for tr, index in zip(added, logical) if index >= written - capacity]
    assert len(buffer) == len(recent) <= capacity
    found = matched(buffer.sample(SAMPLES, np.random.default_rng(6)), recent)
    assert found


def test_wraparound_in_one_long_episode_samples_every_rebuildable_transition():
    """Capacity 20 after a 100-step episode: exactly the 16 transitions whose 5 frames are held are sampled."""
    capacity, length = 20, 100
    buffer = ReplayBuffer(capacity, FRAME_SHAPE)
    added = play_episode(buffer, 0, length, end=None)
    # Slot of frame t is logical index t (frame 0 at index 0); 101 slots written, indices 81..100 held,
    # so 20 transitions are held. A transition at t needs frames t-4..t: t-4 >= 81, i.e. t in 85..100.
    assert len(buffer) == capacity
    found = matched(buffer.sample(SAMPLES, np.random.default_rng(7)), added)
    assert {tr.t for tr in found} == set(range(85, 101))


@pytest.mark.parametrize("capacity", [400, 50])
def test_episodes_longer_than_255_steps_rebuild_exactly(capacity):
    """Positions are capped at 255 in uint8, yet stacks past step 255 and the next episode's start stay exact."""
    buffer = ReplayBuffer(capacity, FRAME_SHAPE)
    added = play_episode(buffer, 0, 300, end="terminated")
    added += play_episode(buffer, 1, 6)
    batch = buffer.sample(SAMPLES, np.random.default_rng(8))
    found = matched(batch, added)
    assert max(tr.t for tr in found if tr.episode == 0) > 255
    assert any(tr.episode == 1 for tr in found)


# --- checkpoints ----------------------------------------------------------------------------------


CHECKPOINT_CAPACITY = 30  # below the 35 slots _filled writes (4 episode starts + 31 transitions): it wraps


def _filled() -> tuple[ReplayBuffer, list[Transition]]:
    buffer = ReplayBuffer(CHECKPOINT_CAPACITY, FRAME_SHAPE)
    added = []
    for episode, length in enumerate([6, 11, 9]):
        added += play_episode(buffer, episode, length, end="terminated")
    added += play_episode(buffer, 3, 5, end=None)  # still under way at checkpoint time
    return buffer, added


def test_state_dict_round_trip_through_npz():
    """A buffer saved with np.savez and loaded into a fresh one samples the same batch with the same seed."""
    buffer, _ = _filled()
    file = io.BytesIO()
    np.savez(file, **buffer.state_dict())
    file.seek(0)
    restored = ReplayBuffer(CHECKPOINT_CAPACITY, FRAME_SHAPE)
    with np.load(file) as arrays:
        restored.load_state_dict(dict(arrays))
    assert len(restored) == len(buffer)
    seed = 10
    original = buffer.sample(64, np.random.default_rng(seed))
    reloaded = restored.sample(64, np.random.default_rng(seed))
    for mine, theirs in zip(original, reloaded):
        np.testing.assert_array_equal(mine, theirs)


def test_after_load_the_next_add_starts_a_new_episode():
    """The episode open at save time counts as truncated: a reset state is accepted and stays unmixed."""
    buffer, added = _filled()
    restored = ReplayBuffer(CHECKPOINT_CAPACITY, FRAME_SHAPE)
    restored.load_state_dict(buffer.state_dict())
    added += play_episode(restored, 4, 4)  # would raise a continuity error if episode 3 were still open
    found = matched(restored.sample(SAMPLES, np.random.default_rng(11)), added)
    assert any(tr.episode == 4 for tr in found)
    open_ones = [tr for tr in found if tr.episode == 3]
    assert open_ones and not any(tr.terminated for tr in open_ones)  # truncated: still bootstraps


@pytest.mark.parametrize(
    "capacity, frame_shape, message",
    [
        (31, FRAME_SHAPE, r"frames needs uint8 \(31, 2, 2\), got uint8 \(30, 2, 2\)"),
        (30, (3, 3), r"frames needs uint8 \(30, 3, 3\), got uint8 \(30, 2, 2\)"),
    ],
)
def test_load_into_a_different_buffer_raises(capacity, frame_shape, message):
    """Loading into a buffer of another capacity or frame shape is refused."""
    buffer, _ = _filled()
    with pytest.raises(ValueError, match=message):
        ReplayBuffer(capacity, frame_shape).load_state_dict(buffer.state_dict())


def test_load_rejects_wrong_dtype():
    """A float32 frame array (e.g. from a scaled buffer) is refused."""
    buffer, _ = _filled()
    state = buffer.state_dict()
    state["frames"] = state["frames"].astype(np.float32)
    with pytest.raises(ValueError, match="frames needs uint8"):
        ReplayBuffer(CHECKPOINT_CAPACITY, FRAME_SHAPE).load_state_dict(state)


def test_a_rejected_load_leaves_the_buffer_unchanged():
    """A state whose last array is wrong is refused before anything is copied: the buffer samples as before."""
    buffer, _ = _filled()
    before = buffer.sample(64, np.random.default_rng(5))
    other = ReplayBuffer(CHECKPOINT_CAPACITY, FRAME_SHAPE)
    play_episode(other, 7, 20, end=None)
    state = other.state_dict()
    state["positions"] = state["positions"].astype(np.int64)  # checked last, after frames would have been copied
    with pytest.raises(ValueError, match="positions needs uint8"):
        buffer.load_state_dict(state)
    after = buffer.sample(64, np.random.default_rng(5))
    for mine, theirs in zip(before, after):
        np.testing.assert_array_equal(mine, theirs)


def test_load_of_something_else_names_what_is_missing():
    """A dictionary that is not a replay state gets a ValueError, not a KeyError."""
    with pytest.raises(ValueError, match="lacks frames, actions, rewards, terminated, positions, counters"):
        ReplayBuffer(CHECKPOINT_CAPACITY, FRAME_SHAPE).load_state_dict({})


# --- with the real environment -------------------------------------------------------------------


def test_real_breakout_transitions_rebuild_exactly():
    """Stacks from the training Breakout env, across a lost life, are rebuilt exactly as the agent saw them."""
    from dqn_helpers.envs import make_env

    env = make_env("Breakout", training=True)
    buffer = ReplayBuffer(300)
    rng = np.random.default_rng(0)
    state, _ = env.reset(seed=0)
    added, lives_lost = [], 0
    while lives_lost < 2:
        action = int(rng.integers(env.action_space.n))
        next_state, reward, terminated, truncated, _ = env.step(action)
        buffer.add(state, action, reward, next_state, terminated, truncated)
        added.append(Transition(state, action, reward, next_state, terminated, lives_lost, len(added)))
        state = next_state
        if terminated or truncated:
            lives_lost += 1
            state, _ = env.reset()
    env.close()
    assert len(added) < 300  # two lives of random play fit without wraparound
    # A still screen can repeat a stack, so a sampled row must equal one of the added transitions
    # that share its next state (on state, action, reward and terminated).
    candidates: dict[bytes, list[Transition]] = {}
    for tr in added:
        candidates.setdefault(tr.next_state.tobytes(), []).append(tr)
    batch = buffer.sample(500, np.random.default_rng(1))
    for row in range(500):
        options = candidates.get(batch.next_states[row].tobytes(), [])
        assert any(
            np.array_equal(batch.states[row], tr.state)
            and batch.actions[row] == tr.action
            and batch.rewards[row] == tr.reward
            and batch.terminated[row] == float(tr.terminated)
            for tr in options
        ), f"row {row} matches no added transition"
    # the second life starts from a zero-padded stack, which the buffer rebuilds (checked above)
    second_life_start = next(tr for tr in added if tr.episode == 1)
    assert not second_life_start.state[:3].any()


# --- VectorReplayBuffer: one stream per environment -----------------------------------------------

NUM_ENVS = 3


def vector_step(buffer: VectorReplayBuffer, states: np.ndarray, t: int, terminated: bool = False) -> np.ndarray:
    """Add one transition per environment (environment e plays episode e); return the next states."""
    next_states = np.stack([np.concatenate([states[e, 1:], make_frame(e, t)[None]]) for e in range(NUM_ENVS)])
    flags = np.full(NUM_ENVS, terminated)
    buffer.add(states, np.arange(NUM_ENVS), np.full(NUM_ENVS, float(t)), next_states, flags, np.zeros(NUM_ENVS, bool))
    return next_states


def filled_vector_buffer(steps: int = 6) -> VectorReplayBuffer:
    buffer = VectorReplayBuffer(30, NUM_ENVS, frame_shape=FRAME_SHAPE, stack_size=STACK_SIZE)
    states = np.stack([reset_stack(e) for e in range(NUM_ENVS)])
    for t in range(1, steps + 1):
        states = vector_step(buffer, states, t)
    return buffer


def test_vector_buffer_splits_capacity_and_counts_all_streams():
    """30 transitions over 3 environments: 3 buffers of 10; 6 vector steps hold 18 transitions."""
    buffer = filled_vector_buffer()
    assert [b.capacity for b in buffer.buffers] == [10] * NUM_ENVS
    assert len(buffer) == 18
    assert buffer.nbytes == sum(b.nbytes for b in buffer.buffers)


def test_vector_buffer_keeps_each_environment_in_its_own_stream():
    """Every sampled stack holds frames of one episode only: environments' frames never mix in a stack."""
    batch = filled_vector_buffer().sample(SAMPLES, np.random.default_rng(0))
    for state, next_state, action, reward in zip(batch.states, batch.next_states, batch.actions, batch.rewards):
        episodes = {decoded[0] for decoded in map(decode, [*state, *next_state]) if decoded is not None}
        assert episodes == {int(action)}  # environment e acted e and played episode e
        assert decode(next_state[-1]) == (int(action), int(reward))  # the reward is the step number t


def test_vector_buffer_samples_uniformly_over_all_transitions():
    """18 transitions held: each is drawn with probability 1/18, whatever its environment."""
    batch = filled_vector_buffer().sample(SAMPLES * 3, np.random.default_rng(1))
    keys = [decode(frame) for frame in batch.next_states[:, -1]]
    counts = np.array([keys.count((e, t)) for e in range(NUM_ENVS) for t in range(1, 7)])
    # 6,000 draws over 18 transitions: 333 expected each, standard deviation about 18.
    assert counts.min() > 250 and counts.max() < 420


@pytest.mark.parametrize(
    ("field", "override"),
    [
        ("states", np.zeros((2, STACK_SIZE, *FRAME_SHAPE), np.uint8)),
        ("actions", np.zeros(4, np.int64)),
        ("truncated", np.zeros(1, bool)),
    ],
)
def test_vector_buffer_add_needs_one_entry_per_environment(field, override):
    """An argument with another length than num_envs is refused, naming it, and nothing is stored."""
    buffer = VectorReplayBuffer(30, NUM_ENVS, frame_shape=FRAME_SHAPE, stack_size=STACK_SIZE)
    states = np.stack([reset_stack(e) for e in range(NUM_ENVS)])
    arguments = {
        "states": states,
        "actions": np.zeros(NUM_ENVS, np.int64),
        "rewards": np.zeros(NUM_ENVS),
        "next_states": states,
        "terminated": np.zeros(NUM_ENVS, bool),
        "truncated": np.zeros(NUM_ENVS, bool),
    }
    arguments[field] = override
    with pytest.raises(ValueError, match=rf"{field} must hold one entry per environment \(3\), got {len(override)}"):
        buffer.add(**arguments)
    assert len(buffer) == 0


@pytest.mark.parametrize(
    ("capacity", "num_envs", "message"),
    [
        (30, 0, "num_envs must be positive, got 0"),
        (2, 3, r"capacity \(2\) must be at least num_envs \(3\)"),
        (12, 3, r"capacity must exceed stack_size \(4\), got 4"),
    ],
)
def test_vector_buffer_rejects_bad_sizes(capacity, num_envs, message):
    """Sizes that cannot work are refused with what was expected and what was given."""
    with pytest.raises(ValueError, match=message):
        VectorReplayBuffer(capacity, num_envs, frame_shape=FRAME_SHAPE, stack_size=STACK_SIZE)


def test_vector_buffer_sample_errors():
    """A non-positive batch size or an empty buffer is refused."""
    buffer = VectorReplayBuffer(30, NUM_ENVS, frame_shape=FRAME_SHAPE, stack_size=STACK_SIZE)
    with pytest.raises(ValueError, match="cannot sample from an empty replay buffer"):
        buffer.sample(4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        filled_vector_buffer().sample(0, np.random.default_rng(0))


def test_vector_buffer_state_round_trip():
    """A buffer restored from state_dict samples exactly what the original samples."""
    original = filled_vector_buffer()
    state = {key: np.array(value) for key, value in original.state_dict().items()}
    assert {key.split("/")[0] for key in state} == {"0", "1", "2"}
    restored = VectorReplayBuffer(30, NUM_ENVS, frame_shape=FRAME_SHAPE, stack_size=STACK_SIZE)
    restored.load_state_dict(state)
    assert len(restored) == len(original)
    for mine, theirs in zip(
        original.sample(64, np.random.default_rng(2)), restored.sample(64, np.random.default_rng(2))
    ):
        np.testing.assert_array_equal(mine, theirs)


def test_vector_buffer_load_is_all_or_nothing():
    """A state whose last buffer does not fit is refused before any buffer changes."""
    buffer = filled_vector_buffer(steps=2)
    state = {key: np.array(value) for key, value in filled_vector_buffer(steps=6).state_dict().items()}
    state["2/frames"] = state["2/frames"][:5]
    with pytest.raises(ValueError, match="replay state does not fit this buffer: frames"):
        buffer.load_state_dict(state)
    assert len(buffer) == 6  # still the 2 vector steps it held


def test_vector_buffer_refuses_another_number_of_environments():
    """A state saved with 3 environments does not load into a 2-environment buffer."""
    state = filled_vector_buffer().state_dict()
    two = VectorReplayBuffer(20, 2, frame_shape=FRAME_SHAPE, stack_size=STACK_SIZE)
    with pytest.raises(ValueError, match="replay state holds 3 environments' buffers, this one has 2"):
        two.load_state_dict(state)


# --- n-step returns -----------------------------------------------------------------------------


def n_step_buffer(n_step: int, gamma: float = 0.5, capacity: int = 100) -> ReplayBuffer:
    return ReplayBuffer(capacity, FRAME_SHAPE, STACK_SIZE, n_step=n_step, gamma=gamma)


def expected_n_step(transitions: list[Transition], n_step: int, gamma: float, index: int, newest: int):
    """Hand-rolled n-step return of transitions[index] within its episode: (return, last transition, steps)."""
    total, k = 0.0, 0
    while True:
        tr = transitions[index + k]
        total += gamma**k * tr.reward
        k += 1
        at_end = tr.terminated or index + k > newest or transitions[index + k].episode != tr.episode
        if k == n_step or at_end:
            return total, tr, k


@pytest.mark.parametrize("n_step", [2, 3, 5])
@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_n_step_batches_match_a_hand_rolled_return(n_step, end):
    """Each sampled row sums gamma**j r_{t+j} up to n steps, stopping at the episode's end; discount gamma**k."""
    gamma = 0.5
    buffer = n_step_buffer(n_step, gamma)
    transitions = play_episode(buffer, 0, 7, end) + play_episode(buffer, 1, 2, end) + play_episode(buffer, 2, 6, None)
    by_state = {tr.state.tobytes(): i for i, tr in enumerate(transitions)}
    batch = buffer.sample(SAMPLES, np.random.default_rng(0))
    seen = set()
    for row in range(SAMPLES):
        index = by_state[batch.states[row].tobytes()]
        total, last, k = expected_n_step(transitions, n_step, gamma, index, newest=len(transitions) - 1)
        where = f"transition {index} (episode {transitions[index].episode}, step {transitions[index].t})"
        assert batch.actions[row] == transitions[index].action, where
        assert batch.rewards[row] == pytest.approx(total), where
        np.testing.assert_array_equal(batch.next_states[row], last.next_state, err_msg=where)
        assert batch.terminated[row] == float(last.terminated), where
        assert batch.discounts[row] == pytest.approx(gamma**k), where
        seen.add(index)
    assert seen == set(range(len(transitions)))


def test_n_step_return_stops_at_a_terminal_step_and_never_reads_the_next_episode():
    """A 3-step return that starts 1 step before the end holds 2 rewards and is terminated."""
    buffer = n_step_buffer(3, gamma=0.9)
    first = play_episode(buffer, 0, 4, "terminated")
    play_episode(buffer, 1, 5, "terminated")
    batch = buffer.sample(SAMPLES, np.random.default_rng(1))
    row = next(i for i in range(SAMPLES) if np.array_equal(batch.states[i], first[2].state))
    assert batch.rewards[row] == pytest.approx(first[2].reward + 0.9 * first[3].reward)
    assert batch.terminated[row] == 1.0
    np.testing.assert_array_equal(batch.next_states[row], first[3].next_state)


def test_one_step_buffer_leaves_the_discount_to_the_learner():
    """n_step=1 samples exactly as before, with no per-transition discounts."""
    buffer = ReplayBuffer(50, FRAME_SHAPE, STACK_SIZE)
    transitions = play_episode(buffer, 0, 8)
    batch = buffer.sample(64, np.random.default_rng(0))
    assert batch.discounts is None
    matched(batch, transitions)


def test_n_step_wraparound_keeps_returns_within_held_transitions():
    """After the ring wraps, n-step returns still follow the newest data of each episode."""
    gamma = 0.5
    buffer = n_step_buffer(3, gamma, capacity=13)
    transitions = play_episode(buffer, 0, 9, "terminated") + play_episode(buffer, 1, 11, None)
    by_state = {tr.state.tobytes(): i for i, tr in enumerate(transitions)}
    batch = buffer.sample(SAMPLES, np.random.default_rng(0))
    for row in range(SAMPLES):
        index = by_state[batch.states[row].tobytes()]
        total, last, _ = expected_n_step(transitions, 3, gamma, index, newest=len(transitions) - 1)
        assert transitions[index].episode == 1  # episode 0's slots have all been overwritten
        assert batch.rewards[row] == pytest.approx(total)
        np.testing.assert_array_equal(batch.next_states[row], last.next_state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_step": 0}, "n_step must be positive and below capacity"),
        ({"n_step": 20}, "n_step must be positive"),
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\], got 1.5"),
    ],
)
def test_bad_n_step_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReplayBuffer(20, FRAME_SHAPE, STACK_SIZE, **kwargs)


def test_vector_buffer_n_step_returns_stay_in_each_environment():
    """Environment e's 3-step returns sum its own rewards t, t+1, t+2 (rewards are the step numbers)."""
    buffer = VectorReplayBuffer(60, NUM_ENVS, frame_shape=FRAME_SHAPE, stack_size=STACK_SIZE, n_step=3, gamma=0.5)
    states = np.stack([reset_stack(e) for e in range(NUM_ENVS)])
    for t in range(1, 9):
        states = vector_step(buffer, states, t)
    batch = buffer.sample(SAMPLES, np.random.default_rng(0))
    for state, action, reward, next_state, discount in zip(
        batch.states, batch.actions, batch.rewards, batch.next_states, batch.discounts
    ):
        episode, t0 = decode(state[-1])
        last_episode, t_last = decode(next_state[-1])
        k = t_last - t0
        assert episode == last_episode == int(action)
        assert k == min(3, 8 - t0)  # the newest transition (t = 8) cuts the last returns short
        assert reward == pytest.approx(sum(0.5**j * (t0 + 1 + j) for j in range(k)))
        assert discount == pytest.approx(0.5**k)
