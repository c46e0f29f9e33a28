"""Issue 15: a BE's /metrics (be/http/metrics.py) over a real store, compaction, clone runner, tablet
reporter and load counters (no processes)."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest

from be.agent.report import TabletReporter
from be.clone.task import CloneRunner
from be.http.metrics import BackendMetrics
from be.load.stats import LoadStats
from be.storage.compaction_policy import CompactionType, cumulative_score
from be.storage.tablets import TabletMeta
from common.config import StorageConfig
from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import backend_pb2, frontend_pb2, types_pb2
from tests.unit.test_compaction import load, open_store, rows_of
from tests.unit.test_metrics_fe import scrape, series, value

CFG = StorageConfig()


class ReportStub:
    def __init__(self) -> None:
        self.down = False

    async def ReportTablets(self, request, timeout=None):
        if self.down:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       "no leader FE")
        return frontend_pb2.ReportTabletsResponse()


@pytest.fixture
def backend(tmp_path):
    store, tablets, rowsets, compaction = open_store(tmp_path)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]"), TabletMeta(7, 8, 1, 2, 3, 1, "[]")])
    stub = ReportStub()
    reporter = TabletReporter(60, lambda: 10001, lambda: stub, tablets, rowsets, set)
    cloner = CloneRunner(store, tablets, rowsets, peers=None, backend_id=lambda: 10001)
    stats = LoadStats()
    routine = SimpleNamespace(running=2)
    disk: list = [None]
    metrics = BackendMetrics(tablets=tablets, compaction=compaction, cloner=cloner, reporter=reporter,
                             load_stats=stats, routine=routine, storage_dir=store.storage_dir, disk=lambda: disk[0])
    yield SimpleNamespace(store=store, tablets=tablets, rowsets=rowsets, compaction=compaction, reporter=reporter,
                          stub=stub, cloner=cloner, stats=stats, disk=disk, metrics=metrics)
    store.close()


def engine(got, kind: str, status: str):
    return value(got, "starrocks_be_engine_requests_total", type=kind, status=status)


def test_compaction_counters_and_scores(backend):
    for v in range(2, 9):  # 7 single-version rowsets above the cumulative point
        load(backend.rowsets, 100 + v, v, rows_of(v))
    meta = backend.tablets.get(1)
    assert cumulative_score(meta.rowsets, meta.cumulative_point) == 7
    got = scrape(backend.metrics)
    assert value(got, "starrocks_be_tablet_cumulative_max_compaction_score") == 7
    assert value(got, "starrocks_be_tablet_base_max_compaction_score") == 0
    assert value(got, "starrocks_be_max_tablet_rowset_num") == 7
    assert engine(got, "cumulative_compaction", "total") == 0

    inputs = list(meta.rowsets)
    assert backend.compaction.compact(1, CompactionType.CUMULATIVE).ok
    got = scrape(backend.metrics)
    assert engine(got, "cumulative_compaction", "total") == 1 and engine(got, "cumulative_compaction", "failed") == 0
    assert engine(got, "base_compaction", "total") == 0
    assert value(got, "starrocks_be_compaction_deltas_total", type="cumulative") == 7
    assert value(got, "starrocks_be_compaction_bytes_total", type="cumulative") == sum(rs[4] for rs in inputs)
    assert value(got, "starrocks_be_compaction_deltas_total", type="base") == 0
    # the output waits below the cumulative point for a base compaction
    assert value(got, "starrocks_be_tablet_cumulative_max_compaction_score") == 0
    assert value(got, "starrocks_be_tablet_base_max_compaction_score") == 1
    assert value(got, "starrocks_be_max_tablet_rowset_num") == 1
    assert value(got, "starrocks_be_running_cumulative_compaction_task_num") == 0
    assert value(got, "tabletsim_be_tablet_num") == 2


async def test_clone_report_load_and_disk(backend):
    # a clone refused before it starts counts as failed; one already caught up succeeds, copying nothing
    with pytest.raises(InvalidArgument):
        await backend.cloner.clone(backend_pb2.CloneTabletRequest(), None)
    caught_up = backend_pb2.CloneTabletRequest(meta=backend_pb2.TabletMeta(tablet_id=1, replica_id=2, version=1),
                                               version=1, incremental=True, src_address="127.0.0.1:1")
    assert (await backend.cloner.clone(caught_up, None)).incremental
    # one tablet report taken, one refused
    await backend.reporter._report_logged()
    backend.stub.down = True
    await backend.reporter._report_logged()
    # a Stream Load that succeeded, one that failed, and a routine load task's commit
    backend.stats.stream_load_done(types_pb2.StreamLoadResult(status="Success", number_loaded_rows=10,
                                                              load_bytes=300, load_time_ms=40))
    backend.stats.stream_load_done(types_pb2.StreamLoadResult(status="Fail", number_loaded_rows=0,
                                                              load_bytes=50, load_time_ms=5))
    backend.stats.routine_task_done(7, 200)

    got = scrape(backend.metrics)
    assert (engine(got, "clone", "total"), engine(got, "clone", "failed")) == (2, 1)
    assert value(got, "starrocks_be_clone_task_copy_bytes", type="INTER_NODE") == 0
    assert value(got, "starrocks_be_clone_task_copy_bytes", type="INTRA_NODE") == 0
    assert (engine(got, "report_all_tablets", "total"), engine(got, "report_all_tablets", "failed")) == (2, 1)
    # StarRocks counts routine load tasks in stream_load and load_rows too (one stream load executor)
    assert value(got, "starrocks_be_stream_load", type="load_rows") == 17
    assert value(got, "starrocks_be_stream_load", type="receive_bytes") == 500
    assert value(got, "starrocks_be_load_rows") == 17 and value(got, "starrocks_be_load_bytes") == 500
    assert value(got, "starrocks_be_streaming_load_requests_total") == 2
    assert value(got, "starrocks_be_streaming_load_bytes") == 350
    assert value(got, "starrocks_be_streaming_load_duration_ms") == 45
    assert value(got, "starrocks_be_routine_load_task_count") == 2
    # no disk figures before the first heartbeat measured them
    assert series(got, "starrocks_be_disks_total_capacity") == []

    backend.disk[0] = (1000, 100, 700)
    got = scrape(backend.metrics)
    path = backend.store.storage_dir
    assert value(got, "starrocks_be_disks_total_capacity", path=path) == 1000
    assert value(got, "starrocks_be_disks_data_used_capacity", path=path) == 100
    assert value(got, "starrocks_be_disks_avail_capacity", path=path) == 700
    assert value(got, "starrocks_be_disks_state", path=path) == 1
    assert all(f.documentation for f in got)
    # every name is StarRocks' (starrocks_be_) or plainly tabletsim's own
    assert all(f.name.startswith(("starrocks_be_", "tabletsim_be_")) for f in got)
