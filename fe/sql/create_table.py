"""CREATE TABLE in StarRocks' DDL, translated to AdminService's CreateTableRequest.

    CREATE TABLE [IF NOT EXISTS] [db.]t (
        col TYPE [NULL | NOT NULL] [DEFAULT "v"] [COMMENT "..."], ...
    ) [ENGINE = OLAP]
    [DUPLICATE KEY(k1, ...)]
    [COMMENT "..."]
    [PARTITION BY RANGE(col) (
        PARTITION p1 VALUES LESS THAN ("v1"),              -- up to v1
        PARTITION p2 VALUES [("v1"), ("v2")),              -- a fixed range [v1, v2)
        PARTITION p3 VALUES LESS THAN MAXVALUE)]
    [DISTRIBUTED BY HASH(k1, ...) [BUCKETS n]]             -- default: HASH(first key column) BUCKETS 3
    [PROPERTIES ("replication_num" = "3", "write_quorum" = "majority", ...)]

tabletsim's tables are duplicate-key tables (StarRocks' Duplicate Key model): every loaded row is
kept. What the catalog cannot hold is refused with a message saying what to write instead:
PRIMARY/UNIQUE/AGGREGATE KEY models, expression partitioning (``PARTITION BY date_trunc(...)``),
batch partitions (``START ... END ... EVERY``), ``DISTRIBUTED BY RANDOM``, AUTO_INCREMENT.
Column and table COMMENTs are accepted and not kept (CreateTableRequest has no comment), so
SHOW CREATE TABLE shows none.

sqlglot's StarRocks dialect parses all of it but the partition list (``VALUES LESS THAN
MAXVALUE`` and fixed ranges ``VALUES [(...), (...))``, which SHOW CREATE TABLE writes): that
clause is read here from sqlglot's tokens and blanked out (same length, so line and column of a
later syntax error stay right) before sqlglot parses the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from common.gen.tabletsim.v1 import admin_pb2
from fe.sql.result import SqlError, syntax_error

DIALECT = "starrocks"
MAXVALUE = "MAXVALUE"
SHAPE = ("CREATE TABLE [IF NOT EXISTS] [db.]t (col TYPE [NOT NULL] [DEFAULT \"v\"] [COMMENT \"...\"], ...) "
         "[ENGINE = OLAP] [DUPLICATE KEY(col, ...)] [COMMENT \"...\"] [PARTITION BY RANGE(col) (PARTITION p "
         "VALUES LESS THAN (\"v\"), ...)] [DISTRIBUTED BY HASH(col, ...) [BUCKETS n]] "
         "[PROPERTIES (\"k\" = \"v\", ...)]")
_DECIMAL_V3 = re.compile(r"^DECIMAL(?:32|64|128)\b", re.I)  # StarRocks' DECIMAL32/64/128(p,s)


@dataclass
class PartitionClause:
    column: str
    partitions: list[admin_pb2.PartitionDef] = field(default_factory=list)


def is_create_table(sql: str) -> bool:
    return re.match(r"\s*(?:/\*.*?\*/\s*)*CREATE\s+(?:EXTERNAL\s+|TEMPORARY\s+)?TABLE\b", sql, re.I | re.S) is not None


def parse(sql: str, default_db: str) -> admin_pb2.CreateTableRequest:
    """The request of a CREATE TABLE statement; SqlError (syntax error, or what the catalog
    cannot hold) otherwise. ``default_db``: the session's database ("" for none)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql)
    except TokenError as exc:
        raise syntax_error(sql, 0, str(exc).split("\n")[0]) from None
    partition, span = _partition_clause(sql, tokens)
    rest = sql
    if span is not None:
        start, end = span
        rest = sql[:start] + re.sub(r"[^\n]", " ", sql[start:end]) + sql[end:]
    try:
        statements = [e for e in sqlglot.parse(rest, read=DIALECT) if e is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        line, col, highlight = err.get("line") or 1, err.get("col") or 0, err.get("highlight") or ""
        pos = sum(len(t) + 1 for t in rest.split("\n")[:line - 1]) + max(0, col - len(highlight))
        raise syntax_error(sql, pos, f"Unexpected input '{highlight}': {err.get('description') or exc}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Create):
        # sqlglot gives up on a clause it does not know by parsing the statement as a Command
        raise syntax_error(sql, 0, f"cannot parse this statement as {SHAPE}")
    return _request(statements[0], partition, default_db)


# ---------------------------------------------------------------- the partition list, from tokens


class _Tokens:
    def __init__(self, sql: str, tokens: list[Token], i: int) -> None:
        self.sql, self.tokens, self.i = sql, tokens, i

    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def word(self, ahead: int = 0) -> str:
        t = self.peek(ahead)
        return t.text.upper() if t is not None and t.token_type not in (TokenType.STRING, TokenType.IDENTIFIER) else ""

    def take(self, what: str, *types: TokenType, words: tuple[str, ...] = ()) -> Token:
        t = self.peek()
        if t is None or not (t.token_type in types or (words and self.word() in words)):
            raise self.error(f"expecting {what}")
        self.i += 1
        return t

    def error(self, detail: str) -> SqlError:
        t = self.peek()
        if t is None:
            return syntax_error(self.sql, len(self.sql.rstrip()), f"Unexpected end of statement: {detail}")
        return syntax_error(self.sql, t.start, f"Unexpected input '{t.text}': {detail}")


def _partition_clause(sql: str, tokens: list[Token]) -> tuple[PartitionClause | None, tuple[int, int] | None]:
    """``PARTITION BY RANGE(col) (...)`` at the statement's top level, and its span in ``sql``."""
    depth = 0
    for i, t in enumerate(tokens):
        if t.token_type == TokenType.L_PAREN:
            depth += 1
        elif t.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and t.token_type == TokenType.PARTITION_BY:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is None or nxt.token_type != TokenType.RANGE:
                if nxt is not None and nxt.text.upper() == "LIST":
                    raise syntax_error(sql, nxt.start, "PARTITION BY LIST is not supported: tabletsim partitions "
                                       "by RANGE(col) (PARTITION p VALUES LESS THAN (...), ...)")
                return None, None  # expression partitioning: refused once sqlglot parsed it
            clause, end = _read_range(_Tokens(sql, tokens, i + 2))
            return clause, (t.start, end)
    return None, None


def _read_range(ts: _Tokens) -> tuple[PartitionClause, int]:
    ts.take("'(' and the partition column", TokenType.L_PAREN)
    column = ts.take("the partition column", TokenType.VAR, TokenType.IDENTIFIER).text
    if ts.peek() is not None and ts.peek().token_type == TokenType.COMMA:  # type: ignore[union-attr]
        raise ts.error("RANGE takes one partition column here")
    ts.take("')'", TokenType.R_PAREN)
    clause = PartitionClause(column)
    ts.take("'(' and the partitions", TokenType.L_PAREN)
    while True:
        if ts.word() in ("START", "BEGIN"):
            raise ts.error("batch partitions START ... END ... EVERY are not supported: list each partition, "
                           "PARTITION p VALUES LESS THAN (\"...\")")
        ts.take("PARTITION", TokenType.PARTITION)
        name = ts.take("a partition name", TokenType.VAR, TokenType.IDENTIFIER).text
        ts.take("VALUES", TokenType.VALUES)
        if ts.word() == "LESS":
            ts.i += 1
            ts.take("THAN", words=("THAN",))
            clause.partitions.append(admin_pb2.PartitionDef(name=name, values_less_than=_bound(ts)))
        elif ts.peek() is not None and ts.peek().token_type == TokenType.L_BRACKET:  # type: ignore[union-attr]
            ts.i += 1
            lower = _bound(ts)
            ts.take("','", TokenType.COMMA)
            upper = _bound(ts)
            ts.take("')' closing the range [lower, upper)", TokenType.R_PAREN)
            if lower == MAXVALUE:
                raise ts.error(f"partition {name}: a range cannot start at MAXVALUE")
            clause.partitions.append(admin_pb2.PartitionDef(name=name, values_less_than=upper, lower=lower))
        else:
            raise ts.error("expecting LESS THAN (...) or [(lower), (upper))")
        if ts.peek() is not None and ts.peek().token_type == TokenType.L_PAREN:  # type: ignore[union-attr]
            raise ts.error(f"partition {name}: per-partition properties are not supported")
        end = ts.take("',' or ')'", TokenType.COMMA, TokenType.R_PAREN)
        if end.token_type == TokenType.R_PAREN:
            return clause, end.end + 1


def _bound(ts: _Tokens) -> str:
    """``MAXVALUE``, ``(MAXVALUE)`` or ``("value")``: one value (a range of one column)."""
    if ts.word() == MAXVALUE:
        ts.i += 1
        return MAXVALUE
    ts.take("'(' and a value", TokenType.L_PAREN)
    if ts.word() == MAXVALUE:
        ts.i += 1
        value = MAXVALUE
    else:
        sign = ""
        if ts.peek() is not None and ts.peek().token_type == TokenType.DASH:  # type: ignore[union-attr]
            ts.i += 1
            sign = "-"
        value = sign + ts.take("a value (\"2024-01-01\", 100)", TokenType.STRING, TokenType.NUMBER).text
    if ts.peek() is not None and ts.peek().token_type == TokenType.COMMA:  # type: ignore[union-attr]
        raise ts.error("one value per bound: RANGE takes one partition column here")
    ts.take("')'", TokenType.R_PAREN)
    return value


# ---------------------------------------------------------------- the rest, from sqlglot's tree


def _name(node: exp.Expression | None) -> str:
    return node.name if node is not None else ""


def _text(node: exp.Expression) -> str:
    """A literal's value as text ("3", "majority")."""
    if isinstance(node, exp.Literal):
        return node.this
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return f"-{node.this.this}"
    if isinstance(node, exp.Boolean):
        return "true" if node.this else "false"
    return node.name or node.sql(DIALECT)


def _refuse(what: str) -> SqlError:
    return SqlError(f"CREATE TABLE: {what}")


def _request(create: exp.Create, partition: PartitionClause | None, default_db: str) -> admin_pb2.CreateTableRequest:
    kind = (create.args.get("kind") or "").upper()
    if kind != "TABLE":
        raise _refuse(f"CREATE {kind} is not supported")
    schema = create.this
    if create.args.get("expression") is not None or not isinstance(schema, exp.Schema):
        raise _refuse("CREATE TABLE ... AS SELECT and CREATE TABLE ... LIKE are not supported: give the columns")
    table = schema.this
    db = _name(table.args.get("db")) or default_db
    if not db:
        raise SqlError("No database selected", 1046, "3D000")
    req = admin_pb2.CreateTableRequest(db=db, table=table.name, if_not_exists=bool(create.args.get("exists")))
    for item in schema.expressions:
        if not isinstance(item, exp.ColumnDef):
            raise _refuse(f"'{item.sql(DIALECT)}' is not supported: tabletsim's tables are duplicate-key tables "
                          "(DUPLICATE KEY(...)); PRIMARY, UNIQUE and AGGREGATE KEY models are not")
        req.columns.append(_column(item))
    for prop in (create.args.get("properties") or exp.Properties(expressions=[])).expressions:
        _property(req, prop)
    if partition is not None:
        req.partition_column = partition.column
        req.partitions.extend(partition.partitions)
    if not req.distributed_by and req.columns:
        # StarRocks 3.1+ buckets randomly without DISTRIBUTED BY; tabletsim's tablets are hash
        # buckets: of the first key column (SHOW CREATE TABLE shows the choice)
        req.distributed_by.append(req.duplicate_key[0] if req.duplicate_key else req.columns[0].name)
    return req


def _column(col: exp.ColumnDef) -> admin_pb2.ColumnDef:
    kind = col.args.get("kind")
    if kind is None:
        raise _refuse(f"column '{col.name}' has no type")
    type_text = _DECIMAL_V3.sub("DECIMAL", kind.sql(DIALECT))
    out = admin_pb2.ColumnDef(name=col.name, type=type_text)
    for constraint in col.args.get("constraints") or []:
        c = constraint.args.get("kind")
        if isinstance(c, exp.NotNullColumnConstraint):
            out.not_null = not c.args.get("allow_null")
        elif isinstance(c, exp.DefaultColumnConstraint):
            value = c.this
            if isinstance(value, exp.Null):
                out.ClearField("default")
            elif isinstance(value, exp.CurrentTimestamp | exp.CurrentDatetime):
                out.default = "CURRENT_TIMESTAMP"
            else:
                out.default = _text(value)
        elif isinstance(c, exp.CommentColumnConstraint):
            pass  # accepted, not kept (see the module docstring)
        elif isinstance(c, exp.AutoIncrementColumnConstraint):
            raise _refuse(f"column '{col.name}': AUTO_INCREMENT is not supported")
        else:
            raise _refuse(f"column '{col.name}': '{constraint.sql(DIALECT)}' is not supported (aggregate columns "
                          "belong to the AGGREGATE KEY model; tabletsim's tables are duplicate-key tables)")
    return out


def _property(req: admin_pb2.CreateTableRequest, prop: exp.Expression) -> None:
    if isinstance(prop, exp.EngineProperty):
        if _name(prop.this).upper() != "OLAP":
            raise _refuse(f"ENGINE = {_name(prop.this)} is not supported: tables are OLAP tables")
    elif isinstance(prop, exp.DuplicateKeyProperty):
        req.duplicate_key.extend(e.name for e in prop.expressions)
    elif isinstance(prop, exp.SchemaCommentProperty):
        pass  # accepted, not kept
    elif isinstance(prop, exp.DistributedByProperty):
        if (prop.args.get("kind") or "").upper() != "HASH":
            raise _refuse("DISTRIBUTED BY RANDOM is not supported: use DISTRIBUTED BY HASH(col, ...) [BUCKETS n]")
        req.distributed_by.extend(e.name for e in prop.expressions)
        buckets = prop.args.get("buckets")
        if buckets is not None:
            try:
                req.buckets = int(_text(buckets))
            except ValueError:
                raise _refuse(f"BUCKETS {buckets.sql(DIALECT)}: expected a number of buckets") from None
    elif isinstance(prop, exp.PartitionedByProperty | exp.PartitionByRangeProperty):
        raise _refuse(f"'{prop.sql(DIALECT)}' is not supported: tabletsim partitions by RANGE(col) "
                      "(PARTITION p1 VALUES LESS THAN (\"...\"), ...); expression partitioning is not supported")
    elif isinstance(prop, exp.UniqueKeyProperty) or type(prop).__name__ in ("PrimaryKey", "AggregateKeyProperty"):
        raise _refuse(f"'{prop.sql(DIALECT)}' is not supported: tabletsim's tables are duplicate-key tables "
                      "(DUPLICATE KEY(...))")
    elif type(prop) is exp.Property:  # "name" = "value" of PROPERTIES (...)
        req.properties[_text(prop.this)] = _text(prop.args["value"])
    else:
        raise _refuse(f"'{prop.sql(DIALECT)}' is not supported")
