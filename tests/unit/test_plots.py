"""The chaos and soak pictures (deploy/plots.py) from synthetic reports: valid PNGs, fault bands, edge cases."""

from __future__ import annotations

import math
import os

import pytest
from PIL import Image

from bench.common import LoadResult
from bench.soak import Probe, interval_row
from deploy import plots
from deploy.chaos import write_report

# ---------------------------------------------------------------------- synthetic reports


def _fault(index: int, kind: str, start: float, duration: float, target: str = "be1") -> dict:
    return {"index": index, "kind": kind, "start_s": start, "duration_s": duration, "target": target,
            "delay_ms": 0, "end_s": round(start + duration, 1), "settled_s": round(start + duration + 8, 1)}


def _samples(n: int, *, error_at: tuple[int, ...] = ()) -> list[dict]:
    out = []
    for i in range(n):
        err = "UNAVAILABLE: fe down" if i in error_at else ""
        out.append({"t": float(i), "loaded": -1 if err else 1000 * i, "rows_per_s": 0.0 if err else 1000.0 + i,
                    "produced": 1000 * i + 50, "lag": -1 if err else (i * 37) % 500,
                    "unhealthy": 3 if 20 <= i < 30 else 0, "job_state": "RUNNING",
                    "alive_bes": 3 if 20 <= i < 25 else 4, "total_bes": 4, "error": err, "leader": "fe"})
    return out


def chaos_report(faults: list[dict] | None = None, samples: list[dict] | None = None,
                 events: list[dict] | None = None, duration: float = 60.0) -> dict:
    faults = [
        _fault(1, "be_kill", 5.0, 6.0, "be1"),
        _fault(2, "slow_link", 15.0, 4.0, "be2"),
        _fault(3, "fe_kill", 25.0, 3.0, "fe"),
        _fault(4, "be_quick_restart", 35.0, 0.0, "be3"),  # instant: a line
        _fault(5, "job_pause", 45.0, 5.0, "job"),
    ] if faults is None else faults
    if events is None:  # every fault recorded as injected and recovered on time, the kill 0.5 s late
        events = [{"t": 0.0, "kind": "observed", "text": "chaos starts", "fault": 0}]
        for f in faults:
            late = 0.5 if f["kind"] == "be_kill" else 0.0
            events.append({"t": f["start_s"] + late, "kind": "fault", "text": f"#{f['index']} in", "fault": f["index"]})
            events.append({"t": f["end_s"] + late, "kind": "recover", "text": f"#{f['index']} out",
                           "fault": f["index"]})
    return {"verdict": "PASS", "violations": [], "seed": 7, "duration_s": duration, "bes": 4, "fes": 1,
            "max_down": 1, "rate": 1000.0, "schedule_text": "chaos schedule: synthetic",
            "schedule": {"seed": 7, "duration_s": duration, "bes": 4, "max_down": 1, "fes": 1, "faults": faults},
            "check": None, "events": events,
            "timeline": _samples(int(duration) + 1, error_at=(26, 27)) if samples is None else samples}


def _bands(fig) -> list:
    return [p for ax in fig.axes for p in ax.patches if p.get_gid() == plots.FAULT_GID]


def _fault_lines(fig) -> list:
    return [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == plots.FAULT_GID]


def _labels(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == plots.LABEL_GID]


def assert_png(path: str, min_size: tuple[int, int] = (800, 500), max_background: float = 0.94) -> None:
    """A PNG of at least ``min_size`` with something drawn: at most ``max_background`` of it one colour
    (a picture with data: 0.73 to 0.93; with only its axes and titles: about 0.95)."""
    assert os.path.getsize(path) > 0
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        img.verify()
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        lo_hi = rgb.getextrema()
        assert any(lo < hi for lo, hi in lo_hi), "the picture is one flat colour"
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20, "hardly anything drawn"
        assert max(c for c, _ in colours) < max_background * rgb.size[0] * rgb.size[1]


# ---------------------------------------------------------------------- chaos


def test_chaos_png_is_written_and_not_blank(tmp_path):
    path = plots.write_chaos_png(chaos_report(), str(tmp_path / "timeline.png"))
    assert path == str(tmp_path / "timeline.png")
    assert_png(path)
    assert not os.path.exists(path + ".tmp.png")


def test_every_fault_is_a_band_on_every_panel_with_a_label_and_a_legend():
    fig, spans = plots.chaos_figure(chaos_report())
    panels = len(fig.axes)
    assert panels == 4
    assert [s.kind for s in spans] == ["be_kill", "slow_link", "fe_kill", "be_quick_restart", "job_pause"]
    assert len(_bands(fig)) == 4 * panels  # the four faults with a length
    assert len(_fault_lines(fig)) == 1 * panels  # the instant one: a line
    assert sorted(_labels(fig)) == sorted(["#1 be_kill be1", "#2 slow_link be2", "#3 fe_kill",
                                           "#4 be_quick_restart be3", "#5 job_pause"])
    legend_kinds = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_kinds == ["be_kill", "be_quick_restart", "slow_link", "fe_kill", "job_pause"]
    # a colour per kind, the same on every band of the kind
    colours = {p.get_facecolor()[:3] for p in _bands(fig)}
    assert len(colours) == 4
    assert plots.kind_colour("be_kill") != plots.kind_colour("slow_link")


def test_bands_use_the_recorded_times_over_the_scheduled_ones():
    _, spans = plots.chaos_figure(chaos_report())
    kill = spans[0]
    assert (kill.start, kill.end) == (5.5, 11.5)  # the events, 0.5 s after the schedule
    assert not kill.open and not kill.instant
    assert spans[3].instant


def test_the_bands_span_the_fault_in_data_coordinates():
    fig, _ = plots.chaos_figure(chaos_report())
    top = fig.axes[0]
    rects = [p for p in top.patches if p.get_gid() == plots.FAULT_GID]
    xs = sorted((round(r.get_x(), 2), round(r.get_x() + r.get_width(), 2)) for r in rects)
    assert xs == [(5.5, 11.5), (15.0, 19.0), (25.0, 28.0), (45.0, 50.0)]


def test_a_fault_still_open_at_the_end_runs_to_the_end_hatched(tmp_path):
    faults = [_fault(1, "be_stop", 10.0, 8.0, "be0"), _fault(2, "be_wipe", 40.0, 30.0, "be2")]
    events = [{"t": 10.0, "kind": "fault", "text": "#1", "fault": 1},
              {"t": 18.0, "kind": "recover", "text": "#1", "fault": 1},
              {"t": 40.0, "kind": "fault", "text": "#2 SIGKILL", "fault": 2},
              {"t": 40.1, "kind": "fault", "text": "#2 wiped", "fault": 2}]  # interrupted: never recovered
    report = chaos_report(faults, _samples(55), events, duration=60.0)
    fig, spans = plots.chaos_figure(report)
    assert spans[1].open and spans[1].start == 40.0 and spans[1].end == 60.0
    assert "#2 be_wipe be2 (open)" in _labels(fig)
    hatched = [p for p in _bands(fig) if p.get_hatch()]
    assert len(hatched) == len(fig.axes)
    assert_png(plots.write_chaos_png(report, str(tmp_path / "open.png")))


def test_a_fault_never_reached_by_an_interrupted_run_is_left_out():
    faults = [_fault(1, "be_kill", 5.0, 3.0), _fault(2, "be_kill", 80.0, 3.0)]
    events = [{"t": 5.0, "kind": "fault", "text": "#1", "fault": 1},
              {"t": 8.0, "kind": "recover", "text": "#1", "fault": 1}]
    report = chaos_report(faults, _samples(30), events, duration=30.0)
    _, spans = plots.chaos_figure(report)
    assert [s.index for s in spans] == [1]


def test_without_events_the_schedule_gives_the_times():
    report = chaos_report(events=[], samples=[])
    _, spans = plots.chaos_figure(report)
    assert [(s.start, s.end) for s in spans][:2] == [(5.0, 11.0), (15.0, 19.0)]


def test_no_faults_draws_the_series_alone(tmp_path):
    report = chaos_report(faults=[], events=[])
    fig, spans = plots.chaos_figure(report)
    assert spans == [] and _bands(fig) == [] and _labels(fig) == [] and not fig.legends
    assert_png(plots.write_chaos_png(report, str(tmp_path / "quiet.png")))  # the series: not blank


def test_empty_samples_do_not_crash(tmp_path):
    report = chaos_report(samples=[], events=[])
    fig, _ = plots.chaos_figure(report)
    assert "no samples recorded" in [t.get_text() for t in fig.axes[0].texts]
    assert_png(plots.write_chaos_png(report, str(tmp_path / "empty.png")), max_background=0.98)
    bare = {"seed": 1, "duration_s": 0, "verdict": "FAIL", "timeline": [], "events": [], "schedule": {"faults": []}}
    assert plots.write_chaos_png(bare, str(tmp_path / "bare.png"))


def test_unanswered_samples_are_gaps_not_zeros():
    d = plots.chaos_series(_samples(30, error_at=(26, 27)))
    assert math.isnan(d["rows_per_s"][26]) and math.isnan(d["lag"][27]) and math.isnan(d["unhealthy"][26])
    assert d["rows_per_s"][25] == 1025.0 and d["unhealthy"][25] == 3.0 and d["alive_bes"][22] == 3.0


def test_many_close_faults_keep_their_labels_apart():
    faults = [_fault(i + 1, "be_kill", 3.0 + i * 0.5, 0.3, f"be{i % 4}") for i in range(40)]
    report = chaos_report(faults, _samples(301), duration=300.0)
    fig, spans = plots.chaos_figure(report)
    assert len(spans) == 40
    assert 0 < len(_labels(fig)) < 40  # the ones that would overlap two others are left out


def test_drawing_failure_is_one_line_not_an_exception(tmp_path, capsys):
    broken = chaos_report(samples=[{"t": "soon"}])
    assert plots.write_chaos_png(broken, str(tmp_path / "broken.png")) is None
    err = capsys.readouterr().err
    assert "chaos timeline picture not drawn" in err and "broken.png" in err
    assert not os.path.exists(tmp_path / "broken.png")
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert plots.write_chaos_png(chaos_report(), str(blocked / "timeline.png")) is None
    assert "not drawn" in capsys.readouterr().err


def test_write_report_puts_the_picture_beside_the_timeline(tmp_path):
    picture = write_report(chaos_report(), str(tmp_path))
    assert picture == str(tmp_path / "timeline.png")
    assert sorted(os.listdir(tmp_path)) == ["report.json", "timeline.png", "timeline.txt"]
    assert_png(picture)


# ---------------------------------------------------------------------- soak


def _soak_rows(n: int, *, errors_at: tuple[int, ...] = ()) -> list[dict]:
    rows = []
    for i in range(1, n + 1):
        row = {"interval": i, "t_s": 20.0 * i, "loads": 300, "failed": 1 if i == 2 else 0, "p50_ms": 20.0 + i,
               "p95_ms": 30.0 + i, "p99_ms": 45.0 + 2 * i, "rl_rows_per_s": None if i == 1 else 1000.0 - i,
               "lag": 100 * i, "max_version_count": 10 + i, "compactions": i, "fe_rss_mb": 120.0 + i,
               "be_rss_sum_mb": 450.0 + 3 * i, "be_rss_max_mb": 160.0 + i, "fe_cpu_pct": 40.0,
               "be_cpu_pct": 90.0, "broker_cpu_pct": None, "job": "RUNNING"}
        if i in errors_at:
            row["errors"] = ["ShowTablets: DEADLINE_EXCEEDED: slow"]
        rows.append(row)
    return rows


def soak_report(rows: list[dict]) -> dict:
    return {"config": {"duration": 20.0 * len(rows), "interval": 20.0, "rate": 1000.0, "bes": 3,
                       "targets": {"p50_ratio_max": 1.25, "version_count_below": 100,
                                   "fe_rss_growth_pct_below": 20.0}},
            "intervals": rows, "summary": {"verdict": "PASS"}}


def test_soak_png_is_written_and_not_blank(tmp_path):
    path = plots.write_soak_png(soak_report(_soak_rows(6)), str(tmp_path / "soak.png"))
    assert_png(path)


def test_soak_figure_panels_and_series():
    fig = plots.soak_figure(soak_report(_soak_rows(6, errors_at=(3,))))
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert len(titles) == 6
    assert titles[0].startswith("one-row stream load latency") and "1 one-row load failed" in titles[0]
    assert "version_count" in titles[-1] and "target < 100" in titles[-1]
    assert [ln.get_label() for ln in fig.axes[0].lines] == ["p50", "p95", "p99"]
    assert [ln.get_label() for ln in fig.axes[3].lines] == ["FE", "BEs (sum)", "largest BE"]
    rate = fig.axes[1].lines[0].get_ydata()
    assert math.isnan(rate[0]) and rate[1] == 998.0  # no rate in the first interval: a gap
    errors = [p for ax in fig.axes for p in ax.patches if p.get_gid() == plots.ERROR_GID]
    assert len(errors) == 6 and round(errors[0].get_x(), 1) == 40.0


def test_soak_without_intervals_or_p99_does_not_crash(tmp_path):
    assert_png(plots.write_soak_png(soak_report([]), str(tmp_path / "none.png")), max_background=0.98)
    old = _soak_rows(3)
    for r in old:
        del r["p99_ms"]  # a soak.json from before p99
    fig = plots.soak_figure(soak_report(old))
    assert [ln.get_label() for ln in fig.axes[0].lines] == ["p50", "p95"]
    assert plots.write_soak_png({}, str(tmp_path / "nothing.png"))


def test_long_soak_is_drawn_in_minutes():
    rows = _soak_rows(30)
    for r in rows:
        r["t_s"] *= 3  # 60 s intervals, 30 minutes
    fig = plots.soak_figure(soak_report(rows))
    assert "(min" in fig.axes[-1].get_xlabel()
    assert fig.axes[0].lines[0].get_xdata()[-1] == pytest.approx(30.0)


def test_soak_interval_row_has_p99():
    loads = [LoadResult(t=float(i), latency_ms=float(i), ok=True) for i in range(1, 101)]
    row = interval_row(1, 0.0, 100.0, loads, None, Probe(t=100.0))
    assert (row["p50_ms"], row["p95_ms"], row["p99_ms"]) == (50.5, 95.0, 99.0)
