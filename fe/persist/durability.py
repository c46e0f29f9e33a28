"""Nothing leaves the FE before the journal records it may depend on are durable.

``Journal.log`` applies a change at once and syncs it later, in a group (fe/persist/groupcommit.py),
so memory runs ahead of the disk for a moment. Anything the outside world sees in that moment -
a reply, an error, a call to a BE (publish, clone, create or drop tablets, a routine load task)
- could be computed from a change a crash would forget. Two interceptors close that gap for
every RPC at once, whatever the call site:

- :class:`DurableRepliesInterceptor` (server side): after the handler ran and before its answer
  goes out - the response, each message of a response stream, an ``abort`` (the servicers map
  every error to one) or an uncaught error - it waits until everything logged so far is durable;
- :func:`durable_call_hook` (client side, on every FE->BE channel, run by the channel's one
  interceptor with the token and debug hooks): a call waits the same way before it is sent, and a
  streamed request before each message.

``durable`` is ``Journal.durable``: it returns at once when nothing is pending, so an idle journal
costs a call nothing.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from common.rpc import CallHook, WrappedHandlers, hook_interceptors

Durable = Callable[[], Awaitable[None]]


class _DurableContext:
    """The servicer context with ``abort`` and ``write`` waiting for durability first; anything
    else goes to the real context."""

    def __init__(self, context: grpc.aio.ServicerContext, durable: Durable) -> None:
        self._context = context
        self._durable = durable

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata=()) -> None:
        await self._durable()
        await self._context.abort(code, details, trailing_metadata)

    async def write(self, message: Any) -> None:
        await self._durable()
        await self._context.write(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _unary_reply(behavior: Callable, durable: Durable) -> Callable:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            response = behavior(request, _DurableContext(context, durable))
            if inspect.isawaitable(response):
                response = await response
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise  # an abort waited already; a cancelled call answers nothing
        except Exception:
            await durable()  # grpc turns it into a status: that is an answer too
            raise
        await durable()
        return response

    return handler


def _streamed_reply(behavior: Callable, durable: Durable) -> Callable:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        responses = behavior(request, _DurableContext(context, durable))
        try:
            if hasattr(responses, "__aiter__"):
                async for item in responses:
                    await durable()
                    yield item
            elif inspect.isawaitable(responses):
                await responses  # a handler that writes through context.write (waits there)
            else:
                for item in responses:
                    await durable()
                    yield item
        except (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception:
            await durable()
            raise
        finally:
            if hasattr(responses, "aclose"):
                await responses.aclose()
        await durable()  # the final status

    return handler


class DurableRepliesInterceptor(grpc.aio.ServerInterceptor):
    """Server side: every answer waits until the journal records logged before it are durable."""

    def __init__(self, durable: Durable) -> None:
        self._durable = durable
        self._wrapped = WrappedHandlers(self._wrap)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self._wrapped.get(handler_call_details.method, handler)

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        des, ser = handler.request_deserializer, handler.response_serializer
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                _streamed_reply(handler.stream_stream, self._durable), des, ser)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                _unary_reply(handler.stream_unary, self._durable), des, ser)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                _streamed_reply(handler.unary_stream, self._durable), des, ser)
        return grpc.unary_unary_rpc_method_handler(_unary_reply(handler.unary_unary, self._durable), des, ser)


def durable_call_hook(durable: Durable) -> CallHook:
    """Client side: a call waits for durability before it is sent, and a streamed request before
    each message. Put it first among a channel's hooks (common/rpc.py ``hooked_channel``)."""

    async def before_call(method: str, timeout: float | None) -> float | None:
        await durable()
        return timeout

    return CallHook(before_call=before_call, before_message=durable)


def durable_call_interceptors(durable: Durable) -> list:
    """:func:`durable_call_hook` alone, as interceptors for a plain grpc.aio channel."""
    return hook_interceptors([durable_call_hook(durable)])
