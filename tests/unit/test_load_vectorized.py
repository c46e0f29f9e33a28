"""The vectorized load plan gives exactly what the row-at-a-time reference gives."""

from __future__ import annotations

import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.coltypes import Column, parse_type
from common.columnar import arrow_schema
from common.loadformat import BatchResult, LoadSpec, compile_load, compile_row_load
from common.loadformat.plan import SMALL_INPUT_BYTES
from common.loadformat.vector_read import csv_body_sources

TS = 1_714_567_890.0
TYPES = ["INT", "BIGINT", "TINYINT", "LARGEINT", "DOUBLE", "FLOAT", "DECIMAL(6,2)", "DECIMAL(20,4)", "DATE",
         "DATETIME", "VARCHAR(4)", "VARCHAR(32)", "STRING", "BOOLEAN"]
DEFAULTS = {"INT": "7", "BIGINT": "-1", "TINYINT": "1", "LARGEINT": "5", "DOUBLE": "1.5", "FLOAT": "2",
            "DECIMAL(6,2)": "3.14", "DECIMAL(20,4)": "0", "DATE": "2020-01-02", "DATETIME": "CURRENT_TIMESTAMP",
            "VARCHAR(4)": "ab", "VARCHAR(32)": "dflt", "STRING": "s", "BOOLEAN": "true"}
TEXTS = ["1", "-7", "+3", "007", "300", "99999999999", "1.5", "12.345", "-0.00", ".5", "5.", "1e3", "abc", "",
         " 5", "true", "False", "0", "2024-02-29", "2024-02-30", "2024-05-01 12:30:45", "2024-05-01 24:00:00",
         "20240501", "0000-01-01", "héllo", "toolongvalue", "\\N", "NaN", "1_000", "1700000000", "12.5"]
JSON_VALUES = st.one_of(
    st.sampled_from(TEXTS), st.integers(-(2**40), 2**40), st.sampled_from([0, 1, 127, 128, 1700000000, 2**63 - 1]),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from([1.0, 0.5, 12.25, -3.75, 1e20]),
    st.booleans(), st.none(), st.just({"x": 1}), st.just([1, 2]),
)
EXPRESSIONS = ["from_unixtime({a})", "upper({a})", "{a} + 1", "{a} * 2.5", "concat({a}, '-', {b})",
               "if({a} IS NULL, 'n', 'v')", "coalesce({a}, {b})", "substr({a}, 2, 2)", "length({a})",
               "CAST({a} AS BIGINT)", "{a} / {b}", "year({a})", "{a} % 3", "lower({a})"]
WHERES = ["{c} IS NOT NULL", "{c} > 3", "{c} IN (1, 2, 'abc')", "{c} BETWEEN 1 AND 100", "NOT ({c} = 'abc')",
          "{c} IS NULL OR {c} != 5", "{s} = 'abc'", "length({c}) > 2"]


@st.composite
def loads(draw):
    k = draw(st.integers(1, 3))
    cols = []
    for i in range(k):
        t = draw(st.sampled_from(TYPES))
        cols.append(Column(f"c{i}", parse_type(t), nullable=draw(st.booleans()),
                           default=DEFAULTS[t] if draw(st.integers(0, 3)) == 0 else None))
    fmt = draw(st.sampled_from(["csv", "json"]))
    sources = [f"c{i}" for i in range(k)]
    columns = None
    if draw(st.booleans()):
        ttype = draw(st.sampled_from(TYPES))
        cols.append(Column("d", parse_type(ttype), nullable=draw(st.integers(0, 3)) > 0))
        text = draw(st.sampled_from(EXPRESSIONS)).format(a=draw(st.sampled_from(sources)),
                                                         b=draw(st.sampled_from(sources)))
        columns = ", ".join(sources) + f", d = {text}"
    elif fmt == "json" and draw(st.booleans()):
        cols.append(Column("extra", parse_type("INT"), default="3"))
    where = None
    if draw(st.integers(0, 2)) == 0:
        where = draw(st.sampled_from(WHERES)).format(c=draw(st.sampled_from([c.name for c in cols])),
                                                     s=draw(st.sampled_from(sources)))
    spec = LoadSpec(format=fmt, columns=columns, where=where, strict_mode=draw(st.booleans()), timezone="UTC",
                    max_error_samples=draw(st.sampled_from([0, 3, 20])))
    nrows = draw(st.integers(0, 12))
    rows: list[bytes] = []
    for _ in range(nrows):
        if fmt == "csv":
            fields = [draw(st.sampled_from(TEXTS)) for _ in range(k)]
            if draw(st.integers(0, 9)) == 0:
                fields = fields[:-1] if draw(st.booleans()) else [*fields, "x"]
            line = ",".join(fields).encode()
            if draw(st.integers(0, 19)) == 0:
                line += b"\xff"
        else:
            obj = {s: draw(JSON_VALUES) for s in sources if draw(st.integers(0, 5))}
            if draw(st.integers(0, 5)) == 0:
                obj["other"] = draw(JSON_VALUES)
            line = orjson.dumps(obj)
            bad = draw(st.integers(0, 24))
            if bad == 0:
                line = line[:-1]
            elif bad == 1:
                line = b"[" + line + b"]"
            elif bad == 2:
                line = line.replace(b'":', b'" :', 1)
        rows.append(line)
    return spec, cols, rows


def _same(vec: BatchResult, ref: BatchResult, columns: list[Column]) -> None:
    assert vec.rows == ref.rows
    assert (vec.total_rows, vec.filtered_rows, vec.unselected_rows, vec.loaded_bytes) == (
        ref.total_rows, ref.filtered_rows, ref.unselected_rows, ref.loaded_bytes)
    assert [(e.row, e.reason) for e in vec.errors] == [(e.row, e.reason) for e in ref.errors]
    assert vec.table is not None and vec.table.schema.equals(arrow_schema(columns), check_metadata=True)
    assert vec.loaded_rows == ref.loaded_rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loads(), st.integers(0, 1000))
def test_kafka_messages_match_the_reference(load, first_row):
    spec, cols, rows = load
    vec = compile_load(spec, cols, clock=lambda: TS, small_input_rows=0)
    ref = compile_row_load(spec, cols, clock=lambda: TS)
    vec.parse_messages(rows)  # sets now() for the batch, as the chunk at row 0 does
    ref.parse_messages(rows)
    _same(vec.parse_messages(rows, first_row), ref.parse_messages(rows, first_row), cols)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loads())
def test_stream_load_body_matches_the_reference(load):
    spec, cols, rows = load
    body = b"".join(r + b"\n" for r in rows)
    vec = compile_load(spec, cols, clock=lambda: TS, small_input_bytes=0).parse(body)
    ref = compile_row_load(spec, cols, clock=lambda: TS).parse(body)
    if vec.table is None:  # a body the reference maps whole
        assert vec.rows == ref.rows and vec.errors == ref.errors
        return
    _same(vec, ref, cols)


def test_bench_workload_is_decided_without_the_reference():
    cols = [Column("id", parse_type("BIGINT"), False), Column("ts", parse_type("DATETIME")),
            Column("user_id", parse_type("INT")), Column("event", parse_type("VARCHAR(16)")),
            Column("amount", parse_type("DECIMAL(10,2)"))]
    spec = LoadSpec(format="json", columns="id, tmp_ts, user_id, event, amount, ts = from_unixtime(tmp_ts)",
                    jsonpaths='["$.id", "$.ts", "$.user", "$.event", "$.amount"]', timezone="UTC")
    msgs = [orjson.dumps({"id": i, "ts": 1_700_000_000 + i, "user": i % 97, "event": "click",
                          "amount": round(i * 0.37, 2)}) for i in range(200)]
    plan = compile_load(spec, cols)
    calls = []
    plan.reference.map_message = lambda m, before: calls.append(m)
    res = plan.parse_messages(msgs)
    assert calls == [] and res.loaded_rows == 200
    assert res.rows[3] == (3, "2023-11-14 22:13:23", 3, "click", "1.11")


def test_small_inputs_are_mapped_row_at_a_time_and_large_ones_by_columns():
    cols = [Column("id", parse_type("BIGINT"), False), Column("s", parse_type("VARCHAR(8)"))]
    plan = compile_load(LoadSpec(), cols)
    calls = []
    reference_parse = plan.reference.parse
    plan.reference.parse = lambda data, first_row=0: calls.append(len(data)) or reference_parse(data, first_row)
    one = plan.parse(b"1,a\n")
    assert calls == [4] and one.rows == [(1, "a")]
    big = b"".join(b"%d,x\n" % i for i in range(5000))  # above SMALL_INPUT_BYTES
    assert len(big) > SMALL_INPUT_BYTES
    res = plan.parse(big)
    assert calls == [4] and res.table is not None and res.loaded_rows == 5000


def test_merge_concatenates_tables_and_rows():
    cols = [Column("k", parse_type("INT")), Column("v", parse_type("VARCHAR(8)"))]
    plan = compile_load(LoadSpec(strict_mode=True), cols, small_input_bytes=0)
    a = plan.parse(b"1,a\n2,b\n")
    a.merge(plan.parse(b"x,c\n3,d\n"), 20)
    a.merge(compile_row_load(LoadSpec(), cols).parse(b"4,e\n"), 20)
    assert isinstance(a.table, pa.Table)
    assert a.rows == [(1, "a"), (2, "b"), (3, "d"), (4, "e")]
    assert (a.total_rows, a.filtered_rows, a.loaded_rows) == (5, 1, 4)


CSV_FIELDS = ["", "\\N", "\\N\\N", " \\N", "1", "-7", "1.5", "2024-05-01 12:30:45", "2024-02-30", "2024-05-01",
              'a"b', '"q', 'q"', "\\", "x\\y", "héllo", "toolongvalue", "'s'", "\t", "N"]


@st.composite
def csv_bodies(draw):
    """Single-byte-separator CSV bodies: what the Arrow reader takes, and what it must leave alone."""
    k = draw(st.integers(1, 4))
    kinds = ["INT", "BIGINT", "DOUBLE", "DATE", "DATETIME", "VARCHAR(4)", "VARCHAR(32)", "STRING"]
    cols = [Column(f"c{i}", parse_type(draw(st.sampled_from(kinds))), nullable=draw(st.booleans())) for i in range(k)]
    sep_text = draw(st.sampled_from([",", "|", "\\t", "\\x01", '"', "\\\\", ";"]))
    sep = {"\\t": "\t", "\\x01": "\x01", "\\\\": "\\"}.get(sep_text, sep_text)
    where = draw(st.sampled_from([None, "length(c0) > 9", "c0 IS NOT NULL", "c0 = '1'"]))
    spec = LoadSpec(column_separator=sep_text, where=where, strict_mode=draw(st.booleans()), timezone="UTC",
                    max_error_samples=draw(st.sampled_from([0, 5, 50])))
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 30))):
        shape = draw(st.integers(0, 14))
        if shape == 0:
            lines.append(b"")
            continue
        nfields = k if shape > 3 else draw(st.integers(1, k + 2))
        line = sep.join(draw(st.sampled_from(CSV_FIELDS)) for _ in range(nfields)).encode()
        if shape == 1:
            line += sep.encode()
        elif shape == 2 and draw(st.integers(0, 5)) == 0:
            line += draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc3", b"\r"]))
        lines.append(line)
    body = b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\n", b"\n\n"]))
    if draw(st.integers(0, 19)) == 0:
        body = b"\xef\xbb\xbf" + body
    return spec, cols, body, sep


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_bodies())
def test_arrow_read_csv_bodies_match_the_reference(load):
    spec, cols, body, sep = load
    plan = compile_load(spec, cols, clock=lambda: TS, small_input_bytes=0)
    vec = plan.parse(body)
    ref = compile_row_load(spec, cols, clock=lambda: TS).parse(body)
    if vec.table is None:  # bad UTF-8: the reference maps the whole body
        assert vec.rows == ref.rows and vec.errors == ref.errors
    else:
        _same(vec, ref, cols)
    lines = body.split(b"\n")
    plain = (body and b"\r" not in body and not body.startswith(b"\xef\xbb\xbf")
             and (len(cols) == 1 or b"" not in lines[:-1]))
    try:
        body.decode()
    except UnicodeDecodeError:
        plain = False
    assert (csv_body_sources(body, sep, "\n", len(cols)) is not None) == bool(plain)


def test_arrow_read_csv_marks_lines_of_another_field_count_by_line_number():
    cols = [Column("a", parse_type("INT")), Column("b", parse_type("VARCHAR(8)"))]
    body = b"".join(b"%d,x\n" % i if i % 997 else b"%d\n" % i for i in range(20000)) + b"1,2,3"
    src, line_at = csv_body_sources(body, ",", "\n", 2)
    marked = src.fallback.arg_true().to_list()
    assert marked == [i for i in range(20000) if i % 997 == 0] + [20000]
    assert [line_at(i) for i in marked[:2]] == ["0", "997"] and line_at(20000) == "1,2,3"
    assert src.columns[0][1] == "1" and src.columns[1][997] is None and src.columns[1][998] == "x"
    plan = compile_load(LoadSpec(), cols, small_input_bytes=0)
    res = plan.parse(body)
    assert res.filtered_rows == len(marked) and res.errors[0].reason == "row 1: expected 2 fields separated by ',' but got 1"
    _same(res, compile_row_load(LoadSpec(), cols).parse(body), cols)
