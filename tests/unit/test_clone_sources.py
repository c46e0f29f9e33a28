"""The clone executor's requests: an INCREMENTAL clone names the other healthy replicas as
alternative sources, and the history says where a clone really copied from and why it fell back
to FULL (fake BEs, no processes)."""

from __future__ import annotations

import asyncio
import dataclasses

from common.gen.tabletsim.v1 import backend_pb2
from fe.clone.executor import CloneExecutor, TaskResult
from fe.clone.sched_ctx import CloneKind, CloneTask, SchedType
from tests.unit.test_catalog import FakeClients, FakeStub, build, spec


class CloneStub(FakeStub):
    """Every BE at once: creates and drops tablets, and answers CloneTablet with ``answer``."""

    def __init__(self, answer: backend_pb2.CloneTabletResponse) -> None:
        super().__init__(0, set())
        self.answer = answer
        self.requests: list[backend_pb2.CloneTabletRequest] = []

    async def CloneTablet(self, request, timeout=None):
        self.requests.append(request)
        return self.answer


class Clients(FakeClients):
    def __init__(self, stub: CloneStub) -> None:
        super().__init__()
        self.clone = stub

    def stub(self, be_id: int):
        return self.clone


async def run(executor: CloneExecutor, task: CloneTask) -> TaskResult:
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    executor._on_finished = lambda _task, result: done.set_result(result)
    executor.submit(task)
    return await asyncio.wait_for(done, 5)


async def setup(tmp_path, answer: backend_pb2.CloneTabletResponse):
    stub = CloneStub(answer)
    journal, catalog = build(tmp_path, Clients(stub), bes=5)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1, properties={"replication_num": "5"}))
    part = table.partitions[0]
    tablet = part.tablets[0]
    dest, src, alt, dead, lagging = (r.backend_id for r in tablet.replicas)
    part.visible_version = 3
    catalog.update_replicas([
        {"tablet_id": tablet.tablet_id, "backend_id": be, "version": 3, "last_success_version": 3}
        for be in (src, alt, dead)])
    catalog._backends.get(dead).alive = False
    executor = CloneExecutor(catalog, catalog._backends, catalog._clients, catalog._ids, lambda t, r: None)
    task = CloneTask(task_id=1, tablet_id=tablet.tablet_id, kind=CloneKind.INCREMENTAL, src_backend_id=src,
                     dest_backend_id=dest, version_from=2, version_to=3, visible_version=3, timeout_s=5,
                     type=SchedType.REPAIR)
    return stub, catalog, executor, task, tablet, (dest, src, alt, dead, lagging)


async def test_incremental_clone_names_alternative_sources_and_says_where_it_copied_from(tmp_path):
    answer = backend_pb2.CloneTabletResponse(version=3, row_count=30, data_size=300, copied_versions=[3],
                                             copied_bytes=300, incremental=True)
    stub, catalog, executor, task, tablet, (dest, src, alt, dead, lagging) = await setup(tmp_path, answer)
    address = {b.backend_id: b.address for b in catalog._backends.all()}
    answer.source_address = address[alt]
    result = await run(executor, task)
    request = stub.requests[0]
    assert request.incremental and request.src_address == address[src]
    # healthy replicas at the wanted version only: not the source, the destination, a dead BE or a lagging one
    assert list(request.alt_src_addresses) == [address[alt]]
    assert result.ok, result.err
    assert result.detail.startswith(f"INCREMENTAL clone from backend {alt} ({address[alt]}) instead of "
                                    f"backend {src} to backend {dest} copied versions 3-3")
    assert "fell back" not in result.detail
    assert catalog.location(tablet.tablet_id).tablet.replica_on(dest).version == 3


async def test_fallback_to_full_names_its_reason(tmp_path):
    reason = "versions 3-3 were compacted away on every source"
    answer = backend_pb2.CloneTabletResponse(version=3, row_count=30, data_size=300, copied_versions=[2, 3],
                                             copied_bytes=600, incremental=False, fallback_reason=reason)
    stub, catalog, executor, task, tablet, (dest, src, *_) = await setup(tmp_path, answer)
    answer.source_address = catalog._backends.get(src).address
    result = await run(executor, task)
    assert result.ok, result.err
    assert result.detail.startswith(f"FULL clone from backend {src} to backend {dest} copied versions 2-3")
    assert result.detail.endswith(f"; the incremental clone fell back to FULL ({reason})")


async def test_full_clone_sends_no_alternatives(tmp_path):
    answer = backend_pb2.CloneTabletResponse(version=3, row_count=30, data_size=300, copied_versions=[2, 3],
                                             copied_bytes=600, incremental=False)
    stub, catalog, executor, task, tablet, _ = await setup(tmp_path, answer)
    result = await run(executor, dataclasses.replace(task, kind=CloneKind.FULL))
    assert result.ok, result.err
    assert list(stub.requests[0].alt_src_addresses) == [] and not stub.requests[0].incremental
    assert "fell back" not in result.detail
