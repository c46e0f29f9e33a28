"""Issue 6: tablet reports, checker, scheduler, clone, balance and decommission with real processes."""

from __future__ import annotations

import base64
from collections import Counter, defaultdict

import pytest

from deploy.cluster import LocalCluster
from deploy.ports import free_ports
from tests.support import Admin, assert_eventually

pytestmark = pytest.mark.integration

FAST = {
    "heartbeat_timeout_second": "3",
    "tablet_sched_repair_delay_factor_second": "2",
    "tablet_sched_checker_interval_seconds": "1",
}
COLUMNS = [
    {"name": "id", "type": "BIGINT", "not_null": True},
    {"name": "msg", "type": "VARCHAR(64)"},
]


def create_table(admin: Admin, table: str = "t", buckets: int = 4) -> None:
    admin.call("CreateDatabase", db="d", if_not_exists=True)
    admin.call("CreateTable", db="d", table=table, columns=COLUMNS, duplicate_key=["id"],
               distributed_by=["id"], buckets=buckets,
               properties={"replication_num": "3", "write_quorum": "MAJORITY"})


def load(admin: Admin, start: int, n: int, table: str = "t") -> None:
    data = "".join(f"{i},m{i}\n" for i in range(start, start + n)).encode()
    res = admin.call("StreamLoad", {"db": "d", "table": table, "data": base64.b64encode(data).decode()},
                     timeout_s=120)
    assert res["status"] == "Success", res


def count(admin: Admin, table: str = "t") -> int:
    return int(admin.call("Query", db="d", table=table, limit=0)["count"])


def backend_id(cluster: LocalCluster, admin: Admin, i: int) -> str:
    port = cluster.spec.be_port_of(i)
    return next(b["backend_id"] for b in admin.call("ShowBackends")["backends"] if b["be_port"] == port)


def backends(admin: Admin) -> dict[str, dict]:
    return {b["backend_id"]: b for b in admin.call("ShowBackends")["backends"]}


def replica_status(admin: Admin, table: str = "t", **kw) -> list[dict]:
    return admin.call("ShowReplicaStatus", db="d", table=table, **kw).get("replicas", [])


def all_repaired(admin: Admin, table: str = "t", avoid: str | None = None) -> bool:
    """Every tablet: exactly 3 replicas, all OK (alive, caught up, NORMAL), none on ``avoid``."""
    rows = replica_status(admin, table)
    per_tablet = Counter(r["tablet_id"] for r in rows)
    bad = [r for r in rows if r["status"] != "OK" or r["state"] != "NORMAL" or r["backend_id"] == avoid]
    assert not bad and set(per_tablet.values()) == {3}, (
        f"not repaired yet: {[(r['tablet_id'], r['backend_id'], r['status'], r['state']) for r in bad][:6]}, "
        f"replicas per tablet {dict(per_tablet)}")
    return True


def proc(admin: Admin, path: str) -> list[dict]:
    res = admin.call("ShowProc", path=path)
    cols = res["column_names"]
    return [dict(zip(cols, r.get("values", []), strict=True)) for r in res.get("rows", [])]


def unhealthy(admin: Admin) -> int:
    return int(proc(admin, "/statistic")[-1]["UnhealthyTabletNum"])


def check_slots(admin: Admin, slots: int) -> list[dict]:
    """running_tablets never uses more clone slots on a path than it has."""
    running = proc(admin, "/cluster_balance/running_tablets")
    used: Counter = Counter()
    for r in running:
        if r["SrcBe"] != "-1" and r["Status"] != "REDUNDANT":
            used[(r["SrcBe"], r["SrcPath"])] += 1
            used[(r["DestBe"], r["DestPath"])] += 1
    assert all(n <= slots for n in used.values()), f"more clones than slots on a path: {used}"
    return running


def consistent(admin: Admin, table: str = "t") -> None:
    check = admin.call("CheckConsistency", db="d", table=table)
    assert check["inconsistent_tablets"] == 0 and check["checked_tablets"] > 0, check
    sums: dict[str, set[str]] = defaultdict(set)
    for r in check["replicas"]:
        assert not r.get("error"), r
        sums[r["tablet_id"]].add(r["checksum"])
    assert all(len(s) == 1 for s in sums.values()) and all(
        Counter(r["tablet_id"] for r in check["replicas"])[t] == 3 for t in sums)


def test_killed_be_is_repaired_by_full_clones_while_loads_go_on(cluster_factory):
    cluster = cluster_factory(4, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    create_table(admin)
    for k in range(3):
        load(admin, k * 2000, 2000)
    assert unhealthy(admin) == 0
    dead = backend_id(cluster, admin, 0)
    held = {r["tablet_id"] for r in replica_status(admin) if r["backend_id"] == dead}
    assert held
    cluster.kill_node("be0")
    assert_eventually(lambda: unhealthy(admin) >= len(held), timeout_s=15, what="UnhealthyTabletNum to rise")
    load(admin, 6000, 1000)  # during the repair delay / the repair: quorum still holds
    assert_eventually(lambda: check_slots(admin, 2) is not None and all_repaired(admin, avoid=dead),
                      timeout_s=60, interval_s=0.3, what="3 healthy replicas of every tablet on the other BEs")
    load(admin, 7000, 1000)
    assert count(admin) == 8000
    history = proc(admin, "/cluster_balance/history_tablets")
    clones = [h for h in history if h["State"] == "FINISHED" and h["Status"] == "REPLICA_MISSING"
              and h["SrcBe"] != "-1"]
    assert {h["TabletId"] for h in clones} >= held, history
    for h in clones:
        assert h["DestBe"] not in ("-1", dead) and h["SrcBe"] != dead and "FULL clone" in h["ErrMsg"], h
    drops = [h for h in history if h["Status"] == "REDUNDANT" and h["DestBe"] == dead]
    assert {h["TabletId"] for h in drops} == held, history
    assert_eventually(lambda: unhealthy(admin) == 0, timeout_s=10, what="UnhealthyTabletNum back to 0")
    consistent(admin)


def test_short_outage_catches_up_by_incremental_clone(cluster_factory):
    cluster = cluster_factory(4, fe_config={**FAST, "tablet_sched_repair_delay_factor_second": "60"})
    admin = Admin(cluster.fe_address)
    create_table(admin)
    load(admin, 0, 1000)  # version 2
    victim = backend_id(cluster, admin, 1)
    placement = {(r["tablet_id"], r["backend_id"]) for r in replica_status(admin)}
    cluster.kill_node("be1")
    assert_eventually(lambda: not backends(admin)[victim]["alive"], timeout_s=10, what="be1 dead")
    load(admin, 1000, 1000)  # version 3
    load(admin, 2000, 1000)  # version 4
    lagging = [r for r in replica_status(admin) if r["backend_id"] == victim]
    assert lagging and all(r["status"] == "DEAD" for r in lagging)
    cluster.start_node("be1")
    assert_eventually(lambda: all_repaired(admin), timeout_s=40, interval_s=0.3,
                      what="the restarted BE's replicas to catch up")
    assert {(r["tablet_id"], r["backend_id"]) for r in replica_status(admin)} == placement  # nothing moved
    history = proc(admin, "/cluster_balance/history_tablets")
    assert not [h for h in history if "FULL clone" in h["ErrMsg"] or h["Status"] == "REPLICA_MISSING"], history
    incremental = [h for h in history if h["State"] == "FINISHED" and h["DestBe"] == victim]
    assert {h["TabletId"] for h in incremental} == {r["tablet_id"] for r in lagging}, history
    for h in incremental:
        assert h["Status"] == "VERSION_INCOMPLETE" and "INCREMENTAL clone" in h["ErrMsg"], h
        assert "copied versions 3-4 (2 rowsets" in h["ErrMsg"], h
    assert count(admin) == 3000
    consistent(admin)


def test_wiped_be_replicas_are_found_missing_by_report_and_recloned(cluster_factory):
    cluster = cluster_factory(4, fe_config={**FAST, "tablet_sched_repair_delay_factor_second": "60"})
    admin = Admin(cluster.fe_address)
    create_table(admin)
    load(admin, 0, 3000)
    victim = backend_id(cluster, admin, 2)
    lost = {r["tablet_id"] for r in replica_status(admin) if r["backend_id"] == victim}
    cluster.kill_node("be2")
    cluster.wipe_data("be2")
    cluster.start_node("be2")
    assert_eventually(lambda: backends(admin)[victim]["alive"], timeout_s=20,
                      what="the wiped BE to register again under its old id")
    assert len(backends(admin)) == 4
    def marked_bad() -> bool:
        bad = {r["tablet_id"] for r in replica_status(admin) if r["backend_id"] == victim and r["is_bad"]}
        repaired = {h["TabletId"] for h in proc(admin, "/cluster_balance/history_tablets")}
        return lost <= bad | repaired
    assert_eventually(marked_bad, timeout_s=20, what="the report to mark the lost replicas bad")
    assert_eventually(lambda: all_repaired(admin), timeout_s=60, interval_s=0.3, what="full clones")
    history = proc(admin, "/cluster_balance/history_tablets")
    recloned = {h["TabletId"] for h in history if h["State"] == "FINISHED" and "FULL clone" in h["ErrMsg"]}
    assert lost <= recloned, history
    assert count(admin) == 3000
    consistent(admin)


def test_repair_table_goes_first_and_slots_hold(cluster_factory):
    cluster = cluster_factory(4, fe_config={**FAST, "tablet_sched_repair_delay_factor_second": "60",
                                            "tablet_sched_slot_num_per_path": "1",
                                            "tablet_sched_disable_balance": "true"})
    admin = Admin(cluster.fe_address)
    create_table(admin, "t1")
    create_table(admin, "t2")
    load(admin, 0, 2000, "t1")
    load(admin, 0, 2000, "t2")
    err = admin.error("RepairTable", db="d", table="nope")
    assert err.code == "NotFound" and "unknown table 'nope'" in err.message
    err = admin.error("RepairTable", db="d", table="t1", partitions=["p9"])
    assert err.code == "NotFound" and "unknown partition 'p9'" in err.message
    err = admin.error("ShowReplicaStatus", db="d", table="t1", status="BROKEN")
    assert err.code == "InvalidArgument" and "OK, DEAD, VERSION_ERROR, SCHEMA_ERROR, MISSING" in err.message
    dead = backend_id(cluster, admin, 3)
    cluster.kill_node("be3")
    assert_eventually(lambda: not backends(admin)[dead]["alive"], timeout_s=10, what="be3 dead")
    assert admin.call("RepairTable", db="d", table="t2")["tablets"] == 4
    assert_eventually(lambda: check_slots(admin, 1) is not None and all_repaired(admin, "t2", avoid=dead),
                      timeout_s=60, interval_s=0.2, what="t2 repaired first")
    dead_rows = replica_status(admin, "t1", status="DEAD")
    assert dead_rows and all(r["backend_id"] == dead for r in dead_rows)  # t1 still waits
    assert all(r["status"] == "OK" for r in replica_status(admin, "t1", status="OK"))
    admin.call("CancelRepairTable", db="d", table="t2")
    admin.call("SetConfig", name="tablet_sched_repair_delay_factor_second", value="1")
    assert_eventually(lambda: check_slots(admin, 1) is not None and all_repaired(admin, "t1", avoid=dead),
                      timeout_s=60, interval_s=0.2, what="t1 repaired after the delay")
    finished = [h for h in proc(admin, "/cluster_balance/history_tablets")
                if h["State"] == "FINISHED" and "clone" in h["ErrMsg"]]
    t2_ids = {r["tablet_id"] for r in replica_status(admin, "t2")}
    last_t2 = max(h["Finished"] for h in finished if h["TabletId"] in t2_ids)
    first_t1 = min(h["Finished"] for h in finished if h["TabletId"] not in t2_ids)
    assert last_t2 <= first_t1
    assert count(admin, "t1") == 2000 and count(admin, "t2") == 2000


def healthy_per_tablet(admin: Admin) -> dict[str, int]:
    rows = admin.call("ShowTablets", db="d", table="t")["tablets"]
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        out[r["tablet_id"]] += 0
        if r["state"] == "NORMAL" and not r["is_bad"] and r["lst_failed_version"] == "-1":
            out[r["tablet_id"]] += 1
    return out


def test_new_bes_get_replicas_until_balanced(cluster_factory):
    cluster = cluster_factory(3, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    create_table(admin, buckets=10)
    load(admin, 0, 5000)
    spec = cluster.spec
    spec.be_ports += free_ports(2)
    spec.bes = 5
    cluster.save_spec(spec)
    cluster.start_node("be3")
    cluster.start_node("be4")

    assert_eventually(lambda: cluster.alive_count() == 5, timeout_s=30, what="5 alive BEs")
    new = {backend_id(cluster, admin, 3), backend_id(cluster, admin, 4)}
    moved_seen = set()

    def balanced() -> bool:
        healthy = healthy_per_tablet(admin)
        assert min(healthy.values()) >= 2, f"write quorum violated during the moves: {healthy}"
        dist = {r["backend_id"]: int(r.get("replica_num", 0))
                for r in admin.call("ShowReplicaDistribution", db="d", table="t")["distribution"]}
        moved_seen.update(b for b in new if dist.get(b))
        stat = proc(admin, "/cluster_balance/cluster_load_stat")
        busy = proc(admin, "/cluster_balance/pending_tablets") + proc(admin, "/cluster_balance/running_tablets")
        assert not busy and {s["Class"] for s in stat} == {"MID"} and len(stat) == 5, (dist, stat)
        assert all(dist[b] >= 4 for b in new) and max(dist.values()) - min(dist.values()) <= 2, dist
        return True

    assert_eventually(balanced, timeout_s=90, interval_s=0.3, what="replicas balanced over 5 BEs")
    rows = replica_status(admin)
    assert len(rows) == 30 and all(r["status"] == "OK" and r["state"] == "NORMAL" for r in rows)
    assert set(Counter(r["tablet_id"] for r in rows).values()) == {3}  # no redundant replica left
    history = proc(admin, "/cluster_balance/history_tablets")
    moves = [h for h in history if h["Type"] == "BALANCE" and h["State"] == "FINISHED"]
    into_new = [h for h in moves if h["DestBe"] in new]
    # 30 replicas over 5 BEs: about 12 move to the new BEs; a few more may even out sizes, no churn
    assert len(into_new) >= 8 and len(moves) <= 2 * len(into_new), [(h["SrcBe"], h["DestBe"]) for h in moves]
    assert count(admin) == 5000
    consistent(admin)


def test_decommission_empties_a_be_and_drop_needs_it(cluster_factory):
    cluster = cluster_factory(4, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    create_table(admin)
    load(admin, 0, 3000)
    victim = backend_id(cluster, admin, 3)
    err = admin.error("DropBackend", backend_id=victim)
    assert err.code == "FailedPrecondition" and "DecommissionBackend it first" in err.message
    assert "tablets " in err.message
    for method in ("DecommissionBackend", "DropBackend"):
        err = admin.error(method, backend_id=999999)
        assert err.code == "NotFound" and "unknown backend 999999" in err.message
    res = admin.call("DecommissionBackend", backend_id=victim)
    assert int(res["tablets_left"]) > 0
    assert backends(admin)[victim]["decommissioned"] is True
    assert_eventually(lambda: backends(admin)[victim]["tablets_left_to_move"] == "0"
                      and all_repaired(admin, avoid=victim),
                      timeout_s=60, interval_s=0.3, what="the decommissioned BE to be emptied")
    relocations = [h for h in proc(admin, "/cluster_balance/history_tablets")
                   if h["Status"] == "REPLICA_RELOCATING" and h["State"] == "FINISHED"]
    assert relocations
    cluster.stop_node("be3")  # a dropped BE that keeps running would register again as a new one
    assert admin.call("DropBackend", backend_id=victim)["backend_id"] == victim
    assert victim not in backends(admin)
    assert count(admin) == 3000

    # three BEs left for replication_num 3: a decommission cannot finish; nothing is lost
    stuck = backend_id(cluster, admin, 2)
    admin.call("DecommissionBackend", backend_id=stuck)

    def waiting() -> bool:
        pending = [p for p in proc(admin, "/cluster_balance/pending_tablets")
                   if p["Status"] == "REPLICA_RELOCATING"]
        assert len(pending) == 4 and all("destination" in p["ErrMsg"] for p in pending), pending
        return True

    assert_eventually(waiting, timeout_s=20, what="relocations pending with an ErrMsg")
    assert backends(admin)[stuck]["tablets_left_to_move"] == "4"
    err = admin.error("DropBackend", backend_id=stuck)
    assert err.code == "FailedPrecondition"
    rows = replica_status(admin)
    assert len(rows) == 12 and all(r["status"] == "OK" for r in rows)
    load(admin, 3000, 500)
    assert count(admin) == 3500
    consistent(admin)
