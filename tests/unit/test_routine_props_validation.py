"""Issue 12, 3.8: bad load properties are refused with InvalidArgument at the AdminService door
(CreateRoutineLoad, AlterRoutineLoad, StreamLoad), before anything is journaled or sent to a BE.
No processes: the servicer methods run over a journal, a catalog and fake BE stubs."""

from __future__ import annotations

import pytest

from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import admin_pb2, types_pb2
from fe.routineload.manager import RoutineLoadManager
from fe.routineload.properties import OFFSET_END
from fe.routineload.state import JobState
from fe.service.admin_load import LoadAdmin
from fe.service.admin_routine import RoutineLoadAdmin
from fe.txn.manager import TransactionManager
from tests.unit.test_catalog import FakeClients, build, spec

SOURCE = {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "events"}
BAD_RATIOS = ["1.5", "-0.1", "2", "nan", "inf", "-inf", "half", ""]


class StreamLoadStub:
    """A BE that would take any stream load (and records that it was asked)."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    async def ExecuteStreamLoad(self, request, timeout=None):
        self.calls.append(request)
        return types_pb2.StreamLoadResult(label=request.label, status="Success")


class StreamLoadClients:
    def __init__(self) -> None:
        self.calls: list = []

    def stub(self, be_id: int) -> StreamLoadStub:
        return StreamLoadStub(self.calls)


async def door(tmp_path):
    """The routine load and load servicer methods over a fresh FE state with table d.t."""

    def more(journal, catalog):
        txns = TransactionManager(journal, catalog._ids, catalog, catalog._backends, catalog._config,
                                  lambda: 1_700_000_000_000)
        journal.register("txn", txns)
        routine = RoutineLoadManager(journal, catalog._ids, catalog, txns, catalog._config,
                                     lambda: 1_700_000_000_000)
        journal.register("routineload", routine)
        return txns, routine

    journal, catalog, (txns, routine) = build(tmp_path, FakeClients(), more=more)
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=1))
    admin = RoutineLoadAdmin()
    admin._catalog, admin._routine, admin._txns = catalog, routine, txns
    loads = LoadAdmin()
    loads._catalog, loads._txns, loads._backends = catalog, txns, catalog._backends
    loads._dynconfig, loads._clients = catalog._config, StreamLoadClients()
    return journal, routine, admin, loads


def create(admin, name="j", properties=None, source=None):
    return admin.CreateRoutineLoad(admin_pb2.CreateRoutineLoadRequest(
        db="d", name=name, table="t", properties=properties or {},
        data_source_properties={**SOURCE, **(source or {})}), None)


def alter(admin, name="j", properties=None, source=None):
    return admin.AlterRoutineLoad(admin_pb2.AlterRoutineLoadRequest(
        db="d", name=name, properties=properties or {}, data_source_properties=source or {}), None)


async def refused(call) -> str:
    with pytest.raises(InvalidArgument) as info:
        await call
    return str(info.value)


# ---- max_filter_ratio ---------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", BAD_RATIOS)
async def test_create_and_alter_refuse_max_filter_ratio_outside_0_1(tmp_path, ratio):
    journal, routine, admin, _ = await door(tmp_path)
    message = await refused(create(admin, properties={"max_filter_ratio": ratio}))
    assert message == f"invalid property 'max_filter_ratio' = '{ratio}': must be a number between 0 and 1"
    assert routine.jobs() == []

    await create(admin, properties={"max_filter_ratio": "0.2"})
    await admin.PauseRoutineLoad(admin_pb2.RoutineLoadRequest(db="d", name="j"), None)
    before = journal.dump()
    message = await refused(alter(admin, properties={"max_filter_ratio": ratio}))
    assert message == f"invalid property 'max_filter_ratio' = '{ratio}': must be a number between 0 and 1"
    assert journal.dump() == before and routine.job("d", "j").props.max_filter_ratio == 0.2


@pytest.mark.parametrize("ratio", ["0", "1", "0.0", "1.0", " 0.25 "])
async def test_max_filter_ratio_bounds_are_accepted(tmp_path, ratio):
    _, routine, admin, _ = await door(tmp_path)
    await create(admin, properties={"max_filter_ratio": ratio})
    assert routine.job("d", "j").props.max_filter_ratio == float(ratio)


@pytest.mark.parametrize("ratio", [1.5, -0.1, 2.0, float("nan"), float("inf"), float("-inf")])
async def test_stream_load_refuses_max_filter_ratio_outside_0_1(tmp_path, ratio):
    _, _, _, loads = await door(tmp_path)
    request = types_pb2.StreamLoadRequest(db="d", table="t", label="l1", data=b"1,a\n",
                                          params=types_pb2.LoadParams(max_filter_ratio=ratio))
    message = await refused(loads.StreamLoad(request, None))
    assert message == (f"invalid max_filter_ratio {ratio:g}: must be a number between 0 and 1 "
                       "(the largest share of filtered rows the load tolerates)")
    assert loads._clients.calls == []  # no BE was asked to load


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0, None])
async def test_stream_load_takes_max_filter_ratio_within_0_1(tmp_path, ratio):
    _, _, _, loads = await door(tmp_path)
    params = types_pb2.LoadParams() if ratio is None else types_pb2.LoadParams(max_filter_ratio=ratio)
    result = await loads.StreamLoad(types_pb2.StreamLoadRequest(db="d", table="t", label="l1", data=b"1,a\n",
                                                                params=params), None)
    assert result.status == "Success" and len(loads._clients.calls) == 1


# ---- kafka_partitions and kafka_offsets ---------------------------------------------------------

MISMATCH = "Partitions number should be equals to offsets number"


@pytest.mark.parametrize("partitions, offsets", [
    ("0,1,2", "5"),  # one offset for three partitions
    ("0,1,2", "1,2"),
    ("0", "1,2"),
    ("0,1", "OFFSET_BEGINNING"),
])
async def test_create_refuses_partitions_and_offsets_of_different_lengths(tmp_path, partitions, offsets):
    _, routine, admin, _ = await door(tmp_path)
    message = await refused(create(admin, source={"kafka_partitions": partitions, "kafka_offsets": offsets}))
    n_parts, n_offsets = len(partitions.split(",")), len(offsets.split(","))
    assert message == (
        f"invalid property 'kafka_offsets' = '{offsets}': {MISMATCH}: kafka_partitions names {n_parts} "
        f"({partitions}) and kafka_offsets gives {n_offsets}; give one offset per partition, in the same order")
    assert routine.jobs() == []


async def test_alter_refuses_partitions_and_offsets_of_different_lengths(tmp_path):
    journal, routine, admin, _ = await door(tmp_path)
    await create(admin, source={"kafka_partitions": "0,1", "kafka_offsets": "10,20"})
    await admin.PauseRoutineLoad(admin_pb2.RoutineLoadRequest(db="d", name="j"), None)
    before = journal.dump()
    message = await refused(alter(admin, source={"kafka_partitions": "0,1,2", "kafka_offsets": "7"}))
    assert message == (f"invalid property 'kafka_offsets' = '7': {MISMATCH}: kafka_partitions names 3 (0,1,2) "
                       "and kafka_offsets gives 1; give one offset per partition, in the same order")
    # kafka_offsets alone applies to the partitions the job pins (0,1): its count must match them
    message = await refused(alter(admin, source={"kafka_offsets": "7"}))
    assert message == (f"invalid property 'kafka_offsets' = '7': {MISMATCH}: the job's kafka_partitions names 2 "
                       "(0,1) and kafka_offsets gives 1; give one offset per partition, in the same order")
    assert journal.dump() == before
    job = routine.job("d", "j")
    assert job.state is JobState.PAUSED and job.source.partition_offsets == ((0, 10), (1, 20))


async def test_partitions_and_offsets_of_equal_lengths_are_taken(tmp_path):
    _, routine, admin, _ = await door(tmp_path)
    await create(admin, source={"kafka_partitions": "0,1,2", "kafka_offsets": "5,OFFSET_BEGINNING,OFFSET_END"})
    assert routine.job("d", "j").source.partition_offsets == ((0, 5), (1, "OFFSET_BEGINNING"), (2, OFFSET_END))
    await admin.PauseRoutineLoad(admin_pb2.RoutineLoadRequest(db="d", name="j"), None)
    await alter(admin, source={"kafka_offsets": "7,8,9"})
    assert routine.job("d", "j").source.partition_offsets == ((0, 7), (1, 8), (2, 9))
