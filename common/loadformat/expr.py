"""Expressions of COLUMNS mappings and WHERE filters: parsed once, compiled to closures once.

Grammar (lowest precedence first)::

    or      := and (OR and)*
    and     := not (AND not)*
    not     := NOT not | pred
    pred    := sum [cmp sum | IS [NOT] NULL | [NOT] IN (expr, ...) | [NOT] BETWEEN sum AND sum]
    sum     := term (('+' | '-') term)*
    term    := unary (('*' | '/' | '%') unary)*
    unary   := '-' unary | '+' unary | primary
    primary := number | 'text' | "text" | NULL | TRUE | FALSE | (or)
             | CAST(or AS type) | name(args) | name | `name`

Compilation turns the tree into nested closures taking one context argument; column references
are closures supplied by the caller (``resolve``), so the same compiler serves COLUMNS (context =
the source values) and WHERE (context = target row and source values). Constant sub-trees are
folded at compile time.
"""

from __future__ import annotations

import decimal
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from common.coltypes import STRING_KINDS, ConversionError, converter_for, parse_type
from common.loadformat.functions import FUNCTIONS, NOT_CONST, EvalEnv, to_bool, to_number, to_str
from common.loadformat.spec import LoadSpecError

Node = tuple
Fn = Callable[[object], object]

_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<num>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)
    | (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<qid>`[^`]+`)
    | (?P<op><=|>=|<>|!=|==|[-+*/%(),=<>])
    )""",
    re.X,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "BETWEEN", "CAST", "AS", "TRUE", "FALSE"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def _tokenize(text: str, what: str) -> list[tuple[str, object, int]]:
    tokens: list[tuple[str, object, int]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise LoadSpecError(
                f"cannot parse {what} {text!r}: unexpected {text[pos]!r} at position {pos + 1}"
            )
        kind = m.lastgroup
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "num":
            value: object = int(raw) if raw.isdigit() else float(raw)
            tokens.append(("lit", value, start))
        elif kind == "str":
            quote = raw[0]
            body = raw[1:-1].replace(quote * 2, quote)
            tokens.append(
                ("lit", re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(1)), body), start)
            )
        elif kind == "id" and raw.upper() in _KEYWORDS:
            tokens.append(("kw", raw.upper(), start))
        elif kind == "id":
            tokens.append(("id", raw, start))
        elif kind == "qid":
            tokens.append(("id", raw[1:-1], start))
        else:
            tokens.append(("op", "=" if raw == "==" else raw, start))
        pos = m.end()
    tokens.append(("end", None, len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text, self.what = text, what
        self.tokens = _tokenize(text, what)
        self.i = 0

    def error(self, expected: str) -> LoadSpecError:
        kind, value, pos = self.tokens[self.i]
        got = "end of text" if kind == "end" else repr(value)
        return LoadSpecError(
            f"cannot parse {self.what} {self.text!r}: expected {expected} but found {got} at position {pos + 1}"
        )

    def peek(self, kind: str, value: object = None) -> bool:
        k, v, _ = self.tokens[self.i]
        return k == kind and (value is None or v == value)

    def take(self, kind: str, value: object = None) -> bool:
        if self.peek(kind, value):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, value: object, expected: str) -> None:
        if not self.take(kind, value):
            raise self.error(expected)

    def parse(self) -> Node:
        node = self.or_()
        if not self.peek("end"):
            raise self.error("an operator or the end of the expression")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.take("kw", "OR"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.take("kw", "AND"):
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.take("kw", "NOT"):
            return ("not", self.not_())
        return self.pred()

    def pred(self) -> Node:
        left = self.sum()
        kind, value, _ = self.tokens[self.i]
        if kind == "op" and value in ("=", "!=", "<>", "<", "<=", ">", ">="):
            self.i += 1
            return ("cmp", "!=" if value == "<>" else value, left, self.sum())
        if self.take("kw", "IS"):
            negated = self.take("kw", "NOT")
            self.expect("kw", "NULL", "NULL after IS")
            return ("isnull", left, negated)
        negated = self.take("kw", "NOT")
        if self.take("kw", "IN"):
            self.expect("op", "(", "'(' after IN")
            items = [self.or_()]
            while self.take("op", ","):
                items.append(self.or_())
            self.expect("op", ")", "')' closing the IN list")
            return ("in", left, items, negated)
        if self.take("kw", "BETWEEN"):
            low = self.sum()
            self.expect("kw", "AND", "AND in BETWEEN ... AND ...")
            return ("between", left, low, self.sum(), negated)
        if negated:
            raise self.error("IN or BETWEEN after NOT")
        return left

    def sum(self) -> Node:
        node = self.term()
        while self.peek("op", "+") or self.peek("op", "-"):
            op = self.tokens[self.i][1]
            self.i += 1
            node = ("arith", op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek("op", "*") or self.peek("op", "/") or self.peek("op", "%"):
            op = self.tokens[self.i][1]
            self.i += 1
            node = ("arith", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.take("op", "-"):
            return ("neg", self.unary())
        if self.take("op", "+"):
            return self.unary()
        return self.primary()

    def primary(self) -> Node:
        kind, value, _ = self.tokens[self.i]
        if kind == "lit":
            self.i += 1
            return ("lit", value)
        if kind == "kw" and value in ("NULL", "TRUE", "FALSE"):
            self.i += 1
            return ("lit", {"NULL": None, "TRUE": True, "FALSE": False}[value])
        if self.take("op", "("):
            node = self.or_()
            self.expect("op", ")", "')'")
            return node
        if self.take("kw", "CAST"):
            self.expect("op", "(", "'(' after CAST")
            inner = self.or_()
            self.expect("kw", "AS", "AS in CAST(... AS type)")
            return ("cast", inner, self.type_())
        if kind == "id":
            self.i += 1
            if not self.take("op", "("):
                return ("ref", value)
            args: list[Node] = []
            if not self.take("op", ")"):
                args.append(self.or_())
                while self.take("op", ","):
                    args.append(self.or_())
                self.expect("op", ")", "',' or ')' in the argument list")
            return ("call", value.lower(), args)
        raise self.error("a value, a column name or a function call")

    def type_(self) -> Node:
        if not self.peek("id"):
            raise self.error("a type name")
        parts = [str(self.tokens[self.i][1])]
        self.i += 1
        if self.take("op", "("):
            parts.append("(")
            while not self.take("op", ")"):
                if self.peek("end"):
                    raise self.error("')' closing the type")
                parts.append(str(self.tokens[self.i][1]))
                self.i += 1
            parts.append(")")
        self.expect("op", ")", "')' closing CAST")
        text = "".join(parts)
        try:
            return parse_type(text)
        except ValueError as e:
            raise LoadSpecError(f"cannot parse {self.what} {self.text!r}: {e}") from None


def parse_expression(text: str, what: str) -> Node:
    """Parse ``text``; ``what`` ('WHERE', "the expression of column 'v'") goes into errors."""
    return _Parser(text, what).parse()


def referenced_names(node: Node) -> list[str]:
    """Column names an expression reads, in first-use order."""
    out: list[str] = []

    def walk(n: object) -> None:
        if isinstance(n, tuple) and n and n[0] == "ref":
            if n[1] not in out:
                out.append(n[1])
        elif isinstance(n, tuple | list):
            for child in n:
                walk(child)

    walk(node)
    return out


# ---------------------------------------------------------------- operators


def _mixed(a: object, b: object) -> tuple[object, object] | None:
    """Coerce two non-NULL operands to numbers that Python can combine (Decimal+float -> float)."""
    a, b = to_number(a), to_number(b)
    if a is None or b is None:
        return None
    if type(a) is decimal.Decimal and type(b) is float:
        a = float(a)
    elif type(b) is decimal.Decimal and type(a) is float:
        b = float(b)
    return a, b


def _mod(a: object, b: object) -> object:
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    if type(a) is decimal.Decimal or type(b) is decimal.Decimal:
        return decimal.Decimal(a) % decimal.Decimal(b)
    return math.fmod(a, b)


def _div(a: object, b: object) -> object:
    if type(a) is decimal.Decimal or type(b) is decimal.Decimal:
        return decimal.Decimal(a) / decimal.Decimal(b)
    return a / b


_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": _div, "%": _mod}
_CMP = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _arith_op(op: str) -> Callable[[object, object], object]:
    pyop = _ARITH[op]
    divides = op in ("/", "%")

    def apply(a: object, b: object) -> object:
        if a is None or b is None:
            return None
        ta, tb = type(a), type(b)
        if not ((ta is int or ta is float) and (tb is int or tb is float)):
            pair = _mixed(a, b)
            if pair is None:
                return None
            a, b = pair
        if divides and not b:
            return None  # SQL: division by zero is NULL
        try:
            return pyop(a, b)
        except (ArithmeticError, ValueError):
            return None

    return apply


def _cmp_op(op: str) -> Callable[[object, object], object]:
    pyop = _CMP[op]

    def apply(a: object, b: object) -> object:
        if a is None or b is None:
            return None
        ta, tb = type(a), type(b)
        if ta is not tb and (ta is str or tb is str or ta is bool or tb is bool):
            a, b = to_number(a), to_number(b)
            if a is None or b is None:
                return None
        return pyop(a, b)

    return apply


_EQ = _cmp_op("=")


# ---------------------------------------------------------------- compilation


@dataclass(frozen=True)
class Compiled:
    fn: Fn
    rtype: str | None = None
    """'datetime' / 'date' when the value is always canonical text of that type (or NULL)."""
    const: object = NOT_CONST


def _const(value: object, rtype: str | None = None) -> Compiled:
    return Compiled(lambda ctx: value, rtype, value)


def compile_expression(node: Node, resolve: Callable[[str], Fn], env: EvalEnv, what: str) -> Compiled:
    """Compile a parsed expression; ``resolve(name)`` returns the closure reading a column."""
    return _Compiler(resolve, env, what).compile(node)


class _Compiler:
    def __init__(self, resolve: Callable[[str], Fn], env: EvalEnv, what: str) -> None:
        self.resolve, self.env, self.what = resolve, env, what

    def compile(self, node: Node) -> Compiled:
        return getattr(self, "_c_" + node[0])(node)

    def _fold(self, fn: Callable, parts: list[Compiled], rtype: str | None = None) -> Compiled | None:
        if all(p.const is not NOT_CONST for p in parts):
            return _const(fn(*[p.const for p in parts]), rtype)
        return None

    def _c_lit(self, node: Node) -> Compiled:
        return _const(node[1])

    def _c_ref(self, node: Node) -> Compiled:
        return Compiled(self.resolve(node[1]))

    def _c_neg(self, node: Node) -> Compiled:
        sub = self._binary(_arith_op("-"), ("lit", 0), node[1])
        return sub

    def _c_arith(self, node: Node) -> Compiled:
        return self._binary(_arith_op(node[1]), node[2], node[3])

    def _c_cmp(self, node: Node) -> Compiled:
        return self._binary(_cmp_op(node[1]), node[2], node[3])

    def _binary(self, op: Callable, left: Node, right: Node) -> Compiled:
        lc, rc = self.compile(left), self.compile(right)
        folded = self._fold(op, [lc, rc])
        if folded is not None:
            return folded
        lf, rf = lc.fn, rc.fn
        if rc.const is not NOT_CONST:
            k = rc.const
            return Compiled(lambda ctx: op(lf(ctx), k))
        return Compiled(lambda ctx: op(lf(ctx), rf(ctx)))

    def _c_and(self, node: Node) -> Compiled:
        lc, rc = self.compile(node[1]), self.compile(node[2])

        def and_(a: object, b: object) -> object:
            a, b = to_bool(a), to_bool(b)
            if a is False or b is False:
                return False
            return None if a is None or b is None else True

        folded = self._fold(and_, [lc, rc])
        if folded is not None:
            return folded
        lf, rf = lc.fn, rc.fn

        def run(ctx: object) -> object:
            a = to_bool(lf(ctx))
            if a is False:
                return False
            b = to_bool(rf(ctx))
            if b is False:
                return False
            return None if a is None or b is None else True

        return Compiled(run)

    def _c_or(self, node: Node) -> Compiled:
        lc, rc = self.compile(node[1]), self.compile(node[2])

        def or_(a: object, b: object) -> object:
            a, b = to_bool(a), to_bool(b)
            if a is True or b is True:
                return True
            return None if a is None or b is None else False

        folded = self._fold(or_, [lc, rc])
        if folded is not None:
            return folded
        lf, rf = lc.fn, rc.fn

        def run(ctx: object) -> object:
            a = to_bool(lf(ctx))
            if a is True:
                return True
            b = to_bool(rf(ctx))
            if b is True:
                return True
            return None if a is None or b is None else False

        return Compiled(run)

    def _c_not(self, node: Node) -> Compiled:
        sub = self.compile(node[1])

        def not_(v: object) -> object:
            b = to_bool(v)
            return None if b is None else not b

        folded = self._fold(not_, [sub])
        if folded is not None:
            return folded
        f = sub.fn
        return Compiled(lambda ctx: not_(f(ctx)))

    def _c_isnull(self, node: Node) -> Compiled:
        f, negated = self.compile(node[1]).fn, node[2]
        if negated:
            return Compiled(lambda ctx: f(ctx) is not None)
        return Compiled(lambda ctx: f(ctx) is None)

    def _c_in(self, node: Node) -> Compiled:
        f = self.compile(node[1]).fn
        items = [self.compile(item).fn for item in node[2]]
        negated = node[3]

        def run(ctx: object) -> object:
            v = f(ctx)
            if v is None:
                return None
            saw_null = False
            for item in items:
                r = _EQ(v, item(ctx))
                if r:
                    return not negated
                saw_null |= r is None
            return None if saw_null else negated

        return Compiled(run)

    def _c_between(self, node: Node) -> Compiled:
        f, lo, hi = (self.compile(n).fn for n in node[1:4])
        ge, le, negated = _cmp_op(">="), _cmp_op("<="), node[4]

        def run(ctx: object) -> object:
            v = f(ctx)
            a, b = to_bool(ge(v, lo(ctx))), to_bool(le(v, hi(ctx)))
            if a is False or b is False:
                result: object = False
            elif a is None or b is None:
                return None
            else:
                result = True
            return not result if negated else result

        return Compiled(run)

    def _c_cast(self, node: Node) -> Compiled:
        sub, ctype = self.compile(node[1]), node[2]
        conv = converter_for(ctype, False)
        to_text = ctype.kind in STRING_KINDS
        is_decimal = ctype.kind == "DECIMAL"

        def cast(v: object) -> object:
            if to_text and type(v) is not str:
                v = to_str(v)
            try:
                out = conv(v)
            except ConversionError:
                return None
            return decimal.Decimal(out) if is_decimal and out is not None else out

        rtype = {"DATE": "date", "DATETIME": "datetime"}.get(ctype.kind)
        folded = self._fold(cast, [sub], rtype)
        if folded is not None:
            return folded
        f = sub.fn
        return Compiled(lambda ctx: cast(f(ctx)), rtype)

    def _c_call(self, node: Node) -> Compiled:
        name, arg_nodes = node[1], node[2]
        fdef = FUNCTIONS.get(name)
        if fdef is None:
            raise LoadSpecError(
                f"unknown function {name!r} in {self.what}; known functions: {', '.join(sorted(FUNCTIONS))}"
            )
        n = len(arg_nodes)
        if n < fdef.min_args or (fdef.max_args is not None and n > fdef.max_args):
            arity = (
                f"{fdef.min_args}"
                if fdef.min_args == fdef.max_args
                else f"{fdef.min_args} or more"
                if fdef.max_args is None
                else f"{fdef.min_args} to {fdef.max_args}"
            )
            raise LoadSpecError(f"function {name}() in {self.what} takes {arity} arguments, got {n}")
        args = [self.compile(a) for a in arg_nodes]
        impl = fdef.make(self.env, tuple(a.const for a in args))
        rtype = fdef.rtype
        if name == "from_unixtime" and (n == 1 or args[1].const == "%Y-%m-%d %H:%i:%s"):
            rtype = "datetime"
        if fdef.deterministic:
            folded = self._fold(impl, args, rtype)
            if folded is not None:
                return folded
        fns = [a.fn for a in args]
        if n == 0:
            return Compiled(lambda ctx: impl(), rtype)
        if n == 1:
            a0 = fns[0]
            return Compiled(lambda ctx: impl(a0(ctx)), rtype)
        if n == 2:
            a0, a1 = fns
            return Compiled(lambda ctx: impl(a0(ctx), a1(ctx)), rtype)
        return Compiled(lambda ctx: impl(*[f(ctx) for f in fns]), rtype)
