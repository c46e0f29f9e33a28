"""Transaction states and the transaction record (pure; no I/O).

    PREPARE ──commit──> COMMITTED ──publish──> VISIBLE
       │
       └──abort / timeout──> ABORTED

Only PREPARE may time out or be aborted; VISIBLE and ABORTED are final. One non-aborted
transaction per (database, label).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from common.errors import FailedPrecondition


class TxnStatus(enum.Enum):
    PREPARE = "PREPARE"
    COMMITTED = "COMMITTED"
    VISIBLE = "VISIBLE"
    ABORTED = "ABORTED"

    @property
    def is_final(self) -> bool:
        return self in (TxnStatus.VISIBLE, TxnStatus.ABORTED)


TRANSITIONS: dict[TxnStatus, frozenset[TxnStatus]] = {
    TxnStatus.PREPARE: frozenset({TxnStatus.COMMITTED, TxnStatus.ABORTED}),
    TxnStatus.COMMITTED: frozenset({TxnStatus.VISIBLE}),
    TxnStatus.VISIBLE: frozenset(),
    TxnStatus.ABORTED: frozenset(),
}


class SourceType(enum.Enum):
    """StarRocks' LoadJobSourceType."""

    FRONTEND = "FRONTEND"
    BACKEND_STREAMING = "BACKEND_STREAMING"  # stream load
    ROUTINE_LOAD_TASK = "ROUTINE_LOAD_TASK"


@dataclass
class TransactionState:
    txn_id: int
    db_id: int
    table_id: int
    label: str
    coordinator: str
    source_type: SourceType
    timeout_ms: int
    prepare_time_ms: int
    status: TxnStatus = TxnStatus.PREPARE
    commit_time_ms: int = 0
    publish_time_ms: int = 0
    finish_time_ms: int = 0
    reason: str = ""
    # decided at commit: version per partition, replicas that took the rows per tablet
    partition_versions: dict[int, int] = field(default_factory=dict)
    tablet_backends: dict[int, list[int]] = field(default_factory=dict)
    error_replicas: list[int] = field(default_factory=list)
    attachment: dict[str, Any] = field(default_factory=dict)
    loaded_rows: int = 0
    # replicas per tablet the commit's write quorum needed; publish counts against it, so an ALTER
    # of write_quorum after the commit does not change it (0 in records of older FEs: publish then
    # takes the table's current quorum)
    quorum: int = 0
    # group commit: the labels of the loads that share this txn, each "used" by it like its own
    # label (exactly-once per member); empty for an ordinary load
    member_labels: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Every label this txn holds: its own, then its members'."""
        return [self.label, *self.member_labels]

    def transition_to(self, target: TxnStatus) -> None:
        if target not in TRANSITIONS[self.status]:
            raise FailedPrecondition(
                f"transaction {self.txn_id} (label '{self.label}') is {self.status.value}; "
                f"it cannot become {target.value}"
                + (f" (allowed: {', '.join(t.value for t in TRANSITIONS[self.status])})"
                   if TRANSITIONS[self.status] else f": {self.status.value} is final")
            )
        self.status = target

    def expired(self, now_ms: int) -> bool:
        return self.status is TxnStatus.PREPARE and now_ms > self.prepare_time_ms + self.timeout_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "txn_id": self.txn_id, "db_id": self.db_id, "table_id": self.table_id, "label": self.label,
            "coordinator": self.coordinator, "source_type": self.source_type.value,
            "timeout_ms": self.timeout_ms, "prepare_time_ms": self.prepare_time_ms,
            "status": self.status.value, "commit_time_ms": self.commit_time_ms,
            "publish_time_ms": self.publish_time_ms, "finish_time_ms": self.finish_time_ms,
            "reason": self.reason,
            "partition_versions": [[p, v] for p, v in self.partition_versions.items()],
            "tablet_backends": [[t, b] for t, b in self.tablet_backends.items()],
            "error_replicas": self.error_replicas, "attachment": self.attachment,
            "loaded_rows": self.loaded_rows, "quorum": self.quorum, "member_labels": list(self.member_labels),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransactionState:
        return cls(**{
            **d,
            "source_type": SourceType(d["source_type"]),
            "status": TxnStatus(d["status"]),
            "partition_versions": {p: v for p, v in d["partition_versions"]},
            "tablet_backends": {t: b for t, b in d["tablet_backends"]},
            "member_labels": list(d.get("member_labels", ())),  # absent in records of older FEs
        })
