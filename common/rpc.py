"""gRPC plumbing shared by the FE and the BEs: servers, channels, auth and error mapping.

Protobuf messages stop at the servicer. Servicers decode, call a domain object, and let
:func:`servicer` map domain errors to a status code in this one place.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.errors import TabletsimError

log = logging.getLogger(__name__)

CLUSTER_TOKEN_HEADER = "x-cluster-token"
ADMIN_PREFIX = "/tabletsim.v1.AdminService/"
CLUSTER_PREFIXES = ("/tabletsim.v1.FrontendService/", "/tabletsim.v1.BackendService/", "/tabletsim.v1.DebugService/")
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # gRPC's default backoff grows to 120 s: a peer that was down for a while would be retried
    # seconds after it came back (StarRocks opens a new thrift connection per call from a pool)
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


# --------------------------------------------------------------------------- errors


def _abort_message(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, TabletsimError):
        return exc.code, str(exc)
    if isinstance(exc, grpc.aio.AioRpcError):  # a peer's answer, passed on as it was
        return exc.code(), exc.details() or exc.code().name
    log.exception("unexpected error in %s", method)
    return grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(exc).__name__}: {exc}"


def servicer(cls: type) -> type:
    """Class decorator: every public RPC method maps domain errors to gRPC statuses.

    Unary methods and server-streaming async generators are both wrapped; a bug becomes
    INTERNAL with a one-line message (the traceback goes to the log, never to the caller).
    """
    methods: dict[str, Callable] = {}
    for klass in reversed(cls.__mro__):  # mixins included; the subclass wins
        if klass is object or klass.__module__.startswith("common.gen."):
            continue
        methods.update({n: f for n, f in vars(klass).items() if not n.startswith("_") and callable(f)})
    for name, fn in methods.items():
        if inspect.isasyncgenfunction(fn):
            setattr(cls, name, _wrap_stream(fn, f"{cls.__name__}.{name}"))
        elif inspect.iscoroutinefunction(fn):
            setattr(cls, name, _wrap_unary(fn, f"{cls.__name__}.{name}"))
    return cls


def _wrap_unary(fn: Callable, method: str) -> Callable:
    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a status, logged when unexpected
            code, message = _abort_message(exc, method)
            await context.abort(code, message)

    return wrapper


def _wrap_stream(fn: Callable, method: str) -> Callable:
    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001
            code, message = _abort_message(exc, method)
            await context.abort(code, message)

    return wrapper


# --------------------------------------------------------------------------- auth


def handler_like(handler: grpc.RpcMethodHandler,
                 refuse: Callable[[grpc.aio.ServicerContext], Awaitable[None]]) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that runs ``refuse(context)`` (which aborts)
    instead of the method."""

    async def unary(request_or_iterator, context):
        await refuse(context)

    async def stream(request_or_iterator, context):
        await refuse(context)
        yield  # pragma: no cover - makes this an async generator

    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(stream, des, ser)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, des, ser)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(stream, des, ser)
    return grpc.unary_unary_rpc_method_handler(unary, des, ser)


def rejecting_handler(handler: grpc.RpcMethodHandler, message: str,
                      code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that answers ``code`` without running it."""

    async def reject(context):
        await context.abort(code, message)

    return handler_like(handler, reject)


class WrappedHandlers:
    """A server interceptor's wrapped handlers, built once per method instead of once per call.

    ``wrap(method, handler)`` must give a handler that keeps no state of its own between calls.
    The cache holds the handler it wrapped and wraps again when another comes (the generic handlers
    of a service give the same object for a method on every call, so that does not happen in a
    running server)."""

    def __init__(self, wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]) -> None:
        self._wrap = wrap
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._cache[method] = (handler, wrapped)
        return wrapped


def _header(metadata: Iterable[tuple[str, Any]] | None, key: str) -> Any:
    """The last value of ``key`` in a call's invocation metadata (as a dict of it would keep)."""
    found = None
    for k, v in metadata or ():
        if k == key:
            found = v
    return found


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Cluster-internal services need the cluster token; AdminService the admin token if set."""

    def __init__(self, cluster_token: str, admin_token: str | None) -> None:
        self._cluster_token = cluster_token
        self._admin_bearer = f"Bearer {admin_token}" if admin_token else None
        self._no_cluster_token = WrappedHandlers(lambda method, handler: rejecting_handler(
            handler, f"{method} needs the cluster token in '{CLUSTER_TOKEN_HEADER}' metadata; "
                     "the token given is missing or wrong"))
        self._no_admin_token = WrappedHandlers(lambda method, handler: rejecting_handler(
            handler, "AdminService needs 'authorization: Bearer <admin token>' "
                     "(the FE was started with an admin token)"))

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method.startswith(CLUSTER_PREFIXES):
            if _header(handler_call_details.invocation_metadata, CLUSTER_TOKEN_HEADER) != self._cluster_token:
                return self._no_cluster_token.get(method, handler)
        elif self._admin_bearer is not None and method.startswith(ADMIN_PREFIX):
            if _header(handler_call_details.invocation_metadata, "authorization") != self._admin_bearer:
                return self._no_admin_token.get(method, handler)
        return handler


Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CallHook:
    """One concern of a node's client side (the cluster token, durability, a debug point), run on
    every call of a channel. :func:`hooked_channel` runs all of a channel's hooks in one
    interceptor per call kind, not one interceptor stacked per concern."""

    metadata: Pairs = ()
    """Pairs every call carries."""
    metadata_of: Callable[[], Pairs] | None = None
    """Pairs read at each call (a value that may change after the channel is made)."""
    before_call: Callable[[str, float | None], Awaitable[float | None]] | None = None
    """Awaited before the call is sent, with its method and timeout (None: no deadline); returns
    the timeout left (a delay spends some of it); raises an ``AioRpcError`` to end the call unsent."""
    before_message: Callable[[], Awaitable[None]] | None = None
    """Awaited before each message of a streamed request is sent."""


class _Hooks:
    """A channel's hooks, fused: the metadata of all, then ``before_call`` of each in order."""

    def __init__(self, hooks: Sequence[CallHook]) -> None:
        self._metadata = tuple(pair for hook in hooks for pair in hook.metadata)
        self._metadata_of = tuple(hook.metadata_of for hook in hooks if hook.metadata_of is not None)
        self._before_call = tuple(hook.before_call for hook in hooks if hook.before_call is not None)
        self._before_message = tuple(hook.before_message for hook in hooks if hook.before_message is not None)

    @property
    def waits(self) -> bool:
        """Whether a call may have to wait before it is sent (else the metadata is all there is)."""
        return bool(self._before_call or self._before_message)

    def pairs(self, metadata) -> Pairs:
        """The call's own ``metadata`` (pairs or a grpc Metadata, or None) with the hooks' pairs."""
        extra = self._metadata
        for metadata_of in self._metadata_of:
            extra = (*extra, *metadata_of())
        return (*metadata, *extra) if metadata else extra

    async def details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        timeout = details.timeout
        if self._before_call:
            method = details.method.decode() if isinstance(details.method, bytes) else details.method
            for before_call in self._before_call:
                timeout = await before_call(method, timeout)
        return grpc.aio.ClientCallDetails(details.method, timeout, grpc.aio.Metadata(*self.pairs(details.metadata)),
                                          details.credentials, details.wait_for_ready)

    def requests(self, requests: Any) -> Any:
        if requests is None or not self._before_message:
            return requests
        return self._gated_requests(requests)

    async def _gated_requests(self, requests: Any) -> AsyncIterator[Any]:
        if hasattr(requests, "__aiter__"):
            async for item in requests:
                for before_message in self._before_message:
                    await before_message()
                yield item
        else:
            for item in requests:
                for before_message in self._before_message:
                    await before_message()
                yield item


class _HooksUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, hooks: _Hooks) -> None:
        self._hooks = hooks

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(await self._hooks.details(client_call_details), request)


class _HooksUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, hooks: _Hooks) -> None:
        self._hooks = hooks

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(await self._hooks.details(client_call_details), request)


class _HooksStreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, hooks: _Hooks) -> None:
        self._hooks = hooks

    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        details = await self._hooks.details(client_call_details)
        return await continuation(details, self._hooks.requests(request_iterator))


class _HooksStreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, hooks: _Hooks) -> None:
        self._hooks = hooks

    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        details = await self._hooks.details(client_call_details)
        return await continuation(details, self._hooks.requests(request_iterator))


def hook_interceptors(hooks: Sequence[CallHook]) -> list:
    """``hooks`` as grpc.aio client interceptors: one per call kind (grpc.aio files an interceptor
    under the first kind it is an instance of, an if/elif chain, so one object implementing all
    kinds would miss the streams), each running every hook."""
    fused = _Hooks(hooks)
    return [_HooksUnaryUnary(fused), _HooksUnaryStream(fused), _HooksStreamUnary(fused), _HooksStreamStream(fused)]


class _WithMetadata:
    """A multi-callable that adds the hooks' metadata to each call, then makes it as the plain
    channel would: no interceptor, so no intercepted call object and no extra task per call."""

    __slots__ = ("_multicallable", "_hooks")

    def __init__(self, multicallable: Any, hooks: _Hooks) -> None:
        self._multicallable = multicallable
        self._hooks = hooks

    def __call__(self, request: Any = None, *, metadata=None, **kwargs: Any) -> Any:
        return self._multicallable(request, metadata=self._hooks.pairs(metadata), **kwargs)


class _MetadataChannel(grpc.aio.Channel):
    """A channel whose hooks only add metadata: it adds it in the multi-callables."""

    def __init__(self, channel: grpc.aio.Channel, hooks: _Hooks) -> None:
        self._channel = channel
        self._hooks = hooks

    async def __aenter__(self) -> _MetadataChannel:
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb) -> None:
        await self._channel.close(None)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _WithMetadata(self._channel.unary_unary(method, request_serializer, response_deserializer,
                                                       _registered_method), self._hooks)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _WithMetadata(self._channel.unary_stream(method, request_serializer, response_deserializer,
                                                        _registered_method), self._hooks)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _WithMetadata(self._channel.stream_unary(method, request_serializer, response_deserializer,
                                                        _registered_method), self._hooks)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _WithMetadata(self._channel.stream_stream(method, request_serializer, response_deserializer,
                                                         _registered_method), self._hooks)


InterceptorFactory = Callable[[str], Sequence[CallHook]]
"""A node's client hooks for the channel to one target address (its debug points need it)."""


def no_interceptors(target: str) -> tuple:
    return ()


def hooked_channel(target: str, hooks: Sequence[CallHook] = ()) -> grpc.aio.Channel:
    """A channel running ``hooks`` (in order) on every call, of every kind. Hooks that only add
    metadata cost no interceptor at all; otherwise one interceptor per call kind runs them all."""
    fused = _Hooks(hooks)
    if fused.waits:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=hook_interceptors(hooks))
    channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    return _MetadataChannel(channel, fused) if hooks else channel


def cluster_channel(target: str, cluster_token: str, interceptors: Sequence[CallHook] = ()) -> grpc.aio.Channel:
    """A channel to a peer inside the cluster; every call carries the cluster token.

    ``interceptors``: the node's own client hooks, run before the call is sent."""
    return hooked_channel(target, [*interceptors, CallHook(metadata=((CLUSTER_TOKEN_HEADER, cluster_token),))])


def admin_channel(target: str, admin_token: str | None = None) -> grpc.aio.Channel:
    """A channel an operator tool uses to reach AdminService."""
    return hooked_channel(target, [CallHook(metadata=(("authorization", f"Bearer {admin_token}"),))]
                          if admin_token else ())


# --------------------------------------------------------------------------- servers


def build_server(
    service_names: Iterable[str],
    adders: Iterable[Callable[[grpc.aio.Server], None]],
    *,
    cluster_token: str,
    admin_token: str | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A grpc.aio server with auth, reflection and the standard health service.

    ``interceptors`` run after authentication, in the order given."""
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(cluster_token, admin_token), *interceptors], options=CHANNEL_OPTIONS
    )
    for add in adders:
        add(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    return server, health_servicer


async def mark_serving(health_servicer: health.aio.HealthServicer, service_names: Iterable[str]) -> None:
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
