"""What a forecaster carries from window to window, and the input windows it is built from."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from earthgraph.data.batch import ObsSet


@dataclass
class ModelState:
    """What the forecaster carries from window to window: latents ``h`` (B, N, F) and,
    with budgets configured, their amounts (B, N, C) (density x cell area). An
    ensemble's B is members x samples, member-major."""

    h: torch.Tensor
    amounts: torch.Tensor | None = None

    def to(self, device) -> "ModelState":
        return ModelState(self.h.to(device), None if self.amounts is None else self.amounts.to(device))

    def member(self, m: int, members: int) -> "ModelState":
        """Member ``m``'s rows of a member-major state of ``members`` members."""
        b = self.h.shape[0] // members
        return ModelState(self.h[m * b:(m + 1) * b], None if self.amounts is None else self.amounts[m * b:(m + 1) * b])


def split_windows(inputs: dict[str, ObsSet], n: int) -> list[dict[str, ObsSet]]:
    """Observations of ``n`` input windows (times in [-n, 0) windows before the initialisation)
    as n windows, oldest first, each with its times relative to its own end, in [-1, 0)."""
    windows = []
    for k in range(n):
        lo, hi = float(k - n), float(k - n + 1)
        window = {}
        for name, o in inputs.items():
            keep = (o.time >= lo) & (o.time < hi)
            window[name] = ObsSet(o.values[keep], o.error[keep], o.lat[keep], o.lon[keep], o.time[keep] - (hi - 0.0),
                                  o.meta[keep], o.sample[keep])
        windows.append(window)
    return windows
