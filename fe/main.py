"""``tabletsim-fe``: start the leader FE."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from common.config import ADMIN_TOKEN_ENV, CLUSTER_TOKEN_ENV, FeConfig, token_from_env
from common.logsetup import report_fatal, setup_logging
from common.process import run_until_signalled
from fe.node import FrontendNode

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> tuple[FeConfig, str | None]:
    """The FE's config, and its log file (None: it logs to stderr)."""
    p = argparse.ArgumentParser(prog="tabletsim-fe", description="tabletsim leader FE")
    p.add_argument("--meta-dir", required=True, help="edit log and image directory")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--rpc-port", type=int, default=9020, help="gRPC port (default 9020)")
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
    config = FeConfig(
        meta_dir=args.meta_dir,
        cluster_token=token,
        host=args.host,
        rpc_port=args.rpc_port,
        admin_token=token_from_env(args.admin_token, ADMIN_TOKEN_ENV),
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        config_overrides=overrides,
        enable_debug_points=args.enable_debug_points,
    )
    return config, args.log_file


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
