"""A channel's client hooks (common.rpc.CallHook) run in one interceptor, on every call kind.

An echo service under a cluster service name (so the server's AuthInterceptor checks the token) on
a real in-process grpc.aio server, called through channels whose hooks are those of an FE's channel
to a BE: the durability wait first, then the debug point, then the cluster token and the node
header. The durability wait is a gate the test opens; debug rules fail or pass calls.

Also: server interceptors build their wrapped handlers once per method, not once per call.
"""

from __future__ import annotations

import asyncio
from collections import namedtuple

import grpc
import pytest

from common.debug import BE_POINTS, NODE_HEADER, DebugPoints
from common.debug.rules import RuleSpec
from common.rpc import (
    CLUSTER_TOKEN_HEADER,
    AuthInterceptor,
    CallHook,
    WrappedHandlers,
    build_server,
    cluster_channel,
    hooked_channel,
)
from fe.persist.durability import DurableRepliesInterceptor, durable_call_hook
from tests.unit.test_debug_interceptors import Sleeps
from tests.unit.test_group_commit import still_pending

TOKEN = "secret"
CLIENT = "127.0.0.1:7001"
SERVICE = "tabletsim.v1.BackendService"  # a cluster service: the token is checked


class Echo:
    """The four call kinds; records (method, metadata) of every call that ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def _ran(self, method: str, context) -> None:
        self.calls.append((method, dict(context.invocation_metadata())))

    async def unary(self, request: bytes, context) -> bytes:
        self._ran("Unary", context)
        return b"echo:" + request

    async def server_stream(self, request: bytes, context):
        self._ran("ServerStream", context)
        for i in range(2):
            yield request + str(i).encode()

    async def client_stream(self, request_iterator, context) -> bytes:
        self._ran("ClientStream", context)
        return b"+".join([r async for r in request_iterator])

    async def bidi(self, request_iterator, context):
        self._ran("Bidi", context)
        async for request in request_iterator:
            yield b"re:" + request

    def add_to(self, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
        }),))


async def _requests():
    yield b"a"
    yield b"b"


async def _unary(channel, metadata=()):
    return await channel.unary_unary(f"/{SERVICE}/Unary")(b"x", timeout=5, metadata=metadata)


async def _server_stream(channel, metadata=()):
    return [r async for r in channel.unary_stream(f"/{SERVICE}/ServerStream")(b"s", timeout=5, metadata=metadata)]


async def _client_stream(channel, metadata=()):
    return await channel.stream_unary(f"/{SERVICE}/ClientStream")(_requests(), timeout=5, metadata=metadata)


async def _bidi(channel, metadata=()):
    return [r async for r in channel.stream_stream(f"/{SERVICE}/Bidi")(_requests(), timeout=5, metadata=metadata)]


# (call, expected answer, request messages it streams)
CALLS = [(_unary, b"echo:x", 0), (_server_stream, [b"s0", b"s1"], 0), (_client_stream, b"a+b", 2),
         (_bidi, [b"re:a", b"re:b"], 2)]
KIND_IDS = ["unary-unary", "unary-stream", "stream-unary", "stream-stream"]


class Gate:
    """A durability wait the test controls: closed, every call to it waits until :meth:`open`."""

    def __init__(self) -> None:
        self.waits = 0
        self._open = asyncio.Event()

    def open(self) -> None:
        self._open.set()

    async def __call__(self) -> None:
        self.waits += 1
        await self._open.wait()


@pytest.fixture
async def server():
    echo = Echo()
    srv, _ = build_server([SERVICE], [echo.add_to], cluster_token=TOKEN)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        yield echo, f"127.0.0.1:{port}"
    finally:
        await srv.stop(None)


def debug_node(enabled: bool = True) -> DebugPoints:
    return DebugPoints(CLIENT, BE_POINTS, enabled=enabled, sleep=Sleeps())


@pytest.mark.parametrize("call, expected, messages", CALLS, ids=KIND_IDS)
async def test_durability_then_debug_point_then_token_in_one_interceptor(server, call, expected, messages):
    echo, address = server
    gate, debug = Gate(), debug_node()
    debug.rules.add(RuleSpec(point="rpc.out", action="FAIL", fail_code="ABORTED", id="once"))
    async with cluster_channel(address, TOKEN, [durable_call_hook(gate), *debug.client_interceptors(address)]) \
            as channel:
        calling = asyncio.ensure_future(call(channel))
        # the call waits for durability before the debug point is checked: the rule is not hit yet
        assert await still_pending(calling) and echo.calls == []
        assert [r.hits for r in debug.rules.rules()] == [0]
        gate.open()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await calling
        assert err.value.code() == grpc.StatusCode.ABORTED and "rule once" in err.value.details()
        assert echo.calls == []
        # without the rule the call goes out, with the token and the node header
        debug.rules.clear()
        waits = gate.waits
        assert await call(channel, (("x-caller", "kept"),)) == expected
        [(_, metadata)] = echo.calls
        assert metadata[CLUSTER_TOKEN_HEADER] == TOKEN and metadata[NODE_HEADER] == CLIENT
        assert metadata["x-caller"] == "kept"
        assert gate.waits - waits == 1 + messages  # before the call, and before each streamed message


@pytest.mark.parametrize("call, expected, messages", CALLS, ids=KIND_IDS)
async def test_metadata_only_hooks_need_no_interceptor(server, call, expected, messages):
    echo, address = server
    async with cluster_channel(address, TOKEN, debug_node(enabled=False).client_interceptors(address)) as channel:
        assert not isinstance(channel, type(grpc.aio.insecure_channel(address)))  # no interceptor chain
        assert channel.get_state() in tuple(grpc.ChannelConnectivity)
        assert await call(channel, (("x-caller", "kept"),)) == expected
        assert await call(channel) == expected
    (_, first), (_, second) = echo.calls
    assert first[CLUSTER_TOKEN_HEADER] == TOKEN and first[NODE_HEADER] == CLIENT and first["x-caller"] == "kept"
    assert second[CLUSTER_TOKEN_HEADER] == TOKEN and second[NODE_HEADER] == CLIENT and "x-caller" not in second


async def _no_requests():
    return
    yield  # pragma: no cover - makes this an async generator


# a refused call of a streamed request sends none: a message racing the refusal fails INTERNAL in grpc core
REFUSABLE = [lambda ch: _unary(ch), lambda ch: _server_stream(ch),
             lambda ch: ch.stream_unary(f"/{SERVICE}/ClientStream")(_no_requests(), timeout=5),
             lambda ch: _collect(ch.stream_stream(f"/{SERVICE}/Bidi")(_no_requests(), timeout=5))]


async def _collect(responses):
    return [r async for r in responses]


@pytest.mark.parametrize("call", REFUSABLE, ids=KIND_IDS)
async def test_a_call_without_the_token_is_refused(server, call):
    echo, address = server
    async with hooked_channel(address, [CallHook(metadata=((CLUSTER_TOKEN_HEADER, "wrong"),))]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(channel)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and echo.calls == []


async def test_metadata_read_at_each_call_follows_the_node_address(server):
    echo, address = server
    debug = debug_node(enabled=False)
    async with cluster_channel(address, TOKEN, debug.client_interceptors(address)) as channel:
        debug.node = "127.0.0.1:7002"  # an FE learns its bound port after it made its objects
        await _unary(channel)
    assert echo.calls[0][1][NODE_HEADER] == "127.0.0.1:7002"


# --------------------------------------------------------------------------- server side

Details = namedtuple("Details", "method invocation_metadata")


def _continuation(handler):
    async def continuation(details):
        return handler

    return continuation


async def _echo(request, context):
    return request


async def test_wrapped_handlers_are_built_once_per_method():
    built: list[str] = []
    cache = WrappedHandlers(lambda method, handler: built.append(method) or (method, handler))
    first = grpc.unary_unary_rpc_method_handler(_echo)
    assert cache.get("/s/A", first) is cache.get("/s/A", first)
    assert cache.get("/s/B", first) == ("/s/B", first)
    other = grpc.unary_unary_rpc_method_handler(_echo)
    assert cache.get("/s/A", other) == ("/s/A", other)  # another handler for the method: wrapped anew
    assert built == ["/s/A", "/s/B", "/s/A"]


async def test_server_interceptors_reuse_their_wrapped_handlers():
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    durable = DurableRepliesInterceptor(Gate())
    details = Details(f"/{SERVICE}/Unary", ((CLUSTER_TOKEN_HEADER, TOKEN),))
    wrapped = await durable.intercept_service(_continuation(handler), details)
    assert wrapped is not handler and wrapped is await durable.intercept_service(_continuation(handler), details)
    assert await durable.intercept_service(_continuation(None), details) is None

    auth = AuthInterceptor(TOKEN, "admin")
    assert await auth.intercept_service(_continuation(handler), details) is handler
    no_token = Details(f"/{SERVICE}/Unary", (("x", "y"),))
    refused = await auth.intercept_service(_continuation(handler), no_token)
    assert refused is not handler and refused is await auth.intercept_service(_continuation(handler), no_token)
    admin = Details("/tabletsim.v1.AdminService/ShowBackends", (("authorization", "Bearer admin"),))
    assert await auth.intercept_service(_continuation(handler), admin) is handler
    wrong = Details("/tabletsim.v1.AdminService/ShowBackends", (("authorization", "Bearer nope"),))
    assert await auth.intercept_service(_continuation(handler), wrong) is not handler
