"""Issue 4: transactions, replicated writes under ONE/MAJORITY/ALL, publish, Stream Load, Query."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess

import pytest

from common.gen.tabletsim.v1 import backend_pb2, backend_pb2_grpc, frontend_pb2, frontend_pb2_grpc, types_pb2
from common.rowcodec import encode_rows
from common.rpc import cluster_channel
from deploy.cluster import LocalCluster
from tests.integration.test_debug_points import Debug
from tests.support import GRPCURL, Admin, assert_eventually

pytestmark = pytest.mark.integration

COLUMNS = [
    {"name": "id", "type": "BIGINT", "not_null": True},
    {"name": "ts", "type": "DATETIME"},
    {"name": "msg", "type": "VARCHAR(64)"},
]


def csv_rows(start: int, n: int) -> bytes:
    return "".join(f"{i},2024-01-01 00:00:{i % 60:02d},m{i}\n" for i in range(start, start + n)).encode()


def setup_table(admin: Admin, quorum: str = "MAJORITY", buckets: int = 4) -> None:
    admin.call("CreateDatabase", db="d", if_not_exists=True)
    admin.call("CreateTable", db="d", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=buckets, properties={"replication_num": "3", "write_quorum": quorum})


def stream_load(admin: Admin, data: bytes, label: str = "", **params) -> dict:
    req = {"db": "d", "table": "t", "data": base64.b64encode(data).decode(), "params": params}
    if label:
        req["label"] = label
    return admin.call("StreamLoad", req, timeout_s=300)


def count(admin: Admin, **req) -> int:
    return int(admin.call("Query", {"db": "d", "table": "t", "limit": 0, **req})["count"])


def be_node(cluster: LocalCluster, admin: Admin, backend_id: str) -> str:
    ports = {b["backend_id"]: b["be_port"] for b in admin.call("ShowBackends")["backends"]}
    for i in range(cluster.spec.bes):
        if cluster.spec.be_port_of(i) == ports[backend_id]:
            return f"be{i}"
    raise AssertionError(f"no node for backend {backend_id}")


def test_100k_rows_rf3_majority_count_and_equal_checksums(cluster):
    admin = Admin(cluster.fe_address)
    setup_table(admin)
    res = stream_load(admin, csv_rows(0, 100_000), label="big")
    assert res["status"] == "Success", res
    assert res["number_total_rows"] == "100000" and res["number_loaded_rows"] == "100000"
    assert count(admin) == 100_000
    assert count(admin, predicates=[{"column": "id", "op": "<", "value": "1000"}]) == 1000
    rows = admin.call("Query", db="d", table="t", predicates=[{"column": "id", "op": "=", "value": "4242"}])
    assert rows["rows"] == [{"values": ["4242", "2024-01-01 00:00:42", "m4242"]}]
    check = admin.call("CheckConsistency", db="d", table="t")
    assert check["checked_tablets"] == 4 and check["inconsistent_tablets"] == 0
    by_tablet: dict[str, set[str]] = {}
    for r in check["replicas"]:
        assert not r.get("error") and r["version"] == "2"
        by_tablet.setdefault(r["tablet_id"], set()).add(r["checksum"])
    assert len(by_tablet) == 4 and all(len(s) == 1 for s in by_tablet.values())
    assert sum(int(r["row_count"]) for r in check["replicas"]) == 300_000
    txn = admin.call("ShowTransactions", db="d", label="big")["transactions"][0]
    assert txn["transaction_status"] == "VISIBLE" and txn["load_job_source_type"] == "BACKEND_STREAMING"
    stat = admin.call("ShowProc", path="/statistic")["rows"][0]["values"]
    assert stat[7:9] == ["0", "0"]


def test_write_quorum_with_dead_backends(cluster):
    admin = Admin(cluster.fe_address)
    setup_table(admin)
    assert stream_load(admin, csv_rows(0, 100), label="base")["status"] == "Success"
    cluster.kill_node("be2")
    dead_id = next(b["backend_id"] for b in admin.call("ShowBackends")["backends"]
                   if b["be_port"] == cluster.spec.be_port_of(2))
    # MAJORITY with 1 of 3 dead: succeeds, the dead BE's replicas carry lastFailedVersion
    res = stream_load(admin, csv_rows(100, 100), label="one-dead")
    assert res["status"] == "Success", res
    assert count(admin) == 200
    rows = admin.call("ShowTablets", db="d", table="t")["tablets"]
    dead = [r for r in rows if r["backend_id"] == dead_id]
    assert dead and all(r["lst_failed_version"] == "3" and r["version"] == "2" for r in dead)
    alive = [r for r in rows if r["backend_id"] != dead_id]
    assert all(r["version"] == "3" and r["lst_failed_version"] == "-1" for r in alive)
    txn = admin.call("ShowTransactions", db="d", label="one-dead")["transactions"][0]
    assert txn["error_replicas_count"] == 4

    # ALL with 1 dead: fails, nothing visible
    admin.call("AlterTable", db="d", table="t", properties={"write_quorum": "all"})
    err = admin.error("StreamLoad", db="d", table="t", label="all-1", data=base64.b64encode(csv_rows(200, 50)).decode())
    assert err.code == "Unavailable"
    assert "reached 2 of the 3 replicas its write quorum needs" in err.message and "tablet " in err.message
    assert count(admin) == 200
    assert admin.call("ShowTransactions", db="d", label="all-1")["transactions"][0]["transaction_status"] == "ABORTED"

    # MAJORITY with 2 dead: fails with the tablet, needed and reached counts
    cluster.kill_node("be1")
    admin.call("AlterTable", db="d", table="t", properties={"write_quorum": "majority"})
    err = admin.error("StreamLoad", db="d", table="t", label="two-dead",
                      data=base64.b64encode(csv_rows(300, 50)).decode())
    assert err.code == "Unavailable" and "reached 1 of the 2 replicas its write quorum needs" in err.message
    assert count(admin) == 200

    # ONE with 2 dead: succeeds
    admin.call("AlterTable", db="d", table="t", properties={"write_quorum": "ONE"})
    assert stream_load(admin, csv_rows(400, 50), label="one-quorum")["status"] == "Success"
    assert count(admin) == 250


def test_same_label_twice_loads_once(cluster):
    admin = Admin(cluster.fe_address)
    setup_table(admin)
    first = stream_load(admin, csv_rows(0, 500), label="dup")
    second = stream_load(admin, csv_rows(0, 500), label="dup")
    assert first["status"] == "Success"
    assert second["status"] == "Label Already Exists"
    assert second["existing_job_status"] == "VISIBLE" and second["txn_id"] == first["txn_id"]
    assert count(admin) == 500


def test_bad_rows_and_bad_requests(cluster):
    admin = Admin(cluster.fe_address)
    setup_table(admin)
    data = b"1,2024-01-01 00:00:00,a\nnot-a-number,2024-01-01 00:00:00,b\n3,2024-01-01 00:00:00\n"
    res = stream_load(admin, data, label="strict")
    assert res["status"] == "Fail" and "too many filtered rows" in res["message"]
    reasons = [r["reason"] for r in res["filtered_rows"]]
    assert any("column 'id' value 'not-a-number' is not a valid BIGINT" in r for r in reasons)
    assert any(r.startswith("row 3") for r in reasons)
    assert count(admin) == 0
    assert admin.call("ShowTransactions", db="d", label="strict")["transactions"][0]["transaction_status"] == "ABORTED"
    ok = stream_load(admin, data, label="lenient", max_filter_ratio=0.9)
    assert ok["status"] == "Success" and ok["number_loaded_rows"] == "1" and ok["number_filtered_rows"] == "2"
    # json with jsonpaths, a COLUMNS mapping and a WHERE
    js = json.dumps([{"k": 7, "t": 1700000000, "m": "x"}, {"k": 8, "t": 1700000001, "m": "y"}]).encode()
    res = stream_load(admin, js, label="json", format="json", strip_outer_array=True,
                      jsonpaths='["$.k", "$.t", "$.m"]', columns="id, tmp_t, msg, ts = from_unixtime(tmp_t)",
                      where="id > 7", timezone="UTC")
    assert res["status"] == "Success" and res["number_loaded_rows"] == "1" and res["number_unselected_rows"] == "1"
    row = admin.call("Query", db="d", table="t", predicates=[{"column": "id", "op": "=", "value": "8"}])["rows"]
    assert row == [{"values": ["8", "2023-11-14 22:13:21", "y"]}]
    # requests refused before anything is written
    err = admin.error("StreamLoad", db="d", table="nope", data="")
    assert err.code == "NotFound" and "unknown table 'nope'" in err.message
    err = admin.error("StreamLoad", db="d", table="t", label="badmap", data=base64.b64encode(b"1").decode(),
                      params={"columns": "id, zz = 1"})
    assert err.code == "InvalidArgument" and "zz" in err.message
    err = admin.error("Query", db="d", table="t", predicates=[{"column": "nope", "op": "=", "value": "1"}])
    assert err.code == "InvalidArgument" and "unknown column 'nope'" in err.message
    assert admin.call("ShowTransactions", db="d", label="badmap")["transactions"][0]["transaction_status"] == "ABORTED"
    assert count(admin) == 2


def test_killed_coordinator_aborts_and_a_retry_loads_exactly_once(cluster_factory, tmp_path):
    cluster = cluster_factory(3, debug_points=True)
    admin = Admin(cluster.fe_address)
    setup_table(admin)
    debugs = {f"be{i}": Debug(cluster.be_address(i), cluster.spec.cluster_token) for i in range(cluster.spec.bes)}
    for debug in debugs.values():  # the coordinator's commit stalls: its BE is killed mid-load, however fast it is
        debug.add(point="rpc.out", method="*FrontendService/CommitTxn", action="DELAY", delay_ms=120_000)
    data = csv_rows(0, 400_000)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"db": "d", "table": "t", "label": "big-retry",
                                   "data": base64.b64encode(data).decode()}))
    with open(request) as stdin:
        proc = subprocess.Popen([GRPCURL, "-plaintext", "-max-time", "120", "-d", "@", cluster.fe_address,
                                 "tabletsim.v1.AdminService/StreamLoad"], stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    txn = assert_eventually(
        lambda: next(iter(admin.call("ShowTransactions", db="d", label="big-retry")["transactions"]), None)
        if _has_label(admin, "big-retry") else None,
        timeout_s=60, interval_s=0.05, what="the load's txn to begin")
    assert txn["transaction_status"] == "PREPARE", txn
    node = be_node(cluster, admin, txn["coordinator"].split(": ")[1])
    cluster.kill_node(node)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    assert "Unavailable" in err and "was aborted and nothing was loaded" in err, err
    after = admin.call("ShowTransactions", db="d", label="big-retry")["transactions"][0]
    assert after["transaction_status"] == "ABORTED"
    assert count(admin) == 0
    for name, debug in debugs.items():
        if name != node:
            debug.call("ClearDebugRules")
    cluster.start_node(node)
    res = stream_load(admin, data, label="big-retry")
    assert res["status"] == "Success"
    assert count(admin) == 400_000
    assert stream_load(admin, data, label="big-retry")["status"] == "Label Already Exists"
    assert count(admin) == 400_000


def _has_label(admin: Admin, label: str) -> bool:
    try:
        admin.call("ShowTransactions", db="d", label=label)
        return True
    except AssertionError:
        return False


def test_fe_killed_between_commit_and_publish_publishes_after_restart(cluster):
    """Act as a coordinator BE: begin, write all replicas, hang two BEs so the publish cannot reach
    quorum, commit, then SIGKILL the FE. After restart the txn becomes VISIBLE, counted once."""
    admin = Admin(cluster.fe_address)
    setup_table(admin, buckets=2)
    token = cluster.spec.cluster_token

    async def begin_write_commit() -> int:
        async with cluster_channel(cluster.fe_address, token) as fe_ch:
            fe = frontend_pb2_grpc.FrontendServiceStub(fe_ch)
            begun = await fe.BeginTxn(frontend_pb2.BeginTxnRequest(
                db="d", table="t", label="manual", timeout_s=60, source_type="BACKEND_STREAMING"))
            infos = []
            for tablet in begun.target.partitions[0].tablets:
                rows = [(tablet.tablet_id * 1000 + i, "2024-01-01 00:00:00", "x") for i in range(10)]
                for replica in tablet.replicas:
                    async with cluster_channel(replica.address, token) as be_ch:
                        await backend_pb2_grpc.BackendServiceStub(be_ch).WriteRows(backend_pb2.WriteRowsRequest(
                            txn_id=begun.txn_id, chunks=[backend_pb2.RowsChunk(
                                tablet_id=tablet.tablet_id, partition_id=begun.target.partitions[0].partition_id,
                                rows=encode_rows(rows), row_count=len(rows))]))
                infos.append(types_pb2.TabletCommitInfo(tablet_id=tablet.tablet_id,
                                                         backend_ids=[r.backend_id for r in tablet.replicas]))
            for node in ("be1", "be2"):
                cluster.signal_node(node, signal.SIGSTOP)
            resp = await fe.CommitTxn(frontend_pb2.CommitTxnRequest(txn_id=begun.txn_id, tablet_commit_infos=infos))
            assert resp.status == "COMMITTED"
            return begun.txn_id

    stopped = []
    try:
        txn_id = asyncio.run(begin_write_commit())
        stopped = ["be1", "be2"]
        shown = admin.call("ShowTransactions", db="d", txn_id=txn_id)["transactions"][0]
        assert shown["transaction_status"] == "COMMITTED"
        cluster.kill_node("fe")
    finally:
        for node in stopped or ("be1", "be2"):
            pid = cluster.pid(node)
            if pid:
                os.kill(pid, signal.SIGCONT)
    cluster.start_node("fe")
    assert_eventually(
        lambda: admin.call("ShowTransactions", db="d", txn_id=txn_id)["transactions"][0]["transaction_status"]
        == "VISIBLE", timeout_s=40, what="the committed txn to become VISIBLE after the FE restart")
    assert count(admin) == 20


def test_prepare_txn_times_out_after_fe_restart(cluster):
    admin = Admin(cluster.fe_address)
    setup_table(admin)

    async def begin() -> int:
        async with cluster_channel(cluster.fe_address, cluster.spec.cluster_token) as ch:
            resp = await frontend_pb2_grpc.FrontendServiceStub(ch).BeginTxn(frontend_pb2.BeginTxnRequest(
                db="d", table="t", label="forgotten", timeout_s=3))
            return resp.txn_id

    txn_id = asyncio.run(begin())
    cluster.kill_node("fe")
    cluster.start_node("fe")
    row = assert_eventually(
        lambda: (r := _txn_or_none(admin, txn_id)) and r["transaction_status"] == "ABORTED" and r,
        timeout_s=30, what="the PREPARE txn to time out")
    assert "timeout" in row["reason"]


def _txn_or_none(admin: Admin, txn_id: int):
    try:
        return admin.call("ShowTransactions", db="d", txn_id=txn_id)["transactions"][0]
    except AssertionError:
        return None

