import decimal

import pytest

from common.coltypes import (
    Column,
    ColumnType,
    ConversionError,
    convert,
    convert_default,
    parse_datetime,
    parse_type,
    validate_column,
)


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("int", ColumnType("INT"), "INT"),
        ("INTEGER", ColumnType("INT"), "INT"),
        ("int(11)", ColumnType("INT"), "INT"),
        ("BooLean", ColumnType("BOOLEAN"), "BOOLEAN"),
        ("tinyint", ColumnType("TINYINT"), "TINYINT"),
        ("largeint", ColumnType("LARGEINT"), "LARGEINT"),
        ("decimal", ColumnType("DECIMAL", precision=10, scale=0), "DECIMAL(10,0)"),
        ("decimal(10)", ColumnType("DECIMAL", precision=10, scale=0), "DECIMAL(10,0)"),
        (" Decimal( 10 , 2 ) ", ColumnType("DECIMAL", precision=10, scale=2), "DECIMAL(10,2)"),
        ("DECIMAL(38,38)", ColumnType("DECIMAL", precision=38, scale=38), "DECIMAL(38,38)"),
        ("varchar(64)", ColumnType("VARCHAR", length=64), "VARCHAR(64)"),
        ("VARCHAR", ColumnType("VARCHAR", length=65533), "VARCHAR(65533)"),
        ("char", ColumnType("CHAR", length=1), "CHAR(1)"),
        ("CHAR(8)", ColumnType("CHAR", length=8), "CHAR(8)"),
        ("string", ColumnType("STRING"), "STRING"),
        ("date", ColumnType("DATE"), "DATE"),
        ("datetime", ColumnType("DATETIME"), "DATETIME"),
        ("json", ColumnType("JSON"), "JSON"),
        ("float", ColumnType("FLOAT"), "FLOAT"),
        ("double", ColumnType("DOUBLE"), "DOUBLE"),
    ],
)
def test_parse_type(text, expected, canonical):
    t = parse_type(text)
    assert t == expected
    assert str(t) == canonical
    assert parse_type(str(t)) == t


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("TEXTBLOB", "invalid column type 'TEXTBLOB'; allowed types: BOOLEAN, TINYINT"),
        ("DECIMAL(39,2)", "DECIMAL(p,s) needs 1<=p<=38 and 0<=s<=p"),
        ("DECIMAL(0)", "DECIMAL(p,s) needs 1<=p<=38 and 0<=s<=p"),
        ("DECIMAL(5,6)", "DECIMAL(p,s) needs 1<=p<=38 and 0<=s<=p"),
        ("CHAR(256)", "CHAR(n) needs 1<=n<=255"),
        ("CHAR(0)", "CHAR(n) needs 1<=n<=255"),
        ("VARCHAR(1048577)", "VARCHAR(n) needs 1<=n<=1048576"),
        ("VARCHAR(3,4)", "VARCHAR(n) takes one length"),
        ("DATE(3)", "invalid column type 'DATE(3)'; allowed types:"),
        ("INT(1,2)", "invalid column type 'INT(1,2)'"),
        ("", "invalid column type ''"),
        ("INT)", "invalid column type 'INT)'"),
    ],
)
def test_parse_type_errors(text, fragment):
    with pytest.raises(ValueError) as e:
        parse_type(text)
    assert fragment in str(e.value)
    assert text in str(e.value)


def test_allowed_types_listed_in_error():
    with pytest.raises(ValueError, match=r"VARCHAR\(n\) with 1<=n<=1048576, STRING, DATE, DATETIME, JSON"):
        parse_type("blob")


def test_column_dict_round_trip():
    col = Column("price", parse_type("DECIMAL(10,2)"), nullable=False, default="1.5", is_key=True)
    d = col.to_dict()
    assert d == {
        "name": "price",
        "type": "DECIMAL(10,2)",
        "nullable": False,
        "default": "1.5",
        "is_key": True,
    }
    assert Column.from_dict(d) == col
    assert Column.from_dict({"name": "c", "type": "int"}) == Column("c", ColumnType("INT"))


def c(value, type_text, strict=False):
    return convert(value, parse_type(type_text), strict=strict)


def err(value, type_text, strict=False) -> str:
    with pytest.raises(ConversionError) as e:
        c(value, type_text, strict)
    return str(e.value)


@pytest.mark.parametrize(
    ("kind", "lo", "hi"),
    [
        ("TINYINT", -128, 127),
        ("SMALLINT", -32768, 32767),
        ("INT", -2147483648, 2147483647),
        ("BIGINT", -(2**63), 2**63 - 1),
        ("LARGEINT", -(2**127), 2**127 - 1),
    ],
)
def test_integer_ranges(kind, lo, hi):
    assert c(str(lo), kind) == lo
    assert c(hi, kind) == hi
    assert err(str(hi + 1), kind) == f"value '{hi + 1}' is out of range for {kind} [{lo}, {hi}]"
    assert err(lo - 1, kind) == f"value '{lo - 1}' is out of range for {kind} [{lo}, {hi}]"


def test_integer_parsing():
    assert c(" 42 ", "INT") == 42
    assert c("+7", "INT") == 7
    assert c(True, "INT") == 1
    assert c(3.0, "INT", strict=True) == 3
    assert c(None, "INT") is None
    assert err("abc", "INT") == "value 'abc' is not a valid INT"
    assert err("1_000", "INT") == "value '1_000' is not a valid INT"
    assert err("", "INT") == "value '' is not a valid INT"
    assert err([1], "INT") == "value '[1]' is not a valid INT"
    assert err("１２", "INT") == "value '１２' is not a valid INT"


def test_integer_fraction_truncates_only_when_not_strict():
    assert c("12.7", "INT") == 12
    assert c(-3.9, "BIGINT") == -3
    assert err("12.7", "INT", strict=True) == "value '12.7' is not a valid INT"
    assert err(12.5, "INT", strict=True) == "value '12.5' is not a valid INT (it has a fractional part)"


def test_float_and_double():
    assert c("1.5", "DOUBLE") == 1.5
    assert c(3, "FLOAT") == 3.0
    assert c("-2e3", "DOUBLE") == -2000.0
    assert err("inf", "DOUBLE") == "value 'inf' is not a valid DOUBLE"
    assert err("nan", "FLOAT") == "value 'nan' is not a valid FLOAT"
    assert err("x1", "DOUBLE") == "value 'x1' is not a valid DOUBLE"
    assert err("1e39", "FLOAT") == "value '1e39' is out of range for FLOAT"
    assert c("1e39", "DOUBLE") == 1e39
    assert err("1e400", "DOUBLE") == "value '1e400' is out of range for DOUBLE"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        (" True ", True),
        (1, True),
        (0, False),
        (False, False),
    ],
)
def test_boolean(value, expected):
    assert c(value, "BOOLEAN") is expected


def test_boolean_errors():
    assert err("yes", "BOOLEAN") == "value 'yes' is not a valid BOOLEAN (allowed: true, false, 1, 0)"
    assert err(2, "BOOLEAN") == "value '2' is not a valid BOOLEAN (allowed: true, false, 1, 0)"


@pytest.mark.parametrize(
    ("value", "type_text", "expected"),
    [
        ("1.005", "DECIMAL(5,2)", "1.01"),
        ("1.004", "DECIMAL(5,2)", "1.00"),
        ("-1.005", "DECIMAL(5,2)", "-1.01"),
        ("2.5", "DECIMAL(5,0)", "3"),
        ("7", "DECIMAL(5,2)", "7.00"),
        (0.1, "DECIMAL(5,3)", "0.100"),
        (12, "DECIMAL(4,1)", "12.0"),
        ("-0.001", "DECIMAL(5,2)", "0.00"),
        ("1e2", "DECIMAL(5,1)", "100.0"),
        (decimal.Decimal("3.14159"), "DECIMAL(10,4)", "3.1416"),
        ("12345678901234567890123456789012345678", "DECIMAL(38,0)", "12345678901234567890123456789012345678"),
        ("999.995", "DECIMAL(6,2)", "1000.00"),
    ],
)
def test_decimal(value, type_text, expected):
    assert c(value, type_text) == expected


def test_decimal_errors():
    assert err("999.995", "DECIMAL(5,2)") == (
        "value '999.995' is out of range for DECIMAL(5,2): at most 3 integer digits"
    )
    assert (
        err("1000", "DECIMAL(5,2)")
        == "value '1000' is out of range for DECIMAL(5,2): at most 3 integer digits"
    )
    assert err("abc", "DECIMAL(5,2)") == "value 'abc' is not a valid DECIMAL(5,2)"
    assert err("NaN", "DECIMAL(5,2)") == "value 'NaN' is not a valid DECIMAL(5,2)"
    assert err("1e999999999", "DECIMAL(5,2)") == "value '1e999999999' is not a valid DECIMAL(5,2)"


def test_strings_length_in_bytes():
    assert c("abcd", "VARCHAR(4)") == "abcd"
    assert c("日本", "VARCHAR(6)") == "日本"
    assert err("日本語", "VARCHAR(6)") == "value '日本語' is too long for VARCHAR(6): 9 bytes > 6"
    assert err("abc", "CHAR(2)") == "value 'abc' is too long for CHAR(2): 3 bytes > 2"
    assert c("é", "CHAR(2)") == "é"
    assert c(12, "VARCHAR(10)") == "12"
    assert c(1.5, "STRING") == "1.5"
    assert c(True, "STRING") == "true"
    assert c({"a": [1, 2]}, "VARCHAR(20)") == '{"a":[1,2]}'
    assert c("x" * 65533, "STRING") == "x" * 65533
    assert err("x" * 65534, "STRING").endswith("is too long for STRING: 65534 bytes > 65533")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-05", "2024-01-05"),
        ("20240105", "2024-01-05"),
        ("2024/01/05", "2024-01-05"),
        ("2024-1-5", "2024-01-05"),
        ("2024-01-05 10:11:12", "2024-01-05"),
        ("2024-01-05T10:11:12.123", "2024-01-05"),
        (20240105, "2024-01-05"),
        ("2024-02-29", "2024-02-29"),
    ],
)
def test_date(value, expected):
    assert c(value, "DATE") == expected


@pytest.mark.parametrize("value", ["2023-02-29", "2024-13-01", "2024-01-05 25:00:00", "05/01/2024", "x", 123])
def test_date_errors(value):
    assert err(value, "DATE") == f"value '{value}' is not a valid DATE"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-05 10:11:12", "2024-01-05 10:11:12"),
        ("2024-01-05T10:11:12", "2024-01-05 10:11:12"),
        ("2024-01-05 10:11:12.999999", "2024-01-05 10:11:12"),
        ("2024-01-05", "2024-01-05 00:00:00"),
        ("2024/01/05 1:2:3", "2024-01-05 01:02:03"),
        ("20240105101112", "2024-01-05 10:11:12"),
        ("2024-01-05 10:11", "2024-01-05 10:11:00"),
    ],
)
def test_datetime(value, expected):
    assert c(value, "DATETIME") == expected


@pytest.mark.parametrize(
    "value", ["2024-01-05 10:61:00", "2024-01-05 10:00:00+08:00", "2024-W01-1 10:00:00", "tomorrow"]
)
def test_datetime_errors(value):
    assert err(value, "DATETIME") == f"value '{value}' is not a valid DATETIME"


def test_parse_datetime():
    assert parse_datetime("2024-03-04 05:06:07").isoformat() == "2024-03-04T05:06:07"
    with pytest.raises(ValueError):
        parse_datetime("2024-03-04 5")


def test_json():
    assert c('{"a": 1, "b": [true, null]}', "JSON") == '{"a":1,"b":[true,null]}'
    assert c({"k": "v"}, "JSON") == '{"k":"v"}'
    assert c([1, 2.5], "JSON") == "[1,2.5]"
    assert c(3, "JSON") == "3"
    assert c(True, "JSON") == "true"
    assert c('"text"', "JSON") == '"text"'
    assert err("{bad", "JSON") == "value '{bad' is not a valid JSON"
    assert c(None, "JSON") is None


def test_error_message_truncates_long_values():
    msg = err("y" * 300, "INT")
    assert msg == f"value '{'y' * 100}...' is not a valid INT"


def test_convert_default():
    assert convert_default("5", parse_type("INT")) == 5
    assert convert_default(None, parse_type("INT")) is None
    assert convert_default("2.345", parse_type("DECIMAL(5,2)")) == "2.35"
    assert convert_default("current_timestamp", parse_type("DATETIME")) == "CURRENT_TIMESTAMP"
    with pytest.raises(ValueError, match=r"^invalid default value: value 'abc' is not a valid INT$"):
        convert_default("abc", parse_type("INT"))
    with pytest.raises(ValueError, match="a JSON column can only default to NULL"):
        convert_default("{}", parse_type("JSON"))
    with pytest.raises(ValueError, match="is not a valid DATE"):
        convert_default("CURRENT_TIMESTAMP", parse_type("DATE"))


def test_validate_column():
    validate_column(Column("ok_col", parse_type("VARCHAR(3)"), default="abc"))
    with pytest.raises(ValueError) as e:
        validate_column(Column("c1", parse_type("TINYINT"), default="1000"))
    assert (
        str(e.value)
        == "column 'c1': invalid default value: value '1000' is out of range for TINYINT [-128, 127]"
    )
    with pytest.raises(ValueError) as e:
        validate_column(Column("c2", parse_type("VARCHAR(2)"), default="abc"))
    assert (
        str(e.value)
        == "column 'c2': invalid default value: value 'abc' is too long for VARCHAR(2): 3 bytes > 2"
    )
    with pytest.raises(ValueError, match="column 'f' of type DOUBLE cannot be a key column"):
        validate_column(Column("f", parse_type("DOUBLE"), is_key=True))
    with pytest.raises(ValueError, match="invalid column name '1abc'"):
        validate_column(Column("1abc", parse_type("INT")))
    with pytest.raises(ValueError, match="invalid column name ''"):
        validate_column(Column("", parse_type("INT")))
