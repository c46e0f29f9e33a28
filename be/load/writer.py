"""The coordinator's replicated write: each tablet's rows to all its replicas, quorum counted.

Rows are encoded once per tablet and sent per BE in batches of about ``batch_bytes`` (never one
call per row); a BE's batch is stored atomically, so a replica has taken a tablet's rows only if
every batch that carried them succeeded. The local BE is written directly, without an RPC.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from be.load.router import Router
from common.errors import Unavailable
from common.gen.tabletsim.v1 import backend_pb2, types_pb2
from common.rowcodec import encode_rows

log = logging.getLogger(__name__)

BATCH_BYTES = 4 * 1024 * 1024
# rows per encoded chunk: bounds a chunk's size so that clones and scans stream in pieces
CHUNK_ROWS = 20_000

Chunk = tuple[int, int, bytes, int]  # tablet_id, partition_id, encoded rows, row count
SendFn = Callable[[int, str, int, list[Chunk]], Awaitable[None]]


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
    """Write every tablet's chunks to its replicas; raise Unavailable below quorum on any tablet."""
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
            failed[backend_id] = _describe(res)
    infos = []
    for tablet_id in encoded:
        replicas = router.tablets[tablet_id].replicas
        ok = [be for be, _ in replicas if be not in failed]
        if len(ok) < quorum:
            reasons = "; ".join(f"backend {be}: {failed[be]}" for be, _ in replicas if be in failed)
            raise Unavailable(
                f"tablet {tablet_id} reached {len(ok)} of the {quorum} replicas its write quorum needs "
                f"({len(replicas)} replicas; {reasons})"
            )
        infos.append(types_pb2.TabletCommitInfo(tablet_id=tablet_id, backend_ids=ok))
    if failed:
        log.warning("txn %d: replicas on backends %s missed the write: %s", txn_id, sorted(failed), failed)
    loaded = sum(c[3] for chunks in encoded.values() for c in chunks)
    return WriteOutcome(infos, loaded, failed)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name} {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


def rows_request(txn_id: int, chunks: list[Chunk]) -> backend_pb2.WriteRowsRequest:
    return backend_pb2.WriteRowsRequest(
        txn_id=txn_id,
        chunks=[backend_pb2.RowsChunk(tablet_id=t, partition_id=p, rows=r, row_count=n) for t, p, r, n in chunks],
    )
