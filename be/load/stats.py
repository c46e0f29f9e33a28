"""What this BE loaded since it started: the counters behind its load metrics (be/http/metrics.py).

Every door that finishes a load on this BE counts it here: a Stream Load over gRPC (the FE's
forward, ExecuteStreamLoad) or over HTTP (be/http/stream_load.py), group-committed or not, and a
routine load task's commit.

StarRocks counts the same events in StreamLoadMetrics / StarRocksMetrics, and /metrics exports
them under its names:

- ``streaming_load_requests_total``, ``streaming_load_bytes``, ``streaming_load_duration_ms``:
  every Stream Load request this BE answered as coordinator, whatever its outcome (the
  StreamLoadAction's counters);
- ``stream_load{type="receive_bytes" | "load_rows"}``: loads that succeeded through the stream
  load executor, which in StarRocks runs both Stream Loads and routine load tasks (their
  fragments go through StreamLoadExecutor::execute_plan_fragment), so both count;
- ``load_rows`` / ``load_bytes``: what the loads wrote through the tablet sink (OlapTableSink),
  again both kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.gen.tabletsim.v1 import types_pb2

SUCCESS_STATUSES = ("Success", "Publish Timeout")
"""Stream Load statuses whose rows were committed (Publish Timeout: visible a little later)."""


@dataclass
class LoadStats:
    stream_load_requests: int = 0
    """Stream Loads answered by this BE as coordinator, whatever their status."""
    stream_load_success: int = 0
    stream_load_failed: int = 0
    stream_load_rows: int = 0
    """Rows loaded by successful Stream Loads."""
    stream_load_receive_bytes: int = 0
    """Body bytes this BE received for Stream Loads."""
    stream_load_success_bytes: int = 0
    """Body bytes of the Stream Loads that succeeded."""
    stream_load_duration_ms: int = 0
    """The LoadTimeMs of every Stream Load answered."""
    routine_load_tasks: int = 0
    """Routine load tasks this BE committed."""
    routine_load_rows: int = 0
    routine_load_receive_bytes: int = 0

    def stream_load_done(self, result: types_pb2.StreamLoadResult) -> None:
        self.stream_load_requests += 1
        self.stream_load_receive_bytes += result.load_bytes
        self.stream_load_duration_ms += result.load_time_ms
        if result.status in SUCCESS_STATUSES:
            self.stream_load_success += 1
            self.stream_load_rows += result.number_loaded_rows
            self.stream_load_success_bytes += result.load_bytes
        else:
            self.stream_load_failed += 1

    def routine_task_done(self, loaded_rows: int, received_bytes: int) -> None:
        self.routine_load_tasks += 1
        self.routine_load_rows += loaded_rows
        self.routine_load_receive_bytes += received_bytes

    @property
    def loaded_rows(self) -> int:
        """Rows of every load that committed here: Stream Loads and routine load tasks."""
        return self.stream_load_rows + self.routine_load_rows

    @property
    def loaded_bytes(self) -> int:
        """Source bytes of every load that committed here (Stream Load bodies, Kafka message values)."""
        return self.stream_load_success_bytes + self.routine_load_receive_bytes
