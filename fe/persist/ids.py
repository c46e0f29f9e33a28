"""Cluster-wide id allocation (databases, tables, partitions, tablets, replicas, backends, txns).

Ids are handed out by the live path and written inside the records that use them; every
``apply`` that sees an id calls :meth:`IdAllocator.observe`, so replay ends with the same
counter. The image stores the counter too.
"""

from __future__ import annotations

from typing import Any

FIRST_ID = 10001  # StarRocks starts its ids here too


class IdAllocator:
    def __init__(self) -> None:
        self._next = FIRST_ID

    def next(self) -> int:
        value = self._next
        self._next += 1
        return value

    def observe(self, *ids: int) -> None:
        for value in ids:
            if value >= self._next:
                self._next = value + 1

    # journal domain protocol -----------------------------------------------------------
    def apply(self, verb: str, data: dict[str, Any]) -> None:
        raise ValueError(f"ids has no edit log verb {verb!r}")

    def dump(self) -> dict[str, Any]:
        return {"next": self._next}

    def load(self, state: dict[str, Any]) -> None:
        self._next = max(self._next, int(state["next"]))
