"""Issue 16: every SQL statement of the seeds, run against a real cluster through its MySQL port.

The statements are in tests/sql/seed_statements.sql (its header describes the format). One
cluster (3 BEs and the embedded Kafka broker) serves the whole module; the statements run in the
fixture's order on one pymysql connection, each its own test case (a case that runs alone first
runs the ones before it: later statements need what earlier ones created). A case checks that its
statement succeeds, or fails with the error the fixture expects, and that the result's columns are
the ones the seed shows, in order. Entries marked ``@mysql-client`` also run through Debian's
``mysql`` client exactly as a user types them, ``\\G`` included.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

from deploy.cluster import LocalCluster
from tests.integration.conftest import ClusterFactory
from tests.kafka_support import create_topic, produce, run
from tests.support import assert_eventually

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "sql" / "seed_statements.sql"
# a copy of the seed documents (../shared/seeds, read-only there), so that a clean clone checks the
# fixture against them: tests/unit/test_sql_seed_fixture.py
SEEDS_DIR = Path(__file__).resolve().parents[1] / "sql" / "seeds"
MYSQL = "/usr/bin/mysql"
POLL_TIMEOUT_S = 30.0
KINDS = ("seed", "synopsis", "derived", "setup", "check", "excluded")


# ---------------------------------------------------------------------------- the fixture file


@dataclass
class Capture:
    var: str
    column: str
    where: tuple[str, str] | None = None  # (column, value): the first row whose column is value


@dataclass
class SeedStatement:
    """One entry of seed_statements.sql."""

    id: str
    seed: str = ""
    line: int = 0
    kind: str = ""
    text: str = ""                      # as the user types it (with ; or \G)
    adjust: list[tuple[str, str]] = field(default_factory=list)  # (new, original)
    columns: list[str] | None = None
    columns_shown: tuple[str, int] | None = None
    seed_also: list[tuple[str, int]] = field(default_factory=list)
    error: tuple[int, str] | None = None
    captures: list[Capture] = field(default_factory=list)
    poll: str | None = None
    value: str | None = None
    mysql_client: list[str] | None = None  # None: not run through the mysql client
    notes: list[str] = field(default_factory=list)
    reason: str = ""
    fixture_line: int = 0

    @property
    def sent(self) -> str:
        """What the mysql client sends: the text without its delimiter (``;`` or ``\\G``)."""
        text = self.text.strip()
        while True:
            stripped = text.removesuffix(";").rstrip().removesuffix("\\G").rstrip()
            if stripped == text:
                return text
            text = stripped

    @property
    def vertical(self) -> bool:
        return self.text.rstrip().rstrip(";").rstrip().endswith("\\G")

    @property
    def where(self) -> str:
        return f"{self.id} ({self.seed}:{self.line})"


def _place(value: str, what: str, entry: SeedStatement) -> tuple[str, int]:
    m = re.fullmatch(r"(\S+):(\d+)", value.strip())
    if not m:
        raise ValueError(f"{FIXTURE.name}:{entry.fixture_line}: {what} must be file:line, not {value!r}")
    return m.group(1), int(m.group(2))


def _directive(entry: SeedStatement, key: str, value: str) -> None:
    value = value.strip()
    if key == "seed":
        entry.seed, entry.line = _place(value, "@seed", entry)
    elif key == "seed-also":
        entry.seed_also.append(_place(value, "@seed-also", entry))
    elif key == "kind":
        if value not in KINDS:
            raise ValueError(f"{FIXTURE.name}:{entry.fixture_line}: @kind {value!r} is none of {KINDS}")
        entry.kind = value
    elif key == "adjust":
        new, sep, original = value.partition(" <= ")
        if not sep:
            raise ValueError(f"{FIXTURE.name}:{entry.fixture_line}: @adjust must be 'new <= original'")
        entry.adjust.append((new.strip(), original.strip()))
    elif key == "columns":
        entry.columns = [c.strip() for c in value.split(",")]
    elif key == "columns-shown":
        entry.columns_shown = _place(value, "@columns-shown", entry)
    elif key == "error":
        code, _, text = value.partition(" ")
        entry.error = (int(code), text.strip())
    elif key == "capture":
        m = re.fullmatch(r"(\w+)\s*=\s*(\S+)(?:\s+where\s+(\S+)\s*=\s*(.+))?", value)
        if not m:
            raise ValueError(f"{FIXTURE.name}:{entry.fixture_line}: @capture must be 'VAR = Column [where C = v]'")
        where = (m.group(3), m.group(4).strip()) if m.group(3) else None
        entry.captures.append(Capture(m.group(1), m.group(2), where))
    elif key == "poll":
        entry.poll = value
    elif key == "value":
        entry.value = value
    elif key == "mysql-client":
        entry.mysql_client = value.split()
    elif key == "note":
        entry.notes.append(value)
    elif key == "reason":
        entry.reason = f"{entry.reason} {value}".strip()
    else:
        raise ValueError(f"{FIXTURE.name}:{entry.fixture_line}: unknown directive @{key}")


def load_fixture(path: Path = FIXTURE) -> list[SeedStatement]:
    """Every entry of the fixture file, in order."""
    entries: list[SeedStatement] = []
    current: SeedStatement | None = None
    text: list[str] = []

    def finish() -> None:
        if current is not None:
            current.text = "\n".join(text).strip("\n")
            entries.append(current)

    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"-- @([\w-]+):\s?(.*)$", line)
        if m and m.group(1) == "id":
            finish()
            current, text = SeedStatement(id=m.group(2).strip(), fixture_line=number), []
        elif m:
            if current is None:
                raise ValueError(f"{path.name}:{number}: @{m.group(1)} before the first @id")
            _directive(current, m.group(1), m.group(2))
        elif line.lstrip().startswith("--"):
            continue  # a comment of the file, not part of any statement
        elif current is not None:
            text.append(line)
    finish()
    return entries


STATEMENTS = load_fixture()
RUNNABLE = [s for s in STATEMENTS if s.kind != "excluded"]


# ---------------------------------------------------------------------------- running them


@dataclass
class Outcome:
    statement: SeedStatement
    sql: str = ""
    columns: list[str] | None = None
    rows: list[tuple] = field(default_factory=list)
    error: tuple[int, str] | None = None
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        got = (f"error {self.error[0]}: {self.error[1]}" if self.error
               else f"columns {self.columns}, {len(self.rows)} row(s)")
        return (f"seed statement {self.statement.where} failed:\n  {self.sql}\n  got: {got}\n  "
                + "\n  ".join(self.problems))


def _fill(sql: str, variables: dict[str, str]) -> tuple[str, list[str]]:
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        if m.group(1) in variables:
            return variables[m.group(1)]
        missing.append(m.group(1))
        return m.group(0)

    return re.sub(r"\$\{(\w+)\}", sub, sql), missing


def vertical_fields(output: str) -> list[list[str]]:
    """The field names of each row of the mysql client's ``\\G`` output."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        if re.match(r"\*+ \d+\. row \*+$", line.strip()):
            rows.append([])
        elif rows and (m := re.match(r"\s*([^\s:]+): ", line + " ")):
            rows[-1].append(m.group(1))
    return rows


def table_header(output: str, bordered: bool) -> list[str]:
    """The column names of the mysql client's table (``-t``) or tab-separated output."""
    lines = [line for line in output.splitlines() if line.strip()]
    if bordered:
        header = next((line for line in lines if line.startswith("|")), "")
        return [c.strip() for c in header.strip().strip("|").split("|")] if header else []
    return lines[0].split("\t") if lines else []


class SeedRun:
    """The fixture's statements on one connection, run in order, each once."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.host, self.port = cluster.fe_query_address()
        self.variables: dict[str, str] = {"BROKER": cluster.broker_address}
        self.database: str | None = None
        self.outcomes: list[Outcome] = []
        self.conn = self._connect()

    def _connect(self) -> pymysql.connections.Connection:
        return pymysql.connect(host=self.host, port=self.port, user="root", password="", database=self.database,
                               autocommit=True, connect_timeout=10, read_timeout=120)

    def close(self) -> None:
        try:
            self.conn.close()
        except pymysql.err.Error:
            pass

    def outcome(self, index: int) -> Outcome:
        while len(self.outcomes) <= index:
            self.outcomes.append(self._run(RUNNABLE[len(self.outcomes)]))
        return self.outcomes[index]

    def _execute(self, sql: str) -> tuple[list[str] | None, list[tuple]]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            columns = [d[0] for d in cur.description] if cur.description else None
            return columns, list(cur.fetchall())

    def _run(self, st: SeedStatement) -> Outcome:
        sql, missing = _fill(st.sent, self.variables)
        out = Outcome(st, sql)
        if missing:
            out.problems.append(f"needs ${{{', '.join(missing)}}}, which no statement before it captured")
            return out
        try:
            if st.poll is not None:
                out.columns, out.rows = self._poll(sql, st.poll)
            else:
                out.columns, out.rows = self._execute(sql)
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            out.error = (code, str(exc.args[1] if len(exc.args) > 1 else exc))
            if code in (0, 2006, 2013, 2014) or not self.conn.open:
                out.problems.append("the connection was dropped (a statement must never drop it); reconnected")
                self.conn = self._connect()
        except pymysql.err.MySQLError as exc:
            out.error = (int(exc.args[0]), str(exc.args[1]) if len(exc.args) > 1 else "")
        except AssertionError as exc:  # a poll that timed out
            out.problems.append(str(exc))
            return out
        self._check(st, out)
        if out.error is None and (m := re.match(r"USE\s+`?(\w+)`?\s*$", sql, re.I)):
            self.database = m.group(1)
        if st.mysql_client is not None and out.error is None:
            out.problems += self._mysql_client(st)
        return out

    def _poll(self, sql: str, want: str) -> tuple[list[str] | None, list[tuple]]:
        last: dict[str, tuple] = {}

        def probe() -> bool:
            try:
                last["result"] = self._execute(sql)
            except pymysql.err.InterfaceError:
                raise
            except pymysql.err.MySQLError as exc:
                if isinstance(exc.args[0], int) and exc.args[0] >= 2000:
                    raise  # the client's own errors: the connection is gone
                raise AssertionError(f"{sql} answers error {exc.args[0]}: {exc.args[1]}") from None
            rows = last["result"][1]
            value = str(rows[0][0]) if rows and rows[0] else None
            assert value == want, f"{sql} answers {value!r}, waiting for {want!r}"
            return True

        assert_eventually(probe, timeout_s=POLL_TIMEOUT_S, interval_s=0.2, what=f"{sql} to answer {want}")
        return last["result"]

    def _check(self, st: SeedStatement, out: Outcome) -> None:
        if st.error is not None:
            code, text = st.error
            if out.error is None:
                out.problems.append(f"expected error {code} ({text}), but it succeeded")
            elif out.error[0] != code or text.lower() not in out.error[1].lower():
                out.problems.append(f"expected error {code} containing {text!r}")
            return
        if out.error is not None:
            out.problems.append("expected success")
            return
        if st.value is not None:
            value = str(out.rows[0][0]) if out.rows and out.rows[0] else None
            if value != st.value:
                out.problems.append(f"expected {st.value!r} in the first column of the first row, got {value!r}")
        if st.columns is not None and out.columns != st.columns:
            out.problems.append(f"expected the columns the seed shows: {st.columns}"
                                + _column_diff(st.columns, out.columns or []))
        for cap in st.captures:
            value = self._capture(cap, out)
            if value is None:
                out.problems.append(f"cannot capture {cap.var} = {cap.column}"
                                    + (f" where {cap.where[0]} = {cap.where[1]}" if cap.where else "")
                                    + f" from columns {out.columns} and {len(out.rows)} row(s)")
            else:
                self.variables[cap.var] = value

    @staticmethod
    def _capture(cap: Capture, out: Outcome) -> str | None:
        columns = out.columns or []
        if cap.column not in columns:
            return None
        rows = out.rows
        if cap.where is not None:
            if cap.where[0] not in columns:
                return None
            i, want = columns.index(cap.where[0]), cap.where[1]
            # StarRocks 2.x named databases default_cluster:<name>
            rows = [r for r in rows if str(r[i]) == want or str(r[i]).endswith(":" + want)]
        return str(rows[0][columns.index(cap.column)]) if rows else None

    # ---- the mysql client

    def _mysql_client(self, st: SeedStatement) -> list[str]:
        if not (os.path.exists(MYSQL) and os.access(MYSQL, os.X_OK)):
            return [f"{MYSQL} is missing: run `make mysql-client` (Debian's mariadb-client)"]
        typed, _ = _fill(st.text.strip(), self.variables)
        cmd = [MYSQL, f"-h{self.host}", f"-P{self.port}", "-uroot", *st.mysql_client, "-e", typed]
        shown = " ".join(cmd[:-2] + ["-e", json.dumps(typed)])
        want = st.columns
        state: dict[str, object] = {}

        def probe() -> bool:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            state["proc"] = proc
            assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.strip()}"
            if want is None:
                return True
            if st.vertical:
                rows = vertical_fields(proc.stdout)
                assert rows, "no row in the \\G output yet"
                state["got"] = rows[0]
            else:
                state["got"] = table_header(proc.stdout, "-t" in st.mysql_client)
                assert state["got"], "no header in the output yet (no rows?)"
            return True

        try:
            assert_eventually(probe, timeout_s=POLL_TIMEOUT_S, interval_s=0.5, what=f"`{shown}`")
        except AssertionError as exc:
            return [f"mysql client: {exc}"]
        if want is not None and state["got"] != want:
            proc = state["proc"]
            assert isinstance(proc, subprocess.CompletedProcess)
            return [f"mysql client `{shown}` shows {state['got']}, the seed shows {want}"
                    + _column_diff(want, state["got"])  # type: ignore[arg-type]
                    + f"\n  output:\n{proc.stdout[:2000]}"]
        return []


def _column_diff(want: list[str], got: list[str]) -> str:
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"not in the seed {extra}")
    if not parts and want != got:
        parts.append("same names, another order")
    return " (" + "; ".join(parts) + ")"


# ---------------------------------------------------------------------------- the cluster


def _events() -> list[tuple[int, bytes]]:
    return [(p, json.dumps({"event_time": f"2025-11-20 10:00:0{p}", "user_id": 100 + p, "action": "click",
                            "page": f"/p{p}"}).encode()) for p in range(3)]


def _orders() -> list[tuple[int, bytes]]:
    # the seed's progress {"0":"1", ...}: two messages, both in partition 0
    return [(0, json.dumps({"commodity_id": str(i), "customer_name": f"customer{i}", "country": "CN",
                            "pay_time": 1660118940 + i, "price": 10.5 + i}).encode()) for i in (1, 2)]


def _users() -> list[tuple[int, bytes]]:
    return [(0, json.dumps({"registertime": 1493987388929, "userid": "User_3", "regionid": "Region_8",
                            "gender": "OTHER"}).encode())]


@contextmanager
def seeds_cluster(tmp_path_factory, name: str) -> Iterator[LocalCluster]:
    """3 BEs and the embedded broker, with the topics the seeds' jobs read (their messages are
    what the seeds describe); stopped by pid at the end."""
    factory = ClusterFactory(str(tmp_path_factory.mktemp(name)))
    try:
        cluster = factory(3, with_broker=True, fe_config={"routine_load_task_consume_second": "1"})
        broker = cluster.broker_address
        for topic, partitions, messages in (("ordertest2", 5, _orders()), ("events", 3, _events()),
                                            ("users", 1, _users())):
            run(create_topic(broker, topic, partitions))
            run(produce(broker, topic, messages))
        yield cluster
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory) -> Iterator[SeedRun]:
    with seeds_cluster(tmp_path_factory, "sql_seeds") as cluster:
        session = SeedRun(cluster)
        try:
            yield session
        finally:
            session.close()


@pytest.mark.parametrize("index", range(len(RUNNABLE)), ids=[s.id for s in RUNNABLE])
def test_seed_statement(seed_run: SeedRun, index: int) -> None:
    outcome = seed_run.outcome(index)
    assert not outcome.problems, outcome.report()


class MysqlClientRun(SeedRun):
    """The same statements, in the same order, each typed into Debian's ``mysql`` client
    (``mysql -h -P -uroot [-D db] -e "<statement>"``, its output piped: tab-separated, a header
    line then the rows; ``--column-type-info`` makes it print the header of an empty result too):
    what a user of the seeds does."""

    def _connect(self):  # the client connects anew for each statement
        return None

    def close(self) -> None:
        pass

    def _mysql_client(self, st: SeedStatement) -> list[str]:
        return []  # every statement goes through the client here

    def _execute(self, sql: str) -> tuple[list[str] | None, list[tuple]]:
        cmd = [MYSQL, f"-h{self.host}", f"-P{self.port}", "-uroot", "--column-type-info"]
        if self.database:
            cmd.append(f"-D{self.database}")
        proc = subprocess.run([*cmd, "-e", sql], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            m = re.search(r"ERROR (\d+) \((\w+)\)(?: at line \d+)?: (.*)", proc.stderr, re.S)
            if m is None:
                raise pymysql.err.ProgrammingError(2000, f"mysql exit {proc.returncode}: {proc.stderr.strip()}")
            raise pymysql.err.ProgrammingError(int(m.group(1)), m.group(3).strip())
        lines = proc.stdout.splitlines()
        if not lines:
            return None, []  # an OK packet
        unescape = lambda v: v.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")  # noqa: E731
        return lines[0].split("\t"), [tuple(unescape(v) for v in line.split("\t")) for line in lines[1:]]


@pytest.fixture(scope="module")
def client_run(tmp_path_factory) -> Iterator[MysqlClientRun]:
    with seeds_cluster(tmp_path_factory, "sql_seeds_client") as cluster:
        yield MysqlClientRun(cluster)


@pytest.mark.parametrize("index", range(len(RUNNABLE)), ids=[s.id for s in RUNNABLE])
def test_seed_statement_in_the_mysql_client(client_run: MysqlClientRun, index: int) -> None:
    """Every seed statement as typed into Debian's mysql client, with the same checks: the
    statements run verbatim from a real client (issue 16)."""
    outcome = client_run.outcome(index)
    assert not outcome.problems, outcome.report()


def test_mysql_client_is_installed() -> None:
    """The @mysql-client entries need Debian's client; say how to get it rather than skip them."""
    assert shutil.which("mysql") or os.path.exists(MYSQL), f"{MYSQL} is missing: run `make mysql-client`"
