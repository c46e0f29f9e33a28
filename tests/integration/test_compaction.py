"""Issue 11: compaction on real BEs - rows and checksums kept, a BE SIGKILLed inside a compaction,
and the full clone a lagging replica needs once its missing versions are compacted away."""

from __future__ import annotations

import base64
import re
import threading
import time

import grpc
import pytest

from common.gen.tabletsim.v1 import backend_pb2, backend_pb2_grpc
from deploy.cluster import LocalCluster
from tests.support import Admin, assert_eventually, grpcurl

pytestmark = pytest.mark.integration

FAST = {"heartbeat_timeout_second": "3", "tablet_sched_checker_interval_seconds": "1",
        "tablet_sched_repair_delay_factor_second": "60"}
COLUMNS = [{"name": "id", "type": "BIGINT", "not_null": True}, {"name": "msg", "type": "VARCHAR(64)"}]


def create_table(admin: Admin, buckets: int = 1) -> None:
    admin.call("CreateDatabase", db="d", if_not_exists=True)
    admin.call("CreateTable", db="d", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=buckets, properties={"replication_num": "3", "write_quorum": "MAJORITY"})


def load(admin: Admin, start: int, n: int) -> None:
    data = "".join(f"{i},message-{i:012d}\n" for i in range(start, start + n)).encode()
    res = admin.call("StreamLoad", {"db": "d", "table": "t", "data": base64.b64encode(data).decode()},
                     timeout_s=120)
    assert res["status"] == "Success", res


def count(admin: Admin) -> int:
    return int(admin.call("Query", db="d", table="t", limit=0)["count"])


def consistent(admin: Admin) -> list[dict]:
    check = admin.call("CheckConsistency", db="d", table="t")
    assert check["inconsistent_tablets"] == 0 and not [r for r in check["replicas"] if r.get("error")], check
    return check["replicas"]


def be_info(cluster: LocalCluster, i: int) -> dict:
    res = grpcurl(cluster.be_address(i), "tabletsim.v1.BackendService/GetBackendInfo", {},
                  headers={"x-cluster-token": cluster.spec.cluster_token})
    assert res.ok, res.stderr
    return res.json


def tablets(admin: Admin) -> list[dict]:
    return admin.call("ShowTablets", db="d", table="t")["tablets"]


def backend_index(cluster: LocalCluster, admin: Admin, backend_id: str) -> int:
    port = next(b["be_port"] for b in admin.call("ShowBackends")["backends"] if b["backend_id"] == backend_id)
    return next(i for i in range(cluster.spec.bes) if cluster.spec.be_port_of(i) == port)


def proc(admin: Admin, path: str) -> list[dict]:
    res = admin.call("ShowProc", path=path)
    return [dict(zip(res["column_names"], r.get("values", []), strict=True)) for r in res.get("rows", [])]


def test_compaction_keeps_rows_and_replica_checksums(cluster_factory):
    cluster = cluster_factory(3, fe_config=FAST, be_config={"min_cumulative_compaction_num_singleton_deltas": "3",
                                                            "min_base_compaction_num_singleton_deltas": "2"})
    admin = Admin(cluster.fe_address)
    info = be_info(cluster, 0)
    assert info["config"]["min_cumulative_compaction_num_singleton_deltas"] == "3"
    assert info["config"]["tablet_max_versions"] == "1000"  # StarRocks' default
    create_table(admin, buckets=2)
    for i in range(12):
        load(admin, i * 100, 100)
        assert count(admin) == (i + 1) * 100  # reads at the visible version while compactions run
    def compacted() -> bool:
        rows = tablets(admin)
        assert all(int(r["version"]) == 13 for r in rows), rows
        assert max(int(r["version_count"]) for r in rows) <= 4, [r["version_count"] for r in rows]
        status = [r.get("compaction_status", {}) for r in rows]
        assert all(s.get("last_cumulative_compaction_result", "").startswith("OK: versions ") for s in status), status
        assert all(int(s.get("cumulative_point", 0)) > 2 and s.get("last_cumulative_compaction_time")
                   for s in status), status
        return True
    assert_eventually(compacted, timeout_s=30, what="every replica to compact its 12 load versions")
    assert sum(int(be_info(cluster, i).get("cumulative_compactions", 0)) for i in range(3)) >= 6
    assert count(admin) == 1200
    replicas = consistent(admin)
    assert len(replicas) == 6 and sum(int(r["row_count"]) for r in replicas) == 3 * 1200
    log = open(cluster.log_path("be0")).read()
    line = re.search(r"compaction: tablet \d+ cumulative versions 2-\d+ \(\d+ rowsets, \d+ bytes\) -> rowset \d+: "
                     r"\d+ rows, \d+ bytes, \d+ chunks in [\d.]+ s", log)
    assert line, "the BE logs one line per compaction"


def test_sigkill_inside_a_compaction_keeps_every_row(cluster_factory):
    # 1 MB/s of compaction writes makes a compaction of ~6 MB last seconds: long enough to kill inside
    cluster = cluster_factory(3, fe_config=FAST, be_config={"compaction_write_limit_mb_per_sec": "1",
                                                            "min_cumulative_compaction_num_singleton_deltas": "5"})
    admin = Admin(cluster.fe_address)
    create_table(admin)
    for i in range(5):
        load(admin, i * 40_000, 40_000)
    before = consistent(admin)
    assert_eventually(lambda: int(be_info(cluster, 0).get("compaction_running", 0)) > 0, timeout_s=20,
                      interval_s=0.05, what="a compaction to run on be0")
    cluster.kill_node("be0")
    cluster.start_node("be0")
    assert_eventually(lambda: "compactions interrupted before their swap" in open(cluster.log_path("be0")).read(),
                      timeout_s=20, what="be0 to delete the output of the interrupted compaction at start")
    assert count(admin) == 200_000
    def all_compacted() -> bool:
        rows = tablets(admin)
        assert [int(r["version_count"]) for r in rows] == [2, 2, 2], rows
        return True
    assert_eventually(all_compacted, timeout_s=60, what="the compaction to run again and finish on every replica")
    assert count(admin) == 200_000
    after = consistent(admin)
    assert {r["checksum"] for r in after} == {r["checksum"] for r in before}
    load(admin, 200_000, 10)
    assert count(admin) == 200_010
    consistent(admin)


def test_versions_compacted_away_on_every_source_need_a_full_clone(cluster_factory):
    cluster = cluster_factory(3, fe_config=FAST, be_config={"min_cumulative_compaction_num_singleton_deltas": "3",
                                                            "tablet_rowset_stale_sweep_time_sec": "0"})
    admin = Admin(cluster.fe_address)
    create_table(admin)
    load(admin, 0, 100)  # version 2 on every replica
    victim = tablets(admin)[0]["backend_id"]
    node = f"be{backend_index(cluster, admin, victim)}"
    cluster.kill_node(node)
    for i in range(1, 6):  # versions 3-7 while the victim is down; the others compact 2-7 into one rowset
        load(admin, i * 100, 100)
    def sources_compacted() -> bool:
        # [0-1][2-7], or [0-1][2-4][5-7] when a compaction started after 3 versions: either way
        # version 2 shares a rowset with later ones, so no source holds versions 3-7 on their own
        rows = [r for r in tablets(admin) if r["backend_id"] != victim]
        assert len(rows) == 2 and all(int(r["version_count"]) <= 3 for r in rows), rows
        assert all(r["compaction_status"].get("stale_rowset_num", "0") == "0" for r in rows), rows
        return True
    assert_eventually(sources_compacted, timeout_s=30, what="both sources to compact and sweep versions 2-7")
    cluster.start_node(node)
    def repaired() -> list[dict]:
        rows = [h for h in proc(admin, "/cluster_balance/history_tablets")
                if h["State"] == "FINISHED" and h["DestBe"] == victim]
        assert rows, "no finished clone onto the restarted BE yet"
        return rows
    history = assert_eventually(repaired, timeout_s=60, interval_s=0.3, what="the lagging replica's clone")
    assert "fell back to FULL" in history[-1]["ErrMsg"] and "compacted" in history[-1]["ErrMsg"], history
    assert_eventually(lambda: all(int(r["version"]) == 7 for r in tablets(admin)), timeout_s=20,
                      what="the victim at version 7")
    assert count(admin) == 600
    consistent(admin)


def test_compaction_never_delays_a_heartbeat(cluster_factory):
    """Compactions run in the BE's thread pool: while they merge a million rows, every BE answers
    within a second and its heartbeats keep reaching the FE (a prober in its own process)."""
    from tests.integration.test_event_loop import Prober  # the FE-side prober of item 6

    cluster = cluster_factory(3, fe_config=FAST, be_config={"min_cumulative_compaction_num_singleton_deltas": "5"})
    admin = Admin(cluster.fe_address)
    create_table(admin)
    worst = [0.0] * 3
    failures: list[str] = []
    stop = threading.Event()

    def probe_backends() -> None:
        channels = [grpc.insecure_channel(cluster.be_address(i)) for i in range(3)]
        stubs = [backend_pb2_grpc.BackendServiceStub(c) for c in channels]
        token = (("x-cluster-token", cluster.spec.cluster_token),)
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            for i, stub in enumerate(stubs):
                started = time.monotonic()
                try:
                    stub.GetBackendInfo(backend_pb2.GetBackendInfoRequest(), timeout=1.0, metadata=token)
                except grpc.RpcError as exc:
                    failures.append(f"be{i}: {exc.code().name}")
                worst[i] = max(worst[i], time.monotonic() - started)
            stop.wait(0.05)
        for c in channels:
            c.close()

    prober = threading.Thread(target=probe_backends, daemon=True)
    with Prober(cluster.fe_address) as fe_probe:
        prober.start()
        try:
            for i in range(5):
                load(admin, i * 200_000, 200_000)
            assert_eventually(lambda: all(int(be_info(cluster, i).get("cumulative_compactions", 0)) >= 1
                                          for i in range(3)), timeout_s=60,
                              what="every BE to compact the 5 versions of 200k rows")
        finally:
            stop.set()
            prober.join(timeout=10)
    fe_probe.check()  # no BE declared dead, every FE call answered within 1 s
    assert not failures, f"BE calls missed their 1 s deadline: {failures[:5]}"
    assert max(worst) < 1.0, f"a BE took {max(worst):.2f} s to answer"
    print(f"\nslowest BE answer during loads and compactions: {max(worst) * 1000:.0f} ms")
    assert count(admin) == 1_000_000
