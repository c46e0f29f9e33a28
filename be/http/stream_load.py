"""Routes of the BE's HTTP server: StarRocks' Stream Load and the _load_error_log files.

``PUT /api/{db}/{table}/_stream_load`` is where the FE's 307 sends a load (fe/http/stream_load.py),
or where a client that knows a BE loads directly::

    curl --location-trusted -u root: -H "label:l1" -H "column_separator:," -T data.csv \\
        -XPUT http://127.0.0.1:8030/api/example_db/events/_stream_load

The headers are StarRocks' Stream Load parameters (be/src/http/http_common.h), Doris' for
``group_commit``; they become the StreamLoadRequest gRPC's StreamLoad takes, and the load runs
through the same function as the FE's gRPC forward (be/load/stream_load.py), its body read from
the socket piece by piece (be/load/body.py StreamBody). Before the body is sent (curl asks with
``Expect: 100-continue`` for bodies over 1 MB) the BE checks the password and the headers, so a
refused load never sends its body. The answer is StarRocks' JSON, HTTP 200 whatever the load's
outcome (``Status``: Success, Publish Timeout, Label Already Exists, Fail), a failure's
``Message`` naming what was wrong::

    {"TxnId": 1012, "Label": "l1", "Status": "Success", "Message": "OK", "NumberTotalRows": 3,
     "NumberLoadedRows": 3, "NumberFilteredRows": 0, "NumberUnselectedRows": 0, "LoadBytes": 46,
     "LoadTimeMs": 62, "BeginTxnTimeMs": 2, "StreamLoadPlanTimeMs": 3, "ReadDataTimeMs": 0,
     "WriteDataTimeMs": 21, "CommitAndPublishTimeMs": 35}

with ``ExistingJobStatus`` after ``Status`` for "Label Already Exists", and ``ErrorURL`` last when
rows were filtered. ``GET /api/_load_error_log?file=<name>`` serves that error log as plain text
(be/load/error_log.py); like StarRocks', it needs no password (the random file name is the key).

Besides the headers, the query string may carry ``timeout``, ``group_commit`` and
``group_commit_interval_ms``: what the FE resolved from its own state when it redirected (its
stream_load_default_timeout_second, the table's group commit property); a header wins.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from aiohttp import HttpVersion11, web

from be.load.body import StreamBody
from be.load.error_log import PATH, BadName, ErrorLogs
from be.load.stream_load import execute_stream_load
from common.errors import InvalidArgument, TabletsimError
from common.gen.tabletsim.v1 import types_pb2
from common.httpserver import auth_error, open_access, unauthorized

if TYPE_CHECKING:
    from be.node import BackendNode

log = logging.getLogger(__name__)

ROUTE = "/api/{db}/{table}/_stream_load"
_BOOLEAN = "true or false (any case)"


def _text(value: str) -> str:
    return value


def _boolean(value: str) -> bool:
    if value.strip().lower() not in ("true", "false"):
        raise ValueError(_BOOLEAN)
    return value.strip().lower() == "true"


_RATIO = "a number between 0 and 1 (the largest share of filtered rows the load tolerates)"
MAX_TIMEOUT_S = 259200
"""StarRocks' max_stream_load_timeout_second (3 days)."""


def _ratio(value: str) -> float:
    try:
        ratio = float(value)
    except ValueError:
        raise ValueError(_RATIO) from None
    if math.isnan(ratio):
        raise ValueError(_RATIO)
    return ratio  # its range: common.streamload.check_request, as for gRPC


def _whole(value: str, low: int, high: int, allowed: str) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        n = low - 1
    if not low <= n <= high:
        raise ValueError(allowed)
    return n


def _seconds(value: str) -> int:
    return _whole(value, 1, MAX_TIMEOUT_S, f"a whole number of seconds from 1 to {MAX_TIMEOUT_S} "
                                           "(StarRocks' max_stream_load_timeout_second)")


def _milliseconds(value: str) -> int:
    return _whole(value, 0, 3_600_000, "a whole number of milliseconds from 0 to 3600000")


@dataclass(frozen=True)
class Header:
    """A Stream Load header and where its value goes: ``LoadParams.<param>`` or
    ``StreamLoadRequest.<field>``."""

    name: str
    target: str
    parse: Callable[[str], object]
    in_params: bool = True


HEADERS: tuple[Header, ...] = (
    Header("label", "label", _text, in_params=False),
    Header("format", "format", _text),
    Header("columns", "columns", _text),
    Header("column_separator", "column_separator", _text),
    Header("row_delimiter", "row_delimiter", _text),
    Header("where", "where", _text),
    Header("max_filter_ratio", "max_filter_ratio", _ratio),
    Header("strict_mode", "strict_mode", _boolean),
    Header("timezone", "timezone", _text),
    Header("jsonpaths", "jsonpaths", _text),
    Header("json_root", "json_root", _text),
    Header("strip_outer_array", "strip_outer_array", _boolean),
    Header("timeout", "timeout_s", _seconds, in_params=False),
    Header("group_commit", "group_commit", _text, in_params=False),  # Doris'; checked by group commit
)
"""Every StreamLoadRequest / LoadParams field a load can set, under StarRocks' header name."""
FROM_FE = ("timeout", "group_commit", "group_commit_interval_ms")
"""What the FE's redirect may add to the query string (its own resolution; a header wins)."""
IGNORED = frozenset({"load_mem_limit", "exec_mem_limit", "load_dop", "warehouse", "idle_transaction_timeout"})
"""StarRocks headers about resources only: taken, and without effect here."""
UNSUPPORTED = frozenset({
    "partitions", "temporary_partitions", "negative", "partial_update", "partial_update_mode", "merge_condition",
    "skip_header", "trim_space", "enclose", "escape", "compression", "transmission_compression_type",
    "enable_merge_commit", "log_rejected_record_num", "txn_op"})
"""StarRocks headers that would change what is loaded, and that tabletsim does not implement: refused
rather than loading something else than asked."""


@dataclass
class ParsedLoad:
    request: types_pb2.StreamLoadRequest
    ignore_json_size: bool


PARSED = web.RequestKey("stream_load", ParsedLoad)
"""The headers parsed before the body came (``Expect: 100-continue``), for the handler."""


def parse_request(db: str, table: str, headers, query) -> ParsedLoad:
    """The StreamLoadRequest (without its body) that the headers and the FE's query string ask
    for; InvalidArgument naming the header and what it allows. An empty header is not given."""
    try:
        req = types_pb2.StreamLoadRequest(db=db, table=table)
    except ValueError as exc:
        raise InvalidArgument(f"the database and table in the path must be UTF-8 text ({exc})") from None
    for header in HEADERS:
        value = headers.get(header.name, "")
        if not value and header.name in FROM_FE:
            value = _last(query, header.name)
        if not value:
            continue
        target = req.params if header.in_params else req
        try:
            setattr(target, header.target, _parsed(header.name, header.parse, value))
        except ValueError as exc:  # text that is not UTF-8
            raise InvalidArgument(f"invalid header {header.name}: it must be UTF-8 text ({exc})") from None
    interval = _last(query, "group_commit_interval_ms")
    if interval:
        req.group_commit_interval_ms = _parsed("group_commit_interval_ms", _milliseconds, interval)
    ignore_json_size = bool(headers.get("ignore_json_size")) and \
        bool(_parsed("ignore_json_size", _boolean, headers["ignore_json_size"]))
    refused = sorted(name for name in (h.lower() for h in headers) if name in UNSUPPORTED)
    if refused:
        raise InvalidArgument(
            f"header '{refused[0]}' is a StarRocks Stream Load parameter that tabletsim does not implement; "
            f"remove it (the parameters taken: {', '.join(h.name for h in HEADERS)}, ignore_json_size)")
    return ParsedLoad(req, ignore_json_size)


def _last(query, name: str) -> str:
    values = query.getall(name, [])
    return values[-1] if values else ""


def _parsed(name: str, parse: Callable[[str], object], value: str) -> object:
    try:
        return parse(value)
    except ValueError as exc:
        raise InvalidArgument(f"invalid header {name}: '{value[:100]}'; it must be {exc}") from None


def answer_json(r: types_pb2.StreamLoadResult) -> dict:
    """StarRocks' Stream Load answer (StreamLoadContext::to_json): its fields, in its order."""
    out: dict[str, object] = {"TxnId": r.txn_id, "Label": r.label, "Status": r.status or "Fail"}
    if r.status == "Label Already Exists":
        out["ExistingJobStatus"] = r.existing_job_status
    out.update({
        "Message": r.message,
        "NumberTotalRows": r.number_total_rows, "NumberLoadedRows": r.number_loaded_rows,
        "NumberFilteredRows": r.number_filtered_rows, "NumberUnselectedRows": r.number_unselected_rows,
        "LoadBytes": r.load_bytes, "LoadTimeMs": r.load_time_ms,
        "BeginTxnTimeMs": r.begin_txn_time_ms, "StreamLoadPlanTimeMs": r.stream_load_plan_time_ms,
        "ReadDataTimeMs": r.read_data_time_ms, "WriteDataTimeMs": r.write_data_time_ms,
        "CommitAndPublishTimeMs": r.commit_and_publish_time_ms,
    })
    if r.error_url:
        out["ErrorURL"] = r.error_url
    return out


def answer(result: types_pb2.StreamLoadResult) -> web.Response:
    """HTTP 200 whatever the outcome, as StarRocks answers (the JSON's Status says it)."""
    return web.Response(text=json.dumps(answer_json(result), indent=4) + "\n", content_type="application/json")


def failed(label: str, message: str) -> web.Response:
    """A load refused before it began (its label as given, made UTF-8)."""
    clean = label.encode("utf-8", "replace").decode("utf-8")
    return answer(types_pb2.StreamLoadResult(label=clean, status="Fail",
                                             message=message.encode("utf-8", "replace").decode("utf-8")))


def install(app: web.Application, node: BackendNode) -> None:
    """Add this module's routes to the BE's application, and give the load coordinator the error
    logs they serve (their URLs are this BE's HTTP address)."""
    logs = ErrorLogs(node.config.storage_dir, f"http://{node.config.host}:{node.config.http_port}")
    node.coordinator.error_logs = logs

    def parse(request: web.Request) -> ParsedLoad:
        return parse_request(request.match_info["db"], request.match_info["table"], request.headers,
                             request.rel_url.query)

    async def before_body(request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: the password and the headers are checked before the body
        comes. (aiohttp calls this before the auth middleware.)"""
        refusal: web.Response | None = None
        reason = auth_error(request, node.config.admin_token)
        if reason is not None:
            refusal = unauthorized(reason)
        else:
            try:
                request[PARSED] = parse(request)
            except InvalidArgument as exc:
                refusal = failed(request.headers.get("label", ""), str(exc))
        if refusal is not None:  # the body never comes: the connection cannot carry another request
            refusal.force_close()
            return refusal
        if request.version >= HttpVersion11:
            if request.headers.get("Expect", "").lower() != "100-continue":
                raise web.HTTPExpectationFailed(text=f"unknown Expect: {request.headers.get('Expect')}")
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        return None

    async def stream_load(request: web.Request) -> web.Response:
        try:
            parsed = request.get(PARSED) or parse(request)
        except InvalidArgument as exc:
            return failed(request.headers.get("label", ""), str(exc))
        req = parsed.request
        result = types_pb2.StreamLoadResult(label=req.label)
        body = StreamBody(request.content.read, ignore_json_size=parsed.ignore_json_size)
        started = asyncio.get_running_loop().time()
        try:
            await execute_stream_load(req, body, coordinator=node.coordinator, group_commit=node.group_commit,
                                      stats=node.load_stats, result=result, backend_id=node.link.backend_id)
        except TabletsimError as exc:
            _fail(result, str(exc), body.size, started)
        except grpc.aio.AioRpcError as exc:
            _fail(result, f"{exc.code().name}: {exc.details()}", body.size, started)
        except Exception as exc:  # noqa: BLE001 - an answer, never a stack trace; the log has it
            log.exception("stream load %s into %s.%s failed", req.label, req.db, req.table)
            _fail(result, f"internal error: {type(exc).__name__}: {exc}", body.size, started)
        return answer(result)

    @open_access
    async def error_log(request: web.Request) -> web.Response:
        name = request.query.get("file", "")
        if not name:
            return _error(400, f"missing parameter 'file': GET {PATH}?file=error_log_<hex>_<hex>, as a load's "
                               "ErrorURL gives it")
        try:
            text = await asyncio.to_thread(logs.read, name)
        except BadName as exc:
            return _error(400, str(exc))
        except OSError as exc:
            return _error(500, f"cannot read the load error log '{name}': {exc.strerror or exc}")
        if text is None:
            return _error(404, f"no load error log '{name}' on this backend: never written here, or removed "
                               f"(kept {logs.reserve_hours:g} hours, at most {logs.max_files} files)")
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    app.router.add_route("PUT", ROUTE, stream_load, expect_handler=before_body)
    app.router.add_get(PATH, error_log)


def _fail(result: types_pb2.StreamLoadResult, message: str, load_bytes: int, started: float) -> None:
    result.status, result.message = "Fail", message
    result.number_loaded_rows = 0
    result.load_bytes = load_bytes
    result.load_time_ms = int((asyncio.get_running_loop().time() - started) * 1000)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": "FAILED", "msg": message}, status=status)
