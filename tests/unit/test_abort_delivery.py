"""A BE's abort of a txn reaches the FE even when no leader answers at first (a failover under
way): be/load/coordinator.py retries it in the background until a leader takes it, instead of
leaving the txn PREPARE (and its label taken) until the txn timeout."""

from __future__ import annotations

import grpc
import pytest

from be.load.coordinator import LoadCoordinator
from common.gen.tabletsim.v1 import frontend_pb2
from tests.support import eventually

pytestmark = pytest.mark.timeout(30)


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class _Fe:
    """AbortTxn answers each of ``answers`` in turn (an error to raise, or None: aborted)."""

    def __init__(self, *answers: grpc.aio.AioRpcError | None) -> None:
        self.answers = list(answers)
        self.calls: list[int] = []

    async def AbortTxn(self, request: frontend_pb2.AbortTxnRequest, timeout: float):
        self.calls.append(request.txn_id)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return frontend_pb2.AbortTxnResponse()


def _coordinator(fe: _Fe) -> LoadCoordinator:
    return LoadCoordinator(lambda: 10001, fe, rowsets=None, peers=None, abort_retry_s=0.01)  # type: ignore[arg-type]


async def test_an_abort_no_leader_took_is_retried_until_one_does():
    no_leader = _error(grpc.StatusCode.UNAVAILABLE, "FE a is a FOLLOWER and no leader FE is known yet")
    hung = _error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    fe = _Fe(no_leader, hung, no_leader, None)
    coordinator = _coordinator(fe)
    try:
        await coordinator.abort(7, "the load failed")  # returns at once: the caller's answer does not wait
        assert fe.calls == [7]
        await eventually(lambda: fe.calls == [7, 7, 7, 7], timeout_s=10, what="the abort to be delivered")
        await eventually(lambda: not coordinator.pending_aborts, timeout_s=5, what="no abort left pending")
    finally:
        await coordinator.close()


async def test_an_abort_the_leader_refused_is_not_retried():
    fe = _Fe(_error(grpc.StatusCode.FAILED_PRECONDITION, "txn 7 is VISIBLE: it cannot be aborted"))
    coordinator = _coordinator(fe)
    try:
        await coordinator.abort(7, "the load failed")
        assert fe.calls == [7] and not coordinator.pending_aborts
    finally:
        await coordinator.close()


async def test_closing_the_backend_stops_pending_aborts():
    fe = _Fe(*[_error(grpc.StatusCode.UNAVAILABLE, "no leader")] * 1000)
    coordinator = _coordinator(fe)
    await coordinator.abort(7, "the load failed")
    await eventually(lambda: len(fe.calls) >= 3, timeout_s=10, what="retries")
    await coordinator.close()
    assert not coordinator.pending_aborts
    calls = len(fe.calls)
    await coordinator.abort(8, "after close")  # a BE that is stopping tries once, schedules nothing
    assert len(fe.calls) == calls + 1 and not coordinator.pending_aborts
