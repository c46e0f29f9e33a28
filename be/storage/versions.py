"""Rowsets as version ranges, and the version paths that reads and clones follow (pure).

A rowset is ``[start_version, end_version, rowset_id, rows, bytes, chunks]``:

- a load publishes one rowset of a single version ``[V, V]`` whose id is its txn id;
- a compaction replaces a run of rowsets by one covering their whole range, with a fresh id;
- version 1 is the empty initial version (StarRocks' ``[0-1]`` rowset, implicit here), so the
  first load is version 2 and a base compaction's output starts at 0: ``[0, N]``.

A tablet's *live* rowsets cover ``[0, version]`` without gaps. Rowsets a compaction replaced stay
*stale* for a while, so that a read or an incremental clone at an older version still finds a
path. Like StarRocks' ``version_count``, the count of a replica is its live rowsets, plus the
initial ``[0-1]`` until a base compaction has folded it in.
"""

from __future__ import annotations

from collections.abc import Iterable

START, END, RID, ROWS, BYTES, CHUNKS = range(6)


def single(version: int, rowset_id: int, rows: int, nbytes: int, chunks: int) -> list[int]:
    """The rowset a load publishes at ``version``."""
    return [version, version, rowset_id, rows, nbytes, chunks]


def version_count(live: list[list[int]]) -> int:
    return len(live) + (0 if live and live[0][START] == 0 else 1)


def first_starts(version_from: int) -> tuple[int, ...]:
    """Where a path after ``version_from`` may begin: right after it, or - from the empty initial
    version - at a base rowset ``[0, N]``."""
    return (0, 2) if version_from <= 1 else (version_from + 1,)


def find_path(rowsets: Iterable[list[int]], version_from: int, version_to: int) -> list[list[int]] | None:
    """Rowsets that cover exactly ``(version_from, version_to]`` end to end, or None.

    Prefers the fewest rowsets (widest first); among equal spans the earlier listed wins, so pass
    live rowsets before stale ones.
    """
    if version_to <= max(version_from, 1):
        return []
    by_start: dict[int, list[list[int]]] = {}
    for rs in rowsets:
        if rs[END] <= version_to:
            by_start.setdefault(rs[START], []).append(rs)
    for options in by_start.values():
        options.sort(key=lambda r: -r[END])  # stable: live before stale among equal ends
    dead: set[int] = set()
    # iterative depth-first search over start versions; each start is expanded at most once
    stack: list[tuple[int, int]] = [(s, 0) for s in reversed(first_starts(version_from))]
    path: list[list[int]] = []
    while stack:
        start, i = stack.pop()
        options = by_start.get(start, [])
        if start in dead or i >= len(options):
            dead.add(start)
            if path and path[-1][END] + 1 == start:
                path.pop()
            continue
        rs = options[i]
        stack.append((start, i + 1))
        if rs[END] == version_to:
            return path + [rs]
        nxt = rs[END] + 1
        if nxt in dead:
            continue
        path.append(rs)
        stack.append((nxt, 0))
    return None


def covers(path: list[list[int]], version_from: int, version_to: int) -> bool:
    """True when ``path`` is contiguous over ``(version_from, version_to]``."""
    if version_to <= max(version_from, 1):
        return not path
    if not path or path[0][START] not in first_starts(version_from) or path[-1][END] != version_to:
        return False
    return all(a[END] + 1 == b[START] for a, b in zip(path, path[1:], strict=False))
