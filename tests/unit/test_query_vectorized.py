"""Query on whole columns (issue 14 item 3): the vectorized predicates against the row-at-a-time
test on random rows with NULLs, in both segment formats; projection and limit; partial aggregates
split over segments and BEs, merged and rendered, against a plain Python reference; the FE's
decoding of old (marshal) and new (columnar) answers; the InvalidArgument messages (no processes)."""

from __future__ import annotations

import decimal
import random
from collections import defaultdict

import orjson
import pytest

from be.storage.scan import TabletScan, compile_predicates
from common.aggregates import plan_aggregates
from common.coltypes import Column, parse_type
from common.columnar import arrow_schema, decode_segment, encode_segment, segment_to_rows, table_from_rows
from common.errors import FailedPrecondition, InvalidArgument
from common.gen.tabletsim.v1 import admin_pb2, backend_pb2, types_pb2
from common.rowcodec import decode_rows, encode_rows
from fe.catalog.model import Table, WriteQuorum
from fe.service.query import final_rows, merge_aggregates, merge_rows, parse_query, text

COLUMNS = [
    Column("id", parse_type("BIGINT"), nullable=False),
    Column("i", parse_type("INT")),
    Column("big", parse_type("LARGEINT")),
    Column("d", parse_type("DOUBLE")),
    Column("dec", parse_type("DECIMAL(10,2)")),
    Column("s", parse_type("VARCHAR(16)")),
    Column("dt", parse_type("DATE")),
    Column("ts", parse_type("DATETIME")),
    Column("b", parse_type("BOOLEAN")),
]
SCHEMA_JSON = orjson.dumps([c.to_dict() for c in COLUMNS]).decode()
SCHEMA = arrow_schema(COLUMNS)
NAMES = [c.name for c in COLUMNS]

# small domains, so that equality and IN predicates match some rows
DOMAINS = {
    "i": [-5, 0, 3, 7, 1000],
    "big": [-(2**100), -1, 0, 12, 2**100, 2**126],
    "d": [-1.5, 0.0, 0.25, 2.75, 1e9],
    "dec": ["-10.50", "-0.25", "0.00", "9.00", "10.50", "99999999.99"],
    "s": ["", "a", "ab", "b", "zz", "é"],
    "dt": ["1999-12-31", "2024-01-01", "2024-02-29", "2024-10-01"],
    "ts": ["2024-01-01 00:00:00", "2024-01-01 00:00:59", "2024-05-01 12:30:00"],
    "b": [True, False],
}


def random_rows(rnd: random.Random, n: int) -> list[tuple]:
    rows = []
    for k in range(n):
        row = [k]
        for c in COLUMNS[1:]:
            row.append(None if rnd.random() < 0.2 else rnd.choice(DOMAINS[c.name]))
        rows.append(tuple(row))
    return rows


def segments(rows: list[tuple], rnd: random.Random, fmt: str) -> list[bytes]:
    """The rows cut into segments of random sizes, in ``fmt`` ('rows', 'columnar' or 'mixed')."""
    out, start = [], 0
    while start < len(rows):
        n = rnd.randint(1, 40)
        part = rows[start:start + n]
        columnar = fmt == "columnar" or (fmt == "mixed" and rnd.random() < 0.5)
        out.append(encode_segment(table_from_rows(part, SCHEMA)) if columnar else encode_rows(part))
        start += n
    return out


def as_text(value: object) -> str:
    """A stored value as a predicate's value text."""
    return text(value) if not isinstance(value, float) else repr(value)


def random_predicate(rnd: random.Random) -> types_pb2.Predicate:
    col = rnd.choice(COLUMNS[1:]).name
    op = rnd.choice(["=", "!=", "<>", "<", "<=", ">", ">=", "IN", "IS NULL", "IS NOT NULL", "in", "is  not null"])
    if op.upper() == "IN":
        return types_pb2.Predicate(column=col, op=op,
                                   values=[as_text(v) for v in rnd.sample(DOMAINS[col], rnd.randint(0, 2))])
    if "NULL" in op.upper():
        return types_pb2.Predicate(column=col.upper(), op=op)
    return types_pb2.Predicate(column=col, op=op, value=as_text(rnd.choice(DOMAINS[col])))


def scan(payloads: list[bytes], predicates=(), limit: int = 10**9, **kw):
    read = TabletScan(list(predicates), limit, **kw)
    for p in payloads:
        read.add(p, SCHEMA_JSON)
    return read.finish()


# ---------------------------------------------------------------- predicates


@pytest.mark.parametrize("fmt", ["rows", "columnar", "mixed"])
def test_vectorized_predicates_match_the_row_at_a_time_test_on_random_rows(fmt):
    rnd = random.Random(f"predicates-{fmt}")
    rows = random_rows(rnd, 400)
    payloads = segments(rows, rnd, fmt)
    for _ in range(150):
        preds = [random_predicate(rnd) for _ in range(rnd.randint(0, 3))]
        test = compile_predicates(preds, COLUMNS)
        expected = [r for r in rows if test(r)]
        res = scan(payloads, preds, batch_rows=rnd.choice([1, 50, 1 << 18]))
        assert res.count == len(expected), preds
        assert segment_to_rows(res.rows) == expected, preds
        # an FE of the previous version: marshal rows of every column
        old = scan(payloads, preds, columnar=False)
        assert old.count == len(expected) and decode_rows(old.rows) == expected, preds


def test_a_comparison_with_null_is_false_and_is_null_finds_them():
    rows = [(1, None, None, None, None, None, None, None, None), (2, 3, 12, 0.25, "9.00", "a", "2024-01-01",
                                                                   "2024-01-01 00:00:00", True)]
    payloads = [encode_segment(table_from_rows(rows, SCHEMA))]
    for col, value in [("i", "3"), ("big", "12"), ("d", "0.25"), ("dec", "9"), ("s", "a"), ("dt", "2024-01-01"),
                       ("ts", "2024-01-01 00:00:00"), ("b", "true")]:
        assert scan(payloads, [types_pb2.Predicate(column=col, op="!=", value=value)]).count == 0
        assert scan(payloads, [types_pb2.Predicate(column=col, op="=", value=value)]).count == 1
        assert scan(payloads, [types_pb2.Predicate(column=col, op="IN", values=[value])]).count == 1
        assert scan(payloads, [types_pb2.Predicate(column=col, op="<>", value=value)]).count == 0
        assert segment_to_rows(scan(payloads, [types_pb2.Predicate(column=col, op="IS NULL")]).rows) == [rows[0]]


def test_decimal_and_largeint_compare_as_numbers_not_as_text():
    rows = [(1, None, 9, None, "9.00", None, None, None, None), (2, None, 10, None, "10.50", None, None, None, None),
            (3, None, 2**120, None, "-11.00", None, None, None, None)]
    payloads = [encode_segment(table_from_rows(rows, SCHEMA)), encode_rows(rows)]
    assert scan(payloads, [types_pb2.Predicate(column="dec", op=">", value="9.5")]).count == 2
    assert scan(payloads, [types_pb2.Predicate(column="dec", op="<", value="-10")]).count == 2
    assert scan(payloads, [types_pb2.Predicate(column="big", op=">", value="9")]).count == 4
    assert scan(payloads, [types_pb2.Predicate(column="big", op=">=", value=str(2**120))]).count == 2


def test_projection_limit_and_count():
    rnd = random.Random("projection")
    rows = random_rows(rnd, 300)
    payloads = segments(rows, rnd, "mixed")
    pred = types_pb2.Predicate(column="i", op="IS NOT NULL")
    expected = [(r[5], r[0]) for r in rows if r[1] is not None]
    res = scan(payloads, [pred], limit=7, columns=["S", "id"], batch_rows=20)
    assert res.count == len(expected)
    table = decode_segment(res.rows)
    assert table.column_names == ["s", "id"] and segment_to_rows(res.rows) == expected[:7]
    assert scan(payloads, [pred], limit=0).rows == b""  # count only
    assert scan(payloads, limit=0).count == 300
    assert segment_to_rows(scan(payloads, limit=1000, columns=["big"]).rows) == [(r[2],) for r in rows]


@pytest.mark.parametrize(("pred", "message"), [
    (types_pb2.Predicate(column="i", op="=", value="abc"), "predicate on 'i': value 'abc' is not a valid INT"),
    (types_pb2.Predicate(column="id", op=">", value="1.5"), "predicate on 'id': value '1.5' is not a valid BIGINT"),
    (types_pb2.Predicate(column="i", op="<", value="3000000000"), "out of range for INT"),
    (types_pb2.Predicate(column="dt", op="IN", values=["2024-01-01", "2024-13-01"]), "is not a valid DATE"),
    (types_pb2.Predicate(column="dec", op="=", value="123456789.5"), "is out of range for DECIMAL(10,2)"),
    (types_pb2.Predicate(column="b", op="=", value="yes"), "allowed: true, false, 1, 0"),
    (types_pb2.Predicate(column="nope", op="=", value="1"), "unknown column 'nope' in a predicate; columns: id, i,"),
    (types_pb2.Predicate(column="i", op="LIKE", value="1"),
     "unknown predicate operator 'LIKE'; allowed: =, !=, <>, <, <=, >, >=, IN, IS NULL, IS NOT NULL"),
])
def test_bad_predicates_are_invalid_argument_naming_the_predicate(pred, message):
    with pytest.raises(InvalidArgument) as exc:
        scan([encode_rows([])], [pred])
    assert message in str(exc.value)


# ---------------------------------------------------------------- aggregates

AGGREGATES = [("count", "*"), ("COUNT", "dec"), ("sum", "i"), ("sum", "big"), ("sum", "dec"), ("sum", "d"),
              ("avg", "i"), ("avg", "dec"), ("avg", "d"), ("min", "ts"), ("max", "ts"), ("min", "s"), ("max", "s"),
              ("min", "dt"), ("max", "dec"), ("min", "big"), ("max", "b"), ("count", "")]


def _order(col: str):
    return (lambda v: decimal.Decimal(v)) if col == "dec" else (lambda v: v)


def reference(rows: list[tuple], group_by: str) -> list[list[str]]:
    """The aggregates of AGGREGATES, grouped, in plain Python over stored values."""
    index = {n: i for i, n in enumerate(NAMES)}
    groups: dict[object, list[tuple]] = defaultdict(list)
    for r in rows:
        groups[r[index[group_by]] if group_by else None].append(r)
    if not group_by and not groups:
        groups[None] = []
    keys = sorted(groups, key=lambda k: (k is not None, _order(group_by)(k) if k is not None else 0))
    out = []
    for key in keys:
        members = groups[key]
        line = [text(key)] if group_by else []
        for func, col in AGGREGATES:
            func = func.lower()
            if col in ("*", ""):
                line.append(str(len(members)))
                continue
            values = [r[index[col]] for r in members if r[index[col]] is not None]
            if func == "count":
                line.append(str(len(values)))
            elif not values:
                line.append("NULL")
            elif func in ("sum", "avg"):
                if col == "dec":
                    total = sum(decimal.Decimal(v) for v in values)
                    if func == "sum":
                        line.append(f"{total:.2f}")
                    else:
                        line.append(str((total / len(values)).quantize(decimal.Decimal("0.000001"),
                                                                     rounding=decimal.ROUND_HALF_UP)))
                else:
                    total = sum(values)
                    line.append(str(total) if func == "sum" else str(total / len(values)))
            else:
                pick = min if func == "min" else max
                line.append(text(pick(values, key=_order(col))))
        out.append(line)
    return out


@pytest.mark.parametrize("group_by", ["", "s", "dt", "ts", "b", "big", "dec", "i"])
def test_partial_aggregates_split_over_segments_and_backends_merge_to_the_reference(group_by):
    rnd = random.Random(f"aggregates-{group_by}")
    # doubles that are multiples of 1/4 sum exactly in any order
    DOMAINS_D = DOMAINS["d"]
    assert all((v * 4).is_integer() for v in DOMAINS_D)
    rows = random_rows(rnd, 500)
    plan = plan_aggregates(AGGREGATES, group_by, COLUMNS)
    assert plan is not None
    for pred in [None, types_pb2.Predicate(column="id", op="<", value="250"),
                 types_pb2.Predicate(column="id", op="<", value="0")]:
        test = compile_predicates([pred] if pred else [], COLUMNS)
        matching = [r for r in rows if test(r)]
        backends = rnd.randint(1, 4)
        partials, count = [], 0
        for be in range(backends):
            mine = rows[be::backends]
            res = scan(segments(mine, rnd, "mixed"), [pred] if pred else [], limit=0, aggregates=AGGREGATES,
                       group_by=group_by, batch_rows=rnd.choice([1, 64, 1 << 18]))
            assert res.aggregated and res.rows == b""
            count += res.count
            partials.append(decode_segment(res.partials))
        assert count == len(matching)
        assert plan.headers[len([group_by] if group_by else []):][:3] == ["count(*)", "count(dec)", "sum(i)"]
        assert final_rows(plan, plan.merge(partials)) == reference(matching, group_by), (group_by, pred)


def test_an_aggregate_over_no_rows_is_one_row_of_zero_counts_and_nulls():
    plan = plan_aggregates([("count", "*"), ("sum", "i"), ("avg", "dec"), ("min", "s"), ("count", "d")], "", COLUMNS)
    assert final_rows(plan, plan.merge([])) == [["0", "NULL", "NULL", "NULL", "0"]]
    grouped = plan_aggregates([("count", "*")], "s", COLUMNS)
    assert final_rows(grouped, grouped.merge([])) == []


def test_integer_sums_beyond_64_bits_stay_exact_and_limit_caps_groups():
    near = 2**63 - 5
    rows = [(k, None, None, None, None, "x" if k % 2 else "y", None, None, None) for k in range(4)]
    cols = [Column("id", parse_type("BIGINT"))] + COLUMNS[1:]
    rows = [(near, *r[1:]) for r in rows]
    plan = plan_aggregates([("sum", "id"), ("avg", "id"), ("max", "id")], "s", cols)
    res = scan([encode_segment(table_from_rows(rows, SCHEMA))], limit=0, aggregates=[("sum", "id"), ("avg", "id"),
                                                                                     ("max", "id")], group_by="s")
    merged = plan.merge([decode_segment(res.partials)] * 3)  # three BEs with the same rows
    assert final_rows(plan, merged) == [["x", str(6 * near), str(float(near)), str(near)],
                                        ["y", str(6 * near), str(float(near)), str(near)]]
    assert final_rows(plan, merged, limit=1) == [["x", str(6 * near), str(float(near)), str(near)]]


@pytest.mark.parametrize(("aggregates", "group_by", "message"), [
    ([("median", "i")], "", "unknown aggregate function 'median' in median(i); allowed: count, sum, min, max, avg"),
    ([("sum", "*")], "", "sum(*) is not allowed: only count takes '*'"),
    ([("max", "")], "", "max(*) is not allowed"),
    ([("min", "nope")], "", "unknown column 'nope' in min(nope); columns: id, i, big,"),
    ([("sum", "s")], "", "sum(s) needs a numeric column (TINYINT, SMALLINT, INT, BIGINT, LARGEINT, FLOAT, DOUBLE, "
                         "DECIMAL(p,s)); 's' is VARCHAR(16)"),
    ([("avg", "ts")], "", "avg(ts) needs a numeric column"),
    ([("count", "*")], "nope", "unknown group_by column 'nope'; columns: id, i, big,"),
])
def test_bad_aggregates_are_invalid_argument(aggregates, group_by, message):
    with pytest.raises(InvalidArgument) as exc:
        plan_aggregates(aggregates, group_by, COLUMNS)
    assert message in str(exc.value)
    with pytest.raises(InvalidArgument) as exc:  # the BE checks them too
        scan([encode_rows([])], limit=0, aggregates=aggregates, group_by=group_by)
    assert message in str(exc.value)


def test_json_columns_have_no_order_and_no_groups():
    cols = [Column("j", parse_type("JSON"))]
    with pytest.raises(InvalidArgument, match="a JSON column has no order"):
        plan_aggregates([("max", "j")], "", cols)
    with pytest.raises(InvalidArgument, match="group_by column 'j' is JSON, which cannot be grouped"):
        plan_aggregates([("count", "j")], "j", cols)
    assert plan_aggregates([("count", "j")], "", cols).headers == ["count(j)"]


# ---------------------------------------------------------------- the FE side


def table_of(columns: list[Column]) -> Table:
    return Table(table_id=1, db_id=1, name="t", columns=columns, key_columns=["id"], distribution_columns=["id"],
                 buckets=1, replication_num=1, write_quorum=WriteQuorum.MAJORITY)


def test_parse_query_refuses_a_projection_with_aggregates_and_checks_them_before_any_scan():
    table = table_of(COLUMNS)
    req = admin_pb2.QueryRequest(db="d", table="t", columns=["s"], aggregates=[types_pb2.Aggregate(func="count")])
    with pytest.raises(InvalidArgument, match=r"columns \['s'\] cannot be combined with aggregates or group_by"):
        parse_query(req, table)
    with pytest.raises(InvalidArgument, match="unknown aggregate function 'total'"):
        parse_query(admin_pb2.QueryRequest(aggregates=[types_pb2.Aggregate(func="total", column="i")]), table)
    spec = parse_query(admin_pb2.QueryRequest(group_by="S", aggregates=[types_pb2.Aggregate(func="count")]), table)
    assert spec.column_names == ["s", "count(*)"] and spec.limit is None
    assert parse_query(admin_pb2.QueryRequest(group_by="s"), table).column_names == ["s"]  # distinct values
    with pytest.raises(InvalidArgument, match="invalid limit -1"):
        parse_query(admin_pb2.QueryRequest(limit=-1), table)


def test_the_fe_reads_columnar_answers_and_the_marshal_rows_of_an_older_backend_alike():
    rnd = random.Random("fe-merge")
    rows = random_rows(rnd, 60)
    spec = parse_query(admin_pb2.QueryRequest(columns=["ts", "dec", "big", "b", "d"], limit=50), table_of(COLUMNS))
    new = scan([encode_segment(table_from_rows(rows[:30], SCHEMA))], limit=50, columns=["ts", "dec", "big", "b", "d"])
    old = backend_pb2.ScanTabletsResponse(count=30, rows=encode_rows(rows[30:]))  # all columns, marshal
    out = merge_rows([backend_pb2.ScanTabletsResponse(count=new.count, rows=new.rows), old], spec, [])
    assert out.count == 60 and list(out.column_names) == ["ts", "dec", "big", "b", "d"]
    want = [[text(r[7]), text(r[4]), text(r[2]), text(r[8]), text(r[3])] for r in rows[:50]]
    assert [list(r.values) for r in out.rows] == want


def test_an_older_backend_that_ignores_aggregates_is_a_clear_error():
    spec = parse_query(admin_pb2.QueryRequest(aggregates=[types_pb2.Aggregate(func="count")]), table_of(COLUMNS))
    with pytest.raises(FailedPrecondition, match="backend 10003 answered rows, not aggregates: it runs an older "
                                                 "version"):
        merge_aggregates([(10003, backend_pb2.ScanTabletsResponse(count=3, rows=encode_rows([])))], spec, [])
