"""The web console's short memory: what its sparklines draw, one sample a second for five minutes.

The FE keeps it (not the page), so a console opened now already shows the last minutes:

- :class:`Ring`: a fixed-size ring buffer of (time, value) samples, the oldest overwritten first.
- :class:`ConsoleHistory`: the series. Transactions committed and aborted per second, and per
  routine load job its rows loaded per second (the change of SHOW ROUTINE LOAD's loadedRows) and
  its lag (the sum over its partitions of end offset - progress). Pure: the caller passes the time
  and the counters, so the tests drive it with a fake clock.
- :class:`ConsoleSampler`: the FE daemon that feeds ConsoleHistory every ``interval_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from common.daemon import PeriodicDaemon

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 1.0
HISTORY_SECONDS = 300
MAX_SAMPLED_JOBS = 100
"""Routine load jobs sampled at most (the non-final ones first, then the newest)."""


class Ring:
    """The last ``capacity`` samples (time, value), oldest first; appending to a full ring
    overwrites the oldest. Memory is fixed at construction."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a ring needs a capacity of at least 1, not {capacity}")
        self._times: list[float] = [0.0] * capacity
        self._values: list[float] = [0.0] * capacity
        self._next = 0  # where the next sample goes
        self._len = 0

    @property
    def capacity(self) -> int:
        return len(self._times)

    def __len__(self) -> int:
        return self._len

    def append(self, t: float, value: float) -> None:
        self._times[self._next] = t
        self._values[self._next] = value
        self._next = (self._next + 1) % self.capacity
        self._len = min(self._len + 1, self.capacity)

    def items(self) -> list[tuple[float, float]]:
        """Every sample, oldest first."""
        start = (self._next - self._len) % self.capacity
        idx = [(start + i) % self.capacity for i in range(self._len)]
        return [(self._times[i], self._values[i]) for i in idx]

    def last(self) -> tuple[float, float] | None:
        if not self._len:
            return None
        i = (self._next - 1) % self.capacity
        return self._times[i], self._values[i]

    def since(self, t: float) -> list[tuple[float, float]]:
        """The samples taken at ``t`` or later, oldest first."""
        return [s for s in self.items() if s[0] >= t]

    def clear(self) -> None:
        self._next = self._len = 0


@dataclass(frozen=True)
class JobSample:
    """One routine load job at one instant: its loadedRows and its total lag (None: unknown, e.g.
    before the FE fetched the partitions' end offsets)."""

    loaded_rows: int
    lag: int | None


class JobSeries:
    """A routine load job's two series."""

    def __init__(self, capacity: int) -> None:
        self.rows_per_s = Ring(capacity)
        self.lag = Ring(capacity)
        self.last_rows: int | None = None


class ConsoleHistory:
    """Rates and lags over the last ``capacity`` samples. :meth:`record` is one sample."""

    def __init__(self, capacity: int = int(HISTORY_SECONDS / SAMPLE_INTERVAL_S)) -> None:
        self.capacity = capacity
        self.committed_per_s = Ring(capacity)
        self.aborted_per_s = Ring(capacity)
        self._jobs: dict[int, JobSeries] = {}
        self._last: tuple[float, int, int] | None = None  # (time, committed, aborted) of the last sample

    def record(self, now_s: float, committed: int, aborted: int, jobs: Mapping[int, JobSample]) -> None:
        """One sample at ``now_s``: ``committed`` and ``aborted`` are running totals, ``jobs`` every
        job to keep a history for (the series of a job not in it are forgotten)."""
        last = self._last
        dt = now_s - last[0] if last is not None else 0.0
        if last is not None:
            if dt <= 0:
                return  # the clock went back or did not move: no rate to take
            self.committed_per_s.append(now_s, _rate(committed - last[1], dt))
            self.aborted_per_s.append(now_s, _rate(aborted - last[2], dt))
        self._last = (now_s, committed, aborted)
        for job_id in [j for j in self._jobs if j not in jobs]:
            del self._jobs[job_id]
        for job_id, sample in jobs.items():
            series = self._jobs.get(job_id)
            if series is None:
                series = self._jobs[job_id] = JobSeries(self.capacity)
            elif series.last_rows is not None and last is not None:
                series.rows_per_s.append(now_s, _rate(sample.loaded_rows - series.last_rows, dt))
            series.last_rows = sample.loaded_rows
            if sample.lag is not None:
                series.lag.append(now_s, sample.lag)

    def job(self, job_id: int) -> JobSeries | None:
        return self._jobs.get(job_id)

    def job_ids(self) -> list[int]:
        return sorted(self._jobs)


def _rate(delta: int, dt: float) -> float:
    """Per second, never negative (a counter that went back, e.g. a job altered, counts 0)."""
    return round(max(delta, 0) / dt, 2)


def points(ring: Ring) -> list[list[float]]:
    """A ring as JSON: [[time in ms, value], ...], oldest first."""
    return [[int(t * 1000), v] for t, v in ring.items()]


def job_samples(jobs: list) -> dict[int, JobSample]:
    """JobSamples of routine load jobs (fe.routineload.job.RoutineLoadJob), from the same numbers
    SHOW ROUTINE LOAD shows (Statistic.loadedRows, Lag): the non-final jobs and then the newest,
    at most MAX_SAMPLED_JOBS."""
    ordered = sorted(jobs, key=lambda j: (j.state.is_final, -j.job_id))[:MAX_SAMPLED_JOBS]
    samples = {}
    for job in ordered:
        lag = job.lag()
        samples[job.job_id] = JobSample(job.stat.display()["loadedRows"], sum(lag.values()) if lag else None)
    return samples


class ConsoleSampler:
    """Samples the FE into a :class:`ConsoleHistory` every ``interval_s`` (a PeriodicDaemon:
    started and closed with the FE's HTTP server)."""

    def __init__(self, history: ConsoleHistory, counters: Callable[[], Any], jobs: Callable[[], list],
                 interval_s: float = SAMPLE_INTERVAL_S, clock: Callable[[], float] = time.time) -> None:
        """``counters``: the TransactionManager's TxnCounters (``committed`` and ``failed``, the
        counts /metrics exports too; only the leader commits and aborts, so a follower counts none)."""
        self.history = history
        self._counters = counters
        self._jobs = jobs
        self._clock = clock
        self._daemon = PeriodicDaemon("console-sampler", lambda: interval_s, self.sample)

    def sample(self) -> None:
        counters = self._counters()
        self.history.record(self._clock(), counters.committed, counters.failed, job_samples(self._jobs()))

    def start(self) -> None:
        self._daemon.start()

    async def close(self) -> None:
        await self._daemon.close()
