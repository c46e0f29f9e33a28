"""Debug-point interceptors on a real in-process grpc.aio server (127.0.0.1, a free port).

An echo service with the three call kinds the cluster uses (unary, server-streaming,
client-streaming; raw bytes, no protos) on a server built by common.rpc.build_server, and
channels made by common.rpc.cluster_channel with a node's client interceptors: the node header on
every call, ``rpc.out`` rules on the client, ``rpc.in`` rules on the server. DebugService itself is
served too: cluster token required, never hit by rules.
"""

from __future__ import annotations

import grpc
import pytest

from common.debug import BE_POINTS, NODE_HEADER, DebugPoints
from common.debug.rules import RuleSpec
from common.debug.service import served
from common.gen.tabletsim.v1 import debug_pb2, debug_pb2_grpc
from common.rpc import CLUSTER_TOKEN_HEADER, build_server, cluster_channel

TOKEN = "secret"
CLIENT = "127.0.0.1:7001"  # the calling node's own address (what it sends in the header)


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


class Echo:
    """Unary, server-streaming and client-streaming methods; records (method, caller node)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @staticmethod
    def _node(context) -> str:
        return dict(context.invocation_metadata()).get(NODE_HEADER, "")

    async def unary(self, request: bytes, context) -> bytes:
        self.calls.append(("Unary", self._node(context)))
        return b"echo:" + request

    async def server_stream(self, request: bytes, context):
        self.calls.append(("ServerStream", self._node(context)))
        for i in range(3):
            yield request + str(i).encode()

    async def client_stream(self, request_iterator, context) -> bytes:
        self.calls.append(("ClientStream", self._node(context)))
        return b"+".join([r async for r in request_iterator])

    def add_to(self, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
        }),))


class Harness:
    def __init__(self, server_debug: DebugPoints) -> None:
        self.echo = Echo()
        self.debug = server_debug
        self.server: grpc.aio.Server | None = None
        self.address = ""
        self._channels: list[grpc.aio.Channel] = []

    async def start(self) -> None:
        names, adders = served(self.debug)
        self.server, _ = build_server(names, [self.echo.add_to, *adders], cluster_token=TOKEN,
                                      interceptors=self.debug.server_interceptors())
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        self.debug.node = self.address
        await self.server.start()

    async def stop(self) -> None:
        for channel in self._channels:
            await channel.close()
        await self.server.stop(None)

    def channel(self, client: DebugPoints) -> grpc.aio.Channel:
        channel = cluster_channel(self.address, TOKEN, client.client_interceptors(self.address))
        self._channels.append(channel)
        return channel


async def _unary(channel, timeout=5.0):
    return await channel.unary_unary("/test.Echo/Unary")(b"x", timeout=timeout)


async def _server_stream(channel):
    return [r async for r in channel.unary_stream("/test.Echo/ServerStream")(b"s", timeout=5)]


async def _client_stream(channel):
    async def requests():
        yield b"a"
        yield b"b"

    return await channel.stream_unary("/test.Echo/ClientStream")(requests(), timeout=5)


CALLS = [(_unary, b"echo:x"), (_server_stream, [b"s0", b"s1", b"s2"]), (_client_stream, b"a+b")]
KIND_IDS = ["unary", "server-stream", "client-stream"]


@pytest.fixture
async def harness():
    h = Harness(DebugPoints("", BE_POINTS, sleep=Sleeps()))
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


def client_node(enabled: bool = True, address: str = CLIENT) -> DebugPoints:
    return DebugPoints(address, BE_POINTS, enabled=enabled, sleep=Sleeps())


@pytest.mark.parametrize("call, expected", CALLS, ids=KIND_IDS)
async def test_every_call_carries_the_node_header_even_when_debug_points_are_off(harness, call, expected):
    assert await call(harness.channel(client_node(enabled=False))) == expected
    assert harness.echo.calls[-1][1] == CLIENT


@pytest.mark.parametrize("call, expected", CALLS, ids=KIND_IDS)
async def test_client_drop_fails_unavailable_without_sending(harness, call, expected):
    client = client_node()
    client.rules.add(RuleSpec(point="rpc.out", action="DROP", peer=harness.address, id="cut"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(harness.channel(client))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "rule cut" in err.value.details() and harness.address in err.value.details()
    assert harness.echo.calls == []
    client.rules.clear()
    assert await call(harness.channel(client)) == expected


async def test_client_rules_match_the_method_and_the_target(harness):
    client = client_node()
    client.rules.add(RuleSpec(point="rpc", action="FAIL", fail_code="RESOURCE_EXHAUSTED", fail_message="busy",
                              method="/test.Echo/Unary"))
    client.rules.add(RuleSpec(point="rpc", action="DROP", peer="127.0.0.1:1"))  # another node
    channel = harness.channel(client)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _unary(channel)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and err.value.details().startswith("busy")
    assert await _server_stream(channel) == [b"s0", b"s1", b"s2"]
    assert [r.hits for r in client.rules.rules()] == [1, 0]


async def test_client_delay_waits_and_counts_against_the_deadline(harness):
    client = client_node()
    client.rules.add(RuleSpec(point="rpc.out", action="DELAY", delay_ms=300))
    channel = harness.channel(client)
    assert await _unary(channel) == b"echo:x"
    assert client.sleep.slept == [0.3]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _unary(channel, timeout=0.2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert client.sleep.slept == [0.3, 0.2]
    assert len(harness.echo.calls) == 1


@pytest.mark.parametrize("call, expected", CALLS, ids=KIND_IDS)
async def test_server_drop_by_caller_node_answers_without_running_the_handler(harness, call, expected):
    harness.debug.rules.add(RuleSpec(point="rpc.in", action="DROP", peer=CLIENT, id="from-client"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(harness.channel(client_node(enabled=False)))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "rule from-client" in err.value.details() and CLIENT in err.value.details()
    assert harness.echo.calls == []
    # another node, and a caller without the header (grpcurl), are served
    assert await call(harness.channel(client_node(address="127.0.0.1:7002"))) == expected
    raw = grpc.aio.insecure_channel(harness.address)
    try:
        assert await call(raw) == expected
    finally:
        await raw.close()
    assert [node for _, node in harness.echo.calls] == ["127.0.0.1:7002", ""]


@pytest.mark.parametrize("call, expected", CALLS, ids=KIND_IDS)
async def test_server_fail_and_delay(harness, call, expected):
    harness.debug.rules.add(RuleSpec(point="rpc", action="FAIL", fail_code="ABORTED", id="f"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(harness.channel(client_node(enabled=False)))
    assert err.value.code() == grpc.StatusCode.ABORTED
    harness.debug.rules.clear()
    harness.debug.rules.add(RuleSpec(point="rpc.in", action="DELAY", delay_ms=40))
    assert await call(harness.channel(client_node(enabled=False))) == expected
    assert harness.debug.sleep.slept == [0.04]
    assert len(harness.echo.calls) == 1


async def test_debug_service_needs_the_token_and_is_never_hit_by_rules(harness):
    harness.debug.rules.add(RuleSpec(point="rpc", action="DROP", id="everything"))
    no_token = grpc.aio.insecure_channel(harness.address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await debug_pb2_grpc.DebugServiceStub(no_token).ListDebugRules(debug_pb2.ListDebugRulesRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await no_token.close()
    stub = debug_pb2_grpc.DebugServiceStub(harness.channel(client_node()))
    listed = await stub.ListDebugRules(debug_pb2.ListDebugRulesRequest())
    assert [r.id for r in listed.rules] == ["everything"]
    assert listed.node == harness.address and list(listed.points) == list(BE_POINTS)
    assert (await stub.RemoveDebugRule(debug_pb2.RemoveDebugRuleRequest(id="everything"))).removed
    assert await _unary(harness.channel(client_node())) == b"echo:x"


async def test_debug_service_add_list_remove_clear(harness):
    stub = debug_pb2_grpc.DebugServiceStub(harness.channel(client_node()))
    added = await stub.AddDebugRule(debug_pb2.AddDebugRuleRequest(rule=debug_pb2.DebugRule(
        point="be.kafka.consume", peer="127.0.0.1:9092", action=debug_pb2.DROP, probability=0.5,
        expire_after_ms=60_000)))
    assert added.rule.id == "1" and added.rule.expires_at_ms > 0 and added.rule.probability == 0.5
    second = await stub.AddDebugRule(debug_pb2.AddDebugRuleRequest(rule=debug_pb2.DebugRule(
        point="be.write.before_ack", action=debug_pb2.FAIL, fail_code="INTERNAL", fail_message="no")))
    assert not second.rule.HasField("probability") and second.rule.fail_code == "INTERNAL"
    listed = await stub.ListDebugRules(debug_pb2.ListDebugRulesRequest())
    assert [(r.id, r.point) for r in listed.rules] == [("1", "be.kafka.consume"), ("2", "be.write.before_ack")]
    assert not (await stub.RemoveDebugRule(debug_pb2.RemoveDebugRuleRequest(id="404"))).removed
    assert (await stub.RemoveDebugRule(debug_pb2.RemoveDebugRuleRequest(id="1"))).removed
    assert (await stub.ClearDebugRules(debug_pb2.ClearDebugRulesRequest())).removed == 1
    assert list((await stub.ListDebugRules(debug_pb2.ListDebugRulesRequest())).rules) == []


@pytest.mark.parametrize("rule, words", [
    (debug_pb2.DebugRule(point="rpc"), ["field 'action' is required", "DROP, DELAY, FAIL"]),
    (debug_pb2.DebugRule(point="rpc", action=9), ["unknown action 'DebugAction(9)'"]),
    (debug_pb2.DebugRule(point="fe.txn.commit.after_journal", action=debug_pb2.DROP),
     ["unknown point", "be.clone.middle"]),
    (debug_pb2.DebugRule(point="rpc", action=debug_pb2.DELAY), ["delay_ms > 0"]),
    (debug_pb2.DebugRule(point="rpc", action=debug_pb2.DROP, probability=2), ["outside (0, 1]"]),
    (None, ["field 'rule' is required"]),
])
async def test_debug_service_refuses_bad_rules_with_invalid_argument(harness, rule, words):
    stub = debug_pb2_grpc.DebugServiceStub(harness.channel(client_node()))
    request = debug_pb2.AddDebugRuleRequest(rule=rule) if rule is not None else debug_pb2.AddDebugRuleRequest()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AddDebugRule(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for word in words:
        assert word in err.value.details()


async def test_debug_service_is_absent_when_debug_points_are_off():
    h = Harness(DebugPoints.disabled())
    await h.start()
    try:
        assert h.debug.server_interceptors() == []
        stub = debug_pb2_grpc.DebugServiceStub(h.channel(client_node(enabled=False)))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListDebugRules(debug_pb2.ListDebugRulesRequest(),
                                      metadata=((CLUSTER_TOKEN_HEADER, TOKEN),))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await h.stop()
