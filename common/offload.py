"""Small work on the event loop, large work on a thread.

A thread hop costs a task switch, a future and the GIL handed back and forth: more than writing a
one-row rowset or publishing a few tablets (tens of microseconds, no fsync: BE writes are not
synced). Work above ``INLINE_BYTES`` goes to a thread, so a large write never holds the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

INLINE_BYTES = 256 * 1024


async def off_loop_if_large(size: int, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in place when ``size`` (bytes, or an estimate) is small, else on a thread."""
    if size < INLINE_BYTES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)
