"""PNG pictures of a chaos run (timeline.png) and of a soak (soak.png), drawn with matplotlib (Agg).

One module for both (bench/soak.py imports it from deploy/, which imports nothing from bench/):

- :func:`chaos_figure` stacks rows/s, lag, unhealthy tablets and alive BEs over the chaos clock,
  from the report dict that timeline.txt is made of (deploy/chaos.py build_report: ``timeline``
  samples, ``schedule`` faults, ``events``). Each fault is a band shaded across every panel from
  its start to its end in the colour of its kind (a line for an instant fault), labelled
  "#<index> <kind>" in the top panel, with a legend of the kinds. A fault's times are those of
  its "fault" and "recover" events when the run recorded them (a kill inside a compaction
  starts when a compaction is found, not at its scheduled time), else the scheduled ones; a
  fault injected but never recovered (an interrupted run) runs to the end of the picture,
  hatched and labelled "(open)".
- :func:`soak_figure` stacks the soak's per-interval figures (the ``intervals`` rows of
  bench/soak.py's report, bench/results/soak.json): one-row load latency p50/p95/p99, routine load rows/s, lag, FE / BE RSS,
  CPU and the highest version_count.

The figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, never pyplot: no
display, no global state. :func:`write_chaos_png` and :func:`write_soak_png` never raise: a
picture that cannot be drawn (matplotlib missing, odd data, a full disk) costs one line on
stderr, not the run.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploy.chaos_schedule import KINDS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FAULT_GID = "fault-band"  # the gid of every band (Rectangle) and instant-fault line a fault draws
LABEL_GID = "fault-label"  # the gid of the "#i kind" texts on the bands
ERROR_GID = "error-band"  # soak: an interval whose probe got errors
DPI = 110
WIDTH_IN = 13.0
LABEL_FONT_PT = 7.5
# one colour per kind of deploy/chaos_schedule.KINDS, in its order (tab10, then five darker ones)
KIND_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
LINE = "#222222"  # the chaos series: dark, over the coloured bands


@dataclass
class FaultSpan:
    """A fault as the picture draws it: from ``start`` to ``end`` on the chaos clock."""

    index: int
    kind: str
    target: str
    start: float
    end: float
    open: bool = False  # injected, never recovered: drawn to the end of the picture

    @property
    def instant(self) -> bool:
        return self.end <= self.start

    @property
    def label(self) -> str:
        target = f" {self.target}" if self.target.startswith(("be", "etcd", "follower")) else ""
        return f"#{self.index} {self.kind}{target}" + (" (open)" if self.open else "")


def kind_colour(kind: str) -> str:
    """A fixed colour per fault kind (the same kind has the same colour in every run)."""
    i = KINDS.index(kind) if kind in KINDS else sum(map(ord, kind))
    return KIND_PALETTE[i % len(KIND_PALETTE)]

# ---------------------------------------------------------------------- chaos: data


def _num(v, missing: bool = False) -> float:
    return math.nan if v is None or missing else float(v)


def chaos_series(samples: list[dict]) -> dict[str, list[float]]:
    """The sampled series; a sample the FE did not answer (``error``) is a gap, not a zero."""
    out: dict[str, list[float]] = {"t": [], "rows_per_s": [], "lag": [], "unhealthy": [], "alive_bes": []}
    for s in samples:
        bad = bool(s.get("error"))
        out["t"].append(float(s["t"]))
        out["rows_per_s"].append(_num(s.get("rows_per_s"), bad or (s.get("loaded") or 0) < 0))
        out["lag"].append(_num(s.get("lag"), bad or (s.get("lag") or 0) < 0))
        out["unhealthy"].append(_num(s.get("unhealthy"), bad))
        out["alive_bes"].append(_num(s.get("alive_bes"), bad or not s.get("total_bes")))
    return out


def chaos_end(report: dict) -> float:
    """Where the picture's time axis ends: the run's duration, or later samples and events."""
    times = [float(report.get("duration_s") or 0.0)]
    times += [float(s["t"]) for s in report.get("timeline") or []]
    times += [float(e["t"]) for e in report.get("events") or [] if e.get("kind") in ("fault", "recover")]
    return max(times)


def fault_spans(report: dict, end_t: float | None = None) -> list[FaultSpan]:
    """Every scheduled fault with the times the run recorded for it (see the module doc)."""
    end_t = chaos_end(report) if end_t is None else end_t
    events = report.get("events") or []
    started: dict[int, float] = {}
    recovered: dict[int, float] = {}
    for e in events:
        i = int(e.get("fault") or 0)
        if not i:
            continue
        if e.get("kind") == "fault":
            started.setdefault(i, float(e["t"]))
        elif e.get("kind") == "recover":
            recovered.setdefault(i, float(e["t"]))
    ran = bool(report.get("timeline")) or bool(started)
    spans = []
    for f in (report.get("schedule") or {}).get("faults") or []:
        i = int(f["index"])
        start = started.get(i, float(f["start_s"]))
        end = recovered.get(i)
        is_open = False
        if end is None:
            if i in started:  # injected and never recovered
                end, is_open = max(end_t, start), True
            elif ran and start > end_t:
                continue  # scheduled after the run ended: never happened
            else:
                end = float(f.get("end_s", start + float(f.get("duration_s") or 0.0)))
        spans.append(FaultSpan(i, str(f["kind"]), str(f.get("target", "")), start, max(end, start), is_open))
    return spans


# ---------------------------------------------------------------------- drawing helpers


def _new_figure(panels: int, heights: list[float] | None = None) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = heights or [1.0] * panels
    fig = Figure(figsize=(WIDTH_IN, 1.2 + 2.1 * sum(heights)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, sharex=True, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.margins(x=0)
    return fig, list(axes)


def _plot(ax: Axes, x: list[float], y: list[float], label: str, colour: str, *, step: bool = False,
          marker: str = "") -> None:
    if step:
        ax.step(x, y, where="post", label=label, color=colour, linewidth=1.4)
    else:
        ax.plot(x, y, label=label, color=colour, linewidth=1.4, marker=marker, markersize=4)


def _finish_panel(ax: Axes, title: str, ylabel: str, *, legend: bool = False, integer: bool = False,
                  thousands: bool = False) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.set_title(title, loc="left", fontsize=10)
    ax.set_ylabel(ylabel)
    values = [float(v) for ln in ax.lines for v in ln.get_ydata() if not math.isnan(float(v))]
    ax.set_ylim(0, max(max(values, default=0.0) * 1.12, 1.0))  # from 0, with room above the highest
    if integer or thousands:  # counts: no 0.2 ticks (printed "0" by the thousands format) on a flat 0
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5 if integer else "auto"))
    if thousands:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    if legend and ax.get_legend_handles_labels()[0]:  # right of the panel: never over the data
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False, borderaxespad=0)


def _draw_faults(fig: Figure, axes: list[Axes], spans: list[FaultSpan], x_end: float) -> int:
    """The fault bands on every panel, their labels on the top one, a legend of the kinds.

    Returns the labels drawn (a label that would overlap two others is left out; its band and
    colour still say what it is).
    """
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    for ax in axes:
        for s in spans:
            c = kind_colour(s.kind)
            if s.instant:
                ax.axvline(s.start, color=c, linewidth=1.6, linestyle="--", gid=FAULT_GID, zorder=1)
            else:
                ax.axvspan(s.start, s.end, facecolor=c, alpha=0.28, edgecolor=c, linewidth=0.8,
                           hatch="//" if s.open else None, gid=FAULT_GID, zorder=0)
    top = axes[0]
    trans = blended_transform_factory(top.transData, top.transAxes)
    width_pt = top.get_position().width * fig.get_figwidth() * 72
    min_dx = (LABEL_FONT_PT * 1.6) * max(x_end, 1e-9) / max(width_pt, 1.0)
    lanes = [(0.97, "top"), (0.03, "bottom")]
    last_x = [-math.inf] * len(lanes)
    drawn = 0
    for s in sorted(spans, key=lambda s: s.start):
        x = s.start if s.instant else (s.start + min(s.end, x_end)) / 2
        lane = next((k for k in range(len(lanes)) if x - last_x[k] >= min_dx), None)
        if lane is None:
            continue
        last_x[lane] = x
        y, va = lanes[lane]
        top.text(x, y, s.label, transform=trans, rotation=90, ha="center", va=va, fontsize=LABEL_FONT_PT,
                 gid=LABEL_GID, clip_on=True, zorder=5,
                 bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.75})
        drawn += 1
    kinds = sorted({s.kind for s in spans}, key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))
    if kinds:
        handles = [Patch(facecolor=kind_colour(k), alpha=0.5, edgecolor=kind_colour(k), label=k) for k in kinds]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(kinds), 6), fontsize=8,
                   title="fault kinds: shaded from injection to recovery (hatched: never recovered), "
                         "a dashed line for an instant one", title_fontsize=8, frameon=False)
    return drawn


# ---------------------------------------------------------------------- chaos: figure


def chaos_figure(report: dict) -> tuple[Figure, list[FaultSpan]]:
    """The chaos timeline: the figure and the faults drawn on it."""
    samples = report.get("timeline") or []
    x_end = chaos_end(report)
    spans = fault_spans(report, x_end)
    d = chaos_series(samples)
    fig, axes = _new_figure(4, [1.2, 1.0, 0.8, 0.6])
    _plot(axes[0], d["t"], d["rows_per_s"], "rows/s", LINE)
    _finish_panel(axes[0], "routine load: rows loaded per second (over the last 5 s)", "rows/s", thousands=True)
    _plot(axes[1], d["t"], d["lag"], "lag", LINE)
    _finish_panel(axes[1], "routine load lag: messages produced but not yet loaded (all partitions)", "messages",
                  thousands=True)
    _plot(axes[2], d["t"], d["unhealthy"], "unhealthy", LINE, step=True)
    _finish_panel(axes[2], "unhealthy tablets (SHOW PROC /statistic)", "tablets", integer=True)
    _plot(axes[3], d["t"], d["alive_bes"], "alive", LINE, step=True)
    total = max((s.get("total_bes") or 0 for s in samples), default=0) or report.get("bes") or 0
    _finish_panel(axes[3], f"BEs the FE reports alive (of {total})" if total else "BEs the FE reports alive",
                  "BEs", integer=True)
    if total:
        axes[3].set_ylim(0, total + 0.5)
    for ax in axes:
        ax.set_xlim(0, max(x_end, 1.0))
    if not samples:
        axes[0].text(0.5, 0.5, "no samples recorded", transform=axes[0].transAxes, ha="center", va="center",
                     fontsize=12, color="#888888")
    duration = float(report.get("duration_s") or 0.0)
    if 0 < duration < x_end:  # samples past the schedule: the run went on (catch-up, a late recovery)
        for ax in axes:
            ax.axvline(duration, color="#555555", linestyle=":", linewidth=1.0)
        axes[-1].annotate("end of the schedule", (duration, 0.0), xycoords=("data", "axes fraction"),
                          xytext=(-3, 3), textcoords="offset points", ha="right", va="bottom", fontsize=7.5,
                          color="#555555", bbox={"boxstyle": "round,pad=0.1", "facecolor": "white",
                                                 "edgecolor": "none", "alpha": 0.75})
    axes[-1].set_xlabel("time since the chaos clock started (s)")
    fig.suptitle(f"tabletsim chaos: seed {report.get('seed')}, {_g(report.get('duration_s'))} s of faults, "
                 f"{report.get('bes', '?')} BEs, {report.get('fes', 1)} FE(s), "
                 f"{len(spans)} faults, ~{_g(report.get('rate'))} rows/s produced: verdict {report.get('verdict', '?')}",
                 fontsize=12, fontweight="bold")
    _draw_faults(fig, axes, spans, x_end)
    return fig, spans


def _g(v) -> str:
    return "?" if v is None else f"{v:,.0f}" if isinstance(v, float | int) else str(v)


# ---------------------------------------------------------------------- soak: figure


def soak_figure(report: dict) -> Figure:
    """The soak's per-interval figures (``report["intervals"]``, as bench/soak.py writes them)."""
    rows = report.get("intervals") or []
    minutes = bool(rows) and float(rows[-1].get("t_s") or 0) > 900
    scale = 60.0 if minutes else 1.0
    x = [float(r.get("t_s") or 0) / scale for r in rows]

    def col(name: str) -> list[float]:
        return [_num(r.get(name)) for r in rows]

    fig, axes = _new_figure(6, [1.1, 0.9, 0.9, 1.0, 0.9, 0.8])
    for name, label, colour in (("p50_ms", "p50", "#1f77b4"), ("p95_ms", "p95", "#ff7f0e"),
                                ("p99_ms", "p99", "#d62728")):
        if any(name in r for r in rows):
            _plot(axes[0], x, col(name), label, colour, marker="o")
    failed = sum(int(r.get("failed") or 0) for r in rows)
    failures = f" ({failed:,} one-row load{'s' if failed > 1 else ''} failed)" if failed else ""
    _finish_panel(axes[0], "one-row stream load latency per interval" + failures, "ms", legend=True)
    _plot(axes[1], x, col("rl_rows_per_s"), "rows/s", "#1f77b4", marker="o")
    _finish_panel(axes[1], "routine load: rows loaded per second over the interval", "rows/s", thousands=True)
    _plot(axes[2], x, col("lag"), "lag", "#d62728", marker="o")
    _finish_panel(axes[2], "routine load lag at the end of the interval (all partitions)", "messages",
                  thousands=True)
    for name, label, colour in (("fe_rss_mb", "FE", "#9467bd"), ("be_rss_sum_mb", "BEs (sum)", "#2ca02c"),
                                ("be_rss_max_mb", "largest BE", "#8c564b")):
        _plot(axes[3], x, col(name), label, colour, marker="o")
    _finish_panel(axes[3], "resident memory (RSS)", "MB", legend=True, thousands=True)
    for name, label, colour in (("fe_cpu_pct", "FE", "#9467bd"), ("be_cpu_pct", "BEs (sum)", "#2ca02c"),
                                ("broker_cpu_pct", "broker", "#7f7f7f")):
        _plot(axes[4], x, col(name), label, colour, marker="o")
    _finish_panel(axes[4], "CPU over the interval", "% of one core", legend=True)
    _plot(axes[5], x, col("max_version_count"), "max version_count", "#e377c2", marker="o")
    target = ((report.get("config") or {}).get("targets") or {}).get("version_count_below")
    _finish_panel(axes[5], "highest version_count of any replica" + (f" (target < {target})" if target else ""),
                  "versions", integer=True)
    for ax in axes:
        ax.set_xlim(0, max(x[-1] if x else 0.0, 1.0) * 1.02)
    errors = _error_intervals(rows, scale)
    for ax in axes:
        for lo, hi in errors:
            ax.axvspan(lo, hi, facecolor="#d62728", alpha=0.12, edgecolor="none", gid=ERROR_GID, zorder=0)
    if errors:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(facecolor="#d62728", alpha=0.25, label="an interval whose probe got errors "
                                  "(see \"errors\" in soak.json)")],
                   loc="outside lower center", fontsize=8, frameon=False)
    if not rows:
        axes[0].text(0.5, 0.5, "no intervals recorded", transform=axes[0].transAxes, ha="center", va="center",
                     fontsize=12, color="#888888")
    axes[-1].set_xlabel("time since the soak started (" + ("min" if minutes else "s") + ", end of each interval)")
    cfg = report.get("config") or {}
    summary = report.get("summary") or {}
    fig.suptitle(f"tabletsim soak: {len(rows)} intervals of {_g(cfg.get('interval'))} s, {cfg.get('bes', '?')} BEs, "
                 f"routine load at ~{_g(cfg.get('rate'))} rows/s: verdict {summary.get('verdict', '?')}",
                 fontsize=12, fontweight="bold")
    return fig


def _error_intervals(rows: list[dict], scale: float) -> list[tuple[float, float]]:
    """(start, end) of every interval whose end-of-interval probe reported errors."""
    out, start = [], 0.0
    for r in rows:
        end = float(r.get("t_s") or 0) / scale
        if r.get("errors"):
            out.append((start, end))
        start = end
    return out


# ---------------------------------------------------------------------- writing, never raising


def save_png(fig: Figure, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, format="png", dpi=DPI)
    os.replace(tmp, path)
    return path


def _safe(what: str, path: str, draw) -> str | None:
    try:
        return save_png(draw(), path)
    except Exception as exc:  # noqa: BLE001 - a picture never fails the run it shows
        print(f"{what} not drawn ({path}): {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return None


def write_chaos_png(report: dict, path: str) -> str | None:
    """Draw the chaos timeline into ``path``; the path, or None (with a line on stderr) if it failed."""
    return _safe("chaos timeline picture", path, lambda: chaos_figure(report)[0])


def write_soak_png(report: dict, path: str) -> str | None:
    """Draw the soak's intervals into ``path``; the path, or None (with a line on stderr) if it failed."""
    return _safe("soak picture", path, lambda: soak_figure(report))
