"""max_running_txn_num_per_db on a real cluster: a Stream Load refused at begin loads nothing, says
why, and goes through when retried with the same label once a running txn finishes."""

from __future__ import annotations

import asyncio
import base64

import pytest

from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc
from common.rpc import cluster_channel
from tests.support import Admin, RpcError

pytestmark = pytest.mark.integration

COLUMNS = [{"name": "id", "type": "BIGINT", "not_null": True}, {"name": "v", "type": "VARCHAR(16)"}]


def test_a_refused_stream_load_loads_nothing_and_its_retry_loads_once(cluster_factory):
    cluster = cluster_factory(1)
    admin = Admin(cluster.fe_address)
    admin.call("CreateDatabase", db="d")
    admin.call("CreateTable", db="d", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=2, properties={"replication_num": "1"})
    db_id = next(r["db_id"] for r in admin.call("ShowDatabases")["databases"] if r["name"] == "d")
    admin.call("SetConfig", name="max_running_txn_num_per_db", value="1")

    async def begin(label: str) -> int:
        async with cluster_channel(cluster.fe_address, cluster.spec.cluster_token) as ch:
            resp = await frontend_pb2_grpc.FrontendServiceStub(ch).BeginTxn(frontend_pb2.BeginTxnRequest(
                db="d", table="t", label=label, timeout_s=60, source_type="BACKEND_STREAMING"))
            return resp.txn_id

    held = asyncio.run(begin("held"))  # the one running txn the limit allows
    data = base64.b64encode("".join(f"{i},v{i}\n" for i in range(100)).encode()).decode()
    load = {"db": "d", "table": "t", "label": "retried", "data": data}
    with pytest.raises(RpcError) as refused:
        admin.call("StreamLoad", load)
    assert refused.value.code == "FailedPrecondition"
    assert f"current running txns on db {db_id} is 1, larger than limit 1" in refused.value.message
    assert int(admin.call("Query", db="d", table="t", limit=0)["count"]) == 0
    txns = admin.call("ShowTransactions", db="d").get("transactions", [])
    assert [t["label"] for t in txns] == ["held"]  # nothing began for the refused load

    async def abort() -> None:
        async with cluster_channel(cluster.fe_address, cluster.spec.cluster_token) as ch:
            await frontend_pb2_grpc.FrontendServiceStub(ch).AbortTxn(
                frontend_pb2.AbortTxnRequest(txn_id=held, reason="test"))

    asyncio.run(abort())
    res = admin.call("StreamLoad", load)
    assert res["status"] == "Success" and res["number_loaded_rows"] == "100", res
    assert int(admin.call("Query", db="d", table="t", limit=0)["count"]) == 100
    shown = {t["label"]: t["transaction_status"] for t in admin.call("ShowTransactions", db="d")["transactions"]}
    assert shown == {"held": "ABORTED", "retried": "VISIBLE"}
