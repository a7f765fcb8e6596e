"""The gradual sparsity schedule of Zhu & Gupta (2017), equation (1).

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3,   t in {t0, t0 + dt, ..., t0 + n dt}

The target is only evaluated on the pruning steps and held constant in between (masks change only
on those steps). Before t0 nothing is pruned; from t0 + n dt on the target is exactly s_f and the
masks are frozen.

Step convention used across gradprune: ``step`` is the 0-based index of the optimizer step that
has just been taken (the training loop calls ``pruner.step(step)`` right after ``optimizer.step()``).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CubicSchedule:
    """Target sparsity as a function of the training step.

    Args:
        initial_sparsity: s_i, the target at the first pruning step t0 (often 0).
        final_sparsity: s_f, the target reached at t0 + n * dt and kept afterwards.
        begin_step: t0, the first pruning step.
        frequency: dt, optimizer steps between two mask updates (the paper: 100 to 1000).
        n_updates: n, the number of intervals; there are n + 1 pruning steps t0, ..., t0 + n dt.
        exponent: 3 in the paper; 1 gives a linear ramp.
    """

    initial_sparsity: float
    final_sparsity: float
    begin_step: int
    frequency: int
    n_updates: int
    exponent: float = 3.0

    def __post_init__(self) -> None:
        for name in ("initial_sparsity", "final_sparsity", "exponent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"invalid CubicSchedule: {name} must be a number, got {value!r}")  # noqa: TRY004 (one error type for config checks)
        problems = []
        if not 0.0 <= self.initial_sparsity < 1.0:
            problems.append(f"initial_sparsity must be in [0, 1), got {self.initial_sparsity}")
        if not 0.0 <= self.final_sparsity < 1.0:
            problems.append(f"final_sparsity must be in [0, 1), got {self.final_sparsity}")
        if self.initial_sparsity > self.final_sparsity:
            problems.append(
                f"initial_sparsity ({self.initial_sparsity}) must not exceed final_sparsity "
                f"({self.final_sparsity}): the schedule only ever prunes more"
            )
        for name in ("begin_step", "frequency", "n_updates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                problems.append(f"{name} must be an integer, got {value!r}")
        integral = lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)
        if integral(self.begin_step) and self.begin_step < 0:
            problems.append(f"begin_step must be >= 0, got {self.begin_step}")
        if integral(self.frequency) and self.frequency < 1:
            problems.append(f"frequency must be >= 1 step, got {self.frequency}")
        if integral(self.n_updates) and self.n_updates < 0:
            problems.append(f"n_updates must be >= 0, got {self.n_updates}")
        if not self.exponent > 0:
            problems.append(f"exponent must be > 0, got {self.exponent}")
        if problems:
            raise ValueError("invalid CubicSchedule: " + "; ".join(problems))

    @property
    def end_step(self) -> int:
        """t0 + n dt: the last pruning step; masks are frozen after it."""
        return self.begin_step + self.n_updates * self.frequency

    def __call__(self, step: int) -> float:
        """Target sparsity in force after optimizer step ``step``."""
        if step < self.begin_step:
            return 0.0
        if step >= self.end_step:
            return self.final_sparsity
        # Hold the value of the most recent pruning step.
        k = (step - self.begin_step) // self.frequency
        return self._at_update(k)

    def _at_update(self, k: int) -> float:
        if k >= self.n_updates:
            return self.final_sparsity
        progress = k / self.n_updates
        s_i, s_f = self.initial_sparsity, self.final_sparsity
        return s_f + (s_i - s_f) * (1.0 - progress) ** self.exponent

    def is_update_step(self, step: int) -> bool:
        """True on the pruning steps t0, t0 + dt, ..., t0 + n dt."""
        if step < self.begin_step or step > self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0

    def update_steps(self) -> list[int]:
        return [self.begin_step + k * self.frequency for k in range(self.n_updates + 1)]

    def with_final_sparsity(self, final_sparsity: float) -> CubicSchedule:
        """The same timing with another s_f (per-tensor overrides, like TF's weight_sparsity_map)."""
        return CubicSchedule(
            initial_sparsity=min(self.initial_sparsity, final_sparsity),
            final_sparsity=final_sparsity,
            begin_step=self.begin_step,
            frequency=self.frequency,
            n_updates=self.n_updates,
            exponent=self.exponent,
        )

    def to_dict(self) -> dict:
        return asdict(self)
