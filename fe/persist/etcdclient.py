"""The FE's etcd connection and the layout of its keys (FE high availability, ``--journal etcd``).

One :class:`EtcdSession` per FE process, on its event loop, shared by the journal store
(fe/persist/etcdlog.py) and the HA driver (fe/ha/etcd.py). It speaks etcd's v3 gRPC API with
``aetcd``'s generated stubs on a channel of its own (raw requests: range limits, compares on
create revisions, failure-branch reads), and leaves a member that dies or hangs (see the class).

Key layout, all under ``/tabletsim/<cluster id>/``:

    leader                   JSON {name, address, lease}; attached to the leader's lease. Its
                             create revision is the leader's fencing token: every journal
                             transaction compares it, so a leader whose lease expired (the key
                             was deleted, or re-created by the next leader) cannot write.
    journal/<seq, 20 digits> one journal record: orjson {"op": ..., "data": ...}
    journal_compacted        the highest seq deleted by compaction (records <= it are gone)
    members/<fe name>        JSON {name, host, rpc_port, start_time_ms, version, replayed,
                             image_seq, heartbeat_ms}; attached to that FE's lease (alive = present)
    images/<fe name>         the seq of that FE's newest local image (no lease: a dead FE keeps
                             its records in etcd until it comes back and checkpoints)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

log = logging.getLogger(__name__)

TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
RPC_TIMEOUT_S = 2.0


def is_transient(exc: BaseException) -> bool:
    """An etcd call that may work when tried again: a member down or restarting, no raft leader
    for a moment, etcd's own request timeout, or its "too many requests" (its apply lags its
    commits), etcd's own context ending ("context deadline exceeded" as UNKNOWN: the client's
    deadline, which gRPC sends along, reached etcd before it reached the client), and a raft
    proposal dropped (UNKNOWN too: no raft leader, or a leadership transfer). Not transient: a
    lease or key that is gone, a request too large, a full database ("database space exceeded" is
    RESOURCE_EXHAUSTED too, and needs an operator)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        details = exc.details() or ""
        if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return "too many requests" in details
        if exc.code() is grpc.StatusCode.UNKNOWN:  # errors etcd 3.4 passes on without a code of their own
            return any(text in details for text in ("context deadline exceeded", "context canceled",
                                                    "raft proposal dropped"))
        return exc.code() in TRANSIENT
    return isinstance(exc, asyncio.TimeoutError | ConnectionError)


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix``."""
    return prefix_range_end(prefix)


@dataclass(frozen=True)
class EtcdLayout:
    """Where one tabletsim cluster keeps its keys in etcd."""

    cluster_id: str

    @property
    def prefix(self) -> bytes:
        return f"/tabletsim/{self.cluster_id}/".encode()

    @property
    def leader_key(self) -> bytes:
        return self.prefix + b"leader"

    @property
    def journal_prefix(self) -> bytes:
        return self.prefix + b"journal/"

    def journal_key(self, seq: int) -> bytes:
        return self.journal_prefix + b"%020d" % seq

    def journal_seq(self, key: bytes) -> int:
        return int(key[len(self.journal_prefix):])

    @property
    def compacted_key(self) -> bytes:
        return self.prefix + b"journal_compacted"

    @property
    def members_prefix(self) -> bytes:
        return self.prefix + b"members/"

    def member_key(self, name: str) -> bytes:
        return self.members_prefix + name.encode()

    @property
    def images_prefix(self) -> bytes:
        return self.prefix + b"images/"

    def image_key(self, name: str) -> bytes:
        return self.images_prefix + name.encode()


def parse_endpoints(text: str) -> tuple[str, ...]:
    """``host:port[,host:port...]`` (an ``http://`` in front is allowed) -> ("host:port", ...);
    ValueError naming the bad part."""
    out = []
    for part in text.split(","):
        part = part.strip().removeprefix("http://")
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"etcd endpoint {part!r}: expected HOST:PORT (e.g. 127.0.0.1:2379)")
        out.append(part)
    if not out:
        raise ValueError("no etcd endpoint given: expected HOST:PORT[,HOST:PORT...]")
    return tuple(out)


CHANNEL_OPTIONS = (
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # a new channel makes its own connections: gRPC would otherwise hand it the hung one again
    ("grpc.use_local_subchannel_pool", 1),
)
SILENT_CALLS_TO_REDIAL = 2  # calls in a row that got no answer at all before the members are dialed again
REDIAL_MIN_S = 1.0


class ChannelReplaced(ConnectionError):
    """A call in flight on a channel the session replaced (:meth:`EtcdSession.redial`): transient."""


def is_no_answer(exc: BaseException) -> bool:
    """A call that ran out of time on this side: the member may hang (SIGSTOP, a one-way
    partition). Not etcd's own "context deadline exceeded": that member answered."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED


class _Channel:
    """One gRPC channel to the members, in one order, and its stubs."""

    def __init__(self, order: list[str]) -> None:
        # several endpoints: one "ipv4:a:1,b:2" target, pick_first takes the first that connects
        target = ("ipv4:" + ",".join(order)) if len(order) > 1 else order[0]
        self.channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.kv = rpc.KVStub(self.channel)
        self.lease = rpc.LeaseStub(self.channel)
        self.watch = rpc.WatchStub(self.channel)
        self.silent = 0  # calls in a row without an answer


class EtcdSession:
    """The FE's connection to the etcd cluster: one gRPC channel to every member at a time.

    - A member that dies (SIGKILL, its connection reset): gRPC's pick_first moves to the next
      member by itself; the calls in flight fail UNAVAILABLE (transient) and are tried again.
    - A member that hangs with its connection open (SIGSTOP, a one-way partition): pick_first
      stays on it. After :data:`SILENT_CALLS_TO_REDIAL` calls in a row that got no answer, the
      session dials the members again on a new channel, the next member first (:meth:`redial`,
      at most every :data:`REDIAL_MIN_S`); the calls in flight on the old one end CANCELLED
      (transient) and are tried again there. A lease keepalive try is given half a second, so an
      FE leaves a hung member in about a second, well within its lease.
    """

    def __init__(self, endpoints: tuple[str, ...], timeout_s: float = RPC_TIMEOUT_S) -> None:
        if not endpoints:
            raise ValueError("an etcd session needs at least one endpoint")
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self._order = list(endpoints)
        self._current: _Channel | None = None
        self._redialed_at = -REDIAL_MIN_S
        self._closed = False
        self.redials = 0

    def _use(self) -> _Channel:
        if self._closed:
            raise RuntimeError("the etcd session is closed")
        if self._current is None:
            self._current = _Channel(self._order)
        return self._current

    async def connect(self) -> None:
        self._use()

    async def close(self) -> None:
        """Close the channel (its calls in flight end CancelledError); no call after this."""
        self._closed = True
        current, self._current = self._current, None
        if current is not None:
            await current.channel.close()

    async def redial(self, reason: str) -> bool:
        """A new channel, the members in the next order; False when too soon after the last one
        (or there is one member only)."""
        now = time.monotonic()
        if self._closed or len(self._order) < 2 or now - self._redialed_at < REDIAL_MIN_S:
            return False
        self._redialed_at = now
        self._order = self._order[1:] + self._order[:1]
        old, self._current = self._current, _Channel(self._order)
        self.redials += 1
        log.warning("etcd: %s; dialing the members again, %s first", reason, self._order[0])
        if old is not None:
            await old.channel.close()
        return True

    def _replaced(self, ch: _Channel) -> ChannelReplaced | None:
        """The error for a call that ended CancelledError: gRPC cancels the calls of a channel
        it closes, and the coroutine awaiting one sees CancelledError as if it were cancelled
        itself. None when the task awaiting it really is being cancelled (or the channel is still
        the session's: a cancelled call is then its caller's business)."""
        task = asyncio.current_task()
        if self._closed or ch is self._current or (task is not None and task.cancelling()):
            return None
        return ChannelReplaced("the etcd channel was replaced while this call was in flight (a member gave "
                               "no answer); try again")

    async def _answer(self, ch: _Channel, call):
        """Await ``call`` (made on ``ch``), counting the calls in a row that got no answer."""
        try:
            result = await call
        except grpc.aio.AioRpcError as exc:
            if is_no_answer(exc) and ch is self._current:
                ch.silent += 1
                if ch.silent >= SILENT_CALLS_TO_REDIAL:
                    await self.redial(f"{ch.silent} calls in a row got no answer ({exc.details()})")
            raise
        except asyncio.CancelledError:
            if (replaced := self._replaced(ch)) is not None:
                raise replaced from None
            raise
        ch.silent = 0
        return result

    # ------------------------------------------------------------------ raw calls
    async def txn(self, request: rpc.TxnRequest, timeout_s: float | None = None) -> rpc.TxnResponse:
        ch = self._use()
        return await self._answer(ch, ch.kv.Txn(request, timeout=timeout_s or self.timeout_s))

    async def range(self, key: bytes, range_end: bytes | None = None, limit: int = 0,
                    timeout_s: float | None = None) -> rpc.RangeResponse:
        req = rpc.RangeRequest(key=key, limit=limit, sort_order=rpc.RangeRequest.ASCEND,
                               sort_target=rpc.RangeRequest.KEY)
        if range_end is not None:
            req.range_end = range_end
        ch = self._use()
        return await self._answer(ch, ch.kv.Range(req, timeout=timeout_s or self.timeout_s))

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> rpc.PutResponse:
        ch = self._use()
        return await self._answer(ch, ch.kv.Put(rpc.PutRequest(key=key, value=value, lease=lease),
                                                timeout=self.timeout_s))

    async def grant(self, ttl_s: int) -> int:
        """A new lease of ``ttl_s`` seconds; its id."""
        ch = self._use()
        resp = await self._answer(ch, ch.lease.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl_s), timeout=self.timeout_s))
        return resp.ID

    async def keepalive(self, lease_id: int, timeout_s: float | None = None) -> int:
        """Renew a lease once; its TTL in seconds from now (0 or less: the lease is gone)."""
        ch = self._use()
        call = ch.lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]),
                                       timeout=timeout_s or self.timeout_s)

        async def first_reply() -> int:
            async for reply in call:
                return reply.TTL
            return 0

        try:
            return await self._answer(ch, first_reply())
        finally:
            call.cancel()

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease (its keys go with it); a lease already gone is fine."""
        ch = self._use()
        try:
            await self._answer(ch, ch.lease.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease_id), timeout=self.timeout_s))
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise

    async def watch(self, requests: AsyncIterator[rpc.WatchRequest] | Iterator[rpc.WatchRequest]
                    ) -> AsyncIterator[rpc.WatchResponse]:
        """The responses of one Watch stream (the stream is cancelled when the iteration ends or
        the generator is closed); :class:`ChannelReplaced` when a redial closed its channel."""
        ch = self._use()
        call = ch.watch.Watch(requests)
        try:
            async for resp in call:
                yield resp
        except asyncio.CancelledError:
            if (replaced := self._replaced(ch)) is not None:
                raise replaced from None
            raise
        finally:
            call.cancel()


def compare_create(key: bytes, revision: int) -> rpc.Compare:
    """``create_revision(key) == revision`` (0: the key does not exist)."""
    return rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=revision)


def compare_mod(key: bytes, revision: int) -> rpc.Compare:
    """``mod_revision(key) == revision`` (0: the key does not exist)."""
    return rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision)


def op_put(key: bytes, value: bytes, lease: int = 0) -> rpc.RequestOp:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))


def op_get(key: bytes) -> rpc.RequestOp:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


def op_delete(key: bytes, range_end: bytes | None = None) -> rpc.RequestOp:
    req = rpc.DeleteRangeRequest(key=key)
    if range_end is not None:
        req.range_end = range_end
    return rpc.RequestOp(request_delete_range=req)
