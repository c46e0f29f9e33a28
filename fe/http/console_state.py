"""What the web console shows, as one JSON document (``GET /api/console/state``).

Every number comes from the code AdminService runs, never from a second implementation:

- backends: ``ShowBackends`` (SHOW BACKENDS), plus how many seconds ago each BE heartbeated;
- the replica map: ``ShowReplicaStatus`` of each table (ADMIN SHOW REPLICA STATUS: OK, DEAD,
  VERSION_ERROR, MISSING and the replica state) and the tablet scheduler's running tasks (SHOW
  PROC '/cluster_balance/running_tablets': the replicas being cloned), capped at
  :data:`MAP_TABLET_CAP` tablets;
- routine load: ``job_row`` (the rows of SHOW ROUTINE LOAD: State, Statistic, Lag) and the
  sampled history (fe/http/console_history.py);
- the tablet scheduler: SHOW PROC '/cluster_balance/{pending,running,history}_tablets';
- the totals: SHOW PROC '/statistic' (tablets, replicas, UnhealthyTabletNum).

A follower FE runs no tablet checker, scheduler or routine load scheduler (only the leader does),
so its document says so (``fe.scheduler_running`` false, with the leader's console address)
instead of showing empty lists as if nothing were wrong.
"""

from __future__ import annotations

import json
from typing import Any

from common.gen.tabletsim.v1 import admin_pb2
from common.timefmt import now_ms
from fe.clone.sched_ctx import COLUMNS as SCHED_COLUMNS
from fe.ha.role import FeRole
from fe.http.console_history import ConsoleHistory, points
from fe.service.admin_routine import job_row

MAP_TABLET_CAP = 1024
"""Tablets drawn in the replica map at most (the first ones, table by table)."""
SCHED_ROWS_CAP = 50
"""Pending and running scheduler rows sent at most (the totals are always sent)."""
SCHED_HISTORY_ROWS = 30
"""The newest finished scheduler tasks sent."""
ROUTINE_JOBS_CAP = 30
"""Routine load jobs sent at most: the non-final ones first, then the newest."""

PROC_PENDING = "/cluster_balance/pending_tablets"
PROC_RUNNING = "/cluster_balance/running_tablets"
PROC_HISTORY = "/cluster_balance/history_tablets"

# replica map classes, in the order the legend lists them
HEALTHY, VERSION, DEAD, CLONING, DECOMMISSION, MISSING = (
    "healthy", "version", "dead", "cloning", "decommission", "missing")
CELL_CLASSES = (HEALTHY, VERSION, DEAD, CLONING, DECOMMISSION, MISSING)


class ConsoleCallError(Exception):
    """An AdminService method called in-process refused (its status and message)."""


class LocalContext:
    """The servicer context of an in-process AdminService call: an abort raises
    :class:`ConsoleCallError` instead of answering a gRPC client."""

    async def abort(self, code, details: str = "", trailing_metadata=()) -> None:
        raise ConsoleCallError(f"{getattr(code, 'name', code)}: {details}")


async def _call(admin, method: str, request) -> Any:
    return await getattr(admin, method)(request, LocalContext())


def replica_class(status: str, state: str, *, cloning: bool, decommissioned: bool) -> str:
    """The replica map's colour of one ADMIN SHOW REPLICA STATUS row.

    MISSING (no replica where replication_num wants one) > being cloned (a CLONE replica, or the
    destination of a running clone task) > DEAD (its BE dead, or the replica bad) > on a
    decommissioning BE > VERSION_ERROR (missing versions) > OK.
    """
    if status == "MISSING":
        return MISSING
    if cloning or state == "CLONE":
        return CLONING
    if status == "DEAD":
        return DEAD
    if decommissioned or state == "DECOMMISSION":
        return DECOMMISSION
    if status != "OK":
        return VERSION
    return HEALTHY


def fe_state(node) -> dict[str, Any]:
    """This FE: its role, whether it runs the schedulers, and where the leader's console is."""
    ha = node.ha
    role = ha.role
    frontends = []
    leader_console = None
    for fe in sorted(ha.frontends(), key=lambda f: (f.host, f.rpc_port)):
        url = f"http://{fe.host}:{fe.http_port}/" if fe.http_port else None
        if fe.is_leader:
            leader_console = url
        frontends.append({"name": fe.name, "address": f"{fe.host}:{fe.rpc_port}", "role": fe.role.value,
                          "is_leader": fe.is_leader, "alive": fe.alive, "console": url,
                          "is_self": fe.address == ha.self_address})
    leading = role is FeRole.LEADER
    note = ""
    if not node.serving:
        note = "this FE is starting: it is reading its journal"
    elif not leading:
        where = f" ({ha.leader_address})" if ha.leader_address else " (no FE leads: an election is under way)"
        note = (f"this FE is a {role.value}: the tablet checker and scheduler, the routine load scheduler and "
                f"the transaction counters run on the leader{where}; this page shows what its journal "
                f"replay knows")
    return {
        "role": role.value, "address": ha.self_address, "leader": ha.leader_address,
        "leader_console": leader_console, "serving": bool(node.serving),
        "scheduler_running": bool(node.serving) and leading, "note": note, "frontends": frontends,
    }


async def backends_state(node, now: int) -> list[dict[str, Any]]:
    """SHOW BACKENDS, with the age of each BE's last heartbeat in seconds."""
    resp = await _call(node.admin, "ShowBackends", admin_pb2.ShowBackendsRequest())
    rows = []
    for b in resp.backends:
        be = node.backends.get(b.backend_id)
        last_hb = be.last_heartbeat_ms if be is not None else 0
        rows.append({
            "id": b.backend_id, "host": b.host, "be_port": b.be_port, "http_port": b.http_port,
            "alive": b.alive, "tablets": b.tablet_num, "data_used": b.data_used_capacity,
            "avail": b.avail_capacity, "total": b.total_capacity, "used_pct": b.used_pct,
            "last_heartbeat": b.last_heartbeat, "last_start_time": b.last_start_time,
            "heartbeat_age_s": round((now - last_hb) / 1000, 1) if last_hb else None,
            "decommissioned": b.decommissioned, "tablets_left_to_move": b.tablets_left_to_move,
            "err_msg": b.err_msg,
        })
    return rows


def _proc(node, path: str) -> list[dict[str, str]]:
    columns, rows = node.stats.proc(path)
    return [dict(zip(columns, r, strict=True)) for r in rows]


async def replica_map(node, backends: list[dict[str, Any]], running: list[dict[str, str]],
                      cap: int = MAP_TABLET_CAP) -> dict[str, Any]:
    """Replicas by BE, each a cell [tablet id, class, index into ``partitions``, version].

    ``cells`` maps a backend id (as a string) to its cells; replicas that are missing altogether
    (no BE holds them) are under ``"missing"``. At most ``cap`` tablets are drawn."""
    cloning = {(int(r["TabletId"]), int(r["DestBe"])) for r in running}
    decommissioned = {b["id"] for b in backends if b["decommissioned"]}
    cells: dict[str, list[list[Any]]] = {str(b["id"]): [] for b in backends}
    partitions: list[str] = []
    counts = dict.fromkeys(CELL_CLASSES, 0)
    total = shown = 0
    for db in sorted(node.catalog.databases(), key=lambda d: d.name):
        for table in sorted(db.tables.values(), key=lambda t: t.name):
            tablets = sum(len(p.tablets) for p in table.partitions)
            total += tablets
            if shown >= cap:
                continue
            chosen, room = [], cap - shown
            for p in table.partitions:
                if room <= 0:
                    break
                chosen.append(p)
                room -= len(p.tablets)
            request = admin_pb2.ShowReplicaStatusRequest(
                db=db.name, table=table.name,
                partitions=[] if len(chosen) == len(table.partitions) else [p.name for p in chosen])
            try:
                resp = await _call(node.admin, "ShowReplicaStatus", request)
            except ConsoleCallError:
                continue  # dropped meanwhile
            part_of = {}
            for p in chosen:
                partitions.append(f"{db.name}.{table.name}" + (f"/{p.name}" if table.partition_column else ""))
                for t in p.tablets:
                    part_of[t.tablet_id] = len(partitions) - 1
            seen: set[int] = set()
            for r in resp.replicas:
                if r.tablet_id not in seen:
                    if shown >= cap:
                        break
                    seen.add(r.tablet_id)
                    shown += 1
                cls = replica_class(r.status, r.state, cloning=(r.tablet_id, r.backend_id) in cloning,
                                    decommissioned=r.backend_id in decommissioned)
                counts[cls] += 1
                key = "missing" if cls == MISSING else str(r.backend_id)
                cells.setdefault(key, []).append([r.tablet_id, cls, part_of.get(r.tablet_id, -1), r.version])
    return {"cells": cells, "partitions": partitions, "counts": counts, "tablets_total": total,
            "tablets_shown": shown, "cap": cap}


def routine_state(node, history: ConsoleHistory) -> list[dict[str, Any]]:
    """SHOW ROUTINE LOAD of every database (its rows, as ShowRoutineLoad builds them) with the
    sampled rows/s and lag."""
    jobs = sorted(node.routine.jobs(), key=lambda j: (j.state.is_final, -j.job_id))[:ROUTINE_JOBS_CAP]
    out = []
    for job in jobs:
        row = job_row(job)
        stat = json.loads(row.statistic)
        lag = json.loads(row.lag)
        series = history.job(job.job_id)
        rate = series.rows_per_s.last() if series is not None else None
        out.append({
            "id": row.id, "name": row.name, "db": row.db_name, "table": row.table_name, "state": row.state,
            "tasks": row.current_task_num, "loaded_rows": stat["loadedRows"], "error_rows": stat["errorRows"],
            "committed_tasks": stat["committedTaskNum"], "aborted_tasks": stat["abortedTaskNum"],
            "load_rows_rate": stat["loadRowsRate"], "lag": lag,
            "lag_total": sum(lag.values()) if lag else None, "progress": json.loads(row.progress),
            "reason": row.reason_of_state_changed, "other_msg": row.other_msg,
            "rows_per_s": rate[1] if rate else None,
            "history": {"rows_per_s": points(series.rows_per_s) if series else [],
                        "lag": points(series.lag) if series else []},
        })
    return out


def sched_state(node, running: list[dict[str, str]], active: bool) -> dict[str, Any]:
    """SHOW PROC '/cluster_balance/...' pending, running and the newest history rows."""
    pending = _proc(node, PROC_PENDING)
    history = _proc(node, PROC_HISTORY)
    return {
        "active": active, "columns": list(SCHED_COLUMNS),
        "pending": pending[:SCHED_ROWS_CAP], "pending_total": len(pending),
        "running": running[:SCHED_ROWS_CAP], "running_total": len(running),
        "history": history[::-1][:SCHED_HISTORY_ROWS], "history_total": len(history),
    }


def txn_state(node, history: ConsoleHistory, counted_here: bool) -> dict[str, Any]:
    committed = history.committed_per_s.last()
    aborted = history.aborted_per_s.last()
    return {
        "committed_per_s": committed[1] if committed else None,
        "aborted_per_s": aborted[1] if aborted else None,
        "running": len(node.txns.running()), "counted_here": counted_here,
        "history": {"committed_per_s": points(history.committed_per_s),
                    "aborted_per_s": points(history.aborted_per_s)},
    }


def summary(node, backends: list[dict[str, Any]], leading: bool) -> dict[str, Any]:
    total = _proc(node, "/statistic")[-1]  # the Total row
    return {
        "backends_alive": sum(1 for b in backends if b["alive"]), "backends_total": len(backends),
        "databases": int(total["DbName"]), "tablets": int(total["TabletNum"]),
        "replicas": int(total["ReplicaNum"]),
        # the tablet checker's verdict: only the leader runs the checker
        "unhealthy_tablets": int(total["UnhealthyTabletNum"]) if leading else None,
    }


async def build_state(node, history: ConsoleHistory, cap: int = MAP_TABLET_CAP) -> dict[str, Any]:
    """The whole document the page draws itself from."""
    now = now_ms()
    fe = fe_state(node)
    state: dict[str, Any] = {"now_ms": now, "fe": fe, "history_seconds": history.capacity,
                             "legend": list(CELL_CLASSES)}
    if node.admin is None:  # the FE is still reading its journal: nothing to show yet
        state["starting"] = True
        return state
    leading = fe["scheduler_running"]
    running = _proc(node, PROC_RUNNING)
    backends = await backends_state(node, now)
    state.update(
        starting=False,
        summary=summary(node, backends, leading),
        backends=backends,
        replicas=await replica_map(node, backends, running, cap),
        routine=routine_state(node, history),
        sched=sched_state(node, running, leading),
        txns=txn_state(node, history, leading),
    )
    return state
