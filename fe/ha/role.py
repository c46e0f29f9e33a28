"""The seam between FE high availability and the rest of the FE.

Every FE holds one :class:`HaState`. Code that must act only on the leader (catalog writes, the
transaction manager, publish, the routine load schedulers, the tablet checker and scheduler),
code that forwards a write or redirects a BE, and ``ShowFrontends`` ask it and nothing else.

- :class:`SingleFrontend`: one FE on its local RocksDB journal (the default; ``make cluster``):
  always the leader, at its own address.
- the etcd-backed implementation (``make cluster FES=3``): one leader elected on an etcd lease,
  followers tailing the journal (fe/ha/).

StarRocks names: Role LEADER / FOLLOWER (``SHOW FRONTENDS``' Role, IsMaster), ReplayedJournalId.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol


class FeRole(enum.Enum):
    LEADER = "LEADER"
    FOLLOWER = "FOLLOWER"


@dataclass(frozen=True)
class FrontendInfo:
    """One FE as ``SHOW FRONTENDS`` lists it."""

    name: str
    host: str
    rpc_port: int
    edit_log_port: int = 0
    http_port: int = 0
    query_port: int = 0
    role: FeRole = FeRole.FOLLOWER
    is_leader: bool = False
    cluster_id: str = ""
    joined: bool = True
    alive: bool = True
    replayed_journal_id: int = 0
    last_heartbeat_ms: int = 0
    is_helper: bool = False
    err_msg: str = ""
    start_time_ms: int = 0
    version: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.rpc_port}"


class HaState(Protocol):
    """What an FE knows about leadership. Implementations keep it current; readers never block."""

    @property
    def role(self) -> FeRole: ...

    @property
    def self_address(self) -> str:
        """This FE's host:rpc_port, as BEs and clients dial it."""

    @property
    def leader_address(self) -> str | None:
        """The current leader's host:rpc_port; None while no leader is known."""

    @property
    def replayed_journal_id(self) -> int:
        """The last journal id applied to this FE's memory."""

    def frontends(self) -> list[FrontendInfo]:
        """Every FE of the cluster, this one included."""

    async def wait_replayed(self, journal_id: int, timeout_s: float) -> bool:
        """Wait until this FE applied ``journal_id``; False on timeout (a follower after a
        forwarded write waits for it before it answers, as StarRocks' followers do)."""

    def add_listener(self, fn: Callable[[FeRole], None]) -> None:
        """``fn(new_role)`` on every role change, on the event loop."""


class SingleFrontend:
    """The one FE of a cluster without HA: the leader, always."""

    def __init__(self, info: FrontendInfo, replayed: Callable[[], int]) -> None:
        self._info = info
        self._replayed = replayed

    @property
    def role(self) -> FeRole:
        return FeRole.LEADER

    @property
    def self_address(self) -> str:
        return self._info.address

    @property
    def leader_address(self) -> str | None:
        return self._info.address

    @property
    def replayed_journal_id(self) -> int:
        return self._replayed()

    def frontends(self) -> list[FrontendInfo]:
        return [replace(self._info, role=FeRole.LEADER, is_leader=True, alive=True,
                        replayed_journal_id=self._replayed())]

    async def wait_replayed(self, journal_id: int, timeout_s: float) -> bool:
        await asyncio.sleep(0)
        return self._replayed() >= journal_id

    def add_listener(self, fn: Callable[[FeRole], None]) -> None:
        """The role never changes."""
