"""Static start-up configuration of the FE and BE processes.

Frozen dataclasses with units in the names, built once in each ``main()`` and passed down.
Run-time tunables of the FE live in :mod:`fe.system.dynconfig` (SetConfig / ShowConfig).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

CLUSTER_TOKEN_ENV = "TABLETSIM_CLUSTER_TOKEN"
ADMIN_TOKEN_ENV = "TABLETSIM_ADMIN_TOKEN"


def token_from_env(explicit: str | None, env: str) -> str | None:
    return explicit if explicit else os.environ.get(env) or None


@dataclass(frozen=True)
class FeConfig:
    meta_dir: str
    """Where the edit log and image live (RocksDB)."""
    cluster_token: str
    """Shared secret every BE presents on FrontendService/BackendService calls."""
    host: str = "127.0.0.1"
    """Address the gRPC server binds to."""
    rpc_port: int = 9020
    """gRPC port of AdminService and FrontendService (StarRocks: rpc_port 9020)."""
    admin_token: str | None = None
    """When set, AdminService calls need 'authorization: Bearer <token>'."""
    heartbeat_interval_ms: int = 1000
    """Told to BEs at registration: how often they heartbeat."""
    liveness_check_interval_ms: int = 500
    """How often the FE looks for BEs that missed heartbeat_timeout_second."""
    config_overrides: dict[str, str] = field(default_factory=dict)
    """Dynamic config values set at start-up (like fe.conf); SetConfig changes win."""


@dataclass(frozen=True)
class BeConfig:
    storage_dir: str
    """Where the BE's RocksDB (identity, tablets, rowsets) lives."""
    fe_address: str
    """host:port of the FE's FrontendService."""
    cluster_token: str
    host: str = "127.0.0.1"
    """Address the gRPC server binds to and announces to the FE."""
    be_port: int = 9060
    """gRPC port of BackendService (StarRocks: be_port 9060)."""
    http_port: int = 0
    """Announced HTTP port; 0 when the BE serves no HTTP."""
    heartbeat_interval_ms: int = 1000
    """Until the FE says otherwise at registration."""
    capacity_bytes: int | None = None
    """Pretend the storage dir's disk has this capacity (to show disk-based balancing)."""
    tablet_report_interval_s: float = 5.0
    """How often the BE reports all its tablets to the FE (StarRocks: report_tablet_interval_seconds, 60)."""
