"""Which FE answers what: followers forward writes to the leader and refuse BE calls.

One server interceptor (:class:`LeaderInterceptor`) decides for every call, from the FE's
:class:`HaState` and one table (:data:`ADMIN_ACCESS`) that classifies each AdminService method:

- an AdminService **read** is answered by whichever FE got it, from its own replayed state;
- an AdminService **write** on the leader runs here; its answer carries the leader's last
  applied journal id in trailing metadata (``x-journal-id``), its error too;
- an AdminService **write** on a follower is forwarded as it came (the same request bytes, the
  same metadata, the admin token included) to the leader, as StarRocks' followers forward DDL
  (MasterOpExecutor). The follower then waits until it replayed the leader's journal id
  (``HaState.wait_replayed``) before it answers, so a client that writes and then reads on the
  same follower sees its write. No leader known: UNAVAILABLE naming the FEs;
- a FrontendService call (BE register, heartbeat, reports, txn begin/commit/abort, routine load
  task reports) on a follower is not forwarded: a BE must talk to the leader itself. The answer is
  FAILED_PRECONDITION - this FE is in the wrong state for the call, and retrying it here will not
  help - with the leader's address in the message and in trailing metadata (``x-leader-address``),
  so the BE switches. The call did not run, so re-sending it to the leader is always safe. While
  no leader is known the answer is UNAVAILABLE (retry shortly, on any FE) with an empty
  ``x-leader-address``.

A forwarded call carries ``x-forwarded-by: <follower>``; an FE that gets one while it is not the
leader (the follower's idea of the leader was stale) answers UNAVAILABLE instead of forwarding it
again, so two FEs never bounce a call between them.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from common.debug.interceptors import NODE_HEADER
from common.gen.tabletsim.v1 import admin_pb2
from common.rpc import (
    ADMIN_PREFIX,
    InterceptorFactory,
    WrappedHandlers,
    handler_like,
    hooked_channel,
    no_interceptors,
)
from fe.ha.role import FeRole, HaState

log = logging.getLogger(__name__)

JOURNAL_ID_HEADER = "x-journal-id"
LEADER_ADDRESS_HEADER = "x-leader-address"
FORWARDED_BY_HEADER = "x-forwarded-by"
FRONTEND_PREFIX = "/tabletsim.v1.FrontendService/"
REPLAY_WAIT_S = 10.0  # a follower waits at most this long for the leader's journal id
FORWARD_TIMEOUT_S = 600.0  # a forwarded call without a deadline (a StreamLoad may be long)


class Access(enum.Enum):
    READ = "read"    # answered from this FE's own state
    WRITE = "write"  # changes the leader's state (journaled, or leader-only memory): the leader runs it


R, W = Access.READ, Access.WRITE
ADMIN_ACCESS: dict[str, Access] = {
    # cluster
    "ShowBackends": R,
    "ShowFrontends": R,
    "DecommissionBackend": W,
    "DropBackend": W,
    # catalog
    "CreateDatabase": W,
    "DropDatabase": W,
    "ShowDatabases": R,
    "CreateTable": W,
    "DropTable": W,
    "ShowTables": R,
    "DescribeTable": R,
    "AlterTable": W,
    # replicas
    "ShowTablet": R,
    "ShowTablets": R,
    "ShowReplicaDistribution": R,
    "ShowProc": R,
    "ShowReplicaStatus": R,
    "RepairTable": W,        # a hint to the leader's tablet scheduler
    "CancelRepairTable": W,
    # loads and data
    "StreamLoad": W,         # begins and commits a txn; the write must be readable here after
    "ShowTransactions": R,
    "Query": R,
    "CheckConsistency": W,   # records inconsistent tablets in the leader's memory
    # routine load
    "CreateRoutineLoad": W,
    "AlterRoutineLoad": W,
    "PauseRoutineLoad": W,
    "ResumeRoutineLoad": W,
    "StopRoutineLoad": W,
    "ShowRoutineLoad": R,
    "ShowRoutineLoadTask": R,
    # configuration
    "SetConfig": W,
    "ShowConfig": R,
}
"""Every AdminService method, read or write. A method missing here stops the FE at start
(:func:`check_classified`), and the unit tests fail first."""


def admin_methods() -> list[str]:
    return [m.name for m in admin_pb2.DESCRIPTOR.services_by_name["AdminService"].methods]


def check_classified(table: dict[str, Access] = ADMIN_ACCESS) -> None:
    """Raise ValueError unless ``table`` classifies exactly the methods AdminService declares."""
    declared = admin_methods()
    missing = sorted(set(declared) - set(table))
    unknown = sorted(set(table) - set(declared))
    if missing or unknown:
        raise ValueError(
            "fe/service/leader.py ADMIN_ACCESS must classify every AdminService method as READ or WRITE"
            + (f"; unclassified: {', '.join(missing)}" if missing else "")
            + (f"; not in admin.proto: {', '.join(unknown)}" if unknown else ""))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def metadata_value(metadata: Iterable[tuple[str, Any]] | None, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return _text(v)
    return None


def journal_id_of(metadata: Iterable[tuple[str, Any]] | None) -> int | None:
    value = metadata_value(metadata, JOURNAL_ID_HEADER)
    return int(value) if value and value.isdigit() else None


def _forwardable(metadata: Iterable[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    """The caller's metadata as the leader should see it: the admin token and anything the
    caller added; not gRPC's own headers nor the node header (the follower's channel adds its own)."""
    return [(k, v) for k, v in metadata or ()
            if not k.startswith((":", "grpc-")) and k not in ("user-agent", NODE_HEADER, FORWARDED_BY_HEADER)]


class _JournalIdContext:
    """The servicer context of a write on the leader: an ``abort`` carries the journal id too."""

    def __init__(self, context: grpc.aio.ServicerContext, ha: HaState) -> None:
        self._context = context
        self._ha = ha

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata=()) -> None:
        await self._context.abort(code, details, (*trailing_metadata,
                                                  (JOURNAL_ID_HEADER, str(self._ha.replayed_journal_id))))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class LeaderInterceptor(grpc.aio.ServerInterceptor):
    """The one place that routes calls by the FE's role (see the module docstring).

    ``interceptors``: client hooks for the channel to a leader (the node's debug points);
    :meth:`close` closes those channels.

    Put it before (outside) ``DurableRepliesInterceptor`` in the server's list: the leader then
    reads its journal id once the answer's records are durable, so an id that counts only durable
    records (``Journal.durable_seq``) still covers the write.
    """

    def __init__(self, ha: HaState, *, interceptors: InterceptorFactory = no_interceptors,
                 replay_wait_s: float = REPLAY_WAIT_S, access: dict[str, Access] = ADMIN_ACCESS) -> None:
        check_classified(access)
        self._ha = ha
        self._interceptors = interceptors
        self._replay_wait_s = replay_wait_s
        self._writes = frozenset(ADMIN_PREFIX + name for name, kind in access.items() if kind is Access.WRITE)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._journal_ids = WrappedHandlers(self._with_journal_id)
        self._forwarders = WrappedHandlers(lambda method, _: grpc.unary_unary_rpc_method_handler(
            self._forwarder(method)))  # raw bytes both ways
        self._refusers = WrappedHandlers(lambda method, handler: handler_like(handler, self._refuser(method)))

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method in self._writes:
            if self._ha.role is FeRole.LEADER:
                handler = await continuation(handler_call_details)
                return None if handler is None else self._journal_ids.get(method, handler)
            return self._forwarders.get(method, None)
        if method.startswith(FRONTEND_PREFIX) and self._ha.role is not FeRole.LEADER:
            handler = await continuation(handler_call_details)
            return None if handler is None else self._refusers.get(method, handler)
        return await continuation(handler_call_details)

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()

    # ------------------------------------------------------------------ leader side
    def _with_journal_id(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.request_streaming or handler.response_streaming:
            return handler
        behavior, ha = handler.unary_unary, self._ha

        async def run(request, context):
            response = behavior(request, _JournalIdContext(context, ha))
            if inspect.isawaitable(response):
                response = await response
            context.set_trailing_metadata(((JOURNAL_ID_HEADER, str(ha.replayed_journal_id)),))
            return response

        return grpc.unary_unary_rpc_method_handler(run, handler.request_deserializer, handler.response_serializer)

    # ------------------------------------------------------------------ follower side
    def _frontends(self) -> str:
        return ", ".join(f"{fe.address} ({'alive' if fe.alive else 'not alive'})"
                         for fe in self._ha.frontends()) or "none known"

    def _refuser(self, method: str) -> Callable:
        async def refuse(context: grpc.aio.ServicerContext) -> None:
            leader = self._ha.leader_address
            here = self._ha.self_address
            if leader and leader != here:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"FE {here} is a {self._ha.role.value}, not the leader: {method} must go to the leader "
                    f"FE {leader} (also in metadata '{LEADER_ADDRESS_HEADER}'); it did not run here",
                    ((LEADER_ADDRESS_HEADER, leader),))
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"FE {here} is a {self._ha.role.value} and no leader FE is known yet (frontends: "
                f"{self._frontends()}); {method} did not run: retry shortly", ((LEADER_ADDRESS_HEADER, ""),))

        return refuse

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = hooked_channel(address, self._interceptors(address))
            self._channels[address] = channel
        return channel

    def _forwarder(self, method: str) -> Callable:
        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            here = self._ha.self_address
            metadata = context.invocation_metadata()
            came_from = metadata_value(metadata, FORWARDED_BY_HEADER)
            leader = self._ha.leader_address
            if came_from is not None:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"FE {came_from} forwarded {method} to FE {here} as the leader, but FE {here} is a "
                    f"{self._ha.role.value} (the leader is {leader or 'not known yet'}): leadership just "
                    f"moved; retry on any FE", ((LEADER_ADDRESS_HEADER, leader or ""),))
            if leader == here:  # promoted between routing the call here and forwarding it
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"FE {here} became the leader while {method} was being forwarded; it did not run: retry "
                    f"(on this FE or any other)", ((LEADER_ADDRESS_HEADER, here),))
            if not leader:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"FE {here} is a {self._ha.role.value} and no leader FE is known yet, so it cannot "
                    f"forward the write {method} (frontends: {self._frontends()}); retry shortly, on any FE",
                    ((LEADER_ADDRESS_HEADER, ""),))
            remaining = context.time_remaining()
            call = self._channel(leader).unary_unary(method)(
                request, metadata=(*_forwardable(metadata), (FORWARDED_BY_HEADER, here)),
                timeout=FORWARD_TIMEOUT_S if remaining is None else max(remaining, 0.001))
            try:
                response = await call
            except grpc.aio.AioRpcError as exc:
                journal_id = journal_id_of(exc.trailing_metadata())
                if journal_id is None and exc.code() in (grpc.StatusCode.UNAVAILABLE,
                                                         grpc.StatusCode.DEADLINE_EXCEEDED):
                    await context.abort(exc.code(), f"FE {here} forwarded the write {method} to the leader FE "
                                                    f"{leader}, which did not answer: {exc.details()}",
                                        ((LEADER_ADDRESS_HEADER, leader),))
                if journal_id is not None:  # a refused write may have logged (an abort, say)
                    await self._ha.wait_replayed(journal_id, self._wait_s(context))
                await context.abort(exc.code(), exc.details() or exc.code().name,
                                    ((LEADER_ADDRESS_HEADER, leader),))
            journal_id = journal_id_of(await call.trailing_metadata())
            if journal_id is not None:
                wait_s = self._wait_s(context)
                if not await self._ha.wait_replayed(journal_id, wait_s):
                    await context.abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"the leader FE {leader} did {method} (journal id {journal_id}), but FE {here} "
                        f"replayed only up to {self._ha.replayed_journal_id} within {wait_s:g} s: "
                        f"the write is done; read it on the leader, or here once this FE catches up",
                        ((JOURNAL_ID_HEADER, str(journal_id)), (LEADER_ADDRESS_HEADER, leader)))
                context.set_trailing_metadata(((JOURNAL_ID_HEADER, str(journal_id)),
                                               (LEADER_ADDRESS_HEADER, leader)))
            return response

        return forward

    def _wait_s(self, context: grpc.aio.ServicerContext) -> float:
        remaining = context.time_remaining()
        return self._replay_wait_s if remaining is None else max(0.0, min(self._replay_wait_s, remaining))
