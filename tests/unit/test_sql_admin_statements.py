"""Execution of the admin grammar's statements (fe/sql/admin_statements.py,
fe/sql/admin_routine_statements.py) against a fake AdminService stub: the requests each
statement sends, and the result columns and rows in StarRocks' names and order (the seeds'
headers where the seeds show one)."""

from __future__ import annotations

import grpc
import pytest

from common.gen.tabletsim.v1 import admin_pb2
from fe.sql import admin_statements
from fe.sql.grammar import parse
from fe.sql.result import ER_NO_DB_SELECTED, ER_NOT_SUPPORTED, ER_SYNTAX, ExecContext, SqlError, SqlResult
from tests.unit.test_sql_grammar import SEED_001_CREATE, SEED_002_CREATE

# ---------------------------------------------------------------------------- the seeds' headers

SEED_SHOW_ROUTINE_LOAD = ["Id", "Name", "CreateTime", "PauseTime", "EndTime", "DbName", "TableName", "State",
                          "DataSourceType", "CurrentTaskNum", "JobProperties", "DataSourceProperties",
                          "CustomProperties", "Statistic", "Progress", "ReasonOfStateChanged", "ErrorLogUrls",
                          "OtherMsg"]
SEED_SHOW_ROUTINE_LOAD_TASK = ["TaskId", "TxnId", "TxnStatus", "JobId", "CreateTime", "LastScheduledTime",
                               "ExecuteStartTime", "Timeout", "BeId", "DataSourceProperties", "Message"]
SEED_REPLICA_STATUS = ["TabletId", "ReplicaId", "BackendId", "Version", "LastFailedVersion", "LastSuccessVersion",
                       "CommittedVersion", "SchemaHash", "VersionNum", "IsBad", "State", "Status"]
SEED_SHOW_TABLET_FROM = ["TabletId", "ReplicaId", "BackendId", "SchemaHash", "Version", "VersionHash",
                         "LstSuccessVersion", "LstSuccessVersionHash", "LstFailedVersion", "LstFailedVersionHash",
                         "LstFailedTime", "DataSize", "RowCount", "State", "LstConsistencyCheckTime", "CheckVersion",
                         "CheckVersionHash", "VersionCount", "PathHash", "MetaUrl", "CompactionStatus"]
SEED_REPLICA_DISTRIBUTION = ["BackendId", "ReplicaNum", "Graph", "Percent"]
SEED_SHOW_TABLET_ID = ["DbName", "TableName", "PartitionName", "IndexName", "DbId", "TableId", "PartitionId",
                       "IndexId", "IsSync", "DetailCmd"]
SEED_REPLICAS_PROC = ["ReplicaId", "BackendId", "Version", "VersionHash", "LstSuccessVersion",
                      "LstSuccessVersionHash", "LstFailedVersion", "LstFailedVersionHash", "LstFailedTime",
                      "SchemaHash", "DataSize", "RowCount", "State", "IsBad", "VersionCount", "PathHash", "MetaUrl",
                      "CompactionStatus"]
SEED_STATISTIC = ["DbId", "DbName", "TableNum", "PartitionNum", "IndexNum", "TabletNum", "ReplicaNum",
                  "UnhealthyTabletNum", "InconsistentTabletNum"]


# ---------------------------------------------------------------------------- the fake stub

def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class FakeAdmin:
    """An AdminServiceStub stand-in: ``responses[method]`` is the answer (a message, a function of
    the request, or an exception to raise); every call is recorded in ``calls``."""

    def __init__(self, **responses) -> None:
        self.responses = responses
        self.calls: list[tuple[str, object]] = []

    def __getattr__(self, method: str):
        if not method[:1].isupper():
            raise AttributeError(method)

        async def call(request, **kwargs):
            self.calls.append((method, request))
            if method not in self.responses:
                raise AssertionError(f"unexpected AdminService call {method}({request})")
            answer = self.responses[method]
            if isinstance(answer, Exception):
                raise answer
            return answer(request) if callable(answer) else answer
        return call

    def requests(self, method: str) -> list:
        return [r for m, r in self.calls if m == method]


async def run(sql: str, admin: FakeAdmin, database: str = "db1") -> SqlResult:
    stmt = parse(sql)
    assert stmt is not None
    return await admin_statements.execute(stmt, ExecContext(admin=admin, database=database))


async def fails(sql: str, admin: FakeAdmin, database: str = "db1") -> SqlError:
    with pytest.raises(SqlError) as info:
        await run(sql, admin, database)
    return info.value


# ---------------------------------------------------------------------------- routine load

async def test_create_routine_load_seed_001_sends_the_clauses_unchanged():
    admin = FakeAdmin(CreateRoutineLoad=admin_pb2.CreateRoutineLoadResponse(id=63013))
    result = await run(SEED_001_CREATE, admin, database="")
    assert result.columns == [] and "63013" in result.message
    [req] = admin.requests("CreateRoutineLoad")
    assert (req.db, req.name, req.table) == ("mydatabase", "tutorials_users_test2", "myusers2")
    assert req.columns == "userid, regionid, gender, registertime, dt=from_unixtime(registertime/1000)"
    assert req.where == ""
    assert dict(req.properties) == {"format": "json",
                                    "jsonpaths": '["$.userid","$.regionid","$.gender", "$.registertime"]'}
    assert dict(req.data_source_properties)["property.sasl.password"] == \
        "PF1L6aZ5kEXG5/q8heq5onDmLs6BeekC9X3pFWyuc+AZxw5DYUqBihJjXhKjFJw/"
    assert len(req.data_source_properties) == 7


async def test_create_routine_load_seed_002():
    admin = FakeAdmin(CreateRoutineLoad=admin_pb2.CreateRoutineLoadResponse(id=1))
    await run(SEED_002_CREATE, admin)
    [req] = admin.requests("CreateRoutineLoad")
    assert (req.db, req.name, req.table) == ("app", "rt_events_rl", "rt_events")
    assert req.properties["jsonpaths"] == '["$.event_time","$.user_id","$.action","$"]'
    assert req.properties["max_batch_size"] == "536870912"
    assert dict(req.data_source_properties) == {"kafka_broker_list": "broker1:9092,broker2:9092",
                                                "kafka_topic": "events", "kafka_default_offsets": "OFFSET_BEGINNING"}


async def test_create_routine_load_in_the_current_database_with_load_properties():
    admin = FakeAdmin(CreateRoutineLoad=admin_pb2.CreateRoutineLoadResponse(id=1))
    await run("CREATE ROUTINE LOAD j ON t COLUMNS TERMINATED BY '\\t', ROWS TERMINATED BY '\\n', "
              "COLUMNS (a, b, c = a + b), WHERE a > 1 PROPERTIES ('format' = 'csv') "
              "FROM KAFKA ('kafka_topic' = 'x')", admin, database="cur")
    [req] = admin.requests("CreateRoutineLoad")
    assert (req.db, req.name, req.table) == ("cur", "j", "t")
    assert (req.columns, req.where) == ("a, b, c = a + b", "a > 1")
    assert dict(req.properties) == {"format": "csv", "column_separator": "\t"}


async def test_create_routine_load_hex_separator_reaches_the_fe_escaped():
    admin = FakeAdmin(CreateRoutineLoad=admin_pb2.CreateRoutineLoadResponse(id=1))
    await run("CREATE ROUTINE LOAD j ON t COLUMNS TERMINATED BY '\\x01' FROM KAFKA ('k' = 'v')", admin)
    assert admin.requests("CreateRoutineLoad")[0].properties["column_separator"] == "\\x01"


async def test_create_routine_load_refuses_what_the_fe_cannot_take():
    admin = FakeAdmin()
    err = await fails("CREATE ROUTINE LOAD j ON t COLUMNS TERMINATED BY '|' "
                      "PROPERTIES ('Column_Separator' = ',') FROM KAFKA ('k' = 'v')", admin)
    assert err.code == ER_SYNTAX and "given twice" in err.message and "Column_Separator" in err.message
    err = await fails("CREATE ROUTINE LOAD j ON t ROWS TERMINATED BY '|' FROM KAFKA ('k' = 'v')", admin)
    assert err.code == ER_NOT_SUPPORTED and "ROWS TERMINATED BY '|'" in err.message
    err = await fails("CREATE ROUTINE LOAD j ON t PARTITION (p1, p2) FROM KAFKA ('k' = 'v')", admin)
    assert err.code == ER_NOT_SUPPORTED and "PARTITION (p1, p2) is not supported" in err.message
    err = await fails("CREATE ROUTINE LOAD j ON t FROM KAFKA ('k' = 'v')", admin, database="")
    assert (err.code, err.message) == (ER_NO_DB_SELECTED, "No database selected")
    assert admin.calls == []


async def test_fe_errors_propagate():
    admin = FakeAdmin(CreateRoutineLoad=rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "unknown property 'x'"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await run("CREATE ROUTINE LOAD j ON t PROPERTIES ('x' = '1') FROM KAFKA ('k' = 'v')", admin)
    assert info.value.details() == "unknown property 'x'"


async def test_alter_routine_load_seed_002_forms():
    admin = FakeAdmin(AlterRoutineLoad=admin_pb2.RoutineLoadResponse(state="PAUSED"))
    await run('ALTER ROUTINE LOAD app.rt_events_rl FROM KAFKA ("kafka_offsets" = "0:12345,1:67890,2:54321");', admin)
    await run('ALTER ROUTINE LOAD app.rt_events_rl PROPERTIES ("desired_concurrent_number"="4",'
              '"max_batch_interval"="20");', admin)
    first, second = admin.requests("AlterRoutineLoad")
    assert (first.db, first.name, dict(first.properties)) == ("app", "rt_events_rl", {})
    assert dict(first.data_source_properties) == {"kafka_offsets": "0:12345,1:67890,2:54321"}
    assert dict(second.properties) == {"desired_concurrent_number": "4", "max_batch_interval": "20"}
    assert dict(second.data_source_properties) == {}


async def test_alter_routine_load_with_columns_where_and_separator():
    admin = FakeAdmin(AlterRoutineLoad=admin_pb2.RoutineLoadResponse(state="PAUSED"))
    result = await run("ALTER ROUTINE LOAD FOR j COLUMNS TERMINATED BY ';', COLUMNS (a, b), WHERE b IS NOT NULL",
                       admin)
    assert result.message == "state PAUSED"
    [req] = admin.requests("AlterRoutineLoad")
    assert (req.db, req.name, req.columns, req.where) == ("db1", "j", "a, b", "b IS NOT NULL")
    assert dict(req.properties) == {"column_separator": ";"}


@pytest.mark.parametrize(("verb", "method"), [("PAUSE", "PauseRoutineLoad"), ("RESUME", "ResumeRoutineLoad"),
                                               ("STOP", "StopRoutineLoad")])
async def test_pause_resume_stop(verb, method):
    admin = FakeAdmin(**{method: admin_pb2.RoutineLoadResponse(state="X")})
    await run(f"{verb} ROUTINE LOAD FOR example_tbl2_ordertest2;", admin)
    await run(f"{verb} ROUTINE LOAD FOR app.rt_events_rl;", admin)
    assert [(r.db, r.name) for r in admin.requests(method)] == [("db1", "example_tbl2_ordertest2"),
                                                                ("app", "rt_events_rl")]


def _job(job_id: int, name: str, state: str = "RUNNING") -> admin_pb2.RoutineLoadRow:
    return admin_pb2.RoutineLoadRow(
        id=job_id, name=name, create_time="2022-08-10 17:09:00", pause_time="NULL", end_time="NULL",
        db_name="example_db", table_name="example_tbl2", state=state, data_source_type="KAFKA",
        current_task_num=3, job_properties='{"format":"json"}', data_source_properties='{"topic":"t"}',
        custom_properties="{}", statistic='{"loadedRows":2}', progress='{"0":"1"}', reason_of_state_changed="",
        error_log_urls="", other_msg="", lag='{"0":0}')


async def test_show_routine_load_columns_are_the_seeds():
    admin = FakeAdmin(ShowRoutineLoad=admin_pb2.ShowRoutineLoadResponse(jobs=[_job(63013, "example_tbl2_ordertest2")]))
    result = await run("SHOW ROUTINE LOAD FOR example_tbl2_ordertest2 \\G", admin)
    assert result.columns == SEED_SHOW_ROUTINE_LOAD
    assert result.rows == [("63013", "example_tbl2_ordertest2", "2022-08-10 17:09:00", "NULL", "NULL", "example_db",
                            "example_tbl2", "RUNNING", "KAFKA", "3", '{"format":"json"}', '{"topic":"t"}', "{}",
                            '{"loadedRows":2}', '{"0":"1"}', "", "", "")]
    [req] = admin.requests("ShowRoutineLoad")
    assert (req.db, req.name, req.include_stopped) == ("db1", "example_tbl2_ordertest2", False)


async def test_show_routine_load_all_from_like_state_and_limit():
    jobs = [_job(1, "rt_a"), _job(2, "rt_b", "PAUSED"), _job(3, "other"), _job(4, "RT_c", "STOPPED")]
    admin = FakeAdmin(ShowRoutineLoad=admin_pb2.ShowRoutineLoadResponse(jobs=jobs))
    result = await run("SHOW ALL ROUTINE LOAD FROM app LIKE 'rt\\_%'", admin)
    assert [r[1] for r in result.rows] == ["rt_a", "rt_b", "RT_c"]
    assert (admin.calls[-1][1].db, admin.calls[-1][1].include_stopped) == ("app", True)
    result = await run("SHOW ROUTINE LOAD FROM app", admin)
    assert [r[1] for r in result.rows] == ["rt_a", "rt_b", "other"]
    result = await run("SHOW ROUTINE LOAD WHERE State = 'paused'", admin)
    assert [r[1] for r in result.rows] == ["rt_b"]
    result = await run("SHOW ROUTINE LOAD LIMIT 1, 2", admin)
    assert [r[1] for r in result.rows] == ["rt_b", "other"]
    err = await fails("SHOW ROUTINE LOAD", admin, database="")
    assert err.code == ER_NO_DB_SELECTED


async def test_show_routine_load_for_a_stopped_job_needs_all():
    admin = FakeAdmin(ShowRoutineLoad=admin_pb2.ShowRoutineLoadResponse(jobs=[_job(4, "j", "STOPPED")]))
    err = await fails("SHOW ROUTINE LOAD FOR j", admin)
    assert err.code == ER_SYNTAX
    assert err.message.startswith("There is no running job named j in db db1. Include history? false")
    result = await run("SHOW ALL ROUTINE LOAD FOR j", admin)
    assert [r[7] for r in result.rows] == ["STOPPED"]


async def test_show_routine_load_task_columns_are_the_seeds():
    task = admin_pb2.RoutineLoadTaskRow(
        task_id="18c3a823", txn_id=-1, txn_status="UNKNOWN", job_id=63013, create_time="2022-08-10 17:09:05",
        last_scheduled_time="2022-08-10 17:47:27", execute_start_time="NULL", timeout=60, be_id=-1,
        data_source_properties='{"1":0,"4":0}', message="there is no new data in kafka")
    admin = FakeAdmin(ShowRoutineLoadTask=admin_pb2.ShowRoutineLoadTaskResponse(tasks=[task]))
    result = await run('SHOW ROUTINE LOAD TASK WHERE JobName = "example_tbl2_ordertest2" \\G', admin)
    assert result.columns == SEED_SHOW_ROUTINE_LOAD_TASK
    assert result.rows == [("18c3a823", "-1", "UNKNOWN", "63013", "2022-08-10 17:09:05", "2022-08-10 17:47:27",
                            "NULL", "60", "-1", '{"1":0,"4":0}', "there is no new data in kafka")]
    await run("SHOW ROUTINE LOAD TASK FOR app.rt_events_rl\\G;", admin)
    await run("SHOW ROUTINE LOAD TASK FROM other WHERE JobName = 'j'", admin)
    assert [(r.db, r.name) for r in admin.requests("ShowRoutineLoadTask")] == [
        ("db1", "example_tbl2_ordertest2"), ("app", "rt_events_rl"), ("other", "j")]


# ---------------------------------------------------------------------------- backends and frontends

def _backend(backend_id: int, host: str, port: int, **kw) -> admin_pb2.BackendRow:
    return admin_pb2.BackendRow(backend_id=backend_id, host=host, be_port=port, **kw)


async def test_show_backends_in_starrocks_order():
    be = _backend(10001, "127.0.0.1", 9060, http_port=8040, last_start_time="2024-01-01 00:00:00",
                  last_heartbeat="2024-01-01 00:00:05", alive=True, tablet_num=12, data_used_capacity="1.000 KB",
                  avail_capacity="1.000 GB", total_capacity="2.000 GB", used_pct="50.00 %", err_msg="",
                  decommissioned=False)
    admin = FakeAdmin(ShowBackends=admin_pb2.ShowBackendsResponse(backends=[be]))
    result = await run("SHOW BACKENDS", admin)
    assert result.columns == ["BackendId", "IP", "BePort", "HttpPort", "LastStartTime", "LastHeartbeat", "Alive",
                              "SystemDecommissioned", "TabletNum", "DataUsedCapacity", "AvailCapacity",
                              "TotalCapacity", "UsedPct", "ErrMsg"]
    assert result.rows == [("10001", "127.0.0.1", "9060", "8040", "2024-01-01 00:00:00", "2024-01-01 00:00:05",
                            "true", "false", "12", "1.000 KB", "1.000 GB", "2.000 GB", "50.00 %", "")]
    assert (await run("SHOW PROC '/backends'", admin)).rows == result.rows


async def test_show_frontends_in_starrocks_order():
    fe = admin_pb2.FrontendRow(name="127.0.0.1_9020", ip="127.0.0.1", edit_log_port=9010, http_port=8030,
                               query_port=9030, rpc_port=9020, role="LEADER", is_master=True, cluster_id="7",
                               join=True, alive=True, replayed_journal_id=42, last_heartbeat="NULL",
                               is_helper=True, err_msg="", start_time="2024-01-01 00:00:00", version="tabletsim")
    admin = FakeAdmin(ShowFrontends=admin_pb2.ShowFrontendsResponse(frontends=[fe]))
    result = await run("SHOW FRONTENDS;", admin)
    assert result.columns == ["Name", "IP", "EditLogPort", "HttpPort", "QueryPort", "RpcPort", "Role", "IsMaster",
                              "ClusterId", "Join", "Alive", "ReplayedJournalId", "LastHeartbeat", "IsHelper",
                              "ErrMsg", "StartTime", "Version"]
    assert result.rows == [("127.0.0.1_9020", "127.0.0.1", "9010", "8030", "9030", "9020", "LEADER", "true", "7",
                            "true", "true", "42", "NULL", "true", "", "2024-01-01 00:00:00", "tabletsim")]


BACKENDS = admin_pb2.ShowBackendsResponse(backends=[_backend(10001, "127.0.0.1", 9060),
                                                    _backend(10002, "127.0.0.1", 9061)])


async def test_decommission_backend_by_host_port_sends_its_id():
    admin = FakeAdmin(ShowBackends=BACKENDS,
                      DecommissionBackend=lambda r: admin_pb2.BackendResponse(backend_id=r.backend_id, tablets_left=7))
    result = await run('ALTER SYSTEM DECOMMISSION BACKEND "127.0.0.1:9061"', admin)
    assert [r.backend_id for r in admin.requests("DecommissionBackend")] == [10002]
    assert result.message == "backend 10002: 7 tablets left to move"


async def test_decommission_backend_by_a_name_of_its_address():
    admin = FakeAdmin(ShowBackends=BACKENDS,
                      DecommissionBackend=lambda r: admin_pb2.BackendResponse(backend_id=r.backend_id))
    await run("ALTER SYSTEM DECOMMISSION BACKEND 'localhost:9060', '127.0.0.1:9061'", admin)
    assert [r.backend_id for r in admin.requests("DecommissionBackend")] == [10001, 10002]


async def test_drop_unknown_backend_lets_the_fe_answer():
    admin = FakeAdmin(ShowBackends=BACKENDS,
                      DropBackend=rpc_error(grpc.StatusCode.NOT_FOUND, "unknown backend 10.0.0.9:9060"))
    with pytest.raises(grpc.aio.AioRpcError):
        await run("ALTER SYSTEM DROP BACKEND '10.0.0.9:9060'", admin)
    [req] = admin.requests("DropBackend")
    assert (req.backend_id, req.host, req.be_port) == (0, "10.0.0.9", 9060)


async def test_drop_backend():
    admin = FakeAdmin(ShowBackends=BACKENDS,
                      DropBackend=lambda r: admin_pb2.BackendResponse(backend_id=r.backend_id))
    result = await run('ALTER SYSTEM DROP BACKEND "127.0.0.1:9060";', admin)
    assert [r.backend_id for r in admin.requests("DropBackend")] == [10001]
    assert result.message == "backend 10001 dropped"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:", ":9060", "h:port", "h:70000"])
async def test_backend_address_must_be_host_port(address):
    admin = FakeAdmin(ShowBackends=BACKENDS)
    err = await fails(f"ALTER SYSTEM DECOMMISSION BACKEND '{address}'", admin)
    assert err.code == ER_SYNTAX and f"invalid backend address '{address}'" in err.message
    assert admin.requests("DecommissionBackend") == []


# ---------------------------------------------------------------------------- tablets and proc

def _replica(tablet_id: int, replica_id: int, backend_id: int, **kw) -> admin_pb2.ReplicaRow:
    fields = dict(tablet_id=tablet_id, replica_id=replica_id, backend_id=backend_id, schema_hash=-1, version=2,
                  lst_success_version=2, lst_failed_version=-1, lst_failed_time="N/A", data_size=784, row_count=3,
                  state="NORMAL", is_bad=False, version_count=2, partition_name="p1")
    return admin_pb2.ReplicaRow(**{**fields, **kw})


async def test_show_tablet_from_has_the_seeds_columns():
    compaction = admin_pb2.CompactionStatus(cumulative_point=2, last_base_compaction_result="ok")
    admin = FakeAdmin(ShowTablets=admin_pb2.ShowTabletsResponse(tablets=[
        _replica(29502429, 29502432, 10006, compaction_status=compaction), _replica(29502429, 36885996, 10002)]))
    result = await run("SHOW TABLET FROM tbl1;", admin)
    assert result.columns == SEED_SHOW_TABLET_FROM
    assert result.rows[1] == ("29502429", "36885996", "10002", "-1", "2", "0", "2", "0", "-1", "0", "N/A", "784",
                              "3", "NORMAL", "N/A", "-1", "-1", "2", "-1", "N/A", "N/A")
    assert result.rows[0][-1].startswith('{"cumulative point":2,')
    [req] = admin.requests("ShowTablets")
    assert (req.db, req.table, list(req.partitions)) == ("db1", "tbl1", [])


async def test_show_tablet_from_partition_where_and_limit():
    admin = FakeAdmin(ShowTablets=admin_pb2.ShowTabletsResponse(tablets=[
        _replica(1, 11, 10001), _replica(1, 12, 10002), _replica(2, 21, 10001), _replica(3, 31, 10001)]))
    result = await run("SHOW TABLET FROM db2.t PARTITION (p1) WHERE backendid = 10001 AND State = 'normal' "
                       "LIMIT 1, 5", admin)
    assert [r[1] for r in result.rows] == ["21", "31"]
    [req] = admin.requests("ShowTablets")
    assert (req.db, req.table, list(req.partitions)) == ("db2", "t", ["p1"])
    err = await fails("SHOW TABLET FROM t WHERE Nope = 1", admin)
    assert err.code == ER_SYNTAX and "Unknown column 'Nope'" in err.message


TABLET = admin_pb2.ShowTabletResponse(
    db_name="test", table_name="test", partition_name="p1", db_id=29502391, table_id=29502428,
    partition_id=29502427, tablet_id=29502553, visible_version=2,
    replicas=[_replica(29502553, 43734060, 10004), _replica(29502553, 29502555, 10002, is_bad=True)])


async def test_show_tablet_id_and_its_detail_cmd():
    admin = FakeAdmin(ShowTablet=TABLET)
    result = await run("SHOW TABLET 29502553;", admin)
    assert result.columns == SEED_SHOW_TABLET_ID
    detail = "SHOW PROC '/dbs/29502391/29502428/partitions/29502427/29502428/29502553';"
    assert result.rows == [("test", "test", "p1", "test", "29502391", "29502428", "29502427", "29502428", "true",
                            detail)]
    assert admin.requests("ShowTablet")[0].tablet_id == 29502553
    replicas = await run(detail, admin)
    assert replicas.columns == SEED_REPLICAS_PROC
    assert replicas.rows[1] == ("29502555", "10002", "2", "0", "2", "0", "-1", "0", "N/A", "-1", "784", "3", "NORMAL",
                                "true", "2", "-1", "N/A", "N/A")


async def test_replicas_proc_path_of_another_partition_is_refused():
    admin = FakeAdmin(ShowTablet=TABLET)
    err = await fails("SHOW PROC '/dbs/29502391/29502428/partitions/1/29502428/29502553'", admin)
    assert err.code == ER_SYNTAX and "/dbs/29502391/29502428/partitions/29502427/29502428" in err.message


async def test_show_proc_passes_the_fe_answer_through():
    admin = FakeAdmin(ShowProc=admin_pb2.ShowProcResponse(column_names=SEED_STATISTIC, rows=[
        admin_pb2.ProcRow(values=["10", "example_db", "1", "1", "1", "4", "12", "0", "0"]),
        admin_pb2.ProcRow(values=["Total", "1", "1", "1", "1", "4", "12", "0", "0"])]))
    result = await run("SHOW PROC '/statistic';", admin)
    assert result.columns == SEED_STATISTIC
    assert result.rows == [("10", "example_db", "1", "1", "1", "4", "12", "0", "0"),
                           ("Total", "1", "1", "1", "1", "4", "12", "0", "0")]
    await run("SHOW PROC '/cluster_balance/pending_tablets'", admin)
    assert [r.path for r in admin.requests("ShowProc")] == ["/statistic", "/cluster_balance/pending_tablets"]


# ---------------------------------------------------------------------------- replicas

def _status(tablet_id: int, backend_id: int, status: str) -> admin_pb2.ReplicaStatusRow:
    return admin_pb2.ReplicaStatusRow(tablet_id=tablet_id, replica_id=tablet_id + backend_id, backend_id=backend_id,
                                      version=2, last_failed_version=-1, last_success_version=2, committed_version=1,
                                      schema_hash=-1, version_num=2, is_bad=False, state="NORMAL", status=status)


async def test_admin_show_replica_status_has_the_seeds_columns():
    admin = FakeAdmin(ShowReplicaStatus=admin_pb2.ShowReplicaStatusResponse(replicas=[_status(29502429, 10006, "OK")]))
    result = await run('ADMIN SHOW REPLICA STATUS FROM tbl PARTITION (p1, p2) WHERE STATUS = "OK";', admin)
    assert result.columns == SEED_REPLICA_STATUS
    assert result.rows == [("29502429", "29512435", "10006", "2", "-1", "2", "1", "-1", "2", "false", "NORMAL", "OK")]
    [req] = admin.requests("ShowReplicaStatus")
    assert (req.db, req.table, list(req.partitions), req.status) == ("db1", "tbl", ["p1", "p2"], "OK")


async def test_admin_show_replica_status_not_equal():
    rows = [_status(1, 10001, "OK"), _status(1, 10002, "DEAD"), _status(2, 10001, "VERSION_ERROR")]
    admin = FakeAdmin(ShowReplicaStatus=admin_pb2.ShowReplicaStatusResponse(replicas=rows))
    result = await run("ADMIN SHOW REPLICA STATUS FROM db2.t WHERE STATUS != 'ok'", admin)
    assert [r[-1] for r in result.rows] == ["DEAD", "VERSION_ERROR"]
    assert admin.requests("ShowReplicaStatus")[0].status == ""
    err = await fails("ADMIN SHOW REPLICA STATUS FROM t WHERE STATUS <> 'FINE'", admin)
    assert err.code == ER_SYNTAX and "invalid status 'FINE'; allowed: OK, DEAD" in err.message


async def test_admin_show_replica_distribution_has_the_seeds_columns():
    admin = FakeAdmin(ShowReplicaDistribution=admin_pb2.ShowReplicaDistributionResponse(distribution=[
        admin_pb2.ReplicaDistributionRow(backend_id=10000, replica_num=7, graph="#", percent="7.29 %")]))
    result = await run("ADMIN SHOW REPLICA DISTRIBUTION FROM tbl1;", admin)
    assert result.columns == SEED_REPLICA_DISTRIBUTION
    assert result.rows == [("10000", "7", "#", "7.29 %")]
    [req] = admin.requests("ShowReplicaDistribution")
    assert (req.db, req.table) == ("db1", "tbl1")


async def test_admin_repair_and_cancel_repair():
    admin = FakeAdmin(RepairTable=admin_pb2.RepairTableResponse(tablets=8),
                      CancelRepairTable=admin_pb2.RepairTableResponse(tablets=4))
    result = await run("ADMIN REPAIR TABLE db2.t PARTITION (p1, p2)", admin)
    assert result.columns == [] and "8 tablets" in result.message
    await run("ADMIN CANCEL REPAIR TABLE t", admin)
    [repair] = admin.requests("RepairTable")
    [cancel] = admin.requests("CancelRepairTable")
    assert (repair.db, repair.table, list(repair.partitions)) == ("db2", "t", ["p1", "p2"])
    assert (cancel.db, cancel.table, list(cancel.partitions)) == ("db1", "t", [])


async def test_admin_check_tablet_checks_each_tablets_table_once():
    tablets = {1: ("db1", "a"), 2: ("db1", "a"), 3: ("db2", "b")}
    admin = FakeAdmin(
        ShowTablet=lambda r: admin_pb2.ShowTabletResponse(db_name=tablets[r.tablet_id][0],
                                                          table_name=tablets[r.tablet_id][1], tablet_id=r.tablet_id),
        CheckConsistency=admin_pb2.CheckConsistencyResponse(checked_tablets=4, inconsistent_tablets=1))
    result = await run('ADMIN CHECK TABLET (1, 2, 3) PROPERTIES("type" = "consistency")', admin)
    assert [(r.db, r.table) for r in admin.requests("CheckConsistency")] == [("db1", "a"), ("db2", "b")]
    assert "db1.a: 4 tablets checked, 1 inconsistent" in result.message
    err = await fails("ADMIN CHECK TABLET (1)", admin)
    assert err.code == ER_SYNTAX and '"type" = "consistency"' in err.message


# ---------------------------------------------------------------------------- config and transactions

CONFIGS = admin_pb2.ShowConfigResponse(configs=[
    admin_pb2.ConfigRow(key="heartbeat_timeout_second", value="5", type="int", is_mutable=True,
                        comment="a BE with no heartbeat for this long is dead"),
    admin_pb2.ConfigRow(key="heartbeat_interval_ms", value="500", type="int", is_mutable=True),
    admin_pb2.ConfigRow(key="enable_x", value="true", type="bool", is_mutable=True),
    admin_pb2.ConfigRow(key="ratio", value="0.5", type="float", is_mutable=False),
    admin_pb2.ConfigRow(key="policy", value="a", type="str", is_mutable=True),
])


async def test_admin_set_frontend_config():
    admin = FakeAdmin(SetConfig=admin_pb2.SetConfigResponse())
    result = await run('ADMIN SET FRONTEND CONFIG ("heartbeat_timeout_second" = "8", "x" = "1")', admin)
    assert result.columns == []
    assert [(r.name, r.value) for r in admin.requests("SetConfig")] == [("heartbeat_timeout_second", "8"), ("x", "1")]


async def test_admin_show_frontend_config_columns_types_and_like():
    admin = FakeAdmin(ShowConfig=CONFIGS)
    result = await run("ADMIN SHOW FRONTEND CONFIG", admin)
    assert result.columns == ["Key", "AliasNames", "Value", "Type", "IsMutable", "Comment"]
    assert result.rows[0] == ("heartbeat_timeout_second", "[]", "5", "int", "true",
                              "a BE with no heartbeat for this long is dead")
    assert [r[3] for r in result.rows] == ["int", "int", "boolean", "double", "String"]
    assert result.rows[3][4] == "false"
    result = await run("ADMIN SHOW FRONTEND CONFIG LIKE '%heartbeat%'", admin)
    assert [r[0] for r in result.rows] == ["heartbeat_timeout_second", "heartbeat_interval_ms"]
    result = await run("ADMIN SHOW FRONTEND CONFIG LIKE 'heartbeat%second'", admin)
    assert [r[0] for r in result.rows] == ["heartbeat_timeout_second"]
    result = await run("ADMIN SHOW FRONTEND CONFIG LIKE '%nothing%'", admin)
    assert result.rows == [] and result.columns[0] == "Key"
    assert {r.pattern for r in admin.requests("ShowConfig")} == {""}


async def test_show_transaction_columns_and_requests():
    txn = admin_pb2.TransactionRow(
        transaction_id=4005, label="insert_8d807d5d", coordinator="BE: 10001", transaction_status="VISIBLE",
        load_job_source_type="ROUTINE_LOAD_TASK", prepare_time="2020-01-09 14:59:07",
        commit_time="2020-01-09 14:59:09", publish_time="2020-01-09 14:59:09", finish_time="2020-01-09 14:59:09",
        reason="", error_replicas_count=0)
    admin = FakeAdmin(ShowTransactions=admin_pb2.ShowTransactionsResponse(transactions=[txn]))
    result = await run("SHOW TRANSACTION FROM db WHERE ID=4005;", admin)
    assert result.columns == ["TransactionId", "Label", "Coordinator", "TransactionStatus", "LoadJobSourceType",
                              "PrepareTime", "CommitTime", "PublishTime", "FinishTime", "Reason",
                              "ErrorReplicasCount", "ListenerId", "TimeoutMs", "ErrMsg"]
    assert result.rows == [("4005", "insert_8d807d5d", "BE: 10001", "VISIBLE", "ROUTINE_LOAD_TASK",
                            "2020-01-09 14:59:07", "2020-01-09 14:59:09", "2020-01-09 14:59:09",
                            "2020-01-09 14:59:09", "", "0", "NULL", "NULL", "")]
    await run("SHOW TRANSACTION WHERE LABEL = 'l1'", admin)
    await run("SHOW TRANSACTION WHERE STATUS = 'aborted'", admin)
    reqs = admin.requests("ShowTransactions")
    assert [(r.db, r.txn_id, r.label, r.status) for r in reqs] == [
        ("db", 4005, "", ""), ("db1", 0, "l1", ""), ("db1", 0, "", "aborted")]
