"""Progress of long work on the console: a tqdm bar on a terminal, a line every 30 s elsewhere.

Data generation, ingest, observing a gridded file, prediction and evaluation
run for minutes. On a terminal they draw a tqdm bar. Where the console is a
log file or a CI job, a redrawn bar is noise, so there the same loop prints one
plain line at most every ``every_seconds`` (and at the end), as the training's
``ProgressLine`` callback does. Both go to standard error, so a command's
results on standard output stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def clock(seconds: float) -> str:
    """Seconds as h:mm:ss (or m:ss under an hour)."""
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


class _Lines:
    """tqdm's small interface (``update``, ``close``, iteration) as a plain line every so often."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, every_seconds: float,
                 stream):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every, self.stream = every_seconds, stream
        self.n = 0
        self._start = time.perf_counter()
        self._last = self._start
        self._closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self._print(now)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print(time.perf_counter())

    def _print(self, now: float) -> None:
        elapsed = now - self._start
        done = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        line = f"{self.desc}: {done}  elapsed {clock(elapsed)}"
        if self.total and 0 < self.n < self.total:
            line += f"  left {clock(elapsed / self.n * (self.total - self.n))}"
        print(line, file=self.stream, flush=True)


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             every_seconds: float = 30.0, enabled: bool = True, stream=None):
    """Wrap ``iterable`` (or, without one, return an object with ``update(n)``/``close()``,
    usable as a context manager) to report progress.

    ``total``: the expected count (default ``len(iterable)`` where it has one).
    ``enabled=False`` reports nothing (library callers that print their own summary).
    """
    stream = sys.stderr if stream is None else stream
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, total=total, desc=desc, unit=f" {unit}", file=stream, dynamic_ncols=True)
    return _Lines(iterable, total, desc, unit, every_seconds, stream)
