"""FE dynamic configuration: StarRocks names, laptop defaults, validated, journaled.

``SetConfig`` changes a value at run time through the journal (domain ``config``), so it
survives an FE restart. Each setting documents its StarRocks production default beside the
laptop default used here (seconds, not minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.errors import InvalidArgument, NotFound
from fe.persist.journal import Journal


@dataclass(frozen=True)
class Setting:
    name: str
    type: type  # int, float or bool
    default: Any
    min: float | None
    max: float | None
    starrocks_default: str
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting("heartbeat_timeout_second", int, 5, 1, 3600, "5",
            "a BE without a heartbeat for this long is marked dead"),
    Setting("edit_log_roll_num", int, 1000, 10, 10_000_000, "50000",
            "records between two images of the FE metadata (bounds replay at start-up)"),
    Setting("tablet_create_timeout_second", int, 10, 1, 3600, "10",
            "how long CREATE TABLE waits for the BEs to create each replica"),
    Setting("tablet_sched_checker_interval_seconds", int, 2, 1, 3600, "20",
            "how often the tablet checker scans every tablet"),
    Setting("tablet_sched_repair_delay_factor_second", int, 5, 0, 86400, "60",
            "a replica on a dead BE counts as missing after this x 1/2/3 (HIGH/NORMAL/LOW)"),
    Setting("tablet_sched_slot_num_per_path", int, 2, 1, 64, "8",
            "concurrent clone tasks per BE storage path"),
    Setting("tablet_sched_min_clone_task_timeout_sec", int, 10, 1, 86400, "180",
            "lower bound of a clone task's timeout (the timeout grows with the tablet's size)"),
    Setting("tablet_sched_max_clone_task_timeout_sec", int, 600, 1, 86400, "7200",
            "upper bound of a clone task's timeout"),
    Setting("tablet_sched_max_scheduling_tablets", int, 10000, 1, 10_000_000, "10000",
            "at most this many tablets in pending + running"),
    Setting("tablet_sched_balance_load_score_threshold", float, 0.1, 0.0, 1.0, "0.1",
            "a BE whose load score differs from the average by more than this is unbalanced"),
    Setting("tablet_sched_disable_balance", bool, False, None, None, "false",
            "turn off replica balancing"),
    Setting("capacity_used_percent_high_water", float, 0.75, 0.0, 1.0, "0.75",
            "above this disk use, balancing weighs disk use only"),
    Setting("max_routine_load_task_concurrent_num", int, 5, 1, 1000, "5",
            "upper bound of a routine load job's concurrent tasks"),
    Setting("max_routine_load_task_num_per_be", int, 16, 1, 1000, "16",
            "routine load tasks one BE may run at once"),
    Setting("routine_load_task_consume_second", int, 3, 1, 3600, "15",
            "a routine load task consumes for at most this long"),
    Setting("publish_version_interval_ms", int, 50, 1, 60_000, "10",
            "how often the publish daemon retries COMMITTED txns; a commit wakes it at once"),
    Setting("routine_load_task_timeout_second", int, 30, 1, 86400, "60",
            "a routine load task's transaction times out after this"),
    Setting("max_routine_load_batch_size", int, 4 * 1024**3, 1, 64 * 1024**3, "4294967296",
            "upper bound of a routine load batch in bytes"),
    Setting("stream_load_default_timeout_second", int, 600, 1, 259200, "600",
            "default timeout of a stream load transaction"),
    Setting("label_keep_max_second", int, 3 * 86400, 1, 30 * 86400, "259200",
            "finished transactions and their labels are kept this long"),
    Setting("label_keep_max_num", int, 1000, 1, 10_000_000, "1000",
            "a database keeps at most this many transactions; the oldest finished ones go first"),
    Setting("fe_leader_lease_second", int, 3, 2, 3600, "(BDB JE: bdbje_heartbeat_timeout_second 30)",
            "FE high availability (--journal etcd): the etcd lease of each FE; a leader that cannot renew "
            "it for this long steps down and another FE takes over. Known before the journal is read: "
            "from the local image or --config at start; a change takes effect at each FE's next start"),
    Setting("max_running_txn_num_per_db", int, 1000, 1, 1_000_000, "1000",
            "running (PREPARE or COMMITTED) transactions per database beyond which a begin is refused; "
            "routine load tasks are not counted"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _parse(setting: Setting, raw: str) -> Any:
    text = raw.strip()
    if setting.type is bool:
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise InvalidArgument(f"config '{setting.name}' = '{raw}': must be true or false")
    try:
        value = setting.type(text)
    except ValueError:
        kind = "an integer" if setting.type is int else "a number"
        raise InvalidArgument(f"config '{setting.name}' = '{raw}': must be {kind}") from None
    if (setting.min is not None and value < setting.min) or (setting.max is not None and value > setting.max):
        raise InvalidArgument(
            f"config '{setting.name}' = '{raw}': must be between {setting.min:g} and {setting.max:g}"
        )
    return value


class DynamicConfig:
    """Journal domain ``config``. Read values with attribute access: ``cfg.heartbeat_timeout_second``."""

    def __init__(self, journal: Journal | None = None, overrides: dict[str, str] | None = None) -> None:
        self._journal = journal
        self._values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
        self._journaled: dict[str, Any] = {}  # what SetConfig changed; wins over start-up flags
        for name, raw in (overrides or {}).items():
            self._values[name] = _parse(self._setting(name), raw)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    @staticmethod
    def _setting(name: str) -> Setting:
        setting = _BY_NAME.get(name)
        if setting is None:
            raise NotFound(f"unknown config '{name}'; known: {', '.join(sorted(_BY_NAME))}")
        return setting

    def set(self, name: str, raw: str) -> None:
        value = _parse(self._setting(name), raw)
        if self._journal is None:
            self._values[name] = value
        else:
            self._journal.log("config.set", {"name": name, "value": value})

    def show(self, pattern: str = "") -> list[tuple[Setting, Any]]:
        """Settings whose name contains ``pattern`` (SQL LIKE '%' wildcards accepted)."""
        needle = pattern.replace("%", "").lower()
        return [(s, self._values[s.name]) for s in SETTINGS if needle in s.name]

    # journal domain ------------------------------------------------------------------
    def apply(self, verb: str, data: dict[str, Any]) -> None:
        if verb != "set":
            raise ValueError(f"config has no edit log verb {verb!r}")
        self._values[data["name"]] = data["value"]
        self._journaled[data["name"]] = data["value"]

    def dump(self) -> dict[str, Any]:
        return {"values": dict(self._journaled)}

    def load(self, state: dict[str, Any]) -> None:
        for name, value in state.get("values", {}).items():
            if name in _BY_NAME:
                self._values[name] = value
                self._journaled[name] = value
