"""The BE's ``GET /metrics``: Prometheus text under StarRocks' BE metric names.

StarRocks' BE registers its metrics in ``StarRocksMetrics`` (be/src/util/starrocks_metrics.h and
.cpp, the ``starrocks_be`` registry) and prints ``starrocks_be_<name>{labels} value``. tabletsim
has one :class:`BackendMetrics` collector per BE (its own registry; common/prometheus.py writes
the text): gauges read the BE's state at scrape time, counters are small attributes of the part
that does the work (``compaction.counters``, ``cloner.counters``, ``reporter``, ``load_stats``).

What is exported, and where StarRocks defines it (starrocks_metrics.cpp unless said otherwise):

- ``engine_requests_total{type, status}``: ``cumulative_compaction`` and ``base_compaction``
  (total, failed), ``clone`` (total, failed), ``report_all_tablets`` (total, failed);
- compaction: ``compaction_deltas_total{type}`` / ``compaction_bytes_total{type}`` (rowsets and
  bytes merged, ``cumulative`` and ``base``), ``tablet_cumulative_max_compaction_score``,
  ``tablet_base_max_compaction_score``, ``max_tablet_rowset_num``,
  ``running_cumulative_compaction_task_num``, ``running_base_compaction_task_num``;
- clone (docs "Cloning metrics"): ``clone_task_copy_bytes{type}`` and
  ``clone_task_copy_duration_ms{type}`` - ``INTER_NODE`` (copies from another BE; tabletsim
  has no moves between the disks of one BE, so ``INTRA_NODE`` stays 0);
- load (be/load/stats.py says which loads each one counts): ``stream_load{type="receive_bytes" |
  "load_rows"}``, ``load_rows``, ``load_bytes``, ``streaming_load_requests_total``,
  ``streaming_load_bytes``, ``streaming_load_duration_ms`` (StreamLoadMetrics), and
  ``routine_load_task_count`` (routine load tasks running now);
- disks: ``disks_total_capacity``, ``disks_avail_capacity``, ``disks_data_used_capacity``,
  ``disks_state`` (1: in use), each ``{path}`` of the storage dir, as of the last heartbeat
  (measured off the loop by the heartbeat; absent until the first one, a second after start).

tabletsim's own: ``tabletsim_be_tablet_num``, the tablet replicas this BE holds (StarRocks' BE
has no such metric; the FE's ``starrocks_fe_tablet_num{backend}`` is the FE's view of the same
number, and the two differing for long says the BE and the FE disagree on what it holds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web

from be.storage.compaction_policy import CompactionType
from common.prometheus import Family, counter, gauge, install_metrics_route, registry_of

if TYPE_CHECKING:
    from be.agent.heartbeat import FeLink
    from be.agent.report import TabletReporter
    from be.clone.task import CloneRunner
    from be.load.routine_task import RoutineLoadRunner
    from be.load.stats import LoadStats
    from be.storage.compaction import CompactionManager
    from be.storage.tablets import TabletManager

P = "starrocks_be_"
INTER_NODE, INTRA_NODE = "INTER_NODE", "INTRA_NODE"
Disk = tuple[int, int, int]


class BackendMetrics:
    """The BE's collector (``prometheus_client`` calls :meth:`collect` at every scrape).

    ``disk``: (total, data used, available) bytes of the storage dir, None when not known yet
    (before the first heartbeat: the disk families are then left out)."""

    def __init__(self, *, tablets: TabletManager, compaction: CompactionManager, cloner: CloneRunner,
                 reporter: TabletReporter, load_stats: LoadStats, routine: RoutineLoadRunner,
                 storage_dir: str, disk: Callable[[], Disk | None] = lambda: None) -> None:
        self._tablets = tablets
        self._compaction = compaction
        self._cloner = cloner
        self._reporter = reporter
        self._load = load_stats
        self._routine = routine
        self._storage_dir = storage_dir
        self._disk = disk

    @classmethod
    def of(cls, node) -> BackendMetrics:
        """The collector of a :class:`be.node.BackendNode`."""
        link: FeLink = node.link
        return cls(tablets=node.tablets, compaction=node.compaction, cloner=node.cloner, reporter=node.reporter,
                   load_stats=node.load_stats, routine=node.routine, storage_dir=node.store.storage_dir,
                   disk=lambda: link.disk)

    def collect(self) -> Iterator[Family]:
        yield self._engine_requests()
        yield from self._compactions()
        yield from self._clones()
        yield from self._loads()
        yield from self._disks()
        yield gauge("tabletsim_be_tablet_num", "tabletsim's own: tablet replicas this BE holds", len(self._tablets))

    def _engine_requests(self) -> Family:
        c, k, r = self._compaction.counters, self._cloner.counters, self._reporter
        family = counter(P + "engine_requests_total", "engine requests by type and status (total counts the "
                                                      "failed ones too)")
        for kind, ok, failed in (("cumulative_compaction", c.cumulative, c.cumulative_failed),
                                 ("base_compaction", c.base, c.base_failed),
                                 ("clone", k.requests - k.failed, k.failed),
                                 ("report_all_tablets", r.reports, r.failed_reports)):
            family.add(ok + failed, type=kind, status="total").add(failed, type=kind, status="failed")
        return family

    def _compactions(self) -> Iterator[Family]:
        c = self._compaction.counters
        yield (counter(P + "compaction_deltas_total", "rowsets merged by the compactions that succeeded")
               .add(c.base_deltas, type="base").add(c.cumulative_deltas, type="cumulative"))
        yield (counter(P + "compaction_bytes_total", "bytes of the rowsets merged by the compactions that "
                                                     "succeeded")
               .add(c.base_bytes, type="base").add(c.cumulative_bytes, type="cumulative"))
        scores = self._compaction.scores()
        yield gauge(P + "tablet_cumulative_max_compaction_score",
                    "the largest cumulative compaction score of a tablet: rowsets above its cumulative point",
                    scores.cumulative)
        yield gauge(P + "tablet_base_max_compaction_score",
                    "the largest base compaction score of a tablet: rowsets below its cumulative point", scores.base)
        yield gauge(P + "max_tablet_rowset_num", "the most live rowsets of one tablet", scores.rowsets)
        running = list(c.running.values())
        yield gauge(P + "running_cumulative_compaction_task_num", "cumulative compactions running",
                    sum(1 for k in running if k is CompactionType.CUMULATIVE))
        yield gauge(P + "running_base_compaction_task_num", "base compactions running",
                    sum(1 for k in running if k is CompactionType.BASE))

    def _clones(self) -> Iterator[Family]:
        k = self._cloner.counters
        yield (counter(P + "clone_task_copy_bytes", "bytes clone tasks copied to this BE")
               .add(k.copied_bytes, type=INTER_NODE).add(0, type=INTRA_NODE))
        yield (counter(P + "clone_task_copy_duration_ms", "time the clone tasks that succeeded took on this BE (ms)")
               .add(k.copy_ms, type=INTER_NODE).add(0, type=INTRA_NODE))

    def _loads(self) -> Iterator[Family]:
        s = self._load
        yield (counter(P + "stream_load", "loads that succeeded through the stream load executor (Stream Loads "
                                          "and routine load tasks): bytes received and rows loaded")
               .add(s.loaded_bytes, type="receive_bytes").add(s.loaded_rows, type="load_rows"))
        yield counter(P + "load_rows", "rows loaded into tablets (Stream Loads and routine load tasks that committed)",
                      s.loaded_rows)
        yield counter(P + "load_bytes", "bytes loaded (Stream Loads and routine load tasks that committed)",
                      s.loaded_bytes)
        yield counter(P + "streaming_load_requests_total", "Stream Load requests answered, whatever their outcome",
                      s.stream_load_requests)
        yield counter(P + "streaming_load_bytes", "body bytes of the Stream Load requests answered",
                      s.stream_load_receive_bytes)
        yield counter(P + "streaming_load_duration_ms", "time the Stream Load requests answered took (ms)",
                      s.stream_load_duration_ms)
        yield gauge(P + "routine_load_task_count", "routine load tasks running", self._routine.running)

    def _disks(self) -> Iterator[Family]:
        disk = self._disk()
        if disk is None:
            return
        total, used, avail = disk
        path = self._storage_dir
        yield gauge(P + "disks_total_capacity", "disk capacity of each storage path (bytes)").add(total, path=path)
        yield gauge(P + "disks_avail_capacity", "available disk bytes of each storage path").add(avail, path=path)
        yield gauge(P + "disks_data_used_capacity", "bytes of data in each storage path").add(used, path=path)
        yield gauge(P + "disks_state", "state of each storage path (1: in use)").add(1, path=path)


def install(app: web.Application, node) -> None:
    """``GET /metrics`` on the BE's application: its own registry, one :class:`BackendMetrics`."""
    install_metrics_route(app, registry_of(BackendMetrics.of(node)))
