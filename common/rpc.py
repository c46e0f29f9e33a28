"""gRPC plumbing shared by the FE and the BEs: servers, channels, auth and error mapping.

Protobuf messages stop at the servicer. Servicers decode, call a domain object, and let
:func:`servicer` map domain errors to a status code in this one place.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

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


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Cluster-internal services need the cluster token; AdminService the admin token if set."""

    def __init__(self, cluster_token: str, admin_token: str | None) -> None:
        self._cluster_token = cluster_token
        self._admin_token = admin_token or None

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        metadata = dict(handler_call_details.invocation_metadata or ())
        if method.startswith(CLUSTER_PREFIXES):
            if metadata.get(CLUSTER_TOKEN_HEADER) != self._cluster_token:
                return rejecting_handler(
                    handler,
                    f"{method} needs the cluster token in '{CLUSTER_TOKEN_HEADER}' metadata; "
                    "the token given is missing or wrong",
                )
        elif method.startswith(ADMIN_PREFIX) and self._admin_token is not None:
            if metadata.get("authorization") != f"Bearer {self._admin_token}":
                return rejecting_handler(
                    handler,
                    "AdminService needs 'authorization: Bearer <admin token>' "
                    "(the FE was started with an admin token)",
                )
        return handler


class _TokenMetadata:
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )



class _TokenClientInterceptor(_TokenMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


class _TokenUnaryStreamInterceptor(_TokenMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


class _TokenStreamUnaryInterceptor(_TokenMetadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await continuation(self._details(client_call_details), request_iterator)


def _token_interceptors(metadata: tuple[tuple[str, str], ...]) -> list:
    """One interceptor per call kind: grpc.aio files an interceptor under the first kind it is an
    instance of (an if/elif chain), so one object implementing all kinds would miss the streams."""
    return [_TokenClientInterceptor(metadata), _TokenUnaryStreamInterceptor(metadata),
            _TokenStreamUnaryInterceptor(metadata)]


InterceptorFactory = Callable[[str], Sequence]
"""Client interceptors for the channel to one target address (a node's debug points need it)."""


def no_interceptors(target: str) -> tuple:
    return ()


def cluster_channel(target: str, cluster_token: str, interceptors: Sequence = ()) -> grpc.aio.Channel:
    """A channel to a peer inside the cluster; every call carries the cluster token.

    ``interceptors`` run before the token is added (a node's own client-side hooks)."""
    return grpc.aio.insecure_channel(
        target, options=CHANNEL_OPTIONS,
        interceptors=[*interceptors, *_token_interceptors(((CLUSTER_TOKEN_HEADER, cluster_token),))])


def admin_channel(target: str, admin_token: str | None = None) -> grpc.aio.Channel:
    """A channel an operator tool uses to reach AdminService."""
    interceptors = _token_interceptors((("authorization", f"Bearer {admin_token}"),)) if admin_token else []
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)


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
