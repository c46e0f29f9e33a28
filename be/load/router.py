"""Routing rows to tablets: partition by range, then bucket by the hash of the distribution columns.

Every tablet of a partition that receives at least one row takes part in the txn (an empty
rowset for the ones that got none), so all tablets of a partition advance version together.

:meth:`Router.route_table` is the load path: it routes a whole Arrow table at once (a search over
the partition bounds and a 64-bit hash of the distribution columns, both on whole columns) and
splits it into one table per tablet. :meth:`Router.route` is the row-at-a-time reference kept for
the benchmark's lean baseline and for tests that build rows by hand: it assigns the same
partitions and rejects the same rows, but buckets by crc32 of the values' text, so the two must
not both write to one table.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import zlib
from dataclasses import dataclass, field

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from common import columnar
from common.coltypes import INTEGER_RANGES, Column
from common.gen.tabletsim.v1 import types_pb2

HASH_SEED = 0x7AB1E7
"""Seed of the 64-bit row hash that picks a row's bucket (:meth:`Router.route_table`)."""


@dataclass(frozen=True)
class TabletTarget:
    tablet_id: int
    partition_id: int
    replicas: tuple[tuple[int, str], ...]  # (backend_id, address)


@dataclass
class Rejected:
    """Rows no partition takes: all of them counted, the first few kept as samples."""

    count: int = 0
    samples: list[tuple[str, str]] = field(default_factory=list)
    """``(row text, reason)``: the row as the row API shows it, truncated to 200 characters."""


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
        self.schema = columnar.arrow_schema(columns)
        """The Arrow schema of the load's tables (and of the segments written)."""
        self._part_idx: int | None = None
        self._part_kind = ""
        self._part_name = ""
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
            self._part_kind = kind
            self._part_name = target.partition_column
        else:
            p = target.partitions[0]
            self._partition_ids = [p.partition_id]
            self._buckets = [[t.tablet_id for t in p.tablets]]
        # the tablets of every partition in one list: partition i's bucket b is _flat[_first[i] + b]
        self._flat = [t for ids in self._buckets for t in ids]
        self._first = [0]
        for ids in self._buckets[:-1]:
            self._first.append(self._first[-1] + len(ids))
        self._nbuckets = [len(ids) for ids in self._buckets]

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
        """``({tablet_id: rows}, [(row, reason)])``; every tablet of a touched partition is a key.
        The row-at-a-time reference (crc32 buckets, see the module docstring); loads use
        :meth:`route_table`."""
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

    # ------------------------------------------------------------------ whole tables
    def route_table(self, table: pa.Table, max_samples: int = 20) -> tuple[dict[int, pa.Table], Rejected]:
        """``({tablet_id: rows of the tablet}, rejected)`` for a table of :attr:`schema`, computed
        on whole columns; every tablet of a touched partition is a key (an empty table for one
        that got no row), and each tablet's rows keep their input order.

        The partition of each row follows :meth:`_partition_index` (a search over the sorted upper
        bounds, NULL to the lowest partition when it is unbounded below, a value in no range
        rejected with the same reason text). The bucket is a 64-bit polars hash of the
        distribution columns (``DataFrame.hash_rows`` with :data:`HASH_SEED`) modulo the
        partition's bucket count. That hash is stable within one polars version only, which every
        process of a cluster shares (one environment); it depends on the values, not on their
        integer width or the table's chunking, so a value always goes to the same bucket.
        """
        n = table.num_rows
        rejected = Rejected()
        if n == 0:
            return {}, rejected
        pidx = self._partition_indices(table)  # None: every row in partition 0
        h = pl.DataFrame([pl.Series(f"d{k}", table.column(i)) for k, i in enumerate(self._dist_idx)]) \
            .hash_rows(seed=HASH_SEED)
        if pidx is None:
            tidx = (h % self._nbuckets[0]).cast(pl.Int32)
            touched = [0]
        else:
            if len(set(self._nbuckets)) == 1:
                tidx = (pidx * self._nbuckets[0] + (h % self._nbuckets[0]).cast(pl.Int32)).cast(pl.Int32)
            else:
                first = pl.Series(self._first, dtype=pl.Int32).gather(pidx)
                nb = pl.Series(self._nbuckets, dtype=pl.UInt64).gather(pidx)
                tidx = (first + (h % nb).cast(pl.Int32)).cast(pl.Int32)
            rejected.count = pidx.null_count()
            if rejected.count:
                self._sample_rejects(table, pidx, max_samples, rejected)
            touched = pidx.drop_nulls().unique().sort().to_list()
        keys = tidx.to_arrow()
        counts = [0] * len(self._flat)
        for t, c in zip(*(v.to_pylist() for v in pc.value_counts(keys).drop_null().flatten()), strict=True):
            if t is not None:
                counts[t] = c
        kept = n - rejected.count
        if max(counts) == n:
            ordered = table  # every row to one tablet: no copy
        else:
            order = pc.sort_indices(keys)  # stable, nulls last: input order within a tablet
            ordered = table.take(order.slice(0, kept) if rejected.count else order)
        starts = [0] * len(self._flat)
        acc = 0
        for t, c in enumerate(counts):
            starts[t] = acc
            acc += c
        out: dict[int, pa.Table] = {}
        for pi in touched:
            for b, tablet_id in enumerate(self._buckets[pi]):
                t = self._first[pi] + b
                out[tablet_id] = ordered.slice(starts[t], counts[t])
        return out, rejected

    def _partition_indices(self, table: pa.Table) -> pl.Series | None:
        """Each row's partition (its index in bound order), null for a row no partition takes;
        None when the table is not partitioned."""
        if self._part_idx is None:
            return None
        values = self._comparable(table.column(self._part_idx))
        uppers = self._bounds_series([u for u in self._uppers if u is not None], values.dtype)
        lowers = self._bounds_series(self._lowers, values.dtype)
        last = len(self._uppers) - 1
        i = uppers.search_sorted(values, side="right").cast(pl.Int32)
        frame = pl.DataFrame({"v": values, "i": i})
        lower = pl.Series("lower", lowers).gather(frame["i"].clip(0, last))
        null_ok = self._lowers[0] is None
        return frame.with_columns(lower=lower).select(
            pl.when(pl.col("v").is_null())
            .then(pl.lit(0 if null_ok else None, dtype=pl.Int32))
            .when((pl.col("i") > last) | (pl.col("lower").is_not_null() & (pl.col("v") < pl.col("lower"))))
            .then(pl.lit(None, dtype=pl.Int32))
            .otherwise(pl.col("i"))
        ).to_series()

    def _comparable(self, column: pa.ChunkedArray) -> pl.Series:
        """The partition column as polars values ordered as :meth:`_partition_index` orders them:
        integers as numbers (LARGEINT, stored as text, as Int128), DATE and DATETIME as their
        native types (the FE stores bounds as canonical text, whose order is the dates' order)."""
        s = pl.Series("v", column)
        if self._part_kind == "LARGEINT":
            return s.cast(pl.Int128)
        if self._part_kind in INTEGER_RANGES:
            return s.cast(pl.Int64)
        return s

    def _bounds_series(self, bounds: list, dtype: pl.DataType) -> pl.Series:
        if self._part_kind == "DATE":
            values = [None if b is None else _dt.date.fromisoformat(b) for b in bounds]
        elif self._part_kind == "DATETIME":
            values = [None if b is None else _dt.datetime.fromisoformat(b) for b in bounds]
        else:
            values = bounds
        if dtype == pl.Int128:
            return pl.Series(values, dtype=pl.Int128)
        return pl.Series(values).cast(dtype)

    def _sample_rejects(self, table: pa.Table, pidx: pl.Series, max_samples: int, rejected: Rejected) -> None:
        if max_samples <= 0:
            return
        where = pidx.is_null().arg_true().head(max_samples).to_arrow()
        part = self._part_idx
        for row in columnar.rows_of(table.take(where)):
            rejected.samples.append((repr(row)[:200], f"no partition for {self._part_name} = {row[part]!r}"))


def columns_of(target: types_pb2.LoadTarget) -> list[Column]:
    return [Column.from_dict(c) for c in orjson.loads(target.columns_json)]
