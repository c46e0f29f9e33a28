"""Process-wide logging set-up, called once from each ``main()``, and how a main reports the
failure that ends it.

A node logs to its log file when it is given one (``--log-file``), else to stderr (the local
cluster sends a node's stderr to ``<run dir>/<node>/log``). A failure that stops the node - most
often at start-up: a port in use, a meta dir another FE holds - goes to that log with its
traceback, and stderr gets one line saying what failed and where the traceback is.
"""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(role: str, level: str = "INFO", log_file: str | None = None) -> None:
    """Raises OSError when ``log_file`` cannot be opened (its directory is made)."""
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s.%(msecs)03d {role} %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[handler],
    )
    # aiokafka and grpc are chatty at INFO; their warnings still show.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def report_fatal(logger: logging.Logger, summary: str, exc: BaseException, log_file: str | None) -> None:
    """Log ``summary`` with the traceback of ``exc``; with a log file, also print ``summary`` as
    one line on stderr, naming the file (without one, the log is stderr already)."""
    logger.error("%s", summary, exc_info=exc)
    if log_file:
        print(f"{summary} (traceback in {log_file})", file=sys.stderr, flush=True)
