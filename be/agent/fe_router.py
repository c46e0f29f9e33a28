"""Which FE a BE talks to: always the leader, found and followed across leader changes.

A BE knows a list of FE addresses (``--fe a,b,c``). Every FrontendService call it makes (register,
heartbeat, tablet reports, txn begin/commit/abort, routine load task reports) goes through
:class:`FeRouter`, to the FE it believes leads:

- a follower refuses the call without running it (fe/service/leader.py) and names the leader in
  trailing metadata ``x-leader-address``: the router switches to it and sends the call again at
  once. An empty name means "no leader known yet": the router tries the next FE after a backoff;
- when the FE does not answer at all (connection refused or lost: UNAVAILABLE while the channel is
  not READY) and there are other FEs, the router tries the next one, with a backoff;
- a call the FE did not answer within its deadline (DEADLINE_EXCEEDED) goes back to the caller (it
  may have run), but with other FEs the router leaves that FE: the next call asks the next FE,
  which runs it if it leads or names the leader. A leader SIGSTOPped (or hung) keeps its
  connection up and never answers; without this every call would wait on it until it woke, long
  after a follower took over. A leader that was only slow is named again by the follower, and
  the next call after that goes back to it;
- anything else - an answer of the leader, or an UNAVAILABLE the leader itself answered (a write
  quorum not reached) - goes back to the caller as it came.

Attempts are bounded (:data:`ROUNDS` passes over the FE list) and never outlive the caller's
timeout. With one FE nothing changes from a plain stub: a call to a dead FE fails at once.

Re-sending after a lost connection is safe for every FrontendService call, even when the first
attempt ran on a leader that died before it answered: register and heartbeat are idempotent, a
report is re-sent every interval anyway, an abort only aborts a PREPARE txn, a second BeginTxn with
the same label answers ALREADY_EXISTS (nothing is begun twice), and CommitTxn of a txn already
COMMITTED or VISIBLE answers that status without logging again (StarRocks' commitTransaction
does the same; fe/service/frontend.py), so a routine load task's offsets CAS runs once whichever
attempt landed. A fenced old leader cannot log anything (fe/ha/).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import Any

import grpc

from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc
from common.rpc import InterceptorFactory, cluster_channel, no_interceptors

log = logging.getLogger(__name__)

LEADER_ADDRESS_HEADER = "x-leader-address"  # set by fe/service/leader.py on a follower's refusal
ROUNDS = 3  # a call tries each FE at most this many times
FRONTEND_METHODS = tuple(m.name for m in frontend_pb2.DESCRIPTOR.services_by_name["FrontendService"].methods)


def leader_hint(exc: grpc.aio.AioRpcError) -> str | None:
    """The leader an FE named when it refused a call as a non-leader: its address, "" when it
    knows none, None when the answer is not such a refusal."""
    for key, value in exc.trailing_metadata() or ():
        if key == LEADER_ADDRESS_HEADER:
            return value.decode() if isinstance(value, bytes) else value
    return None


class LeaderStub:
    """A FrontendServiceStub whose every method goes to the current leader (:meth:`FeRouter.call`)."""

    def __init__(self, router: FeRouter) -> None:
        for name in FRONTEND_METHODS:
            setattr(self, name, functools.partial(router.call, name))


class FeRouter:
    def __init__(self, addresses: Sequence[str], cluster_token: str,
                 interceptors: InterceptorFactory = no_interceptors, *,
                 backoff_s: float = 0.1, max_backoff_s: float = 1.0) -> None:
        if not addresses:
            raise ValueError("a BE needs at least one FE address")
        self._addresses = list(dict.fromkeys(addresses))
        self._token = cluster_token
        self._interceptors = interceptors
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, frontend_pb2_grpc.FrontendServiceStub] = {}
        self.leader = self._addresses[0]
        """The FE this BE sends its calls to: the leader as far as it knows."""
        self.stub = LeaderStub(self)
        self.switches = 0

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(self._addresses)

    def _stub_for(self, address: str) -> frontend_pb2_grpc.FrontendServiceStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = cluster_channel(address, self._token, self._interceptors(address))
            self._channels[address] = channel
            stub = self._stubs[address] = frontend_pb2_grpc.FrontendServiceStub(channel)
        return stub

    def _not_connected(self, address: str) -> bool:
        channel = self._channels.get(address)
        return channel is None or channel.get_state(try_to_connect=False) is not grpc.ChannelConnectivity.READY

    def _switch(self, address: str, why: str) -> None:
        if address not in self._addresses:
            self._addresses.append(address)  # an FE the list did not name (added to the cluster later)
        if address != self.leader:
            log.info("FE calls now go to %s (was %s): %s", address, self.leader, why)
            self.leader = address
            self.switches += 1

    def _next_after(self, address: str) -> str:
        return self._addresses[(self._addresses.index(address) + 1) % len(self._addresses)]

    async def call(self, method: str, request: Any, *, timeout: float | None = None, **kwargs: Any) -> Any:
        """Send FrontendService.``method`` to the leader, following refusals and trying the other
        FEs when one does not answer (see the module docstring); the last error otherwise."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        backoff = self._backoff_s
        for attempt in range(1, ROUNDS * len(self._addresses) + 1):
            address = self.leader
            remaining = None if deadline is None else deadline - loop.time()
            try:
                return await getattr(self._stub_for(address), method)(request, timeout=remaining, **kwargs)
            except grpc.aio.AioRpcError as exc:
                hint = leader_hint(exc)
                last = attempt == ROUNDS * len(self._addresses)
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and len(self._addresses) > 1:
                    if self.leader == address:
                        self._switch(self._next_after(address), f"{address} did not answer within the deadline")
                    raise
                if hint:  # a follower named the leader: the call did not run, send it there now
                    if last or hint == address:
                        raise
                    self._switch(hint, f"{address} is not the leader")
                    continue
                if hint is None and not (exc.code() == grpc.StatusCode.UNAVAILABLE
                                         and len(self._addresses) > 1 and self._not_connected(address)):
                    raise  # the leader's own answer
                # no leader known there, or the FE is unreachable: the next FE, after a backoff
                wait_s = backoff if deadline is None else min(backoff, deadline - loop.time())
                if last or wait_s <= 0:
                    raise
                self._switch(self._next_after(address),
                             f"{address} knows no leader" if hint == "" else f"{address} is unreachable "
                             f"({exc.code().name}: {exc.details()})")
                await asyncio.sleep(wait_s)
                backoff = min(backoff * 2, self._max_backoff_s)
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    async def close(self) -> None:
        channels, self._channels, self._stubs = self._channels, {}, {}
        for channel in channels.values():
            await channel.close()
