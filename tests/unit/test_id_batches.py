"""Ids are journaled in batches before they are handed out (StarRocks' IdGenerator): an id the FE
gave away - to a BE in a create-replica or clone task - is never handed out again after the FE
dies, even when the record that uses it was never written."""

from __future__ import annotations

import pytest

from fe.catalog.catalog import Catalog
from fe.persist.editlog import EditLog
from fe.persist.ids import FIRST_ID, ID_BATCH_SIZE, IdAllocator
from fe.persist.journal import Journal
from fe.system.backends import BackendRegistry
from fe.system.dynconfig import DynamicConfig
from tests.unit.test_catalog import FakeClients, FakeStub, alive_backends, spec


class Crash(Exception):
    """The FE died right before it wrote this record."""


class CrashingEditLog(EditLog):
    """An edit log whose record ``crash_on`` fails as a SIGKILL would: nothing is written (the
    journal prepares every record, on the event loop, before it applies or writes it)."""

    def __init__(self, meta_dir: str, crash_on: str | None = None) -> None:
        super().__init__(meta_dir)
        self.crash_on = crash_on

    def prepare(self, op, data):
        if op == self.crash_on:
            raise Crash(op)
        return super().prepare(op, data)


class Fe:
    """The journaled domains that hand out ids, wired as fe/node.py wires them, on fake BEs."""

    def __init__(self, path, crash_on: str | None = None, bes: int = 3,
                 batch_size: int = ID_BATCH_SIZE) -> None:
        self.editlog = CrashingEditLog(str(path), crash_on)
        self.journal = Journal(self.editlog)
        self.ids = IdAllocator(self.journal, batch_size)
        self.config = DynamicConfig(self.journal)
        self.backends = BackendRegistry(self.journal, self.ids, heartbeat_timeout_s=lambda: 5,
                                        wall_ms=lambda: 1, mono=lambda: 1.0)
        self.clients = RecordingClients()
        self.catalog = Catalog(self.journal, self.ids, self.backends, self.clients, self.config,
                               wall_ms=lambda: 1_700_000_000_000)
        for name, dom in (("ids", self.ids), ("config", self.config), ("backend", self.backends),
                          ("catalog", self.catalog)):
            self.journal.register(name, dom)
        self.journal.replay()
        alive_backends(self.backends, bes)

    def ids_sent_to_backends(self) -> set[int]:
        """Every id a fake BE was given in a CreateTablets request."""
        return {i for stub in self.clients.stubs.values() for m in stub.created
                for i in (m.tablet_id, m.replica_id, m.table_id, m.partition_id)}


class RecordingStub(FakeStub):
    """A fake BE that remembers the replica metas it was sent (ids included)."""

    def __init__(self, be_id: int, fail: set[int]) -> None:
        super().__init__(be_id, fail)
        self.created = []

    async def CreateTablets(self, request, timeout=None):
        await super().CreateTablets(request, timeout)
        self.created.extend(request.tablets)


class RecordingClients(FakeClients):
    def stub(self, be_id: int) -> RecordingStub:
        return self.stubs.setdefault(be_id, RecordingStub(be_id, self.fail))


def ops_in(path) -> list[str]:
    log = EditLog(str(path))
    try:
        return [r.op for r in log.load().tail]
    finally:
        log.close()


async def test_ids_of_a_create_table_cut_short_by_a_crash_are_not_reused(tmp_path):
    fe = Fe(tmp_path, crash_on="catalog.create_table")
    fe.catalog.create_database("d")
    with pytest.raises(Crash):
        await fe.catalog.create_table("d", spec("t", buckets=4))
    given = fe.ids_sent_to_backends()
    assert len(given) == 1 + 1 + 4 + 12  # table, partition, tablets, replicas: all on BEs now
    fe.journal.close()

    fe2 = Fe(tmp_path)
    table = await fe2.catalog.create_table("d", spec("t", buckets=4))
    fresh = fe2.ids_sent_to_backends()
    assert table.table_id in fresh
    assert not fresh & given, f"ids handed out again after the crash: {sorted(fresh & given)}"
    assert min(fresh) > max(given)


def test_ids_handed_out_without_any_record_are_not_reused(tmp_path):
    """A clone gives its new replica an id and sends it to the destination BE before the
    add_replica record: a crash in between must not free that id."""
    fe = Fe(tmp_path)
    handed = [fe.ids.next() for _ in range(5)]
    fe.journal.close()

    fe2 = Fe(tmp_path)
    after = [fe2.ids.next() for _ in range(5)]
    assert min(after) > max(handed)


def test_a_checkpoint_inside_a_batch_keeps_its_ids_reserved(tmp_path):
    fe = Fe(tmp_path)
    handed = [fe.ids.next() for _ in range(3)]
    fe.journal.checkpoint()  # the image is written while the batch is still in use
    handed += [fe.ids.next() for _ in range(3)]
    fe.journal.close()
    assert ops_in(tmp_path) == []  # no record after the image: the image alone must reserve them

    fe2 = Fe(tmp_path)
    assert fe2.ids.next() > max(handed)


def test_one_batch_record_per_batch_and_replay_reaches_the_same_state(tmp_path):
    fe = Fe(tmp_path, bes=0, batch_size=10)
    handed = [fe.ids.next() for _ in range(25)]
    assert handed == list(range(FIRST_ID, FIRST_ID + 25))
    live = fe.journal.dump()
    fe.journal.close()
    assert ops_in(tmp_path) == ["ids.batch"] * 3

    fe2 = Fe(tmp_path, bes=0, batch_size=10)
    assert fe2.journal.dump() == live
    assert fe2.ids.next() >= FIRST_ID + 30  # the whole last batch stays reserved


def test_old_journals_without_batch_records_still_replay(tmp_path):
    """An edit log and an image written before id batches existed: their ids stay taken."""
    old = EditLog(str(tmp_path))
    old.load()
    old.append("catalog.create_db", {"db_id": 10007, "name": "d", "time_ms": 1})
    seq = old.append("backend.add", {"backend_id": 10009, "host": "127.0.0.1", "be_port": 9060,
                                     "http_port": 0, "last_start_time_ms": 1})
    old.close()
    assert seq == 2
    fe = Fe(tmp_path, bes=0)
    assert fe.catalog.db("d").db_id == 10007
    assert fe.backends.get(10009) is not None
    assert fe.ids.next() == 10010
    fe.journal.close()

    old = EditLog(str(tmp_path / "image"))
    old.load()
    old.checkpoint({"ids": {"next": 10050}, "config": {"values": {}}, "backend": {"backends": []},
                    "catalog": {"databases": []}}, 0)
    old.close()
    fe = Fe(tmp_path / "image", bes=0)
    assert fe.ids.next() == 10050
