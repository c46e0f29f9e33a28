"""Static start-up configuration of the FE and BE processes.

Frozen dataclasses with units in the names, built once in each ``main()`` and passed down.
Run-time tunables of the FE live in :mod:`fe.system.dynconfig` (SetConfig / ShowConfig).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

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
    http_port: int = 0
    """HTTP port: /metrics, /api/health, /api/bootstrap, Stream Load, the web console (StarRocks:
    http_port 8030); 0 when the FE serves no HTTP."""
    query_port: int = 0
    """MySQL-protocol port: StarRocks statements from any MySQL client (StarRocks: query_port
    9030); 0 when the FE serves no SQL."""
    admin_token: str | None = None
    """When set, AdminService calls need 'authorization: Bearer <token>'; it is also root's
    password on the query port."""
    heartbeat_interval_ms: int = 1000
    """Told to BEs at registration: how often they heartbeat."""
    liveness_check_interval_ms: int = 500
    """How often the FE looks for BEs that missed heartbeat_timeout_second."""
    config_overrides: dict[str, str] = field(default_factory=dict)
    """Dynamic config values set at start-up (like fe.conf); SetConfig changes win."""
    enable_debug_points: bool = False
    """Serve DebugService and act on its rules (Doris' enable_debug_points; tests and chaos only)."""
    ha: EtcdHaConfig | None = None
    """None: one FE on its local RocksDB journal (the default). Set: the journal lives in etcd and
    the FEs elect a leader (``make cluster FES=3``)."""


@dataclass(frozen=True)
class EtcdHaConfig:
    """FE high availability on etcd (``tabletsim-fe --journal etcd``)."""

    etcd_endpoints: tuple[str, ...]
    """host:port of every etcd member's client URL."""
    fe_name: str
    """This FE's name (fe0, fe1, ...): its member key, its row in ShowFrontends."""
    frontends: tuple[tuple[str, str], ...]
    """(name, host:rpc_port) of every FE of the cluster, this one included. The leader compacts
    the journal only below the images of all of them; ShowFrontends lists each (Alive false when
    it has no member key)."""
    cluster_id: str = "tabletsim"
    """Keys live under /tabletsim/<cluster_id>/ in etcd (several clusters may share one etcd)."""
    version: str = ""
    """Shown in ShowFrontends' Version."""


@dataclass(frozen=True)
class StorageConfig:
    """The BE's storage configs, with StarRocks' names (be.conf) and defaults.

    Set at start with ``tabletsim-be --config name=value`` (``make cluster BE_CONFIG="a=1 b=2"``);
    GetBackendInfo shows them.
    """

    cumulative_compaction_check_interval_seconds: float = 1.0
    """How often the compaction scheduler looks for tablets to compact (StarRocks: 1)."""
    min_cumulative_compaction_num_singleton_deltas: int = 5
    """Rowsets above the cumulative point needed to start a cumulative compaction (StarRocks: 5)."""
    max_cumulative_compaction_num_singleton_deltas: int = 1000
    """At most this many rowsets merged by one cumulative compaction (StarRocks: 1000)."""
    min_base_compaction_num_singleton_deltas: int = 5
    """Cumulative rowsets below the cumulative point needed to start a base compaction (StarRocks: 5)."""
    base_compaction_interval_seconds_since_last_operation: float = 86400.0
    """A base compaction also starts when the last one is this old and there is anything to fold
    (StarRocks: 86400)."""
    base_cumulative_delta_ratio: float = 0.3
    """... or when the cumulative rowsets below the point hold this share of the base's bytes
    (StarRocks: 0.3)."""
    cumulative_compaction_num_threads_per_disk: int = 1
    """Cumulative compactions running at once (one storage dir per BE here; StarRocks: 1)."""
    base_compaction_num_threads_per_disk: int = 1
    """Base compactions running at once (StarRocks: 1)."""
    tablet_max_versions: int = 1000
    """A write into a replica with this many rowsets is refused: "Too many versions" (StarRocks: 1000)."""
    tablet_rowset_stale_sweep_time_sec: float = 60.0
    """Rowsets replaced by a compaction are kept this long for reads and incremental clones at
    older versions, then deleted (StarRocks: 1800)."""

    write_buffer_size: int = 16 * 1024 * 1024
    """Bytes of Kafka message values a routine load task parses, maps and writes at a time: the
    batch (up to max_batch_size) goes to its txn's pending rowsets in pieces of this size, so a
    task's memory does not grow with max_batch_size (StarRocks' memtable size: 104857600; smaller
    here, where a piece becomes Python objects several times its size). Measured on a 100 MB
    batch: 4 MiB pieces peak at 170 MiB but load a fifth slower (more WriteRows per batch);
    16 MiB pieces peak at 261 MiB and load as fast as one piece (make batch-memory, make bench)."""

    compaction_write_limit_mb_per_sec: float = 0.0
    """tabletsim's own: caps the bytes a compaction writes per second, 0 for no cap (StarRocks bounds
    compaction by threads and memory instead). A low cap keeps compaction from crowding out loads
    on a small laptop, and makes a compaction last long enough to kill a BE inside it."""

    @classmethod
    def from_overrides(cls, overrides: dict[str, str]) -> StorageConfig:
        """Build from ``name=value`` strings; an unknown name or a bad value raises ValueError
        naming it and what is allowed."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for name, raw in overrides.items():
            f = known.get(name)
            if f is None:
                raise ValueError(f"unknown BE config {name!r}; known: {', '.join(sorted(known))}")
            kind = float if f.type in ("float", float) else int
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"BE config {name}={raw!r}: expected a{'' if kind is int else ' '}"
                                 f"{'n integer' if kind is int else 'number'}") from None
            if value < 0 or (value == 0 and name not in ("base_cumulative_delta_ratio",
                                                         "tablet_rowset_stale_sweep_time_sec",
                                                         "compaction_write_limit_mb_per_sec")):
                raise ValueError(f"BE config {name}={raw!r}: must be positive")
            values[name] = value
        built = cls(**values)  # type: ignore[arg-type]
        if built.max_cumulative_compaction_num_singleton_deltas < built.min_cumulative_compaction_num_singleton_deltas:
            raise ValueError("BE config max_cumulative_compaction_num_singleton_deltas must be at least "
                             "min_cumulative_compaction_num_singleton_deltas")
        return built

    def show(self) -> dict[str, str]:
        return {f.name: f"{getattr(self, f.name):g}" if isinstance(getattr(self, f.name), float)
                else str(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class BeConfig:
    storage_dir: str
    """Where the BE's RocksDB (identity, tablets, rowsets) lives."""
    fe_address: str
    """host:port of the FE's FrontendService: the first of ``fe_addresses``."""
    cluster_token: str
    host: str = "127.0.0.1"
    """Address the gRPC server binds to and announces to the FE."""
    be_port: int = 9060
    """gRPC port of BackendService (StarRocks: be_port 9060)."""
    http_port: int = 0
    """HTTP port: /metrics, /api/health, Stream Load and _load_error_log (StarRocks: webserver_port
    8040); 0 when the BE serves no HTTP."""
    admin_token: str | None = None
    """When set, HTTP calls (a Stream Load the FE redirected here) need it as the Basic password,
    as on the FE; otherwise user root with an empty password."""
    heartbeat_interval_ms: int = 1000
    """Until the FE says otherwise at registration."""
    capacity_bytes: int | None = None
    """Pretend the storage dir's disk has this capacity (to show disk-based balancing)."""
    tablet_report_interval_s: float = 5.0
    """How often the BE reports all its tablets to the FE (StarRocks: report_tablet_interval_seconds, 60)."""
    storage: StorageConfig = field(default_factory=StorageConfig)
    """Compaction and version limits (StarRocks be.conf names)."""
    enable_debug_points: bool = False
    """Serve DebugService and act on its rules (Doris' enable_debug_points; tests and chaos only)."""
    fe_addresses: tuple[str, ...] = ()
    """host:port of every FE (``--fe a,b,c``), ``fe_address`` first; the BE follows whichever
    leads. Empty: ``(fe_address,)``, one FE."""

    def __post_init__(self) -> None:
        if not self.fe_addresses:
            object.__setattr__(self, "fe_addresses", (self.fe_address,))
        elif self.fe_addresses[0] != self.fe_address:
            raise ValueError(f"fe_addresses {self.fe_addresses} must start with fe_address {self.fe_address!r}")
