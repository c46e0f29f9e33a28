"""The durability interceptors on a real in-process grpc.aio server and channel: an answer (a
response, each streamed message, an error) and a call to a BE wait until the journal records
logged before them are synced."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from fe.persist.durability import DurableRepliesInterceptor, durable_call_interceptors
from tests.unit.test_group_commit import entered, gated_journal, still_pending

SERVICE = "tabletsim.test.Durability"


class Server:
    """A grpc.aio server whose handlers log a config change before they answer."""

    def __init__(self, journal, config, interceptors) -> None:
        self.journal, self.config = journal, config
        self.ran = asyncio.Event()
        self.arrivals: list[tuple[int, float]] = []  # (durable seq, time) when a call came in
        self.server = grpc.aio.server(interceptors=interceptors)
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Set": grpc.unary_unary_rpc_method_handler(self.set),
            "Refuse": grpc.unary_unary_rpc_method_handler(self.refuse),
            "Crash": grpc.unary_unary_rpc_method_handler(self.crash),
            "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
            "Arrive": grpc.unary_unary_rpc_method_handler(self.arrive),
            "ArriveStream": grpc.unary_stream_rpc_method_handler(self.arrive_stream),
        }),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _log(self, value: bytes) -> None:
        self.config.set("heartbeat_timeout_second", value.decode())
        self.ran.set()

    async def set(self, request: bytes, context) -> bytes:
        self._log(request)
        return f"now {self.config.heartbeat_timeout_second}".encode()  # computed from the state

    async def refuse(self, request: bytes, context) -> bytes:
        self._log(request)
        await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"already {self.config.heartbeat_timeout_second}")

    async def crash(self, request: bytes, context) -> bytes:
        self._log(request)
        raise RuntimeError("a bug after the record was logged")

    async def stream(self, request: bytes, context):
        for value in request.split(b","):
            self._log(value)
            yield value

    async def arrive(self, request: bytes, context) -> bytes:
        self.arrivals.append((self.journal.durable_seq, time.perf_counter()))
        return b"ok"

    async def arrive_stream(self, request: bytes, context):
        self.arrivals.append((self.journal.durable_seq, time.perf_counter()))
        yield b"ok"

    async def __aenter__(self) -> Server:
        await self.server.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.server.stop(None)


async def answered_after_the_sync(tmp_path, method: str, request: bytes, stream: bool = False):
    """Call ``method`` with the journal's sync held at a gate: no answer before the gate opens,
    and the answer comes after the sync. Returns the answer (or the error)."""
    journal, config, editlog = gated_journal(tmp_path)
    async with Server(journal, config, [DurableRepliesInterceptor(journal.durable)]) as server, \
            grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        editlog.closed = True
        if stream:
            async def call():
                return [m async for m in channel.unary_stream(f"/{SERVICE}/{method}")(request)]
        else:
            async def call():
                return await channel.unary_unary(f"/{SERVICE}/{method}")(request)
        calling = asyncio.ensure_future(call())
        await asyncio.wait_for(server.ran.wait(), 10)
        await entered(editlog)
        assert await still_pending(calling), f"{method} answered before its record was synced"
        editlog.open_gate()
        try:
            answer = await asyncio.wait_for(calling, 10)
        except grpc.aio.AioRpcError as exc:
            answer = exc
        answered_at = time.perf_counter()
        last_seq, synced_at = editlog.synced[-1]
        assert last_seq == journal._editlog.last_seq and synced_at <= answered_at
    journal.close()
    return answer


async def test_a_reply_is_not_sent_before_its_record_is_synced(tmp_path):
    assert await answered_after_the_sync(tmp_path, "Set", b"9") == b"now 9"


async def test_an_error_is_not_sent_before_the_record_is_synced(tmp_path):
    refused = await answered_after_the_sync(tmp_path / "abort", "Refuse", b"9")
    assert refused.code() is grpc.StatusCode.ALREADY_EXISTS and refused.details() == "already 9"
    crashed = await answered_after_the_sync(tmp_path / "raise", "Crash", b"9")
    assert crashed.code() is grpc.StatusCode.UNKNOWN


async def test_each_streamed_message_waits_for_the_sync(tmp_path):
    assert await answered_after_the_sync(tmp_path, "Stream", b"7,8,9", stream=True) == [b"7", b"8", b"9"]


@pytest.mark.parametrize("method, stream", [("Arrive", False), ("ArriveStream", True)])
async def test_a_call_to_a_backend_is_not_sent_before_the_records_are_synced(tmp_path, method, stream):
    journal, config, editlog = gated_journal(tmp_path)
    async with Server(journal, config, []) as backend, grpc.aio.insecure_channel(
            f"127.0.0.1:{backend.port}", interceptors=durable_call_interceptors(journal.durable)) as channel:
        editlog.closed = True
        config.set("heartbeat_timeout_second", "9")  # say, a publish decided from a commit
        if stream:
            async def call():
                return [m async for m in channel.unary_stream(f"/{SERVICE}/{method}")(b"")]
        else:
            async def call():
                return [await channel.unary_unary(f"/{SERVICE}/{method}")(b"")]
        calling = asyncio.ensure_future(call())
        await entered(editlog)
        assert await still_pending(calling) and backend.arrivals == [], "the call left before the sync"
        editlog.open_gate()
        assert await asyncio.wait_for(calling, 10) == [b"ok"]
        [(durable_at_arrival, arrived_at)] = backend.arrivals
        assert durable_at_arrival == journal._editlog.last_seq
        assert editlog.synced[-1][1] <= arrived_at
    journal.close()
