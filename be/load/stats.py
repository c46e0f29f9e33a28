"""What this BE loaded since it started: the counters behind its load metrics (be/http/metrics.py).

Every door that finishes a load on this BE counts it here: a Stream Load over gRPC (the FE's
forward, ExecuteStreamLoad) or over HTTP (be/http/stream_load.py), group-committed or not, and a
routine load task's commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.gen.tabletsim.v1 import types_pb2


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
    routine_load_tasks: int = 0
    """Routine load tasks this BE committed."""
    routine_load_rows: int = 0
    routine_load_receive_bytes: int = 0

    def stream_load_done(self, result: types_pb2.StreamLoadResult) -> None:
        self.stream_load_requests += 1
        self.stream_load_receive_bytes += result.load_bytes
        if result.status in ("Success", "Publish Timeout"):
            self.stream_load_success += 1
            self.stream_load_rows += result.number_loaded_rows
        else:
            self.stream_load_failed += 1

    def routine_task_done(self, loaded_rows: int, received_bytes: int) -> None:
        self.routine_load_tasks += 1
        self.routine_load_rows += loaded_rows
        self.routine_load_receive_bytes += received_bytes
