"""One error hierarchy for the whole cluster.

Domain code raises these; servicers map them to a gRPC status in exactly one place
(:func:`common.rpc.grpc_errors`). ``retriable`` is what tenacity's retry predicates read.
"""

from __future__ import annotations

import grpc


class TabletsimError(Exception):
    """Base error. The message must say what was wrong and what is allowed."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    retriable: bool = False


class InvalidArgument(TabletsimError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(TabletsimError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TabletsimError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(TabletsimError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(TabletsimError):
    code = grpc.StatusCode.UNAVAILABLE
    retriable = True


class Unauthenticated(TabletsimError):
    code = grpc.StatusCode.UNAUTHENTICATED


class DeadlineExceeded(TabletsimError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    retriable = True


class InjectedFailure(TabletsimError):
    """A debug point's FAIL rule acting: the status code is the one the rule names."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def is_retriable(exc: BaseException) -> bool:
    """tenacity predicate: our own retriable errors and transient gRPC failures."""
    if isinstance(exc, TabletsimError):
        return exc.retriable
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return isinstance(exc, ConnectionError | OSError)
