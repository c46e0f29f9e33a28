"""Convergence per fault (deploy/chaos_checker.py) is a pure function of the schedule, the events
and the sampled timeline."""

from __future__ import annotations

from deploy.chaos_checker import convergence_by_kind, convergence_lines, fault_convergence, is_converged
from deploy.chaos_runner import Event, Sample
from deploy.chaos_schedule import Fault, Schedule


def sample(t: float, *, alive: int = 4, unhealthy: int = 0, job: str = "RUNNING", lag: int = 800,
           rate: float = 1000.0, loaded: int = 1000, error: str = "") -> Sample:
    """A sample at ``t`` of a run whose producer sends 1,000 messages/s."""
    return Sample(t=t, loaded=loaded, rows_per_s=rate, produced=int(t * 1000), lag=lag, unhealthy=unhealthy,
                  job_state=job, alive_bes=alive, total_bes=4, error=error)


def steady(t0: int, t1: int, **kw) -> list[Sample]:
    return [sample(float(t), **kw) for t in range(t0, t1)]


def schedule(*faults: Fault) -> Schedule:
    return Schedule(seed=1, duration_s=120, bes=4, max_down=1, faults=faults)


def events(*items: tuple[float, str, int]) -> list[Event]:
    return [Event(t, kind, f"{kind} #{i}", i) for t, kind, i in items]


KILL = Fault(1, "be_kill", 10.0, 5.0, "be1")
PARTITION = Fault(2, "fe_be_partition", 40.0, 6.0, "be2")


def test_converged_counts_from_the_recovery_to_the_first_sample_that_stays_converged():
    samples = (steady(0, 10) + steady(10, 19, alive=3, unhealthy=6) + steady(19, 22, unhealthy=2)
               + steady(22, 35))
    (c,) = fault_convergence(schedule(KILL), events((10.2, "fault", 1), (15.1, "recover", 1)), samples)
    assert c.recovered_at == 15.1 and c.converged_at == 22.0 and c.seconds == 6.9 and c.note == ""
    assert c.lag_before == 2000  # 800 sampled, but at least 2 s of the 1,000 messages/s produced then


def test_a_lag_of_zero_before_the_fault_still_allows_a_batch_of_lag():
    # the lag often reads 0 between two batches; after the fault one batch in flight is converged
    samples = steady(0, 3, lag=0) + steady(3, 10, alive=3) + steady(10, 20, lag=900)
    (c,) = fault_convergence(schedule(Fault(1, "be_kill", 3.0, 5.0, "be1")),
                             events((3.0, "fault", 1), (8.0, "recover", 1)), samples)
    assert c.lag_before == 2000 and c.converged_at == 10.0
    # a single sample before the fault: its lag alone, no rate to judge
    (c,) = fault_convergence(schedule(Fault(1, "be_kill", 0.5, 5.0, "be1")),
                             events((0.5, "fault", 1), (5.5, "recover", 1)), samples)
    assert c.lag_before == 0 and c.seconds is None


def test_a_relapse_before_the_next_fault_moves_convergence_later():
    samples = steady(0, 10) + steady(10, 16, alive=3) + steady(16, 20) + steady(20, 22, unhealthy=3) + steady(22, 35)
    (c,) = fault_convergence(schedule(KILL), events((10.0, "fault", 1), (15.0, "recover", 1)), samples)
    assert c.converged_at == 22.0 and c.seconds == 7.0


def test_the_lag_must_come_back_to_its_level_before_the_fault_with_rows_flowing():
    pause = Fault(1, "job_pause", 10.0, 4.0, "job")
    samples = (steady(0, 10, lag=2500) + steady(10, 14, job="PAUSED", rate=0, lag=5000)
               + steady(14, 17, lag=9000) + steady(17, 19, lag=2600) + steady(19, 30, lag=1200))
    (c,) = fault_convergence(schedule(pause), events((10.0, "fault", 1), (14.0, "recover", 1)), samples)
    assert c.lag_before == 2500 and c.converged_at == 19.0
    # no rows flowing is converged only when nothing is left to load
    assert not is_converged(sample(1, rate=0, lag=10), 2000)
    assert is_converged(sample(1, rate=0, lag=0), 2000)
    assert not is_converged(sample(1, error="UNAVAILABLE: fe down"), 2000)
    assert not is_converged(sample(1, job="NEED_SCHEDULE"), 2000)


def test_not_converged_before_the_next_fault_has_no_time_and_says_why():
    samples = steady(0, 10) + steady(10, 50, alive=3) + steady(50, 60)
    evs = events((10.0, "fault", 1), (15.0, "recover", 1), (40.0, "fault", 2), (40.1, "fault", 2),
                 (46.0, "recover", 2))
    first, second = fault_convergence(schedule(KILL, PARTITION), evs, samples)
    assert first.seconds is None and first.converged_at is None
    assert first.note.startswith("not converged when fault #2 started at 40.0 s (last sample: 3/4 BEs alive")
    assert second.recovered_at == 46.0 and second.converged_at == 50.0 and second.seconds == 4.0
    # the lag before the partition is judged on the samples before it, faulty or not
    assert second.lag_before == 2000


def test_samples_whose_row_count_timed_out_are_left_out():
    samples = steady(0, 10) + steady(10, 16, alive=3) + steady(16, 18) + [sample(18, loaded=-1, rate=0)] + steady(19, 25)
    (c,) = fault_convergence(schedule(KILL), events((10.0, "fault", 1), (15.0, "recover", 1)), samples)
    assert c.converged_at == 16.0


def test_a_fault_never_recovered_or_never_converged():
    samples = steady(0, 10) + steady(10, 30, unhealthy=1)
    (c,) = fault_convergence(schedule(KILL), events((10.0, "fault", 1)), samples)
    assert c.seconds is None and c.note == "never recovered"
    (c,) = fault_convergence(schedule(KILL), events((10.0, "fault", 1), (15.0, "recover", 1)), samples)
    assert c.seconds is None and c.note.startswith("not converged by the end of the sampling")


def test_per_kind_count_min_median_max():
    samples = steady(0, 200)
    faults = [Fault(1, "be_kill", 10.0, 2.0, "be1"), Fault(2, "slow_link", 30.0, 3.0, "be0", 500),
              Fault(3, "be_kill", 50.0, 2.0, "be2"), Fault(4, "be_kill", 80.0, 2.0, "be3")]
    evs = events((10, "fault", 1), (12, "recover", 1), (30, "fault", 2), (33.5, "recover", 2),
                 (50, "fault", 3), (52, "recover", 3), (80, "fault", 4), (82.5, "recover", 4))
    by_kind = convergence_by_kind(fault_convergence(schedule(*faults), evs, samples))
    assert by_kind["be_kill"] == {"count": 3, "converged": 3, "min_s": 0.0, "median_s": 0.0, "max_s": 0.5,
                                  "not_converged": []}
    assert by_kind["slow_link"]["count"] == 1 and by_kind["slow_link"]["median_s"] == 0.5
    lines = convergence_lines(by_kind)
    assert lines[0].startswith("convergence after recovery (s)") and len(lines) == 3
    assert lines[1].split()[:3] == ["be_kill", "3", "3"]
    assert convergence_lines({}) == []
