"""What a load asks for (LoadSpec), what is wrong with it (LoadSpecError), what a batch gave."""

from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("csv", "json")


@dataclass(frozen=True)
class LoadSpec:
    """The format properties shared by Stream Load headers and Routine Load job properties."""

    format: str = "csv"
    """'csv' or 'json' (case-insensitive)."""
    columns: str | None = None
    """StarRocks COLUMNS text: 'k1, tmp_ts, v = from_unixtime(tmp_ts)'."""
    column_separator: str = ","
    """CSV field separator, one or more characters; '\\t' and '\\x01'-style escapes are decoded."""
    row_delimiter: str = "\n"
    """CSV row delimiter for Stream Load bodies."""
    jsonpaths: str | None = None
    """JSON array of paths, '["$.id", "$.a.b", "$.arr[0]"]', matched to source columns by position."""
    json_root: str | None = None
    """A '$.a.b' path selecting the node that holds the rows."""
    strip_outer_array: bool = False
    """The JSON document (after json_root) is an array of rows."""
    where: str | None = None
    """Boolean filter over the target column names; rows where it is not TRUE are unselected."""
    strict_mode: bool = False
    """A non-NULL source value that fails conversion filters the row instead of becoming NULL."""
    timezone: str = "Asia/Shanghai"
    """Zone for from_unixtime, unix_timestamp and now(): an IANA name or '+08:00'."""
    max_error_samples: int = 20
    """How many FilteredRow samples a BatchResult keeps (filtered_rows counts all)."""


class LoadSpecError(ValueError):
    """The load specification cannot be compiled; the message names the culprit and what is allowed."""


@dataclass
class FilteredRow:
    row: str
    """The raw row text, truncated to 200 characters."""
    reason: str
    """'row 3: column 'age' value 'abc' is not a valid INT'."""


@dataclass
class BatchResult:
    rows: list[tuple] = field(default_factory=list)
    """Loaded rows, values in table-column order as common.coltypes.convert stores them."""
    total_rows: int = 0
    filtered_rows: int = 0
    unselected_rows: int = 0
    loaded_bytes: int = 0
    errors: list[FilteredRow] = field(default_factory=list)

    @property
    def loaded_rows(self) -> int:
        return len(self.rows)

    def merge(self, other: BatchResult, max_error_samples: int) -> None:
        """Add ``other`` into this result, keeping at most ``max_error_samples`` samples."""
        self.rows.extend(other.rows)
        self.total_rows += other.total_rows
        self.filtered_rows += other.filtered_rows
        self.unselected_rows += other.unselected_rows
        self.loaded_bytes += other.loaded_bytes
        room = max(0, max_error_samples - len(self.errors))
        self.errors.extend(other.errors[:room])
