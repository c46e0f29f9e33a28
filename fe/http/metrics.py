"""The FE's ``GET /metrics``: Prometheus text under StarRocks' FE metric names.

StarRocks' FE builds its metrics in ``com.starrocks.metric.MetricRepo`` and prints them with
``PrometheusMetricVisitor``: every name is ``starrocks_fe_<name>``, gauges are read from live state
when scraped, counters are incremented where the event happens. tabletsim does the same with one
:class:`FrontendMetrics` collector per FE (its own registry; common/prometheus.py writes the text):
gauges read the domains at scrape time, counters are small attributes of the domain that owns the
event (``txns.counters``, ``journal.counters``, ``routine.paused_count``, ``tablet_sched.stat``).

What is exported, and where StarRocks defines it:

- routine load (MetricRepo; docs "Routine load metrics"): ``routine_load_jobs{is_leader, state}``
  (jobs per state, every state listed; leader-aware, as in StarRocks' MetricRepoTest),
  ``routine_load_rows`` / ``routine_load_error_rows`` / ``routine_load_receive_bytes``
  (StarRocks adds each committed task's totalRows, errorRows and receivedBytes; here they are
  the sums of the jobs' Statistic, the numbers SHOW ROUTINE LOAD shows, so they survive an FE
  restart and agree on followers), ``routine_load_paused`` and
  ``routine_load_max_lag_of_partition{job_name}`` (the largest end offset - progress of each
  NEED_SCHEDULE, RUNNING or PAUSED job; a STOPPED or CANCELLED job has no series:
  fe/routineload/scheduler.py). StarRocks exports the lag only with
  ``enable_routine_load_lag_metrics`` and lags of at least ``min_routine_load_lag_for_metrics``
  (10000); tabletsim always, from 0, so that a caught-up job shows 0;
- transactions (MetricRepo): ``txn_begin``, ``txn_success`` (VISIBLE), ``txn_failed`` (ABORTED),
  ``txn_reject`` (begins refused);
- journal (MetricRepo): ``edit_log_write``, ``edit_log_read``, ``edit_log_size_bytes``,
  ``image_write``, ``max_journal_id``, ``meta_log_count`` (records since the last image),
  ``editlog_stacked_num`` (records logged, not yet durable);
- tablets and repair (MetricRepo, docs "Cloning metrics"): ``tablet_num{backend}`` (replicas
  per BE, as SHOW BACKENDS' TabletNum; ``backend`` is host:port of the BE), ``scheduled_tablet_num``,
  ``scheduled_pending_tablet_num`` / ``scheduled_running_tablet_num{is_leader, type}``,
  ``clone_task_total``, ``clone_task_success``, ``clone_task_copy_bytes`` /
  ``clone_task_copy_duration_ms{is_leader, type}``. As in StarRocks, tablet_num, the scheduler
  gauges and routine_load_jobs are the leader's: a follower says 0 (and ``is_leader="false"``
  where StarRocks has the label), so that a sum over the FEs counts once;
- catalog (MetricRepo.collectDatabaseMetrics): ``database_num``, ``table_num{db_name}``;
- nodes (PrometheusMetricVisitor.getNodeInfo): ``node_info{type, state}`` - fe_node_num and
  be_node_num, total / alive (/ decommissioned), and ``node_info{type="is_master"} 1`` on the
  leader only. StarRocks prints it without the ``starrocks_fe_`` prefix, and so does tabletsim.

Not exported because tabletsim has no such data yet: the JVM and system metrics, query counts
and latencies (Query is not counted), ``tablet_max_compaction_score{backend}`` and
``max_tablet_compaction_score`` (a BE does not report its compaction scores to the FE; each BE
exports its own on its /metrics), load job gauges ``job{job="load"}`` (no broker/insert loads).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web

from common.prometheus import Family, counter, gauge, install_metrics_route, registry_of
from fe.clone.sched_ctx import SchedType
from fe.ha.role import FeRole, HaState
from fe.routineload.scheduler import max_lag_of_partition
from fe.routineload.state import JobState

if TYPE_CHECKING:
    from fe.catalog.catalog import Catalog
    from fe.clone.daemon import TabletSchedDaemon
    from fe.persist.journal import Journal
    from fe.routineload.manager import RoutineLoadManager
    from fe.system.backends import BackendRegistry
    from fe.txn.manager import TransactionManager

P = "starrocks_fe_"
INTER_NODE, INTRA_NODE = "INTER_NODE", "INTRA_NODE"


class FrontendMetrics:
    """The FE's collector (``prometheus_client`` calls :meth:`collect` at every scrape)."""

    def __init__(self, *, backends: BackendRegistry, catalog: Catalog, txns: TransactionManager,
                 journal: Journal, routine: RoutineLoadManager, tablet_sched: TabletSchedDaemon,
                 ha: HaState) -> None:
        self._backends = backends
        self._catalog = catalog
        self._txns = txns
        self._journal = journal
        self._routine = routine
        self._tablet_sched = tablet_sched
        self._ha = ha

    @classmethod
    def of(cls, node) -> FrontendMetrics:
        """The collector of a :class:`fe.node.FrontendNode`."""
        return cls(backends=node.backends, catalog=node.catalog, txns=node.txns, journal=node.journal,
                   routine=node.routine, tablet_sched=node.tablet_sched, ha=node.ha)

    @property
    def _leader(self) -> bool:
        return self._ha.role is FeRole.LEADER

    def collect(self) -> Iterator[Family]:
        yield from self._routine_load()
        yield from self._transactions()
        yield from self._edit_log()
        yield from self._tablets()
        yield from self._clone()
        yield from self._catalog_sizes()
        yield from self._nodes()

    # ------------------------------------------------------------------ routine load
    def _routine_load(self) -> Iterator[Family]:
        jobs = self._routine.jobs()
        leader = self._leader
        states = gauge(P + "routine_load_jobs", "routine load jobs in each state (the leader's count)")
        for state in JobState:
            states.add(sum(1 for j in jobs if j.state is state) if leader else 0, is_leader=_bool(leader),
                       state=state.value)
        yield states
        yield counter(P + "routine_load_rows", "total rows of routine load (totalRows of the committed tasks)",
                      sum(j.stat.total_rows for j in jobs))
        yield counter(P + "routine_load_error_rows", "total error rows of routine load",
                      sum(j.stat.error_rows for j in jobs))
        yield counter(P + "routine_load_receive_bytes", "total received bytes of routine load",
                      sum(j.stat.received_bytes for j in jobs))
        yield counter(P + "routine_load_paused", "counter of routine load paused", self._routine.paused_count)
        lags: dict[str, int] = {}
        for job in jobs:
            lag = max_lag_of_partition(job)
            if lag is not None:  # jobs of one name in two databases: the larger lag
                lags[job.name] = max(lag, lags.get(job.name, lag))
        family = gauge(P + "routine_load_max_lag_of_partition",
                       "routine load kafka lag: the largest end offset - progress over the partitions of a "
                       "NEED_SCHEDULE, RUNNING or PAUSED job")
        for name, lag in sorted(lags.items()):
            family.add(lag, job_name=name)
        yield family

    # ------------------------------------------------------------------ transactions and journal
    def _transactions(self) -> Iterator[Family]:
        c = self._txns.counters
        yield counter(P + "txn_begin", "counter of begining transactions", c.begin)
        yield counter(P + "txn_success", "counter of success transactions (VISIBLE)", c.success)
        yield counter(P + "txn_failed", "counter of failed transactions (ABORTED)", c.failed)
        yield counter(P + "txn_reject", "counter of rejected transactions (label in use, or "
                      "max_running_txn_num_per_db reached)", c.reject)

    def _edit_log(self) -> Iterator[Family]:
        j = self._journal
        c = j.counters
        yield counter(P + "edit_log_write", "counter of edit log write into the journal", c.write)
        yield counter(P + "edit_log_read", "counter of edit log read from the journal (replayed)", c.read)
        yield counter(P + "edit_log_size_bytes", "size of edit log written", c.write_bytes)
        yield counter(P + "image_write", "counter of image generated", c.image_write)
        last = j.last_seq
        yield gauge(P + "max_journal_id", "max journal id of this frontends", last)
        yield gauge(P + "meta_log_count", "meta log total count (records since the last image)",
                    max(last - j.image_seq, 0))
        yield gauge(P + "editlog_stacked_num", "counter of edit log that are stacked (logged, not yet durable)",
                    max(last - j.durable_seq, 0))

    # ------------------------------------------------------------------ tablets and repair
    def _tablets(self) -> Iterator[Family]:
        leader = self._leader
        placed = self._catalog.replicas_per_backend() if leader else {}
        family = gauge(P + "tablet_num", "tablet number")
        for be in self._backends.all():
            family.add(placed.get(be.backend_id, 0), backend=be.address)
        yield family
        sched = self._tablet_sched.scheduler
        pending, running = sched.pending_ctxs(), sched.running_ctxs()
        yield gauge(P + "scheduled_tablet_num", "number of tablets being scheduled",
                    len(pending) + len(running) if leader else 0)
        for name, ctxs, what in (("scheduled_pending_tablet_num", pending, "Pending"),
                                 ("scheduled_running_tablet_num", running, "Running")):
            family = gauge(P + name, f"number of tablets the tablet scheduler holds in {what} state, "
                                     "by type (REPAIR, BALANCE)")
            for t in SchedType:
                family.add(sum(1 for c in ctxs if c.type is t) if leader else 0, is_leader=_bool(leader),
                           type=t.value)
            yield family

    def _clone(self) -> Iterator[Family]:
        s = self._tablet_sched.stat
        leader = _bool(self._leader)
        yield counter(P + "clone_task_total", "total number of clone tasks").add(s.clone_task, is_leader=leader)
        yield counter(P + "clone_task_success", "number of clone tasks that succeeded").add(
            s.clone_task_succeeded, is_leader=leader)
        yield (counter(P + "clone_task_copy_bytes", "total bytes copied by clone tasks")
               .add(s.inter_node_copy_bytes, is_leader=leader, type=INTER_NODE)
               .add(0, is_leader=leader, type=INTRA_NODE))
        yield (counter(P + "clone_task_copy_duration_ms", "total time clone tasks took to copy (ms)")
               .add(s.inter_node_copy_ms, is_leader=leader, type=INTER_NODE)
               .add(0, is_leader=leader, type=INTRA_NODE))

    # ------------------------------------------------------------------ catalog and nodes
    def _catalog_sizes(self) -> Iterator[Family]:
        dbs = self._catalog.databases()
        yield gauge(P + "database_num", "count of database", len(dbs))
        family = gauge(P + "table_num", "count of table")
        for db in sorted(dbs, key=lambda d: d.name):
            family.add(len(db.tables), db_name=db.name)
        yield family

    def _nodes(self) -> Iterator[Family]:
        frontends = self._ha.frontends()
        backends = self._backends.all()
        family = gauge("node_info", "nodes of the cluster (StarRocks prints it without the starrocks_fe_ "
                                    "prefix); is_master only on the leader")
        family.add(len(frontends), type="fe_node_num", state="total")
        family.add(sum(1 for f in frontends if f.alive), type="fe_node_num", state="alive")
        family.add(len(backends), type="be_node_num", state="total")
        family.add(sum(1 for b in backends if b.alive), type="be_node_num", state="alive")
        family.add(sum(1 for b in backends if b.decommissioned), type="be_node_num", state="decommissioned")
        if self._leader:
            family.add(1, type="is_master")
        yield family


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def install(app: web.Application, node) -> None:
    """``GET /metrics`` on the FE's application: its own registry, one :class:`FrontendMetrics`."""
    install_metrics_route(app, registry_of(FrontendMetrics.of(node)))
