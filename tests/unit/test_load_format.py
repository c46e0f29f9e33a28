import time

import orjson
import pytest

from common.coltypes import Column, parse_type
from common.loadformat import (
    FilteredRow,
    LoadSpec,
    LoadSpecError,
    compile_load,
    parse_columns,
    parse_expression,
    parse_path,
)

# 2023-11-14 22:13:20 UTC
TS = 1700000000


def col(name, type_text, nullable=True, default=None, is_key=False):
    return Column(name, parse_type(type_text), nullable=nullable, default=default, is_key=is_key)


USERS = [
    col("id", "BIGINT", nullable=False, is_key=True),
    col("name", "VARCHAR(8)"),
    col("age", "INT"),
]


def plan(table=USERS, **kw):
    return compile_load(LoadSpec(**kw), table, clock=lambda: TS)


def reasons(result):
    return [e.reason for e in result.errors]


# ---------------------------------------------------------------- CSV


def test_csv_without_columns_maps_fields_in_order():
    r = plan().parse(b"1,ann,30\n2,bob,\\N\n")
    assert r.rows == [(1, "ann", 30), (2, "bob", None)]
    assert (r.total_rows, r.filtered_rows, r.unselected_rows, r.loaded_bytes) == (2, 0, 0, 18)
    assert r.errors == []


def test_csv_separator_and_row_delimiter_escapes():
    r = plan(column_separator="\\x01", row_delimiter="\\n").parse(b"1\x01ann\x0130\n2\x01bob\x0131")
    assert r.rows == [(1, "ann", 30), (2, "bob", 31)]
    r = plan(column_separator="\\t", row_delimiter="||").parse(b"1\tann\t30||2\tbob\t31||")
    assert r.rows == [(1, "ann", 30), (2, "bob", 31)]


def test_csv_field_count_mismatch_is_filtered_with_reason():
    r = plan().parse(b"1,ann,30\n2,bob\n3,cy,1,extra\n")
    assert r.rows == [(1, "ann", 30)]
    assert (r.total_rows, r.filtered_rows) == (3, 2)
    assert r.errors == [
        FilteredRow("2,bob", "row 2: expected 3 fields separated by ',' but got 2"),
        FilteredRow("3,cy,1,extra", "row 3: expected 3 fields separated by ',' but got 4"),
    ]


def test_non_strict_bad_value_becomes_null_in_nullable_column():
    r = plan().parse(b"1,ann,abc\n")
    assert r.rows == [(1, "ann", None)]
    assert r.filtered_rows == 0


def test_strict_bad_value_filters_the_row():
    r = plan(strict_mode=True).parse(b"1,ann,abc\n2,bob,7\n")
    assert r.rows == [(2, "bob", 7)]
    assert r.filtered_rows == 1
    assert reasons(r) == ["row 1: column 'age' value 'abc' is not a valid INT"]
    assert r.errors[0].row == "1,ann,abc"


def test_strict_mode_null_source_is_not_an_error():
    r = plan(strict_mode=True).parse(b"1,ann,\\N\n")
    assert r.rows == [(1, "ann", None)]


def test_bad_value_in_not_null_column_filters_even_when_not_strict():
    r = plan().parse(b"x,ann,1\n")
    assert r.rows == []
    assert reasons(r) == ["row 1: column 'id' value 'x' is not a valid BIGINT"]


def test_null_into_not_null_column_filters():
    r = plan().parse(b"\\N,ann,1\n")
    assert reasons(r) == ["row 1: column 'id' is NULL but the column is NOT NULL"]


def test_too_long_string_and_out_of_range():
    r = plan(strict_mode=True).parse(b"1,abcdefghij,1\n2,b,99999999999\n")
    assert reasons(r) == [
        "row 1: column 'name' value 'abcdefghij' is too long for VARCHAR(8): 10 bytes > 8",
        "row 2: column 'age' value '99999999999' is out of range for INT [-2147483648, 2147483647]",
    ]
    r = plan().parse(b"1,abcdefghij,1\n")
    assert r.rows == [(1, None, 1)]


def test_integer_fraction_strict_vs_non_strict():
    assert plan().parse(b"1,a,12.7\n").rows == [(1, "a", 12)]
    r = plan(strict_mode=True).parse(b"1,a,12.7\n")
    assert reasons(r) == ["row 1: column 'age' value '12.7' is not a valid INT"]


def test_error_samples_are_capped_but_counted():
    body = b"".join(b"bad\n" for _ in range(30))
    r = plan(max_error_samples=5).parse(body)
    assert r.filtered_rows == 30
    assert len(r.errors) == 5
    assert r.errors[4].reason == "row 5: expected 3 fields separated by ',' but got 1"


def test_raw_row_truncated_to_200_chars():
    r = plan().parse(b"1," + b"x" * 500 + b"\n")
    assert r.errors[0].row == "1," + "x" * 198


def test_invalid_utf8_line_is_filtered():
    r = plan().parse(b"1,ann,1\n2,\xff\xfe,2\n3,cy,3\n")
    assert r.rows == [(1, "ann", 1), (3, "cy", 3)]
    assert r.total_rows == 3
    assert reasons(r) == ["row 2: invalid UTF-8 (invalid start byte at byte 2)"]


def test_csv_with_columns_temporaries_and_from_unixtime():
    cols = [col("k1", "INT"), col("ts", "DATETIME"), col("d", "DATE")]
    p = plan(cols, columns="k1, tmp_ts, ts = from_unixtime(tmp_ts), d = to_date(from_unixtime(tmp_ts))")
    r = p.parse(f"7,{TS}\n".encode())
    assert r.rows == [(7, "2023-11-15 06:13:20", "2023-11-15")]
    assert p.source_names == ["k1", "tmp_ts"]


def test_from_unixtime_uses_the_spec_timezone_and_format():
    cols = [col("ts", "DATETIME"), col("s", "VARCHAR(40)")]
    cols_text = "t, ts = from_unixtime(t), s = from_unixtime(t, '%Y/%m/%d %H:%i:%s %p %M')"
    assert plan(cols, columns=cols_text, timezone="UTC").parse(f"{TS}".encode()).rows == [
        ("2023-11-14 22:13:20", "2023/11/14 22:13:20 PM November")
    ]
    assert plan(cols, columns=cols_text, timezone="America/New_York").parse(f"{TS}".encode()).rows == [
        ("2023-11-14 17:13:20", "2023/11/14 17:13:20 PM November")
    ]
    assert plan(cols, columns=cols_text, timezone="+05:30").parse(f"{TS}".encode()).rows == [
        ("2023-11-15 03:43:20", "2023/11/15 03:43:20 AM November")
    ]


def test_from_unixtime_across_dst_change():
    cols = [col("ts", "DATETIME")]
    p = plan(cols, columns="t, ts = from_unixtime(t)", timezone="America/New_York")
    # 2024-03-10 06:59:59 UTC is 01:59:59 EST; one second later is 03:00:00 EDT
    assert p.parse(b"1710053999\n1710054000\n").rows == [("2024-03-10 01:59:59",), ("2024-03-10 03:00:00",)]


def test_from_unixtime_invalid_gives_null():
    cols = [col("ts", "DATETIME")]
    r = plan(cols, columns="t, ts = from_unixtime(t)").parse(b"abc\n-1\n\\N\n")
    assert r.rows == [(None,), (None,), (None,)]


def test_arithmetic_casts_and_null_propagation():
    cols = [
        col("a", "INT"),
        col("b", "DOUBLE"),
        col("c", "DECIMAL(10,2)"),
        col("d", "BIGINT"),
        col("e", "INT"),
    ]
    p = plan(
        cols,
        columns="x, y, a = x + y * 2, b = x / y, c = CAST(x AS DECIMAL(10,2)) / 3, "
        "d = -x % 3, e = (x - y) * 10",
    )
    r = p.parse(b"7,2\n7,0\n\\N,1\n")
    assert r.rows == [
        (11, 3.5, "2.33", -1, 50),
        (7, None, "2.33", -1, 70),
        (None, None, None, None, None),
    ]


def test_cast_in_columns():
    cols = [col("i", "INT"), col("s", "VARCHAR(10)"), col("d", "DATE"), col("b", "BOOLEAN")]
    p = plan(
        cols,
        columns="x, i = cast(x as int) + 1, s = CAST(x * 2 AS VARCHAR(10)), "
        "d = cast('2024-01-05 10:00:00' as date), b = CAST(x > 5 AS BOOLEAN)",
    )
    assert p.parse(b"9\nzz\n").rows == [(10, "18", "2024-01-05", True), (None, None, "2024-01-05", None)]


def test_string_and_misc_functions():
    cols = [
        col("a", "VARCHAR(30)"),
        col("b", "INT"),
        col("c", "VARCHAR(30)"),
        col("d", "VARCHAR(30)"),
        col("e", "DOUBLE"),
        col("f", "INT"),
    ]
    p = plan(
        cols,
        columns="x, y, a = concat(upper(x), '-', lower('AB'), y), b = length(x), "
        "c = substr(x, 2, 3), d = if(y > 1, 'big', coalesce(NULL, 'small')), "
        "e = round(y * 1.25, 1), f = ifnull(NULL, abs(-3)) + floor(2.7) + ceil(0.1)",
    )
    assert p.parse("héllo,3\n".encode()).rows == [("HÉLLO-ab3", 6, "éll", "big", 3.8, 6)]


def test_date_functions():
    cols = [
        col("t", "DATETIME"),
        col("y", "INT"),
        col("m", "INT"),
        col("s", "DATETIME"),
        col("u", "BIGINT"),
        col("n", "DATETIME"),
    ]
    p = plan(
        cols,
        timezone="UTC",
        columns="x, t = date_trunc('hour', x), y = year(x) * 100 + month(x), m = hour(x) + minute(x), "
        "s = str_to_date('05/01/2024 7:08', '%d/%m/%Y %H:%i'), u = unix_timestamp(x), n = now()",
    )
    assert p.parse(b"2024-01-05 10:11:12\n").rows == [
        ("2024-01-05 10:00:00", 202401, 21, "2024-01-05 07:08:00", 1704449472, "2023-11-14 22:13:20")
    ]


def test_where_unselected_rows_are_counted_not_filtered():
    r = plan(where="age >= 18 AND name != 'bob'").parse(b"1,ann,30\n2,bob,40\n3,cy,12\n4,dee,\\N\nx,e,1\n")
    assert r.rows == [(1, "ann", 30)]
    assert (r.total_rows, r.unselected_rows, r.filtered_rows) == (5, 3, 1)


@pytest.mark.parametrize(
    ("where", "ids"),
    [
        ("age IN (30, 12)", [1, 3]),
        ("age NOT IN (30, 12)", [2]),
        ("age IS NULL", [4]),
        ("age IS NOT NULL AND NOT age > 30", [1, 3]),
        ("age BETWEEN 12 AND 30", [1, 3]),
        ("age NOT BETWEEN 12 AND 30", [2]),
        ("name = 'ann' OR age < 20", [1, 3]),
        ("upper(name) <> 'BOB'", [1, 3, 4]),
        ("id % 2 = 0", [2, 4]),
        ("TRUE", [1, 2, 3, 4]),
        ("NULL", []),
    ],
)
def test_where_expressions(where, ids):
    r = plan(where=where).parse(b"1,ann,30\n2,bob,40\n3,cy,12\n4,dee,\\N\n")
    assert [row[0] for row in r.rows] == ids
    assert r.unselected_rows == 4 - len(ids)


def test_where_on_derived_and_temporary_columns():
    cols = [col("k", "INT"), col("ts", "DATETIME"), col("price", "DECIMAL(6,2)")]
    p = plan(
        cols,
        columns="k, t, price, ts = from_unixtime(t)",
        where="ts >= '2023-11-15 06:13:21' AND t < 1700000010 AND price > 9.5",
    )
    r = p.parse(f"1,{TS},10\n2,{TS + 1},10\n3,{TS + 2},9.49\n4,{TS + 50},20\n".encode())
    assert r.rows == [(2, "2023-11-15 06:13:21", "10.00")]
    assert r.unselected_rows == 3


def test_defaults_for_unmapped_columns():
    cols = [
        col("k", "INT"),
        col("v", "INT", nullable=False, default="5"),
        col("n", "VARCHAR(5)"),
        col("t", "DATETIME", default="CURRENT_TIMESTAMP"),
    ]
    r = plan(cols, columns="k", timezone="UTC").parse(b"1\n")
    assert r.rows == [(1, 5, None, "2023-11-14 22:13:20")]


def test_batch_results_merge_keeps_sample_limit():
    p = plan(max_error_samples=2)
    total = p.parse(b"1,a,1\nbad\n")
    total.merge(p.parse_messages([b"x", b"y", b"2,b,2"]), max_error_samples=2)
    assert total.rows == [(1, "a", 1), (2, "b", 2)]
    assert total.loaded_rows == 2
    assert (total.total_rows, total.filtered_rows, total.loaded_bytes) == (5, 3, 10 + 7)
    assert reasons(total) == [
        "row 2: expected 3 fields separated by ',' but got 1",
        "row 1: expected 3 fields separated by ',' but got 1",
    ]


def test_csv_kafka_messages():
    p = plan()
    r = p.parse_messages([b"1,ann,30", b"2,bob,31\n", b"3,oops", b"\xff,a,1"])
    assert r.rows == [(1, "ann", 30), (2, "bob", 31)]
    assert (r.total_rows, r.filtered_rows, r.loaded_bytes) == (4, 2, 8 + 9 + 6 + 5)
    assert reasons(r) == [
        "row 3: expected 3 fields separated by ',' but got 2",
        "row 4: invalid UTF-8 (invalid start byte at byte 0)",
    ]


# ---------------------------------------------------------------- JSON


def test_json_object_maps_keys_by_column_name():
    r = plan(format="json").parse(b'{"id": 1, "name": "ann", "age": "30", "extra": true}')
    assert r.rows == [(1, "ann", 30)]
    assert r.total_rows == 1


def test_json_missing_key_and_null():
    r = plan(format="json", strip_outer_array=True).parse(
        b'[{"id": 1}, {"id": 2, "name": null, "age": 3}, {"name": "x"}]'
    )
    assert r.rows == [(1, None, None), (2, None, 3)]
    assert reasons(r) == ["row 3: column 'id' is NULL but the column is NOT NULL"]
    assert r.errors[0].row == '{"name":"x"}'


def test_json_missing_key_uses_default_but_explicit_null_does_not():
    cols = [col("k", "INT"), col("v", "INT", nullable=False, default="9")]
    r = plan(cols, format="json", strip_outer_array=True).parse(b'[{"k": 1}, {"k": 2, "v": null}]')
    assert r.rows == [(1, 9)]
    assert reasons(r) == ["row 2: column 'v' is NULL but the column is NOT NULL"]


def test_json_array_without_strip_outer_array_is_an_error():
    r = plan(format="json").parse(b'[{"id": 1}]')
    assert r.rows == []
    assert (r.total_rows, r.filtered_rows) == (1, 1)
    assert reasons(r) == [
        "row 1: the JSON document is an array; set strip_outer_array=true to load its elements as rows"
    ]


def test_json_strip_outer_array_needs_an_array():
    r = plan(format="json", strip_outer_array=True).parse(b'{"id": 1}')
    assert reasons(r) == ["row 1: expected a JSON array because strip_outer_array is true"]


def test_json_non_object_rows_are_filtered():
    r = plan(format="json", strip_outer_array=True).parse(b'[{"id": 1}, 5, "x"]')
    assert r.rows == [(1, None, None)]
    assert reasons(r) == [
        "row 2: expected a JSON object but got a number",
        "row 3: expected a JSON object but got a string",
    ]


def test_json_root_selects_a_nested_node():
    body = b'{"meta": {"n": 2}, "data": {"rows": [{"id": 1, "name": "a"}, {"id": 2, "age": 5}]}}'
    r = plan(format="json", json_root="$.data.rows", strip_outer_array=True).parse(body)
    assert r.rows == [(1, "a", None), (2, None, 5)]
    r = plan(format="json", json_root="$.nope", strip_outer_array=True).parse(body)
    assert reasons(r) == ["row 1: json_root '$.nope' is not in the document"]


def test_jsonpaths_with_columns():
    cols = [col("id", "INT"), col("city", "VARCHAR(10)"), col("first", "INT"), col("ts", "DATETIME")]
    p = plan(
        cols,
        format="json",
        jsonpaths='["$.id", "$.addr.city", "$.arr[0]", "$.t"]',
        columns="id, city, first, tmp, ts = from_unixtime(tmp)",
        timezone="UTC",
    )
    r = p.parse(f'{{"id": 1, "addr": {{"city": "Oslo"}}, "arr": [7, 8], "t": {TS}}}'.encode())
    assert r.rows == [(1, "Oslo", 7, "2023-11-14 22:13:20")]
    r = p.parse(b'{"id": 2}')
    assert r.rows == [(2, None, None, None)]


def test_jsonpaths_without_columns_match_table_columns_in_order():
    p = plan(format="json", jsonpaths='["$.x", "$[\'the name\']"]', strip_outer_array=True)
    r = p.parse(b'[{"x": 5, "the name": "q", "age": 9}]')
    assert r.rows == [(5, "q", None)]


def test_jsonpaths_on_array_rows():
    p = plan(format="json", jsonpaths='["$[0]", "$[1]", "$[-1]"]', strip_outer_array=True)
    # $[-1] of [2, "b"] is "b", not a valid INT: NULL in a nullable column when not strict
    assert p.parse(b'[[1, "a", 3], [2, "b"]]').rows == [(1, "a", 3), (2, "b", None)]


def test_ndjson_body():
    body = b'{"id": 1, "name": "a"}\n{"id": 2, "name": "b"}\n\n{"id": 3}\n'
    r = plan(format="json").parse(body)
    assert r.rows == [(1, "a", None), (2, "b", None), (3, None, None)]
    assert r.loaded_bytes == len(body)


def test_ndjson_with_a_malformed_line():
    r = plan(format="json").parse(b'{"id": 1}\n{"id": 2,\n{"id": 3}\n')
    assert r.rows == [(1, None, None), (3, None, None)]
    assert (r.total_rows, r.filtered_rows) == (3, 1)
    assert r.errors[0].row == '{"id": 2,'
    assert r.errors[0].reason.startswith("row 2: malformed JSON: ")


def test_malformed_single_document():
    r = plan(format="json").parse(b'{"id": ')
    assert (r.total_rows, r.filtered_rows) == (1, 1)
    assert r.errors[0].reason.startswith("row 1: malformed JSON: ")


def test_json_values_of_other_types():
    cols = [
        col("id", "INT"),
        col("doc", "JSON"),
        col("s", "VARCHAR(20)"),
        col("b", "BOOLEAN"),
        col("dec", "DECIMAL(8,3)"),
    ]
    r = plan(cols, format="json").parse(
        b'{"id": 1, "doc": {"z": [1, {"y": null}]}, "s": [1, 2], "b": true, "dec": 2.0005}'
    )
    assert r.rows == [(1, '{"z":[1,{"y":null}]}', "[1,2]", True, "2.001")]


def test_json_strict_mode():
    p = plan(format="json", strip_outer_array=True, strict_mode=True)
    r = p.parse(b'[{"id": 1, "age": "x"}, {"id": 2, "age": 4.5}, {"id": 3, "age": 4.0}]')
    assert r.rows == [(3, None, 4)]
    assert reasons(r) == [
        "row 1: column 'age' value 'x' is not a valid INT",
        "row 2: column 'age' value '4.5' is not a valid INT (it has a fractional part)",
    ]


def test_json_kafka_messages():
    p = plan(format="json", strip_outer_array=True)
    r = p.parse_messages([b'[{"id": 1}, {"id": 2}]', b"{not json", b'[{"id": 3}]', b'{"id": 4}'])
    assert r.rows == [(1, None, None), (2, None, None), (3, None, None)]
    assert r.total_rows == 5
    assert r.errors[0].row == "{not json"
    assert r.errors[0].reason.startswith("row 3: malformed JSON: ")
    assert r.errors[1].reason == "row 5: expected a JSON array because strip_outer_array is true"
    p = plan(format="json", columns="id, age")
    r = p.parse_messages([b'{"id": 1, "age": 2}', b'{"id": 2}'])
    assert r.rows == [(1, None, 2), (2, None, None)]


def test_now_is_constant_per_batch_and_follows_the_clock():
    ticks = iter([TS, TS + 3600])
    p = compile_load(
        LoadSpec(columns="k, t = now()", timezone="UTC"),
        [col("k", "INT"), col("t", "DATETIME")],
        clock=lambda: next(ticks),
    )
    assert p.parse(b"1\n2\n").rows == [(1, "2023-11-14 22:13:20"), (2, "2023-11-14 22:13:20")]
    assert p.parse_messages([b"3"]).rows == [(3, "2023-11-14 23:13:20")]


def test_derived_value_not_fitting_type_is_null_or_filtered():
    cols = [col("a", "TINYINT"), col("b", "TINYINT", nullable=False)]
    p = plan(cols, columns="x, a = x * 100, b = x * 100", strict_mode=True)
    r = p.parse(b"1\n2\n")
    assert r.rows == [(100, 100)]
    assert reasons(r) == [
        "row 2: column 'b' value '200' is out of range for TINYINT [-128, 127] (from x * 100)"
    ]
    r = plan(cols, columns="x, a = x / 0, b = x / 0").parse(b"1\n")
    assert reasons(r) == ["row 1: column 'b' is NULL (from x / 0) but the column is NOT NULL"]


# ---------------------------------------------------------------- LoadSpecError


def spec_error(table=USERS, **kw) -> str:
    with pytest.raises(LoadSpecError) as e:
        plan(table, **kw)
    return str(e.value)


def test_unknown_format():
    assert spec_error(format="xml") == "unknown format 'xml'; allowed formats: csv, json"


def test_columns_naming_unknown_target():
    assert spec_error(columns="id, name, agee = 1") == (
        "COLUMNS maps column 'agee' but the table has no such column; table columns: id, name, age"
    )


def test_not_null_column_without_source_or_default():
    msg = spec_error(columns="name, age")
    assert msg.startswith("column 'id' is NOT NULL and has no default, but the load gives it no value")
    assert "source columns: name, age" in msg


def test_column_listed_twice():
    assert spec_error(columns="id, name, ID") == "column 'ID' is listed twice in COLUMNS 'id, name, ID'"
    assert spec_error(columns="id, age, age = id + 1") == (
        "column 'age' is listed twice in COLUMNS 'id, age, age = id + 1'"
    )


def test_bad_columns_item():
    msg = spec_error(columns="id, 3x")
    assert msg.startswith("invalid COLUMNS item '3x' in 'id, 3x': expected a source column name")
    assert spec_error(columns="id, age =") == "COLUMNS item 'age =' has no expression after '='"


def test_unknown_function_lists_known_functions():
    msg = spec_error(columns="id, x, age = frobnicate(x)")
    assert msg.startswith(
        "unknown function 'frobnicate' in the expression of column 'age'; known functions: "
    )
    for name in ("abs", "concat", "from_unixtime", "str_to_date", "unix_timestamp"):
        assert name in msg
    assert spec_error(where="id = nope(1)").startswith(
        "unknown function 'nope' in WHERE; known functions: abs,"
    )


def test_wrong_argument_count():
    assert spec_error(columns="id, x, age = from_unixtime()") == (
        "function from_unixtime() in the expression of column 'age' takes 1 to 2 arguments, got 0"
    )
    assert spec_error(columns="id, x, age = if(x, 1)") == (
        "function if() in the expression of column 'age' takes 3 arguments, got 2"
    )


def test_expression_parse_errors():
    assert spec_error(columns="id, x, age = x +") == (
        "cannot parse the expression of column 'age' 'x +': expected a value, a column name or a function call "
        "but found end of text at position 4"
    )
    assert spec_error(where="age >> 3") == (
        "cannot parse WHERE 'age >> 3': expected a value, a column name or a function call but found '>' "
        "at position 6"
    )
    assert spec_error(where="age = 1 2") == (
        "cannot parse WHERE 'age = 1 2': expected an operator or the end of the expression but found 2 "
        "at position 9"
    )
    assert spec_error(where="age ! 1") == "cannot parse WHERE 'age ! 1': unexpected '!' at position 5"
    assert "DECIMAL(p,s) needs 1<=p<=38" in spec_error(columns="id, x, age = cast(x as decimal(50, 2))")


def test_expression_refers_to_unknown_source():
    assert spec_error(columns="id, x, age = y + 1") == (
        "the expression of column 'age' refers to column 'y' which is not a source column; source columns: id, x"
    )
    assert (
        spec_error(where="nope > 1")
        == "WHERE 'nope > 1' refers to unknown column 'nope'; table columns: id, name, age"
    )


def test_bad_jsonpaths():
    assert spec_error(format="json", jsonpaths='["$.a", ').startswith(
        "invalid jsonpaths '[\"$.a\", ': not valid JSON"
    )
    assert spec_error(format="json", jsonpaths='{"a": 1}') == (
        "invalid jsonpaths '{\"a\": 1}': expected a non-empty JSON array of path strings such as "
        '["$.id", "$.a.b", "$.arr[0]"]'
    )
    assert spec_error(format="json", jsonpaths='["id"]').startswith(
        "invalid JSON path 'id': it must start with '$'; allowed:"
    )
    assert spec_error(format="json", jsonpaths='["$.a..b"]').startswith(
        "invalid JSON path '$.a..b' at character 4; allowed:"
    )
    assert spec_error(format="json", jsonpaths='["$.a", "$.b"]', columns="id, name, age") == (
        "jsonpaths has 2 paths but COLUMNS names 3 source columns (id, name, age); "
        "they are matched by position and must be as many"
    )
    assert spec_error(format="json", jsonpaths='["$.a", "$.b", "$.c", "$.d"]').startswith(
        "jsonpaths has 4 paths but the table has only 3 columns (id, name, age)"
    )
    assert spec_error(format="json", json_root="data").startswith("invalid JSON path 'data'")


def test_bad_timezone_and_separator():
    assert spec_error(timezone="Mars/Base") == (
        "invalid timezone 'Mars/Base': use an IANA name such as 'Asia/Shanghai' or 'UTC', or an offset such "
        "as '+08:00'"
    )
    assert (
        spec_error(column_separator="") == "column_separator must not be empty; e.g. ',' or '\\t' or '\\x01'"
    )


def test_bad_default_is_reported():
    cols = [col("k", "INT"), col("v", "TINYINT", default="999")]
    assert spec_error(cols, columns="k") == (
        "column 'v': invalid default value: value '999' is out of range for TINYINT [-128, 127]"
    )


# ---------------------------------------------------------------- helpers


def test_parse_columns_and_paths():
    m = parse_columns("k1, `tmp ts`, v = from_unixtime(`tmp ts`, '%Y,%m'), w=concat(k1, ',')")
    assert m.sources == ("k1", "tmp ts")
    assert m.derived == (("v", "from_unixtime(`tmp ts`, '%Y,%m')"), ("w", "concat(k1, ',')"))
    assert parse_path("$.a['b c'][2].d") == ("a", "b c", 2, "d")
    assert parse_path("$") == ()


def test_parse_expression_tree():
    assert parse_expression("-a + 2 * 3 >= 1 AND NOT b IS NULL", "x") == (
        "and",
        (
            "cmp",
            ">=",
            ("arith", "+", ("neg", ("ref", "a")), ("arith", "*", ("lit", 2), ("lit", 3))),
            ("lit", 1),
        ),
        ("not", ("isnull", ("ref", "b"), False)),
    )
    assert parse_expression("'it''s' = \"a\\tb\"", "x") == ("cmp", "=", ("lit", "it's"), ("lit", "a\tb"))


def test_throughput_json_rows():
    cols = [
        col("id", "BIGINT", nullable=False),
        col("name", "VARCHAR(32)"),
        col("ts", "DATETIME"),
        col("score", "DECIMAL(10,2)"),
        col("age", "INT"),
    ]
    p = plan(
        cols, format="json", strip_outer_array=True, columns="id, name, t, score, age, ts = from_unixtime(t)"
    )
    n = 50_000
    body = orjson.dumps(
        [
            {
                "id": i,
                "name": f"customer-{i:08d}@example.com",
                "t": TS + i,
                "score": i * 0.25,
                "age": 20 + i % 50,
            }
            for i in range(n)
        ]
    )
    start = time.perf_counter()
    r = p.parse(body)
    elapsed = time.perf_counter() - start
    assert len(r.rows) == n
    assert r.rows[1] == (1, "customer-00000001@example.com", "2023-11-15 06:13:21", "0.25", 21)
    print(f"\nJSON load: {n / elapsed:,.0f} rows/s, {len(body) / n:.0f} bytes/row")
