"""The coordinator's replicated write: each tablet's rows to all its target replicas, quorum counted.

Each tablet's rows are encoded once, as columnar segments of at most CHUNK_ROWS rows
(common/columnar.py), and sent per BE in batches of about ``batch_bytes`` (never one
call per row); a BE's batch is stored atomically, so a replica has taken a tablet's rows only if
every batch that carried them succeeded. The local BE is written directly, without an RPC.

A txn's rows may come in pieces (a routine load task writes its Kafka batch chunk by chunk):
:class:`TabletSink` numbers each tablet's chunks across the pieces, so a replica adds them as
segments of one pending rowset and a resent chunk replaces rather than doubles its rows.
:func:`replicate` is the one-piece case.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import grpc
import pyarrow as pa

from be.load.router import Router
from common.columnar import encode_segment
from common.errors import FailedPrecondition, TabletsimError, Unavailable
from common.gen.tabletsim.v1 import backend_pb2, types_pb2
from common.quorum import check_writable
from common.rowcodec import encode_rows

log = logging.getLogger(__name__)

BATCH_BYTES = 4 * 1024 * 1024
# rows per encoded chunk: bounds a chunk's size so that clones and scans stream in pieces
CHUNK_ROWS = 20_000


class Chunk(NamedTuple):
    """A tablet's encoded rows on their way to its replicas."""

    tablet_id: int
    partition_id: int
    rows: bytes
    row_count: int
    seq: int | None = None
    """Position in the txn's pending rowset of the tablet, set by :class:`TabletSink` (None: appended)."""


SendFn = Callable[[int, str, int, list[Chunk]], Awaitable[None]]

# a replica's refusal at the tablet_max_versions limit (StarRocks' message shape)
VERSION_LIMIT = re.compile(r"Too many versions\. tablet_id: (\d+), version_count: \d+, limit: \d+")


class TooManyVersions(FailedPrecondition):
    """A tablet missed its write quorum only because replicas hold ``tablet_max_versions`` rowsets.

    Transient: compaction lowers the version count, so a later retry may succeed. The message
    starts with the replica's own "Too many versions. tablet_id: T, version_count: N, limit: L".
    """

    retriable = True


@dataclass
class WriteOutcome:
    commit_infos: list[types_pb2.TabletCommitInfo]
    loaded_rows: int
    failed_backends: dict[int, str] = field(default_factory=dict)


def encode_tablet_tables(router: Router, by_tablet: dict[int, pa.Table]) -> dict[int, list[Chunk]]:
    """Encode each tablet's table into columnar segments of at most CHUNK_ROWS rows (an empty
    tablet gets one empty segment)."""
    out: dict[int, list[Chunk]] = {}
    for tablet_id, table in by_tablet.items():
        partition_id = router.tablets[tablet_id].partition_id
        n = table.num_rows
        out[tablet_id] = [
            Chunk(tablet_id, partition_id, encode_segment(table.slice(i, CHUNK_ROWS)), min(CHUNK_ROWS, n - i))
            for i in range(0, n, CHUNK_ROWS)
        ] or [Chunk(tablet_id, partition_id, encode_segment(table), 0)]
    return out


def encode_tablet_rows(router: Router, by_tablet: dict[int, list[tuple]]) -> dict[int, list[Chunk]]:
    """Encode each tablet's rows into marshal-row chunks (an empty tablet gets one empty chunk): the
    row-at-a-time reference, for the benchmark's lean baseline and tests that write rows by hand;
    loads write :func:`encode_tablet_tables`."""
    out: dict[int, list[Chunk]] = {}
    for tablet_id, rows in by_tablet.items():
        partition_id = router.tablets[tablet_id].partition_id
        chunks = [
            Chunk(tablet_id, partition_id, encode_rows(rows[i:i + CHUNK_ROWS]), len(rows[i:i + CHUNK_ROWS]))
            for i in range(0, len(rows), CHUNK_ROWS)
        ] or [Chunk(tablet_id, partition_id, encode_rows([]), 0)]
        out[tablet_id] = chunks
    return out


def _batches(chunks: list[Chunk], batch_bytes: int) -> list[list[Chunk]]:
    batches: list[list[Chunk]] = [[]]
    size = 0
    for c in chunks:
        if batches[-1] and size + len(c[2]) > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(c)
        size += len(c[2])
    return batches


class TabletSink:
    """One txn's replicated write, fed piece by piece (StarRocks' OlapTableSink and its delta writers).

    Each :meth:`write` sends a piece of the txn's rows to the replicas of their tablets. Every
    chunk carries its position in its tablet's pending rowset, so a replica adds the pieces as
    segments of one rowset, and a chunk sent again replaces the one at its position. A tablet's
    first chunk opens its rowset even when empty (every tablet of a touched partition takes part
    in the txn); later empty chunks are not sent. A replica whose write fails has missed the txn:
    nothing more goes to its BE, and it is left out of the commit infos. As soon as a tablet is
    below quorum, :meth:`write` raises Unavailable, or TooManyVersions when only replicas at the
    ``tablet_max_versions`` limit stood in the way; :meth:`close` gives the commit infos.

    The replicas are the FE's load targets, the ones that count towards the quorum
    (common/quorum.py); a tablet with fewer of them than ``quorum`` is refused before anything
    is written to it.
    """

    def __init__(self, txn_id: int, router: Router, send: SendFn, *, quorum: int,
                 batch_bytes: int = BATCH_BYTES) -> None:
        self.txn_id = txn_id
        self._router = router
        self._send = send
        self._quorum = quorum
        self._batch_bytes = batch_bytes
        self._next_seq: dict[int, int] = {}  # tablet -> position of its next chunk; keys: the tablets written
        self.failed: dict[int, str] = {}
        """backend id -> why its write failed (it missed the txn)."""
        self.loaded_rows = 0

    async def write(self, encoded: dict[int, list[Chunk]]) -> None:
        router = self._router
        for tablet_id in encoded:
            if tablet_id not in self._next_seq:
                check_writable(tablet_id, len(router.tablets[tablet_id].replicas), router.target.replication_num,
                               self._quorum)
        per_be: dict[int, tuple[str, list[Chunk]]] = {}
        for tablet_id, chunks in encoded.items():
            seq = self._next_seq.get(tablet_id, 0)
            placed = []
            for c in chunks:
                if c.row_count or seq == 0:
                    placed.append(c._replace(seq=seq))
                    seq += 1
            self._next_seq[tablet_id] = seq
            self.loaded_rows += sum(c.row_count for c in placed)
            for backend_id, address in router.tablets[tablet_id].replicas:
                if placed and backend_id not in self.failed:
                    per_be.setdefault(backend_id, (address, []))[1].extend(placed)

        async def write_be(backend_id: int, address: str, chunks: list[Chunk]) -> None:
            for batch in _batches(chunks, self._batch_bytes):
                await self._send(backend_id, address, self.txn_id, batch)

        items = list(per_be.items())
        results = await asyncio.gather(*(write_be(be, addr, ch) for be, (addr, ch) in items),
                                       return_exceptions=True)
        for (backend_id, _), res in zip(items, results, strict=True):
            if isinstance(res, BaseException):
                if isinstance(res, asyncio.CancelledError):
                    raise res
                self.failed[backend_id] = _describe(res, backend_id)
        short: list[tuple[int, str, bool]] = []  # tablets below quorum: (tablet, facts, version limit only)
        for tablet_id in self._next_seq:
            replicas = router.tablets[tablet_id].replicas
            ok = [be for be, _ in replicas if be not in self.failed]
            if len(ok) < self._quorum:
                reasons = "; ".join(f"backend {be}: {self.failed[be]}" for be, _ in replicas if be in self.failed)
                limited = sum(1 for be, _ in replicas if be in self.failed and VERSION_LIMIT.search(self.failed[be]))
                facts = (f"tablet {tablet_id} reached {len(ok)} of the {self._quorum} replicas its write quorum "
                         f"needs ({len(replicas)} replicas; {reasons})")
                short.append((tablet_id, facts, limited > 0 and len(ok) + limited >= self._quorum))
        if short:
            _raise_below_quorum(self.txn_id, short, self.failed)

    def close(self) -> WriteOutcome:
        """The commit infos: each tablet written, with the replicas that took every chunk of it."""
        infos = [types_pb2.TabletCommitInfo(tablet_id=tablet_id, backend_ids=[
                     be for be, _ in self._router.tablets[tablet_id].replicas if be not in self.failed])
                 for tablet_id in self._next_seq]
        if self.failed:
            log.warning("txn %d: replicas on backends %s missed the write: %s", self.txn_id, sorted(self.failed),
                        self.failed)
        return WriteOutcome(infos, self.loaded_rows, dict(self.failed))


async def replicate(
    txn_id: int,
    router: Router,
    encoded: dict[int, list[Chunk]],
    send: SendFn,
    *,
    quorum: int,
    batch_bytes: int = BATCH_BYTES,
) -> WriteOutcome:
    """Write every tablet's chunks to its replicas in one piece (see :class:`TabletSink`); below
    quorum on any tablet, raise Unavailable, or TooManyVersions when replicas refused only at the
    ``tablet_max_versions`` limit."""
    sink = TabletSink(txn_id, router, send, quorum=quorum, batch_bytes=batch_bytes)
    await sink.write(encoded)
    return sink.close()


def _raise_below_quorum(txn_id: int, short: list[tuple[int, str, bool]], failed: dict[int, str]) -> None:
    """Raise for the tablets below quorum: TooManyVersions when every one of them would have
    reached it but for replicas at the version limit, else Unavailable (too few replicas)."""
    for _tablet, facts, limited in short:
        if not limited:
            raise Unavailable(facts)
    refusals = [m for why in failed.values() if (m := VERSION_LIMIT.search(why))]
    tablets = {tablet_id for tablet_id, _, _ in short}
    # lead with a refusal naming a tablet below quorum (a BE's batch fails as a whole)
    refusal = next((m for m in refusals if int(m.group(1)) in tablets), refusals[0])
    facts = next((f for t, f, _ in short if t == int(refusal.group(1))), short[0][1])
    log.info("txn %d: %d tablets below quorum at the version limit: %s", txn_id, len(short), refusal.group(0))
    raise TooManyVersions(f"{refusal.group(0)}; {facts}")


def _describe(exc: BaseException, backend_id: int) -> str:
    """One line for the quorum message; a peer's own "backend <id>: " prefix is not repeated."""
    if isinstance(exc, grpc.aio.AioRpcError):
        code, details = exc.code().name, exc.details() or ""
    elif isinstance(exc, TabletsimError):
        code, details = exc.code.name, str(exc)
    else:
        return f"{type(exc).__name__}: {exc}"
    return f"{code} {details.removeprefix(f'backend {backend_id}: ')}"


def rows_request(txn_id: int, chunks: list[Chunk]) -> backend_pb2.WriteRowsRequest:
    req = backend_pb2.WriteRowsRequest(txn_id=txn_id)
    for c in chunks:
        rc = req.chunks.add(tablet_id=c.tablet_id, partition_id=c.partition_id, rows=c.rows, row_count=c.row_count)
        if c.seq is not None:
            rc.seq = c.seq
    return req
