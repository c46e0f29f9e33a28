"""The web console's state document (fe/http/console_state.py) and its routes (fe/http/console.py),
built from a real catalog, backend registry, transaction and routine load managers, tablet
scheduler and AdminServicer, with no process: what the page shows comes from what AdminService
answers (ShowBackends, ShowReplicaStatus, SHOW PROC, SHOW ROUTINE LOAD's rows)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from common.httpserver import require_auth
from fe.catalog.model import ReplicaState
from fe.catalog.stats import Statistics
from fe.clone.daemon import TabletSchedDaemon
from fe.clone.sched_ctx import COLUMNS, Priority, SchedState, SchedType, TabletSchedCtx, TabletStatus
from fe.ha.role import FeRole, FrontendInfo, SingleFrontend
from fe.http import console
from fe.http.console_history import ConsoleHistory, ConsoleSampler
from fe.http.console_state import (
    CLONING,
    DEAD,
    DECOMMISSION,
    HEALTHY,
    MISSING,
    PROC_RUNNING,
    VERSION,
    build_state,
    replica_class,
)
from fe.service.admin import AdminServicer
from fe.txn.state import SourceType
from tests.unit.fake_ha import FakeHa
from tests.unit.test_catalog import FakeClients, build, spec, txns_and_routine

WALL_MS = 1_700_000_000_000
SOURCE = {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "x"}


async def make_node(tmp_path, ha=None, buckets: int = 4):
    """An in-process FE: the domains, the scheduler's procs and the AdminServicer, one table d.t
    (``buckets`` tablets, 3 replicas each, on 3 alive BEs)."""
    clients = FakeClients()
    journal, catalog, (txns, routine) = build(tmp_path, clients, more=txns_and_routine(lambda: WALL_MS))
    backends, config = catalog._backends, catalog._config
    sched = TabletSchedDaemon(catalog, backends, clients, catalog._ids, config)
    stats = Statistics(catalog, lambda loc: sched.is_unhealthy(loc.tablet.tablet_id), lambda tablet_id: False)
    sched.register_procs(stats.register)
    if ha is None:
        ha = SingleFrontend(FrontendInfo(name="127.0.0.1_9020", host="127.0.0.1", rpc_port=9020, http_port=8030,
                                         role=FeRole.LEADER, is_leader=True), lambda: 1)
    admin = AdminServicer(backends, catalog, stats, config, txns, clients, set(), routine,
                          tablet_sched=sched, ha=ha)
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=buckets))
    return SimpleNamespace(admin=admin, backends=backends, catalog=catalog, stats=stats, txns=txns,
                           routine=routine, tablet_sched=sched, ha=ha, serving=True, journal=journal)


def cells_by_class(state) -> dict[str, list[str]]:
    """backend id (or 'missing') -> the classes of its cells."""
    return {be: [c[1] for c in cells] for be, cells in state["replicas"]["cells"].items()}


def test_replica_class_precedence():
    assert replica_class("OK", "NORMAL", cloning=False, decommissioned=False) == HEALTHY
    assert replica_class("VERSION_ERROR", "NORMAL", cloning=False, decommissioned=False) == VERSION
    assert replica_class("DEAD", "NORMAL", cloning=False, decommissioned=False) == DEAD
    assert replica_class("DEAD", "NORMAL", cloning=False, decommissioned=True) == DEAD  # dead wins
    assert replica_class("OK", "NORMAL", cloning=False, decommissioned=True) == DECOMMISSION
    assert replica_class("OK", "DECOMMISSION", cloning=False, decommissioned=False) == DECOMMISSION
    assert replica_class("VERSION_ERROR", "NORMAL", cloning=True, decommissioned=False) == CLONING
    assert replica_class("VERSION_ERROR", "CLONE", cloning=False, decommissioned=False) == CLONING
    assert replica_class("MISSING", "NULL", cloning=True, decommissioned=False) == MISSING


async def test_state_of_a_healthy_cluster(tmp_path):
    node = await make_node(tmp_path)
    state = await build_state(node, ConsoleHistory())
    json.dumps(state)  # the page gets it as JSON
    assert state["starting"] is False
    assert state["fe"]["role"] == "LEADER" and state["fe"]["scheduler_running"] and not state["fe"]["note"]
    assert state["fe"]["leader_console"] == "http://127.0.0.1:8030/"
    assert state["summary"] == {"backends_alive": 3, "backends_total": 3, "databases": 1, "tablets": 4,
                                "replicas": 12, "unhealthy_tablets": 0}
    bes = state["backends"]
    assert [b["be_port"] for b in bes] == [9060, 9061, 9062]
    assert all(b["alive"] and b["tablets"] == 4 and not b["decommissioned"] for b in bes)
    assert all(b["heartbeat_age_s"] is not None for b in bes)
    replicas = state["replicas"]
    assert replicas["tablets_total"] == replicas["tablets_shown"] == 4
    assert replicas["partitions"] == ["d.t"]
    assert cells_by_class(state) == {str(b["id"]): [HEALTHY] * 4 for b in bes}
    assert replicas["counts"][HEALTHY] == 12 and sum(replicas["counts"].values()) == 12
    assert state["sched"]["active"] and state["sched"]["pending"] == [] and state["sched"]["running_total"] == 0
    assert state["txns"]["counted_here"] and state["txns"]["running"] == 0
    assert state["routine"] == []


async def test_a_dead_backend_and_its_replicas(tmp_path):
    node = await make_node(tmp_path)
    dead = node.backends.all()[1]
    dead.alive, dead.err_msg = False, "no heartbeat for more than 3 s"
    state = await build_state(node, ConsoleHistory())
    row = next(b for b in state["backends"] if b["id"] == dead.backend_id)
    assert row["alive"] is False and row["err_msg"] == "no heartbeat for more than 3 s"
    assert state["summary"]["backends_alive"] == 2
    cells = cells_by_class(state)
    assert cells[str(dead.backend_id)] == [DEAD] * 4
    assert all(classes == [HEALTHY] * 4 for be, classes in cells.items() if be != str(dead.backend_id))
    assert state["replicas"]["counts"][DEAD] == 4


async def test_lagging_cloning_decommissioned_and_missing_replicas(tmp_path):
    node = await make_node(tmp_path)
    _, table = node.catalog.table("d", "t")
    t0, t1, t2, t3 = table.partitions[0].tablets
    be_a, be_b, be_c = (b.backend_id for b in node.backends.all())
    t0.replica_on(be_a).last_failed_version = 3  # missed a write
    t1.replica_on(be_a).state = ReplicaState.CLONE  # being made by a clone task
    t2.replicas = [r for r in t2.replicas if r.backend_id != be_b]  # lost: one replica too few
    running = TabletSchedCtx(tablet_id=t3.tablet_id, db_id=0, table_id=0, partition_id=0, type=SchedType.REPAIR,
                             status=TabletStatus.VERSION_INCOMPLETE, orig_prio=Priority.NORMAL, create_s=0.0,
                             state=SchedState.RUNNING, src_be=be_a, dest_be=be_c)
    node.stats.register(PROC_RUNNING, lambda: (list(COLUMNS), [running.row()]))  # a clone into t3 on be_c
    node.backends.get(be_b).decommissioned = True
    state = await build_state(node, ConsoleHistory())

    def cls(tablet, be):
        return next(c[1] for c in state["replicas"]["cells"][str(be)] if c[0] == tablet.tablet_id)

    assert cls(t0, be_a) == VERSION and cls(t1, be_a) == CLONING and cls(t3, be_c) == CLONING
    assert cls(t0, be_b) == DECOMMISSION and cls(t3, be_a) == HEALTHY
    assert [c[0] for c in state["replicas"]["cells"]["missing"]] == [t2.tablet_id]
    assert state["replicas"]["counts"] == {HEALTHY: 5, VERSION: 1, DEAD: 0, CLONING: 2, DECOMMISSION: 3,
                                           MISSING: 1}
    assert next(b for b in state["backends"] if b["id"] == be_b)["decommissioned"] is True
    assert [r["TabletId"] for r in state["sched"]["running"]] == [str(t3.tablet_id)]


async def test_the_map_is_capped(tmp_path):
    node = await make_node(tmp_path, buckets=8)
    await node.catalog.create_table("d", spec("u", buckets=6))
    state = await build_state(node, ConsoleHistory(), cap=10)
    replicas = state["replicas"]
    assert (replicas["tablets_total"], replicas["tablets_shown"], replicas["cap"]) == (14, 10, 10)
    assert sum(len(c) for c in replicas["cells"].values()) == 30
    assert replicas["partitions"] == ["d.t", "d.u"]
    assert state["summary"]["tablets"] == 14


async def test_routine_load_jobs_with_their_history(tmp_path):
    node = await make_node(tmp_path)
    job = node.routine.create("d", "j", "t", "", "", {"desired_concurrent_number": "3"}, SOURCE)
    history, now = ConsoleHistory(capacity=300), [100.0]
    sampler = ConsoleSampler(history, lambda: node.txns.counters, node.routine.jobs, clock=lambda: now[0])
    job.progress, job.highwater = {0: 0, 1: 0}, {0: 50, 1: 70}
    sampler.sample()
    job.progress, job.stat.loaded_rows = {0: 40, 1: 60}, 100
    now[0] += 1
    sampler.sample()
    state = await build_state(node, history)
    [row] = state["routine"]
    assert (row["name"], row["db"], row["table"], row["state"]) == ("j", "d", "t", "NEED_SCHEDULE")
    assert row["loaded_rows"] == 100 and row["lag"] == {"0": 10, "1": 10} and row["lag_total"] == 20
    assert row["rows_per_s"] == 100.0
    assert row["history"]["rows_per_s"] == [[101000, 100.0]]
    assert row["history"]["lag"] == [[100000, 120], [101000, 20]]


async def test_transactions_per_second_from_the_managers_counters(tmp_path):
    node = await make_node(tmp_path)
    history, now = ConsoleHistory(), [10.0]
    sampler = ConsoleSampler(history, lambda: node.txns.counters, node.routine.jobs, clock=lambda: now[0])
    sampler.sample()
    _, table = node.catalog.table("d", "t")
    infos = {t.tablet_id: [r.backend_id for r in t.replicas] for t in table.partitions[0].tablets}
    for i in range(4):
        txn, _, _ = node.txns.begin("d", "t", f"l{i}", 60, "BE: 1", SourceType.BACKEND_STREAMING)
        if i == 3:
            node.txns.abort(txn.txn_id, "test")
        else:
            node.txns.commit(txn.txn_id, infos, {}, 5)
    now[0] += 2
    sampler.sample()
    state = await build_state(node, history)
    assert state["txns"]["committed_per_s"] == 1.5 and state["txns"]["aborted_per_s"] == 0.5
    assert state["txns"]["history"]["committed_per_s"] == [[12000, 1.5]]
    assert state["txns"]["running"] == 3  # committed, not yet visible


async def test_a_follower_says_the_scheduler_runs_on_the_leader(tmp_path):
    ha = FakeHa("127.0.0.1:9021", FeRole.FOLLOWER, "127.0.0.1:9020", others=("127.0.0.1:9020",))
    node = await make_node(tmp_path, ha=ha)
    state = await build_state(node, ConsoleHistory())
    fe = state["fe"]
    assert fe["role"] == "FOLLOWER" and fe["scheduler_running"] is False
    assert "run on the leader (127.0.0.1:9020)" in fe["note"]
    assert [f["is_self"] for f in fe["frontends"]] == [False, True]  # sorted by address
    assert state["sched"]["active"] is False and state["txns"]["counted_here"] is False
    assert state["summary"]["unhealthy_tablets"] is None  # the checker runs on the leader only
    assert state["summary"]["backends_total"] == 3 and state["replicas"]["tablets_total"] == 4

    ha.become(FeRole.FOLLOWER, None)  # an election under way
    state = await build_state(node, ConsoleHistory())
    assert "no FE leads" in state["fe"]["note"] and state["fe"]["leader_console"] is None


async def test_a_starting_fe_has_nothing_to_show_yet(tmp_path):
    node = await make_node(tmp_path)
    node.admin, node.serving = None, False
    state = await build_state(node, ConsoleHistory())
    assert state["starting"] is True and "reading its journal" in state["fe"]["note"]
    assert "backends" not in state


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_routes_serve_the_page_its_files_and_the_state(tmp_path):
    node = await make_node(tmp_path)
    app = web.Application(middlewares=[require_auth(None)])
    console.install(app, node)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/")
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")  # the browser asks
        auth = _basic("root", "")
        resp = await client.get("/", headers=auth)
        page = await resp.text()
        assert resp.status == 200 and "/console/console.js" in page and "/console/console.css" in page
        assert "http://" not in page.replace("http://www.w3.org", "")  # nothing from elsewhere
        for name, kind in (("console.js", "javascript"), ("console.css", "css")):
            resp = await client.get(f"/console/{name}", headers=auth)
            assert resp.status == 200 and kind in resp.headers["Content-Type"]
        resp = await client.get("/console/../console.py", headers=auth)
        assert resp.status in (403, 404)
        resp = await client.get("/api/console/state", headers=auth)
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache"
        state = await resp.json()
        assert state["summary"]["backends_alive"] == 3
        # the sampler started with the server: it has sampled once already
        assert app[console.CONSOLE_KEY].history._last is not None
