"""Which rowsets a compaction merges (pure: no I/O, no clock of its own).

As StarRocks' classic policy for DUPLICATE KEY tablets::

    [0-1 | base] [cum] [cum] ... [cum] | cumulative point | [v] [v] [v] [v] [v] ...
     \\______ base compaction folds these ______/             \\__ cumulative compaction merges __/

- Cumulative compaction takes the consecutive rowsets at or above the cumulative point, at most
  ``max_cumulative_compaction_num_singleton_deltas`` of them, once there are at least
  ``min_cumulative_compaction_num_singleton_deltas``; the cumulative point then moves past its
  output, which now waits below the point for a base compaction.
- Base compaction folds every rowset below the cumulative point into one base rowset ``[0, p-1]``
  when there are at least ``min_base_compaction_num_singleton_deltas`` cumulative rowsets, or when
  they hold ``base_cumulative_delta_ratio`` of the base's bytes, or when the last base compaction
  is older than ``base_compaction_interval_seconds_since_last_operation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from be.storage.versions import BYTES, END, START
from common.config import StorageConfig


class CompactionType(Enum):
    CUMULATIVE = "cumulative"
    BASE = "base"


@dataclass(frozen=True)
class Pick:
    kind: CompactionType
    inputs: list[list[int]]
    """Consecutive live rowsets, in version order."""

    @property
    def start_version(self) -> int:
        return 0 if self.kind is CompactionType.BASE else self.inputs[0][START]

    @property
    def end_version(self) -> int:
        return self.inputs[-1][END]


def pick_cumulative(live: list[list[int]], cumulative_point: int, cfg: StorageConfig) -> Pick | None:
    candidates = [rs for rs in live if rs[START] >= cumulative_point]
    candidates = candidates[:cfg.max_cumulative_compaction_num_singleton_deltas]
    if len(candidates) < max(cfg.min_cumulative_compaction_num_singleton_deltas, 2):
        return None
    return Pick(CompactionType.CUMULATIVE, candidates)


def pick_base(live: list[list[int]], cumulative_point: int, cfg: StorageConfig,
              since_last_base_s: float) -> Pick | None:
    below = [rs for rs in live if rs[END] < cumulative_point]
    has_base = bool(below) and below[0][START] == 0
    cumulative = below[1:] if has_base else below
    if not cumulative:
        return None
    base_bytes = below[0][BYTES] if has_base else 0
    cum_bytes = sum(rs[BYTES] for rs in cumulative)
    if (len(cumulative) >= cfg.min_base_compaction_num_singleton_deltas
            or (has_base and base_bytes > 0 and cum_bytes >= cfg.base_cumulative_delta_ratio * base_bytes)
            or since_last_base_s >= cfg.base_compaction_interval_seconds_since_last_operation):
        return Pick(CompactionType.BASE, below)
    return None


def cumulative_score(live: list[list[int]], cumulative_point: int) -> int:
    """How many rowsets wait above the cumulative point: the tablet with most goes first."""
    return sum(1 for rs in live if rs[START] >= cumulative_point)


def point_after(pick: Pick, cumulative_point: int) -> int:
    """The cumulative point once ``pick``'s output is in."""
    if pick.kind is CompactionType.CUMULATIVE:
        return pick.end_version + 1
    return cumulative_point
