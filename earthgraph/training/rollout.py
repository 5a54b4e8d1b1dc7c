"""The rollout curriculum: how many windows ahead the model is trained at each step.

Like GraphCast and AIFS, training starts on one window and lengthens the
rollout later, once single steps are good: ``{0: 1, 2000: 2, 4000: 3}`` trains
on one window from step 0, two from step 2000 and three from step 4000. The
data module must load at least the longest rollout (``data.rollout``).
"""

from __future__ import annotations


def parse_curriculum(curriculum: dict | None, data_rollout: int | None = None) -> dict[int, int] | None:
    """The curriculum as {first step: windows} with int keys, in step order; None without one.

    Keys may arrive as strings (YAML through jsonargparse, or a config logged to W&B
    and read back). Raises unless it starts at step 0 and asks for 1..``data_rollout``
    windows.
    """
    if not curriculum:
        return None
    try:
        parsed = dict(sorted((int(step), int(windows)) for step, windows in curriculum.items()))
    except (TypeError, ValueError) as err:
        raise ValueError(f"rollout_curriculum must map steps to window counts (integers), got {curriculum}") from err
    if 0 not in parsed:
        raise ValueError(f"rollout_curriculum must say how many windows to train from step 0, got {curriculum}")
    for step, windows in parsed.items():
        if step < 0 or windows < 1:
            raise ValueError(f"rollout_curriculum: step {step} -> {windows} windows is not valid")
        if data_rollout is not None and windows > data_rollout:
            raise ValueError(f"rollout_curriculum asks for {windows} windows at step {step}, but the data loads only "
                             f"{data_rollout} (data.rollout)")
    return parsed


def rollout_windows(curriculum: dict[int, int] | None, step: int) -> int | None:
    """Windows to train at ``step`` under a parsed curriculum; None without one (all the data's windows)."""
    if not curriculum:
        return None
    current = None
    for start, windows in curriculum.items():
        if step >= start:
            current = windows
    return current
