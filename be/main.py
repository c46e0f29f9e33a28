"""``tabletsim-be``: start a BE."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from be.node import BackendNode
from common.config import ADMIN_TOKEN_ENV, CLUSTER_TOKEN_ENV, BeConfig, StorageConfig, token_from_env
from common.errors import Unauthenticated
from common.logsetup import report_fatal, setup_logging
from common.process import run_until_signalled

log = logging.getLogger(__name__)


def parse_fe_addresses(values: list[str]) -> tuple[str, ...]:
    """``--fe`` values (each one address or a comma-separated list) as one list, in order, without
    repeats; ValueError naming a value that is not HOST:PORT."""
    addresses: list[str] = []
    for value in values:
        for item in value.split(","):
            address = item.strip()
            if not address:
                continue
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"--fe {value!r}: {address!r} is not HOST:PORT (a TCP port in 1..65535)")
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise ValueError("--fe: give at least one FE as HOST:PORT")
    return tuple(addresses)


def parse_args(argv: list[str] | None = None) -> tuple[BeConfig, str | None]:
    """The BE's config, and its log file (None: it logs to stderr)."""
    p = argparse.ArgumentParser(prog="tabletsim-be", description="tabletsim BE")
    p.add_argument("--storage-dir", required=True, help="RocksDB storage directory")
    p.add_argument("--fe", required=True, action="append", metavar="HOST:PORT[,HOST:PORT...]",
                   help="the FEs' gRPC addresses: one, a comma-separated list or the flag repeated; "
                        "the BE follows whichever FE leads")
    p.add_argument("--host", default="127.0.0.1", help="bind and announced address (default 127.0.0.1)")
    p.add_argument("--be-port", type=int, default=9060, help="gRPC port (default 9060)")
    p.add_argument("--http-port", type=int, default=0, help="HTTP port: /metrics, /api/health, Stream Load, _load_error_log (StarRocks' "
                        "webserver_port 8040; default 0: no HTTP)")
    p.add_argument("--admin-token", help=f"the password HTTP calls need, as on the FE (or ${ADMIN_TOKEN_ENV})")
    p.add_argument("--cluster-token", help=f"shared cluster token (or ${CLUSTER_TOKEN_ENV})")
    p.add_argument("--heartbeat-interval-ms", type=int, default=1000)
    p.add_argument("--capacity-bytes", type=int, default=None,
                   help="pretend the disk has this capacity (for disk-based balancing)")
    p.add_argument("--report-interval-s", type=float, default=5.0,
                   help="how often the BE reports all its tablets to the FE (default 5 s)")
    p.add_argument("--config", action="append", default=[], metavar="NAME=VALUE",
                   help="a storage config with its StarRocks name (like be.conf), e.g. "
                        "tablet_max_versions=1000; repeatable")
    p.add_argument("--enable-debug-points", action="store_true",
                   help="serve DebugService: rules that drop, delay or fail RPCs and named code points "
                        "(cluster token required; for tests and chaos)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-file", help="write the log to this file (default: stderr); a failure that "
                                      "stops the BE is then one line on stderr, its traceback in the file")
    args = p.parse_args(argv)
    try:
        setup_logging(f"be:{args.be_port}", args.log_level, args.log_file)
    except OSError as exc:
        p.error(f"--log-file {args.log_file}: cannot open it ({exc.strerror or exc})")
    token = token_from_env(args.cluster_token, CLUSTER_TOKEN_ENV)
    if not token:
        p.error(f"a cluster token is required: --cluster-token or ${CLUSTER_TOKEN_ENV}")
    try:
        fe_addresses = parse_fe_addresses(args.fe)
    except ValueError as exc:
        p.error(str(exc))
    overrides: dict[str, str] = {}
    for item in args.config:
        name, sep, value = item.partition("=")
        if not sep:
            p.error(f"--config {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = value.strip()
    try:
        storage = StorageConfig.from_overrides(overrides)
    except ValueError as exc:
        p.error(str(exc))
    config = BeConfig(
        storage_dir=args.storage_dir,
        fe_address=fe_addresses[0],
        fe_addresses=fe_addresses,
        cluster_token=token,
        host=args.host,
        be_port=args.be_port,
        http_port=args.http_port,
        admin_token=token_from_env(args.admin_token, ADMIN_TOKEN_ENV),
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        capacity_bytes=args.capacity_bytes,
        tablet_report_interval_s=args.report_interval_s,
        storage=storage,
        enable_debug_points=args.enable_debug_points,
    )
    return config, args.log_file


def main(argv: list[str] | None = None) -> int:
    config, log_file = parse_args(argv)
    try:
        asyncio.run(run_until_signalled(lambda: BackendNode(config)))
    except Unauthenticated as exc:
        report_fatal(log, f"BE not admitted: {exc}", exc, log_file)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line on stderr, the traceback in the log
        report_fatal(log, f"BE failed: {type(exc).__name__}: {exc}", exc, log_file)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
