"""Nothing slow on the FE event loop: while the FE writes checkpoints of a big catalog, or answers
a Query of a million rows, every other call still gets its answer within a second and every BE
stays alive (its heartbeats keep arriving).

A prober in a separate process (so that the work of this test process does not skew it) calls
ShowBackends every 50 ms with a 1 s deadline, the way a BE's heartbeat reaches the same event
loop. Each answer also says whether every BE is alive (heartbeat_timeout_second is 3 in these
clusters) and when the FE last heard from it.

Sizes: the checkpoint case uses a 20k-tablet catalog, the 100k-tablet checkpoint is timed
in-process by tests/unit/test_checkpoint.py. (A BE's tablet report walked the whole catalog
until the catalog kept a per-backend index; a 50k-tablet report against a 100k-tablet catalog
now takes tens of milliseconds on the loop: tests/unit/test_inverted_index.py.)
"""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import grpc
import pytest

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, types_pb2
from common.rpc import CHANNEL_OPTIONS
from deploy.cluster import LocalCluster
from tests.support import assert_eventually

pytestmark = pytest.mark.integration

PROBE_DEADLINE_S = 1.0
PROBE_EVERY_S = 0.05
PROBE_MAX_S = 300.0
ROOT = __file__.rsplit("/tests/", 1)[0]
COLUMNS = [admin_pb2.ColumnDef(name="id", type="BIGINT", not_null=True),
           admin_pb2.ColumnDef(name="v", type="VARCHAR(16)")]
_CHECKPOINT_LINE = re.compile(r"checkpoint at seq (\d+): snapshot (\d+) ms on the event loop, "
                              r"encode\+write (\d+) ms in a worker \((\d+) bytes\)")


def _probe_main() -> None:
    """The prober process: ``python -c '...; _probe_main()' <fe address>``. Stops when its stdin
    closes (or after PROBE_MAX_S) and prints what it saw as one JSON line."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stub = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(sys.argv[1]))
    seen = {"calls": 0, "worst_s": 0.0, "failures": [], "dead": [], "heartbeat_gap_s": 0.0}
    heard: dict[int, tuple[str, float]] = {}  # backend -> (last_heartbeat shown, when it changed)
    deadline = time.monotonic() + PROBE_MAX_S
    while not stop.is_set() and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            resp = stub.ShowBackends(admin_pb2.ShowBackendsRequest(), timeout=PROBE_DEADLINE_S)
        except grpc.RpcError as exc:
            seen["failures"].append(f"{exc.code().name} after {time.monotonic() - started:.2f} s")
        else:
            now = time.monotonic()
            seen["worst_s"] = max(seen["worst_s"], now - started)
            for b in resp.backends:
                if not b.alive:
                    seen["dead"].append(b.backend_id)
                shown, since = heard.get(b.backend_id, ("", now))
                if b.last_heartbeat != shown:
                    if shown:
                        seen["heartbeat_gap_s"] = max(seen["heartbeat_gap_s"], now - since)
                    heard[b.backend_id] = (b.last_heartbeat, now)
            if seen["calls"] == 0:
                print("ready", flush=True)
        seen["calls"] += 1
        stop.wait(PROBE_EVERY_S)
    print(json.dumps(seen), flush=True)


@dataclass
class Probed:
    calls: int
    worst_s: float
    failures: list[str]
    dead: list[int]
    heartbeat_gap_s: float  # longest time the FE showed the same last heartbeat (1 s resolution)


class Prober:
    """``with Prober(address) as probe: <slow thing>``, then ``probe.result``."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._proc: subprocess.Popen | None = None
        self.result: Probed | None = None

    def __enter__(self) -> Prober:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from tests.integration.test_event_loop import _probe_main; _probe_main()",
             self._address],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._proc.stdout], [], [], 30)
        assert ready and self._proc.stdout.readline().strip() == "ready", "the prober did not start"
        return self

    def __exit__(self, *exc) -> None:
        assert self._proc is not None
        out, _ = self._proc.communicate(input="", timeout=30)
        self.result = Probed(**json.loads(out.strip().splitlines()[-1]))

    def check(self) -> Probed:
        r = self.result
        assert r is not None and r.calls > 0
        assert not r.failures, f"FE calls missed their {PROBE_DEADLINE_S} s deadline: {r.failures[:5]}"
        assert r.worst_s < PROBE_DEADLINE_S, f"an FE call took {r.worst_s:.2f} s"
        assert not r.dead, f"backends {sorted(set(r.dead))} were declared dead (no heartbeat for 3 s)"
        return r


def _admin(cluster: LocalCluster) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(cluster.fe_address, options=CHANNEL_OPTIONS))


def _checkpoints(cluster: LocalCluster) -> list[tuple[int, int, int, int]]:
    """(seq, snapshot ms, encode+write ms, bytes) of every checkpoint the FE logged."""
    with open(cluster.log_path("fe"), encoding="utf-8", errors="replace") as f:
        return [tuple(int(x) for x in m.groups()) for m in _CHECKPOINT_LINE.finditer(f.read())]


def test_checkpoints_of_a_20k_tablet_catalog_keep_the_fe_responsive(cluster_factory):
    cluster = cluster_factory(2)
    admin = _admin(cluster)
    admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="d"))
    tables = 20
    for i in range(tables):
        admin.CreateTable(admin_pb2.CreateTableRequest(
            db="d", table=f"t{i}", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"], buckets=1024,
            properties={"replication_num": "1"}), timeout=120)
    before = len(_checkpoints(cluster))
    with Prober(cluster.fe_address) as probe:
        admin.SetConfig(admin_pb2.SetConfigRequest(name="edit_log_roll_num", value="10"))
        created: list[str] = []

        def one_more_record_then_count() -> bool:
            # a checkpoint every 10 records, and records keep coming while one is written; a
            # checkpoint starts on a record, so records go on until four have been logged (on a
            # slow machine one checkpoint may outlast many records)
            created.append(f"x{len(created)}")
            admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db=created[-1]))
            return len(_checkpoints(cluster)) >= before + 4

        done = assert_eventually(one_more_record_then_count, timeout_s=90, interval_s=0.02,
                                 what="at least four checkpoints in the FE log")
    seen = probe.check()
    ours = _checkpoints(cluster)[before:]
    print(f"\n{tables * 1024} tablets: {len(ours)} checkpoints, snapshot on the loop "
          f"{max(c[1] for c in ours)} ms at most, encode+write in the worker {max(c[2] for c in ours)} ms at "
          f"most, image {ours[-1][3] / 1e6:.1f} MB; "
          f"slowest FE call {seen.worst_s * 1000:.0f} ms of {seen.calls}, longest unchanged last_heartbeat {seen.heartbeat_gap_s:.1f} s")
    assert done and all(c[3] > 1_000_000 for c in ours)

    # the image and the tail after it give back everything
    cluster.stop_node("fe")
    cluster.start_node("fe")
    assert_eventually(lambda: cluster.alive_count() == 2, timeout_s=60,
                      what="the FE back with both BEs alive")
    assert len(admin.ShowTables(admin_pb2.ShowTablesRequest(db="d"), timeout=10).tables) == tables
    names = {db.name for db in admin.ShowDatabases(admin_pb2.ShowDatabasesRequest(), timeout=10).databases}
    assert created and set(created) <= names


def test_a_million_row_query_keeps_the_fe_responsive(cluster_factory):
    cluster = cluster_factory(2)
    admin = _admin(cluster)
    admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="d"))
    admin.CreateTable(admin_pb2.CreateTableRequest(
        db="d", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"], buckets=4,
        properties={"replication_num": "1"}))
    rows = 1_000_000
    data = "".join(f"{i},v{i}\n" for i in range(rows)).encode()
    loaded = admin.StreamLoad(types_pb2.StreamLoadRequest(db="d", table="t", label="million", data=data),
                              timeout=300)
    assert loaded.status == "Success" and loaded.number_loaded_rows == rows, loaded
    with Prober(cluster.fe_address) as probe:
        started = time.monotonic()
        answer = admin.Query(admin_pb2.QueryRequest(db="d", table="t", limit=rows), timeout=120)
        took = time.monotonic() - started
    seen = probe.check()
    print(f"\nQuery of {rows} rows: {took:.1f} s; slowest FE call meanwhile {seen.worst_s * 1000:.0f} ms of "
          f"{seen.calls}, longest unchanged last_heartbeat {seen.heartbeat_gap_s:.1f} s")
    assert answer.count == rows and len(answer.rows) == rows
    assert list(answer.column_names) == ["id", "v"]
    ids = sorted(int(r.values[0]) for r in answer.rows)
    assert ids == list(range(rows))  # every row once, none twice
    assert all(r.values[1] == f"v{r.values[0]}" for r in answer.rows[:1000])
