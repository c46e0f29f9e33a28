"""Validation of CREATE / ALTER ROUTINE LOAD properties, as an operator types them.

Every value arrives as a string; keys are case-insensitive. The result is two frozen dataclasses,
JobProperties (the PROPERTIES clause) and KafkaSource (the FROM KAFKA clause), JSON-able through
to_dict()/from_dict() for the edit log, plus the SHOW ROUTINE LOAD display helpers.

Ranges follow StarRocks (CreateRoutineLoadStmt) except where a laptop simulator needs smaller
batches, as noted on the field: StarRocks requires max_batch_interval >= 5 and max_batch_rows >=
200000; here both only need >= 1 (defaults stay 10 s and 200000 rows).
"""

from __future__ import annotations

import json
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

OFFSET_BEGINNING = "OFFSET_BEGINNING"
OFFSET_END = "OFFSET_END"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MB = 1024 * 1024
GB = 1024 * MB

# An offset spec: an offset >= 0, OFFSET_BEGINNING, OFFSET_END, or (kafka_default_offsets only) a
# datetime text "YYYY-MM-DD HH:MM:SS" in the job's timezone.
OffsetSpec = int | str


class PropertyError(ValueError):
    """A property the operator can fix; the message names it, the bad value and what is allowed."""

    code = "INVALID_ARGUMENT"
    retriable = False

    def __init__(self, message: str, prop: str = "", value: str | None = None) -> None:
        super().__init__(message)
        self.prop = prop
        self.value = value


def _invalid(prop: str, value: str, allowed: str) -> PropertyError:
    return PropertyError(f"invalid property '{prop}' = '{value}': {allowed}", prop, value)


def _unknown(prop: str, allowed: list[str]) -> PropertyError:
    return PropertyError(f"unknown property '{prop}'; allowed: {', '.join(sorted(allowed))}", prop)


def _lower_keys(d: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in d.items():
        k = key.strip().lower()
        if k in out:
            raise PropertyError(f"property '{k}' is given more than once", k, value)
        out[k] = value
    return out


def _int(prop: str, value: str, lo: int, hi: int | None = None) -> int:
    text = value.strip()
    n = int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else None
    if n is None or n < lo or (hi is not None and n > hi):
        rule = f"an integer >= {lo}" if hi is None else f"an integer between {lo} and {hi}"
        raise _invalid(prop, value, f"must be {rule}")
    return n


def _choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    text = value.strip().lower()
    if text not in choices:
        raise _invalid(key, value, f"must be {' or '.join(choices)}")
    return text


def _bool(key: str, value: str) -> bool:
    return _choice(key, value, ("true", "false")) == "true"


# ---- job properties -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobProperties:
    desired_concurrent_number: int = 3
    """Tasks the operator wants; the real number is capped by division.task_count()."""
    max_batch_interval_s: int = 10
    """A task closes its batch after this many seconds (StarRocks >= 5; here >= 1)."""
    max_batch_rows: int = 200000
    """A task closes its batch after this many rows (StarRocks >= 200000; here >= 1)."""
    max_batch_size_bytes: int = 100 * MB
    """A task closes its batch after this many bytes (1 .. 1 GB)."""
    max_error_number: int = 0
    """Error rows tolerated within a window of 10 x max_batch_rows before the job pauses."""
    max_filter_ratio: float = 1.0
    """Largest tolerated share of filtered rows in one batch (0 .. 1)."""
    strict_mode: bool = False
    timezone: str = "Asia/Shanghai"
    format: str = "csv"
    """csv or json."""
    jsonpaths: tuple[str, ...] = ()
    json_root: str = ""
    strip_outer_array: bool = False
    column_separator: str = ","
    task_consume_second: int | None = None
    """Overrides the FE's routine_load_task_consume_second for this job."""
    task_timeout_second: int | None = None
    """Overrides the FE's routine_load_task_timeout_second for this job."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["jsonpaths"] = list(self.jsonpaths)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobProperties:
        fields = dict(d)
        fields["jsonpaths"] = tuple(fields.get("jsonpaths", ()))
        return cls(**fields)


def _ratio(key: str, value: str) -> float:
    try:
        ratio = float(value.strip())
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:
        raise _invalid(key, value, "must be a number between 0 and 1")
    return ratio


def _jsonpaths(key: str, value: str) -> tuple[str, ...]:
    allowed = 'must be a JSON array of strings starting with "$", e.g. ["$.k1","$.k2"]'
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _invalid(key, value, allowed) from None
    if not isinstance(parsed, list) or not parsed or not all(
        isinstance(p, str) and p.startswith("$") for p in parsed
    ):
        raise _invalid(key, value, allowed)
    return tuple(parsed)


def _json_root(key: str, value: str) -> str:
    root = value.strip()
    if root and not root.startswith("$"):
        raise _invalid(key, value, 'must be empty or a JSON path starting with "$"')
    return root


def _timezone(key: str, value: str) -> str:
    name = value.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise _invalid(key, value, "must be an IANA time zone name such as Asia/Shanghai or UTC") from None
    return name


def _separator(key: str, value: str) -> str:
    """The separator itself or an escape: \\t, \\n, \\xHH... (as COLUMNS TERMINATED BY)."""
    if value == "":
        raise _invalid(key, value, r"must not be empty (use e.g. ',' or \t or \x01)")
    if value in ("\\t", "\\n"):
        return {"\\t": "\t", "\\n": "\n"}[value]
    if re.fullmatch(r"(?:\\x[0-9a-fA-F]{2})+", value):
        return bytes.fromhex(value.replace("\\x", "")).decode("latin-1")
    return value


# operator's key -> (JobProperties field, validator(key, value) -> parsed value)
_JOB_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "desired_concurrent_number": ("desired_concurrent_number", lambda k, v: _int(k, v, 1)),
    "max_batch_interval": ("max_batch_interval_s", lambda k, v: _int(k, v, 1)),
    "max_batch_rows": ("max_batch_rows", lambda k, v: _int(k, v, 1)),
    "max_batch_size": ("max_batch_size_bytes", lambda k, v: _int(k, v, 1, GB)),
    "max_error_number": ("max_error_number", lambda k, v: _int(k, v, 0)),
    "max_filter_ratio": ("max_filter_ratio", _ratio),
    "strict_mode": ("strict_mode", _bool),
    "timezone": ("timezone", _timezone),
    "format": ("format", lambda k, v: _choice(k, v, ("csv", "json"))),
    "jsonpaths": ("jsonpaths", _jsonpaths),
    "json_root": ("json_root", _json_root),
    "strip_outer_array": ("strip_outer_array", _bool),
    "column_separator": ("column_separator", _separator),
    "task_consume_second": ("task_consume_second", lambda k, v: _int(k, v, 1)),
    "task_timeout_second": ("task_timeout_second", lambda k, v: _int(k, v, 1)),
}
JOB_KEYS = tuple(_JOB_PARSERS)
JSON_ONLY_KEYS = ("jsonpaths", "json_root", "strip_outer_array")
ALTER_JOB_KEYS = tuple(k for k in JOB_KEYS if k != "format")


def _apply_job(base: JobProperties, d: Mapping[str, str], allowed: tuple[str, ...],
               verb: str) -> JobProperties:
    props = _lower_keys(d)
    changes: dict[str, Any] = {}
    for key, value in props.items():
        if key not in allowed:
            if key in JOB_KEYS:
                raise PropertyError(f"property '{key}' cannot be changed by {verb}; "
                                    f"allowed: {', '.join(sorted(allowed))}", key, value)
            raise _unknown(key, list(allowed))
        name, parse = _JOB_PARSERS[key]
        changes[name] = parse(key, value)
    result = replace(base, **changes)
    if result.format != "json":
        for key in JSON_ONLY_KEYS:
            if key in props:
                raise PropertyError(f"invalid property '{key}' = '{props[key]}': only allowed when "
                                    f"format is json (format is {result.format})", key, props[key])
    consume, timeout = result.task_consume_second, result.task_timeout_second
    if consume is not None and timeout is not None and timeout <= consume:
        raise PropertyError(f"invalid property 'task_timeout_second' = '{timeout}': must be greater "
                            f"than task_consume_second ({consume})", "task_timeout_second", str(timeout))
    return result


def parse_job_properties(d: Mapping[str, str]) -> JobProperties:
    """The PROPERTIES clause of CREATE ROUTINE LOAD; unset properties take their defaults."""
    return _apply_job(JobProperties(), d, JOB_KEYS, "CREATE ROUTINE LOAD")


def alter_job_properties(current: JobProperties, d: Mapping[str, str]) -> JobProperties:
    """The PROPERTIES clause of ALTER ROUTINE LOAD: every job property except format."""
    return _apply_job(current, d, ALTER_JOB_KEYS, "ALTER ROUTINE LOAD")


# ---- the Kafka data source -------------------------------------------------------------------------

KAFKA_KEYS = ("kafka_broker_list", "kafka_topic", "kafka_partitions", "kafka_offsets",
              "kafka_default_offsets")
ALTER_KAFKA_KEYS = ("kafka_partitions", "kafka_offsets", "kafka_default_offsets")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?"  # "_" too: docker service names
_HOST_RE = re.compile(rf"\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*")
_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class KafkaSource:
    broker_list: tuple[str, ...]
    """host:port of the bootstrap brokers."""
    topic: str
    partition_offsets: tuple[tuple[int, OffsetSpec], ...] = ()
    """Pinned partitions with their start offsets; empty means all partitions of the topic."""
    custom_properties: tuple[tuple[str, str], ...] = ()
    """property.* keys without the prefix, sorted by key (kafka_default_offsets lives here too)."""

    @property
    def partitions(self) -> tuple[int, ...]:
        return tuple(p for p, _ in self.partition_offsets)

    @property
    def custom(self) -> dict[str, str]:
        return dict(self.custom_properties)

    @property
    def default_offset(self) -> OffsetSpec:
        """Where a partition with no pinned offset starts (OFFSET_END unless kafka_default_offsets)."""
        return _default_spec(self.custom)

    def to_dict(self) -> dict[str, Any]:
        return {"broker_list": list(self.broker_list), "topic": self.topic,
                "partition_offsets": [[p, o] for p, o in self.partition_offsets],
                "custom_properties": dict(self.custom_properties)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KafkaSource:
        return cls(
            broker_list=tuple(d["broker_list"]),
            topic=d["topic"],
            partition_offsets=tuple((int(p), o) for p, o in d.get("partition_offsets", ())),
            custom_properties=tuple(sorted(d.get("custom_properties", {}).items())),
        )


def _broker_list(value: str) -> tuple[str, ...]:
    allowed = "must be a comma-separated list of host:port with port 1..65535"
    brokers = [b.strip() for b in value.split(",")]
    if not value.strip() or any(not b for b in brokers):
        raise _invalid("kafka_broker_list", value, allowed)
    for broker in brokers:
        host, sep, port = broker.rpartition(":")
        port_ok = re.fullmatch(r"[0-9]{1,5}", port) is not None and 1 <= int(port) <= 65535
        if not sep or not _HOST_RE.fullmatch(host) or not port_ok:
            raise _invalid("kafka_broker_list", value, f"'{broker}' is not host:port; {allowed}")
    return tuple(brokers)


def _partitions(value: str) -> list[int]:
    allowed = "must be comma-separated partition ids >= 0, e.g. 0,1,2"
    parts = [p.strip() for p in value.split(",")]
    if not all(re.fullmatch(r"[0-9]+", p) for p in parts):
        raise _invalid("kafka_partitions", value, allowed)
    ids = [int(p) for p in parts]
    if len(set(ids)) != len(ids):
        raise _invalid("kafka_partitions", value, "partition ids must not repeat")
    return ids


def parse_offset(prop: str, value: str, *, allow_datetime: bool = False) -> OffsetSpec:
    """An offset >= 0, OFFSET_BEGINNING, OFFSET_END, or (if allowed) 'YYYY-MM-DD HH:MM:SS'."""
    text = value.strip()
    if re.fullmatch(r"[0-9]+", text):
        return int(text)
    if text.upper() in (OFFSET_BEGINNING, OFFSET_END):
        return text.upper()
    if allow_datetime:
        try:
            return datetime.strptime(text, DATETIME_FORMAT).strftime(DATETIME_FORMAT)
        except ValueError:
            pass
        raise _invalid(prop, value, "must be OFFSET_BEGINNING, OFFSET_END or a datetime 'YYYY-MM-DD HH:MM:SS'")
    raise _invalid(prop, value, "must be an offset >= 0, OFFSET_BEGINNING or OFFSET_END")


def _offsets(value: str, partitions: list[int], whose: str) -> list[OffsetSpec]:
    """One offset per partition, in order, as StarRocks requires (no single offset for all)."""
    specs = [parse_offset("kafka_offsets", v) for v in value.split(",")]
    if len(specs) != len(partitions):
        raise _invalid("kafka_offsets", value, f"Partitions number should be equals to offsets number: {whose} "
                       f"names {len(partitions)} ({','.join(map(str, partitions))}) and kafka_offsets gives "
                       f"{len(specs)}; give one offset per partition, in the same order")
    return specs


def _custom(props: Mapping[str, str]) -> dict[str, str]:
    """The property.* keys (and bare kafka_default_offsets), validated, without the prefix."""
    custom: dict[str, str] = {}
    for key, value in props.items():
        if key == "kafka_default_offsets" or key.startswith("property."):
            name = key.removeprefix("property.")
            if not name:
                raise PropertyError(f"invalid property '{key}': the name after 'property.' is empty", key, value)
            custom[name] = value
    if "kafka_default_offsets" in custom:
        spec = parse_offset("property.kafka_default_offsets", custom["kafka_default_offsets"],
                            allow_datetime=True)
        custom["kafka_default_offsets"] = str(spec)
    for name, choices in (("security.protocol", SECURITY_PROTOCOLS), ("sasl.mechanism", SASL_MECHANISMS)):
        if name in custom:
            if custom[name].strip().upper() not in choices:
                raise _invalid(f"property.{name}", custom[name], f"must be one of {', '.join(choices)}")
            custom[name] = custom[name].strip().upper()
    return custom


def _default_spec(custom: Mapping[str, str]) -> OffsetSpec:
    text = custom.get("kafka_default_offsets")
    if text is None:
        return OFFSET_END
    return parse_offset("property.kafka_default_offsets", text, allow_datetime=True)


def _check_keys(props: Mapping[str, str], allowed: tuple[str, ...], verb: str) -> None:
    for key, value in props.items():
        if key.startswith("property.") or key in allowed:
            continue
        shown = [*allowed, "property.*"]
        if key in KAFKA_KEYS:
            raise PropertyError(f"property '{key}' cannot be changed by {verb}; "
                                f"allowed: {', '.join(sorted(shown))}", key, value)
        raise _unknown(key, shown)


def _pinned(props: Mapping[str, str], fallback_partitions: tuple[int, ...],
            default: OffsetSpec) -> tuple[tuple[int, OffsetSpec], ...]:
    if "kafka_partitions" in props:
        partitions, whose = _partitions(props["kafka_partitions"]), "kafka_partitions"
    elif "kafka_offsets" in props:
        if not fallback_partitions:
            raise _invalid("kafka_offsets", props["kafka_offsets"], "needs kafka_partitions")
        partitions, whose = list(fallback_partitions), "the job's kafka_partitions"
    else:
        return ()
    if "kafka_offsets" in props:
        offsets = _offsets(props["kafka_offsets"], partitions, whose)
    else:
        offsets = [default] * len(partitions)
    return tuple(zip(partitions, offsets, strict=True))


def parse_kafka_source(d: Mapping[str, str]) -> KafkaSource:
    """The FROM KAFKA clause of CREATE ROUTINE LOAD."""
    props = _lower_keys(d)
    _check_keys(props, KAFKA_KEYS, "CREATE ROUTINE LOAD")
    for key in ("kafka_broker_list", "kafka_topic"):
        if not props.get(key, "").strip():
            raise PropertyError(f"missing required property '{key}'", key)
    brokers = _broker_list(props["kafka_broker_list"])
    topic = props["kafka_topic"].strip()
    if not _TOPIC_RE.fullmatch(topic):
        raise _invalid("kafka_topic", props["kafka_topic"], "must be 1..249 characters of [A-Za-z0-9._-]")
    custom = _custom(props)
    return KafkaSource(brokers, topic, _pinned(props, (), _default_spec(custom)), tuple(sorted(custom.items())))


def alter_offsets(current: KafkaSource, d: Mapping[str, str]) -> tuple[tuple[int, OffsetSpec], ...]:
    """The (partition, offset) pairs an ALTER pins; empty when it pins none.

    kafka_partitions alone starts them at the default offset (OFFSET_END unless
    kafka_default_offsets); kafka_offsets alone gives one offset to each of the job's currently
    pinned partitions, in order. The job manager writes these into the job's progress.
    """
    props = _lower_keys(d)
    _check_keys(props, ALTER_KAFKA_KEYS, "ALTER ROUTINE LOAD")
    merged = {**current.custom, **_custom(props)}
    return _pinned(props, current.partitions, _default_spec(merged))


def alter_kafka_source(current: KafkaSource, d: Mapping[str, str]) -> KafkaSource:
    """The FROM KAFKA clause of ALTER ROUTINE LOAD: kafka_partitions, kafka_offsets and property.*
    (merged over the current ones); kafka_topic and kafka_broker_list cannot change."""
    props = _lower_keys(d)
    pinned = alter_offsets(current, props)
    custom = {**current.custom, **_custom(props)}
    return replace(current, partition_offsets=pinned or current.partition_offsets,
                   custom_properties=tuple(sorted(custom.items())))


# ---- offsets ---------------------------------------------------------------------------------------


def resolve_start_offset(spec: OffsetSpec | datetime, beginning: int, end: int,
                         offset_for_time: Callable[[int], int | None],
                         timezone: str = "Asia/Shanghai") -> int:
    """The concrete start offset of a partition whose log spans [beginning, end).

    ``offset_for_time(ms)`` (supplied by the driver, which owns the Kafka I/O) returns the first
    offset whose timestamp is >= ms, or None when there is none; then consumption starts at end.
    A naive datetime is read in ``timezone``. An int is returned as given: checking it against
    [beginning, end] is the caller's job (it pauses the job with OFFSET_OUT_OF_RANGE).
    """
    if isinstance(spec, int):
        return spec
    if spec == OFFSET_BEGINNING:
        return beginning
    if spec == OFFSET_END:
        return end
    when = spec if isinstance(spec, datetime) else datetime.strptime(spec, DATETIME_FORMAT)
    if when.tzinfo is None:
        when = when.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    found = offset_for_time(int(when.timestamp() * 1000))
    return end if found is None else found


# ---- SHOW ROUTINE LOAD ------------------------------------------------------------------------------

MASKED = "******"
_SECRET_MARKERS = ("password", "username", "secret")


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def job_properties_display(jp: JobProperties, *, partitions: str = "*", column_to_column_expr: str = "",
                           where_expr: str = "*", current_task_concurrent_num: int = 0) -> str:
    """JobProperties column of SHOW ROUTINE LOAD, with the StarRocks key names."""
    return _compact({
        "partitions": partitions, "partial_update": "false", "columnToColumnExpr": column_to_column_expr,
        "maxBatchIntervalS": str(jp.max_batch_interval_s), "whereExpr": where_expr, "dataFormat": jp.format,
        "timezone": jp.timezone, "format": jp.format, "json_root": jp.json_root,
        "strict_mode": str(jp.strict_mode).lower(),
        "jsonpaths": _compact(list(jp.jsonpaths)) if jp.jsonpaths else "",
        "desireTaskConcurrentNum": str(jp.desired_concurrent_number), "maxErrorNum": str(jp.max_error_number),
        "maxFilterRatio": repr(jp.max_filter_ratio), "strip_outer_array": str(jp.strip_outer_array).lower(),
        "currentTaskConcurrentNum": str(current_task_concurrent_num), "maxBatchRows": str(jp.max_batch_rows),
        "maxBatchSizeBytes": str(jp.max_batch_size_bytes), "columnSeparator": jp.column_separator,
        "taskConsumeSecond": str(jp.task_consume_second or -1),
        "taskTimeoutSecond": str(jp.task_timeout_second or -1),
    })


def data_source_properties_display(src: KafkaSource, current_partitions: list[int] | None = None) -> str:
    """DataSourceProperties column; ``current_partitions`` are those being consumed (default: pinned)."""
    parts = src.partitions if current_partitions is None else current_partitions
    return _compact({
        "topic": src.topic,
        "currentKafkaPartitions": ",".join(str(p) for p in parts),
        "brokerList": ",".join(src.broker_list),
    })


def mask_custom_properties(custom: Mapping[str, str]) -> dict[str, str]:
    """Secrets (keys containing password, username or secret) shown as ******."""
    return {k: MASKED if any(m in k.lower() for m in _SECRET_MARKERS) else v for k, v in custom.items()}


def custom_properties_display(src: KafkaSource) -> str:
    """CustomProperties column, secrets masked."""
    return _compact(mask_custom_properties(src.custom))
