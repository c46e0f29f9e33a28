"""A BE's load error logs: the rows its loads filtered and why, behind ErrorURL and ErrorLogUrls.

In StarRocks, a load that filters rows writes them to ``<storage_root>/error_log/error_log_<hi>_<lo>``
(its fragment instance id in hex), one line per row, reason first so that a long row cannot hide
it::

    Error: <why the row was filtered>. Row: <the row as read>

at most MAX_ERROR_NUM (50) of them. The BE serves the file at ``GET /api/_load_error_log?file=<name>``
(no password: the name is the secret), a Stream Load's answer carries
``ErrorURL: http://<be host>:<webserver_port>/api/_load_error_log?file=<name>``, and a routine load
task's commit carries the URL to the FE, whose SHOW ROUTINE LOAD lists the last three as
ErrorLogUrls. A cleaner removes the files older than ``load_error_log_reserve_hours`` (48).

Here the same: the filtered-row samples a load kept (its first ``max_error_samples``, with the
rows' numbers in the body or batch in each reason), then one summary line when more rows were
filtered than listed. The directory is ``<storage_dir>/error_log``; a file is written whole (to a
``.tmp`` name, then renamed), and what is kept is bounded twice: files older than
``reserve_hours``, and the oldest beyond ``max_files``, are removed at each write (a busy BE that
filters rows in every load keeps a bounded directory, not 48 hours of files). A name that is not
``error_log_<hex>_<hex>`` is never opened, so a request cannot reach outside the directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)

ERROR_LOG_DIR = "error_log"
LOAD_ERROR_LOG_RESERVE_HOURS = 48.0
"""StarRocks' load_error_log_reserve_hours (be.conf, default 48)."""
MAX_FILES = 1000
"""The most error log files a BE keeps (the oldest go first): tabletsim's bound besides the age."""
PATH = "/api/_load_error_log"
_NAME = re.compile(r"error_log_[0-9a-f]{1,16}_[0-9a-f]{1,16}")
_TMP = ".tmp"


class Row(Protocol):
    row: str
    reason: str


class BadName(ValueError):
    """A file name that is not an error log's."""


def lines(rows: Sequence[Row], filtered: int) -> str:
    """The file's text: one ``Error: <reason>. Row: <row>`` line per sampled row, then a summary
    when ``filtered`` rows were filtered in all and fewer are listed (line breaks inside a row or a
    reason are written as ``\\n``, so that each row keeps one line)."""
    out = [f"Error: {_one_line(r.reason)}. Row: {_one_line(r.row)}\n" for r in rows]
    if filtered > len(rows):
        out.append(f"Error: {filtered} rows were filtered in all; the first {len(rows)} are listed above "
                   "(the load keeps a sample)\n")
    return "".join(out)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class ErrorLogs:
    """The error log files of one BE, and the URL each is served at."""

    def __init__(self, storage_dir: str, url_base: str, *, reserve_hours: float = LOAD_ERROR_LOG_RESERVE_HOURS,
                 max_files: int = MAX_FILES, clock: Callable[[], float] = time.time) -> None:
        """``url_base``: ``http://<be host>:<be http port>``, where the files are served."""
        self.dir = os.path.join(storage_dir, ERROR_LOG_DIR)
        self._url_base = url_base.rstrip("/")
        self.reserve_hours = reserve_hours
        self.max_files = max(1, max_files)
        self._clock = clock
        self._lock = threading.Lock()
        os.makedirs(self.dir, exist_ok=True)
        kept: list[tuple[float, str]] = []
        for entry in os.scandir(self.dir):
            if entry.name.endswith(_TMP):  # a write cut short by a crash
                _remove(entry.path)
            elif _NAME.fullmatch(entry.name):
                kept.append((entry.stat().st_mtime, entry.name))
        self._files: deque[tuple[float, str]] = deque(sorted(kept))
        with self._lock:
            self._clean()

    def url(self, name: str) -> str:
        return f"{self._url_base}{PATH}?file={name}"

    def __len__(self) -> int:
        return len(self._files)

    # ------------------------------------------------------------------ writing
    def write(self, rows: Sequence[Row], filtered: int) -> str:
        """Write a load's filtered rows to a new file; its URL."""
        u = uuid.uuid4().int
        name = f"error_log_{u >> 64:x}_{u & 0xFFFF_FFFF_FFFF_FFFF:x}"
        path = os.path.join(self.dir, name)
        with open(path + _TMP, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(lines(rows, filtered))
        os.replace(path + _TMP, path)
        with self._lock:
            self._files.append((self._clock(), name))
            self._clean()
        return self.url(name)

    async def write_async(self, rows: Sequence[Row], filtered: int) -> str | None:
        """:meth:`write` in a worker thread; None (logged) when the disk refuses: a load's answer
        never fails for its error log."""
        try:
            return await asyncio.to_thread(self.write, list(rows), filtered)
        except OSError as exc:
            log.warning("cannot write a load error log under %s: %s", self.dir, exc)
            return None

    def _clean(self) -> None:
        """Remove the files past reserve_hours, and the oldest beyond max_files (lock held)."""
        too_old = self._clock() - self.reserve_hours * 3600
        while self._files and (len(self._files) > self.max_files or self._files[0][0] < too_old):
            _, name = self._files.popleft()
            _remove(os.path.join(self.dir, name))

    # ------------------------------------------------------------------ reading
    def path(self, name: str) -> str:
        """Where the file ``name`` is; BadName when ``name`` is not an error log's."""
        if not _NAME.fullmatch(name):
            raise BadName(f"'{name[:80]}' is not the name of a load error log: it looks like "
                          "error_log_<hex>_<hex>, as the ErrorURL of a load gives it")
        return os.path.join(self.dir, name)

    def read(self, name: str) -> str | None:
        """The file's text; None when there is no such file (never written, or cleaned); BadName
        for a name that is not an error log's."""
        try:
            with open(self.path(name), encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def names(self) -> Iterable[str]:
        return [name for _, name in self._files]


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove the load error log %s: %s", path, exc)
