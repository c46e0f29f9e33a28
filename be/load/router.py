"""Routing rows to tablets: partition by range, then bucket by the hash of the distribution columns.

Every tablet of a partition that receives at least one row takes part in the txn (an empty
rowset for the ones that got none), so all tablets of a partition advance version together.
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass

import orjson

from common.coltypes import INTEGER_RANGES, Column
from common.gen.tabletsim.v1 import types_pb2


@dataclass(frozen=True)
class TabletTarget:
    tablet_id: int
    partition_id: int
    replicas: tuple[tuple[int, str], ...]  # (backend_id, address)


def bucket_of(values: tuple) -> int:
    """Stable hash of distribution values (the same on every BE and across restarts)."""
    if len(values) == 1:
        v = values[0]
        return zlib.crc32(b"\\N" if v is None else str(v).encode())
    return zlib.crc32(b"\x1f".join(b"\\N" if v is None else str(v).encode() for v in values))


class Router:
    def __init__(self, target: types_pb2.LoadTarget, columns: list[Column]) -> None:
        self.target = target
        names = [c.name.lower() for c in columns]
        self._dist_idx = [names.index(d.lower()) for d in target.distribution_columns]
        self.tablets: dict[int, TabletTarget] = {}
        self.partition_tablets: dict[int, list[int]] = {}
        self._partition_ids: list[int] = []
        self._buckets: list[list[int]] = []
        for p in target.partitions:
            ids = [t.tablet_id for t in p.tablets]
            self.partition_tablets[p.partition_id] = ids
            for t in p.tablets:
                self.tablets[t.tablet_id] = TabletTarget(
                    t.tablet_id, p.partition_id, tuple((r.backend_id, r.address) for r in t.replicas)
                )
        self._part_idx: int | None = None
        self._uppers: list = []
        self._lowers: list = []
        if target.partition_column:
            self._part_idx = names.index(target.partition_column.lower())
            kind = columns[self._part_idx].type.kind
            conv = int if kind in INTEGER_RANGES else str
            ordered = sorted(target.partitions, key=lambda p: (p.HasField("upper") is False,
                                                               conv(p.upper) if p.HasField("upper") else 0))
            for p in ordered:
                self._uppers.append(conv(p.upper) if p.HasField("upper") else None)
                self._lowers.append(conv(p.lower) if p.HasField("lower") else None)
                self._partition_ids.append(p.partition_id)
                self._buckets.append([t.tablet_id for t in p.tablets])
        else:
            p = target.partitions[0]
            self._partition_ids = [p.partition_id]
            self._buckets = [[t.tablet_id for t in p.tablets]]

    def _partition_index(self, value) -> int | None:
        if self._part_idx is None:
            return 0
        if value is None:
            return 0 if self._lowers and self._lowers[0] is None else None  # NULL goes to the lowest
        bounded = [u for u in self._uppers if u is not None]
        i = bisect.bisect_right(bounded, value)
        if i >= len(self._uppers):
            return None
        lower = self._lowers[i]
        if lower is not None and value < lower:
            return None
        return i

    def route(self, rows: list[tuple]) -> tuple[dict[int, list[tuple]], list[tuple[tuple, str]]]:
        """``({tablet_id: rows}, [(row, reason)])``; every tablet of a touched partition is a key."""
        out: dict[int, list[tuple]] = {}
        rejected: list[tuple[tuple, str]] = []
        dist = self._dist_idx
        single = dist[0] if len(dist) == 1 else None
        touched: set[int] = set()
        if self._part_idx is None:
            tablets = self._buckets[0]
            n = len(tablets)
            buckets: list[list[tuple]] = [[] for _ in range(n)]
            crc32 = zlib.crc32
            for row in rows:
                if single is not None:
                    v = row[single]
                    h = crc32(b"\\N" if v is None else str(v).encode())
                else:
                    h = bucket_of(tuple(row[i] for i in dist))
                buckets[h % n].append(row)
            if rows:
                out = dict(zip(tablets, buckets, strict=True))
            return out, rejected
        for row in rows:
            pi = self._partition_index(row[self._part_idx])
            if pi is None:
                rejected.append((row, f"no partition for {self.target.partition_column} = {row[self._part_idx]!r}"))
                continue
            tablets = self._buckets[pi]
            h = bucket_of(tuple(row[i] for i in dist))
            out.setdefault(tablets[h % len(tablets)], []).append(row)
            touched.add(pi)
        for pi in touched:
            for tablet_id in self._buckets[pi]:
                out.setdefault(tablet_id, [])
        return out, rejected


def columns_of(target: types_pb2.LoadTarget) -> list[Column]:
    return [Column.from_dict(c) for c in orjson.loads(target.columns_json)]
