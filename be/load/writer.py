"""The coordinator's replicated write: each tablet's rows to all its target replicas, quorum counted.

Rows are encoded once per tablet and sent per BE in batches of about ``batch_bytes`` (never one
call per row); a BE's batch is stored atomically, so a replica has taken a tablet's rows only if
every batch that carried them succeeded. The local BE is written directly, without an RPC.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from be.load.router import Router
from common.errors import FailedPrecondition, TabletsimError, Unavailable
from common.gen.tabletsim.v1 import backend_pb2, types_pb2
from common.quorum import check_writable
from common.rowcodec import encode_rows

log = logging.getLogger(__name__)

BATCH_BYTES = 4 * 1024 * 1024
# rows per encoded chunk: bounds a chunk's size so that clones and scans stream in pieces
CHUNK_ROWS = 20_000

Chunk = tuple[int, int, bytes, int]  # tablet_id, partition_id, encoded rows, row count
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


def encode_tablet_rows(router: Router, by_tablet: dict[int, list[tuple]]) -> dict[int, list[Chunk]]:
    """Encode each tablet's rows into chunks (an empty tablet gets one empty chunk)."""
    out: dict[int, list[Chunk]] = {}
    for tablet_id, rows in by_tablet.items():
        partition_id = router.tablets[tablet_id].partition_id
        chunks = [
            (tablet_id, partition_id, encode_rows(rows[i:i + CHUNK_ROWS]), len(rows[i:i + CHUNK_ROWS]))
            for i in range(0, len(rows), CHUNK_ROWS)
        ] or [(tablet_id, partition_id, encode_rows([]), 0)]
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


async def replicate(
    txn_id: int,
    router: Router,
    encoded: dict[int, list[Chunk]],
    send: SendFn,
    *,
    quorum: int,
    batch_bytes: int = BATCH_BYTES,
) -> WriteOutcome:
    """Write every tablet's chunks to its replicas; below quorum on any tablet, raise Unavailable,
    or TooManyVersions when replicas refused only at the ``tablet_max_versions`` limit.

    The replicas are the FE's load targets, the ones that count towards the quorum (common/quorum.py);
    a tablet with fewer of them than ``quorum`` is refused before anything is written.
    """
    for tablet_id in encoded:
        check_writable(tablet_id, len(router.tablets[tablet_id].replicas), router.target.replication_num, quorum)
    per_be: dict[int, tuple[str, list[Chunk]]] = {}
    for tablet_id, chunks in encoded.items():
        for backend_id, address in router.tablets[tablet_id].replicas:
            per_be.setdefault(backend_id, (address, []))[1].extend(chunks)

    async def write_be(backend_id: int, address: str, chunks: list[Chunk]) -> None:
        for batch in _batches(chunks, batch_bytes):
            await send(backend_id, address, txn_id, batch)

    items = list(per_be.items())
    results = await asyncio.gather(*(write_be(be, addr, ch) for be, (addr, ch) in items), return_exceptions=True)
    failed: dict[int, str] = {}
    for (backend_id, _), res in zip(items, results, strict=True):
        if isinstance(res, BaseException):
            if isinstance(res, asyncio.CancelledError):
                raise res
            failed[backend_id] = _describe(res, backend_id)
    infos = []
    short: list[tuple[int, str, bool]] = []  # tablets below quorum: (tablet, facts, version limit only)
    for tablet_id in encoded:
        replicas = router.tablets[tablet_id].replicas
        ok = [be for be, _ in replicas if be not in failed]
        if len(ok) < quorum:
            reasons = "; ".join(f"backend {be}: {failed[be]}" for be, _ in replicas if be in failed)
            limited = sum(1 for be, _ in replicas if be in failed and VERSION_LIMIT.search(failed[be]))
            facts = (f"tablet {tablet_id} reached {len(ok)} of the {quorum} replicas its write quorum needs "
                     f"({len(replicas)} replicas; {reasons})")
            short.append((tablet_id, facts, limited > 0 and len(ok) + limited >= quorum))
            continue
        infos.append(types_pb2.TabletCommitInfo(tablet_id=tablet_id, backend_ids=ok))
    if short:
        _raise_below_quorum(txn_id, short, failed)
    if failed:
        log.warning("txn %d: replicas on backends %s missed the write: %s", txn_id, sorted(failed), failed)
    loaded = sum(c[3] for chunks in encoded.values() for c in chunks)
    return WriteOutcome(infos, loaded, failed)


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
    return backend_pb2.WriteRowsRequest(
        txn_id=txn_id,
        chunks=[backend_pb2.RowsChunk(tablet_id=t, partition_id=p, rows=r, row_count=n) for t, p, r, n in chunks],
    )
