"""Issue 2: FE and BE processes over gRPC, heartbeats, tokens, restarts, the Makefile targets."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from deploy.cluster import LocalCluster
from deploy.ports import free_ports
from tests.support import assert_eventually, grpcurl

pytestmark = pytest.mark.integration

SHOW_BACKENDS = "tabletsim.v1.AdminService/ShowBackends"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def backends(cluster: LocalCluster, headers: dict[str, str] | None = None) -> list[dict]:
    res = grpcurl(cluster.fe_address, SHOW_BACKENDS, {}, headers=headers)
    assert res.ok, res.stderr
    return res.json.get("backends", [])


def by_port(rows: list[dict]) -> dict[int, dict]:
    return {row["be_port"]: row for row in rows}


def test_grpcurl_lists_services(cluster):
    fe = grpcurl(cluster.fe_address)
    assert fe.ok, fe.stderr
    services = set(fe.stdout.split())
    assert {
        "tabletsim.v1.AdminService",
        "tabletsim.v1.FrontendService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services
    be = grpcurl(cluster.be_address(0))
    assert be.ok, be.stderr
    assert "tabletsim.v1.BackendService" in be.stdout.split()
    health = grpcurl(cluster.fe_address, "grpc.health.v1.Health/Check", {})
    assert health.json == {"status": "SERVING"}


def test_show_backends_columns(cluster):
    rows = backends(cluster)
    assert len(rows) == 3
    for row in rows:
        assert row["alive"] is True
        assert row["host"] == "127.0.0.1"
        assert int(row["backend_id"]) >= 10001
        for column in ("last_start_time", "last_heartbeat", "data_used_capacity", "avail_capacity",
                       "total_capacity", "used_pct"):
            assert row[column] not in ("", "NULL"), column
        assert row["tablet_num"] == "0"
    assert sorted(r["be_port"] for r in rows) == sorted(cluster.spec.be_port_of(i) for i in range(3))


def test_killed_be_goes_dead_and_comes_back_as_the_same_backend(cluster):
    port = cluster.spec.be_port_of(1)
    before = by_port(backends(cluster))[port]
    cluster.kill_node("be1")
    killed_at = time.monotonic()
    timeout = int(cluster.spec.fe_config["heartbeat_timeout_second"])
    dead = assert_eventually(
        lambda: (row := by_port(backends(cluster))[port])["alive"] is False and row,
        timeout_s=timeout + 2,
        what="the killed BE to show Alive=false",
    )
    assert time.monotonic() - killed_at <= timeout + 2
    assert "heartbeat_timeout_second" in dead["err_msg"]
    others = [r for p, r in by_port(backends(cluster)).items() if p != port]
    assert all(r["alive"] for r in others)

    # LastStartTime has one-second resolution: restart in a later second than the first start
    started = time.time()
    assert_eventually(lambda: time.time() >= int(started) + 1, timeout_s=3, what="the next second")
    cluster.start_node("be1")
    back = assert_eventually(
        lambda: (row := by_port(backends(cluster))[port])["alive"] is True and row,
        timeout_s=15,
        what="the restarted BE to be alive",
    )
    assert back["backend_id"] == before["backend_id"]
    assert back["last_start_time"] > before["last_start_time"]
    assert "err_msg" not in back
    assert len(backends(cluster)) == 3


def test_be_with_wrong_token_is_refused_and_never_listed(cluster, tmp_path):
    (port,) = free_ports(1)
    env = {**os.environ, "TABLETSIM_CLUSTER_TOKEN": "not-the-token"}
    proc = subprocess.run(
        [sys.executable, "-m", "be.main", "--storage-dir", str(tmp_path / "intruder"),
         "--fe", cluster.fe_address, "--be-port", str(port)],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert "UNAUTHENTICATED" in proc.stderr or "refused this BE" in proc.stderr
    assert port not in by_port(backends(cluster))
    assert len(backends(cluster)) == 3


def test_cluster_services_need_the_cluster_token(cluster):
    res = grpcurl(cluster.fe_address, "tabletsim.v1.FrontendService/Heartbeat", {"backend_id": 10001})
    assert not res.ok
    assert "Unauthenticated" in res.stderr and "cluster token" in res.stderr
    res = grpcurl(cluster.be_address(0), "tabletsim.v1.BackendService/GetBackendInfo", {})
    assert "Unauthenticated" in res.stderr
    token = {"x-cluster-token": cluster.spec.cluster_token}
    res = grpcurl(cluster.be_address(0), "tabletsim.v1.BackendService/GetBackendInfo", {}, headers=token)
    assert res.ok, res.stderr
    assert int(res.json["backend_id"]) >= 10001


def test_bad_frontend_requests_get_invalid_argument_or_register(cluster):
    token = {"x-cluster-token": cluster.spec.cluster_token}
    res = grpcurl(cluster.fe_address, "tabletsim.v1.FrontendService/RegisterBackend",
                  {"host": "127.0.0.1", "be_port": 70000, "start_time_ms": 1}, headers=token)
    assert "InvalidArgument" in res.stderr and "be_port" in res.stderr
    res = grpcurl(cluster.fe_address, "tabletsim.v1.FrontendService/Heartbeat",
                  {"host": "127.0.0.1", "be_port": 1}, headers=token)
    assert "InvalidArgument" in res.stderr and "backend_id" in res.stderr
    res = grpcurl(cluster.fe_address, "tabletsim.v1.FrontendService/Heartbeat",
                  {"backend_id": 999999, "host": "127.0.0.1", "be_port": 1, "start_time_ms": 1}, headers=token)
    assert res.ok, res.stderr
    assert res.json["need_register"] is True
    res = grpcurl(cluster.fe_address, "tabletsim.v1.AdminService/ShowBackends", {"no_such_field": 1})
    assert not res.ok and "no_such_field" in res.stderr
    assert len(backends(cluster)) == 3  # the FE is still serving


def test_admin_token_is_required_when_set(cluster_factory):
    cluster = cluster_factory(1, admin_token="s3cret")
    res = grpcurl(cluster.fe_address, SHOW_BACKENDS, {})
    assert "Unauthenticated" in res.stderr and "Bearer" in res.stderr
    res = grpcurl(cluster.fe_address, SHOW_BACKENDS, {}, headers={"authorization": "Bearer wrong"})
    assert "Unauthenticated" in res.stderr
    rows = backends(cluster, headers={"authorization": "Bearer s3cret"})
    assert len(rows) == 1 and rows[0]["alive"] is True


def test_fe_sigkill_and_restart_keeps_the_registry(cluster):
    before = {r["be_port"]: r["backend_id"] for r in backends(cluster)}
    cluster.kill_node("fe")
    cluster.start_node("fe")
    rows = assert_eventually(
        lambda: (rows := backends_or_none(cluster)) and len(rows) == 3 and all(r["alive"] for r in rows) and rows,
        timeout_s=20,
        what="every BE alive after the FE restart",
    )
    assert {r["be_port"]: r["backend_id"] for r in rows} == before


def backends_or_none(cluster: LocalCluster) -> list[dict] | None:
    res = grpcurl(cluster.fe_address, SHOW_BACKENDS, {})
    return res.json.get("backends", []) if res.ok else None


def test_make_cluster_status_stop_leaves_nothing_behind(tmp_path):
    fe, be, broker = free_ports(3)
    run_dir = tmp_path / "run"
    args = [f"RUN_DIR={run_dir}", f"FE_PORT={fe}", f"BE_PORT={be}", f"BROKER_PORT={broker}", "BES=2"]
    cluster = LocalCluster(str(run_dir))
    try:
        started = subprocess.run(["make", "-s", "cluster", *args], cwd=REPO, capture_output=True, text=True,
                                 timeout=120, stdin=subprocess.DEVNULL)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"127.0.0.1:{fe}" in started.stdout
        pids = {node: cluster.pid(node) for node in cluster.nodes()}
        assert all(pids.values()), pids
        again = subprocess.run(["make", "-s", "cluster", *args], cwd=REPO, capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL)
        assert "already running" in again.stdout
        assert {node: cluster.pid(node) for node in cluster.nodes()} == pids  # no duplicates
        status = subprocess.run(["make", "-s", "status", *args], cwd=REPO, capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        assert status.returncode == 0, status.stderr
        assert status.stdout.count("running") == 4
        assert status.stdout.count(" true ") == 2
        stopped = subprocess.run(["make", "-s", "stop", *args], cwd=REPO, capture_output=True, text=True,
                                 timeout=120, stdin=subprocess.DEVNULL)
        assert stopped.returncode == 0, stopped.stderr
        for node, pid in pids.items():
            assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid), f"{node} pid {pid} still running"
    finally:
        cluster.stop()


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
