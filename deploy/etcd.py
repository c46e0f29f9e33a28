"""etcd members for FE high availability: the command line of one member, and a single-member
etcd for tests.

etcd is Debian's ``etcd-server`` (3.4); ``make`` installs it with apt-get where a target needs it
(``make cluster FES=3``, ``make test``). Every member listens on loopback only; its data lives
under the directory it is given.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

from deploy.ports import free_ports

HOST = "127.0.0.1"
INSTALL_HINT = ("etcd is not installed: `make test` and `make cluster FES=3` install Debian's etcd-server "
                "(apt-get install etcd-server); or run `make etcd`")


def etcd_binary() -> str:
    """The etcd executable; RuntimeError saying how to install it when it is missing."""
    path = shutil.which("etcd")
    if path is None:
        raise RuntimeError(INSTALL_HINT)
    return path


def etcd_command(name: str, data_dir: str, client_port: int, peer_port: int, initial_cluster: str,
                 token: str) -> list[str]:
    """One member of a loopback etcd cluster. ``initial_cluster``: ``name=http://host:peer,...``."""
    return [
        etcd_binary(),
        "--name", name,
        "--data-dir", data_dir,
        "--listen-client-urls", f"http://{HOST}:{client_port}",
        "--advertise-client-urls", f"http://{HOST}:{client_port}",
        "--listen-peer-urls", f"http://{HOST}:{peer_port}",
        "--initial-advertise-peer-urls", f"http://{HOST}:{peer_port}",
        "--initial-cluster", initial_cluster,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", token,
        # a journal group is one transaction: room for it (the FE splits bigger groups anyway)
        "--max-txn-ops", "1024",
        "--max-request-bytes", str(8 * 1024 * 1024),
        # etcd keeps every revision until compacted: keep the last 10000
        "--auto-compaction-mode", "revision",
        "--auto-compaction-retention", "10000",
        # a member that rejoins asks before it calls an election, instead of deposing a raft leader
        # that is fine: fewer leaderless gaps, which the FEs' 3 s leases must ride out (measured
        # after a raft-leader kill: keepalive gaps up to 2.5 s without it, 1.8 s with it)
        "--pre-vote",
        "--logger", "zap",
        "--log-level", "warn",
    ]


def healthy(client_port: int, timeout_s: float = 0.5) -> bool:
    """etcd's /health says true (the member is in a cluster with a leader)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{client_port}/health", timeout=timeout_s) as resp:
            return b'"true"' in resp.read()
    except (urllib.error.URLError, OSError):
        return False


class SingleEtcd:
    """One etcd member on free loopback ports under ``base_dir`` (tests): started by
    :meth:`start`, stopped by pid in :meth:`stop`."""

    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir
        self.client_port, self.peer_port = free_ports(2)
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.client_port}"

    def start(self, timeout_s: float = 20.0) -> None:
        os.makedirs(self.base_dir, exist_ok=True)
        cmd = etcd_command("etcd0", os.path.join(self.base_dir, "data"), self.client_port, self.peer_port,
                           f"etcd0=http://{HOST}:{self.peer_port}", f"test-{self.client_port}")
        with open(os.path.join(self.base_dir, "log"), "ab") as log_file:
            self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; see {self.base_dir}/log")
            if healthy(self.client_port):
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"etcd on {self.endpoint} not healthy after {timeout_s:.0f} s; see {self.base_dir}/log")

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


def leader_of(client_port: int, cluster_id: str, timeout_s: float = 1.0) -> tuple[str, str] | None | bool:
    """(name, address) in the FEs' leader key, read through etcd's v3 JSON gateway; None when no
    FE leads; False when this member does not answer."""
    key = f"/tabletsim/{cluster_id}/leader".encode()
    body = json.dumps({"key": base64.b64encode(key).decode()}).encode()
    request = urllib.request.Request(f"http://{HOST}:{client_port}/v3/kv/range", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            answer = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    kvs = answer.get("kvs") or []
    if not kvs:
        return None
    value = json.loads(base64.b64decode(kvs[0]["value"]))
    return value["name"], value["address"]
