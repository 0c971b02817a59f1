"""The classic-bug catalogue: each classic DQN mistake (and a few beyond them) as a student makes it.

Every :class:`Mistake` is one edit of one answer cell of a filled-in student
notebook. ``tests/submissions/build.py`` writes each as a hand-in,
``tests/submissions/mistakes/<name>/<assignment>/<assignment>.ipynb``, and
``tests/test_bug_catalogue.py`` grades them all with ``python -m dqn_helpers grade``:
each must lose exactly the test cells listed, keep every other point, and show the
message in the visible output. ``docs/bug_catalogue.md`` is the table of them, for
instructors (``python -m tests.submissions.build`` writes it too).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    """One classic mistake, as an edit of a correct answer cell."""

    name: str  # folder and student name
    bug: str  # the mistake in plain words, as docs/bug_catalogue.md shows it
    assignment: str
    exercise: str  # grade_id of the answer cell it sits in
    old: str | tuple[str, ...]  # text of the correct answer (or several) ...
    new: str | tuple[str, ...]  # ... and what the student wrote instead
    lost: tuple[str, ...]  # the test cells it fails (later exercises that call it fail too)
    message: str  # what the visible check says, in part

    @property
    def edits(self) -> list[tuple[str, str]]:
        """The (old, new) replacements that make the mistake."""
        pairs = (self.old, self.new) if isinstance(self.old, tuple) else ((self.old,), (self.new,))
        return list(zip(*pairs, strict=True))


MISTAKES = [
    # --- TD target and loss ---------------------------------------------------------------------
    Mistake(
        "target_ignores_terminated",
        "The target bootstraps past the end of the game: `terminated` is ignored.",
        "01_q_learning",
        "td_targets",
        "gamma * not_over * best_next",
        "gamma * best_next",
        ("td_targets_terminal",),
        "your target ignores `terminated`",
    ),
    Mistake(
        "q_learning_stops_at_truncation",
        "Time-limit truncation is treated like a real terminal state.",
        "01_q_learning",
        "q_learning",
        "np.array([terminated])",
        "np.array([terminated or truncated])",
        ("q_learning_bootstraps",),
        "treats a time-limit truncation",
    ),
    Mistake(
        "loop_stores_truncation_as_terminal",
        "Time-limit truncation is treated like a real terminal state.",
        "05_training_loop",
        "train_loop",
        "next_state, terminated, truncated)",
        "next_state, terminated or truncated, truncated)",
        ("train_loop_acts_and_stores",),
        "not `terminated or truncated`",
    ),
    Mistake(
        "target_from_online_network",
        "The target is computed with the online network instead of the target network.",
        "04_q_network",
        "make_train_step",
        "next_q_target = target_network(next_states",
        "next_q_target = online_network(next_states",
        ("make_train_step_update",),
        "targets come from the online network",
    ),
    Mistake(
        "gradients_reach_the_target",
        "Gradients reach the target network.",
        "04_q_network",
        "make_train_step",
        (
            "        # 1. Targets, outside the tape: nothing here gets a gradient.\n"
            "        next_q_target = target_network(next_states, training=False)\n"
            "        next_q_online = online_network(next_states, training=False) if double_dqn else None\n"
            "        targets = td_targets(rewards, terminated, next_q_target, gamma, next_q_online)\n"
            "        # 2. The loss, recorded by the tape.\n"
            "        with tf.GradientTape() as tape:\n",
            "variables = online_network.trainable_variables\n",
        ),
        (
            "        with tf.GradientTape() as tape:\n"
            "            next_q_target = target_network(next_states, training=False)\n"
            "            next_q_online = online_network(next_states, training=False) if double_dqn else None\n"
            "            targets = td_targets(rewards, terminated, next_q_target, gamma, next_q_online)\n",
            "variables = online_network.trainable_variables + target_network.trainable_variables\n",
        ),
        ("make_train_step_update", "make_train_step_target_network"),
        "gradients reached the target network",
    ),
    Mistake(
        "target_synced_every_step",
        "The target network is synced every step.",
        "05_training_loop",
        "train_loop",
        "        if step % config.target_update_interval == 0:\n            learner.sync_target()",
        "        learner.sync_target()",
        ("train_loop_target_sync",),
        "every step",
    ),
    Mistake(
        "loss_on_max_q",
        "The loss uses `max_a Q(s, a)` instead of `Q(s, a_taken)`.",
        "04_q_network",
        "q_of_actions",
        "tf.gather(q_values, actions, axis=1, batch_dims=1)",
        "tf.reduce_max(q_values, axis=1)",
        ("q_of_actions_values",),
        "returns max_a Q(s, a)",
    ),
    Mistake(
        "max_over_batch_axis",
        "A max runs over the batch axis instead of the action axis.",
        "01_q_learning",
        "td_targets",
        "np.max(next_q_values, axis=1)",
        "np.max(next_q_values, axis=0)",
        ("td_targets_values", "td_targets_terminal"),
        "batch (axis 0)",
    ),
    Mistake(
        "argmax_over_batch_axis",
        "An argmax runs over the batch axis instead of the action axis (Double DQN).",
        "04_q_network",
        "td_targets",
        "tf.argmax(next_q_online, axis=1)",
        "tf.argmax(next_q_online, axis=0)",
        ("td_targets_double",),
        "argmax runs over the batch (axis 0)",
    ),
    Mistake(
        "loss_broadcasts_to_batch_by_batch",
        "Shapes broadcast `(B, 1) - (B,)` into a `(B, B)` loss that still trains, badly.",
        "04_q_network",
        "make_train_step",
        "huber_loss(targets - q_taken)",
        "huber_loss(targets[:, None] - q_taken)",
        ("make_train_step_update", "make_train_step_overfits"),
        "(B, 1) array minus a (B,) array",
    ),
    Mistake(
        "double_dqn_chooses_with_target",
        "Double DQN picks the next action with the target network instead of the online one.",
        "04_q_network",
        "td_targets",
        "tf.argmax(next_q_online, axis=1)",
        "tf.argmax(next_q_target, axis=1)",
        ("td_targets_double",),
        "picks the next action with the target network's argmax",
    ),
    # --- data -------------------------------------------------------------------------------------
    Mistake(
        "frames_kept_as_float",
        "Frames are kept as floats (four to eight times the memory).",
        "02_preprocessing",
        "preprocess_frame",
        "np.round(gray).astype(np.uint8)",
        "np.round(gray)",
        ("preprocess_frame_output",),
        "not uint8",
    ),
    Mistake(
        "replay_stores_float32",
        "Frames are kept as float32 in the replay buffer (four times the memory).",
        "03_replay",
        "StackReplayBuffer",
        "stack_shape), dtype=np.uint8)",
        "stack_shape), dtype=np.float32)",
        ("StackReplayBuffer_stores_uint8",),
        "kept as float",
    ),
    Mistake(
        "network_scales_twice",
        "Frames are scaled to [0, 1] twice.",
        "04_q_network",
        "build_q_network",
        "layers.Rescaling(1.0 / 255.0",
        "layers.Rescaling(1.0 / 255.0 / 255.0",
        ("build_q_network_paper",),
        "scales the frames twice",
    ),
    Mistake(
        "stack_keeps_previous_episode",
        "The frame stack carries frames from the previous episode after a reset.",
        "02_preprocessing",
        "FrameStacker",
        "        self.frames = np.zeros((self.stack_size, *frame.shape), dtype=np.uint8)",
        "        if self.frames is None:\n            self.frames = np.zeros((self.stack_size, *frame.shape), dtype=np.uint8)",
        ("FrameStacker_reset",),
        "frames from the previous episode are still in the stack after reset",
    ),
    Mistake(
        "resize_axes_swapped",
        "Preprocessing resizes with the axes swapped.",
        "02_preprocessing",
        "preprocess_frame",
        "cv2.resize(gray, (width, height)",
        "cv2.resize(gray, (height, width)",
        ("preprocess_frame_geometry",),
        "cv2.resize takes its size as (width, height)",
    ),
    Mistake(
        "replay_samples_unwritten_slots",
        "The replay buffer hands out slots that were never written.",
        "03_replay",
        "StackReplayBuffer",
        "rng.integers(0, len(self), size=batch_size)",
        "rng.integers(0, self.capacity, size=batch_size)",
        ("StackReplayBuffer_exact_transitions", "StackReplayBuffer_never_returns_unwritten_slots"),
        "never written",
    ),
    Mistake(
        "replay_stacks_across_episodes",
        "The replay buffer stacks frames across an episode boundary.",
        "03_replay",
        "FrameReplayBuffer",
        "range(min(position, self.stack_size - 1) + 1)",
        "range(self.stack_size)",
        ("FrameReplayBuffer_episode_start",),
        "across an episode boundary",
    ),
    # --- loop -------------------------------------------------------------------------------------
    Mistake(
        "epsilon_passes_its_floor",
        "Epsilon never settles at its floor: the schedule is not clamped.",
        "05_training_loop",
        "linear_schedule",
        "min(step / duration, 1.0)",
        "step / duration",
        ("linear_schedule_holds_its_floor",),
        "past the floor",
    ),
    Mistake(
        "target_is_the_online_network",
        "The target network is the same object as the online network (assigned, not copied).",
        "04_q_network",
        "copy_network",
        "copy = keras.models.clone_model(network)",
        "copy = network",
        ("copy_network_separate",),
        "assigned, not copied",
    ),
    Mistake(
        "trains_before_learning_starts",
        "Training starts before the buffer holds enough transitions.",
        "05_training_loop",
        "train_loop",
        "if step >= config.learning_starts and step",
        "if step",
        ("train_loop_learns",),
        "must wait until the buffer holds config.learning_starts",
    ),
    Mistake(
        "next_state_not_carried_forward",
        "The next state is not carried forward (`state = next_state` missing).",
        "05_training_loop",
        "train_loop",
        "        state = next_state\n",
        "",
        ("train_loop_acts_and_stores", "train_loop_epsilon", "train_loop_learns", "train_loop_target_sync"),
        "`state = next_state`",
    ),
    # --- beyond the classic list -------------------------------------------------------------------
    Mistake(
        "terminal_mask_inverted",
        "The terminal mask is inverted: it bootstraps only where the game ended.",
        "01_q_learning",
        "td_targets",
        "1.0 - np.asarray(terminated, dtype=np.float64)",
        "np.asarray(terminated, dtype=np.float64)",
        ("td_targets_values", "td_targets_terminal"),
        "inverted",
    ),
    Mistake(
        "greedy_with_argmin",
        "The greedy action is the argmin of the Q-values.",
        "01_q_learning",
        "epsilon_greedy",
        "np.argmax(q_values)",
        "np.argmin(q_values)",
        ("epsilon_greedy_is_greedy", "epsilon_greedy_explores"),
        "argmin instead of argmax",
    ),
    Mistake(
        "q_update_adds_the_target",
        "The Q-learning update adds alpha * target instead of moving Q toward it.",
        "01_q_learning",
        "q_learning",
        "alpha * (target - q_table[state, action])",
        "alpha * (target)",
        ("q_learning_bootstraps", "q_learning_optimal_path"),
        "keeps growing: is alpha * target added",
    ),
    Mistake(
        "q_target_discounts_twice",
        "The Q-learning target discounts the next state's value twice (gamma squared).",
        "01_q_learning",
        "q_learning",
        "q_table[[next_state]], gamma)[0]",
        "q_table[[next_state]], gamma**2)[0]",
        ("q_learning_bootstraps",),
        "should settle at 1 / (1 - gamma) = 2",
    ),
    Mistake(
        "hand_targets_copied_from_the_script",
        'Targets worked out by hand copy the script\'s -1 for a last step (the comparison says "agree").',
        "07_debugging",
        "targets_by_hand",
        "0.0 + 0.99 * 2.0, 1.0, 0.0",
        "0.0 + 0.99 * 2.0, -1.0, 0.0",
        ("targets_by_hand_check",),
        "-1 is what the script's compute_targets gives a last step",
    ),
    Mistake(
        "huber_is_squared_error",
        "The Huber loss is the squared error everywhere (no clipping of large errors).",
        "01_q_learning",
        "huber_loss",
        "np.where(absolute <= delta, 0.5 * np.square(errors), delta * (absolute - 0.5 * delta))",
        "0.5 * np.square(errors)",
        ("huber_loss_values",),
        "quadratic everywhere",
    ),
    Mistake(
        "skip_ignores_truncated",
        "Frame skipping goes on after the game was truncated.",
        "02_preprocessing",
        "skip_and_max",
        "if terminated or truncated:",
        "if terminated:",
        ("skip_and_max_reward_and_end",),
        "`truncated`",
    ),
]
