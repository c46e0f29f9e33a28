"""Query on the FE: check the request, scan one readable replica per tablet, merge the answers.

A row read sends the predicates, the projection and the limit to the BEs; each BE filters its
tablets' segments on whole columns and answers the count of matching rows and at most ``limit``
of them as one columnar segment of the projected columns (be/storage/scan.py). A BE of an older
version answers marshal rows of every column instead: both decode here.

An aggregate read (``aggregates`` and/or ``group_by``) gets partial aggregates per group from
every BE (common/aggregates.py) and merges them into one row per group, ordered by the group
value with the NULL group first. Values are text, as rows are (:func:`text`): a sum of integers
is an exact integer, a sum of DECIMAL(p,s) a decimal with scale s, of FLOAT/DOUBLE a float; avg is
a float for integer and float columns and, for DECIMAL(p,s), a decimal with scale s+4 (MySQL's
div_precision_increment; StarRocks also divides decimals exactly), rounded half up; count(col)
counts the non-NULL values; an aggregate over no value is NULL (count: 0).
"""

from __future__ import annotations

import asyncio
import decimal
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import pyarrow as pa

from common.aggregates import GROUP, AggregatePlan, plan_aggregates
from common.columnar import column_values, decode_segment, is_columnar, segment_to_rows
from common.errors import FailedPrecondition, InvalidArgument
from common.gen.tabletsim.v1 import admin_pb2, backend_pb2
from common.rowcodec import decode_rows
from fe.catalog.model import Table

DEFAULT_QUERY_LIMIT = 100
SCAN_TIMEOUT_S = 60.0
AVG_EXTRA_SCALE = 4
"""avg(DECIMAL(p,s)) has scale s + this (MySQL's div_precision_increment)."""
_AVG_CONTEXT = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_UP)

ReadPlan = dict[int, list[tuple[int, int]]]
"""backend id -> [(tablet id, version)] it is asked to read."""


def text(value: object) -> str:
    """A value of the row API (common/columnar.py) as Query shows it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class QuerySpec:
    """A QueryRequest checked against its table."""

    names: list[str]  # the table's columns
    projection: list[int]  # row reads: the columns shown, as indexes into names
    limit: int | None  # rows (or groups) shown at most; None: every group
    plan: AggregatePlan | None  # aggregate reads

    @property
    def column_names(self) -> list[str]:
        return self.plan.headers if self.plan else [self.names[i] for i in self.projection]


def parse_query(request: admin_pb2.QueryRequest, table: Table) -> QuerySpec:
    """InvalidArgument names what is wrong and what is allowed."""
    names = [c.name for c in table.columns]
    limit = request.limit if request.HasField("limit") else None
    if limit is not None and limit < 0:
        raise InvalidArgument(f"invalid limit {limit}: must be >= 0")
    if request.aggregates or request.group_by:
        if request.columns:
            raise InvalidArgument(
                f"columns {list(request.columns)} cannot be combined with aggregates or group_by: an aggregate "
                "query's columns are its group_by column and its aggregates; leave columns empty")
        plan = plan_aggregates([(a.func, a.column) for a in request.aggregates], request.group_by, table.columns)
        return QuerySpec(names, [], limit, plan)
    projection = list(range(len(names)))
    if request.columns:
        lower = [n.lower() for n in names]
        try:
            projection = [lower.index(c.lower()) for c in request.columns]
        except ValueError:
            raise InvalidArgument(
                f"unknown column in {list(request.columns)}; columns: {', '.join(names)}") from None
    return QuerySpec(names, projection, DEFAULT_QUERY_LIMIT if limit is None else limit, None)


def scan_request(request: admin_pb2.QueryRequest, spec: QuerySpec,
                 tablets: list[tuple[int, int]]) -> backend_pb2.ScanTabletsRequest:
    req = backend_pb2.ScanTabletsRequest(
        tablets=[backend_pb2.ScanTablet(tablet_id=t, version=v) for t, v in tablets],
        predicates=request.predicates, columnar=True)
    if spec.plan is not None:
        req.aggregates.extend(request.aggregates)
        req.group_by = request.group_by
    else:
        req.limit = spec.limit or 0
        req.columns.extend(spec.names[i] for i in spec.projection)
    return req


# ---------------------------------------------------------------- merging the BEs' answers


def merge_rows(answers: list[backend_pb2.ScanTabletsResponse], spec: QuerySpec,
               read_from: list[str]) -> admin_pb2.QueryResponse:
    """The total count and at most ``limit`` rows as text."""
    out = admin_pb2.QueryResponse(count=sum(a.count for a in answers), column_names=spec.column_names,
                                  read_from=read_from)
    add = out.rows.add
    left = spec.limit or 0
    for answer in answers:
        if left <= 0:
            break
        if is_columnar(answer.rows):  # projected by the BE
            rows = segment_to_rows(answer.rows)[:left]
            for row in rows:
                add(values=[text(v) for v in row])
        else:  # a BE of an older version: marshal rows of every column
            rows = decode_rows(answer.rows)[:left]
            for row in rows:
                add(values=[text(row[i]) for i in spec.projection])
        left -= len(rows)
    return out


def merge_aggregates(answers: list[tuple[int, backend_pb2.ScanTabletsResponse]], spec: QuerySpec,
                     read_from: list[str]) -> admin_pb2.QueryResponse:
    """The BEs' partial aggregates merged: one row of text per group."""
    plan = spec.plan
    assert plan is not None
    partials = []
    for be_id, answer in answers:
        if not answer.aggregated:
            raise FailedPrecondition(
                f"backend {be_id} answered rows, not aggregates: it runs an older version that cannot aggregate; "
                "upgrade it, or query without aggregates and group_by")
        partials.append(decode_segment(answer.partials))
    out = admin_pb2.QueryResponse(count=sum(a.count for _, a in answers), column_names=plan.headers,
                                  read_from=read_from)
    for row in final_rows(plan, plan.merge(partials), spec.limit):
        out.rows.add(values=row)
    return out


def final_rows(plan: AggregatePlan, merged: pa.Table, limit: int | None = None) -> list[list[str]]:
    """A merged partial table (common/aggregates.py) as result rows of text, ordered by group."""
    if plan.group_by is not None:
        merged = merged.sort_by([(GROUP, "ascending", "at_start")])
    if limit is not None:
        merged = merged.slice(0, limit)
    columns: list[list[str]] = []
    if plan.group_by is not None:
        columns.append([text(v) for v in column_values(merged.column(GROUP))])
    for i, a in enumerate(plan.aggregates):
        parts = [merged.column(name) for name in a.parts(i)]
        if a.func == "avg":
            columns.append([text(v) for v in _averages(plan, i, parts[0], parts[1])])
        else:
            columns.append([text(v) for v in column_values(parts[0])])
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def _averages(plan: AggregatePlan, i: int, sums: pa.ChunkedArray, counts: pa.ChunkedArray) -> list[object]:
    col = plan.aggregates[i].column
    assert col is not None
    kind = col.type.kind
    out: list[object] = []
    if kind == "DECIMAL":
        quantum = decimal.Decimal(1).scaleb(-((col.type.scale or 0) + AVG_EXTRA_SCALE))
        for s, n in zip(sums.to_pylist(), counts.to_pylist(), strict=True):
            out.append(None if not n else format(_AVG_CONTEXT.divide(s, n).quantize(quantum, context=_AVG_CONTEXT), "f"))
    elif kind in ("FLOAT", "DOUBLE"):
        out = [None if not n else s / n for s, n in zip(sums.to_pylist(), counts.to_pylist(), strict=True)]
    else:  # integers, summed exactly: int / int is the correctly rounded float
        out = [None if not n else int(s) / n for s, n in zip(sums.to_pylist(), counts.to_pylist(), strict=True)]
    return out


# ---------------------------------------------------------------- the read


async def run_query(request: admin_pb2.QueryRequest, table: Table, read_plan: Callable[[set[int]], ReadPlan],
                    scan: Callable[[int, backend_pb2.ScanTabletsRequest], Awaitable[backend_pb2.ScanTabletsResponse]],
                    ) -> admin_pb2.QueryResponse:
    """Answer a Query: ``read_plan(excluded)`` picks a readable replica per tablet on BEs not in
    ``excluded``; ``scan(be, request)`` is ScanTablets on a BE. A BE that turns out unreachable
    has its tablets read elsewhere (three rounds at most)."""
    spec = parse_query(request, table)
    excluded: set[int] = set()
    for _attempt in range(3):  # a BE that dies before the FE notices: read its tablets elsewhere
        plan = read_plan(excluded)
        answers = await asyncio.gather(*(scan(be, scan_request(request, spec, ts)) for be, ts in plan.items()),
                                       return_exceptions=True)
        failed = {be for be, a in zip(plan, answers, strict=True)
                  if isinstance(a, grpc.aio.AioRpcError) and a.code() in (
                      grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)}
        if not failed:
            break
        excluded |= failed
    for a in answers:
        if isinstance(a, BaseException):
            raise a
    read_from = list(itertools.islice((f"tablet {t} @ version {v} from backend {be}"
                                       for be, ts in sorted(plan.items()) for t, v in ts), 50))
    # decoding and converting a million rows takes seconds: in a worker thread, off the FE loop
    if spec.plan is not None:
        return await asyncio.to_thread(merge_aggregates, list(zip(plan, answers, strict=True)), spec, read_from)
    return await asyncio.to_thread(merge_rows, list(answers), spec, read_from)
