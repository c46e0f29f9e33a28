"""The coordinator's replicated write below quorum: replicas at tablet_max_versions are told
apart from dead ones (fake sends, no processes)."""

from __future__ import annotations

import json

import grpc
import pytest

from be.load.router import Router, columns_of
from be.load.writer import TooManyVersions, encode_tablet_rows, replicate
from common.coltypes import Column, parse_type
from common.errors import FailedPrecondition, Unavailable
from common.gen.tabletsim.v1 import types_pb2

TABLETS = (101, 102)
BES = (1, 2, 3)


def refusal(tablet_id: int) -> str:
    return f"Too many versions. tablet_id: {tablet_id}, version_count: 5, limit: 5"


def router() -> Router:
    cols = [Column("id", parse_type("BIGINT"), nullable=False, is_key=True)]
    target = types_pb2.LoadTarget(
        db="d", table="t", columns_json=json.dumps([c.to_dict() for c in cols]),
        distribution_columns=["id"], buckets=len(TABLETS), replication_num=3, quorum=2,
        partitions=[types_pb2.TargetPartition(partition_id=7, name="t", tablets=[
            types_pb2.TargetTablet(tablet_id=t, replicas=[
                types_pb2.TargetReplica(backend_id=b, address=f"127.0.0.1:{9060 + b}") for b in BES])
            for t in TABLETS])])
    return Router(target, columns_of(target))


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


async def write(failures: dict[int, BaseException]):
    r = router()
    by_tablet, _ = r.route([(i,) for i in range(20)])
    encoded = encode_tablet_rows(r, by_tablet)

    async def send(backend_id: int, address: str, txn_id: int, chunks) -> None:
        if backend_id in failures:
            raise failures[backend_id]

    return await replicate(42, r, encoded, send, quorum=2)


def at_limit(backend_id: int, tablet_id: int = 101, local: bool = False) -> BaseException:
    text = f"backend {backend_id}: {refusal(tablet_id)}"
    return FailedPrecondition(text) if local else rpc_error(grpc.StatusCode.FAILED_PRECONDITION, text)


async def test_every_replica_at_the_limit_is_too_many_versions_with_the_quorum_facts():
    with pytest.raises(TooManyVersions) as info:
        await write({1: at_limit(1, local=True), 2: at_limit(2), 3: at_limit(3)})
    message = str(info.value)
    assert message.startswith(refusal(101) + "; tablet 101 reached 0 of the 2 replicas its write quorum needs")
    # the peer's own "backend <id>: " prefix is not repeated
    assert f"backend 2: FAILED_PRECONDITION {refusal(101)}" in message
    assert f"backend 1: FAILED_PRECONDITION {refusal(101)}" in message
    assert info.value.code is grpc.StatusCode.FAILED_PRECONDITION and info.value.retriable


async def test_a_dead_replica_plus_replicas_at_the_limit_is_still_the_version_limit():
    dead = rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    with pytest.raises(TooManyVersions, match=r"^Too many versions\. tablet_id: 102, version_count: 5, limit: 5; "
                                              r"tablet 102 reached 0 of the 2"):
        await write({1: dead, 2: at_limit(2, 102), 3: at_limit(3, 102)})


async def test_too_few_live_replicas_even_without_the_limit_is_unavailable():
    dead = rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    with pytest.raises(Unavailable, match="reached 0 of the 2 replicas its write quorum needs") as info:
        await write({1: dead, 2: dead, 3: at_limit(3)})
    assert not isinstance(info.value, TooManyVersions) and refusal(101) in str(info.value)


async def test_one_replica_at_the_limit_misses_the_write_but_the_quorum_holds():
    outcome = await write({3: at_limit(3)})
    assert outcome.loaded_rows == 20 and set(outcome.failed_backends) == {3}
    assert all(list(i.backend_ids) == [1, 2] for i in outcome.commit_infos)
