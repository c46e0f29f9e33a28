"""Group commit: ``Journal.log`` applies at once on the event loop and a writer thread syncs the
records in groups; ``durable()`` waits for the sync. The loop keeps running during a slow sync."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from fe.persist import groupcommit
from fe.persist.editlog import EditLog
from fe.persist.groupcommit import JournalWriteFailed
from fe.persist.journal import Journal
from fe.system.dynconfig import DynamicConfig


class SlowSyncDb:
    """The edit log's RocksDB handle with every sync taking ``delay_s`` (a slow disk); whatever
    the journal does, a synced put, a synced batch or a WAL sync is slow."""

    def __init__(self, db, delay_s: float) -> None:
        self._db = db
        self._delay_s = delay_s
        self.syncs = 0

    def _slow(self) -> None:
        self.syncs += 1
        threading.Event().wait(self._delay_s)

    def put(self, key, value, write_opt=None):
        if write_opt is not None and write_opt.sync:
            self._slow()
        return self._db.put(key, value, write_opt)

    def write(self, batch, write_opt=None):
        if write_opt is not None and write_opt.sync:
            self._slow()
        return self._db.write(batch, write_opt)

    def flush_wal(self, sync=True):
        if sync:
            self._slow()
        return self._db.flush_wal(sync)

    def __getattr__(self, name):
        return getattr(self._db, name)


async def pause(seconds: float) -> None:
    """Give the loop to others for ``seconds`` (a timed wait on an event nobody sets)."""
    try:
        await asyncio.wait_for(asyncio.Event().wait(), seconds)
    except TimeoutError:
        pass


def config_journal(path, **kw) -> tuple[Journal, DynamicConfig]:
    journal = Journal(EditLog(str(path)), **kw)
    config = DynamicConfig(journal)
    journal.register("config", config)
    journal.replay()
    return journal, config


async def test_the_loop_runs_while_the_journal_syncs(tmp_path):
    journal, config = config_journal(tmp_path)
    slow = SlowSyncDb(journal._editlog._db, 0.25)
    journal._editlog._db = slow
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        last = time.perf_counter()
        while not stop.is_set():
            await pause(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    while len(gaps) < 3:
        await pause(0.005)
    for value in (3, 4, 5):
        config.set("tablet_sched_slot_num_per_path", str(value))
        assert config.tablet_sched_slot_num_per_path == value  # applied at once
        await pause(0.01)
    stop.set()
    await ticking
    worst = max(gaps[3:])
    assert worst < 0.1, f"the loop stood still {worst * 1000:.0f} ms during a sync"
    await journal.durable()
    assert slow.syncs >= 1
    journal.close()
    journal2, config2 = config_journal(tmp_path)
    assert config2.tablet_sched_slot_num_per_path == 5
    journal2.close()


class GatedEditLog(EditLog):
    """An edit log whose writes wait at a gate while ``closed`` (a sync that takes as long as the
    test wants); ``entered`` is set when a write reaches the gate, ``synced`` lists each written
    group's last seq with the time it was synced."""

    def __init__(self, meta_dir: str) -> None:
        super().__init__(meta_dir)
        self.closed = False
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.synced: list[tuple[int, float]] = []

    def write(self, records):
        if self.closed:
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        super().write(records)
        self.synced.append((records[-1][0], time.perf_counter()))

    def open_gate(self) -> None:
        self.closed = False
        self.gate.set()


def gated_journal(path, **kw) -> tuple[Journal, DynamicConfig, GatedEditLog]:
    editlog = GatedEditLog(str(path))
    journal = Journal(editlog, **kw)
    config = DynamicConfig(journal)
    journal.register("config", config)
    journal.replay()
    return journal, config, editlog


async def entered(editlog: GatedEditLog) -> None:
    assert await asyncio.to_thread(editlog.entered.wait, 10), "no write reached the gate"


async def still_pending(task: asyncio.Future, seconds: float = 0.2) -> bool:
    done, _ = await asyncio.wait([task], timeout=seconds)
    return not done


async def test_records_are_written_in_groups(tmp_path):
    journal, config, editlog = gated_journal(tmp_path)
    editlog.closed = True
    config.set("tablet_sched_slot_num_per_path", "2")  # this one is being synced ...
    await entered(editlog)
    for i in range(200):  # ... while these gather into the next group
        config.set("tablet_sched_slot_num_per_path", str(3 + i % 5))
    groups_before = journal.write_groups
    editlog.open_gate()
    await asyncio.wait_for(journal.durable(), 10)
    assert journal.durable_seq == journal._editlog.last_seq
    assert journal.write_groups - groups_before == 2, "201 records should take two syncs"
    assert [seq for seq, _ in editlog.synced][-2:] == [journal.durable_seq - 200, journal.durable_seq]
    live = journal.dump()
    journal.close()
    journal2, _ = config_journal(tmp_path)
    assert journal2.dump() == live
    journal2.close()


async def test_durable_waits_for_the_sync(tmp_path):
    journal, config, editlog = gated_journal(tmp_path)
    editlog.closed = True
    config.set("heartbeat_timeout_second", "9")
    assert config.heartbeat_timeout_second == 9  # applied before it is durable
    waiting = asyncio.ensure_future(journal.durable())
    await entered(editlog)
    assert await still_pending(waiting), "durable() returned before the sync"
    assert journal.durable_seq < journal._editlog.last_seq
    editlog.open_gate()
    await asyncio.wait_for(waiting, 10)
    assert journal.durable_seq == journal._editlog.last_seq
    await journal.durable()  # nothing pending: at once
    journal.close()


def test_without_a_loop_log_writes_in_place(tmp_path):
    journal, config = config_journal(tmp_path)
    config.set("heartbeat_timeout_second", "9")
    assert journal.durable_seq == journal._editlog.last_seq  # synced before log() returned
    assert journal._writer._thread is None  # no writer thread: written in this one
    journal.close()


async def test_close_writes_what_is_queued(tmp_path):
    journal, config, editlog = gated_journal(tmp_path)
    editlog.closed = True
    for i in range(300):
        config.set("tablet_sched_slot_num_per_path", str(2 + i % 7))
    await entered(editlog)
    assert journal.durable_seq < journal._editlog.last_seq
    live = journal.dump()
    closing = asyncio.ensure_future(asyncio.to_thread(journal.close))  # no durable() first
    assert await still_pending(closing), "close() returned with records still queued"
    editlog.open_gate()
    await asyncio.wait_for(closing, 10)
    journal2, _ = config_journal(tmp_path)
    assert journal2.dump() == live and journal2.replayed == 300
    journal2.close()


async def test_a_checkpoint_waits_for_the_records_it_covers(tmp_path, monkeypatch):
    journal, config, editlog = gated_journal(tmp_path, checkpoint_every=lambda: 5)
    seen: list[tuple[int, int]] = []  # (image seq, durable seq when the image was written)
    real = EditLog.checkpoint

    def checkpoint(self, state, seq):
        seen.append((seq, journal.durable_seq))
        return real(self, state, seq)

    monkeypatch.setattr(EditLog, "checkpoint", checkpoint)
    editlog.closed = True
    for i in range(5):  # the fifth record starts a checkpoint while the first is at the gate
        config.set("tablet_sched_slot_num_per_path", str(2 + i))
    await entered(editlog)
    assert journal.checkpoint_running
    assert await still_pending(asyncio.ensure_future(journal.drain()))
    assert seen == [], "the image was written before the records it folds in were durable"
    editlog.open_gate()
    await asyncio.wait_for(journal.drain(), 10)
    assert len(seen) == 1 and seen[0][1] >= seen[0][0]
    live = journal.dump()
    journal.close()
    journal2, _ = config_journal(tmp_path)
    assert journal2.dump() == live and journal2.replayed == 0
    journal2.close()


class FailingEditLog(EditLog):
    """An edit log on a disk that fails once ``failing`` is set."""

    failing = False

    def write(self, records):
        if self.failing:
            raise OSError(5, "Input/output error")
        super().write(records)


def failing_journal(path) -> tuple[Journal, DynamicConfig, FailingEditLog, list[BaseException]]:
    fatal: list[BaseException] = []
    editlog = FailingEditLog(str(path))
    journal = Journal(editlog, on_fatal=fatal.append)
    config = DynamicConfig(journal)
    journal.register("config", config)
    journal.replay()
    return journal, config, editlog, fatal


async def test_a_failed_write_is_fatal_and_nothing_is_acknowledged(tmp_path):
    journal, config, editlog, fatal = failing_journal(tmp_path)
    config.set("heartbeat_timeout_second", "7")
    await journal.durable()
    editlog.failing = True
    config.set("heartbeat_timeout_second", "9")  # applied; its write fails in the writer thread
    with pytest.raises(JournalWriteFailed, match=r"records \d+\.\.\d+ failed \(OSError"):
        await asyncio.wait_for(journal.durable(), 10)
    assert len(fatal) == 1 and isinstance(fatal[0], OSError)  # the FE's on_fatal ends the process
    with pytest.raises(JournalWriteFailed):
        config.set("heartbeat_timeout_second", "11")  # memory never moves further ahead
    assert config.heartbeat_timeout_second == 9
    with pytest.raises(JournalWriteFailed):
        await journal.durable()
    journal.close()
    journal2, config2 = config_journal(tmp_path)
    assert config2.heartbeat_timeout_second == 7
    journal2.close()


def test_a_failed_write_in_place_is_fatal_and_not_applied(tmp_path):
    journal, config, editlog, fatal = failing_journal(tmp_path)
    editlog.failing = True
    with pytest.raises(JournalWriteFailed):
        config.set("heartbeat_timeout_second", "9")
    assert config.heartbeat_timeout_second != 9
    assert len(fatal) == 1
    with pytest.raises(JournalWriteFailed):
        config.set("heartbeat_timeout_second", "8")
    journal.close()


def test_exit_process_logs_the_traceback_and_exits(monkeypatch, caplog):
    codes: list[int] = []

    class Exited(BaseException):
        pass

    def fake_exit(code):
        codes.append(code)
        raise Exited

    monkeypatch.setattr(groupcommit.os, "_exit", fake_exit)
    try:
        raise OSError(28, "No space left on device")
    except OSError as exc:
        failure = exc
    with caplog.at_level(logging.CRITICAL, logger=groupcommit.__name__), pytest.raises(Exited):
        groupcommit.exit_process(failure)
    assert codes == [groupcommit.JOURNAL_FAILURE_EXIT_CODE]
    [record] = [r for r in caplog.records if r.name == groupcommit.__name__]
    assert "edit log write failed" in record.getMessage() and "restart the FE" in record.getMessage()
    assert record.exc_info[1] is failure  # the traceback goes to the log


CRASHING_FE = """
import asyncio, sys, threading
from fe.persist.editlog import EditLog
from fe.persist.journal import Journal
from fe.system.dynconfig import DynamicConfig

class StuckEditLog(EditLog):
    stuck = False
    def write(self, records):
        if self.stuck:
            threading.Event().wait()  # this sync never ends: the FE is killed first
        super().write(records)

async def main(path):
    editlog = StuckEditLog(path)
    journal = Journal(editlog)
    config = DynamicConfig(journal)
    journal.register("config", config)
    journal.replay()
    config.set("heartbeat_timeout_second", "7")
    await journal.durable()
    print("acknowledged", config.heartbeat_timeout_second, flush=True)
    editlog.stuck = True
    config.set("heartbeat_timeout_second", "9")
    config.set("tablet_sched_slot_num_per_path", "5")
    print("applied", config.heartbeat_timeout_second, config.tablet_sched_slot_num_per_path, flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


def test_a_crash_between_apply_and_sync_loses_only_unacknowledged_records(tmp_path):
    root = pathlib.Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_FE, str(tmp_path)], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split() == ["acknowledged", "7"]
        assert proc.stdout.readline().split() == ["applied", "9", "5"]  # in memory, not on disk
    finally:
        proc.kill()  # SIGKILL
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    journal, config = config_journal(tmp_path)
    assert config.heartbeat_timeout_second == 7  # acknowledged: kept
    assert config.tablet_sched_slot_num_per_path != 5  # never acknowledged: may be lost, and was
    journal.close()
