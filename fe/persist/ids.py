"""Cluster-wide id allocation (databases, tables, partitions, tablets, replicas, backends, txns).

Ids leave the FE before the records that use them are written: CREATE TABLE sends its tablet and
replica ids to the BEs, and a clone its new replica id to the destination, and only then journals
the table or the replica. So, as StarRocks' IdGenerator does, ids are handed out from batches
whose end is journaled first: ``ids.batch {"end": E}`` says "every id below E may be in use".
After a crash, replay (and the image) start the next batch at the journaled end, never below, so
an id given away before the crash is never given again, whether or not its record was written.
The rest of the last batch is skipped (at most ``batch_size`` ids per restart).

Every ``apply`` that sees an id still calls :meth:`IdAllocator.observe`: edit logs written before
batches existed hold no ``ids.batch`` record, and their ids stay taken that way.

State: ``reserved_end`` (journaled) is the persistent part; the image stores it as ``next``, the
first id no FE has handed out, which is also what images from before batches stored. The batch in
use (``_next`` up to ``_batch_end``) lives in this process only: a new process always journals a
fresh batch before its first id.
"""

from __future__ import annotations

from typing import Any, Protocol

FIRST_ID = 10001  # StarRocks starts its ids here too
ID_BATCH_SIZE = 1000  # StarRocks' IdGenerator.BATCH_ID_INTERVAL


class _Journal(Protocol):
    def log(self, op: str, data: dict[str, Any]) -> Any: ...


class IdAllocator:
    """Journal domain ``ids``; ``journal`` is where its batch records go (register it as "ids")."""

    def __init__(self, journal: _Journal, batch_size: int = ID_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError(f"id batch size must be at least 1, not {batch_size}")
        self._journal = journal
        self._batch_size = batch_size
        self._next = FIRST_ID  # the next id this process hands out, once a batch covers it
        self._batch_end = FIRST_ID  # end (exclusive) of the batch this process reserved
        self._reserved_end = FIRST_ID  # end (exclusive) of the last journaled batch, live or replayed

    def next(self) -> int:
        if self._next >= self._batch_end:
            start = max(self._next, self._reserved_end)
            self._journal.log("ids.batch", {"end": start + self._batch_size})
            self._next, self._batch_end = start, start + self._batch_size
        value = self._next
        self._next += 1
        return value

    def observe(self, *ids: int) -> None:
        for value in ids:
            if value >= self._next:
                self._next = value + 1

    # journal domain protocol -----------------------------------------------------------
    def apply(self, verb: str, data: dict[str, Any]) -> None:
        if verb != "batch":
            raise ValueError(f"ids has no edit log verb {verb!r}")
        self._reserved_end = max(self._reserved_end, int(data["end"]))

    def dump(self) -> dict[str, Any]:
        return {"next": max(self._next, self._reserved_end)}

    def load(self, state: dict[str, Any]) -> None:
        first_free = int(state["next"])
        self._next = max(self._next, first_free)
        self._reserved_end = max(self._reserved_end, first_free)
