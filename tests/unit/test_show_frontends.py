"""ShowFrontends and SHOW PROC '/frontends' on the one-FE HaState (SingleFrontend): StarRocks'
SHOW FRONTENDS columns, in its order, with its formats."""

from __future__ import annotations

import re
from types import SimpleNamespace

from common.gen.tabletsim.v1 import admin_pb2
from fe.catalog.stats import Statistics
from fe.ha.role import FeRole, FrontendInfo, SingleFrontend
from fe.service.admin import AdminServicer
from fe.service.admin_frontends import FRONTEND_COLUMNS, format_frontends, frontends_proc
from tests.unit.fake_ha import FakeHa

STARROCKS_COLUMNS = ["Name", "IP", "EditLogPort", "HttpPort", "QueryPort", "RpcPort", "Role", "IsMaster",
                     "ClusterId", "Join", "Alive", "ReplayedJournalId", "LastHeartbeat", "IsHelper", "ErrMsg",
                     "StartTime", "Version"]
DATETIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def _single(journal_id: int = 17) -> SingleFrontend:
    info = FrontendInfo(name="127.0.0.1_9020", host="127.0.0.1", rpc_port=9020, http_port=8030,
                        cluster_id="12345", start_time_ms=1_700_000_000_000, version="tabletsim-0.1")
    return SingleFrontend(info, lambda: journal_id)


def _servicer(ha, stats: Statistics) -> AdminServicer:
    none = SimpleNamespace()
    return AdminServicer(none, none, stats, none, none, none, set(), none, ha=ha)


async def test_show_frontends_lists_the_one_fe_as_leader():
    stats = Statistics(SimpleNamespace(), lambda loc: False, lambda tablet_id: False)
    resp = await _servicer(_single(), stats).ShowFrontends(admin_pb2.ShowFrontendsRequest(), None)
    [row] = resp.frontends
    assert (row.name, row.ip, row.rpc_port, row.http_port) == ("127.0.0.1_9020", "127.0.0.1", 9020, 8030)
    assert row.role == "LEADER" and row.is_master and row.alive and row.join
    assert row.replayed_journal_id == 17
    assert row.cluster_id == "12345" and row.version == "tabletsim-0.1"
    assert DATETIME.match(row.start_time)
    assert row.last_heartbeat == "NULL"  # never set: StarRocks' TimeUtils.longToTimeString prints NULL
    assert row.HasField("is_helper") and not row.is_helper  # optional: grpcurl prints false too


async def test_show_proc_frontends_has_starrocks_columns_and_formats():
    stats = Statistics(SimpleNamespace(), lambda loc: False, lambda tablet_id: False)
    _servicer(_single(), stats)  # registers '/frontends'
    columns, rows = stats.proc("/frontends")
    assert columns == FRONTEND_COLUMNS == STARROCKS_COLUMNS
    [row] = rows
    shown = dict(zip(columns, row, strict=True))
    assert shown["Role"] == "LEADER" and shown["IsMaster"] == "true" and shown["Alive"] == "true"
    assert shown["Join"] == "true" and shown["IsHelper"] == "false"
    assert shown["ReplayedJournalId"] == "17" and shown["RpcPort"] == "9020" and shown["EditLogPort"] == "0"
    assert DATETIME.match(shown["StartTime"]) and shown["LastHeartbeat"] == "NULL"
    assert stats.proc("'/frontends/'") == (columns, rows)  # quoted and with a trailing slash, as typed in SQL


def test_several_fes_are_listed_with_their_roles_and_the_leader_marked():
    ha = FakeHa("127.0.0.1:9021", FeRole.FOLLOWER, "127.0.0.1:9020", others=("127.0.0.1:9020", "127.0.0.1:9022"))
    columns, rows = frontends_proc(ha)
    roles = [(r[columns.index("RpcPort")], r[columns.index("Role")], r[columns.index("IsMaster")]) for r in rows]
    assert roles == [("9020", "LEADER", "true"), ("9021", "FOLLOWER", "false"), ("9022", "FOLLOWER", "false")]


async def test_format_frontends_for_make_status():
    stats = Statistics(SimpleNamespace(), lambda loc: False, lambda tablet_id: False)
    resp = await _servicer(_single(), stats).ShowFrontends(admin_pb2.ShowFrontendsRequest(), None)
    [line] = format_frontends(list(resp.frontends))
    assert line.startswith("* 127.0.0.1:9020") and "LEADER" in line and "replayed journal id 17" in line
