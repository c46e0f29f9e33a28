"""The FE's catalog objects: databases, tables, partitions, tablets and replicas.

Plain dataclasses (the domain never holds protobuf). Each has ``to_dict``/``from_dict`` for the
edit log and the image. Versions follow StarRocks: a new partition is at version 1; each load
commits version ``next_version`` and publishing makes it the ``visible_version``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from common import quorum
from common.coltypes import Column
from common.compaction_status import CompactionStatus


class WriteQuorum(enum.Enum):
    ONE = "ONE"
    MAJORITY = "MAJORITY"
    ALL = "ALL"

    def needed(self, replication_num: int) -> int:
        """Replicas that must succeed: ONE = 1, MAJORITY = n/2 + 1, ALL = n (common/quorum.py)."""
        return quorum.needed(self.value, replication_num)

    @classmethod
    def parse(cls, text: str) -> WriteQuorum:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"invalid write_quorum '{text}': allowed values are MAJORITY, ONE, ALL (any case)"
            ) from None


class GroupCommitMode(enum.Enum):
    """Doris' table property ``group_commit``: whether small loads into the table share a txn."""

    OFF = "off_mode"  # every load is its own txn
    SYNC = "sync_mode"  # loads within group_commit_interval_ms share a txn; answered once VISIBLE
    ASYNC = "async_mode"  # as sync_mode, but answered once the rows are in the coordinator's WAL

    @classmethod
    def parse(cls, text: str) -> GroupCommitMode:
        wanted = text.strip().lower()
        for mode in cls:
            if mode.value == wanted:
                return mode
        raise ValueError(
            f"invalid group_commit '{text}': allowed values are off_mode, sync_mode, async_mode (any case)")


DEFAULT_GROUP_COMMIT_INTERVAL_MS = 10


class ReplicaState(enum.Enum):
    NORMAL = "NORMAL"
    CLONE = "CLONE"  # being made by a clone task; not readable, not counted for quorum yet
    DECOMMISSION = "DECOMMISSION"


@dataclass
class Replica:
    replica_id: int
    backend_id: int
    version: int = 1
    last_success_version: int = 1
    last_failed_version: int = -1
    last_failed_time_ms: int = 0
    state: ReplicaState = ReplicaState.NORMAL
    bad: bool = False
    data_size: int = 0
    row_count: int = 0
    version_count: int = 1
    # in memory only (not in to_dict): the last reported compaction status, None until a report
    compaction: CompactionStatus | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "replica_id": self.replica_id, "backend_id": self.backend_id, "version": self.version,
            "last_success_version": self.last_success_version,
            "last_failed_version": self.last_failed_version,
            "last_failed_time_ms": self.last_failed_time_ms, "state": self.state.value,
            "bad": self.bad, "data_size": self.data_size, "row_count": self.row_count,
            "version_count": self.version_count,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Replica:
        return cls(**{**d, "state": ReplicaState(d["state"])})


@dataclass
class Tablet:
    tablet_id: int
    replicas: list[Replica] = field(default_factory=list)

    def replica_on(self, backend_id: int) -> Replica | None:
        return next((r for r in self.replicas if r.backend_id == backend_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {"tablet_id": self.tablet_id, "replicas": [r.to_dict() for r in self.replicas]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tablet:
        return cls(d["tablet_id"], [Replica.from_dict(r) for r in d["replicas"]])


@dataclass
class Partition:
    partition_id: int
    name: str
    lower: str | None = None  # inclusive; None = the lowest value (or unpartitioned)
    upper: str | None = None  # exclusive; None = MAXVALUE (or unpartitioned)
    visible_version: int = 1
    visible_version_time_ms: int = 0
    next_version: int = 2
    tablets: list[Tablet] = field(default_factory=list)

    @property
    def committed_version(self) -> int:
        return self.next_version - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition_id": self.partition_id, "name": self.name, "lower": self.lower,
            "upper": self.upper, "visible_version": self.visible_version,
            "visible_version_time_ms": self.visible_version_time_ms,
            "next_version": self.next_version, "tablets": [t.to_dict() for t in self.tablets],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Partition:
        return cls(**{**d, "tablets": [Tablet.from_dict(t) for t in d["tablets"]]})


@dataclass
class Table:
    table_id: int
    db_id: int
    name: str
    columns: list[Column]
    key_columns: list[str]
    distribution_columns: list[str]
    buckets: int
    replication_num: int
    write_quorum: WriteQuorum
    partition_column: str | None = None  # None: unpartitioned (one partition named like the table)
    partitions: list[Partition] = field(default_factory=list)
    create_time_ms: int = 0
    group_commit: GroupCommitMode = GroupCommitMode.OFF
    group_commit_interval_ms: int = DEFAULT_GROUP_COMMIT_INTERVAL_MS

    def column(self, name: str) -> Column | None:
        lname = name.lower()
        return next((c for c in self.columns if c.name.lower() == lname), None)

    def partition(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)

    @property
    def quorum(self) -> int:
        return self.write_quorum.needed(self.replication_num)

    def properties(self) -> dict[str, str]:
        return {"replication_num": str(self.replication_num), "write_quorum": self.write_quorum.value,
                "group_commit": self.group_commit.value,
                "group_commit_interval_ms": str(self.group_commit_interval_ms)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "table_id": self.table_id, "db_id": self.db_id, "name": self.name,
            "columns": [c.to_dict() for c in self.columns], "key_columns": self.key_columns,
            "distribution_columns": self.distribution_columns, "buckets": self.buckets,
            "replication_num": self.replication_num, "write_quorum": self.write_quorum.value,
            "partition_column": self.partition_column,
            "partitions": [p.to_dict() for p in self.partitions], "create_time_ms": self.create_time_ms,
            "group_commit": self.group_commit.value, "group_commit_interval_ms": self.group_commit_interval_ms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Table:
        return cls(**{
            **d,
            "columns": [Column.from_dict(c) for c in d["columns"]],
            "write_quorum": WriteQuorum(d["write_quorum"]),
            "partitions": [Partition.from_dict(p) for p in d["partitions"]],
            # absent in records of older FEs: off
            "group_commit": GroupCommitMode(d.get("group_commit", GroupCommitMode.OFF.value)),
        })


@dataclass
class Database:
    db_id: int
    name: str
    tables: dict[str, Table] = field(default_factory=dict)
    create_time_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "db_id": self.db_id, "name": self.name, "create_time_ms": self.create_time_ms,
            "tables": [t.to_dict() for t in self.tables.values()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Database:
        tables = [Table.from_dict(t) for t in d["tables"]]
        return cls(d["db_id"], d["name"], {t.name: t for t in tables}, d.get("create_time_ms", 0))


@dataclass(frozen=True)
class TabletLocation:
    """Where a tablet sits in the catalog (the inverted index's value)."""

    db: Database
    table: Table
    partition: Partition
    tablet: Tablet
