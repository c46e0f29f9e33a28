"""The journal: the one way FE metadata changes.

A domain (backends, catalog, txns, jobs, config) never mutates its persistent state directly.
It calls ``journal.log(op, data)``: the record is written to the edit log (synced), then applied
to memory through the same ``apply`` that replay uses. The live path and replay therefore run
the same code and reach the same state; unit tests check it anyway.

Ops are named ``<domain>.<verb>``; each domain keeps its own small table of verbs, so there is
no central switch over op codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from fe.persist.editlog import EditLog

log = logging.getLogger(__name__)


class Domain(Protocol):
    """What a journaled domain provides."""

    def apply(self, verb: str, data: dict[str, Any]) -> Any: ...

    def dump(self) -> dict[str, Any]: ...

    def load(self, state: dict[str, Any]) -> None: ...


class Journal:
    def __init__(self, editlog: EditLog, checkpoint_every: Callable[[], int] = lambda: 1000) -> None:
        self._editlog = editlog
        self._domains: dict[str, Domain] = {}
        self._since_checkpoint = 0
        self._checkpoint_every = checkpoint_every
        self.replayed = 0
        self.replaying = False  # domains skip live-only side effects (notifications) while True

    def register(self, name: str, domain: Domain) -> None:
        if name in self._domains:
            raise ValueError(f"domain {name!r} registered twice")
        self._domains[name] = domain

    def replay(self) -> None:
        """Load the image into every domain and apply the records after it."""
        loaded = self._editlog.load()
        self.replaying = True
        try:
            if loaded.image_state is not None:
                for name, domain in self._domains.items():
                    if name in loaded.image_state:
                        domain.load(loaded.image_state[name])
            for rec in loaded.tail:
                self._apply(rec.op, rec.data)
        finally:
            self.replaying = False
        self.replayed = len(loaded.tail)
        self._since_checkpoint = len(loaded.tail)
        log.info("replayed image at seq %d and %d records", loaded.image_seq, len(loaded.tail))

    def log(self, op: str, data: dict[str, Any]) -> Any:
        """Persist one change, then apply it; returns what the domain's apply returns."""
        self._editlog.append(op, data)
        result = self._apply(op, data)
        self._since_checkpoint += 1
        every = self._checkpoint_every()
        if every > 0 and self._since_checkpoint >= every:
            self.checkpoint()
        return result

    def checkpoint(self) -> None:
        state = {name: domain.dump() for name, domain in self._domains.items()}
        self._editlog.checkpoint(state, self._editlog.last_seq)
        self._since_checkpoint = 0

    def dump(self) -> dict[str, Any]:
        return {name: domain.dump() for name, domain in self._domains.items()}

    def _apply(self, op: str, data: dict[str, Any]) -> Any:
        name, _, verb = op.partition(".")
        domain = self._domains.get(name)
        if domain is None:
            raise ValueError(f"edit log record for unknown domain {name!r} (op {op!r})")
        return domain.apply(verb, data)

    def close(self) -> None:
        self._editlog.close()
