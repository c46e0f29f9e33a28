"""Time helpers: the FE and BEs show times the way StarRocks does ('YYYY-MM-DD HH:MM:SS')."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)


def fmt_ms(ms: int) -> str:
    """Wall-clock millis as StarRocks shows them; 'NULL' when unset (0)."""
    if ms <= 0:
        return "NULL"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def fmt_bytes(n: int) -> str:
    """Byte counts as SHOW BACKENDS prints them (e.g. '1.234 GB')."""
    units = ("B", "KB", "MB", "GB", "TB", "PB")
    value = float(n)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.3f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"
