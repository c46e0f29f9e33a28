"""The small hand-written grammar of the StarRocks statements sqlglot cannot parse.

:func:`parse` answers ``None`` for a statement that is not one of these (the executor then
gives it to sqlglot), a statement dataclass for one that is, and raises StarRocks' syntax error
(:func:`fe.sql.result.syntax_error`, with the line and column of the offending token and what
was expected there) for one that starts like one of these but is malformed.

Statements (keywords in any case, names plain or `backquoted`, ``db.name`` or the session's
database; a trailing ``;`` or ``\\G`` is accepted)::

    CREATE ROUTINE LOAD [db.]job ON table [load_property [,] ...] [PROPERTIES (...)] FROM KAFKA (...)
    ALTER ROUTINE LOAD [FOR] [db.]job [load_property [,] ...] [PROPERTIES (...)] [FROM KAFKA (...)]
    PAUSE | RESUME | STOP ROUTINE LOAD [FOR] [db.]job
    SHOW [ALL] ROUTINE LOAD [FOR [db.]job] [FROM db] [LIKE 'pattern'] [WHERE State = 'x'] [LIMIT ...]
    SHOW ROUTINE LOAD TASK [FROM db] WHERE JobName = 'job'  |  SHOW ROUTINE LOAD TASK FOR [db.]job
    SHOW BACKENDS | SHOW FRONTENDS | SHOW PROC '/path'
    SHOW TABLET id | SHOW TABLET[S] FROM [db.]table [PARTITION (p, ...)] [WHERE col = v [AND ...]] [LIMIT ...]
    SHOW TRANSACTION [FROM db] [WHERE ID = n | LABEL = 'x' | STATUS = 'x']
    ADMIN SHOW REPLICA STATUS FROM [db.]table [PARTITION (p, ...)] [WHERE STATUS {= | != | <>} 'x']
    ADMIN SHOW REPLICA DISTRIBUTION FROM [db.]table [PARTITION (p, ...)]
    ADMIN [CANCEL] REPAIR TABLE [db.]table [PARTITION (p, ...)]
    ADMIN CHECK TABLET (id, ...) PROPERTIES ("type" = "consistency")
    ADMIN SET FRONTEND CONFIG ("key" = "value"[, ...])
    ADMIN SHOW FRONTEND CONFIG [LIKE 'pattern']
    ALTER SYSTEM {DECOMMISSION | DROP} BACKEND "host:port"[, "host:port" ...]

    load_property := COLUMNS TERMINATED BY 's' | ROWS TERMINATED BY 's' | COLUMNS (col | col = expr, ...)
                   | WHERE expr | [TEMPORARY] PARTITION[S] (p, ...)

COLUMNS and WHERE are kept as text (comments dropped, whitespace folded) for the FE, which
parses and checks them; property values are strings as StarRocks unescapes them (``\\t``, ``\\n``,
``\\"`` ...; an unknown escape such as ``\\x01`` keeps its backslash for the FE to decode).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from fe.sql.result import ER_NOT_SUPPORTED, SqlError, syntax_error

# ---------------------------------------------------------------------------- statements


@dataclass
class AdminStatement:
    """Base of every statement of this grammar."""


@dataclass
class QualifiedName:
    """``[db.]name``: ``db`` is None when the statement leaves it to the session's database."""

    db: str | None
    name: str


@dataclass
class LoadProperties:
    """The load properties of CREATE / ALTER ROUTINE LOAD."""

    column_separator: str | None = None  # COLUMNS TERMINATED BY
    row_delimiter: str | None = None     # ROWS TERMINATED BY
    columns: str = ""                    # COLUMNS (...) text, e.g. "a, b, c = a + b"
    where: str = ""                      # WHERE text
    partitions: list[str] = field(default_factory=list)
    temporary_partitions: bool = False


@dataclass
class Limit:
    count: int
    offset: int = 0


@dataclass
class CreateRoutineLoad(AdminStatement):
    job: QualifiedName
    table: str
    load: LoadProperties
    properties: dict[str, str]
    source_type: str                     # KAFKA
    source_properties: dict[str, str]


@dataclass
class AlterRoutineLoad(AdminStatement):
    job: QualifiedName
    load: LoadProperties
    properties: dict[str, str]
    source_properties: dict[str, str]


@dataclass
class PauseRoutineLoad(AdminStatement):
    job: QualifiedName


@dataclass
class ResumeRoutineLoad(AdminStatement):
    job: QualifiedName


@dataclass
class StopRoutineLoad(AdminStatement):
    job: QualifiedName


@dataclass
class ShowRoutineLoad(AdminStatement):
    include_all: bool = False
    job: QualifiedName | None = None
    db: str | None = None                # FROM db
    like: str | None = None
    state: str | None = None             # WHERE State = '...'
    limit: Limit | None = None


@dataclass
class ShowRoutineLoadTask(AdminStatement):
    job: QualifiedName                   # WHERE JobName = '...' (db from FROM) or FOR [db.]job


@dataclass
class ShowBackends(AdminStatement):
    pass


@dataclass
class ShowFrontends(AdminStatement):
    pass


@dataclass
class ShowTablet(AdminStatement):
    tablet_id: int


@dataclass
class ShowTabletsFrom(AdminStatement):
    table: QualifiedName
    partitions: list[str] = field(default_factory=list)
    filters: list[tuple[str, str]] = field(default_factory=list)  # WHERE col = value AND ...
    limit: Limit | None = None


@dataclass
class ShowProc(AdminStatement):
    path: str


@dataclass
class ShowTransaction(AdminStatement):
    db: str | None = None
    txn_id: int | None = None
    label: str | None = None
    status: str | None = None


@dataclass
class AdminShowReplicaStatus(AdminStatement):
    table: QualifiedName
    partitions: list[str] = field(default_factory=list)
    status: str | None = None
    negate: bool = False                 # WHERE STATUS != '...'


@dataclass
class AdminShowReplicaDistribution(AdminStatement):
    table: QualifiedName
    partitions: list[str] = field(default_factory=list)


@dataclass
class AdminRepairTable(AdminStatement):
    table: QualifiedName
    partitions: list[str] = field(default_factory=list)


@dataclass
class AdminCancelRepairTable(AdminStatement):
    table: QualifiedName
    partitions: list[str] = field(default_factory=list)


@dataclass
class AdminCheckTablets(AdminStatement):
    tablet_ids: list[int]
    properties: dict[str, str]


@dataclass
class AdminSetFrontendConfig(AdminStatement):
    configs: dict[str, str]


@dataclass
class AdminShowFrontendConfig(AdminStatement):
    like: str | None = None


@dataclass
class AlterSystemBackends(AdminStatement):
    action: str                          # DECOMMISSION or DROP
    backends: list[str]                  # "host:port" as written


# ---------------------------------------------------------------------------- tokens

WORD, QIDENT, STRING, NUMBER, PUNCT, END = "word", "qident", "string", "number", "punct", "end"


@dataclass(frozen=True)
class Token:
    kind: str
    value: str   # a word as typed; a name or string unquoted and unescaped; a number's text
    start: int   # offsets into the statement: sql[start:end] is the token's text
    end: int

    def is_kw(self, *words: str) -> bool:
        return self.kind == WORD and self.value.upper() in words


_SPACE_OR_COMMENT = re.compile(r"\s+|--[^\n]*|#[^\n]*|/\*.*?\*/", re.S)
_WORD = re.compile(r"[^\W\d]\w*|\d+[^\W\d]\w*")  # MySQL lets a name start with digits
_NUMBER = re.compile(r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_PUNCT = ("<=>", "<=", ">=", "<>", "!=", "==", "\\G", "\\g", "(", ")", ",", ".", "=", ";", "<", ">",
          "+", "-", "*", "/", "%", "@", ":", "[", "]", "{", "}", "!", "~", "^", "&", "|", "?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "0": "\0", "Z": "\x1a", "\\": "\\", "'": "'", '"': '"'}


def _unescape(body: str) -> str:
    r"""StarRocks' string unescaping; an unknown escape (``\x01``, ``\%``) keeps its backslash."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body, flags=re.S)


def tokenize(sql: str) -> tuple[list[Token], SqlError | None]:
    """The tokens of ``sql`` (ending with an END token) and the lexical error that stopped it, if any."""
    tokens: list[Token] = []
    pos, n = 0, len(sql)
    error: SqlError | None = None
    while pos < n:
        m = _SPACE_OR_COMMENT.match(sql, pos)
        if m:
            pos = m.end()
            continue
        c = sql[pos]
        if sql.startswith("/*", pos):
            error = syntax_error(sql, pos, "Unterminated comment: '/*' without '*/'")
            break
        if c in "'\"`":
            end = _quoted_end(sql, pos)
            if end < 0:
                what = "quoted name" if c == "`" else "string"
                error = syntax_error(sql, pos, f"Unterminated {what} starting with {c}")
                break
            body = sql[pos + 1:end - 1]
            if c == "`":
                tokens.append(Token(QIDENT, body.replace("``", "`"), pos, end))
            else:
                tokens.append(Token(STRING, _unescape(body.replace(c + c, c)), pos, end))
            pos = end
            continue
        m = _NUMBER.match(sql, pos)
        if m and not sql[m.end():m.end() + 1].isalnum() and sql[m.end():m.end() + 1] != "_":
            tokens.append(Token(NUMBER, m.group(0), pos, m.end()))
            pos = m.end()
            continue
        m = _WORD.match(sql, pos)
        if m:
            tokens.append(Token(WORD, m.group(0), pos, m.end()))
            pos = m.end()
            continue
        p = next((p for p in _PUNCT if sql.startswith(p, pos)), None)
        if p is None:
            error = syntax_error(sql, pos, f"Unexpected input '{c}'")
            break
        tokens.append(Token(PUNCT, "\\G" if p in ("\\G", "\\g") else p, pos, pos + len(p)))
        pos += len(p)
    last = tokens[-1].end if tokens else 0
    tokens.append(Token(END, "", last, last))
    return tokens, error


def _quoted_end(sql: str, start: int) -> int:
    """The offset just after the quote closing the quoted text at ``start``; -1 if none.
    Inside, a doubled quote stands for one; in strings a backslash escapes the next character."""
    quote, i, n = sql[start], start + 1, len(sql)
    while i < n:
        c = sql[i]
        if c == "\\" and quote != "`":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return -1


# ---------------------------------------------------------------------------- which statements are ours

_SHOW_OURS = ("ROUTINE", "BACKENDS", "FRONTENDS", "TABLET", "TABLETS", "PROC", "TRANSACTION", "TRANSACTIONS")


def _claims(tokens: list[Token]) -> bool:
    """Whether the statement starts like one of this grammar's (then a malformed one is a syntax
    error here, not sqlglot's business)."""
    first, second, third = (tokens + [tokens[-1]] * 3)[:3]
    if first.is_kw("ADMIN", "PAUSE", "RESUME", "STOP"):
        return True
    if first.is_kw("CREATE"):
        return second.is_kw("ROUTINE")
    if first.is_kw("ALTER"):
        return second.is_kw("ROUTINE", "SYSTEM")
    if first.is_kw("SHOW"):
        return second.is_kw(*_SHOW_OURS) or (second.is_kw("ALL") and third.is_kw("ROUTINE"))
    return False


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql``, cut at its top-level ``;`` and ``\\G`` (not those in quotes or
    comments), terminators left out; pieces holding no token (only blanks or comments) dropped.
    After a lexical error (an unterminated quote) the rest is one piece, for its parser to report."""
    tokens, error = tokenize(sql)
    pieces: list[str] = []
    start, count = 0, 0
    for tok in tokens[:-1]:
        if tok.kind == PUNCT and tok.value in (";", "\\G"):
            if count:
                pieces.append(sql[start:tok.start])
            start, count = tok.end, 0
        else:
            count += 1
    if count or (error is not None and sql[start:].strip()):
        pieces.append(sql[start:])
    return pieces


def parse(sql: str) -> AdminStatement | None:
    """The statement ``sql`` if it is one of this grammar's, None if not (sqlglot's then).

    Raises :class:`SqlError` (StarRocks' "Getting syntax error at line L, column C ...") when it
    starts like one of them but is malformed."""
    tokens, error = tokenize(sql)
    if not _claims(tokens):
        return None
    if error is not None:
        raise error
    return _Parser(sql, tokens).statement()


# ---------------------------------------------------------------------------- the parser

_IDENT = "a legal identifier"
_STRING_ = "a string"
_INTEGER = "an integer"
_EXPRESSION = "an expression"
_EOF = "<EOF>"


def _quote(item: str) -> str:
    return item if item in (_IDENT, _STRING_, _INTEGER, _EXPRESSION, _EOF) else f"'{item}'"


class _Parser:
    """Recursive descent over the tokens. Every failed ``accept`` notes what it looked for, so
    an error names everything that was possible at the offending token (as ANTLR does)."""

    def __init__(self, sql: str, tokens: list[Token]) -> None:
        self.sql = sql
        self.tokens = tokens
        self.i = 0
        self.expected: list[str] = []

    # ---- primitives
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        self.expected = []
        return tok

    def _note(self, *items: str) -> None:
        for item in items:
            if item not in self.expected:
                self.expected.append(item)

    def error(self, *expected: str, tok: Token | None = None) -> SqlError:
        tok = tok or self.tok
        self._note(*expected)
        text = "<EOF>" if tok.kind == END else self.sql[tok.start:tok.end]
        items = list(self.expected)
        if tok.kind == WORD:  # a misspelt keyword: only the keywords that look like it
            word = tok.value.upper()
            close = [item for item in items if difflib.SequenceMatcher(None, word, item).ratio() >= 0.6]
            if close:
                items = sorted(close, key=lambda item: -difflib.SequenceMatcher(None, word, item).ratio())
        shown = ", ".join(_quote(item) for item in items[:8])
        return syntax_error(self.sql, tok.start, f"Unexpected input '{text}', the most similar input is {{{shown}}}")

    def peek_kw(self, *words: str) -> bool:
        return self.tok.is_kw(*words)

    def accept_kw(self, *words: str) -> Token | None:
        if self.tok.is_kw(*words):
            return self._advance()
        self._note(*words)
        return None

    def expect_kw(self, *words: str) -> Token:
        tok = self.accept_kw(*words)
        if tok is None:
            raise self.error()
        return tok

    def accept_punct(self, *puncts: str) -> Token | None:
        if self.tok.kind == PUNCT and self.tok.value in puncts:
            return self._advance()
        self._note(*puncts)
        return None

    def expect_punct(self, *puncts: str) -> Token:
        tok = self.accept_punct(*puncts)
        if tok is None:
            raise self.error()
        return tok

    def ident(self) -> str:
        if self.tok.kind in (WORD, QIDENT):
            return self._advance().value
        raise self.error(_IDENT)

    def string(self) -> str:
        if self.tok.kind == STRING:
            return self._advance().value
        raise self.error(_STRING_)

    def integer(self) -> int:
        if self.tok.kind == NUMBER and self.tok.value.isdigit():
            return int(self._advance().value)
        raise self.error(_INTEGER)

    def qualified(self) -> QualifiedName:
        first = self.ident()
        if self.accept_punct("."):
            return QualifiedName(first, self.ident())
        return QualifiedName(None, first)

    def end(self) -> None:
        """Optional terminators (``;``, ``\\G``), then the end of the statement."""
        while self.tok.kind == PUNCT and self.tok.value in (";", "\\G"):
            self._advance()
        if self.tok.kind != END:
            raise self.error(_EOF)

    # ---- shared clauses
    def properties(self) -> dict[str, str]:
        """``("key" = "value", ...)``; a value may also be a number."""
        self.expect_punct("(")
        props: dict[str, str] = {}
        while True:
            key_tok = self.tok
            key = self.string()
            if key in props:
                raise syntax_error(self.sql, key_tok.start, f"Property '{key}' is given more than once")
            self.expect_punct("=")
            if self.tok.kind == NUMBER:
                props[key] = self._advance().value
            else:
                props[key] = self.string()
            if not self.accept_punct(","):
                break
        self.expect_punct(")")
        return props

    def name_list(self) -> list[str]:
        self.expect_punct("(")
        names = [self.ident()]
        while self.accept_punct(","):
            names.append(self.ident())
        self.expect_punct(")")
        return names

    def opt_partitions(self) -> list[str]:
        if self.accept_kw("PARTITION", "PARTITIONS"):
            return self.name_list()
        return []

    def opt_like(self) -> str | None:
        if self.accept_kw("LIKE"):
            return self.string()
        return None

    def opt_limit(self) -> Limit | None:
        if not self.accept_kw("LIMIT"):
            return None
        first = self.integer()
        if self.accept_punct(","):
            return Limit(self.integer(), first)
        if self.accept_kw("OFFSET"):
            return Limit(first, self.integer())
        return Limit(first)

    def _text(self, start: int, stop: int) -> str:
        """The tokens [start, stop) as text: comments dropped, whitespace folded to one space."""
        parts: list[str] = []
        for k in range(start, stop):
            tok = self.tokens[k]
            if parts and tok.start > self.tokens[k - 1].end:
                parts.append(" ")
            parts.append(self.sql[tok.start:tok.end])
        return "".join(parts)

    def parenthesized_text(self) -> str:
        """``( ... )``: the text inside the balanced parentheses."""
        open_ = self.expect_punct("(")
        start, depth = self.i, 1
        while True:
            tok = self.tok
            if tok.kind == END:
                raise syntax_error(self.sql, open_.start, "Unbalanced parentheses: '(' without ')'")
            if tok.kind == PUNCT and tok.value in "()":
                depth += 1 if tok.value == "(" else -1
                if depth == 0:
                    break
            self._advance()
        text = self._text(start, self.i)
        self._advance()
        return text

    def expression_text(self, *stop_words: str) -> str:
        """An expression up to a top-level ``,``, ``;``, one of ``stop_words`` or the end."""
        start, depth = self.i, 0
        while True:
            tok = self.tok
            if tok.kind == END or (depth == 0 and (tok.is_kw(*stop_words) or (
                    tok.kind == PUNCT and tok.value in (",", ";", "\\G")))):
                break
            if tok.kind == PUNCT and tok.value in "()":
                depth += 1 if tok.value == "(" else -1
                if depth < 0:
                    break
            self._advance()
        if self.i == start:
            raise self.error(_EXPRESSION)
        return self._text(start, self.i)

    # ---- statements
    def statement(self) -> AdminStatement:
        tok = self.tok
        if tok.is_kw("ADMIN"):
            stmt = self.admin()
        elif tok.is_kw("CREATE"):
            stmt = self.create_routine_load()
        elif tok.is_kw("ALTER"):
            stmt = self.alter()
        elif tok.is_kw("PAUSE", "RESUME", "STOP"):
            stmt = self.routine_load_control()
        else:
            stmt = self.show()
        self.end()
        return stmt

    # CREATE ROUTINE LOAD / ALTER ROUTINE LOAD ----------------------------------------------
    def create_routine_load(self) -> CreateRoutineLoad:
        self.expect_kw("CREATE")
        self.expect_kw("ROUTINE")
        self.expect_kw("LOAD")
        job = self.qualified()
        self.expect_kw("ON")
        table = self.ident()
        load = self.load_properties()
        properties = self.properties() if self.accept_kw("PROPERTIES") else {}
        self.expect_kw("FROM")
        source = self.expect_kw("KAFKA").value.upper()
        return CreateRoutineLoad(job, table, load, properties, source, self.properties())

    def alter(self) -> AdminStatement:
        self.expect_kw("ALTER")
        if self.peek_kw("SYSTEM"):
            return self.alter_system()
        self.expect_kw("ROUTINE")
        self.expect_kw("LOAD")
        self.accept_kw("FOR")
        job = self.qualified()
        load = self.load_properties()
        properties = self.properties() if self.accept_kw("PROPERTIES") else {}
        source_properties: dict[str, str] = {}
        if self.accept_kw("FROM"):
            self.expect_kw("KAFKA")
            source_properties = self.properties()
        return AlterRoutineLoad(job, load, properties, source_properties)

    def load_properties(self) -> LoadProperties:
        load = LoadProperties()
        seen: set[str] = set()
        while True:
            tok = self.tok
            if self.accept_kw("COLUMNS"):
                if self.accept_kw("TERMINATED"):
                    self.expect_kw("BY")
                    kind = "COLUMNS TERMINATED BY"
                    load.column_separator = self.string()
                else:
                    kind = "COLUMNS"
                    load.columns = self.parenthesized_text()
            elif self.accept_kw("ROWS"):
                self.expect_kw("TERMINATED")
                self.expect_kw("BY")
                kind = "ROWS TERMINATED BY"
                load.row_delimiter = self.string()
            elif self.accept_kw("WHERE"):
                kind = "WHERE"
                load.where = self.expression_text("PROPERTIES", "FROM", "COLUMNS", "ROWS", "PARTITION",
                                                  "PARTITIONS", "TEMPORARY")
            elif self.peek_kw("TEMPORARY", "PARTITION", "PARTITIONS"):
                load.temporary_partitions = self.accept_kw("TEMPORARY") is not None
                kind = "PARTITION"
                self.expect_kw("PARTITION", "PARTITIONS")
                load.partitions = self.name_list()
            else:
                self._note("TEMPORARY", "PARTITION")
                return load
            if kind in seen:
                raise syntax_error(self.sql, tok.start, f"{kind} is given more than once")
            seen.add(kind)
            self.accept_punct(",")

    def routine_load_control(self) -> AdminStatement:
        verb = self.expect_kw("PAUSE", "RESUME", "STOP").value.upper()
        self.expect_kw("ROUTINE")
        self.expect_kw("LOAD")
        self.accept_kw("FOR")
        job = self.qualified()
        return {"PAUSE": PauseRoutineLoad, "RESUME": ResumeRoutineLoad, "STOP": StopRoutineLoad}[verb](job)

    # ALTER SYSTEM ------------------------------------------------------------------------------
    def alter_system(self) -> AlterSystemBackends:
        self.expect_kw("SYSTEM")
        tok = self.tok
        if tok.is_kw("ADD", "MODIFY", "CANCEL"):
            what = " ".join(t.value.upper() for t in self.tokens[self.i:self.i + 2] if t.kind == WORD)
            raise SqlError(f"ALTER SYSTEM {what} is not supported here: backends register themselves with the "
                           f"FE when they start (make start-be); use ALTER SYSTEM DECOMMISSION BACKEND or "
                           f"ALTER SYSTEM DROP BACKEND", ER_NOT_SUPPORTED, "42000")
        action = self.expect_kw("DECOMMISSION", "DROP").value.upper()
        self.expect_kw("BACKEND", "BACKENDS")
        backends = [self.string()]
        while self.accept_punct(","):
            backends.append(self.string())
        return AlterSystemBackends(action, backends)

    # ADMIN ---------------------------------------------------------------------------------------
    def admin(self) -> AdminStatement:
        self.expect_kw("ADMIN")
        if self.accept_kw("SHOW"):
            if self.accept_kw("REPLICA"):
                kind = self.expect_kw("STATUS", "DISTRIBUTION").value.upper()
                self.expect_kw("FROM")
                table = self.qualified()
                partitions = self.opt_partitions()
                if kind == "DISTRIBUTION":
                    return AdminShowReplicaDistribution(table, partitions)
                stmt = AdminShowReplicaStatus(table, partitions)
                if self.accept_kw("WHERE"):
                    self.expect_kw("STATUS")
                    op = self.expect_punct("=", "!=", "<>").value
                    stmt.status, stmt.negate = self.string(), op != "="
                return stmt
            self.expect_kw("FRONTEND")
            self.expect_kw("CONFIG")
            return AdminShowFrontendConfig(self.opt_like())
        if self.accept_kw("SET"):
            self.expect_kw("FRONTEND")
            self.expect_kw("CONFIG")
            return AdminSetFrontendConfig(self.properties())
        if self.accept_kw("REPAIR"):
            self.expect_kw("TABLE")
            table = self.qualified()
            return AdminRepairTable(table, self.opt_partitions())
        if self.accept_kw("CANCEL"):
            self.expect_kw("REPAIR")
            self.expect_kw("TABLE")
            table = self.qualified()
            return AdminCancelRepairTable(table, self.opt_partitions())
        self.expect_kw("CHECK")
        self.expect_kw("TABLET", "TABLETS")
        self.expect_punct("(")
        ids = [self.integer()]
        while self.accept_punct(","):
            ids.append(self.integer())
        self.expect_punct(")")
        properties = self.properties() if self.accept_kw("PROPERTIES") else {}
        return AdminCheckTablets(ids, properties)

    # SHOW ------------------------------------------------------------------------------------------
    def show(self) -> AdminStatement:
        self.expect_kw("SHOW")
        if self.accept_kw("ALL"):
            self.expect_kw("ROUTINE")
            self.expect_kw("LOAD")
            return self.show_routine_load(include_all=True)
        if self.accept_kw("ROUTINE"):
            self.expect_kw("LOAD")
            if self.accept_kw("TASK"):
                return self.show_routine_load_task()
            return self.show_routine_load(include_all=False)
        if self.accept_kw("BACKENDS"):
            return ShowBackends()
        if self.accept_kw("FRONTENDS"):
            return ShowFrontends()
        if self.accept_kw("PROC"):
            return ShowProc(self.string())
        if self.accept_kw("TRANSACTION", "TRANSACTIONS"):
            return self.show_transaction()
        tablets = self.expect_kw("TABLET", "TABLETS").value.upper() == "TABLETS"
        if not tablets and self.tok.kind == NUMBER:
            return ShowTablet(self.integer())
        if not tablets:
            self._note(_INTEGER)
        self.expect_kw("FROM")
        stmt = ShowTabletsFrom(self.qualified(), self.opt_partitions())
        if self.accept_kw("WHERE"):
            while True:
                column = self.ident()
                self.expect_punct("=")
                if self.tok.kind == NUMBER:
                    value = self._advance().value
                else:
                    value = self.string()
                stmt.filters.append((column, value))
                if not self.accept_kw("AND"):
                    break
        stmt.limit = self.opt_limit()
        return stmt

    def show_routine_load(self, include_all: bool) -> ShowRoutineLoad:
        stmt = ShowRoutineLoad(include_all=include_all)
        if self.accept_kw("FOR"):
            stmt.job = self.qualified()
        if self.accept_kw("FROM", "IN"):
            stmt.db = self.ident()
        stmt.like = self.opt_like()
        if self.accept_kw("WHERE"):
            self.expect_kw("STATE")
            self.expect_punct("=")
            stmt.state = self.string()
        stmt.limit = self.opt_limit()
        return stmt

    def show_routine_load_task(self) -> ShowRoutineLoadTask:
        if self.accept_kw("FOR"):
            return ShowRoutineLoadTask(self.qualified())
        db = self.ident() if self.accept_kw("FROM", "IN") else None
        self.expect_kw("WHERE")
        self.expect_kw("JOBNAME")
        self.expect_punct("=")
        return ShowRoutineLoadTask(QualifiedName(db, self.string()))

    def show_transaction(self) -> ShowTransaction:
        stmt = ShowTransaction()
        if self.accept_kw("FROM", "IN"):
            stmt.db = self.ident()
        if self.accept_kw("WHERE"):
            key = self.expect_kw("ID", "LABEL", "STATUS").value.upper()
            self.expect_punct("=")
            if key == "ID":
                stmt.txn_id = self.integer()
            elif key == "LABEL":
                stmt.label = self.string()
            else:
                stmt.status = self.string()
        return stmt
