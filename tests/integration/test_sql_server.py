"""Issue 16: the FE's MySQL-protocol door (query_port) on a real cluster, through pymysql as
applications connect and through Debian's mysql client as an operator types: databases and
tables in StarRocks' DDL, rows loaded by Stream Load read back with WHERE / GROUP BY, DESC,
SHOW CREATE TABLE copied into a new table, and StarRocks' errors."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import os
import subprocess

import pymysql
import pytest

from tests.support import Admin, assert_eventually

pytestmark = pytest.mark.integration

MYSQL = "/usr/bin/mysql"
DDL = """CREATE TABLE orders (
    id BIGINT NOT NULL COMMENT "order id",
    dt DATETIME NOT NULL,
    city VARCHAR(32),
    amount DECIMAL(10, 2)
)
DUPLICATE KEY(id)
PARTITION BY RANGE(dt) (
    PARTITION p2023 VALUES LESS THAN ("2024-01-01"),
    PARTITION p2024 VALUES LESS THAN MAXVALUE
)
DISTRIBUTED BY HASH(id) BUCKETS 4
PROPERTIES ("replication_num" = "3", "write_quorum" = "majority")"""
CITIES = ["berlin", "paris", "rome", None]
ROWS = [(i, f"{2023 + i % 2}-0{1 + i % 9}-15 10:00:00", CITIES[i % 4], f"{i}.50") for i in range(40)]


def connect(cluster, password: str = "", **kwargs) -> pymysql.Connection:
    host, port = cluster.fe_query_address()
    return pymysql.connect(host=host, port=port, user="root", password=password, connect_timeout=10,
                           read_timeout=60, autocommit=True, **kwargs)


def rows(conn: pymysql.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def header(conn: pymysql.Connection, sql: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return [d[0] for d in cur.description]


def error(conn: pymysql.Connection, sql: str) -> tuple[int, str]:
    with pytest.raises(pymysql.err.MySQLError) as err:
        rows(conn, sql)
    return err.value.args[0], err.value.args[1]


def stream_load(cluster, label: str) -> None:
    body = "".join(",".join("\\N" if v is None else str(v) for v in r) + "\n" for r in ROWS).encode()
    res = Admin(cluster.fe_address).call("StreamLoad", {"db": "shop", "table": "orders", "label": label,
                                                        "data": base64.b64encode(body).decode()}, timeout_s=120)
    assert res["status"] == "Success", res


def test_sql_door_end_to_end(cluster):
    conn = connect(cluster)
    try:
        assert rows(conn, "SELECT @@version_comment") == [("tabletsim (StarRocks-compatible)",)]
        rows(conn, "CREATE DATABASE shop")
        assert ("shop",) in rows(conn, "SHOW DATABASES") and header(conn, "SHOW DATABASES") == ["Database"]
        rows(conn, "USE shop")
        rows(conn, DDL)
        assert header(conn, "SHOW TABLES") == ["Tables_in_shop"] and rows(conn, "SHOW TABLES") == [("orders",)]
        assert header(conn, "DESC orders") == ["Field", "Type", "Null", "Key", "Default", "Extra"]
        assert rows(conn, "DESC orders") == [
            ("id", "BIGINT", "NO", "true", None, ""), ("dt", "DATETIME", "NO", "false", None, ""),
            ("city", "VARCHAR(32)", "YES", "false", None, ""), ("amount", "DECIMAL(10,2)", "YES", "false", None, "")]

        stream_load(cluster, "first")
        assert_eventually(lambda: rows(conn, "SELECT count(*) FROM orders") == [(40,)], timeout_s=30,
                          what="the loaded rows to be visible")
        assert rows(conn, "SELECT id, city, amount, dt FROM orders WHERE id = 7") == [
            (7, None, decimal.Decimal("7.50"), dt.datetime(2024, 8, 15, 10))]
        by_city = rows(conn, "SELECT city, count(*), sum(amount) FROM orders WHERE id < 20 GROUP BY city")
        assert by_city == [(None, 5, decimal.Decimal("57.50")), ("berlin", 5, decimal.Decimal("42.50")),
                           ("paris", 5, decimal.Decimal("47.50")), ("rome", 5, decimal.Decimal("52.50"))]
        # an OR across columns, finished on the FE; ORDER BY and LIMIT
        assert rows(conn, "SELECT id FROM orders WHERE city = 'rome' OR amount > 38 ORDER BY id DESC LIMIT 3") == [
            (39,), (38,), (34,)]
        assert rows(conn, "SELECT id FROM orders WHERE city IN ('paris') AND dt BETWEEN '2024-01-01' AND "
                          "'2024-12-31' AND amount IS NOT NULL ORDER BY id LIMIT 2") == [(1,), (5,)]

        # SHOW CREATE TABLE, run again under another name: the same table
        [(name, ddl)] = rows(conn, "SHOW CREATE TABLE orders")
        assert name == "orders" and header(conn, "SHOW CREATE TABLE orders") == ["Table", "Create Table"]
        rows(conn, ddl.replace("CREATE TABLE `orders`", "CREATE TABLE `orders_copy`", 1))
        assert rows(conn, "DESC orders_copy") == rows(conn, "DESC orders")
        assert rows(conn, "SHOW CREATE TABLE orders_copy")[0][1] == ddl.replace("`orders`", "`orders_copy`", 1)

        rows(conn, "ALTER TABLE orders_copy SET (\"write_quorum\" = \"one\")")
        assert '"write_quorum" = "ONE"' in rows(conn, "SHOW CREATE TABLE orders_copy")[0][1]
        rows(conn, "DROP TABLE orders_copy")
        assert rows(conn, "SHOW TABLES") == [("orders",)]

        assert error(conn, "USE nope") == (1049, "Unknown database 'nope'")
        assert error(conn, "SELECT * FROM nope") == (1146, "Unknown table 'shop.nope'")
        code, message = error(conn, "SELECT id\nFROM orders WHERE")
        assert code == 1064 and message.startswith("Getting syntax error at line 2, column 12. Detail message:")
        assert error(conn, "CREATE DATABASE shop") == (1007, "Can't create database 'shop'; database exists")
        code, message = error(conn, "CREATE TABLE bad (a INT) DISTRIBUTED BY HASH(a) PROPERTIES "
                                    "(\"replication_num\" = \"0\")")
        assert code == 1064 and "replication_num" in message  # the FE's own message, through gRPC
        assert rows(conn, "SELECT 1") == [(1,)]  # the connection outlives every error
    finally:
        conn.close()

    if os.path.exists(MYSQL):  # Debian's client: `make test` installs it (make mysql-client)
        host, port = cluster.fe_query_address()
        out = subprocess.run([MYSQL, f"-h{host}", f"-P{port}", "-uroot", "-e", "SHOW DATABASES"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["Database", "information_schema", "shop"]
        out = subprocess.run([MYSQL, f"-h{host}", f"-P{port}", "-uroot", "-Dshop", "-e",
                              "SELECT city, count(*) FROM orders WHERE id < 4 GROUP BY city; SELECT * FROM nope"],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout.split("\n")[0] == "city\tcount(*)" and "rome\t1" in out.stdout
        assert "ERROR 1146 (42S02) at line 1: Unknown table 'shop.nope'" in out.stderr


def test_admin_token_is_roots_password(cluster_factory):
    cluster = cluster_factory(1, admin_token="t0ken")
    assert error_connecting(cluster, "wrong") == (
        1045, "Access denied for user 'root'@'127.0.0.1' (using password: YES)")
    assert error_connecting(cluster, "")[0] == 1045
    conn = connect(cluster, password="t0ken")
    try:
        rows(conn, "CREATE DATABASE secured")
        assert ("secured",) in rows(conn, "SHOW DATABASES")
    finally:
        conn.close()
    if os.path.exists(MYSQL):
        out = subprocess.run(cluster.mysql_command().split() + ["-e", "SHOW DATABASES"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "secured" in out.stdout, out.stderr


def error_connecting(cluster, password: str) -> tuple[int, str]:
    with pytest.raises(pymysql.err.OperationalError) as err:
        connect(cluster, password=password)
    return err.value.args[0], err.value.args[1]
