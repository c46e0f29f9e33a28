"""The chaos checker: after the faults stop and the producer is stopped, prove the invariants.

Each convergence property has its own bound, counted from when the checker starts:

    caught up        job RUNNING, lag 0 and the table's count = produced     (catch_up_s)
    healthy          every tablet HEALTHY (SHOW PROC '/statistic')            (healthy_s)
    no open txns     no txn left in PREPARE or COMMITTED                      (txns_s)

then the full verdict of deploy/workload.py: every produced id in the table exactly once (the
missing and duplicated ids), replica checksums equal at the visible version (CheckConsistency),
the job RUNNING with lag 0. Anything that does not hold is a violation, worded so that a
person can act on it. The checker only reads: it never resumes, repairs or retries anything.

It also reports, from the timeline the runner sampled every second, how long the cluster took
to converge after each fault (:func:`fault_convergence`), and per fault kind the count and the
min / median / max of those times (:func:`convergence_by_kind`). Concretely:

- a fault's recovery is the time of its last ``recover`` event: the process restarted, the
  SIGCONT sent, the job resumed, or the debug rules of a link fault removed;
- a sample is *converged* when the FE answered it and it shows every BE alive, no unhealthy
  tablet, the job RUNNING, the lag no higher than before the fault, and rows flowing. "Before
  the fault" is the highest lag sampled in the LAG_WINDOW_S seconds before the fault's first
  ``fault`` event, and at least LAG_FLOOR_S seconds of the messages produced then (the lag of
  a steady job swings by about a batch, and often reads 0 between two batches). "Rows flowing"
  is rows/s > 0 over the runner's 5 s window, or lag 0 (nothing left to load: once the producer
  stops, a caught-up job loads none);
- the fault has converged at the first sample at or after its recovery from which every sample
  is converged until the next fault starts (its first ``fault`` event after this recovery) or
  the sampling ends (the checker's last poll). Samples whose row count timed out (loaded -1
  while the FE answered) are left out: they say nothing either way;
- its convergence time is that sample's time minus the recovery time; a fault that is still
  not converged when the next fault starts or the sampling ends has none (counted apart, with
  the reason). That is not a violation by itself: the checker's final bounds are.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from dataclasses import asdict, dataclass, field

import grpc

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from deploy import chaos_ha, workload
from deploy.chaos_runner import ChaosRunner, Event, Recorder, Sample
from deploy.chaos_schedule import Schedule

POLL_S = 1.0
LIST_LIMIT = 1000  # ids kept in the JSON report per list
LAG_WINDOW_S = 10.0  # the lag "before a fault": the highest sampled in this window before it started
LAG_FLOOR_S = 2.0  # ... and at least this many seconds of the messages produced then


@dataclass
class Bounds:
    catch_up_s: float = 120.0
    healthy_s: float = 120.0
    txns_s: float = 60.0
    verdict_s: float = 30.0


@dataclass
class CheckResult:
    produced: int = 0
    loaded: int = 0
    missing: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    converged_at: dict[str, float | None] = field(default_factory=dict)  # seconds after the checker started
    unhealthy_tablets: int = -1
    inconsistent_tablets: int = -1
    open_txns: list[str] = field(default_factory=list)
    job_state: str = "?"
    lag: dict[str, int] = field(default_factory=dict)
    job_statistic: dict = field(default_factory=dict)
    verdict_lines: list[str] = field(default_factory=list)
    convergence: list[FaultConvergence] = field(default_factory=list)  # one per fault, in schedule order
    frontends: dict = field(default_factory=dict)  # more than one FE: chaos_ha.FrontendsVerdict

    def to_json(self) -> dict:
        return {
            "produced": self.produced, "loaded": self.loaded,
            "missing_count": len(self.missing), "missing": self.missing[:LIST_LIMIT],
            "duplicated_count": len(self.duplicated), "duplicated": self.duplicated[:LIST_LIMIT],
            "converged_after_s": self.converged_at, "unhealthy_tablets": self.unhealthy_tablets,
            "inconsistent_tablets": self.inconsistent_tablets, "open_txns": self.open_txns[:100],
            "job_state": self.job_state, "lag": self.lag, "job_statistic": self.job_statistic,
            "convergence": [asdict(c) for c in self.convergence],
            "convergence_by_kind": convergence_by_kind(self.convergence),
            "frontends": self.frontends,
        }


# ---------------------------------------------------------------------- convergence per fault


@dataclass
class FaultConvergence:
    index: int
    kind: str
    target: str
    recovered_at: float | None  # chaos clock: the fault's last recover event
    lag_before: int | None  # the most lag a converged sample may have (None: nothing sampled before the fault)
    converged_at: float | None
    seconds: float | None  # converged_at - recovered_at; None: not converged (see note)
    note: str = ""


def is_converged(s: Sample, lag_before: int | None) -> bool:
    """The cluster looks as it did before a fault (the module docstring's definition)."""
    return (not s.error and s.total_bes > 0 and s.alive_bes == s.total_bes and s.unhealthy == 0
            and s.job_state == "RUNNING" and s.lag >= 0 and (lag_before is None or s.lag <= lag_before)
            and (s.rows_per_s > 0 or s.lag == 0))


def _lag_before(samples: list[Sample], t: float) -> int | None:
    before = [s for s in samples if s.t < t]
    lags = [s.lag for s in before if s.t >= t - LAG_WINDOW_S and not s.error and s.lag >= 0]
    lags = lags or [s.lag for s in before if not s.error and s.lag >= 0][-1:]
    if not lags:
        return None  # nothing sampled before it: the lag is not judged
    window = [s for s in before if s.t >= t - LAG_WINDOW_S]
    if len(window) < 2:
        window = before[-2:]
    span = window[-1].t - window[0].t if len(window) >= 2 else 0.0
    rate = (window[-1].produced - window[0].produced) / span if span > 0 else 0.0  # messages/s produced
    return max(max(lags), round(LAG_FLOOR_S * rate))


def _describe(s: Sample, lag_before: int | None) -> str:
    if s.error:
        return f"FE: {s.error[:60]}"
    return (f"{s.alive_bes}/{s.total_bes} BEs alive, {s.unhealthy} unhealthy, job {s.job_state}, "
            f"lag {s.lag} (before the fault: {lag_before}), {s.rows_per_s:.0f} rows/s")


def fault_convergence(schedule: Schedule, events: list[Event], samples: list[Sample]) -> list[FaultConvergence]:
    """How long after its recovery the cluster converged, for every fault of ``schedule``."""
    starts = sorted((e.t, e.fault) for e in events if e.kind == "fault" and e.fault)
    out = []
    for f in schedule.faults:
        injected = [e.t for e in events if e.kind == "fault" and e.fault == f.index]
        recovered = [e.t for e in events if e.kind == "recover" and e.fault == f.index]
        if not injected or not recovered:
            out.append(FaultConvergence(f.index, f.kind, f.target, None, None, None, None,
                                        "never injected" if not injected else "never recovered"))
            continue
        t_rec = recovered[-1]
        lag_before = _lag_before(samples, injected[0])
        nxt = next(((t, i) for t, i in starts if t > t_rec and i != f.index), None)
        end = nxt[0] if nxt else float("inf")
        window = [s for s in samples if t_rec <= s.t < end and not (s.loaded < 0 and not s.error)]
        since = None
        for s in window:
            if not is_converged(s, lag_before):
                since = None
            elif since is None:
                since = s
        if since is None:
            why = (f"not converged when fault #{nxt[1]} started at {nxt[0]:.1f} s" if nxt
                   else "not converged by the end of the sampling")
            if window:
                why += f" (last sample: {_describe(window[-1], lag_before)})"
            out.append(FaultConvergence(f.index, f.kind, f.target, t_rec, lag_before, None, None, why))
        else:
            out.append(FaultConvergence(f.index, f.kind, f.target, t_rec, lag_before, since.t,
                                        round(max(0.0, since.t - t_rec), 1)))
    return out


def convergence_by_kind(items: list[FaultConvergence]) -> dict[str, dict]:
    """Per fault kind: how many faults, how many converged, and min / median / max seconds."""
    out: dict[str, dict] = {}
    for kind in dict.fromkeys(c.kind for c in items):
        secs = sorted(c.seconds for c in items if c.kind == kind and c.seconds is not None)
        out[kind] = {"count": sum(1 for c in items if c.kind == kind), "converged": len(secs),
                     "min_s": secs[0] if secs else None,
                     "median_s": round(statistics.median(secs), 1) if secs else None,
                     "max_s": secs[-1] if secs else None,
                     "not_converged": [c.index for c in items if c.kind == kind and c.seconds is None]}
    return out


def convergence_lines(by_kind: dict[str, dict]) -> list[str]:
    """The per-kind table for the printed summary and timeline.txt."""
    if not by_kind:
        return []
    lines = [f"{'convergence after recovery (s)':32} {'count':>5} {'conv.':>5} {'min':>6} {'median':>6} {'max':>6}"]
    for kind, k in sorted(by_kind.items()):
        def fmt(v):
            return f"{v:6.1f}" if v is not None else f"{'-':>6}"
        lines.append(f"  {kind:30} {k['count']:>5} {k['converged']:>5} {fmt(k['min_s'])} {fmt(k['median_s'])} "
                     f"{fmt(k['max_s'])}" + (f"   not converged: #{', #'.join(map(str, k['not_converged']))}"
                                             if k["not_converged"] else ""))
    return lines


async def _open_txns(admin: admin_pb2_grpc.AdminServiceStub) -> list[str]:
    txns = (await admin.ShowTransactions(admin_pb2.ShowTransactionsRequest(db=workload.DB, limit=100_000),
                                         timeout=30)).transactions
    return [f"txn {t.transaction_id} {t.label} {t.transaction_status} (prepared {t.prepare_time})"
            for t in txns if t.transaction_status in ("PREPARE", "COMMITTED")]


class Checker:
    def __init__(self, admin: admin_pb2_grpc.AdminServiceStub, runner: ChaosRunner, rec: Recorder,
                 bounds: Bounds) -> None:
        self.admin = admin
        self.runner = runner
        self.rec = rec
        self.bounds = bounds

    async def run(self, produced: int) -> CheckResult:
        res = CheckResult(produced=produced)
        start = self.rec.now()
        self.rec.event("observed", f"checker: producer stopped at {produced:,} messages; waiting for the job to "
                       f"catch up (≤{self.bounds.catch_up_s:.0f} s), every tablet HEALTHY "
                       f"(≤{self.bounds.healthy_s:.0f} s), no open txn (≤{self.bounds.txns_s:.0f} s)")
        pending = {"caught_up": self.bounds.catch_up_s, "healthy": self.bounds.healthy_s,
                   "no_open_txns": self.bounds.txns_s}
        res.converged_at = {name: None for name in pending}
        last: dict[str, str] = {}
        while pending:
            elapsed = self.rec.now() - start
            await asyncio.to_thread(self.runner.check_processes)
            s = await self.runner.sample()
            try:
                state = {
                    "caught_up": (s.job_state == "RUNNING" and s.lag == 0 and s.loaded == produced,
                                  f"job {s.job_state}, lag {s.lag}, loaded {s.loaded:,} of {produced:,}"),
                    "healthy": (s.unhealthy == 0, f"{s.unhealthy} unhealthy tablets"),
                }
                if "no_open_txns" in pending:
                    txns = await _open_txns(self.admin)
                    state["no_open_txns"] = (not txns, f"{len(txns)} txns open, e.g. {txns[:3]}")
            except grpc.aio.AioRpcError as exc:
                state = {}
                last["fe"] = f"{exc.code().name}: {exc.details()}"
            if s.error:
                state = {}
                last["fe"] = s.error
            for name, (ok, why) in state.items():
                if name not in pending:
                    continue
                last[name] = why
                if ok:
                    res.converged_at[name] = round(elapsed, 1)
                    self.rec.event("observed", f"checker: {name.replace('_', ' ')} after {elapsed:.1f} s")
                    del pending[name]
            for name, bound in list(pending.items()):
                if elapsed > bound:
                    self.rec.violation(f"not {name.replace('_', ' ')} within {bound:.0f} s after the faults "
                                       f"stopped: {last.get(name, last.get('fe', 'never answered'))}")
                    del pending[name]
            if pending:
                await asyncio.sleep(POLL_S)
        await self._verdict(res, start)
        if self.runner.cluster.spec.ha:
            await self._frontends(res)
        res.convergence = fault_convergence(self.runner.schedule, self.rec.events, self.rec.samples)
        return res

    async def _frontends(self, res: CheckResult) -> None:
        """More than one FE: exactly one leader, and every FE's replayed journal id at the leader's
        within chaos_ha.REPLAY_EQUAL_S."""
        v = await chaos_ha.check_frontends(self.runner.cluster, self.runner.pool)
        res.frontends = v.to_json()
        res.verdict_lines += v.lines()
        for problem in v.problems:
            self.rec.violation(problem)
        self.rec.event("observed", f"checker: {v.lines()[0]}")

    async def _verdict(self, res: CheckResult, start: float) -> None:
        """The full verdict (every id read back), retried within verdict_s while it is not OK."""
        deadline = self.rec.now() + self.bounds.verdict_s
        v = None
        while True:
            try:
                v = await workload.verdict(self.admin, res.produced)
                if v.ok or self.rec.now() >= deadline:
                    break
            except grpc.aio.AioRpcError as exc:
                if self.rec.now() >= deadline:
                    self.rec.violation(f"could not read the verdict from the FE: {exc.code().name}: {exc.details()}")
                    return
            await asyncio.sleep(2.0)
        res.loaded, res.missing, res.duplicated = v.loaded, v.missing, v.duplicated
        res.unhealthy_tablets, res.inconsistent_tablets = v.unhealthy_tablets, v.inconsistent_tablets
        res.open_txns, res.job_state, res.lag = v.open_txns, v.job_state, v.lag
        res.verdict_lines = v.lines()
        try:
            jobs = (await self.admin.ShowRoutineLoad(
                admin_pb2.ShowRoutineLoadRequest(db=workload.DB, name=workload.JOB), timeout=10)).jobs
            res.job_statistic = json.loads(jobs[0].statistic or "{}") if jobs else {}
        except (grpc.aio.AioRpcError, ValueError):
            pass
        if v.missing:
            self.rec.violation(f"{len(v.missing)} produced ids are missing from the table, e.g. {v.missing[:20]}")
        if v.duplicated:
            self.rec.violation(f"{len(v.duplicated)} ids are in the table more than once (or were never produced), "
                               f"e.g. {v.duplicated[:20]}")
        if v.loaded != v.produced:
            self.rec.violation(f"the table has {v.loaded:,} rows but {v.produced:,} messages were produced")
        if v.unhealthy_tablets:
            self.rec.violation(f"{v.unhealthy_tablets} tablets are not HEALTHY at the final check")
        if v.inconsistent_tablets:
            self.rec.violation(f"{v.inconsistent_tablets} tablets have replicas with different checksums at the "
                               "visible version (CheckConsistency)")
        if v.open_txns:
            self.rec.violation(f"{len(v.open_txns)} txns left in PREPARE or COMMITTED, e.g. {v.open_txns[:3]}")
        if v.job_state != "RUNNING":
            self.rec.violation(f"the routine load job is {v.job_state}, not RUNNING")
        if any(lag != 0 for lag in v.lag.values()):
            self.rec.violation(f"the routine load job still lags: {v.lag}")
        self.rec.event("observed", f"checker: verdict read {self.rec.now() - start:.1f} s after the faults stopped")
