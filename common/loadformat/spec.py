"""What a load asks for (LoadSpec), what is wrong with it (LoadSpecError), what a batch gave."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from common.columnar import rows_of, table_from_rows

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


class BatchResult:
    """What one batch gave: the loaded rows, the counts and up to max_error_samples FilteredRows.

    The vectorized plan fills ``table`` (pyarrow, schema ``common.columnar.arrow_schema`` of the
    table's columns, input order, unselected and filtered rows left out) and ``rows`` is computed
    from it on first access. The row-at-a-time reference plan fills ``rows`` and leaves ``table``
    None.
    """

    def __init__(
        self,
        rows: list[tuple] | None = None,
        total_rows: int = 0,
        filtered_rows: int = 0,
        unselected_rows: int = 0,
        loaded_bytes: int = 0,
        errors: list[FilteredRow] | None = None,
        table: pa.Table | None = None,
    ) -> None:
        self._rows = rows if rows is not None or table is not None else []
        self.total_rows = total_rows
        self.filtered_rows = filtered_rows
        self.unselected_rows = unselected_rows
        self.loaded_bytes = loaded_bytes
        self.errors: list[FilteredRow] = errors if errors is not None else []
        self.table = table

    @property
    def rows(self) -> list[tuple]:
        """Loaded rows, values in table-column order as common.coltypes.convert stores them."""
        if self._rows is None:
            self._rows = rows_of(self.table)
        return self._rows

    @property
    def loaded_rows(self) -> int:
        return self.table.num_rows if self.table is not None else len(self._rows)

    def merge(self, other: BatchResult, max_error_samples: int) -> None:
        """Add ``other`` into this result, keeping at most ``max_error_samples`` samples."""
        if self.table is None and other.table is None:
            self.rows.extend(other.rows)
        else:
            schema = (self.table if self.table is not None else other.table).schema
            mine = self.table if self.table is not None else table_from_rows(self.rows, schema)
            theirs = other.table if other.table is not None else table_from_rows(other.rows, schema)
            self.table = pa.concat_tables([mine, theirs])
            self._rows = None
        self.total_rows += other.total_rows
        self.filtered_rows += other.filtered_rows
        self.unselected_rows += other.unselected_rows
        self.loaded_bytes += other.loaded_bytes
        room = max(0, max_error_samples - len(self.errors))
        self.errors.extend(other.errors[:room])

    def __repr__(self) -> str:
        return (
            f"BatchResult(loaded={self.loaded_rows}, total={self.total_rows}, filtered={self.filtered_rows}, "
            f"unselected={self.unselected_rows}, bytes={self.loaded_bytes}, errors={self.errors!r})"
        )
