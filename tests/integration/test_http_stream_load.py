"""Issue 15, part 3: StarRocks' Stream Load over HTTP with the real curl, exactly as users type it::

    curl --location-trusted -u root: -H "label:l1" -H "column_separator:," -T data.csv \\
        -XPUT http://127.0.0.1:8030/api/example_db/events/_stream_load

The FE answers 307 to a BE (before the body, on curl's ``Expect: 100-continue``), the BE loads the
body as it streams in and answers StarRocks' JSON; filtered rows are in an error log its ErrorURL
serves, and routine load tasks' error logs are SHOW ROUTINE LOAD's ErrorLogUrls."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from deploy.cluster import ClusterSpec, LocalCluster
from deploy.ports import free_ports
from tests.integration.conftest import TEST_FE_CONFIG, ClusterFactory
from tests.kafka_support import create_topic, produce, run
from tests.support import Admin, assert_eventually

pytestmark = pytest.mark.integration

CURL = "/usr/bin/curl"
DB = "example_db"
COLUMNS = [
    {"name": "id", "type": "BIGINT", "not_null": True},
    {"name": "dt", "type": "DATE"},
    {"name": "msg", "type": "VARCHAR(32)"},
]
FIELDS = ["TxnId", "Label", "Status", "Message", "NumberTotalRows", "NumberLoadedRows", "NumberFilteredRows",
          "NumberUnselectedRows", "LoadBytes", "LoadTimeMs", "BeginTxnTimeMs", "StreamLoadPlanTimeMs",
          "ReadDataTimeMs", "WriteDataTimeMs", "CommitAndPublishTimeMs"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> LocalCluster:
    """One FE, 3 BEs and a broker for the whole module (each test loads its own table)."""
    factory = ClusterFactory(str(tmp_path_factory.mktemp("http_stream_load")))
    try:
        c = factory(3, with_broker=True, fe_config={**TEST_FE_CONFIG, "routine_load_task_consume_second": "1"})
        Admin(c.fe_address).call("CreateDatabase", db=DB)
        yield c
    finally:
        factory.stop_all()


def create_table(admin: Admin, table: str, **properties: str) -> None:
    admin.call("CreateTable", db=DB, table=table, columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=3, properties={"replication_num": "3", **properties})


def curl(args: list[str], timeout_s: float = 120) -> tuple[int, str, str]:
    """Run the real curl; (HTTP status of the last answer, its body, the URL that gave it)."""
    proc = subprocess.run([CURL, "-sS", *args, "-w", "\n%{http_code} %{url_effective}"], capture_output=True,
                          text=True, timeout=timeout_s)
    assert proc.returncode == 0, proc.stderr
    body, _, tail = proc.stdout.rpartition("\n")
    code, _, url = tail.partition(" ")
    return int(code), body, url


def stream_load(cluster: LocalCluster, table: str, data: Path, headers: dict[str, str], user: str | None = "root:",
                timeout_s: float = 120) -> tuple[int, dict, str]:
    """``curl --location-trusted -u root: -H k:v ... -T data -XPUT <fe>/api/example_db/<table>/_stream_load``."""
    args = ["--location-trusted"] + (["-u", user] if user is not None else [])
    for name, value in headers.items():
        args += ["-H", f"{name}:{value}"]
    args += ["-T", str(data), "-XPUT", f"{cluster.fe_http_url()}/api/{DB}/{table}/_stream_load"]
    code, body, url = curl(args, timeout_s)
    return code, json.loads(body), url


def count(admin: Admin, table: str) -> int:
    return int(admin.call("Query", db=DB, table=table, limit=0).get("count", 0))


def txn(admin: Admin, label: str) -> dict:
    return admin.call("ShowTransactions", db=DB, label=label)["transactions"][0]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------- the curl users type
def test_the_curl_users_type_loads_and_the_rows_are_visible(cluster, tmp_path):
    admin = Admin(cluster.fe_address)
    create_table(admin, "events")
    data = write(tmp_path / "data.csv", "1,2024-01-05,hello\n2,2024-01-06,world\n3,2024-01-07,again\n")
    code, answer, url = stream_load(cluster, "events", data, {"label": "l1", "column_separator": ","})
    assert code == 200 and list(answer) == FIELDS, answer
    assert (answer["Label"], answer["Status"], answer["Message"]) == ("l1", "Success", "OK")
    assert (answer["NumberTotalRows"], answer["NumberLoadedRows"], answer["NumberFilteredRows"]) == (3, 3, 0)
    assert answer["LoadBytes"] == data.stat().st_size
    assert answer["LoadTimeMs"] >= answer["CommitAndPublishTimeMs"] and answer["TxnId"] > 0
    be_ports = {cluster.spec.be_http_port_of(i) for i in range(3)}
    assert url.startswith("http://127.0.0.1:") and int(url.split(":")[2].split("/")[0]) in be_ports  # a BE answered
    row = txn(admin, "l1")
    assert (row["transaction_id"], row["transaction_status"], row["loaded_rows"]) == (str(answer["TxnId"]),
                                                                                       "VISIBLE", "3")
    assert count(admin, "events") == 3
    rows = admin.call("Query", db=DB, table="events", predicates=[{"column": "id", "op": "=", "value": "2"}])
    assert rows["rows"] == [{"values": ["2", "2024-01-06", "world"]}]


def test_a_used_label_answers_label_already_exists_and_loads_nothing(cluster, tmp_path):
    admin = Admin(cluster.fe_address)
    create_table(admin, "labels")
    data = write(tmp_path / "data.csv", "1,2024-01-05,a\n")
    _, first, _ = stream_load(cluster, "labels", data, {"label": "once"})
    code, again, _ = stream_load(cluster, "labels", data, {"label": "once"})
    assert first["Status"] == "Success" and code == 200
    assert list(again)[:5] == ["TxnId", "Label", "Status", "ExistingJobStatus", "Message"]  # StarRocks' order
    assert (again["Status"], again["ExistingJobStatus"], again["TxnId"]) == ("Label Already Exists", "VISIBLE",
                                                                            first["TxnId"])
    assert "label [once] has already been used" in again["Message"]
    assert count(admin, "labels") == 1


def test_a_load_whose_rows_the_where_drops_is_visible_at_once(cluster, tmp_path):
    """Every row unselected by WHERE: nothing to write, a txn with no tablet, VISIBLE at once (it
    answered Publish Timeout after its whole timeout before)."""
    admin = Admin(cluster.fe_address)
    create_table(admin, "none_selected")
    data = write(tmp_path / "data.csv", "1,2024-01-05,a\n2,2024-01-06,b\n")
    code, answer, _ = stream_load(cluster, "none_selected", data, {"label": "none", "where": "id > 10",
                                                                   "timeout": "20"}, timeout_s=60)
    assert code == 200 and answer["Status"] == "Success", answer
    assert (answer["NumberTotalRows"], answer["NumberUnselectedRows"], answer["NumberLoadedRows"]) == (2, 2, 0)
    assert answer["LoadTimeMs"] < 10_000, answer
    assert txn(admin, "none")["transaction_status"] == "VISIBLE"
    assert count(admin, "none_selected") == 0


def test_filtered_rows_are_in_the_error_log_its_error_url_serves(cluster, tmp_path):
    admin = Admin(cluster.fe_address)
    create_table(admin, "errors")
    data = write(tmp_path / "data.csv", "1,2024-01-05,good\nx,2024-01-06,bad id\n3,2024-01-07\n4,2024-01-08,ok\n")
    _, answer, _ = stream_load(cluster, "errors", data, {"label": "half", "max_filter_ratio": "0.5"})
    assert (answer["Status"], answer["NumberLoadedRows"], answer["NumberFilteredRows"]) == ("Success", 2, 2)
    assert list(answer) == [*FIELDS, "ErrorURL"]
    assert answer["ErrorURL"].startswith("http://127.0.0.1:") and "/api/_load_error_log?file=error_log_" in \
        answer["ErrorURL"]
    code, text, _ = curl([answer["ErrorURL"]])
    assert code == 200
    assert text.splitlines() == [
        "Error: row 2: column 'id' value 'x' is not a valid BIGINT. Row: x,2024-01-06,bad id",
        "Error: row 3: expected 3 fields separated by ',' but got 2. Row: 3,2024-01-07"]
    # over max_filter_ratio (default 0): nothing loaded, and the error log says why
    _, failed, _ = stream_load(cluster, "errors", data, {"label": "strict"})
    assert (failed["Status"], failed["NumberLoadedRows"], failed["NumberFilteredRows"]) == ("Fail", 0, 2)
    assert failed["Message"].startswith("too many filtered rows: 2 of 4 rows were filtered")
    assert "not a valid BIGINT" in curl([failed["ErrorURL"]])[1]
    assert txn(admin, "strict")["transaction_status"] == "ABORTED"
    assert count(admin, "errors") == 2
    base = answer["ErrorURL"].split("?")[0]
    assert curl([f"{base}?file=../../../etc/passwd"])[0] == 400
    assert curl([f"{base}?file=error_log_0_0"])[0] == 404


def test_every_header_once(cluster, tmp_path):
    """Every StreamLoad parameter gRPC takes, under StarRocks' (Doris' group_commit) header name."""
    admin = Admin(cluster.fe_address)
    create_table(admin, "headers")
    docs = {"data": [{"k": 1, "ts": 1704067200, "m": "a"}, {"k": 2, "ts": 1704153600, "m": "b"},
                     {"k": "x", "ts": 0, "m": "bad"}, {"k": 0, "ts": 0, "m": "cut by where"}]}
    data = write(tmp_path / "data.json", json.dumps(docs))
    _, answer, _ = stream_load(cluster, "headers", data, {
        "label": "json1", "format": "json", "jsonpaths": '["$.k", "$.ts", "$.m"]', "json_root": "$.data",
        "strip_outer_array": "true", "columns": "id, tmp_ts, msg, dt = from_unixtime(tmp_ts, '%Y-%m-%d')",
        "where": "id > 0", "strict_mode": "true", "timezone": "UTC", "max_filter_ratio": "0.4", "timeout": "60",
        "group_commit": "off_mode", "ignore_json_size": "true"})
    assert answer["Status"] == "Success", answer
    assert (answer["NumberTotalRows"], answer["NumberLoadedRows"], answer["NumberFilteredRows"],
            answer["NumberUnselectedRows"]) == (4, 2, 1, 1)
    rows = admin.call("Query", db=DB, table="headers", predicates=[{"column": "id", "op": "=", "value": "2"}])
    assert rows["rows"] == [{"values": ["2", "2024-01-02", "b"]}]
    csv = write(tmp_path / "data.csv", "10|2024-02-01|p;11|2024-02-02|q;")
    _, answer, _ = stream_load(cluster, "headers", csv, {"label": "csv1", "column_separator": "|",
                                                         "row_delimiter": ";", "group_commit": "sync_mode"})
    assert (answer["Status"], answer["NumberLoadedRows"]) == ("Success", 2), answer
    assert count(admin, "headers") == 4
    _, bad, _ = stream_load(cluster, "headers", csv, {"label": "csv2", "max_filter_ratio": "lots"})
    assert (bad["Status"], bad["Message"]) == (
        "Fail", "invalid header max_filter_ratio: 'lots'; it must be a number between 0 and 1 (the largest share "
        "of filtered rows the load tolerates)")
    _, missing, _ = stream_load(cluster, "no_such_table", csv, {"label": "csv3"})
    assert missing["Status"] == "FAILED" and list(missing) == ["Status", "Message"]  # the FE's refusal
    assert missing["Message"].startswith("unknown table 'no_such_table' in database 'example_db'; tables: ")


def test_a_large_body_streams_through_bounded_memory(cluster, tmp_path):
    """384 MB through curl: the coordinating BE's peak RSS grows by less than half the body (a body
    held whole would add all of it), and it held at most two pieces of the body at once."""
    admin = Admin(cluster.fe_address)
    create_table(admin, "big")
    block = b"".join(b"%d,2024-01-%02d,m%d\n" % (i, i % 28 + 1, i % 1000) for i in range(1_000_000, 1_010_000))
    repeats = 384 * 1024 * 1024 // len(block)
    data = tmp_path / "big.csv"
    with open(data, "wb") as f:
        for _ in range(repeats):
            f.write(block)
    size = data.stat().st_size
    for i in range(3):
        _reset_peak(cluster, i)
    before = {i: _status(cluster, i) for i in range(3)}
    _, answer, url = stream_load(cluster, "big", data, {"label": "big", "where": "id = 1000007"}, timeout_s=300)
    data.unlink()
    assert answer["Status"] == "Success", answer
    assert (answer["NumberTotalRows"], answer["NumberLoadedRows"], answer["LoadBytes"]) == (10_000 * repeats,
                                                                                            repeats, size)
    be = next(i for i in range(3) if url.startswith(cluster.be_http_url(i)))
    growth = _status(cluster, be)["VmHWM"] - before[be]["VmRSS"]
    assert growth < size / 2, f"peak RSS grew by {growth >> 20} MiB for a body of {size >> 20} MiB"
    line = next(line for line in Path(cluster.log_path(f"be{be}")).read_text().splitlines()
                if "stream load big:" in line)
    held = int(line.split("(at most ")[1].split(" body bytes held")[0])
    assert held <= 2 * 4 * 1024 * 1024, line  # a piece (4 MiB) and a read past it
    assert count(admin, "big") == repeats


def _reset_peak(cluster: LocalCluster, i: int) -> None:
    """VmHWM back to the current RSS (Linux 4.0+, our own child): the peak measured is the load's.
    Where refused, the peak since the BE started counts: a stricter test."""
    try:
        with open(f"/proc/{cluster.pid(f'be{i}')}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status(cluster: LocalCluster, i: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of BE i, in bytes."""
    with open(f"/proc/{cluster.pid(f'be{i}')}/status") as f:
        return {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in f)
                if k in ("VmRSS", "VmHWM")}


# ---------------------------------------------------------------------- routine load's ErrorLogUrls
def test_routine_load_error_log_urls_serve_the_bad_rows(cluster):
    admin = Admin(cluster.fe_address)
    create_table(admin, "kafka_events")
    run(create_topic(cluster.broker_address, "with_bad_rows", 1))
    good = [json.dumps({"id": i, "dt": "2024-03-01", "msg": f"m{i}"}).encode() for i in range(20)]
    bad = [b"{not json", json.dumps({"id": "abc", "dt": "2024-03-01", "msg": "x"}).encode()]
    run(produce(cluster.broker_address, "with_bad_rows", [(0, v) for v in good[:10] + bad + good[10:]]))
    admin.call("CreateRoutineLoad", db=DB, name="job", table="kafka_events", columns="id, dt, msg",
               properties={"format": "json", "max_batch_interval": "1", "max_error_number": "100"},
               data_source_properties={"kafka_broker_list": cluster.broker_address, "kafka_topic": "with_bad_rows",
                                       "property.kafka_default_offsets": "OFFSET_BEGINNING"})
    job = assert_eventually(
        lambda: (j := admin.call("ShowRoutineLoad", db=DB, name="job")["jobs"][0])
        and j.get("error_log_urls", "").startswith("http://") and j,
        timeout_s=60, what="ErrorLogUrls of the task that met the bad rows")
    assert count(admin, "kafka_events") == 20
    assert_eventually(lambda: json.loads(admin.call("ShowRoutineLoad", db=DB, name="job")["jobs"][0]["statistic"])
                      ["errorRows"] == 2, timeout_s=30, what="both bad rows counted")
    urls = admin.call("ShowRoutineLoad", db=DB, name="job")["jobs"][0]["error_log_urls"].split(", ")
    assert job["error_log_urls"].split(", ")[0] in urls and 1 <= len(urls) <= 3
    assert all(u.startswith("http://127.0.0.1:") and "/api/_load_error_log?file=error_log_" in u for u in urls)
    lines = []
    for u in urls:  # the task (or tasks) that met them
        code, text, _ = curl([u])
        assert code == 200
        lines += text.splitlines()
    assert len(lines) == 2 and all(line.startswith("Error: row ") for line in lines), lines
    assert any("Row: {not json" in line for line in lines) and any("'abc'" in line for line in lines), lines
    admin.call("StopRoutineLoad", db=DB, name="job")


# ---------------------------------------------------------------------- a cluster with an admin token
def test_an_admin_token_is_the_password(cluster_factory, tmp_path):
    cluster = cluster_factory(1, admin_token="s3cret")
    admin = Admin(cluster.fe_address, headers={"authorization": "Bearer s3cret"})
    admin.call("CreateDatabase", db=DB)
    admin.call("CreateTable", db=DB, table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=1, properties={"replication_num": "1"})
    data = write(tmp_path / "data.csv", "1,2024-01-05,a\n2,2024-01-06,b\n")
    for user, why in [("root:", "wrong password"), ("root:wrong", "wrong password"), (None, "no credentials")]:
        code, answer, _ = stream_load(cluster, "t", data, {"label": f"denied-{why[:5]}"}, user=user)
        assert code == 401 and answer["status"] == "FAILED" and why in answer["msg"], answer
    # the BE asks for it too: a client that skips the FE
    args = ["-u", "root:", "-H", "label:direct", "-T", str(data), "-XPUT", f"{cluster.be_http_url(0)}/api/{DB}/t/_stream_load"]
    assert curl(args)[0] == 401
    assert admin.call("ShowTransactions", db=DB).get("transactions", []) == []
    code, answer, _ = stream_load(cluster, "t", data, {"label": "allowed"}, user="root:s3cret")
    assert (code, answer["Status"], answer["NumberLoadedRows"]) == (200, "Success", 2)
    assert [t["label"] for t in admin.call("ShowTransactions", db=DB)["transactions"]] == ["allowed"]
    assert count(admin, "t") == 2


# ---------------------------------------------------------------------- a follower FE
def test_a_follower_fe_redirects_too(tmp_path):
    ports = free_ports(4)
    cluster = LocalCluster(str(tmp_path / "ha"))
    spec = ClusterSpec(bes=1, fes=3, fe_ports=ports[:3], be_ports=ports[3:], with_broker=False,
                       fe_config={"heartbeat_timeout_second": "3", "fe_leader_lease_second": "3"})
    try:
        cluster.start(spec, timeout_s=90)
        leader, _ = assert_eventually(cluster.leader, timeout_s=20, what="a leader")
        follower = next(n for n in spec.fe_names() if n != leader)
        admin = Admin(",".join(cluster.fe_address_of(n) for n in spec.fe_names()))
        admin.call("CreateDatabase", db=DB)
        admin.call("CreateTable", db=DB, table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
                   buckets=1, properties={"replication_num": "1"})
        on_follower = Admin(cluster.fe_address_of(follower))
        assert_eventually(lambda: on_follower.call("ShowTables", db=DB).get("tables"), timeout_s=15,
                          what="the follower to replay the table")
        data = write(tmp_path / "data.csv", "1,2024-01-05,a\n2,2024-01-06,b\n")
        args = ["--location-trusted", "-u", "root:", "-H", "label:via-follower", "-T", str(data), "-XPUT",
                f"{cluster.fe_http_url(follower)}/api/{DB}/t/_stream_load"]
        code, body, url = curl(args)
        assert code == 200 and url.startswith(cluster.be_http_url(0)), (code, body, url)
        assert json.loads(body)["Status"] == "Success"
        assert count(admin, "t") == 2
    finally:
        cluster.stop()
