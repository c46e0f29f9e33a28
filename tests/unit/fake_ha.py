"""A HaState for tests: its role, leader and replayed journal id are set by the test.

``replay_to(id)`` plays the part of a follower tailing the journal: it applies up to ``id`` and
wakes the ``wait_replayed`` callers, the way the etcd-backed state does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fe.ha.role import FeRole, FrontendInfo


class FakeHa:
    def __init__(self, self_address: str, role: FeRole = FeRole.LEADER, leader_address: str | None = None,
                 *, replayed: int = 0, others: tuple[str, ...] = ()) -> None:
        self._self = self_address
        self._role = role
        self._leader = leader_address if leader_address is not None or role is not FeRole.LEADER \
            else self_address
        self._replayed = replayed
        self.others = others
        self._changed = asyncio.Condition()
        self.waits: list[tuple[int, float]] = []
        self.on_wait: Callable[[int], None] | None = None
        self._listeners: list[Callable[[FeRole], None]] = []

    # -- the test's controls
    def bind(self, address: str) -> None:
        """This FE's address once its server has a port (a leader leads at it)."""
        if self._leader == self._self:
            self._leader = address
        self._self = address

    def become(self, role: FeRole, leader_address: str | None) -> None:
        self._role = role
        self._leader = leader_address
        for fn in self._listeners:
            fn(role)

    async def replay_to(self, journal_id: int) -> None:
        async with self._changed:
            self._replayed = max(self._replayed, journal_id)
            self._changed.notify_all()

    def set_replayed(self, journal_id: int) -> None:
        """On the leader: the last id it applied (no one waits there)."""
        self._replayed = journal_id

    # -- HaState
    @property
    def role(self) -> FeRole:
        return self._role

    @property
    def self_address(self) -> str:
        return self._self

    @property
    def leader_address(self) -> str | None:
        return self._leader

    @property
    def replayed_journal_id(self) -> int:
        return self._replayed

    def frontends(self) -> list[FrontendInfo]:
        out = []
        for address in (self._self, *self.others):
            host, _, port = address.rpartition(":")
            leader = address == self._leader
            out.append(FrontendInfo(name=f"{host}_{port}", host=host, rpc_port=int(port),
                                    role=FeRole.LEADER if leader else FeRole.FOLLOWER, is_leader=leader))
        return out

    async def wait_replayed(self, journal_id: int, timeout_s: float) -> bool:
        self.waits.append((journal_id, timeout_s))
        if self.on_wait is not None:
            self.on_wait(journal_id)
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._replayed >= journal_id), timeout_s)
            return True
        except TimeoutError:
            return False

    def add_listener(self, fn: Callable[[FeRole], None]) -> None:
        self._listeners.append(fn)
