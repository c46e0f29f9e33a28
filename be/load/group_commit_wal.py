"""The group commit WAL: an async_mode group's rows, durable on its coordinator BE before the
members are answered (Doris writes a WAL per group and deletes it after the commit).

One entry per group, in the BE's RocksDB beside the tablets, every write synced:

    b"gcwal/" + group label   -> the entry: db, table, timeout, and per member its label and its
                                 mapped rows (marshal rows or a columnar segment), as answered
    b"gcwalc/" + group label  -> present once a commit of the group's txn may have been sent

The entry is keyed by the group's label, not its txn: every txn that ever loads the group holds
that label at the FE, so the FE's label index says whether the group is loaded (see
be/load/group_commit.py for the replay rule). Members whose label turned out to belong to
another load are dropped from the entry (:meth:`GroupCommitWal.put` rewrites it).
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass, field

from rocksdict import WriteBatch

from be.storage.store import BeStore
from common.columnar import segment_rows

WAL_PREFIX = b"gcwal/"
COMMIT_SENT_PREFIX = b"gcwalc/"
_FORMAT = 1


@dataclass(frozen=True)
class WalMember:
    label: str
    rows: bytes  # its mapped rows: marshal rows (common/rowcodec) or a columnar segment

    @property
    def row_count(self) -> int:
        return segment_rows(self.rows)


@dataclass
class WalEntry:
    """A group's rows as answered to its members, waiting for their txn to be VISIBLE."""

    label: str
    db: str
    table: str
    timeout_s: int
    members: list[WalMember]
    commit_sent: bool = False
    """A commit of a txn of this group may have been sent (the FE may have it COMMITTED)."""
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = sum(m.row_count for m in self.members)

    def without(self, labels: set[str]) -> WalEntry:
        """The entry with the members of ``labels`` dropped."""
        return WalEntry(self.label, self.db, self.table, self.timeout_s,
                        [m for m in self.members if m.label not in labels], self.commit_sent)

    def encode(self) -> bytes:
        return marshal.dumps((_FORMAT, self.label, self.db, self.table, self.timeout_s,
                              [(m.label, m.rows) for m in self.members]))

    @classmethod
    def decode(cls, raw: bytes, commit_sent: bool) -> WalEntry:
        fmt, label, db, table, timeout_s, members = marshal.loads(raw)
        if fmt != _FORMAT:
            raise ValueError(f"group commit WAL entry of unknown format {fmt}")
        return cls(label, db, table, timeout_s, [WalMember(lb, rows) for lb, rows in members], commit_sent)


class GroupCommitWal:
    """The WAL entries of one BE. Blocking (synced RocksDB writes): call from a worker thread."""

    def __init__(self, store: BeStore) -> None:
        self._store = store

    def put(self, entry: WalEntry) -> None:
        """Write (or rewrite) an entry, synced: once this returns it survives a kill of the BE."""
        self._store.db.put(WAL_PREFIX + entry.label.encode(), entry.encode(), self._store.sync)

    def mark_commit_sent(self, label: str) -> None:
        """Before a commit of the group's txn is sent (synced)."""
        self._store.db.put(COMMIT_SENT_PREFIX + label.encode(), b"1", self._store.sync)

    def delete(self, label: str) -> None:
        """The group is VISIBLE: its entry goes (synced, both keys at once)."""
        batch = WriteBatch(raw_mode=True)
        batch.delete(WAL_PREFIX + label.encode())
        batch.delete(COMMIT_SENT_PREFIX + label.encode())
        self._store.db.write(batch, self._store.sync)

    def entries(self) -> list[WalEntry]:
        """Every entry kept (groups not known to be VISIBLE yet), in label order."""
        sent: set[bytes] = set()
        for key, _ in self._store.db.items(from_key=COMMIT_SENT_PREFIX):
            if not key.startswith(COMMIT_SENT_PREFIX):
                break
            sent.add(key[len(COMMIT_SENT_PREFIX):])
        out = []
        for key, raw in self._store.db.items(from_key=WAL_PREFIX):
            if not key.startswith(WAL_PREFIX):
                break
            out.append(WalEntry.decode(raw, key[len(WAL_PREFIX):] in sent))
        return out
