"""The backend registry: who the BEs are, whether they are alive, what they hold.

Persistent facts (id, host, ports, start time, decommission) go through the journal; liveness
(last heartbeat, disk stats, tablet count) is soft state rebuilt from heartbeats after an FE
restart, as in StarRocks, where a restarted FE waits for heartbeats before trusting a BE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal

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
    # soft state, from heartbeats
    alive: bool = False
    last_heartbeat_ms: int = 0
    last_heartbeat_mono: float = 0.0
    tablet_num: int = 0
    disk: DiskInfo = field(default_factory=DiskInfo)
    err_msg: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.be_port}"

    def persistent(self) -> dict[str, Any]:
        return {
            "backend_id": self.backend_id,
            "host": self.host,
            "be_port": self.be_port,
            "http_port": self.http_port,
            "last_start_time_ms": self.last_start_time_ms,
            "decommissioned": self.decommissioned,
        }


@dataclass(frozen=True)
class Heartbeat:
    backend_id: int
    host: str
    be_port: int
    http_port: int
    start_time_ms: int
    disk: DiskInfo
    tablet_num: int


class BackendRegistry:
    """Journal domain ``backend``: add, update, decommission, drop."""

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
        """Record a heartbeat. Returns False when the BE is unknown and must register."""
        be = self._backends.get(hb.backend_id)
        if be is None:
            return False
        self._update_if_changed(be, hb.host, hb.be_port, hb.http_port, hb.start_time_ms)
        be.last_heartbeat_ms = self._wall_ms()
        be.last_heartbeat_mono = self._mono()
        be.disk = hb.disk
        be.tablet_num = hb.tablet_num
        be.err_msg = ""
        if not be.alive:
            be.alive = True
            log.info("backend %d (%s) is alive", be.backend_id, be.address)
            self._notify(be, "alive")
        return True

    def check_liveness(self) -> list[Backend]:
        """Mark BEs without a heartbeat for heartbeat_timeout_second dead; returns them."""
        now = self._mono()
        timeout = self._timeout_s()
        newly_dead = []
        for be in self._backends.values():
            if be.alive and now - be.last_heartbeat_mono > timeout:
                be.alive = False
                be.err_msg = f"no heartbeat for more than {timeout:g} s (heartbeat_timeout_second)"
                log.warning("backend %d (%s) is dead: %s", be.backend_id, be.address, be.err_msg)
                newly_dead.append(be)
                self._notify(be, "dead")
        return newly_dead

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

