"""The soak and many-loads reports: percentiles, per-interval figures, target verdicts, tables (no processes)."""

from __future__ import annotations

import pytest

from bench.common import LoadResult, format_table, percentile
from bench.many_loads import slice_label, slice_row, tenth_slices
from bench.soak import (
    Probe,
    Soak,
    Targets,
    checks,
    fe_rss_growth_pct,
    format_checks,
    format_interval_lines,
    interval_count,
    interval_row,
    max_version_count_seen,
    p50_ratio,
    rss_reference_index,
    verdict,
)

# ---------------------------------------------------------------------- percentiles


def test_percentile_interpolates_between_closest_ranks():
    values = [40.0, 10.0, 30.0, 20.0]  # order does not matter
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == pytest.approx(25.0)
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)


def test_percentile_of_one_value_and_of_none():
    assert percentile([7.5], 50) == 7.5
    assert percentile([7.5], 95) == 7.5
    assert percentile([], 50) is None


def test_percentile_outside_0_100_is_refused():
    with pytest.raises(ValueError, match="outside 0..100"):
        percentile([1.0], 101)


# ---------------------------------------------------------------------- one interval


def _loads(*items: tuple[float, float, bool]) -> list[LoadResult]:
    return [LoadResult(t=t, latency_ms=ms, ok=ok) for t, ms, ok in items]


def test_interval_row_counts_only_loads_that_ended_in_the_interval():
    loads = _loads((5.0, 100.0, True), (10.0, 10.0, True), (12.0, 20.0, True), (15.0, 999.0, False),
                   (20.0, 30.0, True), (20.5, 1.0, True))
    prev = Probe(t=10.0, loaded_rows=1000)
    probe = Probe(t=20.0, loaded_rows=21_000, lag=12, job_state="RUNNING", max_version_count=55, compactions=3,
                  fe_rss_mb=100.04, be_rss_mb=[200.0, None, 210.0],
                  cpu_pct={"fe": 31.26, "be": 80.0, "broker": None})
    row = interval_row(2, 10.0, 20.0, loads, prev, probe)
    assert row["interval"] == 2 and row["t_s"] == 20.0
    assert row["loads"] == 2 and row["failed"] == 1  # 12 s and 20 s ok, 15 s failed; 10 s was the last interval's
    assert row["p50_ms"] == 25.0
    assert row["p95_ms"] == 29.5
    assert row["rl_rows_per_s"] == 2000.0
    assert (row["lag"], row["max_version_count"], row["compactions"]) == (12, 55, 3)
    assert row["fe_rss_mb"] == 100.0
    assert (row["be_rss_sum_mb"], row["be_rss_max_mb"]) == (410.0, 210.0)  # a BE that is gone is left out
    assert (row["fe_cpu_pct"], row["be_cpu_pct"], row["broker_cpu_pct"]) == (31.0, 80.0, None)
    assert row["job"] == "RUNNING"


def test_interval_row_without_data_says_so():
    row = interval_row(1, 0.0, 10.0, [], None, Probe(t=10.0))
    assert row["loads"] == 0 and row["p50_ms"] is None and row["p95_ms"] is None
    assert row["rl_rows_per_s"] is None  # no earlier loadedRows to take a rate from
    assert row["be_rss_sum_mb"] is None and row["be_rss_max_mb"] is None
    unreadable = interval_row(2, 10.0, 20.0, [], Probe(t=10.0, loaded_rows=5), Probe(t=20.0))
    assert unreadable["rl_rows_per_s"] is None


def test_interval_count_covers_the_duration():
    assert interval_count(120, 20) == 6
    assert interval_count(600, 60) == 10
    assert interval_count(125, 60) == 3
    assert interval_count(5, 60) == 1


# ---------------------------------------------------------------------- verdicts


def _row(i: int, p50: float | None, vc: int | None = 10, fe: float | None = 100.0) -> dict:
    return {"interval": i, "t_s": 60.0 * i, "loads": 10, "failed": 0, "p50_ms": p50, "p95_ms": p50,
            "rl_rows_per_s": 2000.0, "lag": 0, "max_version_count": vc, "compactions": 0, "fe_rss_mb": fe,
            "be_rss_sum_mb": 300.0, "be_rss_max_mb": 100.0, "job": "RUNNING"}


def test_all_targets_met_is_pass():
    rows = [_row(i, 20.0, vc=40, fe=100.0) for i in range(1, 11)]
    rows[-1]["p50_ms"] = 25.0  # exactly 1.25x
    rows[-1]["fe_rss_mb"] = 119.0
    results = checks(rows, lost=0, duplicated=0, targets=Targets(), violations=[])
    assert [c.ok for c in results] == [True, True, True, True, True]
    assert verdict(results) == "PASS"


def test_each_target_fails_on_its_own():
    base = [_row(i, 20.0, vc=40, fe=100.0) for i in range(1, 11)]

    slow = [dict(r) for r in base]
    slow[-1]["p50_ms"] = 25.1
    assert [c.ok for c in checks(slow, 0, 0, Targets(), [])] == [False, True, True, True, True]

    versions = [dict(r) for r in base]
    versions[3]["max_version_count"] = 100  # the bound is strict: < 100
    assert [c.ok for c in checks(versions, 0, 0, Targets(), [])] == [True, False, True, True, True]

    memory = [dict(r) for r in base]
    memory[-1]["fe_rss_mb"] = 120.0  # +20 % is not < 20 %
    assert [c.ok for c in checks(memory, 0, 0, Targets(), [])] == [True, True, False, True, True]

    assert [c.ok for c in checks(base, 1, 0, Targets(), [])] == [True, True, True, False, True]
    assert [c.ok for c in checks(base, 0, 2, Targets(), [])] == [True, True, True, False, True]
    assert verdict(checks(base, 0, 2, Targets())) == "FAIL"


def test_what_could_not_be_measured_fails():
    rows = [_row(1, None, vc=None, fe=None), _row(2, 30.0, vc=None, fe=None)]
    results = checks(rows, lost=None, duplicated=None, targets=Targets())
    assert [c.ok for c in results] == [False, False, False, False, False]
    assert "not measured" in results[0].value and "not measured" in results[3].value
    assert verdict([]) == "FAIL"
    assert verdict(checks([], 0, 0, Targets())) == "FAIL"


def test_p50_ratio_and_max_version_count():
    rows = [_row(1, 20.0, vc=5), _row(2, 10.0, vc=None), _row(3, 30.0, vc=70)]
    assert p50_ratio(rows) == pytest.approx(1.5)
    assert max_version_count_seen(rows) == 70
    assert p50_ratio([]) is None and max_version_count_seen([]) is None


def test_fe_rss_growth_from_the_fifth_interval_or_the_first_in_short_runs():
    assert rss_reference_index(10) == 4 and rss_reference_index(5) == 4
    assert rss_reference_index(4) == 0 and rss_reference_index(1) == 0
    long = [_row(i, 20.0, fe=50.0 if i < 5 else 100.0) for i in range(1, 11)]
    long[-1]["fe_rss_mb"] = 110.0
    assert fe_rss_growth_pct(long) == pytest.approx(10.0)  # from interval 5 (100 MB), not interval 1 (50 MB)
    short = [_row(1, 20.0, fe=80.0), _row(2, 20.0, fe=100.0)]
    assert fe_rss_growth_pct(short) == pytest.approx(25.0)
    assert fe_rss_growth_pct([_row(1, 20.0, fe=None)]) is None


# ---------------------------------------------------------------------- text


def test_format_table_aligns_and_shows_missing_values():
    lines = format_table([{"a": 1, "bb": 2.25, "c": None}, {"a": 12345, "bb": 0.0, "c": "x"}])
    assert lines == ["     a   bb  c",
                     "     1  2.2  -",
                     "12,345  0.0  x"]
    assert format_table([]) == []
    assert format_table([{"a": 1}], min_widths={"a": 4}) == ["   a", "   1"]  # lines printed one at a time align


def test_interval_lines_and_checks_text():
    rows = [_row(1, 20.0), _row(2, 22.5)]
    lines = format_interval_lines(rows)
    assert len(lines) == 3
    assert lines[0].split()[:6] == ["interval", "t_s", "loads", "failed", "p50_ms", "p95_ms"]
    assert lines[2].split()[0] == "2" and "22.5" in lines[2].split()
    assert len({len(line) for line in lines}) == 1  # aligned
    text = format_checks(checks(rows, 0, 0, Targets()))
    assert text[0].startswith("  PASS  one-row load p50")
    assert "20.0 ms -> 22.5 ms = 1.12x" in text[0]
    assert all("target" in line for line in text)


# ---------------------------------------------------------------------- many loads


def test_tenth_slices_first_middle_last():
    assert tenth_slices(5000) == [(0, 500), (2500, 3000), (4500, 5000)]
    assert [slice_label(*s) for s in tenth_slices(5000)] == ["1-500", "2,501-3,000", "4,501-5,000"]
    assert tenth_slices(300) == [(0, 30), (150, 180), (270, 300)]
    assert tenth_slices(7) == [(0, 1), (3, 4), (6, 7)]
    assert tenth_slices(1) == [(0, 1)]
    assert tenth_slices(0) == []


def test_slice_row_figures_of_its_loads():
    results = _loads(*((float(i), float(i), i != 3) for i in range(10)))
    row = slice_row(2, 6, results, fe_rss_mb=61.26, be_rss_mb=None)
    assert row == {"loads": "3-6", "ok": 3, "failed": 1, "p50_ms": 4.0, "p95_ms": 4.9,
                   "fe_rss_mb": 61.3, "be_rss_sum_mb": None}


def test_a_checker_violation_fails_the_soak_even_with_every_id_once():
    """A 30-minute soak printed 'the routine load job is NEED_SCHEDULE, not RUNNING' from the
    checker and still said PASS: only lost/duplicated counted."""
    rows = [_row(i, 20.0, vc=40, fe=100.0) for i in range(1, 11)]
    results = checks(rows, 0, 0, Targets(), violations=["the routine load job is NEED_SCHEDULE, not RUNNING"])
    assert [c.ok for c in results] == [True, True, True, True, False]
    assert "NEED_SCHEDULE" in results[-1].value
    assert verdict(results) == "FAIL"
    clean = checks(rows, 0, 0, Targets(), violations=[])
    assert [c.ok for c in clean] == [True, True, True, True, True] and verdict(clean) == "PASS"
    assert not checks(rows, 0, 0, Targets())[-1].ok  # the checker never ran: not measured


async def test_the_soaks_exactly_once_check_gets_the_fe_pool_the_chaos_runner_needs(tmp_path):
    # the soak reuses the chaos checker, whose runner asks the FEs through a FrontendPool: a soak
    # that handed it a plain stub ran for its whole duration, then failed at the final check
    from types import SimpleNamespace

    from deploy.chaos_checker import Checker
    from deploy.cluster import ClusterSpec, LocalCluster
    from deploy.fe_pool import FrontendPool
    from deploy.workload import Producer

    cluster = LocalCluster(str(tmp_path / "run"))
    cluster.save_spec(ClusterSpec(bes=3, fe_port=1, broker_port=2, with_broker=False))
    async with FrontendPool(cluster.frontends()) as pool:
        soak = Soak(cluster, pool, SimpleNamespace(bes=3, catch_up_bound=10.0), {})
        producer = Producer("127.0.0.1:2", "t", 1, 0, 10, 1.0)
        checker = soak.checker(producer)
        assert isinstance(checker, Checker) and checker.runner.pool is pool and checker.admin is soak.admin
