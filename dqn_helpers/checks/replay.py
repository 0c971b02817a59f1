"""Visible checks of notebook 03, Experience replay.

Every check takes the student's buffer *class*, builds small buffers from it
(tiny frames, small capacities), plays synthetic episodes into them the way an
agent loop would, samples, and decodes what comes back. Each synthetic frame
encodes the ``(episode, step)`` it belongs to, so a check can say exactly which
transition came back wrong and how: a slot that was never written, a stack that
reaches into the previous episode, a flag on the wrong transition.

The checks of *which* transitions come back (unwritten slots, uniformity,
wraparound, copies) look only at the newest frame of each next state; the checks
of *what* comes back (exact transitions, episode starts, truncation) compare every
frame and field. So one mistake in rebuilding stacks, or one wrong dtype, costs
only the checks about it.

A buffer must have the API of :class:`dqn_helpers.replay.ReplayBuffer`:
``Buffer(capacity, frame_shape=..., stack_size=4)``, ``add(state, action, reward,
next_state, terminated, truncated=False)``, ``sample(batch_size, rng)`` returning a
batch with fields ``states`` and ``next_states`` (uint8), ``actions`` (int64),
``rewards`` and ``terminated`` (float32), ``len(buffer)`` and ``buffer.nbytes``.
The checks pass on that reference, on a buffer of whole ``uint8`` stacks and on
one that stores each frame once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from dqn_helpers.envs import FRAME_SHAPE as ATARI_FRAME_SHAPE
from dqn_helpers.envs import STACK_SIZE

__all__ = [
    "check_buffer_batch_types",
    "check_buffer_keeps_truncated_apart",
    "check_buffer_len_stops_at_capacity",
    "check_buffer_never_returns_unwritten_slots",
    "check_buffer_returns_exact_transitions",
    "check_buffer_sample_returns_copies",
    "check_buffer_samples_uniformly",
    "check_buffer_stacks_stop_at_episode_start",
    "check_buffer_stores_each_frame_once",
    "check_buffer_stores_uint8",
    "check_buffer_wraps_around",
]

FRAME_SHAPE = (2, 2)  # the smallest frame that holds a code: episode, step (two bytes), marker
NUM_ACTIONS = 4
_MARKER = 200  # the fourth byte of every synthetic frame: a frame without it was never added
_SCRIBBLE = 0xEE  # what the checks write over arrays after passing them to add
_METADATA_ALLOWANCE = 64  # bytes per transition a buffer may spend beyond its frames (action, reward, flags, ...)
SAMPLE_SECONDS = 10.0  # a sample call that takes longer is stuck in its loop (the checks' largest take milliseconds)
_FIELDS = ("states", "actions", "rewards", "next_states", "terminated")
_LEGEND = "(stacks listed oldest frame first, as (episode, step); 0 is a zero frame)"

Code = tuple[int, int] | None  # (episode, step) of a synthetic frame; None for a zero frame


class _Step(NamedTuple):
    """One transition the checks added, and what it must come back as."""

    episode: int
    t: int  # 1-based step: next_state's newest frame is frame (episode, t)
    action: int
    reward: float
    terminated: bool
    truncated: bool
    length: int  # steps in the episode


def _frame(episode: int, t: int, frame_shape: tuple[int, ...]) -> np.ndarray:
    """A frame unique to (episode, t), for episode < 255 and t < 65,280; never all zeros."""
    frame = np.zeros(frame_shape, np.uint8)
    frame.flat[:4] = (episode + 1, t % 256, t // 256 + 1, _MARKER)
    return frame


def _decode(stacks: np.ndarray) -> list[list[Code | str]]:
    """Decode a batch of stacks into (episode, step) codes; "?" for a frame no check ever made."""
    flat = stacks.reshape(*stacks.shape[:2], -1).astype(np.int64)
    zero = ~flat.any(axis=-1)
    made = (flat[..., 3] == _MARKER) & (flat[..., 0] > 0) & (flat[..., 2] > 0) & ~flat[..., 4:].any(axis=-1)
    episode, t = flat[..., 0] - 1, flat[..., 1] + 256 * (flat[..., 2] - 1)
    return [
        [None if z else (int(e), int(s)) if m else "?" for z, m, e, s in zip(*row)]
        for row in zip(zero.tolist(), made.tolist(), episode.tolist(), t.tolist())
    ]


def _describe(codes: list[Code | str]) -> str:
    return "[" + ", ".join("0" if code is None else str(code) for code in codes) + "]"


def _expected_stack(episode: int, newest: int) -> list[Code]:
    """The stack whose newest frame is step ``newest``: zero frames before the episode's step 0."""
    return [(episode, s) if s >= 0 else None for s in range(newest - STACK_SIZE + 1, newest + 1)]


class _TooSlow(Exception):
    """Raised by the alarm of :func:`_time_limit`."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise _TooSlow in the block after ``seconds``, where the platform has interval timers (not on Windows)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise _TooSlow()

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Player:
    """Plays synthetic episodes into a buffer as an agent loop would, and remembers what it added."""

    def __init__(self, buffer_class: type, capacity: int, frame_shape: tuple[int, ...] = FRAME_SHAPE):
        self.capacity, self.frame_shape = capacity, frame_shape
        try:
            self.buffer = buffer_class(capacity, frame_shape=frame_shape, stack_size=STACK_SIZE)
        except Exception as error:
            raise AssertionError(
                f"building your buffer as {buffer_class.__name__}({capacity}, frame_shape={frame_shape}, "
                f"stack_size={STACK_SIZE}) raised {type(error).__name__}: {error}"
            ) from error
        self.steps: dict[tuple[int, int], _Step] = {}
        self.order: dict[tuple[int, int], int] = {}  # when each frame was added, step-0 frames included
        self.ended: dict[int, str | None] = {}  # how each episode ended: "terminated", "truncated" or None
        self.added = 0

    def play(
        self,
        episode: int,
        length: int,
        end: str | None = "terminated",
        *,
        scribble: bool = False,
        after_each: Callable[[int], None] | None = None,
    ) -> None:
        """Add one episode of ``length`` transitions; ``end`` in {"terminated", "truncated", None}.

        With ``scribble``, every array passed to ``add`` is overwritten right after
        the call, as an environment that reuses its arrays would do; ``after_each(t)``
        runs after the add of step ``t``.
        """
        state = np.zeros((STACK_SIZE, *self.frame_shape), np.uint8)
        state[-1] = _frame(episode, 0, self.frame_shape)
        self.order[(episode, 0)] = len(self.order)
        self.ended[episode] = end
        for t in range(1, length + 1):
            next_state = np.concatenate([state[1:], _frame(episode, t, self.frame_shape)[None]])
            last = t == length
            step = _Step(
                episode,
                t,
                (3 * episode + t) % NUM_ACTIONS,
                float(t % 3 - 1),
                last and end == "terminated",
                last and end == "truncated",
                length,
            )
            passed = (state.copy(), next_state.copy())
            try:
                self.buffer.add(
                    passed[0], step.action, step.reward, passed[1], step.terminated, truncated=step.truncated
                )
            except Exception as error:
                hint = (
                    ": the index ran past the end of the buffer's arrays. Once the buffer is full the cursor must "
                    "wrap around to slot 0, as in cursor = (cursor + 1) % capacity"
                    if isinstance(error, IndexError)
                    else ""
                )
                raise AssertionError(
                    f"add raised {type(error).__name__}: {error}, at transition {self.added + 1} "
                    f"into a buffer of capacity {self.capacity}{hint}"
                ) from error
            if scribble:
                for array in passed:
                    array.fill(_SCRIBBLE)
            self.steps[(episode, t)] = step
            self.order[(episode, t)] = len(self.order)
            self.added += 1
            state = next_state
            if after_each is not None:
                after_each(t)

    def sample(self, batch_size: int, seed: int, *, dtypes: bool = False) -> Any:
        """Sample a batch and check its fields and shapes (and with ``dtypes``, their dtypes) against the contract."""
        try:
            with _time_limit(SAMPLE_SECONDS):
                batch = self.buffer.sample(batch_size, np.random.default_rng(seed))
        except _TooSlow:
            raise AssertionError(
                f"sample({batch_size}, rng) did not return within {SAMPLE_SECONDS:g} s, with {self.added} transitions "
                f"added to a buffer of capacity {self.capacity}: is its loop stuck? Check the condition that decides "
                "which drawn indices to keep: some index must pass it"
            ) from None
        except Exception as error:
            hint = ""
            if isinstance(error, IndexError):
                hint = (
                    ": an index past the end of the buffer's arrays. len(self) must stop at capacity, and "
                    "sampled indices must stay below it"
                )
            elif "high" in str(error) and "low" in str(error):
                hint = ": rng.integers(low, high) was called with an empty range"
            raise AssertionError(
                f"sample({batch_size}, rng) raised {type(error).__name__}: {error}, with {self.added} transitions "
                f"added to a buffer of capacity {self.capacity}{hint}"
            ) from error
        _check_batch(batch, batch_size, self.frame_shape, dtypes=dtypes)
        return batch

    def where(self, step: _Step) -> str:
        return f"episode {step.episode}, step {step.t}"


def _check_batch(batch: Any, batch_size: int, frame_shape: tuple[int, ...], *, dtypes: bool) -> None:
    """Fail unless ``batch`` has the fields and shapes of a replay Batch, and with ``dtypes``, its dtypes.

    Without ``dtypes`` a float copy of the frames passes as long as it still holds the
    pixel values 0-255: a wrong dtype costs only the checks about dtypes.
    """
    missing = [name for name in _FIELDS if not hasattr(batch, name)]
    if missing:
        raise AssertionError(
            f"sample must return a Batch(states, actions, rewards, next_states, terminated), got a "
            f"{type(batch).__name__} without {', '.join(missing)}"
        )
    stack_shape = (batch_size, STACK_SIZE, *frame_shape)
    for name in ("states", "next_states"):
        value = getattr(batch, name)
        if not isinstance(value, np.ndarray):
            raise AssertionError(f"batch.{name} must be a NumPy array, got {type(value).__name__}")
        if value.shape != stack_shape:
            raise AssertionError(
                f"batch.{name} must have shape (batch_size, stack_size, *frame_shape) = {stack_shape}, got {value.shape}"
            )
        pixels_kept = value.dtype == np.uint8 or not dtypes and np.array_equal(value, np.clip(np.round(value), 0, 255))
        if not pixels_kept:
            hint = (
                ": frames are kept as float, which takes 4 (float32) or 8 (float64) times the memory of uint8 (and "
                "were they scaled to [0, 1]?). Keep them as uint8 from 0 to 255; the network scales them itself"
                if np.issubdtype(value.dtype, np.floating)
                else ""
            )
            raise AssertionError(f"batch.{name} must be uint8, got {value.dtype}{hint}")
    for name, dtype in (("actions", np.int64), ("rewards", np.float32), ("terminated", np.float32)):
        value = getattr(batch, name)
        if not isinstance(value, np.ndarray) or value.shape != (batch_size,) or dtypes and value.dtype != dtype:
            got = (
                f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
            )
            raise AssertionError(
                f"batch.{name} must be a NumPy array of dtype {np.dtype(dtype).name} and shape ({batch_size},), "
                f"got {got}: convert it with .astype(np.{np.dtype(dtype).name})"
            )


def _neighbour_hint(player: _Player, step: _Step, field: str, got: float) -> str:
    """Name the transition added just before or after ``step`` if ``got`` is its value of ``field``."""
    in_order = sorted(player.steps.values(), key=lambda other: player.order[(other.episode, other.t)])
    at = in_order.index(step)
    for other in in_order[max(at - 1, 0) : at + 2]:
        if other is not step and getattr(other, field) == got != getattr(step, field):
            when = (
                "before" if player.order[(other.episode, other.t)] < player.order[(step.episode, step.t)] else "after"
            )
            return f" (that is the {field} of {player.where(other)}, added just {when} it: stored one slot off?)"
    return ""


def _check_zeros_before_start(
    player: _Player, name: str, codes: list[Code | str], want: list[Code], where: str, *, blame_truncation: bool
) -> None:
    """Fail if a stack holds a frame where the environment's stack had a zero frame, before the episode's start.

    With ``blame_truncation``, a crossing after a truncated episode says that a truncation ends it too.
    """
    episode = want[-1][0]
    for code, wanted in zip(codes, want):
        if wanted is None and code is not None:
            other = code[0] if isinstance(code, tuple) and code[0] != episode else None
            truncated = (
                f" Episode {other} ended with truncated=True: a truncation ends the episode too, so the next add "
                "starts a new one."
                if blame_truncation and other is not None and player.ended.get(other) == "truncated"
                else ""
            )
            raise AssertionError(
                f"your buffer stacks frames across an episode boundary: the {name} of {where} is {_describe(codes)}"
                + (f", with frames of episode {other}" if other is not None else "")
                + f", but should be {_describe(want)}. Frames from before an episode's first frame must be zeros, as "
                f"the environment's frame stack is after a reset.{truncated} {_LEGEND}"
            )


def _why_unwritten(player: _Player) -> str:
    """Tell a sample range past len(self) from an add that skips or reuses slots, by a second, larger sample."""
    cursor = (
        "add's cursor skips a slot or goes back to slot 0 too early: it must visit slots 0, 1, ..., capacity - 1 and "
        "only then wrap, cursor = (cursor + 1) % capacity"
    )
    if player.added >= player.capacity:  # every slot has been due for a write by now
        return f"After {player.added} adds every slot should hold a transition: {cursor}"
    if len(player.buffer) != player.added:
        return (
            f"len(buffer) is {len(player.buffer)} after {player.added} adds: it must count the transitions added "
            "(up to capacity), since sample draws among len(self) of them"
        )
    try:
        found = {
            (step.episode, step.t)
            for step in _named_rows(player, player.buffer.sample(2000, np.random.default_rng(99)))
        }
    except Exception:  # the second probe is a diagnosis only; the first finding stands
        found = set(player.steps)
    if set(player.steps) - found:
        return (
            "And some transitions added never come back, so some adds wrote into the same slot as an earlier one: "
            + cursor
        )
    return "Draw indices only among the transitions written so far, 0 to len(self) - 1"


def _check_one_episode(
    player: _Player, name: str, codes: list[Code | str], want: list[Code], where: str, *, blame_truncation: bool
) -> None:
    """Fail if a stack holds a frame of another episode where its own episode's frame belongs."""
    episode = want[-1][0]
    others = [code[0] for code in codes if isinstance(code, tuple) and code[0] != episode]
    if others:
        truncated = (
            f" Episode {others[0]} ended with truncated=True: a truncation ends the episode too, so the next add "
            "starts a new one."
            if blame_truncation and player.ended.get(others[0]) == "truncated"
            else ""
        )
        raise AssertionError(
            f"your buffer stacks frames across an episode boundary: the {name} of {where} is {_describe(codes)}, "
            f"with frames of episode {others[0]}, but should be {_describe(want)}.{truncated} {_LEGEND}"
        )


def _named_rows(player: _Player, batch: Any) -> list[_Step]:
    """The added transitions a batch's rows come from, by their next_state's newest frame (unknown rows left out)."""
    named = []
    for following in _decode(batch.next_states):
        frames = [code for code in following if code is not None and code in player.order]
        if frames:
            newest = max(frames, key=player.order.__getitem__)
            if newest in player.steps:
                named.append(player.steps[newest])
    return named


def _which_rows(player: _Player, batch: Any) -> list[_Step]:
    """Name the transition each sampled row comes from, by the newest frame of its next_state; return them.

    This judges only *which* transitions come back, not how their stacks are built
    (that is :func:`_check_rows`' job), so that a mistake in rebuilding stacks costs
    only the checks about stacks. It fails for an empty or never-written slot, an
    episode's first frame returned as a transition, and a stack that uses a slot
    overwritten after its transition was added.
    """
    context = f" (after {player.added} transitions into a buffer of capacity {player.capacity})"
    found = []
    for state, following in zip(_decode(batch.states), _decode(batch.next_states)):
        frames = [code for code in following if code is not None]
        if not frames and any(code is not None for code in state):
            raise AssertionError(
                f"a sampled next_state is all zeros while its state, {_describe(state)}, is not: store each "
                f"next_state in the same slot as its state, and read both from that slot {_LEGEND}"
            )
        if not frames:
            raise AssertionError(
                f"sample returned an empty slot, one that was never written: its next_state is all zeros{context}. "
                + _why_unwritten(player)
            )
        if any(code == "?" or code not in player.order for code in frames):
            raise AssertionError(
                f"sample returned a transition that was never added{context}: its next_state {_describe(following)} "
                f"holds a frame no add ever stored. Is it reading slots that were never written? {_LEGEND}"
            )
        newest = max(frames, key=player.order.__getitem__)  # the next state's newest frame, even in a shuffled stack
        before = state[-1]
        just_before = before is None or before in player.order and player.order[before] == player.order[newest] - 1
        if newest[1] == 0 and just_before:
            raise AssertionError(
                f"sample returned the first frame of episode {newest[0]} as if it were a transition: its next_state "
                f"is {_describe(following)}. An episode's first slot holds only the frame the reset returned; sample "
                f"only slots that end a transition {_LEGEND}"
            )
        if newest[1] == 0 and before == newest:
            raise AssertionError(
                f"a sampled state and its next_state are the same stack, {_describe(state)}: store the next_state "
                "passed to add (not the state again), or, rebuilding stacks, read the next_state one frame after the "
                f"state {_LEGEND}"
            )
        if newest[1] == 0:
            raise AssertionError(
                f"state and next_state are not one step apart: a sampled state ends with frame {before}, its "
                f"next_state with frame {newest}. next_state is the stack that follows state, one frame later: "
                f"is it rebuilt from the wrong index? {_LEGEND}"
            )
        step = player.steps[newest]
        for name, codes, want in (
            ("state", state, _expected_stack(step.episode, step.t - 1)),
            ("next_state", following, _expected_stack(step.episode, step.t)),
        ):
            # Only where the episode's own frames belong: frames before its start are _check_rows' business.
            later = [
                code
                for code, wanted in zip(codes, want)
                if wanted is not None and code in player.order and player.order[code] > player.order[newest]
            ]
            if later:
                raise AssertionError(
                    f"the {name} of {player.where(step)} is {_describe(codes)}: it holds frame {later[0]}, which was "
                    "added after that transition, so a slot it needed had been overwritten. Sample only transitions "
                    f"whose frames are all still held {_LEGEND}"
                )
        found.append(step)
    return found


def _check_order_and_offset(player: _Player, rows: list[tuple[_Step, list, list]]) -> None:
    """Fail at findings that have one cause, over every row: a reversed stack, a state one index off."""
    for step, state, following in rows:
        where = player.where(step)
        for name, got, want in (
            ("state", state, _expected_stack(step.episode, step.t - 1)),
            ("next_state", following, _expected_stack(step.episode, step.t)),
        ):
            if got[::-1] == want != got:
                raise AssertionError(
                    f"the {name} of {where} comes out newest frame first, {_describe(got)}: keep the oldest "
                    f"frame first and the newest last, as the environment does {_LEGEND}"
                )
        if state == following:
            raise AssertionError(
                f"state and next_state of {where} are the same stack, {_describe(state)}: the state is the stack the "
                "agent acted on, one step before next_state (is it rebuilt from the wrong index?)"
            )
    # A state one index off shows best within an episode; rows at an episode's start would blame its boundary.
    for step, state, _ in sorted(rows, key=lambda row: -row[0].t):
        before = state[-1]
        if isinstance(before, tuple) and before[0] == step.episode and before[1] != step.t - 1:
            raise AssertionError(
                f"state and next_state are not one step apart: a sampled state ends with frame {before}, its "
                f"next_state with frame {(step.episode, step.t)}. next_state is the stack that follows state, one "
                f"frame later: is it rebuilt from the wrong index? {_LEGEND}"
            )


def _check_rows(player: _Player, batch: Any) -> list[_Step]:
    """Fail at the first sampled row that is not exactly a transition that was added; return the rows' steps."""
    found = _which_rows(player, batch)
    rows = list(zip(found, _decode(batch.states), _decode(batch.next_states)))
    # Unambiguous findings first, over every row, so that no later check blames a boundary for them.
    _check_order_and_offset(player, rows)
    # Blame truncation for a crossing only if no stack crosses the end of a terminated episode too.
    blame_truncation = not any(
        isinstance(code, tuple) and code[0] != step.episode and player.ended.get(code[0]) == "terminated"
        for step, state, following in rows
        for code in state + following
    )
    for row, (step, state, following) in enumerate(rows):
        where = player.where(step)
        expected = {
            "state": _expected_stack(step.episode, step.t - 1),
            "next_state": _expected_stack(step.episode, step.t),
        }
        got = {"state": state, "next_state": following}
        for name, want in expected.items():
            if got[name] == [(step.episode, 0) if code is None else code for code in want] != want:
                raise AssertionError(
                    f"the {name} of {where} is {_describe(got[name])}, padded with copies of the episode's first "
                    f"frame; the environment pads with zero frames after a reset, so the buffer must too: "
                    f"{_describe(want)} {_LEGEND}"
                )
            _check_zeros_before_start(player, name, got[name], want, where, blame_truncation=blame_truncation)
            _check_one_episode(player, name, got[name], want, where, blame_truncation=blame_truncation)
            if got[name] != want:
                raise AssertionError(
                    f"the {name} of {where} should be {_describe(want)}, as it was added, but is "
                    f"{_describe(got[name])} {_LEGEND}"
                )
        for field, value in (("action", batch.actions[row]), ("reward", batch.rewards[row])):
            if value != getattr(step, field):
                raise AssertionError(
                    f"the {field} of {where} came back as {value}, but {getattr(step, field)} was added"
                    f"{_neighbour_hint(player, step, field, value)}: store each {field} with its own transition"
                )
        _check_terminated(step, float(batch.terminated[row]), where)
    return found


def _check_terminated(step: _Step, terminated: float, where: str) -> None:
    """Fail if the sampled ``terminated`` flag of ``step`` is not the one that was added."""
    if terminated not in (0.0, 1.0):
        raise AssertionError(f"terminated must be 0.0 or 1.0, got {terminated} for {where}")
    if terminated == 1.0 and step.truncated:
        raise AssertionError(
            f"terminated is 1.0 for {where}, the last step of an episode that was only truncated (cut short by "
            "a time limit): store `terminated` alone, not `terminated or truncated`. After a truncation the "
            "game could have gone on, so the target must still bootstrap"
        )
    if terminated == 1.0 and not step.terminated:
        raise AssertionError(
            f"terminated is 1.0 for {where}, a step that did not end the episode (episode {step.episode} ended "
            f"at step {step.length}): the flag is attached to the wrong transition"
        )
    if terminated == 0.0 and step.terminated:
        raise AssertionError(
            f"terminated is 0.0 for {where}, the step that ended the game: its target would bootstrap past the "
            "end. Store the `terminated` flag with the transition it came with"
        )


def _check_all_returned(player: _Player, found: list[_Step], wanted: list[tuple[int, int]], why: str) -> None:
    returned = {(step.episode, step.t) for step in found}
    missing = [key for key in wanted if key not in returned]
    if missing:
        listed = ", ".join(f"{player.where(player.steps[key])}" for key in missing[:5])
        more = "..." if len(missing) > 5 else ""
        raise AssertionError(f"in {len(found)} draws, sample never returned {listed}{more}: {why}")


def _per_transition_bytes(player: _Player) -> float:
    try:
        nbytes = player.buffer.nbytes
    except AttributeError as error:
        raise AssertionError("your buffer needs an `nbytes` property: the bytes its arrays hold") from error
    return nbytes / player.capacity


def _episode_lengths(seed: int, count: int, longest: int) -> list[int]:
    return np.random.default_rng(seed).integers(1, longest + 1, size=count).tolist()


def check_buffer_batch_types(buffer_class: type, *, batch_size: int = 7) -> None:
    """Check that a new buffer is empty and that a sampled batch has the contract's fields, dtypes and shapes.

    Args:
        buffer_class: The student's buffer class.
        batch_size: How many transitions to sample.

    Raises:
        AssertionError: If ``len`` is wrong, or a field is missing or of the wrong dtype or shape.
    """
    player = _Player(buffer_class, capacity=50)
    if len(player.buffer) != 0:
        raise AssertionError(f"a new buffer must be empty, len(buffer) == 0, got {len(player.buffer)}")
    player.play(0, 10)
    if len(player.buffer) != 10:
        raise AssertionError(f"after 10 transitions len(buffer) must be 10, got {len(player.buffer)}")
    player.sample(batch_size, seed=0, dtypes=True)


def check_buffer_stores_uint8(buffer_class: type) -> None:
    """Check that a buffer of 84x84 frames holds uint8 data: at most two uint8 stacks per transition.

    Args:
        buffer_class: The student's buffer class.

    Raises:
        AssertionError: If frames are kept as float32 or float64 (4 or 8 times the memory),
            or the batch is not uint8.
    """
    player = _Player(buffer_class, capacity=10, frame_shape=ATARI_FRAME_SHAPE)
    player.play(0, 3)
    player.sample(4, seed=0, dtypes=True)
    frame = int(np.prod(ATARI_FRAME_SHAPE))
    uint8_stacks = 2 * STACK_SIZE * frame
    per_transition = _per_transition_bytes(player)
    if per_transition > uint8_stacks + _METADATA_ALLOWANCE:
        kind = ""
        if per_transition >= 8 * uint8_stacks:
            kind = "float64"
        elif per_transition >= 4 * uint8_stacks:
            kind = "float32"
        raise AssertionError(
            f"your buffer holds {per_transition:,.0f} bytes per transition, more than two uint8 stacks need "
            f"(2 x {STACK_SIZE} x 84 x 84 x 1 B = {uint8_stacks:,} B)"
            + (f": its frames are kept as {kind}. Keep them as uint8 (dtype=np.uint8)" if kind else "")
        )


def check_buffer_stores_each_frame_once(buffer_class: type) -> None:
    """Check that a buffer of 84x84 frames spends about one frame per transition, not whole stacks.

    Args:
        buffer_class: The student's buffer class.

    Raises:
        AssertionError: If the buffer keeps stacks, or keeps its frames as float.
    """
    player = _Player(buffer_class, capacity=10, frame_shape=ATARI_FRAME_SHAPE)
    frame = int(np.prod(ATARI_FRAME_SHAPE))
    per_transition = _per_transition_bytes(player)
    if per_transition > frame + _METADATA_ALLOWANCE:
        if per_transition >= 4 * frame and per_transition < 2 * frame * STACK_SIZE:
            cause = "its frames are kept as float32 or float64: keep them as uint8 (dtype=np.uint8)"
        else:
            cause = "store only the newest frame of each next_state, and rebuild the stacks when sampling"
        raise AssertionError(
            f"your buffer holds {per_transition:,.0f} bytes per transition, but one 84 x 84 uint8 frame is "
            f"{frame:,} B (plus a few bytes for the action, reward and flags): {cause}"
        )


def check_buffer_never_returns_unwritten_slots(buffer_class: type, *, capacity: int = 50, seed: int = 0) -> None:
    """Check that a large buffer holding a few transitions samples only those, each of them.

    Args:
        buffer_class: The student's buffer class.
        capacity: The buffer's capacity, well above the 5 transitions added.
        seed: Seeds the sampling.

    Raises:
        AssertionError: If an unwritten (all-zero) or never-added slot comes back, or ``len`` is not 5.
    """
    player = _Player(buffer_class, capacity)
    player.play(0, 5)
    if len(player.buffer) != 5:
        raise AssertionError(
            f"after 5 transitions into a buffer of capacity {capacity}, len(buffer) must be 5, got {len(player.buffer)}"
        )
    found = _which_rows(player, player.sample(500, seed))
    _check_all_returned(player, found, list(player.steps), "every transition added must be able to come back")


def check_buffer_samples_uniformly(buffer_class: type, *, num_transitions: int = 10, seed: int = 0) -> None:
    """Check that each held transition is drawn with probability 1/N, and that only ``rng`` drives the draws.

    Args:
        buffer_class: The student's buffer class.
        num_transitions: N, the transitions added (in two episodes).
        seed: Seeds the sampling.

    Raises:
        AssertionError: If a transition is never drawn (the newest one: an off-by-one),
            draws are far from uniform, or the same seed gives different batches.
    """
    player = _Player(buffer_class, capacity=10 * num_transitions)
    first = num_transitions // 2
    player.play(0, first, end="terminated")
    player.play(1, num_transitions - first, end=None)
    draws = 500 * num_transitions
    found = _which_rows(player, player.sample(draws, seed))
    counts = {key: 0 for key in player.steps}
    for step in found:
        counts[(step.episode, step.t)] += 1
    newest = (1, num_transitions - first)
    if counts[newest] == 0:
        raise AssertionError(
            f"in {draws} draws from {num_transitions} transitions, sample never returned the newest one: the sampled "
            "index range stops one short. rng.integers(low, high) never returns high, so high must be len(self)"
        )
    _check_all_returned(player, found, list(player.steps), "uniform sampling draws each held transition")
    # Each count is Binomial(draws, 1/N): mean 500, sd ~21 for N = 10; a 7-sd band cannot fail by chance.
    expected = draws / num_transitions
    band = 7 * np.sqrt(draws * (1 / num_transitions) * (1 - 1 / num_transitions))
    far = {key: count for key, count in counts.items() if abs(count - expected) > band}
    if far:
        listed = "; ".join(f"{player.where(player.steps[key])}: {count} times" for key, count in list(far.items())[:4])
        raise AssertionError(
            f"sampling is not uniform: each of the {num_transitions} transitions should come back with probability "
            f"1/{num_transitions}, about {expected:.0f} times in {draws} draws, but {listed}. Give every held "
            "transition the same chance, e.g. rng.integers(0, len(self), size=batch_size) for a buffer of stacks"
        )
    again = [player.sample(16, seed=seed + 1) for _ in range(2)]
    if any(not np.array_equal(a, b) for a, b in zip(again[0], again[1])):
        raise AssertionError(
            "two calls to sample with generators seeded alike returned different batches: draw the indices with "
            "the `rng` passed to sample (rng.integers), not with np.random or a generator of your own"
        )


def check_buffer_returns_exact_transitions(buffer_class: type, *, seed: int = 0) -> None:
    """Check that every sampled row is exactly a transition that was added: stacks, action, reward, terminated.

    Args:
        buffer_class: The student's buffer class.
        seed: Seeds the episode lengths and the sampling.

    Raises:
        AssertionError: Naming the first wrong row: a next_state rebuilt from the
            wrong index, an action or reward one slot off, a terminal flag on the
            wrong transition, a stack in the wrong order.
    """
    player = _Player(buffer_class, capacity=200)
    lengths = _episode_lengths(seed, count=5, longest=9)
    for episode, length in enumerate(lengths):
        player.play(episode, length, end="terminated" if episode < len(lengths) - 1 else None)
    _check_rows(player, player.sample(1_000, seed))


def check_buffer_keeps_truncated_apart(buffer_class: type, *, seed: int = 0) -> None:
    """Check that a truncated episode stores ``terminated`` = 0 and still ends the episode.

    Args:
        buffer_class: The student's buffer class.
        seed: Seeds the episode lengths and the sampling.

    Raises:
        AssertionError: If a truncation is stored as ``terminated``, or the episode after a
            truncation is stacked onto it.
    """
    player = _Player(buffer_class, capacity=200)
    lengths = _episode_lengths(seed + 1, count=6, longest=6)
    for episode, length in enumerate(lengths):
        player.play(episode, length, end="truncated" if episode % 2 == 0 else "terminated")
    found = _check_rows(player, player.sample(1_000, seed))
    # The last steps of all episodes but the newest (an off-by-one in sampling is the uniform check's business).
    last_steps = [(episode, length) for episode, length in enumerate(lengths)][:-1]
    _check_all_returned(player, found, last_steps, "the last step of every episode must be able to come back")


def check_buffer_stacks_stop_at_episode_start(buffer_class: type, *, seed: int = 0) -> None:
    """Check that across many short episodes no stack ever holds a frame of another episode.

    Episodes of 1 to 5 steps end by ``terminated`` or ``truncated`` at random; each
    sampled stack must be padded with zero frames before its episode's first frame.

    Args:
        buffer_class: The student's buffer class.
        seed: Seeds the episodes and the sampling.

    Raises:
        AssertionError: If a stack crosses an episode boundary, pads with anything but
            zeros, or an episode's first frame is returned as a transition.
    """
    rng = np.random.default_rng(seed)
    player = _Player(buffer_class, capacity=300)
    for episode in range(30):
        player.play(episode, int(rng.integers(1, 6)), end=str(rng.choice(["terminated", "truncated"])))
    found = _check_rows(player, player.sample(1_000, seed))
    starts = [key for key in player.steps if key[1] == 1]
    _check_all_returned(player, found, starts[:10], "the first step of each episode must be able to come back")


def check_buffer_sample_returns_copies(buffer_class: type, *, capacity: int = 6) -> None:
    """Check that the buffer copies what ``add`` gets, and that a batch does not change after later calls.

    Args:
        buffer_class: The student's buffer class.
        capacity: The buffer's capacity (more than 4); later adds overwrite every slot.

    Raises:
        AssertionError: If the buffer keeps the caller's arrays, or returns views into
            its storage (or reuses one output array) that later ``add`` or ``sample``
            calls overwrite.
    """
    player = _Player(buffer_class, capacity)
    player.play(0, capacity - 1, end="terminated", scribble=True)
    batch = player.sample(8, seed=0)
    for name in ("states", "next_states"):
        if np.any(np.all(getattr(batch, name) == _SCRIBBLE, axis=tuple(range(2, getattr(batch, name).ndim)))):
            raise AssertionError(
                "your buffer keeps the very arrays passed to add, not copies: when the caller reuses them (as an "
                "environment may), the stored transitions change. Copy them into the buffer's own arrays "
                "(self.states[slot] = state copies; a list that keeps `state` does not)"
            )
    _which_rows(player, batch)
    saved = {name: np.array(getattr(batch, name), copy=True) for name in _FIELDS}
    player.play(1, 2 * capacity, end=None)
    player.sample(8, seed=1)
    changed = [name for name in _FIELDS if not np.array_equal(saved[name], getattr(batch, name))]
    if changed:
        raise AssertionError(
            f"a batch returned by sample changed ({', '.join(changed)}) after later calls to add and sample: sample "
            "must return new arrays, not views of the buffer's storage (a slice such as self.states[i:j] is a view, "
            "self.states[indices] a copy) nor an output array it reuses"
        )


def check_buffer_len_stops_at_capacity(buffer_class: type, *, capacity: int = 8) -> None:
    """Check that ``len`` counts the transitions held, up to capacity and no further, through a wraparound.

    One long episode of ``3 * capacity + 3`` steps is added; after step ``t``,
    ``len(buffer)`` must be ``min(t, capacity)``.

    Args:
        buffer_class: The student's buffer class.
        capacity: The buffer's capacity (more than 4).

    Raises:
        AssertionError: If ``len`` keeps growing past capacity or is otherwise wrong,
            or ``add`` fails once the buffer is full (no wraparound).
    """
    player = _Player(buffer_class, capacity)
    if len(player.buffer) != 0:
        raise AssertionError(f"a new buffer must be empty, len(buffer) == 0, got {len(player.buffer)}")

    def check_len(t: int) -> None:
        size = len(player.buffer)
        if size > capacity:
            raise AssertionError(
                f"len(buffer) is {size} after {t} transitions into a buffer of capacity {capacity}: it must stop "
                "growing at capacity, since the buffer never holds more (a buffer of stacks: size = min(size + 1, "
                "capacity); a buffer of frames: take away each transition that an add overwrites)"
            )
        if size != min(t, capacity):
            raise AssertionError(
                f"len(buffer) must count the transitions held, {min(t, capacity)} after {t} transitions into a "
                f"buffer of capacity {capacity}, got {size}"
            )

    player.play(0, 3 * capacity + 3, end=None, after_each=check_len)


def check_buffer_wraps_around(buffer_class: type, *, capacity: int = 10, seed: int = 0) -> None:
    """Check that a full buffer overwrites its oldest transitions and samples all the newest ones it holds.

    First one long episode of ``T = 2 * capacity + 5`` steps: only steps after
    ``T - capacity`` can still be held, and every step after ``T - capacity + 4``
    (whose four older frames are held too, even by a buffer that stores each frame
    once) must come back. Then many short episodes, wrapping several times: every
    sampled row must be among the newest ``capacity`` transitions. In both, no stack
    may use a slot that was overwritten after its transition was added.

    Args:
        buffer_class: The student's buffer class.
        capacity: The buffer's capacity (more than 4).
        seed: Seeds the second part's episodes and the sampling.

    Raises:
        AssertionError: If ``add`` fails once full, an overwritten transition comes back
            (the wrong slot was overwritten), or held ones never do (sampling only the
            slots written since the cursor wrapped, or an off-by-one).
    """
    player = _Player(buffer_class, capacity)
    total = 2 * capacity + 5
    player.play(0, total, end=None)
    if len(player.buffer) != capacity:
        raise AssertionError(
            f"after {total} transitions into a buffer of capacity {capacity}, len(buffer) is {len(player.buffer)}, "
            f"not {capacity}: sample draws among len(self) transitions, so every held one must be counted"
        )
    found = _which_rows(player, player.sample(100 * capacity, seed))
    oldest = total - capacity + 1  # the oldest step a buffer of whole stacks still holds
    stale = sorted({step.t for step in found if step.t < oldest})
    if stale:
        raise AssertionError(
            f"sample returned step {stale[0]} of a {total}-step episode, but a buffer of capacity {capacity} holds "
            f"only the newest {capacity} transitions (steps {oldest} to {total}): each add must overwrite the "
            "oldest slot, and the cursor must go back to slot 0 after the last one"
        )
    _check_all_returned(
        player,
        found,
        [(0, t) for t in range(total - capacity + STACK_SIZE + 1, total + 1)],
        f"after wraparound the buffer holds {len(player.buffer)} transitions and every one must be able to come "
        "back. Sample among all len(self) slots, not only those written since the cursor wrapped (and "
        "rng.integers(low, high) never returns high)",
    )
    player = _Player(buffer_class, capacity)
    lengths = _episode_lengths(seed + 2, count=3 * capacity, longest=3)
    for episode, length in enumerate(lengths):
        player.play(episode, length, end="terminated" if episode < len(lengths) - 1 else None)
    found = _which_rows(player, player.sample(100 * capacity, seed + 1))
    newest = sorted(player.steps, key=player.order.__getitem__)[-capacity:]
    stale_steps = [step for step in found if (step.episode, step.t) not in newest]
    if stale_steps:
        raise AssertionError(
            f"sample returned {player.where(stale_steps[0])} after {player.added} transitions into a buffer of "
            f"capacity {capacity}, but it is older than the newest {capacity}: it should have been overwritten. "
            "Each add must overwrite the oldest slot"
        )
