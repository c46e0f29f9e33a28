"""How an FE process steps down: it re-executes itself.

A leader that lost its lease may hold memory ahead of the journal (records applied, never
written). Rolling that back in place would need an undo for every apply; starting again from the
local image and the journal in etcd needs nothing new. So the process replaces itself with a fresh
run of its own command line (``os.execv``: same pid, same arguments, same log file), which comes
back as a follower. StarRocks' FE does the same in spirit: it exits when it loses mastership.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)


def own_command_line() -> list[str]:
    """This process's argv exactly as it was started (``python -m fe.main ...``)."""
    with open("/proc/self/cmdline", "rb") as f:
        raw = f.read()
    return [part.decode() for part in raw.split(b"\0") if part]


def reexec(reason: str) -> None:
    """Replace this process with a fresh run of the same command line (never returns)."""
    argv = own_command_line()
    log.warning("stepping down (%s): this FE re-executes itself and comes back as a follower: %s",
                reason, " ".join(argv))
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
