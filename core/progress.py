"""Progress bars (tqdm, on stderr) that count finished work: the engine reports a chunk only
after its results are computed, not when it is dispatched to the device."""

from __future__ import annotations

import sys

from tqdm import tqdm


class StepProgress:
    """A bar over `total` units of work (steps, or point-steps of a sweep), with the rate and
    an ETA. `advance_to(done)` moves it to `done` finished units; disabled, it does nothing."""

    def __init__(self, total: int, unit: str, enabled: bool = True, description: str | None = None):
        self.total, self.unit, self.enabled, self.description = total, unit, enabled, description
        self._bar = None

    def __enter__(self) -> "StepProgress":
        if self.enabled:
            self._bar = tqdm(total=self.total, unit=f" {self.unit}", unit_scale=True, desc=self.description,
                             file=sys.stderr, dynamic_ncols=True, leave=True, smoothing=0.1)
        return self

    def advance_to(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
