"""The admin grammar (fe/sql/grammar.py): every statement form, the seeds' statements verbatim,
keyword case, backquotes, comments and terminators, what it leaves to sqlglot, and StarRocks'
syntax errors with the line and column of the offending token."""

from __future__ import annotations

import pytest

from fe.sql import grammar as g
from fe.sql.grammar import QualifiedName as Q
from fe.sql.grammar import parse, tokenize
from fe.sql.result import ER_NOT_SUPPORTED, ER_SYNTAX, SqlError

# ---------------------------------------------------------------------------- the seeds, verbatim

SEED_001_CREATE = """CREATE ROUTINE LOAD mydatabase.tutorials_users_test2 ON myusers2
COLUMNS(userid, regionid, gender, registertime, dt=from_unixtime(registertime/1000))
PROPERTIES (
    'format' ='json',
    'jsonpaths' = '["$.userid","$.regionid","$.gender", "$.registertime"]'
)
FROM KAFKA (
    'kafka_broker_list' = 'pkc-n98pk.us-west-2.aws.confluent.cloud:9092',
    'kafka_topic' = 'users',
    'property.kafka_default_offsets' = 'OFFSET_BEGINNING',
    'property.security.protocol' = 'SASL_SSL',
    'property.sasl.mechanism' = 'PLAIN',
    'property.sasl.username' = 'HALNAFT2X4IKVWYY',
    'property.sasl.password' = 'PF1L6aZ5kEXG5/q8heq5onDmLs6BeekC9X3pFWyuc+AZxw5DYUqBihJjXhKjFJw/'
);"""

SEED_002_CREATE = r'''CREATE ROUTINE LOAD app.rt_events_rl ON rt_events
PROPERTIES (
"desired_concurrent_number" = "8",
"max_batch_interval" = "10",
"max_batch_rows" = "500000",
"max_batch_size" = "536870912", -- 512MB
"format" = "json",
"jsonpaths" = "[\"$.event_time\",\"$.user_id\",\"$.action\",\"$\"]",
"strict_mode" = "false" -- tolerate minor type drift
)
FROM KAFKA (
"kafka_broker_list" = "broker1:9092,broker2:9092",
"kafka_topic" = "events",
"kafka_default_offsets" = "OFFSET_BEGINNING" -- or a timestamp
);'''

# every other SQL statement the seeds show (001: Confluent walkthrough, 002: Doris playbook,
# 003: replica management), with the statement it must parse to
SEED_STATEMENTS = [
    ("SHOW ROUTINE LOAD FOR example_tbl2_ordertest2 \\G",
     g.ShowRoutineLoad(job=Q(None, "example_tbl2_ordertest2"))),
    ('SHOW ROUTINE LOAD TASK WHERE JobName = "example_tbl2_ordertest2" \\G',
     g.ShowRoutineLoadTask(Q(None, "example_tbl2_ordertest2"))),
    ("PAUSE ROUTINE LOAD FOR example_tbl2_ordertest2;", g.PauseRoutineLoad(Q(None, "example_tbl2_ordertest2"))),
    ("RESUME ROUTINE LOAD FOR example_tbl2_ordertest2;", g.ResumeRoutineLoad(Q(None, "example_tbl2_ordertest2"))),
    ("STOP ROUTINE LOAD FOR example_tbl2_ordertest2;", g.StopRoutineLoad(Q(None, "example_tbl2_ordertest2"))),
    ("SHOW ROUTINE LOAD FOR app.rt_events_rl\\G;", g.ShowRoutineLoad(job=Q("app", "rt_events_rl"))),
    ("SHOW ROUTINE LOAD TASK FOR app.rt_events_rl\\G;", g.ShowRoutineLoadTask(Q("app", "rt_events_rl"))),
    ('ALTER ROUTINE LOAD app.rt_events_rl FROM KAFKA ("kafka_offsets" = "0:12345,1:67890,2:54321");',
     g.AlterRoutineLoad(Q("app", "rt_events_rl"), g.LoadProperties(), {},
                        {"kafka_offsets": "0:12345,1:67890,2:54321"})),
    ('ALTER ROUTINE LOAD app.rt_events_rl PROPERTIES ("desired_concurrent_number"="4","max_batch_interval"="20");',
     g.AlterRoutineLoad(Q("app", "rt_events_rl"), g.LoadProperties(),
                        {"desired_concurrent_number": "4", "max_batch_interval": "20"}, {})),
    ("PAUSE ROUTINE LOAD FOR app.rt_events_rl;", g.PauseRoutineLoad(Q("app", "rt_events_rl"))),
    ("RESUME ROUTINE LOAD FOR app.rt_events_rl;", g.ResumeRoutineLoad(Q("app", "rt_events_rl"))),
    ("STOP ROUTINE LOAD FOR app.rt_events_rl;", g.StopRoutineLoad(Q("app", "rt_events_rl"))),
    ("SHOW PROC '/statistic';", g.ShowProc("/statistic")),
    ("SHOW PROC '/statistic/<DbId>'", g.ShowProc("/statistic/<DbId>")),
    ("SHOW PROC '/statistic/5909381';", g.ShowProc("/statistic/5909381")),
    ('ADMIN SHOW REPLICA STATUS FROM tbl PARTITION (p1, p2) WHERE STATUS = "OK";',
     g.AdminShowReplicaStatus(Q(None, "tbl"), ["p1", "p2"], "OK")),
    ("SHOW TABLET FROM tbl1;", g.ShowTabletsFrom(Q(None, "tbl1"))),
    ("ADMIN SHOW REPLICA DISTRIBUTION FROM tbl1;", g.AdminShowReplicaDistribution(Q(None, "tbl1"))),
    ("SHOW TABLET 29502553;", g.ShowTablet(29502553)),
    ("SHOW PROC '/dbs/29502391/29502428/partitions/29502427/29502428/29502553';",
     g.ShowProc("/dbs/29502391/29502428/partitions/29502427/29502428/29502553")),
    ("SHOW PROC '/cluster_balance/pending_tablets';", g.ShowProc("/cluster_balance/pending_tablets")),
    ("SHOW PROC '/cluster_balance/running_tablets';", g.ShowProc("/cluster_balance/running_tablets")),
    ("SHOW PROC '/cluster_balance/history_tablets';", g.ShowProc("/cluster_balance/history_tablets")),
]


def test_seed_001_create_routine_load_verbatim():
    stmt = parse(SEED_001_CREATE)
    assert isinstance(stmt, g.CreateRoutineLoad)
    assert stmt.job == Q("mydatabase", "tutorials_users_test2") and stmt.table == "myusers2"
    assert stmt.load.columns == "userid, regionid, gender, registertime, dt=from_unixtime(registertime/1000)"
    assert stmt.load.where == "" and stmt.load.column_separator is None
    assert stmt.properties == {"format": "json",
                               "jsonpaths": '["$.userid","$.regionid","$.gender", "$.registertime"]'}
    assert stmt.source_type == "KAFKA"
    assert stmt.source_properties == {
        "kafka_broker_list": "pkc-n98pk.us-west-2.aws.confluent.cloud:9092",
        "kafka_topic": "users",
        "property.kafka_default_offsets": "OFFSET_BEGINNING",
        "property.security.protocol": "SASL_SSL",
        "property.sasl.mechanism": "PLAIN",
        "property.sasl.username": "HALNAFT2X4IKVWYY",
        "property.sasl.password": "PF1L6aZ5kEXG5/q8heq5onDmLs6BeekC9X3pFWyuc+AZxw5DYUqBihJjXhKjFJw/",
    }


def test_seed_002_create_routine_load_with_comments_and_escaped_quotes():
    stmt = parse(SEED_002_CREATE)
    assert isinstance(stmt, g.CreateRoutineLoad)
    assert stmt.job == Q("app", "rt_events_rl") and stmt.table == "rt_events"
    assert stmt.load == g.LoadProperties()
    assert stmt.properties == {
        "desired_concurrent_number": "8", "max_batch_interval": "10", "max_batch_rows": "500000",
        "max_batch_size": "536870912", "format": "json",
        "jsonpaths": '["$.event_time","$.user_id","$.action","$"]', "strict_mode": "false",
    }
    assert stmt.source_properties == {"kafka_broker_list": "broker1:9092,broker2:9092", "kafka_topic": "events",
                                      "kafka_default_offsets": "OFFSET_BEGINNING"}


@pytest.mark.parametrize(("sql", "expected"), SEED_STATEMENTS, ids=[s for s, _ in SEED_STATEMENTS])
def test_seed_statements_verbatim(sql, expected):
    assert parse(sql) == expected


# ---------------------------------------------------------------------------- what is sqlglot's

@pytest.mark.parametrize("sql", [
    "", "   ", ";", "-- only a comment", "SELECT 1", "select count(*) from t where a = 'x'", "SHOW TABLES",
    "SHOW DATABASES", "show create table t", "SHOW VARIABLES LIKE 'x'", "SHOW FULL TABLES",
    "CREATE TABLE t (a INT)", "CREATE DATABASE d", "ALTER TABLE t SET (\"write_quorum\" = \"ONE\")",
    "DESC t", "USE example_db", "SET NAMES utf8mb4", "SHOW ALL", "SHOW ALL TABLES", "DROP TABLE t",
    "SELECT 'unterminated", "SHOW 'x", "CREATE TABLE myusers2 (\n  dt DATETIME\n)\nPARTITION BY date_trunc('day', dt);",
])
def test_statements_not_of_this_grammar_are_none(sql):
    assert parse(sql) is None


# ---------------------------------------------------------------------------- every form

FORMS = [
    # routine load
    ("CREATE ROUTINE LOAD job1 ON t1 PROPERTIES ('format' = 'csv') FROM KAFKA ('kafka_topic' = 'x')",
     g.CreateRoutineLoad(Q(None, "job1"), "t1", g.LoadProperties(), {"format": "csv"}, "KAFKA",
                         {"kafka_topic": "x"})),
    ("CREATE ROUTINE LOAD db1.job1 ON t1 FROM KAFKA ('kafka_topic' = 'x')",
     g.CreateRoutineLoad(Q("db1", "job1"), "t1", g.LoadProperties(), {}, "KAFKA", {"kafka_topic": "x"})),
    ("CREATE ROUTINE LOAD db1.job1 ON t1 COLUMNS TERMINATED BY ',', ROWS TERMINATED BY '\\n', "
     "COLUMNS (k1, k2, v = k1 * 10), WHERE k1 > 100 AND k2 LIKE '%a,b%', PARTITION (p1, p2) "
     "PROPERTIES ('desired_concurrent_number' = '3') FROM KAFKA ('kafka_broker_list' = 'b:9092')",
     g.CreateRoutineLoad(Q("db1", "job1"), "t1",
                         g.LoadProperties(",", "\n", "k1, k2, v = k1 * 10", "k1 > 100 AND k2 LIKE '%a,b%'",
                                          ["p1", "p2"]),
                         {"desired_concurrent_number": "3"}, "KAFKA", {"kafka_broker_list": "b:9092"})),
    ("create routine load j on t columns(a,b) where a in (1, 2) properties('x'='y') from kafka('k'='v')",
     g.CreateRoutineLoad(Q(None, "j"), "t", g.LoadProperties(columns="a,b", where="a in (1, 2)"), {"x": "y"},
                         "KAFKA", {"k": "v"})),
    ("CREATE ROUTINE LOAD `my db`.`job-1` ON `t``1` TEMPORARY PARTITION (tp1) FROM KAFKA ('k' = 'v')",
     g.CreateRoutineLoad(Q("my db", "job-1"), "t`1", g.LoadProperties(partitions=["tp1"], temporary_partitions=True),
                         {}, "KAFKA", {"k": "v"})),
    ("CREATE ROUTINE LOAD j ON t COLUMNS TERMINATED BY '\\t' FROM KAFKA ('k' = 'v')",
     g.CreateRoutineLoad(Q(None, "j"), "t", g.LoadProperties(column_separator="\t"), {}, "KAFKA", {"k": "v"})),
    ("CREATE ROUTINE LOAD j ON t COLUMNS TERMINATED BY '\\x01' FROM KAFKA ('k' = 'v')",
     g.CreateRoutineLoad(Q(None, "j"), "t", g.LoadProperties(column_separator="\\x01"), {}, "KAFKA", {"k": "v"})),
    ("ALTER ROUTINE LOAD FOR db1.j COLUMNS (a, b = a + 1), WHERE a > 0 PROPERTIES ('max_error_number' = '10') "
     "FROM KAFKA ('kafka_partitions' = '0,1', 'kafka_offsets' = 'OFFSET_BEGINNING,100')",
     g.AlterRoutineLoad(Q("db1", "j"), g.LoadProperties(columns="a, b = a + 1", where="a > 0"),
                        {"max_error_number": "10"}, {"kafka_partitions": "0,1", "kafka_offsets": "OFFSET_BEGINNING,100"})),
    ("alter routine load for j properties ('desired_concurrent_number' = 1)",
     g.AlterRoutineLoad(Q(None, "j"), g.LoadProperties(), {"desired_concurrent_number": "1"}, {})),
    ("Pause Routine Load For `db`.`j`", g.PauseRoutineLoad(Q("db", "j"))),
    ("resume routine load for j", g.ResumeRoutineLoad(Q(None, "j"))),
    ("STOP ROUTINE LOAD j", g.StopRoutineLoad(Q(None, "j"))),
    ("SHOW ROUTINE LOAD", g.ShowRoutineLoad()),
    ("SHOW ALL ROUTINE LOAD", g.ShowRoutineLoad(include_all=True)),
    ("show all routine load for db1.j", g.ShowRoutineLoad(include_all=True, job=Q("db1", "j"))),
    ("SHOW ROUTINE LOAD FROM db1", g.ShowRoutineLoad(db="db1")),
    ("SHOW ROUTINE LOAD FROM db1 LIKE 'rt%' WHERE State = 'RUNNING' LIMIT 2, 5",
     g.ShowRoutineLoad(db="db1", like="rt%", state="RUNNING", limit=g.Limit(5, 2))),
    ("SHOW ROUTINE LOAD LIMIT 3 OFFSET 1", g.ShowRoutineLoad(limit=g.Limit(3, 1))),
    ("SHOW ROUTINE LOAD TASK FROM db1 WHERE jobname = 'j'", g.ShowRoutineLoadTask(Q("db1", "j"))),
    # backends, frontends, tablets, proc
    ("SHOW BACKENDS", g.ShowBackends()),
    ("show frontends;", g.ShowFrontends()),
    ("SHOW TABLET 10", g.ShowTablet(10)),
    ("SHOW TABLETS FROM db1.t PARTITIONS (p1) WHERE BackendId = 10001 AND State = 'NORMAL' LIMIT 4",
     g.ShowTabletsFrom(Q("db1", "t"), ["p1"], [("BackendId", "10001"), ("State", "NORMAL")], g.Limit(4))),
    ("SHOW TABLET FROM `t` PARTITION (`p 1`, p2)", g.ShowTabletsFrom(Q(None, "t"), ["p 1", "p2"])),
    ('SHOW PROC "/frontends"', g.ShowProc("/frontends")),
    # replicas and backends
    ("ADMIN SHOW REPLICA STATUS FROM db1.t", g.AdminShowReplicaStatus(Q("db1", "t"))),
    ("admin show replica status from t where status != 'OK'",
     g.AdminShowReplicaStatus(Q(None, "t"), [], "OK", negate=True)),
    ("ADMIN SHOW REPLICA STATUS FROM t WHERE STATUS <> 'DEAD'",
     g.AdminShowReplicaStatus(Q(None, "t"), [], "DEAD", negate=True)),
    ("ADMIN SHOW REPLICA DISTRIBUTION FROM db1.t PARTITION (p1)",
     g.AdminShowReplicaDistribution(Q("db1", "t"), ["p1"])),
    ("ADMIN REPAIR TABLE t", g.AdminRepairTable(Q(None, "t"))),
    ("ADMIN REPAIR TABLE db1.t PARTITION (p1, p2)", g.AdminRepairTable(Q("db1", "t"), ["p1", "p2"])),
    ("ADMIN CANCEL REPAIR TABLE db1.t PARTITION (p1)", g.AdminCancelRepairTable(Q("db1", "t"), ["p1"])),
    ('ADMIN CHECK TABLET (10001, 10002) PROPERTIES("type" = "consistency")',
     g.AdminCheckTablets([10001, 10002], {"type": "consistency"})),
    ('ALTER SYSTEM DECOMMISSION BACKEND "127.0.0.1:9060"', g.AlterSystemBackends("DECOMMISSION", ["127.0.0.1:9060"])),
    ("alter system decommission backend 'h1:9060', 'h2:9061'",
     g.AlterSystemBackends("DECOMMISSION", ["h1:9060", "h2:9061"])),
    ('ALTER SYSTEM DROP BACKEND "127.0.0.1:9062";', g.AlterSystemBackends("DROP", ["127.0.0.1:9062"])),
    # config and transactions
    ('ADMIN SET FRONTEND CONFIG ("heartbeat_timeout_second" = "8")',
     g.AdminSetFrontendConfig({"heartbeat_timeout_second": "8"})),
    ("admin set frontend config ('a' = '1', 'b' = 2)", g.AdminSetFrontendConfig({"a": "1", "b": "2"})),
    ("ADMIN SHOW FRONTEND CONFIG", g.AdminShowFrontendConfig()),
    ("ADMIN SHOW FRONTEND CONFIG LIKE '%heartbeat%'", g.AdminShowFrontendConfig("%heartbeat%")),
    ("SHOW TRANSACTION WHERE ID = 4005", g.ShowTransaction(txn_id=4005)),
    ("SHOW TRANSACTION FROM db WHERE ID=4005;", g.ShowTransaction(db="db", txn_id=4005)),
    ("show transaction where label = 'insert_8d807d5d'", g.ShowTransaction(label="insert_8d807d5d")),
    ("SHOW TRANSACTION FROM `db` WHERE STATUS = 'visible'", g.ShowTransaction(db="db", status="visible")),
    ("SHOW TRANSACTION", g.ShowTransaction()),
]


@pytest.mark.parametrize(("sql", "expected"), FORMS, ids=[s[:60] for s, _ in FORMS])
def test_every_statement_form(sql, expected):
    assert parse(sql) == expected


@pytest.mark.parametrize("sql", ["show backends", "SHOW BACKENDS", "ShOw BaCkEnDs", "  SHOW\n\tBACKENDS  ",
                                 "/* hint */ SHOW BACKENDS", "SHOW BACKENDS;", "SHOW BACKENDS ;;",
                                 "SHOW BACKENDS\\G", "SHOW BACKENDS \\g", "SHOW BACKENDS # why\n",
                                 "SHOW -- a comment\nBACKENDS"])
def test_case_whitespace_comments_and_terminators(sql):
    assert parse(sql) == g.ShowBackends()


def test_columns_and_where_text_drops_comments_and_folds_whitespace():
    stmt = parse("CREATE ROUTINE LOAD j ON t\nCOLUMNS (\n  a,  -- the key\n  b = /* x */ a +\n 1\n),\n"
                 "WHERE a > 1\n  AND b IN ('x', \"y\")\nFROM KAFKA ('k' = 'v')")
    assert stmt.load.columns == "a, b = a + 1"
    assert stmt.load.where == "a > 1 AND b IN ('x', \"y\")"


def test_where_keeps_string_escapes_for_the_fe():
    stmt = parse("CREATE ROUTINE LOAD j ON t WHERE c = 'it''s \\'x\\'' FROM KAFKA ('k' = 'v')")
    assert stmt.load.where == "c = 'it''s \\'x\\''"


def test_strings_unescape_as_starrocks():
    tokens, error = tokenize("'a\\tb' \"q\\\"q\" 'it''s' \"say \"\"hi\"\"\" '\\x01' '100\\%' '\\\\'")
    assert error is None
    assert [t.value for t in tokens if t.kind == g.STRING] == ["a\tb", 'q"q', "it's", 'say "hi"', "\\x01",
                                                               "100\\%", "\\"]


def test_tokens_numbers_and_names_starting_with_digits():
    tokens, _ = tokenize("SHOW TABLET 123 1abc 1e5 1.5 a.b")
    assert [(t.kind, t.value) for t in tokens[2:-1]] == [
        (g.NUMBER, "123"), (g.WORD, "1abc"), (g.NUMBER, "1e5"), (g.NUMBER, "1.5"), (g.WORD, "a"),
        (g.PUNCT, "."), (g.WORD, "b")]


# ---------------------------------------------------------------------------- errors

def _error(sql: str) -> SqlError:
    with pytest.raises(SqlError) as info:
        parse(sql)
    assert info.value.code == ER_SYNTAX and info.value.sqlstate == "HY000"
    return info.value


@pytest.mark.parametrize(("sql", "message"), [
    ("SHOW ROUTINE LOAD FRM db1",
     "Getting syntax error at line 1, column 18. Detail message: Unexpected input 'FRM', "
     "the most similar input is {'FROM', 'FOR'}."),
    ("ADMIN SHO REPLICA STATUS FROM t",
     "Getting syntax error at line 1, column 6. Detail message: Unexpected input 'SHO', "
     "the most similar input is {'SHOW'}."),
    ("ADMIN FOO",
     "Getting syntax error at line 1, column 6. Detail message: Unexpected input 'FOO', "
     "the most similar input is {'SHOW', 'SET', 'REPAIR', 'CANCEL', 'CHECK'}."),
    ("SHOW TABLET",
     "Getting syntax error at line 1, column 11. Detail message: Unexpected input '<EOF>', "
     "the most similar input is {an integer, 'FROM'}."),
    ("SHOW PROC /statistic",
     "Getting syntax error at line 1, column 10. Detail message: Unexpected input '/', "
     "the most similar input is {a string}."),
    ("ADMIN SHOW REPLICA STATUS FROM t WHERE STATUS > 'OK'",
     "Getting syntax error at line 1, column 46. Detail message: Unexpected input '>', "
     "the most similar input is {'=', '!=', '<>'}."),
    ("SHOW BACKENDS extra",
     "Getting syntax error at line 1, column 14. Detail message: Unexpected input 'extra', "
     "the most similar input is {<EOF>}."),
    ("SHOW BACKENDS; SHOW FRONTENDS",
     "Getting syntax error at line 1, column 15. Detail message: Unexpected input 'SHOW', "
     "the most similar input is {<EOF>}."),
    ("SHOW ROUTINE LOAD FOR db1. ;",
     "Getting syntax error at line 1, column 27. Detail message: Unexpected input ';', "
     "the most similar input is {a legal identifier}."),
    ("ALTER SYSTEM DECOMMISSION BACKEND 127.0.0.1:9060",
     "Getting syntax error at line 1, column 34. Detail message: Unexpected input '127.0', "
     "the most similar input is {a string}."),
    ("ADMIN CHECK TABLET (1, x)",
     "Getting syntax error at line 1, column 23. Detail message: Unexpected input 'x', "
     "the most similar input is {an integer}."),
])
def test_syntax_errors_name_the_offending_token_and_what_was_expected(sql, message):
    assert _error(sql).message == message


def test_error_line_and_column_on_a_later_line():
    sql = "CREATE ROUTINE LOAD db.job ON t\nCOLUMNS(a, b)\nPROPERTIES ('format' = 'json')\nFROM KAFKKA ('k' = 'v')"
    err = _error(sql)
    assert err.message.startswith("Getting syntax error at line 4, column 5. Detail message: Unexpected input "
                                  "'KAFKKA', the most similar input is {'KAFKA'}")


def test_create_without_from_kafka_lists_what_could_follow():
    err = _error("CREATE ROUTINE LOAD j ON t PROPERTIES ('a' = 'b')")
    assert "line 1, column 49" in err.message
    assert "Unexpected input '<EOF>', the most similar input is {'FROM'}" in err.message


def test_create_lists_every_clause_possible_after_the_table():
    err = _error("CREATE ROUTINE LOAD j ON t COLUMNZ (a)")
    assert "Unexpected input 'COLUMNZ', the most similar input is {'COLUMNS'}" in err.message
    err = _error("CREATE ROUTINE LOAD j ON t (a)")
    assert "{'COLUMNS', 'ROWS', 'WHERE', 'TEMPORARY', 'PARTITION', 'PROPERTIES', 'FROM'}" in err.message


def test_unterminated_string_and_comment_and_parentheses():
    assert "line 1, column 10. Detail message: Unterminated string starting with '" in _error(
        "SHOW PROC '/statistic").message
    assert "line 2, column 0. Detail message: Unterminated comment" in _error("SHOW BACKENDS\n/* no end").message
    err = _error("CREATE ROUTINE LOAD j ON t COLUMNS (a, (b) FROM KAFKA ('k' = 'v')")
    assert "column 35. Detail message: Unbalanced parentheses" in err.message


def test_trailing_comma_in_properties():
    err = _error("CREATE ROUTINE LOAD j ON t FROM KAFKA ('k' = 'v',)")
    assert "column 49. Detail message: Unexpected input ')', the most similar input is {a string}" in err.message


def test_a_property_given_twice():
    err = _error("ADMIN SET FRONTEND CONFIG ('a' = '1', 'a' = '2')")
    assert "column 38. Detail message: Property 'a' is given more than once" in err.message


def test_a_load_property_given_twice():
    err = _error("CREATE ROUTINE LOAD j ON t WHERE a > 1, WHERE a > 2 FROM KAFKA ('k' = 'v')")
    assert "column 40. Detail message: WHERE is given more than once" in err.message


def test_empty_where():
    err = _error("CREATE ROUTINE LOAD j ON t WHERE FROM KAFKA ('k' = 'v')")
    assert "Unexpected input 'FROM', the most similar input is {an expression}" in err.message


def test_alter_system_add_backend_says_backends_register_themselves():
    with pytest.raises(SqlError) as info:
        parse("ALTER SYSTEM ADD BACKEND '127.0.0.1:9063'")
    assert info.value.code == ER_NOT_SUPPORTED
    assert "ALTER SYSTEM ADD BACKEND is not supported" in info.value.message
    assert "register themselves" in info.value.message


def test_show_routine_load_task_needs_a_job():
    err = _error("SHOW ROUTINE LOAD TASK")
    assert "Unexpected input '<EOF>', the most similar input is {'FOR', 'FROM', 'IN', 'WHERE'}" in err.message
    err = _error("SHOW ROUTINE LOAD TASK WHERE Name = 'x'")
    assert "Unexpected input 'Name', the most similar input is {'JOBNAME'}" in err.message


# ---------------------------------------------------------------------------- splitting statements

@pytest.mark.parametrize(("sql", "pieces"), [
    ("SHOW ROUTINE LOAD FOR app.rt_events_rl\\G; SHOW ROUTINE LOAD TASK FOR app.rt_events_rl\\G;",
     ["SHOW ROUTINE LOAD FOR app.rt_events_rl", " SHOW ROUTINE LOAD TASK FOR app.rt_events_rl"]),
    ("SHOW BACKENDS", ["SHOW BACKENDS"]),
    ("SHOW PROC ';/x'; SELECT 'a;b' -- c;d\n; /* ; */", ["SHOW PROC ';/x'", " SELECT 'a;b' -- c;d\n"]),
    (";; -- nothing\n;", []),
    ("SHOW BACKENDS; SELECT 'open", ["SHOW BACKENDS", " SELECT 'open"]),
])
def test_split_statements(sql, pieces):
    assert g.split_statements(sql) == pieces
