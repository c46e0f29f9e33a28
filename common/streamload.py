"""What every door of Stream Load checks, in one place: the FE's gRPC StreamLoad, and the BE that runs
the load whether it came by the FE's forward (ExecuteStreamLoad) or by HTTP (be/http/stream_load.py).

StarRocks checks a Stream Load's parameters once the BE asks the FE to plan it (streamLoadPut);
here the FE checks a gRPC load before it picks a BE, and the BE checks every load before it begins
the txn (be/load/stream_load.py), with this same function, so that a bad value gets the same answer
by both doors and never begins a txn.
"""

from __future__ import annotations

import uuid

from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import types_pb2

DEFAULT_TIMEOUT_S = 600
"""StarRocks' stream_load_default_timeout_second: a BE's timeout for a load that came with none.
(The FE's gRPC door fills in its own setting; its HTTP redirect passes it on when it differs.)"""


def new_label() -> str:
    """A label for a load that gave none (StarRocks makes a UUID one on the BE)."""
    return f"stream_load_{uuid.uuid4().hex}"


def check_request(req: types_pb2.StreamLoadRequest) -> None:
    """Refuse what no BE could honour, before a txn begins: the message names the parameter (the
    same word as StarRocks' header) and what is allowed."""
    if req.HasField("timeout_s") and req.timeout_s <= 0:
        raise InvalidArgument(f"invalid timeout {req.timeout_s}: must be a positive number of seconds")
    params = req.params
    if params.HasField("max_filter_ratio") and not 0.0 <= params.max_filter_ratio <= 1.0:  # NaN fails too
        raise InvalidArgument(
            f"invalid max_filter_ratio {params.max_filter_ratio:g}: must be a number between 0 and 1 "
            "(the largest share of filtered rows the load tolerates)")
