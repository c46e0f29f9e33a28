"""A replica's compaction status: what a BE reports and the FE shows (StarRocks: SHOW TABLET's
CompactionStatus). One definition for both sides of the tablet report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CompactionStatus:
    """Times are epoch milliseconds, 0 when none ran since the BE started; results read "OK: ..."
    or "FAILED: ...". On the FE it is runtime state refreshed by every tablet report: kept in
    memory only, never journaled (a restarted FE shows it again after the next report)."""

    cumulative_point: int = 0
    last_cumulative_ms: int = 0
    last_cumulative_result: str = ""
    last_base_ms: int = 0
    last_base_result: str = ""
    stale_rowset_num: int = 0
