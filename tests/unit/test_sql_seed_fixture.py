"""tests/sql/seed_statements.sql against the seeds it comes from (issue 16 part 4).

The integration test (tests/integration/test_sql_seeds.py) runs the statements; these tests check
the fixture itself: every statement the seeds show is in it, a seed statement is the seed's text
but for the adjustments it lists, and the expected columns are the ones the seed prints.
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from tests.integration.test_sql_seeds import (
    FIXTURE,
    SEEDS_DIR,
    STATEMENTS,
    SeedStatement,
    load_fixture,
    table_header,
    vertical_fields,
)


def test_the_seed_copies_are_here() -> None:
    """tests/sql/seeds holds the seed documents (copied from ../shared/seeds, which a clean clone
    elsewhere does not have): every check below reads them."""
    assert sorted(p.name for p in SEEDS_DIR.glob("*.txt")) == [
        "000_4bb872322e6562f6.txt", "001_631261746442aac8.txt", "002_45ef3c65b6490bb7.txt",
        "003_d0befc1bf3232b7f.txt", "004_b8eebb1da9616ff6.txt"]

STATEMENT_START = re.compile(r"(CREATE|SHOW|ALTER|PAUSE|RESUME|STOP|ADMIN|SELECT|USE|DROP|INSERT|DELETE|"
                             r"UPDATE|SET|DESC|LOAD|EXPORT|CANCEL)\b")
PROMPT = re.compile(r"^(mysql>|MySQL \[[^\]]*\]>)\s*")


@cache
def seed_lines(name: str) -> list[str]:
    return (SEEDS_DIR / name).read_text().splitlines()


def normalized(text: str) -> str:
    return " ".join(text.split())


def seed_window(name: str, line: int, before: int, after: int) -> str:
    """Seed lines around ``line`` (1-based) as one whitespace-folded text; a Java comment's ``//``
    at the start of a line is dropped so that a statement wrapped over two comment lines is whole."""
    lines = seed_lines(name)[max(0, line - 1 - before):line + after]
    return normalized(" ".join(re.sub(r"^\s*[-+]?\s*//", "", text) for text in lines))


def original_text(st: SeedStatement) -> str:
    text = st.text
    for new, original in st.adjust:
        assert new in text, f"{st.id}: @adjust {new} <= {original}, but the text has no {new}"
        text = text.replace(new, original)
    return text


def shown_columns(name: str, line: int) -> list[str]:
    """The column names the seed prints at ``line``: a table header, or a ``\\G`` listing from there."""
    lines = seed_lines(name)
    text = lines[line - 1]
    if text.strip().startswith("|"):
        return [c.strip() for c in text.strip().strip("|").split("|")]
    fields = []
    for text in lines[line - 1:]:
        if text.strip().startswith(("*", "```")):
            break
        fields.append(text.split(":", 1)[0].strip())
    return fields


# ---------------------------------------------------------------------------- the file itself


def test_fixture_entries_are_complete() -> None:
    ids = [s.id for s in STATEMENTS]
    assert len(ids) == len(set(ids)), f"repeated ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    for st in STATEMENTS:
        assert st.seed and st.line > 0, f"{st.id}: no @seed file:line"
        assert st.kind, f"{st.id}: no @kind"
        assert st.text.strip(), f"{st.id}: no statement text"
        if st.kind == "excluded":
            assert st.reason, f"{st.id}: excluded without a @reason"
            assert not (st.columns or st.error or st.captures or st.mysql_client is not None
                        or st.poll is not None or st.value is not None), \
                f"{st.id}: an excluded entry is not run: it expects nothing"
        else:
            assert not st.reason, f"{st.id}: @reason is for excluded entries (use @note)"
        if st.columns is not None:
            assert st.columns_shown is not None, f"{st.id}: @columns without @columns-shown"
            assert all(st.columns), f"{st.id}: an empty column name in @columns"
        if st.adjust:
            assert st.kind == "seed", f"{st.id}: @adjust is for seed statements"


def test_placeholders_are_known_before_use() -> None:
    known = {"BROKER"}
    for st in STATEMENTS:
        if st.kind == "excluded":
            continue
        used = set(re.findall(r"\$\{(\w+)\}", st.text))
        assert used <= known, f"{st.id} uses {sorted(used - known)} before any statement captures it"
        known |= {c.var for c in st.captures}


def test_every_statement_sent_without_its_delimiter() -> None:
    for st in STATEMENTS:
        if st.kind != "excluded":
            assert not st.sent.endswith((";", "\\G")), st.id
    st = SeedStatement(id="x", text="SHOW ROUTINE LOAD FOR app.rt_events_rl\\G;")
    assert st.sent == "SHOW ROUTINE LOAD FOR app.rt_events_rl" and st.vertical
    st = SeedStatement(id="x", text="SHOW ROUTINE LOAD FOR example_tbl2_ordertest2 \\G")
    assert st.sent == "SHOW ROUTINE LOAD FOR example_tbl2_ordertest2" and st.vertical
    st = SeedStatement(id="x", text="SHOW PROC '/statistic';")
    assert st.sent == "SHOW PROC '/statistic'" and not st.vertical


def test_fixture_parser_keeps_sql_comments_inside_a_statement(tmp_path) -> None:
    path = tmp_path / "f.sql"
    path.write_text("-- header\n--   @id: not-an-entry\n\n-- @id: a\n-- @seed: s.txt:3\n-- @kind: seed\n"
                    "-- @columns: A, B\n-- @columns-shown: s.txt:5\n-- @capture: V = A where B = x\n"
                    "SELECT 1, -- one\n 2;\n\n-- ===== a section\n\n"
                    "-- @id: b\n-- @seed: s.txt:9\n-- @kind: excluded\n-- @reason: not SQL\n-- @reason: at all\n"
                    "x = 1\n")
    a, b = load_fixture(path)
    assert (a.id, a.seed, a.line, a.kind, a.columns, a.columns_shown) == ("a", "s.txt", 3, "seed", ["A", "B"],
                                                                          ("s.txt", 5))
    assert a.text == "SELECT 1, -- one\n 2;" and a.captures[0].where == ("B", "x")
    assert (b.id, b.kind, b.reason, b.text) == ("b", "excluded", "not SQL at all", "x = 1")


def test_mysql_client_output_parsers() -> None:
    vertical = ("*************************** 1. row ***************************\n"
                "                  Id: 1\n             Message: a: b\n"
                "*************************** 2. row ***************************\n"
                "                  Id: 2\n             Message: \n")
    assert vertical_fields(vertical) == [["Id", "Message"], ["Id", "Message"]]
    assert table_header("+----+------+\n| Id | Name |\n+----+------+\n| 1  | a    |\n", bordered=True) == ["Id", "Name"]
    assert table_header("Id\tName\n1\ta\n", bordered=False) == ["Id", "Name"]


# ---------------------------------------------------------------------------- against the seeds


def test_cited_lines_exist() -> None:
    for st in STATEMENTS:
        for name, line in [(st.seed, st.line), *st.seed_also, *([st.columns_shown] if st.columns_shown else [])]:
            assert (SEEDS_DIR / name).is_file(), f"{st.id}: no seed file {name}"
            assert 1 <= line <= len(seed_lines(name)), f"{st.id}: {name} has no line {line}"


@pytest.mark.parametrize("st", [s for s in STATEMENTS if s.kind in ("seed", "excluded")], ids=lambda s: s.id)
def test_seed_statement_is_the_seeds_text(st: SeedStatement) -> None:
    """Verbatim but for @adjust: the text (whitespace folded) is in the seed at the cited line."""
    text = normalized(original_text(st))
    n = st.text.count("\n") + 1
    window = seed_window(st.seed, st.line, before=1, after=n + 1)
    assert text in window, f"{st.id}: {text!r} is not at {st.seed}:{st.line}: {window[:400]!r}"


@pytest.mark.parametrize("st", [s for s in STATEMENTS if s.kind in ("synopsis", "derived")], ids=lambda s: s.id)
def test_synopsis_and_derived_name_what_the_seed_describes(st: SeedStatement) -> None:
    """A concrete form of a synopsis starts with the synopsis' words; a derived statement's property
    or config name is in the seed's sentence."""
    window = seed_window(st.seed, st.line, before=2, after=2)
    if st.kind == "synopsis":
        head = " ".join(st.text.split()[:3])
        assert head in seed_window(st.seed, st.line, before=3, after=3), f"{st.id}: {head!r} not near {st.line}"
    else:
        names = re.findall(r'"(\w+)"\s*=', st.text)
        for name in names:
            assert name in window, f"{st.id}: {name} is not in {st.seed}:{st.line}: {window[:300]!r}"


@pytest.mark.parametrize("st", [s for s in STATEMENTS if s.columns is not None], ids=lambda s: s.id)
def test_expected_columns_are_the_seeds(st: SeedStatement) -> None:
    assert st.columns_shown is not None
    name, line = st.columns_shown
    assert shown_columns(name, line) == st.columns, f"{st.id}: {name}:{line} shows other columns"


def test_every_statement_of_the_seeds_is_in_the_fixture() -> None:
    """Each seed line that starts a statement, and each SQL code block, is cited by an entry."""
    cited = {(st.seed, st.line) for st in STATEMENTS} | {p for st in STATEMENTS for p in st.seed_also}
    missing = []
    for path in sorted(SEEDS_DIR.iterdir()):
        lines = seed_lines(path.name)
        block_start = None
        for number, raw in enumerate(lines, 1):
            text = PROMPT.sub("", raw.strip())
            if text.startswith("```"):
                if block_start is None and text[3:].strip().upper() == "SQL":
                    block_start = number
                elif block_start is not None:
                    if not any((path.name, n) in cited for n in range(block_start, number)):
                        missing.append(f"{path.name}:{block_start}: the SQL block")
                    block_start = None
                continue
            if STATEMENT_START.match(text) and (path.name, number) not in cited:
                missing.append(f"{path.name}:{number}: {text[:80]}")
    assert not missing, "seed statements not in " + FIXTURE.name + ":\n" + "\n".join(missing)
