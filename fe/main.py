"""``tabletsim-fe``: start an FE.

Default: one FE on its local RocksDB journal. ``--journal etcd`` (``make cluster FES=3``): the
journal lives in etcd and the FEs named by ``--frontend`` elect a leader (fe/ha/etcd.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from common.config import ADMIN_TOKEN_ENV, CLUSTER_TOKEN_ENV, EtcdHaConfig, FeConfig, token_from_env
from common.logsetup import report_fatal, setup_logging
from common.process import run_until_signalled
from fe.node import FrontendNode
from fe.persist.etcdclient import parse_endpoints

FE_VERSION = "tabletsim-0.1.0"

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> tuple[FeConfig, str | None]:
    """The FE's config, and its log file (None: it logs to stderr)."""
    p = argparse.ArgumentParser(prog="tabletsim-fe", description="tabletsim FE")
    p.add_argument("--meta-dir", required=True, help="edit log and image directory")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--rpc-port", type=int, default=9020, help="gRPC port (default 9020)")
    p.add_argument("--http-port", type=int, default=0,
                   help="HTTP port: /metrics, /api/health, /api/bootstrap, Stream Load, the web console "
                        "(StarRocks' http_port 8030; default 0: no HTTP)")
    p.add_argument("--query-port", type=int, default=0,
                   help="MySQL-protocol port: StarRocks statements from the mysql client, pymysql, JDBC "
                        "(StarRocks' query_port 9030; default 0: no SQL)")
    p.add_argument("--cluster-token", help=f"shared cluster token (or ${CLUSTER_TOKEN_ENV})")
    p.add_argument("--admin-token", help=f"require this bearer token on AdminService (or ${ADMIN_TOKEN_ENV})")
    p.add_argument("--heartbeat-interval-ms", type=int, default=1000)
    p.add_argument(
        "--config", action="append", default=[], metavar="NAME=VALUE",
        help="dynamic config at start-up, like fe.conf (repeatable)",
    )
    p.add_argument("--enable-debug-points", action="store_true",
                   help="serve DebugService: rules that drop, delay or fail RPCs and named code points "
                        "(cluster token required; for tests and chaos)")
    p.add_argument("--journal", choices=("local", "rocksdb", "etcd"), default="local",
                   help="where the journal lives: local (RocksDB in the meta dir, one FE; the default) or "
                        "etcd (FE high availability: a leader elected among --frontend FEs)")
    p.add_argument("--etcd-endpoints", metavar="HOST:PORT[,HOST:PORT...]",
                   help="etcd client endpoints (--journal etcd)")
    p.add_argument("--fe-name", help="this FE's name, one of the --frontend names (--journal etcd)")
    p.add_argument("--frontend", action="append", default=[], metavar="NAME=HOST:PORT",
                   help="every FE of the cluster, this one included (repeatable; --journal etcd)")
    p.add_argument("--cluster-id", default="tabletsim",
                   help="etcd key prefix /tabletsim/<cluster-id>/ (--journal etcd; default tabletsim)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-file", help="write the log to this file (default: stderr); a failure that "
                                      "stops the FE is then one line on stderr, its traceback in the file")
    args = p.parse_args(argv)
    try:
        setup_logging("fe", args.log_level, args.log_file)
    except OSError as exc:
        p.error(f"--log-file {args.log_file}: cannot open it ({exc.strerror or exc})")
    token = token_from_env(args.cluster_token, CLUSTER_TOKEN_ENV)
    if not token:
        p.error(f"a cluster token is required: --cluster-token or ${CLUSTER_TOKEN_ENV}")
    overrides = {}
    for item in args.config:
        name, sep, value = item.partition("=")
        if not sep:
            p.error(f"--config {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = value.strip()
    ha = None
    if args.journal == "etcd":
        ha = _ha_config(p, args)
    elif args.etcd_endpoints or args.fe_name or args.frontend:
        p.error("--etcd-endpoints, --fe-name and --frontend go with --journal etcd")
    config = FeConfig(
        meta_dir=args.meta_dir,
        cluster_token=token,
        host=args.host,
        rpc_port=args.rpc_port,
        http_port=args.http_port,
        query_port=args.query_port,
        admin_token=token_from_env(args.admin_token, ADMIN_TOKEN_ENV),
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        config_overrides=overrides,
        enable_debug_points=args.enable_debug_points,
        ha=ha,
    )
    return config, args.log_file


def _ha_config(p: argparse.ArgumentParser, args: argparse.Namespace) -> EtcdHaConfig:
    if not args.etcd_endpoints:
        p.error("--journal etcd needs --etcd-endpoints HOST:PORT[,HOST:PORT...]")
    try:
        endpoints = parse_endpoints(args.etcd_endpoints)
    except ValueError as exc:
        p.error(f"--etcd-endpoints: {exc}")
    frontends: list[tuple[str, str]] = []
    for item in args.frontend:
        name, sep, address = item.partition("=")
        host, colon, port = address.rpartition(":")
        if not sep or not name or not colon or not host or not port.isdigit():
            p.error(f"--frontend {item!r}: expected NAME=HOST:PORT (e.g. fe0=127.0.0.1:9020)")
        if name in dict(frontends):
            p.error(f"--frontend {name} given twice")
        frontends.append((name, address))
    if not frontends:
        p.error("--journal etcd needs every FE of the cluster: --frontend NAME=HOST:PORT (repeatable)")
    if not args.fe_name:
        p.error(f"--journal etcd needs --fe-name, one of: {', '.join(n for n, _ in frontends)}")
    own = dict(frontends).get(args.fe_name)
    if own is None:
        p.error(f"--fe-name {args.fe_name!r} is not among the --frontend names "
                f"({', '.join(n for n, _ in frontends)})")
    if own != f"{args.host}:{args.rpc_port}":
        p.error(f"--frontend {args.fe_name}={own} does not match this FE's --host/--rpc-port "
                f"{args.host}:{args.rpc_port}")
    return EtcdHaConfig(etcd_endpoints=endpoints, fe_name=args.fe_name, frontends=tuple(frontends),
                        cluster_id=args.cluster_id, version=FE_VERSION)


def main(argv: list[str] | None = None) -> int:
    config, log_file = parse_args(argv)
    try:
        asyncio.run(run_until_signalled(lambda: FrontendNode(config)))
    except Exception as exc:  # noqa: BLE001 - one line on stderr, the traceback in the log
        report_fatal(log, f"FE failed: {type(exc).__name__}: {exc}", exc, log_file)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
