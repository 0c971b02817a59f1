"""Exploration schedules, counted in agent steps (one step = one action = 4 frames)."""

from __future__ import annotations

__all__ = ["linear_schedule"]


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """Interpolate linearly from ``start`` to ``end`` over ``duration`` steps, then hold.

    Nature DQN anneals epsilon from 1.0 to 0.1 over the first million agent steps
    and keeps it at 0.1 afterwards; the schedule is a function of the global step,
    never of the episode count.

    Args:
        start: Value at step 0.
        end: Value from step ``duration`` on.
        duration: Agent steps the interpolation takes.
        step: The current agent step (>= 0).

    Returns:
        The scheduled value.

    Raises:
        ValueError: If ``duration`` is not positive or ``step`` is negative.

    Example:
        >>> linear_schedule(1.0, 0.1, 1_000_000, 500_000)
        0.55
        >>> linear_schedule(1.0, 0.1, 1_000_000, 2_000_000)
        0.1
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    fraction = min(step / duration, 1.0)
    return round(start + fraction * (end - start), 12)
