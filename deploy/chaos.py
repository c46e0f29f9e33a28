"""`make chaos SEED=n DURATION=s`: seeded faults under load, then a checker that proves the invariants.

    python -m deploy.chaos --seed 1 --duration 300 [--bes 4] [--fes 1] [--max-down 1] [--rate 1000]
                           [--report-dir DIR] [--kinds be_kill,fe_be_partition,...]

1. Generates the fault schedule from the seed and the duration alone (deploy/chaos_schedule.py)
   and prints it before anything starts: the same seed prints the same schedule. --kinds
   narrows the fault kinds (default: every kind).
2. Starts its own cluster (broker, FE, --bes BEs; with --fes 3 three FEs on a 3-member etcd,
   and the fault kinds of FE high availability instead of fe_kill) on free loopback ports in a temporary run dir
   with fast failure detection and repair and debug points on (the link faults are debug-point
   rules), creates the sample workload of deploy/workload.py (an 8-partition topic, an RF=3
   MAJORITY table, a routine load job) and a steady producer.
3. Runs the faults on time while sampling the cluster every second (deploy/chaos_runner.py).
4. Stops the producer and runs the checker with bounded waits (deploy/chaos_checker.py), which
   also measures, for each fault, how long the cluster took to converge after its recovery.
   With more than one FE it also checks that exactly one FE leads and that every FE replayed
   the journal up to the leader's id within 5 s (deploy/chaos_ha.py).
5. Writes report.json, timeline.txt and timeline.png (rows/s, lag, unhealthy tablets and alive
   BEs over time with a shaded band per fault: deploy/plots.py) to --report-dir (default
   bench/results/chaos-<seed>), prints the verdict with the convergence times per fault kind
   (count, min / median / max) and exits 0 (PASS), 1 (a violation, or a process crashed) or 2
   (the run could not be set up). The cluster is always stopped by pid; its run dir is removed
   on PASS and kept (path printed) otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time

import grpc

from common.rpc import CHANNEL_OPTIONS
from deploy import plots, workload
from deploy.chaos_checker import Bounds, Checker, CheckResult, convergence_lines
from deploy.chaos_runner import ChaosRunner, Recorder
from deploy.chaos_schedule import KINDS, Schedule, generate, parse_kinds, quorum_tolerance
from deploy.cluster import ClusterSpec, LocalCluster
from deploy.fe_pool import FrontendPool
from deploy.ports import free_ports

TOPIC_PARTITIONS = 8
CHAOS_FE_CONFIG = {
    "heartbeat_timeout_second": "3",
    "tablet_sched_repair_delay_factor_second": "3",
    "tablet_sched_checker_interval_seconds": "1",
    "routine_load_task_consume_second": "1",
    "routine_load_task_timeout_second": "10",
}
# compactions written at 1 MB/s last tens of milliseconds instead of a few, so that a
# be_kill_in_compaction fault (which polls the BE for a running one) can land inside one
CHAOS_BE_CONFIG = {"compaction_write_limit_mb_per_sec": "1"}
# the driver's channel to the FE: reconnect quickly after the FE is killed and restarted
DRIVER_CHANNEL_OPTIONS = CHANNEL_OPTIONS + [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
FIRST_ROWS_TIMEOUT_S = 90.0


class SetupError(RuntimeError):
    """The run could not get to its first fault (cluster, schema, job or producer)."""


async def _retry_unavailable(call, what: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise SetupError(f"{what}: {exc.code().name}: {exc.details()}") from None
            await asyncio.sleep(0.5)


async def run_chaos(cluster: LocalCluster, schedule: Schedule, rate: float, bounds: Bounds,
                    state: dict) -> tuple[Recorder, CheckResult | None]:
    """Set-up, faults with sampling, then the checker. ``state`` carries the runner out for cleanup."""
    topic = f"chaos_events_{schedule.seed}"
    broker = cluster.broker_address
    async with FrontendPool(cluster.frontends(), DRIVER_CHANNEL_OPTIONS) as pool:
        admin = pool.admin
        pool.prefer((cluster.leader() or ("",))[0])
        await _retry_unavailable(lambda: workload.create_schema(admin), "create the table")
        await workload.create_topic(broker, topic, TOPIC_PARTITIONS)
        await _retry_unavailable(lambda: workload.create_job(admin, broker, topic, desired=3, interval_s=1),
                                 "create the routine load job")
        producer = workload.Producer(broker, topic, TOPIC_PARTITIONS, 0, 10**12, rate)
        produce = asyncio.create_task(producer.run())
        try:
            return await _faults_and_check(cluster, pool, schedule, producer, produce, bounds, state, topic)
        finally:
            producer.stop()
            await asyncio.gather(produce, return_exceptions=True)


async def _faults_and_check(cluster, pool: FrontendPool, schedule: Schedule, producer: workload.Producer,
                            produce: asyncio.Task, bounds: Bounds, state: dict,
                            topic: str) -> tuple[Recorder, CheckResult | None]:
    admin = pool.admin
    print(f"topic {topic} ({TOPIC_PARTITIONS} partitions), table {workload.DB}.{workload.TABLE} (RF=3, MAJORITY), "
          f"job {workload.JOB}; producing ~{producer.rate:,.0f} events/s", flush=True)
    try:
        await workload.wait_first_rows(admin, produce, FIRST_ROWS_TIMEOUT_S)
    except RuntimeError as exc:
        raise SetupError(str(exc)) from None

    rec = Recorder()  # the chaos clock starts now: every time in the report is relative to it
    runner = ChaosRunner(cluster, pool, schedule, producer, rec)
    state["runner"], state["rec"] = runner, rec
    rec.event("observed", f"first rows loaded; chaos starts ({len(schedule.faults)} faults over "
              f"{schedule.duration_s:g} s)")
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(runner.sample_until(stop_sampling))
    try:
        await runner.run_faults()
        await runner._sleep_until(schedule.duration_s)
        rec.event("observed", "all faults are over")
    finally:
        stop_sampling.set()
        await asyncio.gather(sampler, return_exceptions=True)
    producer.stop()
    try:
        await asyncio.wait_for(asyncio.shield(produce), 30)
    except TimeoutError:
        rec.violation("the producer did not stop within 30 s")
    if produce.done() and not produce.cancelled() and produce.exception() is not None:
        rec.violation(f"the producer failed: {produce.exception()!r}")
    try:
        result = await Checker(admin, runner, rec, bounds).run(producer.produced)
    finally:
        for task in list(runner.watchers):
            task.cancel()
        await asyncio.gather(*runner.watchers, return_exceptions=True)
    return rec, result


# ---------------------------------------------------------------------- report


def build_report(args, schedule: Schedule, rec: Recorder | None, result: CheckResult | None, run_dir: str,
                 timings: dict, setup_error: str = "") -> dict:
    violations = list(rec.violations) if rec else []
    if setup_error:
        violations.insert(0, f"set-up failed: {setup_error}")
    return {
        "verdict": "PASS" if not violations and result is not None else "FAIL",
        "violations": violations,
        "seed": args.seed, "duration_s": args.duration, "bes": args.bes, "fes": args.fes,
        "max_down": schedule.max_down,
        "rate": args.rate, "fe_config": CHAOS_FE_CONFIG, "be_config": CHAOS_BE_CONFIG, "run_dir": run_dir, "timings_s": timings,
        "schedule_text": schedule.text(), "schedule": schedule.to_json(),
        "check": result.to_json() if result else None,
        "events": rec.to_json()["events"] if rec else [],
        "timeline": rec.to_json()["samples"] if rec else [],
    }


def timeline_text(report: dict, every_s: float = 5.0) -> str:
    lines = [f"tabletsim chaos: seed {report['seed']}, duration {report['duration_s']} s, verdict {report['verdict']}",
             "", report["schedule_text"], "",
             "     t  what"]
    items = [(e["t"], 0, f"{'>>>' if e['kind'] in ('fault', 'recover') else '   '} {e['text']}")
             for e in report["events"]]
    last = -1e9
    for s in report["timeline"]:
        if s["t"] - last >= every_s:
            last = s["t"]
            items.append((s["t"], 1, f"    loaded {max(s['loaded'], 0):>9,}  {s['rows_per_s']:>7,.0f} rows/s  "
                                     f"lag {s['lag']:>6,}  unhealthy {s['unhealthy']:>3}  "
                                     f"BEs {s['alive_bes']}/{s['total_bes']}  job {s['job_state']}"
                                     + (f"  leader {s.get('leader') or 'none'}" if report.get("fes", 1) > 1 else "")
                                     + (f"  ({s['error'][:50]})" if s["error"] else "")))
    lines += [f"{t:7.1f}s {text}" for t, _, text in sorted(items, key=lambda x: (x[0], x[1]))]
    lines += ["", f"VERDICT: {report['verdict']}"]
    check = report["check"]
    if check:
        lines.append(f"  produced {check['produced']:,}, loaded {check['loaded']:,}, missing {check['missing_count']}, "
                     f"duplicated {check['duplicated_count']}")
        lines.append(f"  converged after (s): {check['converged_after_s']}")
        lines += ["  " + line for line in convergence_lines(check["convergence_by_kind"])]
        lines += [f"    fault #{c['index']} {c['kind']} {c['target']}: {c['note']}"
                  for c in check["convergence"] if c["note"]]
    lines += [f"  violation: {v}" for v in report["violations"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict, report_dir: str) -> str | None:
    """report.json, timeline.txt and timeline.png; the picture's path (None: it could not be drawn,
    which costs a line on stderr and nothing else)."""
    os.makedirs(report_dir, exist_ok=True)
    with open(os.path.join(report_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(report_dir, "timeline.txt"), "w") as f:
        f.write(timeline_text(report))
    return plots.write_chaos_png(report, os.path.join(report_dir, "timeline.png"))


def print_verdict(report: dict, result: CheckResult | None) -> None:
    print()
    print("=" * 76)
    print(f"CHAOS VERDICT: {report['verdict']}   (seed {report['seed']}, {len(report['schedule']['faults'])} faults "
          f"in {report['duration_s']} s)")
    for line in (result.verdict_lines if result else []):
        print("  " + line)
    if result:
        print(f"  converged after (s, from the end of the faults): {result.converged_at}")
        check = result.to_json()
        for line in convergence_lines(check["convergence_by_kind"]):
            print("  " + line)
        for c in check["convergence"]:
            if c["note"]:
                print(f"    fault #{c['index']} {c['kind']} {c['target']}: {c['note']}")
    for v in report["violations"]:
        print(f"  VIOLATION: {v}")
    print("=" * 76, flush=True)


# ---------------------------------------------------------------------- main


def _crash_logs(cluster: LocalCluster) -> list[str]:
    """Nodes whose logs show an uncaught Python traceback (information for the post-mortem)."""
    found = []
    for node in cluster.nodes():
        try:
            with open(cluster.log_path(node), errors="replace") as f:
                n = f.read().count("Traceback (most recent call last)")
        except OSError:
            continue
        if n:
            found.append(f"{node}: {n} tracebacks in {cluster.log_path(node)}")
    return found


_COMPACTION_LINE = re.compile(r"compaction: tablet \d+ (cumulative|base) versions \d+-\d+ \(")


def compaction_counts(cluster: LocalCluster) -> dict[str, int]:
    """Compactions the BEs logged over the whole run (their logs outlive restarts)."""
    counts = {"cumulative": 0, "base": 0, "interrupted_by_kill": 0}
    for node in [n for n in cluster.nodes() if n.startswith("be")]:
        try:
            with open(cluster.log_path(node), errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        for kind in _COMPACTION_LINE.findall(text):
            counts[kind] += 1
        counts["interrupted_by_kill"] += len(re.findall(r"deleted the outputs of (\d+) compactions", text))
    return counts


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tabletsim-chaos", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--duration", type=float, default=300.0, help="seconds of faults (the checker runs after)")
    p.add_argument("--bes", type=int, default=4)
    p.add_argument("--fes", type=int, default=1,
                   help="FEs (odd); more than one: an etcd cluster, leader election and the FE HA fault kinds")
    p.add_argument("--max-down", type=int, default=None,
                   help="most BEs down at once (default: what RF=3 MAJORITY tolerates, 1)")
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    p.add_argument("--report-dir", default=None, help="default bench/results/chaos-<seed>")
    p.add_argument("--healthy-bound", type=float, default=120.0, help="seconds for every tablet to be HEALTHY")
    p.add_argument("--catch-up-bound", type=float, default=120.0, help="seconds for the job to reach lag 0")
    p.add_argument("--keep-run-dir", action="store_true", help="keep the cluster's run dir even on PASS")
    p.add_argument("--kinds", default="", help=f"comma-separated fault kinds (default: all of {', '.join(KINDS)})")
    args = p.parse_args(argv)
    if args.fes < 1 or args.fes % 2 == 0:
        p.error(f"--fes {args.fes}: give an odd number of FEs (1, 3, 5, ...): etcd needs a majority")
    try:
        kinds = parse_kinds(args.kinds, args.fes)
    except ValueError as exc:
        p.error(str(exc))
    max_down = quorum_tolerance(3, "MAJORITY") if args.max_down is None else args.max_down
    if args.bes < 3:
        p.error("--bes must be at least 3 (the table has 3 replicas)")
    schedule = generate(args.seed, args.duration, args.bes, max_down, kinds, fes=args.fes)
    report_dir = args.report_dir or os.path.join("bench", "results", f"chaos-{args.seed}")
    bounds = Bounds(catch_up_s=args.catch_up_bound, healthy_s=args.healthy_bound,
                    txns_s=max(60.0, 3 * float(CHAOS_FE_CONFIG["routine_load_task_timeout_second"])))
    print(schedule.text(), flush=True)
    print()

    run_dir = tempfile.mkdtemp(prefix=f"tabletsim-chaos-{args.seed}-")
    cluster = LocalCluster(run_dir)
    ports = free_ports(1 + args.fes + args.bes)
    spec = ClusterSpec(bes=args.bes, fe_port=ports[1], broker_port=ports[0], fe_ports=ports[1:1 + args.fes],
                       be_ports=ports[1 + args.fes:], with_broker=True, fe_config=dict(CHAOS_FE_CONFIG),
                       be_config=dict(CHAOS_BE_CONFIG), debug_points=True, fes=args.fes)
    # SIGTERM is handled like Ctrl-C: unwind through the finally below, which stops the cluster
    signal.signal(signal.SIGTERM, _interrupt)
    state: dict = {}
    rec = result = None
    setup_error = ""
    timings: dict = {}
    began = time.monotonic()
    interrupted = False
    try:
        fes = f"{args.fes} FEs on {args.fes} etcd members" if args.fes > 1 else "FE"
        print(f"starting the cluster (broker, {fes}, {args.bes} BEs) in {run_dir} ...", flush=True)
        try:
            cluster.start(spec, timeout_s=90)
        except TimeoutError as exc:
            raise SetupError(str(exc)) from None
        timings["cluster_start"] = round(time.monotonic() - began, 1)
        leader = f" (leader {cluster.leader()[0]})" if spec.ha and cluster.leader() else ""
        fe_list = ", ".join(f"{n} {a}" for n, a in cluster.frontends().items()) if spec.ha else cluster.fe_address
        print(f"cluster up in {timings['cluster_start']} s: FE {fe_list}{leader}, broker {cluster.broker_address}, "
              f"BEs {', '.join(cluster.be_address(i) for i in range(args.bes))}", flush=True)
        rec, result = asyncio.run(run_chaos(cluster, schedule, args.rate, bounds, state))
    except SetupError as exc:
        setup_error = str(exc)
        print(f"error: {setup_error}", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
        setup_error = "interrupted"
        print("\ninterrupted: stopping the cluster", file=sys.stderr)
    finally:
        runner = state.get("runner")
        if runner is not None:
            runner.resume_all()
        rec = rec or state.get("rec")
        t_stop = time.monotonic()
        cluster.stop()
        timings["cluster_stop"] = round(time.monotonic() - t_stop, 1)
        timings["total"] = round(time.monotonic() - began, 1)
    if rec is not None:
        for line in _crash_logs(cluster):
            rec.event("observed", f"log check: {line}")
    report = build_report(args, schedule, rec, result, run_dir, timings, setup_error)
    report["compactions"] = compaction_counts(cluster)
    picture = write_report(report, report_dir)
    print_verdict(report, result)
    print(f"report: {os.path.join(report_dir, 'report.json')}   timeline: {os.path.join(report_dir, 'timeline.txt')}"
          + (f"   picture: {picture}" if picture else ""))
    print(f"total {timings['total']} s (cluster start {timings.get('cluster_start', '-')} s); "
          f"compactions logged by the BEs: {report['compactions']}")
    if report["verdict"] == "PASS" and not args.keep_run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        print(f"cluster run dir kept for the post-mortem (logs, data): {run_dir}")
    if interrupted:
        return 130
    if setup_error:
        return 2
    return 0 if report["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
