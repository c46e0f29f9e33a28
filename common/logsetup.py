"""Process-wide logging set-up, called once from each ``main()``."""

from __future__ import annotations

import logging
import sys


def setup_logging(role: str, level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s.%(msecs)03d {role} %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    # aiokafka and grpc are chatty at INFO; their warnings still show.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
