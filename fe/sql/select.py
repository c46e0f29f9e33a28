"""SELECT over one table, answered by AdminService's Query.

    SELECT [DISTINCT] item, ... FROM [db.]t [AS alias]
    [WHERE cond] [GROUP BY col, ...] [ORDER BY key [ASC|DESC], ...] [LIMIT [offset,] n]

    item: col | * | count(*) | count(col) | sum(col) | min(col) | max(col) | avg(col) [[AS] name]
    cond: AND / OR / NOT of col <op> constant (=, !=, <>, <, <=, >, >=), col [NOT] IN (...),
          col [NOT] BETWEEN a AND b, col IS [NOT] NULL, col [NOT] LIKE 'pattern'

Query takes an AND of simple predicates, the aggregates with one group_by column, and a limit
(fe/service/query.py); the BEs evaluate those next to the data. A SELECT is answered one of
three ways:

- **aggregate**: aggregates and/or one GROUP BY column (or ``SELECT DISTINCT col``), every WHERE
  condition a predicate Query takes: one Query, the BEs aggregate (two-phase, as StarRocks does);
- **rows**: no aggregate, every condition a Query predicate, no ORDER BY: one Query with the
  projection and the limit;
- **on the FE**: what Query cannot say (an OR across columns, LIKE, NOT BETWEEN, a comparison of
  two columns, ORDER BY, GROUP BY of several columns, DISTINCT of several columns): Query reads
  the rows matching the conditions it can take (at most MAX_ROWS), and the FE evaluates the rest
  on them, then groups, orders and limits. More matching rows than that is refused with a
  message saying how to narrow the WHERE: never a silently partial answer.

An OR of equalities on one column (``a = 1 OR a = 2``) becomes ``a IN (1, 2)`` and stays on the
BEs; ``NOT a = 1`` becomes ``a != 1``, ``a NOT IN (1, 2)`` ``a != 1 AND a != 2``, BETWEEN two
comparisons.

Result columns are headed as StarRocks heads them: a column by its name as written, an aggregate
``count(*)``, ``sum(amount)``, an alias by the alias. Values are typed by the table's column
types (integers, DECIMAL, DATE ...), so clients convert them as they would StarRocks' values.
NULL sorts first in ascending order and last in descending order, as in StarRocks and MySQL.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import expressions as exp

from common.coltypes import INTEGER_RANGES, Column, ConversionError, convert, parse_type
from common.gen.tabletsim.v1 import admin_pb2, types_pb2
from fe.service.query import AVG_EXTRA_SCALE
from fe.sql.result import ER_SYNTAX, SqlError, SqlResult

DIALECT = "starrocks"
MAX_ROWS = 100_000
"""Rows the FE takes from Query to finish a SELECT itself (or to answer one without LIMIT)."""
ER_BAD_FIELD = 1054  # Unknown column '%s' in '%s', SQLSTATE 42S22
AGGREGATES = {exp.Count: "count", exp.Sum: "sum", exp.Min: "min", exp.Max: "max", exp.Avg: "avg"}
_SELECT_ARGS = {"expressions", "from_", "from", "where", "group", "order", "limit", "offset", "distinct", "hint",
                "kind"}
_CLAUSES = {"with_": "WITH", "with": "WITH", "having": "HAVING", "joins": "JOIN", "laterals": "LATERAL VIEW",
            "qualify": "QUALIFY", "windows": "WINDOW", "locks": "FOR UPDATE", "pivots": "PIVOT",
            "sample": "TABLESAMPLE", "into": "INTO", "cluster": "CLUSTER BY", "distribute": "DISTRIBUTE BY",
            "sort": "SORT BY", "connect": "CONNECT BY", "prewhere": "PREWHERE", "settings": "SETTINGS"}
_OPS = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NEGATE = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
WHERE_TAKES = ("WHERE takes AND / OR / NOT of comparisons (=, !=, <, <=, >, >=) of a column with a constant "
               "or another column, [NOT] IN (...), [NOT] BETWEEN, IS [NOT] NULL and [NOT] LIKE")


def refuse(message: str) -> SqlError:
    return SqlError(message, ER_SYNTAX, "HY000")


# ---------------------------------------------------------------- values


def columns_of(desc: admin_pb2.DescribeTableResponse) -> list[Column]:
    """The table's columns, typed, from DescribeTable."""
    return [Column(c.field, parse_type(c.type), nullable=c.null.upper() == "YES") for c in desc.columns]


def value_of(text: str, kind: str) -> Any:
    """A value of Query's text (``NULL`` for null) as the Python value of its kind."""
    if text == "NULL":
        return None
    if kind in INTEGER_RANGES or kind == "LARGEINT":
        return int(text)
    if kind in ("FLOAT", "DOUBLE"):
        return float(text)
    if kind == "DECIMAL":
        return decimal.Decimal(text)
    if kind == "BOOLEAN":
        return text == "true"
    if kind == "DATE":
        return _dt.date.fromisoformat(text)
    if kind == "DATETIME":
        return _dt.datetime.fromisoformat(text)
    return text


def typed(value: Any, col: Column) -> Any:
    """A stored value (common/coltypes.py) as it compares: DECIMAL a Decimal, DATE/DATETIME
    dates."""
    if value is None:
        return None
    kind = col.type.kind
    if kind == "DECIMAL":
        return decimal.Decimal(value)
    if kind == "DATE" and isinstance(value, str):
        return _dt.date.fromisoformat(value)
    if kind == "DATETIME" and isinstance(value, str):
        return _dt.datetime.fromisoformat(value)
    return value


def _literal(node: exp.Expression) -> tuple[bool, Any]:
    """(True, value) for a constant: a string as text, a number as Decimal, TRUE/FALSE, NULL
    as None; (False, None) for anything else."""
    if isinstance(node, exp.Paren):
        return _literal(node.this)
    if isinstance(node, exp.Null):
        return True, None
    if isinstance(node, exp.Boolean):
        return True, bool(node.this)
    if isinstance(node, exp.Literal):
        return True, node.this if node.is_string else decimal.Decimal(node.this)
    if isinstance(node, exp.Neg):
        ok, value = _literal(node.this)
        if ok and isinstance(value, decimal.Decimal):
            return True, -value
    if isinstance(node, exp.Cast | exp.TryCast):  # DATE '2024-01-01', CAST('x' AS DATE): the constant
        return _literal(node.this)
    return False, None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return format(value, "f") if isinstance(value, decimal.Decimal) else str(value)


def constant_for(value: Any, col: Column) -> Any:
    """A constant compared with ``col``, as the column's typed value; SqlError naming both when
    it does not fit (a string for an INT column ...)."""
    if value is None:
        return None
    try:
        return typed(convert(_text(value), col.type, strict=True), col)
    except ConversionError as exc:
        raise refuse(f"cannot compare column '{col.name}' ({col.type}) with {_text(value)!r}: {exc}") from None


# ---------------------------------------------------------------- the plan


@dataclass
class Item:
    """One result column: a table column, or an aggregate (``column`` None: count(*))."""

    header: str
    column: Column | None = None
    func: str = ""
    text: str = ""  # as StarRocks heads it without an alias: the column's name, 'count(*)', 'sum(amount)'

    @property
    def kind(self) -> str:
        """The kind of the result's values."""
        if self.func == "count":
            return "BIGINT"
        if self.func == "avg":
            assert self.column is not None
            return "DECIMAL" if self.column.type.kind == "DECIMAL" else "DOUBLE"
        if self.func == "sum":
            assert self.column is not None
            kind = self.column.type.kind
            return "BIGINT" if kind in INTEGER_RANGES or kind == "LARGEINT" else kind
        assert self.column is not None
        return self.column.type.kind


@dataclass
class Plan:
    """A SELECT checked against its table; :meth:`request` is its Query, :meth:`finish` turns
    the answer into the result."""

    db: str
    table: str
    columns: list[Column]
    items: list[Item]
    predicates: list[types_pb2.Predicate] = field(default_factory=list)
    residual: Callable[[dict[str, Any]], bool | None] | None = None
    group_by: list[Column] = field(default_factory=list)
    aggregate: bool = False
    distinct: bool = False
    order: list[tuple[int, bool, bool]] = field(default_factory=list)  # (key index, desc, nulls first)
    hidden: list[Column] = field(default_factory=list)  # ORDER BY columns not selected (rows only)
    residual_columns: set[str] = field(default_factory=set)
    limit: int | None = None
    offset: int = 0

    @property
    def mode(self) -> str:
        if self.residual is None and self.aggregate and len(self.group_by) <= 1:
            return "aggregate"
        if self.residual is None and not self.aggregate and not self.order and not self.distinct:
            return "rows"
        return "fe"

    def request(self) -> admin_pb2.QueryRequest:
        req = admin_pb2.QueryRequest(db=self.db, table=self.table, predicates=self.predicates)
        mode = self.mode
        if mode == "aggregate":
            req.aggregates.extend(types_pb2.Aggregate(func=i.func, column=i.column.name if i.column else "*")
                                  for i in self.items if i.func)
            req.group_by = self.group_by[0].name if self.group_by else ""
            if self.limit is not None and not self.order and not self.distinct:
                req.limit = self.offset + self.limit
        elif mode == "rows":
            req.columns.extend(i.column.name for i in self.items)  # type: ignore[union-attr]
            req.limit = min(self.offset + self.limit, MAX_ROWS) if self.limit is not None else MAX_ROWS
        else:
            req.columns.extend(c.name for c in self.needed())
            req.limit = MAX_ROWS
        return req

    def needed(self) -> list[Column]:
        """The columns the FE reads to finish the SELECT itself, in the table's order."""
        names = {c.name for c in self.group_by} | {c.name for c in self.hidden}
        names |= {i.column.name for i in self.items if i.column is not None}
        names |= self.residual_columns
        return [c for c in self.columns if c.name in names] or self.columns[:1]

    def finish(self, resp: admin_pb2.QueryResponse) -> SqlResult:
        mode = self.mode
        if mode == "aggregate":
            rows = self._aggregate_rows(resp)
        elif mode == "rows":
            if self.limit is None or self.offset + self.limit > MAX_ROWS:
                self._check_all(resp, "has no LIMIT" if self.limit is None else f"asks for {self.offset + self.limit} rows")
            kinds = [i.column.type.kind for i in self.items]  # type: ignore[union-attr]
            rows = [tuple(value_of(v, k) for v, k in zip(r.values, kinds, strict=True)) for r in resp.rows]
        else:
            self._check_all(resp, "is finished on the FE (it has an OR across columns, LIKE, NOT BETWEEN, a "
                                  "comparison of columns, ORDER BY, GROUP BY of several columns or DISTINCT)")
            rows = self._on_fe(resp)
        return self._shape(rows)

    # -- the aggregate answer: Query's columns are [group_by,] aggregates in request order
    def _aggregate_rows(self, resp: admin_pb2.QueryResponse) -> list[tuple]:
        first = 1 if self.group_by else 0
        out = []
        for r in resp.rows:
            row, j = [], first
            for item in self.items:
                if item.func:
                    row.append(value_of(r.values[j], item.kind))
                    j += 1
                else:
                    row.append(value_of(r.values[0], item.kind))
            out.append(tuple(row))
        return out

    def _check_all(self, resp: admin_pb2.QueryResponse, why: str) -> None:
        if resp.count <= len(resp.rows):
            return
        narrow = ("narrow the WHERE with conditions the BEs evaluate (an AND of =, !=, <, <=, >, >=, IN, BETWEEN, "
                  "IS [NOT] NULL on columns, or an OR of equalities on one column)")
        raise refuse(f"this SELECT {why}, and {resp.count} rows match: more than the {MAX_ROWS} rows the FE "
                     f"reads at once; {'add a LIMIT of at most that, or ' + narrow if self.mode == 'rows' else narrow}")

    def _on_fe(self, resp: admin_pb2.QueryResponse) -> list[tuple]:
        needed = self.needed()
        rows = [{c.name: value_of(v, c.type.kind) for c, v in zip(needed, r.values, strict=True)}
                for r in resp.rows]
        if self.residual is not None:
            test = self.residual
            rows = [row for row in rows if test(row)]
        if self.aggregate:
            return aggregate(rows, self.group_by, self.items)
        return [tuple(row[i.column.name] for i in self.items)  # type: ignore[union-attr]
                + tuple(row[c.name] for c in self.hidden) for row in rows]

    def _shape(self, rows: list[tuple]) -> SqlResult:
        if self.distinct:
            rows = list(dict.fromkeys(rows))
        for index, desc, nulls_first in reversed(self.order):  # stable sorts, least significant key first
            present = [r for r in rows if r[index] is not None]
            nulls = [r for r in rows if r[index] is None]
            present.sort(key=lambda r, i=index: r[i], reverse=desc)
            rows = nulls + present if nulls_first else present + nulls
        if self.offset or self.limit is not None:
            rows = rows[self.offset:None if self.limit is None else self.offset + self.limit]
        width = len(self.items)
        return SqlResult(columns=[i.header for i in self.items], rows=[r[:width] for r in rows])


def aggregate(rows: list[dict[str, Any]], group_by: list[Column], items: list[Item]) -> list[tuple]:
    """The FE's own aggregation of rows already filtered, with Query's rules: one row per group
    in group order (NULL first), one row without GROUP BY even over no row; count(col) counts
    non-NULL values; an aggregate over no value is NULL (count: 0); sums of integers and
    decimals are exact; avg of DECIMAL(p,s) has scale s+4, rounded half up."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c.name] for c in group_by), []).append(row)
    if not group_by and not groups:
        groups[()] = []
    keys = sorted(groups, key=lambda k: tuple((v is not None, v) for v in k))
    out = []
    for key in keys:
        members = groups[key]
        row = []
        for item in items:
            if not item.func:
                assert item.column is not None
                row.append(key[[c.name for c in group_by].index(item.column.name)])
                continue
            if item.column is None:
                row.append(len(members))
                continue
            values = [m[item.column.name] for m in members if m[item.column.name] is not None]
            row.append(_fold(item, values))
        out.append(tuple(row))
    return out


def _fold(item: Item, values: list[Any]) -> Any:
    if item.func == "count":
        return len(values)
    if not values:
        return None
    if item.func == "min":
        return min(values)
    if item.func == "max":
        return max(values)
    total = sum(values[1:], values[0])
    if item.func == "sum":
        return total
    assert item.column is not None
    if item.column.type.kind == "DECIMAL":
        scale = (item.column.type.scale or 0) + AVG_EXTRA_SCALE
        ctx = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_UP)
        return ctx.divide(total, len(values)).quantize(decimal.Decimal(1).scaleb(-scale), context=ctx)
    return total / len(values)


# ---------------------------------------------------------------- from sqlglot's tree to a plan


def source(select: exp.Select, default_db: str) -> tuple[str, str, str]:
    """(db, table, alias) of the one table a SELECT reads; SqlError for anything else."""
    for key, clause in _CLAUSES.items():
        if select.args.get(key):
            raise refuse(f"{clause} is not supported: a SELECT here reads one table, with WHERE, GROUP BY, "
                         "ORDER BY and LIMIT")
    unknown = sorted(k for k, v in select.args.items() if v and k not in _SELECT_ARGS and k not in _CLAUSES)
    if unknown:
        raise refuse(f"this SELECT uses {', '.join(unknown)}, which is not supported")
    frm = select.args.get("from_") or select.args.get("from")
    table = frm.this if frm is not None else None
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        raise refuse(f"FROM {table.sql(DIALECT) if table is not None else ''}: a SELECT here reads one table "
                     "by name ([db.]table), not a subquery or a table function")
    if table.args.get("catalog") and table.args["catalog"].name.lower() != "default_catalog":
        raise refuse(f"catalog '{table.args['catalog'].name}' is not supported: tables live in default_catalog")
    db = table.args["db"].name if table.args.get("db") else default_db
    if not db:
        raise SqlError("No database selected", 1046, "3D000")
    return db, table.name, table.alias


class _Resolver:
    def __init__(self, columns: list[Column], table: str, alias: str) -> None:
        self.by_name = {c.name.lower(): c for c in columns}
        self.names = ", ".join(c.name for c in columns)
        self.qualifiers = {table.lower(), alias.lower()} - {""}
        self.table = table

    def column(self, node: exp.Column) -> Column:
        qualifier = node.table
        if qualifier and qualifier.lower() not in self.qualifiers:
            raise SqlError(f"Unknown column '{node.sql(DIALECT)}' in 'field list': the SELECT reads "
                           f"'{self.table}'", ER_BAD_FIELD, "42S22")
        col = self.by_name.get(node.name.lower())
        if col is None:
            raise SqlError(f"Unknown column '{node.name}' in '{self.table}'; its columns: {self.names}",
                           ER_BAD_FIELD, "42S22")
        return col


def plan(select: exp.Select, columns: list[Column], db: str, table: str, alias: str = "") -> Plan:
    """Check a SELECT against its table's columns (DescribeTable): a Plan, or SqlError saying
    what is not supported and what is."""
    names = _Resolver(columns, table, alias)
    items = _items(select, columns, names)
    p = Plan(db=db, table=table, columns=columns, items=items, distinct=bool(select.args.get("distinct")))
    if isinstance(select.args.get("distinct"), exp.Distinct) and select.args["distinct"].args.get("on"):
        raise refuse("DISTINCT ON is not supported")
    group = select.args.get("group")
    if group is not None:
        for key in group.expressions:
            p.group_by.append(_group_column(key, items, names))
    p.aggregate = any(i.func for i in items) or bool(p.group_by)
    if p.aggregate:
        grouped = {c.name for c in p.group_by}
        for i in items:
            if not i.func and i.column is not None and i.column.name not in grouped:
                raise refuse(f"'{i.header}' must be an aggregate expression or appear in GROUP BY clause")
    elif p.distinct and len(items) == 1:
        p.aggregate, p.group_by, p.distinct = True, [items[0].column], False  # type: ignore[list-item]
    where = select.args.get("where")
    if where is not None:
        residual: list[exp.Expression] = []
        for conjunct in _conjuncts(where.this):
            pushed = pushdown(conjunct, names)
            if pushed is None:
                residual.append(conjunct)
            else:
                p.predicates.extend(pushed)
        if residual:
            p.residual_columns = {c.name for r in residual for c in map(names.column, r.find_all(exp.Column))}
            tests = [compile_condition(r, names) for r in residual]
            p.residual = lambda row: all(t(row) for t in tests)
    _order(select, p, names)
    _limit(select, p)
    return p


def _items(select: exp.Select, columns: list[Column], names: _Resolver) -> list[Item]:
    items: list[Item] = []
    for node in select.expressions:
        alias = ""
        if isinstance(node, exp.Alias):
            alias, node = node.alias, node.this
        if isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star)):
            items.extend(Item(c.name, c, text=c.name) for c in columns)
        elif isinstance(node, exp.Column):
            items.append(Item(alias or node.name, names.column(node), text=node.name))
        elif type(node) in AGGREGATES:
            func = AGGREGATES[type(node)]
            arg = node.this
            if isinstance(arg, exp.Distinct):
                raise refuse(f"{func}(DISTINCT ...) is not supported: use SELECT DISTINCT col or GROUP BY col")
            if isinstance(arg, exp.Star) and func == "count":
                items.append(Item(alias or "count(*)", None, func, "count(*)"))
            elif isinstance(arg, exp.Column) and not node.expressions:
                items.append(Item(alias or f"{func}({arg.name})", names.column(arg), func, f"{func}({arg.name})"))
            else:
                raise refuse(f"'{node.sql(DIALECT)}' is not supported: aggregates take one column "
                             "(count(*), count(col), sum(col), min(col), max(col), avg(col))")
        else:
            raise refuse(f"'{node.sql(DIALECT)}' in the select list is not supported: select columns, * and "
                         "count(*), count/sum/min/max/avg(col)")
    return items


def _group_column(key: exp.Expression, items: list[Item], names: _Resolver) -> Column:
    if isinstance(key, exp.Literal) and not key.is_string:  # GROUP BY 1
        n = int(key.this)
        if not 1 <= n <= len(items) or items[n - 1].column is None or items[n - 1].func:
            raise refuse(f"GROUP BY {n}: no selected column at that position")
        return items[n - 1].column  # type: ignore[return-value]
    if isinstance(key, exp.Column):
        for i in items:  # an alias of a selected column
            if not i.func and i.header.lower() == key.name.lower() and not key.table and i.column is not None:
                if key.name.lower() not in names.by_name:
                    return i.column
        return names.column(key)
    raise refuse(f"GROUP BY {key.sql(DIALECT)}: group by columns")


def _order(select: exp.Select, p: Plan, names: _Resolver) -> None:
    order = select.args.get("order")
    if order is None:
        return
    for ordered in order.expressions:
        key, desc = ordered.this, bool(ordered.args.get("desc"))
        nulls_first = ordered.args.get("nulls_first")
        nulls_first = (not desc) if nulls_first is None else bool(nulls_first)
        p.order.append((_order_index(key, p, names), desc, nulls_first))


def _order_index(key: exp.Expression, p: Plan, names: _Resolver) -> int:
    if isinstance(key, exp.Literal) and not key.is_string:  # ORDER BY 2
        n = int(key.this)
        if not 1 <= n <= len(p.items):
            raise refuse(f"ORDER BY {n}: the select list has {len(p.items)} columns")
        return n - 1
    text = key.sql(DIALECT).lower()
    bare = key.name.lower() if isinstance(key, exp.Column) and not key.table else ""
    for i, item in enumerate(p.items):  # an alias, a header, or the aggregate as written
        if item.header.lower() in (bare, text) or (item.func and item.text.lower() == text):
            return i
    if isinstance(key, exp.Column):
        col = names.column(key)
        for i, item in enumerate(p.items):
            if not item.func and item.column is not None and item.column.name == col.name:
                return i
        if p.aggregate or p.distinct:
            raise refuse(f"ORDER BY {key.sql(DIALECT)}: order a SELECT with GROUP BY, aggregates or DISTINCT "
                         "by its selected columns")
        if col not in p.hidden:
            p.hidden.append(col)
        return len(p.items) + p.hidden.index(col)
    raise refuse(f"ORDER BY {key.sql(DIALECT)} is not supported: order by selected columns, their aliases or "
                 "positions, or by columns of the table")


def _limit(select: exp.Select, p: Plan) -> None:
    for key in ("limit", "offset"):
        clause = select.args.get(key)
        if clause is None:
            continue
        ok, value = _literal(clause.expression)
        if not ok or not isinstance(value, decimal.Decimal) or value < 0 or value != int(value):
            raise refuse(f"{key.upper()} {clause.expression.sql(DIALECT)}: expected a non-negative integer")
        if key == "limit":
            p.limit = int(value)
        else:
            p.offset = int(value)


# ---------------------------------------------------------------- WHERE: what Query takes


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _comparison(node: exp.Expression, names: _Resolver) -> tuple[Column, str, Any] | None:
    """(column, op, constant) of ``col op constant`` or ``constant op col``; None otherwise."""
    op = _OPS.get(type(node))  # type: ignore[arg-type]
    if op is None:
        return None
    left, right = _unparen(node.this), _unparen(node.expression)
    if isinstance(left, exp.Column):
        ok, value = _literal(right)
        if ok and value is not None:
            return names.column(left), op, value
    if isinstance(right, exp.Column):
        ok, value = _literal(left)
        if ok and value is not None:
            return names.column(right), _FLIP[op], value
    return None


def _predicate(col: Column, op: str, *values: Any) -> types_pb2.Predicate:
    for v in values:
        constant_for(v, col)  # a constant that does not fit the column fails here, named
    if op == "IN":
        return types_pb2.Predicate(column=col.name, op="IN", values=[_text(v) for v in values])
    if op in ("IS NULL", "IS NOT NULL"):
        return types_pb2.Predicate(column=col.name, op=op)
    return types_pb2.Predicate(column=col.name, op=op, value=_text(values[0]))


def pushdown(node: exp.Expression, names: _Resolver) -> list[types_pb2.Predicate] | None:
    """The Query predicates (ANDed) equal to one condition; None when Query cannot say it."""
    node = _unparen(node)
    if (cmp := _comparison(node, names)) is not None:
        return [_predicate(*cmp)]
    if isinstance(node, exp.In) and isinstance(_unparen(node.this), exp.Column) and not node.args.get("query"):
        values = [_literal(v) for v in node.expressions]
        if values and all(ok and v is not None for ok, v in values):
            return [_predicate(names.column(_unparen(node.this)), "IN", *(v for _, v in values))]
        return None
    if isinstance(node, exp.Between) and isinstance(_unparen(node.this), exp.Column):
        (ok1, low), (ok2, high) = _literal(node.args["low"]), _literal(node.args["high"])
        if ok1 and ok2 and low is not None and high is not None:
            col = names.column(_unparen(node.this))
            return [_predicate(col, ">=", low), _predicate(col, "<=", high)]
        return None
    if isinstance(node, exp.Is) and isinstance(_unparen(node.this), exp.Column) and isinstance(node.expression, exp.Null):
        return [_predicate(names.column(_unparen(node.this)), "IS NULL")]
    if isinstance(node, exp.Not):
        inner = _unparen(node.this)
        if isinstance(inner, exp.Is) and isinstance(_unparen(inner.this), exp.Column) \
                and isinstance(inner.expression, exp.Null):
            return [_predicate(names.column(_unparen(inner.this)), "IS NOT NULL")]
        if (cmp := _comparison(inner, names)) is not None:  # NOT a < 1: a >= 1 (NULL stays out either way)
            col, op, value = cmp
            return [_predicate(col, _NEGATE[op], value)]
        if isinstance(inner, exp.In) and isinstance(_unparen(inner.this), exp.Column) and not inner.args.get("query"):
            values = [_literal(v) for v in inner.expressions]
            if values and all(ok and v is not None for ok, v in values):
                col = names.column(_unparen(inner.this))
                return [_predicate(col, "!=", v) for _, v in values]
        return None
    if isinstance(node, exp.Or):  # a = 1 OR a IN (2, 3): a IN (1, 2, 3)
        column, values = None, []
        for leaf in _disjuncts(node):
            pushed = pushdown(leaf, names)
            if not pushed or len(pushed) != 1 or pushed[0].op not in ("=", "IN"):
                return None
            pred = pushed[0]
            if column is not None and pred.column != column:
                return None
            column = pred.column
            values += list(pred.values) if pred.op == "IN" else [pred.value]
        return [types_pb2.Predicate(column=column, op="IN", values=list(dict.fromkeys(values)))]
    return None


def _disjuncts(node: exp.Expression) -> list[exp.Expression]:
    node = _unparen(node)
    if isinstance(node, exp.Or):
        return _disjuncts(node.this) + _disjuncts(node.expression)
    return [node]


# ---------------------------------------------------------------- WHERE: what the FE evaluates

Test = Callable[[dict[str, Any]], Any]


def compile_condition(node: exp.Expression, names: _Resolver) -> Test:
    """A function of a row (column name -> typed value) answering True, False or None (SQL's
    unknown), for what Query cannot take; SqlError for what is not supported at all."""
    node = _unparen(node)
    if isinstance(node, exp.And | exp.Or):
        left, right = compile_condition(node.this, names), compile_condition(node.expression, names)
        if isinstance(node, exp.And):
            return lambda row: _and(left(row), right(row))
        return lambda row: _or(left(row), right(row))
    if isinstance(node, exp.Not):
        inner = compile_condition(node.this, names)
        return lambda row: None if (v := inner(row)) is None else not v
    if type(node) in _OPS:
        return _compare(_OPS[type(node)], node.this, node.expression, names)  # type: ignore[index]
    if isinstance(node, exp.In) and not node.args.get("query"):
        tests = [_compare("=", node.this, v, names) for v in node.expressions]
        return lambda row: _any(t(row) for t in tests)
    if isinstance(node, exp.Between):
        low = _compare(">=", node.this, node.args["low"], names)
        high = _compare("<=", node.this, node.args["high"], names)
        return lambda row: _and(low(row), high(row))
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        subject = _operand(node.this, names, None)[0]
        return lambda row: subject(row) is None
    if isinstance(node, exp.Like | exp.ILike):
        subject = _operand(node.this, names, None)[0]
        ok, pattern = _literal(node.expression)
        if not ok or not isinstance(pattern, str):
            raise refuse(f"'{node.sql(DIALECT)}': LIKE takes a string pattern")
        regex = _like_regex(pattern, isinstance(node, exp.ILike))
        return lambda row: None if (v := subject(row)) is None else regex.fullmatch(_text(v)) is not None
    if isinstance(node, exp.Column):  # WHERE flag (a BOOLEAN column)
        subject = _operand(node, names, None)[0]
        return lambda row: None if (v := subject(row)) is None else bool(v)
    ok, value = _literal(node)
    if ok:  # WHERE TRUE, WHERE 1
        return lambda row: None if value is None else bool(value)
    raise refuse(f"'{node.sql(DIALECT)}' in WHERE is not supported: {WHERE_TAKES}")


def _operand(node: exp.Expression, names: _Resolver, other: Column | None) -> tuple[Test, Column | None]:
    node = _unparen(node)
    if isinstance(node, exp.Column):
        col = names.column(node)
        return (lambda row, n=col.name: row[n]), col
    ok, value = _literal(node)
    if not ok:
        raise refuse(f"'{node.sql(DIALECT)}' in WHERE is not supported: {WHERE_TAKES}")
    constant = constant_for(value, other) if other is not None else value
    return (lambda row: constant), None


def _compare(op: str, left: exp.Expression, right: exp.Expression, names: _Resolver) -> Test:
    lcol = names.column(_unparen(left)) if isinstance(_unparen(left), exp.Column) else None
    rcol = names.column(_unparen(right)) if isinstance(_unparen(right), exp.Column) else None
    lhs, _ = _operand(left, names, rcol)
    rhs, _ = _operand(right, names, lcol)
    if lcol is not None and rcol is not None and _family(lcol) != _family(rcol):
        raise refuse(f"cannot compare '{lcol.name}' ({lcol.type}) with '{rcol.name}' ({rcol.type})")
    fn = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
          "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]

    def test(row: dict[str, Any]) -> bool | None:
        a, b = lhs(row), rhs(row)
        if a is None or b is None:
            return None
        try:
            return fn(a, b)
        except TypeError:
            raise refuse(f"cannot compare {_text(a)!r} with {_text(b)!r}") from None
    return test


def _family(col: Column) -> str:
    kind = col.type.kind
    if kind in INTEGER_RANGES or kind in ("LARGEINT", "FLOAT", "DOUBLE", "DECIMAL"):
        return "number"
    if kind in ("DATE", "DATETIME"):
        return kind
    return "text" if kind in ("CHAR", "VARCHAR", "STRING") else kind


def _like_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S | (re.I if ignore_case else 0))


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _any(values) -> bool | None:
    out: bool | None = False
    for v in values:
        out = _or(out, v)
        if out is True:
            return True
    return out
