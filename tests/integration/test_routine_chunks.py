"""A routine load task writes its batch in chunks of write_buffer_size bytes on a real cluster:
one txn per task, segments appended to each tablet's pending rowset over real WriteRows calls,
every row exactly once, replicas consistent (issue 12, item 3.10)."""

from __future__ import annotations

import json
import re

import pytest

from deploy.cluster import LocalCluster
from tests.kafka_support import create_topic, produce, run
from tests.support import Admin, assert_eventually, exactly_once, grpcurl, query_ids

pytestmark = pytest.mark.integration

ROWS = 3000
WRITE_BUFFER = 2048  # bytes: ~80 chunks for the batch
COLUMNS = [{"name": "id", "type": "BIGINT", "not_null": True}, {"name": "msg", "type": "VARCHAR(64)"}]


def test_one_task_writes_its_batch_in_many_chunks_and_every_row_lands_once(cluster_factory):
    cluster: LocalCluster = cluster_factory(3, with_broker=True, fe_config={"routine_load_task_consume_second": "10"},
                                            be_config={"write_buffer_size": str(WRITE_BUFFER)})
    info = grpcurl(cluster.be_address(0), "tabletsim.v1.BackendService/GetBackendInfo", {},
                   headers={"x-cluster-token": cluster.spec.cluster_token})
    assert info.ok and info.json["config"]["write_buffer_size"] == str(WRITE_BUFFER), info.stderr
    admin = Admin(cluster.fe_address)
    admin.call("CreateDatabase", db="d")
    admin.call("CreateTable", db="d", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=3, properties={"replication_num": "3", "write_quorum": "MAJORITY"})
    run(create_topic(cluster.broker_address, "events", 2))
    run(produce(cluster.broker_address, "events",
                [(i % 2, json.dumps({"id": i, "msg": f"message {i}"}).encode()) for i in range(ROWS)]))
    admin.call("CreateRoutineLoad", db="d", name="job", table="t", columns="id, msg",
               properties={"format": "json", "desired_concurrent_number": "1", "max_batch_interval": "10"},
               data_source_properties={"kafka_broker_list": cluster.broker_address, "kafka_topic": "events",
                                       "property.kafka_default_offsets": "OFFSET_BEGINNING"})
    assert_eventually(lambda: int(admin.call("Query", db="d", table="t", limit=0)["count"]) >= ROWS,
                      timeout_s=90, what=f"{ROWS} rows visible")
    missing, duplicated = exactly_once(query_ids(cluster.fe_address, "d", "t"), range(ROWS))
    assert not missing and not duplicated, (missing[:10], duplicated[:10])
    check = admin.call("CheckConsistency", db="d", table="t")
    assert check["inconsistent_tablets"] == 0, check
    stat = json.loads(admin.call("ShowRoutineLoad", db="d", name="job")["jobs"][0]["statistic"])
    assert stat["committedTaskNum"] == 1 and stat["loadedRows"] == ROWS, stat  # the whole topic in one txn
    # the coordinator wrote it in many chunks (its log line per committed task)
    logs = "".join(open(cluster.log_path(f"be{i}")).read() for i in range(3))
    chunks = [int(m.group(1)) for m in re.finditer(rf"wrote {ROWS} rows in (\d+) chunks", logs)]
    assert chunks and chunks[0] > 10, chunks
