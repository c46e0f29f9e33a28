"""The FE's etcd connection and the layout of its keys (FE high availability, ``--journal etcd``).

One :class:`EtcdSession` per FE process, on its event loop, shared by the journal store
(fe/persist/etcdlog.py) and the HA driver (fe/ha/etcd.py). It speaks etcd's v3 gRPC API through
``aetcd`` (its generated stubs and channel; we send the raw requests where aetcd's helpers lack a
field: range limits, compares on create revisions, failure-branch reads).

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
from dataclasses import dataclass

import aetcd
import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

log = logging.getLogger(__name__)

TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
RPC_TIMEOUT_S = 2.0


def is_transient(exc: BaseException) -> bool:
    """An etcd call that may work when tried again (member down, leaderless for a moment)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in TRANSIENT
    return isinstance(exc, aetcd.ConnectionFailedError | aetcd.ConnectionTimeoutError | asyncio.TimeoutError
                      | ConnectionError)


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


class EtcdSession:
    """One gRPC channel to the etcd cluster (every endpoint: gRPC's pick_first moves to the next
    member when the connection to one breaks)."""

    def __init__(self, endpoints: tuple[str, ...], timeout_s: float = RPC_TIMEOUT_S) -> None:
        if not endpoints:
            raise ValueError("an etcd session needs at least one endpoint")
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        # aetcd dials f"{host}:{port}"; several endpoints become one "ipv4:a:1,b:2" target
        *first, last = endpoints
        last_host, _, last_port = last.rpartition(":")
        host = ("ipv4:" + ",".join([*first, last_host])) if first else last_host
        self.client = aetcd.Client(host=host, port=int(last_port), timeout=timeout_s,
                                   options={"grpc.enable_retries": 0, "grpc.initial_reconnect_backoff_ms": 200,
                                            "grpc.max_reconnect_backoff_ms": 1000})

    async def connect(self) -> None:
        await self.client.connect()

    async def close(self) -> None:
        await self.client.close()

    # ------------------------------------------------------------------ raw calls
    async def txn(self, request: rpc.TxnRequest, timeout_s: float | None = None) -> rpc.TxnResponse:
        await self.client.connect()
        return await self.client.kvstub.Txn(request, timeout=timeout_s or self.timeout_s)

    async def range(self, key: bytes, range_end: bytes | None = None, limit: int = 0,
                    timeout_s: float | None = None) -> rpc.RangeResponse:
        await self.client.connect()
        req = rpc.RangeRequest(key=key, limit=limit, sort_order=rpc.RangeRequest.ASCEND,
                               sort_target=rpc.RangeRequest.KEY)
        if range_end is not None:
            req.range_end = range_end
        return await self.client.kvstub.Range(req, timeout=timeout_s or self.timeout_s)

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> rpc.PutResponse:
        await self.client.connect()
        return await self.client.kvstub.Put(rpc.PutRequest(key=key, value=value, lease=lease),
                                            timeout=self.timeout_s)

    async def grant(self, ttl_s: int) -> int:
        """A new lease of ``ttl_s`` seconds; its id."""
        await self.client.connect()
        resp = await self.client.leasestub.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl_s), timeout=self.timeout_s)
        return resp.ID

    async def keepalive(self, lease_id: int) -> int:
        """Renew a lease once; its TTL in seconds from now (0 or less: the lease is gone)."""
        await self.client.connect()
        call = self.client.leasestub.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]),
                                                    timeout=self.timeout_s)
        try:
            async for reply in call:
                return reply.TTL
        finally:
            call.cancel()
        return 0

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease (its keys go with it); a lease already gone is fine."""
        await self.client.connect()
        try:
            await self.client.leasestub.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease_id), timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise

    def watch_stub(self) -> rpc.WatchStub:
        return rpc.WatchStub(self.client.channel)


def compare_create(key: bytes, revision: int) -> rpc.Compare:
    """``create_revision(key) == revision`` (0: the key does not exist)."""
    return rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=revision)


def op_put(key: bytes, value: bytes, lease: int = 0) -> rpc.RequestOp:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))


def op_get(key: bytes) -> rpc.RequestOp:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


def op_delete(key: bytes, range_end: bytes | None = None) -> rpc.RequestOp:
    req = rpc.DeleteRangeRequest(key=key)
    if range_end is not None:
        req.range_end = range_end
    return rpc.RequestOp(request_delete_range=req)
