"""The web console's history (fe/http/console_history.py): the ring buffer, the rates and lags it
keeps per second, the transaction counter and the sampler, on a fake clock."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fe.http.console_history import (
    ConsoleHistory,
    ConsoleSampler,
    JobSample,
    Ring,
    job_samples,
    points,
)
from fe.routineload.job import Statistic
from fe.routineload.state import JobState
from fe.txn.manager import TxnCounters


def test_ring_keeps_the_last_samples_oldest_first():
    ring = Ring(3)
    assert len(ring) == 0 and ring.items() == [] and ring.last() is None
    ring.append(1.0, 10)
    ring.append(2.0, 20)
    assert ring.items() == [(1.0, 10), (2.0, 20)] and ring.last() == (2.0, 20)
    for t in range(3, 8):  # wraps around more than once
        ring.append(float(t), t * 10)
    assert len(ring) == 3 == ring.capacity
    assert ring.items() == [(5.0, 50), (6.0, 60), (7.0, 70)]
    assert ring.last() == (7.0, 70)
    assert ring.since(6.0) == [(6.0, 60), (7.0, 70)]
    assert points(ring) == [[5000, 50], [6000, 60], [7000, 70]]
    ring.clear()
    assert ring.items() == [] and ring.last() is None
    ring.append(8.0, 1)
    assert ring.items() == [(8.0, 1)]


def test_ring_of_one_and_a_bad_capacity():
    ring = Ring(1)
    ring.append(1.0, 1)
    ring.append(2.0, 2)
    assert ring.items() == [(2.0, 2)]
    with pytest.raises(ValueError, match="capacity of at least 1"):
        Ring(0)


def test_history_takes_rates_from_running_totals():
    h = ConsoleHistory(capacity=300)
    h.record(100.0, committed=5, aborted=1, jobs={7: JobSample(loaded_rows=1000, lag=50)})
    assert h.committed_per_s.items() == [] and h.aborted_per_s.items() == []  # a rate needs two samples
    job = h.job(7)
    assert job is not None and job.rows_per_s.items() == [] and job.lag.items() == [(100.0, 50)]

    h.record(101.0, committed=8, aborted=1, jobs={7: JobSample(1300, 20)})
    h.record(103.0, committed=12, aborted=3, jobs={7: JobSample(1700, None)})  # lag unknown: no point
    assert h.committed_per_s.items() == [(101.0, 3.0), (103.0, 2.0)]
    assert h.aborted_per_s.items() == [(101.0, 0.0), (103.0, 1.0)]
    assert job.rows_per_s.items() == [(101.0, 300.0), (103.0, 200.0)]
    assert job.lag.items() == [(100.0, 50), (101.0, 20)]


def test_history_ignores_a_clock_that_does_not_move_and_never_goes_negative():
    h = ConsoleHistory(capacity=10)
    h.record(10.0, 4, 0, {1: JobSample(100, 0)})
    h.record(10.0, 9, 0, {1: JobSample(200, 0)})  # same instant: skipped, no division by zero
    h.record(9.0, 9, 0, {1: JobSample(200, 0)})  # the clock went back: skipped
    assert h.committed_per_s.items() == [] and h.job(1).rows_per_s.items() == []
    h.record(12.0, 9, 0, {1: JobSample(50, 0)})  # loadedRows went back (a counter reset): 0, not < 0
    assert h.committed_per_s.items() == [(12.0, 2.5)]
    assert h.job(1).rows_per_s.items() == [(12.0, 0.0)]


def test_history_is_bounded_and_forgets_jobs_that_are_gone():
    h = ConsoleHistory(capacity=5)
    for t in range(20):
        h.record(float(t), t * 2, 0, {1: JobSample(t * 10, t), 2: JobSample(0, 0)})
    assert len(h.committed_per_s) == 5 and [t for t, _ in h.committed_per_s.items()] == [15, 16, 17, 18, 19]
    assert all(v == 2.0 for _, v in h.committed_per_s.items())
    assert len(h.job(1).lag) == 5 and len(h.job(1).rows_per_s) == 5
    assert h.job_ids() == [1, 2]
    h.record(20.0, 40, 0, {2: JobSample(0, 0)})
    assert h.job_ids() == [2] and h.job(1) is None
    h.record(21.0, 42, 0, {1: JobSample(500, 3), 2: JobSample(0, 0)})  # back: a new series, no rate yet
    assert h.job(1).rows_per_s.items() == [] and h.job(1).lag.items() == [(21.0, 3)]


class FakeTxns:
    def __init__(self) -> None:
        self.on_committed: list = []
        self.on_aborted: list = []

    def commit(self) -> None:
        for fn in self.on_committed:
            fn(object())

    def abort(self) -> None:
        for fn in self.on_aborted:
            fn(object())


def _job(job_id: int, state: JobState, loaded: int, progress: dict[int, int], highwater: dict[int, int]):
    job = SimpleNamespace(job_id=job_id, state=state, stat=Statistic(loaded_rows=loaded), progress=progress,
                          highwater=highwater)
    job.lag = lambda: {p: max(highwater[p] - o, 0) for p, o in progress.items() if p in highwater}
    return job


def test_job_samples_take_show_routine_loads_numbers():
    jobs = [_job(1, JobState.RUNNING, 100, {0: 10, 1: 20}, {0: 15, 1: 40}),
            _job(2, JobState.NEED_SCHEDULE, 0, {}, {}),
            _job(3, JobState.STOPPED, 7, {0: 5}, {0: 5})]
    samples = job_samples(jobs)
    assert samples == {1: JobSample(100, 25), 2: JobSample(0, None), 3: JobSample(7, 0)}
    assert list(samples) == [2, 1, 3]  # the non-final jobs first, newest first


def test_sampler_records_on_its_clock():
    now = [1000.0]
    jobs = [_job(1, JobState.RUNNING, 0, {0: 0}, {0: 100})]
    counter = TxnCounters()
    history = ConsoleHistory(capacity=60)
    sampler = ConsoleSampler(history, lambda: counter, lambda: jobs, clock=lambda: now[0])
    sampler.sample()
    counter.committed = 10
    jobs[0].stat.loaded_rows = 500
    jobs[0].progress[0] = 60
    now[0] += 2
    sampler.sample()
    assert history.committed_per_s.items() == [(1002.0, 5.0)]
    assert history.job(1).rows_per_s.items() == [(1002.0, 250.0)]
    assert history.job(1).lag.items() == [(1000.0, 100), (1002.0, 40)]
