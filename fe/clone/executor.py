"""The clone executor: runs the scheduler's :class:`CloneTask` s on real BEs and applies results.

The scheduler decides, this module does, and the catalog changes only here (through the
journal), as StarRocks' finishCloneTask does:

- FULL clone to a BE without the tablet: the destination first gets an empty replica
  (CreateTablets, after dropping any stale copy it kept), then the FE journals the replica in
  state CLONE - loads leave it out (only NORMAL replicas take writes and count, common/quorum.py)
  and each commit it misses marks it failed at that version - then CloneTablet makes the
  destination pull the rowsets from the source (a ReadRowsets stream). On success the replica
  becomes NORMAL at the cloned version; a version committed meanwhile that it missed leaves it
  VERSION_INCOMPLETE and an incremental clone follows. A CLONE replica is never read, written
  nor counted for quorum.
- FULL or INCREMENTAL clone of an existing (lagging) replica: in place; the BE copies only the
  missing versions, or all when it cannot (it says so and the history shows it). An INCREMENTAL
  request also names the other healthy replicas at the wanted version (``alt_src_addresses``):
  when compaction removed the missing versions' rowsets from the chosen source, the BE tries
  them before it falls back to FULL.
- DROP: the replica leaves the catalog first (no new read or write picks it), then after a short
  grace - reads already planned on it finish - the BE drops its data. A drop that would leave
  fewer than replication_num healthy replicas is refused here too, whatever the scheduler saw.

A task that fails or times out (the scheduler cancels it with :meth:`abort`) removes the CLONE
replica it created. Every task runs in its own asyncio task, kept in ``_inflight`` and cancelled
by :meth:`close`; the result goes to ``on_finished`` (never for an aborted task).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import orjson

from common.gen.tabletsim.v1 import backend_pb2
from fe.catalog.catalog import Catalog
from fe.catalog.health import replica_is_healthy
from fe.catalog.model import Replica, ReplicaState, TabletLocation
from fe.clone.sched_ctx import CloneKind, CloneTask
from fe.persist.ids import IdAllocator
from fe.system.backends import Backend, BackendRegistry
from fe.system.be_client import BackendClients

log = logging.getLogger(__name__)

RPC_TIMEOUT_S = 10.0


class CloneFailed(Exception):
    """A task that cannot be done; the message says why."""


@dataclass
class TaskResult:
    ok: bool
    err: str = ""
    detail: str = ""
    """What was done, for the history's ErrMsg column (kind, versions and bytes copied)."""
    copied_bytes: int = 0
    copy_ms: int = 0
    """How long the destination took to copy (its CloneTablet call, as the FE timed it)."""


@dataclass
class _Running:
    task: CloneTask
    job: asyncio.Task | None = None
    created_replica_id: int | None = None


FinishedFn = Callable[[CloneTask, TaskResult], None]


class CloneExecutor:
    def __init__(self, catalog: Catalog, backends: BackendRegistry, clients: BackendClients,
                 ids: IdAllocator, on_finished: FinishedFn, drop_grace_s: float = 1.0) -> None:
        self._catalog = catalog
        self._backends = backends
        self._clients = clients
        self._ids = ids
        self._on_finished = on_finished
        self._drop_grace_s = drop_grace_s
        self._inflight: dict[int, _Running] = {}
        self._background: set[asyncio.Task] = set()

    # ---- queries ------------------------------------------------------------------------------
    def busy(self, backend_id: int, tablet_id: int) -> bool:
        """A task of this tablet runs with ``backend_id`` as its source or destination."""
        run = self._inflight.get(tablet_id)
        return run is not None and backend_id in (run.task.src_backend_id, run.task.dest_backend_id)

    def running_on(self, tablet_id: int) -> CloneTask | None:
        run = self._inflight.get(tablet_id)
        return run.task if run else None

    # ---- life cycle ---------------------------------------------------------------------------
    def submit(self, task: CloneTask) -> None:
        if task.tablet_id in self._inflight:
            raise RuntimeError(f"tablet {task.tablet_id} already has task "
                               f"{self._inflight[task.tablet_id].task.task_id} running")
        run = _Running(task)
        self._inflight[task.tablet_id] = run
        run.job = asyncio.create_task(self._run(run), name=f"clone-{task.task_id}")

    def abort(self, tablet_id: int) -> None:
        """The scheduler gave up on the task (timeout): cancel it; it cleans up after itself."""
        run = self._inflight.get(tablet_id)
        if run is not None and run.job is not None:
            run.job.cancel()

    async def close(self) -> None:
        jobs = [r.job for r in self._inflight.values() if r.job is not None] + list(self._background)
        for job in jobs:
            job.cancel()
        for job in jobs:
            try:
                await job
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass

    # ---- one task -----------------------------------------------------------------------------
    async def _run(self, run: _Running) -> None:
        task = run.task
        try:
            if task.kind is CloneKind.DROP:
                result = self._drop(task)
            else:
                result = await self._clone(run)
        except asyncio.CancelledError:
            self._undo(run, "cancelled (timed out)")
            self._inflight.pop(task.tablet_id, None)
            raise
        except CloneFailed as exc:
            result = TaskResult(False, str(exc))
        except grpc.aio.AioRpcError as exc:
            result = TaskResult(False, f"{exc.code().name}: {exc.details()}")
        except Exception as exc:  # noqa: BLE001 - reported to the scheduler and logged
            log.exception("task %d of tablet %d failed unexpectedly", task.task_id, task.tablet_id)
            result = TaskResult(False, f"internal error: {type(exc).__name__}: {exc}")
        if not result.ok:
            self._undo(run, result.err)
        self._inflight.pop(task.tablet_id, None)
        log.info("task %d (%s %s) of tablet %d: %s", task.task_id, task.type.value, task.kind.value,
                 task.tablet_id, result.detail if result.ok else f"failed: {result.err}")
        self._on_finished(task, result)

    def _alive(self, backend_id: int | None, role: str):
        be = self._backends.get(backend_id) if backend_id is not None else None
        if be is None:
            raise CloneFailed(f"{role} backend {backend_id} was dropped")
        if not be.alive:
            raise CloneFailed(f"{role} backend {backend_id} is not alive")
        return be

    async def _clone(self, run: _Running) -> TaskResult:
        task = run.task
        loc = self._catalog.find_location(task.tablet_id)
        if loc is None:
            raise CloneFailed(f"tablet {task.tablet_id} was dropped")
        src = self._alive(task.src_backend_id, "source")
        self._alive(task.dest_backend_id, "destination")
        dest_stub = self._clients.stub(task.dest_backend_id)
        meta = backend_pb2.TabletMeta(
            tablet_id=task.tablet_id, db_id=loc.table.db_id, table_id=loc.table.table_id,
            partition_id=loc.partition.partition_id, version=1,
            schema_json=orjson.dumps([c.to_dict() for c in loc.table.columns]).decode())
        replica = loc.tablet.replica_on(task.dest_backend_id)
        if replica is None:
            if task.kind is CloneKind.INCREMENTAL:
                raise CloneFailed(f"backend {task.dest_backend_id} holds no replica to complete")
            meta.replica_id = self._ids.next()
            await dest_stub.DropTablets(backend_pb2.DropTabletsRequest(tablet_ids=[task.tablet_id]),
                                        timeout=RPC_TIMEOUT_S)
            await dest_stub.CreateTablets(backend_pb2.CreateTabletsRequest(tablets=[meta]),
                                          timeout=RPC_TIMEOUT_S)
            loc = self._catalog.find_location(task.tablet_id)
            if loc is None:
                raise CloneFailed(f"tablet {task.tablet_id} was dropped")
            if loc.tablet.replica_on(task.dest_backend_id) is not None:
                raise CloneFailed(f"backend {task.dest_backend_id} got a replica meanwhile")
            self._catalog.add_replica(task.tablet_id, Replica(
                meta.replica_id, task.dest_backend_id, version=1, last_success_version=-1,
                state=ReplicaState.CLONE))
            run.created_replica_id = meta.replica_id
        else:
            meta.replica_id = replica.replica_id
        incremental = task.kind is CloneKind.INCREMENTAL
        alternatives = self._alt_sources(loc, task) if incremental else []
        copy_started = time.monotonic()
        resp = await dest_stub.CloneTablet(backend_pb2.CloneTabletRequest(
            meta=meta, src_address=src.address, src_backend_id=src.backend_id,
            version=task.version_to, incremental=incremental, task_id=task.task_id,
            alt_src_addresses=alternatives),
            timeout=task.timeout_s)
        copy_ms = int((time.monotonic() - copy_started) * 1000)
        loc = self._catalog.find_location(task.tablet_id)
        r = loc.tablet.replica_on(task.dest_backend_id) if loc else None
        if r is None or r.replica_id != meta.replica_id:
            raise CloneFailed(f"the replica on backend {task.dest_backend_id} was dropped during the clone")
        version = max(r.version, resp.version)
        update = {"tablet_id": task.tablet_id, "backend_id": task.dest_backend_id,
                  "state": ReplicaState.NORMAL.value, "version": version,
                  "last_success_version": version, "bad": False}
        if resp.version >= r.version:
            # the version count is not in the answer (compaction makes it differ from the
            # version): the destination's next tablet report syncs it
            update.update(row_count=resp.row_count, data_size=resp.data_size)
        if r.last_failed_version >= 0 and r.last_failed_version <= version:
            update["last_failed_version"] = -1
        self._catalog.update_replicas([update])
        run.created_replica_id = None  # it is a real replica now
        versions = list(resp.copied_versions)
        kind = "INCREMENTAL" if incremental and resp.incremental else "FULL"
        copied = (f"versions {versions[0]}-{versions[-1]} ({len(versions)} rowsets, "
                  f"{resp.copied_bytes} bytes)" if versions else "nothing (already caught up)")
        detail = (f"{kind} clone from {self._source_text(src, resp.source_address)} to backend "
                  f"{task.dest_backend_id} copied {copied}; replica at version {version}")
        if incremental and not resp.incremental:
            why = resp.fallback_reason or "the source lacked versions"
            detail += f"; the incremental clone fell back to FULL ({why})"
        return TaskResult(True, detail=detail, copied_bytes=resp.copied_bytes, copy_ms=copy_ms)

    def _alt_sources(self, loc: TabletLocation, task: CloneTask) -> list[str]:
        """Addresses of the tablet's other healthy replicas at the wanted version or above (not the
        source, not the destination), highest version first: where an INCREMENTAL clone may copy
        the missing versions from when the chosen source compacted them away."""
        found = []
        for r in loc.tablet.replicas:
            if r.backend_id in (task.src_backend_id, task.dest_backend_id) or r.version < task.version_to:
                continue
            be = self._backends.get(r.backend_id)
            if be is not None and replica_is_healthy(r, loc.partition, self._backends):
                found.append((-r.version, r.backend_id, be.address))
        return [address for _, _, address in sorted(found)]

    def _source_text(self, src: Backend, source_address: str) -> str:
        """'backend N', or which replica the BE really copied from when it was another one."""
        if not source_address or source_address == src.address:
            return f"backend {src.backend_id}"
        other = next((b for b in self._backends.all() if b.address == source_address), None)
        named = f"backend {other.backend_id} ({source_address})" if other else source_address
        return f"{named} instead of backend {src.backend_id}"

    def _drop(self, task: CloneTask) -> TaskResult:
        loc = self._catalog.find_location(task.tablet_id)
        if loc is None:
            return TaskResult(True, detail=f"tablet {task.tablet_id} was dropped already")
        victim = loc.tablet.replica_on(task.dest_backend_id)
        if victim is None:
            return TaskResult(True, detail=f"no replica on backend {task.dest_backend_id} any more")
        v = loc.partition.visible_version

        def healthy(r: Replica) -> bool:
            be = self._backends.get(r.backend_id)
            return (be is not None and be.alive and not be.decommissioned and not r.bad
                    and r.state is ReplicaState.NORMAL and r.version >= v
                    and (r.last_failed_version < 0 or r.last_failed_version <= r.version))

        others = sum(1 for r in loc.tablet.replicas if r is not victim and healthy(r))
        if healthy(victim) and others < loc.table.replication_num:
            raise CloneFailed(f"dropping the healthy replica on backend {task.dest_backend_id} would "
                              f"leave {others} healthy replicas, fewer than replication_num "
                              f"{loc.table.replication_num}; kept")
        self._catalog.drop_replica(task.tablet_id, task.dest_backend_id)
        self._drop_on_backend(task.dest_backend_id, task.tablet_id, victim.replica_id, self._drop_grace_s)
        return TaskResult(True, detail=f"dropped replica {victim.replica_id} on backend "
                                       f"{task.dest_backend_id} ({len(loc.tablet.replicas)} left)")

    def _undo(self, run: _Running, why: str) -> None:
        """Remove the CLONE replica a failed or cancelled task created (catalog, then BE)."""
        replica_id, task = run.created_replica_id, run.task
        run.created_replica_id = None
        if replica_id is None:
            return
        loc = self._catalog.find_location(task.tablet_id)
        r = loc.tablet.replica_on(task.dest_backend_id) if loc else None
        if r is not None and r.replica_id == replica_id and r.state is ReplicaState.CLONE:
            log.info("tablet %d: removing the CLONE replica on backend %d (%s)", task.tablet_id,
                     task.dest_backend_id, why)
            self._catalog.drop_replica(task.tablet_id, task.dest_backend_id)
            self._drop_on_backend(task.dest_backend_id, task.tablet_id, replica_id, 0.0)

    def drop_stale_clone_replicas(self) -> int:
        """CLONE replicas no task is working on (an FE restart mid-clone): remove them."""
        stale = []
        for loc in self._catalog.tablet_locations():
            for r in loc.tablet.replicas:
                if r.state is ReplicaState.CLONE and not self.busy(r.backend_id, loc.tablet.tablet_id):
                    stale.append((loc.tablet.tablet_id, r.backend_id, r.replica_id))
        for tablet_id, backend_id, replica_id in stale:
            log.info("tablet %d: removing a CLONE replica on backend %d that no task works on",
                     tablet_id, backend_id)
            self._catalog.drop_replica(tablet_id, backend_id)
            self._drop_on_backend(backend_id, tablet_id, replica_id, 0.0)
        return len(stale)

    def _drop_on_backend(self, backend_id: int, tablet_id: int, replica_id: int, delay_s: float) -> None:
        """Best effort: a BE that misses it reports the tablet as an orphan, dropped then.

        The drop names the replica: if a clone has put a new replica of the tablet back on that
        BE meanwhile (within the grace), the BE keeps the new one.
        """
        async def drop() -> None:
            try:
                if delay_s:
                    await asyncio.sleep(delay_s)
                be = self._backends.get(backend_id)
                if be is None or not be.alive:
                    return
                await self._clients.stub(backend_id).DropTablets(
                    backend_pb2.DropTabletsRequest(tablet_ids=[tablet_id], replica_ids=[replica_id]),
                    timeout=RPC_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                log.info("backend %d did not drop tablet %d (%s); its report will", backend_id,
                         tablet_id, exc.code().name)
            finally:
                self._background.discard(asyncio.current_task())

        self._background.add(asyncio.ensure_future(drop()))
