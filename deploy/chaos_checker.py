"""The chaos checker: after the faults stop and the producer is stopped, prove the invariants.

Each convergence property has its own bound, counted from when the checker starts:

    caught up        job RUNNING, lag 0 and the table's count = produced     (catch_up_s)
    healthy          every tablet HEALTHY (SHOW PROC '/statistic')            (healthy_s)
    no open txns     no txn left in PREPARE or COMMITTED                      (txns_s)

then the full verdict of deploy/workload.py: every produced id in the table exactly once (the
missing and duplicated ids), replica checksums equal at the visible version (CheckConsistency),
the job RUNNING with lag 0. Anything that does not hold is a violation, worded so that a
person can act on it. The checker only reads: it never resumes, repairs or retries anything.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import grpc

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from deploy import workload
from deploy.chaos_runner import ChaosRunner, Recorder

POLL_S = 1.0
LIST_LIMIT = 1000  # ids kept in the JSON report per list


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

    def to_json(self) -> dict:
        return {
            "produced": self.produced, "loaded": self.loaded,
            "missing_count": len(self.missing), "missing": self.missing[:LIST_LIMIT],
            "duplicated_count": len(self.duplicated), "duplicated": self.duplicated[:LIST_LIMIT],
            "converged_after_s": self.converged_at, "unhealthy_tablets": self.unhealthy_tablets,
            "inconsistent_tablets": self.inconsistent_tablets, "open_txns": self.open_txns[:100],
            "job_state": self.job_state, "lag": self.lag, "job_statistic": self.job_statistic,
        }


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
        return res

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
