"""The small JSONPath subset of StarRocks loads: ``$``, ``.key``, ``['key']``, ``["key"]``, ``[n]``."""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from common.loadformat.spec import LoadSpecError


class _Missing:
    """A path that does not exist in a document (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

_STEP_RE = re.compile(
    r"\.([A-Za-z0-9_$@\-]+)|\[\s*'((?:[^'\\]|\\.)*)'\s*\]|\[\s*\"((?:[^\"\\]|\\.)*)\"\s*\]|\[\s*(-?\d+)\s*\]"
)
PATH_SYNTAX = "'$', '$.key', \"$['key']\", '$.arr[0]' and combinations such as '$.a.b[1].c'"


def parse_path(text: str) -> tuple[str | int, ...]:
    """'$.a.b[0]' -> ('a', 'b', 0). Raises LoadSpecError naming the path."""
    s = text.strip() if isinstance(text, str) else ""
    if not s.startswith("$"):
        raise LoadSpecError(f"invalid JSON path {text!r}: it must start with '$'; allowed: {PATH_SYNTAX}")
    steps: list[str | int] = []
    pos = 1
    while pos < len(s):
        m = _STEP_RE.match(s, pos)
        if m is None:
            raise LoadSpecError(f"invalid JSON path {text!r} at character {pos + 1}; allowed: {PATH_SYNTAX}")
        key, sq, dq, idx = m.groups()
        if key is not None:
            steps.append(key)
        elif sq is not None:
            steps.append(re.sub(r"\\(.)", r"\1", sq))
        elif dq is not None:
            steps.append(re.sub(r"\\(.)", r"\1", dq))
        else:
            steps.append(int(idx))
        pos = m.end()
    return tuple(steps)


def compile_path(text: str) -> Callable[[object], object]:
    """A getter returning the node at ``text`` or MISSING; built once, called per row."""
    steps = parse_path(text)
    if not steps:
        return lambda doc: doc
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]

        def get_key(doc: object) -> object:
            if type(doc) is dict:
                return doc.get(key, MISSING)
            return MISSING

        return get_key

    def get(doc: object) -> object:
        node = doc
        for step in steps:
            if type(step) is str:
                if type(node) is not dict:
                    return MISSING
                node = node.get(step, MISSING)
                if node is MISSING:
                    return MISSING
            else:
                if type(node) is not list or not -len(node) <= step < len(node):
                    return MISSING
                node = node[step]
        return node

    return get


def parse_jsonpaths(text: str) -> list[str]:
    """The jsonpaths property: a JSON array of path strings."""
    try:
        paths = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise LoadSpecError(
            f"invalid jsonpaths {text!r}: not valid JSON ({e}); expected an array of paths such as "
            '["$.id", "$.a.b", "$.arr[0]"]'
        ) from None
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise LoadSpecError(
            f"invalid jsonpaths {text!r}: expected a non-empty JSON array of path strings such as "
            '["$.id", "$.a.b", "$.arr[0]"]'
        )
    for p in paths:
        parse_path(p)
    return paths
