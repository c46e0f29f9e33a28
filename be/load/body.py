"""Where a Stream Load body's pieces come from: a body in memory (gRPC) or an HTTP stream.

A Stream Load body larger than ``piece_bytes`` is loaded in pieces of about that size, cut at row
delimiters (be/load/pipeline.py prepares piece N+1 while piece N is written). Both sources cut by
the same rules, so that the pieces map exactly as the whole body does (the same rows, counts,
filtered-row samples and row numbers):

- CSV is cut just after a row delimiter at least ``piece_bytes`` into the piece. A delimiter that
  overlaps itself (``aa``: only a left-to-right split knows where its rows end) is not cut.
- JSON is cut at newlines when it is newline-delimited (:func:`ndjson`: its first line is a whole
  document, not an array, and more follows), each line then mapped as one document; one JSON
  document, ``strip_outer_array`` and ``json_root`` bodies are mapped whole.
- A body of at most ``piece_bytes`` is one piece.

:class:`MemoryBody` is a body that is already in memory (gRPC's StreamLoadRequest.data): its pieces
are slices, made in the worker thread that maps each. :class:`StreamBody` reads the body as it
arrives (aiohttp's ``request.content``, 1 MiB at a time) and hands a piece over as soon as one is
cut, so a body of any size holds only a few pieces in memory: the bytes read but not yet cut
(under ``piece_bytes`` plus a read, or a row longer than that), the piece being mapped and the
rows of the piece being written - as a StarRocks BE streams a CSV body through its StreamLoadPipe
into the scanner. aiohttp stops reading the socket while its own buffer is full (128 KiB), so a
fast client waits for the load (TCP flow control) rather than filling the BE's memory.
``high_water`` is the most body bytes the source held at once.

What a stream cannot know in advance, it decides on what it has read. JSON: whether the body is
newline-delimited is decided on the first ``piece_bytes`` (the whole body when smaller); a body
that is not is read whole and mapped in one piece, as StarRocks does with every JSON body (up to
``streaming_load_max_batch_size_mb``, 100 MB, unless the load says ``ignore_json_size``). The
in-memory rule also holds whole a body with an array line anywhere (``[`` first on a line); a
stream that meets one after its first piece maps the piece holding it as a body of its own, whose
filtered-row sample of the array quotes it as the whole body would whenever the body's other
lines in that piece are valid.
"""

from __future__ import annotations

import asyncio
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial

import orjson

from common.errors import InvalidArgument
from common.loadformat import BatchResult, LoadPlan, LoadSpec
from common.loadformat.rowplan import _unescape

PIECE_BYTES = 4 * 1024 * 1024
"""A Stream Load body larger than this is loaded in pieces of about this size (be/load/coordinator.py)."""
READ_BYTES = 1024 * 1024
"""One read from an HTTP body stream."""
JSON_WHOLE_MAX_BYTES = 100 * 1024 * 1024
"""StarRocks' streaming_load_max_batch_size_mb (100): the largest JSON body held whole."""

Parse = Callable[[int], BatchResult]
"""One piece: ``parse(first_row)`` maps it, given how many rows the pieces before it had."""

_NON_BLANK = re.compile(rb"\S")
_ARRAY_LINE = re.compile(rb"\n[ \t\r\x0b\x0c]*\[")


class IncompleteBody(InvalidArgument):
    """The client stopped sending before the end of its body (or the body is over a limit)."""


class Body(ABC):
    """A Stream Load body as pieces (see the module docstring): :class:`MemoryBody` (gRPC) or
    :class:`StreamBody` (HTTP)."""

    size: int = 0
    """Bytes of the body read so far (all of it once the pieces are done)."""
    high_water: int = 0
    """The most body bytes held at once."""
    read_ms: float = 0.0
    """Time spent waiting for the body from the client."""

    @abstractmethod
    def pieces(self, plan: LoadPlan, spec: LoadSpec, piece_bytes: int) -> AsyncGenerator[Parse, None]:
        """The body's pieces, each a ``parse(first_row)``, cut where the rows map as the whole body."""

    @abstractmethod
    async def read_all(self, limit: int, what: str) -> bytes:
        """The whole body (a group commit member is loaded in one piece), refused over ``limit``."""


class MemoryBody(Body):
    """A body already in memory: gRPC's StreamLoadRequest.data."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = self.high_water = len(data)

    async def pieces(self, plan: LoadPlan, spec: LoadSpec, piece_bytes: int) -> AsyncGenerator[Parse, None]:
        data = self._data
        if spec.format == "csv" or len(data) <= piece_bytes:
            pieces = memory_pieces(plan, spec, data, piece_bytes)
        else:  # a JSON body is scanned for array lines first: off the loop
            pieces = await asyncio.to_thread(memory_pieces, plan, spec, data, piece_bytes)
        for parse in pieces:
            yield parse

    async def read_all(self, limit: int, what: str) -> bytes:
        return self._data


class StreamBody(Body):
    """A body read as it arrives: ``read(n)`` gives up to n more bytes, ``b""`` at its end
    (aiohttp's ``request.content.read``)."""

    def __init__(self, read: Callable[[int], Awaitable[bytes]], *, ignore_json_size: bool = False,
                 read_bytes: int = READ_BYTES) -> None:
        self._read = read
        self._ignore_json_size = ignore_json_size
        self._read_bytes = read_bytes
        self._buf = bytearray()
        self._eof = False

    # ------------------------------------------------------------------ reading
    async def _fill(self, above: int) -> None:
        """Read until more than ``above`` bytes are held, or the body ends."""
        buf = self._buf
        while not self._eof and len(buf) <= above:
            t0 = time.perf_counter()
            try:
                chunk = await self._read(self._read_bytes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the client's stream ends the load
                raise IncompleteBody(f"the body could not be read after {self.size} bytes "
                                     f"({type(exc).__name__}: {exc}); nothing was loaded") from None
            finally:
                self.read_ms += (time.perf_counter() - t0) * 1000
            if not chunk:
                self._eof = True
                break
            buf += chunk
            self.size += len(chunk)
            self.high_water = max(self.high_water, len(buf))

    def _take(self, end: int) -> bytes:
        """The first ``end`` bytes held, handed over (one copy)."""
        with memoryview(self._buf) as view:
            piece = bytes(view[:end])
        del self._buf[:end]
        return piece

    async def read_all(self, limit: int, what: str) -> bytes:
        await self._fill_all(limit, f"{what} takes a body of up to {limit} bytes")
        return self._take(len(self._buf))

    async def _fill_all(self, limit: int | None, refusal: str) -> None:
        while not self._eof:
            await self._fill(len(self._buf))
            if limit is not None and len(self._buf) > limit:
                raise IncompleteBody(f"{refusal}; this one is larger; nothing was loaded")

    # ------------------------------------------------------------------ pieces
    async def pieces(self, plan: LoadPlan, spec: LoadSpec, piece_bytes: int) -> AsyncGenerator[Parse, None]:
        await self._fill(piece_bytes)
        if self._eof and len(self._buf) <= piece_bytes:  # a small body: one piece
            if self._buf:
                yield partial(plan.parse, self._take(len(self._buf)))
            return
        if spec.format == "csv":
            delim = csv_delimiter(spec)
            if delim is None:
                await self._fill_all(None, "")
                yield partial(plan.parse, self._take(len(self._buf)))
                return
            async for parse in self._cut(plan, delim, piece_bytes, json=False):
                yield parse
            return
        if not (spec.json_root or spec.strip_outer_array):
            await self._first_line_read()
            if ndjson(bytes(self._buf)):
                async for parse in self._cut(plan, b"\n", piece_bytes, json=True):
                    yield parse
                return
        limit = None if self._ignore_json_size else JSON_WHOLE_MAX_BYTES
        await self._fill_all(limit, f"a JSON body that is not newline-delimited is mapped whole, up to {limit} "
                                    "bytes (StarRocks' streaming_load_max_batch_size_mb); send it as one JSON "
                                    "document per line, or set the header ignore_json_size: true")
        yield partial(plan.parse, self._take(len(self._buf)))

    async def _first_line_read(self) -> None:
        """Read until the first non-blank line is whole (or the body ends): ndjson() judges it."""
        while not self._eof:
            m = _NON_BLANK.search(self._buf)
            if m is not None and self._buf.find(b"\n", m.start()) >= 0:
                return
            await self._fill(len(self._buf))

    async def _cut(self, plan: LoadPlan, delim: bytes, piece_bytes: int, *, json: bool) -> AsyncGenerator[Parse, None]:
        buf, n = self._buf, len(delim)
        while True:
            await self._fill(piece_bytes)
            at = buf.find(delim, piece_bytes) if len(buf) > piece_bytes else -1
            while at < 0 and not self._eof:  # no row ends past piece_bytes yet (a long row): read on
                held = len(buf)
                await self._fill(held)
                at = buf.find(delim, max(piece_bytes, held - n + 1))
            if at < 0 or (self._eof and at + n >= len(buf)):  # what is left is the last piece
                if buf and (not json or _NON_BLANK.search(buf)):
                    yield _piece(plan, self._take(len(buf)), json)
                return
            piece = self._take(at + n)
            if not json or _NON_BLANK.search(piece):
                yield _piece(plan, piece, json)
            del piece


def _piece(plan: LoadPlan, piece: bytes, json: bool) -> Parse:
    if not json:
        return partial(plan.parse, piece)
    if piece.lstrip().startswith(b"[") or _ARRAY_LINE.search(piece):  # see the module docstring
        return partial(plan.parse, piece)
    return partial(_parse_lines, plan, piece, 0, len(piece))


# ---------------------------------------------------------------------- a body in memory
def memory_pieces(plan: LoadPlan, spec: LoadSpec, data: bytes, piece_bytes: int) -> list[Parse]:
    """The body's pieces: the whole body when it is small, or when it cannot be cut so that the
    pieces map exactly as the whole body does. Each piece is sliced in the worker thread that maps
    it (the body is not copied up front)."""
    if len(data) <= piece_bytes:
        return [partial(plan.parse, data)]
    if spec.format == "csv":
        delim = csv_delimiter(spec)
        if delim is None:
            return [partial(plan.parse, data)]
        return [partial(_parse_slice, plan, data, a, b) for a, b in _cut(data, delim, piece_bytes)]
    if spec.json_root or spec.strip_outer_array or not ndjson(data):
        return [partial(plan.parse, data)]
    ranges = [(a, b) for a, b in _cut(data, b"\n", piece_bytes) if _NON_BLANK.search(data, a, b)]
    if len(ranges) < 2:
        return [partial(plan.parse, data)]
    return [partial(_parse_lines, plan, data, a, b) for a, b in ranges]


def csv_delimiter(spec: LoadSpec) -> bytes | None:
    """The CSV row delimiter as bytes, or None when the body cannot be cut at it (empty, or
    overlapping itself: only a left-to-right split knows its rows)."""
    delim = _unescape(spec.row_delimiter).encode("utf-8")
    if not delim or any(delim[:k] == delim[-k:] for k in range(1, len(delim))):
        return None
    return delim


def _cut(data: bytes, delim: bytes, piece_bytes: int) -> list[tuple[int, int]]:
    """``data`` as ranges of at least ``piece_bytes`` (the last: what is left), each ending just
    after a ``delim`` (one that does not overlap itself, so that every occurrence is a row end)."""
    ranges, start = [], 0
    while len(data) - start > piece_bytes:
        at = data.find(delim, start + piece_bytes)
        if at < 0 or at + len(delim) >= len(data):
            break
        ranges.append((start, at + len(delim)))
        start = at + len(delim)
    ranges.append((start, len(data)))
    return ranges


def ndjson(data: bytes) -> bool:
    """Whether a JSON body maps line by line exactly as in one piece: it is not one JSON document
    (its first non-blank line is a whole one, and more follows), and no line is an array (whose
    filtered-row sample quotes the line, or the array re-serialized when every line is valid)."""
    m = _NON_BLANK.search(data)
    if m is None or data[m.start():m.start() + 1] == b"[":
        return False
    end = data.find(b"\n", m.start())
    if end < 0:
        return False
    try:
        orjson.loads(data[m.start():end])
    except orjson.JSONDecodeError:
        return False
    return b"[" not in data or _ARRAY_LINE.search(data) is None


def _parse_slice(plan: LoadPlan, data: bytes, start: int, end: int, first_row: int) -> BatchResult:
    return plan.parse(data[start:end], first_row)


def _parse_lines(plan: LoadPlan, data: bytes, start: int, end: int, first_row: int) -> BatchResult:
    """Newline-delimited JSON: each non-blank line one document, as the whole body maps them."""
    return plan.parse_messages([line for line in data[start:end].split(b"\n") if line.strip()], first_row)
