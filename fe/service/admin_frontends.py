"""AdminService.ShowFrontends and SHOW PROC '/frontends': StarRocks' SHOW FRONTENDS.

Every FE answers from its own :class:`HaState` (a follower too: SHOW FRONTENDS is a read). The
columns and their order are StarRocks' (FrontendsProcNode.TITLE_NAMES, plus StartTime): Name, IP,
EditLogPort, HttpPort, QueryPort, RpcPort, Role, IsMaster, ClusterId, Join, Alive,
ReplayedJournalId, LastHeartbeat, IsHelper, ErrMsg, StartTime, Version. Booleans print as
``true``/``false`` (Java's ``String.valueOf``) and times as ``yyyy-MM-dd HH:mm:ss``, ``NULL``
when unknown (``TimeUtils.longToTimeString``).
"""

from __future__ import annotations

from common.gen.tabletsim.v1 import admin_pb2
from common.timefmt import fmt_ms
from fe.ha.role import FrontendInfo, HaState

FRONTENDS_PROC_PATH = "/frontends"
FRONTEND_COLUMNS = ["Name", "IP", "EditLogPort", "HttpPort", "QueryPort", "RpcPort", "Role", "IsMaster",
                    "ClusterId", "Join", "Alive", "ReplayedJournalId", "LastHeartbeat", "IsHelper", "ErrMsg",
                    "StartTime", "Version"]


def _bool(value: bool) -> str:
    return "true" if value else "false"


def frontend_row(fe: FrontendInfo) -> admin_pb2.FrontendRow:
    return admin_pb2.FrontendRow(
        name=fe.name, ip=fe.host, edit_log_port=fe.edit_log_port, http_port=fe.http_port,
        query_port=fe.query_port, rpc_port=fe.rpc_port, role=fe.role.value, is_master=fe.is_leader,
        cluster_id=fe.cluster_id, join=fe.joined, alive=fe.alive, replayed_journal_id=fe.replayed_journal_id,
        last_heartbeat=fmt_ms(fe.last_heartbeat_ms), is_helper=fe.is_helper, err_msg=fe.err_msg,
        start_time=fmt_ms(fe.start_time_ms), version=fe.version)


def frontend_values(fe: FrontendInfo) -> list[str]:
    """One SHOW PROC '/frontends' row, every column a string as StarRocks prints it."""
    return [fe.name, fe.host, str(fe.edit_log_port), str(fe.http_port), str(fe.query_port), str(fe.rpc_port),
            fe.role.value, _bool(fe.is_leader), fe.cluster_id, _bool(fe.joined), _bool(fe.alive),
            str(fe.replayed_journal_id), fmt_ms(fe.last_heartbeat_ms), _bool(fe.is_helper), fe.err_msg,
            fmt_ms(fe.start_time_ms), fe.version]


def frontends_proc(ha: HaState) -> tuple[list[str], list[list[str]]]:
    """SHOW PROC '/frontends' (register it with :meth:`Statistics.register`)."""
    return list(FRONTEND_COLUMNS), [frontend_values(fe) for fe in _sorted(ha)]


def _sorted(ha: HaState) -> list[FrontendInfo]:
    return sorted(ha.frontends(), key=lambda fe: (fe.host, fe.rpc_port))


def format_frontends(rows: list[admin_pb2.FrontendRow]) -> list[str]:
    """Lines for an operator tool (``make status``): one per FE, the leader marked."""
    return [f"{'*' if r.is_master else ' '} {r.ip}:{r.rpc_port:<6} {r.role:<8} "
            f"{'alive' if r.alive else 'DEAD '} replayed journal id {r.replayed_journal_id}"
            + (f"  ({r.err_msg})" if r.err_msg else "") for r in rows]


class FrontendsAdmin:
    """Mixed into the AdminServicer; errors are mapped by its @servicer decorator."""

    _ha: HaState

    async def ShowFrontends(self, request, context):
        return admin_pb2.ShowFrontendsResponse(frontends=[frontend_row(fe) for fe in _sorted(self._ha)])
