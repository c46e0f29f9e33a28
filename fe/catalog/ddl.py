"""CREATE TABLE validation: from an operator's request to a checked table definition.

Pure functions; every error names the offending value and what is allowed. Nothing here
allocates ids or touches BEs: :mod:`fe.catalog.catalog` does that once this has passed.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

from common.coltypes import INTEGER_RANGES, Column, ColumnType, parse_type, validate_column
from common.errors import InvalidArgument
from fe.catalog.model import DEFAULT_GROUP_COMMIT_INTERVAL_MS, GroupCommitMode, WriteQuorum

MAXVALUE = "MAXVALUE"
PARTITION_KINDS = frozenset({"DATE", "DATETIME", *INTEGER_RANGES})
TABLE_PROPERTIES = ("replication_num", "write_quorum", "group_commit", "group_commit_interval_ms")
ALTERABLE_PROPERTIES = ("write_quorum", "group_commit", "group_commit_interval_ms")
MAX_GROUP_COMMIT_INTERVAL_MS = 3_600_000
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}", re.ASCII)
MAX_BUCKETS = 1024
DEFAULT_BUCKETS = 3


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    not_null: bool = False
    default: str | None = None


@dataclass(frozen=True)
class PartitionSpec:
    name: str
    upper: str  # VALUES LESS THAN (upper); MAXVALUE allowed
    lower: str | None = None  # given: VALUES [lower, upper) (fixed range)


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: list[ColumnSpec]
    duplicate_key: list[str] = field(default_factory=list)
    partition_column: str | None = None
    partitions: list[PartitionSpec] = field(default_factory=list)
    distribution_columns: list[str] = field(default_factory=list)
    buckets: int | None = None
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckedPartition:
    name: str
    lower: str | None
    upper: str | None


@dataclass(frozen=True)
class CheckedTable:
    name: str
    columns: list[Column]
    key_columns: list[str]
    distribution_columns: list[str]
    buckets: int
    replication_num: int
    write_quorum: WriteQuorum
    partition_column: str | None
    partitions: list[CheckedPartition]
    group_commit: GroupCommitMode = GroupCommitMode.OFF
    group_commit_interval_ms: int = DEFAULT_GROUP_COMMIT_INTERVAL_MS


def check_name(kind: str, name: str) -> str:
    if not _NAME_RE.fullmatch(name or ""):
        raise InvalidArgument(
            f"invalid {kind} name '{name}': it must start with a letter and contain only letters, "
            "digits and '_' (at most 64 characters)"
        )
    return name


def parse_table_properties(props: dict[str, str], *, alter: bool = False) -> dict[str, object]:
    """replication_num (1..32), write_quorum (MAJORITY/ONE/ALL, any case), group_commit
    (off_mode/sync_mode/async_mode, any case) and group_commit_interval_ms (a positive integer)."""
    out: dict[str, object] = {}
    for raw_key, value in props.items():
        key = raw_key.strip().lower()
        if key == "replication_num":
            if alter:
                raise InvalidArgument(
                    "property 'replication_num' cannot be changed by ALTER TABLE here; "
                    f"allowed: {', '.join(ALTERABLE_PROPERTIES)}"
                )
            try:
                n = int(value)
            except ValueError:
                n = 0
            if not 1 <= n <= 32:
                raise InvalidArgument(f"invalid property 'replication_num' = '{value}': must be an integer 1..32")
            out["replication_num"] = n
        elif key == "write_quorum":
            try:
                out["write_quorum"] = WriteQuorum.parse(value)
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
        elif key == "group_commit":
            try:
                out["group_commit"] = GroupCommitMode.parse(value)
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
        elif key == "group_commit_interval_ms":
            try:
                ms = int(value.strip())
            except ValueError:
                ms = 0
            if not 1 <= ms <= MAX_GROUP_COMMIT_INTERVAL_MS:
                raise InvalidArgument(
                    f"invalid property 'group_commit_interval_ms' = '{value}': must be an integer "
                    f"1..{MAX_GROUP_COMMIT_INTERVAL_MS} (milliseconds a group commit window stays open; default "
                    f"{DEFAULT_GROUP_COMMIT_INTERVAL_MS})")
            out["group_commit_interval_ms"] = ms
        else:
            allowed = ", ".join(ALTERABLE_PROPERTIES if alter else TABLE_PROPERTIES)
            raise InvalidArgument(f"unknown table property '{raw_key}'; allowed: {allowed}")
    return out


def _partition_value(text: str, ctype: ColumnType, what: str) -> object:
    raw = text.strip()
    try:
        if ctype.kind in INTEGER_RANGES:
            value = int(raw)
            lo, hi = INTEGER_RANGES[ctype.kind]
            if not lo <= value <= hi:
                raise ValueError
            return value
        if ctype.kind == "DATE":
            return _dt.date.fromisoformat(raw)
        return _dt.datetime.fromisoformat(raw.replace("T", " ") if len(raw) > 10 else raw + " 00:00:00")
    except ValueError:
        raise InvalidArgument(f"partition {what} '{text}' is not a valid {ctype} value") from None


def partition_key(text: str | None, ctype: ColumnType) -> object:
    """Comparable key of a stored bound (bounds are stored as canonical text)."""
    if text is None:
        return None
    return _partition_value(text, ctype, "value")


def _canonical(value: object) -> str:
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


def _check_partitions(spec: TableSpec, part_col: Column) -> list[CheckedPartition]:
    if not spec.partitions:
        raise InvalidArgument(
            f"PARTITION BY RANGE({part_col.name}) needs at least one partition "
            "(VALUES LESS THAN or VALUES [lower, upper))"
        )
    names: set[str] = set()
    ranges = []  # (lower key or None, upper key or None, PartitionSpec, lower text, upper text)
    for p in spec.partitions:
        check_name("partition", p.name)
        if p.name in names:
            raise InvalidArgument(f"duplicate partition name '{p.name}'")
        names.add(p.name)
        upper = None if p.upper.strip().upper() == MAXVALUE else _partition_value(p.upper, part_col.type, "bound")
        lower = None if p.lower is None else _partition_value(p.lower, part_col.type, "bound")
        if lower is not None and upper is not None and not lower < upper:
            raise InvalidArgument(
                f"partition '{p.name}': lower bound '{p.lower}' must be less than upper bound '{p.upper}'"
            )
        ranges.append((lower, upper, p))
    # VALUES LESS THAN: the lower bound is the previous partition's upper bound (by upper bound)
    less_than = sorted((r for r in ranges if r[2].lower is None), key=lambda r: (r[1] is None, r[1]))
    resolved = []
    prev_upper = None
    for _lower, upper, p in less_than:
        resolved.append((prev_upper, upper, p))
        prev_upper = upper
        if upper is None:
            break
    leftover = [r for r in less_than if r[2] not in {x[2] for x in resolved}]
    if leftover:
        raise InvalidArgument(
            f"partition '{leftover[0][2].name}' comes after a MAXVALUE partition: ranges would overlap"
        )
    resolved += [r for r in ranges if r[2].lower is not None]
    # overlap check over every pair of [lower, upper)
    ordered = sorted(resolved, key=lambda r: (r[0] is not None, r[0]))
    for (lo_a, up_a, a), (lo_b, up_b, b) in zip(ordered, ordered[1:], strict=False):
        if up_a is None or (lo_b is None or lo_b < up_a):
            raise InvalidArgument(
                f"partition ranges overlap: '{a.name}' [{_bound(lo_a)}, {_bound(up_a)}) and "
                f"'{b.name}' [{_bound(lo_b)}, {_bound(up_b)})"
            )
    return [
        CheckedPartition(p.name, None if lo is None else _canonical(lo), None if up is None else _canonical(up))
        for lo, up, p in sorted(resolved, key=lambda r: (r[0] is not None, r[0]))
    ]


def _bound(value: object) -> str:
    return "MINVALUE" if value is None else _canonical(value)


def check_table(spec: TableSpec) -> CheckedTable:
    """Validate a CREATE TABLE request (DUPLICATE KEY model) completely."""
    check_name("table", spec.name)
    if not spec.columns:
        raise InvalidArgument(f"table '{spec.name}' needs at least one column")
    seen: dict[str, ColumnSpec] = {}
    for c in spec.columns:
        if c.name.lower() in seen:
            raise InvalidArgument(f"duplicate column name '{c.name}'")
        seen[c.name.lower()] = c
    keys = list(spec.duplicate_key) or [spec.columns[0].name]
    for i, k in enumerate(keys):
        if k.lower() not in seen:
            raise InvalidArgument(
                f"DUPLICATE KEY column '{k}' does not exist; columns: {', '.join(c.name for c in spec.columns)}"
            )
        if i >= len(spec.columns) or spec.columns[i].name.lower() != k.lower():
            raise InvalidArgument(
                f"DUPLICATE KEY columns must be the first columns of the table in order; '{k}' is not "
                f"column #{i + 1}"
            )
    key_set = {k.lower() for k in keys}
    columns: list[Column] = []
    for c in spec.columns:
        try:
            ctype = parse_type(c.type)
        except ValueError as exc:
            raise InvalidArgument(f"column '{c.name}': {exc}") from None
        col = Column(c.name, ctype, nullable=not c.not_null, default=c.default, is_key=c.name.lower() in key_set)
        try:
            validate_column(col)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        columns.append(col)
    by_name = {c.name.lower(): c for c in columns}

    dist = list(spec.distribution_columns)
    if not dist:
        raise InvalidArgument("DISTRIBUTED BY HASH(columns) is required: name at least one column")
    for d in dist:
        col = by_name.get(d.lower())
        if col is None:
            raise InvalidArgument(
                f"distribution column '{d}' does not exist; columns: {', '.join(c.name for c in columns)}"
            )
        if col.type.kind in ("FLOAT", "DOUBLE", "JSON"):
            raise InvalidArgument(f"distribution column '{d}' of type {col.type} is not allowed")
    buckets = DEFAULT_BUCKETS if spec.buckets is None else spec.buckets
    if not 1 <= buckets <= MAX_BUCKETS:
        raise InvalidArgument(f"invalid BUCKETS {buckets}: must be between 1 and {MAX_BUCKETS}")

    props = parse_table_properties(spec.properties)
    replication_num = int(props.get("replication_num", 3))
    quorum = props.get("write_quorum", WriteQuorum.MAJORITY)
    assert isinstance(quorum, WriteQuorum)
    group_commit = props.get("group_commit", GroupCommitMode.OFF)
    assert isinstance(group_commit, GroupCommitMode)

    partition_column = None
    partitions = [CheckedPartition(spec.name, None, None)]
    if spec.partition_column:
        col = by_name.get(spec.partition_column.lower())
        if col is None:
            raise InvalidArgument(
                f"partition column '{spec.partition_column}' does not exist; "
                f"columns: {', '.join(c.name for c in columns)}"
            )
        if col.type.kind not in PARTITION_KINDS:
            raise InvalidArgument(
                f"partition column '{col.name}' is {col.type}; RANGE partitions need DATE, DATETIME or an "
                "integer column"
            )
        partition_column = col.name
        partitions = _check_partitions(spec, col)
    elif spec.partitions:
        raise InvalidArgument("partitions were given without a partition column (PARTITION BY RANGE(col))")
    return CheckedTable(
        name=spec.name,
        columns=columns,
        key_columns=[by_name[k.lower()].name for k in keys],
        distribution_columns=[by_name[d.lower()].name for d in dist],
        buckets=buckets,
        replication_num=replication_num,
        write_quorum=quorum,
        partition_column=partition_column,
        partitions=partitions,
        group_commit=group_commit,
        group_commit_interval_ms=int(props.get("group_commit_interval_ms", DEFAULT_GROUP_COMMIT_INTERVAL_MS)),
    )
