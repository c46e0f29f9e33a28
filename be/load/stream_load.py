"""The one way a BE runs a Stream Load, whichever door it came by.

Two doors lead here. gRPC: the FE's AdminService.StreamLoad checks the load, picks this BE and
forwards it (BackendService.ExecuteStreamLoad), the body inside the request. HTTP: StarRocks'
``curl --location-trusted -u root: -H "label:l1" -T data.csv -XPUT http://fe:8030/api/db/t/_stream_load``
is redirected by the FE (307) to this BE's ``/api/{db}/{table}/_stream_load`` (be/http/stream_load.py),
which turns the headers into the same StreamLoadRequest and passes the body as a stream. From here
on both are one load:

1. :func:`common.streamload.check_request` (the FE's gRPC door ran the same) and a label when
   the load gave none (StarRocks makes a UUID one on the BE);
2. group commit (Doris' ``group_commit``: sync_mode / async_mode) joins the table's group
   (be/load/group_commit.py): its body is read whole (a group member is small; up to
   MAX_GROUP_BYTES); otherwise the coordinator loads it piece by piece (be/load/coordinator.py);
3. rows were filtered: they are written to an error log, served by this BE's HTTP
   (be/load/error_log.py), and the answer's ``error_url`` (StarRocks' ErrorURL) says where;
4. the load is counted in the BE's load metrics (be/load/stats.py), answered or failed.
"""

from __future__ import annotations

import time

from be.load.body import Body
from be.load.coordinator import LoadCoordinator
from be.load.group_commit import MAX_GROUP_BYTES, GroupCommitter
from be.load.stats import LoadStats
from common.errors import FailedPrecondition
from common.gen.tabletsim.v1 import types_pb2
from common.streamload import check_request, new_label

OFF_MODE = "off_mode"


async def execute_stream_load(req: types_pb2.StreamLoadRequest, body: Body | None = None, *,
                              coordinator: LoadCoordinator, group_commit: GroupCommitter | None,
                              stats: LoadStats | None, result: types_pb2.StreamLoadResult | None = None,
                              backend_id: int = 0) -> types_pb2.StreamLoadResult:
    """Run one Stream Load (see the module docstring). ``body``: the body as it arrives (HTTP);
    None: ``req.data``. ``result`` is filled as the load goes (the HTTP door answers a failure
    with its txn id and label). Raises what gRPC answers as a status: a bad request
    (INVALID_ARGUMENT, nothing begun), a failure after the begin (the txn is aborted)."""
    started = time.monotonic()
    result = result if result is not None else types_pb2.StreamLoadResult()
    try:
        check_request(req)
        req.label = req.label or new_label()
        result.label = req.label
        if req.group_commit and req.group_commit.lower() != OFF_MODE:  # the FE resolved the mode
            if group_commit is None:
                raise FailedPrecondition(f"backend {backend_id} does not run group commit")
            if body is not None:
                req.data = await body.read_all(MAX_GROUP_BYTES, f"a group commit load ({req.group_commit})")
            answer = await group_commit.load(req)
            result.CopyFrom(answer)
            if body is not None:
                result.read_data_time_ms = int(body.read_ms)
        else:
            await coordinator.stream_load(req, body, result)
    except BaseException:
        if stats is not None:  # a load that failed with an error counts as failed, as one answered "Fail"
            failed = types_pb2.StreamLoadResult()
            failed.CopyFrom(result)
            failed.status = "Fail"
            failed.load_bytes = body.size if body is not None else result.load_bytes
            failed.load_time_ms = int((time.monotonic() - started) * 1000)
            stats.stream_load_done(failed)
        raise
    if result.number_filtered_rows and coordinator.error_logs is not None:
        url = await coordinator.error_logs.write_async(result.filtered_rows, result.number_filtered_rows)
        if url is not None:
            result.error_url = url
    if stats is not None:
        stats.stream_load_done(result)
    return result
