"""Data-loader workers that die, named by the window they were reading.

When a worker process dies (the kernel's out-of-memory killer, a crash inside a
reader library), torch reports only ``DataLoader worker (pid 1234) is killed by
signal: Killed``. :class:`TrackedWindows` keeps, in memory shared with the
workers, which sample each worker is reading, and :class:`WatchedDataLoader`
turns torch's report into a :class:`DataLoaderWorkerError` that names the
sample's initialisation time and the time span of observations it reads.

torch raises that report from a SIGCHLD handler, so it can also surface outside
the loader (inside a training step): the training CLI asks the data module to
name it there too (:func:`name_worker_death`).
"""

from __future__ import annotations

import multiprocessing
import os
import re

from torch.utils.data import DataLoader, Dataset, get_worker_info

IDLE = -1


class DataLoaderWorkerError(RuntimeError):
    """A data-loader worker died; the message names what it was reading."""


class TrackedWindows(Dataset):
    """A map-style dataset that records, per worker, its process id and the sample it is reading.

    ``dataset`` must offer ``describe(index) -> str`` (:class:`earthgraph.data.windows.WindowDataset`
    does). The records are shared-memory integers, written before and after each read: a
    few nanoseconds against a window read's milliseconds."""

    def __init__(self, dataset, num_workers: int):
        self.dataset = dataset
        # Passed to the workers as they start (fork or spawn), so they share these arrays.
        self.reading = multiprocessing.RawArray("q", [IDLE] * max(num_workers, 1))
        self.reading_epoch = multiprocessing.RawArray("q", [0] * max(num_workers, 1))
        self.pids = multiprocessing.RawArray("q", [0] * max(num_workers, 1))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]):
        info = get_worker_info()
        if info is None:
            return self.dataset[key]
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        self.pids[info.id] = os.getpid()
        self.reading_epoch[info.id] = epoch
        self.reading[info.id] = index
        item = self.dataset[key]
        self.reading[info.id] = IDLE
        return item

    def being_read(self, pids: set[int] | None = None) -> list[str]:
        """What the workers with these process ids (all workers when None) were reading when
        they stopped, described by the dataset."""
        return [f"worker {w} (pid {self.pids[w]}) was reading {self.dataset.describe(index)}"
                for w, index in enumerate(self.reading)
                if index != IDLE and (pids is None or self.pids[w] in pids)]


def dead_worker_pids(error: BaseException) -> set[int] | None:
    """The process ids in torch's report of dead workers, an empty set if it names none,
    or None when ``error`` is not such a report."""
    text = str(error)
    if not isinstance(error, RuntimeError) or "DataLoader worker" not in text:
        return None
    # "DataLoader worker (pid 1234) is killed by signal: Killed." or
    # "DataLoader worker (pid(s) 1234, 5678) exited unexpectedly"
    found = re.search(r"pid(?:\(s\))? ([\d, ]+)", text)
    return {int(p) for p in re.findall(r"\d+", found.group(1))} if found else set()


def name_worker_death(error: BaseException, tracked: list[TrackedWindows]) -> DataLoaderWorkerError | None:
    """A :class:`DataLoaderWorkerError` naming what the dead workers were reading, or None
    when ``error`` is not torch's report of a dead worker."""
    pids = dead_worker_pids(error)
    if pids is None or isinstance(error, DataLoaderWorkerError):
        return None
    reading = [line for t in tracked for line in t.being_read(pids or None)]
    what = "; ".join(reading) if reading else "no sample was being read (it died between samples)"
    return DataLoaderWorkerError(f"a data-loader worker died ({error}): {what}. A worker killed without a Python "
                                 "error is usually the out-of-memory killer: lower data.num_workers or "
                                 "data.batch_size, or set data.in_memory false")


class WatchedDataLoader(DataLoader):
    """A DataLoader whose dead workers are reported by :func:`name_worker_death` when its
    dataset is a :class:`TrackedWindows` (same signature as DataLoader, so Lightning can
    rebuild it for distributed sampling)."""

    def __iter__(self):
        iterator = super().__iter__()
        if not isinstance(self.dataset, TrackedWindows):
            return iterator
        return self._watched(iterator)

    def _watched(self, iterator):
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError as e:
                named = name_worker_death(e, [self.dataset])
                if named is None:
                    raise
                raise named from e
            yield batch
