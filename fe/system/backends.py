"""The backend registry: who the BEs are, whether they are alive, what they hold.

Persistent facts (id, host, ports, start time, decommission) go through the journal. So does
liveness, but only its *transitions*, as the cheap half of StarRocks' heartbeat journaling
(HeartbeatMgr logs an OP_HEARTBEAT HbPackage every round; followers replay it through
``handleHbResponse(isReplay=true)``): when the leader sees a BE become alive (its first heartbeat,
or the first after it was dead) or marks it dead (no heartbeat for heartbeat_timeout_second), it
logs one ``backend.liveness`` record: alive, the wall time of the BE's last heartbeat, err_msg and
its disk stats. A steady heartbeat round journals nothing; a BE that dies and comes back costs two
records (the journal is etcd with more than one FE). Everything else a heartbeat brings (the
monotonic time of the last heartbeat, a fresher LastHeartbeat, disk and tablet count) stays soft
state on the leader. Disk stats are not re-journaled between transitions: the leader's balancer
uses its own heartbeats, and a follower only shows them (ShowBackends' capacity columns), as of the
BE's last transition.

Who applies what (one apply, :meth:`BackendRegistry._apply_liveness`, live and replayed):

- **Leader.** Heartbeats (refused on a follower) and the liveness check (a leader daemon) log the
  transitions; the apply sets the state and tells the listeners ('alive', 'dead'), which drive
  leader work (clone scheduling, routine load task renewal).
- **Follower.** Applies the leader's records from the journal tail and shows the leader's view
  (ShowBackends; Query plans its reads on BEs alive in it). The listeners are not told (the
  journal is replaying: no leader work starts on a follower), and :meth:`check_liveness` does
  nothing: a follower hears no heartbeat, marks nothing dead and writes no record.
- **A follower promoted to leader** (:meth:`lead` with ``inherit=True``): its journaled view is
  its predecessor's, current to within the leader lease. It keeps every BE alive in it and gives
  each heartbeat_timeout_second from the promotion to heartbeat to it before it marks it dead, so
  there is no moment where every BE looks dead and routine load, publish and repair go on at once.
  A cold start of every FE (the journal in etcd kept) inherits the last leader's view the same
  way: a BE that died meanwhile looks alive for at most heartbeat_timeout_second, the window a BE
  that dies under a running leader has anyway.
- **The one FE on its local journal** leads from its own start (:meth:`lead` with
  ``inherit=False``): its journaled view is its previous run's, as old as its downtime, so a
  restarted FE waits for heartbeats before trusting a BE (every BE not alive, "no heartbeat since
  this FE started"), as it always did; a BE that heartbeats is alive again with one record.

The image holds the journaled view (each BE's last liveness record), never the per-heartbeat soft
state: an FE that loads an image and the records after it has the same view as one that replayed
every record, so a follower that restarts from its image shows what the others show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal, JournalReadOnly

log = logging.getLogger(__name__)


@dataclass
class DiskInfo:
    total_capacity: int = 0
    data_used: int = 0
    avail_capacity: int = 0


@dataclass
class Backend:
    backend_id: int
    host: str
    be_port: int
    http_port: int
    last_start_time_ms: int
    decommissioned: bool = False
    # liveness: alive, err_msg and (on followers) last_heartbeat_ms and disk as the last
    # ``backend.liveness`` record set them; the leader's heartbeats refresh the rest
    alive: bool = False
    last_heartbeat_ms: int = 0
    last_heartbeat_mono: float = 0.0
    tablet_num: int = 0
    disk: DiskInfo = field(default_factory=DiskInfo)
    err_msg: str = ""
    journaled: dict[str, Any] | None = None  # the last liveness record applied (the image keeps it)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.be_port}"

    def persistent(self) -> dict[str, Any]:
        d = {
            "backend_id": self.backend_id,
            "host": self.host,
            "be_port": self.be_port,
            "http_port": self.http_port,
            "last_start_time_ms": self.last_start_time_ms,
            "decommissioned": self.decommissioned,
        }
        if self.journaled is not None:
            d["liveness"] = self.journaled  # replaced by each apply, never changed in place
        return d


@dataclass(frozen=True)
class Heartbeat:
    backend_id: int
    host: str
    be_port: int
    http_port: int
    start_time_ms: int
    disk: DiskInfo
    tablet_num: int


NOT_HEARD_SINCE_START = "no heartbeat since this FE started: a restarted FE waits for one before trusting a BE"


class BackendRegistry:
    """Journal domain ``backend``: add, update, decommission, drop, liveness."""

    def __init__(
        self,
        journal: Journal,
        ids: IdAllocator,
        *,
        heartbeat_timeout_s: Callable[[], float],
        wall_ms: Callable[[], int],
        mono: Callable[[], float],
    ) -> None:
        self._journal = journal
        self._ids = ids
        self._timeout_s = heartbeat_timeout_s
        self._wall_ms = wall_ms
        self._mono = mono
        self._backends: dict[int, Backend] = {}
        self._listeners: list[Callable[[Backend, str], None]] = []
        self._verbs = {
            "add": self._apply_add,
            "update": self._apply_update,
            "decommission": self._apply_decommission,
            "drop": self._apply_drop,
            "liveness": self._apply_liveness,
        }

    # ----------------------------------------------------------------- queries
    def get(self, backend_id: int) -> Backend | None:
        return self._backends.get(backend_id)

    def all(self) -> list[Backend]:
        return sorted(self._backends.values(), key=lambda b: b.backend_id)

    def alive(self) -> list[Backend]:
        return [b for b in self.all() if b.alive]

    def add_listener(self, fn: Callable[[Backend, str], None]) -> None:
        """``fn(backend, event)`` with event in 'alive', 'dead', 'restarted', 'dropped'."""
        self._listeners.append(fn)

    # ----------------------------------------------------------------- live path
    def register(self, backend_id: int, host: str, be_port: int, http_port: int, start_time_ms: int) -> int:
        """A BE announces itself; returns its (possibly new) BackendId."""
        known = self._backends.get(backend_id) if backend_id else None
        if known is None:
            known = next((b for b in self._backends.values() if (b.host, b.be_port) == (host, be_port)), None)
        if known is None:
            new_id = self._ids.next()
            self._journal.log(
                "backend.add",
                {
                    "backend_id": new_id,
                    "host": host,
                    "be_port": be_port,
                    "http_port": http_port,
                    "last_start_time_ms": start_time_ms,
                },
            )
            log.info("backend %d registered at %s:%d", new_id, host, be_port)
            return new_id
        self._update_if_changed(known, host, be_port, http_port, start_time_ms)
        return known.backend_id

    def heartbeat(self, hb: Heartbeat) -> bool:
        """Record a heartbeat (leader only). Returns False when the BE is unknown and must register."""
        if not self._journal.writable:
            raise JournalReadOnly("this FE is not the leader: BEs heartbeat to the leader (ShowFrontends shows it)")
        be = self._backends.get(hb.backend_id)
        if be is None:
            return False
        self._update_if_changed(be, hb.host, hb.be_port, hb.http_port, hb.start_time_ms)
        be.last_heartbeat_ms = self._wall_ms()
        be.last_heartbeat_mono = self._mono()
        be.disk = hb.disk
        be.tablet_num = hb.tablet_num
        if not be.alive:
            self._journal.log("backend.liveness", _liveness(be, alive=True, err_msg=""))
            log.info("backend %d (%s) is alive", be.backend_id, be.address)
        return True

    def check_liveness(self) -> list[Backend]:
        """Mark BEs without a heartbeat for heartbeat_timeout_second dead; returns them. Only the
        leader hears heartbeats: on a follower (a read-only journal) this does nothing."""
        if not self._journal.writable:
            return []
        now = self._mono()
        timeout = self._timeout_s()
        newly_dead = []
        for be in list(self._backends.values()):
            if be.alive and now - be.last_heartbeat_mono > timeout:
                err_msg = f"no heartbeat for more than {timeout:g} s (heartbeat_timeout_second)"
                self._journal.log("backend.liveness", _liveness(be, alive=False, err_msg=err_msg))
                log.warning("backend %d (%s) is dead: %s", be.backend_id, be.address, be.err_msg)
                newly_dead.append(be)
        return newly_dead

    def lead(self, *, inherit: bool) -> None:
        """This FE starts to act as the leader (see the module docstring). ``inherit``: a
        promoted follower keeps the BEs alive in the journaled view and gives each
        heartbeat_timeout_second from now to heartbeat to it; otherwise (an FE leading from its own
        start) every BE is not alive until it heartbeats. Soft state only: nothing is journaled."""
        now = self._mono()
        for be in self._backends.values():
            if not be.alive:
                continue
            if inherit:
                be.last_heartbeat_mono = now
            else:
                be.alive = False
                be.err_msg = NOT_HEARD_SINCE_START
        alive = [be.backend_id for be in self.alive()]
        if inherit:
            log.info("leading with the journal's backend liveness: %s alive, each given %g s to heartbeat here",
                     alive or "none", self._timeout_s())
        else:
            log.info("leading from this FE's start: every backend is not alive until it heartbeats here")

    def decommission(self, backend_id: int) -> None:
        """ALTER SYSTEM DECOMMISSION BACKEND: it takes no new replicas and its replicas move off."""
        if not self._backends[backend_id].decommissioned:
            self._journal.log("backend.decommission", {"backend_id": backend_id, "decommissioned": True})
            log.info("backend %d is decommissioning", backend_id)

    def drop(self, backend_id: int) -> None:
        """ALTER SYSTEM DROP BACKEND (the caller checked that nothing is lost)."""
        self._journal.log("backend.drop", {"backend_id": backend_id})
        log.info("backend %d dropped", backend_id)

    def _update_if_changed(self, be: Backend, host: str, be_port: int, http_port: int, start_ms: int) -> None:
        if (be.host, be.be_port, be.http_port, be.last_start_time_ms) == (host, be_port, http_port, start_ms):
            return
        restarted = start_ms != be.last_start_time_ms
        self._journal.log(
            "backend.update",
            {
                "backend_id": be.backend_id,
                "host": host,
                "be_port": be_port,
                "http_port": http_port,
                "last_start_time_ms": start_ms,
            },
        )
        if restarted:
            log.info("backend %d restarted (start time %d)", be.backend_id, start_ms)
            self._notify(be, "restarted")

    def _notify(self, be: Backend, event: str) -> None:
        for fn in self._listeners:
            fn(be, event)

    # ----------------------------------------------------------------- journal domain
    def apply(self, verb: str, data: dict[str, Any]) -> Any:
        return self._verbs[verb](data)

    def _apply_add(self, d: dict[str, Any]) -> None:
        self._ids.observe(d["backend_id"])
        self._backends[d["backend_id"]] = Backend(
            backend_id=d["backend_id"],
            host=d["host"],
            be_port=d["be_port"],
            http_port=d["http_port"],
            last_start_time_ms=d["last_start_time_ms"],
            decommissioned=d.get("decommissioned", False),
        )

    def _apply_update(self, d: dict[str, Any]) -> None:
        be = self._backends[d["backend_id"]]
        be.host, be.be_port, be.http_port = d["host"], d["be_port"], d["http_port"]
        be.last_start_time_ms = d["last_start_time_ms"]

    def _apply_decommission(self, d: dict[str, Any]) -> None:
        self._backends[d["backend_id"]].decommissioned = d.get("decommissioned", True)

    def _apply_liveness(self, d: dict[str, Any]) -> None:
        be = self._backends.get(d["backend_id"])
        if be is None:
            return
        was = be.alive
        be.alive = d["alive"]
        be.err_msg = d["err_msg"]
        be.last_heartbeat_ms = d["heartbeat_ms"]
        be.disk = DiskInfo(**d["disk"])
        be.journaled = d
        if be.alive:
            # on the leader the heartbeat's own time; replayed, the time it was applied here (a
            # promotion restarts every alive BE's clock anyway: lead())
            be.last_heartbeat_mono = self._mono()
        if be.alive != was and not self._journal.replaying:
            self._notify(be, "alive" if be.alive else "dead")

    def _apply_drop(self, d: dict[str, Any]) -> None:
        be = self._backends.pop(d["backend_id"], None)
        if be is not None:
            self._notify(be, "dropped")

    def dump(self) -> dict[str, Any]:
        return {"backends": [b.persistent() for b in self.all()]}

    def load(self, state: dict[str, Any]) -> None:
        self._backends.clear()
        for d in state.get("backends", []):
            self._apply_add(d)
            if d.get("liveness") is not None:
                self._apply_liveness(d["liveness"])


def _liveness(be: Backend, *, alive: bool, err_msg: str) -> dict[str, Any]:
    """A ``backend.liveness`` record: the transition and what a follower shows with it."""
    disk = be.disk
    return {"backend_id": be.backend_id, "alive": alive, "heartbeat_ms": be.last_heartbeat_ms, "err_msg": err_msg,
            "disk": {"total_capacity": disk.total_capacity, "data_used": disk.data_used,
                     "avail_capacity": disk.avail_capacity}}

