"""Stream Load over HTTP without processes: the BE's headers -> StreamLoadRequest (StarRocks' names,
bad values named with what is allowed), its JSON answer (StarRocks' fields in StarRocks' order),
and the FE's 307 (fe/http/stream_load.py): the BE gRPC would pick, the query kept and the FE's own
resolution added, answered before the body on ``Expect: 100-continue``, refusals that name what is
missing, 401 without the password; the BE's check of the headers before it asks for the body, and
its _load_error_log route."""

from __future__ import annotations

import asyncio
import base64
import json
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict, MultiDict

from be.http import stream_load as be_stream_load
from be.http.stream_load import HEADERS, IGNORED, UNSUPPORTED, answer_json, parse_request
from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import types_pb2
from common.httpserver import require_auth
from common.streamload import check_request
from fe.catalog.model import GroupCommitMode
from fe.http import stream_load as fe_stream_load
from fe.system.backends import DiskInfo, Heartbeat
from tests.unit.test_routine_props_validation import door


def parse(headers: dict[str, str], query: dict[str, str] | None = None):
    return parse_request("d", "t", CIMultiDict(headers), MultiDict(query or {}))


# ---------------------------------------------------------------------- headers
def test_every_header_lands_in_its_field():
    parsed = parse({
        "label": "l1", "format": "JSON", "columns": "id, tmp, v = tmp * 2", "column_separator": "\\t",
        "row_delimiter": "\\r\\n", "where": "id > 1", "max_filter_ratio": "0.25", "strict_mode": "True",
        "timezone": "UTC", "jsonpaths": '["$.id", "$.v"]', "json_root": "$.data", "strip_outer_array": "true",
        "timeout": "30", "group_commit": "sync_mode", "ignore_json_size": "TRUE"})
    req = parsed.request
    assert (req.db, req.table, req.label, req.timeout_s, req.group_commit) == ("d", "t", "l1", 30, "sync_mode")
    p = req.params
    assert (p.format, p.columns, p.column_separator, p.row_delimiter, p.where) == \
        ("JSON", "id, tmp, v = tmp * 2", "\\t", "\\r\\n", "id > 1")
    assert (p.max_filter_ratio, p.strict_mode, p.timezone, p.jsonpaths, p.json_root, p.strip_outer_array) == \
        (0.25, True, "UTC", '["$.id", "$.v"]', "$.data", True)
    assert parsed.ignore_json_size


def test_every_grpc_parameter_has_a_header():
    """StreamLoadRequest and LoadParams: every field a load sets is some header's target."""
    targets = {h.target for h in HEADERS}
    params = {f.name for f in types_pb2.LoadParams.DESCRIPTOR.fields}
    request = {f.name for f in types_pb2.StreamLoadRequest.DESCRIPTOR.fields} - {
        "db", "table", "data", "params", "group_commit_interval_ms"}  # the path, the body, the FE's
    assert params | request <= targets
    assert {h.name for h in HEADERS} == params | {"label", "timeout", "group_commit"}  # StarRocks' names


def test_no_header_leaves_every_field_unset():
    req = parse({"User-Agent": "curl/7.88.1", "Expect": "100-continue", "label": ""}).request
    assert req.label == "" and not req.HasField("timeout_s") and not req.params.HasField("max_filter_ratio")
    assert req.params == types_pb2.LoadParams()


@pytest.mark.parametrize("name, value, allowed", [
    ("max_filter_ratio", "half", "a number between 0 and 1"),
    ("max_filter_ratio", "nan", "a number between 0 and 1"),
    ("strict_mode", "yes", "true or false (any case)"),
    ("strip_outer_array", "1", "true or false (any case)"),
    ("ignore_json_size", "maybe", "true or false (any case)"),
    ("timeout", "0", "a whole number of seconds from 1 to 259200 (StarRocks' max_stream_load_timeout_second)"),
    ("timeout", "10s", "a whole number of seconds from 1 to 259200"),
    ("timeout", "99999999999", "a whole number of seconds from 1 to 259200"),
])
def test_a_bad_value_is_refused_naming_the_header_and_what_it_allows(name, value, allowed):
    with pytest.raises(InvalidArgument) as info:
        parse({name: value})
    assert str(info.value).startswith(f"invalid header {name}: '{value}'; it must be {allowed}")


def test_a_header_that_is_not_utf8_is_refused_not_crashed():
    with pytest.raises(InvalidArgument, match="invalid header columns: it must be UTF-8 text"):
        parse({"columns": "id, v\udcff"})  # aiohttp hands undecodable bytes over as surrogates


@pytest.mark.parametrize("ratio", ["1.5", "-0.1", "inf"])
def test_a_ratio_out_of_range_is_refused_by_the_check_grpc_runs(ratio):
    req = parse({"max_filter_ratio": ratio}).request
    with pytest.raises(InvalidArgument, match=f"invalid max_filter_ratio {float(ratio):g}: must be a number between"):
        check_request(req)


def test_starrocks_headers_that_would_load_something_else_are_refused_resource_ones_taken():
    for name in sorted(UNSUPPORTED):
        with pytest.raises(InvalidArgument, match=f"header '{name}' is a StarRocks Stream Load parameter that "
                                                  "tabletsim does not implement"):
            parse({name: "1"})
    assert parse({name: "1" for name in IGNORED}).request == types_pb2.StreamLoadRequest(db="d", table="t")


def test_the_fe_resolution_comes_in_the_query_and_a_header_wins():
    req = parse({}, {"timeout": "900", "group_commit": "async_mode", "group_commit_interval_ms": "25"}).request
    assert (req.timeout_s, req.group_commit, req.group_commit_interval_ms) == (900, "async_mode", 25)
    req = parse({"timeout": "30", "group_commit": "off_mode"}, {"timeout": "900", "group_commit": "sync_mode"}).request
    assert (req.timeout_s, req.group_commit) == (30, "off_mode")
    assert parse({}, {"columns": "a", "label": "q"}).request.label == ""  # load parameters are headers only
    with pytest.raises(InvalidArgument, match="invalid header group_commit_interval_ms: '-1'; it must be a whole"):
        parse({}, {"group_commit_interval_ms": "-1"})


# ---------------------------------------------------------------------- the answer
def test_the_answer_has_starrocks_fields_in_starrocks_order():
    r = types_pb2.StreamLoadResult(txn_id=7, label="l1", status="Success", message="OK", number_total_rows=3,
                                   number_loaded_rows=2, number_filtered_rows=1, number_unselected_rows=0,
                                   load_bytes=58, load_time_ms=21, begin_txn_time_ms=2, stream_load_plan_time_ms=1,
                                   read_data_time_ms=0, write_data_time_ms=8, commit_and_publish_time_ms=9,
                                   error_url="http://h:1/api/_load_error_log?file=error_log_1_2",
                                   coordinator="BE: 1")
    out = answer_json(r)
    assert list(out) == ["TxnId", "Label", "Status", "Message", "NumberTotalRows", "NumberLoadedRows",
                         "NumberFilteredRows", "NumberUnselectedRows", "LoadBytes", "LoadTimeMs", "BeginTxnTimeMs",
                         "StreamLoadPlanTimeMs", "ReadDataTimeMs", "WriteDataTimeMs", "CommitAndPublishTimeMs",
                         "ErrorURL"]
    assert out["NumberFilteredRows"] == 1 and out["ErrorURL"].endswith("file=error_log_1_2")
    assert "ErrorURL" not in answer_json(types_pb2.StreamLoadResult(status="Success"))
    exists = answer_json(types_pb2.StreamLoadResult(label="l1", status="Label Already Exists",
                                                    existing_job_status="VISIBLE", message="used"))
    assert list(exists)[:5] == ["TxnId", "Label", "Status", "ExistingJobStatus", "Message"]  # as StarRocks writes it
    assert exists["ExistingJobStatus"] == "VISIBLE"


# ---------------------------------------------------------------------- the FE's 307
def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def fe_door(tmp_path, token: str = ""):
    _, _, _, loads = await door(tmp_path)
    for i, be in enumerate(loads._backends.all()):  # they serve HTTP on 8040 + i
        loads._backends.heartbeat(Heartbeat(be.backend_id, be.host, be.be_port, 8040 + i, 1, DiskInfo(), 0))
    node = SimpleNamespace(admin=loads, catalog=loads._catalog, dynconfig=loads._dynconfig, serving=True,
                           config=SimpleNamespace(admin_token=token))
    app = web.Application(middlewares=[require_auth(token)])
    fe_stream_load.install(app, node)
    return node, app


async def test_the_fe_redirects_to_the_be_grpc_would_pick_keeping_the_query(tmp_path):
    node, app = await fe_door(tmp_path)
    ports = {be.http_port for be in node.admin._backends.all()}
    async with TestClient(TestServer(app)) as client:
        seen = set()
        for _ in range(3):  # round robin over the three
            resp = await client.put("/api/d/t/_stream_load?a=1&b=x%20y", data=b"1,a\n", allow_redirects=False,
                                    headers={**basic("root", ""), "label": "l1"})
            assert resp.status == 307
            host, _, rest = resp.headers["Location"].removeprefix("http://").partition(":")
            port, _, path = rest.partition("/")
            assert host == "127.0.0.1" and int(port) in ports and path == "api/d/t/_stream_load?a=1&b=x%20y"
            seen.add(int(port))
        assert seen == ports


async def test_a_group_commit_load_goes_to_its_tables_be_with_the_mode_in_the_query(tmp_path):
    node, app = await fe_door(tmp_path)
    table = node.catalog.table("d", "t")[1]
    table.group_commit, table.group_commit_interval_ms = GroupCommitMode.SYNC, 25
    async with TestClient(TestServer(app)) as client:
        locations = set()
        for _ in range(3):
            resp = await client.put("/api/d/t/_stream_load", data=b"", allow_redirects=False, headers=basic("root", ""))
            locations.add(resp.headers["Location"])
        assert len(locations) == 1  # the table's BE, every time
        assert locations.pop().endswith("/api/d/t/_stream_load?group_commit=sync_mode&group_commit_interval_ms=25")
        resp = await client.put("/api/d/t/_stream_load", data=b"", allow_redirects=False,
                                headers={**basic("root", ""), "group_commit": "off_mode"})
        assert resp.headers["Location"].endswith("/api/d/t/_stream_load")  # the header wins: no group commit
        resp = await client.put("/api/d/t/_stream_load", data=b"", allow_redirects=False,
                                headers={**basic("root", ""), "group_commit": "fast"})
        assert resp.status == 200 and (await resp.json())["Message"].startswith("invalid group_commit 'fast'")


async def test_the_fe_timeout_is_passed_on_only_when_it_is_not_the_bes_default(tmp_path):
    node, app = await fe_door(tmp_path)
    node.dynconfig = SimpleNamespace(stream_load_default_timeout_second=1200)
    async with TestClient(TestServer(app)) as client:
        resp = await client.put("/api/d/t/_stream_load?x=1", data=b"", allow_redirects=False,
                                headers=basic("root", ""))
        assert resp.headers["Location"].endswith("/api/d/t/_stream_load?x=1&timeout=1200")
        resp = await client.put("/api/d/t/_stream_load", data=b"", allow_redirects=False,
                                headers={**basic("root", ""), "timeout": "5"})
        assert resp.headers["Location"].endswith("/api/d/t/_stream_load")


@pytest.mark.parametrize("path, message", [
    ("/api/nodb/t/_stream_load", "unknown database 'nodb'; databases: d"),
    ("/api/d/nope/_stream_load", "unknown table 'nope' in database 'd'; tables: t"),
])
async def test_an_unknown_database_or_table_is_named(tmp_path, path, message):
    _, app = await fe_door(tmp_path)
    async with TestClient(TestServer(app)) as client:
        resp = await client.put(path, data=b"1\n", allow_redirects=False, headers=basic("root", ""))
        assert resp.status == 200 and await resp.json() == {"Status": "FAILED", "Message": message}


async def test_no_be_alive_is_a_clear_refusal(tmp_path):
    node, app = await fe_door(tmp_path)
    for be in node.admin._backends.all():
        be.alive = False
    async with TestClient(TestServer(app)) as client:
        resp = await client.put("/api/d/t/_stream_load", data=b"", allow_redirects=False, headers=basic("root", ""))
        assert (await resp.json())["Message"].startswith("no alive backend can coordinate the load")


async def expect_100(port: int, headers: dict[str, str]) -> tuple[str, bytes]:
    """Send a PUT's headers with ``Expect: 100-continue`` and no body, as curl does before a large
    body: the server's first answer (status line, whole message), which comes without the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"PUT /api/d/t/_stream_load HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n"
                 f"Expect: 100-continue\r\n{head}\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(next(line.split(b":")[1] for line in data.split(b"\r\n") if line.lower().startswith(b"content-length")))
    data += await asyncio.wait_for(reader.readexactly(length), 10)
    writer.close()  # as curl does on "Connection: close": the body is never sent
    return data.split(b"\r\n", 1)[0].decode(), data


async def test_expect_100_continue_is_answered_with_the_redirect_and_no_body_is_read(tmp_path):
    _, app = await fe_door(tmp_path, token="s3cret")
    async with TestServer(app) as server:
        status, data = await expect_100(server.port, basic("root", "s3cret"))
        assert status == "HTTP/1.1 307 Temporary Redirect" and b"100 Continue" not in data
        assert b"\r\nLocation: http://127.0.0.1:804" in data and b"Connection: close" in data
        status, data = await expect_100(server.port, basic("root", ""))
        assert status == "HTTP/1.1 401 Unauthorized" and b"wrong password" in data
        status, data = await expect_100(server.port, {})
        assert status == "HTTP/1.1 401 Unauthorized" and b"no credentials" in data


async def test_an_fe_that_is_starting_says_so(tmp_path):
    node, app = await fe_door(tmp_path)
    node.serving = False
    async with TestClient(TestServer(app)) as client:
        resp = await client.put("/api/d/t/_stream_load", data=b"", allow_redirects=False, headers=basic("root", ""))
        assert resp.status == 503 and "starting" in json.loads(await resp.text())["Message"]


# ---------------------------------------------------------------------- the BE, before the body
async def be_door(tmp_path):
    node = SimpleNamespace(
        config=SimpleNamespace(storage_dir=str(tmp_path), host="127.0.0.1", http_port=8041, admin_token=""),
        coordinator=SimpleNamespace(error_logs=None), group_commit=None, load_stats=None,
        link=SimpleNamespace(backend_id=1))
    app = web.Application(middlewares=[require_auth("")])
    be_stream_load.install(app, node)
    return node, app


async def test_the_be_checks_the_headers_before_it_asks_for_the_body(tmp_path):
    _, app = await be_door(tmp_path)
    async with TestServer(app) as server:
        status, data = await expect_100(server.port, {**basic("root", ""), "label": "l1", "strict_mode": "sure"})
        assert status == "HTTP/1.1 200 OK" and b"100 Continue" not in data
        answer = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert (answer["Label"], answer["Status"]) == ("l1", "Fail")
        assert answer["Message"] == "invalid header strict_mode: 'sure'; it must be true or false (any case)"
        status, _ = await expect_100(server.port, {**basic("root", "x")})
        assert status == "HTTP/1.1 401 Unauthorized"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"PUT /api/d/t/_stream_load HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                     b"Expect: 100-continue\r\nAuthorization: Basic cm9vdDo=\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.close()


async def test_the_be_serves_its_error_logs_and_nothing_else(tmp_path):
    node, app = await be_door(tmp_path)
    logs = node.coordinator.error_logs
    url = logs.write([SimpleNamespace(row="x,1", reason="row 1: bad id")], 1)
    assert url.startswith("http://127.0.0.1:8041/api/_load_error_log?file=error_log_")
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(url.removeprefix("http://127.0.0.1:8041"))  # no password needed
        assert resp.status == 200 and await resp.text() == "Error: row 1: bad id. Row: x,1\n"
        assert resp.headers["Content-Type"].startswith("text/plain")
        for name, status in [("../../etc/passwd", 400), ("%2e%2e%2fstorage", 400), ("error_log_1_2", 404)]:
            resp = await client.get(f"/api/_load_error_log?file={name}")
            assert resp.status == status and (await resp.json())["status"] == "FAILED"
        resp = await client.get("/api/_load_error_log")
        assert resp.status == 400 and "missing parameter 'file'" in (await resp.json())["msg"]
