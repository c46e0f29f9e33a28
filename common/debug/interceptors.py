"""The RPC side of debug points: client and server interceptors.

Every call a node makes carries ``x-tabletsim-node: <its own host:port>`` (always, debug points
on or off: it is one metadata pair), so the node that serves it knows the caller; calls without
it (grpcurl) have peer "". With debug points on:

- the client side checks ``rpc.out`` with peer = the channel's target. DROP and FAIL end the
  call without sending it (UNAVAILABLE, or the rule's status); DELAY waits first, and the wait
  counts against the call's deadline as a slow link's would;
- the server side checks ``rpc.in`` with peer = the caller's node. DROP and FAIL answer without
  running the handler; DELAY runs it late. DebugService itself is never hit, so an operator can
  always remove a rule that drops everything.

The client side is a :class:`common.rpc.CallHook`: the channel runs it with the node's other
hooks (the cluster token, the FE's durability wait) in one interceptor, on every call kind.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import grpc

from common.debug.rules import RPC_IN, RPC_OUT
from common.errors import TabletsimError
from common.rpc import CallHook, rejecting_handler

if TYPE_CHECKING:
    from common.debug.points import DebugPoints

NODE_HEADER = "x-tabletsim-node"
DEBUG_SERVICE_PREFIX = "/tabletsim.v1.DebugService/"


def caller_node(metadata) -> str:
    """The calling node's address from a call's invocation metadata; "" when absent (grpcurl)."""
    for key, value in metadata or ():
        if key == NODE_HEADER:
            return value if isinstance(value, str) else value.decode()
    return ""


def _rpc_error(code: grpc.StatusCode, message: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), message)


# --------------------------------------------------------------------------- client


class _ClientSide:
    def __init__(self, debug: DebugPoints, target: str) -> None:
        self._debug = debug
        self._target = target

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ((NODE_HEADER, self._debug.node),)  # read per call: an FE learns its port at start

    async def before_call(self, method: str, timeout: float | None) -> float | None:
        rule = self._debug.check_rpc(RPC_OUT, method, self._target)
        if rule is None:
            return timeout
        what = f"the call {method} to {self._target}"
        error = self._debug.error_of(rule, what)
        if error is not None:
            raise _rpc_error(error.code, str(error))
        delay_s = rule.delay_ms / 1000
        if timeout is not None and delay_s >= timeout:
            await self._debug.sleep(timeout)
            raise _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED,
                             f"Deadline Exceeded: debug rule {rule.id} delayed {what} by "
                             f"{rule.delay_ms} ms, beyond its {timeout:g} s deadline, on node "
                             f"{self._debug.node}")
        await self._debug.sleep(delay_s)
        return None if timeout is None else timeout - delay_s


def client_interceptors(debug: DebugPoints, target: str) -> list[CallHook]:
    """The node header on every call; the ``rpc.out`` check too when debug points are on."""
    side = _ClientSide(debug, target)
    return [CallHook(metadata_of=side.metadata, before_call=side.before_call if debug.enabled else None)]


# --------------------------------------------------------------------------- server


def _delayed_handler(handler: grpc.RpcMethodHandler, debug: DebugPoints, delay_s: float) -> grpc.RpcMethodHandler:
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.response_streaming:
        behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream

        async def delayed_stream(request_or_iterator, context):
            await debug.sleep(delay_s)
            result = behavior(request_or_iterator, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:  # a handler that writes with context.write
                await result

        if handler.request_streaming:
            return grpc.stream_stream_rpc_method_handler(delayed_stream, des, ser)
        return grpc.unary_stream_rpc_method_handler(delayed_stream, des, ser)
    behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary

    async def delayed_unary(request_or_iterator, context):
        await debug.sleep(delay_s)
        return await behavior(request_or_iterator, context)

    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(delayed_unary, des, ser)
    return grpc.unary_unary_rpc_method_handler(delayed_unary, des, ser)


class DebugServerInterceptor(grpc.aio.ServerInterceptor):
    """``rpc.in`` rules on the calls a node serves (unary and streaming handlers alike)."""

    def __init__(self, debug: DebugPoints) -> None:
        self._debug = debug

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self._debug.rules or method.startswith(DEBUG_SERVICE_PREFIX):
            return handler
        peer = caller_node(handler_call_details.invocation_metadata)
        rule = self._debug.check_rpc(RPC_IN, method, peer)
        if rule is None:
            return handler
        what = f"the call {method} from {peer or 'a client outside the cluster'}"
        error: TabletsimError | None = self._debug.error_of(rule, what)
        if error is not None:
            return rejecting_handler(handler, str(error), error.code)
        return _delayed_handler(handler, self._debug, rule.delay_ms / 1000)


def server_interceptors(debug: DebugPoints) -> list:
    return [DebugServerInterceptor(debug)]
