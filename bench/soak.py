"""`make soak DURATION=s`: a long steady run that shows whether loads slow down, versions pile up or memory grows.

    .venv/bin/python -m bench.soak [--duration 600] [--interval 60] [--rate 1000] [--broker-nice 10] [--bes 3]
                                   [--catch-up-bound 180]

Starts its own cluster (embedded broker, FE, --bes BEs) on free loopback ports in a temporary
run dir and runs two workloads side by side for --duration seconds:

- a routine load job (max_batch_interval 1 s) from an 8-partition topic fed by a steady producer
  at --rate rows/s into the RF=3 MAJORITY table of deploy/workload.py;
- one-row StreamLoad calls, one after another, into a separate 1-bucket RF=3 MAJORITY table; the
  FE answers Success only once a load is VISIBLE, so a call's latency is the one-row load latency.

Every --interval seconds it prints one line: one-row loads done in the interval and their latency
p50/p95/p99, routine load rows/s (from Statistic loadedRows), total Lag, the highest version_count
of any replica of both tables (ShowTablets), compactions done so far (GetBackendInfo on every
BE), and FE / BE RSS. Then it stops the producer and runs the chaos checker (deploy/chaos_checker.py:
caught up, every id exactly once), prints the verdict against the targets and writes
bench/results/soak.json and bench/results/soak.png (the intervals' figures over time, drawn by
deploy/plots.py; a picture that cannot be drawn costs a line on stderr). Exit code 0 on PASS,
1 on FAIL (or when the run could not be set up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field

import grpc

from bench.common import (
    BackendInfo,
    LoadResult,
    be_nodes,
    bench_cluster,
    cluster_rss_mb,
    cpu_seconds,
    create_one_row_table,
    format_table,
    interrupt_on_sigterm,
    max_version_count,
    one_row_load,
    percentile,
    write_json,
)
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import CHANNEL_OPTIONS
from deploy import plots, workload
from deploy.chaos_checker import Bounds, Checker, CheckResult
from deploy.chaos_runner import ChaosRunner, Recorder
from deploy.chaos_schedule import Schedule
from deploy.cluster import LocalCluster
from deploy.fe_pool import FrontendPool

PARTITIONS = 8
# one round of sends every second, each round one record batch per partition (the linger outlasts
# the round's sends; with a 20 ms linger a round of 500 sends became 3-4 batches per partition).
# The embedded broker's memory engine spends CPU per fetch and ListOffsets in proportion to the
# batches a partition holds; at the chaos producer's 50 rounds/s it held 90k of them after 30
# minutes and its CPU climbed past the FE's and BEs' together. Production stays steady at --rate.
# Measured on Tansu 0.6 (broker CPU per request, 1 partition): at 100 / 3,000 record batches a
# ListOffsets costs 0.6 / 2.0 ms and a fetch that is not at the log end 1.2 / 3.6 ms, while
# produce (0.2 ms) and fetches waiting at the end cost the same at any size. Every fetch that
# returns data is one that is not at the end, so the broker's CPU grows with (batches held) x
# (batches produced per second): one round a second (not two) halves both.
PRODUCE_TICK_S = 1.0
PRODUCE_LINGER_MS = 250
TOPIC = "soak_events"
ONE_ROW_DB, ONE_ROW_TABLE = "soak", "one_row"
FIRST_ROWS_TIMEOUT_S = 90.0
LOAD_TIMEOUT_S = 60
PROBE_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = LOAD_TIMEOUT_S + 40.0
ERRORS_KEPT = 20


class SetupError(RuntimeError):
    """The run could not get to its first interval (schema, job, producer or first rows)."""


# ---------------------------------------------------------------------- pure: intervals, verdict, text


@dataclass
class Targets:
    p50_ratio_max: float = 1.25  # last interval's one-row p50 <= this x the first's
    version_count_below: int = 100  # every replica's version_count stays below this
    fe_rss_growth_pct_below: float = 20.0  # FE RSS growth from the 5th interval to the end


@dataclass
class Probe:
    """What the cluster said at the end of an interval (None: could not be read)."""

    t: float
    loaded_rows: int | None = None
    lag: int | None = None
    job_state: str = "?"
    max_version_count: int | None = None
    compactions: int | None = None
    fe_rss_mb: float | None = None
    be_rss_mb: list[float | None] = field(default_factory=list)
    cpu_pct: dict[str, float | None] = field(default_factory=dict)
    """CPU use since the previous probe, in % of one core: "fe", "be" (all BEs), "broker"."""
    errors: list[str] = field(default_factory=list)


def _round(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


def interval_row(index: int, start_t: float, end_t: float, loads: list[LoadResult], prev: Probe | None,
                 probe: Probe) -> dict:
    """One interval's figures: loads that ended in (start_t, end_t], rates from ``prev`` to ``probe``.

    ``prev`` is the last probe whose loadedRows could be read (None: no rate yet).
    """
    mine = [r for r in loads if start_t < r.t <= end_t]
    ok = [r.latency_ms for r in mine if r.ok]
    rate = None
    if prev is not None and prev.loaded_rows is not None and probe.loaded_rows is not None and probe.t > prev.t:
        rate = (probe.loaded_rows - prev.loaded_rows) / (probe.t - prev.t)
    be_rss = [v for v in probe.be_rss_mb if v is not None]
    return {
        "interval": index,
        "t_s": round(end_t, 1),
        "loads": len(ok),
        "failed": len(mine) - len(ok),
        "p50_ms": _round(percentile(ok, 50)),
        "p95_ms": _round(percentile(ok, 95)),
        "p99_ms": _round(percentile(ok, 99)),
        "rl_rows_per_s": _round(rate),
        "lag": probe.lag,
        "max_version_count": probe.max_version_count,
        "compactions": probe.compactions,
        "fe_rss_mb": _round(probe.fe_rss_mb),
        "be_rss_sum_mb": _round(sum(be_rss)) if be_rss else None,
        "be_rss_max_mb": _round(max(be_rss)) if be_rss else None,
        "fe_cpu_pct": _round(probe.cpu_pct.get("fe"), 0),
        "be_cpu_pct": _round(probe.cpu_pct.get("be"), 0),
        "broker_cpu_pct": _round(probe.cpu_pct.get("broker"), 0),
        "job": probe.job_state,
    }


TABLE_COLUMNS = ["interval", "t_s", "loads", "failed", "p50_ms", "p95_ms", "p99_ms", "rl_rows_per_s", "lag",
                 "max_version_count", "compactions", "fe_rss_mb", "be_rss_sum_mb", "be_rss_max_mb",
                 "fe_cpu_pct", "be_cpu_pct", "broker_cpu_pct", "job"]
# wide enough for a long run, so that lines printed one at a time stay aligned
MIN_WIDTHS = {"t_s": 6, "loads": 5, "failed": 6, "p50_ms": 6, "p95_ms": 6, "p99_ms": 6, "lag": 7,
              "compactions": 11}


def format_interval_lines(rows: list[dict]) -> list[str]:
    """The header and one line per interval."""
    return format_table(rows, TABLE_COLUMNS, MIN_WIDTHS)


def p50_ratio(rows: list[dict]) -> float | None:
    """Last interval's one-row p50 over the first's (None if either had no successful load)."""
    if not rows:
        return None
    first, last = rows[0]["p50_ms"], rows[-1]["p50_ms"]
    if first is None or last is None or first <= 0:
        return None
    return last / first


def max_version_count_seen(rows: list[dict]) -> int | None:
    seen = [r["max_version_count"] for r in rows if r["max_version_count"] is not None]
    return max(seen) if seen else None


def rss_reference_index(n_rows: int) -> int:
    """The row FE RSS growth is measured from: the 5th interval (minute 5), or the first in shorter runs."""
    return 4 if n_rows >= 5 else 0


def fe_rss_growth_pct(rows: list[dict]) -> float | None:
    if not rows:
        return None
    ref, last = rows[rss_reference_index(len(rows))]["fe_rss_mb"], rows[-1]["fe_rss_mb"]
    if ref is None or last is None or ref <= 0:
        return None
    return (last - ref) / ref * 100


@dataclass
class Check:
    name: str
    value: str
    target: str
    ok: bool


def checks(rows: list[dict], lost: int | None, duplicated: int | None, targets: Targets,
           violations: list[str] | None = None) -> list[Check]:
    """The soak's targets; anything that could not be measured fails. ``violations`` are the chaos
    checker's (tablets healthy, no open txn, job RUNNING, lag 0, equal checksums); None: it never
    gave a verdict."""
    out = []
    ratio = p50_ratio(rows)
    first = rows[0]["p50_ms"] if rows else None
    last = rows[-1]["p50_ms"] if rows else None
    out.append(Check(
        "one-row load p50, last / first interval",
        f"{_fmt(first)} ms -> {_fmt(last)} ms = {_fmt(ratio, 2)}x" if ratio is not None
        else f"not measured (first p50 {_fmt(first)} ms, last {_fmt(last)} ms)",
        f"<= {targets.p50_ratio_max:g}x", ratio is not None and ratio <= targets.p50_ratio_max))
    vc = max_version_count_seen(rows)
    out.append(Check("max version_count of any replica", "not measured" if vc is None else f"{vc:,}",
                     f"< {targets.version_count_below}", vc is not None and vc < targets.version_count_below))
    growth = fe_rss_growth_pct(rows)
    ref = rss_reference_index(len(rows))
    frm = f"interval {ref + 1} ({_fmt(rows[ref]['fe_rss_mb'])} MB)" if rows else "-"
    to = f"interval {len(rows)} ({_fmt(rows[-1]['fe_rss_mb'])} MB)" if rows else "-"
    out.append(Check("FE RSS growth", f"{frm} -> {to}: " + ("not measured" if growth is None else f"{growth:+.1f} %"),
                     f"< {targets.fe_rss_growth_pct_below:g} %",
                     growth is not None and growth < targets.fe_rss_growth_pct_below))
    measured = lost is not None and duplicated is not None
    out.append(Check("routine load exactly once", f"lost {lost}, duplicated {duplicated}" if measured
                     else "not measured", "0 lost, 0 duplicated", measured and lost == 0 and duplicated == 0))
    if violations is None:
        seen = "not measured"
    else:
        seen = "none" if not violations else f"{len(violations)}: " + "; ".join(violations)[:200]
    out.append(Check("checker: healthy, no open txn, RUNNING, lag 0", seen, "none",
                     violations is not None and not violations))
    return out


def verdict(results: list[Check]) -> str:
    return "PASS" if results and all(c.ok for c in results) else "FAIL"


def format_checks(results: list[Check]) -> list[str]:
    width = max((len(c.name) for c in results), default=0)
    return [f"  {'PASS' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.value}  (target {c.target})"
            for c in results]


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def interval_count(duration_s: float, interval_s: float) -> int:
    return max(1, math.ceil(duration_s / interval_s - 1e-9))


# ---------------------------------------------------------------------- the run


class Soak:
    def __init__(self, cluster: LocalCluster, pool: FrontendPool, args, out: dict) -> None:
        self.cluster = cluster
        self.pool = pool
        self.admin: admin_pb2_grpc.AdminServiceStub = pool.admin  # type: ignore[assignment]
        self.args = args
        self.out = out
        self.loads: list[LoadResult] = []
        self.errors: Counter[str] = Counter()
        self.stop_loads = asyncio.Event()
        self.backends = BackendInfo(cluster)
        self.t0 = time.monotonic()
        self._cpu: dict[str, float | None] = {}
        self._cpu_t = 0.0

    # ------------------------------------------------------------------ workloads
    async def setup(self) -> tuple[workload.Producer, asyncio.Task]:
        broker = self.cluster.broker_address
        try:
            await workload.create_schema(self.admin)
            await create_one_row_table(self.admin, ONE_ROW_DB, ONE_ROW_TABLE)
            await workload.create_topic(broker, TOPIC, PARTITIONS)
            await workload.create_job(self.admin, broker, TOPIC, desired=self.args.bes, interval_s=1)
        except grpc.aio.AioRpcError as exc:
            raise SetupError(f"schema or job: {exc.code().name}: {exc.details()}") from None
        producer = workload.Producer(broker, TOPIC, PARTITIONS, 0, 10**12, self.args.rate, tick_s=PRODUCE_TICK_S,
                                     linger_ms=PRODUCE_LINGER_MS)
        return producer, asyncio.create_task(producer.run())

    async def wait_first_rows(self, produce: asyncio.Task) -> None:
        try:
            await workload.wait_first_rows(self.admin, produce, FIRST_ROWS_TIMEOUT_S)
        except RuntimeError as exc:
            raise SetupError(str(exc)) from None

    async def one_row_loads(self, deadline: float) -> None:
        """One-row loads one after another until stopped or past ``deadline`` (monotonic)."""
        max_loads = int((deadline - time.monotonic()) * 1000) + 1  # far above any rate one loop reaches
        for i in range(max_loads):
            if self.stop_loads.is_set() or time.monotonic() >= deadline:
                return
            res = await one_row_load(self.admin, ONE_ROW_DB, ONE_ROW_TABLE, i, f"soak-{i}", LOAD_TIMEOUT_S)
            self.loads.append(LoadResult(res.t - self.t0, res.latency_ms, res.ok, res.error))  # run clock
            if not res.ok:
                self.errors[res.error[:200]] += 1
                await asyncio.sleep(0.1)  # a failing cluster is not hammered

    # ------------------------------------------------------------------ sampling
    def _cpu_pct(self, t: float) -> dict[str, float | None]:
        """% of one core each kind of process used since the last call."""
        groups = {"fe": ["fe"], "be": be_nodes(self.cluster), "broker": ["broker"]}
        now: dict[str, float | None] = {}
        for kind, nodes in groups.items():
            used = [cpu_seconds(self.cluster.pid(n)) for n in nodes]
            now[kind] = None if any(u is None for u in used) else sum(u for u in used if u is not None)
        out: dict[str, float | None] = {}
        for kind, used in now.items():
            before = self._cpu.get(kind)
            dt = t - self._cpu_t
            out[kind] = 100 * (used - before) / dt if used is not None and before is not None and dt > 0 else None
        self._cpu, self._cpu_t = now, t
        return out

    async def probe(self) -> Probe:
        p = Probe(t=time.monotonic() - self.t0)
        try:
            jobs = (await self.admin.ShowRoutineLoad(admin_pb2.ShowRoutineLoadRequest(
                db=workload.DB, name=workload.JOB), timeout=PROBE_TIMEOUT_S)).jobs
            if jobs:
                p.job_state = jobs[0].state
                p.loaded_rows = int(json.loads(jobs[0].statistic or "{}").get("loadedRows", 0))
                p.lag = sum(json.loads(jobs[0].lag or "{}").values())
        except grpc.aio.AioRpcError as exc:
            p.errors.append(f"ShowRoutineLoad: {exc.code().name}: {exc.details()}")
        try:
            p.max_version_count = await max_version_count(
                self.admin, [(workload.DB, workload.TABLE), (ONE_ROW_DB, ONE_ROW_TABLE)], PROBE_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            p.errors.append(f"ShowTablets: {exc.code().name}: {exc.details()}")
        try:
            p.compactions = await self.backends.compactions(PROBE_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            p.errors.append(f"GetBackendInfo: {exc.code().name}: {exc.details()}")
        p.fe_rss_mb, p.be_rss_mb = cluster_rss_mb(self.cluster)
        p.cpu_pct = self._cpu_pct(p.t)
        gone = [n for n in self.cluster.nodes() if self.cluster.pid(n) is None]
        if gone:
            p.errors.append(f"not running: {', '.join(gone)}")
        return p

    async def intervals(self, produce: asyncio.Task) -> None:
        n = interval_count(self.args.duration, self.args.interval)
        self.t0 = time.monotonic()
        last_good = await self.probe()
        loader = asyncio.create_task(self.one_row_loads(self.t0 + n * self.args.interval))
        rows: list[dict] = self.out["intervals"]
        start_t = 0.0
        try:
            for i in range(1, n + 1):
                await asyncio.sleep(max(0.0, self.t0 + i * self.args.interval - time.monotonic()))
                end_t = time.monotonic() - self.t0
                probe = await self.probe()
                row = interval_row(i, start_t, end_t, self.loads, last_good, probe)
                start_t = end_t
                if probe.loaded_rows is not None:
                    last_good = probe
                if probe.errors:
                    row["errors"] = probe.errors
                rows.append(row)
                lines = format_interval_lines(rows)
                if i == 1:
                    print(lines[0], flush=True)
                print(lines[-1] + ("   " + "; ".join(probe.errors)[:160] if probe.errors else ""), flush=True)
                if produce.done():
                    raise RuntimeError(f"the producer stopped: {produce.exception()!r}")
                if loader.done() and i < n:
                    loader.result()  # raises what stopped the one-row loads
                    raise RuntimeError("the one-row loads stopped before the end of the run")
        finally:
            self.stop_loads.set()
            try:
                await asyncio.wait_for(loader, STOP_TIMEOUT_S)
            except TimeoutError:
                print(f"the last one-row load did not answer within {STOP_TIMEOUT_S:.0f} s", file=sys.stderr)
            self.out["one_row_loads"] = {"done": sum(1 for r in self.loads if r.ok),
                                         "failed": sum(1 for r in self.loads if not r.ok),
                                         "errors": dict(self.errors.most_common(ERRORS_KEPT))}

    async def exactly_once(self, producer: workload.Producer, produce: asyncio.Task) -> CheckResult:
        """Stop the producer, then the chaos checker: caught up (lag 0, all visible), ids exactly once."""
        producer.stop()
        done, _ = await asyncio.wait({produce}, timeout=30)
        if not done:
            raise RuntimeError("the producer did not stop within 30 s")
        if produce.exception() is not None:
            raise RuntimeError(f"the producer failed: {produce.exception()!r}")
        checker = self.checker(producer)
        print(f"\nproducer stopped at {producer.produced:,} rows; checking exactly-once "
              f"(deploy/chaos_checker.py, catch-up bound {self.args.catch_up_bound:.0f} s)", flush=True)
        result = await checker.run(producer.produced)
        self.out["checker"] = {**result.to_json(), "violations": list(checker.rec.violations)}
        return result

    def checker(self, producer: workload.Producer) -> Checker:
        """The chaos checker over a schedule of no faults, asking the FEs through this soak's pool."""
        schedule = Schedule(seed=0, duration_s=0.0, bes=self.args.bes, max_down=0, faults=())
        rec = Recorder()
        runner = ChaosRunner(self.cluster, self.pool, schedule, producer, rec, print_every_s=10.0)
        bounds = Bounds(catch_up_s=self.args.catch_up_bound, healthy_s=self.args.catch_up_bound,
                        txns_s=self.args.catch_up_bound)
        return Checker(self.admin, runner, rec, bounds)

    async def close(self) -> None:
        await self.backends.close()


async def run(cluster: LocalCluster, args, out: dict) -> None:
    async with FrontendPool(cluster.frontends(), CHANNEL_OPTIONS) as pool:
        soak = Soak(cluster, pool, args, out)
        produce: asyncio.Task | None = None
        try:
            producer, produce = await soak.setup()
            await soak.wait_first_rows(produce)
            print(f"routine load flowing: topic {TOPIC} ({PARTITIONS} partitions, ~{args.rate:,.0f} rows/s) -> "
                  f"{workload.DB}.{workload.TABLE} (RF=3 MAJORITY), max_batch_interval 1 s; one-row loads -> "
                  f"{ONE_ROW_DB}.{ONE_ROW_TABLE} (1 bucket, RF=3 MAJORITY)\n", flush=True)
            await soak.intervals(produce)
            result = await soak.exactly_once(producer, produce)
            out["lost"], out["duplicated"] = len(result.missing), len(result.duplicated)
            out["produced"], out["loaded"] = result.produced, result.loaded
        finally:
            if produce is not None:
                producer.stop()
                await asyncio.gather(produce, return_exceptions=True)
            await soak.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tabletsim-soak", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds of steady load")
    p.add_argument("--interval", type=float, default=60.0, help="seconds per printed line")
    p.add_argument("--rate", type=float, default=1000.0, help="routine load produce rate, rows/s over all partitions")
    p.add_argument("--bes", type=int, default=3)
    p.add_argument("--broker-nice", type=int, default=10,
                   help="niceness of the embedded broker (0: as the cluster). Its memory engine spends CPU per "
                        "request in proportion to the record batches it holds, so over a long run on a small "
                        "machine it would take the cores from the FE and BEs this soak measures (default 10)")
    p.add_argument("--catch-up-bound", type=float, default=180.0,
                   help="seconds after the producer stops for lag 0, everything visible, tablets healthy")
    args = p.parse_args(argv)
    if args.bes < 3:
        p.error("--bes must be at least 3 (the tables have 3 replicas)")
    if args.interval <= 0 or args.duration <= 0 or args.rate <= 0:
        p.error("--duration, --interval and --rate must be positive")
    interrupt_on_sigterm()
    targets = Targets()
    out: dict = {"config": {**vars(args), "partitions": PARTITIONS, "max_batch_interval_s": 1,
                            "one_row_table": f"{ONE_ROW_DB}.{ONE_ROW_TABLE}",
                            "routine_load_table": f"{workload.DB}.{workload.TABLE}",
                            "targets": asdict(targets)},
                 "intervals": []}
    n = interval_count(args.duration, args.interval)
    print(f"soak: {n} intervals of {args.interval:g} s, {args.bes} BEs, routine load at ~{args.rate:,.0f} rows/s "
          "and one-row stream loads one after another", flush=True)
    failure = ""
    interrupted = False
    began = time.monotonic()
    try:
        with bench_cluster(args.bes, with_broker=True) as cluster:
            print(f"cluster up: FE {cluster.fe_address}, broker {cluster.broker_address}", flush=True)
            broker_pid = cluster.pid("broker")
            if args.broker_nice and broker_pid is not None:
                os.setpriority(os.PRIO_PROCESS, broker_pid, args.broker_nice)
                print(f"broker (pid {broker_pid}) at nice {args.broker_nice}: see --broker-nice", flush=True)
            asyncio.run(run(cluster, args, out))
    except KeyboardInterrupt:
        interrupted, failure = True, "interrupted"
        print("\ninterrupted: the cluster was stopped", file=sys.stderr)
    except SetupError as exc:
        failure = f"set-up failed: {exc}"
        print(f"error: {failure}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the run failed: still stop the cluster, write and judge
        failure = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    out["total_s"] = round(time.monotonic() - began, 1)
    rows = out["intervals"]
    checker = out.get("checker")
    results = checks(rows, out.get("lost"), out.get("duplicated"), targets,
                     None if checker is None else list(checker.get("violations", [])))
    result = "FAIL" if failure else verdict(results)
    out["summary"] = {
        "verdict": result, "failure": failure,
        "p50_ratio_last_first": _round(p50_ratio(rows), 3),
        "max_version_count": max_version_count_seen(rows),
        "fe_rss_growth_pct": _round(fe_rss_growth_pct(rows), 2),
        "fe_rss_growth_from_interval": rss_reference_index(len(rows)) + 1 if rows else None,
        "lost": out.get("lost"), "duplicated": out.get("duplicated"),
        "checks": [asdict(c) for c in results],
    }
    path = write_json("soak", out)
    picture = plots.write_soak_png(out, os.path.splitext(path)[0] + ".png")
    print()
    print("=" * 76)
    if failure:
        print(f"run ended early: {failure}")
    for v in out.get("checker", {}).get("violations", []):
        print(f"  checker: {v}")
    print("\n".join(format_checks(results)))
    print(f"SOAK VERDICT: {result}   ({len(rows)} intervals, {out['total_s']} s in all; {path}"
          + (f", {picture}" if picture else "") + ")")
    print("=" * 76, flush=True)
    if interrupted:
        return 130
    return 0 if result == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
